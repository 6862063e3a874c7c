//! `GET /metrics` on the HTTP listener: known traffic, scraped with curl and parsed by the
//! Prometheus project's own Python parser (`prometheus_client.parser`, Debian's
//! python3-prometheus-client), with exact counts asserted; and the route's authentication.
//! Skipped (with a printed reason) where curl or the parser is missing.

mod common;

use std::collections::HashMap;

use common::{curl, free_port, Raw, TestServer};
use limitkv::config::Config;

async fn with_http(config: Config) -> TestServer {
    TestServer::with_config(Config {
        http_port: free_port(),
        ..config
    })
    .await
}

async fn pipeline(c: &mut Raw, args: &[&str], n: usize) {
    let one = common::resp(args);
    let mut bytes = Vec::with_capacity(one.len() * n);
    for _ in 0..n {
        bytes.extend_from_slice(&one);
    }
    c.send(&bytes).await;
    c.read_replies(n).await;
}

/// The samples of an exposition text as the Prometheus parser reads them:
/// `name{label="value",...}` (labels sorted) -> value. `None` when the parser is missing.
fn parse(text: &str) -> Option<HashMap<String, f64>> {
    const SCRIPT: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join('%s="%s"' % (k, v) for k, v in sorted(s.labels.items()))
        out["%s{%s}" % (s.name, labels)] = s.value
print(json.dumps(out))
"#;
    // The first Python that has the parser: the one on PATH (a pyenv, a venv) or Debian's.
    let python = ["python3", "/usr/bin/python3"].into_iter().find(|p| {
        std::process::Command::new(p)
            .args(["-c", "import prometheus_client.parser"])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    let Some(python) = python else {
        eprintln!(
            "SKIPPED: no python3 with the prometheus_client parser (python3-prometheus-client)"
        );
        return None;
    };
    use std::io::Write;
    let mut child = match std::process::Command::new(python)
        .args(["-c", SCRIPT])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("SKIPPED: python3 is not installed ({e})");
            return None;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("No module named 'prometheus_client'") {
        eprintln!("SKIPPED: the Python prometheus_client parser is not installed");
        return None;
    }
    assert!(
        out.status.success(),
        "the Prometheus parser refused the text: {err}\n{text}"
    );
    Some(serde_json::from_slice(&out.stdout).expect("the parser's JSON"))
}

#[tokio::test]
async fn metrics_count_known_traffic_exactly_in_a_format_prometheus_parses() {
    let server = with_http(Config::default()).await;
    let base = format!("http://{}", server.http.expect("an HTTP listener"));
    let mut c = server.raw().await;
    c.cmd(&["POLICY.SET", "api", "RATE", "1000/1m"]).await;
    // 1,000 allowed and 200 denied on one policy (the manual clock does not move), in
    // pipelined batches.
    for _ in 0..12 {
        pipeline(&mut c, &["LIMIT.CHECK", "api", "customer-42"], 100).await;
    }
    // The bare GCRA family: a burst of 5 (max_burst 4), then denials.
    pipeline(&mut c, &["CL.THROTTLE", "k", "4", "1", "60"], 8).await;
    c.cmd(&["LPUSH", "k", "x"]).await; // WRONGTYPE
    c.cmd(&["NOSUCHCOMMAND"]).await; // ERR
    c.cmd(&["PING"]).await; // the batches above are flushed
    let Some((code, body, headers)) = curl(&format!("{base}/metrics"), &[]) else {
        return;
    };
    assert_eq!(code, 200, "{body}");
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{headers}"
    );
    // Identities never become labels.
    assert!(!body.contains("customer-42"), "{body}");
    let Some(m) = parse(&body) else {
        return;
    };
    let at = |k: &str| -> f64 {
        *m.get(k)
            .unwrap_or_else(|| panic!("no sample {k} in\n{body}"))
    };
    let rule = |o: &str| {
        format!(r#"limitkv_decisions_total{{outcome="{o}",policy="api",rule="rate-1m"}}"#)
    };
    assert_eq!(at(&rule("allowed")), 1000.0);
    assert_eq!(at(&rule("denied")), 200.0);
    assert_eq!(at(&rule("warned")), 0.0);
    assert_eq!(at(&rule("dry_run_denied")), 0.0);
    assert_eq!(
        at(r#"limitkv_decisions_total{outcome="allowlisted",policy="api",rule="*"}"#),
        0.0
    );
    assert_eq!(
        at(r#"limitkv_policy_checks_total{outcome="allowed",policy="api"}"#),
        1000.0
    );
    assert_eq!(
        at(r#"limitkv_policy_checks_total{outcome="denied",policy="api"}"#),
        200.0
    );
    assert_eq!(
        at(r#"limitkv_commands_total{command="limit.check"}"#),
        1200.0
    );
    assert_eq!(
        at(r#"limitkv_command_decisions_total{command="limit.check",outcome="denied"}"#),
        200.0
    );
    assert_eq!(
        at(r#"limitkv_command_decisions_total{command="cl.throttle",outcome="allowed"}"#),
        5.0
    );
    assert_eq!(
        at(r#"limitkv_command_decisions_total{command="cl.throttle",outcome="denied"}"#),
        3.0
    );
    // The decision latency histogram counts every decision, and its +Inf bucket equals it.
    assert_eq!(
        at(r#"limitkv_decision_duration_seconds_count{command="limit.check"}"#),
        1200.0
    );
    assert_eq!(
        at(r#"limitkv_decision_duration_seconds_bucket{command="limit.check",le="+Inf"}"#),
        1200.0
    );
    assert!(at(r#"limitkv_decision_duration_seconds_sum{command="limit.check"}"#) > 0.0);
    assert_eq!(
        body.matches(
            r#"limitkv_decision_duration_seconds_bucket{command="limit.check",le="+Inf"}"#
        )
        .count(),
        1,
        "{body}"
    );
    assert_eq!(at(r#"limitkv_commands_failed_total{command="lpush"}"#), 1.0);
    assert_eq!(at(r#"limitkv_errors_total{code="WRONGTYPE"}"#), 1.0);
    assert_eq!(at(r#"limitkv_errors_total{code="ERR"}"#), 1.0);
    assert_eq!(at("limitkv_error_replies_total{}"), 2.0);
    assert_eq!(at("limitkv_connected_clients{}"), 1.0);
    assert_eq!(at("limitkv_aof_enabled{}"), 0.0);
    assert!(at("limitkv_memory_used_bytes{}") > 0.0);
    assert_eq!(at("limitkv_memory_max_bytes{}"), 0.0);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn metrics_report_the_append_only_files_fsyncs() {
    let dir = common::temp_dir();
    let server = with_http(Config {
        appendonly: true,
        appendfsync: limitkv::persist::FsyncPolicy::Always,
        dir: dir.path().to_owned(),
        ..Config::default()
    })
    .await;
    let base = format!("http://{}", server.http.unwrap());
    let mut c = server.raw().await;
    for i in 0..5 {
        c.cmd(&["SET", &format!("k{i}"), "v"]).await;
    }
    let Some((code, body, _)) = curl(&format!("{base}/metrics"), &[]) else {
        return;
    };
    assert_eq!(code, 200);
    let Some(m) = parse(&body) else {
        return;
    };
    let fsyncs = server.shared.engine.aof.get().unwrap().stats().fsyncs;
    assert!(fsyncs >= 5, "{fsyncs} fsyncs");
    assert_eq!(m["limitkv_aof_enabled{}"], 1.0);
    assert_eq!(
        m["limitkv_aof_fsync_duration_seconds_count{}"],
        fsyncs as f64
    );
    assert_eq!(
        m[r#"limitkv_aof_fsync_duration_seconds_bucket{le="+Inf"}"#],
        fsyncs as f64
    );
    assert_eq!(m["limitkv_aof_fsync_lag_seconds{}"], 0.0);
    assert_eq!(m["limitkv_aof_fsync_errors_total{}"], 0.0);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn metrics_need_credentials_when_the_default_user_has_a_password() {
    let server = with_http(Config {
        requirepass: Some("s3cret".into()),
        ..Config::default()
    })
    .await;
    let url = format!("http://{}/metrics", server.http.unwrap());
    let Some((code, body, _)) = curl(&url, &[]) else {
        return;
    };
    assert_eq!(code, 401, "{body}");
    let (code, body, _) = curl(&url, &["-H", "Authorization: Bearer wrong"]).unwrap();
    assert_eq!(code, 401, "{body}");
    let (code, body, _) = curl(&url, &["-H", "Authorization: Bearer s3cret"]).unwrap();
    assert_eq!(code, 200);
    assert!(body.contains("limitkv_commands_processed_total"), "{body}");
    server.stop().await.unwrap();
}
