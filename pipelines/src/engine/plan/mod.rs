//! Planning epochs: which part of which input each epoch is.
//!
//! The planner asks each [`Source`] in input order for the epochs it has ready and numbers
//! them in that order. Without `--follow`, each file is one epoch, whole, in input order (a
//! directory gives its files in name order), and standard input gives an epoch per chunk of
//! lines as they arrive. With `--follow`, the planner first plans the complete lines present at
//! start-up, then polls: a file that grew by complete lines becomes a new epoch of those lines,
//! and a new file in a directory becomes an epoch of its own. A partial last line is never
//! planned, so a writer's half-written line waits until its `\n` arrives.
//!
//! A source of another kind (a broker's partitions) is one more [`Source`]: its epochs are
//! [`Epoch`]s of a [`Part`](amend_operators::ingest::source::Part) of its own.

mod dir;
mod file;
mod stdin;

use std::io;
use std::path::{Path, PathBuf};

use amend_operators::event::AUDIT_FILE_BASE;
use amend_operators::ingest::source::{Epoch, InputFile};

/// An input as given on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A file.
    File(PathBuf),
    /// A directory: its files (recursively, in name order) are inputs.
    Dir(PathBuf),
    /// Standard input (`-`), as JSON Lines.
    Stdin,
}

impl Input {
    /// Classifies a command-line path, which must exist unless it is `-`.
    pub fn from_path(path: &Path) -> Result<Input, String> {
        if path.as_os_str() == "-" {
            return Ok(Input::Stdin);
        }
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => Ok(Input::Dir(path.to_owned())),
            Ok(_) => Ok(Input::File(path.to_owned())),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }
}

/// One input the planner takes epochs from.
pub trait Source: Send {
    /// The epochs it has ready now, in order, numbered by `planning`; empty if nothing is new.
    fn poll(&mut self, planning: &mut Planning) -> io::Result<Vec<Epoch>>;

    /// Whether it will never have another epoch.
    fn done(&self) -> bool;
}

/// What the sources share while planning: the next epoch number and input index (of an
/// input found while running: a new file in a followed directory), each handed out in order,
/// and when a large append has settled.
#[derive(Debug)]
pub struct Planning {
    next_epoch: u64,
    next_index: u32,
    settle: file::Settle,
}

impl Planning {
    /// The next epoch's number.
    pub fn epoch(&mut self) -> u64 {
        self.next_epoch += 1;
        self.next_epoch - 1
    }

    /// The next input's index.
    pub fn index(&mut self) -> io::Result<u32> {
        let index = self.next_index;
        self.next_index = index
            .checked_add(1)
            .filter(|next| *next < AUDIT_FILE_BASE)
            .ok_or_else(|| io::Error::other("too many input files"))?;
        Ok(index)
    }
}

/// Plans epochs over the inputs.
pub struct Planner {
    sources: Vec<Box<dyn Source>>,
    planning: Planning,
    started: bool,
}

impl Planner {
    /// A planner over `inputs` in ingestion order, following them if `follow`.
    pub fn new(inputs: &[Input], follow: bool) -> anyhow::Result<Planner> {
        let mut planning = Planning {
            next_epoch: 0,
            next_index: 0,
            settle: file::SETTLE,
        };
        let mut sources: Vec<Box<dyn Source>> = Vec::new();
        for input in inputs {
            sources.push(match input {
                Input::File(path) => {
                    let file = InputFile::open(path, planning.index()?)?;
                    Box::new(file::FileSource::new(file, follow))
                }
                Input::Dir(path) => Box::new(dir::DirSource::new(path, follow, &mut planning)?),
                Input::Stdin => Box::new(stdin::StdinSource::new(planning.index()?)),
            });
        }
        Ok(Planner {
            sources,
            planning,
            started: false,
        })
    }

    /// Adds audit logs, planned after every other input: each is read whole, once, as one
    /// epoch (also when following), and numbered from [`AUDIT_FILE_BASE`].
    pub fn with_audit_logs(mut self, paths: &[PathBuf]) -> anyhow::Result<Planner> {
        for (i, path) in paths.iter().enumerate() {
            let index = u32::try_from(i)
                .ok()
                .and_then(|i| AUDIT_FILE_BASE.checked_add(i))
                .ok_or_else(|| anyhow::anyhow!("too many audit logs"))?;
            let file = InputFile::open_audit(path, index)?;
            self.sources
                .push(Box::new(file::FileSource::new(file, false)));
        }
        Ok(self)
    }

    /// The number the next epoch planned will have.
    pub fn next_epoch(&self) -> u64 {
        self.planning.next_epoch
    }

    /// Whether every input is read and no more will come.
    pub fn finished(&self) -> bool {
        self.started && self.sources.iter().all(|source| source.done())
    }

    /// The epochs that are ready now, in order; empty if there is nothing new.
    pub fn poll(&mut self) -> io::Result<Vec<Epoch>> {
        self.started = true;
        let mut epochs = Vec::new();
        for source in &mut self.sources {
            epochs.extend(source.poll(&mut self.planning)?);
        }
        Ok(epochs)
    }
}

#[cfg(test)]
mod tests;
