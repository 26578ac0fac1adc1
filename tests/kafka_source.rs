//! Topics as inputs, end to end: the real binary reading librdkafka's mock cluster (brokers
//! speaking the Kafka protocol on loopback, run inside this test process).
//!
//! - A bounded replay (no `--follow`) reads each partition to its start-up high watermark and
//!   gives the table a file run over the same records gives; 1, 2 and 4 workers write the same
//!   outputs; `epochs.jsonl` records each partition's offset ranges, which tile the topic.
//! - A bad value, an empty one and a tombstone are dead letters naming topic, partition and
//!   offset; a value spread over several lines is one record.
//! - `--kafka-start` offsets and latest (times need a real broker: tests/kafka_broker.rs); an
//!   input topic before a corrections topic.
//! - `--follow` takes messages produced later, also after the broker was down for a while.
//! - An unreachable broker, a missing topic, bad start offsets: exit 2 with one line.

#[allow(dead_code)]
#[path = "e2e/util.rs"]
mod util;

#[allow(dead_code)]
#[path = "e2e/kafka.rs"]
mod kafka;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use kafka::{Out, epochs_untimed, produce, produce_lines, spawn, stop, summary, wait_records};
use rdkafka::mocking::MockCluster;
use serde_json::Value;
use util::{Run, TestDir};

/// The history these tests produce: `amend gen`, seed 11.
fn gen_args() -> Vec<&'static str> {
    let mut args = kafka::GEN.to_vec();
    args.push("11");
    args
}

fn aggregate(dir: &TestDir, inputs: &[&str], out: &str, extra: &[&str]) -> Run {
    let mut args = vec!["aggregate", "--input"];
    args.extend(inputs);
    args.extend([
        "--window",
        "tumbling:1m",
        "--out",
        out,
        "--kafka-timeout",
        "10s",
    ]);
    args.extend(extra);
    dir.run(&args)
}

#[test]
fn a_bounded_replay_equals_a_file_run_for_any_worker_count() {
    let dir = TestDir::new();
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("history", 3, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let url = format!("kafka://{brokers}/history");
    let mut args: Vec<&str> = gen_args();
    args.extend(["--kafka", &url]);
    dir.run(&args).expect_code(0);
    let mut stream: Vec<&str> = gen_args();
    stream.extend(["--out", "-"]);
    let lines = dir.run(&stream).expect_code(0).stdout.clone();
    dir.create("stream.jsonl", &lines);

    aggregate(&dir, &["stream.jsonl"], "file", &[]).expect_success();
    for workers in ["1", "2", "4"] {
        let out = format!("k{workers}");
        let run = aggregate(
            &dir,
            &[&url],
            &out,
            &["--workers", workers, "--kafka-max-epoch-records", "400"],
        );
        run.expect_success();
        for name in ["snapshot.jsonl", "digests.json"] {
            assert_eq!(
                dir.read(format!("{out}/{name}")),
                dir.read(format!("file/{name}")),
                "{name} of {out}"
            );
        }
        let (got, want) = (summary(&dir, &out), summary(&dir, "file"));
        for field in ["records_read", "records_accepted", "records_dead_lettered"] {
            assert_eq!(got[field], want[field], "{field}");
        }
        for name in ["changelog.jsonl", "dead_letter.jsonl", "late.jsonl"] {
            assert_eq!(
                dir.read(format!("{out}/{name}")),
                dir.read(format!("k1/{name}")),
                "{name} of {out}"
            );
        }
        assert_eq!(epochs_untimed(&dir, &out), epochs_untimed(&dir, "k1"));
    }
    // Each partition's ranges follow one another from 0 to its end, in epochs of at most 400.
    let mut next: BTreeMap<i64, i64> = BTreeMap::new();
    let mut messages = 0;
    for epoch in epochs_untimed(&dir, "k1") {
        assert_eq!(epoch["source"], url.as_str());
        assert!(
            epoch["start"].is_null() && epoch["end"].is_null(),
            "{epoch}"
        );
        let ranges = epoch["partitions"].as_array().unwrap();
        assert_eq!(
            ranges.len(),
            1,
            "before following, an epoch reads one partition"
        );
        let count: i64 = ranges
            .iter()
            .map(|r| {
                let (p, start, end) = (
                    r["partition"].as_i64().unwrap(),
                    r["start"].as_i64(),
                    r["end"].as_i64(),
                );
                let at = next.entry(p).or_insert(0);
                assert_eq!(start, Some(*at), "{epoch}");
                *at = end.unwrap();
                end.unwrap() - start.unwrap()
            })
            .sum();
        assert!(
            count <= 400 && Some(count as u64) == epoch["records"].as_u64(),
            "{epoch}"
        );
        messages += count;
    }
    assert_eq!(next.len(), 3);
    assert_eq!(messages as usize, lines.lines().count());
    // Dead letters name the topic, a partition and an offset.
    let dead = dir.read("k1/dead_letter.jsonl");
    assert!(!dead.is_empty());
    for line in dead.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["source"], url.as_str());
        assert!(v["partition"].is_u64() && v["offset"].is_u64() && v.get("line").is_none());
    }
}

#[test]
fn bad_values_and_tombstones_are_dead_letters_naming_partition_and_offset() {
    let dir = TestDir::new();
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("t", 2, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let good = r#"{"id":"a","key":"k","ts":"2026-11-20T10:00:01Z","value":1.5}"#;
    let pretty = "{\n  \"id\": \"b\",\n  \"key\": \"k\",\r\n  \"ts\": \"2026-11-20T10:00:02Z\",\n  \"value\": 2\n}";
    let at = |partition, value| Out {
        partition: Some(partition),
        key: Some("x"),
        value,
        timestamp: None,
    };
    produce(
        &brokers,
        "t",
        &[
            at(0, Some(good)),
            at(0, Some("not json")),
            at(0, None),
            at(0, Some("")),
            at(1, Some(pretty)),
            at(1, Some(r#"{"id":"c","key":"k"}"#)),
        ],
    );
    let url = format!("kafka://{brokers}/t");
    let run = aggregate(&dir, &[&url], "out", &["--workers", "2"]);
    run.expect_code(0);
    let s = summary(&dir, "out");
    assert_eq!(s["records_read"], 6);
    assert_eq!(s["records_accepted"], 2);
    assert_eq!(s["records_dead_lettered"], 4);
    let snapshot = dir.read("out/snapshot.jsonl");
    assert!(snapshot.contains(r#""count":2,"sum":"3.5""#), "{snapshot}");
    let dead: Vec<Value> = dir
        .read("out/dead_letter.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let places: Vec<(u64, u64)> = dead
        .iter()
        .map(|d| {
            (
                d["partition"].as_u64().unwrap(),
                d["offset"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(places, [(0, 1), (0, 2), (0, 3), (1, 1)]);
    assert!(dead[0]["reason"].as_str().unwrap().contains("invalid JSON"));
    assert!(dead[1]["reason"].as_str().unwrap().contains("tombstone"));
    assert!(dead[2]["reason"].as_str().unwrap().contains("empty"));
    assert_eq!(dead[0]["raw"], "not json");
    assert!(
        dead.iter()
            .all(|d| d["source"] == url.as_str() && d.get("line").is_none())
    );
}

#[test]
fn start_offsets_times_and_latest_choose_where_each_partition_starts() {
    let dir = TestDir::new();
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("t", 1, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let t0 = 1_763_632_800_000i64; // 2025-11-20T10:00:00Z
    let values: Vec<String> = (0..10)
        .map(|i| {
            format!(
                r#"{{"id":"e{i}","key":"k","ts":{},"value":{i}}}"#,
                t0 + i * 1000
            )
        })
        .collect();
    let messages: Vec<Out<'_>> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Out {
            partition: Some(0),
            key: None,
            value: Some(v),
            timestamp: Some(t0 + i as i64 * 1000),
        })
        .collect();
    produce(&brokers, "t", &messages);
    let url = format!("kafka://{brokers}/t");
    let read = |start: &str| {
        let run = aggregate(&dir, &[&url], "out", &["--kafka-start", start]);
        run.expect_success();
        summary(&dir, "out")["records_read"].as_u64().unwrap()
    };
    assert_eq!(read("earliest"), 10);
    assert_eq!(read("offsets:0=4"), 6);
    // The mock cluster does not look offsets up by time: time:T is tested against a real
    // broker (tests/kafka_broker.rs).
    assert_eq!(read("latest"), 0);
    for (start, wants) in [
        ("offsets:0=11", "outside the offsets it holds, [0, 10]"),
        ("offsets:3=0", "has no partition 3"),
        ("yesterday", "expected earliest, latest"),
    ] {
        let run = aggregate(&dir, &[&url], "out", &["--kafka-start", start]);
        run.expect_code(2);
        assert!(run.stderr.contains(wants), "{run}");
    }
}

#[test]
fn a_corrections_topic_is_read_after_the_input_topic() {
    let dir = TestDir::new();
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("events", 2, 1).unwrap();
    cluster.create_topic("fixes", 2, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let mut args: Vec<&str> = gen_args();
    args.extend(["--out", "data"]);
    dir.run(&args).expect_code(0);
    produce_lines(&brokers, "events", &dir.read("data/events.jsonl"));
    produce_lines(&brokers, "fixes", &dir.read("data/corrections.jsonl"));
    let files = [
        "data/events.jsonl",
        "--corrections",
        "data/corrections.jsonl",
    ];
    aggregate(&dir, &files, "file", &[]).expect_success();
    let (events, fixes) = (
        format!("kafka://{brokers}/events"),
        format!("kafka://{brokers}/fixes"),
    );
    let topics = [events.as_str(), "--corrections", fixes.as_str()];
    aggregate(&dir, &topics, "topics", &["--workers", "2"]).expect_success();
    assert_eq!(
        dir.read("topics/snapshot.jsonl"),
        dir.read("file/snapshot.jsonl")
    );
    assert_eq!(
        dir.read("topics/digests.json"),
        dir.read("file/digests.json")
    );
    // Every epoch of the input topic comes before any of the corrections topic.
    let sources: Vec<String> = epochs_untimed(&dir, "topics")
        .iter()
        .map(|e| e["source"].as_str().unwrap().to_string())
        .collect();
    let first_fix = sources.iter().position(|s| *s == fixes).unwrap();
    assert!(sources[..first_fix].iter().all(|s| *s == events));
    assert!(sources[first_fix..].iter().all(|s| *s == fixes));
}

#[test]
fn follow_takes_what_is_produced_later_also_after_the_broker_was_down() {
    let dir = TestDir::new();
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("live", 2, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let mut args: Vec<&str> = gen_args();
    args.extend(["--out", "-"]);
    let lines = dir.run(&args).expect_code(0).stdout.clone();
    let all: Vec<&str> = lines.lines().collect();
    let third = all.len() / 3;
    let part = |range: std::ops::Range<usize>| all[range].join("\n") + "\n";
    dir.create("all.jsonl", all.join("\n") + "\n");
    aggregate(&dir, &["all.jsonl"], "file", &[]).expect_success();

    produce_lines(&brokers, "live", &part(0..third));
    let url = format!("kafka://{brokers}/live");
    let child = spawn(
        &dir,
        &[
            "aggregate",
            "--follow",
            "--input",
            &url,
            "--window",
            "tumbling:1m",
            "--out",
            "out",
            "--workers",
            "2",
            "--kafka-max-epoch-records",
            "300",
            "--kafka-timeout",
            "10s",
        ],
    );
    wait_records(dir.path(), "out", third as u64);
    produce_lines(&brokers, "live", &part(third..2 * third));
    wait_records(dir.path(), "out", 2 * third as u64);
    // The broker goes away for a while; what is produced once it is back is read once.
    cluster.broker_down(1).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    cluster.broker_up(1).unwrap();
    produce_lines(&brokers, "live", &part(2 * third..all.len()));
    wait_records(dir.path(), "out", all.len() as u64);
    stop(child);
    assert_eq!(
        dir.read("out/snapshot.jsonl"),
        dir.read("file/snapshot.jsonl")
    );
    assert_eq!(dir.read("out/digests.json"), dir.read("file/digests.json"));
}

#[test]
fn unusable_topics_and_flags_exit_2_with_one_line() {
    let dir = TestDir::new();
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("t", 1, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let nowhere = format!("kafka://127.0.0.1:{port}/t");
    let missing = format!("kafka://{brokers}/nope");
    let url = format!("kafka://{brokers}/t");
    let started = Instant::now();
    for (input, extra, wants) in [
        (
            nowhere.as_str(),
            &["--kafka-timeout", "2s"][..],
            "no broker answered within 2 s",
        ),
        (missing.as_str(), &[][..], "nope: the topic does not exist"),
        ("kafka://localhost/t", &[][..], "has no :PORT"),
        (
            url.as_str(),
            &["--kafka-max-epoch-records", "0"][..],
            "must be at least 1",
        ),
    ] {
        let mut args = vec!["aggregate", "--input", input, "--window", "tumbling:1m"];
        args.extend(["--out", "out"]);
        args.extend(extra);
        let run = dir.run(&args);
        run.expect_code(2);
        let said: Vec<&str> = run.stderr.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(said.len(), 1, "{run}");
        assert!(run.stderr.contains(wants), "{run}");
    }
    assert!(started.elapsed() < Duration::from_secs(60));
}
