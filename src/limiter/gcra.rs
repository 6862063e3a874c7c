//! GCRA, the generic cell rate algorithm: a leaky bucket that stores one instant per key.
//!
//! Owns the pure transition behind `CL.THROTTLE` (redis-cell's contract) and `GCRA` (Redis's own
//! command), plus the two reply renderings. Depends only on [`crate::clock::Nanos`]: no tokio, no
//! bytes, no I/O and no clock reads; `now` is always an argument.
//!
//! # Terms
//! - **Emission interval** `T`: the time one unit of quantity costs, `period / count`.
//! - **Limit**: `max_burst + 1`, how many requests of quantity 1 a full bucket admits at once.
//! - **Delay variation tolerance** (tolerance): `T * limit`, how far ahead of `now` the schedule
//!   may run; a full bucket is one whose TAT is at or before `now`.
//! - **TAT**, theoretical arrival time: the instant at which the key's schedule is paid off. It is
//!   the only state kept, and the state is worthless (fresh) once `now >= tat`, so a store may
//!   expire it at exactly `tat`.
//! - **Increment**: `T * quantity`, what a request of `quantity` units adds to the TAT.
//!
//! A request is admitted when `max(now, tat) + increment - tolerance <= now`; the new TAT is then
//! `max(now, tat) + increment`. A request whose increment exceeds the tolerance can never be
//! admitted.
//!
//! All arithmetic on client numbers is checked, and [`take`] works in `i128`, so no input can
//! overflow or panic. Parameters are capped at [`MAX_TOLERANCE`] so that a stored TAT always fits
//! in `u64` for any realistic `now`.

use crate::clock::Nanos;

/// The largest tolerance (`emission * limit`) accepted: 2^62 ns, about 146 years. Keeps
/// `now + tolerance` far from `u64::MAX` for any wall-clock `now`.
pub const MAX_TOLERANCE: Nanos = Nanos(1 << 62);

/// Largest `period` (seconds) the `GCRA` command accepts, exclusive.
const REDIS_GCRA_MAX_PERIOD_S: f64 = 1e12;

const NS_PER_US: u64 = 1_000;

/// Checked GCRA parameters: emission interval and burst, with the tolerance precomputed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcraParams {
    /// Emission interval `T`, > 0.
    emission: Nanos,
    /// `max_burst + 1`, >= 1.
    limit: u64,
    /// `emission * limit`, <= [`MAX_TOLERANCE`].
    tolerance: Nanos,
}

/// Why a set of GCRA arguments was refused. `Display` is the reply text after `ERR `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GcraParamError {
    /// `max_burst` was negative.
    #[error("max_burst must be >= 0")]
    NegativeMaxBurst,
    /// The count (tokens per period) was zero or negative.
    #[error("count must be > 0")]
    NonPositiveCount,
    /// The period was zero, negative or not a number.
    #[error("period must be > 0")]
    NonPositivePeriod,
    /// The period was not below the `GCRA` command's upper bound.
    #[error("period must be < 1000000000000")]
    PeriodTooLarge,
    /// The emission interval (period / count) computed to zero.
    #[error("emission interval must be > 0 (count is too large for the period)")]
    ZeroEmission,
    /// A value overflowed, or the tolerance exceeds [`MAX_TOLERANCE`].
    #[error("rate parameters are out of range")]
    OutOfRange,
}

impl GcraParams {
    /// Parameters from an emission interval in ns (must be > 0) and `max_burst` (>= 0).
    ///
    /// Fails with [`GcraParamError::ZeroEmission`] for a zero interval and
    /// [`GcraParamError::OutOfRange`] when `emission_ns * (max_burst + 1)` exceeds
    /// [`MAX_TOLERANCE`] or overflows.
    pub fn new(emission_ns: u64, max_burst: u64) -> Result<GcraParams, GcraParamError> {
        if emission_ns == 0 {
            return Err(GcraParamError::ZeroEmission);
        }
        let limit = max_burst.checked_add(1).ok_or(GcraParamError::OutOfRange)?;
        let tolerance = emission_ns
            .checked_mul(limit)
            .filter(|&t| t <= MAX_TOLERANCE.0)
            .ok_or(GcraParamError::OutOfRange)?;
        Ok(GcraParams {
            emission: Nanos(emission_ns),
            limit,
            tolerance: Nanos(tolerance),
        })
    }

    /// Parameters from redis-cell's `CL.THROTTLE key max_burst count period` arguments.
    ///
    /// The emission interval is computed exactly as redis-cell does,
    /// `((period_s * 1e9) as f64 / count as f64) as i64` (truncating), so replies match it to the
    /// nanosecond. Where redis-cell would panic (negative or overflowing values) this returns an
    /// error instead; it never panics.
    pub fn from_cell(
        max_burst: i64,
        count: i64,
        period_s: i64,
    ) -> Result<GcraParams, GcraParamError> {
        if max_burst < 0 {
            return Err(GcraParamError::NegativeMaxBurst);
        }
        if count <= 0 {
            return Err(GcraParamError::NonPositiveCount);
        }
        if period_s <= 0 {
            return Err(GcraParamError::NonPositivePeriod);
        }
        let period_ns = period_s
            .checked_mul(Nanos::PER_SEC as i64)
            .ok_or(GcraParamError::OutOfRange)?;
        // Both operands are positive and the quotient is at most period_ns, so the cast cannot
        // saturate; truncation toward zero is redis-cell's rounding.
        let emission_ns = (period_ns as f64 / count as f64) as i64;
        if emission_ns <= 0 {
            return Err(GcraParamError::ZeroEmission);
        }
        // max_burst >= 0 was checked above, so the conversion is lossless.
        GcraParams::new(emission_ns as u64, max_burst as u64)
    }

    /// Parameters from Redis's `GCRA key max_burst tokens_per_period period` arguments.
    ///
    /// `period_s` is a float of seconds with `0 < period_s < 1e12`. The emission interval is
    /// rounded to the nearest whole microsecond, `(period_s * 1e6 / tokens_per_period + 0.5)`,
    /// with a minimum of 1 µs, as Redis computes it, and kept in nanoseconds.
    pub fn from_redis_gcra(
        max_burst: i64,
        tokens_per_period: i64,
        period_s: f64,
    ) -> Result<GcraParams, GcraParamError> {
        if max_burst < 0 {
            return Err(GcraParamError::NegativeMaxBurst);
        }
        if tokens_per_period <= 0 {
            return Err(GcraParamError::NonPositiveCount);
        }
        if period_s.is_nan() || period_s <= 0.0 {
            return Err(GcraParamError::NonPositivePeriod);
        }
        if period_s >= REDIS_GCRA_MAX_PERIOD_S {
            return Err(GcraParamError::PeriodTooLarge);
        }
        // period_s * 1e6 < 1e18 < i64::MAX, so the cast cannot saturate.
        let emission_us = ((period_s * 1e6 / tokens_per_period as f64 + 0.5) as i64).max(1);
        let emission_ns = (emission_us as u64)
            .checked_mul(NS_PER_US)
            .ok_or(GcraParamError::OutOfRange)?;
        // max_burst >= 0 was checked above, so the conversion is lossless.
        GcraParams::new(emission_ns, max_burst as u64)
    }

    /// The emission interval `T`.
    pub fn emission(&self) -> Nanos {
        self.emission
    }

    /// The delay variation tolerance, `emission * (max_burst + 1)`.
    pub fn tolerance(&self) -> Nanos {
        self.tolerance
    }

    /// `max_burst + 1`: requests of quantity 1 a full bucket admits at once.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The `max_burst` these parameters were built from.
    pub fn max_burst(&self) -> u64 {
        self.limit - 1
    }
}

/// What the store keeps for a GCRA key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcraState {
    /// Theoretical arrival time; the state is fresh again (and may be deleted) at this instant.
    pub tat: Nanos,
    /// The emission interval the TAT was scheduled under, when the owner records it (a policy
    /// rule, so that a plan change can re-read the debt under the new interval, see
    /// [`rescale`]); zero when not recorded (`CL.THROTTLE`, `GCRA`, `RATE.*`). [`take`] and
    /// [`adjust`] ignore it and return states with it zero.
    pub emission: Nanos,
}

impl GcraState {
    /// A state at `tat` without a recorded emission interval.
    pub fn at(tat: Nanos) -> GcraState {
        GcraState {
            tat,
            emission: Nanos::ZERO,
        }
    }
}

/// The debt of `state` (its TAT ahead of `now`), scheduled under `state.emission`, re-read
/// under `emission`: the same number of units (fractions included, rounded down) now spaced
/// by the new interval. A plan change that shortens the interval (an upgrade) therefore keeps
/// the units counted instead of multiplying them. A state without a recorded interval, or
/// already under `emission`, is returned unchanged.
pub fn rescale(state: GcraState, now: Nanos, emission: Nanos) -> GcraState {
    if state.emission == Nanos::ZERO || state.emission == emission || state.tat <= now {
        return state;
    }
    let debt = u128::from(state.tat.0 - now.0);
    // debt < 2^64 and emission < 2^64: the product fits u128.
    let units_ns = debt * u128::from(emission.0) / u128::from(state.emission.0);
    GcraState {
        tat: Nanos(u64::try_from(u128::from(now.0) + units_ns).unwrap_or(u64::MAX)),
        emission,
    }
}

/// The outcome of one [`take`], with everything both reply shapes need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcraDecision {
    /// Whether the request was admitted.
    pub allowed: bool,
    /// `max_burst + 1`.
    pub limit: u64,
    /// Whole requests of quantity 1 that would be admitted right after this decision.
    pub remaining: u64,
    /// `None` when allowed, or when the quantity exceeds the limit (it can never succeed);
    /// otherwise the exact wait before the same request would be admitted.
    pub retry_after: Option<Nanos>,
    /// Time until the bucket is completely full again (the TTL of the state); zero for a fresh
    /// key.
    pub reset_after: Nanos,
    /// redis-cell's "next", `tolerance - reset_after` in ns; may be negative. Lets callers
    /// reproduce redis-cell's rounding of `remaining`.
    pub next_ns: i128,
}

/// Runs one GCRA transition for `quantity` units at `now`.
///
/// `state` is the key's stored state, or `None` for a fresh key. Returns the decision and the
/// state to write: `Some` only when a request with `quantity > 0` is admitted. Quantity 0 is a
/// pure peek and never returns a state. A denial returns `None` (nothing to write). The returned
/// state expires at exactly its `tat`.
///
/// A clock that stepped back (a stored TAT further ahead of `now` than it could have been) only
/// lengthens the wait; it never grants capacity.
pub fn take(
    params: &GcraParams,
    state: Option<GcraState>,
    now: Nanos,
    quantity: u64,
) -> (GcraDecision, Option<GcraState>) {
    // i128 holds every intermediate: now, tat < 2^64 and increment < 2^62 * 2^64 = 2^126.
    let now_i = i128::from(now.0);
    let tat = state.map_or(now_i, |s| i128::from(s.tat.0));
    let emission = i128::from(params.emission.0);
    let tolerance = i128::from(params.tolerance.0);
    let increment = emission * i128::from(quantity);

    let new_tat = now_i.max(tat) + increment;
    let allow_at = new_tat - tolerance;
    let diff = now_i - allow_at;

    let (allowed, retry_after, ttl, new_state) = if diff < 0 {
        let retry_after = (increment <= tolerance).then(|| to_nanos(-diff));
        (false, retry_after, (tat - now_i).max(0), None)
    } else {
        // allow_at <= now, so new_tat <= now + tolerance <= u64::MAX + 2^62; saturating only
        // matters centuries past any wall clock.
        let new_state = (quantity > 0).then(|| GcraState::at(to_nanos(new_tat)));
        (true, None, new_tat - now_i, new_state)
    };

    let next_ns = tolerance - ttl;
    // 0 <= max(next, 0) <= tolerance <= 2^62, so the u64 division is exact and cheaper than
    // an i128 one; the quotient is at most the limit.
    let remaining = u64::try_from(next_ns.max(0)).unwrap_or(u64::MAX) / params.emission.0;
    let decision = GcraDecision {
        allowed,
        limit: params.limit,
        remaining,
        retry_after,
        reset_after: to_nanos(ttl),
        next_ns,
    };
    (decision, new_state)
}

/// Charges (`delta > 0`) or refunds (`delta < 0`) `|delta|` units on the schedule at `now`
/// without deciding anything: the settle of a reservation, which records what was really
/// used. A charge moves the TAT forward even past the tolerance (later takes wait until it
/// drains); a refund moves it back, never before `now`. Returns the new state, or `None`
/// when the bucket is full (fresh) afterwards.
pub fn adjust(
    params: &GcraParams,
    state: Option<GcraState>,
    now: Nanos,
    delta: i64,
) -> Option<GcraState> {
    let now_i = i128::from(now.0);
    // A TAT in the past is a full bucket: the schedule restarts at now.
    let tat = state.map_or(now_i, |s| i128::from(s.tat.0)).max(now_i);
    // |emission · delta| < 2^62 · 2^63, far inside i128.
    let new_tat = tat + i128::from(params.emission.0) * i128::from(delta);
    (new_tat > now_i).then(|| GcraState::at(to_nanos(new_tat)))
}

/// A non-negative i128 as [`Nanos`], saturating at [`Nanos::MAX`].
fn to_nanos(ns: i128) -> Nanos {
    Nanos(u64::try_from(ns.max(0)).unwrap_or(u64::MAX))
}

/// redis-cell's `CL.THROTTLE` reply:
/// `[limited 0|1, limit, remaining, retry_after_s, reset_after_s]`.
///
/// Reproduces redis-cell's rounding: `remaining` divides whole microseconds of `next` by whole
/// microseconds of the emission interval as floats and truncates (0 unless
/// `next > -emission`); a duration in seconds is its whole seconds plus one if its sub-second
/// part has a non-zero millisecond component; `retry_after_s` is -1 when allowed or when the
/// request can never succeed.
///
/// One deliberate difference: for an emission interval under 1 µs redis-cell divides by zero
/// (reporting `i64::MAX` remaining); here the nanosecond-exact `remaining` is used instead.
pub fn cell_reply(d: &GcraDecision, params: &GcraParams) -> [i64; 5] {
    let emission_ns = i128::from(params.emission.0);
    let emission_us = params.emission.0 / NS_PER_US;
    let remaining = if d.next_ns <= -emission_ns {
        0
    } else if emission_us == 0 {
        saturating_i64(u128::from(d.remaining))
    } else {
        // |next| <= tolerance <= 2^62 ns, so whole microseconds fit in i64; `as` truncates
        // toward zero exactly as redis-cell's Duration::num_microseconds and f64 cast do.
        let next_us = (d.next_ns / i128::from(NS_PER_US)) as i64;
        (next_us as f64 / emission_us as f64) as i64
    };
    [
        i64::from(!d.allowed),
        saturating_i64(u128::from(d.limit)),
        remaining,
        d.retry_after.map_or(-1, cell_seconds),
        cell_seconds(d.reset_after),
    ]
}

/// redis-cell's seconds rounding: whole seconds, plus one if the remainder has at least 1 ms.
fn cell_seconds(n: Nanos) -> i64 {
    let secs = n.0 / Nanos::PER_SEC;
    let bump = u64::from(n.0 % Nanos::PER_SEC >= Nanos::PER_MS);
    saturating_i64(u128::from(secs + bump))
}

/// Redis's `GCRA` reply: `[limited 0|1, limit, remaining, retry_after_s, reset_after_s]`.
///
/// `remaining` is `next / emission` (integer division) when `next > -emission`, else 0; both
/// durations are rounded up to whole seconds; `retry_after_s` is -1 when allowed or when the
/// request can never succeed.
pub fn redis_gcra_reply(d: &GcraDecision, params: &GcraParams) -> [i64; 5] {
    let emission = i128::from(params.emission.0);
    let remaining = if d.next_ns > -emission {
        // next <= tolerance, so the quotient is at most the limit.
        i64::try_from(d.next_ns / emission).unwrap_or(i64::MAX)
    } else {
        0
    };
    [
        i64::from(!d.allowed),
        saturating_i64(u128::from(d.limit)),
        remaining,
        d.retry_after.map_or(-1, ceil_seconds),
        ceil_seconds(d.reset_after),
    ]
}

/// Seconds rounded up.
fn ceil_seconds(n: Nanos) -> i64 {
    saturating_i64(u128::from(n.0.div_ceil(Nanos::PER_SEC)))
}

fn saturating_i64(v: u128) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn adjust_charges_past_the_limit_and_refunds_down_to_fresh() {
        // 1 unit per second, burst 2.
        let p = GcraParams::new(Nanos::PER_SEC, 1).unwrap();
        let t0 = Nanos(1_000 * Nanos::PER_SEC);
        let s = |secs: u64| GcraState::at(Nanos((1_000 + secs) * Nanos::PER_SEC));
        // (label, state, delta, result)
        let cases = [
            ("charge on a fresh key", None, 3, Some(s(3))),
            ("charge past the tolerance", Some(s(2)), 5, Some(s(7))),
            ("refund part", Some(s(7)), -4, Some(s(3))),
            ("refund everything is fresh", Some(s(3)), -3, None),
            ("refund more than charged is fresh", Some(s(1)), -9, None),
            ("refund on a fresh key", None, -1, None),
            ("zero keeps a pending schedule", Some(s(2)), 0, Some(s(2))),
        ];
        for (label, state, delta, want) in cases {
            assert_eq!(adjust(&p, state, t0, delta), want, "{label}");
        }
        // A charged-past bucket denies until it drains, with an exact retry.
        let (d, _) = take(&p, Some(s(7)), t0, 1);
        assert_eq!(d.retry_after, Some(Nanos(6 * Nanos::PER_SEC)));
    }

    /// An arbitrary wall-clock instant to start from (2023-11-14), so nothing sits at zero.
    const T0: Nanos = Nanos(1_700_000_000 * Nanos::PER_SEC);

    fn ms(n: u64) -> Nanos {
        Nanos::from_millis(n)
    }

    fn secs(n: u64) -> Nanos {
        Nanos::from_secs(n)
    }

    /// Runs one step, storing the new state if there is one.
    fn step(p: &GcraParams, state: &mut Option<GcraState>, now: Nanos, q: u64) -> GcraDecision {
        let (d, new) = take(p, *state, now, q);
        if let Some(s) = new {
            *state = Some(s);
        }
        d
    }

    #[test]
    fn follows_redis_cells_own_table() {
        // limit 5 (max_burst 4), one per second.
        let p = GcraParams::new(Nanos::PER_SEC, 4).unwrap();
        // (label, now offset, quantity, remaining, reset_after, retry_after, limited)
        type Case = (&'static str, Nanos, u64, u64, Nanos, Option<Nanos>, bool);
        #[rustfmt::skip]
        let cases: &[Case] = &[
            ("fresh key, quantity over the limit", ms(0), 6, 5, secs(0), None, true),
            ("first of the burst", ms(0), 1, 4, secs(1), None, false),
            ("second of the burst", ms(0), 1, 3, secs(2), None, false),
            ("third of the burst", ms(0), 1, 2, secs(3), None, false),
            ("fourth of the burst", ms(0), 1, 1, secs(4), None, false),
            ("last of the burst", ms(0), 1, 0, secs(5), None, false),
            ("burst spent", ms(0), 1, 0, secs(5), Some(secs(1)), true),
            ("three seconds later", ms(3000), 1, 2, ms(3000), None, false),
            ("100ms later", ms(3100), 1, 1, ms(3900), None, false),
            ("at four seconds", ms(4000), 1, 1, ms(4000), None, false),
            ("refilled at eight seconds", ms(8000), 1, 4, ms(1000), None, false),
            ("fully refilled again", ms(9500), 1, 4, ms(1000), None, false),
            ("quantity 0 peeks", ms(9500), 0, 4, secs(1), None, false),
            ("quantity 2", ms(9500), 2, 2, secs(3), None, false),
            ("quantity 5 over what is left", ms(9500), 5, 2, secs(3), Some(secs(3)), true),
        ];
        let mut state = None;
        for &(label, offset, q, remaining, reset_after, retry_after, limited) in cases {
            let d = step(&p, &mut state, T0.saturating_add(offset), q);
            assert_eq!(d.allowed, !limited, "{label}: allowed");
            assert_eq!(d.limit, 5, "{label}: limit");
            assert_eq!(d.remaining, remaining, "{label}: remaining");
            assert_eq!(d.reset_after, reset_after, "{label}: reset_after");
            assert_eq!(d.retry_after, retry_after, "{label}: retry_after");
            let reply = cell_reply(&d, &p);
            assert_eq!(reply[0], i64::from(limited), "{label}: reply limited");
            assert_eq!(reply[1], 5, "{label}: reply limit");
            assert_eq!(reply[2], remaining as i64, "{label}: reply remaining");
            // Rounding is covered by cell_seconds_round_up_only_from_a_whole_millisecond.
            let retry_s = retry_after.map_or(-1, cell_seconds);
            assert_eq!(reply[3], retry_s, "{label}: reply retry_after");
            let reset_s = cell_seconds(reset_after);
            assert_eq!(reply[4], reset_s, "{label}: reply reset_after");
        }
    }

    #[test]
    fn fresh_key_matches_the_contract_example() {
        // CL.THROTTLE user123 15 30 60
        let p = GcraParams::from_cell(15, 30, 60).unwrap();
        assert_eq!(p.emission(), secs(2));
        assert_eq!(p.limit(), 16);
        assert_eq!(p.tolerance(), secs(32));
        let (d, state) = take(&p, None, T0, 1);
        assert_eq!(cell_reply(&d, &p), [0, 16, 15, -1, 2]);
        assert_eq!(state, Some(GcraState::at(T0.saturating_add(secs(2)))));
    }

    #[test]
    fn follows_hand_derived_redis_gcra_replies() {
        // GCRA k 2 3 1: emission 1s/3 rounded to 333333 µs, limit 3, tolerance 999.999 ms.
        let p = GcraParams::from_redis_gcra(2, 3, 1.0).unwrap();
        assert_eq!(p.emission(), Nanos(333_333_000));
        assert_eq!(p.tolerance(), Nanos(999_999_000));
        // (label, now offset, quantity, reply)
        let cases: &[(&str, Nanos, u64, [i64; 5])] = &[
            ("first", ms(0), 1, [0, 3, 2, -1, 1]),
            ("second", ms(0), 1, [0, 3, 1, -1, 1]),
            ("third empties the bucket", ms(0), 1, [0, 3, 0, -1, 1]),
            (
                "fourth waits one emission, rounded up",
                ms(0),
                1,
                [1, 3, 0, 1, 1],
            ),
            ("a peek of the empty bucket", ms(0), 0, [0, 3, 0, -1, 1]),
            // tat 999.999 ms -> 1333.332 ms; reset 833.332 ms; next 166.667 ms < one emission.
            ("admitted after one emission", ms(500), 1, [0, 3, 0, -1, 1]),
            (
                "TOKENS over the limit never succeeds",
                ms(500),
                5,
                [1, 3, 0, -1, 1],
            ),
            // reset 1333.332 ms - 1400 ms < 0: fully refilled.
            ("refilled", ms(1400), 0, [0, 3, 3, -1, 0]),
        ];
        let mut state = None;
        for &(label, offset, q, reply) in cases {
            let d = step(&p, &mut state, T0.saturating_add(offset), q);
            assert_eq!(redis_gcra_reply(&d, &p), reply, "{label}");
        }

        // GCRA k 0 1 2.5: one request per 2.5 s, seconds round up.
        let p = GcraParams::from_redis_gcra(0, 1, 2.5).unwrap();
        let mut state = None;
        let d = step(&p, &mut state, T0, 1);
        assert_eq!(redis_gcra_reply(&d, &p), [0, 1, 0, -1, 3], "2.5s: first");
        let d = step(&p, &mut state, T0, 1);
        assert_eq!(redis_gcra_reply(&d, &p), [1, 1, 0, 3, 3], "2.5s: denied");
        let d = step(&p, &mut state, T0.saturating_add(ms(2500)), 1);
        assert_eq!(
            redis_gcra_reply(&d, &p),
            [0, 1, 0, -1, 3],
            "2.5s: admitted at retry"
        );
    }

    #[test]
    fn redis_gcra_emission_rounds_to_the_nearest_microsecond_with_a_floor_of_one() {
        // (label, tokens, period_s, emission_ns)
        let cases: &[(&str, i64, f64, u64)] = &[
            ("2/3 µs rounds up", 3, 0.000_002, 1_000),
            ("1/3 µs rounds to the 1 µs floor", 3, 0.000_001, 1_000),
            ("tiny period", 1_000_000_000, 0.001, 1_000),
            ("1.5 µs rounds half up", 2, 0.000_003, 2_000),
            ("fractional seconds", 4, 0.5, 125_000_000),
        ];
        for &(label, tokens, period_s, emission_ns) in cases {
            let p = GcraParams::from_redis_gcra(0, tokens, period_s).unwrap();
            assert_eq!(p.emission(), Nanos(emission_ns), "{label}");
        }
    }

    #[test]
    fn cell_emission_truncates_like_redis_cell() {
        let p = GcraParams::from_cell(2, 3, 1).unwrap();
        assert_eq!(p.emission(), Nanos(333_333_333));
        assert_eq!(p.limit(), 3);
        assert_eq!(p.max_burst(), 2);
        assert_eq!(p.tolerance(), Nanos(999_999_999));
    }

    #[test]
    fn cell_reply_counts_remaining_in_whole_microseconds_like_redis_cell() {
        let p = GcraParams::new(1_000_000_500, 1).unwrap();
        let mut state = None;
        step(&p, &mut state, T0, 1);
        step(&p, &mut state, T0, 1);
        // next = emission - 1 ns: 0 exactly, but 1_000_000 µs / 1_000_000 µs in redis-cell.
        let (d, _) = take(&p, state, T0.saturating_add(Nanos(1_000_000_499)), 0);
        assert_eq!(d.next_ns, 1_000_000_499);
        assert_eq!(d.remaining, 0);
        assert_eq!(cell_reply(&d, &p)[2], 1);
        assert_eq!(redis_gcra_reply(&d, &p)[2], 0);
    }

    #[test]
    fn cell_reply_reports_zero_remaining_for_slightly_negative_next() {
        let p = GcraParams::new(Nanos::PER_SEC, 4).unwrap();
        let mut state = None;
        step(&p, &mut state, T0.saturating_add(secs(10)), 5);
        // The clock steps back half a second: next = -0.5 s.
        let (d, new) = take(&p, state, T0.saturating_add(ms(9500)), 0);
        assert_eq!(new, None);
        assert_eq!(d.next_ns, -500_000_000);
        assert_eq!(d.remaining, 0);
        assert_eq!(d.reset_after, ms(5500));
        assert_eq!(cell_reply(&d, &p)[2], 0);
        assert_eq!(redis_gcra_reply(&d, &p)[2], 0);
    }

    #[test]
    fn cell_seconds_round_up_only_from_a_whole_millisecond() {
        // (label, ns, cell seconds, ceil seconds)
        let cases: &[(&str, u64, i64, i64)] = &[
            ("zero", 0, 0, 0),
            ("sub-millisecond", 999_999, 0, 1),
            ("one millisecond", 1_000_000, 1, 1),
            ("whole seconds", 2_000_000_000, 2, 2),
            ("whole seconds plus sub-millisecond", 2_000_500_000, 2, 3),
            ("whole seconds plus a millisecond", 2_001_000_000, 3, 3),
        ];
        for &(label, ns, cell, ceil) in cases {
            assert_eq!(cell_seconds(Nanos(ns)), cell, "{label}: cell");
            assert_eq!(ceil_seconds(Nanos(ns)), ceil, "{label}: ceil");
        }
    }

    #[test]
    fn cell_reply_uses_the_nanosecond_count_for_sub_microsecond_emission() {
        // 2_000_000 per second: 500 ns each, which redis-cell divides by as 0 µs.
        let p = GcraParams::from_cell(9, 2_000_000, 1).unwrap();
        assert_eq!(p.emission(), Nanos(500));
        let (d, _) = take(&p, None, T0, 1);
        assert_eq!(cell_reply(&d, &p), [0, 10, 9, -1, 0]);
    }

    #[test]
    fn stale_state_reads_as_a_full_bucket() {
        let p = GcraParams::new(Nanos::PER_SEC, 4).unwrap();
        let old = Some(GcraState::at(T0));
        let later = T0.saturating_add(secs(100));
        // redis-cell would report a negative reset and remaining above the limit here.
        let (d, _) = take(&p, old, later, 6);
        assert!(!d.allowed);
        assert_eq!(d.reset_after, Nanos::ZERO);
        assert_eq!(d.remaining, 5);
        assert_eq!(cell_reply(&d, &p), [1, 5, 5, -1, 0]);
    }

    #[test]
    fn clock_stepping_back_lengthens_the_wait() {
        let p = GcraParams::new(Nanos::PER_SEC, 0).unwrap();
        let (_, state) = take(&p, None, T0, 1);
        let back = T0.saturating_sub(secs(10));
        let (d, new) = take(&p, state, back, 1);
        assert!(!d.allowed);
        assert_eq!(new, None);
        // The schedule is 11 s ahead of `now`, and a full tolerance (1 s) is spent.
        assert_eq!(d.retry_after, Some(secs(11)));
        assert_eq!(d.reset_after, secs(11));
        assert_eq!(d.remaining, 0);
        // Even a peek is "denied" (retry in 10 s) while the schedule is that far ahead.
        let (d, _) = take(&p, state, back, 0);
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Some(secs(10)));
    }

    #[test]
    fn quantity_zero_never_writes_state() {
        let p = GcraParams::new(Nanos::PER_SEC, 4).unwrap();
        let (d, new) = take(&p, None, T0, 0);
        assert!(d.allowed);
        assert_eq!(new, None);
        assert_eq!(d.remaining, 5);
        assert_eq!(cell_reply(&d, &p), [0, 5, 5, -1, 0]);
    }

    #[test]
    fn bad_parameters_are_errors() {
        use GcraParamError::*;
        // (label, result, expected)
        let cases: &[(&str, Result<GcraParams, GcraParamError>, GcraParamError)] = &[
            ("new: zero emission", GcraParams::new(0, 1), ZeroEmission),
            (
                "new: burst overflows",
                GcraParams::new(1, u64::MAX),
                OutOfRange,
            ),
            (
                "new: tolerance overflows",
                GcraParams::new(u64::MAX, 1),
                OutOfRange,
            ),
            (
                "new: tolerance over cap",
                GcraParams::new(1 << 61, 2),
                OutOfRange,
            ),
            (
                "cell: negative burst",
                GcraParams::from_cell(-1, 30, 60),
                NegativeMaxBurst,
            ),
            (
                "cell: zero count",
                GcraParams::from_cell(15, 0, 60),
                NonPositiveCount,
            ),
            (
                "cell: negative count",
                GcraParams::from_cell(15, i64::MIN, 60),
                NonPositiveCount,
            ),
            (
                "cell: zero period",
                GcraParams::from_cell(15, 30, 0),
                NonPositivePeriod,
            ),
            (
                "cell: negative period",
                GcraParams::from_cell(15, 30, -60),
                NonPositivePeriod,
            ),
            (
                "cell: period overflows",
                GcraParams::from_cell(15, 30, i64::MAX),
                OutOfRange,
            ),
            (
                "cell: emission rounds to 0",
                GcraParams::from_cell(0, 2_000_000_000, 1),
                ZeroEmission,
            ),
            (
                "cell: burst too big",
                GcraParams::from_cell(i64::MAX, 1, 1),
                OutOfRange,
            ),
            (
                "gcra: negative burst",
                GcraParams::from_redis_gcra(-1, 1, 1.0),
                NegativeMaxBurst,
            ),
            (
                "gcra: zero tokens",
                GcraParams::from_redis_gcra(1, 0, 1.0),
                NonPositiveCount,
            ),
            (
                "gcra: zero period",
                GcraParams::from_redis_gcra(1, 1, 0.0),
                NonPositivePeriod,
            ),
            (
                "gcra: negative period",
                GcraParams::from_redis_gcra(1, 1, -1.0),
                NonPositivePeriod,
            ),
            (
                "gcra: NaN period",
                GcraParams::from_redis_gcra(1, 1, f64::NAN),
                NonPositivePeriod,
            ),
            (
                "gcra: period 1e12",
                GcraParams::from_redis_gcra(1, 1, 1e12),
                PeriodTooLarge,
            ),
            (
                "gcra: infinite period",
                GcraParams::from_redis_gcra(1, 1, f64::INFINITY),
                PeriodTooLarge,
            ),
            (
                "gcra: burst too big",
                GcraParams::from_redis_gcra(i64::MAX, 1, 1.0),
                OutOfRange,
            ),
            (
                "gcra: tolerance too big",
                GcraParams::from_redis_gcra(1 << 30, 1, 1e10),
                OutOfRange,
            ),
        ];
        for (label, got, want) in cases {
            assert_eq!(got.as_ref().err(), Some(want), "{label}");
        }
        assert_eq!(NegativeMaxBurst.to_string(), "max_burst must be >= 0");
    }

    /// Parameters with emission 1 ns ..= 10 s and max_burst 0 ..= 40, plus a sequence of
    /// (time step, quantity) operations with steps up to three emission intervals.
    fn scenario() -> impl Strategy<Value = (GcraParams, Vec<(u64, u64)>)> {
        (1u64..=10_000_000_000, 0u64..=40).prop_flat_map(|(emission, burst)| {
            let p = GcraParams::new(emission, burst).unwrap();
            let ops = prop::collection::vec((0..=emission * 3, 0..=burst + 3), 1..64);
            (Just(p), ops)
        })
    }

    proptest! {
        #[test]
        fn never_admits_more_than_limit_plus_elapsed_over_emission((p, ops) in scenario()) {
            let mut state = None;
            let mut now = T0;
            // (time, admitted quantity) per operation.
            let mut log = Vec::with_capacity(ops.len());
            for &(dt, q) in &ops {
                now = now.saturating_add(Nanos(dt));
                let d = step(&p, &mut state, now, q);
                log.push((now.0, if d.allowed { q } else { 0 }));
            }
            for i in 0..log.len() {
                let mut admitted = 0u64;
                for &(t, q) in &log[i..] {
                    admitted += q;
                    let bound = p.limit() + (t - log[i].0) / p.emission().0;
                    prop_assert!(admitted <= bound, "window from op {i}: {admitted} > {bound}");
                }
            }
        }

        #[test]
        fn retry_after_is_exact((p, ops) in scenario()) {
            let mut state = None;
            let mut now = T0;
            for &(dt, q) in &ops {
                now = now.saturating_add(Nanos(dt));
                let (d, _) = take(&p, state, now, q);
                if let Some(r) = d.retry_after {
                    prop_assert!(!d.allowed);
                    prop_assert!(r.0 > 0);
                    let (before, _) = take(&p, state, Nanos(now.0 + r.0 - 1), q);
                    prop_assert!(!before.allowed, "admitted 1 ns before retry_after");
                    let (at, _) = take(&p, state, Nanos(now.0 + r.0), q);
                    prop_assert!(at.allowed, "denied at retry_after");
                } else if !d.allowed {
                    prop_assert!(q > p.limit(), "denied without retry_after at quantity {q}");
                }
                step(&p, &mut state, now, q);
            }
        }

        #[test]
        fn peek_never_changes_state((p, ops) in scenario()) {
            let mut state = None;
            let mut now = T0;
            for &(dt, q) in &ops {
                now = now.saturating_add(Nanos(dt));
                let (peek, new) = take(&p, state, now, 0);
                prop_assert_eq!(new, None);
                let (d, _) = take(&p, state, now, q);
                if q == 0 {
                    prop_assert_eq!(peek, d);
                } else {
                    // A peek predicts what a take of quantity <= remaining does.
                    prop_assert_eq!(d.allowed, q <= peek.remaining);
                }
                step(&p, &mut state, now, q);
            }
        }

        #[test]
        fn clock_stepping_back_never_increases_remaining(
            (p, ops) in scenario(),
            back in 0u64..=100_000_000_000,
        ) {
            let mut state = None;
            let mut now = T0;
            for &(dt, q) in &ops {
                now = now.saturating_add(Nanos(dt));
                step(&p, &mut state, now, q);
                let (here, _) = take(&p, state, now, 0);
                let (earlier, _) = take(&p, state, now.saturating_sub(Nanos(back)), 0);
                prop_assert!(earlier.remaining <= here.remaining);
                prop_assert!(earlier.reset_after >= here.reset_after);
                for q in 1..=p.limit() + 1 {
                    let (e, _) = take(&p, state, now.saturating_sub(Nanos(back)), q);
                    let (h, _) = take(&p, state, now, q);
                    prop_assert!(!e.allowed || h.allowed, "admitted only in the past at {q}");
                }
            }
        }

        #[test]
        fn parameters_never_panic(burst: i64, count: i64, period: i64, period_f: f64) {
            if let Ok(p) = GcraParams::from_cell(burst, count, period) {
                prop_assert!(p.emission().0 > 0 && p.tolerance() <= MAX_TOLERANCE);
            }
            if let Ok(p) = GcraParams::from_redis_gcra(burst, count, period_f) {
                prop_assert!(p.emission().0 >= 1_000 && p.tolerance() <= MAX_TOLERANCE);
            }
            let _ = GcraParams::new(burst as u64, count as u64);
        }

        #[test]
        fn take_never_panics(
            emission in 1u64..=1 << 40,
            burst in 0u64..=1 << 20,
            tat: Option<u64>,
            now: u64,
            q: u64,
        ) {
            if let Ok(p) = GcraParams::new(emission, burst) {
                let (d, new) = take(&p, tat.map(|t| GcraState::at(Nanos(t))), Nanos(now), q);
                prop_assert!(d.remaining <= p.limit());
                let _ = (cell_reply(&d, &p), redis_gcra_reply(&d, &p), new);
            }
        }
    }
}
