//! Changelog and snapshot rows: the line formats of `changelog.jsonl`, `snapshot.jsonl` and
//! `snapshot.csv` (docs/format.md, section 6).
//!
//! A row is written from its (window, key) and [`Agg`]: the window bounds as RFC 3339 UTC with
//! milliseconds, decimals in canonical form as JSON strings (so no reader turns them into
//! floats), and `mean` derived, rounded half-to-even at the scale. A changelog line adds
//! `epoch` and `diff` in front. Rows are built as bytes, without `fmt`; many rows are formatted
//! on all cores while the block before is written.

use std::io::{self, Write};

use compact_str::CompactString;

use crate::data::agg::{Agg, AggRow};
use crate::data::decimal::{Decimal, Scale};
use crate::data::time::format_millis;
use crate::data::window::Window;
use crate::output::OutputError;
use crate::output::table::EpochChanges;

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

/// Writes one epoch's net changes of the table as changelog lines: retractions first, then
/// insertions, each in (window, key) order. Returns the number of lines.
pub fn write_changelog(
    epoch: u64,
    changes: &EpochChanges<'_>,
    scale: Scale,
    out: &mut impl Write,
) -> Result<usize, OutputError> {
    let change = |diff| move |row| (row, Some((epoch, diff)));
    match changes {
        // Every row is an insertion: written straight from the table.
        EpochChanges::All { rows, .. } => write_rows(out, scale, rows.iter().map(change(1))),
        EpochChanges::Net { .. } => {
            let retractions = changes.retractions().map(change(-1));
            write_rows(
                out,
                scale,
                retractions.chain(changes.insertions().map(change(1))),
            )
        }
    }
}

/// Writes one row as a JSON line: a changelog line with `change` (epoch, diff), a snapshot
/// line without.
pub fn write_row(
    out: &mut impl Write,
    scale: Scale,
    row: (&(Window, CompactString), &Agg),
    change: Option<(u64, i8)>,
) -> Result<(), OutputError> {
    write_rows(out, scale, std::iter::once((row, change))).map(drop)
}

/// Writes the CSV header of the snapshot.
pub(crate) fn write_csv_header(out: &mut impl Write) -> Result<(), OutputError> {
    out.write_all(b"window_start,window_end,key,count,sum,min,max,mean\n")?;
    Ok(())
}

/// Writes snapshot rows in `format` (with the CSV header if `header`).
pub fn write_snapshot_rows<'a>(
    format: SnapshotFormat,
    scale: Scale,
    rows: impl Iterator<Item = (&'a (Window, CompactString), &'a Agg)>,
    out: &mut impl Write,
    header: bool,
) -> Result<(), OutputError> {
    match format {
        SnapshotFormat::JsonLines => write_rows(out, scale, rows.map(|row| (row, None))).map(drop),
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
/// idle, and formatting would otherwise be a serial tail. Returns the number of rows.
fn write_rows<'a, R>(
    out: &mut impl Write,
    scale: Scale,
    rows: impl Iterator<Item = (R, Option<(u64, i8)>)>,
) -> Result<usize, OutputError>
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
    let mut formatted: Vec<Result<Vec<u8>, OutputError>> = Vec::new();
    let mut count = 0;
    loop {
        let block: Vec<_> = rows.by_ref().take(BLOCK).collect();
        count += block.len();
        if formatted.is_empty() && (threads == 1 || block.len() < FEW) {
            let mut writer = RowWriter::new(scale);
            for (row, change) in &block {
                let (window, key, agg) = row.parts();
                writer.write(out, *change, window, key, agg)?;
            }
            if rows.peek().is_none() {
                return Ok(count);
            }
            continue;
        }
        let part = block.len().div_ceil(threads).max(1);
        let written = std::thread::scope(|scope| -> Result<_, OutputError> {
            let handles: Vec<_> = block
                .chunks(part)
                .map(|chunk| {
                    scope.spawn(move || -> Result<Vec<u8>, OutputError> {
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
            return Ok(count);
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
    ) -> Result<RowFields<'_>, OutputError> {
        let overflow = || OutputError::Overflow {
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
    ) -> Result<(), OutputError> {
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
#[inline]
pub(crate) fn write_json_string(out: &mut impl Write, text: &str) -> io::Result<()> {
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

fn csv_error(error: csv::Error) -> OutputError {
    OutputError::Io(io::Error::other(error))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
