//! Aggregates per (window, key): count, sum, min and max, exact and order-independent.
//!
//! Input: `((window, key), value)` with diffs (a retracted record retracts its value).
//! Output: one [`Agg`] row per (window, key) that has values, updated as values come and go; a
//! group whose last value is retracted has no row. All arithmetic is on fixed-point integers,
//! so a row is bit-identical for any worker count, batching and arrival order.
//!
//! The rows are computed by a differential `reduce` over each group's values, which sees them
//! sorted with their multiplicities: min and max are the ends, count and sum a pass over them.
//! A change to one group recomputes that group only.

use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};

use crate::decimal::Decimal;
use crate::event::Time;
use crate::window::{Window, WindowedValue};

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

    /// The aggregates of values with multiplicities, ascending; `None` if there are none.
    pub fn of_sorted<'a>(values: impl IntoIterator<Item = (&'a Decimal, i64)>) -> Option<Agg> {
        let mut agg: Option<Agg> = None;
        for (value, count) in values {
            if count <= 0 {
                continue;
            }
            let sum = value.checked_mul_int(count);
            match &mut agg {
                None => {
                    agg = Some(Agg {
                        count: count as u64,
                        sum,
                        min: *value,
                        max: *value,
                    })
                }
                Some(agg) => {
                    agg.count += count as u64;
                    agg.sum = agg.sum.zip(sum).and_then(|(a, b)| a.checked_add(b));
                    agg.min = agg.min.min(*value);
                    agg.max = agg.max.max(*value);
                }
            }
        }
        agg
    }
}

/// One row of the aggregate table.
pub type AggRow = ((Window, String), Agg);

/// Computes the aggregate table.
pub trait Aggregate<'scope> {
    /// One [`Agg`] per (window, key) with values.
    fn aggregate(self) -> VecCollection<'scope, Time, AggRow>;
}

impl<'scope> Aggregate<'scope> for VecCollection<'scope, Time, WindowedValue> {
    fn aggregate(self) -> VecCollection<'scope, Time, AggRow> {
        self.reduce(|_group, values, output| {
            let values = values.iter().map(|(v, n)| (*v, *n as i64));
            if let Some(agg) = Agg::of_sorted(values) {
                output.push((agg, 1));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregates_values_with_multiplicities() {
        let (a, b) = (Decimal(-5), Decimal(20));
        let agg = Agg::of_sorted([(&a, 1), (&b, 2)]).unwrap();
        assert_eq!(agg.count, 3);
        assert_eq!(agg.sum, Some(Decimal(35)));
        assert_eq!((agg.min, agg.max), (a, b));
        assert_eq!(agg.mean(), Some(Decimal(12)));
        assert_eq!(Agg::of_sorted([(&a, 0)]), None);
    }

    #[test]
    fn sum_overflow_is_reported_not_wrapped() {
        let big = Decimal(i128::MAX / 2 + 1);
        let agg = Agg::of_sorted([(&big, 2)]).unwrap();
        assert_eq!(agg.sum, None);
        assert_eq!(agg.mean(), None);
    }
}
