//! Layer `queue`: the append-only-file writer's queue (`persist::writer`, one byte buffer
//! behind a `parking_lot::Mutex` that producers encode records into) against a channel of
//! records, crossbeam's or std's (issue 16: would `crossbeam` replace something hand-written).
//!
//! Names are `queue/<impl>/<op>/<records>`, throughput in records. Each record is the framed
//! `Put` of a CL.THROTTLE bucket (`persist::record::encode_put`), as the journal appends it
//! under the key's shard lock. The queue is modelled here rather than driven through
//! `Writer` (whose thread would commit concurrently): `mutex_vec` is what
//! `Writer::append_with` and the commit's take do (lock, encode in place, bump the sequence
//! number; swap the buffer out); the channels encode each record into its own `Vec`, take a
//! sequence number from an atomic and send it, and the consumer appends what it receives to
//! one batch buffer.
//!
//! - `append_drain`: one thread appends the records, then the batch is taken (uncontended).
//! - `2_producers`: two threads append the records between them at the same time, then the
//!   batch is taken; includes spawning the two threads (the same for every implementation).

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput};
use limitkv::clock::Nanos;
use limitkv::persist::record::encode_put;
use limitkv::store::Value;
use parking_lot::Mutex;

/// Records per single-threaded batch, and per producer in the two-thread case.
const RECORDS: u64 = 64;
const CONTENDED: u64 = 10_000;

/// The hand-written queue: one pending buffer and the last sequence number.
#[derive(Default)]
struct MutexVec {
    pending: Mutex<(Vec<u8>, u64)>,
}

impl MutexVec {
    fn append(&self, key: &[u8], value: &Value, at: Nanos) -> u64 {
        let mut p = self.pending.lock();
        encode_put(0, key, value, Some(at), &mut p.0);
        p.1 += 1;
        p.1
    }

    /// Takes everything queued, leaving `spare` (emptied) in its place.
    fn take(&self, spare: &mut Vec<u8>) -> Vec<u8> {
        spare.clear();
        std::mem::replace(&mut self.pending.lock().0, std::mem::take(spare))
    }
}

/// A channel of encoded records, crossbeam's or std's.
trait Channel: Sync {
    fn send(&self, record: Vec<u8>);
    /// Appends every record received so far to `batch`.
    fn drain_into(&self, batch: &mut Vec<u8>);
}

struct Crossbeam(
    crossbeam_channel::Sender<Vec<u8>>,
    crossbeam_channel::Receiver<Vec<u8>>,
);

impl Channel for Crossbeam {
    fn send(&self, record: Vec<u8>) {
        self.0.send(record).expect("receiver alive");
    }
    fn drain_into(&self, batch: &mut Vec<u8>) {
        for r in self.1.try_iter() {
            batch.extend_from_slice(&r);
        }
    }
}

/// std's `mpsc`: `Sender` is `Sync` since Rust 1.72; `Receiver` is not, so it sits behind a
/// lock that only the draining thread ever takes.
struct StdMpsc(
    std::sync::mpsc::Sender<Vec<u8>>,
    Mutex<std::sync::mpsc::Receiver<Vec<u8>>>,
);

impl Channel for StdMpsc {
    fn send(&self, record: Vec<u8>) {
        self.0.send(record).expect("receiver alive");
    }
    fn drain_into(&self, batch: &mut Vec<u8>) {
        for r in self.1.lock().try_iter() {
            batch.extend_from_slice(&r);
        }
    }
}

struct Chan<C> {
    chan: C,
    seq: AtomicU64,
}

impl<C: Channel> Chan<C> {
    fn append(&self, key: &[u8], value: &Value, at: Nanos) -> u64 {
        let mut record = Vec::with_capacity(64);
        encode_put(0, key, value, Some(at), &mut record);
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        self.chan.send(record);
        seq
    }
}

fn crossbeam() -> Chan<Crossbeam> {
    let (tx, rx) = crossbeam_channel::unbounded();
    Chan {
        chan: Crossbeam(tx, rx),
        seq: AtomicU64::new(0),
    }
}

fn std_mpsc() -> Chan<StdMpsc> {
    let (tx, rx) = std::sync::mpsc::channel();
    Chan {
        chan: StdMpsc(tx, Mutex::new(rx)),
        seq: AtomicU64::new(0),
    }
}

/// The keys the records are for (`user:%012d`, as in the codec benches).
fn keys(n: u64) -> Vec<Bytes> {
    (0..n)
        .map(|i| Bytes::from(format!("user:{:012}", i * 7919 % 100_000)))
        .collect()
}

fn record_len() -> usize {
    let mut v = Vec::new();
    encode_put(0, b"user:000000001234", &value(), Some(Nanos(1)), &mut v);
    v.len()
}

fn value() -> Value {
    Value::Gcra(Nanos(1_790_000_000_123_456_789))
}

/// All queue benchmarks.
pub fn benches(c: &mut Criterion) {
    append_drain(c);
    two_producers(c);
}

fn append_drain(c: &mut Criterion) {
    let keys = keys(RECORDS);
    let value = value();
    let at = Nanos(1_790_000_002_000_000_000);
    let expect = record_len() * RECORDS as usize;

    let mut group = c.benchmark_group("queue/mutex_vec/append_drain");
    group.throughput(Throughput::Elements(RECORDS));
    group.bench_function(RECORDS.to_string(), |b| {
        let q = MutexVec::default();
        let mut spare = Vec::new();
        b.iter(|| {
            for k in &keys {
                black_box(q.append(k, &value, at));
            }
            let batch = q.take(&mut spare);
            assert_eq!(batch.len(), expect);
            spare = batch;
        });
    });
    group.finish();

    channel_append_drain(c, "crossbeam", crossbeam(), &keys, expect);
    channel_append_drain(c, "std_mpsc", std_mpsc(), &keys, expect);
}

fn channel_append_drain<C: Channel>(
    c: &mut Criterion,
    name: &str,
    q: Chan<C>,
    keys: &[Bytes],
    expect: usize,
) {
    let value = value();
    let at = Nanos(1_790_000_002_000_000_000);
    let mut group = c.benchmark_group(format!("queue/{name}/append_drain"));
    group.throughput(Throughput::Elements(RECORDS));
    group.bench_function(RECORDS.to_string(), |b| {
        let mut batch = Vec::new();
        b.iter(|| {
            for k in keys {
                black_box(q.append(k, &value, at));
            }
            batch.clear();
            q.chan.drain_into(&mut batch);
            assert_eq!(batch.len(), expect);
        });
    });
    group.finish();
}

/// Times `iters` rounds of: two scoped threads each run `produce` over `keys`, then `drain`.
fn contended(
    iters: u64,
    keys: &[Bytes],
    produce: impl Fn(&Bytes) + Sync,
    drain: impl Fn(),
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| keys.iter().for_each(&produce));
            }
        });
        drain();
        total += start.elapsed();
    }
    total
}

fn two_producers(c: &mut Criterion) {
    let keys = keys(CONTENDED);
    let value = value();
    let at = Nanos(1_790_000_002_000_000_000);
    let expect = record_len() * 2 * CONTENDED as usize;

    let mut group = c.benchmark_group("queue/mutex_vec/2_producers");
    group.throughput(Throughput::Elements(2 * CONTENDED));
    group.bench_function((2 * CONTENDED).to_string(), |b| {
        let q = MutexVec::default();
        let spare = Mutex::new(Vec::new());
        b.iter_custom(|iters| {
            contended(
                iters,
                &keys,
                |k| {
                    black_box(q.append(k, &value, at));
                },
                || {
                    let mut spare = spare.lock();
                    let batch = q.take(&mut spare);
                    assert_eq!(batch.len(), expect);
                    *spare = batch;
                },
            )
        });
    });
    group.finish();

    channel_two_producers(c, "crossbeam", crossbeam(), &keys, expect);
    channel_two_producers(c, "std_mpsc", std_mpsc(), &keys, expect);
}

fn channel_two_producers<C: Channel>(
    c: &mut Criterion,
    name: &str,
    q: Chan<C>,
    keys: &[Bytes],
    expect: usize,
) {
    let value = value();
    let at = Nanos(1_790_000_002_000_000_000);
    let mut group = c.benchmark_group(format!("queue/{name}/2_producers"));
    group.throughput(Throughput::Elements(2 * CONTENDED));
    group.bench_function((2 * CONTENDED).to_string(), |b| {
        let batch = Mutex::new(Vec::new());
        b.iter_custom(|iters| {
            contended(
                iters,
                keys,
                |k| {
                    black_box(q.append(k, &value, at));
                },
                || {
                    let mut batch = batch.lock();
                    batch.clear();
                    q.chan.drain_into(&mut batch);
                    assert_eq!(batch.len(), expect);
                },
            )
        });
    });
    group.finish();
}
