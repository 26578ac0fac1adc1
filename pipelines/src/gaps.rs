//! `amend gaps`: gaps in the producers' sequence numbers, found by the aggregate engine.
//!
//! `amend gaps` runs [`crate::aggregate::run`] with aggregation off and gap detection on
//! ([`amend_operators::DetectGaps`]); `amend aggregate --gaps` runs both in one dataflow. The
//! engine reads, plans epochs, follows and dead-letters exactly as for aggregation; its sink
//! writes, per epoch, the gap changes to `gaps_changelog.jsonl`, and at the end (and every
//! `--snapshot-interval` while following) `gaps.jsonl`, `duplicates.jsonl` and
//! `gaps_summary.json`. See `docs/design/0003-gaps.md`.

use amend_operators::gap_table::{GapTotals, Lagging};
use serde::Serialize;

/// What gap detection reports in `gaps_summary.json`.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct GapSummary {
    /// Records read: accepted plus dead-lettered plus skipped.
    pub records_read: u64,
    /// Records decoded (with or without source and seq).
    pub records_accepted: u64,
    /// Bad records, written to dead_letter.jsonl.
    pub records_dead_lettered: u64,
    /// Records outside the replay slice (--from-time, --to-time, --from-offset, --to-offset).
    pub records_skipped: u64,
    /// Audit-log lines that hold no audit record (not records: not in records_read).
    pub audit_lines_skipped: u64,
    /// Epochs ingested.
    pub epochs: u64,
    /// Wall-clock seconds from start to these outputs written.
    pub elapsed_seconds: f64,
    /// records_read / elapsed_seconds.
    pub records_per_second: f64,
    /// Timely workers.
    pub workers: usize,
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
    pub fn paragraph(&self, out: &std::path::Path) -> String {
        let out = out.display();
        let max = self
            .totals
            .max_last
            .map_or("no sequence numbers".into(), |m| {
                format!("greatest seq {m}")
            });
        format!(
            "amend gaps: read {} records in {} epoch(s) in {:.2} s ({:.0} records/s, {} worker(s)): \
             {} accepted, {} dead-lettered{}. {} source(s), {max}: {} gap(s) missing {} seq(s) \
             ({out}/gaps.jsonl), {} duplicated seq(s), {} lagging source(s) \
             ({out}/gaps_summary.json); {} ranges held.",
            self.records_read,
            self.epochs,
            self.elapsed_seconds,
            self.records_per_second,
            self.workers,
            self.records_accepted,
            self.records_dead_lettered,
            if self.records_skipped > 0 {
                format!(
                    ", {} skipped (outside the replay slice)",
                    self.records_skipped
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
