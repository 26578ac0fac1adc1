//! Topics with checkpoints, and tombstones as deletes, on librdkafka's mock cluster:
//!
//! - a run resumed from a checkpoint starts each partition where the checkpoint left it,
//!   whatever `--kafka-start` says, and ends with the table a file run over every record
//!   gives;
//! - a bounded replay killed with kill -9 at random points, again and again, ends with
//!   outputs identical to a run never interrupted;
//! - `--kafka-tombstones delete`: a tombstone deletes the id its key names, at the version of
//!   its `version` header.

#[allow(dead_code)]
#[path = "e2e/util.rs"]
mod util;

#[allow(dead_code)]
#[path = "e2e/kafka.rs"]
mod kafka;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use kafka::{Out, epochs_untimed, produce, produce_lines, spawn, summary};
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde_json::Value;
use util::TestDir;

/// `amend gen` lines, seed 23, with bad lines.
fn history(dir: &TestDir, events: &str) -> String {
    let mut args = vec!["gen", "--events", events, "--keys", "20", "--span", "1h"];
    args.extend(["--corrections", "0.05", "--bad", "0.01", "--seed", "23"]);
    args.extend(["--out", "-"]);
    dir.run(&args).expect_code(0).stdout.clone()
}

fn job<'a>(input: &'a str, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["aggregate", "--input", input, "--window", "tumbling:1m"];
    args.extend(["--out", out, "--kafka-timeout", "10s", "--quiet"]);
    args.extend(extra);
    args
}

#[test]
fn a_resumed_topic_starts_where_its_checkpoint_left_off_whatever_kafka_start_says() {
    let dir = TestDir::new();
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("t", 3, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let lines = history(&dir, "3000");
    let all: Vec<&str> = lines.lines().collect();
    let half = all.len() / 2;
    dir.create("all.jsonl", &lines);
    produce_lines(&brokers, "t", &(all[..half].join("\n") + "\n"));
    let url = format!("kafka://{brokers}/t");
    let checkpointed = [
        "--checkpoint-dir",
        "ckpt",
        "--kafka-max-epoch-records",
        "250",
    ];
    dir.run(&job(&url, "out", &checkpointed)).expect_code(0);
    assert_eq!(summary(&dir, "out")["records_read"], half);
    produce_lines(&brokers, "t", &(all[half..].join("\n") + "\n"));
    let mut again = checkpointed.to_vec();
    again.extend(["--kafka-start", "latest"]);
    dir.run(&job(&url, "out", &again)).expect_code(0);
    let s = summary(&dir, "out");
    assert_eq!(s["records_read"], all.len(), "{s}");
    // The topic keeps its input index across the restart.
    let newest = std::fs::read_dir(dir.path().join("ckpt"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("manifest.json").exists())
        .max()
        .unwrap();
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(newest.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["topics"][0]["index"], 0, "{manifest}");
    assert_eq!(manifest["next_index"], 1, "{manifest}");
    dir.run(&job("all.jsonl", "file", &[])).expect_code(0);
    for name in ["snapshot.jsonl", "digests.json"] {
        assert_eq!(
            dir.read(format!("out/{name}")),
            dir.read(format!("file/{name}"))
        );
    }
    // Each partition was read once: the epochs' ranges tile it from offset 0.
    let mut next = [0i64; 3];
    for epoch in epochs_untimed(&dir, "out") {
        for range in epoch["partitions"].as_array().unwrap() {
            let p = range["partition"].as_u64().unwrap() as usize;
            assert_eq!(range["start"].as_i64().unwrap(), next[p], "{epoch}");
            next[p] = range["end"].as_i64().unwrap();
        }
    }
}

fn epochs_written(out: &Path) -> usize {
    let text = std::fs::read_to_string(out.join("epochs.jsonl")).unwrap_or_default();
    text.lines().count()
}

/// A pseudo-random number below `n`, from the clock.
fn random_below(n: u64) -> u64 {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    nanos.wrapping_mul(6_364_136_223_846_793_005) % n
}

#[test]
fn kill_9_during_a_bounded_replay_resumes_with_identical_outputs() {
    let dir = TestDir::new();
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("t", 3, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    produce_lines(&brokers, "t", &history(&dir, "20000"));
    let url = format!("kafka://{brokers}/t");
    let extra = [
        "--workers",
        "2",
        "--kafka-max-epoch-records",
        "400",
        "--checkpoint-dir",
        "ckpt",
        "--checkpoint-interval",
        "0",
    ];
    dir.run(&job(&url, "plain", &extra[..4])).expect_code(0);
    let killed = dir.path().join("killed");
    let args = job(&url, "killed", &extra);
    let mut kills = 0;
    let started = Instant::now();
    loop {
        let before = epochs_written(&killed);
        let mut child = spawn(&dir, &args);
        // Killed at a random point after it has written one more epoch, or let finish.
        while epochs_written(&killed) <= before && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(random_below(150)));
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
        assert!(started.elapsed() < Duration::from_secs(240), "no end");
    }
    eprintln!("{kills} kills");
    assert!(kills >= 3, "only {kills} kills");
    for name in [
        "snapshot.jsonl",
        "digests.json",
        "changelog.jsonl",
        "dead_letter.jsonl",
    ] {
        assert_eq!(
            dir.read(format!("killed/{name}")),
            dir.read(format!("plain/{name}")),
            "{name} after {kills} kills"
        );
    }
    assert_eq!(
        epochs_untimed(&dir, "killed"),
        epochs_untimed(&dir, "plain")
    );
}

#[test]
fn tombstones_delete_the_id_their_key_names_at_their_version() {
    let dir = TestDir::new();
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("t", 1, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let record = |id: &str, version: u64, value: u64| {
        format!(
            r#"{{"id":"{id}","key":"k","ts":"2026-11-20T10:00:01Z","value":{value},"version":{version}}}"#
        )
    };
    let (a, b, c) = (record("a", 0, 1), record("b", 0, 10), record("c", 2, 100));
    let upserts: Vec<Out<'_>> = [&a, &b, &c]
        .map(|value| Out {
            partition: None,
            key: Some("x"),
            value: Some(value.as_str()),
            timestamp: None,
        })
        .into();
    produce(&brokers, "t", &upserts);
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    // a: deleted; "c" at version 1 is stale against c's version 2; {"id":"b"} at version 2
    // deletes b; a tombstone without a key is a dead letter.
    for (key, version) in [
        (Some("a"), None),
        (Some("c"), Some("1")),
        (Some(r#"{"id":"b"}"#), Some("2")),
        (None, None),
    ] {
        let mut headers = OwnedHeaders::new();
        if let Some(v) = version {
            headers = headers.insert(Header {
                key: "version",
                value: Some(v),
            });
        }
        let mut message = BaseRecord::<str, str>::to("t").headers(headers);
        if let Some(key) = key {
            message = message.key(key);
        }
        producer.send(message).map_err(|(e, _)| e).unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    let url = format!("kafka://{brokers}/t");
    dir.run(&job(&url, "dead", &[])).expect_code(0);
    assert_eq!(summary(&dir, "dead")["records_dead_lettered"], 4);
    let deletes = ["--kafka-tombstones", "delete"];
    dir.run(&job(&url, "deleted", &deletes)).expect_code(0);
    let s = summary(&dir, "deleted");
    assert_eq!(s["records_dead_lettered"], 1, "{s}");
    assert_eq!(s["ids_deleted"], 2, "{s}");
    let snapshot = dir.read("deleted/snapshot.jsonl");
    assert!(snapshot.contains(r#""count":1,"sum":"100""#), "{snapshot}");
    let dead = dir.read("deleted/dead_letter.jsonl");
    assert!(dead.contains("tombstone"), "{dead}");
}
