//! Allow and deny lists: identities and IP networks (IPv4 and IPv6 CIDR ranges, via `ipnet`).
//!
//! An entry that parses as an IP address or a CIDR range is a network; anything else is an
//! identity, matched exactly. A network matches the request's `IP` and also the identity
//! itself when the identity is an IP address (anonymous clients are often keyed by address).
//! Pure: no store, no clock.

use std::collections::BTreeSet;
use std::net::IpAddr;

use bytes::Bytes;
use ipnet::IpNet;

/// One entry as given.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Entry {
    /// A network (a single address is a /32 or /128).
    Net(IpNet),
    /// An identity.
    Identity(Bytes),
}

impl Entry {
    /// Reads an entry: an address or CIDR range is a network, anything else an identity.
    pub fn parse(s: &[u8]) -> Entry {
        if let Ok(text) = std::str::from_utf8(s) {
            if let Ok(net) = text.parse::<IpNet>() {
                return Entry::Net(net.trunc());
            }
            if let Ok(ip) = text.parse::<IpAddr>() {
                return Entry::Net(IpNet::from(ip));
            }
        }
        Entry::Identity(Bytes::copy_from_slice(s))
    }

    /// The entry as text (networks in canonical CIDR form).
    pub fn to_bytes(&self) -> Bytes {
        match self {
            Entry::Net(n) => Bytes::from(n.to_string()),
            Entry::Identity(b) => b.clone(),
        }
    }
}

/// One list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessList {
    entries: BTreeSet<Entry>,
}

impl AccessList {
    /// Adds an entry; true if it was new.
    pub fn add(&mut self, e: Entry) -> bool {
        self.entries.insert(e)
    }

    /// Removes an entry; true if it was there.
    pub fn remove(&mut self, e: &Entry) -> bool {
        self.entries.remove(e)
    }

    /// Every entry, identities and networks in a stable order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }

    /// Whether the list is empty (the check is then free).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The first entry matching `identity` or `ip`.
    pub fn matching(&self, identity: &[u8], ip: Option<IpAddr>) -> Option<&Entry> {
        if self.entries.is_empty() {
            return None;
        }
        let id = Entry::Identity(Bytes::copy_from_slice(identity));
        if let Some(e) = self.entries.get(&id) {
            return Some(e);
        }
        let id_ip = std::str::from_utf8(identity)
            .ok()
            .and_then(|s| s.parse::<IpAddr>().ok());
        self.entries.iter().find(|e| match e {
            Entry::Net(n) => {
                ip.is_some_and(|a| n.contains(&a)) || id_ip.is_some_and(|a| n.contains(&a))
            }
            Entry::Identity(_) => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_and_networks_match() {
        let mut l = AccessList::default();
        for e in [
            "svc-internal",
            "10.0.0.0/8",
            "2001:db8::/32",
            "192.0.2.7",
            "10.1.2.3/8",
        ] {
            l.add(Entry::parse(e.as_bytes()));
        }
        // 10.1.2.3/8 truncates to 10.0.0.0/8, already there.
        assert_eq!(l.entries().count(), 4);
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        // (label, identity, ip, matched entry)
        let cases = [
            ("identity", "svc-internal", None, Some("svc-internal")),
            (
                "ip in v4 range",
                "alice",
                ip("10.9.8.7"),
                Some("10.0.0.0/8"),
            ),
            (
                "ip in v6 range",
                "alice",
                ip("2001:db8::1"),
                Some("2001:db8::/32"),
            ),
            (
                "single address",
                "alice",
                ip("192.0.2.7"),
                Some("192.0.2.7/32"),
            ),
            (
                "identity that is an address",
                "10.3.3.3",
                None,
                Some("10.0.0.0/8"),
            ),
            ("no match", "bob", ip("192.0.2.8"), None),
            ("no ip", "bob", None, None),
        ];
        for (label, id, addr, want) in cases {
            let got = l.matching(id.as_bytes(), addr).map(Entry::to_bytes);
            assert_eq!(got.as_deref(), want.map(str::as_bytes), "{label}");
        }
        assert!(l.remove(&Entry::parse(b"10.0.0.0/8")));
        assert_eq!(l.matching(b"a", ip("10.9.8.7")), None);
    }
}
