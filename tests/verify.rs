//! `amend digest` and `amend verify`, end to end: digests of snapshot files equal the
//! pipeline's digests.json, known answers for a hand-written table, a one-unit change shows up
//! in exactly one window, exit codes 0/1/2, and one generated history aggregated many ways
//! (workers, batch sizes, CSV or JSON Lines input) verifies equal.
//!
//! Run them with `cargo test -p amend --test verify`.

#[path = "model/reference.rs"]
#[allow(dead_code)]
mod reference;
#[path = "e2e/util.rs"]
#[allow(dead_code)]
mod util;

use serde_json::Value;

use crate::reference::{hex, sha256};
use crate::util::{Run, TestDir};

fn sha(text: &str) -> String {
    hex(&sha256(text.as_bytes()))
}

/// A tiny table, out of order and in non-canonical spellings, with a mean the digest ignores.
const TINY_JSONL: &str = r#"{"window_start":"1970-01-01T00:01:00.000Z","window_end":"1970-01-01T00:02:00.000Z","key":"é","count":1,"sum":"0.000","min":"-0","max":"0","mean":"0"}
{"window_start":0,"window_end":60000,"key":"b","count":1,"sum":"-0.05","min":"-0.050","max":"-0.05","mean":"-0.05"}
{"window_start":"1970-01-01T00:00:00Z","window_end":"1970-01-01T00:01:00Z","key":"a","count":2,"sum":30.50,"min":"10","max":"20.5","mean":"nonsense"}
"#;

/// The same table as a foreign CSV export: other column names, other column order.
const TINY_CSV: &str = "grp,n,total,lo,hi,from_ms,to_ms\n\
                        a,2,30.5,10.00,20.5,0,60000\n\
                        é,1,0,0,0,60000,120000\n\
                        b,1,-0.05,-0.05,-0.05,0,60000\n";

const FOREIGN: &[&str] = &[
    "--key-field",
    "grp",
    "--count-field",
    "n",
    "--sum-field",
    "total",
    "--min-field",
    "lo",
    "--max-field",
    "hi",
    "--window-start-field",
    "from_ms",
    "--window-end-field",
    "to_ms",
];

fn digests(dir: &TestDir, name: &str) -> Value {
    serde_json::from_str(&dir.read(name)).unwrap()
}

#[test]
fn known_answer_for_a_tiny_table() {
    let dir = TestDir::new();
    dir.create("tiny.jsonl", TINY_JSONL);
    let run = dir.run(&["digest", "tiny.jsonl", "--out", "d.json"]);
    run.expect_success();
    // The SHA-256 inputs, written out by hand: keys in byte order with their byte lengths,
    // canonical decimals, no mean; then one line per window in (start, end) order.
    let w1 = sha("1:a|2|30.5|10|20.5\n1:b|1|-0.05|-0.05|-0.05\n");
    let w2 = sha("2:é|1|0|0|0\n");
    let table = sha(&format!("0:60000:{w1}\n60000:120000:{w2}\n"));
    // Checked against `printf '1:a|2|30.5|10|20.5\n1:b|1|-0.05|-0.05|-0.05\n' | sha256sum`.
    assert_eq!(
        w1,
        "7acc9a6cb1fd141de91e4c30649c86040936fe8cb2ad662e31bfd8540df75500"
    );
    assert_eq!(run.stdout, format!("{table}  tiny.jsonl\n"));
    let expected = serde_json::json!({
        "table": table,
        "windows": [
            {"start": 0, "end": 60000, "digest": w1},
            {"start": 60000, "end": 120000, "digest": w2},
        ]
    });
    assert_eq!(digests(&dir, "d.json"), expected);

    // The foreign CSV export of the same table digests the same.
    dir.create("export.csv", TINY_CSV);
    let mut args = vec!["digest", "export.csv"];
    args.extend(FOREIGN);
    dir.run(&args)
        .expect_success()
        .stdout
        .starts_with(&table)
        .then_some(())
        .expect("the CSV export digests as the JSON Lines snapshot");
    let mut args = vec!["verify", "d.json", "export.csv"];
    args.extend(FOREIGN);
    let run = dir.run(&args);
    run.expect_success();
    assert_eq!(run.stdout, format!("equal: {table} (2 windows)\n"));
}

/// Runs `amend aggregate` on the generated history in `data/` into `out`.
fn aggregate(dir: &TestDir, out: &str, extra: &[&str]) {
    let mut args = vec![
        "aggregate",
        "--window",
        "tumbling:1m",
        "--out",
        out,
        "--quiet",
    ];
    if !extra.contains(&"--input") {
        args.extend([
            "--input",
            "data/events.jsonl",
            "--corrections",
            "data/corrections.jsonl",
        ]);
    }
    args.extend(extra);
    dir.run(&args).expect_code(0);
}

fn generated() -> TestDir {
    let dir = TestDir::new();
    dir.run(&["gen", "--events", "4000", "--keys", "12", "--out", "data"])
        .expect_code(0);
    dir
}

#[test]
fn snapshots_digest_as_the_pipeline_does_and_one_unit_changes_one_window() {
    let dir = generated();
    aggregate(&dir, "json", &[]);
    aggregate(&dir, "csv", &["--snapshot-format", "csv"]);
    let expected = digests(&dir, "json/digests.json");
    let table = expected["table"].as_str().unwrap().to_owned();
    for snapshot in ["json/snapshot.jsonl", "csv/snapshot.csv"] {
        let run = dir.run(&["digest", snapshot, "--out", "d.json"]);
        run.expect_success();
        assert_eq!(run.stdout, format!("{table}  {snapshot}\n"));
        assert_eq!(digests(&dir, "d.json"), expected, "{snapshot}");
    }

    if let Some(gz) = dir.gzip("csv/snapshot.csv", "snapshot.csv.gz") {
        let run = dir.run(&["digest", gz.to_str().unwrap()]);
        run.expect_success();
        assert!(run.stdout.starts_with(&table), "{run}");
    }

    // Add one unit (0.000001) to the sum of one row in the middle.
    let text = dir.read("json/snapshot.jsonl");
    let lines: Vec<&str> = text.lines().collect();
    let n = lines.len() / 2;
    let mut row: Value = serde_json::from_str(lines[n]).unwrap();
    let sum = row["sum"].as_str().unwrap().to_owned();
    let units = (sum.parse::<f64>().unwrap() * 1e6).round() as i128 + 1;
    row["sum"] = Value::String(reference::canonical(units, 6));
    let mut changed = lines.clone();
    let new_row = row.to_string();
    changed[n] = &new_row;
    dir.create("changed.jsonl", changed.join("\n") + "\n");
    let run = dir.run(&["verify", "json/digests.json", "changed.jsonl"]);
    run.expect_code(1);
    assert!(run.stderr.is_empty(), "{run}");
    let out: Vec<&str> = run.stdout.lines().collect();
    let windows = expected["windows"].as_array().unwrap();
    assert_eq!(
        out[0],
        format!("different: 1 of {} windows differ", windows.len()),
        "{run}"
    );
    assert_eq!(out.len(), 4, "{run}");
    let (start, end) = (
        row["window_start"].as_str().unwrap(),
        row["window_end"].as_str().unwrap(),
    );
    let old = windows
        .iter()
        .find(|w| reference::rfc3339(w["start"].as_i64().unwrap()) == start)
        .unwrap()["digest"]
        .as_str()
        .unwrap();
    assert!(
        out[3].starts_with(&format!("{start} {end} A {old} B ")),
        "{run}"
    );
    assert!(!out[3].ends_with(old), "{run}");
    assert_ne!(
        out[1].split(' ').nth(1),
        out[2].split(' ').nth(1),
        "table digests"
    );
}

#[test]
fn verify_exit_codes_and_errors() {
    let dir = TestDir::new();
    dir.create("tiny.jsonl", TINY_JSONL);
    dir.run(&["digest", "tiny.jsonl", "--out", "d.json"])
        .expect_success();
    // A window only on one side.
    let first_window: String = TINY_JSONL.lines().skip(1).collect::<Vec<_>>().join("\n");
    dir.create("less.jsonl", first_window + "\n");
    let run = dir.run(&["verify", "tiny.jsonl", "less.jsonl"]);
    run.expect_code(1);
    let last = run.stdout.lines().last().unwrap();
    assert!(
        last.starts_with("1970-01-01T00:01:00.000Z 1970-01-01T00:02:00.000Z A ")
            && last.ends_with(" B -"),
        "{run}"
    );
    // Errors exit 2, naming file, line and reason.
    dir.create(
        "dup.jsonl",
        format!("{TINY_JSONL}{}", TINY_JSONL.lines().next().unwrap()),
    );
    let run = dir.run(&["verify", "d.json", "dup.jsonl"]);
    run.expect_code(2);
    assert!(
        run.stderr.contains("dup.jsonl:4: a second row for window"),
        "{run}"
    );
    assert!(run.stderr.contains("(the first is on line 1)"), "{run}");
    dir.run(&["verify", "d.json", "missing.csv"]).expect_code(2);
    dir.run(&["verify", "d.json"]).expect_code(2);
    dir.run(&["verify", "d.json", "d.json", "--scale", "19"])
        .expect_code(2);
    let mut tampered = digests(&dir, "d.json");
    tampered["windows"][0]["digest"] = Value::String("0".repeat(64));
    dir.create("tampered.json", tampered.to_string());
    let run = dir.run(&["verify", "d.json", "tampered.json"]);
    run.expect_code(2);
    assert!(
        run.stderr.contains("not the digest of its windows"),
        "{run}"
    );
    // `digest` exits 1 on a bad row, 2 on bad usage.
    let run = dir.run(&["digest", "dup.jsonl"]);
    run.expect_code(1);
    assert!(run.stderr.contains("dup.jsonl:4:"), "{run}");
    dir.run(&["digest", "tiny.txt"]).expect_code(1);
    dir.run(&["digest"]).expect_code(2);
}

#[test]
fn workers_batches_and_input_formats_give_one_digest() {
    let dir = generated();
    aggregate(&dir, "w1", &[]);
    aggregate(&dir, "w2", &["--workers", "2", "--batch-records", "7"]);
    aggregate(&dir, "w4", &["--workers", "4", "--batch-records", "100"]);
    // The same history as CSV input (bad JSON lines left out of both), split in other epochs.
    let mut csv = String::from("id,key,ts,value,op,version\n");
    let mut jsonl = String::new();
    for line in dir
        .read("data/events.jsonl")
        .lines()
        .chain(dir.read("data/corrections.jsonl").lines())
    {
        let Ok(Value::Object(r)) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let text = |f: &str| match r.get(f) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(v) => v.to_string(),
        };
        if ["id", "key", "ts", "value"]
            .iter()
            .any(|f| text(f).is_empty())
        {
            continue;
        }
        jsonl.push_str(line);
        jsonl.push('\n');
        let key = text("key");
        if key.contains([',', '"', '\n']) {
            csv.push_str(&format!("{},\"{}\"", text("id"), key.replace('"', "\"\"")));
        } else {
            csv.push_str(&format!("{},{key}", text("id")));
        }
        csv.push_str(&format!(
            ",{},{},{},{}\n",
            text("ts"),
            text("value"),
            text("op"),
            text("version")
        ));
    }
    dir.create("clean.jsonl", &jsonl);
    dir.create("clean.csv", &csv);
    aggregate(&dir, "json", &["--input", "clean.jsonl"]);
    aggregate(&dir, "csvin", &["--input", "clean.csv", "--workers", "2"]);
    for other in ["w2", "w4", "json", "csvin"] {
        let run = dir.run(&[
            "verify",
            "w1/digests.json",
            &format!("{other}/digests.json"),
        ]);
        run.expect_success();
        assert!(run.stdout.starts_with("equal: "), "{run}");
    }
    let run: Run = dir.run(&["verify", "json/digests.json", "csvin/snapshot.jsonl"]);
    run.expect_success();
    dir.run(&["verify", "json/digests.json", "csvin/digests.json"])
        .expect_success();
}
