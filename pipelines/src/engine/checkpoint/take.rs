//! Taking checkpoints, on the sink's side: the sink's own part, and the commit once every
//! worker's part of the same epoch is durable.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use amend_operators::incremental::durable::encoding;
use amend_operators::time::Millis;
use amend_operators::time::format_millis;
use bincode::Options;

use super::sink_part::SinkPartRef;

use super::manifest::{self, FilePosition, Manifest, PartEntry, TopicPosition};
use super::replay::PlanLog;
use super::{CheckpointConfig, Resume, SINK_PART};
use crate::engine::writers::Planned;

/// A worker's part of a checkpoint, written (or why it could not be).
#[derive(Debug)]
pub struct PartWritten {
    /// The checkpoint's epoch.
    pub epoch: u64,
    /// The worker's chain of parts, the one written last, or the error writing it.
    pub part: Result<Chain, String>,
}

/// The parts of one name a checkpoint lists: a part with every entry, then parts of the
/// changes after it. Each new part of changes makes loading longer; a part with every entry
/// starts the chain again once it has [`Chain::MAX_CHANGES`] of them, or once they add up to
/// half the first part's size.
#[derive(Clone, Debug, Default)]
pub struct Chain(Vec<PartEntry>);

impl Chain {
    /// Parts of changes after a part with every entry, at most.
    pub const MAX_CHANGES: usize = 8;

    /// Whether the next part should hold only changes.
    pub fn wants_changes(&self) -> bool {
        let Some((all, changes)) = self.0.split_first() else {
            return false;
        };
        changes.len() < Self::MAX_CHANGES
            && changes.iter().map(|p| p.bytes).sum::<u64>() < all.bytes / 2
    }

    /// Adds the part just written: one with every entry starts the chain again.
    pub fn push(&mut self, part: PartEntry) {
        if !part.changes {
            self.0.clear();
        }
        self.0.push(part);
    }

    /// The parts, in the order they load.
    pub fn parts(&self) -> &[PartEntry] {
        &self.0
    }
}

/// The checkpoints of a run in progress: which are waiting for parts, and when the next is due.
pub struct Checkpointer {
    config: CheckpointConfig,
    workers: usize,
    /// Workers' chains of parts by epoch.
    parts: BTreeMap<u64, Vec<Chain>>,
    /// The sink's parts so far: the next builds on them.
    chain: Chain,
    /// Checkpoints whose sink part is written, waiting for the workers'.
    waiting: BTreeMap<u64, Manifest>,
    /// The epoch of the newest committed checkpoint.
    pub committed: Option<u64>,
    /// The epoch of the newest checkpoint whose sink part is written.
    pub taken: Option<u64>,
    /// With external sinks: the log of each epoch's plan, once opened.
    plans: Option<PlanLog>,
}

impl Checkpointer {
    /// Checkpoints as `config` says, for a run of `workers` workers; `resumed` is the
    /// checkpoint the run resumed from, if any.
    pub fn new(config: CheckpointConfig, workers: usize, resumed: Option<&Resume>) -> Self {
        let committed = resumed.map(|r| r.manifest.epoch);
        Checkpointer {
            config,
            workers,
            parts: BTreeMap::new(),
            chain: resumed.map(|r| r.chain(SINK_PART)).unwrap_or_default(),
            waiting: BTreeMap::new(),
            committed,
            taken: committed,
            plans: None,
        }
    }

    /// Makes what `planned` read durable before the external sinks commit it, if there are
    /// any: a restart plans it again the same, whether or not they committed it.
    pub fn log_plan(&mut self, planned: &Planned) -> anyhow::Result<()> {
        if !self.config.log_plans {
            return Ok(());
        }
        let log = match &mut self.plans {
            Some(log) => log,
            None => self.plans.insert(PlanLog::open(&self.config.dir)?),
        };
        log.log(planned)
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

    /// Whether the sink's next part should hold only the changes since its last.
    pub fn wants_changes(&self) -> bool {
        self.chain.wants_changes()
    }

    /// Writes the sink's part of the checkpoint of `epoch` and notes the rest of its manifest.
    pub fn sink_part(
        &mut self,
        epoch: u64,
        part: SinkPartRef<'_>,
        point: Point,
    ) -> anyhow::Result<()> {
        super::fault("before-sink-part");
        let changes = part.1.as_ref().is_some_and(|(rows, _)| rows.is_changes());
        let entry = manifest::write_part(&self.config.dir, epoch, SINK_PART, |out| {
            encoding()
                .serialize_into(out, &part)
                .map_err(std::io::Error::other)?;
            Ok(changes)
        })?;
        self.chain.push(entry);
        let manifest = Manifest {
            format: manifest::FORMAT,
            epoch,
            written_at: String::new(),
            workers: self.workers,
            settings: self.config.settings.clone(),
            inputs: self.config.inputs.clone(),
            files: point.files,
            topics: point.topics,
            next_index: point.next_index,
            outputs: point.outputs,
            max_ts: point.max_ts,
            records_read: point.records_read,
            parts: self.chain.parts().to_vec(),
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
        let mut chains = self.parts.remove(&epoch).unwrap_or_default();
        chains.sort_by(|a, b| a.parts()[0].file.cmp(&b.parts()[0].file));
        for chain in chains {
            manifest.parts.extend_from_slice(chain.parts());
        }
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as Millis);
        manifest.written_at = format_millis(now);
        manifest::commit(&self.config.dir, &manifest)?;
        self.committed = Some(epoch);
        if let Some(log) = &mut self.plans {
            log.committed(epoch)?;
        }
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
    /// Every topic known, with where reading each partition reached.
    pub topics: Vec<TopicPosition>,
    /// The index the next new input file gets.
    pub next_index: u32,
    /// The append-only outputs' lengths.
    pub outputs: BTreeMap<String, u64>,
    /// The greatest event time read.
    pub max_ts: Option<Millis>,
    /// Records read.
    pub records_read: u64,
}
