//! Property tests of `amend aggregate` against a naive reference model of the data contract.
//!
//! The model (`model/reference.rs`) is docs/format.md sections 3, 4, 6 and 7 written as plainly as
//! possible: the current record of an id is the maximum of `(version, position)` over all its
//! records, windows are enumerated from their definition, each epoch's table is recomputed from
//! scratch over the records of epochs `0..=E`, and canonical decimals, RFC 3339 times and
//! SHA-256 digests are computed by code of its own (no code shared with the pipeline). The
//! generator (`model/history.rs`) builds histories as structured records — many ids over few
//! keys, replays, same-version corrections, new and stale versions, deletes and re-upserts,
//! moves between keys and windows, values with many digits, negative times, blank lines and
//! bad lines of every docs/format.md section 5 kind — renders them to JSON Lines (and, in some cases,
//! some files to CSV with a header) in many equivalent spellings, splits them into 1 to 4 files
//! (epochs) at random points, and knows each record's position and each bad line's dead letter
//! without parsing anything. `model/check.rs` runs the real pipeline in-process and compares.
//!
//! What each property guards:
//!
//! - (a) `changelog.jsonl`: replaying epochs `0..=E` onto an empty table gives the model's
//!   table of those epochs, for every E; every retraction removes a row that is there, no
//!   insertion duplicates a (window, key); an epoch that changes no row writes no line, and no
//!   row is retracted and re-inserted unchanged; lines are in epoch order, retractions first.
//! - (b) `snapshot.jsonl` (and `snapshot.csv`) equal the model's rows, order and text exactly;
//!   `digests.json` equals the model's own SHA-256 window and table digests.
//! - (c) 1, 2 and 4 workers and any `--batch-records` write byte-identical changelog,
//!   snapshot, dead letters and digests, and the same summary counts.
//! - (d) `summary.json` closes its accounting (read = accepted + dead-lettered, each the
//!   model's count; blank lines are not records) and counts current and deleted ids as the
//!   model does; `dead_letter.jsonl` holds exactly the bad lines (source, epoch, offset, 1-based
//!   line, raw text), in position order, each with a reason naming what is wrong.
//!
//! Hop windows (also with gaps and sizes that are not multiples of the slide), scales 0, 2, 6
//! and 9, small `--max-line-bytes` limits and a larger seeded history across worker counts are
//! covered too; the model itself is checked against hand-computed answers.
//!
//! Session windows (`session:G`) are computed by the model from the definition in docs/format.md, on
//! histories whose records cluster within a few gaps, so that later epochs bridge sessions
//! and removals split them (`session_cases_bridge_and_split` checks that they do).
//!
//! Lateness (`--max-out-of-orderness`, `--allowed-lateness`) follows docs/design/0002 step by
//! step in `Model::live`: per epoch the watermark and horizon, frozen rows of closed windows,
//! forgotten ids, late records, contributions to open windows only. The model also says
//! whether a history is exact (no forgotten id touched again, no update of a closed window);
//! then its tables must equal a full recompute over the records that are not late. The
//! properties add `late.jsonl` and `records_late` to (a) to (d).
//!
//! Kafka topics in place of the files (`model/topics.rs`, on librdkafka's mock cluster): the
//! final table, its changelog replayed, the accounting and dead letters equal the model's, for
//! any epoch size and worker count.

#[path = "model/check.rs"]
mod check;
#[path = "model/history.rs"]
mod history;
#[path = "model/reference.rs"]
mod reference;
#[path = "model/topics.rs"]
mod topics;

use std::collections::BTreeMap;
use std::fs;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

use check::{Options, check_case, run, run_with, same_outputs, write_inputs};
use history::{Case, KEYS, Params, Step};
use reference::{Agg, Lateness, Model, Record, Windows, canonical, hex, mean, rfc3339, sha256};

const WINDOWS: [Windows; 8] = [
    Windows::Tumbling { size: 10_000 },
    Windows::Tumbling { size: 10_000 },
    Windows::Tumbling { size: 7_000 },
    Windows::Tumbling { size: 500 },
    Windows::Hop {
        size: 10_000,
        slide: 5_000,
    },
    Windows::Hop {
        size: 10_000,
        slide: 3_000,
    },
    Windows::Hop {
        size: 6_000,
        slide: 4_000,
    },
    Windows::Hop {
        size: 2_000,
        slide: 5_000,
    },
];

/// 1970 (so negative times), 2026-11-20T10:15Z, 1969-01-01 minus a bit, 2000-02-29 minus 1 s.
const BASES: [i64; 4] = [0, 1_795_169_700_000, -31_536_000_123, 951_782_399_000];
const TICKS: [i64; 4] = [250, 250, 1000, 1];
const SCALES: [Option<u32>; 5] = [None, None, Some(2), Some(0), Some(9)];
const MAX_LINES: [Option<usize>; 4] = [None, None, Some(150), Some(300)];

fn step() -> impl Strategy<Value = Step> {
    (
        any::<u8>(),
        any::<u16>(),
        any::<u8>(),
        any::<u16>(),
        any::<u8>(),
        any::<i64>(),
        any::<u8>(),
        any::<u32>(),
    )
        .prop_map(|(kind, pick, key, ts, class, raw, version, style)| Step {
            kind,
            pick,
            key,
            ts,
            class,
            raw,
            version,
            style,
        })
}

/// Case parameters, with windows drawn from `windows`.
fn params(windows: &'static [Windows]) -> impl Strategy<Value = Params> {
    (
        0..windows.len(),
        (
            0..BASES.len(),
            0..TICKS.len(),
            0..SCALES.len(),
            0..MAX_LINES.len(),
        ),
        1..=KEYS.len(),
        1usize..=4,
        0usize..4,
        vec(any::<u16>(), 3),
        (prop_oneof![2 => Just(0u8), 1 => any::<u8>()], any::<u8>()),
    )
        .prop_map(
            move |(
                w,
                (base, tick, scale, max),
                keys,
                files,
                inputs,
                mut cuts,
                (csv, csv_columns),
            )| {
                cuts.truncate(files - 1);
                Params {
                    windows: windows[w],
                    base: BASES[base],
                    tick: TICKS[tick],
                    spread: 160,
                    drift: 0,
                    lateness: None,
                    scale: SCALES[scale],
                    max_line: MAX_LINES[max],
                    keys,
                    inputs: 1 + inputs % files,
                    cuts,
                    csv,
                    csv_columns,
                }
            },
        )
}

fn case(windows: &'static [Windows]) -> impl Strategy<Value = Case> {
    (params(windows), vec(step(), 0..=60)).prop_map(|(p, steps)| Case::build(p, &steps))
}

/// Session gaps: whole seconds, milliseconds, and a gap that is not a multiple of the tick.
const GAPS: [i64; 4] = [10_000, 1_000, 500, 7];

/// A session case: a tick is a fraction of the gap (so records exactly a gap apart, ± 1 ms,
/// occur), and times are spread so that a key's current records are on average about half a
/// gap, a gap or 1.5 gaps apart: sessions of a few records, which later records bridge and
/// removals split.
fn session_case() -> impl Strategy<Value = Case> {
    (
        params(&WINDOWS),
        0..GAPS.len(),
        1usize..=4,
        1usize..=3,
        (vec(any::<u16>(), 1..=3), 0usize..4),
        vec(step(), 0..=60),
    )
        .prop_map(
            |(mut p, gap, per_gap, density, (cuts, inputs), mut steps)| {
                let gap = GAPS[gap];
                p.windows = Windows::Session { gap };
                p.tick = (gap / per_gap as i64).max(1);
                // Two to four epochs. In three steps of four, the first half of the history
                // makes new ids (rather than 7 steps in 32) and the second half new ids, moves
                // and deletes: records stay in place while later epochs bridge and split
                // their sessions.
                p.inputs = 1 + inputs % (cuts.len() + 1);
                p.cuts = cuts;
                let half = steps.len() / 2;
                for (i, step) in steps.iter_mut().enumerate() {
                    if step.style >> 30 != 0 {
                        step.kind = match (i < half, step.kind % 4) {
                            (true, _) | (false, 0 | 1) => step.kind % 7, // new
                            (false, 2) => 13 + step.kind % 2 * 5,        // moved, or deleted
                            _ => 10 + step.kind % 2 * 8,                 // moved, or deleted
                        };
                    }
                }
                let ids = steps.len() * 5 / 8;
                p.spread = (ids * per_gap * density / (2 * p.keys)).max(2) as u16;
                Case::build(p, &steps)
            },
        )
}

/// Windows for histories with lateness: a tick is 250 ms, time drifts forward by up to a
/// second a step.
const LIVE_WINDOWS: [Windows; 7] = [
    Windows::Tumbling { size: 10_000 },
    Windows::Tumbling { size: 2_000 },
    Windows::Hop {
        size: 10_000,
        slide: 5_000,
    },
    Windows::Hop {
        size: 10_000,
        slide: 2_000,
    },
    Windows::Hop {
        size: 6_000,
        slide: 4_000,
    },
    Windows::Session { gap: 1_000 },
    Windows::Session { gap: 3_000 },
];

/// A history with `--max-out-of-orderness` and `--allowed-lateness`: two to four epochs, times
/// that advance with the history (so watermarks rise from epoch to epoch) while each record
/// strays up to seconds from it, and a lateness from a tick to minutes, or practically none
/// (then nothing is late or forgotten). Late records, forgotten ids (later touched again or
/// not) and frozen windows all occur; `live_model_covers_lateness` checks how often.
fn live_case() -> impl Strategy<Value = Case> {
    (
        params(&LIVE_WINDOWS),
        (vec(any::<u16>(), 1..=3), 0usize..4),
        (0usize..5, 0usize..3),
        (
            1i64..=24,
            prop_oneof![6 => 1i64..=40, 1 => 41i64..=400, 1 => Just(1 << 30)],
        ),
        vec(step(), 10..=60),
    )
        .prop_map(|(mut p, (cuts, inputs), (drift, spread), (m, l), steps)| {
            p.tick = 250;
            p.spread = [16, 40, 160][spread];
            p.drift = [0, 125, 250, 500, 1000][drift];
            p.inputs = 1 + inputs % (cuts.len() + 1);
            p.cuts = cuts;
            p.lateness = Some(Lateness {
                out_of_orderness: 250 * m,
                allowed: 250 * l,
            });
            Case::build(p, &steps)
        })
}

fn batch() -> impl Strategy<Value = u64> {
    prop_oneof![1u64..=5, Just(100_000)]
}

/// `cases` cases, or `PROPTEST_CASES` if set (for longer hunts).
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        max_shrink_iters: 1024,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(64))]

    /// (a), (b), (d) on one run with a random worker count and batch size.
    #[test]
    fn pipeline_matches_model(case in case(&WINDOWS), workers in 1usize..=4, batch in batch()) {
        let opts = Options { workers, batch, csv: false };
        check_case(&case, &[opts]).map_err(TestCaseError::fail)?;
    }
}

proptest! {
    #![proptest_config(config(48))]

    /// (c): 1 worker, 2 workers and 4 workers with different batch sizes write the same bytes;
    /// the first run is also checked against the model.
    #[test]
    fn outputs_do_not_depend_on_workers_or_batching(
        case in case(&WINDOWS),
        batches in (batch(), batch()),
    ) {
        let runs = [
            Options { workers: 1, batch: 100_000, csv: false },
            Options { workers: 2, batch: batches.0, csv: false },
            Options { workers: 4, batch: batches.1, csv: false },
        ];
        check_case(&case, &runs).map_err(TestCaseError::fail)?;
    }
}

proptest! {
    #![proptest_config(config(32))]

    /// (a), (b), (d) with hop windows only: overlapping, gapped, and size not a multiple of
    /// the slide.
    #[test]
    fn hop_windows_match_model(case in case(&WINDOWS[4..]), workers in 1usize..=4, batch in batch()) {
        let opts = Options { workers, batch, csv: false };
        check_case(&case, &[opts]).map_err(TestCaseError::fail)?;
    }
}

proptest! {
    #![proptest_config(config(16))]

    /// (b) with `--snapshot-format csv`: header, quoting of keys, same rows as the model.
    #[test]
    fn csv_snapshot_matches_model(case in case(&WINDOWS), workers in 1usize..=4) {
        let opts = Options { workers, batch: 3, csv: true };
        check_case(&case, &[opts]).map_err(TestCaseError::fail)?;
    }
}

proptest! {
    #![proptest_config(config(64))]

    /// (a), (b), (d) with session windows: merges by bridging records, splits by removals.
    #[test]
    fn session_windows_match_model(case in session_case(), workers in 1usize..=4, batch in batch()) {
        let opts = Options { workers, batch, csv: false };
        check_case(&case, &[opts]).map_err(TestCaseError::fail)?;
    }
}

proptest! {
    #![proptest_config(config(32))]

    /// (c) with session windows: 1, 2 and 4 workers and different batch sizes write the same
    /// bytes; the first run is also checked against the model.
    #[test]
    fn session_outputs_do_not_depend_on_workers_or_batching(
        case in session_case(),
        batches in (batch(), batch()),
    ) {
        let runs = [
            Options { workers: 1, batch: 100_000, csv: false },
            Options { workers: 2, batch: batches.0, csv: false },
            Options { workers: 4, batch: batches.1, csv: false },
        ];
        check_case(&case, &runs).map_err(TestCaseError::fail)?;
    }
}

proptest! {
    #![proptest_config(config(64))]

    /// With `--max-out-of-orderness` and `--allowed-lateness`: late.jsonl, the changelog,
    /// snapshot, digests and summary (records_late) against the live model.
    #[test]
    fn lateness_matches_model(case in live_case(), workers in 1usize..=4, batch in batch()) {
        let opts = Options { workers, batch, csv: false };
        check_case(&case, &[opts]).map_err(TestCaseError::fail)?;
    }
}

proptest! {
    #![proptest_config(config(32))]

    /// (c) with lateness: watermarks, late records and released state are the same for 1, 2
    /// and 4 workers and any batching.
    #[test]
    fn lateness_outputs_do_not_depend_on_workers_or_batching(
        case in live_case(),
        batches in (batch(), batch()),
    ) {
        let runs = [
            Options { workers: 1, batch: 100_000, csv: false },
            Options { workers: 2, batch: batches.0, csv: false },
            Options { workers: 4, batch: batches.1, csv: false },
        ];
        check_case(&case, &runs).map_err(TestCaseError::fail)?;
    }
}

/// Checkpoints: a run over the first `at` files with `--checkpoint-dir`, then a run over all
/// of them (with another worker count) that resumes from its checkpoint, writes the same
/// outputs as one run straight through; the first run's checkpoint is of a random epoch.
fn check_resume(case: &Case, at: usize, workers: [usize; 3]) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let inputs = write_inputs(case, &dir.path().join("in"));
    let opts = |workers| Options {
        workers,
        batch: 100_000,
        csv: false,
    };
    let straight = run(case, &inputs, &dir.path().join("straight"), opts(1))?;
    let out = dir.path().join("resumed");
    let ckpt = vec![
        "--checkpoint-dir".to_string(),
        dir.path().join("ckpt").display().to_string(),
        "--checkpoint-interval".into(),
        "0".into(),
    ];
    let at = at.clamp(1, inputs.len());
    // Three runs: up to `at`, one more input, the rest; the second resumes and checkpoints
    // changes on top of what it loaded, which the third loads.
    run_with(case, &inputs[..at], &out, opts(workers[0]), &ckpt)?;
    let next = (at + 1).min(inputs.len());
    run_with(case, &inputs[..next], &out, opts(workers[1]), &ckpt)?;
    let resumed = run_with(case, &inputs, &out, opts(workers[2]), &ckpt)?;
    same_outputs(&straight, &resumed).map_err(|e| {
        format!(
            "resumed after {at} and {next} of {} files, {workers:?} workers: {e}
{}",
            inputs.len(),
            case.dump()
        )
    })?;
    let read_by_run = resumed.summary["run_records_read"].as_u64();
    let all = straight.summary["records_read"].as_u64();
    let before = read_by_run.zip(all).map(|(r, a)| a - r);
    if at == inputs.len() && read_by_run != Some(0) {
        return Err(format!(
            "a resume with nothing new read {read_by_run:?} records"
        ));
    }
    if before.is_none() {
        return Err("summary.json lacks run_records_read".into());
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(24))]

    /// Resumes from checkpoints of random epochs (incremental ones among them), with more
    /// inputs and other worker counts, give the outputs of a run straight through; also with
    /// lateness. Half the cases keep one worker count, so that each worker finds its state in
    /// its own parts as saved (with another count, the state is re-partitioned on load).
    #[test]
    fn resuming_from_a_checkpoint_matches_a_run_straight_through(
        case in case(&WINDOWS),
        live in live_case(),
        at in 1usize..=4,
        workers in prop_oneof![
            (1usize..=3).prop_map(|w| [w; 3]),
            [1usize..=3, 1usize..=3, 1usize..=3],
        ],
    ) {
        check_resume(&case, at, workers).map_err(TestCaseError::fail)?;
        check_resume(&live, at, workers).map_err(TestCaseError::fail)?;
    }
}

/// A JSON Lines case (no CSV file: a topic's messages are JSON) whose lines fit in messages.
fn json_case() -> impl Strategy<Value = Case> {
    (params(&WINDOWS), vec(step(), 0..=60))
        .prop_map(|(mut p, steps)| {
            p.csv = 0;
            Case::build(p, &steps)
        })
        .prop_filter("a line too long for a message", topics::fits_messages)
}

proptest! {
    #![proptest_config(config(16))]

    /// Each file of a case as a Kafka topic of three partitions (records keyed by id), read by
    /// a bounded replay in epochs of a few messages: the model's final table (snapshot,
    /// digests, the changelog replayed), its accounting and dead letters, and the same bytes
    /// for two worker counts (docs/format.md section 2: topic positions); and a run resumed
    /// from a checkpoint of a random epoch, with the epochs after it planned again from the
    /// topics' offsets, writes the same bytes as the run straight through.
    #[test]
    fn topics_in_place_of_files_match_model(
        case in json_case(),
        workers in 2usize..=4,
        max_epoch in prop_oneof![1u64..=7, Just(100_000)],
        cut in 0usize..1000,
    ) {
        topics::check_topic_case(&case, [1, workers], max_epoch, cut)
            .map_err(TestCaseError::fail)?;
    }
}

/// The live model on many generated histories: an exact history's tables are a full
/// recompute over its on-time records, a practically unbounded lateness changes nothing, and
/// the generator exercises what it is for — late records, forgotten ids touched again,
/// frozen windows updated, and exact histories with late records.
#[test]
fn live_model_covers_lateness() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[11; 32]);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let cases = 400;
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for _ in 0..cases {
        let case = live_case().new_tree(&mut runner).unwrap().current();
        let (model, epochs) = (case.params.model(), case.files.len() as u64);
        let lateness = case.params.lateness.unwrap();
        let live = model.live(&case.records, epochs, lateness);
        if let Err(e) = check::check_live_model(&case, &live) {
            panic!("{}", &e[..e.len().min(6000)]);
        }
        let unbounded = Lateness {
            allowed: 1 << 40,
            ..lateness
        };
        let plain = model.live(&case.records, epochs, unbounded);
        let full: Vec<_> = (0..epochs).map(|e| model.table(&case.records, e)).collect();
        assert!(plain.exact() && plain.late.is_empty() && plain.tables == full);
        let mut count = |what, yes: bool| *seen.entry(what).or_default() += usize::from(yes);
        count("late records", !live.late.is_empty());
        count("forgotten ids", live.forgotten > 0);
        count("frozen rows", live.frozen > 0);
        count(
            "exact with late records",
            live.exact() && !live.late.is_empty(),
        );
        count("exact with frozen rows", live.exact() && live.frozen > 0);
        let touched = live.inexact.iter().any(|w| w.contains("forgotten id"));
        count("forgotten ids touched again", touched);
        let closed = live.inexact.iter().any(|w| w.contains("closed"));
        count("updates of closed windows", closed);
        if let Windows::Session { .. } = model.windows {
            count("sessions with late records", !live.late.is_empty());
            count("sessions with frozen rows", live.frozen > 0);
        }
    }
    let rare: Vec<_> = seen.iter().filter(|(_, n)| **n < cases / 20).collect();
    assert!(
        rare.is_empty(),
        "too rare in {cases} cases: {rare:?} (all: {seen:?})"
    );
}

/// A larger seeded history (thousands of records, four epochs) on 1, 2 and 4 workers.
#[test]
fn large_history_across_workers() {
    let mut seed = 0x5eed_u64;
    let mut next = move || {
        // splitmix64
        seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let steps: Vec<Step> = (0..3000)
        .map(|_| Step {
            kind: next() as u8,
            pick: next() as u16,
            key: next() as u8,
            ts: next() as u16,
            class: next() as u8,
            raw: next() as i64,
            version: next() as u8,
            style: next() as u32,
        })
        .collect();
    let params = Params {
        windows: Windows::Hop {
            size: 10_000,
            slide: 5_000,
        },
        base: BASES[1],
        tick: 250,
        spread: 160,
        drift: 0,
        lateness: None,
        scale: None,
        max_line: Some(4096),
        keys: 5,
        inputs: 2,
        cuts: vec![900, 1700, 2900],
        csv: 0b0100,
        csv_columns: 3,
    };
    let case = Case::build(params, &steps);
    assert!(case.records.len() > 2000, "{} records", case.records.len());
    assert!(!case.dead.is_empty());
    let runs = [
        Options {
            workers: 1,
            batch: 100_000,
            csv: false,
        },
        Options {
            workers: 2,
            batch: 7,
            csv: false,
        },
        Options {
            workers: 4,
            batch: 64,
            csv: false,
        },
    ];
    if let Err(e) = check_case(&case, &runs) {
        panic!("{}", &e[..e.len().min(6000)]);
    }
}

/// docs/format.md section 5: a CSV line that ends inside a quoted field (a truncated write) is not valid CSV, so
/// it is a bad record — not a record with a cut-off last field.
#[test]
fn csv_line_ending_inside_quotes_is_bad() {
    let dir = tempfile::tempdir().unwrap();
    let (input, out) = (dir.path().join("t.csv"), dir.path().join("out"));
    fs::write(&input, "id,ts,value,key\n1,0,7,\"k,x\n2,0,1,a\n").unwrap();
    let (input, out) = (input.display().to_string(), out.display().to_string());
    let args = [
        "amend",
        "aggregate",
        "--input",
        &input,
        "--window",
        "tumbling:10s",
        "--out",
        &out,
        "--quiet",
    ];
    let summary = amend::run_args(args).unwrap().summary;
    let dead = fs::read_to_string(dir.path().join("out/dead_letter.jsonl")).unwrap();
    let snapshot = fs::read_to_string(dir.path().join("out/snapshot.jsonl")).unwrap();
    assert_eq!(
        (
            summary.read.records_accepted,
            summary.read.records_dead_lettered
        ),
        (1, 1),
        "line 2 `1,0,7,\"k,x` was accepted as a record:\nsnapshot: {snapshot}dead letters: {dead}"
    );
}

/// The model's building blocks against known answers.
#[test]
fn model_building_blocks() {
    assert_eq!(
        hex(&sha256(b"")),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        hex(&sha256(b"abc")),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(
        hex(&sha256(
            b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
        )),
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
    );
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
    assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    assert_eq!(rfc3339(1_795_169_700_123), "2026-11-20T10:15:00.123Z");
    assert_eq!(rfc3339(-62_135_596_800_000), "0001-01-01T00:00:00.000Z");
    for (units, text) in [
        (12_500_000, "12.5"),
        (-1, "-0.000001"),
        (3_000_000, "3"),
        (0, "0"),
        (-30_500_000, "-30.5"),
    ] {
        assert_eq!(canonical(units, 6), text);
    }
    assert_eq!(canonical(5, 0), "5");
    assert_eq!(canonical(-5, 2), "-0.05");
    // Half-to-even, also for negative sums.
    for (sum, count, m) in [
        (5, 2, 2),
        (7, 2, 4),
        (-5, 2, -2),
        (-7, 2, -4),
        (10, 3, 3),
        (11, 3, 4),
        (-11, 3, -4),
        (1, 4, 0),
        (3, 4, 1),
    ] {
        assert_eq!(mean(sum, count), m, "{sum}/{count}");
    }
    let hop = Windows::Hop { size: 10, slide: 5 };
    assert_eq!(hop.of(0), vec![(-5, 5), (0, 10)]);
    assert_eq!(hop.of(-3), vec![(-10, 0), (-5, 5)]);
    let gappy = Windows::Hop { size: 2, slide: 5 };
    assert_eq!(gappy.of(6), vec![(5, 7)]);
    assert_eq!(gappy.of(8), vec![]);
    assert_eq!(Windows::Tumbling { size: 10 }.of(-1), vec![(-10, 0)]);
}

/// A tiny history whose whole output is written out by hand: the model and the pipeline must
/// both give exactly this.
#[test]
fn hand_written_history() {
    let events = concat!(
        "{\"id\":1,\"key\":\"a\",\"ts\":1000,\"value\":10}\n",
        "{\"id\":\"2\",\"key\":\"a\",\"ts\":\"1970-01-01T00:00:02Z\",\"value\":20.5}\n",
        "\n",
        "{\"id\":3,\"key\":\"b\",\"ts\":12000,\"value\":-5}\n",
        "{\"id\":9,\"key\":\"b\",\"ts\":12000,\"value\":1.0000001}\n",
    );
    let fixes = concat!(
        "{\"id\":1,\"key\":\"a\",\"ts\":1000,\"value\":10}\n",
        "{\"id\":2,\"key\":\"a\",\"ts\":2000,\"value\":1}\n",
        "{\"id\":3,\"key\":\"b\",\"ts\":12000,\"value\":7,\"op\":\"delete\"}\n",
        "{\"id\":4,\"key\":\"a\",\"ts\":3000,\"value\":0.5,\"version\":2}\n",
        "{\"id\":4,\"key\":\"a\",\"ts\":3000,\"value\":99,\"version\":1}\n",
    );
    let row = |start: &str, end: &str, key: &str, rest: &str| {
        format!(
            "\"window_start\":\"1970-01-01T00:00:{start}.000Z\",\"window_end\":\"1970-01-01T00:00:{end}.000Z\",\"key\":\"{key}\",{rest}"
        )
    };
    let a0 = row(
        "00",
        "10",
        "a",
        r#""count":2,"sum":"30.5","min":"10","max":"20.5","mean":"15.25""#,
    );
    let b0 = row(
        "10",
        "20",
        "b",
        r#""count":1,"sum":"-5","min":"-5","max":"-5","mean":"-5""#,
    );
    let a1 = row(
        "00",
        "10",
        "a",
        r#""count":3,"sum":"11.5","min":"0.5","max":"10","mean":"3.833333""#,
    );
    let changelog = format!(
        "{{\"epoch\":0,\"diff\":1,{a0}}}\n{{\"epoch\":0,\"diff\":1,{b0}}}\n\
         {{\"epoch\":1,\"diff\":-1,{a0}}}\n{{\"epoch\":1,\"diff\":-1,{b0}}}\n\
         {{\"epoch\":1,\"diff\":1,{a1}}}\n"
    );
    let snapshot = format!("{{{a1}}}\n");
    let w = sha256(b"1:a|3|11.5|0.5|10\n");
    let table = sha256(format!("0:10000:{}\n", hex(&w)).as_bytes());

    // The model, on the same records.
    let model = Model {
        scale: 6,
        windows: Windows::Tumbling { size: 10_000 },
    };
    let r = |id: &str, key: &str, ts, units, delete, version, pos: (u64, u64)| Record {
        id: id.into(),
        key: key.into(),
        ts,
        units,
        delete,
        version,
        position: (pos.0, pos.0 as u32, pos.1),
    };
    let records = vec![
        r("1", "a", 1000, 10_000_000, false, 0, (0, 0)),
        r("2", "a", 2000, 20_500_000, false, 0, (0, 40)),
        r("3", "b", 12000, -5_000_000, false, 0, (0, 103)),
        r("1", "a", 1000, 10_000_000, false, 0, (1, 0)),
        r("2", "a", 2000, 1_000_000, false, 0, (1, 40)),
        r("3", "b", 12000, 7_000_000, true, 0, (1, 79)),
        r("4", "a", 3000, 500_000, false, 2, (1, 133)),
        r("4", "a", 3000, 99_000_000, false, 1, (1, 186)),
    ];
    let final_table = model.table(&records, 1);
    assert_eq!(model.snapshot_jsonl(&final_table), snapshot);
    assert_eq!(
        final_table.values().next(),
        Some(&Agg {
            count: 3,
            sum: 11_500_000,
            min: 500_000,
            max: 10_000_000
        })
    );
    assert_eq!(model.digests(&final_table)["table"], hex(&table));
    assert_eq!(model.id_counts(&records), (3, 1));

    // The pipeline, on the text.
    let dir = tempfile::tempdir().unwrap();
    let (e, f, out) = (
        dir.path().join("events.jsonl"),
        dir.path().join("fixes.jsonl"),
        dir.path().join("out"),
    );
    fs::write(&e, events).unwrap();
    fs::write(&f, fixes).unwrap();
    let (es, fs_, os) = (
        e.display().to_string(),
        f.display().to_string(),
        out.display().to_string(),
    );
    let summary = amend::run_args([
        "amend",
        "aggregate",
        "--input",
        &es,
        "--corrections",
        &fs_,
        "--window",
        "tumbling:10s",
        "--out",
        &os,
        "--workers",
        "2",
        "--batch-records",
        "1",
        "--quiet",
    ])
    .unwrap()
    .summary;
    let read = |name: &str| fs::read_to_string(out.join(name)).unwrap();
    assert_eq!(read("changelog.jsonl"), changelog);
    assert_eq!(read("snapshot.jsonl"), snapshot);
    let digests: serde_json::Value = serde_json::from_str(&read("digests.json")).unwrap();
    assert_eq!(digests["table"], hex(&table));
    assert_eq!(digests["windows"][0]["digest"], hex(&w));
    let dead: serde_json::Value = serde_json::from_str(read("dead_letter.jsonl").trim()).unwrap();
    assert_eq!(
        (&dead["offset"], &dead["line"], &dead["epoch"]),
        (
            &serde_json::json!(144),
            &serde_json::json!(5),
            &serde_json::json!(0)
        )
    );
    assert_eq!(
        (summary.read.records_read, summary.read.records_accepted),
        (9, 8)
    );
    assert_eq!((summary.ids_current, summary.ids_deleted), (3, 1));
}

/// Runs `amend aggregate` on `events` (one --input file) and `fixes` (one --corrections file
/// each) with `flags`, and returns the output directory.
fn run_files(events: &str, fixes: &[&str], flags: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut args: Vec<String> = vec!["amend".into(), "aggregate".into(), "--input".into()];
    for (i, text) in std::iter::once(&events).chain(fixes).enumerate() {
        let path = dir.path().join(format!("epoch{i}.jsonl"));
        fs::write(&path, text).unwrap();
        if i == 1 {
            args.push("--corrections".into());
        }
        args.push(path.display().to_string());
    }
    args.push("--out".into());
    args.push(dir.path().join("out").display().to_string());
    args.extend(flags.iter().map(|f| f.to_string()));
    args.push("--quiet".into());
    amend::run_args(&args).unwrap();
    dir
}

/// Session windows through the real pipeline, written out by hand: a late record bridges two
/// sessions, deleting it splits them again, and a correction that moves a record to less than
/// the gap from another joins them.
#[test]
fn session_bridge_and_split_by_hand() {
    let events = concat!(
        "{\"id\":\"a1\",\"key\":\"k\",\"ts\":0,\"value\":1}\n",
        "{\"id\":\"a2\",\"key\":\"k\",\"ts\":15000,\"value\":2}\n",
        "{\"id\":\"b1\",\"key\":\"b\",\"ts\":5000,\"value\":9}\n",
    );
    let bridge = "{\"id\":\"a3\",\"key\":\"k\",\"ts\":7000,\"value\":4}\n";
    let delete = "{\"id\":\"a3\",\"key\":\"k\",\"ts\":7000,\"value\":4,\"op\":\"delete\"}\n";
    let moved = "{\"id\":\"a2\",\"key\":\"k\",\"ts\":9999,\"value\":2,\"version\":1}\n";
    let row = |start: &str, end: &str, key: &str, rest: &str| {
        format!(
            "\"window_start\":\"1970-01-01T00:00:{start}Z\",\"window_end\":\"1970-01-01T00:00:{end}Z\",\"key\":\"{key}\",{rest}"
        )
    };
    let b = row(
        "05.000",
        "15.000",
        "b",
        r#""count":1,"sum":"9","min":"9","max":"9","mean":"9""#,
    );
    let first = row(
        "00.000",
        "10.000",
        "k",
        r#""count":1,"sum":"1","min":"1","max":"1","mean":"1""#,
    );
    let second = row(
        "15.000",
        "25.000",
        "k",
        r#""count":1,"sum":"2","min":"2","max":"2","mean":"2""#,
    );
    let merged = row(
        "00.000",
        "25.000",
        "k",
        r#""count":3,"sum":"7","min":"1","max":"4","mean":"2.333333""#,
    );
    let joined = row(
        "00.000",
        "19.999",
        "k",
        r#""count":2,"sum":"3","min":"1","max":"2","mean":"1.5""#,
    );
    let line = |epoch: u64, diff: i64, body: &str| {
        format!("{{\"epoch\":{epoch},\"diff\":{diff},{body}}}\n")
    };
    let changelog = [
        line(0, 1, &first),
        line(0, 1, &b),
        line(0, 1, &second),
        line(1, -1, &first),
        line(1, -1, &second),
        line(1, 1, &merged),
        line(2, -1, &merged),
        line(2, 1, &first),
        line(2, 1, &second),
        line(3, -1, &first),
        line(3, -1, &second),
        line(3, 1, &joined),
    ]
    .concat();
    let snapshot = format!("{{{joined}}}\n{{{b}}}\n");
    for (workers, batch) in [("1", "100000"), ("2", "1"), ("3", "2")] {
        let dir = run_files(
            events,
            &[bridge, delete, moved],
            &[
                "--window",
                "session:10s",
                "--workers",
                workers,
                "--batch-records",
                batch,
            ],
        );
        let read = |name: &str| fs::read_to_string(dir.path().join("out").join(name)).unwrap();
        assert_eq!(read("changelog.jsonl"), changelog, "{workers} worker(s)");
        assert_eq!(read("snapshot.jsonl"), snapshot, "{workers} worker(s)");
    }

    // The model agrees.
    let model = Model {
        scale: 6,
        windows: Windows::Session { gap: 10_000 },
    };
    let r = |id: &str, key: &str, ts, units: i128, delete, version, epoch: u64| Record {
        id: id.into(),
        key: key.into(),
        ts,
        units: units * 1_000_000,
        delete,
        version,
        position: (epoch, epoch as u32, 0),
    };
    let records = vec![
        r("a1", "k", 0, 1, false, 0, 0),
        r("a2", "k", 15_000, 2, false, 0, 0),
        r("b1", "b", 5_000, 9, false, 0, 0),
        r("a3", "k", 7_000, 4, false, 0, 1),
        r("a3", "k", 7_000, 4, true, 0, 2),
        r("a2", "k", 9_999, 2, false, 1, 3),
    ];
    let records: Vec<Record> = records
        .into_iter()
        .enumerate()
        .map(|(i, mut r)| {
            r.position.2 = i as u64;
            r
        })
        .collect();
    let sessions_of = |through| model.snapshot_jsonl(&model.table(&records, through));
    assert_eq!(
        sessions_of(1),
        format!("{{{merged}}}\n{{{b}}}\n"),
        "the model merges"
    );
    assert_eq!(
        sessions_of(2),
        format!("{{{first}}}\n{{{b}}}\n{{{second}}}\n"),
        "the model splits"
    );
    assert_eq!(sessions_of(3), snapshot);
}

/// The session generator does what it is for: in many cases two records that stay where they
/// are fall in different sessions in one epoch and in the same session in a later one (a
/// bridge), or the other way round (a split).
#[test]
fn session_cases_bridge_and_split() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let (mut merges, mut splits, cases) = (0, 0, 200);
    for _ in 0..cases {
        let case = session_case().new_tree(&mut runner).unwrap().current();
        let model = case.params.model();
        let Windows::Session { gap } = model.windows else {
            unreachable!()
        };
        // Per epoch: each current upsert's (id, key, ts) → the start of its session.
        let placed = |e: u64| -> BTreeMap<(String, String, i64), i64> {
            let current = model.current(&case.records, e);
            let live: Vec<&Record> = current.values().copied().filter(|r| !r.delete).collect();
            let sessions = reference::sessions(&live, gap);
            live.iter()
                .map(|r| {
                    let (start, _, _) = sessions
                        .keys()
                        .find(|(s, end, k)| *k == r.key && *s <= r.ts && r.ts < *end)
                        .unwrap();
                    ((r.id.clone(), r.key.clone(), r.ts), *start)
                })
                .collect()
        };
        let (mut merged, mut split) = (false, false);
        for e in 1..case.files.len() as u64 {
            let (before, after) = (placed(e - 1), placed(e));
            let stayed: Vec<_> = before.keys().filter(|r| after.contains_key(*r)).collect();
            for a in &stayed {
                for b in stayed.iter().filter(|b| a.1 == b.1) {
                    let together = |m: &BTreeMap<_, i64>| m[*a] == m[*b];
                    merged |= !together(&before) && together(&after);
                    split |= together(&before) && !together(&after);
                }
            }
        }
        merges += usize::from(merged);
        splits += usize::from(split);
    }
    assert!(
        merges >= cases / 8 && splits >= cases / 16,
        "of {cases} session cases, {merges} bridge and {splits} split sessions across epochs"
    );
}

/// A small history with lateness, by hand (tumbling:10s, out-of-orderness 1 s, allowed
/// lateness 5 s). Epoch 0 brings a1 at 1 s and a2 at 25 s, so epoch 1 is judged against
/// W = 24 s, H = 19 s: the window [0 s, 10 s) is closed and frozen with a1's value, a1 is
/// forgotten (expiry 10 s), a3 at 5 s is late; a1's correction to 21 s is its first record
/// again (its old value stays in the frozen window), and a2's delete retracts it.
const LIVE_EVENTS: &str = concat!(
    "{\"id\":\"a1\",\"key\":\"k\",\"ts\":1000,\"value\":1}\n",
    "{\"id\":\"a2\",\"key\":\"k\",\"ts\":25000,\"value\":2}\n",
);
const LIVE_FIXES: &str = concat!(
    "{\"id\":\"a3\",\"key\":\"k\",\"ts\":5000,\"value\":4}\n",
    "{\"id\":\"a1\",\"key\":\"k\",\"ts\":21000,\"value\":7,\"version\":1}\n",
    "{\"id\":\"a2\",\"key\":\"k\",\"ts\":25000,\"value\":2,\"op\":\"delete\"}\n",
);

fn live_rows() -> [String; 3] {
    let row = |start: &str, end: &str, v: &str| {
        format!(
            "\"window_start\":\"1970-01-01T00:00:{start}.000Z\",\"window_end\":\"1970-01-01T00:00:{end}.000Z\",\"key\":\"k\",\"count\":1,\"sum\":\"{v}\",\"min\":\"{v}\",\"max\":\"{v}\",\"mean\":\"{v}\""
        )
    };
    [
        row("00", "10", "1"),
        row("20", "30", "2"),
        row("20", "30", "7"),
    ]
}

#[test]
fn live_model_by_hand() {
    let model = Model {
        scale: 6,
        windows: Windows::Tumbling { size: 10_000 },
    };
    let r = |id: &str, ts, units: i128, delete, version, epoch: u64, offset| Record {
        id: id.into(),
        key: "k".into(),
        ts,
        units: units * 1_000_000,
        delete,
        version,
        position: (epoch, epoch as u32, offset),
    };
    let records = vec![
        r("a1", 1_000, 1, false, 0, 0, 0),
        r("a2", 25_000, 2, false, 0, 0, 42),
        r("a3", 5_000, 4, false, 0, 1, 0),
        r("a1", 21_000, 7, false, 1, 1, 42),
        r("a2", 25_000, 2, true, 0, 1, 97),
    ];
    let lateness = Lateness {
        out_of_orderness: 1_000,
        allowed: 5_000,
    };
    let live = model.live(&records, 2, lateness);
    let [first, a2, a1] = live_rows();
    assert_eq!(live.watermarks, vec![None, Some(24_000)]);
    assert_eq!(live.late.len(), 1);
    assert_eq!(
        (live.late[0].record.id.as_str(), live.late[0].watermark),
        ("a3", 24_000)
    );
    assert_eq!(
        model.snapshot_jsonl(&live.tables[0]),
        format!("{{{first}}}\n{{{a2}}}\n")
    );
    assert_eq!(
        model.snapshot_jsonl(&live.tables[1]),
        format!("{{{first}}}\n{{{a1}}}\n")
    );
    assert_eq!((live.forgotten, live.frozen), (1, 1));
    assert!(!live.exact(), "a1 was forgotten and came back");
    // A full recompute would have moved a1 out of [0 s, 10 s).
    let full = model.table(
        &records[..2]
            .iter()
            .chain(&records[3..])
            .cloned()
            .collect::<Vec<_>>(),
        1,
    );
    assert_eq!(model.snapshot_jsonl(&full), format!("{{{a1}}}\n"));
}

#[test]
fn live_pipeline_by_hand() {
    let [first, a2, a1] = live_rows();
    let line = |epoch: u64, diff: i64, body: &str| {
        format!("{{\"epoch\":{epoch},\"diff\":{diff},{body}}}\n")
    };
    let changelog = [
        line(0, 1, &first),
        line(0, 1, &a2),
        line(1, -1, &a2),
        line(1, 1, &a1),
    ]
    .concat();
    for (workers, batch) in [("1", "100000"), ("2", "1")] {
        let dir = run_files(
            LIVE_EVENTS,
            &[LIVE_FIXES],
            &[
                "--window",
                "tumbling:10s",
                "--max-out-of-orderness",
                "1s",
                "--allowed-lateness",
                "5s",
                "--workers",
                workers,
                "--batch-records",
                batch,
            ],
        );
        let read = |name: &str| fs::read_to_string(dir.path().join("out").join(name)).unwrap();
        assert_eq!(read("changelog.jsonl"), changelog);
        assert_eq!(read("snapshot.jsonl"), format!("{{{first}}}\n{{{a1}}}\n"));
        let late: serde_json::Value = serde_json::from_str(read("late.jsonl").trim()).unwrap();
        let source = dir.path().join("epoch1.jsonl").display().to_string();
        assert_eq!(
            late,
            serde_json::json!({
                "source": source, "epoch": 1, "offset": 0, "id": "a3", "key": "k",
                "ts": "1970-01-01T00:00:05.000Z", "value": "4", "op": "upsert", "version": 0,
                "watermark": "1970-01-01T00:00:24.000Z",
            })
        );
        let summary: serde_json::Value = serde_json::from_str(&read("summary.json")).unwrap();
        assert_eq!(summary["records_late"], 1);
        assert_eq!(summary["records_accepted"], 5);
    }
}
