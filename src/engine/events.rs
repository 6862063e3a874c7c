//! The event bus: every event the engine produces (policy denials and warnings, sampled
//! admissions, override and reservation lapses, breaker transitions) is rendered once
//! ([`crate::policy::events::render`]) and delivered here.

use std::sync::Arc;

use bytes::Bytes;

use crate::clock::Nanos;
use crate::policy::events::{render, Event};
use crate::policy::model::Limit;
use crate::policy::reserve::ReservationId;
use crate::policy::webhook::Webhook;

use super::Engine;

/// Events waiting to be appended to the `events-stream` key. An event is often emitted under
/// a key's shard lock (a policy check, a breaker transition, a whole `EXEC`), where appending
/// to another key could deadlock; the command layer appends the queue after the command
/// (`cmd::event_stream`), as an XADD of its own, journaled like any other.
#[derive(Debug, Default)]
pub struct StreamEvents {
    queued: parking_lot::Mutex<Vec<(Bytes, Bytes)>>,
    pending: std::sync::atomic::AtomicBool,
}

impl StreamEvents {
    /// Queues one event (its channel and message).
    pub fn push(&self, channel: Bytes, message: Bytes) {
        self.queued.lock().push((channel, message));
        self.pending
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// True if events wait (one atomic load: checked after every command).
    pub fn is_pending(&self) -> bool {
        self.pending.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Takes every queued event, oldest first.
    pub fn take(&self) -> Vec<(Bytes, Bytes)> {
        let mut q = self.queued.lock();
        self.pending
            .store(false, std::sync::atomic::Ordering::Release);
        std::mem::take(&mut *q)
    }
}

impl Engine {
    /// Renders `event`, queues it for the webhooks that want it, and publishes it.
    pub fn emit(&self, event: &Event<'_>) {
        let (channel, message) = render(event);
        self.queue_webhooks(event, &message);
        self.publish_event(channel.as_bytes(), message);
    }

    /// Queues `message` (the rendered `event`) for every policy webhook that wants it: the
    /// policy the event names (for a suspension of every policy, or a breaker transition,
    /// every policy it concerns: each with a BREAKER rule on that key). Never waits.
    fn queue_webhooks(&self, event: &Event<'_>, message: &Bytes) {
        let (kind, policy) = match event {
            Event::Denied { policy, .. } => ("denied", Some(*policy)),
            Event::Allowed { policy, .. } => ("allowed", Some(*policy)),
            Event::Warning { policy, .. } => ("warning", Some(*policy)),
            Event::Overage { policy, .. } => ("overage", Some(*policy)),
            Event::Reservation { policy, .. } => ("reservation", Some(*policy)),
            Event::Suspension { policy, .. } => ("suspension", *policy),
            Event::Override { policy, .. } => ("override", *policy),
            Event::Breaker { .. } => ("breaker", None),
        };
        let hooks: Vec<Arc<Webhook>> = {
            let t = self.policies.read();
            let wants =
                |h: &Option<Arc<Webhook>>| h.as_ref().filter(|h| h.events.contains(kind)).cloned();
            match (event, policy) {
                (Event::Breaker { key, .. }, _) => {
                    t.policies
                        .values()
                        .filter(|p| {
                            p.body.all().iter().any(
                                |a| matches!(&a.rule.limit, Limit::Breaker(b) if b.key == *key),
                            )
                        })
                        .filter_map(|p| wants(&p.body.webhook))
                        .collect()
                }
                (Event::Suspension { .. }, None) => t
                    .policies
                    .values()
                    .filter_map(|p| wants(&p.body.webhook))
                    .collect(),
                (_, Some(name)) => t
                    .policies
                    .get(name)
                    .and_then(|p| wants(&p.body.webhook))
                    .into_iter()
                    .collect(),
                (_, None) => Vec::new(),
            }
        };
        if hooks.is_empty() {
            return;
        }
        // Policies sharing one webhook (same URL, events and secret) get one delivery.
        let mut unique: Vec<Arc<Webhook>> = Vec::with_capacity(hooks.len());
        for h in hooks {
            if !unique.iter().any(|u| **u == *h) {
                unique.push(h);
            }
        }
        let max = self.config.read().webhook.queue_max;
        for h in unique {
            self.webhooks.enqueue(h, kind, message.clone(), max);
        }
    }

    /// Delivers one event message: published on its Pub/Sub channel (`SUBSCRIBE
    /// limitkv:events:denied`, or `PSUBSCRIBE limitkv:events:*`) and kept in the registry's
    /// ring for `LIMIT.EVENTS`. Returns the number of subscribers that received it.
    pub fn publish_event(&self, channel: &[u8], message: Bytes) -> usize {
        self.policies.record_event(channel, message.clone());
        if !self.config.read().events_stream.is_empty() {
            self.stream_events
                .push(Bytes::copy_from_slice(channel), message.clone());
        }
        self.pubsub.publish(channel, message)
    }

    /// Whether this admission is one of the sampled `allowed` events
    /// (`policy-events-sample-ppm`).
    pub fn sample_allowed(&self) -> bool {
        let ppm = self.config.read().policy_events_sample_ppm;
        self.policies.sample_allowed(ppm)
    }

    /// Publishes the lapse of reservations, overrides and suspensions due at `now`: called by the server's
    /// background tick and before `LIMIT.EVENTS` reads the ring. Expired overrides are dropped
    /// from memory (replay drops them by their absolute expiry, so nothing is journaled).
    pub fn tick(&self, now: Nanos) {
        self.tick_usage(now);
        for (id, at, r) in self.policies.expired_reservations(now) {
            self.emit(&Event::Reservation {
                at,
                id: &ReservationId::new(id, &r.identity, self.cluster_keys),
                change: "expired",
                policy: &r.policy,
                identity: &r.identity,
                tokens: r.tokens,
                cost: r.cost,
            });
        }
        let any_expired = self
            .policies
            .read()
            .overrides
            .values()
            .any(|o| !o.is_live(now));
        if any_expired {
            let gone = self.policies.write().drop_expired_overrides(now);
            for (identity, o) in gone {
                self.emit(&Event::Override {
                    at: o.expires_at.unwrap_or(now),
                    identity: &identity,
                    change: "expired",
                    policy: o.policy.as_deref(),
                    reason: o.reason.as_deref(),
                });
            }
        }
        let any_lapsed = self
            .policies
            .read()
            .suspensions
            .values()
            .flatten()
            .any(|s| !s.is_live(now));
        if any_lapsed {
            let gone = self.policies.write().drop_expired_suspensions(now);
            for (identity, s) in gone {
                self.emit(&Event::Suspension {
                    at: s.expires_at.unwrap_or(now),
                    identity: &identity,
                    policy: Some(s.policy.as_str()),
                    change: "expired",
                    reason: s.reason.as_deref(),
                });
            }
        }
    }
}
