//! amend's pipelines and command line.
//!
//! `operators` holds the semantics; this crate turns command-line flags into validated
//! configurations ([`config`]), runs them on the [`engine`] (sources, the worker's reader, the
//! dataflow, the sink, the writers of the outputs), and prints what they found. One module per
//! command:
//!
//! - [`aggregate`]: `amend aggregate`, windowed aggregates with a changelog, a snapshot,
//!   dead letters, digests and a summary.
//! - [`gaps`]: `amend gaps`, gaps in the producers' sequence numbers (`amend aggregate --gaps`
//!   computes both); its outputs are described in `docs/design/0003-gaps.md`.
//! - [`reconcile`]: `amend reconcile`, the aggregate job with its table compared to a
//!   published one, the corrections to send downstream, and a report ([`report`]).
//! - [`verify`]: `amend digest` and `amend verify`, digests of snapshot files and two results
//!   compared.
//! - `gen`: `amend gen`, deterministic synthetic event histories.
//! - [`explain`]: `--explain`, the dataflow graph as timely builds it.
//!
//! The engine does not know the commands: each configures it and hands it the writers of its
//! outputs (docs/design/0006-engine.md).

use std::ffi::OsString;
use std::io::Write;

pub mod aggregate;
pub mod cli;
pub mod config;
pub mod engine;
pub mod explain;
pub mod gaps;
pub mod r#gen;
pub mod kafka;
pub mod reconcile;
pub mod recovery;
pub mod report;
pub mod verify;

use aggregate::AggregateConfig;
use engine::summary::Summary;
use gaps::{GapSummary, GapsConfig};
use reconcile::{ReconcileConfig, ReconcileSummary};

/// A usage error: a flag value that cannot be used. Exits with code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// What a command that answers with its exit code found.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done (for `amend verify`: the results are equal; for `amend reconcile`: the published
    /// table is correct). Exits 0.
    Done,
    /// `amend verify` found the results different, or `amend reconcile` found rows to
    /// correct. Exits 1.
    Different,
}

/// What a pipeline command (`aggregate`, `gaps`, `reconcile`) reports.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// What summary.json holds (for `amend gaps`, only the counts of what was read).
    pub summary: Summary,
    /// With gap detection: what gaps_summary.json holds.
    pub gaps: Option<GapSummary>,
    /// With `amend reconcile`: the comparison.
    pub reconcile: Option<ReconcileSummary>,
}

/// A pipeline command, validated.
enum Pipeline {
    Aggregate(AggregateConfig),
    Gaps(GapsConfig),
    Reconcile(Box<ReconcileConfig>),
}

impl Pipeline {
    /// The pipeline of `command`, if it is one, with its flags validated; `None` for other
    /// commands.
    fn of(command: &cli::Command) -> anyhow::Result<Option<Pipeline>> {
        Ok(Some(match command {
            cli::Command::Aggregate(args) => Pipeline::Aggregate(AggregateConfig::from_args(args)?),
            cli::Command::Gaps(args) => Pipeline::Gaps(GapsConfig::from_args(args)?),
            cli::Command::Reconcile(args) => {
                // Exit code 1 means "corrections needed": every error exits 2.
                let config = ReconcileConfig::from_args(args).map_err(verify::CompareError)?;
                Pipeline::Reconcile(Box::new(config))
            }
            _ => return Ok(None),
        }))
    }

    /// Runs it and writes its outputs.
    fn run(&self) -> anyhow::Result<Report> {
        Ok(match self {
            Pipeline::Aggregate(config) => {
                let aggregated = aggregate::run(config)?;
                Report {
                    summary: aggregated.summary,
                    gaps: aggregated.gaps,
                    reconcile: None,
                }
            }
            Pipeline::Gaps(config) => {
                let gaps = gaps::run(config)?;
                Report {
                    summary: Summary {
                        read: gaps.read.clone(),
                        run: gaps.run.clone(),
                        ..Summary::default()
                    },
                    gaps: Some(gaps),
                    reconcile: None,
                }
            }
            Pipeline::Reconcile(config) => {
                let (summary, reconciled) = reconcile::run(config).map_err(verify::CompareError)?;
                Report {
                    summary,
                    gaps: None,
                    reconcile: Some(reconciled),
                }
            }
        })
    }
}

/// Parses `args` (the program name first) as the command line and runs the pipeline command it
/// names, without printing: `amend aggregate`, `amend gaps` or `amend reconcile`, as `main`
/// runs them. For tests and for running amend inside another program.
pub fn run_args<I, T>(args: I) -> anyhow::Result<Report>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    use clap::Parser;
    let cli = cli::Cli::try_parse_from(args).map_err(|e| UsageError(e.to_string()))?;
    match Pipeline::of(&cli.command)? {
        Some(pipeline) => pipeline.run(),
        None => {
            Err(UsageError("not a pipeline command: aggregate, gaps or reconcile".into()).into())
        }
    }
}

/// Runs one command. Output to stdout goes through `writeln!`, so a closed pipe is an error
/// the caller can recognise rather than a panic.
pub fn run(cli: cli::Cli) -> anyhow::Result<Outcome> {
    let mut stdout = std::io::stdout().lock();
    if let Some(pipeline) = Pipeline::of(&cli.command)? {
        return run_pipeline(&cli.command, &pipeline, &mut stdout);
    }
    match cli.command {
        cli::Command::Verify(args) => Ok(match verify::run_verify(&args, &mut stdout)? {
            true => Outcome::Done,
            false => Outcome::Different,
        }),
        cli::Command::Digest(args) => {
            verify::run_digest(&args, &mut stdout)?;
            Ok(Outcome::Done)
        }
        cli::Command::Gen(args) => {
            run_gen(&args, &mut stdout)?;
            Ok(Outcome::Done)
        }
        cli::Command::Checkpoints(args) => {
            let listed = engine::checkpoint::list::list(&args.dir)?;
            engine::checkpoint::list::write(&listed, args.json, &mut stdout)?;
            Ok(Outcome::Done)
        }
        cli::Command::Aggregate(_) | cli::Command::Gaps(_) | cli::Command::Reconcile(_) => {
            unreachable!("pipelines are run above")
        }
    }
}

/// Runs a pipeline command (or, with `--explain`, prints its graph) and prints its summary.
fn run_pipeline(
    command: &cli::Command,
    pipeline: &Pipeline,
    stdout: &mut impl Write,
) -> anyhow::Result<Outcome> {
    let explain = match command {
        cli::Command::Aggregate(args) => args.explain,
        cli::Command::Reconcile(args) => args.aggregate.explain,
        _ => false,
    };
    let aggregate = match pipeline {
        Pipeline::Aggregate(config) => Some(config),
        Pipeline::Reconcile(config) => Some(&config.aggregate),
        Pipeline::Gaps(_) => None,
    };
    if let (true, Some(config)) = (explain, aggregate) {
        write!(stdout, "{}", explain::explain(config)?)?;
        return Ok(Outcome::Done);
    }
    let report = pipeline.run()?;
    match pipeline {
        Pipeline::Aggregate(config) => {
            writeln!(stdout, "{}", aggregate::paragraph(&report.summary, config))?;
            Ok(Outcome::Done)
        }
        Pipeline::Gaps(config) => {
            let gaps = report.gaps.unwrap_or_default();
            writeln!(stdout, "{}", gaps.paragraph(&config.engine.out))?;
            Ok(Outcome::Done)
        }
        Pipeline::Reconcile(config) => {
            let out = &config.aggregate.engine.out;
            let reconciled = report.reconcile.unwrap_or_default();
            writeln!(
                stdout,
                "{}",
                aggregate::paragraph(&report.summary, &config.aggregate)
            )?;
            writeln!(stdout, "{}", reconciled.paragraph(out))?;
            Ok(match reconciled.discrepancies {
                0 => Outcome::Done,
                _ => Outcome::Different,
            })
        }
    }
}

/// `amend gen`: writes the history and says what it wrote (nothing when it writes to stdout).
fn run_gen(args: &r#gen::GenArgs, stdout: &mut impl Write) -> anyhow::Result<()> {
    let report = r#gen::run(args)?;
    if args.to_stdout() {
        return Ok(()); // stdout is the stream
    }
    if let Some(url) = &args.kafka {
        writeln!(
            stdout,
            "amend gen: produced {} event lines and {} correction lines to {url}, interleaved \
             ({} bad lines in all)",
            report.event_lines, report.correction_lines, report.bad_lines
        )?;
        return Ok(());
    }
    writeln!(
        stdout,
        "amend gen: wrote {} lines to {} and {} lines to {} ({} bad lines in all)",
        report.event_lines,
        report.events_path.display(),
        report.correction_lines,
        report.corrections_path.display(),
        report.bad_lines
    )?;
    if report.dropped_lines > 0 {
        writeln!(
            stdout,
            "amend gen: left out {} events whose sequence numbers were consumed (--drop-seq)",
            report.dropped_lines
        )?;
    }
    if let Some((path, events)) = &report.audit {
        writeln!(
            stdout,
            "amend gen: wrote {events} event lines to the audit log {} (read it with --audit-pattern '{}')",
            path.display(),
            r#gen::AUDIT_PATTERN
        )?;
    }
    Ok(())
}

/// The error and its causes on one line.
pub fn one_line(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text.replace('\n', " ")
}

/// The exit code for an error: 2 for usage errors and for any error of `amend verify` (whose
/// 1 means "different"), 1 otherwise.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    if error.downcast_ref::<UsageError>().is_some()
        || error.downcast_ref::<verify::CompareError>().is_some()
    {
        2
    } else {
        1
    }
}
