//! Policy events as JSON messages on Pub/Sub channels. Every event the engine produces is
//! rendered by [`render`] into the documented payload and delivered by
//! [`crate::engine::Engine::emit`], the one place that publishes it: on its Pub/Sub channel,
//! and into the registry's bounded ring (`LIMIT.EVENTS` reads it). Pure: no I/O.
//!
//! # Channels and payloads
//! Every payload is a JSON object with `"event"` (the kind) and `"time_ms"` (Unix ms):
//!
//! | channel | event | fields |
//! |---|---|---|
//! | `limitkv:events:denied` | `denied` | `policy`, `identity`, `scope`, `rule`, `retry_after_ms`, `reason`, `message`, `link` |
//! | `limitkv:events:allowed` | `allowed` (sampled) | `policy`, `identity`, `scope`, `action`, `delay_ms` |
//! | `limitkv:events:warning` | `warning` | `policy`, `identity`, `scope`, `rules` (array), `message`, `link` |
//! | `limitkv:events:overage` | `overage` | `policy`, `identity`, `scope`, `rules` (array of `{"rule","overage"}`) |
//! | `limitkv:events:suspension` | `suspension` | `identity`, `policy`, `change` (`set`, `del`, `expired`), `reason` |
//! | `limitkv:events:override` | `override` | `identity`, `change` (`set`, `del`, `expired`), `policy`, `reason` |
//! | `limitkv:events:reservation` | `reservation` | `id`, `change` (`expired`), `policy`, `identity`, `tokens`, `cost` |
//! | `limitkv:events:breaker` | `breaker` | `key`, `from`, `to` (`closed`, `open`, `half_open`) |
//!
//! Strings are JSON strings (bytes that are not UTF-8 are replaced with U+FFFD); an absent
//! value is `null`.

use bytes::Bytes;

use crate::clock::Nanos;
use crate::limiter::breaker::Phase;
use crate::limiter::cost::Amount;
use crate::policy::reserve::ReservationId;

/// Channel of `denied` events.
pub const DENIED: &str = "limitkv:events:denied";
/// Channel of sampled `allowed` events.
pub const ALLOWED: &str = "limitkv:events:allowed";
/// Channel of `warning` events.
pub const WARNING: &str = "limitkv:events:warning";
/// Channel of `override` events.
pub const OVERRIDE: &str = "limitkv:events:override";
/// Channel of `reservation` events.
pub const RESERVATION: &str = "limitkv:events:reservation";
/// Channel of circuit breaker transitions.
pub const BREAKER: &str = "limitkv:events:breaker";
/// Channel of `overage` events (grace used).
pub const OVERAGE: &str = "limitkv:events:overage";
/// Channel of `suspension` events.
pub const SUSPENSION: &str = "limitkv:events:suspension";

/// One event.
#[derive(Debug, Clone)]
pub enum Event<'a> {
    /// A check was refused.
    Denied {
        /// When.
        at: Nanos,
        /// The policy checked.
        policy: &'a str,
        /// Who.
        identity: &'a [u8],
        /// The scope, if any.
        scope: Option<&'a str>,
        /// The blocking rule (`None` for a deny-list refusal).
        rule: Option<&'a str>,
        /// The wait before a retry can pass, -1 for never.
        retry_after_ms: i64,
        /// `limit`, `denylist` or `suspended`.
        reason: &'a str,
        /// The plan's `MESSAGE` (for a suspension: its reason).
        message: Option<&'a str>,
        /// The plan's `LINK`.
        link: Option<&'a str>,
    },
    /// A check was admitted (sampled).
    Allowed {
        /// When.
        at: Nanos,
        /// The policy checked.
        policy: &'a str,
        /// Who.
        identity: &'a [u8],
        /// The scope, if any.
        scope: Option<&'a str>,
        /// `allow`, `slowdown`, `log` or `allowlist`.
        action: &'a str,
        /// The slowdown.
        delay_ms: i64,
    },
    /// Rules passed their warning threshold.
    Warning {
        /// When.
        at: Nanos,
        /// The policy checked.
        policy: &'a str,
        /// Who.
        identity: &'a [u8],
        /// The scope, if any.
        scope: Option<&'a str>,
        /// The rules that passed their threshold for the first time in their period.
        rules: Vec<&'a str>,
        /// The plan's `MESSAGE`.
        message: Option<&'a str>,
        /// The plan's `LINK`.
        link: Option<&'a str>,
    },
    /// An admitted check used a rule's grace (one event per such check: each is billable).
    Overage {
        /// When.
        at: Nanos,
        /// The policy checked.
        policy: &'a str,
        /// Who.
        identity: &'a [u8],
        /// The scope, if any.
        scope: Option<&'a str>,
        /// Each rule past its limit and by how much (units; micro-units when `.2` is set,
        /// a COST rule, rendered as a decimal string).
        rules: Vec<(&'a str, u64, bool)>,
    },
    /// An identity was suspended, unsuspended, or its suspension lapsed.
    Suspension {
        /// When.
        at: Nanos,
        /// Who.
        identity: &'a [u8],
        /// The policy (`None`: every policy, `*`).
        policy: Option<&'a str>,
        /// `set`, `del` or `expired`.
        change: &'a str,
        /// The suspension's reason.
        reason: Option<&'a str>,
    },
    /// An override was set, deleted or lapsed.
    Override {
        /// When.
        at: Nanos,
        /// Whose.
        identity: &'a [u8],
        /// `set`, `del` or `expired`.
        change: &'a str,
        /// The policy it redirects to, if any.
        policy: Option<&'a str>,
        /// Its reason, if any.
        reason: Option<&'a str>,
    },
    /// A reservation expired unsettled (its estimate stays charged).
    Reservation {
        /// When it expired.
        at: Nanos,
        /// Its id (tagged in cluster mode, as clients were given it).
        id: &'a ReservationId,
        /// `expired`.
        change: &'a str,
        /// The policy.
        policy: &'a str,
        /// Who.
        identity: &'a [u8],
        /// Estimated tokens.
        tokens: u64,
        /// Estimated cost.
        cost: Amount,
    },
    /// A circuit breaker changed phase (`BREAKER.ALLOW`, `REPORT`, `TRIP`, `RESET`).
    Breaker {
        /// When.
        at: Nanos,
        /// The breaker's key.
        key: &'a [u8],
        /// The phase before.
        from: Phase,
        /// The phase after.
        to: Phase,
    },
}

fn phase(p: Phase) -> &'static str {
    match p {
        Phase::Closed => "closed",
        Phase::Open => "open",
        Phase::HalfOpen => "half_open",
    }
}

/// A small JSON object writer.
struct Json(String);

impl Json {
    fn new(event: &str, at: Nanos) -> Json {
        let mut j = Json(String::with_capacity(160));
        j.0.push('{');
        j.str("event", Some(event));
        j.int("time_ms", i64::try_from(at.as_millis()).unwrap_or(i64::MAX));
        j
    }

    fn key(&mut self, k: &str) {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        quote(&mut self.0, k);
        self.0.push(':');
    }

    fn str(&mut self, k: &str, v: Option<&str>) {
        self.key(k);
        match v {
            Some(v) => quote(&mut self.0, v),
            None => self.0.push_str("null"),
        }
    }

    fn bytes(&mut self, k: &str, v: &[u8]) {
        self.str(k, Some(&String::from_utf8_lossy(v)));
    }

    fn int(&mut self, k: &str, v: i64) {
        self.key(k);
        self.0.push_str(itoa::Buffer::new().format(v));
    }

    fn raw(&mut self, k: &str, v: &str) {
        self.key(k);
        self.0.push_str(v);
    }

    fn finish(mut self) -> Bytes {
        self.0.push('}');
        Bytes::from(self.0)
    }
}

/// Appends `s` as a JSON string.
fn quote(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The event's channel and JSON payload.
pub fn render(event: &Event<'_>) -> (&'static str, Bytes) {
    match event {
        Event::Denied {
            at,
            policy,
            identity,
            scope,
            rule,
            retry_after_ms,
            reason,
            message,
            link,
        } => {
            let mut j = Json::new("denied", *at);
            j.str("policy", Some(policy));
            j.bytes("identity", identity);
            j.str("scope", *scope);
            j.str("rule", *rule);
            j.int("retry_after_ms", *retry_after_ms);
            j.str("reason", Some(reason));
            j.str("message", *message);
            j.str("link", *link);
            (DENIED, j.finish())
        }
        Event::Allowed {
            at,
            policy,
            identity,
            scope,
            action,
            delay_ms,
        } => {
            let mut j = Json::new("allowed", *at);
            j.str("policy", Some(policy));
            j.bytes("identity", identity);
            j.str("scope", *scope);
            j.str("action", Some(action));
            j.int("delay_ms", *delay_ms);
            (ALLOWED, j.finish())
        }
        Event::Warning {
            at,
            policy,
            identity,
            scope,
            rules,
            message,
            link,
        } => {
            let mut j = Json::new("warning", *at);
            j.str("policy", Some(policy));
            j.bytes("identity", identity);
            j.str("scope", *scope);
            let mut arr = String::from("[");
            for (i, r) in rules.iter().enumerate() {
                if i > 0 {
                    arr.push(',');
                }
                quote(&mut arr, r);
            }
            arr.push(']');
            j.raw("rules", &arr);
            j.str("message", *message);
            j.str("link", *link);
            (WARNING, j.finish())
        }
        Event::Overage {
            at,
            policy,
            identity,
            scope,
            rules,
        } => {
            let mut j = Json::new("overage", *at);
            j.str("policy", Some(policy));
            j.bytes("identity", identity);
            j.str("scope", *scope);
            let mut arr = String::from("[");
            for (i, (r, n, cost)) in rules.iter().enumerate() {
                if i > 0 {
                    arr.push(',');
                }
                arr.push_str("{\"rule\":");
                quote(&mut arr, r);
                arr.push_str(",\"overage\":");
                if *cost {
                    let a = Amount(i64::try_from(*n).unwrap_or(i64::MAX));
                    quote(&mut arr, &a.to_string());
                } else {
                    arr.push_str(itoa::Buffer::new().format(*n));
                }
                arr.push('}');
            }
            arr.push(']');
            j.raw("rules", &arr);
            (OVERAGE, j.finish())
        }
        Event::Suspension {
            at,
            identity,
            policy,
            change,
            reason,
        } => {
            let mut j = Json::new("suspension", *at);
            j.bytes("identity", identity);
            j.str("policy", *policy);
            j.str("change", Some(change));
            j.str("reason", *reason);
            (SUSPENSION, j.finish())
        }
        Event::Override {
            at,
            identity,
            change,
            policy,
            reason,
        } => {
            let mut j = Json::new("override", *at);
            j.bytes("identity", identity);
            j.str("change", Some(change));
            j.str("policy", *policy);
            j.str("reason", *reason);
            (OVERRIDE, j.finish())
        }
        Event::Reservation {
            at,
            id,
            change,
            policy,
            identity,
            tokens,
            cost,
        } => {
            let mut j = Json::new("reservation", *at);
            match id.tag {
                None => j.raw("id", &id.n.to_string()),
                Some(_) => j.bytes("id", &id.to_bytes()),
            }
            j.str("change", Some(change));
            j.str("policy", Some(policy));
            j.bytes("identity", identity);
            j.raw("tokens", &tokens.to_string());
            j.str("cost", Some(&cost.to_string()));
            (RESERVATION, j.finish())
        }
        Event::Breaker { at, key, from, to } => {
            let mut j = Json::new("breaker", *at);
            j.bytes("key", key);
            j.str("from", Some(phase(*from)));
            j.str("to", Some(phase(*to)));
            (BREAKER, j.finish())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_json_with_escapes_and_nulls() {
        let (ch, msg) = render(&Event::Denied {
            at: Nanos::from_millis(1_500),
            policy: "free",
            identity: b"a\"b\n",
            scope: None,
            rule: Some("rate-1m"),
            retry_after_ms: 250,
            reason: "limit",
            message: None,
            link: Some("https://x.test/up"),
        });
        assert_eq!(ch, DENIED);
        assert_eq!(
            &msg[..],
            br#"{"event":"denied","time_ms":1500,"policy":"free","identity":"a\"b\n","scope":null,"rule":"rate-1m","retry_after_ms":250,"reason":"limit","message":null,"link":"https://x.test/up"}"#
        );
        let (_, msg) = render(&Event::Warning {
            at: Nanos::ZERO,
            policy: "p",
            identity: b"i",
            scope: Some("POST /x"),
            rules: vec!["a", "b"],
            message: Some("80% used"),
            link: None,
        });
        assert_eq!(
            &msg[..],
            br#"{"event":"warning","time_ms":0,"policy":"p","identity":"i","scope":"POST /x","rules":["a","b"],"message":"80% used","link":null}"#
        );
        let (ch, msg) = render(&Event::Overage {
            at: Nanos::ZERO,
            policy: "p",
            identity: b"i",
            scope: None,
            rules: vec![("quota-day", 3, false), ("cost-day", 50_000, true)],
        });
        assert_eq!(ch, OVERAGE);
        assert_eq!(
            &msg[..],
            br#"{"event":"overage","time_ms":0,"policy":"p","identity":"i","scope":null,"rules":[{"rule":"quota-day","overage":3},{"rule":"cost-day","overage":"0.05"}]}"#
        );
        let (ch, msg) = render(&Event::Suspension {
            at: Nanos::ZERO,
            identity: b"bob",
            policy: None,
            change: "set",
            reason: Some("chargeback"),
        });
        assert_eq!(ch, SUSPENSION);
        assert_eq!(
            &msg[..],
            br#"{"event":"suspension","time_ms":0,"identity":"bob","policy":null,"change":"set","reason":"chargeback"}"#
        );
        let (ch, msg) = render(&Event::Reservation {
            at: Nanos::ZERO,
            id: &ReservationId { n: 9, tag: None },
            change: "expired",
            policy: "ai",
            identity: b"u",
            tokens: 4000,
            cost: Amount(1_500_000),
        });
        assert_eq!(ch, RESERVATION);
        assert_eq!(
            &msg[..],
            br#"{"event":"reservation","time_ms":0,"id":9,"change":"expired","policy":"ai","identity":"u","tokens":4000,"cost":"1.5"}"#
        );
        let (ch, msg) = render(&Event::Breaker {
            at: Nanos::ZERO,
            key: b"payments",
            from: Phase::HalfOpen,
            to: Phase::Closed,
        });
        assert_eq!(ch, BREAKER);
        assert_eq!(
            &msg[..],
            br#"{"event":"breaker","time_ms":0,"key":"payments","from":"half_open","to":"closed"}"#
        );
    }
}
