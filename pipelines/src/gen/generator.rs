//! The generator of `amend gen`: the events, the corrections and the stream, and the replay
//! candidates they draw from.

use super::*;

/// Replay candidates of the events file: the last `RING` lines and a uniform sample of all.
#[derive(Default)]
pub(super) struct History {
    pub(super) ring: Vec<Candidate>,
    pub(super) next: usize,
    pub(super) reservoir: Vec<Candidate>,
    pub(super) seen: u64,
}

/// A line that may be replayed, while it is still the current record of its id.
pub(super) struct Candidate {
    pub(super) line: Vec<u8>,
    pub(super) id: u64,
    pub(super) current: bool,
}

impl Candidate {
    pub(super) fn new(line: &[u8], id: u64) -> Candidate {
        Candidate {
            line: line.to_vec(),
            id,
            current: true,
        }
    }

    pub(super) fn overwrite(&mut self, line: &[u8], id: u64) {
        overwrite(&mut self.line, line);
        (self.id, self.current) = (id, true);
    }
}

pub(super) fn overwrite(slot: &mut Vec<u8>, line: &[u8]) {
    slot.clear();
    slot.extend_from_slice(line);
}

impl History {
    /// Adds the line of a fresh event of id `id`.
    pub(super) fn add(&mut self, rng: &mut Random, line: &[u8], id: u64) {
        if self.ring.len() < RING {
            self.ring.push(Candidate::new(line, id));
        } else {
            self.ring[self.next].overwrite(line, id);
        }
        self.next = (self.next + 1) % RING;
        self.seen += 1;
        if self.reservoir.len() < RESERVOIR {
            self.reservoir.push(Candidate::new(line, id));
        } else {
            let r = rng.below(self.seen);
            if r < RESERVOIR as u64 {
                self.reservoir[r as usize].overwrite(line, id);
            }
        }
    }

    /// A recent line mostly, a far-back one a fifth of the time. Not empty.
    pub(super) fn pick(&self, rng: &mut Random) -> &Candidate {
        if rng.below(5) == 0 {
            &self.reservoir[rng.index(self.reservoir.len())]
        } else {
            &self.ring[rng.index(self.ring.len())]
        }
    }

    /// A line that is still its id's current record, if one of a few picks finds one.
    pub(super) fn pick_current(&self, rng: &mut Random) -> Option<&[u8]> {
        if self.seen == 0 {
            return None;
        }
        (0..8)
            .map(|_| self.pick(rng))
            .find(|c| c.current)
            .map(|c| c.line.as_slice())
    }

    /// Id `id` has a new current record: its lines here are no longer safe to replay.
    pub(super) fn superseded(&mut self, id: u64) {
        for c in self.ring.iter_mut().chain(&mut self.reservoir) {
            if c.id == id {
                c.current = false;
            }
        }
    }
}

/// What the generator keeps of an id that the corrections file may touch.
pub(super) struct Slot {
    pub(super) rec: Rec,
    /// Bumped whenever the id's current record changes.
    pub(super) generation: u32,
}

/// A correction line kept as a replay candidate.
pub(super) struct Sent {
    pub(super) line: Vec<u8>,
    pub(super) slot: usize,
    /// The id of the record: in a stream, the slot may hold another id by now.
    pub(super) id: u64,
    pub(super) generation: u32,
    pub(super) stale: bool,
}

// Line kinds of the events file.
pub(super) const E_BAD: usize = 0;
pub(super) const E_REPLAY: usize = 1;
pub(super) const E_FRESH: usize = 2;

// Line kinds of the corrections file (in a stream, after the events kinds: `CORRECTION + C_*`).
pub(super) const C_BAD: usize = 0;
pub(super) const C_REPLAY: usize = 1;
pub(super) const C_STALE: usize = 2;
pub(super) const C_DELETE: usize = 3;
pub(super) const C_NEW_ID: usize = 4;
pub(super) const C_UPDATE: usize = 5;
pub(super) const CORRECTION: usize = 3;

/// In a stream, corrections touch only the most recent of the ids: at most this many are kept.
pub(super) const STREAM_SLOTS: usize = 1 << 12;

/// What a line of a stream did, beyond being written.
pub(super) enum Made {
    /// A bad line or a replay.
    Other,
    /// A fresh event.
    Fresh(Rec),
    /// A correction record for the id in this slot (`true` if stale).
    Correction(usize, bool),
}

pub(super) struct Generator<'p> {
    pub(super) p: &'p Params,
    pub(super) rng: Random,
    /// Last sequence number of each source.
    pub(super) seqs: Vec<u64>,
    pub(super) next_id: u64,
    pub(super) tsf: TsFormat,
    pub(super) line: Vec<u8>,
    /// The ids that the corrections file touches (chosen while the events file is written).
    pub(super) slots: Vec<Slot>,
    /// Slots whose version is at least 1 (candidates for stale records; not kept in a stream).
    pub(super) versioned: Vec<usize>,
    /// In a stream, the event time it has reached; `None` while writing the files.
    pub(super) position: Option<i64>,
    /// In a stream, the slot the next new id overwrites.
    pub(super) next_slot: usize,
    pub(super) bad_lines: u64,
    /// With `--drop-seq`: its own random stream, so that every other line stays as without it.
    pub(super) drops: Option<Random>,
    pub(super) dropped_lines: u64,
    /// With `--drop-seq`: the audit log's lines, and their own random stream.
    pub(super) audit: Option<(Random, Vec<String>)>,
}

impl<'p> Generator<'p> {
    pub(super) fn new(p: &'p Params, seed: u64) -> Self {
        Generator {
            p,
            rng: Random(ChaCha8Rng::seed_from_u64(seed)),
            seqs: vec![0; p.sources as usize],
            next_id: 0,
            tsf: TsFormat::new(),
            line: Vec::with_capacity(256),
            slots: Vec::new(),
            versioned: Vec::new(),
            position: None,
            next_slot: 0,
            bad_lines: 0,
            drops: (p.drop_seq.0 > 0)
                .then(|| Random(ChaCha8Rng::seed_from_u64(seed ^ 0x6761_7073))),
            dropped_lines: 0,
            audit: (p.drop_seq.0 > 0).then(|| {
                (
                    Random(ChaCha8Rng::seed_from_u64(seed ^ 0x6175_6469)),
                    Vec::new(),
                )
            }),
        }
    }

    pub(super) fn corrections_lines(&self) -> u64 {
        count(self.p.events, self.p.corrections)
    }

    pub(super) fn end_ms(&self) -> i64 {
        self.p.start_ms + self.p.span_ms - 1
    }

    pub(super) fn random_ts(&mut self) -> i64 {
        self.rng.between(self.p.start_ms, self.end_ms())
    }

    pub(super) fn random_key(&mut self) -> u64 {
        // A quarter of the records go to the first tenth of the keys: some keys are hot.
        if self.rng.below(4) == 0 {
            self.rng.below((self.p.keys / 10).max(1))
        } else {
            self.rng.below(self.p.keys)
        }
    }

    pub(super) fn other_key(&mut self, key: u64) -> u64 {
        if self.p.keys == 1 {
            return key;
        }
        let step = 1 + self.rng.below(self.p.keys - 1);
        if key >= self.p.keys - step {
            key - (self.p.keys - step)
        } else {
            key + step
        }
    }

    pub(super) fn random_cents(&mut self) -> i64 {
        match self.rng.below(50) {
            0 => 0,
            1 => self.rng.between(-100_000_000_000, 100_000_000_000),
            2..=7 => self.rng.between(-200, 1_999) * 100,
            8..=12 => -self.rng.between(1, 10_000),
            _ => self.rng.between(1, 100_000),
        }
    }

    pub(super) fn other_cents(&mut self, cents: i64) -> i64 {
        loop {
            let c = self.random_cents();
            if c != cents {
                return c;
            }
        }
    }

    pub(super) fn random_source(&mut self) -> u64 {
        self.rng.below(self.p.sources)
    }

    pub(super) fn next_seq(&mut self, source: u64) -> u64 {
        let s = &mut self.seqs[source as usize];
        *s += 1;
        *s
    }

    /// Writes `r` into the line buffer.
    pub(super) fn format(&mut self, r: &Rec) {
        self.line.clear();
        push_rec(&mut self.line, &mut self.tsf, r, &Mangle::None);
    }

    /// Writes a bad line into the line buffer: one of the ways a real producer goes wrong. It
    /// names an id that exists (or the next one) and the next seq of its source, consuming none.
    pub(super) fn bad_line(&mut self, ts: i64) {
        let source = self.random_source();
        let r = Rec {
            id: self.rng.below(self.next_id + 1),
            key: self.random_key(),
            ts,
            cents: self.random_cents(),
            version: 0,
            source,
            seq: self.seqs[source as usize] + 1,
            delete: false,
        };
        const TEXT: [&str; 6] = [
            "garbage",
            "<html><body><h1>502 Bad Gateway</h1></body></html>",
            "ERROR: connection reset by peer",
            "[1,2,3]",
            "null",
            "id,key,ts,value",
        ];
        const BAD_TS: [&str; 6] = [
            "\"2026-13-45T25:61:00.000Z\"",
            "\"2026-02-30T10:15:00.000Z\"",
            "\"yesterday\"",
            "\"\"",
            "\"2026-11-20T10:15:00.000\"",
            "true",
        ];
        const NON_FINITE: [&str; 4] = ["NaN", "Infinity", "-Infinity", "1e400"];
        const OPS: [&str; 3] = ["merge", "truncate", "replace"];
        self.line.clear();
        let mangle = match self.rng.below(10) {
            0 => {
                push_rec(&mut self.line, &mut self.tsf, &r, &Mangle::None);
                let keep = 1 + self.rng.index(self.line.len() - 1);
                self.line.truncate(keep);
                return;
            }
            1 => {
                let text = TEXT[self.rng.index(TEXT.len())];
                self.line.extend_from_slice(text.as_bytes());
                return;
            }
            2 => Mangle::Omit([Field::Id, Field::Key, Field::Ts, Field::Value][self.rng.index(4)]),
            3 => {
                let mut text = vec![b'"'];
                push_cents(&mut text, r.cents);
                text.push(b'"');
                Mangle::Value(String::from_utf8(text).expect("ascii"))
            }
            4 | 5 => {
                // Seven fractional digits, the last one not zero.
                let frac = self.rng.below(1_000_000) * 10 + 1 + self.rng.below(9);
                Mangle::Value(format!("{}.{frac:07}", r.cents / 100))
            }
            6 => Mangle::Value(NON_FINITE[self.rng.index(NON_FINITE.len())].to_owned()),
            7 | 8 => Mangle::Ts(BAD_TS[self.rng.index(BAD_TS.len())]),
            _ => Mangle::Op(OPS[self.rng.index(OPS.len())]),
        };
        push_rec(&mut self.line, &mut self.tsf, &r, &mangle);
    }

    /// The number of lines of each kind of the events file, indexed by `E_*`.
    pub(super) fn event_counts(&self) -> [u64; 3] {
        let total = self.p.events;
        let bad = count(total, self.p.bad);
        // Keep at least one original line to replay.
        let replays = if total > bad {
            count(total, self.p.replays).min(total - bad - 1)
        } else {
            0
        };
        [bad, replays, total - bad - replays]
    }

    pub(super) fn events_file<W: Write>(&mut self, out: &mut Sink<W>) -> io::Result<()> {
        let total = self.p.events;
        let mut counts = self.event_counts();
        let fresh = counts[E_FRESH];
        let mut targets = self.corrections_lines().div_ceil(2).min(fresh);
        let span = i128::from(self.p.span_ms);
        let jitter = (self.p.span_ms / fresh.max(1) as i64).saturating_mul(2);
        let mut history = History::default();
        let mut j = 0u64; // fresh events so far
        for _ in 0..total {
            let mut kind = self.rng.pick(&counts);
            if kind == E_REPLAY && history.seen == 0 {
                kind = E_FRESH; // a replay needs an original; there is one still to come
            }
            counts[kind] -= 1;
            let position =
                self.p.start_ms + (span * i128::from(j) / i128::from(fresh.max(1))) as i64;
            match kind {
                E_BAD => {
                    self.bad_line(position);
                    self.bad_lines += 1;
                    out.push(&self.line)?;
                }
                E_REPLAY => out.push(&history.pick(&mut self.rng).line)?,
                _ => {
                    let rec = self.fresh(position, jitter);
                    let p = self.p.drop_seq;
                    if self.drops.as_mut().is_some_and(|r| r.chance(p)) {
                        self.dropped_lines += 1;
                        self.audit_line(self.p.audit_coverage);
                    } else {
                        out.push(&self.line)?;
                        self.audit_line(Prob::new(0.01));
                    }
                    history.add(&mut self.rng, &self.line, rec.id);
                    // Selection sampling: exactly `targets` of the fresh events, uniformly.
                    if targets > 0 && self.rng.below(fresh - j) < targets {
                        targets -= 1;
                        self.add_slot(rec);
                    }
                    j += 1;
                }
            }
        }
        Ok(())
    }

    /// With `--drop-seq`: with probability `p`, the event in the line buffer as an audit-log
    /// line, sometimes after an unrelated one. Uses the audit log's own random stream.
    pub(super) fn audit_line(&mut self, p: Prob) {
        let Some((rng, audit)) = self.audit.as_mut() else {
            return;
        };
        if rng.chance(Prob::new(0.02)) {
            audit.push("2026-11-26T00:00:00.000Z INFO heartbeat ok\n".to_string());
        }
        if !rng.chance(p) {
            return;
        }
        let Ok(event) = serde_json::from_slice::<serde_json::Value>(&self.line) else {
            return;
        };
        let field = |name: &str| match &event[name] {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        audit.push(format!(
            "2026-11-26T00:00:00.000Z INFO producer={} seq={} accepted id={} key={} ts={} value={}\n",
            field("source"),
            field("seq"),
            field("id"),
            field("key"),
            field("ts"),
            field("value"),
        ));
    }

    /// A fresh event of a new id near the stream position `position` (behind it if late),
    /// written into the line buffer.
    pub(super) fn fresh(&mut self, position: i64, jitter: i64) -> Rec {
        let ts = if self.rng.chance(self.p.late) {
            self.behind(position, self.p.late_min)
        } else {
            (position + self.rng.between(0, jitter)).min(self.end_ms())
        };
        let source = self.random_source();
        let rec = Rec {
            id: self.next_id,
            key: self.random_key(),
            ts,
            cents: self.random_cents(),
            version: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 2]
                [self.rng.index(20)],
            source,
            seq: self.next_seq(source),
            delete: false,
        };
        self.next_id += 1;
        self.format(&rec);
        rec
    }

    /// A time between `least` and `late_max` before `position`, not before the start.
    pub(super) fn behind(&mut self, position: i64, least: i64) -> i64 {
        (position - self.rng.between(least, self.p.late_max)).max(self.p.start_ms)
    }

    /// Makes `rec` an id that corrections may touch; returns its slot. A stream keeps the last
    /// `STREAM_SLOTS` ids only, overwriting the oldest.
    pub(super) fn add_slot(&mut self, rec: Rec) -> usize {
        let slot = Slot { rec, generation: 0 };
        if self.position.is_some() {
            let i = self.next_slot;
            self.next_slot = (i + 1) % STREAM_SLOTS;
            if i == self.slots.len() {
                self.slots.push(slot);
            } else {
                self.slots[i] = slot;
            }
            return i;
        }
        if rec.version >= 1 {
            self.versioned.push(self.slots.len());
        }
        self.slots.push(slot);
        self.slots.len() - 1
    }

    /// Writes the stream: the lines of both files, interleaved at random, their event times
    /// advancing together. Returns the number of lines of events kinds and of corrections kinds.
    pub(super) fn stream<W: Write>(&mut self, out: &mut Sink<W>) -> io::Result<(u64, u64)> {
        let [bad, replays, fresh] = self.event_counts();
        let [c_bad, c_replays, stale, deletes, new_ids, updates] = self.correction_counts();
        let mut counts = [
            bad, replays, fresh, c_bad, c_replays, stale, deletes, new_ids, updates,
        ];
        let span = i128::from(self.p.span_ms);
        let jitter = (self.p.span_ms / fresh.max(1) as i64).saturating_mul(2);
        let mut history = History::default();
        let mut sent: Vec<Sent> = Vec::new();
        let mut next_sent = 0usize;
        let mut written = [0u64; 2];
        let mut j = 0u64; // fresh events so far
        self.position = Some(self.p.start_ms);
        while counts.iter().any(|&n| n > 0) {
            let position =
                self.p.start_ms + (span * i128::from(j) / i128::from(fresh.max(1))) as i64;
            self.position = Some(position);
            let chosen = self.rng.pick(&counts);
            // A kind impossible now (a replay with nothing to repeat, a correction with no id
            // to touch) gives its turn to a fresh event, and comes later.
            let (kind, made) = match self.stream_line(chosen, jitter, &history, &sent) {
                Some(made) => (chosen, made),
                None if counts[E_FRESH] > 0 => (E_FRESH, Made::Fresh(self.fresh(position, jitter))),
                None => {
                    // No fresh event is left to swap with: the turn, and its count, go to an
                    // update or a new id.
                    counts[chosen] -= 1;
                    let kind = CORRECTION
                        + if self.slots.is_empty() {
                            C_NEW_ID
                        } else {
                            C_UPDATE
                        };
                    counts[kind] += 1;
                    let made = self.stream_line(kind, jitter, &history, &sent);
                    (
                        kind,
                        made.expect("an update or a new id is always possible"),
                    )
                }
            };
            counts[kind] -= 1;
            written[usize::from(kind >= CORRECTION)] += 1;
            out.push(&self.line)?;
            match made {
                Made::Other => {}
                Made::Fresh(rec) => {
                    history.add(&mut self.rng, &self.line, rec.id);
                    self.add_slot(rec);
                    j += 1;
                }
                Made::Correction(slot, stale) => {
                    if !stale {
                        history.superseded(self.slots[slot].rec.id);
                    }
                    self.remember(&mut sent, &mut next_sent, slot, stale);
                }
            }
        }
        Ok((written[0], written[1]))
    }

    /// Writes a line of `kind` (`E_*`, or `CORRECTION + C_*`) into the line buffer, if one is
    /// possible now.
    pub(super) fn stream_line(
        &mut self,
        kind: usize,
        jitter: i64,
        history: &History,
        sent: &[Sent],
    ) -> Option<Made> {
        let position = self.position.expect("writing a stream");
        let copy = |g: &mut Self, line: &[u8]| {
            overwrite(&mut g.line, line);
            Made::Other
        };
        match kind {
            E_BAD => {}
            E_REPLAY => {
                let line = history.pick_current(&mut self.rng)?;
                return Some(copy(self, line));
            }
            E_FRESH => return Some(Made::Fresh(self.fresh(position, jitter))),
            _ => match kind - CORRECTION {
                C_BAD => {}
                C_REPLAY => {
                    let i = self.find_replay(sent)?;
                    return Some(copy(self, &sent[i].line));
                }
                _ if self.slots.is_empty() && kind - CORRECTION != C_NEW_ID => return None,
                C_STALE => {
                    let i = (0..8)
                        .map(|_| self.rng.index(self.slots.len()))
                        .find(|&i| self.slots[i].rec.version >= 1)?;
                    return Some(Made::Correction(self.stale_of(i), true));
                }
                C_DELETE => return Some(Made::Correction(self.delete(), false)),
                C_NEW_ID => return Some(Made::Correction(self.new_id(), false)),
                _ => return Some(Made::Correction(self.update(), false)),
            },
        }
        self.bad_line(position);
        self.bad_lines += 1;
        Some(Made::Other)
    }

    /// The number of lines of each kind of the corrections file, indexed by `C_*`.
    pub(super) fn correction_counts(&self) -> [u64; 6] {
        let total = self.corrections_lines();
        let bad = count(total, self.p.bad);
        let mut rest = total - bad;
        let mut take = |p: f64| {
            let n = count(total, p).min(rest);
            rest -= n;
            n
        };
        let deletes = take(self.p.deletes);
        let stale = take(self.p.stale);
        let replays = take(self.p.replays);
        let new_ids = take(NEW_ID_FRACTION);
        [bad, replays, stale, deletes, new_ids, rest]
    }

    pub(super) fn corrections_file<W: Write>(&mut self, out: &mut Sink<W>) -> io::Result<()> {
        let total = self.corrections_lines();
        let mut counts = self.correction_counts();
        let mut sent: Vec<Sent> = Vec::new();
        let mut next_sent = 0usize;
        for _ in 0..total {
            let chosen = self.rng.pick(&counts);
            let replay = if chosen == C_REPLAY {
                self.find_replay(&sent)
            } else {
                None
            };
            let possible = |kind: usize, g: &Self| match kind {
                C_REPLAY => replay.is_some(),
                C_STALE => !g.versioned.is_empty(),
                C_DELETE | C_UPDATE => !g.slots.is_empty(),
                _ => true,
            };
            let kind = if possible(chosen, self) {
                counts[chosen] -= 1;
                chosen
            } else if counts[C_UPDATE] > 0 && possible(C_UPDATE, self) {
                // Swap with an update; the chosen kind comes later, once it is possible.
                counts[C_UPDATE] -= 1;
                C_UPDATE
            } else {
                counts[chosen] -= 1;
                if possible(C_UPDATE, self) {
                    C_UPDATE
                } else {
                    C_NEW_ID
                }
            };
            let (slot, stale) = match kind {
                C_BAD => {
                    let ts = self.random_ts();
                    self.bad_line(ts);
                    self.bad_lines += 1;
                    out.push(&self.line)?;
                    continue;
                }
                C_REPLAY => {
                    out.push(&sent[replay.expect("possible")].line)?;
                    continue;
                }
                C_STALE => (self.stale(), true),
                C_DELETE => (self.delete(), false),
                C_NEW_ID => (self.new_id(), false),
                _ => (self.update(), false),
            };
            out.push(&self.line)?;
            self.remember(&mut sent, &mut next_sent, slot, stale);
        }
        Ok(())
    }

    /// Keeps the correction line in the buffer, written for `slot`, as a replay candidate.
    pub(super) fn remember(
        &self,
        sent: &mut Vec<Sent>,
        next_sent: &mut usize,
        slot: usize,
        stale: bool,
    ) {
        let (id, generation) = (self.slots[slot].rec.id, self.slots[slot].generation);
        if sent.len() < RING {
            sent.push(Sent {
                line: self.line.clone(),
                slot,
                id,
                generation,
                stale,
            });
        } else {
            let s = &mut sent[*next_sent];
            overwrite(&mut s.line, &self.line);
            (s.slot, s.id, s.generation, s.stale) = (slot, id, generation, stale);
        }
        *next_sent = (*next_sent + 1) % RING;
    }

    /// A sent correction line whose replay is unambiguous: it is still its id's current record,
    /// or it is stale (a lower version than the current one).
    pub(super) fn find_replay(&mut self, sent: &[Sent]) -> Option<usize> {
        if sent.is_empty() {
            return None;
        }
        (0..8).map(|_| self.rng.index(sent.len())).find(|&i| {
            let s = &sent[i];
            let slot = &self.slots[s.slot];
            s.stale || (slot.rec.id == s.id && slot.generation == s.generation)
        })
    }

    /// A same-version correction or a new version of a known id: a new value, sometimes a new
    /// key or ts. An upsert brings back a deleted id.
    pub(super) fn update(&mut self) -> usize {
        let i = self.rng.index(self.slots.len());
        let mut r = self.slots[i].rec;
        if self.rng.below(2) == 0 {
            r.version += 1;
            if r.version == 1 && self.position.is_none() {
                self.versioned.push(i);
            }
        }
        r.cents = self.other_cents(r.cents);
        if self.rng.below(5) == 0 {
            r.key = self.other_key(r.key);
        }
        if self.rng.below(5) == 0 {
            r.ts = self.moved_ts(0);
        }
        r.delete = false;
        self.send(i, r)
    }

    /// A delete at the id's current version, carrying its current key, ts and value.
    pub(super) fn delete(&mut self) -> usize {
        let mut i = self.rng.index(self.slots.len());
        for _ in 0..8 {
            if !self.slots[i].rec.delete {
                break;
            }
            i = self.rng.index(self.slots.len());
        }
        let mut r = self.slots[i].rec;
        r.delete = true;
        self.send(i, r)
    }

    /// A late event for an id never seen before.
    pub(super) fn new_id(&mut self) -> usize {
        let source = self.random_source();
        let rec = Rec {
            id: self.next_id,
            key: self.random_key(),
            ts: self.moved_ts(self.p.late_min),
            cents: self.random_cents(),
            version: u64::from(self.rng.below(5) == 0),
            source,
            seq: self.next_seq(source),
            delete: false,
        };
        self.next_id += 1;
        self.format(&rec);
        self.add_slot(rec)
    }

    /// A lower version than the id's current one, with a different value (and sometimes another
    /// key or ts): a correct consumer ignores it. Leaves the id's state alone.
    pub(super) fn stale(&mut self) -> usize {
        let i = self.versioned[self.rng.index(self.versioned.len())];
        self.stale_of(i)
    }

    /// A stale record of slot `i`, whose version is at least 1.
    pub(super) fn stale_of(&mut self, i: usize) -> usize {
        let cur = self.slots[i].rec;
        let mut r = cur;
        r.version = self.rng.below(cur.version);
        r.cents = self.other_cents(cur.cents);
        r.delete = false;
        if self.rng.below(4) == 0 {
            r.key = self.other_key(r.key);
        }
        if self.rng.below(4) == 0 {
            r.ts = self.moved_ts(0);
        }
        r.seq = self.next_seq(r.source);
        self.format(&r);
        i
    }

    /// The time of a corrected or late record: anywhere in the span for the files; in a stream,
    /// between `least` and `--max-delay` behind the stream position.
    pub(super) fn moved_ts(&mut self, least: i64) -> i64 {
        match self.position {
            None => self.random_ts(),
            Some(position) => self.behind(position, least),
        }
    }

    /// Sends `r` as the new current record of slot `i`, with the next seq of its source.
    pub(super) fn send(&mut self, i: usize, mut r: Rec) -> usize {
        r.seq = self.next_seq(r.source);
        self.format(&r);
        let slot = &mut self.slots[i];
        slot.rec = r;
        slot.generation += 1;
        i
    }
}
