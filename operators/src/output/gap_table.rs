//! The gap tables outside the dataflow: a changelog of gaps per epoch, and the current gaps,
//! duplicates and lagging sources.
//!
//! A [`GapTable`] takes the [`GapRow`] changes of the open epoch in any order
//! ([`GapTable::push`]); closing the epoch ([`GapTable::close_epoch`]) consolidates them and
//! applies them (each retraction must remove a row that is there, each insertion must not find
//! one), retractions first, then insertions, each by source and first missing number. Its gap
//! changes are the lines of `gaps_changelog.jsonl` ([`write_gap_changes`]), byte-identical for
//! any worker count, and replay to the current gaps exactly; `gaps.jsonl` and
//! `duplicates.jsonl` are the current tables.

use std::collections::BTreeMap;
use std::io::{self, Write};

use serde::Serialize;

use crate::recovery::gaps::GapRow;

/// A change that does not apply: an internal error, never a data error.
#[derive(Debug, thiserror::Error)]
pub enum GapTableError {
    /// A retraction of a row that is not there, or an insertion of one that is.
    #[error("internal error: epoch {epoch} {what} gap row {row:?}")]
    Inconsistent {
        /// The epoch.
        epoch: u64,
        /// What went wrong.
        what: &'static str,
        /// The row.
        row: GapRow,
    },
    /// Writing failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// The current gap tables, as the changes build them.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct GapTable {
    /// (source, from) to `to`.
    gaps: BTreeMap<(String, u64), u64>,
    /// Source to (first, last) seen.
    extents: BTreeMap<String, (u64, u64)>,
    /// (source, seq) to the number of distinct ids.
    duplicates: BTreeMap<(String, u64), u64>,
    /// Changes of the open epoch.
    pending: Vec<(GapRow, isize)>,
}

/// A gap as written: `count` missing numbers `from..=to`.
#[derive(Serialize)]
struct GapOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    epoch: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    diff: Option<isize>,
    source: &'a str,
    from: u64,
    to: u64,
    count: u64,
}

/// A duplicated sequence number as written.
#[derive(Serialize)]
struct DuplicateOut<'a> {
    source: &'a str,
    seq: u64,
    ids: u64,
}

/// A source whose last sequence number is far behind the greatest of all sources.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Lagging {
    /// The producer.
    pub source: String,
    /// Its last seen sequence number.
    pub last: u64,
    /// How far behind the greatest last number of all sources.
    pub behind: u64,
}

/// Totals of the gap tables.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GapTotals {
    /// Sources with at least one sequence number.
    pub sources: u64,
    /// Current gaps.
    pub gaps: u64,
    /// Sequence numbers missing, over all gaps.
    pub missing: u64,
    /// Sequence numbers carried by more than one id.
    pub duplicates: u64,
    /// The greatest last sequence number of all sources.
    pub max_last: Option<u64>,
}

impl GapTable {
    /// An empty table.
    pub fn new() -> Self {
        GapTable::default()
    }

    /// Takes one change of the open epoch.
    pub fn push(&mut self, row: GapRow, diff: isize) {
        self.pending.push((row, diff));
    }

    /// Applies the open epoch's changes, consolidated, retractions first; returns them in the
    /// order applied, one unit each.
    pub fn close_epoch(&mut self, epoch: u64) -> Result<Vec<(GapRow, isize)>, GapTableError> {
        let mut changes = std::mem::take(&mut self.pending);
        differential_dataflow::consolidation::consolidate(&mut changes);
        let (retractions, insertions): (Vec<_>, Vec<_>) =
            changes.into_iter().partition(|(_, diff)| *diff < 0);
        let mut applied = Vec::new();
        for (row, diff) in retractions.into_iter().chain(insertions) {
            let unit = diff.signum();
            for _ in 0..diff.unsigned_abs() {
                self.apply(epoch, &row, unit)?;
                applied.push((row.clone(), unit));
            }
        }
        Ok(applied)
    }

    fn apply(&mut self, epoch: u64, row: &GapRow, diff: isize) -> Result<(), GapTableError> {
        let fail = |what| GapTableError::Inconsistent {
            epoch,
            what,
            row: row.clone(),
        };
        let ok = match (row, diff) {
            (GapRow::Gap { source, from, to }, -1) => {
                self.gaps.remove(&(source.clone(), *from)) == Some(*to)
            }
            (GapRow::Gap { source, from, to }, _) => {
                self.gaps.insert((source.clone(), *from), *to).is_none()
            }
            (
                GapRow::Extent {
                    source,
                    first,
                    last,
                },
                -1,
            ) => self.extents.remove(source) == Some((*first, *last)),
            (
                GapRow::Extent {
                    source,
                    first,
                    last,
                },
                _,
            ) => self
                .extents
                .insert(source.clone(), (*first, *last))
                .is_none(),
            (GapRow::Duplicate { source, seq, ids }, -1) => {
                self.duplicates.remove(&(source.clone(), *seq)) == Some(*ids)
            }
            (GapRow::Duplicate { source, seq, ids }, _) => self
                .duplicates
                .insert((source.clone(), *seq), *ids)
                .is_none(),
        };
        if ok {
            Ok(())
        } else if diff < 0 {
            Err(fail("retracts a missing"))
        } else {
            Err(fail("inserts a second"))
        }
    }

    /// The current gaps: (source, from) to `to`, sorted.
    pub fn gaps(&self) -> &BTreeMap<(String, u64), u64> {
        &self.gaps
    }

    /// Writes the current gaps, one line each, by source and first missing number.
    pub fn write_gaps(&self, out: &mut impl Write) -> io::Result<()> {
        for ((source, from), to) in &self.gaps {
            write_gap(out, None, source, *from, *to)?;
        }
        Ok(())
    }

    /// Writes the current duplicated sequence numbers, one line each, by source and number.
    pub fn write_duplicates(&self, out: &mut impl Write) -> io::Result<()> {
        for ((source, seq), ids) in &self.duplicates {
            let line = DuplicateOut {
                source,
                seq: *seq,
                ids: *ids,
            };
            serde_json::to_writer(&mut *out, &line)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }

    /// The sources whose last sequence number is more than `threshold` behind the greatest
    /// last number of all sources, by source.
    pub fn lagging(&self, threshold: u64) -> Vec<Lagging> {
        let Some(max) = self.extents.values().map(|(_, last)| *last).max() else {
            return Vec::new();
        };
        self.extents
            .iter()
            .filter(|(_, (_, last))| max - last > threshold)
            .map(|(source, (_, last))| Lagging {
                source: source.clone(),
                last: *last,
                behind: max - last,
            })
            .collect()
    }

    /// Totals of the current tables.
    pub fn totals(&self) -> GapTotals {
        GapTotals {
            sources: self.extents.len() as u64,
            gaps: self.gaps.len() as u64,
            missing: self.gaps.iter().map(|((_, from), to)| to - from + 1).sum(),
            duplicates: self.duplicates.len() as u64,
            max_last: self.extents.values().map(|(_, last)| *last).max(),
        }
    }
}

/// Writes the gap rows of an epoch's applied `changes` ([`GapTable::close_epoch`]) as
/// `gaps_changelog.jsonl` lines; returns the number of lines.
pub fn write_gap_changes(
    epoch: u64,
    changes: &[(GapRow, isize)],
    out: &mut impl Write,
) -> io::Result<u64> {
    let mut lines = 0;
    for (row, diff) in changes {
        if let GapRow::Gap { source, from, to } = row {
            write_gap(out, Some((epoch, *diff)), source, *from, *to)?;
            lines += 1;
        }
    }
    Ok(lines)
}

fn write_gap(
    out: &mut impl Write,
    change: Option<(u64, isize)>,
    source: &str,
    from: u64,
    to: u64,
) -> io::Result<()> {
    let line = GapOut {
        epoch: change.map(|c| c.0),
        diff: change.map(|c| c.1),
        source,
        from,
        to,
        count: to - from + 1,
    };
    serde_json::to_writer(&mut *out, &line)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gap(source: &str, from: u64, to: u64) -> GapRow {
        GapRow::Gap {
            source: source.into(),
            from,
            to,
        }
    }

    /// Closes the epoch and writes its gap changes; returns the number of lines.
    fn close_epoch(table: &mut GapTable, epoch: u64, out: &mut Vec<u8>) -> u64 {
        let changes = table.close_epoch(epoch).unwrap();
        write_gap_changes(epoch, &changes, out).unwrap()
    }

    #[test]
    fn epochs_write_net_changes_retractions_first() {
        let mut table = GapTable::new();
        let mut out = Vec::new();
        table.push(gap("b", 3, 4), 1);
        table.push(gap("a", 5, 9), 1);
        table.push(gap("a", 1, 1), 1);
        table.push(gap("a", 1, 1), -1);
        assert_eq!(close_epoch(&mut table, 0, &mut out), 2);
        table.push(gap("a", 6, 9), 1);
        table.push(gap("a", 5, 9), -1);
        assert_eq!(close_epoch(&mut table, 1, &mut out), 2);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            concat!(
                "{\"epoch\":0,\"diff\":1,\"source\":\"a\",\"from\":5,\"to\":9,\"count\":5}\n",
                "{\"epoch\":0,\"diff\":1,\"source\":\"b\",\"from\":3,\"to\":4,\"count\":2}\n",
                "{\"epoch\":1,\"diff\":-1,\"source\":\"a\",\"from\":5,\"to\":9,\"count\":5}\n",
                "{\"epoch\":1,\"diff\":1,\"source\":\"a\",\"from\":6,\"to\":9,\"count\":4}\n",
            )
        );
        let mut current = Vec::new();
        table.write_gaps(&mut current).unwrap();
        assert_eq!(
            String::from_utf8(current).unwrap(),
            concat!(
                "{\"source\":\"a\",\"from\":6,\"to\":9,\"count\":4}\n",
                "{\"source\":\"b\",\"from\":3,\"to\":4,\"count\":2}\n",
            )
        );
        table.push(gap("a", 1, 1), -1);
        assert!(table.close_epoch(2).is_err());
    }

    #[test]
    fn lagging_sources_are_more_than_the_threshold_behind() {
        let mut table = GapTable::new();
        for (source, last) in [("a", 100), ("b", 40), ("c", 90)] {
            table.push(
                GapRow::Extent {
                    source: source.into(),
                    first: 1,
                    last,
                },
                1,
            );
        }
        table.close_epoch(0).unwrap();
        let lagging = table.lagging(10);
        assert_eq!(
            lagging,
            vec![Lagging {
                source: "b".into(),
                last: 40,
                behind: 60
            }]
        );
        assert_eq!(table.totals().max_last, Some(100));
        assert_eq!(table.lagging(60), vec![]);
    }
}
