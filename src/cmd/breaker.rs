//! BREAKER commands (issue 3): a circuit breaker shared by every instance of an application,
//! over the pure transitions of [`crate::limiter::breaker`].
//!
//! `BREAKER.ALLOW` asks whether a call may go ahead (closed: yes; open: no; half-open: only
//! the round's probes), `BREAKER.REPORT` records its outcome, `BREAKER.PEEK` and
//! `BREAKER.STATE` look without changing anything, `BREAKER.TRIP` and `BREAKER.RESET` force
//! open and closed. The parameters travel with every command (as with `CL.THROTTLE`), so every
//! caller of one key must pass the same ones. A closed breaker expires by itself once its
//! counts are empty; an open or half-open one is kept until it closes. Depends on
//! the engine (`Call::breaker_*`) for the transitions and events, and on `cmd::limiter` for the
//! reply shape; never touches a socket.

use bytes::Bytes;

use super::args::{is, Args};
use super::flags::*;
use super::limiter::{count, decision_reply, duration, uint as int};
use super::{CommandSpec, Ctx, BASE};
use crate::clock::Nanos;
use crate::engine::Take;
use crate::error::CommandError;
use crate::limiter::breaker::{BreakerParams, BreakerStatus, Phase, TripRule};
use crate::protocol::{Frame, Scalar};

/// The grammar of the parameters every BREAKER command but RESET accepts.
macro_rules! params_grammar {
    () => {
        "rule=[THRESHOLD failures:integer|RATIO percent:integer [MINCALLS calls:integer]] [WINDOW window:string] [COOLDOWN cooldown:string] [PROBES probes:integer]"
    };
}

/// BREAKER commands.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "BREAKER.ALLOW",
        arity: -2,
        flags: WRITE | DENYOOM | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "rate_limit",
        summary: "Asks a circuit breaker whether a call may go ahead; in half-open takes one of the round's probes.",
        since: "0.1.0",
        args: concat!("key:key ", params_grammar!()),
        handler: allow,
        ..BASE
    },
    CommandSpec {
        name: "BREAKER.PEEK",
        arity: -2,
        flags: READONLY | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "rate_limit",
        summary: "Replies what BREAKER.ALLOW would answer now, without taking a probe or changing anything.",
        since: "0.1.0",
        args: concat!("key:key ", params_grammar!()),
        handler: peek,
        ..BASE
    },
    CommandSpec {
        name: "BREAKER.REPORT",
        arity: -3,
        flags: WRITE | DENYOOM | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "rate_limit",
        summary: "Records the outcome of a call (SUCCESS or FAILURE) and replies the breaker's state after it.",
        since: "0.1.0",
        args: concat!("key:key outcome=(SUCCESS|FAILURE) ", params_grammar!()),
        handler: report,
        ..BASE
    },
    CommandSpec {
        name: "BREAKER.STATE",
        arity: -2,
        flags: READONLY | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "rate_limit",
        summary: "Replies a breaker's state, counts and time to its next transition, changing nothing.",
        since: "0.1.0",
        args: concat!("key:key ", params_grammar!()),
        handler: state,
        ..BASE
    },
    CommandSpec {
        name: "BREAKER.TRIP",
        arity: -2,
        flags: WRITE | DENYOOM | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "rate_limit",
        summary: "Forces a breaker open for its cooldown from now and replies its state.",
        since: "0.1.0",
        args: concat!("key:key ", params_grammar!()),
        handler: trip,
        ..BASE
    },
    CommandSpec {
        name: "BREAKER.RESET",
        arity: 2,
        flags: WRITE | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "rate_limit",
        summary: "Forces a breaker closed with empty counts (deletes the key); replies 1 if it existed, 0 otherwise.",
        since: "0.1.0",
        args: "key:key",
        handler: reset,
        ..BASE
    },
];

/// Failures within the window that open the breaker when no rule is given.
pub const DEFAULT_THRESHOLD: u64 = 5;
/// Calls the window needs before `RATIO` can open the breaker, when `MINCALLS` is not given.
pub const DEFAULT_MIN_CALLS: u64 = 10;
/// The counting window when `WINDOW` is not given: one minute.
pub const DEFAULT_WINDOW: Nanos = Nanos(60 * Nanos::PER_SEC);
/// How long the breaker stays open when `COOLDOWN` is not given: 30 seconds.
pub const DEFAULT_COOLDOWN: Nanos = Nanos(30 * Nanos::PER_SEC);
/// Probes per half-open round when `PROBES` is not given.
pub const DEFAULT_PROBES: u64 = 1;

/// Parses the optional parameters (any order, each at most once; `THRESHOLD` and `RATIO`
/// exclude each other, `MINCALLS` needs `RATIO`).
fn params(mut a: Args<'_>) -> Result<BreakerParams, CommandError> {
    let (mut threshold, mut ratio, mut min_calls) = (None, None, None);
    let (mut window, mut cooldown, mut probes) = (None, None, None);
    while let Some(word) = a.next() {
        if is(word, "THRESHOLD") && threshold.is_none() {
            threshold = Some(count("THRESHOLD", a.value()?)?);
        } else if is(word, "RATIO") && ratio.is_none() {
            ratio = Some(count("RATIO", a.value()?)?);
        } else if is(word, "MINCALLS") && min_calls.is_none() {
            min_calls = Some(count("MINCALLS", a.value()?)?);
        } else if is(word, "WINDOW") && window.is_none() {
            window = Some(duration("WINDOW", a.value()?)?);
        } else if is(word, "COOLDOWN") && cooldown.is_none() {
            cooldown = Some(duration("COOLDOWN", a.value()?)?);
        } else if is(word, "PROBES") && probes.is_none() {
            probes = Some(count("PROBES", a.value()?)?);
        } else {
            return Err(CommandError::Syntax);
        }
    }
    let rule = match (threshold, ratio, min_calls) {
        (_, None, Some(_)) | (Some(_), Some(_), _) => return Err(CommandError::Syntax),
        (n, None, None) => TripRule::Failures(n.unwrap_or(DEFAULT_THRESHOLD)),
        (None, Some(percent), m) => TripRule::Ratio {
            percent,
            min_calls: m.unwrap_or(DEFAULT_MIN_CALLS),
        },
    };
    BreakerParams::new(
        rule,
        window.unwrap_or(DEFAULT_WINDOW),
        cooldown.unwrap_or(DEFAULT_COOLDOWN),
        probes.unwrap_or(DEFAULT_PROBES),
    )
    .map_err(|e| CommandError::other(e.to_string()))
}

fn phase_name(p: Phase) -> Scalar {
    Scalar::Str(match p {
        Phase::Closed => "closed",
        Phase::Open => "open",
        Phase::HalfOpen => "half_open",
    })
}

/// Milliseconds (rounded up) to the next time-driven transition, -1 when closed (none).
fn next_ms(st: &BreakerStatus) -> Scalar {
    st.next_transition
        .map_or(Scalar::Int(-1), |n| int(n.as_millis_ceil()))
}

/// The status map of REPORT, STATE and TRIP.
fn status_map(st: &BreakerStatus) -> Frame {
    Frame::Fields(vec![
        ("state", phase_name(st.phase)),
        ("failures", int(st.failures)),
        ("calls", int(st.calls)),
        ("probes_issued", int(st.probes_issued)),
        ("probe_successes", int(st.probe_successes)),
        ("next_transition_ms", next_ms(st)),
    ])
}

/// Runs ALLOW (taking a probe when `take`) and renders the uniform reply.
fn allow_or_peek(ctx: &mut Ctx<'_>, req: &[Bytes], take: Take) -> Result<Frame, CommandError> {
    let p = params(Args::new(req, 2))?;
    let outcome = ctx.call().breaker_allow(&req[1], &p, take)?;
    let st = &outcome.status;
    Ok(decision_reply(
        &outcome.decision,
        [
            ("state", phase_name(st.phase)),
            ("failures", int(st.failures)),
            ("next_transition_ms", next_ms(st)),
        ],
    ))
}

/// Whether a call may go ahead.
///
/// ```text
/// BREAKER.ALLOW key [THRESHOLD failures | RATIO percent [MINCALLS calls]]
///     [WINDOW window] [COOLDOWN cooldown] [PROBES probes]
/// ```
/// Defaults: `THRESHOLD 5`, `WINDOW 1m`, `COOLDOWN 30s`, `PROBES 1`; `MINCALLS 10` with
/// `RATIO`. Options in any order, each at most once.
///
/// Reply: the uniform decision — `limit` = probes per half-open round, `remaining` = probes
/// left (all of them when closed, 0 when open), `retry_after_ms` = until the cooldown ends or
/// the probe round times out, `reset_after_ms` = until the next time-driven transition (0 when
/// closed) — plus `state` (`closed`, `open`, `half_open`), `failures` (counted in the window,
/// closed only) and `next_transition_ms` (-1 when closed).
///
/// Errors: `ERR syntax error` (unknown, repeated or valueless option, `THRESHOLD` with
/// `RATIO`, `MINCALLS` without `RATIO`), `ERR invalid <OPTION> ...`, `ERR ratio must be
/// between 1 and 100 percent`, `WRONGTYPE`.
fn allow(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    allow_or_peek(ctx, req, Take::Charge)
}

/// What ALLOW would answer now, changing nothing.
///
/// ```text
/// BREAKER.PEEK key [THRESHOLD failures | RATIO percent [MINCALLS calls]]
///     [WINDOW window] [COOLDOWN cooldown] [PROBES probes]
/// ```
/// Reply: exactly `BREAKER.ALLOW`'s, but no probe is taken, no key created, no TTL touched.
///
/// Errors: as `BREAKER.ALLOW`.
fn peek(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    allow_or_peek(ctx, req, Take::Peek)
}

/// Records a call's outcome.
///
/// ```text
/// BREAKER.REPORT key SUCCESS|FAILURE [THRESHOLD failures | RATIO percent [MINCALLS calls]]
///     [WINDOW window] [COOLDOWN cooldown] [PROBES probes]
/// ```
/// Closed: a failure (and, in ratio mode, every call) is counted; meeting the trip rule opens
/// the breaker. Half-open: a failure re-opens it, the round's `probes`-th success closes it.
/// Open: the report is from a call made before it opened and is ignored.
///
/// Reply: the status map after the report (as `BREAKER.STATE`).
///
/// Errors: `ERR syntax error` (outcome not SUCCESS or FAILURE), then as `BREAKER.ALLOW`.
fn report(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let success = if is(&req[2], "SUCCESS") {
        true
    } else if is(&req[2], "FAILURE") {
        false
    } else {
        return Err(CommandError::Syntax);
    };
    let p = params(Args::new(req, 3))?;
    let st = ctx.call().breaker_report(&req[1], &p, success)?;
    Ok(status_map(&st))
}

/// A breaker's state.
///
/// ```text
/// BREAKER.STATE key [THRESHOLD failures | RATIO percent [MINCALLS calls]]
///     [WINDOW window] [COOLDOWN cooldown] [PROBES probes]
/// ```
/// Reply: a map — `state` (`closed`, `open`, `half_open`), `failures` and `calls` (counted in
/// the window while closed; `calls` only in ratio mode), `probes_issued` and
/// `probe_successes` (this half-open round), `next_transition_ms` (until open becomes
/// half-open or the probe round times out; -1 when closed). Changes nothing.
///
/// Errors: as `BREAKER.ALLOW`.
fn state(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let p = params(Args::new(req, 2))?;
    let st = ctx.call().breaker_state(&req[1], &p)?;
    Ok(status_map(&st))
}

/// Forces a breaker open.
///
/// ```text
/// BREAKER.TRIP key [THRESHOLD failures | RATIO percent [MINCALLS calls]]
///     [WINDOW window] [COOLDOWN cooldown] [PROBES probes]
/// ```
/// The breaker refuses calls for `COOLDOWN` from now, then half-opens as usual. Only
/// `COOLDOWN` matters; the others are accepted (and checked) so callers can pass one parameter
/// string everywhere.
///
/// Reply: the status map after the trip.
///
/// Errors: as `BREAKER.ALLOW`.
fn trip(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let p = params(Args::new(req, 2))?;
    let st = ctx.call().breaker_trip(&req[1], &p)?;
    Ok(status_map(&st))
}

/// Forces a breaker closed.
///
/// ```text
/// BREAKER.RESET key
/// ```
/// A closed breaker with empty counts is the fresh state, so this deletes the key.
///
/// Reply: integer 1 if the key held a breaker, 0 if it did not exist.
///
/// Errors: `WRONGTYPE`.
fn reset(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let existed = ctx.call().breaker_reset(&req[1])?;
    Ok(Frame::Integer(i64::from(existed)))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::cmd::testing::*;
    use crate::protocol::Frame;

    fn map(flat: Vec<Frame>) -> Frame {
        let mut it = flat.into_iter();
        let mut pairs = Vec::new();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            pairs.push((k, v));
        }
        Frame::Map(pairs)
    }

    /// An ALLOW / PEEK reply: (allowed, limit, remaining, retry, reset) then the extras.
    fn allow_reply(d: (bool, i64, i64, i64, i64), state: &str, failures: i64, next: i64) -> Frame {
        map(vec![
            bulk("allowed"),
            Frame::Boolean(d.0),
            bulk("limit"),
            int(d.1),
            bulk("remaining"),
            int(d.2),
            bulk("retry_after_ms"),
            int(d.3),
            bulk("reset_after_ms"),
            int(d.4),
            bulk("state"),
            bulk(state),
            bulk("failures"),
            int(failures),
            bulk("next_transition_ms"),
            int(next),
        ])
    }

    /// A status map: state, failures, calls, probes_issued, probe_successes, next_transition_ms.
    fn status(state: &str, counts: [i64; 4], next: i64) -> Frame {
        map(vec![
            bulk("state"),
            bulk(state),
            bulk("failures"),
            int(counts[0]),
            bulk("calls"),
            int(counts[1]),
            bulk("probes_issued"),
            int(counts[2]),
            bulk("probe_successes"),
            int(counts[3]),
            bulk("next_transition_ms"),
            int(next),
        ])
    }

    fn cmd<'a>(name: &'a str, key: &'a str, extra: &[&'a str], params: &[&'a str]) -> Vec<&'a str> {
        let mut v = vec![name, key];
        v.extend(extra);
        v.extend(params);
        v
    }

    const P: &[&str] = &["THRESHOLD", "3", "COOLDOWN", "10s"];

    #[test]
    fn a_fresh_breaker_is_closed_and_allows_without_writing() {
        let mut h = Harness::new();
        assert_eq!(
            h.run(&["BREAKER.ALLOW", "svc"]),
            allow_reply((true, 1, 1, -1, 0), "closed", 0, -1),
            "defaults"
        );
        assert_eq!(
            h.run(&["breaker.allow", "svc", "probes", "3"]),
            allow_reply((true, 3, 3, -1, 0), "closed", 0, -1),
            "limit is the probe count"
        );
        assert_eq!(
            h.run(&["EXISTS", "svc"]),
            int(0),
            "closed and empty: no key"
        );
        assert_eq!(
            h.run(&["BREAKER.STATE", "svc"]),
            status("closed", [0; 4], -1)
        );
        assert_eq!(
            h.run(&["BREAKER.REPORT", "svc", "SUCCESS"]),
            status("closed", [0; 4], -1)
        );
        assert_eq!(
            h.run(&["EXISTS", "svc"]),
            int(0),
            "a success alone stores nothing"
        );
        assert_eq!((h.session.stats.allowed, h.session.stats.denied), (2, 0));
    }

    #[test]
    fn failures_open_the_breaker_until_the_cooldown_exactly() {
        let mut h = Harness::new();
        let failure = cmd("BREAKER.REPORT", "svc", &["FAILURE"], P);
        let allow = cmd("BREAKER.ALLOW", "svc", &[], P);
        assert_eq!(h.run(&failure), status("closed", [1, 0, 0, 0], -1), "first");
        assert_eq!(
            h.run(&allow),
            allow_reply((true, 1, 1, -1, 0), "closed", 1, -1)
        );
        assert_eq!(
            h.run(&failure),
            status("closed", [2, 0, 0, 0], -1),
            "second"
        );
        assert_eq!(
            h.run(&failure),
            status("open", [0; 4], 10_000),
            "third opens"
        );
        assert_eq!(h.run(&["PTTL", "svc"]), int(-1), "open never expires alone");
        assert_eq!(
            h.run(&allow),
            allow_reply((false, 1, 0, 10_000, 10_000), "open", 0, 10_000),
            "open refuses"
        );
        h.clock.advance(Duration::from_millis(9_999));
        assert_eq!(
            h.run(&allow),
            allow_reply((false, 1, 0, 1, 1), "open", 0, 1),
            "1 ms before the cooldown ends"
        );
        h.clock.advance(Duration::from_millis(1));
        assert_eq!(
            h.run(&allow),
            allow_reply((true, 1, 0, -1, 10_000), "half_open", 0, 10_000),
            "the probe, at the cooldown's end"
        );
        assert_eq!(
            h.run(&allow),
            allow_reply((false, 1, 0, 10_000, 10_000), "half_open", 0, 10_000),
            "no second probe until the round times out"
        );
        assert_eq!((h.session.stats.allowed, h.session.stats.denied), (2, 3));
    }

    #[test]
    fn half_open_lets_k_probes_through_then_closes_on_k_successes() {
        let mut h = Harness::new();
        let p = &["PROBES", "3", "COOLDOWN", "30s"];
        h.run(&cmd("BREAKER.TRIP", "svc", &[], p));
        h.clock.advance(Duration::from_secs(30));
        for i in 0..3 {
            assert_eq!(
                h.run(&cmd("BREAKER.ALLOW", "svc", &[], p)),
                allow_reply((true, 3, 2 - i, -1, 30_000), "half_open", 0, 30_000),
                "probe {i}"
            );
        }
        assert_eq!(
            h.run(&cmd("BREAKER.ALLOW", "svc", &[], p)),
            allow_reply((false, 3, 0, 30_000, 30_000), "half_open", 0, 30_000),
            "fourth caller"
        );
        h.clock.advance(Duration::from_secs(1));
        let success = cmd("BREAKER.REPORT", "svc", &["success"], p);
        assert_eq!(h.run(&success), status("half_open", [0, 0, 3, 1], 29_000));
        assert_eq!(h.run(&success), status("half_open", [0, 0, 3, 2], 29_000));
        assert_eq!(
            h.run(&success),
            status("closed", [0; 4], -1),
            "third closes"
        );
        assert_eq!(
            h.run(&["EXISTS", "svc"]),
            int(0),
            "closed and empty: deleted"
        );
    }

    #[test]
    fn a_failed_probe_reopens_and_a_lost_round_restarts() {
        let mut h = Harness::new();
        h.run(&cmd("BREAKER.TRIP", "svc", &[], P));
        h.clock.advance(Duration::from_secs(10));
        h.run(&cmd("BREAKER.ALLOW", "svc", &[], P));
        h.clock.advance(Duration::from_secs(2));
        assert_eq!(
            h.run(&cmd("BREAKER.REPORT", "svc", &["FAILURE"], P)),
            status("open", [0; 4], 10_000),
            "cooldown from the failed probe"
        );
        h.clock.advance(Duration::from_secs(10));
        assert_eq!(
            h.run(&cmd("BREAKER.ALLOW", "svc", &[], P)),
            allow_reply((true, 1, 0, -1, 10_000), "half_open", 0, 10_000),
            "next round's probe"
        );
        // That probe never reports: one cooldown later a new round starts.
        h.clock.advance(Duration::from_millis(9_999));
        let allow = cmd("BREAKER.ALLOW", "svc", &[], P);
        assert_eq!(
            h.run(&allow),
            allow_reply((false, 1, 0, 1, 1), "half_open", 0, 1)
        );
        h.clock.advance(Duration::from_millis(1));
        assert_eq!(
            h.run(&allow),
            allow_reply((true, 1, 0, -1, 10_000), "half_open", 0, 10_000),
            "a fresh probe after the lost round"
        );
    }

    #[test]
    fn ratio_mode_needs_the_minimum_calls() {
        let mut h = Harness::new();
        let p = &["RATIO", "50", "MINCALLS", "4"];
        let failure = cmd("BREAKER.REPORT", "svc", &["FAILURE"], p);
        let success = cmd("BREAKER.REPORT", "svc", &["SUCCESS"], p);
        assert_eq!(
            h.run(&success),
            status("closed", [0, 1, 0, 0], -1),
            "calls count"
        );
        assert_eq!(h.run(&failure), status("closed", [1, 2, 0, 0], -1));
        assert_eq!(
            h.run(&failure),
            status("closed", [2, 3, 0, 0], -1),
            "under min"
        );
        assert_eq!(
            h.run(&success),
            status("open", [0; 4], 30_000),
            "2 of 4 failed"
        );
        let mut h = Harness::new();
        let p = &["ratio", "50"];
        for i in 0..9 {
            let reply = h.run(&cmd("BREAKER.REPORT", "d", &["FAILURE"], p));
            assert_eq!(
                reply,
                status("closed", [i + 1, i + 1, 0, 0], -1),
                "call {i}"
            );
        }
        assert_eq!(
            h.run(&cmd("BREAKER.REPORT", "d", &["FAILURE"], p)),
            status("open", [0; 4], 30_000),
            "MINCALLS defaults to 10"
        );
    }

    #[test]
    fn peek_and_state_change_nothing() {
        let mut h = Harness::new();
        let peek = cmd("BREAKER.PEEK", "svc", &[], P);
        assert_eq!(
            h.run(&peek),
            allow_reply((true, 1, 1, -1, 0), "closed", 0, -1)
        );
        assert_eq!(
            h.run(&cmd("BREAKER.STATE", "svc", &[], P)),
            status("closed", [0; 4], -1)
        );
        assert_eq!(h.run(&["EXISTS", "svc"]), int(0), "no key created");
        h.run(&cmd("BREAKER.TRIP", "svc", &[], P));
        h.clock.advance(Duration::from_secs(10));
        let before = (h.run(&["TYPE", "svc"]), h.run(&["PTTL", "svc"]));
        let want = allow_reply((true, 1, 0, -1, 10_000), "half_open", 0, 10_000);
        assert_eq!(h.run(&peek), want, "peek in half-open");
        assert_eq!(
            h.run(&peek),
            want,
            "a second peek: the probe is still there"
        );
        assert_eq!(
            h.run(&cmd("BREAKER.STATE", "svc", &[], P)),
            status("half_open", [0; 4], 10_000)
        );
        assert_eq!((h.run(&["TYPE", "svc"]), h.run(&["PTTL", "svc"])), before);
        assert_eq!(
            h.run(&cmd("BREAKER.ALLOW", "svc", &[], P)),
            want,
            "ALLOW agrees"
        );
        assert_eq!(
            h.run(&cmd("BREAKER.STATE", "svc", &[], P)),
            status("half_open", [0, 0, 1, 0], 10_000),
            "the probe is taken"
        );
        assert_eq!((h.session.stats.allowed, h.session.stats.denied), (1, 0));
    }

    #[test]
    fn a_closed_breaker_expires_when_its_counts_are_empty() {
        let mut h = Harness::new();
        // The clock starts on a minute boundary: the failure's window is [0, 1m), forgotten
        // two windows after it starts.
        h.run(&["BREAKER.REPORT", "svc", "FAILURE"]);
        assert_eq!(h.run(&["TYPE", "svc"]), simple("breaker"));
        assert_eq!(h.run(&["PTTL", "svc"]), int(120_000), "PTTL = reset");
        h.clock.advance(Duration::from_secs(60));
        assert_eq!(
            h.run(&["BREAKER.STATE", "svc"]),
            status("closed", [1, 0, 0, 0], -1),
            "the previous window still weighs in fully at its end"
        );
        h.clock.advance(Duration::from_secs(60));
        assert_eq!(h.run(&["EXISTS", "svc"]), int(0), "forgotten");
    }

    #[test]
    fn trip_and_reset_force_the_state() {
        let mut h = Harness::new();
        assert_eq!(
            h.run(&["BREAKER.TRIP", "svc", "COOLDOWN", "1m"]),
            status("open", [0; 4], 60_000)
        );
        assert_eq!(
            h.run(&["BREAKER.ALLOW", "svc", "COOLDOWN", "1m"]),
            allow_reply((false, 1, 0, 60_000, 60_000), "open", 0, 60_000)
        );
        assert_eq!(h.run(&["BREAKER.RESET", "svc"]), int(1));
        assert_eq!(h.run(&["EXISTS", "svc"]), int(0));
        assert_eq!(h.run(&["BREAKER.RESET", "svc"]), int(0), "already closed");
        assert_eq!(
            h.run(&["BREAKER.ALLOW", "svc", "COOLDOWN", "1m"]),
            allow_reply((true, 1, 1, -1, 0), "closed", 0, -1)
        );
        h.run(&["BREAKER.REPORT", "svc", "FAILURE"]);
        assert_eq!(h.run(&["BREAKER.RESET", "svc"]), int(1), "counts dropped");
        assert_eq!(
            h.run(&["BREAKER.STATE", "svc"]),
            status("closed", [0; 4], -1)
        );
    }

    #[test]
    fn bad_arguments_are_clear_errors() {
        let mut h = Harness::new();
        let syntax = "ERR syntax error";
        for (words, want) in [
            (
                vec!["BREAKER.ALLOW"],
                "ERR wrong number of arguments for 'breaker.allow' command",
            ),
            (
                vec!["BREAKER.REPORT", "k"],
                "ERR wrong number of arguments for 'breaker.report' command",
            ),
            (
                vec!["BREAKER.RESET", "k", "x"],
                "ERR wrong number of arguments for 'breaker.reset' command",
            ),
            (vec!["BREAKER.REPORT", "k", "MAYBE"], syntax),
            (vec!["BREAKER.ALLOW", "k", "NOPE", "1"], syntax),
            (vec!["BREAKER.ALLOW", "k", "THRESHOLD"], syntax),
            (
                vec!["BREAKER.ALLOW", "k", "PROBES", "1", "PROBES", "2"],
                syntax,
            ),
            (
                vec!["BREAKER.ALLOW", "k", "THRESHOLD", "1", "RATIO", "50"],
                syntax,
            ),
            (vec!["BREAKER.STATE", "k", "MINCALLS", "5"], syntax),
            (
                vec!["BREAKER.TRIP", "k", "COOLDOWN", "1s", "COOLDOWN", "2s"],
                syntax,
            ),
            (
                vec!["BREAKER.ALLOW", "k", "THRESHOLD", "0"],
                "ERR invalid THRESHOLD '0': value must be greater than zero",
            ),
            (
                vec!["BREAKER.ALLOW", "k", "PROBES", "-1"],
                "ERR invalid PROBES '-1': value must be greater than zero",
            ),
            (
                vec!["BREAKER.ALLOW", "k", "RATIO", "101"],
                "ERR ratio must be between 1 and 100 percent",
            ),
            (
                vec!["BREAKER.ALLOW", "k", "RATIO", "50", "MINCALLS", "0"],
                "ERR invalid MINCALLS '0': value must be greater than zero",
            ),
            (
                vec!["BREAKER.ALLOW", "k", "RATIO", "2.5"],
                "ERR invalid RATIO '2.5': must be a whole number greater than zero",
            ),
            (
                vec!["BREAKER.ALLOW", "k", "WINDOW", "60"],
                "ERR invalid WINDOW '60': duration needs a unit (ms, s, m, h or d), e.g. 30s",
            ),
            (
                vec!["BREAKER.REPORT", "k", "FAILURE", "COOLDOWN", "1w"],
                "ERR invalid COOLDOWN '1w': unknown duration unit 'w' (use ms, s, m, h or d)",
            ),
            (
                vec!["BREAKER.TRIP", "k", "COOLDOWN", "99999999999999999999d"],
                "ERR invalid COOLDOWN '99999999999999999999d': value is out of range",
            ),
        ] {
            assert_eq!(h.run(&words), err(want), "{words:?}");
        }
        assert_eq!(h.run(&["EXISTS", "k"]), int(0), "errors write nothing");
    }

    #[test]
    fn keys_of_another_kind_are_wrongtype_both_ways() {
        let mut h = Harness::new();
        h.run(&["SET", "s", "v"]);
        for words in [
            vec!["BREAKER.ALLOW", "s"],
            vec!["BREAKER.PEEK", "s"],
            vec!["BREAKER.REPORT", "s", "FAILURE"],
            vec!["BREAKER.STATE", "s"],
            vec!["BREAKER.TRIP", "s"],
            vec!["BREAKER.RESET", "s"],
        ] {
            assert_eq!(h.run(&words), err(WRONGTYPE), "{words:?}");
        }
        assert_eq!(h.run(&["GET", "s"]), bulk("v"), "the string is untouched");
        h.run(&["BREAKER.TRIP", "b"]);
        assert_eq!(h.run(&["GET", "b"]), err(WRONGTYPE));
        assert_eq!(
            h.run(&["LEASE.COUNT", "b"]),
            err(WRONGTYPE),
            "another limiter family"
        );
    }
}
