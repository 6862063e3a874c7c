//! `CONFIG` (GET, SET, RESETSTAT, HELP): the parameters `CONFIG GET` reports, the ones
//! `CONFIG SET` may change, Redis's checks of their values, and applying a change to the
//! running server (ACL password, TLS, Pub/Sub limit, log level).

use bytes::Bytes;

use super::args;
use super::flags::*;
use super::keys::glob_match;
use super::{dispatch_sub, help_reply, CommandSpec, Ctx, BASE, HELP_SUBCOMMAND};
use crate::config::Config;
use crate::error::CommandError;
use crate::protocol::Frame;

/// The `CONFIG` container command.
pub const COMMANDS: &[CommandSpec] = &[CommandSpec {
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
}];

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
        name: "REWRITE",
        arity: 2,
        flags: ADMIN | NOSCRIPT | LOADING | STALE,
        summary: "Persists the effective configuration to file.",
        since: "2.8.0",
        handler: config_rewrite,
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
                    "REWRITE",
                    "    Rewrite the configuration file.",
                ],
            ))
        },
        ..HELP_SUBCOMMAND
    },
];

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
        ("maxmemory", cfg.maxmemory.to_string()),
        ("maxmemory-policy", cfg.maxmemory_policy.name().to_owned()),
        ("maxmemory-samples", cfg.maxmemory_samples.to_string()),
        (
            "slowlog-log-slower-than",
            cfg.slowlog_log_slower_than.to_string(),
        ),
        ("slowlog-max-len", cfg.slowlog_max_len.to_string()),
        (
            "latency-monitor-threshold",
            cfg.latency_monitor_threshold.to_string(),
        ),
        (
            "cluster-enabled",
            if cfg.cluster_enabled { "yes" } else { "no" }.to_owned(),
        ),
        (
            "cluster-require-full-coverage",
            if cfg.cluster_require_full_coverage {
                "yes"
            } else {
                "no"
            }
            .to_owned(),
        ),
        ("cluster-config-file", cfg.cluster_config_file.clone()),
        (
            "notify-keyspace-events",
            cfg.notify_keyspace_events.render(),
        ),
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
        (
            "usage-history",
            if cfg.usage_history { "yes" } else { "no" }.to_owned(),
        ),
        (
            "usage-history-identities",
            cfg.usage_history_identities.to_string(),
        ),
        ("tls-port", cfg.tls_port.to_string()),
        ("http-port", cfg.http_port.to_string()),
        (
            "http-tls",
            if cfg.http_tls { "yes" } else { "no" }.to_owned(),
        ),
        ("http-identity-header", cfg.http_identity_header.clone()),
        ("tls-cert-file", path_or_empty(&cfg.tls_cert_file)),
        ("tls-key-file", path_or_empty(&cfg.tls_key_file)),
        ("tls-ca-cert-file", path_or_empty(&cfg.tls_ca_cert_file)),
        ("tls-ca-cert-dir", path_or_empty(&cfg.tls_ca_cert_dir)),
        ("tls-auth-clients", cfg.tls_auth_clients.name().to_owned()),
        ("tls-protocols", cfg.tls_protocols.clone()),
        ("events-stream", cfg.events_stream.clone()),
        ("events-stream-maxlen", cfg.events_stream_maxlen.to_string()),
    ];
    params.extend(cfg.encoding.params());
    params.extend(cfg.repl.params());
    params.extend(cfg.webhook.params());
    params
}

/// `CONFIG REWRITE`: writes the running configuration into the file it was read from, as
/// Redis does (comments and unmanaged lines kept, changed options updated in place, options
/// that differ from their defaults appended; see `config::rewrite`).
///
/// Reply: `+OK`. Errors: `-ERR The server is running without a config file`; `-ERR Rewriting
/// config file: <reason>` when the file cannot be written.
fn config_rewrite(ctx: &mut Ctx<'_>, _: &[Bytes]) -> Result<Frame, CommandError> {
    let cfg = ctx.shared.engine.config.read().clone();
    let Some(path) = cfg.config_file.clone() else {
        return Err(CommandError::other(
            "The server is running without a config file",
        ));
    };
    let defaults = config_params(&Config::default(), u32::from(Config::default().port));
    // Aliases (`lua-time-limit`, `slave-*`) and fixed values are not written: the canonical
    // name carries the value.
    let skip =
        |n: &str| matches!(n, "lua-time-limit" | "appendfilename" | "save") || n.contains("slave");
    let mut current: Vec<(String, String, bool)> = config_params(&cfg, u32::from(cfg.port))
        .into_iter()
        .filter(|(n, _)| !skip(n) && !cfg.repl.params().iter().any(|(r, _)| r == n))
        .map(|(n, v)| {
            let default = defaults.iter().any(|(dn, dv)| *dn == n && *dv == v);
            (n.to_owned(), v, default)
        })
        .collect();
    current.extend(
        cfg.repl
            .rewrite_lines()
            .into_iter()
            .map(|(n, v, d)| (n.to_owned(), v, d)),
    );
    crate::config::rewrite::rewrite_file(&path, &current).map_err(|e| {
        tracing::warn!(error = %e, path = %path.display(), "CONFIG REWRITE failed");
        CommandError::other(format!("Rewriting config file: {e}"))
    })?;
    tracing::info!(path = %path.display(), "CONFIG REWRITE executed with success.");
    Ok(Frame::OK)
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
    "http-identity-header",
    "maxmemory",
    "maxmemory-policy",
    "maxmemory-samples",
    "usage-history",
    "slowlog-log-slower-than",
    "slowlog-max-len",
    "latency-monitor-threshold",
    "appendfsync",
    "notify-keyspace-events",
    "events-stream",
    "events-stream-maxlen",
];

/// Redis 7.0's immutable parameters that limitkv has no counterpart for: `CONFIG SET` answers
/// Redis's "can't set immutable config" for them, as Redis does, rather than "Unknown option".
const REDIS_IMMUTABLE: &[&str] = &[
    "daemonize",
    "supervised",
    "pidfile",
    "logfile",
    "syslog-enabled",
    "syslog-ident",
    "syslog-facility",
    "unixsocket",
    "unixsocketperm",
    "io-threads",
    "io-threads-do-reads",
    "always-show-logo",
    "set-proc-title",
    "proc-title-template",
    "disable-thp",
    "tcp-backlog",
    "enable-protected-configs",
    "enable-debug-command",
    "enable-module-command",
    "cluster-port",
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
        "auto-aof-rewrite-min-size" | "maxmemory" => (0, i64::MAX, true),
        "maxmemory-samples" => (1, 64, false),
        "slowlog-log-slower-than" => (i64::MIN, i64::MAX, false),
        "slowlog-max-len" | "latency-monitor-threshold" => (0, i64::MAX, false),
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
    // Redis refuses a parameter named twice before setting anything.
    let names: Vec<String> = req[2..]
        .chunks_exact(2)
        .map(|p| args::text(&p[0]).to_ascii_lowercase())
        .collect();
    if let Some((i, _)) = names
        .iter()
        .enumerate()
        .find(|(i, n)| names[..*i].contains(n))
    {
        return Err(CommandError::other(format!(
            "CONFIG SET failed (possibly related to argument '{}') - duplicate parameter",
            args::text(&req[2 + i * 2])
        )));
    }
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
        if !MUTABLE.contains(&name.as_str())
            && !crate::config::EncodingLimits::knows(&name)
            && !crate::config::REPL_MUTABLE.contains(&name.as_str())
            && !crate::config::WEBHOOK_MUTABLE.contains(&name.as_str())
        {
            if known.contains(&name.as_str()) || REDIS_IMMUTABLE.contains(&name.as_str()) {
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
    let maxmemory = next.maxmemory;
    ctx.shared.engine.usage.set_enabled(next.usage_history);
    ctx.shared.repl.apply_config(&ctx.shared.engine, &next.repl);
    ctx.shared
        .slowlog
        .configure(next.slowlog_log_slower_than, next.slowlog_max_len);
    ctx.shared
        .engine
        .latency
        .set_threshold_ms(next.latency_monitor_threshold);
    if let Some(w) = ctx.shared.engine.aof.get() {
        // The writer's next batch follows the new policy; replies wait for durability
        // while it is `always` (server::replies reads it per batch).
        w.set_policy(next.appendfsync);
    }
    ctx.shared
        .engine
        .set_notify_flags(next.notify_keyspace_events);
    *ctx.shared.engine.config.write() = next;
    let before = ctx
        .shared
        .metrics
        .maxmemory
        .swap(maxmemory, std::sync::atomic::Ordering::Relaxed);
    if maxmemory != before && maxmemory > 0 && crate::metrics::memory().used > maxmemory {
        tracing::warn!(
            "the new maxmemory value set via CONFIG SET ({maxmemory}) is smaller than the \
             current memory usage: commands that may grow memory are refused with OOM"
        );
    }
    if changed_level {
        if let Some(hook) = ctx.shared.on_loglevel.lock().as_ref() {
            hook(level);
        }
    }
    Ok(Frame::OK)
}

#[cfg(test)]
mod tests {
    use crate::cmd::testing::*;
    use crate::protocol::Frame;

    #[test]
    fn duplicate_and_immutable_parameters_are_refused_as_redis() {
        let mut h = Harness::new();
        assert_eq!(
            h.run(&["CONFIG", "SET", "maxmemory", "10000001", "MAXMEMORY", "10000002"]),
            err("ERR CONFIG SET failed (possibly related to argument 'MAXMEMORY') - duplicate parameter")
        );
        assert_eq!(
            h.run(&["CONFIG", "GET", "maxmemory"]),
            Frame::Map(vec![(bulk("maxmemory"), bulk("0"))]),
            "nothing was set"
        );
        assert_eq!(
            h.run(&["CONFIG", "SET", "daemonize", "yes"]),
            err("ERR CONFIG SET failed (possibly related to argument 'daemonize') - can't set immutable config")
        );
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
}
