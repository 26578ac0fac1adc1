//! Sinks: the aggregate table as a changelog, a snapshot, digests; dead letters.
//!
//! A [`Table`] is the materialized aggregate table outside the dataflow. It takes the open
//! epoch's row changes as they arrive ([`Table::apply`]), checking that every retraction
//! removes a row that is there, and when the epoch closes ([`Table::close_epoch`]) writes its
//! net changes as changelog lines: retractions first, then insertions, each in
//! (window_start, window_end, key) order, so output is byte-identical for any worker count and
//! the changelog replays to the table exactly.
//!
//! Decimals are written canonically as JSON strings; times as RFC 3339 UTC with milliseconds.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Seek, Write};

use compact_str::CompactString;
use serde::Serialize;

use crate::aggregate::{Agg, AggRow};
use crate::decimal::{Decimal, Scale};
use crate::digest::{
    TableDigest, WindowDigest, WindowMarks, digest_table, digest_window, digest_windows,
    table_digest,
};
use crate::estimate::Estimate;
use crate::event::DeadLetter;
use crate::time::{Millis, format_millis};
use crate::window::Window;

/// Why an aggregate row cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// A sum beyond 128-bit fixed point.
    #[error("the sum of window {start} key `{key}` does not fit 128-bit fixed point at this scale")]
    Overflow {
        /// Window start, RFC 3339.
        start: String,
        /// The key.
        key: String,
    },
    /// A change that does not apply: an internal error, never a data error.
    #[error("internal error: epoch {epoch} {what} row window {start} key `{key}`")]
    Inconsistent {
        /// The epoch.
        epoch: u64,
        /// What went wrong.
        what: &'static str,
        /// Window start, RFC 3339.
        start: String,
        /// The key.
        key: String,
    },
    /// Writing failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// The snapshot file formats.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SnapshotFormat {
    /// `snapshot.jsonl`.
    JsonLines,
    /// `snapshot.csv` with a header row.
    Csv,
}

impl SnapshotFormat {
    /// The snapshot's file name.
    pub fn file_name(self) -> &'static str {
        match self {
            SnapshotFormat::JsonLines => "snapshot.jsonl",
            SnapshotFormat::Csv => "snapshot.csv",
        }
    }
}

/// The aggregate table, as the changelog builds it.
///
/// Changes of the open epoch are applied as they arrive ([`Table::apply`]), each checked: a
/// retraction must remove the row that is there, an insertion must not find one. The first
/// change of a row in an epoch records the row as it was before the epoch, so closing the
/// epoch ([`Table::close_epoch`]) writes exactly the net change of each row; while the table
/// was empty at the epoch's start, nothing needs recording and every row is an insertion.
#[derive(Debug)]
pub struct Table {
    rows: BTreeMap<(Window, CompactString), Agg>,
    scale: Scale,
    /// Rows changed in the open epoch, with their value before it.
    before: BTreeMap<(Window, CompactString), Option<Agg>>,
    /// Whether the table was empty when the open epoch began.
    empty_before: bool,
    /// Rows of closed windows, moved out of memory.
    closed: Option<Closed>,
    /// The digest of each window held in memory, as of the last [`Table::remember_digests`].
    window_digests: BTreeMap<Window, WindowDigest>,
    /// Checkpoints of the remembered window digests' hashes.
    window_marks: BTreeMap<Window, WindowMarks>,
    /// Windows changed since then (unless `all_dirty`), each with the least key changed.
    dirty: BTreeMap<Window, CompactString>,
    /// Whether every window may have changed since (an epoch began on an empty table).
    all_dirty: bool,
    /// Whether the open epoch has changed the table yet.
    changed: bool,
}

/// One row's net change in an epoch: the row, its value before, its value after.
pub type RowChange<'a> = (
    &'a (Window, CompactString),
    Option<&'a Agg>,
    Option<&'a Agg>,
);

/// A window whose digest an epoch changed ([`Table::refresh_digests`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigestChange {
    /// The window.
    pub window: Window,
    /// Its digest before; `None` if it had no rows.
    pub old: Option<String>,
    /// Its digest now; `None` if it has no rows.
    pub new: Option<String>,
}

/// Rows of windows that can no longer change, kept in a file in the snapshot's format, with
/// their window digests. Windows close in start order, so the file stays sorted and precedes
/// every open row.
#[derive(Debug)]
struct Closed {
    file: BufWriter<File>,
    format: SnapshotFormat,
    windows: Vec<WindowDigest>,
    rows: u64,
    /// The greatest closed window, which every later one must follow.
    last: Option<Window>,
}

impl Table {
    /// An empty table whose decimals print at `scale`.
    pub fn new(scale: Scale) -> Self {
        Table {
            rows: BTreeMap::new(),
            scale,
            before: BTreeMap::new(),
            empty_before: true,
            closed: None,
            window_digests: BTreeMap::new(),
            window_marks: BTreeMap::new(),
            dirty: BTreeMap::new(),
            all_dirty: false,
            changed: false,
        }
    }

    /// Moves the rows of closed windows ([`Table::close_windows`]) into `file`, an anonymous
    /// temporary file, in the snapshot's `format`, instead of keeping them in memory.
    pub fn spill_closed(&mut self, file: File, format: SnapshotFormat) {
        self.closed = Some(Closed {
            file: BufWriter::with_capacity(1 << 20, file),
            format,
            windows: Vec::new(),
            rows: 0,
            last: None,
        });
    }

    /// The rows held in memory, in (window, key) order: all rows, unless closed ones spill.
    pub fn rows(&self) -> &BTreeMap<(Window, CompactString), Agg> {
        &self.rows
    }

    /// The number of rows, spilled ones included.
    pub fn row_count(&self) -> u64 {
        self.rows.len() as u64 + self.closed.as_ref().map_or(0, |c| c.rows)
    }

    /// Closes every window that ends at or before `horizon`: its rows can no longer change.
    /// If closed rows spill, they move out of memory (with their window digests kept); it is
    /// an error for a later change to touch them. Call between epochs.
    pub fn close_windows(&mut self, horizon: Millis) -> Result<(), SinkError> {
        let Some(closed) = &mut self.closed else {
            return Ok(());
        };
        let first_open = self
            .rows
            .keys()
            .position(|(window, _)| window.end > horizon)
            .unwrap_or(self.rows.len());
        if first_open == 0 {
            return Ok(());
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
            return Err(SinkError::Inconsistent {
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
        let digests = digest_table(&done, self.scale).windows;
        for digest in &digests {
            self.window_digests.remove(&window_of(digest));
            self.window_marks.remove(&window_of(digest));
            self.dirty.remove(&window_of(digest));
        }
        closed.windows.extend(digests);
        closed.rows += done.len() as u64;
        closed.last = last;
        self.empty_before = self.rows.is_empty();
        Ok(())
    }

    /// Applies one change of the open epoch `epoch`: `diff` is `-1` or `1`.
    pub fn apply(&mut self, epoch: u64, row: AggRow, diff: isize) -> Result<(), SinkError> {
        let ((window, key), agg) = row;
        let inconsistent = |what, window: &Window, key: &str| SinkError::Inconsistent {
            epoch,
            what,
            start: format_millis(window.start),
            key: key.to_owned(),
        };
        let entry = (window, key);
        self.changed = true;
        if !self.empty_before {
            self.dirty
                .entry(window)
                .and_modify(|least| {
                    if entry.1 < *least {
                        *least = entry.1.clone();
                    }
                })
                .or_insert_with(|| entry.1.clone());
        }
        match diff {
            -1 => {
                if self.rows.get(&entry) != Some(&agg) {
                    return Err(inconsistent("retracts a missing", &entry.0, &entry.1));
                }
                self.rows.remove(&entry);
                if !self.empty_before {
                    self.before.entry(entry).or_insert(Some(agg));
                }
            }
            1 => {
                if self.rows.contains_key(&entry) {
                    return Err(inconsistent("inserts a second", &entry.0, &entry.1));
                }
                if !self.empty_before {
                    self.before.entry(entry.clone()).or_insert(None);
                }
                self.rows.insert(entry, agg);
            }
            _ => return Err(inconsistent("changes by more than one", &entry.0, &entry.1)),
        }
        Ok(())
    }

    /// Closes the open epoch: writes its net changes as changelog lines to `out`, retractions
    /// first, then insertions, each in (window, key) order. Rows that ended as they began
    /// write nothing. Returns the number of lines.
    pub fn close_epoch(&mut self, epoch: u64, out: &mut impl Write) -> Result<usize, SinkError> {
        let lines = if self.empty_before {
            write_rows(
                out,
                self.scale,
                self.rows.iter().map(|row| (row, Some((epoch, 1)))),
            )?;
            self.rows.len()
        } else {
            let before = std::mem::take(&mut self.before);
            let retractions: Vec<_> = before
                .iter()
                .filter_map(|(entry, old)| {
                    let old = old.as_ref()?;
                    (self.rows.get(entry) != Some(old)).then_some((entry, old))
                })
                .collect();
            let insertions: Vec<_> = before
                .iter()
                .filter_map(|(entry, old)| {
                    let new = self.rows.get(entry)?;
                    (old.as_ref() != Some(new)).then_some((entry, new))
                })
                .collect();
            let change = |diff| move |row| (row, Some((epoch, diff)));
            let lines = retractions.iter().copied().map(change(-1));
            write_rows(
                out,
                self.scale,
                lines.chain(insertions.iter().copied().map(change(1))),
            )?;
            retractions.len() + insertions.len()
        };
        // An epoch that began on an empty table did not track the windows it touched.
        self.all_dirty |= self.empty_before && self.changed;
        self.empty_before = self.rows.is_empty();
        self.changed = false;
        Ok(lines)
    }

    /// The open epoch's net changes so far, in (window, key) order: each changed row with its
    /// value before the epoch and now (`None` where it had or has no row). Call before
    /// [`Table::close_epoch`].
    pub fn open_changes(&self) -> Vec<RowChange<'_>> {
        if self.empty_before {
            return self
                .rows
                .iter()
                .map(|(row, new)| (row, None, Some(new)))
                .collect();
        }
        self.before
            .iter()
            .filter_map(|(row, old)| {
                let new = self.rows.get(row);
                (old.as_ref() != new).then_some((row, old.as_ref(), new))
            })
            .collect()
    }

    /// Re-hashes the windows changed since the last call (or [`Table::remember_digests`]),
    /// remembers their digests, and returns the windows whose digest changed, in window
    /// order. Call between epochs, after [`Table::close_epoch`], to follow the digests epoch by
    /// epoch: each call reads only the rows of the windows changed.
    pub fn refresh_digests(&mut self) -> Vec<DigestChange> {
        let windows: BTreeMap<Window, Option<CompactString>> = if self.all_dirty {
            let mut all: BTreeMap<Window, Option<CompactString>> =
                self.window_digests.keys().map(|w| (*w, None)).collect();
            all.extend(self.rows.keys().map(|(window, _)| (*window, None)));
            all
        } else {
            std::mem::take(&mut self.dirty)
                .into_iter()
                .map(|(window, least)| (window, Some(least)))
                .collect()
        };
        let windows: Vec<(Window, Option<CompactString>)> = windows.into_iter().collect();
        let digests = self.window_digests_of(&windows);
        let mut changes = Vec::new();
        for ((window, _), (new, marks)) in windows.into_iter().zip(digests) {
            let old = match &new {
                Some(digest) => {
                    self.window_marks.insert(window, marks);
                    self.window_digests.insert(window, digest.clone())
                }
                None => {
                    self.window_marks.remove(&window);
                    self.window_digests.remove(&window)
                }
            };
            if old != new {
                changes.push(DigestChange {
                    window,
                    old: old.map(|d| d.digest),
                    new: new.map(|d| d.digest),
                });
            }
        }
        self.dirty.clear();
        self.all_dirty = false;
        changes
    }

    /// The current digest of each of `windows` (`None` for a window without rows), each
    /// re-hashed from its checkpoint before the least key changed (from its first row if
    /// none is given), with its checkpoints now; many windows (a large epoch) are hashed on all
    /// cores.
    fn window_digests_of(
        &self,
        windows: &[(Window, Option<CompactString>)],
    ) -> Vec<(Option<WindowDigest>, WindowMarks)> {
        let (rows, marks, scale) = (&self.rows, &self.window_marks, self.scale);
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
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        if windows.len() < 16 || threads == 1 {
            return windows.iter().map(one).collect();
        }
        let part = windows.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let handles: Vec<_> = windows
                .chunks(part)
                .map(|chunk| scope.spawn(move || chunk.iter().map(one).collect::<Vec<_>>()))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("hashing rows does not panic"))
                .collect()
        })
    }

    /// Whether changes of the open epoch have been applied: then the rows are not those of
    /// an epoch boundary, and no snapshot should be written from them.
    pub fn has_open_changes(&self) -> bool {
        self.changed
    }

    /// Applies one whole epoch's changes and writes them as changelog lines to `out`.
    ///
    /// `changes` may hold several updates of one row in any order; they are consolidated
    /// first, and rows whose changes cancel write nothing.
    pub fn apply_epoch(
        &mut self,
        epoch: u64,
        mut changes: Vec<(AggRow, isize)>,
        out: &mut impl Write,
    ) -> Result<usize, SinkError> {
        differential_dataflow::consolidation::consolidate(&mut changes);
        let (retractions, insertions): (Vec<_>, Vec<_>) =
            changes.into_iter().partition(|(_, diff)| *diff < 0);
        for (row, diff) in retractions.into_iter().chain(insertions) {
            let unit = diff.signum();
            for _ in 0..diff.unsigned_abs() {
                self.apply(epoch, row.clone(), unit)?;
            }
        }
        self.close_epoch(epoch, out)
    }

    /// Flushes spilled rows to their file; call before [`Table::write_snapshot`].
    pub fn flush_closed(&mut self) -> Result<(), SinkError> {
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
    ) -> Result<(), SinkError> {
        let mut header = true;
        if let Some(closed) = &self.closed {
            if format == SnapshotFormat::Csv {
                write_csv_header(&mut out)?;
                header = false;
            }
            if !closed.file.buffer().is_empty() {
                return Err(SinkError::Io(io::Error::other(
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

    /// The table's digests: closed windows' digests, the remembered digests of windows
    /// unchanged since [`Table::remember_digests`], and the changed windows re-hashed; other
    /// windows are not read. Call between epochs.
    pub fn digest(&self) -> TableDigest {
        let closed = self.closed.iter().flat_map(|c| c.windows.iter().cloned());
        let open = if self.all_dirty {
            digest_table(&self.rows, self.scale).windows
        } else {
            let mut open = self.window_digests.clone();
            let dirty: Vec<(Window, Option<CompactString>)> = self
                .dirty
                .iter()
                .map(|(window, least)| (*window, Some(least.clone())))
                .collect();
            for ((window, _), (digest, _)) in dirty.iter().zip(self.window_digests_of(&dirty)) {
                match digest {
                    Some(digest) => open.insert(*window, digest),
                    None => open.remove(window),
                };
            }
            open.into_values().collect()
        };
        let digest = digest_windows(closed.chain(open).collect());
        debug_assert!(
            self.closed.is_some() || self.changed || digest == digest_table(&self.rows, self.scale),
            "incremental window digests differ from a recompute"
        );
        digest
    }

    /// The table digest from the remembered window digests: current right after
    /// [`Table::refresh_digests`], without copying the window list.
    pub fn table_digest(&self) -> String {
        let closed = self.closed.iter().flat_map(|c| c.windows.iter());
        table_digest(closed.chain(self.window_digests.values()))
    }

    /// Remembers the window digests of `digest` (from [`Table::digest`] since the last
    /// change), so that the next digest re-hashes only windows changed after this.
    pub fn remember_digests(&mut self, digest: &TableDigest) {
        let closed = self.closed.as_ref().map_or(0, |c| c.windows.len());
        self.window_digests = digest.windows[closed..]
            .iter()
            .map(|d| (window_of(d), d.clone()))
            .collect();
        // The checkpoints of windows changed since they were taken are stale.
        if self.all_dirty {
            self.window_marks.clear();
        }
        for window in self.dirty.keys() {
            self.window_marks.remove(window);
        }
        self.dirty.clear();
        self.all_dirty = false;
    }
}

/// The window a digest is of.
fn window_of(digest: &WindowDigest) -> Window {
    Window {
        start: digest.start,
        end: digest.end,
    }
}

fn write_csv_header(out: &mut impl Write) -> Result<(), SinkError> {
    out.write_all(b"window_start,window_end,key,count,sum,min,max,mean\n")?;
    Ok(())
}

/// Writes snapshot rows in `format` (with the CSV header if `header`).
fn write_snapshot_rows<'a>(
    format: SnapshotFormat,
    scale: Scale,
    rows: impl Iterator<Item = (&'a (Window, CompactString), &'a Agg)>,
    out: &mut impl Write,
    header: bool,
) -> Result<(), SinkError> {
    match format {
        SnapshotFormat::JsonLines => write_rows(out, scale, rows.map(|row| (row, None))),
        SnapshotFormat::Csv => {
            if header {
                write_csv_header(out)?;
            }
            let mut csv = csv::Writer::from_writer(out);
            let mut writer = RowWriter::new(scale);
            for ((window, key), agg) in rows {
                let row = writer.fields(window, key, agg)?;
                csv.write_record([
                    row.start,
                    row.end,
                    key,
                    &agg.count.to_string(),
                    &row.sum.to_canonical(scale),
                    &agg.min.to_canonical(scale),
                    &agg.max.to_canonical(scale),
                    &row.mean.to_canonical(scale),
                ])
                .map_err(csv_error)?;
            }
            csv.flush()?;
            Ok(())
        }
    }
}

/// Writes rows as JSON lines (changelog lines where a change is given), formatting blocks of
/// rows on all cores and writing them in order: at the end of a large epoch the workers are
/// idle, and formatting would otherwise be a serial tail.
fn write_rows<'a, R>(
    out: &mut impl Write,
    scale: Scale,
    rows: impl Iterator<Item = (R, Option<(u64, i8)>)>,
) -> Result<(), SinkError>
where
    R: RowRef<'a>,
{
    const BLOCK: usize = 1 << 15;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Few rows (a small epoch's changes) are formatted here: starting threads costs more.
    const FEW: usize = 1 << 10;
    let mut rows = rows.peekable();
    // Blocks are formatted on all cores while this thread writes the block before: writing
    // (the kernel copying into the page cache) and formatting overlap.
    let mut formatted: Vec<Result<Vec<u8>, SinkError>> = Vec::new();
    loop {
        let block: Vec<_> = rows.by_ref().take(BLOCK).collect();
        if formatted.is_empty() && (threads == 1 || block.len() < FEW) {
            let mut writer = RowWriter::new(scale);
            for (row, change) in &block {
                let (window, key, agg) = row.parts();
                writer.write(out, *change, window, key, agg)?;
            }
            if rows.peek().is_none() {
                return Ok(());
            }
            continue;
        }
        let part = block.len().div_ceil(threads).max(1);
        let written = std::thread::scope(|scope| -> Result<_, SinkError> {
            let handles: Vec<_> = block
                .chunks(part)
                .map(|chunk| {
                    scope.spawn(move || -> Result<Vec<u8>, SinkError> {
                        let mut text = Vec::with_capacity(chunk.len() * 200);
                        let mut writer = RowWriter::new(scale);
                        for (row, change) in chunk {
                            let (window, key, agg) = row.parts();
                            writer.write(&mut text, *change, window, key, agg)?;
                        }
                        Ok(text)
                    })
                })
                .collect();
            for text in formatted.drain(..) {
                out.write_all(&text?)?;
            }
            Ok(handles
                .into_iter()
                .map(|h| h.join().expect("formatting rows does not panic"))
                .collect())
        });
        formatted = written?;
        if block.is_empty() {
            return Ok(());
        }
    }
}

/// A borrowed aggregate row, however it is stored.
trait RowRef<'a>: Copy + Send + Sync {
    fn parts(self) -> (&'a Window, &'a str, &'a Agg);
}

impl<'a> RowRef<'a> for &'a AggRow {
    fn parts(self) -> (&'a Window, &'a str, &'a Agg) {
        (&self.0.0, &self.0.1, &self.1)
    }
}

impl<'a> RowRef<'a> for (&'a (Window, CompactString), &'a Agg) {
    fn parts(self) -> (&'a Window, &'a str, &'a Agg) {
        (&self.0.0, &self.0.1, self.1)
    }
}

/// Formats changelog and snapshot rows without building them in memory; rows come in window
/// order, so the last window's RFC 3339 bounds are formatted once and reused.
struct RowWriter {
    scale: Scale,
    window: Option<(Window, String, String)>,
    /// The line being formatted, kept to reuse its allocation.
    line: Vec<u8>,
}

impl RowWriter {
    fn new(scale: Scale) -> Self {
        RowWriter {
            scale,
            window: None,
            line: Vec::with_capacity(256),
        }
    }

    /// The parts of a row that are computed or checked rather than copied: the window's
    /// bounds as text (reused while rows stay in one window), and the sum and mean, which
    /// fail if the sum does not fit 128-bit fixed point.
    fn fields(
        &mut self,
        window: &Window,
        key: &str,
        agg: &Agg,
    ) -> Result<RowFields<'_>, SinkError> {
        let overflow = || SinkError::Overflow {
            start: format_millis(window.start),
            key: key.to_owned(),
        };
        let (sum, mean) = (
            agg.sum.ok_or_else(overflow)?,
            agg.mean().ok_or_else(overflow)?,
        );
        if self.window.as_ref().is_none_or(|(w, _, _)| w != window) {
            self.window = Some((
                *window,
                format_millis(window.start),
                format_millis(window.end),
            ));
        }
        let (_, start, end) = self.window.as_ref().expect("set above");
        Ok(RowFields {
            start,
            end,
            sum,
            mean,
        })
    }

    /// Writes one JSON line: a changelog line if `change` is given, else a snapshot row.
    fn write(
        &mut self,
        out: &mut impl Write,
        change: Option<(u64, i8)>,
        window: &Window,
        key: &str,
        agg: &Agg,
    ) -> Result<(), SinkError> {
        let scale = self.scale;
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        let RowFields {
            start,
            end,
            sum,
            mean,
        } = self.fields(window, key, agg)?;
        let mut number = itoa::Buffer::new();
        if let Some((epoch, diff)) = change {
            line.extend_from_slice(b"{\"epoch\":");
            line.extend_from_slice(number.format(epoch).as_bytes());
            line.extend_from_slice(b",\"diff\":");
            line.extend_from_slice(number.format(diff).as_bytes());
            line.push(b',');
        } else {
            line.push(b'{');
        }
        line.extend_from_slice(b"\"window_start\":\"");
        line.extend_from_slice(start.as_bytes());
        line.extend_from_slice(b"\",\"window_end\":\"");
        line.extend_from_slice(end.as_bytes());
        line.extend_from_slice(b"\",\"key\":");
        write_json_string(&mut line, key)?;
        line.extend_from_slice(b",\"count\":");
        line.extend_from_slice(number.format(agg.count).as_bytes());
        for (name, value) in [
            (&b",\"sum\":\""[..], sum),
            (b"\",\"min\":\"", agg.min),
            (b"\",\"max\":\"", agg.max),
            (b"\",\"mean\":\"", mean),
        ] {
            line.extend_from_slice(name);
            value.write_canonical(scale, &mut line);
        }
        line.extend_from_slice(b"\"}\n");
        let written = out.write_all(&line);
        self.line = line;
        Ok(written?)
    }
}

/// Writes `text` as a JSON string; most keys need no escaping and are copied as they are.
fn write_json_string(out: &mut impl Write, text: &str) -> io::Result<()> {
    if text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.write_all(b"\"")?;
        out.write_all(text.as_bytes())?;
        out.write_all(b"\"")
    } else {
        serde_json::to_writer(out, text).map_err(io::Error::from)
    }
}

/// See [`RowWriter::fields`].
struct RowFields<'w> {
    start: &'w str,
    end: &'w str,
    sum: Decimal,
    mean: Decimal,
}

fn csv_error(error: csv::Error) -> SinkError {
    SinkError::Io(io::Error::other(error))
}

/// Writes estimated rows as JSON lines, in (window, key) order: the snapshot's fields, and
/// `"estimate"` naming how they were estimated.
pub fn write_estimates(
    rows: &BTreeMap<(Window, CompactString), Estimate>,
    how: &str,
    scale: Scale,
    out: &mut impl Write,
) -> io::Result<()> {
    for ((window, key), e) in rows {
        write!(
            out,
            "{{\"window_start\":\"{}\",\"window_end\":\"{}\",\"key\":",
            format_millis(window.start),
            format_millis(window.end)
        )?;
        serde_json::to_writer(&mut *out, key)?;
        writeln!(
            out,
            ",\"estimate\":\"{how}\",\"count\":{},\"sum\":\"{}\",\"min\":\"{}\",\"max\":\"{}\",\"mean\":\"{}\"}}",
            e.count,
            e.sum.display(scale),
            e.min.display(scale),
            e.max.display(scale),
            e.mean.display(scale),
        )?;
    }
    Ok(())
}

/// The dead-letter line form.
#[derive(Debug, Serialize)]
struct DeadLetterOut<'a> {
    source: &'a str,
    epoch: u64,
    offset: u64,
    line: u64,
    reason: &'a str,
    raw: &'a str,
}

/// Writes one dead letter as a JSON line.
pub fn write_dead_letter(dead: &DeadLetter, out: &mut impl Write) -> io::Result<()> {
    let line = DeadLetterOut {
        source: &dead.source,
        epoch: dead.position.epoch,
        offset: dead.position.offset,
        line: dead.line,
        reason: &dead.reason,
        raw: &dead.raw,
    };
    serde_json::to_writer(&mut *out, &line)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decimal::Decimal;

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
        let mut table = Table::new(Scale::new(2).unwrap());
        let mut out = Vec::new();
        let epoch0 = vec![
            (row(0, "a", 1, 5), 1),
            (row(0, "b", 1, 7), 1),
            (row(60_000, "a", 1, 9), 1),
        ];
        table.apply_epoch(0, epoch0, &mut out).unwrap();
        assert_eq!(table.digest(), digest_table(table.rows(), table.scale));
        let before = table.digest();
        table.remember_digests(&before);
        // Epoch 1 changes only the second window; the first window's digest stays.
        let epoch1 = vec![(row(60_000, "a", 1, 9), -1), (row(60_000, "a", 2, 10), 1)];
        table.apply_epoch(1, epoch1, &mut out).unwrap();
        let after = table.digest();
        assert_eq!(after, digest_table(table.rows(), table.scale));
        assert_eq!(after.windows[0], before.windows[0]);
        assert_ne!(after.windows[1], before.windows[1]);
        // Epoch 2 empties the first window: its digest goes.
        let epoch2 = vec![(row(0, "a", 1, 5), -1), (row(0, "b", 1, 7), -1)];
        table.apply_epoch(2, epoch2, &mut out).unwrap();
        assert_eq!(table.digest().windows.len(), 1);
        assert_eq!(table.digest(), digest_table(table.rows(), table.scale));
    }

    #[test]
    fn refreshed_digests_of_many_windows_equal_a_recompute() {
        let mut table = Table::new(Scale::DEFAULT);
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
        assert_eq!(table.digest(), digest_table(table.rows(), table.scale));
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
        assert_eq!(table.digest(), digest_table(table.rows(), table.scale));
        assert_eq!(
            table.table_digest(),
            digest_table(table.rows(), table.scale).table
        );
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
            let mut table = Table::new(Scale::DEFAULT);
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
            let expected = digest_table(table.rows(), table.scale);
            proptest::prop_assert_eq!(table.table_digest(), expected.table.clone());
            for (e, (changes, remember)) in epochs.iter().enumerate() {
                let mut epoch = Vec::new();
                let mut touched = std::collections::BTreeSet::new();
                for &(w, k, what) in changes {
                    if !touched.insert((w, k)) {
                        continue;
                    }
                    let start = w as i64 * 60_000;
                    if let Some(old) = current.remove(&(w, k)) {
                        epoch.push((row(start, &key(k), 1, old), -1));
                    }
                    if what > 0 {
                        let value = (e * 7 + k) as i128;
                        current.insert((w, k), value);
                        epoch.push((row(start, &key(k), 1, value), 1));
                    }
                }
                table.apply_epoch(e as u64 + 1, epoch, &mut out).unwrap();
                let expected = digest_table(table.rows(), table.scale);
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
    }

    #[test]
    fn many_rows_are_written_in_order_as_one_row_at_a_time() {
        // Two full blocks and a part, formatted on all cores while the block before is written.
        let rows: Vec<AggRow> = (0..70_000)
            .map(|i| row((i / 1_000) * 60_000, &format!("k{i:06}"), 1, i as i128))
            .collect();
        for change in [None, Some((3, -1))] {
            let mut expected = Vec::new();
            let mut writer = RowWriter::new(Scale::DEFAULT);
            for ((window, key), agg) in &rows {
                writer
                    .write(&mut expected, change, window, key, agg)
                    .unwrap();
            }
            let mut written = Vec::new();
            write_rows(
                &mut written,
                Scale::DEFAULT,
                rows.iter().map(|row| (row, change)),
            )
            .unwrap();
            assert_eq!(written.len(), expected.len());
            assert!(
                written == expected,
                "the lines differ from one-at-a-time writing"
            );
        }
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
        assert_eq!(table.close_epoch(0, &mut out).unwrap(), 1);
        // Epoch 1: "a" changes and changes back (nothing), "b" appears, "a" then changes.
        table.apply(1, row(0, "a", 1, 1), -1).unwrap();
        table.apply(1, row(0, "a", 2, 5), 1).unwrap();
        table.apply(1, row(0, "a", 2, 5), -1).unwrap();
        table.apply(1, row(0, "a", 1, 1), 1).unwrap();
        table.apply(1, row(0, "b", 1, 3), 1).unwrap();
        assert_eq!(table.close_epoch(1, &mut out).unwrap(), 1);
        table.apply(2, row(0, "a", 1, 1), -1).unwrap();
        table.apply(2, row(0, "a", 1, 2), 1).unwrap();
        assert_eq!(table.close_epoch(2, &mut out).unwrap(), 2);
        // Epoch 3 changes nothing and writes nothing.
        assert_eq!(table.close_epoch(3, &mut out).unwrap(), 0);
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
        assert!(matches!(err, SinkError::Inconsistent { .. }));
    }

    #[test]
    fn keys_are_written_as_serde_json_writes_them() {
        for key in [
            "k1",
            "",
            "a\"b",
            "back\\slash",
            "tab\there",
            "nl\n",
            "\u{1}",
            "\u{7f}",
            "é ü 🦀",
            "</script>",
        ] {
            let mut fast = Vec::new();
            write_json_string(&mut fast, key).unwrap();
            assert_eq!(
                String::from_utf8(fast).unwrap(),
                serde_json::to_string(key).unwrap()
            );
        }
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
