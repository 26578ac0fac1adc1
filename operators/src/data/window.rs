//! Windows of event time and how records are assigned to them (docs/format.md, section 4).
//!
//! Windows are half-open `[start, end)` in UTC milliseconds. `tumbling:W` gives each record the
//! one window `[floor(ts/W)*W, +W)`; `hop:W/S` every window whose start is a multiple of `S`
//! with `start <= ts < start + W`. Session windows depend on a key's other records and are not
//! a per-record assignment: [`WindowSpec`] parses them, and the `Sessions` operator
//! ([`crate::incremental::sessions`]) computes them.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::data::time::{Millis, format_duration, parse_duration, shorten};

/// A window of event time, `[start, end)` in epoch milliseconds.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Window {
    /// Inclusive start.
    pub start: Millis,
    /// Exclusive end.
    pub end: Millis,
}

/// How records are assigned to windows (`--window`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum WindowSpec {
    /// `tumbling:W`: consecutive windows of size W.
    Tumbling {
        /// Window size in milliseconds.
        size: Millis,
    },
    /// `hop:W/S`: windows of size W starting every S.
    Hop {
        /// Window size in milliseconds.
        size: Millis,
        /// Distance between window starts in milliseconds.
        slide: Millis,
    },
    /// `session:G`: per key, records less than G apart share a window.
    Session {
        /// The gap in milliseconds.
        gap: Millis,
    },
}

/// Why a `--window` value was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{text}`: {why}")]
pub struct WindowSpecError {
    text: String,
    why: String,
}

impl WindowSpec {
    /// Parses `tumbling:W`, `hop:W/S` or `session:G`, with durations like `5m`.
    ///
    /// ```
    /// use amend_operators::WindowSpec;
    /// assert_eq!(WindowSpec::parse("tumbling:1m"), Ok(WindowSpec::Tumbling { size: 60_000 }));
    /// assert_eq!(
    ///     WindowSpec::parse("hop:1h/15m"),
    ///     Ok(WindowSpec::Hop { size: 3_600_000, slide: 900_000 })
    /// );
    /// ```
    pub fn parse(text: &str) -> Result<WindowSpec, WindowSpecError> {
        let error = |why: String| WindowSpecError {
            text: shorten(text),
            why,
        };
        let duration = |s: &str| parse_duration(s).map_err(|e| error(e.to_string()));
        let (kind, rest) = text.split_once(':').ok_or_else(|| {
            error(
                "write tumbling:SIZE, hop:SIZE/SLIDE or session:GAP (e.g. tumbling:1m, hop:1h/15m, session:30s)"
                    .into(),
            )
        })?;
        match kind {
            "tumbling" => Ok(WindowSpec::Tumbling {
                size: duration(rest)?,
            }),
            "hop" => {
                let (size, slide) = rest
                    .split_once('/')
                    .ok_or_else(|| error("write hop:SIZE/SLIDE, e.g. hop:1h/15m".into()))?;
                let (size, slide) = (duration(size)?, duration(slide)?);
                if size / slide > 10_000 {
                    return Err(error(format!(
                        "each record would fall in {} windows; keep SIZE/SLIDE at most 10000",
                        size / slide
                    )));
                }
                Ok(WindowSpec::Hop { size, slide })
            }
            "session" => Ok(WindowSpec::Session {
                gap: duration(rest)?,
            }),
            other => Err(error(format!(
                "unknown window kind `{}`; use tumbling, hop or session",
                shorten(other)
            ))),
        }
    }

    /// The windows `ts` falls in, in ascending order, without allocating. Session windows are
    /// not a per-record assignment and give none.
    pub fn windows_of(&self, ts: Millis) -> impl Iterator<Item = Window> + use<> {
        let (size, slide, first, last) = match *self {
            WindowSpec::Tumbling { size } => {
                let start = ts.div_euclid(size) * size;
                (size, size, start, start)
            }
            WindowSpec::Hop { size, slide } => {
                // The last start at or before ts, and the first whose window still holds ts.
                let last = ts.div_euclid(slide) * slide;
                let first = (ts - size).div_euclid(slide) * slide + slide;
                (size, slide, first, last)
            }
            WindowSpec::Session { .. } => (1, 1, 0, -1),
        };
        (0..)
            .map(move |i| first + i * slide)
            .take_while(move |start| *start <= last)
            .map(move |start| Window {
                start,
                end: start + size,
            })
    }

    /// The end of the last window a record at `ts` falls in: once the lateness horizon reaches
    /// it, the record can change nothing. For sessions, the end of the window the record
    /// opens on its own, `ts + gap`.
    pub fn expiry(&self, ts: Millis) -> Millis {
        match *self {
            WindowSpec::Tumbling { size } => ts.div_euclid(size) * size + size,
            WindowSpec::Hop { size, slide } => ts.div_euclid(slide) * slide + size,
            WindowSpec::Session { gap } => ts + gap,
        }
    }

    /// The windows `ts` falls in, ascending.
    pub fn windows(&self, ts: Millis) -> Vec<Window> {
        self.windows_of(ts).collect()
    }
}

impl fmt::Display for WindowSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            WindowSpec::Tumbling { size } => write!(f, "tumbling:{}", format_duration(size)),
            WindowSpec::Hop { size, slide } => write!(
                f,
                "hop:{}/{}",
                format_duration(size),
                format_duration(slide)
            ),
            WindowSpec::Session { gap } => write!(f, "session:{}", format_duration(gap)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(start: Millis, end: Millis) -> Window {
        Window { start, end }
    }

    #[test]
    fn tumbling_floors_also_before_the_epoch() {
        let spec = WindowSpec::Tumbling { size: 10 };
        assert_eq!(spec.windows(0), vec![w(0, 10)]);
        assert_eq!(spec.windows(9), vec![w(0, 10)]);
        assert_eq!(spec.windows(10), vec![w(10, 20)]);
        assert_eq!(spec.windows(-1), vec![w(-10, 0)]);
        assert_eq!(spec.windows(-10), vec![w(-10, 0)]);
    }

    #[test]
    fn hop_gives_every_window_holding_the_time() {
        let spec = WindowSpec::Hop { size: 10, slide: 5 };
        assert_eq!(spec.windows(0), vec![w(-5, 5), w(0, 10)]);
        assert_eq!(spec.windows(7), vec![w(0, 10), w(5, 15)]);
        assert_eq!(spec.windows(-3), vec![w(-10, 0), w(-5, 5)]);
        // A slide longer than the size leaves gaps.
        let gappy = WindowSpec::Hop { size: 2, slide: 5 };
        assert_eq!(gappy.windows(6), vec![w(5, 7)]);
        assert_eq!(gappy.windows(8), vec![]);
        // Sizes that are not multiples of the slide.
        let odd = WindowSpec::Hop { size: 7, slide: 3 };
        assert_eq!(odd.windows(6), vec![w(0, 7), w(3, 10), w(6, 13)]);
    }

    #[test]
    fn hop_matches_the_definition_exhaustively() {
        for (size, slide) in [(10, 5), (7, 3), (3, 7), (6, 6), (1, 1), (12, 4)] {
            let spec = WindowSpec::Hop { size, slide };
            for ts in -40..40 {
                let expected: Vec<_> = (-100..100)
                    .map(|k| k * slide)
                    .filter(|s| *s <= ts && ts < s + size)
                    .map(|s| w(s, s + size))
                    .collect();
                assert_eq!(spec.windows(ts), expected, "hop {size}/{slide} at {ts}");
            }
        }
    }

    #[test]
    fn expiry_is_the_end_of_the_last_window() {
        for spec in [
            WindowSpec::Tumbling { size: 10 },
            WindowSpec::Hop { size: 10, slide: 5 },
            WindowSpec::Hop { size: 7, slide: 3 },
            WindowSpec::Hop { size: 2, slide: 5 },
        ] {
            for ts in -30..30 {
                if let Some(last) = spec.windows(ts).last() {
                    assert_eq!(spec.expiry(ts), last.end, "{spec} at {ts}");
                }
            }
        }
        assert_eq!(WindowSpec::Session { gap: 10 }.expiry(5), 15);
    }

    #[test]
    fn parses_and_prints_specs() {
        for text in ["tumbling:1m", "hop:1h/15m", "session:30s", "tumbling:500ms"] {
            assert_eq!(WindowSpec::parse(text).unwrap().to_string(), text);
        }
        for bad in [
            "tumbling",
            "tumbling:",
            "hop:1h",
            "hop:1h/0s",
            "slide:1m",
            "tumbling:1x",
            "hop:1d/1ms",
        ] {
            let err = WindowSpec::parse(bad).unwrap_err().to_string();
            assert!(err.starts_with(&format!("`{bad}`: ")), "{err}");
        }
    }
}
