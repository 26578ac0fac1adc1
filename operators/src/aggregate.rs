//! Aggregates per (window, key): count, sum, min and max, exact and order-independent.
//!
//! Input: `((window, key), value)` with diffs (a retracted record retracts its value).
//! Output: one [`Agg`] row per (window, key) that has values, updated as values come and go: when
//! a time's changes to a group are applied, the group's old row is retracted and its new row
//! inserted at that time; a group whose last value is retracted has no row, and changes that
//! cancel out emit nothing. All arithmetic is on fixed-point integers, so a row is
//! bit-identical for any worker count, batching and arrival order.
//!
//! Updates are exchanged by a hash of (window, key). Each group keeps its count, its sum and
//! its distinct values with multiplicities in a sorted vector, so a change costs a binary
//! search in its own group — not a rescan of the group, and nothing for other groups. Only
//! the group's current row is kept, never its history.

use std::collections::BTreeMap;
use std::hash::BuildHasher;

use compact_str::CompactString;
use differential_dataflow::{AsCollection, Hashable, VecCollection};
use hashbrown::hash_table::HashTable;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::generic::operator::empty;

use crate::decimal::Decimal;
use crate::event::{Time, epoch_of};
use crate::stash::Stash;
use crate::time::Millis;
use crate::watermark::{Bounds, Horizons, Marks, gauge_add};
use crate::window::{Window, WindowSpec, WindowedValue};

/// The aggregates of one (window, key).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Agg {
    /// Number of current records.
    pub count: u64,
    /// Sum of their values; `None` if it does not fit 128-bit fixed point.
    pub sum: Option<Decimal>,
    /// Least value.
    pub min: Decimal,
    /// Greatest value.
    pub max: Decimal,
}

impl Agg {
    /// Sum / count, rounded half-to-even at the scale; `None` if the sum overflowed.
    pub fn mean(&self) -> Option<Decimal> {
        Decimal::mean(self.sum?, self.count)
    }

    /// The aggregates of values with multiplicities; `None` if there are none.
    pub fn of<'a>(values: impl IntoIterator<Item = (&'a Decimal, i64)>) -> Option<Agg> {
        let mut group = Group::default();
        for (value, count) in values {
            group.update(*value, count);
        }
        group.agg()
    }
}

/// One row of the aggregate table.
pub type AggRow = ((Window, CompactString), Agg);

/// What a group is keyed by.
type GroupKey = (Window, CompactString);

/// The state of one group: its values with multiplicities, and running count and sum.
#[derive(Clone, Debug, Default)]
struct Group {
    /// Distinct values, ascending, each with a positive multiplicity; most groups have one,
    /// held inline.
    values: SmallVec<[(Decimal, i64); 1]>,
    count: i64,
    /// The exact sum, or `None` while it does not fit (then recomputed on each change).
    sum: Option<i128>,
}

impl Group {
    fn update(&mut self, value: Decimal, diff: i64) {
        match self.values.binary_search_by(|(v, _)| v.cmp(&value)) {
            Ok(at) => {
                self.values[at].1 += diff;
                if self.values[at].1 == 0 {
                    self.values.remove(at);
                }
            }
            Err(at) => self.values.insert(at, (value, diff)),
        }
        self.count += diff;
        // The running sum is the exact sum of the current values whenever it is `Some`; once it
        // does not fit, it is recomputed until it fits again.
        let delta = value.0.checked_mul(i128::from(diff));
        self.sum = match (self.sum, delta) {
            (Some(sum), Some(delta)) => sum.checked_add(delta),
            _ => self.exact_sum(),
        };
    }

    /// The sum recomputed from the values, `None` if it does not fit.
    fn exact_sum(&self) -> Option<i128> {
        self.values.iter().try_fold(0i128, |sum, (v, n)| {
            sum.checked_add(v.0.checked_mul(i128::from(*n))?)
        })
    }

    fn agg(&self) -> Option<Agg> {
        let (min, max) = (self.values.first()?, self.values.last()?);
        // Multiplicities below zero mean retractions of values never inserted: not a table.
        if self.count <= 0 || self.values.iter().any(|(_, n)| *n < 0) {
            return None;
        }
        Some(Agg {
            count: self.count as u64,
            sum: self.sum.map(Decimal),
            min: min.0,
            max: max.0,
        })
    }
}

/// Computes the aggregate table.
pub trait Aggregate<'scope> {
    /// One [`Agg`] per (window, key) with values, maintained incrementally.
    fn aggregate(self) -> VecCollection<'scope, Time, AggRow>;

    /// As [`Aggregate::aggregate`], and with a finite lateness, closes at the start of each
    /// epoch `e` every window that ends at or before `H(e)` (see [`crate::watermark`]): its
    /// groups are forgotten, later updates of it are ignored, and its rows stay as they were.
    fn aggregate_within(
        self,
        marks: Marks<'scope>,
        bounds: &Bounds,
    ) -> VecCollection<'scope, Time, AggRow>;
}

impl<'scope> Aggregate<'scope> for VecCollection<'scope, Time, WindowedValue> {
    fn aggregate(self) -> VecCollection<'scope, Time, AggRow> {
        let marks = empty(self.inner.scope());
        let bounds = Bounds::unbounded(WindowSpec::Tumbling { size: 1 });
        self.aggregate_within(marks, &bounds)
    }

    fn aggregate_within(
        self,
        marks: Marks<'scope>,
        bounds: &Bounds,
    ) -> VecCollection<'scope, Time, AggRow> {
        let exchange = Exchange::new(|update: &(WindowedValue, Time, isize)| (update.0).0.hashed());
        let lateness = bounds.lateness;
        let gauge = bounds.state.groups.clone();
        self.inner
            .binary_frontier(marks, exchange, Pipeline, "Aggregate", move |_, _| {
                // Each group with its (window, key), found by the key's hash; boxed, so the
                // table's slots (and its growth) cost a pointer each.
                let hasher = foldhash::fast::RandomState::default();
                let mut groups: HashTable<Box<(GroupKey, Group)>> = HashTable::new();
                // With a finite lateness: the hashes of groups by their window's end.
                let mut closing: BTreeMap<Millis, Vec<u64>> = BTreeMap::new();
                let mut horizons = Horizons::new(lateness);
                let mut pending = Stash::default();
                move |(input, frontier), (marks, marks_frontier), output| {
                    marks.for_each(|_, data| horizons.extend(data.drain(..)));
                    input.for_each(|capability, data| {
                        for (update, time, diff) in data.drain(..) {
                            pending.push(&capability, time, (update, diff));
                        }
                    });
                    while let Some((time, capability, mut updates)) =
                        pending.pop_ready(|time| horizons.complete(time, frontier, marks_frontier))
                    {
                        let held = groups.len() as i64;
                        let horizon = horizons.horizon(epoch_of(time));
                        if let Some(horizon) = horizon {
                            close_windows(&mut groups, &mut closing, horizon);
                            // A closed window's row is final.
                            updates.retain(|(((window, _), _), _)| window.end > horizon);
                        }
                        // Group the time's updates so each group's old row is read once.
                        updates.sort_unstable_by(|a, b| a.0.0.cmp(&b.0.0));
                        let mut session = output.session(&capability);
                        let mut updates = updates.into_iter().peekable();
                        while let Some(((key, value), diff)) = updates.next() {
                            let hash = hasher.hash_one(&key);
                            let mut entry = groups
                                .entry(
                                    hash,
                                    |entry| entry.0 == key,
                                    |entry| hasher.hash_one(&entry.0),
                                )
                                .or_insert_with(|| {
                                    if lateness.is_bounded() {
                                        closing.entry(key.0.end).or_default().push(hash);
                                    }
                                    Box::new((key.clone(), Group::default()))
                                });
                            let group = &mut entry.get_mut().1;
                            let before = group.agg();
                            group.update(value, diff as i64);
                            while let Some(((_, value), diff)) =
                                updates.next_if(|((next, _), _)| *next == key)
                            {
                                group.update(value, diff as i64);
                            }
                            let after = group.agg();
                            if group.values.is_empty() {
                                entry.remove();
                            }
                            if before == after {
                                continue;
                            }
                            if let Some(old) = before {
                                session.give(((key.clone(), old), time, -1));
                            }
                            if let Some(new) = after {
                                session.give(((key, new), time, 1));
                            }
                        }
                        gauge_add(&gauge, groups.len() as i64 - held);
                    }
                    let idle = pending.is_empty();
                    if let Some(horizon) = horizons.at_end(frontier, marks_frontier, idle) {
                        let held = groups.len() as i64;
                        close_windows(&mut groups, &mut closing, horizon);
                        gauge_add(&gauge, groups.len() as i64 - held);
                    }
                }
            })
            .as_collection()
    }
}

/// Forgets every group whose window ends at or before `horizon`.
fn close_windows(
    groups: &mut HashTable<Box<(GroupKey, Group)>>,
    closing: &mut BTreeMap<Millis, Vec<u64>>,
    horizon: Millis,
) {
    while let Some(entry) = closing.first_entry() {
        if *entry.key() > horizon {
            break;
        }
        for hash in entry.remove() {
            while let Ok(found) = groups.find_entry(hash, |g| g.0.0.end <= horizon) {
                found.remove();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregates_values_with_multiplicities() {
        let (a, b) = (Decimal(-5), Decimal(20));
        let agg = Agg::of([(&a, 1), (&b, 2)]).unwrap();
        assert_eq!(agg.count, 3);
        assert_eq!(agg.sum, Some(Decimal(35)));
        assert_eq!((agg.min, agg.max), (a, b));
        assert_eq!(agg.mean(), Some(Decimal(12)));
        assert_eq!(Agg::of([(&a, 0)]), None);
        assert_eq!(Agg::of([(&a, 1), (&a, -1)]), None);
    }

    #[test]
    fn retractions_update_min_max_and_sum() {
        let mut group = Group::default();
        for v in [5, 1, 9, 1] {
            group.update(Decimal(v), 1);
        }
        group.update(Decimal(1), -1);
        group.update(Decimal(9), -1);
        let agg = group.agg().unwrap();
        assert_eq!(
            (agg.count, agg.sum, agg.min, agg.max),
            (2, Some(Decimal(6)), Decimal(1), Decimal(5))
        );
        group.update(Decimal(1), -1);
        group.update(Decimal(5), -1);
        assert_eq!(group.agg(), None);
        assert!(group.values.is_empty());
    }

    #[test]
    fn sum_overflow_is_reported_not_wrapped_and_recovers() {
        let big = Decimal(i128::MAX / 2 + 1);
        let mut group = Group::default();
        group.update(big, 2);
        assert_eq!(group.agg().unwrap().sum, None);
        assert_eq!(group.agg().unwrap().mean(), None);
        group.update(big, -1);
        assert_eq!(group.agg().unwrap().sum, Some(big));
    }
}
