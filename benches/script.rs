//! Layer `script`: `EVALSHA` through the dispatcher on a manual clock, without sockets: the
//! Lua path (a script no fast path recognises) against the native fast path (the same
//! library script, recognised by its SHA1), with `CL.THROTTLE` as the yardstick.

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput};
use limitkv::cmd::testing::Harness;
use limitkv::cmd::{dispatch, Ctx};
use limitkv::protocol::Frame;

use crate::XorShift64;

/// Requests precomputed per benchmark, cycled through (a power of two).
const STREAM: usize = 1 << 16;

/// rate-limiter-flexible's script, byte for byte as the library sends it.
const RLF: &str = include_str!("../tests/compat/scripts/rate-limiter-flexible-incr-ttl.lua");

/// All script benchmarks.
pub fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("script");
    group.throughput(Throughput::Elements(1));
    let mut h = Harness::new();
    let load = |h: &mut Harness, body: &str| match h.run(&["SCRIPT", "LOAD", body]) {
        Frame::Bulk(sha) => String::from_utf8(sha.to_vec()).expect("a SHA1 is hex"),
        other => panic!("SCRIPT LOAD failed: {other:?}"),
    };
    // A trailing comment gives a digest no server recognises: the script runs in Lua.
    let unknown = load(&mut h, &format!("{RLF}\n-- not recognised"));
    let known = load(&mut h, RLF);
    let keys = 100_000u64;
    let cases = [
        ("evalsha_lua", Some(unknown)),
        ("evalsha_native", Some(known)),
        ("cl_throttle", None),
    ];
    for (name, sha) in cases {
        let mut rng = XorShift64::new(0x5eed);
        let reqs: Vec<Vec<Bytes>> = (0..STREAM)
            .map(|_| {
                let key = format!("user:{:012}", rng.below(keys));
                let words: Vec<String> = match &sha {
                    Some(sha) => vec!["EVALSHA", sha, "1", &key, "1", "60", "100", "60"]
                        .into_iter()
                        .map(str::to_owned)
                        .collect(),
                    None => ["CL.THROTTLE", &key, "15", "30", "60"]
                        .map(str::to_owned)
                        .to_vec(),
                };
                words.into_iter().map(Bytes::from).collect()
            })
            .collect();
        let mut i = 0usize;
        group.bench_function(BenchmarkId::new(name, format!("{keys}_keys")), |b| {
            b.iter(|| {
                h.clock.advance(Duration::from_micros(1));
                let now = h.clock_now();
                let req = &reqs[i & (STREAM - 1)];
                i += 1;
                black_box(dispatch(&mut Ctx::new(&h.shared, &mut h.session, now), req))
            })
        });
    }
    group.finish();
}
