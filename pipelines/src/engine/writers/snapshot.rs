//! `snapshot.jsonl` (or `.csv`): the current table, one row per (window, key), sorted.

use std::path::{Path, PathBuf};

use amend_operators::output::rows::SnapshotFormat;

use super::files::write_atomically;
use super::{Needs, SnapshotPoint, Writer};

/// Rewrites the snapshot at each snapshot point.
pub struct SnapshotFile {
    path: PathBuf,
    format: SnapshotFormat,
}

impl SnapshotFile {
    /// The snapshot in `dir` in `format`; a snapshot of the other format there, from an
    /// earlier run, would be stale beside this one's and is removed.
    pub fn create(dir: &Path, format: SnapshotFormat) -> SnapshotFile {
        for other in [SnapshotFormat::JsonLines, SnapshotFormat::Csv] {
            if other != format {
                let _ = std::fs::remove_file(dir.join(other.file_name()));
            }
        }
        SnapshotFile {
            path: dir.join(format.file_name()),
            format,
        }
    }
}

impl Writer for SnapshotFile {
    fn needs(&self) -> Needs {
        Needs {
            snapshot_format: Some(self.format),
            ..Needs::default()
        }
    }

    fn snapshot(&mut self, at: &SnapshotPoint<'_>) -> anyhow::Result<()> {
        let Some(table) = at.table() else {
            return Ok(());
        };
        write_atomically(&self.path, |w| {
            Ok(table.table().write_snapshot(self.format, w)?)
        })
    }
}
