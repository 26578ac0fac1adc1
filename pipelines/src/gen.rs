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

/// Generate a deterministic synthetic event history: an events file and a corrections file.
#[derive(clap::Args, Debug, Clone)]
pub struct GenArgs {
    /// Output directory; writes events.jsonl and corrections.jsonl into it (created if missing).
    ///
    /// `-` writes one stream to standard output instead: the events and corrections lines
    /// interleaved, generated in constant memory, for `amend aggregate --follow --input -`.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
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
        self.out.as_os_str() == "-"
    }
}

/// Validates `args`, creates `--out` and writes `events.jsonl` and `corrections.jsonl` into it;
/// with `--out -`, writes the stream to standard output instead (the report's paths are `-`).
pub fn run(args: &GenArgs) -> anyhow::Result<GenReport> {
    Params::new(args).map_err(|e| crate::UsageError(e.to_string()))?;
    if args.to_stdout() {
        let report = stream(args, &mut io::stdout().lock())?;
        return Ok(GenReport {
            events_path: args.out.clone(),
            corrections_path: args.out.clone(),
            ..report
        });
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("--out: cannot create directory {}", args.out.display()))?;
    let events_path = args.out.join(EVENTS_FILE);
    let corrections_path = args.out.join(CORRECTIONS_FILE);
    let create = |path: &PathBuf| {
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))
    };
    let mut events = create(&events_path)?;
    let mut corrections = create(&corrections_path)?;
    let (report, audit) = generate_with_audit(args, &mut events, &mut corrections)?;
    let audit = match audit {
        Some(lines) => {
            let path = args.out.join(AUDIT_FILE);
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
    let report = GenReport {
        events_path: PathBuf::new(),
        corrections_path: PathBuf::new(),
        event_lines,
        correction_lines,
        bad_lines: g.bad_lines,
        dropped_lines: g.dropped_lines,
        audit: None,
    };
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
    Ok(GenReport {
        events_path: PathBuf::new(),
        corrections_path: PathBuf::new(),
        event_lines,
        correction_lines,
        bad_lines: g.bad_lines,
        dropped_lines: g.dropped_lines,
        audit: None,
    })
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
struct Sink<'w, W: Write> {
    w: &'w mut W,
    buf: Vec<u8>,
    lines: u64,
}

impl<'w, W: Write> Sink<'w, W> {
    fn new(w: &'w mut W) -> Self {
        Sink {
            w,
            buf: Vec::with_capacity(FLUSH_AT + 4096),
            lines: 0,
        }
    }

    /// Appends one line (without its newline).
    fn push(&mut self, line: &[u8]) -> io::Result<()> {
        self.buf.extend_from_slice(line);
        self.buf.push(b'\n');
        self.lines += 1;
        if self.buf.len() >= FLUSH_AT {
            self.w.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Writes what is left, flushes, and returns the number of lines.
    fn finish(self) -> io::Result<u64> {
        self.w.write_all(&self.buf)?;
        self.w.flush()?;
        Ok(self.lines)
    }
}

fn push_u64(buf: &mut Vec<u8>, n: u64) {
    push_padded(buf, n, 1);
}

/// Decimal digits of `n`, left-padded with zeros to at least `width` (at most 20).
fn push_padded(buf: &mut Vec<u8>, mut n: u64, width: usize) {
    let mut tmp = [b'0'; 20];
    let mut i = tmp.len();
    while n > 0 {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    buf.extend_from_slice(&tmp[i.min(tmp.len() - width)..]);
}

/// An amount in cents as canonical decimal text: `12.5`, `-3.07`, `100`, `0`.
fn push_cents(buf: &mut Vec<u8>, cents: i64) {
    let cents_scale = Scale::new(2).expect("2 fractional digits are supported");
    let _ = write!(buf, "{}", Decimal(i128::from(cents)).display(cents_scale));
}

/// Formats epoch milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ`, caching the date of the last day.
struct TsFormat {
    day: i64,
    date: [u8; 11],
}

impl TsFormat {
    fn new() -> Self {
        TsFormat {
            day: i64::MIN,
            date: [0; 11],
        }
    }

    /// `ms` must lie in years 1-9999 (checked by `Params::new`).
    fn push(&mut self, buf: &mut Vec<u8>, ms: i64) {
        let day = ms.div_euclid(DAY_MS);
        if day != self.day {
            let date = chrono::DateTime::from_timestamp_millis(day * DAY_MS)
                .expect("timestamp in range")
                .date_naive();
            let mut d = Vec::with_capacity(11);
            push_padded(&mut d, date.year() as u64, 4);
            d.push(b'-');
            push_padded(&mut d, u64::from(date.month()), 2);
            d.push(b'-');
            push_padded(&mut d, u64::from(date.day()), 2);
            d.push(b'T');
            self.date.copy_from_slice(&d);
            self.day = day;
        }
        buf.extend_from_slice(&self.date);
        let t = ms.rem_euclid(DAY_MS) as u64;
        push_padded(buf, t / 3_600_000, 2);
        buf.push(b':');
        push_padded(buf, t / 60_000 % 60, 2);
        buf.push(b':');
        push_padded(buf, t / 1_000 % 60, 2);
        buf.push(b'.');
        push_padded(buf, t % 1_000, 3);
        buf.push(b'Z');
    }
}

/// One record as the producer meant it.
#[derive(Clone, Copy)]
struct Rec {
    id: u64,
    key: u64,
    ts: i64,
    cents: i64,
    version: u64,
    source: u64,
    seq: u64,
    delete: bool,
}

/// A required field that a bad line leaves out.
#[derive(Clone, Copy, Debug)]
enum Field {
    Id,
    Key,
    Ts,
    Value,
}

/// How a bad line spoils a record.
enum Mangle {
    None,
    Omit(Field),
    /// Raw JSON text in place of the value.
    Value(String),
    /// Raw JSON text in place of the ts.
    Ts(&'static str),
    Op(&'static str),
}

/// Appends the record as one JSON line (without its newline).
fn push_rec(buf: &mut Vec<u8>, tsf: &mut TsFormat, r: &Rec, m: &Mangle) {
    buf.push(b'{');
    let mut sep = false;
    let mut field = |buf: &mut Vec<u8>, name: &str| {
        if sep {
            buf.push(b',');
        }
        sep = true;
        buf.push(b'"');
        buf.extend_from_slice(name.as_bytes());
        buf.extend_from_slice(b"\":");
    };
    if !matches!(m, Mangle::Omit(Field::Id)) {
        field(buf, "id");
        buf.extend_from_slice(b"\"e");
        push_padded(buf, r.id, 7);
        buf.push(b'"');
    }
    if !matches!(m, Mangle::Omit(Field::Key)) {
        field(buf, "key");
        buf.extend_from_slice(b"\"k");
        push_padded(buf, r.key, 4);
        buf.push(b'"');
    }
    match m {
        Mangle::Omit(Field::Ts) => {}
        Mangle::Ts(raw) => {
            field(buf, "ts");
            buf.extend_from_slice(raw.as_bytes());
        }
        _ => {
            field(buf, "ts");
            buf.push(b'"');
            tsf.push(buf, r.ts);
            buf.push(b'"');
        }
    }
    match m {
        Mangle::Omit(Field::Value) => {}
        Mangle::Value(raw) => {
            field(buf, "value");
            buf.extend_from_slice(raw.as_bytes());
        }
        _ => {
            field(buf, "value");
            push_cents(buf, r.cents);
        }
    }
    field(buf, "version");
    push_u64(buf, r.version);
    field(buf, "source");
    buf.extend_from_slice(b"\"p");
    push_padded(buf, r.source, 2);
    buf.push(b'"');
    field(buf, "seq");
    push_u64(buf, r.seq);
    match m {
        Mangle::Op(op) => {
            field(buf, "op");
            buf.push(b'"');
            buf.extend_from_slice(op.as_bytes());
            buf.push(b'"');
        }
        _ if r.delete => {
            field(buf, "op");
            buf.extend_from_slice(b"\"delete\"");
        }
        _ => {}
    }
    buf.push(b'}');
}

/// Replay candidates of the events file: the last `RING` lines and a uniform sample of all.
#[derive(Default)]
struct History {
    ring: Vec<Candidate>,
    next: usize,
    reservoir: Vec<Candidate>,
    seen: u64,
}

/// A line that may be replayed, while it is still the current record of its id.
struct Candidate {
    line: Vec<u8>,
    id: u64,
    current: bool,
}

impl Candidate {
    fn new(line: &[u8], id: u64) -> Candidate {
        Candidate {
            line: line.to_vec(),
            id,
            current: true,
        }
    }

    fn overwrite(&mut self, line: &[u8], id: u64) {
        overwrite(&mut self.line, line);
        (self.id, self.current) = (id, true);
    }
}

fn overwrite(slot: &mut Vec<u8>, line: &[u8]) {
    slot.clear();
    slot.extend_from_slice(line);
}

impl History {
    /// Adds the line of a fresh event of id `id`.
    fn add(&mut self, rng: &mut Random, line: &[u8], id: u64) {
        if self.ring.len() < RING {
            self.ring.push(Candidate::new(line, id));
        } else {
            self.ring[self.next].overwrite(line, id);
        }
        self.next = (self.next + 1) % RING;
        self.seen += 1;
        if self.reservoir.len() < RESERVOIR {
            self.reservoir.push(Candidate::new(line, id));
        } else {
            let r = rng.below(self.seen);
            if r < RESERVOIR as u64 {
                self.reservoir[r as usize].overwrite(line, id);
            }
        }
    }

    /// A recent line mostly, a far-back one a fifth of the time. Not empty.
    fn pick(&self, rng: &mut Random) -> &Candidate {
        if rng.below(5) == 0 {
            &self.reservoir[rng.index(self.reservoir.len())]
        } else {
            &self.ring[rng.index(self.ring.len())]
        }
    }

    /// A line that is still its id's current record, if one of a few picks finds one.
    fn pick_current(&self, rng: &mut Random) -> Option<&[u8]> {
        if self.seen == 0 {
            return None;
        }
        (0..8)
            .map(|_| self.pick(rng))
            .find(|c| c.current)
            .map(|c| c.line.as_slice())
    }

    /// Id `id` has a new current record: its lines here are no longer safe to replay.
    fn superseded(&mut self, id: u64) {
        for c in self.ring.iter_mut().chain(&mut self.reservoir) {
            if c.id == id {
                c.current = false;
            }
        }
    }
}

/// What the generator keeps of an id that the corrections file may touch.
struct Slot {
    rec: Rec,
    /// Bumped whenever the id's current record changes.
    generation: u32,
}

/// A correction line kept as a replay candidate.
struct Sent {
    line: Vec<u8>,
    slot: usize,
    /// The id of the record: in a stream, the slot may hold another id by now.
    id: u64,
    generation: u32,
    stale: bool,
}

// Line kinds of the events file.
const E_BAD: usize = 0;
const E_REPLAY: usize = 1;
const E_FRESH: usize = 2;

// Line kinds of the corrections file (in a stream, after the events kinds: `CORRECTION + C_*`).
const C_BAD: usize = 0;
const C_REPLAY: usize = 1;
const C_STALE: usize = 2;
const C_DELETE: usize = 3;
const C_NEW_ID: usize = 4;
const C_UPDATE: usize = 5;
const CORRECTION: usize = 3;

/// In a stream, corrections touch only the most recent of the ids: at most this many are kept.
const STREAM_SLOTS: usize = 1 << 12;

/// What a line of a stream did, beyond being written.
enum Made {
    /// A bad line or a replay.
    Other,
    /// A fresh event.
    Fresh(Rec),
    /// A correction record for the id in this slot (`true` if stale).
    Correction(usize, bool),
}

struct Generator<'p> {
    p: &'p Params,
    rng: Random,
    /// Last sequence number of each source.
    seqs: Vec<u64>,
    next_id: u64,
    tsf: TsFormat,
    line: Vec<u8>,
    /// The ids that the corrections file touches (chosen while the events file is written).
    slots: Vec<Slot>,
    /// Slots whose version is at least 1 (candidates for stale records; not kept in a stream).
    versioned: Vec<usize>,
    /// In a stream, the event time it has reached; `None` while writing the files.
    position: Option<i64>,
    /// In a stream, the slot the next new id overwrites.
    next_slot: usize,
    bad_lines: u64,
    /// With `--drop-seq`: its own random stream, so that every other line stays as without it.
    drops: Option<Random>,
    dropped_lines: u64,
    /// With `--drop-seq`: the audit log's lines, and their own random stream.
    audit: Option<(Random, Vec<String>)>,
}

impl<'p> Generator<'p> {
    fn new(p: &'p Params, seed: u64) -> Self {
        Generator {
            p,
            rng: Random(ChaCha8Rng::seed_from_u64(seed)),
            seqs: vec![0; p.sources as usize],
            next_id: 0,
            tsf: TsFormat::new(),
            line: Vec::with_capacity(256),
            slots: Vec::new(),
            versioned: Vec::new(),
            position: None,
            next_slot: 0,
            bad_lines: 0,
            drops: (p.drop_seq.0 > 0)
                .then(|| Random(ChaCha8Rng::seed_from_u64(seed ^ 0x6761_7073))),
            dropped_lines: 0,
            audit: (p.drop_seq.0 > 0).then(|| {
                (
                    Random(ChaCha8Rng::seed_from_u64(seed ^ 0x6175_6469)),
                    Vec::new(),
                )
            }),
        }
    }

    fn corrections_lines(&self) -> u64 {
        count(self.p.events, self.p.corrections)
    }

    fn end_ms(&self) -> i64 {
        self.p.start_ms + self.p.span_ms - 1
    }

    fn random_ts(&mut self) -> i64 {
        self.rng.between(self.p.start_ms, self.end_ms())
    }

    fn random_key(&mut self) -> u64 {
        // A quarter of the records go to the first tenth of the keys: some keys are hot.
        if self.rng.below(4) == 0 {
            self.rng.below((self.p.keys / 10).max(1))
        } else {
            self.rng.below(self.p.keys)
        }
    }

    fn other_key(&mut self, key: u64) -> u64 {
        if self.p.keys == 1 {
            return key;
        }
        let step = 1 + self.rng.below(self.p.keys - 1);
        if key >= self.p.keys - step {
            key - (self.p.keys - step)
        } else {
            key + step
        }
    }

    fn random_cents(&mut self) -> i64 {
        match self.rng.below(50) {
            0 => 0,
            1 => self.rng.between(-100_000_000_000, 100_000_000_000),
            2..=7 => self.rng.between(-200, 1_999) * 100,
            8..=12 => -self.rng.between(1, 10_000),
            _ => self.rng.between(1, 100_000),
        }
    }

    fn other_cents(&mut self, cents: i64) -> i64 {
        loop {
            let c = self.random_cents();
            if c != cents {
                return c;
            }
        }
    }

    fn random_source(&mut self) -> u64 {
        self.rng.below(self.p.sources)
    }

    fn next_seq(&mut self, source: u64) -> u64 {
        let s = &mut self.seqs[source as usize];
        *s += 1;
        *s
    }

    /// Writes `r` into the line buffer.
    fn format(&mut self, r: &Rec) {
        self.line.clear();
        push_rec(&mut self.line, &mut self.tsf, r, &Mangle::None);
    }

    /// Writes a bad line into the line buffer: one of the ways a real producer goes wrong. It
    /// names an id that exists (or the next one) and the next seq of its source, consuming none.
    fn bad_line(&mut self, ts: i64) {
        let source = self.random_source();
        let r = Rec {
            id: self.rng.below(self.next_id + 1),
            key: self.random_key(),
            ts,
            cents: self.random_cents(),
            version: 0,
            source,
            seq: self.seqs[source as usize] + 1,
            delete: false,
        };
        const TEXT: [&str; 6] = [
            "garbage",
            "<html><body><h1>502 Bad Gateway</h1></body></html>",
            "ERROR: connection reset by peer",
            "[1,2,3]",
            "null",
            "id,key,ts,value",
        ];
        const BAD_TS: [&str; 6] = [
            "\"2026-13-45T25:61:00.000Z\"",
            "\"2026-02-30T10:15:00.000Z\"",
            "\"yesterday\"",
            "\"\"",
            "\"2026-11-20T10:15:00.000\"",
            "true",
        ];
        const NON_FINITE: [&str; 4] = ["NaN", "Infinity", "-Infinity", "1e400"];
        const OPS: [&str; 3] = ["merge", "truncate", "replace"];
        self.line.clear();
        let mangle = match self.rng.below(10) {
            0 => {
                push_rec(&mut self.line, &mut self.tsf, &r, &Mangle::None);
                let keep = 1 + self.rng.index(self.line.len() - 1);
                self.line.truncate(keep);
                return;
            }
            1 => {
                let text = TEXT[self.rng.index(TEXT.len())];
                self.line.extend_from_slice(text.as_bytes());
                return;
            }
            2 => Mangle::Omit([Field::Id, Field::Key, Field::Ts, Field::Value][self.rng.index(4)]),
            3 => {
                let mut text = vec![b'"'];
                push_cents(&mut text, r.cents);
                text.push(b'"');
                Mangle::Value(String::from_utf8(text).expect("ascii"))
            }
            4 | 5 => {
                // Seven fractional digits, the last one not zero.
                let frac = self.rng.below(1_000_000) * 10 + 1 + self.rng.below(9);
                Mangle::Value(format!("{}.{frac:07}", r.cents / 100))
            }
            6 => Mangle::Value(NON_FINITE[self.rng.index(NON_FINITE.len())].to_owned()),
            7 | 8 => Mangle::Ts(BAD_TS[self.rng.index(BAD_TS.len())]),
            _ => Mangle::Op(OPS[self.rng.index(OPS.len())]),
        };
        push_rec(&mut self.line, &mut self.tsf, &r, &mangle);
    }

    /// The number of lines of each kind of the events file, indexed by `E_*`.
    fn event_counts(&self) -> [u64; 3] {
        let total = self.p.events;
        let bad = count(total, self.p.bad);
        // Keep at least one original line to replay.
        let replays = if total > bad {
            count(total, self.p.replays).min(total - bad - 1)
        } else {
            0
        };
        [bad, replays, total - bad - replays]
    }

    fn events_file<W: Write>(&mut self, out: &mut Sink<W>) -> io::Result<()> {
        let total = self.p.events;
        let mut counts = self.event_counts();
        let fresh = counts[E_FRESH];
        let mut targets = self.corrections_lines().div_ceil(2).min(fresh);
        let span = i128::from(self.p.span_ms);
        let jitter = (self.p.span_ms / fresh.max(1) as i64).saturating_mul(2);
        let mut history = History::default();
        let mut j = 0u64; // fresh events so far
        for _ in 0..total {
            let mut kind = self.rng.pick(&counts);
            if kind == E_REPLAY && history.seen == 0 {
                kind = E_FRESH; // a replay needs an original; there is one still to come
            }
            counts[kind] -= 1;
            let position =
                self.p.start_ms + (span * i128::from(j) / i128::from(fresh.max(1))) as i64;
            match kind {
                E_BAD => {
                    self.bad_line(position);
                    self.bad_lines += 1;
                    out.push(&self.line)?;
                }
                E_REPLAY => out.push(&history.pick(&mut self.rng).line)?,
                _ => {
                    let rec = self.fresh(position, jitter);
                    let p = self.p.drop_seq;
                    if self.drops.as_mut().is_some_and(|r| r.chance(p)) {
                        self.dropped_lines += 1;
                        self.audit_line(self.p.audit_coverage);
                    } else {
                        out.push(&self.line)?;
                        self.audit_line(Prob::new(0.01));
                    }
                    history.add(&mut self.rng, &self.line, rec.id);
                    // Selection sampling: exactly `targets` of the fresh events, uniformly.
                    if targets > 0 && self.rng.below(fresh - j) < targets {
                        targets -= 1;
                        self.add_slot(rec);
                    }
                    j += 1;
                }
            }
        }
        Ok(())
    }

    /// With `--drop-seq`: with probability `p`, the event in the line buffer as an audit-log
    /// line, sometimes after an unrelated one. Uses the audit log's own random stream.
    fn audit_line(&mut self, p: Prob) {
        let Some((rng, audit)) = self.audit.as_mut() else {
            return;
        };
        if rng.chance(Prob::new(0.02)) {
            audit.push("2026-11-26T00:00:00.000Z INFO heartbeat ok\n".to_string());
        }
        if !rng.chance(p) {
            return;
        }
        let Ok(event) = serde_json::from_slice::<serde_json::Value>(&self.line) else {
            return;
        };
        let field = |name: &str| match &event[name] {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        audit.push(format!(
            "2026-11-26T00:00:00.000Z INFO producer={} seq={} accepted id={} key={} ts={} value={}\n",
            field("source"),
            field("seq"),
            field("id"),
            field("key"),
            field("ts"),
            field("value"),
        ));
    }

    /// A fresh event of a new id near the stream position `position` (behind it if late),
    /// written into the line buffer.
    fn fresh(&mut self, position: i64, jitter: i64) -> Rec {
        let ts = if self.rng.chance(self.p.late) {
            self.behind(position, self.p.late_min)
        } else {
            (position + self.rng.between(0, jitter)).min(self.end_ms())
        };
        let source = self.random_source();
        let rec = Rec {
            id: self.next_id,
            key: self.random_key(),
            ts,
            cents: self.random_cents(),
            version: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 2]
                [self.rng.index(20)],
            source,
            seq: self.next_seq(source),
            delete: false,
        };
        self.next_id += 1;
        self.format(&rec);
        rec
    }

    /// A time between `least` and `late_max` before `position`, not before the start.
    fn behind(&mut self, position: i64, least: i64) -> i64 {
        (position - self.rng.between(least, self.p.late_max)).max(self.p.start_ms)
    }

    /// Makes `rec` an id that corrections may touch; returns its slot. A stream keeps the last
    /// `STREAM_SLOTS` ids only, overwriting the oldest.
    fn add_slot(&mut self, rec: Rec) -> usize {
        let slot = Slot { rec, generation: 0 };
        if self.position.is_some() {
            let i = self.next_slot;
            self.next_slot = (i + 1) % STREAM_SLOTS;
            if i == self.slots.len() {
                self.slots.push(slot);
            } else {
                self.slots[i] = slot;
            }
            return i;
        }
        if rec.version >= 1 {
            self.versioned.push(self.slots.len());
        }
        self.slots.push(slot);
        self.slots.len() - 1
    }

    /// Writes the stream: the lines of both files, interleaved at random, their event times
    /// advancing together. Returns the number of lines of events kinds and of corrections kinds.
    fn stream<W: Write>(&mut self, out: &mut Sink<W>) -> io::Result<(u64, u64)> {
        let [bad, replays, fresh] = self.event_counts();
        let [c_bad, c_replays, stale, deletes, new_ids, updates] = self.correction_counts();
        let mut counts = [
            bad, replays, fresh, c_bad, c_replays, stale, deletes, new_ids, updates,
        ];
        let span = i128::from(self.p.span_ms);
        let jitter = (self.p.span_ms / fresh.max(1) as i64).saturating_mul(2);
        let mut history = History::default();
        let mut sent: Vec<Sent> = Vec::new();
        let mut next_sent = 0usize;
        let mut written = [0u64; 2];
        let mut j = 0u64; // fresh events so far
        self.position = Some(self.p.start_ms);
        while counts.iter().any(|&n| n > 0) {
            let position =
                self.p.start_ms + (span * i128::from(j) / i128::from(fresh.max(1))) as i64;
            self.position = Some(position);
            let chosen = self.rng.pick(&counts);
            // A kind impossible now (a replay with nothing to repeat, a correction with no id
            // to touch) gives its turn to a fresh event, and comes later.
            let (kind, made) = match self.stream_line(chosen, jitter, &history, &sent) {
                Some(made) => (chosen, made),
                None if counts[E_FRESH] > 0 => (E_FRESH, Made::Fresh(self.fresh(position, jitter))),
                None => {
                    // No fresh event is left to swap with: the turn, and its count, go to an
                    // update or a new id.
                    counts[chosen] -= 1;
                    let kind = CORRECTION
                        + if self.slots.is_empty() {
                            C_NEW_ID
                        } else {
                            C_UPDATE
                        };
                    counts[kind] += 1;
                    let made = self.stream_line(kind, jitter, &history, &sent);
                    (
                        kind,
                        made.expect("an update or a new id is always possible"),
                    )
                }
            };
            counts[kind] -= 1;
            written[usize::from(kind >= CORRECTION)] += 1;
            out.push(&self.line)?;
            match made {
                Made::Other => {}
                Made::Fresh(rec) => {
                    history.add(&mut self.rng, &self.line, rec.id);
                    self.add_slot(rec);
                    j += 1;
                }
                Made::Correction(slot, stale) => {
                    if !stale {
                        history.superseded(self.slots[slot].rec.id);
                    }
                    self.remember(&mut sent, &mut next_sent, slot, stale);
                }
            }
        }
        Ok((written[0], written[1]))
    }

    /// Writes a line of `kind` (`E_*`, or `CORRECTION + C_*`) into the line buffer, if one is
    /// possible now.
    fn stream_line(
        &mut self,
        kind: usize,
        jitter: i64,
        history: &History,
        sent: &[Sent],
    ) -> Option<Made> {
        let position = self.position.expect("writing a stream");
        let copy = |g: &mut Self, line: &[u8]| {
            overwrite(&mut g.line, line);
            Made::Other
        };
        match kind {
            E_BAD => {}
            E_REPLAY => {
                let line = history.pick_current(&mut self.rng)?;
                return Some(copy(self, line));
            }
            E_FRESH => return Some(Made::Fresh(self.fresh(position, jitter))),
            _ => match kind - CORRECTION {
                C_BAD => {}
                C_REPLAY => {
                    let i = self.find_replay(sent)?;
                    return Some(copy(self, &sent[i].line));
                }
                _ if self.slots.is_empty() && kind - CORRECTION != C_NEW_ID => return None,
                C_STALE => {
                    let i = (0..8)
                        .map(|_| self.rng.index(self.slots.len()))
                        .find(|&i| self.slots[i].rec.version >= 1)?;
                    return Some(Made::Correction(self.stale_of(i), true));
                }
                C_DELETE => return Some(Made::Correction(self.delete(), false)),
                C_NEW_ID => return Some(Made::Correction(self.new_id(), false)),
                _ => return Some(Made::Correction(self.update(), false)),
            },
        }
        self.bad_line(position);
        self.bad_lines += 1;
        Some(Made::Other)
    }

    /// The number of lines of each kind of the corrections file, indexed by `C_*`.
    fn correction_counts(&self) -> [u64; 6] {
        let total = self.corrections_lines();
        let bad = count(total, self.p.bad);
        let mut rest = total - bad;
        let mut take = |p: f64| {
            let n = count(total, p).min(rest);
            rest -= n;
            n
        };
        let deletes = take(self.p.deletes);
        let stale = take(self.p.stale);
        let replays = take(self.p.replays);
        let new_ids = take(NEW_ID_FRACTION);
        [bad, replays, stale, deletes, new_ids, rest]
    }

    fn corrections_file<W: Write>(&mut self, out: &mut Sink<W>) -> io::Result<()> {
        let total = self.corrections_lines();
        let mut counts = self.correction_counts();
        let mut sent: Vec<Sent> = Vec::new();
        let mut next_sent = 0usize;
        for _ in 0..total {
            let chosen = self.rng.pick(&counts);
            let replay = if chosen == C_REPLAY {
                self.find_replay(&sent)
            } else {
                None
            };
            let possible = |kind: usize, g: &Self| match kind {
                C_REPLAY => replay.is_some(),
                C_STALE => !g.versioned.is_empty(),
                C_DELETE | C_UPDATE => !g.slots.is_empty(),
                _ => true,
            };
            let kind = if possible(chosen, self) {
                counts[chosen] -= 1;
                chosen
            } else if counts[C_UPDATE] > 0 && possible(C_UPDATE, self) {
                // Swap with an update; the chosen kind comes later, once it is possible.
                counts[C_UPDATE] -= 1;
                C_UPDATE
            } else {
                counts[chosen] -= 1;
                if possible(C_UPDATE, self) {
                    C_UPDATE
                } else {
                    C_NEW_ID
                }
            };
            let (slot, stale) = match kind {
                C_BAD => {
                    let ts = self.random_ts();
                    self.bad_line(ts);
                    self.bad_lines += 1;
                    out.push(&self.line)?;
                    continue;
                }
                C_REPLAY => {
                    out.push(&sent[replay.expect("possible")].line)?;
                    continue;
                }
                C_STALE => (self.stale(), true),
                C_DELETE => (self.delete(), false),
                C_NEW_ID => (self.new_id(), false),
                _ => (self.update(), false),
            };
            out.push(&self.line)?;
            self.remember(&mut sent, &mut next_sent, slot, stale);
        }
        Ok(())
    }

    /// Keeps the correction line in the buffer, written for `slot`, as a replay candidate.
    fn remember(&self, sent: &mut Vec<Sent>, next_sent: &mut usize, slot: usize, stale: bool) {
        let (id, generation) = (self.slots[slot].rec.id, self.slots[slot].generation);
        if sent.len() < RING {
            sent.push(Sent {
                line: self.line.clone(),
                slot,
                id,
                generation,
                stale,
            });
        } else {
            let s = &mut sent[*next_sent];
            overwrite(&mut s.line, &self.line);
            (s.slot, s.id, s.generation, s.stale) = (slot, id, generation, stale);
        }
        *next_sent = (*next_sent + 1) % RING;
    }

    /// A sent correction line whose replay is unambiguous: it is still its id's current record,
    /// or it is stale (a lower version than the current one).
    fn find_replay(&mut self, sent: &[Sent]) -> Option<usize> {
        if sent.is_empty() {
            return None;
        }
        (0..8).map(|_| self.rng.index(sent.len())).find(|&i| {
            let s = &sent[i];
            let slot = &self.slots[s.slot];
            s.stale || (slot.rec.id == s.id && slot.generation == s.generation)
        })
    }

    /// A same-version correction or a new version of a known id: a new value, sometimes a new
    /// key or ts. An upsert brings back a deleted id.
    fn update(&mut self) -> usize {
        let i = self.rng.index(self.slots.len());
        let mut r = self.slots[i].rec;
        if self.rng.below(2) == 0 {
            r.version += 1;
            if r.version == 1 && self.position.is_none() {
                self.versioned.push(i);
            }
        }
        r.cents = self.other_cents(r.cents);
        if self.rng.below(5) == 0 {
            r.key = self.other_key(r.key);
        }
        if self.rng.below(5) == 0 {
            r.ts = self.moved_ts(0);
        }
        r.delete = false;
        self.send(i, r)
    }

    /// A delete at the id's current version, carrying its current key, ts and value.
    fn delete(&mut self) -> usize {
        let mut i = self.rng.index(self.slots.len());
        for _ in 0..8 {
            if !self.slots[i].rec.delete {
                break;
            }
            i = self.rng.index(self.slots.len());
        }
        let mut r = self.slots[i].rec;
        r.delete = true;
        self.send(i, r)
    }

    /// A late event for an id never seen before.
    fn new_id(&mut self) -> usize {
        let source = self.random_source();
        let rec = Rec {
            id: self.next_id,
            key: self.random_key(),
            ts: self.moved_ts(self.p.late_min),
            cents: self.random_cents(),
            version: u64::from(self.rng.below(5) == 0),
            source,
            seq: self.next_seq(source),
            delete: false,
        };
        self.next_id += 1;
        self.format(&rec);
        self.add_slot(rec)
    }

    /// A lower version than the id's current one, with a different value (and sometimes another
    /// key or ts): a correct consumer ignores it. Leaves the id's state alone.
    fn stale(&mut self) -> usize {
        let i = self.versioned[self.rng.index(self.versioned.len())];
        self.stale_of(i)
    }

    /// A stale record of slot `i`, whose version is at least 1.
    fn stale_of(&mut self, i: usize) -> usize {
        let cur = self.slots[i].rec;
        let mut r = cur;
        r.version = self.rng.below(cur.version);
        r.cents = self.other_cents(cur.cents);
        r.delete = false;
        if self.rng.below(4) == 0 {
            r.key = self.other_key(r.key);
        }
        if self.rng.below(4) == 0 {
            r.ts = self.moved_ts(0);
        }
        r.seq = self.next_seq(r.source);
        self.format(&r);
        i
    }

    /// The time of a corrected or late record: anywhere in the span for the files; in a stream,
    /// between `least` and `--max-delay` behind the stream position.
    fn moved_ts(&mut self, least: i64) -> i64 {
        match self.position {
            None => self.random_ts(),
            Some(position) => self.behind(position, least),
        }
    }

    /// Sends `r` as the new current record of slot `i`, with the next seq of its source.
    fn send(&mut self, i: usize, mut r: Rec) -> usize {
        r.seq = self.next_seq(r.source);
        self.format(&r);
        let slot = &mut self.slots[i];
        slot.rec = r;
        slot.generation += 1;
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use serde_json::value::RawValue;
    use std::collections::{BTreeMap, HashMap, HashSet};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: GenArgs,
    }

    fn parse(extra: &[&str]) -> GenArgs {
        let argv = ["amend-gen", "--out", "unused"].iter().chain(extra);
        Cli::try_parse_from(argv).expect("valid arguments").args
    }

    fn gen_bytes(args: &GenArgs) -> (Vec<u8>, Vec<u8>, GenReport) {
        let (mut e, mut c) = (Vec::new(), Vec::new());
        let report = generate(args, &mut e, &mut c).expect("generate");
        (e, c, report)
    }

    #[test]
    fn drop_seq_leaves_out_lines_and_keeps_the_rest_identical() {
        let (events, corrections, report) = gen_bytes(&parse(&["--events", "5000"]));
        let (dropped, same, with_drops) =
            gen_bytes(&parse(&["--events", "5000", "--drop-seq", "0.05"]));
        assert_eq!(report.dropped_lines, 0);
        assert!(
            (150..350).contains(&with_drops.dropped_lines),
            "{with_drops:?}"
        );
        assert_eq!(corrections, same);
        let all = lines(&events);
        let kept = lines(&dropped);
        assert_eq!(
            all.len() as u64,
            kept.len() as u64 + with_drops.dropped_lines
        );
        // The kept lines are the full file's lines in order, minus the dropped ones.
        let mut rest = all.iter();
        for line in &kept {
            assert!(
                rest.any(|l| l == line),
                "{line} is not in the full file in order"
            );
        }
    }

    fn lines(bytes: &[u8]) -> Vec<&str> {
        let text = std::str::from_utf8(bytes).expect("utf-8");
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "file ends with a newline"
        );
        text.lines().collect()
    }

    /// A record as a consumer keeping docs/format.md section 1 and 5 (scale 6) reads it.
    #[derive(Debug)]
    struct Read {
        id: String,
        key: String,
        ts: i64,
        value: String,
        version: Option<u64>,
        source: Option<String>,
        seq: Option<u64>,
        delete: bool,
    }

    fn is_decimal(text: &str, max_frac: usize) -> bool {
        let digits = text.strip_prefix('-').unwrap_or(text);
        let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
        !int.is_empty()
            && int.bytes().all(|b| b.is_ascii_digit())
            && !frac.is_empty()
            && frac.len() <= max_frac
            && frac.bytes().all(|b| b.is_ascii_digit())
    }

    /// Reads a line, or says why it is a bad record.
    fn read(line: &str) -> Result<Read, String> {
        let map: BTreeMap<String, Box<RawValue>> =
            serde_json::from_str(line).map_err(|e| format!("json: {e}"))?;
        let get = |name: &str| map.get(name).map(|raw| raw.get());
        let string = |name: &str| -> Result<Option<String>, String> {
            match get(name) {
                None => Ok(None),
                Some(raw) => serde_json::from_str::<String>(raw)
                    .map(Some)
                    .map_err(|_| format!("{name}: not a string")),
            }
        };
        let int = |name: &str| -> Result<Option<u64>, String> {
            match get(name) {
                None => Ok(None),
                Some(raw) => raw
                    .parse()
                    .map(Some)
                    .map_err(|_| format!("{name}: not a u64")),
            }
        };
        let id = match get("id") {
            None => return Err("missing id".into()),
            Some(raw) if raw.starts_with('"') => string("id")?.expect("present"),
            Some(raw) => raw
                .parse::<i64>()
                .map_err(|_| "id: wrong type")?
                .to_string(),
        };
        let key = string("key")?.ok_or("missing key")?;
        let ts = string("ts")?.ok_or("missing ts")?;
        let ts = chrono::DateTime::parse_from_rfc3339(&ts)
            .map_err(|e| format!("ts: {e}"))?
            .timestamp_millis();
        let value = get("value").ok_or("missing value")?.to_owned();
        if !is_decimal(&value, 6) {
            return Err(format!("value: not a decimal of scale 6: {value}"));
        }
        let delete = match string("op")?.as_deref() {
            None | Some("upsert") => false,
            Some("delete") => true,
            Some(op) => return Err(format!("unknown op {op}")),
        };
        Ok(Read {
            id,
            key,
            ts,
            value,
            version: int("version")?,
            source: string("source")?,
            seq: int("seq")?,
            delete,
        })
    }

    #[derive(Default, Debug)]
    struct Stats {
        lines: u64,
        bad: u64,
        replays: u64,
        late: u64,
        new_ids: u64,
        stale: u64,
        deletes: u64,
        corrections: u64,
        new_versions: u64,
        bad_reasons: BTreeMap<String, u64>,
    }

    /// The current record of an id, as docs/format.md section 3 resolves it.
    struct Current {
        version: u64,
        value: String,
        line: String,
    }

    /// Checks both files in input order, as a consumer reads them.
    #[derive(Default)]
    struct Checker {
        last_seq: HashMap<String, u64>,
        seen: HashSet<String>,
        ids: HashMap<String, Current>,
        max_ts: i64,
    }

    impl Checker {
        fn check(&mut self, text: &[u8], corrections: bool, args: &GenArgs) -> Stats {
            let start = chrono::DateTime::parse_from_rfc3339(&args.start).unwrap();
            let start = start.timestamp_millis();
            let span = parse_span(&args.span).unwrap();
            let mut st = Stats::default();
            for line in lines(text) {
                st.lines += 1;
                let r = match read(line) {
                    Ok(r) => r,
                    Err(reason) => {
                        st.bad += 1;
                        let kind = reason.split([':', ' ']).next().unwrap().to_owned();
                        *st.bad_reasons.entry(kind).or_default() += 1;
                        continue;
                    }
                };
                // What the generator writes when it writes a good record.
                assert!(is_decimal(&r.value, 2), "value {} in {line}", r.value);
                assert!(!r.value.contains('.') || !r.value.ends_with('0'), "{line}");
                assert!(r.id.starts_with('e') && r.id.len() >= 8, "{line}");
                assert!(r.key.starts_with('k') && r.key.len() >= 5, "{line}");
                assert!(
                    (start..start + span).contains(&r.ts),
                    "ts out of span: {line}"
                );
                let version = r.version.expect("version");
                let source = r.source.clone().expect("source");
                let seq = r.seq.expect("seq");
                let last = self.last_seq.entry(source).or_default();
                if self.seen.contains(line) {
                    st.replays += 1;
                    assert!(seq <= *last, "a replay repeats a seq: {line}");
                    let cur = &self.ids[&r.id];
                    assert!(
                        cur.line == line || version < cur.version,
                        "a replay is of the current record or of a stale one: {line}"
                    );
                    continue;
                }
                assert_eq!(seq, *last + 1, "seq per source increases by one: {line}");
                *last = seq;
                self.seen.insert(line.to_owned());
                if r.ts < self.max_ts - span / 100 {
                    st.late += 1;
                }
                self.max_ts = self.max_ts.max(r.ts);
                let Some(cur) = self.ids.get_mut(&r.id) else {
                    assert!(!r.delete, "a delete of an unknown id: {line}");
                    if corrections {
                        st.new_ids += 1;
                    }
                    let c = Current {
                        version,
                        value: r.value,
                        line: line.to_owned(),
                    };
                    self.ids.insert(r.id, c);
                    continue;
                };
                assert!(
                    corrections,
                    "an id appears twice in the events file: {line}"
                );
                if version < cur.version {
                    assert!(!r.delete, "no stale deletes: {line}");
                    assert_ne!(
                        r.value, cur.value,
                        "a stale record has another value: {line}"
                    );
                    st.stale += 1;
                    continue;
                }
                if r.delete {
                    assert_eq!(
                        version, cur.version,
                        "a delete is at the current version: {line}"
                    );
                    st.deletes += 1;
                } else if version == cur.version {
                    assert_ne!(r.value, cur.value, "a correction changes the value: {line}");
                    st.corrections += 1;
                } else {
                    assert_eq!(
                        version,
                        cur.version + 1,
                        "a new version is one more: {line}"
                    );
                    st.new_versions += 1;
                }
                *cur = Current {
                    version,
                    value: r.value,
                    line: line.to_owned(),
                };
            }
            st
        }
    }

    fn within(actual: u64, expected: f64, slack: f64) -> bool {
        (actual as f64 - expected).abs() <= expected * slack + 3.0
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let args = parse(&["--events", "5000", "--corrections", "0.1", "--bad", "0.01"]);
        let a = gen_bytes(&args);
        let b = gen_bytes(&args);
        assert_eq!(a, b);
        let c = gen_bytes(&GenArgs {
            seed: 7,
            ..args.clone()
        });
        assert_ne!(a.0, c.0);
        assert_ne!(a.1, c.1);
    }

    #[test]
    fn pinned_output() {
        // Byte-for-byte stability across versions and machines: change it only on purpose.
        let args = parse(&[
            "--events",
            "6",
            "--keys",
            "5",
            "--sources",
            "2",
            "--span",
            "1h",
            "--corrections",
            "0.5",
            "--seed",
            "9",
            "--bad",
            "0.2",
            "--replays",
            "0.2",
        ]);
        let (e, c, report) = gen_bytes(&args);
        let events = [
            r#"{"id":"e0000000","key":"k0000","ts":"2026-11-20T00:00:00.000Z","version":0,"source":"p01","seq":1}"#,
            r#"{"id":"e0000000","key":"k0004","ts":"2026-11-20T00:05:32.503Z","value":795,"version":0,"source":"p01","seq":1}"#,
            r#"{"id":"e0000001","key":"k0004","ts":"2026-11-20T00:41:12.186Z","value":948.51,"version":0,"source":"p01","seq":2}"#,
            r#"{"id":"e0000002","key":"k0000","ts":"2026-11-20T00:57:23.724Z","value":837.45,"version":0,"source":"p01","seq":3}"#,
            r#"{"id":"e0000003","key":"k0003","ts":"2026-11-20T00:51:24.019Z","value":470.75,"version":0,"source":"p00","seq":1}"#,
            r#"{"id":"e0000000","key":"k0004","ts":"2026-11-20T00:05:32.503Z","value":795,"version":0,"source":"p01","seq":1}"#,
        ];
        let corrections = [
            r#"{"id":"e0000003","key":"k0003","ts":"2026-11-20T00:51:24.019Z","value":347.08,"version":1,"source":"p00","seq":2}"#,
            r#"{"id":"e0000001","key":"k0003","ts":"2026-11-20T00:32:23.209Z","value":"567.37","version":0,"source":"p01","seq":4}"#,
            r#"{"id":"e0000003","key":"k0003","ts":"2026-11-20T00:51:24.019Z","value":347.08,"version":1,"source":"p00","seq":2}"#,
        ];
        assert_eq!(lines(&e), events);
        assert_eq!(lines(&c), corrections);
        assert_eq!(
            (
                report.event_lines,
                report.correction_lines,
                report.bad_lines
            ),
            (6, 3, 2)
        );
    }

    #[test]
    fn consistent_history_with_the_fractions_asked() {
        let args = parse(&[
            "--events",
            "20000",
            "--keys",
            "50",
            "--sources",
            "5",
            "--corrections",
            "0.2",
            "--bad",
            "0.01",
            "--replays",
            "0.03",
            "--late",
            "0.1",
        ]);
        let (e, c, report) = gen_bytes(&args);
        assert_eq!(report.event_lines, 20_000);
        assert_eq!(report.correction_lines, 4_000);
        assert_eq!(report.events_path, PathBuf::new());
        let mut checker = Checker::default();
        let ev = checker.check(&e, false, &args);
        let co = checker.check(&c, true, &args);
        assert_eq!(ev.lines, report.event_lines);
        assert_eq!(co.lines, report.correction_lines);
        assert_eq!(ev.bad + co.bad, report.bad_lines);
        assert!(within(ev.bad, 200.0, 0.2), "{ev:?}");
        assert!(within(co.bad, 40.0, 0.3), "{co:?}");
        assert!(within(ev.replays, 600.0, 0.2), "{ev:?}");
        assert!(within(ev.late, 0.1 * 19_200.0, 0.25), "{ev:?}");
        assert!(within(co.stale, 400.0, 0.2), "{co:?}");
        assert!(within(co.deletes, 400.0, 0.2), "{co:?}");
        assert!(within(co.replays, 120.0, 0.3), "{co:?}");
        assert!(within(co.new_ids, 80.0, 0.3), "{co:?}");
        assert!(co.corrections > 1000 && co.new_versions > 1000, "{co:?}");
        for kind in ["json", "missing", "value", "ts", "unknown"] {
            assert!(
                ev.bad_reasons.get(kind).copied().unwrap_or(0) >= 5,
                "{ev:?}"
            );
        }
    }

    #[test]
    fn every_bad_line_is_bad() {
        let args = parse(&["--events", "10"]);
        let params = Params::new(&args).unwrap();
        let mut g = Generator::new(&params, 1);
        g.next_id = 1000;
        let mut reasons = BTreeMap::<String, u64>::new();
        for _ in 0..5000 {
            g.bad_line(params.start_ms + 1234);
            let line = std::str::from_utf8(&g.line).unwrap();
            assert!(!line.contains('\n') && !line.is_empty());
            let reason = read(line).expect_err(line);
            *reasons
                .entry(reason.split(':').next().unwrap().to_owned())
                .or_default() += 1;
        }
        for kind in [
            "json",
            "missing id",
            "missing key",
            "missing ts",
            "missing value",
            "value",
        ] {
            assert!(reasons.contains_key(kind), "{kind} in {reasons:?}");
        }
        assert!(reasons.contains_key("ts") && reasons.keys().any(|k| k.starts_with("unknown op")));
        assert_eq!(g.next_id, 1000, "bad lines consume no id");
        assert!(g.seqs.iter().all(|&s| s == 0), "bad lines consume no seq");
    }

    #[test]
    fn edge_parameters() {
        let cases: &[&[&str]] = &[
            &["--events", "1"],
            &[
                "--events",
                "1",
                "--corrections",
                "1",
                "--stale",
                "1",
                "--deletes",
                "1",
            ],
            &["--events", "50", "--bad", "1", "--corrections", "1"],
            &["--events", "50", "--replays", "1", "--corrections", "1"],
            &[
                "--events",
                "200",
                "--keys",
                "1",
                "--sources",
                "1",
                "--span",
                "1ms",
            ],
            &[
                "--events",
                "300",
                "--corrections",
                "1",
                "--stale",
                "0.5",
                "--deletes",
                "0.5",
            ],
            &[
                "--events",
                "100",
                "--late",
                "1",
                "--span",
                "1000d",
                "--start",
                "1969-12-31T23:00:00-01:00",
            ],
            &[
                "--events",
                "100",
                "--late",
                "0",
                "--replays",
                "0",
                "--bad",
                "0",
                "--corrections",
                "0",
            ],
        ];
        for case in cases {
            let args = parse(case);
            let (e, c, report) = gen_bytes(&args);
            let mut checker = Checker::default();
            let ev = checker.check(&e, false, &args);
            let co = checker.check(&c, true, &args);
            assert_eq!(ev.lines, args.events, "{case:?}");
            assert_eq!(co.lines, count(args.events, args.corrections), "{case:?}");
            assert_eq!(ev.bad + co.bad, report.bad_lines, "{case:?}");
        }
        let args = parse(&["--events", "50", "--bad", "1", "--corrections", "1"]);
        assert_eq!(gen_bytes(&args).2.bad_lines, 100);
    }

    fn stream_bytes(args: &GenArgs) -> (Vec<u8>, GenReport) {
        let mut out = Vec::new();
        let report = stream(args, &mut out).expect("stream");
        (out, report)
    }

    #[test]
    fn a_stream_is_deterministic_and_holds_both_files_lines() {
        let args = parse(&[
            "--events",
            "30000",
            "--keys",
            "50",
            "--sources",
            "5",
            "--corrections",
            "0.2",
            "--bad",
            "0.01",
            "--replays",
            "0.03",
            "--late",
            "0.1",
            "--max-delay",
            "10m",
        ]);
        let (s, report) = stream_bytes(&args);
        assert_eq!(s, stream_bytes(&args).0);
        assert_ne!(
            s,
            stream_bytes(&GenArgs {
                seed: 8,
                ..args.clone()
            })
            .0
        );
        assert_eq!(report.event_lines + report.correction_lines, 36_000);
        assert!(report.event_lines.abs_diff(30_000) < 30, "{report:?}");
        // Every line has one meaning, read as one stream in order.
        let mut checker = Checker::default();
        let st = checker.check(&s, true, &args);
        assert_eq!(st.lines, 36_000);
        assert_eq!(st.bad, report.bad_lines);
        assert!(within(st.bad, 360.0, 0.2), "{st:?}");
        assert!(within(st.replays, 900.0 + 120.0, 0.3), "{st:?}");
        assert!(within(st.stale, 600.0, 0.2), "{st:?}");
        assert!(within(st.deletes, 600.0, 0.2), "{st:?}");
        assert!(st.corrections > 1000 && st.new_versions > 1000, "{st:?}");
        // Corrections are spread through the stream, not gathered at its end.
        let text = std::str::from_utf8(&s).unwrap();
        let half: Vec<&str> = text.lines().take(18_000).collect();
        let mut first_half = Checker::default();
        let st = first_half.check((half.join("\n") + "\n").as_bytes(), true, &args);
        assert!(st.deletes > 200 && st.stale > 200, "{st:?}");
    }

    #[test]
    fn a_stream_advances_in_event_time_in_bounded_memory() {
        let args = parse(&[
            "--events",
            "100000",
            "--span",
            "100d",
            "--max-delay",
            "30m",
            "--corrections",
            "0.05",
        ]);
        let params = Params::new(&args).unwrap();
        assert_eq!((params.late_min, params.late_max), (180_000, 1_800_000));
        let mut g = Generator::new(&params, args.seed);
        let mut out = Vec::new();
        let mut sink = Sink::new(&mut out);
        let (events, corrections) = g.stream(&mut sink).unwrap();
        sink.finish().unwrap();
        assert_eq!((events, corrections), (100_000, 5_000));
        assert!(g.slots.len() <= STREAM_SLOTS && g.versioned.is_empty());
        // How far behind the furthest time so far a good line may be: an event of a new id at
        // most --max-delay (and the jitter of the furthest one); a correction also as far as
        // the times of the recent ids that corrections touch reach back.
        let spacing = 100 * DAY_MS / 95_000; // between fresh events: not bad lines or replays
        let event_bound = params.late_max + 2 * spacing;
        let correction_bound = event_bound + STREAM_SLOTS as i64 * spacing;
        let (mut max_ts, mut ids, mut seen) = (i64::MIN, HashSet::new(), HashSet::new());
        let mut last_decile = i64::MIN;
        for (n, line) in lines(&out).into_iter().enumerate() {
            // A replay repeats a line of any time; every other line is near the stream's time.
            let Some(r) = read(line).ok().filter(|_| seen.insert(line)) else {
                continue;
            };
            let bound = if ids.insert(r.id) {
                event_bound
            } else {
                correction_bound
            };
            assert!(
                max_ts == i64::MIN || r.ts >= max_ts - bound,
                "{line} is too far behind {max_ts}"
            );
            max_ts = max_ts.max(r.ts);
            if n % 10_000 == 0 {
                assert!(max_ts > last_decile, "event time advances");
                last_decile = max_ts;
            }
        }
    }

    #[test]
    fn max_delay_sets_how_late_late_events_are() {
        let base = parse(&["--events", "10", "--span", "1d"]);
        let p = Params::new(&base).unwrap();
        assert_eq!((p.late_min, p.late_max), (DAY_MS / 50, DAY_MS / 5));
        let p = Params::new(&GenArgs {
            max_delay: Some("5ms".into()),
            ..base.clone()
        })
        .unwrap();
        assert_eq!((p.late_min, p.late_max), (1, 5));
        let err = Params::new(&GenArgs {
            max_delay: Some("0s".into()),
            ..base
        })
        .err()
        .unwrap();
        assert!(err.to_string().contains("--max-delay"), "{err}");
    }

    #[test]
    fn run_writes_files_into_a_new_directory() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("a/b");
        let args = GenArgs {
            out: out.clone(),
            ..parse(&["--events", "1000", "--corrections", "0.1"])
        };
        let report = run(&args).unwrap();
        assert_eq!(report.events_path, out.join("events.jsonl"));
        assert_eq!(report.corrections_path, out.join("corrections.jsonl"));
        let e = std::fs::read(&report.events_path).unwrap();
        let c = std::fs::read(&report.corrections_path).unwrap();
        assert_eq!(lines(&e).len() as u64, report.event_lines);
        assert_eq!(lines(&c).len() as u64, report.correction_lines);
        assert_eq!((e, c), {
            let (e, c, _) = gen_bytes(&args);
            (e, c)
        });
    }

    #[test]
    fn invalid_arguments_name_the_flag_and_the_value() {
        let base = parse(&[]);
        let cases: Vec<(GenArgs, &str, &str)> = vec![
            (
                GenArgs {
                    events: 0,
                    ..base.clone()
                },
                "--events",
                "0",
            ),
            (
                GenArgs {
                    keys: 0,
                    ..base.clone()
                },
                "--keys",
                "0",
            ),
            (
                GenArgs {
                    sources: 0,
                    ..base.clone()
                },
                "--sources",
                "0",
            ),
            (
                GenArgs {
                    sources: 2_000_000,
                    ..base.clone()
                },
                "--sources",
                "2000000",
            ),
            (
                GenArgs {
                    late: 1.5,
                    ..base.clone()
                },
                "--late",
                "1.5",
            ),
            (
                GenArgs {
                    replays: -0.1,
                    ..base.clone()
                },
                "--replays",
                "-0.1",
            ),
            (
                GenArgs {
                    corrections: 2.0,
                    ..base.clone()
                },
                "--corrections",
                "2",
            ),
            (
                GenArgs {
                    stale: f64::NAN,
                    ..base.clone()
                },
                "--stale",
                "NaN",
            ),
            (
                GenArgs {
                    deletes: 1.01,
                    ..base.clone()
                },
                "--deletes",
                "1.01",
            ),
            (
                GenArgs {
                    bad: 7.0,
                    ..base.clone()
                },
                "--bad",
                "7",
            ),
            (
                GenArgs {
                    span: "1w".into(),
                    ..base.clone()
                },
                "--span",
                "`1w`",
            ),
            (
                GenArgs {
                    span: "0s".into(),
                    ..base.clone()
                },
                "--span",
                "`0s`",
            ),
            (
                GenArgs {
                    span: "ms".into(),
                    ..base.clone()
                },
                "--span",
                "`ms`",
            ),
            (
                GenArgs {
                    span: "-5m".into(),
                    ..base.clone()
                },
                "--span",
                "`-5m`",
            ),
            (
                GenArgs {
                    span: "99999999999999d".into(),
                    ..base.clone()
                },
                "--span",
                "99999999999999d",
            ),
            (
                GenArgs {
                    start: "2026-11-20".into(),
                    ..base.clone()
                },
                "--start",
                "`2026-11-20`",
            ),
            (
                GenArgs {
                    start: "9999-12-31T12:00:00Z".into(),
                    ..base.clone()
                },
                "--start",
                "9999-12-31",
            ),
        ];
        for (args, flag, value) in cases {
            let err = format!(
                "{:#}",
                generate(&args, &mut io::sink(), &mut io::sink()).unwrap_err()
            );
            assert!(
                err.contains(flag) && err.contains(value),
                "{flag} {value}: {err}"
            );
            let err = format!("{:#}", run(&args).unwrap_err());
            assert!(err.contains(flag), "{err}");
        }
        assert!(
            !std::path::Path::new("unused").exists(),
            "run validates before creating --out"
        );
    }

    #[test]
    fn spans() {
        assert_eq!(parse_span("500ms").unwrap(), 500);
        assert_eq!(parse_span("30s").unwrap(), 30_000);
        assert_eq!(parse_span("5m").unwrap(), 300_000);
        assert_eq!(parse_span("1h").unwrap(), 3_600_000);
        assert_eq!(parse_span("1d").unwrap(), 86_400_000);
        for bad in ["", "1", "d", "1.5h", "1 h", "+1h", "1H", "1hh"] {
            assert!(parse_span(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timestamps_match_chrono() {
        assert_eq!(
            time::MIN_MILLIS,
            chrono::DateTime::parse_from_rfc3339("0001-01-01T00:00:00Z")
                .unwrap()
                .timestamp_millis()
        );
        assert_eq!(
            END_MS - 1,
            chrono::DateTime::parse_from_rfc3339("9999-12-31T23:59:59.999Z")
                .unwrap()
                .timestamp_millis()
        );
        let mut rng = Random(ChaCha8Rng::seed_from_u64(3));
        let mut tsf = TsFormat::new();
        let mut buf = Vec::new();
        let fixed = [
            time::MIN_MILLIS,
            END_MS - 1,
            -1,
            0,
            1,
            1_795_132_800_000,
            -86_400_001,
        ];
        let random = (0..20_000).map(|i| {
            if i % 2 == 0 {
                rng.between(time::MIN_MILLIS, END_MS - 1)
            } else {
                rng.between(-1 << 36, 1 << 36)
            }
        });
        for ms in fixed.into_iter().chain(random) {
            buf.clear();
            tsf.push(&mut buf, ms);
            let want = chrono::DateTime::from_timestamp_millis(ms)
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            assert_eq!(std::str::from_utf8(&buf).unwrap(), want);
        }
    }

    #[test]
    fn values_are_exact_decimal_text() {
        let text = |cents| {
            let mut buf = Vec::new();
            push_cents(&mut buf, cents);
            String::from_utf8(buf).unwrap()
        };
        assert_eq!(text(1250), "12.5");
        assert_eq!(text(-307), "-3.07");
        assert_eq!(text(10_000), "100");
        assert_eq!(text(0), "0");
        assert_eq!(text(-5), "-0.05");
        assert_eq!(text(-50), "-0.5");
        assert_eq!(text(1), "0.01");
        assert_eq!(text(i64::MIN), "-92233720368547758.08");
        let mut buf = Vec::new();
        push_padded(&mut buf, 42, 4);
        push_padded(&mut buf, 123_456, 2);
        push_padded(&mut buf, 0, 1);
        push_u64(&mut buf, u64::MAX);
        assert_eq!(buf, b"0042123456018446744073709551615");
    }
}
