//! The HTTP listener (`http-port`): one axum router served by hyper over plain TCP or TLS
//! (`http-tls yes`, with the `tls-*` certificates), authenticated with the same ACL users as
//! the RESP port.
//!
//! Routes: `GET /healthz` (liveness, never authenticated), `GET /readyz` (ready once the
//! append-only file is loaded, which is before the listener opens), the check API ([`check`]:
//! `/v1/check`, `/v1/status`, `/v1/reserve`, `/v1/settle`, `/v1/cancel`, `/v1/auth`) and the
//! Upstash-compatible REST API ([`upstash`]: `/`, `/pipeline`, `/multi-exec`,
//! `/<command>/<args>...`; see `docs/http.md`) and the dashboard ([`dashboard`]: `/dashboard`,
//! `/v1/usage/...`). Every route but `/healthz` needs credentials
//! while the `default` user needs a password: `Authorization: Bearer <password>` for the
//! default user, `Bearer <user>:<password>` or `Basic` for any user. `GET /metrics` serves
//! Prometheus metrics ([`metrics`]). Errors are JSON bodies with a 4xx status. A surface like `server`: it calls into
//! `cmd::Shared` and `acl`, nothing below imports it.

pub mod auth;
pub mod check;
pub mod check_json;
pub mod coalesce;
pub mod dashboard;
pub mod metrics;
pub mod upstash;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::cmd::Shared;

/// Longest a client may take to send a request's headers (slow clients are cut off).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a TLS handshake on the HTTP listener may take.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request body any route reads.
pub const MAX_BODY: usize = 1024 * 1024;
/// Most HTTP connections served at once; more wait in the kernel's accept queue.
pub const MAX_CONNECTIONS: usize = 4096;

/// The local address of the connection a request came on (an extension of every request, next
/// to the peer's [`axum::extract::ConnectInfo`]).
#[derive(Debug, Clone, Copy)]
pub struct LocalAddr(pub std::net::SocketAddr);

/// A JSON error reply: `{"error": "..."}` with `status`.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = serde_json::json!({ "error": message.into() });
    (status, Json(body)).into_response()
}

/// Under `appendfsync always`, waits until a request's AOF records (up to `seq`) are durable,
/// as a RESP reply waits; a failed append-only file answers 500 (the effects stay applied in
/// memory, as for a RESP connection closed without its replies).
pub async fn durable(shared: &Shared, seq: Option<crate::persist::Seq>) -> Result<(), Response> {
    let (Some(seq), Some(writer)) = (seq, shared.engine.durable_writer()) else {
        return Ok(());
    };
    writer.waiter().wait(seq).await.map_err(|e| {
        tracing::error!(error = %e, "AOF write failed: HTTP request answered 500");
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("ERR the append-only file could not be written: {e}"),
        )
    })
}

/// The router, with `shared` as its state.
pub fn router(shared: Arc<Shared>) -> Router {
    let authenticated = Router::new()
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::metrics))
        .merge(check::routes())
        .merge(dashboard::routes())
        .merge(upstash::routes())
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not found") })
        .method_not_allowed_fallback(|| async {
            error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        })
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            auth::require,
        ));
    Router::new()
        .route("/healthz", get(healthz))
        .merge(authenticated)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(shared)
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Json<serde_json::Value> {
    // The listener opens after the append-only file is loaded (server::bind), so a server that
    // answers is ready.
    Json(serde_json::json!({
        "ready": true,
        "aof_enabled": shared.engine.aof.get().is_some(),
    }))
}

/// Serves `listeners` until the task is aborted (at shutdown). With `tls`, each connection
/// first completes a TLS handshake with the configuration in force at accept.
pub async fn serve(shared: Arc<Shared>, listeners: Vec<TcpListener>, tls: bool) {
    let app = router(shared.clone());
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut accepts = JoinSet::new();
    for listener in listeners {
        let (app, slots, shared) = (app.clone(), slots.clone(), shared.clone());
        accepts.spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    return;
                };
                let (stream, peer) = match listener.accept().await {
                    Ok(conn) => conn,
                    Err(e) => {
                        tracing::warn!(error = %e, "HTTP accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let Ok(local) = stream.local_addr() else {
                    continue;
                };
                let acceptor = if tls { shared.tls.acceptor() } else { None };
                let service = app.clone();
                conns.spawn(async move {
                    let _permit = permit;
                    match acceptor {
                        Some(acceptor) => {
                            let handshake = tokio::time::timeout(
                                TLS_HANDSHAKE_TIMEOUT,
                                acceptor.accept(stream),
                            )
                            .await;
                            match handshake {
                                Ok(Ok(stream)) => connection(stream, peer, local, service).await,
                                Ok(Err(e)) => {
                                    tracing::debug!(%peer, error = %e, "HTTPS handshake failed")
                                }
                                Err(_) => tracing::debug!(%peer, "HTTPS handshake timed out"),
                            }
                        }
                        None if tls => {}
                        None => connection(stream, peer, local, service).await,
                    }
                });
                // Finished connections are reaped as new ones arrive.
                while conns.try_join_next().is_some() {}
            }
        });
    }
    while accepts.join_next().await.is_some() {}
}

/// One HTTP/1.1 connection (keep-alive), with the header read timeout; each request carries
/// the peer's address as a [`axum::extract::ConnectInfo`] and the local one as a [`LocalAddr`].
async fn connection<S>(
    stream: S,
    peer: std::net::SocketAddr,
    local: std::net::SocketAddr,
    app: Router,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(app.map_request(
        move |req: hyper::Request<hyper::body::Incoming>| {
            let mut req = req.map(axum::body::Body::new);
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            req.extensions_mut().insert(LocalAddr(local));
            req
        },
    ));
    // Responses are sent when the connection's task idles: one send for a batch of
    // pipelined requests (see `coalesce`).
    let (io, pending) = coalesce::Coalesced::new(stream);
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(io), service);
    let served = coalesce::FlushOnIdle::new(Box::pin(conn), pending).await;
    if let Err(e) = served {
        tracing::debug!(error = %e, "HTTP connection ended with an error");
    }
}
