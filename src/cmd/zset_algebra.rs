//! Sorted set algebra: ZUNION, ZINTER, ZDIFF (with `WITHSCORES`), ZUNIONSTORE, ZINTERSTORE,
//! ZDIFFSTORE and ZINTERCARD, parsed and computed as Redis 7.0's
//! `zunionInterDiffGenericCommand`.
//!
//! `numkeys` is read first (`at least 1 input key is needed for '<cmd>' command` when it is
//! below 1, a syntax error when fewer keys follow), then every source is looked up and
//! type-checked in order (a sorted set or a plain set, whose members have score 1; a missing key
//! is empty), then the options: `WEIGHTS w...` (one per source, multiplied into its scores;
//! `weight value is not a float`), `AGGREGATE SUM|MIN|MAX` (not for the diff), `WITHSCORES`
//! (read forms only) and `LIMIT n` (ZINTERCARD only, `LIMIT can't be negative`). A weighted
//! score that is NaN (`0 * inf`) counts as 0, and so does a sum that is NaN (`inf + -inf`).
//!
//! Union and intersection visit the sources from the smallest to the largest, as Redis does,
//! so float sums add up in Redis's order. The `STORE` forms run under one
//! [`Ctx::with_keys_writing`] over the destination and the sources: they replace the
//! destination whatever it held (and its TTL), delete it when the result is empty, and only the
//! destination is journaled and signalled to `WATCH`.

use bytes::Bytes;

use super::args::{self, is};
use super::flags::*;
use super::zsets::{parse_score, render};
use super::{CommandSpec, Ctx, BASE};
use crate::clock::Nanos;
use crate::error::CommandError;
use crate::protocol::Frame;
use crate::store::entry::SetValue;
use crate::store::zset::ZSet;
use crate::store::{Entry, MultiGuard, Value};

/// The sorted set algebra commands.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "ZUNION",
        arity: -3,
        flags: READONLY | MOVABLEKEYS,
        group: "sorted_set",
        summary: "Returns the union of multiple sorted sets.",
        since: "6.2.0",
        complexity: UNION_COMPLEXITY,
        args: "numkeys:integer key:key... [WEIGHTS weight:integer...] [AGGREGATE aggregate=(SUM|MIN|MAX)] [WITHSCORES]",
        handler: |ctx, req| read_op(ctx, req, Op::Union),
        ..BASE
    },
    CommandSpec {
        name: "ZINTER",
        arity: -3,
        flags: READONLY | MOVABLEKEYS,
        group: "sorted_set",
        summary: "Returns the intersect of multiple sorted sets.",
        since: "6.2.0",
        complexity: INTER_COMPLEXITY,
        args: "numkeys:integer key:key... [WEIGHTS weight:integer...] [AGGREGATE aggregate=(SUM|MIN|MAX)] [WITHSCORES]",
        handler: |ctx, req| read_op(ctx, req, Op::Inter),
        ..BASE
    },
    CommandSpec {
        name: "ZDIFF",
        arity: -3,
        flags: READONLY | MOVABLEKEYS,
        group: "sorted_set",
        summary: "Returns the difference between multiple sorted sets.",
        since: "6.2.0",
        complexity: DIFF_COMPLEXITY,
        args: "numkeys:integer key:key... [WITHSCORES]",
        handler: |ctx, req| read_op(ctx, req, Op::Diff),
        ..BASE
    },
    CommandSpec {
        name: "ZUNIONSTORE",
        arity: -4,
        flags: WRITE | DENYOOM | MOVABLEKEYS,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "sorted_set",
        summary: "Stores the union of multiple sorted sets in a key.",
        since: "2.0.0",
        complexity: UNION_COMPLEXITY,
        args: "destination:key numkeys:integer key:key... [WEIGHTS weight:integer...] [AGGREGATE aggregate=(SUM|MIN|MAX)]",
        handler: |ctx, req| store_op(ctx, req, Op::Union),
        ..BASE
    },
    CommandSpec {
        name: "ZINTERSTORE",
        arity: -4,
        flags: WRITE | DENYOOM | MOVABLEKEYS,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "sorted_set",
        summary: "Stores the intersect of multiple sorted sets in a key.",
        since: "2.0.0",
        complexity: INTER_COMPLEXITY,
        args: "destination:key numkeys:integer key:key... [WEIGHTS weight:integer...] [AGGREGATE aggregate=(SUM|MIN|MAX)]",
        handler: |ctx, req| store_op(ctx, req, Op::Inter),
        ..BASE
    },
    CommandSpec {
        name: "ZDIFFSTORE",
        arity: -4,
        flags: WRITE | DENYOOM | MOVABLEKEYS,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "sorted_set",
        summary: "Stores the difference of multiple sorted sets in a key.",
        since: "6.2.0",
        complexity: DIFF_COMPLEXITY,
        args: "destination:key numkeys:integer key:key...",
        handler: |ctx, req| store_op(ctx, req, Op::Diff),
        ..BASE
    },
    CommandSpec {
        name: "ZINTERCARD",
        arity: -3,
        flags: READONLY | MOVABLEKEYS,
        group: "sorted_set",
        summary: "Returns the number of members of the intersect of multiple sorted sets.",
        since: "7.0.0",
        complexity: "O(N*K) worst case with N being the smallest input sorted set, K being the number of input sorted sets.",
        args: "numkeys:integer key:key... [LIMIT limit:integer]",
        handler: zintercard,
        ..BASE
    },
];

const UNION_COMPLEXITY: &str = "O(N)+O(M*log(M)) with N being the sum of the sizes of the input sorted sets, and M being the number of elements in the resulting sorted set.";
const INTER_COMPLEXITY: &str = "O(N*K)+O(M*log(M)) worst case with N being the smallest input sorted set, K being the number of input sorted sets and M being the number of elements in the resulting sorted set.";
const DIFF_COMPLEXITY: &str = "O(L + (N-K)log(N)) worst case where L is the total number of elements in all the sets, N is the size of the first set, and K is the size of the result set.";

/// Which combination of the sources a command computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Union,
    Inter,
    Diff,
}

/// How the scores of a member found in several sources combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Aggregate {
    Sum,
    Min,
    Max,
}

impl Aggregate {
    /// Redis's `zunionInterAggregate`: a NaN sum (`inf + -inf`) is 0.
    pub(super) fn apply(self, target: &mut f64, value: f64) {
        match self {
            Aggregate::Sum => {
                *target += value;
                if target.is_nan() {
                    *target = 0.0;
                }
            }
            Aggregate::Min => {
                if value < *target {
                    *target = value;
                }
            }
            Aggregate::Max => {
                if value > *target {
                    *target = value;
                }
            }
        }
    }
}

/// What the arguments after the keys asked for.
#[derive(Debug, Clone, PartialEq)]
struct Options {
    weights: Vec<f64>,
    aggregate: Aggregate,
    withscores: bool,
    /// ZINTERCARD's `LIMIT`; 0 is no limit.
    limit: u64,
}

/// The form of the command being parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// ZUNION, ZINTER, ZDIFF.
    Read,
    /// ZUNIONSTORE, ZINTERSTORE, ZDIFFSTORE.
    Store,
    /// ZINTERCARD.
    Card,
}

/// The keys of `req` whose count is at `at`: `numkeys` checked as Redis checks it.
fn source_keys(req: &[Bytes], at: usize) -> Result<&[Bytes], CommandError> {
    let n = args::int(&req[at])?;
    if n < 1 {
        return Err(CommandError::other(format!(
            "at least 1 input key is needed for '{}' command",
            args::text(&req[0]).to_ascii_lowercase()
        )));
    }
    let rest = req.len() - at - 1;
    match usize::try_from(n) {
        Ok(n) if n <= rest => Ok(&req[at + 1..at + 1 + n]),
        _ => Err(CommandError::Syntax),
    }
}

/// The options after the `n` keys ending at `req[start..]`.
fn parse_options(
    req: &[Bytes],
    start: usize,
    n: usize,
    op: Op,
    form: Form,
) -> Result<Options, CommandError> {
    let mut o = Options {
        weights: vec![1.0; n],
        aggregate: Aggregate::Sum,
        withscores: false,
        limit: 0,
    };
    let algebra = op != Op::Diff && form != Form::Card;
    let mut j = start;
    while j < req.len() {
        let remaining = req.len() - j;
        let word = &req[j];
        if algebra && remaining > n && is(word, "WEIGHTS") {
            for (w, arg) in o.weights.iter_mut().zip(&req[j + 1..j + 1 + n]) {
                *w = parse_score(arg)
                    .map_err(|_| CommandError::other("weight value is not a float"))?;
            }
            j += 1 + n;
        } else if algebra && remaining >= 2 && is(word, "AGGREGATE") {
            let which = &req[j + 1];
            o.aggregate = if is(which, "SUM") {
                Aggregate::Sum
            } else if is(which, "MIN") {
                Aggregate::Min
            } else if is(which, "MAX") {
                Aggregate::Max
            } else {
                return Err(CommandError::Syntax);
            };
            j += 2;
        } else if form == Form::Read && is(word, "WITHSCORES") {
            o.withscores = true;
            j += 1;
        } else if form == Form::Card && remaining >= 2 && is(word, "LIMIT") {
            let limit = args::parse_i64(&req[j + 1])
                .and_then(|v| u64::try_from(v).ok())
                .ok_or_else(|| CommandError::other("LIMIT can't be negative"))?;
            o.limit = limit;
            j += 2;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    Ok(o)
}

/// One input: a sorted set, a plain set (every member scoring 1) or nothing.
#[derive(Clone, Copy)]
enum Source<'g> {
    Missing,
    Sorted(&'g ZSet),
    Plain(&'g SetValue),
}

impl<'g> Source<'g> {
    fn len(self) -> usize {
        match self {
            Source::Missing => 0,
            Source::Sorted(z) => z.len(),
            Source::Plain(s) => s.len(),
        }
    }

    /// The member's score, if present.
    fn find(self, member: &[u8]) -> Option<f64> {
        match self {
            Source::Missing => None,
            Source::Sorted(z) => z.score(member),
            Source::Plain(s) => s.contains(member).then_some(1.0),
        }
    }

    /// Every member with its score, in the source's own order.
    fn members(self) -> Box<dyn Iterator<Item = (&'g Bytes, f64)> + 'g> {
        match self {
            Source::Missing => Box::new(std::iter::empty()),
            Source::Sorted(z) => Box::new(z.iter()),
            Source::Plain(s) => Box::new(s.iter().map(|m| (m, 1.0))),
        }
    }

    /// True when both are the same stored value (Redis compares object pointers).
    fn same(self, other: Source<'_>) -> bool {
        match (self, other) {
            (Source::Sorted(a), Source::Sorted(b)) => std::ptr::eq(a, b),
            (Source::Plain(a), Source::Plain(b)) => std::ptr::eq(a, b),
            _ => false,
        }
    }
}

/// Each key's value, type-checked in order: only sorted sets and sets are accepted.
fn sources<'g>(
    g: &'g MultiGuard<'_>,
    keys: &[Bytes],
    now: Nanos,
) -> Result<Vec<Source<'g>>, CommandError> {
    keys.iter()
        .map(|k| match g.shard_ref(k).get(k, now).map(|e| &e.value) {
            None => Ok(Source::Missing),
            Some(Value::ZSet(z)) => Ok(Source::Sorted(z)),
            Some(Value::Set(s)) => Ok(Source::Plain(s)),
            Some(_) => Err(CommandError::WrongType),
        })
        .collect()
}

/// A weighted score; `0 * inf` is NaN, which Redis counts as 0.
fn weighted(weight: f64, score: f64) -> f64 {
    let v = weight * score;
    if v.is_nan() {
        0.0
    } else {
        v
    }
}

/// The sources with their weights, smallest first (for union and intersection).
fn by_size<'g>(srcs: &[Source<'g>], o: &Options) -> Vec<(Source<'g>, f64)> {
    let mut v: Vec<(Source<'g>, f64)> = srcs
        .iter()
        .copied()
        .zip(o.weights.iter().copied())
        .collect();
    v.sort_by_key(|(s, _)| s.len());
    v
}

/// The intersection's members with their aggregated scores, in the smallest source's order;
/// stops after `limit` members when it is not 0.
fn inter<'g>(srcs: &[Source<'g>], o: &Options, limit: u64) -> Vec<(&'g Bytes, f64)> {
    let srcs = by_size(srcs, o);
    let mut out = Vec::new();
    let Some(&(first, w0)) = srcs.first() else {
        return out;
    };
    'members: for (member, score) in first.members() {
        let mut acc = weighted(w0, score);
        for &(src, w) in &srcs[1..] {
            let value = if src.same(first) {
                Some(score)
            } else {
                src.find(member)
            };
            match value {
                // Unlike the first source's, these products are not NaN-checked before
                // aggregating (Redis's order): a NaN sum becomes 0, a NaN MIN/MAX is ignored.
                Some(v) => o.aggregate.apply(&mut acc, w * v),
                None => continue 'members,
            }
        }
        out.push((member, acc));
        if limit != 0 && out.len() as u64 >= limit {
            break;
        }
    }
    out
}

/// The union's members with their aggregated scores.
fn union<'g>(srcs: &[Source<'g>], o: &Options) -> indexmap::IndexMap<&'g Bytes, f64> {
    let srcs = by_size(srcs, o);
    let total = srcs.last().map_or(0, |(s, _)| s.len());
    let mut acc: indexmap::IndexMap<&'g Bytes, f64> = indexmap::IndexMap::with_capacity(total);
    for (src, w) in srcs {
        for (member, score) in src.members() {
            let v = weighted(w, score);
            match acc.entry(member) {
                indexmap::map::Entry::Occupied(mut e) => o.aggregate.apply(e.get_mut(), v),
                indexmap::map::Entry::Vacant(e) => {
                    e.insert(v);
                }
            }
        }
    }
    acc
}

/// The first source's members (with their own scores) found in none of the others.
fn diff<'g>(srcs: &[Source<'g>]) -> Vec<(&'g Bytes, f64)> {
    let Some((&first, rest)) = srcs.split_first() else {
        return Vec::new();
    };
    if rest.iter().any(|s| s.same(first)) {
        return Vec::new();
    }
    first
        .members()
        .filter(|(m, _)| rest.iter().all(|s| s.find(m).is_none()))
        .collect()
}

/// The result of `op` as a new sorted set (members copied out of the sources).
fn combine(op: Op, srcs: &[Source<'_>], o: &Options) -> ZSet {
    let mut z = ZSet::new();
    match op {
        Op::Union => {
            for (m, s) in union(srcs, o) {
                z.insert(m.clone(), s);
            }
        }
        Op::Inter => {
            for (m, s) in inter(srcs, o, 0) {
                z.insert(m.clone(), s);
            }
        }
        Op::Diff => {
            for (m, s) in diff(srcs) {
                z.insert(m.clone(), s);
            }
        }
    }
    z
}

/// `ZUNION|ZINTER|ZDIFF numkeys key... [WEIGHTS w...] [AGGREGATE SUM|MIN|MAX] [WITHSCORES]`:
/// the result's members in ascending score order (with scores: flat in RESP2, `[member,
/// score]` pairs in RESP3).
fn read_op(ctx: &mut Ctx<'_>, req: &[Bytes], op: Op) -> Result<Frame, CommandError> {
    let keys = source_keys(req, 1)?;
    let options = parse_options(req, 2 + keys.len(), keys.len(), op, Form::Read);
    let (now, resp3) = (ctx.now, ctx.resp3());
    ctx.with_keys(keys, |g| {
        let srcs = sources(g, keys, now)?;
        let o = options?;
        let z = combine(op, &srcs, &o);
        Ok(Frame::Array(render(
            z.iter().collect(),
            o.withscores,
            resp3,
        )))
    })
}

/// `ZUNIONSTORE|ZINTERSTORE|ZDIFFSTORE destination numkeys key... [WEIGHTS w...]
/// [AGGREGATE SUM|MIN|MAX]`: stores the result; its size.
fn store_op(ctx: &mut Ctx<'_>, req: &[Bytes], op: Op) -> Result<Frame, CommandError> {
    let keys = source_keys(req, 2)?;
    let options = parse_options(req, 3 + keys.len(), keys.len(), op, Form::Store);
    let now = ctx.now;
    let dst = &req[1];
    let mut locked = Vec::with_capacity(1 + keys.len());
    locked.push(dst.clone());
    locked.extend(keys.iter().cloned());
    ctx.with_keys_writing(&locked, std::slice::from_ref(dst), |g| {
        let z = {
            let srcs = sources(g, keys, now)?;
            combine(op, &srcs, &options?)
        };
        let shard = g.shard(dst);
        if z.is_empty() {
            // Whatever the destination held (another kind too) is deleted, as in Redis.
            shard.remove(dst, now);
            return Ok(Frame::Integer(0));
        }
        let n = z.len();
        shard.insert(dst, Entry::new(Value::ZSet(Box::new(z))));
        Ok(Frame::Integer(n as i64))
    })
}

/// `ZINTERCARD numkeys key... [LIMIT limit]`: the intersection's size, counting stopped at
/// `limit` when it is not 0.
fn zintercard(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let keys = source_keys(req, 1)?;
    let options = parse_options(req, 2 + keys.len(), keys.len(), Op::Inter, Form::Card);
    let now = ctx.now;
    ctx.with_keys(keys, |g| {
        let srcs = sources(g, keys, now)?;
        let o = options?;
        Ok(Frame::Integer(inter(&srcs, &o, o.limit).len() as i64))
    })
}

#[cfg(test)]
#[path = "zset_algebra_tests.rs"]
mod tests;
