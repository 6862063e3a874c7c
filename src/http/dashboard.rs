//! The dashboard (`GET /dashboard`) and the JSON routes it reads (`/v1/usage/...`).
//!
//! The page is three files embedded in the binary (`assets/dashboard.{html,css,js}`: no CDN,
//! no build step, works offline). It polls `/v1/usage/overview` every few seconds and draws
//! its charts as inline SVG. Every JSON route runs `LIMIT.TOP`, `LIMIT.HISTORY`,
//! `LIMIT.USAGE`, `POLICY.LIST`, `SCAN`, `BREAKER.STATE` and `INFO` as the request's ACL user
//! (through the same client the Upstash routes use), so a user sees only what its ACL rules
//! let it run; a refused command answers 403 (`NOPERM ...`), bad input 400. The routes sit
//! behind [`super::auth::require`]: with a password set, a browser is asked for Basic
//! credentials (user `default` and the `requirepass` password, or an ACL user).
//!
//! ```text
//! GET /v1/usage/overview?window=1h|24h   policies with per-minute series, top identities by
//!                                        denials and by usage, breakers, memory, clients
//! GET /v1/usage/top?by=denied&window=1h&count=10&policy=p     LIMIT.TOP
//! GET /v1/usage/history?policy=p&identity=i&window=1h         LIMIT.HISTORY
//! GET /v1/usage/identity?policy=p&identity=i                  LIMIT.USAGE
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, Extensions, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::check::write_json;
use super::error;
use super::upstash::Client;
use crate::cmd::Shared;
use crate::protocol::Frame;

const HTML: &str = include_str!("assets/dashboard.html");
const CSS: &str = include_str!("assets/dashboard.css");
const JS: &str = include_str!("assets/dashboard.js");

/// Policies the overview reports at most (their series are in every refresh).
pub const MAX_POLICIES: usize = 50;
/// Breakers the overview reports at most.
pub const MAX_BREAKERS: usize = 50;

/// The dashboard's routes, for the authenticated part of the router.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/dashboard", get(page))
        .route("/dashboard/", get(page))
        .route("/dashboard/app.js", get(script))
        .route("/dashboard/style.css", get(style))
        .route("/v1/usage/overview", get(overview))
        .route("/v1/usage/top", get(top))
        .route("/v1/usage/history", get(history))
        .route("/v1/usage/identity", get(identity))
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

async fn page() -> Response {
    asset("text/html; charset=utf-8", HTML)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

type Params = Query<HashMap<String, String>>;

/// A JSON body, never cached.
fn json(body: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// A command's error reply as an HTTP error: 403 for an ACL refusal, 400 otherwise.
fn refused(frame: &Frame) -> Option<Response> {
    let Frame::Error(e) = frame else {
        return None;
    };
    let text = String::from_utf8_lossy(e).into_owned();
    let status = if text.starts_with("NOPERM") {
        StatusCode::FORBIDDEN
    } else {
        StatusCode::BAD_REQUEST
    };
    Some(error(status, text))
}

/// Runs one command as the request's user; an error reply becomes the response.
async fn run(client: &mut Client, words: &[&str]) -> Result<Frame, Response> {
    let req: Vec<Bytes> = words
        .iter()
        .map(|w| Bytes::copy_from_slice(w.as_bytes()))
        .collect();
    let f = client.run(&req).await.into_maps();
    match refused(&f) {
        Some(r) => Err(r),
        None => Ok(f),
    }
}

fn param<'a>(q: &'a Params, name: &str) -> Option<&'a str> {
    q.get(name).map(String::as_str).filter(|s| !s.is_empty())
}

fn required<'a>(q: &'a Params, name: &str) -> Result<&'a str, Response> {
    param(q, name).ok_or_else(|| error(StatusCode::BAD_REQUEST, format!("missing '{name}'")))
}

/// Runs `words`, answering its reply as JSON.
async fn one(shared: Arc<Shared>, ext: &Extensions, words: &[&str]) -> Response {
    let mut client = match Client::open(shared, ext) {
        Ok(c) => c,
        Err(r) => return r,
    };
    match run(&mut client, words).await {
        Ok(f) => {
            let mut out = Vec::new();
            write_json(&f, &mut out);
            json(out)
        }
        Err(r) => r,
    }
}

async fn top(State(shared): State<Arc<Shared>>, ext: Extensions, q: Params) -> Response {
    let by = param(&q, "by").unwrap_or("denied");
    let mut words = vec!["LIMIT.TOP", by];
    for (name, word) in [
        ("window", "WINDOW"),
        ("count", "COUNT"),
        ("policy", "POLICY"),
    ] {
        if let Some(v) = param(&q, name) {
            words.extend([word, v]);
        }
    }
    one(shared, &ext, &words).await
}

async fn history(State(shared): State<Arc<Shared>>, ext: Extensions, q: Params) -> Response {
    let policy = match required(&q, "policy") {
        Ok(p) => p,
        Err(r) => return r,
    };
    let mut words = vec!["LIMIT.HISTORY", policy];
    if let Some(i) = param(&q, "identity") {
        words.push(i);
    }
    if let Some(w) = param(&q, "window") {
        words.extend(["WINDOW", w]);
    }
    one(shared, &ext, &words).await
}

async fn identity(State(shared): State<Arc<Shared>>, ext: Extensions, q: Params) -> Response {
    let (policy, id) = match (required(&q, "policy"), required(&q, "identity")) {
        (Ok(p), Ok(i)) => (p, i),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    one(shared, &ext, &["LIMIT.USAGE", policy, id]).await
}

fn field<'a>(f: &'a Frame, name: &str) -> Option<&'a Frame> {
    match f {
        Frame::Map(pairs) => pairs
            .iter()
            .find(|(k, _)| matches!(k, Frame::Bulk(b) | Frame::Simple(b) if &b[..] == name.as_bytes()))
            .map(|(_, v)| v),
        _ => None,
    }
}

fn int(f: Option<&Frame>) -> i64 {
    match f {
        Some(Frame::Integer(n)) => *n,
        _ => 0,
    }
}

fn items(f: Frame) -> Vec<Frame> {
    match f {
        Frame::Array(v) | Frame::Set(v) => v,
        _ => Vec::new(),
    }
}

fn text(f: &Frame) -> String {
    match f {
        Frame::Bulk(b) | Frame::Simple(b) => String::from_utf8_lossy(b).into_owned(),
        Frame::Verbatim(_, b) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    }
}

/// `name:value` lines of an INFO section.
fn info_value(info: &str, name: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(|v| v.trim().to_owned())
}

async fn overview(State(shared): State<Arc<Shared>>, ext: Extensions, q: Params) -> Response {
    match build_overview(shared, &ext, &q).await {
        Ok(v) => json(v.to_string().into_bytes()),
        Err(r) => r,
    }
}

async fn build_overview(
    shared: Arc<Shared>,
    ext: &Extensions,
    q: &Params,
) -> Result<serde_json::Value, Response> {
    use serde_json::json;
    let window = param(q, "window").unwrap_or("1h");
    if window != "1h" && window != "24h" {
        return Err(error(StatusCode::BAD_REQUEST, "window must be 1h or 24h"));
    }
    let usage_bytes = shared
        .engine
        .usage
        .read(shared.engine.clock.now(), |h| (h.memory(), h.tracked()));
    let mut c = Client::open(shared, ext)?;
    let names: Vec<String> = items(run(&mut c, &["POLICY.LIST"]).await?)
        .iter()
        .map(text)
        .take(MAX_POLICIES)
        .collect();
    let mut policies = Vec::new();
    for name in &names {
        let series = items(run(&mut c, &["LIMIT.HISTORY", name, "WINDOW", window]).await?);
        let (mut decisions, mut denied) = (0i64, 0i64);
        let points: Vec<serde_json::Value> = series
            .iter()
            .map(|m| {
                let (d, x) = (int(field(m, "decisions")), int(field(m, "denied")));
                decisions += d;
                denied += x;
                json!([int(field(m, "minute_ms")), d, x])
            })
            .collect();
        policies.push(json!({
            "policy": name,
            "decisions": decisions,
            "denied": denied,
            "series": points,
        }));
    }
    let mut tops = Vec::new();
    for by in ["DENIED", "USAGE"] {
        let f = run(&mut c, &["LIMIT.TOP", by, "WINDOW", window, "COUNT", "10"]).await?;
        let mut out = Vec::new();
        write_json(&f, &mut out);
        tops.push(serde_json::from_slice::<serde_json::Value>(&out).unwrap_or_default());
    }
    let mut breakers = Vec::new();
    let mut cursor = "0".to_owned();
    for _ in 0..8 {
        let reply = items(
            run(
                &mut c,
                &["SCAN", &cursor, "TYPE", "breaker", "COUNT", "1000"],
            )
            .await?,
        );
        let mut parts = reply.into_iter();
        cursor = parts.next().map(|f| text(&f)).unwrap_or_else(|| "0".into());
        for key in parts.next().map(items).unwrap_or_default() {
            if breakers.len() >= MAX_BREAKERS {
                break;
            }
            let name = text(&key);
            let st = run(&mut c, &["BREAKER.STATE", &name]).await?;
            breakers.push(json!({
                "key": name,
                "state": field(&st, "state").map(text).unwrap_or_default(),
                "failures": int(field(&st, "failures")),
                "calls": int(field(&st, "calls")),
            }));
        }
        if cursor == "0" || breakers.len() >= MAX_BREAKERS {
            break;
        }
    }
    let mem = text(&run(&mut c, &["INFO", "memory"]).await?);
    let clients = text(&run(&mut c, &["INFO", "clients"]).await?);
    let mut tops = tops.into_iter();
    Ok(json!({
        "window": window,
        "time_ms": u64::try_from(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())).unwrap_or(0),
        "policies": policies,
        "top_denied": tops.next(),
        "top_usage": tops.next(),
        "breakers": breakers,
        "memory": {
            "used_memory": info_value(&mem, "used_memory").and_then(|v| v.parse::<u64>().ok()),
            "used_memory_human": info_value(&mem, "used_memory_human"),
            "usage_history_bytes": usage_bytes.0,
            "usage_history_identities": usage_bytes.1,
        },
        "clients": {
            "connected_clients": info_value(&clients, "connected_clients").and_then(|v| v.parse::<u64>().ok()),
        },
    }))
}
