//! `amend aggregate`: windowed aggregates over event files, corrected by later records.
//!
//! The command configures the engine ([`crate::engine`]) to resolve ids and aggregate windows,
//! and registers the writers of its outputs: `changelog.jsonl`, `late.jsonl`, the snapshot,
//! `digests.json` (and, when following, `digests_changelog.jsonl`), `estimates.jsonl` with
//! `--fill`, the gap files with `--gaps` ([`crate::gaps`]), and `summary.json`; the engine
//! adds `dead_letter.jsonl` and `epochs.jsonl`.

use amend_operators::output::rows::SnapshotFormat;

use crate::engine::summary::Summary;
use crate::engine::writers::files::create_out_dir;
use crate::engine::writers::{
    Changelog, Digests, EstimatesFile, LateRecords, SnapshotFile, SummaryFile, Writer,
};
use crate::engine::{Computations, EngineConfig, TableSpec};
use crate::gaps::{GapFiles, GapSettings};
use crate::kafka::sink::{KafkaSink, KafkaSinkArgs};

/// Everything `amend aggregate` needs, validated.
#[derive(Clone, Debug)]
pub struct AggregateConfig {
    /// What every run needs.
    pub engine: EngineConfig,
    /// How the table is computed.
    pub table: TableSpec,
    /// Snapshot file format.
    pub snapshot_format: SnapshotFormat,
    /// Gap detection, with `--gaps`.
    pub gaps: Option<GapSettings>,
    /// The Kafka sinks.
    pub kafka_sinks: KafkaSinkArgs,
}

impl AggregateConfig {
    /// What the dataflow computes.
    pub fn computations(&self) -> Computations {
        Computations {
            table: Some(self.table),
            gaps: self.gaps.map(|gaps| gaps.duplicates),
        }
    }
}

/// The writers of the table's outputs, which `amend aggregate` and `amend reconcile` share.
pub struct TableWriters {
    changelog: Changelog,
    late: LateRecords,
    snapshot: SnapshotFile,
    digests: Digests,
    estimates: Option<EstimatesFile>,
    kafka: Option<KafkaSink>,
}

impl TableWriters {
    /// Creates the table's outputs for `config` in its output directory.
    pub fn create(config: &AggregateConfig) -> anyhow::Result<TableWriters> {
        let engine = &config.engine;
        let (out, scale) = (&engine.out, engine.scale);
        create_out_dir(out)?;
        Ok(TableWriters {
            changelog: Changelog::create(out, scale)?,
            late: LateRecords::create(out, scale)?,
            snapshot: SnapshotFile::create(out, config.snapshot_format),
            digests: Digests::create(out, engine.follow)?,
            estimates: config
                .table
                .fill
                .map(|(fill, _)| EstimatesFile::create(out, fill, scale)),
            kafka: KafkaSink::connect(
                &config.kafka_sinks,
                &engine.topics.client,
                scale,
                engine
                    .checkpoint
                    .as_ref()
                    .map(|c| (c.dir.as_path(), c.from_scratch)),
            )?,
        })
    }

    /// The writers, in the order they write: the snapshot first, beside the digest.
    pub fn list(&mut self) -> Vec<&mut dyn Writer> {
        let mut list: Vec<&mut dyn Writer> = vec![
            &mut self.snapshot,
            &mut self.changelog,
            &mut self.late,
            &mut self.digests,
        ];
        if let Some(estimates) = &mut self.estimates {
            list.push(estimates);
        }
        if let Some(kafka) = &mut self.kafka {
            list.push(kafka);
        }
        list
    }
}

/// What `amend aggregate` found.
pub struct Aggregated {
    /// What summary.json holds.
    pub summary: Summary,
    /// With `--gaps`: what gaps_summary.json holds.
    pub gaps: Option<crate::gaps::GapSummary>,
}

/// Runs `amend aggregate` and writes its outputs into its output directory.
pub fn run(config: &AggregateConfig) -> anyhow::Result<Aggregated> {
    let engine = &config.engine;
    let mut table = TableWriters::create(config)?;
    let mut gaps = config
        .gaps
        .map(|settings| GapFiles::create(engine, settings))
        .transpose()?;
    let mut summary_file = SummaryFile::create(&engine.out);
    let mut writers = table.list();
    if let Some(gaps) = &mut gaps {
        writers.push(gaps);
    }
    writers.push(&mut summary_file);
    let summary = crate::engine::run(engine, &config.computations(), writers)?;
    Ok(Aggregated {
        summary,
        gaps: gaps.and_then(GapFiles::into_summary),
    })
}

/// The one-paragraph summary printed at the end of a run.
pub fn paragraph(summary: &Summary, config: &AggregateConfig) -> String {
    let out = config.engine.out.display();
    let read = &summary.read;
    let late = if summary.records_late > 0 {
        format!(", {} late (see {out}/late.jsonl)", summary.records_late)
    } else {
        String::new()
    };
    let skipped = if read.records_skipped > 0 {
        format!(
            ", {} skipped (outside the replay slice)",
            read.records_skipped
        )
    } else {
        String::new()
    };
    let audit = if config.engine.recovery.has_audit_logs() {
        format!(
            " Audit logs: {} ids only there (recovered), {} lines without a record skipped.",
            summary.ids_only_in_audit, read.audit_lines_skipped
        )
    } else {
        String::new()
    };
    let dead = if read.records_dead_lettered > 0 {
        format!(" (see {out}/dead_letter.jsonl)")
    } else {
        String::new()
    };
    let resumed = match summary.run.resumed_after_epoch {
        Some(epoch) => format!(
            " (resumed after epoch {epoch}: {} read by this run)",
            summary.run.run_records_read
        ),
        None => String::new(),
    };
    format!(
        "amend aggregate: read {} records{resumed} in {} epoch(s) in {:.2} s ({:.0} records/s, {} worker(s)): \
         {} accepted{late}, {} dead-lettered{dead}{skipped}.{audit} \
         {} ids current, {} deleted. The table has {} rows in {} windows ({out}/{}); \
         {} changelog lines; table digest {}.",
        read.records_read,
        summary.run.epochs,
        summary.run.elapsed_seconds,
        summary.run.records_per_second,
        summary.run.workers,
        read.records_accepted,
        read.records_dead_lettered,
        summary.ids_current,
        summary.ids_deleted,
        summary.rows,
        summary.windows,
        config.snapshot_format.file_name(),
        summary.changelog_lines,
        summary.table_digest,
    )
}
