//! Kafka helpers the Kafka tests share: reading a topic back as a read_committed consumer,
//! creating a topic on a broker, and the generated history and job the sink tests run.

use std::time::{Duration, Instant, SystemTime};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Headers;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use super::util::TestDir;

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
