//! Inputs and epochs: which inputs exist, the part of an input an epoch reads, how it splits
//! among workers, and reading its lines.
//!
//! A plain file is split into one byte range per worker. A line belongs to the range that holds
//! its first byte, so every line is read by exactly one worker whatever the split; a worker finds
//! its first line by looking at the byte before its range. A gzip file cannot be split: one
//! worker (chosen by file index) reads it whole. Offsets are into the decompressed bytes.
//!
//! Lines end at `\n`; a trailing `\r` is removed, and so is a UTF-8 byte-order mark at the
//! start of a file. A line longer than the limit is not held in memory: its first
//! [`RAW_LIMIT`] bytes are kept for the dead letter and the rest is
//! skipped.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Cursor, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flate2::read::MultiGzDecoder;

use crate::data::event::RAW_LIMIT;
use crate::ingest::messages::Messages;

/// How a file's lines are encoded.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line.
    JsonLines,
    /// CSV with a header row.
    Csv,
    /// An audit log (`--audit-log`): any lines, some of which carry events.
    AuditLog,
}

/// One input file, with its place among all inputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputFile {
    /// The path as given.
    pub path: PathBuf,
    /// Index among all inputs: `--input` files first, then `--corrections`.
    pub index: u32,
    /// Line encoding, from the file name.
    pub format: Format,
    /// Whether the file is gzip-compressed (`.gz`).
    pub gzip: bool,
    /// Size on disk in bytes.
    pub len: u64,
}

/// Why an input cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The file name does not say how to read it.
    #[error(
        "{path}: unknown file type; name it .jsonl, .ndjson, .json or .csv, optionally with .gz"
    )]
    UnknownFormat {
        /// The file.
        path: String,
    },
    /// The file cannot be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: io::Error,
    },
}

impl InputFile {
    /// Checks that `path` can be read and learns its format from its name.
    pub fn open(path: &Path, index: u32) -> Result<InputFile, SourceError> {
        let shown = path.display().to_string();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        let (stem, gzip) = match name.strip_suffix(".gz") {
            Some(stem) => (stem, true),
            None => (name.as_str(), false),
        };
        let format = if stem.ends_with(".csv") {
            Format::Csv
        } else if [".jsonl", ".ndjson", ".json"]
            .iter()
            .any(|s| stem.ends_with(s))
        {
            Format::JsonLines
        } else {
            return Err(SourceError::UnknownFormat { path: shown });
        };
        let io = |source| SourceError::Io {
            path: shown.clone(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        if !meta.is_file() {
            return Err(io(io::Error::other("not a regular file")));
        }
        File::open(path).map_err(io)?;
        Ok(InputFile {
            path: path.to_owned(),
            index,
            format,
            gzip,
            len: meta.len(),
        })
    }

    /// Checks that the audit log `path` can be read; any name will do (`.gz` is decompressed).
    pub fn open_audit(path: &Path, index: u32) -> Result<InputFile, SourceError> {
        let shown = path.display().to_string();
        let io = |source| SourceError::Io {
            path: shown.clone(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        if !meta.is_file() {
            return Err(io(io::Error::other("not a regular file")));
        }
        File::open(path).map_err(io)?;
        let gzip = path
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("gz"));
        Ok(InputFile {
            path: path.to_owned(),
            index,
            format: Format::AuditLog,
            gzip,
            len: meta.len(),
        })
    }

    /// Standard input, read as JSON Lines, as input number `index`.
    pub fn stdin(index: u32) -> InputFile {
        InputFile {
            path: PathBuf::from("-"),
            index,
            format: Format::JsonLines,
            gzip: false,
            len: 0,
        }
    }

    /// A topic, named by its URL, as input number `index`: its messages are JSON records.
    pub fn topic(url: &str, index: u32) -> InputFile {
        InputFile {
            path: PathBuf::from(url),
            index,
            format: Format::JsonLines,
            gzip: false,
            len: 0,
        }
    }

    /// Whether this is standard input.
    pub fn is_stdin(&self) -> bool {
        self.path.as_os_str() == "-"
    }

    /// Opens a reader for the lines starting in `[start, end)`.
    pub fn lines(&self, start: u64, end: u64, max_line: usize) -> io::Result<LineReader> {
        let reader: Box<dyn BufRead + Send> = if self.gzip {
            let file = File::open(&self.path)?;
            Box::new(BufReader::with_capacity(
                1 << 16,
                MultiGzDecoder::new(BufReader::new(file)),
            ))
        } else {
            let mut file = File::open(&self.path)?;
            file.seek(SeekFrom::Start(start.saturating_sub(1)))?;
            Box::new(BufReader::with_capacity(1 << 16, file))
        };
        LineReader::new(reader, start, end, max_line, !self.gzip && start > 0)
    }

    /// Reads the file's first line (a CSV header), without its terminator.
    pub fn first_line(&self, max_line: usize) -> io::Result<Option<Vec<u8>>> {
        let mut lines = self.lines(0, u64::MAX, max_line)?;
        Ok(lines.next_line()?.map(|line| line.bytes.to_vec()))
    }
}

/// One epoch of input, as the planner decides it: which input, and which part of it. Every
/// worker gets every epoch and reads its own share ([`Epoch::share`]).
#[derive(Clone, Debug)]
pub struct Epoch {
    /// The epoch.
    pub epoch: u64,
    /// The input it reads.
    pub input: Arc<InputFile>,
    /// Which part of the input.
    pub part: Part,
}

/// The part of an input one epoch reads.
#[derive(Clone, Debug)]
pub enum Part {
    /// The complete lines starting in `[start, end)` of a file, which workers read themselves;
    /// `end` is `None` for a gzip file, which is read whole.
    Bytes {
        /// Offset of the first byte.
        start: u64,
        /// Offset after the last byte.
        end: Option<u64>,
        /// The number of lines before `start`, where it is known without reading the file.
        lines_before: Option<u64>,
    },
    /// A chunk of a stream (standard input), held in memory.
    Held {
        /// Offset of its first byte in the stream.
        start: u64,
        /// Its bytes: complete lines.
        data: Arc<[u8]>,
        /// The number of lines of the stream before it.
        lines_before: u64,
    },
    /// A batch of a topic's messages, one value per line, held in memory.
    Messages(Messages),
}

impl Epoch {
    /// A whole file, as one epoch.
    pub fn whole(input: Arc<InputFile>, epoch: u64) -> Epoch {
        let end = (!input.gzip).then_some(input.len);
        Epoch {
            input,
            epoch,
            part: Part::Bytes {
                start: 0,
                end,
                lines_before: Some(0),
            },
        }
    }

    /// The offsets of the epoch's first byte and after its last (`None` for a gzip file read
    /// whole).
    pub fn span(&self) -> (u64, Option<u64>) {
        match &self.part {
            Part::Bytes { start, end, .. } => (*start, *end),
            Part::Held { start, data, .. } => (*start, Some(start + data.len() as u64)),
            Part::Messages(batch) => (0, Some(batch.data.len() as u64)),
        }
    }

    /// The byte range of `worker` among `workers`, or `None` if it reads nothing of this
    /// epoch. A line belongs to the range that holds its first byte; a gzip file goes whole to
    /// one worker, chosen by the file's index.
    pub fn share(&self, worker: usize, workers: usize) -> Option<(u64, u64)> {
        let (start, end) = match self.span() {
            (_, None) => {
                let mine = self.input.index as usize % workers == worker;
                return mine.then_some((0, u64::MAX));
            }
            (start, Some(end)) => (start, end),
        };
        let len = end - start;
        let share = |w: u64| start + (len as u128 * w as u128 / workers as u128) as u64;
        let (from, to) = (share(worker as u64), share(worker as u64 + 1));
        (from < to).then_some((from, to))
    }

    /// Opens a reader for the lines of the epoch starting in `[start, end)`.
    pub fn lines(&self, start: u64, end: u64, max_line: usize) -> io::Result<LineReader> {
        match &self.part {
            Part::Bytes { .. } => self.input.lines(start, end, max_line),
            Part::Held {
                start: first, data, ..
            } => {
                let mut cursor = Cursor::new(Arc::clone(data));
                let behind = start > *first;
                cursor.set_position(start.saturating_sub(first + behind as u64));
                LineReader::new(Box::new(cursor), start, end, max_line, behind)
            }
            Part::Messages(batch) => {
                let mut cursor = Cursor::new(Arc::clone(&batch.data));
                cursor.set_position(start.saturating_sub(1));
                LineReader::new(Box::new(cursor), start, end, max_line, start > 0)
            }
        }
    }

    /// The number of lines that start before `offset`, an offset inside the epoch.
    pub fn lines_before(&self, offset: u64) -> io::Result<u64> {
        let count = |bytes: &[u8]| memchr::memchr_iter(b'\n', bytes).count() as u64;
        match &self.part {
            Part::Held {
                start,
                data,
                lines_before,
            } => Ok(lines_before + count(&data[..(offset - start) as usize])),
            Part::Bytes { .. } => lines_before(&self.input.path, offset),
            Part::Messages(batch) => Ok(count(&batch.data[..offset as usize])),
        }
    }
}

impl LineReader {
    /// Lines of `reader`, which is at `start`, or at `start - 1` if `behind`: then the line
    /// holding that byte belongs to the previous range unless the byte ends it.
    fn new(
        mut reader: Box<dyn BufRead + Send>,
        start: u64,
        end: u64,
        max_line: usize,
        behind: bool,
    ) -> io::Result<LineReader> {
        let mut lines = LineReader {
            reader: Box::new(io::empty()) as Box<dyn BufRead + Send>,
            offset: 0,
            end,
            max_line,
            buf: Vec::new(),
            len: 0,
        };
        lines.offset = start;
        if behind {
            let mut before = [0u8];
            reader.read_exact(&mut before)?;
            if before[0] != b'\n' {
                let mut skipped = Vec::new();
                let n = reader.read_until(b'\n', &mut skipped)?;
                lines.offset += n as u64;
            }
        }
        lines.reader = reader;
        Ok(lines)
    }
}

/// One physical line.
#[derive(Debug)]
pub struct Line<'a> {
    /// Byte offset of the line's start.
    pub offset: u64,
    /// The line without its terminator; only the first bytes if it is too long.
    pub bytes: &'a [u8],
    /// The full length in bytes (without terminator), which exceeds the limit if too long.
    pub len: u64,
    /// Whether the line exceeds the limit.
    pub too_long: bool,
}

/// Reads the lines of one byte range, never holding more than the line limit in memory.
pub struct LineReader {
    reader: Box<dyn BufRead + Send>,
    offset: u64,
    end: u64,
    max_line: usize,
    buf: Vec<u8>,
    len: u64,
}

impl LineReader {
    /// The next line starting before the range's end, or `None`.
    pub fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        if self.offset >= self.end {
            return Ok(None);
        }
        self.buf.clear();
        self.len = 0;
        let keep = self.max_line.max(RAW_LIMIT) + 1;
        let mut consumed = 0u64;
        let mut ended = false;
        loop {
            let available = self.reader.fill_buf()?;
            if available.is_empty() {
                break;
            }
            let (take, found) = match memchr::memchr(b'\n', available) {
                Some(i) => (i, true),
                None => (available.len(), false),
            };
            let room = keep.saturating_sub(self.buf.len()).min(take);
            self.buf.extend_from_slice(&available[..room]);
            self.len += take as u64;
            let step = take + found as usize;
            self.reader.consume(step);
            consumed += step as u64;
            if found {
                ended = true;
                break;
            }
        }
        if consumed == 0 {
            return Ok(None);
        }
        let offset = self.offset;
        self.offset += consumed;
        // A CR before the LF belongs to the terminator.
        if ended && self.buf.last() == Some(&b'\r') && self.len as usize == self.buf.len() {
            self.buf.pop();
            self.len -= 1;
        }
        // A byte-order mark (as spreadsheet exports write) is not part of the first field.
        if offset == 0 && self.buf.starts_with(b"\xEF\xBB\xBF") {
            self.buf.drain(..3);
            self.len -= 3;
        }
        let too_long = self.len > self.max_line as u64;
        Ok(Some(Line {
            offset,
            bytes: &self.buf,
            len: self.len,
            too_long,
        }))
    }

    /// Byte offset of the next line.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

/// Counts the lines that start before `offset` in a plain file: the line number base of a range.
pub fn lines_before(path: &Path, offset: u64) -> io::Result<u64> {
    let mut reader = BufReader::with_capacity(1 << 20, File::open(path)?.take(offset));
    let mut count = 0u64;
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(count);
        }
        count += memchr::memchr_iter(b'\n', chunk).count() as u64;
        let n = chunk.len();
        reader.consume(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(name: &str, content: &[u8]) -> (tempdir::Dir, InputFile) {
        let dir = tempdir::Dir::new();
        let path = dir.0.join(name);
        let mut f = File::create(&path).unwrap();
        f.write_all(content).unwrap();
        let input = InputFile::open(&path, 0).unwrap();
        (dir, input)
    }

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                use std::sync::atomic::{AtomicU64, Ordering};
                static N: AtomicU64 = AtomicU64::new(0);
                let n = N.fetch_add(1, Ordering::Relaxed);
                let p =
                    std::env::temp_dir().join(format!("amend-source-{}-{n}", std::process::id()));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    fn read_all(input: &InputFile, workers: usize, max: usize) -> Vec<(u64, Vec<u8>, bool)> {
        let epoch = Epoch::whole(Arc::new(input.clone()), 0);
        let mut out = Vec::new();
        for w in 0..workers {
            if let Some((start, end)) = epoch.share(w, workers) {
                let mut lines = epoch.lines(start, end, max).unwrap();
                while let Some(line) = lines.next_line().unwrap() {
                    out.push((line.offset, line.bytes.to_vec(), line.too_long));
                }
            }
        }
        out
    }

    #[test]
    fn every_line_is_read_once_for_any_worker_count() {
        let content = b"a\nbb\r\n\nccc\ndddd\ne";
        let (_dir, input) = file("x.jsonl", content);
        let expected = read_all(&input, 1, 100);
        assert_eq!(
            expected
                .iter()
                .map(|l| (l.0, l.1.clone()))
                .collect::<Vec<_>>(),
            vec![
                (0, b"a".to_vec()),
                (2, b"bb".to_vec()),
                (6, b"".to_vec()),
                (7, b"ccc".to_vec()),
                (11, b"dddd".to_vec()),
                (16, b"e".to_vec())
            ]
        );
        for workers in 2..=20 {
            assert_eq!(
                read_all(&input, workers, 100),
                expected,
                "{workers} workers"
            );
        }
    }

    #[test]
    fn long_lines_are_cut_not_held() {
        let mut content = vec![b'x'; RAW_LIMIT * 3];
        content.extend_from_slice(b"\nok\n");
        let (_dir, input) = file("x.jsonl", &content);
        let lines = read_all(&input, 1, 1000);
        assert_eq!(lines.len(), 2);
        assert!(lines[0].2);
        assert_eq!(lines[0].1.len(), RAW_LIMIT + 1);
        assert_eq!(
            lines[1],
            ((RAW_LIMIT * 3 + 1) as u64, b"ok".to_vec(), false)
        );
    }

    #[test]
    fn gzip_files_are_read_whole_by_one_worker() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"one\ntwo\n").unwrap();
        let (_dir, input) = file("x.csv.gz", &gz.finish().unwrap());
        assert_eq!(input.format, Format::Csv);
        assert!(input.gzip);
        let lines = read_all(&input, 3, 100);
        assert_eq!(
            lines,
            vec![(0, b"one".to_vec(), false), (4, b"two".to_vec(), false)]
        );
        assert_eq!(Epoch::whole(Arc::new(input), 0).share(1, 3), None);
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_first_line() {
        let (_dir, input) = file("x.csv", b"\xEF\xBB\xBFid,key\n1,a\n");
        let lines = read_all(&input, 1, 100);
        assert_eq!(lines[0], (0, b"id,key".to_vec(), false));
        assert_eq!(lines[1], (10, b"1,a".to_vec(), false));
    }

    #[test]
    fn line_numbers_before_an_offset() {
        let (_dir, input) = file("x.jsonl", b"a\nb\nc\n");
        assert_eq!(lines_before(&input.path, 0).unwrap(), 0);
        assert_eq!(lines_before(&input.path, 4).unwrap(), 2);
    }

    #[test]
    fn unknown_extensions_and_missing_files_are_errors() {
        assert!(matches!(
            InputFile::open(Path::new("data.txt"), 0),
            Err(SourceError::UnknownFormat { .. })
        ));
        let err = InputFile::open(Path::new("/no/such/file.jsonl"), 0).unwrap_err();
        assert!(
            err.to_string().starts_with("/no/such/file.jsonl: "),
            "{err}"
        );
    }
}
