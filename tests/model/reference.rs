//! The reference model of the data contract: docs/format.md sections 3, 4, 6 and 7, computed naively.
//!
//! Everything here is a plain function of the list of valid records: resolution is a maximum
//! over all records of an id, windows are enumerated from their definition, aggregates are
//! recomputed from scratch, and the output texts (canonical decimals, RFC 3339 times, SHA-256
//! digests) are produced by code written here, not by the pipeline's.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A record's position: (epoch, file index, byte offset). Tuples compare lexicographically.
pub type Position = (u64, u32, u64);

/// One valid input record, as the generator meant it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub id: String,
    pub key: String,
    /// Event time, epoch milliseconds.
    pub ts: i64,
    /// The value in units of 10^-scale.
    pub units: i128,
    pub delete: bool,
    pub version: u64,
    pub position: Position,
}

/// Window assignment (docs/format.md section 4), sizes in milliseconds.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Windows {
    Tumbling {
        size: i64,
    },
    Hop {
        size: i64,
        slide: i64,
    },
    /// Per key, consecutive records less than `gap` apart share a session.
    Session {
        gap: i64,
    },
}

pub fn duration(ms: i64) -> String {
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

impl Windows {
    /// The `--window` flag value.
    pub fn flag(&self) -> String {
        match *self {
            Windows::Tumbling { size } => format!("tumbling:{}", duration(size)),
            Windows::Hop { size, slide } => format!("hop:{}/{}", duration(size), duration(slide)),
            Windows::Session { gap } => format!("session:{}", duration(gap)),
        }
    }

    /// Every `[start, end)` that holds `ts`, straight from the definition. Not for sessions,
    /// whose windows depend on the key's other records (see [`sessions`]).
    pub fn of(&self, ts: i64) -> Vec<(i64, i64)> {
        match *self {
            Windows::Tumbling { size } => {
                let start = ts.div_euclid(size) * size;
                vec![(start, start + size)]
            }
            Windows::Hop { size, slide } => {
                // Every multiple of `slide` in (ts - size, ts] lies between these two.
                let first = (ts - size).div_euclid(slide);
                let last = ts.div_euclid(slide);
                (first..=last)
                    .map(|k| k * slide)
                    .filter(|&start| start <= ts && ts < start + size)
                    .map(|start| (start, start + size))
                    .collect()
            }
            Windows::Session { .. } => panic!("session windows are not a per-record assignment"),
        }
    }
}

/// docs/format.md section 4, `session:G`: per key, sort the records by ts and split where consecutive times
/// differ by `gap` or more; each run is the window `[first ts, last ts + gap)`. Returns
/// `(start, end, key)` → the values of the session.
pub fn sessions(records: &[&Record], gap: i64) -> BTreeMap<(i64, i64, String), Vec<i128>> {
    let mut by_key: BTreeMap<&str, Vec<(i64, i128)>> = BTreeMap::new();
    for r in records {
        by_key.entry(&r.key).or_default().push((r.ts, r.units));
    }
    let mut out = BTreeMap::new();
    for (key, mut list) in by_key {
        list.sort();
        let mut runs: Vec<Vec<(i64, i128)>> = Vec::new();
        for (ts, units) in list {
            match runs.last_mut() {
                Some(run) if ts - run.last().unwrap().0 < gap => run.push((ts, units)),
                _ => runs.push(vec![(ts, units)]),
            }
        }
        for run in runs {
            let (first, last) = (run[0].0, run.last().unwrap().0);
            let values = run.into_iter().map(|(_, units)| units).collect();
            out.insert((first, last + gap, key.to_string()), values);
        }
    }
    out
}

impl Windows {
    /// docs/design/0002: a record's *expiry*, the end of the last window it falls in (for a
    /// session, the end of the window it opens on its own).
    pub fn expiry(&self, ts: i64) -> i64 {
        match *self {
            Windows::Tumbling { size } => ts.div_euclid(size) * size + size,
            Windows::Hop { size, slide } => ts.div_euclid(slide) * slide + size,
            Windows::Session { gap } => ts + gap,
        }
    }
}

/// `--max-out-of-orderness` and `--allowed-lateness`, in milliseconds.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Lateness {
    pub out_of_orderness: i64,
    pub allowed: i64,
}

/// A late record and the watermark `W(e)` it was judged against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Late {
    pub record: Record,
    pub watermark: i64,
}

/// What the step-by-step live semantics give for a history.
#[derive(Clone, Debug, Default)]
pub struct Live {
    /// The table after each epoch: frozen rows plus the aggregates of the open windows.
    pub tables: Vec<Table>,
    /// `W(e)` of each epoch, `None` before the first record.
    pub watermarks: Vec<Option<i64>>,
    /// Late records, in position order.
    pub late: Vec<Late>,
    /// Why the history is not exact (empty if it is): an on-time record of a forgotten id, or
    /// an update of a closed window. An exact history's tables equal a full recompute over
    /// its records that are not late.
    pub inexact: Vec<String>,
    /// Ids forgotten, summed over epochs (for the generator's own checks).
    pub forgotten: usize,
    /// Rows frozen, summed over epochs.
    pub frozen: usize,
    /// (current upserts, current deletes) as a per-worker count of resolution changes sees
    /// them: forgetting an id retracts nothing, so an id that comes back counts twice.
    pub ids: (i64, i64),
}

impl Live {
    pub fn exact(&self) -> bool {
        self.inexact.is_empty()
    }
}

/// The aggregates of one (window, key), in units.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Agg {
    pub count: u64,
    pub sum: i128,
    pub min: i128,
    pub max: i128,
}

/// (window start, window end, key) → aggregates; iterates in snapshot order.
pub type Table = BTreeMap<(i64, i64, String), Agg>;

/// The contract, for one scale and window assignment.
#[derive(Copy, Clone, Debug)]
pub struct Model {
    pub scale: u32,
    pub windows: Windows,
}

impl Model {
    /// docs/format.md section 3: per id, the record with the greatest (version, position) among the records of
    /// epochs `0..=through` (deletes included).
    pub fn current<'a>(
        &self,
        records: &'a [Record],
        through: u64,
    ) -> BTreeMap<&'a str, &'a Record> {
        let mut current: BTreeMap<&str, &Record> = BTreeMap::new();
        for r in records.iter().filter(|r| r.position.0 <= through) {
            let wins = match current.get(r.id.as_str()) {
                Some(old) => (r.version, r.position) > (old.version, old.position),
                None => true,
            };
            if wins {
                current.insert(&r.id, r);
            }
        }
        current
    }

    /// docs/format.md section 4: the full recompute of the table over the records of epochs `0..=through`.
    pub fn table(&self, records: &[Record], through: u64) -> Table {
        let current = self.current(records, through);
        let live: Vec<&Record> = current.values().copied().filter(|r| !r.delete).collect();
        self.aggregate(&live)
    }

    /// docs/format.md section 4: the aggregates of `live` records (current, not deleted), from scratch.
    pub fn aggregate(&self, live: &[&Record]) -> Table {
        let mut groups: BTreeMap<(i64, i64, String), Vec<i128>> = BTreeMap::new();
        if let Windows::Session { gap } = self.windows {
            groups = sessions(live, gap);
        } else {
            for r in live {
                for (start, end) in self.windows.of(r.ts) {
                    groups
                        .entry((start, end, r.key.clone()))
                        .or_default()
                        .push(r.units);
                }
            }
        }
        groups
            .into_iter()
            .map(|(group, values)| (group, agg_of(&values)))
            .collect()
    }

    /// docs/design/0002, "Event time, watermark and allowed lateness" and "Bounded state", step
    /// by step over `epochs` epochs: at the start of epoch `e`, with `W(e)` the greatest ts of
    /// the accepted records of epochs before `e` minus the out-of-orderness and `H(e) = W(e)` minus
    /// the allowed lateness, freeze the rows of closed windows (tumbling and hop: `end <= H`;
    /// session: `end + G <= H`) and forget the ids whose current record has `expiry <= H`; then
    /// route the epoch's late records (`expiry <= H`) to the late list, resolve the others
    /// (a record of a forgotten id is its first record again), and apply the resulting
    /// contributions to open windows only.
    pub fn live(&self, records: &[Record], epochs: u64, lateness: Lateness) -> Live {
        let windows = self.windows;
        let mut live = Live::default();
        let mut max_ts: Option<i64> = None;
        let mut current: BTreeMap<String, Record> = BTreeMap::new();
        let mut seen: BTreeMap<String, ()> = BTreeMap::new();
        let mut frozen: Table = BTreeMap::new();
        // Tumbling and hop: the values of each open window. Sessions: the open records, per key.
        let mut open: BTreeMap<(i64, i64, String), Vec<i128>> = BTreeMap::new();
        let mut open_records: BTreeMap<String, Vec<(i64, i128)>> = BTreeMap::new();
        for epoch in 0..epochs {
            let watermark = max_ts.map(|m| m - lateness.out_of_orderness);
            let horizon = watermark.map(|w| w - lateness.allowed);
            live.watermarks.push(watermark);
            if let Some(h) = horizon {
                // Freeze closed windows.
                match windows {
                    Windows::Session { gap } => {
                        let mut keep: BTreeMap<String, Vec<(i64, i128)>> = BTreeMap::new();
                        for (key, list) in &open_records {
                            let recs: Vec<Record> = list
                                .iter()
                                .map(|&(ts, units)| Record {
                                    id: String::new(),
                                    key: key.clone(),
                                    ts,
                                    units,
                                    delete: false,
                                    version: 0,
                                    position: (0, 0, 0),
                                })
                                .collect();
                            let refs: Vec<&Record> = recs.iter().collect();
                            for ((start, end, key), values) in sessions(&refs, gap) {
                                if end + gap <= h {
                                    live.frozen += 1;
                                    frozen.insert((start, end, key), agg_of(&values));
                                } else {
                                    let list = keep.entry(key).or_default();
                                    list.extend(
                                        recs.iter()
                                            .filter(|r| start <= r.ts && r.ts < end)
                                            .map(|r| (r.ts, r.units)),
                                    );
                                }
                            }
                        }
                        open_records = keep;
                    }
                    _ => {
                        let closed: Vec<_> = open.keys().filter(|g| g.1 <= h).cloned().collect();
                        for group in closed {
                            let values = open.remove(&group).unwrap();
                            live.frozen += 1;
                            frozen.insert(group, agg_of(&values));
                        }
                    }
                }
                // Forget expired ids.
                let before = current.len();
                current.retain(|_, r| windows.expiry(r.ts) > h);
                live.forgotten += before - current.len();
            }

            let mut changes: BTreeMap<String, (Option<Record>, Record)> = BTreeMap::new();
            for r in records.iter().filter(|r| r.position.0 == epoch) {
                if horizon.is_some_and(|h| windows.expiry(r.ts) <= h) {
                    live.late.push(Late {
                        record: r.clone(),
                        watermark: watermark.unwrap(),
                    });
                    continue;
                }
                if seen.contains_key(&r.id) && !current.contains_key(&r.id) {
                    live.inexact.push(format!(
                        "epoch {epoch}: a record of the forgotten id {:?}",
                        r.id
                    ));
                }
                seen.insert(r.id.clone(), ());
                let old = current.get(&r.id);
                if old.is_some_and(|o| (o.version, o.position) >= (r.version, r.position)) {
                    continue;
                }
                let old = old.cloned();
                changes
                    .entry(r.id.clone())
                    .and_modify(|change| change.1 = r.clone())
                    .or_insert_with(|| (old, r.clone()));
                current.insert(r.id.clone(), r.clone());
            }
            for r in records.iter().filter(|r| r.position.0 == epoch) {
                max_ts = Some(max_ts.map_or(r.ts, |m| m.max(r.ts)));
            }

            let closed = |end: i64| horizon.is_some_and(|h| end <= h);
            for (_, (old, new)) in changes {
                let ids = &mut live.ids;
                match &old {
                    Some(old) if old.delete => ids.1 -= 1,
                    Some(_) => ids.0 -= 1,
                    None => {}
                }
                if new.delete {
                    ids.1 += 1
                } else {
                    ids.0 += 1
                }
                for (r, diff) in [(old.as_ref(), -1), (Some(&new), 1)] {
                    let Some(r) = r.filter(|r| !r.delete) else {
                        continue;
                    };
                    if let Windows::Session { gap } = windows {
                        let list = open_records.entry(r.key.clone()).or_default();
                        if diff < 0 {
                            match list.iter().position(|x| *x == (r.ts, r.units)) {
                                Some(at) => {
                                    list.remove(at);
                                }
                                None => live.inexact.push(format!(
                                    "epoch {epoch}: the retraction of {r:?} hits a closed session"
                                )),
                            }
                        } else {
                            let reaches = frozen.keys().any(|(start, end, key)| {
                                *key == r.key && start - gap < r.ts && r.ts < *end
                            });
                            if reaches {
                                live.inexact
                                    .push(format!("epoch {epoch}: {r:?} reaches a closed session"));
                            }
                            list.push((r.ts, r.units));
                        }
                        continue;
                    }
                    for (start, end) in windows.of(r.ts) {
                        if closed(end) {
                            live.inexact.push(format!(
                                "epoch {epoch}: {} of {r:?} in the closed window [{start}, {end})",
                                if diff < 0 {
                                    "the retraction"
                                } else {
                                    "the value"
                                }
                            ));
                            continue;
                        }
                        let values = open.entry((start, end, r.key.clone())).or_default();
                        if diff < 0 {
                            let at = values.iter().position(|v| *v == r.units).unwrap();
                            values.remove(at);
                            if values.is_empty() {
                                open.remove(&(start, end, r.key.clone()));
                            }
                        } else {
                            values.push(r.units);
                        }
                    }
                }
            }
            open_records.retain(|_, list| !list.is_empty());

            let mut table = frozen.clone();
            let open_table: Table = match windows {
                Windows::Session { gap } => {
                    let recs: Vec<Record> = open_records
                        .iter()
                        .flat_map(|(key, list)| {
                            list.iter().map(|&(ts, units)| Record {
                                id: String::new(),
                                key: key.clone(),
                                ts,
                                units,
                                delete: false,
                                version: 0,
                                position: (0, 0, 0),
                            })
                        })
                        .collect();
                    let refs: Vec<&Record> = recs.iter().collect();
                    sessions(&refs, gap)
                        .into_iter()
                        .map(|(group, values)| (group, agg_of(&values)))
                        .collect()
                }
                _ => open
                    .iter()
                    .map(|(group, values)| (group.clone(), agg_of(values)))
                    .collect(),
            };
            for (group, agg) in open_table {
                let clash = table.insert(group.clone(), agg);
                assert!(clash.is_none(), "an open row {group:?} has a frozen twin");
            }
            live.tables.push(table);
        }
        live
    }

    /// (ids whose current record is an upsert, ids whose current record is a delete).
    pub fn id_counts(&self, records: &[Record]) -> (u64, u64) {
        let current = self.current(records, u64::MAX);
        let deleted = current.values().filter(|r| r.delete).count() as u64;
        (current.len() as u64 - deleted, deleted)
    }

    /// docs/format.md section 6: canonical decimal text of `units` at the model's scale.
    pub fn decimal(&self, units: i128) -> String {
        canonical(units, self.scale)
    }

    /// docs/format.md section 6 changelog/snapshot row fields from `window_start` to `mean`, without braces.
    pub fn row_body(&self, (start, end, key): &(i64, i64, String), agg: &Agg) -> String {
        format!(
            r#""window_start":"{}","window_end":"{}","key":{},"count":{},"sum":"{}","min":"{}","max":"{}","mean":"{}""#,
            rfc3339(*start),
            rfc3339(*end),
            serde_json::to_string(key).unwrap(),
            agg.count,
            self.decimal(agg.sum),
            self.decimal(agg.min),
            self.decimal(agg.max),
            self.decimal(mean(agg.sum, agg.count)),
        )
    }

    /// The table as row identity (start text, end text, key) → row body.
    pub fn bodies(&self, table: &Table) -> BTreeMap<(String, String, String), String> {
        table
            .iter()
            .map(|(group, agg)| {
                let id = (rfc3339(group.0), rfc3339(group.1), group.2.clone());
                (id, self.row_body(group, agg))
            })
            .collect()
    }

    /// The expected `snapshot.jsonl`.
    pub fn snapshot_jsonl(&self, table: &Table) -> String {
        let mut out = String::new();
        for (group, agg) in table {
            let _ = writeln!(out, "{{{}}}", self.row_body(group, agg));
        }
        out
    }

    /// The expected `snapshot.csv`.
    pub fn snapshot_csv(&self, table: &Table) -> String {
        let mut out = String::from("window_start,window_end,key,count,sum,min,max,mean\n");
        for ((start, end, key), agg) in table {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{}",
                rfc3339(*start),
                rfc3339(*end),
                csv_field(key),
                agg.count,
                self.decimal(agg.sum),
                self.decimal(agg.min),
                self.decimal(agg.max),
                self.decimal(mean(agg.sum, agg.count)),
            );
        }
        out
    }

    /// docs/format.md section 7: the expected `digests.json`, as JSON.
    pub fn digests(&self, table: &Table) -> serde_json::Value {
        let mut windows: BTreeMap<(i64, i64), String> = BTreeMap::new();
        for ((start, end, key), agg) in table {
            let _ = writeln!(
                windows.entry((*start, *end)).or_default(),
                "{}:{}|{}|{}|{}|{}",
                key.len(),
                key,
                agg.count,
                self.decimal(agg.sum),
                self.decimal(agg.min),
                self.decimal(agg.max),
            );
        }
        let mut whole = String::new();
        let mut list = Vec::new();
        for ((start, end), rows) in &windows {
            let digest = hex(&sha256(rows.as_bytes()));
            let _ = writeln!(whole, "{start}:{end}:{digest}");
            list.push(serde_json::json!({"start": start, "end": end, "digest": digest}));
        }
        serde_json::json!({"table": hex(&sha256(whole.as_bytes())), "windows": list})
    }
}

/// The aggregates of a non-empty list of values.
fn agg_of(values: &[i128]) -> Agg {
    Agg {
        count: values.len() as u64,
        sum: values.iter().sum(),
        min: *values.iter().min().unwrap(),
        max: *values.iter().max().unwrap(),
    }
}

/// Canonical text of `units` × 10^-scale: no exponent, no trailing zeros, `0` for zero.
pub fn canonical(units: i128, scale: u32) -> String {
    let unit = 10u128.pow(scale);
    let (whole, frac) = (units.unsigned_abs() / unit, units.unsigned_abs() % unit);
    let mut text = if units < 0 {
        "-".to_string()
    } else {
        String::new()
    };
    text += &whole.to_string();
    if frac != 0 {
        let digits = format!("{frac:0width$}", width = scale as usize);
        text.push('.');
        text += digits.trim_end_matches('0');
    }
    text
}

/// `sum / count` rounded half-to-even to a whole unit.
pub fn mean(sum: i128, count: u64) -> i128 {
    let count = i128::from(count);
    let (floor, rest) = (sum.div_euclid(count), sum.rem_euclid(count));
    match (2 * rest).cmp(&count) {
        std::cmp::Ordering::Less => floor,
        std::cmp::Ordering::Greater => floor + 1,
        std::cmp::Ordering::Equal => floor + floor.rem_euclid(2),
    }
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
pub fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `YYYY-MM-DDTHH:MM:SS.mmm` of epoch milliseconds, without an offset.
pub fn local_text(ms: i64) -> String {
    let (days, in_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (y, mo, d) = civil(days);
    let (h, mi, s, milli) = (
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000,
    );
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}")
}

/// docs/format.md section 6 time text: RFC 3339 UTC with milliseconds.
pub fn rfc3339(ms: i64) -> String {
    local_text(ms) + "Z"
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// floor(cbrt(n) × 2^32) or floor(sqrt(n) × 2^32), by bisection on exact integers.
fn root_bits(n: u128, cube: bool) -> u32 {
    let (mut lo, mut hi) = (0u128, 1u128 << 36);
    let target = if cube { n << 96 } else { n << 64 };
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        let power = if cube { mid * mid * mid } else { mid * mid };
        if power <= target { lo = mid } else { hi = mid }
    }
    lo as u32 // the fractional 32 bits
}

/// SHA-256 (FIPS 180-4), with its constants derived from the primes rather than copied.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let primes: Vec<u128> = (2u128..)
        .filter(|n| (2..*n).take_while(|d| d * d <= *n).all(|d| n % d != 0))
        .take(64)
        .collect();
    let k: Vec<u32> = primes.iter().map(|&p| root_bits(p, true)).collect();
    let mut h: Vec<u32> = primes[..8].iter().map(|&p| root_bits(p, false)).collect();
    let mut message = data.to_vec();
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&(data.len() as u64 * 8).to_be_bytes());
    for block in message.chunks(64) {
        let mut w = [0u32; 64];
        for i in 0..64 {
            w[i] = if i < 16 {
                u32::from_be_bytes(block[4 * i..4 * i + 4].try_into().unwrap())
            } else {
                let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
                let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
                w[i - 16]
                    .wrapping_add(s0)
                    .wrapping_add(w[i - 7])
                    .wrapping_add(s1)
            };
        }
        let mut v: [u32; 8] = h.clone().try_into().unwrap();
        for i in 0..64 {
            let [a, b, c, d, e, f, g, hh] = v;
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(k[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let t2 = s0.wrapping_add((a & b) ^ (a & c) ^ (b & c));
            v = [t1.wrapping_add(t2), a, b, c, d.wrapping_add(t1), e, f, g];
        }
        for (x, y) in h.iter_mut().zip(v) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 32];
    for (chunk, word) in out.chunks_mut(4).zip(h) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}
