//! `changelog.jsonl`: per epoch, the rows of the table that changed, retractions first.

use std::path::Path;

use amend_operators::Scale;
use amend_operators::output::rows::write_changelog;

use super::files::AppendFile;
use super::{ClosedEpoch, Writer};

/// Appends each epoch's net changes of the table.
pub struct Changelog {
    file: AppendFile,
    scale: Scale,
}

impl Changelog {
    /// Creates `changelog.jsonl` in `dir`, its decimals at `scale`.
    pub fn create(dir: &Path, scale: Scale) -> anyhow::Result<Changelog> {
        Ok(Changelog {
            file: AppendFile::create(dir, "changelog.jsonl")?,
            scale,
        })
    }
}

impl Writer for Changelog {
    fn appends(&mut self) -> Vec<&mut AppendFile> {
        vec![&mut self.file]
    }

    fn epoch(&mut self, epoch: &ClosedEpoch<'_>) -> anyhow::Result<()> {
        let Some(table) = epoch.table else {
            return Ok(());
        };
        let changes = table.changes();
        self.file
            .write(|out| Ok(write_changelog(epoch.epoch, &changes, self.scale, out)?))?;
        Ok(())
    }
}
