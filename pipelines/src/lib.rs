//! amend's pipelines and command line.
//!
//! `operators` holds the semantics; this crate turns command-line flags into a validated
//! [`config::AggregateConfig`], composes operators into pipelines, runs them on timely workers,
//! and writes their outputs. One module per pipeline:
//!
//! - [`aggregate`]: `amend aggregate`, windowed aggregates with a changelog, a snapshot,
//!   dead letters, digests and a summary.
//! - [`gaps`]: `amend gaps` runs the [`aggregate`] engine with aggregation off and gap detection on
//!   (`amend aggregate --gaps` runs both); its outputs are described in `docs/design/0003-gaps.md`.
//! - `gen`: `amend gen`, deterministic synthetic event histories.
//! - [`report`]: the self-contained HTML report of `amend reconcile` (summary, per-window
//!   timeline, largest discrepancies, digests).
//! - [`verify`]: `amend digest` and `amend verify`, digests of snapshot files and two results
//!   compared.
//! - [`reconcile`]: `amend reconcile`, the [`aggregate`] job with its table compared to a
//!   published one, the corrections to send downstream, and a report ([`report`]).

use std::io::Write;

pub mod aggregate;
pub mod cli;
pub mod config;
pub mod explain;
pub mod gaps;
pub mod r#gen;
mod output;
pub mod plan;
mod progress;
pub mod reconcile;
pub mod recovery;
pub mod report;
pub mod verify;

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

/// Runs one command. Output to stdout goes through `writeln!`, so a closed pipe is an error
/// the caller can recognise rather than a panic.
pub fn run(cli: cli::Cli) -> anyhow::Result<Outcome> {
    let mut stdout = std::io::stdout().lock();
    match cli.command {
        cli::Command::Verify(args) => Ok(match verify::run_verify(&args, &mut stdout)? {
            true => Outcome::Done,
            false => Outcome::Different,
        }),
        cli::Command::Reconcile(args) => run_reconcile(&args, &mut stdout),
        command => run_command(command, &mut stdout).map(|()| Outcome::Done),
    }
}

/// `amend reconcile`: `Different` if the published table needs corrections; errors exit 2.
fn run_reconcile(args: &cli::ReconcileArgs, stdout: &mut impl Write) -> anyhow::Result<Outcome> {
    // Exit code 1 means "corrections needed": every error, of input or of usage, exits 2.
    let config =
        config::AggregateConfig::from_reconcile_args(args).map_err(verify::CompareError)?;
    if args.aggregate.explain {
        write!(stdout, "{}", explain::explain(&config)?)?;
        return Ok(Outcome::Done);
    }
    let summary = aggregate::run(&config).map_err(verify::CompareError)?;
    writeln!(stdout, "{}", summary.paragraph(&config))?;
    let reconcile = summary
        .reconcile
        .as_ref()
        .expect("a reconcile run reports its comparison");
    writeln!(stdout, "{}", reconcile.paragraph(&config))?;
    Ok(match reconcile.discrepancies {
        0 => Outcome::Done,
        _ => Outcome::Different,
    })
}

fn run_command(command: cli::Command, stdout: &mut impl Write) -> anyhow::Result<()> {
    match command {
        cli::Command::Digest(args) => verify::run_digest(&args, stdout),
        cli::Command::Verify(_) | cli::Command::Reconcile(_) => {
            unreachable!("`run` answers these with their outcome")
        }
        cli::Command::Aggregate(args) => {
            let config = config::AggregateConfig::from_args(&args)?;
            if args.explain {
                write!(stdout, "{}", explain::explain(&config)?)?;
                return Ok(());
            }
            let summary = aggregate::run(&config)?;
            writeln!(stdout, "{}", summary.paragraph(&config))?;
            Ok(())
        }
        cli::Command::Gaps(args) => {
            let config = config::AggregateConfig::from_gaps_args(&args)?;
            let summary = aggregate::run(&config)?;
            if let Some(gaps) = &summary.gaps {
                writeln!(stdout, "{}", gaps.paragraph(&config.out))?;
            }
            Ok(())
        }
        cli::Command::Gen(args) => {
            let report = r#gen::run(&args)?;
            if args.to_stdout() {
                return Ok(()); // stdout is the stream
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
    }
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
