//! Operator state that a checkpoint saves and a resumed run loads.
//!
//! Every stateful operator's state is a set of entries, each owned by the worker its exchange
//! routes it to ([`Durable`]). A worker's part of a checkpoint ([`Store::save`]) holds one
//! section per operator, by name: each entry with its route hash and its bytes (bincode), so
//! that a loading worker can skip the entries of other workers without decoding them
//! ([`layout`] gives the bytes).
//!
//! Checkpoints are incremental: a section holds either every entry of its operator, or only
//! the entries that changed since the worker's previous part, each a put or a removal
//! ([`Change`]). A worker's parts form a chain, a part of every entry followed by parts of
//! changes; loading applies them in order. Operators whose state does not record its changes
//! save every entry in every part.
//!
//! A resumed run gives every worker the chains to load ([`Restore`]) and the workers keep the
//! entries routed to them: with as many workers as before, each loads its own chain; with
//! another number, every worker reads every chain and the state is re-partitioned.

mod base;
mod layout;
mod restore;

use std::cell::RefCell;
use std::fmt;
use std::io::{self, Write};
use std::rc::Rc;

use bincode::Options;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::data::event::Time;
use crate::data::time::Millis;
pub use base::Base;
pub(crate) use base::decode_taken;
use layout::{EntryOut, PartWriter};
pub use layout::{FORMAT_VERSION, Kind};
pub use restore::Restore;

/// State a checkpoint can save and a resumed run load: a set of entries, each with the hash
/// the operator's exchange routes it by.
pub(crate) trait Durable {
    /// Writes every entry.
    fn save(&self, out: &mut Entries<'_>) -> io::Result<()>;

    /// Takes one saved entry back.
    fn load(&mut self, entry: &[u8]) -> Result<(), bincode::Error>;

    /// Makes room for `entries` more, before they are loaded. Entries are saved in the order
    /// of their table's buckets, and inserting them in that order into a table that grows as
    /// it goes crowds its first buckets: loading one is slow unless the room is made first.
    fn reserve(&mut self, entries: usize) {
        let _ = entries;
    }

    /// Where the state keeps a [`Base`], if it can: a resumed worker's section of every entry
    /// of its own chain, to find entries in when they are first needed instead of loading
    /// each at once (the sections of changes after it are then loaded as usual). `None` if
    /// the state loads every entry.
    fn base_slot(&mut self) -> Option<&mut Option<Base>> {
        None
    }

    /// Begins recording which entries change, so that the next checkpoint can save only
    /// those; called once every entry is saved or loaded. State that does not record its
    /// changes ignores it.
    fn track_changes(&mut self) {}

    /// Writes the entries changed since changes were last tracked or taken, as [`Change`]s,
    /// and begins recording anew: `Ok(false)` if the state does not record them (it is then
    /// saved whole).
    fn save_changes(&mut self, out: &mut Entries<'_>) -> io::Result<bool> {
        let _ = out;
        Ok(false)
    }

    /// Applies one saved [`Change`].
    fn load_change(&mut self, entry: &[u8]) -> Result<(), bincode::Error> {
        let _ = entry;
        Err(bincode::ErrorKind::Custom("this state saves no changes".into()).into())
    }
}

/// The keys of the entries a state changed since its last checkpoint, recorded once the
/// first is taken (before it, the first part holds every entry anyway).
#[derive(Debug)]
pub(crate) struct ChangedKeys<K>(Option<Vec<K>>);

impl<K> Default for ChangedKeys<K> {
    fn default() -> Self {
        ChangedKeys(None)
    }
}

impl<K: Ord> ChangedKeys<K> {
    /// Begins recording (again, from nothing).
    pub fn track(&mut self) {
        self.0 = Some(Vec::new());
    }

    /// Records the key `key` gives, if recording.
    #[inline]
    pub fn note(&mut self, key: impl FnOnce() -> K) {
        if let Some(keys) = &mut self.0 {
            keys.push(key());
        }
    }

    /// The keys recorded, each once and in order, and records anew; `None` if not recording.
    pub fn take(&mut self) -> Option<Vec<K>> {
        let mut keys = self.0.replace(Vec::new())?;
        keys.sort_unstable();
        keys.dedup();
        Some(keys)
    }

    /// Writes the keys recorded as [`Change`]s, each routed by its hash: a put of the entry
    /// `now` finds for it, or its removal; records anew. `Ok(false)` if not recording.
    pub fn save<V: Serialize>(
        &mut self,
        out: &mut Entries<'_>,
        now: impl Fn(&K) -> Option<V>,
    ) -> io::Result<bool>
    where
        K: Serialize + differential_dataflow::Hashable<Output = u64>,
    {
        let Some(keys) = self.take() else {
            return Ok(false);
        };
        for key in keys {
            let change = match now(&key) {
                Some(entry) => Change::Put(entry),
                None => Change::Remove(&key),
            };
            out.put(key.hashed(), &change)?;
        }
        Ok(true)
    }
}

/// An entry of a section of changes: an entry as it is now, or the key of one removed.
#[derive(Serialize, Deserialize)]
pub(crate) enum Change<K, V> {
    /// The entry now (new, or changed).
    Put(V),
    /// The key of an entry that is gone.
    Remove(K),
}

/// How entries are encoded: bincode with variable-length integers (small numbers, and the
/// decimals' `i128` mantissas, take a byte or a few).
pub fn encoding() -> impl bincode::Options + Copy {
    bincode::DefaultOptions::new()
}

/// Decodes one entry.
pub(crate) fn decode<T: DeserializeOwned>(entry: &[u8]) -> Result<T, bincode::Error> {
    encoding().deserialize(entry)
}

/// Where an operator writes its entries.
pub struct Entries<'a> {
    out: &'a mut dyn EntryOut,
    scratch: Vec<u8>,
    count: u64,
}

impl Entries<'_> {
    /// Writes `entry`, routed by `route`.
    pub fn put(&mut self, route: u64, entry: &impl Serialize) -> io::Result<()> {
        self.scratch.clear();
        encoding()
            .serialize_into(&mut self.scratch, entry)
            .map_err(io::Error::other)?;
        self.out.entry(route, &self.scratch)?;
        self.count += 1;
        Ok(())
    }

    /// Writes the entries of `base` not taken, as they were saved.
    pub(crate) fn put_untaken(&mut self, base: Option<&Base>) -> io::Result<()> {
        for (route, bytes) in base.into_iter().flat_map(Base::remaining) {
            self.out.entry(route, bytes)?;
            self.count += 1;
        }
        Ok(())
    }
}

/// Why a part cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Not a part, or one of another format version.
    #[error("not a state part of format version {FORMAT_VERSION}")]
    Header,
    /// The part ends inside a section, or its index does not fit it.
    #[error("the state part is truncated")]
    Truncated,
    /// A chain of parts has changes of an operator before any part with all its entries.
    #[error("the state of {operator} has changes without the entries they change")]
    Chain {
        /// The operator.
        operator: String,
    },
    /// An entry does not decode.
    #[error("a state entry of {operator} does not decode: {source}")]
    Entry {
        /// The operator.
        operator: String,
        /// The cause.
        source: bincode::Error,
    },
}

/// The state of one worker's operators, for checkpoints: each operator registers its state as
/// it is built, and loads its entries then if the run resumes. A default store keeps nothing.
#[derive(Clone, Default)]
pub struct Store(Option<Rc<RefCell<Registry>>>);

struct Registry {
    operators: Vec<(&'static str, Rc<RefCell<dyn Saved>>)>,
    restore: Option<Restore>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Store"
        } else {
            "Store(off)"
        })
    }
}

/// What a store holds of an operator: something it can save.
pub(crate) trait Saved {
    /// The operator's state.
    fn durable(&mut self) -> &mut dyn Durable;
}

/// What a worker's part holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Saving {
    /// Entries written.
    pub entries: u64,
    /// Whether some section holds only changes: the part needs the parts before it.
    pub changes: bool,
}

impl Store {
    /// A store for a run with checkpoints; `restore` if it resumes from one.
    pub fn new(restore: Option<Restore>) -> Store {
        Store(Some(Rc::new(RefCell::new(Registry {
            operators: Vec::new(),
            restore,
        }))))
    }

    /// Registers the operator `name`, whose state `saved` holds, and loads its entries if the
    /// run resumes; returns the mark to take as received, if any.
    pub(crate) fn register<T: Saved + 'static>(
        &self,
        name: &'static str,
        saved: &Rc<RefCell<T>>,
    ) -> Option<(Time, Millis)> {
        let registry = self.0.as_ref()?;
        let mut registry = registry.borrow_mut();
        registry.operators.push((name, saved.clone()));
        let restore = registry.restore.as_mut()?;
        restore.load(name, saved.borrow_mut().durable());
        restore.mark()
    }

    /// Ends loading, once the dataflow is built: lets the checkpoint's bytes go, and says
    /// whether the state failed to load.
    pub fn finish_loading(&self) -> Option<String> {
        let mut registry = self.0.as_ref()?.borrow_mut();
        let error = registry.restore.take()?.error?;
        Some(error.to_string())
    }

    /// Writes this worker's part: every registered operator's entries, or, if `changes`, only
    /// the changes since the last part of those operators that record them. Call between
    /// epochs.
    pub fn save(&self, out: &mut dyn Write, changes: bool) -> io::Result<Saving> {
        let mut part = PartWriter::start(out)?;
        let mut saving = Saving::default();
        if let Some(registry) = &self.0 {
            for (name, operator) in &registry.borrow().operators {
                let mut operator = operator.borrow_mut();
                let state = operator.durable();
                let start = part.offset();
                let mut entries = Entries {
                    out: &mut part,
                    scratch: Vec::new(),
                    count: 0,
                };
                let kind = if changes && state.save_changes(&mut entries)? {
                    saving.changes = true;
                    Kind::Changes
                } else {
                    state.save(&mut entries)?;
                    state.track_changes();
                    Kind::All
                };
                let count = entries.count;
                saving.entries += count;
                part.section(name, kind, start, count);
            }
        }
        part.finish()?;
        Ok(saving)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::data::event::epoch_start;
    use std::sync::Arc;

    /// A set of numbers that records its changes.
    #[derive(Default)]
    struct Numbers {
        held: BTreeSet<u64>,
        changed: Option<Vec<u64>>,
    }

    impl Numbers {
        fn of(numbers: &[u64]) -> Self {
            Numbers {
                held: numbers.iter().copied().collect(),
                changed: None,
            }
        }
        fn set(&mut self, n: u64, present: bool) {
            if present {
                self.held.insert(n);
            } else {
                self.held.remove(&n);
            }
            if let Some(changed) = &mut self.changed {
                changed.push(n);
            }
        }
    }

    impl Durable for Numbers {
        fn save(&self, out: &mut Entries<'_>) -> io::Result<()> {
            self.held.iter().try_for_each(|n| out.put(*n, n))
        }
        fn load(&mut self, entry: &[u8]) -> Result<(), bincode::Error> {
            self.held.insert(decode(entry)?);
            Ok(())
        }
        fn track_changes(&mut self) {
            self.changed = Some(Vec::new());
        }
        fn save_changes(&mut self, out: &mut Entries<'_>) -> io::Result<bool> {
            let Some(changed) = self.changed.replace(Vec::new()) else {
                return Ok(false);
            };
            for n in changed.into_iter().collect::<BTreeSet<_>>() {
                match self.held.contains(&n) {
                    true => out.put(n, &Change::<u64, u64>::Put(n))?,
                    false => out.put(n, &Change::<u64, u64>::Remove(n))?,
                }
            }
            Ok(true)
        }
        fn load_change(&mut self, entry: &[u8]) -> Result<(), bincode::Error> {
            match decode::<Change<u64, u64>>(entry)? {
                Change::Put(n) => self.held.insert(n),
                Change::Remove(n) => self.held.remove(&n),
            };
            Ok(())
        }
    }

    impl Saved for Numbers {
        fn durable(&mut self) -> &mut dyn Durable {
            self
        }
    }

    fn registered(store: &Store, states: Vec<Numbers>) -> Vec<Rc<RefCell<Numbers>>> {
        let states: Vec<_> = states
            .into_iter()
            .map(|s| Rc::new(RefCell::new(s)))
            .collect();
        for (name, state) in ["a", "b"].iter().zip(&states) {
            store.register(name, state);
        }
        states
    }

    fn saved(store: &Store, changes: bool) -> Arc<Vec<u8>> {
        let mut out = Vec::new();
        store.save(&mut out, changes).unwrap();
        out.into()
    }

    fn held(state: &Rc<RefCell<Numbers>>) -> Vec<u64> {
        state.borrow().held.iter().copied().collect()
    }

    #[test]
    fn entries_are_repartitioned_by_route() {
        let parts: Vec<Vec<Arc<Vec<u8>>>> = [[vec![0, 2, 4], vec![10]], [vec![1, 3], vec![11, 13]]]
            .iter()
            .map(|[a, b]| {
                let store = Store::new(None);
                registered(&store, vec![Numbers::of(a), Numbers::of(b)]);
                vec![saved(&store, false)]
            })
            .collect();
        for (worker, peers) in [(0u64, 3u64), (1, 3), (2, 3)] {
            let keep = move |r: u64| r % peers == worker;
            let store = Store::new(Some(Restore::new(parts.clone(), true, keep, 5, Some(7))));
            let a = Rc::new(RefCell::new(Numbers::default()));
            let b = Rc::new(RefCell::new(Numbers::default()));
            let mark = store.register("a", &a);
            store.register("b", &b);
            assert_eq!(mark, Some((epoch_start(5), 7)));
            assert_eq!(store.finish_loading(), None);
            let want = |all: &[u64]| -> Vec<u64> {
                let mut want: Vec<u64> = all.iter().copied().filter(|n| keep(*n)).collect();
                want.sort();
                want
            };
            assert_eq!(held(&a), want(&[0, 2, 4, 1, 3]));
            assert_eq!(held(&b), want(&[10, 11, 13]));
        }
    }

    #[test]
    fn a_chain_of_changes_loads_to_the_state_it_was_saved_from() {
        let store = Store::new(None);
        let states = registered(&store, vec![Numbers::of(&[1, 2, 3]), Numbers::of(&[7])]);
        let mut chain = vec![saved(&store, true)]; // the first part has every entry
        states[0].borrow_mut().set(2, false);
        states[0].borrow_mut().set(9, true);
        chain.push(saved(&store, true));
        states[0].borrow_mut().set(2, true);
        states[1].borrow_mut().set(7, false);
        states[1].borrow_mut().set(8, true);
        chain.push(saved(&store, true));
        let loaded = |chain: Vec<Arc<Vec<u8>>>, filters| {
            let store = Store::new(Some(Restore::new(vec![chain], filters, |_| true, 1, None)));
            let states = registered(&store, vec![Numbers::default(), Numbers::default()]);
            assert_eq!(store.finish_loading(), None);
            (store, states)
        };
        for filters in [false, true] {
            let (_, got) = loaded(chain.clone(), filters);
            assert_eq!(held(&got[0]), vec![1, 2, 3, 9]);
            assert_eq!(held(&got[1]), vec![8]);
        }
        // A loaded chain goes on: the next part holds the changes since the load.
        let (store, got) = loaded(chain.clone(), false);
        got[0].borrow_mut().set(1, false);
        chain.push(saved(&store, true));
        let (_, got) = loaded(chain.clone(), false);
        assert_eq!(held(&got[0]), vec![2, 3, 9]);
        // Changes without the part they change are refused.
        let store = Store::new(Some(Restore::new(
            vec![chain[1..].to_vec()],
            false,
            |_| true,
            1,
            None,
        )));
        registered(&store, vec![Numbers::default(), Numbers::default()]);
        assert!(
            store
                .finish_loading()
                .unwrap()
                .contains("without the entries")
        );
    }

    #[test]
    fn a_truncated_part_is_an_error() {
        let store = Store::new(None);
        registered(&store, vec![Numbers::of(&[1, 2, 3]), Numbers::of(&[4])]);
        let part = saved(&store, false);
        for cut in [3, 9, 20, part.len() - 13] {
            let short: Arc<Vec<u8>> = part[..part.len() - cut].to_vec().into();
            let store = Store::new(Some(Restore::new(
                vec![vec![short]],
                false,
                |_| true,
                1,
                None,
            )));
            let b = Rc::new(RefCell::new(Numbers::default()));
            store.register("b", &b);
            assert!(
                store.finish_loading().unwrap().contains("truncated"),
                "cut {cut:?}"
            );
        }
    }
}
