//! A directory as a source: its files in name order, each a file source of its own; when
//! followed, each new file after them.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use amend_operators::ingest::source::{Epoch, InputFile};

use super::file::FileSource;
use super::{Exact, Planning, Replan, Source};

/// How often a followed directory is listed, at most.
pub(super) const DIR_SCAN_EVERY: Duration = Duration::from_millis(100);

/// A directory and the files found in it so far.
pub(super) struct DirSource {
    path: PathBuf,
    follow: bool,
    files: Vec<FileSource>,
    seen: BTreeSet<PathBuf>,
    scanned: Option<Instant>,
}

impl DirSource {
    /// The files of `path` now, numbered by `planning` in name order.
    pub(super) fn new(
        path: &Path,
        follow: bool,
        planning: &mut Planning,
    ) -> anyhow::Result<DirSource> {
        let mut source = DirSource {
            path: path.to_owned(),
            follow,
            files: Vec::new(),
            seen: BTreeSet::new(),
            scanned: Some(Instant::now()),
        };
        let files = dir_files(path)
            .map_err(|e| anyhow::anyhow!("{}: cannot list directory: {e}", path.display()))?;
        for file in files {
            let opened = InputFile::open(&file, planning.index(&file)?)?;
            source.files.push(planning.open(opened, follow));
            source.seen.insert(file);
        }
        Ok(source)
    }

    /// Takes the files that are new in the directory.
    fn scan(&mut self, planning: &mut Planning) -> io::Result<()> {
        self.scanned = Some(Instant::now());
        for file in dir_files(&self.path)? {
            if self.seen.insert(file.clone()) {
                let opened = InputFile::open(&file, planning.index(&file)?)
                    .map_err(|e| io::Error::other(e.to_string()))?;
                self.files.push(planning.open(opened, true));
            }
        }
        Ok(())
    }
}

impl Source for DirSource {
    fn poll(&mut self, planning: &mut Planning) -> io::Result<Vec<Epoch>> {
        if self.follow && self.scanned.is_none_or(|at| at.elapsed() >= DIR_SCAN_EVERY) {
            self.scan(planning)?;
        }
        let mut epochs = Vec::new();
        for file in &mut self.files {
            epochs.extend(file.poll(planning)?);
            if file.behind() {
                break;
            }
        }
        Ok(epochs)
    }

    fn done(&self) -> bool {
        !self.follow && self.files.iter().all(FileSource::done)
    }

    fn behind(&self) -> bool {
        self.files.iter().any(|f| f.behind())
    }

    fn exact(&mut self, planning: &mut Planning, replan: &Replan) -> io::Result<Exact> {
        let path = &replan.source;
        if self.follow && !self.seen.iter().any(|p| p.display().to_string() == *path) {
            self.scan(planning)?;
        }
        for file in &mut self.files {
            if let Exact::Planned(epoch) = file.exact(planning, replan)? {
                return Ok(Exact::Planned(epoch));
            }
        }
        Ok(Exact::Other)
    }
}

/// The files of a directory that are inputs, recursively, in path order; hidden files and
/// files of other types are left alone (so a writer can prepare `.name.tmp` and rename it).
fn dir_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_lowercase();
            if name.starts_with('.') {
                continue;
            }
            if entry.file_type()?.is_dir() {
                stack.push(path);
            } else if is_input_name(&name) {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

fn is_input_name(name: &str) -> bool {
    let stem = name.strip_suffix(".gz").unwrap_or(name);
    [".jsonl", ".ndjson", ".json", ".csv"]
        .iter()
        .any(|ext| stem.ends_with(ext))
}
