//! Sorted set range reads: ZRANGE (by rank or BYSCORE, REV, LIMIT, WITHSCORES) and
//! ZRANGEBYSCORE, parsed and answered as Redis does. The other sorted set commands, and the
//! score parsing and reply shape these share, are in [`super::zsets`].

use bytes::Bytes;

use super::args::{self, is};
use super::flags::*;
use super::zsets::{parse_range, read, render};
use super::{CommandSpec, Ctx, BASE};
use crate::error::CommandError;
use crate::protocol::Frame;
use crate::store::zset::{ScoreBound, ZSet};
use crate::store::{Entry, Value};

/// Sorted set range commands.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "ZRANGE",
        arity: -4,
        flags: READONLY,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "sorted_set",
        summary: "Returns members in a sorted set within a range of indexes.",
        since: "1.2.0",
        complexity: "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements returned.",
        args: "key:key start:string stop:string sortby=[BYSCORE|BYLEX] [REV] [LIMIT offset:integer count:integer] [WITHSCORES]",
        handler: |ctx, req| zrange(ctx, req, false),
        ..BASE
    },
    CommandSpec {
        name: "ZRANGEBYSCORE",
        arity: -4,
        flags: READONLY,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "sorted_set",
        summary: "Returns members in a sorted set within a range of scores.",
        since: "1.0.5",
        complexity: "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements being returned.",
        args: "key:key min:double max:double [WITHSCORES] [LIMIT offset:integer count:integer]",
        handler: |ctx, req| zrange(ctx, req, true),
        ..BASE
    },
    CommandSpec {
        name: "ZRANGESTORE",
        arity: -5,
        flags: WRITE | DENYOOM,
        first_key: 1,
        last_key: 2,
        key_step: 1,
        group: "sorted_set",
        summary: "Stores a range of members from sorted set in a key.",
        since: "6.2.0",
        complexity: "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements stored into the destination key.",
        args: "dst:key src:key min:string max:string sortby=[BYSCORE|BYLEX] [REV] [LIMIT offset:integer count:integer]",
        handler: zrangestore,
        ..BASE
    },
];

/// How ZRANGE selects members.
enum Selector {
    /// Members within a lexicographical range (meant for sets whose scores are all equal),
    /// then `offset` skipped and at most `count` returned.
    Lex {
        min: super::zset_pops::LexBound,
        max: super::zset_pops::LexBound,
        offset: i64,
        count: i64,
    },
    /// Ranks `start..=stop`, negative counting from the end.
    Rank(i64, i64),
    /// Scores within `[min, max]`, then `offset` skipped and at most `count` returned
    /// (a negative count means all).
    Score {
        min: ScoreBound,
        max: ScoreBound,
        offset: i64,
        count: i64,
    },
}

/// ZREVRANGE and ZREVRANGEBYSCORE (`by_score_cmd`): [`zrange`] in reverse, with no `REV`,
/// `BYSCORE` or `BYLEX` option.
pub(super) fn zrange_rev(
    ctx: &mut Ctx<'_>,
    req: &[Bytes],
    by_score_cmd: bool,
) -> Result<Frame, CommandError> {
    zrange_with(ctx, req, by_score_cmd, false, true)
}

/// ZRANGEBYLEX (`rev` false) and ZREVRANGEBYLEX.
pub(super) fn zrange_by_lex(
    ctx: &mut Ctx<'_>,
    req: &[Bytes],
    rev: bool,
) -> Result<Frame, CommandError> {
    zrange_with(ctx, req, false, true, rev)
}

/// ZRANGE and ZRANGEBYSCORE (`by_score_cmd`), parsed as Redis's `zrangeGenericCommand` parses
/// them: options in any order, then conflicts, then the range, then the key.
fn zrange(ctx: &mut Ctx<'_>, req: &[Bytes], by_score_cmd: bool) -> Result<Frame, CommandError> {
    zrange_with(ctx, req, by_score_cmd, false, false)
}

/// `ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset count]`: ZRANGE's
/// selection (no `WITHSCORES`) stored in `dst` with its scores, replacing whatever `dst` held
/// (and its TTL); an empty selection deletes `dst`. Answers the number of members stored.
fn zrangestore(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let q = parse(&req[1..], false, false, false, true)?;
    let now = ctx.now;
    let (dst, src) = (&req[1], &req[2]);
    let keys = [dst.clone(), src.clone()];
    ctx.with_keys_writing(&keys, std::slice::from_ref(dst), |g| {
        let z = {
            let shard = g.shard_ref(src);
            let source = match shard.get(src, now).map(|e| &e.value) {
                None => None,
                Some(Value::ZSet(z)) => Some(&**z),
                Some(_) => return Err(CommandError::WrongType),
            };
            let mut out = ZSet::new();
            if let Some(z) = source {
                for (m, score) in select(z, &q.selector, q.rev) {
                    out.insert(m.clone(), score);
                }
            }
            out
        };
        let shard = g.shard(dst);
        if z.is_empty() {
            shard.remove(dst, now);
            return Ok(Frame::Integer(0));
        }
        let n = z.len();
        shard.insert(dst, Entry::new(Value::ZSet(Box::new(z))));
        Ok(Frame::Integer(n as i64))
    })
}

/// A parsed range request.
struct Query {
    selector: Selector,
    rev: bool,
    withscores: bool,
}

fn zrange_with(
    ctx: &mut Ctx<'_>,
    req: &[Bytes],
    by_score_cmd: bool,
    by_lex_cmd: bool,
    rev_cmd: bool,
) -> Result<Frame, CommandError> {
    let q = parse(req, by_score_cmd, by_lex_cmd, rev_cmd, false)?;
    let now = ctx.now;
    let key = &req[1];
    let resp3 = ctx.resp3();
    ctx.with_shard(key, |s| {
        let Some(z) = read(s, key, now)? else {
            return Ok(Frame::Array(Vec::new()));
        };
        Ok(Frame::Array(render(
            select(z, &q.selector, q.rev),
            q.withscores,
            resp3,
        )))
    })
}

/// Parses `req` (`[name] key min max options...`, the key at index 1) as Redis's
/// `zrangeGenericCommand`: options in any order, then conflicts, then the range. `store` is
/// ZRANGESTORE, which has no `WITHSCORES`.
fn parse(
    req: &[Bytes],
    by_score_cmd: bool,
    by_lex_cmd: bool,
    rev_cmd: bool,
    store: bool,
) -> Result<Query, CommandError> {
    let fixed = by_score_cmd || by_lex_cmd || rev_cmd;
    let mut by_lex = by_lex_cmd;
    let mut withscores = false;
    let mut limit: Option<(i64, i64)> = None;
    let mut rev = rev_cmd;
    let mut by_score = by_score_cmd;
    let mut a = args::Args::new(req, 4);
    while let Some(opt) = a.next() {
        if !store && is(opt, "WITHSCORES") {
            withscores = true;
        } else if is(opt, "LIMIT") && a.remaining() >= 2 {
            let offset = a.int()?;
            let count = a.int()?;
            limit = Some((offset, count));
        } else if !fixed && !rev && is(opt, "REV") {
            rev = true;
        } else if !fixed && !by_score && !by_lex && is(opt, "BYSCORE") {
            by_score = true;
        } else if !fixed && !by_score && !by_lex && is(opt, "BYLEX") {
            by_lex = true;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    // Redis tests the count against its "no LIMIT" default of -1, so `LIMIT 0 -1` passes.
    if !by_score && !by_lex && limit.is_some_and(|(_, count)| count != -1) {
        return Err(CommandError::other(
            "syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    if withscores && by_lex {
        return Err(CommandError::other(
            "syntax error, WITHSCORES not supported in combination with BYLEX",
        ));
    }
    let selector = if by_lex {
        let (lo, hi) = if rev {
            (&req[3], &req[2])
        } else {
            (&req[2], &req[3])
        };
        let (min, max) = super::zset_pops::parse_lex_range(lo, hi)?;
        let (offset, count) = limit.unwrap_or((0, -1));
        Selector::Lex {
            min,
            max,
            offset,
            count,
        }
    } else if by_score {
        // With REV the range is written max first.
        let (lo, hi) = if rev {
            (&req[3], &req[2])
        } else {
            (&req[2], &req[3])
        };
        let (min, max) = parse_range(lo, hi)?;
        let (offset, count) = limit.unwrap_or((0, -1));
        Selector::Score {
            min,
            max,
            offset,
            count,
        }
    } else {
        Selector::Rank(args::int(&req[2])?, args::int(&req[3])?)
    };
    Ok(Query {
        selector,
        rev,
        withscores,
    })
}

/// The members `selector` picks from `z`, in ascending order or, with `rev`, descending.
fn select<'z>(z: &'z ZSet, selector: &Selector, rev: bool) -> Vec<(&'z Bytes, f64)> {
    match *selector {
        Selector::Rank(start, stop) => {
            let len = z.len() as i64;
            let start = if start < 0 { len + start } else { start }.max(0);
            let stop = if stop < 0 { len + stop } else { stop };
            if start > stop || start >= len {
                Vec::new()
            } else {
                let n = (stop.min(len - 1) - start + 1) as usize;
                let start = start as usize;
                if rev {
                    z.iter().rev().skip(start).take(n).collect()
                } else {
                    z.iter().skip(start).take(n).collect()
                }
            }
        }
        Selector::Lex {
            ref min,
            ref max,
            offset,
            count,
        } => {
            if offset < 0 {
                Vec::new()
            } else {
                let take = usize::try_from(count).unwrap_or(usize::MAX);
                let skip = usize::try_from(offset).unwrap_or(usize::MAX);
                let inside = |(m, _): &(&Bytes, f64)| super::zset_pops::in_lex(m, min, max);
                if rev {
                    z.iter()
                        .rev()
                        .filter(inside)
                        .skip(skip)
                        .take(take)
                        .collect()
                } else {
                    z.iter().filter(inside).skip(skip).take(take).collect()
                }
            }
        }
        Selector::Score {
            min,
            max,
            offset,
            count,
        } => {
            // Redis skips `offset` with a loop that a negative offset never ends: nothing.
            if offset < 0 || offset as u64 >= z.len() as u64 {
                Vec::new()
            } else {
                let take = usize::try_from(count).unwrap_or(usize::MAX);
                let skip = offset as usize;
                if rev {
                    z.range(min, max).rev().skip(skip).take(take).collect()
                } else {
                    z.range(min, max).skip(skip).take(take).collect()
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::testing::*;
    use crate::protocol::Frame;

    fn arr(items: &[&str]) -> Frame {
        Frame::Array(items.iter().map(|s| bulk(s)).collect())
    }

    fn double(v: f64) -> Frame {
        Frame::Double(v)
    }

    #[test]
    fn zrange_by_rank_score_rev_and_limit() {
        let mut h = Harness::new();
        h.run(&["ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d"]);
        assert_eq!(
            h.run(&["ZRANGE", "z", "0", "-1"]),
            arr(&["a", "b", "c", "d"])
        );
        assert_eq!(h.run(&["ZRANGE", "z", "1", "2"]), arr(&["b", "c"]));
        assert_eq!(h.run(&["ZRANGE", "z", "-2", "100"]), arr(&["c", "d"]));
        assert_eq!(h.run(&["ZRANGE", "z", "-100", "0"]), arr(&["a"]));
        assert_eq!(h.run(&["ZRANGE", "z", "3", "1"]), arr(&[]));
        assert_eq!(h.run(&["ZRANGE", "z", "4", "10"]), arr(&[]));
        assert_eq!(h.run(&["ZRANGE", "z", "0", "1", "REV"]), arr(&["d", "c"]));
        assert_eq!(
            h.run(&["ZRANGE", "z", "0", "0", "WITHSCORES"]),
            Frame::Array(vec![bulk("a"), double(1.0)])
        );
        assert_eq!(
            h.run(&["ZRANGE", "z", "(1", "3", "BYSCORE"]),
            arr(&["b", "c"])
        );
        assert_eq!(
            h.run(&["ZRANGE", "z", "+inf", "(1", "BYSCORE", "REV", "LIMIT", "1", "5"]),
            arr(&["c", "b"])
        );
        assert_eq!(
            h.run(&["ZRANGE", "z", "1", "3", "BYSCORE", "REV"]),
            arr(&[]),
            "REV reads max first"
        );
        assert_eq!(
            h.run(&["ZRANGE", "z", "0", "-1", "LIMIT", "0", "-1"]),
            arr(&["a", "b", "c", "d"])
        );
        assert_eq!(
            h.run(&["ZRANGE", "z", "0", "-1", "LIMIT", "0", "2"]),
            err("ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX")
        );
        assert_eq!(
            h.run(&["ZRANGE", "z", "a", "1"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(
            h.run(&["ZRANGE", "z", "x", "1", "BYSCORE"]),
            err("ERR min or max is not a float")
        );
        assert_eq!(
            h.run(&["ZRANGE", "z", "0", "1", "REV", "REV"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["ZRANGE", "z", "0", "1", "BOGUS"]),
            err("ERR syntax error")
        );
        assert_eq!(h.run(&["ZRANGE", "none", "0", "-1"]), arr(&[]));
    }

    #[test]
    fn zrangestore_stores_the_selection_with_its_scores() {
        let mut h = Harness::new();
        h.run(&["ZADD", "z1", "1", "a", "2", "b", "3", "c", "4", "d"]);
        let all = |h: &mut Harness, k: &str| h.run(&["ZRANGE", k, "0", "-1", "WITHSCORES"]);
        let pairs = |items: &[(&str, f64)]| {
            Frame::Array(
                items
                    .iter()
                    .flat_map(|(m, s)| [bulk(m), double(*s)])
                    .collect(),
            )
        };
        assert_eq!(h.run(&["ZRANGESTORE", "z2", "z1", "0", "-1"]), int(4));
        assert_eq!(
            all(&mut h, "z2"),
            pairs(&[("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 4.0)])
        );
        assert_eq!(h.run(&["ZRANGESTORE", "z2", "z1", "1", "2"]), int(2));
        assert_eq!(all(&mut h, "z2"), pairs(&[("b", 2.0), ("c", 3.0)]));
        assert_eq!(
            h.run(&["ZRANGESTORE", "z2", "z1", "[b", "[c", "BYLEX"]),
            int(2)
        );
        assert_eq!(all(&mut h, "z2"), pairs(&[("b", 2.0), ("c", 3.0)]));
        assert_eq!(
            h.run(&[
                "ZRANGESTORE",
                "z2",
                "z1",
                "5",
                "0",
                "BYSCORE",
                "REV",
                "LIMIT",
                "0",
                "2"
            ]),
            int(2)
        );
        assert_eq!(all(&mut h, "z2"), pairs(&[("c", 3.0), ("d", 4.0)]));
        h.run(&["EXPIRE", "z2", "100"]);
        assert_eq!(h.run(&["ZRANGESTORE", "z2", "z1", "0", "0"]), int(1));
        assert_eq!(
            h.run(&["TTL", "z2"]),
            int(-1),
            "the destination is replaced"
        );
        for empty in [
            &["ZRANGESTORE", "z2", "z1", "5", "6"][..],
            &["ZRANGESTORE", "z2", "z1", "[f", "[g", "BYLEX"],
            &["ZRANGESTORE", "z2", "z1", "5", "6", "BYSCORE"],
            &["ZRANGESTORE", "z2", "missing", "0", "-1"],
        ] {
            h.run(&["SET", "z2", "x"]);
            assert_eq!(h.run(empty), int(0), "{empty:?}");
            assert_eq!(h.run(&["EXISTS", "z2"]), int(0), "{empty:?} deletes dst");
        }
        h.run(&["SET", "str", "x"]);
        h.run(&["ZADD", "z2", "1", "a"]);
        assert_eq!(
            h.run(&["ZRANGESTORE", "z2", "str", "0", "-1"]),
            err("WRONGTYPE Operation against a key holding the wrong kind of value")
        );
        assert_eq!(h.run(&["ZRANGE", "z2", "0", "-1"]), arr(&["a"]));
        assert_eq!(
            h.run(&["ZRANGESTORE", "z2", "z1", "0", "-1", "WITHSCORES"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["ZRANGESTORE", "z2", "z1", "0", "-1", "LIMIT", "1", "2"]),
            err("ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX")
        );
        assert_eq!(
            h.run(&["ZRANGE", "z1", "[a", "[b", "BYLEX", "WITHSCORES"]),
            err("ERR syntax error, WITHSCORES not supported in combination with BYLEX")
        );
        assert_eq!(
            h.run(&["COMMAND", "GETKEYS", "ZRANGESTORE", "d", "s", "0", "1"]),
            arr(&["d", "s"])
        );
    }
}
