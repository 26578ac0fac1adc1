//! Tombstones as deletes (`--kafka-tombstones delete`, docs/format.md section 6).
//!
//! A tombstone (a message with a null value) of an upsert topic deletes the id its key names.
//! It becomes the record `{"<id>": ID, "<key>": "", "<ts>": TIMESTAMP, "<value>": 0,
//! "<op>": "delete", "<version>": V}` in the run's field names, read like any other:
//!
//! - the id is the message key: a JSON object's id field, a JSON string's text, or else the
//!   key's text as it is;
//! - the event time is the message's timestamp, which counts toward the watermark as any
//!   record's does;
//! - the version is the message's header named like the version field, or 0 without one.
//!   Kafka orders an upsert topic's messages of one key by offset, so a producer that versions
//!   its records must give its tombstones a version too, or they delete only version 0.
//!
//! A tombstone without a key or a timestamp, or whose key is not text, names nothing to
//! delete: it stays a dead letter.

use serde_json::{Map, Value};

use crate::ingest::decode::FieldNames;

/// What a tombstone says: its key, timestamp (epoch ms) and version header, as received.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tombstone<'a> {
    /// The message key.
    pub key: Option<&'a [u8]>,
    /// The message timestamp.
    pub timestamp: Option<i64>,
    /// The header named like the version field.
    pub version: Option<&'a [u8]>,
}

/// The delete record `tombstone` stands for, as one JSON line in `names`; `None` if it names
/// no id. A version header that is not a number is kept as text, so that decoding the record
/// makes it a dead letter saying why.
pub fn delete_record(names: &FieldNames, tombstone: &Tombstone<'_>) -> Option<Vec<u8>> {
    let key = std::str::from_utf8(tombstone.key?).ok()?;
    let id = match serde_json::from_str::<Value>(key) {
        Ok(Value::Object(mut fields)) => fields.remove(&names.id)?,
        Ok(Value::String(text)) => Value::String(text),
        _ => Value::String(key.to_string()),
    };
    if id.as_str().is_some_and(str::is_empty) {
        return None;
    }
    let ts = tombstone.timestamp.filter(|ts| *ts >= 0)?;
    let version = match tombstone.version.map(std::str::from_utf8) {
        None => Value::from(0),
        Some(Ok(text)) => match text.trim().parse::<u64>() {
            Ok(v) => Value::from(v),
            Err(_) => Value::String(text.to_string()),
        },
        Some(Err(_)) => Value::String(String::from_utf8_lossy(tombstone.version?).into()),
    };
    let mut record = Map::new();
    record.insert(names.id.clone(), id);
    record.insert(names.key.clone(), Value::String(String::new()));
    record.insert(names.ts.clone(), Value::from(ts));
    record.insert(names.value.clone(), Value::from(0));
    record.insert(names.op.clone(), Value::String("delete".into()));
    record.insert(names.version.clone(), version);
    serde_json::to_vec(&Value::Object(record)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &[u8], version: Option<&[u8]>) -> Option<Value> {
        let tombstone = Tombstone {
            key: Some(key),
            timestamp: Some(1_000),
            version,
        };
        let bytes = delete_record(&FieldNames::default(), &tombstone)?;
        Some(serde_json::from_slice(&bytes).unwrap())
    }

    #[test]
    fn the_key_names_the_id() {
        let plain = record(b"o-1", None).unwrap();
        assert_eq!(plain["id"], "o-1");
        assert_eq!(plain["op"], "delete");
        assert_eq!(
            (plain["ts"].as_i64(), plain["version"].as_u64()),
            (Some(1_000), Some(0))
        );
        assert_eq!(record(b"\"o-2\"", None).unwrap()["id"], "o-2");
        assert_eq!(record(br#"{"id":17,"x":1}"#, None).unwrap()["id"], 17);
        assert_eq!(record(b"42", None).unwrap()["id"], "42");
    }

    #[test]
    fn the_version_header_orders_it() {
        assert_eq!(record(b"a", Some(b"7")).unwrap()["version"], 7);
        assert_eq!(record(b"a", Some(b"seven")).unwrap()["version"], "seven");
    }

    #[test]
    fn nothing_to_delete_without_an_id_or_a_time() {
        assert_eq!(record(b"", None), None);
        assert_eq!(record(br#"{"other":1}"#, None), None);
        assert_eq!(record(b"\xff", None), None);
        let untimed = Tombstone {
            key: Some(b"a"),
            ..Tombstone::default()
        };
        assert_eq!(delete_record(&FieldNames::default(), &untimed), None);
    }
}
