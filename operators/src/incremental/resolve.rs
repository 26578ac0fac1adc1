//! Id resolution: the current record of each id, maintained incrementally.
//!
//! Input: an append-only collection of records (each with diff `+1`; a replay is another
//! record). Output: the collection of current records, one per id, including deletes: the
//! record with the greatest `(version, position)` among all records of its id so far
//! (docs/format.md, section 3). Consumers skip deletes to aggregate; counting them gives the
//! deleted ids.
//!
//! Per id the operator keeps only the current record, not its history ([`IdState`]): a new
//! record either loses (a replay or stale version: no output at all) or wins, and then the
//! operator emits the old current record's retraction and the new one's insertion at the new
//! record's time. Records are exchanged by a hash of their id, so a delta for one id touches
//! one worker and one entry. Within a time, each record that beats the id's current record
//! replaces it, so the net output of the time is the same in any arrival order.
//!
//! Input diffs other than positive ones are ignored: the input is a log of what producers
//! sent, and nothing un-sends a record; a correction is a new record.

use std::hash::BuildHasher;

use compact_str::CompactString;
use differential_dataflow::{Hashable, VecCollection};
use hashbrown::hash_table::{Entry, HashTable};
use timely::dataflow::channels::pact::Exchange;

use crate::data::event::{Event, Time};
use crate::data::time::Millis;
use crate::data::window::WindowSpec;
use crate::incremental::durable::{
    Base, Change, ChangedKeys, Durable, Entries, Store, decode, decode_taken,
};
use crate::incremental::expiry::ExpiryIndex;
use crate::incremental::per_time::{At, Gauge, PerTime, Ready, Spec, per_time};
use crate::incremental::watermark::{Bounds, Marks};

/// Resolves records to the current record per id.
pub trait ResolveIds<'scope> {
    /// The current record of each id (deletes included), updated as records arrive; nothing
    /// is ever forgotten.
    ///
    /// ```
    /// use amend_operators::{Decimal, Event, Position, ResolveIds};
    /// use differential_dataflow::input::Input;
    /// use timely::dataflow::operators::capture::{Capture, Extract};
    ///
    /// let record = |version, offset, value| Event {
    ///     id: "o-1".into(), key: "k".into(), value: Decimal(value), version,
    ///     position: Position { epoch: 0, file: 0, offset }, ..Event::default()
    /// };
    /// let captured = timely::example(move |scope| {
    ///     let (mut input, records) = scope.new_collection::<Event, isize>();
    ///     let current = records.resolve_ids();
    ///     input.insert(record(1, 0, 10));
    ///     input.advance_to(1);
    ///     input.insert(record(0, 20, 99)); // a stale version: changes nothing
    ///     input.insert(record(1, 40, 12)); // a correction at the same version: replaces
    ///     current.inner.capture()
    /// });
    /// let mut got: Vec<_> = captured.extract().into_iter().flat_map(|(_, d)| d).collect();
    /// got.sort_by_key(|(e, t, d)| (*t, *d, e.position));
    /// assert_eq!(got, vec![(record(1, 0, 10), 0, 1), (record(1, 0, 10), 1, -1), (record(1, 40, 12), 1, 1)]);
    /// ```
    fn resolve_ids(self) -> VecCollection<'scope, Time, Event>;

    /// As [`ResolveIds::resolve_ids`], and with a finite lateness, forgets at the start of
    /// each epoch `e` every id whose current record expires at or before `H(e)` (see
    /// [`crate::incremental::watermark`]); forgetting emits nothing.
    fn resolve_ids_within(
        self,
        marks: Marks<'scope>,
        bounds: &Bounds,
    ) -> VecCollection<'scope, Time, Event>;
}

impl<'scope> ResolveIds<'scope> for VecCollection<'scope, Time, Event> {
    fn resolve_ids(self) -> VecCollection<'scope, Time, Event> {
        resolve(self, None, Vec::new(), IdState::default(), Store::default())
    }

    fn resolve_ids_within(
        self,
        marks: Marks<'scope>,
        bounds: &Bounds,
    ) -> VecCollection<'scope, Time, Event> {
        let gauges = vec![Gauge::new(&bounds.state.ids, |s: &IdState| s.len() as i64)];
        let state = IdState::new(bounds.lateness.is_bounded().then_some(bounds.window));
        let store = bounds.store.clone();
        resolve(self, Some((marks, bounds.lateness)), gauges, state, store)
    }
}

fn resolve<'scope>(
    records: VecCollection<'scope, Time, Event>,
    marks: Option<(Marks<'scope>, crate::Lateness)>,
    gauges: Vec<Gauge<IdState>>,
    state: IdState,
    store: Store,
) -> VecCollection<'scope, Time, Event> {
    let exchange = Exchange::new(|update: &(Event, Time, isize)| update.0.id.hashed());
    let spec = Spec {
        name: "ResolveIds",
        marks,
        ready: Ready::Complete,
        gauges,
        store,
    };
    per_time(records, exchange, spec, state)
}

/// The current record of each id on one worker, and when each can be forgotten.
#[derive(Debug, Default)]
pub struct IdState {
    /// The current record of each id, found by the hash of the id. Boxed, so the table's
    /// slots (and its growth) cost a pointer each.
    current: HashTable<Box<Event>>,
    hasher: foldhash::fast::FixedState,
    /// With a finite lateness, the windows that give each record its expiry, and the ids by
    /// the expiry of the record that made them current.
    expiry: Option<(WindowSpec, ExpiryIndex)>,
    /// For checkpoints, once one is taken: the ids changed since.
    changed: ChangedKeys<CompactString>,
    /// In a resumed run, the checkpointed records not yet needed: an id missing from
    /// `current` is looked for here first.
    base: Option<Base>,
}

impl IdState {
    /// Empty state; with `window`, ids can be forgotten once their current record expires.
    pub fn new(window: Option<WindowSpec>) -> IdState {
        IdState {
            expiry: window.map(|window| (window, ExpiryIndex::default())),
            ..IdState::default()
        }
    }

    /// Ids held.
    pub fn len(&self) -> usize {
        self.current.len() + self.base.as_ref().map_or(0, Base::live)
    }

    /// Whether no id is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Moves the checkpointed record of `id` from the base into the table, unless the table
    /// has a record of `id` already (`hash` is the table's hash of `id`).
    #[inline]
    fn pull(&mut self, hash: u64, id: &CompactString) {
        let Some(base) = &mut self.base else {
            return;
        };
        if self.current.find(hash, |e| e.id == *id).is_some() {
            return;
        }
        let found = base.take(id.hashed(), |bytes| {
            let event: Event = decode_taken(bytes);
            (event.id == *id).then_some(event)
        });
        if let Some(event) = found {
            let hasher = &self.hasher;
            self.current
                .insert_unique(hash, Box::new(event), |e| hasher.hash_one(e.id.as_str()));
        }
    }

    /// Takes `event` as the id's record if it beats the current one: returns the record it
    /// replaces (`Some(None)` for a new id), or `None` if it loses and changes nothing.
    #[inline]
    pub fn offer(&mut self, event: &Event) -> Option<Option<Event>> {
        let hash = self.hasher.hash_one(event.id.as_str());
        self.pull(hash, &event.id);
        let hasher = &self.hasher;
        let replaced = match self.current.entry(
            hash,
            |e| e.id == event.id,
            |e| hasher.hash_one(e.id.as_str()),
        ) {
            Entry::Occupied(mut old) => {
                if old.get().precedence() >= event.precedence() {
                    return None;
                }
                Some(std::mem::replace(&mut **old.get_mut(), event.clone()))
            }
            Entry::Vacant(slot) => {
                slot.insert(Box::new(event.clone()));
                None
            }
        };
        if let Some((window, index)) = &mut self.expiry {
            index.note(window.expiry(event.ts), hash);
        }
        self.changed.note(|| event.id.clone());
        Some(replaced)
    }

    /// Makes `event` its id's record, whatever the record it replaces.
    fn put(&mut self, event: Event) {
        let hash = self.hasher.hash_one(event.id.as_str());
        self.pull(hash, &event.id);
        let hasher = &self.hasher;
        if let Some((window, index)) = &mut self.expiry {
            index.note(window.expiry(event.ts), hash);
        }
        match self.current.entry(
            hash,
            |e| e.id == event.id,
            |e| hasher.hash_one(e.id.as_str()),
        ) {
            Entry::Occupied(mut old) => **old.get_mut() = event,
            Entry::Vacant(slot) => {
                slot.insert(Box::new(event));
            }
        }
    }

    /// Forgets the record of `id`.
    fn remove(&mut self, id: &CompactString) {
        let hash = self.hasher.hash_one(id.as_str());
        self.pull(hash, id);
        if let Ok(found) = self.current.find_entry(hash, |e| e.id == id) {
            found.remove();
        }
    }

    /// Forgets every id whose current record expires at or before `horizon`.
    pub fn forget_expired(&mut self, horizon: Millis) {
        if let Some((window, index)) = &mut self.expiry {
            let window = *window;
            let changed = &mut self.changed;
            index.release(
                horizon,
                &mut self.current,
                |e| window.expiry(e.ts) <= horizon,
                |e| changed.note(|| e.id),
            );
        }
    }
}

impl Durable for IdState {
    fn save(&self, out: &mut Entries<'_>) -> std::io::Result<()> {
        self.current
            .iter()
            .try_for_each(|e| out.put(e.id.hashed(), &**e))?;
        out.put_untaken(self.base.as_ref())
    }

    fn load(&mut self, entry: &[u8]) -> Result<(), bincode::Error> {
        // A section with every entry holds each id once.
        let event: Event = decode(entry)?;
        let hasher = &self.hasher;
        let hash = hasher.hash_one(event.id.as_str());
        if let Some((window, index)) = &mut self.expiry {
            index.note(window.expiry(event.ts), hash);
        }
        self.current
            .insert_unique(hash, Box::new(event), |e| hasher.hash_one(e.id.as_str()));
        Ok(())
    }

    fn reserve(&mut self, entries: usize) {
        let hasher = &self.hasher;
        self.current
            .reserve(entries, |e| hasher.hash_one(e.id.as_str()));
    }

    fn base_slot(&mut self) -> Option<&mut Option<Base>> {
        // With a finite lateness, every record is indexed by when it expires, at once.
        self.expiry.is_none().then_some(&mut self.base)
    }

    fn track_changes(&mut self) {
        self.changed.track();
    }

    fn save_changes(&mut self, out: &mut Entries<'_>) -> std::io::Result<bool> {
        let (current, hasher) = (&self.current, &self.hasher);
        self.changed.save(out, |id| {
            current
                .find(hasher.hash_one(id.as_str()), |e| e.id == *id)
                .map(|event| &**event)
        })
    }

    fn load_change(&mut self, entry: &[u8]) -> Result<(), bincode::Error> {
        match decode::<Change<CompactString, Event>>(entry)? {
            Change::Put(event) => self.put(event),
            Change::Remove(id) => self.remove(&id),
        }
        Ok(())
    }
}

impl PerTime for IdState {
    type Input = Event;
    type Item = Event;
    type Output = Event;

    fn take(&self, event: Event, diff: isize, held: &mut Vec<Event>) {
        if diff > 0 {
            held.push(event);
        }
    }

    fn apply(&mut self, at: At, events: Vec<Event>, emit: &mut impl FnMut(Event, isize)) {
        if let Some(horizon) = at.horizon {
            self.forget_expired(horizon);
        }
        // Room for every id being new, so the table grows at most once a time (growing
        // re-hashes every id held, each behind a pointer).
        let hasher = &self.hasher;
        self.current
            .reserve(events.len(), |e| hasher.hash_one(e.id.as_str()));
        for event in events {
            let Some(replaced) = self.offer(&event) else {
                continue;
            };
            if let Some(old) = replaced {
                emit(old, -1);
            }
            emit(event, 1);
        }
    }

    fn release(&mut self, horizon: Millis) {
        self.forget_expired(horizon);
    }
}
