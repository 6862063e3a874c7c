//! The engine: limitkv as a library. One [`Engine`] owns the keyspace, the clock, the
//! settings, the policies, the event bus (Pub/Sub) and the append-only file; every surface
//! (the RESP commands in `cmd`, the HTTP routes in `http`, a Rust program embedding limitkv)
//! decides requests through it, so the same request gets the same answer on every surface.
//!
//! Two ways in:
//! - the typed methods on [`Engine`] ([`Engine::throttle`], [`Engine::rate`], ...,
//!   [`Engine::check`]): one call, the engine's clock, database 0, durable before they return
//!   under `appendfsync always`. This is the embedding API.
//! - a [`Call`]: one command's view of the engine (database, `now`, the shards an `EXEC`
//!   already holds, where its counts and AOF position go). The RESP commands build one per
//!   command and call the same family methods the typed methods call ([`Call::throttle`],
//!   ...); nothing is decided twice.
//!
//! ```
//! use limitkv::engine::Engine;
//! use limitkv::limiter::gcra::GcraParams;
//!
//! let engine = Engine::in_memory();
//! // redis-cell's `CL.THROTTLE user:1 4 1 60`: a burst of 5, then one per minute.
//! let params = GcraParams::from_cell(4, 1, 60).unwrap();
//! for _ in 0..5 {
//!     assert!(engine.throttle(b"user:1", &params, 1).unwrap().allowed);
//! }
//! assert!(!engine.throttle(b"user:1", &params, 1).unwrap().allowed);
//! ```
//!
//! Policies (named plans of rules, [`crate::policy`]) go through the engine the same way:
//! [`Engine::check`], [`Engine::reserve`], [`Engine::settle`], [`Engine::policy_set`], ... run
//! the [`Call`] steps of [`check`] (plan: resolve the rules and derive their keys; execute:
//! decide and charge atomically) and [`settle`], which the `LIMIT.*` commands run with an ACL
//! check of the planned keys in between.
//!
//! Depends on `store`, `persist`, `policy`, `limiter`, `pubsub`, `webhook`, `config`, `clock`; never on
//! `cmd`, `server`, `http` or `script`. The usage history's data structures are [`crate::usage`];
//! [`usage`] feeds and saves them.

mod api;
mod call;
mod catalog;
pub mod check;
mod cluster_keys;
mod error;
pub mod events;
pub mod families;
pub mod notify;
mod open;
mod policy_api;
mod rules;
pub mod settle;
#[cfg(test)]
mod tests;
pub mod usage;

use std::sync::atomic::{AtomicU32, AtomicU64};
use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::persist::{Feed, Writer};
use crate::policy::Registry;
use crate::pubsub::PubSub;
use crate::store::Store;

pub use crate::policy::reserve::ReservationId;
pub use call::Call;
pub use check::{CheckKind, CheckOutcome, CheckPlan, CheckRequest, RuleReport};
pub use error::Error;
pub use families::{Take, Write};
pub use settle::{Actual, Settled, SettledRule};

/// The limiter store: keyspace, clock, settings, policies, events and persistence.
pub struct Engine {
    /// The databases (`SELECT` picks one), each a sharded keyspace.
    pub dbs: Box<[Store]>,
    /// The one clock.
    pub clock: Arc<dyn Clock>,
    /// Live configuration (`CONFIG SET` writes it).
    pub config: RwLock<Config>,
    /// The append-only file's writer, when `appendonly` is on (set once at start).
    pub aof: OnceLock<Arc<Writer>>,
    /// The latency monitor (`LATENCY`), shared with the append-only file's writer.
    pub latency: Arc<crate::latency::LatencyMonitor>,
    /// The replication stream of the same effect records, with its backlog (inactive until
    /// a replica attaches or this server replicates another).
    pub feed: Feed,
    /// Source of lease and reservation ids: starts at the start time in microseconds, so ids
    /// stay unique across restarts, and only grows.
    pub next_lease_id: AtomicU64,
    /// Pub/Sub subscriptions and delivery (`PUBLISH`, and the engine's events).
    pub pubsub: Arc<PubSub>,
    /// The `notify-keyspace-events` bits in force, 0 when nothing would be published
    /// (shared with each database's expiry listener; see [`notify`]).
    pub notify: Arc<AtomicU32>,
    /// Policies, overrides, access lists, policy events and pending reservations.
    pub policies: Registry,
    /// The usage history (`LIMIT.TOP`, `LIMIT.HISTORY`, the dashboard).
    pub usage: usage::Usage,
    /// The webhook delivery queue (the server runs [`crate::webhook::deliver::run`] on it).
    pub webhooks: Arc<crate::webhook::Webhooks>,
    /// Rule keys carry the identity's hash tag (`cluster-enabled yes`, fixed at start; see
    /// [`crate::policy::model::tagged_state_key`] and `Engine::retag_rule_keys`).
    pub cluster_keys: bool,
    /// Events waiting for the `events-stream` key (see [`events::StreamEvents`]).
    pub stream_events: events::StreamEvents,
}

impl Engine {
    /// A fresh engine for `config` (its `databases`, `shards` and policy settings), reading
    /// time from `clock`. Nothing is loaded or started: see [`Engine::open`].
    pub fn new(config: Config, clock: Arc<dyn Clock>) -> Engine {
        let now = clock.now();
        let pubsub = Arc::new(PubSub::new(
            config.client_output_buffer_limit.pubsub,
            clock.clone(),
        ));
        let notify = Arc::new(AtomicU32::new(0));
        let flags = config.notify_keyspace_events;
        let engine = Engine {
            latency: Arc::new(crate::latency::LatencyMonitor::new(
                config.latency_monitor_threshold,
            )),
            cluster_keys: config.cluster_enabled,
            stream_events: events::StreamEvents::default(),
            dbs: (0..config.databases.max(1))
                .map(|db| {
                    let store = Store::new(config.shards);
                    store.set_expiry_listener(Arc::new(notify::ExpiredNotifier {
                        db,
                        flags: notify.clone(),
                        pubsub: pubsub.clone(),
                    }));
                    store
                })
                .collect(),
            pubsub,
            notify,
            usage: usage::Usage::new(config.usage_history, config.usage_history_identities),
            config: RwLock::new(config),
            clock,
            aof: OnceLock::new(),
            feed: Feed::default(),
            next_lease_id: AtomicU64::new(now.as_nanos() / 1000),
            policies: Registry::default(),
            webhooks: Arc::new(crate::webhook::Webhooks::new(now)),
        };
        engine.set_notify_flags(flags);
        engine
    }

    /// An in-memory engine with the default settings on the system clock.
    pub fn in_memory() -> Engine {
        Engine::new(Config::default(), Arc::new(SystemClock))
    }

    /// Keys expired since start, over every database.
    pub fn expired_total(&self) -> u64 {
        self.dbs.iter().map(Store::expired_total).sum()
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("databases", &self.dbs.len())
            .field("appendonly", &self.aof.get().is_some())
            .finish_non_exhaustive()
    }
}
