//! `epochs.jsonl`: one line per epoch, written after all of its other output is flushed.

use std::path::Path;
use std::time::SystemTime;

use amend_operators::output::epochs::EpochLine;
use amend_operators::time::{Millis, format_millis};

use super::ClosedEpoch;
use super::files::AppendFile;

/// The index of written epochs: the engine writes an epoch's line after every writer has
/// written and flushed its part of the epoch.
pub(crate) struct EpochIndex {
    file: AppendFile,
}

impl EpochIndex {
    /// Creates `epochs.jsonl` in `dir`.
    pub(crate) fn create(dir: &Path) -> anyhow::Result<EpochIndex> {
        Ok(EpochIndex {
            file: AppendFile::create(dir, "epochs.jsonl")?,
        })
    }

    /// The file.
    pub(crate) fn file(&mut self) -> &mut AppendFile {
        &mut self.file
    }

    /// Writes the line of `epoch`, whose output is flushed now, with the `watermark` it was
    /// read at and the state held after it; returns its latency in milliseconds.
    pub(crate) fn write(
        &mut self,
        epoch: &ClosedEpoch<'_>,
        watermark: Option<Millis>,
        (state_ids, state_groups): (u64, u64),
    ) -> anyhow::Result<f64> {
        let planned = epoch.planned;
        let flushed_at = SystemTime::now();
        let latency_ms = flushed_at
            .duration_since(planned.read_at)
            .unwrap_or_default()
            .as_secs_f64()
            * 1e3;
        let (start, end) = planned.file_range();
        let line = EpochLine {
            epoch: epoch.epoch,
            source: &planned.name,
            start,
            end,
            partitions: planned.topic.as_ref().map(|t| t.ranges.as_slice()),
            records: epoch.read.read,
            late: epoch.late.len() as u64,
            watermark: watermark.map(format_millis),
            read_at: format_system_time(planned.read_at),
            flushed_at: format_system_time(flushed_at),
            latency_ms: (latency_ms * 1e3).round() / 1e3,
            state_ids,
            state_groups,
        };
        self.file.write(|out| Ok(line.write(out)?))?;
        Ok(latency_ms)
    }
}

fn format_system_time(time: SystemTime) -> String {
    let ms = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis);
    format_millis(ms)
}
