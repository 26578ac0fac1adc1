//! End-to-end tests: they drive the real `amend` binary, as a user would, and check its exit
//! codes, messages and output files against docs/format.md.
//!
//! Run them with `cargo test -p amend --test e2e`.
//!
//! # Golden cases
//!
//! Each directory `tests/cases/<name>/` is a small, hand-written case: its input files, an
//! `args` file (the arguments of `amend`, one per line, starting with `aggregate`; paths
//! relative to the case directory; the harness adds `--out`), a `README.md` saying what it
//! shows and why the expected values are right, and `expected/` with every output file. The
//! binary runs with the case directory as working directory, so dead letters name their
//! source as written in `args`. In `summary.json`, `elapsed_seconds` and `records_per_second`
//! are masked as `"[masked]"` before comparing. Each case also runs with `--workers 3
//! --batch-records 2`, which must not change any output, and every run is checked against the
//! data contract (accounting, changelog replay, canonical decimals, digests recomputed with
//! `sha256sum`): see `tests/e2e/check.rs`.
//!
//! **Bless mode**: `AMEND_BLESS=1 cargo test -p amend --test e2e` rewrites each case's
//! `expected/` from the actual outputs. A golden file is only as good as its review: check
//! every blessed file against docs/format.md (and the case's README) by hand before keeping it.
//!
//! To add a case, create its directory with inputs and `args`, add its name to the `golden!`
//! list below, bless, and review.

#[path = "e2e/check.rs"]
mod check;
#[path = "e2e/golden.rs"]
mod golden;
#[path = "e2e/util.rs"]
mod util;

use std::io::Read;
use std::path::Path;

use serde_json::Value;

use crate::check::check_outputs;
use crate::golden::{cases_dir, mask_summary};
use crate::util::{Run, TestDir, assert_same_file, diff};

/// One test per golden case, named after its directory.
macro_rules! golden {
    ($($name:ident),* $(,)?) => {
        mod cases {
            $(
                #[test]
                fn $name() {
                    crate::golden::run_case(stringify!($name));
                }
            )*
        }

        /// The golden cases that have a test.
        const CASES: &[&str] = &[$(stringify!($name)),*];
    };
}

golden!(
    late_and_correction,
    replay_stale_delete,
    bad_records,
    csv_input,
    hop_windows,
    custom_fields,
);

#[test]
fn every_case_directory_has_a_test() {
    let mut dirs: Vec<String> = std::fs::read_dir(cases_dir())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    let mut listed: Vec<String> = CASES.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(dirs, listed, "tests/cases/ and the golden! list differ");
}

/// A valid record, for runs whose data does not matter.
const GOOD: &str = "{\"id\":\"a\",\"key\":\"k\",\"ts\":\"2026-11-20T10:00:00Z\",\"value\":1}\n";

/// The outputs every successful run writes (the snapshot in its default format).
/// Fields of summary.json that depend on the run (timing, worker count), not on the input.
const RUN_DEPENDENT: [&str; 5] = [
    "elapsed_seconds",
    "records_per_second",
    "workers",
    "epoch_latency_ms_p50",
    "epoch_latency_ms_p99",
];

const OUTPUT_FILES: [&str; 7] = [
    "changelog.jsonl",
    "snapshot.jsonl",
    "dead_letter.jsonl",
    "late.jsonl",
    "epochs.jsonl",
    "digests.json",
    "summary.json",
];

/// Panics unless `run` failed with `code` and a readable message on stderr that mentions every
/// one of `mentions`: a first line starting `error: ` or `amend: `, no panic, no backtrace, and
/// nothing on stdout.
#[track_caller]
fn expect_readable_failure(run: &Run, code: i32, mentions: &[&str]) {
    run.expect_code(code);
    let first = run.stderr.lines().next().unwrap_or("");
    let problems = [
        (run.stderr.trim().is_empty(), "stderr is empty"),
        (run.stderr.contains("panicked"), "it panicked"),
        (
            run.stderr.contains("stack backtrace") || run.stderr.contains("RUST_BACKTRACE"),
            "stderr has a backtrace",
        ),
        (!run.stdout.is_empty(), "stdout is not empty"),
        (
            !(first.starts_with("error: ") || first.starts_with("amend: ")),
            "the first line does not start with `error: ` or `amend: `",
        ),
        (first.len() > 300, "the first line is longer than 300 bytes"),
    ];
    for (bad, what) in problems {
        assert!(!bad, "{what}\n{run}");
    }
    for mention in mentions {
        assert!(
            run.stderr.contains(mention),
            "stderr does not mention `{mention}`\n{run}"
        );
    }
}

#[test]
fn bad_flags_exit_2_with_a_readable_message() {
    let dir = TestDir::new();
    dir.create("events.jsonl", GOOD);
    let cases: &[(&[&str], &[&str])] = &[
        (&["--window", "tumbling:1m", "--bogus"], &["--bogus"]),
        (&[], &["--window"]),
        (&["--window", "bogus"], &["--window", "bogus"]),
        (&["--window", "tumbling:5x"], &["5x"]),
        (&["--window", "tumbling:0s"], &["0s"]),
        (&["--window", "hop:1m"], &["hop:1m"]),
        (&["--window", "session:5q"], &["session:5q"]),
        (
            &["--window", "tumbling:1m", "--scale", "40"],
            &["--scale", "40"],
        ),
        (
            &["--window", "tumbling:1m", "--workers", "0"],
            &["--workers", "0"],
        ),
        (
            &["--window", "tumbling:1m", "--workers", "many"],
            &["--workers", "many"],
        ),
        (
            &["--window", "tumbling:1m", "--batch-records", "0"],
            &["--batch-records"],
        ),
        (
            &["--window", "tumbling:1m", "--max-line-bytes", "0"],
            &["--max-line-bytes"],
        ),
        (
            &["--window", "tumbling:1m", "--snapshot-format", "xml"],
            &["xml"],
        ),
        (&["--window", "tumbling:1m", "--id-field", "key"], &["key"]),
    ];
    for (extra, mentions) in cases {
        let mut args = vec!["aggregate", "--input", "events.jsonl", "--out", "out"];
        args.extend_from_slice(extra);
        let run = dir.run(&args);
        expect_readable_failure(&run, 2, mentions);
        assert!(
            !dir.join("out").exists(),
            "a usage error created --out\n{run}"
        );
    }
    expect_readable_failure(&dir.run(&["frobnicate"]), 2, &["frobnicate"]);
    // No subcommand: clap shows the short help on stderr.
    let bare = dir.run::<&str>(&[]);
    bare.expect_code(2);
    assert!(bare.stderr.contains("Usage: amend <COMMAND>") && !bare.stderr.contains("panicked"));
}

#[test]
fn gen_bad_flag_values_exit_2() {
    let dir = TestDir::new();
    for (extra, mention) in [
        (["--events", "0"], "--events"),
        (["--late", "2"], "--late"),
        (["--span", "0s"], "--span"),
        (["--start", "yesterday"], "--start"),
    ] {
        let mut args = vec!["gen", "--out", "data"];
        args.extend_from_slice(&extra);
        expect_readable_failure(&dir.run(&args), 2, &[mention]);
    }
}

#[test]
fn a_missing_input_file_exits_1_naming_the_file() {
    let dir = TestDir::new();
    dir.create("events.jsonl", GOOD);
    for missing in ["missing.jsonl", "missing-dir/"] {
        let run = dir.run(&[
            "aggregate",
            "--input",
            "events.jsonl",
            "--corrections",
            missing,
            "--window",
            "tumbling:1m",
            "--out",
            "out",
        ]);
        expect_readable_failure(&run, 1, &[missing]);
        assert_eq!(run.stderr.lines().count(), 1, "{run}");
        assert!(
            !dir.join("out").exists(),
            "a failed check created --out\n{run}"
        );
    }
}

#[test]
fn an_input_with_an_unknown_extension_exits_1_naming_the_file() {
    let dir = TestDir::new();
    dir.create("events.txt", GOOD);
    let run = dir.run(&[
        "aggregate",
        "--input",
        "events.txt",
        "--window",
        "tumbling:1m",
        "--out",
        "out",
    ]);
    // The message names the file and says which names are read.
    expect_readable_failure(&run, 1, &["events.txt", ".jsonl", ".csv"]);
    assert_eq!(run.stderr.lines().count(), 1, "{run}");
}

#[test]
fn an_output_dir_that_cannot_be_created_exits_1_with_a_readable_message() {
    let dir = TestDir::new();
    dir.create("events.jsonl", GOOD);
    dir.create("file", "a regular file\n");
    for out in ["file/out", "file"] {
        let run = dir.run(&[
            "aggregate",
            "--input",
            "events.jsonl",
            "--window",
            "tumbling:1m",
            "--out",
            out,
        ]);
        expect_readable_failure(&run, 1, &[out]);
        assert_eq!(run.stderr.lines().count(), 1, "{run}");
    }
    assert_eq!(dir.read("file"), "a regular file\n");
}

#[test]
fn help_exits_0_and_mentions_every_flag() {
    let dir = TestDir::new();
    let top = dir.run(&["--help"]);
    top.expect_success();
    for word in ["aggregate", "gen", "--help", "--version"] {
        assert!(
            top.stdout.contains(word),
            "amend --help does not mention {word}\n{top}"
        );
    }
    let aggregate = dir.run(&["aggregate", "--help"]);
    aggregate.expect_success();
    for flag in [
        "--input",
        "--corrections",
        "--id-field",
        "--key-field",
        "--time-field",
        "--value-field",
        "--scale",
        "--max-line-bytes",
        "--window",
        "tumbling:",
        "hop:",
        "--out",
        "--snapshot-format",
        "--workers",
        "--batch-records",
        "--explain",
        "--quiet",
        "--help",
        "--from-time",
        "--to-time",
        "--from-offset",
        "--to-offset",
        "--audit-log",
        "--audit-pattern",
        "--audit-format",
        "--audit-path",
    ] {
        assert!(
            aggregate.stdout.contains(flag),
            "amend aggregate --help does not mention {flag}\n{aggregate}"
        );
    }
    let r#gen = dir.run(&["gen", "--help"]);
    r#gen.expect_success();
    for flag in [
        "--out",
        "--seed",
        "--events",
        "--keys",
        "--sources",
        "--span",
        "--start",
        "--late",
        "--replays",
        "--corrections",
        "--stale",
        "--deletes",
        "--bad",
    ] {
        assert!(
            r#gen.stdout.contains(flag),
            "amend gen --help does not mention {flag}\n{gen}"
        );
    }
    // Short help too.
    dir.run(&["aggregate", "-h"]).expect_success();
}

#[test]
fn version_prints_the_package_version() {
    let run = TestDir::new().run(&["--version"]);
    run.expect_success();
    assert_eq!(run.stdout, format!("amend {}\n", env!("CARGO_PKG_VERSION")));
}

/// The data of the generated-data tests: `amend gen` output in `dir/data`.
fn generate(dir: &TestDir, args: &[&str]) -> Run {
    let mut full = vec!["gen", "--out", "data"];
    full.extend_from_slice(args);
    let run = dir.run(&full);
    run.expect_success();
    run
}

/// Runs `amend aggregate` on `dir/data` into `dir/<out>` with `extra` flags; checks the run.
fn aggregate_generated(dir: &TestDir, inputs: [&str; 2], out: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "aggregate",
        "--input",
        inputs[0],
        "--corrections",
        inputs[1],
        "--window",
        "hop:10m/5m",
        "--out",
        out,
    ];
    args.extend_from_slice(extra);
    let run = dir.run(&args);
    run.expect_success();
    run
}

fn summary(dir: &Path) -> Value {
    serde_json::from_str(&util::read_text(&dir.join("summary.json"))).unwrap()
}

#[test]
fn worker_count_and_batch_size_do_not_change_any_output() {
    let dir = TestDir::new();
    generate(&dir, &["--seed", "7", "--events", "20000"]);
    let inputs = ["data/events.jsonl", "data/corrections.jsonl"];
    aggregate_generated(&dir, inputs, "w1", &[]);
    check_outputs(&dir.join("w1"), false);
    let reference = summary(&dir.join("w1"));
    assert!(reference["records_dead_lettered"].as_u64() > Some(0));
    assert!(reference["changelog_lines"].as_u64() > reference["rows"].as_u64());
    for (out, extra) in [
        ("w2", &["--workers", "2"][..]),
        ("w4", &["--workers", "4"]),
        ("w1b", &["--batch-records", "100"]),
        ("w4b", &["--workers", "4", "--batch-records", "100"]),
    ] {
        aggregate_generated(&dir, inputs, out, extra);
        for file in [
            "changelog.jsonl",
            "snapshot.jsonl",
            "dead_letter.jsonl",
            "digests.json",
        ] {
            assert_same_file(file, &dir.join("w1"), &dir.join(out));
        }
        let mut got = summary(&dir.join(out));
        for field in RUN_DEPENDENT {
            got[field] = reference[field].clone();
        }
        assert_eq!(got, reference, "summary.json differs with {extra:?}");
    }
}

#[test]
fn gzip_input_gives_the_same_outputs_as_plain_input() {
    let dir = TestDir::new();
    generate(&dir, &["--seed", "3", "--events", "3000", "--bad", "0.01"]);
    let (Some(_), Some(_)) = (
        dir.gzip("data/events.jsonl", "data/events.jsonl.gz"),
        dir.gzip("data/corrections.jsonl", "data/corrections.jsonl.gz"),
    ) else {
        return;
    };
    aggregate_generated(
        &dir,
        ["data/events.jsonl", "data/corrections.jsonl"],
        "plain",
        &[],
    );
    aggregate_generated(
        &dir,
        ["data/events.jsonl.gz", "data/corrections.jsonl.gz"],
        "gz",
        &["--workers", "2"],
    );
    check_outputs(&dir.join("gz"), false);
    for file in ["changelog.jsonl", "snapshot.jsonl", "digests.json"] {
        assert_same_file(file, &dir.join("plain"), &dir.join("gz"));
    }
    // Dead letters name their source as given; all else (offsets, lines, raw text) is equal.
    let plain = dir.read("plain/dead_letter.jsonl");
    assert!(!plain.is_empty());
    let gz = dir
        .read("gz/dead_letter.jsonl")
        .replace(".jsonl.gz\"", ".jsonl\"");
    if let Some(d) = diff(&plain, &gz) {
        panic!("dead letters of the gzip input differ (source names aside):\n{d}");
    }
    let volatile = RUN_DEPENDENT;
    let (a, b) = (dir.read("plain/summary.json"), dir.read("gz/summary.json"));
    if let Some(d) = diff(&mask_summary(&a, &volatile), &mask_summary(&b, &volatile)) {
        panic!("summary.json of the gzip input differs:\n{d}");
    }
}

/// The numbers in `amend gen`'s report line, in order.
fn numbers(text: &str) -> Vec<u64> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect()
}

#[test]
fn gen_is_deterministic_and_its_output_aggregates_cleanly() {
    let dir = TestDir::new();
    let args = ["--seed", "11", "--events", "5000", "--bad", "0.01"];
    let first = dir.run(&[&["gen", "--out", "a"][..], &args].concat());
    first.expect_success();
    let second = dir.run(&[&["gen", "--out", "b"][..], &args].concat());
    second.expect_success();
    for file in ["events.jsonl", "corrections.jsonl"] {
        let (a, b) = (
            dir.read(Path::new("a").join(file)),
            dir.read(Path::new("b").join(file)),
        );
        assert!(a == b, "amend gen {args:?} wrote two different {file}");
        assert!(a.ends_with('\n'));
    }
    let other = dir.run(&["gen", "--out", "c", "--seed", "12", "--events", "5000"]);
    other.expect_success();
    assert_ne!(
        dir.read("a/events.jsonl"),
        dir.read("c/events.jsonl"),
        "the seed is ignored"
    );

    // "wrote E lines to a/events.jsonl and C lines to a/corrections.jsonl (B bad lines in all)"
    let report = first
        .stdout
        .replace("a/events.jsonl", "")
        .replace("a/corrections.jsonl", "");
    let [event_lines, correction_lines, bad_lines] = numbers(&report)[..] else {
        panic!("unexpected report from amend gen:\n{first}");
    };
    assert_eq!(event_lines, 5000, "{first}");
    assert_eq!(
        dir.read("a/events.jsonl").lines().count() as u64,
        event_lines
    );
    assert_eq!(
        dir.read("a/corrections.jsonl").lines().count() as u64,
        correction_lines
    );
    assert!(bad_lines > 0);

    let run = dir.run(&[
        "aggregate",
        "--input",
        "a/events.jsonl",
        "--corrections",
        "a/corrections.jsonl",
        "--window",
        "tumbling:15m",
        "--out",
        "out",
    ]);
    run.expect_success();
    check_outputs(&dir.join("out"), false);
    let summary = summary(&dir.join("out"));
    assert_eq!(
        summary["records_read"],
        event_lines + correction_lines,
        "{summary}"
    );
    assert_eq!(summary["records_dead_lettered"], bad_lines, "{summary}");
    assert_eq!(summary["epochs"], 2);
}

#[test]
fn explain_prints_the_graph_and_writes_no_output() {
    let dir = TestDir::new();
    dir.create("events.jsonl", GOOD);
    let run = dir.run(&[
        "aggregate",
        "--input",
        "events.jsonl",
        "--window",
        "hop:1m/30s",
        "--workers",
        "2",
        "--out",
        "out",
        "--explain",
    ]);
    run.expect_success();
    assert!(!dir.join("out").exists(), "--explain created --out\n{run}");
    assert!(run.stdout.contains("hop:1m/30s"), "{run}");
    let edges: Vec<&str> = run
        .stdout
        .lines()
        .skip_while(|line| !line.starts_with("edges"))
        .collect();
    // Records go to the worker that owns their id, then to the one that owns their (window,
    // key); the aggregation operator was called Reduce, and may be called Aggregate.
    let into = |op: &str, how: &str| {
        edges.iter().any(|e| {
            e.split_once("->")
                .is_some_and(|(_, to)| to.contains(op) && to.contains(how))
        })
    };
    assert!(
        into("ResolveIds", "exchange by hash(id)"),
        "--explain shows no exchange by hash(id) into ResolveIds\n{run}"
    );
    assert!(
        into("Reduce", "exchange by hash(window, key)")
            || into("Aggregate", "exchange by hash(window, key)"),
        "--explain shows no exchange by hash(window, key) into Reduce (or Aggregate)\n{run}"
    );
}

#[test]
fn explain_needs_only_the_window() {
    let dir = TestDir::new();
    let run = dir.run(&["aggregate", "--window", "tumbling:1m", "--explain"]);
    run.expect_success();
    assert!(run.stdout.contains("ResolveIds"), "{run}");
    // Without --explain, inputs and --out are required again.
    let run = dir.run(&["aggregate", "--window", "tumbling:1m"]);
    assert_eq!(run.code, Some(2), "{run}");
    assert!(
        run.stderr.contains("--input") && run.stderr.contains("--out"),
        "{run}"
    );
}

#[test]
fn a_successful_run_is_silent_on_piped_stderr_and_summarises_on_stdout() {
    let dir = TestDir::new();
    let bad = "{\"id\":\"b\",\"key\":\"k\",\"ts\":\"yesterday\",\"value\":1}\n";
    dir.create("events.jsonl", format!("{GOOD}{bad}"));
    let run = dir.run(&[
        "aggregate",
        "--input",
        "events.jsonl",
        "--window",
        "tumbling:1m",
        "--out",
        "out",
    ]);
    // No progress line: stderr is a pipe here.
    run.expect_success();
    assert_eq!(run.stdout.lines().count(), 1, "not one paragraph\n{run}");
    assert!(run.stdout.ends_with('\n'));
    let summary = summary(&dir.join("out"));
    let digest = summary["table_digest"].as_str().unwrap();
    for text in [
        "read 2 records",
        "1 accepted",
        "1 dead-lettered",
        "dead_letter.jsonl",
        digest,
    ] {
        assert!(
            run.stdout.contains(text),
            "the summary does not say `{text}`\n{run}"
        );
    }
    let mut written: Vec<String> = std::fs::read_dir(dir.join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    let mut want = OUTPUT_FILES.map(String::from).to_vec();
    want.sort();
    assert_eq!(
        written, want,
        "unexpected files in --out (leftover temporary files?)"
    );
}

#[test]
fn rerunning_into_the_same_out_dir_replaces_every_output() {
    let dir = TestDir::new();
    dir.create("first.jsonl", format!("{GOOD}not json\n"));
    dir.create(
        "second.jsonl",
        "{\"id\":\"z\",\"key\":\"q\",\"ts\":\"2026-11-21T00:00:00Z\",\"value\":2}\n",
    );
    let args = |input: &'static str, out: &'static str| {
        [
            "aggregate",
            "--input",
            input,
            "--window",
            "tumbling:1m",
            "--out",
            out,
        ]
    };
    dir.run(&args("first.jsonl", "out")).expect_success();
    dir.run(&args("second.jsonl", "out")).expect_success();
    dir.run(&args("second.jsonl", "fresh")).expect_success();
    for file in [
        "changelog.jsonl",
        "snapshot.jsonl",
        "dead_letter.jsonl",
        "digests.json",
    ] {
        assert_same_file(file, &dir.join("fresh"), &dir.join("out"));
    }
    check_outputs(&dir.join("out"), true);
}

/// Spawns `amend args` in `dir` with its stdout closed before it writes, and waits.
fn run_with_closed_stdout(dir: &TestDir, args: &[&str]) -> Run {
    let mut child = dir.command(args).spawn().unwrap();
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    Run {
        command: format!("amend {} | (stdout closed)", args.join(" ")),
        code: status.code(),
        stdout: String::new(),
        stderr,
    }
}

#[test]
fn a_closed_stdout_exits_0_without_a_panic() {
    let dir = TestDir::new();
    dir.create("events.jsonl", GOOD);
    for args in [
        &[
            "aggregate",
            "--input",
            "events.jsonl",
            "--window",
            "tumbling:1m",
            "--out",
            "out",
        ][..],
        &["gen", "--out", "data", "--events", "100"],
    ] {
        let run = run_with_closed_stdout(&dir, args);
        assert!(!run.stderr.contains("panicked"), "{run}");
        run.expect_code(0);
    }
}

#[test]
fn huge_and_non_utf8_lines_are_dead_lettered_with_their_position() {
    let dir = TestDir::new();
    let mut data = format!("{{\"id\":\"{}\"}}\n", "x".repeat(70_000)).into_bytes();
    let second = data.len();
    data.extend_from_slice(
        b"{\"id\":\"a\xff\",\"key\":\"k\",\"ts\":\"2026-11-20T10:00:00Z\",\"value\":1}\n",
    );
    data.extend_from_slice(GOOD.as_bytes());
    dir.create("events.jsonl", &data);
    let args = [
        "aggregate",
        "--input",
        "events.jsonl",
        "--window",
        "tumbling:1m",
    ];
    dir.run(&[&args[..], &["--out", "out", "--max-line-bytes", "1000"]].concat())
        .expect_success();
    check_outputs(&dir.join("out"), true);
    let letters: Vec<Value> = dir
        .read("out/dead_letter.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(letters.len(), 2, "{letters:?}");
    // docs/format.md section 6: `raw` is cut at 64 KiB for huge lines.
    assert_eq!(
        (letters[0]["line"].as_u64(), letters[0]["offset"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(letters[0]["raw"].as_str().unwrap().len(), 64 * 1024);
    assert!(
        letters[0]["reason"].as_str().unwrap().contains("1000"),
        "{}",
        letters[0]
    );
    // Invalid UTF-8 is replaced in `raw`, and the reason says so.
    assert_eq!(letters[1]["line"], 2);
    assert_eq!(letters[1]["offset"], second);
    assert!(
        letters[1]["raw"]
            .as_str()
            .unwrap()
            .starts_with("{\"id\":\"a\u{fffd}\"")
    );
    assert!(
        letters[1]["reason"].as_str().unwrap().contains("UTF-8"),
        "{}",
        letters[1]
    );
    // The same with several workers, and with the default line limit only the UTF-8 line is bad.
    dir.run(
        &[
            &args[..],
            &["--out", "w3", "--max-line-bytes", "1000", "--workers", "3"],
        ]
        .concat(),
    )
    .expect_success();
    assert_same_file("dead_letter.jsonl", &dir.join("out"), &dir.join("w3"));
    dir.run(&[&args[..], &["--out", "default"]].concat())
        .expect_success();
    assert_eq!(summary(&dir.join("default"))["records_dead_lettered"], 2);
}

#[test]
fn an_empty_input_gives_empty_outputs_and_the_digest_of_nothing() {
    let dir = TestDir::new();
    dir.create("events.jsonl", "");
    dir.create("blank.jsonl", "\n\n");
    dir.run(&[
        "aggregate",
        "--input",
        "events.jsonl",
        "blank.jsonl",
        "--window",
        "tumbling:1m",
        "--out",
        "out",
    ])
    .expect_success();
    check_outputs(&dir.join("out"), true);
    for file in ["changelog.jsonl", "snapshot.jsonl", "dead_letter.jsonl"] {
        assert_eq!(dir.read(Path::new("out").join(file)), "", "{file}");
    }
    let summary = summary(&dir.join("out"));
    // SHA-256 of no bytes: a table with no windows.
    let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    assert_eq!(summary["table_digest"], empty);
    assert_eq!(summary["records_read"], 0);
    assert_eq!(summary["epochs"], 2);
}

/// Runs `amend args` in `dir` with stderr on a terminal (util-linux `script`), stdout to a
/// file; returns what the terminal showed, or `None` if `script` is not usable here.
fn run_on_a_terminal(dir: &TestDir, args: &[&str]) -> Option<String> {
    let usable = std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("util-linux"));
    if !usable {
        eprintln!("note: util-linux `script` is not installed; skipping the terminal check");
        return None;
    }
    let line = format!("{} {} >stdout.txt", util::AMEND, args.join(" "));
    let output = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "script -qec '{line}' failed: {output:?}"
    );
    Some(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn the_progress_line_shows_on_a_terminal_is_cleared_and_quiet_hides_it() {
    let dir = TestDir::new();
    dir.create("events.jsonl", GOOD);
    let args = [
        "aggregate",
        "--input",
        "events.jsonl",
        "--window",
        "tumbling:1m",
        "--out",
        "out",
    ];
    let Some(shown) = run_on_a_terminal(&dir, &args) else {
        return;
    };
    assert!(
        shown.contains("epoch ") && shown.contains("records/s"),
        "no progress line on a terminal: {shown:?}"
    );
    assert!(
        shown.ends_with("\r\x1b[2K"),
        "the progress line is not cleared: {shown:?}"
    );
    assert!(
        dir.read("stdout.txt")
            .starts_with("amend aggregate: read 1 records")
    );
    let quiet = run_on_a_terminal(&dir, &[&args[..], &["--quiet"]].concat()).unwrap();
    assert_eq!(quiet, "", "--quiet still draws on the terminal");
}
