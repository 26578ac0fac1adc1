//! What a run reports: `summary.json`, and the counts every summary file shares.
//!
//! [`ReadCounts`] and [`RunStats`] are the parts every summary has (`summary.json` and
//! `gaps_summary.json`), each written in place with `#[serde(flatten)]`; [`Summary`] is the
//! whole of `summary.json`.

use serde::Serialize;

use crate::engine::reader::ReadStats;

/// What was read, over all epochs: read = accepted + dead-lettered + skipped.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ReadCounts {
    /// Records read: accepted plus dead-lettered plus skipped.
    pub records_read: u64,
    /// Records decoded and fed to the dataflow (late records included).
    pub records_accepted: u64,
    /// Bad records, written to dead_letter.jsonl.
    pub records_dead_lettered: u64,
    /// Records outside the replay slice (--from-time, --to-time, --from-offset, --to-offset).
    pub records_skipped: u64,
    /// Audit-log lines that hold no audit record (not records: not in records_read).
    pub audit_lines_skipped: u64,
}

impl ReadCounts {
    /// Adds the counts of one epoch.
    pub fn add(&mut self, epoch: &ReadStats) {
        self.records_read += epoch.read;
        self.records_accepted += epoch.accepted;
        self.records_dead_lettered += epoch.dead;
        self.records_skipped += epoch.skipped;
        self.audit_lines_skipped += epoch.audit_skipped;
    }
}

/// How the run went: its epochs, time and workers.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct RunStats {
    /// Epochs ingested.
    pub epochs: u64,
    /// Wall-clock seconds from start to all outputs written.
    pub elapsed_seconds: f64,
    /// run_records_read / elapsed_seconds.
    pub records_per_second: f64,
    /// Timely workers.
    pub workers: usize,
    /// Records this run read: records_read less what a checkpoint it resumed from had read.
    pub run_records_read: u64,
    /// The epoch of the checkpoint this run resumed from, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed_after_epoch: Option<u64>,
}

/// What `amend aggregate` reports in `summary.json`.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Summary {
    /// What was read.
    #[serde(flatten)]
    pub read: ReadCounts,
    /// Ids whose every record came from an audit log: events the main input missed.
    pub ids_only_in_audit: u64,
    /// Accepted records that came after their windows closed, written to late.jsonl.
    pub records_late: u64,
    /// Ids whose current record is an upsert.
    pub ids_current: u64,
    /// Ids whose current record is a delete.
    pub ids_deleted: u64,
    /// How the run went.
    #[serde(flatten)]
    pub run: RunStats,
    /// Rows in the snapshot.
    pub rows: u64,
    /// Windows in the snapshot.
    pub windows: u64,
    /// Lines written to changelog.jsonl.
    pub changelog_lines: u64,
    /// The table digest (digests.json).
    pub table_digest: String,
    /// Median epoch latency: from reading an epoch to its output flushed, milliseconds.
    pub epoch_latency_ms_p50: f64,
    /// 99th percentile epoch latency, milliseconds.
    pub epoch_latency_ms_p99: f64,
    /// The watermark after the last epoch (RFC 3339), if any record was read.
    pub watermark: Option<String>,
    /// Ids held in operator state at the end.
    pub state_ids: u64,
    /// Groups (or session records) held in operator state at the end.
    pub state_groups: u64,
    /// Rows in estimates.jsonl (`--fill`).
    pub estimates: u64,
}

/// The `q` quantile (nearest rank) of `values`, rounded to microseconds; 0 if there are none.
pub fn percentile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    (values[rank - 1] * 1e3).round() / 1e3
}
