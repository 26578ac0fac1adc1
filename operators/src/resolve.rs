//! Id resolution: the current record of each id, maintained incrementally.
//!
//! Input: an append-only collection of records (each with diff `+1`; a replay is another
//! record). Output: the collection of current records, one per id, including deletes: the
//! record with the greatest `(version, position)` among all records of its id so far.
//! Consumers skip deletes to aggregate; counting them gives the deleted ids.
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

use std::hash::BuildHasher;

use differential_dataflow::{AsCollection, Hashable, VecCollection};
use hashbrown::hash_table::{Entry, HashTable};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;

use crate::event::{Event, Time};
use crate::stash::Stash;

/// Resolves records to the current record per id.
pub trait ResolveIds<'scope> {
    /// The current record of each id (deletes included), updated as records arrive.
    fn resolve_ids(self) -> VecCollection<'scope, Time, Event>;
}

impl<'scope> ResolveIds<'scope> for VecCollection<'scope, Time, Event> {
    fn resolve_ids(self) -> VecCollection<'scope, Time, Event> {
        let exchange = Exchange::new(|update: &(Event, Time, isize)| update.0.id.hashed());
        self.inner
            .unary_frontier(exchange, "ResolveIds", |_capability, _info| {
                // The current record of each id, found by the hash of the id. Boxed, so the
                // table's slots (and its growth) cost a pointer each.
                let hasher = foldhash::fast::RandomState::default();
                let mut current: HashTable<Box<Event>> = HashTable::new();
                // Records waiting for their time to complete.
                let mut pending = Stash::default();
                move |(input, frontier), output| {
                    input.for_each(|capability, data| {
                        for (event, time, diff) in data.drain(..) {
                            if diff > 0 {
                                pending.push(&capability, time, event);
                            }
                        }
                    });
                    // Apply complete times in order: a time's records may supersede each other.
                    while let Some((time, capability, events)) = pending.pop_complete(frontier) {
                        let mut session = output.session(&capability);
                        for event in events {
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
                                    let old =
                                        std::mem::replace(&mut **old.get_mut(), event.clone());
                                    session.give((old, time, -1));
                                }
                                Entry::Vacant(slot) => {
                                    slot.insert(Box::new(event.clone()));
                                }
                            }
                            session.give((event, time, 1));
                        }
                    }
                }
            })
            .as_collection()
    }
}
