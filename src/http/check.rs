//! The check API on the HTTP listener: policy decisions for API gateways, reverse proxies and
//! code that does not speak RESP (issue 19). See `docs/http.md` ("Check API") for the contract.
//!
//! Routes (all behind [`super::auth::require`]):
//! - `POST /v1/check` (JSON body) and `GET /v1/check?policy=..&id=..`: `LIMIT.CHECK`; 200 when
//!   admitted, 429 when refused, with `RateLimit`, `RateLimit-Policy` and `Retry-After`, and the
//!   command's reply as a JSON object (plus `warning`);
//! - `GET|POST /v1/status`: `LIMIT.STATUS` (changes nothing; always 200);
//! - `POST /v1/reserve`: `LIMIT.RESERVE` (200 / 429, plus the reservation id);
//! - `POST /v1/settle`, `POST /v1/cancel`: `LIMIT.SETTLE` / `LIMIT.CANCEL`;
//! - `GET /v1/auth?policy=..`: the check for nginx `auth_request` (and other forward-auth
//!   gateways): 200 when admitted, 403 when refused, the same headers, no body.
//!
//! No RESP command is dispatched: a route builds the command's arguments from its JSON body or
//! query, parses them with the command's own parser ([`crate::cmd::policy`]), and runs the
//! engine steps `LIMIT.CHECK` runs (plan, ACL check of the request's user on the planned keys
//! with [`crate::cmd::permissions::refused_key`], execute) in one [`Call`], so RESP and HTTP
//! decide alike and refuse the same input with the same error texts. The identity comes from
//! the body or query, else from the header named by `http-identity-header`. A surface: it
//! calls `cmd`, `engine` and `acl`; nothing imports it.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, FromRequest, Query, Request, State};
use axum::http::{header, Extensions, HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;

use super::auth::HttpUser;
use super::check_json::{self, json_string};
use super::error;
use crate::acl::user::KEY_ALL;
use crate::acl::User;
use crate::cmd::{cluster, evict, flags, memory, permissions, policy, CommandSpec, Shared};
use crate::engine::{Call, CheckKind, CheckOutcome};
use crate::error::CommandError;
use crate::metrics::LocalStats;
use crate::policy::headers::Headers;
use crate::protocol::encode::format_double;
use crate::protocol::{Frame, Scalar};

/// The check API's routes, for the authenticated part of the router.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v1/check", get(check_get).post(check_post))
        .route("/v1/status", get(status_get).post(status_post))
        .route("/v1/reserve", post(reserve))
        .route("/v1/settle", post(settle))
        .route("/v1/cancel", post(cancel))
        .route("/v1/auth", get(auth))
}

/// A request's fields, from a JSON body or a query string, as text (the command's parser
/// checks them).
#[derive(Debug, Default)]
struct Input {
    policy: Option<String>,
    identity: Option<Bytes>,
    scope: Option<String>,
    tokens: Option<String>,
    cost: Option<String>,
    ip: Option<String>,
    priority: Option<String>,
    dry_run: bool,
    partial: bool,
    ttl: Option<String>,
    reservation: Option<String>,
    /// The fields given, by their canonical names, to refuse those a route does not take.
    given: Vec<&'static str>,
}

/// Fields of a check or status.
const CHECK_FIELDS: &[&str] = &[
    "policy", "identity", "scope", "tokens", "cost", "ip", "priority",
];
/// Fields of a check (and `/v1/auth`).
const CHECK_AND_DRY_RUN: &[&str] = &[
    "policy", "identity", "scope", "tokens", "cost", "ip", "priority", "dry_run",
];

fn bad_request(message: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, message)
}

impl Input {
    /// Sets field `name` (`id` is `identity`, `dryrun` is `dry_run`) from `value`.
    fn set(&mut self, name: &str, value: Field<'_>) -> Result<(), Response> {
        let canonical = match name {
            "policy" => "policy",
            "identity" | "id" => "identity",
            "scope" => "scope",
            "tokens" => "tokens",
            "cost" => "cost",
            "ip" => "ip",
            "priority" => "priority",
            "dry_run" | "dryrun" => "dry_run",
            "partial" => "partial",
            "ttl" => "ttl",
            "reservation" => "reservation",
            _ => return Err(bad_request(format!("ERR unknown field '{name}'"))),
        };
        if self.given.contains(&canonical) {
            return Err(bad_request(format!("ERR field '{canonical}' given twice")));
        }
        if let Field::Json(Value::Null) = value {
            return Ok(());
        }
        self.given.push(canonical);
        if canonical == "dry_run" {
            self.dry_run = value.flag(canonical)?;
            return Ok(());
        }
        if canonical == "partial" {
            self.partial = value.flag(canonical)?;
            return Ok(());
        }
        let text = value.text(canonical)?;
        match canonical {
            "policy" => self.policy = Some(text),
            "identity" => self.identity = Some(Bytes::from(text)),
            "scope" => self.scope = Some(text),
            "tokens" => self.tokens = Some(text),
            "cost" => self.cost = Some(text),
            "ip" => self.ip = Some(text),
            "priority" => self.priority = Some(text),
            "ttl" => self.ttl = Some(text),
            _ => self.reservation = Some(text),
        }
        Ok(())
    }

    /// The fields of a JSON object body.
    fn from_json(body: Result<Bytes, BytesRejection>) -> Result<Input, Response> {
        let body = body.map_err(|e| error(e.status(), e.body_text()))?;
        let value: Value = serde_json::from_slice(&body)
            .map_err(|e| bad_request(format!("ERR failed to parse the JSON body: {e}")))?;
        let Value::Object(map) = value else {
            return Err(bad_request("ERR the body is a JSON object"));
        };
        let mut input = Input::default();
        for (name, value) in &map {
            input.set(name, Field::Json(value))?;
        }
        Ok(input)
    }

    /// The fields of a query string.
    fn from_query(uri: &Uri) -> Result<Input, Response> {
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map_err(|e| bad_request(format!("ERR bad query string: {e}")))?;
        let mut input = Input::default();
        for (name, value) in &pairs {
            input.set(name, Field::Query(value))?;
        }
        Ok(input)
    }

    /// Refuses a field outside `allowed`.
    fn only(&self, allowed: &[&str], route: &str) -> Result<(), Response> {
        match self.given.iter().find(|f| !allowed.contains(f)) {
            Some(f) => Err(bad_request(format!("ERR {route} takes no '{f}'"))),
            None => Ok(()),
        }
    }
}

/// One field's value.
enum Field<'v> {
    Json(&'v Value),
    Query(&'v str),
}

impl Field<'_> {
    /// A string, or a number's JSON text (`1`, `0.25`).
    fn text(&self, name: &str) -> Result<String, Response> {
        match self {
            Field::Query(s) => Ok((*s).to_owned()),
            Field::Json(Value::String(s)) => Ok(s.clone()),
            Field::Json(Value::Number(n)) => Ok(n.to_string()),
            Field::Json(_) => Err(bad_request(format!(
                "ERR '{name}' must be a string or a number"
            ))),
        }
    }

    /// A boolean: JSON `true`/`false`; in a query `1`/`true`/`yes` or `0`/`false`/`no`/empty.
    fn flag(&self, name: &str) -> Result<bool, Response> {
        match self {
            Field::Json(Value::Bool(b)) => Ok(*b),
            Field::Query(s) if ["1", "true", "yes"].contains(s) => Ok(true),
            Field::Query(s) if ["", "0", "false", "no"].contains(s) => Ok(false),
            _ => Err(bad_request(format!("ERR '{name}' must be true or false"))),
        }
    }
}

/// Who sent a request: its ACL user and, for the `ACL LOG`, its address and route.
struct Origin {
    user: Arc<User>,
    peer: Option<SocketAddr>,
    route: &'static str,
}

impl Origin {
    fn of(ext: &Extensions, route: &'static str) -> Result<Origin, Response> {
        Ok(Origin {
            user: HttpUser::of(ext)?,
            peer: ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0),
            route,
        })
    }

    /// Shows the command a route ran (`args`, as on the RESP port) to `MONITOR`, with the
    /// request's peer address as the client.
    fn monitor(&self, shared: &Shared, now: crate::clock::Nanos, args: &[Bytes]) {
        if shared.monitors.is_active() {
            let peer = self.peer.map(|p| p.to_string()).unwrap_or_default();
            crate::cmd::monitor::feed_line(shared, now.as_nanos(), 0, &peer, args);
        }
    }

    /// The `ACL LOG` entry's client info (as for a refused HTTP authentication).
    fn describe(&self) -> String {
        let peer = self.peer.map(|p| p.to_string()).unwrap_or_default();
        format!("addr={peer} http {}", self.route)
    }
}

/// A command error as an HTTP error: 403 for an ACL refusal, 404 for an unknown policy or
/// reservation, 500 when the append-only file failed, else 400; the body carries the RESP
/// error's text.
fn command_error(e: CommandError) -> Response {
    let text = e.to_string();
    if let CommandError::Moved(slot, node) = &e {
        // In cluster mode, an identity (or reservation) whose slot another node serves: 421
        // Misdirected Request, naming that node's RESP address as `MOVED` does.
        let body = serde_json::json!({ "error": text, "slot": slot, "node": node });
        return (StatusCode::MISDIRECTED_REQUEST, axum::Json(body)).into_response();
    }
    let status = match e {
        CommandError::ClusterDown(_) | CommandError::StalePolicy(..) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        CommandError::NoPermCommand(_) | CommandError::NoPermKey | CommandError::NoPermChannel => {
            StatusCode::FORBIDDEN
        }
        _ if text.starts_with("ERR unknown policy ")
            || text.starts_with("ERR unknown reservation ") =>
        {
            StatusCode::NOT_FOUND
        }
        _ if text.starts_with("MISCONF ") => StatusCode::INTERNAL_SERVER_ERROR,
        // Memory over `maxmemory` (Redis's `-OOM`): the server cannot take the request now.
        CommandError::OutOfMemory => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    error(status, text)
}

/// The identity of a request that names none: the `http-identity-header` header's value (the
/// first address of an `X-Forwarded-For` list).
fn header_identity(shared: &Shared, headers: &HeaderMap) -> Result<Bytes, Response> {
    let config = shared.engine.config.read();
    let name = config.http_identity_header.as_str();
    if name.is_empty() {
        return Err(bad_request(
            "ERR missing identity: give 'identity' (or 'id'), or set http-identity-header",
        ));
    }
    let value = headers
        .get(name)
        .map(|v| v.as_bytes())
        .map(|v| {
            if name == "x-forwarded-for" {
                v.split(|&b| b == b',').next().unwrap_or(v)
            } else {
                v
            }
        })
        .map(|v| v.trim_ascii())
        .filter(|v| !v.is_empty());
    match value {
        Some(v) => Ok(Bytes::copy_from_slice(v)),
        None => Err(bad_request(format!(
            "ERR missing identity: no 'identity' (or 'id') and no {name} header"
        ))),
    }
}

/// The arguments of the `LIMIT.*` command a check of `kind` is, from `input`.
fn check_args(
    shared: &Shared,
    headers: &HeaderMap,
    input: Input,
    kind: CheckKind,
) -> Result<Vec<Bytes>, Response> {
    let policy = input
        .policy
        .ok_or_else(|| bad_request("ERR missing policy"))?;
    let identity = match input.identity {
        Some(id) => id,
        None => header_identity(shared, headers)?,
    };
    let mut args = Vec::with_capacity(12);
    args.push(Bytes::from_static(policy::check_spec(kind).name.as_bytes()));
    args.push(Bytes::from(policy));
    args.push(identity);
    let options = [
        ("SCOPE", input.scope),
        ("TOKENS", input.tokens),
        ("COST", input.cost),
        ("IP", input.ip),
        ("PRIORITY", input.priority),
        ("TTL", input.ttl),
    ];
    for (name, value) in options {
        if let Some(v) = value {
            args.push(Bytes::from_static(name.as_bytes()));
            args.push(Bytes::from(v));
        }
    }
    if input.dry_run {
        args.push(Bytes::from_static(b"DRYRUN"));
    }
    Ok(args)
}

/// Like the dispatcher: while the append-only file cannot be written, a write command
/// (everything but a status) is refused with `MISCONF ...` (answered 500).
fn writable(shared: &Shared, spec: &'static CommandSpec) -> Result<(), Response> {
    match shared.engine.aof.get() {
        Some(w) if spec.has(flags::WRITE) => w
            .check_writable()
            .map_err(|e| command_error(CommandError::Coded(e.to_string()))),
        _ => Ok(()),
    }
}

/// A check, status or reserve: the ACL check of the command, the command's parser, then in one
/// engine call the plan, the ACL check of the planned keys (before anything is charged) and
/// the execution.
async fn run_check(
    shared: &Shared,
    origin: &Origin,
    headers: &HeaderMap,
    input: Input,
    kind: CheckKind,
) -> Result<CheckOutcome, Response> {
    let spec = policy::check_spec(kind);
    let args = check_args(shared, headers, input, kind)?;
    let client = || origin.describe();
    permissions::check_command_as(shared, &origin.user, spec, &args, &client)
        .map_err(command_error)?;
    cluster::route_request(shared, spec, &args).map_err(command_error)?;
    writable(shared, spec)?;
    let request = policy::parse_check(&args, kind == CheckKind::Check, kind == CheckKind::Reserve)
        .map_err(command_error)?;
    // CLIENT PAUSE delays these as it delays the command on a RESP connection.
    shared
        .pause
        .wait_for_http(&*shared.engine.clock, spec.has(flags::WRITE))
        .await;
    let (mut stats, mut seq) = (LocalStats::default(), None);
    let now = shared.engine.clock.now();
    let outcome = {
        let mut call = Call::new(&shared.engine, 0, now, &mut stats, &mut seq);
        // maxmemory as on the RESP port (`cmd::memory`): over the limit, an evicting policy
        // makes room first; failing that, a check may still rewrite rule keys that all exist,
        // and anything else that would grow memory is refused with `OOM`.
        let over = spec.has(flags::DENYOOM)
            && shared.metrics.over_maxmemory()
            && !evict::make_room_with(shared, now, &mut call);
        call.plan_check(kind, request)
            .map_err(CommandError::from)
            .and_then(|plan| {
                permissions::check_derived_keys_as(
                    shared,
                    &origin.user,
                    plan.keys(),
                    policy::key_need(kind),
                    &client,
                )?;
                if over
                    && (kind != CheckKind::Check || !memory::all_exist(&mut call, now, plan.keys()))
                {
                    return Err(CommandError::OutOfMemory);
                }
                Ok(call.execute_check(plan))
            })
    };
    stats.commands += 1;
    if outcome.is_err() {
        stats.errors += 1;
    }
    shared.metrics.flush(&mut stats);
    origin.monitor(shared, now, &args);
    let outcome = outcome.map_err(command_error)?;
    super::durable(shared, seq).await?;
    Ok(outcome)
}

const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

/// Adds the `RateLimit`, `RateLimit-Policy`, `Retry-After` and `X-RateLimit-*` fields that
/// are set.
fn add_headers(fields: &mut HeaderMap, h: &Headers) {
    let text = |s: &Option<String>| s.as_deref().and_then(|s| HeaderValue::from_str(s).ok());
    if let Some(v) = text(&h.ratelimit) {
        fields.insert(RATELIMIT, v);
    }
    if let Some(v) = text(&h.policy) {
        fields.insert(RATELIMIT_POLICY, v);
    }
    if let Some(s) = h.retry_after {
        fields.insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    if let Some(l) = h.legacy {
        fields.insert(X_RATELIMIT_LIMIT, HeaderValue::from(l.limit));
        fields.insert(X_RATELIMIT_REMAINING, HeaderValue::from(l.remaining));
        fields.insert(X_RATELIMIT_RESET, HeaderValue::from(l.reset));
    }
}

/// A check's answer: `status`, the rate-limit headers and the reply as JSON (written straight
/// from the outcome, [`super::check_json`]).
fn check_reply(o: &CheckOutcome, status: StatusCode) -> Response {
    let mut body = Vec::with_capacity(512 + 320 * o.rules.len());
    check_json::write_check(o, &mut body);
    let mut response = Response::new(axum::body::Body::from(body));
    *response.status_mut() = status;
    let fields = response.headers_mut();
    fields.reserve(8);
    fields.insert(header::CONTENT_TYPE, APPLICATION_JSON);
    add_headers(fields, &o.headers);
    response
}

/// `frame` as a JSON body with `status`.
fn json_reply(status: StatusCode, frame: &Frame) -> Response {
    let mut body = Vec::with_capacity(1024);
    write_json(frame, &mut body);
    (status, [(header::CONTENT_TYPE, APPLICATION_JSON)], body).into_response()
}

/// Appends `frame` as JSON: maps as objects, booleans as booleans, nulls as `null`.
pub fn write_json(frame: &Frame, out: &mut Vec<u8>) {
    let list = |items: &[Frame], out: &mut Vec<u8>| {
        out.push(b'[');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_json(item, out);
        }
        out.push(b']');
    };
    match frame {
        Frame::Simple(b) | Frame::Bulk(b) | Frame::Error(b) | Frame::BigNumber(b) => {
            json_string(b, out)
        }
        Frame::Verbatim(_, b) => json_string(b, out),
        Frame::Integer(n) => out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
        Frame::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Frame::Double(d) if d.is_finite() => {
            let _ = serde_json::to_writer(&mut *out, d);
        }
        Frame::Double(d) => json_string(format_double(*d).as_bytes(), out),
        Frame::Null | Frame::NullArray => out.extend_from_slice(b"null"),
        Frame::Array(items) | Frame::Set(items) | Frame::Push(items) | Frame::Seq(items) => {
            list(items, out)
        }
        Frame::Map(pairs) => {
            out.push(b'{');
            for (i, (k, v)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                match k {
                    Frame::Simple(b) | Frame::Bulk(b) => json_string(b, out),
                    other => {
                        let mut key = Vec::new();
                        write_json(other, &mut key);
                        json_string(&key, out);
                    }
                }
                out.push(b':');
                write_json(v, out);
            }
            out.push(b'}');
        }
        Frame::Fields(fields) => {
            out.push(b'{');
            for (i, (name, v)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                json_string(name.as_bytes(), out);
                out.push(b':');
                match v {
                    Scalar::Int(n) => write_json(&Frame::Integer(*n), out),
                    Scalar::Bool(b) => write_json(&Frame::Boolean(*b), out),
                    Scalar::Str(s) => json_string(s.as_bytes(), out),
                    Scalar::Text(t) => json_string(t.as_bytes(), out),
                }
            }
            out.push(b'}');
        }
    }
}

/// A JSON route's request taken apart without copying: who sent it (for `route`), its
/// headers, and its body read under the router's body limit.
async fn json_request(
    mut req: Request,
    route: &'static str,
) -> Result<(Origin, HeaderMap, Result<Bytes, BytesRejection>), Response> {
    let origin = Origin::of(req.extensions(), route)?;
    // The body extractor needs only the extensions (the body limit), not the headers.
    let headers = std::mem::take(req.headers_mut());
    let body = Bytes::from_request(req, &()).await;
    Ok((origin, headers, body))
}

/// 200 when admitted, 429 when refused.
fn admitted(o: &CheckOutcome) -> StatusCode {
    if o.allowed {
        StatusCode::OK
    } else {
        StatusCode::TOO_MANY_REQUESTS
    }
}

/// `POST /v1/check`.
async fn check_post(State(shared): State<Arc<Shared>>, req: Request) -> Result<Response, Response> {
    let (origin, headers, body) = json_request(req, "POST /v1/check").await?;
    let input = Input::from_json(body)?;
    check(&shared, &origin, &headers, input).await
}

/// `GET /v1/check?policy=..&id=..`.
async fn check_get(State(shared): State<Arc<Shared>>, req: Request) -> Result<Response, Response> {
    let origin = Origin::of(req.extensions(), "GET /v1/check")?;
    let input = Input::from_query(req.uri())?;
    check(&shared, &origin, req.headers(), input).await
}

async fn check(
    shared: &Shared,
    origin: &Origin,
    headers: &HeaderMap,
    input: Input,
) -> Result<Response, Response> {
    input.only(CHECK_AND_DRY_RUN, "/v1/check")?;
    let o = run_check(shared, origin, headers, input, CheckKind::Check).await?;
    Ok(check_reply(&o, admitted(&o)))
}

/// `GET /v1/status?policy=..&id=..`.
async fn status_get(State(shared): State<Arc<Shared>>, req: Request) -> Result<Response, Response> {
    let origin = Origin::of(req.extensions(), "GET /v1/status")?;
    let input = Input::from_query(req.uri())?;
    status(&shared, &origin, req.headers(), input).await
}

/// `POST /v1/status`.
async fn status_post(
    State(shared): State<Arc<Shared>>,
    req: Request,
) -> Result<Response, Response> {
    let (origin, headers, body) = json_request(req, "POST /v1/status").await?;
    let input = Input::from_json(body)?;
    status(&shared, &origin, &headers, input).await
}

async fn status(
    shared: &Shared,
    origin: &Origin,
    headers: &HeaderMap,
    input: Input,
) -> Result<Response, Response> {
    input.only(CHECK_FIELDS, "/v1/status")?;
    let o = run_check(shared, origin, headers, input, CheckKind::Status).await?;
    Ok(check_reply(&o, StatusCode::OK))
}

/// `POST /v1/reserve`.
async fn reserve(State(shared): State<Arc<Shared>>, req: Request) -> Result<Response, Response> {
    let (origin, headers, body) = json_request(req, "POST /v1/reserve").await?;
    let input = Input::from_json(body)?;
    input.only(&[CHECK_FIELDS, &["ttl"]].concat(), "/v1/reserve")?;
    let o = run_check(&shared, &origin, &headers, input, CheckKind::Reserve).await?;
    Ok(check_reply(&o, admitted(&o)))
}

/// `GET /v1/auth?policy=..`: the check for `auth_request`: 200 or 403, headers, no body.
async fn auth(State(shared): State<Arc<Shared>>, req: Request) -> Result<Response, Response> {
    let origin = Origin::of(req.extensions(), "GET /v1/auth")?;
    let input = Input::from_query(req.uri())?;
    input.only(CHECK_AND_DRY_RUN, "/v1/auth")?;
    let o = run_check(&shared, &origin, req.headers(), input, CheckKind::Check).await?;
    let status = if o.allowed {
        StatusCode::OK
    } else {
        StatusCode::FORBIDDEN
    };
    let mut response = status.into_response();
    add_headers(response.headers_mut(), &o.headers);
    Ok(response)
}

/// `POST /v1/settle`: `{"reservation": id, "tokens": n, "cost": "x"}`, with `"partial": true`
/// a streaming settle (`LIMIT.SETTLE id PARTIAL ...`: running totals, `exhausted`).
async fn settle(
    State(shared): State<Arc<Shared>>,
    ext: Extensions,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Response> {
    let origin = Origin::of(&ext, "POST /v1/settle")?;
    let input = Input::from_json(body)?;
    input.only(&["reservation", "tokens", "cost", "partial"], "/v1/settle")?;
    run_settle(&shared, &origin, input, true).await
}

/// `POST /v1/cancel`: `{"reservation": id}`.
async fn cancel(
    State(shared): State<Arc<Shared>>,
    ext: Extensions,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Response> {
    let origin = Origin::of(&ext, "POST /v1/cancel")?;
    let input = Input::from_json(body)?;
    input.only(&["reservation"], "/v1/cancel")?;
    run_settle(&shared, &origin, input, false).await
}

/// A settle or cancel, with the steps of `LIMIT.SETTLE` / `LIMIT.CANCEL`.
async fn run_settle(
    shared: &Shared,
    origin: &Origin,
    input: Input,
    settle: bool,
) -> Result<Response, Response> {
    let spec = policy::settle_spec(settle);
    let id = input
        .reservation
        .ok_or_else(|| bad_request("ERR missing reservation"))?;
    let mut args = vec![Bytes::from_static(spec.name.as_bytes()), Bytes::from(id)];
    let partial = input.partial;
    if partial {
        args.push(Bytes::from_static(b"PARTIAL"));
    }
    for (name, value) in [("TOKENS", input.tokens), ("COST", input.cost)] {
        if let Some(v) = value {
            args.push(Bytes::from_static(name.as_bytes()));
            args.push(Bytes::from(v));
        }
    }
    let client = || origin.describe();
    permissions::check_command_as(shared, &origin.user, spec, &args, &client)
        .map_err(command_error)?;
    cluster::route_request(shared, spec, &args).map_err(command_error)?;
    writable(shared, spec)?;
    // The options after PARTIAL parse as a settle's.
    let mut plain = args.clone();
    if partial {
        plain.remove(2);
    }
    let (id, actual) = policy::parse_settle(&plain, settle).map_err(command_error)?;
    if partial && actual.is_none_or(|a| a.tokens.is_none() && a.cost.is_none()) {
        return Err(command_error(CommandError::other(
            "PARTIAL needs TOKENS or COST",
        )));
    }
    shared
        .pause
        .wait_for_http(&*shared.engine.clock, spec.has(flags::WRITE))
        .await;
    let (mut stats, mut seq) = (LocalStats::default(), None);
    let now = shared.engine.clock.now();
    let settled = {
        let mut call = Call::new(&shared.engine, 0, now, &mut stats, &mut seq);
        call.plan_settle(&id, actual)
            .map_err(CommandError::from)
            .and_then(|plan| {
                permissions::check_derived_keys_as(
                    shared,
                    &origin.user,
                    plan.keys(),
                    KEY_ALL,
                    &client,
                )?;
                Ok(if partial {
                    policy::partial_frame(call.execute_partial(plan)?)
                } else {
                    policy::settled_frame(call.execute_settle(plan)?)
                })
            })
    };
    stats.commands += 1;
    if settled.is_err() {
        stats.errors += 1;
    }
    shared.metrics.flush(&mut stats);
    origin.monitor(shared, now, &args);
    let frame = settled.map_err(command_error)?;
    super::durable(shared, seq).await?;
    Ok(json_reply(StatusCode::OK, &frame))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::limiter::field;

    #[test]
    fn replies_are_written_as_json_objects() {
        let f = Frame::Map(vec![
            (field("a"), Frame::Boolean(true)),
            (field("b"), Frame::Null),
            (
                field("c"),
                Frame::Array(vec![Frame::bulk("x\"y"), Frame::Integer(-1)]),
            ),
            (field("d"), Frame::Double(1.5)),
        ]);
        let mut out = Vec::new();
        write_json(&f, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a":true,"b":null,"c":["x\"y",-1],"d":1.5}"#
        );
    }
}
