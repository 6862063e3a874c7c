//! More sorted set commands, with Redis 7.0's replies and errors: ZPOPMIN, ZPOPMAX, ZMPOP
//! (the forms the blocking BZPOPMIN, BZPOPMAX and BZMPOP of [`super::blocking`] run), ZINCRBY,
//! ZRANK, ZREVRANK, ZMSCORE, ZREVRANGE, ZREVRANGEBYSCORE, the lexicographical ranges
//! (ZRANGEBYLEX, ZREVRANGEBYLEX, ZLEXCOUNT, ZREMRANGEBYLEX; meant for sets whose members all
//! have the same score, and O(N) here) and ZREMRANGEBYRANK. The helpers they share with
//! ZADD and ZRANGE are in [`super::zsets`] and [`super::zrange`].

use bytes::Bytes;

use super::args;
use super::flags::*;
use super::zsets::{drop_if_empty, parse_score, read, write};
use super::{CommandSpec, Ctx, BASE};
use crate::error::CommandError;
use crate::protocol::Frame;
use crate::store::zset::ZSet;
use crate::store::{Entry, Value};

/// The commands of this file.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "ZPOPMIN",
        arity: -2,
        flags: WRITE | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "sorted_set",
        summary: "Returns the lowest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped.",
        since: "5.0.0",
        complexity: "O(log(N)*M) with N being the number of elements in the sorted set, and M being the number of elements popped.",
        args: "key:key [count:integer]",
        handler: |ctx, req| zpop(ctx, req, false),
        ..BASE
    },
    CommandSpec {
        name: "ZPOPMAX",
        arity: -2,
        flags: WRITE | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "sorted_set",
        summary: "Returns the highest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped.",
        since: "5.0.0",
        complexity: "O(log(N)*M) with N being the number of elements in the sorted set, and M being the number of elements popped.",
        args: "key:key [count:integer]",
        handler: |ctx, req| zpop(ctx, req, true),
        ..BASE
    },
    CommandSpec {
        name: "ZMPOP",
        arity: -4,
        flags: WRITE | MOVABLEKEYS,
        group: "sorted_set",
        summary: "Returns the highest- or lowest-scoring members from one or more sorted sets after removing them. Deletes the sorted set if the last member was popped.",
        since: "7.0.0",
        complexity: "O(K) + O(M*log(N)) where K is the number of provided keys, N being the number of elements in the sorted set, and M being the number of elements popped.",
        args: "numkeys:integer key:key... where=(MIN|MAX) [COUNT count:integer]",
        handler: zmpop,
        ..BASE
    },
    CommandSpec {
        name: "ZINCRBY",
        arity: 4,
        flags: WRITE | DENYOOM | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "sorted_set",
        summary: "Increments the score of a member in a sorted set.",
        since: "1.2.0",
        complexity: "O(log(N)) where N is the number of elements in the sorted set.",
        args: "key:key increment:integer member:string",
        handler: zincrby,
        ..BASE
    },
    CommandSpec {
        name: "ZRANK",
        arity: 3,
        flags: READONLY | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "sorted_set",
        summary: "Returns the index of a member in a sorted set ordered by ascending scores.",
        since: "2.0.0",
        complexity: "O(log(N))",
        args: "key:key member:string",
        handler: |ctx, req| zrank(ctx, req, false),
        ..BASE
    },
    CommandSpec {
        name: "ZREVRANK",
        arity: 3,
        flags: READONLY | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "sorted_set",
        summary: "Returns the index of a member in a sorted set ordered by descending scores.",
        since: "2.0.0",
        complexity: "O(log(N))",
        args: "key:key member:string",
        handler: |ctx, req| zrank(ctx, req, true),
        ..BASE
    },
    CommandSpec {
        name: "ZMSCORE",
        arity: -3,
        flags: READONLY | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "sorted_set",
        summary: "Returns the score of one or more members in a sorted set.",
        since: "6.2.0",
        complexity: "O(N) where N is the number of members being requested.",
        args: "key:key member:string...",
        handler: zmscore,
        ..BASE
    },
    CommandSpec {
        name: "ZREVRANGE",
        arity: -4,
        flags: READONLY,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "sorted_set",
        summary: "Returns members in a sorted set within a range of indexes in reverse order.",
        since: "1.2.0",
        complexity: "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements returned.",
        args: "key:key start:integer stop:integer [WITHSCORES]",
        handler: |ctx, req| super::zrange::zrange_rev(ctx, req, false),
        ..BASE
    },
    CommandSpec {
        name: "ZREVRANGEBYSCORE",
        arity: -4,
        flags: READONLY,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "sorted_set",
        summary: "Returns members in a sorted set within a range of scores in reverse order.",
        since: "2.2.0",
        complexity: "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements being returned.",
        args: "key:key max:double min:double [WITHSCORES] [LIMIT offset:integer count:integer]",
        handler: |ctx, req| super::zrange::zrange_rev(ctx, req, true),
        ..BASE
    },
    CommandSpec {
        name: "ZRANGEBYLEX",
        arity: -4,
        flags: READONLY,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "sorted_set",
        summary: "Returns members in a sorted set within a lexicographical range.",
        since: "2.8.9",
        complexity: "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements being returned.",
        args: "key:key min:string max:string [LIMIT offset:integer count:integer]",
        handler: |ctx, req| super::zrange::zrange_by_lex(ctx, req, false),
        ..BASE
    },
    CommandSpec {
        name: "ZREVRANGEBYLEX",
        arity: -4,
        flags: READONLY,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "sorted_set",
        summary: "Returns members in a sorted set within a lexicographical range in reverse order.",
        since: "2.8.9",
        complexity: "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements being returned.",
        args: "key:key max:string min:string [LIMIT offset:integer count:integer]",
        handler: |ctx, req| super::zrange::zrange_by_lex(ctx, req, true),
        ..BASE
    },
    CommandSpec {
        name: "ZLEXCOUNT",
        arity: 4,
        flags: READONLY | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "sorted_set",
        summary: "Returns the number of members in a sorted set within a lexicographical range.",
        since: "2.8.9",
        complexity: "O(log(N)) with N being the number of elements in the sorted set.",
        args: "key:key min:string max:string",
        handler: zlexcount,
        ..BASE
    },
    CommandSpec {
        name: "ZREMRANGEBYLEX",
        arity: 4,
        flags: WRITE,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "sorted_set",
        summary: "Removes members in a sorted set within a lexicographical range. Deletes the sorted set if all members were removed.",
        since: "2.8.9",
        complexity: "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements removed by the operation.",
        args: "key:key min:string max:string",
        handler: zremrangebylex,
        ..BASE
    },
    CommandSpec {
        name: "ZREMRANGEBYRANK",
        arity: 4,
        flags: WRITE,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "sorted_set",
        summary: "Removes members in a sorted set within a range of indexes. Deletes the sorted set if all members were removed.",
        since: "2.0.0",
        complexity: "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements removed by the operation.",
        args: "key:key start:integer stop:integer",
        handler: zremrangebyrank,
        ..BASE
    },
];

/// One end of a lexicographical range: `-`, `+`, `[member` (inclusive), `(member`.
#[derive(Debug, Clone)]
pub(super) enum LexBound {
    NegInf,
    PosInf,
    Incl(Bytes),
    Excl(Bytes),
}

/// Both ends of a lexicographical range, or Redis's error.
pub(super) fn parse_lex_range(
    min: &Bytes,
    max: &Bytes,
) -> Result<(LexBound, LexBound), CommandError> {
    let one = |a: &Bytes| match a.first() {
        Some(b'-') if a.len() == 1 => Some(LexBound::NegInf),
        Some(b'+') if a.len() == 1 => Some(LexBound::PosInf),
        Some(b'[') => Some(LexBound::Incl(a.slice(1..))),
        Some(b'(') => Some(LexBound::Excl(a.slice(1..))),
        _ => None,
    };
    match (one(min), one(max)) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => Err(CommandError::other(
            "min or max not valid string range item",
        )),
    }
}

/// True if `m` lies within `[min, max]` (each end as written).
pub(super) fn in_lex(m: &[u8], min: &LexBound, max: &LexBound) -> bool {
    let above = match min {
        LexBound::NegInf => true,
        LexBound::PosInf => false,
        LexBound::Incl(b) => m >= b.as_ref(),
        LexBound::Excl(b) => m > b.as_ref(),
    };
    let below = match max {
        LexBound::NegInf => false,
        LexBound::PosInf => true,
        LexBound::Incl(b) => m <= b.as_ref(),
        LexBound::Excl(b) => m < b.as_ref(),
    };
    above && below
}

/// `ZLEXCOUNT key min max`.
fn zlexcount(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let (min, max) = parse_lex_range(&req[2], &req[3])?;
    let (now, key) = (ctx.now, &req[1]);
    ctx.with_shard(key, |s| {
        let n = read(s, key, now)?.map_or(0, |z| {
            z.iter().filter(|(m, _)| in_lex(m, &min, &max)).count()
        });
        Ok(Frame::Integer(n as i64))
    })
}

/// `ZREMRANGEBYLEX key min max`: how many were removed.
fn zremrangebylex(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let (min, max) = parse_lex_range(&req[2], &req[3])?;
    let (now, key) = (ctx.now, &req[1]);
    ctx.with_shard(key, |s| {
        let Some(z) = read(s, key, now)? else {
            return Ok(Frame::Integer(0));
        };
        let doomed: Vec<Bytes> = z
            .iter()
            .filter(|(m, _)| in_lex(m, &min, &max))
            .map(|(m, _)| m.clone())
            .collect();
        remove_all(s, key, now, &doomed)
    })
}

/// `ZREMRANGEBYRANK key start stop`: ranks as ZRANGE reads them; how many were removed.
fn zremrangebyrank(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let (start, stop) = (args::int(&req[2])?, args::int(&req[3])?);
    let (now, key) = (ctx.now, &req[1]);
    ctx.with_shard(key, |s| {
        let Some(z) = read(s, key, now)? else {
            return Ok(Frame::Integer(0));
        };
        let len = z.len() as i64;
        let start = if start < 0 {
            len.saturating_add(start)
        } else {
            start
        }
        .max(0);
        let stop = if stop < 0 {
            len.saturating_add(stop)
        } else {
            stop
        }
        .min(len - 1);
        if start > stop || start >= len {
            return Ok(Frame::Integer(0));
        }
        let doomed: Vec<Bytes> = z
            .iter()
            .skip(start as usize)
            .take((stop - start + 1) as usize)
            .map(|(m, _)| m.clone())
            .collect();
        remove_all(s, key, now, &doomed)
    })
}

/// Removes `doomed` from the set at `key` (deleting an emptied set); their count.
fn remove_all(
    s: &mut crate::store::Shard,
    key: &[u8],
    now: crate::clock::Nanos,
    doomed: &[Bytes],
) -> Result<Frame, CommandError> {
    if doomed.is_empty() {
        return Ok(Frame::Integer(0));
    }
    let z = write(s, key, now);
    for m in doomed {
        z.remove(m);
    }
    drop_if_empty(s, key, now);
    Ok(Frame::Integer(doomed.len() as i64))
}

/// A member and its score as a pop returns them: flat in RESP2, the score a double in RESP3.
fn member_score(m: Bytes, score: f64) -> [Frame; 2] {
    [Frame::Bulk(m), Frame::Double(score)]
}

/// Pops up to `count` members from the low (`max` false) or high end.
fn pop_from(z: &mut ZSet, count: usize, max: bool) -> Vec<(Bytes, f64)> {
    let picked: Vec<(Bytes, f64)> = if max {
        z.iter()
            .rev()
            .take(count)
            .map(|(m, s)| (m.clone(), s))
            .collect()
    } else {
        z.iter().take(count).map(|(m, s)| (m.clone(), s)).collect()
    };
    for (m, _) in &picked {
        z.remove(m);
    }
    picked
}

/// `ZPOPMIN|ZPOPMAX key [count]`: without a count `[member, score]`; with one, in RESP2 a flat
/// `member, score, ...` array and in RESP3 an array of `[member, score]` pairs; an empty array
/// for a missing key or a count of 0.
fn zpop(ctx: &mut Ctx<'_>, req: &[Bytes], max: bool) -> Result<Frame, CommandError> {
    if req.len() > 3 {
        return Err(CommandError::Syntax);
    }
    let count = req
        .get(2)
        .map(|c| {
            args::parse_i64(c)
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| {
                    CommandError::out_of_range("value is out of range, must be positive")
                })
        })
        .transpose()?;
    let (now, resp3, key) = (ctx.now, ctx.resp3(), &req[1]);
    ctx.with_shard(key, |s| {
        if read(s, key, now)?.is_none() || count == Some(0) {
            return Ok(Frame::Array(Vec::new()));
        }
        let popped = pop_from(write(s, key, now), count.unwrap_or(1), max);
        drop_if_empty(s, key, now);
        let nested = resp3 && count.is_some();
        let mut out = Vec::with_capacity(popped.len() * 2);
        for (m, score) in popped {
            let pair = member_score(m, score);
            if nested {
                out.push(Frame::Array(pair.to_vec()));
            } else {
                out.extend(pair);
            }
        }
        Ok(Frame::Array(out))
    })
}

/// `ZMPOP numkeys key... MIN|MAX [COUNT count]`: `[key, [[member, score], ...]]` from the first
/// non-empty sorted set, or the null array.
fn zmpop(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let (keys, max, count) = parse_mpop(req, 1)?;
    let now = ctx.now;
    ctx.with_keys(keys, |g| {
        for k in keys {
            // Keys before the first non-empty set are type-checked, later ones are not.
            if read(g.shard(k), k, now)?.is_none() {
                continue;
            }
            let popped = pop_from(write(g.shard(k), k, now), count, max);
            drop_if_empty(g.shard(k), k, now);
            let pairs = popped
                .into_iter()
                .map(|(m, s)| Frame::Array(member_score(m, s).to_vec()))
                .collect();
            return Ok(Frame::Array(vec![
                Frame::Bulk(k.clone()),
                Frame::Array(pairs),
            ]));
        }
        Ok(Frame::NullArray)
    })
}

/// `numkeys key... MIN|MAX [COUNT count]` from `req[at]`: the keys, true for MAX, the count.
pub(super) fn parse_mpop(
    req: &[Bytes],
    at: usize,
) -> Result<(&[Bytes], bool, usize), CommandError> {
    let numkeys = match args::parse_i64(&req[at]) {
        Some(n) if n >= 1 => usize::try_from(n).unwrap_or(usize::MAX),
        _ => return Err(CommandError::other("numkeys should be greater than 0")),
    };
    let where_at = match numkeys.checked_add(at + 1) {
        Some(w) if w < req.len() => w,
        _ => return Err(CommandError::Syntax),
    };
    let max = if args::is(&req[where_at], "MIN") {
        false
    } else if args::is(&req[where_at], "MAX") {
        true
    } else {
        return Err(CommandError::Syntax);
    };
    let mut count = None;
    let mut a = args::Args::new(req, where_at + 1);
    while let Some(opt) = a.next() {
        if count.is_none() && args::is(opt, "COUNT") && a.remaining() > 0 {
            count = Some(
                args::parse_i64(a.value()?)
                    .filter(|&n| n >= 1)
                    .ok_or_else(|| CommandError::other("count should be greater than 0"))?,
            );
        } else {
            return Err(CommandError::Syntax);
        }
    }
    let count = usize::try_from(count.unwrap_or(1)).unwrap_or(usize::MAX);
    Ok((&req[at + 1..where_at], max, count))
}

/// `ZINCRBY key increment member`: the new score.
fn zincrby(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let by = parse_score(&req[2])?;
    let (now, key, member) = (ctx.now, &req[1], &req[3]);
    ctx.with_shard(key, |s| {
        let old = match read(s, key, now)? {
            Some(z) => z.score(member),
            None => {
                s.insert(key, Entry::new(Value::ZSet(Box::default())));
                None
            }
        };
        let score = old.unwrap_or(0.0) + by;
        if score.is_nan() {
            drop_if_empty(s, key, now);
            return Err(CommandError::other("resulting score is not a number (NaN)"));
        }
        write(s, key, now).insert(Bytes::copy_from_slice(member), score);
        Ok(Frame::Double(score))
    })
}

/// `ZRANK|ZREVRANK key member`: the 0-based rank, or nil.
fn zrank(ctx: &mut Ctx<'_>, req: &[Bytes], rev: bool) -> Result<Frame, CommandError> {
    let (now, key, member) = (ctx.now, &req[1], &req[2]);
    ctx.with_shard(key, |s| {
        let Some(z) = read(s, key, now)? else {
            return Ok(Frame::Null);
        };
        let Some(score) = z.score(member) else {
            return Ok(Frame::Null);
        };
        let below = z
            .iter()
            .take_while(|(m, s)| (*s, m.as_ref()) < (score, member.as_ref()))
            .count();
        let rank = if rev { z.len() - 1 - below } else { below };
        Ok(Frame::Integer(rank as i64))
    })
}

/// `ZMSCORE key member...`: each member's score, or nil.
fn zmscore(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let (now, key) = (ctx.now, &req[1]);
    ctx.with_shard(key, |s| {
        let z = read(s, key, now)?;
        Ok(Frame::Array(
            req[2..]
                .iter()
                .map(|m| {
                    z.and_then(|z| z.score(m))
                        .map_or(Frame::Null, Frame::Double)
                })
                .collect(),
        ))
    })
}

#[cfg(test)]
mod tests {
    use crate::cmd::testing::*;
    use crate::protocol::Frame;

    fn d(v: f64) -> Frame {
        Frame::Double(v)
    }

    #[test]
    fn pops_take_from_either_end_and_delete_an_emptied_set() {
        let mut h = Harness::new();
        h.run(&["ZADD", "z", "1", "a", "2", "b", "3", "c"]);
        assert_eq!(
            h.run(&["ZPOPMIN", "z"]),
            Frame::Array(vec![bulk("a"), d(1.0)])
        );
        assert_eq!(
            h.run(&["ZPOPMAX", "z", "5"]),
            Frame::Array(vec![bulk("c"), d(3.0), bulk("b"), d(2.0)])
        );
        assert_eq!(h.run(&["EXISTS", "z"]), int(0));
        assert_eq!(h.run(&["ZPOPMIN", "z"]), Frame::Array(vec![]));
        assert_eq!(
            h.run(&["ZPOPMIN", "z", "-1"]),
            err("ERR value is out of range, must be positive")
        );
        assert_eq!(h.run(&["ZPOPMIN", "z", "1", "2"]), err("ERR syntax error"));
        h.run(&["SET", "s", "x"]);
        assert_eq!(
            h.run(&["ZPOPMIN", "s"]),
            err("WRONGTYPE Operation against a key holding the wrong kind of value")
        );
    }

    #[test]
    fn zmpop_pops_from_the_first_non_empty_set() {
        let mut h = Harness::new();
        h.run(&["ZADD", "z2", "1", "a", "2", "b", "3", "c"]);
        assert_eq!(
            h.run(&["ZMPOP", "2", "z1", "z2", "MAX", "COUNT", "2"]),
            Frame::Array(vec![
                bulk("z2"),
                Frame::Array(vec![
                    Frame::Array(vec![bulk("c"), d(3.0)]),
                    Frame::Array(vec![bulk("b"), d(2.0)])
                ])
            ])
        );
        assert_eq!(h.run(&["ZMPOP", "1", "none", "MIN"]), Frame::NullArray);
        assert_eq!(
            h.run(&["ZMPOP", "0", "z2", "MIN"]),
            err("ERR numkeys should be greater than 0")
        );
        assert_eq!(
            h.run(&["ZMPOP", "1", "z2", "MIN", "COUNT", "0"]),
            err("ERR count should be greater than 0")
        );
        assert_eq!(h.run(&["ZMPOP", "1", "z2", "UP"]), err("ERR syntax error"));
        assert_eq!(h.run(&["ZMPOP", "3", "z2", "MIN"]), err("ERR syntax error"));
    }

    #[test]
    fn lexicographical_ranges_and_removal_by_rank() {
        let mut h = Harness::new();
        h.run(&[
            "ZADD", "z", "0", "a", "0", "b", "0", "c", "0", "d", "0", "e",
        ]);
        let arr = |items: &[&str]| Frame::Array(items.iter().map(|s| bulk(s)).collect());
        assert_eq!(
            h.run(&["ZRANGEBYLEX", "z", "-", "[c"]),
            arr(&["a", "b", "c"])
        );
        assert_eq!(
            h.run(&["ZRANGEBYLEX", "z", "(b", "+", "LIMIT", "1", "2"]),
            arr(&["d", "e"])
        );
        assert_eq!(
            h.run(&["ZREVRANGEBYLEX", "z", "[d", "(a"]),
            arr(&["d", "c", "b"])
        );
        assert_eq!(
            h.run(&["ZRANGE", "z", "[b", "[c", "BYLEX"]),
            arr(&["b", "c"])
        );
        assert_eq!(
            h.run(&["ZRANGE", "z", "+", "(d", "BYLEX", "REV"]),
            arr(&["e"])
        );
        assert_eq!(h.run(&["ZLEXCOUNT", "z", "-", "+"]), int(5));
        assert_eq!(h.run(&["ZLEXCOUNT", "z", "(a", "(c"]), int(1));
        assert_eq!(
            h.run(&["ZRANGEBYLEX", "z", "a", "+"]),
            err("ERR min or max not valid string range item")
        );
        assert_eq!(h.run(&["ZREMRANGEBYLEX", "z", "[a", "[b"]), int(2));
        assert_eq!(h.run(&["ZREMRANGEBYRANK", "z", "-2", "-1"]), int(2));
        assert_eq!(h.run(&["ZRANGE", "z", "0", "-1"]), arr(&["c"]));
        assert_eq!(h.run(&["ZREMRANGEBYRANK", "z", "5", "10"]), int(0));
        assert_eq!(h.run(&["ZREMRANGEBYRANK", "z", "0", "0"]), int(1));
        assert_eq!(h.run(&["EXISTS", "z"]), int(0));
    }

    #[test]
    fn zincrby_zrank_and_zmscore() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["ZINCRBY", "z", "2.5", "a"]), d(2.5));
        assert_eq!(h.run(&["ZINCRBY", "z", "-1", "a"]), d(1.5));
        h.run(&["ZADD", "z", "1", "b", "3", "c"]);
        assert_eq!(h.run(&["ZRANK", "z", "a"]), int(1));
        assert_eq!(h.run(&["ZREVRANK", "z", "a"]), int(1));
        assert_eq!(h.run(&["ZRANK", "z", "c"]), int(2));
        assert_eq!(h.run(&["ZREVRANK", "z", "c"]), int(0));
        assert_eq!(h.run(&["ZRANK", "z", "x"]), Frame::Null);
        assert_eq!(h.run(&["ZRANK", "none", "x"]), Frame::Null);
        assert_eq!(
            h.run(&["ZMSCORE", "z", "a", "x", "c"]),
            Frame::Array(vec![d(1.5), Frame::Null, d(3.0)])
        );
        assert_eq!(
            h.run(&["ZINCRBY", "z", "x", "a"]),
            err("ERR value is not a valid float")
        );
        h.run(&["ZADD", "z", "inf", "i"]);
        assert_eq!(
            h.run(&["ZINCRBY", "z", "-inf", "i"]),
            err("ERR resulting score is not a number (NaN)")
        );
        assert_eq!(
            h.run(&["ZINCRBY", "new", "-inf", "x"]),
            d(f64::NEG_INFINITY)
        );
        assert_eq!(
            h.run(&["ZREVRANGE", "z", "0", "1", "WITHSCORES"]),
            Frame::Array(vec![bulk("i"), d(f64::INFINITY), bulk("c"), d(3.0)])
        );
        assert_eq!(
            h.run(&["ZREVRANGEBYSCORE", "z", "3", "(1", "LIMIT", "0", "5"]),
            Frame::Array(vec![bulk("c"), bulk("a")])
        );
        assert_eq!(
            h.run(&["ZREVRANGE", "z", "0", "1", "REV"]),
            err("ERR syntax error")
        );
    }
}
