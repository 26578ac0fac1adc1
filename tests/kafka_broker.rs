//! Kafka against a separate broker process: the one `.ci/run` installs and starts (tansu, a
//! Kafka-compatible broker), named by `AMEND_KAFKA_BROKER=HOST:PORT`. Without it the tests
//! say so and pass, except under CI (`CI` set), where a missing broker fails them.
//!
//! - `amend gen --kafka` into a topic, a bounded replay of it: the table a file run over the
//!   same lines gives.
//! - `--kafka-start time:T`: the broker's offsets for a time (which the mock cluster lacks).
//! - The Kafka sinks across a crash: a run aborted after an epoch's transaction committed and
//!   before its checkpoint is restarted; the restart plans that epoch again and does not send
//!   it again, and the changelog topic, read back read_committed, equals an uninterrupted
//!   run's changelog.jsonl, every epoch once.
//!
//! Neither tansu 0.6 nor librdkafka's mock keeps aborted transactions from read_committed
//! consumers (a message of an aborted transaction, or of one left open by a producer that was
//! then fenced, is delivered to them), so a kill -9 in the middle of a transaction is not
//! tested: that needs a broker with Kafka's own transaction semantics.
//!
//! tansu advances a partition's high watermark per produced batch, not per record, so
//! producers here send one record per batch (`batch.num.messages=1`).

#[allow(dead_code)]
#[path = "e2e/util.rs"]
mod util;

#[allow(dead_code)]
#[path = "e2e/kafka.rs"]
mod kafka;

use std::collections::BTreeMap;
use std::process::{Child, Stdio};
use std::time::Duration;

use rdkafka::ClientConfig;
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

fn records_read(dir: &TestDir, out: &str) -> u64 {
    let summary: Value = serde_json::from_str(&dir.read(format!("{out}/summary.json"))).unwrap();
    summary["records_read"].as_u64().unwrap()
}

#[test]
fn a_replay_from_a_real_broker_equals_a_file_run() {
    let Some(broker) = broker() else { return };
    let dir = TestDir::new();
    let url = format!("kafka://{broker}/{}", kafka::topic(&broker, "history", 3));
    let mut generate = kafka::GEN.to_vec();
    generate.push("5");
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
    let name = kafka::topic(&broker, "times", 1);
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

#[test]
fn a_crash_after_a_commit_does_not_send_the_epoch_again() {
    let dir = TestDir::new();
    let Some(broker) = broker() else { return };
    let changes = kafka::topic(&broker, "changes", 1);
    kafka::generate(&dir, "40000");
    let job = |out: &str| kafka::job(out, "512K");
    dir.run(&job("plain")).expect_code(0);
    let mut args = job("crashed");
    args.push(format!("--kafka-changelog=kafka://{broker}/{changes}"));
    args.extend(["--checkpoint-dir", "ckpt", "--checkpoint-interval", "0"].map(String::from));
    // The third checkpoint aborts the process after its epoch's transaction has committed: the
    // restart plans again the epochs after the second checkpoint, already on the topics.
    let mut crashing = dir.command(&args);
    crashing.env("AMEND_FAULT", "before-sink-part:3");
    let crashed = util::Run::of(crashing);
    assert_eq!(crashed.code, None, "AMEND_FAULT did not abort\n{crashed}");
    let sent_before = kafka::consume(&broker, &changes, 1).len();
    dir.run(&args).expect_code(0);
    let plain = dir.read("plain/changelog.jsonl");
    assert_eq!(dir.read("crashed/changelog.jsonl"), plain);
    let topic = kafka::consume(&broker, &changes, 1);
    let epochs = |lines: &mut dyn Iterator<Item = &str>| {
        let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
        for line in lines {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            *counts.entry(v["epoch"].as_u64().unwrap()).or_default() += 1;
        }
        counts
    };
    let mut values = topic.iter().map(|m| m.2.as_deref().unwrap());
    assert_eq!(
        epochs(&mut values),
        epochs(&mut plain.lines()),
        "changelog lines by epoch, on the topic and in the file ({sent_before} sent before the crash)"
    );
    let values: Vec<&str> = topic.iter().map(|m| m.2.as_deref().unwrap()).collect();
    assert!(values == plain.lines().collect::<Vec<_>>());
    assert!(sent_before > 0 && sent_before < values.len());
}

/// A followed file grows by chunks; the third epoch's transaction commits and the process
/// aborts before that epoch's epochs.jsonl line, and the file grows again before the restart.
/// The restart plans that epoch again as it was (from the plan made durable before the
/// commit), skips it on the topic, and sends the growth as an epoch of its own: had it planned
/// afresh, the growth would be part of an epoch already committed, and never sent.
#[test]
fn a_crash_between_a_commit_and_its_epoch_line_plans_that_epoch_again_the_same() {
    let Some(broker) = broker() else { return };
    let dir = TestDir::new();
    let changes = kafka::topic(&broker, "followed", 1);
    let mut generate = kafka::GEN.to_vec();
    generate.extend(["31", "--out", "-"]);
    let lines = dir.run(&generate).expect_code(0).stdout.clone();
    dir.create("all.jsonl", &lines);
    let all: Vec<&str> = lines.lines().collect();
    let chunks: Vec<String> = all
        .chunks(all.len() / 6 + 1)
        .map(|c| c.join("\n") + "\n")
        .collect();
    let live = dir.create("live.jsonl", "");
    let grow = |chunk: &str| {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&live)
            .unwrap();
        file.write_all(chunk.as_bytes()).unwrap();
    };
    let url = format!("kafka://{broker}/{changes}");
    let args = [
        "aggregate",
        "--follow",
        "--input",
        "live.jsonl",
        "--window",
        "tumbling:1m",
        "--out",
        "out",
        "--checkpoint-dir",
        "ckpt",
        "--checkpoint-interval",
        "0",
        "--kafka-changelog",
        &url,
        "--quiet",
    ];
    let spawn = |fault: Option<&str>| -> Child {
        let mut command = dir.command(&args);
        if let Some(fault) = fault {
            command.env("AMEND_FAULT", fault);
        }
        command.stdout(Stdio::null()).stderr(Stdio::piped());
        command.spawn().unwrap()
    };
    let records = |n: usize| chunks[..n].iter().map(|c| c.lines().count() as u64).sum();
    let mut child = spawn(Some("after-kafka-commit:3"));
    for n in 1..=2 {
        grow(&chunks[n - 1]);
        kafka::wait_records(dir.path(), "out", records(n));
    }
    grow(&chunks[2]);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), None, "AMEND_FAULT did not abort");
    grow(&chunks[3]);
    let child = spawn(None);
    kafka::wait_records(dir.path(), "out", records(4));
    for n in 5..=chunks.len() {
        grow(&chunks[n - 1]);
        kafka::wait_records(dir.path(), "out", records(n));
    }
    kafka::stop(child);
    let changelog = dir.read("out/changelog.jsonl");
    let topic = kafka::consume(&broker, &changes, 1);
    let values: Vec<&str> = topic.iter().map(|m| m.2.as_deref().unwrap()).collect();
    let lines: Vec<&str> = changelog.lines().collect();
    assert!(
        values == lines,
        "the topic holds {} lines, changelog.jsonl {}",
        values.len(),
        lines.len()
    );
    let run = dir.run(&[
        "aggregate",
        "--input",
        "all.jsonl",
        "--window",
        "tumbling:1m",
        "--out",
        "file",
    ]);
    run.expect_success();
    assert_eq!(
        dir.read("out/snapshot.jsonl"),
        dir.read("file/snapshot.jsonl")
    );
}
