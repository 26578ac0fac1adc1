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
mod topic;

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use amend_operators::event::AUDIT_FILE_BASE;
use amend_operators::ingest::decode::FieldNames;
use amend_operators::ingest::messages::{PartitionNext, is_topic};
use amend_operators::ingest::source::{Epoch, InputFile};

use crate::engine::checkpoint::replay::Replan;
use crate::kafka::{KafkaSourceArgs, TopicUrl};

/// An input as given on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A file.
    File(PathBuf),
    /// A directory: its files (recursively, in name order) are inputs.
    Dir(PathBuf),
    /// Standard input (`-`), as JSON Lines.
    Stdin,
    /// A Kafka topic (`kafka://HOST:PORT/TOPIC`).
    Kafka(TopicUrl),
}

impl Input {
    /// Classifies a command-line path, which must exist unless it is `-` or a topic URL (a
    /// bad URL is a [`UsageError`](crate::UsageError)).
    pub fn from_path(path: &Path) -> anyhow::Result<Input> {
        if path.as_os_str() == "-" {
            return Ok(Input::Stdin);
        }
        if let Some(url) = path.to_str().filter(|p| is_topic(p)) {
            return url
                .parse()
                .map(Input::Kafka)
                .map_err(|e| crate::UsageError(e).into());
        }
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => Ok(Input::Dir(path.to_owned())),
            Ok(_) => Ok(Input::File(path.to_owned())),
            Err(e) => Err(anyhow::anyhow!("{}: {e}", path.display())),
        }
    }
}

/// One input the planner takes epochs from.
pub trait Source: Send {
    /// The epochs it has ready now, in order, numbered by `planning`; empty if nothing is new.
    fn poll(&mut self, planning: &mut Planning) -> io::Result<Vec<Epoch>>;

    /// Whether it will never have another epoch.
    fn done(&self) -> bool;

    /// Whether it has more ready than its last poll planned (with `--epoch-bytes`): then the
    /// sources after it wait, so that inputs are read in order.
    fn behind(&self) -> bool {
        false
    }

    /// Plans exactly what `replan` read as the next epoch, if it read this source where its
    /// planning has reached (to repeat the epochs of a run that stopped after its last
    /// checkpoint).
    fn exact(&mut self, planning: &mut Planning, replan: &Replan) -> io::Result<Exact> {
        let _ = (planning, replan);
        Ok(Exact::Other)
    }
}

/// What a source makes of an epoch to plan again.
pub enum Exact {
    /// It is not this source's, or no longer reads as it did.
    Other,
    /// It is this source's, and not all there yet.
    Wait,
    /// The epoch, planned again.
    Planned(Epoch),
}

/// Where reading an input file had reached at a checkpoint.
#[derive(Clone, Debug)]
pub struct Reached {
    /// Its index.
    pub index: u32,
    /// The offset after the last byte read.
    pub offset: u64,
    /// Whether it is read for good (a compressed file).
    pub done: bool,
}

/// How a planner starts: afresh, or where a checkpoint left off.
#[derive(Clone, Debug, Default)]
pub struct PlanOptions {
    /// Files are split into epochs of about this many bytes, at line boundaries.
    pub epoch_bytes: Option<u64>,
    /// The first epoch's number.
    pub next_epoch: u64,
    /// The first new input's index.
    pub next_index: u32,
    /// Input files a checkpoint had, by path.
    pub reached: BTreeMap<PathBuf, Reached>,
    /// Epochs to plan first, exactly.
    pub replay: Vec<Replan>,
    /// How topics are read.
    pub topics: KafkaSourceArgs,
    /// Each topic a checkpoint had, by name: its index, and where reading each partition had
    /// reached.
    pub topics_reached: BTreeMap<String, (u32, Vec<PartitionNext>)>,
    /// The field names: tombstones become delete records in them.
    pub names: FieldNames,
}

/// Every input the planner knows, by index: where a checkpoint finds them.
pub type KnownFiles = Arc<Mutex<Known>>;

/// The inputs the planner knows, by index.
#[derive(Debug, Default)]
pub struct Known {
    /// Files, by path.
    pub files: BTreeMap<u32, PathBuf>,
    /// Topics, by name, with where reading each partition started.
    pub topics: BTreeMap<u32, (String, Vec<PartitionNext>)>,
}

/// What the sources share while planning: the next epoch number and input index (of an
/// input found while running: a new file in a followed directory), each handed out in order,
/// and when a large append has settled.
#[derive(Debug)]
pub struct Planning {
    next_epoch: u64,
    next_index: u32,
    settle: file::Settle,
    epoch_bytes: Option<u64>,
    reached: BTreeMap<PathBuf, Reached>,
    /// The index of every input a checkpoint had (files and topics), by name.
    indexes: BTreeMap<PathBuf, u32>,
    known: KnownFiles,
}

impl Planning {
    /// The next epoch's number.
    pub fn epoch(&mut self) -> u64 {
        self.next_epoch += 1;
        self.next_epoch - 1
    }

    /// The index of the input at `path` (a file, or a topic's URL): its checkpointed one, or
    /// the next.
    pub fn index(&mut self, path: &Path) -> io::Result<u32> {
        let index = match self.indexes.get(path) {
            Some(index) => *index,
            None => {
                let index = self.next_index;
                self.next_index = index
                    .checked_add(1)
                    .filter(|next| *next < AUDIT_FILE_BASE)
                    .ok_or_else(|| io::Error::other("too many input files"))?;
                index
            }
        };
        Ok(index)
    }

    /// Opens the input file at `path` as a source: where a checkpoint left it, if it did.
    /// The file becomes one of the known files, whose positions a checkpoint keeps.
    fn open(&mut self, file: InputFile, follow: bool) -> file::FileSource {
        self.known
            .lock()
            .expect("not poisoned")
            .files
            .insert(file.index, file.path.clone());
        let reached = self.reached.get(&file.path).cloned();
        file::FileSource::new(file, follow, self.epoch_bytes, reached)
    }
}

/// Plans epochs over the inputs.
pub struct Planner {
    sources: Vec<Box<dyn Source>>,
    planning: Planning,
    started: bool,
    replay: VecDeque<Replan>,
}

impl Planner {
    /// A planner over `inputs` in ingestion order, following them if `follow`.
    pub fn new(inputs: &[Input], follow: bool) -> anyhow::Result<Planner> {
        Planner::with(inputs, follow, PlanOptions::default())
    }

    /// A planner over `inputs`, following them if `follow`, started as `options` say.
    pub fn with(inputs: &[Input], follow: bool, options: PlanOptions) -> anyhow::Result<Planner> {
        let mut planning = Planning {
            next_epoch: options.next_epoch,
            next_index: options.next_index,
            settle: file::SETTLE,
            epoch_bytes: options.epoch_bytes,
            reached: options.reached.clone(),
            indexes: (options.reached.iter())
                .map(|(path, r)| (path.clone(), r.index))
                .chain((options.topics_reached.iter()).map(|(name, (i, _))| (name.into(), *i)))
                .collect(),
            known: KnownFiles::default(),
        };
        let mut sources: Vec<Box<dyn Source>> = Vec::new();
        for input in inputs {
            sources.push(match input {
                Input::File(path) => {
                    let file = InputFile::open(path, planning.index(path)?)?;
                    Box::new(planning.open(file, follow))
                }
                Input::Dir(path) => Box::new(dir::DirSource::new(path, follow, &mut planning)?),
                Input::Stdin => Box::new(stdin::StdinSource::new(planning.index(Path::new("-"))?)),
                Input::Kafka(url) => {
                    let name = url.to_string();
                    let index = planning.index(Path::new(&name))?;
                    let resume = topic::Resume {
                        reached: options.topics_reached.get(&name).map(|(_, r)| r.clone()),
                        replay: (options.replay.iter())
                            .filter(|r| r.source == name)
                            .filter_map(|r| r.partitions.clone())
                            .collect(),
                    };
                    let source = topic::TopicSource::new(url, index, follow, &options, resume)?;
                    planning
                        .known
                        .lock()
                        .expect("not poisoned")
                        .topics
                        .insert(index, (name, source.started()));
                    Box::new(source)
                }
            });
        }
        Ok(Planner {
            sources,
            planning,
            started: false,
            replay: options.replay.into(),
        })
    }

    /// The input files known so far, by index, as they are found.
    pub fn known_files(&self) -> KnownFiles {
        Arc::clone(&self.planning.known)
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
            let source = self.planning.open(file, false);
            self.sources.push(Box::new(source));
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
        if let Some(replan) = self.replay.front() {
            for source in &mut self.sources {
                match source.exact(&mut self.planning, replan)? {
                    Exact::Other => {}
                    Exact::Wait => return Ok(Vec::new()),
                    Exact::Planned(epoch) => {
                        self.replay.pop_front();
                        return Ok(vec![epoch]);
                    }
                }
            }
            // The input no longer reads as it did: plan afresh from here.
            self.replay.clear();
        }
        let mut epochs = Vec::new();
        for source in &mut self.sources {
            epochs.extend(source.poll(&mut self.planning)?);
            if source.behind() {
                break;
            }
        }
        Ok(epochs)
    }
}

#[cfg(test)]
mod tests;
