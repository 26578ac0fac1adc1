//! Window digests that follow the table epoch by epoch, so that only changed windows are
//! re-hashed (docs/format.md, section 7).
//!
//! A [`DigestedTable`] is a [`Table`] with [`WindowDigests`] kept in step: each change marks
//! its window dirty with the least key changed since the digests were last remembered; an
//! epoch that began on an empty table marks every window. [`DigestedTable::digest`] re-hashes
//! only dirty windows, each from the checkpoint of its hash before the least key changed
//! ([`WindowMarks`]); the digests of windows that closed and spilled are kept, since their rows
//! left memory. [`DigestedTable::refresh_digests`] does the same after each epoch and says which
//! window digests changed: the lines of `digests_changelog.jsonl` ([`write_digest_changes`]).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Write};

use compact_str::CompactString;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::data::agg::AggRow;
use crate::data::decimal::Scale;
use crate::data::time::{Millis, format_millis};
use crate::data::window::Window;
use crate::output::OutputError;
use crate::output::rows::{SnapshotFormat, write_changelog};
use crate::output::table::{EpochChanges, Rows, Table};
use crate::proof::digest::{
    TableDigest, WindowDigest, WindowMarks, digest_table, digest_window, digest_windows,
    table_digest_from,
};

/// A window whose digest an epoch changed ([`DigestedTable::refresh_digests`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigestChange {
    /// The window.
    pub window: Window,
    /// Its digest before; `None` if it had no rows.
    pub old: Option<String>,
    /// Its digest now; `None` if it has no rows.
    pub new: Option<String>,
}

/// The digests of a table's windows as of the last time they were remembered, and what
/// changed since.
#[derive(Debug, Default)]
pub struct WindowDigests {
    /// The digest of each window held in memory, as remembered.
    remembered: BTreeMap<Window, WindowDigest>,
    /// Checkpoints of the remembered digests' hashes.
    marks: BTreeMap<Window, WindowMarks>,
    /// Windows changed since (unless `all_dirty`), each with the least key changed.
    dirty: BTreeMap<Window, CompactString>,
    /// Whether every window may have changed since (an epoch began on an empty table).
    all_dirty: bool,
    /// Digests of the windows that closed and left memory, in window order.
    closed: Vec<WindowDigest>,
    /// Checkpoints of the table digest's hash over the lines of `closed`, then `remembered`:
    /// the state before each key's line. One stays valid while no window before its key
    /// changes, so a change re-hashes the table's lines from the last checkpoint at or before
    /// the least window changed instead of from the first.
    table_marks: BTreeMap<Window, Sha256>,
}

impl WindowDigests {
    /// Notes a change of the row (`window`, `key`); `all` if the epoch began on an empty
    /// table, where changes are not tracked row by row.
    #[inline]
    fn mark(&mut self, window: Window, key: &CompactString, all: bool) {
        if all {
            self.all_dirty = true;
            return;
        }
        self.dirty
            .entry(window)
            .and_modify(|least| {
                if key < least {
                    *least = key.clone();
                }
            })
            .or_insert_with(|| key.clone());
    }

    /// Keeps the digests of `done`, rows of windows that closed, and forgets what was kept of
    /// their windows.
    fn close(&mut self, done: &Rows, scale: Scale) {
        let digests = digest_table(done, scale).windows;
        for digest in &digests {
            let window = window_of(digest);
            // A closed window moves from `remembered` to `closed`: the table's lines stay as
            // they were, unless its remembered digest was not current.
            if self.remembered.get(&window) != Some(digest) {
                self.changed_line(window);
            }
            self.remembered.remove(&window);
            self.marks.remove(&window);
            self.dirty.remove(&window);
        }
        self.closed.extend(digests);
    }

    /// Notes that the table digest's line of `window` changed (or appeared, or went): the
    /// checkpoints after it are stale.
    fn changed_line(&mut self, window: Window) {
        if self
            .table_marks
            .last_key_value()
            .is_some_and(|(last, _)| *last > window)
        {
            self.table_marks.retain(|key, _| *key <= window);
        }
    }

    /// The current digest of each of `windows` (`None` for a window without rows), each
    /// re-hashed from its checkpoint before the least key changed (from its first row if
    /// none is given), with its checkpoints now; many windows (a large epoch) are hashed on all
    /// cores.
    fn digests_of(
        &self,
        rows: &Rows,
        scale: Scale,
        windows: &[(Window, Option<CompactString>)],
    ) -> Vec<(Option<WindowDigest>, WindowMarks)> {
        let marks = &self.marks;
        let none = WindowMarks::default();
        let one = |(window, least): &(Window, Option<CompactString>)| {
            let window = *window;
            let rows_from = |from: Option<&CompactString>| {
                rows.range((window, from.cloned().unwrap_or_default())..)
                    .take_while(move |((w, _), _)| *w == window)
                    .map(|((_, key), agg)| (key, agg))
            };
            let marks = marks.get(&window).unwrap_or(&none);
            digest_window(window, marks, least.as_ref(), rows_from, scale)
        };
        crate::cores::map_on_all_cores(windows, 16, one)
    }
}

/// A table with its window digests kept in step.
#[derive(Debug)]
pub struct DigestedTable {
    table: Table,
    digests: WindowDigests,
}

impl DigestedTable {
    /// An empty table whose decimals print at `scale`.
    pub fn new(scale: Scale) -> Self {
        DigestedTable {
            table: Table::new(scale),
            digests: WindowDigests::default(),
        }
    }

    /// The table.
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// A table holding `rows` between two epochs (as a checkpoint saved it), with `windows`,
    /// the digests of its windows as [`DigestedTable::digest`] gave them then, remembered.
    pub fn with_rows(
        scale: Scale,
        rows: crate::output::table::Rows,
        windows: Vec<WindowDigest>,
    ) -> Self {
        let table = DigestedTable {
            table: Table::with_rows(scale, rows),
            digests: WindowDigests {
                remembered: windows.into_iter().map(|d| (window_of(&d), d)).collect(),
                ..WindowDigests::default()
            },
        };
        debug_assert!(
            table.digest() == digest_table(table.table.rows(), scale),
            "a checkpoint's window digests differ from its rows'"
        );
        table
    }

    /// A table holding the rows `saved` ([`Table::with_saved`]), with `windows`, the digests
    /// of its windows as [`DigestedTable::digest`] gave them then, remembered.
    pub fn with_saved(
        scale: Scale,
        saved: crate::output::saved_rows::SavedRows,
        windows: Vec<WindowDigest>,
    ) -> Self {
        DigestedTable {
            table: Table::with_saved(scale, saved),
            digests: WindowDigests {
                remembered: windows.into_iter().map(|d| (window_of(&d), d)).collect(),
                ..WindowDigests::default()
            },
        }
    }

    /// See [`Table::load_all`].
    pub fn load_all(&mut self) -> Result<(), OutputError> {
        self.table.load_all()
    }

    /// The digest of the table now, remembered: what a checkpoint saves beside the rows.
    pub fn current_digest(&mut self) -> TableDigest {
        let digest = self.digest();
        self.remember_digests(&digest);
        digest
    }

    /// See [`Table::spill_closed`].
    pub fn spill_closed(&mut self, file: File, format: SnapshotFormat) {
        self.table.spill_closed(file, format);
    }

    /// Applies one change of the open epoch `epoch`: `diff` is `-1` or `1`.
    #[inline]
    pub fn apply(&mut self, epoch: u64, row: AggRow, diff: isize) -> Result<(), OutputError> {
        let empty_before = self.table.empty_before();
        self.digests.mark(row.0.0, &row.0.1, empty_before);
        self.table.apply(epoch, row, diff)
    }

    /// The open epoch's net changes so far.
    pub fn changes(&self) -> EpochChanges<'_> {
        self.table.changes()
    }

    /// See [`Table::track_changes`].
    pub fn track_changes(&mut self) {
        self.table.track_changes();
    }

    /// See [`Table::checkpoint_changes`].
    pub fn checkpoint_changes(
        &mut self,
        incremental: bool,
    ) -> Option<Vec<(Window, CompactString)>> {
        self.table.checkpoint_changes(incremental)
    }

    /// Ends the open epoch.
    pub fn end_epoch(&mut self) {
        self.table.end_epoch();
    }

    /// Closes every window that ends at or before `horizon` ([`Table::close_windows`]),
    /// keeping the digests of those that leave memory. Call between epochs.
    pub fn close_windows(&mut self, horizon: Millis) -> Result<(), OutputError> {
        let done = self.table.close_windows(horizon)?;
        self.digests.close(&done, self.table.scale());
        Ok(())
    }

    /// Flushes spilled rows to their file; call before writing a snapshot.
    pub fn flush_closed(&mut self) -> Result<(), OutputError> {
        self.table.flush_closed()
    }

    /// Applies one whole epoch's changes ([`Table::apply_epoch`]), writes them as changelog
    /// lines to `out`, and ends the epoch; returns the number of lines.
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
        let lines = write_changelog(epoch, &self.changes(), self.table.scale(), out)?;
        self.end_epoch();
        Ok(lines)
    }

    /// Re-hashes the windows changed since the last call (or [`DigestedTable::remember_digests`]),
    /// remembers their digests, and returns the windows whose digest changed, in window
    /// order. Call between epochs to follow the digests epoch by epoch: each call reads only
    /// the rows of the windows changed.
    pub fn refresh_digests(&mut self) -> Vec<DigestChange> {
        // Every window changed is in memory: a change decodes its window's saved rows.
        let rows = self.table.loaded_rows();
        let digests = &mut self.digests;
        let windows: BTreeMap<Window, Option<CompactString>> = if digests.all_dirty {
            let mut all: BTreeMap<Window, Option<CompactString>> =
                digests.remembered.keys().map(|w| (*w, None)).collect();
            all.extend(rows.keys().map(|(window, _)| (*window, None)));
            all
        } else {
            std::mem::take(&mut digests.dirty)
                .into_iter()
                .map(|(window, least)| (window, Some(least)))
                .collect()
        };
        let windows: Vec<(Window, Option<CompactString>)> = windows.into_iter().collect();
        let hashed = digests.digests_of(rows, self.table.scale(), &windows);
        let mut changes = Vec::new();
        for ((window, _), (new, marks)) in windows.into_iter().zip(hashed) {
            let old = match &new {
                Some(digest) => {
                    digests.marks.insert(window, marks);
                    digests.remembered.insert(window, digest.clone())
                }
                None => {
                    digests.marks.remove(&window);
                    digests.remembered.remove(&window)
                }
            };
            if old != new {
                digests.changed_line(window);
                changes.push(DigestChange {
                    window,
                    old: old.map(|d| d.digest),
                    new: new.map(|d| d.digest),
                });
            }
        }
        digests.dirty.clear();
        digests.all_dirty = false;
        changes
    }

    /// The table's digests: closed windows' digests, the remembered digests of windows
    /// unchanged since [`DigestedTable::remember_digests`], and the changed windows re-hashed;
    /// other windows are not read. Call between epochs.
    pub fn digest(&self) -> TableDigest {
        // Every window changed is in memory: a change decodes its window's saved rows.
        let (rows, scale, digests) = (self.table.loaded_rows(), self.table.scale(), &self.digests);
        let closed = digests.closed.iter().cloned();
        let open = if digests.all_dirty {
            digest_table(rows, scale).windows
        } else {
            let mut open = digests.remembered.clone();
            let dirty: Vec<(Window, Option<CompactString>)> = digests
                .dirty
                .iter()
                .map(|(window, least)| (*window, Some(least.clone())))
                .collect();
            for ((window, _), (digest, _)) in
                dirty.iter().zip(digests.digests_of(rows, scale, &dirty))
            {
                match digest {
                    Some(digest) => open.insert(*window, digest),
                    None => open.remove(window),
                };
            }
            open.into_values().collect()
        };
        let digest = digest_windows(closed.chain(open).collect());
        debug_assert!(
            self.table.spills()
                || self.table.has_open_changes()
                || !self.table.is_loaded()
                || digest == digest_table(rows, scale),
            "incremental window digests differ from a recompute"
        );
        digest
    }

    /// The table digest from the remembered window digests: current right after
    /// [`DigestedTable::refresh_digests`]. Hashes the windows' lines from the last checkpoint
    /// still valid, and takes new checkpoints on the way.
    pub fn table_digest(&mut self) -> String {
        let WindowDigests {
            remembered,
            closed,
            table_marks,
            ..
        } = &mut self.digests;
        let (windows, start): (Box<dyn Iterator<Item = &WindowDigest>>, _) =
            match table_marks.last_key_value() {
                Some((from, state)) => {
                    let first_closed = closed.partition_point(|c| window_of(c) < *from);
                    let windows = closed[first_closed..]
                        .iter()
                        .chain(remembered.range(*from..).map(|(_, d)| d));
                    (Box::new(windows), state.clone())
                }
                None => (
                    Box::new(closed.iter().chain(remembered.values())),
                    Sha256::new(),
                ),
            };
        table_digest_from(start, windows, |window, state| {
            table_marks.insert(window_of(window), state.clone());
        })
    }

    /// Remembers the window digests of `digest` (from [`DigestedTable::digest`] since the last
    /// change), so that the next digest re-hashes only windows changed after this.
    pub fn remember_digests(&mut self, digest: &TableDigest) {
        let digests = &mut self.digests;
        digests.remembered = digest.windows[digests.closed.len()..]
            .iter()
            .map(|d| (window_of(d), d.clone()))
            .collect();
        // The checkpoints of windows changed since they were taken are stale, and so are the
        // table's after the least of them.
        if digests.all_dirty {
            digests.marks.clear();
            digests.table_marks.clear();
        }
        if let Some(least) = digests.dirty.keys().next() {
            let least = *least;
            digests.changed_line(least);
        }
        for window in digests.dirty.keys() {
            digests.marks.remove(window);
        }
        digests.dirty.clear();
        digests.all_dirty = false;
    }
}

/// The window a digest is of.
fn window_of(digest: &WindowDigest) -> Window {
    Window {
        start: digest.start,
        end: digest.end,
    }
}

/// A line of digests_changelog.jsonl.
#[derive(Serialize)]
struct DigestChangeOut<'a> {
    epoch: u64,
    window_start: String,
    window_end: String,
    old: Option<&'a str>,
    new: Option<&'a str>,
    /// The table digest after the epoch.
    table: &'a str,
}

/// Writes one line of `digests_changelog.jsonl` per window whose digest epoch `epoch`
/// changed, in window order, each with the table digest `table` after the epoch.
pub fn write_digest_changes(
    epoch: u64,
    changes: &[DigestChange],
    table: &str,
    out: &mut impl Write,
) -> io::Result<()> {
    for change in changes {
        let line = DigestChangeOut {
            epoch,
            window_start: format_millis(change.window.start),
            window_end: format_millis(change.window.end),
            old: change.old.as_deref(),
            new: change.new.as_deref(),
            table,
        };
        serde_json::to_writer(&mut *out, &line)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::agg::Agg;
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

    #[test]
    fn window_digests_follow_the_changes_of_each_epoch() {
        let mut table = DigestedTable::new(Scale::new(2).unwrap());
        let mut out = Vec::new();
        let epoch0 = vec![
            (row(0, "a", 1, 5), 1),
            (row(0, "b", 1, 7), 1),
            (row(60_000, "a", 1, 9), 1),
        ];
        table.apply_epoch(0, epoch0, &mut out).unwrap();
        assert_eq!(
            table.digest(),
            digest_table(table.table().rows(), table.table().scale())
        );
        let before = table.digest();
        table.remember_digests(&before);
        // Epoch 1 changes only the second window; the first window's digest stays.
        let epoch1 = vec![(row(60_000, "a", 1, 9), -1), (row(60_000, "a", 2, 10), 1)];
        table.apply_epoch(1, epoch1, &mut out).unwrap();
        let after = table.digest();
        assert_eq!(
            after,
            digest_table(table.table().rows(), table.table().scale())
        );
        assert_eq!(after.windows[0], before.windows[0]);
        assert_ne!(after.windows[1], before.windows[1]);
        // Epoch 2 empties the first window: its digest goes.
        let epoch2 = vec![(row(0, "a", 1, 5), -1), (row(0, "b", 1, 7), -1)];
        table.apply_epoch(2, epoch2, &mut out).unwrap();
        assert_eq!(table.digest().windows.len(), 1);
        assert_eq!(
            table.digest(),
            digest_table(table.table().rows(), table.table().scale())
        );
    }

    #[test]
    fn refreshed_digests_of_many_windows_equal_a_recompute() {
        let mut table = DigestedTable::new(Scale::DEFAULT);
        let mut out = Vec::new();
        // 40 windows (hashed on all cores), then an epoch that changes 30 of them and empties 5.
        let epoch0: Vec<_> = (0..40)
            .flat_map(|w| {
                [
                    (row(w * 60_000, "a", 1, w as i128), 1),
                    (row(w * 60_000, "b", 1, 1), 1),
                ]
            })
            .collect();
        table.apply_epoch(0, epoch0, &mut out).unwrap();
        let first = table.refresh_digests();
        assert_eq!(first.len(), 40);
        assert!(first.iter().all(|c| c.old.is_none() && c.new.is_some()));
        assert_eq!(
            table.digest(),
            digest_table(table.table().rows(), table.table().scale())
        );
        let mut epoch1 = Vec::new();
        for w in 0..30 {
            epoch1.push((row(w * 60_000, "a", 1, w as i128), -1));
            if w >= 5 {
                epoch1.push((row(w * 60_000, "a", 2, w as i128 + 1), 1));
            } else {
                epoch1.push((row(w * 60_000, "b", 1, 1), -1));
            }
        }
        table.apply_epoch(1, epoch1, &mut out).unwrap();
        let second = table.refresh_digests();
        assert_eq!(second.len(), 30);
        assert_eq!(second.iter().filter(|c| c.new.is_none()).count(), 5);
        assert_eq!(
            table.digest(),
            digest_table(table.table().rows(), table.table().scale())
        );
        assert_eq!(
            table.table_digest(),
            digest_table(table.table().rows(), table.table().scale()).table
        );
    }

    /// Epoch `e`'s changes to the rows `current` (by window and key index), each (window,
    /// key, op) taken once and none in a window before `first_open`: the row's old value
    /// retracted, and with an op above 0 a new value inserted.
    fn epoch_changes(
        current: &mut BTreeMap<(usize, usize), i128>,
        changes: &[(usize, usize, u8)],
        e: usize,
        first_open: usize,
        key: impl Fn(usize) -> String,
    ) -> Vec<(AggRow, isize)> {
        let mut epoch = Vec::new();
        let mut touched = std::collections::BTreeSet::new();
        for &(w, k, op) in changes {
            if w < first_open || !touched.insert((w, k)) {
                continue;
            }
            let start = w as i64 * 60_000;
            if let Some(old) = current.remove(&(w, k)) {
                epoch.push((row(start, &key(k), 1, old), -1));
            }
            if op > 0 {
                let value = (e * 7 + k) as i128;
                current.insert((w, k), value);
                epoch.push((row(start, &key(k), 1, value), 1));
            }
        }
        epoch
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Windows of up to ~1,600 rows (several hash checkpoints each), changed epoch by
        /// epoch at random keys (inserts, updates, deletes, whole windows emptied, some epochs
        /// after a snapshot's digests were remembered): every refresh equals a recompute.
        #[test]
        fn digests_refreshed_from_checkpoints_equal_a_recompute(
            sizes in proptest::collection::vec(0usize..1_600, 1..4),
            epochs in proptest::collection::vec(
                (
                    proptest::collection::vec((0usize..4, 0usize..1_700, 0u8..3), 1..40),
                    proptest::bool::ANY,
                ),
                1..6,
            ),
        ) {
            let key = |k: usize| format!("k{k:05}");
            let mut table = DigestedTable::new(Scale::DEFAULT);
            let mut current: BTreeMap<(usize, usize), i128> = BTreeMap::new();
            let mut epoch0 = Vec::new();
            for (w, &n) in sizes.iter().enumerate() {
                for k in 0..n {
                    current.insert((w, k), k as i128);
                    epoch0.push((row(w as i64 * 60_000, &key(k), 1, k as i128), 1));
                }
            }
            let mut out = Vec::new();
            table.apply_epoch(0, epoch0, &mut out).unwrap();
            table.refresh_digests();
            let expected = digest_table(table.table().rows(), table.table().scale());
            proptest::prop_assert_eq!(table.table_digest(), expected.table.clone());
            for (e, (changes, remember)) in epochs.iter().enumerate() {
                let epoch = epoch_changes(&mut current, changes, e, 0, key);
                table.apply_epoch(e as u64 + 1, epoch, &mut out).unwrap();
                let expected = digest_table(table.table().rows(), table.table().scale());
                if *remember {
                    let digest = table.digest();
                    proptest::prop_assert_eq!(&digest, &expected);
                    table.remember_digests(&digest);
                } else {
                    table.refresh_digests();
                }
                proptest::prop_assert_eq!(table.table_digest(), expected.table.clone());
            }
        }

        /// Many small windows (several checkpoints of the table digest's hash), changed
        /// epoch by epoch, some epochs after a snapshot's digests were remembered, and the
        /// earliest windows closing and leaving memory now and then: the table digest after
        /// every epoch equals a recompute over every row, closed or not.
        #[test]
        fn table_digests_hashed_from_checkpoints_equal_a_recompute(
            windows in 1usize..200,
            epochs in proptest::collection::vec(
                (
                    proptest::collection::vec((0usize..200, 0usize..4, 0u8..3), 1..12),
                    0u8..4,
                ),
                1..12,
            ),
        ) {
            let key = |k: usize| format!("k{k}");
            let path = std::env::temp_dir().join(format!(
                "amend-table-marks-{}-{windows}-{}",
                std::process::id(),
                epochs.len()
            ));
            let mut table = DigestedTable::new(Scale::DEFAULT);
            table.spill_closed(File::create(&path).unwrap(), SnapshotFormat::JsonLines);
            let _ = std::fs::remove_file(&path);
            let mut current: BTreeMap<(usize, usize), i128> = BTreeMap::new();
            let epoch0: Vec<_> = (0..windows)
                .map(|w| {
                    current.insert((w, 0), w as i128);
                    (row(w as i64 * 60_000, &key(0), 1, w as i128), 1)
                })
                .collect();
            let mut out = Vec::new();
            table.apply_epoch(0, epoch0, &mut out).unwrap();
            table.refresh_digests();
            let mut first_open = 0;
            for (e, (changes, what)) in epochs.iter().enumerate() {
                // Closed windows no longer change.
                let epoch = epoch_changes(&mut current, changes, e, first_open, key);
                table.apply_epoch(e as u64 + 1, epoch, &mut out).unwrap();
                if *what == 0 {
                    let digest = table.digest();
                    table.remember_digests(&digest);
                } else {
                    table.refresh_digests();
                }
                let all: Rows = current
                    .iter()
                    .map(|(&(w, k), &v)| row(w as i64 * 60_000, &key(k), 1, v))
                    .collect();
                let expected = digest_table(&all, table.table().scale());
                proptest::prop_assert_eq!(table.table_digest(), expected.table);
                if *what == 3 {
                    first_open += 1 + e % 7;
                    table.close_windows(first_open as i64 * 60_000).unwrap();
                }
            }
        }
    }
}
