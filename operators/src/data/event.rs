//! The typed records that flow through a pipeline: events, their positions, dead letters.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use crate::data::decimal::Decimal;
use crate::data::time::Millis;

/// The dataflow timestamp: an internal sequence number of ingested batches.
///
/// An epoch (one input file, by default; docs/format.md section 2) is split into several internal
/// batches so that the dataflow works on a bounded amount of data at a time; [`epoch_of`]
/// recovers the epoch.
pub type Time = u64;

/// How many internal batch times one epoch owns (the low 32 bits of a [`Time`]).
const BATCH_BITS: u32 = 32;

/// The internal time of batch `batch` of `epoch`. The epoch's last time is never a batch's:
/// it is left for [`epoch_end`].
pub fn batch_time(epoch: u64, batch: u64) -> Time {
    (epoch << BATCH_BITS) | batch.min((1 << BATCH_BITS) - 2)
}

/// The last internal time of `epoch`, after all of its batches: an input that waits there
/// holds back no batch of the epoch, and nothing of the next.
pub fn epoch_end(epoch: u64) -> Time {
    epoch_start(epoch + 1) - 1
}

/// The epoch an internal time belongs to.
pub fn epoch_of(time: Time) -> u64 {
    time >> BATCH_BITS
}

/// The first internal time of `epoch`.
pub fn epoch_start(epoch: u64) -> Time {
    epoch << BATCH_BITS
}

/// What a record does to its id.
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum Op {
    /// Sets the id's record (the default).
    #[default]
    Upsert,
    /// Retracts the id.
    Delete,
}

/// Where a record was read: a total order over all input that any worker can compute.
///
/// Fields compare in order: epoch, then the file's index among all inputs, then byte offset.
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Position {
    /// The epoch the record was ingested in.
    pub epoch: u64,
    /// Index of the file among all inputs: `--input` files first, then `--corrections`;
    /// audit logs are numbered from [`AUDIT_FILE_BASE`].
    pub file: u32,
    /// Byte offset of the line's start in the (decompressed) file.
    pub offset: u64,
}

/// The file index of the first audit log (`--audit-log`). Audit logs are numbered apart from
/// the main inputs, so a record's position says whether it was recovered from a log, whatever
/// files a followed directory adds later. Only the epoch orders records of different files,
/// so the numbering changes no resolution.
pub const AUDIT_FILE_BASE: u32 = 1 << 31;

impl Position {
    /// Whether the record was read from an audit log.
    pub fn is_audit(&self) -> bool {
        self.file >= AUDIT_FILE_BASE
    }
}

/// A decoded, valid input record.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Event {
    /// Identity of the event: the idempotency key. Short ids (up to 24 bytes) are held inline.
    pub id: CompactString,
    /// Group key of the aggregates; held inline like the id.
    pub key: CompactString,
    /// Event time.
    pub ts: Millis,
    /// The amount, in units of 10^-scale.
    pub value: Decimal,
    /// Upsert or delete.
    pub op: Op,
    /// Orders corrections of one id.
    pub version: u64,
    /// Where the record was read.
    pub position: Position,
}

/// A decoded record: its event, and the producer's `source` and `seq` it may carry, which only
/// gap detection reads. The event flows through resolution and aggregation without them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// The event.
    pub event: Event,
    /// The producer.
    pub source: Option<CompactString>,
    /// The producer's sequence number.
    pub seq: Option<u64>,
}

/// What a record tells gap detection: its producer, its sequence number, and a stable hash of
/// its id (to tell ids apart without keeping them).
pub type Sighting = (CompactString, u64, u64);

impl Record {
    /// The record's sighting, if it carries both a producer and a sequence number.
    pub fn sighting(&self) -> Option<Sighting> {
        use differential_dataflow::Hashable;
        Some((self.source.clone()?, self.seq?, self.event.id.hashed()))
    }
}

impl Event {
    /// The order in which records of one id supersede each other: greatest wins.
    pub fn precedence(&self) -> (u64, Position) {
        (self.version, self.position)
    }
}

/// A bad record, kept with everything needed to find and fix it.
///
/// Dead letters order by position, so their output is the same for any worker count.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Where the line starts.
    pub position: Position,
    /// The file, as given on the command line.
    pub source: String,
    /// 1-based physical line number (a CSV header is line 1); 0 for a message of a topic,
    /// whose partition and offset the position holds
    /// ([`topic_position`](crate::ingest::messages::topic_position)).
    pub line: u64,
    /// What is wrong, for a person to act on.
    pub reason: String,
    /// The line as text, invalid UTF-8 replaced, cut at [`RAW_LIMIT`] bytes.
    pub raw: String,
}

/// The most bytes of a bad line kept in its dead letter.
pub const RAW_LIMIT: usize = 64 * 1024;

/// The text of a raw line for a dead letter: lossy UTF-8, cut at [`RAW_LIMIT`] bytes.
pub fn raw_text(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(RAW_LIMIT)];
    let text = String::from_utf8_lossy(cut);
    // A cut through a multi-byte character shows as one replacement character at the end.
    text.into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_times_order_within_and_across_epochs() {
        assert!(batch_time(0, 5) < batch_time(1, 0));
        assert_eq!(epoch_of(batch_time(7, 123)), 7);
        assert_eq!(epoch_start(3), batch_time(3, 0));
        assert!(batch_time(3, u64::MAX) < epoch_end(3));
        assert!(epoch_end(3) < epoch_start(4));
    }

    #[test]
    fn raw_text_is_cut_and_lossy() {
        assert_eq!(raw_text(b"ab\xffc"), "ab\u{fffd}c");
        assert_eq!(raw_text(&vec![b'x'; RAW_LIMIT + 10]).len(), RAW_LIMIT);
    }
}
