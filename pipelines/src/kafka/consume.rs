//! Reading a topic: where each partition starts (`--kafka-start`) and ends (its high
//! watermark at start-up), and a consumer thread that fetches the messages in between.
//!
//! Up to the start-up watermarks the thread reads the partitions one after another, in
//! partition order, so that a bounded replay's epochs do not depend on fetch timing; with
//! `--follow` it then reads every partition from its watermark on, as messages arrive.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use amend_operators::ingest::decode::FieldNames;
use amend_operators::ingest::messages::{PartitionNext, PartitionRange, topic_position};
use amend_operators::ingest::tombstone::{Tombstone, delete_record};
use amend_operators::time::{check_millis, parse_rfc3339};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Headers;
use rdkafka::{Message, Offset, TopicPartitionList};

use super::{KafkaArgs, TopicUrl};
use crate::UsageError;

/// Where `--kafka-start` starts each partition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Start {
    /// The earliest offset retained.
    #[default]
    Earliest,
    /// The high watermark: only what comes after start-up.
    Latest,
    /// The first offset whose message timestamp is at or after this (epoch ms).
    Time(i64),
    /// Given offsets by partition; the others start at the earliest.
    Offsets(BTreeMap<i32, i64>),
}

impl std::str::FromStr for Start {
    type Err = String;

    fn from_str(text: &str) -> Result<Start, String> {
        let bad = || {
            format!(
                "{text}: expected earliest, latest, time:T (RFC 3339 or epoch ms) or offsets:P=O,..."
            )
        };
        match text {
            "earliest" => return Ok(Start::Earliest),
            "latest" => return Ok(Start::Latest),
            _ => {}
        }
        if let Some(time) = text.strip_prefix("time:") {
            let ms = match time.parse::<i64>() {
                Ok(ms) => check_millis(ms),
                Err(_) => parse_rfc3339(time),
            };
            return ms.map(Start::Time).map_err(|_| bad());
        }
        let list = text.strip_prefix("offsets:").ok_or_else(bad)?;
        let mut offsets = BTreeMap::new();
        for pair in list.split(',') {
            let (p, o) = pair.split_once('=').ok_or_else(bad)?;
            let (p, o) = (p.trim().parse::<i32>(), o.trim().parse::<i64>());
            match (p, o) {
                (Ok(p), Ok(o)) if p >= 0 && o >= 0 => offsets.insert(p, o),
                _ => return Err(bad()),
            };
        }
        Ok(Start::Offsets(offsets))
    }
}

/// The offsets `[start, end)` of one partition that a run reads before following.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Span {
    /// The partition.
    pub partition: i32,
    /// The first offset read.
    pub start: i64,
    /// The high watermark at start-up.
    pub end: i64,
}

/// One message: (partition, offset, value).
pub type Fetch = (i32, i64, Option<Vec<u8>>);

/// What the consumer thread sends.
pub enum Fetched {
    /// Messages, each partition's in offset order: (partition, offset, value).
    Messages(Vec<Fetch>),
    /// A partition is read up to its start-up watermark.
    Reached(i32),
    /// Every partition is read up to its start-up watermark.
    CaughtUp,
    /// The ranges of one epoch to plan again are all sent.
    Replayed,
    /// A broker is not answering; librdkafka retries.
    Trouble(String),
    /// The consumer failed for good.
    Failed(String),
}

/// The consumer of one topic, connected and placed: its partitions' spans.
pub struct TopicReader {
    consumer: BaseConsumer,
    /// The spans read before following, by partition.
    pub spans: Vec<Span>,
    /// With `--kafka-start time:T`: T, and the partitions whose first message at or after it
    /// has not come yet.
    from_time: Option<(i64, BTreeSet<i32>)>,
    /// With `--kafka-tombstones delete`: the field names of the delete records.
    deletes: Option<FieldNames>,
}

impl TopicReader {
    /// Connects to `url` (exit 2 naming it if no broker answers within `--kafka-timeout`, or if
    /// the topic does not exist) and works out where each partition starts and ends.
    /// With `reached` (from a checkpoint), each partition it names starts where it says.
    pub fn connect(
        url: &TopicUrl,
        kafka: &KafkaArgs,
        start: &Start,
        reached: Option<&[PartitionNext]>,
    ) -> anyhow::Result<Self> {
        let partitions = super::partitions(url, kafka)? as i32;
        let consumer = kafka.consumer(url, &[])?;
        let fail = |what: &str, e: KafkaError| UsageError(format!("{url}: cannot {what}: {e}"));
        let mut spans = Vec::new();
        for partition in 0..partitions {
            let (low, high) = consumer
                .fetch_watermarks(&url.topic, partition, kafka.timeout)
                .map_err(|e| fail("fetch the watermarks", e))?;
            spans.push(Span {
                partition,
                start: low,
                end: high,
            });
        }
        match start {
            Start::Earliest => {}
            Start::Latest => spans.iter_mut().for_each(|s| s.start = s.end),
            Start::Time(ms) => {
                let mut asked = TopicPartitionList::new();
                for s in &spans {
                    asked
                        .add_partition_offset(&url.topic, s.partition, Offset::Offset(*ms))
                        .map_err(|e| fail("ask offsets for a time", e))?;
                }
                let found = consumer
                    .offsets_for_times(asked, kafka.timeout)
                    .map_err(|e| fail("find the offsets for --kafka-start time", e))?;
                for s in &mut spans {
                    s.start = match found.find_partition(&url.topic, s.partition) {
                        Some(e) => match e.offset() {
                            Offset::Offset(o) => o.clamp(s.start, s.end),
                            _ => s.end,
                        },
                        None => s.end,
                    };
                }
            }
            Start::Offsets(given) => {
                for (&partition, &offset) in given {
                    let span = spans.get_mut(partition as usize).ok_or_else(|| {
                        UsageError(format!(
                            "--kafka-start offsets: {url} has no partition {partition} (it has {partitions})"
                        ))
                    })?;
                    if offset < span.start || offset > span.end {
                        return Err(UsageError(format!(
                            "--kafka-start offsets: offset {offset} of {url} partition {partition} \
                             is outside the offsets it holds, [{}, {}]",
                            span.start, span.end
                        ))
                        .into());
                    }
                    span.start = offset;
                }
            }
        }
        if let Some(s) = spans
            .iter()
            .find(|s| topic_position(s.partition, s.end).is_none())
        {
            return Err(UsageError(format!(
                "{url}: partition {} reaches offset {}, beyond the 2^40 amend can place",
                s.partition, s.end
            ))
            .into());
        }
        let mut from_time = match start {
            Start::Time(ms) => Some((*ms, spans.iter().map(|s| s.partition).collect())),
            _ => None,
        };
        if let Some(reached) = reached {
            from_time = resume(url, &mut spans, reached)?;
        }
        Ok(TopicReader {
            consumer,
            spans,
            from_time,
            deletes: None,
        })
    }

    /// Where reading each partition starts.
    pub fn started(&self) -> Vec<PartitionNext> {
        let waiting = |p| self.from_time.as_ref().filter(|(_, w)| w.contains(&p));
        (self.spans.iter())
            .map(|s| PartitionNext {
                partition: s.partition,
                next: s.start,
                from_time: waiting(s.partition).map(|(t, _)| *t),
            })
            .collect()
    }

    /// Starts the consumer thread: it reads the ranges of each epoch of `replay` (sending
    /// [`Fetched::Replayed`] after each), then each span from after them, then (if `follow`)
    /// everything after. With `deletes`, a tombstone's value is the delete record it stands
    /// for, in those field names.
    pub fn start(
        mut self,
        url: &TopicUrl,
        follow: bool,
        replay: Vec<Vec<PartitionRange>>,
        deletes: Option<FieldNames>,
    ) -> Receiver<Fetched> {
        let (tx, rx) = sync_channel(64);
        let topic = url.topic.clone();
        self.deletes = deletes;
        std::thread::spawn(move || {
            let result = self.replay(&topic, &replay, &tx).and_then(|more| {
                if more {
                    self.run(&topic, follow, &tx)
                } else {
                    Ok(())
                }
            });
            if let Err(e) = result {
                let _ = tx.send(Fetched::Failed(e.to_string()));
            }
        });
        rx
    }

    /// Reads the ranges of `replay`, and moves each span's start past them; false if the
    /// receiver is gone.
    fn replay(
        &mut self,
        topic: &str,
        replay: &[Vec<PartitionRange>],
        tx: &SyncSender<Fetched>,
    ) -> Result<bool, KafkaError> {
        for ranges in replay {
            for range in ranges {
                let span = Span {
                    partition: range.partition,
                    start: range.start,
                    end: range.end,
                };
                self.assign(topic, &[(span.partition, span.start)])?;
                if !self.read_to(topic, &span, tx)? {
                    return Ok(false);
                }
                if let Some(s) = self
                    .spans
                    .iter_mut()
                    .find(|s| s.partition == span.partition)
                {
                    s.start = s.start.max(span.end);
                }
            }
            if tx.send(Fetched::Replayed).is_err() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn run(
        &mut self,
        topic: &str,
        follow: bool,
        tx: &SyncSender<Fetched>,
    ) -> Result<(), KafkaError> {
        for span in self.spans.clone() {
            if span.start < span.end {
                self.assign(topic, &[(span.partition, span.start)])?;
                if !self.read_to(topic, &span, tx)? {
                    return Ok(());
                }
            }
            if tx.send(Fetched::Reached(span.partition)).is_err() {
                return Ok(());
            }
        }
        if tx.send(Fetched::CaughtUp).is_err() || !follow {
            return Ok(());
        }
        let from: Vec<_> = self.spans.iter().map(|s| (s.partition, s.end)).collect();
        self.assign(topic, &from)?;
        let mut trouble = Trouble::default();
        let mut batch = Vec::new();
        loop {
            // What has arrived, up to a batch: waiting only while there is nothing.
            let wait = if batch.is_empty() { 100 } else { 0 };
            let idle = match self.consumer.poll(Duration::from_millis(wait)) {
                Some(Ok(m)) => {
                    if keep(&mut self.from_time, &m) {
                        batch.push(fetch(&m, self.deletes.as_ref()));
                    }
                    false
                }
                Some(Err(KafkaError::PartitionEOF(_))) => true,
                Some(Err(e)) => {
                    if !trouble.report(&e, tx) {
                        return Ok(());
                    }
                    true
                }
                None => true,
            };
            let ready = batch.len() >= BATCH || (idle && !batch.is_empty());
            if ready
                && tx
                    .send(Fetched::Messages(std::mem::take(&mut batch)))
                    .is_err()
            {
                return Ok(());
            }
        }
    }

    fn assign(&self, topic: &str, from: &[(i32, i64)]) -> Result<(), KafkaError> {
        let mut list = TopicPartitionList::new();
        for &(partition, offset) in from {
            list.add_partition_offset(topic, partition, Offset::Offset(offset))?;
        }
        self.consumer.assign(&list)
    }

    /// Reads `span`'s partition up to its end, in batches; false if the receiver is gone.
    fn read_to(
        &mut self,
        topic: &str,
        span: &Span,
        tx: &SyncSender<Fetched>,
    ) -> Result<bool, KafkaError> {
        let mut next = span.start;
        let mut batch = Vec::new();
        let mut trouble = Trouble::default();
        while next < span.end {
            match self.consumer.poll(Duration::from_millis(100)) {
                None => {}
                Some(Ok(m)) if m.offset() < span.end => {
                    next = m.offset() + 1;
                    if keep(&mut self.from_time, &m) {
                        batch.push(fetch(&m, self.deletes.as_ref()));
                    }
                }
                Some(Ok(_)) => next = span.end,
                Some(Err(KafkaError::PartitionEOF(_))) => {
                    // Past control records (transaction markers) at the end.
                    let list = self.consumer.position()?;
                    if let Some(Offset::Offset(at)) = list
                        .find_partition(topic, span.partition)
                        .map(|e| e.offset())
                    {
                        next = next.max(at);
                    }
                }
                Some(Err(e)) if !trouble.report(&e, tx) => return Ok(false),
                Some(Err(_)) => {}
            }
            let ready = batch.len() >= BATCH || (next >= span.end && !batch.is_empty());
            if ready
                && tx
                    .send(Fetched::Messages(std::mem::take(&mut batch)))
                    .is_err()
            {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// Whether `m` is read: with `--kafka-start time:T`, a partition's messages are read from
/// the first whose timestamp is at or after T. The broker's offset for T is where
/// reading starts, and messages before T after it are passed over too, for brokers that
/// answer an earlier offset than Kafka would.
fn keep(
    from_time: &mut Option<(i64, BTreeSet<i32>)>,
    m: &rdkafka::message::BorrowedMessage<'_>,
) -> bool {
    let Some((from, waiting)) = from_time else {
        return true;
    };
    if !waiting.contains(&m.partition()) {
        return true;
    }
    let at_or_after = m.timestamp().to_millis().is_some_and(|t| t >= *from);
    if at_or_after {
        waiting.remove(&m.partition());
    }
    at_or_after
}

/// The most messages sent at once.
const BATCH: usize = 1000;

fn fetch(m: &rdkafka::message::BorrowedMessage<'_>, deletes: Option<&FieldNames>) -> Fetch {
    let value = match (m.payload(), deletes) {
        (Some(value), _) => Some(value.to_vec()),
        (None, Some(names)) => {
            let version = m.headers().and_then(|headers| {
                (headers.iter())
                    .find(|h| h.key == names.version)
                    .and_then(|h| h.value)
            });
            let tombstone = Tombstone {
                key: m.key(),
                timestamp: m.timestamp().to_millis(),
                version,
            };
            delete_record(names, &tombstone)
        }
        (None, None) => None,
    };
    (m.partition(), m.offset(), value)
}

/// Places `spans` where a checkpoint's `reached` says, checking that the topic still holds
/// those offsets; returns the partitions still waiting for `--kafka-start time:T`'s T.
fn resume(
    url: &TopicUrl,
    spans: &mut [Span],
    reached: &[PartitionNext],
) -> anyhow::Result<Option<(i64, BTreeSet<i32>)>> {
    let mut waiting: Option<(i64, BTreeSet<i32>)> = None;
    for r in reached {
        let Some(span) = spans.iter_mut().find(|s| s.partition == r.partition) else {
            return Err(UsageError(format!(
                "{url}: the checkpoint read partition {}, which the topic no longer has;                  --from-scratch starts over",
                r.partition
            ))
            .into());
        };
        if r.next > span.end {
            return Err(UsageError(format!(
                "{url}: the checkpoint read partition {} up to offset {}, beyond its end ({}):                  was the topic recreated? --from-scratch starts over",
                r.partition, r.next, span.end
            ))
            .into());
        }
        span.start = r.next;
        if let Some(t) = r.from_time {
            waiting
                .get_or_insert((t, BTreeSet::new()))
                .1
                .insert(r.partition);
        }
    }
    Ok(waiting)
}

/// Reports broker trouble at most every 10 s.
#[derive(Default)]
struct Trouble {
    last: Option<Instant>,
}

impl Trouble {
    /// Passes `error` on if it is time to; false if the receiver is gone.
    fn report(&mut self, error: &KafkaError, tx: &SyncSender<Fetched>) -> bool {
        if self
            .last
            .is_some_and(|t| t.elapsed() < Duration::from_secs(10))
        {
            return true;
        }
        self.last = Some(Instant::now());
        tx.send(Fetched::Trouble(error.to_string())).is_ok()
    }
}
