//! QUOTA commands (issue 3): `QUOTA.TAKE` and its read-only twin `QUOTA.PEEK`, the command
//! layer over [`crate::limiter::quota`] (calendar periods in a time zone, billing anchors,
//! carry-over). Parses arguments, runs the transition in the engine ([`crate::engine::Call::quota`])
//! and renders the uniform reply. No socket, no clock read
//! (`now` comes from the context).

use bytes::Bytes;

use super::args::{self, is, Args};
use super::flags::*;
use super::limiter::{count, decision_reply, uint};
use super::{CommandSpec, Ctx, BASE};
use crate::clock::Nanos;
use crate::engine::Take;
use crate::error::CommandError;
use crate::limiter::quota::{
    parse_anchor, parse_quota, parse_zone, Anchor, Calendar, QuotaOutcome, QuotaParams,
};
use crate::protocol::Frame;

/// The argument grammar both commands share (see [`super::docs`]).
const ARGS: &str = "key:key quota:string [TZ zone:string] [ANCHOR anchor:string] \
                    [CARRY carry:integer] [COST cost:integer]";

/// QUOTA commands.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "QUOTA.TAKE",
        arity: -3,
        flags: WRITE | DENYOOM | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "rate_limit",
        summary: "Charges a calendar quota (per minute, hour, day, week or month in a time zone) if the cost fits.",
        since: "0.1.0",
        args: ARGS,
        handler: quota_take,
        ..BASE
    },
    CommandSpec {
        name: "QUOTA.PEEK",
        arity: -3,
        flags: READONLY | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "rate_limit",
        summary: "Reports what QUOTA.TAKE would answer now, without charging or touching the key.",
        since: "0.1.0",
        args: ARGS,
        handler: quota_peek,
        ..BASE
    },
];

/// A parsed `QUOTA.TAKE` / `QUOTA.PEEK` request.
#[derive(Debug)]
struct QuotaTake {
    params: QuotaParams,
    cost: u64,
}

/// Stores `slot`'s value once; a repeated option is a syntax error.
fn once<'a>(slot: &mut Option<&'a Bytes>, value: &'a Bytes) -> Result<(), CommandError> {
    if slot.replace(value).is_some() {
        return Err(CommandError::Syntax);
    }
    Ok(())
}

/// Parses `key quota [TZ zone] [ANCHOR anchor] [CARRY n] [COST n]` (name at index 0). Grammar
/// errors (unknown, repeated or valueless options) come before value errors.
fn parse(req: &[Bytes]) -> Result<QuotaTake, CommandError> {
    let (mut tz, mut anchor, mut carry, mut cost) = (None, None, None, None);
    let mut rest = Args::new(req, 3);
    while let Some(opt) = rest.next() {
        let slot = if is(opt, "TZ") {
            &mut tz
        } else if is(opt, "ANCHOR") {
            &mut anchor
        } else if is(opt, "CARRY") {
            &mut carry
        } else if is(opt, "COST") {
            &mut cost
        } else {
            return Err(CommandError::Syntax);
        };
        once(slot, rest.value()?)?;
    }
    let quota_arg = &req[2];
    let (limit, unit) = parse_quota(&args::text(quota_arg)).map_err(|e| {
        CommandError::other(format!("invalid quota '{}': {e}", args::text(quota_arg)))
    })?;
    // The zone and anchor errors already quote the argument.
    let tz = match tz {
        Some(z) => parse_zone(&args::text(z)).map_err(|e| CommandError::other(e.to_string()))?,
        None => jiff::tz::TimeZone::UTC,
    };
    let anchor = match anchor {
        Some(a) => {
            parse_anchor(unit, &args::text(a)).map_err(|e| CommandError::other(e.to_string()))?
        }
        None => Anchor::default(),
    };
    // `CARRY 0` is accepted and means no carry-over, as when the option is left out.
    let carry = match carry {
        Some(c) if c.as_ref() == b"0" => 0,
        Some(c) => count("CARRY", c)?,
        None => 0,
    };
    let cost = cost.map_or(Ok(1), |c| count("COST", c))?;
    // parse_quota refuses a zero count, the only condition QuotaParams::new checks.
    let params = QuotaParams::new(limit, Calendar::new(unit, tz, anchor), carry)
        .map_err(|e| CommandError::other(e.to_string()))?;
    Ok(QuotaTake { params, cost })
}

/// The uniform reply with QUOTA's extras.
fn reply(o: &QuotaOutcome) -> Frame {
    let ms = |n: Nanos| uint(n.as_millis());
    decision_reply(
        &o.decision,
        [
            ("period_start_ms", ms(o.period.start)),
            ("period_end_ms", ms(o.period.end)),
            ("used", uint(o.used)),
            ("carry", uint(o.carry)),
        ],
    )
}

/// Runs the transition in the engine; a peek throws the new state away.
fn run(ctx: &mut Ctx<'_>, req: &[Bytes], take: Take) -> Result<Frame, CommandError> {
    let QuotaTake { params, cost } = parse(req)?;
    let outcome = ctx.call().quota(&req[1], &params, cost, take)?;
    Ok(reply(&outcome))
}

/// `QUOTA.TAKE`: charges `cost` units to the calendar period containing now, if they fit.
///
/// ```text
/// QUOTA.TAKE key N/period [TZ zone] [ANCHOR anchor] [CARRY n] [COST n]
///   period := minute | hour | day | week | month          (case-insensitive)
///   zone   := UTC | +HH:MM | -HH:MM | +HH | IANA name     (default UTC)
///   anchor := :MM (hour) | HH:MM (day) | weekday[@HH:MM] (week) | 1-31[@HH:MM] (month)
///   CARRY  := unused units carried into the next period, at most n (default 0)
///   COST   := units to charge, >= 1 (default 1)
/// ```
///
/// Reply: the uniform admission reply (`allowed`, `limit` = N + carry, `remaining`,
/// `retry_after_ms`, `reset_after_ms` = until the period ends) plus `period_start_ms`,
/// `period_end_ms` (Unix ms), `used` and `carry`. An admitted take stores the key, which
/// expires when its period ends (one period later while its unused units still raise the next
/// carry); a denial writes nothing.
///
/// Errors: `ERR syntax error` (unknown, repeated or valueless option), `ERR invalid quota
/// '...': ...`, `ERR unknown time zone '...'`, `ERR invalid anchor '...' for a ... period
/// (expected ...)`, `ERR invalid CARRY '...': ...`, `ERR invalid COST '...': ...`,
/// `WRONGTYPE` for a key of another kind.
fn quota_take(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    run(ctx, req, Take::Charge)
}

/// `QUOTA.PEEK`: exactly what `QUOTA.TAKE` with the same arguments would answer now; writes
/// nothing, never creates the key, never changes its TTL.
///
/// ```text
/// QUOTA.PEEK key N/period [TZ zone] [ANCHOR anchor] [CARRY n] [COST n]
/// ```
///
/// Reply and errors: as `QUOTA.TAKE`.
fn quota_peek(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    run(ctx, req, Take::Peek)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::cmd::testing::*;
    use crate::protocol::Frame;

    const HOUR_MS: i64 = 3_600_000;
    const DAY_MS: i64 = 24 * HOUR_MS;

    fn ms(s: &str) -> i64 {
        unix_ms(s)
    }

    /// The uniform QUOTA reply.
    #[allow(clippy::too_many_arguments)]
    fn quota(
        allowed: bool,
        limit: i64,
        remaining: i64,
        retry: i64,
        reset: i64,
        start: i64,
        end: i64,
        used: i64,
        carry: i64,
    ) -> Frame {
        Frame::Map(vec![
            (bulk("allowed"), Frame::Boolean(allowed)),
            (bulk("limit"), int(limit)),
            (bulk("remaining"), int(remaining)),
            (bulk("retry_after_ms"), int(retry)),
            (bulk("reset_after_ms"), int(reset)),
            (bulk("period_start_ms"), int(start)),
            (bulk("period_end_ms"), int(end)),
            (bulk("used"), int(used)),
            (bulk("carry"), int(carry)),
        ])
    }

    fn get_int(f: &Frame, name: &str) -> i64 {
        match get(f, name) {
            Frame::Integer(n) => n,
            other => panic!("{name} is not an integer: {other:?}"),
        }
    }

    fn allowed(f: &Frame) -> bool {
        get(f, "allowed") == Frame::Boolean(true)
    }

    #[test]
    fn take_charges_the_period_and_replies_with_every_field() {
        let mut h = Harness::new();
        let start = ms("2026-01-01T00:00:00Z");
        let end = ms("2026-01-02T00:00:00Z");
        assert_eq!(
            h.run(&["QUOTA.TAKE", "k", "3/day"]),
            quota(true, 3, 2, -1, DAY_MS, start, end, 1, 0),
            "first take"
        );
        assert_eq!(
            h.run(&["quota.take", "k", "3/Day", "cost", "2"]),
            quota(true, 3, 0, -1, DAY_MS, start, end, 3, 0),
            "lowercase command and option"
        );
        h.clock.advance(Duration::from_secs(3600));
        assert_eq!(
            h.run(&["QUOTA.TAKE", "k", "3/day"]),
            quota(false, 3, 0, 23 * HOUR_MS, 23 * HOUR_MS, start, end, 3, 0),
            "spent: denied until the day ends"
        );
        assert_eq!(
            (h.session.stats.allowed, h.session.stats.denied),
            (2, 1),
            "takes are counted"
        );
    }

    #[test]
    fn retry_after_is_exact() {
        let mut h = Harness::new();
        h.clock.advance(Duration::from_millis(12_345));
        h.run(&["QUOTA.TAKE", "k", "2/minute", "COST", "2"]);
        let denied = h.run(&["QUOTA.TAKE", "k", "2/minute"]);
        assert!(!allowed(&denied), "spent");
        let retry = get_int(&denied, "retry_after_ms");
        assert_eq!(retry, 60_000 - 12_345, "until the minute ends");
        h.clock.advance(Duration::from_millis(retry as u64 - 1));
        assert!(
            !allowed(&h.run(&["QUOTA.TAKE", "k", "2/minute"])),
            "1 ms before retry_after"
        );
        h.clock.advance(Duration::from_millis(1));
        assert!(
            allowed(&h.run(&["QUOTA.TAKE", "k", "2/minute"])),
            "at retry_after"
        );
        // A cost above the allowance can never fit: no retry.
        let never = h.run(&["QUOTA.TAKE", "k", "2/minute", "COST", "3"]);
        assert_eq!(get_int(&never, "retry_after_ms"), -1, "never fits");
        assert!(!allowed(&never), "never fits");
    }

    #[test]
    fn peek_changes_nothing() {
        let mut h = Harness::new();
        let args = ["k", "5/hour"];
        let peek =
            |h: &mut Harness, cost: &str| h.run(&["QUOTA.PEEK", args[0], args[1], "COST", cost]);
        let fresh = peek(&mut h, "1");
        assert!(allowed(&fresh), "fresh key");
        assert_eq!(h.run(&["EXISTS", "k"]), int(0), "a peek creates no key");
        h.run(&["QUOTA.TAKE", "k", "5/hour", "COST", "3"]);
        h.clock.advance(Duration::from_secs(60));
        let (pttl, ty) = (h.run(&["PTTL", "k"]), h.run(&["TYPE", "k"]));
        let first = peek(&mut h, "2");
        assert_eq!(peek(&mut h, "2"), first, "a second peek answers the same");
        assert_eq!(h.run(&["TYPE", "k"]), ty, "type unchanged");
        assert_eq!(h.run(&["PTTL", "k"]), pttl, "TTL unchanged");
        assert_eq!(
            h.run(&["QUOTA.TAKE", "k", "5/hour", "COST", "2"]),
            first,
            "the take answers what the peek predicted"
        );
        let denied = peek(&mut h, "1");
        assert!(!allowed(&denied), "peek of a spent quota");
        assert_eq!(
            (h.session.stats.allowed, h.session.stats.denied),
            (2, 0),
            "peeks are not counted"
        );
    }

    #[test]
    fn key_expires_when_its_period_ends() {
        let mut h = Harness::new();
        h.clock.advance(Duration::from_secs(600));
        let r = h.run(&["QUOTA.TAKE", "k", "10/hour"]);
        let reset = get_int(&r, "reset_after_ms");
        assert_eq!(reset, 50 * 60_000, "reset at the hour");
        assert_eq!(h.run(&["PTTL", "k"]), int(reset), "PTTL is the reset time");
        assert_eq!(h.run(&["TYPE", "k"]), simple("quota"));
        h.clock.advance(Duration::from_millis(reset as u64 - 1));
        assert_eq!(h.run(&["EXISTS", "k"]), int(1), "1 ms before the end");
        h.clock.advance(Duration::from_millis(1));
        assert_eq!(h.run(&["EXISTS", "k"]), int(0), "gone at the period end");

        // Unused units that would raise the next carry keep the key one period more.
        let r = h.run(&["QUOTA.TAKE", "c", "10/hour", "CARRY", "2", "COST", "9"]);
        assert_eq!(get_int(&r, "reset_after_ms"), HOUR_MS, "carry: reset");
        assert_eq!(
            h.run(&["PTTL", "c"]),
            int(2 * HOUR_MS),
            "kept while its carry (1) differs from a fresh key's (2)"
        );
    }

    #[test]
    fn days_follow_dst_in_the_zone() {
        let mut h = Harness::new();
        // (label, zone, start of the local day, its end, hours)
        let cases = [
            (
                "Berlin spring forward",
                "Europe/Berlin",
                "2026-03-29T00:00:00+01:00",
                "2026-03-30T00:00:00+02:00",
                23,
            ),
            (
                "Berlin fall back",
                "Europe/Berlin",
                "2026-10-25T00:00:00+02:00",
                "2026-10-26T00:00:00+01:00",
                25,
            ),
            (
                "New York spring forward",
                "America/New_York",
                "2026-03-08T00:00:00-05:00",
                "2026-03-09T00:00:00-04:00",
                23,
            ),
            (
                "fixed offset",
                "+05:30",
                "2026-03-29T00:00:00+05:30",
                "2026-03-30T00:00:00+05:30",
                24,
            ),
        ];
        for (i, (label, zone, start, end, hours)) in cases.into_iter().enumerate() {
            let key = format!("k{i}");
            set_clock(&h, start);
            let args = ["QUOTA.TAKE", &key, "1/day", "TZ", zone];
            let (s, e) = (ms(start), ms(end));
            assert_eq!(e - s, hours * HOUR_MS, "{label}: test data");
            assert_eq!(
                h.run(&args),
                quota(true, 1, 0, -1, e - s, s, e, 1, 0),
                "{label}: first take"
            );
            h.clock.advance(Duration::from_millis((e - s - 1) as u64));
            assert_eq!(
                get_int(&h.run(&args), "retry_after_ms"),
                1,
                "{label}: denied 1 ms before the local midnight"
            );
            h.clock.advance(Duration::from_millis(1));
            let next = h.run(&args);
            assert!(allowed(&next), "{label}: allowed at the local midnight");
            assert_eq!(get_int(&next, "period_start_ms"), e, "{label}: next day");
        }
    }

    #[test]
    fn months_end_on_their_last_day() {
        let mut h = Harness::new();
        // (label, now, period start, period end, days)
        let cases = [
            (
                "January",
                "2026-01-31T23:59:59Z",
                "2026-01-01T00:00:00Z",
                "2026-02-01T00:00:00Z",
                31,
            ),
            (
                "February",
                "2026-02-14T12:00:00Z",
                "2026-02-01T00:00:00Z",
                "2026-03-01T00:00:00Z",
                28,
            ),
            (
                "leap February",
                "2028-02-29T00:00:00Z",
                "2028-02-01T00:00:00Z",
                "2028-03-01T00:00:00Z",
                29,
            ),
            (
                "April",
                "2026-04-01T00:00:00Z",
                "2026-04-01T00:00:00Z",
                "2026-05-01T00:00:00Z",
                30,
            ),
        ];
        for (i, (label, now, start, end, days)) in cases.into_iter().enumerate() {
            set_clock(&h, now);
            let key = format!("m{i}");
            let r = h.run(&["QUOTA.TAKE", &key, "100/month"]);
            let (s, e) = (ms(start), ms(end));
            assert_eq!(e - s, days * DAY_MS, "{label}: test data");
            assert_eq!(get_int(&r, "period_start_ms"), s, "{label}: start");
            assert_eq!(get_int(&r, "period_end_ms"), e, "{label}: end");
            assert_eq!(get_int(&r, "reset_after_ms"), e - ms(now), "{label}: reset");
        }
    }

    #[test]
    fn billing_anchor_resets_on_the_17th() {
        let mut h = Harness::new();
        let args = ["QUOTA.TAKE", "bill", "2/month", "ANCHOR", "17"];
        let start = ms("2025-12-17T00:00:00Z");
        let end = ms("2026-01-17T00:00:00Z");
        let now = ms("2026-01-01T00:00:00Z");
        assert_eq!(
            h.run(&["QUOTA.TAKE", "bill", "2/month", "ANCHOR", "17", "COST", "2"]),
            quota(true, 2, 0, -1, end - now, start, end, 2, 0),
            "period from Dec 17 to Jan 17"
        );
        let denied = h.run(&args);
        assert_eq!(
            get_int(&denied, "retry_after_ms"),
            end - now,
            "retry at the 17th"
        );
        set_clock(&h, "2026-01-16T23:59:59.999Z");
        assert!(!allowed(&h.run(&args)), "1 ms before the 17th");
        set_clock(&h, "2026-01-17T00:00:00Z");
        let r = h.run(&args);
        assert!(allowed(&r), "on the 17th");
        assert_eq!(
            get_int(&r, "period_end_ms"),
            ms("2026-02-17T00:00:00Z"),
            "next period ends Feb 17"
        );
        // Anchors for the other units, and a day-31 anchor clamped to February's end.
        set_clock(&h, "2026-02-20T10:45:00Z");
        let cases = [
            (
                "hour at :30",
                "1/hour",
                ":30",
                "2026-02-20T10:30:00Z",
                "2026-02-20T11:30:00Z",
            ),
            (
                "day at 06:00",
                "1/day",
                "06:00",
                "2026-02-20T06:00:00Z",
                "2026-02-21T06:00:00Z",
            ),
            (
                "week from Sunday 09:00",
                "1/week",
                "sun@09:00",
                "2026-02-15T09:00:00Z",
                "2026-02-22T09:00:00Z",
            ),
            (
                "month day 31",
                "1/month",
                "31",
                "2026-01-31T00:00:00Z",
                "2026-02-28T00:00:00Z",
            ),
            (
                "month day 20 at 12:00",
                "1/month",
                "20@12:00",
                "2026-01-20T12:00:00Z",
                "2026-02-20T12:00:00Z",
            ),
        ];
        for (label, q, anchor, start, end) in cases {
            let r = h.run(&["QUOTA.PEEK", label, q, "ANCHOR", anchor]);
            assert_eq!(get_int(&r, "period_start_ms"), ms(start), "{label}: start");
            assert_eq!(get_int(&r, "period_end_ms"), ms(end), "{label}: end");
        }
    }

    #[test]
    fn unused_units_carry_over_up_to_the_cap() {
        let mut h = Harness::new();
        let take = |h: &mut Harness, cost: &str| {
            h.run(&["QUOTA.TAKE", "k", "10/day", "CARRY", "3", "COST", cost])
        };
        // (label, cost, allowed, limit, remaining, used, carry)
        type Case = (&'static str, &'static str, bool, i64, i64, i64, i64);
        let days: [[Case; 2]; 3] = [
            [
                ("fresh key carries the cap", "2", true, 13, 11, 2, 3),
                ("over the allowance", "12", false, 13, 11, 2, 3),
            ],
            [
                ("8 unused, carry capped at 3", "12", true, 13, 1, 12, 3),
                ("rest of the allowance", "1", true, 13, 0, 13, 3),
            ],
            [
                ("nothing unused: no carry", "10", true, 10, 0, 10, 0),
                ("limit without carry", "1", false, 10, 0, 10, 0),
            ],
        ];
        for day in days {
            for (label, cost, ok, limit, remaining, used, carry) in day {
                let r = take(&mut h, cost);
                assert_eq!(allowed(&r), ok, "{label}: allowed");
                assert_eq!(get_int(&r, "limit"), limit, "{label}: limit");
                assert_eq!(get_int(&r, "remaining"), remaining, "{label}: remaining");
                assert_eq!(get_int(&r, "used"), used, "{label}: used");
                assert_eq!(get_int(&r, "carry"), carry, "{label}: carry");
            }
            h.clock.advance(Duration::from_secs(86_400));
        }
        // A cap above the limit carries at most the limit.
        let r = h.run(&["QUOTA.PEEK", "big", "10/day", "CARRY", "50"]);
        assert_eq!(get_int(&r, "carry"), 10, "carry never exceeds the limit");
        assert_eq!(get_int(&r, "limit"), 20, "allowance");
    }

    #[test]
    fn changing_the_limit_mid_period_keeps_what_was_used() {
        let mut h = Harness::new();
        h.run(&["QUOTA.TAKE", "k", "100/day", "COST", "60"]);
        let lower = h.run(&["QUOTA.TAKE", "k", "50/day"]);
        assert!(!allowed(&lower), "60 used is over the new 50");
        assert_eq!(
            (get_int(&lower, "used"), get_int(&lower, "remaining")),
            (60, 0),
            "lowered"
        );
        let higher = h.run(&["QUOTA.TAKE", "k", "200/day"]);
        assert_eq!(
            (get_int(&higher, "used"), get_int(&higher, "remaining")),
            (61, 139),
            "raised"
        );
    }

    #[test]
    fn bad_arguments_are_clear_errors() {
        let mut h = Harness::new();
        let cases: &[(&[&str], &str)] = &[
            (&["k"], "ERR wrong number of arguments for 'quota.take' command"),
            (&["k", "1000"], "ERR invalid quota '1000': quota must look like N/period, e.g. 1000/day"),
            (&["k", "0/day"], "ERR invalid quota '0/day': quota count: value must be greater than zero"),
            (&["k", "-5/day"], "ERR invalid quota '-5/day': quota count: value must not be negative"),
            (&["k", "99999999999999999999/day"], "ERR invalid quota '99999999999999999999/day': quota count: value is out of range"),
            (&["k", "5/fortnight"], "ERR invalid quota '5/fortnight': unknown period 'fortnight' (use minute, hour, day, week or month)"),
            (&["k", "5/day", "TZ", "Mars/Olympus"], "ERR unknown time zone 'Mars/Olympus'"),
            (&["k", "5/day", "TZ", "+19:00"], "ERR unknown time zone '+19:00'"),
            (&["k", "5/month", "ANCHOR", "32"], "ERR invalid anchor '32' for a month period (expected a day 1-31, optionally @HH:MM)"),
            (&["k", "5/minute", "ANCHOR", ":30"], "ERR invalid anchor ':30' for a minute period (expected no anchor)"),
            (&["k", "5/day", "ANCHOR", "24:00"], "ERR invalid anchor '24:00' for a day period (expected HH:MM)"),
            (&["k", "5/day", "CARRY", "-1"], "ERR invalid CARRY '-1': value must be greater than zero"),
            (&["k", "5/day", "COST", "0"], "ERR invalid COST '0': value must be greater than zero"),
            (&["k", "5/day", "COST", "1.5"], "ERR invalid COST '1.5': must be a whole number greater than zero"),
            (&["k", "5/day", "COST", "99999999999999999999"], "ERR invalid COST '99999999999999999999': must be a whole number greater than zero"),
            (&["k", "5/day", "COST"], "ERR syntax error"),
            (&["k", "5/day", "COST", "1", "COST", "1"], "ERR syntax error"),
            (&["k", "5/day", "tz", "UTC", "TZ", "UTC"], "ERR syntax error"),
            (&["k", "5/day", "BURST", "1"], "ERR syntax error"),
            (&["k", "5/day", "COST", "0", "NOPE"], "ERR syntax error"),
        ];
        for cmd in ["QUOTA.TAKE", "QUOTA.PEEK"] {
            for (args, want) in cases {
                let mut words = vec![cmd];
                words.extend_from_slice(args);
                let want = want.replace("quota.take", &cmd.to_ascii_lowercase());
                assert_eq!(h.run(&words), err(&want), "{words:?}");
            }
        }
        assert_eq!(h.run(&["EXISTS", "k"]), int(0), "errors write nothing");
        // CARRY 0 is the default, spelled out.
        assert!(
            allowed(&h.run(&["QUOTA.PEEK", "k", "5/day", "CARRY", "0"])),
            "CARRY 0"
        );
    }

    #[test]
    fn keys_of_another_kind_are_wrongtype() {
        let mut h = Harness::new();
        h.run(&["SET", "s", "v"]);
        for cmd in ["QUOTA.TAKE", "QUOTA.PEEK"] {
            assert_eq!(
                h.run(&[cmd, "s", "5/day"]),
                err(WRONGTYPE),
                "{cmd} on a string"
            );
        }
        h.run(&["QUOTA.TAKE", "q", "5/day"]);
        assert_eq!(h.run(&["GET", "q"]), err(WRONGTYPE), "GET on a quota");
        assert_eq!(
            h.run(&["GCRA", "q", "1", "1", "1"]),
            err(WRONGTYPE),
            "GCRA on a quota"
        );
    }
}
