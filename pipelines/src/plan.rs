//! Planning epochs: which bytes of which input each epoch is.
//!
//! Without `--follow`, each file is one epoch, whole, in input order (a directory gives its
//! files in name order), and standard input gives an epoch per chunk of lines as they arrive.
//! With `--follow`, the planner first plans the complete lines present at start-up, then
//! polls: a file that grew by complete lines becomes a new epoch of those lines, and a new
//! file in a directory becomes an epoch of its own. A partial last line is never planned, so
//! a writer's half-written line waits until its `\n` arrives.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::time::{Duration, Instant};

use amend_operators::event::AUDIT_FILE_BASE;
use amend_operators::source::{Chunk, Format, InputFile};

/// An input as given on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A file.
    File(PathBuf),
    /// A directory: its files (recursively, in name order) are inputs.
    Dir(PathBuf),
    /// Standard input (`-`), as JSON Lines.
    Stdin,
}

impl Input {
    /// Classifies a command-line path, which must exist unless it is `-`.
    pub fn from_path(path: &Path) -> Result<Input, String> {
        if path.as_os_str() == "-" {
            return Ok(Input::Stdin);
        }
        match fs::metadata(path) {
            Ok(meta) if meta.is_dir() => Ok(Input::Dir(path.to_owned())),
            Ok(_) => Ok(Input::File(path.to_owned())),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }
}

/// The files of a directory that are inputs, recursively, in path order; hidden files and
/// files of other types are left alone (so a writer can prepare `.name.tmp` and rename it).
pub fn dir_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_lowercase();
            if name.starts_with('.') {
                continue;
            }
            if entry.file_type()?.is_dir() {
                stack.push(path);
            } else if is_input_name(&name) {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

fn is_input_name(name: &str) -> bool {
    let stem = name.strip_suffix(".gz").unwrap_or(name);
    [".jsonl", ".ndjson", ".json", ".csv"]
        .iter()
        .any(|ext| stem.ends_with(ext))
}

/// A file being read: what has been planned of it so far.
struct Tailed {
    file: Arc<InputFile>,
    /// Offset after the last planned byte.
    planned: u64,
    /// Whether its first epoch is planned.
    started: bool,
    /// Whether nothing more will be read (a gzip file is read once, whole).
    done: bool,
}

enum Source {
    File(Tailed),
    Dir {
        path: PathBuf,
        files: Vec<Tailed>,
        seen: BTreeSet<PathBuf>,
        scanned: Option<Instant>,
    },
    Stdin(StdinSource),
}

struct StdinSource {
    file: Arc<InputFile>,
    rx: Receiver<Vec<u8>>,
    /// Bytes after the last complete line.
    carry: Vec<u8>,
    /// Offset of `carry`'s first byte in the stream.
    offset: u64,
    /// Lines before `offset`.
    lines: u64,
    done: bool,
}

/// The most bytes of standard input taken into one epoch.
const STDIN_EPOCH_BYTES: usize = 16 << 20;
/// How often a followed directory is listed, at most.
const DIR_SCAN_EVERY: Duration = Duration::from_millis(100);

/// Plans epochs over the inputs.
pub struct Planner {
    sources: Vec<Source>,
    follow: bool,
    next_epoch: u64,
    next_index: u32,
    started: bool,
    settle: Settle,
}

impl Planner {
    /// A planner over `inputs` in ingestion order.
    pub fn new(inputs: &[Input], follow: bool) -> anyhow::Result<Planner> {
        let mut planner = Planner {
            sources: Vec::new(),
            follow,
            next_epoch: 0,
            next_index: 0,
            started: false,
            settle: SETTLE,
        };
        for input in inputs {
            let source = match input {
                Input::File(path) => Source::File(planner.tailed(path)?),
                Input::Dir(path) => {
                    let mut seen = BTreeSet::new();
                    let mut files = Vec::new();
                    for file in dir_files(path).map_err(|e| {
                        anyhow::anyhow!("{}: cannot list directory: {e}", path.display())
                    })? {
                        files.push(planner.tailed(&file)?);
                        seen.insert(file);
                    }
                    Source::Dir {
                        path: path.clone(),
                        files,
                        seen,
                        scanned: Some(Instant::now()),
                    }
                }
                Input::Stdin => {
                    let file = Arc::new(InputFile::stdin(planner.index()?));
                    Source::Stdin(StdinSource {
                        file,
                        rx: read_stdin(),
                        carry: Vec::new(),
                        offset: 0,
                        lines: 0,
                        done: false,
                    })
                }
            };
            planner.sources.push(source);
        }
        Ok(planner)
    }

    /// Adds audit logs, planned after every other input: each is read whole, once, as one
    /// epoch (also when following), and numbered from [`AUDIT_FILE_BASE`].
    pub fn with_audit_logs(mut self, paths: &[PathBuf]) -> anyhow::Result<Planner> {
        for (i, path) in paths.iter().enumerate() {
            let index = u32::try_from(i)
                .ok()
                .and_then(|i| AUDIT_FILE_BASE.checked_add(i))
                .ok_or_else(|| anyhow::anyhow!("too many audit logs"))?;
            let file = InputFile::open_audit(path, index, 0)?;
            self.sources.push(Source::File(Tailed {
                file: Arc::new(file),
                planned: 0,
                started: false,
                done: false,
            }));
        }
        Ok(self)
    }

    fn index(&mut self) -> anyhow::Result<u32> {
        let index = self.next_index;
        self.next_index = index
            .checked_add(1)
            .ok_or_else(|| anyhow::anyhow!("too many input files"))?;
        Ok(index)
    }

    fn tailed(&mut self, path: &Path) -> anyhow::Result<Tailed> {
        let index = self.index()?;
        let file = InputFile::open(path, index, 0)?;
        Ok(Tailed {
            file: Arc::new(file),
            planned: 0,
            started: false,
            done: false,
        })
    }

    /// Whether every input is read and no more will come.
    pub fn finished(&self) -> bool {
        if !self.started {
            return false;
        }
        if !self.follow {
            return self.sources.iter().all(|source| match source {
                Source::Stdin(stdin) => stdin.done,
                _ => true,
            });
        }
        // Following: only standard input ends, and only if it is all there is.
        self.sources
            .iter()
            .all(|source| matches!(source, Source::Stdin(stdin) if stdin.done))
    }

    /// The epochs that are ready now, in order; empty if there is nothing new.
    pub fn poll(&mut self) -> io::Result<Vec<Chunk>> {
        self.started = true;
        let (follow, settle) = (self.follow, self.settle);
        let mut chunks = Vec::new();
        let mut next_epoch = self.next_epoch;
        let mut next_index = self.next_index;
        let mut epoch = || {
            next_epoch += 1;
            next_epoch - 1
        };
        for source in &mut self.sources {
            match source {
                Source::File(tailed) => {
                    let follow = follow && tailed.file.format != Format::AuditLog;
                    chunks.extend(plan_file(tailed, follow, settle, &mut epoch)?);
                }
                Source::Dir {
                    path,
                    files,
                    seen,
                    scanned,
                } => {
                    if follow && scanned.is_none_or(|at| at.elapsed() >= DIR_SCAN_EVERY) {
                        *scanned = Some(Instant::now());
                        for file in dir_files(path)? {
                            if seen.insert(file.clone()) {
                                let index = next_index;
                                next_index += 1;
                                let opened = InputFile::open(&file, index, 0)
                                    .map_err(|e| io::Error::other(e.to_string()))?;
                                files.push(Tailed {
                                    file: Arc::new(opened),
                                    planned: 0,
                                    started: false,
                                    done: false,
                                });
                            }
                        }
                    }
                    for tailed in files.iter_mut() {
                        chunks.extend(plan_file(tailed, follow, settle, &mut epoch)?);
                    }
                }
                Source::Stdin(stdin) => chunks.extend(plan_stdin(stdin, &mut epoch)),
            }
        }
        self.next_epoch = next_epoch;
        self.next_index = next_index;
        Ok(chunks)
    }
}

/// The next epoch of a file. The first is the whole file (its complete lines when following),
/// even if empty, so that every input file is an epoch; then, when following, each growth by
/// complete lines.
fn plan_file(
    tailed: &mut Tailed,
    follow: bool,
    settle: Settle,
    epoch: &mut impl FnMut() -> u64,
) -> io::Result<Option<Chunk>> {
    if tailed.done {
        return Ok(None);
    }
    let file = &tailed.file;
    let first = tailed.planned == 0 && !tailed.started;
    tailed.started = true;
    if file.gzip || !follow {
        // A compressed file is read whole, once: in a followed directory it must be moved
        // in complete.
        tailed.done = true;
        let mut chunk = Chunk::whole(Arc::clone(file), epoch());
        if !file.gzip {
            chunk.end = fs::metadata(&file.path)?.len();
        }
        return Ok(Some(chunk));
    }
    let len = settled_len(&file.path, tailed.planned, settle)?;
    if len < tailed.planned {
        return Err(io::Error::other(format!(
            "{}: the file shrank from {} to {len} bytes while being followed; \
             amend follows files that are only appended to",
            file.path.display(),
            tailed.planned
        )));
    }
    let end = complete_lines_end(&file.path, tailed.planned, len)?;
    if end <= tailed.planned && !first {
        return Ok(None);
    }
    let chunk = Chunk {
        file: Arc::clone(file),
        epoch: epoch(),
        start: tailed.planned,
        end,
        data: None,
        lines_before: (tailed.planned == 0).then_some(0),
    };
    tailed.planned = end;
    Ok(Some(chunk))
}

/// A followed file that has grown by at least this much since it was last planned is watched
/// until the write settles (see [`settled_len`]).
const LARGE_APPEND: u64 = 1 << 20;

/// When a large append has settled: once the file has not grown for `quiet`, or after `limit`
/// in all.
#[derive(Copy, Clone, Debug)]
struct Settle {
    quiet: Duration,
    limit: Duration,
}

const SETTLE: Settle = Settle {
    quiet: Duration::from_millis(10),
    limit: Duration::from_millis(200),
};

/// The length of a followed file to plan up to. A small append is planned at once. A large
/// one is usually still being written, in pieces, when the planner first sees it: the file is
/// watched until it settles, so that the append becomes one epoch rather than several, each
/// of which would pay for its changelog and window digests.
fn settled_len(path: &Path, planned: u64, settle: Settle) -> io::Result<u64> {
    let mut len = fs::metadata(path)?.len();
    if len < planned.saturating_add(LARGE_APPEND) {
        return Ok(len);
    }
    let started = Instant::now();
    let mut grew = started;
    while grew.elapsed() < settle.quiet && started.elapsed() < settle.limit {
        std::thread::sleep(Duration::from_millis(1));
        let now = fs::metadata(path)?.len();
        if now != len {
            len = now;
            grew = Instant::now();
        }
    }
    Ok(len)
}

/// The offset after the last `\n` in `[from, len)` of a file, or `from` if there is none.
fn complete_lines_end(path: &Path, from: u64, len: u64) -> io::Result<u64> {
    let mut file = File::open(path)?;
    let mut end = len;
    let mut buf = vec![0u8; 1 << 16];
    while end > from {
        let start = end.saturating_sub(buf.len() as u64).max(from);
        let part = &mut buf[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(part)?;
        if let Some(i) = memchr::memrchr(b'\n', part) {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(from)
}

/// The next epoch of standard input: the complete lines that have arrived.
fn plan_stdin(stdin: &mut StdinSource, epoch: &mut impl FnMut() -> u64) -> Option<Chunk> {
    if stdin.done {
        return None;
    }
    while stdin.carry.len() < STDIN_EPOCH_BYTES {
        match stdin.rx.try_recv() {
            Ok(block) => stdin.carry.extend_from_slice(&block),
            Err(TryRecvError::Empty) => break,
            Err(TryRecvError::Disconnected) => {
                stdin.done = true;
                break;
            }
        }
    }
    // At the end of the stream, a last line without `\n` is complete.
    let end = if stdin.done {
        stdin.carry.len()
    } else {
        memchr::memrchr(b'\n', &stdin.carry).map_or(0, |i| i + 1)
    };
    if end == 0 {
        return None;
    }
    let rest = stdin.carry.split_off(end);
    let data: Arc<[u8]> = std::mem::replace(&mut stdin.carry, rest).into();
    let chunk = Chunk {
        file: Arc::clone(&stdin.file),
        epoch: epoch(),
        start: stdin.offset,
        end: stdin.offset + end as u64,
        lines_before: Some(stdin.lines),
        data: Some(Arc::clone(&data)),
    };
    stdin.offset += end as u64;
    stdin.lines += memchr::memchr_iter(b'\n', &data).count() as u64;
    Some(chunk)
}

/// Reads standard input on its own thread, in blocks; a bounded channel holds the producer
/// back when the dataflow is behind.
fn read_stdin() -> Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(64);
    std::thread::spawn(move || {
        let mut stdin = io::stdin().lock();
        loop {
            let mut block = vec![0u8; 1 << 20];
            match stdin.read(&mut block) {
                Ok(0) => return,
                Ok(n) => {
                    block.truncate(n);
                    if tx.send(block).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    eprintln!("amend: cannot read standard input: {e}");
                    return;
                }
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn ranges(chunks: &[Chunk]) -> Vec<(u64, u64, u64)> {
        chunks.iter().map(|c| (c.epoch, c.start, c.end)).collect()
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
        planner.settle = Settle {
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
        let names = |chunks: &[Chunk]| -> Vec<String> {
            chunks
                .iter()
                .map(|c| {
                    c.file
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
        assert_eq!(chunks[0].file.index, 3);
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
        assert_eq!(chunks[1].file.index, AUDIT_FILE_BASE);
        assert_eq!(chunks[1].file.format, Format::AuditLog);
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
}
