//! More hash commands: HSETNX, HEXISTS, HSTRLEN, HKEYS, HVALS, HINCRBYFLOAT and HRANDFIELD,
//! with Redis 7.0's replies and error texts (the rest of the family is in `hashes.rs`).

use bytes::Bytes;

use super::flags::*;
use super::hashes::{owned, read, write};
use super::longdouble::LongDouble;
use super::sampling::{below, picks, random_args};
use super::{CommandSpec, Ctx, BASE};
use crate::error::CommandError;
use crate::protocol::Frame;

const fn spec(
    name: &'static str,
    arity: i32,
    flags: u32,
    summary: &'static str,
    since: &'static str,
    args: &'static str,
    handler: super::Handler,
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "hash",
        summary,
        since,
        args,
        handler,
        ..BASE
    }
}

/// The commands of this file.
pub const COMMANDS: &[CommandSpec] = &[
    spec(
        "HSETNX",
        4,
        WRITE | DENYOOM | FAST,
        "Sets the value of a field in a hash only when the field doesn't exist.",
        "2.0.0",
        "key:key field:string value:string",
        hsetnx,
    ),
    spec(
        "HEXISTS",
        3,
        READONLY | FAST,
        "Determines whether a field exists in a hash.",
        "2.0.0",
        "key:key field:string",
        hexists,
    ),
    spec(
        "HSTRLEN",
        3,
        READONLY | FAST,
        "Returns the length of the value of a field.",
        "3.2.0",
        "key:key field:string",
        hstrlen,
    ),
    spec(
        "HKEYS",
        2,
        READONLY,
        "Returns all fields in a hash.",
        "2.0.0",
        "key:key",
        hkeys,
    ),
    spec(
        "HVALS",
        2,
        READONLY,
        "Returns all values in a hash.",
        "2.0.0",
        "key:key",
        hvals,
    ),
    spec(
        "HINCRBYFLOAT",
        4,
        WRITE | DENYOOM | FAST,
        "Increments the floating point value of a field by a number. Uses 0 as initial value if the field doesn't exist.",
        "2.6.0",
        "key:key field:string increment:double",
        hincrbyfloat,
    ),
    spec(
        "HRANDFIELD",
        -2,
        READONLY,
        "Returns one or more random fields from a hash.",
        "6.2.0",
        "key:key [options=(count:integer [WITHVALUES])]",
        hrandfield,
    ),
];

fn hsetnx(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let (key, field) = (&req[1], &req[2]);
    ctx.with_shard(key, |s| {
        let h = read(s, key, now)?;
        if h.is_some_and(|h| h.contains_key(field)) {
            return Ok(Frame::Integer(0));
        }
        let exists = h.is_some();
        write(s, key, now, exists).insert(owned(field), owned(&req[3]));
        Ok(Frame::Integer(1))
    })
}

fn hexists(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    ctx.with_shard(&req[1], |s| {
        let found = read(s, &req[1], now)?.is_some_and(|h| h.contains_key(&req[2]));
        Ok(Frame::Integer(i64::from(found)))
    })
}

fn hstrlen(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    ctx.with_shard(&req[1], |s| {
        let len = read(s, &req[1], now)?
            .and_then(|h| h.get(&req[2]))
            .map_or(0, |v| v.len());
        Ok(Frame::Integer(len as i64))
    })
}

fn hkeys(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    ctx.with_shard(&req[1], |s| {
        let keys = read(s, &req[1], now)?.map_or_else(Vec::new, |h| {
            h.keys().map(|f| Frame::Bulk(f.clone())).collect()
        });
        Ok(Frame::Array(keys))
    })
}

fn hvals(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    ctx.with_shard(&req[1], |s| {
        let vals = read(s, &req[1], now)?.map_or_else(Vec::new, |h| {
            h.values().map(|v| Frame::Bulk(v.clone())).collect()
        });
        Ok(Frame::Array(vals))
    })
}

/// As Redis: the increment is checked first (`value is NaN or Infinity` for an infinite one),
/// then the stored value (`hash value is not a float`), then the sum; computed in x87 long
/// doubles and stored in Redis's human form, like `INCRBYFLOAT`.
fn hincrbyfloat(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let by = LongDouble::parse(&req[3]).ok_or(CommandError::NotAFloat)?;
    if by.is_infinite() {
        return Err(CommandError::other("value is NaN or Infinity"));
    }
    let now = ctx.now;
    let (key, field) = (&req[1], &req[2]);
    ctx.with_shard(key, |s| {
        let h = read(s, key, now)?;
        let cur = match h.and_then(|h| h.get(field)) {
            None => LongDouble::from_i64(0),
            Some(v) => LongDouble::parse(v)
                .ok_or_else(|| CommandError::other("hash value is not a float"))?,
        };
        let next = cur.add(&by);
        if next.is_infinite() {
            return Err(CommandError::other(
                "increment would produce NaN or Infinity",
            ));
        }
        let text = Bytes::from(next.to_human());
        let exists = h.is_some();
        let h = write(s, key, now, exists);
        match h.get_mut(field) {
            Some(v) => *v = text.clone(),
            None => {
                h.insert(owned(field), text.clone());
            }
        }
        Ok(Frame::Bulk(text))
    })
}

/// `HRANDFIELD key [count [WITHVALUES]]`: one field (nil for a missing key); with a count, up
/// to `count` distinct fields (the whole hash when `count` is at least its size), or `-count`
/// independent draws. With values: a flat field/value array in RESP2, `[field, value]` pairs
/// in RESP3.
fn hrandfield(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let (count, withvalues) = random_args(req, "WITHVALUES")?;
    let now = ctx.now;
    let resp3 = ctx.resp3();
    let key = &req[1];
    ctx.with_shard(key, |s| {
        let Some(h) = read(s, key, now)? else {
            return Ok(count.map_or(Frame::Null, |_| Frame::Array(vec![])));
        };
        let Some(n) = count else {
            let (f, _) = h
                .get_index(below(h.len()))
                .expect("invariant: a stored hash is never empty");
            return Ok(Frame::Bulk(f.clone()));
        };
        let mut out = Vec::new();
        for i in picks(h.len(), n) {
            let (f, v) = h
                .get_index(i)
                .expect("invariant: picks are below the length");
            let (f, v) = (Frame::Bulk(f.clone()), Frame::Bulk(v.clone()));
            match (withvalues, resp3) {
                (false, _) => out.push(f),
                (true, false) => out.extend([f, v]),
                (true, true) => out.push(Frame::Array(vec![f, v])),
            }
        }
        Ok(Frame::Array(out))
    })
}

#[cfg(test)]
mod tests {
    use crate::cmd::testing::*;
    use crate::protocol::Frame;

    #[test]
    fn hsetnx_hexists_hstrlen() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["HSETNX", "h", "a", "1"]), int(1));
        assert_eq!(h.run(&["HSETNX", "h", "a", "2"]), int(0));
        assert_eq!(h.run(&["HGET", "h", "a"]), bulk("1"));
        assert_eq!(h.run(&["HEXISTS", "h", "a"]), int(1));
        assert_eq!(h.run(&["HEXISTS", "h", "b"]), int(0));
        assert_eq!(h.run(&["HEXISTS", "none", "b"]), int(0));
        h.run(&["HSET", "h", "long", "hello world"]);
        assert_eq!(h.run(&["HSTRLEN", "h", "long"]), int(11));
        assert_eq!(h.run(&["HSTRLEN", "h", "x"]), int(0));
        assert_eq!(h.run(&["HSTRLEN", "none", "x"]), int(0));
        h.run(&["SET", "s", "v"]);
        let wrong = err("WRONGTYPE Operation against a key holding the wrong kind of value");
        for req in [
            &["HSETNX", "s", "a", "1"][..],
            &["HEXISTS", "s", "a"],
            &["HSTRLEN", "s", "a"],
            &["HKEYS", "s"],
            &["HVALS", "s"],
            &["HINCRBYFLOAT", "s", "a", "1"],
            &["HRANDFIELD", "s"],
            &["HRANDFIELD", "s", "2"],
        ] {
            assert_eq!(h.run(req), wrong, "{req:?}");
        }
        let before = h.session.stats.dirty;
        h.run(&["HSETNX", "h", "a", "3"]);
        assert_eq!(
            h.session.stats.dirty, before,
            "a refused HSETNX changes nothing"
        );
    }

    #[test]
    fn hkeys_and_hvals_in_insertion_order() {
        let mut h = Harness::new();
        h.run(&["HSET", "h", "b", "2", "a", "1"]);
        assert_eq!(
            h.run(&["HKEYS", "h"]),
            Frame::Array(vec![bulk("b"), bulk("a")])
        );
        assert_eq!(
            h.run(&["HVALS", "h"]),
            Frame::Array(vec![bulk("2"), bulk("1")])
        );
        assert_eq!(h.run(&["HKEYS", "none"]), Frame::Array(vec![]));
        assert_eq!(h.run(&["HVALS", "none"]), Frame::Array(vec![]));
    }

    #[test]
    fn hincrbyfloat_as_redis() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["HINCRBYFLOAT", "h", "f", "10.5"]), bulk("10.5"));
        assert_eq!(h.run(&["HINCRBYFLOAT", "h", "f", "0.1"]), bulk("10.6"));
        h.run(&["HSET", "h", "i", "17179869184"]);
        assert_eq!(
            h.run(&["HINCRBYFLOAT", "h", "i", "17179869184"]),
            bulk("34359738368")
        );
        h.run(&["HSET", "h", "s", " 11", "z", "1\x002"]);
        assert_eq!(
            h.run(&["HINCRBYFLOAT", "h", "s", "1"]),
            err("ERR hash value is not a float")
        );
        assert_eq!(
            h.run(&["HINCRBYFLOAT", "h", "z", "1"]),
            err("ERR hash value is not a float")
        );
        assert_eq!(
            h.run(&["HINCRBYFLOAT", "h", "f", "x"]),
            err("ERR value is not a valid float")
        );
        assert_eq!(
            h.run(&["HINCRBYFLOAT", "hfoo", "f", "+inf"]),
            err("ERR value is NaN or Infinity")
        );
        assert_eq!(h.run(&["EXISTS", "hfoo"]), int(0));
    }

    #[test]
    fn hrandfield_counts_values_and_errors() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["HRANDFIELD", "none"]), Frame::Null);
        assert_eq!(h.run(&["HRANDFIELD", "none", "3"]), Frame::Array(vec![]));
        h.run(&["HSET", "h", "a", "1", "b", "2", "c", "3"]);
        let one = h.run(&["HRANDFIELD", "h"]);
        assert!([bulk("a"), bulk("b"), bulk("c")].contains(&one), "{one:?}");
        assert_eq!(h.run(&["HRANDFIELD", "h", "0"]), Frame::Array(vec![]));
        assert_eq!(
            h.run(&["HRANDFIELD", "h", "5", "WITHVALUES"]),
            Frame::Array(vec![
                bulk("a"),
                bulk("1"),
                bulk("b"),
                bulk("2"),
                bulk("c"),
                bulk("3")
            ])
        );
        let Frame::Array(draws) = h.run(&["HRANDFIELD", "h", "-7"]) else {
            panic!("an array")
        };
        assert_eq!(draws.len(), 7);
        h.run(&["HELLO", "3"]);
        let Frame::Array(pairs) = h.run(&["HRANDFIELD", "h", "-2", "WITHVALUES"]) else {
            panic!("an array")
        };
        assert_eq!(pairs.len(), 2);
        assert!(pairs
            .iter()
            .all(|p| matches!(p, Frame::Array(v) if v.len() == 2)));
        assert_eq!(
            h.run(&["HRANDFIELD", "h", "1", "WITHVALUE"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["HRANDFIELD", "h", "-9223372036854770000", "WITHVALUES"]),
            err("ERR value is out of range")
        );
        let min = h.run(&["HRANDFIELD", "h", "-9223372036854775808"]);
        assert!(matches!(min, Frame::Error(e) if e.starts_with(b"ERR value is out of range")));
    }
}
