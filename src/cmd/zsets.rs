//! Sorted set commands: ZADD (NX/XX/GT/LT/CH/INCR), ZREM, ZCARD, ZCOUNT, ZSCORE and
//! ZREMRANGEBYSCORE, with Redis's replies and error texts. Scores are `f64`s read as Redis's
//! `strtod` reads them (`inf`, `-inf`), and a range end written `(x` is exclusive. Removing the
//! last member deletes the key. The range reads ZRANGE and ZRANGEBYSCORE are in
//! [`super::zrange`].
//!
//! Reads use [`Shard::get_live`]; a command touches [`Shard::get_mut`] only once it knows it
//! will change the set, because a mutable access is what journals the key.

use bytes::Bytes;

use super::args::{self, is};
use super::flags::*;
use super::{CommandSpec, Ctx, BASE};
use crate::clock::Nanos;
use crate::error::CommandError;
use crate::protocol::Frame;
use crate::store::zset::{ScoreBound, ZSet};
use crate::store::{Entry, Shard, Value};

/// Sorted set commands.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "ZADD",
        arity: -4,
        flags: WRITE | DENYOOM | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "sorted_set",
        summary: "Adds one or more members to a sorted set, or updates their scores. Creates the key if it doesn't exist.",
        since: "1.2.0",
        complexity: "O(log(N)) for each item added, where N is the number of elements in the sorted set.",
        args: "key:key condition=[NX|XX] comparison=[GT|LT] [CH] [INCR] data=(score:double member:string)...",
        handler: zadd,
        ..BASE
    },
    CommandSpec {
        name: "ZREM",
        arity: -3,
        flags: WRITE | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "sorted_set",
        summary: "Removes one or more members from a sorted set. Deletes the sorted set if all members were removed.",
        since: "1.2.0",
        complexity: "O(M*log(N)) with N being the number of elements in the sorted set and M the number of elements to be removed.",
        args: "key:key member:string...",
        handler: zrem,
        ..BASE
    },
    CommandSpec {
        name: "ZCARD",
        arity: 2,
        flags: READONLY | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "sorted_set",
        summary: "Returns the number of members in a sorted set.",
        since: "1.2.0",
        args: "key:key",
        handler: zcard,
        ..BASE
    },
    CommandSpec {
        name: "ZCOUNT",
        arity: 4,
        flags: READONLY | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "sorted_set",
        summary: "Returns the count of members in a sorted set that have scores within a range.",
        since: "2.0.0",
        complexity: "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements in the range.",
        args: "key:key min:double max:double",
        handler: zcount,
        ..BASE
    },
    CommandSpec {
        name: "ZSCORE",
        arity: 3,
        flags: READONLY | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "sorted_set",
        summary: "Returns the score of a member in a sorted set.",
        since: "1.2.0",
        args: "key:key member:string",
        handler: zscore,
        ..BASE
    },
    CommandSpec {
        name: "ZREMRANGEBYSCORE",
        arity: 4,
        flags: WRITE,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "sorted_set",
        summary: "Removes members in a sorted set within a range of scores. Deletes the sorted set if all members were removed.",
        since: "1.2.0",
        complexity: "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements removed by the operation.",
        args: "key:key min:double max:double",
        handler: zremrangebyscore,
        ..BASE
    },
];

/// The sorted set at `key` for reading: `Ok(None)` if absent, `WrongType` for other kinds.
pub(super) fn read<'s>(
    s: &'s mut Shard,
    key: &[u8],
    now: Nanos,
) -> Result<Option<&'s ZSet>, CommandError> {
    match s.get_live(key, now).map(|e| &e.value) {
        None => Ok(None),
        Some(Value::ZSet(z)) => Ok(Some(z)),
        Some(_) => Err(CommandError::WrongType),
    }
}

/// The sorted set at `key` for writing. Call only after [`read`] found one: a mutable access
/// marks the key changed.
pub(super) fn write<'s>(s: &'s mut Shard, key: &[u8], now: Nanos) -> &'s mut ZSet {
    match s.get_mut(key, now).map(|e| &mut e.value) {
        Some(Value::ZSet(z)) => z,
        _ => unreachable!("invariant: read() found a sorted set under the same lock"),
    }
}

/// Deletes `key` if the set it holds became empty (Redis never keeps an empty collection).
pub(super) fn drop_if_empty(s: &mut Shard, key: &[u8], now: Nanos) {
    if s.get_live(key, now)
        .is_some_and(|e| matches!(&e.value, Value::ZSet(z) if z.is_empty()))
    {
        s.remove(key, now);
    }
}

/// A score as Redis's `getDoubleFromObject` reads it: [`args::parse_f64`], and also refused
/// when `strtod` would report a range error, i.e. a written number that overflows to infinity
/// (`1e400`) or a non-zero one that underflows to zero (`1e-400`).
pub(super) fn parse_score(arg: &[u8]) -> Result<f64, CommandError> {
    let v = args::float(arg)?;
    // `inf` and `infinity` contain no digit, so a digit means a number that overflowed.
    let overflow = v.is_infinite() && arg.iter().any(u8::is_ascii_digit);
    let mantissa = arg
        .split(|b| matches!(b, b'e' | b'E'))
        .next()
        .unwrap_or(arg);
    let underflow = v == 0.0 && mantissa.iter().any(|b| (b'1'..=b'9').contains(b));
    if overflow || underflow {
        return Err(CommandError::NotAFloat);
    }
    Ok(v)
}

/// Reads one end of a score range: `x`, `(x` (exclusive), `-inf`, `+inf`.
///
/// Redis reads the number with a bare `strtod` that only has to consume the rest of the
/// argument, so leading blanks are skipped and an empty number (`(` alone, or an empty
/// argument) is 0.
fn parse_bound(arg: &[u8]) -> Option<ScoreBound> {
    let (exclusive, rest) = match arg.split_first() {
        Some((b'(', rest)) => (true, rest),
        _ => (false, arg),
    };
    let start = rest
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))
        .unwrap_or(rest.len());
    let value = match &rest[start..] {
        [] => 0.0,
        number => args::parse_f64(number)?,
    };
    Some(ScoreBound { value, exclusive })
}

/// Both ends of a score range, read by [`parse_bound`]; `min or max is not a float` if either
/// is not a number.
pub(super) fn parse_range(
    min: &[u8],
    max: &[u8],
) -> Result<(ScoreBound, ScoreBound), CommandError> {
    match (parse_bound(min), parse_bound(max)) {
        (Some(min), Some(max)) => Ok((min, max)),
        _ => Err(CommandError::other("min or max is not a float")),
    }
}

#[derive(Default, Clone, Copy)]
struct ZaddOptions {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    ch: bool,
    incr: bool,
}

/// What ZADD does to one member, decided as Redis's `zsetAdd` decides it.
#[derive(Clone, Copy, PartialEq)]
enum Outcome {
    Added(f64),
    Updated(f64),
    /// Processed, but the score did not change.
    Same(f64),
    /// Skipped by NX, XX, GT or LT.
    Skipped,
}

fn decide(current: Option<f64>, score: f64, o: ZaddOptions) -> Result<Outcome, CommandError> {
    let Some(cur) = current else {
        return Ok(if o.xx {
            Outcome::Skipped
        } else {
            Outcome::Added(score)
        });
    };
    if o.nx {
        return Ok(Outcome::Skipped);
    }
    let new = if o.incr { cur + score } else { score };
    if new.is_nan() {
        return Err(CommandError::other("resulting score is not a number (NaN)"));
    }
    if (o.lt && new >= cur) || (o.gt && new <= cur) {
        return Ok(Outcome::Skipped);
    }
    Ok(if new == cur {
        Outcome::Same(new)
    } else {
        Outcome::Updated(new)
    })
}

fn zadd(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let mut o = ZaddOptions::default();
    let mut i = 2;
    while let Some(a) = req.get(i) {
        let flag = match () {
            _ if is(a, "NX") => &mut o.nx,
            _ if is(a, "XX") => &mut o.xx,
            _ if is(a, "GT") => &mut o.gt,
            _ if is(a, "LT") => &mut o.lt,
            _ if is(a, "CH") => &mut o.ch,
            _ if is(a, "INCR") => &mut o.incr,
            _ => break,
        };
        *flag = true;
        i += 1;
    }
    let elements = req.len() - i;
    if elements == 0 || elements % 2 != 0 {
        return Err(CommandError::Syntax);
    }
    if o.nx && o.xx {
        return Err(CommandError::other(
            "XX and NX options at the same time are not compatible",
        ));
    }
    if [o.gt, o.lt, o.nx].iter().filter(|&&set| set).count() > 1 {
        return Err(CommandError::other(
            "GT, LT, and/or NX options at the same time are not compatible",
        ));
    }
    if o.incr && elements > 2 {
        return Err(CommandError::other(
            "INCR option supports a single increment-element pair",
        ));
    }
    let pairs = req[i..]
        .chunks_exact(2)
        .map(|p| Ok((parse_score(&p[0])?, &p[1])))
        .collect::<Result<Vec<_>, CommandError>>()?;
    let now = ctx.now;
    let key = &req[1];
    ctx.with_shard(key, |s| {
        // Decide every member first against the current set plus the earlier members of this
        // command, so the key is touched (and journaled) only if something changes.
        let existing = read(s, key, now)?;
        let mut outcomes = Vec::with_capacity(pairs.len());
        for (n, &(score, member)) in pairs.iter().enumerate() {
            let earlier =
                pairs[..n]
                    .iter()
                    .zip(&outcomes)
                    .rev()
                    .find_map(|((_, m), out)| match out {
                        Outcome::Added(v) | Outcome::Updated(v) if *m == member => Some(*v),
                        _ => None,
                    });
            let current = earlier.or_else(|| existing.and_then(|z| z.score(member)));
            outcomes.push(decide(current, score, o)?);
        }
        let changed = |out: &Outcome| matches!(out, Outcome::Added(_) | Outcome::Updated(_));
        if outcomes.iter().any(changed) {
            let exists = existing.is_some();
            if !exists {
                s.insert(key, Entry::new(Value::ZSet(Box::default())));
            }
            let z = write(s, key, now);
            for ((_, member), out) in pairs.iter().zip(&outcomes) {
                if let Outcome::Added(v) | Outcome::Updated(v) = *out {
                    // Copied so the keyspace never pins a connection's read buffer.
                    z.insert(Bytes::copy_from_slice(member), v);
                }
            }
        }
        let count = |f: fn(&Outcome) -> bool| outcomes.iter().filter(|o| f(o)).count() as i64;
        let added = count(|o| matches!(o, Outcome::Added(_)));
        let updated = count(|o| matches!(o, Outcome::Updated(_)));
        Ok(if o.incr {
            match outcomes[0] {
                Outcome::Added(v) | Outcome::Updated(v) | Outcome::Same(v) => Frame::Double(v),
                Outcome::Skipped => Frame::Null,
            }
        } else if o.ch {
            Frame::Integer(added + updated)
        } else {
            Frame::Integer(added)
        })
    })
}

fn zrem(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let key = &req[1];
    let members = &req[2..];
    ctx.with_shard(key, |s| {
        let Some(z) = read(s, key, now)? else {
            return Ok(Frame::Integer(0));
        };
        if !members.iter().any(|m| z.score(m).is_some()) {
            return Ok(Frame::Integer(0));
        }
        let z = write(s, key, now);
        let removed = members.iter().filter(|m| z.remove(m).is_some()).count();
        drop_if_empty(s, key, now);
        Ok(Frame::Integer(removed as i64))
    })
}

fn zcard(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let key = &req[1];
    ctx.with_shard(key, |s| {
        Ok(Frame::Integer(
            read(s, key, now)?.map_or(0, |z| z.len() as i64),
        ))
    })
}

fn zscore(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let key = &req[1];
    ctx.with_shard(key, |s| {
        let score = read(s, key, now)?.and_then(|z| z.score(&req[2]));
        Ok(score.map_or(Frame::Null, Frame::Double))
    })
}

fn zcount(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let (min, max) = parse_range(&req[2], &req[3])?;
    let now = ctx.now;
    let key = &req[1];
    ctx.with_shard(key, |s| {
        let n = read(s, key, now)?.map_or(0, |z| z.range(min, max).count());
        Ok(Frame::Integer(n as i64))
    })
}

fn zremrangebyscore(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let (min, max) = parse_range(&req[2], &req[3])?;
    let now = ctx.now;
    let key = &req[1];
    ctx.with_shard(key, |s| {
        let Some(z) = read(s, key, now)? else {
            return Ok(Frame::Integer(0));
        };
        if z.range(min, max).next().is_none() {
            return Ok(Frame::Integer(0));
        }
        let removed = write(s, key, now).remove_range(min, max);
        drop_if_empty(s, key, now);
        Ok(Frame::Integer(removed as i64))
    })
}

/// Members, with scores if asked: flat `member, score` pairs in RESP2, `[member, score]`
/// arrays in RESP3 (as Redis 7 sends them).
pub(super) fn render(picked: Vec<(&Bytes, f64)>, withscores: bool, resp3: bool) -> Vec<Frame> {
    let mut out = Vec::with_capacity(picked.len() * if withscores && !resp3 { 2 } else { 1 });
    for (m, score) in picked {
        let member = Frame::Bulk(m.clone());
        match (withscores, resp3) {
            (false, _) => out.push(member),
            (true, false) => out.extend([member, Frame::Double(score)]),
            (true, true) => out.push(Frame::Array(vec![member, Frame::Double(score)])),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::cmd::testing::*;
    use crate::protocol::Frame;

    fn arr(items: &[&str]) -> Frame {
        Frame::Array(items.iter().map(|s| bulk(s)).collect())
    }

    fn double(v: f64) -> Frame {
        Frame::Double(v)
    }

    #[test]
    fn zadd_adds_updates_and_counts() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["ZADD", "z", "1", "a", "2", "b"]), int(2));
        assert_eq!(h.run(&["ZADD", "z", "1", "a", "3", "b"]), int(0));
        assert_eq!(
            h.run(&["ZADD", "z", "CH", "1", "a", "4", "b", "5", "c"]),
            int(2)
        );
        assert_eq!(
            h.run(&["ZADD", "z", "5", "d", "6", "d"]),
            int(1),
            "duplicate in one call"
        );
        assert_eq!(h.run(&["ZSCORE", "z", "d"]), double(6.0));
        assert_eq!(h.run(&["ZCARD", "z"]), int(4));
        assert_eq!(h.run(&["TYPE", "z"]), simple("zset"));
    }

    #[test]
    fn zadd_conditions_follow_redis() {
        let mut h = Harness::new();
        h.run(&["ZADD", "z", "10", "a"]);
        assert_eq!(h.run(&["ZADD", "z", "NX", "1", "a", "1", "b"]), int(1));
        assert_eq!(h.run(&["ZSCORE", "z", "a"]), double(10.0));
        assert_eq!(h.run(&["ZADD", "z", "XX", "1", "c"]), int(0));
        assert_eq!(h.run(&["ZSCORE", "z", "c"]), Frame::Null);
        assert_eq!(h.run(&["ZADD", "z", "XX", "CH", "2", "b"]), int(1));
        assert_eq!(
            h.run(&["ZADD", "z", "GT", "CH", "5", "a", "3", "b"]),
            int(1)
        );
        assert_eq!(
            h.run(&["ZSCORE", "z", "a"]),
            double(10.0),
            "GT keeps the larger"
        );
        assert_eq!(h.run(&["ZADD", "z", "LT", "CH", "5", "a"]), int(1));
        assert_eq!(
            h.run(&["ZADD", "z", "GT", "7", "new"]),
            int(1),
            "GT still adds"
        );
        assert_eq!(h.run(&["ZADD", "missing", "XX", "1", "a"]), int(0));
        assert_eq!(h.run(&["EXISTS", "missing"]), int(0));
    }

    #[test]
    fn zadd_incr_replies_with_the_score_or_nil() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["ZADD", "z", "INCR", "1.5", "a"]), double(1.5));
        assert_eq!(
            h.run(&["ZADD", "z", "0.0e-400", "zero", "4.9e-324", "tiny"]),
            int(2)
        );
        assert_eq!(h.run(&["ZADD", "z", "INCR", "2", "a"]), double(3.5));
        assert_eq!(h.run(&["ZADD", "z", "INCR", "0", "a"]), double(3.5));
        assert_eq!(h.run(&["ZADD", "z", "NX", "INCR", "1", "a"]), Frame::Null);
        assert_eq!(h.run(&["ZADD", "z", "GT", "INCR", "-1", "a"]), Frame::Null);
        assert_eq!(h.run(&["ZADD", "z", "XX", "INCR", "1", "b"]), Frame::Null);
        h.run(&["ZADD", "z", "inf", "i"]);
        assert_eq!(
            h.run(&["ZADD", "z", "INCR", "-inf", "i"]),
            err("ERR resulting score is not a number (NaN)")
        );
    }

    #[test]
    fn zadd_errors_match_redis() {
        let mut h = Harness::new();
        let cases: &[(&[&str], &str)] = &[
            (
                &["ZADD", "z", "NX", "XX", "1", "a"],
                "ERR XX and NX options at the same time are not compatible",
            ),
            (
                &["ZADD", "z", "NX", "GT", "1", "a"],
                "ERR GT, LT, and/or NX options at the same time are not compatible",
            ),
            (
                &["ZADD", "z", "GT", "LT", "1", "a"],
                "ERR GT, LT, and/or NX options at the same time are not compatible",
            ),
            (
                &["ZADD", "z", "INCR", "1", "a", "2", "b"],
                "ERR INCR option supports a single increment-element pair",
            ),
            (&["ZADD", "z", "1", "a", "2"], "ERR syntax error"),
            (&["ZADD", "z", "NX", "1"], "ERR syntax error"),
            (&["ZADD", "z", "x", "a"], "ERR value is not a valid float"),
            (&["ZADD", "z", "nan", "a"], "ERR value is not a valid float"),
            (
                &["ZADD", "z", "1e400", "a"],
                "ERR value is not a valid float",
            ),
            (
                &["ZADD", "z", "-1e400", "a"],
                "ERR value is not a valid float",
            ),
            (
                &["ZADD", "z", "1e-400", "a"],
                "ERR value is not a valid float",
            ),
            (
                &["ZADD", "z"],
                "ERR wrong number of arguments for 'zadd' command",
            ),
        ];
        for (req, want) in cases {
            assert_eq!(h.run(req), err(want), "{req:?}");
        }
        assert_eq!(h.run(&["EXISTS", "z"]), int(0), "errors change nothing");
        h.run(&["SET", "s", "v"]);
        let wrong = err("WRONGTYPE Operation against a key holding the wrong kind of value");
        for req in [
            &["ZADD", "s", "1", "a"][..],
            &["ZREM", "s", "a"],
            &["ZCARD", "s"],
            &["ZSCORE", "s", "a"],
            &["ZCOUNT", "s", "0", "1"],
            &["ZRANGE", "s", "0", "-1"],
            &["ZRANGEBYSCORE", "s", "0", "1"],
            &["ZREMRANGEBYSCORE", "s", "0", "1"],
        ] {
            assert_eq!(h.run(req), wrong, "{req:?}");
        }
    }

    #[test]
    fn zrem_and_zremrangebyscore_delete_the_emptied_key() {
        let mut h = Harness::new();
        h.run(&["ZADD", "z", "1", "a", "2", "b", "3", "c"]);
        assert_eq!(h.run(&["ZREM", "z", "a", "a", "x"]), int(1));
        assert_eq!(h.run(&["ZREM", "nokey", "a"]), int(0));
        assert_eq!(h.run(&["ZREMRANGEBYSCORE", "z", "(2", "+inf"]), int(1));
        assert_eq!(h.run(&["ZREMRANGEBYSCORE", "z", "5", "6"]), int(0));
        assert_eq!(h.run(&["ZREM", "z", "b"]), int(1));
        assert_eq!(h.run(&["EXISTS", "z"]), int(0));
        h.run(&["ZADD", "z", "1", "a"]);
        assert_eq!(h.run(&["ZREMRANGEBYSCORE", "z", "-inf", "+inf"]), int(1));
        assert_eq!(h.run(&["TYPE", "z"]), simple("none"));
        assert_eq!(
            h.run(&["ZREMRANGEBYSCORE", "z", "a", "1"]),
            err("ERR min or max is not a float")
        );
    }

    #[test]
    fn zcount_and_score_ranges() {
        let mut h = Harness::new();
        h.run(&[
            "ZADD", "z", "-inf", "n", "1", "a", "2", "b", "3", "c", "+inf", "p",
        ]);
        assert_eq!(h.run(&["ZCOUNT", "z", "-inf", "+inf"]), int(5));
        assert_eq!(h.run(&["ZCOUNT", "z", "(1", "3"]), int(2));
        assert_eq!(h.run(&["ZCOUNT", "z", "(1", "(3"]), int(1));
        assert_eq!(h.run(&["ZCOUNT", "z", "3", "1"]), int(0));
        assert_eq!(h.run(&["ZCOUNT", "none", "0", "1"]), int(0));
        assert_eq!(
            h.run(&["ZCOUNT", "z", "(", "1"]),
            int(1),
            "strtod reads an empty number as 0"
        );
        assert_eq!(h.run(&["ZCOUNT", "z", "", " 1"]), int(1));
        assert_eq!(
            h.run(&["ZCOUNT", "z", "(x", "1"]),
            err("ERR min or max is not a float")
        );
        assert_eq!(
            h.run(&["ZCOUNT", "z", "nan", "1"]),
            err("ERR min or max is not a float")
        );
        assert_eq!(
            h.run(&["ZRANGEBYSCORE", "z", "1", "3"]),
            arr(&["a", "b", "c"])
        );
        assert_eq!(
            h.run(&["ZRANGEBYSCORE", "z", "-inf", "+inf", "LIMIT", "1", "2"]),
            arr(&["a", "b"])
        );
        assert_eq!(
            h.run(&["ZRANGEBYSCORE", "z", "-inf", "+inf", "LIMIT", "-1", "2"]),
            arr(&[])
        );
        assert_eq!(
            h.run(&["ZRANGEBYSCORE", "z", "-inf", "+inf", "LIMIT", "3", "-5"]),
            arr(&["c", "p"])
        );
        assert_eq!(
            h.run(&["ZRANGEBYSCORE", "z", "(1", "2", "WITHSCORES"]),
            Frame::Array(vec![bulk("b"), double(2.0)])
        );
        assert_eq!(
            h.run(&["ZRANGEBYSCORE", "z", "1", "2", "REV"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["ZRANGEBYSCORE", "z", "1", "2", "LIMIT", "1"]),
            err("ERR syntax error")
        );
    }

    #[test]
    fn sliding_log_pattern_and_expiry() {
        // The pattern rate-limit libraries use: trim old entries, count, add, expire.
        let mut h = Harness::new();
        for t in 1..=5 {
            h.run(&["ZADD", "log", &t.to_string(), &format!("req{t}")]);
        }
        assert_eq!(h.run(&["ZREMRANGEBYSCORE", "log", "-inf", "2"]), int(2));
        assert_eq!(h.run(&["ZCARD", "log"]), int(3));
        assert_eq!(h.run(&["PEXPIRE", "log", "100"]), int(1));
        h.run(&["ZADD", "log", "6", "req6"]);
        assert_eq!(h.run(&["PTTL", "log"]), int(100), "writes keep the TTL");
        h.clock.advance(Duration::from_millis(100));
        assert_eq!(h.run(&["ZCARD", "log"]), int(0));
        assert_eq!(h.run(&["EXISTS", "log"]), int(0));
    }

    #[test]
    fn reads_and_no_op_writes_do_not_mark_the_key_changed() {
        let mut h = Harness::new();
        h.run(&["ZADD", "z", "1", "a"]);
        let before = h.session.stats.dirty;
        for req in [
            &["ZADD", "z", "1", "a"][..],
            &["ZADD", "z", "NX", "2", "a"],
            &["ZADD", "z", "XX", "2", "b"],
            &["ZREM", "z", "b"],
            &["ZREMRANGEBYSCORE", "z", "5", "6"],
            &["ZSCORE", "z", "a"],
            &["ZRANGE", "z", "0", "-1", "WITHSCORES"],
            &["ZCOUNT", "z", "0", "1"],
            &["ZCARD", "z"],
        ] {
            h.run(req);
        }
        assert_eq!(h.session.stats.dirty, before);
        h.run(&["ZADD", "z", "2", "a"]);
        assert_eq!(h.session.stats.dirty, before + 1);
    }
}
