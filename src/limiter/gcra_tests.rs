//! Tests of `gcra.rs`.

use super::*;
use proptest::prelude::*;

#[test]
fn adjust_charges_past_the_limit_and_refunds_down_to_fresh() {
    // 1 unit per second, burst 2.
    let p = GcraParams::new(Nanos::PER_SEC, 1).unwrap();
    let t0 = Nanos(1_000 * Nanos::PER_SEC);
    let s = |secs: u64| GcraState::at(Nanos((1_000 + secs) * Nanos::PER_SEC));
    // (label, state, delta, result)
    let cases = [
        ("charge on a fresh key", None, 3, Some(s(3))),
        ("charge past the tolerance", Some(s(2)), 5, Some(s(7))),
        ("refund part", Some(s(7)), -4, Some(s(3))),
        ("refund everything is fresh", Some(s(3)), -3, None),
        ("refund more than charged is fresh", Some(s(1)), -9, None),
        ("refund on a fresh key", None, -1, None),
        ("zero keeps a pending schedule", Some(s(2)), 0, Some(s(2))),
    ];
    for (label, state, delta, want) in cases {
        assert_eq!(adjust(&p, state, t0, delta), want, "{label}");
    }
    // A charged-past bucket denies until it drains, with an exact retry.
    let (d, _) = take(&p, Some(s(7)), t0, 1);
    assert_eq!(d.retry_after, Some(Nanos(6 * Nanos::PER_SEC)));
}

/// An arbitrary wall-clock instant to start from (2023-11-14), so nothing sits at zero.
const T0: Nanos = Nanos(1_700_000_000 * Nanos::PER_SEC);

fn ms(n: u64) -> Nanos {
    Nanos::from_millis(n)
}

fn secs(n: u64) -> Nanos {
    Nanos::from_secs(n)
}

/// Runs one step, storing the new state if there is one.
fn step(p: &GcraParams, state: &mut Option<GcraState>, now: Nanos, q: u64) -> GcraDecision {
    let (d, new) = take(p, *state, now, q);
    if let Some(s) = new {
        *state = Some(s);
    }
    d
}

#[test]
fn follows_redis_cells_own_table() {
    // limit 5 (max_burst 4), one per second.
    let p = GcraParams::new(Nanos::PER_SEC, 4).unwrap();
    // (label, now offset, quantity, remaining, reset_after, retry_after, limited)
    type Case = (&'static str, Nanos, u64, u64, Nanos, Option<Nanos>, bool);
    #[rustfmt::skip]
    let cases: &[Case] = &[
        ("fresh key, quantity over the limit", ms(0), 6, 5, secs(0), None, true),
        ("first of the burst", ms(0), 1, 4, secs(1), None, false),
        ("second of the burst", ms(0), 1, 3, secs(2), None, false),
        ("third of the burst", ms(0), 1, 2, secs(3), None, false),
        ("fourth of the burst", ms(0), 1, 1, secs(4), None, false),
        ("last of the burst", ms(0), 1, 0, secs(5), None, false),
        ("burst spent", ms(0), 1, 0, secs(5), Some(secs(1)), true),
        ("three seconds later", ms(3000), 1, 2, ms(3000), None, false),
        ("100ms later", ms(3100), 1, 1, ms(3900), None, false),
        ("at four seconds", ms(4000), 1, 1, ms(4000), None, false),
        ("refilled at eight seconds", ms(8000), 1, 4, ms(1000), None, false),
        ("fully refilled again", ms(9500), 1, 4, ms(1000), None, false),
        ("quantity 0 peeks", ms(9500), 0, 4, secs(1), None, false),
        ("quantity 2", ms(9500), 2, 2, secs(3), None, false),
        ("quantity 5 over what is left", ms(9500), 5, 2, secs(3), Some(secs(3)), true),
    ];
    let mut state = None;
    for &(label, offset, q, remaining, reset_after, retry_after, limited) in cases {
        let d = step(&p, &mut state, T0.saturating_add(offset), q);
        assert_eq!(d.allowed, !limited, "{label}: allowed");
        assert_eq!(d.limit, 5, "{label}: limit");
        assert_eq!(d.remaining, remaining, "{label}: remaining");
        assert_eq!(d.reset_after, reset_after, "{label}: reset_after");
        assert_eq!(d.retry_after, retry_after, "{label}: retry_after");
        let reply = cell_reply(&d, &p);
        assert_eq!(reply[0], i64::from(limited), "{label}: reply limited");
        assert_eq!(reply[1], 5, "{label}: reply limit");
        assert_eq!(reply[2], remaining as i64, "{label}: reply remaining");
        // Rounding is covered by cell_seconds_round_up_only_from_a_whole_millisecond.
        let retry_s = retry_after.map_or(-1, cell_seconds);
        assert_eq!(reply[3], retry_s, "{label}: reply retry_after");
        let reset_s = cell_seconds(reset_after);
        assert_eq!(reply[4], reset_s, "{label}: reply reset_after");
    }
}

#[test]
fn fresh_key_matches_the_contract_example() {
    // CL.THROTTLE user123 15 30 60
    let p = GcraParams::from_cell(15, 30, 60).unwrap();
    assert_eq!(p.emission(), secs(2));
    assert_eq!(p.limit(), 16);
    assert_eq!(p.tolerance(), secs(32));
    let (d, state) = take(&p, None, T0, 1);
    assert_eq!(cell_reply(&d, &p), [0, 16, 15, -1, 2]);
    assert_eq!(state, Some(GcraState::at(T0.saturating_add(secs(2)))));
}

#[test]
fn follows_hand_derived_redis_gcra_replies() {
    // GCRA k 2 3 1: emission 1s/3 rounded to 333333 µs, limit 3, tolerance 999.999 ms.
    let p = GcraParams::from_redis_gcra(2, 3, 1.0).unwrap();
    assert_eq!(p.emission(), Nanos(333_333_000));
    assert_eq!(p.tolerance(), Nanos(999_999_000));
    // (label, now offset, quantity, reply)
    let cases: &[(&str, Nanos, u64, [i64; 5])] = &[
        ("first", ms(0), 1, [0, 3, 2, -1, 1]),
        ("second", ms(0), 1, [0, 3, 1, -1, 1]),
        ("third empties the bucket", ms(0), 1, [0, 3, 0, -1, 1]),
        (
            "fourth waits one emission, rounded up",
            ms(0),
            1,
            [1, 3, 0, 1, 1],
        ),
        ("a peek of the empty bucket", ms(0), 0, [0, 3, 0, -1, 1]),
        // tat 999.999 ms -> 1333.332 ms; reset 833.332 ms; next 166.667 ms < one emission.
        ("admitted after one emission", ms(500), 1, [0, 3, 0, -1, 1]),
        (
            "TOKENS over the limit never succeeds",
            ms(500),
            5,
            [1, 3, 0, -1, 1],
        ),
        // reset 1333.332 ms - 1400 ms < 0: fully refilled.
        ("refilled", ms(1400), 0, [0, 3, 3, -1, 0]),
    ];
    let mut state = None;
    for &(label, offset, q, reply) in cases {
        let d = step(&p, &mut state, T0.saturating_add(offset), q);
        assert_eq!(redis_gcra_reply(&d, &p), reply, "{label}");
    }

    // GCRA k 0 1 2.5: one request per 2.5 s, seconds round up.
    let p = GcraParams::from_redis_gcra(0, 1, 2.5).unwrap();
    let mut state = None;
    let d = step(&p, &mut state, T0, 1);
    assert_eq!(redis_gcra_reply(&d, &p), [0, 1, 0, -1, 3], "2.5s: first");
    let d = step(&p, &mut state, T0, 1);
    assert_eq!(redis_gcra_reply(&d, &p), [1, 1, 0, 3, 3], "2.5s: denied");
    let d = step(&p, &mut state, T0.saturating_add(ms(2500)), 1);
    assert_eq!(
        redis_gcra_reply(&d, &p),
        [0, 1, 0, -1, 3],
        "2.5s: admitted at retry"
    );
}

#[test]
fn redis_gcra_emission_rounds_to_the_nearest_microsecond_with_a_floor_of_one() {
    // (label, tokens, period_s, emission_ns)
    let cases: &[(&str, i64, f64, u64)] = &[
        ("2/3 µs rounds up", 3, 0.000_002, 1_000),
        ("1/3 µs rounds to the 1 µs floor", 3, 0.000_001, 1_000),
        ("tiny period", 1_000_000_000, 0.001, 1_000),
        ("1.5 µs rounds half up", 2, 0.000_003, 2_000),
        ("fractional seconds", 4, 0.5, 125_000_000),
    ];
    for &(label, tokens, period_s, emission_ns) in cases {
        let p = GcraParams::from_redis_gcra(0, tokens, period_s).unwrap();
        assert_eq!(p.emission(), Nanos(emission_ns), "{label}");
    }
}

#[test]
fn cell_emission_truncates_like_redis_cell() {
    let p = GcraParams::from_cell(2, 3, 1).unwrap();
    assert_eq!(p.emission(), Nanos(333_333_333));
    assert_eq!(p.limit(), 3);
    assert_eq!(p.max_burst(), 2);
    assert_eq!(p.tolerance(), Nanos(999_999_999));
}

#[test]
fn cell_reply_counts_remaining_in_whole_microseconds_like_redis_cell() {
    let p = GcraParams::new(1_000_000_500, 1).unwrap();
    let mut state = None;
    step(&p, &mut state, T0, 1);
    step(&p, &mut state, T0, 1);
    // next = emission - 1 ns: 0 exactly, but 1_000_000 µs / 1_000_000 µs in redis-cell.
    let (d, _) = take(&p, state, T0.saturating_add(Nanos(1_000_000_499)), 0);
    assert_eq!(d.next_ns, 1_000_000_499);
    assert_eq!(d.remaining, 0);
    assert_eq!(cell_reply(&d, &p)[2], 1);
    assert_eq!(redis_gcra_reply(&d, &p)[2], 0);
}

#[test]
fn cell_reply_reports_zero_remaining_for_slightly_negative_next() {
    let p = GcraParams::new(Nanos::PER_SEC, 4).unwrap();
    let mut state = None;
    step(&p, &mut state, T0.saturating_add(secs(10)), 5);
    // The clock steps back half a second: next = -0.5 s.
    let (d, new) = take(&p, state, T0.saturating_add(ms(9500)), 0);
    assert_eq!(new, None);
    assert_eq!(d.next_ns, -500_000_000);
    assert_eq!(d.remaining, 0);
    assert_eq!(d.reset_after, ms(5500));
    assert_eq!(cell_reply(&d, &p)[2], 0);
    assert_eq!(redis_gcra_reply(&d, &p)[2], 0);
}

#[test]
fn cell_seconds_round_up_only_from_a_whole_millisecond() {
    // (label, ns, cell seconds, ceil seconds)
    let cases: &[(&str, u64, i64, i64)] = &[
        ("zero", 0, 0, 0),
        ("sub-millisecond", 999_999, 0, 1),
        ("one millisecond", 1_000_000, 1, 1),
        ("whole seconds", 2_000_000_000, 2, 2),
        ("whole seconds plus sub-millisecond", 2_000_500_000, 2, 3),
        ("whole seconds plus a millisecond", 2_001_000_000, 3, 3),
    ];
    for &(label, ns, cell, ceil) in cases {
        assert_eq!(cell_seconds(Nanos(ns)), cell, "{label}: cell");
        assert_eq!(ceil_seconds(Nanos(ns)), ceil, "{label}: ceil");
    }
}

#[test]
fn cell_reply_uses_the_nanosecond_count_for_sub_microsecond_emission() {
    // 2_000_000 per second: 500 ns each, which redis-cell divides by as 0 µs.
    let p = GcraParams::from_cell(9, 2_000_000, 1).unwrap();
    assert_eq!(p.emission(), Nanos(500));
    let (d, _) = take(&p, None, T0, 1);
    assert_eq!(cell_reply(&d, &p), [0, 10, 9, -1, 0]);
}

#[test]
fn stale_state_reads_as_a_full_bucket() {
    let p = GcraParams::new(Nanos::PER_SEC, 4).unwrap();
    let old = Some(GcraState::at(T0));
    let later = T0.saturating_add(secs(100));
    // redis-cell would report a negative reset and remaining above the limit here.
    let (d, _) = take(&p, old, later, 6);
    assert!(!d.allowed);
    assert_eq!(d.reset_after, Nanos::ZERO);
    assert_eq!(d.remaining, 5);
    assert_eq!(cell_reply(&d, &p), [1, 5, 5, -1, 0]);
}

#[test]
fn clock_stepping_back_lengthens_the_wait() {
    let p = GcraParams::new(Nanos::PER_SEC, 0).unwrap();
    let (_, state) = take(&p, None, T0, 1);
    let back = T0.saturating_sub(secs(10));
    let (d, new) = take(&p, state, back, 1);
    assert!(!d.allowed);
    assert_eq!(new, None);
    // The schedule is 11 s ahead of `now`, and a full tolerance (1 s) is spent.
    assert_eq!(d.retry_after, Some(secs(11)));
    assert_eq!(d.reset_after, secs(11));
    assert_eq!(d.remaining, 0);
    // Even a peek is "denied" (retry in 10 s) while the schedule is that far ahead.
    let (d, _) = take(&p, state, back, 0);
    assert!(!d.allowed);
    assert_eq!(d.retry_after, Some(secs(10)));
}

#[test]
fn quantity_zero_never_writes_state() {
    let p = GcraParams::new(Nanos::PER_SEC, 4).unwrap();
    let (d, new) = take(&p, None, T0, 0);
    assert!(d.allowed);
    assert_eq!(new, None);
    assert_eq!(d.remaining, 5);
    assert_eq!(cell_reply(&d, &p), [0, 5, 5, -1, 0]);
}

#[test]
fn bad_parameters_are_errors() {
    use GcraParamError::*;
    // (label, result, expected)
    let cases: &[(&str, Result<GcraParams, GcraParamError>, GcraParamError)] = &[
        ("new: zero emission", GcraParams::new(0, 1), ZeroEmission),
        (
            "new: burst overflows",
            GcraParams::new(1, u64::MAX),
            OutOfRange,
        ),
        (
            "new: tolerance overflows",
            GcraParams::new(u64::MAX, 1),
            OutOfRange,
        ),
        (
            "new: tolerance over cap",
            GcraParams::new(1 << 61, 2),
            OutOfRange,
        ),
        (
            "cell: negative burst",
            GcraParams::from_cell(-1, 30, 60),
            NegativeMaxBurst,
        ),
        (
            "cell: zero count",
            GcraParams::from_cell(15, 0, 60),
            NonPositiveCount,
        ),
        (
            "cell: negative count",
            GcraParams::from_cell(15, i64::MIN, 60),
            NonPositiveCount,
        ),
        (
            "cell: zero period",
            GcraParams::from_cell(15, 30, 0),
            NonPositivePeriod,
        ),
        (
            "cell: negative period",
            GcraParams::from_cell(15, 30, -60),
            NonPositivePeriod,
        ),
        (
            "cell: period overflows",
            GcraParams::from_cell(15, 30, i64::MAX),
            OutOfRange,
        ),
        (
            "cell: emission rounds to 0",
            GcraParams::from_cell(0, 2_000_000_000, 1),
            ZeroEmission,
        ),
        (
            "cell: burst too big",
            GcraParams::from_cell(i64::MAX, 1, 1),
            OutOfRange,
        ),
        (
            "gcra: negative burst",
            GcraParams::from_redis_gcra(-1, 1, 1.0),
            NegativeMaxBurst,
        ),
        (
            "gcra: zero tokens",
            GcraParams::from_redis_gcra(1, 0, 1.0),
            NonPositiveCount,
        ),
        (
            "gcra: zero period",
            GcraParams::from_redis_gcra(1, 1, 0.0),
            NonPositivePeriod,
        ),
        (
            "gcra: negative period",
            GcraParams::from_redis_gcra(1, 1, -1.0),
            NonPositivePeriod,
        ),
        (
            "gcra: NaN period",
            GcraParams::from_redis_gcra(1, 1, f64::NAN),
            NonPositivePeriod,
        ),
        (
            "gcra: period 1e12",
            GcraParams::from_redis_gcra(1, 1, 1e12),
            PeriodTooLarge,
        ),
        (
            "gcra: infinite period",
            GcraParams::from_redis_gcra(1, 1, f64::INFINITY),
            PeriodTooLarge,
        ),
        (
            "gcra: burst too big",
            GcraParams::from_redis_gcra(i64::MAX, 1, 1.0),
            OutOfRange,
        ),
        (
            "gcra: tolerance too big",
            GcraParams::from_redis_gcra(1 << 30, 1, 1e10),
            OutOfRange,
        ),
    ];
    for (label, got, want) in cases {
        assert_eq!(got.as_ref().err(), Some(want), "{label}");
    }
    assert_eq!(NegativeMaxBurst.to_string(), "max_burst must be >= 0");
}

/// Parameters with emission 1 ns ..= 10 s and max_burst 0 ..= 40, plus a sequence of
/// (time step, quantity) operations with steps up to three emission intervals.
fn scenario() -> impl Strategy<Value = (GcraParams, Vec<(u64, u64)>)> {
    (1u64..=10_000_000_000, 0u64..=40).prop_flat_map(|(emission, burst)| {
        let p = GcraParams::new(emission, burst).unwrap();
        let ops = prop::collection::vec((0..=emission * 3, 0..=burst + 3), 1..64);
        (Just(p), ops)
    })
}

proptest! {
    #[test]
    fn never_admits_more_than_limit_plus_elapsed_over_emission((p, ops) in scenario()) {
        let mut state = None;
        let mut now = T0;
        // (time, admitted quantity) per operation.
        let mut log = Vec::with_capacity(ops.len());
        for &(dt, q) in &ops {
            now = now.saturating_add(Nanos(dt));
            let d = step(&p, &mut state, now, q);
            log.push((now.0, if d.allowed { q } else { 0 }));
        }
        for i in 0..log.len() {
            let mut admitted = 0u64;
            for &(t, q) in &log[i..] {
                admitted += q;
                let bound = p.limit() + (t - log[i].0) / p.emission().0;
                prop_assert!(admitted <= bound, "window from op {i}: {admitted} > {bound}");
            }
        }
    }

    #[test]
    fn retry_after_is_exact((p, ops) in scenario()) {
        let mut state = None;
        let mut now = T0;
        for &(dt, q) in &ops {
            now = now.saturating_add(Nanos(dt));
            let (d, _) = take(&p, state, now, q);
            if let Some(r) = d.retry_after {
                prop_assert!(!d.allowed);
                prop_assert!(r.0 > 0);
                let (before, _) = take(&p, state, Nanos(now.0 + r.0 - 1), q);
                prop_assert!(!before.allowed, "admitted 1 ns before retry_after");
                let (at, _) = take(&p, state, Nanos(now.0 + r.0), q);
                prop_assert!(at.allowed, "denied at retry_after");
            } else if !d.allowed {
                prop_assert!(q > p.limit(), "denied without retry_after at quantity {q}");
            }
            step(&p, &mut state, now, q);
        }
    }

    #[test]
    fn peek_never_changes_state((p, ops) in scenario()) {
        let mut state = None;
        let mut now = T0;
        for &(dt, q) in &ops {
            now = now.saturating_add(Nanos(dt));
            let (peek, new) = take(&p, state, now, 0);
            prop_assert_eq!(new, None);
            let (d, _) = take(&p, state, now, q);
            if q == 0 {
                prop_assert_eq!(peek, d);
            } else {
                // A peek predicts what a take of quantity <= remaining does.
                prop_assert_eq!(d.allowed, q <= peek.remaining);
            }
            step(&p, &mut state, now, q);
        }
    }

    #[test]
    fn clock_stepping_back_never_increases_remaining(
        (p, ops) in scenario(),
        back in 0u64..=100_000_000_000,
    ) {
        let mut state = None;
        let mut now = T0;
        for &(dt, q) in &ops {
            now = now.saturating_add(Nanos(dt));
            step(&p, &mut state, now, q);
            let (here, _) = take(&p, state, now, 0);
            let (earlier, _) = take(&p, state, now.saturating_sub(Nanos(back)), 0);
            prop_assert!(earlier.remaining <= here.remaining);
            prop_assert!(earlier.reset_after >= here.reset_after);
            for q in 1..=p.limit() + 1 {
                let (e, _) = take(&p, state, now.saturating_sub(Nanos(back)), q);
                let (h, _) = take(&p, state, now, q);
                prop_assert!(!e.allowed || h.allowed, "admitted only in the past at {q}");
            }
        }
    }

    #[test]
    fn parameters_never_panic(burst: i64, count: i64, period: i64, period_f: f64) {
        if let Ok(p) = GcraParams::from_cell(burst, count, period) {
            prop_assert!(p.emission().0 > 0 && p.tolerance() <= MAX_TOLERANCE);
        }
        if let Ok(p) = GcraParams::from_redis_gcra(burst, count, period_f) {
            prop_assert!(p.emission().0 >= 1_000 && p.tolerance() <= MAX_TOLERANCE);
        }
        let _ = GcraParams::new(burst as u64, count as u64);
    }

    #[test]
    fn take_never_panics(
        emission in 1u64..=1 << 40,
        burst in 0u64..=1 << 20,
        tat: Option<u64>,
        now: u64,
        q: u64,
    ) {
        if let Ok(p) = GcraParams::new(emission, burst) {
            let (d, new) = take(&p, tat.map(|t| GcraState::at(Nanos(t))), Nanos(now), q);
            prop_assert!(d.remaining <= p.limit());
            let _ = (cell_reply(&d, &p), redis_gcra_reply(&d, &p), new);
        }
    }
}
