//! The byte layout of a worker's part: sections of entries, and an index at the end that says
//! where each section is, what it holds and how many entries, so that a loading worker finds
//! an operator's section without reading the others.
//!
//! Layout (little-endian): `AMENDSTA`, format version `u32`; the sections' entries, one after
//! the other (each entry: `u64` route, `u32` length, its bytes); the index: per section its
//! name (`u16` length, bytes), its kind (`u8`: 0 every entry, 1 the changes since the previous
//! part of its chain), and its offset, byte length and entry count (`u64` each); and last the
//! index's offset (`u64`) and `AMENDEND`.

use std::io::{self, Write};

use super::LoadError;

/// The first bytes of a part.
const MAGIC: &[u8; 8] = b"AMENDSTA";
/// The last bytes of a part, after the index's offset.
const END: &[u8; 8] = b"AMENDEND";
/// The version of the part layout and of every entry's encoding.
pub const FORMAT_VERSION: u32 = 3;

/// What a section holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Every entry of the operator's state.
    All,
    /// The entries that changed since the previous part of the chain: each a put or a removal.
    Changes,
}

/// Writes a part: counts what passes so the index can say where each section is.
pub(crate) struct PartWriter<W> {
    out: W,
    at: u64,
    index: Vec<(&'static str, Kind, u64, u64, u64)>,
}

/// Where entries go.
pub(crate) trait EntryOut {
    /// Writes one entry, routed by `route`.
    fn entry(&mut self, route: u64, bytes: &[u8]) -> io::Result<()>;
}

impl<W: Write> EntryOut for PartWriter<W> {
    fn entry(&mut self, route: u64, bytes: &[u8]) -> io::Result<()> {
        let len = u32::try_from(bytes.len())
            .map_err(|_| io::Error::other("a state entry is larger than 4 GiB"))?;
        self.write(&route.to_le_bytes())?;
        self.write(&len.to_le_bytes())?;
        self.write(bytes)
    }
}

impl<W: Write> PartWriter<W> {
    /// Starts a part in `out`.
    pub fn start(out: W) -> io::Result<Self> {
        let mut writer = PartWriter {
            out,
            at: 0,
            index: Vec::new(),
        };
        writer.write(MAGIC)?;
        writer.write(&FORMAT_VERSION.to_le_bytes())?;
        Ok(writer)
    }

    /// Where the next section begins.
    pub fn offset(&self) -> u64 {
        self.at
    }

    /// Records the section `name` of `kind`, which began at `start` and holds `entries`.
    pub fn section(&mut self, name: &'static str, kind: Kind, start: u64, entries: u64) {
        self.index
            .push((name, kind, start, self.at - start, entries));
    }

    /// Writes the index and ends the part.
    pub fn finish(mut self) -> io::Result<()> {
        let index_at = self.at;
        for (name, kind, start, len, entries) in std::mem::take(&mut self.index) {
            self.write(&(name.len() as u16).to_le_bytes())?;
            self.write(name.as_bytes())?;
            self.write(&[match kind {
                Kind::All => 0,
                Kind::Changes => 1,
            }])?;
            for n in [start, len, entries] {
                self.write(&n.to_le_bytes())?;
            }
        }
        self.write(&index_at.to_le_bytes())?;
        self.write(END)
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.at += bytes.len() as u64;
        Ok(())
    }
}

/// One section of a part, found through its index.
#[derive(Clone, Copy)]
pub(crate) struct Section<'a> {
    pub kind: Kind,
    pub entries: u64,
    /// Where the section begins in its part.
    start: usize,
    bytes: &'a [u8],
}

impl<'a> Section<'a> {
    /// Calls `f` with every entry's route and bytes.
    pub fn for_each(
        &self,
        mut f: impl FnMut(u64, &'a [u8]) -> Result<(), LoadError>,
    ) -> Result<(), LoadError> {
        self.walk(|route, _, entry| f(route, entry))
    }

    /// Calls `f` with every entry's route and the offset of its header in the part.
    pub fn for_each_at(
        &self,
        mut f: impl FnMut(u64, usize) -> Result<(), LoadError>,
    ) -> Result<(), LoadError> {
        self.walk(|route, at, _| f(route, at))
    }

    fn walk(
        &self,
        mut f: impl FnMut(u64, usize, &'a [u8]) -> Result<(), LoadError>,
    ) -> Result<(), LoadError> {
        let mut rest = self.bytes;
        while !rest.is_empty() {
            let at = self.start + (self.bytes.len() - rest.len());
            let (route, r) = take(rest, 8)?;
            let (len, r) = take(r, 4)?;
            let (entry, r) = take(r, u32::from_le_bytes(len.try_into().expect("4")) as usize)?;
            f(u64::from_le_bytes(route.try_into().expect("8")), at, entry)?;
            rest = r;
        }
        Ok(())
    }
}

/// Finds the section `name` of `part`: `None` if it has none.
pub(crate) fn section<'a>(part: &'a [u8], name: &str) -> Result<Option<Section<'a>>, LoadError> {
    let body = part
        .strip_prefix(MAGIC.as_slice())
        .and_then(|r| r.strip_prefix(FORMAT_VERSION.to_le_bytes().as_slice()))
        .ok_or(LoadError::Header)?;
    let header = part.len() - body.len();
    let tail = part
        .strip_suffix(END.as_slice())
        .filter(|rest| rest.len() >= header + 8)
        .ok_or(LoadError::Truncated)?;
    let (tail, index_at) = tail.split_at(tail.len() - 8);
    let index_at = u64::from_le_bytes(index_at.try_into().expect("8")) as usize;
    let mut index = tail
        .get(index_at..)
        .filter(|_| index_at >= header)
        .ok_or(LoadError::Truncated)?;
    while !index.is_empty() {
        let (len, r) = take(index, 2)?;
        let (found, r) = take(r, u16::from_le_bytes(len.try_into().expect("2")) as usize)?;
        let (kind, r) = take(r, 1)?;
        let (numbers, r) = take(r, 24)?;
        index = r;
        if found != name.as_bytes() {
            continue;
        }
        let n = |i: usize| u64::from_le_bytes(numbers[i * 8..i * 8 + 8].try_into().expect("8"));
        let kind = match kind[0] {
            0 => Kind::All,
            1 => Kind::Changes,
            _ => return Err(LoadError::Truncated),
        };
        let (start, len) = (n(0) as usize, n(1) as usize);
        let bytes = start
            .checked_add(len)
            .filter(|end| start >= header && *end <= index_at)
            .map(|end| &part[start..end])
            .ok_or(LoadError::Truncated)?;
        return Ok(Some(Section {
            kind,
            entries: n(2),
            start,
            bytes,
        }));
    }
    Ok(None)
}

fn take(bytes: &[u8], n: usize) -> Result<(&[u8], &[u8]), LoadError> {
    (bytes.len() >= n)
        .then(|| bytes.split_at(n))
        .ok_or(LoadError::Truncated)
}
