//! Tests of `amend gen`.

use super::*;
use clap::Parser;
use serde_json::value::RawValue;
use std::collections::{BTreeMap, HashMap, HashSet};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: GenArgs,
}

fn parse(extra: &[&str]) -> GenArgs {
    let argv = ["amend-gen", "--out", "unused"].iter().chain(extra);
    Cli::try_parse_from(argv).expect("valid arguments").args
}

fn gen_bytes(args: &GenArgs) -> (Vec<u8>, Vec<u8>, GenReport) {
    let (mut e, mut c) = (Vec::new(), Vec::new());
    let report = generate(args, &mut e, &mut c).expect("generate");
    (e, c, report)
}

#[test]
fn drop_seq_leaves_out_lines_and_keeps_the_rest_identical() {
    let (events, corrections, report) = gen_bytes(&parse(&["--events", "5000"]));
    let (dropped, same, with_drops) =
        gen_bytes(&parse(&["--events", "5000", "--drop-seq", "0.05"]));
    assert_eq!(report.dropped_lines, 0);
    assert!(
        (150..350).contains(&with_drops.dropped_lines),
        "{with_drops:?}"
    );
    assert_eq!(corrections, same);
    let all = lines(&events);
    let kept = lines(&dropped);
    assert_eq!(
        all.len() as u64,
        kept.len() as u64 + with_drops.dropped_lines
    );
    // The kept lines are the full file's lines in order, minus the dropped ones.
    let mut rest = all.iter();
    for line in &kept {
        assert!(
            rest.any(|l| l == line),
            "{line} is not in the full file in order"
        );
    }
}

fn lines(bytes: &[u8]) -> Vec<&str> {
    let text = std::str::from_utf8(bytes).expect("utf-8");
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "file ends with a newline"
    );
    text.lines().collect()
}

/// A record as a consumer keeping docs/format.md section 1 and 5 (scale 6) reads it.
#[derive(Debug)]
struct Read {
    id: String,
    key: String,
    ts: i64,
    value: String,
    version: Option<u64>,
    source: Option<String>,
    seq: Option<u64>,
    delete: bool,
}

fn is_decimal(text: &str, max_frac: usize) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
    !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && !frac.is_empty()
        && frac.len() <= max_frac
        && frac.bytes().all(|b| b.is_ascii_digit())
}

/// Reads a line, or says why it is a bad record.
fn read(line: &str) -> Result<Read, String> {
    let map: BTreeMap<String, Box<RawValue>> =
        serde_json::from_str(line).map_err(|e| format!("json: {e}"))?;
    let get = |name: &str| map.get(name).map(|raw| raw.get());
    let string = |name: &str| -> Result<Option<String>, String> {
        match get(name) {
            None => Ok(None),
            Some(raw) => serde_json::from_str::<String>(raw)
                .map(Some)
                .map_err(|_| format!("{name}: not a string")),
        }
    };
    let int = |name: &str| -> Result<Option<u64>, String> {
        match get(name) {
            None => Ok(None),
            Some(raw) => raw
                .parse()
                .map(Some)
                .map_err(|_| format!("{name}: not a u64")),
        }
    };
    let id = match get("id") {
        None => return Err("missing id".into()),
        Some(raw) if raw.starts_with('"') => string("id")?.expect("present"),
        Some(raw) => raw
            .parse::<i64>()
            .map_err(|_| "id: wrong type")?
            .to_string(),
    };
    let key = string("key")?.ok_or("missing key")?;
    let ts = string("ts")?.ok_or("missing ts")?;
    let ts = chrono::DateTime::parse_from_rfc3339(&ts)
        .map_err(|e| format!("ts: {e}"))?
        .timestamp_millis();
    let value = get("value").ok_or("missing value")?.to_owned();
    if !is_decimal(&value, 6) {
        return Err(format!("value: not a decimal of scale 6: {value}"));
    }
    let delete = match string("op")?.as_deref() {
        None | Some("upsert") => false,
        Some("delete") => true,
        Some(op) => return Err(format!("unknown op {op}")),
    };
    Ok(Read {
        id,
        key,
        ts,
        value,
        version: int("version")?,
        source: string("source")?,
        seq: int("seq")?,
        delete,
    })
}

#[derive(Default, Debug)]
struct Stats {
    lines: u64,
    bad: u64,
    replays: u64,
    late: u64,
    new_ids: u64,
    stale: u64,
    deletes: u64,
    corrections: u64,
    new_versions: u64,
    bad_reasons: BTreeMap<String, u64>,
}

/// The current record of an id, as docs/format.md section 3 resolves it.
struct Current {
    version: u64,
    value: String,
    line: String,
}

/// Checks both files in input order, as a consumer reads them.
#[derive(Default)]
struct Checker {
    last_seq: HashMap<String, u64>,
    seen: HashSet<String>,
    ids: HashMap<String, Current>,
    max_ts: i64,
}

impl Checker {
    fn check(&mut self, text: &[u8], corrections: bool, args: &GenArgs) -> Stats {
        let start = chrono::DateTime::parse_from_rfc3339(&args.start).unwrap();
        let start = start.timestamp_millis();
        let span = parse_span(&args.span).unwrap();
        let mut st = Stats::default();
        for line in lines(text) {
            st.lines += 1;
            let r = match read(line) {
                Ok(r) => r,
                Err(reason) => {
                    st.bad += 1;
                    let kind = reason.split([':', ' ']).next().unwrap().to_owned();
                    *st.bad_reasons.entry(kind).or_default() += 1;
                    continue;
                }
            };
            // What the generator writes when it writes a good record.
            assert!(is_decimal(&r.value, 2), "value {} in {line}", r.value);
            assert!(!r.value.contains('.') || !r.value.ends_with('0'), "{line}");
            assert!(r.id.starts_with('e') && r.id.len() >= 8, "{line}");
            assert!(r.key.starts_with('k') && r.key.len() >= 5, "{line}");
            assert!(
                (start..start + span).contains(&r.ts),
                "ts out of span: {line}"
            );
            let version = r.version.expect("version");
            let source = r.source.clone().expect("source");
            let seq = r.seq.expect("seq");
            let last = self.last_seq.entry(source).or_default();
            if self.seen.contains(line) {
                st.replays += 1;
                assert!(seq <= *last, "a replay repeats a seq: {line}");
                let cur = &self.ids[&r.id];
                assert!(
                    cur.line == line || version < cur.version,
                    "a replay is of the current record or of a stale one: {line}"
                );
                continue;
            }
            assert_eq!(seq, *last + 1, "seq per source increases by one: {line}");
            *last = seq;
            self.seen.insert(line.to_owned());
            if r.ts < self.max_ts - span / 100 {
                st.late += 1;
            }
            self.max_ts = self.max_ts.max(r.ts);
            let Some(cur) = self.ids.get_mut(&r.id) else {
                assert!(!r.delete, "a delete of an unknown id: {line}");
                if corrections {
                    st.new_ids += 1;
                }
                let c = Current {
                    version,
                    value: r.value,
                    line: line.to_owned(),
                };
                self.ids.insert(r.id, c);
                continue;
            };
            assert!(
                corrections,
                "an id appears twice in the events file: {line}"
            );
            if version < cur.version {
                assert!(!r.delete, "no stale deletes: {line}");
                assert_ne!(
                    r.value, cur.value,
                    "a stale record has another value: {line}"
                );
                st.stale += 1;
                continue;
            }
            if r.delete {
                assert_eq!(
                    version, cur.version,
                    "a delete is at the current version: {line}"
                );
                st.deletes += 1;
            } else if version == cur.version {
                assert_ne!(r.value, cur.value, "a correction changes the value: {line}");
                st.corrections += 1;
            } else {
                assert_eq!(
                    version,
                    cur.version + 1,
                    "a new version is one more: {line}"
                );
                st.new_versions += 1;
            }
            *cur = Current {
                version,
                value: r.value,
                line: line.to_owned(),
            };
        }
        st
    }
}

fn within(actual: u64, expected: f64, slack: f64) -> bool {
    (actual as f64 - expected).abs() <= expected * slack + 3.0
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let args = parse(&["--events", "5000", "--corrections", "0.1", "--bad", "0.01"]);
    let a = gen_bytes(&args);
    let b = gen_bytes(&args);
    assert_eq!(a, b);
    let c = gen_bytes(&GenArgs {
        seed: 7,
        ..args.clone()
    });
    assert_ne!(a.0, c.0);
    assert_ne!(a.1, c.1);
}

#[test]
fn pinned_output() {
    // Byte-for-byte stability across versions and machines: change it only on purpose.
    let args = parse(&[
        "--events",
        "6",
        "--keys",
        "5",
        "--sources",
        "2",
        "--span",
        "1h",
        "--corrections",
        "0.5",
        "--seed",
        "9",
        "--bad",
        "0.2",
        "--replays",
        "0.2",
    ]);
    let (e, c, report) = gen_bytes(&args);
    let events = [
        r#"{"id":"e0000000","key":"k0000","ts":"2026-11-20T00:00:00.000Z","version":0,"source":"p01","seq":1}"#,
        r#"{"id":"e0000000","key":"k0004","ts":"2026-11-20T00:05:32.503Z","value":795,"version":0,"source":"p01","seq":1}"#,
        r#"{"id":"e0000001","key":"k0004","ts":"2026-11-20T00:41:12.186Z","value":948.51,"version":0,"source":"p01","seq":2}"#,
        r#"{"id":"e0000002","key":"k0000","ts":"2026-11-20T00:57:23.724Z","value":837.45,"version":0,"source":"p01","seq":3}"#,
        r#"{"id":"e0000003","key":"k0003","ts":"2026-11-20T00:51:24.019Z","value":470.75,"version":0,"source":"p00","seq":1}"#,
        r#"{"id":"e0000000","key":"k0004","ts":"2026-11-20T00:05:32.503Z","value":795,"version":0,"source":"p01","seq":1}"#,
    ];
    let corrections = [
        r#"{"id":"e0000003","key":"k0003","ts":"2026-11-20T00:51:24.019Z","value":347.08,"version":1,"source":"p00","seq":2}"#,
        r#"{"id":"e0000001","key":"k0003","ts":"2026-11-20T00:32:23.209Z","value":"567.37","version":0,"source":"p01","seq":4}"#,
        r#"{"id":"e0000003","key":"k0003","ts":"2026-11-20T00:51:24.019Z","value":347.08,"version":1,"source":"p00","seq":2}"#,
    ];
    assert_eq!(lines(&e), events);
    assert_eq!(lines(&c), corrections);
    assert_eq!(
        (
            report.event_lines,
            report.correction_lines,
            report.bad_lines
        ),
        (6, 3, 2)
    );
}

#[test]
fn consistent_history_with_the_fractions_asked() {
    let args = parse(&[
        "--events",
        "20000",
        "--keys",
        "50",
        "--sources",
        "5",
        "--corrections",
        "0.2",
        "--bad",
        "0.01",
        "--replays",
        "0.03",
        "--late",
        "0.1",
    ]);
    let (e, c, report) = gen_bytes(&args);
    assert_eq!(report.event_lines, 20_000);
    assert_eq!(report.correction_lines, 4_000);
    assert_eq!(report.events_path, PathBuf::new());
    let mut checker = Checker::default();
    let ev = checker.check(&e, false, &args);
    let co = checker.check(&c, true, &args);
    assert_eq!(ev.lines, report.event_lines);
    assert_eq!(co.lines, report.correction_lines);
    assert_eq!(ev.bad + co.bad, report.bad_lines);
    assert!(within(ev.bad, 200.0, 0.2), "{ev:?}");
    assert!(within(co.bad, 40.0, 0.3), "{co:?}");
    assert!(within(ev.replays, 600.0, 0.2), "{ev:?}");
    assert!(within(ev.late, 0.1 * 19_200.0, 0.25), "{ev:?}");
    assert!(within(co.stale, 400.0, 0.2), "{co:?}");
    assert!(within(co.deletes, 400.0, 0.2), "{co:?}");
    assert!(within(co.replays, 120.0, 0.3), "{co:?}");
    assert!(within(co.new_ids, 80.0, 0.3), "{co:?}");
    assert!(co.corrections > 1000 && co.new_versions > 1000, "{co:?}");
    for kind in ["json", "missing", "value", "ts", "unknown"] {
        assert!(
            ev.bad_reasons.get(kind).copied().unwrap_or(0) >= 5,
            "{ev:?}"
        );
    }
}

#[test]
fn every_bad_line_is_bad() {
    let args = parse(&["--events", "10"]);
    let params = Params::new(&args).unwrap();
    let mut g = Generator::new(&params, 1);
    g.next_id = 1000;
    let mut reasons = BTreeMap::<String, u64>::new();
    for _ in 0..5000 {
        g.bad_line(params.start_ms + 1234);
        let line = std::str::from_utf8(&g.line).unwrap();
        assert!(!line.contains('\n') && !line.is_empty());
        let reason = read(line).expect_err(line);
        *reasons
            .entry(reason.split(':').next().unwrap().to_owned())
            .or_default() += 1;
    }
    for kind in [
        "json",
        "missing id",
        "missing key",
        "missing ts",
        "missing value",
        "value",
    ] {
        assert!(reasons.contains_key(kind), "{kind} in {reasons:?}");
    }
    assert!(reasons.contains_key("ts") && reasons.keys().any(|k| k.starts_with("unknown op")));
    assert_eq!(g.next_id, 1000, "bad lines consume no id");
    assert!(g.seqs.iter().all(|&s| s == 0), "bad lines consume no seq");
}

#[test]
fn edge_parameters() {
    let cases: &[&[&str]] = &[
        &["--events", "1"],
        &[
            "--events",
            "1",
            "--corrections",
            "1",
            "--stale",
            "1",
            "--deletes",
            "1",
        ],
        &["--events", "50", "--bad", "1", "--corrections", "1"],
        &["--events", "50", "--replays", "1", "--corrections", "1"],
        &[
            "--events",
            "200",
            "--keys",
            "1",
            "--sources",
            "1",
            "--span",
            "1ms",
        ],
        &[
            "--events",
            "300",
            "--corrections",
            "1",
            "--stale",
            "0.5",
            "--deletes",
            "0.5",
        ],
        &[
            "--events",
            "100",
            "--late",
            "1",
            "--span",
            "1000d",
            "--start",
            "1969-12-31T23:00:00-01:00",
        ],
        &[
            "--events",
            "100",
            "--late",
            "0",
            "--replays",
            "0",
            "--bad",
            "0",
            "--corrections",
            "0",
        ],
    ];
    for case in cases {
        let args = parse(case);
        let (e, c, report) = gen_bytes(&args);
        let mut checker = Checker::default();
        let ev = checker.check(&e, false, &args);
        let co = checker.check(&c, true, &args);
        assert_eq!(ev.lines, args.events, "{case:?}");
        assert_eq!(co.lines, count(args.events, args.corrections), "{case:?}");
        assert_eq!(ev.bad + co.bad, report.bad_lines, "{case:?}");
    }
    let args = parse(&["--events", "50", "--bad", "1", "--corrections", "1"]);
    assert_eq!(gen_bytes(&args).2.bad_lines, 100);
}

fn stream_bytes(args: &GenArgs) -> (Vec<u8>, GenReport) {
    let mut out = Vec::new();
    let report = stream(args, &mut out).expect("stream");
    (out, report)
}

#[test]
fn a_stream_is_deterministic_and_holds_both_files_lines() {
    let args = parse(&[
        "--events",
        "30000",
        "--keys",
        "50",
        "--sources",
        "5",
        "--corrections",
        "0.2",
        "--bad",
        "0.01",
        "--replays",
        "0.03",
        "--late",
        "0.1",
        "--max-delay",
        "10m",
    ]);
    let (s, report) = stream_bytes(&args);
    assert_eq!(s, stream_bytes(&args).0);
    assert_ne!(
        s,
        stream_bytes(&GenArgs {
            seed: 8,
            ..args.clone()
        })
        .0
    );
    assert_eq!(report.event_lines + report.correction_lines, 36_000);
    assert!(report.event_lines.abs_diff(30_000) < 30, "{report:?}");
    // Every line has one meaning, read as one stream in order.
    let mut checker = Checker::default();
    let st = checker.check(&s, true, &args);
    assert_eq!(st.lines, 36_000);
    assert_eq!(st.bad, report.bad_lines);
    assert!(within(st.bad, 360.0, 0.2), "{st:?}");
    assert!(within(st.replays, 900.0 + 120.0, 0.3), "{st:?}");
    assert!(within(st.stale, 600.0, 0.2), "{st:?}");
    assert!(within(st.deletes, 600.0, 0.2), "{st:?}");
    assert!(st.corrections > 1000 && st.new_versions > 1000, "{st:?}");
    // Corrections are spread through the stream, not gathered at its end.
    let text = std::str::from_utf8(&s).unwrap();
    let half: Vec<&str> = text.lines().take(18_000).collect();
    let mut first_half = Checker::default();
    let st = first_half.check((half.join("\n") + "\n").as_bytes(), true, &args);
    assert!(st.deletes > 200 && st.stale > 200, "{st:?}");
}

#[test]
fn a_stream_advances_in_event_time_in_bounded_memory() {
    let args = parse(&[
        "--events",
        "100000",
        "--span",
        "100d",
        "--max-delay",
        "30m",
        "--corrections",
        "0.05",
    ]);
    let params = Params::new(&args).unwrap();
    assert_eq!((params.late_min, params.late_max), (180_000, 1_800_000));
    let mut g = Generator::new(&params, args.seed);
    let mut out = Vec::new();
    let mut sink = Sink::new(&mut out);
    let (events, corrections) = g.stream(&mut sink).unwrap();
    sink.finish().unwrap();
    assert_eq!((events, corrections), (100_000, 5_000));
    assert!(g.slots.len() <= STREAM_SLOTS && g.versioned.is_empty());
    // How far behind the furthest time so far a good line may be: an event of a new id at
    // most --max-delay (and the jitter of the furthest one); a correction also as far as
    // the times of the recent ids that corrections touch reach back.
    let spacing = 100 * DAY_MS / 95_000; // between fresh events: not bad lines or replays
    let event_bound = params.late_max + 2 * spacing;
    let correction_bound = event_bound + STREAM_SLOTS as i64 * spacing;
    let (mut max_ts, mut ids, mut seen) = (i64::MIN, HashSet::new(), HashSet::new());
    let mut last_decile = i64::MIN;
    for (n, line) in lines(&out).into_iter().enumerate() {
        // A replay repeats a line of any time; every other line is near the stream's time.
        let Some(r) = read(line).ok().filter(|_| seen.insert(line)) else {
            continue;
        };
        let bound = if ids.insert(r.id) {
            event_bound
        } else {
            correction_bound
        };
        assert!(
            max_ts == i64::MIN || r.ts >= max_ts - bound,
            "{line} is too far behind {max_ts}"
        );
        max_ts = max_ts.max(r.ts);
        if n % 10_000 == 0 {
            assert!(max_ts > last_decile, "event time advances");
            last_decile = max_ts;
        }
    }
}

#[test]
fn max_delay_sets_how_late_late_events_are() {
    let base = parse(&["--events", "10", "--span", "1d"]);
    let p = Params::new(&base).unwrap();
    assert_eq!((p.late_min, p.late_max), (DAY_MS / 50, DAY_MS / 5));
    let p = Params::new(&GenArgs {
        max_delay: Some("5ms".into()),
        ..base.clone()
    })
    .unwrap();
    assert_eq!((p.late_min, p.late_max), (1, 5));
    let err = Params::new(&GenArgs {
        max_delay: Some("0s".into()),
        ..base
    })
    .err()
    .unwrap();
    assert!(err.to_string().contains("--max-delay"), "{err}");
}

#[test]
fn run_writes_files_into_a_new_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a/b");
    let args = GenArgs {
        out: Some(out.clone()),
        ..parse(&["--events", "1000", "--corrections", "0.1"])
    };
    let report = run(&args).unwrap();
    assert_eq!(report.events_path, out.join("events.jsonl"));
    assert_eq!(report.corrections_path, out.join("corrections.jsonl"));
    let e = std::fs::read(&report.events_path).unwrap();
    let c = std::fs::read(&report.corrections_path).unwrap();
    assert_eq!(lines(&e).len() as u64, report.event_lines);
    assert_eq!(lines(&c).len() as u64, report.correction_lines);
    assert_eq!((e, c), {
        let (e, c, _) = gen_bytes(&args);
        (e, c)
    });
}

#[test]
fn invalid_arguments_name_the_flag_and_the_value() {
    let base = parse(&[]);
    let cases: Vec<(GenArgs, &str, &str)> = vec![
        (
            GenArgs {
                events: 0,
                ..base.clone()
            },
            "--events",
            "0",
        ),
        (
            GenArgs {
                keys: 0,
                ..base.clone()
            },
            "--keys",
            "0",
        ),
        (
            GenArgs {
                sources: 0,
                ..base.clone()
            },
            "--sources",
            "0",
        ),
        (
            GenArgs {
                sources: 2_000_000,
                ..base.clone()
            },
            "--sources",
            "2000000",
        ),
        (
            GenArgs {
                late: 1.5,
                ..base.clone()
            },
            "--late",
            "1.5",
        ),
        (
            GenArgs {
                replays: -0.1,
                ..base.clone()
            },
            "--replays",
            "-0.1",
        ),
        (
            GenArgs {
                corrections: 2.0,
                ..base.clone()
            },
            "--corrections",
            "2",
        ),
        (
            GenArgs {
                stale: f64::NAN,
                ..base.clone()
            },
            "--stale",
            "NaN",
        ),
        (
            GenArgs {
                deletes: 1.01,
                ..base.clone()
            },
            "--deletes",
            "1.01",
        ),
        (
            GenArgs {
                bad: 7.0,
                ..base.clone()
            },
            "--bad",
            "7",
        ),
        (
            GenArgs {
                span: "1w".into(),
                ..base.clone()
            },
            "--span",
            "`1w`",
        ),
        (
            GenArgs {
                span: "0s".into(),
                ..base.clone()
            },
            "--span",
            "`0s`",
        ),
        (
            GenArgs {
                span: "ms".into(),
                ..base.clone()
            },
            "--span",
            "`ms`",
        ),
        (
            GenArgs {
                span: "-5m".into(),
                ..base.clone()
            },
            "--span",
            "`-5m`",
        ),
        (
            GenArgs {
                span: "99999999999999d".into(),
                ..base.clone()
            },
            "--span",
            "99999999999999d",
        ),
        (
            GenArgs {
                start: "2026-11-20".into(),
                ..base.clone()
            },
            "--start",
            "`2026-11-20`",
        ),
        (
            GenArgs {
                start: "9999-12-31T12:00:00Z".into(),
                ..base.clone()
            },
            "--start",
            "9999-12-31",
        ),
    ];
    for (args, flag, value) in cases {
        let err = format!(
            "{:#}",
            generate(&args, &mut io::sink(), &mut io::sink()).unwrap_err()
        );
        assert!(
            err.contains(flag) && err.contains(value),
            "{flag} {value}: {err}"
        );
        let err = format!("{:#}", run(&args).unwrap_err());
        assert!(err.contains(flag), "{err}");
    }
    assert!(
        !std::path::Path::new("unused").exists(),
        "run validates before creating --out"
    );
}

#[test]
fn spans() {
    assert_eq!(parse_span("500ms").unwrap(), 500);
    assert_eq!(parse_span("30s").unwrap(), 30_000);
    assert_eq!(parse_span("5m").unwrap(), 300_000);
    assert_eq!(parse_span("1h").unwrap(), 3_600_000);
    assert_eq!(parse_span("1d").unwrap(), 86_400_000);
    for bad in ["", "1", "d", "1.5h", "1 h", "+1h", "1H", "1hh"] {
        assert!(parse_span(bad).is_err(), "{bad}");
    }
}

#[test]
fn timestamps_match_chrono() {
    assert_eq!(
        time::MIN_MILLIS,
        chrono::DateTime::parse_from_rfc3339("0001-01-01T00:00:00Z")
            .unwrap()
            .timestamp_millis()
    );
    assert_eq!(
        END_MS - 1,
        chrono::DateTime::parse_from_rfc3339("9999-12-31T23:59:59.999Z")
            .unwrap()
            .timestamp_millis()
    );
    let mut rng = Random(ChaCha8Rng::seed_from_u64(3));
    let mut tsf = TsFormat::new();
    let mut buf = Vec::new();
    let fixed = [
        time::MIN_MILLIS,
        END_MS - 1,
        -1,
        0,
        1,
        1_795_132_800_000,
        -86_400_001,
    ];
    let random = (0..20_000).map(|i| {
        if i % 2 == 0 {
            rng.between(time::MIN_MILLIS, END_MS - 1)
        } else {
            rng.between(-1 << 36, 1 << 36)
        }
    });
    for ms in fixed.into_iter().chain(random) {
        buf.clear();
        tsf.push(&mut buf, ms);
        let want = chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        assert_eq!(std::str::from_utf8(&buf).unwrap(), want);
    }
}

#[test]
fn values_are_exact_decimal_text() {
    let text = |cents| {
        let mut buf = Vec::new();
        push_cents(&mut buf, cents);
        String::from_utf8(buf).unwrap()
    };
    assert_eq!(text(1250), "12.5");
    assert_eq!(text(-307), "-3.07");
    assert_eq!(text(10_000), "100");
    assert_eq!(text(0), "0");
    assert_eq!(text(-5), "-0.05");
    assert_eq!(text(-50), "-0.5");
    assert_eq!(text(1), "0.01");
    assert_eq!(text(i64::MIN), "-92233720368547758.08");
    let mut buf = Vec::new();
    push_padded(&mut buf, 42, 4);
    push_padded(&mut buf, 123_456, 2);
    push_padded(&mut buf, 0, 1);
    push_u64(&mut buf, u64::MAX);
    assert_eq!(buf, b"0042123456018446744073709551615");
}
