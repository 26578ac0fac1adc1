//! The scaffold of every stateful operator: hold updates until their time is complete, then
//! change plain state one time at a time, in time order.
//!
//! `ResolveIds`, `Aggregate`, `Sessions`, `SplitLate`, `DetectGaps`, `Estimates` and
//! `IdsOnlyInAudit` differ only in their state and in what a time's updates do to it. That
//! part is a [`PerTime`]: a plain struct with no timely types in it, fed one complete time's
//! updates together with the lateness horizon of the time's epoch (see
//! [`crate::incremental::watermark`]). This module does the rest, once for all of them:
//!
//! - holds each update, with a capability for its time, until the time may be acted on:
//!   complete at the input and its epoch's horizon known ([`Ready::Complete`]), or only its
//!   horizon known ([`Ready::HorizonKnown`], for an operator whose output for a record does not
//!   depend on other records of its time);
//! - folds the marks into horizons, and at the end of the input releases what the horizon
//!   after every epoch closes, so every worker releases the same state whatever its last
//!   epochs brought it;
//! - reports what the state holds to the gauges after each change.
//!
//! Without marks (an operator that knows no event time) every horizon is unknown: `apply`
//! gets `None`, and nothing is released.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use differential_dataflow::{AsCollection, VecCollection};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{ParallelizationContract, Pipeline};
use timely::dataflow::operators::generic::{Operator, OutputBuilderSession};
use timely::dataflow::operators::{Capability, InputCapability};
use timely::progress::frontier::MutableAntichain;

use crate::data::event::{Time, epoch_of};
use crate::data::time::Millis;
use crate::incremental::durable::{Durable, Saved, Store};
use crate::incremental::watermark::{Horizons, Lateness, Marks};

/// An operator's state and what one complete time's updates do to it.
pub(crate) trait PerTime: Durable + 'static {
    /// The data of the operator's input collection.
    type Input: Clone + 'static;
    /// What is held of an update until its time may be acted on.
    type Item: 'static;
    /// The data of the operator's output collection.
    type Output: differential_dataflow::Data;

    /// Pushes what to hold of one input update (if anything) onto `held`, the items of its
    /// time.
    fn take(&self, input: Self::Input, diff: isize, held: &mut Vec<Self::Item>);

    /// Applies the held items of one time, in the order they arrived, and emits the output
    /// changes at that time.
    fn apply(&mut self, at: At, items: Vec<Self::Item>, emit: &mut impl FnMut(Self::Output, isize));

    /// Releases what the horizon `horizon` closes, at the end of the input.
    fn release(&mut self, horizon: Millis) {
        let _ = horizon;
    }
}

/// What event time says of the epoch of the time a [`PerTime::apply`] acts on.
#[derive(Copy, Clone, Debug)]
pub(crate) struct At {
    /// `H(e)` of its epoch: state that only records expiring at or before it could change may
    /// go, and such records are late. `None` while nothing is closed, and without marks.
    pub horizon: Option<Millis>,
    /// `W(e)`, the watermark the horizon was computed from.
    pub watermark: Option<Millis>,
}

/// When a held time may be acted on.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Ready {
    /// Once the time is complete at the input and its epoch's horizon is known.
    Complete,
    /// Once its epoch's horizon is known, before the time is complete.
    HorizonKnown,
}

/// A gauge an operator reports a measure of its state to; the gauge is shared by every worker,
/// so each reports the change of its own measure.
pub(crate) struct Gauge<S> {
    gauge: Arc<AtomicI64>,
    measure: fn(&S) -> i64,
    reported: i64,
}

impl<S> Gauge<S> {
    /// Reports `measure` of the state to `gauge`.
    pub(crate) fn new(gauge: &Arc<AtomicI64>, measure: fn(&S) -> i64) -> Self {
        Gauge {
            gauge: Arc::clone(gauge),
            measure,
            reported: 0,
        }
    }

    fn report(&mut self, state: &S) {
        let now = (self.measure)(state);
        if now != self.reported {
            self.gauge.fetch_add(now - self.reported, Ordering::Relaxed);
            self.reported = now;
        }
    }
}

/// How one operator is built around its state.
pub(crate) struct Spec<'scope, S> {
    /// The operator's name, as `--explain` shows it.
    pub name: &'static str,
    /// The marks and the lateness they are read with; `None` for an operator that knows no
    /// event time.
    pub marks: Option<(Marks<'scope>, Lateness)>,
    /// When a held time may be acted on.
    pub ready: Ready,
    /// Where the operator reports what it holds.
    pub gauges: Vec<Gauge<S>>,
    /// Where checkpoints find its state, and a resumed run's state comes from.
    pub store: Store,
}

/// Builds the operator `spec` describes around `state`, its input distributed by `pact`.
pub(crate) fn per_time<'scope, S, P>(
    input: VecCollection<'scope, Time, S::Input>,
    pact: P,
    spec: Spec<'scope, S>,
    state: S,
) -> VecCollection<'scope, Time, S::Output>
where
    S: PerTime,
    P: ParallelizationContract<Time, Vec<(S::Input, Time, isize)>>,
{
    let Spec {
        name,
        marks,
        ready,
        gauges,
        store,
    } = spec;
    let lateness = marks.as_ref().map(|(_, l)| *l).unwrap_or_default();
    let driver = Rc::new(RefCell::new(Driver {
        state,
        horizons: Horizons::new(lateness),
        pending: BTreeMap::new(),
        ready,
        gauges,
    }));
    // A resumed run loads its state, and the marks the checkpointed epochs had sent.
    if let Some((time, mark)) = store.register(name, &driver) {
        driver.borrow_mut().horizons.push(time, mark);
    }
    driver.borrow_mut().report();
    let stream = match marks {
        None => input.inner.unary_frontier(pact, name, move |_, _| {
            // No marks: their frontier is empty from the start.
            let no_marks = MutableAntichain::new();
            move |(input, frontier), output| {
                let mut driver = driver.borrow_mut();
                input.for_each(|capability, data| driver.hold(capability, data));
                driver.step(frontier, &no_marks, output);
            }
        }),
        Some((marks, _)) => {
            input
                .inner
                .binary_frontier(marks, pact, Pipeline, name, move |_, _| {
                    move |(input, frontier), (marks, marks_frontier), output| {
                        let mut driver = driver.borrow_mut();
                        marks.for_each(|_, data| driver.horizons.extend(data.drain(..)));
                        input.for_each(|capability, data| driver.hold(capability, data));
                        driver.step(frontier, marks_frontier, output);
                    }
                })
        }
    };
    stream.as_collection()
}

impl<S: PerTime> Saved for Driver<S> {
    fn durable(&mut self) -> &mut dyn Durable {
        &mut self.state
    }
}

/// The state of one operator on one worker, with its held updates and horizons.
struct Driver<S: PerTime> {
    state: S,
    horizons: Horizons,
    /// Items by time, each time with a capability to emit at it.
    pending: BTreeMap<Time, (Capability<Time>, Vec<S::Item>)>,
    ready: Ready,
    gauges: Vec<Gauge<S>>,
}

type Output<'a, S> = OutputBuilderSession<
    'a,
    Time,
    CapacityContainerBuilder<Vec<(<S as PerTime>::Output, Time, isize)>>,
>;

impl<S: PerTime> Driver<S> {
    /// Holds what the state takes of `data`, each update at its own time.
    fn hold(&mut self, capability: InputCapability<Time>, data: &mut Vec<(S::Input, Time, isize)>) {
        for (input, time, diff) in data.drain(..) {
            let (_, held) = self
                .pending
                .entry(time)
                .or_insert_with(|| (capability.delayed(&time, 0), Vec::new()));
            self.state.take(input, diff, held);
        }
    }

    /// Applies every held time that may be acted on, in time order; at the end of the input,
    /// releases what the last horizon closes.
    fn step(
        &mut self,
        frontier: &MutableAntichain<Time>,
        marks: &MutableAntichain<Time>,
        output: &mut Output<'_, S>,
    ) {
        while let Some(entry) = self.pending.first_entry() {
            let time = *entry.key();
            let go = match self.ready {
                Ready::Complete => self.horizons.complete(time, frontier, marks),
                Ready::HorizonKnown => self.horizons.ready(epoch_of(time), marks),
            };
            if !go {
                break;
            }
            let (capability, items) = entry.remove();
            let horizon = self.horizons.horizon(epoch_of(time));
            let at = At {
                horizon,
                watermark: self.horizons.watermark(),
            };
            let mut session = output.session(&capability);
            self.state.apply(at, items, &mut |data, diff| {
                session.give((data, time, diff))
            });
            self.report();
        }
        let idle = self.pending.is_empty();
        if let Some(horizon) = self.horizons.at_end(frontier, marks, idle) {
            self.state.release(horizon);
            self.report();
        }
    }

    fn report(&mut self) {
        for gauge in &mut self.gauges {
            gauge.report(&self.state);
        }
    }
}
