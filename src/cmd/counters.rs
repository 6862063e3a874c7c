//! Counter commands: INCR, INCRBY, DECR, DECRBY and INCRBYFLOAT, with Redis's replies and
//! error texts. The value is an ordinary string key (see [`super::strings`]); integers are kept
//! as [`Value::Int`] and INCRBYFLOAT computes as Redis does, in [`LongDouble`].

use bytes::Bytes;

use super::args;
use super::flags::*;
use super::longdouble::LongDouble;
use super::{CommandSpec, Ctx, BASE};
use crate::error::CommandError;
use crate::protocol::Frame;
use crate::store::{Entry, Value};

/// Counter commands.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "INCR",
        arity: 2,
        flags: WRITE | DENYOOM | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "string",
        summary: "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.",
        args: "key:key",
        handler: |ctx, req| incr_by(ctx, &req[1], 1),
        ..BASE
    },
    CommandSpec {
        name: "DECR",
        arity: 2,
        flags: WRITE | DENYOOM | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "string",
        summary: "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.",
        args: "key:key",
        handler: |ctx, req| incr_by(ctx, &req[1], -1),
        ..BASE
    },
    CommandSpec {
        name: "INCRBY",
        arity: 3,
        flags: WRITE | DENYOOM | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "string",
        summary: "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist.",
        args: "key:key increment:integer",
        handler: |ctx, req| {
            let by = args::int(&req[2])?;
            incr_by(ctx, &req[1], by)
        },
        ..BASE
    },
    CommandSpec {
        name: "DECRBY",
        arity: 3,
        flags: WRITE | DENYOOM | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "string",
        summary: "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist.",
        args: "key:key decrement:integer",
        handler: |ctx, req| {
            let by = args::int(&req[2])?;
            let by = by
                .checked_neg()
                .ok_or_else(|| CommandError::other("decrement would overflow"))?;
            incr_by(ctx, &req[1], by)
        },
        ..BASE
    },
    CommandSpec {
        name: "INCRBYFLOAT",
        arity: 3,
        flags: WRITE | DENYOOM | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "string",
        summary: "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist.",
        since: "2.6.0",
        args: "key:key increment:double",
        handler: incr_by_float,
        ..BASE
    },
];

/// The integer INCR-style commands start from: 0 for an absent key; a string that is not an
/// integer and any other type are errors.
pub(super) fn current_int(e: Option<&Entry>) -> Result<i64, CommandError> {
    match e.map(|e| &e.value) {
        None => Ok(0),
        Some(Value::Int(n)) => Ok(*n),
        Some(Value::Str(b)) => args::parse_i64(b).ok_or(CommandError::NotAnInteger),
        Some(_) => Err(CommandError::WrongType),
    }
}

fn incr_by(ctx: &mut Ctx<'_>, key: &[u8], by: i64) -> Result<Frame, CommandError> {
    let now = ctx.now;
    ctx.with_shard(key, |s| {
        let mut next = 0;
        s.upsert(key, now, |e| {
            next = current_int(e)?
                .checked_add(by)
                .ok_or(CommandError::Overflow)?;
            Ok::<_, CommandError>(Value::Int(next))
        })?;
        Ok(Frame::Integer(next))
    })
}

fn incr_by_float(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    // Redis computes in x87 long doubles and stores `%.17Lf` without trailing zeros; see
    // [`LongDouble`]. The current value is read before the increment, as Redis does.
    let now = ctx.now;
    let key = &req[1];
    ctx.with_shard(key, |s| {
        let cur = match s.get_live(key, now).map(|e| &e.value) {
            None => LongDouble::from_i64(0),
            Some(Value::Int(n)) => LongDouble::from_i64(*n),
            Some(Value::Str(b)) => LongDouble::parse(b).ok_or(CommandError::NotAFloat)?,
            Some(_) => return Err(CommandError::WrongType),
        };
        let by = LongDouble::parse(&req[2]).ok_or(CommandError::NotAFloat)?;
        let next = cur.add(&by);
        if next.is_infinite() {
            return Err(CommandError::other(
                "increment would produce NaN or Infinity",
            ));
        }
        let text = Bytes::from(next.to_human());
        match s.get_mut(key, now) {
            Some(e) => e.value = Value::str(text.clone()),
            None => s.insert(key, Entry::new(Value::str(text.clone()))),
        }
        Ok(Frame::Bulk(text))
    })
}

#[cfg(test)]
mod tests {
    use crate::cmd::testing::*;
    use crate::protocol::Frame;

    #[test]
    fn counters() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["INCR", "c"]), int(1));
        assert_eq!(h.run(&["INCRBY", "c", "10"]), int(11));
        assert_eq!(h.run(&["DECRBY", "c", "20"]), int(-9));
        assert_eq!(h.run(&["GET", "c"]), bulk("-9"));
        assert_eq!(h.run(&["SET", "c", "9223372036854775807"]), Frame::OK);
        assert_eq!(
            h.run(&["INCR", "c"]),
            err("ERR increment or decrement would overflow")
        );
        assert_eq!(h.run(&["SET", "s", "abc"]), Frame::OK);
        assert_eq!(
            h.run(&["INCR", "s"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(
            h.run(&["DECRBY", "c", "-9223372036854775808"]),
            err("ERR decrement would overflow")
        );
        assert_eq!(h.run(&["INCRBYFLOAT", "f", "1.5"]), bulk("1.5"));
        assert_eq!(h.run(&["INCRBYFLOAT", "f", "1.5"]), bulk("3"));
        h.run(&["SET", "f", "0.1"]);
        assert_eq!(h.run(&["INCRBYFLOAT", "f", "0.2"]), bulk("0.3"));
        h.run(&["SET", "f", "10.50"]);
        assert_eq!(h.run(&["INCRBYFLOAT", "f", "0.1"]), bulk("10.6"));
        assert_eq!(h.run(&["INCRBYFLOAT", "f", "-10.6"]), bulk("0"));
        assert_eq!(h.run(&["INCRBYFLOAT", "f", "5.0e3"]), bulk("5000"));
        assert_eq!(
            h.run(&["INCRBYFLOAT", "g", "1e20"]),
            bulk("100000000000000000000")
        );
        assert_eq!(
            h.run(&["INCRBYFLOAT", "g", "abc"]),
            err("ERR value is not a valid float")
        );
        assert_eq!(
            h.run(&["INCRBYFLOAT", "g", "inf"]),
            err("ERR increment would produce NaN or Infinity")
        );
    }

    #[test]
    fn incr_keeps_ttl() {
        let mut h = Harness::new();
        h.run(&["SET", "c", "1", "EX", "10"]);
        h.run(&["INCR", "c"]);
        assert_eq!(h.run(&["TTL", "c"]), int(10));
    }
}
