//! Validated pipeline configuration: every flag parsed and checked once, before any dataflow
//! is built. Errors quote the bad value and are [`UsageError`]s (exit code 2).

use std::path::PathBuf;
use std::time::Duration;

use amend_operators::decode::FieldNames;
use amend_operators::estimate::Fill;
use amend_operators::sink::SnapshotFormat;
use amend_operators::snapshot::{SnapshotFields, SnapshotFileType};
use amend_operators::source::InputFile;
use amend_operators::time::parse_duration;
use amend_operators::{Decimal, Lateness, Scale, WindowSpec};

use crate::UsageError;
use crate::cli::{AggregateArgs, FillArg, GapsArgs, ReconcileArgs, SnapshotFormatArg};
use crate::plan::Input;
use crate::recovery::Recovery;

/// Everything `amend aggregate` needs, validated.
#[derive(Clone, Debug)]
pub struct AggregateConfig {
    /// All inputs in ingestion order, `--input` then `--corrections`.
    pub inputs: Vec<Input>,
    /// Input field names.
    pub names: FieldNames,
    /// Decimal scale.
    pub scale: Scale,
    /// Window assignment.
    pub window: WindowSpec,
    /// Output directory.
    pub out: PathBuf,
    /// Snapshot file format.
    pub snapshot_format: SnapshotFormat,
    /// Timely workers.
    pub workers: usize,
    /// Lines longer than this are bad records.
    pub max_line_bytes: usize,
    /// Records per internal batch per worker.
    pub batch_records: u64,
    /// Whether to show a progress line on a terminal.
    pub progress: bool,
    /// Whether to keep following the inputs.
    pub follow: bool,
    /// How often followed inputs are checked.
    pub poll_interval: Duration,
    /// How often the snapshot is rewritten while following.
    pub snapshot_interval: Duration,
    /// Watermark and allowed lateness.
    pub lateness: Lateness,
    /// How to estimate empty windows (`--fill`), and the longest run of them to fill.
    pub fill: Option<(Fill, u64)>,
    /// Whether to resolve ids and aggregate (`amend gaps` does not).
    pub aggregate: bool,
    /// Gap detection, with `--gaps` or `amend gaps`.
    pub gaps: Option<GapSettings>,
    /// Replay slices and audit logs.
    pub recovery: Recovery,
    /// The published table to compare with (`amend reconcile`).
    pub reconcile: Option<ReconcileSettings>,
}

/// How `amend reconcile` reads the published table and compares it.
#[derive(Clone, Debug)]
pub struct ReconcileSettings {
    /// The published table.
    pub published: PathBuf,
    /// Its column names.
    pub fields: SnapshotFields,
    /// Largest decimal difference that still matches.
    pub tolerance: Decimal,
    /// How many of the largest discrepancies the report lists.
    pub report_rows: usize,
}

/// How gaps are detected and reported.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct GapSettings {
    /// Whether to look for sequence numbers carried by more than one id.
    pub duplicates: bool,
    /// A source lags when its last seq is more than this behind the greatest last seq.
    pub lag_threshold: u64,
}

impl AggregateConfig {
    /// Validates the flags; input files must exist and be readable.
    pub fn from_args(args: &AggregateArgs) -> anyhow::Result<AggregateConfig> {
        let usage = |text: String| anyhow::Error::new(UsageError(text));
        let window = WindowSpec::parse(&args.window).map_err(|e| usage(e.to_string()))?;
        let scale =
            Scale::new(args.scale).map_err(|e| usage(format!("--scale {}: {e}", args.scale)))?;
        if args.workers == 0 || args.workers > 1024 {
            return Err(usage(format!(
                "--workers {}: must be between 1 and 1024",
                args.workers
            )));
        }
        if args.batch_records == 0 {
            return Err(usage("--batch-records 0: must be at least 1".into()));
        }
        let max_line_bytes = usize::try_from(args.max_line_bytes)
            .ok()
            .filter(|n| (1..=1 << 30).contains(n))
            .ok_or_else(|| {
                usage(format!(
                    "--max-line-bytes {}: must be between 1 and 1073741824",
                    args.max_line_bytes
                ))
            })?;
        let names = FieldNames {
            id: args.id_field.clone(),
            key: args.key_field.clone(),
            ts: args.time_field.clone(),
            value: args.value_field.clone(),
            ..FieldNames::default()
        };
        names.validate().map_err(usage)?;
        let duration = |flag: &str, text: &str, zero: bool| -> anyhow::Result<u64> {
            // Zero (`0s`) is a duration where `zero` allows it.
            let unit = text.trim_start_matches('0');
            let is_zero = unit.len() < text.len() && parse_duration(&format!("1{unit}")).is_ok();
            match parse_duration(text) {
                Ok(ms) => Ok(ms as u64),
                Err(_) if zero && is_zero => Ok(0),
                Err(e) => Err(usage(format!("{flag}: {e}"))),
            }
        };
        let lateness = Lateness {
            max_out_of_orderness: duration(
                "--max-out-of-orderness",
                &args.max_out_of_orderness,
                true,
            )? as i64,
            allowed: match &args.allowed_lateness {
                Some(text) => Some(duration("--allowed-lateness", text, true)? as i64),
                None => None,
            },
        };
        let poll_interval =
            Duration::from_millis(duration("--poll-interval", &args.poll_interval, false)?);
        let snapshot_interval = Duration::from_millis(duration(
            "--snapshot-interval",
            &args.snapshot_interval,
            false,
        )?);
        if args.fill.is_some() && matches!(window, WindowSpec::Session { .. }) {
            return Err(usage(
                "--fill estimates empty windows between a key's observed ones; session windows \
                 have no such lattice: use tumbling or hop windows"
                    .into(),
            ));
        }
        let mut inputs = Vec::new();
        // The graph that --explain prints does not depend on the inputs: they are not opened.
        let paths = args.input.iter().chain(&args.corrections);
        for path in paths.filter(|_| !args.explain) {
            let input = Input::from_path(path).map_err(anyhow::Error::msg)?;
            if let Input::File(path) = &input {
                InputFile::open(path, 0, 0)?;
            }
            if input == Input::Stdin && inputs.contains(&Input::Stdin) {
                return Err(usage("standard input (`-`) can be given only once".into()));
            }
            inputs.push(input);
        }
        Ok(AggregateConfig {
            inputs,
            names,
            scale,
            window,
            out: args.out.clone().unwrap_or_default(),
            snapshot_format: match args.snapshot_format {
                SnapshotFormatArg::Jsonl => SnapshotFormat::JsonLines,
                SnapshotFormatArg::Csv => SnapshotFormat::Csv,
            },
            workers: args.workers,
            max_line_bytes,
            batch_records: args.batch_records,
            progress: !args.quiet,
            fill: args.fill.map(|fill| {
                let fill = match fill {
                    FillArg::Zero => Fill::Zero,
                    FillArg::Previous => Fill::Previous,
                    FillArg::Linear => Fill::Linear,
                };
                (fill, args.fill_max_windows)
            }),
            follow: args.follow,
            poll_interval,
            snapshot_interval,
            lateness,
            aggregate: true,
            gaps: args.gaps.then_some(GapSettings {
                duplicates: !args.gap.no_duplicates,
                lag_threshold: args.gap.lag_threshold,
            }),
            recovery: Recovery::from_args(&args.recovery, !args.explain)?,
            reconcile: None,
        })
    }

    /// Validates the flags of `amend reconcile`: the aggregate job and the published table.
    pub fn from_reconcile_args(args: &ReconcileArgs) -> anyhow::Result<AggregateConfig> {
        let usage = |text: String| anyhow::Error::new(UsageError(text));
        let mut config = AggregateConfig::from_args(&args.aggregate)?;
        let p = &args.published;
        let tolerance = Decimal::parse(&p.tolerance, config.scale)
            .ok()
            .filter(|t| t.0 >= 0)
            .ok_or_else(|| {
                usage(format!(
                    "--tolerance {}: must be a decimal of at least 0 with at most {} fractional digits",
                    p.tolerance,
                    config.scale.digits()
                ))
            })?;
        let published = p.published.clone().unwrap_or_default();
        if !args.aggregate.explain {
            SnapshotFileType::of(&published).map_err(|e| usage(format!("--published {e}")))?;
            std::fs::File::open(&published).map_err(|e| {
                usage(format!(
                    "--published {}: cannot read it: {e}",
                    published.display()
                ))
            })?;
        }
        config.reconcile = Some(ReconcileSettings {
            published,
            fields: SnapshotFields {
                window_start: p.published_window_start_field.clone(),
                window_end: p.published_window_end_field.clone(),
                key: p.published_key_field.clone(),
                count: p.published_count_field.clone(),
                sum: p.published_sum_field.clone(),
                min: p.published_min_field.clone(),
                max: p.published_max_field.clone(),
                mean: Some(p.published_mean_field.clone()),
            },
            tolerance,
            report_rows: p.report_rows,
        });
        Ok(config)
    }

    /// Validates the flags of `amend gaps`: the aggregate engine with aggregation off and gap
    /// detection on.
    pub fn from_gaps_args(args: &GapsArgs) -> anyhow::Result<AggregateConfig> {
        let mut config = AggregateConfig::from_args(&args.to_aggregate_args())?;
        config.aggregate = false;
        Ok(config)
    }

    /// The timely configuration for `--workers`.
    pub fn timely(&self) -> timely::Config {
        if self.workers == 1 {
            timely::Config::thread()
        } else {
            timely::Config::process(self.workers)
        }
    }
}
