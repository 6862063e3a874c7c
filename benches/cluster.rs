//! Layer `cluster` (issue 22): what cluster mode adds to a keyed command. The whole dispatch of
//! `CL.THROTTLE` through the command table with `cluster-enabled` off and on (the emulated
//! one-node cluster: every command hashes its key and reads its slot's state), and the two
//! parts alone: `key_slot` (CRC16 with hash tags) and `Cluster::route`.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput};
use limitkv::cluster::{key_slot, Cluster};
use limitkv::cmd::testing::Harness;
use limitkv::cmd::{dispatch, Ctx};
use limitkv::config::Config;

use crate::XorShift64;

/// Requests cycled through (a power of two, so wrapping is a mask).
const REQUESTS: usize = 1 << 12;

/// All cluster benchmarks.
pub fn benches(c: &mut Criterion) {
    let mut rng = XorShift64::new(22);
    let reqs: Vec<Vec<Bytes>> = (0..REQUESTS)
        .map(|_| {
            let key = format!("user:{}", rng.below(100_000));
            ["CL.THROTTLE", &key, "15", "30", "60"]
                .iter()
                .map(|w| Bytes::copy_from_slice(w.as_bytes()))
                .collect()
        })
        .collect();
    let mut g = c.benchmark_group("cluster");
    g.throughput(Throughput::Elements(1));
    for on in [false, true] {
        let mut h = Harness::with_config(Config {
            cluster_enabled: on,
            ..Config::default()
        });
        let now = h.clock_now();
        let mut i = 0;
        let name = if on { "cluster_on" } else { "cluster_off" };
        g.bench_function(format!("dispatch/CL.THROTTLE/{name}"), |b| {
            b.iter(|| {
                i = (i + 1) & (REQUESTS - 1);
                let mut ctx = Ctx::new(&h.shared, &mut h.session, now);
                black_box(dispatch(&mut ctx, &reqs[i]))
            })
        });
    }
    let mut i = 0;
    g.bench_function("key_slot/user_key", |b| {
        b.iter(|| {
            i = (i + 1) & (REQUESTS - 1);
            black_box(key_slot(&reqs[i][1]))
        })
    });
    let node = Cluster::new(true, "a".repeat(40), true);
    let mut slot = 0u16;
    g.bench_function("route/own_slot", |b| {
        b.iter(|| {
            slot = (slot + 97) & 16383;
            black_box(node.route(black_box(slot), true, false))
        })
    });
    g.finish();
}
