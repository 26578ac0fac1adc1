//! Kafka helpers the Kafka tests share: reading a topic back as a read_committed consumer,
//! creating a topic on a broker, and the generated history and job the sink tests run.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant, SystemTime};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Headers;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::Value;

use super::util::{TestDir, amend_in};

/// `amend gen` of a small history (3,000 events over 20 keys in an hour, 5% corrections); the
/// seed follows.
pub const GEN: [&str; 10] = [
    "gen",
    "--events",
    "3000",
    "--keys",
    "20",
    "--span",
    "1h",
    "--corrections",
    "0.05",
    "--seed",
];

/// One message as read: partition, key, value (`None`: a tombstone), `amend-epoch` header.
pub type Read = (i32, Option<String>, Option<String>, Option<u64>);

/// Every committed message of `topic` (read_committed), partition after partition.
pub fn consume(brokers: &str, topic: &str, partitions: i32) -> Vec<Read> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "amend-test")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let mut got = Vec::new();
    let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8(b.to_vec()).unwrap());
    for p in 0..partitions {
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
        consumer.assign(&list).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(Instant::now() < deadline, "{topic} {p}: no end");
            match consumer.poll(Duration::from_millis(100)) {
                None => continue,
                Some(Err(KafkaError::PartitionEOF(_))) => break,
                Some(Err(e)) => panic!("{e}"),
                Some(Ok(m)) => {
                    let epoch = m.headers().and_then(|h| {
                        h.iter()
                            .find(|h| h.key == "amend-epoch")
                            .and_then(|h| std::str::from_utf8(h.value?).ok()?.parse().ok())
                    });
                    got.push((p, text(m.key()), text(m.payload()), epoch));
                }
            }
        }
    }
    got
}

/// A new topic with `partitions` partitions, named uniquely for this run.
pub fn topic(broker: &str, name: &str, partitions: i32) -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let topic = format!("{name}-{}-{nanos}", std::process::id());
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", broker)
        .create()
        .unwrap();
    let created = futures_executor(admin.create_topics(
        &[NewTopic::new(
            &topic,
            partitions,
            TopicReplication::Fixed(1),
        )],
        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
    ));
    for result in created.unwrap() {
        result.unwrap();
    }
    topic
}

/// Runs a future to completion on this thread.
fn futures_executor<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut context) {
            Poll::Ready(output) => return output,
            Poll::Pending => std::thread::park_timeout(Duration::from_millis(10)),
        }
    }
}

/// `amend gen` into `data/`: events and corrections files with bad lines.
pub fn generate(dir: &TestDir, events: &str) {
    dir.run(&[
        "gen",
        "--events",
        events,
        "--keys",
        "20",
        "--corrections",
        "0.05",
        "--bad",
        "0.01",
        "--out",
        "data",
    ])
    .expect_code(0);
}

/// The job, with epochs of about `epoch_bytes`: each is one transaction, which costs a
/// librdkafka client about 0.1 s.
pub fn job(out: &str, epoch_bytes: &str) -> Vec<String> {
    [
        "aggregate",
        "--input",
        "data/events.jsonl",
        "--corrections",
        "data/corrections.jsonl",
        "--window",
        "tumbling:1m",
        "--epoch-bytes",
        epoch_bytes,
        "--workers",
        "2",
        "--quiet",
        "--out",
        out,
    ]
    .map(String::from)
    .to_vec()
}

/// One message to produce: partition (or by key), key, value, timestamp.
pub struct Out<'a> {
    pub partition: Option<i32>,
    pub key: Option<&'a str>,
    pub value: Option<&'a str>,
    pub timestamp: Option<i64>,
}

pub fn produce(brokers: &str, topic: &str, messages: &[Out<'_>]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    for m in messages {
        let mut record = BaseRecord::<str, str>::to(topic);
        if let Some(p) = m.partition {
            record = record.partition(p);
        }
        if let Some(k) = m.key {
            record = record.key(k);
        }
        if let Some(v) = m.value {
            record = record.payload(v);
        }
        if let Some(t) = m.timestamp {
            record = record.timestamp(t);
        }
        producer.send(record).map_err(|(e, _)| e).unwrap();
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

/// Lines as messages keyed by their id, as `amend gen --kafka` sends them.
pub fn produce_lines(brokers: &str, topic: &str, text: &str) {
    let ids: Vec<Option<String>> = text.lines().map(id_of).collect();
    let messages: Vec<Out<'_>> = text
        .lines()
        .zip(&ids)
        .map(|(line, id)| Out {
            partition: None,
            key: id.as_deref(),
            value: Some(line),
            timestamp: None,
        })
        .collect();
    produce(brokers, topic, &messages);
}

pub fn id_of(line: &str) -> Option<String> {
    let value: Value = serde_json::from_str(line).ok()?;
    match &value["id"] {
        Value::String(id) => Some(id.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Waits until `out`'s epochs have read `records` records in all.
pub fn wait_records(dir: &Path, out: &str, records: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(dir.join(out).join("epochs.jsonl")).unwrap_or_default();
        let read: u64 = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|v| v["records"].as_u64().unwrap())
            .sum();
        if read >= records {
            assert_eq!(read, records, "read more than was produced");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{out}: {read} of {records} records read"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Stops a following run with SIGTERM; its stderr.
pub fn stop(child: Child) -> String {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `out/summary.json`.
pub fn summary(dir: &TestDir, out: &str) -> Value {
    serde_json::from_str(&dir.read(format!("{out}/summary.json"))).unwrap()
}

/// `epochs.jsonl` without the fields that depend on timing (the state gauges are sampled as
/// workers report them).
pub fn epochs_untimed(dir: &TestDir, out: &str) -> Vec<Value> {
    dir.read(format!("{out}/epochs.jsonl"))
        .lines()
        .map(|line| {
            let mut v: Value = serde_json::from_str(line).unwrap();
            for field in [
                "read_at",
                "flushed_at",
                "latency_ms",
                "state_ids",
                "state_groups",
            ] {
                v.as_object_mut().unwrap().remove(field);
            }
            v
        })
        .collect()
}

/// Starts amend in `dir` with `args`, its stderr piped.
pub fn spawn(dir: &TestDir, args: &[&str]) -> Child {
    amend_in(dir.path(), args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}
