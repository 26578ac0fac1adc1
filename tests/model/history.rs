//! Histories: structured records and bad lines, rendered to JSON Lines files.
//!
//! A history is a list of [`Step`]s, each a handful of raw numbers that [`Case::build`] reads
//! as "a new id", "a same-version correction of an earlier id", "a replay of an earlier line",
//! "a bad line of kind K", ... and renders in one of many equivalent JSON spellings. Steps only
//! refer to earlier steps by index modulo what exists, so any sub-list of steps (what proptest
//! shrinks to) is again a valid history. The generator keeps the valid records with their
//! positions and the expected dead letters; it never parses what it rendered.
//!
//! Readings of the data contract (docs/format.md) the generator relies on: a value's fractional
//! digits are those of the number, not of its spelling (`12.5000000000` and `1.23456789e2` are fine
//! at scale 6); a whitespace-only line is no record but still a physical line; a line's length
//! excludes its `\n` or `\r\n`; in CSV an empty cell is an absent field (so CSV cases use no empty
//! key); a replay of an older line at the current version is, by the `(version, position)` rule, a
//! correction back to that line.

use super::reference::{Lateness, Model, Record, Windows, canonical, local_text};

/// Keys: few, with byte-order traps (`B` < `a` < `é`), JSON and CSV escapes, and the empty key.
pub const KEYS: [&str; 8] = ["a", "b", "B", "é", "k,\"q\"", "", "x\\y", "z\u{1}"];

/// The default `--max-line-bytes`.
pub const DEFAULT_MAX_LINE: usize = 1 << 20;

/// The most bytes of a bad line kept in its dead letter (docs/format.md section 6: 64 KiB).
pub const RAW_LIMIT: usize = 64 * 1024;

/// One step of a history: raw numbers, read by [`Case::build`].
#[derive(Clone, Debug)]
pub struct Step {
    pub kind: u8,
    pub pick: u16,
    pub key: u8,
    pub ts: u16,
    pub class: u8,
    pub raw: i64,
    pub version: u8,
    pub style: u32,
}

/// Everything about a case except its steps.
#[derive(Clone, Debug)]
pub struct Params {
    pub windows: Windows,
    /// Event times are `base + k × tick` (± 1 ms) for k in `-spread/4 .. spread*3/4`.
    pub base: i64,
    pub tick: i64,
    /// How many distinct ticks times are drawn from: few cluster the records (for sessions,
    /// so that later records bridge sessions and removals split them).
    pub spread: u16,
    /// Milliseconds added to the times of each step over the one before: with a drift, time
    /// advances with the history, so later epochs have watermarks and late records.
    pub drift: i64,
    /// `--max-out-of-orderness` and `--allowed-lateness`; `None` runs without them.
    pub lateness: Option<Lateness>,
    /// `--scale`; `None` is the default, 6.
    pub scale: Option<u32>,
    /// `--max-line-bytes`; `None` is the default, 1 MiB.
    pub max_line: Option<usize>,
    /// How many of [`KEYS`] are used.
    pub keys: usize,
    /// How many of the files are `--input` (the rest are `--corrections`), at least 1.
    pub inputs: usize,
    /// Split points, read modulo the line count plus one: one fewer than the files (epochs).
    pub cuts: Vec<u16>,
    /// Bit i set: file i is CSV (header row, then one record per row), not JSON Lines.
    pub csv: u8,
    /// The CSV header: the columns rotated by this, with a `note` column if odd.
    pub csv_columns: u8,
}

impl Params {
    pub fn model(&self) -> Model {
        Model {
            scale: self.scale.unwrap_or(6),
            windows: self.windows,
        }
    }
}

/// A record without its position.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Content {
    id: String,
    key: String,
    ts: i64,
    units: i128,
    delete: bool,
    version: u64,
}

/// What a line is, as generated; rendered when its file's format is known.
#[derive(Clone, Debug)]
enum Spec {
    Good(Content, u32),
    Bad(Content, Step),
    Blank(&'static str),
}

#[derive(Clone, Debug)]
struct Line {
    spec: Spec,
    crlf: bool,
    /// Leave off the terminator if this is the last line of its file.
    open_end: bool,
}

/// What a rendered line is.
enum Class {
    Good(Content),
    /// A bad line, with a word its dead-letter reason should mention (if any).
    Bad(Option<&'static str>),
    Blank,
}

/// An expected dead letter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dead {
    pub file: usize,
    pub offset: u64,
    /// 1-based physical line.
    pub line: u64,
    pub raw: String,
    /// A word the reason must contain.
    pub hint: Option<&'static str>,
}

/// A rendered history and what the model knows about it.
#[derive(Clone, Debug)]
pub struct Case {
    pub params: Params,
    /// The bytes of each file, in epoch order.
    pub files: Vec<Vec<u8>>,
    /// Valid records, in position order.
    pub records: Vec<Record>,
    /// Bad lines, in position order.
    pub dead: Vec<Dead>,
}

enum Kind {
    New,
    Replay,
    SameVersion,
    NewVersion,
    Stale,
    Delete,
    StaleDelete,
    ValueOnly,
    Rerender,
    Bad,
    Blank,
}

fn kind(k: u8) -> Kind {
    match k % 32 {
        0..=6 => Kind::New,
        7..=9 => Kind::Replay,
        10..=12 => Kind::SameVersion,
        13..=15 => Kind::NewVersion,
        16..=17 => Kind::Stale,
        18..=20 => Kind::Delete,
        21 => Kind::StaleDelete,
        22..=23 => Kind::ValueOnly,
        24..=25 => Kind::Rerender,
        26..=29 => Kind::Bad,
        _ => Kind::Blank,
    }
}

/// The generator's view of one id: what it last emitted and the greatest version so far.
struct IdState {
    name: String,
    latest: u64,
    last: Content,
}

/// The n-th id (from 1): integers (also negative, which JSON may write bare), and strings.
fn id_name(n: usize) -> String {
    match n % 4 {
        0 => n.to_string(),
        1 => format!("e{n}"),
        2 => format!("-{n}"),
        _ => format!("id é{n}"),
    }
}

fn bits(style: u32, shift: u32, count: u32) -> u32 {
    (style >> shift) & ((1 << count) - 1)
}

impl Case {
    /// Interprets `steps` under `params` and renders the files.
    pub fn build(params: Params, steps: &[Step]) -> Case {
        let scale = params.scale.unwrap_or(6);
        let max_line = params.max_line.unwrap_or(DEFAULT_MAX_LINE);
        let mut ids: Vec<IdState> = Vec::new();
        let mut good: Vec<usize> = Vec::new(); // indexes of good lines
        let mut lines: Vec<Line> = Vec::new();
        for (n, step) in steps.iter().enumerate() {
            let key = match KEYS[step.key as usize % params.keys] {
                // In CSV an empty cell is an absent field, so no case with CSV has empty keys.
                "" if params.csv != 0 => " ",
                key => key,
            }
            .to_string();
            let spread = params.spread.max(1);
            let ts = params.base
                + n as i64 * params.drift
                + (i64::from(step.ts % spread) - i64::from(spread / 4)) * params.tick
                + [0, -1, 1, 0][bits(step.style, 18, 2) as usize];
            let units = value_units(step.class, step.raw, scale);
            let crlf = bits(step.style, 16, 1) == 1;
            let open_end = bits(step.style, 17, 1) == 1;
            let mut kind = kind(step.kind);
            if ids.is_empty() && !matches!(kind, Kind::Bad | Kind::Blank) {
                kind = Kind::New;
            }
            if good.is_empty() && matches!(kind, Kind::Replay) {
                kind = Kind::New;
            }
            let pick = if ids.is_empty() {
                0
            } else {
                step.pick as usize % ids.len()
            };
            let fresh = |id: &str, version: u64, delete: bool| Content {
                id: id.to_string(),
                key: key.clone(),
                ts,
                units,
                delete,
                version,
            };
            let content = match kind {
                Kind::New => {
                    let name = id_name(ids.len() + 1);
                    let version = [0, 0, 0, 0, 1, 2, 5, 1 << 40][step.version as usize % 8];
                    let content = fresh(&name, version, false);
                    ids.push(IdState {
                        name,
                        latest: version,
                        last: content.clone(),
                    });
                    content
                }
                Kind::Replay => {
                    // The same line again: the same text in a file of the same format.
                    let spec = lines[good[step.pick as usize % good.len()]].spec.clone();
                    lines.push(Line {
                        spec,
                        crlf,
                        open_end,
                    });
                    continue;
                }
                Kind::Bad => {
                    let name = ids.get(pick).map_or("1".to_string(), |s| s.name.clone());
                    lines.push(Line {
                        spec: Spec::Bad(fresh(&name, 0, false), step.clone()),
                        crlf: crlf && !matches!(step.class % 10, 8),
                        open_end,
                    });
                    continue;
                }
                Kind::Blank => {
                    let text = ["", " ", "\t", "  "][step.style as usize % 4];
                    lines.push(Line {
                        spec: Spec::Blank(text),
                        crlf,
                        open_end,
                    });
                    continue;
                }
                _ => {
                    let state = &mut ids[pick];
                    let latest = state.latest;
                    let v = u64::from(step.version);
                    let content = match kind {
                        Kind::SameVersion => fresh(&state.name, latest, false),
                        Kind::NewVersion => {
                            let delta = [1, 1, 2, 3, 1000, 1 << 50, u64::MAX, 1][v as usize % 8];
                            fresh(&state.name, latest.saturating_add(delta), false)
                        }
                        Kind::Stale if latest > 0 => fresh(&state.name, v % latest, false),
                        Kind::Stale => fresh(&state.name, latest, false),
                        Kind::Delete => fresh(&state.name, latest.saturating_add(v % 2), true),
                        Kind::StaleDelete if latest > 0 => fresh(&state.name, v % latest, true),
                        Kind::StaleDelete => fresh(&state.name, latest, true),
                        Kind::ValueOnly => Content {
                            units,
                            delete: false,
                            version: latest,
                            ..state.last.clone()
                        },
                        _ => state.last.clone(), // Rerender: same content, other spelling
                    };
                    state.latest = state.latest.max(content.version);
                    state.last = content.clone();
                    content
                }
            };
            good.push(lines.len());
            lines.push(Line {
                spec: Spec::Good(content, step.style),
                crlf,
                open_end,
            });
        }

        // Split into files at the cut points.
        let mut cuts: Vec<usize> = params
            .cuts
            .iter()
            .map(|c| *c as usize % (lines.len() + 1))
            .collect();
        cuts.push(0);
        cuts.push(lines.len());
        cuts.sort_unstable();
        let mut case = Case {
            params: params.clone(),
            files: Vec::new(),
            records: Vec::new(),
            dead: Vec::new(),
        };
        for (file, span) in cuts.windows(2).enumerate() {
            let csv = (params.csv >> file) & 1 == 1;
            let columns = csv_columns(&params);
            let mut bytes = Vec::new();
            let mut number = 0;
            if csv {
                bytes.extend_from_slice(columns.join(",").as_bytes());
                bytes.push(b'\n');
                number += 1;
            }
            for (n, line) in lines[span[0]..span[1]].iter().enumerate() {
                number += 1;
                let offset = bytes.len() as u64;
                let (text, class) = match (&line.spec, csv) {
                    (Spec::Good(c, style), false) => (
                        render(c, *style, scale).into_bytes(),
                        Class::Good(c.clone()),
                    ),
                    (Spec::Good(c, style), true) => (
                        render_csv(c, *style, scale, &columns),
                        Class::Good(c.clone()),
                    ),
                    (Spec::Bad(c, step), false) => {
                        let (text, hint) = bad_line(c, step, &params);
                        (text, Class::Bad(hint))
                    }
                    (Spec::Bad(c, step), true) => {
                        let (text, hint) = bad_csv(c, step, &params, &columns);
                        (text, Class::Bad(hint))
                    }
                    (Spec::Blank(text), _) => (text.as_bytes().to_vec(), Class::Blank),
                };
                bytes.extend_from_slice(&text);
                let last = n + 1 == span[1] - span[0];
                if !(last && line.open_end) {
                    bytes.extend_from_slice(if line.crlf { b"\r\n" } else { b"\n" });
                }
                let class = if text.len() > max_line {
                    Class::Bad(Some("max-line-bytes"))
                } else {
                    class
                };
                match class {
                    Class::Blank => {}
                    Class::Good(c) => case.records.push(Record {
                        id: c.id,
                        key: c.key,
                        ts: c.ts,
                        units: c.units,
                        delete: c.delete,
                        version: c.version,
                        position: (file as u64, file as u32, offset),
                    }),
                    Class::Bad(hint) => case.dead.push(Dead {
                        file,
                        offset,
                        line: number,
                        raw: String::from_utf8_lossy(&text[..text.len().min(RAW_LIMIT)])
                            .into_owned(),
                        hint,
                    }),
                }
            }
            case.files.push(bytes);
        }
        case
    }

    /// Whether file `i` is CSV.
    pub fn is_csv(&self, file: usize) -> bool {
        (self.params.csv >> file) & 1 == 1
    }

    /// The input files, readable, for a failure message (long lines cut).
    pub fn dump(&self) -> String {
        let mut out = format!("{:?}\n", self.params);
        for (i, file) in self.files.iter().enumerate() {
            out += &format!("--- file {i} (epoch {i}), {} bytes ---\n", file.len());
            let mut offset = 0;
            for (n, line) in file.split_inclusive(|b| *b == b'\n').enumerate() {
                let text = String::from_utf8_lossy(line);
                let shown: String = text.chars().take(200).collect();
                out += &format!("{:>3} @{offset:<5} {shown:?}\n", n + 1);
                offset += line.len();
            }
        }
        out
    }
}

/// A value in units at `scale`: small integers, cents, full-scale fractions, many digits,
/// zero, and tiny values whose means land on ties.
fn value_units(class: u8, raw: i64, scale: u32) -> i128 {
    let unit = 10i128.pow(scale);
    let raw = i128::from(raw);
    let sign = if raw < 0 { -1 } else { 1 };
    match class % 8 {
        0 | 1 => raw % 100 * unit,
        2 => raw % 100_000 * unit / 100,
        3 => raw % (100 * unit),
        4 => raw * 1_000 * unit / 10 + sign * (raw.abs() % 1000),
        5 => 0,
        6 => sign * (raw.abs() % 8),
        _ => raw % 1_000_000_007 * 1_000 + raw % 7,
    }
}

/// JSON string text, optionally with every non-ASCII or control character `\u`-escaped.
fn json_string(text: &str, ascii: bool) -> String {
    if !ascii {
        return serde_json::to_string(text).unwrap();
    }
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out += "\\\"",
            '\\' => out += "\\\\",
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out += &format!("\\u{u:04X}");
                }
            }
            c => out.push(c),
        }
    }
    out + "\""
}

fn is_integer_text(id: &str) -> bool {
    let digits = id.strip_prefix('-').unwrap_or(id);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
}

/// A timestamp, spelled one of several equivalent ways.
fn render_ts(ts: i64, form: u32) -> String {
    let text = local_text(ts); // YYYY-MM-DDTHH:MM:SS.mmm
    match form {
        0 | 1 => ts.to_string(),
        2 => format!("\"{text}Z\""),
        3 if ts % 1000 == 0 => format!("\"{}Z\"", &text[..19]),
        3 => format!("\"{text}Z\""),
        4 => format!("\"{}+05:30\"", local_text(ts + 330 * 60_000)),
        5 => format!("\"{}-08:00\"", local_text(ts - 480 * 60_000)),
        6 => format!("\"{text}999Z\""), // sub-millisecond digits are floored
        _ => format!("\"{}000001+00:00\"", text),
    }
}

/// A value in units at `scale`, spelled one of several equivalent ways. Trailing zeros and a
/// mantissa's digits are spelling, not precision: the value itself never has more fractional
/// digits than the scale.
fn render_value(units: i128, scale: u32, form: u32) -> String {
    let canon = canonical(units, scale);
    let sign = if units < 0 { "-" } else { "" };
    let digits = units.unsigned_abs().to_string();
    if units == 0 {
        return ["0", "-0", "0e5", "0", "-0", "0E-2", "0", "0"][form as usize].to_string();
    }
    match form {
        0 | 1 => canon,
        2 if scale > 0 => {
            let unit = 10u128.pow(scale);
            let (w, f) = (units.unsigned_abs() / unit, units.unsigned_abs() % unit);
            format!("{sign}{w}.{f:0width$}", width = scale as usize)
        }
        3 => format!("{sign}{digits}e-{scale}"),
        4 | 5 => {
            // d.ddd × 10^exp with the significant digits only.
            let significant = digits.trim_end_matches('0');
            let exp = digits.len() as i64 - 1 - i64::from(scale);
            let mantissa = if significant.len() > 1 {
                format!("{}.{}", &significant[..1], &significant[1..])
            } else {
                significant.to_string()
            };
            if form == 4 {
                format!("{sign}{mantissa}e{exp}")
            } else if exp >= 0 {
                format!("{sign}{mantissa}E+{exp}")
            } else {
                format!("{sign}{mantissa}E{exp}")
            }
        }
        6 if canon.contains('.') => canon + "0000000",
        6 => canon + ".0000000000",
        _ => canon + "e0",
    }
}

/// One good record as a JSON object, spelled as `style` says.
fn render(c: &Content, style: u32, scale: u32) -> String {
    let mut fields: Vec<(&str, String)> = Vec::new();
    let id = if bits(style, 0, 1) == 1 && is_integer_text(&c.id) {
        c.id.clone()
    } else {
        json_string(&c.id, bits(style, 15, 1) == 1)
    };
    fields.push(("id", id));
    fields.push(("key", json_string(&c.key, bits(style, 15, 1) == 1)));
    fields.push(("ts", render_ts(c.ts, bits(style, 1, 3))));
    fields.push(("value", render_value(c.units, scale, bits(style, 4, 3))));
    if c.delete {
        fields.push(("op", "\"delete\"".into()));
    } else if bits(style, 13, 1) == 1 {
        fields.push(("op", "\"upsert\"".into()));
    }
    if c.version != 0 || bits(style, 14, 1) == 1 {
        fields.push(("version", c.version.to_string()));
    }
    match bits(style, 11, 2) {
        0 => {}
        1 => fields.push(("note", "\"ignored, \\\"quoted\\\"\"".into())),
        2 => fields.push(("nested", r#"{"a":[1,2.5,{"b":null}],"c":"d"}"#.into())),
        _ => {
            fields.push(("source", "\"producer-1\"".into()));
            fields.push(("seq", (style % 1000).to_string()));
        }
    }
    let turn = bits(style, 7, 2) as usize % fields.len();
    fields.rotate_left(turn);
    object(&fields, bits(style, 9, 1) == 1, bits(style, 10, 1) == 1)
}

fn object(fields: &[(&str, String)], spaced: bool, padded: bool) -> String {
    let (colon, comma) = if spaced { (": ", ", ") } else { (":", ",") };
    let body: Vec<String> = fields
        .iter()
        .map(|(name, value)| format!("\"{name}\"{colon}{value}"))
        .collect();
    let text = format!("{{{}}}", body.join(comma));
    if padded { format!(" {text}\t") } else { text }
}

/// A bad line of kind `step.class % 10`, built from a good record; and a word its reason must
/// mention.
fn bad_line(c: &Content, step: &Step, params: &Params) -> (Vec<u8>, Option<&'static str>) {
    let scale = params.scale.unwrap_or(6);
    let sub = bits(step.style, 20, 3) as usize;
    let good = render(c, step.style & !(1 << 10), scale); // no surrounding whitespace
    let mut fields: Vec<(&str, String)> = vec![
        ("id", json_string(&c.id, false)),
        ("key", json_string(&c.key, false)),
        ("ts", render_ts(c.ts, bits(step.style, 1, 3))),
        (
            "value",
            render_value(c.units, scale, bits(step.style, 4, 3)),
        ),
    ];
    let set = |fields: &mut Vec<(&str, String)>, name: &'static str, value: &str| match fields
        .iter_mut()
        .find(|f| f.0 == name)
    {
        Some(field) => field.1 = value.to_string(),
        None => fields.push((name, value.to_string())),
    };
    let hint = match step.class % 10 {
        0 => {
            // Not valid JSON.
            let text = match sub % 4 {
                0 => good[..good.len() - 1].to_string(),
                1 => "not json at all".to_string(),
                2 => format!("{good} x"),
                _ => r#"{"id":"1",,"key":"a"}"#.to_string(),
            };
            return (text.into_bytes(), None);
        }
        1 => {
            // Valid JSON, but not an object.
            let text = ["[1,2,3]", "\"a string\"", "42", "null", "true"][sub % 5];
            return (text.into(), None);
        }
        2 => {
            // A required field missing.
            let name = ["id", "key", "ts", "value"][sub % 4];
            fields.retain(|f| f.0 != name);
            Some(name)
        }
        3 => {
            // A field of the wrong type.
            let (name, value) = [
                ("key", "5"),
                ("id", "1.5"),
                ("id", "true"),
                ("ts", "12.5"),
                ("value", "\"12.5\""),
                ("version", "-1"),
                ("version", "\"3\""),
                ("op", "1"),
            ][sub];
            set(&mut fields, name, value);
            Some(name)
        }
        4 => {
            // An unparseable timestamp.
            let value = [
                "\"yesterday\"",
                "\"2026-11-20T10:15:00\"",
                "\"2026-13-01T00:00:00Z\"",
                "\"\"",
                "\"2026-11-20 10:15\"",
                "\"1700000000000\"",
                "\"2026-11-20T10:15:00.000\"",
                "\"10:15:00Z\"",
            ][sub];
            set(&mut fields, "ts", value);
            Some("ts")
        }
        5 => {
            // One digit more precise than the scale.
            let digit = i128::from(step.version % 9 + 1);
            let value = match sub % 3 {
                0 => canonical(c.units * 10 + digit, scale + 1),
                1 => format!("1e-{}", scale + 1),
                _ => format!("-{}e-{}", 10 + digit, scale + 2),
            };
            set(&mut fields, "value", &value);
            Some("value")
        }
        6 => {
            // Non-finite, or beyond 128-bit fixed point.
            let (value, hint) = [
                ("NaN", None),
                ("Infinity", None),
                ("-Infinity", None),
                ("1e400", Some("value")),
                ("-1e40", Some("value")),
                ("123456789012345678901234567890123456789012", Some("value")),
                ("1e400", Some("value")),
                ("9e39", Some("value")),
            ][sub];
            set(&mut fields, "value", value);
            hint
        }
        7 => {
            // An unknown op.
            let value = ["\"remove\"", "\"UPSERT\"", "\"\"", "\"del\""][sub % 4];
            set(&mut fields, "op", value);
            Some("op")
        }
        8 => {
            // Longer than --max-line-bytes.
            let max = params.max_line.unwrap_or(DEFAULT_MAX_LINE);
            let pad = (max + 1 + sub % 3).saturating_sub(good.len() + 9);
            let text = format!("{{\"pad\":\"{}\",{}", "x".repeat(pad), &good[1..]);
            return (text.into_bytes(), Some("max-line-bytes"));
        }
        _ => {
            // Not UTF-8.
            let mut bytes = b"{\"note\":\"".to_vec();
            bytes.extend_from_slice(&[0xff, b'a', 0xc3]);
            bytes.extend_from_slice(b"\",");
            bytes.extend_from_slice(&good.as_bytes()[1..]);
            return (bytes, None);
        }
    };
    let turn = sub % fields.len().max(1);
    fields.rotate_left(turn);
    (object(&fields, false, false).into_bytes(), hint)
}

/// The CSV header's columns.
fn csv_columns(params: &Params) -> Vec<&'static str> {
    let mut columns = vec!["id", "key", "ts", "value", "op", "version"];
    if params.csv_columns % 2 == 1 {
        columns.push("note");
    }
    let turn = params.csv_columns as usize / 2 % columns.len();
    columns.rotate_left(turn);
    columns
}

/// One CSV cell: quoted when it must be, or always if `quote_all`.
fn csv_cell(text: &str, quote_all: bool) -> String {
    if quote_all || text.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// The cells of a good record, by column name (absent optional fields are empty cells).
fn csv_cells(c: &Content, style: u32, scale: u32) -> Vec<(&'static str, String)> {
    let ts = render_ts(c.ts, bits(style, 1, 3));
    let op = if c.delete {
        "delete"
    } else if bits(style, 13, 1) == 1 {
        "upsert"
    } else {
        ""
    };
    let version = if c.version != 0 || bits(style, 14, 1) == 1 {
        c.version.to_string()
    } else {
        String::new()
    };
    vec![
        ("id", c.id.clone()),
        ("key", c.key.clone()),
        ("ts", ts.trim_matches('"').to_string()),
        ("value", render_value(c.units, scale, bits(style, 4, 3))),
        ("op", op.to_string()),
        ("version", version),
        ("note", "ignored, \"quoted\"".to_string()),
    ]
}

fn csv_row(cells: &[(&'static str, String)], columns: &[&str], quote_all: bool) -> Vec<u8> {
    let row: Vec<String> = columns
        .iter()
        .map(|name| {
            let cell = cells.iter().find(|c| c.0 == *name).unwrap();
            csv_cell(&cell.1, quote_all)
        })
        .collect();
    row.join(",").into_bytes()
}

/// One good record as a CSV row.
fn render_csv(c: &Content, style: u32, scale: u32, columns: &[&str]) -> Vec<u8> {
    csv_row(&csv_cells(c, style, scale), columns, bits(style, 9, 1) == 1)
}

/// A bad CSV row of kind `step.class % 10`, built from a good record; and a word its reason
/// must mention.
fn bad_csv(
    c: &Content,
    step: &Step,
    params: &Params,
    columns: &[&str],
) -> (Vec<u8>, Option<&'static str>) {
    let scale = params.scale.unwrap_or(6);
    let sub = bits(step.style, 20, 3) as usize;
    let mut cells = csv_cells(c, step.style, scale);
    fn put(cells: &mut [(&'static str, String)], name: &str, value: &str) {
        cells.iter_mut().find(|c| c.0 == name).unwrap().1 = value.to_string();
    }
    let mut set = |name: &str, value: &str| put(&mut cells, name, value);
    let hint = match step.class % 10 {
        0 => {
            // Not valid CSV: a different number of fields than the header, or a line that
            // ends inside a quoted field (as a truncated write would).
            let (head, last) = columns.split_at(columns.len() - 1);
            let mut row = csv_row(&cells, head, false);
            match sub % 3 {
                0 => {
                    row.extend_from_slice(b",");
                    row.extend_from_slice(&csv_row(&cells, last, false));
                    row.extend_from_slice(b",extra");
                }
                1 => {}
                _ => {
                    let cell = &cells.iter().find(|c| c.0 == last[0]).unwrap().1;
                    row.extend_from_slice(b",\"");
                    row.extend_from_slice(cell.replace('"', "\"\"").as_bytes());
                }
            }
            return (row, None);
        }
        1 => {
            // A required field missing (an empty cell).
            let name = ["id", "key", "ts", "value"][sub % 4];
            set(name, "");
            Some(name)
        }
        2 => {
            // A version that is not a non-negative integer.
            set("version", ["abc", "-1", "1.5", "1e3"][sub % 4]);
            Some("version")
        }
        3 => {
            // An unparseable timestamp.
            let value = [
                "yesterday",
                "2026-11-20T10:15:00",
                "2026-13-01T00:00:00Z",
                "2026-11-20 10:15",
                "12.5",
                "10:15:00Z",
                "1e3",
                "--5",
            ][sub];
            set("ts", value);
            Some("ts")
        }
        4 => {
            // One digit more precise than the scale.
            let digit = i128::from(step.version % 9 + 1);
            set("value", &canonical(c.units * 10 + digit, scale + 1));
            Some("value")
        }
        5 => {
            // Non-finite, or beyond 128-bit fixed point.
            let value = [
                "NaN",
                "Infinity",
                "-Infinity",
                "inf",
                "nan",
                "1e400",
                "-1e40",
                "123456789012345678901234567890123456789012",
            ][sub];
            set("value", value);
            Some("value")
        }
        6 => {
            // An unknown op.
            set("op", ["remove", "UPSERT", "del", "x"][sub % 4]);
            Some("op")
        }
        7 => {
            // A value that is not a number.
            set("value", ["abc", "12,5", "1.2.3", "0x10"][sub % 4]);
            Some("value")
        }
        8 => {
            // Longer than --max-line-bytes: a long key.
            let max = params.max_line.unwrap_or(DEFAULT_MAX_LINE);
            put(&mut cells, "key", "k");
            let row = csv_row(&cells, columns, false);
            let key = format!(
                "k{}",
                "x".repeat((max + 1 + sub % 3).saturating_sub(row.len()))
            );
            put(&mut cells, "key", &key);
            return (csv_row(&cells, columns, false), Some("max-line-bytes"));
        }
        _ => {
            // Not UTF-8.
            put(&mut cells, "key", "K");
            let row = csv_row(&cells, columns, false);
            let at = row.iter().position(|b| *b == b'K').unwrap();
            let mut bytes = row[..at].to_vec();
            bytes.extend_from_slice(&[0xff, b'a', 0xc3]);
            bytes.extend_from_slice(&row[at + 1..]);
            return (bytes, None);
        }
    };
    (csv_row(&cells, columns, false), hint)
}
