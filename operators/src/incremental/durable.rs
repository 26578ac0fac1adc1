//! Operator state that a checkpoint saves and a resumed run loads.
//!
//! Every stateful operator's state is a set of entries, each owned by the worker its exchange
//! routes it to ([`Durable`]). A worker's part of a checkpoint ([`Store::save`]) is a header and
//! one section per operator, by name: each entry with its route hash and its bytes (bincode),
//! so that a loading worker can skip the entries of other workers without decoding them. A
//! resumed run gives every worker the parts to load ([`Restore`]) and the workers keep the
//! entries routed to them: with as many workers as before, each loads its own part; with
//! another number, every worker reads every part and the state is re-partitioned.
//!
//! Part layout (little-endian): `AMENDSTA`, format version `u32`; then per section the name
//! (`u16` length, bytes), its entries (`u64` route, `u32` length, bytes), and an end marker
//! (`u64` 0, `u32` `u32::MAX`).

use std::cell::RefCell;
use std::fmt;
use std::io::{self, Write};
use std::rc::Rc;
use std::sync::Arc;

use bincode::Options;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::data::event::{Time, epoch_start};
use crate::data::time::Millis;

/// The first bytes of a part.
const MAGIC: &[u8; 8] = b"AMENDSTA";
/// The version of the part layout and of every entry's encoding.
pub const FORMAT_VERSION: u32 = 2;
const END: u32 = u32::MAX;

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
    out: &'a mut dyn Write,
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
        let len = u32::try_from(self.scratch.len())
            .ok()
            .filter(|len| *len != END)
            .ok_or_else(|| io::Error::other("a state entry is larger than 4 GiB"))?;
        self.out.write_all(&route.to_le_bytes())?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(&self.scratch)?;
        self.count += 1;
        Ok(())
    }
}

/// Why a part cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Not a part, or one of another format version.
    #[error("not a state part of format version {FORMAT_VERSION}")]
    Header,
    /// The part ends inside a section.
    #[error("the state part is truncated")]
    Truncated,
    /// An entry does not decode.
    #[error("a state entry of {operator} does not decode: {source}")]
    Entry {
        /// The operator.
        operator: String,
        /// The cause.
        source: bincode::Error,
    },
}

/// What a resumed worker loads: the parts of a checkpoint, which of their entries are its
/// own, and the marks the checkpointed epochs had sent.
pub struct Restore {
    parts: Vec<Arc<[u8]>>,
    keep: Box<dyn Fn(u64) -> bool>,
    /// The epoch after the checkpoint, and the greatest event time read before it.
    mark: Option<(u64, Millis)>,
    error: Option<LoadError>,
}

impl Restore {
    /// Loads, from `parts`, the entries whose route `keep` accepts; the run resumes at epoch
    /// `next_epoch`, with `max_ts` the greatest event time read before it.
    pub fn new(
        parts: Vec<Arc<[u8]>>,
        keep: impl Fn(u64) -> bool + 'static,
        next_epoch: u64,
        max_ts: Option<Millis>,
    ) -> Restore {
        Restore {
            parts,
            keep: Box::new(keep),
            mark: max_ts.map(|ts| (next_epoch, ts)),
            error: None,
        }
    }

    /// The mark every worker sent at the start of the resumed epoch, as a received one.
    pub(crate) fn mark(&self) -> Option<(Time, Millis)> {
        self.mark.map(|(epoch, ts)| (epoch_start(epoch), ts))
    }

    /// Loads the entries of `operator` that are this worker's into `state`.
    fn load(&mut self, operator: &str, state: &mut dyn Durable) {
        if self.error.is_some() {
            return;
        }
        let mut count = 0;
        for part in &self.parts {
            let counted = for_each_entry(part, operator, |route, _| {
                count += usize::from((self.keep)(route));
                Ok(())
            });
            if let Err(e) = counted {
                self.error = Some(e);
                return;
            }
        }
        state.reserve(count);
        for part in &self.parts {
            let result = for_each_entry(part, operator, |route, entry| {
                if (self.keep)(route) {
                    state.load(entry).map_err(|source| LoadError::Entry {
                        operator: operator.to_string(),
                        source,
                    })?;
                }
                Ok(())
            });
            if let Err(e) = result {
                self.error = Some(e);
                return;
            }
        }
    }
}

/// Calls `f` with every entry of the section `operator` of `part`.
fn for_each_entry(
    part: &[u8],
    operator: &str,
    mut f: impl FnMut(u64, &[u8]) -> Result<(), LoadError>,
) -> Result<(), LoadError> {
    let mut rest = part
        .strip_prefix(MAGIC.as_slice())
        .and_then(|r| r.strip_prefix(FORMAT_VERSION.to_le_bytes().as_slice()))
        .ok_or(LoadError::Header)?;
    while !rest.is_empty() {
        let (name_len, r) = take(rest, 2)?;
        let (name, r) = take(
            r,
            u16::from_le_bytes(name_len.try_into().expect("2")) as usize,
        )?;
        let ours = name == operator.as_bytes();
        rest = r;
        loop {
            let (route, r) = take(rest, 8)?;
            let (len, r) = take(r, 4)?;
            let len = u32::from_le_bytes(len.try_into().expect("4"));
            if len == END {
                rest = r;
                break;
            }
            let (entry, r) = take(r, len as usize)?;
            if ours {
                f(u64::from_le_bytes(route.try_into().expect("8")), entry)?;
            }
            rest = r;
        }
    }
    Ok(())
}

fn take(bytes: &[u8], n: usize) -> Result<(&[u8], &[u8]), LoadError> {
    (bytes.len() >= n)
        .then(|| bytes.split_at(n))
        .ok_or(LoadError::Truncated)
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
    fn save(&self, out: &mut Entries<'_>) -> io::Result<()>;
}

impl Store {
    /// A store for a run with checkpoints; `restore` if it resumes from one.
    pub fn new(restore: Option<Restore>) -> Store {
        Store(Some(Rc::new(RefCell::new(Registry {
            operators: Vec::new(),
            restore,
        }))))
    }

    /// Registers the operator `name`, whose state `state` reaches through `get`, and loads its
    /// entries if the run resumes; returns the mark to take as received, if any.
    pub(crate) fn register<T: Saved + 'static>(
        &self,
        name: &'static str,
        saved: &Rc<RefCell<T>>,
        get: impl FnOnce(&mut T) -> &mut dyn Durable,
    ) -> Option<(Time, Millis)> {
        let registry = self.0.as_ref()?;
        let mut registry = registry.borrow_mut();
        registry.operators.push((name, saved.clone()));
        let restore = registry.restore.as_mut()?;
        restore.load(name, get(&mut saved.borrow_mut()));
        restore.mark()
    }

    /// Whether a resumed run's state failed to load; call after building the dataflow.
    pub fn load_error(&self) -> Option<String> {
        let registry = self.0.as_ref()?.borrow();
        let error = registry.restore.as_ref()?.error.as_ref()?;
        Some(error.to_string())
    }

    /// Writes this worker's part: every registered operator's entries. Call between epochs.
    pub fn save(&self, out: &mut dyn Write) -> io::Result<u64> {
        out.write_all(MAGIC)?;
        out.write_all(&FORMAT_VERSION.to_le_bytes())?;
        let Some(registry) = &self.0 else {
            return Ok(0);
        };
        let mut count = 0;
        for (name, operator) in &registry.borrow().operators {
            out.write_all(&(name.len() as u16).to_le_bytes())?;
            out.write_all(name.as_bytes())?;
            let mut entries = Entries {
                out: &mut *out,
                scratch: Vec::new(),
                count: 0,
            };
            operator.borrow().save(&mut entries)?;
            count += entries.count;
            out.write_all(&0u64.to_le_bytes())?;
            out.write_all(&END.to_le_bytes())?;
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Numbers(Vec<u64>);

    impl Durable for Numbers {
        fn save(&self, out: &mut Entries<'_>) -> io::Result<()> {
            self.0.iter().try_for_each(|n| out.put(*n, n))
        }
        fn load(&mut self, entry: &[u8]) -> Result<(), bincode::Error> {
            self.0.push(decode(entry)?);
            Ok(())
        }
    }

    impl Saved for Numbers {
        fn save(&self, out: &mut Entries<'_>) -> io::Result<()> {
            Durable::save(self, out)
        }
    }

    fn saved(numbers: &[Vec<u64>]) -> Vec<u8> {
        let store = Store::new(None);
        for (name, n) in ["a", "b"].iter().zip(numbers) {
            let state = Rc::new(RefCell::new(Numbers(n.clone())));
            store.register(name, &state, |s| s as &mut dyn Durable);
        }
        let mut out = Vec::new();
        store.save(&mut out).unwrap();
        out
    }

    #[test]
    fn entries_are_repartitioned_by_route() {
        let parts: Vec<Arc<[u8]>> = vec![
            saved(&[vec![0, 2, 4], vec![10]]).into(),
            saved(&[vec![1, 3], vec![11, 13]]).into(),
        ];
        for (worker, peers) in [(0u64, 3u64), (1, 3), (2, 3)] {
            let restore = Restore::new(parts.clone(), move |r| r % peers == worker, 5, Some(7));
            let store = Store::new(Some(restore));
            let a = Rc::new(RefCell::new(Numbers::default()));
            let b = Rc::new(RefCell::new(Numbers::default()));
            let mark = store.register("a", &a, |s| s as &mut dyn Durable);
            store.register("b", &b, |s| s as &mut dyn Durable);
            assert_eq!(mark, Some((epoch_start(5), 7)));
            assert_eq!(store.load_error(), None);
            let want = |all: &[u64]| -> Vec<u64> {
                all.iter()
                    .copied()
                    .filter(|n| n % peers == worker)
                    .collect()
            };
            assert_eq!(a.borrow().0, want(&[0, 2, 4, 1, 3]));
            assert_eq!(b.borrow().0, want(&[10, 11, 13]));
        }
    }

    #[test]
    fn a_truncated_part_is_an_error() {
        let part = saved(&[vec![1, 2, 3], vec![4]]);
        let cut: Arc<[u8]> = part[..part.len() - 3].to_vec().into();
        let store = Store::new(Some(Restore::new(vec![cut], |_| true, 1, None)));
        let a = Rc::new(RefCell::new(Numbers::default()));
        store.register("b", &a, |s| s as &mut dyn Durable);
        assert!(store.load_error().unwrap().contains("truncated"));
    }
}
