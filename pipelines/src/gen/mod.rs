//! `amend gen`: deterministic synthetic event histories for tests and benchmarks.
//!
//! Writes two JSON Lines files into `--out`:
//!
//! * `events.jsonl`: the producers' stream, in roughly increasing event time, with late events,
//!   exact replays of earlier lines and bad lines of varied kinds;
//! * `corrections.jsonl`: the producers' later fixes: same-version corrections, new versions,
//!   stale (lower) versions, deletes at the current version, late events for new ids, replays of
//!   correction lines and bad lines.
//!
//! The output is a pure function of the seed and the parameters: byte-identical across runs and
//! machines (ChaCha8 from the seed, integer arithmetic only in what is written, no hash-map
//! iteration). Every line has exactly one meaning under the data contract (docs/format.md section 1-5):
//! a replay repeats a line that is still its id's current record (or a stale one), so "a replay
//! changes nothing" and "a later record with the same version replaces" never disagree.
//!
//! With `--out -` it writes one stream to standard output instead, for a pipeline that reads
//! standard input (`amend gen --out - ... | amend aggregate --follow --input - ...`): the lines
//! of both files interleaved at random, in memory that does not grow with `--events`. Event time
//! advances through the stream as through the events file. Corrections, stale records and
//! deletes touch only the 4,096 most recent ids, and a time they move to lies at most
//! `--max-delay` behind the stream position, as a late event's does. A replay repeats a line of
//! the recent past or of a bounded sample of all of it, and only while that line is still its
//! id's current record (or stale), so it changes nothing. With a finite `--allowed-lateness`
//! the state a consumer must keep stays bounded.
//!
//! Counts are exact, not sampled: `--events` is the number of lines of the events file, of which
//! `round(events × bad)` are bad and `round(events × replays)` are replays; the corrections file
//! has `round(events × corrections)` lines, of which `round(lines × bad)` are bad and the deletes,
//! stale records, replays and new-id events take their fractions of all its lines in that order
//! of priority (the rest are same-version corrections and new versions, half and half). A kind
//! that is impossible when drawn (a stale record needs an id at version >= 1, a replay a line to
//! repeat) is swapped for a later update, so near the edges the kinds are approximate.
//! Ids are `e` and at least 7 digits, keys `k` and at least 4, sources `p` and at least 2.

use std::io::{self, Write};
use std::path::PathBuf;

use amend_operators::time;
use amend_operators::{Decimal, Scale};
use anyhow::{Context, anyhow, ensure};
use chrono::Datelike;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

mod generator;
mod lines;

use generator::*;
use lines::*;

/// Generate a deterministic synthetic event history: an events file and a corrections file.
#[derive(clap::Args, Debug, Clone)]
pub struct GenArgs {
    /// Output directory; writes events.jsonl and corrections.jsonl into it (created if missing).
    ///
    /// `-` writes one stream to standard output instead: the events and corrections lines
    /// interleaved, generated in constant memory, for `amend aggregate --follow --input -`.
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present = "kafka",
        conflicts_with = "kafka"
    )]
    pub out: Option<PathBuf>,
    /// Produce the stream of `--out -` to a Kafka topic instead, `kafka://HOST:PORT/TOPIC`
    /// (it must exist): each line one message, keyed by the record's id, so that an id's records
    /// stay in one partition and in order.
    #[arg(long, value_name = "URL")]
    pub kafka: Option<crate::kafka::TopicUrl>,
    #[command(flatten)]
    pub kafka_args: crate::kafka::KafkaArgs,
    /// Seed of the generator: the same seed and parameters give byte-identical files.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Number of events in the events file.
    #[arg(long, default_value_t = 10_000)]
    pub events: u64,
    /// Number of distinct keys (k0000, k0001, ...).
    #[arg(long, default_value_t = 100)]
    pub keys: u64,
    /// Number of producers (p00, p01, ...), each with its own sequence numbers.
    #[arg(long, default_value_t = 8)]
    pub sources: u64,
    /// Event-time span, e.g. 1h, 1d, 30m, 500ms
    #[arg(long, default_value = "1d")]
    pub span: String,
    /// Start of event time (RFC 3339)
    #[arg(long, default_value = "2026-11-20T00:00:00Z")]
    pub start: String,
    /// Fraction of events whose time is well behind the stream position.
    #[arg(long, default_value_t = 0.05)]
    pub late: f64,
    /// How far behind the stream position a late event's time is at most, e.g. 10m [default: a fifth of --span]
    ///
    /// Late events are between a tenth of this and this far behind. With --out -, it also bounds
    /// how far behind the stream position a correction moves an event's time.
    #[arg(long, value_name = "DURATION")]
    pub max_delay: Option<String>,
    /// Fraction of lines that are exact replays of an earlier line.
    #[arg(long, default_value_t = 0.02)]
    pub replays: f64,
    /// Corrections file size as a fraction of --events
    #[arg(long, default_value_t = 0.01)]
    pub corrections: f64,
    /// Fraction of the corrections records that are stale (a lower version than the current one).
    #[arg(long, default_value_t = 0.1)]
    pub stale: f64,
    /// Fraction of the corrections records that are deletes.
    #[arg(long, default_value_t = 0.1)]
    pub deletes: f64,
    /// Fraction of lines, in both files, that are bad records.
    #[arg(long, default_value_t = 0.001)]
    pub bad: f64,
    /// Fraction of fresh events left out of the events file (not with --out -) while their sequence numbers stay consumed: deliberate gaps for `amend gaps` (a left-out line may still come back as a later replay, as a recovered event).
    #[arg(long, value_name = "FRACTION", default_value_t = 0.0)]
    pub drop_seq: f64,
    /// With --drop-seq, also write audit.log: a producer's text log in which this fraction of the left-out events appear (with 1% of the kept ones, and unrelated lines), to recover them with `amend aggregate --audit-log`.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.5)]
    pub audit_coverage: f64,
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenReport {
    pub events_path: PathBuf,
    pub corrections_path: PathBuf,
    /// Lines of the events file (bad lines and replays included).
    pub event_lines: u64,
    /// Lines of the corrections file (bad lines and replays included).
    pub correction_lines: u64,
    /// Bad lines in both files together.
    pub bad_lines: u64,
    /// Fresh events left out with `--drop-seq` (their sequence numbers consumed).
    pub dropped_lines: u64,
    /// With `--drop-seq`: the audit log's path and its event lines (left-out and kept).
    pub audit: Option<(PathBuf, u64)>,
}

/// Name of the events file written into `--out`.
const EVENTS_FILE: &str = "events.jsonl";
/// Name of the corrections file written into `--out`.
const CORRECTIONS_FILE: &str = "corrections.jsonl";
/// Name of the audit log written into `--out` with `--drop-seq`.
const AUDIT_FILE: &str = "audit.log";
/// The `--audit-pattern` that reads the event lines of the audit log `amend gen` writes.
pub const AUDIT_PATTERN: &str = r"producer=(?P<source>\S+) seq=(?P<seq>\d+) accepted id=(?P<id>\S+) key=(?P<key>\S+) ts=(?P<ts>\S+) value=(?P<value>\S+)";
/// Share of the corrections file that are late events for ids never seen before.
const NEW_ID_FRACTION: f64 = 0.02;
/// Recent lines kept as replay candidates.
const RING: usize = 1024;
/// Lines sampled from the whole history as far-back replay candidates.
const RESERVOIR: usize = 256;
/// Upper bound of `--sources` (one sequence counter each).
const MAX_SOURCES: u64 = 1_000_000;
/// Output is handed to the writer in chunks of about this size.
const FLUSH_AT: usize = 1 << 16;
const DAY_MS: i64 = 86_400_000;
/// The end of the event times amend reads (years 1 to 9999): generated data must stay readable.
const END_MS: i64 = time::MAX_MILLIS + 1;

impl GenArgs {
    /// Whether `--out -` asks for one stream on standard output.
    pub fn to_stdout(&self) -> bool {
        self.out.as_ref().is_some_and(|out| out.as_os_str() == "-")
    }
}

/// Validates `args`, creates `--out` and writes `events.jsonl` and `corrections.jsonl` into it;
/// with `--out -`, writes the stream to standard output instead (the report's paths are `-`).
pub fn run(args: &GenArgs) -> anyhow::Result<GenReport> {
    Params::new(args).map_err(|e| crate::UsageError(e.to_string()))?;
    if let Some(url) = &args.kafka {
        let mut producer = crate::kafka::produce::LineProducer::connect(url, &args.kafka_args)?;
        let report = stream(args, &mut producer)?;
        producer.finish()?;
        let to = PathBuf::from(url.to_string());
        return Ok(GenReport {
            events_path: to.clone(),
            corrections_path: to,
            ..report
        });
    }
    let out = args.out.clone().expect("--out or --kafka");
    if args.to_stdout() {
        let report = stream(args, &mut io::stdout().lock())?;
        return Ok(GenReport {
            events_path: out.clone(),
            corrections_path: out,
            ..report
        });
    }
    std::fs::create_dir_all(&out)
        .with_context(|| format!("--out: cannot create directory {}", out.display()))?;
    let events_path = out.join(EVENTS_FILE);
    let corrections_path = out.join(CORRECTIONS_FILE);
    let create = |path: &PathBuf| {
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))
    };
    let mut events = create(&events_path)?;
    let mut corrections = create(&corrections_path)?;
    let (report, audit) = generate_with_audit(args, &mut events, &mut corrections)?;
    let audit = match audit {
        Some(lines) => {
            let path = out.join(AUDIT_FILE);
            let count = lines.iter().filter(|l| l.contains(" accepted id=")).count() as u64;
            std::fs::write(&path, lines.concat())
                .with_context(|| format!("cannot write {}", path.display()))?;
            Some((path, count))
        }
        None => None,
    };
    Ok(GenReport {
        events_path,
        corrections_path,
        audit,
        ..report
    })
}

/// Writes the events file into `events` and the corrections file into `corrections` (buffered
/// internally, flushed at the end). The paths of the report are empty.
pub fn generate(
    args: &GenArgs,
    events: &mut impl Write,
    corrections: &mut impl Write,
) -> anyhow::Result<GenReport> {
    Ok(generate_with_audit(args, events, corrections)?.0)
}

/// [`generate`], and with `--drop-seq` the lines of the audit log.
fn generate_with_audit(
    args: &GenArgs,
    events: &mut impl Write,
    corrections: &mut impl Write,
) -> anyhow::Result<(GenReport, Option<Vec<String>>)> {
    let params = Params::new(args)?;
    let mut g = Generator::new(&params, args.seed);
    let mut sink = Sink::new(events);
    g.events_file(&mut sink)
        .context("writing the events file")?;
    let event_lines = sink.finish().context("writing the events file")?;
    let mut sink = Sink::new(corrections);
    g.corrections_file(&mut sink)
        .context("writing the corrections file")?;
    let correction_lines = sink.finish().context("writing the corrections file")?;
    let report = GenReport::counts(&g, event_lines, correction_lines);
    Ok((report, g.audit.take().map(|(_, lines)| lines)))
}

/// Writes the events and corrections lines interleaved into `out`, as one stream, in bounded
/// memory (buffered internally, flushed at the end). The report counts the lines of each kind;
/// its paths are empty.
pub fn stream(args: &GenArgs, out: &mut impl Write) -> anyhow::Result<GenReport> {
    let params = Params::new(args)?;
    let mut g = Generator::new(&params, args.seed);
    let mut sink = Sink::new(out);
    let (event_lines, correction_lines) = g.stream(&mut sink).context("writing the stream")?;
    sink.finish().context("writing the stream")?;
    Ok(GenReport::counts(&g, event_lines, correction_lines))
}

impl GenReport {
    /// The counts of what `g` wrote, with empty paths.
    fn counts(g: &Generator, event_lines: u64, correction_lines: u64) -> GenReport {
        GenReport {
            events_path: PathBuf::new(),
            corrections_path: PathBuf::new(),
            event_lines,
            correction_lines,
            bad_lines: g.bad_lines,
            dropped_lines: g.dropped_lines,
            audit: None,
        }
    }
}

/// Validated arguments.
struct Params {
    events: u64,
    keys: u64,
    sources: u64,
    start_ms: i64,
    span_ms: i64,
    late: Prob,
    /// How far behind the stream position a late event's time is: `[late_min, late_max]` ms.
    late_min: i64,
    late_max: i64,
    replays: f64,
    corrections: f64,
    stale: f64,
    deletes: f64,
    bad: f64,
    drop_seq: Prob,
    audit_coverage: Prob,
}

impl Params {
    fn new(a: &GenArgs) -> anyhow::Result<Params> {
        ensure!(
            a.events > 0,
            "--events must be greater than 0, got {}",
            a.events
        );
        ensure!(a.keys > 0, "--keys must be greater than 0, got {}", a.keys);
        ensure!(
            (1..=MAX_SOURCES).contains(&a.sources),
            "--sources must be between 1 and {MAX_SOURCES}, got {}",
            a.sources
        );
        for (flag, p) in [
            ("--late", a.late),
            ("--replays", a.replays),
            ("--corrections", a.corrections),
            ("--stale", a.stale),
            ("--deletes", a.deletes),
            ("--bad", a.bad),
            ("--drop-seq", a.drop_seq),
            ("--audit-coverage", a.audit_coverage),
        ] {
            ensure!(
                (0.0..=1.0).contains(&p),
                "{flag} must be a fraction in [0, 1], got {p}"
            );
        }
        let span_ms = parse_span(&a.span)?;
        let start_ms = time::parse_rfc3339(&a.start).map_err(|e| anyhow!("--start: {e}"))?;
        let (late_min, late_max) = match &a.max_delay {
            None => (span_ms / 50, span_ms / 5),
            Some(text) => {
                let delay = time::parse_duration(text).map_err(|e| anyhow!("--max-delay: {e}"))?;
                (delay / 10, delay)
            }
        };
        let late_min = late_min.max(1);
        let late_max = late_max.max(late_min);
        ensure!(
            END_MS - start_ms >= span_ms,
            "--start {:?} with --span {:?} leaves the years 1-9999 that amend reads",
            a.start,
            a.span
        );
        Ok(Params {
            events: a.events,
            keys: a.keys,
            sources: a.sources,
            start_ms,
            span_ms,
            late: Prob::new(a.late),
            late_min,
            late_max,
            replays: a.replays,
            corrections: a.corrections,
            stale: a.stale,
            deletes: a.deletes,
            bad: a.bad,
            drop_seq: Prob::new(a.drop_seq),
            audit_coverage: Prob::new(a.audit_coverage),
        })
    }
}

/// Parses `--span` with the durations every amend flag uses.
fn parse_span(s: &str) -> anyhow::Result<i64> {
    amend_operators::time::parse_duration(s).map_err(|e| anyhow!("--span: {e}"))
}

/// `round(n × p)`, at most `n`.
fn count(n: u64, p: f64) -> u64 {
    ((n as f64 * p).round() as u64).min(n)
}

/// A probability as an integer threshold on a uniform u64 (exact for 0 and 1).
#[derive(Clone, Copy)]
struct Prob(u128);

impl Prob {
    fn new(p: f64) -> Prob {
        // 2^64 is exact in f64 and the product is at most 2^64: deterministic everywhere.
        Prob((p * 18_446_744_073_709_551_616.0) as u128)
    }
}

/// The random source. Only ChaCha8's u64 stream is used, with integer maps on top, so the output
/// does not depend on how a `rand` version implements ranges.
struct Random(ChaCha8Rng);

impl Random {
    /// Uniform in `[0, n)`, `n > 0` (multiply-shift; bias below n / 2^64).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.0.next_u64()) * u128::from(n)) >> 64) as u64
    }

    fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// Uniform in `[lo, hi]`.
    fn between(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below(hi.abs_diff(lo) + 1) as i64
    }

    fn chance(&mut self, p: Prob) -> bool {
        u128::from(self.0.next_u64()) < p.0
    }

    /// Picks an entry with probability proportional to its count (not taken); `counts` not all 0.
    fn pick(&mut self, counts: &[u64]) -> usize {
        let mut r = self.below(counts.iter().sum());
        for (i, &c) in counts.iter().enumerate() {
            if r < c {
                return i;
            }
            r -= c;
        }
        unreachable!("pick from counts that are all zero")
    }
}

/// Buffers lines and hands them to the writer in large chunks.
#[cfg(test)]
mod tests;
