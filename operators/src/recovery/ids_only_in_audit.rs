//! Recovered ids: the ids that only an audit log had, maintained incrementally.
//!
//! Input: the collection of accepted records (diff `+1` each), from the main input and from
//! audit logs ([`Position::is_audit`](crate::Position::is_audit)). Output: one `()` per id
//! all of whose records so far came from audit logs, the events the main input missed. An id
//! enters the output with its first audit record and leaves it when a main-input record of
//! it arrives; a later audit record of an id the main input has changes nothing.
//!
//! Records are exchanged by a hash of their id, so the answer is the same for any worker
//! count. The operator keeps every id it has seen, with whether the main input had it
//! ([`OriginState`]): pipelines build it only when audit logs are read.

use std::hash::BuildHasher;

use compact_str::CompactString;
use differential_dataflow::{Hashable, VecCollection};
use hashbrown::hash_table::{Entry, HashTable};
use timely::dataflow::channels::pact::Exchange;

use crate::data::event::{Event, Time};
use crate::incremental::durable::{Durable, Entries, Store, decode};
use crate::incremental::per_time::{At, PerTime, Ready, Spec, per_time};

/// Counts the ids only audit logs had.
pub trait IdsOnlyInAudit<'scope> {
    /// One `()` per id whose every record came from an audit log.
    fn ids_only_in_audit(self, store: &Store) -> VecCollection<'scope, Time, ()>;
}

impl<'scope> IdsOnlyInAudit<'scope> for VecCollection<'scope, Time, Event> {
    fn ids_only_in_audit(self, store: &Store) -> VecCollection<'scope, Time, ()> {
        let exchange = Exchange::new(|update: &(Event, Time, isize)| update.0.id.hashed());
        let spec = Spec {
            name: "IdsOnlyInAudit",
            marks: None,
            ready: Ready::Complete,
            gauges: Vec::new(),
            store: store.clone(),
        };
        per_time(self, exchange, spec, OriginState::default())
    }
}

/// Every id seen on one worker, with whether a main-input record of it was seen.
#[derive(Debug, Default)]
pub struct OriginState {
    /// (id, whether the main input had it).
    ids: HashTable<(CompactString, bool)>,
    hasher: foldhash::fast::FixedState,
}

impl OriginState {
    /// Notes a record of `id`, from an audit log if `audit`; returns the change of the count of
    /// ids only audit logs had (-1, 0 or 1).
    pub fn see(&mut self, id: CompactString, audit: bool) -> isize {
        let hasher = &self.hasher;
        let hash = hasher.hash_one(id.as_str());
        match self.ids.entry(
            hash,
            |(seen, _)| *seen == id,
            |(seen, _)| hasher.hash_one(seen.as_str()),
        ) {
            Entry::Occupied(mut entry) => {
                let main = &mut entry.get_mut().1;
                let only_audit_before = !*main;
                *main |= !audit;
                (!*main) as isize - only_audit_before as isize
            }
            Entry::Vacant(slot) => {
                slot.insert((id, !audit));
                audit as isize
            }
        }
    }

    /// Ids seen.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether no id was seen.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

impl Durable for OriginState {
    fn save(&self, out: &mut Entries<'_>) -> std::io::Result<()> {
        self.ids
            .iter()
            .try_for_each(|id| out.put(id.0.hashed(), id))
    }

    fn load(&mut self, entry: &[u8]) -> Result<(), bincode::Error> {
        let (id, main): (CompactString, bool) = decode(entry)?;
        let hasher = &self.hasher;
        let hash = hasher.hash_one(id.as_str());
        self.ids
            .insert_unique(hash, (id, main), |(seen, _)| hasher.hash_one(seen.as_str()));
        Ok(())
    }

    fn reserve(&mut self, entries: usize) {
        let hasher = &self.hasher;
        self.ids
            .reserve(entries, |(seen, _)| hasher.hash_one(seen.as_str()));
    }
}

impl PerTime for OriginState {
    type Input = Event;
    type Item = (CompactString, bool);
    type Output = ();

    fn take(&self, event: Event, diff: isize, held: &mut Vec<Self::Item>) {
        if diff > 0 {
            held.push((event.id, event.position.is_audit()));
        }
    }

    fn apply(&mut self, _at: At, records: Vec<Self::Item>, emit: &mut impl FnMut((), isize)) {
        let change: isize = records
            .into_iter()
            .map(|(id, audit)| self.see(id, audit))
            .sum();
        if change != 0 {
            emit((), change);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::decimal::Decimal;
    use crate::data::event::{AUDIT_FILE_BASE, Op, Position};
    use differential_dataflow::input::Input;
    use timely::dataflow::operators::capture::{Capture, Extract};

    fn event(id: &str, file: u32, epoch: u64) -> Event {
        Event {
            id: id.into(),
            key: "k".into(),
            ts: 0,
            value: Decimal(1),
            op: Op::Upsert,
            version: 0,
            position: Position {
                epoch,
                file,
                offset: 0,
            },
        }
    }

    #[test]
    fn counts_ids_whose_records_all_came_from_audit_logs() {
        let audit = AUDIT_FILE_BASE;
        // (time, record): `a` is in both, `b` only in the log (twice), `c` only in the input,
        // `d` first in the log, then in a late main-input file.
        let records = [
            (0, event("a", 0, 0)),
            (0, event("c", 0, 0)),
            (1, event("a", audit, 1)),
            (1, event("b", audit, 1)),
            (1, event("d", audit, 1)),
            (2, event("b", audit + 1, 2)),
            (3, event("d", 1, 3)),
        ];
        let captured = timely::example(move |scope| {
            let (mut input, events) = scope.new_collection::<Event, isize>();
            let output = events
                .ids_only_in_audit(&Store::default())
                .consolidate()
                .inner
                .capture();
            for (time, record) in records {
                input.advance_to(time);
                input.insert(record);
            }
            output
        });
        let mut counts = std::collections::BTreeMap::new();
        for (_, updates) in captured.extract() {
            for ((), time, diff) in updates {
                *counts.entry(time).or_insert(0) += diff;
            }
        }
        // b and d appear at time 1; d leaves at time 3.
        assert_eq!(counts, [(1, 2), (3, -1)].into_iter().collect());
    }
}
