//! The planner's epochs, on real files.

use std::fs;
use std::io::Write;
use std::time::Duration;

use amend_operators::event::AUDIT_FILE_BASE;
use amend_operators::ingest::source::{Epoch, Format};

use super::dir::DIR_SCAN_EVERY;
use super::file::Settle;
use super::*;

fn ranges(epochs: &[Epoch]) -> Vec<(u64, u64, u64)> {
    epochs
        .iter()
        .map(|e| {
            let (start, end) = e.span();
            (e.epoch, start, end.unwrap_or(u64::MAX))
        })
        .collect()
}

#[test]
fn following_plans_complete_lines_only_and_each_growth_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.jsonl");
    fs::write(&path, "a\nb\npart").unwrap();
    let mut planner = Planner::new(&[Input::File(path.clone())], true).unwrap();
    assert_eq!(ranges(&planner.poll().unwrap()), vec![(0, 0, 4)]);
    assert!(planner.poll().unwrap().is_empty());
    let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(b"ial").unwrap();
    assert!(planner.poll().unwrap().is_empty());
    f.write_all(b"\nc\n").unwrap();
    assert_eq!(ranges(&planner.poll().unwrap()), vec![(1, 4, 14)]);
    assert!(!planner.finished());
}

#[test]
fn a_large_append_written_in_pieces_is_one_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.jsonl");
    fs::write(&path, "a\n").unwrap();
    let mut planner = Planner::new(&[Input::File(path.clone())], true).unwrap();
    // Margins wide enough for a loaded machine; the defaults are 10 ms and 200 ms.
    planner.planning.settle = Settle {
        quiet: Duration::from_millis(500),
        limit: Duration::from_secs(10),
    };
    assert_eq!(ranges(&planner.poll().unwrap()), vec![(0, 0, 2)]);
    // 4 MiB of lines in four pieces, a few milliseconds apart, as a writer copying a
    // file in does; the planner looks while the first piece is already there.
    let line = "x".repeat(1023) + "\n";
    let piece = line.repeat(1024);
    let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(piece.as_bytes()).unwrap();
    let writer = std::thread::spawn(move || {
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(3));
            f.write_all(piece.as_bytes()).unwrap();
        }
    });
    let chunks = planner.poll().unwrap();
    writer.join().unwrap();
    assert_eq!(ranges(&chunks), vec![(1, 2, 2 + (4 << 20))]);
    // A small append is planned at once, as it is.
    let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(b"b\n").unwrap();
    let end = 2 + (4 << 20) + 2;
    assert_eq!(ranges(&planner.poll().unwrap()), vec![(2, end - 2, end)]);
}

#[test]
fn without_following_each_file_is_one_whole_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.csv"));
    fs::write(&a, "x\ny").unwrap();
    fs::write(&b, "h\n1\n").unwrap();
    let mut planner = Planner::new(&[Input::File(a.clone()), Input::File(b)], false).unwrap();
    fs::write(&a, "x\ny\nz").unwrap();
    assert_eq!(ranges(&planner.poll().unwrap()), vec![(0, 0, 5), (1, 0, 4)]);
    assert!(planner.finished());
    assert!(planner.poll().unwrap().is_empty());
}

#[test]
fn directories_give_their_files_in_name_order_and_new_ones_later() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("sub")).unwrap();
    fs::write(dir.path().join("b.jsonl"), "1\n").unwrap();
    fs::write(dir.path().join("sub/a.jsonl"), "2\n").unwrap();
    fs::write(dir.path().join("a.jsonl"), "3\n").unwrap();
    fs::write(dir.path().join(".a.jsonl.tmp"), "x\n").unwrap();
    fs::write(dir.path().join("notes.txt"), "x\n").unwrap();
    let names = |chunks: &[Epoch]| -> Vec<String> {
        chunks
            .iter()
            .map(|c| {
                c.input
                    .path
                    .strip_prefix(dir.path())
                    .unwrap()
                    .display()
                    .to_string()
            })
            .collect()
    };
    let mut planner = Planner::new(&[Input::Dir(dir.path().to_owned())], true).unwrap();
    assert_eq!(
        names(&planner.poll().unwrap()),
        ["a.jsonl", "b.jsonl", "sub/a.jsonl"]
    );
    fs::write(dir.path().join("c.jsonl"), "4\n").unwrap();
    std::thread::sleep(DIR_SCAN_EVERY);
    let chunks = planner.poll().unwrap();
    assert_eq!(names(&chunks), ["c.jsonl"]);
    assert_eq!(chunks[0].epoch, 3);
    assert_eq!(chunks[0].input.index, 3);
}

#[test]
fn every_file_is_an_epoch_even_when_empty() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    fs::write(&a, "").unwrap();
    fs::write(&b, "partial").unwrap();
    for follow in [false, true] {
        let inputs = [Input::File(a.clone()), Input::File(b.clone())];
        let mut planner = Planner::new(&inputs, follow).unwrap();
        let end = if follow { 0 } else { 7 };
        assert_eq!(
            ranges(&planner.poll().unwrap()),
            vec![(0, 0, 0), (1, 0, end)]
        );
    }
}

#[test]
fn audit_logs_come_after_every_input_once_even_when_following() {
    let dir = tempfile::tempdir().unwrap();
    let (input, log) = (dir.path().join("e.jsonl"), dir.path().join("app.log"));
    fs::write(&input, "a\n").unwrap();
    fs::write(&log, "x\ny").unwrap();
    let mut planner = Planner::new(&[Input::File(input.clone())], true)
        .unwrap()
        .with_audit_logs(std::slice::from_ref(&log))
        .unwrap();
    let chunks = planner.poll().unwrap();
    assert_eq!(ranges(&chunks), vec![(0, 0, 2), (1, 0, 3)]);
    assert_eq!(chunks[1].input.index, AUDIT_FILE_BASE);
    assert_eq!(chunks[1].input.format, Format::AuditLog);
    fs::write(&log, "x\ny\nz\n").unwrap();
    fs::write(&input, "a\nb\n").unwrap();
    // The log is read once; the followed input goes on.
    assert_eq!(ranges(&planner.poll().unwrap()), vec![(2, 2, 4)]);
}

#[test]
fn a_shrinking_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.jsonl");
    fs::write(&path, "a\nb\n").unwrap();
    let mut planner = Planner::new(&[Input::File(path.clone())], true).unwrap();
    planner.poll().unwrap();
    fs::write(&path, "a\n").unwrap();
    let err = planner.poll().unwrap_err().to_string();
    assert!(err.contains("shrank"), "{err}");
}
