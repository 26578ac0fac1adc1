//! Id resolution: the current record of each id, maintained incrementally.
//!
//! Input: an append-only collection of records (each with diff `+1`; a replay is another
//! record). Output: the collection of current records, one per id, including deletes: the
//! record with the greatest `(version, position)` among all records of its id so far.
//! Consumers skip deletes to aggregate; counting them gives the deleted ids. The output
//! records carry no `source` and `seq`: only gap detection reads them, before resolution, so
//! the operator neither keeps nor copies them.
//!
//! Per id the operator keeps only the current record, not its history: a new record either
//! loses (a replay or stale version: no output at all) or wins, and then the operator emits
//! the old current record's retraction and the new one's insertion at the new record's time.
//! Records are exchanged by a hash of their id, so a delta for one id touches one worker and
//! one entry. Within a time, each record that beats the id's current record replaces it, so
//! the net output of the time is the same in any arrival order.
//!
//! Input diffs other than positive ones are ignored: the input is a log of what producers
//! sent, and nothing un-sends a record; a correction is a new record.

use std::collections::BTreeMap;
use std::hash::BuildHasher;

use compact_str::CompactString;
use differential_dataflow::{AsCollection, Hashable, VecCollection};
use hashbrown::hash_table::{Entry, HashTable};
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::generic::operator::empty;

use crate::decimal::Decimal;
use crate::event::{Event, Op, Position, Time, epoch_of};
use crate::stash::Stash;
use crate::time::Millis;
use crate::watermark::{Bounds, Horizons, Marks, gauge_add};

/// Resolves records to the current record per id.
pub trait ResolveIds<'scope> {
    /// The current record of each id (deletes included), updated as records arrive; nothing
    /// is ever forgotten.
    fn resolve_ids(self) -> VecCollection<'scope, Time, Event>;

    /// As [`ResolveIds::resolve_ids`], and with a finite lateness, forgets at the start of
    /// each epoch `e` every id whose current record expires at or before `H(e)` (see
    /// [`crate::watermark`]); forgetting emits nothing.
    fn resolve_ids_within(
        self,
        marks: Marks<'scope>,
        bounds: &Bounds,
    ) -> VecCollection<'scope, Time, Event>;
}

impl<'scope> ResolveIds<'scope> for VecCollection<'scope, Time, Event> {
    fn resolve_ids(self) -> VecCollection<'scope, Time, Event> {
        let marks = empty(self.inner.scope());
        let bounds = Bounds::unbounded(crate::WindowSpec::Tumbling { size: 1 });
        self.resolve_ids_within(marks, &bounds)
    }

    fn resolve_ids_within(
        self,
        marks: Marks<'scope>,
        bounds: &Bounds,
    ) -> VecCollection<'scope, Time, Event> {
        let exchange = Exchange::new(|update: &(Event, Time, isize)| update.0.id.hashed());
        let (window, lateness) = (bounds.window, bounds.lateness);
        let gauge = bounds.state.ids.clone();
        self.inner
            .binary_frontier(marks, exchange, Pipeline, "ResolveIds", move |_, _| {
                // The current record of each id, found by the hash of the id. Boxed, so the
                // table's slots (and its growth) cost a pointer each.
                let hasher = foldhash::fast::RandomState::default();
                let mut current: HashTable<Box<Current>> = HashTable::new();
                // With a finite lateness: the hashes of ids by the expiry of the record that
                // made them current. An entry is stale if the id has a later record since.
                let mut expiring: BTreeMap<Millis, Vec<u64>> = BTreeMap::new();
                let mut horizons = Horizons::new(lateness);
                // Records waiting for their time to complete.
                let mut pending = Stash::default();
                move |(input, frontier), (marks, marks_frontier), output| {
                    marks.for_each(|_, data| horizons.extend(data.drain(..)));
                    input.for_each(|capability, data| {
                        for (event, time, diff) in data.drain(..) {
                            if diff > 0 {
                                pending.push(&capability, time, event);
                            }
                        }
                    });
                    // Apply complete times in order: a time's records may supersede each other.
                    while let Some((time, capability, events)) =
                        pending.pop_ready(|time| horizons.complete(time, frontier, marks_frontier))
                    {
                        let mut held = current.len() as i64;
                        if let Some(horizon) = horizons.horizon(epoch_of(time)) {
                            forget_expired(&mut current, &mut expiring, horizon, |e| {
                                window.expiry(e.ts)
                            });
                        }
                        let mut session = output.session(&capability);
                        for mut event in events {
                            // Only gap detection, upstream, reads the producer's fields.
                            event.source = None;
                            event.seq = None;
                            let hash = hasher.hash_one(event.id.as_str());
                            match current.entry(
                                hash,
                                |e| e.id == event.id,
                                |e| hasher.hash_one(e.id.as_str()),
                            ) {
                                Entry::Occupied(mut old) => {
                                    if old.get().precedence() >= event.precedence() {
                                        continue;
                                    }
                                    let old = std::mem::replace(
                                        &mut **old.get_mut(),
                                        Current::of(&event),
                                    );
                                    session.give((old.into_event(), time, -1));
                                }
                                Entry::Vacant(slot) => {
                                    slot.insert(Box::new(Current::of(&event)));
                                }
                            }
                            if lateness.is_bounded() {
                                expiring
                                    .entry(window.expiry(event.ts))
                                    .or_default()
                                    .push(hash);
                            }
                            session.give((event, time, 1));
                        }
                        held = current.len() as i64 - held;
                        gauge_add(&gauge, held);
                    }
                    let idle = pending.is_empty();
                    if let Some(horizon) = horizons.at_end(frontier, marks_frontier, idle) {
                        let held = current.len() as i64;
                        forget_expired(&mut current, &mut expiring, horizon, |e| {
                            window.expiry(e.ts)
                        });
                        gauge_add(&gauge, current.len() as i64 - held);
                    }
                }
            })
            .as_collection()
    }
}

/// What the operator keeps of an id's current record: all of it but the producer's fields.
#[derive(Debug)]
struct Current {
    id: CompactString,
    key: CompactString,
    ts: Millis,
    value: Decimal,
    op: Op,
    version: u64,
    position: Position,
}

impl Current {
    fn of(event: &Event) -> Current {
        Current {
            id: event.id.clone(),
            key: event.key.clone(),
            ts: event.ts,
            value: event.value,
            op: event.op,
            version: event.version,
            position: event.position,
        }
    }

    fn precedence(&self) -> (u64, Position) {
        (self.version, self.position)
    }

    /// The record as it was emitted: without `source` and `seq`.
    fn into_event(self) -> Event {
        Event {
            id: self.id,
            key: self.key,
            ts: self.ts,
            value: self.value,
            op: self.op,
            version: self.version,
            position: self.position,
            source: None,
            seq: None,
        }
    }
}

/// Removes every id whose current record expires at or before `horizon`.
fn forget_expired(
    current: &mut HashTable<Box<Current>>,
    expiring: &mut BTreeMap<Millis, Vec<u64>>,
    horizon: Millis,
    expiry: impl Fn(&Current) -> Millis,
) {
    while let Some(entry) = expiring.first_entry() {
        if *entry.key() > horizon {
            break;
        }
        for hash in entry.remove() {
            while let Ok(found) = current.find_entry(hash, |e| expiry(e) <= horizon) {
                found.remove();
            }
        }
    }
}
