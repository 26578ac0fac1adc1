//! `estimates.jsonl` (`--fill`): estimated rows of empty windows, apart from the exact table.

use std::path::{Path, PathBuf};

use amend_operators::Scale;
use amend_operators::output::estimates::write_estimates;
use amend_operators::recovery::estimates::Fill;

use super::files::write_atomically;
use super::{SnapshotPoint, Writer};

/// Rewrites the estimates at each snapshot point.
pub struct EstimatesFile {
    path: PathBuf,
    fill: Fill,
    scale: Scale,
}

impl EstimatesFile {
    /// `estimates.jsonl` in `dir`, estimated by `fill`, decimals at `scale`.
    pub fn create(dir: &Path, fill: Fill, scale: Scale) -> EstimatesFile {
        EstimatesFile {
            path: dir.join("estimates.jsonl"),
            fill,
            scale,
        }
    }
}

impl Writer for EstimatesFile {
    fn snapshot(&mut self, at: &SnapshotPoint<'_>) -> anyhow::Result<()> {
        write_atomically(&self.path, |w| {
            Ok(write_estimates(
                at.estimates(),
                self.fill.name(),
                self.scale,
                w,
            )?)
        })
    }
}
