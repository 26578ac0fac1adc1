//! Golden cases: `tests/cases/<name>/` holds input files, an `args` file and `expected/`.
//!
//! `args` holds one argument per line (empty lines are skipped), starting with the subcommand
//! `aggregate`; paths are relative to the case
//! directory, which is the working directory of the run, so dead letters name their source as
//! written there. The harness adds `--out`. `expected/` holds every output file; volatile
//! fields of `summary.json` (`elapsed_seconds`, `records_per_second`) are masked as
//! `"[masked]"` on both sides before comparing.
//!
//! Each case runs twice: as written, compared with `expected/`; and with `--workers 3
//! --batch-records 2`, which must give the same files (the summary's `workers` aside). Both
//! runs must pass the data-contract checks of [`crate::check`].
//!
//! With `AMEND_BLESS=1` in the environment, `expected/` is rewritten from the actual outputs of
//! the first run. Review every blessed file against docs/format.md before keeping it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use crate::check::check_outputs;
use crate::util::{Run, TestDir, amend_in, diff, read_text};

/// Fields of summary.json that change from run to run: timings.
const VOLATILE: [&str; 4] = [
    "elapsed_seconds",
    "records_per_second",
    "epoch_latency_ms_p50",
    "epoch_latency_ms_p99",
];

/// Fields of epochs.jsonl lines that change from run to run: timings, and the state gauges,
/// which the sink reads while the workers may already be in the next epoch.
const VOLATILE_EPOCH: [&str; 5] = [
    "read_at",
    "flushed_at",
    "latency_ms",
    "state_ids",
    "state_groups",
];

/// The directory of the golden cases.
pub fn cases_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/cases");
    dir.canonicalize()
        .unwrap_or_else(|e| panic!("cannot find {}: {e}", dir.display()))
}

/// Whether `AMEND_BLESS` asks to rewrite the expected outputs.
fn blessing() -> bool {
    std::env::var_os("AMEND_BLESS").is_some_and(|v| !v.is_empty() && v != "0")
}

/// `summary.json` with the given fields' values replaced by `"[masked]"`. The file is pretty
/// JSON, one field per line, so the rest stays byte for byte.
pub fn mask_summary(text: &str, fields: &[&str]) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let masked = fields.iter().find_map(|field| {
            let prefix = format!("\"{field}\":");
            trimmed.strip_prefix(&prefix).map(|value| {
                let indent = &line[..line.len() - trimmed.len()];
                let comma = if value.trim_end().ends_with(',') {
                    ","
                } else {
                    ""
                };
                let newline = if line.ends_with('\n') { "\n" } else { "" };
                format!("{indent}{prefix} \"[masked]\"{comma}{newline}")
            })
        });
        out.push_str(masked.as_deref().unwrap_or(line));
    }
    out
}

/// `epochs.jsonl` with the volatile fields of each line replaced by `"[masked]"`.
fn mask_epochs(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let mut value: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("epochs.jsonl line is not JSON ({e}): {line}"));
        for field in VOLATILE_EPOCH {
            let slot = value
                .get_mut(field)
                .unwrap_or_else(|| panic!("epochs.jsonl line lacks {field}: {line}"));
            *slot = "[masked]".into();
        }
        out.push_str(&value.to_string());
        out.push('\n');
    }
    out
}

/// The output files of a run in `out`, by name, summary and epoch timings masked.
fn outputs(out: &Path, masked: &[&str]) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    for entry in fs::read_dir(out).unwrap_or_else(|e| panic!("cannot list {}: {e}", out.display()))
    {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let mut text = read_text(&path);
        if name == "summary.json" {
            text = mask_summary(&text, masked);
        }
        if name == "epochs.jsonl" {
            text = mask_epochs(&text);
        }
        files.insert(name, text);
    }
    files
}

/// Runs golden case `name`; panics with a diff of every differing file.
#[track_caller]
pub fn run_case(name: &str) {
    let case = cases_dir().join(name);
    let args_text = read_text(&case.join("args"));
    let args: Vec<&str> = args_text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tmp = TestDir::new();

    let run_with = |extra: &[&str], out: &str| -> BTreeMap<String, String> {
        let out = tmp.join(out);
        let mut full: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
        full.extend(extra.iter().map(std::ffi::OsStr::new));
        full.push("--out".as_ref());
        full.push(out.as_os_str());
        let run = Run::of(amend_in(&case, &full));
        run.expect_success();
        check_outputs(&out, true);
        let mut masked = VOLATILE.to_vec();
        if !extra.is_empty() {
            masked.push("workers");
        }
        outputs(&out, &masked)
    };

    let actual = run_with(&[], "out");
    let expected_dir = case.join("expected");
    if blessing() {
        let _ = fs::remove_dir_all(&expected_dir);
        fs::create_dir_all(&expected_dir).unwrap();
        for (file, text) in &actual {
            fs::write(expected_dir.join(file), text).unwrap();
        }
        eprintln!(
            "blessed {}: review it against docs/format.md",
            expected_dir.display()
        );
    } else {
        let expected: BTreeMap<String, String> = fs::read_dir(&expected_dir)
            .unwrap_or_else(|e| {
                panic!(
                    "cannot list {}: {e} (create it with AMEND_BLESS=1)",
                    expected_dir.display()
                )
            })
            .map(|entry| {
                let path = entry.unwrap().path();
                let file = path.file_name().unwrap().to_string_lossy().into_owned();
                (file, read_text(&path))
            })
            .collect();
        let failures = compare(&expected, &actual);
        if !failures.is_empty() {
            panic!(
                "golden case {name} ({}): the outputs differ from expected/ (rerun with \
                 AMEND_BLESS=1 to accept them, after checking them against docs/format.md)\n\n{}",
                case.display(),
                failures.join("\n")
            );
        }
    }

    // The same outputs with several workers splitting every file, and tiny batches.
    let with_workers: Vec<&str> = VOLATILE.iter().copied().chain(["workers"]).collect();
    let expected = outputs(&tmp.join("out"), &with_workers);
    let parallel = run_with(&["--workers", "3", "--batch-records", "2"], "out-parallel");

    let failures = compare(&expected, &parallel);
    if !failures.is_empty() {
        panic!(
            "golden case {name}: --workers 3 --batch-records 2 changes the outputs\n\n{}",
            failures.join("\n")
        );
    }
}

/// One message per file that differs, is missing from `actual`, or is not in `expected`.
fn compare(expected: &BTreeMap<String, String>, actual: &BTreeMap<String, String>) -> Vec<String> {
    let files: BTreeSet<&String> = expected.keys().chain(actual.keys()).collect();
    let mut failures = Vec::new();
    for file in files {
        match (expected.get(file), actual.get(file)) {
            (Some(e), Some(a)) => {
                if let Some(d) = diff(e, a) {
                    failures.push(format!("{file}:\n{d}"));
                }
            }
            (Some(_), None) => failures.push(format!("{file}: expected but not written")),
            (None, _) => failures.push(format!("{file}: written but not expected")),
        }
    }
    failures
}

#[test]
fn masking_keeps_everything_but_the_volatile_values() {
    let text = r#"{
  "records_read": 7,
  "elapsed_seconds": 0.01,
  "records_per_second": 700.5
}
"#;
    let masked = r#"{
  "records_read": 7,
  "elapsed_seconds": "[masked]",
  "records_per_second": "[masked]"
}
"#;
    assert_eq!(mask_summary(text, &VOLATILE), masked);
}
