//! The engine every pipeline command runs on: sources → reader → dataflow → sink → writers.
//!
//! ```text
//!  plan (sources: files, directories, stdin) ──epochs──▶ reader, on every worker: its share of
//!   each epoch, decoded ──records──▶ dataflow (operators with plain state) ──captured
//!   updates──▶ sink: gathers every worker's output into epochs, keeps the table ──▶ writers
//! ```
//!
//! - [`plan`]: the planner and its sources: which part of which input each epoch is.
//! - [`reader`]: one worker: builds the dataflow, reads its share of every epoch, feeds it in
//!   bounded batches, one epoch at a time.
//! - [`dataflow`]: the dataflow a run computes, from [`Computations`].
//! - [`mod@run`]: the run loop: threads, signals, the timely launch, and the sink's loop.
//! - [`sink`]: the sink: frontier tracking, epochs released in order, the table, the counts.
//! - [`writers`]: each output behind one trait, [`writers::Writer`].
//! - [`summary`]: what `summary.json` holds, and the counts every summary shares.
//!
//! A command configures the engine ([`EngineConfig`], [`Computations`]) and hands it the
//! writers of its outputs; the engine adds dead letters and the epoch index, which every run
//! writes. docs/design/0006-engine.md draws the whole and says how to extend it.

pub mod checkpoint;
pub mod dataflow;
pub mod plan;
pub mod progress;
pub mod reader;
pub mod run;
pub mod sink;
pub mod summary;
pub mod writers;

use std::path::PathBuf;
use std::time::Duration;

use amend_operators::ingest::audit::AuditFormat;
use amend_operators::ingest::decode::FieldNames;
use amend_operators::ingest::read::Slice;
use amend_operators::recovery::estimates::Fill;
use amend_operators::{Lateness, Scale, WindowSpec};

pub use plan::Input;
pub use run::run;

/// What every run needs, validated: its inputs and how to read them, where outputs go, and
/// how it runs.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// All inputs in ingestion order, `--input` then `--corrections`.
    pub inputs: Vec<Input>,
    /// Input field names.
    pub names: FieldNames,
    /// Decimal scale.
    pub scale: Scale,
    /// Lines longer than this are bad records.
    pub max_line_bytes: usize,
    /// Replay slices and audit logs.
    pub recovery: Recovery,
    /// Output directory.
    pub out: PathBuf,
    /// Timely workers.
    pub workers: usize,
    /// Records per internal batch per worker.
    pub batch_records: u64,
    /// Whether to show a progress line on a terminal.
    pub progress: bool,
    /// Whether to keep following the inputs.
    pub follow: bool,
    /// How often followed inputs are checked.
    pub poll_interval: Duration,
    /// How often the snapshot is rewritten while following.
    pub snapshot_interval: Duration,
    /// Watermark and allowed lateness.
    pub lateness: Lateness,
    /// Files are split into epochs of about this many bytes (`--epoch-bytes`).
    pub epoch_bytes: Option<u64>,
    /// Checkpoints (`--checkpoint-dir`).
    pub checkpoint: Option<checkpoint::CheckpointConfig>,
    /// How Kafka topics are read.
    pub topics: crate::kafka::KafkaSourceArgs,
}

impl EngineConfig {
    /// The timely configuration for `--workers`.
    pub fn timely(&self) -> timely::Config {
        if self.workers == 1 {
            timely::Config::thread()
        } else {
            timely::Config::process(self.workers)
        }
    }
}

/// What the dataflow computes besides dead letters.
#[derive(Clone, Debug, Default)]
pub struct Computations {
    /// The aggregate table: ids resolved, windows assigned and aggregated.
    pub table: Option<TableSpec>,
    /// Gap detection in the producers' sequence numbers, and whether duplicated numbers are
    /// looked for.
    pub gaps: Option<bool>,
}

/// How the aggregate table is computed.
#[derive(Copy, Clone, Debug)]
pub struct TableSpec {
    /// Window assignment.
    pub window: WindowSpec,
    /// How to estimate empty windows (`--fill`), and the longest run of them to fill.
    pub fill: Option<(Fill, u64)>,
}

/// Which records a run takes, and where it recovers missed ones from.
#[derive(Clone, Debug, Default)]
pub struct Recovery {
    /// The replay slice: which records are taken.
    pub slice: Slice,
    /// Audit logs, in the order given.
    pub audit_logs: Vec<PathBuf>,
    /// How audit-log lines carry events; set exactly when there are audit logs.
    pub audit_format: Option<AuditFormat>,
}

impl Recovery {
    /// Whether any audit log is read.
    pub fn has_audit_logs(&self) -> bool {
        !self.audit_logs.is_empty()
    }
}
