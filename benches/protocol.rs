//! Layer `protocol`: RESP decoding and encoding, without sockets or commands.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{BatchSize, Criterion, Throughput};
use limitkv::protocol::{decode_request, encode, DecodeLimits, Frame, RespVersion};

/// One `CL.THROTTLE key 15 30 60` request as a client sends it.
const CL_THROTTLE: &[u8] =
    b"*5\r\n$11\r\nCL.THROTTLE\r\n$3\r\nkey\r\n$2\r\n15\r\n$2\r\n30\r\n$2\r\n60\r\n";
/// Requests in one pipelined batch.
const PIPELINE: usize = 16;

/// All protocol benchmarks.
pub fn benches(c: &mut Criterion) {
    decode(c);
    encode_replies(c);
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("protocol/decode");
    group.throughput(Throughput::Elements(PIPELINE as u64));
    let batch: Vec<u8> = CL_THROTTLE.repeat(PIPELINE);
    group.bench_function("pipeline_16", |b| {
        b.iter_batched(
            || BytesMut::from(&batch[..]),
            |mut buf| {
                let mut decoded = 0;
                while let Some(request) =
                    decode_request(&mut buf, &DecodeLimits::DEFAULT).expect("valid request")
                {
                    black_box(&request);
                    decoded += 1;
                }
                assert_eq!(decoded, PIPELINE, "every pipelined request decodes");
                buf
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn encode_replies(c: &mut Criterion) {
    let mut group = c.benchmark_group("protocol/encode");
    group.throughput(Throughput::Elements(1));
    // CL.THROTTLE's reply for a fresh key: [0, 16, 15, -1, 2].
    let frame = Frame::Array([0, 16, 15, -1, 2].map(Frame::Integer).to_vec());
    group.bench_function("cell_reply", |b| {
        let mut out = BytesMut::with_capacity(64);
        b.iter(|| {
            out.clear();
            encode(black_box(&frame), RespVersion::Resp2, &mut out);
            black_box(out.len())
        });
    });
    group.finish();
}
