//! Layer `store`: whole commands through the dispatcher and the sharded keyspace, on a manual
//! clock, without sockets: what one request costs the server once it is decoded.

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput};
use limitkv::cmd::testing::Harness;
use limitkv::cmd::{dispatch, Ctx};

use crate::XorShift64;

/// Requests precomputed per benchmark, cycled through (a power of two).
pub const STREAM: usize = 1 << 16;

/// All store benchmarks.
pub fn benches(c: &mut Criterion) {
    commands(c);
}

/// [`STREAM`] requests built by `words` for random key numbers below `keys` (fixed seed).
pub fn requests(words: impl Fn(u64) -> Vec<String>, keys: u64) -> Vec<Vec<Bytes>> {
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
            let id = BenchmarkId::new(name, format!("{keys}_keys"));
            bench_stream(&mut group, &mut h, id, &requests(words, keys));
        }
    }
    group.finish();
    acl(c);
}

/// CL.THROTTLE as the default user (nothing checked) and as an ACL user limited to
/// `+@limiter ~user:*` (command bit and key pattern checked on every call).
fn acl(c: &mut Criterion) {
    let mut group = c.benchmark_group("store/acl");
    group.throughput(Throughput::Elements(1));
    let reqs = requests(
        |k| {
            ["CL.THROTTLE", &format!("user:{k:012}"), "15", "30", "60"]
                .map(str::to_owned)
                .to_vec()
        },
        100_000,
    );
    for user in ["default", "restricted"] {
        let mut h = Harness::new();
        if user == "restricted" {
            h.run(&["ACL", "SETUSER", "app", "on", ">pw", "+@limiter", "~user:*"]);
            h.run(&["AUTH", "app", "pw"]);
        }
        let id = BenchmarkId::new("cl_throttle", user);
        bench_stream(&mut group, &mut h, id, &reqs);
    }
    group.finish();
}

/// Times `reqs` through the dispatcher, cycling through them, 1 µs of manual clock apart
/// (which keeps GCRA buckets both admitting and denying).
pub fn bench_stream(
    group: &mut BenchmarkGroup<'_, WallTime>,
    h: &mut Harness,
    id: BenchmarkId,
    reqs: &[Vec<Bytes>],
) {
    let mut i = 0usize;
    group.bench_function(id, |b| {
        b.iter(|| {
            h.clock.advance(Duration::from_micros(1));
            let now = h.clock_now();
            let req = &reqs[i & (STREAM - 1)];
            i += 1;
            black_box(dispatch(&mut Ctx::new(&h.shared, &mut h.session, now), req))
        })
    });
}
