//! `INFO`: the server's sections (server, clients, memory, persistence, stats, replication,
//! cpu, keyspace, policies) rendered as Redis renders them, and the process and keyspace
//! figures they report.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::args;
use super::flags::*;
use super::{CommandSpec, Ctx, BASE};
use crate::error::CommandError;
use crate::metrics::get;
use crate::protocol::Frame;
use crate::pubsub::ChannelKind;
use crate::version::REDIS_COMPAT_VERSION;

/// The `INFO` command.
pub const COMMANDS: &[CommandSpec] = &[CommandSpec {
    name: "INFO",
    arity: -1,
    flags: LOADING | STALE | KEYSPACE,
    group: "server",
    summary: "Returns information and statistics about the server.",
    complexity: "O(1)",
    args: "[section:string...]",
    handler: info,
    ..BASE
}];

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
                w("blocked_clients", &shared.blocked.len());
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
}
