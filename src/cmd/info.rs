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
use crate::store::Value;
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

/// User and system CPU seconds, from /proc (zeros where unavailable).
fn cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / 100.0;
    (ticks(11), ticks(12))
}

/// One database's `INFO keyspace` figures.
#[derive(Debug, Default)]
struct DbSummary {
    keys: usize,
    volatile: usize,
    /// Mean remaining TTL of the keys with an expiry, in ms.
    avg_ttl: u64,
    /// Live keys per [`Value::TYPE_NAMES`] entry.
    kinds: [usize; Value::TYPE_NAMES.len()],
    /// Entries (live or not yet swept) and buckets of the shards' hash indexes.
    entries: usize,
    buckets: usize,
}

/// Per database: live keys, keys with an expiry, their mean remaining TTL, keys per type and
/// the index's size.
fn keyspace_summary(ctx: &mut Ctx<'_>) -> Vec<(usize, DbSummary)> {
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

fn db_summary(ctx: &mut Ctx<'_>) -> DbSummary {
    let now = ctx.now;
    let mut sum = DbSummary::default();
    let mut ttl_sum = 0u128;
    for i in 0..ctx.shard_count() {
        ctx.with_shard_at(i, |s| {
            sum.entries += s.len();
            sum.buckets += s.index_buckets();
            for (_, e) in s.iter_live(now) {
                sum.keys += 1;
                sum.kinds[e.value.kind_index()] += 1;
                if let Some(at) = e.expires_at() {
                    sum.volatile += 1;
                    ttl_sum += u128::from(at.expiry_millis().saturating_sub(now.as_millis()));
                }
            }
        });
    }
    if sum.volatile > 0 {
        sum.avg_ttl = (ttl_sum / sum.volatile as u128) as u64;
    }
    sum
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
        "webhooks",
    ];
    let mut wanted: Vec<String> = req[1..]
        .iter()
        .map(|s| args::text(s).to_ascii_lowercase())
        .collect();
    // As Redis: `all`/`everything` add commandstats and errorstats to the default sections.
    let every = wanted.iter().any(|w| w == "all" || w == "everything");
    if wanted.is_empty() || every || wanted.iter().any(|w| w == "default") {
        wanted.extend(DEFAULT.iter().map(|s| s.to_string()));
    }
    if every {
        wanted.extend(["commandstats".to_owned(), "errorstats".to_owned()]);
    }
    let shared = ctx.shared;
    let cfg = shared.engine.config.read().clone();
    let m = &shared.metrics;
    let mut out = String::new();
    let sections = DEFAULT.iter().chain(&["commandstats", "errorstats"]);
    for section in sections.filter(|s| wanted.iter().any(|w| w == *s)) {
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
                w("# Memory", &"");
                for (k, v) in super::memory::info_fields(ctx) {
                    w(k, &v);
                }
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
                        w("aof_fsync_usec_total", &(st.fsync_nanos / 1000));
                        w("aof_fsync_max_usec", &(st.fsync_max_nanos / 1000));
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
                w("evicted_keys", &get(&m.evicted_keys));
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
                let rs = &shared.repl.stats;
                w("sync_full", &rs.sync_full.load(Ordering::Relaxed));
                w(
                    "sync_partial_ok",
                    &rs.sync_partial_ok.load(Ordering::Relaxed),
                );
                w(
                    "sync_partial_err",
                    &rs.sync_partial_err.load(Ordering::Relaxed),
                );
                w("limiter_allowed", &get(&m.limiter_allowed));
                w("limiter_denied", &get(&m.limiter_denied));
            }
            "replication" => out.push_str(&super::repl::info_section(shared)),
            "cpu" => {
                let (user, sys) = cpu_seconds();
                w("# CPU", &"");
                w("used_cpu_sys", &format!("{sys:.6}"));
                w("used_cpu_user", &format!("{user:.6}"));
            }
            "keyspace" => {
                w("# Keyspace", &"");
                let summaries = keyspace_summary(ctx);
                for (db, d) in &summaries {
                    if d.keys > 0 {
                        let (keys, expires, avg_ttl) = (d.keys, d.volatile, d.avg_ttl);
                        w(
                            &format!("db{db}"),
                            &format!("keys={keys},expires={expires},avg_ttl={avg_ttl},subexpiry=0"),
                        );
                    }
                }
                // limitkv's own lines follow Redis's `dbN` lines under names no Redis field
                // has, in the `name:k=v,k=v` shape INFO parsers already split (redis-py reads
                // them as dicts): keys per type, and the hash index's size and load factor.
                for (db, d) in &summaries {
                    if d.keys > 0 {
                        let kinds: Vec<String> = Value::TYPE_NAMES
                            .iter()
                            .zip(d.kinds)
                            .filter(|(_, n)| *n > 0)
                            .map(|(name, n)| format!("{name}={n}"))
                            .collect();
                        w(&format!("limitkv_types_db{db}"), &kinds.join(","));
                    }
                    if d.entries > 0 {
                        let load = d.entries as f64 / d.buckets.max(1) as f64;
                        w(
                            &format!("limitkv_index_db{db}"),
                            &format!(
                                "entries={},buckets={},load_factor={load:.3}",
                                d.entries, d.buckets
                            ),
                        );
                    }
                }
            }
            "commandstats" => {
                w("# Commandstats", &"");
                for ((name, sub), st) in m.command_stats() {
                    let mut key = format!("cmdstat_{}", name.to_ascii_lowercase());
                    if let Some(sub) = sub {
                        key.push('|');
                        key.push_str(&sub.to_ascii_lowercase());
                    }
                    let usec = st.nanos / 1000;
                    let per_call = if st.calls > 0 {
                        usec as f64 / st.calls as f64
                    } else {
                        0.0
                    };
                    w(
                        &key,
                        &format!(
                            "calls={},usec={usec},usec_per_call={per_call:.2},rejected_calls={},failed_calls={}",
                            st.calls, st.rejected, st.failed
                        ),
                    );
                }
            }
            "errorstats" => {
                w("# Errorstats", &"");
                for (code, count) in m.error_stats() {
                    w(&format!("errorstat_{code}"), &format!("count={count}"));
                }
            }
            "policies" => {
                w("# Policies", &"");
                for (k, v) in super::policy::info(shared) {
                    w(&k, &v);
                }
            }
            "webhooks" => {
                w("# Webhooks", &"");
                for (k, v) in shared.engine.webhooks.info() {
                    w(k, &v);
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
        let keyspace = text(h.run(&["INFO", "keyspace"]));
        assert!(
            keyspace.contains("limitkv_types_db0:string=1\r\n"),
            "{keyspace}"
        );
        assert!(
            keyspace.contains("limitkv_index_db0:entries=1,buckets=4,load_factor=0.250\r\n"),
            "{keyspace}"
        );
        let stats = text(h.run(&["INFO", "stats"]));
        assert!(stats.starts_with("# Stats\r\n"), "{stats}");
        assert!(!stats.contains("# Server"));
    }

    /// Runs `words` and flushes the session's tallies as a connection does after a batch.
    fn run(h: &mut Harness, words: &[&str]) -> Frame {
        let f = h.run(words);
        h.shared.metrics.flush(&mut h.session.stats);
        f
    }

    fn line(h: &mut Harness, section: &str, key: &str) -> String {
        let t = text(run(h, &["INFO", section]));
        t.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}:")).map(str::to_owned))
            .unwrap_or_default()
    }

    #[test]
    fn commandstats_count_calls_rejections_and_failures_as_redis() {
        let mut h = Harness::new();
        run(&mut h, &["CONFIG", "RESETSTAT"]);
        // Wrong arity: rejected before running; then two calls that run.
        run(&mut h, &["SET", "k"]);
        run(&mut h, &["SET", "k1", "v1"]);
        run(&mut h, &["SET", "k2", "v2"]);
        let set = line(&mut h, "commandstats", "cmdstat_set");
        assert!(set.starts_with("calls=2,usec="), "{set}");
        assert!(set.contains(",usec_per_call="), "{set}");
        assert!(set.ends_with(",rejected_calls=1,failed_calls=0"), "{set}");
        // Ran and answered an error: a failed call.
        run(&mut h, &["LPUSH", "k1", "x"]);
        let lpush = line(&mut h, "commandstats", "cmdstat_lpush");
        assert!(
            lpush.ends_with("rejected_calls=0,failed_calls=1"),
            "{lpush}"
        );
        // Subcommands by their full name.
        run(&mut h, &["CONFIG", "GET", "hz"]);
        let get = line(&mut h, "commandstats", "cmdstat_config|get");
        assert!(get.starts_with("calls=1,"), "{get}");
        // Unknown commands count as errors only.
        run(&mut h, &["NOSUCHCMD"]);
        assert_eq!(line(&mut h, "errorstats", "errorstat_ERR"), "count=2");
        assert_eq!(line(&mut h, "errorstats", "errorstat_WRONGTYPE"), "count=1");
        assert_eq!(line(&mut h, "stats", "total_error_replies"), "3");
        let all = text(run(&mut h, &["INFO", "all"]));
        assert!(all.contains("# Commandstats\r\ncmdstat_"), "{all}");
        assert!(
            all.contains("# Errorstats\r\nerrorstat_ERR:count=2\r\n"),
            "{all}"
        );
        assert!(!text(run(&mut h, &["INFO"])).contains("cmdstat_"));
        run(&mut h, &["CONFIG", "RESETSTAT"]);
        assert_eq!(line(&mut h, "errorstats", "errorstat_ERR"), "");
        assert_eq!(line(&mut h, "commandstats", "cmdstat_set"), "");
    }

    #[test]
    fn commandstats_inside_multi_count_what_exec_ran() {
        let mut h = Harness::new();
        run(&mut h, &["MULTI"]);
        run(&mut h, &["SET", "a", "b"]);
        run(&mut h, &["LPUSH", "a", "x"]);
        run(&mut h, &["EXEC"]);
        assert!(line(&mut h, "commandstats", "cmdstat_set").starts_with("calls=1,"));
        let lpush = line(&mut h, "commandstats", "cmdstat_lpush");
        assert!(
            lpush.ends_with("rejected_calls=0,failed_calls=1"),
            "{lpush}"
        );
        let exec = line(&mut h, "commandstats", "cmdstat_exec");
        assert!(exec.ends_with("rejected_calls=0,failed_calls=0"), "{exec}");
        // A command refused while queuing is rejected; EXEC then fails with EXECABORT.
        run(&mut h, &["MULTI"]);
        run(&mut h, &["GET"]);
        run(&mut h, &["EXEC"]);
        let get = line(&mut h, "commandstats", "cmdstat_get");
        assert!(
            get.starts_with("calls=0,") && get.contains("rejected_calls=1"),
            "{get}"
        );
        let exec = line(&mut h, "commandstats", "cmdstat_exec");
        assert!(
            exec.starts_with("calls=2,") && exec.ends_with("failed_calls=1"),
            "{exec}"
        );
        assert_eq!(line(&mut h, "errorstats", "errorstat_EXECABORT"), "count=1");
    }

    #[test]
    fn errorstats_stop_at_128_codes_until_resetstat() {
        let mut h = Harness::new();
        for i in 0..=crate::metrics::ERROR_CODES_MAX {
            h.session
                .stats
                .tally
                .error(format!("CODE{i} boom").as_bytes());
        }
        h.shared.metrics.flush(&mut h.session.stats);
        assert_eq!(line(&mut h, "errorstats", "errorstat_CODE1"), "");
        run(&mut h, &["CONFIG", "RESETSTAT"]);
        run(&mut h, &["NOSUCHCMD"]);
        assert_eq!(line(&mut h, "errorstats", "errorstat_ERR"), "count=1");
    }
}
