//! The two kinds of output file: appended to epoch by epoch, and written whole.
//!
//! An [`AppendFile`] (`changelog.jsonl`, `dead_letter.jsonl`, ...) gets each epoch's lines and
//! is flushed before the epoch's line of `epochs.jsonl` is written. It is opened when its writer
//! is created and emptied, or cut to a checkpoint's length, when the run starts
//! ([`AppendFile::begin`]): a run that cannot start leaves it as it was. A file written whole
//! (snapshot, digests, summaries) goes to a temporary file beside the target, then is renamed
//! ([`write_atomically`]), so a reader never sees a half-written one.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

/// An output file that grows epoch by epoch.
pub struct AppendFile {
    name: &'static str,
    file: BufWriter<File>,
}

impl AppendFile {
    /// Opens (or creates) `name` in `dir`, to be emptied or cut by [`AppendFile::begin`].
    pub fn create(dir: &Path, name: &'static str) -> anyhow::Result<AppendFile> {
        let path = dir.join(name);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(AppendFile {
            name,
            file: BufWriter::with_capacity(1 << 20, file),
        })
    }

    /// The file's name in the output directory.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Why the file cannot be cut to `len` (a checkpoint's length), if it cannot: it is
    /// shorter.
    pub fn shorter_than(&self, len: u64) -> Option<String> {
        let meta = self.file.get_ref().metadata().ok()?;
        (meta.is_file() && meta.len() < len).then(|| {
            format!(
                "{} holds {} bytes, fewer than the {len} the checkpoint wrote: it is not this \
                 job's output; restore it, or start over with --from-scratch",
                self.name,
                meta.len()
            )
        })
    }

    /// Starts the run's writing: empties the file, or with `resume_at`, cuts it to that length
    /// (a checkpoint's, checked with [`AppendFile::shorter_than`]) and appends after it.
    pub fn begin(&mut self, resume_at: Option<u64>) -> anyhow::Result<()> {
        let file = self.file.get_mut();
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Ok(()); // a device or a pipe: nothing to cut
        }
        let keep = resume_at.unwrap_or(0);
        file.set_len(keep)
            .and_then(|()| file.seek(SeekFrom::Start(keep)).map(drop))
            .with_context(|| format!("cannot write {}", self.name))
    }

    /// Flushes what was written and makes it durable; returns the file's length.
    pub fn sync(&mut self) -> anyhow::Result<u64> {
        self.flush()?;
        let file = self.file.get_ref();
        file.sync_data()
            .and_then(|()| file.metadata())
            .map(|meta| meta.len())
            .with_context(|| format!("cannot write {}", self.name))
    }

    /// Where to write lines; [`AppendFile::flush`] after each epoch.
    pub fn out(&mut self) -> &mut BufWriter<File> {
        &mut self.file
    }

    /// Flushes what was written.
    pub fn flush(&mut self) -> anyhow::Result<()> {
        self.file
            .flush()
            .with_context(|| format!("cannot write {}", self.name))
    }

    /// Runs `write` on the file and flushes it; an error names the file.
    pub fn write<T>(
        &mut self,
        write: impl FnOnce(&mut BufWriter<File>) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let written =
            write(&mut self.file).with_context(|| format!("cannot write {}", self.name))?;
        self.flush()?;
        Ok(written)
    }
}

/// Writes `path` atomically with `write`.
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = Path::new(&tmp);
    let context = || format!("cannot write {}", path.display());
    let mut out = BufWriter::new(File::create(tmp).with_context(context)?);
    write(&mut out).with_context(context)?;
    out.flush().with_context(context)?;
    drop(out);
    std::fs::rename(tmp, path).with_context(context)
}

/// Writes `value` as pretty JSON to `path`, atomically.
pub fn write_json_atomically(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    write_atomically(path, |w| {
        serde_json::to_writer_pretty(&mut *w, value)?;
        Ok(w.write_all(b"\n")?)
    })
}

/// Creates the output directory `out` if it is missing.
pub fn create_out_dir(out: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create output directory {}", out.display()))
}
