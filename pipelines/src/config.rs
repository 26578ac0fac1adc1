//! Validated pipeline configuration: every flag parsed and checked once, before any dataflow
//! is built, into the engine's configuration ([`EngineConfig`]) and each command's own
//! ([`AggregateConfig`], [`GapsConfig`], [`ReconcileConfig`]). Errors quote the bad value and
//! are [`UsageError`]s (exit code 2).

use std::time::Duration;

use amend_operators::ingest::decode::FieldNames;
use amend_operators::ingest::source::InputFile;
use amend_operators::output::rows::SnapshotFormat;
use amend_operators::proof::snapshot::{SnapshotFields, SnapshotFileType};
use amend_operators::recovery::estimates::Fill;
use amend_operators::time::parse_duration;
use amend_operators::{Decimal, Lateness, Scale, WindowSpec};

use crate::UsageError;
use crate::aggregate::AggregateConfig;
use crate::cli::{AggregateArgs, FillArg, GapsArgs, ReconcileArgs, SnapshotFormatArg};
use crate::engine::Recovery;
use crate::engine::checkpoint::CheckpointConfig;
use crate::engine::{EngineConfig, Input, TableSpec};
use crate::gaps::{GapSettings, GapsConfig};
use crate::reconcile::{ReconcileConfig, ReconcileSettings};

impl AggregateConfig {
    /// Validates the flags; input files must exist and be readable.
    pub fn from_args(args: &AggregateArgs) -> anyhow::Result<AggregateConfig> {
        let usage = |text: String| anyhow::Error::new(UsageError(text));
        let window = WindowSpec::parse(&args.window).map_err(|e| usage(format!("--window {e}")))?;
        let mut engine = EngineConfig::from_args(args)?;
        engine.checkpoint = checkpoint_config("aggregate", args, &engine, &[])?;
        if args.fill.is_some() && matches!(window, WindowSpec::Session { .. }) {
            return Err(usage(
                "--fill estimates empty windows between a key's observed ones; session windows \
                 have no such lattice: use tumbling or hop windows"
                    .into(),
            ));
        }
        Ok(AggregateConfig {
            engine,
            table: TableSpec {
                window,
                fill: args.fill.map(|fill| {
                    let fill = match fill {
                        FillArg::Zero => Fill::Zero,
                        FillArg::Previous => Fill::Previous,
                        FillArg::Linear => Fill::Linear,
                    };
                    (fill, args.fill_max_windows)
                }),
            },
            snapshot_format: match args.snapshot_format {
                SnapshotFormatArg::Jsonl => SnapshotFormat::JsonLines,
                SnapshotFormatArg::Csv => SnapshotFormat::Csv,
            },
            kafka_sinks: args.kafka_sinks.clone(),
            gaps: args.gaps.then_some(GapSettings {
                duplicates: !args.gap.no_duplicates,
                lag_threshold: args.gap.lag_threshold,
            }),
        })
    }
}

impl EngineConfig {
    /// Validates the flags every pipeline shares; input files must exist and be readable.
    pub fn from_args(args: &AggregateArgs) -> anyhow::Result<EngineConfig> {
        let usage = |text: String| anyhow::Error::new(UsageError(text));
        let scale = Scale::new(args.scale).map_err(|e| usage(format!("--scale {e}")))?;
        if args.workers == 0 || args.workers > 1024 {
            return Err(usage(format!(
                "--workers {}: must be between 1 and 1024",
                args.workers
            )));
        }
        if args.kafka.kafka_max_epoch_records == 0 {
            return Err(usage(
                "--kafka-max-epoch-records 0: must be at least 1".into(),
            ));
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
        let mut inputs = Vec::new();
        // The graph that --explain prints does not depend on the inputs: they are not opened.
        let paths = args.input.iter().chain(&args.corrections);
        for path in paths.filter(|_| !args.explain) {
            let input = Input::from_path(path)?;
            if let Input::File(path) = &input {
                InputFile::open(path, 0)?;
            }
            if input == Input::Stdin && inputs.contains(&Input::Stdin) {
                return Err(usage("standard input (`-`) can be given only once".into()));
            }
            inputs.push(input);
        }
        Ok(EngineConfig {
            inputs,
            names,
            scale,
            max_line_bytes,
            recovery: Recovery::from_args(&args.recovery, !args.explain)?,
            out: args.out.clone().unwrap_or_default(),
            workers: args.workers,
            batch_records: args.batch_records,
            progress: !args.quiet,
            follow: args.follow,
            poll_interval,
            snapshot_interval,
            lateness,
            epoch_bytes: match &args.checkpoint.epoch_bytes {
                Some(text) => {
                    Some(parse_size(text).map_err(|e| usage(format!("--epoch-bytes {e}")))?)
                }
                None => None,
            },
            checkpoint: None,
            topics: args.kafka.clone(),
        })
    }
}

/// The milliseconds of the duration `text` of `flag`; zero (`0`, `0s`) only if `zero` allows it.
fn duration(flag: &str, text: &str, zero: bool) -> anyhow::Result<u64> {
    let unit = text.trim_start_matches('0');
    let is_zero =
        unit.len() < text.len() && (unit.is_empty() || parse_duration(&format!("1{unit}")).is_ok());
    match parse_duration(text) {
        Ok(ms) => Ok(ms as u64),
        Err(_) if zero && is_zero => Ok(0),
        Err(e) => Err(anyhow::Error::new(UsageError(format!("{flag}: {e}")))),
    }
}

/// A size in bytes: a number, optionally followed by K, M or G (KiB, MiB, GiB; powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => {
            return Err(format!(
                "{text}: a size is a number of bytes, optionally with K, M or G"
            ));
        }
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{text}: must be a positive number of bytes"))
}

/// The checkpoint settings of a run of `command` with `args`: the flags that change results
/// are its fingerprint, which a resumed run must share.
pub fn checkpoint_config(
    command: &str,
    args: &AggregateArgs,
    engine: &EngineConfig,
    extra: &[(&str, String)],
) -> anyhow::Result<Option<CheckpointConfig>> {
    let usage = |text: String| anyhow::Error::new(UsageError(text));
    let c = &args.checkpoint;
    let Some(dir) = c.checkpoint_dir.clone() else {
        return Ok(None);
    };
    let interval = Duration::from_millis(duration(
        "--checkpoint-interval",
        &c.checkpoint_interval,
        true,
    )?);
    if c.checkpoints_retained == 0 {
        return Err(usage("--checkpoints-retained 0: must be at least 1".into()));
    }
    let out = std::path::absolute(&engine.out).unwrap_or_else(|_| engine.out.clone());
    let r = &args.recovery;
    let mut settings: std::collections::BTreeMap<String, String> = [
        ("command", command.to_string()),
        ("--out", out.display().to_string()),
        ("--window", args.window.clone()),
        ("--scale", args.scale.to_string()),
        ("--id-field", args.id_field.clone()),
        ("--key-field", args.key_field.clone()),
        ("--time-field", args.time_field.clone()),
        ("--value-field", args.value_field.clone()),
        ("--max-line-bytes", args.max_line_bytes.to_string()),
        (
            "--max-out-of-orderness",
            format!("{}ms", engine.lateness.max_out_of_orderness),
        ),
        (
            "--allowed-lateness",
            format!("{:?}", engine.lateness.allowed),
        ),
        (
            "--fill",
            format!("{:?} {}", args.fill, args.fill_max_windows),
        ),
        ("--snapshot-format", format!("{:?}", args.snapshot_format)),
        ("--gaps", format!("{} {:?}", args.gaps, args.gap)),
        ("replay and audit logs", format!("{:?}", engine.recovery)),
        ("recovery flags", format!("{r:?}")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    settings.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
    if engine.inputs.iter().any(|i| matches!(i, Input::Kafka(_))) {
        // A topic's epochs, and so the order of its records, follow these.
        let topics = &engine.topics;
        settings.extend([
            (
                "--kafka-max-epoch-records".to_string(),
                topics.kafka_max_epoch_records.to_string(),
            ),
            (
                "--kafka-tombstones".to_string(),
                format!("{:?}", topics.kafka_tombstones),
            ),
        ]);
    }
    let inputs = args
        .input
        .iter()
        .chain(&args.corrections)
        .map(|p| p.display().to_string())
        .collect();
    Ok(Some(CheckpointConfig {
        dir,
        interval,
        retained: c.checkpoints_retained,
        from_scratch: c.from_scratch,
        settings,
        inputs,
        log_plans: args.kafka_sinks.any(),
    }))
}

impl ReconcileConfig {
    /// Validates the flags of `amend reconcile`: the aggregate job and the published table.
    pub fn from_args(args: &ReconcileArgs) -> anyhow::Result<ReconcileConfig> {
        let usage = |text: String| anyhow::Error::new(UsageError(text));
        let mut aggregate = AggregateConfig::from_args(&args.aggregate)?;
        let p = &args.published;
        let tolerance = Decimal::parse(&p.tolerance, aggregate.engine.scale)
            .ok()
            .filter(|t| t.0 >= 0)
            .ok_or_else(|| {
                usage(format!(
                    "--tolerance {}: must be a decimal of at least 0 with at most {} fractional digits",
                    p.tolerance,
                    aggregate.engine.scale.digits()
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
        let published = ReconcileSettings {
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
        };
        let extra = [("--published", format!("{p:?}"))];
        aggregate.engine.checkpoint =
            checkpoint_config("reconcile", &args.aggregate, &aggregate.engine, &extra)?;
        Ok(ReconcileConfig {
            aggregate,
            published,
        })
    }
}

impl GapsConfig {
    /// Validates the flags of `amend gaps`: the engine with gap detection on and no table.
    pub fn from_args(args: &GapsArgs) -> anyhow::Result<GapsConfig> {
        let args = args.to_aggregate_args();
        let mut engine = EngineConfig::from_args(&args)?;
        engine.checkpoint = checkpoint_config("gaps", &args, &engine, &[])?;
        Ok(GapsConfig {
            engine,
            gaps: GapSettings {
                duplicates: !args.gap.no_duplicates,
                lag_threshold: args.gap.lag_threshold,
            },
        })
    }
}
