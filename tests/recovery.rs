//! End-to-end tests of replay slices (`--from-time`, `--to-time`, `--from-offset`,
//! `--to-offset`) and audit-log recovery (`--audit-log`), through the real `amend` binary on
//! generated data. Each run is compared with a plain run over input files the test builds by
//! hand: the filtered slice, or the main input plus the recovered events as one more
//! corrections file (audit logs are read after the corrections, so positions order the same).
//!
//! Run them with `cargo test -p amend --test recovery`.

#[path = "e2e/check.rs"]
mod check;
#[path = "e2e/util.rs"]
#[allow(dead_code)]
mod util;

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::check::check_outputs;
use crate::util::{Run, TestDir, assert_same_file};

/// The regex the tests' text logs are read with.
const PATTERN: &str = r"^\S+ INFO order-service: recorded event id=(?P<id>\S+) key=(?P<key>\S+) ts=(?P<ts>\S+) value=(?P<value>\S+) op=(?P<op>\w+) version=(?P<version>\d+)$";

/// The fields of a generated line, the value as its exact text.
#[derive(Deserialize)]
struct Rec<'a> {
    id: String,
    key: String,
    ts: String,
    #[serde(borrow)]
    value: &'a RawValue,
    op: Option<String>,
    version: Option<u64>,
}

/// A generated line: its text, its start offset, and its fields if `amend` accepts it.
struct Line<'a> {
    text: &'a str,
    offset: u64,
    rec: Option<Rec<'a>>,
}

fn lines<'a>(text: &'a str, dead_offsets: &BTreeSet<u64>) -> Vec<Line<'a>> {
    let mut offset = 0u64;
    let mut out = Vec::new();
    for text in text.split_inclusive('\n') {
        let line = text.trim_end_matches('\n');
        let rec = (!dead_offsets.contains(&offset))
            .then(|| serde_json::from_str::<Rec>(line).ok())
            .flatten();
        out.push(Line {
            text: line,
            offset,
            rec,
        });
        offset += text.len() as u64;
    }
    out
}

/// The event as an application's text log line.
fn log_line(rec: &Rec) -> String {
    format!(
        "2026-11-21T00:00:00Z INFO order-service: recorded event id={} key={} ts={} value={} op={} version={}",
        rec.id,
        rec.key,
        rec.ts,
        rec.value.get(),
        rec.op.as_deref().unwrap_or("upsert"),
        rec.version.unwrap_or(0)
    )
}

/// Generates `data/events.jsonl` and `data/corrections.jsonl`.
fn generate(dir: &TestDir, events: &str) {
    dir.run(&[
        "gen", "--out", "data", "--events", events, "--keys", "20", "--seed", "7",
    ])
    .expect_success();
}

/// Runs `amend aggregate` with `args` into `out`, checks the data contract, returns the
/// summary.
fn aggregate(dir: &TestDir, out: &str, args: &[&str]) -> Value {
    let mut full = vec![
        "aggregate",
        "--window",
        "hop:10m/5m",
        "--quiet",
        "--out",
        out,
    ];
    full.extend_from_slice(args);
    let run = dir.run(&full);
    run.expect_success();
    check_outputs(&dir.join(out), false);
    serde_json::from_str(&dir.read(format!("{out}/summary.json"))).unwrap()
}

/// The offsets of the dead letters of `source` in a run's output.
fn dead_offsets(dir: &TestDir, out: &str, source: &str) -> BTreeSet<u64> {
    dir.read(format!("{out}/dead_letter.jsonl"))
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["source"] == source)
        .map(|l| l["offset"].as_u64().unwrap())
        .collect()
}

#[track_caller]
fn assert_same_table(dir: &TestDir, expected: &str, got: &str) {
    for file in ["snapshot.jsonl", "digests.json"] {
        assert_same_file(file, &dir.join(expected), &dir.join(got));
    }
}

fn count(summary: &Value, field: &str) -> u64 {
    summary[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} in {summary}"))
}

#[test]
fn an_audit_log_recovers_missed_events_as_a_full_recompute_would() {
    let dir = TestDir::new();
    generate(&dir, "3000");
    let events_text = dir.read("data/events.jsonl");
    let full = aggregate(&dir, "probe", &["--input", "data/events.jsonl"]);
    assert!(count(&full, "records_dead_lettered") > 0);
    let dead = dead_offsets(&dir, "probe", "data/events.jsonl");
    let events = lines(&events_text, &dead);

    // The main input misses every 5th good line (a deliberate gap); the audit log has every
    // other missed line (part of the gaps), some lines the main input has (an overlap), and
    // the noise of a real log, including a half-written audit line and one with a bad value.
    let (mut main, mut log, mut recovered) = (String::new(), String::new(), String::new());
    let mut main_ids = BTreeSet::new();
    let mut log_ids = BTreeSet::new();
    log.push_str("2026-11-21T00:00:00Z INFO order-service: starting\n");
    for (i, line) in events.iter().enumerate() {
        let missed = line.rec.is_some() && i % 5 == 0;
        if !missed {
            main.push_str(line.text);
            main.push('\n');
            if let Some(rec) = &line.rec {
                main_ids.insert(rec.id.clone());
            }
        }
        let Some(rec) = &line.rec else { continue };
        if (missed && i % 10 == 0) || i % 13 == 0 {
            log.push_str(&log_line(rec));
            log.push('\n');
            recovered.push_str(line.text);
            recovered.push('\n');
            log_ids.insert(rec.id.clone());
        }
        if i % 97 == 0 {
            log.push_str("2026-11-21T00:00:00Z DEBUG order-service: pool stats idle=3 busy=1\n");
            let half = log_line(rec);
            log.push_str(&half[..half.len() / 2]);
            log.push('\n');
        }
    }
    log.push_str("2026-11-21T00:00:00Z INFO order-service: recorded event id=x key=k ts=2026-11-20T00:00:00Z value=1.0000001 op=upsert version=0\n");
    dir.create("main.jsonl", &main);
    dir.create("app.log", &log);
    dir.create("recovered.jsonl", &recovered);
    let corrections_text = dir.read("data/corrections.jsonl");
    for line in lines(&corrections_text, &BTreeSet::new()) {
        if let Some(rec) = line.rec {
            main_ids.insert(rec.id);
        }
    }

    let base = [
        "--input",
        "main.jsonl",
        "--corrections",
        "data/corrections.jsonl",
    ];
    let mut args = base.to_vec();
    args.extend(["--audit-log", "app.log", "--audit-pattern", PATTERN]);
    let with_log = aggregate(&dir, "with_log", &args);
    let mut args = base.to_vec();
    args.push("recovered.jsonl");
    let recompute = aggregate(&dir, "recompute", &args);
    assert_same_table(&dir, "recompute", "with_log");

    let only_in_log = log_ids.difference(&main_ids).count() as u64;
    assert!(only_in_log > 10, "the log must recover something");
    assert_eq!(count(&with_log, "ids_only_in_audit"), only_in_log);
    assert_eq!(count(&recompute, "ids_only_in_audit"), 0);
    let noise = 1 + 2 * events
        .iter()
        .step_by(97)
        .filter(|l| l.rec.is_some())
        .count() as u64;
    assert_eq!(count(&with_log, "audit_lines_skipped"), noise);
    assert_eq!(
        count(&with_log, "records_dead_lettered"),
        count(&recompute, "records_dead_lettered") + 1
    );
    let letters = dir.read("with_log/dead_letter.jsonl");
    let last: Value = serde_json::from_str(letters.lines().last().unwrap()).unwrap();
    assert_eq!(last["source"], "app.log");
    assert_eq!(last["line"], log.lines().count());
    assert!(
        last["reason"].as_str().unwrap().contains("--scale"),
        "{last}"
    );

    // Worker count changes nothing, the count of recovered ids included.
    let mut args = base.to_vec();
    args.extend([
        "--audit-log",
        "app.log",
        "--audit-pattern",
        PATTERN,
        "--workers",
        "3",
        "--batch-records",
        "50",
    ]);
    let three = aggregate(&dir, "three", &args);
    assert_same_table(&dir, "with_log", "three");
    assert_same_file(
        "dead_letter.jsonl",
        &dir.join("with_log"),
        &dir.join("three"),
    );
    for field in ["ids_only_in_audit", "audit_lines_skipped", "records_read"] {
        assert_eq!(three[field], with_log[field], "{field}");
    }
}

#[test]
fn an_audit_log_that_repeats_the_input_changes_nothing_however_often() {
    let dir = TestDir::new();
    generate(&dir, "2000");
    let inputs = [
        "--input",
        "data/events.jsonl",
        "--corrections",
        "data/corrections.jsonl",
    ];
    let plain = aggregate(&dir, "plain", &inputs);
    // A structured log holding every event of the input, in input order, nested in an
    // envelope, between lines of other kinds.
    let mut log = String::new();
    for file in ["data/events.jsonl", "data/corrections.jsonl"] {
        let dead = dead_offsets(&dir, "plain", file);
        for line in lines(&dir.read(file), &dead) {
            if line.rec.is_some() {
                log.push_str(&format!(
                    "{{\"level\":\"info\",\"payload\":{{\"kind\":\"event\",\"event\":{}}}}}\n",
                    line.text
                ));
            }
            log.push_str("{\"level\":\"debug\",\"msg\":\"flushed\"}\n");
        }
    }
    dir.create("app.jsonl.log", &log);
    let mut args = inputs.to_vec();
    args.extend([
        "--audit-log",
        "app.jsonl.log",
        "app.jsonl.log",
        "--audit-format",
        "jsonl",
        "--audit-path",
        "payload.event",
        "--workers",
        "2",
    ]);
    let twice = aggregate(&dir, "twice", &args);
    assert_same_table(&dir, "plain", "twice");
    assert_eq!(count(&twice, "ids_only_in_audit"), 0);
    assert_eq!(
        count(&twice, "records_dead_lettered"),
        count(&plain, "records_dead_lettered")
    );
    let debug_lines = log.lines().filter(|l| l.contains("debug")).count() as u64;
    assert_eq!(count(&twice, "audit_lines_skipped"), 2 * debug_lines);
    assert_eq!(
        count(&twice, "records_accepted"),
        3 * count(&plain, "records_accepted")
    );
    // The changelog shows the audit epochs changed no row.
    let changelog = dir.read("twice/changelog.jsonl");
    assert!(
        changelog
            .lines()
            .all(|l| serde_json::from_str::<Value>(l).unwrap()["epoch"].as_u64() < Some(2)),
        "an audit epoch changed a row"
    );
}

/// Writes the lines of `file` that `keep` admits (and every line `amend` dead-letters) to
/// `to`; returns how many accepted lines it left out.
fn filter(dir: &TestDir, probe: &str, file: &str, to: &str, keep: impl Fn(&Line) -> bool) -> u64 {
    let text = dir.read(file);
    let dead = dead_offsets(dir, probe, file);
    let mut out = String::new();
    let mut left_out = 0;
    for line in lines(&text, &dead) {
        let blank = line.text.trim().is_empty();
        if blank || dead.contains(&line.offset) || keep(&line) {
            out.push_str(line.text);
            out.push('\n');
        } else {
            left_out += 1;
        }
    }
    dir.create(to, out);
    left_out
}

#[test]
fn a_time_slice_equals_a_run_over_the_records_of_the_slice() {
    let dir = TestDir::new();
    generate(&dir, "3000");
    let inputs = [
        "--input",
        "data/events.jsonl",
        "--corrections",
        "data/corrections.jsonl",
    ];
    aggregate(&dir, "probe", &inputs);
    let (from, to) = ("2026-11-20T03:00:00Z", "2026-11-20T07:30:00.000Z");
    // Generated times are RFC 3339 UTC with milliseconds, so they compare as text.
    let in_slice = |line: &Line| {
        let ts = &line.rec.as_ref().unwrap().ts;
        ts.as_str() >= "2026-11-20T03:00:00.000Z" && ts.as_str() < to
    };
    let mut skipped = filter(&dir, "probe", "data/events.jsonl", "ev.jsonl", in_slice);
    skipped += filter(
        &dir,
        "probe",
        "data/corrections.jsonl",
        "co.jsonl",
        in_slice,
    );
    let mut args = inputs.to_vec();
    args.extend(["--from-time", from, "--to-time", to]);
    let sliced = aggregate(&dir, "sliced", &args);
    let filtered = aggregate(
        &dir,
        "filtered",
        &["--input", "ev.jsonl", "--corrections", "co.jsonl"],
    );
    assert_same_table(&dir, "filtered", "sliced");
    assert!(skipped > 100, "the slice must leave records out");
    assert_eq!(count(&sliced, "records_skipped"), skipped);
    for field in [
        "records_accepted",
        "records_dead_lettered",
        "ids_current",
        "ids_deleted",
    ] {
        assert_eq!(sliced[field], filtered[field], "{field}");
    }
    // Epoch milliseconds mean the same.
    let mut args = inputs.to_vec();
    args.extend([
        "--from-time",
        "1795143600000",
        "--to-time",
        to,
        "--workers",
        "3",
    ]);
    aggregate(&dir, "millis", &args);
    assert_same_table(&dir, "sliced", "millis");
}

#[test]
fn an_offset_slice_equals_a_run_over_the_lines_of_the_slice() {
    let dir = TestDir::new();
    generate(&dir, "3000");
    let inputs = [
        "--input",
        "data/events.jsonl",
        "--corrections",
        "data/corrections.jsonl",
    ];
    aggregate(&dir, "probe", &inputs);
    let (from, to) = (20_000u64, 200_000u64);
    let in_slice = |line: &Line| (from..to).contains(&line.offset);
    let mut skipped = filter(&dir, "probe", "data/events.jsonl", "ev.jsonl", in_slice);
    skipped += filter(
        &dir,
        "probe",
        "data/corrections.jsonl",
        "co.jsonl",
        in_slice,
    );
    // Dead letters outside the slice are skipped too: drop them from the expectation.
    let outside_dead = |file: &str| {
        dead_offsets(&dir, "probe", file)
            .into_iter()
            .filter(|o| !(from..to).contains(o))
            .count() as u64
    };
    let dead_outside = outside_dead("data/events.jsonl") + outside_dead("data/corrections.jsonl");
    let mut args = inputs.to_vec();
    let (from_text, to_text) = (from.to_string(), to.to_string());
    args.extend([
        "--from-offset",
        &from_text,
        "--to-offset",
        &to_text,
        "--workers",
        "2",
    ]);
    let sliced = aggregate(&dir, "sliced", &args);
    let filtered = aggregate(
        &dir,
        "filtered",
        &["--input", "ev.jsonl", "--corrections", "co.jsonl"],
    );
    assert_same_table(&dir, "filtered", "sliced");
    assert_eq!(
        count(&sliced, "records_skipped"),
        skipped + dead_outside,
        "{sliced}"
    );
    assert_eq!(
        count(&sliced, "records_dead_lettered") + dead_outside,
        count(&filtered, "records_dead_lettered")
    );
    assert_eq!(sliced["records_accepted"], filtered["records_accepted"]);
}

#[track_caller]
fn expect_usage_error(run: &Run, mention: &str) {
    run.expect_code(2);
    assert!(
        run.stderr.starts_with("amend: ") && run.stderr.contains(mention),
        "stderr does not mention `{mention}`\n{run}"
    );
    assert!(!run.stderr.contains("panicked"), "{run}");
}

#[test]
fn bad_recovery_flags_are_usage_errors_before_anything_runs() {
    let dir = TestDir::new();
    dir.create(
        "events.jsonl",
        "{\"id\":\"a\",\"key\":\"k\",\"ts\":0,\"value\":1}\n",
    );
    dir.create("app.log", "nothing here\n");
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "--audit-log",
                "app.log",
                "--audit-pattern",
                r"id=(?P<id>\S+) key=(?P<key>\S+) value=(?P<value>\S+)",
            ],
            "no named group `ts`",
        ),
        (
            &["--audit-log", "app.log", "--audit-pattern", "(?P<id>"],
            "not a valid regular expression",
        ),
        (&["--audit-log", "app.log"], "--audit-pattern"),
        (
            &[
                "--audit-log",
                "app.log",
                "--audit-format",
                "jsonl",
                "--audit-path",
                "a..b",
            ],
            "a..b",
        ),
        (&["--from-time", "noon"], "--from-time noon"),
        (
            &[
                "--from-time",
                "2026-11-20T10:00:00Z",
                "--to-time",
                "2026-11-20T09:00:00Z",
            ],
            "not before --to-time",
        ),
        (
            &["--from-offset", "10", "--to-offset", "3"],
            "--from-offset 10",
        ),
    ];
    for (extra, mention) in cases {
        let mut args = vec![
            "aggregate",
            "--input",
            "events.jsonl",
            "--window",
            "tumbling:1m",
            "--out",
            "out",
        ];
        args.extend_from_slice(extra);
        expect_usage_error(&dir.run(&args), mention);
        assert!(!Path::new(&dir.join("out")).exists());
    }
    // A missing audit log is like a missing input: exit 1, naming it.
    let run = dir.run(&[
        "aggregate",
        "--input",
        "events.jsonl",
        "--window",
        "tumbling:1m",
        "--out",
        "out",
        "--audit-log",
        "missing.log",
        "--audit-format",
        "jsonl",
    ]);
    run.expect_code(1);
    assert!(run.stderr.contains("missing.log"), "{run}");
}

#[test]
fn gaps_takes_the_same_flags_and_recovered_events_fill_gaps() {
    let dir = TestDir::new();
    let line = |id: &str, seq: u64| {
        format!(
            "{{\"id\":\"{id}\",\"key\":\"k\",\"ts\":{},\"value\":1,\"source\":\"till-1\",\"seq\":{seq}}}\n",
            seq * 1000
        )
    };
    dir.create(
        "events.jsonl",
        [line("a", 1), line("b", 2), line("d", 4), line("f", 6)].concat(),
    );
    dir.create(
        "till.log",
        "boot\n\
         sale id=c seq=3 ts=3000 value=1 key=k source=till-1\n\
         sale id=e seq=5 ts=5000 value=1 key=k source=till-1\n",
    );
    let pattern = r"^sale id=(?P<id>\S+) seq=(?P<seq>\d+) ts=(?P<ts>\d+) value=(?P<value>\S+) key=(?P<key>\S+) source=(?P<source>\S+)$";
    let gaps = |out: &str, extra: &[&str]| -> Value {
        let mut args = vec!["gaps", "--input", "events.jsonl", "--quiet", "--out", out];
        args.extend_from_slice(extra);
        dir.run(&args).expect_success();
        serde_json::from_str(&dir.read(format!("{out}/gaps_summary.json"))).unwrap()
    };
    let plain = gaps("plain", &[]);
    assert_eq!((count(&plain, "gaps"), count(&plain, "missing")), (2, 2));
    let recovered = gaps(
        "recovered",
        &["--audit-log", "till.log", "--audit-pattern", pattern],
    );
    assert_eq!(count(&recovered, "gaps"), 0, "{recovered}");
    assert_eq!(count(&recovered, "audit_lines_skipped"), 1);
    // A time slice that leaves out seq 4 and later: one record skipped per line after it.
    let sliced = gaps("sliced", &["--to-time", "4000"]);
    assert_eq!(count(&sliced, "records_skipped"), 2, "{sliced}");
    assert_eq!(count(&sliced, "gaps"), 0, "{sliced}");
}

/// The fields of a line of `amend gen`'s audit log (`producer=p07 seq=5 accepted id=...`), as
/// a JSON Lines record, or `None` for its other lines.
fn gen_audit_record(line: &str) -> Option<(String, String)> {
    let fields: std::collections::BTreeMap<&str, &str> = line
        .split(' ')
        .filter_map(|word| word.split_once('='))
        .collect();
    let get = |name: &str| fields.get(name).copied();
    let (id, key, ts, value) = (get("id")?, get("key")?, get("ts")?, get("value")?);
    let (source, seq) = (get("producer")?, get("seq")?);
    Some((
        id.to_owned(),
        format!(
            "{{\"id\":{id:?},\"key\":{key:?},\"ts\":{ts:?},\"value\":{value},\"source\":{source:?},\"seq\":{seq}}}\n"
        ),
    ))
}

#[test]
fn a_generated_history_with_gaps_recovers_from_its_audit_log() {
    let dir = TestDir::new();
    let run = dir.run(&[
        "gen",
        "--out",
        "data",
        "--events",
        "5000",
        "--keys",
        "20",
        "--seed",
        "11",
        "--drop-seq",
        "0.05",
        "--audit-coverage",
        "0.5",
    ]);
    run.expect_success();
    // The pattern gen prints for its log.
    let pattern = run
        .stdout
        .split("--audit-pattern '")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("gen names the pattern");
    let log = dir.read("data/audit.log");
    let (mut recovered, mut log_ids) = (String::new(), BTreeSet::new());
    for line in log.lines() {
        if let Some((id, record)) = gen_audit_record(line) {
            recovered.push_str(&record);
            log_ids.insert(id);
        }
    }
    dir.create("recovered.jsonl", &recovered);
    let mut main_ids = BTreeSet::new();
    for file in ["data/events.jsonl", "data/corrections.jsonl"] {
        for line in lines(&dir.read(file), &BTreeSet::new()) {
            if let Some(rec) = line.rec {
                main_ids.insert(rec.id);
            }
        }
    }
    let base = [
        "--input",
        "data/events.jsonl",
        "--corrections",
        "data/corrections.jsonl",
    ];
    let mut args = base.to_vec();
    args.extend(["--audit-log", "data/audit.log", "--audit-pattern", pattern]);
    args.extend(["--workers", "2"]);
    let with_log = aggregate(&dir, "with_log", &args);
    let mut args = base.to_vec();
    args.push("recovered.jsonl");
    let recompute = aggregate(&dir, "recompute", &args);
    let without = aggregate(&dir, "without", &base);
    assert_eq!(
        count(&with_log, "records_dead_lettered"),
        count(&recompute, "records_dead_lettered")
    );
    assert_same_table(&dir, "recompute", "with_log");
    assert_ne!(
        without["table_digest"], with_log["table_digest"],
        "the log recovers nothing"
    );
    let only_in_log = log_ids.difference(&main_ids).count() as u64;
    assert!(only_in_log > 20, "{only_in_log}");
    assert_eq!(count(&with_log, "ids_only_in_audit"), only_in_log);
    let other_lines = log
        .lines()
        .filter(|l| gen_audit_record(l).is_none())
        .count() as u64;
    assert_eq!(count(&with_log, "audit_lines_skipped"), other_lines);
    // The gaps the log covers close; the rest stay.
    let gaps = |out: &str, extra: &[&str]| -> u64 {
        let mut args = vec!["gaps", "--quiet", "--out", out];
        args.extend_from_slice(&base);
        args.extend_from_slice(extra);
        dir.run(&args).expect_success();
        let summary: Value =
            serde_json::from_str(&dir.read(format!("{out}/gaps_summary.json"))).unwrap();
        count(&summary, "missing")
    };
    let (before, after) = (
        gaps("gaps_before", &[]),
        gaps(
            "gaps_after",
            &["--audit-log", "data/audit.log", "--audit-pattern", pattern],
        ),
    );
    assert!(0 < after && after < before, "missing {before} -> {after}");

    // The gaps left are exactly the sequence numbers neither the input nor the log holds: every
    // accepted record with a source and a seq counts, bad lines do not.
    let mut seen: std::collections::BTreeMap<String, BTreeSet<u64>> = Default::default();
    let mut note = |line: &str| {
        let Ok(record) = serde_json::from_str::<Value>(line) else {
            return;
        };
        if let (Some(source), Some(seq)) = (record["source"].as_str(), record["seq"].as_u64()) {
            seen.entry(source.to_owned()).or_default().insert(seq);
        }
    };
    let dead: BTreeSet<(String, u64)> = dir
        .read("gaps_after/dead_letter.jsonl")
        .lines()
        .map(|l| {
            let d: Value = serde_json::from_str(l).unwrap();
            (
                d["source"].as_str().unwrap().to_owned(),
                d["offset"].as_u64().unwrap(),
            )
        })
        .collect();
    for file in ["data/events.jsonl", "data/corrections.jsonl"] {
        let mut offset = 0u64;
        for line in dir.read(file).split_inclusive('\n') {
            if !dead.contains(&(file.to_owned(), offset)) {
                note(line.trim_end());
            }
            offset += line.len() as u64;
        }
    }
    for line in recovered.lines() {
        note(line);
    }
    let mut expected = String::new();
    for (source, seqs) in &seen {
        let mut seqs = seqs.iter().copied().peekable();
        while let Some(seq) = seqs.next() {
            if let Some(&next) = seqs.peek()
                && next > seq + 1
            {
                let (from, to) = (seq + 1, next - 1);
                expected += &format!(
                    "{{\"source\":{source:?},\"from\":{from},\"to\":{to},\"count\":{}}}\n",
                    to - from + 1
                );
            }
        }
    }
    assert!(
        !expected.is_empty(),
        "the log covers every gap: nothing left to check"
    );
    assert_eq!(dir.read("gaps_after/gaps.jsonl"), expected);
}
