//! The line of `dead_letter.jsonl`: a bad record with its source, position and reason
//! (docs/format.md, section 6).

use std::io::{self, Write};

use serde::Serialize;

use crate::data::event::DeadLetter;
use crate::ingest::messages::{is_topic, topic_offset};

/// The dead-letter line form.
#[derive(Debug, Serialize)]
struct DeadLetterOut<'a> {
    source: &'a str,
    epoch: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    partition: Option<u32>,
    offset: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<u64>,
    reason: &'a str,
    raw: &'a str,
}

/// Writes one dead letter as a JSON line.
pub fn write_dead_letter(dead: &DeadLetter, out: &mut impl Write) -> io::Result<()> {
    // A message's dead letter names its partition and offset; a line's, its offset and line.
    let (partition, offset, line) = match is_topic(&dead.source) {
        true => {
            let (partition, offset) = topic_offset(dead.position.offset);
            (Some(partition), offset, None)
        }
        false => (None, dead.position.offset, Some(dead.line)),
    };
    let line = DeadLetterOut {
        source: &dead.source,
        epoch: dead.position.epoch,
        partition,
        offset,
        line,
        reason: &dead.reason,
        raw: &dead.raw,
    };
    serde_json::to_writer(&mut *out, &line)?;
    out.write_all(b"\n")
}
