//! The Kafka sinks, end to end, against librdkafka's mock cluster: `--kafka-changelog`,
//! `--kafka-dead-letters` and `--kafka-upserts`, one transaction per epoch.
//!
//! - A read_committed consumer sees the changelog topic equal to `changelog.jsonl` line for
//!   line, the dead-letter topic equal to `dead_letter.jsonl`, and the upsert topic, compacted,
//!   equal to `snapshot.jsonl`; every message names its epoch in a header.
//!
//! A restart's transactions are tested against a broker process (tests/kafka_broker.rs): this
//! mock loses what an earlier producer with the same transactional id committed once a new one
//! starts its transactions.

#[allow(dead_code)]
#[path = "e2e/util.rs"]
mod util;

#[allow(dead_code)]
#[path = "e2e/kafka.rs"]
mod kafka;

use std::collections::BTreeMap;

use kafka::consume;
use rdkafka::mocking::MockCluster;
use util::TestDir;

fn cluster() -> (
    MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    String,
) {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("changes", 1, 1).unwrap();
    cluster.create_topic("dead", 1, 1).unwrap();
    cluster.create_topic("table", 3, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    (cluster, brokers)
}

fn sinks(brokers: &str) -> Vec<String> {
    [
        format!("--kafka-changelog=kafka://{brokers}/changes"),
        format!("--kafka-dead-letters=kafka://{brokers}/dead"),
        format!("--kafka-upserts=kafka://{brokers}/table"),
    ]
    .to_vec()
}

#[test]
fn each_epoch_is_one_transaction_on_the_sink_topics() {
    let dir = TestDir::new();
    let (_cluster, brokers) = cluster();
    kafka::generate(&dir, "4000");
    let mut args = kafka::job("out", "64K");
    args.extend(sinks(&brokers));
    dir.run(&args).expect_success();

    let changes = consume(&brokers, "changes", 1);
    let file = dir.read("out/changelog.jsonl");
    let values: Vec<&str> = changes.iter().map(|m| m.2.as_deref().unwrap()).collect();
    assert_eq!(values, file.lines().collect::<Vec<_>>());
    assert!(values.len() > 100);
    for (_, key, value, epoch) in &changes {
        let line: serde_json::Value = serde_json::from_str(value.as_deref().unwrap()).unwrap();
        assert_eq!(line["epoch"].as_u64(), *epoch);
        let key: serde_json::Value = serde_json::from_str(key.as_deref().unwrap()).unwrap();
        for field in ["window_start", "window_end", "key"] {
            assert_eq!(key[field], line[field]);
        }
    }
    let dead = consume(&brokers, "dead", 1);
    let dead: Vec<&str> = dead.iter().map(|m| m.2.as_deref().unwrap()).collect();
    assert_eq!(
        dead,
        dir.read("out/dead_letter.jsonl")
            .lines()
            .collect::<Vec<_>>()
    );
    assert!(!dead.is_empty());
    // Compacted, the upsert topic is the table: the last value of each key, tombstones removed.
    let mut table: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut tombstones = 0;
    for (_, key, value, _) in consume(&brokers, "table", 3) {
        tombstones += value.is_none() as usize;
        table.insert(key.unwrap(), value);
    }
    let mut rows: Vec<String> = table.into_values().flatten().collect();
    rows.sort();
    let mut snapshot: Vec<String> = dir
        .read("out/snapshot.jsonl")
        .lines()
        .map(String::from)
        .collect();
    snapshot.sort();
    assert_eq!(rows, snapshot);
    assert!(tombstones > 0, "the history deletes rows");
}
