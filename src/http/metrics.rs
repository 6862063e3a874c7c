//! `GET /metrics`: the server's counters in the Prometheus text exposition format (0.0.4),
//! encoded by the `prometheus-client` crate from a [`Collector`] that reads the live counters
//! at scrape time (nothing is counted twice: the RESP and HTTP surfaces count into
//! `cmd::Shared`'s [`crate::metrics::Metrics`], the policies into their own atomics, the
//! append-only file's writer into its stats).
//!
//! Label cardinality is bounded: labels are policy and rule names (set by the operator),
//! command names (the command table) and error codes (at most
//! [`crate::metrics::ERROR_CODES_MAX`]); identities never become labels. See
//! `docs/operations.md` for every metric.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::cmd::Shared;
use crate::metrics::{get, CommandStat, LATENCY_BUCKETS};

/// The `/metrics` handler.
pub async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    match render(&shared) {
        Ok(body) => (
            [(
                CONTENT_TYPE,
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            )],
            body,
        )
            .into_response(),
        Err(_) => super::error(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "metrics could not be encoded",
        ),
    }
}

/// The exposition text for the server's current counters.
pub fn render(shared: &Arc<Shared>) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Snapshot(shared.clone())));
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?;
    Ok(out)
}

/// Reads the counters when the registry encodes it.
struct Snapshot(Arc<Shared>);

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Snapshot")
    }
}

type Labels<'a> = Vec<(&'static str, &'a str)>;

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(Labels<'_>, u64)],
) -> Result<(), std::fmt::Error> {
    let mut m = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in rows {
        m.encode_family(labels)?
            .encode_counter::<NoLabelSet, u64, u64>(v, None)?;
    }
    Ok(())
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: i64,
) -> Result<(), std::fmt::Error> {
    encoder
        .encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&v)
}

/// `(le, count)` pairs of a bucket array, per bucket (the encoder sums them into Prometheus's
/// cumulative buckets); the last, unbounded bucket is `+Inf`.
fn buckets(counts: &[u64]) -> Vec<(f64, u64)> {
    counts
        .iter()
        .enumerate()
        .map(|(i, n)| (LATENCY_BUCKETS.get(i).copied().unwrap_or(f64::INFINITY), *n))
        .collect()
}

fn command_label(name: &(&'static str, Option<&'static str>)) -> String {
    match name.1 {
        Some(sub) => format!("{}|{}", name.0, sub).to_ascii_lowercase(),
        None => name.0.to_ascii_lowercase(),
    }
}

impl Collector for Snapshot {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let shared = &self.0;
        let m = &shared.metrics;

        // Policies: per rule and outcome, and the list decisions that bypass every rule.
        let mut rows: Vec<(String, String, &'static str, u64)> = Vec::new();
        let mut checks: Vec<(String, &'static str, u64)> = Vec::new();
        {
            let t = shared.engine.policies.read();
            let ld = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
            for p in t.policies.values() {
                let c = &p.counters;
                for (outcome, v) in [
                    ("allowed", ld(&c.allowed)),
                    ("denied", ld(&c.denied)),
                    ("overridden", ld(&c.overridden)),
                ] {
                    checks.push((p.name.clone(), outcome, v));
                }
                // Allow- and deny-list decisions apply to the whole policy: rule "*".
                rows.push((
                    p.name.clone(),
                    "*".into(),
                    "allowlisted",
                    ld(&c.allowlisted),
                ));
                rows.push((p.name.clone(), "*".into(), "denylisted", ld(&c.denylisted)));
                for a in p.body.all() {
                    let rule = match a.scope {
                        Some(s) => format!("{}@{s}", a.rule.name),
                        None => a.rule.name.clone(),
                    };
                    let c = &a.rule.counters;
                    for (outcome, v) in [
                        ("allowed", ld(&c.allowed)),
                        ("denied", ld(&c.denied)),
                        ("slowed", ld(&c.slowed)),
                        ("dry_run_denied", ld(&c.logged)),
                        ("warned", ld(&c.warned)),
                    ] {
                        rows.push((p.name.clone(), rule.clone(), outcome, v));
                    }
                }
            }
        }
        let decision_rows: Vec<(Labels<'_>, u64)> = rows
            .iter()
            .map(|(p, r, o, v)| {
                (
                    vec![
                        ("policy", p.as_str()),
                        ("rule", r.as_str()),
                        ("outcome", *o),
                    ],
                    *v,
                )
            })
            .collect();
        counter(
            &mut e,
            "limitkv_decisions",
            "Requests charged per policy, rule and outcome (allowed, denied, slowed, \
             dry_run_denied, warned; rule \"*\": allowlisted, denylisted).",
            &decision_rows,
        )?;
        let check_rows: Vec<(Labels<'_>, u64)> = checks
            .iter()
            .map(|(p, o, v)| (vec![("policy", p.as_str()), ("outcome", *o)], *v))
            .collect();
        counter(
            &mut e,
            "limitkv_policy_checks",
            "Policy checks (LIMIT.CHECK, LIMIT.RESERVE, /v1/check) per policy and verdict.",
            &check_rows,
        )?;

        // Policy webhooks (INFO webhooks).
        let hooks = shared.engine.webhooks.info();
        let hook = |name: &str| hooks.iter().find(|(k, _)| *k == name).map_or(0, |x| x.1);
        let hook_rows: Vec<(Labels<'_>, u64)> = [
            ("queued", "webhook_queued"),
            ("delivered", "webhook_delivered"),
            ("failed", "webhook_failed"),
            ("dropped", "webhook_dropped"),
            ("retried", "webhook_retries"),
        ]
        .iter()
        .map(|(outcome, field)| (vec![("outcome", *outcome)], hook(field)))
        .collect();
        counter(
            &mut e,
            "limitkv_webhook_deliveries",
            "Policy webhook deliveries by outcome (queued, delivered, failed, dropped from a full \
             queue; retried counts attempts after the first).",
            &hook_rows,
        )?;
        gauge(
            &mut e,
            "limitkv_webhook_queue_length",
            "Policy webhook deliveries waiting to be sent.",
            i64::try_from(hook("webhook_queue_length")).unwrap_or(i64::MAX),
        )?;

        // Commands.
        let stats = m.command_stats();
        let named: Vec<(String, &CommandStat, &'static str)> = stats
            .iter()
            .map(|(n, s)| {
                let group = crate::cmd::lookup(n.0.as_bytes()).map_or("", |spec| spec.group);
                (command_label(n), s, group)
            })
            .collect();
        let per = |f: fn(&CommandStat) -> u64| -> Vec<(Labels<'_>, u64)> {
            named
                .iter()
                .map(|(n, s, _)| (vec![("command", n.as_str())], f(s)))
                .collect()
        };
        counter(
            &mut e,
            "limitkv_commands",
            "Commands run, per command.",
            &per(|s| s.calls),
        )?;
        counter(
            &mut e,
            "limitkv_commands_rejected",
            "Commands refused before running (arity, auth, ACL, OOM), per command.",
            &per(|s| s.rejected),
        )?;
        counter(
            &mut e,
            "limitkv_commands_failed",
            "Commands that ran and answered an error, per command.",
            &per(|s| s.failed),
        )?;
        let mut family_rows: Vec<(Labels<'_>, u64)> = Vec::new();
        for (n, s, _) in named.iter().filter(|(_, s, _)| s.allowed + s.denied > 0) {
            family_rows.push((
                vec![("command", n.as_str()), ("outcome", "allowed")],
                s.allowed,
            ));
            family_rows.push((
                vec![("command", n.as_str()), ("outcome", "denied")],
                s.denied,
            ));
        }
        counter(
            &mut e,
            "limitkv_command_decisions",
            "Limiter admissions and denials per command (the bare limiter families and the \
             policy commands).",
            &family_rows,
        )?;
        {
            let mut h = e.encode_descriptor(
                "limitkv_decision_duration_seconds",
                "Server-side time to decide, per rate-limiting command.",
                None,
                MetricType::Histogram,
            )?;
            for (n, s, group) in &named {
                if *group != "rate_limit" || s.calls == 0 {
                    continue;
                }
                let labels: Labels<'_> = vec![("command", n.as_str())];
                h.encode_family(&labels)?.encode_histogram::<NoLabelSet>(
                    s.nanos as f64 / 1e9,
                    s.calls,
                    &buckets(&s.buckets),
                    None,
                )?;
            }
        }
        let errors = m.error_stats();
        let error_rows: Vec<(Labels<'_>, u64)> = errors
            .iter()
            .map(|(c, n)| (vec![("code", c.as_str())], *n))
            .collect();
        counter(
            &mut e,
            "limitkv_errors",
            "Error replies per error code (the first word of the error).",
            &error_rows,
        )?;
        let one = |v: u64| vec![(Labels::new(), v)];
        counter(
            &mut e,
            "limitkv_error_replies",
            "Error replies sent.",
            &one(get(&m.total_error_replies)),
        )?;
        counter(
            &mut e,
            "limitkv_commands_processed",
            "Commands processed (INFO total_commands_processed).",
            &one(get(&m.total_commands_processed)),
        )?;

        // Connections and the keyspace.
        gauge(
            &mut e,
            "limitkv_connected_clients",
            "Clients connected now.",
            shared.clients.len() as i64,
        )?;
        counter(
            &mut e,
            "limitkv_connections_received",
            "Connections accepted.",
            &one(get(&m.total_connections_received)),
        )?;
        counter(
            &mut e,
            "limitkv_connections_rejected",
            "Connections refused (maxclients).",
            &one(get(&m.rejected_connections)),
        )?;
        counter(
            &mut e,
            "limitkv_keyspace_hits",
            "Key lookups that found a key.",
            &one(get(&m.keyspace_hits)),
        )?;
        counter(
            &mut e,
            "limitkv_keyspace_misses",
            "Key lookups that found nothing.",
            &one(get(&m.keyspace_misses)),
        )?;
        counter(
            &mut e,
            "limitkv_expired_keys",
            "Keys removed because they expired.",
            &one(shared.expired_total()),
        )?;
        counter(
            &mut e,
            "limitkv_evicted_keys",
            "Keys removed by eviction over maxmemory (an evicting maxmemory-policy).",
            &one(get(&m.evicted_keys)),
        )?;
        gauge(
            &mut e,
            "limitkv_uptime_seconds",
            "Seconds since the server started.",
            i64::try_from(shared.uptime_ms() / 1000).unwrap_or(i64::MAX),
        )?;

        // Memory.
        let mem = crate::metrics::memory();
        let bytes = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        gauge(
            &mut e,
            "limitkv_memory_used_bytes",
            "Memory in use (INFO used_memory: mimalloc's committed bytes).",
            bytes(mem.used),
        )?;
        gauge(
            &mut e,
            "limitkv_memory_rss_bytes",
            "Resident set size (INFO used_memory_rss).",
            bytes(mem.rss),
        )?;
        gauge(
            &mut e,
            "limitkv_memory_max_bytes",
            "The maxmemory setting (0 = no limit).",
            bytes(get(&m.maxmemory)),
        )?;

        // The append-only file.
        let aof = shared.engine.aof.get().map(|w| w.stats());
        gauge(
            &mut e,
            "limitkv_aof_enabled",
            "1 when the append-only file is on.",
            i64::from(aof.is_some()),
        )?;
        if let Some(st) = aof {
            {
                let mut h = e.encode_descriptor(
                    "limitkv_aof_fsync_duration_seconds",
                    "Time taken by each successful fsync of the append-only file.",
                    None,
                    MetricType::Histogram,
                )?;
                h.encode_histogram::<NoLabelSet>(
                    st.fsync_nanos as f64 / 1e9,
                    st.fsyncs,
                    &buckets(&st.fsync_buckets),
                    None,
                )?;
            }
            let lag = st.fsync_lag.as_nanos() as f64 / 1e9;
            e.encode_descriptor(
                "limitkv_aof_fsync_lag_seconds",
                "How long the oldest written but unsynced byte has waited (0 when synced).",
                None,
                MetricType::Gauge,
            )?
            .encode_gauge(&lag)?;
            gauge(
                &mut e,
                "limitkv_aof_unsynced_bytes",
                "Bytes written but not yet fsynced.",
                i64::try_from(st.unsynced_bytes).unwrap_or(i64::MAX),
            )?;
            gauge(
                &mut e,
                "limitkv_aof_size_bytes",
                "Current length of the append-only file.",
                i64::try_from(st.current_size).unwrap_or(i64::MAX),
            )?;
            counter(
                &mut e,
                "limitkv_aof_write_errors",
                "Failed writes of the append-only file.",
                &one(st.write_errors),
            )?;
            counter(
                &mut e,
                "limitkv_aof_fsync_errors",
                "Failed fsyncs of the append-only file.",
                &one(st.fsync_errors),
            )?;
            gauge(
                &mut e,
                "limitkv_aof_last_write_ok",
                "1 while the append-only file's last write and fsync succeeded.",
                i64::from(st.last_write_ok),
            )?;
        }
        Ok(())
    }
}
