//! LEASE: concurrency slots that expire, so a holder that dies never leaks one.
//!
//! Owns the pure transitions behind `LEASE.ACQUIRE`, `LEASE.RELEASE`, `LEASE.RENEW` and
//! `LEASE.COUNT`. Depends only on `clock`, `decision` and `units`: no I/O, no clock reads, no
//! id generation (the caller passes the new lease's id, so every transition is deterministic
//! and replays exactly).
//!
//! # Terms
//! - **Lease**: one held slot, `(id, expires_at)`. It is **live** while `now < expires_at`.
//! - **Limit**: the most live leases a key admits; given on every ACQUIRE, so lowering it
//!   never revokes live leases, it only blocks new ones until enough have ended.
//! - **TTL**: how long a lease lives after ACQUIRE or RENEW.
//!
//! Every transition first drops expired leases, so an expired lease frees its slot at exactly
//! its `expires_at`. A denial's `retry_after` is exact: the instant enough live leases have
//! expired for one more to fit (with no releases in between). The state is fresh (and may be
//! deleted) once its last lease expires. A clock stepping back only makes leases look younger,
//! so it never frees a slot.
//!
//! Transitions take the state by reference and return a new one only when something changed;
//! that allocates a vector of at most `limit + 1` entries, bounded by [`MAX_LIMIT`].

use crate::clock::Nanos;
use crate::limiter::decision::Decision;
use crate::limiter::units::{UnitError, MAX_DURATION};

/// The largest LIMIT accepted, which bounds a key's state to this many leases.
pub const MAX_LIMIT: u64 = 10_000;

/// A lease id, chosen by the caller (the command layer), unique per key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeaseId(pub u64);

/// One held slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// The lease's id.
    pub id: LeaseId,
    /// The instant the slot frees itself.
    pub expires_at: Nanos,
}

/// What the store keeps for a LEASE key: its leases, possibly including expired ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaseState {
    /// The leases, in acquisition order.
    pub leases: Vec<Lease>,
}

/// Why LEASE arguments were refused. `Display` is the reply text after `ERR `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseParamError {
    /// LIMIT was zero or above [`MAX_LIMIT`].
    #[error("limit must be between 1 and 10000")]
    LimitOutOfRange,
    /// TTL was zero or too long.
    #[error("ttl: {0}")]
    Ttl(UnitError),
    /// RESERVE was not below LIMIT.
    #[error("reserve must be less than the limit")]
    ReserveTooLarge,
}

/// A request's priority for a pool with a reserve (see [`LeaseParams::with_reserve`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub enum Priority {
    /// Batch work: uses only what is left above a reserve for normal or high.
    Low,
    /// The default.
    #[default]
    Normal,
    /// Interactive or paid work.
    High,
}

impl Priority {
    /// The lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
        }
    }

    /// Parses `high`, `normal` or `low` (any case).
    pub fn parse(w: &[u8]) -> Option<Priority> {
        [Priority::Low, Priority::Normal, Priority::High]
            .into_iter()
            .find(|p| w.eq_ignore_ascii_case(p.name().as_bytes()))
    }
}

/// Checked ACQUIRE parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseParams {
    limit: u64,
    ttl: Nanos,
    /// Slots only `reserved_for` and higher priorities may take (0: none).
    reserve: u64,
    reserved_for: Priority,
    /// The priority of the request these parameters decide.
    priority: Priority,
}

impl LeaseParams {
    /// At most `limit` (1..=[`MAX_LIMIT`]) live leases, each living `ttl` (non-zero, at most
    /// [`MAX_DURATION`]).
    pub fn new(limit: u64, ttl: Nanos) -> Result<LeaseParams, LeaseParamError> {
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(LeaseParamError::LimitOutOfRange);
        }
        Ok(LeaseParams {
            limit,
            ttl: check_ttl(ttl)?,
            reserve: 0,
            reserved_for: Priority::High,
            priority: Priority::Normal,
        })
    }

    /// The same pool keeping `reserve` of its slots for requests of priority `reserved_for`
    /// or higher: a lower-priority request is admitted only while fewer than
    /// `limit - reserve` leases are held. Errors: `reserve >= limit`.
    pub fn with_reserve(
        mut self,
        reserve: u64,
        reserved_for: Priority,
    ) -> Result<LeaseParams, LeaseParamError> {
        if reserve >= self.limit {
            return Err(LeaseParamError::ReserveTooLarge);
        }
        self.reserve = reserve;
        self.reserved_for = reserved_for;
        Ok(self)
    }

    /// The same parameters deciding a request of `priority`.
    pub fn at_priority(mut self, priority: Priority) -> LeaseParams {
        self.priority = priority;
        self
    }

    /// The reserve and whom it is for.
    pub fn reserve(&self) -> (u64, Priority) {
        (self.reserve, self.reserved_for)
    }

    /// The slots the request's priority may fill: the limit, or `limit - reserve` below the
    /// reserve's priority.
    pub fn cap(&self) -> u64 {
        if self.priority < self.reserved_for {
            self.limit - self.reserve
        } else {
            self.limit
        }
    }

    /// The limit.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The TTL.
    pub fn ttl(&self) -> Nanos {
        self.ttl
    }
}

/// A TTL in `1 ..= MAX_DURATION` ns.
pub fn check_ttl(ttl: Nanos) -> Result<Nanos, LeaseParamError> {
    match ttl {
        Nanos::ZERO => Err(LeaseParamError::Ttl(UnitError::Zero)),
        t if t > MAX_DURATION => Err(LeaseParamError::Ttl(UnitError::OutOfRange)),
        t => Ok(t),
    }
}

/// The outcome of [`acquire`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcquireOutcome {
    /// The shared fields: `remaining` is free slots after this call, `reset_after` the wait
    /// until every lease has expired.
    pub decision: Decision,
    /// The lease granted (or renewed, when the id was already held), if allowed.
    pub lease: Option<Lease>,
}

/// The outcome of [`release`] and [`renew`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseChange {
    /// Whether the id named a live lease.
    pub found: bool,
    /// Live leases after the call.
    pub count: u64,
    /// The renewed lease, for [`renew`].
    pub lease: Option<Lease>,
}

/// The instant the state is fresh: its last lease's expiry (zero when empty).
pub fn expires_at(state: &LeaseState) -> Nanos {
    state
        .leases
        .iter()
        .map(|l| l.expires_at)
        .max()
        .unwrap_or(Nanos::ZERO)
}

/// Live leases at `now`.
pub fn count(state: Option<&LeaseState>, now: Nanos) -> u64 {
    state.map_or(0, |s| live(s, now).count() as u64)
}

fn live(state: &LeaseState, now: Nanos) -> impl Iterator<Item = &Lease> + '_ {
    state.leases.iter().filter(move |l| l.expires_at > now)
}

/// The live leases, with `id`'s (if live) replaced by `with`.
fn rebuild(state: &LeaseState, now: Nanos, id: LeaseId, with: Option<Lease>) -> LeaseState {
    // One allocation: room for the replacement lease up front.
    let mut leases = Vec::with_capacity(state.leases.len() + 1);
    leases.extend(live(state, now).filter(|l| l.id != id).copied());
    leases.extend(with);
    LeaseState { leases }
}

/// Tries to take a slot for lease `id` at `now`.
///
/// If `id` is already live, the call renews it instead of taking a second slot (a retried
/// ACQUIRE is harmless). Returns the state to write when a lease was granted. Peek is the same
/// call with the state discarded.
pub fn acquire(
    params: &LeaseParams,
    state: Option<&LeaseState>,
    now: Nanos,
    id: LeaseId,
) -> (AcquireOutcome, Option<LeaseState>) {
    let empty = LeaseState::default();
    let state = state.unwrap_or(&empty);
    let held = live(state, now).find(|l| l.id == id).map(|l| l.expires_at);
    let others = live(state, now).filter(|l| l.id != id).count() as u64;
    let last_expiry = |s: &LeaseState| expires_at(s).saturating_sub(now);
    // The slots this request's priority may fill (a reserve keeps the rest for others).
    let cap = params.cap();
    if held.is_some() || others < cap {
        // As with RENEW, a retried ACQUIRE never shortens the lease.
        let lease = Lease {
            id,
            expires_at: held
                .unwrap_or(Nanos::ZERO)
                .max(now.saturating_add(params.ttl)),
        };
        let new = rebuild(state, now, id, Some(lease));
        let decision = Decision::allow(
            params.limit,
            cap.saturating_sub(others + 1),
            last_expiry(&new),
        );
        (
            AcquireOutcome {
                decision,
                lease: Some(lease),
            },
            Some(new),
        )
    } else {
        // One more fits once `others - cap + 1` leases have expired: the
        // (others - cap)-th earliest expiry, counting from zero.
        let mut expiries: Vec<Nanos> = live(state, now).map(|l| l.expires_at).collect();
        expiries.sort_unstable();
        let free_at = expiries[(others - cap) as usize];
        let decision = Decision::deny(
            params.limit,
            0,
            Some(free_at.saturating_sub(now)),
            last_expiry(state),
        );
        (
            AcquireOutcome {
                decision,
                lease: None,
            },
            None,
        )
    }
}

/// Ends lease `id`. Idempotent: an unknown or expired id changes nothing but the pruning of
/// expired leases. Returns the state to write when anything changed (possibly empty, which
/// [`expires_at`] reports as already fresh).
pub fn release(
    state: Option<&LeaseState>,
    now: Nanos,
    id: LeaseId,
) -> (LeaseChange, Option<LeaseState>) {
    change(state, now, id, |_| None)
}

/// Extends live lease `id` to `now + ttl` (never shortening it). An expired or unknown id is
/// not revived: the holder must ACQUIRE again, since its slot may have been taken.
pub fn renew(
    state: Option<&LeaseState>,
    now: Nanos,
    id: LeaseId,
    ttl: Nanos,
) -> (LeaseChange, Option<LeaseState>) {
    change(state, now, id, |l| {
        Some(Lease {
            id,
            expires_at: l.expires_at.max(now.saturating_add(ttl)),
        })
    })
}

fn change(
    state: Option<&LeaseState>,
    now: Nanos,
    id: LeaseId,
    update: impl Fn(&Lease) -> Option<Lease>,
) -> (LeaseChange, Option<LeaseState>) {
    let Some(state) = state else {
        let nothing = LeaseChange {
            found: false,
            count: 0,
            lease: None,
        };
        return (nothing, None);
    };
    let current = live(state, now).find(|l| l.id == id).copied();
    let lease = current.as_ref().and_then(&update);
    let new = rebuild(state, now, id, lease);
    let outcome = LeaseChange {
        found: current.is_some(),
        count: new.leases.len() as u64,
        lease,
    };
    let changed = new != *state;
    (outcome, changed.then_some(new))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// A pool with a reserve never holds more than its limit, and a request below the
        /// reserve's priority is admitted only while more than the reserve is free.
        #[test]
        fn a_reserve_is_never_eaten_by_lower_priorities(
            limit in 1u64..12,
            reserve_frac in 0u64..100,
            normal_reserve in any::<bool>(),
            ops in proptest::collection::vec((0u8..4, 0u64..1_500), 1..80),
        ) {
            let reserve = (limit - 1) * reserve_frac / 100;
            let for_ = if normal_reserve { Priority::Normal } else { Priority::High };
            let base = LeaseParams::new(limit, Nanos::from_secs(2))
                .unwrap()
                .with_reserve(reserve, for_)
                .unwrap();
            let mut state: Option<LeaseState> = None;
            let mut now = Nanos::from_secs(1_000);
            let mut next = 1;
            let mut held_ids: Vec<LeaseId> = Vec::new();
            for (op, dt) in ops {
                now = now.saturating_add(Nanos::from_millis(dt));
                if op == 3 {
                    if let Some(id) = held_ids.pop() {
                        state = release(state.as_ref(), now, id).1.or(state);
                    }
                    continue;
                }
                let prio = [Priority::Low, Priority::Normal, Priority::High][op as usize];
                let before = count(state.as_ref(), now);
                let id = LeaseId(next);
                next += 1;
                let (o, new) = acquire(&base.at_priority(prio), state.as_ref(), now, id);
                if o.lease.is_some() {
                    held_ids.push(id);
                    let cap = if prio < for_ { limit - reserve } else { limit };
                    prop_assert!(before < cap, "{prio:?} admitted with {before} held, cap {cap}");
                    state = new;
                }
                prop_assert!(count(state.as_ref(), now) <= limit);
            }
        }
    }

    const T0: Nanos = Nanos(1_700_000_000 * Nanos::PER_SEC);

    fn s(n: u64) -> Nanos {
        T0.saturating_add(Nanos::from_secs(n))
    }

    #[derive(Debug, Clone, Copy)]
    enum Op {
        Acquire(u64),
        Release(u64),
        Renew(u64),
    }

    /// Applies one op, keeping the new state; returns whether an acquire was granted.
    fn apply(p: &LeaseParams, state: &mut Option<LeaseState>, now: Nanos, op: Op) -> bool {
        let (granted, new) = match op {
            Op::Acquire(id) => {
                let (o, new) = acquire(p, state.as_ref(), now, LeaseId(id));
                (o.decision.allowed, new)
            }
            Op::Release(id) => (false, release(state.as_ref(), now, LeaseId(id)).1),
            Op::Renew(id) => (false, renew(state.as_ref(), now, LeaseId(id), p.ttl()).1),
        };
        if new.is_some() {
            *state = new;
        }
        granted
    }

    #[test]
    fn slots_are_taken_released_and_freed_by_expiry() {
        // Limit 2, TTL 30 s.
        let p = LeaseParams::new(2, Nanos::from_secs(30)).unwrap();
        // (label, at s, op, granted, count after)
        let cases = [
            ("first slot", 0, Op::Acquire(1), true, 1),
            ("second slot", 10, Op::Acquire(2), true, 2),
            ("full", 11, Op::Acquire(3), false, 2),
            (
                "retried acquire renews, no new slot",
                12,
                Op::Acquire(2),
                true,
                2,
            ),
            ("release frees a slot", 13, Op::Release(1), false, 1),
            ("release again is harmless", 14, Op::Release(1), false, 1),
            ("third holder fits now", 15, Op::Acquire(3), true, 2),
            ("renew extends 2 to 50 s", 20, Op::Renew(2), false, 2),
            ("3 expired at 45 s on its own", 45, Op::Acquire(4), true, 2),
            (
                "renewing an expired lease fails",
                80,
                Op::Renew(3),
                false,
                0,
            ),
        ];
        let mut state = None;
        for (label, at, op, granted, n) in cases {
            assert_eq!(apply(&p, &mut state, s(at), op), granted, "{label}");
            assert_eq!(count(state.as_ref(), s(at)), n, "{label}");
        }
    }

    #[test]
    fn denial_waits_for_the_earliest_expiry() {
        let p = LeaseParams::new(2, Nanos::from_secs(30)).unwrap();
        let mut state = None;
        apply(&p, &mut state, s(0), Op::Acquire(1));
        apply(&p, &mut state, s(10), Op::Acquire(2));
        let (o, new) = acquire(&p, state.as_ref(), s(12), LeaseId(3));
        assert_eq!(new, None);
        let want = Decision::deny(2, 0, Some(Nanos::from_secs(18)), Nanos::from_secs(28));
        assert_eq!(o.decision, want);
        // Lowering the limit to 1 needs both leases gone but one: the later expiry.
        let one = LeaseParams::new(1, Nanos::from_secs(30)).unwrap();
        let (o, _) = acquire(&one, state.as_ref(), s(12), LeaseId(3));
        assert_eq!(o.decision.retry_after, Some(Nanos::from_secs(28)));
    }

    #[test]
    fn state_expires_with_its_last_lease() {
        let p = LeaseParams::new(3, Nanos::from_secs(30)).unwrap();
        let mut state = None;
        apply(&p, &mut state, s(0), Op::Acquire(1));
        apply(&p, &mut state, s(5), Op::Acquire(2));
        assert_eq!(expires_at(state.as_ref().unwrap()), s(35));
        apply(&p, &mut state, s(6), Op::Release(2));
        assert_eq!(expires_at(state.as_ref().unwrap()), s(30));
        apply(&p, &mut state, s(7), Op::Release(1));
        assert_eq!(
            expires_at(state.as_ref().unwrap()),
            Nanos::ZERO,
            "empty is fresh"
        );
    }

    #[test]
    fn bad_parameters_are_errors() {
        let cases = [
            (
                "zero limit",
                LeaseParams::new(0, Nanos(1)),
                LeaseParamError::LimitOutOfRange,
            ),
            (
                "huge limit",
                LeaseParams::new(MAX_LIMIT + 1, Nanos(1)),
                LeaseParamError::LimitOutOfRange,
            ),
            (
                "zero ttl",
                LeaseParams::new(1, Nanos::ZERO),
                LeaseParamError::Ttl(UnitError::Zero),
            ),
            (
                "huge ttl",
                LeaseParams::new(1, Nanos::MAX),
                LeaseParamError::Ttl(UnitError::OutOfRange),
            ),
        ];
        for (label, got, want) in cases {
            assert_eq!(got, Err(want), "{label}");
        }
        assert_eq!(
            LeaseParamError::Ttl(UnitError::Zero).to_string(),
            "ttl: value must be greater than zero"
        );
    }

    fn scenario() -> impl Strategy<Value = (LeaseParams, Vec<(u64, Op)>)> {
        let op = prop_oneof![
            3 => (0u64..8).prop_map(Op::Acquire),
            1 => (0u64..8).prop_map(Op::Release),
            1 => (0u64..8).prop_map(Op::Renew),
        ];
        (1u64..=4, 1u64..=20).prop_flat_map(move |(limit, ttl_s)| {
            let p = LeaseParams::new(limit, Nanos::from_secs(ttl_s)).unwrap();
            let ops = prop::collection::vec((0u64..=10 * Nanos::PER_SEC, op.clone()), 1..60);
            (Just(p), ops)
        })
    }

    proptest! {
        #[test]
        fn live_leases_never_exceed_the_limit((p, ops) in scenario()) {
            let mut state = None;
            let mut now = T0;
            for (dt, op) in ops {
                now = now.saturating_add(Nanos(dt));
                apply(&p, &mut state, now, op);
                prop_assert!(count(state.as_ref(), now) <= p.limit());
                if let Some(s) = &state {
                    let mut ids: Vec<_> = live(s, now).map(|l| l.id).collect();
                    ids.sort();
                    ids.dedup();
                    prop_assert_eq!(ids.len() as u64, count(Some(s), now), "ids are unique");
                }
            }
        }

        #[test]
        fn retry_after_is_exact((p, ops) in scenario(), id in 100u64..200) {
            let mut state = None;
            let mut now = T0;
            for (dt, op) in ops {
                now = now.saturating_add(Nanos(dt));
                let (o, _) = acquire(&p, state.as_ref(), now, LeaseId(id));
                if let Some(r) = o.decision.retry_after {
                    let (before, _) = acquire(&p, state.as_ref(), Nanos(now.0 + r.0 - 1), LeaseId(id));
                    prop_assert!(!before.decision.allowed, "granted 1 ns before retry_after");
                    let (then, _) = acquire(&p, state.as_ref(), Nanos(now.0 + r.0), LeaseId(id));
                    prop_assert!(then.decision.allowed, "denied at retry_after");
                }
                prop_assert!(o.decision.allowed || o.decision.retry_after.is_some());
                apply(&p, &mut state, now, op);
            }
        }

        #[test]
        fn peek_predicts_and_release_is_idempotent((p, ops) in scenario()) {
            let mut state = None;
            let mut now = T0;
            for (dt, op) in ops {
                now = now.saturating_add(Nanos(dt));
                let (peek, _) = acquire(&p, state.as_ref(), now, LeaseId(u64::MAX));
                prop_assert_eq!(peek.decision.allowed, count(state.as_ref(), now) < p.limit());
                if let Op::Release(id) = op {
                    let (_, once) = release(state.as_ref(), now, LeaseId(id));
                    let once = once.or(state.clone());
                    let (again, twice) = release(once.as_ref(), now, LeaseId(id));
                    prop_assert!(!again.found);
                    prop_assert_eq!(twice, None, "a second release changes nothing");
                }
                apply(&p, &mut state, now, op);
            }
        }

        #[test]
        fn clock_stepping_back_never_frees_a_slot(
            (p, ops) in scenario(),
            back in 0u64..=60 * Nanos::PER_SEC,
        ) {
            let mut state = None;
            let mut now = T0;
            for (dt, op) in ops {
                now = now.saturating_add(Nanos(dt));
                apply(&p, &mut state, now, op);
                let earlier = now.saturating_sub(Nanos(back));
                prop_assert!(count(state.as_ref(), earlier) >= count(state.as_ref(), now));
                let (e, _) = acquire(&p, state.as_ref(), earlier, LeaseId(999));
                let (h, _) = acquire(&p, state.as_ref(), now, LeaseId(999));
                prop_assert!(!e.decision.allowed || h.decision.allowed);
            }
        }
    }
}
