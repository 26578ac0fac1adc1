//! `--fill`: estimates for each key's empty windows, checked against a naive model.
//!
//! Random histories (several epochs, corrections, deletes, replays) run through the real
//! pipeline in-process with 1 to 3 workers; `estimates.jsonl` must equal the estimates the
//! model derives from its own full recompute of the table, and the snapshot's digests must be
//! the model's: estimates never enter the exact table.

#[allow(dead_code)]
#[path = "model/epochs.rs"]
mod epochs;
#[allow(dead_code)]
#[path = "model/reference.rs"]
mod reference;

use std::collections::BTreeMap;
use std::fs;

use epochs::{Gen, write_epochs};
use proptest::prelude::*;
use reference::{Agg, Model, Table, Windows, canonical, mean, rfc3339};

fn records() -> impl Strategy<Value = Vec<Gen>> {
    prop::collection::vec(
        (
            0u8..12,
            0u8..3,
            0i64..24,
            0i64..10_000,
            -50_000i128..50_000,
            0u64..3,
            prop::bool::weighted(0.1),
        ),
        1..40,
    )
}

/// The model's estimates of `table`, as estimates.jsonl lines.
fn expected(model: &Model, table: &Table, fill: &str, step: i64, max: u64) -> String {
    let mut by_key: BTreeMap<&str, Vec<(i64, i64, &Agg)>> = BTreeMap::new();
    for ((start, end, key), agg) in table {
        by_key.entry(key).or_default().push((*start, *end, agg));
    }
    let mut rows: BTreeMap<(i64, i64, String), [i128; 5]> = BTreeMap::new();
    for (key, windows) in by_key {
        for pair in windows.windows(2) {
            let ((a_start, a_end, a), (b_start, _, b)) = (pair[0], pair[1]);
            let n = ((b_start - a_start) / step) as u64;
            if n < 2 || n - 1 > max {
                continue;
            }
            let fields = |x: &Agg| [x.count as i128, x.sum, x.min, x.max, mean(x.sum, x.count)];
            let (fa, fb) = (fields(a), fields(b));
            for k in 1..n {
                let start = a_start + k as i64 * step;
                let estimate = match fill {
                    "zero" => [0; 5],
                    "previous" => fa,
                    _ => std::array::from_fn(|i| {
                        mean(fa[i] * n as i128 + (fb[i] - fa[i]) * k as i128, n)
                    }),
                };
                rows.insert(
                    (start, start + (a_end - a_start), key.to_string()),
                    estimate,
                );
            }
        }
    }
    let mut text = String::new();
    for ((start, end, key), [count, sum, min, max, avg]) in rows {
        let d = |u| canonical(u, model.scale);
        text += &format!(
            r#"{{"window_start":"{}","window_end":"{}","key":{},"estimate":"{fill}","count":{count},"sum":"{}","min":"{}","max":"{}","mean":"{}"}}"#,
            rfc3339(start),
            rfc3339(end),
            serde_json::to_string(&key).unwrap(),
            d(sum),
            d(min),
            d(max),
            d(avg)
        );
        text.push('\n');
    }
    text
}

fn run(args: &[String]) -> Result<(), String> {
    amend::run_args(args).map_err(|e| format!("{e:#}"))?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(48),
        ..ProptestConfig::default()
    })]

    #[test]
    fn estimates_match_the_model(
        generated in records(),
        epochs in 1usize..4,
        workers in 1usize..4,
        fill in prop::sample::select(vec!["zero", "previous", "linear"]),
        hop in any::<bool>(),
        max in 1u64..12,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let epochs = epochs.min(generated.len());
        let size = 10_000;
        let (records, paths) = write_epochs(dir.path(), &generated, epochs, size, None);
        let (windows, flag, step) = if hop {
            (Windows::Hop { size: 2 * size, slide: size }, "hop:20s/10s", size)
        } else {
            (Windows::Tumbling { size }, "tumbling:10s", size)
        };
        let out = dir.path().join("out");
        let mut args: Vec<String> = ["amend", "aggregate", "--input"].map(String::from).to_vec();
        args.extend(paths);
        for (flag, value) in [
            ("--window", flag.to_string()),
            ("--fill", fill.to_string()),
            ("--fill-max-windows", max.to_string()),
            ("--workers", workers.to_string()),
            ("--out", out.display().to_string()),
        ] {
            args.push(flag.into());
            args.push(value);
        }
        args.push("--quiet".into());
        run(&args).map_err(TestCaseError::fail)?;

        let model = Model { scale: 6, windows };
        let table = model.table(&records, u64::MAX);
        let got = fs::read_to_string(out.join("estimates.jsonl")).unwrap();
        let want = expected(&model, &table, fill, step, max);
        prop_assert_eq!(&got, &want, "estimates.jsonl differs from the model");
        let digests: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(out.join("digests.json")).unwrap()).unwrap();
        prop_assert_eq!(digests, model.digests(&table), "estimates changed the digests");
        let snapshot: Vec<String> = fs::read_to_string(out.join("snapshot.jsonl"))
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        let estimated = got.lines().count();
        let summary: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
        prop_assert_eq!(summary["estimates"].as_u64(), Some(estimated as u64));
        // No estimate for a window that has a row.
        for line in got.lines() {
            let row: serde_json::Value = serde_json::from_str(line).unwrap();
            let prefix = format!(
                r#"{{"window_start":{},"window_end":{},"key":{},"#,
                row["window_start"], row["window_end"], row["key"]
            );
            prop_assert!(!snapshot.iter().any(|s| s.starts_with(&prefix)), "{}", line);
        }
    }
}

#[test]
fn a_recovered_event_replaces_its_estimate() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let recovered = dir.path().join("recovered.jsonl");
    fs::write(
        &events,
        concat!(
            r#"{"id":"1","key":"k","ts":"2026-11-20T10:00:10Z","value":10}"#,
            "\n",
            r#"{"id":"2","key":"k","ts":"2026-11-20T10:03:10Z","value":40}"#,
            "\n"
        ),
    )
    .unwrap();
    fs::write(
        &recovered,
        concat!(
            r#"{"id":"3","key":"k","ts":"2026-11-20T10:01:10Z","value":5}"#,
            "\n"
        ),
    )
    .unwrap();
    let out = |name: &str| dir.path().join(name).display().to_string();
    let base = |out: String| -> Vec<String> {
        [
            "amend",
            "aggregate",
            "--window",
            "tumbling:1m",
            "--fill",
            "linear",
            "--quiet",
            "--out",
        ]
        .map(String::from)
        .into_iter()
        .chain([out])
        .collect()
    };
    let mut before = base(out("before"));
    before.extend(["--input".into(), events.display().to_string()]);
    run(&before).unwrap();
    let text = fs::read_to_string(dir.path().join("before/estimates.jsonl")).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.contains(r#""window_start":"2026-11-20T10:01:00.000Z""#),
        "{text}"
    );
    assert!(
        text.contains(r#""sum":"20""#) && text.contains(r#""sum":"30""#),
        "{text}"
    );

    let mut after = base(out("after"));
    after.extend([
        "--input".into(),
        events.display().to_string(),
        "--corrections".into(),
        recovered.display().to_string(),
    ]);
    run(&after).unwrap();
    let text = fs::read_to_string(dir.path().join("after/estimates.jsonl")).unwrap();
    // 10:01 now has a real row; 10:02 is estimated between 10:01 (5) and 10:03 (40).
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.contains(r#""window_start":"2026-11-20T10:02:00.000Z""#),
        "{text}"
    );
    assert!(text.contains(r#""sum":"22.5""#), "{text}");
    let changelog = fs::read_to_string(dir.path().join("after/changelog.jsonl")).unwrap();
    assert!(
        !changelog.contains("estimate"),
        "estimates leaked into the changelog"
    );
}
