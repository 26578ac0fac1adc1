//! Session windows per key, maintained incrementally: count, sum, min and max per session.
//!
//! `session:G` (docs/format.md, section 4): per key, the current records sorted by time; consecutive
//! records less than `G` apart are in one session, whose window is `[first ts, last ts + G)`.
//! Unlike tumbling and hopping windows, a record's window depends on the key's other records,
//! so sessions are not a per-record assignment: this operator replaces `AssignWindows` +
//! `Aggregate`.
//!
//! Input: current records (from `ResolveIds`) with their ±1 diffs; deletes are skipped, as
//! `AssignWindows` skips them. Output: one [`AggRow`] per (session window, key), updated as
//! records come and go. When a time's changes are applied, the rows of the sessions they touch
//! are retracted and the recomputed rows inserted: a record that bridges two sessions retracts
//! both rows and inserts the merged one; removing a record that held a session together
//! retracts the merged row and inserts the two halves. Only rows that really changed are
//! emitted, retractions before insertions, so changes that cancel out emit nothing.
//!
//! Records are exchanged by a hash of their key. [`SessionState`], a plain struct with no
//! timely in it, holds one worker's keys: per key its records ordered by time, as a multiset of
//! values per timestamp, and its sessions with their current rows. A time's changes cost a
//! scan of the sessions they touch (a pure insertion into or next to sessions costs only the
//! inserted values); other sessions and other keys cost nothing. All arithmetic is on
//! fixed-point integers, so a row is bit-identical for any worker count, batching and arrival
//! order.
//!
//! State is bounded by [`SessionState::release`]: a session whose window ends at least `G`
//! before the lateness horizon can no longer change (docs/design/0002-live-mode.md, "Bounded
//! state"), so it and its records are dropped; its row stays in the table downstream.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::BuildHasher;

use compact_str::CompactString;
use differential_dataflow::{Hashable, VecCollection};
use hashbrown::hash_table::HashTable;
use timely::dataflow::channels::pact::Exchange;

use crate::data::agg::{Agg, AggRow};
use crate::data::decimal::Decimal;
use crate::data::event::{Event, Op, Time};
use crate::data::time::Millis;
use crate::data::window::Window;
use crate::incremental::durable::{Durable, Entries, Store, decode};
use crate::incremental::per_time::{At, Gauge, PerTime, Ready, Spec, per_time};
use crate::incremental::watermark::{Bounds, Lateness, Marks};

/// One change to a key's records: `(key, ts, value, diff)`.
pub type SessionUpdate = (CompactString, Millis, Decimal, i64);

/// One session of a key: its last record's time (its start is the map key), and its row.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Session {
    last: Millis,
    /// `None` when the session has no valid row (multiplicities below zero, which only a
    /// retraction of a record never inserted can cause).
    row: Option<Agg>,
}

/// The records and sessions of one key.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct KeyState {
    key: CompactString,
    /// `(ts, value)` → multiplicity (never zero), ordered by time, then value.
    records: BTreeMap<(Millis, Decimal), i64>,
    /// Session start → session. Sessions are disjoint and cover every record.
    sessions: BTreeMap<Millis, Session>,
}

/// The sessions of one worker's share of keys, maintained incrementally. Timely-free: the
/// [`Sessions`] operator feeds it one completed time at a time.
#[derive(Clone, Debug)]
pub struct SessionState {
    gap: Millis,
    hasher: foldhash::fast::FixedState,
    keys: HashTable<Box<KeyState>>,
    /// `(last ts of the key's first session, key)` for every key: sessions of a key close in
    /// time order, so this finds every closable session without visiting other keys.
    first_ends: BTreeSet<(Millis, CompactString)>,
    /// Sum of the multiplicities of all records held.
    records: i64,
    /// Number of sessions held.
    sessions: usize,
}

/// The aggregates of a run of records being scanned, for [`KeyState::rescan`].
struct Running {
    start: Millis,
    last: Millis,
    count: i64,
    /// The exact sum, or `None` once a partial sum did not fit (then recomputed at the end).
    sum: Option<i128>,
    min: Decimal,
    max: Decimal,
    negative: bool,
}

impl Running {
    fn new(ts: Millis, value: Decimal, n: i64) -> Running {
        Running {
            start: ts,
            last: ts,
            count: 0,
            sum: Some(0),
            min: value,
            max: value,
            negative: false,
        }
        .with(ts, value, n)
    }

    fn with(mut self, ts: Millis, value: Decimal, n: i64) -> Running {
        self.last = ts;
        self.count += n;
        self.sum = self
            .sum
            .and_then(|sum| sum.checked_add(value.0.checked_mul(i128::from(n))?));
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        self.negative |= n < 0;
        self
    }
}

impl KeyState {
    /// The sessions whose records a record at `ts` would join: at most one on each side.
    fn touching(&self, ts: Millis, gap: Millis) -> impl Iterator<Item = (Millis, Session)> + '_ {
        self.sessions
            .range(..ts.saturating_add(gap))
            .rev()
            .take(2)
            .filter(move |(_, s)| s.last.saturating_add(gap) > ts)
            .map(|(start, s)| (*start, *s))
    }

    /// The sessions of the records in `[lo, hi]`, recomputed from the records.
    fn rescan(&self, lo: Millis, hi: Millis, gap: Millis, out: &mut Vec<(Millis, Session)>) {
        let range = (lo, Decimal(i128::MIN))..=(hi, Decimal(i128::MAX));
        let mut running: Option<Running> = None;
        for (&(ts, value), &n) in self.records.range(range) {
            running = Some(match running {
                Some(run) if ts - run.last < gap => run.with(ts, value, n),
                Some(run) => {
                    out.push(self.finish(run));
                    Running::new(ts, value, n)
                }
                None => Running::new(ts, value, n),
            });
        }
        if let Some(run) = running {
            out.push(self.finish(run));
        }
    }

    fn finish(&self, run: Running) -> (Millis, Session) {
        let row = if run.negative || run.count <= 0 {
            None
        } else {
            let sum = match run.sum {
                Some(sum) => Some(Decimal(sum)),
                // A partial sum overflowed; the whole may still fit (values of both signs).
                None => self.exact_sum(run.start, run.last),
            };
            Some(Agg {
                count: run.count as u64,
                sum,
                min: run.min,
                max: run.max,
            })
        };
        (
            run.start,
            Session {
                last: run.last,
                row,
            },
        )
    }

    /// The exact sum of the records in `[start, last]`, `None` if it does not fit.
    fn exact_sum(&self, start: Millis, last: Millis) -> Option<Decimal> {
        let range = (start, Decimal(i128::MIN))..=(last, Decimal(i128::MAX));
        let values = self.records.range(range).map(|((_, v), n)| (v, *n));
        Agg::of(values)?.sum
    }
}

impl SessionState {
    /// Empty state for sessions with gap `gap` (milliseconds, positive).
    pub fn new(gap: Millis) -> SessionState {
        assert!(gap > 0, "a session gap must be positive");
        SessionState {
            gap,
            hasher: foldhash::fast::FixedState::default(),
            keys: HashTable::new(),
            first_ends: BTreeSet::new(),
            records: 0,
            sessions: 0,
        }
    }

    /// The gap.
    pub fn gap(&self) -> Millis {
        self.gap
    }

    /// Records held (counting multiplicities).
    pub fn records(&self) -> u64 {
        self.records.max(0) as u64
    }

    /// Sessions held.
    pub fn sessions(&self) -> usize {
        self.sessions
    }

    /// Keys held.
    pub fn keys(&self) -> usize {
        self.keys.len()
    }

    /// Applies one completed time's changes and pushes the row changes to `out`: for each
    /// touched session, its old row's retraction and its new row's insertion, only where
    /// they differ, retractions before insertions within a key. `updates` is drained; its
    /// order does not matter.
    pub fn apply(&mut self, updates: &mut Vec<SessionUpdate>, out: &mut Vec<(AggRow, i64)>) {
        updates.sort_unstable_by(|a, b| (&a.0, a.1, a.2).cmp(&(&b.0, b.1, b.2)));
        let mut changes: Vec<(Millis, Decimal, i64)> = Vec::new();
        let mut updates = updates.drain(..).peekable();
        while let Some((key, ts, value, diff)) = updates.next() {
            changes.clear();
            changes.push((ts, value, diff));
            while let Some((_, ts, value, diff)) = updates.next_if(|next| next.0 == key) {
                match changes.last_mut() {
                    Some(last) if (last.0, last.1) == (ts, value) => last.2 += diff,
                    _ => changes.push((ts, value, diff)),
                }
            }
            changes.retain(|c| c.2 != 0);
            if !changes.is_empty() {
                self.apply_key(key, &changes, out);
            }
        }
    }

    /// Applies one key's consolidated changes, sorted by `(ts, value)`.
    fn apply_key(
        &mut self,
        key: CompactString,
        changes: &[(Millis, Decimal, i64)],
        out: &mut Vec<(AggRow, i64)>,
    ) {
        let gap = self.gap;
        let hash = self.hasher.hash_one(key.as_str());
        let hasher = &self.hasher;
        let mut entry = self
            .keys
            .entry(
                hash,
                |state| state.key == key,
                |state| hasher.hash_one(state.key.as_str()),
            )
            .or_insert_with(|| {
                Box::new(KeyState {
                    key,
                    records: BTreeMap::new(),
                    sessions: BTreeMap::new(),
                })
            });
        let state = &mut **entry.get_mut();
        let first_before = state.sessions.first_key_value().map(|(_, s)| s.last);

        // Clusters of changes that may interact: each change with the old sessions it touches,
        // joined while less than a gap apart. Records between two clusters belong to untouched
        // sessions at least a gap away from both, so each cluster is recomputed on its own.
        let mut clusters: Vec<(Millis, Millis, usize, usize)> = Vec::new(); // lo, hi, changes
        for (i, &(ts, _, _)) in changes.iter().enumerate() {
            let (mut lo, mut hi) = (ts, ts);
            for (start, session) in state.touching(ts, gap) {
                lo = lo.min(start);
                hi = hi.max(session.last);
            }
            match clusters.last_mut() {
                Some(cluster) if lo < cluster.1.saturating_add(gap) => {
                    cluster.0 = cluster.0.min(lo);
                    cluster.1 = cluster.1.max(hi);
                    cluster.3 = i + 1;
                }
                _ => clusters.push((lo, hi, i, i + 1)),
            }
        }

        let mut old: Vec<(Millis, Session)> = Vec::new();
        let mut new: Vec<(Millis, Session)> = Vec::new();
        for (lo, hi, from, to) in clusters {
            old.clear();
            new.clear();
            old.extend(state.sessions.range(lo..=hi).map(|(s, x)| (*s, *x)));
            for (start, _) in &old {
                state.sessions.remove(start);
            }
            let mut inserted = true;
            for &(ts, value, diff) in &changes[from..to] {
                inserted &= diff > 0;
                self.records += diff;
                let slot = state.records.entry((ts, value)).or_insert(0);
                *slot += diff;
                if *slot == 0 {
                    state.records.remove(&(ts, value));
                }
            }
            // Pure insertions only join sessions: the cluster becomes one session whose row
            // is the old rows combined with the new values. Anything else is rescanned.
            match inserted
                .then(|| combine(&old, &changes[from..to]))
                .flatten()
            {
                Some(row) => new.push((
                    lo,
                    Session {
                        last: hi,
                        row: Some(row),
                    },
                )),
                None => state.rescan(lo, hi, gap, &mut new),
            }
            self.sessions = self.sessions + new.len() - old.len();
            state.sessions.extend(new.iter().copied());
            let row = |(start, session): &(Millis, Session)| {
                let window = Window {
                    start: *start,
                    end: session.last.saturating_add(gap),
                };
                session.row.map(|agg| (window, agg))
            };
            let before: Vec<_> = old.iter().filter_map(row).collect();
            let after: Vec<_> = new.iter().filter_map(row).collect();
            for (window, agg) in before.iter().filter(|r| !after.contains(r)) {
                out.push((((*window, state.key.clone()), *agg), -1));
            }
            for (window, agg) in after.iter().filter(|r| !before.contains(r)) {
                out.push((((*window, state.key.clone()), *agg), 1));
            }
        }

        let first_after = state.sessions.first_key_value().map(|(_, s)| s.last);
        if first_before != first_after {
            if let Some(last) = first_before {
                self.first_ends.remove(&(last, state.key.clone()));
            }
            if let Some(last) = first_after {
                self.first_ends.insert((last, state.key.clone()));
            }
        }
        if state.records.is_empty() {
            entry.remove();
        }
    }

    /// Drops every session whose window ends at least a gap before `horizon` (its `end + G <=
    /// horizon`), with its records. Emits nothing: the rows of closed sessions are final.
    pub fn release(&mut self, horizon: Millis) {
        let gap = self.gap;
        let closed = |last: Millis| last.saturating_add(gap).saturating_add(gap) <= horizon;
        while let Some((last, _)) = self.first_ends.first() {
            if !closed(*last) {
                break;
            }
            let (_, key) = self.first_ends.pop_first().expect("not empty");
            let hash = self.hasher.hash_one(key.as_str());
            let Ok(mut entry) = self.keys.find_entry(hash, |state| state.key == key) else {
                continue;
            };
            let state = &mut **entry.get_mut();
            let mut cut = None;
            while let Some(first) = state.sessions.first_entry() {
                if !closed(first.get().last) {
                    break;
                }
                cut = Some(first.remove().last);
                self.sessions -= 1;
            }
            if let Some(cut) = cut {
                let keep = state.records.split_off(&(cut + 1, Decimal(i128::MIN)));
                let dropped = std::mem::replace(&mut state.records, keep);
                self.records -= dropped.values().sum::<i64>();
            }
            match state.sessions.first_key_value() {
                Some((_, first)) => {
                    self.first_ends.insert((first.last, key));
                }
                None => {
                    entry.remove();
                }
            }
        }
    }
}

/// The row of one session made of the `old` sessions' rows and the inserted values, or `None`
/// if a row is missing or a sum does not fit (then the caller rescans).
fn combine(old: &[(Millis, Session)], inserted: &[(Millis, Decimal, i64)]) -> Option<Agg> {
    let mut agg: Option<Agg> = None;
    let mut add = |part: Agg| -> Option<()> {
        agg = Some(match agg {
            None => part,
            Some(a) => Agg {
                count: a.count + part.count,
                sum: Some(a.sum?.checked_add(part.sum?)?),
                min: a.min.min(part.min),
                max: a.max.max(part.max),
            },
        });
        agg?.sum.map(drop)
    };
    for (_, session) in old {
        add(session.row?)?;
    }
    for &(_, value, n) in inserted {
        add(Agg {
            count: n as u64,
            sum: Some(value.checked_mul_int(n)?),
            min: value,
            max: value,
        })?;
    }
    agg
}

/// Computes session windows and their aggregates.
pub trait Sessions<'scope> {
    /// One [`Agg`] per (session window, key) with gap `gap`, maintained incrementally.
    ///
    /// ```
    /// use amend_operators::{Event, Position, Sessions, Window};
    /// use differential_dataflow::input::Input;
    /// use timely::dataflow::operators::capture::{Capture, Extract};
    ///
    /// let record = |ts, offset| Event { id: format!("e{ts}").into(), key: "k".into(), ts,
    ///     position: Position { epoch: 0, file: 0, offset }, ..Event::default() };
    /// let captured = timely::example(move |scope| {
    ///     let (mut input, current) = scope.new_collection::<Event, isize>();
    ///     let rows = current.sessions(10);
    ///     input.insert(record(0, 0));
    ///     input.insert(record(15, 1));
    ///     input.advance_to(1);
    ///     input.insert(record(7, 2)); // a late record that bridges the two sessions
    ///     rows.inner.capture()
    /// });
    /// let mut got: Vec<_> = captured.extract().into_iter().flat_map(|(_, d)| d).collect();
    /// got.sort_by_key(|(((w, _), _), t, d)| (*t, *d, *w));
    /// let windows: Vec<_> = got.iter().map(|(((w, _), a), t, d)| (w.start, w.end, a.count, *t, *d)).collect();
    /// assert_eq!(windows, vec![(0, 10, 1, 0, 1), (15, 25, 1, 0, 1), (0, 10, 1, 1, -1), (15, 25, 1, 1, -1), (0, 25, 3, 1, 1)]);
    /// ```
    fn sessions(self, gap: Millis) -> VecCollection<'scope, Time, AggRow>;

    /// As [`Sessions::sessions`], and with a finite lateness, drops at the start of each epoch
    /// `e` every session with `end + gap <= H(e)` (see [`crate::incremental::watermark`]): no
    /// on-time record can reach it any more. Dropping emits nothing; the rows stay as they were.
    fn sessions_within(
        self,
        gap: Millis,
        marks: Marks<'scope>,
        bounds: &Bounds,
    ) -> VecCollection<'scope, Time, AggRow>;
}

impl<'scope> Sessions<'scope> for VecCollection<'scope, Time, Event> {
    fn sessions(self, gap: Millis) -> VecCollection<'scope, Time, AggRow> {
        let state = SessionState::new(gap);
        sessions(self, None, Vec::new(), state, Store::default())
    }

    fn sessions_within(
        self,
        gap: Millis,
        marks: Marks<'scope>,
        bounds: &Bounds,
    ) -> VecCollection<'scope, Time, AggRow> {
        let gauges = vec![Gauge::new(&bounds.state.groups, |s: &SessionState| {
            s.records() as i64
        })];
        let marks = Some((marks, bounds.lateness));
        let store = bounds.store.clone();
        sessions(self, marks, gauges, SessionState::new(gap), store)
    }
}

fn sessions<'scope>(
    current: VecCollection<'scope, Time, Event>,
    marks: Option<(Marks<'scope>, Lateness)>,
    gauges: Vec<Gauge<SessionState>>,
    state: SessionState,
    store: Store,
) -> VecCollection<'scope, Time, AggRow> {
    let exchange = Exchange::new(|update: &(Event, Time, isize)| update.0.key.hashed());
    let spec = Spec {
        name: "Sessions",
        marks,
        ready: Ready::Complete,
        gauges,
        store,
    };
    per_time(current, exchange, spec, state)
}

impl Durable for SessionState {
    fn save(&self, out: &mut Entries<'_>) -> std::io::Result<()> {
        self.keys
            .iter()
            .try_for_each(|state| out.put(state.key.hashed(), &**state))
    }

    fn load(&mut self, entry: &[u8]) -> Result<(), bincode::Error> {
        let state: KeyState = decode(entry)?;
        self.records += state.records.values().sum::<i64>();
        self.sessions += state.sessions.len();
        if let Some((_, first)) = state.sessions.first_key_value() {
            self.first_ends.insert((first.last, state.key.clone()));
        }
        let hasher = &self.hasher;
        let hash = hasher.hash_one(state.key.as_str());
        self.keys
            .insert_unique(hash, Box::new(state), |s| hasher.hash_one(s.key.as_str()));
        Ok(())
    }

    fn reserve(&mut self, entries: usize) {
        let hasher = &self.hasher;
        self.keys
            .reserve(entries, |s| hasher.hash_one(s.key.as_str()));
    }
}

impl PerTime for SessionState {
    type Input = Event;
    type Item = SessionUpdate;
    type Output = AggRow;

    fn take(&self, event: Event, diff: isize, held: &mut Vec<SessionUpdate>) {
        // Deletes count in no window, as `AssignWindows` skips them.
        if event.op == Op::Upsert {
            held.push((event.key, event.ts, event.value, diff as i64));
        }
    }

    fn apply(
        &mut self,
        at: At,
        mut updates: Vec<SessionUpdate>,
        emit: &mut impl FnMut(AggRow, isize),
    ) {
        if let Some(horizon) = at.horizon {
            self.release(horizon);
        }
        let mut changes = Vec::new();
        SessionState::apply(self, &mut updates, &mut changes);
        for (row, diff) in changes {
            emit(row, diff as isize);
        }
    }

    fn release(&mut self, horizon: Millis) {
        SessionState::release(self, horizon);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: Millis = 10;

    fn agg(values: &[i128]) -> Agg {
        let values: Vec<Decimal> = values.iter().map(|v| Decimal(*v)).collect();
        Agg::of(values.iter().map(|v| (v, 1))).unwrap()
    }

    fn row(start: Millis, end: Millis, key: &str, values: &[i128]) -> AggRow {
        (
            (Window { start, end }, CompactString::from(key)),
            agg(values),
        )
    }

    fn up(key: &str, ts: Millis, value: i128, diff: i64) -> SessionUpdate {
        (CompactString::from(key), ts, Decimal(value), diff)
    }

    /// Applies one time's updates and returns its row changes, sorted.
    fn step(state: &mut SessionState, updates: &[SessionUpdate]) -> Vec<(AggRow, i64)> {
        let mut out = Vec::new();
        state.apply(&mut updates.to_vec(), &mut out);
        out.sort();
        out
    }

    #[test]
    fn records_less_than_a_gap_apart_share_a_session() {
        let mut state = SessionState::new(G);
        let out = step(
            &mut state,
            &[up("a", 0, 1, 1), up("a", 9, 2, 1), up("a", 19, 4, 1)],
        );
        // 9 - 0 < 10 and 19 - 9 = 10: two sessions.
        assert_eq!(
            out,
            vec![(row(0, 19, "a", &[1, 2]), 1), (row(19, 29, "a", &[4]), 1)]
        );
        assert_eq!((state.records(), state.sessions()), (3, 2));
    }

    #[test]
    fn a_bridging_record_merges_two_sessions() {
        let mut state = SessionState::new(G);
        step(&mut state, &[up("a", 0, 1, 1), up("a", 15, 2, 1)]);
        let out = step(&mut state, &[up("a", 7, 3, 1)]);
        assert_eq!(
            out,
            vec![
                (row(0, 10, "a", &[1]), -1),
                (row(0, 25, "a", &[1, 2, 3]), 1),
                (row(15, 25, "a", &[2]), -1),
            ]
        );
        assert_eq!(state.sessions(), 1);
    }

    #[test]
    fn removing_the_bridge_splits_the_session() {
        let mut state = SessionState::new(G);
        step(
            &mut state,
            &[up("a", 0, 1, 1), up("a", 7, 3, 1), up("a", 15, 2, 1)],
        );
        let out = step(&mut state, &[up("a", 7, 3, -1)]);
        assert_eq!(
            out,
            vec![
                (row(0, 10, "a", &[1]), 1),
                (row(0, 25, "a", &[1, 2, 3]), -1),
                (row(15, 25, "a", &[2]), 1),
            ]
        );
        assert_eq!((state.records(), state.sessions()), (2, 2));
    }

    #[test]
    fn duplicates_of_one_time_are_a_multiset() {
        let mut state = SessionState::new(G);
        step(
            &mut state,
            &[up("a", 5, 2, 1), up("a", 5, 2, 1), up("a", 5, 7, 1)],
        );
        assert_eq!(state.records(), 3);
        // One of the two equal records goes: the session stays, its row changes.
        let out = step(&mut state, &[up("a", 5, 2, -1)]);
        assert_eq!(
            out,
            vec![
                (row(5, 15, "a", &[2, 7]), 1),
                (row(5, 15, "a", &[2, 2, 7]), -1)
            ]
        );
        // A correction of a value at the same time, and a change that cancels out.
        let out = step(
            &mut state,
            &[
                up("a", 5, 7, -1),
                up("a", 5, 8, 1),
                up("a", 6, 1, 1),
                up("a", 6, 1, -1),
            ],
        );
        assert_eq!(
            out,
            vec![
                (row(5, 15, "a", &[2, 7]), -1),
                (row(5, 15, "a", &[2, 8]), 1)
            ]
        );
        // Removing everything removes the key.
        let out = step(&mut state, &[up("a", 5, 2, -1), up("a", 5, 8, -1)]);
        assert_eq!(out, vec![(row(5, 15, "a", &[2, 8]), -1)]);
        assert_eq!((state.records(), state.sessions(), state.keys()), (0, 0, 0));
    }

    #[test]
    fn a_change_that_leaves_the_row_as_it_was_emits_nothing() {
        let mut state = SessionState::new(G);
        step(
            &mut state,
            &[up("a", 0, 1, 1), up("a", 2, 1, 1), up("a", 5, 1, 1)],
        );
        let out = step(&mut state, &[up("a", 0, 1, -1), up("a", 0, 1, 1)]);
        assert!(out.is_empty(), "{out:?}");
        // Moving the inner record within the session keeps window and aggregates.
        let out = step(&mut state, &[up("a", 2, 1, -1), up("a", 3, 1, 1)]);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn keys_are_independent() {
        let mut state = SessionState::new(G);
        let out = step(
            &mut state,
            &[up("b", 0, 1, 1), up("a", 0, 2, 1), up("b", 5, 3, 1)],
        );
        assert_eq!(
            out,
            vec![(row(0, 10, "a", &[2]), 1), (row(0, 15, "b", &[1, 3]), 1)]
        );
        let out = step(&mut state, &[up("a", 8, 4, 1)]);
        assert_eq!(
            out,
            vec![(row(0, 10, "a", &[2]), -1), (row(0, 18, "a", &[2, 4]), 1)]
        );
        assert_eq!(state.keys(), 2);
    }

    #[test]
    fn sum_overflow_is_reported_and_recovers() {
        let big = i128::MAX / 2 + 1;
        let mut state = SessionState::new(G);
        let out = step(&mut state, &[up("a", 0, big, 1), up("a", 1, big + 2, 1)]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0.1.sum, None);
        // A negative value brings the sum back into range.
        let out = step(&mut state, &[up("a", 2, -big, 1)]);
        assert_eq!(out[0].1, -1);
        assert_eq!(out[1].0.1.sum, Some(Decimal(big + 2)));
        assert_eq!(out[1].0.1.count, 3);
    }

    #[test]
    fn release_drops_closed_sessions_only() {
        let mut state = SessionState::new(G);
        step(
            &mut state,
            &[
                up("a", 0, 1, 1),
                up("a", 5, 1, 1),
                up("a", 30, 1, 1),
                up("b", 0, 1, 1),
                up("c", 100, 1, 1),
            ],
        );
        assert_eq!((state.records(), state.sessions(), state.keys()), (5, 4, 3));
        // Session a [0, 15) closes when 15 + 10 <= horizon; b [0, 10) at 20.
        state.release(24);
        assert_eq!((state.records(), state.sessions(), state.keys()), (4, 3, 2));
        state.release(25);
        assert_eq!((state.records(), state.sessions(), state.keys()), (2, 2, 2));
        // The open session of a still works, and the key is still indexed for release.
        let out = step(&mut state, &[up("a", 35, 2, 1)]);
        assert_eq!(
            out,
            vec![(row(30, 40, "a", &[1]), -1), (row(30, 45, "a", &[1, 2]), 1)]
        );
        state.release(54);
        assert_eq!((state.records(), state.sessions()), (3, 2));
        state.release(55);
        assert_eq!((state.records(), state.sessions(), state.keys()), (1, 1, 1));
        state.release(i64::MAX);
        assert_eq!((state.records(), state.sessions(), state.keys()), (0, 0, 0));
    }

    /// Sessions of `records` from the definition, as a sorted table.
    fn recompute(records: &BTreeMap<(CompactString, Millis, i128), i64>) -> Vec<AggRow> {
        let mut by_key: BTreeMap<&str, Vec<(Millis, i128)>> = BTreeMap::new();
        for ((key, ts, value), n) in records {
            for _ in 0..*n {
                by_key.entry(key).or_default().push((*ts, *value));
            }
        }
        let mut rows = Vec::new();
        for (key, mut list) in by_key {
            list.sort();
            let mut groups: Vec<Vec<(Millis, i128)>> = Vec::new();
            for record in list {
                match groups.last_mut() {
                    Some(group) if record.0 - group.last().unwrap().0 < G => group.push(record),
                    _ => groups.push(vec![record]),
                }
            }
            for group in groups {
                let values: Vec<i128> = group.iter().map(|r| r.1).collect();
                let (start, last) = (group[0].0, group.last().unwrap().0);
                rows.push(row(start, last + G, key, &values));
            }
        }
        rows.sort();
        rows
    }

    #[test]
    fn matches_a_full_recompute_on_random_histories() {
        let mut seed = 0x5e55_1011_u64;
        let mut next = move |n: u64| {
            // splitmix64
            seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = seed;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)) % n
        };
        for round in 0..300 {
            let mut state = SessionState::new(G);
            let mut records: BTreeMap<(CompactString, Millis, i128), i64> = BTreeMap::new();
            let mut table: BTreeMap<(Window, CompactString), Agg> = BTreeMap::new();
            let span = [30, 60, 200][round % 3];
            for _ in 0..1 + next(12) {
                let mut updates = Vec::new();
                for _ in 0..next(8) {
                    let present: Vec<_> = records.keys().cloned().collect();
                    if !present.is_empty() && next(3) == 0 {
                        // Retract a present record (possibly twice in one time).
                        let (key, ts, value) = present[next(present.len() as u64) as usize].clone();
                        updates.push((key, ts, Decimal(value), -1));
                    } else {
                        let key = ["a", "b", "c"][next(3) as usize].to_string();
                        let ts = next(span) as Millis - 10;
                        let value = next(7) as i128 - 3;
                        updates.push((key.into(), ts, Decimal(value), 1));
                    }
                }
                // Keep the input a valid collection: never retract below zero.
                let mut valid = Vec::new();
                for (key, ts, value, diff) in updates {
                    let n = records.entry((key.clone(), ts, value.0)).or_insert(0);
                    if *n + diff >= 0 {
                        *n += diff;
                        valid.push((key, ts, value, diff));
                    }
                }
                records.retain(|_, n| *n > 0);
                let mut out = Vec::new();
                state.apply(&mut valid, &mut out);
                // Retractions come before insertions of the same (window, key).
                for ((group, agg), diff) in out {
                    if diff < 0 {
                        assert_eq!(table.remove(&group), Some(agg), "round {round}");
                    } else {
                        assert_eq!(table.insert(group, agg), None, "round {round}");
                    }
                }
                let mine: Vec<AggRow> = table.iter().map(|(g, a)| (g.clone(), *a)).collect();
                assert_eq!(mine, recompute(&records), "round {round}");
                let held: i64 = records.values().sum();
                assert_eq!(state.records(), held as u64);
                assert_eq!(state.sessions(), mine.len());
            }
        }
    }

    /// With updates that respect the lateness horizon (on-time insertions, `ts + G > H`, and
    /// retractions only of records whose id is not forgotten, `ts + G > H`), releasing closed
    /// sessions changes no output: the table still equals a full recompute.
    #[test]
    fn release_changes_no_output_for_on_time_updates() {
        let mut seed = 0x0b0d_u64;
        let mut next = move |n: u64| {
            seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = seed;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)) % n
        };
        let mut released = 0;
        for round in 0..200 {
            let mut state = SessionState::new(G);
            let mut records: BTreeMap<(CompactString, Millis, i128), i64> = BTreeMap::new();
            let mut table: BTreeMap<(Window, CompactString), Agg> = BTreeMap::new();
            let mut horizon: Millis = -100;
            for _ in 0..20 {
                horizon += next(12) as Millis;
                state.release(horizon);
                let mut updates = Vec::new();
                for _ in 0..next(6) {
                    let retractable: Vec<_> = records
                        .iter()
                        .filter(|((_, ts, _), n)| ts + G > horizon && **n > 0)
                        .map(|(r, _)| r.clone())
                        .collect();
                    if !retractable.is_empty() && next(3) == 0 {
                        let (key, ts, value) =
                            retractable[next(retractable.len() as u64) as usize].clone();
                        *records.get_mut(&(key.clone(), ts, value)).unwrap() -= 1;
                        updates.push((key, ts, Decimal(value), -1));
                    } else {
                        let key = CompactString::from(["a", "b"][next(2) as usize]);
                        let ts = horizon - G + 1 + next(40) as Millis;
                        let value = next(5) as i128;
                        *records.entry((key.clone(), ts, value)).or_insert(0) += 1;
                        updates.push((key, ts, Decimal(value), 1));
                    }
                }
                records.retain(|_, n| *n > 0);
                let mut out = Vec::new();
                state.apply(&mut updates, &mut out);
                for ((group, agg), diff) in out {
                    if diff < 0 {
                        assert_eq!(table.remove(&group), Some(agg), "round {round}");
                    } else {
                        assert_eq!(table.insert(group, agg), None, "round {round}");
                    }
                }
                let mine: Vec<AggRow> = table.iter().map(|(g, a)| (g.clone(), *a)).collect();
                assert_eq!(mine, recompute(&records), "round {round}");
                assert!(state.sessions() <= mine.len());
                released += mine.len() - state.sessions();
            }
        }
        assert!(released > 100, "release dropped only {released} sessions");
    }

    #[test]
    fn batching_does_not_change_the_net_result() {
        let updates = [
            up("a", 0, 1, 1),
            up("a", 20, 2, 1),
            up("a", 10, 3, 1),
            up("a", 10, 3, -1),
            up("a", 11, 4, 1),
            up("a", 0, 1, -1),
            up("a", 3, 5, 1),
        ];
        let net = |batches: &[&[SessionUpdate]]| {
            let mut state = SessionState::new(G);
            let mut table: BTreeMap<(Window, CompactString), Agg> = BTreeMap::new();
            for batch in batches {
                for ((group, agg), diff) in step(&mut state, batch) {
                    if diff < 0 {
                        table.remove(&group);
                    } else {
                        table.insert(group, agg);
                    }
                }
            }
            table
        };
        let whole = net(&[&updates]);
        for cut in 0..updates.len() {
            assert_eq!(net(&[&updates[..cut], &updates[cut..]]), whole, "cut {cut}");
        }
        let one_by_one: Vec<&[SessionUpdate]> = updates.chunks(1).collect();
        assert_eq!(net(&one_by_one), whole);
    }
}
