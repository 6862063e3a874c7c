//! All networking: binding, the accept loop with its connection cap, the background tick
//! (active expiry, stats sampling), TLS handshakes and graceful shutdown. Connections are
//! served by [`connection`] (replies written by `replies`); commands never see a socket.

pub mod connection;
mod replication;
mod replies;
pub mod shutdown;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::clock::Clock;
use crate::cmd::{ClientInfo, Shared};
use crate::config::Config;
use crate::error::RefusedConnection;
use crate::metrics::add;
use crate::persist;

/// How long shutdown waits for connections to finish the replies they are writing.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The multi-threaded runtime a server runs on, with `workers` worker threads, and the hook
/// by which those workers commit `appendfsync always` batches when they run out of work
/// (pass it to [`Server::attach_idle_commit`] once the server is bound).
pub fn runtime(workers: usize) -> io::Result<(tokio::runtime::Runtime, persist::IdleCommit)> {
    let idle_commit = persist::IdleCommit::default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .thread_name("limitkv")
        // Scripts run on the blocking-pool threads and convert nested replies (up to
        // `script::convert::MAX_DEPTH` levels) recursively; tokio's 2 MiB default was too
        // small for that in a debug build. The main thread's usual 8 MiB, reserved lazily.
        .thread_stack_size(8 << 20)
        .on_thread_park({
            let idle_commit = idle_commit.clone();
            move || idle_commit.on_park()
        })
        .build()?;
    Ok((runtime, idle_commit))
}

/// A bound, not yet running server.
pub struct Server {
    shared: Arc<Shared>,
    /// Every listener, and whether it is a TLS one.
    listeners: Vec<(TcpListener, bool)>,
    /// The HTTP listeners (`http-port`), if any.
    http: Vec<TcpListener>,
}

/// Longest a client on the TLS port may take to complete its handshake. A silent or slow
/// client costs a task and a client slot for this long, never the accept loop's time.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds every address in `config.bind` on `config.port` (port 0 picks one free port, reused
/// for the other addresses) and, with `tls-port` set, on `config.tls_port` for TLS. As in
/// Redis, `port 0` with a `tls-port` means TLS only. The TLS certificates are loaded here: a
/// missing or bad file fails the start, naming it.
pub async fn bind(config: Config, clock: Arc<dyn Clock>) -> io::Result<Server> {
    let mut listeners = Vec::new();
    let plain = config.port != 0 || config.tls_port == 0;
    let mut port = config.port;
    if plain {
        for addr in &config.bind {
            let l = TcpListener::bind(socket_addr(addr, port)?).await?;
            port = l.local_addr()?.port();
            listeners.push((l, false));
        }
    }
    if config.tls_port != 0 {
        for addr in &config.bind {
            let l = TcpListener::bind(socket_addr(addr, config.tls_port)?).await?;
            listeners.push((l, true));
        }
    }
    let mut http = Vec::new();
    if config.http_port != 0 {
        let mut port = config.http_port;
        for addr in &config.bind {
            let l = TcpListener::bind(socket_addr(addr, port)?).await?;
            port = l.local_addr()?.port();
            http.push(l);
        }
    }
    let shared = Arc::new(Shared::new(config, clock));
    crate::cmd::permissions::load_at_start(&shared)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    shared.tcp_port.store(u32::from(port), Ordering::Relaxed);
    let (tls_port, http_tls) = {
        let cfg = shared.engine.config.read();
        (cfg.tls_port, cfg.http_port != 0 && cfg.http_tls)
    };
    if tls_port != 0 || http_tls {
        let cfg = shared.engine.config.read().clone();
        shared
            .tls
            .configure(&cfg)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    }
    if shared.cluster.is_enabled() {
        cluster_config(&shared)?;
    }
    open_aof(&shared)?;
    let repl_cfg = shared.engine.config.read().repl.clone();
    shared.repl.apply_config(&shared.engine, &repl_cfg);
    if let Some(master) = repl_cfg.replicaof.clone() {
        tracing::info!("REPLICAOF {}:{} (configuration)", master.0, master.1);
        shared.repl.set_master(&shared.engine, Some(master));
    }
    shared
        .engine
        .start()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    Ok(Server {
        shared,
        listeners,
        http,
    })
}

/// Cluster mode: this node's id and the last pushed map live in `dir/cluster-config-file`
/// (JSON `{"myid": ..., "topology": ...}`), as Redis keeps them in `nodes.conf`: read at start
/// (written with a new id the first time), rewritten (temporary file, fsync, rename) before a
/// push is accepted. A file that cannot be read or parsed fails the start.
fn cluster_config(shared: &Shared) -> io::Result<()> {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Saved {
        myid: String,
        topology: Option<crate::cluster::Topology>,
    }
    fn write(path: &std::path::Path, saved: &Saved) -> io::Result<()> {
        let tmp = path.with_extension("tmp");
        let text = serde_json::to_vec_pretty(saved).map_err(io::Error::other)?;
        {
            let mut f = std::fs::File::create(&tmp)?;
            io::Write::write_all(&mut f, &text)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)
    }
    let path = {
        let cfg = shared.engine.config.read();
        cfg.dir.join(&cfg.cluster_config_file)
    };
    let bad = |e: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("cluster config file {}: {e}", path.display()),
        )
    };
    match std::fs::read(&path) {
        Ok(bytes) => {
            let saved: Saved = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
            shared
                .cluster
                .restore(saved.myid, saved.topology)
                .map_err(|e| bad(e.to_string()))?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let saved = Saved {
                myid: shared.cluster.myid(),
                topology: None,
            };
            write(&path, &saved).map_err(|e| bad(e.to_string()))?;
        }
        Err(e) => return Err(bad(e.to_string())),
    }
    let saver_path = path.clone();
    shared.cluster.set_saver(Box::new(move |myid, t| {
        let saved = Saved {
            myid: myid.to_owned(),
            topology: Some(t.clone()),
        };
        write(&saver_path, &saved).map_err(|e| e.to_string())
    }));
    Ok(())
}

fn socket_addr(addr: &str, port: u16) -> io::Result<SocketAddr> {
    let host = addr.trim_start_matches('-');
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
    .parse()
    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("bind {addr}: {e}")))
}

/// With `appendonly yes`: replays the append-only file into the engine, restoring scripts and
/// function libraries into the Lua VM, and starts its writer.
fn open_aof(shared: &Shared) -> io::Result<()> {
    // Script and function records restore the script cache and libraries, so EVALSHA and
    // FCALL keep working across restarts.
    shared.engine.open_aof(&mut |r| {
        crate::cmd::scripting::restore(shared, r);
        Ok(())
    })
}

impl Server {
    /// Lets the workers of the runtime that `idle_commit` came from (see [`runtime`]) commit
    /// this server's `appendfsync always` batches. Without it, the AOF writer thread commits
    /// them.
    pub fn attach_idle_commit(&self, idle_commit: &persist::IdleCommit) {
        if let Some(writer) = self.shared.engine.aof.get() {
            idle_commit.attach(writer);
        }
    }

    /// The first bound address (the first TLS one when the server listens on TLS only).
    pub fn local_addr(&self) -> SocketAddr {
        self.listeners[0]
            .0
            .local_addr()
            .expect("invariant: a bound listener has a local address")
    }

    /// The first HTTP address, if `http-port` is set.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.first().and_then(|l| l.local_addr().ok())
    }

    /// The first TLS address, if `tls-port` is set.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.listeners
            .iter()
            .find(|(_, tls)| *tls)
            .and_then(|(l, _)| l.local_addr().ok())
    }

    /// The state shared with every connection.
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Serves until `shutdown` resolves or a client sends `SHUTDOWN`, then stops accepting,
    /// lets every connection finish the batch it is writing, and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let Server {
            shared,
            listeners,
            http,
        } = self;
        let mut stop = shared.shutdown.subscribe();
        let mut tasks = JoinSet::new();
        if !http.is_empty() {
            let tls = shared.engine.config.read().http_tls;
            tasks.spawn(crate::http::serve(shared.clone(), http, tls));
        }
        let (accept_tx, mut accept_rx) =
            tokio::sync::mpsc::channel::<(TcpStream, SocketAddr, bool)>(64);
        for (l, tls) in listeners {
            let tx = accept_tx.clone();
            tasks.spawn(async move {
                loop {
                    match l.accept().await {
                        Ok((stream, peer)) => {
                            if tx.send((stream, peer, tls)).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            // Out of file descriptors and similar: back off instead of spinning.
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            });
        }
        drop(accept_tx);
        let tick = tokio::spawn(background(shared.clone()));
        let settings = shared.clone();
        tasks.spawn(crate::webhook::deliver::run(
            shared.engine.webhooks.clone(),
            Arc::new(move || settings.engine.config.read().webhook.clone()),
        ));
        tasks.spawn(crate::repl::replica::supervise(shared.clone()));
        tasks.spawn(replication::ping_replicas(shared.clone()));
        let mut conns = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                // The watch guard must not live across the select (it is not Send).
                _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
                Some((stream, peer, tls)) = accept_rx.recv() => {
                    accept(&shared, &mut conns, stream, peer, tls).await;
                }
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
        tracing::info!("shutting down: no longer accepting connections");
        shared.request_shutdown();
        // A script still running would keep its connection (and worker) forever.
        shared.scripts.run_state().force_kill();
        tasks.abort_all();
        tick.abort();
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
            while conns.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("some connections did not finish within {DRAIN_TIMEOUT:?}");
            conns.abort_all();
        }
        if let Err(e) = shared.engine.save_usage() {
            tracing::error!(error = %e, "usage history not saved at shutdown");
        }
        if let Some(w) = shared.engine.aof.get() {
            match w.shutdown() {
                Ok(()) => tracing::info!("AOF flushed and synced"),
                Err(e) => tracing::error!(error = %e, "AOF flush at shutdown failed"),
            }
        }
        tracing::info!("server stopped");
        Ok(())
    }
}

async fn accept(
    shared: &Arc<Shared>,
    conns: &mut JoinSet<()>,
    stream: TcpStream,
    peer: SocketAddr,
    tls: bool,
) {
    add(&shared.metrics.total_connections_received, 1);
    let refused = {
        let cfg = shared.engine.config.read();
        if shared.clients.len() >= cfg.maxclients {
            Some(RefusedConnection::MaxClients)
        } else if cfg.protected_mode && shared.acl.default_user().nopass && !is_local(peer.ip()) {
            Some(RefusedConnection::ProtectedMode)
        } else {
            None
        }
    };
    if let Some(why) = refused {
        add(&shared.metrics.rejected_connections, 1);
        if why == RefusedConnection::ProtectedMode {
            tracing::debug!(%peer, "refused by protected mode");
        }
        if tls {
            // The refusal is only readable through TLS: handshake off the accept loop.
            if let Some(acceptor) = shared.tls.acceptor() {
                conns.spawn(async move {
                    let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, async {
                        let mut s = acceptor.accept(stream).await?;
                        s.write_all(&why.wire()).await?;
                        s.shutdown().await
                    });
                    let _ = handshake.await;
                });
            }
        } else {
            conns.spawn(refuse(stream, why));
        }
        return;
    }
    let _ = stream.set_nodelay(true);
    let laddr = stream
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let fd = {
        use std::os::fd::AsRawFd;
        i64::from(stream.as_raw_fd())
    };
    let info =
        Arc::new(ClientInfo::new(shared.clients.next_id(), peer.to_string(), laddr).with_fd(fd));
    // A client in its TLS handshake already holds its slot (and shows in CLIENT LIST), as in
    // Redis: maxclients also bounds the handshakes in progress.
    shared.clients.register(info.clone());
    let registered = Registered {
        shared: shared.clone(),
        info: info.clone(),
    };
    if !tls {
        conns.spawn(async move {
            connection::serve(stream, registered.shared.clone(), info).await;
            drop(registered);
        });
        return;
    }
    let acceptor = shared.tls.acceptor();
    conns.spawn(async move {
        let shared = registered.shared.clone();
        if let Some(stream) = handshake(acceptor, stream, &shared, &info, peer).await {
            connection::serve_tls(stream, shared, info).await;
        }
        drop(registered);
    });
}

/// Writes why a connection is refused and closes it gracefully: the write side first (the
/// message, then FIN), then whatever the client already sent is read and dropped until it
/// closes, for at most [`REFUSE_LINGER`]. Closing with unread input would make the kernel
/// answer with a reset that can destroy the message before the client reads it (a client
/// that sends its first command at once, as redis-cli does, would see "connection reset").
async fn refuse(mut stream: TcpStream, why: RefusedConnection) {
    use tokio::io::AsyncReadExt;
    if stream.write_all(&why.wire()).await.is_err() || stream.shutdown().await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(REFUSE_LINGER, async {
        let mut sink = [0u8; 1024];
        let mut left: usize = 64 * 1024;
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}

/// Longest a refused connection is kept open to drain what its client sent.
const REFUSE_LINGER: Duration = Duration::from_secs(1);

/// True for a peer on the loopback interface (127.0.0.0/8, `::1`, or IPv4 loopback mapped into
/// IPv6 by a dual-stack listener): the clients protected mode still serves. Redis compares the
/// text with `127.0.0.1` and `::1` alone; the whole loopback range is the same machine.
pub fn is_local(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => v4.is_loopback(),
        std::net::IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Runs the server side of a TLS handshake, bounded by [`TLS_HANDSHAKE_TIMEOUT`], `CLIENT
/// KILL` and shutdown. A failure (a plain-text client, a refused or missing client
/// certificate, a timeout) is logged at debug level, as Redis logs it at verbose, and the
/// connection closes.
async fn handshake(
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    stream: TcpStream,
    shared: &Shared,
    info: &ClientInfo,
    peer: SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    // Invariant: a TLS listener exists only once a configuration was loaded at bind.
    let acceptor = acceptor?;
    let mut stop = shared.shutdown.subscribe();
    let result = tokio::select! {
        r = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)) => r,
        _ = async { let _ = stop.wait_for(|s| *s).await; } => return None,
        _ = async {
            while !info.killed.load(Ordering::Relaxed) {
                info.pubsub.notified().await;
            }
        } => return None,
    };
    match result {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(e)) => {
            tracing::debug!(client = info.id, %peer, error = %e, "Error accepting a client connection: TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(client = info.id, %peer, "Error accepting a client connection: TLS handshake timed out");
            None
        }
    }
}

/// A connection's entries in the client and Pub/Sub registries, removed when its task ends
/// however it ends (normally, by a panic, or aborted at shutdown).
struct Registered {
    shared: Arc<Shared>,
    info: Arc<ClientInfo>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.shared.engine.pubsub.remove(&self.info.pubsub);
        self.shared.monitors.remove(self.info.id);
        self.shared.clients.unregister(self.info.id);
    }
}

/// Redis's `serverCron`, reduced to what limitkv needs: active expiry and stats sampling.
async fn background(shared: Arc<Shared>) {
    loop {
        let hz = shared.engine.config.read().hz.max(1);
        tokio::time::sleep(Duration::from_millis(1000 / u64::from(hz))).await;
        let budget = shared.engine.config.read().active_expire_budget;
        let now = shared.engine.clock.now();
        // As in Redis, no active expiry while clients are paused (CLIENT PAUSE): the data
        // set, and what replicas receive, stay still. Reading the mode also lifts an expired
        // pause.
        let paused = shared.pause.mode_at(now) != crate::cmd::client_pause::PauseMode::Off;
        let started = std::time::Instant::now();
        for db in shared.engine.dbs.iter().filter(|_| !paused) {
            let stats = db.sweep(now, budget);
            if stats.removed > 0 {
                tracing::debug!(
                    removed = stats.removed,
                    examined = stats.examined,
                    "active expiry"
                );
            }
        }
        let took = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        shared
            .engine
            .latency
            .sample("expire-cycle", took, now.as_secs());
        shared.engine.tick(now);
        // Events emitted outside a command (lapses found by the tick, HTTP checks).
        if shared.engine.stream_events.is_pending() {
            if let Some(_gate) = shared.scripts.run_state().command_gate() {
                crate::cmd::event_stream::flush(&shared, now);
                crate::cmd::blocking::serve(&shared, now);
            }
        }
        shared.metrics.sample(shared.uptime_ms());
        maybe_rewrite(&shared);
    }
}

/// Starts an AOF rewrite on a blocking thread when one was requested (`BGREWRITEAOF`) or the
/// file outgrew `auto-aof-rewrite-percentage` of its last compacted size.
fn maybe_rewrite(shared: &Arc<Shared>) {
    let Some(writer) = shared.engine.aof.get() else {
        return;
    };
    let stats = writer.stats();
    if stats.rewrite_in_progress {
        return;
    }
    let requested = shared.rewrite_requested.swap(false, Ordering::SeqCst);
    let (pct, min, dir, preallocate) = {
        let c = shared.engine.config.read();
        (
            c.auto_aof_rewrite_percentage,
            c.auto_aof_rewrite_min_size,
            c.dir.clone(),
            c.aof_preallocate,
        )
    };
    let automatic =
        pct > 0 && persist::should_rewrite(stats.current_size, stats.base_size, pct, min);
    if !requested && !automatic {
        return;
    }
    let shared = shared.clone();
    tokio::task::spawn_blocking(move || {
        let Some(writer) = shared.engine.aof.get() else {
            return;
        };
        let now = shared.engine.clock.now();
        let scripts = || crate::cmd::scripting::snapshot(&shared);
        match persist::rewrite_with(
            &dir,
            &shared.engine.dbs,
            &shared.engine.policies,
            &scripts,
            now,
            writer,
            preallocate,
        ) {
            Ok(r) => tracing::info!(
                keys = r.snapshot_records,
                bytes = r.size,
                automatic,
                "AOF rewrite finished"
            ),
            Err(e) => tracing::error!(error = %e, "AOF rewrite failed"),
        }
    });
}
