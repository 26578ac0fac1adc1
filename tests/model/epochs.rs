//! Small generated histories written as one JSON Lines file per epoch, beside the reference
//! model's records: for property tests that run the pipeline in-process.

use std::fs;
use std::path::Path;

use crate::reference::{Record, canonical};

/// One generated record: (id, key, window index, offset in window, units at scale 2, version,
/// delete).
pub type Gen = (u8, u8, i64, i64, i128, u64, bool);

/// 2026-11-20T00:00:00Z.
pub const BASE: i64 = 1_795_132_800_000;

/// Writes `generated` into `epochs` files `epoch{i}.jsonl` in `dir`, spread evenly, keys
/// `a`, `b`, `c`, times in windows of `size` ms from [`BASE`]; a record with id `bad_id` is
/// written as a bad line instead. Returns the model's records (values at scale 6) and the
/// paths.
pub fn write_epochs(
    dir: &Path,
    generated: &[Gen],
    epochs: usize,
    size: i64,
    bad_id: Option<u8>,
) -> (Vec<Record>, Vec<String>) {
    let mut texts = vec![String::new(); epochs];
    let mut records = Vec::new();
    for (i, &(id, key, window, offset, units, version, delete)) in generated.iter().enumerate() {
        let epoch = i * epochs / generated.len();
        let text = &mut texts[epoch];
        if Some(id) == bad_id {
            text.push_str("{\"id\": not json\n");
            continue;
        }
        let ts = BASE + window * size + offset % size;
        let (id, key) = (format!("e{id}"), ["a", "b", "c"][key as usize].to_string());
        let op = if delete { r#","op":"delete""# } else { "" };
        let position = (epoch as u64, epoch as u32, text.len() as u64);
        let value = canonical(units, 2);
        text.push_str(&format!(
            r#"{{"id":"{id}","key":"{key}","ts":{ts},"value":{value},"version":{version}{op}}}"#
        ));
        text.push('\n');
        records.push(Record {
            id,
            key,
            ts,
            units: units * 10_000, // at scale 6
            delete,
            version,
            position,
        });
    }
    let paths = texts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let path = dir.join(format!("epoch{i}.jsonl"));
            fs::write(&path, text).unwrap();
            path.display().to_string()
        })
        .collect();
    (records, paths)
}
