//! A case's files as Kafka topics: each file produced to a topic of its own (three partitions,
//! each record keyed by its id, so that an id's records keep their order), read by a bounded
//! replay from librdkafka's mock cluster in place of the files.
//!
//! Positions differ from a file run's (epochs of messages of one partition, partitions in
//! order), but an id's records come in the same order, so the final table is the model's
//! final table; the changelog replays to it; the accounting closes as the model says; two
//! worker counts write the same bytes; and so does a run that resumes from a checkpoint of a
//! random epoch (the later checkpoints removed, as if it had died right after that one), which
//! starts each partition at its checkpointed offset and plans the epochs after it again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde_json::Value;

use super::check::{Options, Outputs, run_with, same_outputs};
use super::history::Case;

/// The case's lines as messages, file by file: (key, value); blank lines are not sent (a
/// file skips them, while an empty message is a dead letter).
fn messages(case: &Case) -> Vec<Vec<(Option<String>, Vec<u8>)>> {
    let ids: BTreeMap<(u32, u64), &str> = case
        .records
        .iter()
        .map(|r| ((r.position.1, r.position.2), r.id.as_str()))
        .collect();
    let max_line = case.params.max_line.unwrap_or(1 << 20);
    let mut files = Vec::new();
    for (file, bytes) in case.files.iter().enumerate() {
        let mut out = Vec::new();
        let mut offset = 0u64;
        for line in bytes.split_inclusive(|b| *b == b'\n') {
            let at = offset;
            offset += line.len() as u64;
            let mut value = line.strip_suffix(b"\n").unwrap_or(line);
            value = value.strip_suffix(b"\r").unwrap_or(value);
            if at == 0 {
                value = value.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(value);
            }
            if value.iter().all(u8::is_ascii_whitespace) && value.len() <= max_line {
                continue;
            }
            let key = ids.get(&(file as u32, at)).map(|id| id.to_string());
            out.push((key, value.to_vec()));
        }
        files.push(out);
    }
    files
}

/// Whether every line of the case fits in a message of the mock cluster's default limit
/// (about 1 MB): the generator's over-long lines for the default `--max-line-bytes` do not.
pub fn fits_messages(case: &Case) -> bool {
    case.files
        .iter()
        .all(|f| f.split(|b| *b == b'\n').all(|line| line.len() < 512 << 10))
}

/// The table a changelog replays to, as snapshot rows in snapshot order.
fn replay(changelog: &str) -> Result<Vec<Value>, String> {
    let mut table: BTreeMap<(String, String, String), Value> = BTreeMap::new();
    for line in changelog.lines() {
        let mut v: Value = serde_json::from_str(line).map_err(|e| format!("{e}: {line}"))?;
        let diff = v["diff"].as_i64();
        let row = v.as_object_mut().unwrap();
        row.remove("epoch");
        row.remove("diff");
        let text = |f: &str| row[f].as_str().unwrap_or_default().to_string();
        let key = (text("window_start"), text("window_end"), text("key"));
        let body = Value::Object(row.clone());
        match diff {
            Some(-1) if table.get(&key) == Some(&body) => {
                table.remove(&key);
            }
            Some(1) if !table.contains_key(&key) => {
                table.insert(key, body);
            }
            _ => return Err(format!("changelog line does not apply: {line}")),
        }
    }
    // Byte order of window start, end and key is the snapshot's order.
    Ok(table.into_values().collect())
}

/// Runs the case from topics with each of `workers` (epochs of at most `max_epoch` messages)
/// and checks the outputs against the model and against each other, and against a run of the
/// second worker count resumed from its checkpoint number `cut` (modulo how many it took).
pub fn check_topic_case(
    case: &Case,
    workers: [usize; 2],
    max_epoch: u64,
    cut: usize,
) -> Result<(), String> {
    let cluster = MockCluster::new(1).map_err(|e| e.to_string())?;
    let brokers = cluster.bootstrap_servers();
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("enable.idempotence", "true")
        .create()
        .map_err(|e| e.to_string())?;
    let mut inputs = Vec::new();
    for (file, messages) in messages(case).iter().enumerate() {
        let topic = format!("file{file}");
        cluster
            .create_topic(&topic, 3, 1)
            .map_err(|e| e.to_string())?;
        for (key, value) in messages {
            let mut record = BaseRecord::<str, [u8]>::to(&topic).payload(value);
            if let Some(key) = key {
                record = record.key(key);
            }
            producer.send(record).map_err(|(e, _)| e.to_string())?;
            producer.poll(Duration::ZERO);
        }
        inputs.push(PathBuf::from(format!("kafka://{brokers}/{topic}")));
    }
    producer
        .flush(Duration::from_secs(30))
        .map_err(|e| e.to_string())?;
    let dir = tempfile::tempdir().unwrap();
    let extra = [
        "--kafka-max-epoch-records".to_string(),
        max_epoch.to_string(),
    ];
    let mut first: Option<Outputs> = None;
    for (n, workers) in workers.into_iter().enumerate() {
        let opts = Options {
            workers,
            batch: 100_000,
            csv: false,
        };
        let out = run_with(
            case,
            &inputs,
            &dir.path().join(format!("out{n}")),
            opts,
            &extra,
        )?;
        match &first {
            None => check_model(case, &out)?,
            Some(first) => same_outputs(first, &out)
                .map_err(|e| format!("1 and {workers} workers differ: {e}"))?,
        }
        first.get_or_insert(out);
    }
    let first = first.expect("two runs");
    let resumed = resume(case, &inputs, dir.path(), workers[1], &extra, cut)?;
    same_outputs(&first, &resumed).map_err(|e| format!("resumed: {e}"))
}

/// A run with a checkpoint after every epoch; all of them but the first `cut` (modulo their
/// number) removed; the run again, resumed from the newest kept.
fn resume(
    case: &Case,
    inputs: &[PathBuf],
    dir: &std::path::Path,
    workers: usize,
    extra: &[String],
    cut: usize,
) -> Result<Outputs, String> {
    let ckpt = dir.join("ckpt");
    let mut args = extra.to_vec();
    args.extend(
        [
            "--checkpoint-dir",
            &ckpt.display().to_string(),
            "--checkpoint-interval",
            "0",
            "--checkpoints-retained",
            "100000",
        ]
        .map(String::from),
    );
    let opts = Options {
        workers,
        batch: 100_000,
        csv: false,
    };
    let out = dir.join("resumed");
    run_with(case, inputs, &out, opts, &args)?;
    let mut taken: Vec<PathBuf> = std::fs::read_dir(&ckpt)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("epoch-"))
        })
        .collect();
    taken.sort();
    let keep = cut % taken.len().max(1) + 1;
    for later in taken.iter().skip(keep) {
        std::fs::remove_dir_all(later).map_err(|e| e.to_string())?;
    }
    run_with(case, inputs, &out, opts, &args)
}

fn check_model(case: &Case, out: &Outputs) -> Result<(), String> {
    let model = case.params.model();
    let last = model.table(&case.records, case.files.len() as u64 - 1);
    let snapshot = model.snapshot_jsonl(&last);
    if out.snapshot != snapshot {
        return Err(format!(
            "snapshot differs from the model's\n model:\n{snapshot}\n pipeline:\n{}",
            out.snapshot
        ));
    }
    let replayed = replay(&out.changelog)?;
    let rows: Vec<Value> = snapshot
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    if replayed != rows {
        return Err("the changelog does not replay to the snapshot".into());
    }
    let digests: Value = serde_json::from_str(&out.digests).map_err(|e| e.to_string())?;
    if digests != model.digests(&last) {
        return Err("digests.json differs from the model's".into());
    }
    let s = &out.summary;
    for (field, value) in [
        ("records_read", case.records.len() + case.dead.len()),
        ("records_accepted", case.records.len()),
        ("records_dead_lettered", case.dead.len()),
    ] {
        if s[field].as_u64() != Some(value as u64) {
            return Err(format!(
                "summary.json: {field} is {}, the model says {value}",
                s[field]
            ));
        }
    }
    // Each bad line is one dead letter, with its text.
    let raws = |texts: Vec<String>| texts.into_iter().collect::<BTreeSet<_>>();
    let got: Vec<String> = out
        .dead
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["raw"]
                .as_str()
                .unwrap()
                .into()
        })
        .collect();
    let want: Vec<String> = case.dead.iter().map(|d| d.raw.clone()).collect();
    if got.len() != want.len() || raws(got) != raws(want) {
        return Err(format!(
            "dead letters differ from the bad lines:\n{}",
            out.dead
        ));
    }
    Ok(())
}
