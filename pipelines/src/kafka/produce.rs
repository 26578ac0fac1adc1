//! Writing JSON lines to a topic: each line one message, keyed by the record's id (so that an
//! id's records stay in one partition, in order), delivered idempotently; a line without an
//! id (a deliberately bad one) goes unkeyed.

use std::io::{self, Write};
use std::sync::Mutex;
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;

use super::{KafkaArgs, TopicUrl, millis};

/// Counts failed deliveries, and keeps the first reason.
#[derive(Default)]
struct Deliveries {
    failed: Mutex<(u64, Option<String>)>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((error, _)) = result {
            let mut failed = self.failed.lock().expect("not poisoned");
            failed.0 += 1;
            failed.1.get_or_insert_with(|| error.to_string());
        }
    }
}

/// A writer whose every complete line becomes a message of one topic.
pub struct LineProducer {
    producer: BaseProducer<Deliveries>,
    url: TopicUrl,
    timeout: Duration,
    pending: Vec<u8>,
    /// Messages handed to the producer.
    pub sent: u64,
}

impl LineProducer {
    /// A producer to `url`, once its brokers have said the topic exists.
    pub fn connect(url: &TopicUrl, kafka: &KafkaArgs) -> anyhow::Result<Self> {
        let mut config = kafka.config(url);
        config
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set("message.timeout.ms", millis(kafka.timeout));
        let producer: BaseProducer<Deliveries> = config
            .create_with_context(Deliveries::default())
            .map_err(|e| crate::UsageError(format!("{url}: {e}")))?;
        super::partitions(url, kafka)?;
        Ok(LineProducer {
            producer,
            url: url.clone(),
            timeout: kafka.timeout,
            pending: Vec::new(),
            sent: 0,
        })
    }

    fn send(&mut self, line: &[u8]) -> io::Result<()> {
        let key = id_of(line);
        let mut record = BaseRecord::to(&self.url.topic).payload(line);
        if let Some(key) = &key {
            record = record.key(key.as_bytes());
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    self.producer.poll(Duration::from_millis(50));
                }
                Err((e, _)) => return Err(io::Error::other(format!("{}: {e}", self.url))),
            }
        }
        self.sent += 1;
        if self.sent.is_multiple_of(1024) {
            self.producer.poll(Duration::ZERO);
        }
        Ok(())
    }

    /// Waits until every message is delivered (or `--kafka-timeout` has passed): `Err` if one
    /// was not.
    pub fn finish(mut self) -> anyhow::Result<u64> {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            self.send(&line)?;
        }
        self.producer
            .flush(self.timeout)
            .map_err(|e| anyhow::anyhow!("{}: not every message was delivered: {e}", self.url))?;
        let failed = self.producer.context().failed.lock().expect("not poisoned");
        if let (n @ 1.., Some(first)) = (failed.0, &failed.1) {
            anyhow::bail!(
                "{}: {n} messages were not delivered (the first: {first})",
                self.url
            );
        }
        Ok(self.sent)
    }
}

impl Write for LineProducer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        while let Some(end) = memchr::memchr(b'\n', rest) {
            if self.pending.is_empty() {
                self.send(&rest[..end])?;
            } else {
                self.pending.extend_from_slice(&rest[..end]);
                let line = std::mem::take(&mut self.pending);
                self.send(&line)?;
            }
            rest = &rest[end + 1..];
        }
        self.pending.extend_from_slice(rest);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The `id` of a JSON line, if it is an object with a string or number `id`.
fn id_of(line: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Id {
        id: serde_json::Value,
    }
    match serde_json::from_slice::<Id>(line).ok()?.id {
        serde_json::Value::String(id) => Some(id),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}
