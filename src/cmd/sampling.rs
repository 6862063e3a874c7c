//! Commands that answer random choices: RANDOMKEY, SPOP, SRANDMEMBER, ZRANDMEMBER, and the
//! sampling they share.
//!
//! Choices are uniform: a per-thread wyrand generator seeded from the OS, reduced to a range by
//! rejection (no modulo bias). Distinct samples use Floyd's algorithm (O(k) draws for k of n);
//! with a negative count (SRANDMEMBER, ZRANDMEMBER) each element is drawn independently. A
//! missing key or a zero count draws nothing, so an empty value never reaches the generator.

use std::cell::Cell;
use std::collections::HashSet;

use bytes::Bytes;

use super::flags::*;
use super::{CommandSpec, Ctx, BASE};
use crate::clock::Nanos;
use crate::error::CommandError;
use crate::protocol::Frame;
use crate::store::entry::SetValue;
use crate::store::zset::ZSet;
use crate::store::{Shard, Value};

/// Random-choice commands.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "RANDOMKEY",
        arity: 1,
        flags: READONLY | KEYSPACE,
        summary: "Return a random key from the keyspace",
        handler: randomkey,
        ..BASE
    },
    CommandSpec {
        name: "SPOP",
        arity: -2,
        flags: WRITE | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "set",
        summary: "Remove and return one or multiple random members from a set",
        complexity: "Without the count argument O(1), otherwise O(N) where N is the value of the passed count.",
        args: "key:key [count:integer]",
        handler: spop,
        ..BASE
    },
    CommandSpec {
        name: "SRANDMEMBER",
        arity: -2,
        flags: READONLY,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "set",
        summary: "Get one or multiple random members from a set",
        complexity: "Without the count argument O(1), otherwise O(N) where N is the absolute value of the passed count.",
        args: "key:key [count:integer]",
        handler: srandmember,
        ..BASE
    },
    CommandSpec {
        name: "ZRANDMEMBER",
        arity: -2,
        flags: READONLY,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "sorted_set",
        summary: "Get one or multiple random elements from a sorted set",
        since: "6.2.0",
        complexity: "O(N) where N is the number of elements returned",
        args: "key:key [options=(count:integer [WITHSCORES])]",
        handler: zrandmember,
        ..BASE
    },
];

/// The most elements a negative count (draws with repetition) may ask for. Redis has no cap
/// and would build a reply of any size; limitkv refuses one this large instead of exhausting
/// memory.
pub const MAX_REPEATED_DRAWS: u64 = 1 << 24;

thread_local! {
    static STATE: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    let mut b = [0u8; 8];
    // Without OS randomness, fall back to the address of a stack slot and the time: the
    // choices only need to be unpredictable enough for sampling, not secret.
    if getrandom::fill(&mut b).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        return t ^ (&b as *const _ as u64);
    }
    u64::from_le_bytes(b)
}

/// The next 64 random bits (wyrand).
fn next_u64() -> u64 {
    STATE.with(|s| {
        let x = s.get().wrapping_add(0xa076_1d64_78bd_642f);
        s.set(x);
        let t = u128::from(x) * u128::from(x ^ 0xe703_7ed1_a0b4_28db);
        (t as u64) ^ ((t >> 64) as u64)
    })
}

/// A uniform integer in `0..n` (Lemire's method with rejection). `n` must be positive.
pub fn below(n: usize) -> usize {
    debug_assert!(n > 0, "below(0) has no value");
    let n = n.max(1) as u64;
    loop {
        let m = u128::from(next_u64()) * u128::from(n);
        let low = m as u64;
        // Reject the few draws that would make the low range over-represented.
        if low >= n.wrapping_neg() % n {
            return (m >> 64) as usize;
        }
    }
}

/// `k` distinct indexes of `0..n` (`k <= n`), uniformly chosen (Floyd's algorithm).
pub fn distinct(n: usize, k: usize) -> Vec<usize> {
    let k = k.min(n);
    let mut chosen = HashSet::with_capacity(k);
    let mut out = Vec::with_capacity(k);
    for j in n - k..n {
        let t = below(j + 1);
        let pick = if chosen.insert(t) { t } else { j };
        chosen.insert(pick);
        out.push(pick);
    }
    out
}

/// A count as SRANDMEMBER and ZRANDMEMBER read it: any integer but `i64::MIN`, negative meaning
/// "with repetition".
pub(super) fn signed_count(arg: &[u8]) -> Result<i64, CommandError> {
    match super::args::parse_i64(arg) {
        None => Err(CommandError::NotAnInteger),
        Some(i64::MIN) => Err(CommandError::other(
            "value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        )),
        Some(n) if n.unsigned_abs() > MAX_REPEATED_DRAWS && n < 0 => {
            Err(CommandError::other("value is out of range"))
        }
        Some(n) => Ok(n),
    }
}

/// The indexes to return for `count` of `len` elements: distinct ones, all of them in order
/// when `count >= len`, or independent draws for a negative count.
pub(super) fn picks(len: usize, count: i64) -> Vec<usize> {
    if count < 0 {
        let k = count.unsigned_abs() as usize; // at most MAX_REPEATED_DRAWS
        return (0..k).map(|_| below(len)).collect();
    }
    let k = usize::try_from(count).unwrap_or(usize::MAX);
    if k >= len {
        return (0..len).collect();
    }
    distinct(len, k)
}

fn randomkey(ctx: &mut Ctx<'_>, _req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    // Entries per shard, expired ones included; an expired pick is removed and the draw
    // repeated, as Redis does, so the choice is uniform over live keys.
    for _ in 0..100 {
        let sizes: Vec<usize> = (0..ctx.shard_count())
            .map(|i| ctx.with_shard_at(i, |s| s.len()))
            .collect();
        let total: usize = sizes.iter().sum();
        if total == 0 {
            return Ok(Frame::Null);
        }
        let mut r = below(total);
        let Some(idx) = sizes.iter().position(|&n| {
            if r < n {
                return true;
            }
            r -= n;
            false
        }) else {
            continue;
        };
        let key = ctx.with_shard_at(idx, |s| s.key_at(r, now));
        // None: removed meanwhile, or expired and now removed; draw again.
        if let Some(k) = key {
            return Ok(Frame::Bulk(k));
        }
    }
    Ok(Frame::Null)
}

/// The set at `key`: `Ok(None)` if absent, `WrongType` for other kinds.
fn read_set<'s>(
    s: &'s mut Shard,
    key: &[u8],
    now: Nanos,
) -> Result<Option<&'s SetValue>, CommandError> {
    match s.get_live(key, now).map(|e| &e.value) {
        None => Ok(None),
        Some(Value::Set(m)) => Ok(Some(m)),
        Some(_) => Err(CommandError::WrongType),
    }
}

fn spop(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    if req.len() > 3 {
        return Err(CommandError::Syntax);
    }
    let count = req.get(2).map(|c| super::args::pop_count(c)).transpose()?;
    let now = ctx.now;
    let key = &req[1];
    ctx.with_shard(key, |s| {
        let Some(set) = read_set(s, key, now)? else {
            return Ok(match count {
                None => Frame::Null,
                Some(_) => Frame::Set(vec![]),
            });
        };
        let len = set.len();
        let chosen: Vec<Bytes> = match count {
            Some(0) => return Ok(Frame::Set(vec![])),
            None => vec![set[below(len)].clone()],
            Some(n) => picks(len, i64::try_from(n).unwrap_or(i64::MAX))
                .into_iter()
                .map(|i| set[i].clone())
                .collect(),
        };
        if chosen.len() >= len {
            s.remove(key, now);
        } else if let Some(Value::Set(set)) = s.get_mut(key, now).map(|e| &mut e.value) {
            for m in &chosen {
                set.swap_remove(m);
            }
        }
        Ok(match count {
            None => Frame::Bulk(chosen.into_iter().next().unwrap_or_default()),
            Some(_) => Frame::Set(chosen.into_iter().map(Frame::Bulk).collect()),
        })
    })
}

fn srandmember(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    if req.len() > 3 {
        return Err(CommandError::Syntax);
    }
    let count = req.get(2).map(|c| signed_count(c)).transpose()?;
    let now = ctx.now;
    let key = &req[1];
    ctx.with_shard(key, |s| {
        let Some(set) = read_set(s, key, now)? else {
            return Ok(count.map_or(Frame::Null, |_| Frame::Array(vec![])));
        };
        Ok(match count {
            None => Frame::Bulk(set[below(set.len())].clone()),
            Some(n) => Frame::Array(
                picks(set.len(), n)
                    .into_iter()
                    .map(|i| Frame::Bulk(set[i].clone()))
                    .collect(),
            ),
        })
    })
}

/// The members of `z` at `indexes` (in ascending-rank terms), in the order of `indexes`, with
/// one pass over the set.
fn zset_at(z: &ZSet, indexes: &[usize]) -> Vec<(Bytes, f64)> {
    let mut order: Vec<usize> = (0..indexes.len()).collect();
    order.sort_unstable_by_key(|&i| indexes[i]);
    let mut out = vec![(Bytes::new(), 0.0); indexes.len()];
    let mut it = z.iter().enumerate();
    let mut current = it.next();
    for i in order {
        while let Some((rank, _)) = current {
            if rank >= indexes[i] {
                break;
            }
            current = it.next();
        }
        if let Some((_, (m, score))) = current {
            out[i] = (m.clone(), score);
        }
    }
    out
}

/// The arguments of `ZRANDMEMBER` / `HRANDFIELD`: `key [count [word]]` (`word` being
/// `WITHSCORES` or `WITHVALUES`): the count, if given, and whether the word was.
pub(super) fn random_args(req: &[Bytes], word: &str) -> Result<(Option<i64>, bool), CommandError> {
    let Some(c) = req.get(2) else {
        return Ok((None, false));
    };
    let n = signed_count(c)?;
    let with = match req.get(3) {
        _ if req.len() > 4 => return Err(CommandError::Syntax),
        Some(w) if !super::args::is(w, word) => return Err(CommandError::Syntax),
        Some(_) => true,
        None => false,
    };
    // Redis's guard against a doubled reply length overflowing.
    if with && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&n) {
        return Err(CommandError::other("value is out of range"));
    }
    Ok((Some(n), with))
}

fn zrandmember(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let (count, withscores) = random_args(req, "WITHSCORES")?;
    let now = ctx.now;
    let resp3 = ctx.resp3();
    let key = &req[1];
    ctx.with_shard(key, |s| {
        let z = match s.get_live(key, now).map(|e| &e.value) {
            None => return Ok(count.map_or(Frame::Null, |_| Frame::Array(vec![]))),
            Some(Value::ZSet(z)) => z,
            Some(_) => return Err(CommandError::WrongType),
        };
        let Some(n) = count else {
            let (m, _) = zset_at(z, &[below(z.len())]).remove(0);
            return Ok(Frame::Bulk(m));
        };
        let chosen = zset_at(z, &picks(z.len(), n));
        let picked = chosen.iter().map(|(m, s)| (m, *s)).collect();
        Ok(Frame::Array(super::zsets::render(
            picked, withscores, resp3,
        )))
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::cmd::testing::*;

    fn members(f: Frame) -> Vec<String> {
        let items = match f {
            Frame::Array(v) | Frame::Set(v) => v,
            other => panic!("not a collection: {other:?}"),
        };
        items
            .into_iter()
            .map(|m| match m {
                Frame::Bulk(b) => String::from_utf8(b.to_vec()).unwrap(),
                other => panic!("not a bulk: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn draws_are_uniform_enough() {
        let mut seen = [0u32; 10];
        for _ in 0..100_000 {
            seen[below(10)] += 1;
        }
        for (i, n) in seen.iter().enumerate() {
            assert!((9_000..11_000).contains(n), "bucket {i}: {n} of 100000");
        }
        for (n, k) in [(10, 10), (10, 3), (1, 1), (5, 0), (100, 99)] {
            let mut d = distinct(n, k);
            assert_eq!(d.len(), k);
            d.sort_unstable();
            d.dedup();
            assert_eq!(d.len(), k, "distinct({n}, {k}) repeated an index");
            assert!(d.iter().all(|&i| i < n));
        }
    }

    #[test]
    fn randomkey_picks_every_live_key() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["RANDOMKEY"]), Frame::Null);
        for k in ["a", "b", "c"] {
            h.run(&["SET", k, "1"]);
        }
        h.run(&["SET", "gone", "1", "PX", "1"]);
        h.clock.advance(std::time::Duration::from_millis(5));
        let mut seen = HashMap::new();
        for _ in 0..300 {
            let Frame::Bulk(k) = h.run(&["RANDOMKEY"]) else {
                panic!("a key")
            };
            *seen.entry(k).or_insert(0) += 1;
        }
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert!(seen.values().all(|&n| n > 50), "{seen:?}");
    }

    #[test]
    fn spop_removes_what_it_returns() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["SPOP", "s"]), Frame::Null);
        assert_eq!(h.run(&["SPOP", "s", "3"]), Frame::Set(vec![]));
        h.run(&["SADD", "s", "a", "b", "c", "d", "e"]);
        h.run(&["EXPIRE", "s", "10"]);
        let Frame::Bulk(one) = h.run(&["SPOP", "s"]) else {
            panic!("a member")
        };
        assert_eq!(
            h.run(&["SISMEMBER", "s", std::str::from_utf8(&one).unwrap()]),
            int(0)
        );
        assert_eq!(h.run(&["SPOP", "s", "0"]), Frame::Set(vec![]));
        let two = members(h.run(&["SPOP", "s", "2"]));
        assert_eq!(two.len(), 2);
        assert_ne!(two[0], two[1]);
        assert_eq!(h.run(&["SCARD", "s"]), int(2));
        assert_eq!(h.run(&["TTL", "s"]), int(10));
        assert_eq!(members(h.run(&["SPOP", "s", "10"])).len(), 2);
        assert_eq!(
            h.run(&["EXISTS", "s"]),
            int(0),
            "the emptied set is deleted"
        );
        let positive = err("ERR value is out of range, must be positive");
        assert_eq!(h.run(&["SPOP", "s", "-1"]), positive);
        assert_eq!(h.run(&["SPOP", "s", "x"]), positive);
        assert_eq!(h.run(&["SPOP", "s", "1", "2"]), err("ERR syntax error"));
        h.run(&["SET", "str", "v"]);
        assert_eq!(h.run(&["SPOP", "str"]), err(WRONGTYPE));
    }

    #[test]
    fn srandmember_counts_follow_redis() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["SRANDMEMBER", "s"]), Frame::Null);
        assert_eq!(h.run(&["SRANDMEMBER", "s", "-5"]), Frame::Array(vec![]));
        h.run(&["SADD", "s", "a", "b", "c"]);
        assert_eq!(h.run(&["SRANDMEMBER", "s", "0"]), Frame::Array(vec![]));
        let mut all = members(h.run(&["SRANDMEMBER", "s", "10"]));
        all.sort();
        assert_eq!(all, ["a", "b", "c"]);
        let two = members(h.run(&["SRANDMEMBER", "s", "2"]));
        assert_eq!(two.len(), 2);
        assert_ne!(two[0], two[1]);
        let many = members(h.run(&["SRANDMEMBER", "s", "-300"]));
        assert_eq!(many.len(), 300);
        for m in ["a", "b", "c"] {
            let n = many.iter().filter(|x| *x == m).count();
            assert!(n > 50, "{m} drawn {n} times of 300");
        }
        assert_eq!(h.run(&["SCARD", "s"]), int(3), "nothing removed");
        assert_eq!(
            h.run(&["SRANDMEMBER", "s", "x"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(
            h.run(&["SRANDMEMBER", "s", "-9223372036854775808"]),
            err("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807")
        );
        assert_eq!(
            h.run(&["SRANDMEMBER", "s", "1", "2"]),
            err("ERR syntax error")
        );
    }

    #[test]
    fn zrandmember_with_scores_in_both_protocols() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["ZRANDMEMBER", "z"]), Frame::Null);
        assert_eq!(h.run(&["ZRANDMEMBER", "z", "2"]), Frame::Array(vec![]));
        h.run(&["ZADD", "z", "1", "a", "2", "b", "3", "c"]);
        let one = h.run(&["ZRANDMEMBER", "z"]);
        assert!([bulk("a"), bulk("b"), bulk("c")].contains(&one), "{one:?}");
        assert_eq!(
            h.run(&["ZRANDMEMBER", "z", "5", "WITHSCORES"]),
            Frame::Array(vec![
                bulk("a"),
                Frame::Double(1.0),
                bulk("b"),
                Frame::Double(2.0),
                bulk("c"),
                Frame::Double(3.0)
            ])
        );
        h.run(&["HELLO", "3"]);
        let Frame::Array(pairs) = h.run(&["ZRANDMEMBER", "z", "-4", "WITHSCORES"]) else {
            panic!("an array")
        };
        assert_eq!(pairs.len(), 4);
        for p in pairs {
            let Frame::Array(p) = p else {
                panic!("RESP3 pairs")
            };
            let want = match &p[0] {
                Frame::Bulk(m) if &m[..] == b"a" => 1.0,
                Frame::Bulk(m) if &m[..] == b"b" => 2.0,
                _ => 3.0,
            };
            assert_eq!(p[1], Frame::Double(want));
        }
        assert_eq!(members(h.run(&["ZRANDMEMBER", "z", "2"])).len(), 2);
        assert_eq!(
            h.run(&["ZRANDMEMBER", "z", "1", "WITHSCORE"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["ZRANDMEMBER", "z", "1", "WITHSCORES", "x"]),
            err("ERR syntax error")
        );
        h.run(&["SET", "str", "v"]);
        assert_eq!(h.run(&["ZRANDMEMBER", "str"]), err(WRONGTYPE));
        assert_eq!(h.run(&["ZRANDMEMBER", "str", "1"]), err(WRONGTYPE));
    }
}
