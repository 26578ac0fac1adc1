//! Validated pipeline configuration: every flag parsed and checked once, before any dataflow
//! is built. Errors quote the bad value and are [`UsageError`]s (exit code 2).

use std::path::PathBuf;

use amend_operators::decode::FieldNames;
use amend_operators::sink::SnapshotFormat;
use amend_operators::source::InputFile;
use amend_operators::{Scale, WindowSpec};

use crate::UsageError;
use crate::cli::{AggregateArgs, SnapshotFormatArg};

/// Everything `amend aggregate` needs, validated.
#[derive(Clone, Debug)]
pub struct AggregateConfig {
    /// All input files in ingestion order, `--input` then `--corrections`; epoch = index.
    pub inputs: Vec<InputFile>,
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
        let mut inputs = Vec::new();
        // The graph that --explain prints does not depend on the inputs: they are not opened.
        let paths = args.input.iter().chain(&args.corrections);
        for (index, path) in paths.enumerate().filter(|_| !args.explain) {
            let index = u32::try_from(index).map_err(|_| usage("too many input files".into()))?;
            inputs.push(InputFile::open(path, index, u64::from(index))?);
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
        })
    }

    /// The timely configuration for `--workers`.
    pub fn timely(&self) -> timely::Config {
        if self.workers == 1 {
            timely::Config::thread()
        } else {
            timely::Config::process(self.workers)
        }
    }

    /// The number of epochs: one per input file.
    pub fn epochs(&self) -> u64 {
        self.inputs.len() as u64
    }
}
