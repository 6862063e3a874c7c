//! LEASE commands (issue 3): concurrency slots that free themselves, over the pure transitions
//! of [`crate::limiter::lease`].
//!
//! `LEASE.ACQUIRE` takes a slot and answers the uniform admission reply with the new lease's
//! id; `LEASE.RELEASE` gives it back (idempotent); `LEASE.RENEW` extends it; `LEASE.COUNT` and
//! `LEASE.PEEK` show the holders without changing anything. Lease ids come from the server's
//! one counter ([`crate::engine::Engine::next_lease_id`]), so they are unique across keys and
//! restarts and a client never chooses one. A key is deleted when its last lease is released
//! and expires by itself when its last lease expires, so a dead holder never leaks a slot.
//! The transitions run in the engine (`Call::lease_*`); `cmd::limiter` gives the reply shape.
//! Never touches a socket.

use bytes::Bytes;

use super::args::{self, is, Args};
use super::flags::*;
use super::limiter::{decision_reply, duration, uint as int};
use super::{CommandSpec, Ctx, BASE};
use crate::clock::Nanos;
use crate::engine::families::Acquired;
use crate::error::CommandError;
use crate::limiter::lease::{self, LeaseId, LeaseParamError, LeaseParams, Priority};
use crate::protocol::{Frame, Scalar};

/// LEASE commands.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "LEASE.ACQUIRE",
        arity: -6,
        flags: WRITE | DENYOOM | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "rate_limit",
        summary: "Takes one of LIMIT concurrency slots for TTL; replies with the decision and the new lease id.",
        since: "0.1.0",
        complexity: "O(N) where N is the number of leases held on the key",
        args: "key:key LIMIT limit:integer TTL ttl:string [RESERVE reserve:integer] \
               [FOR reserved-for:string] [PRIORITY priority:string]",
        handler: acquire,
        ..BASE
    },
    CommandSpec {
        name: "LEASE.RELEASE",
        arity: 3,
        flags: WRITE | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "rate_limit",
        summary: "Ends a lease and frees its slot; replies 1 if it was live, 0 otherwise.",
        since: "0.1.0",
        complexity: "O(N) where N is the number of leases held on the key",
        args: "key:key lease_id:integer",
        handler: release,
        ..BASE
    },
    CommandSpec {
        name: "LEASE.RENEW",
        arity: -5,
        flags: WRITE | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "rate_limit",
        summary: "Extends a live lease to TTL from now (never shortening it); replies 1 if renewed, 0 otherwise.",
        since: "0.1.0",
        complexity: "O(N) where N is the number of leases held on the key",
        args: "key:key lease_id:integer TTL ttl:string",
        handler: renew,
        ..BASE
    },
    CommandSpec {
        name: "LEASE.COUNT",
        arity: 2,
        flags: READONLY | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "rate_limit",
        summary: "Replies the number of live leases on the key.",
        since: "0.1.0",
        complexity: "O(N) where N is the number of leases held on the key",
        args: "key:key",
        handler: count,
        ..BASE
    },
    CommandSpec {
        name: "LEASE.PEEK",
        arity: -4,
        flags: READONLY | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "rate_limit",
        summary: "Replies the decision LEASE.ACQUIRE would get now and the holder count, changing nothing.",
        since: "0.1.0",
        complexity: "O(N) where N is the number of leases held on the key",
        args: "key:key LIMIT limit:integer [TTL ttl:string] [RESERVE reserve:integer] \
               [FOR reserved-for:string] [PRIORITY priority:string]",
        handler: peek,
        ..BASE
    },
];

/// Stands for "none" in an integer field (a denied ACQUIRE has no lease).
const NONE: Scalar = Scalar::Int(-1);

/// `LIMIT n` and `TTL duration`, in any order, each at most once.
struct Options {
    limit: Option<u64>,
    ttl: Option<Nanos>,
    /// `RESERVE n [FOR high|normal]`.
    reserve: Option<(u64, Priority)>,
    /// `FOR high|normal` of the reserve (default high).
    reserve_for: Option<Priority>,
    /// `PRIORITY high|normal|low`.
    priority: Option<Priority>,
}

fn options(mut a: Args<'_>) -> Result<Options, CommandError> {
    let mut o = Options {
        limit: None,
        ttl: None,
        reserve: None,
        reserve_for: None,
        priority: None,
    };
    let priority = |w: &[u8]| {
        Priority::parse(w).ok_or_else(|| {
            CommandError::other(format!(
                "invalid priority '{}': use high, normal or low",
                String::from_utf8_lossy(w)
            ))
        })
    };
    while let Some(word) = a.next() {
        if is(word, "LIMIT") && o.limit.is_none() {
            o.limit = Some(super::limiter::count("LIMIT", a.value()?)?);
        } else if is(word, "TTL") && o.ttl.is_none() {
            o.ttl = Some(duration("TTL", a.value()?)?);
        } else if is(word, "RESERVE") && o.reserve.is_none() {
            let n = super::limiter::count("RESERVE", a.value()?)?;
            o.reserve = Some((n, o.reserve_for.unwrap_or(Priority::High)));
        } else if is(word, "FOR") && o.reserve_for.is_none() {
            let p = priority(a.value()?)?;
            if p == Priority::Low {
                return Err(CommandError::other(
                    "a reserve is FOR high or normal priority",
                ));
            }
            o.reserve_for = Some(p);
            if let Some((n, _)) = o.reserve {
                o.reserve = Some((n, p));
            }
        } else if is(word, "PRIORITY") && o.priority.is_none() {
            o.priority = Some(priority(a.value()?)?);
        } else {
            return Err(CommandError::Syntax);
        }
    }
    if o.reserve_for.is_some() && o.reserve.is_none() {
        return Err(CommandError::other("FOR needs RESERVE"));
    }
    Ok(o)
}

fn params(limit: u64, ttl: Nanos, o: &Options) -> Result<LeaseParams, CommandError> {
    let e = |e: LeaseParamError| CommandError::other(e.to_string());
    let mut p = LeaseParams::new(limit, ttl).map_err(e)?;
    if let Some((n, for_)) = o.reserve {
        p = p.with_reserve(n, for_).map_err(e)?;
    }
    Ok(p.at_priority(o.priority.unwrap_or_default()))
}

/// A lease id argument: a non-negative integer.
fn lease_id(arg: &[u8]) -> Result<LeaseId, CommandError> {
    args::uint(arg).map(LeaseId)
}

/// Takes a slot.
///
/// ```text
/// LEASE.ACQUIRE key LIMIT limit TTL ttl
/// ```
/// `LIMIT` (1..=10000) is the most live leases the key admits; `TTL` (a duration with a
/// unit) is how long the new lease lives unless renewed or released. Options in any order.
///
/// Reply: the uniform decision (`remaining` = free slots after this call, `retry_after_ms` =
/// when the earliest lease expires on a denial, `reset_after_ms` = until every lease has
/// expired) plus `lease_id`, `expires_at_ms` (unix ms, rounded down), `ttl_ms` (rounded down)
/// — each -1 on a denial — and `holders` (live leases after the call).
///
/// Errors: `ERR syntax error` (unknown, repeated or valueless option), `ERR invalid LIMIT
/// ...`, `ERR limit must be between 1 and 10000`, `ERR invalid TTL ...`, `WRONGTYPE`.
fn acquire(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let o = options(Args::new(req, 2))?;
    let (Some(limit), Some(ttl)) = (o.limit, o.ttl) else {
        return Err(CommandError::Syntax);
    };
    let p = params(limit, ttl, &o)?;
    let now = ctx.now;
    let Acquired { outcome, holders } = ctx.call().lease_acquire(&req[1], &p)?;
    let (lease_id, expires_at_ms, ttl_ms) = match outcome.lease {
        Some(l) => (
            int(l.id.0),
            int(l.expires_at.as_millis()),
            int(l.expires_at.saturating_sub(now).as_millis()),
        ),
        None => (NONE, NONE, NONE),
    };
    Ok(decision_reply(
        &outcome.decision,
        [
            ("lease_id", lease_id),
            ("expires_at_ms", expires_at_ms),
            ("ttl_ms", ttl_ms),
            ("holders", int(holders)),
        ],
    ))
}

/// The decision ACQUIRE would get now, changing nothing.
///
/// ```text
/// LEASE.PEEK key LIMIT limit [TTL ttl]
/// ```
/// With `TTL`, the reply is exactly what `LEASE.ACQUIRE key LIMIT limit TTL ttl` would
/// answer now, without the lease fields. Without it, `reset_after_ms` is the wait until the
/// current leases have all expired.
///
/// Reply: the uniform decision plus `holders` (live leases now). Never creates a key or
/// touches its TTL.
///
/// Errors: as `LEASE.ACQUIRE`.
fn peek(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let o = options(Args::new(req, 2))?;
    let Some(limit) = o.limit else {
        return Err(CommandError::Syntax);
    };
    // Without a TTL the new lease's own expiry is unknown; the shortest one never outlives
    // the current holders, and the reset below is taken from the current state instead.
    let p = params(limit, o.ttl.unwrap_or(Nanos(1)), &o)?;
    let (decision, holders) = ctx.call().lease_peek(&req[1], &p, o.ttl.is_some())?;
    Ok(decision_reply(&decision, [("holders", int(holders))]))
}

/// Ends a lease.
///
/// ```text
/// LEASE.RELEASE key lease_id
/// ```
/// Reply: integer 1 if `lease_id` was live on `key` and is now released, 0 otherwise (unknown,
/// already released or expired — releasing twice is harmless). The key is deleted with its
/// last lease.
///
/// Errors: `ERR value is not an integer or out of range`, `ERR value is out of range, must be
/// positive`, `WRONGTYPE`.
fn release(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let id = lease_id(&req[2])?;
    let found = ctx.call().lease_release(&req[1], id)?;
    Ok(Frame::Integer(i64::from(found)))
}

/// Extends a live lease.
///
/// ```text
/// LEASE.RENEW key lease_id TTL ttl
/// ```
/// The lease then ends `ttl` from now, or later if it already did (a renewal never shortens
/// a lease). An expired lease is not revived: its slot may have been taken, so the holder must
/// `LEASE.ACQUIRE` again.
///
/// Reply: integer 1 if the lease was live and is renewed, 0 otherwise.
///
/// Errors: `ERR syntax error` (anything but one `TTL ttl`), `ERR invalid TTL ...`, `ERR value
/// is not an integer or out of range`, `ERR value is out of range, must be positive`,
/// `WRONGTYPE`.
fn renew(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let id = lease_id(&req[2])?;
    let o = options(Args::new(req, 3))?;
    let (None, Some(ttl)) = (o.limit, o.ttl) else {
        return Err(CommandError::Syntax);
    };
    let ttl = lease::check_ttl(ttl).map_err(|e| CommandError::other(e.to_string()))?;
    let found = ctx.call().lease_renew(&req[1], id, ttl)?;
    Ok(Frame::Integer(i64::from(found)))
}

/// Live leases.
///
/// ```text
/// LEASE.COUNT key
/// ```
/// Reply: integer, the leases on `key` that have not expired (0 for a missing key).
///
/// Errors: `WRONGTYPE`.
fn count(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let n = ctx.call().lease_count(&req[1])?;
    Ok(int(n).to_frame())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::cmd::testing::*;
    use crate::protocol::Frame;

    /// The value of `name` in a map reply.
    fn get<'a>(reply: &'a Frame, name: &str) -> &'a Frame {
        let Frame::Map(pairs) = reply else {
            panic!("not a map: {reply:?}");
        };
        pairs
            .iter()
            .find(|(k, _)| *k == bulk(name))
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no {name} in {reply:?}"))
    }

    fn id_of(reply: &Frame) -> String {
        match get(reply, "lease_id") {
            Frame::Integer(n) => n.to_string(),
            other => panic!("lease_id {other:?}"),
        }
    }

    /// A uniform reply: the five shared fields, then the extras.
    fn decision(allowed: bool, limit: i64, remaining: i64, retry: i64, reset: i64) -> Vec<Frame> {
        vec![
            bulk("allowed"),
            Frame::Boolean(allowed),
            bulk("limit"),
            int(limit),
            bulk("remaining"),
            int(remaining),
            bulk("retry_after_ms"),
            int(retry),
            bulk("reset_after_ms"),
            int(reset),
        ]
    }

    fn map(flat: Vec<Frame>) -> Frame {
        let mut it = flat.into_iter();
        let mut pairs = Vec::new();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            pairs.push((k, v));
        }
        Frame::Map(pairs)
    }

    fn acquire_reply(h: &Harness, d: Vec<Frame>, id: i64, ttl_ms: i64, holders: i64) -> Frame {
        let mut f = d;
        let expires = if id < 0 {
            -1
        } else {
            h.clock_ms() as i64 + ttl_ms
        };
        f.extend([
            bulk("lease_id"),
            int(id),
            bulk("expires_at_ms"),
            int(expires),
            bulk("ttl_ms"),
            int(ttl_ms),
            bulk("holders"),
            int(holders),
        ]);
        map(f)
    }

    fn first_id(h: &Harness) -> i64 {
        h.shared
            .engine
            .next_lease_id
            .load(std::sync::atomic::Ordering::Relaxed) as i64
    }

    #[test]
    fn acquire_grants_up_to_the_limit_with_exact_reply_fields() {
        let mut h = Harness::new();
        let id0 = first_id(&h);
        let cmd = ["LEASE.ACQUIRE", "jobs", "LIMIT", "2", "TTL", "30s"];
        assert_eq!(
            h.run(&cmd),
            acquire_reply(&h, decision(true, 2, 1, -1, 30_000), id0, 30_000, 1),
            "first slot"
        );
        h.clock.advance(Duration::from_secs(10));
        assert_eq!(
            h.run(&["lease.acquire", "jobs", "ttl", "30s", "limit", "2"]),
            acquire_reply(&h, decision(true, 2, 0, -1, 30_000), id0 + 1, 30_000, 2),
            "second slot, options in any order and case"
        );
        assert_eq!(
            h.run(&cmd),
            acquire_reply(&h, decision(false, 2, 0, 20_000, 30_000), -1, -1, 2),
            "full: retry when the first lease expires"
        );
        assert_eq!(h.run(&["TYPE", "jobs"]), simple("lease"));
        assert_eq!((h.session.stats.allowed, h.session.stats.denied), (2, 1));
    }

    #[test]
    fn denial_retry_after_is_exact() {
        let mut h = Harness::new();
        let cmd = ["LEASE.ACQUIRE", "k", "LIMIT", "1", "TTL", "1500ms"];
        h.run(&cmd);
        h.clock.advance(Duration::from_millis(200));
        let denied = h.run(&cmd);
        assert_eq!(get(&denied, "retry_after_ms"), &int(1300), "retry after");
        h.clock.advance(Duration::from_millis(1299));
        assert_eq!(
            get(&h.run(&cmd), "allowed"),
            &Frame::Boolean(false),
            "1 ms before retry_after"
        );
        h.clock.advance(Duration::from_millis(1));
        assert_eq!(
            get(&h.run(&cmd), "allowed"),
            &Frame::Boolean(true),
            "at retry_after"
        );
    }

    #[test]
    fn release_frees_a_slot_and_is_idempotent() {
        let mut h = Harness::new();
        let cmd = ["LEASE.ACQUIRE", "k", "LIMIT", "1", "TTL", "1m"];
        let id = id_of(&h.run(&cmd));
        assert_eq!(get(&h.run(&cmd), "allowed"), &Frame::Boolean(false));
        assert_eq!(h.run(&["LEASE.RELEASE", "k", &id]), int(1), "release");
        assert_eq!(h.run(&["EXISTS", "k"]), int(0), "empty state is deleted");
        assert_eq!(h.run(&["LEASE.RELEASE", "k", &id]), int(0), "again");
        assert_eq!(h.run(&["LEASE.RELEASE", "k", "12345"]), int(0), "unknown");
        assert_eq!(get(&h.run(&cmd), "allowed"), &Frame::Boolean(true));
    }

    #[test]
    fn expired_leases_free_their_slot_and_the_key_expires_with_the_last() {
        let mut h = Harness::new();
        let cmd = ["LEASE.ACQUIRE", "k", "LIMIT", "2", "TTL", "10s"];
        let first = id_of(&h.run(&cmd));
        h.clock.advance(Duration::from_secs(4));
        h.run(&cmd);
        assert_eq!(h.run(&["PTTL", "k"]), int(10_000), "PTTL = reset");
        h.clock.advance(Duration::from_secs(6));
        assert_eq!(h.run(&["LEASE.COUNT", "k"]), int(1), "first expired");
        assert_eq!(
            h.run(&["LEASE.RENEW", "k", &first, "TTL", "10s"]),
            int(0),
            "an expired lease is not revived"
        );
        assert_eq!(h.run(&["PTTL", "k"]), int(4_000));
        h.clock.advance(Duration::from_secs(4));
        assert_eq!(h.run(&["EXISTS", "k"]), int(0), "gone with its last lease");
        assert_eq!(h.run(&["LEASE.COUNT", "k"]), int(0));
    }

    #[test]
    fn renew_extends_and_never_shortens() {
        let mut h = Harness::new();
        let id = id_of(&h.run(&["LEASE.ACQUIRE", "k", "LIMIT", "1", "TTL", "10s"]));
        h.clock.advance(Duration::from_secs(5));
        assert_eq!(h.run(&["LEASE.RENEW", "k", &id, "TTL", "20s"]), int(1));
        assert_eq!(h.run(&["PTTL", "k"]), int(20_000), "extended");
        assert_eq!(h.run(&["lease.renew", "k", &id, "ttl", "1s"]), int(1));
        assert_eq!(h.run(&["PTTL", "k"]), int(20_000), "not shortened");
        h.clock.advance(Duration::from_millis(19_999));
        assert_eq!(h.run(&["LEASE.COUNT", "k"]), int(1), "1 ms before the end");
        h.clock.advance(Duration::from_millis(1));
        assert_eq!(h.run(&["LEASE.COUNT", "k"]), int(0), "at the end");
        assert_eq!(h.run(&["LEASE.RENEW", "nope", "1", "TTL", "1s"]), int(0));
        assert_eq!(h.run(&["EXISTS", "nope"]), int(0), "renew creates nothing");
    }

    #[test]
    fn peek_predicts_acquire_and_changes_nothing() {
        let mut h = Harness::new();
        let peek = ["LEASE.PEEK", "k", "LIMIT", "2", "TTL", "30s"];
        let mut fresh = decision(true, 2, 1, -1, 30_000);
        fresh.extend([bulk("holders"), int(0)]);
        assert_eq!(h.run(&peek), map(fresh), "fresh key, with TTL");
        let mut no_ttl = decision(true, 2, 1, -1, 0);
        no_ttl.extend([bulk("holders"), int(0)]);
        assert_eq!(
            h.run(&["LEASE.PEEK", "k", "LIMIT", "2"]),
            map(no_ttl),
            "fresh key, no TTL"
        );
        assert_eq!(h.run(&["EXISTS", "k"]), int(0), "a peek creates no key");

        h.run(&["LEASE.ACQUIRE", "k", "LIMIT", "2", "TTL", "30s"]);
        h.clock.advance(Duration::from_secs(10));
        h.run(&["LEASE.ACQUIRE", "k", "LIMIT", "2", "TTL", "30s"]);
        h.clock.advance(Duration::from_secs(5));
        let before = (h.run(&["TYPE", "k"]), h.run(&["PTTL", "k"]));
        let mut full = decision(false, 2, 0, 15_000, 25_000);
        full.extend([bulk("holders"), int(2)]);
        assert_eq!(h.run(&peek), map(full.clone()), "full");
        assert_eq!(h.run(&peek), map(full), "a second peek agrees");
        assert_eq!((h.run(&["TYPE", "k"]), h.run(&["PTTL", "k"])), before);
        assert_eq!(h.run(&["LEASE.COUNT", "k"]), int(2));
        assert_eq!((h.session.stats.allowed, h.session.stats.denied), (2, 0));

        h.clock.advance(Duration::from_secs(15));
        let mut one_free = decision(true, 2, 0, -1, 30_000);
        one_free.extend([bulk("holders"), int(1)]);
        assert_eq!(h.run(&peek), map(one_free), "one expired");
        let mut no_ttl = decision(true, 2, 0, -1, 10_000);
        no_ttl.extend([bulk("holders"), int(1)]);
        assert_eq!(
            h.run(&["LEASE.PEEK", "k", "LIMIT", "2"]),
            map(no_ttl),
            "without TTL: reset of the current holders"
        );
    }

    #[test]
    fn bad_arguments_are_clear_errors() {
        let mut h = Harness::new();
        let syntax = "ERR syntax error";
        for (words, want) in [
            (
                vec!["LEASE.ACQUIRE", "k", "LIMIT", "2", "TTL"],
                "ERR wrong number of arguments for 'lease.acquire' command",
            ),
            (
                vec!["LEASE.ACQUIRE", "k", "LIMIT", "2", "LIMIT", "3"],
                syntax,
            ),
            (
                vec!["LEASE.ACQUIRE", "k", "LIMIT", "2", "TTL", "1s", "TTL", "2s"],
                syntax,
            ),
            (
                vec!["LEASE.ACQUIRE", "k", "LIMIT", "2", "TTL", "1s", "NOPE"],
                syntax,
            ),
            (
                vec!["LEASE.ACQUIRE", "k", "LIMIT", "2", "TTL", "1s", "LIMIT"],
                syntax,
            ),
            (vec!["LEASE.ACQUIRE", "k", "MAX", "2", "TTL", "1s"], syntax),
            (
                vec!["LEASE.ACQUIRE", "k", "LIMIT", "0", "TTL", "1s"],
                "ERR invalid LIMIT '0': value must be greater than zero",
            ),
            (
                vec!["LEASE.ACQUIRE", "k", "LIMIT", "-1", "TTL", "1s"],
                "ERR invalid LIMIT '-1': value must be greater than zero",
            ),
            (
                vec!["LEASE.ACQUIRE", "k", "LIMIT", "10001", "TTL", "1s"],
                "ERR limit must be between 1 and 10000",
            ),
            (
                vec!["LEASE.ACQUIRE", "k", "LIMIT", "1", "TTL", "10"],
                "ERR invalid TTL '10': duration needs a unit (ms, s, m, h or d), e.g. 30s",
            ),
            (
                vec!["LEASE.ACQUIRE", "k", "LIMIT", "1", "TTL", "0s"],
                "ERR invalid TTL '0s': value must be greater than zero",
            ),
            (
                vec![
                    "LEASE.ACQUIRE",
                    "k",
                    "LIMIT",
                    "1",
                    "TTL",
                    "99999999999999999999d",
                ],
                "ERR invalid TTL '99999999999999999999d': value is out of range",
            ),
            (vec!["LEASE.PEEK", "k", "TTL", "1s"], syntax),
            (vec!["LEASE.PEEK", "k", "LIMIT", "1", "TTL"], syntax),
            (
                vec!["LEASE.PEEK", "k", "LIMIT", "x"],
                "ERR invalid LIMIT 'x': must be a whole number greater than zero",
            ),
            (
                vec!["LEASE.RELEASE", "k"],
                "ERR wrong number of arguments for 'lease.release' command",
            ),
            (
                vec!["LEASE.RELEASE", "k", "abc"],
                "ERR value is not an integer or out of range",
            ),
            (
                vec!["LEASE.RELEASE", "k", "-5"],
                "ERR value is out of range, must be positive",
            ),
            (vec!["LEASE.RENEW", "k", "1", "LIMIT", "1"], syntax),
            (
                vec!["LEASE.RENEW", "k", "1", "TTL", "1s", "LIMIT", "1"],
                syntax,
            ),
            (
                vec!["LEASE.RENEW", "k", "1", "TTL", "1s", "TTL", "1s"],
                syntax,
            ),
            (
                vec!["LEASE.RENEW", "k", "1", "TTL", "0ms"],
                "ERR invalid TTL '0ms': value must be greater than zero",
            ),
            (
                vec!["LEASE.RENEW", "k", "x", "TTL", "1s"],
                "ERR value is not an integer or out of range",
            ),
            (
                vec!["LEASE.COUNT", "k", "x"],
                "ERR wrong number of arguments for 'lease.count' command",
            ),
        ] {
            assert_eq!(h.run(&words), err(want), "{words:?}");
        }
        assert_eq!(h.run(&["EXISTS", "k"]), int(0), "errors write nothing");
    }

    #[test]
    fn keys_of_another_kind_are_wrongtype_both_ways() {
        let mut h = Harness::new();
        h.run(&["SET", "s", "v"]);
        for words in [
            vec!["LEASE.ACQUIRE", "s", "LIMIT", "1", "TTL", "1s"],
            vec!["LEASE.PEEK", "s", "LIMIT", "1"],
            vec!["LEASE.RELEASE", "s", "1"],
            vec!["LEASE.RENEW", "s", "1", "TTL", "1s"],
            vec!["LEASE.COUNT", "s"],
        ] {
            assert_eq!(h.run(&words), err(WRONGTYPE), "{words:?}");
        }
        assert_eq!(h.run(&["GET", "s"]), bulk("v"), "the string is untouched");
        h.run(&["LEASE.ACQUIRE", "l", "LIMIT", "1", "TTL", "1s"]);
        assert_eq!(h.run(&["GET", "l"]), err(WRONGTYPE));
        assert_eq!(h.run(&["INCR", "l"]), err(WRONGTYPE));
    }

    #[test]
    fn lease_ids_are_unique_across_keys() {
        let mut h = Harness::new();
        let a = id_of(&h.run(&["LEASE.ACQUIRE", "a", "LIMIT", "5", "TTL", "1s"]));
        let b = id_of(&h.run(&["LEASE.ACQUIRE", "b", "LIMIT", "5", "TTL", "1s"]));
        let c = id_of(&h.run(&["LEASE.ACQUIRE", "a", "LIMIT", "5", "TTL", "1s"]));
        assert!(a != b && b != c && a != c, "{a} {b} {c}");
        assert_eq!(h.run(&["LEASE.RELEASE", "a", &b]), int(0), "b's id on a");
        assert_eq!(h.run(&["LEASE.COUNT", "a"]), int(2));
    }
}
