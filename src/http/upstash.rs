//! The Upstash-compatible REST API on the HTTP listener, so that `@upstash/redis`,
//! `@upstash/ratelimit` and other Upstash REST clients run unchanged against limitkv.
//!
//! Routes (all behind [`super::auth::require`]; see `docs/http.md` for the contract):
//! - `POST /` with a JSON array command (`["SET","k","v"]`): `{"result": ...}`, or
//!   `{"error": "ERR ..."}` with status 400;
//! - `POST /pipeline` with an array of commands: an array of `{"result"}`/`{"error"}` objects,
//!   run in order (other clients may interleave);
//! - `POST /multi-exec`: the same shape, run as one `MULTI`/`EXEC` (atomically); a command
//!   refused while queuing aborts the whole transaction (400 with `EXECABORT ...`);
//! - `GET|POST|PUT /<command>/<arg>/...`: the command and its arguments as path segments
//!   (percent-decoded), then a non-empty body as one more argument, then the query's
//!   `name=value` pairs as further arguments.
//!
//! Each request runs through [`cmd::dispatch`] with a fresh RESP2 [`Session`] for the request's
//! ACL user, registered as a client named `http` while it runs, so every ACL rule applies as on
//! the RESP port. Under `appendfsync always` the reply waits until the request's AOF records
//! are durable. With `Upstash-Encoding: base64` every string in a result but the status `OK` is
//! base64. Commands that need a connection beyond one request are refused
//! ([`CommandError::NotOverHttp`]). A surface: it calls `cmd` and `protocol`, nothing imports it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{Extensions, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::Value;

use super::auth::HttpUser;
use super::{error, LocalAddr};
use crate::cmd::scripting::{batch_token, busy_gate, runs_lua, takes_token, BusyGate};
use crate::cmd::{self, ClientInfo, Ctx, Session, Shared};
use crate::error::CommandError;
use crate::protocol::encode::format_double;
use crate::protocol::{Frame, Scalar};

/// The name an HTTP request's client carries in `CLIENT LIST`.
pub const CLIENT_NAME: &str = "http";

/// The Upstash REST routes, for the authenticated part of the router.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/", post(single).put(single))
        .route("/pipeline", post(pipeline).put(pipeline))
        .route("/multi-exec", post(multi_exec).put(multi_exec))
        .route(
            "/{*command}",
            axum::routing::get(path_form).post(path_form).put(path_form),
        )
}

/// `POST /`: one command as a JSON array.
async fn single(
    State(shared): State<Arc<Shared>>,
    ext: Extensions,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Response> {
    let opts = Options::read(&headers)?;
    let req = body_json(body).and_then(|v| command_args(&v))?;
    let mut client = Client::open(shared, &ext)?;
    let reply = client.run(&req).await;
    client.finish().await?;
    Ok(single_reply(reply, opts))
}

/// `GET|POST|PUT /<command>/<arg>/...`: the path form.
async fn path_form(
    State(shared): State<Arc<Shared>>,
    ext: Extensions,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Response> {
    let opts = Options::read(&headers)?;
    let body = body.map_err(rejection)?;
    let mut req: Vec<Bytes> = uri.path().split('/').skip(1).map(percent_decode).collect();
    // A path that names no command is not a command: the router's 404, so that unknown routes
    // read as such (the other HTTP routes are matched before this one).
    if !req
        .first()
        .is_some_and(|name| cmd::lookup(name).is_some() || refusal(name).is_some())
    {
        return Err(error(StatusCode::NOT_FOUND, "not found"));
    }
    if method != Method::GET && !body.is_empty() {
        req.push(body);
    }
    for (name, value) in uri.query().unwrap_or("").split('&').filter_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (!k.is_empty() && k != "_token").then_some((k, v))
    }) {
        req.push(percent_decode(name));
        if !value.is_empty() {
            req.push(percent_decode(value));
        }
    }
    let mut client = Client::open(shared, &ext)?;
    let reply = client.run(&req).await;
    client.finish().await?;
    Ok(single_reply(reply, opts))
}

/// `POST /pipeline`: commands run in order, one entry per command.
async fn pipeline(
    State(shared): State<Arc<Shared>>,
    ext: Extensions,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Response> {
    let opts = Options::read(&headers)?;
    let reqs = body_json(body).and_then(|v| commands(&v))?;
    let mut client = Client::open(shared, &ext)?;
    let mut out = Vec::with_capacity(reqs.len());
    for req in &reqs {
        out.push(entry(client.run(req).await, opts));
    }
    client.finish().await?;
    Ok(Json(Value::Array(out)).into_response())
}

/// `POST /multi-exec`: the commands as one transaction.
async fn multi_exec(
    State(shared): State<Arc<Shared>>,
    ext: Extensions,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Response> {
    let opts = Options::read(&headers)?;
    let reqs = body_json(body).and_then(|v| commands(&v))?;
    let mut client = Client::open(shared, &ext)?;
    client.dispatch(&[Bytes::from_static(b"MULTI")]).await;
    for req in &reqs {
        // Refused and rejected commands mark the transaction failed, as in Redis: EXEC then
        // answers EXECABORT and nothing runs.
        client.run(req).await;
    }
    let exec = client.dispatch(&[Bytes::from_static(b"EXEC")]).await;
    client.finish().await?;
    Ok(match exec {
        Frame::Array(replies) => Json(Value::Array(
            replies.into_iter().map(|r| entry(r, opts)).collect(),
        ))
        .into_response(),
        Frame::Error(e) => error(StatusCode::BAD_REQUEST, String::from_utf8_lossy(&e)),
        // Unreachable without WATCH (refused over HTTP), kept total.
        other => error(
            StatusCode::BAD_REQUEST,
            format!("ERR unexpected EXEC reply {other:?}"),
        ),
    })
}

/// What the request's headers ask of the reply.
#[derive(Debug, Clone, Copy)]
struct Options {
    /// `Upstash-Encoding: base64`.
    base64: bool,
}

impl Options {
    fn read(headers: &HeaderMap) -> Result<Options, Response> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        if let Some(format) = header("upstash-response-format") {
            if !format.eq_ignore_ascii_case("json") {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "ERR Upstash-Response-Format {format} is not supported: replies are JSON"
                    ),
                ));
            }
        }
        Ok(Options {
            base64: header("upstash-encoding").is_some_and(|e| e.eq_ignore_ascii_case("base64")),
        })
    }
}

/// The reply of `/` and of the path form: 200 with the result, or 400 with the error.
fn single_reply(reply: Frame, opts: Options) -> Response {
    match reply {
        Frame::Error(e) => error(StatusCode::BAD_REQUEST, String::from_utf8_lossy(&e)),
        other => Json(serde_json::json!({ "result": to_json(other, opts.base64) })).into_response(),
    }
}

/// One entry of a pipeline or transaction reply.
fn entry(reply: Frame, opts: Options) -> Value {
    match reply {
        Frame::Error(e) => serde_json::json!({ "error": String::from_utf8_lossy(&e) }),
        other => serde_json::json!({ "result": to_json(other, opts.base64) }),
    }
}

/// A reply as Upstash's JSON shows it: the RESP2 view (maps flattened, doubles and big numbers
/// as strings, booleans as 1/0), nil as null; with `base64`, every string but the status `OK`
/// base64-encoded.
pub fn to_json(frame: Frame, base64: bool) -> Value {
    let text = |b: &[u8]| {
        if base64 {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        } else {
            Value::String(String::from_utf8_lossy(b).into_owned())
        }
    };
    let all =
        |items: Vec<Frame>| Value::Array(items.into_iter().map(|f| to_json(f, base64)).collect());
    match frame {
        Frame::Simple(s) if &s[..] == b"OK" => Value::String("OK".into()),
        Frame::Simple(s) | Frame::Bulk(s) | Frame::Error(s) | Frame::BigNumber(s) => text(&s),
        Frame::Verbatim(_, s) => text(&s),
        Frame::Integer(n) => Value::from(n),
        Frame::Boolean(b) => Value::from(i64::from(b)),
        Frame::Double(d) => text(format_double(d).as_bytes()),
        Frame::Null | Frame::NullArray => Value::Null,
        Frame::Array(items) | Frame::Set(items) | Frame::Push(items) | Frame::Seq(items) => {
            all(items)
        }
        Frame::Map(pairs) => all(pairs.into_iter().flat_map(|(k, v)| [k, v]).collect()),
        Frame::Fields(fields) => Value::Array(
            fields
                .into_iter()
                .flat_map(|(name, v)| {
                    let v = match v {
                        Scalar::Int(n) => Value::from(n),
                        Scalar::Bool(b) => Value::from(i64::from(b)),
                        Scalar::Str(s) => text(s.as_bytes()),
                        Scalar::Text(t) => text(t.as_bytes()),
                    };
                    [text(name.as_bytes()), v]
                })
                .collect(),
        ),
    }
}

/// Why `name` cannot run over HTTP, if it cannot: it needs a connection that outlives the
/// request (subscriptions, `MONITOR`, blocking waits, a transaction across requests) or
/// changes the connection itself (`HELLO`, `AUTH`, `QUIT`, `RESET`).
pub fn refusal(name: &[u8]) -> Option<CommandError> {
    const REASONS: &[(&[&str], &str)] = &[
        (
            &[
                "SUBSCRIBE",
                "PSUBSCRIBE",
                "SSUBSCRIBE",
                "UNSUBSCRIBE",
                "PUNSUBSCRIBE",
                "SUNSUBSCRIBE",
                "MONITOR",
                "PSYNC",
                "SYNC",
            ],
            "it needs a connection that stays open; use the RESP port",
        ),
        (
            &[
                "BLPOP",
                "BRPOP",
                "BLMOVE",
                "BLMPOP",
                "BRPOPLPUSH",
                "BZPOPMIN",
                "BZPOPMAX",
                "BZMPOP",
                "XREAD",
                "XREADGROUP",
                "WAIT",
                "WAITAOF",
            ],
            "blocking commands need a connection that stays open; use the RESP port",
        ),
        (
            &["MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH"],
            "send the transaction's commands to /multi-exec",
        ),
        (
            &["HELLO", "AUTH", "QUIT", "RESET"],
            "each request is its own connection, authenticated by its Authorization header",
        ),
    ];
    let text = std::str::from_utf8(name).ok()?;
    REASONS.iter().find_map(|(names, why)| {
        names
            .iter()
            .any(|n| n.eq_ignore_ascii_case(text))
            .then(|| CommandError::NotOverHttp(text.to_ascii_uppercase(), why))
    })
}

/// The request body as JSON, or the 400/413 reply.
fn body_json(body: Result<Bytes, BytesRejection>) -> Result<Value, Response> {
    let body = body.map_err(rejection)?;
    serde_json::from_slice(&body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            format!("ERR failed to parse the JSON body: {e}"),
        )
    })
}

/// A body the extractor refused (over [`super::MAX_BODY`]: 413), as a JSON error.
fn rejection(e: BytesRejection) -> Response {
    error(e.status(), e.body_text())
}

fn bad_request(message: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, message)
}

/// One command: a non-empty array of strings, numbers or booleans.
fn command_args(v: &Value) -> Result<Vec<Bytes>, Response> {
    let Value::Array(items) = v else {
        return Err(bad_request(
            "ERR a command is a JSON array of its name and arguments",
        ));
    };
    if items.is_empty() {
        return Err(bad_request("ERR empty command"));
    }
    items
        .iter()
        .map(|item| match item {
            Value::String(s) => Ok(Bytes::copy_from_slice(s.as_bytes())),
            Value::Number(n) => Ok(Bytes::from(n.to_string())),
            Value::Bool(b) => Ok(Bytes::from_static(if *b { b"true" } else { b"false" })),
            _ => Err(bad_request(
                "ERR command arguments are strings, numbers or booleans",
            )),
        })
        .collect()
}

/// A pipeline or transaction body: an array of commands.
fn commands(v: &Value) -> Result<Vec<Vec<Bytes>>, Response> {
    let Value::Array(items) = v else {
        return Err(bad_request("ERR the body is a JSON array of commands"));
    };
    items.iter().map(command_args).collect()
}

/// `%XX` escapes decoded (invalid ones kept as they are); `+` stays a plus.
fn percent_decode(s: &str) -> Bytes {
    Bytes::from(percent_encoding::percent_decode_str(s).collect::<Vec<u8>>())
}

/// A request's client: its session for the request's ACL user, registered in the client list
/// until dropped. The dashboard's JSON routes run their commands through one too.
pub(crate) struct Client {
    shared: Arc<Shared>,
    session: Session,
}

impl Client {
    pub(crate) fn open(shared: Arc<Shared>, ext: &Extensions) -> Result<Client, Response> {
        let user = HttpUser::of(ext)?;
        let addr = |a: Option<SocketAddr>| a.map(|a| a.to_string()).unwrap_or_default();
        let peer = addr(ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0));
        let local = addr(ext.get::<LocalAddr>().map(|l| l.0));
        let info = Arc::new(ClientInfo::new(shared.clients.next_id(), peer, local));
        *info.name.lock() = Some(Bytes::from_static(CLIENT_NAME.as_bytes()));
        *info.user.lock() = Arc::from(user.name.as_str());
        let mut session = Session::new(info.clone(), &shared.acl);
        // The user as the registry has it now (the version first, so a change in between
        // is read again before the first command).
        session.acl_version = shared.acl.version();
        session.user = shared.acl.user(&user.name).unwrap_or(user);
        session.authenticated = true;
        shared.clients.register(info);
        Ok(Client { shared, session })
    }

    /// Runs one command from the request, or refuses it.
    pub(crate) async fn run(&mut self, req: &[Bytes]) -> Frame {
        if let Some(e) = refusal(&req[0]) {
            self.session.stats.commands += 1;
            self.session.stats.errors += 1;
            if self.session.multi.is_some() {
                self.session.multi_error = true;
            }
            return e.to_frame();
        }
        self.dispatch(req).await
    }

    /// Dispatches `req`, first waiting (without holding the worker) while another client's
    /// script runs, as RESP connections do; a request that runs Lua runs on a blocking-pool
    /// thread, as on a RESP connection (see `server::connection`).
    async fn dispatch(&mut self, req: &[Bytes]) -> Frame {
        // CLIENT PAUSE delays the request's commands as it delays a RESP client's.
        // (The session is not held across the wait: it is not `Sync`.)
        let clock = &*self.shared.engine.clock;
        while self.shared.pause.is_set()
            && self.shared.pause.blocks(&self.session, req, clock.now())
        {
            self.shared.pause.tick(clock).await;
        }
        let lua = runs_lua(&mut self.session, req);
        let gated = if lua {
            None
        } else {
            loop {
                let shared = &*self.shared;
                let run = shared.scripts.run_state();
                if let Some(gate) = run.command_gate() {
                    let now = shared.engine.clock.now();
                    self.session.lua_inline = false;
                    let reply = cmd::dispatch(&mut Ctx::new(shared, &mut self.session, now), req);
                    self.session.lua_inline = true;
                    drop(gate);
                    // A recognised script left it to its Lua body (nothing changed): `None`.
                    break (!std::mem::take(&mut self.session.lua_bounce)).then_some(reply);
                }
                match busy_gate(shared, &mut self.session, req) {
                    BusyGate::Run => {
                        // allow_busy, unknown or wrong arity: touches no key.
                        let now = shared.engine.clock.now();
                        break Some(cmd::dispatch(
                            &mut Ctx::new(shared, &mut self.session, now),
                            req,
                        ));
                    }
                    BusyGate::Reply(frame) => return frame,
                    BusyGate::Wait => wait_for_script(run).await,
                }
            }
        };
        let reply = match gated {
            Some(reply) => reply,
            None => self.dispatch_lua(req).await,
        };
        self.session.info.last_interaction_ms.store(
            u64::try_from(self.session.info.created.elapsed().as_millis()).unwrap_or(u64::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
        // A blocking command (BLPOP, ...) that found nothing does not block over HTTP: it
        // answers its timeout reply at once, as inside MULTI.
        if let Some(block) = self.session.block.take() {
            return block.timeout_reply();
        }
        reply
    }

    /// Runs a request that runs Lua on a blocking-pool thread, with the session moved there
    /// and back.
    async fn dispatch_lua(&mut self, req: &[Bytes]) -> Frame {
        loop {
            let run = self.shared.scripts.run_state();
            if run.is_running() {
                match busy_gate(&self.shared, &mut self.session, req) {
                    BusyGate::Run => {}
                    BusyGate::Reply(frame) => return frame,
                    BusyGate::Wait => {
                        wait_for_script(run).await;
                        continue;
                    }
                }
            }
            break;
        }
        let placeholder = Session::new(self.session.info.clone(), &self.shared.acl);
        let mut session = std::mem::replace(&mut self.session, placeholder);
        let shared = self.shared.clone();
        let req = req.to_vec();
        let ran = tokio::task::spawn_blocking(move || {
            let now = shared.engine.clock.now();
            let token = takes_token(&req).then(|| batch_token(&shared)).flatten();
            let reply = cmd::dispatch(&mut Ctx::new(&shared, &mut session, now), &req);
            drop(token);
            (session, reply)
        })
        .await;
        match ran {
            Ok((session, reply)) => {
                self.session = session;
                reply
            }
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Frame::error("ERR the server is shutting down"),
        }
    }

    /// Ends the request: under `appendfsync always`, waits until its AOF records are durable
    /// (a failed AOF answers 500: the effects are applied in memory and may or may not reach
    /// the file, as for a RESP connection closed without its replies).
    async fn finish(mut self) -> Result<(), Response> {
        self.shared.metrics.flush(&mut self.session.stats);
        super::durable(&self.shared, self.session.aof_seq.take()).await
    }
}

/// Waits until the running script ends or turns busy (bounded: the state is checked again
/// even if a wake-up was missed).
async fn wait_for_script(run: &crate::script::RunState) {
    let notified = run.notify.notified();
    tokio::pin!(notified);
    notified.as_mut().enable();
    if !run.is_running() || run.is_timed_out() {
        tokio::task::yield_now().await;
        return;
    }
    let _ = tokio::time::timeout(Duration::from_millis(20), notified).await;
}

impl Drop for Client {
    fn drop(&mut self) {
        cmd::multi::unwatch_all(&self.shared, &mut self.session);
        self.shared.metrics.flush(&mut self.session.stats);
        self.shared.clients.unregister(self.session.info.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn replies_map_to_json_as_upstash_shows_resp2() {
        let f = Frame::Array(vec![
            Frame::bulk("a"),
            Frame::Integer(-3),
            Frame::Null,
            Frame::Map(vec![(Frame::bulk("k"), Frame::Double(1.5))]),
            Frame::Boolean(true),
            Frame::Simple(Bytes::from_static(b"PONG")),
        ]);
        assert_eq!(
            to_json(f.clone(), false),
            serde_json::json!(["a", -3, null, ["k", "1.5"], 1, "PONG"])
        );
        assert_eq!(
            to_json(f, true),
            serde_json::json!(["YQ==", -3, null, ["aw==", "MS41"], 1, "UE9ORw=="])
        );
        assert_eq!(to_json(Frame::simple("OK"), true), serde_json::json!("OK"));
        assert_eq!(to_json(Frame::bulk("OK"), true), serde_json::json!("T0s="));
    }

    #[test]
    fn connection_bound_commands_are_refused_by_name() {
        for name in [
            "subscribe",
            "MONITOR",
            "blpop",
            "multi",
            "Hello",
            "QUIT",
            "reset",
        ] {
            let e = refusal(name.as_bytes()).expect(name).to_string();
            assert!(
                e.starts_with("ERR ") && e.contains("not supported over HTTP"),
                "{e}"
            );
        }
        for name in ["GET", "EVALSHA", "SELECT", "CLIENT"] {
            assert!(refusal(name.as_bytes()).is_none(), "{name}");
        }
    }

    #[test]
    fn path_segments_are_percent_decoded() {
        assert_eq!(&percent_decode("a%2Fb%20c")[..], b"a/b c");
        assert_eq!(&percent_decode("100%")[..], b"100%");
        assert_eq!(&percent_decode("%zz%4")[..], b"%zz%4");
        assert_eq!(&percent_decode("a+b")[..], b"a+b");
    }
}
