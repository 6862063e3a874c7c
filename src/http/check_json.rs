//! The JSON body of a check, status or reserve, written straight from the [`CheckOutcome`]
//! into the response buffer: the same object `write_json(&check_frame(o))` gives (the RESP3
//! reply of `LIMIT.CHECK` as JSON, field for field and in the same order), without building
//! and dropping the reply frame first. The unit tests hold the two to the same bytes.
//!
//! Part of the check API's hot path (`docs/benchmarks.md`, run HTTP-B): no allocation but the
//! output buffer's, numbers through `itoa`, and strings that need no escaping copied as they
//! are.

use crate::clock::Nanos;
use crate::cmd::policy::outcome_name;
use crate::engine::CheckOutcome;
use crate::engine::RuleReport;
use crate::limiter::cost::Amount;
use crate::policy::reserve::ReservationId;

/// Appends `b` as a JSON string, exactly as `serde_json` writes `String::from_utf8_lossy(b)`
/// (invalid UTF-8 replaced by U+FFFD); printable ASCII without `"` or `\` is copied as is.
pub fn json_string(b: &[u8], out: &mut Vec<u8>) {
    if b.iter()
        .all(|&c| (0x20..0x7f).contains(&c) && c != b'"' && c != b'\\')
    {
        out.reserve(b.len() + 2);
        out.push(b'"');
        out.extend_from_slice(b);
        out.push(b'"');
        return;
    }
    // Writing into a Vec cannot fail, and a str always serializes.
    let _ = serde_json::to_writer(&mut *out, &*String::from_utf8_lossy(b));
}

/// An object under construction: `{`, then `"name":value` pairs separated by commas.
struct Object<'o> {
    out: &'o mut Vec<u8>,
    first: bool,
}

impl<'o> Object<'o> {
    fn open(out: &'o mut Vec<u8>) -> Object<'o> {
        out.push(b'{');
        Object { out, first: true }
    }

    /// Starts the pair of field `name` (plain ASCII: written without escaping); the value
    /// follows.
    fn key(&mut self, name: &'static str) -> &mut Vec<u8> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    fn int(&mut self, name: &'static str, n: i64) {
        let out = self.key(name);
        out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    }

    /// An unsigned count as the reply's integers show it (saturating at `i64::MAX`).
    fn uint(&mut self, name: &'static str, n: u64) {
        self.int(name, i64::try_from(n).unwrap_or(i64::MAX));
    }

    fn ms(&mut self, name: &'static str, n: Nanos) {
        self.uint(name, n.as_millis_ceil());
    }

    fn bool(&mut self, name: &'static str, b: bool) {
        let out = self.key(name);
        out.extend_from_slice(if b { b"true" } else { b"false" });
    }

    fn null(&mut self, name: &'static str) {
        self.key(name).extend_from_slice(b"null");
    }

    fn str(&mut self, name: &'static str, s: &str) {
        json_string(s.as_bytes(), self.key(name));
    }

    fn str_or_null(&mut self, name: &'static str, s: Option<&str>) {
        match s {
            Some(s) => self.str(name, s),
            None => self.null(name),
        }
    }

    fn uint_or_null(&mut self, name: &'static str, n: Option<u64>) {
        match n {
            Some(n) => self.uint(name, n),
            None => self.null(name),
        }
    }

    /// A count of a rule's units: a decimal string for a COST rule (micro-units), else an
    /// integer.
    fn units(&mut self, name: &'static str, cost: bool, n: u64) {
        if cost {
            self.decimal(name, i64::try_from(n).unwrap_or(i64::MAX));
        } else {
            self.uint(name, n);
        }
    }

    /// Micro-units as a decimal string (`"0.75"`).
    fn decimal(&mut self, name: &'static str, micros: i64) {
        let out = self.key(name);
        out.push(b'"');
        Amount(micros).write_decimal(out);
        out.push(b'"');
    }

    fn close(self) {
        self.out.push(b'}');
    }
}

/// One rule's object in `rules` (the reply's `rule_frame`).
fn write_rule(r: &RuleReport, out: &mut Vec<u8>) {
    let d = &r.decision;
    let cost = r.is_cost();
    let mut o = Object::open(out);
    o.str("rule", &r.name);
    o.str_or_null("scope", r.scope.as_deref());
    o.str("family", r.family);
    o.str("measure", r.measure.name());
    o.bool(
        "allowed",
        r.outcome != crate::policy::decide::Outcome::Block,
    );
    o.str("outcome", outcome_name(r.outcome));
    o.str("action", r.action.name());
    o.units("limit", cost, d.limit);
    o.units("remaining", cost, d.remaining);
    o.int("retry_after_ms", d.retry_after_ms());
    o.int("reset_after_ms", d.reset_after_ms());
    if cost {
        o.decimal("charged", r.charged);
    } else {
        o.int("charged", r.charged);
    }
    o.bool("warning", r.warned);
    o.units("overage", cost, r.overage);
    o.close();
}

/// The reservation id as the reply gives it: a number, or in cluster mode the tagged string.
fn write_reservation(id: &ReservationId, out: &mut Vec<u8>) {
    match id.tag {
        None => {
            let n = i64::try_from(id.n).unwrap_or(i64::MAX);
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        }
        Some(_) => json_string(&id.to_bytes(), out),
    }
}

/// Appends the reply of a check, status or reserve as a JSON object (the fields of
/// `cmd::policy::check_frame`, in its order).
pub fn write_check(o: &CheckOutcome, out: &mut Vec<u8>) {
    let mut m = Object::open(out);
    m.bool("allowed", o.allowed);
    match (o.tightest_rule(), o.decision()) {
        (Some(r), Some(d)) => {
            m.units("limit", r.is_cost(), d.limit);
            m.units("remaining", r.is_cost(), d.remaining);
            m.int("retry_after_ms", d.retry_after_ms());
            m.int("reset_after_ms", d.reset_after_ms());
        }
        _ => {
            m.int("limit", -1);
            m.int("remaining", -1);
            match o.suspended_retry {
                Some(n) => m.ms("retry_after_ms", n),
                None => m.int("retry_after_ms", -1),
            }
            m.int("reset_after_ms", 0);
        }
    }
    m.str_or_null("denied_by", o.denied_by.as_deref());
    m.str("action", o.action);
    m.ms("delay_ms", o.delay);
    m.str_or_null("reason", o.reason.as_deref());
    m.str_or_null("override", o.overridden.as_deref());
    m.bool("dryrun", o.dryrun);
    let out = m.key("warnings");
    out.push(b'[');
    for (i, w) in o.warnings.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json_string(w.as_bytes(), out);
    }
    out.push(b']');
    m.bool("warning", o.warning);
    m.bool("overage", o.overage);
    m.str_or_null("message", o.message.as_deref());
    m.str_or_null("link", o.link.as_deref());
    match o.lease {
        Some((id, _)) => m.uint("lease_id", id.0),
        None => m.int("lease_id", -1),
    }
    if let Some((id, at)) = &o.reservation {
        write_reservation(id, m.key("reservation"));
        m.uint("reservation_expires_at_ms", at.as_millis());
    }
    let out = m.key("rules");
    out.push(b'[');
    for (i, r) in o.rules.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_rule(r, out);
    }
    out.push(b']');
    m.str_or_null("ratelimit", o.headers.ratelimit.as_deref());
    m.str_or_null("ratelimit-policy", o.headers.policy.as_deref());
    m.uint_or_null("retry-after", o.headers.retry_after);
    let legacy = o.headers.legacy;
    m.uint_or_null("x-ratelimit-limit", legacy.map(|l| l.limit));
    m.uint_or_null("x-ratelimit-remaining", legacy.map(|l| l.remaining));
    m.uint_or_null("x-ratelimit-reset", legacy.map(|l| l.reset));
    m.close();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::policy::check_frame;
    use crate::http::check::write_json;
    use crate::limiter::decision::Decision;
    use crate::limiter::lease::LeaseId;
    use crate::policy::decide::Outcome;
    use crate::policy::headers::{Headers, Legacy};
    use crate::policy::model::{Action, Measure};
    use bytes::Bytes;

    fn rule(name: &str, family: &'static str, outcome: Outcome, d: Decision) -> RuleReport {
        RuleReport {
            name: name.into(),
            scope: None,
            family,
            measure: if family == "cost" {
                Measure::Cost
            } else {
                Measure::Requests
            },
            outcome,
            action: Action::Block,
            decision: d,
            charged: 1,
            warned: false,
            overage: 0,
        }
    }

    fn base() -> CheckOutcome {
        let d = Decision::allow(100, 99, Nanos(600_000_000));
        CheckOutcome {
            allowed: true,
            tightest: Some((0, d)),
            denied_by: None,
            action: "allow",
            delay: Nanos(0),
            reason: None,
            overridden: None,
            dryrun: false,
            warnings: Vec::new(),
            warning: false,
            overage: false,
            message: None,
            link: None,
            suspended_retry: None,
            lease: None,
            rules: vec![rule("rate", "rate", Outcome::Pass, d)],
            headers: Headers {
                ratelimit: Some("\"rate\";r=99;t=1".into()),
                policy: Some("\"rate\";q=100;w=60".into()),
                retry_after: None,
                legacy: Some(Legacy {
                    limit: 100,
                    remaining: 99,
                    reset: 1,
                }),
            },
            reservation: None,
        }
    }

    fn same(o: CheckOutcome) {
        let mut direct = Vec::new();
        write_check(&o, &mut direct);
        let mut framed = Vec::new();
        write_json(&check_frame(o), &mut framed);
        assert_eq!(
            String::from_utf8_lossy(&direct),
            String::from_utf8_lossy(&framed)
        );
        let _: serde_json::Value = serde_json::from_slice(&direct).expect("valid JSON");
    }

    #[test]
    fn an_admission_is_written_as_the_reply_frame_is() {
        same(base());
    }

    #[test]
    fn a_refusal_with_every_optional_field_is_written_as_the_reply_frame_is() {
        let mut o = base();
        let blocked = Decision {
            allowed: false,
            limit: 100,
            remaining: 0,
            retry_after: Some(Nanos(1_500_000_001)),
            reset_after: Nanos(u64::MAX),
        };
        let cost = Decision::allow(2_500_000, 750_000, Nanos(1));
        o.allowed = false;
        o.tightest = Some((1, blocked));
        o.denied_by = Some("api/rate".into());
        o.action = "block";
        o.delay = Nanos(3_000_001);
        o.reason = Some("denylist:10.0.0.0/8".into());
        o.overridden = Some("incident \"42\"\n".into());
        o.dryrun = true;
        o.warnings = vec!["quota".into(), "caf\u{e9}".into()];
        o.warning = true;
        o.overage = true;
        o.message = Some("Upgrade \\ now \u{1}".into());
        o.link = Some("https://example.com/plans?x=1&y=\u{2028}".into());
        o.lease = Some((LeaseId(u64::MAX), Nanos(5)));
        let mut scoped = rule("rate", "rate", Outcome::Block, blocked);
        scoped.scope = Some("/orders".into());
        scoped.warned = true;
        scoped.overage = 3;
        let mut c = rule("spend", "cost", Outcome::Slowdown(Nanos(9)), cost);
        c.charged = -250_000;
        c.overage = 1_000_001;
        c.action = Action::Slowdown;
        c.measure = Measure::Cost;
        o.rules = vec![rule("window", "window", Outcome::Log, cost), scoped, c];
        o.headers.retry_after = Some(2);
        same(o.clone());
        // A COST rule as the tightest gives decimal strings.
        o.tightest = Some((2, cost));
        same(o);
    }

    #[test]
    fn listed_suspended_and_reserved_outcomes_are_written_as_the_reply_frame_is() {
        let mut o = base();
        o.tightest = None;
        o.rules.clear();
        o.headers = Headers::default();
        o.reason = Some("allowlist:vip".into());
        same(o.clone());
        o.suspended_retry = Some(Nanos(1_000_000_001));
        same(o.clone());
        o.reservation = Some((
            ReservationId { n: 17, tag: None },
            Nanos(1_700_000_000_123_456_789),
        ));
        same(o.clone());
        o.reservation = Some((
            ReservationId {
                n: 18,
                tag: Some(Bytes::from_static(b"team-7")),
            },
            Nanos(0),
        ));
        same(o);
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        for s in [
            &b"plain"[..],
            b"",
            b"q\"uote",
            b"back\\slash",
            b"tab\there",
            b"\x7f",
            b"caf\xc3\xa9",
            b"bad \xff utf8",
            b"\x00\x1f",
        ] {
            let mut fast = Vec::new();
            json_string(s, &mut fast);
            let slow = serde_json::to_vec(&*String::from_utf8_lossy(s)).unwrap();
            assert_eq!(fast, slow, "{s:?}");
        }
    }
}
