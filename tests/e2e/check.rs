//! Checks of the data contract (docs/format.md section 6 and 7) that hold for every run, whatever the
//! input: accounting closes, the changelog replays to the snapshot, the snapshot is sorted,
//! decimals and times are canonical, and the digests match the snapshot.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::util::read_text;

/// A row's identity: (window_start, window_end, key).
type RowKey = (String, String, String);

/// The aggregates of a row: count, sum, min, max, mean, as written.
type RowAggs = (u64, String, String, String, String);

/// The fields of a snapshot row, in order.
const ROW_FIELDS: [&str; 8] = [
    "window_start",
    "window_end",
    "key",
    "count",
    "sum",
    "min",
    "max",
    "mean",
];

/// Checks every output file in `out` against the data contract; panics with every problem
/// found. `verify_digests` recomputes the docs/format.md section 7 digests with the system `sha256sum`.
#[track_caller]
pub fn check_outputs(out: &Path, verify_digests: bool) {
    let mut problems = Vec::new();
    let mut problem = |text: String| problems.push(text);

    let summary: Value = parse_json(&read_text(&out.join("summary.json")), "summary.json");
    let number = |field: &str| -> u64 {
        summary[field]
            .as_u64()
            .unwrap_or_else(|| panic!("summary.json: `{field}` is not a count: {summary}"))
    };
    for field in ["elapsed_seconds", "records_per_second"] {
        if !summary[field].is_number() {
            problem(format!("summary.json: `{field}` is not a number"));
        }
    }
    let (read, accepted, dead, skipped) = (
        number("records_read"),
        number("records_accepted"),
        number("records_dead_lettered"),
        number("records_skipped"),
    );
    number("ids_current");
    number("ids_deleted");
    number("audit_lines_skipped");
    number("ids_only_in_audit");
    let epochs = number("epochs");
    if read != accepted + dead + skipped {
        problem(format!(
            "accounting does not close: records_read {read} != accepted {accepted} \
             + dead-lettered {dead} + skipped {skipped}"
        ));
    }

    // Dead letters.
    let dead_letters = json_lines(
        &read_text(&out.join("dead_letter.jsonl")),
        "dead_letter.jsonl",
    );
    if dead_letters.len() as u64 != dead {
        problem(format!(
            "dead_letter.jsonl has {} lines but summary.json says {dead} were dead-lettered",
            dead_letters.len()
        ));
    }
    for (i, letter) in dead_letters.iter().enumerate() {
        let ok = letter["source"].is_string()
            && letter["epoch"].as_u64().is_some_and(|e| e < epochs)
            && letter["offset"].is_u64()
            && letter["line"].as_u64().is_some_and(|l| l >= 1)
            && letter["reason"].as_str().is_some_and(|r| !r.is_empty())
            && letter["raw"].is_string()
            && letter.as_object().is_some_and(|o| o.len() == 6);
        if !ok {
            problem(format!(
                "dead_letter.jsonl line {}: malformed: {letter}",
                i + 1
            ));
        }
    }

    // The snapshot.
    let snapshot = if out.join("snapshot.csv").exists() {
        assert!(
            !out.join("snapshot.jsonl").exists(),
            "both snapshot.csv and snapshot.jsonl in {}",
            out.display()
        );
        csv_snapshot(&read_text(&out.join("snapshot.csv")))
    } else {
        json_lines(&read_text(&out.join("snapshot.jsonl")), "snapshot.jsonl")
            .iter()
            .enumerate()
            .map(|(i, row)| {
                let fields: Vec<&str> = row
                    .as_object()
                    .unwrap()
                    .keys()
                    .map(|k| k.as_str())
                    .collect();
                let mut want = ROW_FIELDS.to_vec();
                want.sort_unstable();
                if fields != want {
                    panic!(
                        "snapshot.jsonl line {}: fields {fields:?}, want {ROW_FIELDS:?}",
                        i + 1
                    );
                }
                row_of(row, &format!("snapshot.jsonl line {}", i + 1))
            })
            .collect()
    };
    for pair in snapshot.windows(2) {
        if pair[0].0 >= pair[1].0 {
            problem(format!(
                "snapshot rows out of order or repeated: {:?} then {:?}",
                pair[0].0, pair[1].0
            ));
        }
    }
    for (key, aggs) in &snapshot {
        check_row(key, aggs, "snapshot", &mut problem);
    }
    if snapshot.len() as u64 != number("rows") {
        problem(format!(
            "snapshot has {} rows but summary.json says {}",
            snapshot.len(),
            number("rows")
        ));
    }

    // The changelog replays to the snapshot.
    let changelog = json_lines(&read_text(&out.join("changelog.jsonl")), "changelog.jsonl");
    if changelog.len() as u64 != number("changelog_lines") {
        problem(format!(
            "changelog.jsonl has {} lines but summary.json says {}",
            changelog.len(),
            number("changelog_lines")
        ));
    }
    let mut table: BTreeMap<RowKey, RowAggs> = BTreeMap::new();
    let mut last: Option<(u64, i64)> = None;
    for (i, line) in changelog.iter().enumerate() {
        let at = format!("changelog.jsonl line {}", i + 1);
        let (Some(epoch), Some(diff)) = (line["epoch"].as_u64(), line["diff"].as_i64()) else {
            problem(format!("{at}: no epoch or diff: {line}"));
            continue;
        };
        if epoch >= epochs || !(diff == 1 || diff == -1) {
            problem(format!("{at}: bad epoch or diff: {line}"));
        }
        if last.is_some_and(|(e, d)| (e, d) > (epoch, diff)) {
            problem(format!(
                "{at}: out of order: epochs ascend, and in each epoch retractions come first"
            ));
        }
        last = Some((epoch, diff));
        let mut row = line.clone();
        let object = row.as_object_mut().unwrap();
        object.remove("epoch");
        object.remove("diff");
        let (key, aggs) = row_of(&row, &at);
        check_row(&key, &aggs, &at, &mut problem);
        if diff < 0 {
            match table.remove(&key) {
                Some(old) if old == aggs => {}
                Some(old) => problem(format!("{at}: retracts {aggs:?} but the row is {old:?}")),
                None => problem(format!("{at}: retracts a row that is not in the table")),
            }
        } else if table.insert(key, aggs).is_some() {
            problem(format!("{at}: inserts a row that is already in the table"));
        }
    }
    let snapshot_table: BTreeMap<RowKey, RowAggs> = snapshot.iter().cloned().collect();
    if table != snapshot_table {
        let only_changelog: Vec<_> = table
            .iter()
            .filter(|(k, v)| snapshot_table.get(*k) != Some(v))
            .collect();
        let only_snapshot: Vec<_> = snapshot_table
            .iter()
            .filter(|(k, v)| table.get(*k) != Some(v))
            .collect();
        problem(format!(
            "replaying the changelog does not give the snapshot:\n  \
             only in the replay: {only_changelog:?}\n  only in the snapshot: {only_snapshot:?}"
        ));
    }

    // Digests.
    let digests: Value = parse_json(&read_text(&out.join("digests.json")), "digests.json");
    let windows = digests["windows"]
        .as_array()
        .expect("digests.json: no `windows` array");
    if digests["table"] != summary["table_digest"] {
        problem("digests.json `table` differs from summary.json `table_digest`".into());
    }
    if windows.len() as u64 != number("windows") {
        problem(format!(
            "digests.json has {} windows but summary.json says {}",
            windows.len(),
            number("windows")
        ));
    }
    let mut by_window: BTreeMap<(i64, i64), Vec<(&str, &RowAggs)>> = BTreeMap::new();
    for ((start, end, key), aggs) in &snapshot {
        by_window
            .entry((millis(start), millis(end)))
            .or_default()
            .push((key, aggs));
    }
    let listed: Vec<(i64, i64)> = windows
        .iter()
        .map(|w| (w["start"].as_i64().unwrap(), w["end"].as_i64().unwrap()))
        .collect();
    if listed != by_window.keys().copied().collect::<Vec<_>>() {
        problem(format!(
            "digests.json windows {listed:?} are not the snapshot's windows in ascending order"
        ));
    } else if verify_digests && has_sha256sum() {
        let mut table_text = String::new();
        for (window, ((start, end), rows)) in windows.iter().zip(&by_window) {
            let mut rows = rows.clone();
            rows.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            let text: String = rows
                .iter()
                .map(|(key, (count, sum, min, max, _))| {
                    format!("{}:{key}|{count}|{sum}|{min}|{max}\n", key.len())
                })
                .collect();
            let digest = sha256(&text);
            if window["digest"].as_str() != Some(digest.as_str()) {
                problem(format!(
                    "digest of window {start}:{end} is {}, but SHA-256 of {text:?} is {digest}",
                    window["digest"]
                ));
            }
            table_text.push_str(&format!("{start}:{end}:{digest}\n"));
        }
        let digest = sha256(&table_text);
        if digests["table"].as_str() != Some(digest.as_str()) {
            problem(format!(
                "table digest is {}, but SHA-256 of the window lines is {digest}",
                digests["table"]
            ));
        }
    }

    if !problems.is_empty() {
        panic!(
            "the outputs in {} break the data contract:\n- {}",
            out.display(),
            problems.join("\n- ")
        );
    }
}

fn parse_json(text: &str, what: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{what} is not JSON: {e}\n{text}"))
}

/// The lines of a JSON Lines file; each must end with `\n`.
fn json_lines(text: &str, what: &str) -> Vec<Value> {
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "{what}: the last line has no line terminator"
    );
    text.lines()
        .enumerate()
        .map(|(i, line)| parse_json(line, &format!("{what} line {}", i + 1)))
        .collect()
}

/// A row of the snapshot or changelog (without epoch and diff); decimals must be strings.
fn row_of(row: &Value, at: &str) -> (RowKey, RowAggs) {
    let text = |field: &str| -> String {
        row[field]
            .as_str()
            .unwrap_or_else(|| panic!("{at}: `{field}` is not a string: {row}"))
            .to_owned()
    };
    let count = row["count"]
        .as_u64()
        .unwrap_or_else(|| panic!("{at}: `count` is not a count: {row}"));
    (
        (text("window_start"), text("window_end"), text("key")),
        (count, text("sum"), text("min"), text("max"), text("mean")),
    )
}

/// Checks the form of one row: times, canonical decimals, a non-zero count, min <= max.
fn check_row(key: &RowKey, aggs: &RowAggs, at: &str, problem: &mut impl FnMut(String)) {
    for time in [&key.0, &key.1] {
        if !is_rfc3339_millis_utc(time) {
            problem(format!(
                "{at}: time `{time}` is not RFC 3339 UTC with milliseconds"
            ));
        }
    }
    if is_rfc3339_millis_utc(&key.0) && is_rfc3339_millis_utc(&key.1) && key.0 >= key.1 {
        problem(format!("{at}: empty window {} .. {}", key.0, key.1));
    }
    let (count, sum, min, max, mean) = aggs;
    if *count == 0 {
        problem(format!("{at}: a row with count 0"));
    }
    for decimal in [sum, min, max, mean] {
        if !is_canonical_decimal(decimal) {
            problem(format!("{at}: `{decimal}` is not a canonical decimal"));
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn is_rfc3339_millis_utc(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// The shortest exact decimal text: no exponent, no trailing zeros, no `+`, `0` for zero.
pub fn is_canonical_decimal(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = match digits.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (digits, None),
    };
    let whole_ok = whole == "0"
        || (!whole.is_empty()
            && !whole.starts_with('0')
            && whole.bytes().all(|b| b.is_ascii_digit()));
    let fraction_ok = fraction.is_none_or(|f| {
        !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) && !f.ends_with('0')
    });
    whole_ok && fraction_ok && text != "-0"
}

/// Epoch milliseconds of an RFC 3339 time.
fn millis(text: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("`{text}` is not RFC 3339: {e}"))
        .timestamp_millis()
}

/// A CSV snapshot: a header row naming [`ROW_FIELDS`], then rows (RFC 4180 quoting).
fn csv_snapshot(text: &str) -> Vec<(RowKey, RowAggs)> {
    assert!(
        text.ends_with('\n'),
        "snapshot.csv: the last line has no line terminator"
    );
    let mut lines = text.lines();
    let header = lines
        .next()
        .expect("snapshot.csv is empty: it has no header");
    assert_eq!(
        split_csv(header),
        ROW_FIELDS.to_vec(),
        "snapshot.csv: unexpected header"
    );
    lines
        .enumerate()
        .map(|(i, line)| {
            let at = format!("snapshot.csv line {}", i + 2);
            let cells = split_csv(line);
            assert_eq!(cells.len(), 8, "{at}: {line}");
            let count = cells[3]
                .parse()
                .unwrap_or_else(|_| panic!("{at}: count `{}` is not a count", cells[3]));
            let [start, end, key, _, sum, min, max, mean] = cells.try_into().unwrap();
            ((start, end, key), (count, sum, min, max, mean))
        })
        .collect()
}

/// Splits one CSV line (no quoted line breaks) into its cells.
fn split_csv(line: &str) -> Vec<String> {
    let mut cells = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                cells.last_mut().unwrap().push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => cells.push(String::new()),
            (c, _) => cells.last_mut().unwrap().push(c),
        }
    }
    cells
}

fn has_sha256sum() -> bool {
    let found = Command::new("sha256sum")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        eprintln!("note: `sha256sum` is not installed; digests are not recomputed");
    }
    found
}

/// Lowercase hex SHA-256 of `text`, by the system `sha256sum`.
fn sha256(text: &str) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("cannot run sha256sum");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "sha256sum failed");
    String::from_utf8(output.stdout).unwrap()[..64].to_owned()
}

#[test]
fn canonical_decimal_forms() {
    for good in [
        "0",
        "3",
        "12.5",
        "-0.000001",
        "170141183460469231731687303715884.105727",
    ] {
        assert!(is_canonical_decimal(good), "{good}");
    }
    for bad in [
        "", "-0", "+1", "1.50", "01", "1.", ".5", "1e3", "-", "0.0", "1.0",
    ] {
        assert!(!is_canonical_decimal(bad), "{bad}");
    }
}

#[test]
fn csv_cells_are_unquoted() {
    assert_eq!(
        split_csv(r#"a,"b, c","say ""hi""",,"#),
        vec!["a", "b, c", r#"say "hi""#, "", ""]
    );
}
