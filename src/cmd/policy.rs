//! Policy commands (issue 4): `POLICY.*` (named plans), `LIMIT.*` (deciding a request against
//! a plan in one atomic step, reserve then settle), `OVERRIDE.*` (per-identity changes) and
//! `ALLOWLIST.*` / `DENYLIST.*` (identities and IP ranges that skip or fail every limit).
//!
//! The model, the decision and the settle arithmetic are pure ([`crate::policy`]); this file
//! parses arguments, resolves the rules under the registry's read lock, locks every rule key's
//! shard at once with [`Ctx::with_keys`], reads the states, runs the decision, writes every
//! new state or none before the locks drop (the AOF journals them there), and renders the
//! reply, the counters and the events. Catalog changes (policies, overrides, lists) are
//! journaled as their own records while the registry's write lock is held. No socket.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;

use super::args::{self, is, Args};
use super::flags::*;
use super::limiter::{count_outcome, field};
use super::{CommandSpec, Ctx, Shared, BASE};
use crate::clock::Nanos;
use crate::error::CommandError;
use crate::limiter::cost::Amount;
use crate::limiter::decision::Decision;
use crate::limiter::lease::LeaseId;
use crate::limiter::units::MAX_DURATION;
use crate::persist::Record;
use crate::policy::access::Entry as AccessEntry;
use crate::policy::decide::{self, Demand, Mode, Outcome, RuleResult, RuleState, StateWrite};
use crate::policy::events::Event;
use crate::policy::headers::{headers, Headers};
use crate::policy::model::{
    check_scope, fmt_duration, join_words, state_key, Applied, Limit, Measure, Override, Policy,
    PolicyError,
};
use crate::policy::registry::{Gate, PendingReservation, Resolved};
use crate::policy::reserve::{self, reservation_key, Charge, Reservation};
use crate::protocol::Frame;
use crate::store::{Entry, Shard, Value};

/// How long a reservation lives when `LIMIT.RESERVE` gives no `TTL`.
pub const DEFAULT_RESERVATION_TTL: Nanos = Nanos(5 * 60 * Nanos::PER_SEC);
/// Events `LIMIT.EVENTS` returns when no count is given.
const DEFAULT_EVENTS: usize = 10;

const CHECK_ARGS: &str = "policy:string identity:string [SCOPE scope:string] \
                          [TOKENS tokens:integer] [COST cost:string] [IP ip:string]";

/// Policy commands.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "POLICY.SET",
        arity: -3,
        flags: WRITE | DENYOOM,
        group: "rate_limit",
        summary: "Creates or replaces a named policy (plan) of rules; a bad rule refuses the whole definition and keeps the old policy.",
        since: "0.1.0",
        complexity: "O(N) where N is the number of words in the definition",
        args: "name:string rule:string...",
        handler: policy_set,
        ..BASE
    },
    CommandSpec {
        name: "POLICY.GET",
        arity: 2,
        flags: READONLY,
        group: "rate_limit",
        summary: "Returns a policy's canonical definition and its rules, or nil.",
        since: "0.1.0",
        args: "name:string",
        handler: policy_get,
        ..BASE
    },
    CommandSpec {
        name: "POLICY.DEL",
        arity: -2,
        flags: WRITE,
        group: "rate_limit",
        summary: "Deletes policies; replies the number deleted. Counted usage stays in the keyspace until it expires.",
        since: "0.1.0",
        args: "name:string...",
        handler: policy_del,
        ..BASE
    },
    CommandSpec {
        name: "POLICY.LIST",
        arity: 1,
        flags: READONLY,
        group: "rate_limit",
        summary: "Lists the policy names, sorted.",
        since: "0.1.0",
        complexity: "O(N) where N is the number of policies",
        handler: policy_list,
        ..BASE
    },
    CommandSpec {
        name: "LIMIT.CHECK",
        arity: -3,
        flags: WRITE | DENYOOM | MOVABLEKEYS,
        group: "rate_limit",
        summary: "Decides a request against every rule of a policy atomically: all rules admit and are charged, or nothing is charged.",
        since: "0.1.0",
        complexity: "O(N) where N is the number of rules",
        args: "policy:string identity:string [SCOPE scope:string] [TOKENS tokens:integer] \
               [COST cost:string] [IP ip:string] [DRYRUN]",
        handler: limit_check,
        ..BASE
    },
    CommandSpec {
        name: "LIMIT.STATUS",
        arity: -3,
        flags: READONLY | MOVABLEKEYS,
        group: "rate_limit",
        summary: "Reports every rule's remaining allowance and whether a check would pass now, changing nothing.",
        since: "0.1.0",
        complexity: "O(N) where N is the number of rules",
        args: CHECK_ARGS,
        handler: limit_status,
        ..BASE
    },
    CommandSpec {
        name: "LIMIT.RESERVE",
        arity: -3,
        flags: WRITE | DENYOOM | MOVABLEKEYS,
        group: "rate_limit",
        summary: "Checks and charges an estimate atomically across a policy's rules and returns a reservation id to settle later.",
        since: "0.1.0",
        complexity: "O(N) where N is the number of rules",
        args: "policy:string identity:string [SCOPE scope:string] [TOKENS tokens:integer] \
               [COST cost:string] [IP ip:string] [TTL ttl:string]",
        handler: limit_reserve,
        ..BASE
    },
    CommandSpec {
        name: "LIMIT.SETTLE",
        arity: -2,
        flags: WRITE | MOVABLEKEYS,
        group: "rate_limit",
        summary: "Settles a reservation at the actual amounts: refunds or charges the difference (even past a cap) and releases its lease.",
        since: "0.1.0",
        complexity: "O(N) where N is the number of rules",
        args: "id:integer [TOKENS tokens:integer] [COST cost:string]",
        handler: limit_settle,
        ..BASE
    },
    CommandSpec {
        name: "LIMIT.CANCEL",
        arity: 2,
        flags: WRITE | MOVABLEKEYS,
        group: "rate_limit",
        summary: "Cancels a reservation: refunds everything it charged and releases its lease.",
        since: "0.1.0",
        complexity: "O(N) where N is the number of rules",
        args: "id:integer",
        handler: limit_cancel,
        ..BASE
    },
    CommandSpec {
        name: "LIMIT.RELEASE",
        arity: -4,
        flags: WRITE | MOVABLEKEYS,
        group: "rate_limit",
        summary: "Releases the concurrency lease a LIMIT.CHECK granted; replies 1 if it was held.",
        since: "0.1.0",
        complexity: "O(N) where N is the number of rules",
        args: "policy:string identity:string lease_id:integer [SCOPE scope:string]",
        handler: limit_release,
        ..BASE
    },
    CommandSpec {
        name: "LIMIT.RESET",
        arity: -2,
        flags: WRITE | MOVABLEKEYS,
        group: "rate_limit",
        summary: "Deletes an identity's counted usage for one policy or for every policy; replies the number of rule states deleted.",
        since: "0.1.0",
        complexity: "O(N) where N is the number of rules",
        args: "identity:string [policy:string]",
        handler: limit_reset,
        ..BASE
    },
    CommandSpec {
        name: "LIMIT.EVENTS",
        arity: -1,
        flags: READONLY,
        group: "rate_limit",
        summary: "Returns the newest policy events as [channel, JSON payload] pairs, oldest first.",
        since: "0.1.0",
        complexity: "O(N) where N is the number of events returned",
        args: "[count:integer]",
        handler: limit_events,
        ..BASE
    },
    CommandSpec {
        name: "OVERRIDE.SET",
        arity: -3,
        flags: WRITE | DENYOOM,
        group: "rate_limit",
        summary: "Gives an identity another policy and/or changed rules, with a reason and an optional expiry.",
        since: "0.1.0",
        complexity: "O(N) where N is the number of words in the definition",
        args: "identity:string [FOR policy:string] [POLICY use:string] [REASON reason:string] \
               [EXPIRE duration:string|EXPIREAT unix-time-milliseconds:integer] [rule:string...]",
        handler: override_set,
        ..BASE
    },
    CommandSpec {
        name: "OVERRIDE.GET",
        arity: 2,
        flags: READONLY,
        group: "rate_limit",
        summary: "Returns an identity's override, or nil.",
        since: "0.1.0",
        args: "identity:string",
        handler: override_get,
        ..BASE
    },
    CommandSpec {
        name: "OVERRIDE.DEL",
        arity: -2,
        flags: WRITE,
        group: "rate_limit",
        summary: "Deletes overrides; replies the number deleted.",
        since: "0.1.0",
        args: "identity:string...",
        handler: override_del,
        ..BASE
    },
    CommandSpec {
        name: "OVERRIDE.LIST",
        arity: 1,
        flags: READONLY,
        group: "rate_limit",
        summary: "Lists the identities that have an override in force.",
        since: "0.1.0",
        complexity: "O(N) where N is the number of overrides",
        handler: override_list,
        ..BASE
    },
    CommandSpec {
        name: "ALLOWLIST.ADD",
        arity: -2,
        flags: WRITE | DENYOOM,
        group: "rate_limit",
        summary: "Adds identities or IP addresses/CIDR ranges that skip every policy limit; replies the number added.",
        since: "0.1.0",
        args: "entry:string...",
        handler: |ctx, req| access_change(ctx, req, false, true),
        ..BASE
    },
    CommandSpec {
        name: "ALLOWLIST.DEL",
        arity: -2,
        flags: WRITE,
        group: "rate_limit",
        summary: "Removes allow-list entries; replies the number removed.",
        since: "0.1.0",
        args: "entry:string...",
        handler: |ctx, req| access_change(ctx, req, false, false),
        ..BASE
    },
    CommandSpec {
        name: "ALLOWLIST.LIST",
        arity: 1,
        flags: READONLY,
        group: "rate_limit",
        summary: "Lists the allow-list entries.",
        since: "0.1.0",
        complexity: "O(N) where N is the number of entries",
        handler: |ctx, _| access_list(ctx, false),
        ..BASE
    },
    CommandSpec {
        name: "DENYLIST.ADD",
        arity: -2,
        flags: WRITE | DENYOOM,
        group: "rate_limit",
        summary: "Adds identities or IP addresses/CIDR ranges whose requests every policy refuses; replies the number added.",
        since: "0.1.0",
        args: "entry:string...",
        handler: |ctx, req| access_change(ctx, req, true, true),
        ..BASE
    },
    CommandSpec {
        name: "DENYLIST.DEL",
        arity: -2,
        flags: WRITE,
        group: "rate_limit",
        summary: "Removes deny-list entries; replies the number removed.",
        since: "0.1.0",
        args: "entry:string...",
        handler: |ctx, req| access_change(ctx, req, true, false),
        ..BASE
    },
    CommandSpec {
        name: "DENYLIST.LIST",
        arity: 1,
        flags: READONLY,
        group: "rate_limit",
        summary: "Lists the deny-list entries.",
        since: "0.1.0",
        complexity: "O(N) where N is the number of entries",
        handler: |ctx, _| access_list(ctx, true),
        ..BASE
    },
];

fn perr(e: PolicyError) -> CommandError {
    CommandError::other(e.0)
}

fn int(n: u64) -> Frame {
    Frame::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

fn ms(n: Nanos) -> Frame {
    int(n.as_millis_ceil())
}

fn text_or_null(s: Option<&str>) -> Frame {
    s.map_or(Frame::Null, Frame::bulk)
}

fn decimal(micros: i64) -> Frame {
    let mut out = Vec::with_capacity(24);
    Amount(micros).write_decimal(&mut out);
    Frame::Bulk(Bytes::from(out))
}

/// A count of a rule's units: a decimal string for a COST rule, else an integer.
fn units_frame(limit: &Limit, n: u64) -> Frame {
    match limit {
        Limit::Cost { .. } => decimal(i64::try_from(n).unwrap_or(i64::MAX)),
        _ => int(n),
    }
}

/// The state a rule key holds, if it is a limiter state; anything else reads as fresh (the
/// keys are the policy layer's own).
fn read_state(shard: &mut Shard, key: &[u8], now: Nanos) -> Option<RuleState> {
    match &shard.get_live(key, now)?.value {
        Value::Gcra(s) => Some(RuleState::Gcra(*s)),
        Value::Window(s) => Some(RuleState::Window(*s)),
        Value::Quota(s) => Some(RuleState::Quota(*s)),
        Value::Cost(s) => Some(RuleState::Cost(*s)),
        Value::Lease(s) => Some(RuleState::Lease(s.clone())),
        _ => None,
    }
}

fn write_state(shard: &mut Shard, key: &[u8], w: StateWrite, now: Nanos) {
    match w {
        StateWrite::Delete => {
            shard.remove(key, now);
        }
        // An expiry already reached means the state is fresh: nothing to keep.
        StateWrite::Put(_, Some(at)) if at <= now => {
            shard.remove(key, now);
        }
        StateWrite::Put(s, at) => {
            let value = match s {
                RuleState::Gcra(s) => Value::Gcra(s),
                RuleState::Window(s) => Value::Window(s),
                RuleState::Quota(s) => Value::Quota(s),
                RuleState::Cost(s) => Value::Cost(s),
                RuleState::Lease(s) => Value::Lease(s),
            };
            shard.insert(key, Entry::with_expiry(value, at));
        }
    }
}

/// The keys of `rules` for `identity`, under policy `policy`.
fn keys_of(policy: &str, rules: &[Applied<'_>], identity: &[u8]) -> Vec<Bytes> {
    rules
        .iter()
        .map(|a| state_key(policy, a.scope, &a.rule.name, identity))
        .collect()
}

/// Parsed `LIMIT.CHECK` / `LIMIT.STATUS` / `LIMIT.RESERVE` arguments.
struct CheckArgs {
    policy: String,
    identity: Bytes,
    scope: Option<String>,
    demand: Demand,
    ip: Option<IpAddr>,
    dryrun: bool,
    ttl: Option<Nanos>,
}

/// A `TOKENS` value: a whole number >= 0.
fn tokens_arg(arg: &[u8]) -> Result<u64, CommandError> {
    match args::parse_i64(arg) {
        Some(n) if n >= 0 => Ok(n as u64),
        _ => Err(CommandError::other(format!(
            "invalid TOKENS '{}': must be a whole number >= 0",
            args::text(arg)
        ))),
    }
}

/// A `COST` value: a decimal >= 0 with at most 6 places.
fn cost_arg(arg: &[u8]) -> Result<Amount, CommandError> {
    let bad = |why: &str| CommandError::other(format!("invalid COST '{}': {why}", args::text(arg)));
    let a = Amount::parse(&args::text(arg)).map_err(|e| bad(&e.to_string()))?;
    if a.0 < 0 {
        return Err(bad("value must not be negative"));
    }
    Ok(a)
}

/// Parses `policy identity` and the options; `DRYRUN` only for a check, `TTL` only for a
/// reserve. Unknown or repeated options are `ERR syntax error`.
fn parse_check(req: &[Bytes], dryrun_ok: bool, ttl_ok: bool) -> Result<CheckArgs, CommandError> {
    let mut a = CheckArgs {
        policy: args::text(&req[1]),
        identity: req[2].clone(),
        scope: None,
        demand: Demand::default(),
        ip: None,
        dryrun: false,
        ttl: None,
    };
    let (mut tokens, mut cost) = (false, false);
    let mut opts = Args::new(req, 3);
    while let Some(opt) = opts.next() {
        if is(opt, "SCOPE") && a.scope.is_none() {
            a.scope = Some(check_scope(opts.value()?).map_err(perr)?);
        } else if is(opt, "TOKENS") && !tokens {
            tokens = true;
            a.demand.tokens = tokens_arg(opts.value()?)?;
        } else if is(opt, "COST") && !cost {
            cost = true;
            a.demand.cost = cost_arg(opts.value()?)?;
        } else if is(opt, "IP") && a.ip.is_none() {
            let v = opts.value()?;
            a.ip = Some(
                args::text(v)
                    .parse()
                    .map_err(|_| CommandError::other(format!("invalid IP '{}'", args::text(v))))?,
            );
        } else if dryrun_ok && is(opt, "DRYRUN") && !a.dryrun {
            a.dryrun = true;
        } else if ttl_ok && is(opt, "TTL") && a.ttl.is_none() {
            let t = super::limiter::duration("TTL", opts.value()?)?;
            if t > MAX_DURATION {
                return Err(CommandError::other("invalid TTL: value is out of range"));
            }
            a.ttl = Some(t);
        } else {
            return Err(CommandError::Syntax);
        }
    }
    Ok(a)
}

/// What kind of check runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Check,
    Status,
    Reserve,
}

/// Everything the reply of a check carries.
struct CheckReply<'a> {
    allowed: bool,
    /// The tightest rule, its decision (the top-level five fields), `None` for a list hit.
    top: Option<(&'a Limit, Decision)>,
    denied_by: Option<String>,
    action: &'static str,
    delay: Nanos,
    reason: Option<String>,
    overridden: Option<String>,
    dryrun: bool,
    warnings: Vec<String>,
    lease: Option<(u64, Nanos)>,
    rules: Vec<Frame>,
    headers: Headers,
    reservation: Option<(u64, Nanos)>,
}

impl CheckReply<'_> {
    fn frame(self) -> Frame {
        let mut m: Vec<(Frame, Frame)> = Vec::with_capacity(22);
        m.push((field("allowed"), Frame::Boolean(self.allowed)));
        match &self.top {
            Some((limit, d)) => {
                m.push((field("limit"), units_frame(limit, d.limit)));
                m.push((field("remaining"), units_frame(limit, d.remaining)));
                m.push((field("retry_after_ms"), Frame::Integer(d.retry_after_ms())));
                m.push((field("reset_after_ms"), Frame::Integer(d.reset_after_ms())));
            }
            None => {
                m.push((field("limit"), Frame::Integer(-1)));
                m.push((field("remaining"), Frame::Integer(-1)));
                m.push((field("retry_after_ms"), Frame::Integer(-1)));
                m.push((field("reset_after_ms"), Frame::Integer(0)));
            }
        }
        m.push((field("denied_by"), text_or_null(self.denied_by.as_deref())));
        m.push((field("action"), static_bulk(self.action)));
        m.push((field("delay_ms"), ms(self.delay)));
        m.push((field("reason"), text_or_null(self.reason.as_deref())));
        m.push((field("override"), text_or_null(self.overridden.as_deref())));
        m.push((field("dryrun"), Frame::Boolean(self.dryrun)));
        m.push((
            field("warnings"),
            Frame::Array(self.warnings.iter().map(Frame::bulk).collect()),
        ));
        m.push((
            field("lease_id"),
            self.lease.map_or(Frame::Integer(-1), |(id, _)| int(id)),
        ));
        if let Some((id, at)) = self.reservation {
            m.push((field("reservation"), int(id)));
            m.push((field("reservation_expires_at_ms"), int(at.as_millis())));
        }
        m.push((field("rules"), Frame::Array(self.rules)));
        m.push((
            field("ratelimit"),
            text_or_null(self.headers.ratelimit.as_deref()),
        ));
        m.push((
            field("ratelimit-policy"),
            text_or_null(self.headers.policy.as_deref()),
        ));
        m.push((
            field("retry-after"),
            self.headers.retry_after.map_or(Frame::Null, int),
        ));
        Frame::Map(m)
    }
}

fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Pass => "pass",
        Outcome::Block => "block",
        Outcome::Slowdown(_) => "slowdown",
        Outcome::Log => "log",
    }
}

/// A bulk string of static text, without a copy or an allocation.
fn static_bulk(s: &'static str) -> Frame {
    Frame::Bulk(Bytes::from_static(s.as_bytes()))
}

/// One rule's entry in the `rules` array.
fn rule_frame(a: &Applied<'_>, r: &RuleResult) -> Frame {
    let d = &r.decision;
    let l = &a.rule.limit;
    Frame::Map(vec![
        (field("rule"), Frame::bulk(&a.rule.name)),
        (field("scope"), text_or_null(a.scope)),
        (field("family"), static_bulk(l.family())),
        (field("measure"), static_bulk(a.rule.measure.name())),
        (
            field("allowed"),
            Frame::Boolean(r.outcome != Outcome::Block),
        ),
        (field("outcome"), static_bulk(outcome_name(r.outcome))),
        (field("action"), static_bulk(a.rule.action.name())),
        (field("limit"), units_frame(l, d.limit)),
        (field("remaining"), units_frame(l, d.remaining)),
        (field("retry_after_ms"), Frame::Integer(d.retry_after_ms())),
        (field("reset_after_ms"), Frame::Integer(d.reset_after_ms())),
        (
            field("charged"),
            match l {
                Limit::Cost { .. } => decimal(r.charged),
                _ => Frame::Integer(r.charged),
            },
        ),
        (field("warning"), Frame::Boolean(r.warned)),
    ])
}

/// A check, status or reserve.
fn run_check(ctx: &mut Ctx<'_>, a: CheckArgs, kind: Kind) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let shared = ctx.shared;
    let gate = shared
        .engine
        .policies
        .read()
        .resolve(&a.policy, &a.identity, a.ip, now)
        .map_err(perr)?;
    let resolved = match gate {
        Gate::Check(r) => r,
        Gate::Allow(e) => return Ok(listed(ctx, &a, kind, true, &e)),
        Gate::Deny(e) => return Ok(listed(ctx, &a, kind, false, &e)),
    };
    let Resolved {
        asked,
        key_policy,
        body,
        overridden,
    } = resolved;
    let rules = body.applicable(a.scope.as_deref());
    let keys = keys_of(&key_policy.name, &rules, &a.identity);
    let need = if kind == Kind::Status {
        crate::acl::user::KEY_READ
    } else {
        crate::acl::user::KEY_ALL
    };
    super::permissions::check_derived_keys(ctx, &keys, need)?;
    let dryrun = a.dryrun || body.dryrun;
    let charge = kind != Kind::Status && !dryrun;
    let has_lease = rules
        .iter()
        .any(|x| matches!(x.rule.limit, Limit::Lease { .. }));
    let next_id = || shared.engine.next_lease_id.fetch_add(1, Ordering::Relaxed);
    // A dry run acquires nothing, so it peeks with an id no lease has.
    let lease_id = LeaseId(if has_lease && charge {
        next_id()
    } else {
        u64::MAX
    });
    let reservation_id = (kind == Kind::Reserve).then(next_id);
    let ttl = a.ttl.unwrap_or(DEFAULT_RESERVATION_TTL);
    let expires_at = now.saturating_add(ttl);
    let mode = match kind {
        Kind::Status => Mode::Status,
        Kind::Check => Mode::Charge {
            lease_id,
            lease_ttl: None,
        },
        Kind::Reserve => Mode::Charge {
            lease_id,
            lease_ttl: Some(ttl),
        },
    };
    let mut lock = keys.clone();
    let res_key = reservation_id.map(reservation_key);
    lock.extend(res_key.clone());
    let demand = a.demand;
    let (verdict, reservation) = ctx.with_keys(&lock, |g| {
        let states: Vec<Option<RuleState>> = keys
            .iter()
            .map(|k| read_state(g.shard(k), k, now))
            .collect();
        let mut v = decide::decide(&rules, &states, &demand, now, mode, body.warn);
        if !v.allowed {
            return (v, None);
        }
        if charge {
            for (k, r) in keys.iter().zip(&mut v.rules) {
                if let Some(w) = r.write.take() {
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
    if kind != Kind::Status {
        count_outcome(ctx, verdict.allowed);
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
        for (x, r) in rules.iter().zip(&verdict.rules) {
            let c = &x.rule.counters;
            match r.outcome {
                Outcome::Pass => &c.allowed,
                Outcome::Block => &c.denied,
                Outcome::Slowdown(_) => &c.slowed,
                Outcome::Log => &c.logged,
            }
            .fetch_add(1, Ordering::Relaxed);
            if r.warned {
                c.warned.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    if let Some(r) = &reservation {
        shared.engine.policies.track_reservation(
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
    let denied_by = verdict.denied_by.map(|i| scoped_name(&rules[i]));
    if kind != Kind::Status {
        let scope = a.scope.as_deref();
        if let Some(rule) = &denied_by {
            shared.engine.emit(&Event::Denied {
                at: now,
                policy: &a.policy,
                identity: &a.identity,
                scope,
                rule: Some(rule),
                retry_after_ms: verdict.retry_after.map_or(-1, |r| {
                    i64::try_from(r.as_millis_ceil()).unwrap_or(i64::MAX)
                }),
                reason: "limit",
            });
        }
        if verdict.allowed && !warnings.is_empty() {
            shared.engine.emit(&Event::Warning {
                at: now,
                policy: &a.policy,
                identity: &a.identity,
                scope,
                rules: warnings.iter().map(String::as_str).collect(),
            });
        }
        if verdict.allowed && shared.engine.sample_allowed() {
            shared.engine.emit(&Event::Allowed {
                at: now,
                policy: &a.policy,
                identity: &a.identity,
                scope,
                action: verdict.action(),
                delay_ms: i64::try_from(verdict.delay.as_millis_ceil()).unwrap_or(i64::MAX),
            });
        }
    }
    let headers = headers(&rules, &verdict);
    let top = verdict.tightest().map(|i| {
        let mut d = verdict.rules[i].decision;
        if !verdict.allowed {
            // The request waits for its slowest blocking rule, not just the first.
            d.retry_after = verdict.retry_after;
        }
        (&rules[i].rule.limit, d)
    });
    let reply = CheckReply {
        allowed: verdict.allowed,
        top,
        denied_by,
        action: verdict.action(),
        delay: verdict.delay,
        reason: None,
        overridden: overridden.map(|o| o.reason.clone().unwrap_or_else(|| "override".into())),
        dryrun,
        warnings,
        lease: verdict
            .lease
            .filter(|_| charge)
            .map(|l| (l.id.0, l.expires_at)),
        rules: rules
            .iter()
            .zip(&verdict.rules)
            .map(|(x, r)| rule_frame(x, r))
            .collect(),
        headers,
        reservation: reservation.map(|r| (r.id, r.expires_at)),
    };
    Ok(reply.frame())
}

/// A rule's name as replies and events show it: `scope/rule` for a scope's rule.
fn scoped_name(a: &Applied<'_>) -> String {
    match a.scope {
        Some(s) => format!("{s}/{}", a.rule.name),
        None => a.rule.name.clone(),
    }
}

/// The reply to an allow- or deny-listed identity: no rule is checked or charged. A reserve
/// by an allow-listed identity still gets a reservation (charging nothing), so the caller's
/// settle works the same.
fn listed(ctx: &mut Ctx<'_>, a: &CheckArgs, kind: Kind, allow: bool, e: &AccessEntry) -> Frame {
    let now = ctx.now;
    let shared = ctx.shared;
    let entry = String::from_utf8_lossy(&e.to_bytes()).into_owned();
    let mut reservation = None;
    if allow && kind == Kind::Reserve {
        let id = shared.engine.next_lease_id.fetch_add(1, Ordering::Relaxed);
        let expires_at = now.saturating_add(a.ttl.unwrap_or(DEFAULT_RESERVATION_TTL));
        let key = reservation_key(id);
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
        ctx.with_keys(std::slice::from_ref(&key), |g| {
            g.shard(&key).insert(
                &key,
                Entry::with_expiry(Value::Reservation(Box::new(r)), Some(expires_at)),
            )
        });
        reservation = Some((id, expires_at));
    }
    if kind != Kind::Status {
        count_outcome(ctx, allow);
        let scope = a.scope.as_deref();
        if allow {
            if shared.engine.sample_allowed() {
                shared.engine.emit(&Event::Allowed {
                    at: now,
                    policy: &a.policy,
                    identity: &a.identity,
                    scope,
                    action: "allowlist",
                    delay_ms: 0,
                });
            }
        } else {
            shared.engine.emit(&Event::Denied {
                at: now,
                policy: &a.policy,
                identity: &a.identity,
                scope,
                rule: None,
                retry_after_ms: -1,
                reason: "denylist",
            });
        }
    }
    CheckReply {
        allowed: allow,
        top: None,
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
        lease: None,
        rules: Vec::new(),
        headers: Headers::default(),
        reservation,
    }
    .frame()
}

/// `LIMIT.CHECK`: decides a request against every applicable rule of a policy at once.
///
/// ```text
/// LIMIT.CHECK policy identity [SCOPE scope] [TOKENS n] [COST x] [IP addr] [DRYRUN]
/// ```
/// Reply: see docs/commands.md ("LIMIT.CHECK"): the uniform five fields of the tightest rule,
/// then `denied_by`, `action`, `delay_ms`, `reason`, `override`, `dryrun`, `warnings`,
/// `lease_id`, `rules`, `ratelimit`, `ratelimit-policy`, `retry-after`.
///
/// Errors: `ERR unknown policy '...'`, `ERR syntax error`, `ERR invalid TOKENS ...`,
/// `ERR invalid COST ...`, `ERR invalid IP ...`, `ERR invalid scope ...`.
fn limit_check(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let a = parse_check(req, true, false)?;
    run_check(ctx, a, Kind::Check)
}

/// `LIMIT.STATUS`: what every rule has left now, and whether the same check would pass;
/// writes nothing.
///
/// ```text
/// LIMIT.STATUS policy identity [SCOPE scope] [TOKENS n] [COST x] [IP addr]
/// ```
fn limit_status(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let a = parse_check(req, false, false)?;
    run_check(ctx, a, Kind::Status)
}

/// `LIMIT.RESERVE`: a check that also stores a reservation of what it charged.
///
/// ```text
/// LIMIT.RESERVE policy identity [SCOPE scope] [TOKENS n] [COST x] [IP addr] [TTL duration]
/// ```
/// Reply: as `LIMIT.CHECK`, plus `reservation` (the id) and `reservation_expires_at_ms`
/// when admitted.
fn limit_reserve(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let a = parse_check(req, false, true)?;
    run_check(ctx, a, Kind::Reserve)
}

fn reservation_id(arg: &[u8]) -> Result<u64, CommandError> {
    args::parse_i64(arg)
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| CommandError::other(format!("invalid reservation id '{}'", args::text(arg))))
}

/// Settles (`actual` given) or cancels (`None`) reservation `id`.
fn settle(
    ctx: &mut Ctx<'_>,
    id: u64,
    actual: Option<(Option<u64>, Option<Amount>)>,
) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let shared = ctx.shared;
    let key = reservation_key(id);
    let missing = || {
        CommandError::other(format!(
            "unknown reservation '{id}' (settled, cancelled or expired)"
        ))
    };
    let found = ctx.with_keys(std::slice::from_ref(&key), |g| {
        match g.shard(&key).get_live(&key, now).map(|e| &e.value) {
            Some(Value::Reservation(r)) => Some(r.clone()),
            _ => None,
        }
    });
    let r = found.ok_or_else(missing)?;
    // The policy as it is now; a deleted policy leaves nothing to adjust.
    let resolved = shared
        .engine
        .policies
        .read()
        .rules_for(&r.policy, &r.identity, now)
        .ok();
    let body = resolved.as_ref().map(|x| x.body.clone());
    let empty = crate::policy::model::Body::default();
    let rules = body
        .as_deref()
        .unwrap_or(&empty)
        .applicable(r.scope.as_deref());
    let keys = resolved.as_ref().map_or_else(Vec::new, |x| {
        keys_of(&x.key_policy.name, &rules, &r.identity)
    });
    super::permissions::check_derived_keys(ctx, &keys, crate::acl::user::KEY_ALL)?;
    let demand = actual.map(|(t, c)| Demand {
        tokens: t.unwrap_or(r.tokens),
        cost: c.unwrap_or(r.cost),
    });
    let mut lock = keys.clone();
    lock.push(key.clone());
    let outcome = ctx.with_keys(&lock, |g| {
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
    let after = outcome.ok_or_else(missing)?;
    shared
        .engine
        .policies
        .untrack_reservation(r.expires_at, r.id);
    let charged: Vec<&[u8]> = r.charges.iter().map(|c| &c.key[..]).collect();
    let rule_frames: Vec<Frame> = rules
        .iter()
        .zip(&keys)
        .zip(&after)
        .filter(|((_, k), _)| charged.contains(&&k[..]))
        .map(|((a, _), (delta, d))| {
            let l = &a.rule.limit;
            Frame::Map(vec![
                (field("rule"), Frame::bulk(&a.rule.name)),
                (field("scope"), text_or_null(a.scope)),
                (field("family"), Frame::bulk(l.family())),
                (field("measure"), Frame::bulk(a.rule.measure.name())),
                (
                    field("adjusted"),
                    match a.rule.measure {
                        Measure::Cost => decimal(*delta),
                        _ => Frame::Integer(*delta),
                    },
                ),
                (field("limit"), units_frame(l, d.limit)),
                (field("remaining"), units_frame(l, d.remaining)),
                (field("reset_after_ms"), Frame::Integer(d.reset_after_ms())),
            ])
        })
        .collect();
    let (tokens, cost) = demand.map_or((0, Amount(0)), |d| (d.tokens, d.cost));
    Ok(Frame::Map(vec![
        (field("reservation"), int(r.id)),
        (
            field("action"),
            Frame::bulk(if actual.is_some() { "settle" } else { "cancel" }),
        ),
        (field("policy"), Frame::bulk(&r.policy)),
        (field("identity"), Frame::Bulk(r.identity.clone())),
        (field("estimated_tokens"), int(r.tokens)),
        (field("tokens"), int(tokens)),
        (field("estimated_cost"), decimal(r.cost.0)),
        (field("cost"), decimal(cost.0)),
        (field("rules"), Frame::Array(rule_frames)),
    ]))
}

/// `LIMIT.SETTLE id [TOKENS n] [COST x]`: records the actual amounts (an omitted one is taken
/// as estimated), refunding or charging each rule the difference, releases the lease and
/// deletes the reservation.
fn limit_settle(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let id = reservation_id(&req[1])?;
    let (mut tokens, mut cost) = (None, None);
    let mut opts = Args::new(req, 2);
    while let Some(opt) = opts.next() {
        if is(opt, "TOKENS") && tokens.is_none() {
            tokens = Some(tokens_arg(opts.value()?)?);
        } else if is(opt, "COST") && cost.is_none() {
            cost = Some(cost_arg(opts.value()?)?);
        } else {
            return Err(CommandError::Syntax);
        }
    }
    settle(ctx, id, Some((tokens, cost)))
}

/// `LIMIT.CANCEL id`: refunds everything the reservation charged.
fn limit_cancel(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let id = reservation_id(&req[1])?;
    settle(ctx, id, None)
}

/// `LIMIT.RELEASE policy identity lease_id [SCOPE scope]`: frees the lease a check granted in
/// every LEASE rule of the policy (for the scope). Replies 1 if it was held, 0 otherwise.
fn limit_release(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let id = LeaseId(args::uint(&req[3])?);
    let scope = match req.len() {
        4 => None,
        6 if is(&req[4], "SCOPE") => Some(check_scope(&req[5]).map_err(perr)?),
        _ => return Err(CommandError::Syntax),
    };
    let resolved = ctx
        .shared
        .engine
        .policies
        .read()
        .rules_for(&args::text(&req[1]), &req[2], now)
        .map_err(perr)?;
    let all = resolved.body.applicable(scope.as_deref());
    let rules: Vec<Applied<'_>> = all
        .into_iter()
        .filter(|a| matches!(a.rule.limit, Limit::Lease { .. }))
        .collect();
    let keys = keys_of(&resolved.key_policy.name, &rules, &req[2]);
    super::permissions::check_derived_keys(ctx, &keys, crate::acl::user::KEY_ALL)?;
    let found = ctx.with_keys(&keys, |g| {
        let mut found = false;
        for (k, a) in keys.iter().zip(&rules) {
            let state = read_state(g.shard(k), k, now);
            let held = matches!(&state, Some(RuleState::Lease(s)) if s.leases.iter().any(|l| l.id == id && l.expires_at > now));
            if let Some(w) = decide::adjust(&a.rule.limit, state.as_ref(), now, 0, Some(id), true) {
                write_state(g.shard(k), k, w, now);
            }
            found |= held;
        }
        found
    });
    Ok(Frame::Integer(i64::from(found)))
}

/// `LIMIT.RESET identity [policy]`: deletes the identity's rule states for `policy` (every
/// section, override rules included), or for every policy.
fn limit_reset(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let identity = req[1].clone();
    let keys: Vec<Bytes> = {
        let t = ctx.shared.engine.policies.read();
        let names: Vec<String> = match req.len() {
            2 => t.policies.keys().cloned().collect(),
            3 => {
                let name = args::text(&req[2]);
                if !t.policies.contains_key(&name) {
                    return Err(CommandError::other(format!("unknown policy '{name}'")));
                }
                vec![name]
            }
            _ => return Err(CommandError::Syntax),
        };
        let mut keys = Vec::new();
        for name in names {
            let r = t.rules_for(&name, &identity, now).map_err(perr)?;
            keys.extend(keys_of(&r.key_policy.name, &r.body.all(), &identity));
        }
        keys.sort();
        keys.dedup();
        keys
    };
    super::permissions::check_derived_keys(ctx, &keys, crate::acl::user::KEY_WRITE)?;
    let n = ctx.with_keys(&keys, |g| {
        keys.iter()
            .filter(|k| g.shard(k).remove(k, now).is_some())
            .count()
    });
    Ok(int(n as u64))
}

/// `LIMIT.EVENTS [count]`: the newest events (default 10), oldest first, each
/// `[channel, payload]`. Reports reservations and overrides that lapsed first.
fn limit_events(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let n = match req.len() {
        1 => DEFAULT_EVENTS,
        2 => usize::try_from(args::uint(&req[1])?).unwrap_or(usize::MAX),
        _ => return Err(CommandError::Syntax),
    };
    ctx.shared.engine.tick(ctx.now);
    Ok(Frame::Array(
        ctx.shared
            .engine
            .policies
            .recent_events(n)
            .into_iter()
            .map(|(c, m)| Frame::Array(vec![Frame::Bulk(c), Frame::Bulk(m)]))
            .collect(),
    ))
}

fn words_of(v: Vec<String>) -> Vec<Bytes> {
    v.into_iter().map(Bytes::from).collect()
}

/// `POLICY.SET name rule...`: validates the whole definition, then replaces the policy.
/// Counted usage is kept: a rule's state key depends only on the policy, the rule's name,
/// the scope and the identity.
fn policy_set(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let p = Policy::parse(&req[1], &req[2..]).map_err(perr)?;
    let record = Record::PolicySet {
        name: Bytes::from(p.name.clone()),
        words: words_of(p.body.words()),
    };
    let shared = ctx.shared;
    let mut t = shared.engine.policies.write();
    t.set_policy(p);
    ctx.journal(&record);
    Ok(Frame::OK)
}

/// One policy as `POLICY.GET` shows it.
fn policy_frame(p: &Policy) -> Frame {
    let rules = p
        .body
        .all()
        .iter()
        .map(|a| {
            let r = a.rule;
            Frame::Map(vec![
                (field("rule"), Frame::bulk(&r.name)),
                (field("scope"), text_or_null(a.scope)),
                (field("family"), Frame::bulk(r.limit.family())),
                (field("measure"), Frame::bulk(r.measure.name())),
                (field("limit"), units_frame(&r.limit, r.limit.quota())),
                (field("window"), Frame::bulk(window_text(&r.limit))),
                (field("action"), Frame::bulk(r.action.name())),
                (
                    field("warn"),
                    r.warn
                        .or(p.body.warn)
                        .map_or(Frame::Null, |f| Frame::bulk(f.to_string())),
                ),
            ])
        })
        .collect();
    Frame::Map(vec![
        (field("name"), Frame::bulk(&p.name)),
        (
            field("definition"),
            Frame::bulk_string(join_words(&p.body.words())),
        ),
        (field("dryrun"), Frame::Boolean(p.body.dryrun)),
        (
            field("warn"),
            p.body
                .warn
                .map_or(Frame::Null, |f| Frame::bulk(f.to_string())),
        ),
        (field("rules"), Frame::Array(rules)),
    ])
}

fn window_text(l: &Limit) -> String {
    use crate::policy::model::CostSpec;
    match l {
        Limit::Rate { rate, .. } | Limit::Window { rate, .. } => fmt_duration(rate.period()),
        Limit::Quota { unit, .. } => unit.name().to_owned(),
        Limit::Cost { per, .. } => match per {
            CostSpec::Calendar { unit, .. } => unit.name().to_owned(),
            CostSpec::Rolling(d) => fmt_duration(*d),
        },
        Limit::Lease { ttl, .. } => fmt_duration(*ttl),
    }
}

/// `POLICY.GET name`: the policy, or nil.
fn policy_get(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let p = ctx
        .shared
        .engine
        .policies
        .read()
        .policies
        .get(args::text(&req[1]).as_str())
        .cloned();
    Ok(p.map_or(Frame::Null, |p| policy_frame(&p)))
}

/// `POLICY.DEL name...`: the number deleted.
fn policy_del(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let shared = ctx.shared;
    let mut t = shared.engine.policies.write();
    let mut n = 0;
    for name in &req[1..] {
        if t.policies.remove(args::text(name).as_str()).is_some() {
            n += 1;
            ctx.journal(&Record::PolicyDel { name: name.clone() });
        }
    }
    Ok(int(n))
}

/// `POLICY.LIST`: the names, sorted.
fn policy_list(ctx: &mut Ctx<'_>, _req: &[Bytes]) -> Result<Frame, CommandError> {
    let t = ctx.shared.engine.policies.read();
    Ok(Frame::Array(t.policies.keys().map(Frame::bulk).collect()))
}

/// `OVERRIDE.SET identity [FOR policy] [POLICY p] [REASON text] [EXPIRE duration] [rules...]`.
fn override_set(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let o = Override::parse(&req[2..], now).map_err(perr)?;
    let shared = ctx.shared;
    let mut t = shared.engine.policies.write();
    if let Some(p) = &o.policy {
        if !t.policies.contains_key(p) {
            return Err(CommandError::other(format!("unknown policy '{p}'")));
        }
    }
    let identity = req[1].clone();
    ctx.journal(&Record::OverrideSet {
        identity: identity.clone(),
        words: words_of(o.words()),
    });
    let o = Arc::new(o);
    t.overrides.insert(identity.clone(), o.clone());
    drop(t);
    shared.engine.emit(&Event::Override {
        at: now,
        identity: &identity,
        change: "set",
        policy: o.policy.as_deref(),
        reason: o.reason.as_deref(),
    });
    Ok(Frame::OK)
}

/// `OVERRIDE.GET identity`: the override in force, or nil.
fn override_get(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let o = ctx
        .shared
        .engine
        .policies
        .read()
        .overrides
        .get(&req[1])
        .filter(|o| o.is_live(now))
        .cloned();
    let Some(o) = o else {
        return Ok(Frame::Null);
    };
    Ok(Frame::Map(vec![
        (field("identity"), Frame::Bulk(req[1].clone())),
        (field("for"), text_or_null(o.only_for.as_deref())),
        (field("policy"), text_or_null(o.policy.as_deref())),
        (field("reason"), text_or_null(o.reason.as_deref())),
        (
            field("expires_at_ms"),
            o.expires_at
                .map_or(Frame::Integer(-1), |at| int(at.as_millis())),
        ),
        (
            field("ttl_ms"),
            o.expires_at
                .map_or(Frame::Integer(-1), |at| ms(at.saturating_sub(now))),
        ),
        (
            field("rules"),
            Frame::bulk_string(join_words(&o.body.words())),
        ),
    ]))
}

/// `OVERRIDE.DEL identity...`: the number deleted.
fn override_del(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let shared = ctx.shared;
    let mut gone = Vec::new();
    {
        let mut t = shared.engine.policies.write();
        for id in &req[1..] {
            if let Some(o) = t.overrides.remove(id) {
                ctx.journal(&Record::OverrideDel {
                    identity: id.clone(),
                });
                if o.is_live(now) {
                    gone.push((id.clone(), o));
                }
            }
        }
    }
    for (identity, o) in &gone {
        shared.engine.emit(&Event::Override {
            at: now,
            identity,
            change: "del",
            policy: o.policy.as_deref(),
            reason: o.reason.as_deref(),
        });
    }
    Ok(int(gone.len() as u64))
}

/// `OVERRIDE.LIST`: identities with an override in force.
fn override_list(ctx: &mut Ctx<'_>, _req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let t = ctx.shared.engine.policies.read();
    Ok(Frame::Array(
        t.overrides
            .iter()
            .filter(|(_, o)| o.is_live(now))
            .map(|(id, _)| Frame::Bulk(id.clone()))
            .collect(),
    ))
}

/// `ALLOWLIST.ADD|DEL` / `DENYLIST.ADD|DEL entry...`: the number of entries added or removed.
fn access_change(
    ctx: &mut Ctx<'_>,
    req: &[Bytes],
    deny: bool,
    add: bool,
) -> Result<Frame, CommandError> {
    let shared = ctx.shared;
    let mut t = shared.engine.policies.write();
    let mut n = 0;
    for raw in &req[1..] {
        if raw.is_empty() {
            return Err(CommandError::other("an entry must not be empty"));
        }
        let e = AccessEntry::parse(raw);
        let list = t.list_mut(deny);
        let changed = if add {
            list.add(e.clone())
        } else {
            list.remove(&e)
        };
        if changed {
            n += 1;
            ctx.journal(&Record::Access {
                deny,
                add,
                entry: e.to_bytes(),
            });
        }
    }
    Ok(int(n))
}

/// `ALLOWLIST.LIST` / `DENYLIST.LIST`.
fn access_list(ctx: &mut Ctx<'_>, deny: bool) -> Result<Frame, CommandError> {
    let t = ctx.shared.engine.policies.read();
    let list = if deny { &t.deny } else { &t.allow };
    Ok(Frame::Array(
        list.entries().map(|e| Frame::Bulk(e.to_bytes())).collect(),
    ))
}

/// The `# Policies` INFO section's lines (`key`, `value`).
pub fn info(shared: &Shared) -> Vec<(String, String)> {
    let t = shared.engine.policies.read();
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let mut out = vec![
        ("policies".to_owned(), t.policies.len().to_string()),
        ("policy_overrides".to_owned(), t.overrides.len().to_string()),
        (
            "policy_allowlist_entries".to_owned(),
            t.allow.entries().count().to_string(),
        ),
        (
            "policy_denylist_entries".to_owned(),
            t.deny.entries().count().to_string(),
        ),
        (
            "policy_reservations_pending".to_owned(),
            shared.engine.policies.pending_reservations().to_string(),
        ),
        (
            "policy_events_published".to_owned(),
            shared.engine.policies.events_published().to_string(),
        ),
    ];
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_./".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    for p in t.policies.values() {
        let c = &p.counters;
        out.push((
            format!("policy_{}", p.name),
            format!(
                "checks={},allowed={},denied={},allowlisted={},denylisted={},overridden={}",
                get(&c.checks),
                get(&c.allowed),
                get(&c.denied),
                get(&c.allowlisted),
                get(&c.denylisted),
                get(&c.overridden)
            ),
        ));
        for a in p.body.all() {
            let c = &a.rule.counters;
            let name = match a.scope {
                Some(s) => format!("rule_{}_{}@{}", p.name, a.rule.name, clean(s)),
                None => format!("rule_{}_{}", p.name, a.rule.name),
            };
            out.push((
                name,
                format!(
                    "allowed={},denied={},slowed={},logged={},warned={}",
                    get(&c.allowed),
                    get(&c.denied),
                    get(&c.slowed),
                    get(&c.logged),
                    get(&c.warned)
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::cmd::testing::*;
    use crate::protocol::Frame;
    use crate::store::Entry;
    use bytes::Bytes;
    use proptest::prelude::*;

    fn run(h: &mut Harness, line: &str) -> Frame {
        let words = crate::policy::model::split_words(line).unwrap();
        let refs: Vec<&str> = words.iter().map(String::as_str).collect();
        h.run(&refs)
    }

    fn int_of(f: &Frame) -> i64 {
        match f {
            Frame::Integer(n) => *n,
            other => panic!("not an integer: {other:?}"),
        }
    }

    fn text(f: &Frame) -> String {
        match f {
            Frame::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
            other => panic!("not a bulk string: {other:?}"),
        }
    }

    fn allowed(f: &Frame) -> bool {
        get(f, "allowed") == Frame::Boolean(true)
    }

    /// `(rule, remaining)` of each rule in a check reply.
    fn remaining(f: &Frame) -> Vec<(String, String)> {
        let Frame::Array(rules) = get(f, "rules") else {
            panic!("rules is not an array")
        };
        rules
            .iter()
            .map(|r| {
                let rem = match get(r, "remaining") {
                    Frame::Integer(n) => n.to_string(),
                    other => text(&other),
                };
                (text(&get(r, "rule")), rem)
            })
            .collect()
    }

    fn rem(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    /// Every live key of database 0 with its entry, sorted.
    fn snapshot(h: &Harness) -> Vec<(Vec<u8>, Entry)> {
        let now = h.clock_now();
        let db = &h.shared.engine.dbs[0];
        let mut v: Vec<(Vec<u8>, Entry)> = (0..db.shard_count())
            .flat_map(|i| {
                let s = db.lock_shard(i);
                s.iter_live(now)
                    .map(|(k, e)| (k.to_vec(), e.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    fn events(h: &mut Harness) -> Vec<(String, String)> {
        let Frame::Array(items) = h.run(&["LIMIT.EVENTS", "1000"]) else {
            panic!("not an array")
        };
        items
            .iter()
            .map(|e| match e {
                Frame::Array(p) => (text(&p[0]), text(&p[1])),
                other => panic!("bad event {other:?}"),
            })
            .collect()
    }

    #[test]
    fn policies_are_set_shown_listed_and_deleted() {
        let mut h = Harness::new();
        assert_eq!(
            run(
                &mut h,
                "POLICY.SET free RATE 100/60s QUOTA 1000/day SCOPE \"POST /chat\" RATE 10/1m"
            ),
            Frame::OK
        );
        run(&mut h, "POLICY.SET pro RATE 1000/1m");
        assert_eq!(
            h.run(&["POLICY.LIST"]),
            Frame::Array(vec![bulk("free"), bulk("pro")])
        );
        let p = h.run(&["POLICY.GET", "free"]);
        assert_eq!(
            text(&get(&p, "definition")),
            "RATE 100/1m QUOTA 1000/day SCOPE \"POST /chat\" RATE 10/1m"
        );
        let Frame::Array(rules) = get(&p, "rules") else {
            panic!()
        };
        assert_eq!(rules.len(), 3);
        assert_eq!(get(&rules[2], "scope"), bulk("POST /chat"));
        assert_eq!(get(&rules[1], "window"), bulk("day"));
        // A bad rule refuses the whole definition; the old policy stays.
        assert_eq!(
            run(&mut h, "POLICY.SET free RATE 1/1s QUOTA 5/fortnight"),
            err("ERR rule 2 (QUOTA): invalid quota '5/fortnight': unknown period 'fortnight' (use minute, hour, day, week or month)")
        );
        assert_eq!(
            text(&get(&h.run(&["POLICY.GET", "free"]), "definition")),
            "RATE 100/1m QUOTA 1000/day SCOPE \"POST /chat\" RATE 10/1m"
        );
        assert_eq!(
            h.run(&["POLICY.SET", "no:colons", "RATE", "1/1s"]),
            err(
                "ERR invalid policy name 'no:colons': use 1 to 64 letters, digits, '_', '.' or '-'"
            )
        );
        assert_eq!(h.run(&["POLICY.DEL", "pro", "nope"]), int(1));
        assert_eq!(h.run(&["POLICY.GET", "pro"]), Frame::Null);
        assert_eq!(
            h.run(&["LIMIT.CHECK", "pro", "u"]),
            err("ERR unknown policy 'pro'")
        );
    }

    #[test]
    fn a_check_charges_every_rule_or_none() {
        let mut h = Harness::new();
        run(&mut h, "POLICY.SET free RATE 3/1s QUOTA 4/day");
        let r = h.run(&["LIMIT.CHECK", "free", "alice"]);
        assert!(allowed(&r));
        assert_eq!(get(&r, "denied_by"), Frame::Null);
        assert_eq!(get(&r, "action"), bulk("allow"));
        assert_eq!(remaining(&r), rem(&[("rate-1s", "2"), ("quota-day", "3")]));
        h.run(&["LIMIT.CHECK", "free", "alice"]);
        h.run(&["LIMIT.CHECK", "free", "alice"]);
        let before = snapshot(&h);
        let r = h.run(&["LIMIT.CHECK", "free", "alice"]);
        assert!(!allowed(&r));
        assert_eq!(get(&r, "denied_by"), bulk("rate-1s"));
        assert_eq!(get(&r, "action"), bulk("block"));
        assert_eq!(get(&r, "retry_after_ms"), int(334));
        assert_eq!(get(&r, "retry-after"), int(1));
        assert_eq!(remaining(&r), rem(&[("rate-1s", "0"), ("quota-day", "1")]));
        assert_eq!(snapshot(&h), before, "a denial changes no rule");
        // Another identity is independent.
        assert!(allowed(&h.run(&["LIMIT.CHECK", "free", "bob"])));
        h.clock.advance(Duration::from_millis(400));
        assert!(allowed(&h.run(&["LIMIT.CHECK", "free", "alice"])));
        h.clock.advance(Duration::from_secs(5));
        let r = h.run(&["LIMIT.CHECK", "free", "alice"]);
        assert_eq!(get(&r, "denied_by"), bulk("quota-day"));
        assert_eq!(
            get(&r, "ratelimit").to_owned(),
            bulk("\"rate-1s\";r=3;t=0, \"quota-day\";r=0;t=86395")
        );
        assert_eq!(
            get(&r, "ratelimit-policy"),
            bulk("\"rate-1s\";q=3;w=1, \"quota-day\";q=4;w=86400")
        );
        assert_eq!(get(&r, "retry-after"), int(86_395));
        assert_eq!((h.session.stats.allowed, h.session.stats.denied), (5, 2));
        assert_eq!(
            h.run(&["TYPE", "limitkv:free::quota-day:alice"]),
            simple("quota")
        );
    }

    #[test]
    fn editing_a_policy_keeps_counted_usage() {
        let mut h = Harness::new();
        run(&mut h, "POLICY.SET p QUOTA 10/day RATE 100/1m");
        for _ in 0..6 {
            h.run(&["LIMIT.CHECK", "p", "u"]);
        }
        run(
            &mut h,
            "POLICY.SET p QUOTA 8/day RATE 200/1m BURST 50 WINDOW 5/1s",
        );
        let r = h.run(&["LIMIT.CHECK", "p", "u"]);
        assert_eq!(
            remaining(&r),
            rem(&[("quota-day", "1"), ("rate-1m", "37"), ("window-1s", "4")]),
            "the quota kept 6 used; the rate kept its schedule in time (6 requests at 600 ms \
             weigh 12 at 300 ms)"
        );
        run(&mut h, "POLICY.SET p QUOTA 7/day");
        assert!(!allowed(&h.run(&["LIMIT.CHECK", "p", "u"])), "7 of 7 used");
    }

    #[test]
    fn scope_rules_add_to_or_replace_the_defaults() {
        let mut h = Harness::new();
        run(
            &mut h,
            "POLICY.SET api RATE 100/1m SCOPE \"POST /chat\" RATE 1/1m SCOPE /health REPLACE WINDOW 1000/1s",
        );
        let r = h.run(&["LIMIT.CHECK", "api", "u", "SCOPE", "POST /chat"]);
        assert_eq!(remaining(&r), rem(&[("rate-1m", "99"), ("rate-1m", "0")]));
        let r = h.run(&["LIMIT.CHECK", "api", "u", "SCOPE", "POST /chat"]);
        assert_eq!(get(&r, "denied_by"), bulk("POST /chat/rate-1m"));
        let r = h.run(&["LIMIT.CHECK", "api", "u", "SCOPE", "GET /x"]);
        assert_eq!(
            remaining(&r),
            rem(&[("rate-1m", "98")]),
            "unknown scope: defaults"
        );
        let r = h.run(&["LIMIT.CHECK", "api", "u", "SCOPE", "/health"]);
        assert_eq!(remaining(&r), rem(&[("window-1s", "999")]));
        assert_eq!(
            h.run(&[
                "EXISTS",
                "limitkv:api:POST /chat:rate-1m:u",
                "limitkv:api::rate-1m:u"
            ]),
            int(2)
        );
    }

    #[test]
    fn slowdown_log_and_dry_runs() {
        let mut h = Harness::new();
        run(
            &mut h,
            "POLICY.SET s RATE 1/1s ACTION slowdown MAXDELAY 2500ms QUOTA 2/day ACTION log",
        );
        h.run(&["LIMIT.CHECK", "s", "u"]);
        let r = h.run(&["LIMIT.CHECK", "s", "u"]);
        assert!(allowed(&r));
        assert_eq!(
            (get(&r, "action"), get(&r, "delay_ms")),
            (bulk("slowdown"), int(1000))
        );
        let r = h.run(&["LIMIT.CHECK", "s", "u"]);
        assert!(allowed(&r), "the quota only logs");
        assert_eq!(
            (get(&r, "action"), get(&r, "delay_ms")),
            (bulk("slowdown"), int(2000))
        );
        let Frame::Array(rules) = get(&r, "rules") else {
            panic!()
        };
        assert_eq!(get(&rules[1], "outcome"), bulk("log"));
        let r = h.run(&["LIMIT.CHECK", "s", "u"]);
        assert_eq!(
            (allowed(&r), get(&r, "denied_by")),
            (false, bulk("rate-1s")),
            "3 s > MAXDELAY"
        );
        // DRYRUN per call and per policy: decided, reported, never charged.
        run(&mut h, "POLICY.SET d QUOTA 1/day");
        let before = snapshot(&h);
        for _ in 0..3 {
            let r = h.run(&["LIMIT.CHECK", "d", "u", "DRYRUN"]);
            assert!(allowed(&r));
            assert_eq!(get(&r, "dryrun"), Frame::Boolean(true));
        }
        run(&mut h, "POLICY.SET dd DRYRUN QUOTA 1/day");
        h.run(&["LIMIT.CHECK", "dd", "u"]);
        assert!(allowed(&h.run(&["LIMIT.CHECK", "dd", "u"])));
        assert_eq!(snapshot(&h), before);
    }

    #[test]
    fn warnings_are_replied_and_published() {
        let mut h = Harness::new();
        run(
            &mut h,
            "POLICY.SET w WARN 0.5 QUOTA 4/day RATE 100/1s WARN 90%",
        );
        let r = h.run(&["LIMIT.CHECK", "w", "u"]);
        assert_eq!(get(&r, "warnings"), Frame::Array(vec![]));
        let r = h.run(&["LIMIT.CHECK", "w", "u"]);
        assert_eq!(get(&r, "warnings"), Frame::Array(vec![bulk("quota-day")]));
        h.run(&["LIMIT.CHECK", "w", "u"]);
        h.run(&["LIMIT.CHECK", "w", "u"]);
        h.run(&["LIMIT.CHECK", "w", "u"]);
        let ev = events(&mut h);
        let warnings = ev
            .iter()
            .filter(|(c, _)| c == "limitkv:events:warning")
            .count();
        assert_eq!(warnings, 3, "a refusal publishes no warning: {ev:?}");
        let (ch, msg) = ev.last().unwrap();
        assert_eq!(ch, "limitkv:events:denied");
        assert_eq!(
            msg,
            &format!(
                "{{\"event\":\"denied\",\"time_ms\":{},\"policy\":\"w\",\"identity\":\"u\",\"scope\":null,\"rule\":\"quota-day\",\"retry_after_ms\":86400000,\"reason\":\"limit\"}}",
                h.clock_ms()
            )
        );
        let info = match h.run(&["INFO", "policies"]) {
            Frame::Verbatim(_, b) => String::from_utf8_lossy(&b).into_owned(),
            other => panic!("{other:?}"),
        };
        assert!(
            info.contains("policy_w:checks=5,allowed=4,denied=1,"),
            "{info}"
        );
        assert!(
            info.contains("rule_w_quota-day:allowed=4,denied=1,slowed=0,logged=0,warned=4"),
            "{info}"
        );
    }

    #[test]
    fn allowed_events_are_sampled_at_the_configured_rate() {
        let mut h = Harness::new();
        assert_eq!(
            h.run(&["CONFIG", "SET", "policy-events-allowed-sample", "0.25"]),
            Frame::OK
        );
        run(&mut h, "POLICY.SET p RATE 1000/1s");
        for _ in 0..8 {
            h.run(&["LIMIT.CHECK", "p", "u"]);
        }
        let allowed = events(&mut h)
            .iter()
            .filter(|(c, _)| c == "limitkv:events:allowed")
            .count();
        assert_eq!(allowed, 2);
    }

    #[test]
    fn status_reads_without_writing() {
        let mut h = Harness::new();
        run(&mut h, "POLICY.SET p RATE 2/1s TOKENS 100/1m");
        h.run(&["LIMIT.CHECK", "p", "u", "TOKENS", "60"]);
        let before = snapshot(&h);
        let r = h.run(&["LIMIT.STATUS", "p", "u", "TOKENS", "50"]);
        assert!(!allowed(&r), "50 tokens would not fit");
        assert_eq!(remaining(&r), rem(&[("rate-1s", "1"), ("tokens-1m", "40")]));
        let r = h.run(&["LIMIT.STATUS", "p", "u"]);
        assert!(allowed(&r));
        assert_eq!(snapshot(&h), before);
        assert_eq!(
            h.run(&["LIMIT.STATUS", "p", "u", "DRYRUN"]),
            err("ERR syntax error")
        );
    }

    #[test]
    fn overrides_redirect_or_merge_and_expire() {
        let mut h = Harness::new();
        run(&mut h, "POLICY.SET free RATE 1000/1m QUOTA 3/day");
        run(&mut h, "POLICY.SET pro RATE 1000/1m");
        h.run(&["LIMIT.CHECK", "free", "acme"]);
        assert_eq!(
            run(
                &mut h,
                "OVERRIDE.SET acme REASON \"contract 42\" QUOTA 10/day EXPIRE 1h"
            ),
            Frame::OK
        );
        let r = h.run(&["LIMIT.CHECK", "free", "acme"]);
        assert_eq!(get(&r, "override"), bulk("contract 42"));
        assert_eq!(
            remaining(&r),
            rem(&[("rate-1m", "998"), ("quota-day", "8")]),
            "the merged rule kept the usage counted under its name"
        );
        let o = h.run(&["OVERRIDE.GET", "acme"]);
        assert_eq!(get(&o, "rules"), bulk("QUOTA 10/day"));
        assert_eq!(get(&o, "ttl_ms"), int(3_600_000));
        assert_eq!(h.run(&["OVERRIDE.LIST"]), Frame::Array(vec![bulk("acme")]));
        run(&mut h, "OVERRIDE.SET bigco POLICY pro");
        let r = h.run(&["LIMIT.CHECK", "free", "bigco"]);
        assert_eq!(remaining(&r), rem(&[("rate-1m", "999")]));
        assert_eq!(
            run(&mut h, "OVERRIDE.SET x POLICY nope"),
            err("ERR unknown policy 'nope'")
        );
        assert_eq!(
            run(&mut h, "OVERRIDE.SET x REASON why"),
            err("ERR an override needs POLICY name or at least one rule")
        );
        h.clock.advance(Duration::from_secs(3600));
        let r = h.run(&["LIMIT.CHECK", "free", "acme"]);
        assert_eq!(get(&r, "override"), Frame::Null);
        assert_eq!(h.run(&["OVERRIDE.GET", "acme"]), Frame::Null);
        assert_eq!(h.run(&["OVERRIDE.DEL", "bigco", "acme"]), int(1));
        let kinds: Vec<String> = events(&mut h)
            .into_iter()
            .filter(|(c, _)| c == "limitkv:events:override")
            .map(|(_, m)| m)
            .collect();
        assert_eq!(kinds.len(), 3, "{kinds:?}");
        assert!(
            kinds[0].contains("\"change\":\"set\"")
                && kinds[0].contains("\"reason\":\"contract 42\"")
        );
        assert!(kinds[2].contains("\"change\":\"del\"") && kinds[2].contains("\"policy\":\"pro\""));
    }

    #[test]
    fn allow_and_deny_lists_skip_or_refuse() {
        let mut h = Harness::new();
        run(&mut h, "POLICY.SET p QUOTA 1/day");
        assert_eq!(
            h.run(&["ALLOWLIST.ADD", "svc", "10.0.0.0/8", "svc"]),
            int(2)
        );
        assert_eq!(h.run(&["DENYLIST.ADD", "2001:db8::/32", "mallory"]), int(2));
        for _ in 0..3 {
            let r = h.run(&["LIMIT.CHECK", "p", "svc"]);
            assert!(allowed(&r));
            assert_eq!(get(&r, "reason"), bulk("allowlist:svc"));
        }
        let r = h.run(&["LIMIT.CHECK", "p", "anon", "IP", "10.1.2.3"]);
        assert_eq!(get(&r, "reason"), bulk("allowlist:10.0.0.0/8"));
        let r = h.run(&["LIMIT.CHECK", "p", "anon", "IP", "2001:db8::9"]);
        assert!(!allowed(&r));
        assert_eq!(get(&r, "denied_by"), bulk("denylist"));
        assert_eq!(get(&r, "retry_after_ms"), int(-1));
        assert!(!allowed(&h.run(&["LIMIT.CHECK", "p", "mallory"])));
        assert_eq!(
            h.run(&["LIMIT.CHECK", "p", "x", "IP", "999.1.1.1"]),
            err("ERR invalid IP '999.1.1.1'")
        );
        assert_eq!(
            h.run(&["ALLOWLIST.LIST"]),
            Frame::Array(vec![bulk("10.0.0.0/8"), bulk("svc")])
        );
        assert_eq!(h.run(&["DENYLIST.DEL", "mallory", "nobody"]), int(1));
        assert!(allowed(&h.run(&["LIMIT.CHECK", "p", "mallory"])));
        assert!(snapshot(&h).len() == 1, "only mallory's quota was charged");
    }

    #[test]
    fn reserve_settle_cancel_and_expiry() {
        let mut h = Harness::new();
        run(
            &mut h,
            "POLICY.SET ai TOKENS 10000/1m COST 1.00/day LEASE 2 TTL 30s",
        );
        let r = h.run(&[
            "LIMIT.RESERVE",
            "ai",
            "u",
            "TOKENS",
            "4000",
            "COST",
            "0.2",
            "TTL",
            "1m",
        ]);
        assert!(allowed(&r));
        let id = int_of(&get(&r, "reservation"));
        assert_eq!(
            remaining(&r),
            rem(&[("tokens-1m", "6000"), ("cost-day", "0.8"), ("lease", "1")])
        );
        let key = format!("limitkv-reservation:{id}");
        assert_eq!(h.run(&["TYPE", &key]), simple("reservation"));
        assert_eq!(h.run(&["PTTL", &key]), int(60_000));
        let s = h.run(&[
            "LIMIT.SETTLE",
            &id.to_string(),
            "TOKENS",
            "1234",
            "COST",
            "0.05",
        ]);
        assert_eq!(get(&s, "action"), bulk("settle"));
        assert_eq!(
            remaining(&s),
            rem(&[("tokens-1m", "8766"), ("cost-day", "0.95"), ("lease", "2")])
        );
        assert_eq!(
            h.run(&["LIMIT.SETTLE", &id.to_string()]),
            err(&format!(
                "ERR unknown reservation '{id}' (settled, cancelled or expired)"
            ))
        );
        // Settling past the cap records reality.
        let r = h.run(&["LIMIT.RESERVE", "ai", "u", "TOKENS", "100", "COST", "0.5"]);
        let id2 = int_of(&get(&r, "reservation")).to_string();
        let s = h.run(&["LIMIT.SETTLE", &id2, "COST", "2"]);
        assert_eq!(remaining(&s)[1], ("cost-day".to_string(), "0".to_string()));
        let r = h.run(&["LIMIT.CHECK", "ai", "u", "COST", "0.01"]);
        assert_eq!(get(&r, "denied_by"), bulk("cost-day"));
        // Cancel refunds everything.
        let r = h.run(&["LIMIT.RESERVE", "ai", "v", "TOKENS", "500"]);
        let id3 = int_of(&get(&r, "reservation")).to_string();
        let c = h.run(&["LIMIT.CANCEL", &id3]);
        assert_eq!(
            remaining(&c),
            rem(&[("tokens-1m", "10000"), ("lease", "2")])
        );
        // An unsettled reservation expires keeping its estimate, and is reported.
        run(&mut h, "POLICY.SET daily TOKENS 5000/day");
        let r = h.run(&["LIMIT.RESERVE", "daily", "w", "TOKENS", "700", "TTL", "10s"]);
        let id4 = int_of(&get(&r, "reservation"));
        h.clock.advance(Duration::from_secs(11));
        let r = h.run(&["LIMIT.STATUS", "daily", "w"]);
        assert_eq!(remaining(&r), rem(&[("tokens-day", "4300")]));
        let ev = events(&mut h);
        let (ch, msg) = ev
            .iter()
            .find(|(c, _)| c == "limitkv:events:reservation")
            .unwrap();
        assert_eq!(ch, "limitkv:events:reservation");
        assert!(
            msg.contains(&format!("\"id\":{id4},\"change\":\"expired\"")),
            "{msg}"
        );
        assert_eq!(
            h.run(&["LIMIT.SETTLE", &id4.to_string()]),
            err(&format!(
                "ERR unknown reservation '{id4}' (settled, cancelled or expired)"
            ))
        );
        assert_eq!(
            h.run(&["LIMIT.SETTLE", "x"]),
            err("ERR invalid reservation id 'x'")
        );
    }

    #[test]
    fn breaker_transitions_are_published() {
        let mut h = Harness::new();
        h.run(&["BREAKER.REPORT", "pay", "FAILURE", "THRESHOLD", "2"]);
        h.run(&["BREAKER.REPORT", "pay", "FAILURE", "THRESHOLD", "2"]);
        h.run(&["BREAKER.TRIP", "pay"]);
        h.run(&["BREAKER.RESET", "pay"]);
        let ev: Vec<String> = events(&mut h)
            .into_iter()
            .filter(|(c, _)| c == "limitkv:events:breaker")
            .map(|(_, m)| m)
            .collect();
        assert_eq!(
            ev.len(),
            2,
            "a trip of an open breaker is no transition: {ev:?}"
        );
        assert!(
            ev[0].contains("\"key\":\"pay\",\"from\":\"closed\",\"to\":\"open\""),
            "{ev:?}"
        );
        assert!(
            ev[1].contains("\"from\":\"open\",\"to\":\"closed\""),
            "{ev:?}"
        );
    }

    #[test]
    fn leases_from_checks_are_released() {
        let mut h = Harness::new();
        run(&mut h, "POLICY.SET c LEASE 1 TTL 10s");
        let r = h.run(&["LIMIT.CHECK", "c", "u"]);
        let id = int_of(&get(&r, "lease_id"));
        assert!(id > 0);
        assert!(!allowed(&h.run(&["LIMIT.CHECK", "c", "u"])));
        assert_eq!(h.run(&["LIMIT.RELEASE", "c", "u", &id.to_string()]), int(1));
        assert_eq!(h.run(&["LIMIT.RELEASE", "c", "u", &id.to_string()]), int(0));
        assert!(allowed(&h.run(&["LIMIT.CHECK", "c", "u"])));
        h.clock.advance(Duration::from_secs(10));
        assert!(
            allowed(&h.run(&["LIMIT.CHECK", "c", "u"])),
            "the lease expired"
        );
    }

    #[test]
    fn reset_deletes_an_identitys_states() {
        let mut h = Harness::new();
        run(&mut h, "POLICY.SET a QUOTA 1/day SCOPE x RATE 1/1m");
        run(&mut h, "POLICY.SET b QUOTA 1/day");
        h.run(&["LIMIT.CHECK", "a", "u", "SCOPE", "x"]);
        h.run(&["LIMIT.CHECK", "b", "u"]);
        h.run(&["LIMIT.CHECK", "b", "v"]);
        assert_eq!(h.run(&["LIMIT.RESET", "u", "b"]), int(1));
        assert!(allowed(&h.run(&["LIMIT.CHECK", "b", "u"])));
        assert_eq!(h.run(&["LIMIT.RESET", "u"]), int(3));
        assert_eq!(h.run(&["DBSIZE"]), int(1), "v's state stays");
        assert_eq!(
            h.run(&["LIMIT.RESET", "u", "zz"]),
            err("ERR unknown policy 'zz'")
        );
    }

    #[test]
    fn checks_run_inside_transactions_and_foreign_keys_read_as_fresh() {
        let mut h = Harness::new();
        run(&mut h, "POLICY.SET p QUOTA 2/day");
        h.run(&["SET", "limitkv:p::quota-day:u", "junk"]);
        h.run(&["MULTI"]);
        h.run(&["LIMIT.CHECK", "p", "u"]);
        h.run(&["LIMIT.CHECK", "p", "u"]);
        h.run(&["LIMIT.CHECK", "p", "u"]);
        let Frame::Array(replies) = h.run(&["EXEC"]) else {
            panic!()
        };
        let got: Vec<bool> = replies.iter().map(allowed).collect();
        assert_eq!(got, [true, true, false]);
    }

    #[test]
    fn bad_arguments_are_clear_errors() {
        let mut h = Harness::new();
        run(&mut h, "POLICY.SET p RATE 1/1s");
        // (label, command, error)
        let cases = [
            ("unknown option", "LIMIT.CHECK p u FOO", "ERR syntax error"),
            (
                "repeated option",
                "LIMIT.CHECK p u TOKENS 1 TOKENS 2",
                "ERR syntax error",
            ),
            (
                "negative tokens",
                "LIMIT.CHECK p u TOKENS -1",
                "ERR invalid TOKENS '-1': must be a whole number >= 0",
            ),
            (
                "negative cost",
                "LIMIT.CHECK p u COST -1",
                "ERR invalid COST '-1': value must not be negative",
            ),
            (
                "bad cost",
                "LIMIT.CHECK p u COST 1e3",
                "ERR invalid COST '1e3': amount must be a decimal number such as 1.25",
            ),
            ("ttl on check", "LIMIT.CHECK p u TTL 1s", "ERR syntax error"),
            (
                "bad ttl",
                "LIMIT.RESERVE p u TTL 0s",
                "ERR invalid TTL '0s': value must be greater than zero",
            ),
            ("missing value", "LIMIT.CHECK p u SCOPE", "ERR syntax error"),
            (
                "arity",
                "LIMIT.CHECK p",
                "ERR wrong number of arguments for 'limit.check' command",
            ),
            ("settle option", "LIMIT.SETTLE 1 FOO 2", "ERR syntax error"),
            (
                "events count",
                "LIMIT.EVENTS x",
                "ERR value is not an integer or out of range",
            ),
            (
                "release syntax",
                "LIMIT.RELEASE p u 1 SCOPE",
                "ERR syntax error",
            ),
            (
                "empty entry",
                "ALLOWLIST.ADD \"\"",
                "ERR an entry must not be empty",
            ),
        ];
        for (label, line, want) in cases {
            assert_eq!(run(&mut h, line), err(want), "{label}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Whatever the traffic, a refused LIMIT.CHECK leaves every key exactly as it was.
        #[test]
        fn a_denied_check_changes_no_rule_state(
            steps in proptest::collection::vec((0u64..1500, 0u64..60, 0u64..400_000, any::<bool>()), 1..40)
        ) {
            let mut h = Harness::new();
            run(&mut h, "POLICY.SET p RATE 4/1s TOKENS 100/1m TOKENS WINDOW 150/10s \
                         QUOTA 30/hour COST 1/hour LEASE 3 TTL 2s SCOPE s WINDOW 2/1s");
            for (dt, tokens, micros, scoped) in steps {
                h.clock.advance(Duration::from_millis(dt));
                let before = snapshot(&h);
                let (t, c) = (tokens.to_string(), format!("0.{micros:06}"));
                let mut cmd = vec!["LIMIT.CHECK", "p", "id", "TOKENS", &t, "COST", &c];
                if scoped {
                    cmd.extend(["SCOPE", "s"]);
                }
                let r = h.run(&cmd);
                if get(&r, "allowed") == Frame::Boolean(false) {
                    prop_assert_eq!(snapshot(&h), before);
                }
            }
        }
    }

    #[test]
    fn reservation_ids_outlive_the_counter() {
        // The start-up scan lifts the id counter above ids found in the keyspace.
        let h = Harness::new();
        let r = crate::policy::reserve::Reservation {
            id: u64::MAX / 2,
            policy: "p".into(),
            identity: Bytes::from_static(b"u"),
            scope: None,
            tokens: 1,
            cost: crate::limiter::cost::Amount(0),
            lease: None,
            expires_at: h
                .clock_now()
                .saturating_add(crate::clock::Nanos::from_secs(60)),
            charges: vec![],
        };
        let key = crate::policy::reserve::reservation_key(r.id);
        let at = Some(r.expires_at);
        h.shared.engine.dbs[0].with_shard(&key, |s| {
            s.insert(
                &key,
                Entry::with_expiry(crate::store::Value::Reservation(Box::new(r)), at),
            )
        });
        h.shared.engine.start().unwrap();
        assert!(
            h.shared
                .engine
                .next_lease_id
                .load(std::sync::atomic::Ordering::Relaxed)
                > u64::MAX / 2
        );
        assert_eq!(h.shared.engine.policies.pending_reservations(), 1);
    }
}
