//! Table digests: SHA-256 fingerprints that prove two aggregate tables equal.
//!
//! The digest of one window is the lowercase hex SHA-256 of its rows in ascending byte order
//! of key, each written `<byte length of key>:<key>|<count>|<sum>|<min>|<max>\n` with canonical
//! decimals. The table digest is the SHA-256 of `<start ms>:<end ms>:<window digest>\n` for
//! each window in ascending (start, end) order. Two tables are equal exactly when their table
//! digests are; a differing window is found by comparing window digests alone.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::data::agg::Agg;
use crate::data::decimal::Scale;
use crate::data::window::Window;

/// The digest of one window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowDigest {
    /// Window start, epoch ms.
    pub start: i64,
    /// Window end, epoch ms.
    pub end: i64,
    /// Lowercase hex SHA-256 of the window's rows.
    pub digest: String,
}

/// The digests of a whole table (`digests.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDigest {
    /// Lowercase hex SHA-256 over the window digests.
    pub table: String,
    /// One entry per window, ascending by (start, end).
    pub windows: Vec<WindowDigest>,
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

/// Appends the row text of one (key, aggregates) to `out`.
fn write_row_text(out: &mut Vec<u8>, key: &str, agg: &Agg, scale: Scale) {
    let mut number = itoa::Buffer::new();
    out.extend_from_slice(number.format(key.len()).as_bytes());
    out.push(b':');
    out.extend_from_slice(key.as_bytes());
    out.push(b'|');
    out.extend_from_slice(number.format(agg.count).as_bytes());
    out.push(b'|');
    match agg.sum {
        Some(sum) => sum.write_canonical(scale, out),
        None => out.extend_from_slice(b"overflow"),
    }
    out.push(b'|');
    agg.min.write_canonical(scale, out);
    out.push(b'|');
    agg.max.write_canonical(scale, out);
    out.push(b'\n');
}

/// Row text is hashed in blocks of about this many bytes: one hasher call per block, not per
/// row.
const HASH_BLOCK: usize = 1 << 16;

/// Digests a table given in (window, key) order, as a `BTreeMap` of rows iterates it: each
/// window's run of rows through [`digest_window`].
pub fn digest_table<'a>(
    rows: impl IntoIterator<Item = (&'a (Window, CompactString), &'a Agg)>,
    scale: Scale,
) -> TableDigest {
    let mut rows = rows.into_iter().peekable();
    let mut windows = Vec::new();
    let none = WindowMarks::default();
    while let Some(&(&(window, _), _)) = rows.peek() {
        let rows = &mut rows;
        let run = move |_: Option<&CompactString>| {
            std::iter::from_fn(move || rows.next_if(|((w, _), _)| *w == window))
                .map(|((_, key), agg)| (key, agg))
        };
        windows.extend(digest_window(window, &none, None, run, scale).0);
    }
    digest_windows(windows)
}

/// Rows between two checkpoints of a window's hash ([`WindowMarks`]).
const MARK_ROWS: usize = 256;

/// Checkpoints of one window's hash: the hasher's state before every 256th row, with
/// that row's key. A change re-hashes the window from the last checkpoint at or before the
/// least key it changed (the rows before it are as they were) instead of from the first row:
/// half the window, on average, for a change at a random key.
#[derive(Clone, Debug, Default)]
pub struct WindowMarks(Vec<(CompactString, Sha256)>);

/// The digest of `window`, whose rows in key order `rows_from(key)` gives from `key` on (from
/// the first row for `None`), re-hashed from the last of `marks` at or before `changed` (the
/// least key changed since `marks` were taken; `None` re-hashes every row). Returns the
/// digest (`None` for a window without rows) and the window's marks now.
pub fn digest_window<'a, R>(
    window: Window,
    marks: &WindowMarks,
    changed: Option<&CompactString>,
    rows_from: impl FnOnce(Option<&CompactString>) -> R,
    scale: Scale,
) -> (Option<WindowDigest>, WindowMarks)
where
    R: Iterator<Item = (&'a CompactString, &'a Agg)>,
{
    let kept = changed.map_or(0, |changed| {
        marks.0.partition_point(|(key, _)| key <= changed)
    });
    let mut marks = WindowMarks(marks.0[..kept].to_vec());
    let (mut hasher, start) = match marks.0.last() {
        Some((key, state)) => (state.clone(), Some(key.clone())),
        None => (Sha256::new(), None),
    };
    let mut text = Vec::with_capacity(HASH_BLOCK + 256);
    let mut rows = 0;
    for (key, agg) in rows_from(start.as_ref()) {
        // The first row is the kept mark's own (or the window's first): no new mark there.
        if rows > 0 && rows % MARK_ROWS == 0 {
            hasher.update(&text);
            text.clear();
            marks.0.push((key.clone(), hasher.clone()));
        } else if text.len() >= HASH_BLOCK {
            hasher.update(&text);
            text.clear();
        }
        write_row_text(&mut text, key, agg, scale);
        rows += 1;
    }
    if rows == 0 && start.is_none() {
        return (None, WindowMarks::default());
    }
    hasher.update(&text);
    let digest = WindowDigest {
        start: window.start,
        end: window.end,
        digest: hex(&hasher.finalize()),
    };
    (Some(digest), marks)
}

/// The table digest over window digests given in ascending (start, end) order.
pub fn digest_windows(windows: Vec<WindowDigest>) -> TableDigest {
    TableDigest {
        table: table_digest(&windows),
        windows,
    }
}

/// The table digest over window digests given in ascending (start, end) order, without
/// building the list.
pub fn table_digest<'a>(windows: impl IntoIterator<Item = &'a WindowDigest>) -> String {
    table_digest_from(Sha256::new(), windows, |_, _| {})
}

/// Windows between two checkpoints of the table digest's hash.
pub const TABLE_MARK_WINDOWS: usize = 32;

/// The table digest over `windows` (ascending), hashed on from `table`, the state after the
/// windows before them; `mark` is given every [`TABLE_MARK_WINDOWS`]th window after the first
/// with the state before its line, a checkpoint to hash on from later.
pub fn table_digest_from<'a>(
    mut table: Sha256,
    windows: impl IntoIterator<Item = &'a WindowDigest>,
    mut mark: impl FnMut(&WindowDigest, &Sha256),
) -> String {
    let mut text = Vec::with_capacity(4096);
    let mut number = itoa::Buffer::new();
    for (i, w) in windows.into_iter().enumerate() {
        if i > 0 && i % TABLE_MARK_WINDOWS == 0 {
            table.update(&text);
            text.clear();
            mark(w, &table);
        } else if text.len() >= HASH_BLOCK {
            table.update(&text);
            text.clear();
        }
        text.extend_from_slice(number.format(w.start).as_bytes());
        text.push(b':');
        text.extend_from_slice(number.format(w.end).as_bytes());
        text.push(b':');
        text.extend_from_slice(w.digest.as_bytes());
        text.push(b'\n');
    }
    table.update(&text);
    hex(&table.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::decimal::Decimal;
    use std::collections::BTreeMap;

    fn agg(count: u64, sum: i128, min: i128, max: i128) -> Agg {
        Agg {
            count,
            sum: Some(Decimal(sum)),
            min: Decimal(min),
            max: Decimal(max),
        }
    }

    fn sha(text: &str) -> String {
        hex(&Sha256::digest(text.as_bytes()))
    }

    #[test]
    fn known_answer_for_a_tiny_table() {
        let scale = Scale::new(2).unwrap();
        let w1 = Window {
            start: 0,
            end: 60_000,
        };
        let w2 = Window {
            start: 60_000,
            end: 120_000,
        };
        let mut rows = BTreeMap::new();
        rows.insert((w1, "b".into()), agg(1, -5, -5, -5));
        rows.insert((w1, "a".into()), agg(2, 3050, 1000, 2050));
        rows.insert((w2, "é".into()), agg(1, 0, 0, 0));
        let digest = digest_table(&rows, scale);
        // Hand-written hash inputs: keys in byte order, byte lengths, canonical decimals.
        let d1 = sha("1:a|2|30.5|10|20.5\n1:b|1|-0.05|-0.05|-0.05\n");
        let d2 = sha("2:é|1|0|0|0\n");
        assert_eq!(digest.windows[0].digest, d1);
        assert_eq!(digest.windows[1].digest, d2);
        assert_eq!(
            digest.table,
            sha(&format!("0:60000:{d1}\n60000:120000:{d2}\n"))
        );
        assert_eq!(
            sha(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn empty_table_is_the_hash_of_nothing() {
        let digest = digest_table(&BTreeMap::new(), Scale::DEFAULT);
        assert!(digest.windows.is_empty());
        assert_eq!(digest.table, sha(""));
    }

    #[test]
    fn one_unit_changes_one_window_and_the_table() {
        let w = |s| Window {
            start: s,
            end: s + 10,
        };
        let mut rows = BTreeMap::new();
        for s in [0, 10, 20] {
            rows.insert((w(s), "k".into()), agg(1, 7, 7, 7));
        }
        let before = digest_table(&rows, Scale::DEFAULT);
        rows.insert((w(10), "k".into()), agg(1, 8, 8, 8));
        let after = digest_table(&rows, Scale::DEFAULT);
        assert_ne!(before.table, after.table);
        let changed: Vec<_> = (0..3)
            .filter(|i| before.windows[*i] != after.windows[*i])
            .collect();
        assert_eq!(changed, vec![1]);
    }
}
