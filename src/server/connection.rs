//! One client connection: read, decode every complete request in the buffer, run each through
//! the dispatcher, encode all replies into one buffer, write once. That gives pipelining for
//! free and one syscall per batch.
//!
//! A protocol error is answered once and the connection closed; nothing a client sends can
//! affect another connection. The read buffer grows with what arrives, never with what a
//! header claims.
//!
//! While another connection's Lua script runs (one atomic load per request), a request is
//! not dispatched (it would block this worker thread on the script's shard locks): the batch
//! stops, the replies so far are written, and the task awaits the script's end (or its busy
//! threshold, after which requests get `BUSY` unless flagged `allow_busy`).
//!
//! Plain TCP and TLS connections run the same loop ([`run`]), generic over the read half and
//! over where replies go ([`Replies`]): a plain socket's [`Outbox`], which the AOF writer may
//! write to directly under `appendfsync always`, or a TLS stream, which only its task can
//! write (encryption needs the stream's state), so under `always` the task waits for the
//! batch's records to be durable and then writes the replies itself.

use std::io::ErrorKind;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;

use crate::cmd::scripting::{batch_token, busy_gate, takes_token, BusyGate};
use crate::cmd::{dispatch, ClientInfo, Ctx, Session, Shared};
use crate::config::OutputBufferLimit;
use crate::metrics::add;
use crate::persist::{Deferred, DurableWaiter, FsyncPolicy, Seq, Writer};
use crate::protocol::{decode_request, encode, DecodeLimits, Request};

const READ_CHUNK: usize = 16 * 1024;

/// What woke the connection task.
enum Event {
    /// Bytes read (`None`: the idle timeout fired).
    Read(Option<std::io::Result<usize>>),
    /// Pub/Sub messages queued, or killed, or over the output buffer limit, or held replies
    /// need the task.
    Woken,
}

/// Serves a plain TCP connection until the client leaves, is killed, breaks the protocol,
/// goes over its output buffer limit, or the server shuts down.
///
/// Pub/Sub messages reach the connection through `info.pubsub`'s queue. They are encoded into
/// the output buffer before every command (so a message published before a command ran is
/// written before its reply) and after every batch, and written with the replies. The task
/// wakes for queued messages on the same `Notify` as for `CLIENT KILL`, so a connection that
/// never subscribed waits on nothing more than before.
///
/// Under `appendfsync always`, replies that depend on AOF records are handed to the
/// connection's [`Outbox`] and written by the thread that publishes their commit, while the
/// task goes back to reading; later replies queue behind them.
pub async fn serve(stream: TcpStream, shared: Arc<Shared>, info: Arc<ClientInfo>) {
    let (rd, wr) = stream.into_split();
    let writer = always_writer(&shared);
    let out = SocketReplies {
        outbox: Arc::new(Outbox {
            wr,
            info: info.clone(),
            held: Mutex::default(),
            attention: AtomicBool::new(false),
        }),
        waiter: writer.as_ref().map(|w| w.waiter()),
        writer,
    };
    run(rd, out, shared, info).await;
    // The write half shuts down when dropped, here or (if replies are still held for the
    // AOF) once the writer has resolved them.
}

/// Serves a TLS connection (handshake done) exactly as [`serve`] serves a plain one, except
/// that under `appendfsync always` the task itself writes a batch's replies once its records
/// are durable.
pub async fn serve_tls(
    stream: tokio_rustls::server::TlsStream<TcpStream>,
    shared: Arc<Shared>,
    info: Arc<ClientInfo>,
) {
    let (rd, wr) = tokio::io::split(stream);
    let waiter = always_writer(&shared).map(|w| w.waiter());
    let mut out = StreamReplies {
        wr,
        info: info.clone(),
        waiter,
    };
    run(rd, &mut out, shared, info).await;
    // Sends TLS's close_notify; bounded, as the client may not be reading.
    let _ = tokio::time::timeout(Duration::from_secs(1), out.wr.shutdown()).await;
}

/// The AOF writer whose commits replies must wait for: only under `appendfsync always`.
/// Under `everysec` and `no` they do not wait (Redis's contract: a crash may lose about a
/// second of acknowledged writes); the writer thread drains the queue continuously.
fn always_writer(shared: &Shared) -> Option<Arc<Writer>> {
    shared
        .aof
        .get()
        .filter(|_| shared.config.read().appendfsync == FsyncPolicy::Always)
        .cloned()
}

/// The connection loop, shared by plain and TLS connections.
async fn run<R, O>(mut rd: R, mut out: O, shared: Arc<Shared>, info: Arc<ClientInfo>)
where
    R: AsyncRead + Unpin,
    O: Replies,
{
    let requirepass = shared.config.read().requirepass.is_some();
    let mut session = Session::new(info.clone(), requirepass);
    let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
    let mut wbuf = BytesMut::with_capacity(READ_CHUNK);
    let mut stop = shared.shutdown.subscribe();
    loop {
        if rbuf.capacity() - rbuf.len() < READ_CHUNK / 4 {
            rbuf.reserve(READ_CHUNK.max(rbuf.len()));
        }
        // Like Redis, the idle timeout does not apply to subscribed clients, and the `normal`
        // output buffer limit not to their replies (their messages have the `pubsub` class's).
        let (timeout, qbuf_limit, out_limit) = {
            let c = shared.config.read();
            if session.pubsub_mode {
                (0, c.client_query_buffer_limit, OutputBufferLimit::default())
            } else {
                (
                    c.timeout,
                    c.client_query_buffer_limit,
                    c.client_output_buffer_limit.normal,
                )
            }
        };
        let read = async {
            if timeout == 0 {
                Some(rd.read_buf(&mut rbuf).await)
            } else {
                tokio::time::timeout(Duration::from_secs(timeout), rd.read_buf(&mut rbuf))
                    .await
                    .ok()
            }
        };
        // When both are ready, select! picks at random: a flood of messages cannot starve
        // the client's own commands (an UNSUBSCRIBE, say), nor the reverse.
        let event = tokio::select! {
            r = read => Event::Read(r),
            _ = info.pubsub.notified() => Event::Woken,
            _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
        };
        let mut close = false;
        match event {
            Event::Read(None) => break, // idle timeout
            Event::Read(Some(Ok(0))) => {
                // The client closed its side (`nc` after a pipeline, say): replies still held
                // for the AOF go out before the connection closes, as they did when they
                // were written before the next read.
                let _ = out.settle(out_limit).await;
                break;
            }
            Event::Read(Some(Err(_))) => break,
            Event::Read(Some(Ok(n))) => {
                add(&shared.metrics.total_net_input_bytes, n as u64);
                // The unparsed input (an unfinished request) is bounded: a client sending a
                // huge bulk header and then bytes, slowly or not, is cut at the limit.
                if rbuf.len() as u64 > qbuf_limit {
                    let head = String::from_utf8_lossy(&rbuf[..rbuf.len().min(64)]).into_owned();
                    tracing::warn!(
                        client = info.id,
                        addr = %info.addr,
                        qbuf = rbuf.len(),
                        initial_bytes = ?head,
                        "Closing client that reached max query buffer length"
                    );
                    break;
                }
                let mut pending = None;
                let mut outcome = run_batch(
                    &shared,
                    &mut session,
                    &mut rbuf,
                    &mut wbuf,
                    &mut pending,
                    out_limit.hard,
                );
                let mut failed = false;
                while outcome == Batch::Wait {
                    // The replies so far go out (or are held for the AOF) while this
                    // connection waits for another connection's script.
                    if !send_all(&shared, &mut session, &mut out, &mut wbuf, out_limit).await
                        || !wait_for_script(&shared, &info, &mut stop).await
                    {
                        failed = true;
                        break;
                    }
                    outcome = run_batch(
                        &shared,
                        &mut session,
                        &mut rbuf,
                        &mut wbuf,
                        &mut pending,
                        out_limit.hard,
                    );
                }
                if failed {
                    break;
                }
                if outcome == Batch::OverLimit {
                    // Closed at once: nothing more is written, and the replies go.
                    output_limited(&info);
                    break;
                }
                close = outcome == Batch::Close;
            }
            Event::Woken => {
                if info.killed.load(Ordering::Relaxed) {
                    break;
                }
            }
        }
        // Over the output buffer limit: closed at once, nothing more is written.
        if info.pubsub.is_closing() {
            break;
        }
        if !send_all(&shared, &mut session, &mut out, &mut wbuf, out_limit).await {
            break;
        }
        // Long-lived buffers shrink back after a burst of large requests.
        if rbuf.is_empty() && rbuf.capacity() > 16 * READ_CHUNK {
            rbuf = BytesMut::with_capacity(READ_CHUNK);
        }
        if wbuf.capacity() > 16 * READ_CHUNK {
            wbuf = BytesMut::with_capacity(READ_CHUNK);
        }
        shared.metrics.flush(&mut session.stats);
        if info.killed.load(Ordering::Relaxed) {
            break;
        }
        // Held replies that the socket did not take, or a failed AOF; and before closing
        // after a reply (QUIT), the replies still held.
        if (close || out.needs_attention()) && !out.settle(out_limit).await {
            break;
        }
        if close {
            break;
        }
    }
    shared.metrics.flush(&mut session.stats);
    if info.output_limited.load(Ordering::Relaxed) {
        add(&shared.metrics.output_limit_disconnections, 1);
    }
    crate::cmd::multi::unwatch_all(&shared, &mut session);
}

/// Marks the client as closed for its output buffer limit, with Redis's log line.
fn output_limited(info: &ClientInfo) {
    info.output_limited.store(true, Ordering::Relaxed);
    tracing::warn!(
        client = info.id,
        addr = %info.addr,
        "Client scheduled to be closed ASAP for overcoming of output buffer limits."
    );
}

/// Moves queued Pub/Sub messages into `wbuf` and sends it through `out`, holding it for the
/// batch's AOF records if there are any. False if the connection must close.
async fn send_all<O: Replies>(
    shared: &Shared,
    session: &mut Session,
    out: &mut O,
    wbuf: &mut BytesMut,
    limit: OutputBufferLimit,
) -> bool {
    if session.pubsub_used {
        session.info.pubsub.drain_into(session.resp, wbuf);
    }
    let had = !wbuf.is_empty();
    let len = wbuf.len() as u64;
    if !out.send(wbuf, session.aof_seq.take(), limit).await {
        return false;
    }
    add(&shared.metrics.total_net_output_bytes, len);
    if had && session.pubsub_used {
        session.info.pubsub.written();
    }
    true
}

/// Where a connection's replies go.
trait Replies {
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
struct SocketReplies {
    outbox: Arc<Outbox>,
    writer: Option<Arc<Writer>>,
    waiter: Option<DurableWaiter>,
}

impl Replies for SocketReplies {
    async fn send(
        &mut self,
        wbuf: &mut BytesMut,
        seq: Option<Seq>,
        limit: OutputBufferLimit,
    ) -> bool {
        let out = &self.outbox;
        let held = self
            .writer
            .as_deref()
            .is_some_and(|w| out.hold(wbuf, seq, w));
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
struct StreamReplies<W> {
    wr: W,
    info: Arc<ClientInfo>,
    /// Under `always`: waits for the batch's records to be durable before its replies go out.
    waiter: Option<DurableWaiter>,
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
        if let (Some(seq), Some(waiter)) = (seq, self.waiter.as_mut()) {
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
struct Outbox {
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

/// Waits until another connection's script ends or turns busy (or a short while passes);
/// false if this connection must close instead (killed, over its output buffer limit, or the
/// server stops).
async fn wait_for_script(
    shared: &Shared,
    info: &ClientInfo,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> bool {
    let run = shared.scripts.run_state();
    let notified = run.notify.notified();
    tokio::pin!(notified);
    notified.as_mut().enable();
    if !run.is_running() || run.is_timed_out() {
        return true;
    }
    tokio::select! {
        _ = notified => true,
        // Bounded: the state is re-checked even if a wake-up was missed.
        _ = tokio::time::sleep(Duration::from_millis(20)) => true,
        // Killed, over the output limit, or Pub/Sub messages queued: the caller drains the
        // queue before it waits again, and once more after the batch.
        _ = info.pubsub.notified() => {
            !info.killed.load(Ordering::Relaxed) && !info.pubsub.is_closing()
        }
        _ = async { let _ = stop.wait_for(|s| *s).await; } => false,
    }
}

/// How a batch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Batch {
    /// Every complete request ran.
    Done,
    /// The connection must close after the replies are written.
    Close,
    /// A request waits in `pending` for another connection's script.
    Wait,
    /// The replies reached the `normal` class's hard output buffer limit: close without them.
    OverLimit,
}

/// Runs `pending` and then every complete request in `rbuf`, appending replies to `wbuf`.
fn run_batch(
    shared: &Shared,
    session: &mut Session,
    rbuf: &mut BytesMut,
    wbuf: &mut BytesMut,
    pending: &mut Option<Request>,
    out_hard: u64,
) -> Batch {
    let mut ran = false;
    // Read once per batch: the config lock is shared by every connection.
    let configured = shared.config.read().decode_limits();
    // One clock read per batch: the requests of one read arrived together, and a clock read
    // per command cost several percent of a pipelined GET. Time never goes backwards within
    // a batch, so limiters see the same order of events.
    let now = shared.clock.now();
    // The script token, once a request of this batch needed it: a pipeline of scripts takes
    // it once (with 2 workers, taking it per script spent a third of the time handing it over).
    let mut token = None;
    loop {
        let limits = if session.authenticated {
            configured
        } else {
            DecodeLimits::UNAUTHENTICATED
        };
        let next = match pending.take() {
            Some(req) => Ok(Some(req)),
            None => decode_request(rbuf, &limits),
        };
        match next {
            Ok(Some(req)) => {
                ran = true;
                if shared.scripts.run_state().is_running() {
                    match busy_gate(shared, session, &req) {
                        BusyGate::Run => {}
                        BusyGate::Wait => {
                            *pending = Some(req);
                            return Batch::Wait;
                        }
                        BusyGate::Reply(frame) => {
                            encode(&frame, session.resp, wbuf);
                            continue;
                        }
                    }
                }
                // Messages queued before this command go out before its reply.
                if session.pubsub_used {
                    session.info.pubsub.drain_into(session.resp, wbuf);
                }
                if token.is_none() && takes_token(&req) {
                    token = batch_token(shared);
                }
                let reply = dispatch(&mut Ctx::new(shared, &mut *session, now), &req);
                if session.close_without_reply {
                    return Batch::Close;
                }
                encode(&reply, session.resp, wbuf);
                if session.close_after_reply {
                    return Batch::Close;
                }
                // A pipeline of big replies to a client that does not read them would grow
                // without bound before the batch's one write.
                if out_hard != 0 && wbuf.len() as u64 >= out_hard {
                    return Batch::OverLimit;
                }
            }
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(client = session.info.id, error = %e, "protocol error");
                session.stats.errors += 1;
                encode(&e.to_frame(), session.resp, wbuf);
                return Batch::Close;
            }
        }
    }
    if ran {
        session.info.last_interaction_ms.store(
            u64::try_from(session.info.created.elapsed().as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
    Batch::Done
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{ManualClock, Nanos};
    use crate::persist::record::Record;
    use crate::persist::{IdleCommit, MemSink};
    use crate::store::Value;
    use tokio::io::AsyncReadExt;

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
