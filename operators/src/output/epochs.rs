//! The line of `epochs.jsonl`: one per epoch, written after all of the epoch's other output is
//! flushed, so a reader that sees an epoch here sees all of it elsewhere.

use std::io::{self, Write};

use serde::Serialize;

use crate::ingest::messages::PartitionRange;

/// One epoch: what it read, where event time stood, when it was read and written out, and
/// the state held after it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EpochLine<'a> {
    /// The epoch.
    pub epoch: u64,
    /// The input it read, as given on the command line.
    pub source: &'a str,
    /// Offset of its first byte in the (decompressed) input; `None` for a topic.
    pub start: Option<u64>,
    /// Offset after its last byte; `None` for a compressed file read whole, and for a topic.
    pub end: Option<u64>,
    /// For a topic: the offsets read of each partition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partitions: Option<&'a [PartitionRange]>,
    /// Records read (accepted, dead-lettered and skipped).
    pub records: u64,
    /// Late records.
    pub late: u64,
    /// The watermark after the epochs before it (RFC 3339), if any record was read.
    pub watermark: Option<String>,
    /// When it was read (RFC 3339).
    pub read_at: String,
    /// When its output was flushed (RFC 3339).
    pub flushed_at: String,
    /// From read to flushed, in milliseconds (three decimals).
    pub latency_ms: f64,
    /// Ids held in operator state after it.
    pub state_ids: u64,
    /// Groups (or session records) held in operator state after it.
    pub state_groups: u64,
}

impl EpochLine<'_> {
    /// Writes the line.
    pub fn write(&self, out: &mut impl Write) -> io::Result<()> {
        serde_json::to_writer(&mut *out, self)?;
        out.write_all(b"\n")
    }
}
