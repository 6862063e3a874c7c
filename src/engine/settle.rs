//! After a check: settling or cancelling a reservation (`LIMIT.SETTLE` / `LIMIT.CANCEL`),
//! releasing a check's lease (`LIMIT.RELEASE`) and deleting an identity's counted usage
//! (`LIMIT.RESET`), as engine calls.
//!
//! Each runs in two steps like a check ([`super::check`]): a plan that resolves the policy and
//! derives the rule keys (a settle also reads its reservation) and changes nothing, then an
//! execute step that locks the keys and makes the change. The RESP commands check the plan's
//! keys against the user's ACL between the two.

use std::sync::Arc;

use bytes::Bytes;

use crate::limiter::cost::Amount;
use crate::limiter::decision::Decision;
use crate::limiter::lease::LeaseId;
use crate::policy::decide::{self, Demand, RuleState};
use crate::policy::model::{check_scope, Applied, Body, Limit, Measure};
use crate::policy::registry::Resolved;
use crate::policy::reserve::{self, Reservation, ReservationId};
use crate::store::Value;

use super::rules::{keys_of, read_state, write_state};
use super::usage::PolicyName;
use super::{Call, Error};
use crate::usage::Counts;

/// The actual amounts a settle records; an omitted one is taken as estimated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Actual {
    /// The actual `TOKENS`.
    pub tokens: Option<u64>,
    /// The actual `COST`.
    pub cost: Option<Amount>,
}

/// What [`Call::plan_settle`] found: the reservation and the rule keys it adjusts.
#[derive(Debug)]
pub struct SettlePlan {
    reservation: Box<Reservation>,
    id: ReservationId,
    key: Bytes,
    actual: Option<Actual>,
    resolved: Option<Resolved>,
    keys: Vec<Bytes>,
}

impl SettlePlan {
    /// The rule state keys the settle adjusts (the policy's current rules for the
    /// reservation's identity and scope; none if the policy was deleted).
    pub fn keys(&self) -> &[Bytes] {
        &self.keys
    }
}

/// One charged rule's adjustment by a settle or cancel.
#[derive(Debug, Clone, PartialEq)]
pub struct SettledRule {
    /// The rule's name.
    pub name: String,
    /// Its scope, `None` for a default rule.
    pub scope: Option<String>,
    /// Its limiter family.
    pub family: &'static str,
    /// What it counts.
    pub measure: Measure,
    /// Units charged (positive) or refunded (negative); micro-units for a COST measure.
    pub adjusted: i64,
    /// The rule as it stands afterwards (`limit`, `remaining`, `reset_after`).
    pub decision: Decision,
}

impl SettledRule {
    /// True for a COST rule, whose units are micro-units of a decimal amount.
    pub fn is_cost(&self) -> bool {
        self.family == "cost"
    }
}

/// A settled or cancelled reservation.
#[derive(Debug, Clone, PartialEq)]
pub struct Settled {
    /// The reservation's id as clients name it.
    pub id: ReservationId,
    /// The reservation (as it was before the settle; it is deleted now).
    pub reservation: Reservation,
    /// `true` for a settle, `false` for a cancel.
    pub settled: bool,
    /// The actual tokens recorded (0 for a cancel).
    pub tokens: u64,
    /// The actual cost recorded (0 for a cancel).
    pub cost: Amount,
    /// The rules the reservation charged, as adjusted.
    pub rules: Vec<SettledRule>,
}

/// A streaming settle's answer (`LIMIT.SETTLE id PARTIAL ...`).
#[derive(Debug, Clone, PartialEq)]
pub struct Partial {
    /// The reservation's id as clients name it.
    pub id: ReservationId,
    /// The reservation after the partial settle (still pending).
    pub reservation: Reservation,
    /// The stream's running totals as given.
    pub actual: Actual,
    /// Whether a rule the stream counts has nothing left for it: stop the stream.
    pub exhausted: bool,
    /// The rules the partial counted: `adjusted` is what this call charged past what was
    /// charged before, and `decision.remaining` what the stream may still use (its reserved
    /// headroom plus what the rule has left).
    pub rules: Vec<SettledRule>,
}

/// What [`Call::plan_release`] found: the LEASE rules' keys.
#[derive(Debug)]
pub struct ReleasePlan {
    resolved: Resolved,
    scope: Option<String>,
    lease: LeaseId,
    keys: Vec<Bytes>,
}

impl ReleasePlan {
    /// The LEASE rules' state keys.
    pub fn keys(&self) -> &[Bytes] {
        &self.keys
    }
}

/// What [`Call::plan_reset`] found: every rule state key to delete.
#[derive(Debug)]
pub struct ResetPlan {
    keys: Vec<Bytes>,
    /// The warning markers of the same rules (deleted, not counted).
    marks: Vec<Bytes>,
}

impl ResetPlan {
    /// The rule state keys to delete (sorted, distinct).
    pub fn keys(&self) -> &[Bytes] {
        &self.keys
    }
}

fn unknown_reservation(id: &ReservationId) -> Error {
    Error::Policy(format!(
        "unknown reservation '{id}' (settled, cancelled or expired)"
    ))
}

fn lease_rules<'a>(body: &'a Body, scope: Option<&str>) -> Vec<Applied<'a>> {
    body.applicable(scope)
        .into_iter()
        .filter(|a| matches!(a.rule.limit, Limit::Lease { .. }))
        .collect()
}

impl Call<'_, '_> {
    /// Step 1 of a settle (`actual` given) or cancel (`None`) of reservation `id`: reads the
    /// reservation (changing nothing) and derives the keys of the policy's current rules.
    /// Errors: an unknown (settled, cancelled or expired) reservation.
    pub fn plan_settle(
        &mut self,
        id: &ReservationId,
        actual: Option<Actual>,
    ) -> Result<SettlePlan, Error> {
        let now = self.now;
        let key = id.key();
        let found = self.with_keys(std::slice::from_ref(&key), |g| {
            match g.shard(&key).get_live(&key, now).map(|e| &e.value) {
                Some(Value::Reservation(r)) => Some(r.clone()),
                _ => None,
            }
        });
        let reservation = found
            .filter(|r| r.id == id.n)
            .ok_or_else(|| unknown_reservation(id))?;
        // The policy as it is now; a deleted policy leaves nothing to adjust.
        let resolved = self
            .engine
            .policies
            .read()
            .rules_for(&reservation.policy, &reservation.identity, now)
            .ok();
        let keys = resolved.as_ref().map_or_else(Vec::new, |x| {
            let rules = x.body.applicable_iter(reservation.scope.as_deref());
            keys_of(
                self.engine.cluster_keys,
                &x.key_policy.name,
                rules,
                &reservation.identity,
            )
        });
        Ok(SettlePlan {
            reservation,
            id: id.clone(),
            key,
            actual,
            resolved,
            keys,
        })
    }

    /// Step 2 of a settle or cancel: refunds or charges each rule the reservation charged
    /// (even past a cap), releases its lease and deletes it, all under the same locks.
    /// Errors: the reservation was settled by someone else since the plan.
    pub fn execute_settle(&mut self, plan: SettlePlan) -> Result<Settled, Error> {
        let now = self.now;
        let SettlePlan {
            reservation: r,
            id,
            key,
            actual,
            resolved,
            keys,
        } = plan;
        let empty = Body::default();
        let body = resolved.as_ref().map_or(&empty, |x| &*x.body);
        let rules = body.applicable(r.scope.as_deref());
        let demand = actual.map(|a| Demand {
            tokens: a.tokens.unwrap_or(r.tokens),
            cost: a.cost.unwrap_or(r.cost),
            priority: Default::default(),
        });
        let mut lock = keys.clone();
        lock.push(key.clone());
        let outcome = self.with_keys(&lock, |g| {
            // Settled by someone else between the two locks?
            let current = matches!(
                g.shard(&key).get_live(&key, now).map(|e| &e.value),
                Some(Value::Reservation(cur)) if **cur == *r
            );
            if !current {
                return None;
            }
            let states: Vec<Option<RuleState>> = keys
                .iter()
                .map(|k| read_state(g.shard(k), k, now))
                .collect();
            let plan = reserve::settle(&r, &rules, &keys, &states, demand.as_ref(), now);
            let mut after = Vec::with_capacity(rules.len());
            for (i, (delta, w)) in plan.into_iter().enumerate() {
                let new = decide::after(states[i].as_ref(), w.as_ref()).cloned();
                after.push((delta, decide::look(&rules[i].rule.limit, new.as_ref(), now)));
                if let Some(w) = w {
                    write_state(g.shard(&keys[i]), &keys[i], w, now);
                }
            }
            g.shard(&key).remove(&key, now);
            Some(after)
        });
        let after = outcome.ok_or_else(|| unknown_reservation(&id))?;
        self.engine.policies.untrack_reservation(r.expires_at, r.id);
        let charged: Vec<&[u8]> = r.charges.iter().map(|c| &c.key[..]).collect();
        let rules = rules
            .iter()
            .zip(&keys)
            .zip(&after)
            .filter(|((_, k), _)| charged.contains(&&k[..]))
            .map(|((a, _), (delta, d))| SettledRule {
                name: a.rule.name.clone(),
                scope: a.scope.map(str::to_owned),
                family: a.rule.limit.family(),
                measure: a.rule.measure,
                adjusted: *delta,
                decision: *d,
            })
            .collect();
        let (tokens, cost) = demand.map_or((0, Amount(0)), |d| (d.tokens, d.cost));
        // The reserve counted the estimate; the history gets the difference.
        let signed = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.engine.record_usage(
            PolicyName::Name(Arc::from(r.policy.as_str())),
            &r.identity,
            now,
            Counts {
                tokens: signed(tokens).saturating_sub(signed(r.tokens)),
                cost: cost.0.saturating_sub(r.cost.0),
                ..Counts::default()
            },
        );
        Ok(Settled {
            id,
            reservation: *r,
            settled: actual.is_some(),
            tokens,
            cost,
            rules,
        })
    }

    /// Step 2 of a streaming settle (`LIMIT.SETTLE id PARTIAL TOKENS n [COST x]`, planned
    /// with [`Call::plan_settle`]): `n` and `x` are the stream's running totals so far. Each
    /// rule counting what the partial gives is charged, even past its cap, whatever the total
    /// passes the reservation's charge by (nothing while within the estimate; a retried or
    /// smaller total charges nothing), the reservation records the new charges (so the final
    /// settle or a cancel reconciles exactly) and keeps the higher total as what an omitted
    /// amount settles at. `exhausted` says the stream has used everything a rule allows it.
    /// Errors: the reservation was settled since the plan.
    pub fn execute_partial(&mut self, plan: SettlePlan) -> Result<Partial, Error> {
        let now = self.now;
        let SettlePlan {
            reservation: r,
            id,
            key,
            actual,
            resolved,
            keys,
        } = plan;
        let actual = actual.unwrap_or_default();
        let empty = Body::default();
        let body = resolved.as_ref().map_or(&empty, |x| &*x.body);
        let rules = body.applicable(r.scope.as_deref());
        let counted = |m: Measure| match m {
            Measure::Tokens => actual.tokens.map(|t| i64::try_from(t).unwrap_or(i64::MAX)),
            Measure::Cost => actual.cost.map(|c| c.0),
            Measure::Requests | Measure::Concurrency => None,
        };
        let mut lock = keys.clone();
        lock.push(key.clone());
        let outcome = self.with_keys(&lock, |g| {
            let entry = g.shard(&key).get_live(&key, now)?;
            let expires_at = entry.expires_at();
            match &entry.value {
                Value::Reservation(cur) if **cur == *r => {}
                _ => return None,
            }
            let mut next = (*r).clone();
            let mut out = Vec::new();
            let mut exhausted = false;
            for (i, a) in rules.iter().enumerate() {
                let Some(real) = counted(a.rule.measure) else {
                    continue;
                };
                let Some(charge) = next.charges.iter_mut().find(|c| c.key == keys[i]) else {
                    continue;
                };
                let state = read_state(g.shard(&keys[i]), &keys[i], now);
                let delta = (real - charge.units).max(0);
                let w = decide::adjust(&a.rule.limit, state.as_ref(), now, delta, None, false);
                let new = decide::after(state.as_ref(), w.as_ref()).cloned();
                if let Some(w) = w {
                    write_state(g.shard(&keys[i]), &keys[i], w, now);
                }
                charge.units += delta;
                let mut d = decide::look(&a.rule.limit, new.as_ref(), now);
                // The stream may still use its reserved headroom and what the rule has left.
                let headroom = u64::try_from(charge.units - real).unwrap_or(0);
                d.remaining = d.remaining.saturating_add(headroom);
                exhausted |= d.remaining == 0;
                out.push((i, delta, d));
            }
            next.tokens = next.tokens.max(actual.tokens.unwrap_or(0));
            next.cost = next.cost.max(actual.cost.unwrap_or(Amount(0)));
            if next != *r {
                g.shard(&key).insert(
                    &key,
                    crate::store::Entry::with_expiry(
                        Value::Reservation(Box::new(next.clone())),
                        expires_at,
                    ),
                );
            }
            Some((next, exhausted, out))
        });
        let (next, exhausted, out) = outcome.ok_or_else(|| unknown_reservation(&id))?;
        let rules = out
            .into_iter()
            .map(|(i, delta, d)| {
                let a = &rules[i];
                SettledRule {
                    name: a.rule.name.clone(),
                    scope: a.scope.map(str::to_owned),
                    family: a.rule.limit.family(),
                    measure: a.rule.measure,
                    adjusted: delta,
                    decision: d,
                }
            })
            .collect();
        Ok(Partial {
            id,
            reservation: next,
            actual,
            exhausted,
            rules,
        })
    }

    /// Step 1 of a lease release: the keys of `policy`'s LEASE rules (for `scope`) for
    /// `identity`. Errors: an unknown policy, an invalid scope.
    pub fn plan_release(
        &mut self,
        policy: &str,
        identity: &[u8],
        lease: LeaseId,
        scope: Option<&[u8]>,
    ) -> Result<ReleasePlan, Error> {
        let scope = scope.map(check_scope).transpose()?;
        let resolved = self
            .engine
            .policies
            .read()
            .rules_for(policy, identity, self.now)?;
        let rules = lease_rules(&resolved.body, scope.as_deref());
        let keys = keys_of(
            self.engine.cluster_keys,
            &resolved.key_policy.name,
            rules.iter().copied(),
            identity,
        );
        Ok(ReleasePlan {
            resolved,
            scope,
            lease,
            keys,
        })
    }

    /// Step 2 of a lease release: frees the lease in every planned LEASE rule. Returns whether
    /// it was held.
    pub fn execute_release(&mut self, plan: ReleasePlan) -> bool {
        let now = self.now;
        let ReleasePlan {
            resolved,
            scope,
            lease: id,
            keys,
        } = plan;
        let rules = lease_rules(&resolved.body, scope.as_deref());
        self.with_keys(&keys, |g| {
            let mut found = false;
            for (k, a) in keys.iter().zip(&rules) {
                let state = read_state(g.shard(k), k, now);
                let held = matches!(&state, Some(RuleState::Lease(s))
                    if s.leases.iter().any(|l| l.id == id && l.expires_at > now));
                if let Some(w) =
                    decide::adjust(&a.rule.limit, state.as_ref(), now, 0, Some(id), true)
                {
                    write_state(g.shard(k), k, w, now);
                }
                found |= held;
            }
            found
        })
    }

    /// Step 1 of a reset: every rule state key of `identity` for `policy` (every section,
    /// override rules included), or for every policy when `None`. Errors: an unknown policy.
    pub fn plan_reset(
        &mut self,
        identity: &[u8],
        policy: Option<&str>,
    ) -> Result<ResetPlan, Error> {
        let now = self.now;
        let t = self.engine.policies.read();
        let names: Vec<String> = match policy {
            None => t.policies.keys().cloned().collect(),
            Some(name) => {
                if !t.policies.contains_key(name) {
                    return Err(Error::Policy(format!("unknown policy '{name}'")));
                }
                vec![name.to_owned()]
            }
        };
        let mut keys = Vec::new();
        let mut marks = Vec::new();
        for name in names {
            let r = t.rules_for(&name, identity, now)?;
            // A BREAKER rule's key is the shared breaker, not this identity's usage.
            let own = r
                .body
                .all()
                .into_iter()
                .filter(|x| !matches!(x.rule.limit, crate::policy::model::Limit::Breaker(_)));
            let own: Vec<_> = own.collect();
            // The warning markers too, so the next warning of a reset customer fires again.
            marks.extend(
                own.iter()
                    .filter(|x| x.rule.warn.or(r.body.warn).is_some())
                    .map(|x| {
                        crate::policy::model::warn_key(
                            self.engine.cluster_keys,
                            &r.key_policy.name,
                            x.scope,
                            &x.rule.name,
                            identity,
                        )
                    }),
            );
            keys.extend(keys_of(
                self.engine.cluster_keys,
                &r.key_policy.name,
                own,
                identity,
            ));
        }
        keys.sort();
        keys.dedup();
        marks.sort();
        marks.dedup();
        Ok(ResetPlan { keys, marks })
    }

    /// Step 2 of a reset: deletes the planned keys; returns how many held a state.
    pub fn execute_reset(&mut self, plan: ResetPlan) -> u64 {
        let now = self.now;
        let ResetPlan { keys, marks } = plan;
        let all: Vec<Bytes> = keys.iter().chain(&marks).cloned().collect();
        let n = self.with_keys(&all, |g| {
            for m in &marks {
                g.shard(m).remove(m, now);
            }
            keys.iter()
                .filter(|k| g.shard(k).remove(k, now).is_some())
                .count()
        });
        n as u64
    }
}
