//! Webhooks (issue 17): a policy's `WEBHOOK` clause, where its events are POSTed as JSON.
//!
//! ```text
//! WEBHOOK url [EVENTS kind[,kind...]] [SECRET secret]
//! ```
//! A policy option (before the first rule, like `WARN` or `MESSAGE`), at most one per
//! policy. `url` is `http://host[:port][/path]`; `EVENTS` picks the event kinds delivered
//! (default: every kind but the sampled `allowed`); `SECRET` signs each body with
//! HMAC-SHA256 (`X-Limitkv-Signature: sha256=<hex>`). The clause is part of the policy's
//! words, so it is journaled, rewritten and replayed with the policy. Overrides cannot set
//! one: events are routed by the policy asked for. Pure: the delivery queue and the HTTP
//! client are [`crate::webhook`].

use crate::policy::model::{PolicyError, Words};

/// The event kinds, as the payload's `"event"` field names them; bit `i` of an [`EventSet`]
/// is `KINDS[i]`.
pub const KINDS: [&str; 8] = [
    "denied",
    "warning",
    "overage",
    "suspension",
    "override",
    "reservation",
    "breaker",
    "allowed",
];

/// Longest webhook URL.
pub const MAX_URL_LEN: usize = 2048;
/// Longest `SECRET`.
pub const MAX_SECRET_LEN: usize = 256;

/// A set of event kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventSet(u16);

impl EventSet {
    /// Every kind but `allowed` (a sampled stream of admissions is no notification).
    pub const DEFAULT: EventSet = EventSet((1 << 7) - 1);

    /// Parses `kind[,kind...]` (case-insensitive, each at most once).
    pub fn parse(list: &str) -> Result<EventSet, PolicyError> {
        let mut bits = 0u16;
        for name in list.split(',') {
            let name = name.trim().to_ascii_lowercase();
            let i = KINDS.iter().position(|k| *k == name).ok_or_else(|| {
                PolicyError::new(format!(
                    "unknown webhook event '{name}' (one of {})",
                    KINDS.join(", ")
                ))
            })?;
            if bits & (1 << i) != 0 {
                return Err(PolicyError::new(format!(
                    "webhook event '{name}' is given twice"
                )));
            }
            bits |= 1 << i;
        }
        Ok(EventSet(bits))
    }

    /// Whether `kind` (a payload's `"event"`) is in the set.
    pub fn contains(self, kind: &str) -> bool {
        KINDS
            .iter()
            .position(|k| *k == kind)
            .is_some_and(|i| self.0 & (1 << i) != 0)
    }

    /// The kinds, comma separated, in [`KINDS`] order.
    pub fn names(self) -> String {
        KINDS
            .iter()
            .enumerate()
            .filter(|(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, k)| *k)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Where a policy's events go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// The URL as given (validated).
    pub url: String,
    /// Host name or IP address (an IPv6 address without its brackets).
    pub host: String,
    /// TCP port (80 when not given).
    pub port: u16,
    /// Path and query (`/` when not given).
    pub path: String,
    /// The kinds delivered.
    pub events: EventSet,
    /// HMAC-SHA256 key of the signature header.
    pub secret: Option<String>,
}

fn printable(b: &[u8]) -> bool {
    b.iter()
        .all(|&c| c.is_ascii_graphic() && c != b'"' && c != b'\'' && c != b'\\')
}

/// Checks `http://host[:port][/path]` and splits it.
pub fn parse_url(b: &[u8]) -> Result<(String, u16, String), PolicyError> {
    let shown = String::from_utf8_lossy(b);
    let bad = |why: &str| {
        PolicyError::new(format!(
            "invalid WEBHOOK URL '{shown}': {why} (use http://host[:port][/path])"
        ))
    };
    if b.len() > MAX_URL_LEN {
        return Err(bad(&format!("longer than {MAX_URL_LEN} characters")));
    }
    if !printable(b) {
        return Err(bad("blanks, quotes or non-ASCII characters"));
    }
    let lower = b.to_ascii_lowercase();
    if lower.starts_with(b"https://") {
        return Err(bad("https is not supported, only http"));
    }
    if !lower.starts_with(b"http://") {
        return Err(bad("not an http:// URL"));
    }
    // Printable ASCII: a valid str.
    let rest = &shown[7..];
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if path.contains('#') {
        return Err(bad("a fragment is not sent"));
    }
    if authority.contains('@') {
        return Err(bad("credentials in the URL are not supported"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
        if h.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad("bad IPv6 address"));
        }
        match after {
            "" => (h, None),
            p => (h, Some(p.strip_prefix(':').ok_or_else(|| bad("bad port"))?)),
        }
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let port = match port {
        None => 80,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad("bad port"))?,
    };
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_owned()
    };
    Ok((host.to_owned(), port, path))
}

impl Webhook {
    /// Parses the words after `WEBHOOK`: the URL, then `EVENTS` and `SECRET` in any order,
    /// each at most once.
    pub fn parse(w: &mut Words<'_>) -> Result<Webhook, PolicyError> {
        let url = w.value("WEBHOOK")?;
        let (host, port, path) = parse_url(url)?;
        let mut events = None;
        let mut secret = None;
        while let Some(word) = w.peek() {
            if word.eq_ignore_ascii_case(b"EVENTS") {
                w.next_word();
                let v = w.value("EVENTS")?;
                let set = EventSet::parse(&String::from_utf8_lossy(v))?;
                if events.replace(set).is_some() {
                    return Err(PolicyError::new("EVENTS given twice"));
                }
            } else if word.eq_ignore_ascii_case(b"SECRET") {
                w.next_word();
                let v = w.value("SECRET")?;
                if v.is_empty() || v.len() > MAX_SECRET_LEN || !printable(v) {
                    return Err(PolicyError::new(format!(
                        "invalid SECRET: use 1 to {MAX_SECRET_LEN} printable ASCII characters without blanks or quotes"
                    )));
                }
                if secret
                    .replace(String::from_utf8_lossy(v).into_owned())
                    .is_some()
                {
                    return Err(PolicyError::new("SECRET given twice"));
                }
            } else {
                break;
            }
        }
        Ok(Webhook {
            url: String::from_utf8_lossy(url).into_owned(),
            host,
            port,
            path,
            events: events.unwrap_or(EventSet::DEFAULT),
            secret,
        })
    }

    /// Appends the canonical words (`EVENTS` always spelled out).
    pub fn write_words(&self, w: &mut Vec<String>) {
        w.extend([
            "WEBHOOK".to_owned(),
            self.url.clone(),
            "EVENTS".to_owned(),
            self.events.names(),
        ]);
        if let Some(s) = &self.secret {
            w.extend(["SECRET".to_owned(), s.clone()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn parse(line: &str) -> Result<Webhook, PolicyError> {
        let words: Vec<Bytes> = line
            .split(' ')
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect();
        let mut w = Words::new(&words);
        let h = Webhook::parse(&mut w)?;
        assert!(w.is_done(), "{line}: words left");
        Ok(h)
    }

    #[test]
    fn urls_split_into_host_port_and_path() {
        for (url, host, port, path) in [
            (
                "http://127.0.0.1:8080/hook?x=1",
                "127.0.0.1",
                8080,
                "/hook?x=1",
            ),
            ("HTTP://example.test", "example.test", 80, "/"),
            ("http://[::1]:9/a", "::1", 9, "/a"),
            ("http://h?q", "h", 80, "/?q"),
        ] {
            let h = parse(url).unwrap();
            assert_eq!(
                (h.host.as_str(), h.port, h.path.as_str()),
                (host, port, path),
                "{url}"
            );
            assert_eq!(h.events, EventSet::DEFAULT, "{url}");
        }
    }

    #[test]
    fn bad_urls_events_and_secrets_are_refused_with_the_reason() {
        for (line, says) in [
            ("https://x.test/h", "https is not supported"),
            ("ftp://x.test/h", "not an http:// URL"),
            ("http:///h", "no host"),
            ("http://h:0/", "bad port"),
            ("http://h:99999/", "bad port"),
            ("http://u:p@h/", "credentials"),
            ("http://[zz]/", "bad IPv6"),
            ("http://h/#f", "fragment"),
            (
                "http://h/ EVENTS denied,nope",
                "unknown webhook event 'nope'",
            ),
            ("http://h/ EVENTS denied,DENIED", "given twice"),
            (
                "http://h/ EVENTS denied EVENTS warning",
                "EVENTS given twice",
            ),
            ("http://h/ SECRET a\"b", "invalid SECRET"),
        ] {
            let e = parse(line).unwrap_err().to_string();
            assert!(e.contains(says), "{line}: {e}");
        }
    }

    #[test]
    fn words_round_trip() {
        let h = parse("http://h:81/x SECRET s3 EVENTS Breaker,denied").unwrap();
        assert!(h.events.contains("denied") && h.events.contains("breaker"));
        assert!(!h.events.contains("warning"));
        let mut w = Vec::new();
        h.write_words(&mut w);
        assert_eq!(
            w.join(" "),
            "WEBHOOK http://h:81/x EVENTS denied,breaker SECRET s3"
        );
        assert_eq!(parse(&w[1..].join(" ")).unwrap(), h);
    }
}
