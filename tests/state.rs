//! Bounded state: with a finite `--allowed-lateness`, the state a pipeline holds stops growing
//! however long the stream runs; with the default (unbounded) lateness it grows with the input.
//!
//! Run them with `cargo test -p amend --test state`.
//!
//! The state is measured by the dataflow's own accounting, not by RSS: the `state_ids` (ids
//! held by id resolution) and `state_groups` (groups held by aggregation; for session windows,
//! records held) fields of each `epochs.jsonl` line and of `summary.json` (design 0002,
//! "Bounded state").
//!
//! Each test streams `amend gen --out -` into `amend aggregate --input -`. The test passes the
//! stream on in blocks of `BLOCK` lines and waits until each block is in `epochs.jsonl` before
//! sending the next. Piped straight through, standard input is cut into epochs by timing:
//! whatever has arrived when the dataflow can take another epoch, so epochs grow while the
//! dataflow is busy (a run of 60,000 records gave 8 epochs of 1 to 20,000 records). State is
//! released at the start of each epoch, so an epoch that spans hours of event time holds hours
//! of records while it is processed, and a plateau would depend on the machine's speed.
//! Blocks of a fixed size give many epochs of a bounded event-time span, on any machine.

#[allow(dead_code)]
#[path = "e2e/util.rs"]
mod util;

use std::fs::File;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use util::{AMEND, TestDir};

/// How long one block may take to show up in `epochs.jsonl`: generous, for a loaded machine.
const TIMEOUT: Duration = Duration::from_secs(60);
/// How often the test looks at `epochs.jsonl`.
const POLL: Duration = Duration::from_millis(2);
/// Lines passed on at a time: each block is one epoch (or a few, if a read splits it).
const BLOCK: usize = 1000;
/// Fewer epochs than this would say little about growth.
const MIN_EPOCHS: usize = 30;

/// The generated stream: 60,000 events (plus replays, corrections, deletes and bad lines)
/// over 6 hours of event time, so one block spans about 6 minutes and the stream crosses 360
/// one-minute windows. 2,000 keys leave gaps of minutes within a key, so sessions of a 2-minute
/// gap end and close; late events are at most 3 minutes behind, so most are on time.
const GEN: [&str; 13] = [
    "gen",
    "--out",
    "-",
    "--events",
    "60000",
    "--keys",
    "2000",
    "--span",
    "6h",
    "--max-delay",
    "3m",
    "--seed",
    "11",
];

/// The state figures of one epoch.
#[derive(Clone, Copy, Debug)]
struct State {
    records: u64,
    late: u64,
    ids: u64,
    groups: u64,
}

/// What a run wrote.
struct Run {
    command: String,
    epochs: Vec<State>,
    summary: Value,
    /// The lines streamed to it that are records (not blank).
    lines: u64,
}

/// The stream `amend gen` writes with `GEN`.
fn generate() -> Vec<u8> {
    let out = Command::new(AMEND)
        .args(GEN)
        .stderr(Stdio::inherit())
        .output()
        .expect("cannot run amend gen");
    assert!(out.status.success(), "amend {} failed", GEN.join(" "));
    out.stdout
}

/// The complete lines of `epochs.jsonl` in `dir`, parsed.
fn read_epochs(dir: &TestDir) -> Vec<Value> {
    let text = std::fs::read_to_string(dir.join("out/epochs.jsonl")).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |end| &text[..=end]);
    complete
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("epochs.jsonl: {e}: {line}"))
        })
        .collect()
}

/// A running `amend aggregate`, for failure messages.
struct Running {
    dir: TestDir,
    process: std::process::Child,
    command: String,
}

impl Running {
    /// Kills the run and panics with what it left behind.
    fn fail(&mut self, why: impl std::fmt::Display) -> ! {
        let _ = self.process.kill();
        let status = self.process.wait().ok();
        panic!(
            "{why}\ncommand: {} (in {})\nstatus: {status:?}\nstderr: {}\nepochs.jsonl (last 3): {:#?}",
            self.command,
            self.dir.path().display(),
            util::read_text(&self.dir.join("stderr.txt")),
            read_epochs(&self.dir)
                .iter()
                .rev()
                .take(3)
                .collect::<Vec<_>>(),
        );
    }

    /// Waits until `epochs.jsonl` has read standard input up to byte `sent`.
    fn wait_read(&mut self, sent: u64) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let end = read_epochs(&self.dir)
                .last()
                .and_then(|e| e["end"].as_u64());
            if end == Some(sent) {
                return;
            }
            if let Ok(Some(_)) = self.process.try_wait() {
                self.fail("amend exited before its input ended");
            }
            if Instant::now() > deadline {
                self.fail(format!("byte {sent} not in epochs.jsonl after {TIMEOUT:?}"));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits for a clean exit: status 0 and nothing on stderr.
    fn wait_exit(&mut self) {
        let deadline = Instant::now() + TIMEOUT;
        let status = loop {
            if let Some(status) = self.process.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                self.fail("amend did not exit at the end of its input");
            }
            std::thread::sleep(POLL);
        };
        let stderr = util::read_text(&self.dir.join("stderr.txt"));
        if !status.success() || !stderr.is_empty() {
            self.fail(format!("amend exited with {status}"));
        }
    }
}

/// Streams `stream` into `amend aggregate --input - --window WINDOW [--allowed-lateness L]` a
/// block at a time, each block waited for in `epochs.jsonl`, then ends standard input.
fn run_paced(stream: &[u8], window: &str, lateness: Option<&str>) -> Run {
    let dir = TestDir::new();
    let mut args = vec![
        "aggregate",
        "--input",
        "-",
        "--window",
        window,
        "--out",
        "out",
        "--quiet",
    ];
    if let Some(lateness) = lateness {
        args.extend(["--allowed-lateness", lateness]);
    }
    let command = format!(
        "amend {} | amend {} (a block of {BLOCK} lines at a time)",
        GEN.join(" "),
        args.join(" ")
    );
    let process = Command::new(AMEND)
        .args(&args)
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(File::create(dir.join("stdout.txt")).unwrap())
        .stderr(File::create(dir.join("stderr.txt")).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command}: {e}"));
    let mut child = Running {
        dir,
        process,
        command,
    };
    let mut stdin = child.process.stdin.take().unwrap();

    let lines: Vec<&[u8]> = stream.split_inclusive(|&b| b == b'\n').collect();
    let mut sent = 0u64;
    for block in lines.chunks(BLOCK) {
        let bytes = block.concat();
        if let Err(e) = stdin.write_all(&bytes).and_then(|()| stdin.flush()) {
            child.fail(format!("cannot write to amend: {e}"));
        }
        // The stream ends with a newline, so a block is complete lines: amend reads all of it
        // once the epoch before is through.
        sent += bytes.len() as u64;
        child.wait_read(sent);
    }
    drop(stdin);
    child.wait_exit();
    let Running { dir, command, .. } = child;

    let number = |json: &Value, name: &str| {
        json[name]
            .as_u64()
            .unwrap_or_else(|| panic!("no {name} in {json}"))
    };
    let epochs = read_epochs(&dir)
        .iter()
        .map(|json| State {
            records: number(json, "records"),
            late: number(json, "late"),
            ids: number(json, "state_ids"),
            groups: number(json, "state_groups"),
        })
        .collect();
    let summary: Value =
        serde_json::from_str(&util::read_text(&dir.join("out/summary.json"))).unwrap();
    Run {
        command,
        epochs,
        summary,
        lines: lines.iter().filter(|l| !l.trim_ascii().is_empty()).count() as u64,
    }
}

impl Run {
    fn summary(&self, name: &str) -> u64 {
        self.summary[name]
            .as_u64()
            .unwrap_or_else(|| panic!("no {name} in summary.json: {:#}", self.summary))
    }

    /// The greatest of `gauge` over the first, middle and last third of the epochs.
    fn thirds(&self, gauge: impl Fn(&State) -> u64) -> [u64; 3] {
        let n = self.epochs.len();
        let max = |range: std::ops::Range<usize>| {
            self.epochs[range].iter().map(&gauge).max().unwrap_or(0)
        };
        [max(0..n / 3), max(n / 3..2 * n / 3), max(2 * n / 3..n)]
    }

    /// Checks what every run must show: enough epochs, and read records all accounted for.
    fn check_accounting(&self) {
        let n = self.epochs.len();
        assert!(
            n >= MIN_EPOCHS,
            "{}: only {n} epochs; the test needs at least {MIN_EPOCHS}",
            self.command
        );
        let records: u64 = self.epochs.iter().map(|e| e.records).sum();
        assert_eq!(
            records,
            self.summary("records_read"),
            "{}: the records of epochs.jsonl do not add up to records_read",
            self.command
        );
        assert_eq!(
            records, self.lines,
            "{}: records read are not the lines streamed",
            self.command
        );
        let late: u64 = self.epochs.iter().map(|e| e.late).sum();
        assert_eq!(late, self.summary("records_late"), "{}", self.command);
        assert_eq!(self.summary("epochs"), n as u64, "{}", self.command);
    }

    /// Prints the figures, so a failure (or `--nocapture`) shows them.
    fn report(&self) {
        let ids = self.thirds(|e| e.ids);
        let groups = self.thirds(|e| e.groups);
        eprintln!(
            "{}\n  {} epochs, {} records read, {} late; max state_ids by thirds {ids:?}, \
             max state_groups by thirds {groups:?}; at the end state_ids {}, state_groups {}",
            self.command,
            self.epochs.len(),
            self.summary("records_read"),
            self.summary("records_late"),
            self.summary("state_ids"),
            self.summary("state_groups"),
        );
    }

    /// With a finite lateness: the state of the last third is no greater than that of the
    /// middle third (up to a fifth more; growth in proportion to the input would be half
    /// more), and a small share of the records read.
    #[track_caller]
    fn assert_bounded(&self, name: &str, gauge: impl Fn(&State) -> u64) {
        let [_, middle, last] = self.thirds(&gauge);
        let read = self.summary("records_read");
        assert!(
            last * 5 <= middle * 6,
            "{}: {name} still grows: max {middle} over the middle third of the epochs, \
             {last} over the last third",
            self.command
        );
        let max = self.epochs.iter().map(&gauge).max().unwrap_or(0);
        assert!(
            max * 10 <= read,
            "{}: {name} reached {max}, not far below the {read} records read",
            self.command
        );
    }

    /// With unbounded lateness: the state of the last third is well above that of the first.
    #[track_caller]
    fn assert_growing(&self, name: &str, gauge: impl Fn(&State) -> u64) {
        let [first, _, last] = self.thirds(&gauge);
        assert!(
            last >= first * 2,
            "{}: {name} does not grow with the input: max {first} over the first third of \
             the epochs, {last} over the last third",
            self.command
        );
    }
}

/// Runs the stream through `window` with and without `--allowed-lateness 5m`; returns the
/// bounded and the unbounded run.
fn with_and_without_lateness(window: &str) -> (Run, Run) {
    let stream = generate();
    let bounded = run_paced(&stream, window, Some("5m"));
    bounded.report();
    bounded.check_accounting();
    let unbounded = run_paced(&stream, window, None);
    unbounded.report();
    unbounded.check_accounting();
    (bounded, unbounded)
}

#[test]
fn tumbling_state_stops_growing_with_a_finite_lateness() {
    let (bounded, unbounded) = with_and_without_lateness("tumbling:1m");
    bounded.assert_bounded("state_ids", |e| e.ids);
    bounded.assert_bounded("state_groups", |e| e.groups);
    assert!(bounded.summary("records_late") > 0, "{}", bounded.command);

    unbounded.assert_growing("state_ids", |e| e.ids);
    unbounded.assert_growing("state_groups", |e| e.groups);
    // Nothing is forgotten: every id is held, whether its current record is an upsert or a
    // delete, and nothing is late.
    assert_eq!(
        unbounded.summary("state_ids"),
        unbounded.summary("ids_current") + unbounded.summary("ids_deleted"),
        "{}",
        unbounded.command
    );
    assert_eq!(
        unbounded.summary("records_late"),
        0,
        "{}",
        unbounded.command
    );
}

#[test]
fn session_state_stops_growing_with_a_finite_lateness() {
    let (bounded, unbounded) = with_and_without_lateness("session:2m");
    bounded.assert_bounded("state_ids", |e| e.ids);
    bounded.assert_bounded("state_groups", |e| e.groups);

    unbounded.assert_growing("state_ids", |e| e.ids);
    unbounded.assert_growing("state_groups", |e| e.groups);
    // Sessions hold each current upsert, once.
    assert_eq!(
        unbounded.summary("state_groups"),
        unbounded.summary("ids_current"),
        "{}",
        unbounded.command
    );
}
