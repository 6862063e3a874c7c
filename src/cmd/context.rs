//! What a command handler can see: the server-wide [`Shared`] state, the connection's
//! [`Session`], and `now`, read once per command.
//!
//! Nothing here touches a socket: the client registry holds descriptions of connections
//! (addresses, names, timestamps) and a kill switch the connection task watches.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::clock::{Clock, Nanos};
use crate::config::Config;
use crate::engine::{Call, Engine};
use crate::metrics::{LocalStats, Metrics};
use crate::persist::{Record, Seq};
use crate::protocol::RespVersion;
use crate::pubsub::Subscriber;
use crate::store::{MultiGuard, Shard, Store, WatchFlag};

/// State shared by every connection: the engine, plus what only the server has (clients,
/// ACL users, the Lua VM, TLS, shutdown).
pub struct Shared {
    /// The keyspace, clock, settings, policies, events and append-only file.
    pub engine: Engine,
    /// Counters.
    pub metrics: Metrics,
    /// Connected clients.
    pub clients: ClientRegistry,
    /// Set to true to ask the server to shut down (`SHUTDOWN`, signals).
    pub shutdown: watch::Sender<bool>,
    /// Monotonic start time, for uptime.
    pub started: Instant,
    /// A random 40-hex-digit id for this run, as Redis reports in INFO.
    pub run_id: String,
    /// The TCP port actually bound (after resolving port 0).
    pub tcp_port: AtomicU32,
    /// Called when `CONFIG SET loglevel` changes the level (installed by `main`).
    pub on_loglevel: Mutex<Option<LogLevelHook>>,
    /// Wall-clock start time.
    pub started_at: Nanos,
    /// A `BGREWRITEAOF` waits for the background task to start it.
    pub rewrite_requested: AtomicBool,
    /// The Lua VM, script cache, function libraries and running-script state.
    pub scripts: crate::script::Scripts,
    /// Clients blocked by BLPOP and the other blocking commands (see `cmd::blocking`).
    pub blocked: super::blocking::Blocked,
    /// ACL users.
    pub acl: crate::acl::Acl,
    /// The TLS configuration new connections on the TLS port get (`CONFIG SET` replaces it).
    pub tls: crate::tls::Tls,
    /// Cluster mode's routing state (`cluster-enabled`; docs/cluster.md).
    pub cluster: crate::cluster::Cluster,
    /// Replication: role, ids, attached replicas, the link to the master.
    pub repl: crate::repl::Repl,
    /// `SLOWLOG`'s entries and settings.
    pub slowlog: super::slowlog::Slowlog,
    /// The connections in `MONITOR` mode.
    pub monitors: super::monitor::Monitors,
    /// `CLIENT PAUSE`.
    pub pause: super::client_pause::Pause,
    /// The eviction sampler (`maxmemory-policy` other than `noeviction`); one eviction runs
    /// at a time.
    pub evictor: Mutex<crate::store::evict::Sampler>,
}

/// Applies a new log level to the process's logger.
pub type LogLevelHook = Box<dyn Fn(crate::config::LogLevel) + Send + Sync>;

impl Shared {
    /// Fresh state for `config`, reading time from `clock`.
    pub fn new(config: Config, clock: Arc<dyn Clock>) -> Shared {
        let (shutdown, _) = watch::channel(false);
        let acl = super::permissions::new_acl();
        if config.requirepass.is_some() {
            acl.set_default_password(config.requirepass.as_deref());
        }
        let tcp_port = AtomicU32::new(u32::from(config.port));
        let started_at = clock.now();
        let slowlog =
            super::slowlog::Slowlog::new(config.slowlog_log_slower_than, config.slowlog_max_len);
        let metrics = Metrics::default();
        metrics
            .maxmemory
            .store(config.maxmemory, std::sync::atomic::Ordering::Relaxed);
        let cluster = crate::cluster::Cluster::new(
            config.cluster_enabled,
            random_hex(40),
            config.cluster_require_full_coverage,
        );
        Shared {
            cluster,
            engine: Engine::new(config, clock),
            tcp_port,
            metrics,
            clients: ClientRegistry::default(),
            shutdown,
            started: Instant::now(),
            run_id: random_hex(40),
            on_loglevel: Mutex::new(None),
            started_at,
            rewrite_requested: AtomicBool::new(false),
            scripts: crate::script::Scripts::new(),
            blocked: super::blocking::Blocked::default(),
            acl,
            tls: crate::tls::Tls::default(),
            repl: crate::repl::Repl::new(),
            slowlog,
            monitors: super::monitor::Monitors::default(),
            pause: super::client_pause::Pause::default(),
            evictor: Mutex::default(),
        }
    }

    /// Keys expired since start, over every database.
    pub fn expired_total(&self) -> u64 {
        self.engine.expired_total()
    }

    /// Asks the server to stop (idempotent).
    pub fn request_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Milliseconds since start on the monotonic clock.
    pub fn uptime_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

fn random_hex(len: usize) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::with_capacity(len);
    while out.len() < len {
        // RandomState is seeded from the OS; good enough for an identifier.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(out.len());
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out.truncate(len);
    out
}

/// A connected client as other connections may see it (`CLIENT LIST`, `CLIENT KILL`).
#[derive(Debug)]
pub struct ClientInfo {
    /// Unique, increasing id.
    pub id: u64,
    /// Peer address `ip:port`.
    pub addr: String,
    /// Local address `ip:port`.
    pub laddr: String,
    /// The socket's file descriptor, as `CLIENT LIST` shows it (-1 for a client without a
    /// socket, as Redis shows its fake clients).
    pub fd: i64,
    /// When the connection was accepted.
    pub created: Instant,
    /// Milliseconds after `created` of the last command.
    pub last_interaction_ms: AtomicU64,
    /// Name set with `CLIENT SETNAME` / `HELLO SETNAME`.
    pub name: Mutex<Option<Bytes>>,
    /// `CLIENT SETINFO LIB-NAME`.
    pub lib_name: Mutex<Option<Bytes>>,
    /// `CLIENT SETINFO LIB-VER`.
    pub lib_ver: Mutex<Option<Bytes>>,
    /// Full name of the last command (e.g. `client|list`).
    pub last_cmd: Mutex<&'static str>,
    /// 2 or 3.
    pub resp: AtomicU8,
    /// The selected database.
    pub db: AtomicU32,
    /// Number of keys watched (`WATCH`).
    pub watching: AtomicU32,
    /// Set by `CLIENT KILL`; the connection closes when it sees it.
    pub killed: AtomicBool,
    /// The ACL user it is authenticated as (`default` until `AUTH`).
    pub user: Mutex<Arc<str>>,
    /// Set when the connection closes for going over its output buffer limit (`normal` class).
    pub output_limited: AtomicBool,
    /// Pub/Sub side of the connection: subscriptions, queued messages, and the wake-up the
    /// connection task waits on (also signalled by [`ClientInfo::kill`]).
    pub pubsub: Arc<Subscriber>,
    /// The connection became a replica's link (`PSYNC`/`SYNC`): its type is `slave`.
    pub is_replica: AtomicBool,
    /// In `MONITOR` mode (flag `O`).
    pub monitor: AtomicBool,
    /// `CLIENT NO-EVICT on` (flag `e`).
    pub no_evict: AtomicBool,
}

impl ClientInfo {
    /// A new description for a connection from `addr` accepted on `laddr`.
    pub fn new(id: u64, addr: String, laddr: String) -> ClientInfo {
        ClientInfo {
            id,
            addr,
            laddr,
            fd: -1,
            created: Instant::now(),
            last_interaction_ms: AtomicU64::new(0),
            name: Mutex::new(None),
            lib_name: Mutex::new(None),
            lib_ver: Mutex::new(None),
            last_cmd: Mutex::new("NULL"),
            resp: AtomicU8::new(2),
            db: AtomicU32::new(0),
            watching: AtomicU32::new(0),
            killed: AtomicBool::new(false),
            user: Mutex::new(Arc::from("default")),
            output_limited: AtomicBool::new(false),
            pubsub: Arc::new(Subscriber::new(id)),
            is_replica: AtomicBool::new(false),
            monitor: AtomicBool::new(false),
            no_evict: AtomicBool::new(false),
        }
    }

    /// The description with the socket's file descriptor `fd`.
    pub fn with_fd(mut self, fd: i64) -> ClientInfo {
        self.fd = fd;
        self
    }

    /// Marks the client for closing and wakes its task.
    pub fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
        self.pubsub.wake();
    }

    /// True in `MONITOR` mode.
    pub fn is_monitor(&self) -> bool {
        self.monitor.load(Ordering::Relaxed)
    }

    /// Seconds since accept.
    pub fn age_secs(&self) -> u64 {
        self.created.elapsed().as_secs()
    }

    /// Seconds since the last command.
    pub fn idle_secs(&self) -> u64 {
        let now_ms = u64::try_from(self.created.elapsed().as_millis()).unwrap_or(u64::MAX);
        now_ms.saturating_sub(self.last_interaction_ms.load(Ordering::Relaxed)) / 1000
    }

    /// The line `CLIENT LIST` / `CLIENT INFO` print for this client (without newline).
    pub fn describe(&self) -> String {
        let show = |b: &Option<Bytes>| {
            b.as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default()
        };
        let (sub, psub, ssub) = self.pubsub.counts();
        let (oll, omem) = self.pubsub.backlog();
        // Redis's flags, in its order: `O` monitor, `P` subscribed to anything, `e` no-evict,
        // `N` for no flag.
        let mut flags = String::new();
        if self.is_monitor() {
            flags.push('O');
        }
        if sub + psub + ssub > 0 {
            flags.push('P');
        }
        if self.no_evict.load(Ordering::Relaxed) {
            flags.push('e');
        }
        if flags.is_empty() {
            flags.push('N');
        }
        format!(
            "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={flags} db={} sub={sub} \
             psub={psub} ssub={ssub} multi=-1 watch={} qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 \
             rbs=0 rbp=0 obl=0 oll={oll} omem={omem} tot-mem=0 events=r cmd={} user={} \
             redir=-1 resp={} lib-name={} lib-ver={}",
            self.id,
            self.addr,
            self.laddr,
            self.fd,
            show(&self.name.lock()),
            self.age_secs(),
            self.idle_secs(),
            self.db.load(Ordering::Relaxed),
            self.watching.load(Ordering::Relaxed),
            self.last_cmd.lock().to_ascii_lowercase(),
            self.user.lock(),
            self.resp.load(Ordering::Relaxed),
            show(&self.lib_name.lock()),
            show(&self.lib_ver.lock()),
        )
    }
}

/// Every connected client, by id.
#[derive(Debug, Default)]
pub struct ClientRegistry {
    clients: Mutex<HashMap<u64, Arc<ClientInfo>>>,
    next_id: AtomicU64,
}

impl ClientRegistry {
    /// The next client id (starting at 1).
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Adds a client.
    pub fn register(&self, info: Arc<ClientInfo>) {
        self.clients.lock().insert(info.id, info);
    }

    /// Removes a client.
    pub fn unregister(&self, id: u64) {
        self.clients.lock().remove(&id);
    }

    /// Number of connected clients.
    pub fn len(&self) -> usize {
        self.clients.lock().len()
    }

    /// True when nobody is connected.
    pub fn is_empty(&self) -> bool {
        self.clients.lock().is_empty()
    }

    /// A snapshot of all clients, ordered by id.
    pub fn snapshot(&self) -> Vec<Arc<ClientInfo>> {
        let mut v: Vec<_> = self.clients.lock().values().cloned().collect();
        v.sort_by_key(|c| c.id);
        v
    }
}

/// Per-connection state.
#[derive(Debug)]
pub struct Session {
    /// This connection's entry in the registry.
    pub info: Arc<ClientInfo>,
    /// Negotiated protocol.
    pub resp: RespVersion,
    /// Whether commands other than AUTH/HELLO may run.
    pub authenticated: bool,
    /// The ACL user's permissions, as of [`Session::acl_version`].
    pub user: Arc<crate::acl::User>,
    /// The [`crate::acl::Acl::version`] `user` was read at; when the registry's moves on,
    /// `user` is read again before the next command.
    pub acl_version: u64,
    /// Close the connection once the current replies are written (`QUIT`).
    pub close_after_reply: bool,
    /// Close the connection without sending this command's reply (`SHUTDOWN`).
    pub close_without_reply: bool,
    /// Counters flushed into [`Metrics`] after each batch.
    pub stats: LocalStats,
    /// Name of the last command run (mirrored into [`ClientInfo`] when it changes).
    pub last_cmd: &'static str,
    /// The spec the last request's name was looked up as: a pipeline of one command (the
    /// common case) compares the name instead of hashing it again.
    pub last_spec: Option<&'static super::CommandSpec>,
    /// The command running was admitted although memory is over `maxmemory` (a limiter
    /// decision on existing keys): a policy check verifies its derived keys exist.
    pub over_maxmemory: bool,
    /// The selected database.
    pub db: usize,
    /// The last AOF record this connection's commands appended; replies wait until it is
    /// acknowledged.
    pub aof_seq: Option<Seq>,
    /// The keyspace events of the write command running, while notifications are on
    /// (set around the handler by [`super::keyspace_events::run_handler`]).
    pub events: Option<Box<crate::engine::notify::EventSpec>>,
    /// Commands queued since `MULTI`, or `None` outside a transaction.
    pub multi: Option<Vec<Vec<Bytes>>>,
    /// Set by a blocking command that found nothing: the connection blocks the client on it
    /// (see `cmd::blocking`).
    pub block: Option<super::blocking::Block>,
    /// `CLIENT REPLY`: whether this connection's replies are written.
    pub reply_mode: ReplyMode,
    /// Whether a command may run Lua where it is dispatched (true but on a runtime worker
    /// thread, see `server::connection`). When false and a recognised library script's native
    /// fast path leaves the decision to its Lua body, `EVALSHA` sets `lua_bounce` instead and
    /// the connection runs the request again where Lua may run.
    pub lua_inline: bool,
    /// See `lua_inline`.
    pub lua_bounce: bool,
    /// The command runs from a script (`redis.call`): Redis's `CLIENT_SCRIPT`, for the few
    /// commands that answer differently there (SORT orders a set it would not sort).
    pub in_script: bool,
    /// A command was refused while queuing: `EXEC` must abort.
    pub multi_error: bool,
    /// Subscribed to at least one channel, pattern or shard channel: Redis's Pub/Sub context,
    /// which restricts a RESP2 connection to the (un)subscribe commands, PING, QUIT and RESET.
    pub pubsub_mode: bool,
    /// Subscribed at some point: Pub/Sub messages may wait in `info.pubsub`'s queue, so the
    /// connection drains it around every command. False keeps the other connections' path
    /// free of Pub/Sub work.
    pub pubsub_used: bool,
    /// Set by the keyspace when a watched key changes (`WATCH`).
    pub watch_flag: WatchFlag,
    /// Keys this connection watches.
    pub watched: Vec<WatchedKey>,
    /// Recognised scripts this connection found loaded, with the script cache's flush count
    /// then (see `cmd::scripting::seen_loaded`).
    pub loaded_scripts: Vec<(crate::script::Sha, u64)>,
    /// Cluster mode: `READONLY` was sent (reads of a replica's master's slots run here).
    pub cluster_readonly: bool,
    /// Cluster mode: `ASKING` was the previous command.
    pub cluster_asking: bool,
    /// What a replica said in `REPLCONF` before `PSYNC`.
    pub replconf: ReplConf,
    /// Set by a command the connection must finish outside the dispatcher (`WAIT` blocks,
    /// `PSYNC`/`SYNC` turn the connection into a replica link).
    pub blocked: Option<Blocked>,
    /// Not shown to `MONITOR` (a blocked client's command run again on its behalf when a key
    /// serves it: Redis shows the blocking command once).
    pub unmonitored: bool,
}

/// What a replica announced with `REPLCONF` (kept until its `PSYNC`).
#[derive(Debug, Clone, Default)]
pub struct ReplConf {
    /// `REPLCONF listening-port`.
    pub listening_port: u16,
    /// `REPLCONF ip-address`.
    pub ip_address: Option<String>,
}

/// A command the connection task finishes (see [`Session::blocked`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocked {
    /// `WAIT numreplicas timeout`: reply with the replicas that acknowledged the current
    /// offset, once there are `numreplicas` of them or `timeout_ms` passed (0: no limit).
    Wait {
        /// Replicas wanted.
        numreplicas: u64,
        /// Milliseconds to wait at most; 0 waits without limit.
        timeout_ms: u64,
        /// The offset to be acknowledged.
        offset: u64,
    },
    /// `WAITAOF numlocal numreplicas timeout`: reply `[local, replicas]` once the local AOF
    /// fsynced record `seq` (if `numlocal` is 1) and `numreplicas` replicas reported `offset`
    /// fsynced to theirs, or `timeout_ms` passed (0: no limit).
    WaitAof {
        /// 0 or 1: whether the local fsync is wanted.
        numlocal: u64,
        /// Replicas wanted.
        numreplicas: u64,
        /// Milliseconds to wait at most; 0 waits without limit.
        timeout_ms: u64,
        /// The replication offset the replicas must have fsynced.
        offset: u64,
        /// The local AOF record that must be fsynced.
        seq: crate::persist::Seq,
    },
    /// `PSYNC replid offset` (`None` for the old `SYNC`): serve this connection as a replica.
    Sync {
        /// The id and 1-based offset asked for.
        psync: Option<(String, i64)>,
    },
}

/// A key named in `WATCH`.
#[derive(Debug, Clone)]
pub struct WatchedKey {
    /// Its database.
    pub db: usize,
    /// The key.
    pub key: Bytes,
    /// Whether it held a live value when watched; if it no longer does at `EXEC` (it expired,
    /// or the sweep removed it), the transaction aborts, as in Redis.
    pub live: bool,
}

impl Session {
    /// A session for `info` as the `default` user; authenticated from the start while the
    /// default user needs no password (`nopass`, as without `requirepass`).
    pub fn new(info: Arc<ClientInfo>, acl: &crate::acl::Acl) -> Session {
        let acl_version = acl.version();
        let user = acl.default_user();
        Session {
            info,
            resp: RespVersion::Resp2,
            authenticated: user.enabled && user.nopass,
            user,
            acl_version,
            close_after_reply: false,
            close_without_reply: false,
            stats: LocalStats::default(),
            last_cmd: "NULL",
            last_spec: None,
            over_maxmemory: false,
            db: 0,
            aof_seq: None,
            events: None,
            multi: None,
            block: None,
            reply_mode: ReplyMode::On,
            lua_inline: true,
            lua_bounce: false,
            in_script: false,
            multi_error: false,
            pubsub_mode: false,
            pubsub_used: false,
            watch_flag: WatchFlag::default(),
            watched: Vec::new(),
            loaded_scripts: Vec::new(),
            cluster_readonly: false,
            cluster_asking: false,
            replconf: ReplConf::default(),
            blocked: None,
            unmonitored: false,
        }
    }
}

/// `CLIENT REPLY ON|OFF|SKIP`: which replies the connection writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyMode {
    /// Every reply (the default).
    On,
    /// None, until `CLIENT REPLY ON`.
    Off,
    /// Not this command's (`CLIENT REPLY SKIP` itself), nor the next one's.
    SkipThisAndNext,
    /// Not the next command's.
    SkipNext,
}

impl ReplyMode {
    /// Whether the reply of the command that just ran is written, moving to the next state.
    pub fn take(&mut self) -> bool {
        match *self {
            ReplyMode::On => true,
            ReplyMode::Off => false,
            ReplyMode::SkipThisAndNext => {
                *self = ReplyMode::SkipNext;
                false
            }
            ReplyMode::SkipNext => {
                *self = ReplyMode::On;
                false
            }
        }
    }
}

/// Everything a handler gets besides its arguments.
pub struct Ctx<'a> {
    /// Server-wide state.
    pub shared: &'a Shared,
    /// This connection.
    pub session: &'a mut Session,
    /// The time of this command, read once.
    pub now: Nanos,
    /// Shards already held for the whole of an `EXEC`; store access goes through them.
    pub locked: Option<MultiGuard<'a>>,
}

impl<'a> Ctx<'a> {
    /// A context for one command outside a transaction.
    pub fn new(shared: &'a Shared, session: &'a mut Session, now: Nanos) -> Ctx<'a> {
        Ctx {
            shared,
            session,
            now,
            locked: None,
        }
    }

    /// The selected database. Handlers go through [`Ctx::with_shard`] and friends instead, so
    /// that commands inside `EXEC` use the shards the transaction already holds.
    pub fn db(&self) -> &'a Store {
        &self.shared.engine.dbs[self.session.db]
    }

    /// This command's call into the engine: the selected database, `now`, the shards an
    /// `EXEC` holds, and the session's counters and AOF position.
    pub fn call(&mut self) -> Call<'_, 'a> {
        Call {
            engine: &self.shared.engine,
            db: self.session.db,
            now: self.now,
            locked: self.locked.as_mut(),
            stats: &mut self.session.stats,
            aof_seq: &mut self.session.aof_seq,
            events: self.session.events.as_deref(),
        }
    }

    /// [`Call::with_shard`] in the selected database.
    pub fn with_shard<R>(&mut self, key: &[u8], f: impl FnOnce(&mut Shard) -> R) -> R {
        self.call().with_shard(key, f)
    }

    /// [`Call::with_shard_in`]: database `db`, `None` inside `EXEC`.
    pub fn with_shard_in<R>(
        &mut self,
        db: usize,
        key: &[u8],
        f: impl FnOnce(&mut Shard) -> R,
    ) -> Option<R> {
        self.call().with_shard_in(db, key, f)
    }

    /// [`Call::with_keys`]: every shard owning one of `keys` locked.
    pub fn with_keys<K: AsRef<[u8]>, R>(
        &mut self,
        keys: &[K],
        f: impl for<'g> FnOnce(&mut MultiGuard<'g>) -> R,
    ) -> R {
        self.call().with_keys(keys, f)
    }

    /// [`Call::with_keys_writing`]: every shard owning one of `keys` locked; only `written`
    /// journaled and signalled when something changed.
    pub fn with_keys_writing<K: AsRef<[u8]>, W: AsRef<[u8]>, R>(
        &mut self,
        keys: &[K],
        written: &[W],
        f: impl for<'g> FnOnce(&mut MultiGuard<'g>) -> R,
    ) -> R {
        self.call().with_keys_writing(keys, written, f)
    }

    /// [`Call::with_keys_reporting`]: every shard owning one of `keys` locked; only the keys
    /// whose indices `f` returns journaled and signalled when something changed.
    pub fn with_keys_reporting<K: AsRef<[u8]>, R>(
        &mut self,
        keys: &[K],
        f: impl for<'g> FnOnce(&mut MultiGuard<'g>) -> (R, Vec<usize>),
    ) -> R {
        self.call().with_keys_reporting(keys, f)
    }

    /// [`Call::with_all_shards`]: every shard of the selected database locked.
    pub fn with_all_shards<R>(
        &mut self,
        record: Option<Record>,
        f: impl for<'g> FnOnce(&mut MultiGuard<'g>) -> R,
    ) -> R {
        self.call().with_all_shards(record, f)
    }

    /// [`Call::with_shard_at`]: shard number `idx`, for whole-keyspace reads.
    pub fn with_shard_at<R>(&mut self, idx: usize, f: impl FnOnce(&mut Shard) -> R) -> R {
        self.call().with_shard_at(idx, f)
    }

    /// [`Call::journal`]: a record that is not a key's effect.
    pub fn journal(&mut self, record: &Record) {
        self.call().journal(record)
    }

    /// Number of keyspace shards.
    pub fn shard_count(&self) -> usize {
        self.db().shard_count()
    }

    /// True if the client negotiated RESP3.
    pub fn resp3(&self) -> bool {
        self.session.resp == RespVersion::Resp3
    }
}
