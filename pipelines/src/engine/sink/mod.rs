//! The sink: gathers every worker's captured output, releases it epoch by epoch, and keeps the
//! state the writers read.
//!
//! The open epoch's row changes are applied to the table as they arrive (a group's changes
//! come from the one worker that owns it, in the order it made them); dead letters, late
//! records, gap and estimate changes are held. When no worker can still add to the epoch, the
//! sink closes it: every writer writes its part ([`Writer::epoch`]), then the epoch's line of
//! `epochs.jsonl`. Output of a later epoch that arrives first waits until the open epoch
//! closes. At a snapshot point, between two epochs, every writer rewrites what it writes
//! whole ([`Writer::snapshot`]) while the table's digest is computed beside them.

mod checkpoint;

use std::collections::BTreeMap;
use std::time::Instant;

use amend_operators::event::{epoch_of, epoch_start};
use amend_operators::ingest::messages::PartitionNext;
use amend_operators::output::gap_table::GapTable;
use amend_operators::proof::digest::TableDigest;
use amend_operators::proof::window_digests::DigestedTable;
use amend_operators::recovery::estimates::Estimate;
use amend_operators::time::{Millis, format_millis};
use amend_operators::{DeadLetter, GapRow, LateRecord, Lateness, Op, Time, Window};
use anyhow::Context;
use compact_str::CompactString;
use timely::dataflow::operators::capture::Event as Captured;
use timely::progress::frontier::MutableAntichain;

use crate::engine::checkpoint::take::Checkpointer;
use crate::engine::dataflow::{Captures, Gauges, Update};
use crate::engine::plan::KnownFiles;
use crate::engine::reader::ReadStats;
use crate::engine::summary::{ReadCounts, RunStats, Summary, percentile};
use crate::engine::writers::{ClosedEpoch, EpochIndex, Needs, Planned, SnapshotPoint, Writer};
use crate::engine::{Computations, EngineConfig};

/// What the run has computed so far, as the writers read it.
pub struct State {
    /// The aggregate table, if the run aggregates.
    pub table: Option<DigestedTable>,
    /// The gap tables, if the run detects gaps.
    pub gaps: Option<GapTable>,
    /// Estimated rows (`--fill`).
    pub estimates: BTreeMap<(Window, CompactString), Estimate>,
    /// The counts.
    pub facts: Facts,
}

/// The counts of the run so far, which a checkpoint keeps and a resumed run goes on from.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    /// What was read.
    pub read: ReadCounts,
    /// Epochs written.
    pub epochs: u64,
    /// Late records.
    pub records_late: u64,
    /// Ids whose current record is an upsert, and a delete.
    pub ids: [i64; 2],
    /// Ids only audit logs had.
    pub only_in_audit: i64,
    /// Changelog lines of the table.
    pub changelog_lines: u64,
    /// Each epoch's latency, milliseconds.
    pub latencies: Vec<f64>,
    /// The greatest event time of the written epochs.
    pub max_ts: Option<Millis>,
}

/// The counts of the run so far, and how it runs.
pub struct Facts {
    /// The counts a checkpoint keeps.
    pub counts: Counts,
    /// When the run started.
    pub started: Instant,
    /// Timely workers.
    pub workers: usize,
    /// Event time.
    pub lateness: Lateness,
    /// What the operators hold.
    pub gauges: Gauges,
    /// Records read by this run (not by the run a checkpoint came from).
    pub run_records_read: u64,
    /// The epoch of the checkpoint this run resumed from.
    pub resumed_after: Option<u64>,
}

impl Facts {
    /// Epochs, time and workers so far.
    pub fn run_stats(&self) -> RunStats {
        let elapsed_seconds = self.started.elapsed().as_secs_f64();
        RunStats {
            epochs: self.counts.epochs,
            elapsed_seconds,
            records_per_second: self.run_records_read as f64 / elapsed_seconds.max(1e-9),
            workers: self.workers,
            run_records_read: self.run_records_read,
            resumed_after_epoch: self.resumed_after,
        }
    }

    /// The watermark after the written epochs.
    pub fn watermark(&self) -> Option<Millis> {
        self.lateness.watermark(self.counts.max_ts)
    }
}

impl State {
    /// `summary.json` as of now, for the table whose digest is `digest`.
    pub fn summary(&self, digest: Option<&TableDigest>) -> Summary {
        let facts = &self.facts;
        let mut latencies = facts.counts.latencies.clone();
        let (state_ids, state_groups) = facts.gauges.state.read();
        Summary {
            read: facts.counts.read.clone(),
            ids_only_in_audit: facts.counts.only_in_audit.max(0) as u64,
            records_late: facts.counts.records_late,
            ids_current: facts.counts.ids[Op::Upsert as usize].max(0) as u64,
            ids_deleted: facts.counts.ids[Op::Delete as usize].max(0) as u64,
            run: facts.run_stats(),
            rows: self.table.as_ref().map_or(0, |t| t.table().row_count()),
            windows: digest.map_or(0, |d| d.windows.len() as u64),
            changelog_lines: facts.counts.changelog_lines,
            table_digest: digest.map(|d| d.table.clone()).unwrap_or_default(),
            epoch_latency_ms_p50: percentile(&mut latencies, 0.5),
            epoch_latency_ms_p99: percentile(&mut latencies, 0.99),
            watermark: facts.watermark().map(format_millis),
            state_ids,
            state_groups,
            estimates: self.estimates.len() as u64,
        }
    }
}

/// The updates of the open epoch that are written when it closes.
#[derive(Default)]
struct Open {
    dead: Vec<DeadLetter>,
    late: Vec<LateRecord>,
}

/// Gathers the workers' captured output and releases it epoch by epoch to the writers.
pub struct Sink<'w> {
    /// Times still possible at some worker's capture.
    frontier: MutableAntichain<Time>,
    /// The epoch whose changes are being applied.
    open: u64,
    /// Whether the open epoch's plan has come: its output waits until it has.
    open_planned: bool,
    /// Epochs planned and not yet written.
    planned: BTreeMap<u64, Planned>,
    /// Each epoch's read counts, summed over workers.
    stats: BTreeMap<u64, ReadStats>,
    /// What the open epoch writes when it closes.
    pending: Open,
    /// Output of later epochs that arrived before the open epoch closed.
    early: BTreeMap<u64, Vec<(Update, isize)>>,
    /// Input names by index.
    sources: BTreeMap<u32, String>,
    state: State,
    writers: Vec<&'w mut dyn Writer>,
    epochs: EpochIndex,
    needs: Needs,
    /// With `--checkpoint-dir`: the checkpoints in progress.
    checkpointer: Option<Checkpointer>,
    /// Where reading each input file had reached after the written epochs: offset, and
    /// whether it is read for good.
    reached: BTreeMap<u32, (u64, bool)>,
    /// Where reading each topic had reached after the written epochs, by input index.
    topics_reached: BTreeMap<u32, Vec<PartitionNext>>,
    /// Every input file known, by index.
    known: KnownFiles,
}

impl<'w> Sink<'w> {
    /// A sink for the run of `config` computing `computations`, writing through `writers`
    /// and into `epochs.jsonl` after them.
    pub fn new(
        config: &EngineConfig,
        computations: &Computations,
        gauges: Gauges,
        writers: Vec<&'w mut dyn Writer>,
        started: Instant,
        (checkpointer, known): (Option<Checkpointer>, KnownFiles),
    ) -> anyhow::Result<Self> {
        let mut frontier = MutableAntichain::new();
        // Each worker's capture starts out able to produce any time.
        frontier.update_iter([(0, config.workers as i64)]);
        let needs = writers
            .iter()
            .fold(Needs::default(), |needs, writer| needs.or(writer.needs()));
        let table = match computations.table {
            Some(spec) => {
                let mut table = DigestedTable::new(config.scale);
                // Closed tumbling and hop windows close in start order: their rows can leave
                // memory, in the snapshot's format, unless a writer walks the whole table.
                let closes_in_order =
                    !matches!(spec.window, amend_operators::WindowSpec::Session { .. });
                if let Some(format) = needs.snapshot_format
                    && config.lateness.is_bounded()
                    && closes_in_order
                    && !needs.whole_table
                    && config.checkpoint.is_none()
                {
                    let file = tempfile::tempfile_in(&config.out).with_context(|| {
                        format!("cannot create a temporary file in {}", config.out.display())
                    })?;
                    table.spill_closed(file, format);
                }
                Some(table)
            }
            None => None,
        };
        Ok(Sink {
            frontier,
            open: 0,
            open_planned: false,
            planned: BTreeMap::new(),
            stats: BTreeMap::new(),
            pending: Open::default(),
            early: BTreeMap::new(),
            sources: BTreeMap::new(),
            state: State {
                table,
                gaps: computations.gaps.map(|_| GapTable::new()),
                estimates: BTreeMap::new(),
                facts: Facts {
                    counts: Counts::default(),
                    started,
                    workers: config.workers,
                    lateness: config.lateness,
                    gauges,
                    run_records_read: 0,
                    resumed_after: None,
                },
            },
            writers,
            epochs: EpochIndex::create(&config.out)?,
            needs,
            checkpointer,
            reached: BTreeMap::new(),
            topics_reached: BTreeMap::new(),
            known,
        })
    }

    /// The epoch whose output is being gathered.
    pub fn open_epoch(&self) -> u64 {
        self.open
    }

    /// Takes one event of a worker's capture.
    pub fn absorb(&mut self, event: Captures) -> anyhow::Result<()> {
        match event {
            Captured::Progress(changes) => self.frontier.update_iter(changes).for_each(drop),
            Captured::Messages(_stamp, updates) => {
                for (update, time, diff) in updates {
                    self.take(epoch_of(time), update, diff)?;
                }
            }
        }
        Ok(())
    }

    /// Takes an epoch the planner sent; output of it that came first is applied now.
    pub fn plan(&mut self, planned: Planned) -> anyhow::Result<()> {
        self.sources
            .entry(planned.source)
            .or_insert_with(|| planned.name.clone());
        let epoch = planned.epoch;
        self.planned.insert(epoch, planned);
        if epoch == self.open {
            self.open_planned = true;
            for (update, diff) in self.early.remove(&epoch).unwrap_or_default() {
                self.take(epoch, update, diff)?;
            }
        }
        Ok(())
    }

    /// Takes one worker's read counts of an epoch.
    pub fn count(&mut self, stats: ReadStats) {
        self.stats.entry(stats.epoch).or_default().add(&stats);
    }

    /// Lets every writer check for an error that should stop the run early.
    pub fn check(&mut self) -> anyhow::Result<()> {
        self.writers
            .iter_mut()
            .try_for_each(|writer| writer.check())
    }

    /// Whether the open epoch has changes applied: then no snapshot may be taken.
    pub fn mid_epoch(&self) -> bool {
        self.state
            .table
            .as_ref()
            .is_some_and(|table| table.table().has_open_changes())
    }

    fn take(&mut self, epoch: u64, update: Update, diff: isize) -> anyhow::Result<()> {
        // An epoch's output is applied once the sink knows it is planned: a checkpoint of
        // the epoch before, asked for ahead of it, is taken before any of it is applied.
        if epoch > self.open || (epoch == self.open && !self.open_planned) {
            self.early.entry(epoch).or_default().push((update, diff));
            return Ok(());
        }
        anyhow::ensure!(
            epoch == self.open,
            "internal error: output for epoch {epoch} after it was written"
        );
        let state = &mut self.state;
        match update {
            Update::Row(row) => {
                let table = state.table.as_mut().expect("rows come with a table");
                for _ in 1..diff.unsigned_abs() {
                    table.apply(epoch, row.clone(), diff.signum())?;
                }
                table.apply(epoch, row, diff.signum())?;
            }
            // A dead letter or a late record is inserted once and never retracted.
            Update::Dead(letter) => self
                .pending
                .dead
                .extend(std::iter::repeat_n(letter, diff.max(0) as usize)),
            Update::Late(late) => self
                .pending
                .late
                .extend(std::iter::repeat_n(late, diff.max(0) as usize)),
            Update::Id(op) => state.facts.counts.ids[op as usize] += diff as i64,
            Update::OnlyInAudit => state.facts.counts.only_in_audit += diff as i64,
            Update::Estimate((key, estimate)) => {
                if diff > 0 {
                    state.estimates.insert(key, estimate);
                } else if state.estimates.get(&key) == Some(&estimate) {
                    state.estimates.remove(&key);
                }
            }
            Update::Gap(row) => {
                if let Some(gaps) = &mut state.gaps {
                    gaps.push(row, diff);
                }
            }
        }
        Ok(())
    }

    /// Writes out every planned epoch that no worker can still add to (all if `all`).
    /// With `periodic` (when the next snapshot is due, and how often), also takes a snapshot
    /// point after an epoch once one is due, before any output of the next epoch is applied.
    pub fn release(
        &mut self,
        all: bool,
        mut periodic: Option<(&mut Instant, std::time::Duration)>,
    ) -> anyhow::Result<()> {
        while self.planned.contains_key(&self.open)
            && (all || !self.frontier.less_than(&epoch_start(self.open + 1)))
        {
            let checkpoint = self.planned[&self.open].checkpoint;
            self.close_epoch()?;
            if checkpoint {
                self.checkpoint(self.open - 1)?;
            }
            if let Some((next, interval)) = periodic.as_mut()
                && Instant::now() >= **next
            {
                self.snapshot()?;
                **next = Instant::now() + *interval;
            }
            for (update, diff) in self.early.remove(&self.open).unwrap_or_default() {
                self.take(self.open, update, diff)?;
            }
        }
        Ok(())
    }

    /// Closes the open epoch: every writer writes its part, then its line of epochs.jsonl;
    /// then the next epoch opens.
    fn close_epoch(&mut self) -> anyhow::Result<()> {
        let epoch = self.open;
        let planned = self.planned.remove(&epoch).expect("checked by the caller");
        if let Some(topic) = &planned.topic {
            self.topics_reached
                .insert(planned.source, topic.reached.clone());
        } else {
            let reached = planned.span.1.map_or((0, true), |end| (end, false));
            self.reached.insert(planned.source, reached);
        }
        if let Some(checkpointer) = &mut self.checkpointer {
            checkpointer.log_plan(&planned)?;
        }
        let read = self.stats.remove(&epoch).unwrap_or_default();
        let watermark = self.state.facts.watermark();
        let mut open = std::mem::take(&mut self.pending);
        open.dead.sort();
        open.late.sort_by_key(|l| l.event.position);
        let state = &mut self.state;
        let gap_changes: Vec<(GapRow, isize)> = match &mut state.gaps {
            Some(gaps) => gaps.close_epoch(epoch)?,
            None => Vec::new(),
        };
        let (digest_changes, table_digest) = match &mut state.table {
            Some(table) if self.needs.epoch_digests => {
                let changes = table.refresh_digests();
                let digest = (!changes.is_empty()).then(|| table.table_digest());
                (changes, digest)
            }
            _ => (Vec::new(), None),
        };
        let closed = ClosedEpoch {
            epoch,
            planned: &planned,
            read: &read,
            table: state.table.as_ref(),
            digest_changes: &digest_changes,
            table_digest: table_digest.as_deref(),
            gap_changes: &gap_changes,
            dead: &open.dead,
            late: &open.late,
            sources: &self.sources,
        };
        for writer in &mut self.writers {
            writer.epoch(&closed)?;
        }
        if let Some(table) = &state.table {
            state.facts.counts.changelog_lines += table.changes().lines() as u64;
        }
        let facts = &mut state.facts;
        let latency = self
            .epochs
            .write(&closed, watermark, facts.gauges.state.read())?;
        facts.counts.latencies.push(latency);
        facts.counts.read.add(&read);
        facts.run_records_read += read.read;
        facts.counts.records_late += open.late.len() as u64;
        facts.counts.epochs += 1;
        if let Some(table) = &mut state.table {
            table.end_epoch();
            // Windows that closed at this epoch's start can no longer change.
            if let Some(horizon) = facts.lateness.horizon(facts.counts.max_ts) {
                table.close_windows(horizon)?;
            }
        }
        facts.counts.max_ts = facts.counts.max_ts.max(read.max_ts);
        self.open = epoch + 1;
        self.open_planned = self.planned.contains_key(&self.open);
        Ok(())
    }

    /// A snapshot point: every writer rewrites what it writes whole, while the table digest
    /// is computed beside the writers that do not need it; the digests are then remembered.
    /// Returns the summary as of this point.
    pub fn snapshot(&mut self) -> anyhow::Result<Summary> {
        if let Some(table) = &mut self.state.table {
            table.load_all()?;
            table.flush_closed()?;
        }
        let state = &self.state;
        let writers = &mut self.writers;
        type Digested = (Option<TableDigest>, Summary);
        let (digest, summary) = std::thread::scope(|scope| -> anyhow::Result<Digested> {
            let compute = state.table.as_ref().map(|table| {
                let digest = scope.spawn(|| table.digest());
                Box::new(move || digest.join().expect("digesting does not panic"))
                    as Box<dyn FnOnce() -> TableDigest + '_>
            });
            let at = SnapshotPoint::new(state, compute);
            for writer in writers.iter_mut() {
                writer.snapshot(&at)?;
            }
            Ok((at.digest().cloned(), at.summary().clone()))
        })?;
        if let (Some(table), Some(digest)) = (&mut self.state.table, &digest) {
            table.remember_digests(digest);
        }
        Ok(summary)
    }

    /// The last snapshot point, then every writer's end; returns the final summary.
    pub fn finish(mut self) -> anyhow::Result<Summary> {
        let summary = self.snapshot()?;
        for writer in &mut self.writers {
            writer.finish()?;
        }
        Ok(summary)
    }
}
