//! The command table and dispatcher.
//!
//! Each family file declares a static list of [`CommandSpec`]s (wire name, arity, flags, key
//! positions, documentation and handler); this module only chains the lists, looks names up
//! case-insensitively, checks authentication and arity, and calls the handler. Handlers return
//! a [`Frame`]; a [`CommandError`] becomes one error line and the connection stays open.
//! Nothing here touches a socket.

pub mod acl;
pub mod admin;
pub mod args;
pub mod blocking;
pub mod breaker;
pub mod client_pause;
pub mod cluster;
pub mod config_cmd;
pub mod connection;
pub mod context;
pub mod cost;
pub mod counters;
pub mod db_move;
pub mod docs;
pub mod event_stream;
pub mod evict;
pub mod fastpath;
pub mod functions;
pub mod gcra;
pub mod hash_fields;
pub mod hashes;
pub mod info;
pub mod keys;
pub mod keyspace_events;
pub mod latency;
pub mod lease;
pub mod limiter;
pub mod list_edits;
pub mod lists;
pub mod longdouble;
pub mod memory;
pub mod memory_cmd;
pub mod monitor;
pub mod multi;
pub mod object;
pub mod permissions;
pub mod policy;
pub mod policy_admin;
pub mod pubsub;
pub mod pubsub_introspection;
pub mod quota;
pub mod rate;
pub mod repl;
pub mod sampling;
pub mod scan;
pub mod script_run;
pub mod scripting;
pub mod set_algebra;
pub mod sets;
pub mod slowlog;
pub mod sort;
pub mod stream_groups;
pub mod stream_info;
pub mod stream_read;
pub mod streams;
pub mod strings;
pub mod substrings;
pub mod suspend;
pub mod usage;
pub mod window;
pub mod zrange;
pub mod zset_algebra;
pub mod zset_pops;
pub mod zsets;

use std::collections::HashMap;
use std::sync::LazyLock;

use bytes::Bytes;

pub use context::{Blocked, ClientInfo, ClientRegistry, Ctx, ReplConf, Session, Shared};

use crate::error::CommandError;
use crate::protocol::Frame;

/// A command handler: gets the context and the whole request (name first).
pub type Handler = fn(&mut Ctx<'_>, &[Bytes]) -> Result<Frame, CommandError>;

/// Command flags (a bit set), named as `COMMAND INFO` reports them.
pub mod flags {
    /// May modify the keyspace.
    pub const WRITE: u32 = 1;
    /// Never modifies the keyspace.
    pub const READONLY: u32 = 1 << 1;
    /// May grow memory use.
    pub const DENYOOM: u32 = 1 << 2;
    /// Administrative.
    pub const ADMIN: u32 = 1 << 3;
    /// Pub/Sub related.
    pub const PUBSUB: u32 = 1 << 4;
    /// Not allowed from scripts.
    pub const NOSCRIPT: u32 = 1 << 5;
    /// Allowed while loading.
    pub const LOADING: u32 = 1 << 6;
    /// Allowed on a stale replica.
    pub const STALE: u32 = 1 << 7;
    /// O(1) or O(log N).
    pub const FAST: u32 = 1 << 8;
    /// Allowed before authentication.
    pub const NO_AUTH: u32 = 1 << 9;
    /// Key positions cannot be read from first/last/step.
    pub const MOVABLEKEYS: u32 = 1 << 10;
    /// Not allowed inside MULTI.
    pub const NO_MULTI: u32 = 1 << 11;
    /// Not propagated to MONITOR.
    pub const SKIP_MONITOR: u32 = 1 << 12;
    /// Not logged to the slow log.
    pub const SKIP_SLOWLOG: u32 = 1 << 13;
    /// Allowed while a script is busy.
    pub const ALLOW_BUSY: u32 = 1 << 14;
    /// May be called without any key (its keys are given by a count, possibly 0).
    pub const NO_MANDATORY_KEYS: u32 = 1 << 15;
    /// May block the client (`BLPOP`, ...; see `cmd::blocking`).
    pub const BLOCKING: u32 = 1 << 16;
    /// Internal (not reported): runs at once inside `MULTI` instead of being queued
    /// (`EXEC`, `DISCARD`, `MULTI`, `WATCH`, `QUIT`, `RESET`).
    pub const TX_CONTROL: u32 = 1 << 20;
    /// Internal (not reported): has no key arguments but reads or writes the whole keyspace
    /// (`KEYS`, `SCAN`, `DBSIZE`, `FLUSHALL`, `INFO`); `EXEC` then locks every shard.
    pub const KEYSPACE: u32 = 1 << 21;
    /// Internal (not reported): changes the selected database (`SELECT`); refused inside
    /// `MULTI` because a transaction holds the shards of one database.
    pub const SELECTS_DB: u32 = 1 << 22;
    /// Internal (not reported): allowed in a RESP2 connection's subscribed context
    /// (`(P|S)SUBSCRIBE`, `(P|S)UNSUBSCRIBE`, `PING`, `QUIT`, `RESET`).
    pub const PUBSUB_CONTEXT: u32 = 1 << 23;
    /// Internal (not reported): the key positions hold shard channels, not keys
    /// (`SSUBSCRIBE`, `SUNSUBSCRIBE`, `SPUBLISH`): their key specs say `not_key`, and
    /// `COMMAND GETKEYS` and `EXEC` ignore them.
    pub const NOT_KEY: u32 = 1 << 24;
    /// Internal (not reported): the arguments after the name are Pub/Sub channels that ACL
    /// channel rules check (for a fixed arity, all but the last: `PUBLISH channel message`).
    pub const CHANNELS: u32 = 1 << 25;
    /// Internal (not reported): with [`CHANNELS`], the channels are patterns (`PSUBSCRIBE`),
    /// which ACL rules match literally.
    pub const CHANNEL_PATTERNS: u32 = 1 << 26;

    /// Names in the order Redis prints them.
    pub const NAMES: &[(u32, &str)] = &[
        (WRITE, "write"),
        (READONLY, "readonly"),
        (DENYOOM, "denyoom"),
        (ADMIN, "admin"),
        (PUBSUB, "pubsub"),
        (NOSCRIPT, "noscript"),
        (BLOCKING, "blocking"),
        (LOADING, "loading"),
        (STALE, "stale"),
        (SKIP_MONITOR, "skip_monitor"),
        (SKIP_SLOWLOG, "skip_slowlog"),
        (FAST, "fast"),
        (NO_AUTH, "no_auth"),
        (NO_MANDATORY_KEYS, "no_mandatory_keys"),
        (NO_MULTI, "no_multi"),
        (MOVABLEKEYS, "movablekeys"),
        (ALLOW_BUSY, "allow_busy"),
    ];
}

/// One command (or subcommand) of the table.
#[derive(Debug)]
pub struct CommandSpec {
    /// Wire name in uppercase (for subcommands, the subcommand word alone).
    pub name: &'static str,
    /// Arity as Redis counts it: positive = exact (including the name), negative = minimum.
    pub arity: i32,
    /// Bit set of [`flags`].
    pub flags: u32,
    /// Position of the first key (0 = no keys).
    pub first_key: i32,
    /// Position of the last key (-1 = the last argument).
    pub last_key: i32,
    /// Step between keys.
    pub key_step: i32,
    /// Documentation group (`string`, `generic`, `connection`, `server`, `rate_limit`, ...).
    pub group: &'static str,
    /// One-line summary for `COMMAND DOCS`.
    pub summary: &'static str,
    /// Version that introduced the command (Redis's, or limitkv's for native ones).
    pub since: &'static str,
    /// Time complexity.
    pub complexity: &'static str,
    /// Argument grammar in the small language of [`docs`].
    pub args: &'static str,
    /// Subcommands, for container commands such as `CLIENT`.
    pub subcommands: &'static [CommandSpec],
    /// The handler.
    pub handler: Handler,
}

impl CommandSpec {
    /// True if `flag` is set.
    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    /// True if `argc` arguments (including the name) satisfy the arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = i64::try_from(argc).unwrap_or(i64::MAX);
        let arity = i64::from(self.arity);
        if arity >= 0 {
            argc == arity
        } else {
            argc >= -arity
        }
    }
}

/// A spec with the defaults most entries share; override fields with struct update syntax.
pub const BASE: CommandSpec = CommandSpec {
    name: "",
    arity: 1,
    flags: 0,
    first_key: 0,
    last_key: 0,
    key_step: 0,
    group: "generic",
    summary: "",
    since: "1.0.0",
    complexity: "O(1)",
    args: "",
    subcommands: &[],
    handler: |_, _| Err(CommandError::other("not implemented")),
};

/// The `HELP` subcommand of a container command, without its handler (each container
/// supplies the text with [`help_reply`]).
pub const HELP_SUBCOMMAND: CommandSpec = CommandSpec {
    name: "HELP",
    arity: 2,
    flags: flags::LOADING | flags::STALE,
    summary: "Returns helpful text about the different subcommands.",
    since: "5.0.0",
    ..BASE
};

/// Every family's spec list.
pub fn families() -> [&'static [CommandSpec]; 51] {
    [
        connection::COMMANDS,
        acl::COMMANDS,
        multi::COMMANDS,
        gcra::COMMANDS,
        admin::COMMANDS,
        info::COMMANDS,
        config_cmd::COMMANDS,
        keys::COMMANDS,
        object::COMMANDS,
        strings::COMMANDS,
        counters::COMMANDS,
        substrings::COMMANDS,
        rate::COMMANDS,
        window::COMMANDS,
        quota::COMMANDS,
        cost::COMMANDS,
        lease::COMMANDS,
        breaker::COMMANDS,
        zsets::COMMANDS,
        zrange::COMMANDS,
        hashes::COMMANDS,
        lists::COMMANDS,
        list_edits::COMMANDS,
        sets::COMMANDS,
        set_algebra::COMMANDS,
        sampling::COMMANDS,
        scan::COMMANDS,
        pubsub::COMMANDS,
        pubsub_introspection::COMMANDS,
        policy_admin::COMMANDS,
        policy::COMMANDS,
        scripting::COMMANDS,
        functions::COMMANDS,
        suspend::COMMANDS,
        usage::COMMANDS,
        cluster::COMMANDS,
        repl::COMMANDS,
        slowlog::COMMANDS,
        blocking::COMMANDS,
        zset_pops::COMMANDS,
        zset_algebra::COMMANDS,
        sort::COMMANDS,
        monitor::COMMANDS,
        latency::COMMANDS,
        memory_cmd::COMMANDS,
        hash_fields::COMMANDS,
        db_move::COMMANDS,
        streams::COMMANDS,
        stream_read::COMMANDS,
        stream_groups::COMMANDS,
        stream_info::COMMANDS,
    ]
}

struct Table {
    by_name: HashMap<&'static [u8], &'static CommandSpec, foldhash::fast::RandomState>,
}

static TABLE: LazyLock<Table> = LazyLock::new(|| {
    let mut by_name = HashMap::default();
    for family in families() {
        for spec in family {
            let previous = by_name.insert(spec.name.as_bytes(), spec);
            assert!(
                previous.is_none(),
                "invariant: {} is declared once",
                spec.name
            );
        }
    }
    Table { by_name }
});

/// Every command, sorted by name.
pub fn all_commands() -> Vec<&'static CommandSpec> {
    let mut v: Vec<_> = TABLE.by_name.values().copied().collect();
    v.sort_by_key(|s| s.name);
    v
}

/// Uppercases `name` into `buf` if it fits.
fn upper<'b>(name: &[u8], buf: &'b mut [u8; 32]) -> Option<&'b [u8]> {
    let out = buf.get_mut(..name.len())?;
    for (o, c) in out.iter_mut().zip(name) {
        *o = c.to_ascii_uppercase();
    }
    Some(out)
}

/// Finds a command by name, ignoring case.
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    let mut buf = [0u8; 32];
    TABLE.by_name.get(upper(name, &mut buf)?).copied()
}

/// [`lookup`] through the session's one-entry cache ([`Session::last_spec`]): a pipeline of one
/// command compares its name instead of uppercasing and hashing it for every request.
pub fn lookup_for(session: &mut Session, name: &[u8]) -> Option<&'static CommandSpec> {
    match session.last_spec {
        Some(last) if last.name.as_bytes().eq_ignore_ascii_case(name) => Some(last),
        _ => {
            let spec = lookup(name)?;
            session.last_spec = Some(spec);
            Some(spec)
        }
    }
}

/// Finds a subcommand of `parent` by name, ignoring case.
pub fn lookup_sub(parent: &'static CommandSpec, name: &[u8]) -> Option<&'static CommandSpec> {
    parent
        .subcommands
        .iter()
        .find(|s| s.name.as_bytes().eq_ignore_ascii_case(name))
}

/// The lowercase full name Redis uses in messages: `get`, `client|setname`.
pub fn full_name(parent: Option<&CommandSpec>, spec: &CommandSpec) -> String {
    match parent {
        Some(p) => format!(
            "{}|{}",
            p.name.to_ascii_lowercase(),
            spec.name.to_ascii_lowercase()
        ),
        None => spec.name.to_ascii_lowercase(),
    }
}

fn unknown_command(req: &[Bytes]) -> CommandError {
    let mut preview = String::new();
    for a in &req[1..] {
        if preview.len() >= 128 {
            break;
        }
        let room = 128 - preview.len();
        let s = String::from_utf8_lossy(a);
        let s: String = s.chars().take(room).collect();
        preview.push_str(&format!("'{s}' "));
    }
    let name: String = String::from_utf8_lossy(&req[0]).chars().take(128).collect();
    CommandError::UnknownCommand(name, preview)
}

/// The positions of `req`'s key arguments: a script's declared keys (`EVAL script numkeys
/// key...`), or the spec's first/last/step positions; none for channels in key positions
/// (`NOT_KEY`) and for keys derived by the handler (other `MOVABLEKEYS` commands).
pub fn key_positions(spec: &CommandSpec, req: &[Bytes]) -> impl Iterator<Item = usize> {
    let empty = || std::ops::RangeInclusive::new(1, 0);
    let none = empty().chain(empty()).step_by(1);
    if let Some(at) = numkeys_index(spec) {
        let n = counted_keys(req, at).len();
        // ZUNIONSTORE's destination, before the count.
        let fixed = match leading_keys(spec, req).len() {
            0 => empty(),
            k => spec.first_key as usize..=spec.first_key as usize + k - 1,
        };
        return fixed.chain(at + 1..=at + n).step_by(1);
    }
    if let Some(dst) = sort_store_index(spec, req) {
        return (1..=1).chain(dst..=dst).step_by(1);
    }
    if matches!(spec.name, "XREAD" | "XREADGROUP") {
        let r = stream_read::keys_range(req);
        if r.is_empty() {
            return none;
        }
        return empty().chain(r.start..=r.end - 1).step_by(1);
    }
    if spec.first_key <= 0 || spec.has(flags::NOT_KEY) || spec.has(flags::MOVABLEKEYS) {
        return none;
    }
    let len = req.len() as i64;
    let last = if spec.last_key < 0 {
        len + i64::from(spec.last_key)
    } else {
        i64::from(spec.last_key).min(len - 1)
    };
    let (Ok(first), Ok(last)) = (usize::try_from(spec.first_key), usize::try_from(last)) else {
        return none;
    };
    empty()
        .chain(first..=last)
        .step_by(usize::try_from(spec.key_step.max(1)).unwrap_or(1))
}

/// `SORT ... STORE destination`: the destination's position (SORT's other key is at 1).
fn sort_store_index(spec: &CommandSpec, req: &[Bytes]) -> Option<usize> {
    (spec.name == "SORT")
        .then(|| sort::store_index(req))
        .flatten()
}

/// Keys at positions the spec's first/last/step cannot express: SORT's `STORE` destination.
pub fn extra_keys<'r>(spec: &CommandSpec, req: &'r [Bytes]) -> &'r [Bytes] {
    match sort_store_index(spec, req) {
        Some(i) => &req[i..=i],
        None => &[],
    }
}

/// For commands whose keys follow a count (`EVAL script numkeys key...`, `SINTERCARD numkeys
/// key...`): the position of the count. Their key specs are Redis's `keynum` kind.
pub fn numkeys_index(spec: &CommandSpec) -> Option<usize> {
    if !spec.has(flags::MOVABLEKEYS) {
        return None;
    }
    match spec.group {
        "scripting" => Some(2),
        _ if matches!(
            spec.name,
            "SINTERCARD" | "LMPOP" | "ZMPOP" | "ZUNION" | "ZINTER" | "ZDIFF" | "ZINTERCARD"
        ) =>
        {
            Some(1)
        }
        _ if matches!(
            spec.name,
            "BLMPOP" | "BZMPOP" | "ZUNIONSTORE" | "ZINTERSTORE" | "ZDIFFSTORE"
        ) =>
        {
            Some(2)
        }
        _ => None,
    }
}

/// For a command whose keys follow a count: the keys at fixed positions before the count
/// (`ZUNIONSTORE destination numkeys key...`'s destination, at `first_key..=last_key`).
pub fn leading_keys<'r>(spec: &CommandSpec, req: &'r [Bytes]) -> &'r [Bytes] {
    match (
        usize::try_from(spec.first_key),
        usize::try_from(spec.last_key),
    ) {
        (Ok(first), Ok(last)) if first >= 1 && numkeys_index(spec).is_some() => {
            req.get(first..=last).unwrap_or(&[])
        }
        _ => &[],
    }
}

/// The keys after the count at `at` (none when the count is not a number of the arguments
/// that follow).
pub fn counted_keys(req: &[Bytes], at: usize) -> &[Bytes] {
    let Some(n) = req.get(at).and_then(|n| args::parse_i64(n)) else {
        return &[];
    };
    match usize::try_from(n) {
        Ok(n) if n < req.len().saturating_sub(at) => &req[at + 1..at + 1 + n],
        _ => &[],
    }
}

/// Redis's guard against cross-protocol scripting: a request named `POST` or `Host:` is an HTTP
/// request (a browser tricked by a web page, `curl`) whose body would otherwise run as commands
/// after one error per header line. The connection closes without a reply before anything else
/// is checked (authentication, `MULTI`, a busy script), as Redis's `processCommand` does.
pub fn is_http_request(req: &[Bytes]) -> bool {
    req.first().is_some_and(|name| {
        name.eq_ignore_ascii_case(b"POST") || name.eq_ignore_ascii_case(b"HOST:")
    })
}

/// Runs one request and returns its reply. `req` is never empty (the decoder drops empty
/// requests).
pub fn dispatch(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Frame {
    ctx.session.stats.commands += 1;
    let mut stage = Stage::NotRun;
    let reply = match run(ctx, req, &mut stage) {
        Ok(frame) => frame,
        Err(e) => e.to_frame(),
    };
    let failed = if let Frame::Error(message) = &reply {
        ctx.session.stats.errors += 1;
        ctx.session.stats.tally.error(message);
        true
    } else {
        false
    };
    // `INFO commandstats`, as Redis's `call()` counts: a command refused before it ran is a
    // rejected call, one that ran and answered an error a failed call.
    match stage {
        Stage::NotRun => {}
        Stage::Rejected(name) => ctx.session.stats.tally.entry(name).rejected += 1,
        Stage::Ran {
            name,
            nanos,
            allowed,
            denied,
        } => {
            let stat = ctx.session.stats.tally.entry(name);
            stat.record(nanos);
            stat.failed += u64::from(failed);
            stat.allowed += allowed;
            stat.denied += denied;
        }
    }
    reply
}

/// How far a request got, for `INFO commandstats`.
enum Stage {
    /// Unknown, or queued by `MULTI` (counted when `EXEC` runs it).
    NotRun,
    /// Refused before its handler ran.
    Rejected(crate::metrics::CommandName),
    /// Its handler ran for `nanos` and produced these limiter outcomes.
    Ran {
        name: crate::metrics::CommandName,
        nanos: u64,
        allowed: u64,
        denied: u64,
    },
}

fn run(ctx: &mut Ctx<'_>, req: &[Bytes], stage: &mut Stage) -> Result<Frame, CommandError> {
    let Some(spec) = lookup_for(ctx.session, &req[0]) else {
        if ctx.session.multi.is_some() {
            ctx.session.multi_error = true;
        }
        return Err(unknown_command(req));
    };
    *stage = Stage::Rejected((spec.name, None));
    // Redis checks the arity before authentication, and queues inside MULTI after both.
    if !spec.arity_ok(req.len()) {
        let err = CommandError::WrongArity(full_name(None, spec));
        return Err(reject(ctx, spec, err));
    }
    // For a container command the subcommand decides: an unknown one or a wrong arity is
    // reported before authentication, as for top-level commands.
    let mut checked = spec;
    if !spec.subcommands.is_empty() && req.len() >= 2 {
        let Some(sub) = lookup_sub(spec, &req[1]) else {
            // Redis counts an unknown subcommand as an unknown command: no statistics.
            *stage = Stage::NotRun;
            let err = CommandError::UnknownSubcommand(args::text(&req[1]), spec.name.to_owned());
            return Err(reject(ctx, spec, err));
        };
        *stage = Stage::Rejected((spec.name, Some(sub.name)));
        if !sub.arity_ok(req.len()) {
            let err = CommandError::WrongArity(full_name(Some(spec), sub));
            return Err(reject(ctx, spec, err));
        }
        checked = sub;
    }
    if !ctx.session.authenticated && !checked.has(flags::NO_AUTH) {
        return Err(reject(ctx, spec, CommandError::NoAuth));
    }
    permissions::refresh(ctx);
    // Redis's Pub/Sub context: a subscribed RESP2 connection may only (un)subscribe, PING,
    // QUIT or RESET (RESP3 multiplexes replies and pushes, so it may run anything). Commands
    // inside EXEC are not checked again, as in Redis.
    if ctx.session.pubsub_mode
        && ctx.session.resp == crate::protocol::RespVersion::Resp2
        && ctx.locked.is_none()
        && !checked.has(flags::PUBSUB_CONTEXT)
    {
        let name = if std::ptr::eq(checked, spec) {
            full_name(None, spec)
        } else {
            full_name(Some(spec), checked)
        };
        return Err(reject(ctx, spec, CommandError::SubscribedContext(name)));
    }
    // Redis marks a monitor as a replica, which may not touch the keyspace.
    if ctx.session.info.is_monitor()
        && ctx.locked.is_none()
        && (checked.has(flags::WRITE) || checked.has(flags::READONLY))
    {
        let err = CommandError::other("Replica can't interact with the keyspace");
        return Err(reject(ctx, spec, err));
    }
    if !ctx.session.user.selector.is_unrestricted() {
        // Queued in MULTI, or run by EXEC (which holds the transaction's shards): Redis checks
        // both times, in case the rules changed in between.
        let in_exec = ctx.locked.is_some();
        let context = if in_exec || ctx.session.multi.is_some() {
            crate::acl::LogContext::Multi
        } else {
            crate::acl::LogContext::Toplevel
        };
        if let Err(e) = permissions::check(ctx, spec, checked, req, context) {
            let e = if in_exec {
                permissions::exec_denial(&e)
            } else {
                e
            };
            return Err(reject(ctx, spec, e));
        }
    }
    // Cluster mode: redirect, or refuse cross-slot keys, before queueing or running (EXEC
    // checks its queue; commands inside EXEC were checked when queued). One branch when off.
    if ctx.shared.cluster.is_enabled() && ctx.locked.is_none() {
        // It flags (or, for EXEC, discards) the transaction itself, as Redis does.
        cluster::check(ctx, checked, req)?;
    }
    if checked.has(flags::DENYOOM) && ctx.shared.metrics.over_maxmemory() && !evict::make_room(ctx)
    {
        ctx.session.over_maxmemory = true;
        if !memory::may_run_over_maxmemory(ctx, checked, req) {
            return Err(reject(ctx, spec, CommandError::OutOfMemory));
        }
    } else {
        ctx.session.over_maxmemory = false;
    }
    if spec.has(flags::WRITE) {
        // Like Redis, before queueing: a refused write inside MULTI makes EXEC abort.
        if let Err(e) = ctx.shared.repl.check_write() {
            return Err(reject(ctx, spec, e));
        }
    }
    if ctx.session.multi.is_some() && !spec.has(flags::TX_CONTROL) {
        let queued = multi::queue(ctx, spec, req);
        if queued.is_ok() {
            *stage = Stage::NotRun;
        }
        return queued;
    }
    if spec.has(flags::WRITE) {
        if let Some(w) = ctx.shared.engine.aof.get() {
            // Like Redis: while the AOF cannot be written, writes are refused (MISCONF).
            w.check_writable()
                .map_err(|e| CommandError::Coded(e.to_string()))?;
        }
    }
    if !std::ptr::eq(ctx.session.last_cmd, spec.name) {
        // Only when the command changes, so a stream of one command takes no lock.
        ctx.session.last_cmd = spec.name;
        *ctx.session.info.last_cmd.lock() = spec.name;
    }
    let name = match *stage {
        Stage::Rejected(name) => name,
        _ => (spec.name, None),
    };
    let (allowed, denied) = (ctx.session.stats.allowed, ctx.session.stats.denied);
    // Script runners (`skip_monitor`) are shown before the commands they run, the others
    // after they ran (Redis 7.0's order: an EXEC's commands, then EXEC).
    let monitored = ctx.shared.monitors.is_active() && monitor::shown(checked);
    if monitored && checked.has(flags::SKIP_MONITOR) {
        monitor::feed(ctx, req, monitor::Origin::Client);
    }
    let started = std::time::Instant::now();
    let reply = keyspace_events::run_handler(ctx, spec, req);
    let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    if monitored && !checked.has(flags::SKIP_MONITOR) {
        monitor::feed(ctx, req, monitor::Origin::Client);
    }
    let event = if checked.has(flags::FAST) {
        "fast-command"
    } else {
        "command"
    };
    ctx.shared
        .engine
        .latency
        .sample(event, nanos, ctx.now.as_secs());
    slowlog::offer(ctx, spec, req, nanos);
    // Outcomes are a limiter command's own (EXEC and scripts run others, which count them).
    let own = spec.group == "rate_limit";
    *stage = Stage::Ran {
        name,
        nanos,
        allowed: ctx.session.stats.allowed.saturating_sub(allowed) * u64::from(own),
        denied: ctx.session.stats.denied.saturating_sub(denied) * u64::from(own),
    };
    reply
}

/// A command refused before it runs. Inside `MULTI` the transaction is marked failed; a refused
/// `EXEC` discards the transaction and answers `EXECABORT` with the reason, as Redis does.
pub(crate) fn reject(ctx: &mut Ctx<'_>, spec: &CommandSpec, err: CommandError) -> CommandError {
    if spec.name == "EXEC" {
        ctx.session.multi = None;
        ctx.session.multi_error = false;
        multi::unwatch_all(ctx.shared, ctx.session);
        let reason = err.to_string();
        let reason = reason.strip_prefix("ERR ").unwrap_or(&reason);
        return CommandError::Coded(format!(
            "EXECABORT Transaction discarded because of: {reason}"
        ));
    }
    if ctx.session.multi.is_some() {
        ctx.session.multi_error = true;
    }
    err
}

/// Dispatches a container command (`CLIENT`, `COMMAND`, `CONFIG`) to its subcommand.
///
/// The parent is found again from the request's own name, so container specs need not refer to
/// themselves.
pub fn dispatch_sub(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let parent = lookup(&req[0]).ok_or_else(|| unknown_command(req))?;
    let sub = lookup_sub(parent, &req[1]).ok_or_else(|| {
        CommandError::UnknownSubcommand(args::text(&req[1]), parent.name.to_owned())
    })?;
    if !ctx.session.authenticated && !sub.has(flags::NO_AUTH) {
        return Err(CommandError::NoAuth);
    }
    if !sub.arity_ok(req.len()) {
        return Err(CommandError::WrongArity(full_name(Some(parent), sub)));
    }
    (sub.handler)(ctx, req)
}

/// A reply of status lines, verbatim (for `HELP` texts that differ from [`help_reply`]'s).
pub fn help_lines(lines: &[&'static str]) -> Frame {
    Frame::Array(lines.iter().map(|l| Frame::simple(l)).collect())
}

/// Builds a `HELP` reply from lines of text.
pub fn help_reply(name: &str, lines: &[&str]) -> Frame {
    let mut out = vec![Frame::Simple(Bytes::from(format!(
        "{name} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
    )))];
    out.extend(
        lines
            .iter()
            .map(|l| Frame::Simple(Bytes::copy_from_slice(l.as_bytes()))),
    );
    out.push(Frame::simple("HELP"));
    out.push(Frame::simple("    Print this help."));
    Frame::Array(out)
}

/// Helpers for in-process command tests: run requests against a fresh server state.
pub mod testing {
    use std::sync::Arc;

    use super::*;
    use crate::clock::{Clock, ManualClock, Nanos};
    use crate::config::Config;
    use crate::protocol::RespVersion;
    use bytes::BytesMut;

    /// A server state on a manual clock plus one session, for running commands in-process.
    pub struct Harness {
        /// Shared state.
        pub shared: Arc<Shared>,
        /// The manual clock driving `shared`.
        pub clock: Arc<ManualClock>,
        /// The one session.
        pub session: Session,
    }

    impl Harness {
        /// Default config, clock at 2026-01-01T00:00:00Z.
        pub fn new() -> Harness {
            Harness::with_config(Config::default())
        }

        /// A harness with `config`.
        pub fn with_config(config: Config) -> Harness {
            let clock = Arc::new(ManualClock::new(Nanos::from_secs(1_767_225_600)));
            let shared = Arc::new(Shared::new(config, clock.clone() as Arc<dyn Clock>));
            let info = Arc::new(ClientInfo::new(
                shared.clients.next_id(),
                "127.0.0.1:50000".into(),
                "127.0.0.1:6379".into(),
            ));
            shared.clients.register(info.clone());
            let session = Session::new(info, &shared.acl);
            Harness {
                shared,
                clock,
                session,
            }
        }

        /// Runs one command given as words. A [`Frame::Fields`] reply comes back as the
        /// [`Frame::Map`] it stands for, after checking that both encode to the same bytes in
        /// RESP2 and RESP3.
        pub fn run(&mut self, words: &[&str]) -> Frame {
            let req: Vec<Bytes> = words
                .iter()
                .map(|w| Bytes::copy_from_slice(w.as_bytes()))
                .collect();
            let now = self.shared.engine.clock.now();
            let reply = dispatch(&mut Ctx::new(&self.shared, &mut self.session, now), &req);
            let maps = reply.clone().into_maps();
            for v in [RespVersion::Resp2, RespVersion::Resp3] {
                let (mut a, mut b) = (BytesMut::new(), BytesMut::new());
                crate::protocol::encode(&reply, v, &mut a);
                crate::protocol::encode(&maps, v, &mut b);
                assert_eq!(
                    a, b,
                    "{words:?}: fields and map encode differently in {v:?}"
                );
            }
            maps
        }

        /// Another client of the same server (same state and clock, its own session).
        pub fn peer(&self) -> Harness {
            let info = Arc::new(ClientInfo::new(
                self.shared.clients.next_id(),
                "127.0.0.1:50001".into(),
                "127.0.0.1:6379".into(),
            ));
            self.shared.clients.register(info.clone());
            Harness {
                shared: self.shared.clone(),
                clock: self.clock.clone(),
                session: Session::new(info, &self.shared.acl),
            }
        }

        /// The manual clock's reading.
        pub fn clock_now(&self) -> Nanos {
            self.shared.engine.clock.now()
        }

        /// The manual clock's reading in milliseconds.
        pub fn clock_ms(&self) -> u64 {
            self.shared.engine.clock.now().as_millis()
        }
    }

    impl Default for Harness {
        fn default() -> Self {
            Harness::new()
        }
    }

    /// `+text`.
    pub fn simple(s: &str) -> Frame {
        Frame::Simple(Bytes::copy_from_slice(s.as_bytes()))
    }

    /// `$text`.
    pub fn bulk(s: &str) -> Frame {
        Frame::bulk(s)
    }

    /// `-text`.
    pub fn err(s: &str) -> Frame {
        Frame::error(s)
    }

    /// `:n`.
    pub fn int(n: i64) -> Frame {
        Frame::Integer(n)
    }

    /// Redis's WRONGTYPE error text.
    pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

    /// The value of `name` in a map reply (panics naming the field when it is missing).
    pub fn get(f: &Frame, name: &str) -> Frame {
        let Frame::Map(m) = f else {
            panic!("not a map: {f:?}")
        };
        m.iter()
            .find(|(k, _)| *k == bulk(name))
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {name} in {f:?}"))
    }

    /// Unix milliseconds of an RFC 3339 instant.
    pub fn unix_ms(s: &str) -> i64 {
        let ts: jiff::Timestamp = s.parse().expect("valid RFC 3339 in the test");
        ts.as_millisecond()
    }

    /// Sets the harness's clock to an RFC 3339 instant.
    pub fn set_clock(h: &Harness, s: &str) {
        h.clock.set(Nanos::from_millis(
            u64::try_from(unix_ms(s)).expect("after 1970"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn lookup_ignores_case() {
        assert!(lookup(b"get").is_some());
        assert!(lookup(b"GeT").is_some());
        assert!(lookup(b"nope").is_none());
        assert!(lookup(&[b'a'; 40]).is_none());
    }

    #[test]
    fn unknown_command_lists_its_arguments_like_redis() {
        let mut h = Harness::new();
        assert_eq!(
            h.run(&["foo", "a", "b"]),
            err("ERR unknown command 'foo', with args beginning with: 'a' 'b' ")
        );
        assert_eq!(
            h.run(&["foo"]),
            err("ERR unknown command 'foo', with args beginning with: ")
        );
    }

    #[test]
    fn arity_is_checked_before_the_handler() {
        let mut h = Harness::new();
        assert_eq!(
            h.run(&["GET"]),
            err("ERR wrong number of arguments for 'get' command")
        );
        assert_eq!(
            h.run(&["client", "setname"]),
            err("ERR wrong number of arguments for 'client|setname' command")
        );
    }

    #[test]
    fn every_spec_has_docs_and_consistent_keys() {
        for spec in all_commands() {
            assert!(!spec.summary.is_empty(), "{} lacks a summary", spec.name);
            assert!(
                spec.has(flags::WRITE) as u8 + spec.has(flags::READONLY) as u8 <= 1,
                "{} is both write and readonly",
                spec.name
            );
            if spec.first_key > 0 {
                assert!(spec.key_step > 0, "{} has keys but no step", spec.name);
            }
            docs::parse_args(spec.args)
                .unwrap_or_else(|e| panic!("{}: bad args grammar: {e}", spec.name));
            for sub in spec.subcommands {
                assert!(
                    !sub.summary.is_empty(),
                    "{}|{} lacks a summary",
                    spec.name,
                    sub.name
                );
                docs::parse_args(sub.args).unwrap_or_else(|e| {
                    panic!("{}|{}: bad args grammar: {e}", spec.name, sub.name)
                });
            }
        }
    }
}
