//! WINDOW commands: `WINDOW.TAKE` and its read-only twin `WINDOW.PEEK`, the command layer over
//! the sliding window counter in [`crate::limiter::window`].
//!
//! A WINDOW key (`TYPE` reports `window`) keeps the current fixed window's start and the counts
//! of that window and the one before it. Owns only argument parsing and the reply (the shared
//! fields plus `window_ms` and `estimate`); the transition, WRONGTYPE checks and expiry are
//! the engine's ([`crate::engine::Call::window`]). Never touches a socket.

use bytes::Bytes;

use super::args::{is, Args};
use super::flags::*;
use super::limiter::{self, decision_reply, uint};
use super::{CommandSpec, Ctx, BASE};
use crate::engine::Take;
use crate::error::CommandError;
use crate::limiter::window::WindowParams;
use crate::protocol::Frame;

/// WINDOW commands.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "WINDOW.TAKE",
        arity: -3,
        flags: WRITE | DENYOOM | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "rate_limit",
        summary: "Takes COST units from a sliding window counter admitting N per duration (previous window weighted by overlap).",
        since: "0.1.0",
        args: "key:key rate:string [COST cost:integer]",
        handler: window_take,
        ..BASE
    },
    CommandSpec {
        name: "WINDOW.PEEK",
        arity: -3,
        flags: READONLY | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "rate_limit",
        summary: "Answers exactly what WINDOW.TAKE would answer now, without changing the counter.",
        since: "0.1.0",
        args: "key:key rate:string [COST cost:integer]",
        handler: window_peek,
        ..BASE
    },
];

/// A parsed `WINDOW.TAKE` / `WINDOW.PEEK` request.
#[derive(Debug)]
struct WindowRequest<'a> {
    key: &'a [u8],
    params: WindowParams,
    cost: u64,
}

/// Parses `key rate [COST n]`.
fn parse(req: &[Bytes]) -> Result<WindowRequest<'_>, CommandError> {
    let params = WindowParams::from_rate(limiter::rate(&req[2])?);
    let mut cost = None;
    let mut opts = Args::new(req, 3);
    while let Some(opt) = opts.next() {
        if is(opt, "COST") && cost.is_none() {
            cost = Some(limiter::count("COST", opts.value()?)?);
        } else {
            return Err(CommandError::Syntax);
        }
    }
    Ok(WindowRequest {
        key: &req[1],
        params,
        cost: cost.unwrap_or(1),
    })
}

/// Runs the counter transition in the engine; a take stores the new counts, a peek throws
/// them away. The reply is computed from the same outcome either way, so a peek answers what
/// the take would.
fn execute(ctx: &mut Ctx<'_>, r: WindowRequest<'_>, take: Take) -> Result<Frame, CommandError> {
    let out = ctx.call().window(r.key, &r.params, r.cost, take)?;
    Ok(decision_reply(
        &out.decision,
        [
            ("window_ms", limiter::ms(r.params.window())),
            ("estimate", uint(out.estimate)),
        ],
    ))
}

/// `WINDOW.TAKE`: admits `COST` units if the sliding window's estimate leaves room, and counts
/// them in the current fixed window.
///
/// ```text
/// WINDOW.TAKE key rate [COST cost]
///   rate  N/duration, e.g. 100/1m: at most N units per sliding window of that duration
///   COST  units this request takes; default 1
/// ```
///
/// Fixed windows are aligned to the UNIX epoch. A take is admitted when
/// `prev · (W - elapsed) / W + curr + cost <= N` (exact integer arithmetic).
///
/// Reply: the uniform admission reply (`allowed`, `limit` = N, `remaining`, `retry_after_ms`,
/// `reset_after_ms`) followed by `window_ms` (the window length) and `estimate` (the weighted
/// count after this decision, rounded up). A cost above N is denied with `retry_after_ms` -1.
/// An admitted take stores the counter with a TTL equal to `reset_after_ms`.
///
/// Errors: `ERR invalid rate '...': ...`, `ERR invalid COST '...': ...`, `ERR syntax error`
/// (unknown or repeated option, missing value), `WRONGTYPE` when the key holds anything but a
/// window counter.
fn window_take(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let r = parse(req)?;
    execute(ctx, r, Take::Charge)
}

/// `WINDOW.PEEK`: exactly the reply `WINDOW.TAKE` with the same arguments would give now, with
/// nothing written (no key created, no TTL touched).
///
/// ```text
/// WINDOW.PEEK key rate [COST cost]
/// ```
///
/// Reply and errors: as `WINDOW.TAKE`.
fn window_peek(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let r = parse(req)?;
    execute(ctx, r, Take::Peek)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::cmd::limiter::field;
    use crate::cmd::testing::*;
    use crate::protocol::Frame;

    /// The WINDOW reply: (allowed, limit, remaining, retry, reset, window_ms, estimate).
    fn reply(v: (bool, i64, i64, i64, i64, i64, i64)) -> Frame {
        Frame::Map(vec![
            (field("allowed"), Frame::Boolean(v.0)),
            (field("limit"), int(v.1)),
            (field("remaining"), int(v.2)),
            (field("retry_after_ms"), int(v.3)),
            (field("reset_after_ms"), int(v.4)),
            (field("window_ms"), int(v.5)),
            (field("estimate"), int(v.6)),
        ])
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn take_counts_units_and_weighs_the_previous_window() {
        let mut h = Harness::new();
        // The harness clock starts at a whole second, so 1 s windows start at t = 0.
        // (label, advance ms, cost, expected reply)
        type Case = (
            &'static str,
            u64,
            &'static str,
            (bool, i64, i64, i64, i64, i64, i64),
        );
        #[rustfmt::skip]
        let cases: &[Case] = &[
            ("fresh key", 0, "1", (true, 10, 9, -1, 2000, 1000, 1)),
            ("nine more fill the window", 500, "9", (true, 10, 0, -1, 1500, 1000, 10)),
            ("full window waits for the weight to fall", 400, "1", (false, 10, 0, 200, 1100, 1000, 10)),
            ("1 ms before retry_after", 199, "1", (false, 10, 0, 1, 901, 1000, 10)),
            ("at retry_after: 10 · 0.9 + 1", 1, "1", (true, 10, 0, -1, 1900, 1000, 10)),
            ("30% in: 10 · 0.7 + 2 = 9", 200, "1", (true, 10, 1, -1, 1700, 1000, 9)),
            ("cost over the limit never fits", 0, "11", (false, 10, 1, -1, 1700, 1000, 9)),
            ("idle two windows: fresh", 2000, "10", (true, 10, 0, -1, 1700, 1000, 10)),
        ];
        for &(label, advance, cost, want) in cases {
            h.clock.advance(ms(advance));
            assert_eq!(
                h.run(&["WINDOW.TAKE", "k", "10/1s", "COST", cost]),
                reply(want),
                "{label}"
            );
        }
        assert_eq!(h.run(&["TYPE", "k"]), simple("window"));
        let s = &h.session.stats;
        assert_eq!((s.allowed, s.denied), (5, 3), "takes are counted");
    }

    #[test]
    fn admits_at_most_two_limits_minus_one_per_sliding_window() {
        let mut h = Harness::new();
        // All of window 0's units land in its last millisecond...
        h.clock.advance(ms(999));
        assert_eq!(
            h.run(&["WINDOW.TAKE", "k", "10/1s", "COST", "10"]),
            reply((true, 10, 0, -1, 1001, 1000, 10))
        );
        // ...and 999 ms later (same sliding window) the weight 10 · 2/1000 rounds to 1 unit.
        h.clock.advance(ms(999));
        assert_eq!(
            h.run(&["WINDOW.TAKE", "k", "10/1s", "COST", "10"]),
            reply((false, 10, 9, 2, 2, 1000, 1)),
            "ten more wait for the next window"
        );
        assert_eq!(
            h.run(&["WINDOW.TAKE", "k", "10/1s", "COST", "9"]),
            reply((true, 10, 0, -1, 1002, 1000, 10)),
            "nine fit: 19 = 2·10 - 1 within 999 ms"
        );
        assert_eq!(
            h.run(&["WINDOW.TAKE", "k", "10/1s"]),
            reply((false, 10, 0, 2, 1002, 1000, 10)),
            "and not one more"
        );
    }

    #[test]
    fn peek_answers_what_take_would_and_changes_nothing() {
        let mut h = Harness::new();
        assert_eq!(
            h.run(&["WINDOW.PEEK", "k", "10/1s", "COST", "4"]),
            reply((true, 10, 6, -1, 2000, 1000, 4)),
            "peek on a fresh key"
        );
        assert_eq!(h.run(&["EXISTS", "k"]), int(0), "a peek creates no key");
        h.run(&["WINDOW.TAKE", "k", "10/1s", "COST", "8"]);
        h.clock.advance(ms(300));
        let pttl = h.run(&["PTTL", "k"]);
        assert_eq!(pttl, int(1700));
        assert_eq!(
            h.run(&["WINDOW.PEEK", "k", "10/1s", "COST", "3"]),
            reply((false, 10, 2, 825, 1700, 1000, 8)),
            "denied peek"
        );
        let peek = h.run(&["WINDOW.PEEK", "k", "10/1s", "COST", "2"]);
        assert_eq!(peek, reply((true, 10, 0, -1, 1700, 1000, 10)), "allowed");
        assert_eq!(
            h.run(&["WINDOW.PEEK", "k", "10/1s", "COST", "2"]),
            peek,
            "a second peek"
        );
        assert_eq!(h.run(&["PTTL", "k"]), pttl, "TTL untouched");
        assert_eq!(h.run(&["TYPE", "k"]), simple("window"));
        assert_eq!(h.session.stats.allowed, 1, "peeks are not counted");
        assert_eq!(
            h.run(&["WINDOW.TAKE", "k", "10/1s", "COST", "2"]),
            peek,
            "the take answers what the peek said"
        );
    }

    #[test]
    fn key_expires_when_both_windows_are_empty() {
        let mut h = Harness::new();
        h.clock.advance(ms(250));
        assert_eq!(
            h.run(&["WINDOW.TAKE", "k", "5/1m"]),
            reply((true, 5, 4, -1, 119_750, 60_000, 1))
        );
        assert_eq!(
            h.run(&["PTTL", "k"]),
            int(119_750),
            "PTTL is reset_after_ms"
        );
        h.clock.advance(ms(119_749));
        assert_eq!(h.run(&["EXISTS", "k"]), int(1), "1 ms before fresh");
        h.clock.advance(ms(1));
        assert_eq!(h.run(&["EXISTS", "k"]), int(0), "fresh: gone");
        assert_eq!(
            h.run(&["WINDOW.PEEK", "k", "5/1m"]),
            reply((true, 5, 4, -1, 120_000, 60_000, 1))
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
                "ERR wrong number of arguments for 'window.take' command",
            ),
            (
                "unknown unit",
                &["k", "100/1x"],
                "ERR invalid rate '100/1x': unknown duration unit 'x' (use ms, s, m, h or d)",
            ),
            (
                "missing unit",
                &["k", "100/60"],
                "ERR invalid rate '100/60': duration needs a unit (ms, s, m, h or d), e.g. 30s",
            ),
            (
                "zero count",
                &["k", "0/1s"],
                "ERR invalid rate '0/1s': value must be greater than zero",
            ),
            (
                "window over 146 years",
                &["k", "1/60000d"],
                "ERR invalid rate '1/60000d': value is out of range",
            ),
            (
                "zero cost",
                &["k", "5/s", "COST", "0"],
                "ERR invalid COST '0': value must be greater than zero",
            ),
            (
                "fractional cost",
                &["k", "5/s", "COST", "1.5"],
                "ERR invalid COST '1.5': must be a whole number greater than zero",
            ),
            (
                "missing COST value",
                &["k", "5/s", "COST"],
                "ERR syntax error",
            ),
            (
                "BURST is RATE's",
                &["k", "5/s", "BURST", "2"],
                "ERR syntax error",
            ),
            (
                "repeated COST",
                &["k", "5/s", "cost", "1", "COST", "1"],
                "ERR syntax error",
            ),
        ];
        for &(label, args, want) in cases {
            for name in ["WINDOW.TAKE", "WINDOW.PEEK"] {
                let mut words = vec![name];
                words.extend(args);
                let want = want.replace("window.take", &name.to_ascii_lowercase());
                assert_eq!(h.run(&words), err(&want), "{name}: {label}");
            }
        }
        assert_eq!(h.run(&["DBSIZE"]), int(0), "errors write nothing");
    }

    #[test]
    fn keys_of_another_kind_are_wrongtype_both_ways() {
        let mut h = Harness::new();
        h.run(&["SET", "s", "v"]);
        assert_eq!(h.run(&["WINDOW.TAKE", "s", "5/s"]), err(WRONGTYPE));
        assert_eq!(h.run(&["WINDOW.PEEK", "s", "5/s"]), err(WRONGTYPE));
        assert_eq!(h.run(&["GET", "s"]), bulk("v"), "string untouched");
        h.run(&["WINDOW.TAKE", "w", "5/s"]);
        assert_eq!(h.run(&["GET", "w"]), err(WRONGTYPE));
        h.run(&["RATE.TAKE", "r", "5/s"]);
        assert_eq!(h.run(&["WINDOW.TAKE", "r", "5/s"]), err(WRONGTYPE));
    }
}
