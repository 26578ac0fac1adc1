//! `amend aggregate`: windowed aggregates over event files, corrected by later records.
//!
//! ```text
//!  worker w: byte range w of each file ─decode─┬─ events ─▶ ResolveIds ─▶ AssignWindows ─▶ Aggregate ─┐
//!                                              └─ dead letters ───────────────────────────────────────┤
//!                                                 ResolveIds ─▶ CountIds (ids current / deleted) ──────┤
//!                                                                                     capture ─▶ sink ◀┘
//! ```
//!
//! Each worker reads its own byte range of every file (a gzip file goes whole to one worker),
//! decodes lines, and feeds records into the dataflow in batches of `--batch-records`, each
//! at its own internal time within the file's epoch. The sink, on the calling thread, gathers
//! every worker's output and applies the open epoch's row changes to the table as they
//! arrive; when all workers have passed the epoch, it writes the epoch's net changes to the
//! changelog and its dead letters in position order. At the end it writes the snapshot, the
//! digests and the summary. Reading stays at most one batch ahead of the dataflow on each
//! worker, and epochs are processed one at a time.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use amend_operators::decode::{BadRecord, CsvLayout};
use amend_operators::event::{batch_time, epoch_of, epoch_start, raw_text};
use amend_operators::sink::{SnapshotFormat, Table, write_dead_letter};
use amend_operators::source::{Format, InputFile, lines_before};
use amend_operators::{
    AggRow, Aggregate, AssignWindows, DeadLetter, Decoder, Event, Op, Position, ResolveIds,
    Sessions, Time, WindowSpec,
};
use anyhow::{Context, anyhow};
use differential_dataflow::input::{Input, InputSession};
use differential_dataflow::{AsCollection, VecCollection};
use serde::Serialize;
use timely::dataflow::Scope;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::Probe;
use timely::dataflow::operators::capture::{Capture, Event as Captured};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::probe::Handle as ProbeHandle;
use timely::progress::frontier::MutableAntichain;
use timely::worker::Worker;

use crate::config::AggregateConfig;
use crate::output::{write_atomically, write_json_atomically};
use crate::progress::Progress;

/// What the dataflow hands to the sink.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Output {
    /// A row of the aggregate table.
    Row(AggRow),
    /// A bad record.
    Dead(DeadLetter),
    /// An id whose current record is an upsert or a delete.
    Id(Op),
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
pub fn build<'scope>(
    scope: Scope<'scope, Time>,
    window: WindowSpec,
) -> (Inputs, VecCollection<'scope, Time, Output>) {
    let (events_in, events) = scope.new_collection::<Event, isize>();
    let (dead_in, dead) = scope.new_collection::<DeadLetter, isize>();
    let current = events.resolve_ids();
    let ids = count_ids_locally(current.clone());
    let rows = match window {
        WindowSpec::Session { gap } => current.sessions(gap),
        _ => current.assign_windows(window).aggregate(),
    };
    let output = rows
        .map(Output::Row)
        .concat(dead.map(Output::Dead))
        .concat(ids.map(Output::Id));
    let inputs = Inputs {
        events: events_in,
        dead: dead_in,
    };
    (inputs, output)
}

/// What the sink receives from each worker's capture.
pub type Captures = Captured<Time, Vec<(Output, Time, isize)>>;

/// One worker's whole dataflow: [`build`], then a probe for backpressure and the capture that
/// hands output to the sink.
pub fn build_with_sink(
    scope: Scope<'_, Time>,
    window: WindowSpec,
    probe: &ProbeHandle<Time>,
    sink: mpsc::Sender<Captures>,
) -> Inputs {
    let (inputs, output) = build(scope, window);
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
    read: u64,
    accepted: u64,
    dead: u64,
}

/// What `amend aggregate` reports in `summary.json`.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Summary {
    /// Records read: accepted plus dead-lettered.
    pub records_read: u64,
    /// Records decoded and fed to the dataflow.
    pub records_accepted: u64,
    /// Bad records, written to dead_letter.jsonl.
    pub records_dead_lettered: u64,
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
}

impl Summary {
    /// The one-paragraph summary printed at the end of a run.
    pub fn paragraph(&self, config: &AggregateConfig) -> String {
        let out = config.out.display();
        format!(
            "amend aggregate: read {} records from {} file(s) in {:.2} s ({:.0} records/s, {} worker(s)): \
             {} accepted, {} dead-lettered{}. \
             {} ids current, {} deleted. The table has {} rows in {} windows ({out}/{}); \
             {} changelog lines; table digest {}.",
            self.records_read,
            config.inputs.len(),
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

/// Runs `amend aggregate` and writes its outputs into `config.out`.
pub fn run(config: &AggregateConfig) -> anyhow::Result<Summary> {
    let started = Instant::now();
    let out = &config.out;
    fs::create_dir_all(out)
        .with_context(|| format!("cannot create output directory {}", out.display()))?;
    let create = |name: &str| -> anyhow::Result<BufWriter<File>> {
        let path = out.join(name);
        let file =
            File::create(&path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(BufWriter::with_capacity(1 << 20, file))
    };
    // A snapshot of the other format from an earlier run would be stale next to this one.
    for format in [SnapshotFormat::JsonLines, SnapshotFormat::Csv] {
        if format != config.snapshot_format {
            let _ = fs::remove_file(out.join(format.file_name()));
        }
    }
    let mut changelog = create("changelog.jsonl")?;
    let mut dead_letters = create("dead_letter.jsonl")?;

    let (output_tx, output_rx) = mpsc::channel();
    let (stats_tx, stats_rx) = mpsc::channel();
    let records_read = Arc::new(AtomicU64::new(0));
    let worker_config = Arc::new(config.clone());
    let read_counter = Arc::clone(&records_read);
    let guards = timely::execute(config.timely(), move |worker| {
        let run = || {
            run_worker(
                worker,
                &worker_config,
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

    let mut sink = Sink::new(config);
    let mut progress = Progress::new(config.progress);
    let result = (|| -> anyhow::Result<()> {
        loop {
            match output_rx.recv_timeout(Duration::from_millis(200)) {
                Ok(event) => {
                    sink.absorb(event)?;
                    sink.release(&mut changelog, &mut dead_letters, false)?;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            progress.update(
                sink.open,
                config.epochs(),
                records_read.load(Ordering::Relaxed),
            );
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
    sink.release(&mut changelog, &mut dead_letters, true)?;
    changelog.flush().context("cannot write changelog.jsonl")?;
    dead_letters
        .flush()
        .context("cannot write dead_letter.jsonl")?;

    let mut summary = sink.summary;
    for stats in stats_rx.try_iter() {
        summary.records_read += stats.read;
        summary.records_accepted += stats.accepted;
        summary.records_dead_lettered += stats.dead;
    }
    let table = &sink.table;
    // The digest and the snapshot read the same table: compute them side by side.
    let digest = std::thread::scope(|scope| {
        let digest = scope.spawn(|| table.digest());
        write_atomically(&out.join(config.snapshot_format.file_name()), |w| {
            Ok(table.write_snapshot(config.snapshot_format, w)?)
        })?;
        anyhow::Ok(digest.join().expect("digesting does not panic"))
    })?;
    write_json_atomically(&out.join("digests.json"), &digest)?;
    summary.epochs = config.epochs();
    summary.workers = config.workers;
    summary.rows = table.rows().len() as u64;
    summary.windows = digest.windows.len() as u64;
    summary.table_digest = digest.table;
    summary.elapsed_seconds = started.elapsed().as_secs_f64();
    summary.records_per_second = summary.records_read as f64 / summary.elapsed_seconds.max(1e-9);
    write_json_atomically(&out.join("summary.json"), &summary)?;
    Ok(summary)
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
    /// Number of epochs in the run.
    epochs: u64,
    /// The epoch whose changes are being applied.
    open: u64,
    /// Dead letters of the open epoch, written in position order when it closes.
    dead: Vec<DeadLetter>,
    /// Output of later epochs that arrived before the open epoch closed.
    early: BTreeMap<u64, Vec<(Output, isize)>>,
    table: Table,
    summary: Summary,
    ids: [i64; 2],
}

impl Sink {
    fn new(config: &AggregateConfig) -> Self {
        let mut frontier = MutableAntichain::new();
        // Each worker's capture starts out able to produce any time.
        frontier.update_iter([(0, config.workers as i64)]);
        Sink {
            frontier,
            epochs: config.epochs(),
            open: 0,
            dead: Vec::new(),
            early: BTreeMap::new(),
            table: Table::new(config.scale),
            summary: Summary::default(),
            ids: [0, 0],
        }
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
            // A dead letter is inserted once and never retracted.
            Output::Dead(letter) => self
                .dead
                .extend(std::iter::repeat_n(letter, diff.max(0) as usize)),
            Output::Id(op) => self.ids[op as usize] += diff as i64,
        }
        Ok(())
    }

    /// Writes out every epoch that no worker can still add to (all of them if `all`).
    fn release(
        &mut self,
        changelog: &mut impl Write,
        dead_letters: &mut impl Write,
        all: bool,
    ) -> anyhow::Result<()> {
        while self.open < self.epochs
            && (all || !self.frontier.less_than(&epoch_start(self.open + 1)))
        {
            let epoch = self.open;
            self.summary.changelog_lines += self.table.close_epoch(epoch, changelog)? as u64;
            let mut dead = std::mem::take(&mut self.dead);
            dead.sort();
            for letter in &dead {
                write_dead_letter(letter, dead_letters)
                    .context("cannot write dead_letter.jsonl")?;
            }
            changelog.flush().context("cannot write changelog.jsonl")?;
            dead_letters
                .flush()
                .context("cannot write dead_letter.jsonl")?;
            self.open = epoch + 1;
            for (output, diff) in self.early.remove(&self.open).unwrap_or_default() {
                self.take(self.open, output, diff)?;
            }
        }
        self.summary.ids_current = self.ids[Op::Upsert as usize].max(0) as u64;
        self.summary.ids_deleted = self.ids[Op::Delete as usize].max(0) as u64;
        Ok(())
    }
}

/// One worker: builds the dataflow, reads its share of every file, feeds it in batches.
fn run_worker(
    worker: &mut Worker,
    config: &AggregateConfig,
    output_tx: mpsc::Sender<Captures>,
    stats_tx: mpsc::Sender<ReadStats>,
    records_read: &AtomicU64,
) -> Result<(), String> {
    let probe = ProbeHandle::new();
    let mut inputs = worker
        .dataflow::<Time, _, _>(|scope| build_with_sink(scope, config.window, &probe, output_tx));
    let (index, peers) = (worker.index(), worker.peers());
    let mut decoder = Decoder::new(config.names.clone(), config.scale);
    for file in &config.inputs {
        let mut feeder = Feeder {
            worker,
            inputs: &mut inputs,
            probe: &probe,
            epoch: file.epoch,
            batch: 0,
            in_batch: 0,
            batch_records: config.batch_records,
            stats: ReadStats::default(),
        };
        if let Some((start, end)) = file.range(index, peers) {
            read_range(
                file,
                start,
                end,
                config,
                &mut decoder,
                &mut feeder,
                records_read,
            )
            .map_err(|e| format!("{}: {e}", file.path.display()))?;
        }
        let stats = feeder.stats;
        // The epoch is complete on this worker: wait until it is on all before the next one.
        let next = epoch_start(file.epoch + 1);
        inputs.advance_to(next);
        worker.step_while(|| probe.less_than(&next));
        let _ = stats_tx.send(stats);
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
        self.inputs.events.update_at(event, self.time(), 1);
        self.stats.accepted += 1;
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

/// Reads the lines starting in `[start, end)` of `file` and feeds them.
fn read_range(
    file: &InputFile,
    start: u64,
    end: u64,
    config: &AggregateConfig,
    decoder: &mut Decoder,
    feeder: &mut Feeder<'_>,
    records_read: &AtomicU64,
) -> std::io::Result<()> {
    let max = config.max_line_bytes;
    let mut lines = file.lines(start, end, max)?;
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
        Format::JsonLines => None,
    };
    let source = file.path.display().to_string();
    let mut line_in_range = 0u64;
    let mut since_report = 0u64;
    while let Some(line) = lines.next_line()? {
        line_in_range += 1;
        let position = Position {
            epoch: file.epoch,
            file: file.index,
            offset: line.offset,
        };
        if line.offset == 0 && csv.is_some() {
            continue; // the CSV header
        }
        if line.bytes.iter().all(u8::is_ascii_whitespace) && !line.too_long {
            continue; // blank lines hold no record
        }
        let decoded = if line.too_long {
            Err(BadRecord::TooLong {
                len: line.len,
                max: max as u64,
            })
        } else {
            match &csv {
                None => decoder.decode_json(line.bytes, position),
                Some(Ok(layout)) => decoder.decode_csv(layout, line.bytes, position),
                Some(Err(header)) => Err(BadRecord::Csv(format!(
                    "the file's header (line 1) is unusable: {header}"
                ))),
            }
        };
        match decoded {
            Ok(event) => feeder.event(event),
            Err(reason) => {
                let raw = raw_text(line.bytes);
                let base = match line_base {
                    Some(base) => base,
                    None => *line_base.insert(lines_before(&file.path, first_offset)?),
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
