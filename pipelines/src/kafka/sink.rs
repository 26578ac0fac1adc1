//! The Kafka sinks: the changelog (`--kafka-changelog`), the dead letters
//! (`--kafka-dead-letters`) and the table as an upsert topic (`--kafka-upserts`), each epoch
//! in one transaction over all of them.
//!
//! Every message carries the headers `amend-run` (the run's id) and `amend-epoch`. A run with
//! `--checkpoint-dir` keeps its id in that directory (`kafka-run`), so that a restart, which
//! plans again the epochs after its checkpoint, first reads which epochs of its run the topics
//! hold committed and does not send those again; an epoch whose transaction did not commit is
//! sent again in full.

use std::path::Path;
use std::time::{Duration, SystemTime};

use amend_operators::Scale;
use amend_operators::output::dead_letter::write_dead_letter;
use amend_operators::output::rows::write_row;
use amend_operators::time::format_millis;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use sha2::{Digest, Sha256};

use super::{KafkaArgs, TopicUrl, millis};
use crate::UsageError;
use crate::engine::writers::{ClosedEpoch, Writer};

/// Where the sinks write.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct KafkaSinkArgs {
    /// Also send each changelog line to this topic (kafka://HOST:PORT/TOPIC), keyed by window and key, one transaction per epoch.
    #[arg(long, value_name = "URL", help_heading = "Kafka")]
    pub kafka_changelog: Option<TopicUrl>,
    /// Also send each dead letter to this topic, in the epoch's transaction.
    #[arg(long, value_name = "URL", help_heading = "Kafka")]
    pub kafka_dead_letters: Option<TopicUrl>,
    /// Also keep the table in this topic as upserts: key = window and key, value = the row, a tombstone when a row disappears (for compacted topics and upsert-kafka readers).
    #[arg(long, value_name = "URL", help_heading = "Kafka")]
    pub kafka_upserts: Option<TopicUrl>,
}

impl KafkaSinkArgs {
    /// Whether any sink is asked for.
    pub fn any(&self) -> bool {
        self.topics().next().is_some()
    }

    fn topics(&self) -> impl Iterator<Item = &TopicUrl> {
        [
            &self.kafka_changelog,
            &self.kafka_dead_letters,
            &self.kafka_upserts,
        ]
        .into_iter()
        .flatten()
    }
}

/// One transactional producer for every sink topic.
pub struct KafkaSink {
    producer: BaseProducer,
    changelog: Option<String>,
    dead_letters: Option<String>,
    upserts: Option<String>,
    scale: Scale,
    timeout: Duration,
    run: String,
    /// The last epoch the topics hold committed from this run (by an earlier process).
    committed: Option<u64>,
}

impl KafkaSink {
    /// Connects to the sinks' cluster, checks their topics, and learns which epochs an earlier
    /// process of this run committed (with a `checkpoints` directory).
    pub fn connect(
        args: &KafkaSinkArgs,
        kafka: &KafkaArgs,
        scale: Scale,
        checkpoints: Option<(&Path, bool)>,
    ) -> anyhow::Result<Option<KafkaSink>> {
        let Some(first) = args.topics().next() else {
            return Ok(None);
        };
        if let Some(other) = args.topics().find(|url| url.brokers != first.brokers) {
            return Err(UsageError(format!(
                "{other}: the Kafka sinks must be on one cluster ({first} is not), as one \
                 transaction covers them"
            ))
            .into());
        }
        let partitions = args
            .topics()
            .map(|url| super::partitions(url, kafka))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let run = run_id(checkpoints)?;
        let mut config = kafka.config(first);
        let transactional = format!("amend-{}", &run[..16]);
        config
            .set("transactional.id", &transactional)
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set("retry.backoff.ms", "10")
            .set("message.timeout.ms", millis(kafka.timeout));
        let producer: BaseProducer = config
            .create()
            .map_err(|e| UsageError(format!("{first}: {e}")))?;
        producer
            .init_transactions(kafka.timeout)
            .map_err(|e| UsageError(format!("{first}: cannot start transactions: {e}")))?;
        // Starting transactions aborted any the run's previous process left open, so what is
        // committed now is all it will ever have committed.
        let committed = match checkpoints {
            Some(_) => last_committed(args, &partitions, kafka, &run)?,
            None => None,
        };
        let topic = |url: &Option<TopicUrl>| url.as_ref().map(|u| u.topic.clone());
        Ok(Some(KafkaSink {
            producer,
            changelog: topic(&args.kafka_changelog),
            dead_letters: topic(&args.kafka_dead_letters),
            upserts: topic(&args.kafka_upserts),
            scale,
            timeout: kafka.timeout,
            run,
            committed,
        }))
    }

    /// The epoch's messages: (topic, key, value).
    fn messages(&self, epoch: &ClosedEpoch<'_>) -> anyhow::Result<Vec<Outgoing<'_>>> {
        let mut out = Vec::new();
        if let Some(table) = epoch.table {
            let changes = table.changes();
            if let Some(topic) = &self.changelog {
                let retractions = changes.retractions().map(|row| (row, -1));
                for (row, diff) in retractions.chain(changes.insertions().map(|row| (row, 1))) {
                    let mut value = Vec::new();
                    write_row(&mut value, self.scale, row, Some((epoch.epoch, diff)))?;
                    value.pop();
                    out.push((topic.as_str(), Some(row_key(row.0)), Some(value)));
                }
            }
            if let Some(topic) = &self.upserts {
                let inserted: std::collections::BTreeSet<_> =
                    changes.insertions().map(|(row, _)| row).collect();
                for (row, _) in changes.retractions() {
                    if !inserted.contains(row) {
                        out.push((topic.as_str(), Some(row_key(row)), None));
                    }
                }
                for row in changes.insertions() {
                    let mut value = Vec::new();
                    write_row(&mut value, self.scale, row, None)?;
                    value.pop();
                    out.push((topic.as_str(), Some(row_key(row.0)), Some(value)));
                }
            }
        }
        if let Some(topic) = &self.dead_letters {
            for dead in epoch.dead {
                let mut value = Vec::new();
                write_dead_letter(dead, &mut value)?;
                value.pop();
                out.push((topic.as_str(), None, Some(value)));
            }
        }
        Ok(out)
    }

    /// Sends `messages` as epoch `epoch` in one transaction.
    fn send(&self, epoch: u64, messages: &[Outgoing<'_>]) -> Result<(), KafkaError> {
        self.producer.begin_transaction()?;
        let number = epoch.to_string();
        for (topic, key, value) in messages {
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: RUN,
                    value: Some(&self.run),
                })
                .insert(Header {
                    key: EPOCH,
                    value: Some(&number),
                });
            let mut record = BaseRecord::<[u8], [u8]>::to(topic).headers(headers);
            if let Some(key) = key {
                record = record.key(key.as_bytes());
            }
            if let Some(value) = value {
                record = record.payload(value);
            }
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        self.producer.poll(Duration::from_millis(10));
                    }
                    Err((e, _)) => return Err(e),
                }
            }
            self.producer.poll(Duration::ZERO);
        }
        self.producer.commit_transaction(self.timeout)
    }
}

/// A message to send: topic, key, value (`None`: a tombstone).
type Outgoing<'a> = (&'a str, Option<String>, Option<Vec<u8>>);

const RUN: &str = "amend-run";
const EPOCH: &str = "amend-epoch";

impl Writer for KafkaSink {
    fn epoch(&mut self, epoch: &ClosedEpoch<'_>) -> anyhow::Result<()> {
        if self.committed.is_some_and(|c| epoch.epoch <= c) {
            return Ok(()); // sent and committed before the restart
        }
        let messages = self.messages(epoch)?;
        if messages.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.send(epoch.epoch, &messages) {
            let _ = self.producer.abort_transaction(self.timeout);
            anyhow::bail!("the Kafka sinks: cannot commit epoch {}: {e}", epoch.epoch);
        }
        crate::engine::checkpoint::fault("after-kafka-commit");
        Ok(())
    }
}

/// A row's message key: its window and key, as JSON.
fn row_key((window, key): &(amend_operators::Window, compact_str::CompactString)) -> String {
    serde_json::json!({
        "window_start": format_millis(window.start),
        "window_end": format_millis(window.end),
        "key": key.as_str(),
    })
    .to_string()
}

/// The run's id: kept in the checkpoint directory (a new one with `--from-scratch`), so that
/// every process of one run shares it; a new one for each run without checkpoints.
fn run_id(checkpoints: Option<(&Path, bool)>) -> anyhow::Result<String> {
    let fresh = || {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let seed = format!("{}:{}", now.as_nanos(), std::process::id());
        crate::engine::checkpoint::manifest::hex(&Sha256::digest(seed.as_bytes()))
    };
    let Some((dir, from_scratch)) = checkpoints else {
        return Ok(fresh());
    };
    let path = dir.join("kafka-run");
    if !from_scratch
        && let Ok(text) = std::fs::read_to_string(&path)
        && text.trim().len() == 64
    {
        return Ok(text.trim().to_string());
    }
    let id = fresh();
    std::fs::create_dir_all(dir)
        .and_then(|()| {
            let tmp = dir.join("kafka-run.tmp");
            std::fs::write(&tmp, format!("{id}\n"))?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(dir)?.sync_all()
        })
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    Ok(id)
}

/// The greatest epoch of run `run` that the sink topics (with `partitions` each) hold
/// committed: read from the end of each partition backwards (read_committed), as far as a
/// message of the run is found.
fn last_committed(
    args: &KafkaSinkArgs,
    partitions: &[usize],
    kafka: &KafkaArgs,
    run: &str,
) -> anyhow::Result<Option<u64>> {
    let mut last = None;
    for (url, &count) in args.topics().zip(partitions) {
        let extra = [
            ("fetch.wait.max.ms", "10"),
            ("isolation.level", "read_committed"),
        ];
        let consumer = kafka.consumer(url, &extra)?;
        let fail = |e: KafkaError| anyhow::anyhow!("{url}: cannot read what was committed: {e}");
        for partition in 0..count as i32 {
            let (low, high) = consumer
                .fetch_watermarks(&url.topic, partition, kafka.timeout)
                .map_err(fail)?;
            let mut back = 64;
            loop {
                let from = (high - back).max(low);
                let found = newest_epoch(&consumer, url, partition, from, run).map_err(fail)?;
                if found.is_some() || from == low {
                    last = last.max(found);
                    break;
                }
                back *= 4;
            }
        }
    }
    Ok(last)
}

/// The greatest `amend-epoch` of run `run` from `from` to the end of `partition`.
fn newest_epoch(
    consumer: &BaseConsumer,
    url: &TopicUrl,
    partition: i32,
    from: i64,
    run: &str,
) -> Result<Option<u64>, KafkaError> {
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(&url.topic, partition, Offset::Offset(from))?;
    consumer.assign(&list)?;
    let mut newest = None;
    loop {
        match consumer.poll(Duration::from_secs(10)) {
            Some(Ok(m)) => {
                let header = |name: &str| {
                    let headers = m.headers()?;
                    headers
                        .iter()
                        .find(|h| h.key == name)
                        .and_then(|h| h.value)
                        .and_then(|v| std::str::from_utf8(v).ok().map(str::to_string))
                };
                if header(RUN).as_deref() == Some(run)
                    && let Some(epoch) = header(EPOCH).and_then(|e| e.parse::<u64>().ok())
                {
                    newest = newest.max(Some(epoch));
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) => return Ok(newest),
            Some(Err(e)) => return Err(e),
            None => return Err(KafkaError::Canceled),
        }
    }
}
