//! A table's rows as a checkpoint saved them, decoded a window at a time when first needed.
//!
//! A checkpoint with every row saves them window by window, each window's rows encoded apart
//! ([`ByWindow`]). A resumed run keeps that part's bytes and decodes a window only when a
//! change first touches it ([`SavedRows::take_window`]), or every window when the whole table
//! is needed, for a snapshot or a checkpoint with every row ([`SavedRows::take_all`]). The
//! changes saved by later parts of the chain wait beside the windows they change and are
//! applied when their window is decoded.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use bincode::Options;
use compact_str::CompactString;
use serde::ser::SerializeSeq;
use serde::{Serialize, Serializer};

use crate::data::agg::Agg;
use crate::data::window::Window;
use crate::incremental::durable::encoding;
use crate::output::table::Rows;

/// A row's place in the table.
type RowKey = (Window, CompactString);

/// Rows saved by a checkpoint and not yet decoded.
#[derive(Debug)]
pub struct SavedRows {
    part: Arc<Vec<u8>>,
    /// The windows not yet decoded, with where their rows are in `part`.
    windows: BTreeMap<Window, Range<usize>>,
    /// Rows saved after `part`, by later parts of its chain: each row now, or `None` if it
    /// is gone. Only rows of windows not yet decoded.
    pending: BTreeMap<RowKey, Option<Agg>>,
}

impl SavedRows {
    /// The rows of `windows`, each window's rows encoded (as [`ByWindow`] writes them) at its
    /// range of `part`.
    pub fn new(part: Arc<Vec<u8>>, windows: Vec<(Window, Range<usize>)>) -> SavedRows {
        SavedRows {
            part,
            windows: windows.into_iter().collect(),
            pending: BTreeMap::new(),
        }
    }

    /// No rows.
    pub fn none() -> SavedRows {
        SavedRows::new(Arc::new(Vec::new()), Vec::new())
    }

    /// Applies a row saved by a later part of the chain.
    pub fn change(&mut self, key: RowKey, row: Option<Agg>) {
        self.pending.insert(key, row);
    }

    /// Whether nothing is left to decode.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty() && self.pending.is_empty()
    }

    /// Moves the rows of `window` into `rows`, which holds none of them.
    pub fn take_window(&mut self, window: &Window, rows: &mut Rows) -> Result<(), bincode::Error> {
        if let Some(range) = self.windows.remove(window) {
            for (key, agg) in decode_window(&self.part[range])? {
                rows.insert((*window, key), agg);
            }
        }
        let from = (*window, CompactString::default());
        let changed: Vec<RowKey> = (self.pending.range(from..))
            .map(|(key, _)| key)
            .take_while(|(w, _)| w == window)
            .cloned()
            .collect();
        for key in changed {
            match self.pending.remove(&key).flatten() {
                Some(agg) => rows.insert(key, agg),
                None => rows.remove(&key),
            };
        }
        Ok(())
    }

    /// Every row: those still saved, and `rows`, which holds other windows only. The windows
    /// are decoded on all cores.
    pub fn take_all(self, rows: Rows) -> Result<Rows, bincode::Error> {
        let windows: Vec<(Window, Range<usize>)> = self.windows.into_iter().collect();
        let decoded = decode_windows(&self.part, &windows)?;
        let mut all = Vec::with_capacity(rows.len() + decoded.iter().map(Vec::len).sum::<usize>());
        let mut held = rows.into_iter().peekable();
        for ((window, _), decoded) in windows.into_iter().zip(decoded) {
            all.extend(held.by_ref().take_while_ref(|((w, _), _)| *w < window));
            all.extend(decoded.into_iter().map(|(key, agg)| ((window, key), agg)));
        }
        all.extend(held);
        // In key order already: the map is built without a search per row.
        let mut rows: Rows = all.into_iter().collect();
        for (key, row) in self.pending {
            match row {
                Some(agg) => rows.insert(key, agg),
                None => rows.remove(&key),
            };
        }
        Ok(rows)
    }

    /// Windows still saved.
    pub fn windows(&self) -> usize {
        self.windows.len()
    }
}

#[cfg(test)]
impl SavedRows {
    /// `rows` saved by window, as a part holds them, and read back.
    pub(crate) fn of(rows: &Rows) -> SavedRows {
        let bytes = Arc::new(encoding().serialize(&ByWindow(rows)).unwrap());
        let windows: Vec<(Window, &[u8])> = encoding().deserialize(&bytes).unwrap();
        let base = bytes.as_ptr() as usize;
        let ranges = windows
            .into_iter()
            .map(|(w, b)| {
                let at = b.as_ptr() as usize - base;
                (w, at..at + b.len())
            })
            .collect();
        SavedRows::new(Arc::clone(&bytes), ranges)
    }
}

/// The rows of each of `windows`, decoded from `part` on all cores.
fn decode_windows(
    part: &[u8],
    windows: &[(Window, Range<usize>)],
) -> Result<Vec<Vec<(CompactString, Agg)>>, bincode::Error> {
    let one = |(_, range): &(Window, Range<usize>)| decode_window(&part[range.clone()]);
    crate::cores::map_on_all_cores(windows, 16, one)
        .into_iter()
        .collect()
}

/// Takes items while `pred` holds, leaving the first that fails in the iterator.
trait TakeWhileRef: Iterator {
    fn take_while_ref<P: FnMut(&Self::Item) -> bool>(&mut self, pred: P) -> Vec<Self::Item>;
}

impl<I: Iterator> TakeWhileRef for std::iter::Peekable<I> {
    fn take_while_ref<P: FnMut(&I::Item) -> bool>(&mut self, mut pred: P) -> Vec<I::Item> {
        std::iter::from_fn(|| self.next_if(&mut pred)).collect()
    }
}

fn decode_window(bytes: &[u8]) -> Result<Vec<(CompactString, Agg)>, bincode::Error> {
    encoding().deserialize(bytes)
}

/// Every row of a table, saved window by window: a list of (window, the bytes of the window's
/// rows), so that each window can be decoded alone.
pub struct ByWindow<'a>(pub &'a Rows);

impl Serialize for ByWindow<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut windows = 0;
        let mut last = None;
        for (window, _) in self.0.keys() {
            if last != Some(window) {
                windows += 1;
                last = Some(window);
            }
        }
        let mut seq = serializer.serialize_seq(Some(windows))?;
        let mut rows = self.0.iter().peekable();
        let mut bytes = Vec::new();
        while let Some(((window, _), _)) = rows.peek() {
            let window = *window;
            let list: Vec<(&CompactString, &Agg)> = rows
                .take_while_ref(|((w, _), _)| *w == window)
                .into_iter()
                .map(|((_, key), agg)| (key, agg))
                .collect();
            bytes.clear();
            encoding()
                .serialize_into(&mut bytes, &list)
                .map_err(serde::ser::Error::custom)?;
            seq.serialize_element(&(window, Bytes(&bytes)))?;
        }
        seq.end()
    }
}

/// Bytes serialised as one byte string (not a list of numbers).
struct Bytes<'a>(&'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::decimal::Decimal;

    fn agg(n: i128) -> Agg {
        let d = Decimal(n);
        Agg {
            count: 1,
            sum: Some(d),
            min: d,
            max: d,
        }
    }

    fn row(start: i64, key: &str) -> RowKey {
        (
            Window {
                start,
                end: start + 10,
            },
            key.into(),
        )
    }

    #[test]
    fn windows_decode_one_at_a_time_with_later_changes() {
        let rows: Rows = [(0, "a", 1), (0, "b", 2), (10, "a", 3), (20, "c", 4)]
            .iter()
            .map(|(s, k, n)| (row(*s, k), agg(*n)))
            .collect();
        let mut saved = SavedRows::of(&rows);
        saved.change(row(10, "a"), None);
        saved.change(row(10, "b"), Some(agg(5)));
        saved.change(row(30, "d"), Some(agg(6)));
        let mut held = Rows::new();
        saved.take_window(&row(10, "").0, &mut held).unwrap();
        assert_eq!(held, Rows::from([(row(10, "b"), agg(5))]));
        assert!(!saved.is_empty());
        held.insert(row(10, "z"), agg(7)); // a change after the window was decoded
        let all = saved.take_all(held).unwrap();
        let want: Rows = [
            (0, "a", 1),
            (0, "b", 2),
            (10, "b", 5),
            (10, "z", 7),
            (20, "c", 4),
            (30, "d", 6),
        ]
        .iter()
        .map(|(s, k, n)| (row(*s, k), agg(*n)))
        .collect();
        assert_eq!(all, want);
    }
}
