//! The aggregate table outside the dataflow, as the changelog builds it.
//!
//! A [`Table`] takes the open epoch's row changes as they arrive ([`Table::apply`]), checking
//! that every retraction removes a row that is there and every insertion finds none. The
//! first change of a row in an epoch records the row as it was before the epoch, so the
//! epoch's net change ([`Table::changes`]) is exact: rows that ended as they began change
//! nothing. While the table was empty at the epoch's start nothing needs recording, and every
//! row is an insertion. [`Table::end_epoch`] closes the open epoch.
//!
//! With a finite lateness, rows of windows that can no longer change may leave memory
//! ([`Table::spill_closed`], [`Table::close_windows`]): they move to a file in the snapshot's
//! format, which the snapshot copies first, since windows close in start order.

use std::collections::{BTreeMap, btree_map};
use std::fs::File;
use std::io::{self, BufWriter, Seek, Write};

use compact_str::CompactString;

use crate::data::agg::{Agg, AggRow};
use crate::data::decimal::Scale;
use crate::data::time::{Millis, format_millis};
use crate::data::window::Window;
use crate::output::OutputError;
use crate::output::rows::{SnapshotFormat, write_changelog, write_csv_header, write_snapshot_rows};
use crate::output::saved_rows::SavedRows;

/// The rows of a table, in (window, key) order.
pub type Rows = BTreeMap<(Window, CompactString), Agg>;

/// Each row an epoch touched, with its value before the epoch.
pub type Before = BTreeMap<(Window, CompactString), Option<Agg>>;

/// One row's net change in an epoch: the row, its value before, its value after.
pub type RowChange<'a> = (
    &'a (Window, CompactString),
    Option<&'a Agg>,
    Option<&'a Agg>,
);

/// The aggregate table, as the changelog builds it.
#[derive(Debug)]
pub struct Table {
    rows: Rows,
    scale: Scale,
    /// Rows changed in the open epoch, with their value before it.
    before: Before,
    /// Whether the table was empty when the open epoch began.
    empty_before: bool,
    /// Whether the open epoch has changed the table yet.
    changed: bool,
    /// Rows of closed windows, moved out of memory.
    closed: Option<Closed>,
    /// For checkpoints, once one is taken: the rows changed since ([`Table::take_changes`]).
    tracked: Option<Tracked>,
    /// In a resumed run, the rows of windows not yet changed, as the checkpoint saved them.
    saved: Option<SavedRows>,
    /// Windows decoded from `saved` one by one.
    windows_taken: usize,
}

/// The windows a resumed table decodes one at a time as changes touch them; at the next, every
/// row is decoded.
const WINDOWS_TAKEN_ONE_BY_ONE: usize = 64;

/// The rows changed since a checkpoint.
#[derive(Debug, Default)]
struct Tracked {
    /// Their keys, with repeats.
    keys: Vec<(Window, CompactString)>,
    /// Whether an epoch changed rows without recording which (it began with an empty table).
    all: bool,
}

/// Rows of windows that can no longer change, kept in a file in the snapshot's format.
/// Windows close in start order, so the file stays sorted and precedes every open row.
#[derive(Debug)]
struct Closed {
    file: BufWriter<File>,
    format: SnapshotFormat,
    rows: u64,
    /// The greatest closed window, which every later one must follow.
    last: Option<Window>,
}

/// The net changes of an epoch, in (window, key) order; see [`Table::changes`].
#[derive(Copy, Clone, Debug)]
pub enum EpochChanges<'a> {
    /// The table was empty when the epoch began: every row is an insertion.
    All {
        /// The rows.
        rows: &'a Rows,
        /// Whether the epoch changed the table at all.
        changed: bool,
    },
    /// The rows the epoch touched, with their values before it, and the table after it.
    Net {
        /// Each touched row's value before the epoch.
        before: &'a Before,
        /// The rows after it.
        rows: &'a Rows,
    },
}

impl<'a> EpochChanges<'a> {
    /// Each row whose value changed, with its value before and after (`None` where it had or
    /// has no row).
    pub fn iter(&self) -> impl Iterator<Item = RowChange<'a>> + 'a {
        let (all, net) = self.parts();
        let all = all
            .into_iter()
            .flatten()
            .map(|(row, new)| (row, None, Some(new)));
        let net = net.into_iter().flat_map(|(before, rows)| {
            before.iter().filter_map(move |(row, old)| {
                let new = rows.get(row);
                (old.as_ref() != new).then_some((row, old.as_ref(), new))
            })
        });
        all.chain(net)
    }

    /// The rows the epoch removed or replaced, as they were.
    pub fn retractions(&self) -> impl Iterator<Item = (&'a (Window, CompactString), &'a Agg)> + 'a {
        let (_, net) = self.parts();
        net.into_iter().flat_map(|(before, rows)| {
            before.iter().filter_map(move |(row, old)| {
                let old = old.as_ref()?;
                (rows.get(row) != Some(old)).then_some((row, old))
            })
        })
    }

    /// The rows the epoch added or replaced, as they are.
    pub fn insertions(&self) -> impl Iterator<Item = (&'a (Window, CompactString), &'a Agg)> + 'a {
        let (all, net) = self.parts();
        let net = net.into_iter().flat_map(|(before, rows)| {
            before.iter().filter_map(move |(row, old)| {
                let new = rows.get(row)?;
                (old.as_ref() != Some(new)).then_some((row, new))
            })
        });
        all.into_iter().flatten().chain(net)
    }

    /// The number of changelog lines: retractions plus insertions.
    pub fn lines(&self) -> usize {
        match self {
            EpochChanges::All { rows, .. } => rows.len(),
            EpochChanges::Net { .. } => self.retractions().count() + self.insertions().count(),
        }
    }

    fn parts(&self) -> (Option<&'a Rows>, Option<(&'a Before, &'a Rows)>) {
        match *self {
            EpochChanges::All { rows, .. } => (Some(rows), None),
            EpochChanges::Net { before, rows } => (None, Some((before, rows))),
        }
    }
}

impl Table {
    /// An empty table whose decimals print at `scale`.
    pub fn new(scale: Scale) -> Self {
        Table {
            rows: BTreeMap::new(),
            scale,
            before: BTreeMap::new(),
            empty_before: true,
            changed: false,
            closed: None,
            tracked: None,
            saved: None,
            windows_taken: 0,
        }
    }

    /// A table holding the rows `saved`, between two epochs (as a checkpoint saved them): each
    /// window's rows are decoded when a change first touches the window, or all of them by
    /// [`Table::load_all`].
    pub fn with_saved(scale: Scale, saved: SavedRows) -> Self {
        Table {
            empty_before: saved.is_empty(),
            saved: (!saved.is_empty()).then_some(saved),
            ..Table::new(scale)
        }
    }

    /// Decodes every row still saved ([`Table::with_saved`]): call before [`Table::rows`],
    /// [`Table::row_count`] or a snapshot.
    pub fn load_all(&mut self) -> Result<(), OutputError> {
        if let Some(saved) = self.saved.take() {
            let rows = std::mem::take(&mut self.rows);
            self.rows = saved.take_all(rows).map_err(undecodable)?;
        }
        Ok(())
    }

    /// Whether every row is in memory (none is still saved).
    pub fn is_loaded(&self) -> bool {
        self.saved.is_none()
    }

    /// The rows in memory: every row of each window that is not still saved.
    pub fn loaded_rows(&self) -> &Rows {
        &self.rows
    }

    /// Decodes the rows of `window` if they are still saved. Once changes have touched many
    /// windows, every row is decoded at once instead: inserting a window's rows into the map
    /// one by one costs more than building the map from every row in order.
    #[inline]
    fn load_window(&mut self, window: &Window) -> Result<(), OutputError> {
        let Some(saved) = &mut self.saved else {
            return Ok(());
        };
        let before = saved.windows();
        saved
            .take_window(window, &mut self.rows)
            .map_err(undecodable)?;
        self.windows_taken += before - saved.windows();
        if saved.is_empty() {
            self.saved = None;
        } else if self.windows_taken > WINDOWS_TAKEN_ONE_BY_ONE {
            self.load_all()?;
        }
        Ok(())
    }

    /// A table holding `rows`, between two epochs (as a checkpoint saved it).
    pub fn with_rows(scale: Scale, rows: Rows) -> Self {
        Table {
            empty_before: rows.is_empty(),
            rows,
            ..Table::new(scale)
        }
    }

    /// The scale decimals print at.
    pub fn scale(&self) -> Scale {
        self.scale
    }

    /// Moves the rows of closed windows ([`Table::close_windows`]) into `file`, an anonymous
    /// temporary file, in the snapshot's `format`, instead of keeping them in memory.
    pub fn spill_closed(&mut self, file: File, format: SnapshotFormat) {
        self.closed = Some(Closed {
            file: BufWriter::with_capacity(1 << 20, file),
            format,
            rows: 0,
            last: None,
        });
    }

    /// The rows held in memory, in (window, key) order: all rows, unless closed ones spill.
    /// Rows still saved are decoded first ([`Table::load_all`]).
    pub fn rows(&self) -> &Rows {
        assert!(self.is_loaded(), "Table::load_all comes before Table::rows");
        &self.rows
    }

    /// The number of rows, spilled ones included. Rows still saved are decoded first
    /// ([`Table::load_all`]).
    pub fn row_count(&self) -> u64 {
        assert!(
            self.is_loaded(),
            "Table::load_all comes before Table::row_count"
        );
        self.rows.len() as u64 + self.closed.as_ref().map_or(0, |c| c.rows)
    }

    /// Whether rows of closed windows leave memory ([`Table::spill_closed`]).
    pub fn spills(&self) -> bool {
        self.closed.is_some()
    }

    /// Whether the table was empty when the open epoch began (then changes are not tracked
    /// row by row: every row is an insertion).
    pub fn empty_before(&self) -> bool {
        self.empty_before
    }

    /// Closes every window that ends at or before `horizon`: its rows can no longer change.
    /// If closed rows spill, they move out of memory and are returned (it is an error for a
    /// later change to touch them); otherwise nothing happens. Call between epochs.
    pub fn close_windows(&mut self, horizon: Millis) -> Result<Rows, OutputError> {
        if self.closed.is_none() {
            return Ok(Rows::new());
        }
        self.load_all()?;
        let Some(closed) = &mut self.closed else {
            return Ok(Rows::new());
        };
        let first_open = self
            .rows
            .keys()
            .position(|(window, _)| window.end > horizon)
            .unwrap_or(self.rows.len());
        if first_open == 0 {
            return Ok(Rows::new());
        }
        if let Some(tracked) = &mut self.tracked {
            tracked.all = true;
        }
        let open = match self.rows.iter().nth(first_open) {
            Some((key, _)) => self.rows.split_off(&key.clone()),
            None => BTreeMap::new(),
        };
        let done = std::mem::replace(&mut self.rows, open);
        // Closed rows must precede every open one and every row closed before.
        let first = done.keys().next().map(|(w, _)| *w);
        let last = done.keys().next_back().map(|(w, _)| *w);
        let open_first = self.rows.keys().next().map(|(w, _)| *w);
        if first <= closed.last || (open_first.is_some() && last >= open_first) {
            return Err(OutputError::Inconsistent {
                epoch: 0,
                what: "closes out of window order",
                start: format_millis(first.map_or(0, |w| w.start)),
                key: String::new(),
            });
        }
        write_snapshot_rows(
            closed.format,
            self.scale,
            done.iter(),
            &mut closed.file,
            false,
        )?;
        closed.rows += done.len() as u64;
        closed.last = last;
        self.empty_before = self.rows.is_empty() && self.saved.is_none();
        Ok(done)
    }

    /// Applies one change of the open epoch `epoch`: `diff` is `-1` or `1`.
    pub fn apply(&mut self, epoch: u64, row: AggRow, diff: isize) -> Result<(), OutputError> {
        let ((window, key), agg) = row;
        let inconsistent = |what, window: &Window, key: &str| OutputError::Inconsistent {
            epoch,
            what,
            start: format_millis(window.start),
            key: key.to_owned(),
        };
        self.load_window(&window)?;
        let entry = (window, key);
        self.changed = true;
        // One search of the rows per change: the entry found is checked, then changed.
        match diff {
            -1 => match self.rows.entry(entry) {
                btree_map::Entry::Occupied(row) if *row.get() == agg => {
                    let (entry, _) = row.remove_entry();
                    if !self.empty_before {
                        self.before.entry(entry).or_insert(Some(agg));
                    }
                }
                row => {
                    let (window, key) = row.key();
                    return Err(inconsistent("retracts a missing", window, key));
                }
            },
            1 => {
                if !self.empty_before {
                    self.before.entry(entry.clone()).or_insert(None);
                }
                match self.rows.entry(entry) {
                    btree_map::Entry::Vacant(row) => {
                        row.insert(agg);
                    }
                    btree_map::Entry::Occupied(row) => {
                        let (window, key) = row.key();
                        return Err(inconsistent("inserts a second", window, key));
                    }
                }
            }
            _ => return Err(inconsistent("changes by more than one", &entry.0, &entry.1)),
        }
        Ok(())
    }

    /// The open epoch's net changes so far.
    pub fn changes(&self) -> EpochChanges<'_> {
        if self.empty_before {
            EpochChanges::All {
                rows: &self.rows,
                changed: self.changed,
            }
        } else {
            EpochChanges::Net {
                before: &self.before,
                rows: &self.rows,
            }
        }
    }

    /// Ends the open epoch: its changes are done with, and the next epoch begins.
    pub fn end_epoch(&mut self) {
        if let Some(tracked) = &mut self.tracked {
            if self.empty_before {
                tracked.all |= self.changed;
            } else {
                tracked.keys.extend(self.before.keys().cloned());
            }
        }
        self.before.clear();
        self.empty_before = self.rows.is_empty() && self.saved.is_none();
        self.changed = false;
    }

    /// Begins recording which rows change, for a checkpoint to save only those; call between
    /// epochs, once every row is saved or loaded.
    pub fn track_changes(&mut self) {
        self.tracked = Some(Tracked::default());
    }

    /// The keys of the rows changed since changes were last tracked or taken, each once and in
    /// order (a key whose row is gone included), and records anew; `None` if they are not
    /// known (the rows are then to be saved whole).
    pub fn take_changes(&mut self) -> Option<Vec<(Window, CompactString)>> {
        let tracked = self.tracked.replace(Tracked::default())?;
        if tracked.all {
            return None;
        }
        let mut keys = tracked.keys;
        keys.sort_unstable();
        keys.dedup();
        Some(keys)
    }

    /// For a checkpoint: with `incremental`, the keys of the rows changed since the last one
    /// ([`Table::take_changes`]) if they are known; otherwise `None`, and changes are recorded
    /// from now on (the rows are to be saved whole).
    pub fn checkpoint_changes(
        &mut self,
        incremental: bool,
    ) -> Option<Vec<(Window, CompactString)>> {
        let changes = incremental.then(|| self.take_changes()).flatten();
        if changes.is_none() {
            self.track_changes();
        }
        changes
    }

    /// Whether changes of the open epoch have been applied: then the rows are not those of
    /// an epoch boundary, and no snapshot should be written from them.
    pub fn has_open_changes(&self) -> bool {
        self.changed
    }

    /// Applies one whole epoch's changes, writes them as changelog lines to `out`, and ends
    /// the epoch; returns the number of lines.
    ///
    /// `changes` may hold several updates of one row in any order; they are consolidated
    /// first, and rows whose changes cancel write nothing.
    pub fn apply_epoch(
        &mut self,
        epoch: u64,
        mut changes: Vec<(AggRow, isize)>,
        out: &mut impl Write,
    ) -> Result<usize, OutputError> {
        differential_dataflow::consolidation::consolidate(&mut changes);
        let (retractions, insertions): (Vec<_>, Vec<_>) =
            changes.into_iter().partition(|(_, diff)| *diff < 0);
        for (row, diff) in retractions.into_iter().chain(insertions) {
            let unit = diff.signum();
            for _ in 0..diff.unsigned_abs() {
                self.apply(epoch, row.clone(), unit)?;
            }
        }
        let lines = write_changelog(epoch, &self.changes(), self.scale, out)?;
        self.end_epoch();
        Ok(lines)
    }

    /// Flushes spilled rows to their file; call before [`Table::write_snapshot`].
    pub fn flush_closed(&mut self) -> Result<(), OutputError> {
        if let Some(closed) = &mut self.closed {
            closed.file.flush()?;
        }
        Ok(())
    }

    /// Writes the snapshot: one row per (window, key), sorted; spilled rows first.
    pub fn write_snapshot(
        &self,
        format: SnapshotFormat,
        mut out: impl Write,
    ) -> Result<(), OutputError> {
        assert!(self.is_loaded(), "Table::load_all comes before a snapshot");
        let mut header = true;
        if let Some(closed) = &self.closed {
            if format == SnapshotFormat::Csv {
                write_csv_header(&mut out)?;
                header = false;
            }
            if !closed.file.buffer().is_empty() {
                return Err(OutputError::Io(io::Error::other(
                    "internal error: spilled rows not flushed before a snapshot",
                )));
            }
            let mut file = closed.file.get_ref();
            let end = file.stream_position()?;
            file.rewind()?;
            io::copy(&mut io::Read::take(file, end), &mut out)?;
            file.seek(io::SeekFrom::Start(end))?;
        }
        write_snapshot_rows(format, self.scale, self.rows.iter(), &mut out, header)?;
        out.flush()?;
        Ok(())
    }
}

fn undecodable(e: bincode::Error) -> OutputError {
    OutputError::Io(io::Error::other(format!(
        "a checkpointed window of the table does not decode: {e}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::decimal::Decimal;

    fn row(start: i64, key: &str, count: u64, sum: i128) -> AggRow {
        (
            (
                Window {
                    start,
                    end: start + 60_000,
                },
                key.into(),
            ),
            Agg {
                count,
                sum: Some(Decimal(sum)),
                min: Decimal(sum),
                max: Decimal(sum),
            },
        )
    }

    /// Writes the open epoch's changelog lines and ends it; returns the number of lines.
    fn close_epoch(table: &mut Table, epoch: u64, out: &mut Vec<u8>) -> usize {
        let lines = write_changelog(epoch, &table.changes(), table.scale(), out).unwrap();
        table.end_epoch();
        lines
    }

    /// A table resumed from saved rows writes the changelog and ends with the rows of one that
    /// held every row, whether changes touch a few windows (decoded one by one) or many (then
    /// all at once).
    #[test]
    fn a_table_of_saved_rows_changes_as_one_of_all_rows() {
        let rows: Rows = (0..200)
            .flat_map(|w| ["a", "b", "c"].map(|k| row(w * 60_000, k, 1, w as i128)))
            .collect();
        let mut eager = Table::with_rows(Scale::DEFAULT, rows.clone());
        let mut lazy = Table::with_saved(Scale::DEFAULT, SavedRows::of(&rows));
        let epochs: Vec<Vec<(AggRow, isize)>> = vec![
            // A few windows: one row changed, one removed, one added in a new window.
            vec![
                (row(60_000, "a", 1, 1), -1),
                (row(60_000, "a", 2, 5), 1),
                (row(120_000, "b", 1, 2), -1),
                (row(900 * 60_000, "z", 1, 9), 1),
            ],
            // Many windows: past the windows decoded one by one.
            (0..150)
                .flat_map(|w| {
                    let start = w * 60_000;
                    [
                        (row(start, "c", 1, w as i128), -1),
                        (row(start, "c", 3, 7), 1),
                    ]
                })
                .collect(),
            vec![
                (row(60_000, "a", 2, 5), -1),
                (row(30 * 60_000, "d", 1, 1), 1),
            ],
        ];
        for (epoch, changes) in epochs.into_iter().enumerate() {
            let (mut want, mut got) = (Vec::new(), Vec::new());
            eager
                .apply_epoch(epoch as u64, changes.clone(), &mut want)
                .unwrap();
            lazy.apply_epoch(epoch as u64, changes, &mut got).unwrap();
            assert_eq!(
                String::from_utf8(got).unwrap(),
                String::from_utf8(want).unwrap()
            );
        }
        lazy.load_all().unwrap();
        assert_eq!(lazy.rows(), eager.rows());
        assert_eq!(lazy.row_count(), eager.row_count());
    }

    #[test]
    fn changelog_lines_are_consolidated_and_ordered() {
        let mut table = Table::new(Scale::DEFAULT);
        let mut out = Vec::new();
        table
            .apply_epoch(
                0,
                vec![(row(0, "b", 1, 1), 1), (row(0, "a", 1, 2_500_000), 1)],
                &mut out,
            )
            .unwrap();
        let changes = vec![
            (row(0, "b", 1, 1), -1),
            (row(0, "b", 2, 2), 1),
            (row(0, "x", 1, 1), 1),
            (row(0, "x", 1, 1), -1),
        ];
        table.apply_epoch(1, changes, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(
            lines[0],
            r#"{"epoch":0,"diff":1,"window_start":"1970-01-01T00:00:00.000Z","window_end":"1970-01-01T00:01:00.000Z","key":"a","count":1,"sum":"2.5","min":"2.5","max":"2.5","mean":"2.5"}"#
        );
        assert!(lines[2].starts_with(r#"{"epoch":1,"diff":-1,"#));
        assert!(lines[3].contains(r#""key":"b","count":2,"sum":"0.000002""#));
        assert_eq!(table.rows().len(), 2);
    }

    #[test]
    fn changes_applied_as_they_arrive_write_only_the_net_change() {
        let mut table = Table::new(Scale::DEFAULT);
        let mut out = Vec::new();
        // Epoch 0: a row inserted and retracted within the epoch writes nothing.
        table.apply(0, row(0, "a", 1, 1), 1).unwrap();
        table.apply(0, row(0, "gone", 1, 1), 1).unwrap();
        table.apply(0, row(0, "gone", 1, 1), -1).unwrap();
        assert_eq!(close_epoch(&mut table, 0, &mut out), 1);
        // Epoch 1: "a" changes and changes back (nothing), "b" appears, "a" then changes.
        table.apply(1, row(0, "a", 1, 1), -1).unwrap();
        table.apply(1, row(0, "a", 2, 5), 1).unwrap();
        table.apply(1, row(0, "a", 2, 5), -1).unwrap();
        table.apply(1, row(0, "a", 1, 1), 1).unwrap();
        table.apply(1, row(0, "b", 1, 3), 1).unwrap();
        assert_eq!(close_epoch(&mut table, 1, &mut out), 1);
        table.apply(2, row(0, "a", 1, 1), -1).unwrap();
        table.apply(2, row(0, "a", 1, 2), 1).unwrap();
        assert_eq!(close_epoch(&mut table, 2, &mut out), 2);
        // Epoch 3 changes nothing and writes nothing.
        assert_eq!(close_epoch(&mut table, 3, &mut out), 0);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(
            lines[0].starts_with(r#"{"epoch":0,"diff":1,"#) && lines[0].contains(r#""key":"a""#)
        );
        assert!(
            lines[1].starts_with(r#"{"epoch":1,"diff":1,"#) && lines[1].contains(r#""key":"b""#)
        );
        assert!(
            lines[2].starts_with(r#"{"epoch":2,"diff":-1,"#)
                && lines[2].contains(r#""sum":"0.000001""#)
        );
        assert!(
            lines[3].starts_with(r#"{"epoch":2,"diff":1,"#)
                && lines[3].contains(r#""sum":"0.000002""#)
        );
        assert!(table.apply(4, row(0, "a", 1, 1), 1).is_err());
    }

    #[test]
    fn a_retraction_of_a_missing_row_is_an_internal_error() {
        let mut table = Table::new(Scale::DEFAULT);
        let err = table
            .apply_epoch(0, vec![(row(0, "a", 1, 1), -1)], &mut Vec::new())
            .unwrap_err();
        assert!(matches!(err, OutputError::Inconsistent { .. }));
    }

    #[test]
    fn csv_snapshot_quotes_keys() {
        let mut table = Table::new(Scale::DEFAULT);
        table
            .apply_epoch(0, vec![(row(0, "a,\"b\"", 1, 1), 1)], &mut Vec::new())
            .unwrap();
        let mut out = Vec::new();
        table.write_snapshot(SnapshotFormat::Csv, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "window_start,window_end,key,count,sum,min,max,mean\n\
             1970-01-01T00:00:00.000Z,1970-01-01T00:01:00.000Z,\"a,\"\"b\"\"\",1,0.000001,0.000001,0.000001,0.000001\n"
        );
    }
}
