//! Audit-log decoding: events recovered from application logs, one log line at a time.
//!
//! A log holds many kinds of lines; only some carry an event. Each line is one of three
//! things, and [`AuditDecoder::decode`] says which:
//!
//! - **not an audit record** (`Ok(None)`): the regex does not match, or, for JSON logs, the
//!   line is not a JSON object or has nothing (or `null`) at the path. Such lines are skipped
//!   and counted, never dead-lettered: a log has other lines.
//! - **an event** (`Ok(Some(event))`), decoded by the same field rules as the main input
//!   (docs/format.md section 1).
//! - **a bad record** (`Err`): the line is an audit record (the pattern matched, or the path
//!   holds a value) whose fields are bad; it is a dead letter like any bad input line.
//!
//! With a pattern (`--audit-pattern`), fields come from the named groups `id`, `key`, `ts`
//! and `value` (required: the pattern is rejected at start-up without them) and `op`,
//! `version`, `source`, `seq` (optional). Groups are read as text, like CSV cells: a group
//! that matched nothing, or matched the empty string, is absent. Matching is on bytes, so a
//! line that is not UTF-8 is matched like any other; only a group whose text is not UTF-8
//! makes the record bad. With JSON (`--audit-format jsonl`), the object at a dotted path
//! (`--audit-path payload.event`; empty for the whole line) is decoded exactly as a main-input
//! JSON line, with the configured field names.

use std::borrow::Cow;
use std::fmt;

use regex::bytes::{CaptureLocations, Regex};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::data::decimal::Scale;
use crate::data::event::{Position, Record};
use crate::ingest::decode::{BadRecord, Cell, Decoder, FIELDS, FieldNames, Fields};

/// The named groups a pattern must have.
pub const REQUIRED_GROUPS: [&str; 4] = ["id", "key", "ts", "value"];

/// Why an audit-log format cannot be used: a start-up error, before any line is read. The
/// texts leave the flag to the command line, which names it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    /// The pattern is not a valid regex.
    #[error("not a valid regular expression: {0}")]
    Regex(String),
    /// The pattern lacks a required named group.
    #[error(
        "no named group `{0}`; it needs (?P<id>...), (?P<key>...), \
         (?P<ts>...) and (?P<value>...) (optional: op, version, source, seq)"
    )]
    MissingGroup(&'static str),
    /// A JSON path with an empty segment.
    #[error("`{0}` has an empty segment; write names separated by dots, like payload.event")]
    Path(String),
}

/// A compiled `--audit-pattern`, with the group of each field.
#[derive(Clone, Debug)]
pub struct AuditPattern {
    regex: Regex,
    groups: [Option<usize>; 8],
}

impl AuditPattern {
    /// Compiles `pattern` and checks that it has every required named group.
    pub fn new(pattern: &str) -> Result<AuditPattern, AuditError> {
        let regex = Regex::new(pattern).map_err(|e| AuditError::Regex(one_line(&e)))?;
        let names = FieldNames::default();
        let mut groups = [None; 8];
        for (index, name) in regex.capture_names().enumerate() {
            if let Some(field) =
                name.and_then(|name| FIELDS.iter().find(|f| names.name(**f) == name))
            {
                groups[*field as usize] = Some(index);
            }
        }
        for (field, name) in FIELDS.iter().zip(REQUIRED_GROUPS) {
            if groups[*field as usize].is_none() {
                return Err(AuditError::MissingGroup(name));
            }
        }
        Ok(AuditPattern { regex, groups })
    }

    /// The pattern as given.
    pub fn as_str(&self) -> &str {
        self.regex.as_str()
    }
}

/// The regex crate's messages span lines (a caret under the error); one line reads better.
fn one_line(error: &regex::Error) -> String {
    let text = error.to_string();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines.join(" ")
}

/// How audit-log lines carry events.
#[derive(Clone, Debug)]
pub enum AuditFormat {
    /// Fields from the named groups of a regex.
    Pattern(AuditPattern),
    /// A JSON object per line; the event is the object at this path (empty: the line).
    Json {
        /// Object keys to follow from the line's top-level object.
        path: Vec<String>,
    },
}

impl AuditFormat {
    /// The JSON format with a dotted path (`payload.event`; empty for the whole line).
    pub fn json(path: &str) -> Result<AuditFormat, AuditError> {
        if path.is_empty() {
            return Ok(AuditFormat::Json { path: Vec::new() });
        }
        let path: Vec<String> = path.split('.').map(str::to_owned).collect();
        if path.iter().any(String::is_empty) {
            return Err(AuditError::Path(path.join(".")));
        }
        Ok(AuditFormat::Json { path })
    }
}

/// Decodes audit-log lines into events. Holds reusable buffers: one per worker.
#[derive(Debug)]
pub struct AuditDecoder {
    format: AuditFormat,
    /// Decodes regex groups: its field names are the group names, so reasons name groups.
    groups: Decoder,
    /// Decodes JSON events, with the configured field names.
    json: Decoder,
    locations: Option<CaptureLocations>,
}

impl AuditDecoder {
    /// A decoder for `format`; JSON events use `names`, patterns their fixed group names.
    pub fn new(format: AuditFormat, names: FieldNames, scale: Scale) -> AuditDecoder {
        let locations = match &format {
            AuditFormat::Pattern(pattern) => Some(pattern.regex.capture_locations()),
            AuditFormat::Json { .. } => None,
        };
        AuditDecoder {
            format,
            groups: Decoder::new(FieldNames::default(), scale),
            json: Decoder::new(names, scale),
            locations,
        }
    }

    /// Decodes one log line (without its terminator): `Ok(None)` if it is not an audit
    /// record, the record, or why the audit record is bad.
    pub fn decode(&mut self, line: &[u8], position: Position) -> Result<Option<Record>, BadRecord> {
        match &self.format {
            AuditFormat::Pattern(pattern) => {
                let locations = self.locations.as_mut().expect("made with the pattern");
                if pattern.regex.captures_read(locations, line).is_none() {
                    return Ok(None);
                }
                let mut cells: Fields<Cell<'_>> = Fields::default();
                for field in FIELDS {
                    let Some((start, end)) =
                        pattern.groups[field as usize].and_then(|g| locations.get(g))
                    else {
                        continue;
                    };
                    let text =
                        std::str::from_utf8(&line[start..end]).map_err(|e| BadRecord::NotUtf8 {
                            column: start + e.valid_up_to() + 1,
                        })?;
                    if !text.is_empty() {
                        cells.set(field, Cell::Csv(text));
                    }
                }
                self.groups.build(position, cells).map(Some)
            }
            AuditFormat::Json { path } => {
                let Ok(text) = std::str::from_utf8(line) else {
                    return Ok(None); // not JSON, so not a structured log line
                };
                match follow_path(text, path)? {
                    None => Ok(None),
                    Some(raw) => self.json.decode_json(raw.as_bytes(), position).map(Some),
                }
            }
        }
    }
}

/// The raw JSON text at `path` in the object `line`, `None` if the line is not a JSON object
/// or the path leads nowhere (or to `null`). A key on the path that appears twice is a bad
/// record: picking one copy could pick the wrong event.
fn follow_path<'a>(line: &'a str, path: &[String]) -> Result<Option<&'a str>, BadRecord> {
    let mut de = serde_json::Deserializer::from_str(line);
    let mut current: &'a RawValue = match <&RawValue>::deserialize(&mut de) {
        Ok(raw) if de.end().is_ok() => raw,
        _ => return Ok(None),
    };
    for name in path {
        let mut de = serde_json::Deserializer::from_str(current.get());
        let found = de.deserialize_any(FindKey { name });
        current = match found {
            Ok(Found::Value(raw)) => raw,
            Ok(Found::Twice) => return Err(BadRecord::Duplicate(name.clone())),
            Ok(Found::Nothing) | Err(_) => return Ok(None),
        };
    }
    Ok((current.get() != "null").then_some(current.get()))
}

/// What [`FindKey`] found in one JSON value.
enum Found<'de> {
    /// Not an object, or no such key.
    Nothing,
    /// The key's value.
    Value(&'de RawValue),
    /// The key appears more than once.
    Twice,
}

/// Finds one key of a JSON object, skipping the rest.
struct FindKey<'n> {
    name: &'n str,
}

impl<'de> Visitor<'de> for FindKey<'_> {
    type Value = Found<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = Found::Nothing;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            if key == self.name {
                let value: &'de RawValue = map.next_value()?;
                found = match found {
                    Found::Nothing => Found::Value(value),
                    _ => Found::Twice,
                };
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Found::Nothing)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Found::Nothing)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Found::Nothing)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Found::Nothing)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Found::Nothing)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Found::Nothing)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Found::Nothing)
    }
}

/// Reads an object key, borrowing it when it has no escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        Cow::<'de, str>::deserialize(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::decimal::Decimal;
    use crate::data::event::Op;

    const PATTERN: &str = r"^(?P<at>\S+) INFO recorded id=(?P<id>\S+) key=(?P<key>\S+) ts=(?P<ts>\S+) value=(?P<value>\S+)(?: op=(?P<op>\w+))?(?: v=(?P<version>\d*))?$";

    fn pos() -> Position {
        Position {
            epoch: 4,
            file: crate::data::event::AUDIT_FILE_BASE,
            offset: 10,
        }
    }

    fn pattern() -> AuditDecoder {
        let pattern = AuditPattern::new(PATTERN).unwrap();
        AuditDecoder::new(
            AuditFormat::Pattern(pattern),
            FieldNames::default(),
            Scale::DEFAULT,
        )
    }

    fn json(path: &str) -> AuditDecoder {
        let names = FieldNames {
            id: "event_id".into(),
            ..FieldNames::default()
        };
        AuditDecoder::new(AuditFormat::json(path).unwrap(), names, Scale::DEFAULT)
    }

    #[test]
    fn a_matching_line_decodes_by_the_input_field_rules() {
        let line = b"2026-11-20T10:00:01Z INFO recorded id=e7 key=k ts=2026-11-20T10:00:00.5Z value=12.50 op=delete v=3";
        let event = pattern().decode(line, pos()).unwrap().unwrap().event;
        assert_eq!((event.id.as_str(), event.key.as_str()), ("e7", "k"));
        assert_eq!(event.ts, 1_795_168_800_500);
        assert_eq!(event.value, Decimal(12_500_000));
        assert_eq!(
            (event.op, event.version, event.position),
            (Op::Delete, 3, pos())
        );
        // Optional groups that match nothing, or the empty string, are absent.
        let line = b"x INFO recorded id=1 key=k ts=1000 value=-2 v=";
        let event = pattern().decode(line, pos()).unwrap().unwrap().event;
        assert_eq!((event.op, event.version, event.ts), (Op::Upsert, 0, 1000));
    }

    #[test]
    fn lines_that_do_not_match_are_skipped_and_half_matches_too() {
        let mut decoder = pattern();
        for line in [
            &b""[..],
            b"2026-11-20T10:00:01Z DEBUG connection pool warmed",
            // The start of an audit line, cut off: the anchored pattern does not match.
            b"2026-11-20T10:00:01Z INFO recorded id=e7 key=k ts=2026-11-20T10:00:00Z",
            // A whole audit line with something after it.
            b"x INFO recorded id=e7 key=k ts=0 value=1 trailing",
            b"\xff\xfe not even text",
        ] {
            assert_eq!(
                decoder.decode(line, pos()),
                Ok(None),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn matching_lines_with_bad_fields_are_bad_records() {
        let mut decoder = pattern();
        let cases: [(&[u8], &str); 4] = [
            (
                b"x INFO recorded id=e key=k ts=yesterday value=1",
                "field `ts`",
            ),
            (
                b"x INFO recorded id=e key=k ts=0 value=1.0000001",
                "--scale is 6",
            ),
            (
                b"x INFO recorded id=e key=k ts=0 value=1 op=merge",
                "field `op` is `merge`",
            ),
            (
                b"x INFO recorded id=e key=k ts=0 value=NaN",
                "field `value`",
            ),
        ];
        for (line, reason) in cases {
            let got = decoder.decode(line, pos()).unwrap_err().to_string();
            assert!(got.contains(reason), "{got}");
        }
        // Unicode classes such as `\S` match no invalid UTF-8, so such a line does not match;
        let line = b"x INFO recorded id=e\xff key=k ts=0 value=1";
        assert_eq!(decoder.decode(line, pos()), Ok(None));
        // a pattern that matches raw bytes makes it a bad record, at the line's column.
        let bytes = PATTERN
            .replace(r"(?P<id>\S+)", r"(?P<id>(?-u:\S)+)")
            .replace(r"(?P<at>\S+)", r"(?P<at>(?-u:\S)+)");
        let mut raw = AuditDecoder::new(
            AuditFormat::Pattern(AuditPattern::new(&bytes).unwrap()),
            FieldNames::default(),
            Scale::DEFAULT,
        );
        assert_eq!(
            raw.decode(line, pos()),
            Err(BadRecord::NotUtf8 { column: 21 })
        );
        // Outside the field groups it does not matter.
        let event = raw.decode(b"\xff INFO recorded id=e key=k ts=0 value=1", pos());
        assert_eq!(event.unwrap().unwrap().event.id, "e");
    }

    #[test]
    fn huge_lines_are_matched_in_linear_time() {
        let mut decoder = pattern();
        let mut line = b"x INFO recorded id=e key=".to_vec();
        line.extend(std::iter::repeat_n(b'k', 4 << 20));
        line.extend_from_slice(b" ts=0 value=1");
        let event = decoder.decode(&line, pos()).unwrap().unwrap().event;
        assert_eq!(event.key.len(), 4 << 20);
        let noise = vec![b'a'; 4 << 20];
        assert_eq!(decoder.decode(&noise, pos()), Ok(None));
    }

    #[test]
    fn a_pattern_without_a_required_group_is_a_startup_error() {
        let err =
            AuditPattern::new(r"id=(?P<id>\S+) key=(?P<key>\S+) value=(?P<value>\S+)").unwrap_err();
        assert_eq!(err, AuditError::MissingGroup("ts"));
        assert!(err.to_string().contains("no named group `ts`"), "{err}");
        let err = AuditPattern::new(r"(?P<id>").unwrap_err();
        assert!(matches!(err, AuditError::Regex(_)), "{err}");
        assert!(!err.to_string().contains('\n'), "{err}");
        // Extra groups are allowed.
        assert!(AuditPattern::new(PATTERN).is_ok());
    }

    #[test]
    fn json_logs_give_the_object_at_the_path() {
        let mut decoder = json("payload.event");
        let line = br#"{"level":"info","payload":{"kind":"x","event":{"event_id":5,"key":"k","ts":7,"value":1.5,"version":2}}}"#;
        let event = decoder.decode(line, pos()).unwrap().unwrap().event;
        assert_eq!((event.id.as_str(), event.ts, event.version), ("5", 7, 2));
        assert_eq!(event.value, Decimal(1_500_000));
        // The whole line, with an empty path.
        let event = json("").decode(br#"{"event_id":"a","key":"k","ts":0,"value":1}"#, pos());
        assert_eq!(event.unwrap().unwrap().event.id, "a");
    }

    #[test]
    fn json_lines_without_the_path_are_skipped() {
        let mut decoder = json("payload.event");
        for line in [
            &br#"{"level":"debug","msg":"started"}"#[..],
            br#"{"payload":{"kind":"heartbeat"}}"#,
            br#"{"payload":"event"}"#,
            br#"{"payload":{"event":null}}"#,
            br#"{"payload":{"event":{"event_id":1,"key":"k","ts":0,"value":1}}"#, // cut off
            br#"[1,2,3]"#,
            b"plain text",
            b"{\"payload\":\"\xff\"}",
            b"",
        ] {
            assert_eq!(
                decoder.decode(line, pos()),
                Ok(None),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn json_events_with_bad_fields_are_bad_records() {
        let mut decoder = json("payload.event");
        let cases: [(&[u8], &str); 4] = [
            (
                br#"{"payload":{"event":{"key":"k","ts":0,"value":1}}}"#,
                "missing required field `event_id`",
            ),
            (
                br#"{"payload":{"event":{"event_id":1,"key":"k","ts":0,"value":"1"}}}"#,
                "must be a JSON number",
            ),
            (br#"{"payload":{"event":[1]}}"#, "not an object"),
            (
                br#"{"payload":{"event":{"event_id":1},"event":{"event_id":2}}}"#,
                "field `event` appears twice",
            ),
        ];
        for (line, reason) in cases {
            let got = decoder.decode(line, pos()).unwrap_err().to_string();
            assert!(got.contains(reason), "{got}");
        }
    }

    #[test]
    fn json_paths_must_have_names() {
        assert_eq!(
            AuditFormat::json("a..b").unwrap_err(),
            AuditError::Path("a..b".into())
        );
        assert!(AuditFormat::json("payload.event").is_ok());
    }
}
