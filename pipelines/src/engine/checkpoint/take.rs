//! Taking checkpoints, on the sink's side: the sink's own part, and the commit once every
//! worker's part of the same epoch is durable.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use amend_operators::incremental::durable::encoding;
use amend_operators::output::gap_table::GapTable;
use amend_operators::output::table::Rows;
use amend_operators::proof::digest::WindowDigest;
use amend_operators::recovery::estimates::Estimate;
use amend_operators::time::Millis;
use amend_operators::{Window, time::format_millis};
use bincode::Options;
use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use crate::engine::sink::Counts;

use super::manifest::{self, FilePosition, Manifest, PartEntry};
use super::{CheckpointConfig, SINK_PART};

/// A worker's part of a checkpoint, written (or why it could not be).
#[derive(Debug)]
pub struct PartWritten {
    /// The checkpoint's epoch.
    pub epoch: u64,
    /// The part, or the error writing it.
    pub part: Result<PartEntry, String>,
}

/// The sink's counts that a checkpoint keeps.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SavedFacts {
    /// The run's counts.
    pub counts: Counts,
    /// Input names by index.
    pub sources: BTreeMap<u32, String>,
    /// Each writer's counts, in order.
    pub writers: Vec<Vec<u64>>,
}

/// One row of the table, as saved.
pub type RowEntry = ((Window, CompactString), amend_operators::Agg);

/// The estimates the sink holds.
pub type Estimates = BTreeMap<(Window, CompactString), Estimate>;

/// What the sink's part holds, borrowed to save it.
pub type SinkPartRef<'a> = (
    &'a SavedFacts,
    Option<(&'a Rows, &'a [WindowDigest])>,
    Option<&'a GapTable>,
    &'a Estimates,
);

/// What the sink's part holds, as loaded: the rows, saved as a map in (window, key) order,
/// are read as a list and built into their map in one pass.
pub type SinkPart = (
    SavedFacts,
    Option<(Vec<RowEntry>, Vec<WindowDigest>)>,
    Option<GapTable>,
    Estimates,
);

/// Decodes the sink's part.
pub fn decode_sink(bytes: &[u8]) -> anyhow::Result<SinkPart> {
    encoding()
        .deserialize(bytes)
        .map_err(|e| anyhow::anyhow!("the sink's state does not decode: {e}"))
}

/// The checkpoints of a run in progress: which are waiting for parts, and when the next is due.
pub struct Checkpointer {
    config: CheckpointConfig,
    workers: usize,
    /// Workers' parts by epoch.
    parts: BTreeMap<u64, Vec<PartEntry>>,
    /// Checkpoints whose sink part is written, waiting for the workers'.
    waiting: BTreeMap<u64, Manifest>,
    /// The epoch of the newest committed checkpoint.
    pub committed: Option<u64>,
    /// The epoch of the newest checkpoint whose sink part is written.
    pub taken: Option<u64>,
}

impl Checkpointer {
    /// Checkpoints as `config` says, for a run of `workers` workers; `committed` is the epoch
    /// of the checkpoint the run resumed from.
    pub fn new(config: CheckpointConfig, workers: usize, committed: Option<u64>) -> Self {
        Checkpointer {
            config,
            workers,
            parts: BTreeMap::new(),
            waiting: BTreeMap::new(),
            committed,
            taken: committed,
        }
    }

    /// The directory checkpoints go to.
    pub fn dir(&self) -> &Path {
        &self.config.dir
    }

    /// Takes a worker's part; commits its checkpoint if it was the last one missing.
    pub fn worker_part(&mut self, written: PartWritten) -> anyhow::Result<()> {
        let part = written.part.map_err(anyhow::Error::msg)?;
        self.parts.entry(written.epoch).or_default().push(part);
        self.try_commit(written.epoch)
    }

    /// Writes the sink's part of the checkpoint of `epoch` and notes the rest of its manifest.
    pub fn sink_part(
        &mut self,
        epoch: u64,
        part: SinkPartRef<'_>,
        point: Point,
    ) -> anyhow::Result<()> {
        super::fault("before-sink-part");
        let path = manifest::epoch_dir(&self.config.dir, epoch).join(SINK_PART);
        let entry = manifest::write_part(&path, |out| {
            encoding()
                .serialize_into(out, &part)
                .map_err(std::io::Error::other)
        })?;
        let manifest = Manifest {
            format: manifest::FORMAT,
            epoch,
            written_at: String::new(),
            workers: self.workers,
            settings: self.config.settings.clone(),
            inputs: self.config.inputs.clone(),
            files: point.files,
            next_index: point.next_index,
            outputs: point.outputs,
            max_ts: point.max_ts,
            records_read: point.records_read,
            parts: vec![entry],
        };
        self.waiting.insert(epoch, manifest);
        self.taken = Some(epoch);
        self.try_commit(epoch)
    }

    fn try_commit(&mut self, epoch: u64) -> anyhow::Result<()> {
        let ready = self.waiting.contains_key(&epoch)
            && self.parts.get(&epoch).map_or(0, Vec::len) == self.workers;
        if !ready {
            return Ok(());
        }
        let mut manifest = self.waiting.remove(&epoch).expect("checked");
        let mut parts = self.parts.remove(&epoch).unwrap_or_default();
        parts.sort_by(|a, b| a.file.cmp(&b.file));
        manifest.parts.extend(parts);
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as Millis);
        manifest.written_at = format_millis(now);
        manifest::commit(&self.config.dir, &manifest)?;
        self.committed = Some(epoch);
        manifest::prune(&self.config.dir, self.config.retained.max(1))
            .map_err(|e| anyhow::anyhow!("cannot remove old checkpoints: {e}"))
    }

    /// Whether a checkpoint of `epoch` is still waiting for workers' parts.
    pub fn waiting(&self) -> bool {
        !self.waiting.is_empty()
    }
}

/// Where the run stands at a checkpoint, besides the sink's state.
pub struct Point {
    /// Every input file known, with where reading reached.
    pub files: Vec<FilePosition>,
    /// The index the next new input file gets.
    pub next_index: u32,
    /// The append-only outputs' lengths.
    pub outputs: BTreeMap<String, u64>,
    /// The greatest event time read.
    pub max_ts: Option<Millis>,
    /// Records read.
    pub records_read: u64,
}
