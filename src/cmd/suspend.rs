//! Suspension commands (issue 17): `LIMIT.SUSPEND`, `LIMIT.UNSUSPEND`, `LIMIT.SUSPENDED`.
//! A suspended identity is refused every check of the policy (or of every policy, `*`) with
//! `denied_by: suspended` and the suspension's reason, until lifted or expired. The decision
//! is the engine's ([`crate::engine::check`]); this file parses and renders. No socket.

use bytes::Bytes;

use super::flags::*;
use super::limiter::field;
use super::policy::{int, ms, perr, text_or_null};
use super::{CommandSpec, Ctx, BASE};
use crate::error::CommandError;
use crate::policy::suspend::Suspension;
use crate::protocol::Frame;

/// Suspension commands.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "LIMIT.SUSPEND",
        arity: -3,
        flags: WRITE | MOVABLEKEYS,
        group: "rate_limit",
        summary: "Suspends an identity for one policy or every policy (*): every check is refused with the reason until lifted or expired.",
        since: "0.1.0",
        args: "policy:string identity:string [REASON reason:string] \
               [EXPIRE duration:string|EXPIREAT unix-time-milliseconds:integer]",
        // The identity routes it (cluster mode keeps a suspension on the node of the
        // identity's slot, where its checks run); not a key for ACL key patterns.
        first_key: 2,
        last_key: 2,
        key_step: 1,
        handler: limit_suspend,
        ..BASE
    },
    CommandSpec {
        name: "LIMIT.UNSUSPEND",
        arity: 3,
        flags: WRITE | MOVABLEKEYS,
        group: "rate_limit",
        summary: "Lifts an identity's suspension of one policy (or of every policy, *); replies 1 if one was in force.",
        since: "0.1.0",
        args: "policy:string identity:string",
        // The identity routes it (cluster mode keeps a suspension on the node of the
        // identity's slot, where its checks run); not a key for ACL key patterns.
        first_key: 2,
        last_key: 2,
        key_step: 1,
        handler: limit_unsuspend,
        ..BASE
    },
    CommandSpec {
        name: "LIMIT.SUSPENDED",
        arity: -1,
        flags: READONLY | MOVABLEKEYS,
        group: "rate_limit",
        summary: "Lists the suspensions in force, of one identity or of everyone.",
        since: "0.1.0",
        complexity: "O(N) where N is the number of suspensions",
        args: "[identity:string]",
        // The identity routes it (cluster mode keeps a suspension on the node of the
        // identity's slot, where its checks run); not a key for ACL key patterns.
        first_key: 1,
        last_key: 1,
        key_step: 1,
        handler: limit_suspended,
        ..BASE
    },
];

/// `LIMIT.SUSPEND policy|* identity [REASON text] [EXPIRE duration | EXPIREAT ms]`: `+OK`.
///
/// Errors: `ERR unknown policy '...'`, `ERR invalid EXPIRE ...`, `ERR invalid REASON ...`,
/// `ERR syntax error`, `ERR ... given twice`.
fn limit_suspend(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    // The words after the identity, with the policy first, as the AOF records them; SINCE
    // is the record's alone.
    if req[3..].iter().any(|w| w.eq_ignore_ascii_case(b"SINCE")) {
        return Err(CommandError::Syntax);
    }
    let mut words = Vec::with_capacity(req.len() - 2);
    words.push(req[1].clone());
    words.extend_from_slice(&req[3..]);
    let s = Suspension::parse(&words, ctx.now).map_err(perr)?;
    ctx.call().suspend(req[2].clone(), s)?;
    Ok(Frame::OK)
}

/// `LIMIT.UNSUSPEND policy|* identity`: 1 if a suspension was lifted, else 0.
fn limit_unsuspend(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let policy = String::from_utf8_lossy(&req[1]).into_owned();
    Ok(int(u64::from(ctx.call().unsuspend(&req[2], &policy))))
}

/// `LIMIT.SUSPENDED [identity]`: an array of maps `identity`, `policy`, `reason`,
/// `since_ms`, `expires_at_ms` (-1: never), `ttl_ms` (-1: never), sorted by identity.
fn limit_suspended(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    if req.len() > 2 {
        return Err(CommandError::Syntax);
    }
    let now = ctx.now;
    let list = ctx
        .shared
        .engine
        .suspensions(req.get(1).map(|b| b.as_ref()), now);
    Ok(Frame::Array(
        list.into_iter()
            .map(|(id, s)| {
                Frame::Map(vec![
                    (field("identity"), Frame::Bulk(id)),
                    (field("policy"), Frame::bulk_string(s.policy.clone())),
                    (field("reason"), text_or_null(s.reason.as_deref())),
                    (field("since_ms"), int(s.since.as_millis())),
                    (
                        field("expires_at_ms"),
                        s.expires_at
                            .map_or(Frame::Integer(-1), |at| int(at.as_millis())),
                    ),
                    (
                        field("ttl_ms"),
                        s.expires_at
                            .map_or(Frame::Integer(-1), |at| ms(at.saturating_sub(now))),
                    ),
                ])
            })
            .collect(),
    ))
}
