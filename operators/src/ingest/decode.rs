//! Record decoding: one JSON Lines or CSV line into a typed [`Event`], or a reason it is bad.
//!
//! Decoding borrows from the line (no `serde_json::Value`, no per-field `String` unless the
//! event keeps it). Every way a line can be wrong is a [`BadRecord`], whose text is the
//! dead-letter reason: it names the field and quotes the offending text.
//!
//! Field rules (docs/format.md section 1): `id` is a string or an integer (read as its text); `key` a
//! string; `ts` an RFC 3339 string with offset or integer epoch milliseconds; `value` a JSON
//! number (in CSV, numeric text); optional `op` (`upsert`/`delete`), `version` and `seq`
//! (non-negative integers) and `source` (string). A JSON `null` in an optional field means
//! absent; in a required field it is a wrong type. In CSV an empty cell means absent.
//! Other fields are ignored.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use compact_str::CompactString;

use crate::data::decimal::{Decimal, DecimalError, Scale};
use crate::data::event::{Event, Op, Position, Record};
use crate::data::time::{self, TimeError, shorten};
use crate::ingest::scan::scan;

/// The input field names (`--id-field`, `--key-field`, `--time-field`, `--value-field`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldNames {
    /// The idempotency key; default `id`.
    pub id: String,
    /// The group key; default `key`.
    pub key: String,
    /// Event time; default `ts`.
    pub ts: String,
    /// The amount; default `value`.
    pub value: String,
    /// Upsert or delete; default `op`.
    pub op: String,
    /// Correction order; default `version`.
    pub version: String,
    /// Producer; default `source`.
    pub source: String,
    /// Producer sequence number; default `seq`.
    pub seq: String,
}

impl Default for FieldNames {
    fn default() -> Self {
        FieldNames {
            id: "id".into(),
            key: "key".into(),
            ts: "ts".into(),
            value: "value".into(),
            op: "op".into(),
            version: "version".into(),
            source: "source".into(),
            seq: "seq".into(),
        }
    }
}

/// The fields a record is read from, in a fixed order.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Field {
    Id,
    Key,
    Ts,
    Value,
    Op,
    Version,
    Source,
    Seq,
}

pub(crate) const FIELDS: [Field; 8] = [
    Field::Id,
    Field::Key,
    Field::Ts,
    Field::Value,
    Field::Op,
    Field::Version,
    Field::Source,
    Field::Seq,
];

impl Field {
    /// How a user knows the field: by its flag where it has one.
    fn describe(self) -> &'static str {
        match self {
            Field::Id => "the id (--id-field)",
            Field::Key => "the key (--key-field)",
            Field::Ts => "the time (--time-field)",
            Field::Value => "the value (--value-field)",
            Field::Op => "`op`",
            Field::Version => "`version`",
            Field::Source => "`source`",
            Field::Seq => "`seq`",
        }
    }
}

impl FieldNames {
    pub(crate) fn name(&self, field: Field) -> &str {
        match field {
            Field::Id => &self.id,
            Field::Key => &self.key,
            Field::Ts => &self.ts,
            Field::Value => &self.value,
            Field::Op => &self.op,
            Field::Version => &self.version,
            Field::Source => &self.source,
            Field::Seq => &self.seq,
        }
    }

    pub(crate) fn field(&self, name: &str) -> Option<Field> {
        FIELDS.into_iter().find(|f| self.name(*f) == name)
    }

    /// Checks that no two fields share a name.
    pub fn validate(&self) -> Result<(), String> {
        for (i, a) in FIELDS.iter().enumerate() {
            for b in &FIELDS[i + 1..] {
                if self.name(*a) == self.name(*b) {
                    return Err(format!(
                        "field name `{}` is given to two fields, {} and {}; each needs its own",
                        self.name(*a),
                        a.describe(),
                        b.describe()
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Why a line is a bad record. The `Display` text is the dead-letter reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadRecord {
    /// The line is longer than `--max-line-bytes`.
    #[error("line is {len} bytes, longer than --max-line-bytes {max}")]
    TooLong {
        /// The line's length in bytes.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// The line is not UTF-8.
    #[error("line is not valid UTF-8 (invalid byte at column {column})")]
    NotUtf8 {
        /// 1-based byte column of the first invalid byte.
        column: usize,
    },
    /// Not JSON at all.
    #[error("invalid JSON: {0}")]
    Json(String),
    /// JSON, but not an object.
    #[error("line is JSON but not an object; each line must be one JSON object")]
    NotAnObject,
    /// A CSV line that cannot be split into fields.
    #[error("invalid CSV: {0}")]
    Csv(String),
    /// A CSV row whose field count differs from the header's.
    #[error("CSV row has {got} fields but the header has {expected}")]
    FieldCount {
        /// Fields in the header.
        expected: usize,
        /// Fields in this row.
        got: usize,
    },
    /// A CSV file whose header lacks a required column.
    #[error(
        "CSV header has no `{0}` column, so no row of this file can be read (check --{1}-field)"
    )]
    MissingColumn(String, &'static str),
    /// A field appears twice.
    #[error("field `{0}` appears twice")]
    Duplicate(String),
    /// A required field is absent.
    #[error("missing required field `{0}`")]
    Missing(String),
    /// A field of the wrong type.
    #[error("field `{field}` must be {expected}, got {got}")]
    WrongType {
        /// The field's name.
        field: String,
        /// What it must be.
        expected: &'static str,
        /// What it is, shortened.
        got: String,
    },
    /// The id is an empty string.
    #[error("field `{0}` is empty; an id must be a non-empty string or an integer")]
    EmptyId(String),
    /// A bad timestamp.
    #[error("field `{field}`: {error}")]
    Time {
        /// The field's name.
        field: String,
        /// What is wrong.
        error: TimeError,
    },
    /// A bad decimal.
    #[error("field `{field}`: {error}")]
    Value {
        /// The field's name.
        field: String,
        /// What is wrong.
        error: DecimalError,
    },
    /// An `op` other than `upsert` or `delete`.
    #[error("field `{field}` is `{got}`; it must be \"upsert\" or \"delete\"")]
    UnknownOp {
        /// The field's name.
        field: String,
        /// The offending text, shortened.
        got: String,
    },
}

/// Decodes lines of one file into events. Holds reusable buffers: one per worker.
#[derive(Debug)]
pub struct Decoder {
    names: FieldNames,
    scale: Scale,
    csv: csv_core::Reader,
    cells: Vec<u8>,
    ends: Vec<usize>,
}

/// Where each field sits in the rows of one CSV file, from its header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvLayout {
    columns: [Option<usize>; 8],
    width: usize,
}

impl Decoder {
    /// A decoder for the given field names and decimal scale.
    pub fn new(names: FieldNames, scale: Scale) -> Self {
        Decoder {
            names,
            scale,
            csv: csv_core::Reader::new(),
            cells: Vec::new(),
            ends: Vec::new(),
        }
    }

    /// Decodes one JSON Lines line (without its line terminator).
    ///
    /// A flat object without escapes (the common line) is scanned directly
    /// ([`crate::ingest::scan`]); any other line goes through serde_json. Both give the same
    /// fields, so the result is the same either way.
    pub fn decode_json(&self, line: &[u8], position: Position) -> Result<Record, BadRecord> {
        let text = utf8(line)?;
        match scan(text, &self.names) {
            Some(raw) => self.build(position, raw.map(Cell::Json)),
            None => self.decode_json_parsed(text, position),
        }
    }

    /// Decodes one JSON line with serde_json, whatever it holds.
    fn decode_json_parsed(&self, text: &str, position: Position) -> Result<Record, BadRecord> {
        let mut de = serde_json::Deserializer::from_str(text);
        let json_error = |error| json_error(error, text);
        let raw = de
            .deserialize_any(ObjectVisitor { names: &self.names })
            .map_err(json_error)?;
        de.end().map_err(json_error)?;
        let raw = raw?;
        self.build(position, raw.map(|value| Cell::Json(value.get())))
    }

    /// Reads a CSV header line into the layout of the file's rows.
    pub fn csv_layout(&mut self, header: &[u8]) -> Result<CsvLayout, BadRecord> {
        let width = self.split_csv(header)?;
        let mut columns = [None; 8];
        for index in 0..width {
            let name = utf8(self.cell(index))?;
            if let Some(field) = self.names.field(name) {
                columns[field as usize] = Some(index);
            }
        }
        Ok(CsvLayout { columns, width })
    }

    /// Decodes one CSV row (without its line terminator) of a file with the given layout.
    pub fn decode_csv(
        &mut self,
        layout: &CsvLayout,
        line: &[u8],
        position: Position,
    ) -> Result<Record, BadRecord> {
        for (field, flag) in [
            (Field::Id, "id"),
            (Field::Key, "key"),
            (Field::Ts, "time"),
            (Field::Value, "value"),
        ] {
            if layout.columns[field as usize].is_none() {
                return Err(BadRecord::MissingColumn(
                    self.names.name(field).to_owned(),
                    flag,
                ));
            }
        }
        let width = self.split_csv(line)?;
        if width != layout.width {
            return Err(BadRecord::FieldCount {
                expected: layout.width,
                got: width,
            });
        }
        let mut cells: Fields<Cell<'_>> = Fields::default();
        for field in FIELDS {
            if let Some(index) = layout.columns[field as usize] {
                let text = utf8(self.cell(index))?;
                if !text.is_empty() {
                    cells.set(field, Cell::Csv(text));
                }
            }
        }
        self.build(position, cells)
    }

    /// Splits a CSV line into `self.cells`/`self.ends`; returns the field count.
    fn split_csv(&mut self, line: &[u8]) -> Result<usize, BadRecord> {
        use csv_core::ReadRecordResult;
        check_quotes(line).map_err(|why| BadRecord::Csv(why.into()))?;
        self.csv.reset();
        self.cells.clear();
        self.cells.resize(line.len().max(16), 0);
        self.ends.clear();
        self.ends.resize(line.len() + 1, 0);
        let (mut input, mut out_at, mut end_at) = (line, 0, 0);
        loop {
            let (result, read, wrote, ended) =
                self.csv
                    .read_record(input, &mut self.cells[out_at..], &mut self.ends[end_at..]);
            // Field ends count from the start of the row, across calls.
            input = &input[read..];
            out_at += wrote;
            end_at += ended;
            match result {
                ReadRecordResult::InputEmpty => {}
                ReadRecordResult::Record => {
                    if !input.is_empty() {
                        return Err(BadRecord::Csv(
                            "the row holds a line break (CR) outside quotes; records must be one per line"
                                .into(),
                        ));
                    }
                    break;
                }
                ReadRecordResult::End => break,
                ReadRecordResult::OutputFull | ReadRecordResult::OutputEndsFull => {
                    return Err(BadRecord::Csv("row too large to split".into()));
                }
            }
        }
        self.ends.truncate(end_at);
        Ok(end_at)
    }

    fn cell(&self, index: usize) -> &[u8] {
        let start = if index == 0 { 0 } else { self.ends[index - 1] };
        &self.cells[start..self.ends[index]]
    }

    /// Checks and converts the fields of one record.
    pub(crate) fn build(
        &self,
        position: Position,
        cells: Fields<Cell<'_>>,
    ) -> Result<Record, BadRecord> {
        let names = &self.names;
        let required = |field: Field| {
            cells
                .get(field)
                .ok_or_else(|| BadRecord::Missing(names.name(field).to_owned()))
        };
        let id = required(Field::Id)?.id(names.name(Field::Id))?;
        let key = required(Field::Key)?.string(names.name(Field::Key))?;
        let ts = required(Field::Ts)?.timestamp(names.name(Field::Ts))?;
        let value = required(Field::Value)?.decimal(names.name(Field::Value), self.scale)?;
        let op = match cells.get(Field::Op) {
            None => Op::Upsert,
            Some(cell) => cell.op(names.name(Field::Op))?,
        };
        let version = match cells.get(Field::Version) {
            None => 0,
            Some(cell) => cell.unsigned(names.name(Field::Version))?,
        };
        let source = match cells.get(Field::Source) {
            None => None,
            Some(cell) => Some(cell.string(names.name(Field::Source))?),
        };
        let seq = match cells.get(Field::Seq) {
            None => None,
            Some(cell) => Some(cell.unsigned(names.name(Field::Seq))?),
        };
        Ok(Record {
            event: Event {
                id,
                key,
                ts,
                value,
                op,
                version,
                position,
            },
            source,
            seq,
        })
    }
}

/// Checks RFC 4180 quoting, which the CSV splitter itself forgives: a quoted field must be
/// closed on its line and followed by a comma or the end; an unquoted field holds no quote.
/// A line cut off inside a quoted field is thereby a bad record, not a shortened value.
fn check_quotes(line: &[u8]) -> Result<(), &'static str> {
    if memchr::memchr(b'"', line).is_none() {
        return Ok(());
    }
    let mut at = 0;
    loop {
        if line.get(at) == Some(&b'"') {
            at += 1;
            // Inside quotes: a doubled quote is a literal one; a single quote closes.
            loop {
                let close = memchr::memchr(b'"', &line[at..])
                    .ok_or("a quoted field is not closed on its line (a cut-off line?)")?;
                at += close + 1;
                if line.get(at) != Some(&b'"') {
                    break;
                }
                at += 1;
            }
            match line.get(at) {
                None => return Ok(()),
                Some(b',') => at += 1,
                Some(_) => return Err("a quoted field has text after its closing quote"),
            }
        } else {
            let end = memchr::memchr(b',', &line[at..]).map_or(line.len(), |i| at + i);
            if memchr::memchr(b'"', &line[at..end]).is_some() {
                return Err(
                    "an unquoted field holds a quote; quote the field and double the quote",
                );
            }
            if end == line.len() {
                return Ok(());
            }
            at = end + 1;
        }
    }
}

pub(crate) fn utf8(bytes: &[u8]) -> Result<&str, BadRecord> {
    std::str::from_utf8(bytes).map_err(|e| BadRecord::NotUtf8 {
        column: e.valid_up_to() + 1,
    })
}

/// serde_json's message without its "at line 1 column N" suffix, which is misleading for a
/// single line; the column is kept, and a non-finite number where a value should be is named.
fn json_error(error: serde_json::Error, line: &str) -> BadRecord {
    let text = error.to_string();
    let message = text.split(" at line ").next().unwrap_or(&text);
    let rest = line.get(error.column().saturating_sub(1)..).unwrap_or("");
    let rest = rest.strip_prefix('-').unwrap_or(rest);
    let hint = if ["NaN", "Infinity", "inf"]
        .iter()
        .any(|word| rest.starts_with(word))
    {
        " (NaN and Infinity are not JSON numbers, and amounts must be finite)"
    } else {
        ""
    };
    BadRecord::Json(format!("{message} at column {}{hint}", error.column()))
}

/// One value per field, indexed by [`Field`].
#[derive(Debug)]
pub(crate) struct Fields<V>([Option<V>; 8]);

impl<V> Default for Fields<V> {
    fn default() -> Self {
        Fields([None, None, None, None, None, None, None, None])
    }
}

impl<V> Fields<V> {
    pub(crate) fn get(&self, field: Field) -> Option<&V> {
        self.0[field as usize].as_ref()
    }
    pub(crate) fn set(&mut self, field: Field, value: V) {
        self.0[field as usize] = Some(value);
    }
    fn map<W>(self, mut f: impl FnMut(V) -> W) -> Fields<W> {
        Fields(self.0.map(|value| value.map(&mut f)))
    }
}

/// The text of one field: raw JSON (a number, string, or other) or a CSV cell.
#[derive(Debug)]
pub(crate) enum Cell<'a> {
    Json(&'a str),
    Csv(&'a str),
}

/// What kind of JSON value a raw text is, for error messages.
fn json_kind(raw: &str) -> &'static str {
    match raw.as_bytes().first() {
        Some(b'"') => "a string",
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

fn is_json_integer(raw: &str) -> bool {
    let digits = raw.strip_prefix('-').unwrap_or(raw);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// The contents of a raw JSON string (its quotes removed, escapes decoded).
fn json_string(raw: &str) -> Cow<'_, str> {
    if raw.bytes().any(|b| b == b'\\') {
        // The raw text is valid JSON, so this cannot fail.
        Cow::Owned(serde_json::from_str::<String>(raw).unwrap_or_default())
    } else {
        Cow::Borrowed(&raw[1..raw.len() - 1])
    }
}

impl Cell<'_> {
    fn wrong(&self, field: &str, expected: &'static str) -> BadRecord {
        let got = match self {
            Cell::Json("null") => "null".to_owned(),
            Cell::Json(raw) => format!("{} `{}`", json_kind(raw), shorten(raw)),
            Cell::Csv(text) => format!("`{}`", shorten(text)),
        };
        BadRecord::WrongType {
            field: field.to_owned(),
            expected,
            got,
        }
    }

    /// A string; in JSON it must be a JSON string.
    fn text(&self, field: &str, expected: &'static str) -> Result<Cow<'_, str>, BadRecord> {
        match self {
            Cell::Json(raw) if raw.starts_with('"') => Ok(json_string(raw)),
            Cell::Json(_) => Err(self.wrong(field, expected)),
            Cell::Csv(text) => Ok(Cow::Borrowed(text)),
        }
    }

    fn string(&self, field: &str) -> Result<CompactString, BadRecord> {
        Ok(self.text(field, "a string")?.into())
    }

    fn id(&self, field: &str) -> Result<CompactString, BadRecord> {
        let id = match self {
            Cell::Json(raw) if is_json_integer(raw) => CompactString::from(*raw),
            _ => self
                .string(field)
                .map_err(|_| self.wrong(field, "a string or an integer"))?,
        };
        if id.is_empty() {
            return Err(BadRecord::EmptyId(field.to_owned()));
        }
        Ok(id)
    }

    fn timestamp(&self, field: &str) -> Result<i64, BadRecord> {
        const EXPECTED: &str = "an RFC 3339 string or integer epoch milliseconds";
        let time_error = |error| BadRecord::Time {
            field: field.to_owned(),
            error,
        };
        let integer = match self {
            Cell::Json(raw) if is_json_integer(raw) => Some(*raw),
            Cell::Json(raw) if !raw.starts_with('"') => return Err(self.wrong(field, EXPECTED)),
            Cell::Csv(text) if is_json_integer(text) => Some(*text),
            _ => None,
        };
        match integer {
            Some(text) => {
                let ms: i64 = text.parse().map_err(|_| {
                    time_error(TimeError::OutOfRange {
                        text: shorten(text),
                    })
                })?;
                time::check_millis(ms).map_err(time_error)
            }
            None => time::parse_rfc3339(&self.text(field, EXPECTED)?).map_err(time_error),
        }
    }

    fn decimal(&self, field: &str, scale: Scale) -> Result<Decimal, BadRecord> {
        let text = match self {
            Cell::Json(raw) if json_kind(raw) == "a number" => raw,
            Cell::Json(_) => return Err(self.wrong(field, "a JSON number")),
            Cell::Csv(text) => text,
        };
        Decimal::parse(text, scale).map_err(|error| BadRecord::Value {
            field: field.to_owned(),
            error,
        })
    }

    fn unsigned(&self, field: &str) -> Result<u64, BadRecord> {
        let text = match self {
            Cell::Json(raw) => raw,
            Cell::Csv(text) => text,
        };
        if !text.bytes().all(|b| b.is_ascii_digit()) || text.is_empty() {
            return Err(self.wrong(field, "a non-negative integer"));
        }
        text.parse()
            .map_err(|_| self.wrong(field, "a non-negative integer below 2^64"))
    }

    fn op(&self, field: &str) -> Result<Op, BadRecord> {
        let text = self.text(field, "\"upsert\" or \"delete\"")?;
        match text.as_ref() {
            "upsert" => Ok(Op::Upsert),
            "delete" => Ok(Op::Delete),
            other => Err(BadRecord::UnknownOp {
                field: field.to_owned(),
                got: shorten(other),
            }),
        }
    }
}

/// Visits one JSON object, keeping the raw text of the fields it knows.
struct ObjectVisitor<'n> {
    names: &'n FieldNames,
}

type RawFields<'de> = Result<Fields<&'de RawValue>, BadRecord>;

impl<'de> Visitor<'de> for ObjectVisitor<'_> {
    type Value = RawFields<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Fields::default();
        let mut duplicate = None;
        while let Some(name) = map.next_key_seed(NameSeed)? {
            match self.names.field(&name) {
                Some(field) => {
                    let value: &'de RawValue = map.next_value()?;
                    // JSON null in a field means "absent" for optional fields; a required
                    // field that is null is reported as a wrong type when it is read.
                    let is_null = value.get() == "null";
                    if fields.get(field).is_some() {
                        duplicate.get_or_insert_with(|| name.into_owned());
                    } else if !(is_null && field as usize >= Field::Op as usize) {
                        fields.set(field, value);
                    }
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(match duplicate {
            Some(name) => Err(BadRecord::Duplicate(name)),
            None => Ok(fields),
        })
    }

    // Any other JSON value is valid JSON but not a record.
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Err(BadRecord::NotAnObject))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Err(BadRecord::NotAnObject))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Err(BadRecord::NotAnObject))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Err(BadRecord::NotAnObject))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Err(BadRecord::NotAnObject))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Err(BadRecord::NotAnObject))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Err(BadRecord::NotAnObject))
    }
}

/// Reads an object key, borrowing it when it has no escapes.
struct NameSeed;

impl<'de> DeserializeSeed<'de> for NameSeed {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(NameSeed)
    }
}

impl<'de> Visitor<'de> for NameSeed {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos() -> Position {
        Position {
            epoch: 1,
            file: 2,
            offset: 3,
        }
    }

    fn record(line: &str) -> Result<Record, BadRecord> {
        Decoder::new(FieldNames::default(), Scale::DEFAULT).decode_json(line.as_bytes(), pos())
    }

    fn json(line: &str) -> Result<Event, BadRecord> {
        record(line).map(|record| record.event)
    }

    fn reason(line: &str) -> String {
        json(line).unwrap_err().to_string()
    }

    #[test]
    fn decodes_a_full_record() {
        let record = record(
            r#"{"id":"a","key":"k","ts":"2026-11-20T10:15:00.5Z","value":-12.25,"op":"delete","version":3,"source":"pos-1","seq":9,"extra":[1,{"x":null}]}"#,
        )
        .unwrap();
        let event = &record.event;
        assert_eq!(event.id, "a");
        assert_eq!(event.key, "k");
        assert_eq!(event.ts, 1_795_169_700_500);
        assert_eq!(event.value, Decimal(-12_250_000));
        assert_eq!(event.op, Op::Delete);
        assert_eq!(event.version, 3);
        assert_eq!(record.source.as_deref(), Some("pos-1"));
        assert_eq!(record.seq, Some(9));
        assert_eq!(event.position, pos());
    }

    #[test]
    fn defaults_integer_ids_escapes_and_nulls() {
        let record = record(
            r#"{"id":42,"key":"a\"b\u00e9","ts":1000,"value":1e2,"op":null,"version":null}"#,
        )
        .unwrap();
        let event = &record.event;
        assert_eq!(event.id, "42");
        assert_eq!(event.key, "a\"bé");
        assert_eq!(event.ts, 1000);
        assert_eq!(event.value, Decimal(100_000_000));
        assert_eq!(
            (event.op, event.version, record.source.clone(), record.seq),
            (Op::Upsert, 0, None, None)
        );
        // The same id as a string and as an integer.
        assert_eq!(
            json(r#"{"id":"42","key":"k","ts":0,"value":0}"#)
                .unwrap()
                .id,
            "42"
        );
    }

    #[test]
    fn each_bad_record_kind_has_a_clear_reason() {
        let cases = [
            (
                r#"{"id":"a","key":"k","ts":0,"value":1"#,
                "invalid JSON: EOF while parsing an object at column",
            ),
            ("not json", "invalid JSON: expected ident at column 2"),
            (
                r#"{"id":"a"} trailing"#,
                "invalid JSON: trailing characters at column",
            ),
            ("[1,2]", "line is JSON but not an object"),
            (
                r#"{"key":"k","ts":0,"value":1}"#,
                "missing required field `id`",
            ),
            (
                r#"{"id":"a","ts":0,"value":1}"#,
                "missing required field `key`",
            ),
            (
                r#"{"id":"a","key":"k","value":1}"#,
                "missing required field `ts`",
            ),
            (
                r#"{"id":"a","key":"k","ts":0}"#,
                "missing required field `value`",
            ),
            (
                r#"{"id":"a","key":"k","ts":0,"value":null}"#,
                "field `value` must be a JSON number, got null",
            ),
            (
                r#"{"id":"a","key":"k","ts":0,"value":"1.5"}"#,
                "field `value` must be a JSON number, got a string `\"1.5\"`",
            ),
            (
                r#"{"id":1.5,"key":"k","ts":0,"value":1}"#,
                "field `id` must be a string or an integer, got a number `1.5`",
            ),
            (
                r#"{"id":"","key":"k","ts":0,"value":1}"#,
                "field `id` is empty",
            ),
            (
                r#"{"id":"a","key":7,"ts":0,"value":1}"#,
                "field `key` must be a string, got a number `7`",
            ),
            (
                r#"{"id":"a","key":"k","ts":"2026-11-20 10:15","value":1}"#,
                "field `ts`: `2026-11-20 10:15` is not an RFC 3339 timestamp",
            ),
            (
                r#"{"id":"a","key":"k","ts":1.5,"value":1}"#,
                "field `ts` must be an RFC 3339 string or integer epoch milliseconds",
            ),
            (
                r#"{"id":"a","key":"k","ts":99999999999999999999,"value":1}"#,
                "field `ts`: timestamp `99999999999999999999` is outside years 1 to 9999",
            ),
            (
                r#"{"id":"a","key":"k","ts":0,"value":1.0000001}"#,
                "has 7 significant fractional digits but --scale is 6",
            ),
            (
                r#"{"id":"a","key":"k","ts":0,"value":1e400}"#,
                "field `value`: value `1e400` is out of range",
            ),
            (
                r#"{"id":"a","key":"k","ts":0,"value":1,"op":"merge"}"#,
                "field `op` is `merge`; it must be \"upsert\" or \"delete\"",
            ),
            (
                r#"{"id":"a","key":"k","ts":0,"value":1,"version":-1}"#,
                "field `version` must be a non-negative integer",
            ),
            (
                r#"{"id":"a","key":"k","ts":0,"value":1,"seq":"3"}"#,
                "field `seq` must be a non-negative integer",
            ),
            (
                r#"{"id":"a","id":"b","key":"k","ts":0,"value":1}"#,
                "field `id` appears twice",
            ),
        ];
        for (line, expected) in cases {
            let got = reason(line);
            assert!(
                got.contains(expected),
                "line {line}\n  expected reason containing: {expected}\n  got: {got}"
            );
        }
        // NaN is not JSON at all; the reason says so.
        for bad in ["NaN", "Infinity", "-Infinity"] {
            let got = reason(&format!(r#"{{"id":"a","key":"k","ts":0,"value":{bad}}}"#));
            assert!(
                got.starts_with("invalid JSON") && got.contains("must be finite"),
                "{got}"
            );
        }
        let bad_utf8 = b"{\"id\":\"\xff\",\"key\":\"k\",\"ts\":0,\"value\":1}";
        let decoder = Decoder::new(FieldNames::default(), Scale::DEFAULT);
        assert_eq!(
            decoder.decode_json(bad_utf8, pos()).unwrap_err(),
            BadRecord::NotUtf8 { column: 8 }
        );
    }

    #[test]
    fn csv_rows_follow_the_header() {
        let mut decoder = Decoder::new(FieldNames::default(), Scale::DEFAULT);
        let layout = decoder.csv_layout(b"value,ts,other,key,id,op").unwrap();
        let event = decoder
            .decode_csv(&layout, b"\"1,5\",1000,x,\"a,b\",7,", pos())
            .map(|r| (r.event.id, r.event.key, r.event.ts, r.event.op))
            .unwrap_err();
        // "1,5" is not a number: the comma is inside the quoted value.
        assert!(event.to_string().contains("field `value`"), "{event}");
        let event = decoder
            .decode_csv(&layout, b"+1.50,1000,x,\"a,b\",7,delete", pos())
            .unwrap()
            .event;
        assert_eq!(
            (event.id.as_str(), event.key.as_str(), event.ts),
            ("7", "a,b", 1000)
        );
        assert_eq!((event.value, event.op), (Decimal(1_500_000), Op::Delete));
        let event = decoder
            .decode_csv(&layout, b"2,2026-11-20T00:00:00Z,,k,8,", pos())
            .unwrap()
            .event;
        assert_eq!(event.op, Op::Upsert);
        assert_eq!(
            decoder.decode_csv(&layout, b"1,2,3", pos()).unwrap_err(),
            BadRecord::FieldCount {
                expected: 6,
                got: 3
            }
        );
        assert!(matches!(
            decoder.decode_csv(&layout, b"1,0,x,k,,", pos()).unwrap_err(),
            BadRecord::Missing(field) if field == "id"
        ));
        for bad in [
            &b"\"unterminated,0,x,k,1,"[..],
            b"1,0,x,\"k,x",
            b"1,0,x,\"a\"x,1,",
            b"1,0,x,a\"b,1,",
        ] {
            let err = decoder.decode_csv(&layout, bad, pos()).unwrap_err();
            assert!(matches!(err, BadRecord::Csv(_)), "{err}");
        }
        let quoted = decoder
            .decode_csv(&layout, b"1,0,\"\",\"say \"\"hi\"\"\",9,", pos())
            .unwrap()
            .event;
        assert_eq!(quoted.key, "say \"hi\"");
    }

    #[test]
    fn csv_header_without_a_required_column_rejects_every_row() {
        let mut decoder = Decoder::new(FieldNames::default(), Scale::DEFAULT);
        let layout = decoder.csv_layout(b"id,key,value").unwrap();
        let err = decoder.decode_csv(&layout, b"1,k,2", pos()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "CSV header has no `ts` column, so no row of this file can be read (check --time-field)"
        );
    }

    #[test]
    fn field_names_are_configurable_and_must_differ() {
        let names = FieldNames {
            id: "event_id".into(),
            ts: "time".into(),
            ..FieldNames::default()
        };
        let decoder = Decoder::new(names, Scale::DEFAULT);
        let event = decoder
            .decode_json(
                br#"{"event_id":5,"key":"k","time":7,"value":1,"id":"ignored"}"#,
                pos(),
            )
            .unwrap()
            .event;
        assert_eq!((event.id.as_str(), event.ts), ("5", 7));
        let clash = FieldNames {
            key: "id".into(),
            ..FieldNames::default()
        };
        assert!(clash.validate().unwrap_err().contains("`id`"));
    }

    /// Values of every kind a field may hold, valid and not, for the scan's property test.
    const VALUES: &[&str] = &[
        "\"a\"",
        "\"\"",
        "\"a\\\"b\"",
        "\"\\u00e9\"",
        "\"2026-11-20T10:15:00.5Z\"",
        "\"2026-11-20T10:15:00\"",
        "\"upsert\"",
        "\"delete\"",
        "\"merge\"",
        "\"12.5\"",
        "0",
        "-0",
        "7",
        "42",
        "-5",
        "1.5",
        "1.0000001",
        "1e2",
        "1E+2",
        "2.5e-6",
        "01",
        "1.",
        "-",
        ".5",
        "1e",
        "18446744073709551616",
        "99999999999999999999999999999999999999999",
        "true",
        "false",
        "null",
        "nul",
        "NaN",
        "[1]",
        "{\"a\":1}",
        "\"a\u{1}b\"",
        "\"\u{e9}\"",
    ];
    const NAMES: &[&str] = &[
        "id", "key", "ts", "value", "op", "version", "source", "seq", "x", "\\u0069d", "",
    ];
    const SPACE: &[&str] = &["", "", "", " ", "\t", " \r\n "];

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// The fast scan and serde_json give the same record, or the same reason it is bad.
        #[test]
        fn the_scan_decodes_as_the_general_parser_does(
            fields in proptest::collection::vec((0..NAMES.len(), 0..VALUES.len(), 0..SPACE.len()), 0..10),
            required in proptest::collection::vec(0..VALUES.len(), 4),
            cut in proptest::option::of(0usize..200),
            trailing in 0..SPACE.len(),
        ) {
            let mut line = String::from("{");
            // Most lines carry the four required fields, so many are valid records.
            let mut all: Vec<(usize, usize, usize)> =
                required.iter().enumerate().map(|(name, value)| (name, *value, 0)).collect();
            all.extend(fields);
            for (i, (name, value, space)) in all.iter().enumerate() {
                if i > 0 {
                    line.push(',');
                }
                let space = SPACE[*space];
                line.push_str(&format!("{space}\"{}\"{space}:{space}{}", NAMES[*name], VALUES[*value]));
            }
            line.push('}');
            line.push_str(SPACE[trailing]);
            if let Some(cut) = cut {
                let mut at = cut.min(line.len());
                while !line.is_char_boundary(at) {
                    at -= 1;
                }
                line.truncate(at);
            }
            let decoder = Decoder::new(FieldNames::default(), Scale::DEFAULT);
            let text = line.as_str();
            proptest::prop_assert_eq!(
                decoder.decode_json(text.as_bytes(), pos()),
                decoder.decode_json_parsed(text, pos()),
                "{}", text
            );
        }
    }
}
