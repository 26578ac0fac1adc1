//! The epochs a run wrote after its checkpoint, planned again exactly when it resumes.
//!
//! Three records say what those epochs read, and the longest list wins (each is a prefix of
//! what the run planned):
//!
//! - `epochs.jsonl` after the checkpoint's length: one line per epoch written;
//! - `DIR/replay.json`: the list a resumed run found, kept before the outputs are cut (which
//!   removes it from `epochs.jsonl`), so that a run killed again before it has written those
//!   epochs again still finds them;
//! - `DIR/plans.jsonl`, with external sinks (a Kafka topic, a database): each epoch's plan,
//!   made durable before the sinks commit it. An epoch a sink committed is skipped after a
//!   restart by its number, so it must be planned again as it was even if the process died
//!   before its `epochs.jsonl` line.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use amend_operators::ingest::messages::PartitionRange;
use serde::{Deserialize, Serialize};

use crate::engine::writers::Planned;

/// An epoch to plan again, as `epochs.jsonl` records it: a file's byte range, or a topic's
/// offset range of each partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replan {
    /// The epoch.
    pub epoch: u64,
    /// The input's name.
    pub source: String,
    /// A file's first byte.
    pub start: Option<u64>,
    /// After a file's last byte (`None`: a gzip file read whole, or a topic).
    pub end: Option<u64>,
    /// A topic's offsets, by partition.
    #[serde(default)]
    pub partitions: Option<Vec<PartitionRange>>,
}

impl Replan {
    /// What `planned` read.
    pub fn of(planned: &Planned) -> Replan {
        let (start, end) = planned.file_range();
        Replan {
            epoch: planned.epoch,
            source: planned.name.clone(),
            start,
            end,
            partitions: planned.topic.as_ref().map(|t| t.ranges.clone()),
        }
    }

    /// Whether it says what was read: a file's start, or a topic's ranges.
    fn complete(&self) -> bool {
        self.start.is_some() != self.partitions.is_some()
    }
}

/// The epochs from `first` on that were planned after the checkpoint whose `epochs.jsonl` was
/// `len` bytes long, in order. A run killed before its first checkpoint replays them from 0.
pub fn replay(dir: &Path, out: &Path, len: u64, first: u64) -> anyhow::Result<Vec<Replan>> {
    let mut tail = epochs_after(out, len, first);
    let kept_path = dir.join(REPLAY);
    let kept: Option<Replay> = fs::read(&kept_path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    if let Some(kept) = kept.filter(|k| k.first == first)
        && kept.epochs.len() > tail.len()
    {
        tail = kept.epochs;
    }
    let mut logged = read_plans(&dir.join(PLANS));
    while let Some(next) = logged.remove(&(first + tail.len() as u64)) {
        tail.push(next);
    }
    let keep = Replay {
        first,
        epochs: tail.clone(),
    };
    write_atomically(dir, REPLAY, &serde_json::to_vec(&keep)?)?;
    Ok(tail)
}

/// Removes what a checkpoint directory keeps of epochs to plan again (with `--from-scratch`).
pub fn forget(dir: &Path) -> anyhow::Result<()> {
    for name in [REPLAY, PLANS] {
        let path = dir.join(name);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                anyhow::bail!("cannot remove {}: {e}", path.display())
            }
            _ => {}
        }
    }
    Ok(())
}

/// The file in a checkpoint directory that keeps the epochs to plan again.
const REPLAY: &str = "replay.json";

/// The log of each epoch's plan, with external sinks.
const PLANS: &str = "plans.jsonl";

/// The epochs written after a checkpoint, kept while they are written again.
#[derive(Serialize, Deserialize)]
struct Replay {
    /// The epoch they start at.
    first: u64,
    epochs: Vec<Replan>,
}

/// The epochs `epochs.jsonl` in `out` holds after its first `len` bytes, from epoch `first`.
fn epochs_after(out: &Path, len: u64, first: u64) -> Vec<Replan> {
    let Ok(text) = fs::read(out.join("epochs.jsonl")) else {
        return Vec::new();
    };
    let Some(tail) = text.get(len as usize..) else {
        return Vec::new();
    };
    let mut epochs = Vec::new();
    // Only complete lines: a torn last line was an epoch not fully written.
    for (expect, line) in (first..).zip(tail.split_inclusive(|b| *b == b'\n')) {
        if !line.ends_with(b"\n") {
            break;
        }
        match serde_json::from_slice::<Replan>(line) {
            Ok(replan) if replan.epoch == expect && replan.complete() => epochs.push(replan),
            _ => break,
        }
    }
    epochs
}

/// The plans a log holds, by epoch (the last of one epoch wins: a replanned epoch is logged
/// again, the same).
fn read_plans(path: &Path) -> BTreeMap<u64, Replan> {
    let text = fs::read(path).unwrap_or_default();
    text.split_inclusive(|b| *b == b'\n')
        .filter(|line| line.ends_with(b"\n"))
        .filter_map(|line| serde_json::from_slice::<Replan>(line).ok())
        .filter(Replan::complete)
        .map(|replan| (replan.epoch, replan))
        .collect()
}

fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let path = dir.join(name);
    fs::create_dir_all(dir)
        .and_then(|()| {
            let tmp = dir.join(format!("{name}.tmp"));
            fs::write(&tmp, bytes)?;
            File::open(&tmp)?.sync_all()?;
            fs::rename(&tmp, &path)?;
            File::open(dir)?.sync_all()
        })
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

/// The log of each epoch's plan, `DIR/plans.jsonl`: appended and synced before the external
/// sinks commit an epoch, and cut back to the epochs after each committed checkpoint.
pub struct PlanLog {
    dir: PathBuf,
    file: File,
}

impl PlanLog {
    /// Opens the log of the checkpoint directory `dir`, to append to.
    pub fn open(dir: &Path) -> anyhow::Result<PlanLog> {
        let path = dir.join(PLANS);
        fs::create_dir_all(dir)
            .and_then(|()| OpenOptions::new().create(true).append(true).open(&path))
            .map(|file| PlanLog {
                dir: dir.to_owned(),
                file,
            })
            .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))
    }

    /// Appends `planned` and makes it durable.
    pub fn log(&mut self, planned: &Planned) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(&Replan::of(planned))?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", self.dir.join(PLANS).display()))
    }

    /// Keeps only the plans of epochs after `epoch`, whose checkpoint is committed.
    pub fn committed(&mut self, epoch: u64) -> anyhow::Result<()> {
        let mut text = Vec::new();
        for replan in read_plans(&self.dir.join(PLANS)).into_values() {
            if replan.epoch > epoch {
                text.extend(serde_json::to_vec(&replan)?);
                text.push(b'\n');
            }
        }
        write_atomically(&self.dir, PLANS, &text)?;
        *self = PlanLog::open(&self.dir)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(epoch: u64, start: u64) -> Replan {
        Replan {
            epoch,
            source: "a.jsonl".into(),
            start: Some(start),
            end: Some(start + 10),
            partitions: None,
        }
    }

    #[test]
    fn the_plan_log_extends_what_epochs_jsonl_holds() {
        let dir = tempfile::tempdir().unwrap();
        let (ckpt, out) = (dir.path().join("ckpt"), dir.path().join("out"));
        fs::create_dir_all(&out).unwrap();
        let line = |r: &Replan| format!("{}\n", serde_json::to_string(r).unwrap());
        let topic = Replan {
            epoch: 4,
            source: "kafka://h:1/t".into(),
            start: None,
            end: None,
            partitions: Some(vec![PartitionRange {
                partition: 1,
                start: 3,
                end: 9,
            }]),
        };
        fs::write(
            out.join("epochs.jsonl"),
            line(&file(2, 0)) + &line(&file(3, 10)),
        )
        .unwrap();
        fs::create_dir_all(&ckpt).unwrap();
        let plans = [file(1, 0), file(3, 10), topic.clone(), file(6, 40)];
        let log: String = plans.iter().map(line).collect();
        fs::write(ckpt.join(PLANS), log).unwrap();
        let found = replay(&ckpt, &out, 0, 2).unwrap();
        assert_eq!(found, vec![file(2, 0), file(3, 10), topic.clone()]);
        // Kept: found again once epochs.jsonl is cut.
        fs::write(out.join("epochs.jsonl"), "").unwrap();
        fs::remove_file(ckpt.join(PLANS)).unwrap();
        assert_eq!(replay(&ckpt, &out, 0, 2).unwrap().len(), 3);
        forget(&ckpt).unwrap();
        assert!(replay(&ckpt, &out, 0, 2).unwrap().is_empty());
    }

    #[test]
    fn a_committed_checkpoint_cuts_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PlanLog::open(dir.path()).unwrap();
        for epoch in 0..5 {
            let planned = Planned {
                epoch,
                source: 0,
                name: "a.jsonl".into(),
                span: (epoch * 10, Some(epoch * 10 + 10)),
                topic: None,
                read_at: std::time::SystemTime::now(),
                checkpoint: false,
            };
            log.log(&planned).unwrap();
            if epoch == 2 {
                log.committed(1).unwrap();
            }
        }
        let kept: Vec<u64> = read_plans(&dir.path().join(PLANS)).into_keys().collect();
        assert_eq!(kept, vec![2, 3, 4]);
    }
}
