//! Checkpoints: the state of a run at an epoch boundary, saved so that a restarted run resumes
//! there and writes every output line exactly once.
//!
//! A checkpoint of epoch `E` is taken after `E` has passed the whole dataflow and its output
//! is flushed: each worker saves its operators' state when it has finished `E`
//! ([`amend_operators::incremental::durable::Store`]), the sink saves its own (the table, the
//! counts, the writers' counts), the append-only outputs are synced and their lengths noted,
//! with where reading each input had reached; once every part is durable the sink commits the
//! manifest ([`manifest`]). [`open`] finds the newest intact checkpoint of a directory and
//! checks that the run may resume from it. docs/design/0007-checkpoints.md has the whole.

pub mod list;
pub mod manifest;
pub mod replay;
pub mod sink_part;
pub mod take;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::UsageError;
use manifest::{Found, Manifest};

/// How a run checkpoints, from `--checkpoint-dir` and its flags.
#[derive(Clone, Debug)]
pub struct CheckpointConfig {
    /// Where checkpoints go.
    pub dir: PathBuf,
    /// At most this often (zero: after every epoch); always at the end.
    pub interval: Duration,
    /// Committed checkpoints kept.
    pub retained: usize,
    /// Whether to ignore (and remove) the checkpoints there and start over.
    pub from_scratch: bool,
    /// The settings that change results, by flag: a resumed run must have the same.
    pub settings: BTreeMap<String, String>,
    /// The inputs as given, in ingestion order: a resumed run's must extend them.
    pub inputs: Vec<String>,
    /// Whether each epoch's plan is made durable before it is written (for sinks outside the
    /// output directory, which skip what they committed by epoch number).
    pub log_plans: bool,
}

/// A checkpoint a run resumes from, checked and read.
pub struct Resume {
    /// Its manifest.
    pub manifest: Manifest,
    /// Its parts' bytes, by file name (each a chain), until the workers and the sink have
    /// taken them: the loaded state does not keep them in memory for the rest of the run.
    pub parts: Mutex<Handoff>,
    /// The epochs written after it, as `epochs.jsonl` recorded them: planned again exactly.
    pub replay: Vec<replay::Replan>,
}

impl Resume {
    /// The epoch the resumed run starts at.
    pub fn next_epoch(&self) -> u64 {
        self.manifest.epoch + 1
    }

    /// Takes the chains of parts worker `index` of `peers` loads, and whether it must filter
    /// their entries (when the number of workers changed: then every worker loads every chain,
    /// and they are let go once all `peers` have taken them). Each worker takes them once.
    pub fn take_worker_parts(&self, index: usize, peers: usize) -> (Vec<Vec<Arc<Vec<u8>>>>, bool) {
        let mut handoff = self.parts.lock().expect("not poisoned");
        if peers == self.manifest.workers {
            let own = handoff.parts.remove(&worker_part(index));
            return (own.into_iter().collect(), false);
        }
        let all = (0..self.manifest.workers)
            .filter_map(|w| handoff.parts.get(&worker_part(w)).cloned())
            .collect();
        handoff.workers_taken += 1;
        if handoff.workers_taken == peers {
            handoff.parts.retain(|name, _| name == SINK_PART);
        }
        (all, true)
    }

    /// Takes the sink's chain of parts.
    pub fn take_sink_parts(&self) -> Option<Vec<Arc<Vec<u8>>>> {
        self.parts
            .lock()
            .expect("not poisoned")
            .parts
            .remove(SINK_PART)
    }

    /// The chain of the parts named `file`, to build on.
    pub fn chain(&self, file: &str) -> take::Chain {
        let mut chain = take::Chain::default();
        for part in self.manifest.parts.iter().filter(|p| p.file == file) {
            chain.push(part.clone());
        }
        chain
    }
}

/// A checkpoint's parts, as the workers and the sink take them.
pub struct Handoff {
    parts: manifest::Parts,
    /// How many workers have taken copies of every chain (when re-partitioning).
    workers_taken: usize,
}

/// The file name of worker `index`'s part.
pub fn worker_part(index: usize) -> String {
    format!("worker-{index}.state")
}

/// The file name of the sink's part.
pub const SINK_PART: &str = "sink.state";

/// Fault injection for crash tests: with `AMEND_FAULT=POINT:N` in the environment, the
/// process aborts (as abruptly as `kill -9`: nothing is flushed) the `N`-th time it reaches
/// `point`: `before-sink-part` (workers' parts written, the sink's not), `before-manifest-rename`
/// (the manifest written and synced under its temporary name), `after-kafka-commit` (an
/// epoch's Kafka transaction committed, its `epochs.jsonl` line not written).
pub fn fault(point: &str) {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static FAULT: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static SEEN: AtomicU64 = AtomicU64::new(0);
    let fault = FAULT.get_or_init(|| {
        let text = std::env::var("AMEND_FAULT").ok()?;
        let (at, n) = text.split_once(':').unwrap_or((&text, "1"));
        Some((at.to_string(), n.parse().ok()?))
    });
    if let Some((at, n)) = fault
        && at == point
        && SEEN.fetch_add(1, Ordering::Relaxed) + 1 == *n
    {
        std::process::abort();
    }
}

fn usage(text: String) -> anyhow::Error {
    anyhow::Error::new(UsageError(text))
}

/// Finds the checkpoint the run of `config` resumes from: the newest intact one in its
/// directory (saying on stderr why a newer one is not), or `None` if there is none (or with
/// `--from-scratch`, after removing them). Exits 2 (a [`UsageError`]) when checkpoints are
/// there but none is intact, or the run differs from the checkpointed one.
pub fn open(config: &CheckpointConfig, out: &Path) -> anyhow::Result<Option<Resume>> {
    let dir = &config.dir;
    let found = manifest::find(dir)
        .map_err(|e| usage(format!("--checkpoint-dir {}: {e}", dir.display())))?;
    if config.from_scratch {
        remove_all(dir)?;
        replay::forget(dir)?;
        return Ok(None);
    }
    if found.is_empty() {
        return Ok(None);
    }
    let mut last_problem = String::new();
    for Found {
        epoch,
        dir: _,
        manifest,
    } in found
    {
        let read = manifest.and_then(|m| {
            let parts = manifest::read_parts(dir, &m)?;
            Ok((m, parts))
        });
        match read {
            Ok((manifest, parts)) => {
                check(config, &manifest)?;
                let len = manifest.outputs.get("epochs.jsonl").copied().unwrap_or(0);
                let replay = replay::replay(dir, out, len, manifest.epoch + 1)?;
                return Ok(Some(Resume {
                    manifest,
                    parts: Mutex::new(Handoff {
                        parts,
                        workers_taken: 0,
                    }),
                    replay,
                }));
            }
            Err(problem) => {
                eprintln!(
                    "amend: checkpoint of epoch {epoch} in {} is not intact ({problem}); \
                     trying an older one",
                    dir.display()
                );
                last_problem = problem;
            }
        }
    }
    Err(usage(format!(
        "no intact checkpoint in {} (the oldest: {last_problem}); --from-scratch starts over",
        dir.display()
    )))
}

/// Checks that the run of `config` may resume from `manifest`.
fn check(config: &CheckpointConfig, manifest: &Manifest) -> anyhow::Result<()> {
    let keys = config.settings.keys().chain(manifest.settings.keys());
    for key in keys {
        let (now, then) = (config.settings.get(key), manifest.settings.get(key));
        if now != then {
            let show = |v: Option<&String>| v.cloned().unwrap_or_else(|| "not given".into());
            return Err(usage(format!(
                "{key} differs from the checkpoint's ({} there, {} here): resume with the \
                 same settings, or start over with --from-scratch",
                show(then),
                show(now)
            )));
        }
    }
    let extends = manifest.inputs.len() <= config.inputs.len()
        && manifest
            .inputs
            .iter()
            .zip(&config.inputs)
            .all(|(a, b)| a == b);
    if !extends {
        let missing = manifest
            .inputs
            .iter()
            .zip(
                config
                    .inputs
                    .iter()
                    .map(Some)
                    .chain(std::iter::repeat(None)),
            )
            .find(|(then, now)| Some(*then) != *now)
            .map(|(then, _)| then.clone())
            .unwrap_or_default();
        return Err(usage(format!(
            "the inputs differ from the checkpoint's: {missing} was removed or moved; a resumed \
             run may only add inputs after the checkpointed ones ({})",
            manifest.inputs.join(" ")
        )));
    }
    for file in &manifest.files {
        if let Some(problem) = file.changed() {
            return Err(usage(format!("{problem}; --from-scratch starts over")));
        }
    }
    Ok(())
}

/// Removes every checkpoint in `dir`.
fn remove_all(dir: &Path) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        if manifest::epoch_of_dir(&entry.file_name()).is_some() {
            std::fs::remove_dir_all(entry.path()).map_err(|e| {
                anyhow::anyhow!("cannot remove checkpoint {}: {e}", entry.path().display())
            })?;
        }
    }
    Ok(())
}
