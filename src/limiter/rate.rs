//! RATE: the native, millisecond-precise face of the GCRA engine in [`crate::limiter::gcra`].
//!
//! Owns only the mapping from a [`Rate`] and a burst to [`GcraParams`] and from a
//! [`GcraDecision`] to the shared [`Decision`]; the transition itself is [`gcra::take`], so
//! `RATE.TAKE` and `CL.THROTTLE` can never disagree. Depends on `gcra`, `units`, `decision`.
//!
//! # Terms
//! - **Rate** `N/period`: the sustained admission rate; the emission interval is
//!   `period / N`, truncated to whole nanoseconds (so at most 1 ns per unit faster).
//! - **Burst**: how many units a fresh key admits at once, and the reported `limit`. It
//!   defaults to `N`, so `100/1m` admits 100 at once and then one every 600 ms. In GCRA terms
//!   `max_burst = burst - 1`.

use crate::clock::Nanos;
use crate::limiter::decision::Decision;
use crate::limiter::gcra::{self, GcraDecision, GcraParamError, GcraParams, GcraState};
use crate::limiter::units::Rate;

/// Checked RATE parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateParams {
    gcra: GcraParams,
}

impl RateParams {
    /// Parameters from a rate and an optional burst (default: the rate's count).
    ///
    /// Fails with [`GcraParamError::NegativeMaxBurst`] for a zero burst,
    /// [`GcraParamError::ZeroEmission`] when the count exceeds the period in nanoseconds, and
    /// [`GcraParamError::OutOfRange`] when `emission * burst` exceeds the GCRA tolerance cap.
    pub fn new(rate: Rate, burst: Option<u64>) -> Result<RateParams, GcraParamError> {
        let burst = burst.unwrap_or(rate.count());
        let max_burst = burst
            .checked_sub(1)
            .ok_or(GcraParamError::NegativeMaxBurst)?;
        let emission_ns = rate.period().0 / rate.count();
        Ok(RateParams {
            gcra: GcraParams::new(emission_ns, max_burst)?,
        })
    }

    /// The underlying GCRA parameters.
    pub fn gcra(&self) -> &GcraParams {
        &self.gcra
    }

    /// The burst (the reported limit).
    pub fn burst(&self) -> u64 {
        self.gcra.limit()
    }
}

/// Runs one RATE transition for `cost` units at `now`; see [`gcra::take`]. The returned state
/// expires at its `tat`. Peek is the same call with the state discarded.
pub fn take(
    params: &RateParams,
    state: Option<GcraState>,
    now: Nanos,
    cost: u64,
) -> (Decision, Option<GcraState>) {
    let (d, new) = gcra::take(&params.gcra, state, now, cost);
    (decision(&d), new)
}

/// Charges or refunds `delta` units without a decision (a reservation's settle); see
/// [`gcra::adjust`]. The returned state expires at its `tat`; `None` means fresh.
pub fn adjust(
    params: &RateParams,
    state: Option<GcraState>,
    now: Nanos,
    delta: i64,
) -> Option<GcraState> {
    gcra::adjust(&params.gcra, state, now, delta)
}

fn decision(d: &GcraDecision) -> Decision {
    Decision {
        allowed: d.allowed,
        limit: d.limit,
        remaining: d.remaining,
        retry_after: d.retry_after,
        reset_after: d.reset_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limiter::units::parse_rate;

    const T0: Nanos = Nanos(1_700_000_000 * Nanos::PER_SEC);

    fn ms(n: u64) -> Nanos {
        Nanos::from_millis(n)
    }

    #[test]
    fn follows_the_rate_and_burst() {
        // 100/1m with burst 3: 600 ms emission.
        let p = RateParams::new(parse_rate("100/1m").unwrap(), Some(3)).unwrap();
        assert_eq!(p.burst(), 3);
        // (label, at, cost, allowed, remaining, retry_after, reset_after)
        type Case = (&'static str, u64, u64, bool, u64, Option<Nanos>, Nanos);
        #[rustfmt::skip]
        let cases: &[Case] = &[
            ("fresh, cost 2", 0, 2, true, 1, None, ms(1200)),
            ("third unit", 0, 1, true, 0, None, ms(1800)),
            ("bucket empty", 0, 1, false, 0, Some(ms(600)), ms(1800)),
            ("one emission later", 600, 1, true, 0, None, ms(1800)),
            ("cost over burst never fits", 600, 4, false, 0, None, ms(1800)),
            ("cost 2 waits two emissions", 700, 2, false, 0, Some(ms(1100)), ms(1700)),
            ("full again", 2400, 3, true, 0, None, ms(1800)),
        ];
        let mut state = None;
        for &(label, at, cost, allowed, remaining, retry, reset) in cases {
            let (d, new) = take(&p, state, T0.saturating_add(ms(at)), cost);
            assert_eq!(d.allowed, allowed, "{label}");
            assert_eq!(d.limit, 3, "{label}");
            assert_eq!(d.remaining, remaining, "{label}");
            assert_eq!(d.retry_after, retry, "{label}");
            assert_eq!(d.reset_after, reset, "{label}");
            state = new.or(state);
        }
    }

    #[test]
    fn burst_defaults_to_the_count_and_bad_values_are_errors() {
        let p = RateParams::new(parse_rate("5/s").unwrap(), None).unwrap();
        assert_eq!((p.burst(), p.gcra().emission()), (5, ms(200)));
        // (label, rate, burst, error)
        let cases = [
            (
                "zero burst",
                "5/s",
                Some(0),
                GcraParamError::NegativeMaxBurst,
            ),
            (
                "sub-ns emission",
                "2000000/1ms",
                None,
                GcraParamError::ZeroEmission,
            ),
            (
                "tolerance too big",
                "1/1d",
                Some(u64::MAX / 2),
                GcraParamError::OutOfRange,
            ),
        ];
        for (label, rate, burst, want) in cases {
            let got = RateParams::new(parse_rate(rate).unwrap(), burst);
            assert_eq!(got, Err(want), "{label}");
        }
    }
}
