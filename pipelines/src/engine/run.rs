//! The run loop: the planner thread, the timely workers, signals, and the sink on the calling
//! thread.
//!
//! A planner thread decides the epochs ([`crate::engine::plan`]) and hands each to every
//! worker, at most one ahead of the one being processed, and to the sink. The workers
//! ([`crate::engine::reader`]) read and feed them; the sink ([`crate::engine::sink`]), on the
//! calling thread, gathers their output and releases it epoch by epoch to the writers, and
//! every `--snapshot-interval` while following takes a snapshot point. SIGINT or SIGTERM (when
//! following) stops the planning of new epochs: the epochs already planned finish and every
//! output is written; a second signal exits at once.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, anyhow};

use crate::engine::checkpoint::take::Checkpointer;
use crate::engine::checkpoint::{self, Resume};
use crate::engine::dataflow::{Dataflow, Gauges};
use crate::engine::plan::{Input, PlanOptions, Planner, Reached};
use crate::engine::progress::Progress;
use crate::engine::reader::ReadStats;
use crate::engine::reader::{Work, WorkerSetup, run_worker};
use crate::engine::sink::Sink;
use crate::engine::summary::Summary;
use crate::engine::writers::files::create_out_dir;
use crate::engine::writers::{DeadLetters, Plan, Planned, Writer};
use crate::engine::{Computations, EngineConfig};

/// Runs the engine: reads the inputs of `config`, computes `computations`, and writes through
/// `writers` (after the dead letters, which every run writes) into `config.out`. Returns the
/// run's summary.
pub fn run(
    config: &EngineConfig,
    computations: &Computations,
    writers: Vec<&mut dyn Writer>,
) -> anyhow::Result<Summary> {
    let started = Instant::now();
    let out = &config.out;
    create_out_dir(out)?;
    let mut dead_letters = DeadLetters::create(out)?;
    let mut all: Vec<&mut dyn Writer> = vec![&mut dead_letters];
    all.extend(
        writers
            .into_iter()
            .map(|writer| -> &mut dyn Writer { writer }),
    );
    let resume = match &config.checkpoint {
        Some(checkpoints) => {
            if config.inputs.contains(&Input::Stdin) {
                return Err(anyhow::Error::new(crate::UsageError(
                    "--checkpoint-dir cannot resume standard input (`-`), which cannot be read \
                     again: give files or directories"
                        .into(),
                )));
            }
            checkpoint::open(checkpoints, out)?.map(Arc::new)
        }
        None => None,
    };
    let mut options = plan_options(config, resume.as_deref());
    if let (Some(checkpoints), None) = (&config.checkpoint, &resume)
        && !checkpoints.from_scratch
    {
        // Killed before its first checkpoint: the epochs it wrote are planned as they were.
        options.replay = checkpoint::replay::replay(&checkpoints.dir, out, 0, 0)?;
    }
    let planner = Planner::with(&config.inputs, config.follow, options)?
        .with_audit_logs(&config.recovery.audit_logs)?;
    let known = planner.known_files();
    let stop = stop_on_signals(config.follow || config.checkpoint.is_some())?;

    let gauges = Gauges::default();
    let dataflow = Dataflow {
        computations: computations.clone(),
        lateness: config.lateness,
        audit_logs: config.recovery.has_audit_logs(),
        gauges: gauges.clone(),
    };
    let checkpointer = config
        .checkpoint
        .as_ref()
        .map(|c| Checkpointer::new(c.clone(), config.workers, resume.as_deref()));
    let mut sink = Sink::new(
        config,
        computations,
        gauges.clone(),
        all,
        started,
        (checkpointer, known),
    )?;
    sink.begin(resume.as_deref())?;
    let (output_tx, output_rx) = mpsc::channel();
    let (stats_tx, stats_rx) = mpsc::channel();
    let (planned_tx, planned_rx) = mpsc::channel();
    let (parts_tx, parts_rx) = mpsc::channel();
    let mut epoch_txs = Vec::new();
    let mut epoch_rxs = Vec::new();
    for _ in 0..config.workers {
        // One epoch waits while the workers process the one before: reading never runs ahead.
        let (tx, rx) = mpsc::sync_channel::<Work>(1);
        let thread = Arc::new(OnceLock::new());
        epoch_txs.push(EpochSender {
            tx,
            thread: Arc::clone(&thread),
        });
        epoch_rxs.push(Some((rx, thread)));
    }
    let epoch_rxs = Arc::new(Mutex::new(epoch_rxs));
    let records_read = Arc::new(AtomicU64::new(0));

    let written = Arc::new(AtomicU64::new(0));
    let every = config.checkpoint.as_ref().map(|c| c.interval);
    let planner_thread = spawn_planner(
        planner,
        (config.poll_interval, every),
        Arc::clone(&stop),
        Arc::clone(&written),
        planned_tx,
        epoch_txs,
    );

    let checkpoints = config
        .checkpoint
        .as_ref()
        .map(|c| (c.dir.clone(), parts_tx, resume.clone()));
    let worker_config = Arc::new((config.clone(), dataflow, checkpoints));
    let read_counter = Arc::clone(&records_read);
    let guards = timely::execute(config.timely(), move |worker| {
        let (epochs, thread) = epoch_rxs.lock().expect("not poisoned")[worker.index()]
            .take()
            .expect("one receiver per worker");
        // The planner wakes this thread when it sends an epoch.
        let _ = thread.set(std::thread::current());
        let (config, dataflow, checkpoints) = &*worker_config;
        let setup = WorkerSetup {
            config,
            dataflow,
            epochs,
            output: output_tx.clone(),
            stats: stats_tx.clone(),
            records_read: &read_counter,
            checkpoints: checkpoints.clone(),
        };
        // A panic is a bug; report its message instead of an opaque payload.
        let run = || run_worker(worker, setup);
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(format!("internal error (please report): {message}"))
        })
    })
    .map_err(|e| anyhow!("cannot start timely workers: {e}"))?;

    let mut progress = Progress::new(config.progress);
    let mut next_snapshot = Instant::now() + config.snapshot_interval;
    let result = (|| -> anyhow::Result<()> {
        // The sink loads its state while the workers load theirs.
        if let Some(resume) = &resume {
            sink.resume(resume)?;
        }
        loop {
            let disconnected = match output_rx.recv_timeout(Duration::from_millis(50)) {
                Ok(event) => {
                    sink.absorb(event)?;
                    // Take whatever else is there before writing.
                    while let Ok(event) = output_rx.try_recv() {
                        sink.absorb(event)?;
                    }
                    false
                }
                Err(mpsc::RecvTimeoutError::Timeout) => false,
                Err(mpsc::RecvTimeoutError::Disconnected) => true,
            };
            learn(&mut sink, &planned_rx, &stats_rx)?;
            parts_rx
                .try_iter()
                .try_for_each(|part| sink.worker_part(part))?;
            sink.check()?;
            if disconnected {
                break;
            }
            // While following, the state files are rewritten between two epochs, every
            // --snapshot-interval: a snapshot never holds part of an epoch.
            let periodic = config
                .follow
                .then_some((&mut next_snapshot, config.snapshot_interval));
            sink.release(false, periodic)?;
            written.store(sink.open_epoch(), Ordering::Release);
            if config.follow && Instant::now() >= next_snapshot && !sink.mid_epoch() {
                sink.snapshot()?;
                next_snapshot = Instant::now() + config.snapshot_interval;
            }
            progress.update(sink.open_epoch(), records_read.load(Ordering::Relaxed));
        }
        Ok(())
    })();
    progress.finish();
    if result.is_err() {
        // Nothing more will be written: the planner stops, and with it the workers.
        stop.store(true, Ordering::Relaxed);
    }
    for worker in guards.join() {
        worker
            .map_err(|e| anyhow!("a worker failed: {e}"))?
            .map_err(|e| anyhow!(e))?;
    }
    result?;
    planner_thread
        .join()
        .map_err(|_| anyhow!("internal error: the planner panicked"))??;
    learn(&mut sink, &planned_rx, &stats_rx)?;
    sink.release(true, None)?;
    sink.last_checkpoint()?;
    parts_rx
        .try_iter()
        .try_for_each(|part| sink.worker_part(part))?;
    anyhow::ensure!(
        !sink.checkpoint_waiting(),
        "internal error: a checkpoint misses workers' parts"
    );
    sink.finish()
}

/// Where the planner starts: afresh, or where `resume` left off.
fn plan_options(config: &EngineConfig, resume: Option<&Resume>) -> PlanOptions {
    let mut options = PlanOptions {
        epoch_bytes: config.epoch_bytes,
        topics: config.topics.clone(),
        names: config.names.clone(),
        ..PlanOptions::default()
    };
    if let Some(resume) = resume {
        let manifest = &resume.manifest;
        options.next_epoch = resume.next_epoch();
        options.next_index = manifest.next_index;
        options.replay = resume.replay.clone();
        options.topics_reached = (manifest.topics.iter())
            .map(|t| (t.name.clone(), (t.index, t.partitions.clone())))
            .collect();
        options.reached = manifest
            .files
            .iter()
            .map(|f| {
                let reached = Reached {
                    index: f.index,
                    offset: f.offset,
                    done: f.done,
                };
                (f.path.clone().into(), reached)
            })
            .collect();
    }
    options
}

/// Takes the planned epochs and read counts sent so far.
fn learn(
    sink: &mut Sink<'_>,
    planned: &mpsc::Receiver<Plan>,
    stats: &mpsc::Receiver<ReadStats>,
) -> anyhow::Result<()> {
    for worker in stats.try_iter() {
        sink.count(worker);
    }
    for plan in planned.try_iter() {
        match plan {
            Plan::Epoch(planned) => sink.plan(planned)?,
            Plan::Checkpoint(epoch) => sink.want_checkpoint(epoch)?,
        }
    }
    Ok(())
}

/// A flag that SIGINT or SIGTERM sets while following; a second signal exits at once.
fn stop_on_signals(follow: bool) -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    if follow {
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(&stop))
                .context("cannot install signal handlers")?;
            signal_hook::flag::register(signal, Arc::clone(&stop))
                .context("cannot install signal handlers")?;
        }
    }
    Ok(stop)
}

/// Epochs planned ahead of those the sink has written, at most. When the sink is the slowest
/// stage, input waits, and the next epoch takes all that arrived meanwhile: fewer, larger
/// epochs, instead of a sink falling behind with ever more small ones held in memory.
const SINK_LAG: u64 = 2;

/// Plans epochs on a thread of its own until the inputs end or `stop` is set, sending each to
/// the sink and to every worker; never more than [`SINK_LAG`] ahead of the epochs `written`.
fn spawn_planner(
    mut planner: Planner,
    (poll, checkpoint_every): (Duration, Option<Duration>),
    stop: Arc<AtomicBool>,
    written: Arc<AtomicU64>,
    planned_tx: mpsc::Sender<Plan>,
    epoch_txs: Vec<EpochSender>,
) -> std::thread::JoinHandle<anyhow::Result<()>> {
    std::thread::spawn(move || -> anyhow::Result<()> {
        let mut next_checkpoint = checkpoint_every.map(|every| Instant::now() + every);
        // The last epoch planned, and whether a checkpoint follows it.
        let mut last: Option<(u64, bool)> = None;
        while !stop.load(Ordering::Relaxed) {
            if planner.next_epoch() >= written.load(Ordering::Acquire) + SINK_LAG {
                std::thread::sleep(poll.min(Duration::from_millis(1)));
                continue;
            }
            let epochs = planner.poll()?;
            if epochs.is_empty() {
                if planner.finished() {
                    break;
                }
                // Idle when a checkpoint is due: one of the last epoch, so that a restart
                // does not read again what the run read before it went quiet.
                if let Some((epoch, false)) = last
                    && next_checkpoint.is_some_and(|due| Instant::now() >= due)
                {
                    next_checkpoint = checkpoint_every.map(|every| Instant::now() + every);
                    last = Some((epoch, true));
                    if planned_tx.send(Plan::Checkpoint(epoch)).is_err() {
                        return Ok(());
                    }
                    for tx in &epoch_txs {
                        if tx.send(Work::Checkpoint(epoch)).is_err() {
                            return Ok(());
                        }
                    }
                }
                std::thread::sleep(poll);
                continue;
            }
            for epoch in epochs {
                // A checkpoint follows the first epoch planned once one is due.
                let checkpoint = next_checkpoint.is_some_and(|due| Instant::now() >= due);
                if checkpoint {
                    next_checkpoint = checkpoint_every.map(|every| Instant::now() + every);
                }
                last = Some((epoch.epoch, checkpoint));
                let planned = Planned::of(&epoch, SystemTime::now(), checkpoint);
                if planned_tx.send(Plan::Epoch(planned)).is_err() {
                    return Ok(());
                }
                for tx in &epoch_txs {
                    if tx.send(Work::Epoch(epoch.clone(), checkpoint)).is_err() {
                        return Ok(()); // a worker stopped; its error is reported
                    }
                }
            }
        }
        Ok(())
    })
}

/// Sends epochs to one worker and wakes its thread, which may be parked waiting for work: an
/// epoch starts at once instead of at the worker's next timeout.
struct EpochSender {
    tx: mpsc::SyncSender<Work>,
    /// The worker's thread, once it has started.
    thread: Arc<OnceLock<std::thread::Thread>>,
}

impl EpochSender {
    fn send(&self, work: Work) -> Result<(), mpsc::SendError<Work>> {
        self.tx.send(work)?;
        if let Some(thread) = self.thread.get() {
            thread.unpark();
        }
        Ok(())
    }
}
