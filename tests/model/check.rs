//! Running the real pipeline in-process on a case, and comparing its outputs with the model.
//!
//! Every comparison returns `Err` with a readable difference (the first differing rows or
//! lines, and the input files of small cases) rather than a bare assertion.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::history::Case;
use super::reference::{Live, Model, Record, Table, duration, rfc3339};

/// How to run the pipeline.
#[derive(Copy, Clone, Debug)]
pub struct Options {
    pub workers: usize,
    pub batch: u64,
    pub csv: bool,
}

/// The files a run writes.
#[derive(Clone, Debug)]
pub struct Outputs {
    pub changelog: String,
    pub snapshot: String,
    pub dead: String,
    pub digests: String,
    pub summary: Value,
    /// `late.jsonl`, if the run wrote one.
    pub late: Option<String>,
}

/// Writes the case's files into `dir`, one per epoch; returns their paths.
pub fn write_inputs(case: &Case, dir: &Path) -> Vec<PathBuf> {
    fs::create_dir_all(dir).unwrap();
    let paths: Vec<PathBuf> = (0..case.files.len())
        .map(|i| {
            let ext = if case.is_csv(i) { "csv" } else { "jsonl" };
            dir.join(format!("epoch{i}.{ext}"))
        })
        .collect();
    for (path, bytes) in paths.iter().zip(&case.files) {
        fs::write(path, bytes).unwrap();
    }
    paths
}

/// Runs `amend aggregate` on the files, writing into `out`, and reads what it wrote.
pub fn run(case: &Case, inputs: &[PathBuf], out: &Path, opts: Options) -> Result<Outputs, String> {
    run_with(case, inputs, out, opts, &[])
}

/// As [`run`], reading only the first `inputs` of the case's files (as `--input`, then
/// `--corrections`, where the case splits them), with `extra` flags.
pub fn run_with(
    case: &Case,
    inputs: &[PathBuf],
    out: &Path,
    opts: Options,
    extra: &[String],
) -> Result<Outputs, String> {
    let p = &case.params;
    let text = |p: &PathBuf| p.display().to_string();
    let split = p.inputs.clamp(1, inputs.len());
    let mut args: Vec<String> = vec!["amend".into(), "aggregate".into(), "--input".into()];
    args.extend(inputs[..split].iter().map(text));
    if split < inputs.len() {
        args.push("--corrections".into());
        args.extend(inputs[split..].iter().map(text));
    }
    args.extend(extra.iter().cloned());
    for (flag, value) in [
        ("--window", Some(p.windows.flag())),
        ("--out", Some(out.display().to_string())),
        ("--workers", Some(opts.workers.to_string())),
        ("--batch-records", Some(opts.batch.to_string())),
        ("--scale", p.scale.map(|s| s.to_string())),
        ("--max-line-bytes", p.max_line.map(|m| m.to_string())),
        ("--snapshot-format", opts.csv.then(|| "csv".to_string())),
        (
            "--max-out-of-orderness",
            p.lateness.map(|l| duration(l.out_of_orderness)),
        ),
        (
            "--allowed-lateness",
            p.lateness.map(|l| duration(l.allowed)),
        ),
    ] {
        if let Some(value) = value {
            args.push(flag.into());
            args.push(value);
        }
    }
    args.push("--quiet".into());
    amend::run_args(&args).map_err(|e| {
        format!(
            "the pipeline failed ({args:?}, {opts:?}): {e:#}\n{}",
            case.dump()
        )
    })?;
    let read = |name: &str| {
        fs::read_to_string(out.join(name)).map_err(|e| format!("cannot read {name}: {e}"))
    };
    let snapshot = if opts.csv {
        "snapshot.csv"
    } else {
        "snapshot.jsonl"
    };
    Ok(Outputs {
        changelog: read("changelog.jsonl")?,
        snapshot: read(snapshot)?,
        dead: read("dead_letter.jsonl")?,
        digests: read("digests.json")?,
        summary: serde_json::from_str(&read("summary.json")?).map_err(|e| e.to_string())?,
        late: fs::read_to_string(out.join("late.jsonl")).ok(),
    })
}

/// Runs the case once per option set, checks the first run against the model and every
/// other run byte for byte against the first. Adds the input files to any failure.
pub fn check_case(case: &Case, runs: &[Options]) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let inputs = write_inputs(case, &dir.path().join("in"));
    let mut first: Option<(Options, Outputs)> = None;
    for (n, opts) in runs.iter().enumerate() {
        let outputs = run(case, &inputs, &dir.path().join(format!("out{n}")), *opts)?;
        let result = match &first {
            None => check_model(case, &inputs, &outputs, opts.csv),
            Some((base, expected)) => same_outputs(expected, &outputs)
                .map_err(|e| format!("{base:?} and {opts:?} wrote different outputs: {e}")),
        };
        result.map_err(|e| {
            let dump = case.dump();
            let dump = if dump.len() > 20_000 {
                format!(
                    "{}\n... ({} bytes of input in all)",
                    &dump[..20_000],
                    dump.len()
                )
            } else {
                dump
            };
            format!("{e}\n\nwith {opts:?} on this input:\n{dump}")
        })?;
        first.get_or_insert((*opts, outputs));
    }
    Ok(())
}

/// Properties (a), (b) and (d): the outputs of one run against the model.
pub fn check_model(
    case: &Case,
    inputs: &[PathBuf],
    out: &Outputs,
    csv: bool,
) -> Result<(), String> {
    let model = case.params.model();
    let epochs = case.files.len() as u64;
    let live = case
        .params
        .lateness
        .map(|lateness| model.live(&case.records, epochs, lateness));
    let tables: Vec<Table> = match &live {
        Some(live) => {
            check_live_model(case, live)?;
            live.tables.clone()
        }
        None => (0..epochs).map(|e| model.table(&case.records, e)).collect(),
    };
    let last = tables.last().unwrap();
    check_changelog(&model, &tables, &out.changelog)?;
    let snapshot = if csv {
        model.snapshot_csv(last)
    } else {
        model.snapshot_jsonl(last)
    };
    same_text("snapshot", &snapshot, &out.snapshot)?;
    let digests = model.digests(last);
    let actual: Value =
        serde_json::from_str(&out.digests).map_err(|e| format!("digests.json: {e}"))?;
    if actual != digests {
        return Err(format!(
            "digests.json differs from the model's:\n model: {}\n  pipeline: {}",
            serde_json::to_string_pretty(&digests).unwrap(),
            out.digests
        ));
    }
    check_dead_letters(case, inputs, &out.dead)?;
    let ids: Option<(u64, u64)> = match &live {
        Some(live) => {
            let late = out.late.as_deref().ok_or("the run wrote no late.jsonl")?;
            check_late(case, inputs, live, late)?;
            let s = &out.summary;
            if s["records_late"].as_u64() != Some(live.late.len() as u64) {
                return Err(format!(
                    "summary.json: records_late is {}, the model says {}\nsummary: {s}",
                    s["records_late"],
                    live.late.len()
                ));
            }
            // Forgetting an id retracts nothing; once a forgotten id comes back, "ids current"
            // is a matter of definition (see the report of this check), so it is only checked
            // for exact histories, where every definition agrees.
            match live.exact() {
                true => Some((live.ids.0 as u64, live.ids.1 as u64)),
                false => None,
            }
        }
        None => Some(model.id_counts(&case.records)),
    };
    let expected = [
        (
            "records_read",
            (case.records.len() + case.dead.len()) as u64,
        ),
        ("records_accepted", case.records.len() as u64),
        ("records_dead_lettered", case.dead.len() as u64),
        // No replay slice and no audit log: nothing is skipped or recovered.
        ("records_skipped", 0),
        ("audit_lines_skipped", 0),
        ("ids_only_in_audit", 0),
        ("epochs", case.files.len() as u64),
        ("rows", last.len() as u64),
        (
            "windows",
            digests["windows"].as_array().unwrap().len() as u64,
        ),
        ("changelog_lines", out.changelog.lines().count() as u64),
    ];
    let ids = ids.map(|(current, deleted)| [("ids_current", current), ("ids_deleted", deleted)]);
    let s = &out.summary;
    for (field, value) in expected.into_iter().chain(ids.into_iter().flatten()) {
        if s[field].as_u64() != Some(value) {
            return Err(format!(
                "summary.json: {field} is {}, the model says {value}\nsummary: {s}",
                s[field]
            ));
        }
    }
    let n = |f: &str| s[f].as_u64().unwrap_or(u64::MAX);
    if n("records_read")
        != n("records_accepted") + n("records_dead_lettered") + n("records_skipped")
    {
        return Err(format!(
            "summary.json: read != accepted + dead-lettered + skipped: {s}"
        ));
    }
    if s["table_digest"] != digests["table"] {
        return Err(format!(
            "summary.json: table_digest is not the model's digest: {s}"
        ));
    }
    Ok(())
}

/// The live model against itself: a history it calls exact has, after every epoch, the table
/// of a full recompute (docs/format.md sections 3 and 4) over its records that are not late.
pub fn check_live_model(case: &Case, live: &Live) -> Result<(), String> {
    if !live.exact() {
        return Ok(());
    }
    let model = case.params.model();
    let on_time: Vec<Record> = case
        .records
        .iter()
        .filter(|r| !live.late.iter().any(|l| l.record.position == r.position))
        .cloned()
        .collect();
    for (epoch, table) in live.tables.iter().enumerate() {
        let full = model.table(&on_time, epoch as u64);
        if *table != full {
            let (a, b) = (model.bodies(&full), model.bodies(table));
            return Err(format!(
                "the live model calls the history exact, yet its table of epoch {epoch} is not \
                 a full recompute over the records that are not late:\n{}\n{}",
                diff_tables(&a, &b),
                case.dump()
            ));
        }
    }
    Ok(())
}

/// `late.jsonl`: exactly the model's late records, in order (epochs ascending, by position
/// within an epoch), each with its source, position, fields and watermark.
fn check_late(case: &Case, inputs: &[PathBuf], live: &Live, text: &str) -> Result<(), String> {
    let model = case.params.model();
    let expected: Vec<Value> = live
        .late
        .iter()
        .map(|late| {
            let r = &late.record;
            serde_json::json!({
                "source": inputs[r.position.1 as usize].display().to_string(),
                "epoch": r.position.0,
                "offset": r.position.2,
                "id": r.id,
                "key": r.key,
                "ts": rfc3339(r.ts),
                "value": model.decimal(r.units),
                "op": if r.delete { "delete" } else { "upsert" },
                "version": r.version,
                "watermark": rfc3339(late.watermark),
            })
        })
        .collect();
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let v: Value = serde_json::from_str(line)
            .map_err(|e| format!("late.jsonl line {}: {e}: {line}", i + 1))?;
        match expected.get(i) {
            Some(e) if *e == v => {}
            Some(e) => {
                return Err(format!(
                    "late.jsonl line {} differs from the model's:\n  expected: {e}\n  got:      {line}",
                    i + 1
                ));
            }
            None => {
                return Err(format!(
                    "late.jsonl has {} lines, the model expects {}; first extra: {line}",
                    lines.len(),
                    expected.len()
                ));
            }
        }
    }
    if lines.len() < expected.len() {
        return Err(format!(
            "late.jsonl has {} lines, the model expects {}; first missing: {}",
            lines.len(),
            expected.len(),
            expected[lines.len()]
        ));
    }
    Ok(())
}

type RowId = (String, String, String);

/// One parsed changelog line.
struct Change<'a> {
    n: usize,
    epoch: u64,
    diff: i64,
    id: RowId,
    body: &'a str,
    line: &'a str,
}

/// Property (a): the changelog replays, epoch by epoch, to the model's table of that epoch.
fn check_changelog(model: &Model, tables: &[Table], text: &str) -> Result<(), String> {
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("changelog.jsonl does not end with a newline".into());
    }
    let mut changes = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let bad = |why: &str| format!("changelog line {}: {why}: {line}", n + 1);
        let v: Value = serde_json::from_str(line).map_err(|e| bad(&e.to_string()))?;
        let (Some(epoch), Some(diff)) = (v["epoch"].as_u64(), v["diff"].as_i64()) else {
            return Err(bad("no integer epoch and diff"));
        };
        let prefix = format!("{{\"epoch\":{epoch},\"diff\":{diff},");
        let body = line
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix('}'))
            .ok_or_else(|| bad("does not start with {\"epoch\":E,\"diff\":D,"))?;
        let field = |name: &str| v[name].as_str().map(str::to_string);
        let (Some(start), Some(end), Some(key)) =
            (field("window_start"), field("window_end"), field("key"))
        else {
            return Err(bad("no window_start, window_end and key strings"));
        };
        if diff != 1 && diff != -1 {
            return Err(bad("diff is neither 1 nor -1"));
        }
        if epoch >= tables.len() as u64 {
            return Err(bad("no such epoch"));
        }
        if let Some(prev) = changes.last() {
            let prev: &Change = prev;
            if (prev.epoch, prev.diff) > (epoch, diff) {
                return Err(format!(
                    "changelog lines {} and {} are out of order (epochs ascending, retractions \
                     before insertions within an epoch):\n  {}\n  {line}",
                    prev.n + 1,
                    n + 1,
                    prev.line
                ));
            }
        }
        changes.push(Change {
            n,
            epoch,
            diff,
            id: (start, end, key),
            body,
            line,
        });
    }
    let mut replay: BTreeMap<RowId, String> = BTreeMap::new();
    let mut before = BTreeMap::new();
    for (epoch, table) in tables.iter().enumerate() {
        let expected = model.bodies(table);
        let mine: Vec<&Change> = changes.iter().filter(|c| c.epoch == epoch as u64).collect();
        if expected == before && !mine.is_empty() {
            return Err(format!(
                "epoch {epoch} changes no row of the model's table, yet the changelog has {} \
                 line(s) for it, first: {}",
                mine.len(),
                mine[0].line
            ));
        }
        let retracted: BTreeSet<(&RowId, &str)> = mine
            .iter()
            .filter(|c| c.diff < 0)
            .map(|c| (&c.id, c.body))
            .collect();
        if let Some(c) = mine
            .iter()
            .find(|c| c.diff > 0 && retracted.contains(&(&c.id, c.body)))
        {
            return Err(format!(
                "epoch {epoch} retracts and re-inserts the same row (not a change): {}",
                c.line
            ));
        }
        for c in &mine {
            if c.diff < 0 {
                if replay.get(&c.id).map(String::as_str) != Some(c.body) {
                    return Err(format!(
                        "changelog line {} retracts a row that is not in the table replayed so \
                         far:\n  {}\n  the replayed table has: {:?}",
                        c.n + 1,
                        c.line,
                        replay.get(&c.id)
                    ));
                }
                replay.remove(&c.id);
            } else if let Some(old) = replay.insert(c.id.clone(), c.body.to_string()) {
                return Err(format!(
                    "changelog line {} inserts a row whose (window, key) is already in the \
                     table:\n  {}\n  present: {old}",
                    c.n + 1,
                    c.line
                ));
            }
        }
        if replay != expected {
            return Err(format!(
                "replaying changelog epochs 0..={epoch} does not give the model's table of \
                 those epochs:\n{}",
                diff_tables(&expected, &replay)
            ));
        }
        before = expected;
    }
    Ok(())
}

/// The first few differences between two tables, model first.
fn diff_tables(model: &BTreeMap<RowId, String>, actual: &BTreeMap<RowId, String>) -> String {
    let mut out = Vec::new();
    for (id, body) in model {
        match actual.get(id) {
            None => out.push(format!("  only in the model:    {{{body}}}")),
            Some(other) if other != body => out.push(format!(
                "  differs: model    {{{body}}}\n           pipeline {{{other}}}"
            )),
            _ => {}
        }
    }
    for (id, body) in actual {
        if !model.contains_key(id) {
            out.push(format!("  only in the pipeline: {{{body}}}"));
        }
    }
    let total = out.len();
    out.truncate(8);
    format!(
        "{}\n  ({total} difference(s); model {} rows, pipeline {} rows)",
        out.join("\n"),
        model.len(),
        actual.len()
    )
}

/// Compares two texts, showing the first differing line.
fn same_text(what: &str, expected: &str, actual: &str) -> Result<(), String> {
    if expected == actual {
        return Ok(());
    }
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let i = (0..e.len().max(a.len()))
        .find(|i| e.get(*i) != a.get(*i))
        .unwrap_or(e.len());
    Err(format!(
        "{what} differs at line {} (expected {} lines, got {}):\n  expected: {:?}\n  got:      {:?}",
        i + 1,
        e.len(),
        a.len(),
        e.get(i),
        a.get(i)
    ))
}

/// Property (d), dead letters: exactly the bad lines, with source, epoch, offset, line and raw
/// text, in position order, and a reason that names what is wrong.
fn check_dead_letters(case: &Case, inputs: &[PathBuf], text: &str) -> Result<(), String> {
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let v: Value = serde_json::from_str(line)
            .map_err(|e| format!("dead_letter.jsonl line {}: {e}: {line}", i + 1))?;
        let Some(d) = case.dead.get(i) else {
            return Err(format!(
                "dead_letter.jsonl has {} lines, the model expects {}; first extra: {line}",
                lines.len(),
                case.dead.len()
            ));
        };
        let expected = serde_json::json!({
            "source": inputs[d.file].display().to_string(),
            "epoch": d.file,
            "offset": d.offset,
            "line": d.line,
            "raw": d.raw,
        });
        let actual = serde_json::json!({
            "source": v["source"], "epoch": v["epoch"], "offset": v["offset"],
            "line": v["line"], "raw": v["raw"],
        });
        let reason = v["reason"].as_str().unwrap_or("");
        let names_it = d.hint.is_none_or(|hint| reason.contains(hint));
        if actual != expected || reason.is_empty() || !names_it {
            return Err(format!(
                "dead letter {} differs from the model's:\n  expected: {expected}{}\n  got:      {line}",
                i + 1,
                d.hint
                    .map(|h| format!(" with a reason mentioning {h:?}"))
                    .unwrap_or_default()
            ));
        }
    }
    if lines.len() < case.dead.len() {
        let d = &case.dead[lines.len()];
        return Err(format!(
            "dead_letter.jsonl has {} lines, the model expects {}; first missing: file {} \
             line {} offset {} raw {:?}",
            lines.len(),
            case.dead.len(),
            d.file,
            d.line,
            d.offset,
            d.raw
        ));
    }
    Ok(())
}

/// Property (c): two runs wrote the same bytes (and the same summary counts).
pub fn same_outputs(a: &Outputs, b: &Outputs) -> Result<(), String> {
    same_text("changelog.jsonl", &a.changelog, &b.changelog)?;
    same_text("snapshot", &a.snapshot, &b.snapshot)?;
    same_text("dead_letter.jsonl", &a.dead, &b.dead)?;
    same_text("digests.json", &a.digests, &b.digests)?;
    same_text(
        "late.jsonl",
        a.late.as_deref().unwrap_or(""),
        b.late.as_deref().unwrap_or(""),
    )?;
    let strip = |s: &Value| {
        let mut s = s.clone();
        for field in [
            "elapsed_seconds",
            "records_per_second",
            "workers",
            "epoch_latency_ms_p50",
            "epoch_latency_ms_p99",
            "run_records_read",
            "resumed_after_epoch",
        ] {
            s.as_object_mut().map(|o| o.remove(field));
        }
        s
    };
    if strip(&a.summary) != strip(&b.summary) {
        return Err(format!("summary.json: {} vs {}", a.summary, b.summary));
    }
    Ok(())
}
