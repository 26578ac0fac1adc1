//! Event time: watermarks, the lateness horizon, late records, and state accounting.
//!
//! Records of one epoch are simultaneous, so the watermark moves between epochs:
//!
//! ```text
//! W(e) = greatest ts of the accepted records of epochs before e − max out-of-orderness
//! H(e) = W(e) − allowed lateness                           (the lateness horizon)
//! ```
//!
//! A record of epoch `e` whose [expiry](crate::WindowSpec::expiry) is at or before `H(e)` is
//! late ([`crate::incremental::split_late`]): every window it falls in has closed. State that only such records could change is
//! released at the start of epoch `e`.
//!
//! Inside the dataflow the watermark travels as *marks*: when a worker finishes reading epoch
//! `e − 1` it sends the greatest event time it has read at time `epoch_start(e)`, broadcast to
//! every worker. An operator knows `H(e)` once the marks frontier has passed
//! `epoch_start(e)` ([`Horizons`]): every worker has finished reading epoch `e − 1`. The
//! decision is a function of the input and its epochs, the same for any worker count.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use serde::{Deserialize, Serialize};
use timely::dataflow::StreamVec;
use timely::progress::frontier::MutableAntichain;

use crate::data::event::{Time, epoch_of, epoch_start};
use crate::data::time::Millis;
use crate::data::window::WindowSpec;

/// The stream of marks: each worker's greatest event time read so far, sent at the first time
/// of the epoch after it (and carrying that time), broadcast to every worker.
pub type Marks<'scope> = StreamVec<'scope, Time, (Time, Millis)>;

/// How far event time may run out of order, and how late a record may still change a window.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lateness {
    /// Subtracted from the greatest event time seen to give the watermark.
    pub max_out_of_orderness: Millis,
    /// How long after the watermark passes a window's end it still takes records; `None` for
    /// ever (nothing is late, nothing is released).
    pub allowed: Option<Millis>,
}

impl Lateness {
    /// The watermark after records up to `max_ts`; `None` before any record.
    pub fn watermark(&self, max_ts: Option<Millis>) -> Option<Millis> {
        Some(max_ts?.saturating_sub(self.max_out_of_orderness))
    }

    /// The lateness horizon after records up to `max_ts`: windows ending at or before it are
    /// closed. `None` while nothing is closed.
    pub fn horizon(&self, max_ts: Option<Millis>) -> Option<Millis> {
        Some(self.watermark(max_ts)?.saturating_sub(self.allowed?))
    }

    /// Whether a lateness is set, so that records can be late and state is released.
    pub fn is_bounded(&self) -> bool {
        self.allowed.is_some()
    }
}

/// Event time settings of a pipeline and the gauges its operators report their state to.
#[derive(Clone, Debug)]
pub struct Bounds {
    /// The window assignment, which gives each record its expiry.
    pub window: WindowSpec,
    /// Watermark and lateness.
    pub lateness: Lateness,
    /// Where operators count the state they hold.
    pub state: StateGauges,
    /// Where checkpoints find the operators' state.
    pub store: crate::incremental::durable::Store,
}

/// Counts of what the operators of one process hold, for the dataflow's own accounting of its
/// state (not RSS): the ids `ResolveIds` holds, and the groups (or session records) the
/// aggregation holds.
#[derive(Clone, Debug, Default)]
pub struct StateGauges {
    /// Ids held by id resolution.
    pub ids: Arc<AtomicI64>,
    /// Groups (window, key) held by aggregation, or records held by session windows.
    pub groups: Arc<AtomicI64>,
}

impl StateGauges {
    /// The current (ids, groups).
    pub fn read(&self) -> (u64, u64) {
        let read = |g: &AtomicI64| g.load(Ordering::Relaxed).max(0) as u64;
        (read(&self.ids), read(&self.groups))
    }
}

/// The horizons an operator has learnt from the marks it received.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Horizons {
    lateness: Lateness,
    /// Marks not yet folded into `settled`, with their times.
    pending: Vec<(Time, Millis)>,
    /// The greatest mark at or before `settled_at`.
    settled: Option<Millis>,
    settled_at: Time,
}

impl Horizons {
    /// No marks yet.
    pub fn new(lateness: Lateness) -> Horizons {
        Horizons {
            lateness,
            pending: Vec::new(),
            settled: None,
            settled_at: 0,
        }
    }

    /// Takes a received mark.
    pub fn push(&mut self, time: Time, mark: Millis) {
        if self.lateness.is_bounded() {
            self.pending.push((time, mark));
        }
    }

    /// Takes received marks.
    pub fn extend(&mut self, marks: impl IntoIterator<Item = (Time, Millis)>) {
        for (time, mark) in marks {
            self.push(time, mark);
        }
    }

    /// Whether an operator can act on `time`: it is complete at the input, and the horizon of
    /// its epoch is known.
    pub fn complete(
        &self,
        time: Time,
        input: &MutableAntichain<Time>,
        marks: &MutableAntichain<Time>,
    ) -> bool {
        !input.less_equal(&time) && self.ready(epoch_of(time), marks)
    }

    /// Whether `H(epoch)` is known: every worker has finished reading the epoch before.
    pub fn ready(&self, epoch: u64, marks: &MutableAntichain<Time>) -> bool {
        !self.lateness.is_bounded() || !marks.less_equal(&epoch_start(epoch))
    }

    /// `H(epoch)`, once [`Horizons::ready`]; epochs must be asked in ascending order.
    pub fn horizon(&mut self, epoch: u64) -> Option<Millis> {
        if !self.lateness.is_bounded() {
            return None;
        }
        let at = epoch_start(epoch);
        let settled = &mut self.settled;
        self.pending.retain(|&(time, mark)| {
            let due = time <= at;
            if due {
                *settled = Some(settled.map_or(mark, |s| s.max(mark)));
            }
            !due
        });
        self.settled_at = self.settled_at.max(at);
        self.lateness.horizon(self.settled)
    }

    /// At the end of the input (both frontiers empty, nothing held): the horizon after every
    /// epoch, so that an operator releases the same state on every worker, whatever data
    /// its last epochs brought it.
    pub fn at_end(
        &mut self,
        input: &MutableAntichain<Time>,
        marks: &MutableAntichain<Time>,
        idle: bool,
    ) -> Option<Millis> {
        if !(idle && input.frontier().is_empty() && marks.frontier().is_empty()) {
            return None;
        }
        self.horizon(u64::MAX >> 32)
    }

    /// `W(epoch)`: the watermark the horizon of `epoch` was computed from.
    pub fn watermark(&self) -> Option<Millis> {
        self.lateness.watermark(self.settled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermark_and_horizon_follow_the_definitions() {
        let lateness = Lateness {
            max_out_of_orderness: 10,
            allowed: Some(100),
        };
        assert_eq!(lateness.watermark(None), None);
        assert_eq!(lateness.horizon(None), None);
        assert_eq!(lateness.watermark(Some(1_000)), Some(990));
        assert_eq!(lateness.horizon(Some(1_000)), Some(890));
        let unbounded = Lateness {
            max_out_of_orderness: 10,
            allowed: None,
        };
        assert_eq!(unbounded.watermark(Some(1_000)), Some(990));
        assert_eq!(unbounded.horizon(Some(1_000)), None);
    }

    #[test]
    fn horizons_fold_marks_of_earlier_epochs_only() {
        let mut horizons = Horizons::new(Lateness {
            max_out_of_orderness: 0,
            allowed: Some(0),
        });
        horizons.push(epoch_start(1), 50);
        horizons.push(epoch_start(1), 70);
        horizons.push(epoch_start(2), 60);
        horizons.push(epoch_start(3), 90);
        assert_eq!(horizons.horizon(0), None);
        assert_eq!(horizons.horizon(1), Some(70));
        assert_eq!(horizons.horizon(2), Some(70));
        assert_eq!(horizons.watermark(), Some(70));
        assert_eq!(horizons.horizon(3), Some(90));
    }
}
