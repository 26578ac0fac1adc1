//! Exact fixed-point decimals: parsing, canonical printing, and exact arithmetic.
//!
//! Amounts are exact decimals, never binary floats. A value's text is read into a [`Decimal`],
//! an `i128` count of units of 10^-scale, where the [`Scale`] (fractional digits kept, default 6,
//! at most 18) is fixed for a whole pipeline and carried beside the values, not inside them.
//!
//! - **Parsing** ([`Decimal::parse`]) accepts JSON-number-like text and keeps a value exactly when
//!   it is exactly representable at the scale. Trailing zeros are not precision: at scale 6,
//!   `1.50000000` and `15e-1` are both exactly 1.5, while `1.0000001` is
//!   [`DecimalError::TooPrecise`]. NaN and Infinity are [`DecimalError::NonFinite`]; a magnitude
//!   beyond `i128` units, or an exponent that does not fit, is [`DecimalError::Overflow`]. Each
//!   error is a bad record whose Display text is a reason a person can act on, quoting the
//!   offending text cut to 64 characters.
//! - **Printing** ([`Decimal::to_canonical`], [`Decimal::display`]) writes the canonical form: the
//!   shortest exact decimal text, no exponent, no trailing zeros, no `+`, `0` for zero (`12.5`,
//!   `-0.000001`, `3`). Parsing canonical text gives the same value back.
//! - **Arithmetic** is exact and checked: an overflowing sum or product is `None`, never a wrapped
//!   value, and [`Decimal::mean`] rounds half-to-even at the scale.
//!
//! Parsing allocates nothing on success, uses no float arithmetic, and is linear in the text
//! length however large the exponent (`1e999999999` is an overflow found without looping over it).
//!
//! ```
//! use amend_operators::decimal::{Decimal, DecimalError, Scale};
//!
//! let scale = Scale::DEFAULT;
//! let x = Decimal::parse("1.50000000", scale).unwrap();
//! assert_eq!(x, Decimal(1_500_000));
//! assert_eq!(Decimal::parse("125e-1", scale).unwrap().to_canonical(scale), "12.5");
//! assert!(matches!(
//!     Decimal::parse("1.0000001", scale),
//!     Err(DecimalError::TooPrecise { digits: 7, .. })
//! ));
//! assert_eq!(Decimal::mean(Decimal(5), 2), Some(Decimal(2))); // 2.5 units -> 2, half-to-even
//! ```

use std::fmt;

/// `POW10[k]` = 10^k for every power that fits in a `u128` magnitude of an `i128`.
const POW10: [u128; 39] = {
    let mut table = [1u128; 39];
    let mut k = 1;
    while k < table.len() {
        table[k] = table[k - 1] * 10;
        k += 1;
    }
    table
};

/// Decimal digits of `i128::MAX` (and of the magnitude of `i128::MIN`).
const MAX_UNIT_DIGITS: i128 = 39;

/// Exponents are read saturating at this magnitude. Far beyond any exponent that can matter
/// (the text itself would need more than 10^30 bytes of digits to compensate), and small enough
/// that sums with text lengths cannot overflow `i128`.
const EXPONENT_CLAMP: i128 = 1_000_000_000_000_000_000_000_000_000_000;

/// Most characters of an offending text quoted in an error message.
const QUOTE_CHARS: usize = 64;

/// Number of fractional digits kept, 0..=18.
#[derive(
    Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "u8")]
pub struct Scale(u8);

impl Scale {
    /// The default scale: 6 fractional digits.
    pub const DEFAULT: Scale = Scale(6);
    /// The largest scale supported.
    pub const MAX_DIGITS: u32 = 18;

    /// A scale of `digits` fractional digits; [`DecimalError::ScaleTooLarge`] above
    /// [`Scale::MAX_DIGITS`].
    pub const fn new(digits: u32) -> Result<Scale, DecimalError> {
        if digits > Self::MAX_DIGITS {
            Err(DecimalError::ScaleTooLarge { digits })
        } else {
            Ok(Scale(digits as u8))
        }
    }

    /// The number of fractional digits.
    pub const fn digits(self) -> u32 {
        self.0 as u32
    }
}

impl Default for Scale {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Validates deserialized scales, so a `Scale` above 18 cannot be read from a config.
impl TryFrom<u8> for Scale {
    type Error = DecimalError;

    fn try_from(digits: u8) -> Result<Self, Self::Error> {
        Scale::new(u32::from(digits))
    }
}

/// A fixed-point amount: `units` × 10^-scale. The scale is carried by the pipeline, not the value,
/// so values stay 16 bytes and compare/hash as integers.
#[derive(
    Copy,
    Clone,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Decimal(pub i128);

impl Decimal {
    /// Zero, at every scale.
    pub const ZERO: Decimal = Decimal(0);

    /// Parses JSON-number-like text: optional sign (`-`, or `+`), digits with an optional `.`
    /// (at least one digit overall; `.5` and `5.` accepted), optional exponent `e`/`E` with
    /// optional sign. No surrounding whitespace. `NaN`, `Infinity`, `inf` (any case, with sign)
    /// are [`DecimalError::NonFinite`].
    ///
    /// The value is kept exactly when it is a whole number of units at `scale`, however it is
    /// written (`1.50000000`, `15e-1`, `0.0015e3`); otherwise it is
    /// [`DecimalError::TooPrecise`]. Large exponents neither loop nor allocate: `1e999999999` is
    /// [`DecimalError::Overflow`], `0e999999999` is zero, `1e-999999999` is
    /// [`DecimalError::TooPrecise`], `123000e-3` is 123. A value that is both too precise and too
    /// large is reported as too precise. `-0` is zero.
    pub fn parse(text: &str, scale: Scale) -> Result<Decimal, DecimalError> {
        let bytes = text.as_bytes();
        let (negative, mut i) = match bytes.first() {
            Some(b'-') => (true, 1),
            Some(b'+') => (false, 1),
            _ => (false, 0),
        };

        // Mantissa: digits with at most one `.`.
        let start = i;
        let mut dot = None;
        while let Some(&b) = bytes.get(i) {
            if b.is_ascii_digit() {
                i += 1;
            } else if b == b'.' && dot.is_none() {
                dot = Some(i);
                i += 1;
            } else {
                break;
            }
        }
        let end = i;
        if end - start == usize::from(dot.is_some()) {
            return Err(no_digits(text, start, end));
        }

        // Exponent, read saturating so that absurd exponents cost only their length.
        let mut exponent: i128 = 0;
        if let Some(b'e' | b'E') = bytes.get(i) {
            i += 1;
            let exponent_negative = match bytes.get(i) {
                Some(b'-') => {
                    i += 1;
                    true
                }
                Some(b'+') => {
                    i += 1;
                    false
                }
                _ => false,
            };
            let exponent_start = i;
            while let Some(&b) = bytes.get(i) {
                if !b.is_ascii_digit() {
                    break;
                }
                exponent = (exponent * 10 + i128::from(b - b'0')).min(EXPONENT_CLAMP);
                i += 1;
            }
            if i == exponent_start {
                return Err(syntax(text, "its exponent has no digits"));
            }
            if exponent_negative {
                exponent = -exponent;
            }
        }
        if i != bytes.len() {
            return Err(trailing_garbage(text, bytes[i], dot.is_some()));
        }

        // The value is sig × 10^(exponent + trailing_zeros - frac_len), where `sig` is the
        // mantissa's digits from its first to its last non-zero digit.
        let mantissa = &bytes[start..end];
        let Some(first) = mantissa.iter().position(|b| matches!(b, b'1'..=b'9')) else {
            return Ok(Decimal::ZERO);
        };
        let last = mantissa
            .iter()
            .rposition(|b| matches!(b, b'1'..=b'9'))
            .unwrap_or(first);
        let dot = dot.map(|d| d - start);
        let frac_len = dot.map_or(0, |d| mantissa.len() - d - 1);
        let dot_after_last = dot.is_some_and(|d| d > last);
        let trailing_zeros = mantissa.len() - last - 1 - usize::from(dot_after_last);
        let dot_inside = dot.is_some_and(|d| first < d && d < last);
        let sig_len = last - first + 1 - usize::from(dot_inside);

        // units = sig × 10^shift
        let shift =
            i128::from(scale.digits()) + exponent + trailing_zeros as i128 - frac_len as i128;
        if shift < 0 {
            let digits = i128::from(scale.digits()) - shift;
            return Err(DecimalError::TooPrecise {
                text: quote(text),
                digits: u64::try_from(digits).unwrap_or(u64::MAX),
                scale,
            });
        }
        let overflow = || DecimalError::Overflow {
            text: quote(text),
            scale,
        };
        if sig_len as i128 + shift > MAX_UNIT_DIGITS {
            return Err(overflow());
        }
        // At most 39 significant digits remain, so this loop is bounded.
        let mut magnitude: u128 = 0;
        for &b in &mantissa[first..=last] {
            if b != b'.' {
                magnitude = magnitude
                    .checked_mul(10)
                    .and_then(|m| m.checked_add(u128::from(b - b'0')))
                    .ok_or_else(overflow)?;
            }
        }
        // shift <= 38 here, because sig_len >= 1.
        let magnitude = POW10
            .get(shift as usize)
            .and_then(|&p| magnitude.checked_mul(p))
            .ok_or_else(overflow)?;
        let units = if negative {
            0i128.checked_sub_unsigned(magnitude)
        } else {
            i128::try_from(magnitude).ok()
        };
        units.map(Decimal).ok_or_else(overflow)
    }

    /// Canonical text at `scale`: the shortest exact decimal text, no exponent, no trailing
    /// zeros, no `+`, `0` for zero (`12.5`, `-0.000001`, `3`). Allocates only the result.
    pub fn to_canonical(self, scale: Scale) -> String {
        let rendered = Rendered::new(self, scale);
        let bytes = rendered.as_bytes();
        let mut text = String::with_capacity(bytes.len());
        text.extend(bytes.iter().copied().map(char::from));
        text
    }

    /// Appends the canonical text of [`Decimal::to_canonical`] to `out`: the fast path of row
    /// formatting, with no `fmt` machinery.
    pub fn write_canonical(self, scale: Scale, out: &mut Vec<u8>) {
        out.extend_from_slice(Rendered::new(self, scale).as_bytes());
    }

    /// A Display adapter writing the canonical text of [`Decimal::to_canonical`] without an
    /// intermediate `String`. It honours width, fill and alignment (`{:>12}`).
    pub fn display(self, scale: Scale) -> impl fmt::Display {
        Canonical { value: self, scale }
    }

    /// `self + other`, or `None` on overflow.
    pub fn checked_add(self, other: Decimal) -> Option<Decimal> {
        self.0.checked_add(other.0).map(Decimal)
    }

    /// `self × n` (a value times its multiplicity), or `None` on overflow.
    pub fn checked_mul_int(self, n: i64) -> Option<Decimal> {
        self.0.checked_mul(i128::from(n)).map(Decimal)
    }

    /// `sum / count` rounded half-to-even, at the same scale as `sum`; `None` when `count` is 0.
    /// Never overflows: the mean's magnitude is at most the sum's.
    pub fn mean(sum: Decimal, count: u64) -> Option<Decimal> {
        if count == 0 {
            return None;
        }
        let count = u128::from(count);
        let magnitude = sum.0.unsigned_abs();
        let mut quotient = magnitude / count;
        let remainder = magnitude % count;
        // remainder < count <= u64::MAX, so doubling it cannot overflow.
        let twice = remainder * 2;
        if twice > count || (twice == count && quotient % 2 == 1) {
            // Rounding up needs count >= 2, so quotient <= 2^126 and this stays in range.
            quotient += 1;
        }
        let units = if sum.0 < 0 {
            0i128.checked_sub_unsigned(quotient)
        } else {
            i128::try_from(quotient).ok()
        };
        units.map(Decimal)
    }
}

/// Why a text could not be read as a decimal. Every variant is a bad record, except
/// [`DecimalError::ScaleTooLarge`], which is a configuration error.
///
/// `text` fields quote the offending text, cut to 64 characters (then `…`), with control
/// characters escaped so the message stays on one line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    /// The text is not a number.
    #[error("value `{text}` is not a decimal number: {reason}")]
    Syntax {
        /// The offending text, quoted.
        text: String,
        /// What is wrong with it, e.g. "its exponent has no digits".
        reason: &'static str,
    },
    /// The text is NaN or an infinity.
    #[error("value `{text}` is not a finite number: NaN and Infinity are not amounts")]
    NonFinite {
        /// The offending text, quoted.
        text: String,
    },
    /// The value has more significant fractional digits than the scale keeps.
    #[error(
        "value `{text}` has {digits} significant fractional digits but --scale is {}",
        .scale.digits()
    )]
    TooPrecise {
        /// The offending text, quoted.
        text: String,
        /// Fractional digits of the value with trailing zeros removed (saturating at
        /// `u64::MAX` for exponents beyond 10^19).
        digits: u64,
        /// The scale it was read at.
        scale: Scale,
    },
    /// The value's magnitude is beyond what `i128` units hold at the scale.
    #[error(
        "value `{text}` is out of range: at --scale {} values must lie between {} and {}",
        .scale.digits(),
        Decimal(i128::MIN).display(*.scale),
        Decimal(i128::MAX).display(*.scale)
    )]
    Overflow {
        /// The offending text, quoted.
        text: String,
        /// The scale it was read at.
        scale: Scale,
    },
    /// A scale above [`Scale::MAX_DIGITS`] was asked for.
    #[error("{digits} is more than the 18 fractional digits supported")]
    ScaleTooLarge {
        /// The scale asked for.
        digits: u32,
    },
}

/// The offending `text` for an error message: at most [`QUOTE_CHARS`] characters, then `…`.
fn quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len().min(QUOTE_CHARS * 4 + 3));
    for (n, c) in text.chars().enumerate() {
        if n == QUOTE_CHARS {
            quoted.push('…');
            break;
        }
        if c.is_control() {
            quoted.extend(c.escape_default());
        } else {
            quoted.push(c);
        }
    }
    quoted
}

fn syntax(text: &str, reason: &'static str) -> DecimalError {
    DecimalError::Syntax {
        text: quote(text),
        reason,
    }
}

/// The error for a text whose mantissa, `text[start..end]`, has no digit.
fn no_digits(text: &str, start: usize, end: usize) -> DecimalError {
    let unsigned = &text[start..];
    if ["nan", "inf", "infinity"]
        .iter()
        .any(|word| unsigned.eq_ignore_ascii_case(word))
    {
        return DecimalError::NonFinite { text: quote(text) };
    }
    if text.is_empty() {
        return syntax(text, "it is empty");
    }
    if text.starts_with(char::is_whitespace) || text.ends_with(char::is_whitespace) {
        return syntax(text, "it has leading or trailing whitespace");
    }
    match text.as_bytes().get(end) {
        None | Some(b'e' | b'E') => syntax(text, "it has no digits"),
        Some(_) => syntax(text, EXPECTED_FORM),
    }
}

const EXPECTED_FORM: &str =
    "expected digits with an optional sign, `.` and exponent, like `-12.5` or `1.25e3`";

/// The error for a text that has a number followed by the unexpected byte `next`.
fn trailing_garbage(text: &str, next: u8, had_dot: bool) -> DecimalError {
    if text.starts_with(char::is_whitespace) || text.ends_with(char::is_whitespace) {
        syntax(text, "it has leading or trailing whitespace")
    } else if next == b'.' && had_dot {
        syntax(text, "it has more than one `.`")
    } else {
        syntax(text, EXPECTED_FORM)
    }
}

/// "00", "01", ..., "99": two decimal digits at a time.
const DIGIT_PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Canonical text of a value, rendered on the stack.
struct Rendered {
    /// Long enough for `-` + 39 digits + `.` (at most 41 bytes).
    buf: [u8; 48],
    len: usize,
}

/// Writes `n`'s decimal digits into `digits` so that they end just before `end`, two digits
/// per division; returns where they start.
#[inline]
fn digits_before(digits: &mut [u8], end: usize, mut n: u64) -> usize {
    let mut pos = end;
    while n >= 100 {
        let pair = (n % 100) as usize * 2;
        n /= 100;
        pos -= 2;
        digits[pos..pos + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    }
    if n >= 10 {
        let pair = n as usize * 2;
        pos -= 2;
        digits[pos..pos + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    } else {
        pos -= 1;
        digits[pos] = b'0' + n as u8;
    }
    pos
}

impl Rendered {
    #[inline]
    fn new(value: Decimal, scale: Scale) -> Rendered {
        match u64::try_from(value.0.unsigned_abs()) {
            Ok(magnitude) => Rendered::small(value.0 < 0, magnitude, scale.digits()),
            Err(_) => Rendered::large(value, scale),
        }
    }

    /// A magnitude that fits a `u64` (every value of generated data): the integer part and
    /// the fraction without its trailing zeros, each written two digits at a time.
    #[inline]
    fn small(negative: bool, magnitude: u64, scale: u32) -> Rendered {
        let mut rendered = Rendered {
            buf: [0; 48],
            len: 0,
        };
        if negative {
            rendered.push(b"-");
        }
        // scale <= 18, so the power fits a u64.
        let unit = POW10[scale as usize] as u64;
        rendered.push_digits(magnitude / unit, 1);
        let mut frac = magnitude % unit;
        if frac != 0 {
            let mut width = scale as usize;
            while frac.is_multiple_of(10) {
                frac /= 10;
                width -= 1;
            }
            rendered.push(b".");
            rendered.push_digits(frac, width);
        }
        rendered
    }

    /// Appends `n` in decimal, zero-padded on the left to at least `width` digits.
    #[inline]
    fn push_digits(&mut self, n: u64, width: usize) {
        let mut digits = [b'0'; 20];
        let pos = digits_before(&mut digits, 20, n);
        let start = pos.min(digits.len() - width);
        self.push(&digits[start..]);
    }

    /// Any magnitude: 19 digits at a time in u64 arithmetic, then the point placed.
    fn large(value: Decimal, scale: Scale) -> Rendered {
        const WIDTH: usize = 40;
        let scale = scale.digits() as usize;
        // Zero-filled, so digits to the left of the magnitude read as leading zeros.
        let mut digits = [b'0'; WIDTH];
        let mut pos = WIDTH;
        let mut magnitude = value.0.unsigned_abs();
        // Chunks of 19 digits in u64 arithmetic: cheaper than dividing a u128 by 10 per digit.
        const CHUNK: u128 = 10_000_000_000_000_000_000;
        while magnitude > u128::from(u64::MAX) {
            let mut chunk = (magnitude % CHUNK) as u64;
            magnitude /= CHUNK;
            for _ in 0..19 {
                pos -= 1;
                digits[pos] = b'0' + (chunk % 10) as u8;
                chunk /= 10;
            }
        }
        let pos = digits_before(&mut digits, pos, magnitude as u64);
        // At least one integer digit before the fraction.
        let width = (WIDTH - pos).max(scale + 1);
        let (int, frac) = digits[WIDTH - width..].split_at(width - scale);
        let frac_len = frac.iter().rposition(|&b| b != b'0').map_or(0, |p| p + 1);

        let mut rendered = Rendered {
            buf: [0; 48],
            len: 0,
        };
        if value.0 < 0 {
            rendered.push(b"-");
        }
        rendered.push(int);
        if frac_len > 0 {
            rendered.push(b".");
            rendered.push(&frac[..frac_len]);
        }
        rendered
    }

    fn push(&mut self, bytes: &[u8]) {
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// The Display adapter returned by [`Decimal::display`].
struct Canonical {
    value: Decimal,
    scale: Scale,
}

impl fmt::Display for Canonical {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rendered = Rendered::new(self.value, self.scale);
        // Always ASCII, so this never fails.
        let text = std::str::from_utf8(rendered.as_bytes()).map_err(|_| fmt::Error)?;
        f.pad(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(digits: u32) -> Scale {
        Scale::new(digits).unwrap()
    }

    fn p(text: &str) -> Result<Decimal, DecimalError> {
        Decimal::parse(text, Scale::DEFAULT)
    }

    fn units(text: &str) -> i128 {
        p(text)
            .unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
            .0
    }

    fn canon(units: i128, digits: u32) -> String {
        Decimal(units).to_canonical(s(digits))
    }

    const MAX_AT_6: &str = "170141183460469231731687303715884.105727";
    const MIN_AT_6: &str = "-170141183460469231731687303715884.105728";

    // ---- Scale ----

    #[test]
    fn scale_bounds_and_default() {
        assert_eq!(Scale::default(), Scale::DEFAULT);
        assert_eq!(Scale::DEFAULT.digits(), 6);
        assert_eq!(s(0).digits(), 0);
        assert_eq!(s(18).digits(), 18);
        assert_eq!(
            Scale::new(19),
            Err(DecimalError::ScaleTooLarge { digits: 19 })
        );
        assert_eq!(
            Scale::new(19).unwrap_err().to_string(),
            "19 is more than the 18 fractional digits supported"
        );
        assert!(Scale::try_from(19u8).is_err());
        assert_eq!(Scale::try_from(18u8), Ok(s(18)));
    }

    // ---- parse: accepted forms ----

    #[test]
    fn parses_integers() {
        assert_eq!(units("0"), 0);
        assert_eq!(units("3"), 3_000_000);
        assert_eq!(units("007"), 7_000_000);
        assert_eq!(units("1234567890"), 1_234_567_890_000_000);
    }

    #[test]
    fn parses_fractions() {
        assert_eq!(units("12.5"), 12_500_000);
        assert_eq!(units("0.000001"), 1);
        assert_eq!(units(".5"), 500_000);
        assert_eq!(units("5."), 5_000_000);
        assert_eq!(units("0.0"), 0);
        assert_eq!(units("123.456789"), 123_456_789);
    }

    #[test]
    fn parses_signs() {
        assert_eq!(units("-12.5"), -12_500_000);
        assert_eq!(units("+12.5"), 12_500_000);
        assert_eq!(units("-.5"), -500_000);
        assert_eq!(units("+5."), 5_000_000);
        assert_eq!(units("-0"), 0);
        assert_eq!(units("-0.000"), 0);
        assert_eq!(units("-0.000001"), -1);
    }

    #[test]
    fn parses_exponents() {
        assert_eq!(units("1e3"), 1_000_000_000);
        assert_eq!(units("1E3"), 1_000_000_000);
        assert_eq!(units("1e+3"), 1_000_000_000);
        assert_eq!(units("1e-3"), 1_000);
        assert_eq!(units("1e0"), 1_000_000);
        assert_eq!(units("-2.5e-5"), -25);
        assert_eq!(units("1e0006"), 1_000_000_000_000);
        // Shifting out of the fraction into the integer part.
        assert_eq!(units("1.25e1"), 12_500_000);
        assert_eq!(units("0.000125e6"), 125_000_000);
        assert_eq!(units(".5e1"), 5_000_000);
        // Shifting from the integer part into the fraction.
        assert_eq!(units("125e-1"), 12_500_000);
        assert_eq!(units("125e-6"), 125);
        assert_eq!(units("5.e-1"), 500_000);
        assert_eq!(units("123000e-3"), 123_000_000);
        // Trailing zeros of the mantissa absorb a negative exponent.
        assert_eq!(units("1000000000000e-12"), 1_000_000);
    }

    #[test]
    fn huge_exponents_are_quick_and_exact() {
        assert_eq!(units("0e999999999"), 0);
        assert_eq!(units("0e-999999999"), 0);
        assert_eq!(units("-0.000e99999999999999999999999999999999999999"), 0);
        assert!(matches!(
            p("1e999999999"),
            Err(DecimalError::Overflow { .. })
        ));
        assert!(matches!(
            p("1e99999999999999999999999999999999999999999"),
            Err(DecimalError::Overflow { .. })
        ));
        assert_eq!(
            p("1e-999999999"),
            Err(DecimalError::TooPrecise {
                text: "1e-999999999".into(),
                digits: 999_999_999,
                scale: Scale::DEFAULT
            })
        );
        assert!(matches!(
            p("1e-99999999999999999999999999999999999999999"),
            Err(DecimalError::TooPrecise { .. })
        ));
    }

    #[test]
    fn trailing_zeros_beyond_scale_are_not_precision() {
        assert_eq!(units("1.50000000"), 1_500_000);
        assert_eq!(
            units("1.000000000000000000000000000000000000000000000000"),
            1_000_000
        );
        assert_eq!(units("-0.0000010000"), -1);
        assert_eq!(units("0.00000000000"), 0);
        let long = format!("7.{}", "0".repeat(100_000));
        assert_eq!(units(&long), 7_000_000);
        let long = format!("1{}e-100000", "0".repeat(100_000));
        assert_eq!(units(&long), 1_000_000);
    }

    #[test]
    fn too_precise_is_rejected_with_a_clear_message() {
        let err = p("1.0000001").unwrap_err();
        assert_eq!(
            err,
            DecimalError::TooPrecise {
                text: "1.0000001".into(),
                digits: 7,
                scale: Scale::DEFAULT
            }
        );
        assert_eq!(
            err.to_string(),
            "value `1.0000001` has 7 significant fractional digits but --scale is 6"
        );
        assert!(matches!(
            p("1.00000010"),
            Err(DecimalError::TooPrecise { digits: 7, .. })
        ));
        assert!(matches!(
            p("1e-7"),
            Err(DecimalError::TooPrecise { digits: 7, .. })
        ));
        assert!(matches!(
            p("-12345e-10"),
            Err(DecimalError::TooPrecise { digits: 10, .. })
        ));
        assert!(matches!(
            Decimal::parse("0.5", s(0)),
            Err(DecimalError::TooPrecise { digits: 1, .. })
        ));
    }

    #[test]
    fn non_finite_is_rejected() {
        for text in [
            "NaN",
            "nan",
            "-NaN",
            "+nan",
            "Infinity",
            "-Infinity",
            "+INFINITY",
            "inf",
        ] {
            assert_eq!(
                p(text),
                Err(DecimalError::NonFinite { text: text.into() }),
                "{text}"
            );
        }
        assert_eq!(
            p("-inf").unwrap_err().to_string(),
            "value `-inf` is not a finite number: NaN and Infinity are not amounts"
        );
        assert!(matches!(p("nanx"), Err(DecimalError::Syntax { .. })));
        assert!(matches!(p("infinit"), Err(DecimalError::Syntax { .. })));
    }

    #[test]
    fn overflow_at_the_i128_boundary() {
        // Exact boundaries are accepted.
        assert_eq!(units(MAX_AT_6), i128::MAX);
        assert_eq!(units(MIN_AT_6), i128::MIN);
        assert_eq!(units(&format!("+{MAX_AT_6}")), i128::MAX);
        assert_eq!(
            units("170141183460469231731687303715884105727e-6"),
            i128::MAX
        );
        assert_eq!(
            units("-170141183460469231731687303715884105728e-6"),
            i128::MIN
        );
        assert_eq!(
            units("-170141183460469231731687303715884.1057280000"),
            i128::MIN
        );
        // One unit beyond is not.
        for text in [
            "170141183460469231731687303715884.105728",
            "-170141183460469231731687303715884.105729",
            "170141183460469231731687303715885",
            "-170141183460469231731687303715885",
            "1e33",
            "-1e33",
            "999999999999999999999999999999999999999",
            "340282366920938463463374607431768211456",
            "1e38",
        ] {
            assert!(
                matches!(p(text), Err(DecimalError::Overflow { .. })),
                "{text}: {:?}",
                p(text)
            );
        }
        assert_eq!(units("1e32"), 10i128.pow(38));
        assert_eq!(
            p("1e33").unwrap_err().to_string(),
            format!(
                "value `1e33` is out of range: at --scale 6 values must lie between \
                 {MIN_AT_6} and {MAX_AT_6}"
            )
        );
    }

    #[test]
    fn syntax_errors() {
        let cases = [
            ("", "it is empty"),
            ("-", "it has no digits"),
            ("+", "it has no digits"),
            (".", "it has no digits"),
            ("-.", "it has no digits"),
            ("e5", "it has no digits"),
            (".e5", "it has no digits"),
            ("1.2.3", "it has more than one `.`"),
            ("1e", "its exponent has no digits"),
            ("1e+", "its exponent has no digits"),
            ("1e-", "its exponent has no digits"),
            (" 1", "it has leading or trailing whitespace"),
            ("1 ", "it has leading or trailing whitespace"),
            ("\t1", "it has leading or trailing whitespace"),
            (" ", "it has leading or trailing whitespace"),
            ("0x10", EXPECTED_FORM),
            ("1_000", EXPECTED_FORM),
            ("1,5", EXPECTED_FORM),
            ("--1", EXPECTED_FORM),
            ("+-1", EXPECTED_FORM),
            ("1e5.0", EXPECTED_FORM),
            ("1e5e5", EXPECTED_FORM),
            ("1e--5", "its exponent has no digits"),
            ("abc", EXPECTED_FORM),
            ("١٢", EXPECTED_FORM),
            ("1\u{0}", EXPECTED_FORM),
        ];
        for (text, reason) in cases {
            assert_eq!(
                p(text),
                Err(DecimalError::Syntax {
                    text: quote(text),
                    reason
                }),
                "{text:?}"
            );
        }
        assert_eq!(
            p("1e").unwrap_err().to_string(),
            "value `1e` is not a decimal number: its exponent has no digits"
        );
        assert_eq!(
            p("1\n").unwrap_err().to_string(),
            "value `1\\n` is not a decimal number: it has leading or trailing whitespace"
        );
    }

    #[test]
    fn error_text_is_cut_to_64_characters() {
        let huge = format!("{}x", "1".repeat(1_000_000));
        let DecimalError::Syntax { text, .. } = p(&huge).unwrap_err() else {
            panic!("expected a syntax error");
        };
        assert_eq!(text, format!("{}…", "1".repeat(64)));
        // Exactly 64 characters are quoted whole; multi-byte characters are cut on a boundary.
        assert_eq!(quote(&"é".repeat(64)), "é".repeat(64));
        assert_eq!(quote(&"é".repeat(65)), format!("{}…", "é".repeat(64)));
        let too_precise = format!("0.{}1", "0".repeat(100));
        let err = p(&too_precise).unwrap_err();
        assert!(matches!(err, DecimalError::TooPrecise { digits: 101, .. }));
        assert!(err.to_string().chars().count() < 150, "{err}");
    }

    #[test]
    fn scale_zero() {
        let zero = s(0);
        assert_eq!(Decimal::parse("42", zero), Ok(Decimal(42)));
        assert_eq!(Decimal::parse("42.000", zero), Ok(Decimal(42)));
        assert_eq!(Decimal::parse("4.2e1", zero), Ok(Decimal(42)));
        assert_eq!(
            Decimal::parse("-1e38", zero),
            Ok(Decimal(-(10i128.pow(38))))
        );
        assert_eq!(
            Decimal::parse("170141183460469231731687303715884105727", zero),
            Ok(Decimal(i128::MAX))
        );
        assert_eq!(
            Decimal::parse("-170141183460469231731687303715884105728", zero),
            Ok(Decimal(i128::MIN))
        );
        assert!(matches!(
            Decimal::parse("2e38", zero),
            Err(DecimalError::Overflow { .. })
        ));
        assert!(matches!(
            Decimal::parse("1e39", zero),
            Err(DecimalError::Overflow { .. })
        ));
        assert!(matches!(
            Decimal::parse("4.25e1", zero),
            Err(DecimalError::TooPrecise { digits: 1, .. })
        ));
        assert_eq!(canon(42, 0), "42");
        assert_eq!(canon(-42, 0), "-42");
        assert_eq!(canon(0, 0), "0");
    }

    #[test]
    fn scale_eighteen() {
        let eighteen = s(18);
        assert_eq!(
            Decimal::parse("0.000000000000000001", eighteen),
            Ok(Decimal(1))
        );
        assert_eq!(Decimal::parse("1", eighteen), Ok(Decimal(10i128.pow(18))));
        assert_eq!(
            Decimal::parse("170141183460469231731.687303715884105727", eighteen),
            Ok(Decimal(i128::MAX))
        );
        assert_eq!(
            Decimal::parse("-170141183460469231731.687303715884105728", eighteen),
            Ok(Decimal(i128::MIN))
        );
        assert!(matches!(
            Decimal::parse("170141183460469231732", eighteen),
            Err(DecimalError::Overflow { .. })
        ));
        assert!(matches!(
            Decimal::parse("1e-19", eighteen),
            Err(DecimalError::TooPrecise { digits: 19, .. })
        ));
        assert_eq!(canon(1, 18), "0.000000000000000001");
        assert_eq!(canon(-1, 18), "-0.000000000000000001");
        assert_eq!(canon(10i128.pow(18), 18), "1");
        assert_eq!(
            canon(i128::MAX, 18),
            "170141183460469231731.687303715884105727"
        );
        assert_eq!(
            canon(i128::MIN, 18),
            "-170141183460469231731.687303715884105728"
        );
    }

    // ---- printing ----

    #[test]
    fn canonical_printing() {
        assert_eq!(canon(12_500_000, 6), "12.5");
        assert_eq!(canon(-1, 6), "-0.000001");
        assert_eq!(canon(3_000_000, 6), "3");
        assert_eq!(canon(0, 6), "0");
        assert_eq!(canon(100_000_000, 6), "100");
        assert_eq!(canon(-100_010_000, 6), "-100.01");
        assert_eq!(canon(999_999, 6), "0.999999");
        assert_eq!(
            canon(18_446_744_073_709_551_616, 6),
            "18446744073709.551616"
        );
        assert_eq!(canon(i128::MAX, 6), MAX_AT_6);
        assert_eq!(canon(i128::MIN, 6), MIN_AT_6);
        assert_eq!(
            canon(i128::MAX, 0),
            "170141183460469231731687303715884105727"
        );
        assert_eq!(
            canon(i128::MIN, 0),
            "-170141183460469231731687303715884105728"
        );
        assert_eq!(Decimal::ZERO.to_canonical(Scale::DEFAULT), "0");
    }

    #[test]
    fn negative_zero_is_never_printed() {
        for text in ["-0", "-0.0", "-0e5", "-.000000", "-0.00000000000"] {
            assert_eq!(p(text).unwrap().to_canonical(Scale::DEFAULT), "0", "{text}");
        }
    }

    #[test]
    fn display_matches_to_canonical_and_pads() {
        let x = Decimal(-12_500_000);
        assert_eq!(x.display(Scale::DEFAULT).to_string(), "-12.5");
        assert_eq!(format!("[{:>7}]", x.display(Scale::DEFAULT)), "[  -12.5]");
        assert_eq!(format!("[{:<7}]", x.display(Scale::DEFAULT)), "[-12.5  ]");
    }

    #[test]
    fn to_canonical_allocates_exactly() {
        let text = Decimal(i128::MIN).to_canonical(Scale::DEFAULT);
        assert_eq!(text.capacity(), text.len());
    }

    // ---- arithmetic ----

    #[test]
    fn mean_rounds_half_to_even() {
        let mean = |sum: i128, count: u64| Decimal::mean(Decimal(sum), count).map(|d| d.0);
        // Ties at the last digit go to the even neighbour.
        assert_eq!(mean(5, 2), Some(2)); // 2.5 -> 2
        assert_eq!(mean(7, 2), Some(4)); // 3.5 -> 4
        assert_eq!(mean(1, 2), Some(0)); // 0.5 -> 0
        assert_eq!(mean(3, 2), Some(2)); // 1.5 -> 2
        assert_eq!(mean(-5, 2), Some(-2));
        assert_eq!(mean(-7, 2), Some(-4));
        assert_eq!(mean(-1, 2), Some(0));
        // Not ties: nearest.
        assert_eq!(mean(10, 3), Some(3)); // 3.33
        assert_eq!(mean(11, 3), Some(4)); // 3.67
        assert_eq!(mean(-11, 3), Some(-4));
        assert_eq!(mean(-10, 3), Some(-3));
        assert_eq!(mean(26, 4), Some(6)); // 6.5 -> 6
        assert_eq!(mean(30, 4), Some(8)); // 7.5 -> 8
        // The spec's example: sum 30.5 over 2 records is 15.25.
        let sum = p("30.5").unwrap();
        assert_eq!(
            Decimal::mean(sum, 2).map(|m| m.to_canonical(Scale::DEFAULT)),
            Some("15.25".into())
        );
        // 0.000005 / 2 = 0.0000025 -> 0.000002; 0.000007 / 2 -> 0.000004.
        assert_eq!(Decimal::mean(p("0.000005").unwrap(), 2), Some(Decimal(2)));
        assert_eq!(Decimal::mean(p("0.000007").unwrap(), 2), Some(Decimal(4)));
        // Count 1 is the sum itself, even at the extremes.
        assert_eq!(mean(i128::MIN, 1), Some(i128::MIN));
        assert_eq!(mean(i128::MAX, 1), Some(i128::MAX));
        assert_eq!(mean(-42, 1), Some(-42));
        assert_eq!(mean(i128::MIN, 2), Some(i128::MIN / 2));
        assert_eq!(mean(i128::MAX, 2), Some(i128::MAX / 2 + 1)); // odd/2 = x.5, x odd -> up
        // 2^127 = (2^64 - 1) * 2^63 + 2^63, and the remainder is just over half.
        assert_eq!(mean(i128::MIN, u64::MAX), Some(-(1i128 << 63) - 1));
        assert_eq!(mean(0, u64::MAX), Some(0));
        assert_eq!(mean(1, u64::MAX), Some(0));
        assert_eq!(mean(10, 0), None);
        assert_eq!(mean(0, 0), None);
    }

    #[test]
    fn checked_add_overflows_to_none() {
        assert_eq!(Decimal(1).checked_add(Decimal(2)), Some(Decimal(3)));
        assert_eq!(Decimal(i128::MAX).checked_add(Decimal(1)), None);
        assert_eq!(Decimal(i128::MIN).checked_add(Decimal(-1)), None);
        assert_eq!(
            Decimal(i128::MAX).checked_add(Decimal(i128::MIN)),
            Some(Decimal(-1))
        );
    }

    #[test]
    fn checked_mul_int_for_multiplicities() {
        assert_eq!(
            Decimal(1_500_000).checked_mul_int(-2),
            Some(Decimal(-3_000_000))
        );
        assert_eq!(Decimal(7).checked_mul_int(0), Some(Decimal::ZERO));
        assert_eq!(Decimal(i128::MIN).checked_mul_int(-1), None);
        assert_eq!(Decimal(i128::MAX).checked_mul_int(2), None);
        assert_eq!(
            Decimal(i128::MAX).checked_mul_int(-1),
            Some(Decimal(-i128::MAX))
        );
    }

    #[test]
    fn deserialized_scales_are_validated() {
        use serde::de::IntoDeserializer;
        use serde::de::value::{Error, U8Deserializer};
        let read = |digits: u8| {
            let de: U8Deserializer<Error> = digits.into_deserializer();
            <Scale as serde::Deserialize>::deserialize(de)
        };
        assert_eq!(read(7).unwrap(), s(7));
        let err = read(19).unwrap_err().to_string();
        assert!(
            err.contains("19 is more than the 18 fractional digits"),
            "{err}"
        );
    }

    // ---- properties ----

    /// A parse result reduced to what must agree between two spellings of one value.
    #[derive(Debug, PartialEq)]
    enum Outcome {
        Value(i128),
        TooPrecise(u64),
        Overflow,
        Other(String),
    }

    fn outcome(result: Result<Decimal, DecimalError>) -> Outcome {
        match result {
            Ok(d) => Outcome::Value(d.0),
            Err(DecimalError::TooPrecise { digits, .. }) => Outcome::TooPrecise(digits),
            Err(DecimalError::Overflow { .. }) => Outcome::Overflow,
            Err(e) => Outcome::Other(e.to_string()),
        }
    }

    /// Pieces of a plain decimal text: sign, integer digits, fractional digits (possibly with
    /// trailing zeros), and whether a `.` is written.
    fn plain_parts() -> impl Strategy<Value = (&'static str, String, String, bool)> {
        (
            prop_oneof![Just(""), Just("-"), Just("+")],
            "[0-9]{0,42}",
            prop_oneof!["[0-9]{0,20}", "[0-9]{0,8}0{0,12}"],
            any::<bool>(),
        )
            .prop_map(|(sign, int, frac, dot)| {
                let int = if int.is_empty() && frac.is_empty() {
                    "0".to_string()
                } else {
                    int
                };
                let dot = dot || !frac.is_empty();
                (sign, int, frac, dot)
            })
    }

    fn join(sign: &str, int: &str, frac: &str, dot: bool) -> String {
        if dot {
            format!("{sign}{int}.{frac}")
        } else {
            format!("{sign}{int}")
        }
    }

    /// The expected outcome of parsing a plain text, computed with string manipulation and
    /// `i128::from_str` only.
    fn plain_oracle(sign: &str, int: &str, frac: &str, scale: u32) -> Outcome {
        let scale = scale as usize;
        let frac = frac.trim_end_matches('0');
        if frac.len() > scale {
            return Outcome::TooPrecise(frac.len() as u64);
        }
        let digits = format!("{int}{frac}{}", "0".repeat(scale - frac.len()));
        let digits = digits.trim_start_matches('0');
        if digits.is_empty() {
            return Outcome::Value(0);
        }
        let sign = if sign == "-" { "-" } else { "" };
        match format!("{sign}{digits}").parse::<i128>() {
            Ok(v) => Outcome::Value(v),
            Err(_) => Outcome::Overflow,
        }
    }

    /// Units as text at `scale`, written independently of `to_canonical` (zero-padded fraction,
    /// optionally with extra trailing zeros).
    fn units_text(units: i128, scale: u32, extra_zeros: usize) -> String {
        let sign = if units < 0 { "-" } else { "" };
        let magnitude = units.unsigned_abs();
        let pow = 10u128.pow(scale);
        let zeros = "0".repeat(extra_zeros);
        if scale == 0 {
            format!("{sign}{magnitude}")
        } else {
            let width = scale as usize;
            format!(
                "{sign}{}.{:0width$}{zeros}",
                magnitude / pow,
                magnitude % pow
            )
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn canonical_text_parses_back(units in any::<i128>(), digits in 0u32..=18) {
            let scale = s(digits);
            let x = Decimal(units);
            let text = x.to_canonical(scale);
            prop_assert_eq!(Decimal::parse(&text, scale), Ok(x), "text {}", text);
            prop_assert_eq!(x.display(scale).to_string(), text);
        }

        #[test]
        fn canonical_text_equals_a_naive_rendering(
            units in prop_oneof![
                any::<i128>(),
                any::<i64>().prop_map(i128::from),
                -100_000i128..100_000,
                (any::<i32>(), 0u32..=18).prop_map(|(v, zeros)| i128::from(v) * 10i128.pow(zeros)),
                (u64::MAX as i128 - 1000)..(u64::MAX as i128 + 1000),
                -(u64::MAX as i128 + 1000)..-(u64::MAX as i128 - 1000),
            ],
            digits in 0u32..=18,
        ) {
            // The digits of |units| from `u128`'s Display, the point inserted by hand.
            let scale = digits as usize;
            let magnitude = format!("{:0>width$}", units.unsigned_abs(), width = scale + 1);
            let (int, frac) = magnitude.split_at(magnitude.len() - scale);
            let frac = frac.trim_end_matches('0');
            let sign = if units < 0 { "-" } else { "" };
            let naive = if frac.is_empty() {
                format!("{sign}{int}")
            } else {
                format!("{sign}{int}.{frac}")
            };
            prop_assert_eq!(Decimal(units).to_canonical(s(digits)), naive.clone());
            let mut written = b"row|".to_vec();
            Decimal(units).write_canonical(s(digits), &mut written);
            prop_assert_eq!(written, format!("row|{naive}").into_bytes());
        }

        #[test]
        fn canonical_text_is_minimal(units in any::<i128>(), digits in 0u32..=18) {
            let text = Decimal(units).to_canonical(s(digits));
            let unsigned = text.strip_prefix('-').unwrap_or(&text);
            prop_assert_eq!(text.starts_with('-'), units < 0, "{}", text);
            prop_assert!(!unsigned.is_empty());
            prop_assert!(unsigned.bytes().all(|b| b.is_ascii_digit() || b == b'.'), "{}", text);
            prop_assert!(!text.contains('+') && !text.contains(['e', 'E']), "{}", text);
            let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
            prop_assert!(!frac.contains('.'), "{}", text);
            prop_assert!(!int.is_empty(), "{}", text);
            prop_assert!(int == "0" || !int.starts_with('0'), "{}", text);
            prop_assert!(!frac.ends_with('0'), "{}", text);
            prop_assert!(frac.len() <= digits as usize, "{}", text);
            prop_assert_eq!(unsigned.contains('.'), !frac.is_empty(), "{}", text);
            if units == 0 {
                prop_assert_eq!(&text, "0");
            }
        }

        #[test]
        fn parse_agrees_with_string_oracle(
            (sign, int, frac, dot) in plain_parts(),
            digits in 0u32..=18,
        ) {
            let text = join(sign, &int, &frac, dot);
            let expected = plain_oracle(sign, &int, &frac, digits);
            prop_assert_eq!(outcome(Decimal::parse(&text, s(digits))), expected, "text {}", text);
        }

        #[test]
        fn exponent_agrees_with_moving_the_point(
            (sign, int, frac, dot) in plain_parts(),
            exponent in -30i32..=30,
            marker in prop_oneof![Just("e"), Just("E")],
            plus in any::<bool>(),
            digits in 0u32..=18,
        ) {
            let with_exponent = if plus && exponent >= 0 {
                format!("{}{marker}+{exponent}", join(sign, &int, &frac, dot))
            } else {
                format!("{}{marker}{exponent}", join(sign, &int, &frac, dot))
            };
            // Move the point by string manipulation.
            let all = format!("{int}{frac}");
            let point = int.len() as i64 + i64::from(exponent);
            let (new_int, new_frac) = if point <= 0 {
                (String::new(), format!("{}{all}", "0".repeat((-point) as usize)))
            } else if point as usize >= all.len() {
                (format!("{all}{}", "0".repeat(point as usize - all.len())), String::new())
            } else {
                (all[..point as usize].to_string(), all[point as usize..].to_string())
            };
            let new_int = if new_int.is_empty() { "0".to_string() } else { new_int };
            let plain = join(sign, &new_int, &new_frac, true);
            let scale = s(digits);
            let got = outcome(Decimal::parse(&with_exponent, scale));
            prop_assert_eq!(&got, &outcome(Decimal::parse(&plain, scale)),
                "{} vs {}", with_exponent, plain);
            prop_assert_eq!(got, plain_oracle(sign, &new_int, &new_frac, digits),
                "{} vs {}", with_exponent, plain);
        }

        #[test]
        fn sums_of_parsed_values_are_exact(
            values in prop::collection::vec(-1_000_000_000_000i64..=1_000_000_000_000, 0..20),
            digits in 0u32..=18,
            extra_zeros in 0usize..3,
        ) {
            let scale = s(digits);
            let mut sum = Decimal::ZERO;
            let mut exact: i128 = 0;
            for &units in &values {
                let text = units_text(i128::from(units), digits, extra_zeros);
                let parsed = Decimal::parse(&text, scale);
                prop_assert_eq!(parsed.clone(), Ok(Decimal(i128::from(units))), "{}", text);
                sum = sum.checked_add(parsed.unwrap()).unwrap();
                exact += i128::from(units);
            }
            let sum_text = units_text(exact, digits, 0);
            prop_assert_eq!(Decimal::parse(&sum_text, scale), Ok(sum), "{}", sum_text);
            prop_assert_eq!(sum.to_canonical(scale), Decimal(exact).to_canonical(scale));
        }

        #[test]
        fn sums_of_small_integers_are_exact(
            values in prop::collection::vec(-1_000_000i32..=1_000_000, 1..20),
            digits in 0u32..=18,
        ) {
            let scale = s(digits);
            let sum = values
                .iter()
                .map(|v| Decimal::parse(&v.to_string(), scale).unwrap())
                .try_fold(Decimal::ZERO, Decimal::checked_add)
                .unwrap();
            let exact: i64 = values.iter().map(|&v| i64::from(v)).sum();
            prop_assert_eq!(Decimal::parse(&exact.to_string(), scale), Ok(sum));
            prop_assert_eq!(sum.to_canonical(scale), exact.to_string());
        }

        #[test]
        fn mul_int_is_repeated_addition(units in any::<i64>(), n in -5i64..=5) {
            let x = Decimal(i128::from(units));
            let mut expected = Decimal::ZERO;
            for _ in 0..n.unsigned_abs() {
                expected = expected.checked_add(x).unwrap();
            }
            if n < 0 {
                expected = Decimal(-expected.0);
            }
            prop_assert_eq!(x.checked_mul_int(n), Some(expected));
        }

        #[test]
        fn mean_is_nearest_with_ties_to_even(sum in any::<i64>(), count in 1u64..=1_000_000) {
            let sum = i128::from(sum);
            let count_i = i128::from(count);
            let mean = Decimal::mean(Decimal(sum), count).unwrap().0;
            // |sum/count - mean| <= 1/2, i.e. |sum - mean*count| * 2 <= count.
            let twice_error = (sum - mean * count_i).abs() * 2;
            prop_assert!(twice_error <= count_i, "sum {} count {} mean {}", sum, count, mean);
            if twice_error == count_i {
                prop_assert_eq!(mean % 2, 0, "tie must go to even: {} / {}", sum, count);
            }
        }

        #[test]
        fn mean_ties_go_to_even(
            below in -1_000_000_000_000i128..=1_000_000_000_000,
            half in 1u64..=1_000_000,
        ) {
            // sum / count is exactly below + 1/2, a tie between below and below + 1.
            let count = half * 2;
            let sum = below * i128::from(count) + i128::from(half);
            let even = if below % 2 == 0 { below } else { below + 1 };
            prop_assert_eq!(Decimal::mean(Decimal(sum), count), Some(Decimal(even)));
            prop_assert_eq!(Decimal::mean(Decimal(-sum), count), Some(Decimal(-even)));
        }

        #[test]
        fn parse_never_panics(text in ".{0,60}", digits in 0u32..=18) {
            let _ = Decimal::parse(&text, s(digits));
        }

        #[test]
        fn parse_never_panics_on_numberish(text in "[-+0-9.eE]{0,60}", digits in 0u32..=18) {
            if let Ok(d) = Decimal::parse(&text, s(digits)) {
                prop_assert_eq!(Decimal::parse(&d.to_canonical(s(digits)), s(digits)), Ok(d));
            }
        }
    }
}
