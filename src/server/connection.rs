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

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::cmd::scripting::{batch_token, busy_gate, takes_token, BusyGate};
use crate::cmd::{dispatch, ClientInfo, Ctx, Session, Shared};
use crate::metrics::add;
use crate::protocol::{decode_request, encode, DecodeLimits, Request};

const READ_CHUNK: usize = 16 * 1024;

/// What woke the connection task.
enum Event {
    /// Bytes read (`None`: the idle timeout fired).
    Read(Option<std::io::Result<usize>>),
    /// Pub/Sub messages queued, or killed, or over the output buffer limit.
    Woken,
}

/// Serves `stream` until the client leaves, is killed, breaks the protocol, goes over its
/// output buffer limit, or the server shuts down.
///
/// Pub/Sub messages reach the connection through `info.pubsub`'s queue. They are encoded into
/// the output buffer before every command (so a message published before a command ran is
/// written before its reply) and after every batch, and written with the replies. The task
/// wakes for queued messages on the same `Notify` as for `CLIENT KILL`, so a connection that
/// never subscribed waits on nothing more than before.
pub async fn serve(mut stream: TcpStream, shared: Arc<Shared>, info: Arc<ClientInfo>) {
    let requirepass = shared.config.read().requirepass.is_some();
    let mut session = Session::new(info.clone(), requirepass);
    let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
    let mut wbuf = BytesMut::with_capacity(READ_CHUNK);
    let mut stop = shared.shutdown.subscribe();
    // Under `appendfsync always` replies wait until the batch's records are fsynced. Under
    // `everysec` and `no` they do not wait (Redis's contract: a crash may lose about a second
    // of acknowledged writes); the writer thread drains the queue continuously.
    let mut aof = shared
        .aof
        .get()
        .filter(|_| shared.config.read().appendfsync == crate::persist::FsyncPolicy::Always)
        .map(|w| w.waiter());
    loop {
        if rbuf.capacity() - rbuf.len() < READ_CHUNK / 4 {
            rbuf.reserve(READ_CHUNK.max(rbuf.len()));
        }
        // Like Redis, the idle timeout does not apply to subscribed clients.
        let timeout = if session.pubsub_mode {
            0
        } else {
            shared.config.read().timeout
        };
        let read = async {
            if timeout == 0 {
                Some(stream.read_buf(&mut rbuf).await)
            } else {
                tokio::time::timeout(Duration::from_secs(timeout), stream.read_buf(&mut rbuf))
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
            Event::Read(Some(Ok(0))) | Event::Read(Some(Err(_))) => break,
            Event::Read(Some(Ok(n))) => {
                add(&shared.metrics.total_net_input_bytes, n as u64);
                let mut pending = None;
                let mut outcome =
                    run_batch(&shared, &mut session, &mut rbuf, &mut wbuf, &mut pending);
                let mut failed = false;
                loop {
                    // Under `appendfsync always`, replies go out only once the batch's effects
                    // are fsynced, so an acknowledged write survives kill -9 and power loss.
                    if let (Some(seq), Some(waiter)) = (session.aof_seq.take(), aof.as_mut()) {
                        if let Err(e) = waiter.wait(seq).await {
                            tracing::error!(client = info.id, error = %e, "AOF write failed: closing without replies");
                            failed = true;
                            break;
                        }
                    }
                    if outcome != Batch::Wait {
                        break;
                    }
                    // The replies so far go out while this connection waits for another
                    // connection's script.
                    if session.pubsub_used {
                        info.pubsub.drain_into(session.resp, &mut wbuf);
                    }
                    if !wbuf.is_empty() {
                        if !write_out(&mut stream, &wbuf, &info).await {
                            failed = true;
                            break;
                        }
                        add(&shared.metrics.total_net_output_bytes, wbuf.len() as u64);
                        wbuf.clear();
                        if session.pubsub_used {
                            info.pubsub.written();
                        }
                    }
                    if !wait_for_script(&shared, &info, &mut stop).await {
                        failed = true;
                        break;
                    }
                    outcome = run_batch(&shared, &mut session, &mut rbuf, &mut wbuf, &mut pending);
                }
                if failed {
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
        if session.pubsub_used {
            info.pubsub.drain_into(session.resp, &mut wbuf);
        }
        if !wbuf.is_empty() {
            if !write_out(&mut stream, &wbuf, &info).await {
                break;
            }
            add(&shared.metrics.total_net_output_bytes, wbuf.len() as u64);
            wbuf.clear();
            if session.pubsub_used {
                info.pubsub.written();
            }
        }
        // Long-lived buffers shrink back after a burst of large requests.
        if rbuf.is_empty() && rbuf.capacity() > 16 * READ_CHUNK {
            rbuf = BytesMut::with_capacity(READ_CHUNK);
        }
        if wbuf.capacity() > 16 * READ_CHUNK {
            wbuf = BytesMut::with_capacity(READ_CHUNK);
        }
        shared.metrics.flush(&mut session.stats);
        if close || info.killed.load(Ordering::Relaxed) {
            break;
        }
    }
    shared.metrics.flush(&mut session.stats);
    crate::cmd::multi::unwatch_all(&shared, &mut session);
    let _ = stream.shutdown().await;
}

/// Writes `buf`, giving up if the client is killed or goes over its output buffer limit while
/// the write waits (a subscriber that stops reading would otherwise hold the task forever).
/// Returns false if the connection must close.
async fn write_out(stream: &mut TcpStream, buf: &[u8], info: &ClientInfo) -> bool {
    let write = stream.write_all(buf);
    tokio::pin!(write);
    let mut woken = false;
    loop {
        tokio::select! {
            // The write usually completes at once; the wake-up is only polled if it waits.
            biased;
            r = &mut write => {
                if woken {
                    // Messages were queued meanwhile: pass the wake-up on to the main loop.
                    info.pubsub.wake();
                }
                return r.is_ok();
            }
            _ = info.pubsub.notified() => {
                if info.killed.load(Ordering::Relaxed) || info.pubsub.is_closing() {
                    return false;
                }
                woken = true;
            }
        }
    }
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
}

/// Runs `pending` and then every complete request in `rbuf`, appending replies to `wbuf`.
fn run_batch(
    shared: &Shared,
    session: &mut Session,
    rbuf: &mut BytesMut,
    wbuf: &mut BytesMut,
    pending: &mut Option<Request>,
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
