//! Key commands kept apart from `keys.rs`: `MOVE key db`, which moves a key (value and expiry)
//! to another database, and `TOUCH`, with Redis 7.0's replies and errors.
//!
//! The two databases have separate locks, and taking a second database's lock while holding
//! one could deadlock against a `MOVE` the other way, so the move is three locked steps: check
//! the target, take the key out of the source, put it into the target unless a key of that
//! name appeared there meanwhile (then it goes back to the source and the reply is 0). Each
//! step is journaled like any change. Inside `MULTI` (whose locks cover the selected database
//! only) `MOVE` is refused before it changes anything.

use bytes::Bytes;

use super::args;
use super::flags::*;
use super::{CommandSpec, Ctx, BASE};
use crate::error::CommandError;
use crate::protocol::Frame;

/// `MOVE`, `TOUCH`.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "TOUCH",
        arity: -2,
        flags: READONLY | FAST,
        first_key: 1,
        last_key: -1,
        key_step: 1,
        group: "generic",
        summary: "Returns the number of existing keys out of those specified after updating the time they were last accessed.",
        since: "3.2.1",
        complexity: "O(N) where N is the number of keys that will be touched.",
        args: "key:key...",
        handler: touch,
        ..BASE
    },
    CommandSpec {
        name: "MOVE",
        arity: 3,
        flags: WRITE | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "generic",
        summary: "Moves a key to another database.",
        since: "1.0.0",
        complexity: "O(1)",
        args: "key:key db:integer",
        handler: move_key,
        ..BASE
    },
];

/// `TOUCH key [key ...]`: the number of the keys that exist (a key named twice counts twice).
/// limitkv keeps no access times (`OBJECT IDLETIME` is 0), so touching changes nothing else;
/// an expired key found is removed, as any access does.
fn touch(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let now = ctx.now;
    let mut n = 0;
    for key in &req[1..] {
        n += i64::from(ctx.with_shard(key, |s| s.get_live(key, now).is_some()));
    }
    Ok(Frame::Integer(n))
}

fn move_key(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    if ctx.shared.cluster.is_enabled() {
        return Err(CommandError::other("MOVE is not allowed in cluster mode"));
    }
    let n = args::int(&req[2])?;
    if i32::try_from(n).is_err() {
        return Err(CommandError::NotAnInteger);
    }
    let db = usize::try_from(n)
        .ok()
        .filter(|&n| n < ctx.shared.engine.dbs.len())
        .ok_or_else(|| CommandError::other("DB index is out of range"))?;
    if db == ctx.session.db {
        return Err(CommandError::other(
            "source and destination objects are the same",
        ));
    }
    let now = ctx.now;
    let key = &req[1];
    let taken = ctx
        .with_shard_in(db, key, |s| s.get_live(key, now).is_some())
        .ok_or_else(|| CommandError::other("MOVE is not supported inside MULTI"))?;
    if taken {
        return Ok(Frame::Integer(0));
    }
    let Some(entry) = ctx.with_shard(key, |s| s.remove(key, now)) else {
        return Ok(Frame::Integer(0));
    };
    let put = ctx.with_shard_in(db, key, |s| {
        if s.get_live(key, now).is_some() {
            return Some(entry);
        }
        s.insert(key, entry);
        None
    });
    match put {
        Some(None) => Ok(Frame::Integer(1)),
        Some(Some(back)) => {
            // Someone created the key in the target meanwhile: Redis would have answered 0.
            ctx.with_shard(key, |s| {
                if s.get_live(key, now).is_none() {
                    s.insert(key, back);
                }
            });
            Ok(Frame::Integer(0))
        }
        None => unreachable!("invariant: outside MULTI, with_shard_in always runs"),
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::testing::*;

    #[test]
    fn touch_counts_existing_keys() {
        let mut h = Harness::new();
        h.run(&["SET", "a", "1"]);
        h.run(&["SET", "b", "1"]);
        assert_eq!(h.run(&["TOUCH", "a", "b", "c", "a"]), int(3));
        assert_eq!(h.run(&["TOUCH", "c"]), int(0));
    }

    #[test]
    fn move_carries_value_and_expiry_and_refuses_as_redis() {
        let mut h = Harness::new();
        h.run(&["SET", "k", "v", "EX", "100"]);
        assert_eq!(h.run(&["MOVE", "k", "1"]), int(1));
        assert_eq!(h.run(&["EXISTS", "k"]), int(0));
        assert_eq!(h.run(&["MOVE", "k", "1"]), int(0), "gone from the source");
        h.run(&["SELECT", "1"]);
        assert_eq!(h.run(&["GET", "k"]), bulk("v"));
        assert_eq!(h.run(&["TTL", "k"]), int(100));
        h.run(&["SELECT", "0"]);
        h.run(&["SET", "k", "other"]);
        assert_eq!(h.run(&["MOVE", "k", "1"]), int(0), "the target has the key");
        assert_eq!(h.run(&["GET", "k"]), bulk("other"));
        assert_eq!(
            h.run(&["MOVE", "k", "notanumber"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(
            h.run(&["MOVE", "k", "16"]),
            err("ERR DB index is out of range")
        );
        assert_eq!(
            h.run(&["MOVE", "k", "0"]),
            err("ERR source and destination objects are the same")
        );
        h.run(&["SET", "p", "1"]);
        assert_eq!(h.run(&["MOVE", "p", "2"]), int(1));
        h.run(&["SELECT", "2"]);
        assert_eq!(h.run(&["TTL", "p"]), int(-1), "no expiry is created");
    }
}
