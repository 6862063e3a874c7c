//! The limiter families as engine calls: each method reads the key's state under its shard
//! lock, runs the family's pure transition ([`crate::limiter`]), writes the new state (or
//! none) before the lock drops, counts the outcome and emits the family's events. The RESP
//! commands and the typed [`Engine`](super::Engine) methods both call these; they add parsing
//! and rendering, nothing else.
//!
//! A key holding another kind of value is [`Error::WrongType`] and nothing changes.

use std::borrow::Cow;
use std::sync::atomic::Ordering;

use crate::clock::Nanos;
use crate::limiter::breaker::{
    self, AllowOutcome, BreakerParams, BreakerState, BreakerStatus, Phase,
};
use crate::limiter::cost::{self, Amount, CostOutcome, CostParams, CostState};
use crate::limiter::decision::Decision;
use crate::limiter::gcra::{self, GcraDecision, GcraParams, GcraState};
use crate::limiter::lease::{self, AcquireOutcome, LeaseId, LeaseParams, LeaseState};
use crate::limiter::quota::{self, QuotaOutcome, QuotaParams, QuotaState};
use crate::limiter::rate::{self, RateParams};
use crate::limiter::window::{self, Counter, WindowParams, WindowState};
use crate::policy::events::Event;
use crate::store::{Change, Entry, Value};

use super::{Call, Error};

/// Whether a call charges (stores the new state) or only answers what a charge would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// Admit and charge (TAKE, INCRBY, ALLOW).
    Charge,
    /// Answer exactly what `Charge` would, changing nothing (PEEK).
    Peek,
}

impl Take {
    fn charges(self) -> bool {
        self == Take::Charge
    }
}

/// A limiter state kind stored as one [`Value`] variant.
pub trait StateKind: Clone {
    /// The state inside `v` (borrowed where it is stored as itself), or `None` if `v` is
    /// another kind (WRONGTYPE).
    fn from_value(v: &Value) -> Option<Cow<'_, Self>>;
    /// Wraps the state for storage.
    fn into_value(self) -> Value;
}

// A GCRA state is stored as its bare TAT, or boxed with its emission interval (see
// `store::entry::Value::gcra`): read by value.
impl StateKind for GcraState {
    fn from_value(v: &Value) -> Option<Cow<'_, Self>> {
        v.as_gcra().map(Cow::Owned)
    }
    fn into_value(self) -> Value {
        Value::gcra(self)
    }
}

macro_rules! state_kind {
    // States wider than 8 bytes are boxed in the keyspace (see `store::entry`).
    ($ty:ty, $variant:ident, boxed) => {
        impl StateKind for $ty {
            fn from_value(v: &Value) -> Option<Cow<'_, Self>> {
                match v {
                    Value::$variant(s) => Some(Cow::Borrowed(&**s)),
                    _ => None,
                }
            }
            fn into_value(self) -> Value {
                Value::$variant(Box::new(self))
            }
        }
    };
}

state_kind!(WindowState, Window, boxed);
state_kind!(QuotaState, Quota, boxed);
state_kind!(CostState, Cost, boxed);
state_kind!(LeaseState, Lease, boxed);
state_kind!(BreakerState, Breaker, boxed);

/// What a transition does to the stored state.
#[derive(Debug, Clone, PartialEq)]
pub enum Write<S> {
    /// Nothing (a peek, a denial, a read).
    Keep,
    /// Store this state; the key expires at the given instant (`None` = never).
    Put(S, Option<Nanos>),
    /// Delete the key (the state is fresh again).
    Delete,
}

/// A WINDOW decision and the weighted estimate after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowOutcome {
    /// The uniform decision.
    pub decision: Decision,
    /// `curr + ceil(prev · (W - e) / W)` after this decision, with the new counts if admitted.
    pub estimate: u64,
}

/// A LEASE.ACQUIRE outcome and the live leases after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acquired {
    /// The decision and the lease granted, if any.
    pub outcome: AcquireOutcome,
    /// Live leases after the call.
    pub holders: u64,
}

/// The GCRA bucket is full (indistinguishable from a missing key) at its TAT, so it expires
/// then.
fn gcra_expiry(state: &GcraState) -> Option<Nanos> {
    Some(state.tat).filter(|t| *t != Nanos::MAX)
}

/// Stores a lease state after a transition that changed it: deleted with its last lease.
fn lease_write(state: LeaseState) -> Write<LeaseState> {
    if state.leases.is_empty() {
        Write::Delete
    } else {
        let at = lease::expires_at(&state);
        Write::Put(state, Some(at))
    }
}

/// Stores a breaker state: a closed one expires once its counts are empty (at once if they
/// already are, which deletes the key); open and half-open ones never expire by themselves.
fn breaker_write(p: &BreakerParams, state: BreakerState) -> Write<BreakerState> {
    match breaker::expires_at(p, &state) {
        Nanos::MAX => Write::Put(state, None),
        at => Write::Put(state, Some(at)),
    }
}

/// True when a COST state holds nothing: reading it is the same as a fresh key.
fn cost_is_empty(state: &CostState) -> bool {
    match *state {
        CostState::Calendar { spent, .. } => spent == 0,
        CostState::Rolling { prev, curr, .. } => prev == 0 && curr == 0,
    }
}

impl Call<'_, '_> {
    /// Runs `f` on the state at `key` (`None` when absent or expired) under the key's shard
    /// lock, applies the [`Write`] it returns before the lock drops, and returns its result. A
    /// key of another kind is `WRONGTYPE` and `f` is not called.
    pub fn transition<S: StateKind, R>(
        &mut self,
        key: &[u8],
        f: impl FnOnce(Option<S>) -> (R, Write<S>),
    ) -> Result<R, Error> {
        self.transition_ref(key, |s: Option<&S>| f(s.cloned()))
    }

    /// [`Call::transition`] for states that are costly to copy (LEASE's holder list): `f`
    /// borrows the stored state and builds the new one from it.
    pub fn transition_ref<S: StateKind, R>(
        &mut self,
        key: &[u8],
        f: impl FnOnce(Option<&S>) -> (R, Write<S>),
    ) -> Result<R, Error> {
        let now = self.now;
        // One lookup: the new state goes where the old one was read from.
        self.with_shard(key, |shard| {
            shard.update(key, now, |e| {
                let (result, write) = match e {
                    None => f(None),
                    Some(e) => match S::from_value(&e.value) {
                        Some(s) => f(Some(&*s)),
                        None => return (Err(Error::WrongType), Change::Keep),
                    },
                };
                let change = match write {
                    Write::Keep => Change::Keep,
                    Write::Delete => Change::Remove,
                    // An expiry already reached means the state is fresh: nothing to keep.
                    Write::Put(_, Some(at)) if at <= now => Change::Remove,
                    Write::Put(state, at) => {
                        Change::Put(Entry::with_expiry(state.into_value(), at))
                    }
                };
                (Ok(result), change)
            })
        })
    }

    /// GCRA (`CL.THROTTLE`, `GCRA`): takes `quantity` from the bucket at `key`; a quantity of
    /// 0 peeks. Denials and peeks write nothing; an admission stores the new TAT, which
    /// expires when the bucket is full again.
    pub fn throttle(
        &mut self,
        key: &[u8],
        params: &GcraParams,
        quantity: u64,
    ) -> Result<GcraDecision, Error> {
        let now = self.now;
        // One lookup: the new state overwrites the slot the old one was read from.
        let decision = self.with_shard(key, |s| {
            s.update(key, now, |e| {
                let state = match e.map(|e| &e.value) {
                    None => None,
                    Some(v @ (Value::Gcra(_) | Value::GcraRule(_))) => v.as_gcra(),
                    Some(_) => return (Err(Error::WrongType), Change::Keep),
                };
                let (decision, next) = gcra::take(params, state, now, quantity);
                // Denials and peeks leave the shard untouched (nothing to journal).
                let change = match next {
                    Some(next) => {
                        Change::Put(Entry::with_expiry(Value::gcra(next), gcra_expiry(&next)))
                    }
                    None => Change::Keep,
                };
                (Ok(decision), change)
            })
        })?;
        if quantity > 0 {
            self.count_outcome(decision.allowed);
        }
        Ok(decision)
    }

    /// RATE (`RATE.TAKE` / `RATE.PEEK`): a token bucket of `params`, taking `cost` units.
    pub fn rate(
        &mut self,
        key: &[u8],
        params: &RateParams,
        cost: u64,
        take: Take,
    ) -> Result<Decision, Error> {
        let now = self.now;
        let d = self.transition::<GcraState, _>(key, |state| {
            let (d, next) = rate::take(params, state, now, cost);
            let write = match next {
                Some(s) if take.charges() => Write::Put(s, gcra_expiry(&s)),
                _ => Write::Keep,
            };
            (d, write)
        })?;
        if take.charges() {
            self.count_outcome(d.allowed);
        }
        Ok(d)
    }

    /// WINDOW (`WINDOW.TAKE` / `WINDOW.PEEK`): a sliding window counter. A peek answers what
    /// the take would, from the same outcome.
    pub fn window(
        &mut self,
        key: &[u8],
        params: &WindowParams,
        cost: u64,
        take: Take,
    ) -> Result<WindowOutcome, Error> {
        let now = self.now;
        let w = params.window().0;
        let estimate = move |state: Option<WindowState>| {
            Counter::view(state.map(|s| (s.start.0, s.prev, s.curr)), w, now.0).estimate(w)
        };
        let out = self.transition::<WindowState, _>(key, |state| {
            let (decision, next) = window::take(params, state, now, cost);
            let out = WindowOutcome {
                decision,
                estimate: estimate(next.or(state)),
            };
            let write = match next {
                Some(s) if take.charges() => Write::Put(s, Some(window::expires_at(params, &s))),
                _ => Write::Keep,
            };
            (out, write)
        })?;
        if take.charges() {
            self.count_outcome(out.decision.allowed);
        }
        Ok(out)
    }

    /// QUOTA (`QUOTA.TAKE` / `QUOTA.PEEK`): a calendar-period quota.
    pub fn quota(
        &mut self,
        key: &[u8],
        params: &QuotaParams,
        cost: u64,
        take: Take,
    ) -> Result<QuotaOutcome, Error> {
        let now = self.now;
        let outcome = self.transition(key, |state: Option<QuotaState>| {
            let (outcome, next) = quota::take(params, state, now, cost);
            let write = match next {
                Some(s) if take.charges() => Write::Put(s, Some(quota::expires_at(params, &s))),
                _ => Write::Keep,
            };
            (outcome, write)
        })?;
        if take.charges() {
            self.count_outcome(outcome.decision.allowed);
        }
        Ok(outcome)
    }

    /// COST (`COST.INCRBY` / `COST.PEEK`): charges (or, negative, refunds) `amount` to a
    /// decimal budget; `force` records a charge even past the cap. A budget whose spend
    /// returns to zero is deleted.
    pub fn cost(
        &mut self,
        key: &[u8],
        params: &CostParams,
        amount: Amount,
        force: bool,
        take: Take,
    ) -> Result<CostOutcome, Error> {
        let now = self.now;
        let outcome = self.transition(key, |state: Option<CostState>| {
            let (outcome, next) = cost::take(params, state, now, amount, force);
            let write = match next {
                _ if !take.charges() => Write::Keep,
                None => Write::Keep,
                Some(s) if cost_is_empty(&s) => Write::Delete,
                Some(s) => Write::Put(s, Some(cost::expires_at(params, &s))),
            };
            (outcome, write)
        })?;
        if take.charges() {
            self.count_outcome(outcome.decision.allowed);
        }
        Ok(outcome)
    }

    /// A new lease id: unique across restarts (see [`super::Engine::next_lease_id`]).
    pub fn next_id(&self) -> u64 {
        self.engine.next_lease_id.fetch_add(1, Ordering::Relaxed)
    }

    /// `LEASE.ACQUIRE`: takes one of the key's slots for a new lease.
    pub fn lease_acquire(&mut self, key: &[u8], params: &LeaseParams) -> Result<Acquired, Error> {
        let id = LeaseId(self.next_id());
        let now = self.now;
        let acquired = self.transition_ref(key, |state: Option<&LeaseState>| {
            let (outcome, new) = lease::acquire(params, state, now, id);
            match new {
                Some(new) => {
                    let holders = lease::count(Some(&new), now);
                    (Acquired { outcome, holders }, lease_write(new))
                }
                None => {
                    let holders = lease::count(state, now);
                    (Acquired { outcome, holders }, Write::Keep)
                }
            }
        })?;
        self.count_outcome(acquired.outcome.decision.allowed);
        Ok(acquired)
    }

    /// `LEASE.PEEK`: the decision an acquire with `params` would get now, and the live leases.
    /// Without `ttl_known` (no TTL given), `reset_after` is the wait until the current leases
    /// have all expired.
    pub fn lease_peek(
        &mut self,
        key: &[u8],
        params: &LeaseParams,
        ttl_known: bool,
    ) -> Result<(Decision, u64), Error> {
        // An id no ACQUIRE ever receives (the counter starts near 2^51 and grows by one per
        // call), so a peek never finds it held and never gets the retried-ACQUIRE renewal.
        const PEEK_ID: LeaseId = LeaseId(u64::MAX);
        let now = self.now;
        let (mut decision, holders, current_reset) =
            self.transition_ref(key, |state: Option<&LeaseState>| {
                let (outcome, _) = lease::acquire(params, state, now, PEEK_ID);
                let holders = lease::count(state, now);
                let reset = state.map_or(Nanos::ZERO, |s| lease::expires_at(s).saturating_sub(now));
                ((outcome.decision, holders, reset), Write::Keep)
            })?;
        if !ttl_known {
            decision.reset_after = current_reset;
        }
        Ok((decision, holders))
    }

    /// `LEASE.RELEASE`: ends lease `id`; true if it was live. The key goes with its last lease.
    pub fn lease_release(&mut self, key: &[u8], id: LeaseId) -> Result<bool, Error> {
        let now = self.now;
        self.transition_ref(key, |state: Option<&LeaseState>| {
            let (change, new) = lease::release(state, now, id);
            (change.found, new.map_or(Write::Keep, lease_write))
        })
    }

    /// `LEASE.RENEW`: extends live lease `id` to `now + ttl` (never shortening it); true if it
    /// was live. An expired lease is not revived.
    pub fn lease_renew(&mut self, key: &[u8], id: LeaseId, ttl: Nanos) -> Result<bool, Error> {
        let now = self.now;
        self.transition_ref(key, |state: Option<&LeaseState>| {
            let (change, new) = lease::renew(state, now, id, ttl);
            (change.found, new.map_or(Write::Keep, lease_write))
        })
    }

    /// `LEASE.COUNT`: live leases on `key`.
    pub fn lease_count(&mut self, key: &[u8]) -> Result<u64, Error> {
        let now = self.now;
        self.transition_ref(key, |state: Option<&LeaseState>| {
            (lease::count(state, now), Write::Keep)
        })
    }

    /// Publishes a breaker's phase change, if it changed.
    fn breaker_event(&self, key: &[u8], from: Option<Phase>, to: Phase) {
        if let Some(from) = from.filter(|f| *f != to) {
            self.engine.emit(&Event::Breaker {
                at: self.now,
                key,
                from,
                to,
            });
        }
    }

    /// `BREAKER.ALLOW` / `BREAKER.PEEK`: whether a call may go ahead (a charge takes a
    /// half-open probe).
    pub fn breaker_allow(
        &mut self,
        key: &[u8],
        params: &BreakerParams,
        take: Take,
    ) -> Result<AllowOutcome, Error> {
        let now = self.now;
        let outcome = self.transition(key, |state: Option<BreakerState>| {
            let (outcome, new) = breaker::allow(params, state, now);
            let w = match new {
                Some(new) if take.charges() => breaker_write(params, new),
                _ => Write::Keep,
            };
            (outcome, w)
        })?;
        if take.charges() {
            self.count_outcome(outcome.decision.allowed);
            self.breaker_event(key, outcome.status.changed_from, outcome.status.phase);
        }
        Ok(outcome)
    }

    /// `BREAKER.REPORT`: records a call's outcome; the status after it.
    pub fn breaker_report(
        &mut self,
        key: &[u8],
        params: &BreakerParams,
        success: bool,
    ) -> Result<BreakerStatus, Error> {
        let now = self.now;
        let st = self.transition(key, |state: Option<BreakerState>| {
            let (st, new) = breaker::report(params, state, now, success);
            (st, new.map_or(Write::Keep, |s| breaker_write(params, s)))
        })?;
        self.breaker_event(key, st.changed_from, st.phase);
        Ok(st)
    }

    /// `BREAKER.STATE`: the status now; changes nothing.
    pub fn breaker_state(
        &mut self,
        key: &[u8],
        params: &BreakerParams,
    ) -> Result<BreakerStatus, Error> {
        let now = self.now;
        self.transition(key, |state: Option<BreakerState>| {
            (breaker::state_at(params, state, now), Write::Keep)
        })
    }

    /// `BREAKER.TRIP`: forces the breaker open for its cooldown; the status after it.
    pub fn breaker_trip(
        &mut self,
        key: &[u8],
        params: &BreakerParams,
    ) -> Result<BreakerStatus, Error> {
        let now = self.now;
        let (was, st) = self.transition(key, |state: Option<BreakerState>| {
            let was = breaker::state_at(params, state, now).phase;
            let open = breaker::trip(params, now);
            (
                (was, breaker::state_at(params, Some(open), now)),
                breaker_write(params, open),
            )
        })?;
        self.breaker_event(key, Some(was), st.phase);
        Ok(st)
    }

    /// `BREAKER.RESET`: forces the breaker closed (deletes the key); true if it existed.
    pub fn breaker_reset(&mut self, key: &[u8]) -> Result<bool, Error> {
        let now = self.now;
        let (existed, was) = self.transition(key, |state: Option<BreakerState>| {
            let existed = state.is_some();
            // The phase needs no parameters but the cooldown's end, which the state holds.
            let was = state.map(|s| match s {
                BreakerState::Closed { .. } => Phase::Closed,
                BreakerState::Open { until } if now < until => Phase::Open,
                _ => Phase::HalfOpen,
            });
            let w = if existed { Write::Delete } else { Write::Keep };
            ((existed, was), w)
        })?;
        self.breaker_event(key, was, Phase::Closed);
        Ok(existed)
    }
}
