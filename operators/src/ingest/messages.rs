//! Messages from a broker's partitions as one epoch's input (docs/format.md, section 8).
//!
//! A batch of messages is laid out as lines, one message value per line, in (partition,
//! offset) order, so that workers split and read it as they read a file's bytes. A value's
//! own line breaks are JSON whitespace (inside a JSON string they must be escaped), so they
//! become spaces and a value stays one line. A record's position is (epoch, source, partition,
//! offset): [`topic_position`] packs partition and offset into the position's offset so that
//! positions order by partition, then offset.

use std::sync::Arc;

/// Bits of a position's offset that hold the message offset; the partition is above them.
const OFFSET_BITS: u32 = 40;

/// The position offset of the message at `offset` of `partition`: ordered by partition, then
/// offset. `None` if either is out of range (a partition of 2^24 or more, an offset of 2^40 or
/// more, or a negative one).
pub fn topic_position(partition: i32, offset: i64) -> Option<u64> {
    let partition = u64::try_from(partition).ok().filter(|p| *p < 1 << 24)?;
    let offset = u64::try_from(offset)
        .ok()
        .filter(|o| *o < 1 << OFFSET_BITS)?;
    Some(partition << OFFSET_BITS | offset)
}

/// Whether the input named `name` is a topic: topics are named by their `kafka://` URL, and
/// every position read from one is a [`topic_position`].
pub fn is_topic(name: &str) -> bool {
    name.starts_with("kafka://")
}

/// The partition and offset a [`topic_position`] packed.
pub fn topic_offset(position: u64) -> (u32, u64) {
    (
        (position >> OFFSET_BITS) as u32,
        position & ((1 << OFFSET_BITS) - 1),
    )
}

/// One message of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Where its line starts in the batch's bytes.
    pub at: u64,
    /// Its partition.
    pub partition: i32,
    /// Its offset in the partition.
    pub offset: i64,
    /// Whether its value is null (a tombstone): its line is empty.
    pub null: bool,
}

/// The offsets `[start, end)` of one partition that an epoch read.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartitionRange {
    /// The partition.
    pub partition: i32,
    /// The first offset.
    pub start: i64,
    /// After the last offset.
    pub end: i64,
}

/// Where reading one partition of a topic stands: what a checkpoint keeps of it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartitionNext {
    /// The partition.
    pub partition: i32,
    /// The next offset to read.
    pub next: i64,
    /// With `--kafka-start time:T`: T, while the partition's first message at or after it has
    /// not been read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_time: Option<i64>,
}

/// A batch of messages as lines, and what each line is.
#[derive(Clone, Debug)]
pub struct Messages {
    /// The values, one per line.
    pub data: Arc<[u8]>,
    /// The messages, in line order.
    pub messages: Arc<[Message]>,
    /// Where reading each partition of the topic stands after the batch.
    pub reached: Arc<[PartitionNext]>,
}

impl Messages {
    /// Lays out `(partition, offset, value)` messages, which must come in (partition, offset)
    /// order.
    pub fn new<'a>(batch: impl IntoIterator<Item = (i32, i64, Option<&'a [u8]>)>) -> Messages {
        let mut data = Vec::new();
        let mut messages = Vec::new();
        for (partition, offset, value) in batch {
            debug_assert!(
                messages
                    .last()
                    .is_none_or(|m: &Message| (m.partition, m.offset) < (partition, offset))
            );
            messages.push(Message {
                at: data.len() as u64,
                partition,
                offset,
                null: value.is_none(),
            });
            let value = value.unwrap_or_default();
            data.extend(value.iter().map(|b| match b {
                b'\n' | b'\r' => b' ',
                b => *b,
            }));
            data.push(b'\n');
        }
        Messages {
            data: data.into(),
            messages: messages.into(),
            reached: Arc::new([]),
        }
    }

    /// The offsets `[start, end)` of each partition the batch holds messages of: from its
    /// first message to after its last, in partition order.
    pub fn ranges(&self) -> Vec<PartitionRange> {
        let mut ranges: Vec<PartitionRange> = Vec::new();
        for m in self.messages.iter() {
            match ranges.last_mut() {
                Some(last) if last.partition == m.partition => last.end = m.offset + 1,
                _ => ranges.push(PartitionRange {
                    partition: m.partition,
                    start: m.offset,
                    end: m.offset + 1,
                }),
            }
        }
        ranges
    }

    /// The message whose line starts at `at`.
    pub fn at(&self, at: u64) -> &Message {
        let i = self.messages.partition_point(|m| m.at <= at);
        &self.messages[i.checked_sub(1).expect("a line starts at a message")]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_order_by_partition_then_offset() {
        let a = topic_position(0, (1 << 40) - 1).unwrap();
        let b = topic_position(1, 0).unwrap();
        assert!(a < b);
        assert_eq!(topic_offset(b), (1, 0));
        assert_eq!(topic_offset(topic_position(7, 123).unwrap()), (7, 123));
        assert_eq!(topic_position(-1, 0), None);
        assert_eq!(topic_position(0, -1), None);
        assert_eq!(topic_position(0, 1 << 40), None);
        assert_eq!(topic_position(1 << 24, 0), None);
    }

    #[test]
    fn values_become_lines() {
        let batch = Messages::new([
            (0, 5, Some(&b"{\"a\":\n1}"[..])),
            (0, 6, None),
            (2, 0, Some(&b"x\r\n"[..])),
        ]);
        assert_eq!(&*batch.data, b"{\"a\": 1}\n\nx  \n");
        assert_eq!(batch.at(0).offset, 5);
        assert!(batch.at(9).null);
        assert_eq!(batch.at(10).partition, 2);
        let range = |partition, start, end| PartitionRange {
            partition,
            start,
            end,
        };
        assert_eq!(batch.ranges(), vec![range(0, 5, 7), range(2, 0, 1)]);
    }
}
