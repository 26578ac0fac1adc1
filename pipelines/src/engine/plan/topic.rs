//! A Kafka topic as a source: batches of its messages as epochs.
//!
//! Up to the partitions' high watermarks at start-up, the consumer reads the partitions one
//! after another, and an epoch is `--kafka-max-epoch-records` messages of one partition (the
//! last of a partition may be smaller): the same epochs for the same topic and start, however
//! the messages are fetched. After that (`--follow`), an epoch is what has arrived, at most as
//! many, in (partition, offset) order.
//!
//! A run resumed from a checkpoint starts each partition where the checkpoint had reached
//! (whatever `--kafka-start` says), and first plans again, range for range, the epochs the
//! run before it planned after that checkpoint.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::Duration;

use amend_operators::ingest::messages::{Messages, PartitionNext, PartitionRange};
use amend_operators::ingest::source::{Epoch, InputFile, Part};

use super::{Exact, PlanOptions, Planning, Replan, Source};
use crate::kafka::consume::{Fetch, Fetched, TopicReader};
use crate::kafka::{Tombstones, TopicUrl};

/// Where a checkpoint left a topic.
pub(super) struct Resume {
    /// Where reading each partition had reached.
    pub reached: Option<Vec<PartitionNext>>,
    /// The ranges of each epoch to plan again, in order.
    pub replay: Vec<Vec<PartitionRange>>,
}

/// One topic's messages, as they come from its consumer thread.
pub(super) struct TopicSource {
    input: Arc<InputFile>,
    rx: Receiver<Fetched>,
    /// Received and not yet planned, in arrival order.
    pending: Vec<Fetch>,
    /// Before catching up: whether `pending` ends with a partition read to its watermark.
    reached: bool,
    caught_up: bool,
    follow: bool,
    /// The consumer thread has stopped.
    ended: bool,
    max: usize,
    /// Where reading each partition stands, as planned.
    next: BTreeMap<i32, PartitionNext>,
    /// Where it started.
    started: Vec<PartitionNext>,
    /// Received of the epoch being planned again.
    replaying: Vec<Fetch>,
}

impl TopicSource {
    /// Connects to `url` and starts its consumer, as input number `index`.
    pub(super) fn new(
        url: &TopicUrl,
        index: u32,
        follow: bool,
        options: &PlanOptions,
        resume: Resume,
    ) -> anyhow::Result<TopicSource> {
        let topics = &options.topics;
        let reached = resume.reached.as_deref();
        let reader = TopicReader::connect(url, &topics.client, &topics.kafka_start, reached)?;
        let started = reader.started();
        let deletes =
            (topics.kafka_tombstones == Tombstones::Delete).then(|| options.names.clone());
        Ok(TopicSource {
            input: Arc::new(InputFile::topic(&url.to_string(), index)),
            next: started.iter().map(|p| (p.partition, *p)).collect(),
            started,
            replaying: Vec::new(),
            rx: reader.start(url, follow, resume.replay, deletes),
            pending: Vec::new(),
            reached: false,
            caught_up: false,
            follow,
            ended: false,
            max: topics.kafka_max_epoch_records.max(1),
        })
    }

    /// Where reading each partition started.
    pub(super) fn started(&self) -> Vec<PartitionNext> {
        self.started.clone()
    }

    /// The epoch of `batch`; reading each of its partitions has reached past it.
    fn plan(&mut self, planning: &mut Planning, mut batch: Vec<Fetch>) -> Epoch {
        batch.sort_unstable_by_key(|(partition, offset, _)| (*partition, *offset));
        let mut messages = Messages::new(batch.iter().map(|(p, o, v)| (*p, *o, v.as_deref())));
        for range in messages.ranges() {
            self.next.insert(
                range.partition,
                PartitionNext {
                    partition: range.partition,
                    next: range.end,
                    from_time: None,
                },
            );
        }
        messages.reached = self.next.values().copied().collect();
        Epoch {
            input: Arc::clone(&self.input),
            epoch: planning.epoch(),
            part: Part::Messages(messages),
        }
    }

    /// Takes what the consumer has sent, up to what one epoch needs.
    fn receive(&mut self) -> io::Result<()> {
        while !self.reached && self.pending.len() < self.max {
            match self.rx.try_recv() {
                Ok(Fetched::Messages(batch)) => self.pending.extend(batch),
                Ok(Fetched::Reached(_)) => self.reached = !self.pending.is_empty(),
                Ok(Fetched::CaughtUp) => self.caught_up = true,
                Ok(Fetched::Replayed) => {}
                Ok(Fetched::Trouble(why)) => {
                    eprintln!("amend: {}: {why} (retrying)", self.input.path.display());
                }
                Ok(Fetched::Failed(why)) => {
                    return Err(io::Error::other(format!(
                        "{}: {why}",
                        self.input.path.display()
                    )));
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.ended = true;
                    break;
                }
            }
        }
        Ok(())
    }
}

impl Source for TopicSource {
    /// At most one epoch: a full one, a partition's last, or (once caught up) what arrived.
    fn poll(&mut self, planning: &mut Planning) -> io::Result<Vec<Epoch>> {
        self.receive()?;
        let take = if self.pending.len() >= self.max {
            self.max
        } else if self.reached || (self.caught_up && self.follow) {
            self.pending.len()
        } else {
            0
        };
        if take == 0 {
            return Ok(Vec::new());
        }
        let rest = self.pending.split_off(take);
        let batch = std::mem::replace(&mut self.pending, rest);
        // A partition's last messages are planned in epochs of their own, however many.
        self.reached &= !self.pending.is_empty();
        Ok(vec![self.plan(planning, batch)])
    }

    /// The epoch `replan` read of this topic, once the consumer has fetched its ranges again.
    fn exact(&mut self, planning: &mut Planning, replan: &Replan) -> io::Result<Exact> {
        let Some(ranges) = replan.partitions.as_ref() else {
            return Ok(Exact::Other);
        };
        if replan.source != self.input.path.display().to_string() {
            return Ok(Exact::Other);
        }
        let name = self.input.path.display().to_string();
        let mut wait = Duration::from_millis(100);
        loop {
            match self.rx.recv_timeout(wait) {
                Ok(Fetched::Messages(batch)) => self.replaying.extend(batch),
                Ok(Fetched::Replayed) => break,
                Ok(Fetched::Trouble(why)) => eprintln!("amend: {name}: {why} (retrying)"),
                Ok(Fetched::Failed(why)) => return Err(io::Error::other(format!("{name}: {why}"))),
                Ok(Fetched::Reached(_) | Fetched::CaughtUp)
                | Err(RecvTimeoutError::Disconnected) => {
                    return Err(io::Error::other(format!(
                        "internal error: {name} ended before epoch {} was read again",
                        replan.epoch
                    )));
                }
                Err(RecvTimeoutError::Timeout) => return Ok(Exact::Wait),
            }
            wait = Duration::ZERO;
        }
        let batch = std::mem::take(&mut self.replaying);
        let epoch = self.plan(planning, batch);
        let Part::Messages(messages) = &epoch.part else {
            unreachable!("a topic's epochs are messages")
        };
        if messages.ranges() != *ranges {
            let read: Vec<String> = (ranges.iter())
                .map(|r| format!("partition {} offsets [{}, {})", r.partition, r.start, r.end))
                .collect();
            return Err(io::Error::other(format!(
                "{name}: the topic no longer holds the messages epoch {} read ({}): they were \
                 deleted, or the topic recreated; --from-scratch starts over",
                replan.epoch,
                read.join(", ")
            )));
        }
        Ok(Exact::Planned(epoch))
    }

    fn done(&self) -> bool {
        (self.ended || (self.caught_up && !self.follow)) && self.pending.is_empty()
    }

    /// Until every partition is read to its start-up watermark, the sources after it wait.
    fn behind(&self) -> bool {
        !self.caught_up || self.pending.len() >= self.max
    }
}
