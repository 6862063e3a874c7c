//! The replication feed: every change's effect record, in apply order, as one byte stream
//! whose positions are Redis's replication offsets, and the backlog that keeps its last
//! `repl-backlog-size` bytes for partial resynchronisation.
//!
//! Producers append under the key's shard lock (as they append to the AOF), so the stream's
//! order per key is the order of the changes. Until the feed is activated (the first replica
//! attaches, or this server becomes a replica), appending costs one atomic load and nothing is
//! kept, as Redis creates its backlog only when a replica first connects.
//!
//! The stream holds the same frames as the AOF ([`crate::persist::record`]) plus the control
//! frames of the replication protocol (`repl` writes those); this module does not look inside
//! them. No I/O happens here: replica connections read from the backlog at their own offset
//! and wait on [`Feed::notified`].
//!
//! An append wakes the readers only when one of them found nothing left to read since the last
//! wake-up ([`Feed::read_into`] notes it under the backlog's lock), so a busy master pays one
//! wake-up per reader's turn, not one per change.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::BytesMut;
use parking_lot::Mutex;
use tokio::sync::futures::Notified;
use tokio::sync::Notify;

/// Redis's default `repl-backlog-size`: 1 MiB.
pub const DEFAULT_BACKLOG: usize = 1024 * 1024;

/// The stream of effect records with its backlog.
#[derive(Debug)]
pub struct Feed {
    /// Local changes are appended (a master's feed).
    active: AtomicBool,
    /// The backlog exists (Redis's `repl_backlog_active`): a master's once a replica
    /// attached, a replica's once it synced.
    created: AtomicBool,
    /// Mirror of `Backlog::offset`, readable without the lock.
    offset: AtomicU64,
    backlog: Mutex<Backlog>,
    notify: Notify,
}

#[derive(Debug)]
struct Backlog {
    buf: VecDeque<u8>,
    size: usize,
    /// Bytes ever appended: the offset of the next byte.
    offset: u64,
    scratch: Vec<u8>,
    /// A reader found nothing to read and waits: the next append wakes the readers.
    wanted: bool,
}

/// A read position that is no longer in the backlog (the reader fell too far behind, or asked
/// for an offset before the backlog's first byte or past its end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotInBacklog;

/// The backlog's figures, as `INFO replication` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BacklogInfo {
    /// Whether the backlog exists (`repl_backlog_active`).
    pub active: bool,
    /// Its capacity (`repl_backlog_size`).
    pub size: usize,
    /// Offset of the next byte (`master_repl_offset`).
    pub offset: u64,
    /// Offset of the first byte held (0-based; Redis reports it plus one).
    pub first: u64,
    /// Bytes held (`repl_backlog_histlen`).
    pub histlen: u64,
}

impl Default for Feed {
    fn default() -> Feed {
        Feed::new(DEFAULT_BACKLOG)
    }
}

impl Feed {
    /// An inactive feed whose backlog will hold `size` bytes.
    pub fn new(size: usize) -> Feed {
        Feed {
            active: AtomicBool::new(false),
            created: AtomicBool::new(false),
            offset: AtomicU64::new(0),
            backlog: Mutex::new(Backlog {
                buf: VecDeque::new(),
                size: size.max(1),
                offset: 0,
                scratch: Vec::new(),
                wanted: false,
            }),
            notify: Notify::new(),
        }
    }

    /// True once changes are being kept.
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// Starts keeping changes (idempotent). Call it under no shard lock; changes made before
    /// it are not in the stream (a full sync's snapshot carries them).
    pub fn activate(&self) {
        self.created.store(true, Ordering::Release);
        self.active.store(true, Ordering::Release);
    }

    /// Stops appending local changes (a master that becomes a replica: the stream is its
    /// master's from now on, see [`Feed::push_upstream`]). The backlog stays.
    pub fn deactivate_local(&self) {
        self.active.store(false, Ordering::Release);
    }

    /// Appends bytes of the master's stream as received (a replica's feed, so that its own
    /// replicas and a partial resync after a promotion see the same offsets).
    pub fn push_upstream(&self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let mut b = self.backlog.lock();
        b.push(bytes);
        self.offset.store(b.offset, Ordering::Release);
        let wake = std::mem::take(&mut b.wanted);
        drop(b);
        if wake {
            self.notify.notify_waiters();
        }
    }

    /// Offset of the next byte (`master_repl_offset`).
    pub fn offset(&self) -> u64 {
        self.offset.load(Ordering::Acquire)
    }

    /// Appends what `encode` writes (one or more whole frames). Does nothing while inactive.
    pub fn append_with(&self, encode: impl FnOnce(&mut Vec<u8>)) {
        if !self.is_active() {
            return;
        }
        let mut b = self.backlog.lock();
        let mut scratch = std::mem::take(&mut b.scratch);
        scratch.clear();
        encode(&mut scratch);
        b.push(&scratch);
        b.scratch = scratch;
        self.offset.store(b.offset, Ordering::Release);
        let wake = std::mem::take(&mut b.wanted);
        drop(b);
        if wake {
            self.notify.notify_waiters();
        }
    }

    /// Appends `bytes` (whole frames). Does nothing while inactive.
    pub fn append(&self, bytes: &[u8]) {
        if !self.is_active() || bytes.is_empty() {
            return;
        }
        let mut b = self.backlog.lock();
        b.push(bytes);
        self.offset.store(b.offset, Ordering::Release);
        let wake = std::mem::take(&mut b.wanted);
        drop(b);
        if wake {
            self.notify.notify_waiters();
        }
    }

    /// Up to `max` bytes starting at offset `from`; empty when `from` is the current offset.
    #[cfg(test)]
    fn read_from(&self, from: u64, max: usize) -> Result<Vec<u8>, NotInBacklog> {
        let mut out = BytesMut::new();
        self.read_into(from, max, &mut out)?;
        Ok(out.to_vec())
    }

    /// Appends up to `max` bytes starting at offset `from` to `out` and returns how many (0
    /// when `from` is the current offset). A reader that gets 0 is caught up: the next append
    /// wakes the [`Feed::notified`] futures, so create (and `enable`) one before this call.
    pub fn read_into(
        &self,
        from: u64,
        max: usize,
        out: &mut BytesMut,
    ) -> Result<usize, NotInBacklog> {
        let mut b = self.backlog.lock();
        let first = b.offset - b.buf.len() as u64;
        if from < first || from > b.offset {
            return Err(NotInBacklog);
        }
        let start = (from - first) as usize;
        let end = b.buf.len().min(start.saturating_add(max));
        if start == end {
            b.wanted = true;
            return Ok(0);
        }
        let (front, back) = b.buf.as_slices();
        let split = front.len();
        if start < split {
            out.extend_from_slice(&front[start..end.min(split)]);
        }
        if end > split {
            out.extend_from_slice(&back[start.max(split) - split..end - split]);
        }
        Ok(end - start)
    }

    /// True if a reader at `from` can continue from the backlog.
    pub fn holds(&self, from: u64) -> bool {
        let b = self.backlog.lock();
        let first = b.offset - b.buf.len() as u64;
        self.created.load(Ordering::Acquire) && from >= first && from <= b.offset
    }

    /// A future woken by the next append. Create it (and `enable` it) before checking
    /// [`Feed::offset`], so an append in between is not missed.
    pub fn notified(&self) -> Notified<'_> {
        self.notify.notified()
    }

    /// Wakes every waiting reader (a configuration change, a role change).
    pub fn wake(&self) {
        self.notify.notify_waiters();
    }

    /// Empties the backlog and restarts the stream at `offset` (a replica after loading its
    /// master's snapshot taken at that offset); the backlog exists from then on. Whether
    /// local changes are appended is left as it is.
    pub fn reset(&self, offset: u64) {
        let mut b = self.backlog.lock();
        b.buf.clear();
        b.offset = offset;
        b.wanted = false;
        self.offset.store(offset, Ordering::Release);
        self.created.store(true, Ordering::Release);
        drop(b);
        self.notify.notify_waiters();
    }

    /// Changes the backlog's capacity (`CONFIG SET repl-backlog-size`), dropping its oldest
    /// bytes if it shrinks.
    pub fn resize(&self, size: usize) {
        let mut b = self.backlog.lock();
        b.size = size.max(1);
        b.trim();
        let size = b.size;
        if b.buf.capacity() > 2 * size {
            b.buf.shrink_to(size);
        }
    }

    /// The backlog's figures.
    pub fn info(&self) -> BacklogInfo {
        let b = self.backlog.lock();
        BacklogInfo {
            active: self.created.load(Ordering::Acquire),
            size: b.size,
            offset: b.offset,
            first: b.offset - b.buf.len() as u64,
            histlen: b.buf.len() as u64,
        }
    }
}

impl Backlog {
    fn push(&mut self, bytes: &[u8]) {
        self.buf.extend(bytes);
        self.offset += bytes.len() as u64;
        self.trim();
    }

    fn trim(&mut self) {
        if self.buf.len() > self.size {
            let over = self.buf.len() - self.size;
            self.buf.drain(..over);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inactive_feed_keeps_nothing() {
        let f = Feed::new(16);
        f.append(b"abc");
        assert_eq!(f.offset(), 0);
        assert_eq!(f.info().histlen, 0);
    }

    #[test]
    fn offsets_count_bytes_and_backlog_keeps_the_tail() {
        let f = Feed::new(8);
        f.activate();
        f.append(b"hello");
        f.append_with(|out| out.extend_from_slice(b"world"));
        assert_eq!(f.offset(), 10);
        let i = f.info();
        assert_eq!((i.first, i.histlen, i.size), (2, 8, 8));
        assert_eq!(f.read_from(2, 100).unwrap(), b"lloworld");
        assert_eq!(f.read_from(7, 2).unwrap(), b"rl");
        assert_eq!(f.read_from(10, 100).unwrap(), b"");
        assert_eq!(f.read_from(1, 100), Err(NotInBacklog), "dropped byte");
        assert_eq!(f.read_from(11, 100), Err(NotInBacklog), "future byte");
        assert!(f.holds(2) && !f.holds(1));
    }

    #[test]
    fn reset_restarts_the_stream_at_an_offset() {
        let f = Feed::new(8);
        f.reset(100);
        assert!(!f.is_active() && f.info().active, "a replica's backlog");
        f.append(b"local write");
        f.push_upstream(b"ab");
        assert_eq!(f.offset(), 102);
        assert_eq!(f.read_from(100, 10).unwrap(), b"ab");
        f.resize(1);
        assert_eq!(f.read_from(101, 10).unwrap(), b"b");
    }

    #[test]
    fn read_into_appends_exactly_the_stream_across_the_ring_wrap() {
        // A small backlog trimmed on every push wraps its ring buffer; every read of every
        // offset still held must give the stream's bytes at that offset, appended to `out`.
        let f = Feed::new(13);
        f.activate();
        let mut stream = Vec::new();
        for i in 0..40u8 {
            let chunk: Vec<u8> = (0..=(i % 5))
                .map(|j| i.wrapping_mul(7).wrapping_add(j))
                .collect();
            f.append(&chunk);
            stream.extend_from_slice(&chunk);
            let i = f.info();
            for from in i.first..=i.offset {
                for max in [1, 3, 13, 100] {
                    let mut out = BytesMut::from(&b"xy"[..]);
                    let n = f.read_into(from, max, &mut out).unwrap();
                    let want = &stream[from as usize..(from as usize + max).min(stream.len())];
                    assert_eq!(n, want.len());
                    assert_eq!(&out[..2], b"xy", "appends");
                    assert_eq!(&out[2..], want, "from {from} max {max}");
                }
            }
            let mut out = BytesMut::new();
            assert_eq!(
                f.read_into(i.first.wrapping_sub(1), 1, &mut out),
                Err(NotInBacklog)
            );
            assert_eq!(f.read_into(i.offset + 1, 1, &mut out), Err(NotInBacklog));
            assert!(out.is_empty());
        }
    }

    #[tokio::test]
    async fn a_caught_up_reader_is_woken_by_the_next_append_of_any_kind() {
        use std::future::Future;
        use std::task::Context;
        let f = Feed::new(64);
        f.activate();
        f.append(b"abc");
        let poll = |n: &mut std::pin::Pin<&mut Notified<'_>>| {
            let mut cx = Context::from_waker(std::task::Waker::noop());
            n.as_mut().poll(&mut cx).is_ready()
        };
        type Append = fn(&Feed);
        let appends: [Append; 3] = [
            |f| f.append(b"d"),
            |f| f.append_with(|out| out.push(b'e')),
            |f| f.push_upstream(b"f"),
        ];
        let mut pos = 0;
        for append in appends {
            let n = f.notified();
            tokio::pin!(n);
            n.as_mut().enable();
            let mut out = BytesMut::new();
            // Reading what is there does not ask for a wake-up; reading nothing does.
            pos += f.read_into(pos, 100, &mut out).unwrap() as u64;
            assert_eq!(f.read_into(pos, 100, &mut out).unwrap(), 0);
            assert!(!poll(&mut n));
            append(&f);
            assert!(poll(&mut n), "woken by the append after the empty read");
        }
        assert_eq!(f.read_from(0, 100).unwrap(), b"abcdef");
    }
}
