//! `digests.json` (the table and window digests) and, when following, `digests_changelog.jsonl`
//! (per epoch, each window whose digest changed).

use std::path::{Path, PathBuf};

use amend_operators::proof::window_digests::write_digest_changes;

use super::files::{AppendFile, write_json_atomically};
use super::{ClosedEpoch, Needs, SnapshotPoint, Writer};

/// Writes the digests at each snapshot point and, with a changelog, each epoch's changes.
pub struct Digests {
    path: PathBuf,
    changelog: Option<AppendFile>,
}

impl Digests {
    /// `digests.json` in `dir`; with `per_epoch`, also `digests_changelog.jsonl`, which is
    /// otherwise removed (it would be stale beside this run's digests).
    pub fn create(dir: &Path, per_epoch: bool) -> anyhow::Result<Digests> {
        const CHANGELOG: &str = "digests_changelog.jsonl";
        let changelog = if per_epoch {
            Some(AppendFile::create(dir, CHANGELOG)?)
        } else {
            let _ = std::fs::remove_file(dir.join(CHANGELOG));
            None
        };
        Ok(Digests {
            path: dir.join("digests.json"),
            changelog,
        })
    }
}

impl Writer for Digests {
    fn appends(&mut self) -> Vec<&mut AppendFile> {
        self.changelog.iter_mut().collect()
    }

    fn needs(&self) -> Needs {
        Needs {
            epoch_digests: self.changelog.is_some(),
            ..Needs::default()
        }
    }

    fn epoch(&mut self, epoch: &ClosedEpoch<'_>) -> anyhow::Result<()> {
        let (Some(changelog), Some(table)) = (&mut self.changelog, epoch.table_digest) else {
            return Ok(());
        };
        changelog.write(|out| {
            Ok(write_digest_changes(
                epoch.epoch,
                epoch.digest_changes,
                table,
                out,
            )?)
        })
    }

    fn snapshot(&mut self, at: &SnapshotPoint<'_>) -> anyhow::Result<()> {
        match at.digest() {
            Some(digest) => write_json_atomically(&self.path, digest),
            None => Ok(()),
        }
    }
}
