//! A file as a source: one epoch of the whole file, then, when followed, one per growth by
//! complete lines.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use amend_operators::ingest::source::{Epoch, InputFile, Part};

use super::{Planning, Source};

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
}

impl FileSource {
    /// `file`, followed if `follow` and it can be (a gzip file is read once, whole).
    pub(super) fn new(file: InputFile, follow: bool) -> FileSource {
        FileSource {
            file: Arc::new(file),
            follow,
            planned: 0,
            started: false,
            done: false,
        }
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
        if file.gzip || !self.follow {
            // A compressed file is read whole, once: in a followed directory it must be moved
            // in complete.
            self.done = true;
            let mut epoch = Epoch::whole(Arc::clone(file), planning.epoch());
            if let Part::Bytes { end, .. } = &mut epoch.part
                && !file.gzip
            {
                *end = Some(fs::metadata(&file.path)?.len());
            }
            return Ok(vec![epoch]);
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
        let end = complete_lines_end(&file.path, self.planned, len)?;
        if end <= self.planned && !first {
            return Ok(Vec::new());
        }
        let epoch = Epoch {
            input: Arc::clone(file),
            epoch: planning.epoch(),
            part: Part::Bytes {
                start: self.planned,
                end: Some(end),
                lines_before: (self.planned == 0).then_some(0),
            },
        };
        self.planned = end;
        Ok(vec![epoch])
    }

    fn done(&self) -> bool {
        self.done
    }
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
