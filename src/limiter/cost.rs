//! COST: decimal budgets (money, credits) capped per calendar period or per rolling window.
//!
//! Owns [`Amount`], an exact fixed-point decimal, and the pure transition behind
//! `COST.INCRBY`/`COST.PEEK`. Reuses [`Calendar`] from QUOTA for calendar caps and the sliding
//! window counter from WINDOW for rolling caps. Depends on `clock`, `decision`, `quota`,
//! `window`: no I/O, no clock reads, no floating point anywhere.
//!
//! # Terms
//! - **Amount**: a decimal with at most 6 fractional digits, held as a count of
//!   **micro-units** (`1.25` is `1_250_000`) in an `i64`, so sums are exact integer sums.
//!   Range: ±9 223 372 036 854.775807.
//! - **Cap**: the most that may be spent per period (calendar) or per window (rolling).
//! - **Spent**: micro-units charged in the current calendar period; for a rolling cap, the
//!   sliding window counter's estimate rounded up (see [`crate::limiter::window`]).
//! - **Charge**: a positive amount. All-or-nothing: it is recorded only if `spent + amount <=
//!   cap`, unless **force** is set, which records it anyway (for costs known only after the
//!   call); the decision then still says whether it fitted.
//! - **Refund**: a negative amount. Always admitted; it lowers `spent` but never below zero
//!   (for a rolling cap, the current window's count first, then the previous one's).
//!
//! `Decision::limit` and `remaining` are micro-units; the reply layer renders them with
//! [`Amount`]'s `Display`.

use std::fmt;

use crate::clock::Nanos;
use crate::limiter::decision::Decision;
use crate::limiter::quota::{Calendar, Period};
use crate::limiter::units::MAX_DURATION;
use crate::limiter::window::{counter_expiry, Counter};

/// Micro-units per unit.
pub const MICROS_PER_UNIT: i64 = 1_000_000;
/// Fractional digits an [`Amount`] holds.
pub const SCALE: usize = 6;

/// An exact decimal amount in micro-units (10^-6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Amount(pub i64);

/// Why an amount or COST parameter was refused. `Display` is the reply text after `ERR `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CostParamError {
    /// Not a plain decimal: empty, a stray sign or dot, an exponent, NaN, infinity, spaces.
    #[error("amount must be a decimal number such as 1.25")]
    NotADecimal,
    /// More than [`SCALE`] digits after the point.
    #[error("amount has more than 6 decimal places")]
    TooPrecise,
    /// Outside ±9223372036854.775807.
    #[error("amount is out of range")]
    OutOfRange,
    /// A cap of zero or below.
    #[error("cap must be greater than zero")]
    NonPositiveCap,
    /// A rolling window of zero or over the maximum duration.
    #[error("window must be greater than zero and at most 146 years")]
    BadWindow,
}

impl Amount {
    /// Parses `[-]digits[.digits]` with at most 6 fractional digits. Exponents, `NaN`, `inf`,
    /// `+`, a bare `.5` or `5.` and anything else are refused.
    pub fn parse(s: &str) -> Result<Amount, CostParamError> {
        Amount::parse_bytes(s.as_bytes())
    }

    /// [`Amount::parse`] over raw argument bytes, in one pass and without allocating (COST
    /// parses two amounts per request); bytes that are not ASCII digits, `-` or `.` are
    /// [`CostParamError::NotADecimal`], as any non-UTF-8 argument is.
    pub fn parse_bytes(s: &[u8]) -> Result<Amount, CostParamError> {
        let (negative, body) = match s {
            [b'-', rest @ ..] => (true, rest),
            _ => (false, s),
        };
        // One pass over the digits of both parts as one integer; a wrong byte anywhere is
        // NotADecimal, which outranks TooPrecise, which outranks OutOfRange.
        let (mut digits, mut int_len, mut frac_len) = (Some(0u64), 0, None);
        for &b in body {
            match (b, &mut frac_len) {
                (b'0'..=b'9', frac) => {
                    digits = digits
                        .and_then(|n| n.checked_mul(10))
                        .and_then(|n| n.checked_add(u64::from(b - b'0')));
                    match frac {
                        Some(len) => *len += 1,
                        None => int_len += 1,
                    }
                }
                (b'.', frac @ None) => *frac = Some(0),
                _ => return Err(CostParamError::NotADecimal),
            }
        }
        if int_len == 0 || frac_len == Some(0) {
            return Err(CostParamError::NotADecimal);
        }
        let frac_len = frac_len.unwrap_or(0);
        if frac_len > SCALE {
            return Err(CostParamError::TooPrecise);
        }
        const POW10: [u64; SCALE + 1] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000];
        // Digits past u64 are past the i64 range too.
        let micros = digits
            .and_then(|n| n.checked_mul(POW10[SCALE - frac_len]))
            .ok_or(CostParamError::OutOfRange)?;
        // i64::MIN's magnitude is one more than i64::MAX.
        let signed = if negative {
            0i64.checked_sub_unsigned(micros)
        } else {
            i64::try_from(micros).ok()
        };
        signed.map(Amount).ok_or(CostParamError::OutOfRange)
    }

    /// Whole micro-units.
    pub fn micros(self) -> i64 {
        self.0
    }
}

impl Amount {
    /// The longest decimal text of an amount: `-9223372036854.775808`.
    pub const MAX_TEXT_LEN: usize = 21;

    /// Writes the shortest exact decimal (`1.25`, `-0.000001`, `3`) into `buf` and returns
    /// the written part: no allocation, so replies can pack several amounts in one buffer.
    pub fn encode(self, buf: &mut [u8; Amount::MAX_TEXT_LEN]) -> &[u8] {
        // Written right to left: fraction without trailing zeros, point, units, sign.
        let abs = self.0.unsigned_abs();
        let (mut int, mut frac) = (abs / 1_000_000, abs % 1_000_000);
        let mut at = buf.len();
        if frac != 0 {
            // Drop the (at most five) trailing zeros: three, then two, then one.
            let mut places = SCALE;
            for (div, n) in [(1000, 3), (100, 2), (10, 1)] {
                if frac % div == 0 {
                    frac /= div;
                    places -= n;
                }
            }
            for _ in 0..places {
                at -= 1;
                buf[at] = b'0' + (frac % 10) as u8;
                frac /= 10;
            }
            at -= 1;
            buf[at] = b'.';
        }
        // At most 13 digits: |i64::MIN| / 10^6 < 10^13.
        loop {
            at -= 1;
            buf[at] = b'0' + (int % 10) as u8;
            int /= 10;
            if int == 0 {
                break;
            }
        }
        if self.0 < 0 {
            at -= 1;
            buf[at] = b'-';
        }
        &buf[at..]
    }

    /// Appends [`Amount::encode`]'s text to `out`.
    pub fn write_decimal(self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.encode(&mut [0; Amount::MAX_TEXT_LEN]));
    }
}

impl fmt::Display for Amount {
    /// The shortest exact decimal: `1.25`, `-0.000001`, `3`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::with_capacity(24);
        self.write_decimal(&mut out);
        // Only ASCII digits, '-' and '.' are written.
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

/// How the cap is measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CostPeriod {
    /// Per calendar period (`PER day`), boundaries as in QUOTA.
    Calendar(Calendar),
    /// Per sliding window of this length (`WINDOW 1h`).
    Rolling(Nanos),
}

/// Checked COST parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CostParams {
    cap: u64,
    per: CostPeriod,
}

impl CostParams {
    /// A positive `cap` per `per`.
    pub fn new(cap: Amount, per: CostPeriod) -> Result<CostParams, CostParamError> {
        if cap.0 <= 0 {
            return Err(CostParamError::NonPositiveCap);
        }
        if let CostPeriod::Rolling(w) = per {
            if w == Nanos::ZERO || w > MAX_DURATION {
                return Err(CostParamError::BadWindow);
            }
        }
        Ok(CostParams {
            // cap > 0 was checked above, so the conversion is lossless.
            cap: cap.0.unsigned_abs(),
            per,
        })
    }

    /// The cap.
    pub fn cap(&self) -> Amount {
        // Built from a positive i64.
        Amount(self.cap as i64)
    }

    /// How the cap is measured.
    pub fn per(&self) -> &CostPeriod {
        &self.per
    }
}

/// What the store keeps for a COST key; the variant follows the params' [`CostPeriod`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CostState {
    /// Spend in one calendar period.
    Calendar {
        /// The period `spent` belongs to.
        period: Period,
        /// Micro-units spent in it (may exceed the cap after a forced charge).
        spent: u64,
    },
    /// A sliding window counter over micro-units.
    Rolling {
        /// Start of the current fixed window.
        start: Nanos,
        /// Micro-units of the previous fixed window.
        prev: u64,
        /// Micro-units of the current fixed window.
        curr: u64,
    },
}

/// A COST decision plus the family extras.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CostOutcome {
    /// The shared fields, in micro-units. `allowed` says whether the charge fitted the cap;
    /// refunds are always allowed.
    pub decision: Decision,
    /// What was recorded: the charge, the (possibly clipped) refund as a negative amount, or 0.
    pub recorded: Amount,
    /// Spent after this call.
    pub spent: Amount,
    /// The calendar period the decision was made in (`None` for a rolling window).
    pub period: Option<Period>,
}

/// When `state` is fresh again: its period's end, or two windows after a rolling start.
pub fn expires_at(params: &CostParams, state: &CostState) -> Nanos {
    match (state, &params.per) {
        (CostState::Calendar { period, .. }, _) => period.end,
        (CostState::Rolling { start, prev, curr }, CostPeriod::Rolling(w)) => {
            counter_expiry(w.0, start.0, *prev, *curr)
        }
        // A rolling state under calendar params is read as fresh; keep it one window at most.
        (CostState::Rolling { start, .. }, CostPeriod::Calendar(_)) => *start,
    }
}

/// Runs one COST transition: charge (`amount > 0`), refund (`amount < 0`) or look (`0`).
///
/// A charge that does not fit is recorded only with `force`. Returns the state to write when
/// anything was recorded; it expires at [`expires_at`]. A state of the other variant than
/// the params (the cap was switched between calendar and rolling) reads as fresh. Peek is
/// the same call with the state discarded.
pub fn take(
    params: &CostParams,
    state: Option<CostState>,
    now: Nanos,
    amount: Amount,
    force: bool,
) -> (CostOutcome, Option<CostState>) {
    match &params.per {
        CostPeriod::Calendar(cal) => calendar(params.cap, cal, state, now, amount, force),
        CostPeriod::Rolling(w) => rolling(params.cap, w.0, state, now, amount, force),
    }
}

fn calendar(
    cap: u64,
    cal: &Calendar,
    state: Option<CostState>,
    now: Nanos,
    amount: Amount,
    force: bool,
) -> (CostOutcome, Option<CostState>) {
    let (period, spent) = match state {
        // The stored period stands until its end, also when the clock stepped back into or
        // before it; only a new period needs time zone arithmetic.
        Some(CostState::Calendar { period, spent }) if now < period.end => (period, spent),
        _ => (cal.period_at(now), 0),
    };
    let reset_after = period.end.saturating_sub(now);
    let (fits, new_spent, recorded) = apply(spent, amount, force, |s, a| {
        s.checked_add(a).is_some_and(|total| total <= cap)
    });
    let retry = (!fits).then(|| {
        // The next period starts from zero, so any amount up to the cap fits there.
        (amount.0.unsigned_abs() <= cap).then(|| period.end.saturating_sub(now))
    });
    let decision = Decision {
        allowed: fits,
        limit: cap,
        remaining: cap.saturating_sub(new_spent),
        retry_after: retry.flatten(),
        reset_after,
    };
    let new = (recorded != 0).then_some(CostState::Calendar {
        period,
        spent: new_spent,
    });
    let outcome = CostOutcome {
        decision,
        recorded: Amount(recorded),
        spent: Amount(i64::try_from(new_spent).unwrap_or(i64::MAX)),
        period: Some(period),
    };
    (outcome, new)
}

fn rolling(
    cap: u64,
    w: u64,
    state: Option<CostState>,
    now: Nanos,
    amount: Amount,
    force: bool,
) -> (CostOutcome, Option<CostState>) {
    let stored = match state {
        Some(CostState::Rolling { start, prev, curr }) => Some((start.0, prev, curr)),
        _ => None,
    };
    let v = Counter::view(stored, w, now.0);
    let charge = u64::try_from(amount.0).unwrap_or(0);
    let fits = v.fits(w, cap, charge);
    let mut next = v;
    let recorded = if amount.0 >= 0 {
        if fits || force {
            next.curr = v.curr.saturating_add(charge);
            amount.0
        } else {
            0
        }
    } else {
        // Refund the current window first, then the previous one; never below zero.
        let want = amount.0.unsigned_abs();
        let from_curr = want.min(v.curr);
        let from_prev = (want - from_curr).min(v.prev);
        next.curr -= from_curr;
        next.prev -= from_prev;
        // from_curr + from_prev <= want <= 2^63.
        -((from_curr + from_prev) as i128) as i64
    };
    let fits = fits || amount.0 < 0;
    let retry = (!fits).then(|| v.earliest(w, cap, charge).map(|t| Nanos(t - now.0.min(t))));
    let reset = counter_expiry(w, next.start, next.prev, next.curr);
    let decision = Decision {
        allowed: fits,
        limit: cap,
        remaining: next.remaining(w, cap),
        retry_after: retry.flatten(),
        reset_after: reset.saturating_sub(now),
    };
    let new = (recorded != 0).then_some(CostState::Rolling {
        start: Nanos(next.start),
        prev: next.prev,
        curr: next.curr,
    });
    let outcome = CostOutcome {
        decision,
        recorded: Amount(recorded),
        spent: Amount(i64::try_from(next.estimate(w)).unwrap_or(i64::MAX)),
        period: None,
    };
    (outcome, new)
}

/// Applies `amount` to `spent`: `(fits, new spent, recorded micro-units)`. A charge is
/// recorded when `fits(spent, amount)` or `force`; a refund always, clipped at zero.
fn apply(
    spent: u64,
    amount: Amount,
    force: bool,
    fits: impl Fn(u64, u64) -> bool,
) -> (bool, u64, i64) {
    if amount.0 >= 0 {
        // amount >= 0, so the conversion is lossless.
        let a = amount.0.unsigned_abs();
        let ok = fits(spent, a);
        if ok || force {
            (ok, spent.saturating_add(a), amount.0)
        } else {
            (false, spent, 0)
        }
    } else {
        let refund = amount.0.unsigned_abs().min(spent);
        // refund <= |amount| <= 2^63, so the negation fits in i64 via i128.
        (true, spent - refund, -(i128::from(refund)) as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limiter::quota::PeriodUnit;
    use proptest::prelude::*;

    /// 2024-05-05T00:00:00Z.
    const DAY: Nanos = Nanos(1_714_867_200 * Nanos::PER_SEC);

    fn amt(s: &str) -> Amount {
        Amount::parse(s).unwrap()
    }

    fn hours(h: u64) -> Nanos {
        Nanos::from_secs(h * 3600)
    }

    #[test]
    fn decimals_parse_exactly() {
        // (label, input, micro-units or error)
        let cases: &[(&str, &str, Result<i64, CostParamError>)] = &[
            ("whole", "3", Ok(3_000_000)),
            ("two places", "1.25", Ok(1_250_000)),
            ("one micro", "0.000001", Ok(1)),
            ("negative micro", "-0.000001", Ok(-1)),
            ("trailing zeros", "2.500000", Ok(2_500_000)),
            ("negative zero", "-0", Ok(0)),
            ("largest", "9223372036854.775807", Ok(i64::MAX)),
            ("smallest", "-9223372036854.775807", Ok(-i64::MAX)),
            ("seven places", "0.0000001", Err(CostParamError::TooPrecise)),
            (
                "over the top",
                "9223372036854.775808",
                Err(CostParamError::OutOfRange),
            ),
            (
                "many digits",
                "99999999999999999999999",
                Err(CostParamError::OutOfRange),
            ),
            ("exponent", "1e3", Err(CostParamError::NotADecimal)),
            ("NaN", "NaN", Err(CostParamError::NotADecimal)),
            ("infinity", "inf", Err(CostParamError::NotADecimal)),
            ("plus sign", "+1", Err(CostParamError::NotADecimal)),
            ("bare dot", ".5", Err(CostParamError::NotADecimal)),
            ("trailing dot", "5.", Err(CostParamError::NotADecimal)),
            ("two dots", "1.2.3", Err(CostParamError::NotADecimal)),
            ("double minus", "--1", Err(CostParamError::NotADecimal)),
            ("empty", "", Err(CostParamError::NotADecimal)),
            ("space", " 1", Err(CostParamError::NotADecimal)),
            ("comma", "1,5", Err(CostParamError::NotADecimal)),
            ("minimum", "-9223372036854.775808", Ok(i64::MIN)),
            (
                "below the minimum",
                "-9223372036854.775809",
                Err(CostParamError::OutOfRange),
            ),
            ("leading zeros", "000000000000000000000001.5", Ok(1_500_000)),
            // Errors rank: not a decimal, then too precise, then out of range.
            (
                "huge and too precise",
                "99999999999999999999999.1234567",
                Err(CostParamError::TooPrecise),
            ),
            (
                "huge, too precise and junk",
                "99999999999999999999999.1234567x",
                Err(CostParamError::NotADecimal),
            ),
        ];
        for (label, input, want) in cases {
            assert_eq!(&Amount::parse(input).map(Amount::micros), want, "{label}");
        }
        assert_eq!(
            CostParamError::TooPrecise.to_string(),
            "amount has more than 6 decimal places"
        );
    }

    #[test]
    fn non_utf8_bytes_are_not_a_decimal() {
        for input in [&b"1\xff"[..], b"\xc3\xa9", b"1.\x80", b"-\xff1"] {
            assert_eq!(
                Amount::parse_bytes(input),
                Err(CostParamError::NotADecimal),
                "{input:?}"
            );
        }
    }

    #[test]
    fn amounts_print_as_the_shortest_exact_decimal() {
        let cases = [
            ("whole", 3_000_000, "3"),
            ("cents", 1_250_000, "1.25"),
            ("micro", 1, "0.000001"),
            ("negative", -1_500_000, "-1.5"),
            ("zero", 0, "0"),
            ("minimum", i64::MIN, "-9223372036854.775808"),
            ("maximum", i64::MAX, "9223372036854.775807"),
        ];
        for (label, micros, text) in cases {
            assert_eq!(Amount(micros).to_string(), text, "{label}");
        }
        // Every fraction, against the plain rendering with its trailing zeros cut.
        let mut buf = [0; Amount::MAX_TEXT_LEN];
        for frac in 1..1_000_000 {
            let padded = format!("7.{frac:06}");
            let want = padded.trim_end_matches('0').as_bytes();
            assert_eq!(Amount(7_000_000 + frac).encode(&mut buf), want, "{frac}");
        }
    }

    fn daily(cap: &str) -> CostParams {
        CostParams::new(
            amt(cap),
            CostPeriod::Calendar(Calendar::utc(PeriodUnit::Day)),
        )
        .unwrap()
    }

    #[test]
    fn calendar_cap_is_all_or_nothing_unless_forced() {
        let p = daily("1.00");
        // (label, at, amount, force, allowed, recorded, spent, retry_after)
        type Case = (
            &'static str,
            Nanos,
            &'static str,
            bool,
            bool,
            &'static str,
            &'static str,
            Option<Nanos>,
        );
        #[rustfmt::skip]
        let cases: &[Case] = &[
            ("first charge", hours(1), "0.40", false, true, "0.4", "0.4", None),
            ("second charge", hours(2), "0.55", false, true, "0.55", "0.95", None),
            ("does not fit: nothing recorded", hours(3), "0.06", false, false, "0", "0.95", Some(hours(21))),
            ("exactly fills", hours(3), "0.05", false, true, "0.05", "1", None),
            ("forced past the cap", hours(4), "0.25", true, false, "0.25", "1.25", Some(hours(20))),
            ("refund", hours(5), "-0.30", false, true, "-0.3", "0.95", None),
            ("refund clipped at zero", hours(5), "-5", false, true, "-0.95", "0", None),
            ("over the cap never fits", hours(6), "1.000001", false, false, "0", "0", None),
            ("next day starts over", hours(24), "1", false, true, "1", "1", None),
        ];
        let mut state = None;
        for &(label, at, amount, force, allowed, recorded, spent, retry) in cases {
            let (o, new) = take(&p, state, DAY.saturating_add(at), amt(amount), force);
            assert_eq!(o.decision.allowed, allowed, "{label}");
            assert_eq!(o.recorded, amt(recorded), "{label}");
            assert_eq!(o.spent, amt(spent), "{label}");
            assert_eq!(o.decision.retry_after, retry, "{label}");
            assert_eq!(o.decision.limit, 1_000_000, "{label}");
            assert_eq!(new.is_some(), o.recorded.0 != 0, "{label}");
            state = new.or(state);
        }
    }

    #[test]
    fn rolling_cap_uses_the_sliding_window() {
        let p = CostParams::new(amt("10"), CostPeriod::Rolling(hours(1))).unwrap();
        let mut state = None;
        let mut run = |at: Nanos, a: &str, force: bool| {
            let (o, new) = take(&p, state, DAY.saturating_add(at), amt(a), force);
            state = new.or(state);
            o
        };
        assert!(run(Nanos::ZERO, "10", false).decision.allowed);
        let o = run(Nanos::from_secs(1800), "1", false);
        // At 0.5 h the window holds 10 · 1.0 (same fixed window): wait for the next hour and
        // a tenth of it, when the estimate is 9.
        assert_eq!(o.decision.retry_after, Some(Nanos::from_secs(1800 + 360)));
        let o = run(Nanos::from_secs(1800), "-4", false);
        assert_eq!((o.recorded, o.spent), (amt("-4"), amt("6")));
        let o = run(Nanos::from_secs(5400), "2.5", false);
        // At 1.5 h: 6 · 0.5 + 0 = 3 spent, 2.5 fits.
        assert!(o.decision.allowed);
        assert_eq!(o.spent, amt("5.5"));
        assert_eq!(o.decision.remaining, 4_500_000);
        let o = run(Nanos::from_secs(5400), "-7", false);
        assert_eq!(
            o.recorded,
            amt("-7"),
            "2.5 from this window, 4.5 from the last"
        );
        assert_eq!(o.spent, amt("0.75"));
    }

    #[test]
    fn bad_parameters_are_errors() {
        let day = CostPeriod::Calendar(Calendar::utc(PeriodUnit::Day));
        // (label, result, error)
        let cases = [
            (
                "zero cap",
                CostParams::new(Amount(0), day.clone()),
                CostParamError::NonPositiveCap,
            ),
            (
                "negative cap",
                CostParams::new(Amount(-1), day),
                CostParamError::NonPositiveCap,
            ),
            (
                "zero window",
                CostParams::new(Amount(1), CostPeriod::Rolling(Nanos::ZERO)),
                CostParamError::BadWindow,
            ),
            (
                "huge window",
                CostParams::new(Amount(1), CostPeriod::Rolling(Nanos::MAX)),
                CostParamError::BadWindow,
            ),
        ];
        for (label, got, want) in cases {
            assert_eq!(got, Err(want), "{label}");
        }
    }

    /// The exact reference: `spent` in i128 with the same rules, resetting each UTC day.
    struct Model {
        day: u64,
        spent: i128,
    }

    impl Model {
        fn apply(&mut self, now: Nanos, amount: i64, force: bool, cap: i128) -> i128 {
            let day = now.0 / (86_400 * Nanos::PER_SEC);
            if day != self.day {
                (self.day, self.spent) = (day, 0);
            }
            let a = i128::from(amount);
            if a < 0 || force || self.spent + a <= cap {
                self.spent = (self.spent + a).max(0);
            }
            self.spent
        }
    }

    /// Runs `ops` (micro-units, force, time step) through parse -> take and the model, and
    /// checks they agree after every step.
    fn no_drift(cap: &str, ops: impl Iterator<Item = (i64, bool, u64)>) {
        let p = daily(cap);
        let cap = i128::from(p.cap().0);
        let mut model = Model { day: 0, spent: 0 };
        let mut state = None;
        let mut now = DAY;
        for (i, (micros, force, dt)) in ops.enumerate() {
            now = now.saturating_add(Nanos(dt));
            // Through text and back, as a client would send it.
            let text = Amount(micros).to_string();
            let amount = Amount::parse(&text).unwrap();
            assert_eq!(amount.0, micros, "op {i}: {text} round-trips");
            let (o, new) = take(&p, state, now, amount, force);
            state = new.or(state);
            let want = model.apply(now, micros, force, cap);
            assert_eq!(i128::from(o.spent.0), want, "op {i}: spent drifted");
        }
    }

    #[test]
    fn a_million_increments_and_refunds_never_drift() {
        // xorshift64 with a fixed seed: deterministic, no dependency.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let ops = (0..1_000_000).map(|_| {
            let r = next();
            // Up to ±0.999999 with every micro digit exercised; a tenth are refunds, one in
            // fifty forced; about 9 s per step, so ~10 000 steps per day.
            let micros = (r % 1_000_000) as i64;
            let micros = if r >> 60 < 2 { -micros } else { micros };
            (micros, (r >> 20) % 50 == 0, (r >> 32) % 18 * Nanos::PER_SEC)
        });
        no_drift("2500.000001", ops);
    }

    proptest! {
        #[test]
        fn decimal_text_round_trips(micros: i64) {
            prop_assert_eq!(Amount::parse(&Amount(micros).to_string()), Ok(Amount(micros)));
        }

        #[test]
        fn parse_matches_exact_digit_arithmetic(int in "[0-9]{1,14}", frac in "[0-9]{0,6}", neg: bool) {
            let text = format!("{}{int}{}{frac}", if neg { "-" } else { "" }, if frac.is_empty() { "" } else { "." });
            let padded = format!("{frac:0<6}");
            let exact = int.parse::<i128>().unwrap() * 1_000_000 + padded.parse::<i128>().unwrap();
            let exact = if neg { -exact } else { exact };
            match Amount::parse(&text) {
                Ok(a) => prop_assert_eq!(i128::from(a.0), exact),
                Err(e) => {
                    prop_assert_eq!(e, CostParamError::OutOfRange);
                    prop_assert!(exact > i128::from(i64::MAX) || exact < -i128::from(i64::MAX));
                }
            }
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,30}") {
            let _ = Amount::parse(&s);
        }

        #[test]
        fn only_plain_ascii_decimals_parse_from_bytes(s in proptest::collection::vec(any::<u8>(), 0..30)) {
            if Amount::parse_bytes(&s).is_ok() {
                prop_assert!(s.iter().all(|&b| b.is_ascii_digit() || b == b'-' || b == b'.'));
            }
        }

        #[test]
        fn random_charges_and_refunds_never_drift(
            ops in prop::collection::vec((-3_000_000i64..=3_000_000, any::<bool>(), 0u64..=20_000 * Nanos::PER_SEC), 1..200),
        ) {
            no_drift("5.5", ops.into_iter());
        }

        #[test]
        fn unforced_charges_never_exceed_the_cap_and_retry_is_exact(
            cap in 1i64..=5_000_000,
            rolling: bool,
            ops in prop::collection::vec((-2_000_000i64..=6_000_000, 0u64..=3_000 * Nanos::PER_SEC), 1..60),
        ) {
            let per = if rolling { CostPeriod::Rolling(hours(1)) } else { CostPeriod::Calendar(Calendar::utc(PeriodUnit::Hour)) };
            let p = CostParams::new(Amount(cap), per).unwrap();
            let mut state = None;
            let mut now = DAY;
            for (micros, dt) in ops {
                now = now.saturating_add(Nanos(dt));
                let a = Amount(micros);
                let (o, new) = take(&p, state, now, a, false);
                prop_assert!(o.spent.0 <= cap, "spent {} over cap {cap}", o.spent);
                if let Some(r) = o.decision.retry_after {
                    let (before, _) = take(&p, state, Nanos(now.0 + r.0 - 1), a, false);
                    prop_assert!(!before.decision.allowed, "admitted 1 ns before retry_after");
                    let (then, _) = take(&p, state, Nanos(now.0 + r.0), a, false);
                    prop_assert!(then.decision.allowed, "denied at retry_after");
                } else if !o.decision.allowed {
                    prop_assert!(micros > cap);
                }
                // Peek never writes, and predicts the take.
                let (peek, _) = take(&p, state, now, Amount(0), false);
                if micros >= 0 {
                    prop_assert_eq!(o.decision.allowed, micros.unsigned_abs() <= peek.decision.remaining);
                }
                state = new.or(state);
            }
        }

        #[test]
        fn clock_stepping_back_never_grants_budget(
            rolling: bool,
            ops in prop::collection::vec((0i64..=3_000_000, 0u64..=3_000 * Nanos::PER_SEC), 1..40),
            back in 0u64..=10_000 * Nanos::PER_SEC,
        ) {
            let per = if rolling { CostPeriod::Rolling(hours(1)) } else { CostPeriod::Calendar(Calendar::utc(PeriodUnit::Hour)) };
            let p = CostParams::new(amt("5"), per).unwrap();
            let mut state = None;
            let mut now = DAY;
            for (micros, dt) in ops {
                now = now.saturating_add(Nanos(dt));
                let (_, new) = take(&p, state, now, Amount(micros), false);
                state = new.or(state);
                let (e, _) = take(&p, state, now.saturating_sub(Nanos(back)), Amount(0), false);
                let (h, _) = take(&p, state, now, Amount(0), false);
                prop_assert!(e.decision.remaining <= h.decision.remaining);
            }
        }
    }
}
