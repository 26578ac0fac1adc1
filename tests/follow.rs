//! End-to-end tests of follow mode: `amend aggregate --follow` runs as a child process while
//! the test appends to its inputs, and every output it flushes is checked against the reference
//! model of the data contract (`model/reference.rs`).
//!
//! Run them with `cargo test -p amend --test follow`.
//!
//! What they guard (design 0002, docs/format.md sections 2, 3, 6 and 7):
//!
//! - each newly appended run of complete lines becomes an epoch; a partial last line is not
//!   read until its newline arrives; a new file in a followed directory is an epoch of its own,
//!   in name order, and a `.gz` file is read whole;
//! - `epochs.jsonl` names each epoch's file and byte range `[start, end)`; the ranges of a file
//!   are contiguous from 0 to its length, and their `records` add up to the lines written, so
//!   every record is read exactly once;
//! - once an epoch is in `epochs.jsonl`, its changelog lines are flushed: the changelog,
//!   replayed epoch by epoch, equals the model's full recompute after every epoch;
//! - `snapshot.jsonl` and `digests.json` are rewritten while running and equal the model's;
//! - SIGTERM and SIGINT finish the epoch, write every output, and exit 0; the end of standard
//!   input (`--input -`) ends the run with exit code 0;
//! - a bad flag or a missing input exits 2 or 1 with one line on stderr, never a panic.
//!
//! Waits poll the output files with a generous timeout: they never assert on how fast amend
//! is, only on what it eventually writes. Signals are sent with the system `kill` command.

#[allow(dead_code)]
#[path = "model/reference.rs"]
mod reference;
#[allow(dead_code)]
#[path = "e2e/util.rs"]
mod util;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use reference::{Model, Record, Windows, canonical, rfc3339};
use util::{AMEND, TestDir, diff};

/// How long a wait may take before the test fails: generous, for a loaded machine.
const TIMEOUT: Duration = Duration::from_secs(60);
/// How often a wait looks at the output files.
const POLL: Duration = Duration::from_millis(10);
/// 2026-11-20T10:00:00Z.
const T0: i64 = 1_795_168_800_000;
const MINUTE: i64 = 60_000;
/// The scale of `--scale`'s default.
const SCALE: u32 = 6;
/// The window of every run.
const WINDOW: Windows = Windows::Tumbling { size: MINUTE };

/// The flags of every follow run but the inputs.
const FOLLOW: [&str; 9] = [
    "--follow",
    "--window",
    "tumbling:1m",
    "--out",
    "out",
    "--quiet",
    "--poll-interval",
    "5ms",
    "--snapshot-interval=200ms",
];

fn model() -> Model {
    Model {
        scale: SCALE,
        windows: WINDOW,
    }
}

/// A valid record as the test writes it.
#[derive(Clone, Debug)]
struct Rec {
    id: &'static str,
    key: &'static str,
    ts: i64,
    /// Value in units of 10^-6.
    units: i128,
    version: u64,
    delete: bool,
}

/// An upsert at version 0 of `value` whole units.
fn rec(id: &'static str, key: &'static str, ts: i64, value: i64) -> Rec {
    Rec {
        id,
        key,
        ts,
        units: i128::from(value) * 1_000_000,
        version: 0,
        delete: false,
    }
}

impl Rec {
    fn version(self, version: u64) -> Rec {
        Rec { version, ..self }
    }

    fn deleted(self) -> Rec {
        Rec {
            delete: true,
            ..self
        }
    }

    /// The JSON line, without its newline.
    fn line(&self) -> String {
        let op = if self.delete { r#","op":"delete""# } else { "" };
        format!(
            r#"{{"id":"{}","key":"{}","ts":"{}","value":{},"version":{}{op}}}"#,
            self.id,
            self.key,
            rfc3339(self.ts),
            canonical(self.units, SCALE),
            self.version,
        )
    }
}

/// One line the test wrote into an input.
#[derive(Clone, Debug)]
struct Written {
    /// The file name (not the path): how `epochs.jsonl` names the source, up to a directory.
    file: String,
    /// Byte offset of the line's start in the file (or in standard input).
    offset: u64,
    /// `None` for a bad line.
    rec: Option<Rec>,
}

/// One line of `epochs.jsonl`.
#[derive(Clone, Debug)]
struct Epoch {
    epoch: u64,
    /// The file name of `source`.
    file: String,
    start: Option<u64>,
    end: Option<u64>,
    records: u64,
    json: Value,
}

/// The complete lines of `text` (a line still being written is left out).
fn complete_lines(text: &str) -> impl Iterator<Item = &str> {
    let complete = text.rfind('\n').map_or("", |end| &text[..=end]);
    complete.lines()
}

fn file_name(source: &str) -> String {
    Path::new(source)
        .file_name()
        .map_or_else(|| source.to_string(), |n| n.to_string_lossy().into_owned())
}

/// A running `amend aggregate --follow`, the inputs the test wrote to it, and its outputs.
struct Follow {
    dir: TestDir,
    child: Child,
    stdin: Option<ChildStdin>,
    /// Every line written, in the order written.
    written: Vec<Written>,
    /// Bytes written per file name (`-` for standard input).
    sizes: BTreeMap<String, u64>,
    /// Where each file name lives.
    paths: BTreeMap<String, PathBuf>,
    command: String,
}

impl Follow {
    /// Starts `amend aggregate ARGS` in `dir` (stdin piped, stdout and stderr into files).
    fn start(dir: TestDir, args: &[&str]) -> Follow {
        let mut cmd = Command::new(AMEND);
        cmd.arg("aggregate")
            .args(args)
            .current_dir(dir.path())
            .stdin(Stdio::piped())
            .stdout(File::create(dir.join("stdout.txt")).unwrap())
            .stderr(File::create(dir.join("stderr.txt")).unwrap());
        let command = format!("amend aggregate {}", args.join(" "));
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command}: {e}"));
        let stdin = child.stdin.take();
        Follow {
            dir,
            child,
            stdin,
            written: Vec::new(),
            sizes: BTreeMap::new(),
            paths: BTreeMap::new(),
            command,
        }
    }

    /// Notes that `name` (in `path`) already holds `lines` (its contents before the start).
    fn existing(dir: &TestDir, path: &str, lines: &[Result<Rec, &str>]) -> (Vec<Written>, u64) {
        let mut text = String::new();
        let mut written = Vec::new();
        let file = file_name(path);
        for line in lines {
            written.push(Written {
                file: file.clone(),
                offset: text.len() as u64,
                rec: line.as_ref().ok().cloned(),
            });
            match line {
                Ok(rec) => text += &rec.line(),
                Err(bad) => text += bad,
            }
            text.push('\n');
        }
        dir.create(path, &text);
        (written, text.len() as u64)
    }

    /// Starts amend on input files written before it starts: `files` are (path in the test
    /// directory, lines), in the order amend reads them.
    fn with_files(files: &[(&str, &[Result<Rec, &str>])], args: &[&str]) -> Follow {
        let dir = TestDir::new();
        let mut written = Vec::new();
        let mut sizes = BTreeMap::new();
        let mut paths = BTreeMap::new();
        for (path, lines) in files {
            let (mut w, size) = Follow::existing(&dir, path, lines);
            written.append(&mut w);
            sizes.insert(file_name(path), size);
            paths.insert(file_name(path), dir.join(path));
        }
        let mut follow = Follow::start(dir, args);
        follow.written = written;
        follow.sizes = sizes;
        follow.paths = paths;
        follow
    }

    /// Appends raw bytes to file `name` (or to standard input for `-`), flushed.
    fn write(&mut self, name: &str, bytes: &[u8]) {
        if name == "-" {
            let stdin = self.stdin.as_mut().expect("standard input is open");
            stdin.write_all(bytes).unwrap();
            stdin.flush().unwrap();
        } else {
            let mut f = OpenOptions::new()
                .append(true)
                .open(&self.paths[name])
                .unwrap();
            f.write_all(bytes).unwrap();
            f.flush().unwrap();
        }
        *self.sizes.entry(name.to_string()).or_default() += bytes.len() as u64;
    }

    /// Appends lines (records, or bad lines as `Err(text)`) to `name` in one write.
    fn append(&mut self, name: &str, lines: &[Result<Rec, &str>]) {
        let mut bytes = String::new();
        let start = self.sizes.get(name).copied().unwrap_or(0);
        for line in lines {
            self.written.push(Written {
                file: name.to_string(),
                offset: start + bytes.len() as u64,
                rec: line.as_ref().ok().cloned(),
            });
            match line {
                Ok(rec) => bytes += &rec.line(),
                Err(bad) => bytes += bad,
            }
            bytes.push('\n');
        }
        self.write(name, bytes.as_bytes());
    }

    /// Starts a record's line in `name` without finishing it; returns the rest to write.
    fn append_partial(&mut self, name: &str, rec: Rec, cut: usize) -> String {
        let line = rec.line() + "\n";
        let offset = self.sizes.get(name).copied().unwrap_or(0);
        self.written.push(Written {
            file: name.to_string(),
            offset,
            rec: Some(rec),
        });
        self.write(name, &line.as_bytes()[..cut]);
        line[cut..].to_string()
    }

    fn out(&self, name: &str) -> PathBuf {
        self.dir.join("out").join(name)
    }

    /// An output file's text, empty if it does not exist yet.
    fn read_out(&self, name: &str) -> String {
        fs::read_to_string(self.out(name)).unwrap_or_default()
    }

    /// The complete lines of `epochs.jsonl`.
    fn epochs(&self) -> Vec<Epoch> {
        complete_lines(&self.read_out("epochs.jsonl"))
            .map(|line| {
                let json: Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("epochs.jsonl: {e}: {line}"));
                let number = |name: &str| json[name].as_u64();
                Epoch {
                    epoch: number("epoch").unwrap_or_else(|| panic!("no epoch: {line}")),
                    file: file_name(
                        json["source"]
                            .as_str()
                            .unwrap_or_else(|| panic!("no source: {line}")),
                    ),
                    start: number("start"),
                    end: number("end"),
                    records: number("records").unwrap_or_else(|| panic!("no records: {line}")),
                    json,
                }
            })
            .collect()
    }

    /// What the test knows of the run, for a failure message.
    fn state(&mut self) -> String {
        let status = self.child.try_wait().ok().flatten();
        let mut text = format!(
            "command: {} (in {})\nstatus: {status:?}\n",
            self.command,
            self.dir.path().display()
        );
        for name in ["stderr.txt", "stdout.txt"] {
            text += &format!("--- {name} ---\n{}\n", self.dir.read(name));
        }
        for name in ["epochs.jsonl", "changelog.jsonl", "dead_letter.jsonl"] {
            let body = self.read_out(name);
            let tail: Vec<&str> = body.lines().rev().take(20).collect();
            text += &format!("--- out/{name} (last lines, newest first) ---\n");
            for line in tail {
                text += line;
                text.push('\n');
            }
        }
        text += "--- written ---\n";
        for w in &self.written {
            text += &format!(
                "{} @{}: {:?}\n",
                w.file,
                w.offset,
                w.rec.as_ref().map(Rec::line)
            );
        }
        text
    }

    /// Polls `ready` until it gives a value; fails after `TIMEOUT`, or if amend exits first.
    #[track_caller]
    fn wait_for<T>(&mut self, what: &str, mut ready: impl FnMut(&Follow) -> Option<T>) -> T {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(value) = ready(self) {
                return value;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // It may have written what we wait for just before exiting.
                if let Some(value) = ready(self) {
                    return value;
                }
                panic!(
                    "amend exited ({status}) while waiting for {what}\n{}",
                    self.state()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out after {TIMEOUT:?} waiting for {what}\n{}",
                    self.state()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits until `epochs.jsonl` covers file `name` to its current length; returns the epochs.
    #[track_caller]
    fn wait_read(&mut self, name: &str) -> Vec<Epoch> {
        let size = self.sizes[name];
        let what = format!("an epoch of {name} ending at byte {size}");
        self.wait_for(&what, |f| {
            let epochs = f.epochs();
            let done = epochs.iter().any(|e| e.file == name && e.end == Some(size));
            done.then_some(epochs)
        })
    }

    /// Waits until the epochs hold `n` records in all.
    #[track_caller]
    fn wait_records(&mut self, n: u64) -> Vec<Epoch> {
        self.wait_for(&format!("epochs with {n} records in all"), |f| {
            let epochs = f.epochs();
            (epochs.iter().map(|e| e.records).sum::<u64>() >= n).then_some(epochs)
        })
    }

    /// Sends a signal (`TERM`, `INT`) with the system `kill` command.
    fn signal(&mut self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("cannot run kill");
        assert!(status.success(), "kill -{signal} failed\n{}", self.state());
    }

    /// Waits for amend to exit and asserts it exited 0 with an empty stderr.
    #[track_caller]
    fn expect_clean_exit(&mut self) {
        self.stdin = None; // the end of standard input, if it reads it
        let deadline = Instant::now() + TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                panic!("amend did not exit within {TIMEOUT:?}\n{}", self.state());
            }
            std::thread::sleep(POLL);
        };
        assert_eq!(
            status.code(),
            Some(0),
            "exit status {status}\n{}",
            self.state()
        );
        let stderr = self.dir.read("stderr.txt");
        assert!(stderr.is_empty(), "stderr is not empty\n{}", self.state());
    }

    /// The model's records: each written line placed in the epoch whose range holds it.
    /// Panics if a line is in no epoch or in two.
    fn records(&self, epochs: &[Epoch]) -> Vec<Record> {
        let mut records = Vec::new();
        for w in &self.written {
            let holders: Vec<&Epoch> = epochs
                .iter()
                .filter(|e| {
                    e.file == w.file
                        && e.start.unwrap_or(0) <= w.offset
                        && e.end.is_none_or(|end| w.offset < end)
                })
                .collect();
            assert_eq!(
                holders.len(),
                1,
                "the line at byte {} of {} is in {} epochs: {:?}",
                w.offset,
                w.file,
                holders.len(),
                holders.iter().map(|e| &e.json).collect::<Vec<_>>()
            );
            if let Some(r) = &w.rec {
                records.push(record(r, holders[0].epoch, w.offset));
            }
        }
        records
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        // A failed test must not leave amend running.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The model's view of a record read in `epoch` at `offset`.
fn record(r: &Rec, epoch: u64, offset: u64) -> Record {
    Record {
        id: r.id.to_string(),
        key: r.key.to_string(),
        ts: r.ts,
        units: r.units,
        delete: r.delete,
        version: r.version,
        position: (epoch, 0, offset),
    }
}

/// Checks `epochs.jsonl` on its own: epochs numbered 0, 1, 2, ... in order; each file's ranges
/// contiguous from 0; records counted per range; times and latencies well formed.
#[track_caller]
fn check_epochs(follow: &Follow, epochs: &[Epoch]) {
    let mut next_start: BTreeMap<&str, u64> = BTreeMap::new();
    for (n, e) in epochs.iter().enumerate() {
        let at = format!("epochs.jsonl line {}: {}", n + 1, e.json);
        assert_eq!(e.epoch, n as u64, "epochs are numbered in order\n{at}");
        if let Some(end) = e.end {
            let start = e
                .start
                .unwrap_or_else(|| panic!("an end but no start\n{at}"));
            let expected = next_start.get(e.file.as_str()).copied().unwrap_or(0);
            assert_eq!(
                start, expected,
                "a file's ranges are contiguous from 0\n{at}"
            );
            assert!(start < end, "an epoch's range is not empty\n{at}");
            next_start.insert(&e.file, end);
        }
        let lines = follow
            .written
            .iter()
            .filter(|w| {
                w.file == e.file
                    && e.start.unwrap_or(0) <= w.offset
                    && e.end.is_none_or(|end| w.offset < end)
            })
            .count() as u64;
        assert_eq!(
            e.records, lines,
            "records = lines written in the range\n{at}"
        );
        for field in ["read_at", "flushed_at"] {
            let text = e.json[field].as_str().unwrap_or("");
            assert!(
                text.len() == 24 && text.ends_with('Z'),
                "{field} is RFC 3339 UTC with milliseconds\n{at}"
            );
        }
        assert!(
            e.json["read_at"].as_str() <= e.json["flushed_at"].as_str(),
            "read before flushed\n{at}"
        );
        let latency = e.json["latency_ms"].as_f64();
        assert!(latency.is_some_and(|l| l >= 0.0), "latency_ms\n{at}");
        for field in ["late", "state_ids", "state_groups"] {
            assert!(e.json[field].is_u64(), "{field} is a count\n{at}");
        }
        let watermark = &e.json["watermark"];
        assert!(
            watermark.is_null() || watermark.is_string(),
            "watermark is null or a time\n{at}"
        );
    }
    if let Some(first) = epochs.first() {
        assert!(
            first.json["watermark"].is_null(),
            "no watermark before the first record: {}",
            first.json
        );
    }
}

/// A changelog line: its epoch, diff, row identity and row body (the fields after `diff`).
type Change = (u64, i64, (String, String, String), String);

fn parse_changelog(text: &str) -> Vec<Change> {
    complete_lines(text)
        .map(|line| {
            let v: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("changelog: {e}: {line}"));
            let (epoch, diff) = (v["epoch"].as_u64().unwrap(), v["diff"].as_i64().unwrap());
            let body = line
                .strip_prefix(&format!("{{\"epoch\":{epoch},\"diff\":{diff},"))
                .and_then(|rest| rest.strip_suffix('}'))
                .unwrap_or_else(|| panic!("changelog line not in the changelog format: {line}"));
            let field = |name: &str| v[name].as_str().unwrap().to_string();
            let id = (field("window_start"), field("window_end"), field("key"));
            (epoch, diff, id, body.to_string())
        })
        .collect()
}

/// Prefix consistency: the changelog, replayed epoch by epoch, equals the model's full
/// recompute after each epoch of `epochs` (output of later epochs, possibly still being
/// written, is left out).
#[track_caller]
fn check_changelog(follow: &Follow, epochs: &[Epoch], changelog: &str) {
    let model = model();
    let records = follow.records(epochs);
    let changes = parse_changelog(changelog);
    let mut table: BTreeMap<(String, String, String), String> = BTreeMap::new();
    let mut last = (0, -1);
    for e in epochs {
        for (epoch, diff, id, body) in changes.iter().filter(|c| c.0 == e.epoch) {
            assert!(
                (*epoch, *diff) >= last,
                "changelog lines in epoch order, retractions first"
            );
            last = (*epoch, *diff);
            if *diff < 0 {
                let old = table.remove(id);
                assert_eq!(
                    old.as_ref(),
                    Some(body),
                    "epoch {epoch} retracts a row not there"
                );
            } else {
                let old = table.insert(id.clone(), body.clone());
                assert_eq!(
                    old, None,
                    "epoch {epoch} inserts a row already there: {body}"
                );
            }
        }
        let expected = model.bodies(&model.table(&records, e.epoch));
        if expected != table {
            let show = |t: &BTreeMap<_, String>| -> String {
                t.values().map(|b| format!("{{{b}}}\n")).collect()
            };
            panic!(
                "the changelog replayed through epoch {} differs from the model:\n{}\n{}",
                e.epoch,
                diff(&show(&expected), &show(&table)).unwrap_or_default(),
                epochs
                    .iter()
                    .map(|e| format!("{}\n", e.json))
                    .collect::<String>()
            );
        }
    }
}

/// After a new epoch is flushed: `epochs.jsonl` then the changelog, read in that order, agree
/// with the model through the last epoch listed.
#[track_caller]
fn check_so_far(follow: &Follow, epochs: &[Epoch]) {
    let changelog = follow.read_out("changelog.jsonl");
    let digests = follow.read_out("digests_changelog.jsonl");
    check_epochs(follow, epochs);
    check_changelog(follow, epochs, &changelog);
    check_digests_changelog(follow, epochs, &digests);
}

/// digests_changelog.jsonl, replayed epoch by epoch, gives the model's window digests after
/// each epoch, and each epoch's lines carry the model's table digest: a window's line has the
/// digest it had before (`old`) and has now (`new`), and only windows that changed have one.
#[track_caller]
fn check_digests_changelog(follow: &Follow, epochs: &[Epoch], text: &str) {
    let model = model();
    let records = follow.records(epochs);
    let lines: Vec<Value> = complete_lines(text)
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let mut windows: BTreeMap<(i64, i64), String> = BTreeMap::new();
    for e in epochs {
        let expected = model.digests(&model.table(&records, e.epoch));
        for line in lines
            .iter()
            .filter(|l| l["epoch"].as_u64() == Some(e.epoch))
        {
            let ms =
                |f: &str| amend_operators::time::parse_rfc3339(line[f].as_str().unwrap()).unwrap();
            let window = (ms("window_start"), ms("window_end"));
            assert_eq!(
                windows.get(&window).map(String::as_str),
                line["old"].as_str(),
                "{line}"
            );
            assert_ne!(
                line["old"], line["new"],
                "a line for an unchanged window: {line}"
            );
            match line["new"].as_str() {
                Some(new) => windows.insert(window, new.to_string()),
                None => windows.remove(&window),
            };
            assert_eq!(
                line["table"], expected["table"],
                "epoch {}: {line}",
                e.epoch
            );
        }
        let want: BTreeMap<(i64, i64), String> = expected["windows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| {
                let window = (w["start"].as_i64().unwrap(), w["end"].as_i64().unwrap());
                (window, w["digest"].as_str().unwrap().to_string())
            })
            .collect();
        assert_eq!(
            windows, want,
            "window digests replayed through epoch {}",
            e.epoch
        );
    }
}

/// Waits until the periodically rewritten snapshot and digests equal the model's final table.
#[track_caller]
fn wait_for_snapshot(follow: &mut Follow, epochs: &[Epoch]) {
    let model = model();
    let records = follow.records(epochs);
    let table = model.table(&records, u64::MAX);
    let snapshot = model.snapshot_jsonl(&table);
    let digests = model.digests(&table);
    follow.wait_for("the snapshot and digests of the last epoch", |f| {
        let got: Option<Value> = serde_json::from_str(&f.read_out("digests.json")).ok();
        (f.read_out("snapshot.jsonl") == snapshot && got.as_ref() == Some(&digests)).then_some(())
    });
}

/// The checks of the outputs once amend has exited: the changelog, snapshot, digests, dead
/// letters and summary against the model.
#[track_caller]
fn check_final(follow: &Follow) {
    let epochs = follow.epochs();
    check_so_far(follow, &epochs);
    let model = model();
    let records = follow.records(&epochs);
    let table = model.table(&records, u64::MAX);
    let snapshot = follow.read_out("snapshot.jsonl");
    if let Some(d) = diff(&model.snapshot_jsonl(&table), &snapshot) {
        panic!("snapshot.jsonl differs from the model's table:\n{d}");
    }
    let digests: Value = serde_json::from_str(&follow.read_out("digests.json")).unwrap();
    assert_eq!(digests, model.digests(&table), "digests.json");
    let summary: Value = serde_json::from_str(&follow.read_out("summary.json")).unwrap();
    let lines = follow.written.len() as u64;
    let bad = follow.written.iter().filter(|w| w.rec.is_none()).count() as u64;
    let (current, deleted) = model.id_counts(&records);
    let expected = [
        ("records_read", lines),
        ("records_accepted", lines - bad),
        ("records_dead_lettered", bad),
        ("ids_current", current),
        ("ids_deleted", deleted),
        ("epochs", epochs.len() as u64),
        ("rows", table.len() as u64),
    ];
    for (field, value) in expected {
        assert_eq!(
            summary[field].as_u64(),
            Some(value),
            "summary.json {field}: {summary:#}"
        );
    }
    let (p50, p99) = (
        summary["epoch_latency_ms_p50"].as_f64(),
        summary["epoch_latency_ms_p99"].as_f64(),
    );
    assert!(
        matches!((p50, p99), (Some(a), Some(b)) if 0.0 <= a && a <= b),
        "summary.json epoch latencies: {summary:#}"
    );
    let dead = follow.read_out("dead_letter.jsonl");
    let dead: Vec<Value> = dead
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let bad_lines: Vec<&Written> = follow.written.iter().filter(|w| w.rec.is_none()).collect();
    assert_eq!(dead.len(), bad_lines.len(), "dead letters: {dead:?}");
    for (letter, w) in dead.iter().zip(bad_lines) {
        assert_eq!(
            file_name(letter["source"].as_str().unwrap()),
            w.file,
            "{letter}"
        );
        assert_eq!(letter["offset"].as_u64(), Some(w.offset), "{letter}");
        let epoch = epochs
            .iter()
            .find(|e| {
                e.file == w.file
                    && e.start.unwrap_or(0) <= w.offset
                    && e.end.is_none_or(|end| w.offset < end)
            })
            .unwrap()
            .epoch;
        assert_eq!(letter["epoch"].as_u64(), Some(epoch), "{letter}");
    }
}

#[test]
fn appended_lines_become_epochs_whose_changelog_matches_a_full_recompute() {
    let m = |n: i64| T0 + n * MINUTE;
    let a = rec("a", "k1", m(0) + 1_000, 10);
    let b = rec("b", "k1", m(0) + 20_000, 20);
    let c = rec("c", "k2", m(1) + 5_000, 5).version(1);
    let d = rec("d", "k2", m(2), 7);
    let events: &[Result<Rec, &str>] = &[Ok(a.clone()), Ok(b.clone()), Ok(c.clone())];
    let corrections: &[Result<Rec, &str>] = &[Ok(rec("b", "k1", m(0) + 20_000, 25))];
    let mut args = vec![
        "--input",
        "events.jsonl",
        "--corrections",
        "corrections.jsonl",
    ];
    args.extend(FOLLOW);
    let mut f = Follow::with_files(
        &[("events.jsonl", events), ("corrections.jsonl", corrections)],
        &args,
    );
    // The files present at the start: one epoch each, in input order.
    let epochs = f.wait_read("corrections.jsonl");
    assert_eq!(epochs.len(), 2, "one epoch per file at the start");
    assert_eq!(epochs[0].file, "events.jsonl");
    check_so_far(&f, &epochs);

    // A new event, a replay of `a`, and the first part of a line: only the complete lines
    // form the next epoch.
    f.append("events.jsonl", &[Ok(d.clone()), Ok(a.clone())]);
    let complete = f.sizes["events.jsonl"];
    let rest = f.append_partial("events.jsonl", rec("e", "k3", m(3), 1), 17);
    let epochs = f.wait_for("the complete appended lines", |f| {
        let epochs = f.epochs();
        let last = epochs.iter().rev().find(|e| e.file == "events.jsonl")?;
        (last.end >= Some(complete)).then_some(epochs)
    });
    let last = epochs
        .iter()
        .rev()
        .find(|e| e.file == "events.jsonl")
        .unwrap();
    assert_eq!(
        last.end,
        Some(complete),
        "a partial line is not read\n{}",
        last.json
    );
    assert_eq!(last.records, 2);
    // Its changelog is flushed already; the line is written only after its epoch is planned,
    // so that the check below does not count it.
    let partial = f.written.pop().unwrap();
    check_so_far(&f, &epochs);
    f.written.push(partial);

    // The rest of the line: now it is read, once.
    f.write("events.jsonl", rest.as_bytes());
    let epochs = f.wait_read("events.jsonl");
    check_so_far(&f, &epochs);

    // A same-version correction of `a` and a bad line.
    f.append(
        "corrections.jsonl",
        &[
            Ok(rec("a", "k1", m(0) + 1_000, 11)),
            Err("{\"id\":\"x\",\"key\":"),
        ],
    );
    let epochs = f.wait_read("corrections.jsonl");
    check_so_far(&f, &epochs);

    // A higher version moving `c` to another key and window, and a stale version of it.
    f.append(
        "corrections.jsonl",
        &[
            Ok(rec("c", "k1", m(0) + 30_000, 3).version(2)),
            Ok(rec("c", "k2", m(1), 99).version(1)),
        ],
    );
    let epochs = f.wait_read("corrections.jsonl");
    check_so_far(&f, &epochs);

    // A delete of `d`, then a late event into the first window.
    f.append("corrections.jsonl", &[Ok(d.clone().deleted())]);
    let epochs = f.wait_read("corrections.jsonl");
    check_so_far(&f, &epochs);
    f.append("events.jsonl", &[Ok(rec("f", "k1", m(0) + 59_999, -4))]);
    let epochs = f.wait_read("events.jsonl");
    check_so_far(&f, &epochs);

    // A later upsert brings `d` back, at a higher version.
    f.append(
        "corrections.jsonl",
        &[Ok(rec("d", "k2", m(2) + 1, 8).version(1))],
    );
    let epochs = f.wait_read("corrections.jsonl");
    check_so_far(&f, &epochs);
    let total = f.written.len() as u64;
    assert_eq!(epochs.iter().map(|e| e.records).sum::<u64>(), total);

    // The snapshot and digests are rewritten while running; SIGTERM writes them and exits 0.
    wait_for_snapshot(&mut f, &epochs);
    f.signal("TERM");
    f.expect_clean_exit();
    check_final(&f);
    assert_eq!(
        f.epochs().len(),
        epochs.len(),
        "no epoch after the last append"
    );
}

#[test]
fn sigint_finishes_the_epoch_writes_the_outputs_and_exits_0() {
    let events: &[Result<Rec, &str>] = &[Ok(rec("a", "k", T0, 1)), Ok(rec("b", "k", T0 + 1, 2))];
    // Two workers: each epoch's plan reaches both.
    let mut args = vec!["--input", "events.jsonl", "--workers", "2"];
    args.extend(FOLLOW);
    let mut f = Follow::with_files(&[("events.jsonl", events)], &args);
    f.wait_read("events.jsonl");
    f.append(
        "events.jsonl",
        &[
            Ok(rec("a", "k", T0, 3)),
            Ok(rec("c", "j", T0 + MINUTE, 4)),
            Err("nope"),
        ],
    );
    let epochs = f.wait_read("events.jsonl");
    check_so_far(&f, &epochs);
    f.signal("INT");
    f.expect_clean_exit();
    check_final(&f);
}

#[test]
fn standard_input_is_read_in_epochs_until_it_ends() {
    let mut args = vec!["--input", "-"];
    args.extend(FOLLOW);
    let mut f = Follow::start(TestDir::new(), &args);
    f.sizes.insert("-".into(), 0);
    let chunks: [&[Result<Rec, &str>]; 3] = [
        &[
            Ok(rec("a", "k", T0, 1)),
            Ok(rec("b", "k", T0 + 1, 2)),
            Err("[1,2]"),
        ],
        &[
            Ok(rec("a", "k", T0, 5)),
            Ok(rec("c", "j", T0 + 2 * MINUTE, 4)),
        ],
        &[
            Ok(rec("b", "k", T0 + 1, 2).deleted()),
            Ok(rec("c", "j", T0, 4).version(3)),
        ],
    ];
    for chunk in chunks {
        f.append("-", chunk);
        let total = f.written.len() as u64;
        let epochs = f.wait_records(total);
        // Standard input has no file offsets to place lines by; place them by count.
        let epochs = place_by_count(&f, epochs);
        check_so_far(&f, &epochs);
    }
    // The end of standard input ends the run.
    f.expect_clean_exit();
    let epochs = place_by_count(&f, f.epochs());
    check_changelog(&f, &epochs, &f.read_out("changelog.jsonl"));
    let model = model();
    let table = model.table(&f.records(&epochs), u64::MAX);
    if let Some(d) = diff(&model.snapshot_jsonl(&table), &f.read_out("snapshot.jsonl")) {
        panic!("snapshot.jsonl differs from the model's table:\n{d}");
    }
    let digests: Value = serde_json::from_str(&f.read_out("digests.json")).unwrap();
    assert_eq!(digests, model.digests(&table));
    let summary: Value = serde_json::from_str(&f.read_out("summary.json")).unwrap();
    assert_eq!(summary["records_read"].as_u64(), Some(7), "{summary:#}");
    assert_eq!(
        summary["records_dead_lettered"].as_u64(),
        Some(1),
        "{summary:#}"
    );
}

/// Rewrites the epochs of standard input to name the file `-` and byte ranges computed from
/// their record counts (the lines of standard input are read in order, every line a record),
/// checking any offsets amend reported against them.
fn place_by_count(f: &Follow, mut epochs: Vec<Epoch>) -> Vec<Epoch> {
    let mut line = 0usize;
    for e in &mut epochs {
        let first = line;
        line += e.records as usize;
        let start = f.written.get(first).map_or(f.sizes["-"], |w| w.offset);
        let end = f.written.get(line).map_or(f.sizes["-"], |w| w.offset);
        for (name, ours) in [("start", start), ("end", end)] {
            if let Some(theirs) = e.json[name].as_u64() {
                assert_eq!(
                    theirs, ours,
                    "epoch {} {name} in standard input: {}",
                    e.epoch, e.json
                );
            }
        }
        (e.file, e.start, e.end) = ("-".into(), Some(start), Some(end));
    }
    epochs
}

#[test]
fn new_files_in_a_followed_directory_are_epochs_in_name_order_gzip_whole() {
    let dir = TestDir::new();
    let mut written = Vec::new();
    let mut paths = BTreeMap::new();
    let files: [(&str, &[Result<Rec, &str>]); 2] = [
        ("inbox/b.jsonl", &[Ok(rec("b", "k", T0 + 5, 2))]),
        (
            "inbox/a.jsonl",
            &[Ok(rec("a", "k", T0, 1)), Ok(rec("b", "k", T0 + 5, 3))],
        ),
    ];
    for (path, lines) in files {
        let (mut w, _) = Follow::existing(&dir, path, lines);
        written.append(&mut w);
        paths.insert(file_name(path), dir.join(path));
    }
    let mut args = vec!["--input", "inbox"];
    args.extend(FOLLOW);
    let mut f = Follow::start(dir, &args);
    f.written = written;
    f.paths = paths;
    let epochs = f.wait_records(3);
    let names: Vec<&str> = epochs.iter().map(|e| e.file.as_str()).collect();
    assert_eq!(
        names,
        ["a.jsonl", "b.jsonl"],
        "one epoch per file, in name order"
    );
    check_so_far(&f, &epochs);

    // A file moved in whole is one epoch.
    add_file(
        &mut f,
        "c.jsonl",
        &[Ok(rec("a", "j", T0 + MINUTE, 7)), Err("not json")],
    );
    let epochs = f.wait_records(5);
    assert_eq!(epochs.last().unwrap().file, "c.jsonl");
    check_so_far(&f, &epochs);

    // A gzip file moved in whole is read whole: `end` is null.
    let lines: &[Result<Rec, &str>] = &[
        Ok(rec("d", "k", T0 + 2 * MINUTE, 4)),
        Ok(rec("b", "k", T0 + 5, 3).deleted()),
    ];
    let (mut w, _) = Follow::existing(&f.dir, "staging/d.jsonl", lines);
    f.dir
        .gzip("staging/d.jsonl", "staging/d.jsonl.gz")
        .expect("gzip is installed");
    fs::rename(
        f.dir.join("staging/d.jsonl.gz"),
        f.dir.join("inbox/d.jsonl.gz"),
    )
    .unwrap();
    for x in &mut w {
        x.file = "d.jsonl.gz".into();
    }
    f.written.append(&mut w);
    let epochs = f.wait_records(7);
    let last = epochs.last().unwrap();
    assert_eq!(last.file, "d.jsonl.gz");
    assert!(
        last.json["end"].is_null(),
        "a gzip file is read whole: {}",
        last.json
    );
    check_so_far(&f, &epochs);
    wait_for_snapshot(&mut f, &epochs);
    f.signal("TERM");
    f.expect_clean_exit();
    check_final(&f);
}

/// Writes `name` outside the followed directory and moves it in, so that it appears whole.
fn add_file(f: &mut Follow, name: &str, lines: &[Result<Rec, &str>]) {
    let staging = format!("staging/{name}");
    let (mut w, _) = Follow::existing(&f.dir, &staging, lines);
    fs::rename(f.dir.join(&staging), f.dir.join("inbox").join(name)).unwrap();
    f.written.append(&mut w);
}

#[test]
fn gen_streamed_into_standard_input_gives_the_table_of_a_plain_run() {
    let dir = TestDir::new();
    let gen_args = [
        "gen",
        "--out",
        "-",
        "--events",
        "20000",
        "--keys",
        "20",
        "--span",
        "2h",
        "--corrections",
        "0.05",
        "--max-delay",
        "5m",
        "--seed",
        "3",
    ];
    // The stream saved to a file, for a plain run.
    let saved = Command::new(AMEND)
        .args(gen_args)
        .stdout(File::create(dir.join("stream.jsonl")).unwrap())
        .status()
        .unwrap();
    assert!(saved.success());
    let plain = util::amend_in(
        dir.path(),
        &[
            "aggregate",
            "--input",
            "stream.jsonl",
            "--window",
            "tumbling:1m",
            "--quiet",
            "--out",
            "plain",
        ],
    )
    .status()
    .unwrap();
    assert!(plain.success());

    // The same stream piped from gen into a follow run.
    let mut producer = Command::new(AMEND)
        .args(gen_args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut args = vec!["--input", "-"];
    args.extend(FOLLOW);
    let mut cmd = Command::new(AMEND);
    cmd.arg("aggregate")
        .args(&args)
        .current_dir(dir.path())
        .stdin(producer.stdout.take().unwrap())
        .stdout(File::create(dir.join("stdout.txt")).unwrap())
        .stderr(File::create(dir.join("stderr.txt")).unwrap());
    let child = cmd.spawn().unwrap();
    let mut f = Follow {
        dir,
        child,
        stdin: None,
        written: Vec::new(),
        sizes: BTreeMap::new(),
        paths: BTreeMap::new(),
        command: format!(
            "amend {} | amend aggregate {}",
            gen_args.join(" "),
            args.join(" ")
        ),
    };
    f.expect_clean_exit();
    assert!(producer.wait().unwrap().success());
    for name in ["snapshot.jsonl", "digests.json"] {
        util::assert_same_file(name, &f.dir.join("plain"), &f.dir.join("out"));
    }
    let summary = |dir: &str| -> Value {
        serde_json::from_str(&f.dir.read(format!("{dir}/summary.json"))).unwrap()
    };
    let (plain, follow) = (summary("plain"), summary("out"));
    for field in [
        "records_read",
        "records_dead_lettered",
        "ids_current",
        "ids_deleted",
    ] {
        assert_eq!(plain[field], follow[field], "{field}");
    }
    let epochs = f.epochs();
    assert_eq!(
        epochs.iter().map(|e| e.records).sum::<u64>(),
        plain["records_read"].as_u64().unwrap()
    );
}

#[test]
fn with_a_finite_lateness_a_record_behind_the_horizon_goes_to_late_jsonl() {
    // Epoch 0 reaches 10:30, so epoch 1 is judged against W = 10:30 - 1m = 10:29 and the
    // horizon H = W - 5m = 10:24: a record whose window ended by then is late.
    let events: &[Result<Rec, &str>] = &[
        Ok(rec("a", "k", T0 + 30_000, 1)),
        Ok(rec("b", "k", T0 + 30 * MINUTE, 2)),
    ];
    let mut args = vec![
        "--input",
        "events.jsonl",
        "--allowed-lateness",
        "5m",
        "--max-out-of-orderness",
        "1m",
    ];
    args.extend(FOLLOW);
    let mut f = Follow::with_files(&[("events.jsonl", events)], &args);
    f.wait_read("events.jsonl");
    let late = rec("x", "k", T0 + 10 * MINUTE, 3);
    let on_time = rec("y", "k", T0 + 26 * MINUTE, 4);
    f.append("events.jsonl", &[Ok(late.clone()), Ok(on_time)]);
    let epochs = f.wait_read("events.jsonl");
    let last = &epochs[1].json;
    assert_eq!(last["late"].as_u64(), Some(1), "{last}");
    assert_eq!(
        last["watermark"].as_str(),
        Some("2026-11-20T10:29:00.000Z"),
        "{last}"
    );
    // The model knows no lateness: leave the late record out, and the rest is a full recompute.
    let offset = f.written[2].offset;
    f.written[2].rec = None;
    check_so_far(&f, &epochs);
    let lines: Vec<Value> = complete_lines(&f.read_out("late.jsonl"))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let expected = serde_json::json!({
        "source": "events.jsonl", "epoch": 1, "offset": offset, "id": "x", "key": "k",
        "ts": rfc3339(late.ts), "value": "3", "op": "upsert", "version": 0,
        "watermark": "2026-11-20T10:29:00.000Z",
    });
    assert_eq!(lines[0], expected);
    f.signal("TERM");
    f.expect_clean_exit();
    let summary: Value = serde_json::from_str(&f.read_out("summary.json")).unwrap();
    assert_eq!(summary["records_late"].as_u64(), Some(1), "{summary:#}");
    assert_eq!(summary["records_read"].as_u64(), Some(4), "{summary:#}");
    assert_eq!(
        summary["records_accepted"].as_u64(),
        Some(4),
        "late records are accepted"
    );
    let model = model();
    let table = model.table(&f.records(&epochs), u64::MAX);
    assert_eq!(f.read_out("snapshot.jsonl"), model.snapshot_jsonl(&table));
}

/// Runs `amend aggregate ARGS` to its end (killed after `TIMEOUT`), for runs that must fail.
fn run_to_end(dir: &TestDir, args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(AMEND)
        .arg("aggregate")
        .args(args)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(dir.join("stderr.txt")).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "amend aggregate {} did not exit within {TIMEOUT:?}",
                args.join(" ")
            );
        }
        std::thread::sleep(POLL);
    };
    (status.code(), dir.read("stderr.txt"))
}

#[test]
fn follow_with_a_missing_input_or_a_bad_flag_exits_with_one_line() {
    let dir = TestDir::new();
    dir.create("events.jsonl", rec("a", "k", T0, 1).line() + "\n");
    let cases: &[(&[&str], i32, &str)] = &[
        (&["--input", "missing.jsonl"], 1, "missing.jsonl"),
        (
            &["--input", "events.jsonl", "--corrections", "gone.jsonl"],
            1,
            "gone.jsonl",
        ),
        (
            &["--input", "events.jsonl", "--poll-interval", "5x"],
            2,
            "5x",
        ),
        (
            &["--input", "events.jsonl", "--snapshot-interval", "soon"],
            2,
            "soon",
        ),
        (
            &["--input", "events.jsonl", "--poll-interval", "0ms"],
            2,
            "0ms",
        ),
    ];
    for (extra, code, mention) in cases {
        let mut args = extra.to_vec();
        args.extend([
            "--follow",
            "--window",
            "tumbling:1m",
            "--out",
            "out",
            "--quiet",
        ]);
        exits_with_one_line(&dir, &args, *code, mention);
    }
}

/// Runs `amend aggregate ARGS` to its end and checks it exits `code` with one line on stderr
/// that names `mention`, and no panic.
fn exits_with_one_line(dir: &TestDir, args: &[&str], code: i32, mention: &str) {
    let (got, stderr) = run_to_end(dir, args);
    let what = format!(
        "amend aggregate {}\nexit code {got:?}\nstderr:\n{stderr}",
        args.join(" ")
    );
    assert_eq!(got, Some(code), "{what}");
    assert_eq!(stderr.lines().count(), 1, "one line on stderr\n{what}");
    assert!(stderr.contains(mention), "stderr names {mention}\n{what}");
    assert!(!stderr.contains("panicked"), "{what}");
}

/// An output that cannot be written (here the changelog is /dev/full: "no space left") ends a
/// followed run with one line and exit 1, instead of it waiting for more input.
#[test]
fn follow_exits_with_one_line_when_an_output_cannot_be_written() {
    let dir = TestDir::new();
    dir.create("events.jsonl", rec("a", "k", T0, 1).line() + "\n");
    std::fs::create_dir(dir.join("out")).unwrap();
    std::os::unix::fs::symlink("/dev/full", dir.join("out/changelog.jsonl")).unwrap();
    let args = [
        "--input",
        "events.jsonl",
        "--follow",
        "--window",
        "tumbling:1m",
        "--out",
        "out",
        "--quiet",
    ];
    exits_with_one_line(&dir, &args, 1, "changelog.jsonl");
}

#[test]
fn complete_lines_leave_out_a_line_being_written() {
    let lines: Vec<&str> = complete_lines("a\nb\nc").collect();
    assert_eq!(lines, ["a", "b"]);
    assert_eq!(complete_lines("").count(), 0);
    assert_eq!(complete_lines("x").count(), 0);
    let names: BTreeSet<String> = ["out/x.jsonl", "x.jsonl", "-"]
        .iter()
        .map(|s| file_name(s))
        .collect();
    assert_eq!(names.into_iter().collect::<Vec<_>>(), ["-", "x.jsonl"]);
}

/// The harness's own check: a plain run (one epoch per file) passes the model checks, with the
/// epochs described by hand as `epochs.jsonl` would.
#[test]
fn the_model_checks_accept_a_plain_run() {
    let lines: &[Result<Rec, &str>] = &[
        Ok(rec("a", "k1", T0 + 1_000, 10)),
        Ok(rec("b", "k1", T0 + 2_000, 20).version(1)),
        Err("{"),
        Ok(rec("a", "k1", T0 + 1_000, 10)),
    ];
    let fixes: &[Result<Rec, &str>] = &[
        Ok(rec("a", "k2", T0 + MINUTE, 5)),
        Ok(rec("b", "k1", T0 + 2_000, 1)),
        Ok(rec("b", "k1", T0 + 2_000, 20).version(1).deleted()),
    ];
    let mut f = Follow::with_files(
        &[("events.jsonl", lines), ("corrections.jsonl", fixes)],
        &[
            "--input",
            "events.jsonl",
            "--corrections",
            "corrections.jsonl",
            "--window",
            "tumbling:1m",
            "--out",
            "out",
            "--quiet",
        ],
    );
    f.expect_clean_exit();
    let epochs: Vec<Epoch> = ["events.jsonl", "corrections.jsonl"]
        .iter()
        .enumerate()
        .map(|(n, name)| {
            let end = f.sizes[*name];
            Epoch {
                epoch: n as u64,
                file: name.to_string(),
                start: Some(0),
                end: Some(end),
                records: 0,
                json: serde_json::json!({"source": name, "start": 0, "end": end}),
            }
        })
        .collect();
    check_changelog(&f, &epochs, &f.read_out("changelog.jsonl"));
    let model = model();
    let table = model.table(&f.records(&epochs), u64::MAX);
    assert_eq!(table.len(), 1, "a moved to k2, b deleted: {table:?}");
    assert_eq!(f.read_out("snapshot.jsonl"), model.snapshot_jsonl(&table));
    let digests: Value = serde_json::from_str(&f.read_out("digests.json")).unwrap();
    assert_eq!(digests, model.digests(&table));
}
