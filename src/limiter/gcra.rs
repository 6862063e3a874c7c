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
#[path = "gcra_tests.rs"]
mod tests;
