//! The line of `dead_letter.jsonl`: a bad record with its source, position and reason
//! (docs/format.md, section 6).

use std::io::{self, Write};

use serde::Serialize;

use crate::data::event::DeadLetter;

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
