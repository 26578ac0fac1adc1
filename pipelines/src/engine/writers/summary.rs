//! `summary.json`: what the run read, the table it has, and how the run went.

use std::path::{Path, PathBuf};

use super::files::write_json_atomically;
use super::{SnapshotPoint, Writer};

/// Rewrites the summary at each snapshot point; register it last, so that its time covers the
/// other outputs.
pub struct SummaryFile {
    path: PathBuf,
}

impl SummaryFile {
    /// `summary.json` in `dir`.
    pub fn create(dir: &Path) -> SummaryFile {
        SummaryFile {
            path: dir.join("summary.json"),
        }
    }
}

impl Writer for SummaryFile {
    fn snapshot(&mut self, at: &SnapshotPoint<'_>) -> anyhow::Result<()> {
        write_json_atomically(&self.path, at.summary())
    }
}
