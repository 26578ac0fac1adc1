//! A section of every entry, kept as loaded and searched by route: a resumed worker finds an
//! entry there when its key is first needed, instead of decoding and inserting every entry
//! before the run goes on.
//!
//! The entries are indexed by route once, at load: a counting pass by the route's top 16 bits
//! places each entry's offset in its bucket, and each bucket is sorted (routes are hashes, so
//! buckets are small). Finding a route reads one bucket. An entry found is *taken*: the state
//! holds it from then on, so a taken entry is never found again, even if the state later drops
//! it. What was never taken is written as it was by the next checkpoint with every entry.

use std::sync::Arc;

use super::LoadError;
use super::layout::Section;

/// Bits of a route that choose its bucket.
const BUCKET_BITS: u32 = 16;

/// The entries of one section, in the part they were loaded from.
pub struct Base {
    part: Arc<Vec<u8>>,
    /// Where each bucket's entries begin in `entries`; one more at the end.
    buckets: Vec<u32>,
    /// Each entry's route and the offset of its header in `part`, by route within a bucket.
    entries: Vec<(u64, u64)>,
    /// One bit per entry of `entries`: taken.
    taken: Vec<u64>,
    live: usize,
}

impl std::fmt::Debug for Base {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Base({} of {} entries)", self.live, self.entries.len())
    }
}

impl Base {
    /// Indexes the entries of `section`, a section of `part` with every entry.
    pub(crate) fn new(part: Arc<Vec<u8>>, section: &Section<'_>) -> Result<Base, LoadError> {
        let mut headers = Vec::with_capacity(section.entries as usize);
        section.for_each_at(|route, at| {
            headers.push((route, at as u64));
            Ok(())
        })?;
        let mut buckets = vec![0u32; (1 << BUCKET_BITS) + 1];
        for (route, _) in &headers {
            buckets[bucket(*route) + 1] += 1;
        }
        for i in 1..buckets.len() {
            buckets[i] += buckets[i - 1];
        }
        let mut next = buckets.clone();
        let mut entries = vec![(0, 0); headers.len()];
        for header in headers {
            let slot = &mut next[bucket(header.0)];
            entries[*slot as usize] = header;
            *slot += 1;
        }
        for pair in buckets.windows(2) {
            entries[pair[0] as usize..pair[1] as usize].sort_unstable();
        }
        let live = entries.len();
        Ok(Base {
            part,
            buckets,
            taken: vec![0; live.div_ceil(64)],
            entries,
            live,
        })
    }

    /// Entries not taken.
    pub fn live(&self) -> usize {
        self.live
    }

    /// Takes the entry of `route` that `decode` accepts (it decodes an entry's bytes and
    /// returns it if its key is the one sought), if one is not taken.
    pub fn take<T>(&mut self, route: u64, mut decode: impl FnMut(&[u8]) -> Option<T>) -> Option<T> {
        let b = bucket(route);
        let (start, end) = (self.buckets[b] as usize, self.buckets[b + 1] as usize);
        let bucket = &self.entries[start..end];
        let first = start + bucket.partition_point(|(r, _)| *r < route);
        for i in first..end {
            let (r, at) = self.entries[i];
            if r != route {
                break;
            }
            if self.is_taken(i) {
                continue;
            }
            if let Some(found) = decode(entry_at(&self.part, at)) {
                self.taken[i / 64] |= 1 << (i % 64);
                self.live -= 1;
                return Some(found);
            }
        }
        None
    }

    /// Every entry not taken, with its route.
    pub fn remaining(&self) -> impl Iterator<Item = (u64, &[u8])> + '_ {
        self.entries
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.is_taken(*i))
            .map(|(_, (route, at))| (*route, entry_at(&self.part, *at)))
    }

    fn is_taken(&self, i: usize) -> bool {
        self.taken[i / 64] & (1 << (i % 64)) != 0
    }
}

fn bucket(route: u64) -> usize {
    (route >> (64 - BUCKET_BITS)) as usize
}

/// The bytes of the entry whose header is at `at` (its bounds were checked at load).
fn entry_at(part: &[u8], at: u64) -> &[u8] {
    let at = at as usize + 8;
    let len = u32::from_le_bytes(part[at..at + 4].try_into().expect("4")) as usize;
    &part[at + 4..at + 4 + len]
}

/// Decodes an entry taken from a base. Its part's SHA-256 was checked and its format version
/// read, so an entry that does not decode is a defect of amend, not of the checkpoint.
pub(crate) fn decode_taken<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> T {
    super::decode(bytes).expect("an entry of a checked state part decodes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incremental::durable::layout::{EntryOut, Kind, PartWriter, section};

    fn part(entries: &[(u64, Vec<u8>)]) -> Arc<Vec<u8>> {
        let mut out = Vec::new();
        let mut writer = PartWriter::start(&mut out).unwrap();
        let start = writer.offset();
        for (route, bytes) in entries {
            writer.entry(*route, bytes).unwrap();
        }
        writer.section("s", Kind::All, start, entries.len() as u64);
        writer.finish().unwrap();
        Arc::new(out)
    }

    fn base(entries: &[(u64, Vec<u8>)]) -> Base {
        let part = part(entries);
        let section = section(&part, "s").unwrap().unwrap();
        Base::new(Arc::clone(&part), &section).unwrap()
    }

    fn key(want: &[u8]) -> impl FnMut(&[u8]) -> Option<Vec<u8>> + '_ {
        move |bytes| (bytes == want).then(|| bytes.to_vec())
    }

    #[test]
    fn an_entry_is_found_by_route_and_key_once() {
        let entries: Vec<(u64, Vec<u8>)> = [
            (u64::MAX, "z"),
            (5, "a"),
            (5, "b"),
            (1 << 63, "m"),
            (0, "0"),
        ]
        .iter()
        .map(|(r, k)| (*r, k.as_bytes().to_vec()))
        .collect();
        let mut base = base(&entries);
        assert_eq!(base.live(), 5);
        assert_eq!(base.take(5, key(b"b")), Some(b"b".to_vec()));
        assert_eq!(base.take(5, key(b"b")), None, "taken once");
        assert_eq!(base.take(6, key(b"a")), None, "another route");
        assert_eq!(base.take(5, key(b"a")), Some(b"a".to_vec()));
        assert_eq!(base.take(u64::MAX, key(b"z")), Some(b"z".to_vec()));
        assert_eq!(base.live(), 2);
        let mut rest: Vec<(u64, Vec<u8>)> =
            base.remaining().map(|(r, b)| (r, b.to_vec())).collect();
        rest.sort();
        assert_eq!(rest, vec![(0, b"0".to_vec()), (1 << 63, b"m".to_vec())]);
    }

    #[test]
    fn many_entries_each_found_and_the_rest_remaining() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        // Some routes repeat: entries of different keys with one route.
        let entries: Vec<(u64, Vec<u8>)> = (0..20_000u32)
            .map(|i| {
                let route = if i % 10 == 0 { 42 } else { next() };
                (route, i.to_le_bytes().to_vec())
            })
            .collect();
        let mut base = base(&entries);
        for (route, bytes) in entries.iter().step_by(2) {
            assert_eq!(base.take(*route, key(bytes)).as_ref(), Some(bytes));
        }
        assert_eq!(base.live(), 10_000);
        let mut rest: Vec<(u64, Vec<u8>)> =
            base.remaining().map(|(r, b)| (r, b.to_vec())).collect();
        let mut want: Vec<(u64, Vec<u8>)> = entries.iter().skip(1).step_by(2).cloned().collect();
        rest.sort();
        want.sort();
        assert_eq!(rest, want);
    }
}
