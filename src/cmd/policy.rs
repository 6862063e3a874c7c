//! Policy decision commands (issue 4): `LIMIT.*`, deciding a request against a named plan in
//! one atomic step, reserve then settle. The catalog commands (`POLICY.*`, `OVERRIDE.*`,
//! `ALLOWLIST.*` / `DENYLIST.*`) are in [`super::policy_admin`].
//!
//! The flow is the engine's ([`crate::engine::check`], [`crate::engine::settle`]): this file
//! parses arguments, asks the engine for a plan (the rule keys a request derives from its
//! identity), checks those keys against the session's ACL before anything is charged, runs
//! the plan, and renders the reply. No socket.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::args::{self, is, Args};
use super::flags::*;
use super::limiter::field;
use super::{CommandSpec, Ctx, Shared, BASE};
use crate::acl::user::{KEY_ALL, KEY_READ, KEY_WRITE};
use crate::clock::Nanos;
use crate::engine::check::{CheckKind, CheckOutcome, CheckRequest, RuleReport};
use crate::engine::settle::{Actual, Partial, Settled, SettledRule};
use crate::error::CommandError;
use crate::limiter::cost::Amount;
use crate::limiter::lease::{LeaseId, Priority};
use crate::limiter::units::MAX_DURATION;
use crate::policy::decide::Outcome;
use crate::policy::model::{check_scope, Limit, Measure, PolicyError};
use crate::policy::reserve::ReservationId;
use crate::protocol::Frame;

pub use crate::engine::check::DEFAULT_RESERVATION_TTL;

/// Events `LIMIT.EVENTS` returns when no count is given.
const DEFAULT_EVENTS: usize = 10;

const CHECK_ARGS: &str = "policy:string identity:string [SCOPE scope:string] \
                          [TOKENS tokens:integer] [COST cost:string] [IP ip:string] [PRIORITY priority:string]";

/// `LIMIT.*` commands. The identity argument is declared as the key (first/last key, a key
/// spec in `COMMAND INFO`, `COMMAND GETKEYS`) so that cluster clients route a check to the node
/// of the identity's slot; the rule keys are derived from it server-side (`MOVABLEKEYS`: ACL
/// rules check the derived keys, not the identity).
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "LIMIT.CHECK",
        arity: -3,
        flags: WRITE | DENYOOM | MOVABLEKEYS,
        group: "rate_limit",
        summary: "Decides a request against every rule of a policy atomically: all rules admit and are charged, or nothing is charged.",
        since: "0.1.0",
        complexity: "O(N) where N is the number of rules",
        args: "policy:string identity:string [SCOPE scope:string] [TOKENS tokens:integer] \
               [COST cost:string] [IP ip:string] [PRIORITY priority:string] [DRYRUN]",
        first_key: 2,
        last_key: 2,
        key_step: 1,
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
        first_key: 2,
        last_key: 2,
        key_step: 1,
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
               [COST cost:string] [IP ip:string] [PRIORITY priority:string] [TTL ttl:string]",
        first_key: 2,
        last_key: 2,
        key_step: 1,
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
        args: "id:string [PARTIAL] [TOKENS tokens:integer] [COST cost:string]",
        // The id is the routing key: in cluster mode it carries the identity's hash tag
        // (`{tag}17`), so a cluster client sends the settle to the node holding it.
        first_key: 1,
        last_key: 1,
        key_step: 1,
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
        args: "id:string",
        // The id is the routing key: in cluster mode it carries the identity's hash tag
        // (`{tag}17`), so a cluster client sends the settle to the node holding it.
        first_key: 1,
        last_key: 1,
        key_step: 1,
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
        first_key: 2,
        last_key: 2,
        key_step: 1,
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
        first_key: 1,
        last_key: 1,
        key_step: 1,
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
];

pub(super) fn perr(e: PolicyError) -> CommandError {
    CommandError::other(e.0)
}

pub(super) fn int(n: u64) -> Frame {
    Frame::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

pub(super) fn ms(n: Nanos) -> Frame {
    int(n.as_millis_ceil())
}

pub(super) fn text_or_null(s: Option<&str>) -> Frame {
    s.map_or(Frame::Null, Frame::bulk)
}

fn decimal(micros: i64) -> Frame {
    let mut out = Vec::with_capacity(24);
    Amount(micros).write_decimal(&mut out);
    Frame::Bulk(Bytes::from(out))
}

/// A count of a rule's units: a decimal string for a COST rule, else an integer.
pub(super) fn units_frame(limit: &Limit, n: u64) -> Frame {
    units(matches!(limit, Limit::Cost { .. }), n)
}

/// A count of units: a decimal string when `cost`, else an integer.
fn units(cost: bool, n: u64) -> Frame {
    if cost {
        decimal(i64::try_from(n).unwrap_or(i64::MAX))
    } else {
        int(n)
    }
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
/// reserve. Unknown or repeated options are `ERR syntax error`. The HTTP check API builds the
/// same arguments from its JSON body or query and parses them here, so both surfaces accept
/// and refuse the same values with the same texts.
pub(crate) fn parse_check(
    req: &[Bytes],
    dryrun_ok: bool,
    ttl_ok: bool,
) -> Result<CheckRequest, CommandError> {
    let mut a = CheckRequest {
        policy: args::text(&req[1]),
        identity: req[2].clone(),
        ..CheckRequest::default()
    };
    let (mut tokens, mut cost, mut priority) = (false, false, false);
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
        } else if is(opt, "PRIORITY") && !priority {
            priority = true;
            let v = opts.value()?;
            a.demand.priority = Priority::parse(v).ok_or_else(|| {
                CommandError::other(format!(
                    "invalid PRIORITY '{}': use high, normal or low",
                    args::text(v)
                ))
            })?;
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

pub(crate) fn outcome_name(o: Outcome) -> &'static str {
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
fn rule_frame(r: RuleReport) -> Frame {
    let d = &r.decision;
    let cost = r.is_cost();
    Frame::Map(vec![
        (field("rule"), Frame::bulk_string(r.name)),
        (
            field("scope"),
            r.scope.map_or(Frame::Null, Frame::bulk_string),
        ),
        (field("family"), static_bulk(r.family)),
        (field("measure"), static_bulk(r.measure.name())),
        (
            field("allowed"),
            Frame::Boolean(r.outcome != Outcome::Block),
        ),
        (field("outcome"), static_bulk(outcome_name(r.outcome))),
        (field("action"), static_bulk(r.action.name())),
        (field("limit"), units(cost, d.limit)),
        (field("remaining"), units(cost, d.remaining)),
        (field("retry_after_ms"), Frame::Integer(d.retry_after_ms())),
        (field("reset_after_ms"), Frame::Integer(d.reset_after_ms())),
        (
            field("charged"),
            if cost {
                decimal(r.charged)
            } else {
                Frame::Integer(r.charged)
            },
        ),
        (field("warning"), Frame::Boolean(r.warned)),
        (field("overage"), units(cost, r.overage)),
    ])
}

/// The reply of a check, status or reserve (the HTTP check API renders it as JSON).
pub(crate) fn check_frame(o: CheckOutcome) -> Frame {
    let mut m: Vec<(Frame, Frame)> = Vec::with_capacity(30);
    m.push((field("allowed"), Frame::Boolean(o.allowed)));
    match (o.tightest_rule(), o.decision()) {
        (Some(r), Some(d)) => {
            m.push((field("limit"), units(r.is_cost(), d.limit)));
            m.push((field("remaining"), units(r.is_cost(), d.remaining)));
            m.push((field("retry_after_ms"), Frame::Integer(d.retry_after_ms())));
            m.push((field("reset_after_ms"), Frame::Integer(d.reset_after_ms())));
        }
        _ => {
            m.push((field("limit"), Frame::Integer(-1)));
            m.push((field("remaining"), Frame::Integer(-1)));
            m.push((
                field("retry_after_ms"),
                o.suspended_retry.map_or(Frame::Integer(-1), ms),
            ));
            m.push((field("reset_after_ms"), Frame::Integer(0)));
        }
    }
    m.push((field("denied_by"), text_or_null(o.denied_by.as_deref())));
    m.push((field("action"), static_bulk(o.action)));
    m.push((field("delay_ms"), ms(o.delay)));
    m.push((field("reason"), text_or_null(o.reason.as_deref())));
    m.push((field("override"), text_or_null(o.overridden.as_deref())));
    m.push((field("dryrun"), Frame::Boolean(o.dryrun)));
    m.push((
        field("warnings"),
        Frame::Array(o.warnings.iter().map(Frame::bulk).collect()),
    ));
    m.push((field("warning"), Frame::Boolean(o.warning)));
    m.push((field("overage"), Frame::Boolean(o.overage)));
    m.push((field("message"), text_or_null(o.message.as_deref())));
    m.push((field("link"), text_or_null(o.link.as_deref())));
    m.push((
        field("lease_id"),
        o.lease.map_or(Frame::Integer(-1), |(id, _)| int(id.0)),
    ));
    if let Some((id, at)) = o.reservation {
        m.push((field("reservation"), reservation_frame(&id)));
        m.push((field("reservation_expires_at_ms"), int(at.as_millis())));
    }
    m.push((
        field("rules"),
        Frame::Array(o.rules.into_iter().map(rule_frame).collect()),
    ));
    m.push((
        field("ratelimit"),
        text_or_null(o.headers.ratelimit.as_deref()),
    ));
    m.push((
        field("ratelimit-policy"),
        text_or_null(o.headers.policy.as_deref()),
    ));
    m.push((
        field("retry-after"),
        o.headers.retry_after.map_or(Frame::Null, int),
    ));
    let legacy = o.headers.legacy;
    m.push((
        field("x-ratelimit-limit"),
        legacy.map_or(Frame::Null, |l| int(l.limit)),
    ));
    m.push((
        field("x-ratelimit-remaining"),
        legacy.map_or(Frame::Null, |l| int(l.remaining)),
    ));
    m.push((
        field("x-ratelimit-reset"),
        legacy.map_or(Frame::Null, |l| int(l.reset)),
    ));
    Frame::Map(m)
}

/// The access a check of `kind` needs to its rule keys: read for a status, read and write
/// otherwise.
pub(crate) fn key_need(kind: CheckKind) -> u8 {
    if kind == CheckKind::Status {
        KEY_READ
    } else {
        KEY_ALL
    }
}

/// The spec of the command a check of `kind` is (`LIMIT.CHECK`, `LIMIT.STATUS`,
/// `LIMIT.RESERVE`), for surfaces that run the steps without dispatching (HTTP).
pub(crate) fn check_spec(kind: CheckKind) -> &'static CommandSpec {
    table_spec(match kind {
        CheckKind::Check => 0,
        CheckKind::Status => 1,
        CheckKind::Reserve => 2,
    })
}

/// The spec of `LIMIT.SETTLE` (`settle`) or `LIMIT.CANCEL`.
pub(crate) fn settle_spec(settle: bool) -> &'static CommandSpec {
    table_spec(if settle { 3 } else { 4 })
}

/// `COMMANDS[i]` as the command table holds it: the ACL catalog knows specs by their address,
/// and a `const` slice's element may live at another address than the table's.
fn table_spec(i: usize) -> &'static CommandSpec {
    // Invariant: every spec of COMMANDS is in the command table (cmd/mod.rs chains them).
    super::lookup(COMMANDS[i].name.as_bytes()).expect("LIMIT.* commands are in the table")
}

/// A check, status or reserve: plan, ACL check of the derived keys, execute, render.
fn run_check(ctx: &mut Ctx<'_>, a: CheckRequest, kind: CheckKind) -> Result<Frame, CommandError> {
    let plan = ctx.call().plan_check(kind, a)?;
    super::permissions::check_derived_keys(ctx, plan.keys(), key_need(kind))?;
    if kind == CheckKind::Check {
        super::memory::derived_keys_exist(ctx, plan.keys())?;
    }
    Ok(check_frame(ctx.call().execute_check(plan)))
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
    run_check(ctx, a, CheckKind::Check)
}

/// `LIMIT.STATUS`: what every rule has left now, and whether the same check would pass;
/// writes nothing.
///
/// ```text
/// LIMIT.STATUS policy identity [SCOPE scope] [TOKENS n] [COST x] [IP addr]
/// ```
fn limit_status(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let a = parse_check(req, false, false)?;
    run_check(ctx, a, CheckKind::Status)
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
    run_check(ctx, a, CheckKind::Reserve)
}

fn reservation_id(arg: &[u8]) -> Result<ReservationId, CommandError> {
    ReservationId::parse(arg)
        .ok_or_else(|| CommandError::other(format!("invalid reservation id '{}'", args::text(arg))))
}

/// A reservation id in a reply: an integer, or in cluster mode (`{tag}17`) a bulk string.
fn reservation_frame(id: &ReservationId) -> Frame {
    match id.tag {
        None => int(id.n),
        Some(_) => Frame::Bulk(id.to_bytes()),
    }
}

/// The per-rule maps of a settle, a cancel or a streaming settle: `rule`, `scope`, `family`,
/// `measure`, `adjusted` (charged, or refunded when negative), `limit`, `remaining`,
/// `reset_after_ms`.
fn settled_rules(rules: &[SettledRule]) -> Frame {
    let map = |x: &SettledRule| {
        let d = &x.decision;
        Frame::Map(vec![
            (field("rule"), Frame::bulk(&x.name)),
            (field("scope"), text_or_null(x.scope.as_deref())),
            (field("family"), Frame::bulk(x.family)),
            (field("measure"), Frame::bulk(x.measure.name())),
            (
                field("adjusted"),
                match x.measure {
                    Measure::Cost => decimal(x.adjusted),
                    _ => Frame::Integer(x.adjusted),
                },
            ),
            (field("limit"), units(x.is_cost(), d.limit)),
            (field("remaining"), units(x.is_cost(), d.remaining)),
            (field("reset_after_ms"), Frame::Integer(d.reset_after_ms())),
        ])
    };
    Frame::Array(rules.iter().map(map).collect())
}

/// The reply of a settle or cancel (the HTTP check API renders it as JSON).
pub(crate) fn settled_frame(s: Settled) -> Frame {
    let r = &s.reservation;
    Frame::Map(vec![
        (field("reservation"), reservation_frame(&s.id)),
        (
            field("action"),
            Frame::bulk(if s.settled { "settle" } else { "cancel" }),
        ),
        (field("policy"), Frame::bulk(&r.policy)),
        (field("identity"), Frame::Bulk(r.identity.clone())),
        (field("estimated_tokens"), int(r.tokens)),
        (field("tokens"), int(s.tokens)),
        (field("estimated_cost"), decimal(r.cost.0)),
        (field("cost"), decimal(s.cost.0)),
        (field("rules"), settled_rules(&s.rules)),
    ])
}

/// Settles (`actual` given) or cancels (`None`) reservation `id`.
fn settle(
    ctx: &mut Ctx<'_>,
    id: &ReservationId,
    actual: Option<Actual>,
) -> Result<Frame, CommandError> {
    let plan = ctx.call().plan_settle(id, actual)?;
    super::permissions::check_derived_keys(ctx, plan.keys(), KEY_ALL)?;
    Ok(settled_frame(ctx.call().execute_settle(plan)?))
}

/// `LIMIT.SETTLE id [TOKENS n] [COST x]`: records the actual amounts (an omitted one is taken
/// as estimated), refunding or charging each rule the difference, releases the lease and
/// deletes the reservation.
///
/// `LIMIT.SETTLE id PARTIAL [TOKENS n] [COST x]` (at least one): a streaming settle, `n` and
/// `x` the stream's running totals; the reply says whether the stream is `exhausted`.
fn limit_settle(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    if req.get(2).is_some_and(|w| is(w, "PARTIAL")) {
        let mut rest: Vec<Bytes> = req[..2].to_vec();
        rest.extend_from_slice(&req[3..]);
        let (id, actual) = parse_settle(&rest, true)?;
        let actual = actual.unwrap_or_default();
        if actual.tokens.is_none() && actual.cost.is_none() {
            return Err(CommandError::other("PARTIAL needs TOKENS or COST"));
        }
        let plan = ctx.call().plan_settle(&id, Some(actual))?;
        super::permissions::check_derived_keys(ctx, plan.keys(), KEY_ALL)?;
        return Ok(partial_frame(ctx.call().execute_partial(plan)?));
    }
    let (id, actual) = parse_settle(req, true)?;
    settle(ctx, &id, actual)
}

/// The reply of a streaming settle: `reservation`, `action` (`partial`), `exhausted`,
/// `tokens` and `cost` (the running totals counted, or nil), `rules` (per counted rule:
/// `rule`, `scope`, `family`, `measure`, `adjusted` (charged by this call), `limit`,
/// `remaining` (what the stream may still use), `reset_after_ms`).
pub(crate) fn partial_frame(p: Partial) -> Frame {
    Frame::Map(vec![
        (field("reservation"), reservation_frame(&p.id)),
        (field("action"), Frame::bulk("partial")),
        (field("exhausted"), Frame::Boolean(p.exhausted)),
        (field("tokens"), p.actual.tokens.map_or(Frame::Null, int)),
        (
            field("cost"),
            p.actual.cost.map_or(Frame::Null, |c| decimal(c.0)),
        ),
        (field("rules"), settled_rules(&p.rules)),
    ])
}

/// Parses `LIMIT.SETTLE id [TOKENS n] [COST x]` (actual amounts) or `LIMIT.CANCEL id` (`None`),
/// as the RESP commands and the HTTP check API take them.
pub(crate) fn parse_settle(
    req: &[Bytes],
    settle: bool,
) -> Result<(ReservationId, Option<Actual>), CommandError> {
    let id = reservation_id(req.get(1).ok_or(CommandError::Syntax)?)?;
    if !settle {
        if req.len() != 2 {
            return Err(CommandError::Syntax);
        }
        return Ok((id, None));
    }
    let mut actual = Actual::default();
    let mut opts = Args::new(req, 2);
    while let Some(opt) = opts.next() {
        if is(opt, "TOKENS") && actual.tokens.is_none() {
            actual.tokens = Some(tokens_arg(opts.value()?)?);
        } else if is(opt, "COST") && actual.cost.is_none() {
            actual.cost = Some(cost_arg(opts.value()?)?);
        } else {
            return Err(CommandError::Syntax);
        }
    }
    Ok((id, Some(actual)))
}

/// `LIMIT.CANCEL id`: refunds everything the reservation charged.
fn limit_cancel(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let (id, actual) = parse_settle(req, false)?;
    settle(ctx, &id, actual)
}

/// `LIMIT.RELEASE policy identity lease_id [SCOPE scope]`: frees the lease a check granted in
/// every LEASE rule of the policy (for the scope). Replies 1 if it was held, 0 otherwise.
fn limit_release(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let id = LeaseId(args::uint(&req[3])?);
    let scope = match req.len() {
        4 => None,
        6 if is(&req[4], "SCOPE") => Some(&req[5][..]),
        _ => return Err(CommandError::Syntax),
    };
    let plan = ctx
        .call()
        .plan_release(&args::text(&req[1]), &req[2], id, scope)?;
    super::permissions::check_derived_keys(ctx, plan.keys(), KEY_ALL)?;
    let found = ctx.call().execute_release(plan);
    Ok(Frame::Integer(i64::from(found)))
}

/// `LIMIT.RESET identity [policy]`: deletes the identity's rule states for `policy` (every
/// section, override rules included), or for every policy.
fn limit_reset(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let policy = match req.len() {
        2 => None,
        3 => Some(args::text(&req[2])),
        _ => return Err(CommandError::Syntax),
    };
    let plan = ctx.call().plan_reset(&req[1], policy.as_deref())?;
    super::permissions::check_derived_keys(ctx, plan.keys(), KEY_WRITE)?;
    Ok(int(ctx.call().execute_reset(plan)))
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
#[path = "policy_tests.rs"]
pub(super) mod tests;
