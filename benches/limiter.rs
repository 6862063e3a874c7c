//! Layer `limiter`: the pure transitions alone, with no store, lock or clock read in the way.
//! `now` is a fake instant advanced by hand.

use std::hint::black_box;

use criterion::{Criterion, Throughput};
use limitkv::clock::Nanos;
use limitkv::limiter::breaker::{self, BreakerParams, TripRule};
use limitkv::limiter::cost::{self, Amount, CostParams, CostPeriod};
use limitkv::limiter::gcra::{take, GcraParams, GcraState};
use limitkv::limiter::lease::{self, LeaseId, LeaseParams};
use limitkv::limiter::quota::{self, Calendar, PeriodUnit, QuotaParams};
use limitkv::limiter::units::parse_rate;
use limitkv::limiter::window::{self, WindowParams};
use limitkv::limiter::{rate, rate::RateParams};

use crate::XorShift64;

/// Any fixed wall-clock instant; only differences matter.
const START: Nanos = Nanos(1_700_000_000 * Nanos::PER_SEC);
/// Keys in the `1M_keys` table.
const KEYS: usize = 1_000_000;
/// Precomputed key indices, cycled through (a power of two, so wrapping is a mask).
const KEY_STREAM: usize = 1 << 16;

/// All limiter benchmarks.
pub fn benches(c: &mut Criterion) {
    gcra(c);
    families(c);
}

fn gcra(c: &mut Criterion) {
    let mut group = c.benchmark_group("limiter/gcra");
    group.throughput(Throughput::Elements(1));
    // 100 per second (10 ms emission) with a burst of 15; a 5 ms step admits about half of the
    // requests, so both branches are exercised.
    let params = GcraParams::new(10 * Nanos::PER_MS, 15).expect("valid constant parameters");
    let step = Nanos(5 * Nanos::PER_MS);

    group.bench_function("hot_key", |b| {
        let mut state: Option<GcraState> = None;
        let mut now = START;
        b.iter(|| {
            now = now.saturating_add(step);
            let (decision, new) = take(&params, state, black_box(now), black_box(1));
            if new.is_some() {
                state = new;
            }
            decision
        });
    });

    group.bench_function("1M_keys", |b| {
        let mut table: Vec<Option<GcraState>> = vec![None; KEYS];
        let mut rng = XorShift64::new(0x5eed_1234_abcd_ef01);
        let keys: Vec<u32> = (0..KEY_STREAM)
            .map(|_| rng.below(KEYS as u64) as u32)
            .collect();
        let mut i = 0usize;
        let mut now = START;
        b.iter(|| {
            let key = keys[i & (KEY_STREAM - 1)] as usize;
            i = i.wrapping_add(1);
            // 1 µs per request overall: a million keys see a request every second on average.
            now = now.saturating_add(Nanos(1_000));
            let slot = &mut table[key];
            let (decision, new) = take(&params, *slot, black_box(now), black_box(1));
            if new.is_some() {
                *slot = new;
            }
            decision
        });
    });

    group.finish();
}

/// `limiter/<family>/hot_key`: one key, 5 ms between requests, `run` making one decision.
fn hot_key(c: &mut Criterion, family: &str, mut run: impl FnMut(Nanos) -> bool) {
    let step = Nanos(5 * Nanos::PER_MS);
    let mut group = c.benchmark_group(format!("limiter/{family}"));
    group.throughput(Throughput::Elements(1));
    // `now` lives outside the routine, which criterion calls several times, so that time
    // keeps moving forward for the state `run` keeps.
    let mut now = START;
    group.bench_function("hot_key", |b| {
        b.iter(|| {
            now = now.saturating_add(step);
            run(black_box(now))
        });
    });
    group.finish();
}

/// One hot key per native family, stepping 5 ms per request so that both the admit and the
/// deny paths run, as in the GCRA bench.
fn families(c: &mut Criterion) {
    // 100 per second, burst 16.
    let p = RateParams::new(parse_rate("100/1s").expect("valid rate"), Some(16)).expect("valid");
    let mut state = None;
    let run = move |now| {
        let (d, new) = rate::take(&p, state, now, black_box(1));
        state = new.or(state);
        d.allowed
    };
    hot_key(c, "rate", run);

    // 100 per 1 s window.
    let p = WindowParams::new(100, Nanos::from_secs(1)).expect("valid");
    let mut state = None;
    let run = move |now| {
        let (d, new) = window::take(&p, state, now, black_box(1));
        state = new.or(state);
        d.allowed
    };
    hot_key(c, "window", run);

    // 100 000 per Berlin day with carry-over: the zone math runs only at a new period.
    let tz = quota::parse_zone("Europe/Berlin").expect("bundled zone");
    let cal = Calendar::new(PeriodUnit::Day, tz, Default::default());
    let p = QuotaParams::new(100_000, cal, 1_000).expect("valid");
    let mut state = None;
    let run = move |now| {
        let (o, new) = quota::take(&p, state, now, black_box(1));
        state = new.or(state);
        o.decision.allowed
    };
    hot_key(c, "quota", run);

    // 10.00 per UTC hour, 0.05 per request.
    let per = CostPeriod::Calendar(Calendar::utc(PeriodUnit::Hour));
    let p = CostParams::new(Amount::parse("10").expect("valid"), per).expect("valid");
    let amount = Amount::parse("0.05").expect("valid");
    let mut state = None;
    let run = move |now| {
        let (o, new) = cost::take(&p, state, now, black_box(amount), false);
        state = new.or(state);
        o.decision.allowed
    };
    hot_key(c, "cost", run);

    // 16 slots of 50 ms: about 10 live leases, so every acquire copies a small vector.
    let p = LeaseParams::new(16, Nanos(50 * Nanos::PER_MS)).expect("valid");
    let mut state = None;
    let mut id = 0u64;
    let run = move |now| {
        id += 1;
        let (o, new) = lease::acquire(&p, state.as_ref(), now, LeaseId(id));
        if new.is_some() {
            state = new;
        }
        o.decision.allowed
    };
    hot_key(c, "lease", run);

    // One guarded call: ALLOW, then REPORT of its result (every fourth fails), so the breaker
    // cycles through closed, open and half-open.
    let rule = TripRule::Ratio {
        percent: 30,
        min_calls: 20,
    };
    let sec = Nanos::from_secs(1);
    let p = BreakerParams::new(rule, sec, sec, 2).expect("valid");
    let mut state = None;
    let mut n = 0u64;
    let run = move |now| {
        n += 1;
        let (o, new) = breaker::allow(&p, state, now);
        state = new.or(state);
        if o.decision.allowed {
            let (_, new) = breaker::report(&p, state, now, n % 4 != 0);
            state = new.or(state);
        }
        o.decision.allowed
    };
    hot_key(c, "breaker", run);
}
