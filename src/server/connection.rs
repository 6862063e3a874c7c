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

use crate::cmd::scripting::{busy_gate, BusyGate};
use crate::cmd::{dispatch, ClientInfo, Ctx, Session, Shared};
use crate::metrics::add;
use crate::protocol::{decode_request, encode, DecodeLimits, Request};

const READ_CHUNK: usize = 16 * 1024;

/// Serves `stream` until the client leaves, is killed, breaks the protocol, or the server shuts
/// down.
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
        let timeout = shared.config.read().timeout;
        let read = async {
            if timeout == 0 {
                Some(stream.read_buf(&mut rbuf).await)
            } else {
                tokio::time::timeout(Duration::from_secs(timeout), stream.read_buf(&mut rbuf))
                    .await
                    .ok()
            }
        };
        let n = tokio::select! {
            r = read => r,
            _ = info.kill_notify.notified() => break,
            _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
        };
        let n = match n {
            None => break, // idle timeout
            Some(Ok(0)) | Some(Err(_)) => break,
            Some(Ok(n)) => n,
        };
        add(&shared.metrics.total_net_input_bytes, n as u64);
        let mut pending = None;
        let mut outcome = run_batch(&shared, &mut session, &mut rbuf, &mut wbuf, &mut pending);
        let mut failed = false;
        loop {
            // Under `appendfsync always`, replies go out only once the batch's effects are
            // fsynced, so an acknowledged write survives kill -9 and power loss.
            if let (Some(seq), Some(waiter)) = (session.aof_seq.take(), aof.as_mut()) {
                if let Err(e) = waiter.wait(seq).await {
                    tracing::error!(client = info.id, error = %e, "AOF write failed: closing without replies");
                    failed = true;
                    break;
                }
            }
            if !wbuf.is_empty() {
                if stream.write_all(&wbuf).await.is_err() {
                    failed = true;
                    break;
                }
                add(&shared.metrics.total_net_output_bytes, wbuf.len() as u64);
                wbuf.clear();
            }
            if outcome != Batch::Wait {
                break;
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
        let close = outcome == Batch::Close;
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
    let _ = stream.shutdown().await;
}

/// Waits until another connection's script ends or turns busy (or a short while passes);
/// false if this connection must close instead.
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
        _ = info.kill_notify.notified() => false,
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
