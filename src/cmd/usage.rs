//! Usage inspection commands (issue 18): `LIMIT.TOP` (the top identities by denials or usage
//! over a window), `LIMIT.USAGE` (one identity's standing in every rule of its plan, from the
//! live rule states, plus its recorded totals) and `LIMIT.HISTORY` (per-minute series). They
//! read the engine's usage history ([`crate::engine::usage`]) and, for `LIMIT.USAGE`, run a
//! status check per scope of the policy. No socket.

use bytes::Bytes;

use super::args::{self, is, Args};
use super::flags::*;
use super::limiter::field;
use super::policy::int;
use super::{CommandSpec, Ctx, BASE};
use crate::acl::user::KEY_READ;
use crate::clock::Nanos;
use crate::engine::check::{CheckKind, CheckRequest};
use crate::error::CommandError;
use crate::limiter::cost::Amount;
use crate::protocol::Frame;
use crate::usage::{minute_of, Counts, Rank, MINUTE_NS, RETENTION_MINUTES};

/// How far back `LIMIT.TOP` and `LIMIT.HISTORY` look without `WINDOW`: one hour.
pub const DEFAULT_WINDOW_MINUTES: u32 = 60;
/// Identities `LIMIT.TOP` returns without `COUNT`.
pub const DEFAULT_TOP: usize = 10;
/// Most identities `LIMIT.TOP` returns.
pub const MAX_TOP: usize = 10_000;

/// The usage inspection commands.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "LIMIT.TOP",
        arity: -1,
        flags: READONLY,
        group: "rate_limit",
        summary: "Returns the identities with the most denials (or admitted requests, tokens, cost) over a window, from the usage history.",
        since: "0.1.0",
        complexity: "O(N log N) where N is the number of tracked identities",
        args: "[DENIED|USAGE|TOKENS|COST] [WINDOW window:string] [COUNT count:integer] \
               [POLICY policy:string]",
        handler: limit_top,
        ..BASE
    },
    CommandSpec {
        name: "LIMIT.USAGE",
        arity: 3,
        flags: READONLY | MOVABLEKEYS,
        group: "rate_limit",
        summary: "Reports one identity's used, limit and reset time in every rule of its policy, and its recorded requests, tokens and cost.",
        since: "0.1.0",
        complexity: "O(N) where N is the number of rules",
        args: "policy:string identity:string",
        handler: limit_usage,
        ..BASE
    },
    CommandSpec {
        name: "LIMIT.HISTORY",
        arity: -2,
        flags: READONLY,
        group: "rate_limit",
        summary: "Returns a policy's (or one identity's) decisions, denials, warnings, tokens and cost per minute over a window.",
        since: "0.1.0",
        complexity: "O(M) where M is the number of minutes in the window",
        args: "policy:string [identity:string] [WINDOW window:string]",
        handler: limit_history,
        ..BASE
    },
];

fn decimal(micros: i64) -> Frame {
    let mut out = Vec::with_capacity(24);
    Amount(micros).write_decimal(&mut out);
    Frame::Bulk(Bytes::from(out))
}

/// A `WINDOW` value: a duration of 1 minute to 48 hours, in whole minutes (rounded up).
fn window_arg(arg: &[u8]) -> Result<u32, CommandError> {
    let d = super::limiter::duration("WINDOW", arg)?;
    let minutes = d.0.div_ceil(MINUTE_NS);
    if minutes == 0 || minutes > u64::from(RETENTION_MINUTES) {
        return Err(CommandError::other(format!(
            "invalid WINDOW '{}': must be between 1m and 48h",
            args::text(arg)
        )));
    }
    Ok(minutes as u32)
}

/// `[from, to]` minutes of a window of `minutes` ending at `now`.
fn window(now: Nanos, minutes: u32) -> (u32, u32) {
    let to = minute_of(now.0);
    (to.saturating_sub(minutes - 1), to)
}

/// `ERR unknown policy 'p'` unless `p` is set or has a recorded history (a deleted policy's
/// history stays readable until it ages out).
fn known_policy(ctx: &Ctx<'_>, policy: &str) -> Result<(), CommandError> {
    let engine = &ctx.shared.engine;
    let set = engine.policies.read().policies.contains_key(policy);
    if set || engine.usage.read(ctx.now, |h| h.policy(policy).is_some()) {
        Ok(())
    } else {
        Err(CommandError::other(format!("unknown policy '{policy}'")))
    }
}

fn counts_fields(c: &Counts, m: &mut Vec<(Frame, Frame)>) {
    m.push((field("decisions"), int(c.decisions)));
    m.push((field("allowed"), int(c.admitted())));
    m.push((field("denied"), int(c.denials)));
    m.push((field("warnings"), int(c.warnings)));
    m.push((field("tokens"), Frame::Integer(c.tokens)));
    m.push((field("cost"), decimal(c.cost)));
}

/// `LIMIT.TOP`: the tracked identities ranked over a window, largest first.
///
/// ```text
/// LIMIT.TOP [DENIED|USAGE|TOKENS|COST] [WINDOW 1h] [COUNT 10] [POLICY policy]
/// ```
/// Reply: an array of maps `identity`, `policy`, `decisions`, `allowed`, `denied`,
/// `warnings`, `tokens`, `cost`, `estimate`, `estimate_error` (the ranking sketch's count
/// since the identity was first tracked, and its over-estimation bound); empty when nothing
/// was recorded.
///
/// Errors: `ERR syntax error`, `ERR invalid WINDOW ...`, `ERR COUNT must be between 1 and
/// 10000`, `ERR unknown policy '...'`.
fn limit_top(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let (mut rank, mut minutes, mut count, mut policy) = (None, None, None, None);
    let mut opts = Args::new(req, 1);
    while let Some(opt) = opts.next() {
        let r = [
            ("DENIED", Rank::Denied),
            ("USAGE", Rank::Usage),
            ("TOKENS", Rank::Tokens),
            ("COST", Rank::Cost),
        ]
        .into_iter()
        .find(|(w, _)| is(opt, w));
        if let (Some((_, r)), None) = (r, rank) {
            rank = Some(r);
        } else if is(opt, "WINDOW") && minutes.is_none() {
            minutes = Some(window_arg(opts.value()?)?);
        } else if is(opt, "COUNT") && count.is_none() {
            let n = args::uint(opts.value()?)?;
            if n == 0 || n > MAX_TOP as u64 {
                return Err(CommandError::other(format!(
                    "COUNT must be between 1 and {MAX_TOP}"
                )));
            }
            count = Some(n as usize);
        } else if is(opt, "POLICY") && policy.is_none() {
            policy = Some(args::text(opts.value()?));
        } else {
            return Err(CommandError::Syntax);
        }
    }
    if let Some(p) = &policy {
        known_policy(ctx, p)?;
    }
    let rank = rank.unwrap_or(Rank::Denied);
    let (from, to) = window(ctx.now, minutes.unwrap_or(DEFAULT_WINDOW_MINUTES));
    let top = ctx.shared.engine.usage.read(ctx.now, |h| {
        h.top(
            rank,
            from,
            to,
            policy.as_deref(),
            count.unwrap_or(DEFAULT_TOP),
        )
    });
    Ok(Frame::Array(
        top.into_iter()
            .map(|e| {
                let mut m = vec![
                    (field("identity"), Frame::Bulk(e.id.identity.clone())),
                    (field("policy"), Frame::bulk(&*e.id.policy)),
                ];
                counts_fields(&e.counts, &mut m);
                let est = match rank {
                    Rank::Denied => e.denied_estimate,
                    _ => e.usage_estimate,
                };
                m.push((
                    field("estimate"),
                    est.map_or(Frame::Integer(-1), |x| int(x.count)),
                ));
                m.push((
                    field("estimate_error"),
                    est.map_or(Frame::Integer(-1), |x| int(x.error)),
                ));
                Frame::Map(m)
            })
            .collect(),
    ))
}

/// `LIMIT.USAGE policy identity`: the identity's standing in every rule of the policy (each
/// scope's rules too), read from the live rule states as `LIMIT.STATUS` reads them, and its
/// recorded totals over the last hour and day.
///
/// ```text
/// LIMIT.USAGE policy identity
/// ```
/// Reply: a map `policy`, `identity`, `reason` (an access list entry, or null), `override`,
/// `tracked` (whether the history keeps this identity's series), `rules` (an array of maps
/// `rule`, `scope`, `family`, `measure`, `used`, `limit`, `remaining`, `reset_after_ms`,
/// `resets_at_ms`), `last_hour` and `last_day` (maps of `decisions`, `allowed`, `denied`,
/// `warnings`, `tokens`, `cost`). An identity with nothing used and nothing recorded gets an
/// empty map.
///
/// Errors: `ERR unknown policy '...'`; `NOPERM` when the user may not read the rule keys.
fn limit_usage(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let policy = args::text(&req[1]);
    let identity = req[2].clone();
    let scopes: Vec<Option<String>> = {
        let t = ctx.shared.engine.policies.read();
        let p = t
            .policies
            .get(policy.as_str())
            .ok_or_else(|| CommandError::other(format!("unknown policy '{policy}'")))?;
        std::iter::once(None)
            .chain(p.body.scopes.iter().map(|s| Some(s.name.clone())))
            .collect()
    };
    let now_ms = i64::try_from(ctx.now.as_millis()).unwrap_or(i64::MAX);
    let mut rules: Vec<Frame> = Vec::new();
    let mut seen: Vec<(Option<String>, String)> = Vec::new();
    let (mut reason, mut overridden, mut used_any) = (None, None, false);
    for scope in scopes {
        let mut request = CheckRequest::new(policy.clone(), &identity);
        request.scope = scope;
        let plan = ctx.call().plan_check(CheckKind::Status, request)?;
        super::permissions::check_derived_keys(ctx, plan.keys(), KEY_READ)?;
        let o = ctx.call().execute_check(plan);
        reason = reason.or(o.reason);
        overridden = overridden.or(o.overridden);
        for r in o.rules {
            let id = (r.scope.clone(), r.name.clone());
            if seen.contains(&id) {
                continue;
            }
            seen.push(id);
            let d = &r.decision;
            let used = d.limit.saturating_sub(d.remaining);
            used_any |= used > 0;
            let units = |n: u64| {
                if r.is_cost() {
                    decimal(i64::try_from(n).unwrap_or(i64::MAX))
                } else {
                    int(n)
                }
            };
            rules.push(Frame::Map(vec![
                (field("rule"), Frame::bulk(&r.name)),
                (
                    field("scope"),
                    r.scope.as_deref().map_or(Frame::Null, Frame::bulk),
                ),
                (field("family"), Frame::bulk(r.family)),
                (field("measure"), Frame::bulk(r.measure.name())),
                (field("used"), units(used)),
                (field("limit"), units(d.limit)),
                (field("remaining"), units(d.remaining)),
                (field("reset_after_ms"), Frame::Integer(d.reset_after_ms())),
                (
                    field("resets_at_ms"),
                    Frame::Integer(now_ms.saturating_add(d.reset_after_ms())),
                ),
            ]));
        }
    }
    let (hour, day) = (window(ctx.now, 60), window(ctx.now, 24 * 60));
    let (tracked, last_hour, last_day) =
        ctx.shared
            .engine
            .usage
            .read(ctx.now, |h| match h.identity(&policy, &identity) {
                Some(s) => (true, s.sum(hour.0, hour.1), s.sum(day.0, day.1)),
                None => (false, Counts::default(), Counts::default()),
            });
    if !used_any && !tracked && reason.is_none() {
        return Ok(Frame::Map(Vec::new()));
    }
    let totals = |c: &Counts| {
        let mut m = Vec::new();
        counts_fields(c, &mut m);
        Frame::Map(m)
    };
    Ok(Frame::Map(vec![
        (field("policy"), Frame::bulk(&policy)),
        (field("identity"), Frame::Bulk(identity)),
        (
            field("reason"),
            reason.map_or(Frame::Null, Frame::bulk_string),
        ),
        (
            field("override"),
            overridden.map_or(Frame::Null, Frame::bulk_string),
        ),
        (field("tracked"), Frame::Boolean(tracked)),
        (field("rules"), Frame::Array(rules)),
        (field("last_hour"), totals(&last_hour)),
        (field("last_day"), totals(&last_day)),
    ]))
}

/// `LIMIT.HISTORY policy [identity] [WINDOW 1h]`: one entry per minute of the window, oldest
/// first, minutes without activity included as zeros.
///
/// ```text
/// LIMIT.HISTORY policy [identity] [WINDOW window]
/// ```
/// Reply: an array of maps `minute_ms` (the minute's start, Unix ms), `decisions`, `allowed`,
/// `denied`, `warnings`, `tokens`, `cost`. Empty for an identity the history does not track.
///
/// Errors: `ERR unknown policy '...'`, `ERR invalid WINDOW ...`, `ERR syntax error`.
fn limit_history(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let policy = args::text(&req[1]);
    let (identity, rest) = match req.get(2) {
        Some(w) if !is(w, "WINDOW") || req.len() == 3 || req.len() == 5 => (Some(w.clone()), 3),
        _ => (None, 2),
    };
    let mut minutes = None;
    let mut opts = Args::new(req, rest);
    while let Some(opt) = opts.next() {
        if is(opt, "WINDOW") && minutes.is_none() {
            minutes = Some(window_arg(opts.value()?)?);
        } else {
            return Err(CommandError::Syntax);
        }
    }
    known_policy(ctx, &policy)?;
    let (from, to) = window(ctx.now, minutes.unwrap_or(DEFAULT_WINDOW_MINUTES));
    let series: Option<Vec<(u32, Counts)>> = ctx.shared.engine.usage.read(ctx.now, |h| {
        let s = match &identity {
            Some(i) => h.identity(&policy, i),
            None => h.policy(&policy),
        };
        s.map(|s| s.range(from, to).collect())
    });
    let Some(series) = series else {
        // A set policy without a decision yet still has a (zero) series; an untracked
        // identity has none.
        return Ok(Frame::Array(if identity.is_some() {
            Vec::new()
        } else {
            dense(from, to, &[])
        }));
    };
    Ok(Frame::Array(dense(from, to, &series)))
}

fn dense(from: u32, to: u32, series: &[(u32, Counts)]) -> Vec<Frame> {
    let mut at = series.iter().peekable();
    (from..=to)
        .map(|minute| {
            let c = match at.peek() {
                Some((m, c)) if *m == minute => {
                    at.next();
                    *c
                }
                _ => Counts::default(),
            };
            let mut m = vec![(
                field("minute_ms"),
                int(u64::from(minute) * (MINUTE_NS / Nanos::PER_MS)),
            )];
            counts_fields(&c, &mut m);
            Frame::Map(m)
        })
        .collect()
}

#[cfg(test)]
#[path = "usage_tests.rs"]
mod tests;
