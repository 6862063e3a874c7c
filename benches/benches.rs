//! The one criterion entry point: one module per layer, benchmarks named `layer/family/param`.
//!
//! Setup stays outside the timed closures, every benchmark sets `Throughput::Elements`, and key
//! distributions come from [`XorShift64`] with a fixed seed so runs are comparable.

use criterion::{criterion_group, criterion_main};

mod cluster;
mod codec;
mod limiter;
mod protocol;
mod queue;
mod script;
mod store;

/// Marsaglia's xorshift64: a tiny deterministic generator, good enough to spread keys.
pub struct XorShift64(u64);

impl XorShift64 {
    /// A generator from a fixed, non-zero seed.
    pub fn new(seed: u64) -> XorShift64 {
        // Zero is xorshift's only fixed point.
        XorShift64(seed.max(1))
    }

    /// The next pseudo-random value.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A value in `0..n` (slightly biased, which does not matter for key spreading).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

criterion_group!(
    benches,
    cluster::benches,
    codec::benches,
    limiter::benches,
    protocol::benches,
    queue::benches,
    script::benches,
    store::benches
);
criterion_main!(benches);
