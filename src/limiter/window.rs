//! WINDOW: the sliding window counter, an O(1)-state approximation of a sliding log.
//!
//! Owns the pure transition behind `WINDOW.TAKE`/`WINDOW.PEEK` and the counter arithmetic that
//! COST's rolling caps reuse. Depends only on `clock` and `decision`: no I/O, no clock reads.
//!
//! # Terms
//! - **Window** `W`: the length of the sliding window. Time is cut into **fixed windows**
//!   `[k·W, (k+1)·W)` aligned to the epoch; the **current** one contains `now`.
//! - **Counts**: `curr`, units admitted in the current fixed window, and `prev`, units admitted
//!   in the one before it. They and the current window's start are the whole state.
//! - **Elapsed** `e`: `now - start`, in `[0, W)`.
//! - **Estimate**: `prev · (W - e) / W + curr`, the units the sliding window `(now - W, now]`
//!   is assumed to hold, taking the previous window's units as spread evenly over it.
//!
//! A take of `cost` is admitted when `estimate + cost <= limit`. The comparison is exact: it
//! is evaluated as `prev·(W-e) + (curr+cost)·W <= limit·W` in `u128`, never in floats.
//!
//! # Guarantees
//! - Every fixed window admits at most `limit`.
//! - **Error bound against an exact sliding log.** An exact log admits at most `limit` in any
//!   window `(t - W, t]`. The counter admits at most `2·limit - 1` there, and that bound is
//!   tight (see `worst_case_is_two_limits_minus_one`). Proof: let `t` fall at elapsed `e_t` of
//!   fixed window `k+1`, and let the last admission of window `k+1` up to `t` come at elapsed
//!   `e_a <= e_t < W`. It was admitted with `P·(W-e_a) + C·W <= limit·W`, where `P` is window
//!   `k`'s count, so `C <= limit - P·(W-e_a)/W`. If `P >= 1`, `P·(W-e_a)/W > 0` and, `C` being
//!   an integer, `C <= limit - 1`; the window `(t-W, t]` holds at most `P + C <= 2·limit - 1`.
//!   If `P = 0` it holds at most `C <= limit`. The excess needs the previous window's traffic
//!   packed at its very end; for traffic spread evenly the estimate is exact.
//! - The counter may also **deny** what an exact log admits (previous-window units that have
//!   already slid out still weigh `P·(W-e)/W`); it never waits longer than the end of the next
//!   fixed window for a cost `<= limit`.
//! - **Retry after is exact**: for a fixed state the estimate never increases with time (it
//!   falls within a window and cannot rise at a boundary, where `curr` becomes `prev` with
//!   full weight and `curr` restarts at 0), so the admitted instants form a ray `[t*, ∞)`;
//!   `retry_after = t* - now`, computed in closed form.
//! - **Expiry**: a state is fresh again two windows after its start if `curr > 0` (one window
//!   if only `prev > 0`), so it lives at most two windows past its last admission.
//! - A clock stepping back reads the stored window at its start (`e = 0`, full weight on
//!   `prev`), the largest estimate that state can have, so it never grants capacity.

use crate::clock::Nanos;
use crate::limiter::decision::{nanos_from_i128, Decision};
use crate::limiter::units::{Rate, UnitError};

/// Checked WINDOW parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowParams {
    /// Units admitted per window, >= 1.
    limit: u64,
    /// Window length in ns, in `1 ..= MAX_DURATION`.
    window: u64,
}

impl WindowParams {
    /// `limit` units per `window`; both must be non-zero and the window at most
    /// [`MAX_DURATION`](crate::limiter::units::MAX_DURATION).
    pub fn new(limit: u64, window: Nanos) -> Result<WindowParams, UnitError> {
        let rate = Rate::new(limit, window)?;
        Ok(WindowParams::from_rate(rate))
    }

    /// `N/period` as `N` per window of `period`.
    pub fn from_rate(rate: Rate) -> WindowParams {
        WindowParams {
            limit: rate.count(),
            window: rate.period().0,
        }
    }

    /// Units admitted per window.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The window length.
    pub fn window(&self) -> Nanos {
        Nanos(self.window)
    }
}

/// What the store keeps for a WINDOW key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowState {
    /// Start of the fixed window `curr` belongs to (a multiple of `W`).
    pub start: Nanos,
    /// Units admitted in the fixed window before `start`.
    pub prev: u64,
    /// Units admitted in the fixed window starting at `start`.
    pub curr: u64,
}

/// The instant at which `state` is fresh again and may be deleted.
pub fn expires_at(params: &WindowParams, state: &WindowState) -> Nanos {
    counter_expiry(params.window, state.start.0, state.prev, state.curr)
}

/// Runs one WINDOW transition for `cost` units at `now`.
///
/// Returns the decision and the state to write: `Some` only when a take with `cost > 0` is
/// admitted; it expires at [`expires_at`]. A cost of 0 or a denial writes nothing. Peek is the
/// same call with the state discarded.
pub fn take(
    params: &WindowParams,
    state: Option<WindowState>,
    now: Nanos,
    cost: u64,
) -> (Decision, Option<WindowState>) {
    let (w, limit) = (params.window, params.limit);
    let v = Counter::view(state.map(|s| (s.start.0, s.prev, s.curr)), w, now.0);
    if v.fits(w, limit, cost) {
        let next = Counter {
            curr: v.curr.saturating_add(cost),
            ..v
        };
        let reset = counter_expiry(w, next.start, next.prev, next.curr);
        let d = Decision::allow(limit, next.remaining(w, limit), since(reset.0, now.0));
        let new = (cost > 0).then_some(WindowState {
            start: Nanos(next.start),
            prev: next.prev,
            curr: next.curr,
        });
        (d, new)
    } else {
        let retry = v.earliest(w, limit, cost).map(|t| since(t, now.0));
        let reset = counter_expiry(w, v.start, v.prev, v.curr);
        let d = Decision::deny(limit, v.remaining(w, limit), retry, since(reset.0, now.0));
        (d, None)
    }
}

/// Charges (`delta > 0`, even past the limit) or refunds (`delta < 0`) `|delta|` units at
/// `now` without deciding anything: the settle of a reservation. A refund takes from the
/// current fixed window first, then the previous one, never below zero (as COST's rolling
/// refunds do). Returns the state to write, or `None` when both counts are zero (fresh).
pub fn adjust(
    params: &WindowParams,
    state: Option<WindowState>,
    now: Nanos,
    delta: i64,
) -> Option<WindowState> {
    let stored = state.map(|s| (s.start.0, s.prev, s.curr));
    let mut v = Counter::view(stored, params.window, now.0);
    if delta >= 0 {
        v.curr = v.curr.saturating_add(delta.unsigned_abs());
    } else {
        let want = delta.unsigned_abs();
        let from_curr = want.min(v.curr);
        v.curr -= from_curr;
        v.prev -= (want - from_curr).min(v.prev);
    }
    (v.prev > 0 || v.curr > 0).then_some(WindowState {
        start: Nanos(v.start),
        prev: v.prev,
        curr: v.curr,
    })
}

/// `t - now`, saturating at zero.
fn since(t: u64, now: u64) -> Nanos {
    nanos_from_i128(i128::from(t) - i128::from(now))
}

/// When a counter with these counts, started at `start`, is fresh again.
pub(crate) fn counter_expiry(w: u64, start: u64, prev: u64, curr: u64) -> Nanos {
    let windows = if curr > 0 { 2 } else { u64::from(prev > 0) };
    Nanos(start.saturating_add(w.saturating_mul(windows)))
}

/// A sliding window counter rolled forward to the instant `at`: the arithmetic shared by
/// WINDOW and COST's rolling cap. Counts are plain units (micro-units for COST).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counter {
    /// The instant the counts are read at: `now`, or the stored start if the clock stepped
    /// back before it.
    pub at: u64,
    /// Start of the current fixed window.
    pub start: u64,
    /// Count of the previous fixed window.
    pub prev: u64,
    /// Count of the current fixed window.
    pub curr: u64,
}

impl Counter {
    /// The stored `(start, prev, curr)` as seen at `now` with window `w`.
    pub fn view(state: Option<(u64, u64, u64)>, w: u64, now: u64) -> Counter {
        let start = now - now % w;
        let fresh = Counter {
            at: now,
            start,
            prev: 0,
            curr: 0,
        };
        match state {
            None => fresh,
            // Same window, or the clock stepped back: read the stored window at no earlier
            // than its start, which weighs `prev` fully and so never grants capacity.
            Some((s, prev, curr)) if s >= start => Counter {
                at: now.max(s),
                start: s,
                prev,
                curr,
            },
            Some((s, _, curr)) if s.checked_add(w) == Some(start) => Counter {
                prev: curr,
                ..fresh
            },
            Some(_) => fresh,
        }
    }

    /// `prev · (W - e)`, the previous window's weight scaled by `W`.
    fn weighted_prev(&self, w: u64) -> u128 {
        let e = self.at - self.start;
        u128::from(self.prev) * u128::from(w - e)
    }

    /// Whether `cost` more units keep the estimate within `limit`.
    pub fn fits(&self, w: u64, limit: u64, cost: u64) -> bool {
        let w = u128::from(w);
        // Each term is below 2^64 · 2^62, so the sum cannot overflow u128.
        self.weighted_prev(w as u64) + (u128::from(self.curr) + u128::from(cost)) * w
            <= u128::from(limit) * w
    }

    /// The estimate rounded up, `curr + ceil(prev · (W-e) / W)`, saturating.
    pub fn estimate(&self, w: u64) -> u64 {
        // carried <= prev < 2^64.
        let carried = div_u128(self.weighted_prev(w), w, true);
        self.curr.saturating_add(carried)
    }

    /// The largest cost that fits now: `limit - curr - ceil(prev · (W-e) / W)`, floored at 0.
    pub fn remaining(&self, w: u64, limit: u64) -> u64 {
        limit.saturating_sub(self.estimate(w))
    }

    /// The earliest instant `>= at` at which `cost` fits, with no other traffic; `None` when
    /// `cost > limit` (it never fits).
    pub fn earliest(&self, w: u64, limit: u64, cost: u64) -> Option<u64> {
        if cost > limit {
            return None;
        }
        let w128 = u128::from(w);
        // Smallest elapsed `e` with `p · (W - e) <= slack · W`, or None if `e` would reach W.
        let first_elapsed = |p: u64, slack: u64| -> Option<u64> {
            if p == 0 {
                return Some(0);
            }
            let k = u128::from(div_u128(u128::from(slack) * w128, p, false));
            // k < W here, so the difference is in (0, W].
            let e = if k >= w128 { 0 } else { w - k as u64 };
            (e < w).then_some(e)
        };
        if let Some(slack) = limit
            .checked_sub(self.curr)
            .and_then(|r| r.checked_sub(cost))
        {
            if let Some(e) = first_elapsed(self.prev, slack) {
                return Some(self.start.saturating_add(e).max(self.at));
            }
        }
        // Next window: `curr` becomes `prev` with full weight. If even its start is too early,
        // the window after it (both counts zero) admits any cost <= limit.
        let next = self.start.saturating_add(w);
        let e = first_elapsed(self.curr, limit - cost).unwrap_or(w);
        Some(next.saturating_add(e))
    }
}

/// `n / d` rounded up (`ceil`) or down, saturating at `u64::MAX`. Most numerators fit in 64
/// bits, and a 64-bit division is several times cheaper than a 128-bit one.
fn div_u128(n: u128, d: u64, ceil: bool) -> u64 {
    match u64::try_from(n) {
        Ok(n) if ceil => n.div_ceil(d),
        Ok(n) => n / d,
        Err(_) => {
            let d = u128::from(d);
            let q = if ceil { n.div_ceil(d) } else { n / d };
            u64::try_from(q).unwrap_or(u64::MAX)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limiter::units::MAX_DURATION;
    use proptest::prelude::*;

    #[test]
    fn adjust_charges_past_the_limit_and_refunds_current_window_first() {
        let p = WindowParams::new(10, ms(1000)).unwrap();
        let st = |start: u64, prev: u64, curr: u64| WindowState {
            start: at(start),
            prev,
            curr,
        };
        // (label, state, at ms, delta, result)
        let cases = [
            ("charge fresh", None, 100, 4, Some(st(0, 0, 4))),
            (
                "charge past the limit",
                Some(st(0, 0, 9)),
                100,
                5,
                Some(st(0, 0, 14)),
            ),
            (
                "refund current first",
                Some(st(1000, 3, 2)),
                1100,
                -4,
                Some(st(1000, 1, 0)),
            ),
            (
                "refund rolls the window first",
                Some(st(0, 0, 6)),
                1100,
                -2,
                Some(st(1000, 4, 0)),
            ),
            ("refund to zero is fresh", Some(st(0, 0, 2)), 100, -5, None),
            ("refund on fresh", None, 100, -1, None),
        ];
        for (label, state, now, delta, want) in cases {
            assert_eq!(adjust(&p, state, at(now), delta), want, "{label}");
        }
        // Over the limit, a take is denied until the estimate falls back.
        let (d, _) = take(&p, Some(st(0, 0, 14)), at(100), 1);
        assert!(!d.allowed);
    }

    /// 2023-11-14T22:13:20Z, a multiple of every window used below.
    const T0: Nanos = Nanos(1_700_000_000 * Nanos::PER_SEC);

    fn ms(n: u64) -> Nanos {
        Nanos::from_millis(n)
    }

    fn at(offset_ms: u64) -> Nanos {
        T0.saturating_add(ms(offset_ms))
    }

    fn step(p: &WindowParams, state: &mut Option<WindowState>, now: Nanos, c: u64) -> Decision {
        let (d, new) = take(p, *state, now, c);
        if new.is_some() {
            *state = new;
        }
        d
    }

    #[test]
    fn weighs_the_previous_window() {
        // 10 per 1 s window.
        let p = WindowParams::new(10, ms(1000)).unwrap();
        // (label, at ms, cost, allowed, remaining, retry_after, reset_after)
        type Case = (&'static str, u64, u64, bool, u64, Option<Nanos>, Nanos);
        #[rustfmt::skip]
        let cases: &[Case] = &[
            ("fresh key, cost 4", 0, 4, true, 6, None, ms(2000)),
            ("cost over limit never fits", 100, 11, false, 6, None, ms(1900)),
            ("six more fill the window", 500, 6, true, 0, None, ms(1500)),
            ("full window waits for the next", 900, 1, false, 0, Some(ms(200)), ms(1100)),
            // At 1.0 s the estimate is 10 (prev at full weight); one fits at 1.1 s (estimate 9).
            // At 1.25 s the estimate is 10 · 0.75 = 7.5: two more fit.
            ("quarter into next window", 1250, 2, true, 0, None, ms(1750)),
            // Estimate 10 · 0.7 + 2 = 9: two more fit at 1.4 s (estimate 8).
            ("exact wait inside a window", 1300, 2, false, 1, Some(ms(100)), ms(1700)),
            ("peek at the instant", 1400, 0, true, 2, None, ms(1600)),
            // Counts at 2.0 s: prev 2, curr 0; 10 fits once prev weighs nothing, at 3.0 s.
            ("whole limit waits for two windows", 2000, 10, false, 8, Some(ms(1000)), ms(1000)),
            ("whole limit at 3 s", 3000, 10, true, 0, None, ms(2000)),
            ("idle two windows is fresh", 5000, 10, true, 0, None, ms(2000)),
        ];
        let mut state = None;
        for &(label, t, cost, allowed, remaining, retry, reset) in cases {
            let d = step(&p, &mut state, at(t), cost);
            let want = Decision {
                allowed,
                limit: 10,
                remaining,
                retry_after: retry,
                reset_after: reset,
            };
            assert_eq!(d, want, "{label}");
        }
    }

    #[test]
    fn worst_case_is_two_limits_minus_one() {
        // The previous window's units all land at its last nanosecond; the next window then
        // admits limit - 1 just before the sliding window has moved past them.
        let p = WindowParams::new(10, ms(1000)).unwrap();
        let mut state = None;
        let first = at(999).saturating_add(Nanos(999_999));
        assert!(
            step(&p, &mut state, first, 10).allowed,
            "10 at the end of window 0"
        );
        let second = first.saturating_add(ms(1000)).saturating_sub(Nanos(1));
        let d = step(&p, &mut state, second, 9);
        assert!(d.allowed, "9 more within (second - W, second]");
        assert_eq!(d.remaining, 0, "and no more");
        assert!(second.0 - first.0 < ms(1000).0);
    }

    #[test]
    fn clock_stepping_back_reads_the_window_start() {
        let p = WindowParams::new(10, ms(1000)).unwrap();
        let mut state = None;
        step(&p, &mut state, at(0), 10);
        // Roll into the next window at 1.5 s: prev 10, curr 3.
        assert!(step(&p, &mut state, at(1500), 3).allowed);
        let (d, new) = take(&p, state, at(200), 1);
        assert_eq!(new, None, "denied");
        // Read at 1.0 s: estimate 13, and one more fits at 1.4 s, 1.2 s after the real now.
        assert_eq!(d.retry_after, Some(ms(1200)));
        assert_eq!(d.remaining, 0);
        assert_eq!(d.reset_after, ms(2800));
    }

    #[test]
    fn expiry_follows_the_counts() {
        let p = WindowParams::new(10, ms(1000)).unwrap();
        let s = |prev, curr| WindowState {
            start: T0,
            prev,
            curr,
        };
        // (label, state, expires_at)
        let cases = [
            ("current units live two windows", s(3, 2), at(2000)),
            ("previous units live one window", s(3, 0), at(1000)),
            ("empty is fresh at its start", s(0, 0), T0),
        ];
        for (label, state, want) in cases {
            assert_eq!(expires_at(&p, &state), want, "{label}");
        }
    }

    #[test]
    fn huge_values_do_not_overflow() {
        let p = WindowParams::new(u64::MAX, MAX_DURATION).unwrap();
        let s = Some(WindowState {
            start: Nanos(0),
            prev: u64::MAX,
            curr: u64::MAX - 1,
        });
        let (d, _) = take(&p, s, Nanos(MAX_DURATION.0 - 1), u64::MAX);
        assert!(!d.allowed);
        let (d, _) = take(&p, s, Nanos::MAX, u64::MAX);
        assert!(d.allowed, "far future: all windows expired");
    }

    /// Limit 1 ..= 20, window 1 ns ..= 10 s, and (time step, cost) operations with steps up to
    /// a window and a half, so every branch of the roll is hit.
    fn scenario() -> impl Strategy<Value = (WindowParams, Vec<(u64, u64)>)> {
        (1u64..=20, 1u64..=10_000_000_000).prop_flat_map(|(limit, w)| {
            let p = WindowParams::new(limit, Nanos(w)).unwrap();
            let ops = prop::collection::vec((0..=w + w / 2, 0..=limit + 2), 1..80);
            (Just(p), ops)
        })
    }

    proptest! {
        #[test]
        fn admits_at_most_limit_per_fixed_window_and_two_limits_minus_one_per_sliding_window(
            (p, ops) in scenario(),
        ) {
            let (w, limit) = (p.window().0, p.limit());
            let mut state = None;
            let mut now = T0;
            let mut log: Vec<(u64, u64)> = Vec::new();
            for &(dt, c) in &ops {
                now = now.saturating_add(Nanos(dt));
                if step(&p, &mut state, now, c).allowed && c > 0 {
                    log.push((now.0, c));
                }
            }
            for (i, &(t, _)) in log.iter().enumerate() {
                // Sliding window (t - W, t] ending at each admission.
                let sliding: u64 = log[..=i].iter().filter(|e| e.0 + w > t).map(|e| e.1).sum();
                prop_assert!(sliding < 2 * limit, "sliding window at {t}: {sliding}");
                let fixed: u64 = log.iter().filter(|e| e.0 / w == t / w).map(|e| e.1).sum();
                prop_assert!(fixed <= limit, "fixed window of {t}: {fixed}");
            }
        }

        #[test]
        fn retry_after_is_exact((p, ops) in scenario()) {
            let mut state = None;
            let mut now = T0;
            for &(dt, c) in &ops {
                now = now.saturating_add(Nanos(dt));
                let (d, _) = take(&p, state, now, c);
                if let Some(r) = d.retry_after {
                    prop_assert!(!d.allowed && r.0 > 0);
                    let (before, _) = take(&p, state, Nanos(now.0 + r.0 - 1), c);
                    prop_assert!(!before.allowed, "admitted 1 ns before retry_after");
                    let (then, _) = take(&p, state, Nanos(now.0 + r.0), c);
                    prop_assert!(then.allowed, "denied at retry_after");
                } else if !d.allowed {
                    prop_assert!(c > p.limit(), "never without cost > limit");
                }
                step(&p, &mut state, now, c);
            }
        }

        #[test]
        fn peek_predicts_the_take_and_changes_nothing((p, ops) in scenario()) {
            let mut state = None;
            let mut now = T0;
            for &(dt, c) in &ops {
                now = now.saturating_add(Nanos(dt));
                let before = state;
                let (peek, new) = take(&p, state, now, 0);
                prop_assert_eq!(new, None);
                prop_assert_eq!(state, before);
                let d = step(&p, &mut state, now, c);
                prop_assert_eq!(d.allowed, c <= peek.remaining);
            }
        }

        #[test]
        fn clock_stepping_back_never_grants_capacity(
            (p, ops) in scenario(),
            back in 0u64..=30_000_000_000,
        ) {
            let mut state = None;
            let mut now = T0;
            for &(dt, c) in &ops {
                now = now.saturating_add(Nanos(dt));
                step(&p, &mut state, now, c);
                let earlier = now.saturating_sub(Nanos(back));
                let (e, _) = take(&p, state, earlier, 0);
                let (h, _) = take(&p, state, now, 0);
                prop_assert!(e.remaining <= h.remaining);
                for c in 1..=p.limit() {
                    let (e, _) = take(&p, state, earlier, c);
                    let (h, _) = take(&p, state, now, c);
                    prop_assert!(!e.allowed || h.allowed, "admitted only in the past at {c}");
                }
            }
        }

        #[test]
        fn take_never_panics(
            limit in 1u64..,
            w in 1u64..=MAX_DURATION.0,
            state: Option<(u64, u64, u64)>,
            now: u64,
            c: u64,
        ) {
            let p = WindowParams::new(limit, Nanos(w)).unwrap();
            let s = state.map(|(start, prev, curr)| WindowState { start: Nanos(start), prev, curr });
            let (d, new) = take(&p, s, Nanos(now), c);
            prop_assert!(d.remaining <= limit);
            if let Some(n) = new {
                let _ = expires_at(&p, &n);
            }
        }
    }
}
