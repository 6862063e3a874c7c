//! limitkv: a rate-limiter server that speaks the Redis protocol.
//!
//! Module map (dependencies flow one way: server → cmd → store → limiter → clock;
//! `protocol`, `error` and `config` are leaves):
//! - [`cli`]: client subcommands of the binary (`limitkv top`), talking RESP to a server.
//! - [`acl`]: ACL users, rules, categories, the ACL file and `ACL LOG` (Redis 7 semantics).
//! - [`cli`]: subcommands of the binary that act on running servers (`limitkv cluster apply`).
//! - [`http`]: the HTTP listener (`http-port`): router, ACL authentication, health routes.
//! - [`server`]: sockets, the accept loop, connections, shutdown. The only networking code.
//! - [`cmd`]: the command table, argument parsing and every command family: parse, call the
//!   engine, render the reply.
//! - [`engine`]: limitkv as a library: the [`engine::Engine`] that owns the keyspace, clock,
//!   settings, policies, events and append-only file, with a typed method per operation.
//! - [`store`]: the lock-sharded keyspace with lazy and active expiry.
//! - [`limiter`]: pure limiter algorithms, `(params, state, now, cost) -> (decision, state)`.
//! - [`protocol`]: pure RESP2/RESP3 framing (decode requests, encode replies).
//! - [`clock`]: the injected time source.
//! - [`cluster`]: Redis Cluster's hash slots, the pushed topology and a node's routing state
//!   (pure; no cluster bus).
//! - [`config`]: every setting, from defaults, a config file and flags.
//! - [`error`]: every wire error text.
//! - [`metrics`]: counters for INFO.
//! - [`persist`]: the append-only file (records, writer thread, replay, rewrite, check).
//! - [`pubsub`]: the Pub/Sub registry and each connection's message queue (no sockets).
//! - [`glob`]: Redis's glob patterns (`KEYS`, `SCAN MATCH`, `PSUBSCRIBE`, ...).
//! - [`policy`]: policies (plans of rules decided atomically), overrides, access lists,
//!   reservations and policy events.
//! - [`script`]: the embedded Lua VM (sandbox, script cache, function libraries, RESP
//!   conversion) and the recognition of the library scripts answered natively; `cmd::script_run`
//!   runs scripts under the shard locks, `cmd::fastpath` runs the recognised ones natively.
//! - [`version`]: the Redis release limitkv follows (reported by `INFO`, `HELLO` and Lua).
//! - [`usage`]: the usage history: per-minute series per policy and per top identity (space-saving
//!   sketches), and its snapshot format. Pure.
//! - [`tls`]: the TLS port's rustls configuration (certificates, client verification), built
//!   from the `tls-*` settings and swapped by `CONFIG SET`; no sockets.
//! - [`webhook`]: the webhook delivery queue (bounded, never waited on) and the task that
//!   POSTs, signs and retries.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod acl;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod cmd;
pub mod config;
pub mod engine;
pub mod error;
pub mod glob;
pub mod http;
pub mod latency;
pub mod limiter;
pub mod metrics;
pub mod persist;
pub mod policy;
pub mod protocol;
pub mod pubsub;
pub mod repl;
pub mod script;
pub mod server;
pub mod store;
pub mod tls;
pub mod usage;
pub mod version;
pub mod webhook;
