//! `amend reconcile`: the aggregate job, and its table compared with a published one.
//!
//! The command runs the engine as `amend aggregate` does, with one more writer,
//! [`ReconcileFiles`]. The published table is read on a thread of its own while the dataflow
//! runs ([`PublishedTable`]); the writer compares it with the correct table
//! ([`amend_operators::proof::reconcile::Reconciler`]): epoch by epoch in follow mode
//! (`reconcile_changelog.jsonl`), and whole at each snapshot point (reconcile.jsonl,
//! corrections_out.jsonl, upserts_out.jsonl, reconcile_summary.json, report.html, and
//! summary.json with the comparison in it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use amend_operators::output::table::Table;
use amend_operators::proof::compare::differing_windows;
use amend_operators::proof::digest::TableDigest;
use amend_operators::proof::reconcile::{KindCounts, ReconcileOutputs, Reconciler};
use amend_operators::proof::snapshot::{SnapshotFields, digest_rows, read_snapshot};
use amend_operators::{Agg, Decimal, Scale, Window};
use anyhow::{Context, anyhow};
use compact_str::CompactString;
use serde::Serialize;

use crate::aggregate::{AggregateConfig, TableWriters};
use crate::engine::summary::Summary;
use crate::engine::writers::files::{AppendFile, write_atomically, write_json_atomically};
use crate::engine::writers::{ClosedEpoch, Needs, SnapshotPoint, Writer};
use crate::report::{ReportInput, write_report};

/// Everything `amend reconcile` needs, validated.
#[derive(Clone, Debug)]
pub struct ReconcileConfig {
    /// The aggregate job.
    pub aggregate: AggregateConfig,
    /// The published table and how it is compared.
    pub published: ReconcileSettings,
}

/// How `amend reconcile` reads the published table and compares it.
#[derive(Clone, Debug)]
pub struct ReconcileSettings {
    /// The published table.
    pub published: PathBuf,
    /// Its column names.
    pub fields: SnapshotFields,
    /// Largest decimal difference that still matches.
    pub tolerance: Decimal,
    /// How many of the largest discrepancies the report lists.
    pub report_rows: usize,
}

/// Runs `amend reconcile`: the aggregate job's outputs, and the comparison's.
pub fn run(config: &ReconcileConfig) -> anyhow::Result<(Summary, ReconcileSummary)> {
    let aggregate = &config.aggregate;
    let engine = &aggregate.engine;
    let mut table = TableWriters::create(aggregate)?;
    let mut files = ReconcileFiles::create(
        &engine.out,
        engine.follow,
        engine.scale,
        config.published.clone(),
    )?;
    let mut gaps = aggregate
        .gaps
        .map(|settings| crate::gaps::GapFiles::create(engine, settings))
        .transpose()?;
    let mut writers = table.list();
    if let Some(gaps) = &mut gaps {
        writers.push(gaps);
    }
    writers.push(&mut files);
    let summary = crate::engine::run(engine, &aggregate.computations(), writers)?;
    let reconciled = files
        .summary
        .ok_or_else(|| anyhow!("internal error: the comparison was never written"))?;
    Ok((summary, reconciled))
}

/// The comparison's outputs, and summary.json with the comparison in it.
pub struct ReconcileFiles {
    dir: PathBuf,
    scale: Scale,
    settings: ReconcileSettings,
    published: PublishedTable,
    /// With --follow: each epoch's changes of the comparison.
    changelog: Option<AppendFile>,
    changelog_lines: u64,
    /// What reconcile_summary.json held last.
    summary: Option<ReconcileSummary>,
}

impl ReconcileFiles {
    /// Starts reading the published table of `settings`, and creates the comparison's outputs
    /// in `dir`, `reconcile_changelog.jsonl` if `per_epoch` (otherwise an old one is removed:
    /// it would be stale beside this run's outputs).
    pub fn create(
        dir: &Path,
        per_epoch: bool,
        scale: Scale,
        settings: ReconcileSettings,
    ) -> anyhow::Result<ReconcileFiles> {
        const CHANGELOG: &str = "reconcile_changelog.jsonl";
        let changelog = if per_epoch {
            Some(AppendFile::create(dir, CHANGELOG)?)
        } else {
            let _ = std::fs::remove_file(dir.join(CHANGELOG));
            None
        };
        Ok(ReconcileFiles {
            dir: dir.to_owned(),
            scale,
            published: PublishedTable::load(&settings, scale),
            settings,
            changelog,
            changelog_lines: 0,
            summary: None,
        })
    }
}

/// summary.json of a reconcile run: the aggregate's, with the comparison under `reconcile`.
#[derive(Serialize)]
struct SummaryOut<'a> {
    #[serde(flatten)]
    summary: &'a Summary,
    reconcile: &'a ReconcileSummary,
}

impl Writer for ReconcileFiles {
    fn appends(&mut self) -> Vec<&mut AppendFile> {
        self.changelog.iter_mut().collect()
    }

    fn save(&self) -> Vec<u64> {
        vec![self.changelog_lines]
    }

    fn restore(&mut self, saved: &[u64]) {
        self.changelog_lines = saved.first().copied().unwrap_or(0);
    }

    fn needs(&self) -> Needs {
        // A comparison walks the whole table: no rows leave memory.
        Needs {
            whole_table: true,
            ..Needs::default()
        }
    }

    fn check(&mut self) -> anyhow::Result<()> {
        // A bad published table stops the run early.
        self.published.check()
    }

    fn epoch(&mut self, epoch: &ClosedEpoch<'_>) -> anyhow::Result<()> {
        let (Some(out), Some(table)) = (&mut self.changelog, epoch.table) else {
            return Ok(());
        };
        let (reconciler, _) = self.published.get()?;
        let changes: Vec<_> = table.changes().iter().collect();
        let rows = table.table().rows();
        self.changelog_lines +=
            out.write(|out| Ok(reconciler.write_epoch(epoch.epoch, &changes, rows, out)?))?;
        Ok(())
    }

    fn snapshot(&mut self, at: &SnapshotPoint<'_>) -> anyhow::Result<()> {
        let (Some(table), Some(digest)) = (at.table(), at.digest()) else {
            return Ok(());
        };
        let read = at.read();
        let facts = RunFacts {
            records_read: read.records_read,
            records_dead_lettered: read.records_dead_lettered,
            epochs: at.run_stats().epochs,
            changelog_lines: self.changelog_lines,
        };
        let reconciled = write_outputs(
            &self.dir,
            &self.settings,
            self.scale,
            &mut self.published,
            table.table(),
            digest,
            &facts,
        )?;
        let summary = SummaryOut {
            summary: at.summary(),
            reconcile: &reconciled,
        };
        write_json_atomically(&self.dir.join("summary.json"), &summary)?;
        self.summary = Some(reconciled);
        Ok(())
    }
}

/// The published table: being read, or read with its digest.
pub enum PublishedTable {
    /// Read on a thread.
    Loading(JoinHandle<anyhow::Result<(Reconciler, TableDigest)>>),
    /// Read.
    Ready(Box<(Reconciler, TableDigest)>),
    /// Reading failed; the error was returned.
    Failed,
}

impl PublishedTable {
    /// Starts reading the published table of `settings` at `scale`.
    pub fn load(settings: &ReconcileSettings, scale: Scale) -> Self {
        let settings = settings.clone();
        PublishedTable::Loading(std::thread::spawn(move || {
            let rows = read_snapshot(&settings.published, &settings.fields, scale)
                .context("cannot read the published table")?;
            let digest = digest_rows(&rows, scale);
            Ok((Reconciler::new(rows, settings.tolerance, scale), digest))
        }))
    }

    /// Returns an error as soon as reading has failed, without waiting for it.
    pub fn check(&mut self) -> anyhow::Result<()> {
        if matches!(self, PublishedTable::Loading(handle) if handle.is_finished()) {
            self.get()?;
        }
        Ok(())
    }

    /// The comparison and the published digest, waiting for the table to be read.
    pub fn get(&mut self) -> anyhow::Result<&mut (Reconciler, TableDigest)> {
        if let PublishedTable::Loading(_) = self {
            let PublishedTable::Loading(handle) = std::mem::replace(self, PublishedTable::Failed)
            else {
                unreachable!("matched above")
            };
            let loaded = handle
                .join()
                .map_err(|_| anyhow!("internal error: reading the published table panicked"))??;
            *self = PublishedTable::Ready(Box::new(loaded));
        }
        match self {
            PublishedTable::Ready(ready) => Ok(ready),
            _ => Err(anyhow!("the published table could not be read")),
        }
    }
}

/// What `amend reconcile` reports in reconcile_summary.json (and summary.json's `reconcile`).
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct ReconcileSummary {
    /// The published file.
    pub published: String,
    /// Rows of the published table.
    pub published_rows: u64,
    /// Rows of the correct (recomputed) table.
    pub correct_rows: u64,
    /// Decimal differences up to this count as a match.
    pub tolerance: String,
    /// (window, key)s of each kind.
    pub kinds: KindCounts,
    /// Mismatches, missing and extra rows.
    pub discrepancies: u64,
    /// Lines of corrections_out.jsonl.
    pub corrections_out_lines: u64,
    /// Lines of upserts_out.jsonl.
    pub upserts_out_lines: u64,
    /// The epoch the corrections carry: the last one the correct table includes.
    pub epoch: u64,
    /// Lines of reconcile_changelog.jsonl (with --follow).
    pub reconcile_changelog_lines: u64,
    /// Table digest of the correct table (digests.json).
    pub correct_digest: String,
    /// Table digest of the published table.
    pub published_digest: String,
    /// Windows whose digests differ between the two.
    pub windows_differing: u64,
}

impl ReconcileSummary {
    /// The paragraph printed at the end of a run.
    pub fn paragraph(&self, out: &Path) -> String {
        let out = out.display();
        let k = &self.kinds;
        let verdict = if self.discrepancies == 0 {
            "the published table is correct".to_string()
        } else {
            format!(
                "{} rows to correct: {} corrections_out.jsonl lines, {} upserts_out.jsonl lines (see {out}/report.html)",
                self.discrepancies, self.corrections_out_lines, self.upserts_out_lines
            )
        };
        format!(
            "amend reconcile: {} published rows against {} correct rows: {} match, {} mismatch, \
             {} missing, {} extra (tolerance {}); {verdict}. Digests: correct {}, published {}.",
            self.published_rows,
            self.correct_rows,
            k.matched,
            k.mismatch,
            k.missing,
            k.extra,
            self.tolerance,
            self.correct_digest,
            self.published_digest,
        )
    }
}

/// What of the run the report shows besides the comparison.
struct RunFacts {
    /// Records read.
    records_read: u64,
    /// Records dead-lettered.
    records_dead_lettered: u64,
    /// Epochs ingested.
    epochs: u64,
    /// Lines of reconcile_changelog.jsonl.
    changelog_lines: u64,
}

/// Writes reconcile.jsonl, corrections_out.jsonl, upserts_out.jsonl, reconcile_summary.json
/// and report.html into `out` for the correct `table` (whose digests are `digest`), each
/// atomically.
fn write_outputs(
    out: &Path,
    settings: &ReconcileSettings,
    scale: Scale,
    published: &mut PublishedTable,
    table: &Table,
    digest: &TableDigest,
    facts: &RunFacts,
) -> anyhow::Result<ReconcileSummary> {
    let (reconciler, published_digest) = published.get()?;
    let reconciler = &*reconciler;
    let epoch = facts.epochs.saturating_sub(1);
    let rows: &BTreeMap<(Window, CompactString), Agg> = table.rows();
    // Three files from one walk: each written to its temporary file, renamed when all are.
    let mut result = None;
    write_atomically(&out.join("reconcile.jsonl"), |discrepancies| {
        write_atomically(&out.join("corrections_out.jsonl"), |corrections| {
            write_atomically(&out.join("upserts_out.jsonl"), |upserts| {
                let outputs = ReconcileOutputs {
                    discrepancies,
                    corrections,
                    upserts,
                };
                result = Some(reconciler.write(rows, epoch, settings.report_rows, outputs)?);
                Ok(())
            })
        })
    })?;
    let reconciliation = result.expect("written above");
    let summary = ReconcileSummary {
        published: settings.published.display().to_string(),
        published_rows: reconciler.published().len() as u64,
        correct_rows: table.row_count(),
        tolerance: settings.tolerance.to_canonical(scale),
        kinds: reconciliation.counts.clone(),
        discrepancies: reconciliation.counts.discrepancies(),
        corrections_out_lines: reconciliation.corrections_lines,
        upserts_out_lines: reconciliation.upserts_lines,
        epoch,
        reconcile_changelog_lines: facts.changelog_lines,
        correct_digest: digest.table.clone(),
        published_digest: published_digest.table.clone(),
        windows_differing: differing_windows(digest, published_digest).len() as u64,
    };
    write_json_atomically(&out.join("reconcile_summary.json"), &summary)?;
    let report = ReportInput {
        published: &settings.published,
        published_rows: summary.published_rows,
        correct_rows: summary.correct_rows,
        reconciliation: &reconciliation,
        scale,
        tolerance: settings.tolerance,
        correct_digest: digest,
        published_digest,
        records_read: facts.records_read,
        records_dead_lettered: facts.records_dead_lettered,
        epochs: facts.epochs,
        generated_at: amend_operators::time::format_millis(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
        ),
    };
    write_atomically(&out.join("report.html"), |w| Ok(write_report(w, &report)?))?;
    Ok(summary)
}
