//! Command-line flags, as clap parses them. [`crate::config`] validates them.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::r#gen::GenArgs;

/// Windowed aggregates that stay correct when events arrive late, twice, or wrong.
///
/// amend keeps keyed, windowed aggregates in a differential dataflow: a late event, a replayed
/// duplicate, a corrected or deleted event enters as a delta, and only the aggregates it
/// affects are retracted and re-emitted — the same answer as a full recompute.
#[derive(Parser, Debug)]
#[command(name = "amend", version, propagate_version = true)]
pub struct Cli {
    /// The pipeline to run.
    #[command(subcommand)]
    pub command: Command,
}

/// amend's pipelines.
// Parsed once per process: the size of its largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Aggregate events per (window, key): count, sum, min, max, mean.
    ///
    /// Reads the --input files, then the --corrections files, one epoch per file, resolves each
    /// id to its current record (greatest version, then latest position; deletes retract),
    /// and writes into --out: changelog.jsonl (per epoch, the rows that changed), snapshot.jsonl
    /// (or .csv; the final table), dead_letter.jsonl (every bad record, with file, line and
    /// reason), digests.json (SHA-256 of the table and of each window) and summary.json.
    ///
    /// Example: amend aggregate --input events.jsonl --corrections fixes.jsonl --window tumbling:1m --out out/
    Aggregate(AggregateArgs),
    /// Detect gaps in the producers' sequence numbers: missing ranges, duplicates, lagging sources.
    ///
    /// Reads the --input files, then the --corrections files, one epoch per file, like
    /// `amend aggregate`. Every accepted record with a `source` and a `seq` (replays,
    /// corrections and deletes included) says its producer used that number. Writes into --out:
    /// gaps.jsonl (per source, the runs of numbers missing between the first and last seen),
    /// gaps_changelog.jsonl (per epoch, the gaps that appeared or were filled), duplicates.jsonl
    /// (numbers carried by more than one id), gaps_summary.json (totals and lagging sources),
    /// dead_letter.jsonl and epochs.jsonl.
    ///
    /// Example: amend gaps --input events.jsonl --corrections fixes.jsonl --out gaps/
    Gaps(GapsArgs),
    /// Generate a deterministic synthetic event history: events.jsonl and corrections.jsonl.
    ///
    /// Events come in producer order with a share of late events, exact replays and bad lines;
    /// corrections hold same-version fixes, new versions, stale versions and deletes.
    ///
    /// With --out -, one stream goes to stdout instead: both files' lines interleaved, in
    /// constant memory, event time advancing through it.
    ///
    /// Example: amend gen --events 100000 --keys 50 --out data/
    Gen(GenArgs),
    /// Digest a snapshot file (docs/format.md section 7): the table digest and, with --out, digests.json.
    ///
    /// FILE is a snapshot in JSON Lines (.jsonl, .ndjson, .json) or CSV (.csv), optionally .gz:
    /// amend's own, or an export made elsewhere in the same shape, in any row order, with
    /// columns renamed by the --*-field flags. Decimals are read exactly at --scale, so `12.50`
    /// and `12.5` digest the same; `mean` is not part of the digest. A bad or duplicate row is an
    /// error naming its line (exit 1).
    ///
    /// Example: amend digest export.csv --out export-digests.json
    Digest(DigestArgs),
    /// Compare a published table with the correct one: exit 0 if it matches, 1 if not, 2 on error.
    ///
    /// Runs `amend aggregate` over the inputs (every flag of it applies, --follow included)
    /// and compares its table with the --published rows (a snapshot-format file, JSON Lines or
    /// CSV, optionally .gz, columns renamed by the --published-*-field flags). Besides the
    /// aggregate's outputs it writes into --out: reconcile.jsonl (per (window, key): match,
    /// mismatch with published and correct values and their delta, missing, or extra),
    /// corrections_out.jsonl (the changelog that turns the published table into the correct
    /// one: retractions, then insertions), upserts_out.jsonl (the same as upserts and deletes
    /// by (window, key)), reconcile_summary.json (counts by kind, digests of both tables) and
    /// report.html (a self-contained page: summary, timeline, largest discrepancies,
    /// digests). With --follow, reconcile_changelog.jsonl gets each epoch's changes of the
    /// comparison as late events and corrections arrive.
    ///
    /// Example: amend reconcile --input events.jsonl --published published.csv --tolerance 0.01 --out rec/
    Reconcile(Box<ReconcileArgs>),
    /// Compare two results: exit 0 if equal, 1 if different (listing the differing windows), 2 on error.
    ///
    /// A and B are each a digests.json (a .json file holding the `table` and `windows` of
    /// `amend aggregate`'s digests.json) or a snapshot file, digested as `amend digest` does.
    /// Prints `equal: <table digest>`, or `different:` and, per differing window, its start
    /// and end and its digest in A and in B (`-` where a side has no rows in it). The window
    /// lists are compared by one merge walk, in time proportional to the number of windows.
    ///
    /// Example: amend verify out/digests.json warehouse-export.csv
    Verify(VerifyArgs),
    /// List the checkpoints of a --checkpoint-dir, newest first: epoch, time written, inputs and positions, bytes, and whether each is intact.
    ///
    /// Example: amend checkpoints ckpt/
    Checkpoints(CheckpointsArgs),
}

/// Flags of `amend checkpoints`.
#[derive(clap::Args, Debug, Clone)]
pub struct CheckpointsArgs {
    /// The checkpoint directory.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,

    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// How snapshot files are read, for `amend digest` and `amend verify`.
#[derive(clap::Args, Debug, Clone)]
pub struct SnapshotReadArgs {
    /// Name of the window-start column (RFC 3339, or epoch milliseconds).
    #[arg(
        long,
        value_name = "NAME",
        default_value = "window_start",
        help_heading = "Snapshot"
    )]
    pub window_start_field: String,

    /// Name of the window-end column (RFC 3339, or epoch milliseconds).
    #[arg(
        long,
        value_name = "NAME",
        default_value = "window_end",
        help_heading = "Snapshot"
    )]
    pub window_end_field: String,

    /// Name of the group-key column.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "key",
        help_heading = "Snapshot"
    )]
    pub key_field: String,

    /// Name of the count column.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "count",
        help_heading = "Snapshot"
    )]
    pub count_field: String,

    /// Name of the sum column.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "sum",
        help_heading = "Snapshot"
    )]
    pub sum_field: String,

    /// Name of the min column.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "min",
        help_heading = "Snapshot"
    )]
    pub min_field: String,

    /// Name of the max column.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "max",
        help_heading = "Snapshot"
    )]
    pub max_field: String,

    /// Fractional digits decimals are read with (0 to 18); a value with more significant digits is an error.
    #[arg(
        long,
        value_name = "DIGITS",
        default_value_t = 6,
        help_heading = "Snapshot"
    )]
    pub scale: u32,
}

/// Flags of `amend digest`.
#[derive(clap::Args, Debug, Clone)]
pub struct DigestArgs {
    /// The snapshot file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Also write the digests in the digests.json format to this file.
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub out: Option<PathBuf>,

    /// How the snapshot is read.
    #[command(flatten)]
    pub snapshot: SnapshotReadArgs,
}

/// Flags of `amend verify`.
#[derive(clap::Args, Debug, Clone)]
pub struct VerifyArgs {
    /// The first result: a digests.json or a snapshot file.
    #[arg(value_name = "A")]
    pub a: PathBuf,

    /// The second result: a digests.json or a snapshot file.
    #[arg(value_name = "B")]
    pub b: PathBuf,

    /// How snapshot files are read.
    #[command(flatten)]
    pub snapshot: SnapshotReadArgs,
}

/// Flags of `amend reconcile`: those of `amend aggregate`, and the published table.
#[derive(clap::Args, Debug, Clone)]
pub struct ReconcileArgs {
    /// The aggregate job whose table is the correct one.
    #[command(flatten)]
    pub aggregate: AggregateArgs,

    /// The published table.
    #[command(flatten)]
    pub published: PublishedArgs,
}

/// The published table of `amend reconcile` and how it is compared.
#[derive(clap::Args, Debug, Clone)]
pub struct PublishedArgs {
    /// The rows another system published, in the snapshot format: JSON Lines (.jsonl, .ndjson, .json) or CSV (.csv), optionally .gz.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "explain",
        help_heading = "Reconcile"
    )]
    pub published: Option<PathBuf>,

    /// Largest difference of sum, min, max or mean still counted as a match (counts must be equal); for systems that rounded.
    #[arg(
        long,
        value_name = "DECIMAL",
        default_value = "0",
        help_heading = "Reconcile"
    )]
    pub tolerance: String,

    /// Name of the published window-start column (RFC 3339, or epoch milliseconds).
    #[arg(
        long,
        value_name = "NAME",
        default_value = "window_start",
        help_heading = "Reconcile"
    )]
    pub published_window_start_field: String,

    /// Name of the published window-end column (RFC 3339, or epoch milliseconds).
    #[arg(
        long,
        value_name = "NAME",
        default_value = "window_end",
        help_heading = "Reconcile"
    )]
    pub published_window_end_field: String,

    /// Name of the published group-key column.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "key",
        help_heading = "Reconcile"
    )]
    pub published_key_field: String,

    /// Name of the published count column.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "count",
        help_heading = "Reconcile"
    )]
    pub published_count_field: String,

    /// Name of the published sum column.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "sum",
        help_heading = "Reconcile"
    )]
    pub published_sum_field: String,

    /// Name of the published min column.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "min",
        help_heading = "Reconcile"
    )]
    pub published_min_field: String,

    /// Name of the published max column.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "max",
        help_heading = "Reconcile"
    )]
    pub published_max_field: String,

    /// Name of the published mean column; a row without it has the mean of its sum and count.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "mean",
        help_heading = "Reconcile"
    )]
    pub published_mean_field: String,

    /// How many of the largest discrepancies report.html lists.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 50,
        help_heading = "Reconcile"
    )]
    pub report_rows: usize,
}

/// Flags of `amend aggregate`.
#[derive(clap::Args, Debug, Clone)]
pub struct AggregateArgs {
    /// Event files, read in the order given, one epoch each (.jsonl, .ndjson, .json or .csv, optionally .gz); a directory gives its files in name order; `-` reads JSON Lines from standard input.
    #[arg(long, value_name = "FILE", num_args = 1.., required_unless_present = "explain", help_heading = "Input")]
    pub input: Vec<PathBuf>,

    /// Correction files (or directories), read after all --input files, one epoch each.
    #[arg(long, value_name = "FILE", num_args = 1.., help_heading = "Input")]
    pub corrections: Vec<PathBuf>,

    /// Name of the id field: the event's identity, its idempotency key.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "id",
        help_heading = "Input"
    )]
    pub id_field: String,

    /// Name of the group-key field.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "key",
        help_heading = "Input"
    )]
    pub key_field: String,

    /// Name of the event-time field (RFC 3339 with offset, or epoch milliseconds).
    #[arg(
        long,
        value_name = "NAME",
        default_value = "ts",
        help_heading = "Input"
    )]
    pub time_field: String,

    /// Name of the value field (a JSON number; numeric text in CSV).
    #[arg(
        long,
        value_name = "NAME",
        default_value = "value",
        help_heading = "Input"
    )]
    pub value_field: String,

    /// Fractional digits of exact decimal values (0 to 18); a value with more significant digits is a bad record.
    #[arg(
        long,
        value_name = "DIGITS",
        default_value_t = 6,
        help_heading = "Input"
    )]
    pub scale: u32,

    /// Lines longer than this many bytes are bad records.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20, help_heading = "Input")]
    pub max_line_bytes: u64,

    /// Window assignment: tumbling:SIZE, hop:SIZE/SLIDE, or session:GAP; durations like 500ms, 30s, 5m, 1h, 1d.
    #[arg(long, value_name = "SPEC", help_heading = "Windows")]
    pub window: String,

    /// Keep running: after the inputs are read, follow them; each appended run of complete lines, and each new file in an input directory, is a new epoch. SIGINT or SIGTERM finishes the epochs already read, writes the outputs and exits 0 (a second signal exits 130 at once).
    #[arg(long, help_heading = "Live")]
    pub follow: bool,

    /// How often followed files and directories are checked for new data.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "5ms",
        help_heading = "Live"
    )]
    pub poll_interval: String,

    /// With --follow, how often snapshot, digests.json and summary.json are rewritten (they are always written at exit).
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "10s",
        help_heading = "Live"
    )]
    pub snapshot_interval: String,

    /// The watermark trails the greatest event time seen by this much.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "0ms",
        help_heading = "Event time"
    )]
    pub max_out_of_orderness: String,

    /// How long after the watermark passes a window's end the window still takes records; later records go to late.jsonl, and state for closed windows is released. Default: unbounded (every late record corrects its windows).
    #[arg(long, value_name = "DURATION", help_heading = "Event time")]
    pub allowed_lateness: Option<String>,

    /// Also write estimates.jsonl: for each key, rows for the empty windows between its first and last observed window, estimated as zero, a copy of the previous window, or linearly interpolated; never part of the snapshot or its digests (tumbling and hop windows).
    #[arg(long, value_enum, value_name = "HOW", help_heading = "Estimates")]
    pub fill: Option<FillArg>,

    /// Runs of more than this many empty windows are not estimated.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1440,
        help_heading = "Estimates"
    )]
    pub fill_max_windows: u64,

    /// Output directory (created if missing; existing output files are replaced).
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present = "explain",
        help_heading = "Output"
    )]
    pub out: Option<PathBuf>,

    /// Format of the snapshot file: snapshot.jsonl or snapshot.csv.
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = SnapshotFormatArg::Jsonl, help_heading = "Output")]
    pub snapshot_format: SnapshotFormatArg,

    /// Timely worker threads; each reads its own byte range of every file.
    #[arg(long, value_name = "N", default_value_t = 1, help_heading = "Runtime")]
    pub workers: usize,

    /// Records each worker feeds the dataflow at a time within an epoch (bounds memory; does not change any output).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 100_000,
        help_heading = "Runtime"
    )]
    pub batch_records: u64,

    /// Print the dataflow graph (operators, edges, exchanges between workers) and exit; inputs and --out are not needed.
    #[arg(long, help_heading = "Runtime")]
    pub explain: bool,

    /// No progress line, even on a terminal.
    #[arg(long, short, help_heading = "Runtime")]
    pub quiet: bool,

    /// Also detect gaps in the producers' sequence numbers, as `amend gaps` does, writing its files beside the aggregates.
    #[arg(long, help_heading = "Gaps")]
    pub gaps: bool,

    /// Gap detection settings.
    #[command(flatten)]
    pub gap: GapFlags,

    /// Replay slices and audit-log recovery.
    #[command(flatten)]
    pub recovery: RecoveryArgs,

    /// Checkpoints and epochs.
    #[command(flatten)]
    pub checkpoint: CheckpointArgs,

    /// Kafka topics as inputs.
    #[command(flatten)]
    pub kafka: crate::kafka::KafkaSourceArgs,

    /// Kafka topics as outputs.
    #[command(flatten)]
    pub kafka_sinks: crate::kafka::sink::KafkaSinkArgs,
}

/// Checkpoints: state saved at epoch boundaries, from which a restarted run resumes.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct CheckpointArgs {
    /// Save checkpoints in DIR, and resume from the newest intact one there: a restarted run (after kill -9, a reboot, or with more inputs added after the checkpointed ones) goes on where it stopped, and every output line is written exactly once.
    #[arg(long, value_name = "DIR", help_heading = "Checkpoints")]
    pub checkpoint_dir: Option<PathBuf>,

    /// Take a checkpoint at most this often (0: after every epoch); one is always taken when the run ends or is stopped by SIGINT or SIGTERM.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "30s",
        help_heading = "Checkpoints"
    )]
    pub checkpoint_interval: String,

    /// Committed checkpoints kept; a damaged newest one falls back to the one before.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 2,
        help_heading = "Checkpoints"
    )]
    pub checkpoints_retained: usize,

    /// Remove the checkpoints in --checkpoint-dir and start over.
    #[arg(long, requires = "checkpoint_dir", help_heading = "Checkpoints")]
    pub from_scratch: bool,

    /// Split large files into epochs of about SIZE bytes at line boundaries (e.g. 64MiB), so that a long batch run checkpoints inside a file; changes the changelog's epoch numbering (and, with a finite --allowed-lateness, where the watermark advances), never the final table without bounded lateness.
    #[arg(long, value_name = "SIZE", help_heading = "Checkpoints")]
    pub epoch_bytes: Option<String>,
}

/// Settings of gap detection, for `amend gaps` and `amend aggregate --gaps`.
#[derive(clap::Args, Debug, Clone)]
pub struct GapFlags {
    /// A source is lagging when its last seq is more than N behind the greatest last seq of all sources.
    #[arg(long, value_name = "N", default_value_t = 1000, help_heading = "Gaps")]
    pub lag_threshold: u64,

    /// Do not look for sequence numbers carried by more than one id: gap state then grows with the number of gaps only, not with the number of distinct sequence numbers.
    #[arg(long, help_heading = "Gaps")]
    pub no_duplicates: bool,
}

/// Flags of `amend gaps`.
#[derive(clap::Args, Debug, Clone)]
pub struct GapsArgs {
    /// Event files, read in the order given, one epoch each (.jsonl, .ndjson, .json or .csv, optionally .gz); a directory gives its files in name order; `-` reads JSON Lines from standard input.
    #[arg(long, value_name = "FILE", num_args = 1.., required = true, help_heading = "Input")]
    pub input: Vec<PathBuf>,

    /// Correction files (or directories), read after all --input files, one epoch each.
    #[arg(long, value_name = "FILE", num_args = 1.., help_heading = "Input")]
    pub corrections: Vec<PathBuf>,

    /// Name of the id field.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "id",
        help_heading = "Input"
    )]
    pub id_field: String,

    /// Name of the group-key field (records must still be valid records).
    #[arg(
        long,
        value_name = "NAME",
        default_value = "key",
        help_heading = "Input"
    )]
    pub key_field: String,

    /// Name of the event-time field.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "ts",
        help_heading = "Input"
    )]
    pub time_field: String,

    /// Name of the value field.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "value",
        help_heading = "Input"
    )]
    pub value_field: String,

    /// Fractional digits of exact decimal values (0 to 18); a value with more significant digits is a bad record.
    #[arg(
        long,
        value_name = "DIGITS",
        default_value_t = 6,
        help_heading = "Input"
    )]
    pub scale: u32,

    /// Lines longer than this many bytes are bad records.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20, help_heading = "Input")]
    pub max_line_bytes: u64,

    /// Keep running and follow the inputs, as `amend aggregate --follow`: a recovered event appended later removes its gap.
    #[arg(long, help_heading = "Live")]
    pub follow: bool,

    /// How often followed files and directories are checked for new data.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "5ms",
        help_heading = "Live"
    )]
    pub poll_interval: String,

    /// With --follow, how often gaps.jsonl, duplicates.jsonl and gaps_summary.json are rewritten (always at exit).
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "10s",
        help_heading = "Live"
    )]
    pub snapshot_interval: String,

    /// Output directory (created if missing; existing output files are replaced).
    #[arg(long, value_name = "DIR", required = true, help_heading = "Output")]
    pub out: PathBuf,

    /// Gap detection settings.
    #[command(flatten)]
    pub gap: GapFlags,

    /// Timely worker threads; each reads its own byte range of every file.
    #[arg(long, value_name = "N", default_value_t = 1, help_heading = "Runtime")]
    pub workers: usize,

    /// Records each worker feeds the dataflow at a time within an epoch (bounds memory; does not change any output).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 100_000,
        help_heading = "Runtime"
    )]
    pub batch_records: u64,

    /// No progress line, even on a terminal.
    #[arg(long, short, help_heading = "Runtime")]
    pub quiet: bool,

    /// Replay slices and audit-log recovery.
    #[command(flatten)]
    pub recovery: RecoveryArgs,

    /// Checkpoints and epochs.
    #[command(flatten)]
    pub checkpoint: CheckpointArgs,

    /// Kafka topics as inputs.
    #[command(flatten)]
    pub kafka: crate::kafka::KafkaSourceArgs,
}

impl GapsArgs {
    /// The same run as `amend aggregate` flags (with a window that is never used), so both
    /// commands are validated and run by one engine.
    pub fn to_aggregate_args(&self) -> AggregateArgs {
        AggregateArgs {
            input: self.input.clone(),
            corrections: self.corrections.clone(),
            id_field: self.id_field.clone(),
            key_field: self.key_field.clone(),
            time_field: self.time_field.clone(),
            value_field: self.value_field.clone(),
            scale: self.scale,
            max_line_bytes: self.max_line_bytes,
            window: "tumbling:1ms".into(),
            follow: self.follow,
            poll_interval: self.poll_interval.clone(),
            snapshot_interval: self.snapshot_interval.clone(),
            max_out_of_orderness: "0ms".into(),
            allowed_lateness: None,
            out: Some(self.out.clone()),
            snapshot_format: SnapshotFormatArg::Jsonl,
            workers: self.workers,
            batch_records: self.batch_records,
            explain: false,
            quiet: self.quiet,
            gaps: true,
            gap: self.gap.clone(),
            fill: None,
            fill_max_windows: 1440,
            recovery: self.recovery.clone(),
            checkpoint: self.checkpoint.clone(),
            kafka: self.kafka.clone(),
            kafka_sinks: Default::default(),
        }
    }
}

/// `--fill` values.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum FillArg {
    /// Count 0 and every aggregate 0.
    Zero,
    /// The aggregates of the previous observed window.
    Previous,
    /// Linear interpolation between the observed windows around.
    Linear,
}

/// Flags every pipeline shares to reprocess a slice of its input and to recover missed events
/// from audit logs. [`crate::recovery`] validates them.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RecoveryArgs {
    /// Only records with event time at or after T (RFC 3339, or epoch milliseconds); others are skipped and counted as records_skipped, deletes and corrections included.
    #[arg(long, value_name = "T", help_heading = "Replay")]
    pub from_time: Option<String>,

    /// Only records with event time before T (RFC 3339, or epoch milliseconds).
    #[arg(long, value_name = "T", help_heading = "Replay")]
    pub to_time: Option<String>,

    /// Only lines starting at or after this byte offset of each --input and --corrections file; others are skipped and counted.
    #[arg(long, value_name = "BYTES", help_heading = "Replay")]
    pub from_offset: Option<u64>,

    /// Only lines starting before this byte offset of each --input and --corrections file.
    #[arg(long, value_name = "BYTES", help_heading = "Replay")]
    pub to_offset: Option<u64>,

    /// Audit logs to recover missed events from, read after the --corrections files, one epoch each (any name; .gz is decompressed). Needs --audit-pattern or --audit-format jsonl.
    #[arg(long, value_name = "FILE", num_args = 1.., help_heading = "Recovery")]
    pub audit_log: Vec<PathBuf>,

    /// A regex whose named groups id, key, ts and value (optional: op, version, source, seq) read an event from a log line; lines it does not match are skipped and counted.
    #[arg(long, value_name = "REGEX", help_heading = "Recovery")]
    pub audit_pattern: Option<String>,

    /// Read audit logs as JSON Lines instead of with --audit-pattern.
    #[arg(long, value_enum, value_name = "FORMAT", help_heading = "Recovery")]
    pub audit_format: Option<AuditFormatArg>,

    /// With --audit-format jsonl, the dotted path to the event object in each line (e.g. payload.event); default: the whole line.
    #[arg(long, value_name = "PATH", help_heading = "Recovery")]
    pub audit_path: Option<String>,
}

/// `--audit-format` values.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum AuditFormatArg {
    /// One JSON object per line; the event is at --audit-path.
    Jsonl,
}

/// `--snapshot-format` values.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum SnapshotFormatArg {
    /// snapshot.jsonl
    Jsonl,
    /// snapshot.csv
    Csv,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }
}
