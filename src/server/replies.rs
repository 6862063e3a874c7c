//! Where a connection's replies go ([`Replies`]): a plain socket's [`Outbox`], which the AOF
//! writer may write to directly under `appendfsync always`, or a stream only the connection
//! task can write (TLS). Also the writes themselves, with the `normal` class's output buffer
//! limit ([`SoftLimit`]) and the wake-ups for `CLIENT KILL` and Pub/Sub.

use std::io::ErrorKind;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use parking_lot::Mutex;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;

use crate::cmd::ClientInfo;
use crate::config::OutputBufferLimit;
use crate::persist::{Deferred, DurableWaiter, Seq, Writer};

/// Bytes a read asks for at least; long-lived read and reply buffers shrink back to this.
pub(super) const READ_CHUNK: usize = 16 * 1024;

/// Where a connection's replies go.
pub(super) trait Replies {
    /// Sends `wbuf` and empties it: at once, or, under `always`, once `seq` (the batch's last
    /// AOF record) and every reply held before it are durable. A write that waits gives up
    /// when its pending bytes break `limit`. False if the connection must close.
    async fn send(
        &mut self,
        wbuf: &mut BytesMut,
        seq: Option<Seq>,
        limit: OutputBufferLimit,
    ) -> bool;

    /// Replies held back for the AOF need the task ([`Replies::settle`]).
    fn needs_attention(&self) -> bool;

    /// Writes whatever is still held, once durable. False if the connection must close.
    async fn settle(&mut self, limit: OutputBufferLimit) -> bool;
}

impl<O: Replies> Replies for &mut O {
    async fn send(
        &mut self,
        wbuf: &mut BytesMut,
        seq: Option<Seq>,
        limit: OutputBufferLimit,
    ) -> bool {
        (**self).send(wbuf, seq, limit).await
    }

    fn needs_attention(&self) -> bool {
        (**self).needs_attention()
    }

    async fn settle(&mut self, limit: OutputBufferLimit) -> bool {
        (**self).settle(limit).await
    }
}

/// A plain socket's replies: the [`Outbox`], and under `always` the writer it holds replies for.
pub(super) struct SocketReplies {
    outbox: Arc<Outbox>,
    writer: Option<Arc<Writer>>,
    waiter: Option<DurableWaiter>,
}

impl SocketReplies {
    /// Replies to the socket `wr` of `info`'s connection; `writer` is the AOF writer under
    /// `appendfsync always`.
    pub(super) fn new(
        wr: OwnedWriteHalf,
        info: Arc<ClientInfo>,
        writer: Option<Arc<Writer>>,
    ) -> SocketReplies {
        SocketReplies {
            outbox: Arc::new(Outbox {
                wr,
                info,
                held: Mutex::default(),
                attention: AtomicBool::new(false),
            }),
            waiter: writer.as_ref().map(|w| w.waiter()),
            writer,
        }
    }
}

impl Replies for SocketReplies {
    async fn send(
        &mut self,
        wbuf: &mut BytesMut,
        seq: Option<Seq>,
        limit: OutputBufferLimit,
    ) -> bool {
        let out = &self.outbox;
        // Replies wait for their records only under `always` (the policy may change at run
        // time); replies still held from before a switch keep later ones behind them.
        let held = self.writer.as_deref().is_some_and(|w| {
            let seq = seq.filter(|_| w.policy() == crate::persist::FsyncPolicy::Always);
            out.hold(wbuf, seq, w)
        });
        if !held && !wbuf.is_empty() {
            if !write_out(&out.wr, wbuf, &out.info, limit).await {
                return false;
            }
            wbuf.clear();
        }
        true
    }

    fn needs_attention(&self) -> bool {
        self.outbox.attention.load(Ordering::Acquire)
    }

    async fn settle(&mut self, limit: OutputBufferLimit) -> bool {
        self.outbox.settle(self.waiter.as_mut(), limit).await
    }
}

/// The replies of a stream only the connection task can write (TLS): nothing is ever held,
/// the task waits for durability itself.
pub(super) struct StreamReplies<W> {
    wr: W,
    info: Arc<ClientInfo>,
    /// Under `always`: waits for the batch's records to be durable before its replies go out.
    waiter: Option<DurableWaiter>,
}

impl<W: AsyncWrite + Unpin> StreamReplies<W> {
    /// Replies to the stream `wr` of `info`'s connection; `writer` is the AOF writer under
    /// `appendfsync always`.
    pub(super) fn new(wr: W, info: Arc<ClientInfo>, writer: Option<&Writer>) -> Self {
        StreamReplies {
            wr,
            info,
            waiter: writer.map(Writer::waiter),
        }
    }

    /// Shuts the stream down (for TLS: sends `close_notify`), bounded: the client may not be
    /// reading.
    pub(super) async fn shutdown(&mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.wr.shutdown()).await;
    }
}

impl<W: AsyncWrite + Unpin> Replies for StreamReplies<W> {
    async fn send(
        &mut self,
        wbuf: &mut BytesMut,
        seq: Option<Seq>,
        limit: OutputBufferLimit,
    ) -> bool {
        if wbuf.is_empty() {
            return true;
        }
        let waiter = self.waiter.as_mut().filter(|w| w.is_always());
        if let (Some(seq), Some(waiter)) = (seq, waiter) {
            if let Err(e) = waiter.wait(seq).await {
                tracing::error!(client = self.info.id, error = %e, "AOF write failed: closing without replies");
                return false;
            }
        }
        if !write_stream(&mut self.wr, wbuf, &self.info, limit).await {
            return false;
        }
        wbuf.clear();
        true
    }

    fn needs_attention(&self) -> bool {
        false
    }

    async fn settle(&mut self, _limit: OutputBufferLimit) -> bool {
        true
    }
}

/// A connection's sending side, shared with the AOF writer under `appendfsync always`.
///
/// Replies whose AOF records are not yet durable are held here, with the last record they
/// depend on, and the thread that publishes that record's commit writes them (Redis writes
/// every reply of an event-loop turn after its fsync the same way). The task does not wait:
/// it goes back to reading, and any later reply is appended behind the held ones. Only if the
/// socket does not take everything, or the AOF fails first, is the task woken to finish.
pub(super) struct Outbox {
    wr: OwnedWriteHalf,
    info: Arc<ClientInfo>,
    held: Mutex<Held>,
    /// The held replies need the task ([`HeldState::Stalled`] or [`HeldState::Failed`]).
    attention: AtomicBool,
}

#[derive(Default)]
struct Held {
    buf: BytesMut,
    /// The last record `buf` depends on.
    seq: Seq,
    state: HeldState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum HeldState {
    /// Nothing held: the task writes its replies itself.
    #[default]
    Empty,
    /// Held until `seq` is durable; the writer resolves it.
    Waiting,
    /// Durable, but the socket did not take it all (or failed): the task writes the rest.
    Stalled,
    /// The AOF failed before `seq` was durable: the connection closes without these replies.
    Failed,
}

impl Outbox {
    /// Under `always`: holds `wbuf` (taking its bytes) behind any replies already held, and
    /// for `seq` if given. Returns false, holding nothing, when nothing is held and `seq` is
    /// `None`: the caller writes `wbuf` itself.
    fn hold(self: &Arc<Self>, wbuf: &mut BytesMut, seq: Option<Seq>, writer: &Writer) -> bool {
        let mut h = self.held.lock();
        if h.state == HeldState::Empty {
            let Some(seq) = seq else { return false };
            // The buffers trade places, so both keep their capacity.
            std::mem::swap(&mut h.buf, wbuf);
            h.seq = seq;
            h.state = HeldState::Waiting;
            drop(h);
            // Resolved at once (on this thread) if already durable.
            writer.defer(seq, Arc::clone(self) as Arc<dyn Deferred>);
        } else {
            h.buf.extend_from_slice(wbuf);
            wbuf.clear();
            h.seq = h.seq.max(seq.unwrap_or_default());
        }
        true
    }

    /// Takes back whatever is held and writes it once durable (the task's way, for what the
    /// writer could not finish, and before closing). False if the connection must close.
    async fn settle(&self, waiter: Option<&mut DurableWaiter>, limit: OutputBufferLimit) -> bool {
        let info = &*self.info;
        let (buf, seq) = {
            let mut h = self.held.lock();
            self.attention.store(false, Ordering::Relaxed);
            match h.state {
                HeldState::Empty => return true,
                HeldState::Failed => {
                    tracing::error!(
                        client = info.id,
                        "AOF write failed: closing without replies"
                    );
                    return false;
                }
                HeldState::Waiting | HeldState::Stalled => {
                    // A writer still holding this outbox finds it empty and lets it go.
                    h.state = HeldState::Empty;
                    (h.buf.split(), h.seq)
                }
            }
        };
        if let Some(waiter) = waiter {
            if let Err(e) = waiter.wait(seq).await {
                tracing::error!(client = info.id, error = %e, "AOF write failed: closing without replies");
                return false;
            }
        }
        write_out(&self.wr, &buf, info, limit).await
    }
}

impl Deferred for Outbox {
    fn resolve(&self, acked: Seq, ok: bool) -> Option<Seq> {
        let mut h = self.held.lock();
        if h.state != HeldState::Waiting {
            return None;
        }
        if h.seq > acked {
            if ok {
                // Replies for later records were queued meanwhile.
                return Some(h.seq);
            }
            h.state = HeldState::Failed;
        } else {
            let mut sent = 0;
            while sent < h.buf.len() {
                match self.wr.try_write(&h.buf[sent..]) {
                    Ok(n) if n > 0 => sent += n,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    // Full, or broken: the task writes the rest, or finds the error.
                    _ => break,
                }
            }
            if sent == h.buf.len() {
                if h.buf.capacity() > 16 * READ_CHUNK {
                    // A burst of large replies is not kept for the connection's lifetime.
                    h.buf = BytesMut::new();
                } else {
                    h.buf.clear();
                }
                h.state = HeldState::Empty;
                return None;
            }
            h.buf.advance(sent);
            h.state = HeldState::Stalled;
        }
        drop(h);
        self.attention.store(true, Ordering::Release);
        self.info.pubsub.wake();
        None
    }
}

/// Writes `buf`, giving up if the client is killed or goes over its output buffer limit while
/// the write waits (a subscriber that stops reading would otherwise hold the task forever; a
/// client that stops reading its replies is closed by `limit`: at once if what is pending
/// reaches the hard limit, or once it stayed at or above the soft limit for its seconds).
/// Returns false if the connection must close.
async fn write_out(
    wr: &OwnedWriteHalf,
    mut buf: &[u8],
    info: &ClientInfo,
    limit: OutputBufferLimit,
) -> bool {
    if buf.is_empty() {
        return true;
    }
    let mut woken = false;
    let mut soft = SoftLimit::default();
    let ok = loop {
        // The write usually completes at once; the wake-up is only polled if it waits.
        match wr.try_write(buf) {
            Ok(n) if n == buf.len() => break true,
            Ok(0) => break false,
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let Some(deadline) = soft.check(buf.len(), &limit, info) else {
                    return false;
                };
                tokio::select! {
                    biased;
                    r = wr.writable() => {
                        if r.is_err() {
                            break false;
                        }
                    }
                    _ = info.pubsub.notified() => {
                        if info.killed.load(Ordering::Relaxed) || info.pubsub.is_closing() {
                            return false;
                        }
                        woken = true;
                    }
                    _ = tokio::time::sleep_until(deadline) => {}
                }
            }
            Err(_) => break false,
        }
    };
    if woken {
        // Messages were queued meanwhile: pass the wake-up on to the main loop.
        info.pubsub.wake();
    }
    ok
}

/// The `normal` output buffer limit of one write that waits: since when its pending bytes are
/// at or above the soft limit.
#[derive(Default)]
struct SoftLimit {
    since: Option<tokio::time::Instant>,
}

impl SoftLimit {
    /// With `pending` bytes still to write: `None` if the client must be closed (it is then
    /// marked and logged), otherwise when to look again.
    fn check(
        &mut self,
        pending: usize,
        limit: &OutputBufferLimit,
        info: &ClientInfo,
    ) -> Option<tokio::time::Instant> {
        let pending = pending as u64;
        let now = tokio::time::Instant::now();
        if limit.hard != 0 && pending >= limit.hard {
            output_limited(info);
            return None;
        }
        if limit.soft == 0 || pending < limit.soft {
            self.since = None;
            return Some(now + Duration::from_secs(3600));
        }
        let since = *self.since.get_or_insert(now);
        let deadline = since + Duration::from_secs(limit.soft_seconds);
        // As Redis: over the soft limit for more than soft_seconds.
        if now > deadline {
            output_limited(info);
            return None;
        }
        Some(deadline + Duration::from_millis(1))
    }
}

/// [`write_out`] for a stream the task owns (TLS): writes and flushes `buf`, with the same
/// limits and wake-ups.
async fn write_stream<W: AsyncWrite + Unpin>(
    wr: &mut W,
    buf: &[u8],
    info: &ClientInfo,
    limit: OutputBufferLimit,
) -> bool {
    let mut written = 0;
    let mut woken = false;
    let mut soft = SoftLimit::default();
    let ok = loop {
        let pending = buf.len() - written;
        let Some(deadline) = soft.check(pending, &limit, info) else {
            return false;
        };
        // Once everything is written, the flush pushes out what the TLS layer still buffers.
        let step = async {
            if pending == 0 {
                wr.flush().await.map(|()| 0)
            } else {
                wr.write(&buf[written..]).await
            }
        };
        tokio::select! {
            biased;
            r = step => match r {
                Ok(0) if pending == 0 => break true,
                Ok(0) | Err(_) => break false,
                Ok(n) => written += n,
            },
            _ = info.pubsub.notified() => {
                if info.killed.load(Ordering::Relaxed) || info.pubsub.is_closing() {
                    return false;
                }
                woken = true;
            }
            _ = tokio::time::sleep_until(deadline) => {}
        }
    };
    if woken {
        // Messages were queued meanwhile: pass the wake-up on to the main loop.
        info.pubsub.wake();
    }
    ok
}

/// Marks the client as closed for its output buffer limit, with Redis's log line.
pub(super) fn output_limited(info: &ClientInfo) {
    info.output_limited.store(true, Ordering::Relaxed);
    tracing::warn!(
        client = info.id,
        addr = %info.addr,
        "Client scheduled to be closed ASAP for overcoming of output buffer limits."
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{ManualClock, Nanos};
    use crate::persist::record::Record;
    use crate::persist::{FsyncPolicy, IdleCommit, MemSink};
    use crate::store::Value;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpStream;

    fn put(v: i64) -> Record {
        Record::Put {
            db: 0,
            key: bytes::Bytes::from_static(b"k"),
            value: Value::Int(v),
            expires_at: None,
        }
    }

    /// An outbox on one end of a loopback connection, the other end, and an `always` writer
    /// on an in-memory sink whose commits happen when `IdleCommit::on_park` is called.
    async fn setup() -> (Arc<Outbox>, TcpStream, MemSink, Arc<Writer>, IdleCommit) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (_, wr) = server.into_split();
        let out = Arc::new(Outbox {
            wr,
            info: Arc::new(ClientInfo::new(1, String::new(), String::new())),
            held: Mutex::default(),
            attention: AtomicBool::new(false),
        });
        // The first try_write needs the socket's write readiness, which the runtime learns
        // from its first poll: wait for it.
        out.wr.writable().await.unwrap();
        let sink = MemSink::new();
        let writer = Arc::new(
            Writer::start(
                Box::new(sink.clone()),
                FsyncPolicy::Always,
                Arc::new(ManualClock::new(Nanos(1))),
            )
            .unwrap(),
        );
        // Only the commits a test makes happen (the thread would take a batch after 5 ms).
        writer.set_idle_fallback(Duration::from_secs(3600));
        let idle = IdleCommit::default();
        idle.attach(&writer);
        (out, client, sink, writer, idle)
    }

    async fn read_exactly(client: &mut TcpStream, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        tokio::time::timeout(Duration::from_secs(10), client.read_exact(&mut buf))
            .await
            .expect("the held replies arrive")
            .unwrap();
        buf
    }

    #[tokio::test]
    async fn held_replies_are_written_by_the_commit_in_order_with_those_queued_behind() {
        let (out, mut client, sink, writer, idle) = setup().await;
        let a = writer.append(&put(1));
        let mut wbuf = BytesMut::from(&b":1\r\n"[..]);
        assert!(out.hold(&mut wbuf, Some(a), &writer));
        assert!(wbuf.is_empty());
        // A read's reply queues behind; a later write's reply raises what it waits for.
        let mut read = BytesMut::from(&b"$1\r\n1\r\n"[..]);
        assert!(out.hold(&mut read, None, &writer));
        let b = writer.append(&put(2));
        let mut second = BytesMut::from(&b":2\r\n"[..]);
        assert!(out.hold(&mut second, Some(b), &writer));
        assert_eq!(out.held.lock().state, HeldState::Waiting);
        idle.on_park();
        assert_eq!(sink.state.lock().syncs, 1, "one fsync for both records");
        assert_eq!(
            read_exactly(&mut client, 15).await,
            b":1\r\n$1\r\n1\r\n:2\r\n"
        );
        assert_eq!(out.held.lock().state, HeldState::Empty);
        assert!(!out.attention.load(Ordering::Acquire));
        // Nothing held and no record: the caller writes itself.
        let mut plain = BytesMut::from(&b"+PONG\r\n"[..]);
        assert!(!out.hold(&mut plain, None, &writer));
        assert_eq!(&plain[..], b"+PONG\r\n");
        // Already durable: written at once, on this thread.
        let mut late = BytesMut::from(&b":3\r\n"[..]);
        assert!(out.hold(&mut late, Some(b), &writer));
        assert_eq!(read_exactly(&mut client, 4).await, b":3\r\n");
        assert_eq!(out.held.lock().state, HeldState::Empty);
    }

    #[tokio::test]
    async fn a_failed_fsync_withholds_the_replies_and_closes_the_connection() {
        let (out, _client, sink, writer, idle) = setup().await;
        sink.state.lock().fail_syncs = u32::MAX;
        let a = writer.append(&put(1));
        let mut wbuf = BytesMut::from(&b":1\r\n"[..]);
        assert!(out.hold(&mut wbuf, Some(a), &writer));
        idle.on_park();
        assert_eq!(out.held.lock().state, HeldState::Failed);
        assert!(out.attention.load(Ordering::Acquire));
        let mut waiter = writer.waiter();
        assert!(
            !out.settle(Some(&mut waiter), OutputBufferLimit::default())
                .await
        );
    }

    #[tokio::test]
    async fn settle_takes_held_replies_back_and_writes_them_once_durable() {
        let (out, mut client, _sink, writer, idle) = setup().await;
        let a = writer.append(&put(1));
        let mut wbuf = BytesMut::from(&b"+OK\r\n"[..]);
        assert!(out.hold(&mut wbuf, Some(a), &writer));
        let mut waiter = writer.waiter();
        let settle = out.settle(Some(&mut waiter), OutputBufferLimit::default());
        tokio::pin!(settle);
        // One poll takes the replies back (the writer's entry for them is left to find the
        // outbox empty).
        let first = tokio::time::timeout(Duration::ZERO, settle.as_mut()).await;
        assert_eq!(out.held.lock().state, HeldState::Empty);
        idle.on_park();
        let written = match first {
            Ok(done) => done,
            Err(_) => settle.await,
        };
        assert!(written);
        assert_eq!(read_exactly(&mut client, 5).await, b"+OK\r\n");
        // Later commits resolve the writer's stale entry: nothing is written twice.
        let b = writer.append(&put(2));
        idle.on_park();
        assert_eq!(writer.stats().acked, b);
        let mut more = [0u8; 16];
        assert!(matches!(
            client.try_read(&mut more),
            Err(e) if e.kind() == ErrorKind::WouldBlock
        ));
    }
}
