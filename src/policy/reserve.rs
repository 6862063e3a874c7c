//! Reserve then settle: the stored reservation and the settle arithmetic.
//!
//! `LIMIT.RESERVE` runs a normal check with the estimate, charges it, and stores a
//! [`Reservation`] as a keyspace value (`TYPE` reports `reservation`) that expires with the
//! reservation: an unsettled reservation simply keeps its estimate charged. `LIMIT.SETTLE`
//! charges or refunds, per rule, the difference between what the rule was charged and what the
//! actual amounts make it; `LIMIT.CANCEL` refunds everything (the request count too). Both
//! release the reservation's lease and delete it, under the same shard locks as the rules, so
//! a concurrent reserve never sees a half-settled budget. Pure: no store, no clock.

use bytes::Bytes;

use crate::clock::Nanos;
use crate::limiter::cost::Amount;
use crate::limiter::lease::LeaseId;
use crate::policy::decide::{adjust, units, Demand, RuleState, StateWrite};
use crate::policy::model::{Applied, Limit};

/// What one rule was charged by a reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    /// The rule's state key.
    pub key: Bytes,
    /// Units charged (requests 1, tokens, micro-units of cost, 1 lease).
    pub units: i64,
}

impl std::fmt::Display for ReservationId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

/// A stored reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// Its id (also in its key).
    pub id: u64,
    /// The policy the reserve checked.
    pub policy: String,
    /// The identity.
    pub identity: Bytes,
    /// The scope, if any.
    pub scope: Option<String>,
    /// The estimate: tokens.
    pub tokens: u64,
    /// The estimate: cost.
    pub cost: Amount,
    /// The lease a LEASE rule granted, released at settle.
    pub lease: Option<LeaseId>,
    /// When it lapses and keeps its estimate.
    pub expires_at: Nanos,
    /// What each charged rule took.
    pub charges: Vec<Charge>,
}

/// How clients name a reservation: its number, preceded in cluster mode by its identity's hash
/// tag (`{customer-42}17`), so that a cluster client, which routes `LIMIT.SETTLE` and
/// `LIMIT.CANCEL` by their first argument, reaches the node that holds it (the identity's
/// slot, where its rule keys live too). Without cluster mode it is the plain number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationId {
    /// The number (unique per server; [`Reservation::id`]).
    pub n: u64,
    /// The identity's hash tag, in cluster mode.
    pub tag: Option<Bytes>,
}

impl ReservationId {
    /// The id of reservation `n` of `identity`: tagged when `cluster` is true and the identity
    /// has a tag (an identity without one is refused in cluster mode before it gets here).
    pub fn new(n: u64, identity: &[u8], cluster: bool) -> ReservationId {
        let tag = cluster
            .then(|| crate::cluster::identity_tag(identity))
            .flatten()
            .map(Bytes::copy_from_slice);
        ReservationId { n, tag }
    }

    /// Reads an id as a client sends it back: `17` or `{tag}17`. `None` for anything else.
    pub fn parse(arg: &[u8]) -> Option<ReservationId> {
        let (tag, digits) = match arg.strip_prefix(b"{") {
            Some(rest) => {
                // A tag never holds `}` (see `identity_tag`): the first one closes it.
                let end = memchr::memchr(b'}', rest)?;
                if end == 0 {
                    return None;
                }
                (Some(Bytes::copy_from_slice(&rest[..end])), &rest[end + 1..])
            }
            None => (None, arg),
        };
        let all_digits = !digits.is_empty() && digits.iter().all(u8::is_ascii_digit);
        let n = std::str::from_utf8(digits).ok()?.parse().ok()?;
        all_digits.then_some(ReservationId { n, tag })
    }

    /// The id as text: `17` or `{tag}17`.
    pub fn to_bytes(&self) -> Bytes {
        match &self.tag {
            None => Bytes::from(self.n.to_string()),
            Some(tag) => {
                let mut out = Vec::with_capacity(tag.len() + 22);
                out.push(b'{');
                out.extend_from_slice(tag);
                out.push(b'}');
                out.extend_from_slice(self.n.to_string().as_bytes());
                Bytes::from(out)
            }
        }
    }

    /// The keyspace key of the reservation: `limitkv-reservation:17`, or
    /// `limitkv-reservation:{tag}17` in the identity's slot.
    pub fn key(&self) -> Bytes {
        let mut k = b"limitkv-reservation:".to_vec();
        k.extend_from_slice(&self.to_bytes());
        Bytes::from(k)
    }
}

/// The per-rule writes that settle `r` at `actual` (`None`: cancel, refund everything).
///
/// `rules`, `keys` and `states` describe the policy's rules as they are now (same order); a
/// rule the reservation did not charge is left alone, and a charged rule that no longer exists
/// is skipped. Returns, per rule, the delta applied and the write (if any).
pub fn settle(
    r: &Reservation,
    rules: &[Applied<'_>],
    keys: &[Bytes],
    states: &[Option<RuleState>],
    actual: Option<&Demand>,
    now: Nanos,
) -> Vec<(i64, Option<StateWrite>)> {
    rules
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let Some(charge) = r.charges.iter().find(|c| c.key == keys[i]) else {
                return (0, None);
            };
            let real = match (actual, &a.rule.limit) {
                (None, _) | (_, Limit::Lease { .. }) => 0,
                (Some(d), _) => units(a.rule.measure, d),
            };
            let delta = real.saturating_sub(charge.units);
            let state = states.get(i).and_then(Option::as_ref);
            (
                delta,
                adjust(&a.rule.limit, state, now, delta, r.lease, true),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::decide::{after, decide, look, Mode};
    use crate::policy::model::{split_words, Policy};
    use proptest::prelude::*;

    const T0: Nanos = Nanos(1_767_225_600 * Nanos::PER_SEC);

    fn policy(s: &str) -> Policy {
        let w: Vec<Bytes> = split_words(s)
            .unwrap()
            .into_iter()
            .map(Bytes::from)
            .collect();
        Policy::parse(b"ai", &w).unwrap()
    }

    fn apply(states: &mut [Option<RuleState>], writes: impl Iterator<Item = Option<StateWrite>>) {
        for (s, w) in states.iter_mut().zip(writes) {
            match w {
                Some(StateWrite::Put(n, _)) => *s = Some(n),
                Some(StateWrite::Delete) => *s = None,
                None => {}
            }
        }
    }

    /// Reserves `est` tokens; returns the reservation if admitted.
    fn reserve(
        p: &Policy,
        st: &mut [Option<RuleState>],
        id: u64,
        est: u64,
        now: Nanos,
    ) -> Option<Reservation> {
        let rules = p.body.applicable(None);
        let keys: Vec<Bytes> = (0..rules.len())
            .map(|i| Bytes::from(format!("k{i}")))
            .collect();
        let v = decide(
            &rules,
            st,
            &Demand {
                tokens: est,
                cost: Amount(0),
                priority: Default::default(),
            },
            now,
            Mode::Charge {
                lease_id: LeaseId(id),
                lease_ttl: None,
            },
            None,
        );
        if !v.allowed {
            return None;
        }
        let charges = keys
            .iter()
            .zip(&v.rules)
            .map(|(k, r)| Charge {
                key: k.clone(),
                units: r.charged,
            })
            .collect();
        apply(st, v.rules.into_iter().map(|r| r.write));
        Some(Reservation {
            id,
            policy: "ai".into(),
            identity: Bytes::from_static(b"u"),
            scope: None,
            tokens: est,
            cost: Amount(0),
            lease: v.lease.map(|l| l.id),
            expires_at: now.saturating_add(Nanos::from_secs(600)),
            charges,
        })
    }

    fn do_settle(
        p: &Policy,
        st: &mut [Option<RuleState>],
        r: &Reservation,
        actual: Option<u64>,
        now: Nanos,
    ) {
        let rules = p.body.applicable(None);
        let keys: Vec<Bytes> = (0..rules.len())
            .map(|i| Bytes::from(format!("k{i}")))
            .collect();
        let d = actual.map(|t| Demand {
            tokens: t,
            cost: Amount(0),
            priority: Default::default(),
        });
        let writes = settle(r, &rules, &keys, st, d.as_ref(), now);
        apply(st, writes.into_iter().map(|(_, w)| w));
    }

    fn remaining(p: &Policy, st: &[Option<RuleState>], now: Nanos) -> Vec<u64> {
        p.body
            .applicable(None)
            .iter()
            .zip(st)
            .map(|(a, s)| look(&a.rule.limit, after(s.as_ref(), None), now).remaining)
            .collect()
    }

    #[test]
    fn settle_refunds_the_difference_and_cancel_refunds_all() {
        let p = policy("TOKENS 50000/1m TOKENS 1000000/day RATE 10/1m LEASE 2");
        let mut st = vec![None; 4];
        let r = reserve(&p, &mut st, 1, 4000, T0).unwrap();
        assert_eq!(remaining(&p, &st, T0), [46_000, 996_000, 9, 1]);
        do_settle(&p, &mut st, &r, Some(1234), T0);
        assert_eq!(
            remaining(&p, &st, T0),
            [48_766, 998_766, 9, 2],
            "refund, lease released"
        );
        let r2 = reserve(&p, &mut st, 2, 4000, T0).unwrap();
        do_settle(&p, &mut st, &r2, Some(9000), T0);
        assert_eq!(
            remaining(&p, &st, T0),
            [39_766, 989_766, 8, 2],
            "extra charged"
        );
        let r3 = reserve(&p, &mut st, 3, 100, T0).unwrap();
        do_settle(&p, &mut st, &r3, None, T0);
        assert_eq!(
            remaining(&p, &st, T0),
            [39_766, 989_766, 8, 2],
            "cancel refunds all"
        );
    }

    proptest! {
        /// Whatever interleaving of reserves and settles, the tokens admitted by reserves that
        /// were later settled never exceed the budget plus what settles recorded past it: a
        /// reserve is admitted only when its estimate fits what the settled reality left.
        #[test]
        fn reserves_never_overspend_a_daily_budget(
            ops in proptest::collection::vec((1u64..3000, 0u64..3000, any::<bool>()), 1..80)
        ) {
            let budget = 10_000u64;
            let p = policy("TOKENS 10000/day");
            let mut st = vec![None; 1];
            let mut open: Vec<(Reservation, u64)> = Vec::new();
            let mut settled_actual = 0u64;
            for (i, (est, actual, settle_now)) in ops.into_iter().enumerate() {
                let actual = actual.min(est);
                if let Some(r) = reserve(&p, &mut st, i as u64, est, T0) {
                    open.push((r, actual));
                }
                // Everything charged (open estimates + settled actuals) stays within the budget.
                let charged: u64 = open.iter().map(|(r, _)| r.tokens).sum::<u64>() + settled_actual;
                prop_assert!(charged <= budget, "charged {} of {}", charged, budget);
                prop_assert_eq!(remaining(&p, &st, T0)[0], budget - charged);
                if settle_now && !open.is_empty() {
                    let (r, a) = open.remove(0);
                    do_settle(&p, &mut st, &r, Some(a), T0);
                    settled_actual += a;
                }
            }
        }
    }

    #[test]
    fn reservation_ids_round_trip_and_tagged_ones_share_the_identity_slot() {
        let plain = ReservationId::new(17, b"customer-42", false);
        assert_eq!(plain.to_bytes(), Bytes::from_static(b"17"));
        assert_eq!(plain.key(), Bytes::from_static(b"limitkv-reservation:17"));
        assert_eq!(ReservationId::parse(b"17"), Some(plain));
        let tagged = ReservationId::new(17, b"customer-42", true);
        assert_eq!(tagged.to_bytes(), Bytes::from_static(b"{customer-42}17"));
        assert_eq!(
            ReservationId::parse(b"{customer-42}17"),
            Some(tagged.clone())
        );
        let slot = crate::cluster::key_slot(b"customer-42");
        assert_eq!(crate::cluster::key_slot(&tagged.to_bytes()), slot);
        assert_eq!(crate::cluster::key_slot(&tagged.key()), slot);
        // An identity's own tag is kept: `{t}x` hashes as `t`.
        let inner = ReservationId::new(3, b"{t}x", true);
        assert_eq!(inner.to_bytes(), Bytes::from_static(b"{t}3"));
        for bad in [
            &b""[..],
            b"-1",
            b"+1",
            b"1.5",
            b"{}1",
            b"{t}",
            b"{t1",
            b"x",
            b"{t}1x",
            b" 1",
        ] {
            assert_eq!(
                ReservationId::parse(bad),
                None,
                "{:?}",
                Bytes::copy_from_slice(bad)
            );
        }
    }
}
