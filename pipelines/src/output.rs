//! Output files written whole: to a temporary file beside the target, then renamed, so a
//! reader never sees a half-written snapshot, digest or summary.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

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
