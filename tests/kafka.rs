//! Kafka, end to end: the real binary against librdkafka's mock cluster (brokers speaking the
//! Kafka protocol on loopback, run inside this test process).
//!
//! - `amend gen --kafka` produces the stream of `amend gen --out -` to a topic: every line
//!   once, each id's lines in one partition and in stream order, keyed by the id.
//! - A missing topic, a broker that does not answer, and a bad URL or option exit 2 with one
//!   line; a `--kafka-option` value never appears in the output.

#[allow(dead_code)]
#[path = "e2e/util.rs"]
mod util;

#[allow(dead_code)]
#[path = "e2e/kafka.rs"]
mod kafka;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::{Offset, TopicPartitionList};
use util::TestDir;

/// Every message of `topic`, per partition in offset order: (key, value).
fn consume(brokers: &str, topic: &str, partitions: i32) -> Vec<Vec<(Option<String>, String)>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "amend-test")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let timeout = Duration::from_secs(10);
    let mut list = TopicPartitionList::new();
    let mut ends = Vec::new();
    for p in 0..partitions {
        list.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
        ends.push(consumer.fetch_watermarks(topic, p, timeout).unwrap().1);
    }
    consumer.assign(&list).unwrap();
    let mut got = vec![Vec::new(); partitions as usize];
    let deadline = Instant::now() + Duration::from_secs(60);
    while got
        .iter()
        .zip(&ends)
        .any(|(g, end)| (g.len() as i64) < *end)
    {
        assert!(Instant::now() < deadline, "messages missing: {ends:?}");
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = message.unwrap();
        let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8(b.to_vec()).unwrap());
        assert_eq!(m.offset(), got[m.partition() as usize].len() as i64);
        got[m.partition() as usize].push((text(m.key()), text(m.payload()).unwrap()));
    }
    got
}

/// The `id` of a line, as the producer keys it.
fn id_of(line: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    match &value["id"] {
        serde_json::Value::String(id) => Some(id.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[test]
fn gen_produces_the_stream_keyed_by_id() {
    let dir = TestDir::new();
    let cluster = MockCluster::new(3).unwrap();
    cluster.create_topic("history", 4, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let url = format!("kafka://{brokers}/history");
    let mut args: Vec<&str> = kafka::GEN.to_vec();
    args.extend(["7", "--kafka", &url]);
    let run = dir.run(&args);
    run.expect_code(0);
    assert!(
        run.stdout.contains("produced") && run.stdout.contains(&url),
        "{run}"
    );
    let mut stream: Vec<&str> = kafka::GEN.to_vec();
    stream.extend(["7", "--out", "-"]);
    let expected = dir.run(&stream).expect_code(0).stdout.clone();
    let lines: Vec<&str> = expected.lines().collect();
    let got = consume(&brokers, "history", 4);
    // Every line once.
    let mut all: Vec<&str> = got.iter().flatten().map(|(_, v)| v.as_str()).collect();
    let mut want = lines.clone();
    all.sort_unstable();
    want.sort_unstable();
    assert_eq!(all, want);
    // Keyed by id; an id's lines in one partition, in the stream's order.
    let mut partition_of: BTreeMap<String, usize> = BTreeMap::new();
    for (p, messages) in got.iter().enumerate() {
        for (key, value) in messages {
            assert_eq!(*key, id_of(value), "{value}");
            if let Some(id) = key {
                assert_eq!(*partition_of.entry(id.clone()).or_insert(p), p, "{id}");
            }
        }
        let keyed: Vec<&str> = messages
            .iter()
            .filter(|(k, _)| k.is_some())
            .map(|(_, v)| v.as_str())
            .collect();
        let in_stream: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| id_of(l).is_some_and(|id| partition_of.get(&id) == Some(&p)))
            .collect();
        assert_eq!(
            keyed, in_stream,
            "partition {p} is out of the stream's order"
        );
    }
    assert!(
        partition_of
            .values()
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            > 1
    );
}

#[test]
fn unusable_brokers_topics_and_urls_exit_2_with_one_line() {
    let dir = TestDir::new();
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let produce = |url: &str, extra: &[&str]| {
        let mut args: Vec<&str> = kafka::GEN.to_vec();
        args.extend(["1", "--kafka", url, "--kafka-timeout", "3s"]);
        args.extend(extra);
        dir.run(&args)
    };
    let one_line = |run: &util::Run, wants: &str| {
        run.expect_code(2);
        // clap's usage errors end with the usage and a pointer to --help.
        let said: Vec<&str> = (run.stderr.lines())
            .filter(|l| !l.is_empty() && !l.contains("--help") && !l.starts_with("Usage:"))
            .collect();
        assert_eq!(said.len(), 1, "{run}");
        assert!(run.stderr.contains(wants), "{run}");
        assert!(run.stdout.is_empty(), "{run}");
    };
    // A topic that does not exist.
    let missing = format!("kafka://{brokers}/nope");
    one_line(&produce(&missing, &[]), "nope: the topic does not exist");
    // A port nothing listens on: the broker never answers.
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let started = Instant::now();
    let run = produce(
        &format!("kafka://127.0.0.1:{port}/history"),
        &["--kafka-option", "sasl.password=hunter2"],
    );
    one_line(&run, "no broker answered within 3 s");
    assert!(!run.stderr.contains("hunter2"), "{run}");
    assert!(started.elapsed() < Duration::from_secs(30));
    // Bad URLs and options.
    for (url, wants) in [
        ("http://localhost:9092/t", "must start with kafka://"),
        ("kafka://localhost:9092", "no /TOPIC"),
        ("kafka://localhost/t", "has no :PORT"),
        ("kafka://localhost:9092/a;b", "topic \"a;b\""),
    ] {
        one_line(&produce(url, &[]), wants);
    }
    let url = format!("kafka://{brokers}/history");
    one_line(&produce(&url, &["--kafka-option", "novalue"]), "KEY=VALUE");
    one_line(&produce(&url, &["--out", "out"]), "cannot be used with");
    one_line(
        &produce(&url, &["--kafka-option", "no.such.property=1"]),
        "no.such.property",
    );
}
