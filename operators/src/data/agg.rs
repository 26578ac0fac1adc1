//! The aggregates of one (window, key): count, sum, min and max, exact and order-independent.
//!
//! An [`Agg`] is one row of the aggregate table. A [`Group`] is the state that gives it: the
//! distinct values with their multiplicities, and a running count and sum, so that adding or
//! retracting a value costs a binary search and min and max are the ends. All arithmetic is
//! on fixed-point integers, so a row is bit-identical for any order of the changes.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::data::decimal::Decimal;
use crate::data::window::Window;

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
    ///
    /// ```
    /// use amend_operators::{Agg, Decimal};
    /// let agg = Agg::of([(&Decimal(-5), 1), (&Decimal(20), 2)]).unwrap();
    /// assert_eq!((agg.count, agg.sum, agg.min, agg.max), (3, Some(Decimal(35)), Decimal(-5), Decimal(20)));
    /// assert_eq!(Agg::of([(&Decimal(1), 1), (&Decimal(1), -1)]), None);
    /// ```
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

/// The state of one group: its values with multiplicities, and running count and sum.
/// 80 bytes: with its key, a group fills a 128-byte allocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// Distinct values, ascending, each with a non-zero multiplicity; most groups have one,
    /// held inline.
    values: SmallVec<[(Decimal, i64); 1]>,
    /// The exact sum if `sum_fits`, else 0 (then recomputed on each change). Not an
    /// `Option<i128>`, which would take 32 bytes.
    sum: i128,
    count: i64,
    sum_fits: bool,
}

impl Default for Group {
    fn default() -> Self {
        Group {
            values: SmallVec::new(),
            sum: 0,
            count: 0,
            sum_fits: true,
        }
    }
}

impl Group {
    /// Adds `diff` copies of `value` (retracts them if negative).
    #[inline]
    pub fn update(&mut self, value: Decimal, diff: i64) {
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
        let sum = match (self.sum_fits, delta) {
            (true, Some(delta)) => self.sum.checked_add(delta),
            _ => self.exact_sum(),
        };
        (self.sum, self.sum_fits) = (sum.unwrap_or(0), sum.is_some());
    }

    /// A group of `values`, as [`Group::values`] gave them (distinct, ascending, each with a
    /// non-zero multiplicity).
    pub fn from_values(values: SmallVec<[(Decimal, i64); 1]>) -> Group {
        debug_assert!(values.windows(2).all(|w| w[0].0 < w[1].0));
        let mut group = Group {
            count: values.iter().map(|(_, n)| n).sum(),
            values,
            ..Group::default()
        };
        let sum = group.exact_sum();
        (group.sum, group.sum_fits) = (sum.unwrap_or(0), sum.is_some());
        group
    }

    /// Whether no value is held.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The distinct values, ascending, with their multiplicities.
    pub fn values(&self) -> impl Iterator<Item = (Decimal, i64)> + '_ {
        self.values.iter().copied()
    }

    /// The distinct values, ascending, with their multiplicities, as a slice (what a
    /// checkpoint saves, without copying them into a list of their own).
    pub fn value_list(&self) -> &[(Decimal, i64)] {
        &self.values
    }

    /// The sum recomputed from the values, `None` if it does not fit.
    fn exact_sum(&self) -> Option<i128> {
        self.values.iter().try_fold(0i128, |sum, (v, n)| {
            sum.checked_add(v.0.checked_mul(i128::from(*n))?)
        })
    }

    /// The group's row; `None` without values, or if a multiplicity is below zero (retractions
    /// of values never inserted: not a table).
    #[inline]
    pub fn agg(&self) -> Option<Agg> {
        let (min, max) = (self.values.first()?, self.values.last()?);
        if self.count <= 0 || self.values.iter().any(|(_, n)| *n < 0) {
            return None;
        }
        Some(Agg {
            count: self.count as u64,
            sum: self.sum_fits.then_some(Decimal(self.sum)),
            min: min.0,
            max: max.0,
        })
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
        assert!(group.is_empty());
    }

    #[test]
    fn a_group_and_its_key_fill_128_bytes() {
        type Keyed = ((Window, CompactString), Group);
        assert_eq!(std::mem::size_of::<Keyed>(), 128);
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
