//! The sink's part of a checkpoint: its counts, the table's rows with their window digests,
//! the gap table and the estimates, in one bincode value. Like a worker's, the sink's parts
//! form a chain: the first holds every row, each later one only the rows changed since the
//! part before it (the rest of the state is small and saved whole in every part).
//!
//! A part with every row saves them window by window ([`ByWindow`]); a resumed run keeps that
//! part's bytes and decodes a window's rows when a change first touches it ([`SavedRows`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use amend_operators::Agg;
use amend_operators::Window;
use amend_operators::incremental::durable::encoding;
use amend_operators::output::gap_table::GapTable;
use amend_operators::output::saved_rows::{ByWindow, SavedRows};
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
    /// Every row, window by window.
    All(ByWindow<'a>),
    /// The rows changed since the part before: each key with its row, or none if it is gone.
    Changes(Vec<(&'a RowKey, Option<&'a Agg>)>),
}

impl RowsRef<'_> {
    /// Whether these are changes.
    pub fn is_changes(&self) -> bool {
        matches!(self, RowsRef::Changes(_))
    }
}

/// The table's rows in a part, as read: each window's rows still encoded, or the changes.
#[derive(Deserialize)]
enum PartRows<'a> {
    #[serde(borrow)]
    All(Vec<(Window, &'a [u8])>),
    Changes(Vec<(RowKey, Option<Agg>)>),
}

/// What the sink's part holds, borrowed to save it.
pub type SinkPartRef<'a> = (
    &'a SavedFacts,
    Option<(RowsRef<'a>, &'a [WindowDigest])>,
    Option<&'a GapTable>,
    &'a Estimates,
);

type Saved<'a> = (
    SavedFacts,
    Option<(PartRows<'a>, Vec<WindowDigest>)>,
    Option<GapTable>,
    Estimates,
);

/// The sink's state, loaded from its chain of parts.
pub struct SinkState {
    /// The counts.
    pub facts: SavedFacts,
    /// The rows, still encoded, and the window digests, if the run keeps a table.
    pub rows: Option<(SavedRows, Vec<WindowDigest>)>,
    /// The gap table, if the run detects gaps.
    pub gaps: Option<GapTable>,
    /// The estimates.
    pub estimates: Estimates,
}

/// Loads the sink's state from its chain of parts: the rows of the last part with every row,
/// still encoded, with the changes of each later part; the rest from the last part. The bytes
/// of the part with every row are kept for its rows; the others go once decoded.
pub fn decode_chain(parts: Vec<Arc<Vec<u8>>>) -> anyhow::Result<SinkState> {
    let mut rows: Option<SavedRows> = None;
    let mut last = None;
    for bytes in parts {
        let decoded: Result<Saved, _> = encoding().deserialize(&bytes);
        let (facts, saved, gaps, estimates) =
            decoded.map_err(|e| anyhow::anyhow!("the sink's state does not decode: {e}"))?;
        let mut windows = None;
        if let Some((saved, w)) = saved {
            windows = Some(w);
            match (saved, &mut rows) {
                (PartRows::All(all), _) => {
                    let base = bytes.as_ptr() as usize;
                    let ranges = all.into_iter().map(|(window, rows)| {
                        let at = rows.as_ptr() as usize - base;
                        (window, at..at + rows.len())
                    });
                    rows = Some(SavedRows::new(Arc::clone(&bytes), ranges.collect()));
                }
                (PartRows::Changes(changes), Some(rows)) => {
                    for (key, row) in changes {
                        rows.change(key, row);
                    }
                }
                (PartRows::Changes(_), None) => {
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
        rows: windows.map(|w| (rows.unwrap_or_else(SavedRows::none), w)),
        gaps,
        estimates,
    })
}
