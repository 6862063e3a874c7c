//! Replication, in Redis's protocol: the role of this server (master, or replica of a host),
//! its replication ids and offsets, the replicas attached to it, and the link to its master.
//!
//! What is replicated is the engine's stream of effect records ([`crate::persist::feed`]):
//! the same frames the append-only file gets, so a replica applies absolute states and never
//! re-decides. A full sync ships limitkv's own snapshot (the AOF rewrite format) where Redis
//! ships an RDB. The wire contract is `docs/replication.md`.
//!
//! - [`stream`]: the control frames (PING, GETACK) and splitting a byte stream into frames.
//! - [`snapshot`]: building the full-sync payload, and checking and loading one atomically.
//! - [`replica`]: the replica's side: connect, handshake, load, apply, acknowledge, retry.
//!
//! The master's side of a replica connection is served by `server` (it takes over a client
//! connection after `PSYNC`), using [`Repl::register`] and [`Repl::decide_psync`].
//!
//! Depends on `engine`, `persist`, `store`, `protocol`, `config`, `clock`; never on `cmd`,
//! `server` or `http` (they reach the server through the [`Host`] trait). Does network I/O:
//! the replica's link to its master.

pub mod replica;
pub mod snapshot;
pub mod stream;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::{watch, Notify};

use crate::engine::Engine;
use crate::persist::Record;

/// What the replication code needs from the server around it.
pub trait Host: Send + Sync + 'static {
    /// The engine (keyspace, feed, AOF, configuration).
    fn engine(&self) -> &Engine;
    /// The replication state.
    fn repl(&self) -> &Repl;
    /// The script cache and function libraries as records (for a full sync's snapshot).
    fn script_records(&self) -> Vec<Record>;
    /// Applies a script or function record received from the master.
    fn restore_script(&self, record: Record);
    /// The port this server listens on (announced to the master).
    fn listening_port(&self) -> u16;
    /// True once the server is shutting down.
    fn stopping(&self) -> watch::Receiver<bool>;
    /// This run's id (`run_id`), to recognise a link to itself.
    fn run_id(&self) -> &str;
}

/// 40 zeros: Redis's "no id" for `master_replid2`.
pub const NO_REPLID: &str = "0000000000000000000000000000000000000000";

/// The replica link's state, as `ROLE` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Waiting to connect (or to retry).
    Connect,
    /// Connecting.
    Connecting,
    /// Connected; PING/AUTH/REPLCONF/PSYNC exchange in progress.
    Handshake,
    /// Receiving the snapshot.
    Sync,
    /// Streaming.
    Connected,
}

impl LinkState {
    /// `ROLE`'s name for the state.
    pub fn name(self) -> &'static str {
        match self {
            LinkState::Connect => "connect",
            LinkState::Connecting => "connecting",
            LinkState::Handshake => "handshake",
            LinkState::Sync => "sync",
            LinkState::Connected => "connected",
        }
    }
}

/// Role and ids (one lock: they change together).
#[derive(Debug, Clone)]
pub struct Ids {
    /// The master this server replicates, if it is a replica.
    pub master: Option<(String, u16)>,
    /// `master_replid`: the history this server's stream belongs to.
    pub replid: String,
    /// `master_replid2`: the previous history (after a promotion), or [`NO_REPLID`].
    pub replid2: String,
    /// `second_repl_offset`: offsets up to this (exclusive, 0-based) are valid under
    /// `replid2`; -1 when there is none.
    pub second_offset: i64,
}

/// The replica side's link figures.
#[derive(Debug, Clone)]
pub struct Link {
    /// State of the link.
    pub state: LinkState,
    /// Last time anything arrived from the master.
    pub last_io: Option<Instant>,
    /// Since when the link is down.
    pub down_since: Instant,
    /// Bytes of the current transfer received, and its size.
    pub transfer: Option<(u64, u64)>,
    /// The last error, for logs and `INFO`.
    pub last_error: Option<String>,
}

/// One replica attached to this master.
#[derive(Debug)]
pub struct Replica {
    /// The client id of its connection.
    pub client_id: u64,
    /// Its address: `REPLCONF ip-address`, else the connection's.
    pub ip: String,
    /// `REPLCONF listening-port`.
    pub port: AtomicU32,
    /// The last offset it acknowledged (bytes processed).
    pub ack_offset: AtomicU64,
    /// The last offset it reported fsynced to its own AOF (`REPLCONF ACK <o> FACK <aof>`,
    /// Redis 7.2's `repl_aof_off`); 0 until it reports one.
    pub aof_offset: AtomicU64,
    /// When it last acknowledged.
    pub ack_at: Mutex<Instant>,
    /// Past the snapshot: streaming.
    pub online: AtomicBool,
    /// Set to disconnect it (role change, `CLIENT KILL`).
    pub kill: Notify,
    /// Whether `kill` fired.
    pub killed: AtomicBool,
}

impl Replica {
    /// Seconds since its last acknowledgement.
    pub fn lag_secs(&self) -> u64 {
        self.ack_at.lock().elapsed().as_secs()
    }

    /// Asks its connection to close.
    pub fn disconnect(&self) {
        self.killed.store(true, Ordering::Release);
        self.kill.notify_waiters();
        self.kill.notify_one();
    }
}

/// Counters `INFO stats` reports.
#[derive(Debug, Default)]
pub struct Stats {
    /// Full syncs served (`sync_full`).
    pub sync_full: AtomicU64,
    /// Partial resyncs accepted (`sync_partial_ok`).
    pub sync_partial_ok: AtomicU64,
    /// Partial resyncs refused (`sync_partial_err`).
    pub sync_partial_err: AtomicU64,
}

/// The replication state of a server.
#[derive(Debug)]
pub struct Repl {
    ids: Mutex<Ids>,
    is_replica: AtomicBool,
    /// The replica link's figures.
    pub link: Mutex<Link>,
    /// The replica's processed offset (bytes of the master's stream applied).
    pub replica_offset: AtomicU64,
    /// Attached replicas.
    pub replicas: Mutex<Vec<Arc<Replica>>>,
    /// Woken on every acknowledgement (`WAIT`).
    pub acks: Notify,
    /// Counters.
    pub stats: Stats,
    /// Bumped on every role change; the replica link follows it.
    pub generation: watch::Sender<u64>,
    /// `replica-read-only`, `min-replicas-to-write`, `min-replicas-max-lag`, readable
    /// without the configuration lock on every write.
    read_only: AtomicBool,
    min_to_write: AtomicU32,
    max_lag: AtomicU32,
}

impl Default for Repl {
    fn default() -> Repl {
        Repl::new()
    }
}

/// What a master answers to `PSYNC replid offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PsyncDecision {
    /// `+CONTINUE replid`: stream from this (0-based) offset.
    Continue {
        /// The master's current replication id.
        replid: String,
        /// Where the stream resumes.
        from: u64,
    },
    /// `+FULLRESYNC`: send a snapshot. `partial_refused` when the replica asked for a partial
    /// resync (counted in `sync_partial_err`).
    Full {
        /// The replica asked to continue and could not.
        partial_refused: bool,
    },
}

impl Repl {
    /// A master with a fresh random replication id.
    pub fn new() -> Repl {
        Repl {
            ids: Mutex::new(Ids {
                master: None,
                replid: random_id(),
                replid2: NO_REPLID.to_owned(),
                second_offset: -1,
            }),
            is_replica: AtomicBool::new(false),
            link: Mutex::new(Link {
                state: LinkState::Connect,
                last_io: None,
                down_since: Instant::now(),
                transfer: None,
                last_error: None,
            }),
            replica_offset: AtomicU64::new(0),
            replicas: Mutex::new(Vec::new()),
            acks: Notify::new(),
            stats: Stats::default(),
            generation: watch::Sender::new(0),
            read_only: AtomicBool::new(true),
            min_to_write: AtomicU32::new(0),
            max_lag: AtomicU32::new(10),
        }
    }

    /// Takes the settings of `cfg` that writes check, and the backlog size.
    pub fn apply_config(&self, engine: &Engine, cfg: &crate::config::ReplConfig) {
        self.read_only
            .store(cfg.replica_read_only, Ordering::Release);
        self.min_to_write
            .store(cfg.min_replicas_to_write, Ordering::Release);
        self.max_lag
            .store(cfg.min_replicas_max_lag, Ordering::Release);
        engine
            .feed
            .resize(usize::try_from(cfg.repl_backlog_size).unwrap_or(usize::MAX));
    }

    /// Why a write must be refused now, if it must: `-READONLY` on a read-only replica,
    /// `-NOREPLICAS` on a master with fewer good replicas than `min-replicas-to-write`.
    pub fn check_write(&self) -> Result<(), crate::error::CommandError> {
        if self.is_replica() {
            if self.read_only.load(Ordering::Acquire) {
                return Err(crate::error::CommandError::ReadOnlyReplica);
            }
            return Ok(());
        }
        let min = self.min_to_write.load(Ordering::Acquire);
        let lag = self.max_lag.load(Ordering::Acquire);
        if min > 0 && lag > 0 && self.good_replicas(lag) < min as usize {
            return Err(crate::error::CommandError::NoReplicas);
        }
        Ok(())
    }

    /// True while this server replicates a master.
    pub fn is_replica(&self) -> bool {
        self.is_replica.load(Ordering::Acquire)
    }

    /// A copy of the role and ids.
    pub fn ids(&self) -> Ids {
        self.ids.lock().clone()
    }

    /// Replaces the ids (the replica link, after a sync).
    pub fn set_ids(&self, f: impl FnOnce(&mut Ids)) {
        f(&mut self.ids.lock());
    }

    /// Makes this server a replica of `master`, or a master (`None`). Returns false when
    /// nothing changed (already the replica of that master). Like Redis, a promoted replica
    /// keeps its old id as `replid2` (valid up to its current offset) so the other replicas of
    /// the old master can continue from it; a master that becomes a replica keeps its id and
    /// offset so it can ask its new master to continue. Attached replicas are disconnected
    /// either way (they reconnect and resync), and the link restarts.
    pub fn set_master(&self, engine: &Engine, master: Option<(String, u16)>) -> bool {
        let mut ids = self.ids.lock();
        if ids.master == master {
            return false;
        }
        let was_replica = ids.master.is_some();
        match (&master, was_replica) {
            (None, true) => {
                // Promotion: shift the id.
                let offset = engine.feed.offset();
                ids.replid2 = std::mem::replace(&mut ids.replid, random_id());
                ids.second_offset = i64::try_from(offset).unwrap_or(i64::MAX);
                if !engine.feed.info().active {
                    engine.feed.reset(offset);
                }
                engine.feed.activate();
                // Lease and reservation ids already continue above the master's (see
                // `note_ids`); the replica link's supervisor tracks the reservations' expiry
                // (it cannot be done here: inside EXEC this caller may hold shard locks).
            }
            (Some(_), false) => {
                // A master becoming a replica: its own writes stop feeding the stream; the
                // backlog (if any) stays, so it can continue from its new master.
                engine.feed.deactivate_local();
                self.replica_offset
                    .store(engine.feed.offset(), Ordering::Release);
            }
            _ => {}
        }
        ids.master = master.clone();
        self.is_replica.store(master.is_some(), Ordering::Release);
        drop(ids);
        {
            let mut link = self.link.lock();
            link.state = LinkState::Connect;
            link.down_since = Instant::now();
            link.transfer = None;
        }
        for r in self.replicas.lock().iter() {
            r.disconnect();
        }
        self.generation.send_modify(|g| *g += 1);
        true
    }

    /// Decides `PSYNC replid offset` (Redis's 1-based `offset`: the first byte wanted).
    pub fn decide_psync(&self, engine: &Engine, replid: &str, offset: i64) -> PsyncDecision {
        let ids = self.ids.lock();
        let from = u64::try_from(offset.saturating_sub(1)).ok();
        let asked = replid != "?";
        if let Some(from) = from.filter(|_| asked) {
            let same = replid == ids.replid;
            let previous =
                replid == ids.replid2 && i64::try_from(from).is_ok_and(|f| f <= ids.second_offset);
            if (same || previous) && engine.feed.holds(from) {
                return PsyncDecision::Continue {
                    replid: ids.replid.clone(),
                    from,
                };
            }
        }
        PsyncDecision::Full {
            partial_refused: asked,
        }
    }

    /// Registers a replica connection.
    pub fn register(&self, client_id: u64, ip: String, port: u16) -> Arc<Replica> {
        let r = Arc::new(Replica {
            client_id,
            ip,
            port: AtomicU32::new(u32::from(port)),
            ack_offset: AtomicU64::new(0),
            aof_offset: AtomicU64::new(0),
            ack_at: Mutex::new(Instant::now()),
            online: AtomicBool::new(false),
            kill: Notify::new(),
            killed: AtomicBool::new(false),
        });
        self.replicas.lock().push(r.clone());
        r
    }

    /// Removes a replica connection.
    pub fn unregister(&self, replica: &Arc<Replica>) {
        self.replicas.lock().retain(|r| !Arc::ptr_eq(r, replica));
        self.acks.notify_waiters();
    }

    /// Records an acknowledgement: the offset processed, and the offset fsynced to the
    /// replica's AOF when it reports one (`FACK`).
    pub fn ack(&self, replica: &Replica, offset: u64, fsynced: Option<u64>) {
        replica.ack_offset.fetch_max(offset, Ordering::AcqRel);
        if let Some(f) = fsynced {
            replica.aof_offset.fetch_max(f, Ordering::AcqRel);
        }
        *replica.ack_at.lock() = Instant::now();
        self.acks.notify_waiters();
    }

    /// Replicas online that acknowledged at least `offset`.
    pub fn count_acked(&self, offset: u64) -> usize {
        self.replicas
            .lock()
            .iter()
            .filter(|r| {
                r.online.load(Ordering::Acquire) && r.ack_offset.load(Ordering::Acquire) >= offset
            })
            .count()
    }

    /// Replicas online that reported `offset` fsynced to their AOF (`WAITAOF`).
    pub fn count_aof_acked(&self, offset: u64) -> usize {
        self.replicas
            .lock()
            .iter()
            .filter(|r| {
                r.online.load(Ordering::Acquire) && r.aof_offset.load(Ordering::Acquire) >= offset
            })
            .count()
    }

    /// Replicas online whose last acknowledgement is at most `max_lag` seconds old (Redis's
    /// "good replicas" for `min-replicas-to-write`).
    pub fn good_replicas(&self, max_lag: u32) -> usize {
        self.replicas
            .lock()
            .iter()
            .filter(|r| r.online.load(Ordering::Acquire) && r.lag_secs() <= u64::from(max_lag))
            .count()
    }

    /// Replicas online.
    pub fn online_replicas(&self) -> Vec<Arc<Replica>> {
        self.replicas
            .lock()
            .iter()
            .filter(|r| r.online.load(Ordering::Acquire))
            .cloned()
            .collect()
    }
}

/// Keeps the lease and reservation id source above the ids in `record` (a replica applying
/// its master's records), so a promoted replica never hands out an id its master used.
pub fn note_ids(engine: &Engine, record: &Record) {
    use crate::store::Value;
    let top = match record {
        Record::Put {
            value: Value::Lease(s),
            ..
        } => s.leases.iter().map(|l| l.id.0).max().unwrap_or(0),
        Record::Put {
            value: Value::Reservation(r),
            ..
        } => r.id.max(r.lease.map_or(0, |l| l.0)),
        _ => return,
    };
    engine
        .next_lease_id
        .fetch_max(top.saturating_add(1), Ordering::Relaxed);
}

/// A random 40-hex-digit replication id.
pub fn random_id() -> String {
    let mut bytes = [0u8; 20];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness: the time and address still make ids of different runs differ.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes[..16].copy_from_slice(&t.to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psync_continues_only_inside_the_backlog_of_a_known_history() {
        let engine = Engine::in_memory();
        let repl = Repl::new();
        engine.feed.activate();
        engine.feed.append(b"0123456789");
        let id = repl.ids().replid;
        assert_eq!(
            repl.decide_psync(&engine, &id, 4),
            PsyncDecision::Continue {
                replid: id.clone(),
                from: 3
            }
        );
        assert_eq!(
            repl.decide_psync(&engine, &id, 11),
            PsyncDecision::Continue {
                replid: id.clone(),
                from: 10
            },
            "nothing missed"
        );
        assert_eq!(
            repl.decide_psync(&engine, &id, 12),
            PsyncDecision::Full {
                partial_refused: true
            },
            "future offset"
        );
        assert_eq!(
            repl.decide_psync(&engine, "?", -1),
            PsyncDecision::Full {
                partial_refused: false
            }
        );
        assert_eq!(
            repl.decide_psync(&engine, NO_REPLID, 4),
            PsyncDecision::Full {
                partial_refused: true
            },
            "unknown history"
        );
    }

    #[test]
    fn promotion_keeps_the_old_id_as_replid2() {
        let engine = Engine::in_memory();
        let repl = Repl::new();
        assert!(repl.set_master(&engine, Some(("h".into(), 1))));
        assert!(
            !repl.set_master(&engine, Some(("h".into(), 1))),
            "same master"
        );
        engine.feed.reset(0);
        engine.feed.push_upstream(b"abcdef");
        let old = repl.ids().replid;
        assert!(repl.set_master(&engine, None));
        let ids = repl.ids();
        assert_eq!(ids.replid2, old);
        assert_eq!(ids.second_offset, 6);
        assert_ne!(ids.replid, old);
        // A sibling replica of the old master continues under the old id.
        assert!(matches!(
            repl.decide_psync(&engine, &old, 3),
            PsyncDecision::Continue { from: 2, .. }
        ));
        // The promoted master's own writes feed the stream now.
        assert!(engine.feed.is_active());
    }
}
