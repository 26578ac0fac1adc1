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
    let parsed = DateTime::parse_from_rfc3339(text).map_err(|_| TimeError::NotRfc3339 {
        text: shorten(text),
    })?;
    check_range(parsed.timestamp_millis(), text)
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
}
