//! A checkpoint on disk: its directory, its parts, and the manifest that commits it.
//!
//! `DIR/epoch-<E>/` holds one state part per worker (`worker-<i>.state`), the sink's
//! (`sink.state`) and, once every part is durable, `manifest.json`, written to a temporary
//! file, synced, renamed into place, and the directory synced: a checkpoint without a manifest
//! was never committed, and one whose manifest does not parse or whose parts' SHA-256 differ
//! from it is not intact. docs/design/0007-checkpoints.md gives the format and the protocol.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The version of the checkpoint format: the manifest's fields and the parts' layout.
pub const FORMAT: u32 = 3;

/// What a committed checkpoint is: the point it was taken at, and its parts.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// The checkpoint format.
    pub format: u32,
    /// The last epoch it holds.
    pub epoch: u64,
    /// When it was committed (RFC 3339).
    pub written_at: String,
    /// Workers that wrote it.
    pub workers: usize,
    /// The settings that change results, by flag.
    pub settings: BTreeMap<String, String>,
    /// The inputs as given on the command line, in ingestion order.
    pub inputs: Vec<String>,
    /// Every input file known, by index: where reading had reached.
    pub files: Vec<FilePosition>,
    /// Every topic known, by index: where reading each partition had reached.
    #[serde(default)]
    pub topics: Vec<TopicPosition>,
    /// The index the next new input file gets.
    pub next_index: u32,
    /// The length of each append-only output, by file name.
    pub outputs: BTreeMap<String, u64>,
    /// The greatest event time read, epoch milliseconds.
    pub max_ts: Option<i64>,
    /// Records read up to the checkpoint.
    pub records_read: u64,
    /// The parts.
    pub parts: Vec<PartEntry>,
}

/// Where reading an input topic had reached.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TopicPosition {
    /// Its index among inputs.
    pub index: u32,
    /// Its URL, as given.
    pub name: String,
    /// Each partition's next offset.
    pub partitions: Vec<amend_operators::ingest::messages::PartitionNext>,
}

/// Where reading an input file had reached, and what identifies the file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FilePosition {
    /// Its index among inputs.
    pub index: u32,
    /// Its path, as found.
    pub path: String,
    /// The line-aligned offset reached: every line before it was read.
    pub offset: u64,
    /// Whether it is read to its end for good (a compressed file is read once, whole).
    pub done: bool,
    /// Its size when the checkpoint was taken.
    pub size: u64,
    /// Its device and inode.
    pub dev: u64,
    /// Its inode.
    pub inode: u64,
    /// SHA-256 of its first `prefix_bytes` bytes.
    pub prefix_sha256: String,
    /// How many bytes the prefix hash covers: up to 64 KiB of what was read.
    pub prefix_bytes: u64,
}

/// The bytes of a file's start that identify it.
pub const PREFIX_BYTES: u64 = 64 << 10;

impl FilePosition {
    /// The position `offset` of the file at `path` (index `index`), identified as it is now.
    pub fn of(index: u32, path: &Path, offset: u64, done: bool) -> io::Result<FilePosition> {
        use std::os::unix::fs::MetadataExt;
        let meta = fs::metadata(path)?;
        let prefix_bytes = offset.min(PREFIX_BYTES);
        Ok(FilePosition {
            index,
            path: path.display().to_string(),
            offset,
            done,
            size: meta.len(),
            dev: meta.dev(),
            inode: meta.ino(),
            prefix_sha256: prefix_hash(path, prefix_bytes)?,
            prefix_bytes,
        })
    }

    /// Why the file at its path is no longer the one checkpointed, if it is not.
    pub fn changed(&self) -> Option<String> {
        use std::os::unix::fs::MetadataExt;
        let path = Path::new(&self.path);
        let meta = match fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) => return Some(format!("input {} is gone: {e}", self.path)),
        };
        if (meta.dev(), meta.ino()) != (self.dev, self.inode) {
            return Some(format!(
                "input {} was replaced since the checkpoint (another file is at its path)",
                self.path
            ));
        }
        if meta.len() < self.offset {
            return Some(format!(
                "input {} is shorter ({} bytes) than the {} bytes the checkpoint had read",
                self.path,
                meta.len(),
                self.offset
            ));
        }
        match prefix_hash(path, self.prefix_bytes) {
            Ok(hash) if hash == self.prefix_sha256 => None,
            Ok(_) => Some(format!(
                "input {} changed since the checkpoint (its first {} bytes differ)",
                self.path, self.prefix_bytes
            )),
            Err(e) => Some(format!("input {}: {e}", self.path)),
        }
    }
}

fn prefix_hash(path: &Path, bytes: u64) -> io::Result<String> {
    use std::io::Read;
    let mut prefix = Vec::new();
    File::open(path)?.take(bytes).read_to_end(&mut prefix)?;
    Ok(hex(&Sha256::digest(&prefix)))
}

/// One part of a checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartEntry {
    /// Its file name in the directory of the checkpoint that wrote it.
    pub file: String,
    /// The epoch of that checkpoint: this one's, or an earlier one's that this one builds on.
    pub epoch: u64,
    /// Whether it holds changes to the parts of the same name listed before it (else every
    /// entry).
    pub changes: bool,
    /// Its length.
    pub bytes: u64,
    /// Its SHA-256.
    pub sha256: String,
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The directory of the checkpoint of `epoch` in `dir`.
pub fn epoch_dir(dir: &Path, epoch: u64) -> PathBuf {
    dir.join(format!("epoch-{epoch:012}"))
}

/// The epoch of a checkpoint's directory, from its name (`epoch-<E>`).
pub fn epoch_of_dir(name: &std::ffi::OsStr) -> Option<u64> {
    name.to_str()?.strip_prefix("epoch-")?.parse().ok()
}

/// The name of the manifest in a checkpoint's directory.
pub const MANIFEST: &str = "manifest.json";

/// Writes the part `file` of the checkpoint of `epoch` in `dir` with `write`, synced; returns
/// its entry. `write` says whether the part holds changes.
pub fn write_part(
    dir: &Path,
    epoch: u64,
    file: &str,
    write: impl FnOnce(&mut dyn Write) -> io::Result<bool>,
) -> anyhow::Result<PartEntry> {
    let path = &epoch_dir(dir, epoch).join(file);
    let context = || format!("cannot write checkpoint part {}", path.display());
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(context)?;
    }
    let created = File::create(path).with_context(context)?;
    let mut out = Hashing {
        out: BufWriter::with_capacity(1 << 20, created),
        hash: Sha256::new(),
        bytes: 0,
    };
    let changes = write(&mut out).with_context(context)?;
    let Hashing { out, hash, bytes } = out;
    out.into_inner()
        .map_err(|e| e.into_error())
        .with_context(context)?
        .sync_all()
        .with_context(context)?;
    Ok(PartEntry {
        file: file.to_string(),
        epoch,
        changes,
        bytes,
        sha256: hex(&hash.finalize()),
    })
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W> {
    out: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Commits `manifest` in its checkpoint's directory under `dir`: temporary file, sync,
/// rename, sync of the directory and of `dir`.
pub fn commit(dir: &Path, manifest: &Manifest) -> anyhow::Result<()> {
    let at = epoch_dir(dir, manifest.epoch);
    let path = at.join(MANIFEST);
    let tmp = at.join("manifest.json.tmp");
    let context = || format!("cannot commit checkpoint {}", path.display());
    let mut file = File::create(&tmp).with_context(context)?;
    serde_json::to_writer_pretty(&mut file, manifest).with_context(context)?;
    file.write_all(b"\n").with_context(context)?;
    file.sync_all().with_context(context)?;
    drop(file);
    super::fault("before-manifest-rename");
    fs::rename(&tmp, &path).with_context(context)?;
    sync_dir(&at).with_context(context)?;
    sync_dir(dir).with_context(context)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A checkpoint found in a directory.
pub struct Found {
    /// Its epoch.
    pub epoch: u64,
    /// Its directory.
    pub dir: PathBuf,
    /// Its manifest, or why it cannot be read.
    pub manifest: Result<Manifest, String>,
}

/// The checkpoints in `dir` that have a manifest (committed, intact or not), newest first.
pub fn find(dir: &Path) -> io::Result<Vec<Found>> {
    let mut found = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let Some(epoch) = epoch_of_dir(&entry.file_name()) else {
            continue;
        };
        let path = entry.path().join(MANIFEST);
        if !path.exists() {
            continue;
        }
        let manifest = fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|text| {
                serde_json::from_slice::<Manifest>(&text).map_err(|e| format!("torn or bad: {e}"))
            })
            .and_then(|m| {
                if m.format != FORMAT {
                    Err(format!("format {} (this amend reads {FORMAT})", m.format))
                } else if m.epoch != epoch {
                    Err(format!(
                        "names epoch {} in the directory of {epoch}",
                        m.epoch
                    ))
                } else {
                    Ok(m)
                }
            });
        found.push(Found {
            epoch,
            dir: entry.path(),
            manifest,
        });
    }
    found.sort_by_key(|f| std::cmp::Reverse(f.epoch));
    Ok(found)
}

/// Reads every part of `manifest` in the checkpoint directory `dir`, checking each against its
/// SHA-256 (the parts in parallel, one thread each): each part name's chain of parts, in the
/// manifest's order, or the first part that is missing or differs.
pub fn read_parts(dir: &Path, manifest: &Manifest) -> Result<Parts, String> {
    let read = |part: &PartEntry| -> Result<Vec<u8>, String> {
        let path = part_path(dir, part);
        let bytes = fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        check(
            part,
            &path,
            bytes.len() as u64,
            Sha256::digest(&bytes).as_slice(),
        )?;
        Ok(bytes)
    };
    let read: Vec<Result<Vec<u8>, String>> = std::thread::scope(|scope| {
        let threads: Vec<_> = manifest
            .parts
            .iter()
            .map(|part| scope.spawn(move || read(part)))
            .collect();
        threads
            .into_iter()
            .map(|t| {
                t.join()
                    .unwrap_or_else(|_| Err("reading a part panicked".into()))
            })
            .collect()
    });
    let mut parts = Parts::new();
    for (part, bytes) in manifest.parts.iter().zip(read) {
        parts
            .entry(part.file.clone())
            .or_default()
            .push(Arc::new(bytes?));
    }
    Ok(parts)
}

/// The parts of a checkpoint by name, each a chain: a part of every entry, then parts of
/// changes.
pub type Parts = BTreeMap<String, Vec<Arc<Vec<u8>>>>;

/// Where `part` is, in the checkpoint directory `dir`.
fn part_path(dir: &Path, part: &PartEntry) -> PathBuf {
    epoch_dir(dir, part.epoch).join(&part.file)
}

/// Checks every part of `manifest` in the checkpoint directory `dir` without keeping it: `Err`
/// names the first bad one.
pub fn verify(dir: &Path, manifest: &Manifest) -> Result<(), String> {
    for part in &manifest.parts {
        let path = part_path(dir, part);
        let mut file = File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut hash = Hashing {
            out: io::sink(),
            hash: Sha256::new(),
            bytes: 0,
        };
        io::copy(&mut file, &mut hash).map_err(|e| e.to_string())?;
        let Hashing { hash, bytes, .. } = hash;
        check(part, &path, bytes, hash.finalize().as_slice())?;
    }
    Ok(())
}

/// Whether the part at `path`, of `bytes` bytes with SHA-256 `sha256`, is the one `part` lists.
fn check(part: &PartEntry, path: &Path, bytes: u64, sha256: &[u8]) -> Result<(), String> {
    if bytes != part.bytes || hex(sha256) != part.sha256 {
        return Err(format!(
            "{}: its SHA-256 differs from the manifest's",
            path.display()
        ));
    }
    Ok(())
}

/// Removes checkpoints of `dir` beyond the newest `retained` committed ones, and directories of
/// checkpoints older than the newest committed one that were never committed. A removed
/// checkpoint whose parts a kept one builds on loses only its manifest: its parts stay.
pub fn prune(dir: &Path, retained: usize) -> io::Result<()> {
    let committed = find(dir)?;
    let kept = &committed[..retained.min(committed.len())];
    let Some(newest) = kept.first().map(|f| f.epoch) else {
        return Ok(());
    };
    let mut used = Vec::new();
    for found in kept {
        match &found.manifest {
            Ok(m) => used.extend(m.parts.iter().map(|p| p.epoch)),
            // Which parts a damaged manifest used is unknown: keep everything older.
            Err(_) => return Ok(()),
        }
    }
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Some(epoch) = epoch_of_dir(&entry.file_name()) else {
            continue;
        };
        if epoch >= newest || kept.iter().any(|f| f.epoch == epoch) {
            continue;
        }
        if used.contains(&epoch) {
            match fs::remove_file(entry.path().join(MANIFEST)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        } else {
            fs::remove_dir_all(entry.path())?;
        }
    }
    Ok(())
}
