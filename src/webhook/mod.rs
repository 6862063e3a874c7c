//! Webhook delivery (issue 17): the bounded queue events wait in, its counters, and the
//! signature; [`deliver`] is the task that POSTs them.
//!
//! The engine routes each event to the webhooks that want it ([`crate::policy::webhook`]) and
//! calls [`Webhooks::enqueue`], which never waits: it pushes under a short lock, and when the
//! queue holds `webhook-queue-max` deliveries the oldest waiting one is dropped (and counted)
//! to make room, so memory stays bounded and a decision never waits for a receiver. The
//! server starts [`deliver::run`], which takes deliveries off the queue, sends at most
//! [`MAX_IN_FLIGHT`] at once, and retries each with exponential backoff.
//!
//! Depends on `policy::webhook` (the clause) and `clock`; never on `engine`, `cmd` or `server`.

pub mod deliver;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use sha2::Sha256;
use tokio::sync::Notify;

use crate::clock::Nanos;
use crate::policy::webhook::Webhook;

/// Deliveries sent at once; the rest wait in the queue.
pub const MAX_IN_FLIGHT: usize = 16;

/// One event on its way to one webhook.
#[derive(Debug, Clone)]
pub struct Job {
    /// `X-Limitkv-Delivery`: unique per delivery (the same on every attempt).
    pub id: String,
    /// The event kind (`X-Limitkv-Event`).
    pub event: &'static str,
    /// Where it goes.
    pub hook: Arc<Webhook>,
    /// The JSON payload (the Pub/Sub message).
    pub body: Bytes,
}

/// Delivery counters (`INFO webhooks`).
#[derive(Debug, Default)]
pub struct Counters {
    /// Deliveries accepted into the queue.
    pub queued: AtomicU64,
    /// Deliveries answered with a 2xx status.
    pub delivered: AtomicU64,
    /// Deliveries given up: out of retries, or refused with a status retrying cannot change.
    pub failed: AtomicU64,
    /// Attempts after a delivery's first.
    pub retries: AtomicU64,
    /// Deliveries dropped from a full queue (the oldest waiting one goes).
    pub dropped: AtomicU64,
    /// Deliveries being sent now (attempting or waiting to retry).
    pub in_flight: AtomicU64,
}

/// The delivery queue.
#[derive(Debug)]
pub struct Webhooks {
    queue: Mutex<VecDeque<Job>>,
    notify: Notify,
    /// Delivery ids are `<start ms>-<n>`: unique across restarts.
    boot_ms: u64,
    next_id: AtomicU64,
    /// The counters.
    pub counters: Counters,
}

impl Webhooks {
    /// An empty queue; `now` seeds the delivery ids.
    pub fn new(now: Nanos) -> Webhooks {
        Webhooks {
            queue: Mutex::new(VecDeque::new()),
            notify: Notify::new(),
            boot_ms: now.as_millis(),
            next_id: AtomicU64::new(1),
            counters: Counters::default(),
        }
    }

    /// Queues `body` (an `event` payload) for `hook` without waiting; with `max` deliveries
    /// already waiting, the oldest is dropped first.
    pub fn enqueue(&self, hook: Arc<Webhook>, event: &'static str, body: Bytes, max: usize) {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let job = Job {
            id: format!("{}-{n}", self.boot_ms),
            event,
            hook,
            body,
        };
        let mut dropped = 0;
        {
            let mut q = self.queue.lock();
            while q.len() >= max.max(1) {
                q.pop_front();
                dropped += 1;
            }
            q.push_back(job);
        }
        self.counters.queued.fetch_add(1, Ordering::Relaxed);
        if dropped > 0 {
            self.counters.dropped.fetch_add(dropped, Ordering::Relaxed);
        }
        self.notify.notify_one();
    }

    /// The oldest waiting delivery.
    pub fn pop(&self) -> Option<Job> {
        self.queue.lock().pop_front()
    }

    /// Waits until a delivery is queued (returns at once if one was queued since the last
    /// wait).
    pub async fn wait(&self) {
        self.notify.notified().await;
    }

    /// Deliveries waiting.
    pub fn len(&self) -> usize {
        self.queue.lock().len()
    }

    /// Whether none is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `INFO webhooks` fields.
    pub fn info(&self) -> Vec<(&'static str, u64)> {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        vec![
            ("webhook_queued", get(&c.queued)),
            ("webhook_delivered", get(&c.delivered)),
            ("webhook_failed", get(&c.failed)),
            ("webhook_retries", get(&c.retries)),
            ("webhook_dropped", get(&c.dropped)),
            ("webhook_queue_length", self.len() as u64),
            ("webhook_in_flight", get(&c.in_flight)),
        ]
    }
}

/// `X-Limitkv-Signature`'s value: `sha256=` and the lowercase hex HMAC-SHA256 of `body`
/// keyed with `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::webhook::EventSet;

    #[test]
    fn signature_is_rfc_4231_hmac_sha256() {
        // RFC 4231, test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_full_queue_drops_the_oldest_and_counts_it() {
        let q = Webhooks::new(Nanos::from_millis(7));
        let hook = Arc::new(Webhook {
            url: "http://h/".into(),
            host: "h".into(),
            port: 80,
            path: "/".into(),
            events: EventSet::DEFAULT,
            secret: None,
        });
        for i in 0..5 {
            q.enqueue(hook.clone(), "denied", Bytes::from(i.to_string()), 3);
        }
        let info = q.info();
        assert_eq!(info[0], ("webhook_queued", 5));
        assert_eq!(info[4], ("webhook_dropped", 2));
        assert_eq!(info[5], ("webhook_queue_length", 3));
        let first = q.pop().unwrap();
        assert_eq!((first.id.as_str(), &first.body[..]), ("7-3", &b"2"[..]));
    }
}
