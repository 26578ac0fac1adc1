//! Reading a worker's share of an epoch into records, by the rules every pipeline keeps
//! (docs/format.md, sections 1, 5 and 6).
//!
//! - A CSV file's first line is its header, not a record; a header that is too long or
//!   unusable makes every row of the file a dead letter that names it.
//! - Blank lines (empty or whitespace only) hold no record: skipped, not counted, but counted
//!   in line numbers, so a dead letter's line is the physical line an editor shows.
//! - A line longer than the limit is a bad record, kept cut at
//!   [`RAW_LIMIT`](crate::data::event::RAW_LIMIT) bytes.
//! - A line or record outside the replay [`Slice`] is skipped: read, but neither a record nor
//!   a dead letter.
//! - An audit-log line that holds no record is not a record ([`Read::NoAuditRecord`]).
//! - A bad line is a dead letter with its source, position, 1-based line number, reason and
//!   text. Line numbers before a worker's range are counted only when it finds a bad line.

use std::io;

use crate::data::decimal::Scale;
use crate::data::event::{DeadLetter, Position, Record, raw_text};
use crate::data::time::Millis;
use crate::ingest::audit::{AuditDecoder, AuditFormat};
use crate::ingest::decode::{BadRecord, CsvLayout, Decoder, FieldNames};
use crate::ingest::messages::{Messages, topic_position};
use crate::ingest::source::{Epoch, Format, InputFile, Part};

/// What one line of input is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Read {
    /// A valid record.
    Record(Record),
    /// A bad record.
    Dead(DeadLetter),
    /// A record outside the replay slice.
    Skipped,
    /// An audit-log line that holds no record: not a record at all.
    NoAuditRecord,
}

/// Which records a run takes: event times in `[from_time, to_time)`, and lines of the main
/// inputs starting at offsets in `[from_offset, to_offset)`; unset bounds are open.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Slice {
    /// Event times at or after this, if set.
    pub from_time: Option<Millis>,
    /// Event times before this, if set.
    pub to_time: Option<Millis>,
    /// Lines starting at or after this offset of each main-input file, if set.
    pub from_offset: Option<u64>,
    /// Lines starting before this offset of each main-input file, if set.
    pub to_offset: Option<u64>,
}

impl Slice {
    /// Whether the line starting at `offset` of `input` is in the offset slice. Audit logs are
    /// read whole: their offsets are positions in another file.
    pub fn admits_offset(&self, input: &InputFile, offset: u64) -> bool {
        input.format == Format::AuditLog
            || (self.from_offset.is_none_or(|from| offset >= from)
                && self.to_offset.is_none_or(|to| offset < to))
    }

    /// Whether a record with event time `ts` is in the time slice.
    pub fn admits_time(&self, ts: Millis) -> bool {
        self.from_time.is_none_or(|from| ts >= from) && self.to_time.is_none_or(|to| ts < to)
    }
}

/// Reads lines into records; one per worker.
#[derive(Debug)]
pub struct Reader {
    input: Decoder,
    audit: Option<AuditDecoder>,
    slice: Slice,
    max_line_bytes: usize,
}

impl Reader {
    /// Reads records with fields `names` and decimals at `scale`, audit logs by `audit` (if
    /// any are read), keeping the records of `slice`; lines longer than `max_line_bytes` are
    /// bad records.
    pub fn new(
        names: FieldNames,
        scale: Scale,
        audit: Option<AuditFormat>,
        slice: Slice,
        max_line_bytes: usize,
    ) -> Reader {
        Reader {
            audit: audit.map(|format| AuditDecoder::new(format, names.clone(), scale)),
            input: Decoder::new(names, scale),
            slice,
            max_line_bytes,
        }
    }

    /// Reads the lines of `epoch` starting in `[start, end)` (a worker's
    /// [share](Epoch::share)), in order, and passes what each is to `each`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use amend_operators::ingest::read::{Read, Reader, Slice};
    /// use amend_operators::ingest::source::{Epoch, InputFile};
    /// use amend_operators::{FieldNames, Scale};
    ///
    /// let path = std::env::temp_dir().join(format!("amend-read-doc-{}.csv", std::process::id()));
    /// std::fs::write(&path, "id,key,ts,value\n1,k,0,1.5\n\n2,k,0,x\n").unwrap();
    /// let epoch = Epoch::whole(Arc::new(InputFile::open(&path, 0).unwrap()), 0);
    /// let mut reader = Reader::new(FieldNames::default(), Scale::DEFAULT, None, Slice::default(), 1 << 20);
    /// let mut read = Vec::new();
    /// reader.read(&epoch, epoch.share(0, 1).unwrap(), |r| read.push(r)).unwrap();
    /// std::fs::remove_file(&path).unwrap();
    /// // The header and the blank line are not records; line 4 is a dead letter.
    /// assert!(matches!(&read[0], Read::Record(record) if record.event.id == "1"));
    /// assert!(matches!(&read[1], Read::Dead(dead) if dead.line == 4));
    /// assert_eq!(read.len(), 2);
    /// ```
    pub fn read(
        &mut self,
        epoch: &Epoch,
        (start, end): (u64, u64),
        mut each: impl FnMut(Read),
    ) -> io::Result<()> {
        if let Part::Messages(batch) = &epoch.part {
            return self.read_messages(epoch, batch, (start, end), each);
        }
        let max = self.max_line_bytes;
        let input = &epoch.input;
        let mut lines = epoch.lines(start, end, max)?;
        let first_offset = lines.offset();
        // Line numbers need the count of lines before this range; only counted if needed.
        let mut line_base: Option<u64> = if first_offset == 0 { Some(0) } else { None };
        let csv: Option<Result<CsvLayout, BadRecord>> = match input.format {
            Format::Csv => match input.first_line(max)? {
                Some(header) if header.len() <= max => Some(self.input.csv_layout(&header)),
                Some(header) => Some(Err(BadRecord::TooLong {
                    len: header.len() as u64,
                    max: max as u64,
                })),
                None => None,
            },
            Format::JsonLines | Format::AuditLog => None,
        };
        let source = input.path.display().to_string();
        let mut line_in_range = 0u64;
        while let Some(line) = lines.next_line()? {
            line_in_range += 1;
            let position = Position {
                epoch: epoch.epoch,
                file: input.index,
                offset: line.offset,
            };
            if line.offset == 0 && csv.is_some() {
                continue; // the CSV header
            }
            if line.bytes.iter().all(u8::is_ascii_whitespace) && !line.too_long {
                continue; // blank lines hold no record
            }
            if !self.slice.admits_offset(input, line.offset) {
                each(Read::Skipped);
                continue;
            }
            let decoded = if line.too_long {
                Err(BadRecord::TooLong {
                    len: line.len,
                    max: max as u64,
                })
            } else {
                match &csv {
                    None if input.format == Format::AuditLog => {
                        let audit = self.audit.as_mut().expect("audit logs come with a format");
                        match audit.decode(line.bytes, position) {
                            Ok(Some(record)) => Ok(record),
                            Ok(None) => {
                                each(Read::NoAuditRecord);
                                continue;
                            }
                            Err(reason) => Err(reason),
                        }
                    }
                    None => self.input.decode_json(line.bytes, position),
                    Some(Ok(layout)) => self.input.decode_csv(layout, line.bytes, position),
                    Some(Err(header)) => Err(BadRecord::Csv(format!(
                        "the file's header (line 1) is unusable: {header}"
                    ))),
                }
            };
            match decoded {
                Ok(record) if !self.slice.admits_time(record.event.ts) => each(Read::Skipped),
                Ok(record) => each(Read::Record(record)),
                Err(reason) => {
                    let base = match line_base {
                        Some(base) => base,
                        None => *line_base.insert(epoch.lines_before(first_offset)?),
                    };
                    each(Read::Dead(DeadLetter {
                        position,
                        source: source.clone(),
                        line: base + line_in_range,
                        reason: reason.to_string(),
                        raw: raw_text(line.bytes),
                    }));
                }
            }
        }
        Ok(())
    }

    /// Reads the messages of `batch` whose lines start in `[start, end)`. A message's value is
    /// one record; a null value (a tombstone) or an empty one is a dead letter. The offset
    /// slice is of files: a topic's messages are all in it.
    fn read_messages(
        &mut self,
        epoch: &Epoch,
        batch: &Messages,
        (start, end): (u64, u64),
        mut each: impl FnMut(Read),
    ) -> io::Result<()> {
        let max = self.max_line_bytes;
        let mut lines = epoch.lines(start, end, max)?;
        let source = epoch.input.path.display().to_string();
        while let Some(line) = lines.next_line()? {
            let message = batch.at(line.offset);
            let offset = topic_position(message.partition, message.offset)
                .expect("a topic's offsets are checked when planned");
            let position = Position {
                epoch: epoch.epoch,
                file: epoch.input.index,
                offset,
            };
            let decoded = if message.null {
                Err("a tombstone (a message with a null value) holds no record".to_string())
            } else if line.too_long {
                Err(BadRecord::TooLong {
                    len: line.len,
                    max: max as u64,
                }
                .to_string())
            } else if line.bytes.iter().all(u8::is_ascii_whitespace) {
                Err("the message's value is empty; each message must be one JSON object".into())
            } else {
                self.input
                    .decode_json(line.bytes, position)
                    .map_err(|e| e.to_string())
            };
            each(match decoded {
                Ok(record) if !self.slice.admits_time(record.event.ts) => Read::Skipped,
                Ok(record) => Read::Record(record),
                Err(reason) => Read::Dead(DeadLetter {
                    position,
                    source: source.clone(),
                    line: 0,
                    reason,
                    raw: raw_text(line.bytes),
                }),
            });
        }
        Ok(())
    }
}
