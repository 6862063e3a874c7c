//! Layer `store`: whole commands through the dispatcher and the sharded keyspace, on a manual
//! clock, without sockets: what one request costs the server once it is decoded.

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput};
use limitkv::cmd::testing::Harness;
use limitkv::cmd::{dispatch, Ctx};

use crate::XorShift64;

/// Requests precomputed per benchmark, cycled through (a power of two).
const STREAM: usize = 1 << 16;

/// All store benchmarks.
pub fn benches(c: &mut Criterion) {
    commands(c);
}

fn requests(words: impl Fn(u64) -> Vec<String>, keys: u64) -> Vec<Vec<Bytes>> {
    let mut rng = XorShift64::new(0x5eed);
    (0..STREAM)
        .map(|_| {
            words(rng.below(keys))
                .into_iter()
                .map(Bytes::from)
                .collect()
        })
        .collect()
}

/// Builds the words of one request for key number `k`.
type RequestFn = Box<dyn Fn(u64) -> Vec<String>>;

fn commands(c: &mut Criterion) {
    let mut group = c.benchmark_group("store");
    group.throughput(Throughput::Elements(1));
    for keys in [1u64, 100_000] {
        let cases: [(&str, RequestFn); 3] = [
            (
                "cl_throttle",
                Box::new(|k| {
                    ["CL.THROTTLE", &format!("user:{k:012}"), "15", "30", "60"]
                        .map(str::to_owned)
                        .to_vec()
                }),
            ),
            (
                "incr",
                Box::new(|k| {
                    ["INCR", &format!("ctr:{k:012}")]
                        .map(str::to_owned)
                        .to_vec()
                }),
            ),
            (
                "get",
                Box::new(|k| ["GET", &format!("ctr:{k:012}")].map(str::to_owned).to_vec()),
            ),
        ];
        let mut h = Harness::new();
        for (name, words) in cases {
            let reqs = requests(words, keys);
            let mut i = 0usize;
            group.bench_function(BenchmarkId::new(name, format!("{keys}_keys")), |b| {
                b.iter(|| {
                    // 1 µs per request keeps GCRA buckets both admitting and denying.
                    h.clock.advance(Duration::from_micros(1));
                    let now = h.clock_now();
                    let req = &reqs[i & (STREAM - 1)];
                    i += 1;
                    black_box(dispatch(&mut Ctx::new(&h.shared, &mut h.session, now), req))
                })
            });
        }
    }
    group.finish();
}
