//! Server commands: COMMAND, INFO, CONFIG, DBSIZE, FLUSHDB, FLUSHALL, TIME, SHUTDOWN.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::args::{self, is};
use super::docs::{docs_frame, info_frame};
use super::flags::*;
use super::keys::glob_match;
use super::{
    all_commands, dispatch_sub, help_reply, lookup, lookup_sub, CommandSpec, Ctx, BASE,
    HELP_SUBCOMMAND,
};
use crate::config::Config;
use crate::error::CommandError;
use crate::metrics::get;
use crate::persist::Record;
use crate::protocol::Frame;
use crate::pubsub::ChannelKind;
use crate::version::REDIS_COMPAT_VERSION;

/// Server commands.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "COMMAND",
        arity: -1,
        flags: LOADING | STALE,
        group: "server",
        summary: "Returns detailed information about all commands.",
        since: "2.8.13",
        complexity: "O(N) where N is the total number of commands",
        subcommands: COMMAND_SUBCOMMANDS,
        handler: |ctx, req| {
            if req.len() == 1 {
                Ok(Frame::Array(
                    all_commands()
                        .into_iter()
                        .map(|s| info_frame(None, s))
                        .collect(),
                ))
            } else {
                dispatch_sub(ctx, req)
            }
        },
        ..BASE
    },
    CommandSpec {
        name: "INFO",
        arity: -1,
        flags: LOADING | STALE | KEYSPACE,
        group: "server",
        summary: "Returns information and statistics about the server.",
        complexity: "O(1)",
        args: "[section:string...]",
        handler: info,
        ..BASE
    },
    CommandSpec {
        name: "CONFIG",
        arity: -2,
        flags: 0,
        group: "server",
        summary: "A container for server configuration commands.",
        since: "2.0.0",
        complexity: "Depends on subcommand.",
        subcommands: CONFIG_SUBCOMMANDS,
        handler: dispatch_sub,
        ..BASE
    },
    CommandSpec {
        name: "DBSIZE",
        arity: 1,
        flags: READONLY | FAST | KEYSPACE,
        group: "server",
        summary: "Returns the number of keys in the database.",
        handler: |ctx, _| {
            let mut n = 0;
            for i in 0..ctx.shard_count() {
                n += ctx.with_shard_at(i, |s| s.len());
            }
            Ok(Frame::Integer(n as i64))
        },
        ..BASE
    },
    CommandSpec {
        name: "FLUSHDB",
        arity: -1,
        flags: WRITE | KEYSPACE,
        group: "server",
        summary: "Removes all keys from the current database.",
        complexity: "O(N) where N is the number of keys in the selected database",
        args: "[ASYNC|SYNC]",
        handler: |ctx, req| flush(ctx, req, false),
        ..BASE
    },
    CommandSpec {
        name: "FLUSHALL",
        arity: -1,
        flags: WRITE | KEYSPACE | NO_MULTI,
        group: "server",
        summary: "Removes all keys from all databases.",
        complexity: "O(N) where N is the total number of keys in all databases",
        args: "[ASYNC|SYNC]",
        handler: |ctx, req| flush(ctx, req, true),
        ..BASE
    },
    CommandSpec {
        name: "TIME",
        arity: 1,
        flags: LOADING | STALE | FAST,
        group: "server",
        summary: "Returns the server time.",
        since: "2.6.0",
        handler: |ctx, _| {
            let ns = ctx.now.as_nanos();
            Ok(Frame::Array(vec![
                Frame::Bulk(Bytes::from((ns / 1_000_000_000).to_string())),
                Frame::Bulk(Bytes::from((ns % 1_000_000_000 / 1000).to_string())),
            ]))
        },
        ..BASE
    },
    CommandSpec {
        name: "BGREWRITEAOF",
        arity: 1,
        flags: ADMIN | NOSCRIPT | NO_MULTI,
        group: "server",
        summary: "Compacts the append-only file in the background, without blocking clients.",
        complexity: "O(N) where N is the number of keys",
        handler: |ctx, _| {
            let Some(aof) = ctx.shared.engine.aof.get() else {
                return Err(CommandError::other(
                    "Append only file is disabled (start with --appendonly yes)",
                ));
            };
            if aof.stats().rewrite_in_progress
                || ctx.shared.rewrite_requested.swap(true, Ordering::SeqCst)
            {
                return Err(CommandError::other(
                    "Background append only file rewriting already in progress",
                ));
            }
            Ok(Frame::simple(
                "Background append only file rewriting scheduled",
            ))
        },
        ..BASE
    },
    CommandSpec {
        name: "SHUTDOWN",
        arity: -1,
        flags: ADMIN | NOSCRIPT | LOADING | STALE | NO_MULTI | ALLOW_BUSY,
        group: "server",
        summary:
            "Stops the server gracefully: stops accepting, finishes replies in flight and exits.",
        complexity: "O(N) when saving, where N is the total number of keys in all databases",
        args: "[NOSAVE|SAVE] [NOW] [FORCE] [ABORT]",
        handler: shutdown,
        ..BASE
    },
];

const COMMAND_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "COUNT",
        arity: 2,
        flags: LOADING | STALE,
        summary: "Returns a count of commands.",
        since: "2.8.13",
        handler: |_, _| Ok(Frame::Integer(all_commands().len() as i64)),
        ..BASE
    },
    CommandSpec {
        name: "LIST",
        arity: -2,
        flags: LOADING | STALE,
        summary: "Returns a list of command names.",
        since: "7.0.0",
        complexity: "O(N) where N is the total number of Redis commands",
        args:
            "[FILTERBY (MODULE module-name:string|ACLCAT category:string|PATTERN pattern:pattern)]",
        handler: command_list,
        ..BASE
    },
    CommandSpec {
        name: "INFO",
        arity: -2,
        flags: LOADING | STALE,
        summary: "Returns information about one, multiple or all commands.",
        since: "2.8.13",
        complexity: "O(N) where N is the number of commands to look up",
        args: "[command-name:string...]",
        handler: command_info,
        ..BASE
    },
    CommandSpec {
        name: "DOCS",
        arity: -2,
        flags: LOADING | STALE,
        summary: "Returns documentary information about one, multiple or all commands.",
        since: "7.0.0",
        complexity: "O(N) where N is the number of commands to look up",
        args: "[command-name:string...]",
        handler: command_docs,
        ..BASE
    },
    CommandSpec {
        name: "GETKEYS",
        arity: -3,
        flags: LOADING | STALE,
        summary: "Extracts the key names from an arbitrary command.",
        since: "2.8.13",
        complexity: "O(N) where N is the number of arguments to the command",
        args: "command:string arg:string...",
        handler: command_getkeys,
        ..BASE
    },
    CommandSpec {
        handler: |_, _| {
            Ok(help_reply(
                "COMMAND",
                &[
                    "(no subcommand)",
                    "    Return details about all commands.",
                    "COUNT",
                    "    Return the total number of commands.",
                    "LIST [FILTERBY (MODULE <module-name>|ACLCAT <category>|PATTERN <pattern>)]",
                    "    Return a list of all commands, optionally filtered.",
                    "INFO [<command-name> ...]",
                    "    Return details about the named commands.",
                    "DOCS [<command-name> ...]",
                    "    Return documentation about the named commands.",
                    "GETKEYS <full-command>",
                    "    Return the keys from a full command.",
                ],
            ))
        },
        ..HELP_SUBCOMMAND
    },
];

const CONFIG_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "GET",
        arity: -3,
        flags: ADMIN | NOSCRIPT | LOADING | STALE,
        summary: "Returns the effective values of configuration parameters.",
        since: "2.0.0",
        complexity: "O(N) when N is the number of configuration parameters provided",
        args: "parameter:string...",
        handler: config_get,
        ..BASE
    },
    CommandSpec {
        name: "SET",
        arity: -4,
        flags: ADMIN | NOSCRIPT | LOADING | STALE,
        summary: "Sets configuration parameters in-flight.",
        since: "2.0.0",
        complexity: "O(N) when N is the number of configuration parameters provided",
        args: "data=(parameter:string value:string)...",
        handler: config_set,
        ..BASE
    },
    CommandSpec {
        name: "RESETSTAT",
        arity: 2,
        flags: ADMIN | NOSCRIPT | LOADING | STALE,
        summary: "Resets the server's statistics.",
        since: "2.0.0",
        handler: |ctx, _| {
            ctx.shared.metrics.reset();
            ctx.shared.engine.pubsub.reset_stats();
            Ok(Frame::OK)
        },
        ..BASE
    },
    CommandSpec {
        handler: |_, _| {
            Ok(help_reply(
                "CONFIG",
                &[
                    "GET <pattern>",
                    "    Return parameters matching the glob-like <pattern> and their values.",
                    "SET <directive> <value>",
                    "    Set the configuration <directive> to <value>.",
                    "RESETSTAT",
                    "    Reset statistics reported by the INFO command.",
                ],
            ))
        },
        ..HELP_SUBCOMMAND
    },
];

fn command_list(_ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    enum Filter {
        None,
        Module,
        AclCat(String),
        Pattern(Bytes),
    }
    let filter = match req.len() {
        2 => Filter::None,
        5 if is(&req[2], "FILTERBY") => {
            if is(&req[3], "MODULE") {
                Filter::Module
            } else if is(&req[3], "ACLCAT") {
                Filter::AclCat(format!("@{}", args::text(&req[4]).to_ascii_lowercase()))
            } else if is(&req[3], "PATTERN") {
                Filter::Pattern(req[4].clone())
            } else {
                return Err(CommandError::Syntax);
            }
        }
        _ => return Err(CommandError::Syntax),
    };
    let mut names = Vec::new();
    for spec in all_commands() {
        let info = info_frame(None, spec);
        let mut entries = vec![(spec.name.to_ascii_lowercase(), info)];
        for sub in spec.subcommands {
            entries.push((
                super::full_name(Some(spec), sub),
                info_frame(Some(spec), sub),
            ));
        }
        for (name, info) in entries {
            let keep = match &filter {
                Filter::None => true,
                Filter::Module => false,
                Filter::Pattern(p) => glob_match(p, name.as_bytes()),
                Filter::AclCat(cat) => match &info {
                    Frame::Array(fields) => matches!(&fields[6], Frame::Set(cats)
                        if cats.iter().any(|c| matches!(c, Frame::Simple(s) if s.as_ref() == cat.as_bytes()))),
                    _ => false,
                },
            };
            if keep {
                names.push(Frame::Bulk(Bytes::from(name)));
            }
        }
    }
    Ok(Frame::Array(names))
}

/// Finds `name` or `parent|sub`.
fn find(name: &[u8]) -> Option<(Option<&'static CommandSpec>, &'static CommandSpec)> {
    if let Some(pos) = name.iter().position(|&b| b == b'|') {
        let parent = lookup(&name[..pos])?;
        return Some((Some(parent), lookup_sub(parent, &name[pos + 1..])?));
    }
    Some((None, lookup(name)?))
}

fn command_info(_ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    if req.len() == 2 {
        return Ok(Frame::Array(
            all_commands()
                .into_iter()
                .map(|s| info_frame(None, s))
                .collect(),
        ));
    }
    Ok(Frame::Array(
        req[2..]
            .iter()
            .map(|n| find(n).map_or(Frame::Null, |(p, s)| info_frame(p, s)))
            .collect(),
    ))
}

fn command_docs(_ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let mut out = Vec::new();
    if req.len() == 2 {
        for s in all_commands() {
            out.push((
                Frame::bulk(s.name.to_ascii_lowercase()),
                docs_frame(None, s),
            ));
        }
    } else {
        for n in &req[2..] {
            if let Some((p, s)) = find(n) {
                out.push((Frame::bulk(super::full_name(p, s)), docs_frame(p, s)));
            }
        }
    }
    Ok(Frame::Map(out))
}

fn command_getkeys(_ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let cmd = &req[2..];
    let Some(mut spec) = lookup(&cmd[0]) else {
        return Err(CommandError::other("Invalid command specified"));
    };
    if !spec.subcommands.is_empty() && cmd.len() > 1 {
        if let Some(sub) = lookup_sub(spec, &cmd[1]) {
            spec = sub;
        }
    }
    if !spec.arity_ok(cmd.len()) {
        return Err(CommandError::other(
            "Invalid number of arguments specified for command",
        ));
    }
    if let Some(at) = super::numkeys_index(spec) {
        let keys = super::counted_keys(cmd, at);
        return Ok(Frame::Array(
            keys.iter().cloned().map(Frame::Bulk).collect(),
        ));
    }
    if spec.first_key <= 0 || spec.has(NOT_KEY) {
        return Err(CommandError::other("The command has no key arguments"));
    }
    let last = if spec.last_key < 0 {
        cmd.len() as i64 + i64::from(spec.last_key)
    } else {
        i64::from(spec.last_key)
    };
    let mut keys = Vec::new();
    let mut i = i64::from(spec.first_key);
    while i <= last && (i as usize) < cmd.len() {
        keys.push(Frame::Bulk(cmd[i as usize].clone()));
        i += i64::from(spec.key_step);
    }
    Ok(Frame::Array(keys))
}

/// Every parameter `CONFIG GET` knows, with its current value.
fn config_params(cfg: &Config, port: u32) -> Vec<(&'static str, String)> {
    let dir = std::fs::canonicalize(&cfg.dir)
        .unwrap_or_else(|_| cfg.dir.clone())
        .display()
        .to_string();
    let mut params = vec![
        ("port", port.to_string()),
        ("bind", cfg.bind.join(" ")),
        ("maxclients", cfg.maxclients.to_string()),
        ("requirepass", cfg.requirepass.clone().unwrap_or_default()),
        (
            "aclfile",
            cfg.aclfile
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        ),
        ("acllog-max-len", cfg.acllog_max_len.to_string()),
        (
            "protected-mode",
            if cfg.protected_mode { "yes" } else { "no" }.to_owned(),
        ),
        ("loglevel", cfg.loglevel.name().to_owned()),
        ("hz", cfg.hz.to_string()),
        ("timeout", cfg.timeout.to_string()),
        ("proto-max-bulk-len", cfg.proto_max_bulk_len.to_string()),
        ("max-multibulk-len", cfg.max_multibulk_len.to_string()),
        ("shards", cfg.shards.to_string()),
        ("threads", cfg.threads.to_string()),
        ("active-expire-budget", cfg.active_expire_budget.to_string()),
        ("databases", cfg.databases.to_string()),
        ("save", String::new()),
        (
            "appendonly",
            if cfg.appendonly { "yes" } else { "no" }.to_owned(),
        ),
        ("appendfsync", cfg.appendfsync.name().to_owned()),
        ("appendfilename", crate::persist::AOF_FILE.to_owned()),
        (
            "aof-load-truncated",
            if cfg.aof_load_truncated { "yes" } else { "no" }.to_owned(),
        ),
        ("aof-preallocate", cfg.aof_preallocate.to_string()),
        (
            "auto-aof-rewrite-percentage",
            cfg.auto_aof_rewrite_percentage.to_string(),
        ),
        (
            "auto-aof-rewrite-min-size",
            cfg.auto_aof_rewrite_min_size.to_string(),
        ),
        ("dir", dir),
        ("busy-reply-threshold", cfg.busy_reply_threshold.to_string()),
        ("lua-time-limit", cfg.busy_reply_threshold.to_string()),
        ("maxmemory", "0".to_owned()),
        ("maxmemory-policy", "noeviction".to_owned()),
        ("cluster-enabled", "no".to_owned()),
        ("notify-keyspace-events", String::new()),
        (
            "client-output-buffer-limit",
            cfg.client_output_buffer_limit.render(),
        ),
        (
            "client-query-buffer-limit",
            cfg.client_query_buffer_limit.to_string(),
        ),
        (
            "policy-events-allowed-sample",
            crate::limiter::cost::Amount(i64::from(cfg.policy_events_sample_ppm)).to_string(),
        ),
        ("tls-port", cfg.tls_port.to_string()),
        ("http-port", cfg.http_port.to_string()),
        (
            "http-tls",
            if cfg.http_tls { "yes" } else { "no" }.to_owned(),
        ),
        ("tls-cert-file", path_or_empty(&cfg.tls_cert_file)),
        ("tls-key-file", path_or_empty(&cfg.tls_key_file)),
        ("tls-ca-cert-file", path_or_empty(&cfg.tls_ca_cert_file)),
        ("tls-ca-cert-dir", path_or_empty(&cfg.tls_ca_cert_dir)),
        ("tls-auth-clients", cfg.tls_auth_clients.name().to_owned()),
        ("tls-protocols", cfg.tls_protocols.clone()),
    ];
    params.extend(cfg.encoding.params());
    params
}

fn path_or_empty(path: &Option<std::path::PathBuf>) -> String {
    path.as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

fn config_get(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let cfg = ctx.shared.engine.config.read().clone();
    let port = ctx
        .shared
        .tcp_port
        .load(std::sync::atomic::Ordering::Relaxed);
    let params = config_params(&cfg, port);
    let mut out: Vec<(Frame, Frame)> = Vec::new();
    for pattern in &req[2..] {
        let pattern = pattern.to_ascii_lowercase();
        for (name, value) in &params {
            if glob_match(&pattern, name.as_bytes())
                && !out.iter().any(|(k, _)| *k == Frame::bulk(name))
            {
                out.push((Frame::bulk(name), Frame::bulk(value)));
            }
        }
    }
    Ok(Frame::Map(out))
}

const MUTABLE: &[&str] = &[
    // Only `save ""` (no snapshots, what limitkv does): clients and Redis's tests set it.
    "save",
    "auto-aof-rewrite-percentage",
    "auto-aof-rewrite-min-size",
    "maxclients",
    "requirepass",
    "protected-mode",
    "acllog-max-len",
    "loglevel",
    "hz",
    "timeout",
    "proto-max-bulk-len",
    "max-multibulk-len",
    "active-expire-budget",
    "client-output-buffer-limit",
    "client-query-buffer-limit",
    "policy-events-allowed-sample",
    "busy-reply-threshold",
    "lua-time-limit",
    "tls-cert-file",
    "tls-key-file",
    "tls-ca-cert-file",
    "tls-ca-cert-dir",
    "tls-auth-clients",
    "tls-protocols",
];

/// Checks a numeric parameter the way Redis's `CONFIG SET` does (same parse, bounds and
/// texts) and returns the value to store; other parameters pass through.
fn redis_numeric(name: &str, value: &str) -> Result<String, String> {
    const INT_MAX: i64 = i32::MAX as i64;
    let (min, max, memory) = match name {
        "hz" | "timeout" | "auto-aof-rewrite-percentage" => (0, INT_MAX, false),
        "acllog-max-len" => (0, i64::MAX, false),
        "maxclients" => (1, i64::from(u32::MAX), false),
        "proto-max-bulk-len" | "client-query-buffer-limit" => (1024 * 1024, i64::MAX, true),
        "auto-aof-rewrite-min-size" => (0, i64::MAX, true),
        "busy-reply-threshold" | "lua-time-limit" => (0, i64::MAX, false),
        _ => return Ok(value.to_owned()),
    };
    let n = if memory {
        crate::config::parse_memory(value)
            .filter(|_| !value.starts_with(|c: char| c.is_ascii_whitespace()))
            .and_then(|n| i64::try_from(n).ok())
            .ok_or("argument must be a memory value")?
    } else {
        args::parse_i64(value.as_bytes()).ok_or("argument couldn't be parsed into an integer")?
    };
    if !(min..=max).contains(&n) {
        return Err(format!(
            "argument must be between {min} and {max} inclusive"
        ));
    }
    // Redis takes any hz and caps it to 1..=500.
    let n = if name == "hz" { n.clamp(1, 500) } else { n };
    Ok(n.to_string())
}

fn config_set(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    if req.len() % 2 != 0 {
        return Err(CommandError::WrongArity("config|set".into()));
    }
    let mut next = ctx.shared.engine.config.read().clone();
    let known: Vec<&str> = config_params(&next, 0).iter().map(|(n, _)| *n).collect();
    // The first tls-* parameter set, if any: the TLS configuration is then rebuilt (even for
    // an unchanged file name, as Redis reloads it: the file's contents may have changed).
    let mut tls_param = None;
    for pair in req[2..].chunks_exact(2) {
        let name = args::text(&pair[0]).to_ascii_lowercase();
        if name.starts_with("tls-") && tls_param.is_none() {
            tls_param = Some(name.clone());
        }
        let value = args::text(&pair[1]);
        if name == "save" && !value.trim().is_empty() {
            return Err(CommandError::other(
                "CONFIG SET failed (possibly related to argument 'save') - limitkv takes no RDB \
                 snapshots: only an empty save (none) can be set",
            ));
        }
        if !MUTABLE.contains(&name.as_str()) && !crate::config::EncodingLimits::knows(&name) {
            if known.contains(&name.as_str()) {
                return Err(CommandError::other(format!(
                    "CONFIG SET failed (possibly related to argument '{name}') - can't set immutable config"
                )));
            }
            return Err(CommandError::other(format!(
                "Unknown option or number of arguments for CONFIG SET - '{name}'"
            )));
        }
        let value = redis_numeric(&name, &value).map_err(|e| {
            CommandError::other(format!(
                "CONFIG SET failed (possibly related to argument '{name}') - {e}"
            ))
        })?;
        next.set(&name, &value).map_err(|e| {
            CommandError::other(format!(
                "CONFIG SET failed (possibly related to argument '{name}') - {e}"
            ))
        })?;
    }
    next.validate()
        .map_err(|e| CommandError::other(format!("CONFIG SET failed - {e}")))?;
    if let Some(name) = tls_param.filter(|_| next.tls_port != 0) {
        // New connections get the new configuration; on failure the old one stays in force
        // and so do the old settings.
        ctx.shared.tls.configure(&next).map_err(|e| {
            tracing::warn!(error = %e, "CONFIG SET {name}: TLS configuration not changed");
            CommandError::other(format!(
                "CONFIG SET failed (possibly related to argument '{name}') - Unable to update TLS configuration. Check server logs."
            ))
        })?;
        tracing::info!("TLS configuration reloaded by CONFIG SET {name}");
    }
    let level = next.loglevel;
    let (changed_level, changed_pass) = {
        let cfg = ctx.shared.engine.config.read();
        (level != cfg.loglevel, next.requirepass != cfg.requirepass)
    };
    if changed_pass {
        // As in Redis, requirepass is the default user's password.
        ctx.shared
            .acl
            .set_default_password(next.requirepass.as_deref());
    }
    ctx.shared.acl.set_log_max_len(next.acllog_max_len);
    ctx.shared
        .engine
        .pubsub
        .set_limit(next.client_output_buffer_limit.pubsub);
    *ctx.shared.engine.config.write() = next;
    if changed_level {
        if let Some(hook) = ctx.shared.on_loglevel.lock().as_ref() {
            hook(level);
        }
    }
    Ok(Frame::OK)
}

fn flush(ctx: &mut Ctx<'_>, req: &[Bytes], all: bool) -> Result<Frame, CommandError> {
    match req.len() {
        1 => {}
        2 if is(&req[1], "ASYNC") || is(&req[1], "SYNC") => {}
        _ => return Err(CommandError::Syntax),
    }
    let selected = ctx.session.db;
    let flush_db = |db: usize| Record::FlushDb {
        db: u32::try_from(db).expect("invariant: databases are capped at 1024"),
    };
    ctx.with_all_shards(Some(flush_db(selected)), |g| {
        g.shards().for_each(|s| s.clear())
    });
    if all {
        // One database at a time, each wholly locked while it is cleared and journaled.
        // FLUSHALL is refused inside MULTI, so no other database's shards are held here.
        for db in (0..ctx.shared.engine.dbs.len()).filter(|&db| db != selected) {
            let saved = std::mem::replace(&mut ctx.session.db, db);
            ctx.with_all_shards(Some(flush_db(db)), |g| g.shards().for_each(|s| s.clear()));
            ctx.session.db = saved;
        }
    }
    Ok(Frame::OK)
}

fn shutdown(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    let mut abort = false;
    for a in &req[1..] {
        if is(a, "ABORT") {
            abort = true;
        } else if !(is(a, "NOSAVE") || is(a, "SAVE") || is(a, "NOW") || is(a, "FORCE")) {
            return Err(CommandError::Syntax);
        }
    }
    if abort {
        return Err(CommandError::other("No shutdown in progress."));
    }
    tracing::warn!(client = ctx.session.info.id, "user requested shutdown");
    ctx.shared.request_shutdown();
    // Like Redis, a successful SHUTDOWN never answers: the connection just closes.
    ctx.session.close_without_reply = true;
    Ok(Frame::OK)
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n}B")
    } else {
        format!("{v:.2}{}", UNITS[u])
    }
}

/// Resident set size in bytes, from /proc (0 where unavailable).
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// User and system CPU seconds, from /proc (zeros where unavailable).
fn cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / 100.0;
    (ticks(11), ticks(12))
}

/// Per database: live keys, keys with an expiry, and their mean remaining TTL in ms.
fn keyspace_summary(ctx: &mut Ctx<'_>) -> Vec<(usize, (usize, usize, u64))> {
    let selected = ctx.session.db;
    let mut out = Vec::new();
    for db in 0..ctx.shared.engine.dbs.len() {
        // Inside EXEC the selected database's shards are already held by this client.
        let summary = if db == selected {
            db_summary(ctx)
        } else {
            let saved = std::mem::replace(&mut ctx.session.db, db);
            let locked = ctx.locked.take();
            let s = db_summary(ctx);
            ctx.locked = locked;
            ctx.session.db = saved;
            s
        };
        out.push((db, summary));
    }
    out
}

fn db_summary(ctx: &mut Ctx<'_>) -> (usize, usize, u64) {
    let now = ctx.now;
    let (mut keys, mut volatile, mut ttl_sum) = (0usize, 0usize, 0u128);
    for i in 0..ctx.shard_count() {
        ctx.with_shard_at(i, |s| {
            for (_, e) in s.iter_live(now) {
                keys += 1;
                if let Some(at) = e.expires_at {
                    volatile += 1;
                    ttl_sum += u128::from(at.expiry_millis().saturating_sub(now.as_millis()));
                }
            }
        });
    }
    let avg = if volatile > 0 {
        (ttl_sum / volatile as u128) as u64
    } else {
        0
    };
    (keys, volatile, avg)
}

fn info(ctx: &mut Ctx<'_>, req: &[Bytes]) -> Result<Frame, CommandError> {
    const DEFAULT: &[&str] = &[
        "server",
        "clients",
        "memory",
        "persistence",
        "stats",
        "replication",
        "cpu",
        "keyspace",
        "policies",
    ];
    let mut wanted: Vec<String> = req[1..]
        .iter()
        .map(|s| args::text(s).to_ascii_lowercase())
        .collect();
    if wanted.is_empty()
        || wanted
            .iter()
            .any(|w| w == "all" || w == "everything" || w == "default")
    {
        wanted = DEFAULT.iter().map(|s| s.to_string()).collect();
    }
    let shared = ctx.shared;
    let cfg = shared.engine.config.read().clone();
    let m = &shared.metrics;
    let mut out = String::new();
    for section in DEFAULT.iter().filter(|s| wanted.iter().any(|w| w == *s)) {
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        let mut w = |k: &str, v: &dyn std::fmt::Display| {
            // Section headers ("# Server") are written with an empty value and no colon.
            if k.starts_with('#') {
                let _ = write!(out, "{k}\r\n");
            } else {
                let _ = write!(out, "{k}:{v}\r\n");
            }
        };
        match *section {
            "server" => {
                let uptime = shared.uptime_ms() / 1000;
                w("# Server", &"");
                w("redis_version", &REDIS_COMPAT_VERSION);
                w("limitkv_version", &env!("CARGO_PKG_VERSION"));
                w("redis_git_sha1", &"00000000");
                w("redis_git_dirty", &0);
                w("redis_mode", &"standalone");
                w("os", &std::env::consts::OS);
                w("arch_bits", &(usize::BITS));
                w("multiplexing_api", &"tokio");
                w("process_id", &std::process::id());
                w("run_id", &shared.run_id);
                // As Redis: the plain port, or the TLS port when there is no plain one.
                let tcp_port = match shared.tcp_port.load(std::sync::atomic::Ordering::Relaxed) {
                    0 => u32::from(cfg.tls_port),
                    port => port,
                };
                w("tcp_port", &tcp_port);
                w("server_time_usec", &(ctx.now.as_nanos() / 1000));
                w("uptime_in_seconds", &uptime);
                w("uptime_in_days", &(uptime / 86_400));
                w("hz", &cfg.hz);
                w("configured_hz", &cfg.hz);
                w("shards", &cfg.shards.next_power_of_two());
                w(
                    "config_file",
                    &cfg.config_file
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                );
            }
            "clients" => {
                w("# Clients", &"");
                w("connected_clients", &shared.clients.len());
                w("maxclients", &cfg.maxclients);
                w("blocked_clients", &0);
                w("pubsub_clients", &shared.engine.pubsub.num_clients());
            }
            "memory" => {
                let rss = rss_bytes();
                w("# Memory", &"");
                w("used_memory", &rss);
                w("used_memory_human", &human_bytes(rss));
                w("used_memory_rss", &rss);
                w("used_memory_rss_human", &human_bytes(rss));
                w("maxmemory", &0);
                w("maxmemory_human", &"0B");
                w("maxmemory_policy", &"noeviction");
                w("mem_allocator", &"mimalloc");
            }
            "persistence" => {
                w("# Persistence", &"");
                w("loading", &0);
                w("async_loading", &0);
                w("rdb_changes_since_last_save", &get(&m.dirty));
                w("rdb_bgsave_in_progress", &0);
                w("rdb_last_save_time", &shared.started_at.as_secs());
                match shared.engine.aof.get() {
                    None => {
                        w("aof_enabled", &0);
                        w("aof_rewrite_in_progress", &0);
                    }
                    Some(aof) => {
                        let st = aof.stats();
                        let ok = |b: bool| if b { "ok" } else { "err" };
                        w("aof_enabled", &1);
                        w("aof_rewrite_in_progress", &u8::from(st.rewrite_in_progress));
                        w(
                            "aof_rewrite_scheduled",
                            &u8::from(shared.rewrite_requested.load(Ordering::Relaxed)),
                        );
                        w("aof_rewrites", &st.rewrites);
                        w("aof_last_bgrewrite_status", &ok(st.last_rewrite_ok));
                        w("aof_last_write_status", &ok(st.last_write_ok));
                        w("aof_last_error", &st.last_error.clone().unwrap_or_default());
                        w("aof_fsync_policy", &st.policy.name());
                        w("aof_current_size", &st.current_size);
                        w("aof_base_size", &st.base_size);
                        w("aof_buffer_length", &st.pending_bytes);
                        w("aof_unsynced_bytes", &st.unsynced_bytes);
                        w("aof_fsync_lag_ms", &st.fsync_lag.as_millis());
                        w("aof_writes", &st.writes);
                        w("aof_fsyncs", &st.fsyncs);
                        w("aof_write_errors", &st.write_errors);
                        w("aof_fsync_errors", &st.fsync_errors);
                    }
                }
            }
            "stats" => {
                w("# Stats", &"");
                w(
                    "total_connections_received",
                    &get(&m.total_connections_received),
                );
                w(
                    "total_commands_processed",
                    &get(&m.total_commands_processed),
                );
                w("instantaneous_ops_per_sec", &m.ops_per_sec());
                w("total_net_input_bytes", &get(&m.total_net_input_bytes));
                w("total_net_output_bytes", &get(&m.total_net_output_bytes));
                w("rejected_connections", &get(&m.rejected_connections));
                w("expired_keys", &shared.expired_total());
                w("evicted_keys", &0);
                w("keyspace_hits", &get(&m.keyspace_hits));
                w("keyspace_misses", &get(&m.keyspace_misses));
                w(
                    "pubsub_channels",
                    &shared.engine.pubsub.num_channels(ChannelKind::Global),
                );
                w("pubsub_patterns", &shared.engine.pubsub.numpat());
                w(
                    "pubsubshard_channels",
                    &shared.engine.pubsub.num_channels(ChannelKind::Shard),
                );
                w(
                    "client_output_buffer_limit_disconnections",
                    &(shared.engine.pubsub.limit_disconnections()
                        + get(&m.output_limit_disconnections)),
                );
                w("total_error_replies", &get(&m.total_error_replies));
                w("limiter_allowed", &get(&m.limiter_allowed));
                w("limiter_denied", &get(&m.limiter_denied));
            }
            "replication" => {
                w("# Replication", &"");
                w("role", &"master");
                w("connected_slaves", &0);
                w("master_replid", &shared.run_id);
                w("master_repl_offset", &0);
            }
            "cpu" => {
                let (user, sys) = cpu_seconds();
                w("# CPU", &"");
                w("used_cpu_sys", &format!("{sys:.6}"));
                w("used_cpu_user", &format!("{user:.6}"));
            }
            "keyspace" => {
                w("# Keyspace", &"");
                for (db, (keys, expires, avg_ttl)) in keyspace_summary(ctx) {
                    if keys > 0 {
                        w(
                            &format!("db{db}"),
                            &format!("keys={keys},expires={expires},avg_ttl={avg_ttl},subexpiry=0"),
                        );
                    }
                }
            }
            "policies" => {
                w("# Policies", &"");
                for (k, v) in super::policy::info(shared) {
                    w(&k, &v);
                }
            }
            _ => {}
        }
    }
    Ok(Frame::Verbatim("txt", Bytes::from(out)))
}

#[cfg(test)]
mod tests {
    use crate::cmd::testing::*;
    use crate::protocol::Frame;

    fn text(f: Frame) -> String {
        match f {
            Frame::Verbatim(_, b) | Frame::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
            other => panic!("expected text, got {other:?}"),
        }
    }

    #[test]
    fn info_has_the_fields_clients_read() {
        let mut h = Harness::new();
        h.run(&["SET", "k", "v", "EX", "100"]);
        let all = text(h.run(&["INFO"]));
        for field in [
            "# Server\r\n",
            "redis_version:",
            "loading:0\r\n",
            "role:master\r\n",
            "connected_clients:1\r\n",
            "db0:keys=1,expires=1,avg_ttl=100000",
        ] {
            assert!(all.contains(field), "missing {field:?} in {all}");
        }
        let stats = text(h.run(&["INFO", "stats"]));
        assert!(stats.starts_with("# Stats\r\n"), "{stats}");
        assert!(!stats.contains("# Server"));
    }

    #[test]
    fn config_get_and_set() {
        let mut h = Harness::new();
        assert_eq!(
            h.run(&["CONFIG", "GET", "maxmemory"]),
            Frame::Map(vec![(bulk("maxmemory"), bulk("0"))])
        );
        let Frame::Map(m) = h.run(&["CONFIG", "GET", "*"]) else {
            panic!("CONFIG GET answers a map")
        };
        assert!(m.len() > 10);
        assert_eq!(h.run(&["CONFIG", "SET", "hz", "20"]), Frame::OK);
        assert_eq!(
            h.run(&["CONFIG", "GET", "HZ"]),
            Frame::Map(vec![(bulk("hz"), bulk("20"))])
        );
        // As in Redis: any hz in range is accepted and capped to 1..=500.
        assert_eq!(h.run(&["CONFIG", "SET", "hz", "0"]), Frame::OK);
        assert_eq!(
            h.run(&["CONFIG", "GET", "hz"]),
            Frame::Map(vec![(bulk("hz"), bulk("1"))])
        );
        assert_eq!(
            h.run(&["CONFIG", "SET", "hz", "x"]),
            err("ERR CONFIG SET failed (possibly related to argument 'hz') - argument couldn't be parsed into an integer")
        );
        assert_eq!(
            h.run(&["CONFIG", "SET", "port", "1"]),
            err("ERR CONFIG SET failed (possibly related to argument 'port') - can't set immutable config")
        );
        assert_eq!(
            h.run(&["CONFIG", "SET", "nope", "1"]),
            err("ERR Unknown option or number of arguments for CONFIG SET - 'nope'")
        );
        // No snapshots is what limitkv does; asking for snapshots is refused.
        assert_eq!(h.run(&["CONFIG", "SET", "save", ""]), Frame::OK);
        assert_eq!(
            h.run(&["CONFIG", "SET", "save", "900 1"]),
            err("ERR CONFIG SET failed (possibly related to argument 'save') - limitkv takes no RDB snapshots: only an empty save (none) can be set")
        );
    }

    #[test]
    fn command_introspection() {
        let mut h = Harness::new();
        let Frame::Integer(n) = h.run(&["COMMAND", "COUNT"]) else {
            panic!("COUNT is an integer")
        };
        assert!(n > 40);
        let Frame::Array(info) = h.run(&["COMMAND", "INFO", "get", "nope", "client|list"]) else {
            panic!("INFO is an array")
        };
        assert_eq!(info[1], Frame::Null);
        let Frame::Array(get) = &info[0] else {
            panic!()
        };
        assert_eq!(get[0], bulk("get"));
        assert_eq!(get[1], int(2));
        assert_eq!(get[3], int(1));
        let Frame::Array(list) = &info[2] else {
            panic!()
        };
        assert_eq!(list[0], bulk("client|list"));
        assert_eq!(
            h.run(&["COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2"]),
            Frame::Array(vec![bulk("a"), bulk("b")])
        );
        let Frame::Map(docs) = h.run(&["COMMAND", "DOCS", "set"]) else {
            panic!("DOCS is a map")
        };
        assert_eq!(docs[0].0, bulk("set"));
    }

    #[test]
    fn flush_dbsize_time() {
        let mut h = Harness::new();
        h.run(&["SET", "a", "1"]);
        assert_eq!(h.run(&["DBSIZE"]), int(1));
        assert_eq!(h.run(&["FLUSHALL", "ASYNC"]), Frame::OK);
        assert_eq!(h.run(&["DBSIZE"]), int(0));
        assert_eq!(h.run(&["FLUSHDB", "NOPE"]), err("ERR syntax error"));
        let Frame::Array(t) = h.run(&["TIME"]) else {
            panic!()
        };
        assert_eq!(t[0], bulk("1767225600"));
    }
}
