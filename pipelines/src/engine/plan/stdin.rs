//! Standard input as a source: whatever complete lines have arrived, as one epoch at a time.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, TryRecvError};

use amend_operators::ingest::source::{Epoch, InputFile, Part};

use super::{Planning, Source};

/// The most bytes of standard input taken into one epoch.
const STDIN_EPOCH_BYTES: usize = 16 << 20;

/// Standard input, read on a thread of its own.
pub(super) struct StdinSource {
    input: Arc<InputFile>,
    rx: Receiver<Vec<u8>>,
    /// Bytes after the last complete line.
    carry: Vec<u8>,
    /// Offset of `carry`'s first byte in the stream.
    offset: u64,
    /// Lines before `offset`.
    lines: u64,
    done: bool,
}

impl StdinSource {
    /// Standard input as input number `index`.
    pub(super) fn new(index: u32) -> StdinSource {
        StdinSource {
            input: Arc::new(InputFile::stdin(index)),
            rx: read_stdin(),
            carry: Vec::new(),
            offset: 0,
            lines: 0,
            done: false,
        }
    }
}

impl Source for StdinSource {
    /// The complete lines that have arrived, as one epoch (at most [`STDIN_EPOCH_BYTES`]).
    fn poll(&mut self, planning: &mut Planning) -> io::Result<Vec<Epoch>> {
        if self.done {
            return Ok(Vec::new());
        }
        while self.carry.len() < STDIN_EPOCH_BYTES {
            match self.rx.try_recv() {
                Ok(block) => self.carry.extend_from_slice(&block),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.done = true;
                    break;
                }
            }
        }
        // At the end of the stream, a last line without `\n` is complete.
        let end = if self.done {
            self.carry.len()
        } else {
            memchr::memrchr(b'\n', &self.carry).map_or(0, |i| i + 1)
        };
        if end == 0 {
            return Ok(Vec::new());
        }
        let rest = self.carry.split_off(end);
        let data: Arc<[u8]> = std::mem::replace(&mut self.carry, rest).into();
        let lines = memchr::memchr_iter(b'\n', &data).count() as u64;
        let epoch = Epoch {
            input: Arc::clone(&self.input),
            epoch: planning.epoch(),
            part: Part::Held {
                start: self.offset,
                data,
                lines_before: self.lines,
            },
        };
        self.offset += end as u64;
        self.lines += lines;
        Ok(vec![epoch])
    }

    fn done(&self) -> bool {
        self.done && self.carry.is_empty()
    }
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
