//! `OBJECT ENCODING | REFCOUNT | IDLETIME | FREQ | HELP`: Redis's object introspection, as
//! compatibility answers.
//!
//! limitkv stores each kind one way whatever its size, so `ENCODING` names the encoding Redis
//! 7.0 would report for the value's kind and size under the configured thresholds
//! (`hash-max-listpack-entries`, `set-max-intset-entries`, ...; see
//! [`crate::config::EncodingLimits`]). Values are not shared, so `REFCOUNT` is 1, except for
//! the small integers Redis shares; access times are not tracked, so `IDLETIME` is 0; `FREQ`
//! answers Redis's error for a server without an LFU policy (limitkv's policy is fixed at
//! `noeviction`).

use bytes::Bytes;

use super::flags::*;
use super::{dispatch_sub, help_reply, CommandSpec, Ctx, BASE, HELP_SUBCOMMAND};
use crate::config::EncodingLimits;
use crate::error::CommandError;
use crate::protocol::Frame;
use crate::store::Value;

/// The `OBJECT` container.
pub const COMMANDS: &[CommandSpec] = &[CommandSpec {
    name: "OBJECT",
    arity: -2,
    // KEYSPACE (internal): the container has no key positions of its own, so EXEC locks every
    // shard for it.
    flags: KEYSPACE,
    summary: "A container for object introspection commands",
    since: "2.2.3",
    complexity: "Depends on subcommand.",
    subcommands: SUBCOMMANDS,
    handler: dispatch_sub,
    ..BASE
}];

const SUB: CommandSpec = CommandSpec {
    arity: 3,
    flags: READONLY,
    first_key: 2,
    last_key: 2,
    key_step: 1,
    since: "2.2.3",
    args: "key:key",
    ..BASE
};

const SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "ENCODING",
        summary: "Inspect the internal encoding of a Redis object",
        handler: |ctx, req| inspect(ctx, req, Info::Encoding),
        ..SUB
    },
    CommandSpec {
        name: "REFCOUNT",
        summary: "Get the number of references to the value of the key",
        handler: |ctx, req| inspect(ctx, req, Info::Refcount),
        ..SUB
    },
    CommandSpec {
        name: "IDLETIME",
        summary: "Get the time since a Redis object was last accessed",
        handler: |ctx, req| inspect(ctx, req, Info::Idletime),
        ..SUB
    },
    CommandSpec {
        name: "FREQ",
        summary: "Get the logarithmic access frequency counter of a Redis object",
        since: "4.0.0",
        handler: |ctx, req| inspect(ctx, req, Info::Freq),
        ..SUB
    },
    CommandSpec {
        handler: |_, _| Ok(help_lines_for_object()),
        ..HELP_SUBCOMMAND
    },
];

fn help_lines_for_object() -> Frame {
    help_reply(
        "OBJECT",
        &[
            "ENCODING <key>",
            "    Return the kind of internal representation used in order to store the value",
            "    associated with a <key>.",
            "FREQ <key>",
            "    Return the access frequency index of the <key>. The returned integer is",
            "    proportional to the logarithm of the recent access frequency of the key.",
            "IDLETIME <key>",
            "    Return the idle time of the <key>, that is the approximated number of",
            "    seconds elapsed since the last access to the key.",
            "REFCOUNT <key>",
            "    Return the number of references of the value associated with the specified",
            "    <key>.",
        ],
    )
}

#[derive(Clone, Copy)]
enum Info {
    Encoding,
    Refcount,
    Idletime,
    Freq,
}

/// Redis shares the integers 0..10000 (`OBJ_SHARED_INTEGERS`) and reports their refcount as
/// `OBJ_SHARED_REFCOUNT`.
const SHARED_INTEGERS: i64 = 10_000;
const SHARED_REFCOUNT: i64 = i32::MAX as i64;

/// The integer a string would be stored as (Redis's `tryObjectEncoding`: at most 20 bytes,
/// read by `string2l`).
fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(n) => Some(*n),
        Value::Str(b) if b.len() <= 20 => super::args::parse_i64(b),
        _ => None,
    }
}

/// The encoding Redis 7.0 would report for `v` under `limits`.
pub fn encoding(v: &Value, limits: &EncodingLimits) -> &'static str {
    let small = |n: usize, key: &str| i64::try_from(n).is_ok_and(|n| n <= limits.limit(key));
    match v {
        Value::Str(_) | Value::Int(_) if as_int(v).is_some() => "int",
        Value::Str(b) if b.len() <= 44 => "embstr",
        Value::Str(_) => "raw",
        Value::List(_) => "quicklist",
        Value::Hash(h) => {
            let fits = h.iter().all(|(f, x)| {
                small(f.len(), "hash-max-listpack-value")
                    && small(x.len(), "hash-max-listpack-value")
            });
            if fits && small(h.len(), "hash-max-listpack-entries") {
                "listpack"
            } else {
                "hashtable"
            }
        }
        Value::Set(s) => {
            let ints = s.iter().all(|m| super::args::parse_i64(m).is_some());
            if ints && small(s.len(), "set-max-intset-entries") {
                "intset"
            } else {
                "hashtable"
            }
        }
        Value::ZSet(z) => {
            let fits = z
                .iter()
                .all(|(m, _)| small(m.len(), "zset-max-listpack-value"));
            if fits && small(z.len(), "zset-max-listpack-entries") {
                "listpack"
            } else {
                "skiplist"
            }
        }
        // limitkv's own kinds have no Redis encoding: their type name stands for it.
        other => other.type_name(),
    }
}

fn inspect(ctx: &mut Ctx<'_>, req: &[Bytes], what: Info) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let key = &req[2];
    let limits = ctx.shared.engine.config.read().encoding.clone();
    let found = ctx.with_shard(key, |s| {
        s.get_live(key, now).map(|e| match what {
            Info::Encoding => Frame::bulk(encoding(&e.value, &limits)),
            Info::Refcount => Frame::Integer(match as_int(&e.value) {
                Some(n) if (0..SHARED_INTEGERS).contains(&n) => SHARED_REFCOUNT,
                _ => 1,
            }),
            Info::Idletime => Frame::Integer(0),
            Info::Freq => Frame::error(
                "ERR An LFU maxmemory policy is not selected, access frequency not tracked. \
                 Please note that when switching between policies at runtime LRU and LFU data \
                 will take some time to adjust.",
            ),
        })
    });
    match found {
        Some(Frame::Error(e)) => Err(CommandError::Coded(String::from_utf8_lossy(&e).into())),
        Some(f) => Ok(f),
        None => Ok(Frame::Null),
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::testing::*;
    use crate::protocol::Frame;

    #[test]
    fn encoding_follows_redis_for_kind_and_size() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["OBJECT", "ENCODING", "none"]), Frame::Null);
        let long = "x".repeat(45);
        for (value, want) in [
            ("12345", "int"),
            ("-1", "int"),
            ("012", "embstr"),
            ("hello", "embstr"),
            (long.as_str(), "raw"),
        ] {
            h.run(&["SET", "s", value]);
            assert_eq!(h.run(&["OBJECT", "ENCODING", "s"]), bulk(want), "{value}");
        }
        h.run(&["RPUSH", "l", "a"]);
        assert_eq!(h.run(&["OBJECT", "ENCODING", "l"]), bulk("quicklist"));
        h.run(&["HSET", "h", "f", "v"]);
        assert_eq!(h.run(&["OBJECT", "ENCODING", "h"]), bulk("listpack"));
        h.run(&["HSET", "h", "g", &long]);
        assert_eq!(h.run(&["OBJECT", "ENCODING", "h"]), bulk("listpack"));
        h.run(&["CONFIG", "SET", "hash-max-ziplist-value", "10"]);
        assert_eq!(h.run(&["OBJECT", "ENCODING", "h"]), bulk("hashtable"));
        h.run(&["SADD", "set", "1", "2"]);
        assert_eq!(h.run(&["OBJECT", "ENCODING", "set"]), bulk("intset"));
        h.run(&["CONFIG", "SET", "set-max-intset-entries", "1"]);
        assert_eq!(h.run(&["OBJECT", "ENCODING", "set"]), bulk("hashtable"));
        h.run(&["SADD", "set2", "a"]);
        assert_eq!(h.run(&["OBJECT", "ENCODING", "set2"]), bulk("hashtable"));
        h.run(&["ZADD", "z", "1", "a"]);
        assert_eq!(h.run(&["OBJECT", "ENCODING", "z"]), bulk("listpack"));
        h.run(&["CONFIG", "SET", "zset-max-listpack-entries", "0"]);
        assert_eq!(h.run(&["OBJECT", "ENCODING", "z"]), bulk("skiplist"));
        h.run(&["CL.THROTTLE", "g", "1", "1", "1"]);
        assert_eq!(h.run(&["OBJECT", "ENCODING", "g"]), bulk("gcra"));
    }

    #[test]
    fn refcount_idletime_freq_and_help() {
        let mut h = Harness::new();
        h.run(&["SET", "small", "100"]);
        h.run(&["SET", "big", "100000"]);
        h.run(&["SET", "text", "abc"]);
        assert_eq!(h.run(&["OBJECT", "REFCOUNT", "small"]), int(2147483647));
        assert_eq!(h.run(&["OBJECT", "REFCOUNT", "big"]), int(1));
        assert_eq!(h.run(&["OBJECT", "REFCOUNT", "text"]), int(1));
        assert_eq!(h.run(&["OBJECT", "REFCOUNT", "none"]), Frame::Null);
        assert_eq!(h.run(&["OBJECT", "IDLETIME", "text"]), int(0));
        assert_eq!(h.run(&["OBJECT", "IDLETIME", "none"]), Frame::Null);
        assert_eq!(
            h.run(&["OBJECT", "FREQ", "text"]),
            err("ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.")
        );
        assert_eq!(h.run(&["OBJECT", "FREQ", "none"]), Frame::Null);
        let Frame::Array(help) = h.run(&["OBJECT", "HELP"]) else {
            panic!("HELP answers lines")
        };
        assert_eq!(help.len(), 15);
        assert_eq!(
            h.run(&["OBJECT", "NOPE", "k"]),
            err("ERR unknown subcommand 'NOPE'. Try OBJECT HELP.")
        );
        assert_eq!(
            h.run(&["OBJECT", "ENCODING"]),
            err("ERR wrong number of arguments for 'object|encoding' command")
        );
        h.run(&["MULTI"]);
        h.run(&["OBJECT", "ENCODING", "text"]);
        assert_eq!(h.run(&["EXEC"]), Frame::Array(vec![bulk("embstr")]));
    }

    #[test]
    fn encoding_thresholds_are_config_parameters() {
        let mut h = Harness::new();
        let get = |h: &mut Harness, name: &str| h.run(&["CONFIG", "GET", name]);
        let pair = |name: &str, v: &str| Frame::Map(vec![(bulk(name), bulk(v))]);
        for (name, default) in [
            ("set-max-intset-entries", "512"),
            ("set-max-listpack-entries", "128"),
            ("set-max-listpack-value", "64"),
            ("zset-max-ziplist-entries", "128"),
            ("zset-max-listpack-value", "64"),
            ("hash-max-listpack-entries", "512"),
            ("hash-max-ziplist-value", "64"),
            ("list-max-ziplist-size", "-2"),
            ("list-max-listpack-size", "-2"),
            ("list-compress-depth", "0"),
            ("stream-node-max-bytes", "4096"),
            ("stream-node-max-entries", "100"),
        ] {
            assert_eq!(get(&mut h, name), pair(name, default), "{name}");
        }
        assert_eq!(
            h.run(&[
                "CONFIG",
                "SET",
                "zset-max-ziplist-entries",
                "16",
                "hash-max-listpack-value",
                "1kb"
            ]),
            Frame::OK
        );
        assert_eq!(
            get(&mut h, "zset-max-listpack-entries"),
            pair("zset-max-listpack-entries", "16")
        );
        assert_eq!(
            get(&mut h, "hash-max-ziplist-value"),
            pair("hash-max-ziplist-value", "1024")
        );
        assert_eq!(
            h.run(&["CONFIG", "SET", "set-max-intset-entries", "-1"]),
            err("ERR CONFIG SET failed (possibly related to argument 'set-max-intset-entries') - argument must be between 0 and 9223372036854775807 inclusive")
        );
        assert_eq!(
            h.run(&["CONFIG", "SET", "list-max-ziplist-size", "x"]),
            err("ERR CONFIG SET failed (possibly related to argument 'list-max-ziplist-size') - argument couldn't be parsed into an integer")
        );
        assert_eq!(
            h.run(&["CONFIG", "SET", "stream-node-max-bytes", "lots"]),
            err("ERR CONFIG SET failed (possibly related to argument 'stream-node-max-bytes') - argument must be a memory value")
        );
    }
}
