//! The master's side of replication on a client connection: after `PSYNC`/`SYNC` the
//! connection task answers `+CONTINUE` (streaming from the backlog) or `+FULLRESYNC` with a
//! snapshot, then streams the feed and reads the replica's `REPLCONF ACK`s until either side
//! goes away. Also `WAIT`, which blocks the connection until enough replicas acknowledged.
//! The decisions are `repl`'s; this module only moves bytes.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::watch;

use super::replies::Replies;
use crate::cmd::{ClientInfo, Session, Shared};
use crate::config::OutputBufferLimit;
use crate::persist::Seq;
use crate::protocol::{decode_request, DecodeLimits};
use crate::repl::stream::{encode_control, OP_GETACK, OP_PING};
use crate::repl::{snapshot, Host, PsyncDecision, Replica};

/// Most bytes of the stream sent in one write.
const CHUNK: usize = 256 * 1024;

/// Serves the connection as a replica's link until it closes.
pub(super) async fn serve_replica<R: AsyncRead + Unpin, O: Replies>(
    shared: &Arc<Shared>,
    rd: &mut R,
    out: &mut O,
    session: &mut Session,
    psync: Option<(String, i64)>,
    rbuf: &mut BytesMut,
    stop: &mut watch::Receiver<bool>,
) {
    let info = session.info.clone();
    let ip = session.replconf.ip_address.clone().unwrap_or_else(|| {
        info.addr
            .rsplit_once(':')
            .map_or(info.addr.clone(), |(h, _)| {
                h.trim_matches(|c| c == '[' || c == ']').to_owned()
            })
    });
    let port = session.replconf.listening_port;
    info.is_replica.store(true, Ordering::Relaxed);
    let replica = shared.repl.register(info.id, ip.clone(), port);
    let why = serve(shared, rd, out, &info, &replica, psync, rbuf, stop).await;
    shared.repl.unregister(&replica);
    tracing::info!("Connection with replica {ip}:{port} lost: {why}");
}

#[allow(clippy::too_many_arguments)]
async fn serve<R: AsyncRead + Unpin, O: Replies>(
    shared: &Arc<Shared>,
    rd: &mut R,
    out: &mut O,
    info: &ClientInfo,
    replica: &Replica,
    psync: Option<(String, i64)>,
    rbuf: &mut BytesMut,
    stop: &mut watch::Receiver<bool>,
) -> String {
    let engine = &shared.engine;
    let name = format!("{}:{}", replica.ip, replica.port.load(Ordering::Relaxed));
    let decision = match &psync {
        Some((id, offset)) => shared.repl.decide_psync(engine, id, *offset),
        None => PsyncDecision::Full {
            partial_refused: false,
        },
    };
    let limit = OutputBufferLimit::default();
    let mut wbuf = BytesMut::new();
    let mut pos = match decision {
        PsyncDecision::Continue { replid, from } => {
            shared
                .repl
                .stats
                .sync_partial_ok
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                "Partial resynchronization request from {name} accepted. Sending {} bytes of \
                 backlog starting from offset {}.",
                engine.feed.offset().saturating_sub(from),
                from + 1
            );
            wbuf.extend_from_slice(format!("+CONTINUE {replid}\r\n").as_bytes());
            from
        }
        PsyncDecision::Full { partial_refused } => {
            if partial_refused {
                shared
                    .repl
                    .stats
                    .sync_partial_err
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    "Partial resynchronization not accepted from {name}: unknown history or \
                     offset outside the backlog; full sync"
                );
            }
            if !shared.repl.is_replica() {
                // From here every change is in the stream; the snapshot, taken after, holds
                // everything before (and some after: records are full states, so applying
                // those again is harmless).
                engine.feed.activate();
            }
            let pos = engine.feed.offset();
            let replid = shared.repl.ids().replid;
            let sh = shared.clone();
            let built = tokio::task::spawn_blocking(move || {
                let scripts = sh.script_records();
                snapshot::build(&sh.engine, &scripts, sh.engine.clock.now())
            })
            .await;
            let Ok(snap) = built else {
                return "building the snapshot failed".into();
            };
            shared.repl.stats.sync_full.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                "Starting full sync of replica {name}: {} bytes of snapshot at offset {pos}",
                snap.len()
            );
            if psync.is_some() {
                wbuf.extend_from_slice(format!("+FULLRESYNC {replid} {pos}\r\n").as_bytes());
            }
            wbuf.extend_from_slice(format!("${}\r\n", snap.len()).as_bytes());
            wbuf.extend_from_slice(&snap);
            pos
        }
    };
    if !out.send(&mut wbuf, None, limit).await {
        return "write error".into();
    }
    *replica.ack_at.lock() = Instant::now();
    replica.online.store(true, Ordering::Release);
    tracing::info!("Synchronization with replica {name} succeeded");
    let limits = DecodeLimits::UNAUTHENTICATED;
    // One timer for the whole link (a `sleep` per wake-up would insert and remove a timer
    // for every batch of effects); it only bounds how long a quiet link waits.
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if replica.killed.load(Ordering::Acquire) || info.killed.load(Ordering::Relaxed) {
            return "disconnected (role change or CLIENT KILL)".into();
        }
        let notified = engine.feed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        // Under load the feed grows with every decision: let the workers run the batches
        // already woken before reading, so one write carries many effects (as Redis writes to
        // its replicas once per event-loop turn) instead of one wake-up and one write each.
        tokio::task::yield_now().await;
        // Straight from the backlog into the link's reused buffer (a fresh buffer per read
        // cost the master page faults: run AT in docs/benchmarks.md). The read that finds
        // nothing left asks the feed to wake `notified` on its next append.
        loop {
            match engine.feed.read_into(pos, CHUNK, &mut wbuf) {
                Err(_) => {
                    tracing::warn!(
                        "Replica {name} is more than repl-backlog-size behind; disconnecting it \
                         (it will resync)"
                    );
                    return "fell out of the backlog".into();
                }
                Ok(0) => break,
                Ok(n) => {
                    pos += n as u64;
                    if !out.send(&mut wbuf, None, limit).await {
                        return "write error".into();
                    }
                }
            }
        }
        while let Ok(Some(req)) = decode_request(rbuf, &limits) {
            let is_ack = req.len() >= 3
                && req[0].eq_ignore_ascii_case(b"REPLCONF")
                && req[1].eq_ignore_ascii_case(b"ACK");
            if is_ack {
                if let Some(off) = crate::cmd::args::parse_i64(&req[2]) {
                    // Redis 7.2 replicas add `FACK <offset fsynced to their AOF>`.
                    let fack = (req.len() >= 5 && req[3].eq_ignore_ascii_case(b"FACK"))
                        .then(|| crate::cmd::args::parse_i64(&req[4]))
                        .flatten()
                        .map(|f| u64::try_from(f).unwrap_or(0));
                    shared
                        .repl
                        .ack(replica, u64::try_from(off).unwrap_or(0), fack);
                }
            }
        }
        tokio::select! {
            _ = notified => {}
            r = rd.read_buf(rbuf) => match r {
                Ok(0) => return "closed by the replica".into(),
                Err(e) => return format!("read error: {e}"),
                Ok(_) => {}
            },
            _ = replica.kill.notified() => {}
            _ = info.pubsub.notified() => {}
            _ = async { let _ = stop.wait_for(|s| *s).await; } => return "shutdown".into(),
            _ = tick.tick() => {}
        }
    }
}

/// `WAIT`: asks every replica to acknowledge now, then waits until `numreplicas` acknowledged
/// `offset` or `timeout_ms` passed (0: no limit). `None` if the connection must close first
/// (killed, or the server stops).
pub(super) async fn wait_acks(
    shared: &Shared,
    info: &ClientInfo,
    numreplicas: u64,
    timeout_ms: u64,
    offset: u64,
    stop: &mut watch::Receiver<bool>,
) -> Option<i64> {
    let repl = &shared.repl;
    let wanted = usize::try_from(numreplicas).unwrap_or(usize::MAX);
    if repl.count_acked(offset) < wanted && !repl.replicas.lock().is_empty() {
        shared
            .engine
            .feed
            .append_with(|out| encode_control(OP_GETACK, out));
    }
    let deadline =
        (timeout_ms > 0).then(|| tokio::time::Instant::now() + Duration::from_millis(timeout_ms));
    loop {
        let notified = repl.acks.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let count = repl.count_acked(offset);
        if count >= wanted {
            return Some(count as i64);
        }
        let until = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = notified => {}
            _ = until => return Some(repl.count_acked(offset) as i64),
            _ = info.pubsub.notified() => {
                if info.killed.load(Ordering::Relaxed) {
                    return None;
                }
            }
            _ = async { let _ = stop.wait_for(|s| *s).await; } => return None,
        }
    }
}

/// `WAITAOF`: asks every replica to acknowledge now, then waits until the local AOF has
/// fsynced record `seq` (when `numlocal` is 1) and `numreplicas` replicas reported `offset`
/// fsynced to theirs, or `timeout_ms` passed (0: no limit). Answers `[local, replicas]` as they
/// are then. `None` if the connection must close first.
#[allow(clippy::too_many_arguments)]
pub(super) async fn wait_aof(
    shared: &Shared,
    info: &ClientInfo,
    numlocal: u64,
    numreplicas: u64,
    timeout_ms: u64,
    offset: u64,
    seq: Seq,
    stop: &mut watch::Receiver<bool>,
) -> Option<(i64, i64)> {
    let repl = &shared.repl;
    let wanted = usize::try_from(numreplicas).unwrap_or(usize::MAX);
    let writer = shared.engine.aof.get();
    let local = || i64::from(writer.is_some_and(|w| w.synced() >= seq));
    if repl.count_aof_acked(offset) < wanted && !repl.replicas.lock().is_empty() {
        shared
            .engine
            .feed
            .append_with(|out| encode_control(OP_GETACK, out));
    }
    let deadline =
        (timeout_ms > 0).then(|| tokio::time::Instant::now() + Duration::from_millis(timeout_ms));
    let mut waiter = writer.map(|w| w.waiter());
    loop {
        let notified = repl.acks.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (l, count) = (local(), repl.count_aof_acked(offset));
        if count >= wanted && l >= i64::try_from(numlocal).unwrap_or(i64::MAX) {
            return Some((l, count as i64));
        }
        let until = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        // Only while the local fsync is still missing: a stopped writer never gets there.
        let fsynced = async {
            match waiter.as_mut() {
                Some(w) if numlocal > 0 && l == 0 => {
                    if w.wait_synced(seq).await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = notified => {}
            _ = fsynced => {}
            _ = until => return Some((local(), repl.count_aof_acked(offset) as i64)),
            _ = info.pubsub.notified() => {
                if info.killed.load(Ordering::Relaxed) {
                    return None;
                }
            }
            _ = async { let _ = stop.wait_for(|s| *s).await; } => return None,
        }
    }
}

/// The master's keep-alive: a PING frame in the stream every `repl-ping-replica-period`
/// seconds while replicas are attached (their link times out without traffic).
pub(super) async fn ping_replicas(shared: Arc<Shared>) {
    loop {
        let period = shared
            .engine
            .config
            .read()
            .repl
            .repl_ping_replica_period
            .max(1);
        tokio::time::sleep(Duration::from_secs(u64::from(period))).await;
        if !shared.repl.is_replica() && !shared.repl.replicas.lock().is_empty() {
            shared
                .engine
                .feed
                .append_with(|out| encode_control(OP_PING, out));
        }
    }
}
