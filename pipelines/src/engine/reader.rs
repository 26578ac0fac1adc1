//! One worker: builds the dataflow, reads its share of every epoch, and feeds it in.
//!
//! Every epoch goes to every worker; each reads its own byte range of it (a gzip file goes
//! whole to one worker) with the library's [`Reader`], which keeps the per-line rules, and
//! feeds records into the dataflow in batches of `--batch-records`, each at its own internal
//! time within the epoch. A worker starts an epoch only when the previous one has passed the
//! whole dataflow, so reading never runs ahead of processing.
//!
//! With checkpoints, a worker saves its operators' state after each epoch the planner marks,
//! once the epoch has passed the whole dataflow and before it reads the next, and after its
//! last epoch; a resumed worker loads its share of the checkpoint's state as it builds the
//! dataflow.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use amend_operators::event::{batch_time, epoch_end, epoch_start};
use amend_operators::incremental::durable::{Restore, Store};
use amend_operators::ingest::read::{Read, Reader};
use amend_operators::ingest::source::Epoch;
use amend_operators::time::Millis;
use amend_operators::{DeadLetter, Event, Time};
use timely::dataflow::operators::probe::Handle as ProbeHandle;
use timely::worker::Worker;

use crate::engine::EngineConfig;
use crate::engine::checkpoint::manifest::write_part;
use crate::engine::checkpoint::take::{Chain, PartWritten};
use crate::engine::checkpoint::{Resume, worker_part};
use crate::engine::dataflow::{Captures, Dataflow, Inputs, MarksInput};

/// Counts from one worker's reading of one epoch.
#[derive(Copy, Clone, Debug, Default)]
pub struct ReadStats {
    /// The epoch.
    pub epoch: u64,
    /// Records read: accepted, dead-lettered and skipped.
    pub read: u64,
    /// Records fed to the dataflow.
    pub accepted: u64,
    /// Bad records.
    pub dead: u64,
    /// Records outside the replay slice.
    pub skipped: u64,
    /// Audit-log lines that hold no audit record.
    pub audit_skipped: u64,
    /// The greatest event time of the records read.
    pub max_ts: Option<Millis>,
}

impl ReadStats {
    /// Adds another worker's counts of the same epoch.
    pub fn add(&mut self, other: &ReadStats) {
        self.read += other.read;
        self.accepted += other.accepted;
        self.dead += other.dead;
        self.skipped += other.skipped;
        self.audit_skipped += other.audit_skipped;
        self.max_ts = self.max_ts.max(other.max_ts);
    }
}

/// What one worker is given: the run's settings and the channels it talks through.
pub struct WorkerSetup<'a> {
    /// The run's settings.
    pub config: &'a EngineConfig,
    /// The dataflow to build.
    pub dataflow: &'a Dataflow,
    /// Epochs from the planner, each with whether a checkpoint follows it.
    pub epochs: mpsc::Receiver<Work>,
    /// Where the dataflow's output goes.
    pub output: mpsc::Sender<Captures>,
    /// Where each epoch's read counts go.
    pub stats: mpsc::Sender<ReadStats>,
    /// Records read so far, over all workers, for the progress line.
    pub records_read: &'a AtomicU64,
    /// With checkpoints: where parts go, where their entries are reported, and the
    /// checkpoint the run resumes from.
    pub checkpoints: Option<(PathBuf, mpsc::Sender<PartWritten>, Option<Arc<Resume>>)>,
}

/// What the planner sends a worker.
pub enum Work {
    /// An epoch to read, and whether a checkpoint follows it.
    Epoch(Epoch, bool),
    /// A checkpoint of the epoch read last, which no other has followed yet (the run is idle
    /// when one is due).
    Checkpoint(u64),
}

/// A worker's checkpoints: its store, and the epoch it saved last.
struct Saving {
    store: Store,
    dir: PathBuf,
    parts: mpsc::Sender<PartWritten>,
    saved: Option<u64>,
    /// This worker's parts so far: the next part builds on them.
    chain: Chain,
}

impl Saving {
    /// Writes this worker's part of the checkpoint of `epoch` and reports it to the sink.
    fn save(&mut self, epoch: u64, index: usize) -> Result<(), String> {
        let changes = self.chain.wants_changes();
        let written = write_part(&self.dir, epoch, &worker_part(index), |out| {
            Ok(self.store.save(out, changes)?.changes)
        });
        let part = match written {
            Ok(part) => {
                self.chain.push(part);
                Ok(self.chain.clone())
            }
            Err(e) => Err(format!("{e:#}")),
        };
        let failed = part.as_ref().err().cloned();
        let _ = self.parts.send(PartWritten { epoch, part });
        self.saved = Some(epoch);
        failed.map_or(Ok(()), Err)
    }
}

/// The store of worker `index` of `peers`: loaded with its share of `resume`'s state.
fn store(resume: Option<&Resume>, index: usize, peers: usize) -> Store {
    let Some(resume) = resume else {
        return Store::new(None);
    };
    let (chains, filter) = resume.take_worker_parts(index, peers);
    let keep = move |route: u64| route % peers as u64 == index as u64;
    let max_ts = resume.manifest.max_ts;
    let restore = Restore::new(chains, filter, keep, resume.next_epoch(), max_ts);
    Store::new(Some(restore))
}

/// Runs one worker until the planner sends no more epochs.
pub fn run_worker(worker: &mut Worker, setup: WorkerSetup<'_>) -> Result<(), String> {
    let WorkerSetup {
        config,
        dataflow,
        epochs,
        output,
        stats,
        records_read,
        checkpoints,
    } = setup;
    let (index, peers) = (worker.index(), worker.peers());
    let resume = checkpoints.as_ref().and_then(|(_, _, r)| r.clone());
    let mut saving = checkpoints.map(|(dir, parts, _)| Saving {
        store: store(resume.as_deref(), index, peers),
        dir,
        parts,
        saved: None,
        // With as many workers as the checkpoint's, each goes on with its own chain.
        chain: resume
            .as_deref()
            .filter(|r| r.manifest.workers == peers)
            .map(|r| r.chain(&worker_part(index)))
            .unwrap_or_default(),
    });
    let no_store = Store::default();
    let store = saving.as_ref().map_or(&no_store, |s| &s.store);
    let probe = ProbeHandle::new();
    let mut marks = MarksInput::new();
    let mut inputs = worker
        .dataflow::<Time, _, _>(|scope| dataflow.build(scope, &probe, output, (&mut marks, store)));
    if let Some(error) = store.finish_loading() {
        return Err(format!("cannot load the checkpoint: {error}"));
    }
    let recovery = &config.recovery;
    let mut reader = Reader::new(
        config.names.clone(),
        config.scale,
        recovery.audit_format.clone(),
        recovery.slice,
        config.max_line_bytes,
    );
    // Resumed, the greatest event time read before is every worker's: its marks say so.
    let mut max_ts: Option<Millis> = resume.as_ref().and_then(|r| r.manifest.max_ts);
    let mut last = None;
    while let Some(work) = next_work(worker, &epochs) {
        let (epoch, checkpoint) = match work {
            Work::Epoch(epoch, checkpoint) => (epoch, checkpoint),
            Work::Checkpoint(epoch) => {
                if let Some(saving) = saving.as_mut()
                    && last == Some(epoch)
                    && saving.saved != Some(epoch)
                {
                    saving.save(epoch, index)?;
                }
                continue;
            }
        };
        // The marks of this epoch's start were sent when the last epoch ended; past them, the
        // horizon of this epoch is known once every worker is here. The marks input waits at
        // the epoch's last time, which no batch reaches, so it holds back nothing of the epoch.
        marks.advance_to(epoch_end(epoch.epoch));
        marks.flush();
        let mut feeder = Feeder {
            worker,
            inputs: &mut inputs,
            probe: &probe,
            epoch: epoch.epoch,
            batch: 0,
            in_batch: 0,
            batch_records: config.batch_records,
            stats: ReadStats {
                epoch: epoch.epoch,
                ..ReadStats::default()
            },
            unreported: 0,
            records_read,
        };
        if let Some(range) = epoch.share(index, peers) {
            reader
                .read(&epoch, range, |read| feeder.take(read))
                .map_err(|e| format!("{}: {e}", epoch.input.path.display()))?;
        }
        feeder.report();
        let epoch_stats = feeder.stats;
        max_ts = max_ts.max(epoch_stats.max_ts);
        // The counts go before the epoch can complete, so the sink has them when it does.
        let _ = stats.send(epoch_stats);
        // The epoch is complete on this worker: wait until it is on all before the next one.
        // The greatest event time read so far goes out as the next epoch's watermark input.
        let next = epoch_start(epoch.epoch + 1);
        marks.advance_to(next);
        if let Some(ts) = max_ts {
            marks.send((next, ts));
        }
        marks.flush();
        inputs.advance_to(next);
        // Parks while there is nothing to do (the other workers' messages wake it): spinning
        // would hold a core that the worker it waits for, or the sink, needs.
        worker.step_or_park_while(None, || probe.less_than(&next));
        last = Some(epoch.epoch);
        if let Some(saving) = saving.as_mut().filter(|_| checkpoint) {
            saving.save(epoch.epoch, index)?;
        }
    }
    // The run ends with a checkpoint of its last epoch.
    if let (Some(saving), Some(last)) = (saving.as_mut(), last)
        && saving.saved != Some(last)
    {
        saving.save(last, index)?;
    }
    Ok(())
}

/// Waits for the next work, keeping the dataflow moving meanwhile; `None` when there is no
/// more.
fn next_work(worker: &mut Worker, epochs: &mpsc::Receiver<Work>) -> Option<Work> {
    loop {
        match epochs.try_recv() {
            Ok(epoch) => return Some(epoch),
            Err(mpsc::TryRecvError::Disconnected) => return None,
            Err(mpsc::TryRecvError::Empty) => {
                worker.step_or_park(Some(Duration::from_millis(1)));
            }
        }
    }
}

/// Feeds records into the dataflow, one internal batch time after another.
struct Feeder<'a> {
    worker: &'a mut Worker,
    inputs: &'a mut Inputs,
    probe: &'a ProbeHandle<Time>,
    epoch: u64,
    batch: u64,
    in_batch: u64,
    batch_records: u64,
    stats: ReadStats,
    /// Records read and not yet added to `records_read`.
    unreported: u64,
    records_read: &'a AtomicU64,
}

impl Feeder<'_> {
    #[inline]
    fn time(&self) -> Time {
        batch_time(self.epoch, self.batch)
    }

    #[inline]
    fn take(&mut self, read: Read) {
        match read {
            Read::Record(record) => {
                let time = self.time();
                if let Some(sightings) = &mut self.inputs.sightings
                    && let Some(sighting) = record.sighting()
                {
                    sightings.update_at(sighting, time, 1);
                }
                self.event(record.event)
            }
            Read::Dead(letter) => self.dead(letter),
            Read::Skipped => {
                self.stats.skipped += 1;
                self.record();
            }
            Read::NoAuditRecord => self.stats.audit_skipped += 1,
        }
    }

    #[inline]
    fn event(&mut self, event: Event) {
        self.stats.max_ts = self.stats.max_ts.max(Some(event.ts));
        self.inputs.events.update_at(event, self.time(), 1);
        self.stats.accepted += 1;
        self.record();
    }

    #[inline]
    fn dead(&mut self, letter: DeadLetter) {
        self.inputs.dead.update_at(letter, self.time(), 1);
        self.stats.dead += 1;
        self.record();
    }

    /// Counts a record; a full batch moves to the next internal time, at most one batch ahead
    /// of what the dataflow has finished.
    fn record(&mut self) {
        self.stats.read += 1;
        self.unreported += 1;
        if self.unreported == 4096 {
            self.report();
        }
        self.in_batch += 1;
        if self.in_batch >= self.batch_records {
            let done = self.time();
            self.batch += 1;
            self.in_batch = 0;
            self.inputs.advance_to(self.time());
            let probe = self.probe;
            self.worker.step_while(|| probe.less_than(&done));
        }
    }

    /// Adds the records read since the last report to the progress counter.
    fn report(&mut self) {
        self.records_read
            .fetch_add(self.unreported, Ordering::Relaxed);
        self.unreported = 0;
    }
}
