//! End-to-end tests of checkpoints: `amend aggregate --checkpoint-dir` killed with `kill -9`
//! at random points and restarted, resumed with more inputs, with other workers, from damaged
//! checkpoints, and refused when the job differs.
//!
//! Run them with `cargo test -p amend --test checkpoints`.
//!
//! What they guard (docs/design/0007-checkpoints.md):
//!
//! - after any number of kills and restarts, every output equals that of a run never
//!   interrupted, byte for byte, timing fields aside; `epochs.jsonl` names every epoch once, in
//!   order;
//! - a resume with one more corrections file reads only that file and equals one run over all;
//! - a damaged newest checkpoint falls back to the one before, saying so; with every one
//!   damaged the run exits 2 naming the part; changed flags, a replaced or removed input and
//!   standard input exit 2 with one line.
//!
//! Kills land at random times: while reading, while writing outputs, while writing a part or
//! the manifest. Waits poll output files with a generous timeout and never assert on speed.

#[allow(dead_code)]
#[path = "e2e/util.rs"]
mod util;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use rand::{RngExt, SeedableRng};
use serde_json::Value;
use util::{TestDir, amend_in};

/// Output files compared byte for byte.
const SAME: [&str; 6] = [
    "changelog.jsonl",
    "snapshot.jsonl",
    "dead_letter.jsonl",
    "late.jsonl",
    "digests.json",
    "digests_changelog.jsonl",
];

/// Fields of epochs.jsonl and summary.json that depend on the run, not on the input.
const RUN_FIELDS: [&str; 12] = [
    "read_at",
    "flushed_at",
    "latency_ms",
    "state_ids",
    "state_groups",
    "elapsed_seconds",
    "records_per_second",
    "workers",
    "epoch_latency_ms_p50",
    "epoch_latency_ms_p99",
    "run_records_read",
    "resumed_after_epoch",
];

fn strip(mut value: Value) -> Value {
    if let Some(object) = value.as_object_mut() {
        for field in RUN_FIELDS {
            object.remove(field);
        }
    }
    value
}

/// The JSON lines of `path`, run fields removed.
fn json_lines(path: &Path) -> Vec<Value> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| strip(serde_json::from_str(l).expect("a JSON line")))
        .collect()
}

/// Panics unless the outputs in `a` and `b` are the same, run fields aside, and `b`'s epochs
/// are numbered 0, 1, 2, ... each once.
fn assert_same_outputs(a: &Path, b: &Path) {
    let spans = |d: &Path| -> Vec<(u64, u64)> {
        json_lines(&d.join("epochs.jsonl"))
            .iter()
            .map(|e| (e["start"].as_u64().unwrap(), e["end"].as_u64().unwrap_or(0)))
            .collect()
    };
    assert_eq!(spans(a), spans(b), "the epochs read other byte ranges");
    for name in SAME {
        let read = |d: &Path| fs::read_to_string(d.join(name)).unwrap_or_default();
        let (x, y) = (read(a), read(b));
        if x != y {
            let first = x.lines().zip(y.lines()).position(|(l, m)| l != m);
            let at = first.unwrap_or(x.lines().count().min(y.lines().count()));
            panic!(
                "{name} differs from line {}: {} lines vs {}\n{:?}\n{:?}",
                at + 1,
                x.lines().count(),
                y.lines().count(),
                x.lines().nth(at),
                y.lines().nth(at)
            );
        }
    }
    assert_eq!(
        json_lines(&a.join("epochs.jsonl")),
        json_lines(&b.join("epochs.jsonl"))
    );
    let summary = |d: &Path| {
        strip(serde_json::from_str(&fs::read_to_string(d.join("summary.json")).unwrap()).unwrap())
    };
    assert_eq!(summary(a), summary(b), "summary.json differs");
    let epochs: Vec<u64> = json_lines(&b.join("epochs.jsonl"))
        .iter()
        .map(|e| e["epoch"].as_u64().unwrap())
        .collect();
    assert_eq!(
        epochs,
        (0..epochs.len() as u64).collect::<Vec<_>>(),
        "epochs repeat or skip"
    );
}

/// Generates a history with late events, replays, corrections, deletes and bad lines.
fn generate(dir: &TestDir, events: u64) {
    dir.run(&[
        "gen",
        "--events",
        &events.to_string(),
        "--keys",
        "20",
        "--out",
        "data",
    ])
    .expect_code(0);
}

/// The history's lines, events then corrections, cut into `n` chunks of whole lines.
fn chunks(dir: &TestDir, n: usize) -> Vec<String> {
    let mut lines: Vec<String> = dir
        .read("data/events.jsonl")
        .lines()
        .map(|l| format!("{l}\n"))
        .collect();
    lines.extend(
        dir.read("data/corrections.jsonl")
            .lines()
            .map(|l| format!("{l}\n")),
    );
    let per = lines.len().div_ceil(n);
    lines.chunks(per).map(|c| c.concat()).collect()
}

fn append(path: &Path, text: &str) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

/// Complete lines of epochs.jsonl in `out`.
fn epochs_written(out: &Path) -> usize {
    let text = fs::read_to_string(out.join("epochs.jsonl")).unwrap_or_default();
    text.matches('\n').count()
}

fn wait_for_epochs(out: &Path, n: usize, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while epochs_written(out) < n {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                std::io::Read::read_to_string(&mut e, &mut err).unwrap();
            }
            panic!("amend exited ({status}) before epoch {n}: {err}");
        }
        assert!(Instant::now() < deadline, "epoch {n} not written in time");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn wait_for_checkpoint(dir: &Path, epoch: u64, child: &mut Child) {
    let manifest = dir.join(format!("epoch-{epoch:012}/manifest.json"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !manifest.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("amend exited ({status}) before the checkpoint of epoch {epoch}");
        }
        assert!(
            Instant::now() < deadline,
            "epoch {epoch} not checkpointed in time"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn spawn<S: AsRef<std::ffi::OsStr>>(dir: &TestDir, args: &[S]) -> Child {
    let mut cmd = amend_in(dir.path(), args);
    cmd.stdout(Stdio::null());
    cmd.spawn().expect("amend starts")
}

fn kill_9(child: &mut Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

fn signal(child: &Child, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {signal} failed");
}

/// Stops `child` with SIGSTOP and waits until every one of its threads is stopped: the
/// signal is delivered after `kill` returns, and a thread still running could read a chunk
/// half written.
fn stop(child: &Child) {
    signal(child, "-STOP");
    let tasks = format!("/proc/{}/task", child.id());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stopped = fs::read_dir(&tasks).unwrap().all(|task| {
            let stat = fs::read_to_string(task.unwrap().path().join("stat")).unwrap_or_default();
            // The state follows the command name, which is in parentheses.
            let state = stat.rsplit_once(") ").map(|(_, rest)| &rest[..1]);
            matches!(state, Some("T" | "t") | None)
        });
        if stopped {
            return;
        }
        assert!(Instant::now() < deadline, "amend did not stop");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn terminate(child: Child) {
    signal(&child, "-TERM");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

const FLAGS: [&str; 8] = [
    "--window",
    "tumbling:1m",
    "--allowed-lateness",
    "10m",
    "--poll-interval",
    "5ms",
    "--quiet",
    "--follow",
];

/// A followed file grows chunk by chunk; amend is killed with kill -9 at a random point after
/// most appends and restarted: its outputs end equal to an uninterrupted run's.
#[test]
fn kill_9_while_following_resumes_with_identical_outputs() {
    let dir = TestDir::new();
    generate(&dir, 6000);
    let chunks = chunks(&dir, 24);
    let run = |out: &str, input: &str, kills: bool| -> usize {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut args: Vec<&str> = vec!["aggregate", "--input", input, "--out", out];
        args.extend(FLAGS);
        let ckpt = format!("{out}-ckpt");
        if kills {
            args.extend(["--checkpoint-dir", &ckpt, "--checkpoint-interval", "0"]);
        }
        // The first chunk is there at start-up: it is epoch 0 (an empty file would be an
        // empty epoch 0, or none if the first run is killed before it).
        fs::write(dir.join(input), &chunks[0]).unwrap();
        let mut child = spawn(&dir, &args);
        wait_for_epochs(&dir.join(out), 1, &mut child);
        let mut killed = 0;
        for (n, chunk) in chunks.iter().enumerate().skip(1) {
            // Stopped while the chunk is written, amend sees it whole: one epoch per chunk,
            // in both runs, whatever the timing.
            stop(&child);
            append(&dir.join(input), chunk);
            signal(&child, "-CONT");
            if !kills {
                wait_for_epochs(&dir.join(out), n + 1, &mut child);
                continue;
            }
            if n + 1 < chunks.len() {
                // Somewhere in reading, writing outputs, or writing the checkpoint.
                std::thread::sleep(Duration::from_micros(rng.random_range(0..40_000)));
                kill_9(&mut child);
                killed += 1;
                child = spawn(&dir, &args);
            }
            // A restarted run still shows the epochs the killed one wrote: the next chunk
            // waits for the checkpoint of this one, which only a run that has read it commits.
            wait_for_checkpoint(&dir.join(&ckpt), n as u64, &mut child);
        }
        terminate(child);
        killed
    };
    run("plain", "plain.jsonl", false);
    let killed = run("killed", "killed.jsonl", true);
    assert!(killed >= 20, "only {killed} kills");
    // The inputs' names differ: compare what does not name them.
    for name in ["dead_letter.jsonl", "late.jsonl"] {
        let fix = |d: &str| {
            dir.read(format!("{d}/{name}"))
                .replace("plain.jsonl", "killed.jsonl")
        };
        fs::write(dir.join(format!("plain/{name}")), fix("plain")).unwrap();
    }
    let epochs = dir
        .read("plain/epochs.jsonl")
        .replace("plain.jsonl", "killed.jsonl");
    fs::write(dir.join("plain/epochs.jsonl"), epochs).unwrap();
    assert_same_outputs(&dir.join("plain"), &dir.join("killed"));
    let listed = dir.run(&["checkpoints", "killed-ckpt", "--json"]);
    let listed: Value = serde_json::from_str(&listed.expect_code(0).stdout).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2, "two checkpoints are retained");
    assert!(listed.iter().all(|c| c["intact"] == true));
}

/// A batch run split by --epoch-bytes is killed at random points until one run completes:
/// its outputs equal an uninterrupted run's.
#[test]
fn kill_9_in_a_batch_run_with_epoch_bytes_resumes_with_identical_outputs() {
    let dir = TestDir::new();
    generate(&dir, 40_000);
    let args = |out: &'static str| -> Vec<String> {
        let mut a: Vec<String> = [
            "aggregate",
            "--input",
            "data/events.jsonl",
            "--corrections",
            "data/corrections.jsonl",
            "--window",
            "tumbling:1m",
            "--epoch-bytes",
            "256K",
            "--workers",
            "2",
            "--quiet",
            "--out",
            out,
        ]
        .map(String::from)
        .to_vec();
        if out == "killed" {
            a.extend(["--checkpoint-dir", "ckpt", "--checkpoint-interval", "0"].map(String::from));
        }
        a
    };
    dir.run(&args("plain")).expect_code(0);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let mut kills = 0;
    let killed = dir.join("killed");
    for attempt in 0.. {
        assert!(attempt < 60, "no run completed");
        let before = epochs_written(&killed);
        let mut child = spawn(&dir, &args("killed"));
        // Killed at a random point once it has written an epoch more, whatever this machine's
        // speed: every attempt gets somewhere, and none runs to the end unkilled by chance.
        let deadline = Instant::now() + Duration::from_secs(60);
        while epochs_written(&killed) <= before
            && child.try_wait().unwrap().is_none()
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(0..150)));
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            assert_eq!(
                out.status.code(),
                Some(0),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            break;
        }
        kill_9(&mut child);
        kills += 1;
    }
    assert!(
        kills >= 3,
        "only {kills} kills: the run is too quick to be interrupted"
    );
    assert_same_outputs(&dir.join("plain"), &dir.join("killed"));
}

/// A crash at each point of taking a checkpoint (`AMEND_FAULT` aborts the process there, as
/// abruptly as kill -9): before the sink's part, and between the manifest's write and its
/// rename. The restarted run ends with an uninterrupted run's outputs.
#[test]
fn a_crash_while_committing_a_checkpoint_resumes_with_identical_outputs() {
    let dir = TestDir::new();
    generate(&dir, 4000);
    let args = |out: &str| -> Vec<String> {
        let mut a: Vec<String> = [
            "aggregate",
            "--input",
            "data/events.jsonl",
            "--corrections",
            "data/corrections.jsonl",
            "--window",
            "tumbling:1m",
            "--epoch-bytes",
            "32K",
            "--allowed-lateness",
            "1h",
            "--quiet",
            "--out",
            out,
        ]
        .map(String::from)
        .to_vec();
        if out != "plain" {
            let ckpt = format!("{out}-ckpt");
            a.extend(["--checkpoint-dir", &ckpt, "--checkpoint-interval", "0"].map(String::from));
        }
        a
    };
    dir.run(&args("plain")).expect_code(0);
    for (n, point) in ["before-sink-part:3", "before-manifest-rename:5"]
        .iter()
        .enumerate()
    {
        let out = format!("crash{n}");
        let mut crashing = dir.command(&args(&out));
        crashing.env("AMEND_FAULT", point);
        let crashed = util::Run::of(crashing);
        assert_eq!(
            crashed.code, None,
            "AMEND_FAULT={point} did not abort\n{crashed}"
        );
        let ckpt = dir.join(format!("{out}-ckpt"));
        let listed = dir.run(&["checkpoints", &ckpt.display().to_string(), "--json"]);
        let listed: Value = serde_json::from_str(&listed.expect_code(0).stdout).unwrap();
        let newest = listed[0]["epoch"].as_u64();
        assert!(
            newest.is_some_and(|e| e < 4),
            "{point}: checkpoints {listed}"
        );
        dir.run(&args(&out)).expect_code(0);
        assert_same_outputs(&dir.join("plain"), &dir.join(&out));
    }
}

fn summary(dir: &TestDir, out: &str) -> Value {
    serde_json::from_str(&dir.read(format!("{out}/summary.json"))).unwrap()
}

/// The daily workflow: one more corrections file is all a resumed run reads, with another
/// worker count, and its outputs are those of one run over everything.
#[test]
fn one_more_corrections_file_is_all_a_resume_reads() {
    let dir = TestDir::new();
    generate(&dir, 3000);
    let fixes = dir.read("data/corrections.jsonl");
    let (day1, day2) = fixes.split_at(fixes.len() / 2);
    let cut = day1.rfind('\n').unwrap() + 1;
    let (day1, day2) = (&fixes[..cut], format!("{}{day2}", &day1[cut..]));
    // Day 3: the last quarter of day 2's lines.
    let lines: Vec<&str> = day2.lines().collect();
    let (day2, day3) = lines.split_at(lines.len() - lines.len() / 4);
    let (day2, day3) = (day2.join("\n") + "\n", day3.join("\n") + "\n");
    dir.create("day1.jsonl", day1);
    dir.create("day2.jsonl", &day2);
    dir.create("day3.jsonl", &day3);
    let job = |out: &str, fixes: &[&str], workers: &str, ckpt: bool| {
        let mut a = vec!["aggregate", "--input", "data/events.jsonl", "--corrections"];
        a.extend(fixes);
        a.extend([
            "--window",
            "tumbling:1m",
            "--workers",
            workers,
            "--quiet",
            "--out",
            out,
        ]);
        if ckpt {
            a.extend(["--checkpoint-dir", "ckpt"]);
        }
        dir.run(&a).expect_code(0);
    };
    let days = ["day1.jsonl", "day2.jsonl", "day3.jsonl"];
    job("all", &days, "1", false);
    job("daily", &days[..1], "2", true);
    // Another worker count: the state is re-partitioned, and the checkpoint written whole.
    job("daily", &days[..2], "3", true);
    let s = summary(&dir, "daily");
    assert_eq!(
        s["run_records_read"].as_u64(),
        Some(day2.lines().count() as u64)
    );
    assert_eq!(s["resumed_after_epoch"].as_u64(), Some(1));
    // The same worker count: the checkpoint holds what day 3 changed, over day 2's.
    job("daily", &days, "3", true);
    let s = summary(&dir, "daily");
    assert_eq!(
        s["run_records_read"].as_u64(),
        Some(day3.lines().count() as u64)
    );
    assert_eq!(s["resumed_after_epoch"].as_u64(), Some(2));
    assert_same_outputs(&dir.join("all"), &dir.join("daily"));
    let listed = dir.run(&["checkpoints", "ckpt", "--json"]);
    let listed: Value = serde_json::from_str(&listed.expect_code(0).stdout).unwrap();
    let (day3, day2) = (&listed[0], &listed[1]);
    assert_eq!(day3["epoch"], 3, "{listed}");
    assert_eq!(day3["builds_on"], serde_json::json!([2]), "{listed}");
    // Day 2's workers wrote their state whole (re-partitioned); the sink's part builds on day 1.
    assert_eq!(day2["builds_on"], serde_json::json!([1]), "{listed}");
    let (written, whole) = (day3["bytes_written"].as_u64(), day3["bytes"].as_u64());
    assert!(written.unwrap() * 2 < whole.unwrap(), "{listed}");
    // A resume from day 3's checkpoint, which builds on day 2's, with nothing new: the same.
    job("daily", &days, "3", true);
    assert_same_outputs(&dir.join("all"), &dir.join("daily"));
}

/// A run over three files with a checkpoint after every epoch, in `out`.
fn three_epochs(dir: &TestDir) -> Vec<&'static str> {
    generate(dir, 2000);
    let fixes = dir.read("data/corrections.jsonl");
    let cut = fixes[..fixes.len() / 2].rfind('\n').unwrap() + 1;
    dir.create("a.jsonl", &fixes[..cut]);
    dir.create("b.jsonl", &fixes[cut..]);
    let args = vec![
        "aggregate",
        "--input",
        "data/events.jsonl",
        "--corrections",
        "a.jsonl",
        "b.jsonl",
        "--window",
        "tumbling:1m",
        "--quiet",
        "--out",
        "out",
        "--checkpoint-dir",
        "ckpt",
        "--checkpoint-interval",
        "0",
    ];
    dir.run(&args).expect_code(0);
    args
}

fn flip_byte(path: &Path) {
    let mut bytes = fs::read(path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    fs::write(path, bytes).unwrap();
}

/// A flipped byte in the newest checkpoint: the one before is loaded, with a message; in
/// every retained one: exit 2 naming the part, and --from-scratch starts over.
#[test]
fn a_damaged_checkpoint_falls_back_to_the_one_before() {
    let dir = TestDir::new();
    let args = three_epochs(&dir);
    fs::create_dir_all(dir.join("expected")).unwrap();
    for name in SAME.iter().chain(&["epochs.jsonl", "summary.json"]) {
        if let Ok(bytes) = fs::read(dir.join("out").join(name)) {
            fs::write(dir.join("expected").join(name), bytes).unwrap();
        }
    }
    flip_byte(&dir.join("ckpt/epoch-000000000002/worker-0.state"));
    let run = dir.run(&args).expect_code(0).stderr.clone();
    assert!(
        run.contains("epoch 2") && run.contains("not intact"),
        "{run}"
    );
    assert_same_outputs(&dir.join("expected"), &dir.join("out"));
    let summary = summary(&dir, "out");
    assert_eq!(
        summary["resumed_after_epoch"].as_u64(),
        Some(1),
        "{summary}"
    );
    // Every checkpoint kept (the two retained, and the one whose parts they build on).
    for entry in fs::read_dir(dir.join("ckpt")).unwrap() {
        let path = entry.unwrap().path().join("sink.state");
        if path.exists() {
            flip_byte(&path);
        }
    }
    let run = dir.run(&args);
    run.expect_code(2);
    assert!(
        run.stderr.contains("no intact checkpoint") && run.stderr.contains("sink.state"),
        "{run}"
    );
    let mut fresh = args.clone();
    fresh.push("--from-scratch");
    dir.run(&fresh).expect_code(0);
    assert_same_outputs(&dir.join("expected"), &dir.join("out"));
}

/// Exits 2 with one line on stderr that mentions `mention`.
#[track_caller]
fn refused(dir: &TestDir, args: &[&str], mention: &str) {
    let run = dir.run(args);
    run.expect_code(2);
    let first = run.stderr.lines().next().unwrap_or("");
    assert!(
        run.stderr.lines().count() == 1
            && first.contains(mention)
            && !run.stderr.contains("panicked"),
        "expected one line mentioning {mention:?}\n{run}"
    );
}

/// Changed flags, a removed or replaced input, standard input: exit 2 naming the cause.
#[test]
fn a_resume_of_another_job_is_refused() {
    let dir = TestDir::new();
    let args = three_epochs(&dir);
    let with = |from: &str, to: &str| -> Vec<String> {
        args.iter()
            .map(|a| {
                if *a == from {
                    to.to_string()
                } else {
                    a.to_string()
                }
            })
            .collect()
    };
    let window = with("tumbling:1m", "tumbling:5m");
    let window: Vec<&str> = window.iter().map(String::as_str).collect();
    refused(&dir, &window, "--window");
    let removed: Vec<&str> = args.iter().copied().filter(|a| *a != "a.jsonl").collect();
    refused(&dir, &removed, "a.jsonl");
    // A shorter output: refused before any output is cut.
    let changelog = dir.read("out/changelog.jsonl");
    let epochs = dir.read("out/epochs.jsonl");
    dir.create("out/changelog.jsonl", &changelog[..changelog.len() / 2]);
    refused(&dir, &args, "changelog.jsonl");
    assert_eq!(dir.read("out/epochs.jsonl"), epochs, "epochs.jsonl was cut");
    dir.create("out/changelog.jsonl", &changelog);
    let text = dir.read("a.jsonl");
    fs::remove_file(dir.join("a.jsonl")).unwrap();
    dir.create("a.jsonl", text.replacen('1', "2", 1));
    refused(&dir, &args, "a.jsonl");
    refused(
        &dir,
        &[
            "aggregate",
            "--input",
            "-",
            "--window",
            "tumbling:1m",
            "--out",
            "o",
            "--checkpoint-dir",
            "c2",
        ],
        "standard input",
    );
}

/// A followed run that goes quiet still checkpoints its last epoch once the interval passes:
/// a restart after kill -9 reads nothing again.
#[test]
fn an_idle_followed_run_checkpoints_its_last_epoch() {
    let dir = TestDir::new();
    generate(&dir, 1000);
    let mut args: Vec<&str> = vec!["aggregate", "--input", "data/events.jsonl", "--out", "out"];
    args.extend(FLAGS);
    args.extend(["--checkpoint-dir", "ckpt", "--checkpoint-interval", "200ms"]);
    let mut child = spawn(&dir, &args);
    wait_for_checkpoint(&dir.join("ckpt"), 0, &mut child);
    kill_9(&mut child);
    let child = spawn(&dir, &args);
    std::thread::sleep(Duration::from_millis(300));
    terminate(child);
    let summary = summary(&dir, "out");
    assert_eq!(
        summary["resumed_after_epoch"].as_u64(),
        Some(0),
        "{summary}"
    );
    assert_eq!(summary["run_records_read"].as_u64(), Some(0), "{summary}");
}
