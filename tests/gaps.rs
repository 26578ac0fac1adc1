//! Gap detection against a naive reference model, end to end, and in follow mode.
//!
//! The model is the definition written as plainly as possible: the seen numbers of a source
//! are the set of `seq`s of all accepted records with that `source` in epochs `0..=E` (replays,
//! corrections and deletes included); its gaps are the numbers between the least and greatest
//! seen that were not seen, grouped into maximal runs; a duplicate is a (source, seq) carried
//! by two or more distinct ids; a source lags when its last seq is more than the threshold
//! behind the greatest last seq of all sources.
//!
//! - (a) `gaps_changelog.jsonl` replayed epoch by epoch gives the model's gaps after every
//!   epoch; every retraction removes a gap that is there, no insertion duplicates one; lines
//!   are in epoch order, retractions first, each part by (source, from).
//! - (b) `gaps.jsonl`, `duplicates.jsonl` and the totals and lagging sources of
//!   `gaps_summary.json` equal the model's, for 1 to 4 workers and any `--batch-records`.
//! - (c) `amend aggregate --gaps` writes the same gap files as `amend gaps`.
//! - The CLI exits 0, 1 and 2 as documented, and in follow mode an appended recovered
//!   record removes its gap.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::Value;

const AMEND: &str = env!("CARGO_BIN_EXE_amend");

/// One line of input.
#[derive(Clone, Debug)]
enum Line {
    /// A record; `source`/`seq` may be absent.
    Record {
        id: u8,
        source: Option<u8>,
        seq: Option<u64>,
        delete: bool,
        version: u8,
    },
    /// An exact copy of an earlier line (by index among the lines so far), if any.
    Replay(u16),
    /// A line that is not a record.
    Bad,
}

type Gaps = BTreeSet<(String, u64, u64)>;

/// The (source, seq, id) of the records of one epoch that have a source and a seq.
type Sightings = Vec<(String, u64, String)>;

/// What the model says after some epochs.
#[derive(Clone, Debug, Default, PartialEq)]
struct State {
    gaps: Gaps,
    duplicates: BTreeMap<(String, u64), u64>,
    last: BTreeMap<String, u64>,
}

/// Renders the lines (replays resolved) and returns each file's text and the records
/// `(source, seq, id)` of each file.
fn render(lines: &[Line], cuts: &[usize]) -> (Vec<String>, Vec<Sightings>) {
    let mut texts: Vec<String> = Vec::new();
    let mut sightings: Vec<Option<(String, u64, String)>> = Vec::new();
    for line in lines {
        let (text, seen) = match line {
            Line::Record {
                id,
                source,
                seq,
                delete,
                version,
            } => {
                let mut text = format!(
                    "{{\"id\":\"e{id}\",\"key\":\"k\",\"ts\":1000,\"value\":1,\"version\":{version}"
                );
                if *delete {
                    text.push_str(",\"op\":\"delete\"");
                }
                if let Some(source) = source {
                    text.push_str(&format!(",\"source\":\"s{source}\""));
                }
                if let Some(seq) = seq {
                    text.push_str(&format!(",\"seq\":{seq}"));
                }
                text.push('}');
                let seen = match (source, seq) {
                    (Some(source), Some(seq)) => {
                        Some((format!("s{source}"), *seq, format!("e{id}")))
                    }
                    _ => None,
                };
                (text, seen)
            }
            Line::Replay(i) if !texts.is_empty() => {
                let i = *i as usize % texts.len();
                (texts[i].clone(), sightings[i].clone())
            }
            Line::Replay(_) | Line::Bad => ("{\"id\":".to_string(), None),
        };
        texts.push(text);
        sightings.push(seen);
    }
    let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (lines.len() + 1)).collect();
    bounds.push(0);
    bounds.push(lines.len());
    bounds.sort();
    bounds.dedup();
    let mut files = Vec::new();
    let mut records = Vec::new();
    for pair in bounds.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        files.push(texts[a..b].iter().map(|t| format!("{t}\n")).collect());
        records.push(sightings[a..b].iter().flatten().cloned().collect());
    }
    if files.is_empty() {
        files.push(String::new());
        records.push(Vec::new());
    }
    (files, records)
}

/// The model after the records of `epochs`.
fn model<'a>(epochs: impl IntoIterator<Item = &'a Sightings>) -> State {
    let mut seen: BTreeMap<String, BTreeMap<u64, BTreeSet<String>>> = BTreeMap::new();
    for (source, seq, id) in epochs.into_iter().flatten() {
        seen.entry(source.clone())
            .or_default()
            .entry(*seq)
            .or_default()
            .insert(id.clone());
    }
    let mut state = State::default();
    for (source, seqs) in &seen {
        let (first, last) = (
            *seqs.keys().next().unwrap(),
            *seqs.keys().next_back().unwrap(),
        );
        state.last.insert(source.clone(), last);
        let mut run: Option<(u64, u64)> = None;
        for n in first..=last {
            if seqs.contains_key(&n) {
                if let Some((from, to)) = run.take() {
                    state.gaps.insert((source.clone(), from, to));
                }
            } else {
                run = Some(run.map_or((n, n), |(from, _)| (from, n)));
            }
        }
        for (seq, ids) in seqs {
            if ids.len() > 1 {
                state
                    .duplicates
                    .insert((source.clone(), *seq), ids.len() as u64);
            }
        }
    }
    state
}

fn lagging(state: &State, threshold: u64) -> Vec<Value> {
    let Some(max) = state.last.values().max() else {
        return Vec::new();
    };
    state
        .last
        .iter()
        .filter(|(_, last)| max - *last > threshold)
        .map(|(s, last)| serde_json::json!({"source": s, "last": last, "behind": max - last}))
        .collect()
}

/// Runs amend with `args`, in-process, and returns the output directory's gap files.
fn run_in_process(args: &[String]) -> Result<(), String> {
    amend::run_args(args).map_err(|e| format!("{e:#}"))?;
    Ok(())
}

fn write_files(dir: &Path, files: &[String]) -> Vec<String> {
    files
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let path = dir.join(format!("epoch{i}.jsonl"));
            fs::write(&path, text).unwrap();
            path.display().to_string()
        })
        .collect()
}

fn parse_gap(line: &Value) -> (String, u64, u64) {
    let (from, to) = (line["from"].as_u64().unwrap(), line["to"].as_u64().unwrap());
    assert_eq!(line["count"].as_u64().unwrap(), to - from + 1, "{line}");
    (line["source"].as_str().unwrap().to_string(), from, to)
}

fn json_lines(path: &Path) -> Vec<Value> {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Checks the gap files in `out` against the model of `records` (one entry per epoch).
fn check(out: &Path, records: &[Sightings], threshold: u64) -> Result<(), String> {
    // (a) the changelog replays to the model after every epoch.
    let mut gaps = Gaps::new();
    let mut lines = json_lines(&out.join("gaps_changelog.jsonl"))
        .into_iter()
        .peekable();
    let mut last_key = None;
    for epoch in 0..records.len() as u64 {
        while let Some(line) = lines.next_if(|l| l["epoch"].as_u64() == Some(epoch)) {
            let diff = line["diff"].as_i64().unwrap();
            let gap = parse_gap(&line);
            let key = (diff, gap.clone());
            if last_key.as_ref().is_some_and(|k| *k >= key) {
                return Err(format!("epoch {epoch}: line out of order: {line}"));
            }
            last_key = Some(key);
            let ok = if diff < 0 {
                gaps.remove(&gap)
            } else {
                gaps.insert(gap)
            };
            if !ok {
                return Err(format!("epoch {epoch}: {line} does not apply to {gaps:?}"));
            }
        }
        last_key = None;
        let want = model(&records[..=epoch as usize]);
        if gaps != want.gaps {
            return Err(format!(
                "epoch {epoch}: changelog replays to\n  {gaps:?}\nmodel:\n  {:?}",
                want.gaps
            ));
        }
    }
    if let Some(line) = lines.next() {
        return Err(format!("changelog line of no epoch: {line}"));
    }
    // (b) the current files.
    let want = model(records);
    let current: Gaps = json_lines(&out.join("gaps.jsonl"))
        .iter()
        .map(parse_gap)
        .collect();
    let ordered: Vec<_> = json_lines(&out.join("gaps.jsonl"))
        .iter()
        .map(parse_gap)
        .collect();
    if current != want.gaps || ordered != want.gaps.iter().cloned().collect::<Vec<_>>() {
        return Err(format!("gaps.jsonl {ordered:?}\nmodel {:?}", want.gaps));
    }
    let duplicates: Vec<_> = json_lines(&out.join("duplicates.jsonl"))
        .iter()
        .map(|l| {
            (
                (
                    l["source"].as_str().unwrap().to_string(),
                    l["seq"].as_u64().unwrap(),
                ),
                l["ids"].as_u64().unwrap(),
            )
        })
        .collect();
    let want_dups: Vec<_> = want.duplicates.clone().into_iter().collect();
    if duplicates != want_dups {
        return Err(format!(
            "duplicates.jsonl {duplicates:?}\nmodel {want_dups:?}"
        ));
    }
    let summary: Value =
        serde_json::from_str(&fs::read_to_string(out.join("gaps_summary.json")).unwrap()).unwrap();
    let missing: u64 = want.gaps.iter().map(|(_, f, t)| t - f + 1).sum();
    let got = (
        summary["sources"].as_u64(),
        summary["gaps"].as_u64(),
        summary["missing"].as_u64(),
        summary["duplicates"].as_u64(),
        summary["max_last"].as_u64(),
        summary["lagging"].as_array().cloned().unwrap_or_default(),
    );
    let expected = (
        Some(want.last.len() as u64),
        Some(want.gaps.len() as u64),
        Some(missing),
        Some(want.duplicates.len() as u64),
        want.last.values().max().copied(),
        lagging(&want, threshold),
    );
    if got != expected {
        return Err(format!("gaps_summary.json {got:?}\nmodel {expected:?}"));
    }
    // State is ranges: one per source plus one per gap, summed over workers.
    if summary["state_ranges"].as_u64() != Some(want.last.len() as u64 + want.gaps.len() as u64) {
        return Err(format!("state_ranges {}", summary["state_ranges"]));
    }
    Ok(())
}

fn line() -> impl Strategy<Value = Line> {
    prop_oneof![
        6 => (0u8..12, 0u8..3, 0u64..30, any::<bool>(), 0u8..3, 0u8..20).prop_map(
            |(id, source, seq, delete, version, absent)| Line::Record {
                id,
                source: (absent != 0).then_some(source),
                seq: (absent != 1).then_some(seq),
                delete: delete && version > 0,
                version,
            }
        ),
        2 => any::<u16>().prop_map(Line::Replay),
        1 => Just(Line::Bad),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// (a), (b) and (c) over random histories split into 1 to 4 epochs, on 1 to 4 workers.
    #[test]
    fn gaps_match_the_model(
        lines in vec(line(), 0..60),
        cuts in vec(any::<usize>(), 0..4),
        workers in 1usize..=4,
        batch in prop_oneof![Just(1u64), 2u64..7, Just(100_000u64)],
        threshold in 0u64..20,
        with_aggregate in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (files, records) = render(&lines, &cuts);
        let paths = write_files(dir.path(), &files);
        let out = dir.path().join("out");
        let mut args: Vec<String> = vec!["amend".into(), "gaps".into(), "--input".into()];
        args.push(paths[0].clone());
        if paths.len() > 1 {
            args.push("--corrections".into());
            args.extend(paths[1..].iter().cloned());
        }
        for (flag, value) in [
            ("--out", out.display().to_string()),
            ("--workers", workers.to_string()),
            ("--batch-records", batch.to_string()),
            ("--lag-threshold", threshold.to_string()),
        ] {
            args.push(flag.into());
            args.push(value);
        }
        args.push("--quiet".into());
        run_in_process(&args).map_err(TestCaseError::fail)?;
        if let Err(diff) = check(&out, &records, threshold) {
            return Err(TestCaseError::fail(format!("{diff}\ninputs: {files:#?}")));
        }
        if with_aggregate {
            // (c) one run does both, with the same gap files.
            let both = dir.path().join("both");
            let mut args = args.clone();
            args[1] = "aggregate".into();
            let at = args.iter().position(|a| a == "--out").unwrap();
            args[at + 1] = both.display().to_string();
            args.extend(["--gaps".into(), "--window".into(), "tumbling:1s".into()]);
            run_in_process(&args).map_err(TestCaseError::fail)?;
            for name in ["gaps.jsonl", "gaps_changelog.jsonl", "duplicates.jsonl"] {
                prop_assert_eq!(
                    fs::read_to_string(out.join(name)).unwrap(),
                    fs::read_to_string(both.join(name)).unwrap(),
                    "{}", name
                );
            }
            prop_assert!(both.join("snapshot.jsonl").exists());
        }
    }
}

/// A hand-written history: the exact changelog of gaps that appear, split, shrink and fill.
#[test]
fn recovered_numbers_split_and_fill_gaps_by_hand() {
    let rec = |id: &str, source: &str, seq: u64, extra: &str| {
        format!(
            "{{\"id\":\"{id}\",\"key\":\"k\",\"ts\":0,\"value\":1,\"source\":\"{source}\",\"seq\":{seq}{extra}}}\n"
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let files = [
        [1, 2, 9]
            .map(|n| rec(&format!("a{n}"), "pos-7", n, ""))
            .concat()
            + &rec("b1", "pos-8", 1, ""),
        rec("a5", "pos-7", 5, "") + &rec("a1", "pos-7", 1, ""),
        rec("a5", "pos-7", 6, ",\"op\":\"delete\",\"version\":1")
            + &rec("x", "pos-7", 9, "")
            + &rec("b9", "pos-8", 3, ""),
    ];
    let paths = write_files(dir.path(), &files);
    let out = dir.path().join("out");
    let status = Command::new(AMEND)
        .args([
            "gaps",
            "--quiet",
            "--input",
            &paths[0],
            "--corrections",
            &paths[1],
            &paths[2],
        ])
        .args(["--out", out.to_str().unwrap(), "--lag-threshold", "5"])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        fs::read_to_string(out.join("gaps_changelog.jsonl")).unwrap(),
        concat!(
            "{\"epoch\":0,\"diff\":1,\"source\":\"pos-7\",\"from\":3,\"to\":8,\"count\":6}\n",
            "{\"epoch\":1,\"diff\":-1,\"source\":\"pos-7\",\"from\":3,\"to\":8,\"count\":6}\n",
            "{\"epoch\":1,\"diff\":1,\"source\":\"pos-7\",\"from\":3,\"to\":4,\"count\":2}\n",
            "{\"epoch\":1,\"diff\":1,\"source\":\"pos-7\",\"from\":6,\"to\":8,\"count\":3}\n",
            "{\"epoch\":2,\"diff\":-1,\"source\":\"pos-7\",\"from\":6,\"to\":8,\"count\":3}\n",
            "{\"epoch\":2,\"diff\":1,\"source\":\"pos-7\",\"from\":7,\"to\":8,\"count\":2}\n",
            "{\"epoch\":2,\"diff\":1,\"source\":\"pos-8\",\"from\":2,\"to\":2,\"count\":1}\n",
        )
    );
    assert_eq!(
        fs::read_to_string(out.join("gaps.jsonl")).unwrap(),
        concat!(
            "{\"source\":\"pos-7\",\"from\":3,\"to\":4,\"count\":2}\n",
            "{\"source\":\"pos-7\",\"from\":7,\"to\":8,\"count\":2}\n",
            "{\"source\":\"pos-8\",\"from\":2,\"to\":2,\"count\":1}\n",
        )
    );
    assert_eq!(
        fs::read_to_string(out.join("duplicates.jsonl")).unwrap(),
        "{\"source\":\"pos-7\",\"seq\":9,\"ids\":2}\n"
    );
    let summary: Value =
        serde_json::from_str(&fs::read_to_string(out.join("gaps_summary.json")).unwrap()).unwrap();
    assert_eq!(
        summary["lagging"],
        serde_json::json!([{"source": "pos-8", "last": 3, "behind": 6}])
    );
    assert_eq!(summary["records_read"], 9);
    assert!(!out.join("changelog.jsonl").exists() && !out.join("summary.json").exists());
}

#[test]
fn the_gaps_command_exits_0_1_and_2_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    fs::write(
        &input,
        "{\"id\":\"a\",\"key\":\"k\",\"ts\":0,\"value\":1,\"source\":\"p\",\"seq\":3}\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let run = |args: &[&str]| {
        Command::new(AMEND)
            .arg("gaps")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let input = input.to_str().unwrap();
    let ok = run(&[
        "--input",
        input,
        "--out",
        out.to_str().unwrap(),
        "--no-duplicates",
    ]);
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(stdout.starts_with("amend gaps: read 1 records"), "{stdout}");
    for name in [
        "gaps.jsonl",
        "gaps_changelog.jsonl",
        "duplicates.jsonl",
        "gaps_summary.json",
        "dead_letter.jsonl",
        "epochs.jsonl",
    ] {
        assert!(out.join(name).exists(), "{name}");
    }
    let usage = run(&["--input", input]);
    assert_eq!(usage.status.code(), Some(2));
    let usage = run(&["--input", input, "--out", "x", "--lag-threshold", "-1"]);
    assert_eq!(usage.status.code(), Some(2));
    let usage = run(&["--input", input, "--out", "x", "--workers", "0"]);
    assert_eq!(usage.status.code(), Some(2));
    let missing = run(&[
        "--input",
        "/nonexistent/in.jsonl",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/in.jsonl"));
    // --gaps on aggregate writes both sets of files.
    let both = dir.path().join("both");
    let status = Command::new(AMEND)
        .args([
            "aggregate",
            "-q",
            "--gaps",
            "--window",
            "tumbling:1m",
            "--input",
            input,
        ])
        .args(["--out", both.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    for name in [
        "snapshot.jsonl",
        "changelog.jsonl",
        "gaps.jsonl",
        "gaps_summary.json",
    ] {
        assert!(both.join(name).exists(), "{name}");
    }
}

/// In follow mode, a recovered record appended to the input removes its gap.
#[test]
fn following_an_appended_recovered_record_removes_its_gap() {
    let dir = tempfile::tempdir().unwrap();
    let input: PathBuf = dir.path().join("in.jsonl");
    let rec = |seq: u64| {
        format!(
            "{{\"id\":\"e{seq}\",\"key\":\"k\",\"ts\":0,\"value\":1,\"source\":\"p\",\"seq\":{seq}}}\n"
        )
    };
    fs::write(&input, rec(1) + &rec(2) + &rec(5)).unwrap();
    let out = dir.path().join("out");
    let mut child = Command::new(AMEND)
        .args([
            "gaps",
            "--follow",
            "--quiet",
            "--input",
            input.to_str().unwrap(),
        ])
        .args([
            "--out",
            out.to_str().unwrap(),
            "--snapshot-interval",
            "20ms",
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let changelog = out.join("gaps_changelog.jsonl");
    let wait_for = |text: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let now = fs::read_to_string(&changelog).unwrap_or_default();
            if now.contains(text) {
                return now;
            }
            assert!(Instant::now() < deadline, "waited for {text} in {now}");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    wait_for("\"from\":3,\"to\":4");
    fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .unwrap()
        .write_all((rec(3) + &rec(4)).as_bytes())
        .unwrap();
    let text = wait_for("\"diff\":-1");
    assert_eq!(
        text,
        concat!(
            "{\"epoch\":0,\"diff\":1,\"source\":\"p\",\"from\":3,\"to\":4,\"count\":2}\n",
            "{\"epoch\":1,\"diff\":-1,\"source\":\"p\",\"from\":3,\"to\":4,\"count\":2}\n",
        )
    );
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(fs::read_to_string(out.join("gaps.jsonl")).unwrap(), "");
}
