//! RATE commands: `RATE.TAKE` and its read-only twin `RATE.PEEK`, the native,
//! millisecond-precise face of the GCRA engine ([`crate::limiter::rate`] over
//! [`crate::limiter::gcra`]).
//!
//! A RATE key is a GCRA bucket (`TYPE` reports `gcra`): `RATE.TAKE`, `CL.THROTTLE` and `GCRA`
//! read and write the same state, so one bucket can be driven by any of them. Owns only argument
//! parsing and the reply; the transition, WRONGTYPE checks and expiry are the engine's
//! ([`crate::engine::Call::rate`]). Never touches a socket.

use bytes::Bytes;

use super::args::{is, Args};
use super::flags::*;
use super::limiter::{self, decision_reply};
use super::{CommandSpec, Ctx, BASE};
use crate::engine::Take;
use crate::error::CommandError;
use crate::limiter::gcra::GcraParamError;
use crate::limiter::rate::RateParams;
use crate::protocol::Frame;

/// RATE commands.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "RATE.TAKE",
        arity: -3,
        flags: WRITE | DENYOOM | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "rate_limit",
        summary: "Takes COST units from a GCRA bucket refilled at rate N/duration, holding up to BURST; replies with millisecond retry and reset times.",
        since: "0.1.0",
        args: "key:key rate:string [BURST burst:integer] [COST cost:integer]",
        handler: rate_take,
        ..BASE
    },
    CommandSpec {
        name: "RATE.PEEK",
        arity: -3,
        flags: READONLY | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "rate_limit",
        summary: "Answers exactly what RATE.TAKE would answer now, without changing the bucket.",
        since: "0.1.0",
        args: "key:key rate:string [BURST burst:integer] [COST cost:integer]",
        handler: rate_peek,
        ..BASE
    },
];

/// A parsed `RATE.TAKE` / `RATE.PEEK` request.
#[derive(Debug)]
struct RateRequest<'a> {
    key: &'a [u8],
    params: RateParams,
    cost: u64,
}

/// Parses `key rate [BURST n] [COST n]`; the options come in any order, each at most once.
fn parse(req: &[Bytes]) -> Result<RateRequest<'_>, CommandError> {
    let rate_arg = &req[2];
    let rate = limiter::rate(rate_arg)?;
    let mut burst: Option<(&Bytes, u64)> = None;
    let mut cost = None;
    let mut opts = Args::new(req, 3);
    while let Some(opt) = opts.next() {
        if is(opt, "BURST") && burst.is_none() {
            let v = opts.value()?;
            burst = Some((v, limiter::count("BURST", v)?));
        } else if is(opt, "COST") && cost.is_none() {
            cost = Some(limiter::count("COST", opts.value()?)?);
        } else {
            return Err(CommandError::Syntax);
        }
    }
    let params = RateParams::new(rate, burst.map(|(_, n)| n)).map_err(|e| {
        // A zero burst is refused by `count`; a too-fine rate is the rate's fault; a tolerance
        // over the cap needs an explicit BURST (rate alone gives emission · N <= period).
        let (what, arg) = match (&e, burst) {
            (GcraParamError::ZeroEmission, _) | (_, None) => ("rate", rate_arg),
            (_, Some((v, _))) => ("BURST", v),
        };
        CommandError::other(format!("invalid {what} '{}': {e}", super::args::text(arg)))
    })?;
    Ok(RateRequest {
        key: &req[1],
        params,
        cost: cost.unwrap_or(1),
    })
}

/// Runs the GCRA transition in the engine; a take stores the new TAT, a peek throws it away.
fn execute(ctx: &mut Ctx<'_>, r: RateRequest<'_>, take: Take) -> Result<Frame, CommandError> {
    let d = ctx.call().rate(r.key, &r.params, r.cost, take)?;
    Ok(decision_reply(&d, []))
}

/// `RATE.TAKE`: admits `COST` units if the bucket holds them, and charges them.
///
/// ```text
/// RATE.TAKE key rate [BURST burst] [COST cost]
///   rate   N/duration, e.g. 100/1m or 5/s: N units per duration sustained
///   BURST  units a full bucket admits at once (the reported limit); default N
///   COST   units this request takes; default 1
/// ```
///
/// Reply: the uniform admission reply (`allowed`, `limit` = burst, `remaining`,
/// `retry_after_ms`, `reset_after_ms`), no extras. A denial is not an error; a cost above the
/// burst is denied with `retry_after_ms` -1 (it can never fit). An admitted take stores the
/// bucket with a TTL equal to `reset_after_ms` (the key vanishes once the bucket is full).
///
/// Errors: `ERR invalid rate '...': ...`, `ERR invalid BURST '...': ...`,
/// `ERR invalid COST '...': ...`, `ERR syntax error` (unknown or repeated option, missing value),
/// `WRONGTYPE` when the key holds anything but a GCRA bucket.
fn rate_take(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let r = parse(req)?;
    execute(ctx, r, Take::Charge)
}

/// `RATE.PEEK`: exactly the reply `RATE.TAKE` with the same arguments would give now, with
/// nothing written (no key created, no TTL touched).
///
/// ```text
/// RATE.PEEK key rate [BURST burst] [COST cost]
/// ```
///
/// Reply and errors: as `RATE.TAKE`.
fn rate_peek(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let r = parse(req)?;
    execute(ctx, r, Take::Peek)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::cmd::limiter::field;
    use crate::cmd::testing::*;
    use crate::protocol::Frame;

    /// The uniform reply with the given field values.
    fn reply(allowed: bool, limit: i64, remaining: i64, retry: i64, reset: i64) -> Frame {
        Frame::Map(vec![
            (field("allowed"), Frame::Boolean(allowed)),
            (field("limit"), int(limit)),
            (field("remaining"), int(remaining)),
            (field("retry_after_ms"), int(retry)),
            (field("reset_after_ms"), int(reset)),
        ])
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn take_on_a_fresh_key_admits_and_reports_millisecond_times() {
        let mut h = Harness::new();
        // 10/1s: burst 10, one unit per 100 ms.
        assert_eq!(
            h.run(&["RATE.TAKE", "k", "10/1s"]),
            reply(true, 10, 9, -1, 100)
        );
        assert_eq!(
            h.run(&["rate.take", "k", "10/1s", "cost", "3"]),
            reply(true, 10, 6, -1, 400),
            "cost 3, lowercase keyword"
        );
        assert_eq!(
            h.run(&["RATE.TAKE", "b", "10/1s", "BURST", "2", "COST", "2"]),
            reply(true, 2, 0, -1, 200),
            "burst 2"
        );
        assert_eq!(
            h.run(&["RATE.TAKE", "o", "10/1s", "COST", "2", "BURST", "3"]),
            reply(true, 3, 1, -1, 200),
            "options in any order"
        );
        assert_eq!(h.run(&["TYPE", "k"]), simple("gcra"));
    }

    #[test]
    fn sub_second_rates_are_exact_to_the_millisecond() {
        let mut h = Harness::new();
        // 3/1s: emission 333.333333 ms, rounded up on the wire.
        assert_eq!(
            h.run(&["RATE.TAKE", "k", "3/1s", "BURST", "1"]),
            reply(true, 1, 0, -1, 334)
        );
        assert_eq!(
            h.run(&["RATE.TAKE", "k", "3/1s", "BURST", "1"]),
            reply(false, 1, 0, 334, 334)
        );
        h.clock.advance(ms(333));
        assert_eq!(
            h.run(&["RATE.TAKE", "k", "3/1s", "BURST", "1"]),
            reply(false, 1, 0, 1, 1),
            "333 ms: 333 µs short"
        );
        h.clock.advance(ms(1));
        assert_eq!(
            h.run(&["RATE.TAKE", "k", "3/1s", "BURST", "1"]),
            reply(true, 1, 0, -1, 334),
            "334 ms: admitted"
        );
    }

    #[test]
    fn denies_when_burst_is_spent_with_exact_retry_after() {
        let mut h = Harness::new();
        for i in 0..5 {
            assert_eq!(
                h.run(&["RATE.TAKE", "k", "5/1s"]),
                reply(true, 5, 4 - i, -1, 200 * (i + 1)),
                "take {i}"
            );
        }
        assert_eq!(
            h.run(&["RATE.TAKE", "k", "5/1s"]),
            reply(false, 5, 0, 200, 1000),
            "spent"
        );
        assert_eq!(
            h.run(&["RATE.TAKE", "k", "5/1s", "COST", "3"]),
            reply(false, 5, 0, 600, 1000),
            "cost 3 waits three emissions"
        );
        h.clock.advance(ms(199));
        assert_eq!(
            h.run(&["RATE.TAKE", "k", "5/1s"]),
            reply(false, 5, 0, 1, 801),
            "1 ms before retry_after"
        );
        h.clock.advance(ms(1));
        assert_eq!(
            h.run(&["RATE.TAKE", "k", "5/1s"]),
            reply(true, 5, 0, -1, 1000),
            "at retry_after"
        );
        assert_eq!(
            h.run(&["RATE.TAKE", "k", "5/1s", "COST", "6"]),
            reply(false, 5, 0, -1, 1000),
            "a cost over the burst never fits"
        );
    }

    #[test]
    fn takes_and_denials_are_counted_in_stats_but_peeks_are_not() {
        let mut h = Harness::new();
        h.run(&["RATE.TAKE", "k", "1/1s"]);
        h.run(&["RATE.TAKE", "k", "1/1s"]);
        h.run(&["RATE.PEEK", "k", "1/1s"]);
        let s = &h.session.stats;
        assert_eq!((s.allowed, s.denied), (1, 1));
    }

    #[test]
    fn peek_answers_what_take_would_and_changes_nothing() {
        let mut h = Harness::new();
        assert_eq!(
            h.run(&["RATE.PEEK", "k", "10/1s", "COST", "4"]),
            reply(true, 10, 6, -1, 400),
            "peek on a fresh key"
        );
        assert_eq!(h.run(&["EXISTS", "k"]), int(0), "a peek creates no key");
        h.run(&["RATE.TAKE", "k", "10/1s", "COST", "9"]);
        h.clock.advance(ms(50));
        let pttl = h.run(&["PTTL", "k"]);
        assert_eq!(pttl, int(850));
        let peek = h.run(&["RATE.PEEK", "k", "10/1s", "COST", "2"]);
        assert_eq!(peek, reply(false, 10, 1, 50, 850), "denied peek");
        let peek = h.run(&["RATE.PEEK", "k", "10/1s"]);
        assert_eq!(peek, reply(true, 10, 0, -1, 950), "allowed peek");
        assert_eq!(h.run(&["RATE.PEEK", "k", "10/1s"]), peek, "a second peek");
        assert_eq!(h.run(&["PTTL", "k"]), pttl, "TTL untouched");
        assert_eq!(h.run(&["TYPE", "k"]), simple("gcra"));
        assert_eq!(
            h.run(&["RATE.TAKE", "k", "10/1s"]),
            peek,
            "the take answers what the peek said"
        );
    }

    #[test]
    fn key_expires_exactly_when_the_bucket_is_full_again() {
        let mut h = Harness::new();
        assert_eq!(
            h.run(&["RATE.TAKE", "k", "100/1m", "COST", "3"]),
            reply(true, 100, 97, -1, 1800)
        );
        assert_eq!(h.run(&["PTTL", "k"]), int(1800), "PTTL is reset_after_ms");
        h.clock.advance(ms(1799));
        assert_eq!(h.run(&["EXISTS", "k"]), int(1), "1 ms before full");
        h.clock.advance(ms(1));
        assert_eq!(h.run(&["EXISTS", "k"]), int(0), "full: gone");
        assert_eq!(
            h.run(&["RATE.PEEK", "k", "100/1m"]),
            reply(true, 100, 99, -1, 600),
            "fresh again"
        );
    }

    #[test]
    fn shares_its_bucket_with_cl_throttle() {
        let mut h = Harness::new();
        // CL.THROTTLE k 4 1 1 is burst 5, 1/s.
        h.run(&["CL.THROTTLE", "k", "4", "1", "1", "3"]);
        assert_eq!(
            h.run(&["RATE.TAKE", "k", "1/1s", "BURST", "5"]),
            reply(true, 5, 1, -1, 4000)
        );
        assert_eq!(
            h.run(&["CL.THROTTLE", "k", "4", "1", "1"]),
            Frame::Array([0, 5, 0, -1, 5].into_iter().map(int).collect())
        );
        assert_eq!(
            h.run(&["RATE.PEEK", "k", "1/1s", "BURST", "5"]),
            reply(false, 5, 0, 1000, 5000)
        );
    }

    #[test]
    fn bad_arguments_are_clear_errors() {
        let mut h = Harness::new();
        // (label, arguments after the name, error)
        let cases: &[(&str, &[&str], &str)] = &[
            (
                "no rate",
                &["k"],
                "ERR wrong number of arguments for 'rate.take' command",
            ),
            (
                "unknown unit",
                &["k", "100/1x"],
                "ERR invalid rate '100/1x': unknown duration unit 'x' (use ms, s, m, h or d)",
            ),
            (
                "not a rate",
                &["k", "100"],
                "ERR invalid rate '100': rate must look like N/duration, e.g. 100/1m",
            ),
            (
                "zero count",
                &["k", "0/1s"],
                "ERR invalid rate '0/1s': value must be greater than zero",
            ),
            (
                "negative count",
                &["k", "-5/1s"],
                "ERR invalid rate '-5/1s': value must not be negative",
            ),
            (
                "zero period",
                &["k", "5/0s"],
                "ERR invalid rate '5/0s': value must be greater than zero",
            ),
            (
                "fractional period",
                &["k", "5/1.5s"],
                "ERR invalid rate '5/1.5s': fractional values are not allowed; use a smaller unit, e.g. 1500ms",
            ),
            (
                "overflowing count",
                &["k", "99999999999999999999/1s"],
                "ERR invalid rate '99999999999999999999/1s': value is out of range",
            ),
            (
                "more than one per nanosecond",
                &["k", "2000000/1ms"],
                "ERR invalid rate '2000000/1ms': emission interval must be > 0 (count is too large for the period)",
            ),
            (
                "zero burst",
                &["k", "5/s", "BURST", "0"],
                "ERR invalid BURST '0': value must be greater than zero",
            ),
            (
                "burst over the tolerance cap",
                &["k", "1/1d", "BURST", "9223372036854775807"],
                "ERR invalid BURST '9223372036854775807': rate parameters are out of range",
            ),
            (
                "zero cost",
                &["k", "5/s", "COST", "0"],
                "ERR invalid COST '0': value must be greater than zero",
            ),
            (
                "negative cost",
                &["k", "5/s", "COST", "-1"],
                "ERR invalid COST '-1': value must be greater than zero",
            ),
            ("missing COST value", &["k", "5/s", "COST"], "ERR syntax error"),
            ("missing BURST value", &["k", "5/s", "BURST"], "ERR syntax error"),
            ("unknown option", &["k", "5/s", "NOPE", "1"], "ERR syntax error"),
            (
                "repeated COST",
                &["k", "5/s", "COST", "1", "COST", "1"],
                "ERR syntax error",
            ),
            (
                "repeated BURST",
                &["k", "5/s", "BURST", "1", "BURST", "1"],
                "ERR syntax error",
            ),
        ];
        for &(label, args, want) in cases {
            for name in ["RATE.TAKE", "RATE.PEEK"] {
                let mut words = vec![name];
                words.extend(args);
                let want = want.replace("rate.take", &name.to_ascii_lowercase());
                assert_eq!(h.run(&words), err(&want), "{name}: {label}");
            }
        }
        assert_eq!(h.run(&["DBSIZE"]), int(0), "errors write nothing");
    }

    #[test]
    fn keys_of_another_kind_are_wrongtype_both_ways() {
        let mut h = Harness::new();
        h.run(&["SET", "s", "v"]);
        assert_eq!(h.run(&["RATE.TAKE", "s", "5/s"]), err(WRONGTYPE));
        assert_eq!(h.run(&["RATE.PEEK", "s", "5/s"]), err(WRONGTYPE));
        assert_eq!(h.run(&["GET", "s"]), bulk("v"), "string untouched");
        h.run(&["RATE.TAKE", "r", "5/s"]);
        assert_eq!(h.run(&["GET", "r"]), err(WRONGTYPE));
        h.run(&["WINDOW.TAKE", "w", "5/s"]);
        assert_eq!(h.run(&["RATE.TAKE", "w", "5/s"]), err(WRONGTYPE));
    }
}
