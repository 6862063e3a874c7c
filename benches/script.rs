//! Layer `script`: `EVALSHA` through the dispatcher on a manual clock, without sockets: the
//! Lua path (a script no fast path recognises) against the native fast path (the same
//! library script, recognised by its SHA1), with `CL.THROTTLE` as the yardstick.

use criterion::{BenchmarkId, Criterion, Throughput};
use limitkv::cmd::testing::Harness;
use limitkv::protocol::Frame;

use crate::store::{bench_stream, requests};

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
        let reqs = requests(
            |k| {
                let key = format!("user:{k:012}");
                match &sha {
                    Some(sha) => ["EVALSHA", sha.as_str(), "1", &key, "1", "60", "100", "60"]
                        .map(str::to_owned)
                        .to_vec(),
                    None => ["CL.THROTTLE", &key, "15", "30", "60"]
                        .map(str::to_owned)
                        .to_vec(),
                }
            },
            keys,
        );
        let id = BenchmarkId::new(name, format!("{keys}_keys"));
        bench_stream(&mut group, &mut h, id, &reqs);
    }
    group.finish();
}
