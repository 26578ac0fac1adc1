//! Estimates for windows with no data: per key, the empty windows between its first and last
//! observed window, filled from their neighbours, kept apart from the exact table.
//!
//! For tumbling and hop windows, the window starts of a key lie on a lattice (multiples of the
//! size or slide). Between two consecutive observed windows `a` and `b` of a key, every
//! lattice start `s` with `a.start < s < b.start` is an empty window; with `n` steps from `a`
//! to `b` and `s` at step `k`, its estimate is, by [`Fill`]:
//!
//! - `zero`: count 0 and every aggregate 0;
//! - `previous`: the aggregates of `a`;
//! - `linear`: each of count, sum, min, max and mean at `a + (b − a)·k/n`, rounded half to even
//!   (count to a whole number, decimals at the scale).
//!
//! Runs of more than `max_windows` empty windows are left empty (a key silent for a year is not
//! filled minute by minute). An estimate whose arithmetic does not fit 128 bits is left out.
//!
//! The operator keeps each key's observed windows and, for every key a time's row changes
//! touch, recomputes that key's estimates and emits the difference: a recovered event turns an
//! estimate into a real row by retracting the estimate.

use std::collections::{BTreeMap, BTreeSet};

use compact_str::CompactString;
use differential_dataflow::{Hashable, VecCollection};
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Exchange;

use crate::data::agg::{Agg, AggRow};
use crate::data::decimal::Decimal;
use crate::data::event::Time;
use crate::data::time::Millis;
use crate::data::window::{Window, WindowSpec};
use crate::incremental::durable::{Durable, Entries, Store, decode};
use crate::incremental::per_time::{At, PerTime, Ready, Spec, per_time};

/// How empty windows are estimated (`--fill`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Fill {
    /// Every aggregate 0.
    Zero,
    /// The previous observed window's aggregates.
    Previous,
    /// Linear interpolation between the observed windows around.
    Linear,
}

impl Fill {
    /// The flag value.
    pub fn name(self) -> &'static str {
        match self {
            Fill::Zero => "zero",
            Fill::Previous => "previous",
            Fill::Linear => "linear",
        }
    }
}

/// The aggregates of an estimated window; `mean` is estimated too, not derived.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Estimate {
    /// Estimated number of records.
    pub count: u64,
    /// Estimated sum.
    pub sum: Decimal,
    /// Estimated least value.
    pub min: Decimal,
    /// Estimated greatest value.
    pub max: Decimal,
    /// Estimated mean.
    pub mean: Decimal,
}

/// One estimated row: a (window, key) with no records.
pub type EstimateRow = ((Window, CompactString), Estimate);

impl Estimate {
    fn of(agg: &Agg) -> Option<Estimate> {
        Some(Estimate {
            count: agg.count,
            sum: agg.sum?,
            min: agg.min,
            max: agg.max,
            mean: agg.mean()?,
        })
    }
}

/// `a + (b − a)·k/n`, rounded half to even; `None` if it does not fit.
fn between(a: i128, b: i128, k: u64, n: u64) -> Option<i128> {
    let step = b.checked_sub(a)?.checked_mul(i128::from(k))?;
    let scaled = a.checked_mul(i128::from(n))?.checked_add(step)?;
    Some(Decimal::mean(Decimal(scaled), n)?.0)
}

/// The estimates of the empty windows between two observed windows `a` and `b` of one key,
/// `step` apart on the lattice.
fn fill_between(
    fill: Fill,
    (a, a_agg): (Window, &Agg),
    (b, b_agg): (Window, &Agg),
    step: Millis,
    max_windows: u64,
    out: &mut Vec<(Window, Estimate)>,
) {
    let n = ((b.start - a.start) / step) as u64;
    if n < 2 || n - 1 > max_windows {
        return;
    }
    let (Some(ea), Some(eb)) = (Estimate::of(a_agg), Estimate::of(b_agg)) else {
        return;
    };
    for k in 1..n {
        let start = a.start + k as Millis * step;
        let window = Window {
            start,
            end: start + (a.end - a.start),
        };
        let estimate = match fill {
            Fill::Zero => Some(Estimate {
                count: 0,
                sum: Decimal(0),
                min: Decimal(0),
                max: Decimal(0),
                mean: Decimal(0),
            }),
            Fill::Previous => Some(ea),
            Fill::Linear => (|| {
                let d = |x: Decimal, y: Decimal| between(x.0, y.0, k, n).map(Decimal);
                Some(Estimate {
                    count: u64::try_from(between(
                        i128::from(ea.count),
                        i128::from(eb.count),
                        k,
                        n,
                    )?)
                    .ok()?,
                    sum: d(ea.sum, eb.sum)?,
                    min: d(ea.min, eb.min)?,
                    max: d(ea.max, eb.max)?,
                    mean: d(ea.mean, eb.mean)?,
                })
            })(),
        };
        out.extend(estimate.map(|e| (window, e)));
    }
}

/// The estimates of one key from its observed windows, in window order.
pub fn estimate_key(
    fill: Fill,
    step: Millis,
    max_windows: u64,
    rows: &BTreeMap<Window, Agg>,
) -> Vec<(Window, Estimate)> {
    let mut out = Vec::new();
    let mut rows = rows.iter().peekable();
    while let Some((a, a_agg)) = rows.next() {
        if let Some((b, b_agg)) = rows.peek() {
            fill_between(fill, (*a, a_agg), (**b, b_agg), step, max_windows, &mut out);
        }
    }
    out
}

/// The lattice step of a window assignment, `None` for sessions (which have no lattice).
pub fn lattice_step(spec: WindowSpec) -> Option<Millis> {
    match spec {
        WindowSpec::Tumbling { size } => Some(size),
        WindowSpec::Hop { slide, .. } => Some(slide),
        WindowSpec::Session { .. } => None,
    }
}

/// Estimates for the empty windows of each key.
pub trait Estimates<'scope> {
    /// The estimated rows of the empty windows between each key's observed windows, kept up
    /// to date as rows come and go. `step` is the windows' lattice ([`lattice_step`]).
    fn estimates(
        self,
        fill: Fill,
        step: Millis,
        max_windows: u64,
        store: &Store,
    ) -> VecCollection<'scope, Time, EstimateRow>;
}

impl<'scope> Estimates<'scope> for VecCollection<'scope, Time, AggRow> {
    fn estimates(
        self,
        fill: Fill,
        step: Millis,
        max_windows: u64,
        store: &Store,
    ) -> VecCollection<'scope, Time, EstimateRow> {
        let exchange = Exchange::new(|update: &(AggRow, Time, isize)| (update.0).0.1.hashed());
        let spec = Spec {
            name: "Estimates",
            marks: None,
            ready: Ready::Complete,
            gauges: Vec::new(),
            store: store.clone(),
        };
        per_time(
            self,
            exchange,
            spec,
            EstimateState::new(fill, step, max_windows),
        )
    }
}

/// The observed windows of one worker's keys, and how their empty windows are estimated.
#[derive(Clone, Debug)]
pub struct EstimateState {
    fill: Fill,
    step: Millis,
    max_windows: u64,
    /// Each key's observed windows.
    keys: BTreeMap<CompactString, BTreeMap<Window, Agg>>,
}

impl EstimateState {
    /// No keys yet; estimates by `fill` on a lattice of `step`, runs of at most `max_windows`.
    pub fn new(fill: Fill, step: Millis, max_windows: u64) -> EstimateState {
        EstimateState {
            fill,
            step,
            max_windows,
            keys: BTreeMap::new(),
        }
    }

    fn estimates_of(&self, key: &CompactString) -> Vec<(Window, Estimate)> {
        match self.keys.get(key) {
            Some(rows) => estimate_key(self.fill, self.step, self.max_windows, rows),
            None => Vec::new(),
        }
    }
}

impl Durable for EstimateState {
    fn save(&self, out: &mut Entries<'_>) -> std::io::Result<()> {
        self.keys
            .iter()
            .try_for_each(|key| out.put(key.0.hashed(), &key))
    }

    fn load(&mut self, entry: &[u8]) -> Result<(), bincode::Error> {
        let (key, rows): (CompactString, BTreeMap<Window, Agg>) = decode(entry)?;
        self.keys.insert(key, rows);
        Ok(())
    }
}

impl PerTime for EstimateState {
    type Input = AggRow;
    type Item = (AggRow, isize);
    type Output = EstimateRow;

    fn take(&self, row: AggRow, diff: isize, held: &mut Vec<Self::Item>) {
        held.push((row, diff));
    }

    fn apply(
        &mut self,
        _at: At,
        mut changes: Vec<Self::Item>,
        emit: &mut impl FnMut(EstimateRow, isize),
    ) {
        // Retractions first, so a row replaced within the time is there after.
        changes.sort_by_key(|(_, diff)| *diff);
        let touched: BTreeSet<CompactString> = changes
            .iter()
            .map(|(((_, key), _), _)| key.clone())
            .collect();
        let before: Vec<_> = touched.iter().map(|key| self.estimates_of(key)).collect();
        for (((window, key), agg), diff) in changes {
            let rows = self.keys.entry(key).or_default();
            if diff > 0 {
                rows.insert(window, agg);
            } else if rows.get(&window) == Some(&agg) {
                rows.remove(&window);
            }
        }
        for (key, before) in touched.into_iter().zip(before) {
            if self.keys.get(&key).is_some_and(BTreeMap::is_empty) {
                self.keys.remove(&key);
            }
            let after = self.estimates_of(&key);
            let old: BTreeSet<_> = before.into_iter().collect();
            let new: BTreeSet<_> = after.into_iter().collect();
            for (window, estimate) in old.difference(&new) {
                emit(((*window, key.clone()), *estimate), -1);
            }
            for (window, estimate) in new.difference(&old) {
                emit(((*window, key.clone()), *estimate), 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(start: Millis) -> Window {
        Window {
            start,
            end: start + 10,
        }
    }

    fn agg(count: u64, sum: i128, min: i128, max: i128) -> Agg {
        Agg {
            count,
            sum: Some(Decimal(sum)),
            min: Decimal(min),
            max: Decimal(max),
        }
    }

    #[test]
    fn fills_the_empty_windows_between_observed_ones() {
        let rows: BTreeMap<Window, Agg> =
            [(w(0), agg(1, 10, 10, 10)), (w(40), agg(5, 50, 2, 20))].into();
        let windows = |fill| -> Vec<Millis> {
            estimate_key(fill, 10, 100, &rows)
                .iter()
                .map(|(w, _)| w.start)
                .collect()
        };
        assert_eq!(windows(Fill::Zero), vec![10, 20, 30]);
        let previous = estimate_key(Fill::Previous, 10, 100, &rows);
        assert!(
            previous
                .iter()
                .all(|(_, e)| e.count == 1 && e.sum == Decimal(10))
        );
        let linear = estimate_key(Fill::Linear, 10, 100, &rows);
        // Counts 1 → 5 over 4 steps: 2, 3, 4; sums 10 → 50: 20, 30, 40; means 10 → 10.
        let counts: Vec<u64> = linear.iter().map(|(_, e)| e.count).collect();
        let sums: Vec<i128> = linear.iter().map(|(_, e)| e.sum.0).collect();
        assert_eq!(counts, vec![2, 3, 4]);
        assert_eq!(sums, vec![20, 30, 40]);
        assert!(linear.iter().all(|(_, e)| e.mean == Decimal(10)));
        // min 10 → 2: 8, 6, 4.
        let mins: Vec<i128> = linear.iter().map(|(_, e)| e.min.0).collect();
        assert_eq!(mins, vec![8, 6, 4]);
    }

    #[test]
    fn linear_rounds_half_to_even_and_long_runs_stay_empty() {
        let rows: BTreeMap<Window, Agg> =
            [(w(0), agg(1, 0, 0, 0)), (w(20), agg(2, 1, 1, 1))].into();
        let linear = estimate_key(Fill::Linear, 10, 100, &rows);
        // Halfway: count 1.5 → 2 (even), sum, min and max 0.5 → 0 (even).
        assert_eq!(linear.len(), 1);
        assert_eq!(linear[0].1.count, 2);
        assert_eq!(linear[0].1.sum, Decimal(0));
        let far: BTreeMap<Window, Agg> = [(w(0), agg(1, 1, 1, 1)), (w(50), agg(1, 1, 1, 1))].into();
        assert_eq!(estimate_key(Fill::Zero, 10, 4, &far).len(), 4);
        assert!(estimate_key(Fill::Zero, 10, 3, &far).is_empty());
    }
}
