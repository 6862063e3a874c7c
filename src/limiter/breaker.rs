//! BREAKER: a circuit breaker whose state lives in the server, shared by every instance of an
//! application.
//!
//! Owns the pure transitions behind `BREAKER.ALLOW`, `BREAKER.REPORT`, `BREAKER.STATE`,
//! `BREAKER.TRIP` and `BREAKER.RESET`. Depends on `clock`, `decision`, `units` and the
//! sliding window counter of `window`: no I/O, no clock reads.
//!
//! # Terms
//! - **Closed**: calls pass; REPORTs are counted in a sliding window counter (see
//!   [`crate::limiter::window`]) of length `window`. Counts are the counter's estimates,
//!   rounded up.
//! - **Trip rule**: either `failures >= threshold`, or, in ratio mode, `calls >= min_calls`
//!   and `failures * 100 >= percent * calls`. Meeting it on a REPORT opens the breaker.
//! - **Open**: every ALLOW is refused until `cooldown` has passed since opening.
//! - **Half-open**: the first state after the cooldown. It lets exactly `probes` ALLOWs
//!   through (each ALLOW takes a **probe** slot; the store's per-key lock makes that atomic,
//!   so no two callers get the same slot). Every probe must succeed: `probes` successful
//!   REPORTs close the breaker, and one failure re-opens it. A success is counted only while
//!   fewer successes than issued probes have been seen, so a late report from before the
//!   breaker opened cannot close it. If the probes' reports do not all arrive within
//!   `cooldown` of the round's start (a prober died), a new round hands out fresh probes.
//! - **TRIP** forces open (for a cooldown from now); **RESET** forces closed with empty
//!   counts, which is the fresh state, so the store simply deletes the key.
//!
//! A closed breaker expires once its counts are empty (at most two windows after its last
//! report); an open or half-open one is kept until it closes. Open → half-open happens lazily
//! when the breaker is next read. A clock stepping back never shortens a cooldown or a probe
//! round, so it never lets extra calls through.

use crate::clock::Nanos;
use crate::limiter::decision::Decision;
use crate::limiter::units::MAX_DURATION;
use crate::limiter::window::{counter_expiry, Counter};

/// How a closed breaker decides to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TripRule {
    /// `failures >= n` within the window.
    Failures(u64),
    /// `calls >= min_calls` and `failures / calls >= percent / 100` within the window.
    Ratio {
        /// 1..=100.
        percent: u64,
        /// At least 1.
        min_calls: u64,
    },
}

/// Why BREAKER arguments were refused. `Display` is the reply text after `ERR `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BreakerParamError {
    /// Threshold, min_calls or probes was zero.
    #[error("threshold, min calls and probes must be greater than zero")]
    Zero,
    /// The percentage was outside 1..=100.
    #[error("ratio must be between 1 and 100 percent")]
    BadPercent,
    /// A window or cooldown of zero or over the maximum duration.
    #[error("window and cooldown must be greater than zero and at most 146 years")]
    BadDuration,
}

/// Checked BREAKER parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerParams {
    rule: TripRule,
    window: u64,
    cooldown: Nanos,
    probes: u64,
}

impl BreakerParams {
    /// Opens by `rule` within `window`, stays open `cooldown`, then lets `probes` through.
    pub fn new(
        rule: TripRule,
        window: Nanos,
        cooldown: Nanos,
        probes: u64,
    ) -> Result<BreakerParams, BreakerParamError> {
        match rule {
            TripRule::Failures(0) | TripRule::Ratio { min_calls: 0, .. } => {
                return Err(BreakerParamError::Zero)
            }
            TripRule::Ratio { percent, .. } if !(1..=100).contains(&percent) => {
                return Err(BreakerParamError::BadPercent)
            }
            _ => {}
        }
        if probes == 0 {
            return Err(BreakerParamError::Zero);
        }
        let ok = |d: Nanos| d > Nanos::ZERO && d <= MAX_DURATION;
        if !ok(window) || !ok(cooldown) {
            return Err(BreakerParamError::BadDuration);
        }
        Ok(BreakerParams {
            rule,
            window: window.0,
            cooldown,
            probes,
        })
    }

    /// The probes a half-open round lets through.
    pub fn probes(&self) -> u64 {
        self.probes
    }

    /// The cooldown.
    pub fn cooldown(&self) -> Nanos {
        self.cooldown
    }
}

/// What the store keeps for a BREAKER key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Counting reports.
    Closed {
        /// Start of the counters' current fixed window.
        start: Nanos,
        /// Failures in the previous and current fixed windows.
        failures: (u64, u64),
        /// Reports (calls) in the previous and current fixed windows (ratio mode only).
        calls: (u64, u64),
    },
    /// Refusing calls until `until`.
    Open {
        /// End of the cooldown.
        until: Nanos,
    },
    /// Handing out probes.
    HalfOpen {
        /// Start of this probe round.
        since: Nanos,
        /// Probes handed out this round.
        issued: u64,
        /// Successful probe reports this round.
        successes: u64,
    },
}

/// The three phases, for replies and events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Calls pass.
    Closed,
    /// Calls are refused.
    Open,
    /// A limited number of probe calls pass.
    HalfOpen,
}

/// What BREAKER.STATE reports, and every transition's extras.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerStatus {
    /// The phase at `now`, after this call.
    pub phase: Phase,
    /// Failures counted in the window (closed only).
    pub failures: u64,
    /// Calls counted in the window (closed, ratio mode only).
    pub calls: u64,
    /// Probes handed out this round (half-open only).
    pub probes_issued: u64,
    /// Successful probe reports this round (half-open only).
    pub probe_successes: u64,
    /// Wait until the next time-driven transition: open → half-open, or a half-open round's
    /// timeout. `None` when closed.
    pub next_transition: Option<Nanos>,
    /// The phase this call moved the breaker from, when it changed (for events).
    pub changed_from: Option<Phase>,
}

/// The outcome of [`allow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllowOutcome {
    /// `limit` is the probe count; `remaining` the probes left (all of them when closed, 0
    /// when open); `retry_after` the exact wait when refused; `reset_after` the wait until
    /// the next time-driven transition (0 when closed).
    pub decision: Decision,
    /// The breaker's status after the call.
    pub status: BreakerStatus,
}

/// When `state` is fresh: closed with empty counts. Open and half-open states never expire on
/// their own ([`Nanos::MAX`]).
pub fn expires_at(params: &BreakerParams, state: &BreakerState) -> Nanos {
    match *state {
        BreakerState::Closed {
            start,
            failures,
            calls,
        } => {
            let f = counter_expiry(params.window, start.0, failures.0, failures.1);
            let c = counter_expiry(params.window, start.0, calls.0, calls.1);
            f.max(c)
        }
        _ => Nanos::MAX,
    }
}

/// The state as it stands at `now`: an elapsed cooldown becomes a half-open round, a timed-out
/// round a new one.
fn view(params: &BreakerParams, state: Option<BreakerState>, now: Nanos) -> BreakerState {
    match state {
        None => fresh(params, now),
        Some(BreakerState::Open { until }) if now >= until => BreakerState::HalfOpen {
            since: until,
            issued: 0,
            successes: 0,
        },
        Some(BreakerState::HalfOpen { since, .. })
            if now >= since.saturating_add(params.cooldown) =>
        {
            BreakerState::HalfOpen {
                since: now,
                issued: 0,
                successes: 0,
            }
        }
        Some(s) => s,
    }
}

/// A closed breaker with empty counts, its window aligned as the counter expects.
fn fresh(params: &BreakerParams, now: Nanos) -> BreakerState {
    BreakerState::Closed {
        start: Nanos(now.0 - now.0 % params.window),
        failures: (0, 0),
        calls: (0, 0),
    }
}

/// The phase a stored state is in (not viewed at a time: an open state past its cooldown is
/// still `Open` here).
pub fn phase_of(state: &BreakerState) -> Phase {
    match state {
        BreakerState::Closed { .. } => Phase::Closed,
        BreakerState::Open { .. } => Phase::Open,
        BreakerState::HalfOpen { .. } => Phase::HalfOpen,
    }
}

/// Closed counters rolled to `now`: (failures view, calls view).
fn counters(params: &BreakerParams, state: &BreakerState, now: Nanos) -> (Counter, Counter) {
    let (start, f, c) = match *state {
        BreakerState::Closed {
            start,
            failures,
            calls,
        } => (Some(start.0), failures, calls),
        _ => (None, (0, 0), (0, 0)),
    };
    let w = params.window;
    (
        Counter::view(start.map(|s| (s, f.0, f.1)), w, now.0),
        Counter::view(start.map(|s| (s, c.0, c.1)), w, now.0),
    )
}

/// The status of `state` (already viewed at `now`).
fn status(
    params: &BreakerParams,
    state: &BreakerState,
    now: Nanos,
    before: Option<BreakerState>,
) -> BreakerStatus {
    let (f, c) = counters(params, state, now);
    let w = params.window;
    let (issued, successes, next) = match *state {
        BreakerState::Closed { .. } => (0, 0, None),
        BreakerState::Open { until } => (0, 0, Some(until.saturating_sub(now))),
        BreakerState::HalfOpen {
            since,
            issued,
            successes,
        } => {
            let timeout = since.saturating_add(params.cooldown).saturating_sub(now);
            (issued, successes, Some(timeout))
        }
    };
    let phase = phase_of(state);
    let was = before.map_or(Phase::Closed, |b| phase_of(&b));
    BreakerStatus {
        phase,
        failures: f.estimate(w),
        calls: c.estimate(w),
        probes_issued: issued,
        probe_successes: successes,
        next_transition: next,
        changed_from: (was != phase).then_some(was),
    }
}

/// BREAKER.STATE: the status at `now`, changing nothing.
pub fn state_at(params: &BreakerParams, state: Option<BreakerState>, now: Nanos) -> BreakerStatus {
    let v = view(params, state, now);
    status(params, &v, now, state)
}

/// BREAKER.ALLOW: whether a call may proceed now. Half-open hands out a probe slot, which is
/// the only case that writes. Peek is the same call with the state discarded.
pub fn allow(
    params: &BreakerParams,
    state: Option<BreakerState>,
    now: Nanos,
) -> (AllowOutcome, Option<BreakerState>) {
    let v = view(params, state, now);
    let k = params.probes;
    let (allowed, remaining, new) = match v {
        BreakerState::Closed { .. } => (true, k, None),
        BreakerState::Open { .. } => (false, 0, None),
        BreakerState::HalfOpen {
            since,
            issued,
            successes,
        } => {
            if issued < k {
                let next = BreakerState::HalfOpen {
                    since,
                    issued: issued + 1,
                    successes,
                };
                (true, k - issued - 1, Some(next))
            } else {
                (false, 0, None)
            }
        }
    };
    let after = new.unwrap_or(v);
    let st = status(params, &after, now, state);
    let next = st.next_transition.unwrap_or(Nanos::ZERO);
    let decision = Decision {
        allowed,
        limit: k,
        remaining,
        retry_after: (!allowed).then_some(next),
        reset_after: next,
    };
    // A lazily reached half-open round is written with its first probe; a view that only
    // changed with time needs no write.
    (
        AllowOutcome {
            decision,
            status: st,
        },
        new,
    )
}

/// BREAKER.REPORT: records the result of a call. Returns the status and the state to write
/// (closed counts, an opening, a probe success, or a close — written as empty counts, which
/// [`expires_at`] reports as fresh).
pub fn report(
    params: &BreakerParams,
    state: Option<BreakerState>,
    now: Nanos,
    success: bool,
) -> (BreakerStatus, Option<BreakerState>) {
    let v = view(params, state, now);
    let open = BreakerState::Open {
        until: now.saturating_add(params.cooldown),
    };
    let new = match v {
        BreakerState::Closed { .. } => {
            let ratio = matches!(params.rule, TripRule::Ratio { .. });
            if success && !ratio {
                None
            } else {
                let (mut f, mut c) = counters(params, &v, now);
                f.curr = f.curr.saturating_add(u64::from(!success));
                if ratio {
                    c.curr = c.curr.saturating_add(1);
                }
                if trips(params, &f, &c) {
                    Some(open)
                } else {
                    Some(BreakerState::Closed {
                        start: Nanos(f.start),
                        failures: (f.prev, f.curr),
                        calls: (c.prev, c.curr),
                    })
                }
            }
        }
        // A report while open is from a call made before it opened.
        BreakerState::Open { .. } => None,
        BreakerState::HalfOpen { .. } if !success => Some(open),
        BreakerState::HalfOpen {
            since,
            issued,
            successes,
        } => {
            if successes >= issued {
                None
            } else if successes + 1 >= params.probes {
                Some(fresh(params, now))
            } else {
                Some(BreakerState::HalfOpen {
                    since,
                    issued,
                    successes: successes + 1,
                })
            }
        }
    };
    let after = new.unwrap_or(v);
    (status(params, &after, now, state), new)
}

fn trips(params: &BreakerParams, f: &Counter, c: &Counter) -> bool {
    let w = params.window;
    match params.rule {
        TripRule::Failures(n) => f.estimate(w) >= n,
        TripRule::Ratio { percent, min_calls } => {
            let (failures, calls) = (u128::from(f.estimate(w)), u128::from(c.estimate(w)));
            calls >= u128::from(min_calls) && failures * 100 >= u128::from(percent) * calls
        }
    }
}

/// BREAKER.TRIP: the state that forces the breaker open for a cooldown from `now`. (RESET
/// deletes the key: a fresh breaker is closed with empty counts.)
pub fn trip(params: &BreakerParams, now: Nanos) -> BreakerState {
    BreakerState::Open {
        until: now.saturating_add(params.cooldown),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T0: Nanos = Nanos(1_700_000_000 * Nanos::PER_SEC);

    fn s(n: u64) -> Nanos {
        T0.saturating_add(Nanos::from_secs(n))
    }

    fn params(rule: TripRule, probes: u64) -> BreakerParams {
        BreakerParams::new(rule, Nanos::from_secs(60), Nanos::from_secs(30), probes).unwrap()
    }

    #[derive(Debug, Clone, Copy)]
    enum Op {
        Allow,
        Success,
        Failure,
    }

    fn apply(p: &BreakerParams, state: &mut Option<BreakerState>, now: Nanos, op: Op) -> Phase {
        let (phase, new) = match op {
            Op::Allow => {
                let (o, new) = allow(p, *state, now);
                (o.status.phase, new)
            }
            Op::Success | Op::Failure => {
                let (st, new) = report(p, *state, now, matches!(op, Op::Success));
                (st.phase, new)
            }
        };
        if new.is_some() {
            *state = new;
        }
        phase
    }

    #[test]
    fn closed_open_half_open_closed() {
        // 3 failures per 60 s open it for 30 s; 2 probes must succeed.
        let p = params(TripRule::Failures(3), 2);
        use Op::*;
        use Phase::*;
        // (label, at ms, op, allowed (ALLOW only), phase after)
        #[rustfmt::skip]
        let cases: &[(&str, u64, Op, Option<bool>, Phase)] = &[
            ("fresh breaker passes", 0, Allow, Some(true), Closed),
            ("a success is not counted", 1000, Success, None, Closed),
            ("first failure", 2000, Failure, None, Closed),
            ("second failure", 3000, Failure, None, Closed),
            ("still passing", 4000, Allow, Some(true), Closed),
            ("third failure opens", 5000, Failure, None, Open),
            ("open refuses", 6000, Allow, Some(false), Open),
            ("late report ignored", 7000, Success, None, Open),
            ("one ms short of the cooldown", 34999, Allow, Some(false), Open),
            ("cooldown over: first probe", 35000, Allow, Some(true), HalfOpen),
            ("second probe", 35000, Allow, Some(true), HalfOpen),
            ("no third probe", 35000, Allow, Some(false), HalfOpen),
            ("one success is not enough", 36000, Success, None, HalfOpen),
            ("second success closes", 37000, Success, None, Closed),
            ("closed passes", 38000, Allow, Some(true), Closed),
        ];
        let mut state = None;
        for &(label, at, op, allowed, phase) in cases {
            let now = T0.saturating_add(Nanos::from_millis(at));
            if let Some(want) = allowed {
                let (o, _) = allow(&p, state, now);
                assert_eq!(o.decision.allowed, want, "{label}");
            }
            assert_eq!(apply(&p, &mut state, now, op), phase, "{label}");
        }
    }

    #[test]
    fn a_failed_probe_reopens_and_a_lost_probe_round_restarts() {
        let p = params(TripRule::Failures(1), 1);
        let mut state = None;
        apply(&p, &mut state, s(0), Op::Failure);
        apply(&p, &mut state, s(30), Op::Allow);
        assert_eq!(apply(&p, &mut state, s(31), Op::Failure), Phase::Open);
        let (o, _) = allow(&p, state, s(32));
        assert_eq!(
            o.decision.retry_after,
            Some(Nanos::from_secs(29)),
            "cooldown from the failure"
        );
        // The probe at 61 s never reports: at 91 s a new round hands out a new probe.
        assert!(allow(&p, state, s(61)).0.decision.allowed);
        apply(&p, &mut state, s(61), Op::Allow);
        let (o, _) = allow(&p, state, s(90));
        assert_eq!(o.decision.retry_after, Some(Nanos::from_secs(1)));
        assert!(allow(&p, state, s(91)).0.decision.allowed);
    }

    #[test]
    fn ratio_mode_needs_the_minimum_calls() {
        // Open at >= 50% failures over at least 4 calls.
        let p = params(
            TripRule::Ratio {
                percent: 50,
                min_calls: 4,
            },
            1,
        );
        let mut state = None;
        let ops = [Op::Failure, Op::Failure, Op::Failure];
        for op in ops {
            assert_eq!(
                apply(&p, &mut state, s(1), op),
                Phase::Closed,
                "under min calls"
            );
        }
        assert_eq!(
            apply(&p, &mut state, s(2), Op::Success),
            Phase::Open,
            "3 of 4 failed"
        );
        let mut state = None;
        for op in [Op::Success, Op::Success, Op::Success, Op::Failure] {
            assert_eq!(
                apply(&p, &mut state, s(1), op),
                Phase::Closed,
                "1 of 4 failed"
            );
        }
    }

    #[test]
    fn status_reports_counts_and_next_transition() {
        let p = params(TripRule::Failures(5), 2);
        let mut state = None;
        apply(&p, &mut state, s(0), Op::Failure);
        apply(&p, &mut state, s(1), Op::Failure);
        let st = state_at(&p, state, s(2));
        assert_eq!(
            (st.phase, st.failures, st.next_transition),
            (Phase::Closed, 2, None)
        );
        state = Some(trip(&p, s(3)));
        let st = state_at(&p, state, s(10));
        assert_eq!(
            (st.phase, st.next_transition),
            (Phase::Open, Some(Nanos::from_secs(23)))
        );
        let st = state_at(&p, state, s(33));
        assert_eq!(
            (st.phase, st.changed_from),
            (Phase::HalfOpen, Some(Phase::Open))
        );
        assert_eq!(state_at(&p, state, s(33)), st, "STATE changes nothing");
    }

    #[test]
    fn closed_idle_breaker_expires() {
        let p = params(TripRule::Failures(5), 1);
        let mut state = None;
        apply(&p, &mut state, s(10), Op::Failure);
        let st = state.unwrap();
        // The failure lands in the fixed window containing 10 s; it is forgotten two windows
        // after that window's start.
        let start = Nanos(s(10).0 - s(10).0 % Nanos::from_secs(60).0);
        assert_eq!(
            expires_at(&p, &st),
            start.saturating_add(Nanos::from_secs(120))
        );
        assert_eq!(
            expires_at(&p, &trip(&p, s(0))),
            Nanos::MAX,
            "open never expires alone"
        );
    }

    #[test]
    fn bad_parameters_are_errors() {
        let d = Nanos::from_secs(1);
        let cases = [
            (
                "zero threshold",
                BreakerParams::new(TripRule::Failures(0), d, d, 1),
                BreakerParamError::Zero,
            ),
            (
                "zero probes",
                BreakerParams::new(TripRule::Failures(1), d, d, 0),
                BreakerParamError::Zero,
            ),
            (
                "zero min calls",
                BreakerParams::new(
                    TripRule::Ratio {
                        percent: 50,
                        min_calls: 0,
                    },
                    d,
                    d,
                    1,
                ),
                BreakerParamError::Zero,
            ),
            (
                "percent 0",
                BreakerParams::new(
                    TripRule::Ratio {
                        percent: 0,
                        min_calls: 1,
                    },
                    d,
                    d,
                    1,
                ),
                BreakerParamError::BadPercent,
            ),
            (
                "percent 101",
                BreakerParams::new(
                    TripRule::Ratio {
                        percent: 101,
                        min_calls: 1,
                    },
                    d,
                    d,
                    1,
                ),
                BreakerParamError::BadPercent,
            ),
            (
                "zero window",
                BreakerParams::new(TripRule::Failures(1), Nanos::ZERO, d, 1),
                BreakerParamError::BadDuration,
            ),
            (
                "huge cooldown",
                BreakerParams::new(TripRule::Failures(1), d, Nanos::MAX, 1),
                BreakerParamError::BadDuration,
            ),
        ];
        for (label, got, want) in cases {
            assert_eq!(got, Err(want), "{label}");
        }
    }

    fn scenario() -> impl Strategy<Value = (BreakerParams, Vec<(u64, Op)>)> {
        let op = prop_oneof![
            3 => Just(Op::Allow),
            2 => Just(Op::Success),
            2 => Just(Op::Failure),
        ];
        let rule = prop_oneof![
            (1u64..=4).prop_map(TripRule::Failures),
            (1u64..=100, 1u64..=5)
                .prop_map(|(percent, min_calls)| TripRule::Ratio { percent, min_calls }),
        ];
        (rule, 1u64..=4).prop_flat_map(move |(rule, probes)| {
            let p = params(rule, probes);
            let ops = prop::collection::vec((0u64..=20 * Nanos::PER_SEC, op.clone()), 1..80);
            (Just(p), ops)
        })
    }

    proptest! {
        #[test]
        fn half_open_rounds_admit_at_most_k_probes_and_close_only_after_k_successes(
            (p, ops) in scenario(),
        ) {
            let mut state = None;
            let mut now = T0;
            for (dt, op) in ops {
                now = now.saturating_add(Nanos(dt));
                let before = view(&p, state, now);
                let phase = apply(&p, &mut state, now, op);
                if let Some(BreakerState::HalfOpen { issued, successes, .. }) = state {
                    prop_assert!(issued <= p.probes());
                    prop_assert!(successes <= issued);
                }
                if let BreakerState::HalfOpen { successes, .. } = before {
                    if phase == Phase::Closed {
                        prop_assert!(matches!(op, Op::Success));
                        prop_assert_eq!(successes + 1, p.probes(), "closed before K successes");
                    }
                }
            }
        }

        #[test]
        fn many_callers_at_one_instant_get_exactly_k_probes(
            probes in 1u64..=5,
            callers in 1usize..=50,
        ) {
            let p = params(TripRule::Failures(1), probes);
            let mut state = Some(trip(&p, T0));
            let now = s(30);
            let granted = (0..callers).filter(|_| {
                let (o, new) = allow(&p, state, now);
                state = new.or(state);
                o.decision.allowed
            }).count() as u64;
            prop_assert_eq!(granted, probes.min(callers as u64));
        }

        #[test]
        fn retry_after_is_exact((p, ops) in scenario()) {
            let mut state = None;
            let mut now = T0;
            for (dt, op) in ops {
                now = now.saturating_add(Nanos(dt));
                let (o, _) = allow(&p, state, now);
                if let Some(r) = o.decision.retry_after {
                    prop_assert!(r.0 > 0);
                    let (before, _) = allow(&p, state, Nanos(now.0 + r.0 - 1));
                    prop_assert!(!before.decision.allowed, "allowed 1 ns before retry_after");
                    let (then, _) = allow(&p, state, Nanos(now.0 + r.0));
                    prop_assert!(then.decision.allowed, "refused at retry_after");
                }
                prop_assert!(o.decision.allowed || o.decision.retry_after.is_some());
                apply(&p, &mut state, now, op);
            }
        }

        #[test]
        fn peek_and_state_change_nothing((p, ops) in scenario()) {
            let mut state = None;
            let mut now = T0;
            for (dt, op) in ops {
                now = now.saturating_add(Nanos(dt));
                let before = state;
                let (peek, _) = allow(&p, state, now);
                let _ = state_at(&p, state, now);
                prop_assert_eq!(state, before);
                let (take, _) = allow(&p, state, now);
                prop_assert_eq!(peek, take, "the same call twice gives the same answer");
                apply(&p, &mut state, now, op);
            }
        }

        #[test]
        fn clock_stepping_back_never_lets_more_through(
            (p, ops) in scenario(),
            back in 0u64..=60 * Nanos::PER_SEC,
        ) {
            let mut state = None;
            let mut now = T0;
            for (dt, op) in ops {
                now = now.saturating_add(Nanos(dt));
                apply(&p, &mut state, now, op);
                let (e, _) = allow(&p, state, now.saturating_sub(Nanos(back)));
                let (h, _) = allow(&p, state, now);
                prop_assert!(!e.decision.allowed || h.decision.allowed);
            }
        }
    }
}
