//! Layer `codec`: limitkv's hand-written RESP codec against the `redis-protocol` crate, on the
//! same pipelined batches (issue 16: adopt the crate or record why not).
//!
//! Names are `codec/<impl>/<op>/<batch>`, throughput in requests:
//!
//! - `decode`: take every `CL.THROTTLE user:000000001234 15 30 60 1` request (RESP2
//!   multibulk) of one read buffer off its front, as the argument vector the dispatcher takes
//!   (`Vec<Bytes>`, zero-copy slices of the buffer), and drop it.
//!   `limitkv` is `protocol::decode_request`; `redis_protocol` is the crate's zero-copy
//!   `resp2::decode::decode_bytes_mut` (a `BytesFrame` tree of `Bytes` slices) with the bulk
//!   strings moved out of the array; `redis_protocol_range` is its lower-level
//!   `decode_range` (offsets only) sliced by hand, exactly as limitkv slices its spans, so it
//!   isolates the parser itself.
//! - `encode`: append the batch's replies (CL.THROTTLE's array of 5 integers each, built
//!   beforehand) to one reused `BytesMut`: `protocol::encode` against
//!   `resp2::encode::extend_encode` of a `BytesFrame`.
//! - `roundtrip`: both, as a connection does a batch: decode a request, build its reply frame,
//!   encode it, drop both.
//!
//! Before timing, each case checks that both implementations produce the same arguments and
//! the same reply bytes.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{BatchSize, Criterion, Throughput};
use limitkv::protocol::{decode_request, encode, DecodeLimits, Frame, RespVersion};
use redis_protocol::resp2::decode::{decode_bytes_mut, decode_range};
use redis_protocol::resp2::encode::extend_encode;
use redis_protocol::resp2::types::{BytesFrame, RangeFrame};

/// Pipelined batch sizes: redis-benchmark's `-P 16`, and a deep pipeline.
const BATCHES: [usize; 2] = [16, 128];
/// The request's arguments.
const ARGS: [&[u8]; 6] = [
    b"CL.THROTTLE",
    b"user:000000001234",
    b"15",
    b"30",
    b"60",
    b"1",
];
/// CL.THROTTLE's reply for a fresh key with these parameters.
const REPLY: [i64; 5] = [0, 16, 15, -1, 2];
/// That reply on the wire.
const REPLY_WIRE: &[u8] = b"*5\r\n:0\r\n:16\r\n:15\r\n:-1\r\n:2\r\n";

/// All codec benchmarks.
pub fn benches(c: &mut Criterion) {
    for n in BATCHES {
        decode(c, n);
        encode_replies(c, n);
        roundtrip(c, n);
    }
}

/// One request as a client sends it (RESP2 multibulk).
fn request() -> Vec<u8> {
    let mut out = format!("*{}\r\n", ARGS.len()).into_bytes();
    for a in ARGS {
        out.extend(format!("${}\r\n", a.len()).into_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A read buffer holding `n` pipelined requests.
fn batch(n: usize) -> Vec<u8> {
    request().repeat(n)
}

/// limitkv: the next request's arguments.
#[inline]
fn limitkv_next(buf: &mut BytesMut) -> Option<Vec<Bytes>> {
    decode_request(buf, &DecodeLimits::DEFAULT).expect("valid request")
}

/// redis-protocol, zero-copy frames: the next request's arguments. A request must be an array
/// of bulk strings (Redis answers anything else with a protocol error).
#[inline]
fn redis_protocol_next(buf: &mut BytesMut) -> Option<Vec<Bytes>> {
    let (frame, _consumed, _whole) = decode_bytes_mut(buf).expect("valid frame")?;
    let BytesFrame::Array(items) = frame else {
        panic!("a request is an array");
    };
    Some(
        items
            .into_iter()
            .map(|item| match item {
                BytesFrame::BulkString(b) => b,
                _ => panic!("a request's elements are bulk strings"),
            })
            .collect(),
    )
}

/// redis-protocol, offsets only (`decode_range`), sliced out of the frozen request the way
/// limitkv slices its spans.
#[inline]
fn redis_protocol_range_next(buf: &mut BytesMut) -> Option<Vec<Bytes>> {
    let (frame, consumed) = decode_range(&buf[..]).expect("valid frame")?;
    let RangeFrame::Array(items) = frame else {
        panic!("a request is an array");
    };
    let whole = buf.split_to(consumed).freeze();
    Some(
        items
            .iter()
            .map(|item| match item {
                RangeFrame::BulkString((start, end)) => whole.slice(*start..*end),
                _ => panic!("a request's elements are bulk strings"),
            })
            .collect(),
    )
}

type Next = fn(&mut BytesMut) -> Option<Vec<Bytes>>;

const DECODERS: [(&str, Next); 3] = [
    ("limitkv", limitkv_next),
    ("redis_protocol", redis_protocol_next),
    ("redis_protocol_range", redis_protocol_range_next),
];

fn limitkv_reply() -> Frame {
    Frame::Array(REPLY.map(Frame::Integer).to_vec())
}

fn redis_protocol_reply() -> BytesFrame {
    BytesFrame::Array(REPLY.map(BytesFrame::Integer).to_vec())
}

fn limitkv_encode(frame: &Frame, out: &mut BytesMut) {
    encode(frame, RespVersion::Resp2, out);
}

fn redis_protocol_encode(frame: &BytesFrame, out: &mut BytesMut) {
    extend_encode(out, frame, false).expect("encodable frame");
}

/// Same arguments from every decoder, same bytes from both encoders.
fn check_equivalence(n: usize) {
    let wire = batch(n);
    let expected: Vec<Vec<u8>> = ARGS.iter().map(|a| a.to_vec()).collect();
    for (name, next) in DECODERS {
        let mut buf = BytesMut::from(&wire[..]);
        let mut count = 0;
        while let Some(args) = next(&mut buf) {
            let args: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
            assert_eq!(args, expected, "{name}: arguments");
            count += 1;
        }
        assert_eq!(count, n, "{name}: every request decodes");
        assert!(buf.is_empty(), "{name}: the whole buffer is consumed");
    }
    let (mut a, mut b) = (BytesMut::new(), BytesMut::new());
    limitkv_encode(&limitkv_reply(), &mut a);
    redis_protocol_encode(&redis_protocol_reply(), &mut b);
    assert_eq!(a, b, "both encoders write the same reply");
    assert_eq!(&a[..], REPLY_WIRE);
}

fn decode(c: &mut Criterion, n: usize) {
    check_equivalence(n);
    let wire = batch(n);
    for (name, next) in DECODERS {
        let mut group = c.benchmark_group(format!("codec/{name}/decode"));
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(n.to_string(), |b| {
            b.iter_batched(
                || BytesMut::from(&wire[..]),
                |mut buf| {
                    let mut decoded = 0;
                    while let Some(args) = next(&mut buf) {
                        black_box(&args);
                        decoded += 1;
                    }
                    assert_eq!(decoded, n);
                    buf
                },
                BatchSize::SmallInput,
            );
        });
        group.finish();
    }
}

fn encode_replies(c: &mut Criterion, n: usize) {
    let mut group = c.benchmark_group("codec/limitkv/encode");
    group.throughput(Throughput::Elements(n as u64));
    let frames: Vec<Frame> = (0..n).map(|_| limitkv_reply()).collect();
    group.bench_function(n.to_string(), |b| {
        let mut out = BytesMut::with_capacity(64 * n);
        b.iter(|| {
            out.clear();
            for f in black_box(&frames) {
                limitkv_encode(f, &mut out);
            }
            black_box(out.len())
        });
    });
    group.finish();

    let mut group = c.benchmark_group("codec/redis_protocol/encode");
    group.throughput(Throughput::Elements(n as u64));
    let frames: Vec<BytesFrame> = (0..n).map(|_| redis_protocol_reply()).collect();
    group.bench_function(n.to_string(), |b| {
        let mut out = BytesMut::with_capacity(64 * n);
        b.iter(|| {
            out.clear();
            for f in black_box(&frames) {
                redis_protocol_encode(f, &mut out);
            }
            black_box(out.len())
        });
    });
    group.finish();
}

fn roundtrip(c: &mut Criterion, n: usize) {
    let wire = batch(n);
    let mut group = c.benchmark_group("codec/limitkv/roundtrip");
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function(n.to_string(), |b| {
        let mut out = BytesMut::with_capacity(64 * n);
        b.iter_batched(
            || BytesMut::from(&wire[..]),
            |mut buf| {
                out.clear();
                while let Some(args) = limitkv_next(&mut buf) {
                    black_box(&args);
                    limitkv_encode(&black_box(limitkv_reply()), &mut out);
                }
                assert_eq!(out.len(), REPLY_WIRE.len() * n);
                buf
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();

    let mut group = c.benchmark_group("codec/redis_protocol/roundtrip");
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function(n.to_string(), |b| {
        let mut out = BytesMut::with_capacity(64 * n);
        b.iter_batched(
            || BytesMut::from(&wire[..]),
            |mut buf| {
                out.clear();
                while let Some(args) = redis_protocol_next(&mut buf) {
                    black_box(&args);
                    redis_protocol_encode(&black_box(redis_protocol_reply()), &mut out);
                }
                assert_eq!(out.len(), REPLY_WIRE.len() * n);
                buf
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}
