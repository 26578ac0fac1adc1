//! The `amend` command line.
//!
//! Exit codes: 0 success; 1 the run failed (unreadable input, unwritable output, a bad row in
//! the snapshot `amend digest` reads); 2 bad usage (an unknown flag or a bad flag value).
//! `amend verify` exits 0 when the results are equal, 1 when they differ, 2 on any error.
//! A closed stdout (a broken pipe) exits 0.

use std::process::ExitCode;

use clap::Parser;

// Dataflow batches are large and short-lived; jemalloc reuses their memory instead of mapping
// and faulting in fresh pages for each one (measured in BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = match amend::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // Help and version go to stdout and exit 0; usage errors are one line plus hint.
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match amend::run(cli) {
        Ok(amend::Outcome::Done) => ExitCode::SUCCESS,
        Ok(amend::Outcome::Different) => ExitCode::from(1),
        Err(error) => {
            if is_broken_pipe(&error) {
                return ExitCode::SUCCESS;
            }
            eprintln!("amend: {}", amend::one_line(&error));
            ExitCode::from(amend::exit_code(&error))
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
