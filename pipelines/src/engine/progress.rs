//! A progress line on a terminal: epoch, records read, records/s. Silent when piped.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Redraws one status line on stderr at most every 200 ms, if stderr is a terminal.
pub struct Progress {
    enabled: bool,
    started: Instant,
    last: Option<Instant>,
    drawn: bool,
}

impl Progress {
    /// A progress line, shown only if `wanted` and stderr is a terminal.
    pub fn new(wanted: bool) -> Self {
        Progress {
            enabled: wanted && std::io::stderr().is_terminal(),
            started: Instant::now(),
            last: None,
            drawn: false,
        }
    }

    /// Redraws the line if it is due.
    pub fn update(&mut self, epoch: u64, records: u64) {
        if !self.enabled
            || self
                .last
                .is_some_and(|t| t.elapsed() < Duration::from_millis(200))
        {
            return;
        }
        self.last = Some(Instant::now());
        let seconds = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = records as f64 / seconds;
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[2Kepoch {epoch} · {records} records · {:.0} records/s",
            rate
        );
        let _ = err.flush();
        self.drawn = true;
    }

    /// Clears the line.
    pub fn finish(&mut self) {
        if self.drawn {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[2K");
            self.drawn = false;
        }
    }
}
