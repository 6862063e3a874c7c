//! Deciding a request against a policy (`LIMIT.CHECK`, `LIMIT.STATUS`, `LIMIT.RESERVE`) as
//! engine calls, in two steps:
//!
//! 1. [`Call::plan_check`] resolves the gate (deny list, allow list, the policy with the
//!    identity's override) and derives the rule keys. It takes no shard lock and changes
//!    nothing in the keyspace (the policy's allow/deny-list counters count the resolution).
//! 2. [`Call::execute_check`] locks every rule key's shard at once ([`Call::with_keys`]),
//!    reads the states, runs [`decide::decide`], writes every new state or none before the
//!    locks drop (the AOF journals them there), stores the reservation, and counts and emits
//!    the outcome.
//!
//! The RESP command checks the plan's [`CheckPlan::keys`] against the user's ACL between the
//! two; the typed [`Engine`](super::Engine) methods run both. The decision itself is pure
//! ([`crate::policy::decide`]); this module only moves states in and out of the keyspace.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;

use crate::clock::Nanos;
use crate::limiter::breaker::Phase;
use crate::limiter::cost::Amount;
use crate::limiter::decision::Decision;
use crate::limiter::lease::LeaseId;
use crate::policy::access::Entry as AccessEntry;
use crate::policy::decide::{self, Demand, Mode, Outcome, RuleResult, RuleState};
use crate::policy::events::Event;
use crate::policy::headers::{headers, Headers};
use crate::policy::model::{warn_key, Action, Applied, Limit, Measure};
use crate::policy::notice;
use crate::policy::registry::{Gate, PendingReservation, Resolved};
use crate::policy::reserve::{Charge, Reservation, ReservationId};
use crate::policy::suspend::Suspension;
use crate::policy::upstream;
use crate::store::{Entry, Value};

use super::rules::{keys_of, read_state, write_state};
use super::usage::PolicyName;
use super::{Call, Error};
use crate::usage::Counts;

/// How long a reservation lives when `LIMIT.RESERVE` gives no `TTL`.
pub const DEFAULT_RESERVATION_TTL: Nanos = Nanos(5 * 60 * Nanos::PER_SEC);

/// Which of the three checks runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckKind {
    /// `LIMIT.CHECK`: decide and charge (unless a dry run).
    Check,
    /// `LIMIT.STATUS`: what every rule has left and whether a check would pass; changes
    /// nothing and counts nothing.
    Status,
    /// `LIMIT.RESERVE`: a check that also stores a reservation of what it charged.
    Reserve,
}

/// One request to decide against a policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckRequest {
    /// The policy's name.
    pub policy: String,
    /// Who is asking (a user, an API key, ...).
    pub identity: Bytes,
    /// The scope (endpoint, route) whose rules apply besides the defaults.
    pub scope: Option<String>,
    /// What the request asks of the rules: `TOKENS` and `COST`.
    pub demand: Demand,
    /// The caller's address, matched against the access lists' networks.
    pub ip: Option<IpAddr>,
    /// Decide without charging anything (`DRYRUN`).
    pub dryrun: bool,
    /// A reservation's lifetime (`TTL`, [`DEFAULT_RESERVATION_TTL`] when `None`).
    pub ttl: Option<Nanos>,
}

impl CheckRequest {
    /// A request of `identity` against `policy`: no scope, no tokens, no cost.
    pub fn new(policy: impl Into<String>, identity: impl AsRef<[u8]>) -> CheckRequest {
        CheckRequest {
            policy: policy.into(),
            identity: Bytes::copy_from_slice(identity.as_ref()),
            ..CheckRequest::default()
        }
    }

    /// The same request in `scope`.
    pub fn with_scope(mut self, scope: impl Into<String>) -> CheckRequest {
        self.scope = Some(scope.into());
        self
    }

    /// The same request asking for `tokens`.
    pub fn with_tokens(mut self, tokens: u64) -> CheckRequest {
        self.demand.tokens = tokens;
        self
    }

    /// The same request costing `cost`.
    pub fn with_cost(mut self, cost: Amount) -> CheckRequest {
        self.demand.cost = cost;
        self
    }
}

/// What [`Call::plan_check`] found: the request, its gate and the rule keys a check would lock.
#[derive(Debug)]
pub struct CheckPlan {
    kind: CheckKind,
    request: CheckRequest,
    gate: Planned,
    keys: Vec<Bytes>,
}

#[derive(Debug)]
enum Planned {
    Listed { allow: bool, entry: AccessEntry },
    Suspended(Arc<Suspension>),
    Rules(Resolved),
}

impl CheckPlan {
    /// The rule state keys the check reads (and, unless a status, writes); empty for an
    /// allow- or deny-listed request, which checks no rule.
    pub fn keys(&self) -> &[Bytes] {
        &self.keys
    }

    /// The kind of check planned.
    pub fn kind(&self) -> CheckKind {
        self.kind
    }
}

/// One rule's part of a check's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleReport {
    /// The rule's name.
    pub name: String,
    /// The scope it belongs to, `None` for a default rule.
    pub scope: Option<String>,
    /// Its limiter family (`rate`, `window`, `quota`, `cost`, `lease`).
    pub family: &'static str,
    /// What it counts.
    pub measure: Measure,
    /// How it voted.
    pub outcome: Outcome,
    /// What its denial does.
    pub action: Action,
    /// Its decision (for a status: remaining/reset as the state is).
    pub decision: Decision,
    /// Units this request charged it (micro-units for a COST rule).
    pub charged: i64,
    /// Whether it passed its warning threshold.
    pub warned: bool,
    /// Units admitted past its limit by its grace (micro-units for a COST rule).
    pub overage: u64,
}

impl RuleReport {
    /// True for a COST rule, whose units are micro-units of a decimal amount.
    pub fn is_cost(&self) -> bool {
        self.family == "cost"
    }
}

/// A check's result: the decision and everything the reply and the headers show.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckOutcome {
    /// Admitted (possibly after `delay`).
    pub allowed: bool,
    /// The tightest rule (an index into `rules`: the blocking one, else the one with the
    /// smallest fraction left) and its decision; for a refusal its `retry_after` is the
    /// slowest blocking rule's. `None` for a listed identity or a policy without rules here.
    pub tightest: Option<(usize, Decision)>,
    /// The blocking rule (`scope/rule` for a scope's rule), or `denylist`.
    pub denied_by: Option<String>,
    /// `allow`, `block`, `slowdown` or `log`.
    pub action: &'static str,
    /// How long an admitted request waits first (slowdown).
    pub delay: Nanos,
    /// `allowlist:<entry>` / `denylist:<entry>` for a listed identity.
    pub reason: Option<String>,
    /// The override's reason (`override` if it gave none) when one applied.
    pub overridden: Option<String>,
    /// Whether nothing was charged because of a dry run.
    pub dryrun: bool,
    /// The rules past their warning threshold.
    pub warnings: Vec<String>,
    /// Whether any rule is past its warning threshold.
    pub warning: bool,
    /// Whether a rule admitted the request past its limit by its grace.
    pub overage: bool,
    /// The `MESSAGE` of the rule that refused or warned (the blocking rule, else the first
    /// warned one), else the policy's; `None` when nothing refused or warned.
    pub message: Option<String>,
    /// The `LINK` chosen the same way.
    pub link: Option<String>,
    /// For a suspended identity with an expiring suspension: the wait until it lapses.
    pub suspended_retry: Option<Nanos>,
    /// The lease granted by a LEASE rule and when it ends.
    pub lease: Option<(LeaseId, Nanos)>,
    /// Every applicable rule, defaults first.
    pub rules: Vec<RuleReport>,
    /// `RateLimit`, `RateLimit-Policy` and `Retry-After` values.
    pub headers: Headers,
    /// The reservation stored by an admitted `LIMIT.RESERVE`: its id and expiry.
    pub reservation: Option<(ReservationId, Nanos)>,
}

impl CheckOutcome {
    /// The tightest rule's decision.
    pub fn decision(&self) -> Option<&Decision> {
        self.tightest.as_ref().map(|(_, d)| d)
    }

    /// The tightest rule's report.
    pub fn tightest_rule(&self) -> Option<&RuleReport> {
        self.tightest.and_then(|(i, _)| self.rules.get(i))
    }

    fn listed(
        allow: bool,
        entry: &AccessEntry,
        reservation: Option<(ReservationId, Nanos)>,
    ) -> Self {
        let entry = String::from_utf8_lossy(&entry.to_bytes()).into_owned();
        CheckOutcome {
            allowed: allow,
            tightest: None,
            denied_by: (!allow).then(|| "denylist".to_owned()),
            action: if allow { "allow" } else { "block" },
            delay: Nanos::ZERO,
            reason: Some(format!(
                "{}:{entry}",
                if allow { "allowlist" } else { "denylist" }
            )),
            overridden: None,
            dryrun: false,
            warnings: Vec::new(),
            warning: false,
            overage: false,
            message: None,
            link: None,
            suspended_retry: None,
            lease: None,
            rules: Vec::new(),
            headers: Headers::default(),
            reservation,
        }
    }
}

/// A rule's name as replies and events show it: `scope/rule` for a scope's rule.
fn scoped_name(a: &Applied<'_>) -> String {
    match a.scope {
        Some(s) => format!("{s}/{}", a.rule.name),
        None => a.rule.name.clone(),
    }
}

fn report(a: &Applied<'_>, r: &RuleResult) -> RuleReport {
    RuleReport {
        name: a.rule.name.clone(),
        scope: a.scope.map(str::to_owned),
        family: a.rule.limit.family(),
        measure: a.rule.measure,
        outcome: r.outcome,
        action: a.rule.action,
        decision: r.decision,
        charged: r.charged,
        warned: r.warned,
        overage: r.overage,
    }
}

fn tokens_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn millis_i64(n: Nanos) -> i64 {
    i64::try_from(n.as_millis_ceil()).unwrap_or(i64::MAX)
}

impl Call<'_, '_> {
    /// Step 1 of a check: resolves `request`'s gate and derives its rule keys, without taking
    /// a shard lock or changing the keyspace. Errors: an unknown policy.
    pub fn plan_check(
        &mut self,
        kind: CheckKind,
        request: CheckRequest,
    ) -> Result<CheckPlan, Error> {
        let gate = self.engine.policies.read().resolve(
            &request.policy,
            &request.identity,
            request.ip,
            self.now,
        )?;
        let (gate, keys) = match gate {
            Gate::Allow(entry) => (Planned::Listed { allow: true, entry }, Vec::new()),
            Gate::Deny(entry) => (
                Planned::Listed {
                    allow: false,
                    entry,
                },
                Vec::new(),
            ),
            Gate::Suspended(s) => (Planned::Suspended(s), Vec::new()),
            Gate::Check(r) => {
                let rules = r.body.applicable_iter(request.scope.as_deref());
                let keys = keys_of(
                    self.engine.cluster_keys,
                    &r.key_policy.name,
                    rules,
                    &request.identity,
                );
                (Planned::Rules(r), keys)
            }
        };
        Ok(CheckPlan {
            kind,
            request,
            gate,
            keys,
        })
    }

    /// Step 2 of a check: decides the planned request atomically across its rules, charges
    /// every rule or none, stores a reservation, counts the outcome and emits the events.
    pub fn execute_check(&mut self, plan: CheckPlan) -> CheckOutcome {
        let CheckPlan {
            kind,
            request,
            gate,
            keys,
        } = plan;
        match gate {
            Planned::Listed { allow, entry } => self.listed(&request, kind, allow, &entry),
            Planned::Suspended(s) => self.suspended(&request, kind, &s),
            Planned::Rules(resolved) => self.decide_rules(&request, kind, resolved, keys),
        }
    }

    fn decide_rules(
        &mut self,
        a: &CheckRequest,
        kind: CheckKind,
        resolved: Resolved,
        keys: Vec<Bytes>,
    ) -> CheckOutcome {
        let now = self.now;
        let engine = self.engine;
        let Resolved {
            asked,
            body,
            overridden,
            key_policy,
        } = resolved;
        let rules = body.applicable(a.scope.as_deref());
        let dryrun = a.dryrun || body.dryrun;
        let charge = kind != CheckKind::Status && !dryrun;
        let has_lease = rules
            .iter()
            .any(|x| matches!(x.rule.limit, Limit::Lease { .. }));
        let next_id = || engine.next_lease_id.fetch_add(1, Ordering::Relaxed);
        // A dry run acquires nothing, so it peeks with an id no lease has.
        let lease_id = LeaseId(if has_lease && charge {
            next_id()
        } else {
            u64::MAX
        });
        let reservation_id = (kind == CheckKind::Reserve).then(next_id);
        let ttl = a.ttl.unwrap_or(DEFAULT_RESERVATION_TTL);
        let expires_at = now.saturating_add(ttl);
        let mode = match kind {
            CheckKind::Status => Mode::Status,
            CheckKind::Check => Mode::Charge {
                lease_id,
                lease_ttl: None,
            },
            CheckKind::Reserve => Mode::Charge {
                lease_id,
                lease_ttl: Some(ttl),
            },
        };
        let res_id =
            reservation_id.map(|n| ReservationId::new(n, &a.identity, self.engine.cluster_keys));
        let res_key = res_id.as_ref().map(ReservationId::key);
        // A reserve also locks its reservation's key; a check locks the rule keys only.
        let with_reservation: Vec<Bytes>;
        let lock: &[Bytes] = match &res_key {
            Some(rk) => {
                with_reservation = keys.iter().chain([rk]).cloned().collect();
                &with_reservation
            }
            None => &keys,
        };
        let demand = a.demand;
        // Breakers this check moved (a half-open probe taken after the cooldown), published
        // as BREAKER.ALLOW publishes them once the locks are dropped.
        let mut breakers: Vec<(Bytes, Phase, Phase)> = Vec::new();
        let (verdict, reservation) = self.with_keys(lock, |g| {
            let states: Vec<Option<RuleState>> = keys
                .iter()
                .map(|k| read_state(g.shard(k), k, now))
                .collect();
            let mut v = decide::decide(&rules, &states, &demand, now, mode, body.warn);
            if !v.allowed {
                return (v, None);
            }
            if charge {
                for (i, (k, r)) in keys.iter().zip(&mut v.rules).enumerate() {
                    if let Some(w) = r.write.take() {
                        if let Some(change) =
                            upstream::phase_change(rules[i].rule, states[i].as_ref(), &w)
                        {
                            breakers.push(change);
                        }
                        write_state(g.shard(k), k, w, now);
                    }
                }
            }
            let reservation = res_key.as_ref().map(|rk| {
                let charges = if charge {
                    keys.iter()
                        .zip(&v.rules)
                        .filter(|(_, r)| r.charged != 0)
                        .map(|(k, r)| Charge {
                            key: k.clone(),
                            units: r.charged,
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                let r = Reservation {
                    id: reservation_id.unwrap_or_default(),
                    policy: a.policy.clone(),
                    identity: a.identity.clone(),
                    scope: a.scope.clone(),
                    tokens: demand.tokens,
                    cost: demand.cost,
                    lease: v.lease.map(|l| l.id),
                    expires_at,
                    charges,
                };
                g.shard(rk).insert(
                    rk,
                    Entry::with_expiry(Value::Reservation(Box::new(r.clone())), Some(expires_at)),
                );
                r
            });
            (v, reservation)
        });
        let mut verdict = verdict;
        if !charge {
            // A dry run (or a status) charges nothing, whatever the rules would have taken.
            for r in &mut verdict.rules {
                r.charged = 0;
            }
        }
        if kind != CheckKind::Status {
            self.count_outcome(verdict.allowed);
            let pc = &asked.counters;
            pc.checks.fetch_add(1, Ordering::Relaxed);
            let outcome = if verdict.allowed {
                &pc.allowed
            } else {
                &pc.denied
            };
            outcome.fetch_add(1, Ordering::Relaxed);
            if overridden.is_some() {
                pc.overridden.fetch_add(1, Ordering::Relaxed);
            }
            // Per rule, the requests it charged (not its votes): a rule that passed a request
            // another rule denied, or a dry run, charged nothing and counts nothing as
            // allowed; a dry run's blocking vote counts as a would-deny.
            let charged = verdict.allowed && charge;
            for (x, r) in rules.iter().zip(&verdict.rules) {
                let c = &x.rule.counters;
                let counter = match r.outcome {
                    Outcome::Block if dryrun => Some(&c.logged),
                    Outcome::Block => Some(&c.denied),
                    Outcome::Log => Some(&c.logged),
                    Outcome::Slowdown(_) if charged => Some(&c.slowed),
                    Outcome::Pass if charged => Some(&c.allowed),
                    Outcome::Slowdown(_) | Outcome::Pass => None,
                };
                if let Some(counter) = counter {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                if r.warned && charged {
                    c.warned.fetch_add(1, Ordering::Relaxed);
                }
            }
            let charged = verdict.allowed && charge;
            engine.record_usage(
                PolicyName::Policy(asked.clone()),
                &a.identity,
                now,
                Counts {
                    decisions: 1,
                    denials: u64::from(!verdict.allowed),
                    warnings: u64::from(verdict.allowed && verdict.rules.iter().any(|r| r.warned)),
                    tokens: if charged {
                        tokens_i64(demand.tokens)
                    } else {
                        0
                    },
                    cost: if charged { demand.cost.0 } else { 0 },
                },
            );
        }
        if let Some(r) = &reservation {
            engine.policies.track_reservation(
                r.expires_at,
                r.id,
                PendingReservation {
                    policy: r.policy.clone(),
                    identity: r.identity.clone(),
                    tokens: r.tokens,
                    cost: r.cost,
                },
            );
        }
        let warnings: Vec<String> = rules
            .iter()
            .zip(&verdict.rules)
            .filter(|(_, r)| r.warned)
            .map(|(x, _)| scoped_name(x))
            .collect();
        let denied_by = verdict.denied_by.map(|i| match &rules[i].rule.limit {
            Limit::Breaker(b) => format!("breaker:{}", String::from_utf8_lossy(&b.key)),
            _ => scoped_name(&rules[i]),
        });
        // The rule whose words the reply shows: the blocking one, else the first warned one.
        let speaker = verdict
            .denied_by
            .or_else(|| verdict.rules.iter().position(|r| r.warned))
            .map(|i| rules[i].rule);
        let message = speaker.and_then(|r| r.message.as_deref().or(body.message.as_deref()));
        let link = speaker.and_then(|r| r.link.as_deref().or(body.link.as_deref()));
        let first_warnings = if charge && verdict.allowed && !warnings.is_empty() {
            self.mark_warnings(&key_policy.name, &a.identity, &rules, &verdict.rules)
        } else {
            Vec::new()
        };
        for (key, from, to) in &breakers {
            engine.emit(&Event::Breaker {
                at: now,
                key,
                from: *from,
                to: *to,
            });
        }
        if kind != CheckKind::Status {
            let scope = a.scope.as_deref();
            if let Some(rule) = &denied_by {
                engine.emit(&Event::Denied {
                    at: now,
                    policy: &a.policy,
                    identity: &a.identity,
                    scope,
                    rule: Some(rule),
                    retry_after_ms: verdict.retry_after.map_or(-1, millis_i64),
                    reason: "limit",
                    message,
                    link,
                });
            }
            if !first_warnings.is_empty() {
                let names: Vec<String> = first_warnings
                    .iter()
                    .map(|&i| scoped_name(&rules[i]))
                    .collect();
                engine.emit(&Event::Warning {
                    at: now,
                    policy: &a.policy,
                    identity: &a.identity,
                    scope,
                    rules: names.iter().map(String::as_str).collect(),
                    message,
                    link,
                });
            }
            if charge && verdict.allowed && verdict.rules.iter().any(|r| r.overage > 0) {
                let over: Vec<(String, u64, bool)> = rules
                    .iter()
                    .zip(&verdict.rules)
                    .filter(|(_, r)| r.overage > 0)
                    .map(|(x, r)| (scoped_name(x), r.overage, x.rule.measure == Measure::Cost))
                    .collect();
                engine.emit(&Event::Overage {
                    at: now,
                    policy: &a.policy,
                    identity: &a.identity,
                    scope,
                    rules: over.iter().map(|(n, o, c)| (n.as_str(), *o, *c)).collect(),
                });
            }
            if verdict.allowed && engine.sample_allowed() {
                engine.emit(&Event::Allowed {
                    at: now,
                    policy: &a.policy,
                    identity: &a.identity,
                    scope,
                    action: verdict.action(),
                    delay_ms: millis_i64(verdict.delay),
                });
            }
        }
        let headers = headers(&rules, &verdict);
        let tightest = verdict.tightest().map(|i| {
            let mut d = verdict.rules[i].decision;
            if !verdict.allowed {
                // The request waits for its slowest blocking rule, not just the first.
                d.retry_after = verdict.retry_after;
            }
            (i, d)
        });
        CheckOutcome {
            allowed: verdict.allowed,
            tightest,
            denied_by,
            action: verdict.action(),
            delay: verdict.delay,
            reason: None,
            overridden: overridden.map(|o| o.reason.clone().unwrap_or_else(|| "override".into())),
            dryrun,
            warning: !warnings.is_empty(),
            warnings,
            overage: verdict.rules.iter().any(|r| r.overage > 0),
            message: message.map(str::to_owned),
            link: link.map(str::to_owned),
            suspended_retry: None,
            lease: verdict
                .lease
                .filter(|_| charge)
                .map(|l| (l.id, l.expires_at)),
            rules: rules
                .iter()
                .zip(&verdict.rules)
                .map(|(x, r)| report(x, r))
                .collect(),
            headers,
            reservation: reservation.zip(res_id).map(|(r, id)| (id, r.expires_at)),
        }
    }

    /// Marks the warned rules' periods (one marker key per rule and identity, expiring when
    /// the rule's period ends, journaled like any key) and returns the indexes of the rules
    /// whose marker was not set yet: their warning event fires now, once per period. Runs
    /// only when a charged check warned, under its own locks: two racing checks still fire
    /// one event, since the test and the set are atomic.
    fn mark_warnings(
        &mut self,
        policy: &str,
        identity: &[u8],
        rules: &[Applied<'_>],
        results: &[RuleResult],
    ) -> Vec<usize> {
        let now = self.now;
        let marks: Vec<(usize, Bytes, Nanos)> = rules
            .iter()
            .zip(results)
            .enumerate()
            .filter(|(_, (_, r))| r.warned)
            .map(|(i, (x, r))| {
                let key = warn_key(
                    self.engine.cluster_keys,
                    policy,
                    x.scope,
                    &x.rule.name,
                    identity,
                );
                let until = now.saturating_add(notice::warn_period(&x.rule.limit, &r.decision));
                (i, key, until)
            })
            .collect();
        let keys: Vec<Bytes> = marks.iter().map(|(_, k, _)| k.clone()).collect();
        self.with_keys(&keys, |g| {
            marks
                .iter()
                .filter(|(_, k, until)| {
                    let shard = g.shard(k);
                    if shard.get_live(k, now).is_some() {
                        return false;
                    }
                    shard.insert(k, Entry::with_expiry(Value::Int(1), Some(*until)));
                    true
                })
                .map(|(i, _, _)| *i)
                .collect()
        })
    }

    /// A suspended identity: refused with the suspension's reason, no rule checked or
    /// charged; a retry can pass when the suspension expires (never without an expiry).
    fn suspended(&mut self, a: &CheckRequest, kind: CheckKind, s: &Suspension) -> CheckOutcome {
        let now = self.now;
        let retry = s.expires_at.map(|at| at.saturating_sub(now));
        if kind != CheckKind::Status {
            self.count_outcome(false);
            self.engine.emit(&Event::Denied {
                at: now,
                policy: &a.policy,
                identity: &a.identity,
                scope: a.scope.as_deref(),
                rule: None,
                retry_after_ms: retry.map_or(-1, millis_i64),
                reason: "suspended",
                message: s.reason.as_deref(),
                link: None,
            });
        }
        let mut o = CheckOutcome::listed(false, &AccessEntry::parse(b"suspended"), None);
        o.denied_by = Some("suspended".to_owned());
        o.reason = Some(s.reason.clone().unwrap_or_else(|| "suspended".to_owned()));
        o.headers.retry_after = retry.map(|r| r.0.div_ceil(Nanos::PER_SEC));
        o.suspended_retry = retry;
        o
    }

    /// An allow- or deny-listed identity: no rule is checked or charged. A reserve by an
    /// allow-listed identity still gets a reservation (charging nothing), so the caller's
    /// settle works the same.
    fn listed(
        &mut self,
        a: &CheckRequest,
        kind: CheckKind,
        allow: bool,
        entry: &AccessEntry,
    ) -> CheckOutcome {
        let now = self.now;
        let engine = self.engine;
        let mut reservation = None;
        if allow && kind == CheckKind::Reserve {
            let id = engine.next_lease_id.fetch_add(1, Ordering::Relaxed);
            let expires_at = now.saturating_add(a.ttl.unwrap_or(DEFAULT_RESERVATION_TTL));
            let res_id = ReservationId::new(id, &a.identity, engine.cluster_keys);
            let key = res_id.key();
            let r = Reservation {
                id,
                policy: a.policy.clone(),
                identity: a.identity.clone(),
                scope: a.scope.clone(),
                tokens: a.demand.tokens,
                cost: a.demand.cost,
                lease: None,
                expires_at,
                charges: Vec::new(),
            };
            self.with_keys(std::slice::from_ref(&key), |g| {
                g.shard(&key).insert(
                    &key,
                    Entry::with_expiry(Value::Reservation(Box::new(r)), Some(expires_at)),
                )
            });
            reservation = Some((res_id, expires_at));
        }
        if kind != CheckKind::Status {
            self.count_outcome(allow);
            engine.record_usage(
                PolicyName::Name(std::sync::Arc::from(a.policy.as_str())),
                &a.identity,
                now,
                Counts {
                    decisions: 1,
                    denials: u64::from(!allow),
                    warnings: 0,
                    tokens: if allow {
                        tokens_i64(a.demand.tokens)
                    } else {
                        0
                    },
                    cost: if allow { a.demand.cost.0 } else { 0 },
                },
            );
            let scope = a.scope.as_deref();
            if allow {
                if engine.sample_allowed() {
                    engine.emit(&Event::Allowed {
                        at: now,
                        policy: &a.policy,
                        identity: &a.identity,
                        scope,
                        action: "allowlist",
                        delay_ms: 0,
                    });
                }
            } else {
                engine.emit(&Event::Denied {
                    at: now,
                    policy: &a.policy,
                    identity: &a.identity,
                    scope,
                    rule: None,
                    retry_after_ms: -1,
                    reason: "denylist",
                    message: None,
                    link: None,
                });
            }
        }
        CheckOutcome::listed(allow, entry, reservation)
    }
}
