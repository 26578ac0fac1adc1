//! `amend reconcile`: a published table compared with the correct one, against a naive model.
//!
//! Random histories (corrections, deletes, replays, bad lines, several epochs) run through
//! the real pipeline in-process with 1 to 3 workers, beside a random published table made from
//! the model's full recompute: rows kept, perturbed (count, sum, min, max or mean, by amounts
//! on both sides of the tolerance), left out, and extra rows, in JSON Lines or CSV, with or
//! without means, in reverse order, under foreign column names. Then:
//!
//! - reconcile.jsonl holds exactly the model's discrepancies, with its deltas;
//! - corrections_out.jsonl applied to the published table gives the correct table (with a
//!   tolerance: the correct rows wherever the model sees a discrepancy), and its digest is
//!   the recomputed digests.json's; upserts_out.jsonl applied gives the same table;
//! - reconcile_summary.json counts the model's kinds.
//!
//! End-to-end tests run the binary: exit codes 0 / 1 / 2 and one-line errors, follow mode's
//! reconcile_changelog.jsonl and digests_changelog.jsonl replayed against the final files.
//!
//! Run them with `cargo test -p amend --test reconcile`.

#[allow(dead_code)]
#[path = "model/epochs.rs"]
mod epochs;
#[allow(dead_code)]
#[path = "model/reference.rs"]
mod reference;
#[path = "e2e/util.rs"]
#[allow(dead_code)]
mod util;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use epochs::{BASE, Gen, write_epochs};
use proptest::prelude::*;
use reference::{Agg, Model, Table, Windows, canonical, mean, rfc3339};
use serde_json::Value;
use util::{TestDir, amend_in};

const SCALE: u32 = 6;
const SIZE: i64 = 10_000;

fn records() -> impl Strategy<Value = Vec<Gen>> {
    prop::collection::vec(
        (
            0u8..14,
            0u8..3,
            0i64..8,
            0i64..10_000,
            -50_000i128..50_000,
            0u64..3,
            prop::bool::weighted(0.1),
        ),
        1..40,
    )
}

/// What happens to one correct row in the published table: (action, field, amount, mean).
type Fate = (u8, u8, u8, bool);

/// An extra published row: (key, window index, units).
type Extra = (u8, i64, i128);

/// A published row, in units; `mean` is `None` where the row has no mean column.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Published {
    count: u64,
    sum: i128,
    min: i128,
    max: i128,
    mean: Option<i128>,
}

impl Published {
    fn of(agg: &Agg, with_mean: bool) -> Published {
        Published {
            count: agg.count,
            sum: agg.sum,
            min: agg.min,
            max: agg.max,
            mean: with_mean.then(|| mean(agg.sum, agg.count)),
        }
    }

    fn mean(&self) -> i128 {
        self.mean.unwrap_or_else(|| mean(self.sum, self.count))
    }
}

/// The published table: the correct one with each row's fate applied, and the extras.
fn publish(
    table: &Table,
    fates: &[Fate],
    extras: &[Extra],
    tolerance: i128,
) -> BTreeMap<(i64, i64, String), Published> {
    let amounts = [1, tolerance, tolerance + 1, 1_000_000];
    let mut published = BTreeMap::new();
    for (i, (row, agg)) in table.iter().enumerate() {
        let (action, field, amount, with_mean) = fates[i % fates.len()];
        let mut p = Published::of(agg, with_mean);
        let d = amounts[amount as usize % amounts.len()].max(1);
        match action % 8 {
            0..=4 => {}
            5 | 6 => match field % 5 {
                0 => p.count += 1,
                1 => p.sum += d,
                2 => p.min -= d,
                3 => p.max += d,
                _ => p.mean = Some(p.mean() + d),
            },
            _ => continue,
        }
        published.insert(row.clone(), p);
    }
    for &(key, window, units) in extras {
        let key = ["a", "b", "c", "zz"][key as usize % 4].to_string();
        let start = BASE + window * SIZE;
        let row = (start, start + SIZE, key);
        if !table.contains_key(&row) {
            let agg = Agg {
                count: 1,
                sum: units,
                min: units,
                max: units,
            };
            published.insert(row, Published::of(&agg, units % 2 == 0));
        }
    }
    published
}

/// The model's kind of one (window, key).
fn kind(p: Option<&Published>, c: Option<&Agg>, tolerance: i128) -> &'static str {
    match (p, c) {
        (Some(p), Some(c)) => {
            let close = |a: i128, b: i128| (a - b).abs() <= tolerance;
            let agrees = p.count == c.count
                && close(p.sum, c.sum)
                && close(p.min, c.min)
                && close(p.max, c.max)
                && close(p.mean(), mean(c.sum, c.count));
            if agrees { "match" } else { "mismatch" }
        }
        (None, Some(_)) => "missing",
        (Some(_), None) => "extra",
        (None, None) => unreachable!("a row of neither table"),
    }
}

/// The published table as a file: reverse order, JSON Lines or CSV, default or foreign names.
fn write_published(
    path: &Path,
    published: &BTreeMap<(i64, i64, String), Published>,
    foreign: bool,
) -> Vec<String> {
    let [start, end, key, count, sum, min, max, avg] = if foreign {
        ["from", "to", "grp", "n", "total", "lo", "hi", "avg"]
    } else {
        [
            "window_start",
            "window_end",
            "key",
            "count",
            "sum",
            "min",
            "max",
            "mean",
        ]
    };
    let d = |units: i128| canonical(units, SCALE);
    let csv = path.extension().is_some_and(|e| e == "csv");
    let mut text = String::new();
    if csv {
        text += &format!("{key},{count},{sum},{min},{max},{avg},{start},{end}\n");
    }
    for ((s, e, k), p) in published.iter().rev() {
        if csv {
            let quoted = format!("\"{}\"", k.replace('"', "\"\""));
            let avg = p.mean.map(d).unwrap_or_default();
            text += &format!(
                "{quoted},{},{},{},{},{avg},{s},{e}\n",
                p.count,
                d(p.sum),
                d(p.min),
                d(p.max)
            );
        } else {
            let mut object = serde_json::Map::new();
            object.insert(start.into(), rfc3339(*s).into());
            object.insert(end.into(), (*e).into());
            object.insert(key.into(), k.clone().into());
            object.insert(count.into(), p.count.into());
            object.insert(sum.into(), d(p.sum).into());
            object.insert(min.into(), d(p.min).into());
            object.insert(max.into(), d(p.max).into());
            if let Some(m) = p.mean {
                object.insert(avg.into(), d(m).into());
            }
            text += &format!("{}\n", Value::Object(object));
        }
    }
    fs::write(path, text).unwrap();
    if !foreign {
        return Vec::new();
    }
    [
        ("--published-window-start-field", start),
        ("--published-window-end-field", end),
        ("--published-key-field", key),
        ("--published-count-field", count),
        ("--published-sum-field", sum),
        ("--published-min-field", min),
        ("--published-max-field", max),
        ("--published-mean-field", avg),
    ]
    .into_iter()
    .flat_map(|(flag, name)| [flag.to_string(), name.to_string()])
    .collect()
}

/// Runs `amend reconcile` in-process; returns whether it found discrepancies.
fn run(args: &[String]) -> Result<bool, String> {
    let report = amend::run_args(args).map_err(|e| format!("{e:#}"))?;
    Ok(report.reconcile.expect("a reconcile run").discrepancies > 0)
}

/// Units of a canonical decimal at the test's scale.
fn units(text: &str) -> i128 {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let frac = format!("{frac:0<6}");
    let value = whole.parse::<i128>().unwrap() * 1_000_000 + frac.parse::<i128>().unwrap();
    if negative { -value } else { value }
}

fn lines(path: &Path) -> Vec<Value> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// (start text, end text, key) of a line.
fn row_id(line: &Value) -> (String, String, String) {
    let text = |f: &str| line[f].as_str().unwrap().to_string();
    (text("window_start"), text("window_end"), text("key"))
}

/// count, sum, min, max of a line (or of its `field` object).
fn values(line: &Value) -> (u64, i128, i128, i128) {
    let d = |f: &str| units(line[f].as_str().unwrap());
    (
        line["count"].as_u64().unwrap(),
        d("sum"),
        d("min"),
        d("max"),
    )
}

type TextTable = BTreeMap<(String, String, String), (u64, i128, i128, i128)>;

fn text_table(
    table: impl IntoIterator<Item = ((i64, i64, String), (u64, i128, i128, i128))>,
) -> TextTable {
    table
        .into_iter()
        .map(|((s, e, k), v)| ((rfc3339(s), rfc3339(e), k), v))
        .collect()
}

/// The model's digests of a table given by text row ids.
fn digest_of(
    model: &Model,
    table: &TextTable,
    ids: &BTreeMap<(String, String), (i64, i64)>,
) -> Value {
    let table: Table = table
        .iter()
        .map(|((s, e, k), &(count, sum, min, max))| {
            let (start, end) = ids[&(s.clone(), e.clone())];
            (
                (start, end, k.clone()),
                Agg {
                    count,
                    sum,
                    min,
                    max,
                },
            )
        })
        .collect();
    model.digests(&table)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(48),
        ..ProptestConfig::default()
    })]

    #[test]
    fn reconcile_matches_the_model_and_its_corrections_correct(
        generated in records(),
        fates in prop::collection::vec((any::<u8>(), any::<u8>(), any::<u8>(), any::<bool>()), 1..12),
        extras in prop::collection::vec((0u8..4, 0i64..10, -5_000_000i128..5_000_000), 0..4),
        epochs in 1usize..4,
        workers in 1usize..4,
        tolerant in any::<bool>(),
        csv in any::<bool>(),
        foreign in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let epochs = epochs.min(generated.len());
        let (records, paths) = write_epochs(dir.path(), &generated, epochs, SIZE, Some(13));
        let model = Model { scale: SCALE, windows: Windows::Tumbling { size: SIZE } };
        let correct = model.table(&records, u64::MAX);
        let tolerance = if tolerant { 50_000 } else { 0 };
        let published = publish(&correct, &fates, &extras, tolerance);
        let published_path = dir.path().join(if csv { "published.csv" } else { "published.jsonl" });
        let names = write_published(&published_path, &published, foreign);

        let out = dir.path().join("out");
        let mut args: Vec<String> = ["amend", "reconcile", "--quiet", "--input"].map(String::from).to_vec();
        args.extend(paths);
        for (flag, value) in [
            ("--window", "tumbling:10s".to_string()),
            ("--workers", workers.to_string()),
            ("--published", published_path.display().to_string()),
            ("--tolerance", canonical(tolerance, SCALE)),
            ("--out", out.display().to_string()),
        ] {
            args.push(flag.into());
            args.push(value);
        }
        args.extend(names);
        let different = run(&args).map_err(TestCaseError::fail)?;

        // The discrepancies, kind by kind, with the deltas of mismatches.
        let mut want: BTreeMap<(String, String, String), &str> = BTreeMap::new();
        let mut ids = BTreeMap::new();
        for row in published.keys().chain(correct.keys()) {
            let id = (rfc3339(row.0), rfc3339(row.1), row.2.clone());
            ids.insert((id.0.clone(), id.1.clone()), (row.0, row.1));
            want.insert(id, kind(published.get(row), correct.get(row), tolerance));
        }
        let got_lines = lines(&out.join("reconcile.jsonl"));
        let got: BTreeMap<_, _> = got_lines
            .iter()
            .map(|l| (row_id(l), l["kind"].as_str().unwrap()))
            .collect();
        prop_assert_eq!(got_lines.len(), got.len(), "a (window, key) reported twice");
        prop_assert_eq!(&got, &want);
        let keys: Vec<_> = got_lines.iter().map(row_id).collect();
        prop_assert!(keys.windows(2).all(|w| w[0] < w[1]), "reconcile.jsonl is not in row order");
        for line in got_lines.iter().filter(|l| l["kind"] == "mismatch") {
            let (p, c) = (values(&line["published"]), values(&line["correct"]));
            let delta = &line["delta"];
            prop_assert_eq!(delta["count"].as_i64().unwrap() as i128, c.0 as i128 - p.0 as i128);
            prop_assert_eq!(units(delta["sum"].as_str().unwrap()), c.1 - p.1);
            prop_assert_eq!(units(delta["max"].as_str().unwrap()), c.3 - p.3);
        }
        prop_assert_eq!(different, want.values().any(|k| *k != "match"));

        // The corrections turn the published table into the correct one.
        let published_table = text_table(
            published.iter().map(|(row, p)| (row.clone(), (p.count, p.sum, p.min, p.max))),
        );
        let mut corrected = published_table.clone();
        let mut inserting = false;
        for line in lines(&out.join("corrections_out.jsonl")) {
            let id = row_id(&line);
            match line["diff"].as_i64() {
                Some(-1) => {
                    prop_assert!(!inserting, "a retraction after an insertion");
                    prop_assert_eq!(corrected.remove(&id), Some(values(&line)), "retracts a row not published: {}", line);
                }
                Some(1) => {
                    inserting = true;
                    prop_assert!(corrected.insert(id, values(&line)).is_none(), "inserts over a row: {}", line);
                }
                _ => prop_assert!(false, "bad diff: {}", line),
            }
        }
        let correct_text = text_table(
            correct.iter().map(|(row, a)| (row.clone(), (a.count, a.sum, a.min, a.max))),
        );
        // Rows that match within the tolerance keep their published values.
        let mut expected = correct_text.clone();
        for (id, kind) in &want {
            if *kind == "match" {
                expected.insert(id.clone(), published_table[id]);
            }
        }
        prop_assert_eq!(&corrected, &expected);
        let digests: Value =
            serde_json::from_str(&fs::read_to_string(out.join("digests.json")).unwrap()).unwrap();
        prop_assert_eq!(&digests, &model.digests(&correct));
        if tolerance == 0 {
            prop_assert_eq!(&corrected, &correct_text);
            prop_assert_eq!(digest_of(&model, &corrected, &ids), digests.clone());
        }

        // The upserts say the same.
        let mut upserted = published_table.clone();
        for line in lines(&out.join("upserts_out.jsonl")) {
            match line["op"].as_str() {
                Some("upsert") => { upserted.insert(row_id(&line), values(&line)); }
                Some("delete") => { prop_assert!(upserted.remove(&row_id(&line)).is_some()); }
                _ => prop_assert!(false, "bad op: {}", line),
            }
        }
        prop_assert_eq!(&upserted, &corrected);

        let summary: Value =
            serde_json::from_str(&fs::read_to_string(out.join("reconcile_summary.json")).unwrap()).unwrap();
        for kind in ["match", "mismatch", "missing", "extra"] {
            let n = want.values().filter(|k| **k == kind).count() as u64;
            prop_assert_eq!(summary["kinds"][kind].as_u64(), Some(n), "{}", kind);
        }
        prop_assert_eq!(summary["correct_digest"].as_str(), digests["table"].as_str());
    }
}

/// A small history and its published table with one wrong, one missing and one extra row.
fn small_case(dir: &TestDir) {
    dir.create(
        "events.jsonl",
        concat!(
            r#"{"id":"1","key":"a","ts":"2026-11-20T10:00:10Z","value":10}"#,
            "\n",
            r#"{"id":"2","key":"a","ts":"2026-11-20T10:00:20Z","value":5}"#,
            "\n",
            r#"{"id":"3","key":"b","ts":"2026-11-20T10:01:10Z","value":7.25}"#,
            "\n",
            r#"{"id":"4","key":"c","ts":"2026-11-20T10:02:10Z","value":1}"#,
            "\n",
        ),
    );
    dir.create(
        "published.csv",
        "window_start,window_end,key,count,sum,min,max,mean\n\
         2026-11-20T10:00:00.000Z,2026-11-20T10:01:00.000Z,a,2,15,5,10,7.5\n\
         2026-11-20T10:01:00.000Z,2026-11-20T10:02:00.000Z,b,1,7.2,7.2,7.2,7.2\n\
         2026-11-20T10:03:00.000Z,2026-11-20T10:04:00.000Z,d,1,3,3,3,3\n",
    );
}

#[test]
fn exit_codes_outputs_and_tolerance() {
    let dir = TestDir::new();
    small_case(&dir);
    let base = [
        "reconcile",
        "--input",
        "events.jsonl",
        "--window",
        "tumbling:1m",
        "--published",
        "published.csv",
        "--quiet",
    ];
    let run = dir.run(&[&base[..], &["--out", "rec"]].concat());
    run.expect_code(1);
    assert!(
        run.stdout
            .contains("1 match, 1 mismatch, 1 missing, 1 extra"),
        "{run}"
    );
    let summary: Value = serde_json::from_str(&dir.read("rec/reconcile_summary.json")).unwrap();
    assert_eq!(summary["discrepancies"], 3);
    let mismatch = dir
        .read("rec/reconcile.jsonl")
        .lines()
        .find(|l| l.contains("mismatch"))
        .unwrap()
        .to_string();
    assert_eq!(
        mismatch,
        r#"{"window_start":"2026-11-20T10:01:00.000Z","window_end":"2026-11-20T10:02:00.000Z","key":"b","kind":"mismatch","published":{"count":1,"sum":"7.2","min":"7.2","max":"7.2","mean":"7.2"},"correct":{"count":1,"sum":"7.25","min":"7.25","max":"7.25","mean":"7.25"},"delta":{"count":0,"sum":"0.05","min":"0.05","max":"0.05","mean":"0.05"}}"#
    );
    assert_eq!(
        dir.read("rec/corrections_out.jsonl"),
        concat!(
            r#"{"epoch":0,"diff":-1,"window_start":"2026-11-20T10:01:00.000Z","window_end":"2026-11-20T10:02:00.000Z","key":"b","count":1,"sum":"7.2","min":"7.2","max":"7.2","mean":"7.2"}"#,
            "\n",
            r#"{"epoch":0,"diff":-1,"window_start":"2026-11-20T10:03:00.000Z","window_end":"2026-11-20T10:04:00.000Z","key":"d","count":1,"sum":"3","min":"3","max":"3","mean":"3"}"#,
            "\n",
            r#"{"epoch":0,"diff":1,"window_start":"2026-11-20T10:01:00.000Z","window_end":"2026-11-20T10:02:00.000Z","key":"b","count":1,"sum":"7.25","min":"7.25","max":"7.25","mean":"7.25"}"#,
            "\n",
            r#"{"epoch":0,"diff":1,"window_start":"2026-11-20T10:02:00.000Z","window_end":"2026-11-20T10:03:00.000Z","key":"c","count":1,"sum":"1","min":"1","max":"1","mean":"1"}"#,
            "\n",
        )
    );
    assert_eq!(
        dir.read("rec/upserts_out.jsonl"),
        concat!(
            r#"{"op":"upsert","window_start":"2026-11-20T10:01:00.000Z","window_end":"2026-11-20T10:02:00.000Z","key":"b","count":1,"sum":"7.25","min":"7.25","max":"7.25","mean":"7.25"}"#,
            "\n",
            r#"{"op":"upsert","window_start":"2026-11-20T10:02:00.000Z","window_end":"2026-11-20T10:03:00.000Z","key":"c","count":1,"sum":"1","min":"1","max":"1","mean":"1"}"#,
            "\n",
            r#"{"op":"delete","window_start":"2026-11-20T10:03:00.000Z","window_end":"2026-11-20T10:04:00.000Z","key":"d"}"#,
            "\n",
        )
    );

    // Within a tolerance of 0.05 the rounded row matches; the others still need correcting.
    let run = dir.run(&[&base[..], &["--out", "tol", "--tolerance", "0.05"]].concat());
    run.expect_code(1);
    assert!(
        run.stdout
            .contains("2 match, 0 mismatch, 1 missing, 1 extra"),
        "{run}"
    );

    // The correct table published: exit 0, nothing to correct.
    fs::copy(dir.join("rec/snapshot.jsonl"), dir.join("right.jsonl")).unwrap();
    let mut right = base.to_vec();
    right[6] = "right.jsonl";
    let run = dir.run(&[&right[..], &["--out", "ok"]].concat());
    run.expect_code(0);
    assert!(
        run.stdout.contains("the published table is correct"),
        "{run}"
    );
    assert_eq!(dir.read("ok/corrections_out.jsonl"), "");
    assert_eq!(dir.read("ok/upserts_out.jsonl"), "");
    let verify = dir.run(&["verify", "ok/digests.json", "right.jsonl"]);
    verify.expect_code(0);
}

#[test]
fn bad_published_tables_and_flags_exit_2_with_one_line() {
    let dir = TestDir::new();
    small_case(&dir);
    dir.create(
        "bad.jsonl",
        "{\"window_start\":0,\"window_end\":60000,\"key\":\"a\",\"count\":1,\"sum\":\"1\",\"min\":\"1\",\"max\":\"1\"}\n\
         {\"window_start\":0,\"window_end\":60000,\"key\":\"a\",\"count\":\"many\",\"sum\":\"1\",\"min\":\"1\",\"max\":\"1\"}\n",
    );
    dir.create("table.txt", "");
    let base = [
        "reconcile",
        "--input",
        "events.jsonl",
        "--window",
        "tumbling:1m",
        "--quiet",
        "--out",
        "rec",
    ];
    for (extra, message) in [
        (&["--published", "bad.jsonl"][..], "bad.jsonl:2: `count`"),
        (&["--published", "nowhere.csv"], "nowhere.csv"),
        (
            &["--published", "published.csv", "--input", "missing.jsonl"],
            "missing.jsonl",
        ),
        (&["--published", "table.txt"], "unknown snapshot file type"),
        (
            &["--published", "published.csv", "--tolerance=-1"],
            "--tolerance -1",
        ),
        (
            &["--published", "published.csv", "--tolerance", "0.0000001"],
            "--tolerance 0.0000001",
        ),
        (&[], "--published"),
    ] {
        let run = dir.run(&[&base[..], extra].concat());
        run.expect_code(2);
        assert!(run.stderr.contains(message), "{extra:?}: {run}");
        assert!(!run.stderr.contains("panicked"), "{run}");
        // A missing flag is clap's error, with its usage line; every other one is one line.
        if !extra.is_empty() {
            assert_eq!(run.stderr.trim().lines().count(), 1, "{run}");
        }
    }
}

/// A followed reconcile, stopped with SIGTERM once `done` holds for its output directory.
struct Followed {
    child: Child,
    dir: TestDir,
}

impl Followed {
    fn wait_for(&self, what: &str, done: impl Fn(&Path) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done(&self.dir.join("rec")) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(mut self) -> TestDir {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success() || status.code() == Some(1), "{status:?}");
        self.dir
    }
}

fn epochs_written(out: &Path) -> usize {
    fs::read_to_string(out.join("epochs.jsonl"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// Applies changelog lines (`diff` ±1, identity by `key_of`) to a table of line texts
/// without `epoch` and `diff`.
fn replay(text: &str, key_of: impl Fn(&Value) -> String) -> BTreeMap<String, Value> {
    let mut table = BTreeMap::new();
    for line in text.lines() {
        let mut value: Value = serde_json::from_str(line).unwrap();
        let object = value.as_object_mut().unwrap();
        let diff = object.remove("diff").and_then(|d| d.as_i64());
        object.remove("epoch");
        let key = key_of(&value);
        match diff {
            Some(-1) => assert_eq!(
                table.remove(&key),
                Some(value),
                "retracts what is not there"
            ),
            Some(1) => assert!(table.insert(key, value).is_none(), "inserts twice"),
            other => panic!("bad diff {other:?}"),
        }
    }
    table
}

#[test]
fn follow_mode_updates_the_comparison_and_the_digests_epoch_by_epoch() {
    let dir = TestDir::new();
    small_case(&dir);
    let child = amend_in(
        dir.path(),
        &[
            "reconcile",
            "--follow",
            "--input",
            "events.jsonl",
            "--window",
            "tumbling:1m",
            "--published",
            "published.csv",
            "--snapshot-interval",
            "50ms",
            "--poll-interval",
            "5ms",
            "--quiet",
            "--out",
            "rec",
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let followed = Followed { child, dir };
    followed.wait_for("the first epoch", |out| epochs_written(out) == 1);
    // A correction that makes the published row of key b right, and a late event for d.
    let mut events = fs::OpenOptions::new()
        .append(true)
        .open(followed.dir.join("events.jsonl"))
        .unwrap();
    use std::io::Write;
    events
        .write_all(
            concat!(
                r#"{"id":"3","key":"b","ts":"2026-11-20T10:01:10Z","value":7.2,"version":1}"#,
                "\n",
                r#"{"id":"5","key":"d","ts":"2026-11-20T10:03:30Z","value":3}"#,
                "\n"
            )
            .as_bytes(),
        )
        .unwrap();
    drop(events);
    followed.wait_for("the second epoch", |out| epochs_written(out) == 2);
    let dir = followed.stop();

    let changelog = dir.read("rec/reconcile_changelog.jsonl");
    let epoch1: Vec<&str> = changelog
        .lines()
        .filter(|l| l.starts_with(r#"{"epoch":1,"#))
        .collect();
    // b: mismatch → match; d: extra → match; a and c untouched.
    assert_eq!(epoch1.len(), 4, "{changelog}");
    assert!(epoch1[0].contains(r#""diff":-1"#) && epoch1[0].contains(r#""kind":"mismatch""#));
    assert!(epoch1[1].contains(r#""diff":-1"#) && epoch1[1].contains(r#""kind":"extra""#));
    assert!(epoch1[2].contains(r#""diff":1"#) && epoch1[2].contains(r#""key":"b","kind":"match""#));
    assert!(epoch1[3].contains(r#""diff":1"#) && epoch1[3].contains(r#""key":"d","kind":"match""#));
    // The changelog replays to the final comparison.
    let row = |v: &Value| format!("{} {} {}", v["window_start"], v["window_end"], v["key"]);
    let replayed = replay(&changelog, row);
    let last: BTreeMap<String, Value> = dir
        .read("rec/reconcile.jsonl")
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (row(&v), v)
        })
        .collect();
    assert_eq!(replayed, last);
    assert!(
        last.values()
            .all(|v| v["kind"] != "mismatch" && v["kind"] != "extra")
    );

    // digests_changelog.jsonl: per epoch the windows whose digest changed; replayed, the
    // window digests of digests.json, and each epoch's table digest.
    let digests: Value = serde_json::from_str(&dir.read("rec/digests.json")).unwrap();
    let mut windows: BTreeMap<String, String> = BTreeMap::new();
    let mut table = String::new();
    for line in dir.read("rec/digests_changelog.jsonl").lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let window = format!("{} {}", v["window_start"], v["window_end"]);
        let old = windows.get(&window).cloned();
        assert_eq!(old.as_deref(), v["old"].as_str(), "{line}");
        match v["new"].as_str() {
            Some(new) => windows.insert(window, new.to_string()),
            None => windows.remove(&window),
        };
        table = v["table"].as_str().unwrap().to_string();
    }
    assert_eq!(Some(table.as_str()), digests["table"].as_str());
    let want: Vec<String> = digests["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["digest"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(windows.into_values().collect::<Vec<_>>(), want);
    let epoch1_digests = dir
        .read("rec/digests_changelog.jsonl")
        .lines()
        .filter(|l| l.starts_with(r#"{"epoch":1,"#))
        .count();
    assert_eq!(
        epoch1_digests, 2,
        "the windows of b and d changed, no other"
    );
}

/// The README's worked example, run as documented: its console output is what the README shows.
#[test]
fn the_readme_example_is_what_the_readme_shows() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = fs::read_to_string(root.join("README.md")).unwrap();
    let section = readme
        .split("## Reconciling with what was published")
        .nth(1)
        .and_then(|s| s.split("```console").nth(1))
        .and_then(|s| s.split("```").next())
        .expect("the README's reconcile example");
    let dir = TestDir::new();
    fs::create_dir_all(dir.join("examples/data")).unwrap();
    for name in ["events.jsonl", "corrections.jsonl", "published.csv"] {
        fs::copy(
            root.join("examples/data").join(name),
            dir.join("examples/data").join(name),
        )
        .unwrap();
    }
    // The command: from `$ amend ` to its first output line, continuation backslashes dropped.
    let command = section.split("$ amend ").nth(1).unwrap();
    let command = command.split("\namend ").next().unwrap();
    let args: Vec<&str> = command.split_whitespace().filter(|w| *w != "\\").collect();
    let run = dir.run(&args);
    run.expect_code(1);
    let shown = |after: &str| -> Vec<&str> {
        section
            .split(after)
            .nth(1)
            .unwrap()
            .lines()
            .skip(1)
            .take_while(|l| !l.starts_with('$'))
            .collect()
    };
    let paragraph = run.stdout.lines().nth(1).unwrap();
    assert!(
        section.contains(paragraph),
        "README shows another summary than\n{paragraph}"
    );
    let discrepancies: Vec<String> = dir
        .read("rec/reconcile.jsonl")
        .lines()
        .filter(|l| !l.contains(r#""kind":"match""#))
        .map(String::from)
        .collect();
    assert_eq!(shown("$ grep -v"), discrepancies);
    let upserts = dir.read("rec/upserts_out.jsonl");
    assert_eq!(
        shown("$ cat rec/upserts_out.jsonl"),
        upserts.lines().collect::<Vec<_>>()
    );
}
