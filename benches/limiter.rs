//! Layer `limiter`: the pure transitions alone, with no store, lock or clock read in the way.
//! `now` is a fake instant advanced by hand.

use std::hint::black_box;

use criterion::{Criterion, Throughput};
use limitkv::clock::Nanos;
use limitkv::limiter::gcra::{take, GcraParams, GcraState};

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
