//! Late records: those that arrive after every window they fall in has closed.
//!
//! A record of epoch `e` is late when its expiry (the end of the last window it falls in) is
//! at or before the lateness horizon `H(e)` (see [`crate::incremental::watermark`]). Late
//! records go their own way, with the watermark they met, and change no window; the rest go
//! on. With unbounded lateness every record is on time. The decision depends on the record and
//! its epoch's horizon alone, so a time's records are judged as soon as the horizon is known,
//! without waiting for the time to complete; the operator keeps no state of its own.

use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Pipeline;

use crate::data::event::{Event, Time};
use crate::data::time::Millis;
use crate::data::window::WindowSpec;
use crate::incremental::durable::{Durable, Entries};
use crate::incremental::per_time::{At, PerTime, Ready, Spec, per_time};
use crate::incremental::watermark::{Bounds, Marks};

/// A record that arrived after every window it falls in had closed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LateRecord {
    /// The record, with its position.
    pub event: Event,
    /// The watermark when it arrived, `W(e)` of its epoch.
    pub watermark: Millis,
}

/// Splits records that arrive too late from the rest.
pub trait SplitLate<'scope> {
    /// `(on time, late)`: a record of epoch `e` is late when its expiry is at or before
    /// `H(e)`. With unbounded lateness every record is on time.
    fn split_late(
        self,
        marks: Marks<'scope>,
        bounds: &Bounds,
    ) -> (
        VecCollection<'scope, Time, Event>,
        VecCollection<'scope, Time, LateRecord>,
    );
}

impl<'scope> SplitLate<'scope> for VecCollection<'scope, Time, Event> {
    fn split_late(
        self,
        marks: Marks<'scope>,
        bounds: &Bounds,
    ) -> (
        VecCollection<'scope, Time, Event>,
        VecCollection<'scope, Time, LateRecord>,
    ) {
        let spec = Spec {
            name: "SplitLate",
            marks: Some((marks, bounds.lateness)),
            ready: Ready::HorizonKnown,
            gauges: Vec::new(),
            store: bounds.store.clone(),
        };
        let judged = per_time(self, Pipeline, spec, Judge(bounds.window));
        let on_time = judged.clone().flat_map(Result::ok);
        let late = judged.flat_map(Result::err);
        (on_time, late)
    }
}

/// Judges records by the expiry their windows give them.
struct Judge(WindowSpec);

/// A judge holds no state: a checkpoint keeps only its horizons.
impl Durable for Judge {
    fn save(&self, _out: &mut Entries<'_>) -> std::io::Result<()> {
        Ok(())
    }

    fn load(&mut self, _entry: &[u8]) -> Result<(), bincode::Error> {
        Ok(())
    }
}

impl PerTime for Judge {
    type Input = Event;
    type Item = (Event, isize);
    type Output = Result<Event, LateRecord>;

    fn take(&self, event: Event, diff: isize, held: &mut Vec<(Event, isize)>) {
        held.push((event, diff));
    }

    fn apply(
        &mut self,
        at: At,
        events: Vec<(Event, isize)>,
        emit: &mut impl FnMut(Self::Output, isize),
    ) {
        for (event, diff) in events {
            let late = at.horizon.is_some_and(|h| self.0.expiry(event.ts) <= h);
            let judged = match (late, at.watermark) {
                (true, Some(watermark)) => Err(LateRecord { event, watermark }),
                _ => Ok(event),
            };
            emit(judged, diff);
        }
    }
}
