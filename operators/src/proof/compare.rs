//! Comparing two table digests: are the tables equal, and if not, which windows differ.
//!
//! Both window lists are in ascending (start, end) order (as [`crate::proof::digest`] builds them and
//! [`check_digest`] checks), so one merge walk finds every window whose digest differs or that
//! only one side has, in O(windows), without looking at a single row.

use std::cmp::Ordering;

use crate::proof::digest::{TableDigest, WindowDigest, digest_windows};

/// A window that differs between two tables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowDifference {
    /// Window start, epoch ms.
    pub start: i64,
    /// Window end, epoch ms.
    pub end: i64,
    /// The window's digest in the first table, `None` if it has no rows there.
    pub a: Option<String>,
    /// The window's digest in the second table, `None` if it has no rows there.
    pub b: Option<String>,
}

/// The windows whose digests differ between `a` and `b`, in (start, end) order; empty exactly
/// when the tables are equal.
pub fn differing_windows(a: &TableDigest, b: &TableDigest) -> Vec<WindowDifference> {
    let only = |w: &WindowDigest, in_a: bool| WindowDifference {
        start: w.start,
        end: w.end,
        a: in_a.then(|| w.digest.clone()),
        b: (!in_a).then(|| w.digest.clone()),
    };
    let (mut left, mut right) = (a.windows.iter().peekable(), b.windows.iter().peekable());
    let mut out = Vec::new();
    loop {
        match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(x), None) => {
                out.push(only(x, true));
                left.next();
            }
            (None, Some(y)) => {
                out.push(only(y, false));
                right.next();
            }
            (Some(x), Some(y)) => match (x.start, x.end).cmp(&(y.start, y.end)) {
                Ordering::Less => {
                    out.push(only(x, true));
                    left.next();
                }
                Ordering::Greater => {
                    out.push(only(y, false));
                    right.next();
                }
                Ordering::Equal => {
                    if x.digest != y.digest {
                        out.push(WindowDifference {
                            start: x.start,
                            end: x.end,
                            a: Some(x.digest.clone()),
                            b: Some(y.digest.clone()),
                        });
                    }
                    left.next();
                    right.next();
                }
            },
        }
    }
    out
}

/// Checks a digest read from elsewhere (a `digests.json`): windows strictly ascending, each
/// digest 64 lowercase hex digits, and the table digest the one its windows give. `Err` says
/// what is wrong.
pub fn check_digest(digest: &TableDigest) -> Result<(), String> {
    let is_hex =
        |d: &str| d.len() == 64 && d.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    for (i, w) in digest.windows.iter().enumerate() {
        if !is_hex(&w.digest) {
            return Err(format!(
                "window {} ({}..{}) has digest {:?}, not 64 lowercase hex digits",
                i + 1,
                w.start,
                w.end,
                w.digest
            ));
        }
        if w.start >= w.end {
            return Err(format!(
                "window {} ({}..{}) is empty",
                i + 1,
                w.start,
                w.end
            ));
        }
        if let Some(prev) = i.checked_sub(1).map(|p| &digest.windows[p])
            && (prev.start, prev.end) >= (w.start, w.end)
        {
            return Err(format!(
                "window {} ({}..{}) does not follow window {} ({}..{}): windows must ascend",
                i + 1,
                w.start,
                w.end,
                i,
                prev.start,
                prev.end
            ));
        }
    }
    let table = digest_windows(digest.windows.clone()).table;
    if table != digest.table {
        return Err(format!(
            "its table digest {} is not the digest of its windows ({table})",
            digest.table
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(windows: &[(i64, &str)]) -> TableDigest {
        digest_windows(
            windows
                .iter()
                .map(|(start, d)| WindowDigest {
                    start: *start,
                    end: start + 10,
                    digest: d.repeat(64),
                })
                .collect(),
        )
    }

    #[test]
    fn equal_tables_have_no_differences() {
        let a = table(&[(0, "a"), (10, "b")]);
        assert!(differing_windows(&a, &a.clone()).is_empty());
        assert_eq!(check_digest(&a), Ok(()));
    }

    #[test]
    fn differences_in_window_order_with_one_sided_windows() {
        let a = table(&[(0, "a"), (10, "b"), (30, "d")]);
        let b = table(&[(10, "c"), (20, "e"), (30, "d"), (40, "f")]);
        let got: Vec<_> = differing_windows(&a, &b)
            .into_iter()
            .map(|d| {
                (
                    d.start,
                    d.a.map(|s| s[..1].to_owned()),
                    d.b.map(|s| s[..1].to_owned()),
                )
            })
            .collect();
        let s = |x: &str| Some(x.to_owned());
        assert_eq!(
            got,
            vec![
                (0, s("a"), None),
                (10, s("b"), s("c")),
                (20, None, s("e")),
                (40, None, s("f")),
            ]
        );
    }

    #[test]
    fn a_tampered_digest_is_caught() {
        let mut t = table(&[(0, "a"), (10, "b")]);
        t.windows[1].digest = "c".repeat(64);
        assert!(
            check_digest(&t)
                .unwrap_err()
                .contains("not the digest of its windows")
        );
        let mut t = table(&[(10, "a"), (0, "b")]);
        assert!(
            check_digest(&t)
                .unwrap_err()
                .contains("windows must ascend")
        );
        t.windows[0].digest = "A".repeat(64);
        assert!(
            check_digest(&t)
                .unwrap_err()
                .contains("not 64 lowercase hex")
        );
    }
}
