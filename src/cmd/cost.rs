//! COST commands (issue 3): `COST.INCRBY` and its read-only twin `COST.PEEK`, the command
//! layer over [`crate::limiter::cost`] (exact 6-digit decimal budgets capped per calendar
//! period or per rolling window). Parses arguments, runs the transition in the engine
//! ([`crate::engine::Call::cost`]) and renders the uniform reply, with
//! `limit` and `remaining` as exact decimal strings. No socket, no clock read, no floats.

use std::borrow::Cow;

use bytes::Bytes;

use super::args::{self, is, Args};
use super::flags::*;
use super::limiter::{decision_reply_with, duration, uint};
use super::{CommandSpec, Ctx, BASE};
use crate::clock::Nanos;
use crate::engine::Take;
use crate::error::CommandError;
use crate::limiter::cost::{Amount, CostOutcome, CostParams, CostPeriod};
use crate::limiter::quota::{
    parse_anchor, parse_zone, Anchor, Calendar, Period, PeriodUnit, QuotaParamError,
};
use crate::protocol::{Frame, InlineText, Scalar};

/// COST commands.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "COST.INCRBY",
        arity: -7,
        flags: WRITE | DENYOOM | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "rate_limit",
        summary: "Charges (or refunds) an exact decimal amount against a budget capped per calendar period or rolling window.",
        since: "0.1.0",
        args: "key:key amount:string CAP cap:string \
               (PER period:string [TZ zone:string] [ANCHOR anchor:string] | WINDOW window:string) \
               [FORCE]",
        handler: cost_incrby,
        ..BASE
    },
    CommandSpec {
        name: "COST.PEEK",
        arity: -7,
        flags: READONLY | FAST,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        group: "rate_limit",
        summary: "Reports what COST.INCRBY would answer now, without charging or touching the key.",
        since: "0.1.0",
        args: "key:key amount:string CAP cap:string \
               (PER period:string [TZ zone:string] [ANCHOR anchor:string] | WINDOW window:string)",
        handler: cost_peek,
        ..BASE
    },
];

/// A parsed `COST.INCRBY` / `COST.PEEK` request.
#[derive(Debug)]
struct CostIncrby {
    params: CostParams,
    amount: Amount,
    force: bool,
}

/// Stores `slot`'s value once; a repeated option is a syntax error.
fn once<'a>(slot: &mut Option<&'a Bytes>, value: &'a Bytes) -> Result<(), CommandError> {
    if slot.replace(value).is_some() {
        return Err(CommandError::Syntax);
    }
    Ok(())
}

/// A decimal argument, or `ERR invalid <what> '<arg>': <why>`.
fn decimal(what: &str, arg: &[u8]) -> Result<Amount, CommandError> {
    Amount::parse_bytes(arg)
        .map_err(|e| CommandError::other(format!("invalid {what} '{}': {e}", args::text(arg))))
}

/// An argument as text: borrowed when it is UTF-8 (no allocation per request), else the
/// lossy copy the error messages show.
fn text(arg: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(arg) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(args::text(arg)),
    }
}

fn quota_error(e: QuotaParamError) -> CommandError {
    CommandError::other(e.to_string())
}

/// Parses `key amount CAP cap (PER unit [TZ zone] [ANCHOR a] | WINDOW d) [FORCE]` (name at
/// index 0); `FORCE` only when `allow_force`. Options may come in any order. Grammar errors
/// (unknown, repeated or valueless options, no CAP, neither or both of PER and WINDOW, TZ or
/// ANCHOR without PER) are `ERR syntax error` and come before value errors.
fn parse(req: &[Bytes], allow_force: bool) -> Result<CostIncrby, CommandError> {
    let (mut cap, mut per, mut tz, mut anchor, mut window) = (None, None, None, None, None);
    let mut force = false;
    let mut rest = Args::new(req, 3);
    while let Some(opt) = rest.next() {
        if allow_force && is(opt, "FORCE") {
            if force {
                return Err(CommandError::Syntax);
            }
            force = true;
            continue;
        }
        let slot = if is(opt, "CAP") {
            &mut cap
        } else if is(opt, "PER") {
            &mut per
        } else if is(opt, "TZ") {
            &mut tz
        } else if is(opt, "ANCHOR") {
            &mut anchor
        } else if is(opt, "WINDOW") {
            &mut window
        } else {
            return Err(CommandError::Syntax);
        };
        once(slot, rest.value()?)?;
    }
    let Some(cap) = cap else {
        return Err(CommandError::Syntax);
    };
    // Exactly one of PER and WINDOW; TZ and ANCHOR only refine PER.
    let per = match (per, window) {
        (Some(unit), None) => Ok(unit),
        (None, Some(w)) if tz.is_none() && anchor.is_none() => Err(w),
        _ => return Err(CommandError::Syntax),
    };
    let amount = decimal("amount", &req[2])?;
    let cap_amount = decimal("cap", cap)?;
    let per = match per {
        Ok(unit) => {
            let unit = PeriodUnit::from_name(unit)
                .ok_or_else(|| quota_error(QuotaParamError::UnknownPeriod(args::text(unit))))?;
            let tz = match tz {
                Some(z) => parse_zone(&text(z)).map_err(quota_error)?,
                None => jiff::tz::TimeZone::UTC,
            };
            let anchor = match anchor {
                Some(a) => parse_anchor(unit, &text(a)).map_err(quota_error)?,
                None => Anchor::default(),
            };
            CostPeriod::Calendar(Calendar::new(unit, tz, anchor))
        }
        Err(window) => CostPeriod::Rolling(duration("window", window)?),
    };
    let params = CostParams::new(cap_amount, per)
        .map_err(|e| CommandError::other(format!("invalid cap '{}': {e}", args::text(cap))))?;
    Ok(CostIncrby {
        params,
        amount,
        force,
    })
}

/// Micro-units as an [`Amount`]: caps are positive i64 micro-units and `remaining` never
/// exceeds the cap.
fn amount(micros: u64) -> Amount {
    Amount(i64::try_from(micros).unwrap_or(i64::MAX))
}

/// The amount as an exact decimal bulk string (`10`, `9.5`, `0.000001`), held inline.
fn decimal_text(a: Amount) -> Scalar {
    const _: () = assert!(Amount::MAX_TEXT_LEN <= InlineText::CAPACITY);
    Scalar::Text(InlineText::new(a.encode(&mut [0; Amount::MAX_TEXT_LEN])))
}

/// The uniform reply with `limit`/`remaining` as decimal strings, plus `spent`, `recorded`
/// and, for a calendar cap, the period bounds.
fn reply(o: &CostOutcome, period: Option<Period>) -> Frame {
    let [limit, remaining, spent, recorded] = [
        amount(o.decision.limit),
        amount(o.decision.remaining),
        o.spent,
        o.recorded,
    ]
    .map(decimal_text);
    match period {
        Some(p) => {
            let ms = |n: Nanos| uint(n.as_millis());
            decision_reply_with(
                &o.decision,
                limit,
                remaining,
                [
                    ("spent", spent),
                    ("recorded", recorded),
                    ("period_start_ms", ms(p.start)),
                    ("period_end_ms", ms(p.end)),
                ],
            )
        }
        None => decision_reply_with(
            &o.decision,
            limit,
            remaining,
            [("spent", spent), ("recorded", recorded)],
        ),
    }
}

/// Runs the transition in the engine; a peek throws the new state away.
fn run(ctx: &mut Ctx<'_>, req: &[Bytes], take: Take) -> Result<Frame, CommandError> {
    let CostIncrby {
        params,
        amount,
        force,
    } = parse(req, take == Take::Charge)?;
    let outcome = ctx.call().cost(&req[1], &params, amount, force, take)?;
    Ok(reply(&outcome, outcome.period))
}

/// `COST.INCRBY`: charges `amount` to the budget if it fits the cap (all-or-nothing), or
/// refunds a negative amount.
///
/// ```text
/// COST.INCRBY key amount CAP cap (PER period [TZ zone] [ANCHOR anchor] | WINDOW duration) [FORCE]
///   amount, cap := [-]digits[.digits]   at most 6 fractional digits; cap > 0
///   period      := minute | hour | day | week | month   (calendar periods as in QUOTA)
///   duration    := digits (ms | s | m | h | d)           (a rolling window)
///   FORCE       := record the charge even past the cap
/// ```
///
/// Reply: the uniform admission reply in which `limit` (the cap) and `remaining` are exact
/// decimal **bulk strings**, plus `spent` and `recorded` (decimal strings) and, for `PER`,
/// `period_start_ms` and `period_end_ms` (Unix ms). `allowed` says whether the charge fitted
/// (refunds always do); `recorded` is what was booked: the amount, the refund clipped at zero
/// spent (negative), or `0`. A key whose spend returns to zero is deleted; otherwise it
/// expires at its period's end (or two windows after the current window's start).
///
/// Errors: `ERR syntax error` (unknown, repeated or valueless option, no `CAP`, neither or
/// both of `PER` and `WINDOW`, `TZ`/`ANCHOR` with `WINDOW`), `ERR invalid amount '...': ...`,
/// `ERR invalid cap '...': ...`, `ERR unknown period '...' (...)`, `ERR unknown time zone
/// '...'`, `ERR invalid anchor '...' ...`, `ERR invalid window '...': ...`, `WRONGTYPE`.
fn cost_incrby(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    run(ctx, req, Take::Charge)
}

/// `COST.PEEK`: exactly what `COST.INCRBY` with the same arguments (without `FORCE`) would
/// answer now; writes nothing, never creates the key, never changes its TTL.
///
/// ```text
/// COST.PEEK key amount CAP cap (PER period [TZ zone] [ANCHOR anchor] | WINDOW duration)
/// ```
///
/// Reply and errors: as `COST.INCRBY` (`FORCE` is a syntax error here).
fn cost_peek(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
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

    fn get_int(f: &Frame, name: &str) -> i64 {
        match get(f, name) {
            Frame::Integer(n) => n,
            other => panic!("{name} is not an integer: {other:?}"),
        }
    }

    fn allowed(f: &Frame) -> bool {
        get(f, "allowed") == Frame::Boolean(true)
    }

    /// (allowed, remaining, spent, recorded) of a reply.
    fn summary(f: &Frame) -> (bool, Frame, Frame, Frame) {
        (
            allowed(f),
            get(f, "remaining"),
            get(f, "spent"),
            get(f, "recorded"),
        )
    }

    fn incr(h: &mut Harness, key: &str, amount: &str, rest: &[&str]) -> Frame {
        let mut words = vec!["COST.INCRBY", key, amount];
        words.extend_from_slice(rest);
        h.run(&words)
    }

    const DAILY: &[&str] = &["CAP", "10", "PER", "day"];

    #[test]
    fn incrby_charges_exact_decimals_and_replies_with_every_field() {
        let mut h = Harness::new();
        let start = ms("2026-01-01T00:00:00Z");
        let end = ms("2026-01-02T00:00:00Z");
        assert_eq!(
            incr(&mut h, "k", "0.1", DAILY),
            Frame::Map(vec![
                (bulk("allowed"), Frame::Boolean(true)),
                (bulk("limit"), bulk("10")),
                (bulk("remaining"), bulk("9.9")),
                (bulk("retry_after_ms"), int(-1)),
                (bulk("reset_after_ms"), int(DAY_MS)),
                (bulk("spent"), bulk("0.1")),
                (bulk("recorded"), bulk("0.1")),
                (bulk("period_start_ms"), int(start)),
                (bulk("period_end_ms"), int(end)),
            ]),
            "first charge"
        );
        for _ in 0..9 {
            incr(&mut h, "k", "0.1", DAILY);
        }
        assert_eq!(
            summary(&incr(&mut h, "k", "0.000001", &["cap", "10", "per", "DAY"])),
            (true, bulk("8.999999"), bulk("1.000001"), bulk("0.000001")),
            "ten times 0.1 is exactly 1; options are case-insensitive"
        );
        assert_eq!(
            (h.session.stats.allowed, h.session.stats.denied),
            (11, 0),
            "charges are counted"
        );
    }

    #[test]
    fn charges_are_all_or_nothing_and_retry_after_is_exact() {
        let mut h = Harness::new();
        h.clock.advance(Duration::from_secs(3600));
        incr(&mut h, "k", "9.5", DAILY);
        let denied = incr(&mut h, "k", "0.500001", DAILY);
        assert_eq!(
            summary(&denied),
            (false, bulk("0.5"), bulk("9.5"), bulk("0")),
            "over the cap: nothing recorded"
        );
        let retry = get_int(&denied, "retry_after_ms");
        assert_eq!(retry, 23 * HOUR_MS, "until the day ends");
        assert_eq!(get_int(&denied, "reset_after_ms"), 23 * HOUR_MS, "reset");
        h.clock.advance(Duration::from_millis(retry as u64 - 1));
        assert!(
            !allowed(&incr(&mut h, "k", "0.500001", DAILY)),
            "1 ms before retry_after"
        );
        h.clock.advance(Duration::from_millis(1));
        assert_eq!(
            summary(&incr(&mut h, "k", "0.500001", DAILY)),
            (true, bulk("9.499999"), bulk("0.500001"), bulk("0.500001")),
            "at retry_after, in a fresh day"
        );
        let never = incr(&mut h, "k", "10.000001", DAILY);
        assert_eq!(
            (allowed(&never), get_int(&never, "retry_after_ms")),
            (false, -1),
            "an amount above the cap never fits"
        );
        assert_eq!(h.session.stats.denied, 3, "denials are counted");
    }

    #[test]
    fn force_records_spend_past_the_cap() {
        let mut h = Harness::new();
        incr(&mut h, "k", "9.5", DAILY);
        let mut args = DAILY.to_vec();
        args.push("FORCE");
        let forced = incr(&mut h, "k", "1.25", &args);
        assert_eq!(
            summary(&forced),
            (false, bulk("0"), bulk("10.75"), bulk("1.25")),
            "did not fit, recorded anyway"
        );
        assert_eq!(
            get_int(&forced, "retry_after_ms"),
            DAY_MS,
            "a retry of the same amount fits tomorrow"
        );
        let fits = incr(&mut h, "f", "1", &["force", "CAP", "10", "PER", "day"]);
        assert_eq!(
            summary(&fits),
            (true, bulk("9"), bulk("1"), bulk("1")),
            "FORCE anywhere; a fitting forced charge is allowed"
        );
    }

    #[test]
    fn negative_amounts_refund_but_never_below_zero() {
        let mut h = Harness::new();
        incr(&mut h, "k", "3", DAILY);
        assert_eq!(
            summary(&incr(&mut h, "k", "-1.5", DAILY)),
            (true, bulk("8.5"), bulk("1.5"), bulk("-1.5")),
            "refund"
        );
        let pttl = h.run(&["PTTL", "k"]);
        assert_eq!(pttl, int(DAY_MS), "a refund keeps the period's expiry");
        assert_eq!(
            summary(&incr(&mut h, "k", "-7", DAILY)),
            (true, bulk("10"), bulk("0"), bulk("-1.5")),
            "clipped at zero"
        );
        assert_eq!(
            h.run(&["EXISTS", "k"]),
            int(0),
            "nothing spent: the key is gone"
        );
        assert_eq!(
            summary(&incr(&mut h, "k", "-1", DAILY)),
            (true, bulk("10"), bulk("0"), bulk("0")),
            "refund on a fresh key records nothing"
        );
        assert_eq!(h.run(&["EXISTS", "k"]), int(0), "and creates no key");
    }

    #[test]
    fn rolling_window_retry_after_is_exact() {
        let mut h = Harness::new();
        let hourly = ["CAP", "10", "WINDOW", "1h"];
        let first = incr(&mut h, "k", "6", &hourly);
        assert_eq!(
            first,
            Frame::Map(vec![
                (bulk("allowed"), Frame::Boolean(true)),
                (bulk("limit"), bulk("10")),
                (bulk("remaining"), bulk("4")),
                (bulk("retry_after_ms"), int(-1)),
                (bulk("reset_after_ms"), int(2 * HOUR_MS)),
                (bulk("spent"), bulk("6")),
                (bulk("recorded"), bulk("6")),
            ]),
            "rolling caps have no period bounds"
        );
        assert_eq!(
            h.run(&["PTTL", "k"]),
            int(2 * HOUR_MS),
            "PTTL is the reset time"
        );
        let denied = incr(&mut h, "k", "5", &hourly);
        // 6·(W-e)/W + 5 <= 10 from e = W/6 in the next window: 70 minutes.
        let retry = get_int(&denied, "retry_after_ms");
        assert_eq!(retry, 70 * 60_000, "exact retry");
        h.clock.advance(Duration::from_millis(retry as u64 - 1));
        assert!(
            !allowed(&incr(&mut h, "k", "5", &hourly)),
            "1 ms before retry_after"
        );
        h.clock.advance(Duration::from_millis(1));
        let ok = incr(&mut h, "k", "5", &hourly);
        assert_eq!(
            summary(&ok),
            (true, bulk("0"), bulk("10"), bulk("5")),
            "at retry_after: 6·5/6 + 5"
        );
        h.clock.advance(Duration::from_secs(2 * 3600));
        assert_eq!(h.run(&["EXISTS", "k"]), int(0), "fresh two windows later");
    }

    #[test]
    fn peek_changes_nothing() {
        let mut h = Harness::new();
        let peek = |h: &mut Harness, amount: &str| {
            let mut words = vec!["COST.PEEK", "k", amount];
            words.extend_from_slice(DAILY);
            h.run(&words)
        };
        assert!(allowed(&peek(&mut h, "5")), "fresh key");
        assert_eq!(h.run(&["EXISTS", "k"]), int(0), "a peek creates no key");
        incr(&mut h, "k", "4", DAILY);
        h.clock.advance(Duration::from_secs(60));
        let (pttl, ty) = (h.run(&["PTTL", "k"]), h.run(&["TYPE", "k"]));
        let first = peek(&mut h, "2.5");
        assert_eq!(peek(&mut h, "2.5"), first, "a second peek answers the same");
        let refund = peek(&mut h, "-4");
        assert_eq!(get(&refund, "spent"), bulk("0"), "a peeked refund reports");
        assert_eq!(h.run(&["EXISTS", "k"]), int(1), "but deletes nothing");
        assert_eq!(h.run(&["TYPE", "k"]), ty, "type unchanged");
        assert_eq!(h.run(&["PTTL", "k"]), pttl, "TTL unchanged");
        assert_eq!(
            incr(&mut h, "k", "2.5", DAILY),
            first,
            "the charge answers what the peek predicted"
        );
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
        let r = incr(&mut h, "k", "1", &["CAP", "5", "PER", "hour"]);
        let reset = get_int(&r, "reset_after_ms");
        assert_eq!(reset, 50 * 60_000, "the hour ends");
        assert_eq!(h.run(&["PTTL", "k"]), int(reset), "PTTL is the reset time");
        assert_eq!(h.run(&["TYPE", "k"]), simple("cost"));
        h.clock.advance(Duration::from_millis(reset as u64 - 1));
        assert_eq!(h.run(&["EXISTS", "k"]), int(1), "1 ms before the end");
        h.clock.advance(Duration::from_millis(1));
        assert_eq!(h.run(&["EXISTS", "k"]), int(0), "gone at the period end");
    }

    #[test]
    fn calendar_caps_follow_zone_and_anchor() {
        let mut h = Harness::new();
        // (label, now, options, period start, period end)
        let cases: &[(&str, &str, &[&str], &str, &str)] = &[
            (
                "New York DST day is 23 h",
                "2026-03-08T12:00:00-04:00",
                &["PER", "day", "TZ", "America/New_York"],
                "2026-03-08T00:00:00-05:00",
                "2026-03-09T00:00:00-04:00",
            ),
            (
                "Berlin month billed from the 17th",
                "2026-03-30T00:00:00Z",
                &["PER", "month", "TZ", "Europe/Berlin", "ANCHOR", "17"],
                "2026-03-17T00:00:00+01:00",
                "2026-04-17T00:00:00+02:00",
            ),
            (
                "February ends on the 28th",
                "2026-02-10T00:00:00Z",
                &["PER", "month"],
                "2026-02-01T00:00:00Z",
                "2026-03-01T00:00:00Z",
            ),
            (
                "weeks from Sunday",
                "2026-01-01T00:00:00Z",
                &["PER", "week", "ANCHOR", "sun"],
                "2025-12-28T00:00:00Z",
                "2026-01-04T00:00:00Z",
            ),
        ];
        for (i, (label, now, opts, start, end)) in cases.iter().enumerate() {
            set_clock(&h, now);
            let key = format!("k{i}");
            let mut rest = vec!["CAP", "1"];
            rest.extend_from_slice(opts);
            let r = incr(&mut h, &key, "1", &rest);
            assert!(allowed(&r), "{label}: charged");
            assert_eq!(get_int(&r, "period_start_ms"), ms(start), "{label}: start");
            assert_eq!(get_int(&r, "period_end_ms"), ms(end), "{label}: end");
            let retry = get_int(&incr(&mut h, &key, "1", &rest), "retry_after_ms");
            assert_eq!(retry, ms(end) - ms(now), "{label}: retry at the period end");
        }
    }

    #[test]
    fn bad_arguments_are_clear_errors() {
        let mut h = Harness::new();
        let not_decimal = "amount must be a decimal number such as 1.25";
        let cases: Vec<(Vec<&str>, String)> = vec![
            (vec!["k", "1", "CAP", "10", "PER"], "ERR wrong number of arguments for 'cost.incrby' command".into()),
            (vec!["k", "1e3", "CAP", "10", "PER", "day"], format!("ERR invalid amount '1e3': {not_decimal}")),
            (vec!["k", "NaN", "CAP", "10", "PER", "day"], format!("ERR invalid amount 'NaN': {not_decimal}")),
            (vec!["k", "inf", "CAP", "10", "PER", "day"], format!("ERR invalid amount 'inf': {not_decimal}")),
            (vec!["k", "+1", "CAP", "10", "PER", "day"], format!("ERR invalid amount '+1': {not_decimal}")),
            (vec!["k", ".5", "CAP", "10", "PER", "day"], format!("ERR invalid amount '.5': {not_decimal}")),
            (vec!["k", "0.0000001", "CAP", "10", "PER", "day"], "ERR invalid amount '0.0000001': amount has more than 6 decimal places".into()),
            (vec!["k", "9223372036854.775808", "CAP", "10", "PER", "day"], "ERR invalid amount '9223372036854.775808': amount is out of range".into()),
            (vec!["k", "1", "CAP", "0", "PER", "day"], "ERR invalid cap '0': cap must be greater than zero".into()),
            (vec!["k", "1", "CAP", "-5", "PER", "day"], "ERR invalid cap '-5': cap must be greater than zero".into()),
            (vec!["k", "1", "CAP", "1e2", "PER", "day"], format!("ERR invalid cap '1e2': {not_decimal}")),
            (vec!["k", "1", "CAP", "10", "PER", "fortnight"], "ERR unknown period 'fortnight' (use minute, hour, day, week or month)".into()),
            (vec!["k", "1", "CAP", "10", "PER", "day", "TZ", "Mars/Olympus"], "ERR unknown time zone 'Mars/Olympus'".into()),
            (vec!["k", "1", "CAP", "10", "PER", "month", "ANCHOR", "0"], "ERR invalid anchor '0' for a month period (expected a day 1-31, optionally @HH:MM)".into()),
            (vec!["k", "1", "CAP", "10", "WINDOW", "0s"], "ERR invalid window '0s': value must be greater than zero".into()),
            (vec!["k", "1", "CAP", "10", "WINDOW", "1x"], "ERR invalid window '1x': unknown duration unit 'x' (use ms, s, m, h or d)".into()),
            (vec!["k", "1", "CAP", "10", "WINDOW", "60"], "ERR invalid window '60': duration needs a unit (ms, s, m, h or d), e.g. 30s".into()),
            (vec!["k", "1", "PER", "day", "WINDOW", "1h"], "ERR syntax error".into()),
            (vec!["k", "1", "CAP", "10", "PER", "day", "WINDOW", "1h"], "ERR syntax error".into()),
            (vec!["k", "1", "CAP", "10", "WINDOW", "1h", "TZ", "UTC"], "ERR syntax error".into()),
            (vec!["k", "1", "CAP", "10", "WINDOW", "1h", "ANCHOR", "1"], "ERR syntax error".into()),
            (vec!["k", "1", "CAP", "10", "CAP", "10", "PER", "day"], "ERR syntax error".into()),
            (vec!["k", "1", "CAP", "10", "PER", "day", "TZ"], "ERR syntax error".into()),
            (vec!["k", "1", "CAP", "10", "PER", "day", "NOPE"], "ERR syntax error".into()),
            (vec!["k", "1", "CAP", "10", "TZ", "UTC", "ANCHOR", "1"], "ERR syntax error".into()),
        ];
        for cmd in ["COST.INCRBY", "COST.PEEK"] {
            for (args, want) in &cases {
                let mut words = vec![cmd];
                words.extend_from_slice(args);
                let want = want.replace("cost.incrby", &cmd.to_ascii_lowercase());
                assert_eq!(h.run(&words), err(&want), "{words:?}");
            }
        }
        assert_eq!(
            incr(
                &mut h,
                "k",
                "1",
                &["CAP", "10", "PER", "day", "FORCE", "FORCE"]
            ),
            err("ERR syntax error"),
            "FORCE twice"
        );
        assert_eq!(
            h.run(&["COST.PEEK", "k", "1", "CAP", "10", "PER", "day", "FORCE"]),
            err("ERR syntax error"),
            "PEEK takes no FORCE"
        );
        assert_eq!(h.run(&["EXISTS", "k"]), int(0), "errors write nothing");
    }

    #[test]
    fn keys_of_another_kind_are_wrongtype() {
        let mut h = Harness::new();
        h.run(&["SET", "s", "v"]);
        h.run(&["QUOTA.TAKE", "q", "5/day"]);
        for cmd in ["COST.INCRBY", "COST.PEEK"] {
            for key in ["s", "q"] {
                assert_eq!(
                    h.run(&[cmd, key, "1", "CAP", "10", "PER", "day"]),
                    err(WRONGTYPE),
                    "{cmd} on {key}"
                );
            }
        }
        incr(&mut h, "c", "1", DAILY);
        assert_eq!(h.run(&["GET", "c"]), err(WRONGTYPE), "GET on a cost key");
        assert_eq!(
            h.run(&["QUOTA.TAKE", "c", "5/day"]),
            err(WRONGTYPE),
            "QUOTA on a cost key"
        );
    }
}
