//! The admission outcome shared by every native family (RATE, WINDOW, QUOTA, COST, LEASE).
//!
//! Owns [`Decision`] and its millisecond renderings; depends only on [`crate::clock::Nanos`].
//! Family-specific extras (a window's counts, a quota's period, a lease id) travel in each
//! family's own outcome type next to a `Decision`, so the reply layer renders the five shared
//! fields once for all families.
//!
//! # Terms
//! - **Limit**: the most the key admits when it is fresh (requests, units or micro-units).
//! - **Remaining**: the largest cost a take at the same instant would admit.
//! - **Retry after**: for a denial, the exact wait after which the same take (same cost, no
//!   other traffic) is admitted: denied one nanosecond before, admitted at it.
//! - **Never**: a denial whose cost can never fit (cost above the limit); it has no retry.
//! - **Reset after**: the wait until the key is fresh again (full limit available).

use crate::clock::Nanos;

/// The five fields every admission reply carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request was admitted (and, for a take, charged).
    pub allowed: bool,
    /// The key's limit.
    pub limit: u64,
    /// The largest cost a take at the same instant would admit, after this decision.
    pub remaining: u64,
    /// `None` when allowed or when the cost can never fit ([`Decision::is_never`]); otherwise
    /// the exact wait before the same request is admitted.
    pub retry_after: Option<Nanos>,
    /// The wait until the key is fresh again; zero for a fresh key.
    pub reset_after: Nanos,
}

impl Decision {
    /// An admission.
    pub const fn allow(limit: u64, remaining: u64, reset_after: Nanos) -> Decision {
        Decision {
            allowed: true,
            limit,
            remaining,
            retry_after: None,
            reset_after,
        }
    }

    /// A denial; `retry_after` is `None` when the cost can never fit.
    pub const fn deny(
        limit: u64,
        remaining: u64,
        retry_after: Option<Nanos>,
        reset_after: Nanos,
    ) -> Decision {
        Decision {
            allowed: false,
            limit,
            remaining,
            retry_after,
            reset_after,
        }
    }

    /// Whether this is a denial that no amount of waiting turns into an admission.
    pub const fn is_never(&self) -> bool {
        !self.allowed && self.retry_after.is_none()
    }

    /// `retry_after_ms` for the wire: -1 when allowed or never, else whole milliseconds rounded
    /// up (a client that waits that long is admitted).
    pub fn retry_after_ms(&self) -> i64 {
        self.retry_after.map_or(-1, |r| {
            i64::try_from(r.as_millis_ceil()).unwrap_or(i64::MAX)
        })
    }

    /// `reset_after_ms` for the wire: whole milliseconds rounded up.
    pub fn reset_after_ms(&self) -> i64 {
        i64::try_from(self.reset_after.as_millis_ceil()).unwrap_or(i64::MAX)
    }
}

/// A non-negative `i128` span as [`Nanos`], saturating at [`Nanos::MAX`].
pub(crate) fn nanos_from_i128(ns: i128) -> Nanos {
    Nanos(u64::try_from(ns.max(0)).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_milliseconds_round_up_and_mark_never() {
        // (label, decision, retry_after_ms, reset_after_ms)
        let cases = [
            ("allowed", Decision::allow(5, 4, Nanos(1)), -1, 1),
            (
                "denied, 1.000001 ms",
                Decision::deny(5, 0, Some(Nanos(1_000_001)), Nanos(2_000_000)),
                2,
                2,
            ),
            ("never", Decision::deny(5, 5, None, Nanos::ZERO), -1, 0),
            (
                "saturates",
                Decision::deny(5, 0, Some(Nanos::MAX), Nanos::MAX),
                i64::try_from(Nanos::MAX.as_millis_ceil()).unwrap(),
                i64::try_from(Nanos::MAX.as_millis_ceil()).unwrap(),
            ),
        ];
        for (label, d, retry, reset) in cases {
            assert_eq!(d.retry_after_ms(), retry, "{label}");
            assert_eq!(d.reset_after_ms(), reset, "{label}");
        }
        assert!(Decision::deny(1, 0, None, Nanos::ZERO).is_never());
        assert!(!Decision::allow(1, 0, Nanos::ZERO).is_never());
    }
}
