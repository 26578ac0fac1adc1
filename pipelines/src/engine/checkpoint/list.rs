//! `amend checkpoints DIR`: the checkpoints of a directory, newest first, each checked.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use super::manifest::{self, FilePosition};

/// One checkpoint as listed.
#[derive(Serialize)]
pub struct Listed {
    /// Its epoch.
    pub epoch: u64,
    /// When it was committed.
    pub written_at: Option<String>,
    /// Workers that wrote it.
    pub workers: Option<usize>,
    /// Where reading each input file had reached.
    pub files: Vec<FilePosition>,
    /// Bytes of its parts, with those of earlier checkpoints it builds on.
    pub bytes: u64,
    /// Bytes it wrote itself: less than `bytes` when it is incremental.
    pub bytes_written: u64,
    /// The earlier checkpoints whose parts it builds on.
    pub builds_on: Vec<u64>,
    /// Whether every part matches its manifest.
    pub intact: bool,
    /// Why it is not intact.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// The checkpoints in `dir`, newest first.
pub fn list(dir: &Path) -> anyhow::Result<Vec<Listed>> {
    anyhow::ensure!(dir.is_dir(), "{}: not a directory", dir.display());
    let found = manifest::find(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    Ok(found
        .into_iter()
        .map(|found| match found.manifest {
            Ok(m) => {
                let problem = manifest::verify(dir, &m).err();
                let mut builds_on: Vec<u64> = m.parts.iter().map(|p| p.epoch).collect();
                builds_on.sort_unstable();
                builds_on.dedup();
                builds_on.retain(|e| *e != m.epoch);
                Listed {
                    epoch: m.epoch,
                    written_at: Some(m.written_at.clone()),
                    workers: Some(m.workers),
                    bytes: m.parts.iter().map(|p| p.bytes).sum(),
                    bytes_written: m
                        .parts
                        .iter()
                        .filter(|p| p.epoch == m.epoch)
                        .map(|p| p.bytes)
                        .sum(),
                    builds_on,
                    files: m.files,
                    intact: problem.is_none(),
                    problem,
                }
            }
            Err(problem) => Listed {
                epoch: found.epoch,
                written_at: None,
                workers: None,
                files: Vec::new(),
                bytes: 0,
                bytes_written: 0,
                builds_on: Vec::new(),
                intact: false,
                problem: Some(format!("{}: {problem}", manifest::MANIFEST)),
            },
        })
        .collect())
}

/// Writes `listed` as text, one checkpoint per paragraph, or as JSON.
pub fn write(listed: &[Listed], json: bool, out: &mut impl Write) -> anyhow::Result<()> {
    if json {
        serde_json::to_writer_pretty(&mut *out, listed)?;
        writeln!(out)?;
        return Ok(());
    }
    if listed.is_empty() {
        writeln!(out, "no checkpoints")?;
    }
    for c in listed {
        let state = match &c.problem {
            None => "intact".to_string(),
            Some(problem) => format!("NOT INTACT: {problem}"),
        };
        let incremental = match c.builds_on.as_slice() {
            [] => String::new(),
            on => format!(
                " ({} written, over epoch {})",
                c.bytes_written,
                on.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
            ),
        };
        writeln!(
            out,
            "epoch {}  written {}  {} worker(s)  {} bytes{incremental}  {state}",
            c.epoch,
            c.written_at.as_deref().unwrap_or("-"),
            c.workers.map_or("-".into(), |w| w.to_string()),
            c.bytes,
        )?;
        for f in &c.files {
            let done = if f.done { " (read whole)" } else { "" };
            writeln!(
                out,
                "  {}  at byte {} of {}{done}",
                f.path, f.offset, f.size
            )?;
        }
    }
    Ok(())
}
