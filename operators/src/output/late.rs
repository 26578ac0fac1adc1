//! The line of `late.jsonl`: a record that came after its windows closed, with the watermark
//! it met (docs/design/0002-live-mode.md).

use std::io::{self, Write};

use serde::Serialize;

use crate::data::decimal::Scale;
use crate::data::event::Op;
use crate::data::time::format_millis;
use crate::incremental::split_late::LateRecord;
use crate::ingest::messages::{is_topic, topic_offset};

/// A late record's line.
#[derive(Serialize)]
struct LateOut<'a> {
    source: &'a str,
    epoch: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    partition: Option<u32>,
    offset: u64,
    id: &'a str,
    key: &'a str,
    ts: String,
    value: String,
    op: &'static str,
    version: u64,
    watermark: String,
}

/// Writes one late record, read from the input named `source`, as a JSON line; a record
/// from a topic names its partition and offset.
pub fn write_late(
    record: &LateRecord,
    source: &str,
    scale: Scale,
    out: &mut impl Write,
) -> io::Result<()> {
    let event = &record.event;
    let (partition, offset) = match is_topic(source) {
        true => {
            let (partition, offset) = topic_offset(event.position.offset);
            (Some(partition), offset)
        }
        false => (None, event.position.offset),
    };
    let line = LateOut {
        source,
        epoch: event.position.epoch,
        partition,
        offset,
        id: &event.id,
        key: &event.key,
        ts: format_millis(event.ts),
        value: event.value.to_canonical(scale),
        op: match event.op {
            Op::Upsert => "upsert",
            Op::Delete => "delete",
        },
        version: event.version,
        watermark: format_millis(record.watermark),
    };
    serde_json::to_writer(&mut *out, &line)?;
    out.write_all(b"\n")
}
