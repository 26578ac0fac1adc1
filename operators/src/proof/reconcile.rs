//! Reconciliation: a table some other system published, compared row by row with the correct
//! one, and the changes that turn the first into the second.
//!
//! Every (window, key) that either table has is one [`Discrepancy`]:
//!
//! - `match`: both have the row and every aggregate agrees (within the tolerance);
//! - `mismatch`: both have it and some aggregate differs: published and correct values, and
//!   the delta (correct − published) of each aggregate;
//! - `missing`: only the correct table has it (it was never published);
//! - `extra`: only the published table has it (no current record is behind it).
//!
//! Counts must agree exactly; `sum`, `min`, `max` and `mean` agree when they differ by at most
//! the tolerance (0 by default: exactly). A published mean is read where the file has one and
//! otherwise derived from its sum and count, as docs/format.md defines it.
//!
//! The outputs, all in (window_start, window_end, key) byte order:
//!
//! - `reconcile.jsonl`: one line per discrepancy;
//! - `corrections_out.jsonl`: the changelog that turns the published table into the
//!   correct one: retractions (`"diff":-1`) of the published rows of mismatches and extras,
//!   then insertions (`"diff":1`) of the correct rows of mismatches and missing rows;
//! - `upserts_out.jsonl`: the same as upserts (`"op":"upsert"` with the correct row) and
//!   deletes (`"op":"delete"`), keyed by (window, key);
//! - in follow mode, `reconcile_changelog.jsonl`: per epoch, the discrepancy lines that
//!   changed, as retractions then insertions, so that replaying epochs `0..=E` gives the
//!   discrepancies after epoch `E`.
//!
//! Rows that match within a non-zero tolerance are not corrected: with a tolerance, applying
//! the corrections gives the correct table up to that tolerance.

use std::collections::BTreeMap;
use std::io::{self, Write};

use compact_str::CompactString;
use serde::Serialize;

use crate::data::agg::Agg;
use crate::data::decimal::{Decimal, Scale};
use crate::data::time::format_millis;
use crate::data::window::Window;
use crate::output::table::RowChange;
use crate::proof::snapshot::{SnapshotRow, SnapshotRows};

/// What a (window, key) is in the comparison.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Published and correct agree.
    Match,
    /// Published and correct differ.
    Mismatch,
    /// A correct row that was never published.
    Missing,
    /// A published row with no records behind it.
    Extra,
}

impl Kind {
    /// Every kind, in report order.
    pub const ALL: [Kind; 4] = [Kind::Match, Kind::Mismatch, Kind::Missing, Kind::Extra];

    /// The kind's name in the outputs.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Match => "match",
            Kind::Mismatch => "mismatch",
            Kind::Missing => "missing",
            Kind::Extra => "extra",
        }
    }
}

/// The number of (window, key)s of each kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct KindCounts {
    /// Rows that agree.
    #[serde(rename = "match")]
    pub matched: u64,
    /// Rows that differ.
    pub mismatch: u64,
    /// Correct rows never published.
    pub missing: u64,
    /// Published rows without records.
    pub extra: u64,
}

impl KindCounts {
    /// Counts one more of `kind`.
    pub fn add(&mut self, kind: Kind) {
        *self.get_mut(kind) += 1;
    }

    /// The count of `kind`.
    pub fn get(&self, kind: Kind) -> u64 {
        match kind {
            Kind::Match => self.matched,
            Kind::Mismatch => self.mismatch,
            Kind::Missing => self.missing,
            Kind::Extra => self.extra,
        }
    }

    fn get_mut(&mut self, kind: Kind) -> &mut u64 {
        match kind {
            Kind::Match => &mut self.matched,
            Kind::Mismatch => &mut self.mismatch,
            Kind::Missing => &mut self.missing,
            Kind::Extra => &mut self.extra,
        }
    }

    /// Mismatches, missing and extra rows: everything that needs a correction.
    pub fn discrepancies(&self) -> u64 {
        self.mismatch + self.missing + self.extra
    }
}

/// One row's aggregates, mean included.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Values {
    /// Number of records.
    pub count: u64,
    /// Sum; `None` if it does not fit 128-bit fixed point.
    pub sum: Option<Decimal>,
    /// Least value.
    pub min: Decimal,
    /// Greatest value.
    pub max: Decimal,
    /// Mean; `None` if the sum does not fit.
    pub mean: Option<Decimal>,
}

impl Values {
    /// The values of a correct row: its mean derived from sum and count.
    pub fn of(agg: &Agg) -> Values {
        Values {
            count: agg.count,
            sum: agg.sum,
            min: agg.min,
            max: agg.max,
            mean: agg.mean(),
        }
    }

    /// The values of a published row: its own mean if it has one, else derived.
    pub fn published(row: &SnapshotRow) -> Values {
        Values {
            mean: row.mean.or_else(|| row.agg.mean()),
            ..Values::of(&row.agg)
        }
    }

    /// The values as the aggregate row they are (the mean is not part of it).
    pub fn agg(&self) -> Agg {
        Agg {
            count: self.count,
            sum: self.sum,
            min: self.min,
            max: self.max,
        }
    }
}

/// Per aggregate, correct − published; `None` where a side has no value or it overflows.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Delta {
    /// Difference of the counts.
    pub count: i128,
    /// Difference of the sums.
    pub sum: Option<Decimal>,
    /// Difference of the minima.
    pub min: Option<Decimal>,
    /// Difference of the maxima.
    pub max: Option<Decimal>,
    /// Difference of the means.
    pub mean: Option<Decimal>,
}

fn sub(a: Option<Decimal>, b: Option<Decimal>) -> Option<Decimal> {
    a?.0.checked_sub(b?.0).map(Decimal)
}

impl Delta {
    /// `correct − published`.
    pub fn between(published: &Values, correct: &Values) -> Delta {
        Delta {
            count: i128::from(correct.count) - i128::from(published.count),
            sum: sub(correct.sum, published.sum),
            min: sub(Some(correct.min), Some(published.min)),
            max: sub(Some(correct.max), Some(published.max)),
            mean: sub(correct.mean, published.mean),
        }
    }

    /// Whether the two sides agree: equal counts, and decimal differences of at most
    /// `tolerance`. A difference that cannot be computed agrees only if the values are equal.
    fn within(&self, published: &Values, correct: &Values, tolerance: Decimal) -> bool {
        let close = |delta: Option<Decimal>, equal: bool| match delta {
            Some(d) => d.0.unsigned_abs() <= tolerance.0.unsigned_abs(),
            None => equal,
        };
        self.count == 0
            && close(self.sum, published.sum == correct.sum)
            && close(self.min, true)
            && close(self.max, true)
            && close(self.mean, published.mean == correct.mean)
    }

    /// The largest absolute difference of any decimal aggregate.
    pub fn size(&self) -> u128 {
        [self.sum, self.min, self.max, self.mean]
            .into_iter()
            .flatten()
            .map(|d| d.0.unsigned_abs())
            .max()
            .unwrap_or(0)
    }
}

/// The published and the correct values of a row, where it has them.
type Sides = (Option<Values>, Option<Values>);

/// How one (window, key) compares.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Discrepancy<'a> {
    /// The window.
    pub window: &'a Window,
    /// The key.
    pub key: &'a str,
    /// Its kind.
    pub kind: Kind,
    /// The published values, if it was published.
    pub published: Option<Values>,
    /// The correct values, if it has records.
    pub correct: Option<Values>,
}

impl Discrepancy<'_> {
    /// `correct − published`, where both sides have the row.
    pub fn delta(&self) -> Option<Delta> {
        Some(Delta::between(
            self.published.as_ref()?,
            self.correct.as_ref()?,
        ))
    }

    /// How large the discrepancy is, in units of the scale: the largest absolute difference
    /// of a decimal aggregate for a mismatch; the largest absolute value of the one side for
    /// a missing or extra row; 0 for a match.
    pub fn size(&self) -> u128 {
        let magnitude = |v: &Values| {
            [v.sum, Some(v.min), Some(v.max)]
                .into_iter()
                .flatten()
                .map(|d| d.0.unsigned_abs())
                .max()
                .unwrap_or(0)
        };
        match self.kind {
            Kind::Match => 0,
            Kind::Mismatch => self.delta().map_or(0, |d| d.size()),
            Kind::Missing => self.correct.as_ref().map_or(0, magnitude),
            Kind::Extra => self.published.as_ref().map_or(0, magnitude),
        }
    }

    /// Whether its line carries values: everything but an exact match.
    fn shows_values(&self) -> bool {
        self.kind != Kind::Match || self.published != self.correct
    }

    /// What its line (for a given row) is made of: the kind, and the values it shows.
    fn shown(&self) -> (Kind, Option<Sides>) {
        let values = (self.published, self.correct);
        (self.kind, self.shows_values().then_some(values))
    }
}

/// Compares one (window, key); `None` if neither table has it.
pub fn classify<'a>(
    row: &'a (Window, CompactString),
    published: Option<Values>,
    correct: Option<Values>,
    tolerance: Decimal,
) -> Option<Discrepancy<'a>> {
    let kind = match (&published, &correct) {
        (None, None) => return None,
        (Some(p), Some(c)) if Delta::between(p, c).within(p, c, tolerance) => Kind::Match,
        (Some(_), Some(_)) => Kind::Mismatch,
        (None, Some(_)) => Kind::Missing,
        (Some(_), None) => Kind::Extra,
    };
    Some(Discrepancy {
        window: &row.0,
        key: &row.1,
        kind,
        published,
        correct,
    })
}

/// Per window, how many rows disagree and by how much (for the report's timeline).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WindowSummary {
    /// Window start, epoch ms.
    pub start: i64,
    /// Window end, epoch ms.
    pub end: i64,
    /// Rows of each kind.
    pub counts: KindCounts,
    /// The sum of the sizes of the window's discrepancies, in units of the scale.
    pub size: u128,
}

/// A discrepancy kept for the report: one of the largest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Largest {
    /// The window.
    pub window: Window,
    /// The key.
    pub key: String,
    /// Its kind.
    pub kind: Kind,
    /// The published values.
    pub published: Option<Values>,
    /// The correct values.
    pub correct: Option<Values>,
    /// [`Discrepancy::size`].
    pub size: u128,
}

/// What writing the outputs found.
#[derive(Clone, Debug, Default)]
pub struct Reconciliation {
    /// Rows of each kind.
    pub counts: KindCounts,
    /// Lines of corrections_out.jsonl.
    pub corrections_lines: u64,
    /// Lines of upserts_out.jsonl.
    pub upserts_lines: u64,
    /// Per window with rows in either table, its discrepancies.
    pub timeline: Vec<WindowSummary>,
    /// The largest discrepancies, largest first.
    pub largest: Vec<Largest>,
}

/// The published table and how it is compared.
#[derive(Debug)]
pub struct Reconciler {
    published: SnapshotRows,
    tolerance: Decimal,
    scale: Scale,
    /// Whether the discrepancy changelog has had its first epoch.
    started: bool,
}

/// The output files of [`Reconciler::write`].
pub struct ReconcileOutputs<'w> {
    /// `reconcile.jsonl`.
    pub discrepancies: &'w mut dyn Write,
    /// `corrections_out.jsonl`.
    pub corrections: &'w mut dyn Write,
    /// `upserts_out.jsonl`.
    pub upserts: &'w mut dyn Write,
}

impl Reconciler {
    /// Compares against `published` rows, read at `scale`; decimal aggregates agree when they
    /// differ by at most `tolerance`.
    pub fn new(published: SnapshotRows, tolerance: Decimal, scale: Scale) -> Self {
        Reconciler {
            published,
            tolerance,
            scale,
            started: false,
        }
    }

    /// The published rows.
    pub fn published(&self) -> &SnapshotRows {
        &self.published
    }

    fn compare<'a>(
        &self,
        row: &'a (Window, CompactString),
        correct: Option<&Agg>,
    ) -> Option<Discrepancy<'a>> {
        let published = self.published.get(row).map(Values::published);
        classify(row, published, correct.map(Values::of), self.tolerance)
    }

    /// Every discrepancy between the published table and `correct` (rows in (window, key)
    /// order), in (window, key) order: one merge walk.
    pub fn walk<'a>(
        &'a self,
        correct: impl IntoIterator<Item = (&'a (Window, CompactString), &'a Agg)>,
    ) -> impl Iterator<Item = Discrepancy<'a>> {
        let mut published = self.published.iter().peekable();
        let mut correct = correct.into_iter().peekable();
        let tolerance = self.tolerance;
        std::iter::from_fn(move || {
            let (row, p, c) = match (published.peek(), correct.peek()) {
                (None, None) => return None,
                (Some((pr, _)), Some((cr, _))) if pr == cr => {
                    let (row, p) = published.next().expect("peeked");
                    let (_, c) = correct.next().expect("peeked");
                    (row, Some(p), Some(c))
                }
                (Some((pr, _)), Some((cr, _))) if pr < cr => {
                    let (row, p) = published.next().expect("peeked");
                    (row, Some(p), None)
                }
                (Some(_), None) => {
                    let (row, p) = published.next().expect("peeked");
                    (row, Some(p), None)
                }
                _ => {
                    let (row, c) = correct.next().expect("peeked");
                    (row, None, Some(c))
                }
            };
            classify(row, p.map(Values::published), c.map(Values::of), tolerance)
        })
    }

    /// Writes one epoch's changes of the discrepancy lines to `out` (`reconcile_changelog.jsonl`),
    /// retractions then insertions, and returns the number of lines. `changes` are the
    /// epoch's row changes of the correct table in (window, key) order; `table` is the
    /// correct table after the epoch. The first epoch writes every discrepancy as an
    /// insertion (before it, there was no comparison); later ones only what their changes
    /// changed.
    pub fn write_epoch<'a>(
        &mut self,
        epoch: u64,
        changes: &[RowChange<'a>],
        table: &'a BTreeMap<(Window, CompactString), Agg>,
        out: &mut impl Write,
    ) -> io::Result<u64> {
        let mut lines = 0;
        if !self.started {
            self.started = true;
            for discrepancy in self.walk(table) {
                write_discrepancy(out, self.scale, Some((epoch, 1)), &discrepancy)?;
                lines += 1;
            }
            return Ok(lines);
        }
        let mut insertions = Vec::new();
        for &(row, old, new) in changes {
            let before = self.compare(row, old);
            let after = self.compare(row, new);
            if before.as_ref().map(Discrepancy::shown) == after.as_ref().map(Discrepancy::shown) {
                continue; // the row's line is the same
            }
            if let Some(d) = &before {
                write_discrepancy(out, self.scale, Some((epoch, -1)), d)?;
                lines += 1;
            }
            if let Some(d) = &after {
                write_discrepancy(&mut insertions, self.scale, Some((epoch, 1)), d)?;
                lines += 1;
            }
        }
        out.write_all(&insertions)?;
        Ok(lines)
    }

    /// Writes reconcile.jsonl, corrections_out.jsonl (its lines carry `epoch`) and
    /// upserts_out.jsonl for the correct table `correct` (rows in (window, key) order), and
    /// returns the counts, the per-window timeline and the `largest` largest discrepancies.
    pub fn write<'a>(
        &'a self,
        correct: impl IntoIterator<Item = (&'a (Window, CompactString), &'a Agg)>,
        epoch: u64,
        largest: usize,
        out: ReconcileOutputs<'_>,
    ) -> io::Result<Reconciliation> {
        let scale = self.scale;
        let mut report = Reconciliation::default();
        let mut insertions = Vec::new();
        let mut ranked: Vec<(u128, Discrepancy<'a>)> = Vec::new();
        for d in self.walk(correct) {
            report.counts.add(d.kind);
            if report
                .timeline
                .last()
                .is_none_or(|w| (w.start, w.end) != (d.window.start, d.window.end))
            {
                report.timeline.push(WindowSummary {
                    start: d.window.start,
                    end: d.window.end,
                    ..WindowSummary::default()
                });
            }
            let size = d.size();
            let window = report.timeline.last_mut().expect("pushed above");
            window.counts.add(d.kind);
            window.size = window.size.saturating_add(size);
            write_discrepancy(out.discrepancies, scale, None, &d)?;
            if d.kind == Kind::Match {
                continue;
            }
            ranked.push((size, d));
            if let Some(published) = &d.published {
                write_row(out.corrections, scale, Some((epoch, -1)), &d, published)?;
                report.corrections_lines += 1;
            }
            match &d.correct {
                Some(correct) => {
                    write_row(&mut insertions, scale, Some((epoch, 1)), &d, correct)?;
                    report.corrections_lines += 1;
                    write_upsert(out.upserts, scale, &d, Some(correct))?;
                }
                None => write_upsert(out.upserts, scale, &d, None)?,
            }
            report.upserts_lines += 1;
        }
        out.corrections.write_all(&insertions)?;
        // Largest first; ties by |Δcount|, then in table order.
        let count_delta = |d: &Discrepancy| d.delta().map_or(0, |d| d.count.unsigned_abs());
        ranked.sort_by(|(a, da), (b, db)| b.cmp(a).then(count_delta(db).cmp(&count_delta(da))));
        report.largest = ranked
            .into_iter()
            .take(largest)
            .map(|(size, d)| Largest {
                window: *d.window,
                key: d.key.to_owned(),
                kind: d.kind,
                published: d.published,
                correct: d.correct,
                size,
            })
            .collect();
        Ok(report)
    }
}

/// Aggregates as they are written: decimals as canonical strings.
#[derive(Serialize)]
struct ValuesOut {
    count: u64,
    sum: Option<String>,
    min: String,
    max: String,
    mean: Option<String>,
}

impl ValuesOut {
    fn new(values: &Values, scale: Scale) -> Self {
        ValuesOut {
            count: values.count,
            sum: values.sum.map(|d| d.to_canonical(scale)),
            min: values.min.to_canonical(scale),
            max: values.max.to_canonical(scale),
            mean: values.mean.map(|d| d.to_canonical(scale)),
        }
    }
}

#[derive(Serialize)]
struct DeltaOut {
    count: i128,
    sum: Option<String>,
    min: Option<String>,
    max: Option<String>,
    mean: Option<String>,
}

impl DeltaOut {
    fn new(delta: &Delta, scale: Scale) -> Self {
        let text = |d: Option<Decimal>| d.map(|d| d.to_canonical(scale));
        DeltaOut {
            count: delta.count,
            sum: text(delta.sum),
            min: text(delta.min),
            max: text(delta.max),
            mean: text(delta.mean),
        }
    }
}

/// A reconcile.jsonl line; with `epoch` and `diff`, a reconcile_changelog.jsonl line.
#[derive(Serialize)]
struct DiscrepancyOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    epoch: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    diff: Option<i8>,
    window_start: String,
    window_end: String,
    key: &'a str,
    kind: Kind,
    #[serde(skip_serializing_if = "Option::is_none")]
    published: Option<ValuesOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    correct: Option<ValuesOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delta: Option<DeltaOut>,
}

fn write_discrepancy(
    out: &mut (impl Write + ?Sized),
    scale: Scale,
    change: Option<(u64, i8)>,
    d: &Discrepancy<'_>,
) -> io::Result<()> {
    let shows = d.shows_values();
    let line = DiscrepancyOut {
        epoch: change.map(|(epoch, _)| epoch),
        diff: change.map(|(_, diff)| diff),
        window_start: format_millis(d.window.start),
        window_end: format_millis(d.window.end),
        key: d.key,
        kind: d.kind,
        published: d
            .published
            .as_ref()
            .filter(|_| shows)
            .map(|v| ValuesOut::new(v, scale)),
        correct: d
            .correct
            .as_ref()
            .filter(|_| shows)
            .map(|v| ValuesOut::new(v, scale)),
        delta: d
            .delta()
            .filter(|_| shows)
            .map(|delta| DeltaOut::new(&delta, scale)),
    };
    serde_json::to_writer(&mut *out, &line)?;
    out.write_all(b"\n")
}

/// A row in the changelog (with `change`) or snapshot shape.
#[derive(Serialize)]
struct RowOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    epoch: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    diff: Option<i8>,
    window_start: String,
    window_end: String,
    key: &'a str,
    #[serde(flatten)]
    values: ValuesOut,
}

fn write_row(
    out: &mut (impl Write + ?Sized),
    scale: Scale,
    change: Option<(u64, i8)>,
    d: &Discrepancy<'_>,
    values: &Values,
) -> io::Result<()> {
    let line = RowOut {
        epoch: change.map(|(epoch, _)| epoch),
        diff: change.map(|(_, diff)| diff),
        window_start: format_millis(d.window.start),
        window_end: format_millis(d.window.end),
        key: d.key,
        values: ValuesOut::new(values, scale),
    };
    serde_json::to_writer(&mut *out, &line)?;
    out.write_all(b"\n")
}

/// An upserts_out.jsonl line: `{"op":"upsert",...row}` or `{"op":"delete",window,key}`.
fn write_upsert(
    out: &mut (impl Write + ?Sized),
    scale: Scale,
    d: &Discrepancy<'_>,
    correct: Option<&Values>,
) -> io::Result<()> {
    #[derive(Serialize)]
    struct UpsertOut<'a> {
        op: &'static str,
        window_start: String,
        window_end: String,
        key: &'a str,
        #[serde(flatten)]
        values: Option<ValuesOut>,
    }
    let line = UpsertOut {
        op: if correct.is_some() {
            "upsert"
        } else {
            "delete"
        },
        window_start: format_millis(d.window.start),
        window_end: format_millis(d.window.end),
        key: d.key,
        values: correct.map(|v| ValuesOut::new(v, scale)),
    };
    serde_json::to_writer(&mut *out, &line)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agg(count: u64, sum: i128, min: i128, max: i128) -> Agg {
        Agg {
            count,
            sum: Some(Decimal(sum)),
            min: Decimal(min),
            max: Decimal(max),
        }
    }

    fn row(start: i64, key: &str) -> (Window, CompactString) {
        (
            Window {
                start,
                end: start + 60_000,
            },
            key.into(),
        )
    }

    fn published(rows: &[((Window, CompactString), Agg)]) -> SnapshotRows {
        rows.iter()
            .enumerate()
            .map(|(i, (row, agg))| {
                let line = i as u64 + 1;
                let value = SnapshotRow {
                    agg: *agg,
                    mean: None,
                    line,
                };
                (row.clone(), value)
            })
            .collect()
    }

    fn kinds(
        reconciler: &Reconciler,
        correct: &BTreeMap<(Window, CompactString), Agg>,
    ) -> Vec<(String, Kind)> {
        reconciler
            .walk(correct)
            .map(|d| (d.key.to_owned(), d.kind))
            .collect()
    }

    #[test]
    fn every_row_of_either_side_is_one_discrepancy() {
        let scale = Scale::DEFAULT;
        let published = published(&[
            (row(0, "a"), agg(2, 30, 10, 20)),
            (row(0, "b"), agg(1, 5, 5, 5)),
            (row(0, "d"), agg(1, 7, 7, 7)),
        ]);
        let correct: BTreeMap<_, _> = [
            (row(0, "a"), agg(2, 30, 10, 20)),
            (row(0, "b"), agg(1, 6, 6, 6)),
            (row(0, "c"), agg(1, 1, 1, 1)),
        ]
        .into_iter()
        .collect();
        let reconciler = Reconciler::new(published, Decimal(0), scale);
        assert_eq!(
            kinds(&reconciler, &correct),
            vec![
                ("a".into(), Kind::Match),
                ("b".into(), Kind::Mismatch),
                ("c".into(), Kind::Missing),
                ("d".into(), Kind::Extra),
            ]
        );
        let b = reconciler.walk(&correct).nth(1).unwrap();
        let delta = b.delta().unwrap();
        assert_eq!((delta.count, delta.sum), (0, Some(Decimal(1))));
        assert_eq!(b.size(), 1);
    }

    #[test]
    fn tolerance_forgives_rounding_but_never_a_count() {
        let scale = Scale::new(2).unwrap();
        let r = row(0, "a");
        let p = Values::of(&agg(3, 1000, 100, 500));
        let close = Values::of(&agg(3, 1001, 100, 501));
        let counted = Values::of(&agg(4, 1000, 100, 500));
        let tolerance = Decimal::parse("0.01", scale).unwrap();
        let kind = |c: Values, t| classify(&r, Some(p), Some(c), t).unwrap().kind;
        assert_eq!(kind(close, Decimal(0)), Kind::Mismatch);
        assert_eq!(kind(close, tolerance), Kind::Match);
        assert_eq!(kind(counted, tolerance), Kind::Mismatch);
    }

    #[test]
    fn corrections_retract_then_insert_and_upserts_key_by_row() {
        let scale = Scale::DEFAULT;
        let published = published(&[
            (row(0, "b"), agg(1, 5, 5, 5)),
            (row(0, "d"), agg(1, 7, 7, 7)),
        ]);
        let correct: BTreeMap<_, _> = [
            (row(0, "b"), agg(1, 6, 6, 6)),
            (row(0, "c"), agg(1, 1, 1, 1)),
        ]
        .into_iter()
        .collect();
        let reconciler = Reconciler::new(published, Decimal(0), scale);
        let (mut d, mut c, mut u) = (Vec::new(), Vec::new(), Vec::new());
        let report = reconciler
            .write(
                &correct,
                4,
                10,
                ReconcileOutputs {
                    discrepancies: &mut d,
                    corrections: &mut c,
                    upserts: &mut u,
                },
            )
            .unwrap();
        let diffs: Vec<(i64, String)> = String::from_utf8(c)
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    v["diff"].as_i64().unwrap(),
                    v["key"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let expected = [(-1, "b"), (-1, "d"), (1, "b"), (1, "c")];
        assert_eq!(diffs, expected.map(|(d, k)| (d, k.to_owned())));
        let ops: Vec<String> = String::from_utf8(u)
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                format!(
                    "{} {}",
                    v["op"].as_str().unwrap(),
                    v["key"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(ops, ["upsert b", "upsert c", "delete d"]);
        assert_eq!(report.counts.discrepancies(), 3);
        assert_eq!(report.timeline.len(), 1);
        assert_eq!(report.largest[0].key, "d");
    }

    /// A line of the discrepancy changelog or of reconcile.jsonl, by row, without epoch and diff.
    type Lines = BTreeMap<(String, String, String), serde_json::Value>;

    fn by_row(value: &serde_json::Value) -> (String, String, String) {
        let text = |f: &str| value[f].as_str().unwrap().to_owned();
        (text("window_start"), text("window_end"), text("key"))
    }

    fn agg_of(count: u64, value: i128) -> Agg {
        agg(count, value * count as i128, value, value)
    }

    proptest::proptest! {
        /// Epoch after epoch of random row changes, the discrepancy changelog replayed gives
        /// exactly what a whole comparison of the table after that epoch gives.
        #[test]
        fn the_discrepancy_changelog_replays_to_the_comparison_after_every_epoch(
            published in proptest::collection::vec((0i64..4, 0u8..4, 1u64..3, -5i128..5), 0..12),
            epochs in proptest::collection::vec(
                proptest::collection::vec(
                    (0i64..4, 0u8..4, proptest::option::of((1u64..3, -5i128..5))),
                    0..8,
                ),
                1..5,
            ),
            tolerance in 0i128..2,
        ) {
            let scale = Scale::DEFAULT;
            let key = |k: u8| ["a", "b", "c", "d"][k as usize];
            let published: Vec<_> = published
                .into_iter()
                .map(|(w, k, count, value)| (row(w * 60_000, key(k)), agg_of(count, value)))
                .collect();
            let mut reconciler = Reconciler::new(self::published(&published), Decimal(tolerance), scale);
            let mut table = crate::output::table::Table::new(scale);
            let mut log = Vec::new();
            let mut replayed = Lines::new();
            for (epoch, changes) in epochs.into_iter().enumerate() {
                let epoch = epoch as u64;
                let wanted: BTreeMap<_, _> = changes
                    .into_iter()
                    .map(|(w, k, new)| (row(w * 60_000, key(k)), new.map(|(c, v)| agg_of(c, v))))
                    .collect();
                for (row, new) in wanted {
                    if let Some(old) = table.rows().get(&row).copied() {
                        table.apply(epoch, (row.clone(), old), -1).unwrap();
                    }
                    if let Some(new) = new {
                        table.apply(epoch, (row, new), 1).unwrap();
                    }
                }
                let changes: Vec<_> = table.changes().iter().collect();
                log.clear();
                reconciler.write_epoch(epoch, &changes, table.rows(), &mut log).unwrap();
                drop(changes);
                table.end_epoch();
                let mut inserting = false;
                for line in String::from_utf8(log.clone()).unwrap().lines() {
                    let mut value: serde_json::Value = serde_json::from_str(line).unwrap();
                    let object = value.as_object_mut().unwrap();
                    proptest::prop_assert_eq!(object.remove("epoch"), Some(epoch.into()));
                    let diff = object.remove("diff").unwrap().as_i64().unwrap();
                    let id = by_row(&value);
                    if diff == -1 {
                        proptest::prop_assert!(!inserting, "a retraction after an insertion");
                        proptest::prop_assert_eq!(replayed.remove(&id), Some(value));
                    } else {
                        inserting = true;
                        proptest::prop_assert!(replayed.insert(id, value).is_none());
                    }
                }
                let mut whole = Vec::new();
                for d in reconciler.walk(table.rows()) {
                    write_discrepancy(&mut whole, scale, None, &d).unwrap();
                }
                let whole: Lines = String::from_utf8(whole)
                    .unwrap()
                    .lines()
                    .map(|l| {
                        let value: serde_json::Value = serde_json::from_str(l).unwrap();
                        (by_row(&value), value)
                    })
                    .collect();
                proptest::prop_assert_eq!(&replayed, &whole, "after epoch {}", epoch);
            }
        }
    }
}
