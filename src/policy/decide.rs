//! The atomic multi-rule decision: given every applicable rule's current state, decide the
//! request as a whole and say what each rule's state becomes. Pure: the caller holds every
//! rule key's shard lock, reads the states, calls [`decide`], and writes the returned states
//! only when the verdict says to charge, so either every rule is charged or none is.
//!
//! Every rule runs its own family's pure transition ([`rate::take`], [`window::take`],
//! [`quota::take`], [`cost::take`], [`lease::acquire`]); this module only combines them.
//!
//! # Combining
//! - A rule that admits is charged (its new state is written if the request is admitted).
//! - A rule that denies acts by its action: `block` refuses the request; `log` admits it,
//!   reports the rule and does not charge it; `slowdown` admits it after `retry_after` (at
//!   most `MAXDELAY`), charging the rule as of the end of that wait, and the reply's
//!   `delay_ms` is the longest such wait. A slowdown whose wait is unbounded blocks.
//! - The request is admitted when no rule blocks. Its `retry_after` is the longest wait among
//!   the blocking rules, or never when one of them can never admit it.
//! - A rule passes its warning threshold when `used = limit - remaining` (after this request)
//!   reaches `warn · limit`.

use crate::clock::Nanos;
use crate::limiter::breaker::{self, BreakerState};
use crate::limiter::cost::{self, Amount, CostState};
use crate::limiter::decision::Decision;
use crate::limiter::gcra::{self, GcraState};
use crate::limiter::lease::{self, Lease, LeaseId, LeaseParams, LeaseState, Priority};
use crate::limiter::quota::{self, QuotaState};
use crate::limiter::rate;
use crate::limiter::window::{self, WindowState};
use crate::policy::model::{Action, Applied, Fraction, Limit, Measure};

/// A rule's stored state (one of the families' state types).
#[derive(Debug, Clone, PartialEq)]
pub enum RuleState {
    /// RATE / TOKENS RATE.
    Gcra(GcraState),
    /// WINDOW / TOKENS WINDOW.
    Window(WindowState),
    /// QUOTA / TOKENS QUOTA.
    Quota(QuotaState),
    /// COST.
    Cost(CostState),
    /// LEASE.
    Lease(LeaseState),
    /// BREAKER (the breaker's own key).
    Breaker(BreakerState),
}

/// What to do to a rule's key.
#[derive(Debug, Clone, PartialEq)]
pub enum StateWrite {
    /// Store the state, expiring at the instant (`None`: never).
    Put(RuleState, Option<Nanos>),
    /// Delete the key (the state is fresh).
    Delete,
}

/// What one request asks of the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Demand {
    /// The request's `TOKENS`.
    pub tokens: u64,
    /// The request's `COST`.
    pub cost: Amount,
    /// The request's `PRIORITY` (a LEASE rule with a reserve admits lower priorities only
    /// above it).
    pub priority: Priority,
}

/// How the decision is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `LIMIT.CHECK` / `LIMIT.RESERVE`: decide and compute the charged states. A lease rule
    /// grants lease `lease_id` living `lease_ttl` (the rule's TTL when `None`).
    Charge {
        /// Id of the lease a LEASE rule grants.
        lease_id: LeaseId,
        /// Lifetime of that lease instead of the rule's TTL.
        lease_ttl: Option<Nanos>,
    },
    /// `LIMIT.STATUS`: `remaining` and `reset` describe the state as it is (nothing charged);
    /// `allowed` and `retry_after` say what a check with the same demand would get now.
    Status,
}

/// How a rule took part in the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Admitted.
    Pass,
    /// Denied and blocking.
    Block,
    /// Denied, admitted after this wait.
    Slowdown(Nanos),
    /// Denied, admitted because the rule only logs.
    Log,
}

/// One rule's part of the verdict.
#[derive(Debug, Clone)]
pub struct RuleResult {
    /// The family's decision (for a status: remaining/reset as the state is now).
    pub decision: Decision,
    /// How the rule voted.
    pub outcome: Outcome,
    /// Units this request charges the rule when admitted (requests 1, tokens, micro-units of
    /// cost, 1 lease); 0 for a log-only denial.
    pub charged: i64,
    /// The rule's new state if the request is admitted.
    pub write: Option<StateWrite>,
    /// Whether the rule passed its warning threshold.
    pub warned: bool,
    /// Units admitted past the rule's limit by its grace (0 within the limit).
    pub overage: u64,
}

/// The decision for the whole request.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// Admitted (possibly after `delay`).
    pub allowed: bool,
    /// The first blocking rule's index.
    pub denied_by: Option<usize>,
    /// For a refusal: the longest wait among blocking rules; `None` when allowed or when a
    /// blocking rule can never admit the request.
    pub retry_after: Option<Nanos>,
    /// How long an admitted request must wait first (slowdown), zero otherwise.
    pub delay: Nanos,
    /// Per rule, in the order given.
    pub rules: Vec<RuleResult>,
    /// The lease granted, when a LEASE rule admitted the request.
    pub lease: Option<Lease>,
}

impl Verdict {
    /// The action the caller should take: `block`, `slowdown`, `log` (admitted, but a log-only
    /// rule would have denied) or `allow`.
    pub fn action(&self) -> &'static str {
        if !self.allowed {
            "block"
        } else if self.delay > Nanos::ZERO {
            "slowdown"
        } else if self.rules.iter().any(|r| r.outcome == Outcome::Log) {
            "log"
        } else {
            "allow"
        }
    }

    /// The index of the rule the headers and the top-level fields describe: the blocking rule,
    /// else the one with the smallest fraction remaining (the first among equals).
    pub fn tightest(&self) -> Option<usize> {
        if let Some(i) = self.denied_by {
            return Some(i);
        }
        let mut best: Option<usize> = None;
        for (i, r) in self.rules.iter().enumerate() {
            let d = &r.decision;
            let better = match best {
                None => true,
                Some(b) => {
                    let e = &self.rules[b].decision;
                    // d.remaining / d.limit < e.remaining / e.limit, exactly.
                    u128::from(d.remaining) * u128::from(e.limit.max(1))
                        < u128::from(e.remaining) * u128::from(d.limit.max(1))
                }
            };
            if better {
                best = Some(i);
            }
        }
        best
    }
}

/// Units a rule takes for `demand`.
pub fn units(measure: Measure, demand: &Demand) -> i64 {
    match measure {
        Measure::Requests | Measure::Concurrency => 1,
        Measure::Tokens => i64::try_from(demand.tokens).unwrap_or(i64::MAX),
        Measure::Cost => demand.cost.0,
    }
}

/// The state as the family reads it: a state of another kind (the rule changed family under
/// the same name) reads as fresh.
macro_rules! state_as {
    ($state:expr, $variant:ident) => {
        match $state {
            Some(RuleState::$variant(s)) => Some(s.clone()),
            _ => None,
        }
    };
}

/// How a state write expires, per family. A GCRA state records the emission interval it
/// was scheduled under, so that a later plan change re-reads its debt (`gcra_state`).
pub fn put_gcra(params: &rate::RateParams, mut s: GcraState) -> StateWrite {
    s.emission = params.gcra().emission();
    // A TAT of u64::MAX (a saturated schedule) is kept forever rather than expired at once.
    let at = Some(s.tat).filter(|t| *t != Nanos::MAX);
    StateWrite::Put(RuleState::Gcra(s), at)
}

/// A RATE rule's stored state as the rule now reads it: the units counted under the interval
/// it was written with, spaced by the rule's current interval (the used count carries over a
/// plan change; see docs/policies.md, "Changing a plan keeps what was counted").
fn gcra_state(
    params: &rate::RateParams,
    state: Option<&RuleState>,
    now: Nanos,
) -> Option<GcraState> {
    state_as!(state, Gcra).map(|s| gcra::rescale(s, now, params.gcra().emission()))
}

fn put_cost(params: &cost::CostParams, s: CostState) -> StateWrite {
    let empty = match s {
        CostState::Calendar { spent, .. } => spent == 0,
        CostState::Rolling { prev, curr, .. } => prev == 0 && curr == 0,
    };
    if empty {
        StateWrite::Delete
    } else {
        let at = cost::expires_at(params, &s);
        StateWrite::Put(RuleState::Cost(s), Some(at))
    }
}

fn put_lease(s: LeaseState) -> StateWrite {
    if s.leases.is_empty() {
        StateWrite::Delete
    } else {
        let at = lease::expires_at(&s);
        StateWrite::Put(RuleState::Lease(s), Some(at))
    }
}

/// An id no lease ever receives, for a status peek.
const PEEK_ID: LeaseId = LeaseId(u64::MAX);

/// One family transition at `now` for `units`: the decision and the state to write if
/// admitted (and charged).
fn take(
    limit: &Limit,
    state: Option<&RuleState>,
    now: Nanos,
    units: i64,
    lease: (LeaseId, Option<Nanos>, Priority),
) -> (Decision, Option<StateWrite>) {
    let u = u64::try_from(units).unwrap_or(0);
    match limit {
        Limit::Rate { params, .. } => {
            let (d, s) = rate::take(params, gcra_state(params, state, now), now, u);
            (d, s.map(|s| put_gcra(params, s)))
        }
        Limit::Window { params, .. } => {
            let (d, s) = window::take(params, state_as!(state, Window), now, u);
            let w = s.map(|s| {
                StateWrite::Put(RuleState::Window(s), Some(window::expires_at(params, &s)))
            });
            (d, w)
        }
        Limit::Quota { params, .. } => {
            let (o, s) = quota::take(params, state_as!(state, Quota), now, u);
            let w = s
                .map(|s| StateWrite::Put(RuleState::Quota(s), Some(quota::expires_at(params, &s))));
            (o.decision, w)
        }
        Limit::Cost { params, .. } => {
            let (o, s) = cost::take(
                params,
                state_as!(state, Cost),
                now,
                Amount(units.max(0)),
                false,
            );
            (o.decision, s.map(|s| put_cost(params, s)))
        }
        Limit::Lease { params, .. } => {
            let (id, ttl, priority) = lease;
            let p = match ttl {
                // The reservation's TTL passed lease::check_ttl when it was parsed; the
                // reserve passed with_reserve with the same limit.
                Some(t) => LeaseParams::new(params.limit(), t)
                    .and_then(|x| {
                        let (n, f) = params.reserve();
                        x.with_reserve(n, f)
                    })
                    .unwrap_or(*params),
                None => *params,
            }
            .at_priority(priority);
            let current = state_as!(state, Lease);
            let (o, s) = lease::acquire(&p, current.as_ref(), now, id);
            (o.decision, s.map(put_lease))
        }
        Limit::Breaker(b) => {
            // As BREAKER.ALLOW: only a half-open probe writes.
            let (o, s) = breaker::allow(&b.params, state_as!(state, Breaker), now);
            let w = s.map(|s| {
                let at = Some(breaker::expires_at(&b.params, &s)).filter(|t| *t != Nanos::MAX);
                StateWrite::Put(RuleState::Breaker(s), at)
            });
            (o.decision, w)
        }
    }
}

/// The state as it stands: a zero-unit look (a lease rule's free slots).
fn view(limit: &Limit, state: Option<&RuleState>, now: Nanos) -> Decision {
    match limit {
        Limit::Lease { params, .. } => {
            let current = state_as!(state, Lease);
            let held = lease::count(current.as_ref(), now);
            let reset = current
                .as_ref()
                .map_or(Nanos::ZERO, |s| lease::expires_at(s).saturating_sub(now));
            Decision::allow(params.limit(), params.limit().saturating_sub(held), reset)
        }
        _ => take(limit, state, now, 0, (PEEK_ID, None, Priority::Normal)).0,
    }
}

/// Decides a request over `rules` (with their current `states`, same order). `warn` is the
/// policy's default threshold. See the module docs for how the rules combine.
pub fn decide(
    rules: &[Applied<'_>],
    states: &[Option<RuleState>],
    demand: &Demand,
    now: Nanos,
    mode: Mode,
    warn: Option<Fraction>,
) -> Verdict {
    let (lease_id, lease_ttl, status) = match mode {
        Mode::Charge {
            lease_id,
            lease_ttl,
        } => (lease_id, lease_ttl, false),
        Mode::Status => (PEEK_ID, None, true),
    };
    let mut out = Verdict {
        allowed: true,
        denied_by: None,
        retry_after: None,
        delay: Nanos::ZERO,
        rules: Vec::with_capacity(rules.len()),
        lease: None,
    };
    let mut never = false;
    let mut longest = Nanos::ZERO;
    for (i, a) in rules.iter().enumerate() {
        let state = states.get(i).and_then(Option::as_ref);
        let units = units(a.rule.measure, demand);
        let (mut decision, mut write) = take(
            &a.rule.limit,
            state,
            now,
            units,
            (lease_id, lease_ttl, demand.priority),
        );
        // A breaker counts nothing: passing it is not a charge.
        let mut charged = if matches!(a.rule.limit, Limit::Breaker(_)) {
            0
        } else {
            units
        };
        let mut overage = 0;
        if !decision.allowed {
            if let Some(g) = &a.rule.graced {
                // The grace admits past the limit, up to the graced limit, on the rule's own
                // state: the overage is what this leaves used beyond the limit.
                let (gd, gw) = take(g, state, now, units, (lease_id, lease_ttl, demand.priority));
                if gd.allowed {
                    overage = gd
                        .limit
                        .saturating_sub(gd.remaining)
                        .saturating_sub(decision.limit);
                    decision = Decision {
                        allowed: true,
                        limit: decision.limit,
                        remaining: 0,
                        retry_after: None,
                        reset_after: gd.reset_after,
                    };
                    write = gw;
                }
            }
        }
        let outcome = if decision.allowed {
            Outcome::Pass
        } else {
            match (a.rule.action, decision.retry_after) {
                (Action::Log, _) => {
                    write = None;
                    charged = 0;
                    Outcome::Log
                }
                (Action::Slowdown, Some(wait)) if a.rule.max_delay.is_none_or(|m| wait <= m) => {
                    // Charged as of the end of the wait, when the request will go ahead.
                    let at = now.saturating_add(wait);
                    let (later, w) = take(
                        &a.rule.limit,
                        state,
                        at,
                        units,
                        (lease_id, lease_ttl, demand.priority),
                    );
                    if later.allowed {
                        write = w;
                        decision.remaining = later.remaining;
                        Outcome::Slowdown(wait)
                    } else {
                        Outcome::Block
                    }
                }
                _ => Outcome::Block,
            }
        };
        match outcome {
            Outcome::Block => {
                out.allowed = false;
                out.denied_by.get_or_insert(i);
                match decision.retry_after {
                    Some(r) => longest = longest.max(r),
                    None => never = true,
                }
                write = None;
            }
            Outcome::Slowdown(wait) => out.delay = out.delay.max(wait),
            Outcome::Pass | Outcome::Log => {}
        }
        if status {
            // Report the state as it is; keep the hypothetical admission and retry.
            let now_view = view(&a.rule.limit, state, now);
            decision.remaining = now_view.remaining;
            decision.reset_after = now_view.reset_after;
            decision.limit = now_view.limit;
            write = None;
            charged = 0;
        }
        out.rules.push(RuleResult {
            decision,
            outcome,
            charged: if matches!(outcome, Outcome::Block) {
                0
            } else {
                charged
            },
            write,
            warned: false,
            overage: if status { 0 } else { overage },
        });
    }
    if !out.allowed {
        out.delay = Nanos::ZERO;
        out.retry_after = (!never).then_some(longest);
        for (i, r) in out.rules.iter_mut().enumerate() {
            if matches!(r.outcome, Outcome::Pass | Outcome::Slowdown(_)) && !status {
                // Not charged after all: report the state as it stands.
                let state = states.get(i).and_then(Option::as_ref);
                let now_view = view(&rules[i].rule.limit, state, now);
                r.decision.remaining = now_view.remaining;
                r.decision.reset_after = now_view.reset_after;
            }
            r.write = None;
            r.charged = 0;
            r.overage = 0;
        }
    }
    for (a, r) in rules.iter().zip(&mut out.rules) {
        let d = &r.decision;
        // A breaker's probes are no budget to warn about.
        r.warned = !matches!(a.rule.limit, Limit::Breaker(_))
            && a.rule
                .warn
                .or(warn)
                .is_some_and(|f| f.reached(d.limit.saturating_sub(d.remaining), d.limit));
    }
    if out.allowed && !status {
        let granted = rules
            .iter()
            .zip(&out.rules)
            .any(|(a, r)| matches!(a.rule.limit, Limit::Lease { .. }) && r.outcome != Outcome::Log);
        if granted {
            let ttl = lease_ttl.unwrap_or_else(|| {
                rules
                    .iter()
                    .find_map(|a| match &a.rule.limit {
                        Limit::Lease { ttl, .. } => Some(*ttl),
                        _ => None,
                    })
                    .unwrap_or(Nanos::ZERO)
            });
            out.lease = Some(Lease {
                id: lease_id,
                expires_at: now.saturating_add(out.delay).saturating_add(ttl),
            });
        }
    }
    out
}

/// Changes one rule's state by `delta` units without deciding (a reservation's settle or
/// cancel): a charge records reality even past the limit; a refund never goes below zero.
/// A lease rule releases `lease` when `release` is set. Returns the write, or `None` when
/// nothing changes.
pub fn adjust(
    limit: &Limit,
    state: Option<&RuleState>,
    now: Nanos,
    delta: i64,
    lease: Option<LeaseId>,
    release: bool,
) -> Option<StateWrite> {
    let existed = state.is_some();
    let gone = || existed.then_some(StateWrite::Delete);
    match limit {
        Limit::Lease { .. } => {
            let id = lease.filter(|_| release)?;
            let current = state_as!(state, Lease);
            let (_, s) = lease::release(current.as_ref(), now, id);
            s.map(put_lease)
        }
        Limit::Breaker(_) => None,
        _ if delta == 0 => None,
        Limit::Rate { params, .. } => {
            match rate::adjust(params, gcra_state(params, state, now), now, delta) {
                Some(s) => Some(put_gcra(params, s)),
                None => gone(),
            }
        }
        Limit::Window { params, .. } => {
            match window::adjust(params, state_as!(state, Window), now, delta) {
                Some(s) => Some(StateWrite::Put(
                    RuleState::Window(s),
                    Some(window::expires_at(params, &s)),
                )),
                None => gone(),
            }
        }
        Limit::Quota { params, .. } => {
            match quota::adjust(params, state_as!(state, Quota), now, delta) {
                Some(s) => Some(StateWrite::Put(
                    RuleState::Quota(s),
                    Some(quota::expires_at(params, &s)),
                )),
                None => gone(),
            }
        }
        Limit::Cost { params, .. } => {
            let (_, s) = cost::take(params, state_as!(state, Cost), now, Amount(delta), true);
            s.map(|s| put_cost(params, s))
        }
    }
}

/// The state after `write` (or unchanged), for reporting.
pub fn after<'a>(
    state: Option<&'a RuleState>,
    write: Option<&'a StateWrite>,
) -> Option<&'a RuleState> {
    match write {
        Some(StateWrite::Put(s, _)) => Some(s),
        Some(StateWrite::Delete) => None,
        None => state,
    }
}

/// The rule's state as it stands at `now` (remaining, reset), for replies after a settle.
pub fn look(limit: &Limit, state: Option<&RuleState>, now: Nanos) -> Decision {
    view(limit, state, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::model::{split_words, Policy};
    use bytes::Bytes;
    use proptest::prelude::*;

    const T0: Nanos = Nanos(1_767_225_600 * Nanos::PER_SEC);

    fn policy(s: &str) -> Policy {
        let w: Vec<Bytes> = split_words(s)
            .unwrap()
            .into_iter()
            .map(Bytes::from)
            .collect();
        Policy::parse(b"p", &w).unwrap()
    }

    static NEXT_LEASE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(7);

    /// Runs a check and applies its writes when admitted.
    fn check(p: &Policy, states: &mut Vec<Option<RuleState>>, d: Demand, now: Nanos) -> Verdict {
        let rules = p.body.applicable(None);
        states.resize(rules.len(), None);
        let id = NEXT_LEASE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mode = Mode::Charge {
            lease_id: LeaseId(id),
            lease_ttl: None,
        };
        let v = decide(&rules, states, &d, now, mode, p.body.warn);
        if v.allowed {
            for (s, r) in states.iter_mut().zip(&v.rules) {
                match &r.write {
                    Some(StateWrite::Put(n, _)) => *s = Some(n.clone()),
                    Some(StateWrite::Delete) => *s = None,
                    None => {}
                }
            }
        }
        v
    }

    fn ms(n: u64) -> Nanos {
        Nanos::from_millis(n)
    }

    #[test]
    fn every_rule_admits_or_nothing_is_charged() {
        let p = policy("RATE 3/1s QUOTA 4/day");
        let mut st = Vec::new();
        let one = Demand::default();
        // (label, at ms, allowed, denied_by, retry ms, remaining of each rule)
        type Case = (
            &'static str,
            u64,
            bool,
            Option<usize>,
            Option<u64>,
            [u64; 2],
        );
        let cases: &[Case] = &[
            ("first", 0, true, None, None, [2, 3]),
            ("second", 0, true, None, None, [1, 2]),
            ("third", 0, true, None, None, [0, 1]),
            ("rate spent", 0, false, Some(0), Some(334), [0, 1]),
            ("rate refilled", 400, true, None, None, [0, 0]),
            (
                "quota spent",
                5000,
                false,
                Some(1),
                Some(86_395_000),
                [3, 0],
            ),
        ];
        for &(label, at, allowed, denied_by, retry, remaining) in cases {
            let v = check(&p, &mut st, one, T0.saturating_add(ms(at)));
            assert_eq!(v.allowed, allowed, "{label}");
            assert_eq!(v.denied_by, denied_by, "{label}");
            assert_eq!(v.retry_after.map(|r| r.as_millis_ceil()), retry, "{label}");
            let got: Vec<u64> = v.rules.iter().map(|r| r.decision.remaining).collect();
            assert_eq!(got, remaining, "{label}");
        }
    }

    #[test]
    fn log_rules_admit_and_slowdown_rules_delay() {
        let p = policy("RATE 1/1s ACTION slowdown MAXDELAY 2s WINDOW 1/1h ACTION log");
        let mut st = Vec::new();
        let v = check(&p, &mut st, Demand::default(), T0);
        assert_eq!((v.allowed, v.action()), (true, "allow"));
        let v = check(&p, &mut st, Demand::default(), T0);
        assert_eq!(
            (v.allowed, v.action(), v.delay),
            (true, "slowdown", ms(1000))
        );
        assert_eq!(v.rules[1].outcome, Outcome::Log);
        // The slowed rule was charged as of T0 + 1 s: the next one waits 2 s.
        let v = check(&p, &mut st, Demand::default(), T0);
        assert_eq!((v.allowed, v.delay), (true, ms(2000)));
        // A third queued request would wait 3 s, over MAXDELAY: blocked, retry when 1 s fits.
        let v = check(&p, &mut st, Demand::default(), T0);
        assert_eq!(
            (v.allowed, v.action(), v.retry_after),
            (false, "block", Some(ms(3000)))
        );
    }

    #[test]
    fn tokens_and_cost_rules_take_the_demand_and_warn() {
        let p = policy("WARN 0.5 TOKENS 100/1m COST 1.00/day WARN 0.9 LEASE 1");
        let mut st = Vec::new();
        let d = Demand {
            tokens: 60,
            cost: Amount(950_000),
            priority: Default::default(),
        };
        let v = check(&p, &mut st, d, T0);
        assert!(v.allowed);
        let warned: Vec<bool> = v.rules.iter().map(|r| r.warned).collect();
        assert_eq!(
            warned,
            [true, true, true],
            "60% of tokens, 95% of cost, 1 of 1 lease"
        );
        assert_eq!(
            v.lease.map(|l| l.expires_at),
            Some(T0.saturating_add(ms(60_000)))
        );
        let v = check(
            &p,
            &mut st,
            Demand {
                tokens: 10,
                cost: Amount(1),
                priority: Default::default(),
            },
            T0,
        );
        assert_eq!(v.denied_by, Some(2), "the lease is held");
        assert_eq!(v.rules[0].charged, 0, "nothing charged on a denial");
    }

    #[test]
    fn status_reports_the_state_without_the_hypothetical_charge() {
        let p = policy("RATE 2/1s LEASE 1");
        let mut st = Vec::new();
        check(&p, &mut st, Demand::default(), T0);
        let rules = p.body.applicable(None);
        let v = decide(&rules, &st, &Demand::default(), T0, Mode::Status, None);
        assert!(!v.allowed, "the lease is held");
        assert_eq!(v.rules[0].decision.remaining, 1);
        assert_eq!(v.rules[1].decision.remaining, 0);
        assert!(v.rules.iter().all(|r| r.write.is_none()));
    }

    #[test]
    fn adjust_refunds_and_charges_past_the_limit() {
        let p = policy("TOKENS 100/1m TOKENS WINDOW 100/1m TOKENS 100/day COST 1/day");
        let mut st = Vec::new();
        check(
            &p,
            &mut st,
            Demand {
                tokens: 80,
                cost: Amount(800_000),
                priority: Default::default(),
            },
            T0,
        );
        let rules = p.body.applicable(None);
        for (i, a) in rules.iter().enumerate() {
            let delta = if i == 3 { 500_000 } else { 50 };
            let w = adjust(&a.rule.limit, st[i].as_ref(), T0, delta, None, false);
            let d = look(&a.rule.limit, after(st[i].as_ref(), w.as_ref()), T0);
            assert_eq!(d.remaining, 0, "rule {i}: charged past the limit");
            let w2 = adjust(
                &a.rule.limit,
                after(st[i].as_ref(), w.as_ref()),
                T0,
                -delta * 2,
                None,
                false,
            );
            let d = look(
                &a.rule.limit,
                after(after(st[i].as_ref(), w.as_ref()), w2.as_ref()),
                T0,
            );
            let want = if i == 3 { 700_000 } else { 70 };
            assert_eq!(d.remaining, want, "rule {i}: refunded");
        }
    }

    proptest! {
        /// A refused request charges no rule, and an admitted one never leaves a blocking rule
        /// over its limit.
        #[test]
        fn a_denial_writes_nothing(
            steps in proptest::collection::vec((0u64..2_000, 0u64..40, 0i64..400_000), 1..60)
        ) {
            let p = policy("RATE 5/1s TOKENS 100/1m TOKENS QUOTA 300/hour COST 1/hour LEASE 3 TTL 2s");
            let mut st = Vec::new();
            let mut now = T0;
            for (dt, tokens, micros) in steps {
                now = now.saturating_add(ms(dt));
                let before = st.clone();
                let v = check(&p, &mut st, Demand { tokens, cost: Amount(micros), priority: Default::default() }, now);
                if !v.allowed {
                    prop_assert_eq!(&st, &before);
                    prop_assert!(v.rules.iter().all(|r| r.write.is_none() && r.charged == 0));
                }
            }
        }
    }
}
