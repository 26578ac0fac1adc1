//! An index of hash-table entries by when they expire, so that state whose time has passed
//! is released without visiting the rest.
//!
//! `ResolveIds` forgets ids whose current record expires at or before the lateness horizon;
//! `Aggregate` forgets groups whose window ends at or before it. Both keep their entries in a
//! [`HashTable`] found by a hash, and note each entry's hash under its expiry when it is
//! inserted or changed. An entry noted more than once (an id whose current record changed)
//! leaves stale notes behind: releasing re-checks each entry's own expiry, so a stale note
//! removes nothing that has not expired.

use std::collections::BTreeMap;

use hashbrown::hash_table::HashTable;
use serde::{Deserialize, Serialize};

use crate::data::time::Millis;

/// Hashes of entries by their expiry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ExpiryIndex {
    by_expiry: BTreeMap<Millis, Vec<u64>>,
}

impl ExpiryIndex {
    /// Notes that the entry with hash `hash` expires at `expiry`.
    pub(crate) fn note(&mut self, expiry: Millis, hash: u64) {
        self.by_expiry.entry(expiry).or_default().push(hash);
    }

    /// Removes from `table` every entry noted to expire at or before `horizon` for which
    /// `expired` holds, and gives each to `removed`.
    pub(crate) fn release<T>(
        &mut self,
        horizon: Millis,
        table: &mut HashTable<T>,
        expired: impl Fn(&T) -> bool,
        mut removed: impl FnMut(T),
    ) {
        while let Some(entry) = self.by_expiry.first_entry() {
            if *entry.key() > horizon {
                break;
            }
            for hash in entry.remove() {
                while let Ok(found) = table.find_entry(hash, &expired) {
                    removed(found.remove().0);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_what_expired_and_keeps_what_moved_on() {
        // Entries (name, expiry), found by a hash that two of them share.
        let mut table: HashTable<(&str, Millis)> = HashTable::new();
        let hasher = |e: &(&str, Millis)| e.0.len() as u64;
        let mut index = ExpiryIndex::default();
        for entry in [("a", 10), ("bb", 20), ("c", 30)] {
            table.insert_unique(hasher(&entry), entry, hasher);
            index.note(entry.1, hasher(&entry));
        }
        // "c" moved on to expire later: its first note is stale.
        table.find_mut(1, |e| e.0 == "c").unwrap().1 = 50;
        index.note(50, 1);
        index.release(30, &mut table, |e| e.1 <= 30, drop);
        let mut left: Vec<_> = table.iter().copied().collect();
        left.sort();
        assert_eq!(left, vec![("c", 50)]);
        index.release(50, &mut table, |e| e.1 <= 50, drop);
        assert!(table.is_empty());
    }
}
