//! GCRA commands: `CL.THROTTLE` (redis-cell's exact contract) and `GCRA` (the syntax of Redis's
//! own, unreleased GCRA command). Both parse their arguments into [`GcraParams`] and call
//! [`crate::engine::Call::throttle`] on the same key kind, so a bucket can be driven by either.

use bytes::Bytes;

use super::args::{self, is};
use super::flags::*;
use super::{CommandSpec, Ctx, BASE};
use crate::error::CommandError;
use crate::limiter::gcra::{self, GcraParams};
use crate::protocol::Frame;

/// GCRA commands.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "CL.THROTTLE",
        arity: -5,
        flags: WRITE | DENYOOM | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "rate_limit",
        summary: "Rate limits a key with GCRA, exactly as redis-cell: replies [limited, limit, remaining, retry_after_s, reset_after_s].",
        since: "0.1.0",
        args: "key:key max_burst:integer count_per_period:integer period:integer [quantity:integer]",
        handler: cl_throttle,
        ..BASE
    },
    CommandSpec {
        name: "GCRA",
        arity: -5,
        flags: WRITE | DENYOOM | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "rate_limit",
        summary: "Rate limits a key with GCRA using the syntax of Redis's GCRA command.",
        since: "0.1.0",
        args: "key:key max-burst:integer tokens-per-period:integer period:double [TOKENS count:integer]",
        handler: gcra_cmd,
        ..BASE
    },
];

fn five(reply: [i64; 5]) -> Frame {
    Frame::Array(reply.iter().map(|&n| Frame::Integer(n)).collect())
}

fn cl_throttle(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    if req.len() > 6 {
        return Err(CommandError::WrongArity("cl.throttle".into()));
    }
    let max_burst = args::int(&req[2])?;
    let count = args::int(&req[3])?;
    let period = args::int(&req[4])?;
    let quantity = match req.get(5) {
        None => 1,
        Some(q) => {
            let q = args::int(q)?;
            u64::try_from(q).map_err(|_| CommandError::out_of_range("quantity must be >= 0"))?
        }
    };
    let params = GcraParams::from_cell(max_burst, count, period)
        .map_err(|e| CommandError::out_of_range(e.to_string()))?;
    let d = ctx.call().throttle(&req[1], &params, quantity)?;
    Ok(five(gcra::cell_reply(&d, &params)))
}

fn range_error(min: i64) -> CommandError {
    CommandError::out_of_range(format!(
        "value is out of range, value must between {min} and {}",
        i64::MAX
    ))
}

fn gcra_cmd(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    if req.len() > 7 {
        return Err(CommandError::WrongArity("gcra".into()));
    }
    let max_burst = args::int(&req[2])?;
    if max_burst < 0 {
        return Err(CommandError::out_of_range(
            "value is out of range, must be positive",
        ));
    }
    let per_period = args::int(&req[3])?;
    if per_period < 1 {
        return Err(range_error(1));
    }
    let period = args::float(&req[4])?;
    if period <= 0.0 || period >= 1e12 {
        return Err(CommandError::other("period must be > 0 and < 1e12"));
    }
    let mut tokens = 1;
    if req.len() >= 6 {
        if !is(&req[5], "TOKENS") {
            return Err(CommandError::Syntax);
        }
        let Some(n) = req.get(6) else {
            return Err(CommandError::other("Missing TOKENS value"));
        };
        tokens = args::int(n)?;
        if tokens < 1 {
            return Err(range_error(1));
        }
    }
    let params = GcraParams::from_redis_gcra(max_burst, per_period, period)
        .map_err(|e| CommandError::out_of_range(e.to_string()))?;
    let d = ctx.call().throttle(&req[1], &params, tokens as u64)?;
    Ok(five(gcra::redis_gcra_reply(&d, &params)))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::cmd::testing::*;
    use crate::protocol::Frame;

    fn ints(v: &[i64]) -> Frame {
        Frame::Array(v.iter().map(|&n| int(n)).collect())
    }

    #[test]
    fn fresh_key_matches_redis_cell_contract() {
        let mut h = Harness::new();
        assert_eq!(
            h.run(&["CL.THROTTLE", "user123", "15", "30", "60"]),
            ints(&[0, 16, 15, -1, 2])
        );
        assert_eq!(
            h.run(&["cl.throttle", "user123", "15", "30", "60"]),
            ints(&[0, 16, 14, -1, 4])
        );
    }

    #[test]
    fn denies_when_burst_is_spent_and_recovers() {
        let mut h = Harness::new();
        for i in 0..5 {
            assert_eq!(
                h.run(&["CL.THROTTLE", "k", "4", "1", "1"]),
                ints(&[0, 5, 4 - i, -1, i + 1]),
                "take {i}"
            );
        }
        assert_eq!(
            h.run(&["CL.THROTTLE", "k", "4", "1", "1"]),
            ints(&[1, 5, 0, 1, 5])
        );
        h.clock.advance(Duration::from_secs(1));
        assert_eq!(
            h.run(&["CL.THROTTLE", "k", "4", "1", "1"]),
            ints(&[0, 5, 0, -1, 5])
        );
        h.clock.advance(Duration::from_secs(5));
        assert_eq!(h.run(&["EXISTS", "k"]), int(0), "a full bucket expires");
    }

    #[test]
    fn quantity_zero_peeks_without_writing() {
        let mut h = Harness::new();
        assert_eq!(
            h.run(&["CL.THROTTLE", "k", "4", "1", "1", "0"]),
            ints(&[0, 5, 5, -1, 0])
        );
        assert_eq!(h.run(&["EXISTS", "k"]), int(0));
    }

    #[test]
    fn bucket_ttl_is_its_reset_time() {
        let mut h = Harness::new();
        h.run(&["CL.THROTTLE", "k", "4", "1", "10"]);
        assert_eq!(h.run(&["PTTL", "k"]), int(10_000));
        assert_eq!(h.run(&["TYPE", "k"]), simple("gcra"));
    }

    #[test]
    fn denials_and_peeks_change_nothing() {
        let mut h = Harness::new();
        h.run(&["CL.THROTTLE", "k", "0", "1", "10"]);
        assert_eq!(h.session.stats.dirty, 1, "an admission is a change");
        h.run(&["CL.THROTTLE", "k", "0", "1", "10"]);
        h.run(&["CL.THROTTLE", "k", "0", "1", "10", "0"]);
        h.run(&["GCRA", "k", "0", "1", "10"]);
        assert_eq!(h.session.stats.dirty, 1, "denials and peeks are not");
    }

    #[test]
    fn bad_arguments_are_clear_errors() {
        let mut h = Harness::new();
        for (args, want) in [
            (
                vec!["x", "15", "30"],
                "ERR wrong number of arguments for 'cl.throttle' command",
            ),
            (
                vec!["x", "15", "30", "60", "1", "2"],
                "ERR wrong number of arguments for 'cl.throttle' command",
            ),
            (
                vec!["x", "a", "30", "60"],
                "ERR value is not an integer or out of range",
            ),
            (vec!["x", "-1", "30", "60"], "ERR max_burst must be >= 0"),
            (vec!["x", "15", "0", "60"], "ERR count must be > 0"),
            (vec!["x", "15", "-3", "60"], "ERR count must be > 0"),
            (vec!["x", "15", "30", "0"], "ERR period must be > 0"),
            (
                vec!["x", "15", "30", "60", "-1"],
                "ERR quantity must be >= 0",
            ),
            (
                vec!["x", "9223372036854775807", "1", "9223372036854775807"],
                "ERR rate parameters are out of range",
            ),
        ] {
            let mut words = vec!["CL.THROTTLE"];
            words.extend(args.iter());
            assert_eq!(h.run(&words), err(want), "{words:?}");
        }
        h.run(&["SET", "s", "v"]);
        assert_eq!(
            h.run(&["CL.THROTTLE", "s", "1", "1", "1"]),
            err("WRONGTYPE Operation against a key holding the wrong kind of value")
        );
        h.run(&["CL.THROTTLE", "g", "1", "1", "1"]);
        assert_eq!(
            h.run(&["GET", "g"]),
            err("WRONGTYPE Operation against a key holding the wrong kind of value")
        );
    }

    #[test]
    fn gcra_command_follows_redis_syntax() {
        let mut h = Harness::new();
        assert_eq!(
            h.run(&["GCRA", "k", "15", "30", "60"]),
            ints(&[0, 16, 15, -1, 2])
        );
        assert_eq!(
            h.run(&["GCRA", "k", "15", "30", "60", "TOKENS", "3"]),
            ints(&[0, 16, 12, -1, 8])
        );
        assert_eq!(
            h.run(&["GCRA", "f", "0", "2", "0.5"]),
            ints(&[0, 1, 0, -1, 1])
        );
        assert_eq!(
            h.run(&["GCRA", "f", "0", "2", "0.5"]),
            ints(&[1, 1, 0, 1, 1])
        );
        for (args, want) in [
            (
                vec!["k", "-1", "1", "1"],
                "ERR value is out of range, must be positive",
            ),
            (
                vec!["k", "1", "0", "1"],
                "ERR value is out of range, value must between 1 and 9223372036854775807",
            ),
            (vec!["k", "1", "1", "x"], "ERR value is not a valid float"),
            (
                vec!["k", "1", "1", "0"],
                "ERR period must be > 0 and < 1e12",
            ),
            (vec!["k", "1", "1", "1", "NOPE", "1"], "ERR syntax error"),
            (
                vec!["k", "1", "1", "1", "TOKENS"],
                "ERR Missing TOKENS value",
            ),
            (
                vec!["k", "1", "1", "1", "TOKENS", "0"],
                "ERR value is out of range, value must between 1 and 9223372036854775807",
            ),
        ] {
            let mut words = vec!["GCRA"];
            words.extend(args.iter());
            assert_eq!(h.run(&words), err(want), "{words:?}");
        }
    }

    #[test]
    fn cl_throttle_and_gcra_share_one_bucket() {
        let mut h = Harness::new();
        h.run(&["CL.THROTTLE", "k", "1", "1", "10"]);
        assert_eq!(
            h.run(&["GCRA", "k", "1", "1", "10"]),
            ints(&[0, 2, 0, -1, 20])
        );
        assert_eq!(
            h.run(&["GCRA", "k", "1", "1", "10"]),
            ints(&[1, 2, 0, 10, 20])
        );
    }
}
