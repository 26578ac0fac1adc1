//! `amend aggregate`: windowed aggregates over event files, corrected by later records.
//!
//! ```text
//!  planner ─chunks─▶ worker w: its byte range of each chunk ─decode─┬─ events ─▶ SplitLate ─┬─▶ ResolveIds ─▶ AssignWindows ─▶ Aggregate ─┐
//!                                      └─ marks (max ts) ─broadcast─┼──────────────┴──────────┴────────────────────────────────┘           │
//!                                                                   └─ dead letters, late records, id counts ──────────────── capture ─▶ sink
//! ```
//!
//! A planner thread decides the epochs ([`crate::plan`]): one per input file, then, when
//! following, one per run of appended lines or new file. Every epoch goes to every worker;
//! each reads its own byte range of it (a gzip file goes whole to one worker), decodes lines,
//! and feeds records into the dataflow in batches of `--batch-records`, each at its own
//! internal time within the epoch. A worker starts an epoch only when the previous one has
//! passed the whole dataflow, and the planner hands out one epoch at a time, so reading never
//! runs ahead. The sink, on the calling thread, gathers every worker's output and applies the
//! open epoch's row changes to the table as they arrive; when all workers have passed the
//! epoch, it writes and flushes the epoch's changelog lines, dead letters, late records and
//! its line of `epochs.jsonl`. Snapshot, digests and summary are written at the end, and
//! every `--snapshot-interval` while following.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant, SystemTime};

use amend_operators::decode::{BadRecord, CsvLayout};
use amend_operators::estimate::{Estimate, EstimateRow, Estimates, Fill, lattice_step};
use amend_operators::event::{batch_time, epoch_end, epoch_of, epoch_start, raw_text};
use amend_operators::gaps::GapGauges;
use amend_operators::sink::{SnapshotFormat, Table, write_dead_letter, write_estimates};
use amend_operators::source::{Chunk, Format};
use amend_operators::time::{Millis, format_millis};
use amend_operators::watermark::Marks;
use amend_operators::{
    AggRow, Aggregate, AssignWindows, AuditDecoder, Bounds, DeadLetter, Decoder, Event,
    IdsOnlyInAudit, LateRecord, Op, Position, ResolveIds, Sessions, SplitLate, StateGauges, Time,
    Window, WindowSpec,
};
use amend_operators::{DetectGaps, GapOptions, GapRow, GapTable};
use anyhow::{Context, anyhow};
use compact_str::CompactString;
use differential_dataflow::input::{Input, InputSession};
use differential_dataflow::{AsCollection, VecCollection};
use serde::Serialize;
use timely::dataflow::InputHandle;
use timely::dataflow::Scope;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::capture::{Capture, Event as Captured};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::probe::Handle as ProbeHandle;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::{Input as TimelyInput, Probe};
use timely::progress::frontier::MutableAntichain;
use timely::worker::Worker;

use crate::config::{AggregateConfig, GapSettings};
use crate::gaps::GapSummary;
use crate::output::{write_atomically, write_json_atomically};
use crate::plan::Planner;
use crate::progress::Progress;
use crate::reconcile::{self, PublishedTable, ReconcileSummary, RunFacts};

/// What the dataflow hands to the sink.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Output {
    /// A row of the aggregate table.
    Row(AggRow),
    /// A bad record.
    Dead(DeadLetter),
    /// An id whose current record is an upsert or a delete.
    Id(Op),
    /// A record that came after its windows closed.
    Late(LateRecord),
    /// An estimated row of an empty window (`--fill`).
    Estimate(EstimateRow),
    /// A change of the gap tables (with `--gaps`, or `amend gaps`).
    Gap(GapRow),
    /// An id all of whose records came from audit logs (built only when audit logs are read).
    OnlyInAudit,
}

/// Which outputs one run's dataflow computes.
#[derive(Clone, Debug)]
pub struct Engine {
    /// Whether to resolve ids and aggregate windows (off for `amend gaps`).
    pub aggregate: bool,
    /// Whether to detect gaps in the producers' sequence numbers, and how.
    pub gaps: Option<GapOptions>,
    /// How to estimate empty windows (`--fill`), and the longest run of them to fill.
    pub fill: Option<(Fill, u64)>,
    /// Whether to count the ids only audit logs had (`--audit-log`): it keeps every id.
    pub ids_only_in_audit: bool,
}

impl Engine {
    /// Aggregation only: what `amend aggregate` computes without `--gaps`.
    pub fn aggregate_only() -> Engine {
        Engine {
            aggregate: true,
            gaps: None,
            fill: None,
            ids_only_in_audit: false,
        }
    }
}

/// The input sessions of the aggregate dataflow.
pub struct Inputs {
    /// Decoded records.
    pub events: InputSession<Time, Event, isize>,
    /// Bad records.
    pub dead: InputSession<Time, DeadLetter, isize>,
}

impl Inputs {
    fn advance_to(&mut self, time: Time) {
        self.events.advance_to(time);
        self.dead.advance_to(time);
        self.events.flush();
        self.dead.flush();
    }
}

/// Builds the aggregate dataflow: input sessions in, one output collection for the sink.
/// `marks` carry the watermark (see [`amend_operators::watermark`]).
pub fn build<'scope>(
    scope: Scope<'scope, Time>,
    marks: Marks<'scope>,
    bounds: &Bounds,
    fill: Option<(Fill, u64)>,
) -> (Inputs, VecCollection<'scope, Time, Output>) {
    let engine = Engine {
        fill,
        ..Engine::aggregate_only()
    };
    build_engine(scope, marks, bounds, &engine)
}

/// As [`build`], computing what `engine` asks for. Gap detection reads every accepted record,
/// before late records are split off and before id resolution.
pub fn build_engine<'scope>(
    scope: Scope<'scope, Time>,
    marks: Marks<'scope>,
    bounds: &Bounds,
    engine: &Engine,
) -> (Inputs, VecCollection<'scope, Time, Output>) {
    let (events_in, events) = scope.new_collection::<Event, isize>();
    let (dead_in, dead) = scope.new_collection::<DeadLetter, isize>();
    let inputs = Inputs {
        events: events_in,
        dead: dead_in,
    };
    let mut output = dead.map(Output::Dead);
    if let Some(options) = &engine.gaps {
        output = output.concat(events.clone().detect_gaps(options).map(Output::Gap));
    }
    if !engine.aggregate {
        return (inputs, output);
    }
    // Every accepted record, late ones too, says where its id was seen.
    let only_in_audit = engine
        .ids_only_in_audit
        .then(|| events.clone().ids_only_in_audit());
    let (events, late) = if bounds.lateness.is_bounded() {
        let (on_time, late) = events.split_late(marks.clone(), bounds);
        (on_time, Some(late))
    } else {
        (events, None)
    };
    let current = events.resolve_ids_within(marks.clone(), bounds);
    let ids = count_ids_locally(current.clone());
    let rows = match bounds.window {
        WindowSpec::Session { gap } => current.sessions_within(gap, marks, bounds),
        window => current
            .assign_windows(window)
            .aggregate_within(marks, bounds),
    };
    let estimates = match (engine.fill, lattice_step(bounds.window)) {
        (Some((fill, max_windows)), Some(step)) => {
            Some(rows.clone().estimates(fill, step, max_windows))
        }
        _ => None,
    };
    let mut output = output
        .concat(rows.map(Output::Row))
        .concat(ids.map(Output::Id));
    if let Some(late) = late {
        output = output.concat(late.map(Output::Late));
    }
    if let Some(estimates) = estimates {
        output = output.concat(estimates.map(Output::Estimate));
    }
    if let Some(ids) = only_in_audit {
        output = output.concat(ids.map(|()| Output::OnlyInAudit));
    }
    (inputs, output)
}

/// What the sink receives from each worker's capture.
pub type Captures = Captured<Time, Vec<(Output, Time, isize)>>;

/// The input handle of the marks stream.
pub type MarksInput =
    InputHandle<Time, timely::container::CapacityContainerBuilder<Vec<(Time, Millis)>>>;

/// One worker's whole dataflow: [`build`] with its marks input, then a probe for backpressure
/// and the capture that hands output to the sink.
pub fn build_with_sink(
    scope: Scope<'_, Time>,
    bounds: &Bounds,
    fill: Option<(Fill, u64)>,
    probe: &ProbeHandle<Time>,
    sink: mpsc::Sender<Captures>,
    marks_in: &mut MarksInput,
) -> Inputs {
    let engine = Engine {
        fill,
        ..Engine::aggregate_only()
    };
    build_engine_with_sink(scope, bounds, &engine, probe, sink, marks_in)
}

/// As [`build_with_sink`], computing what `engine` asks for.
pub fn build_engine_with_sink(
    scope: Scope<'_, Time>,
    bounds: &Bounds,
    engine: &Engine,
    probe: &ProbeHandle<Time>,
    sink: mpsc::Sender<Captures>,
    marks_in: &mut MarksInput,
) -> Inputs {
    let marks = scope.input_from(marks_in).broadcast();
    let (inputs, output) = build_engine(scope, marks, bounds, engine);
    output.inner.probe_with(probe).capture_into(sink);
    inputs
}

/// The ops of current records, pre-counted on each worker so the sink sees a few updates per
/// batch rather than one per record.
fn count_ids_locally<'scope>(
    current: VecCollection<'scope, Time, Event>,
) -> VecCollection<'scope, Time, Op> {
    current
        .inner
        .unary(Pipeline, "CountIds", |_capability, _info| {
            move |input, output| {
                input.for_each(|capability, data| {
                    let mut counts: BTreeMap<(Time, Op), isize> = BTreeMap::new();
                    for (event, time, diff) in data.drain(..) {
                        *counts.entry((time, event.op)).or_default() += diff;
                    }
                    let mut session = output.session(&capability);
                    for ((time, op), diff) in counts {
                        if diff != 0 {
                            session.give((op, time, diff));
                        }
                    }
                });
            }
        })
        .as_collection()
}

/// Counts from one worker's reading of one epoch.
#[derive(Copy, Clone, Debug, Default)]
struct ReadStats {
    epoch: u64,
    read: u64,
    accepted: u64,
    dead: u64,
    /// Records outside the replay slice.
    skipped: u64,
    /// Audit-log lines that hold no audit record.
    audit_skipped: u64,
    /// The greatest event time of the records read.
    max_ts: Option<Millis>,
}

impl ReadStats {
    fn add(&mut self, other: &ReadStats) {
        self.read += other.read;
        self.accepted += other.accepted;
        self.dead += other.dead;
        self.skipped += other.skipped;
        self.audit_skipped += other.audit_skipped;
        self.max_ts = self.max_ts.max(other.max_ts);
    }
}

/// What `amend aggregate` reports in `summary.json`.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Summary {
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
    /// Ids whose every record came from an audit log: events the main input missed.
    pub ids_only_in_audit: u64,
    /// Accepted records that came after their windows closed, written to late.jsonl.
    pub records_late: u64,
    /// Ids whose current record is an upsert.
    pub ids_current: u64,
    /// Ids whose current record is a delete.
    pub ids_deleted: u64,
    /// Epochs ingested.
    pub epochs: u64,
    /// Wall-clock seconds from start to all outputs written.
    pub elapsed_seconds: f64,
    /// records_read / elapsed_seconds.
    pub records_per_second: f64,
    /// Timely workers.
    pub workers: usize,
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
    /// With gap detection: what gaps_summary.json holds.
    #[serde(skip)]
    pub gaps: Option<GapSummary>,
    /// With `amend reconcile`: what reconcile_summary.json holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconcile: Option<ReconcileSummary>,
}

impl Summary {
    /// The one-paragraph summary printed at the end of a run.
    pub fn paragraph(&self, config: &AggregateConfig) -> String {
        let out = config.out.display();
        let late = if self.records_late > 0 {
            format!(", {} late (see {out}/late.jsonl)", self.records_late)
        } else {
            String::new()
        };
        let skipped = if self.records_skipped > 0 {
            format!(
                ", {} skipped (outside the replay slice)",
                self.records_skipped
            )
        } else {
            String::new()
        };
        let audit = if config.recovery.has_audit_logs() {
            format!(
                " Audit logs: {} ids only there (recovered), {} lines without a record skipped.",
                self.ids_only_in_audit, self.audit_lines_skipped
            )
        } else {
            String::new()
        };
        format!(
            "amend aggregate: read {} records in {} epoch(s) in {:.2} s ({:.0} records/s, {} worker(s)): \
             {} accepted{late}, {} dead-lettered{}{skipped}.{audit} \
             {} ids current, {} deleted. The table has {} rows in {} windows ({out}/{}); \
             {} changelog lines; table digest {}.",
            self.records_read,
            self.epochs,
            self.elapsed_seconds,
            self.records_per_second,
            self.workers,
            self.records_accepted,
            self.records_dead_lettered,
            if self.records_dead_lettered > 0 {
                format!(" (see {out}/dead_letter.jsonl)")
            } else {
                String::new()
            },
            self.ids_current,
            self.ids_deleted,
            self.rows,
            self.windows,
            config.snapshot_format.file_name(),
            self.changelog_lines,
            self.table_digest,
        )
    }
}

/// An epoch as the sink learns it from the planner.
struct Planned {
    chunk: Chunk,
    read_at: SystemTime,
}

/// Runs `amend aggregate` and writes its outputs into `config.out`.
pub fn run(config: &AggregateConfig) -> anyhow::Result<Summary> {
    let started = Instant::now();
    let out = &config.out;
    fs::create_dir_all(out)
        .with_context(|| format!("cannot create output directory {}", out.display()))?;
    // A snapshot of the other format from an earlier run would be stale next to this one.
    for format in [SnapshotFormat::JsonLines, SnapshotFormat::Csv] {
        if format != config.snapshot_format {
            let _ = fs::remove_file(out.join(format.file_name()));
        }
    }
    // So would the per-epoch files of a followed run next to a batch run's.
    if !config.follow {
        for name in ["digests_changelog.jsonl", "reconcile_changelog.jsonl"] {
            let _ = fs::remove_file(out.join(name));
        }
    }
    let mut files = OutputFiles::create(config)?;
    let mut planner = Planner::new(&config.inputs, config.follow)?
        .with_audit_logs(&config.recovery.audit_logs)?;

    // SIGINT/SIGTERM end a followed run cleanly; a second one ends it at once.
    let stop = Arc::new(AtomicBool::new(false));
    if config.follow {
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(&stop))
                .context("cannot install signal handlers")?;
            signal_hook::flag::register(signal, Arc::clone(&stop))
                .context("cannot install signal handlers")?;
        }
    }

    let (output_tx, output_rx) = mpsc::channel();
    let (stats_tx, stats_rx) = mpsc::channel();
    let (planned_tx, planned_rx) = mpsc::channel();
    let mut chunk_txs = Vec::new();
    let mut chunk_rxs = Vec::new();
    for _ in 0..config.workers {
        // One epoch waits while the workers process the one before: reading never runs ahead.
        let (tx, rx) = mpsc::sync_channel::<Chunk>(1);
        let thread = Arc::new(OnceLock::new());
        chunk_txs.push(ChunkSender {
            tx,
            thread: Arc::clone(&thread),
        });
        chunk_rxs.push(Some((rx, thread)));
    }
    let chunk_rxs = Arc::new(Mutex::new(chunk_rxs));
    let records_read = Arc::new(AtomicU64::new(0));
    let gauges = StateGauges::default();
    let bounds = Bounds {
        window: config.window,
        lateness: config.lateness,
        state: gauges.clone(),
    };

    let gap_gauges = GapGauges::default();
    let engine = Engine {
        fill: config.fill,
        aggregate: config.aggregate,
        ids_only_in_audit: config.recovery.has_audit_logs(),
        gaps: config.gaps.map(|gaps| GapOptions {
            duplicates: gaps.duplicates,
            gauges: gap_gauges.clone(),
        }),
    };

    let poll = config.poll_interval;
    let planner_stop = Arc::clone(&stop);
    let planner_thread = std::thread::spawn(move || -> anyhow::Result<()> {
        while !planner_stop.load(Ordering::Relaxed) {
            let chunks = planner.poll()?;
            if chunks.is_empty() {
                if planner.finished() {
                    break;
                }
                std::thread::sleep(poll);
                continue;
            }
            for chunk in chunks {
                let read_at = SystemTime::now();
                let meta = Chunk {
                    data: None,
                    ..chunk.clone()
                };
                if planned_tx
                    .send(Planned {
                        chunk: meta,
                        read_at,
                    })
                    .is_err()
                {
                    return Ok(());
                }
                for tx in &chunk_txs {
                    if tx.send(chunk.clone()).is_err() {
                        return Ok(()); // a worker stopped; its error is reported
                    }
                }
            }
        }
        Ok(())
    });

    let worker_config = Arc::new(config.clone());
    let read_counter = Arc::clone(&records_read);
    let guards = timely::execute(config.timely(), move |worker| {
        let (chunks, thread) = chunk_rxs.lock().expect("not poisoned")[worker.index()]
            .take()
            .expect("one receiver per worker");
        // The planner wakes this thread when it sends an epoch.
        let _ = thread.set(std::thread::current());
        let run = || {
            run_worker(
                worker,
                &worker_config,
                &bounds,
                &engine,
                chunks,
                output_tx.clone(),
                stats_tx.clone(),
                &read_counter,
            )
        };
        // A panic is a bug; report its message instead of an opaque payload.
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

    let mut sink = Sink::new(config, gauges, gap_gauges)?;
    let mut progress = Progress::new(config.progress);
    let mut next_snapshot = Instant::now() + config.snapshot_interval;
    let result = (|| -> anyhow::Result<()> {
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
            sink.learn(&planned_rx, &stats_rx);
            if let Some(published) = &mut sink.published {
                published.check()?; // a bad published table stops the run early
            }
            if disconnected {
                break;
            }
            // While following, the state files are rewritten between two epochs, every
            // --snapshot-interval: a snapshot never holds part of an epoch.
            let periodic = config.follow.then_some((&mut next_snapshot, started));
            sink.release(&mut files, false, periodic)?;
            if config.follow && Instant::now() >= next_snapshot && !sink.table.has_open_changes() {
                sink.write_state(config, started)?;
                next_snapshot = Instant::now() + config.snapshot_interval;
            }
            progress.update(sink.open, records_read.load(Ordering::Relaxed));
        }
        Ok(())
    })();
    progress.finish();
    for worker in guards.join() {
        worker
            .map_err(|e| anyhow!("a worker failed: {e}"))?
            .map_err(|e| anyhow!(e))?;
    }
    result?;
    planner_thread
        .join()
        .map_err(|_| anyhow!("internal error: the planner panicked"))??;
    sink.learn(&planned_rx, &stats_rx);
    sink.release(&mut files, true, None)?;
    files.flush()?;
    sink.write_state(config, started)
}

/// The files written epoch by epoch; those of aggregation only when it runs.
struct OutputFiles {
    changelog: Option<BufWriter<File>>,
    dead_letters: BufWriter<File>,
    late: Option<BufWriter<File>>,
    epochs: BufWriter<File>,
    gaps: Option<BufWriter<File>>,
    /// With --follow: each epoch's changed window digests.
    digests: Option<BufWriter<File>>,
    /// With --follow and `amend reconcile`: each epoch's changes of the comparison.
    reconcile: Option<BufWriter<File>>,
}

impl OutputFiles {
    fn create(config: &AggregateConfig) -> anyhow::Result<OutputFiles> {
        let create = |name: &str| -> anyhow::Result<BufWriter<File>> {
            let path = config.out.join(name);
            let file =
                File::create(&path).with_context(|| format!("cannot write {}", path.display()))?;
            Ok(BufWriter::with_capacity(1 << 20, file))
        };
        let aggregate = config.aggregate;
        Ok(OutputFiles {
            changelog: aggregate.then(|| create("changelog.jsonl")).transpose()?,
            dead_letters: create("dead_letter.jsonl")?,
            late: aggregate.then(|| create("late.jsonl")).transpose()?,
            epochs: create("epochs.jsonl")?,
            gaps: config
                .gaps
                .map(|_| create("gaps_changelog.jsonl"))
                .transpose()?,
            digests: (aggregate && config.follow)
                .then(|| create("digests_changelog.jsonl"))
                .transpose()?,
            reconcile: (config.reconcile.is_some() && config.follow)
                .then(|| create("reconcile_changelog.jsonl"))
                .transpose()?,
        })
    }

    /// Flushes every file, the epoch index last: a reader that sees an epoch there sees all
    /// of its output.
    fn flush(&mut self) -> anyhow::Result<()> {
        if let Some(changelog) = &mut self.changelog {
            changelog.flush().context("cannot write changelog.jsonl")?;
        }
        if let Some(gaps) = &mut self.gaps {
            gaps.flush().context("cannot write gaps_changelog.jsonl")?;
        }
        if let Some(digests) = &mut self.digests {
            digests
                .flush()
                .context("cannot write digests_changelog.jsonl")?;
        }
        if let Some(reconcile) = &mut self.reconcile {
            reconcile
                .flush()
                .context("cannot write reconcile_changelog.jsonl")?;
        }
        self.dead_letters
            .flush()
            .context("cannot write dead_letter.jsonl")?;
        if let Some(late) = &mut self.late {
            late.flush().context("cannot write late.jsonl")?;
        }
        self.epochs.flush().context("cannot write epochs.jsonl")
    }
}

/// A late record's line in late.jsonl.
#[derive(Serialize)]
struct LateOut<'a> {
    source: &'a str,
    epoch: u64,
    offset: u64,
    id: &'a str,
    key: &'a str,
    ts: String,
    value: String,
    op: &'static str,
    version: u64,
    watermark: String,
}

/// An epoch's line in epochs.jsonl.
#[derive(Serialize)]
struct EpochOut<'a> {
    epoch: u64,
    source: &'a str,
    start: u64,
    end: Option<u64>,
    records: u64,
    late: u64,
    watermark: Option<String>,
    read_at: String,
    flushed_at: String,
    latency_ms: f64,
    state_ids: u64,
    state_groups: u64,
}

fn format_system_time(time: SystemTime) -> String {
    let ms = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis);
    format_millis(ms)
}

/// Gathers the workers' captured output and releases it epoch by epoch.
///
/// The open epoch's row changes are applied to the table as they arrive (a group's changes
/// come from the one worker that owns it, in the order it made them); when no worker can
/// still add to the epoch, the table writes its net changes to the changelog. Output of a
/// later epoch that arrives first waits until the open epoch closes.
struct Sink {
    /// Times still possible at some worker's capture.
    frontier: MutableAntichain<Time>,
    /// The epoch whose changes are being applied.
    open: u64,
    /// Epochs planned and not yet written.
    planned: BTreeMap<u64, Planned>,
    /// Each epoch's read counts, summed over workers.
    stats: BTreeMap<u64, ReadStats>,
    /// Dead letters of the open epoch, written in position order when it closes.
    dead: Vec<DeadLetter>,
    /// Late records of the open epoch, written in position order when it closes.
    late: Vec<LateRecord>,
    /// Output of later epochs that arrived before the open epoch closed.
    early: BTreeMap<u64, Vec<(Output, isize)>>,
    table: Table,
    summary: Summary,
    ids: [i64; 2],
    /// Ids only audit logs had.
    only_in_audit: i64,
    /// The greatest event time of the written epochs.
    max_ts: Option<Millis>,
    latencies: Vec<f64>,
    config: AggregateConfig,
    gauges: StateGauges,
    /// The gap tables, with `--gaps` or `amend gaps`.
    gaps: Option<GapTable>,
    gap_gauges: GapGauges,
    gap_changelog_lines: u64,
    /// Input names by file index.
    sources: BTreeMap<u32, String>,
    /// Estimated rows (`--fill`).
    estimates: BTreeMap<(Window, CompactString), Estimate>,
    /// The published table (`amend reconcile`).
    published: Option<PublishedTable>,
    reconcile_changelog_lines: u64,
}

impl Sink {
    fn new(
        config: &AggregateConfig,
        gauges: StateGauges,
        gap_gauges: GapGauges,
    ) -> anyhow::Result<Self> {
        let mut frontier = MutableAntichain::new();
        // Each worker's capture starts out able to produce any time.
        frontier.update_iter([(0, config.workers as i64)]);
        let mut table = Table::new(config.scale);
        // Closed tumbling and hop windows close in start order: their rows leave memory.
        let spills = !matches!(config.window, WindowSpec::Session { .. });
        // A comparison walks the whole table: with a published table, no rows leave memory.
        if config.lateness.is_bounded() && spills && config.reconcile.is_none() {
            let file = tempfile::tempfile_in(&config.out).with_context(|| {
                format!("cannot create a temporary file in {}", config.out.display())
            })?;
            table.spill_closed(file, config.snapshot_format);
        }
        Ok(Sink {
            frontier,
            open: 0,
            planned: BTreeMap::new(),
            stats: BTreeMap::new(),
            dead: Vec::new(),
            late: Vec::new(),
            early: BTreeMap::new(),
            table,
            summary: Summary::default(),
            ids: [0, 0],
            only_in_audit: 0,
            max_ts: None,
            latencies: Vec::new(),
            config: config.clone(),
            gauges,
            gaps: config.gaps.map(|_| GapTable::new()),
            gap_gauges,
            gap_changelog_lines: 0,
            sources: BTreeMap::new(),
            estimates: BTreeMap::new(),
            published: config
                .reconcile
                .as_ref()
                .map(|settings| PublishedTable::load(settings, config.scale)),
            reconcile_changelog_lines: 0,
        })
    }

    fn absorb(&mut self, event: Captures) -> anyhow::Result<()> {
        match event {
            Captured::Progress(changes) => self.frontier.update_iter(changes).for_each(drop),
            Captured::Messages(_stamp, updates) => {
                for (output, time, diff) in updates {
                    self.take(epoch_of(time), output, diff)?;
                }
            }
        }
        Ok(())
    }

    /// Takes the planned epochs and read counts sent so far.
    fn learn(&mut self, planned: &mpsc::Receiver<Planned>, stats: &mpsc::Receiver<ReadStats>) {
        for planned in planned.try_iter() {
            let file = &planned.chunk.file;
            self.sources
                .entry(file.index)
                .or_insert_with(|| file.path.display().to_string());
            self.planned.insert(planned.chunk.epoch, planned);
        }
        for worker in stats.try_iter() {
            self.stats.entry(worker.epoch).or_default().add(&worker);
        }
    }

    fn take(&mut self, epoch: u64, output: Output, diff: isize) -> anyhow::Result<()> {
        if epoch > self.open {
            self.early.entry(epoch).or_default().push((output, diff));
            return Ok(());
        }
        anyhow::ensure!(
            epoch == self.open,
            "internal error: output for epoch {epoch} after it was written"
        );
        match output {
            Output::Row(row) => {
                for _ in 1..diff.unsigned_abs() {
                    self.table.apply(epoch, row.clone(), diff.signum())?;
                }
                self.table.apply(epoch, row, diff.signum())?;
            }
            // A dead letter or a late record is inserted once and never retracted.
            Output::Dead(letter) => self
                .dead
                .extend(std::iter::repeat_n(letter, diff.max(0) as usize)),
            Output::Late(late) => self
                .late
                .extend(std::iter::repeat_n(late, diff.max(0) as usize)),
            Output::Id(op) => self.ids[op as usize] += diff as i64,
            Output::OnlyInAudit => self.only_in_audit += diff as i64,
            Output::Estimate((key, estimate)) => {
                if diff > 0 {
                    self.estimates.insert(key, estimate);
                } else if self.estimates.get(&key) == Some(&estimate) {
                    self.estimates.remove(&key);
                }
            }
            Output::Gap(row) => {
                if let Some(gaps) = &mut self.gaps {
                    gaps.push(row, diff);
                }
            }
        }
        Ok(())
    }

    /// Writes out every planned epoch that no worker can still add to (all if `all`).
    /// With `periodic` (the next due time and the run's start), also rewrites snapshot,
    /// digests and summary after an epoch once they are due, before any output of the next
    /// epoch is applied.
    fn release(
        &mut self,
        files: &mut OutputFiles,
        all: bool,
        mut periodic: Option<(&mut Instant, Instant)>,
    ) -> anyhow::Result<()> {
        while self.planned.contains_key(&self.open)
            && (all || !self.frontier.less_than(&epoch_start(self.open + 1)))
        {
            self.write_epoch(files)?;
            self.count_ids();
            if let Some((next, started)) = periodic.as_mut()
                && Instant::now() >= **next
            {
                let config = self.config.clone();
                self.write_state(&config, *started)?;
                **next = Instant::now() + config.snapshot_interval;
            }
            for (output, diff) in self.early.remove(&self.open).unwrap_or_default() {
                self.take(self.open, output, diff)?;
            }
        }
        self.count_ids();
        Ok(())
    }

    /// Brings the summary's id counts up to date.
    fn count_ids(&mut self) {
        self.summary.ids_current = self.ids[Op::Upsert as usize].max(0) as u64;
        self.summary.ids_deleted = self.ids[Op::Delete as usize].max(0) as u64;
        self.summary.ids_only_in_audit = self.only_in_audit.max(0) as u64;
    }

    /// Writes the open epoch's changelog lines, dead letters, late records and epochs.jsonl
    /// line, flushes them, and opens the next epoch.
    fn write_epoch(&mut self, files: &mut OutputFiles) -> anyhow::Result<()> {
        let epoch = self.open;
        let planned = self.planned.remove(&epoch).expect("checked by the caller");
        let stats = self.stats.remove(&epoch).unwrap_or_default();
        let lateness = self.config.lateness;
        let watermark = lateness.watermark(self.max_ts);
        if let (Some(published), Some(out)) = (&mut self.published, &mut files.reconcile) {
            let (reconciler, _) = published.get()?;
            let changes = self.table.open_changes();
            self.reconcile_changelog_lines +=
                reconciler.write_epoch(epoch, &changes, self.table.rows(), out)?;
            out.flush()
                .context("cannot write reconcile_changelog.jsonl")?;
        }
        if let Some(changelog) = &mut files.changelog {
            self.summary.changelog_lines += self.table.close_epoch(epoch, changelog)? as u64;
            changelog.flush().context("cannot write changelog.jsonl")?;
        }
        if let Some(out) = &mut files.digests {
            write_digest_changes(epoch, &mut self.table, out)?;
        }
        if let (Some(gaps), Some(out)) = (&mut self.gaps, &mut files.gaps) {
            self.gap_changelog_lines += gaps.close_epoch(epoch, out)?;
            out.flush().context("cannot write gaps_changelog.jsonl")?;
        }
        let mut dead = std::mem::take(&mut self.dead);
        dead.sort();
        for letter in &dead {
            write_dead_letter(letter, &mut files.dead_letters)
                .context("cannot write dead_letter.jsonl")?;
        }
        let mut late = std::mem::take(&mut self.late);
        late.sort_by_key(|l| l.event.position);
        if let Some(out) = &mut files.late {
            for record in &late {
                self.write_late(record, out)?;
            }
            out.flush().context("cannot write late.jsonl")?;
        }
        // Windows that closed at this epoch's start can no longer change.
        if let Some(horizon) = lateness.horizon(self.max_ts) {
            self.table.close_windows(horizon)?;
        }
        files
            .dead_letters
            .flush()
            .context("cannot write dead_letter.jsonl")?;
        let flushed_at = SystemTime::now();
        let latency_ms = flushed_at
            .duration_since(planned.read_at)
            .unwrap_or_default()
            .as_secs_f64()
            * 1e3;
        self.latencies.push(latency_ms);
        let (state_ids, state_groups) = self.gauges.read();
        let chunk = &planned.chunk;
        let line = EpochOut {
            epoch,
            source: &self.sources[&chunk.file.index],
            start: chunk.start,
            end: (chunk.end != u64::MAX).then_some(chunk.end),
            records: stats.read,
            late: late.len() as u64,
            watermark: watermark.map(format_millis),
            read_at: format_system_time(planned.read_at),
            flushed_at: format_system_time(flushed_at),
            latency_ms: (latency_ms * 1e3).round() / 1e3,
            state_ids,
            state_groups,
        };
        serde_json::to_writer(&mut files.epochs, &line)?;
        files.epochs.write_all(b"\n")?;
        files.epochs.flush().context("cannot write epochs.jsonl")?;

        self.summary.records_read += stats.read;
        self.summary.records_accepted += stats.accepted;
        self.summary.records_dead_lettered += stats.dead;
        self.summary.records_skipped += stats.skipped;
        self.summary.audit_lines_skipped += stats.audit_skipped;
        self.summary.records_late += late.len() as u64;
        self.summary.epochs += 1;
        self.max_ts = self.max_ts.max(stats.max_ts);
        self.open = epoch + 1;
        Ok(())
    }

    /// Writes gaps.jsonl, duplicates.jsonl and gaps_summary.json, each atomically, and keeps
    /// the gap summary in the run's summary.
    fn write_gaps(
        &mut self,
        config: &AggregateConfig,
        settings: GapSettings,
        started: Instant,
    ) -> anyhow::Result<()> {
        let Some(gaps) = &self.gaps else {
            return Ok(());
        };
        let out = &config.out;
        write_atomically(&out.join("gaps.jsonl"), |w| Ok(gaps.write_gaps(w)?))?;
        write_atomically(&out.join("duplicates.jsonl"), |w| {
            Ok(gaps.write_duplicates(w)?)
        })?;
        let elapsed_seconds = started.elapsed().as_secs_f64();
        let (state_ranges, state_seqs) = self.gap_gauges.read();
        let summary = GapSummary {
            records_read: self.summary.records_read,
            records_accepted: self.summary.records_accepted,
            records_dead_lettered: self.summary.records_dead_lettered,
            records_skipped: self.summary.records_skipped,
            audit_lines_skipped: self.summary.audit_lines_skipped,
            epochs: self.summary.epochs,
            elapsed_seconds,
            records_per_second: self.summary.records_read as f64 / elapsed_seconds.max(1e-9),
            workers: config.workers,
            totals: gaps.totals(),
            gap_changelog_lines: self.gap_changelog_lines,
            duplicates_detected: settings.duplicates,
            lag_threshold: settings.lag_threshold,
            lagging: gaps.lagging(settings.lag_threshold),
            state_ranges,
            state_seqs,
        };
        write_json_atomically(&out.join("gaps_summary.json"), &summary)?;
        self.summary.gaps = Some(summary);
        Ok(())
    }

    fn write_late(&self, record: &LateRecord, out: &mut impl Write) -> anyhow::Result<()> {
        let event = &record.event;
        let line = LateOut {
            source: &self.sources[&event.position.file],
            epoch: event.position.epoch,
            offset: event.position.offset,
            id: &event.id,
            key: &event.key,
            ts: format_millis(event.ts),
            value: event.value.to_canonical(self.config.scale),
            op: match event.op {
                Op::Upsert => "upsert",
                Op::Delete => "delete",
            },
            version: event.version,
            watermark: format_millis(record.watermark),
        };
        serde_json::to_writer(&mut *out, &line)?;
        out.write_all(b"\n").context("cannot write late.jsonl")
    }

    /// Writes snapshot, digests and summary, each atomically; returns the summary.
    fn write_state(
        &mut self,
        config: &AggregateConfig,
        started: Instant,
    ) -> anyhow::Result<Summary> {
        let out = &config.out;
        if let Some(settings) = config.gaps {
            self.write_gaps(config, settings, started)?;
        }
        if !config.aggregate {
            return Ok(self.summary.clone());
        }
        self.table.flush_closed()?;
        let table = &self.table;
        // The digest and the snapshot read the same table: compute them side by side.
        let digest = std::thread::scope(|scope| {
            let digest = scope.spawn(|| table.digest());
            write_atomically(&out.join(config.snapshot_format.file_name()), |w| {
                Ok(table.write_snapshot(config.snapshot_format, w)?)
            })?;
            anyhow::Ok(digest.join().expect("digesting does not panic"))
        })?;
        self.table.remember_digests(&digest);
        write_json_atomically(&out.join("digests.json"), &digest)?;
        if let (Some(settings), Some(published)) = (&config.reconcile, &mut self.published) {
            let facts = RunFacts {
                records_read: self.summary.records_read,
                records_dead_lettered: self.summary.records_dead_lettered,
                epochs: self.summary.epochs,
                changelog_lines: self.reconcile_changelog_lines,
            };
            let summary = reconcile::write_outputs(
                config,
                settings,
                published,
                &self.table,
                &digest,
                &facts,
            )?;
            self.summary.reconcile = Some(summary);
        }
        if let Some((fill, _)) = config.fill {
            write_atomically(&out.join("estimates.jsonl"), |w| {
                Ok(write_estimates(
                    &self.estimates,
                    fill.name(),
                    config.scale,
                    w,
                )?)
            })?;
        }
        let summary = &mut self.summary;
        summary.estimates = self.estimates.len() as u64;
        summary.workers = config.workers;
        summary.rows = self.table.row_count();
        summary.windows = digest.windows.len() as u64;
        summary.table_digest = digest.table;
        summary.elapsed_seconds = started.elapsed().as_secs_f64();
        summary.records_per_second =
            summary.records_read as f64 / summary.elapsed_seconds.max(1e-9);
        summary.epoch_latency_ms_p50 = percentile(&mut self.latencies, 0.5);
        summary.epoch_latency_ms_p99 = percentile(&mut self.latencies, 0.99);
        summary.watermark = config.lateness.watermark(self.max_ts).map(format_millis);
        (summary.state_ids, summary.state_groups) = self.gauges.read();
        write_json_atomically(&out.join("summary.json"), &*summary)?;
        Ok(summary.clone())
    }
}

/// A line of digests_changelog.jsonl.
#[derive(Serialize)]
struct DigestChangeOut<'a> {
    epoch: u64,
    window_start: String,
    window_end: String,
    old: Option<&'a str>,
    new: Option<&'a str>,
    /// The table digest after the epoch.
    table: &'a str,
}

/// Re-hashes the windows the closed epoch changed and writes one digests_changelog.jsonl line
/// per window whose digest changed, in window order.
fn write_digest_changes(
    epoch: u64,
    table: &mut Table,
    out: &mut BufWriter<File>,
) -> anyhow::Result<()> {
    let changes = table.refresh_digests();
    if changes.is_empty() {
        return Ok(());
    }
    let digest = table.table_digest();
    for change in &changes {
        let line = DigestChangeOut {
            epoch,
            window_start: format_millis(change.window.start),
            window_end: format_millis(change.window.end),
            old: change.old.as_deref(),
            new: change.new.as_deref(),
            table: &digest,
        };
        serde_json::to_writer(&mut *out, &line)?;
        out.write_all(b"\n")?;
    }
    out.flush().context("cannot write digests_changelog.jsonl")
}

/// The `q` quantile (nearest rank) of `values`, 0 if there are none.
fn percentile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    (values[rank - 1] * 1e3).round() / 1e3
}

/// Sends epochs to one worker and wakes its thread, which may be parked waiting for work: an
/// epoch starts at once instead of at the worker's next timeout.
struct ChunkSender {
    tx: mpsc::SyncSender<Chunk>,
    /// The worker's thread, once it has started.
    thread: Arc<OnceLock<std::thread::Thread>>,
}

impl ChunkSender {
    fn send(&self, chunk: Chunk) -> Result<(), mpsc::SendError<Chunk>> {
        self.tx.send(chunk)?;
        if let Some(thread) = self.thread.get() {
            thread.unpark();
        }
        Ok(())
    }
}

/// Waits for the next epoch, keeping the dataflow moving meanwhile; `None` when there are no
/// more.
fn next_chunk(worker: &mut Worker, chunks: &mpsc::Receiver<Chunk>) -> Option<Chunk> {
    loop {
        match chunks.try_recv() {
            Ok(chunk) => return Some(chunk),
            Err(mpsc::TryRecvError::Disconnected) => return None,
            Err(mpsc::TryRecvError::Empty) => {
                worker.step_or_park(Some(Duration::from_millis(1)));
            }
        }
    }
}

/// One worker: builds the dataflow, reads its share of every epoch, feeds it in batches.
#[allow(clippy::too_many_arguments)] // each is a distinct channel or setting of the run
fn run_worker(
    worker: &mut Worker,
    config: &AggregateConfig,
    bounds: &Bounds,
    engine: &Engine,
    chunks: mpsc::Receiver<Chunk>,
    output_tx: mpsc::Sender<Captures>,
    stats_tx: mpsc::Sender<ReadStats>,
    records_read: &AtomicU64,
) -> Result<(), String> {
    let probe = ProbeHandle::new();
    let mut marks = MarksInput::new();
    let mut inputs = worker.dataflow::<Time, _, _>(|scope| {
        build_engine_with_sink(scope, bounds, engine, &probe, output_tx, &mut marks)
    });
    let (index, peers) = (worker.index(), worker.peers());
    let mut decoders = Decoders {
        input: Decoder::new(config.names.clone(), config.scale),
        audit: config.recovery.audit_decoder(&config.names, config.scale),
    };
    let mut max_ts: Option<Millis> = None;
    while let Some(chunk) = next_chunk(worker, &chunks) {
        // The marks of this epoch's start were sent when the last epoch ended; past them, the
        // horizon of this epoch is known once every worker is here. The marks input waits at
        // the epoch's last time, which no batch reaches, so it holds back nothing of the epoch.
        marks.advance_to(epoch_end(chunk.epoch));
        marks.flush();
        let mut feeder = Feeder {
            worker,
            inputs: &mut inputs,
            probe: &probe,
            epoch: chunk.epoch,
            batch: 0,
            in_batch: 0,
            batch_records: config.batch_records,
            stats: ReadStats {
                epoch: chunk.epoch,
                ..ReadStats::default()
            },
        };
        if let Some((start, end)) = chunk.range(index, peers) {
            read_range(
                &chunk,
                start,
                end,
                config,
                &mut decoders,
                &mut feeder,
                records_read,
            )
            .map_err(|e| format!("{}: {e}", chunk.file.path.display()))?;
        }
        let stats = feeder.stats;
        max_ts = max_ts.max(stats.max_ts);
        // The counts go before the epoch can complete, so the sink has them when it does.
        let _ = stats_tx.send(stats);
        // The epoch is complete on this worker: wait until it is on all before the next one.
        // The greatest event time read so far goes out as the next epoch's watermark input.
        let next = epoch_start(chunk.epoch + 1);
        marks.advance_to(next);
        if let Some(ts) = max_ts {
            marks.send((next, ts));
        }
        marks.flush();
        inputs.advance_to(next);
        worker.step_while(|| probe.less_than(&next));
    }
    Ok(())
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
}

impl Feeder<'_> {
    fn time(&self) -> Time {
        batch_time(self.epoch, self.batch)
    }

    fn event(&mut self, event: Event) {
        self.stats.max_ts = self.stats.max_ts.max(Some(event.ts));
        self.inputs.events.update_at(event, self.time(), 1);
        self.stats.accepted += 1;
        self.record();
    }

    /// A record outside the replay slice: read, and neither fed nor dead-lettered.
    fn skipped(&mut self) {
        self.stats.skipped += 1;
        self.record();
    }

    fn dead(&mut self, letter: DeadLetter) {
        self.inputs.dead.update_at(letter, self.time(), 1);
        self.stats.dead += 1;
        self.record();
    }

    /// Counts a record; a full batch moves to the next internal time, at most one batch ahead
    /// of what the dataflow has finished.
    fn record(&mut self) {
        self.stats.read += 1;
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
}

/// One worker's decoders: for the input files, and for audit logs if there are any.
struct Decoders {
    input: Decoder,
    audit: Option<AuditDecoder>,
}

/// Reads the lines of `chunk` starting in `[start, end)` and feeds them.
fn read_range(
    chunk: &Chunk,
    start: u64,
    end: u64,
    config: &AggregateConfig,
    decoders: &mut Decoders,
    feeder: &mut Feeder<'_>,
    records_read: &AtomicU64,
) -> std::io::Result<()> {
    let recovery = &config.recovery;
    let Decoders {
        input: decoder,
        audit,
    } = decoders;
    let max = config.max_line_bytes;
    let file = &chunk.file;
    let mut lines = chunk.lines(start, end, max)?;
    let first_offset = lines.offset();
    // Line numbers need the count of lines before this range; only counted if needed.
    let mut line_base: Option<u64> = if first_offset == 0 { Some(0) } else { None };
    let csv: Option<Result<CsvLayout, BadRecord>> = match file.format {
        Format::Csv => match file.first_line(max)? {
            Some(header) if header.len() <= max => Some(decoder.csv_layout(&header)),
            Some(header) => Some(Err(BadRecord::TooLong {
                len: header.len() as u64,
                max: max as u64,
            })),
            None => None,
        },
        Format::JsonLines | Format::AuditLog => None,
    };
    let source = file.path.display().to_string();
    let mut line_in_range = 0u64;
    let mut since_report = 0u64;
    while let Some(line) = lines.next_line()? {
        line_in_range += 1;
        let position = Position {
            epoch: chunk.epoch,
            file: file.index,
            offset: line.offset,
        };
        if line.offset == 0 && csv.is_some() {
            continue; // the CSV header
        }
        if line.bytes.iter().all(u8::is_ascii_whitespace) && !line.too_long {
            continue; // blank lines hold no record
        }
        if !recovery.admits_offset(file, line.offset) {
            feeder.skipped();
            continue;
        }
        let decoded = if line.too_long {
            Err(BadRecord::TooLong {
                len: line.len,
                max: max as u64,
            })
        } else {
            match &csv {
                None if file.format == Format::AuditLog => {
                    let audit = audit.as_mut().expect("audit logs come with a format");
                    match audit.decode(line.bytes, position) {
                        Ok(Some(event)) => Ok(event),
                        Ok(None) => {
                            feeder.stats.audit_skipped += 1;
                            continue; // a log line that holds no audit record
                        }
                        Err(reason) => Err(reason),
                    }
                }
                None => decoder.decode_json(line.bytes, position),
                Some(Ok(layout)) => decoder.decode_csv(layout, line.bytes, position),
                Some(Err(header)) => Err(BadRecord::Csv(format!(
                    "the file's header (line 1) is unusable: {header}"
                ))),
            }
        };
        match decoded {
            Ok(event) if !recovery.admits_time(event.ts) => feeder.skipped(),
            Ok(event) => feeder.event(event),
            Err(reason) => {
                let raw = raw_text(line.bytes);
                let base = match line_base {
                    Some(base) => base,
                    None => *line_base.insert(chunk.lines_before(first_offset)?),
                };
                feeder.dead(DeadLetter {
                    position,
                    source: source.clone(),
                    line: base + line_in_range,
                    reason: reason.to_string(),
                    raw,
                });
            }
        }
        since_report += 1;
        if since_report == 4096 {
            records_read.fetch_add(since_report, Ordering::Relaxed);
            since_report = 0;
        }
    }
    records_read.fetch_add(since_report, Ordering::Relaxed);
    Ok(())
}
