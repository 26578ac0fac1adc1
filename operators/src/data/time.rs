//! Event time: millisecond timestamps, RFC 3339 text and durations.
//!
//! Event time is held as `i64` milliseconds since the Unix epoch, UTC. Text timestamps must be
//! RFC 3339 with an offset; digits finer than a millisecond are floored, so `…00.9999Z` is
//! `…00.999Z` and a time before 1970 floors towards the past. Integers are epoch milliseconds.
//! Timestamps are kept within the range RFC 3339 output can print (years 1 to 9999), so every
//! window bound derived from them stays printable and never overflows.

use chrono::{DateTime, SecondsFormat, Utc};

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

/// The earliest accepted event time: 0001-01-01T00:00:00.000Z.
pub const MIN_MILLIS: Millis = -62_135_596_800_000;
/// The latest accepted event time: 9999-12-31T23:59:59.999Z.
pub const MAX_MILLIS: Millis = 253_402_300_799_999;

/// Why a timestamp or duration was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// Text that is not RFC 3339 with an offset.
    #[error("`{text}` is not an RFC 3339 timestamp with an offset (e.g. 2026-11-20T10:15:00Z)")]
    NotRfc3339 {
        /// The offending text, shortened.
        text: String,
    },
    /// A time outside years 1 to 9999.
    #[error("timestamp `{text}` is outside years 1 to 9999")]
    OutOfRange {
        /// The offending text, shortened.
        text: String,
    },
    /// A malformed duration.
    #[error(
        "`{text}` is not a duration: write a positive whole number and a unit ms, s, m, h or d (e.g. 500ms, 30s, 5m, 1h, 1d)"
    )]
    BadDuration {
        /// The offending text, shortened.
        text: String,
    },
}

/// Cuts `text` to at most 64 characters for an error message.
pub(crate) fn shorten(text: &str) -> String {
    match text.char_indices().nth(64) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Parses an RFC 3339 timestamp with an offset into epoch milliseconds, flooring finer digits.
pub fn parse_rfc3339(text: &str) -> Result<Millis, TimeError> {
    if let Some(ms) = common_rfc3339(text) {
        return check_range(ms, text);
    }
    let parsed = DateTime::parse_from_rfc3339(text).map_err(|_| TimeError::NotRfc3339 {
        text: shorten(text),
    })?;
    check_range(parsed.timestamp_millis(), text)
}

/// The common form, `YYYY-MM-DDTHH:MM:SS[.digits](Z|±HH:MM)` with a valid date, hours below 24
/// and seconds below 60, read without chrono; `None` for anything else, which chrono then
/// reads (or rejects). Both give the same milliseconds for what this reads.
fn common_rfc3339(text: &str) -> Option<Millis> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    if b[16] != b':' {
        return None;
    }
    let number = |from: usize, to: usize| -> Option<i64> {
        let mut n = 0;
        for &d in &b[from..to] {
            let digit = d.wrapping_sub(b'0');
            if digit > 9 {
                return None;
            }
            n = n * 10 + i64::from(digit);
        }
        Some(n)
    };
    let (year, month, day) = (number(0, 4)?, number(5, 7)?, number(8, 10)?);
    let (hour, minute, second) = (number(11, 13)?, number(14, 16)?, number(17, 19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut at = 19;
    let mut millis = 0;
    if b[at] == b'.' {
        let digits = b[at + 1..]
            .iter()
            .take_while(|d| d.is_ascii_digit())
            .count();
        if !(1..=9).contains(&digits) {
            return None;
        }
        // The first three digits, padded: finer digits are floored.
        let ms_digits = digits.min(3);
        millis = number(at + 1, at + 1 + ms_digits)? * 10i64.pow(3 - ms_digits as u32);
        at += 1 + digits;
    }
    let offset_minutes = match &b[at..] {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (number(at + 1, at + 3)?, number(at + 4, at + 6)?);
            if h > 23 || m > 59 {
                return None;
            }
            if *sign == b'+' {
                h * 60 + m
            } else {
                -(h * 60 + m)
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1_000 + millis)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Accepts epoch milliseconds within the supported range.
pub fn check_millis(ms: i64) -> Result<Millis, TimeError> {
    check_range(ms, &ms.to_string())
}

fn check_range(ms: i64, text: &str) -> Result<Millis, TimeError> {
    if (MIN_MILLIS..=MAX_MILLIS).contains(&ms) {
        Ok(ms)
    } else {
        Err(TimeError::OutOfRange {
            text: shorten(text),
        })
    }
}

/// Formats epoch milliseconds as RFC 3339 UTC with milliseconds: `2026-11-20T10:15:00.000Z`.
pub fn format_millis(ms: Millis) -> String {
    match DateTime::<Utc>::from_timestamp_millis(ms) {
        Some(time) => time.to_rfc3339_opts(SecondsFormat::Millis, true),
        // Unreachable for accepted event times and the window bounds derived from them.
        None => ms.to_string(),
    }
}

/// Parses a duration: a positive whole number and a unit `ms`, `s`, `m`, `h` or `d`.
///
/// ```
/// use amend_operators::time::parse_duration;
/// assert_eq!(parse_duration("500ms"), Ok(500));
/// assert_eq!(parse_duration("5m"), Ok(300_000));
/// assert!(parse_duration("5").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Millis, TimeError> {
    let bad = || TimeError::BadDuration {
        text: shorten(text),
    };
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let unit_ms: i64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    let number: i64 = number.parse().map_err(|_| bad())?;
    let ms = number.checked_mul(unit_ms).ok_or_else(bad)?;
    // A duration longer than the whole supported time range is certainly a mistake.
    if ms <= 0 || ms > MAX_MILLIS - MIN_MILLIS {
        return Err(bad());
    }
    Ok(ms)
}

/// Formats a duration in the largest unit that divides it: `90000` → `90s`, `3600000` → `1h`.
pub fn format_duration(ms: Millis) -> String {
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms % size == 0 {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_with_offsets_and_fractions() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:01.5Z"), Ok(1_500));
        assert_eq!(parse_rfc3339("1970-01-01T01:00:00+01:00"), Ok(0));
        assert_eq!(
            parse_rfc3339("2026-11-20T10:15:00.123Z"),
            Ok(1_795_169_700_123)
        );
        assert_eq!(
            parse_rfc3339("2026-11-20T10:15:00.123999999Z"),
            Ok(1_795_169_700_123)
        );
    }

    #[test]
    fn sub_millisecond_digits_floor_also_before_1970() {
        // 1969-12-31T23:59:59.9995Z is 0.5 ms before the epoch: floored to -1 ms, not 0.
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59.9995Z"), Ok(-1));
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59.999Z"), Ok(-1));
    }

    #[test]
    fn rejects_timestamps_without_offset_or_garbage() {
        for bad in [
            "2026-11-20T10:15:00",
            "2026-11-20",
            "yesterday",
            "",
            "2026-13-01T00:00:00Z",
        ] {
            assert!(
                matches!(parse_rfc3339(bad), Err(TimeError::NotRfc3339 { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn epoch_millis_range_is_checked() {
        assert_eq!(check_millis(-5), Ok(-5));
        assert_eq!(check_millis(MAX_MILLIS), Ok(MAX_MILLIS));
        assert!(check_millis(MAX_MILLIS + 1).is_err());
        assert!(check_millis(i64::MIN).is_err());
    }

    #[test]
    fn formats_utc_with_milliseconds() {
        assert_eq!(format_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_millis(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(format_millis(1_795_169_700_123), "2026-11-20T10:15:00.123Z");
        assert_eq!(format_millis(MAX_MILLIS), "9999-12-31T23:59:59.999Z");
        assert_eq!(parse_rfc3339(&format_millis(MIN_MILLIS)), Ok(MIN_MILLIS));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1s"), Ok(1_000));
        assert_eq!(parse_duration("1h"), Ok(3_600_000));
        assert_eq!(parse_duration("1d"), Ok(86_400_000));
        for bad in [
            "",
            "0s",
            "-1s",
            "1",
            "1w",
            "1.5s",
            "s",
            "1 s",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(format_duration(90_000), "90s");
        assert_eq!(format_duration(86_400_000), "1d");
        assert_eq!(format_duration(1_500), "1500ms");
    }

    use proptest::strategy::Strategy;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(5000))]

        /// Whatever the common form reads, chrono reads the same.
        #[test]
        fn the_common_form_reads_as_chrono_does(
            year in 0i64..10_000, month in 0i64..14, day in 0i64..33, hour in 0i64..25,
            minute in 0i64..61, second in 0i64..61,
            fraction in proptest::option::of("[0-9]{0,11}"),
            zone in proptest::prop_oneof![
                proptest::strategy::Just("Z".to_string()),
                (0i64..25, 0i64..61, proptest::bool::ANY).prop_map(|(h, m, plus)| {
                    format!("{}{h:02}:{m:02}", if plus { '+' } else { '-' })
                }),
                proptest::strategy::Just("z".to_string()),
                proptest::strategy::Just("+0200".to_string()),
            ],
        ) {
            let fraction = fraction.map(|f| format!(".{f}")).unwrap_or_default();
            let text = format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{fraction}{zone}");
            if let Some(ms) = common_rfc3339(&text) {
                let chrono = DateTime::parse_from_rfc3339(&text).map(|t| t.timestamp_millis());
                proptest::prop_assert_eq!(chrono, Ok(ms), "{}", text);
            }
        }
    }
}
