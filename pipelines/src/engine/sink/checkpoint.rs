//! The sink's side of checkpoints: starting the append-only outputs (afresh, or cut to a
//! checkpoint's lengths), its state saved after an epoch, and loaded on resuming.

use std::collections::BTreeMap;
use std::path::PathBuf;

use amend_operators::event::AUDIT_FILE_BASE;
use amend_operators::output::saved_rows::ByWindow;
use amend_operators::output::table::Table;
use amend_operators::proof::window_digests::DigestedTable;

use super::Sink;
use crate::engine::checkpoint::Resume;
use crate::engine::checkpoint::SINK_PART;
use crate::engine::checkpoint::manifest::{FilePosition, TopicPosition};
use crate::engine::checkpoint::sink_part::{RowKey, RowsRef, SavedFacts, SinkState, decode_chain};
use crate::engine::checkpoint::take::{PartWritten, Point};
use crate::engine::writers::files::AppendFile;

fn usage(text: String) -> anyhow::Error {
    anyhow::Error::new(crate::UsageError(text))
}

impl<'w> Sink<'w> {
    /// Every append-only output: `epochs.jsonl`, then each writer's.
    fn append_files(&mut self) -> Vec<&mut AppendFile> {
        let mut files = vec![self.epochs.file()];
        for writer in self.writers.iter_mut() {
            files.extend(writer.appends());
        }
        files
    }

    /// Starts every append-only output: emptied, or, resuming, cut to the checkpoint's length.
    pub fn begin(&mut self, resume: Option<&Resume>) -> anyhow::Result<()> {
        let lengths = resume.map(|r| &r.manifest.outputs);
        let files = self.append_files();
        // Every file is checked before any is cut: a run that cannot resume changes nothing.
        let mut at = Vec::new();
        for file in &files {
            let len = match lengths {
                Some(lengths) => Some(lengths.get(file.name()).copied().ok_or_else(|| {
                    usage(format!(
                        "the checkpoint has no {}: it was taken by a run with other outputs \
                         (--follow or not, --gaps, --fill)",
                        file.name()
                    ))
                })?),
                None => None,
            };
            if let Some(problem) = len.and_then(|len| file.shorter_than(len)) {
                return Err(usage(problem));
            }
            at.push(len);
        }
        for (file, len) in files.into_iter().zip(at) {
            file.begin(len)?;
        }
        Ok(())
    }

    /// Loads the sink's state from the checkpoint `resume`: the table, the counts, where
    /// reading had reached; the next epoch opens.
    pub fn resume(&mut self, resume: &Resume) -> anyhow::Result<()> {
        let parts = resume
            .take_sink_parts()
            .ok_or_else(|| anyhow::anyhow!("the checkpoint has no {SINK_PART}"))?;
        let SinkState {
            facts,
            rows,
            gaps,
            estimates,
        } = decode_chain(parts)?;
        let state = &mut self.state;
        if let (Some(table), Some((rows, windows))) = (&mut state.table, rows) {
            *table = DigestedTable::with_saved(table.table().scale(), rows, windows);
            // Rows are decoded a window at a time as changes touch them, unless an output
            // reads the whole table at every epoch.
            if self.needs.whole_table {
                table.load_all()?;
            }
            table.track_changes();
        }
        if let (Some(table), Some(gaps)) = (&mut state.gaps, gaps) {
            *table = gaps;
        }
        state.estimates = estimates;
        state.facts.counts = facts.counts;
        state.facts.resumed_after = Some(resume.manifest.epoch);
        self.sources = facts.sources;
        for (writer, saved) in self.writers.iter_mut().zip(&facts.writers) {
            writer.restore(saved);
        }
        self.open = resume.next_epoch();
        self.open_planned = false;
        self.reached = resume
            .manifest
            .files
            .iter()
            .map(|f| (f.index, (f.offset, f.done)))
            .collect();
        self.topics_reached = (resume.manifest.topics.iter())
            .map(|t| (t.index, t.partitions.clone()))
            .collect();
        Ok(())
    }

    /// Takes a worker's part of a checkpoint.
    pub fn worker_part(&mut self, written: PartWritten) -> anyhow::Result<()> {
        match &mut self.checkpointer {
            Some(checkpointer) => checkpointer.worker_part(written),
            None => Ok(()),
        }
    }

    /// At the end of the run: a checkpoint of the last epoch written, unless one was taken.
    pub fn last_checkpoint(&mut self) -> anyhow::Result<()> {
        let Some(checkpointer) = &self.checkpointer else {
            return Ok(());
        };
        let last = self.open.checked_sub(1);
        if let Some(last) = last
            && Some(last) > checkpointer.taken
        {
            self.checkpoint(last)?;
        }
        Ok(())
    }

    /// A checkpoint of `epoch`, the last planned, asked for while the run is idle: taken now if
    /// the epoch is written (no output of a later one is applied: none is planned yet), or
    /// when it is.
    pub fn want_checkpoint(&mut self, epoch: u64) -> anyhow::Result<()> {
        if let Some(planned) = self.planned.get_mut(&epoch) {
            planned.checkpoint = true;
            return Ok(());
        }
        let taken = self.checkpointer.as_ref().and_then(|c| c.taken);
        if self.open == epoch + 1 && taken < Some(epoch) {
            self.checkpoint(epoch)?;
        }
        Ok(())
    }

    /// Whether a checkpoint still waits for workers' parts.
    pub fn checkpoint_waiting(&self) -> bool {
        self.checkpointer.as_ref().is_some_and(|c| c.waiting())
    }

    /// Takes the sink's part of the checkpoint of `epoch`, which was just written: syncs the
    /// append-only outputs and notes their lengths, and where reading each input reached.
    pub(super) fn checkpoint(&mut self, epoch: u64) -> anyhow::Result<()> {
        if self.checkpointer.is_none() {
            return Ok(());
        }
        let mut outputs = BTreeMap::new();
        for file in self.append_files() {
            outputs.insert(file.name().to_string(), file.sync()?);
        }
        let (known, topics): (Vec<(u32, PathBuf)>, Vec<TopicPosition>) = {
            let known = self.known.lock().expect("not poisoned");
            let files = (known.files.iter()).map(|(i, p)| (*i, p.clone())).collect();
            let topics = (known.topics.iter())
                .map(|(index, (name, started))| TopicPosition {
                    index: *index,
                    name: name.clone(),
                    partitions: (self.topics_reached.get(index).cloned())
                        .unwrap_or_else(|| started.clone()),
                })
                .collect();
            (files, topics)
        };
        let mut positions = Vec::new();
        for (index, path) in &known {
            let (offset, done) = self.reached.get(index).copied().unwrap_or((0, false));
            let position = FilePosition::of(*index, path, offset, done)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            positions.push(position);
        }
        let next_index = (known.iter().map(|(i, _)| *i))
            .chain(topics.iter().map(|t| t.index))
            .filter(|i| *i < AUDIT_FILE_BASE)
            .max()
            .map_or(0, |i| i + 1);
        // The window digests go beside the rows: a resumed run need not hash every row again.
        let windows = self
            .state
            .table
            .as_mut()
            .map(|t| t.current_digest().windows);
        let wants_changes = self
            .checkpointer
            .as_ref()
            .is_some_and(|c| c.wants_changes());
        let changed =
            (self.state.table.as_mut()).and_then(|table| table.checkpoint_changes(wants_changes));
        if let Some(table) = &mut self.state.table
            && changed.is_none()
        {
            table.load_all()?;
        }
        let state = &self.state;
        let counts = &state.facts.counts;
        let facts = SavedFacts {
            counts: counts.clone(),
            sources: self.sources.clone(),
            writers: self.writers.iter().map(|w| w.save()).collect(),
        };
        let point = Point {
            files: positions,
            topics,
            next_index,
            outputs,
            max_ts: counts.max_ts,
            records_read: counts.read.records_read,
        };
        let part = (
            &facts,
            state
                .table
                .as_ref()
                .zip(windows.as_deref())
                .map(|(t, w)| (saved_rows(t.table(), changed.as_deref()), w)),
            state.gaps.as_ref(),
            &state.estimates,
        );
        let checkpointer = self.checkpointer.as_mut().expect("checked");
        checkpointer.sink_part(epoch, part, point)
    }
}

/// The rows a sink part saves: all of them, or those of the keys `changed` (each in memory:
/// a change decodes its window's saved rows).
fn saved_rows<'a>(table: &'a Table, changed: Option<&'a [RowKey]>) -> RowsRef<'a> {
    match changed {
        None => RowsRef::All(ByWindow(table.rows())),
        Some(keys) => {
            let rows = table.loaded_rows();
            RowsRef::Changes(keys.iter().map(|k| (k, rows.get(k))).collect())
        }
    }
}
