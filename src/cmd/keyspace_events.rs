//! Which keyspace notifications each write command publishes (`notify-keyspace-events`):
//! Redis 7.0's class and event name per command, and for the commands that touch two keys
//! differently (`RENAME`, `LMOVE`, `SMOVE`, `COPY`) the event of each key.
//!
//! [`run_handler`] runs a command's handler with its [`EventSpec`] in the session while
//! notifications are on; the engine's [`crate::engine::Call`] then publishes the events of
//! each key it changes (see `engine::notify`). While they are off, a write command pays one
//! relaxed atomic load here and nothing else.
//!
//! limitkv's own limiter commands (`CL.THROTTLE`, `GCRA`, `RATE.TAKE`, `LIMIT.CHECK`, ...)
//! publish in class `d` (Redis's class for module key-space events, as a Redis module's
//! limiter would), named by the command in lower case (`cl.throttle`).

use bytes::Bytes;

use super::flags::WRITE;
use super::{CommandSpec, Ctx};
use crate::config::NotifyFlags as N;
use crate::engine::notify::{Ev, EventSpec, KeyEvents, WhenGone};
use crate::error::CommandError;
use crate::protocol::Frame;

/// Runs `spec`'s handler; a write command runs with its keyspace events while notifications
/// are on (the previous spec is restored after, for commands run by `EXEC` and scripts).
pub fn run_handler(
    ctx: &mut Ctx<'_>,
    spec: &CommandSpec,
    req: &[Bytes],
) -> Result<Frame, CommandError> {
    if !spec.has(WRITE) || !ctx.shared.engine.notifies() {
        return (spec.handler)(ctx, req);
    }
    let saved = ctx.session.events.replace(Box::new(spec_for(spec, req)));
    let reply = (spec.handler)(ctx, req);
    ctx.session.events = saved;
    reply
}

fn ev(class: u32, name: &'static str) -> Ev {
    Ev::of(class, name)
}

fn keep(class: u32, name: &'static str) -> KeyEvents {
    KeyEvents::new(vec![ev(class, name)], WhenGone::ThenDel)
}

fn same(class: u32, name: &'static str) -> KeyEvents {
    KeyEvents::new(vec![ev(class, name)], WhenGone::Same)
}

fn store(class: u32, name: &'static str) -> KeyEvents {
    KeyEvents::new(vec![ev(class, name)], WhenGone::Del)
}

fn is(arg: Option<&Bytes>, word: &str) -> bool {
    arg.is_some_and(|a| a.eq_ignore_ascii_case(word.as_bytes()))
}

/// The events of `LMOVE`'s source and destination for the directions `from` and `to`.
fn moved(src: &Bytes, dst: &Bytes, from_left: bool, to_left: bool) -> EventSpec {
    let pop = if from_left { "lpop" } else { "rpop" };
    let push = if to_left { "lpush" } else { "rpush" };
    EventSpec {
        all: None,
        by_key: vec![
            (src.clone(), keep(N::LIST, pop)),
            (dst.clone(), keep(N::LIST, push)),
        ],
        other_db: None,
    }
}

/// The direction word after `numkeys` keys (`LMPOP 2 a b LEFT`), starting at `numkeys_at`.
fn after_keys(req: &[Bytes], numkeys_at: usize) -> Option<&Bytes> {
    let n: usize = std::str::from_utf8(req.get(numkeys_at)?)
        .ok()?
        .parse()
        .ok()?;
    req.get(numkeys_at + 1 + n)
}

/// The events of the write command `spec` run as `req`.
pub fn spec_for(spec: &CommandSpec, req: &[Bytes]) -> EventSpec {
    use EventSpec as S;
    let arg = |i: usize| req.get(i);
    let all = |k: KeyEvents| S::all(k);
    match spec.name {
        "SET" => {
            let expires = req[3..].iter().any(|a| {
                ["EX", "PX", "EXAT", "PXAT"]
                    .iter()
                    .any(|w| a.eq_ignore_ascii_case(w.as_bytes()))
            });
            let mut events = vec![ev(N::STRING, "set")];
            if expires {
                events.push(ev(N::GENERIC, "expire"));
            }
            all(KeyEvents::new(events, WhenGone::Same))
        }
        "SETEX" | "PSETEX" => all(KeyEvents::new(
            vec![ev(N::STRING, "set"), ev(N::GENERIC, "expire")],
            WhenGone::Same,
        )),
        "SETNX" | "MSET" | "MSETNX" | "GETSET" => all(same(N::STRING, "set")),
        "APPEND" => all(same(N::STRING, "append")),
        "SETRANGE" => all(same(N::STRING, "setrange")),
        "SETBIT" => all(same(N::STRING, "setbit")),
        "INCR" | "DECR" | "INCRBY" | "DECRBY" => all(same(N::STRING, "incrby")),
        "INCRBYFLOAT" => all(same(N::STRING, "incrbyfloat")),
        "GETDEL" | "DEL" | "UNLINK" => all(same(N::GENERIC, "del")),
        "GETEX" => {
            if req[2..].iter().any(|a| a.eq_ignore_ascii_case(b"PERSIST")) {
                all(same(N::GENERIC, "persist"))
            } else {
                all(store(N::GENERIC, "expire"))
            }
        }
        "EXPIRE" | "PEXPIRE" | "EXPIREAT" | "PEXPIREAT" => all(store(N::GENERIC, "expire")),
        "PERSIST" => all(same(N::GENERIC, "persist")),
        "RENAME" | "RENAMENX" => S {
            all: None,
            by_key: vec![
                (req[1].clone(), same(N::GENERIC, "rename_from")),
                (req[2].clone(), same(N::GENERIC, "rename_to")),
            ],
            other_db: None,
        },
        "COPY" => S {
            all: None,
            by_key: vec![(req[2].clone(), same(N::GENERIC, "copy_to"))],
            other_db: Some(same(N::GENERIC, "copy_to")),
        },
        "MOVE" => S {
            all: None,
            by_key: vec![(req[1].clone(), same(N::GENERIC, "move_from"))],
            other_db: Some(same(N::GENERIC, "move_to")),
        },
        "SORT" => all(store(N::LIST, "sortstore")),
        "LPUSH" | "LPUSHX" => all(same(N::LIST, "lpush")),
        "RPUSH" | "RPUSHX" => all(same(N::LIST, "rpush")),
        "LINSERT" => all(same(N::LIST, "linsert")),
        "LSET" => all(same(N::LIST, "lset")),
        "LREM" => all(keep(N::LIST, "lrem")),
        "LTRIM" => all(keep(N::LIST, "ltrim")),
        "LPOP" | "BLPOP" => all(keep(N::LIST, "lpop")),
        "RPOP" | "BRPOP" => all(keep(N::LIST, "rpop")),
        "LMPOP" | "BLMPOP" => {
            let at = if spec.name == "LMPOP" { 1 } else { 2 };
            if is(after_keys(req, at), "LEFT") {
                all(keep(N::LIST, "lpop"))
            } else {
                all(keep(N::LIST, "rpop"))
            }
        }
        "LMOVE" | "BLMOVE" => moved(&req[1], &req[2], is(arg(3), "LEFT"), is(arg(4), "LEFT")),
        "RPOPLPUSH" | "BRPOPLPUSH" => moved(&req[1], &req[2], false, true),
        "HSET" | "HMSET" | "HSETNX" => all(same(N::HASH, "hset")),
        "HDEL" => all(keep(N::HASH, "hdel")),
        "HINCRBY" => all(same(N::HASH, "hincrby")),
        "HINCRBYFLOAT" => all(same(N::HASH, "hincrbyfloat")),
        "SADD" => all(same(N::SET, "sadd")),
        "SREM" => all(keep(N::SET, "srem")),
        "SPOP" => all(keep(N::SET, "spop")),
        "SMOVE" => S {
            all: None,
            by_key: vec![
                (req[1].clone(), keep(N::SET, "srem")),
                (req[2].clone(), same(N::SET, "sadd")),
            ],
            other_db: None,
        },
        "SINTERSTORE" => all(store(N::SET, "sinterstore")),
        "SUNIONSTORE" => all(store(N::SET, "sunionstore")),
        "SDIFFSTORE" => all(store(N::SET, "sdiffstore")),
        "ZADD" => {
            let options = req[2..].iter().take_while(|a| {
                ["NX", "XX", "GT", "LT", "CH", "INCR"]
                    .iter()
                    .any(|w| a.eq_ignore_ascii_case(w.as_bytes()))
            });
            if options.into_iter().any(|a| a.eq_ignore_ascii_case(b"INCR")) {
                all(same(N::ZSET, "zincr"))
            } else {
                all(same(N::ZSET, "zadd"))
            }
        }
        "ZINCRBY" => all(same(N::ZSET, "zincr")),
        "ZREM" => all(keep(N::ZSET, "zrem")),
        "ZREMRANGEBYSCORE" => all(keep(N::ZSET, "zremrangebyscore")),
        "ZREMRANGEBYRANK" => all(keep(N::ZSET, "zremrangebyrank")),
        "ZREMRANGEBYLEX" => all(keep(N::ZSET, "zremrangebylex")),
        "ZPOPMIN" | "BZPOPMIN" => all(keep(N::ZSET, "zpopmin")),
        "ZPOPMAX" | "BZPOPMAX" => all(keep(N::ZSET, "zpopmax")),
        "ZMPOP" | "BZMPOP" => {
            let at = if spec.name == "ZMPOP" { 1 } else { 2 };
            if is(after_keys(req, at), "MIN") {
                all(keep(N::ZSET, "zpopmin"))
            } else {
                all(keep(N::ZSET, "zpopmax"))
            }
        }
        "ZUNIONSTORE" => all(store(N::ZSET, "zunionstore")),
        "ZINTERSTORE" => all(store(N::ZSET, "zinterstore")),
        "ZDIFFSTORE" => all(store(N::ZSET, "zdiffstore")),
        "ZRANGESTORE" => all(store(N::ZSET, "zrangestore")),
        // Whole-keyspace commands publish nothing per key (as in Redis); scripts and
        // transactions publish through the commands they run.
        "FLUSHDB" | "FLUSHALL" | "EVAL" | "EVALSHA" | "FCALL" | "EXEC" => S::default(),
        // Stream commands publish their own events, which depend on what they did (a trim,
        // a consumer created on the way): see `cmd::streams::notify`.
        _ if spec.group == "stream" => S::default(),
        name if spec.group == "rate_limit" => all(KeyEvents::new(
            vec![Ev {
                class: N::MODULE,
                name: name.to_ascii_lowercase().into(),
            }],
            WhenGone::Same,
        )),
        name => all(KeyEvents::new(
            vec![Ev {
                class: N::GENERIC,
                name: name.to_ascii_lowercase().into(),
            }],
            WhenGone::Same,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_of(words: &[&str]) -> EventSpec {
        let req: Vec<Bytes> = words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect();
        let spec = super::super::lookup(&req[0]).expect("known command");
        spec_for(spec, &req)
    }

    fn names(k: &KeyEvents) -> Vec<&str> {
        k.events.iter().map(|e| e.name.as_ref()).collect()
    }

    #[test]
    fn set_with_an_expiry_also_publishes_expire() {
        let s = spec_of(&["SET", "k", "v", "EX", "10"]);
        assert_eq!(names(s.all.as_ref().unwrap()), ["set", "expire"]);
        let s = spec_of(&["SET", "k", "v", "KEEPTTL"]);
        assert_eq!(names(s.all.as_ref().unwrap()), ["set"]);
    }

    #[test]
    fn moves_name_each_end() {
        let s = spec_of(&["LMOVE", "a", "b", "LEFT", "RIGHT"]);
        assert_eq!(names(&s.by_key[0].1), ["lpop"]);
        assert_eq!(names(&s.by_key[1].1), ["rpush"]);
        let s = spec_of(&["BLMPOP", "0", "2", "a", "b", "LEFT"]);
        assert_eq!(names(s.all.as_ref().unwrap()), ["lpop"]);
        let s = spec_of(&["ZMPOP", "1", "z", "MAX"]);
        assert_eq!(names(s.all.as_ref().unwrap()), ["zpopmax"]);
    }

    #[test]
    fn zadd_incr_is_zincr_but_a_member_named_incr_is_not() {
        let s = spec_of(&["ZADD", "z", "XX", "INCR", "1", "m"]);
        assert_eq!(names(s.all.as_ref().unwrap()), ["zincr"]);
        let s = spec_of(&["ZADD", "z", "1", "incr"]);
        assert_eq!(names(s.all.as_ref().unwrap()), ["zadd"]);
    }

    #[test]
    fn limiter_commands_are_module_class_events() {
        let s = spec_of(&["CL.THROTTLE", "k", "1", "1", "1"]);
        let all = s.all.unwrap();
        assert_eq!(all.events[0].class, N::MODULE);
        assert_eq!(all.events[0].name, "cl.throttle");
    }
}
