//! A file as a source: one epoch of the whole file, then, when followed, one per growth by
//! complete lines. With `--epoch-bytes`, a large file (or growth) is split into epochs of about
//! that many bytes at line boundaries; resumed from a checkpoint, a file is read from where the
//! checkpoint left it.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use amend_operators::ingest::source::{Epoch, InputFile, Part};

use super::{Exact, Planning, Reached, Replan, Source};

/// A file being read: what has been planned of it so far.
pub(super) struct FileSource {
    file: Arc<InputFile>,
    /// Whether to plan what is appended to it.
    follow: bool,
    /// Offset after the last planned byte.
    planned: u64,
    /// Whether its first epoch is planned.
    started: bool,
    /// Whether nothing more will be read (a gzip file is read once, whole).
    done: bool,
    /// The most bytes one epoch takes, about (`--epoch-bytes`).
    epoch_bytes: Option<u64>,
    /// Whether its last poll left complete lines unplanned (an epoch was capped).
    behind: bool,
}

impl FileSource {
    /// `file`, followed if `follow` and it can be (a gzip file is read once, whole), in epochs
    /// of about `epoch_bytes`; from where `reached` says a checkpoint left it.
    pub(super) fn new(
        file: InputFile,
        follow: bool,
        epoch_bytes: Option<u64>,
        reached: Option<Reached>,
    ) -> FileSource {
        FileSource {
            file: Arc::new(file),
            follow,
            planned: reached.as_ref().map_or(0, |r| r.offset),
            started: reached.is_some(),
            done: reached.is_some_and(|r| r.done),
            epoch_bytes,
            behind: false,
        }
    }

    /// Where an epoch starting at `self.planned` ends, at most `end`: at the end of the first
    /// line past `--epoch-bytes`.
    fn cap(&self, end: u64) -> io::Result<u64> {
        match self.epoch_bytes {
            Some(bytes) if end - self.planned > bytes => {
                line_end_after(&self.file.path, self.planned + bytes, end)
            }
            _ => Ok(end),
        }
    }

    /// The epoch `[self.planned, end)`, planned.
    fn plan(&mut self, planning: &mut Planning, end: u64) -> Epoch {
        let epoch = Epoch {
            input: Arc::clone(&self.file),
            epoch: planning.epoch(),
            part: Part::Bytes {
                start: self.planned,
                end: Some(end),
                lines_before: (self.planned == 0).then_some(0),
            },
        };
        self.planned = end;
        epoch
    }
}

impl Source for FileSource {
    /// The next epoch of the file. The first is the whole file (its complete lines when
    /// following), even if empty, so that every input file is an epoch; then, when following,
    /// each growth by complete lines.
    fn poll(&mut self, planning: &mut Planning) -> io::Result<Vec<Epoch>> {
        if self.done {
            return Ok(Vec::new());
        }
        let file = &self.file;
        let first = self.planned == 0 && !self.started;
        self.started = true;
        if file.gzip {
            // A compressed file is read whole, once: in a followed directory it must be moved
            // in complete.
            self.done = true;
            return Ok(vec![Epoch::whole(Arc::clone(file), planning.epoch())]);
        }
        if !self.follow {
            // Every input file is an epoch, even an empty one; one resumed has none left if
            // it was read to its end.
            let len = fs::metadata(&file.path)?.len();
            if len <= self.planned && !first {
                self.done = true;
                return Ok(Vec::new());
            }
            let end = self.cap(len)?;
            self.done = end >= len;
            self.behind = !self.done;
            return Ok(vec![self.plan(planning, end)]);
        }
        let len = settled_len(&file.path, self.planned, planning.settle)?;
        if len < self.planned {
            return Err(io::Error::other(format!(
                "{}: the file shrank from {} to {len} bytes while being followed; \
                 amend follows files that are only appended to",
                file.path.display(),
                self.planned
            )));
        }
        let complete = complete_lines_end(&file.path, self.planned, len)?;
        self.behind = false;
        if complete <= self.planned && !first {
            return Ok(Vec::new());
        }
        let end = self.cap(complete)?;
        self.behind = end < complete;
        Ok(vec![self.plan(planning, end)])
    }

    fn done(&self) -> bool {
        self.done
    }

    fn behind(&self) -> bool {
        self.behind
    }

    fn exact(&mut self, planning: &mut Planning, replan: &Replan) -> io::Result<Exact> {
        let file = &self.file;
        let mine = !self.done
            && file.path.display().to_string() == replan.source
            && replan.start == Some(self.planned);
        if !mine {
            return Ok(Exact::Other);
        }
        if file.gzip {
            (self.started, self.done) = (true, true);
            return Ok(Exact::Planned(Epoch::whole(
                Arc::clone(file),
                planning.epoch(),
            )));
        }
        let len = fs::metadata(&file.path)?.len();
        let Some(end) = replan.end.filter(|end| *end <= len) else {
            return Ok(Exact::Other);
        };
        self.started = true;
        self.done = !self.follow && end >= len;
        Ok(Exact::Planned(self.plan(planning, end)))
    }
}

/// The offset after the first `\n` at or after `from` in a file, or `len` if there is none
/// before it.
fn line_end_after(path: &Path, from: u64, len: u64) -> io::Result<u64> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(from))?;
    let mut buf = vec![0u8; 1 << 16];
    let mut at = from;
    while at < len {
        let n = file.read(&mut buf[..(len - at).min(1 << 16) as usize])?;
        if n == 0 {
            break;
        }
        if let Some(i) = memchr::memchr(b'\n', &buf[..n]) {
            return Ok(at + i as u64 + 1);
        }
        at += n as u64;
    }
    Ok(len)
}

/// A followed file that has grown by at least this much since it was last planned is watched
/// until the write settles (see [`settled_len`]).
const LARGE_APPEND: u64 = 1 << 20;

/// When a large append has settled: once the file has not grown for `quiet`, or after `limit`
/// in all.
#[derive(Copy, Clone, Debug)]
pub(super) struct Settle {
    pub(super) quiet: Duration,
    pub(super) limit: Duration,
}

pub(super) const SETTLE: Settle = Settle {
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
    // The common case while following: nothing new, and nothing to open or read.
    if len <= from {
        return Ok(from);
    }
    let mut file = File::open(path)?;
    let mut end = len;
    let mut buf = vec![0u8; (len - from).min(1 << 16) as usize];
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
