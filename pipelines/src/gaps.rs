//! `amend gaps`: gaps in the producers' sequence numbers.
//!
//! `amend gaps` runs the engine ([`crate::engine`]) with gap detection on
//! ([`amend_operators::DetectGaps`]) and no table; `amend aggregate --gaps` computes both in
//! one dataflow. Either way the engine reads, plans epochs, follows and dead-letters as for
//! aggregation, and [`GapFiles`] writes, per epoch, the gap changes to `gaps_changelog.jsonl`,
//! and at each snapshot point `gaps.jsonl`, `duplicates.jsonl` and `gaps_summary.json`. See
//! `docs/design/0003-gaps.md`.

use std::path::{Path, PathBuf};

use amend_operators::output::gap_table::{GapTotals, Lagging, write_gap_changes};
use serde::Serialize;

use crate::engine::summary::{ReadCounts, RunStats};
use crate::engine::writers::files::{
    AppendFile, create_out_dir, write_atomically, write_json_atomically,
};
use crate::engine::writers::{ClosedEpoch, SnapshotPoint, Writer};
use crate::engine::{Computations, EngineConfig};

/// How gaps are detected and reported.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct GapSettings {
    /// Whether to look for sequence numbers carried by more than one id.
    pub duplicates: bool,
    /// A source lags when its last seq is more than this behind the greatest last seq.
    pub lag_threshold: u64,
}

/// Everything `amend gaps` needs, validated.
#[derive(Clone, Debug)]
pub struct GapsConfig {
    /// What every run needs.
    pub engine: EngineConfig,
    /// How gaps are detected and reported.
    pub gaps: GapSettings,
}

/// Runs `amend gaps` and writes its outputs into its output directory.
pub fn run(config: &GapsConfig) -> anyhow::Result<GapSummary> {
    let mut files = GapFiles::create(&config.engine, config.gaps)?;
    let computations = Computations {
        table: None,
        gaps: Some(config.gaps.duplicates),
    };
    crate::engine::run(&config.engine, &computations, vec![&mut files])?;
    Ok(files.into_summary().unwrap_or_default())
}

/// What gap detection reports in `gaps_summary.json`.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct GapSummary {
    /// What was read.
    #[serde(flatten)]
    pub read: ReadCounts,
    /// How the run went.
    #[serde(flatten)]
    pub run: RunStats,
    /// Sources, gaps, missing numbers, duplicates, greatest last number.
    #[serde(flatten)]
    pub totals: GapTotals,
    /// Lines written to gaps_changelog.jsonl.
    pub gap_changelog_lines: u64,
    /// Whether duplicated sequence numbers were looked for.
    pub duplicates_detected: bool,
    /// A source lags when its last seq is more than this behind the greatest last seq.
    pub lag_threshold: u64,
    /// The lagging sources, by source.
    pub lagging: Vec<Lagging>,
    /// Ranges of seen sequence numbers held in operator state (gaps + sources).
    pub state_ranges: u64,
    /// (source, seq) entries held for duplicate detection.
    pub state_seqs: u64,
}

impl GapSummary {
    /// The one-paragraph summary printed at the end of `amend gaps`.
    pub fn paragraph(&self, out: &Path) -> String {
        let out = out.display();
        let max = self
            .totals
            .max_last
            .map_or("no sequence numbers".into(), |m| {
                format!("greatest seq {m}")
            });
        let read = &self.read;
        format!(
            "amend gaps: read {} records in {} epoch(s) in {:.2} s ({:.0} records/s, {} worker(s)): \
             {} accepted, {} dead-lettered{}. {} source(s), {max}: {} gap(s) missing {} seq(s) \
             ({out}/gaps.jsonl), {} duplicated seq(s), {} lagging source(s) \
             ({out}/gaps_summary.json); {} ranges held.",
            read.records_read,
            self.run.epochs,
            self.run.elapsed_seconds,
            self.run.records_per_second,
            self.run.workers,
            read.records_accepted,
            read.records_dead_lettered,
            if read.records_skipped > 0 {
                format!(
                    ", {} skipped (outside the replay slice)",
                    read.records_skipped
                )
            } else {
                String::new()
            },
            self.totals.sources,
            self.totals.gaps,
            self.totals.missing,
            self.totals.duplicates,
            self.lagging.len(),
            self.state_ranges,
        )
    }
}

/// The gap outputs: `gaps_changelog.jsonl` epoch by epoch, and `gaps.jsonl`,
/// `duplicates.jsonl` and `gaps_summary.json` at each snapshot point.
pub struct GapFiles {
    dir: PathBuf,
    settings: GapSettings,
    changelog: AppendFile,
    changelog_lines: u64,
    /// What gaps_summary.json held last.
    summary: Option<GapSummary>,
}

impl GapFiles {
    /// Creates the gap outputs in the output directory of `engine`.
    pub fn create(engine: &EngineConfig, settings: GapSettings) -> anyhow::Result<GapFiles> {
        create_out_dir(&engine.out)?;
        Ok(GapFiles {
            dir: engine.out.clone(),
            settings,
            changelog: AppendFile::create(&engine.out, "gaps_changelog.jsonl")?,
            changelog_lines: 0,
            summary: None,
        })
    }

    /// What gaps_summary.json holds, once written.
    pub fn into_summary(self) -> Option<GapSummary> {
        self.summary
    }
}

impl Writer for GapFiles {
    fn appends(&mut self) -> Vec<&mut AppendFile> {
        vec![&mut self.changelog]
    }

    fn save(&self) -> Vec<u64> {
        vec![self.changelog_lines]
    }

    fn restore(&mut self, saved: &[u64]) {
        self.changelog_lines = saved.first().copied().unwrap_or(0);
    }

    fn epoch(&mut self, epoch: &ClosedEpoch<'_>) -> anyhow::Result<()> {
        let lines = self
            .changelog
            .write(|out| Ok(write_gap_changes(epoch.epoch, epoch.gap_changes, out)?))?;
        self.changelog_lines += lines;
        Ok(())
    }

    fn snapshot(&mut self, at: &SnapshotPoint<'_>) -> anyhow::Result<()> {
        let Some(gaps) = at.gaps() else {
            return Ok(());
        };
        write_atomically(&self.dir.join("gaps.jsonl"), |w| Ok(gaps.write_gaps(w)?))?;
        write_atomically(&self.dir.join("duplicates.jsonl"), |w| {
            Ok(gaps.write_duplicates(w)?)
        })?;
        let (state_ranges, state_seqs) = at.gap_gauges();
        let summary = GapSummary {
            read: at.read().clone(),
            run: at.run_stats(),
            totals: gaps.totals(),
            gap_changelog_lines: self.changelog_lines,
            duplicates_detected: self.settings.duplicates,
            lag_threshold: self.settings.lag_threshold,
            lagging: gaps.lagging(self.settings.lag_threshold),
            state_ranges,
            state_seqs,
        };
        write_json_atomically(&self.dir.join("gaps_summary.json"), &summary)?;
        self.summary = Some(summary);
        Ok(())
    }
}
