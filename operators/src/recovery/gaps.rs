//! Gap detection: per producer, the sequence numbers missing between the first and last seen.
//!
//! Input: the [`Sighting`]s of accepted records (diff `+1`; nothing un-sends a record): a
//! record that has both a `source` and a `seq` says that its producer used that sequence
//! number; replays, corrections and deletes count like any other record, and records without
//! both fields have no sighting. Output, per completed time, the net change of three small tables, as retractions
//! and insertions of [`GapRow`]s:
//!
//! - [`GapRow::Gap`]: a maximal run `from..=to` of sequence numbers not seen, between the
//!   source's first and last seen. A recovered number splits its gap or shrinks it, and the
//!   gap disappears when it is filled; a number beyond the last creates one.
//! - [`GapRow::Extent`]: the source's first and last seen number (for lagging sources).
//! - [`GapRow::Duplicate`]: a number carried by more than one distinct id, with how many.
//!
//! Records are exchanged by a hash of their source. Per source the operator keeps the seen
//! numbers as disjoint ranges ([`SeqRanges`]), neighbours merged, so its state grows with the
//! number of gaps, not of records. Duplicate detection needs to know which id carried each
//! number, so it keeps one entry per distinct seen number (a 64-bit hash of its first id);
//! it is optional ([`GapOptions::duplicates`]). Two ids whose hashes collide count as one.
//!
//! The gap set after a time is a function of the set of seen numbers alone, so the output is
//! the same for any arrival order, batching and worker count.

use std::collections::btree_map::Entry as MapEntry;
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use compact_str::CompactString;
use differential_dataflow::{Hashable, VecCollection};
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Exchange;

use crate::data::event::{Sighting, Time};
use crate::incremental::durable::{Durable, Entries, Store, decode};
use crate::incremental::per_time::{At, Gauge, PerTime, Ready, Spec, per_time};

/// One row of the gap tables; see the module documentation.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum GapRow {
    /// Sequence numbers `from..=to` of `source` are missing.
    Gap {
        /// The producer.
        source: String,
        /// First missing number.
        from: u64,
        /// Last missing number.
        to: u64,
    },
    /// The least and greatest sequence numbers seen from `source`.
    Extent {
        /// The producer.
        source: String,
        /// Least seen.
        first: u64,
        /// Greatest seen.
        last: u64,
    },
    /// Sequence number `seq` of `source` was carried by `ids` distinct ids (at least 2).
    Duplicate {
        /// The producer.
        source: String,
        /// The sequence number.
        seq: u64,
        /// How many distinct ids carried it.
        ids: u64,
    },
}

/// A set of `u64`s as disjoint, non-adjacent inclusive ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqRanges {
    /// Range start to range end (inclusive); between two ranges lies at least one number.
    ranges: BTreeMap<u64, u64>,
}

impl SeqRanges {
    /// Adds `seq`; returns false if it was there. Each change to the gaps between the first
    /// and last number (a gap `from..=to` removed or added) is passed to `change` with diff
    /// `-1` or `+1`.
    pub fn insert(&mut self, seq: u64, mut change: impl FnMut(u64, u64, isize)) -> bool {
        let prev = self.ranges.range(..=seq).next_back().map(|(s, e)| (*s, *e));
        if prev.is_some_and(|(_, end)| end >= seq) {
            return false;
        }
        let next = self
            .ranges
            .range((Bound::Excluded(seq), Bound::Unbounded))
            .next()
            .map(|(s, e)| (*s, *e));
        // `seq` is not in a range, so `prev.end < seq - 1 or = seq - 1`, likewise for next.
        let joins_prev = prev.is_some_and(|(_, end)| end + 1 == seq);
        let joins_next = next.is_some_and(|(start, _)| seq + 1 == start);
        if let (Some((_, end)), Some((start, _))) = (prev, next) {
            change(end + 1, start - 1, -1);
        }
        if let Some((_, end)) = prev.filter(|_| !joins_prev) {
            change(end + 1, seq - 1, 1);
        }
        if let Some((start, _)) = next.filter(|_| !joins_next) {
            change(seq + 1, start - 1, 1);
        }
        let new_end = match next.filter(|_| joins_next) {
            Some((start, end)) => {
                self.ranges.remove(&start);
                end
            }
            None => seq,
        };
        match prev.filter(|_| joins_prev) {
            Some((start, _)) => self.ranges.insert(start, new_end),
            None => self.ranges.insert(seq, new_end),
        };
        true
    }

    /// Whether `seq` is in the set.
    pub fn contains(&self, seq: u64) -> bool {
        self.ranges
            .range(..=seq)
            .next_back()
            .is_some_and(|(_, end)| *end >= seq)
    }

    /// The number of stored ranges.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The least and greatest number, if any.
    pub fn extent(&self) -> Option<(u64, u64)> {
        let first = self.ranges.first_key_value()?;
        let last = self.ranges.last_key_value()?;
        Some((*first.0, *last.1))
    }

    /// The gaps, `(from, to)` inclusive, ascending.
    pub fn gaps(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ranges
            .iter()
            .zip(self.ranges.iter().skip(1))
            .map(|((_, end), (start, _))| (end + 1, start - 1))
    }
}

/// What the gap operator keeps and reports.
#[derive(Clone, Debug, Default)]
pub struct GapOptions {
    /// Whether to detect duplicated sequence numbers (costs one entry per distinct number).
    pub duplicates: bool,
    /// Where the operator counts its state.
    pub gauges: GapGauges,
    /// Where checkpoints find the state.
    pub store: Store,
}

/// Counts of what the gap operators of one process hold (not RSS).
#[derive(Clone, Debug, Default)]
pub struct GapGauges {
    /// Stored ranges of seen numbers, over all sources (gaps + sources).
    pub ranges: Arc<AtomicI64>,
    /// Distinct (source, seq) held for duplicate detection.
    pub seqs: Arc<AtomicI64>,
}

impl GapGauges {
    /// The current (ranges, seqs).
    pub fn read(&self) -> (u64, u64) {
        let read = |g: &AtomicI64| g.load(Ordering::Relaxed).max(0) as u64;
        (read(&self.ranges), read(&self.seqs))
    }
}

/// Per source state.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct SourceState {
    seen: SeqRanges,
    /// With duplicate detection: the hash of the first id seen with each number.
    first_id: HashMap<u64, u64, foldhash::fast::FixedState>,
    /// Numbers carried by more than one id: the distinct id hashes, ascending.
    duplicated: BTreeMap<u64, Vec<u64>>,
}

/// The sources of one worker: the numbers each has used, and who carried them.
#[derive(Clone, Debug, Default)]
pub struct GapState {
    sources: HashMap<CompactString, SourceState, foldhash::fast::FixedState>,
    /// Whether to detect duplicated numbers.
    duplicates: bool,
    /// Ranges stored, over all sources.
    ranges: usize,
    /// (source, seq) held for duplicate detection.
    seqs: usize,
}

impl GapState {
    /// Empty state; with `duplicates`, the first id of each number is kept.
    pub fn new(duplicates: bool) -> GapState {
        GapState {
            duplicates,
            ..GapState::default()
        }
    }

    /// Ranges of seen numbers held, over all sources (gaps + sources).
    pub fn ranges(&self) -> usize {
        self.ranges
    }

    /// Distinct (source, seq) held for duplicate detection.
    pub fn seqs(&self) -> usize {
        self.seqs
    }

    /// Notes one time's sightings and pushes the net changes of the gap tables to `changes`.
    fn see(&mut self, mut sightings: Vec<Sighting>, changes: &mut Vec<(GapRow, isize)>) {
        sightings.sort_unstable();
        sightings.dedup();
        let duplicates = self.duplicates;
        let mut sightings = sightings.into_iter().peekable();
        while let Some((name, seq, id)) = sightings.next() {
            let source = name.to_string();
            let state = self.sources.entry(name.clone()).or_default();
            let (held, before) = (state.seen.len(), state.seen.extent());
            let mut seqs = 0;
            let mut see = |state: &mut SourceState, seq: u64, id: u64| {
                let new = state.seen.insert(seq, |from, to, diff| {
                    let source = source.clone();
                    changes.push((GapRow::Gap { source, from, to }, diff));
                });
                if duplicates {
                    see_id(state, &source, seq, id, new, changes);
                    seqs += usize::from(new);
                }
            };
            see(state, seq, id);
            while let Some((_, seq, id)) = sightings.next_if(|(next, _, _)| *next == name) {
                see(state, seq, id);
            }
            self.seqs += seqs;
            self.ranges = self.ranges + state.seen.len() - held;
            let after = state.seen.extent();
            if before != after {
                let extent = |(first, last)| GapRow::Extent {
                    source: source.clone(),
                    first,
                    last,
                };
                changes.extend(before.map(|b| (extent(b), -1)));
                changes.extend(after.map(|a| (extent(a), 1)));
            }
        }
        differential_dataflow::consolidation::consolidate(changes);
    }
}

/// Detects gaps in the producers' sequence numbers.
pub trait DetectGaps<'scope> {
    /// The gap, extent and duplicate rows of every source, maintained incrementally.
    fn detect_gaps(self, options: &GapOptions) -> VecCollection<'scope, Time, GapRow>;
}

impl<'scope> DetectGaps<'scope> for VecCollection<'scope, Time, Sighting> {
    fn detect_gaps(self, options: &GapOptions) -> VecCollection<'scope, Time, GapRow> {
        let exchange = Exchange::new(|update: &(Sighting, Time, isize)| (update.0).0.hashed());
        let gauges = &options.gauges;
        let spec = Spec {
            name: "DetectGaps",
            marks: None,
            ready: Ready::Complete,
            gauges: vec![
                Gauge::new(&gauges.ranges, |s: &GapState| s.ranges as i64),
                Gauge::new(&gauges.seqs, |s: &GapState| s.seqs as i64),
            ],
            store: options.store.clone(),
        };
        per_time(self, exchange, spec, GapState::new(options.duplicates))
    }
}

impl Durable for GapState {
    fn save(&self, out: &mut Entries<'_>) -> std::io::Result<()> {
        self.sources
            .iter()
            .try_for_each(|(name, state)| out.put(name.hashed(), &(name, state)))
    }

    fn load(&mut self, entry: &[u8]) -> Result<(), bincode::Error> {
        let (name, state): (CompactString, SourceState) = decode(entry)?;
        self.ranges += state.seen.len();
        self.seqs += state.first_id.len();
        self.sources.insert(name, state);
        Ok(())
    }
}

impl PerTime for GapState {
    type Input = Sighting;
    type Item = Sighting;
    type Output = GapRow;

    fn take(&self, sighting: Sighting, diff: isize, held: &mut Vec<Sighting>) {
        if diff > 0 {
            held.push(sighting);
        }
    }

    fn apply(&mut self, _at: At, sightings: Vec<Sighting>, emit: &mut impl FnMut(GapRow, isize)) {
        let mut changes = Vec::new();
        self.see(sightings, &mut changes);
        for (row, diff) in changes {
            emit(row, diff);
        }
    }
}

/// Notes that `id` carried `seq` (`new` if no record carried it before), and records the
/// change in the number of distinct ids of a duplicated number.
fn see_id(
    state: &mut SourceState,
    source: &str,
    seq: u64,
    id: u64,
    new: bool,
    changes: &mut Vec<(GapRow, isize)>,
) {
    if new {
        state.first_id.insert(seq, id);
        return;
    }
    let first = state.first_id.get(&seq).copied();
    if first.is_none_or(|first| first == id) {
        return;
    }
    let ids = match state.duplicated.entry(seq) {
        MapEntry::Vacant(slot) => slot.insert(vec![first.expect("checked")]),
        MapEntry::Occupied(slot) => slot.into_mut(),
    };
    let Err(at) = ids.binary_search(&id) else {
        return;
    };
    let before = ids.len() as u64;
    ids.insert(at, id);
    let row = |ids| GapRow::Duplicate {
        source: source.to_owned(),
        seq,
        ids,
    };
    if before > 1 {
        changes.push((row(before), -1));
    }
    changes.push((row(before + 1), 1));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inserts `seqs` in order and returns the gap changes of each insertion.
    fn changes(ranges: &mut SeqRanges, seqs: &[u64]) -> Vec<Vec<(u64, u64, isize)>> {
        seqs.iter()
            .map(|&seq| {
                let mut out = Vec::new();
                ranges.insert(seq, |from, to, diff| out.push((from, to, diff)));
                out
            })
            .collect()
    }

    #[test]
    fn inserting_splits_shrinks_and_fills_gaps() {
        let mut ranges = SeqRanges::default();
        let got = changes(&mut ranges, &[5, 10, 7, 6, 8, 9, 1, 5, 0, u64::MAX]);
        assert_eq!(
            got,
            vec![
                vec![],
                vec![(6, 9, 1)],
                vec![(6, 9, -1), (6, 6, 1), (8, 9, 1)],
                vec![(6, 6, -1)],
                vec![(8, 9, -1), (9, 9, 1)],
                vec![(9, 9, -1)],
                vec![(2, 4, 1)],
                vec![],
                vec![],
                vec![(11, u64::MAX - 1, 1)],
            ]
        );
        assert_eq!(ranges.len(), 3);
        assert_eq!(ranges.extent(), Some((0, u64::MAX)));
        assert_eq!(
            ranges.gaps().collect::<Vec<_>>(),
            vec![(2, 4), (11, u64::MAX - 1)]
        );
        assert!(ranges.contains(7) && !ranges.contains(3));
    }

    #[test]
    fn ranges_match_a_set_for_any_order() {
        // A small exhaustive check: every permutation of a few numbers gives the same ranges.
        let seqs = [3u64, 0, 7, 4, 9, 8];
        let mut orders = vec![seqs.to_vec()];
        for i in 0..seqs.len() {
            let mut o = seqs.to_vec();
            o.rotate_left(i);
            orders.push(o.clone());
            o.reverse();
            orders.push(o);
        }
        for order in orders {
            let mut ranges = SeqRanges::default();
            let mut gaps: BTreeMap<(u64, u64), isize> = BTreeMap::new();
            for seq in order {
                ranges.insert(seq, |from, to, diff| {
                    *gaps.entry((from, to)).or_default() += diff;
                });
            }
            gaps.retain(|_, d| *d != 0);
            assert!(gaps.values().all(|d| *d == 1));
            let gaps: Vec<_> = gaps.into_keys().collect();
            assert_eq!(gaps, vec![(1, 2), (5, 6)]);
            assert_eq!(ranges.gaps().collect::<Vec<_>>(), gaps);
        }
    }
}
