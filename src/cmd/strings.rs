//! String commands: GET, SET, SETEX, PSETEX, SETNX, MGET, MSET, MSETNX, GETDEL, GETEX and
//! GETSET, with Redis's replies and error texts. The counters (INCR, INCRBY, DECR, DECRBY,
//! INCRBYFLOAT) are in [`super::counters`]; commands on parts of a string (APPEND, SETRANGE,
//! bits, LCS) are in [`super::substrings`].

use bytes::Bytes;

use super::args::{self, is};
use super::flags::*;
use super::keys::expire_at;
use super::{CommandSpec, Ctx, BASE};
use crate::clock::Nanos;
use crate::error::CommandError;
use crate::protocol::Frame;
use crate::store::{Entry, Shard, Value};

/// String commands.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "GET",
        arity: 2,
        flags: READONLY | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "string",
        summary: "Returns the string value of a key.",
        args: "key:key",
        handler: get,
        ..BASE
    },
    CommandSpec {
        name: "SET",
        arity: -3,
        flags: WRITE | DENYOOM,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "string",
        summary: "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.",
        args: "key:key value:string condition=[NX|XX] [GET] expiration=[EX seconds:integer|PX milliseconds:integer|EXAT unix-time-seconds:unix-time|PXAT unix-time-milliseconds:unix-time|KEEPTTL]",
        handler: set,
        ..BASE
    },
    CommandSpec {
        name: "SETEX",
        arity: 4,
        flags: WRITE | DENYOOM,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "string",
        summary: "Sets the string value and expiration time of a key. Creates the key if it doesn't exist.",
        since: "2.0.0",
        args: "key:key seconds:integer value:string",
        handler: |ctx, req| set_with_ttl(ctx, req, true, "setex"),
        ..BASE
    },
    CommandSpec {
        name: "PSETEX",
        arity: 4,
        flags: WRITE | DENYOOM,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "string",
        summary: "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist.",
        since: "2.6.0",
        args: "key:key milliseconds:integer value:string",
        handler: |ctx, req| set_with_ttl(ctx, req, false, "psetex"),
        ..BASE
    },
    CommandSpec {
        name: "SETNX",
        arity: 3,
        flags: WRITE | DENYOOM | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "string",
        summary: "Set the string value of a key only when the key doesn't exist.",
        args: "key:key value:string",
        handler: setnx,
        ..BASE
    },
    CommandSpec {
        name: "MGET",
        arity: -2,
        flags: READONLY | FAST,
        first_key: 1,
        last_key: -1,
        key_step: 1,
        group: "string",
        summary: "Atomically returns the string values of one or more keys.",
        complexity: "O(N) where N is the number of keys to retrieve.",
        args: "key:key...",
        handler: mget,
        ..BASE
    },
    CommandSpec {
        name: "MSET",
        arity: -3,
        flags: WRITE | DENYOOM,
        first_key: 1,
        last_key: -1,
        key_step: 2,
        group: "string",
        summary: "Atomically creates or modifies the string values of one or more keys.",
        since: "1.0.1",
        complexity: "O(N) where N is the number of keys to set.",
        args: "data=(key:key value:string)...",
        handler: mset,
        ..BASE
    },
    CommandSpec {
        name: "MSETNX",
        arity: -3,
        flags: WRITE | DENYOOM,
        first_key: 1,
        last_key: -1,
        key_step: 2,
        group: "string",
        summary: "Set multiple keys to multiple values, only if none of the keys exist",
        since: "1.0.1",
        complexity: "O(N) where N is the number of keys to set.",
        args: "data=(key:key value:string)...",
        handler: msetnx,
        ..BASE
    },
    CommandSpec {
        name: "GETEX",
        arity: -2,
        flags: WRITE | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "string",
        summary: "Get the value of a key and optionally set its expiration",
        since: "6.2.0",
        args: "key:key [expiration=[EX seconds:integer|PX milliseconds:integer|EXAT unix-time-seconds:unix-time|PXAT unix-time-milliseconds:unix-time|PERSIST]]",
        handler: getex,
        ..BASE
    },
    CommandSpec {
        name: "GETSET",
        arity: 3,
        flags: WRITE | DENYOOM | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "string",
        summary: "Set the string value of a key and return its old value",
        args: "key:key value:string",
        handler: getset,
        ..BASE
    },
    CommandSpec {
        name: "GETDEL",
        arity: 2,
        flags: WRITE | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "string",
        summary: "Returns the string value of a key after deleting the key.",
        since: "6.2.0",
        args: "key:key",
        handler: getdel,
        ..BASE
    },
];

/// The string stored at `key`, `Ok(None)` if absent, `WrongType` for other kinds.
pub fn read_string(
    shard: &mut Shard,
    key: &[u8],
    now: Nanos,
) -> Result<Option<Bytes>, CommandError> {
    match shard.get_live(key, now) {
        None => Ok(None),
        Some(e) => e
            .value
            .string_bytes()
            .map(Some)
            .ok_or(CommandError::WrongType),
    }
}

fn get(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let v = ctx.with_shard(&req[1], |s| read_string(s, &req[1], now))?;
    match v {
        Some(b) => {
            ctx.session.stats.hits += 1;
            Ok(Frame::Bulk(b))
        }
        None => {
            ctx.session.stats.misses += 1;
            Ok(Frame::Null)
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Condition {
    Always,
    Nx,
    Xx,
}

pub(super) fn copy_value(b: &[u8]) -> Value {
    // A canonical integer (Redis's `string2ll` rules: what `GET` formats back byte for byte)
    // is kept as an integer, as Redis's `int` encoding does: 8 bytes in the entry instead of
    // a boxed string and its bytes. Anything else is copied, so the keyspace never pins a
    // connection's read buffer.
    match super::args::parse_i64(b) {
        Some(n) => Value::Int(n),
        None => Value::str(Bytes::copy_from_slice(b)),
    }
}

fn set(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let mut cond = Condition::Always;
    let mut get_old = false;
    let mut keepttl = false;
    // Redis checks the whole option list first (an option may repeat, e.g. `EX 1 EX 2`, the
    // last one winning; only conflicting ones are a syntax error), then parses the expiry.
    let mut expire_opt: Option<(&Bytes, &Bytes)> = None;
    let mut a = args::Args::new(req, 3);
    while let Some(opt) = a.next() {
        let kind = |k: &str| expire_opt.is_none_or(|(o, _)| is(o, k));
        if is(opt, "NX") && cond != Condition::Xx {
            cond = Condition::Nx;
        } else if is(opt, "XX") && cond != Condition::Nx {
            cond = Condition::Xx;
        } else if is(opt, "GET") {
            get_old = true;
        } else if is(opt, "KEEPTTL") && expire_opt.is_none() {
            keepttl = true;
        } else if !keepttl
            && ["EX", "PX", "EXAT", "PXAT"]
                .into_iter()
                .any(|k| is(opt, k) && kind(k))
            && a.remaining() > 0
        {
            expire_opt = Some((opt, a.value()?));
        } else {
            return Err(CommandError::Syntax);
        }
    }
    let expiry = match expire_opt {
        Some((opt, v)) => {
            let n = args::int(v)?;
            let secs = is(opt, "EX") || is(opt, "EXAT");
            let absolute = is(opt, "EXAT") || is(opt, "PXAT");
            Some(expire_at(ctx.now, n, secs, absolute, "set", true)?)
        }
        None => None,
    };
    let now = ctx.now;
    let key = &req[1];
    let value = &req[2];
    let now_ms = now.as_millis() as i64;
    ctx.with_shard(key, |s| {
        let old = s.get_live(key, now);
        let exists = old.is_some();
        let old_value = match (get_old, old) {
            (true, Some(e)) => Some(e.value.string_bytes().ok_or(CommandError::WrongType)?),
            _ => None,
        };
        let old_ttl = if keepttl {
            s.get(key, now).and_then(|e| e.expires_at())
        } else {
            None
        };
        let blocked = (cond == Condition::Nx && exists) || (cond == Condition::Xx && !exists);
        if !blocked {
            let expires_at = match expiry {
                Some(ms) if ms <= now_ms => {
                    // Already in the past: the key is set and immediately gone.
                    s.remove(key, now);
                    None
                }
                Some(ms) => Some(Some(Nanos::expiry_from_millis(ms as u64))),
                None if keepttl => Some(old_ttl),
                None => Some(None),
            };
            if let Some(at) = expires_at {
                s.insert(key, Entry::with_expiry(copy_value(value), at));
            }
        }
        Ok(match (get_old, blocked) {
            (true, _) => old_value.map_or(Frame::Null, Frame::Bulk),
            (false, true) => Frame::Null,
            (false, false) => Frame::OK,
        })
    })
}

fn set_with_ttl(
    ctx: &mut Ctx<'_>,
    req: &[Bytes],
    secs: bool,
    name: &str,
) -> Result<Frame, CommandError> {
    let n = args::int(&req[2])?;
    let ms = expire_at(ctx.now, n, secs, false, name, true)?;
    let (key, value) = (&req[1], &req[3]);
    ctx.with_shard(key, |s| {
        s.insert(
            key,
            Entry::with_expiry(
                copy_value(value),
                Some(Nanos::expiry_from_millis(ms as u64)),
            ),
        )
    });
    Ok(Frame::OK)
}

fn setnx(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let (key, value) = (&req[1], &req[2]);
    let set = ctx.with_shard(key, |s| {
        if s.get_live(key, now).is_some() {
            return false;
        }
        s.insert(key, Entry::new(copy_value(value)));
        true
    });
    Ok(Frame::Integer(i64::from(set)))
}

fn mget(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let keys = &req[1..];
    let mut out = Vec::with_capacity(keys.len());
    let (mut hits, mut misses) = (0, 0);
    ctx.with_keys(keys, |guard| {
        for k in keys {
            let v = guard
                .shard(k)
                .get(k, now)
                .and_then(|e| e.value.string_bytes());
            if v.is_some() {
                hits += 1;
            } else {
                misses += 1;
            }
            out.push(v.map_or(Frame::Null, Frame::Bulk));
        }
    });
    ctx.session.stats.hits += hits;
    ctx.session.stats.misses += misses;
    Ok(Frame::Array(out))
}

fn mset(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    if req.len() % 2 == 0 {
        return Err(CommandError::WrongArity("mset".into()));
    }
    let keys: Vec<&Bytes> = req[1..].iter().step_by(2).collect();
    ctx.with_keys(&keys, |guard| {
        for pair in req[1..].chunks_exact(2) {
            guard
                .shard(&pair[0])
                .insert(&pair[0], Entry::new(copy_value(&pair[1])));
        }
    });
    Ok(Frame::OK)
}

fn getdel(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let key = &req[1];
    ctx.with_shard(key, |s| {
        let Some(v) = read_string(s, key, now)? else {
            return Ok(Frame::Null);
        };
        s.remove(key, now);
        Ok(Frame::Bulk(v))
    })
}

fn msetnx(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    if req.len() % 2 == 0 {
        return Err(CommandError::WrongArity("msetnx".into()));
    }
    let now = ctx.now;
    let keys: Vec<&Bytes> = req[1..].iter().step_by(2).collect();
    let set = ctx.with_keys(&keys, |guard| {
        if keys.iter().any(|k| guard.shard(k).get(k, now).is_some()) {
            return false;
        }
        for pair in req[1..].chunks_exact(2) {
            guard
                .shard(&pair[0])
                .insert(&pair[0], Entry::new(copy_value(&pair[1])));
        }
        true
    });
    Ok(Frame::Integer(i64::from(set)))
}

/// What GETEX does to the key's time to live.
enum TtlChange {
    Keep,
    Persist,
    /// An absolute Unix time in milliseconds, and whether it was given as absolute (EXAT,
    /// PXAT: it may lie in the past, which deletes the key).
    At(i64, bool),
}

fn getex(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    // As in Redis: the option list is checked first (an expiry option may repeat, the last
    // one winning; PERSIST and an expiry conflict), the number only once the key is found.
    let mut persist = false;
    let mut expire_opt: Option<(&Bytes, &Bytes)> = None;
    let mut a = args::Args::new(req, 2);
    while let Some(opt) = a.next() {
        let kind = |k: &str| expire_opt.is_none_or(|(o, _)| is(o, k));
        if is(opt, "PERSIST") && expire_opt.is_none() {
            persist = true;
        } else if !persist
            && ["EX", "PX", "EXAT", "PXAT"]
                .into_iter()
                .any(|k| is(opt, k) && kind(k))
            && a.remaining() > 0
        {
            expire_opt = Some((opt, a.value()?));
        } else {
            return Err(CommandError::Syntax);
        }
    }
    let now = ctx.now;
    let key = &req[1];
    ctx.with_shard(key, |s| {
        let Some(value) = read_string(s, key, now)? else {
            return Ok(Frame::Null);
        };
        let change = match expire_opt {
            Some((opt, v)) => {
                let n = args::int(v)?;
                let secs = is(opt, "EX") || is(opt, "EXAT");
                let absolute = is(opt, "EXAT") || is(opt, "PXAT");
                TtlChange::At(expire_at(now, n, secs, absolute, "getex", true)?, absolute)
            }
            None if persist => TtlChange::Persist,
            None => TtlChange::Keep,
        };
        match change {
            TtlChange::Keep => {}
            TtlChange::At(ms, true) if ms <= now.as_millis() as i64 => {
                s.remove(key, now);
            }
            TtlChange::At(ms, _) => {
                if let Some(e) = s.get_mut(key, now) {
                    e.set_expires_at(Some(Nanos::expiry_from_millis(ms as u64)));
                }
            }
            TtlChange::Persist => {
                // Only a key that had a TTL changes (and is journaled).
                if s.get_live(key, now)
                    .is_some_and(|e| e.expires_at().is_some())
                {
                    if let Some(e) = s.get_mut(key, now) {
                        e.set_expires_at(None);
                    }
                }
            }
        }
        Ok(Frame::Bulk(value))
    })
}

fn getset(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let (key, value) = (&req[1], &req[2]);
    ctx.with_shard(key, |s| {
        let old = read_string(s, key, now)?;
        // Like SET: the new value has no TTL.
        s.insert(key, Entry::new(copy_value(value)));
        Ok(old.map_or(Frame::Null, Frame::Bulk))
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::cmd::testing::*;
    use crate::protocol::Frame;

    #[test]
    fn set_get_and_options() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["GET", "k"]), Frame::Null);
        assert_eq!(h.run(&["SET", "k", "v"]), Frame::OK);
        assert_eq!(h.run(&["GET", "k"]), bulk("v"));
        assert_eq!(h.run(&["SET", "k", "w", "NX"]), Frame::Null);
        assert_eq!(h.run(&["SET", "k", "w", "XX", "GET"]), bulk("v"));
        assert_eq!(h.run(&["SET", "n", "w", "XX"]), Frame::Null);
        assert_eq!(
            h.run(&["SET", "k", "v", "NX", "XX"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["SET", "k", "v", "EX", "1", "PX", "5"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["SET", "k", "v", "EX", "0"]),
            err("ERR invalid expire time in 'set' command")
        );
        assert_eq!(
            h.run(&["SET", "k", "v", "EX", "x"]),
            err("ERR value is not an integer or out of range")
        );
    }

    #[test]
    fn set_expiry_and_keepttl() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["SET", "k", "v", "PX", "1500"]), Frame::OK);
        assert_eq!(h.run(&["PTTL", "k"]), int(1500));
        assert_eq!(h.run(&["SET", "k", "v2", "KEEPTTL"]), Frame::OK);
        assert_eq!(h.run(&["PTTL", "k"]), int(1500));
        h.clock.advance(Duration::from_millis(1500));
        assert_eq!(h.run(&["GET", "k"]), Frame::Null);
        assert_eq!(h.run(&["SET", "k", "v", "EXAT", "1"]), Frame::OK);
        assert_eq!(h.run(&["EXISTS", "k"]), int(0));
    }

    #[test]
    fn multi_key_strings() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["MSET", "a", "1", "b", "2"]), Frame::OK);
        assert_eq!(
            h.run(&["MSET", "a", "1", "b"]),
            err("ERR wrong number of arguments for 'mset' command")
        );
        assert_eq!(
            h.run(&["MGET", "a", "x", "b"]),
            Frame::Array(vec![bulk("1"), Frame::Null, bulk("2")])
        );
        assert_eq!(h.run(&["SETNX", "a", "9"]), int(0));
        assert_eq!(h.run(&["SETNX", "z", "9"]), int(1));
        assert_eq!(h.run(&["GETDEL", "z"]), bulk("9"));
        assert_eq!(h.run(&["GETDEL", "z"]), Frame::Null);
        assert_eq!(h.run(&["SETEX", "e", "5", "v"]), Frame::OK);
        assert_eq!(h.run(&["TTL", "e"]), int(5));
        assert_eq!(
            h.run(&["SETEX", "e", "-5", "v"]),
            err("ERR invalid expire time in 'setex' command")
        );
    }

    #[test]
    fn getex_reads_and_changes_the_ttl_like_redis() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["GETEX", "k"]), Frame::Null);
        assert_eq!(
            h.run(&["GETEX", "k", "EX", "0"]),
            Frame::Null,
            "missing key first"
        );
        h.run(&["SET", "k", "v"]);
        assert_eq!(h.run(&["GETEX", "k"]), bulk("v"));
        assert_eq!(h.run(&["TTL", "k"]), int(-1));
        assert_eq!(h.run(&["GETEX", "k", "EX", "100"]), bulk("v"));
        assert_eq!(h.run(&["TTL", "k"]), int(100));
        assert_eq!(
            h.run(&["GETEX", "k", "PX", "5000", "PX", "1500"]),
            bulk("v")
        );
        assert_eq!(h.run(&["PTTL", "k"]), int(1500));
        assert_eq!(h.run(&["GETEX", "k", "PERSIST"]), bulk("v"));
        assert_eq!(h.run(&["TTL", "k"]), int(-1));
        let at = (h.clock_ms() / 1000 + 50).to_string();
        assert_eq!(h.run(&["GETEX", "k", "EXAT", &at]), bulk("v"));
        assert_eq!(h.run(&["TTL", "k"]), int(50));
        let past = (h.clock_ms() - 1).to_string();
        assert_eq!(h.run(&["GETEX", "k", "PXAT", &past]), bulk("v"));
        assert_eq!(h.run(&["EXISTS", "k"]), int(0), "a past PXAT deletes");
        h.run(&["SET", "k", "v"]);
        for bad in [
            &["GETEX", "k", "EX", "1", "PX", "1"][..],
            &["GETEX", "k", "PERSIST", "EX", "1"],
            &["GETEX", "k", "EX", "1", "PERSIST"],
            &["GETEX", "k", "KEEPTTL"],
            &["GETEX", "k", "NX"],
            &["GETEX", "k", "EX"],
        ] {
            assert_eq!(h.run(bad), err("ERR syntax error"), "{bad:?}");
        }
        for bad in ["0", "-1", "9223372036854775807"] {
            assert_eq!(
                h.run(&["GETEX", "k", "EX", bad]),
                err("ERR invalid expire time in 'getex' command"),
                "{bad}"
            );
        }
        assert_eq!(
            h.run(&["GETEX", "k", "EX", "x"]),
            err("ERR value is not an integer or out of range")
        );
        h.run(&["SADD", "s", "a"]);
        assert_eq!(h.run(&["GETEX", "s", "PERSIST"]), err(WRONGTYPE));
        let before = h.session.stats.dirty;
        h.run(&["GETEX", "k", "PERSIST"]);
        assert_eq!(
            h.session.stats.dirty, before,
            "PERSIST without a TTL changes nothing"
        );
    }

    #[test]
    fn getset_and_msetnx() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["GETSET", "k", "a"]), Frame::Null);
        h.run(&["EXPIRE", "k", "10"]);
        assert_eq!(h.run(&["GETSET", "k", "b"]), bulk("a"));
        assert_eq!(h.run(&["TTL", "k"]), int(-1), "GETSET drops the TTL");
        h.run(&["INCR", "n"]);
        assert_eq!(h.run(&["GETSET", "n", "x"]), bulk("1"));
        h.run(&["SADD", "s", "a"]);
        assert_eq!(h.run(&["GETSET", "s", "x"]), err(WRONGTYPE));
        assert_eq!(h.run(&["MSETNX", "x1", "1", "x2", "2"]), int(1));
        assert_eq!(h.run(&["MSETNX", "x3", "3", "x2", "9"]), int(0));
        assert_eq!(h.run(&["EXISTS", "x3"]), int(0), "nothing is set");
        assert_eq!(h.run(&["GET", "x2"]), bulk("2"));
        assert_eq!(h.run(&["MSETNX", "x4", "4", "x4", "5"]), int(1));
        assert_eq!(h.run(&["GET", "x4"]), bulk("5"));
        assert_eq!(
            h.run(&["MSETNX", "a", "1", "b"]),
            err("ERR wrong number of arguments for 'msetnx' command")
        );
    }
}
