//! Lines of `amend gen`: the buffered writer, and each record's JSON text (and how a bad
//! line mangles it).

use super::*;

pub(super) struct Sink<'w, W: Write> {
    pub(super) w: &'w mut W,
    pub(super) buf: Vec<u8>,
    pub(super) lines: u64,
}

impl<'w, W: Write> Sink<'w, W> {
    pub(super) fn new(w: &'w mut W) -> Self {
        Sink {
            w,
            buf: Vec::with_capacity(FLUSH_AT + 4096),
            lines: 0,
        }
    }

    /// Appends one line (without its newline).
    pub(super) fn push(&mut self, line: &[u8]) -> io::Result<()> {
        self.buf.extend_from_slice(line);
        self.buf.push(b'\n');
        self.lines += 1;
        if self.buf.len() >= FLUSH_AT {
            self.w.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Writes what is left, flushes, and returns the number of lines.
    pub(super) fn finish(self) -> io::Result<u64> {
        self.w.write_all(&self.buf)?;
        self.w.flush()?;
        Ok(self.lines)
    }
}

pub(super) fn push_u64(buf: &mut Vec<u8>, n: u64) {
    push_padded(buf, n, 1);
}

/// Decimal digits of `n`, left-padded with zeros to at least `width` (at most 20).
pub(super) fn push_padded(buf: &mut Vec<u8>, mut n: u64, width: usize) {
    let mut tmp = [b'0'; 20];
    let mut i = tmp.len();
    while n > 0 {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    buf.extend_from_slice(&tmp[i.min(tmp.len() - width)..]);
}

/// An amount in cents as canonical decimal text: `12.5`, `-3.07`, `100`, `0`.
pub(super) fn push_cents(buf: &mut Vec<u8>, cents: i64) {
    let cents_scale = Scale::new(2).expect("2 fractional digits are supported");
    let _ = write!(buf, "{}", Decimal(i128::from(cents)).display(cents_scale));
}

/// Formats epoch milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ`, caching the date of the last day.
pub(super) struct TsFormat {
    pub(super) day: i64,
    pub(super) date: [u8; 11],
}

impl TsFormat {
    pub(super) fn new() -> Self {
        TsFormat {
            day: i64::MIN,
            date: [0; 11],
        }
    }

    /// `ms` must lie in years 1-9999 (checked by `Params::new`).
    pub(super) fn push(&mut self, buf: &mut Vec<u8>, ms: i64) {
        let day = ms.div_euclid(DAY_MS);
        if day != self.day {
            let date = chrono::DateTime::from_timestamp_millis(day * DAY_MS)
                .expect("timestamp in range")
                .date_naive();
            let mut d = Vec::with_capacity(11);
            push_padded(&mut d, date.year() as u64, 4);
            d.push(b'-');
            push_padded(&mut d, u64::from(date.month()), 2);
            d.push(b'-');
            push_padded(&mut d, u64::from(date.day()), 2);
            d.push(b'T');
            self.date.copy_from_slice(&d);
            self.day = day;
        }
        buf.extend_from_slice(&self.date);
        let t = ms.rem_euclid(DAY_MS) as u64;
        push_padded(buf, t / 3_600_000, 2);
        buf.push(b':');
        push_padded(buf, t / 60_000 % 60, 2);
        buf.push(b':');
        push_padded(buf, t / 1_000 % 60, 2);
        buf.push(b'.');
        push_padded(buf, t % 1_000, 3);
        buf.push(b'Z');
    }
}

/// One record as the producer meant it.
#[derive(Clone, Copy)]
pub(super) struct Rec {
    pub(super) id: u64,
    pub(super) key: u64,
    pub(super) ts: i64,
    pub(super) cents: i64,
    pub(super) version: u64,
    pub(super) source: u64,
    pub(super) seq: u64,
    pub(super) delete: bool,
}

/// A required field that a bad line leaves out.
#[derive(Clone, Copy, Debug)]
pub(super) enum Field {
    Id,
    Key,
    Ts,
    Value,
}

/// How a bad line spoils a record.
pub(super) enum Mangle {
    None,
    Omit(Field),
    /// Raw JSON text in place of the value.
    Value(String),
    /// Raw JSON text in place of the ts.
    Ts(&'static str),
    Op(&'static str),
}

/// Appends the record as one JSON line (without its newline).
pub(super) fn push_rec(buf: &mut Vec<u8>, tsf: &mut TsFormat, r: &Rec, m: &Mangle) {
    buf.push(b'{');
    let mut sep = false;
    let mut field = |buf: &mut Vec<u8>, name: &str| {
        if sep {
            buf.push(b',');
        }
        sep = true;
        buf.push(b'"');
        buf.extend_from_slice(name.as_bytes());
        buf.extend_from_slice(b"\":");
    };
    if !matches!(m, Mangle::Omit(Field::Id)) {
        field(buf, "id");
        buf.extend_from_slice(b"\"e");
        push_padded(buf, r.id, 7);
        buf.push(b'"');
    }
    if !matches!(m, Mangle::Omit(Field::Key)) {
        field(buf, "key");
        buf.extend_from_slice(b"\"k");
        push_padded(buf, r.key, 4);
        buf.push(b'"');
    }
    match m {
        Mangle::Omit(Field::Ts) => {}
        Mangle::Ts(raw) => {
            field(buf, "ts");
            buf.extend_from_slice(raw.as_bytes());
        }
        _ => {
            field(buf, "ts");
            buf.push(b'"');
            tsf.push(buf, r.ts);
            buf.push(b'"');
        }
    }
    match m {
        Mangle::Omit(Field::Value) => {}
        Mangle::Value(raw) => {
            field(buf, "value");
            buf.extend_from_slice(raw.as_bytes());
        }
        _ => {
            field(buf, "value");
            push_cents(buf, r.cents);
        }
    }
    field(buf, "version");
    push_u64(buf, r.version);
    field(buf, "source");
    buf.extend_from_slice(b"\"p");
    push_padded(buf, r.source, 2);
    buf.push(b'"');
    field(buf, "seq");
    push_u64(buf, r.seq);
    match m {
        Mangle::Op(op) => {
            field(buf, "op");
            buf.push(b'"');
            buf.extend_from_slice(op.as_bytes());
            buf.push(b'"');
        }
        _ if r.delete => {
            field(buf, "op");
            buf.extend_from_slice(b"\"delete\"");
        }
        _ => {}
    }
    buf.push(b'}');
}
