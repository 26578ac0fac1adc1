//! A Kafka topic as a source: batches of its messages as epochs.
//!
//! Up to the partitions' high watermarks at start-up, the consumer reads the partitions one
//! after another, and an epoch is `--kafka-max-epoch-records` messages of one partition (the
//! last of a partition may be smaller): the same epochs for the same topic and start, however
//! the messages are fetched. After that (`--follow`), an epoch is what has arrived, at most as
//! many, in (partition, offset) order.

use std::io;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, TryRecvError};

use amend_operators::ingest::messages::Messages;
use amend_operators::ingest::source::{Epoch, InputFile, Part};

use super::{Planning, Source};
use crate::kafka::consume::{Fetch, Fetched, TopicReader};
use crate::kafka::{KafkaSourceArgs, TopicUrl};

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
}

impl TopicSource {
    /// Connects to `url` and starts its consumer, as input number `index`.
    pub(super) fn new(
        url: &TopicUrl,
        index: u32,
        follow: bool,
        options: &KafkaSourceArgs,
    ) -> anyhow::Result<TopicSource> {
        let reader = TopicReader::connect(url, &options.client, &options.kafka_start)?;
        Ok(TopicSource {
            input: Arc::new(InputFile::topic(&url.to_string(), index)),
            rx: reader.start(url, follow),
            pending: Vec::new(),
            reached: false,
            caught_up: false,
            follow,
            ended: false,
            max: options.kafka_max_epoch_records.max(1),
        })
    }

    /// Takes what the consumer has sent, up to what one epoch needs.
    fn receive(&mut self) -> io::Result<()> {
        while !self.reached && self.pending.len() < self.max {
            match self.rx.try_recv() {
                Ok(Fetched::Messages(batch)) => self.pending.extend(batch),
                Ok(Fetched::Reached(_)) => self.reached = !self.pending.is_empty(),
                Ok(Fetched::CaughtUp) => self.caught_up = true,
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
        let mut batch = std::mem::replace(&mut self.pending, rest);
        // A partition's last messages are planned in epochs of their own, however many.
        self.reached &= !self.pending.is_empty();
        batch.sort_unstable_by_key(|(partition, offset, _)| (*partition, *offset));
        let messages = Messages::new(batch.iter().map(|(p, o, v)| (*p, *o, v.as_deref())));
        Ok(vec![Epoch {
            input: Arc::clone(&self.input),
            epoch: planning.epoch(),
            part: Part::Messages(messages),
        }])
    }

    fn done(&self) -> bool {
        (self.ended || (self.caught_up && !self.follow)) && self.pending.is_empty()
    }

    /// Until every partition is read to its start-up watermark, the sources after it wait.
    fn behind(&self) -> bool {
        !self.caught_up || self.pending.len() >= self.max
    }
}
