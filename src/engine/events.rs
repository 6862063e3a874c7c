//! The event bus: every event the engine produces (policy denials and warnings, sampled
//! admissions, override and reservation lapses, breaker transitions) is rendered once
//! ([`crate::policy::events::render`]) and delivered here.

use bytes::Bytes;

use crate::clock::Nanos;
use crate::policy::events::{render, Event};
use crate::policy::reserve::ReservationId;

use super::Engine;

impl Engine {
    /// Renders `event` and publishes it.
    pub fn emit(&self, event: &Event<'_>) {
        let (channel, message) = render(event);
        self.publish_event(channel.as_bytes(), message);
    }

    /// Delivers one event message: published on its Pub/Sub channel (`SUBSCRIBE
    /// limitkv:events:denied`, or `PSUBSCRIBE limitkv:events:*`) and kept in the registry's
    /// ring for `LIMIT.EVENTS`. Returns the number of subscribers that received it.
    pub fn publish_event(&self, channel: &[u8], message: Bytes) -> usize {
        self.policies.record_event(channel, message.clone());
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
