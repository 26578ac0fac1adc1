//! Aggregates per (window, key): count, sum, min and max, exact and order-independent.
//!
//! Input: `((window, key), value)` with diffs (a retracted record retracts its value).
//! Output: one [`Agg`] row per (window, key) that has values, updated as values come and go: when
//! a time's changes to a group are applied, the group's old row is retracted and its new row
//! inserted at that time; a group whose last value is retracted has no row, and changes that
//! cancel out emit nothing. All arithmetic is on fixed-point integers, so a row is
//! bit-identical for any worker count, batching and arrival order.
//!
//! Updates are exchanged by a hash of (window, key). Each group ([`Group`]) keeps its count,
//! its sum and its distinct values with multiplicities in a sorted vector, so a change costs a
//! binary search in its own group — not a rescan of the group, and nothing for other groups.
//! Only the group's current row is kept, never its history ([`GroupState`]).

use std::hash::BuildHasher;

use compact_str::CompactString;
use differential_dataflow::{Hashable, VecCollection};
use hashbrown::hash_table::HashTable;
use timely::dataflow::channels::pact::Exchange;

use crate::data::agg::{Agg, AggRow, Group};
use crate::data::decimal::Decimal;
use crate::data::event::Time;
use crate::data::time::Millis;
use crate::data::window::Window;
use crate::incremental::assign_windows::WindowedValue;
use crate::incremental::durable::{
    Base, Change, ChangedKeys, Durable, Entries, Store, decode, decode_taken,
};
use crate::incremental::expiry::ExpiryIndex;
use crate::incremental::per_time::{At, Gauge, PerTime, Ready, Spec, per_time};
use crate::incremental::watermark::{Bounds, Marks};

/// Computes the aggregate table.
pub trait Aggregate<'scope> {
    /// One [`Agg`] per (window, key) with values, maintained incrementally.
    ///
    /// ```
    /// use amend_operators::{Agg, Aggregate, Decimal, Window};
    /// use differential_dataflow::input::Input;
    /// use timely::dataflow::operators::capture::{Capture, Extract};
    ///
    /// let group = (Window { start: 0, end: 60_000 }, "k".into());
    /// let g = group.clone();
    /// let captured = timely::example(move |scope| {
    ///     let (mut input, values) = scope.new_collection();
    ///     let rows = values.aggregate();
    ///     input.insert((g.clone(), Decimal(5)));
    ///     input.insert((g.clone(), Decimal(9)));
    ///     input.advance_to(1);
    ///     input.remove((g.clone(), Decimal(9))); // a retraction updates max and sum
    ///     rows.inner.capture()
    /// });
    /// let mut got: Vec<_> = captured.extract().into_iter().flat_map(|(_, d)| d).collect();
    /// got.sort_by_key(|(_, t, d)| (*t, *d));
    /// let row = |count, sum, max| (group.clone(), Agg { count, sum: Some(Decimal(sum)), min: Decimal(5), max: Decimal(max) });
    /// assert_eq!(got, vec![(row(2, 14, 9), 0, 1), (row(2, 14, 9), 1, -1), (row(1, 5, 5), 1, 1)]);
    /// ```
    fn aggregate(self) -> VecCollection<'scope, Time, AggRow>;

    /// As [`Aggregate::aggregate`], and with a finite lateness, closes at the start of each
    /// epoch `e` every window that ends at or before `H(e)` (see
    /// [`crate::incremental::watermark`]): its groups are forgotten, later updates of it are
    /// ignored, and its rows stay as they were.
    fn aggregate_within(
        self,
        marks: Marks<'scope>,
        bounds: &Bounds,
    ) -> VecCollection<'scope, Time, AggRow>;
}

impl<'scope> Aggregate<'scope> for VecCollection<'scope, Time, WindowedValue> {
    fn aggregate(self) -> VecCollection<'scope, Time, AggRow> {
        let state = GroupState::new(false);
        aggregate(self, None, Vec::new(), state, Store::default())
    }

    fn aggregate_within(
        self,
        marks: Marks<'scope>,
        bounds: &Bounds,
    ) -> VecCollection<'scope, Time, AggRow> {
        let gauges = vec![Gauge::new(&bounds.state.groups, |s: &GroupState| {
            s.len() as i64
        })];
        let state = GroupState::new(bounds.lateness.is_bounded());
        let store = bounds.store.clone();
        aggregate(self, Some((marks, bounds.lateness)), gauges, state, store)
    }
}

fn aggregate<'scope>(
    values: VecCollection<'scope, Time, WindowedValue>,
    marks: Option<(Marks<'scope>, crate::incremental::watermark::Lateness)>,
    gauges: Vec<Gauge<GroupState>>,
    state: GroupState,
    store: Store,
) -> VecCollection<'scope, Time, AggRow> {
    let exchange = Exchange::new(|update: &(WindowedValue, Time, isize)| (update.0).0.hashed());
    let spec = Spec {
        name: "Aggregate",
        marks,
        ready: Ready::Complete,
        gauges,
        store,
    };
    per_time(values, exchange, spec, state)
}

/// What a group is keyed by.
type GroupKey = (Window, CompactString);

/// A group as a checkpoint saves it: its key and its values with their multiplicities.
type SavedGroup = (GroupKey, smallvec::SmallVec<[(Decimal, i64); 1]>);

/// The groups of one worker, and when each window closes.
#[derive(Debug, Default)]
pub struct GroupState {
    /// Each group with its (window, key), found by the key's hash; boxed, so the table's slots
    /// (and its growth) cost a pointer each.
    groups: HashTable<Box<(GroupKey, Group)>>,
    hasher: foldhash::fast::FixedState,
    /// With a finite lateness: the hashes of groups by their window's end.
    closing: Option<ExpiryIndex>,
    /// For checkpoints, once one is taken: the groups changed since.
    changed: ChangedKeys<GroupKey>,
    /// In a resumed run, the checkpointed groups not yet needed: a group missing from
    /// `groups` is looked for here first.
    base: Option<Base>,
}

impl GroupState {
    /// Empty state; if `closes`, windows can be closed by a horizon.
    pub fn new(closes: bool) -> GroupState {
        GroupState {
            closing: closes.then(ExpiryIndex::default),
            ..GroupState::default()
        }
    }

    /// Groups held.
    pub fn len(&self) -> usize {
        self.groups.len() + self.base.as_ref().map_or(0, Base::live)
    }

    /// Whether no group is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Moves the checkpointed group of `key` from the base into the table, unless the table
    /// has it already (`hash` is the table's hash of `key`).
    #[inline]
    fn pull(&mut self, hash: u64, key: &GroupKey) {
        let Some(base) = &mut self.base else {
            return;
        };
        if self.groups.find(hash, |entry| entry.0 == *key).is_some() {
            return;
        }
        let found = base.take(key.hashed(), |bytes| {
            let (saved, values): SavedGroup = decode_taken(bytes);
            (saved == *key).then_some((saved, values))
        });
        if let Some((key, values)) = found {
            self.insert_new(key, Group::from_values(values));
        }
    }

    /// Forgets every group whose window ends at or before `horizon`.
    pub fn close_windows(&mut self, horizon: Millis) {
        if let Some(closing) = &mut self.closing {
            let changed = &mut self.changed;
            closing.release(
                horizon,
                &mut self.groups,
                |g| g.0.0.end <= horizon,
                |g| changed.note(|| g.0),
            );
        }
    }

    /// Applies the changes of one group and returns its row before and after.
    #[inline]
    fn update(
        &mut self,
        key: &GroupKey,
        changes: impl Iterator<Item = (Decimal, isize)>,
    ) -> (Option<Agg>, Option<Agg>) {
        let hash = self.hasher.hash_one(key);
        self.pull(hash, key);
        let hasher = &self.hasher;
        let closing = &mut self.closing;
        let mut entry = self
            .groups
            .entry(
                hash,
                |entry| entry.0 == *key,
                |entry| hasher.hash_one(&entry.0),
            )
            .or_insert_with(|| {
                if let Some(closing) = closing {
                    closing.note(key.0.end, hash);
                }
                Box::new((key.clone(), Group::default()))
            });
        let group = &mut entry.get_mut().1;
        let before = group.agg();
        for (value, diff) in changes {
            group.update(value, diff as i64);
        }
        let after = group.agg();
        if group.is_empty() {
            entry.remove();
        }
        self.changed.note(|| key.clone());
        (before, after)
    }

    /// Adds the group of `key`, which the state does not hold.
    fn insert_new(&mut self, key: GroupKey, group: Group) {
        let hasher = &self.hasher;
        let hash = hasher.hash_one(&key);
        if let Some(closing) = &mut self.closing {
            closing.note(key.0.end, hash);
        }
        self.groups
            .insert_unique(hash, Box::new((key, group)), |e| hasher.hash_one(&e.0));
    }

    /// Forgets the group of `key`.
    fn remove(&mut self, key: &GroupKey) {
        let hash = self.hasher.hash_one(key);
        if let Ok(found) = self.groups.find_entry(hash, |entry| entry.0 == *key) {
            found.remove();
        }
    }
}

impl Durable for GroupState {
    fn save(&self, out: &mut Entries<'_>) -> std::io::Result<()> {
        self.groups.iter().try_for_each(|entry| {
            let (key, group) = &**entry;
            out.put(key.hashed(), &(key, group.value_list()))
        })?;
        out.put_untaken(self.base.as_ref())
    }

    fn load(&mut self, entry: &[u8]) -> Result<(), bincode::Error> {
        let (key, values): SavedGroup = decode(entry)?;
        self.insert_new(key, Group::from_values(values));
        Ok(())
    }

    fn reserve(&mut self, entries: usize) {
        let hasher = &self.hasher;
        self.groups
            .reserve(entries, |entry| hasher.hash_one(&entry.0));
    }

    fn base_slot(&mut self) -> Option<&mut Option<Base>> {
        // With a finite lateness, every group is indexed by when its window closes, at once.
        self.closing.is_none().then_some(&mut self.base)
    }

    fn track_changes(&mut self) {
        self.changed.track();
    }

    fn save_changes(&mut self, out: &mut Entries<'_>) -> std::io::Result<bool> {
        let (groups, hasher) = (&self.groups, &self.hasher);
        self.changed.save(out, |key| {
            let entry = groups.find(hasher.hash_one(key), |e| e.0 == *key)?;
            Some((&entry.0, entry.1.value_list()))
        })
    }

    fn load_change(&mut self, entry: &[u8]) -> Result<(), bincode::Error> {
        let change = decode::<Change<GroupKey, SavedGroup>>(entry)?;
        let key = match &change {
            Change::Put((key, _)) | Change::Remove(key) => key,
        };
        self.pull(self.hasher.hash_one(key), key);
        match change {
            Change::Put((key, values)) => {
                self.remove(&key);
                self.insert_new(key, Group::from_values(values));
            }
            Change::Remove(key) => self.remove(&key),
        }
        Ok(())
    }
}

impl PerTime for GroupState {
    type Input = WindowedValue;
    type Item = (WindowedValue, isize);
    type Output = AggRow;

    fn take(&self, value: WindowedValue, diff: isize, held: &mut Vec<Self::Item>) {
        held.push((value, diff));
    }

    fn apply(
        &mut self,
        at: At,
        mut updates: Vec<Self::Item>,
        emit: &mut impl FnMut(AggRow, isize),
    ) {
        if let Some(horizon) = at.horizon {
            self.close_windows(horizon);
            // A closed window's row is final.
            updates.retain(|(((window, _), _), _)| window.end > horizon);
        }
        // Room for every update making a new group, so the table grows at most once a time.
        let hasher = &self.hasher;
        self.groups
            .reserve(updates.len(), |entry| hasher.hash_one(&entry.0));
        // Group the time's updates so each group's old row is read once.
        updates.sort_unstable_by(|a, b| a.0.0.cmp(&b.0.0));
        let mut updates = updates.into_iter().peekable();
        while let Some(((key, value), diff)) = updates.next() {
            let rest = std::iter::from_fn(|| {
                updates
                    .next_if(|((next, _), _)| *next == key)
                    .map(|((_, value), diff)| (value, diff))
            });
            let (before, after) = self.update(&key, std::iter::once((value, diff)).chain(rest));
            if before == after {
                continue;
            }
            if let Some(old) = before {
                emit((key.clone(), old), -1);
            }
            if let Some(new) = after {
                emit((key, new), 1);
            }
        }
    }

    fn release(&mut self, horizon: Millis) {
        self.close_windows(horizon);
    }
}
