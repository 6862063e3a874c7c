//! Durations with units and rates `N/duration`, as the native commands write them.
//!
//! Owns the grammar and its typed errors; depends only on [`crate::clock::Nanos`].
//!
//! # Grammar
//! ```text
//! duration := digits unit          250ms  30s  1m  1h  1d
//! unit     := ms | s | m | h | d   (case-insensitive; m is minutes)
//! rate     := digits "/" duration  100/1m
//!           | digits "/" unit      5/s  (one unit)
//! ```
//! A unit is required: a bare `60` is refused rather than guessed (seconds as in `EX`, or
//! milliseconds as in `PX`?). Fractions (`1.5s`), signs, exponents and spaces are refused;
//! write `1500ms`. Durations are at most [`MAX_DURATION`] (2^62 ns, about 146 years), the same
//! cap as the GCRA tolerance, so `now + duration` never overflows for a wall-clock `now`.

use crate::clock::Nanos;

/// The longest duration accepted: 2^62 ns, about 146 years.
pub const MAX_DURATION: Nanos = Nanos(1 << 62);

/// Why a duration or rate was refused. `Display` is the reply text after `ERR `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// The argument was empty.
    #[error("empty duration")]
    Empty,
    /// No digits before the unit.
    #[error("duration must start with a whole number, e.g. 250ms")]
    NotANumber,
    /// Digits with no unit.
    #[error("duration needs a unit (ms, s, m, h or d), e.g. 30s")]
    MissingUnit,
    /// A unit outside `ms s m h d`.
    #[error("unknown duration unit '{0}' (use ms, s, m, h or d)")]
    UnknownUnit(String),
    /// A decimal point in a duration or count.
    #[error("fractional values are not allowed; use a smaller unit, e.g. 1500ms")]
    Fraction,
    /// A leading `-`.
    #[error("value must not be negative")]
    Negative,
    /// A zero duration or a zero count.
    #[error("value must be greater than zero")]
    Zero,
    /// Over [`MAX_DURATION`] or over `u64`.
    #[error("value is out of range")]
    OutOfRange,
    /// A rate without `/`.
    #[error("rate must look like N/duration, e.g. 100/1m")]
    NotARate,
}

/// A checked rate: `count` per `period`, both non-zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    count: u64,
    period: Nanos,
}

impl Rate {
    /// A rate from a positive count and a period in `1 ..= MAX_DURATION` ns.
    pub fn new(count: u64, period: Nanos) -> Result<Rate, UnitError> {
        if count == 0 || period == Nanos::ZERO {
            return Err(UnitError::Zero);
        }
        if period > MAX_DURATION {
            return Err(UnitError::OutOfRange);
        }
        Ok(Rate { count, period })
    }

    /// How many per period.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The period.
    pub fn period(&self) -> Nanos {
        self.period
    }
}

/// Parses a duration such as `250ms` or `1h` (see the module grammar).
pub fn parse_duration(s: &str) -> Result<Nanos, UnitError> {
    let (n, unit) = split_number(s)?;
    if unit.is_empty() {
        return Err(UnitError::MissingUnit);
    }
    duration_of(n, unit)
}

/// Parses a rate such as `100/1m` or `5/s` (see the module grammar).
pub fn parse_rate(s: &str) -> Result<Rate, UnitError> {
    let (count, per) = s.split_once('/').ok_or(UnitError::NotARate)?;
    let (count, rest) = split_number(count)?;
    if !rest.is_empty() {
        return Err(UnitError::NotARate);
    }
    // `5/s` means five per one second.
    let period = match per.as_bytes().first() {
        Some(b) if b.is_ascii_alphabetic() => duration_of(1, per)?,
        _ => parse_duration(per)?,
    };
    Rate::new(count, period)
}

/// Parses a whole, positive count such as `1000` (no sign, fraction or unit).
pub fn parse_count(s: &str) -> Result<u64, UnitError> {
    match split_number(s)? {
        (0, "") => Err(UnitError::Zero),
        (n, "") => Ok(n),
        (_, _) => Err(UnitError::NotANumber),
    }
}

/// Splits leading digits (as a `u64`) from the rest, refusing signs and fractions.
fn split_number(s: &str) -> Result<(u64, &str), UnitError> {
    let end = s
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(s.len());
    let (digits, rest) = s.split_at(end);
    if digits.is_empty() {
        return Err(match s.as_bytes().first() {
            None => UnitError::Empty,
            Some(b'-') => UnitError::Negative,
            Some(b'.') => UnitError::Fraction,
            _ => UnitError::NotANumber,
        });
    }
    if rest.starts_with('.') {
        return Err(UnitError::Fraction);
    }
    let n = digits.parse::<u64>().map_err(|_| UnitError::OutOfRange)?;
    Ok((n, rest))
}

/// `n` units as a checked, non-zero duration.
fn duration_of(n: u64, unit: &str) -> Result<Nanos, UnitError> {
    // Compared in place: a lowercased copy cost an allocation per limiter request.
    let is = |name: &str| unit.eq_ignore_ascii_case(name);
    let per: u64 = if is("ms") {
        Nanos::PER_MS
    } else if is("s") {
        Nanos::PER_SEC
    } else if is("m") {
        60 * Nanos::PER_SEC
    } else if is("h") {
        3_600 * Nanos::PER_SEC
    } else if is("d") {
        86_400 * Nanos::PER_SEC
    } else {
        return Err(UnitError::UnknownUnit(unit.to_owned()));
    };
    if n == 0 {
        return Err(UnitError::Zero);
    }
    n.checked_mul(per)
        .filter(|&ns| ns <= MAX_DURATION.0)
        .map(Nanos)
        .ok_or(UnitError::OutOfRange)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn durations_parse_with_units() {
        let cases: &[(&str, &str, u64)] = &[
            ("milliseconds", "250ms", 250 * Nanos::PER_MS),
            ("seconds", "30s", 30 * Nanos::PER_SEC),
            ("minutes", "1m", 60 * Nanos::PER_SEC),
            ("hours", "1h", 3_600 * Nanos::PER_SEC),
            ("days", "1d", 86_400 * Nanos::PER_SEC),
            ("upper case", "2MS", 2 * Nanos::PER_MS),
            ("leading zeros", "007s", 7 * Nanos::PER_SEC),
            (
                "the cap",
                "4611686018427ms",
                4_611_686_018_427 * Nanos::PER_MS,
            ),
        ];
        for &(label, input, ns) in cases {
            assert_eq!(parse_duration(input), Ok(Nanos(ns)), "{label}");
        }
    }

    #[test]
    fn bad_durations_are_typed_errors() {
        use UnitError::*;
        let cases: &[(&str, &str, UnitError)] = &[
            ("empty", "", Empty),
            ("bare number", "60", MissingUnit),
            ("unit only", "ms", NotANumber),
            ("unknown unit", "5w", UnknownUnit("w".into())),
            ("month is not a duration", "1mo", UnknownUnit("mo".into())),
            ("fraction", "1.5s", Fraction),
            ("leading dot", ".5s", Fraction),
            ("negative", "-5s", Negative),
            ("plus sign", "+5s", NotANumber),
            ("zero", "0s", Zero),
            ("exponent", "1e3ms", UnknownUnit("e3ms".into())),
            ("space", "5 s", UnknownUnit(" s".into())),
            ("over the cap", "4611686018428ms", OutOfRange),
            ("overflows u64", "99999999999999999999d", OutOfRange),
            (
                "multiplication overflows",
                "18446744073709551615d",
                OutOfRange,
            ),
        ];
        for (label, input, want) in cases {
            assert_eq!(parse_duration(input).as_ref(), Err(want), "{label}");
        }
        assert_eq!(
            UnknownUnit("w".into()).to_string(),
            "unknown duration unit 'w' (use ms, s, m, h or d)"
        );
    }

    #[test]
    fn rates_parse_count_and_period() {
        // (label, input, (count, period ns) or error)
        type Case = (&'static str, &'static str, Result<(u64, u64), UnitError>);
        let cases: &[Case] = &[
            ("per minute", "100/1m", Ok((100, 60 * Nanos::PER_SEC))),
            ("bare unit", "5/s", Ok((5, Nanos::PER_SEC))),
            ("per 250 ms", "1/250ms", Ok((1, 250 * Nanos::PER_MS))),
            ("zero count", "0/1m", Err(UnitError::Zero)),
            ("zero period", "5/0s", Err(UnitError::Zero)),
            ("no slash", "100", Err(UnitError::NotARate)),
            ("negative count", "-1/s", Err(UnitError::Negative)),
            ("fractional count", "1.5/s", Err(UnitError::Fraction)),
            ("count with junk", "5x/s", Err(UnitError::NotARate)),
            ("bare number period", "5/60", Err(UnitError::MissingUnit)),
            (
                "day name is not a unit",
                "5/day",
                Err(UnitError::UnknownUnit("day".into())),
            ),
            ("empty period", "5/", Err(UnitError::Empty)),
            (
                "count overflows",
                "18446744073709551616/s",
                Err(UnitError::OutOfRange),
            ),
        ];
        for (label, input, want) in cases {
            let got = parse_rate(input).map(|r| (r.count(), r.period().0));
            assert_eq!(&got, want, "{label}");
        }
    }

    #[test]
    fn counts_are_whole_and_positive() {
        // (label, input, result)
        let cases: &[(&str, &str, Result<u64, UnitError>)] = &[
            ("plain", "1000", Ok(1000)),
            ("zero", "0", Err(UnitError::Zero)),
            ("negative", "-3", Err(UnitError::Negative)),
            ("fraction", "2.5", Err(UnitError::Fraction)),
            ("suffix", "5x", Err(UnitError::NotANumber)),
            ("empty", "", Err(UnitError::Empty)),
        ];
        for (label, input, want) in cases {
            assert_eq!(&parse_count(input), want, "{label}");
        }
    }

    proptest! {
        #[test]
        fn parsing_never_panics(s in "\\PC{0,24}") {
            let _ = parse_duration(&s);
            let _ = parse_rate(&s);
            let _ = parse_count(&s);
        }

        #[test]
        fn every_accepted_duration_is_positive_and_capped(n: u64, unit in "(ms|s|m|h|d)") {
            if let Ok(d) = parse_duration(&format!("{n}{unit}")) {
                prop_assert!(d > Nanos::ZERO && d <= MAX_DURATION);
            }
        }
    }
}
