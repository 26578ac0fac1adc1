//! Kafka against a separate broker process: the one `.ci/run` installs and starts (tansu, a
//! Kafka-compatible broker), named by `AMEND_KAFKA_BROKER=HOST:PORT`. Without it the tests
//! say so and pass, except under CI (`CI` set), where a missing broker fails them.
//!
//! - `amend gen --kafka` into a topic, a bounded replay of it: the table a file run over the
//!   same lines gives.
//! - `--kafka-start time:T`: the broker's offsets for a time (which the mock cluster lacks).
//!
//! tansu advances a partition's high watermark per produced batch, not per record, so
//! producers here send one record per batch (`batch.num.messages=1`).

#[allow(dead_code)]
#[path = "e2e/util.rs"]
mod util;

use std::time::{Duration, SystemTime};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde_json::Value;
use util::TestDir;

/// The broker's `HOST:PORT`, or `None` (outside CI) when none runs.
fn broker() -> Option<String> {
    match std::env::var("AMEND_KAFKA_BROKER") {
        Ok(broker) if !broker.is_empty() => Some(broker),
        _ if std::env::var_os("CI").is_some() => {
            panic!("AMEND_KAFKA_BROKER is not set: .ci/run starts a broker and sets it")
        }
        _ => {
            eprintln!("no broker: set AMEND_KAFKA_BROKER=HOST:PORT to run this test");
            None
        }
    }
}

/// A new topic with `partitions` partitions, named uniquely for this run.
fn topic(broker: &str, name: &str, partitions: i32) -> String {
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

fn records_read(dir: &TestDir, out: &str) -> u64 {
    let summary: Value = serde_json::from_str(&dir.read(format!("{out}/summary.json"))).unwrap();
    summary["records_read"].as_u64().unwrap()
}

#[test]
fn a_replay_from_a_real_broker_equals_a_file_run() {
    let Some(broker) = broker() else { return };
    let dir = TestDir::new();
    let url = format!("kafka://{broker}/{}", topic(&broker, "history", 3));
    let generate = [
        "gen",
        "--events",
        "2000",
        "--keys",
        "20",
        "--span",
        "1h",
        "--corrections",
        "0.05",
        "--seed",
        "5",
    ];
    let mut args = generate.to_vec();
    args.extend(["--kafka", &url, "--kafka-option", "batch.num.messages=1"]);
    dir.run(&args).expect_code(0);
    let mut args = generate.to_vec();
    args.extend(["--out", "-"]);
    let lines = dir.run(&args).expect_code(0).stdout.clone();
    dir.create("stream.jsonl", &lines);
    let aggregate = |input: &str, out: &str| {
        let run = dir.run(&[
            "aggregate",
            "--input",
            input,
            "--window",
            "tumbling:1m",
            "--out",
            out,
            "--workers",
            "2",
            "--kafka-max-epoch-records",
            "500",
        ]);
        run.expect_success();
    };
    aggregate("stream.jsonl", "file");
    aggregate(&url, "topic");
    for name in ["snapshot.jsonl", "digests.json"] {
        assert_eq!(
            dir.read(format!("topic/{name}")),
            dir.read(format!("file/{name}"))
        );
    }
    assert_eq!(records_read(&dir, "topic"), lines.lines().count() as u64);
}

#[test]
fn start_at_a_time_uses_the_brokers_offsets_for_it() {
    let Some(broker) = broker() else { return };
    let dir = TestDir::new();
    let name = topic(&broker, "times", 1);
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &broker)
        .set("batch.num.messages", "1")
        .create()
        .unwrap();
    let t0 = 1_763_632_800_000i64; // 2025-11-20T10:00:00Z
    for i in 0..10 {
        let value = format!(
            r#"{{"id":"e{i}","key":"k","ts":{},"value":{i}}}"#,
            t0 + i * 1000
        );
        let record = BaseRecord::<str, str>::to(&name)
            .payload(&value)
            .timestamp(t0 + i * 1000);
        producer.send(record).map_err(|(e, _)| e).unwrap();
        producer.flush(Duration::from_secs(10)).unwrap();
    }
    let url = format!("kafka://{broker}/{name}");
    let read = |start: &str| {
        let run = dir.run(&[
            "aggregate",
            "--input",
            &url,
            "--window",
            "tumbling:1m",
            "--out",
            "out",
            "--kafka-start",
            start,
        ]);
        run.expect_success();
        records_read(&dir, "out")
    };
    assert_eq!(read("earliest"), 10);
    assert_eq!(read(&format!("time:{}", t0 + 7000)), 3);
    assert_eq!(read("time:2025-11-20T10:00:07.500Z"), 2);
    assert_eq!(read("time:2025-11-20T11:00:00Z"), 0);
}
