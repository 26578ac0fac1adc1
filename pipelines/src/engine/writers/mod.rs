//! Outputs behind one interface: each output is a [`Writer`].
//!
//! The sink calls every writer, in the order the command registered them, at three points:
//!
//! - [`Writer::epoch`], when an epoch has passed the whole dataflow: its part of the epoch
//!   (changelog lines, dead letters, late records, ...), flushed before it returns, because the
//!   epoch's line of `epochs.jsonl` is written after every writer's, and a reader that sees an
//!   epoch there must see all of its output elsewhere;
//! - [`Writer::snapshot`], at a snapshot point (every `--snapshot-interval` while following,
//!   between two epochs, and at the end): what it writes whole (snapshot, digests, summaries);
//! - [`Writer::finish`], once, after the last snapshot.
//!
//! A writer says what the sink must compute for it ([`Writer::needs`]). Writers only write:
//! the sink keeps the state they read (the table, its digests, the gap tables, estimates,
//! counts) and hands it to them as a [`ClosedEpoch`] or a [`SnapshotPoint`].

mod changelog;
mod dead_letters;
mod digests;
mod epochs;
mod estimates;
pub mod files;
mod late;
mod snapshot;
mod summary;

use std::cell::{OnceCell, RefCell};
use std::collections::BTreeMap;
use std::time::SystemTime;

use amend_operators::ingest::messages::{PartitionNext, PartitionRange};
use amend_operators::ingest::source::{Epoch, Part};
use amend_operators::output::gap_table::GapTable;
use amend_operators::output::rows::SnapshotFormat;
use amend_operators::proof::digest::TableDigest;
use amend_operators::proof::window_digests::{DigestChange, DigestedTable};
use amend_operators::recovery::estimates::Estimate;
use amend_operators::time::Millis;
use amend_operators::{DeadLetter, GapRow, LateRecord, Window};
use compact_str::CompactString;

use crate::engine::reader::ReadStats;
use crate::engine::sink::State;
use crate::engine::summary::{ReadCounts, RunStats, Summary};

pub use changelog::Changelog;
pub use dead_letters::DeadLetters;
pub use digests::Digests;
pub(crate) use epochs::EpochIndex;
pub use estimates::EstimatesFile;
pub use late::LateRecords;
pub use snapshot::SnapshotFile;
pub use summary::SummaryFile;

/// One output.
pub trait Writer {
    /// What the sink must compute for this writer.
    fn needs(&self) -> Needs {
        Needs::default()
    }

    /// Writes its part of an epoch that has passed the whole dataflow, and flushes it.
    fn epoch(&mut self, epoch: &ClosedEpoch<'_>) -> anyhow::Result<()> {
        let _ = epoch;
        Ok(())
    }

    /// Rewrites what it writes whole, at a snapshot point.
    fn snapshot(&mut self, at: &SnapshotPoint<'_>) -> anyhow::Result<()> {
        let _ = at;
        Ok(())
    }

    /// Called once, after the last snapshot point.
    fn finish(&mut self) -> anyhow::Result<()> {
        Ok(())
    }

    /// Called while the sink waits for output: a chance to fail before the run ends.
    fn check(&mut self) -> anyhow::Result<()> {
        Ok(())
    }

    /// The files it appends to epoch by epoch: the engine starts them, and a checkpoint keeps
    /// their lengths.
    fn appends(&mut self) -> Vec<&mut files::AppendFile> {
        Vec::new()
    }

    /// Counts of its own that a checkpoint keeps.
    fn save(&self) -> Vec<u64> {
        Vec::new()
    }

    /// Takes back the counts [`Writer::save`] gave, on resuming from a checkpoint.
    fn restore(&mut self, saved: &[u64]) {
        let _ = saved;
    }
}

/// What a writer needs the sink to compute.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// After each epoch, the windows whose digests it changed and the table digest
    /// ([`ClosedEpoch::digest_changes`]).
    pub epoch_digests: bool,
    /// Every row of the table in memory, also of windows that can no longer change.
    pub whole_table: bool,
    /// The format the snapshot is written in: rows of windows that can no longer change may
    /// leave memory in it, to be copied into every later snapshot.
    pub snapshot_format: Option<SnapshotFormat>,
}

impl Needs {
    /// What either needs.
    pub fn or(self, other: Needs) -> Needs {
        Needs {
            epoch_digests: self.epoch_digests || other.epoch_digests,
            whole_table: self.whole_table || other.whole_table,
            snapshot_format: self.snapshot_format.or(other.snapshot_format),
        }
    }
}

/// What the planner tells the sink, in order.
#[derive(Clone, Debug)]
pub enum Plan {
    /// An epoch planned.
    Epoch(Planned),
    /// A checkpoint of this epoch, the last planned, taken while the run is idle.
    Checkpoint(u64),
}

/// An epoch as the planner sent it to the sink: what it read, and when.
#[derive(Clone, Debug)]
pub struct Planned {
    /// The epoch.
    pub epoch: u64,
    /// The index of the input it read.
    pub source: u32,
    /// The input's name, as given on the command line.
    pub name: String,
    /// Offsets of its first byte and after its last (`None`: a gzip file read whole).
    pub span: (u64, Option<u64>),
    /// For a topic: what it read.
    pub topic: Option<TopicRead>,
    /// When it was read.
    pub read_at: SystemTime,
    /// Whether a checkpoint is taken after it.
    pub checkpoint: bool,
}

impl Planned {
    /// What the sink learns of `epoch`, read at `read_at`.
    pub fn of(epoch: &Epoch, read_at: SystemTime, checkpoint: bool) -> Planned {
        Planned {
            epoch: epoch.epoch,
            source: epoch.input.index,
            name: epoch.input.path.display().to_string(),
            span: epoch.span(),
            topic: match &epoch.part {
                Part::Messages(batch) => Some(TopicRead {
                    ranges: batch.ranges(),
                    reached: batch.reached.to_vec(),
                }),
                _ => None,
            },
            read_at,
            checkpoint,
        }
    }

    /// A file's byte range `(start, end)` as `epochs.jsonl` gives it; neither for a topic.
    pub fn file_range(&self) -> (Option<u64>, Option<u64>) {
        match self.topic {
            Some(_) => (None, None),
            None => (Some(self.span.0), self.span.1),
        }
    }
}

/// What an epoch of a topic read.
#[derive(Clone, Debug)]
pub struct TopicRead {
    /// The offsets it read of each partition.
    pub ranges: Vec<PartitionRange>,
    /// Where reading each partition of the topic stands after it.
    pub reached: Vec<PartitionNext>,
}

/// An epoch that has passed the whole dataflow, as the writers see it.
pub struct ClosedEpoch<'a> {
    /// The epoch.
    pub epoch: u64,
    /// What it read.
    pub planned: &'a Planned,
    /// Its read counts, over all workers.
    pub read: &'a ReadStats,
    /// The aggregate table with the epoch's changes applied ([`DigestedTable::changes`]), if
    /// the run aggregates.
    pub table: Option<&'a DigestedTable>,
    /// With [`Needs::epoch_digests`]: the windows whose digests the epoch changed, in window
    /// order.
    pub digest_changes: &'a [DigestChange],
    /// The table digest after the epoch, where `digest_changes` is not empty.
    pub table_digest: Option<&'a str>,
    /// Its changes of the gap tables, as applied.
    pub gap_changes: &'a [(GapRow, isize)],
    /// Its dead letters, in position order.
    pub dead: &'a [DeadLetter],
    /// Its late records, in position order.
    pub late: &'a [LateRecord],
    /// The names of the inputs by index.
    pub sources: &'a BTreeMap<u32, String>,
}

/// A point between two epochs where what is written whole is rewritten, as the writers see it.
pub struct SnapshotPoint<'a> {
    state: &'a State,
    /// The table digest, computed beside the writers that do not need it.
    digest: OnceCell<TableDigest>,
    compute: RefCell<Option<Box<dyn FnOnce() -> TableDigest + 'a>>>,
    summary: OnceCell<Summary>,
}

impl<'a> SnapshotPoint<'a> {
    /// The point of `state`, with its table digest from `compute` once a writer asks for it.
    pub(crate) fn new(
        state: &'a State,
        compute: Option<Box<dyn FnOnce() -> TableDigest + 'a>>,
    ) -> Self {
        SnapshotPoint {
            state,
            digest: OnceCell::new(),
            compute: RefCell::new(compute),
            summary: OnceCell::new(),
        }
    }

    /// The aggregate table, if the run aggregates.
    pub fn table(&self) -> Option<&'a DigestedTable> {
        self.state.table.as_ref()
    }

    /// The table's digests, if the run aggregates.
    pub fn digest(&self) -> Option<&TableDigest> {
        self.state.table.as_ref()?;
        Some(self.digest.get_or_init(|| {
            let compute = self.compute.borrow_mut().take();
            compute.expect("a table's snapshot point computes its digest")()
        }))
    }

    /// The gap tables, if the run detects gaps.
    pub fn gaps(&self) -> Option<&'a GapTable> {
        self.state.gaps.as_ref()
    }

    /// The estimated rows (`--fill`).
    pub fn estimates(&self) -> &'a BTreeMap<(Window, CompactString), Estimate> {
        &self.state.estimates
    }

    /// What was read so far.
    pub fn read(&self) -> &'a ReadCounts {
        &self.state.facts.counts.read
    }

    /// The run's epochs, workers and time so far.
    pub fn run_stats(&self) -> RunStats {
        self.state.facts.run_stats()
    }

    /// The watermark after the epochs so far.
    pub fn watermark(&self) -> Option<Millis> {
        self.state.facts.watermark()
    }

    /// The state the operators hold now: (ranges, seqs) of gap detection.
    pub fn gap_gauges(&self) -> (u64, u64) {
        self.state.facts.gauges.gaps.read()
    }

    /// `summary.json` at this point; its time is that of the first call, so ask for it after
    /// writing everything else.
    pub fn summary(&self) -> &Summary {
        self.summary
            .get_or_init(|| self.state.summary(self.digest()))
    }
}
