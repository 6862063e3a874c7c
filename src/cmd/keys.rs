//! Keyspace commands: DEL, UNLINK, EXISTS, TYPE, KEYS, SCAN, RENAME, RENAMENX, COPY, EXPIRE,
//! PEXPIRE, EXPIREAT, PEXPIREAT, TTL, PTTL, EXPIRETIME, PEXPIRETIME, PERSIST. They work on every value kind,
//! limiter states included.

use bytes::Bytes;

use super::args::{self, is};
use super::flags::*;
use super::{CommandSpec, Ctx, BASE};
use crate::clock::Nanos;
use crate::error::CommandError;
use crate::protocol::Frame;

/// Redis's glob matcher, shared with the other pattern commands.
pub use crate::glob::glob_match;

/// Keyspace commands.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "DEL",
        arity: -2,
        flags: WRITE,
        first_key: 1,
        last_key: -1,
        key_step: 1,
        summary: "Deletes one or more keys.",
        complexity: "O(N) where N is the number of keys that will be removed.",
        args: "key:key...",
        handler: del,
        ..BASE
    },
    CommandSpec {
        name: "UNLINK",
        arity: -2,
        flags: WRITE | FAST,
        first_key: 1,
        last_key: -1,
        key_step: 1,
        summary: "Asynchronously deletes one or more keys.",
        since: "4.0.0",
        complexity: "O(1) for each key removed regardless of its size.",
        args: "key:key...",
        handler: del,
        ..BASE
    },
    CommandSpec {
        name: "EXISTS",
        arity: -2,
        flags: READONLY | FAST,
        first_key: 1,
        last_key: -1,
        key_step: 1,
        summary: "Determines whether one or more keys exist.",
        complexity: "O(N) where N is the number of keys to check.",
        args: "key:key...",
        handler: exists,
        ..BASE
    },
    CommandSpec {
        name: "TYPE",
        arity: 2,
        flags: READONLY | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        summary: "Determines the type of value stored at a key.",
        args: "key:key",
        handler: type_,
        ..BASE
    },
    CommandSpec {
        name: "KEYS",
        arity: 2,
        flags: READONLY | KEYSPACE,
        summary: "Returns all key names that match a pattern.",
        complexity: "O(N) with N being the number of keys in the database.",
        args: "pattern:pattern",
        handler: keys,
        ..BASE
    },
    CommandSpec {
        name: "SCAN",
        arity: -2,
        flags: READONLY | KEYSPACE,
        summary: "Iterates over the key names in the database.",
        since: "2.8.0",
        complexity: "O(1) for every call. O(N) for a complete iteration.",
        args: "cursor:integer [MATCH pattern:pattern] [COUNT count:integer] [TYPE type:string]",
        handler: scan,
        ..BASE
    },
    CommandSpec {
        name: "RENAME",
        arity: 3,
        flags: WRITE,
        first_key: 1,
        last_key: 2,
        key_step: 1,
        summary: "Renames a key and overwrites the destination.",
        args: "key:key newkey:key",
        handler: rename,
        ..BASE
    },
    CommandSpec {
        name: "RENAMENX",
        arity: 3,
        flags: WRITE | FAST,
        first_key: 1,
        last_key: 2,
        key_step: 1,
        summary: "Rename a key, only if the new key does not exist",
        args: "key:key newkey:key",
        handler: renamenx,
        ..BASE
    },
    CommandSpec {
        name: "COPY",
        arity: -3,
        flags: WRITE | DENYOOM,
        first_key: 1,
        last_key: 2,
        key_step: 1,
        summary: "Copy a key",
        since: "6.2.0",
        complexity: "O(N) worst case for collections, where N is the number of nested items. O(1) for string values.",
        args: "source:key destination:key [DB destination-db:integer] [REPLACE]",
        handler: copy,
        ..BASE
    },
    CommandSpec {
        name: "EXPIRE",
        arity: -3,
        flags: WRITE | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        summary: "Sets the expiration time of a key in seconds.",
        args: "key:key seconds:integer condition=[NX|XX|GT|LT]",
        handler: |ctx, req| expire(ctx, req, true, false, "expire"),
        ..BASE
    },
    CommandSpec {
        name: "PEXPIRE",
        arity: -3,
        flags: WRITE | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        summary: "Sets the expiration time of a key in milliseconds.",
        since: "2.6.0",
        args: "key:key milliseconds:integer condition=[NX|XX|GT|LT]",
        handler: |ctx, req| expire(ctx, req, false, false, "pexpire"),
        ..BASE
    },
    CommandSpec {
        name: "EXPIREAT",
        arity: -3,
        flags: WRITE | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        summary: "Sets the expiration time of a key to a Unix timestamp.",
        since: "1.2.0",
        args: "key:key unix-time-seconds:unix-time condition=[NX|XX|GT|LT]",
        handler: |ctx, req| expire(ctx, req, true, true, "expireat"),
        ..BASE
    },
    CommandSpec {
        name: "PEXPIREAT",
        arity: -3,
        flags: WRITE | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        summary: "Sets the expiration time of a key to a Unix milliseconds timestamp.",
        since: "2.6.0",
        args: "key:key unix-time-milliseconds:unix-time condition=[NX|XX|GT|LT]",
        handler: |ctx, req| expire(ctx, req, false, true, "pexpireat"),
        ..BASE
    },
    CommandSpec {
        name: "TTL",
        arity: 2,
        flags: READONLY | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        summary: "Returns the expiration time in seconds of a key.",
        args: "key:key",
        handler: |ctx, req| ttl(ctx, req, TtlForm::Seconds),
        ..BASE
    },
    CommandSpec {
        name: "PTTL",
        arity: 2,
        flags: READONLY | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        summary: "Returns the expiration time in milliseconds of a key.",
        since: "2.6.0",
        args: "key:key",
        handler: |ctx, req| ttl(ctx, req, TtlForm::Millis),
        ..BASE
    },
    CommandSpec {
        name: "EXPIRETIME",
        arity: 2,
        flags: READONLY | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        summary: "Returns the expiration time of a key as a Unix timestamp.",
        since: "7.0.0",
        args: "key:key",
        handler: |ctx, req| ttl(ctx, req, TtlForm::AbsSeconds),
        ..BASE
    },
    CommandSpec {
        name: "PEXPIRETIME",
        arity: 2,
        flags: READONLY | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        summary: "Returns the expiration time of a key as a Unix milliseconds timestamp.",
        since: "7.0.0",
        args: "key:key",
        handler: |ctx, req| ttl(ctx, req, TtlForm::AbsMillis),
        ..BASE
    },
    CommandSpec {
        name: "PERSIST",
        arity: 2,
        flags: WRITE | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        summary: "Removes the expiration time of a key.",
        since: "2.2.0",
        args: "key:key",
        handler: persist,
        ..BASE
    },
];

/// Turns an expire argument into an absolute Unix time in milliseconds, with Redis's overflow
/// checks. `positive` demands a value > 0 (SET, SETEX); EXPIRE accepts any value.
pub fn expire_at(
    now: Nanos,
    n: i64,
    secs: bool,
    absolute: bool,
    cmd: &str,
    positive: bool,
) -> Result<i64, CommandError> {
    let invalid = || CommandError::InvalidExpire(cmd.to_owned());
    if positive && n <= 0 {
        return Err(invalid());
    }
    let mut ms = if secs {
        n.checked_mul(1000).ok_or_else(invalid)?
    } else {
        n
    };
    if !absolute {
        ms = ms.checked_add(now.as_millis() as i64).ok_or_else(invalid)?;
    }
    Ok(ms)
}

fn del(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let mut removed = 0;
    for k in &req[1..] {
        removed += i64::from(ctx.with_shard(k, |s| s.remove(k, now).is_some()));
    }
    Ok(Frame::Integer(removed))
}

fn exists(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let mut n = 0;
    for k in &req[1..] {
        n += i64::from(ctx.with_shard(k, |s| s.get_live(k, now).is_some()));
    }
    Ok(Frame::Integer(n))
}

fn type_(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let name = ctx.with_shard(&req[1], |s| {
        s.get_live(&req[1], now)
            .map_or("none", |e| e.value.type_name())
    });
    Ok(Frame::simple(name))
}

fn keys(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let pattern = &req[1];
    let all = &pattern[..] == b"*";
    let mut out = Vec::new();
    for i in 0..ctx.shard_count() {
        ctx.with_shard_at(i, |shard| {
            out.extend(
                shard
                    .iter_live(now)
                    .filter(|(k, _)| all || glob_match(pattern, k))
                    .map(|(k, _)| Frame::bulk(k)),
            )
        });
    }
    Ok(Frame::Array(out))
}

fn scan(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let cursor: u64 = std::str::from_utf8(&req[1])
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| CommandError::other("invalid cursor"))?;
    let mut pattern = None;
    let mut count = 10usize;
    let mut type_filter = None;
    let mut a = args::Args::new(req, 2);
    while let Some(opt) = a.next() {
        if is(opt, "MATCH") {
            // Like Redis, `MATCH *` is no filter at all (it also returns the empty key, which
            // the glob `*` does not match).
            let p = a.value()?;
            pattern = (&p[..] != b"*").then(|| p.clone());
        } else if is(opt, "COUNT") {
            let n = a.int()?;
            if n < 1 {
                return Err(CommandError::Syntax);
            }
            count = n as usize;
        } else if is(opt, "TYPE") {
            type_filter = Some(args::text(a.value()?).to_ascii_lowercase());
        } else {
            return Err(CommandError::Syntax);
        }
    }
    let now = ctx.now;
    let shards = ctx.shard_count() as u64;
    // The cursor is the next shard to visit; each call returns whole shards, so every key
    // present for the whole iteration is returned exactly once.
    let mut next = cursor;
    let mut out = Vec::new();
    let mut visited = 0usize;
    while next < shards && visited < count {
        ctx.with_shard_at(next as usize, |shard| {
            for (k, e) in shard.iter_live(now) {
                visited += 1;
                if pattern.as_ref().is_some_and(|p| !glob_match(p, k)) {
                    continue;
                }
                if type_filter
                    .as_deref()
                    .is_some_and(|t| t != e.value.type_name())
                {
                    continue;
                }
                out.push(Frame::bulk(k));
            }
        });
        next += 1;
        // An empty shard costs one step of the budget, like an empty bucket in Redis.
        visited += 1;
    }
    if next >= shards {
        next = 0;
    }
    Ok(Frame::Array(vec![
        Frame::Bulk(Bytes::from(next.to_string())),
        Frame::Array(out),
    ]))
}

fn rename(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let (src, dst) = (&req[1], &req[2]);
    ctx.with_keys(&[src, dst], |g| {
        let Some(entry) = g.shard(src).remove(src, now) else {
            return Err(CommandError::other("no such key"));
        };
        g.shard(dst).insert(dst, entry);
        Ok(Frame::OK)
    })
}

fn renamenx(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let (src, dst) = (&req[1], &req[2]);
    ctx.with_keys(&[src, dst], |g| {
        if g.shard(src).get_live(src, now).is_none() {
            return Err(CommandError::other("no such key"));
        }
        if src == dst || g.shard(dst).get_live(dst, now).is_some() {
            return Ok(Frame::Integer(0));
        }
        if let Some(entry) = g.shard(src).remove(src, now) {
            g.shard(dst).insert(dst, entry);
        }
        Ok(Frame::Integer(1))
    })
}

fn copy(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let mut replace = false;
    let mut db = ctx.session.db;
    let mut a = args::Args::new(req, 3);
    while let Some(opt) = a.next() {
        if is(opt, "REPLACE") {
            replace = true;
        } else if is(opt, "DB") && a.remaining() > 0 {
            let n = args::int(a.value()?)?;
            if i32::try_from(n).is_err() {
                return Err(CommandError::NotAnInteger);
            }
            db = usize::try_from(n)
                .ok()
                .filter(|&n| n < ctx.shared.engine.dbs.len())
                .ok_or_else(|| CommandError::other("DB index is out of range"))?;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    let now = ctx.now;
    let (src, dst) = (&req[1], &req[2]);
    if db == ctx.session.db {
        if src == dst {
            return Err(CommandError::other(
                "source and destination objects are the same",
            ));
        }
        return ctx.with_keys(&[src, dst], |g| {
            let Some(entry) = g.shard(src).get_live(src, now).cloned() else {
                return Ok(Frame::Integer(0));
            };
            if !replace && g.shard(dst).get_live(dst, now).is_some() {
                return Ok(Frame::Integer(0));
            }
            g.shard(dst).insert(dst, entry);
            Ok(Frame::Integer(1))
        });
    }
    // Another database: the source is read, then the copy written under the destination's
    // lock (not one atomic step; see docs/commands.md).
    let Some(entry) = ctx.with_shard(src, |s| s.get_live(src, now).cloned()) else {
        return Ok(Frame::Integer(0));
    };
    ctx.with_shard_in(db, dst, |s| {
        if !replace && s.get_live(dst, now).is_some() {
            return Frame::Integer(0);
        }
        s.insert(dst, entry);
        Frame::Integer(1)
    })
    .ok_or_else(|| CommandError::other("COPY to another database is not supported inside MULTI"))
}

fn expire(
    ctx: &mut Ctx<'_>,
    req: &[Bytes],
    secs: bool,
    absolute: bool,
    name: &str,
) -> Result<Frame, CommandError> {
    // Redis checks the options before it parses the time.
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in &req[3..] {
        if is(opt, "NX") {
            nx = true;
        } else if is(opt, "XX") {
            xx = true;
        } else if is(opt, "GT") {
            gt = true;
        } else if is(opt, "LT") {
            lt = true;
        } else {
            return Err(CommandError::other(format!(
                "Unsupported option {}",
                args::text(opt)
            )));
        }
    }
    if nx && (xx || gt || lt) {
        return Err(CommandError::other(
            "NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if gt && lt {
        return Err(CommandError::other(
            "GT and LT options at the same time are not compatible",
        ));
    }
    let n = args::int(&req[2])?;
    let when = expire_at(ctx.now, n, secs, absolute, name, false)?;
    let now = ctx.now;
    let key = &req[1];
    let done = ctx.with_shard(key, |s| {
        let Some(e) = s.get_live(key, now) else {
            return false;
        };
        let current = e.expires_at().map(|t| t.expiry_millis() as i64);
        let allowed = match current {
            Some(c) => !(nx || (gt && when <= c) || (lt && when >= c)),
            // No TTL counts as an infinite one: GT never applies, LT always does.
            None => !xx && !gt,
        };
        if !allowed {
            return false;
        }
        if when <= now.as_millis() as i64 {
            s.remove(key, now);
        } else if let Some(e) = s.get_mut(key, now) {
            e.set_expires_at(Some(Nanos::expiry_from_millis(when as u64)));
        }
        true
    });
    Ok(Frame::Integer(i64::from(done)))
}

#[derive(Clone, Copy)]
enum TtlForm {
    Seconds,
    Millis,
    AbsSeconds,
    AbsMillis,
}

/// `PTTL`'s answer for a live key whose expiry is `at`: -1 without one, else the milliseconds
/// left (never negative).
pub(super) fn pttl_of_live(at: Option<Nanos>, now: Nanos) -> i64 {
    match at {
        None => -1,
        Some(at) => (at.expiry_millis() as i64 - now.as_millis() as i64).max(0),
    }
}

fn ttl(ctx: &mut Ctx<'_>, req: &[Bytes], form: TtlForm) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let at = ctx.with_shard(&req[1], |s| {
        s.get_live(&req[1], now).map(|e| e.expires_at())
    });
    let n = match at {
        None => -2,
        Some(None) => -1,
        Some(Some(at)) => {
            let at_ms = at.expiry_millis() as i64;
            let left = at_ms - now.as_millis() as i64;
            match form {
                TtlForm::Seconds => (left.max(0) + 500) / 1000,
                TtlForm::Millis => pttl_of_live(Some(at), now),
                // Rounded to the nearest second, as Redis does (without overflowing).
                TtlForm::AbsSeconds => ((i128::from(at_ms) + 500) / 1000) as i64,
                TtlForm::AbsMillis => at_ms,
            }
        }
    };
    Ok(Frame::Integer(n))
}

fn persist(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let done = ctx.with_shard(&req[1], |s| {
        if s.get_live(&req[1], now)
            .is_none_or(|e| e.expires_at().is_none())
        {
            return false;
        }
        if let Some(e) = s.get_mut(&req[1], now) {
            e.set_expires_at(None);
        }
        true
    });
    Ok(Frame::Integer(i64::from(done)))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::cmd::testing::*;
    use crate::protocol::Frame;

    #[test]
    fn del_exists_type() {
        let mut h = Harness::new();
        h.run(&["SET", "a", "1"]);
        h.run(&["SET", "b", "1"]);
        assert_eq!(h.run(&["EXISTS", "a", "a", "x"]), int(2));
        assert_eq!(h.run(&["TYPE", "a"]), simple("string"));
        assert_eq!(h.run(&["TYPE", "x"]), simple("none"));
        assert_eq!(h.run(&["DEL", "a", "b", "x"]), int(2));
        assert_eq!(h.run(&["UNLINK", "a"]), int(0));
    }

    #[test]
    fn expire_family_matches_redis() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["EXPIRE", "k", "10"]), int(0));
        h.run(&["SET", "k", "v"]);
        assert_eq!(h.run(&["TTL", "k"]), int(-1));
        assert_eq!(h.run(&["EXPIRE", "k", "10", "XX"]), int(0));
        assert_eq!(h.run(&["EXPIRE", "k", "10", "NX"]), int(1));
        assert_eq!(h.run(&["EXPIRE", "k", "5", "GT"]), int(0));
        assert_eq!(h.run(&["EXPIRE", "k", "20", "GT"]), int(1));
        assert_eq!(h.run(&["TTL", "k"]), int(20));
        assert_eq!(h.run(&["PEXPIRE", "k", "1500", "LT"]), int(1));
        assert_eq!(h.run(&["PTTL", "k"]), int(1500));
        assert_eq!(h.run(&["TTL", "k"]), int(2));
        let now_ms = (h.clock_ms() + 1500) as i64;
        assert_eq!(h.run(&["PEXPIRETIME", "k"]), int(now_ms));
        // EXPIRETIME rounds to the nearest second, as in Redis.
        assert_eq!(h.run(&["EXPIRETIME", "k"]), int((now_ms + 500) / 1000));
        assert_eq!(
            h.run(&["EXPIRE", "k", "1", "NX", "XX"]),
            err("ERR NX and XX, GT or LT options at the same time are not compatible")
        );
        assert_eq!(
            h.run(&["EXPIRE", "k", "1", "GT", "LT"]),
            err("ERR GT and LT options at the same time are not compatible")
        );
        assert_eq!(
            h.run(&["EXPIRE", "k", "1", "YY"]),
            err("ERR Unsupported option YY")
        );
        assert_eq!(
            h.run(&["EXPIRE", "k", "9223372036854775807"]),
            err("ERR invalid expire time in 'expire' command")
        );
        assert_eq!(h.run(&["PERSIST", "k"]), int(1));
        assert_eq!(h.run(&["PERSIST", "k"]), int(0));
        assert_eq!(h.run(&["EXPIRE", "k", "-1"]), int(1));
        assert_eq!(h.run(&["TTL", "k"]), int(-2));
    }

    #[test]
    fn lazy_expiry_hides_keys() {
        let mut h = Harness::new();
        h.run(&["SET", "k", "v", "PX", "10"]);
        h.clock.advance(Duration::from_millis(10));
        assert_eq!(h.run(&["EXISTS", "k"]), int(0));
        assert_eq!(h.run(&["TTL", "k"]), int(-2));
    }

    #[test]
    fn keys_scan_and_rename() {
        let mut h = Harness::new();
        for i in 0..50 {
            h.run(&["SET", &format!("user:{i}"), "1"]);
        }
        h.run(&["SET", "other", "1"]);
        let Frame::Array(all) = h.run(&["KEYS", "user:*"]) else {
            panic!("KEYS answers an array")
        };
        assert_eq!(all.len(), 50);
        let mut cursor = "0".to_string();
        let mut seen = std::collections::HashSet::new();
        loop {
            let Frame::Array(reply) = h.run(&["SCAN", &cursor, "MATCH", "user:*", "COUNT", "5"])
            else {
                panic!("SCAN answers an array")
            };
            let Frame::Bulk(next) = &reply[0] else {
                panic!("cursor is bulk")
            };
            let Frame::Array(keys) = &reply[1] else {
                panic!("keys are an array")
            };
            for k in keys {
                let Frame::Bulk(k) = k else {
                    panic!("key is bulk")
                };
                assert!(seen.insert(k.clone()), "duplicate {k:?}");
            }
            cursor = String::from_utf8(next.to_vec()).unwrap();
            if cursor == "0" {
                break;
            }
        }
        assert_eq!(seen.len(), 50);
        assert_eq!(h.run(&["SCAN", "x"]), err("ERR invalid cursor"));
        assert_eq!(h.run(&["RENAME", "other", "moved"]), Frame::OK);
        assert_eq!(h.run(&["GET", "moved"]), bulk("1"));
        assert_eq!(h.run(&["RENAME", "nope", "x"]), err("ERR no such key"));
    }

    #[test]
    fn renamenx_only_to_a_new_name() {
        let mut h = Harness::new();
        h.run(&["SET", "a", "1"]);
        h.run(&["SET", "b", "2"]);
        h.run(&["EXPIRE", "a", "10"]);
        assert_eq!(h.run(&["RENAMENX", "a", "b"]), int(0));
        assert_eq!(h.run(&["RENAMENX", "a", "a"]), int(0));
        assert_eq!(h.run(&["RENAMENX", "a", "c"]), int(1));
        assert_eq!(h.run(&["GET", "c"]), bulk("1"));
        assert_eq!(h.run(&["TTL", "c"]), int(10), "the TTL moves along");
        assert_eq!(h.run(&["EXISTS", "a"]), int(0));
        assert_eq!(h.run(&["RENAMENX", "a", "d"]), err("ERR no such key"));
        assert_eq!(h.run(&["RENAMENX", "a", "a"]), err("ERR no such key"));
    }

    #[test]
    fn copy_within_and_across_databases() {
        let mut h = Harness::new();
        h.run(&["SADD", "s", "a", "b"]);
        h.run(&["EXPIRE", "s", "10"]);
        assert_eq!(h.run(&["COPY", "s", "t"]), int(1));
        assert_eq!(h.run(&["SCARD", "t"]), int(2));
        assert_eq!(h.run(&["TTL", "t"]), int(10), "the TTL is copied");
        h.run(&["SADD", "t", "c"]);
        assert_eq!(h.run(&["SCARD", "s"]), int(2), "the copy is independent");
        assert_eq!(h.run(&["COPY", "s", "t"]), int(0));
        assert_eq!(h.run(&["COPY", "s", "t", "REPLACE"]), int(1));
        assert_eq!(h.run(&["SCARD", "t"]), int(2));
        assert_eq!(h.run(&["COPY", "none", "t", "REPLACE"]), int(0));
        assert_eq!(
            h.run(&["COPY", "s", "s"]),
            err("ERR source and destination objects are the same")
        );
        assert_eq!(h.run(&["COPY", "s", "s", "DB", "1"]), int(1));
        assert_eq!(h.run(&["COPY", "s", "s", "DB", "1"]), int(0));
        h.run(&["SELECT", "1"]);
        assert_eq!(h.run(&["SCARD", "s"]), int(2));
        assert_eq!(h.run(&["TTL", "s"]), int(10));
        h.run(&["SELECT", "0"]);
        assert_eq!(
            h.run(&["COPY", "s", "x", "DB", "16"]),
            err("ERR DB index is out of range")
        );
        assert_eq!(
            h.run(&["COPY", "s", "x", "DB", "-1"]),
            err("ERR DB index is out of range")
        );
        assert_eq!(
            h.run(&["COPY", "s", "x", "DB", "x"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(h.run(&["COPY", "s", "x", "DB"]), err("ERR syntax error"));
        assert_eq!(h.run(&["COPY", "s", "x", "NX"]), err("ERR syntax error"));
        h.run(&["MULTI"]);
        h.run(&["COPY", "s", "y", "DB", "2"]);
        h.run(&["COPY", "s", "y"]);
        assert_eq!(
            h.run(&["EXEC"]),
            Frame::Array(vec![
                err("ERR COPY to another database is not supported inside MULTI"),
                int(1)
            ])
        );
    }
}
