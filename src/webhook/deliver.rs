//! The delivery task: takes deliveries off the queue and POSTs them with hyper's HTTP/1.1
//! client, one connection per attempt, at most [`super::MAX_IN_FLIGHT`] at once.
//!
//! An attempt succeeds on a 2xx status. A connection error, a timeout (`webhook-timeout`,
//! from connect to the response's status line), a 5xx, 408 or 429 is retried, after
//! `webhook-retry-base` ms, then twice that, and so on, up to `webhook-max-retries` retries;
//! any other status fails the delivery at once (retrying cannot change it). The settings are
//! read for every attempt, so `CONFIG SET` applies to deliveries already under way.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, HOST, USER_AGENT};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{sign, Job, Webhooks, MAX_IN_FLIGHT};
use crate::config::WebhookConfig;

/// How one attempt ended.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    Delivered,
    /// Worth retrying (connection error, timeout, 5xx, 408, 429).
    Retry(String),
    /// Not worth retrying (another status).
    Refused(StatusCode),
}

/// Delivers queued events until the task is aborted (aborting it aborts the deliveries under
/// way). `settings` reads the live `webhook-*` configuration.
pub async fn run(hooks: Arc<Webhooks>, settings: Arc<dyn Fn() -> WebhookConfig + Send + Sync>) {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut running = JoinSet::new();
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let job = loop {
            if let Some(job) = hooks.pop() {
                break job;
            }
            tokio::select! {
                _ = hooks.wait() => {}
                // Reap finished deliveries while idle.
                Some(_) = running.join_next(), if !running.is_empty() => {}
            }
        };
        hooks.counters.in_flight.fetch_add(1, Ordering::Relaxed);
        let hooks = hooks.clone();
        let settings = settings.clone();
        running.spawn(async move {
            deliver(&hooks, &job, settings.as_ref()).await;
            hooks.counters.in_flight.fetch_sub(1, Ordering::Relaxed);
            drop(slot);
        });
        while running.try_join_next().is_some() {}
    }
}

/// One delivery with its retries; counts the outcome.
async fn deliver(
    hooks: &Webhooks,
    job: &Job,
    settings: &(dyn Fn() -> WebhookConfig + Send + Sync),
) {
    let c = &hooks.counters;
    let mut retry = 0u32;
    loop {
        let cfg = settings();
        let outcome =
            match tokio::time::timeout(Duration::from_millis(cfg.timeout_ms), attempt(job, retry))
                .await
            {
                Ok(o) => o,
                Err(_) => Attempt::Retry(format!("no response within {} ms", cfg.timeout_ms)),
            };
        match outcome {
            Attempt::Delivered => {
                c.delivered.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Attempt::Refused(status) => {
                tracing::warn!(url = %job.hook.url, delivery = %job.id, %status, "webhook refused");
                c.failed.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Attempt::Retry(why) if retry >= cfg.max_retries => {
                tracing::warn!(url = %job.hook.url, delivery = %job.id, attempts = retry + 1, reason = %why, "webhook failed");
                c.failed.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Attempt::Retry(why) => {
                tracing::debug!(url = %job.hook.url, delivery = %job.id, reason = %why, "webhook attempt failed: retrying");
                tokio::time::sleep(backoff(cfg.retry_base_ms, retry)).await;
                retry += 1;
                c.retries.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The wait before retry `retry + 1`: `base · 2^retry` ms, capped at an hour.
fn backoff(base_ms: u64, retry: u32) -> Duration {
    let ms = base_ms.saturating_mul(1u64 << retry.min(32));
    Duration::from_millis(ms.min(3_600_000))
}

/// Aborts the task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One POST.
async fn attempt(job: &Job, retry: u32) -> Attempt {
    let h = &job.hook;
    let stream = match TcpStream::connect((h.host.as_str(), h.port)).await {
        Ok(s) => s,
        Err(e) => return Attempt::Retry(format!("connect: {e}")),
    };
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    {
        Ok(x) => x,
        Err(e) => return Attempt::Retry(format!("handshake: {e}")),
    };
    // The connection is driven by its own task, ended with the attempt: after the response's
    // status line, or when the attempt is dropped (timed out, or the server stopping).
    let _conn = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let host = if h.host.contains(':') {
        format!("[{}]:{}", h.host, h.port)
    } else if h.port == 80 {
        h.host.clone()
    } else {
        format!("{}:{}", h.host, h.port)
    };
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(h.path.as_str())
        .header(HOST, host)
        .header(CONTENT_TYPE, "application/json")
        .header(CONTENT_LENGTH, job.body.len())
        .header(USER_AGENT, concat!("limitkv/", env!("CARGO_PKG_VERSION")))
        .header("X-Limitkv-Event", job.event)
        .header("X-Limitkv-Delivery", job.id.as_str())
        .header("X-Limitkv-Attempt", retry + 1);
    if let Some(secret) = &h.secret {
        let sig = sign(secret.as_bytes(), &job.body);
        // Hex digits: a valid header value.
        if let Ok(v) = HeaderValue::from_str(&sig) {
            req = req.header("X-Limitkv-Signature", v);
        }
    }
    let req = match req.body(Full::new(job.body.clone())) {
        Ok(r) => r,
        // The path and host passed the URL check; a value hyper still refuses fails for good.
        Err(e) => {
            tracing::warn!(url = %h.url, error = %e, "webhook request cannot be built");
            return Attempt::Refused(StatusCode::BAD_REQUEST);
        }
    };
    match sender.send_request(req).await {
        Err(e) => Attempt::Retry(format!("request: {e}")),
        Ok(resp) => {
            let s = resp.status();
            if s.is_success() {
                Attempt::Delivered
            } else if s.is_server_error()
                || s == StatusCode::REQUEST_TIMEOUT
                || s == StatusCode::TOO_MANY_REQUESTS
            {
                Attempt::Retry(format!("status {s}"))
            } else {
                Attempt::Refused(s)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_base_and_is_capped() {
        let ms: Vec<u128> = (0..4).map(|r| backoff(10, r).as_millis()).collect();
        assert_eq!(ms, [10, 20, 40, 80]);
        assert_eq!(backoff(1_000, 40), Duration::from_secs(3_600));
        assert_eq!(backoff(u64::MAX, 1), Duration::from_secs(3_600));
    }
}
