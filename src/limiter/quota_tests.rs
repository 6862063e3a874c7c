//! Tests of `quota.rs`.

use super::*;
use proptest::prelude::*;

#[test]
fn adjust_charges_past_the_allowance_and_refunds_within_the_period() {
    let p = QuotaParams::new(10, Calendar::utc(PeriodUnit::Day), 0).unwrap();
    let day = |d: &str| Period {
        start: t(&format!("2026-01-{d}T00:00:00Z")),
        end: t(&format!(
            "2026-01-{:02}T00:00:00Z",
            d.parse::<u32>().unwrap() + 1
        )),
    };
    let st = |d: &str, used: u64| QuotaState {
        period: day(d),
        used,
        carry: 0,
    };
    let noon = |d: &str| t(&format!("2026-01-{d}T12:00:00Z"));
    // (label, state, now, delta, result)
    let cases = [
        ("charge fresh", None, noon("05"), 4, Some(st("05", 4))),
        (
            "charge past the allowance",
            Some(st("05", 9)),
            noon("05"),
            5,
            Some(st("05", 14)),
        ),
        (
            "refund",
            Some(st("05", 14)),
            noon("05"),
            -10,
            Some(st("05", 4)),
        ),
        (
            "refund to zero is fresh",
            Some(st("05", 4)),
            noon("05"),
            -9,
            None,
        ),
        (
            "refund after the period ended",
            Some(st("05", 4)),
            noon("06"),
            -4,
            None,
        ),
        (
            "charge after the period ended",
            Some(st("05", 4)),
            noon("06"),
            2,
            Some(st("06", 2)),
        ),
    ];
    for (label, state, now, delta, want) in cases {
        assert_eq!(adjust(&p, state, now, delta), want, "{label}");
    }
    let (o, _) = take(&p, Some(st("05", 14)), noon("05"), 1);
    assert_eq!((o.decision.allowed, o.decision.remaining), (false, 0));
}

/// The instant an RFC 3339 string names.
fn t(s: &str) -> Nanos {
    let ts: Timestamp = s.parse().expect("valid RFC 3339 in the test");
    Nanos(u64::try_from(ts.as_nanosecond()).expect("after the epoch"))
}

fn zone(s: &str) -> TimeZone {
    parse_zone(s).unwrap()
}

fn calendar(unit: PeriodUnit, tz: &str, anchor: Option<&str>) -> Calendar {
    let a = anchor.map_or_else(Anchor::default, |a| parse_anchor(unit, a).unwrap());
    Calendar::new(unit, zone(tz), a)
}

/// Asserts `[start, end)` is the period at `start`, at `end - 1 ns`, and that the next
/// one starts exactly at `end`.
fn assert_period(label: &str, c: &Calendar, start: Nanos, end: Nanos) {
    for probe in [start, end.saturating_sub(Nanos(1))] {
        let p = c.period_at(probe);
        assert_eq!((p.start, p.end), (start, end), "{label} at {probe:?}");
    }
    assert_eq!(c.period_at(end).start, end, "{label}: next starts at end");
}

#[test]
fn days_follow_dst_in_both_directions() {
    use PeriodUnit::Day;
    // (label, zone, period start, period end, hours)
    let cases = [
        (
            "Berlin spring forward: 23 h",
            "Europe/Berlin",
            "2024-03-31T00:00:00+01:00",
            "2024-04-01T00:00:00+02:00",
            23,
        ),
        (
            "Berlin fall back: 25 h",
            "Europe/Berlin",
            "2024-10-27T00:00:00+02:00",
            "2024-10-28T00:00:00+01:00",
            25,
        ),
        (
            "Berlin ordinary day",
            "Europe/Berlin",
            "2024-06-01T00:00:00+02:00",
            "2024-06-02T00:00:00+02:00",
            24,
        ),
        (
            "New York spring forward",
            "America/New_York",
            "2024-03-10T00:00:00-05:00",
            "2024-03-11T00:00:00-04:00",
            23,
        ),
        (
            "New York fall back",
            "America/New_York",
            "2024-11-03T00:00:00-04:00",
            "2024-11-04T00:00:00-05:00",
            25,
        ),
        (
            "Sydney (southern) fall back",
            "Australia/Sydney",
            "2024-04-07T00:00:00+11:00",
            "2024-04-08T00:00:00+10:00",
            25,
        ),
        (
            "fixed offset never shifts",
            "+05:30",
            "2024-03-31T00:00:00+05:30",
            "2024-04-01T00:00:00+05:30",
            24,
        ),
    ];
    for (label, tz, start, end, hours) in cases {
        let c = calendar(Day, tz, None);
        let (start, end) = (t(start), t(end));
        assert_eq!(end.0 - start.0, hours * 3_600 * Nanos::PER_SEC, "{label}");
        assert_period(label, &c, start, end);
    }
}

#[test]
fn anchor_times_in_a_gap_or_fold_resolve_once() {
    use PeriodUnit::Day;
    // 02:30 does not exist in Berlin on 2024-03-31: that day's period starts at 03:30 CEST.
    let c = calendar(Day, "Europe/Berlin", Some("02:30"));
    assert_period(
        "gap",
        &c,
        t("2024-03-30T02:30:00+01:00"),
        t("2024-03-31T03:30:00+02:00"),
    );
    assert_period(
        "after gap",
        &c,
        t("2024-03-31T03:30:00+02:00"),
        t("2024-04-01T02:30:00+02:00"),
    );
    // 02:30 happens twice on 2024-10-27: the first occurrence starts the period.
    assert_period(
        "fold",
        &c,
        t("2024-10-27T02:30:00+02:00"),
        t("2024-10-28T02:30:00+01:00"),
    );
}

#[test]
fn hours_stay_3600_seconds_across_dst() {
    let c = calendar(PeriodUnit::Hour, "Europe/Berlin", None);
    // (label, start, end)
    let cases = [
        (
            "hour before spring gap",
            "2024-03-31T01:00:00+01:00",
            "2024-03-31T03:00:00+02:00",
        ),
        (
            "hour after spring gap",
            "2024-03-31T03:00:00+02:00",
            "2024-03-31T04:00:00+02:00",
        ),
        (
            "first 02:00 of the fold",
            "2024-10-27T02:00:00+02:00",
            "2024-10-27T02:00:00+01:00",
        ),
        (
            "second 02:00 of the fold",
            "2024-10-27T02:00:00+01:00",
            "2024-10-27T03:00:00+01:00",
        ),
    ];
    for (label, start, end) in cases {
        assert_period(label, &c, t(start), t(end));
    }
    let india = calendar(PeriodUnit::Hour, "+05:30", Some(":15"));
    assert_period(
        "offset with anchor",
        &india,
        t("2024-01-01T10:15:00+05:30"),
        t("2024-01-01T11:15:00+05:30"),
    );
    let minutes = Calendar::utc(PeriodUnit::Minute);
    assert_period(
        "minute",
        &minutes,
        t("2024-01-01T10:15:00Z"),
        t("2024-01-01T10:16:00Z"),
    );
}

#[test]
fn months_of_every_length_and_leap_years() {
    use PeriodUnit::Month;
    // (label, anchor, start, end, days)
    let cases = [
        (
            "January: 31 days",
            None,
            "2023-01-01T00:00:00Z",
            "2023-02-01T00:00:00Z",
            31,
        ),
        (
            "February 2023: 28",
            None,
            "2023-02-01T00:00:00Z",
            "2023-03-01T00:00:00Z",
            28,
        ),
        (
            "February 2024 (leap): 29",
            None,
            "2024-02-01T00:00:00Z",
            "2024-03-01T00:00:00Z",
            29,
        ),
        (
            "February 2100 (not leap): 28",
            None,
            "2100-02-01T00:00:00Z",
            "2100-03-01T00:00:00Z",
            28,
        ),
        (
            "February 2000 (leap): 29",
            None,
            "2000-02-01T00:00:00Z",
            "2000-03-01T00:00:00Z",
            29,
        ),
        (
            "April: 30",
            None,
            "2024-04-01T00:00:00Z",
            "2024-05-01T00:00:00Z",
            30,
        ),
        (
            "billing on the 17th",
            Some("17"),
            "2024-01-17T00:00:00Z",
            "2024-02-17T00:00:00Z",
            31,
        ),
        (
            "anchor 31 clamps to Feb 29",
            Some("31"),
            "2024-01-31T00:00:00Z",
            "2024-02-29T00:00:00Z",
            29,
        ),
        (
            "then back to the 31st",
            Some("31"),
            "2024-02-29T00:00:00Z",
            "2024-03-31T00:00:00Z",
            31,
        ),
        (
            "anchor 31 in April",
            Some("31"),
            "2024-03-31T00:00:00Z",
            "2024-04-30T00:00:00Z",
            30,
        ),
        (
            "anchor 30 in 2023 February",
            Some("30"),
            "2023-01-30T00:00:00Z",
            "2023-02-28T00:00:00Z",
            29,
        ),
        (
            "anchor with a time",
            Some("17@09:30"),
            "2024-05-17T09:30:00Z",
            "2024-06-17T09:30:00Z",
            31,
        ),
        (
            "year boundary",
            Some("15"),
            "2023-12-15T00:00:00Z",
            "2024-01-15T00:00:00Z",
            31,
        ),
    ];
    for (label, anchor, start, end, days) in cases {
        let c = calendar(Month, "UTC", anchor);
        let (start, end) = (t(start), t(end));
        assert_eq!(end.0 - start.0, days * 86_400 * Nanos::PER_SEC, "{label}");
        assert_period(label, &c, start, end);
    }
    // A Berlin month containing the spring change is 31 days less one hour.
    let berlin = calendar(Month, "Europe/Berlin", None);
    assert_period(
        "Berlin March",
        &berlin,
        t("2024-03-01T00:00:00+01:00"),
        t("2024-04-01T00:00:00+02:00"),
    );
}

#[test]
fn weeks_start_on_the_anchor_weekday() {
    use PeriodUnit::Week;
    // (label, anchor, start, end); 2024-03-31 is a Sunday.
    let cases = [
        (
            "ISO week",
            None,
            "2024-03-25T00:00:00+01:00",
            "2024-04-01T00:00:00+02:00",
        ),
        (
            "Sunday weeks",
            Some("sun"),
            "2024-03-31T00:00:00+01:00",
            "2024-04-07T00:00:00+02:00",
        ),
        (
            "Friday 18:00",
            Some("fri@18:00"),
            "2024-03-29T18:00:00+01:00",
            "2024-04-05T18:00:00+02:00",
        ),
    ];
    for (label, anchor, start, end) in cases {
        let c = calendar(Week, "Europe/Berlin", anchor);
        assert_period(label, &c, t(start), t(end));
    }
}

#[test]
fn bad_arguments_are_typed_errors() {
    // (label, result, expected message)
    let cases: Vec<(&str, QuotaParamError, &str)> = vec![
        ("zero count", parse_quota("0/day").unwrap_err(), "quota count: value must be greater than zero"),
        ("no slash", parse_quota("1000").unwrap_err(), "quota must look like N/period, e.g. 1000/day"),
        ("unknown period", parse_quota("5/fortnight").unwrap_err(), "unknown period 'fortnight' (use minute, hour, day, week or month)"),
        ("unknown zone", parse_zone("Mars/Olympus").unwrap_err(), "unknown time zone 'Mars/Olympus'"),
        ("offset too big", parse_zone("+19:00").unwrap_err(), "unknown time zone '+19:00'"),
        ("offset one digit", parse_zone("+5:30").unwrap_err(), "unknown time zone '+5:30'"),
        ("day 32", parse_anchor(PeriodUnit::Month, "32").unwrap_err(), "invalid anchor '32' for a month period (expected a day 1-31, optionally @HH:MM)"),
        ("day 0", parse_anchor(PeriodUnit::Month, "0").unwrap_err(), "invalid anchor '0' for a month period (expected a day 1-31, optionally @HH:MM)"),
        ("hour 24", parse_anchor(PeriodUnit::Day, "24:00").unwrap_err(), "invalid anchor '24:00' for a day period (expected HH:MM)"),
        ("bad weekday", parse_anchor(PeriodUnit::Week, "funday").unwrap_err(), "invalid anchor 'funday' for a week period (expected a weekday such as mon, optionally @HH:MM)"),
        ("minute anchor", parse_anchor(PeriodUnit::Minute, ":30").unwrap_err(), "invalid anchor ':30' for a minute period (expected no anchor)"),
    ];
    for (label, err, msg) in cases {
        assert_eq!(err.to_string(), msg, "{label}");
    }
    assert_eq!(parse_quota("1000/Day"), Ok((1000, PeriodUnit::Day)));
    for (text, unit) in [
        ("minute", PeriodUnit::Minute),
        ("HOUR", PeriodUnit::Hour),
        ("dAy", PeriodUnit::Day),
        ("Week", PeriodUnit::Week),
        ("MONTH", PeriodUnit::Month),
    ] {
        assert_eq!(PeriodUnit::parse(text), Ok(unit), "{text}");
    }
    for text in ["", "days", "da", "month ", "min"] {
        assert_eq!(
            PeriodUnit::parse(text),
            Err(QuotaParamError::UnknownPeriod(text.to_owned())),
            "{text:?}"
        );
    }
    assert!(matches!(parse_zone("Europe/Berlin"), Ok(z) if z.iana_name() == Some("Europe/Berlin")));
    assert_eq!(
        parse_zone("-08:00").unwrap(),
        TimeZone::fixed(Offset::from_seconds(-8 * 3600).unwrap())
    );
    assert_eq!(parse_zone("utc").unwrap(), TimeZone::UTC);
    assert_eq!(
        QuotaParams::new(0, Calendar::utc(PeriodUnit::Day), 0),
        Err(UnitError::Zero)
    );
}

fn step(p: &QuotaParams, state: &mut Option<QuotaState>, now: Nanos, c: u64) -> QuotaOutcome {
    let (o, new) = take(p, *state, now, c);
    if new.is_some() {
        *state = new;
    }
    o
}

#[test]
fn resets_exactly_at_the_boundary_and_carries_unused() {
    // 10 per Berlin day, carry up to 3.
    let p = QuotaParams::new(10, calendar(PeriodUnit::Day, "Europe/Berlin", None), 3).unwrap();
    let day1 = t("2024-03-30T00:00:00+01:00");
    let day2 = t("2024-03-31T00:00:00+01:00");
    let day3 = t("2024-04-01T00:00:00+02:00");
    let day4 = t("2024-04-02T00:00:00+02:00");
    let ns = Nanos(1);
    // (label, now, cost, allowed, limit, remaining, retry_after, reset_after, carry)
    type Case = (
        &'static str,
        Nanos,
        u64,
        bool,
        u64,
        u64,
        Option<Nanos>,
        Nanos,
        u64,
    );
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        ("fresh key carries the cap", day1, 4, true, 13, 9, None, day2.saturating_sub(day1), 3),
        ("eight more", day1, 8, true, 13, 1, None, day2.saturating_sub(day1), 3),
        ("over the allowance", day2.saturating_sub(ns), 2, false, 13, 1, Some(ns), ns, 3),
        // Used 12 of base 10: nothing carries into the 23-hour day.
        ("new day at the boundary", day2, 10, true, 10, 0, None, day3.saturating_sub(day2), 0),
        ("cost needing two periods", day2, 13, false, 10, 0, Some(day4.saturating_sub(day2)), day3.saturating_sub(day2), 0),
        ("cost over limit plus cap never fits", day2, 14, false, 10, 0, None, day3.saturating_sub(day2), 0),
        ("next day", day3, 1, true, 10, 9, None, Nanos::from_secs(86_400), 0),
    ];
    let mut state = None;
    for (label, now, cost, allowed, limit, remaining, retry, reset, carry) in cases {
        let o = step(&p, &mut state, now, cost);
        let want = Decision {
            allowed,
            limit,
            remaining,
            retry_after: retry,
            reset_after: reset,
        };
        assert_eq!(o.decision, want, "{label}");
        assert_eq!(o.carry, carry, "{label}");
    }
}

#[test]
fn changing_the_limit_keeps_what_was_used() {
    let day = Calendar::utc(PeriodUnit::Day);
    let now = t("2024-05-05T12:00:00Z");
    let mut state = None;
    step(
        &QuotaParams::new(100, day.clone(), 0).unwrap(),
        &mut state,
        now,
        60,
    );
    let lower = QuotaParams::new(50, day.clone(), 0).unwrap();
    let o = step(&lower, &mut state, now, 1);
    assert!(!o.decision.allowed, "60 used is already over 50");
    assert_eq!((o.used, o.decision.remaining), (60, 0));
    let higher = QuotaParams::new(200, day, 0).unwrap();
    let o = step(&higher, &mut state, now, 1);
    assert_eq!((o.used, o.decision.remaining), (61, 139));
}

#[test]
fn state_expires_when_it_stops_mattering() {
    let day = Calendar::utc(PeriodUnit::Day);
    let start = t("2024-05-05T00:00:00Z");
    let period = Period {
        start,
        end: t("2024-05-06T00:00:00Z"),
    };
    let s = |used| QuotaState {
        period,
        used,
        carry: 0,
    };
    let with_carry = QuotaParams::new(10, day.clone(), 3).unwrap();
    let without = QuotaParams::new(10, day, 0).unwrap();
    // (label, params, state, expires_at)
    let cases = [
        ("no carry: period end", &without, s(10), period.end),
        (
            "carry already full: period end",
            &with_carry,
            s(7),
            period.end,
        ),
        (
            "smaller carry lives a period more",
            &with_carry,
            s(8),
            t("2024-05-07T00:00:00Z"),
        ),
    ];
    for (label, p, state, want) in cases {
        assert_eq!(expires_at(p, &state), want, "{label}");
    }
}

#[test]
fn clock_stepping_back_keeps_the_stored_period() {
    let p = QuotaParams::new(5, Calendar::utc(PeriodUnit::Day), 0).unwrap();
    let mut state = None;
    step(&p, &mut state, t("2024-05-06T00:00:00Z"), 5);
    let o = step(&p, &mut state, t("2024-05-05T23:00:00Z"), 1);
    assert!(
        !o.decision.allowed,
        "yesterday's fresh quota is not handed out"
    );
    assert_eq!(o.decision.retry_after, Some(Nanos::from_secs(25 * 3600)));
}

/// Limit 1..=8, carry 0..=4, a day in Berlin or UTC or a month with anchor 31, and
/// operations stepping up to 30 hours (days) or 20 days (months).
fn scenario() -> impl Strategy<Value = (QuotaParams, Vec<(u64, u64)>)> {
    let kinds = prop_oneof![
        Just(("Europe/Berlin", PeriodUnit::Day, None, 30 * 3600)),
        Just(("UTC", PeriodUnit::Day, None, 30 * 3600)),
        Just((
            "America/New_York",
            PeriodUnit::Month,
            Some("31"),
            20 * 86_400
        )),
        Just(("Europe/Berlin", PeriodUnit::Hour, None, 5400)),
    ];
    (1u64..=8, 0u64..=4, kinds).prop_flat_map(|(limit, cap, (tz, unit, anchor, max_s))| {
        let p = QuotaParams::new(limit, calendar(unit, tz, anchor), cap).unwrap();
        let max_ns = max_s * Nanos::PER_SEC;
        let ops = prop::collection::vec((0..=max_ns, 0..=limit + cap + 1), 1..40);
        (Just(p), ops)
    })
}

/// 2024-03-25, the week before Berlin's spring change.
const T0: Nanos = Nanos(1_711_324_800 * Nanos::PER_SEC);

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn fixed_offset_days_and_weeks_match_the_civil_calendar(
        now: u64,
        offset_min in -18 * 60..=18 * 60i32,
        week: bool,
        weekday in 0..7i8,
        hour in 0..24i8,
        minute in 0..60i8,
    ) {
        let unit = if week { PeriodUnit::Week } else { PeriodUnit::Day };
        let tz = TimeZone::fixed(Offset::from_seconds(offset_min * 60).unwrap());
        let anchor = Anchor {
            weekday: Weekday::from_monday_zero_offset(weekday).unwrap(),
            hour,
            minute,
            ..Anchor::default()
        };
        let cal = Calendar::new(unit, tz, anchor);
        prop_assert!(cal.fixed_offset_s.is_some());
        let civil = |at: Nanos| {
            let (start, end) = cal.civil_period(at);
            Period { start: nanos_from_i128(start), end: nanos_from_i128(end) }
        };
        let p = cal.period_at(Nanos(now));
        prop_assert_eq!(p, civil(Nanos(now)));
        // Also on and next to the boundaries.
        for at in [p.start, p.end.saturating_sub(Nanos(1)), p.end] {
            prop_assert_eq!(cal.period_at(at), civil(at), "at {:?}", at);
        }
    }

    #[test]
    fn admits_at_most_the_allowance_per_period((p, ops) in scenario()) {
        let mut state = None;
        let mut now = T0;
        let mut per_period: Vec<(Period, u64, u64)> = Vec::new();
        for &(dt, c) in &ops {
            now = now.saturating_add(Nanos(dt));
            let o = step(&p, &mut state, now, c);
            prop_assert!(o.period.start <= now && now < o.period.end);
            if o.decision.allowed {
                match per_period.last_mut() {
                    Some((period, admitted, _)) if *period == o.period => *admitted += c,
                    _ => per_period.push((o.period, c, o.carry)),
                }
            }
        }
        for (period, admitted, carry) in per_period {
            prop_assert!(carry <= p.carry_cap());
            prop_assert!(admitted <= p.limit() + carry, "{period:?}: {admitted}");
        }
    }

    #[test]
    fn retry_after_is_exact((p, ops) in scenario()) {
        let mut state = None;
        let mut now = T0;
        for &(dt, c) in &ops {
            now = now.saturating_add(Nanos(dt));
            let (o, _) = take(&p, state, now, c);
            if let Some(r) = o.decision.retry_after {
                prop_assert!(r.0 > 0);
                let (before, _) = take(&p, state, Nanos(now.0 + r.0 - 1), c);
                prop_assert!(!before.decision.allowed, "admitted 1 ns before retry_after");
                let (then, _) = take(&p, state, Nanos(now.0 + r.0), c);
                prop_assert!(then.decision.allowed, "denied at retry_after");
            } else if !o.decision.allowed {
                prop_assert!(c > p.limit() + p.carry_cap().min(p.limit()));
            }
            step(&p, &mut state, now, c);
        }
    }

    #[test]
    fn peek_predicts_the_take_and_changes_nothing((p, ops) in scenario()) {
        let mut state = None;
        let mut now = T0;
        for &(dt, c) in &ops {
            now = now.saturating_add(Nanos(dt));
            let (peek, new) = take(&p, state, now, 0);
            prop_assert_eq!(new, None);
            let o = step(&p, &mut state, now, c);
            prop_assert_eq!(o.decision.allowed, c <= peek.decision.remaining);
        }
    }

    #[test]
    fn clock_stepping_back_never_grants_capacity(
        (p, ops) in scenario(),
        back in 0u64..=200_000 * Nanos::PER_SEC,
    ) {
        let mut state = None;
        let mut now = T0;
        for &(dt, c) in &ops {
            now = now.saturating_add(Nanos(dt));
            step(&p, &mut state, now, c);
            let (e, _) = take(&p, state, now.saturating_sub(Nanos(back)), 0);
            let (h, _) = take(&p, state, now, 0);
            prop_assert!(e.decision.remaining <= h.decision.remaining);
        }
    }

    #[test]
    fn expired_state_reads_as_fresh((p, ops) in scenario()) {
        let mut state = None;
        let mut now = T0;
        for &(dt, c) in &ops {
            now = now.saturating_add(Nanos(dt));
            if let Some(s) = state {
                if now >= expires_at(&p, &s) {
                    let (kept, _) = take(&p, state, now, c);
                    let (fresh, _) = take(&p, None, now, c);
                    prop_assert_eq!(kept, fresh);
                }
            }
            step(&p, &mut state, now, c);
        }
    }

    #[test]
    fn periods_tile_time(secs in 0u64..=10_000_000_000, zone_ix in 0usize..4, unit_ix in 0usize..5) {
        let tz = ["UTC", "Europe/Berlin", "Australia/Lord_Howe", "-03:30"][zone_ix];
        let unit = [PeriodUnit::Minute, PeriodUnit::Hour, PeriodUnit::Day, PeriodUnit::Week, PeriodUnit::Month][unit_ix];
        let c = calendar(unit, tz, None);
        let now = Nanos(secs * Nanos::PER_SEC);
        let p = c.period_at(now);
        prop_assert!(p.start <= now && now < p.end, "{:?}", p);
        if unit >= PeriodUnit::Day || tz != "Australia/Lord_Howe" {
            prop_assert_eq!(c.period_at(p.end).start, p.end);
        }
    }

    #[test]
    fn anchor_and_zone_parsing_never_panics(s in "\\PC{0,12}") {
        for unit in [PeriodUnit::Minute, PeriodUnit::Hour, PeriodUnit::Day, PeriodUnit::Week, PeriodUnit::Month] {
            let _ = parse_anchor(unit, &s);
        }
        let _ = parse_zone(&s);
        let _ = parse_quota(&s);
    }
}
