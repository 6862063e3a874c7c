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
//! Plain TCP and TLS connections run the same loop (`run`), generic over the read half and
//! over where replies go (`server::replies`): a plain socket's outbox, which the AOF writer
//! may write to directly under `appendfsync always`, or a TLS stream, which only its task can
//! write (encryption needs the stream's state), so under `always` the task waits for the
//! batch's records to be durable and then writes the replies itself.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpStream;

use super::replication;
use super::replies::{output_limited, Replies, SocketReplies, StreamReplies};
use crate::cmd::scripting::{batch_token, busy_gate, runs_lua, takes_token, BusyGate};
use crate::cmd::{dispatch, Blocked, ClientInfo, Ctx, Session, Shared};
use crate::config::OutputBufferLimit;
use crate::metrics::add;
use crate::persist::Writer;
use crate::protocol::{decode_request, encode, DecodeLimits, Frame, Request};

use super::replies::READ_CHUNK;

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
/// connection's outbox and written by the thread that publishes their commit, while the
/// task goes back to reading; later replies queue behind them.
pub async fn serve(stream: TcpStream, shared: Arc<Shared>, info: Arc<ClientInfo>) {
    let (rd, wr) = stream.into_split();
    let out = SocketReplies::new(wr, info.clone(), always_writer(&shared));
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
    let mut out = StreamReplies::new(wr, info.clone(), always_writer(&shared).as_deref());
    run(rd, &mut out, shared, info).await;
    out.shutdown().await;
}

/// The AOF writer whose commits replies wait for while its policy is `always` (it can change
/// at run time: `CONFIG SET appendfsync`). Under `everysec` and `no` they do not wait (Redis's
/// contract: a crash may lose about a second of acknowledged writes); the writer thread
/// drains the queue continuously.
fn always_writer(shared: &Shared) -> Option<Arc<Writer>> {
    shared.engine.aof.get().cloned()
}

/// The connection loop, shared by plain and TLS connections.
async fn run<R, O>(mut rd: R, mut out: O, shared: Arc<Shared>, info: Arc<ClientInfo>)
where
    R: AsyncRead + Unpin,
    O: Replies,
{
    let mut session = Session::new(info.clone(), &shared.acl);
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
            let c = shared.engine.config.read();
            if session.pubsub_mode {
                (0, c.client_query_buffer_limit, OutputBufferLimit::default())
            } else if info.is_monitor() {
                // A monitor is a replica to Redis: no idle timeout.
                (
                    0,
                    c.client_query_buffer_limit,
                    c.client_output_buffer_limit.normal,
                )
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
                    false,
                );
                let mut failed = false;
                loop {
                    outcome = match outcome {
                        Batch::Lua => {
                            // The rest of the batch runs on a blocking-pool thread: a script
                            // (or a wait for the script token) never holds a worker, which
                            // stays free to answer BUSY and serve SCRIPT KILL to others.
                            let job = shared.clone();
                            let hard = out_limit.hard;
                            let ran = tokio::task::spawn_blocking(move || {
                                let outcome = run_batch(
                                    &job,
                                    &mut session,
                                    &mut rbuf,
                                    &mut wbuf,
                                    &mut pending,
                                    hard,
                                    true,
                                );
                                (session, rbuf, wbuf, pending, outcome)
                            })
                            .await;
                            match ran {
                                Ok(back) => {
                                    (session, rbuf, wbuf, pending) =
                                        (back.0, back.1, back.2, back.3);
                                    back.4
                                }
                                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                                // The runtime is shutting down.
                                Err(_) => return,
                            }
                        }
                        Batch::Wait | Batch::Blocked | Batch::Task | Batch::Paused => {
                            // The replies so far go out (or are held for the AOF) first; then
                            // the connection waits for another connection's script (`Wait`),
                            // for its blocking command's reply (`Blocked`, see
                            // `cmd::blocking`), or finishes what a command left the task
                            // (`Task`: `WAIT`, `PSYNC`); then the batch goes on.
                            if !send_all(&shared, &mut session, &mut out, &mut wbuf, out_limit)
                                .await
                            {
                                failed = true;
                                break;
                            }
                            let resumed = match outcome {
                                Batch::Wait => wait_for_script(&shared, &info, &mut stop).await,
                                Batch::Paused => {
                                    wait_unpaused(&shared, &session, pending.as_ref(), &mut stop)
                                        .await
                                }
                                Batch::Blocked => {
                                    let waited = wait_blocked(
                                        &shared,
                                        &info,
                                        &mut session,
                                        &mut rd,
                                        &mut rbuf,
                                        &mut stop,
                                        qbuf_limit,
                                    )
                                    .await;
                                    waited
                                        .map(|(frame, seq)| {
                                            session.aof_seq = session.aof_seq.max(seq);
                                            if session.reply_mode.take() {
                                                encode(&frame, session.resp, &mut wbuf);
                                            }
                                        })
                                        .is_some()
                                }
                                _ => match session.blocked.take() {
                                    Some(Blocked::Wait {
                                        numreplicas,
                                        timeout_ms,
                                        offset,
                                    }) => replication::wait_acks(
                                        &shared,
                                        &info,
                                        numreplicas,
                                        timeout_ms,
                                        offset,
                                        &mut stop,
                                    )
                                    .await
                                    .map(|n| {
                                        if session.reply_mode.take() {
                                            encode(&Frame::Integer(n), session.resp, &mut wbuf);
                                        }
                                    })
                                    .is_some(),
                                    Some(Blocked::WaitAof {
                                        numlocal,
                                        numreplicas,
                                        timeout_ms,
                                        offset,
                                        seq,
                                    }) => replication::wait_aof(
                                        &shared,
                                        &info,
                                        numlocal,
                                        numreplicas,
                                        timeout_ms,
                                        offset,
                                        seq,
                                        &mut stop,
                                    )
                                    .await
                                    .map(|(local, replicas)| {
                                        if session.reply_mode.take() {
                                            let reply = Frame::Array(vec![
                                                Frame::Integer(local),
                                                Frame::Integer(replicas),
                                            ]);
                                            encode(&reply, session.resp, &mut wbuf);
                                        }
                                    })
                                    .is_some(),
                                    Some(Blocked::Sync { psync }) => {
                                        // The connection is the replica's link from now on,
                                        // until it closes.
                                        replication::serve_replica(
                                            &shared,
                                            &mut rd,
                                            &mut out,
                                            &mut session,
                                            psync,
                                            &mut rbuf,
                                            &mut stop,
                                        )
                                        .await;
                                        false
                                    }
                                    None => true,
                                },
                            };
                            if !resumed {
                                failed = true;
                                break;
                            }
                            run_batch(
                                &shared,
                                &mut session,
                                &mut rbuf,
                                &mut wbuf,
                                &mut pending,
                                out_limit.hard,
                                false,
                            )
                        }
                        _ => break,
                    };
                }
                if failed || outcome == Batch::Abort {
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
        // A script is starting (the command gate is closed for an instant) or just ended.
        tokio::task::yield_now().await;
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

/// Longest a paused request sleeps before it reads the server clock again (the pause's end is
/// an instant of that clock, which tests move by hand).
const PAUSE_TICK: Duration = Duration::from_millis(50);

/// Waits until `req` may run: the `CLIENT PAUSE` that delays it ended or was lifted. False if
/// the connection must close instead (killed, or the server stops).
async fn wait_unpaused(
    shared: &Shared,
    session: &Session,
    req: Option<&crate::protocol::Request>,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> bool {
    let Some(req) = req else { return true };
    let info = &session.info;
    loop {
        let changed = shared.pause.changed();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let now = shared.engine.clock.now();
        if !shared.pause.blocks(session, req, now) {
            return true;
        }
        let left = shared.pause.end_at(now).map_or(Duration::ZERO, |end| {
            Duration::from_nanos(end.saturating_sub(now).as_nanos())
        });
        tokio::select! {
            _ = changed => {}
            _ = tokio::time::sleep(left.min(PAUSE_TICK)) => {}
            _ = info.pubsub.notified() => {
                if info.killed.load(Ordering::Relaxed) || info.pubsub.is_closing() {
                    return false;
                }
            }
            _ = async { let _ = stop.wait_for(|s| *s).await; } => return false,
        }
    }
}

/// Waits, without a thread, until the client blocked by the command that left its block in
/// `session` gets its reply: served by another client's write, its timeout, or `CLIENT
/// UNBLOCK`. Bytes the client sends meanwhile are kept for after the reply, as Redis keeps a
/// blocked client's pipeline. `None` if the connection must close instead (it closed, was
/// killed, went over the query buffer limit, or the server stops).
async fn wait_blocked<R: AsyncRead + Unpin>(
    shared: &Shared,
    info: &ClientInfo,
    session: &mut Session,
    rd: &mut R,
    rbuf: &mut BytesMut,
    stop: &mut tokio::sync::watch::Receiver<bool>,
    qbuf_limit: u64,
) -> Option<(crate::protocol::Frame, Option<crate::persist::Seq>)> {
    let block = session
        .block
        .take()
        .expect("invariant: Batch::Blocked is returned with the session's block set");
    let timeout_ms = block.timeout_ms;
    let mut served = shared.blocked.register(session, block);
    // A push may have come between the command's attempt and the registration.
    if let Some(_gate) = shared.scripts.run_state().command_gate() {
        crate::cmd::blocking::serve(shared, shared.engine.clock.now());
    }
    let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout_ms);
    let forget = |why| {
        shared.blocked.forget(info.id);
        why
    };
    loop {
        if rbuf.capacity() - rbuf.len() < READ_CHUNK / 4 {
            rbuf.reserve(READ_CHUNK.max(rbuf.len()));
        }
        tokio::select! {
            r = &mut served => return r.ok(),
            _ = tokio::time::sleep_until(deadline), if timeout_ms > 0 => {
                // Unless it was served meanwhile, the client gets its timeout reply.
                shared.blocked.unblock(info.id, |b| b.timeout_reply());
                return served.await.ok();
            }
            r = rd.read_buf(rbuf) => match r {
                Ok(n) if n > 0 => {
                    add(&shared.metrics.total_net_input_bytes, n as u64);
                    if rbuf.len() as u64 > qbuf_limit {
                        return forget(None);
                    }
                }
                _ => return forget(None),
            },
            _ = info.pubsub.notified() => {
                if info.killed.load(Ordering::Relaxed) || info.pubsub.is_closing() {
                    return forget(None);
                }
            }
            _ = async { let _ = stop.wait_for(|s| *s).await; } => return forget(None),
        }
    }
}

/// `EVALSHA` or `EVALSHA_RO`.
fn is_evalsha(req: &[bytes::Bytes]) -> bool {
    req[0].eq_ignore_ascii_case(b"EVALSHA") || req[0].eq_ignore_ascii_case(b"EVALSHA_RO")
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
    /// A command left work for the task in `session.blocked` (`WAIT`, `PSYNC`).
    Task,
    /// A request in `pending` runs Lua or takes the script token: the batch goes on on a
    /// blocking-pool thread.
    Lua,
    /// A blocking command found nothing: the client waits (its reply is not written yet).
    Blocked,
    /// The request in `pending` waits for the end of a `CLIENT PAUSE`.
    Paused,
    /// The replies reached the `normal` class's hard output buffer limit: close without them.
    OverLimit,
    /// An HTTP request reached the port: close at once, writing nothing more (not even the
    /// replies of this batch, as Redis drops a client closed this way before writing).
    Abort,
}

/// Logs Redis's warning for an HTTP request on the RESP port, at most once a minute (as
/// Redis does, so a flood of such requests cannot flood the log).
fn warn_http_request(session: &Session) {
    static LOGGED_AT_SECS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let last = LOGGED_AT_SECS.load(Ordering::Relaxed);
    if (last == 0 || now.abs_diff(last) > 60)
        && LOGGED_AT_SECS
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!(
            client = session.info.id,
            addr = %session.info.addr,
            "Possible SECURITY ATTACK detected. It looks like somebody is sending POST or Host: \
             commands to Redis. This is likely due to an attacker attempting to use Cross \
             Protocol Scripting to compromise your Redis instance. Connection aborted."
        );
    }
}

/// Runs `pending` and then every complete request in `rbuf`, appending replies to `wbuf`.
/// On a worker thread (`on_script_thread` false) it stops at the first request that runs Lua
/// (see `cmd::scripting::runs_lua`), which the caller then runs with the rest of the batch on
/// a blocking-pool thread.
///
/// A request that does not run Lua runs under the command gate (see
/// `script::RunState::command_gate`), and waits without running while another connection's
/// script runs: it could otherwise block this thread on the script's shard locks.
#[allow(clippy::too_many_arguments)]
fn run_batch(
    shared: &Shared,
    session: &mut Session,
    rbuf: &mut BytesMut,
    wbuf: &mut BytesMut,
    pending: &mut Option<Request>,
    out_hard: u64,
    on_script_thread: bool,
) -> Batch {
    let mut ran = false;
    // Read once per batch: the config lock is shared by every connection.
    let configured = shared.engine.config.read().decode_limits();
    // One clock read per batch: the requests of one read arrived together, and a clock read
    // per command cost several percent of a pipelined GET. Time never goes backwards within
    // a batch, so limiters see the same order of events.
    let now = shared.engine.clock.now();
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
                if crate::cmd::is_http_request(&req) {
                    warn_http_request(session);
                    return Batch::Abort;
                }
                // CLIENT PAUSE: the request waits (one atomic load when no pause is set).
                if shared.pause.is_set() && shared.pause.blocks(session, &req, now) {
                    *pending = Some(req);
                    return Batch::Paused;
                }
                let lua = runs_lua(session, &req);
                if lua && !on_script_thread {
                    *pending = Some(req);
                    return Batch::Lua;
                }
                let run = shared.scripts.run_state();
                // On the script thread, EVALSHA of a recognised script may fall back to its
                // Lua body, which must not run under the gate (a script closes it): no gate.
                let ungated = lua || (on_script_thread && is_evalsha(&req));
                let gate = if ungated { None } else { run.command_gate() };
                if (ungated && run.is_running()) || (!ungated && gate.is_none()) {
                    match busy_gate(shared, session, &req) {
                        // A script runner queues for the token (on this script thread);
                        // others here touch no key (allow_busy, unknown, wrong arity).
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
                session.lua_inline = on_script_thread;
                let reply = dispatch(&mut Ctx::new(shared, &mut *session, now), &req);
                drop(gate);
                if std::mem::take(&mut session.lua_bounce) {
                    // A recognised script's fast path left it to Lua: run it on the script
                    // thread (it changed nothing).
                    *pending = Some(req);
                    return Batch::Lua;
                }
                if session.block.is_some() {
                    return Batch::Blocked;
                }
                // Limiter events the command emitted go to the `events-stream` key first, so
                // clients blocked reading it are served below.
                if shared.engine.stream_events.is_pending() {
                    if let Some(_gate) = shared.scripts.run_state().command_gate() {
                        crate::cmd::event_stream::flush(shared, now);
                    }
                }
                // Clients blocked on keys this command made ready are served before the next
                // command (skipped while a script runs: its own connection serves after it).
                if !shared.blocked.is_empty() {
                    if let Some(_gate) = shared.scripts.run_state().command_gate() {
                        crate::cmd::blocking::serve(shared, now);
                    }
                }
                if session.close_without_reply {
                    return Batch::Close;
                }
                if session.blocked.is_some() {
                    return Batch::Task;
                }
                // Pub/Sub confirmations are written even under `CLIENT REPLY OFF|SKIP`, as
                // Redis 7.0 writes every Pub/Sub push (its `CLIENT_PUSHING`).
                if session.reply_mode.take() || is_pubsub_push(&reply) {
                    encode(&reply, session.resp, wbuf);
                }
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

/// A (un)subscribe confirmation (a push, or several written back to back).
fn is_pubsub_push(reply: &Frame) -> bool {
    match reply {
        Frame::Push(_) => true,
        Frame::Seq(frames) => !frames.is_empty() && frames.iter().all(is_pubsub_push),
        _ => false,
    }
}
