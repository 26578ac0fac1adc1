//! `dead_letter.jsonl`: every bad record, with its source, position and reason.

use std::path::Path;

use amend_operators::output::dead_letter::write_dead_letter;

use super::files::AppendFile;
use super::{ClosedEpoch, Writer};

/// Appends each epoch's dead letters, in position order.
pub struct DeadLetters {
    file: AppendFile,
}

impl DeadLetters {
    /// Creates `dead_letter.jsonl` in `dir`.
    pub fn create(dir: &Path) -> anyhow::Result<DeadLetters> {
        Ok(DeadLetters {
            file: AppendFile::create(dir, "dead_letter.jsonl")?,
        })
    }
}

impl Writer for DeadLetters {
    fn appends(&mut self) -> Vec<&mut AppendFile> {
        vec![&mut self.file]
    }

    fn epoch(&mut self, epoch: &ClosedEpoch<'_>) -> anyhow::Result<()> {
        self.file.write(|out| {
            for letter in epoch.dead {
                write_dead_letter(letter, out)?;
            }
            Ok(())
        })
    }
}
