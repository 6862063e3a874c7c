//! Policy catalog commands (issue 4): `POLICY.*` (named plans of rules), `OVERRIDE.*`
//! (per-identity changes) and `ALLOWLIST.*` / `DENYLIST.*` (identities and IP ranges that skip
//! or fail every limit). The decisions (`LIMIT.*`) are in [`super::policy`].
//!
//! Changes are engine calls ([`crate::engine::Call::policy_set`] and friends), which journal
//! each change as its own record while the registry's write lock is held; this file parses
//! arguments and renders replies. No socket.

use bytes::Bytes;

use super::args;
use super::flags::*;
use super::limiter::field;
use super::policy::{int, ms, perr, text_or_null, units_frame};
use super::{CommandSpec, Ctx, BASE};
use crate::error::CommandError;
use crate::policy::model::{fmt_duration, join_words, Limit, Override, Policy};
use crate::protocol::Frame;

/// Policy catalog commands.
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

/// `POLICY.SET name rule...`: validates the whole definition, then replaces the policy.
/// Counted usage is kept: a rule's state key depends only on the policy, the rule's name,
/// the scope and the identity.
fn policy_set(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let p = Policy::parse(&req[1], &req[2..]).map_err(perr)?;
    ctx.call().policy_set(p);
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
        Limit::Breaker(b) => fmt_duration(b.cooldown),
    }
}

/// `POLICY.GET name`: the policy, or nil.
fn policy_get(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let p = ctx.shared.engine.policy_get(&args::text(&req[1]));
    Ok(p.map_or(Frame::Null, |p| policy_frame(&p)))
}

/// `POLICY.DEL name...`: the number deleted.
fn policy_del(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    Ok(int(ctx.call().policy_del(&req[1..])))
}

/// `POLICY.LIST`: the names, sorted.
fn policy_list(ctx: &mut Ctx<'_>, _req: &[Bytes]) -> Result<Frame, CommandError> {
    let names = ctx.shared.engine.policy_names();
    Ok(Frame::Array(names.iter().map(Frame::bulk).collect()))
}

/// `OVERRIDE.SET identity [FOR policy] [POLICY p] [REASON text] [EXPIRE duration] [rules...]`.
fn override_set(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let o = Override::parse(&req[2..], ctx.now).map_err(perr)?;
    ctx.call().override_set(req[1].clone(), o)?;
    Ok(Frame::OK)
}

/// `OVERRIDE.GET identity`: the override in force, or nil.
fn override_get(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let Some(o) = ctx.shared.engine.override_at(&req[1], now) else {
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
    Ok(int(ctx.call().override_del(&req[1..])))
}

/// `OVERRIDE.LIST`: identities with an override in force.
fn override_list(ctx: &mut Ctx<'_>, _req: &[Bytes]) -> Result<Frame, CommandError> {
    let ids = ctx.shared.engine.override_identities(ctx.now);
    Ok(Frame::Array(ids.into_iter().map(Frame::Bulk).collect()))
}

/// `ALLOWLIST.ADD|DEL` / `DENYLIST.ADD|DEL entry...`: the number of entries added or removed.
fn access_change(
    ctx: &mut Ctx<'_>,
    req: &[Bytes],
    deny: bool,
    add: bool,
) -> Result<Frame, CommandError> {
    Ok(int(ctx.call().access_change(deny, add, &req[1..])?))
}

/// `ALLOWLIST.LIST` / `DENYLIST.LIST`.
fn access_list(ctx: &mut Ctx<'_>, deny: bool) -> Result<Frame, CommandError> {
    let entries = ctx.shared.engine.access_entries(deny);
    Ok(Frame::Array(entries.into_iter().map(Frame::Bulk).collect()))
}

#[cfg(test)]
#[path = "policy_admin_tests.rs"]
mod tests;
