//! `late.jsonl`: every record that came after its windows closed, with the watermark it met.

use std::path::Path;

use amend_operators::Scale;
use amend_operators::output::late::write_late;

use super::files::AppendFile;
use super::{ClosedEpoch, Writer};

/// Appends each epoch's late records, in position order.
pub struct LateRecords {
    file: AppendFile,
    scale: Scale,
}

impl LateRecords {
    /// Creates `late.jsonl` in `dir`, its values at `scale`.
    pub fn create(dir: &Path, scale: Scale) -> anyhow::Result<LateRecords> {
        Ok(LateRecords {
            file: AppendFile::create(dir, "late.jsonl")?,
            scale,
        })
    }
}

impl Writer for LateRecords {
    fn appends(&mut self) -> Vec<&mut AppendFile> {
        vec![&mut self.file]
    }

    fn epoch(&mut self, epoch: &ClosedEpoch<'_>) -> anyhow::Result<()> {
        self.file.write(|out| {
            for record in epoch.late {
                let source = &epoch.sources[&record.event.position.file];
                write_late(record, source, self.scale, out)?;
            }
            Ok(())
        })
    }
}
