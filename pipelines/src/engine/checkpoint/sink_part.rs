//! The sink's part of a checkpoint: its counts, the table's rows with their window digests,
//! the gap table and the estimates, in one bincode value. Like a worker's, the sink's parts
//! form a chain: the first holds every row, each later one only the rows changed since the
//! part before it (the rest of the state is small and saved whole in every part).

use std::collections::BTreeMap;

use amend_operators::Agg;
use amend_operators::Window;
use amend_operators::incremental::durable::encoding;
use amend_operators::output::gap_table::GapTable;
use amend_operators::output::table::Rows;
use amend_operators::proof::digest::WindowDigest;
use amend_operators::recovery::estimates::Estimate;
use bincode::Options;
use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use crate::engine::sink::Counts;

/// The sink's counts that a checkpoint keeps.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SavedFacts {
    /// The run's counts.
    pub counts: Counts,
    /// Input names by index.
    pub sources: BTreeMap<u32, String>,
    /// Each writer's counts, in order.
    pub writers: Vec<Vec<u64>>,
}

/// A row's place in the table.
pub type RowKey = (Window, CompactString);

/// The estimates the sink holds.
pub type Estimates = BTreeMap<RowKey, Estimate>;

/// The table's rows in a part, borrowed to save them.
#[derive(Serialize)]
pub enum RowsRef<'a> {
    /// Every row, in (window, key) order.
    All(&'a Rows),
    /// The rows changed since the part before: each key with its row, or none if it is gone.
    Changes(Vec<(&'a RowKey, Option<&'a Agg>)>),
}

impl RowsRef<'_> {
    /// Whether these are changes.
    pub fn is_changes(&self) -> bool {
        matches!(self, RowsRef::Changes(_))
    }
}

/// The table's rows in a part, as loaded: the rows, saved as a map in (window, key) order,
/// are read as a list and built into their map in one pass.
#[derive(Deserialize)]
enum SavedRows {
    All(Exact<(RowKey, Agg)>),
    Changes(Vec<(RowKey, Option<Agg>)>),
}

/// What the sink's part holds, borrowed to save it.
pub type SinkPartRef<'a> = (
    &'a SavedFacts,
    Option<(RowsRef<'a>, &'a [WindowDigest])>,
    Option<&'a GapTable>,
    &'a Estimates,
);

type Saved = (
    SavedFacts,
    Option<(SavedRows, Vec<WindowDigest>)>,
    Option<GapTable>,
    Estimates,
);

/// The sink's state, loaded from its chain of parts.
pub struct SinkState {
    /// The counts.
    pub facts: SavedFacts,
    /// The rows and the window digests, if the run keeps a table.
    pub rows: Option<(Rows, Vec<WindowDigest>)>,
    /// The gap table, if the run detects gaps.
    pub gaps: Option<GapTable>,
    /// The estimates.
    pub estimates: Estimates,
}

/// Loads the sink's state from its chain of parts: the rows of the first, changed by each
/// later one; the rest from the last. Each part's bytes go once it is decoded, before its
/// rows are built into their map.
pub fn decode_chain(parts: Vec<std::sync::Arc<Vec<u8>>>) -> anyhow::Result<SinkState> {
    let mut rows: Option<Rows> = None;
    let mut last = None;
    for bytes in parts {
        let decoded: Result<Saved, _> = encoding().deserialize(&bytes);
        drop(bytes);
        let (facts, saved, gaps, estimates) =
            decoded.map_err(|e| anyhow::anyhow!("the sink's state does not decode: {e}"))?;
        let mut windows = None;
        if let Some((saved, w)) = saved {
            windows = Some(w);
            match (saved, &mut rows) {
                // In key order already: the map is built without a search each.
                (SavedRows::All(Exact(all)), _) => rows = Some(all.into_iter().collect()),
                (SavedRows::Changes(changes), Some(rows)) => {
                    for (key, row) in changes {
                        match row {
                            Some(row) => rows.insert(key, row),
                            None => rows.remove(&key),
                        };
                    }
                }
                (SavedRows::Changes(_), None) => {
                    anyhow::bail!("the sink's state has changes without the rows they change")
                }
            }
        }
        last = Some((facts, windows, gaps, estimates));
    }
    let (facts, windows, gaps, estimates) =
        last.ok_or_else(|| anyhow::anyhow!("the checkpoint has no sink part"))?;
    Ok(SinkState {
        facts,
        rows: windows.map(|w| (rows.unwrap_or_default(), w)),
        gaps,
        estimates,
    })
}

/// A list decoded into a vector of its length at once: serde's own grows as it goes (its
/// size hint is cautious), copying millions of rows again at each step.
struct Exact<T>(Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Exact<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct List<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for List<T> {
            type Value = Exact<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Exact<T>, A::Error> {
                // The part's SHA-256 was checked; the bound only keeps a wrong length sane.
                let mut list = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 28));
                while let Some(item) = seq.next_element()? {
                    list.push(item);
                }
                Ok(Exact(list))
            }
        }
        d.deserialize_seq(List(std::marker::PhantomData))
    }
}
