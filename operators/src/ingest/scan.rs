//! A fast scan of the common JSON line: one flat object whose strings hold no escapes.
//!
//! [`scan`] finds the raw text of each known field exactly as serde_json's `RawValue` gives
//! it (a string with its quotes, a number as written, `true`, `false` or `null`), or returns
//! `None` for any line it does not fully understand: an escape in a string, a nested object or
//! array, a known field given twice, anything that is not valid JSON. The decoder then reads
//! that line with serde_json, which gives the same fields or the reason the line is bad. The
//! scan accepts only what serde_json accepts and takes from it what serde_json takes, so it
//! changes no result: it only spares most lines the general parser.

use crate::ingest::decode::{Field, FieldNames, Fields};

/// The raw text of the known fields of `line`, if it is a flat JSON object the scan covers.
/// A `null` in an optional field is left out, as absent.
pub(crate) fn scan<'a>(line: &'a str, names: &FieldNames) -> Option<Fields<&'a str>> {
    let bytes = line.as_bytes();
    let mut at = skip_space(bytes, 0);
    if *bytes.get(at)? != b'{' {
        return None;
    }
    let mut fields = Fields::default();
    at = skip_space(bytes, at + 1);
    if bytes.get(at) == Some(&b'}') {
        at += 1;
    } else {
        loop {
            let (start, end) = string_at(bytes, at)?;
            let name = &line[start + 1..end - 1];
            at = skip_space(bytes, end);
            if *bytes.get(at)? != b':' {
                return None;
            }
            at = skip_space(bytes, at + 1);
            let value_start = at;
            at = value_end(bytes, at)?;
            let raw = &line[value_start..at];
            if let Some(field) = names.field(name) {
                if fields.get(field).is_some() {
                    return None; // the general parser names the duplicate
                }
                if !(raw == "null" && field as usize >= Field::Op as usize) {
                    fields.set(field, raw);
                }
            }
            at = skip_space(bytes, at);
            match *bytes.get(at)? {
                b',' => at = skip_space(bytes, at + 1),
                b'}' => {
                    at += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    (skip_space(bytes, at) == bytes.len()).then_some(fields)
}

/// The offset of the first byte at or after `at` that is not JSON whitespace.
fn skip_space(bytes: &[u8], mut at: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = bytes.get(at) {
        at += 1;
    }
    at
}

/// The end of the value starting at `at`: a string without escapes, a number, or a literal.
fn value_end(bytes: &[u8], at: usize) -> Option<usize> {
    match *bytes.get(at)? {
        b'"' => string_at(bytes, at).map(|(_, end)| end),
        b'-' | b'0'..=b'9' => number_end(bytes, at),
        b't' => literal_end(bytes, at, b"true"),
        b'f' => literal_end(bytes, at, b"false"),
        b'n' => literal_end(bytes, at, b"null"),
        _ => None,
    }
}

/// The string starting at `at` (its quotes included), if it holds no escape and no control
/// character.
fn string_at(bytes: &[u8], at: usize) -> Option<(usize, usize)> {
    if *bytes.get(at)? != b'"' {
        return None;
    }
    // Strings are short (ids, keys, times): one pass, byte by byte.
    for (i, &b) in bytes[at + 1..].iter().enumerate() {
        match b {
            b'"' => return Some((at, at + i + 2)),
            b'\\' | 0..0x20 => return None,
            _ => {}
        }
    }
    None
}

/// The end of a JSON number: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn number_end(bytes: &[u8], mut at: usize) -> Option<usize> {
    let digit = |at: usize| bytes.get(at).is_some_and(u8::is_ascii_digit);
    let digits = |mut at: usize| {
        while digit(at) {
            at += 1;
        }
        at
    };
    if bytes[at] == b'-' {
        at += 1;
    }
    match *bytes.get(at)? {
        b'0' => at += 1,
        b'1'..=b'9' => at = digits(at + 1),
        _ => return None,
    }
    if bytes.get(at) == Some(&b'.') {
        if !digit(at + 1) {
            return None;
        }
        at = digits(at + 1);
    }
    if let Some(b'e' | b'E') = bytes.get(at) {
        at += 1;
        if let Some(b'+' | b'-') = bytes.get(at) {
            at += 1;
        }
        if !digit(at) {
            return None;
        }
        at = digits(at);
    }
    Some(at)
}

fn literal_end(bytes: &[u8], at: usize, literal: &[u8]) -> Option<usize> {
    bytes[at..]
        .starts_with(literal)
        .then_some(at + literal.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(line: &str) -> Option<Vec<Option<String>>> {
        let fields = scan(line, &FieldNames::default())?;
        Some(
            crate::ingest::decode::FIELDS
                .iter()
                .map(|f| fields.get(*f).map(|s| s.to_string()))
                .collect(),
        )
    }

    #[test]
    fn takes_the_raw_text_of_known_fields() {
        let got = raw(r#" {"id":"a","key" : "k","ts":1000,"value":-1.5e3,"op":null,"x":[1]} "#);
        // A nested value is left to the general parser.
        assert_eq!(got, None);
        let got =
            raw(r#"{"id":"a","key" : "k","ts":1000,"value":-1.5e3,"op":null,"x":true}"#).unwrap();
        let text = |s: &str| Some(s.to_string());
        assert_eq!(
            got,
            vec![
                text("\"a\""),
                text("\"k\""),
                text("1000"),
                text("-1.5e3"),
                None,
                None,
                None,
                None
            ]
        );
        assert_eq!(raw("{}").unwrap(), vec![None; 8]);
    }

    #[test]
    fn covers_the_lines_producers_write() {
        for line in [
            r#"{"id":"e0000000","key":"k7106","ts":"2026-11-20T00:00:00.105Z","value":152.66,"version":1,"source":"p01","seq":1}"#,
            r#"{"id":"e0591833","key":"k0407","ts":"2026-11-20T14:29:37.937Z","value":385.87,"version":0,"source":"p05","seq":122166,"op":"delete"}"#,
            r#"{ "id": 17, "key": "store-berlin", "ts": 1795169700000, "value": -0.5, "meta": null }"#,
        ] {
            assert!(raw(line).is_some(), "{line}");
        }
    }

    #[test]
    fn leaves_everything_else_to_the_general_parser() {
        for line in [
            r#"{"id":"a\"b"}"#,
            r#"{"i\u0064":"a"}"#,
            "{\"id\":\"a\u{1}\"}",
            r#"{"id":"a","id":"b"}"#,
            r#"{"id":01}"#,
            r#"{"id":1.}"#,
            r#"{"id":-}"#,
            r#"{"id":1e}"#,
            r#"{"id":.5}"#,
            r#"{"id":tru}"#,
            r#"{"id":nulls}"#,
            r#"{"id":1,}"#,
            r#"{"id":1} x"#,
            r#"{"id":1}{}"#,
            r#"[1]"#,
            r#""str""#,
            r#"{"id":NaN}"#,
            r#"{"id":1"#,
            r#"{"id""#,
            "{\"id\":1\u{c}}",
        ] {
            assert_eq!(raw(line), None, "{line}");
        }
    }
}
