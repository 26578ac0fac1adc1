//! `amend digest` and `amend verify`: digests of snapshot files, and two results compared.
//!
//! A result is a `digests.json` or a snapshot file (amend's own, or an export in the snapshot
//! format made elsewhere). A snapshot is read with [`amend_operators::proof::snapshot`] and
//! digested as docs/format.md (section 7) says; two digests are compared window by window with
//! [`amend_operators::proof::compare`].

use std::io::Write;
use std::path::Path;

use amend_operators::Scale;
use amend_operators::proof::compare::{WindowDifference, check_digest, differing_windows};
use amend_operators::proof::digest::TableDigest;
use amend_operators::proof::snapshot::{SnapshotFields, digest_snapshot};
use amend_operators::time::format_millis;
use anyhow::Context;

use crate::UsageError;
use crate::cli::{DigestArgs, SnapshotReadArgs, VerifyArgs};
use crate::engine::writers::files::write_json_atomically;

/// An error of a command whose exit code 1 means "different" (`amend verify`,
/// `amend reconcile`): exits 2.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct CompareError(#[from] pub anyhow::Error);

impl SnapshotReadArgs {
    /// The column names and scale, validated.
    fn parse(&self) -> Result<(SnapshotFields, Scale), UsageError> {
        let scale = Scale::new(self.scale).map_err(|e| UsageError(format!("--scale {e}")))?;
        let fields = SnapshotFields {
            window_start: self.window_start_field.clone(),
            window_end: self.window_end_field.clone(),
            key: self.key_field.clone(),
            count: self.count_field.clone(),
            sum: self.sum_field.clone(),
            min: self.min_field.clone(),
            max: self.max_field.clone(),
            mean: None,
        };
        Ok((fields, scale))
    }
}

/// `amend digest FILE`: prints the table digest (`<digest>  <FILE>`, as `sha256sum` does) and
/// writes digests.json to `--out` if given.
pub fn run_digest(args: &DigestArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let (fields, scale) = args.snapshot.parse()?;
    let (digest, _rows) = digest_snapshot(&args.file, &fields, scale)?;
    if let Some(path) = &args.out {
        write_json_atomically(path, &digest)?;
    }
    writeln!(out, "{}  {}", digest.table, args.file.display())?;
    Ok(())
}

/// Reads one side of `amend verify`: a digests.json if its name ends in `.json` and it holds
/// one JSON object with a `table` field, else a snapshot.
fn read_result(path: &Path, fields: &SnapshotFields, scale: Scale) -> anyhow::Result<TableDigest> {
    let is_json = path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("json"));
    if is_json {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if let Ok(serde_json::Value::Object(object)) = serde_json::from_str(&text)
            && object.contains_key("table")
        {
            let digest: TableDigest = serde_json::from_value(serde_json::Value::Object(object))
                .with_context(|| format!("{}: not a digests.json", path.display()))?;
            check_digest(&digest).map_err(|e| {
                anyhow::anyhow!("{}: not a valid digests.json: {e}", path.display())
            })?;
            return Ok(digest);
        }
    }
    Ok(digest_snapshot(path, fields, scale)?.0)
}

/// `amend verify A B`: `Ok(true)` if equal. Prints `equal: <table digest>`, or `different:`
/// and the differing windows.
pub fn run_verify(args: &VerifyArgs, out: &mut impl Write) -> Result<bool, CompareError> {
    let (fields, scale) = args.snapshot.parse().map_err(anyhow::Error::from)?;
    let a = read_result(&args.a, &fields, scale)?;
    let b = read_result(&args.b, &fields, scale)?;
    let differences = differing_windows(&a, &b);
    let write = |out: &mut dyn Write| -> std::io::Result<()> {
        if differences.is_empty() && a.table == b.table {
            return writeln!(out, "equal: {} ({} windows)", a.table, a.windows.len());
        }
        writeln!(
            out,
            "different: {} of {} windows differ",
            differences.len(),
            a.windows.len().max(b.windows.len())
        )?;
        writeln!(out, "A {}  {}", a.table, args.a.display())?;
        writeln!(out, "B {}  {}", b.table, args.b.display())?;
        for WindowDifference { start, end, a, b } in &differences {
            let side = |d: &Option<String>| d.clone().unwrap_or_else(|| "-".into());
            writeln!(
                out,
                "{} {} A {} B {}",
                format_millis(*start),
                format_millis(*end),
                side(a),
                side(b)
            )?;
        }
        Ok(())
    };
    write(out).map_err(anyhow::Error::from)?;
    Ok(differences.is_empty() && a.table == b.table)
}
