//! The dataflow a run computes: input sessions in, one captured stream of updates out.
//!
//! ```text
//!  sightings ── DetectGaps (gaps) ──────────────────────────────────────────────────────┐
//!  records ─┬─ IdsOnlyInAudit (audit logs) ──────────────────────────────────────────────┤
//!           └─ SplitLate (bounded lateness) ─┬─ late records ────────────────────────────┤
//!                                            └─ ResolveIds ─┬─ CountIds ─────────────────┤
//!                                                           └─ AssignWindows, Aggregate  │
//!                                                              (or Sessions) ─ rows ─┬───┤
//!                                                                 Estimates (--fill) ─┴───┤
//!  dead letters ─────────────────────────────────────────────────────────────────────────┴─▶ capture ─▶ sink
//! ```
//!
//! The marks (each worker's greatest event time read) are broadcast to every worker and reach
//! the operators that know event time. Every output is an [`Update`] in one collection, captured
//! into the sink's channel after a probe that holds readers back.

use std::collections::BTreeMap;
use std::sync::mpsc;

use amend_operators::event::Sighting;
use amend_operators::incremental::durable::Store;
use amend_operators::recovery::estimates::{EstimateRow, Estimates, lattice_step};
use amend_operators::recovery::gaps::GapGauges;
use amend_operators::time::Millis;
use amend_operators::{
    AggRow, Aggregate, AssignWindows, Bounds, DeadLetter, DetectGaps, Event, GapOptions, GapRow,
    IdsOnlyInAudit, LateRecord, Lateness, Marks, Op, ResolveIds, Sessions, SplitLate, StateGauges,
    Time, WindowSpec,
};
use differential_dataflow::input::{Input, InputSession};
use differential_dataflow::{AsCollection, VecCollection};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::capture::{Capture, Event as Captured};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::probe::Handle as ProbeHandle;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::{Input as TimelyInput, Probe};
use timely::dataflow::{InputHandle, Scope};

use crate::engine::Computations;

/// What the dataflow hands to the sink.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Update {
    /// A row of the aggregate table.
    Row(AggRow),
    /// A bad record.
    Dead(DeadLetter),
    /// An id whose current record is an upsert or a delete.
    Id(Op),
    /// A record that came after its windows closed.
    Late(LateRecord),
    /// An estimated row of an empty window (`--fill`).
    Estimate(EstimateRow),
    /// A change of the gap tables.
    Gap(GapRow),
    /// An id all of whose records came from audit logs (built only when audit logs are read).
    OnlyInAudit,
}

/// What the sink receives from each worker's capture.
pub type Captures = Captured<Time, Vec<(Update, Time, isize)>>;

/// The input handle of the marks stream.
pub type MarksInput =
    InputHandle<Time, timely::container::CapacityContainerBuilder<Vec<(Time, Millis)>>>;

/// The input sessions of the dataflow.
pub struct Inputs {
    /// Decoded records.
    pub events: InputSession<Time, Event, isize>,
    /// Bad records.
    pub dead: InputSession<Time, DeadLetter, isize>,
    /// The records' sightings, with gap detection.
    pub sightings: Option<InputSession<Time, Sighting, isize>>,
}

impl Inputs {
    /// Moves every session to `time` and sends what they hold.
    pub fn advance_to(&mut self, time: Time) {
        self.events.advance_to(time);
        self.dead.advance_to(time);
        self.events.flush();
        self.dead.flush();
        if let Some(sightings) = &mut self.sightings {
            sightings.advance_to(time);
            sightings.flush();
        }
    }
}

/// Where the operators of one process count what they hold.
#[derive(Clone, Debug, Default)]
pub struct Gauges {
    /// Ids and groups (or session records).
    pub state: StateGauges,
    /// Gap ranges and sequence numbers.
    pub gaps: GapGauges,
}

/// The dataflow of one run, as every worker builds it.
#[derive(Clone, Debug)]
pub struct Dataflow {
    /// What it computes.
    pub computations: Computations,
    /// Event time.
    pub lateness: Lateness,
    /// Whether audit logs are read: then the ids only they had are counted.
    pub audit_logs: bool,
    /// Where its operators count their state.
    pub gauges: Gauges,
}

impl Dataflow {
    /// Builds the dataflow in `scope`, with its marks from `marks_in`, a probe for backpressure
    /// and its output captured into `sink`; returns its input sessions.
    pub fn build(
        &self,
        scope: Scope<'_, Time>,
        probe: &ProbeHandle<Time>,
        sink: mpsc::Sender<Captures>,
        (marks_in, store): (&mut MarksInput, &Store),
    ) -> Inputs {
        let marks = scope.input_from(marks_in).broadcast();
        let (inputs, output) = self.updates(scope, marks, store);
        output.inner.probe_with(probe).capture_into(sink);
        inputs
    }

    /// The input sessions, and every update for the sink in one collection.
    fn updates<'scope>(
        &self,
        scope: Scope<'scope, Time>,
        marks: Marks<'scope>,
        store: &Store,
    ) -> (Inputs, VecCollection<'scope, Time, Update>) {
        let (events_in, events) = scope.new_collection::<Event, isize>();
        let (dead_in, dead) = scope.new_collection::<DeadLetter, isize>();
        let mut inputs = Inputs {
            events: events_in,
            dead: dead_in,
            sightings: None,
        };
        let mut output = dead.map(Update::Dead);
        // Gap detection reads the sighting of every accepted record, late ones too.
        if let Some(duplicates) = self.computations.gaps {
            let (sightings_in, sightings) = scope.new_collection::<Sighting, isize>();
            inputs.sightings = Some(sightings_in);
            let options = GapOptions {
                duplicates,
                gauges: self.gauges.gaps.clone(),
                store: store.clone(),
            };
            output = output.concat(sightings.detect_gaps(&options).map(Update::Gap));
        }
        let Some(spec) = self.computations.table else {
            return (inputs, output);
        };
        let bounds = Bounds {
            window: spec.window,
            lateness: self.lateness,
            state: self.gauges.state.clone(),
            store: store.clone(),
        };
        // Every accepted record, late ones too, says where its id was seen.
        if self.audit_logs {
            let only_in_audit = events.clone().ids_only_in_audit(store);
            output = output.concat(only_in_audit.map(|()| Update::OnlyInAudit));
        }
        let events = if bounds.lateness.is_bounded() {
            let (on_time, late) = events.split_late(marks.clone(), &bounds);
            output = output.concat(late.map(Update::Late));
            on_time
        } else {
            events
        };
        let current = events.resolve_ids_within(marks.clone(), &bounds);
        output = output.concat(count_ids_locally(current.clone()).map(Update::Id));
        let rows = match bounds.window {
            WindowSpec::Session { gap } => current.sessions_within(gap, marks, &bounds),
            window => current
                .assign_windows(window)
                .aggregate_within(marks, &bounds),
        };
        if let (Some((fill, max_windows)), Some(step)) = (spec.fill, lattice_step(spec.window)) {
            let estimates = rows.clone().estimates(fill, step, max_windows, store);
            output = output.concat(estimates.map(Update::Estimate));
        }
        (inputs, output.concat(rows.map(Update::Row)))
    }
}

/// The ops of current records, pre-counted on each worker so the sink sees a few updates per
/// batch rather than one per record.
fn count_ids_locally<'scope>(
    current: VecCollection<'scope, Time, Event>,
) -> VecCollection<'scope, Time, Op> {
    current
        .inner
        .unary(Pipeline, "CountIds", |_capability, _info| {
            move |input, output| {
                input.for_each(|capability, data| {
                    let mut counts: BTreeMap<(Time, Op), isize> = BTreeMap::new();
                    for (event, time, diff) in data.drain(..) {
                        *counts.entry((time, event.op)).or_default() += diff;
                    }
                    let mut session = output.session(&capability);
                    for ((time, op), diff) in counts {
                        if diff != 0 {
                            session.give((op, time, diff));
                        }
                    }
                });
            }
        })
        .as_collection()
}
