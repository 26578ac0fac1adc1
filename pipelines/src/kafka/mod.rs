//! Kafka: topic URLs (`kafka://HOST:PORT[,HOST:PORT...]/TOPIC`), the client settings every
//! amend client shares, and the checks made before a command uses a broker, so that an
//! unreachable broker or a missing topic ends the command with one line.

pub mod consume;
pub mod produce;
pub mod sink;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use crate::UsageError;

/// A topic on a cluster, as a URL: `kafka://HOST:PORT[,HOST:PORT...]/TOPIC`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicUrl {
    /// The bootstrap brokers, `HOST:PORT` separated by commas.
    pub brokers: String,
    /// The topic.
    pub topic: String,
}

impl FromStr for TopicUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!(
                "{text}: not a Kafka topic URL ({why}); the form is kafka://HOST:PORT[,HOST:PORT...]/TOPIC"
            )
        };
        let rest = text
            .strip_prefix("kafka://")
            .ok_or_else(|| bad("it must start with kafka://"))?;
        let (brokers, topic) = rest
            .split_once('/')
            .ok_or_else(|| bad("no /TOPIC after the brokers"))?;
        for broker in brokers.split(',') {
            let (host, port) = broker
                .rsplit_once(':')
                .ok_or_else(|| bad(&format!("broker {broker:?} has no :PORT")))?;
            if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
                return Err(bad(&format!("broker {broker:?} is not HOST:PORT")));
            }
        }
        // Kafka's own rule for topic names.
        let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if topic.is_empty()
            || topic.len() > 249
            || !topic.chars().all(legal)
            || topic == "."
            || topic == ".."
        {
            return Err(bad(&format!(
                "topic {topic:?}: 1 to 249 of the letters, digits, '.', '_' and '-'"
            )));
        }
        Ok(TopicUrl {
            brokers: brokers.to_string(),
            topic: topic.to_string(),
        })
    }
}

impl fmt::Display for TopicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "kafka://{}/{}", self.brokers, self.topic)
    }
}

/// How amend connects to brokers: librdkafka properties and how long to wait for them.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct KafkaArgs {
    /// A librdkafka property for every Kafka client amend makes (security.protocol, sasl.*,
    /// ssl.*, ...); repeatable. Values never appear in amend's output.
    #[arg(long = "kafka-option", value_name = "KEY=VALUE", value_parser = option, help_heading = "Kafka")]
    pub options: Vec<(String, String)>,
    /// How long to wait for a broker at start-up (and for messages to be delivered) before
    /// giving up with exit code 2.
    #[arg(long = "kafka-timeout", value_name = "DURATION", default_value = "30s", value_parser = timeout, help_heading = "Kafka")]
    pub timeout: Duration,
}

/// How `--input kafka://...` topics are read.
#[derive(clap::Args, Debug, Clone)]
pub struct KafkaSourceArgs {
    /// Client settings.
    #[command(flatten)]
    pub client: KafkaArgs,
    /// Where each partition of an input topic starts: earliest, latest, time:T (the first offset at or after T, RFC 3339 or epoch ms, by the broker's message timestamps: "replay from 10:00 yesterday") or offsets:P=O,... (other partitions from the earliest). Without --follow, each partition is read up to its high watermark at start-up.
    #[arg(
        long,
        value_name = "WHERE",
        default_value = "earliest",
        help_heading = "Kafka"
    )]
    pub kafka_start: consume::Start,
    /// The most messages in one epoch of a topic.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 100_000,
        help_heading = "Kafka"
    )]
    pub kafka_max_epoch_records: usize,
    /// What a tombstone (a message with a null value) of an input topic is: a dead letter, or a delete of the id its key names, at its timestamp, at the version in its header named like the version field (0 without one).
    #[arg(
        long,
        value_name = "AS",
        value_enum,
        default_value = "dead-letter",
        help_heading = "Kafka"
    )]
    pub kafka_tombstones: Tombstones,
}

/// What a tombstone of an input topic is (`--kafka-tombstones`).
#[derive(clap::ValueEnum, Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum Tombstones {
    /// A dead letter: it holds no record.
    #[default]
    DeadLetter,
    /// A delete of the id its key names.
    Delete,
}

impl Default for KafkaSourceArgs {
    fn default() -> Self {
        KafkaSourceArgs {
            client: KafkaArgs {
                options: Vec::new(),
                timeout: Duration::from_secs(30),
            },
            kafka_start: consume::Start::Earliest,
            kafka_max_epoch_records: 100_000,
            kafka_tombstones: Tombstones::DeadLetter,
        }
    }
}

fn option(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err("expected KEY=VALUE, a librdkafka property".to_string()),
    }
}

fn timeout(text: &str) -> Result<Duration, String> {
    match amend_operators::time::parse_duration(text) {
        Ok(ms) if ms > 0 => Ok(Duration::from_millis(ms as u64)),
        _ => Err("expected a positive duration such as 30s, 2m or 500ms".to_string()),
    }
}

impl KafkaArgs {
    /// A client configuration for `url`'s brokers with the user's properties.
    pub fn config(&self, url: &TopicUrl) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &url.brokers);
        config.set("socket.connection.setup.timeout.ms", millis(self.timeout));
        for (key, value) in &self.options {
            config.set(key, value);
        }
        config
    }

    /// A consumer of `url`'s brokers as amend reads with one: by assignment, committing no
    /// offsets, creating no topics, and told when it reaches a partition's end.
    pub fn consumer(&self, url: &TopicUrl, extra: &[(&str, &str)]) -> anyhow::Result<BaseConsumer> {
        let mut config = self.config(url);
        config
            .set("group.id", "amend")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .set("allow.auto.create.topics", "false");
        for (key, value) in extra {
            config.set(*key, *value);
        }
        Ok(config
            .create()
            .map_err(|e| UsageError(format!("{url}: {e}")))?)
    }
}

/// Milliseconds as librdkafka takes them.
pub fn millis(d: Duration) -> String {
    d.as_millis().max(1).to_string()
}

/// The number of partitions of `url`'s topic, asked of its brokers within `--kafka-timeout`
/// (by a client of its own that does not create topics): a broker that does not answer, or a
/// topic that does not exist, is a [`UsageError`] naming the URL.
pub fn partitions(url: &TopicUrl, kafka: &KafkaArgs) -> anyhow::Result<usize> {
    let client: BaseConsumer = kafka
        .config(url)
        .set("allow.auto.create.topics", "false")
        .create()
        .map_err(|e| UsageError(format!("{url}: {e}")))?;
    let secs = kafka.timeout.as_secs_f64();
    let metadata = client
        .fetch_metadata(Some(&url.topic), kafka.timeout)
        .map_err(|e| match e {
            KafkaError::MetadataFetch(
                RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown,
            ) => UsageError(format!(
                "{url}: no broker answered within {secs} s (--kafka-timeout)"
            )),
            e => UsageError(format!("{url}: cannot reach the brokers: {e}")),
        })?;
    let topic = metadata.topics().iter().find(|t| t.name() == url.topic);
    match topic {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok(t.partitions().len()),
        _ => Err(UsageError(format!("{url}: the topic does not exist")).into()),
    }
}
