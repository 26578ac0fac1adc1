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

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};

use differential_dataflow::{AsCollection, Hashable, VecCollection};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;

use crate::event::{Event, Time};
use crate::stash::Stash;

/// Resolves records to the current record per id.
pub trait ResolveIds<'scope> {
    /// The current record of each id (deletes included), updated as records arrive.
    fn resolve_ids(self) -> VecCollection<'scope, Time, Event>;
}

/// An event stored by its id alone, so a set of them is a map from id to current record that
/// stores each id once. Boxed, so the table's slots (and its growth) cost a pointer each.
#[derive(Debug)]
struct ById(Box<Event>);

impl PartialEq for ById {
    fn eq(&self, other: &Self) -> bool {
        self.0.id == other.0.id
    }
}
impl Eq for ById {}
impl Hash for ById {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.id.as_str().hash(state)
    }
}
impl Borrow<str> for ById {
    fn borrow(&self) -> &str {
        &self.0.id
    }
}

impl<'scope> ResolveIds<'scope> for VecCollection<'scope, Time, Event> {
    fn resolve_ids(self) -> VecCollection<'scope, Time, Event> {
        let exchange = Exchange::new(|update: &(Event, Time, isize)| update.0.id.hashed());
        self.inner
            .unary_frontier(exchange, "ResolveIds", |_capability, _info| {
                let mut current: HashSet<ById, foldhash::fast::RandomState> = HashSet::default();
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
                            match current.get(event.id.as_str()) {
                                Some(old) if old.0.precedence() >= event.precedence() => {}
                                _ => {
                                    if let Some(old) =
                                        current.replace(ById(Box::new(event.clone())))
                                    {
                                        session.give((*old.0, time, -1));
                                    }
                                    session.give((event, time, 1));
                                }
                            }
                        }
                    }
                }
            })
            .as_collection()
    }
}
