//! Snapshot files read back: the rows of a docs/format.md section 6 snapshot, from wherever it was made.
//!
//! [`read_snapshot`] reads a snapshot in JSON Lines (`.jsonl`, `.ndjson`, `.json`) or CSV with a
//! header row (`.csv`), each optionally gzip-compressed (`.gz`), into the table of
//! (window, key) → aggregates that [`crate::proof::digest::digest_table`] digests. It accepts what
//! amend writes and what a warehouse export in the same shape holds:
//!
//! - column names are configurable ([`SnapshotFields`]; defaults are the names of docs/format.md);
//! - window bounds are RFC 3339 text with an offset or integer epoch milliseconds;
//! - `count` is a positive integer (JSON number or text); `sum`, `min` and `max` are exact
//!   decimals (JSON string or number, or CSV text) read at `--scale`, so `12.50` and `12.5`
//!   are the same value and digest the same;
//! - rows may come in any order; other columns are ignored, and so is `mean` (the digest
//!   has no mean) unless [`SnapshotFields::mean`] names it: then it is read where a row has
//!   it, for comparing published rows.
//!
//! A row that cannot be read, or a second row for one (window, key), is a
//! [`SnapshotError::Row`] naming the file, the 1-based line and the reason: a snapshot is a
//! result, and a result with a bad row cannot be digested, unlike an input with bad records.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use compact_str::CompactString;
use flate2::read::MultiGzDecoder;
use serde_json::value::RawValue;

use crate::data::agg::Agg;
use crate::data::decimal::{Decimal, Scale};
use crate::data::time::{self, Millis, format_millis};
use crate::data::window::Window;
use crate::proof::digest::{TableDigest, digest_table};

/// The column names of a snapshot (`--window-start-field` and the like).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotFields {
    /// Window start; default `window_start`.
    pub window_start: String,
    /// Window end; default `window_end`.
    pub window_end: String,
    /// Group key; default `key`.
    pub key: String,
    /// Number of records; default `count`.
    pub count: String,
    /// Sum; default `sum`.
    pub sum: String,
    /// Least value; default `min`.
    pub min: String,
    /// Greatest value; default `max`.
    pub max: String,
    /// The mean column, read where a row has one; `None` (the default) ignores means.
    pub mean: Option<String>,
}

impl Default for SnapshotFields {
    fn default() -> Self {
        SnapshotFields {
            window_start: "window_start".into(),
            window_end: "window_end".into(),
            key: "key".into(),
            count: "count".into(),
            sum: "sum".into(),
            min: "min".into(),
            max: "max".into(),
            mean: None,
        }
    }
}

/// The two formats a snapshot file can have.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SnapshotFileType {
    /// One JSON object per line.
    JsonLines,
    /// CSV with a header row.
    Csv,
}

impl SnapshotFileType {
    /// The type and compression of `path`, from its name: `(type, gzip)`.
    pub fn of(path: &Path) -> Result<(SnapshotFileType, bool), SnapshotError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        let (stem, gzip) = match name.strip_suffix(".gz") {
            Some(stem) => (stem, true),
            None => (name.as_str(), false),
        };
        let kind = match stem.rsplit_once('.').map(|(_, ext)| ext) {
            Some("jsonl" | "ndjson" | "json") => SnapshotFileType::JsonLines,
            Some("csv") => SnapshotFileType::Csv,
            _ => {
                return Err(SnapshotError::UnknownType {
                    path: path.to_owned(),
                });
            }
        };
        Ok((kind, gzip))
    }
}

/// Why a snapshot could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The file name says neither JSON Lines nor CSV.
    #[error(
        "{}: unknown snapshot file type; name it .jsonl, .ndjson, .json or .csv, optionally with .gz",
        .path.display()
    )]
    UnknownType {
        /// The file.
        path: PathBuf,
    },
    /// A row that cannot be read, or a duplicate.
    #[error("{}:{line}: {reason}", .path.display())]
    Row {
        /// The file.
        path: PathBuf,
        /// 1-based physical line number (a CSV header is line 1).
        line: u64,
        /// What is wrong, naming the column and quoting the text.
        reason: String,
    },
    /// The file could not be read.
    #[error("cannot read {}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

/// One row of a snapshot file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotRow {
    /// Its aggregates.
    pub agg: Agg,
    /// Its mean, if [`SnapshotFields::mean`] names a column and the row has it.
    pub mean: Option<Decimal>,
    /// The 1-based line it was read from.
    pub line: u64,
}

/// A snapshot table: its rows by (window, key).
pub type SnapshotRows = BTreeMap<(Window, CompactString), SnapshotRow>;

/// Reads the snapshot file `path` (type and compression from its name) into its rows.
pub fn read_snapshot(
    path: &Path,
    fields: &SnapshotFields,
    scale: Scale,
) -> Result<SnapshotRows, SnapshotError> {
    let (kind, gzip) = SnapshotFileType::of(path)?;
    let io_error = |source| SnapshotError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io_error)?;
    let reader: Box<dyn Read> = if gzip {
        Box::new(MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    read_snapshot_from(BufReader::new(reader), kind, path, fields, scale)
}

/// Reads a snapshot of type `kind` from `reader`; `path` names it in errors.
pub fn read_snapshot_from(
    reader: impl BufRead,
    kind: SnapshotFileType,
    path: &Path,
    fields: &SnapshotFields,
    scale: Scale,
) -> Result<SnapshotRows, SnapshotError> {
    let mut rows = SnapshotRows::new();
    let bad = |line: u64, reason: String| SnapshotError::Row {
        path: path.to_owned(),
        line,
        reason,
    };
    let mut insert = |line: u64, row: Row| -> Result<(), SnapshotError> {
        match rows.entry((row.window, row.key.into())) {
            Entry::Vacant(slot) => {
                slot.insert(SnapshotRow {
                    agg: row.agg,
                    mean: row.mean,
                    line,
                });
                Ok(())
            }
            Entry::Occupied(slot) => {
                let ((window, key), first) = (slot.key(), slot.get().line);
                Err(bad(
                    line,
                    format!(
                        "a second row for window {} .. {} key {key:?} (the first is on line {first})",
                        format_millis(window.start),
                        format_millis(window.end),
                    ),
                ))
            }
        }
    };
    match kind {
        SnapshotFileType::JsonLines => {
            for (index, text) in reader.lines().enumerate() {
                let line = index as u64 + 1;
                let text = text.map_err(|source| SnapshotError::Io {
                    path: path.to_owned(),
                    source,
                })?;
                if text.trim().is_empty() {
                    continue;
                }
                let row = json_row(&text, fields, scale).map_err(|reason| bad(line, reason))?;
                insert(line, row)?;
            }
        }
        SnapshotFileType::Csv => {
            let mut csv = csv::ReaderBuilder::new().from_reader(reader);
            let header_error = |e: csv::Error| bad(1, format!("cannot read the CSV header: {e}"));
            let headers = csv.headers().map_err(header_error)?.clone();
            let column = |name: &str| {
                headers.iter().position(|h| h == name).ok_or_else(|| {
                    bad(
                        1,
                        format!("the CSV header has no column `{name}` (it has: {})", {
                            headers.iter().collect::<Vec<_>>().join(", ")
                        }),
                    )
                })
            };
            let columns = [
                column(&fields.window_start)?,
                column(&fields.window_end)?,
                column(&fields.key)?,
                column(&fields.count)?,
                column(&fields.sum)?,
                column(&fields.min)?,
                column(&fields.max)?,
            ];
            // The mean is optional: a file without the column has no means.
            let mean_column = fields
                .mean
                .as_ref()
                .and_then(|name| headers.iter().position(|h| h == name));
            let mut record = csv::StringRecord::new();
            loop {
                let more = csv.read_record(&mut record).map_err(|e| {
                    let line = e.position().map_or(0, |p| p.line());
                    bad(line, format!("not a valid CSV row: {e}"))
                })?;
                if !more {
                    break;
                }
                let line = record.position().map_or(0, |p| p.line());
                let cell = |i: usize| Value::Text(record.get(columns[i]).unwrap_or(""));
                let mean = match mean_column.and_then(|i| record.get(i)) {
                    None | Some("") => Value::Missing,
                    Some(text) => Value::Text(text),
                };
                let row = Row::read(
                    [
                        cell(0),
                        cell(1),
                        cell(2),
                        cell(3),
                        cell(4),
                        cell(5),
                        cell(6),
                        mean,
                    ],
                    fields,
                    scale,
                )
                .map_err(|reason| bad(line, reason))?;
                insert(line, row)?;
            }
        }
    }
    Ok(rows)
}

/// Reads the snapshot file `path` and digests it (docs/format.md section 7).
pub fn digest_snapshot(
    path: &Path,
    fields: &SnapshotFields,
    scale: Scale,
) -> Result<(TableDigest, u64), SnapshotError> {
    let rows = read_snapshot(path, fields, scale)?;
    Ok((digest_rows(&rows, scale), rows.len() as u64))
}

/// The digests of snapshot rows.
pub fn digest_rows(rows: &SnapshotRows, scale: Scale) -> TableDigest {
    digest_table(rows.iter().map(|(row, r)| (row, &r.agg)), scale)
}

/// One snapshot row.
struct Row {
    window: Window,
    key: String,
    agg: Agg,
    mean: Option<Decimal>,
}

/// A cell as found: CSV text, or a JSON value's raw text.
#[derive(Copy, Clone)]
enum Value<'a> {
    Text(&'a str),
    Json(&'a RawValue),
    Missing,
}

/// A cell's content: text (a CSV cell or a JSON string) or the text of a JSON number.
enum Cell {
    Text(String),
    Number(String),
}

impl Cell {
    fn text(&self) -> &str {
        match self {
            Cell::Text(t) | Cell::Number(t) => t,
        }
    }
}

impl Row {
    /// Reads a row from its cells, in [`SnapshotFields`] order; the mean's is optional.
    fn read(cells: [Value<'_>; 8], fields: &SnapshotFields, scale: Scale) -> Result<Row, String> {
        let [start, end, key, count, sum, min, max, mean] = cells;
        let cell = |value: Value<'_>, name: &str| -> Result<Cell, String> {
            match value {
                Value::Text(text) => Ok(Cell::Text(text.to_owned())),
                Value::Missing => Err(format!("no `{name}` field")),
                Value::Json(raw) => {
                    let text = raw.get();
                    match text.as_bytes().first() {
                        Some(b'"') => serde_json::from_str::<String>(text)
                            .map(Cell::Text)
                            .map_err(|e| format!("`{name}`: {e}")),
                        Some(b'-' | b'0'..=b'9') => Ok(Cell::Number(text.to_owned())),
                        _ => Err(format!(
                            "`{name}` is {}, not a string or a number",
                            time::shorten(text)
                        )),
                    }
                }
            }
        };
        let millis = |value, name: &str| -> Result<Millis, String> {
            let cell = cell(value, name)?;
            let text = cell.text();
            let ms = if !text.is_empty()
                && text
                    .strip_prefix('-')
                    .unwrap_or(text)
                    .bytes()
                    .all(|b| b.is_ascii_digit())
            {
                text.parse::<i64>()
                    .map_err(|_| format!("{text} is not epoch milliseconds"))
                    .and_then(|ms| time::check_millis(ms).map_err(|e| e.to_string()))
            } else if let Cell::Number(_) = cell {
                Err(format!("{text} is not whole epoch milliseconds"))
            } else {
                time::parse_rfc3339(text).map_err(|e| e.to_string())
            };
            ms.map_err(|e| format!("`{name}`: {e}"))
        };
        let decimal = |value, name: &str| -> Result<Decimal, String> {
            let cell = cell(value, name)?;
            Decimal::parse(cell.text(), scale).map_err(|e| format!("`{name}`: {e}"))
        };
        let window = Window {
            start: millis(start, &fields.window_start)?,
            end: millis(end, &fields.window_end)?,
        };
        if window.start >= window.end {
            return Err(format!(
                "the window {} .. {} is empty: its start is not before its end",
                format_millis(window.start),
                format_millis(window.end)
            ));
        }
        let key = cell(key, &fields.key)?.text().to_owned();
        let count_text = cell(count, &fields.count)?;
        let count = match count_text.text().parse::<u64>() {
            Ok(0) => {
                return Err(format!(
                    "`{}` is 0: a (window, key) without records has no row",
                    fields.count
                ));
            }
            Ok(n) => n,
            Err(_) => {
                return Err(format!(
                    "`{}` `{}` is not a positive whole number",
                    fields.count,
                    time::shorten(count_text.text())
                ));
            }
        };
        let agg = Agg {
            count,
            sum: Some(decimal(sum, &fields.sum)?),
            min: decimal(min, &fields.min)?,
            max: decimal(max, &fields.max)?,
        };
        if agg.min > agg.max {
            return Err(format!(
                "`{}` {} is greater than `{}` {}",
                fields.min,
                agg.min.display(scale),
                fields.max,
                agg.max.display(scale)
            ));
        }
        let mean = match (mean, &fields.mean) {
            (Value::Missing, _) | (_, None) => None,
            (value, Some(name)) => Some(decimal(value, name)?),
        };
        Ok(Row {
            window,
            key,
            agg,
            mean,
        })
    }
}

/// Reads one JSON Lines row.
fn json_row(text: &str, fields: &SnapshotFields, scale: Scale) -> Result<Row, String> {
    let object: BTreeMap<&str, &RawValue> = serde_json::from_str(text)
        .map_err(|e| format!("not a JSON object: {e}: {}", time::shorten(text.trim_end())))?;
    let get = |name: &str| {
        object
            .get(name)
            .map_or(Value::Missing, |raw| match raw.get() {
                "null" => Value::Missing,
                _ => Value::Json(raw),
            })
    };
    Row::read(
        [
            get(&fields.window_start),
            get(&fields.window_end),
            get(&fields.key),
            get(&fields.count),
            get(&fields.sum),
            get(&fields.min),
            get(&fields.max),
            fields.mean.as_deref().map_or(Value::Missing, get),
        ],
        fields,
        scale,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(kind: SnapshotFileType, text: &str) -> Result<SnapshotRows, SnapshotError> {
        read_snapshot_from(
            text.as_bytes(),
            kind,
            Path::new("s"),
            &SnapshotFields::default(),
            Scale::DEFAULT,
        )
    }

    fn reason(result: Result<SnapshotRows, SnapshotError>) -> String {
        result.expect_err("a bad snapshot").to_string()
    }

    const JSONL: &str = concat!(
        r#"{"window_start":"1970-01-01T00:01:00.000Z","window_end":"1970-01-01T00:02:00.000Z","key":"b","count":1,"sum":"-0.05","min":"-0.05","max":"-0.05","mean":"-0.05"}"#,
        "\n\n",
        r#"{"window_start":0,"window_end":60000,"key":"a","count":"2","sum":30.50,"min":"10.0","max":"20.5"}"#,
        "\n"
    );

    #[test]
    fn json_lines_in_any_order_and_spelling() {
        let rows = read(SnapshotFileType::JsonLines, JSONL).unwrap();
        let keys: Vec<_> = rows
            .iter()
            .map(|((w, k), r)| (w.start, k.as_str(), r.agg.count, r.line))
            .collect();
        assert_eq!(keys, vec![(0, "a", 2, 3), (60_000, "b", 1, 1)]);
        let a = rows.values().next().unwrap().agg;
        assert_eq!(a.sum, Some(Decimal(30_500_000)));
        assert_eq!(a.min, Decimal(10_000_000));
    }

    #[test]
    fn csv_reads_the_same_table_as_json_lines() {
        let csv = "key,window_end,window_start,count,sum,min,max\n\
                   b,1970-01-01T00:02:00Z,60000,1,-0.050,-0.05,-0.05\n\
                   a,60000,1970-01-01T00:00:00.000Z,2,30.5,10,20.5\n";
        let from_csv = read(SnapshotFileType::Csv, csv).unwrap();
        let from_json = read(SnapshotFileType::JsonLines, JSONL).unwrap();
        let strip = |rows: SnapshotRows| -> Vec<_> {
            rows.into_iter().map(|(row, r)| (row, r.agg)).collect()
        };
        assert_eq!(strip(from_csv), strip(from_json));
    }

    #[test]
    fn a_duplicate_row_names_both_lines() {
        let line = r#"{"window_start":0,"window_end":10,"key":"k","count":1,"sum":"1","min":"1","max":"1"}"#;
        let text = format!("{line}\n{line}\n");
        assert_eq!(
            reason(read(SnapshotFileType::JsonLines, &text)),
            "s:2: a second row for window 1970-01-01T00:00:00.000Z .. 1970-01-01T00:00:00.010Z \
             key \"k\" (the first is on line 1)"
        );
    }

    #[test]
    fn bad_rows_name_line_and_reason() {
        let cases = [
            (
                r#"{"window_start":0,"window_end":10,"key":"k","count":1,"sum":"1.0000001","min":"1","max":"1"}"#,
                "s:1: `sum`: value `1.0000001` has 7 significant fractional digits but --scale is 6",
            ),
            (
                r#"{"window_start":0,"window_end":10,"key":"k","count":0,"sum":"1","min":"1","max":"1"}"#,
                "s:1: `count` is 0: a (window, key) without records has no row",
            ),
            (
                r#"{"window_start":0,"window_end":10,"key":"k","count":1,"sum":"1","min":"1"}"#,
                "s:1: no `max` field",
            ),
            (
                r#"{"window_start":"yesterday","window_end":10,"key":"k","count":1,"sum":"1","min":"1","max":"1"}"#,
                "s:1: `window_start`: `yesterday` is not an RFC 3339 timestamp with an offset (e.g. 2026-11-20T10:15:00Z)",
            ),
            (
                r#"{"window_start":10,"window_end":10,"key":"k","count":1,"sum":"1","min":"1","max":"1"}"#,
                "s:1: the window 1970-01-01T00:00:00.010Z .. 1970-01-01T00:00:00.010Z is empty: its start is not before its end",
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(
                reason(read(SnapshotFileType::JsonLines, line)),
                expected,
                "{line}"
            );
        }
        assert_eq!(
            reason(read(
                SnapshotFileType::Csv,
                "window_start,window_end,key,count,sum,min\n"
            )),
            "s:1: the CSV header has no column `max` (it has: window_start, window_end, key, count, sum, min)"
        );
        assert_eq!(
            reason(read(
                SnapshotFileType::Csv,
                "window_start,window_end,key,count,sum,min,max\n0,10,k,1,1,1,1\n0,10,k,x,1,1,1\n"
            )),
            "s:3: `count` `x` is not a positive whole number"
        );
    }

    #[test]
    fn file_types_by_name() {
        let of = |name: &str| SnapshotFileType::of(Path::new(name)).ok();
        assert_eq!(of("a.jsonl"), Some((SnapshotFileType::JsonLines, false)));
        assert_eq!(of("a.CSV.gz"), Some((SnapshotFileType::Csv, true)));
        assert_eq!(of("a.txt"), None);
    }
}
