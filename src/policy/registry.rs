//! The server's policies, overrides and access lists ([`Tables`], behind one read-write lock),
//! plus the event ring and the index of reservations waiting to expire.
//!
//! Reads (every `LIMIT.CHECK`) take the read lock briefly and clone an `Arc` of what they need;
//! changes take the write lock, and the command layer journals each change to the AOF while it
//! still holds it, so the log's order is the order of the changes. No store, no I/O; the
//! AOF reads and writes the tables through `persist::catalog`.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::clock::Nanos;
use crate::limiter::cost::Amount;
use crate::policy::access::{AccessList, Entry};
use crate::policy::model::{Body, Override, Policy, PolicyError};
use crate::policy::suspend::Suspension;

/// How many published events the ring keeps.
pub const EVENT_RING: usize = 1024;

/// Policies, overrides and lists.
#[derive(Debug, Default)]
pub struct Tables {
    /// Policies by name.
    pub policies: BTreeMap<String, Arc<Policy>>,
    /// Overrides by identity (expired ones are dropped lazily).
    pub overrides: BTreeMap<Bytes, Arc<Override>>,
    /// Identities and networks that skip every limit.
    pub allow: AccessList,
    /// Identities and networks that are refused.
    pub deny: AccessList,
    /// Suspensions by identity, at most one per policy (expired ones are dropped lazily).
    pub suspensions: BTreeMap<Bytes, Vec<Arc<Suspension>>>,
}

/// What a check runs against.
#[derive(Debug)]
pub enum Gate {
    /// Allow-listed: admitted without checking any rule.
    Allow(Entry),
    /// Deny-listed: refused.
    Deny(Entry),
    /// Suspended: refused with the suspension's reason.
    Suspended(Arc<Suspension>),
    /// Checked against these rules.
    Check(Resolved),
}

/// The rules a check of one policy runs for one identity.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The policy asked for (its counters are the ones counted).
    pub asked: Arc<Policy>,
    /// The policy whose name keys the rule states: `asked`, or the override's `POLICY`.
    pub key_policy: Arc<Policy>,
    /// The effective rules: the key policy's, with the override's merged over them.
    pub body: Arc<Body>,
    /// The override in force, if any.
    pub overridden: Option<Arc<Override>>,
}

impl Tables {
    /// The override of `identity` in force at `now` for checks of `policy`.
    pub fn override_for(
        &self,
        identity: &[u8],
        policy: &str,
        now: Nanos,
    ) -> Option<&Arc<Override>> {
        self.overrides
            .get(identity)
            .filter(|o| o.is_live(now) && o.applies_to(policy))
    }

    /// The rules of `policy` for `identity` (override applied), ignoring the access lists.
    pub fn rules_for(
        &self,
        policy: &str,
        identity: &[u8],
        now: Nanos,
    ) -> Result<Resolved, PolicyError> {
        let asked = self
            .policies
            .get(policy)
            .ok_or_else(|| PolicyError(format!("unknown policy '{policy}'")))?
            .clone();
        let Some(o) = self.override_for(identity, policy, now) else {
            return Ok(Resolved {
                body: asked.body.clone(),
                key_policy: asked.clone(),
                asked,
                overridden: None,
            });
        };
        // An override naming a policy that no longer exists falls back to the one asked for.
        let key_policy = o
            .policy
            .as_ref()
            .and_then(|p| self.policies.get(p))
            .unwrap_or(&asked)
            .clone();
        Ok(Resolved {
            body: Arc::new(key_policy.body.merged(&o.body)),
            key_policy,
            asked,
            overridden: Some(o.clone()),
        })
    }

    /// Deny list first (a denied identity stays denied even if also allowed), then the
    /// identity's suspension, then the allow list, then the rules.
    pub fn resolve(
        &self,
        policy: &str,
        identity: &[u8],
        ip: Option<IpAddr>,
        now: Nanos,
    ) -> Result<Gate, PolicyError> {
        let resolved = self.rules_for(policy, identity, now)?;
        if let Some(e) = self.deny.matching(identity, ip) {
            resolved
                .asked
                .counters
                .denylisted
                .fetch_add(1, Ordering::Relaxed);
            return Ok(Gate::Deny(e.clone()));
        }
        if let Some(s) = self.suspension_for(identity, policy, now) {
            return Ok(Gate::Suspended(s.clone()));
        }
        if let Some(e) = self.allow.matching(identity, ip) {
            resolved
                .asked
                .counters
                .allowlisted
                .fetch_add(1, Ordering::Relaxed);
            return Ok(Gate::Allow(e.clone()));
        }
        Ok(Gate::Check(resolved))
    }

    /// The suspension of `identity` in force at `now` for checks of `policy`: the policy's
    /// own, else the one from every policy.
    pub fn suspension_for(
        &self,
        identity: &[u8],
        policy: &str,
        now: Nanos,
    ) -> Option<&Arc<Suspension>> {
        let list = self.suspensions.get(identity)?;
        let live = |s: &&Arc<Suspension>| s.is_live(now) && s.applies_to(policy);
        list.iter()
            .filter(live)
            .find(|s| s.policy == policy)
            .or_else(|| list.iter().find(live))
    }

    /// Sets `s` for `identity`, replacing its suspension of the same policy.
    pub fn set_suspension(&mut self, identity: Bytes, s: Arc<Suspension>) {
        let list = self.suspensions.entry(identity).or_default();
        list.retain(|x| x.policy != s.policy);
        list.push(s);
    }

    /// Lifts `identity`'s suspension of `policy` (`*`: the one from every policy).
    pub fn remove_suspension(&mut self, identity: &[u8], policy: &str) -> Option<Arc<Suspension>> {
        let list = self.suspensions.get_mut(identity)?;
        let at = list.iter().position(|x| x.policy == policy)?;
        let gone = list.remove(at);
        if list.is_empty() {
            self.suspensions.remove(identity);
        }
        Some(gone)
    }

    /// Drops suspensions expired at `now`; returns them with their identities.
    pub fn drop_expired_suspensions(&mut self, now: Nanos) -> Vec<(Bytes, Arc<Suspension>)> {
        let mut gone = Vec::new();
        self.suspensions.retain(|id, list| {
            list.retain(|s| {
                let live = s.is_live(now);
                if !live {
                    gone.push((id.clone(), s.clone()));
                }
                live
            });
            !list.is_empty()
        });
        gone
    }

    /// Sets `p`, keeping the counters of the rules it shares with the version it replaces.
    pub fn set_policy(&mut self, mut p: Policy) {
        if let Some(old) = self.policies.get(&p.name) {
            let mut body = (*p.body).clone();
            body.inherit_counters(&old.body);
            p.body = Arc::new(body);
            p.counters = old.counters.clone();
        }
        self.policies.insert(p.name.clone(), Arc::new(p));
    }

    /// Drops overrides expired at `now`; returns their identities.
    pub fn drop_expired_overrides(&mut self, now: Nanos) -> Vec<(Bytes, Arc<Override>)> {
        let expired: Vec<Bytes> = self
            .overrides
            .iter()
            .filter(|(_, o)| !o.is_live(now))
            .map(|(k, _)| k.clone())
            .collect();
        expired
            .into_iter()
            .filter_map(|k| self.overrides.remove(&k).map(|o| (k, o)))
            .collect()
    }

    /// The list named `deny` (true) or allow (false).
    pub fn list_mut(&mut self, deny: bool) -> &mut AccessList {
        if deny {
            &mut self.deny
        } else {
            &mut self.allow
        }
    }
}

/// What the expiry index remembers of a pending reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingReservation {
    /// The policy.
    pub policy: String,
    /// The identity.
    pub identity: Bytes,
    /// Estimated tokens.
    pub tokens: u64,
    /// Estimated cost.
    pub cost: Amount,
}

/// The registry held in [`crate::engine::Engine`].
#[derive(Debug, Default)]
pub struct Registry {
    tables: RwLock<Tables>,
    events: Mutex<VecDeque<(Bytes, Bytes)>>,
    events_published: AtomicU64,
    allowed_seen: AtomicU64,
    pending: Mutex<BTreeMap<(Nanos, u64), PendingReservation>>,
}

impl Registry {
    /// Read access.
    pub fn read(&self) -> RwLockReadGuard<'_, Tables> {
        self.tables.read()
    }

    /// Write access; journal changes before dropping the guard.
    pub fn write(&self) -> RwLockWriteGuard<'_, Tables> {
        self.tables.write()
    }

    /// Keeps a published event in the ring (the newest [`EVENT_RING`]).
    pub fn record_event(&self, channel: &[u8], message: Bytes) {
        let mut ring = self.events.lock();
        if ring.len() == EVENT_RING {
            ring.pop_front();
        }
        ring.push_back((Bytes::copy_from_slice(channel), message));
        self.events_published.fetch_add(1, Ordering::Relaxed);
    }

    /// The newest `n` events, oldest first.
    pub fn recent_events(&self, n: usize) -> Vec<(Bytes, Bytes)> {
        let ring = self.events.lock();
        ring.iter()
            .skip(ring.len().saturating_sub(n))
            .cloned()
            .collect()
    }

    /// Events published since start.
    pub fn events_published(&self) -> u64 {
        self.events_published.load(Ordering::Relaxed)
    }

    /// Whether the next admitted check is sampled at `ppm` parts per million: exactly
    /// `ppm / 10^6` of admitted checks are, evenly spread.
    pub fn sample_allowed(&self, ppm: u32) -> bool {
        if ppm == 0 {
            return false;
        }
        let n = self.allowed_seen.fetch_add(1, Ordering::Relaxed);
        let ppm = u128::from(ppm);
        (u128::from(n) + 1) * ppm / 1_000_000 > u128::from(n) * ppm / 1_000_000
    }

    /// Remembers a reservation until it expires.
    pub fn track_reservation(&self, expires_at: Nanos, id: u64, r: PendingReservation) {
        self.pending.lock().insert((expires_at, id), r);
    }

    /// Forgets a settled or cancelled reservation.
    pub fn untrack_reservation(&self, expires_at: Nanos, id: u64) {
        self.pending.lock().remove(&(expires_at, id));
    }

    /// Removes and returns the reservations expired at `now`.
    pub fn expired_reservations(&self, now: Nanos) -> Vec<(u64, Nanos, PendingReservation)> {
        let mut pending = self.pending.lock();
        let mut out = Vec::new();
        while let Some(entry) = pending.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let ((at, id), r) = entry.remove_entry();
            out.push((id, at, r));
        }
        out
    }

    /// Reservations waiting to expire.
    pub fn pending_reservations(&self) -> usize {
        self.pending.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::model::split_words;

    fn words(s: &str) -> Vec<Bytes> {
        split_words(s)
            .unwrap()
            .into_iter()
            .map(Bytes::from)
            .collect()
    }

    #[test]
    fn resolve_checks_deny_then_allow_then_overrides() {
        let mut t = Tables::default();
        t.set_policy(Policy::parse(b"free", &words("RATE 100/1m QUOTA 1000/day")).unwrap());
        t.set_policy(Policy::parse(b"pro", &words("RATE 1000/1m")).unwrap());
        t.overrides.insert(
            Bytes::from_static(b"acme"),
            Arc::new(
                Override::parse(&words("POLICY pro RATE 5000/1m EXPIRE 1h"), Nanos(0)).unwrap(),
            ),
        );
        t.allow.add(Entry::parse(b"svc"));
        t.deny.add(Entry::parse(b"10.0.0.0/8"));
        t.allow.add(Entry::parse(b"10.1.1.1"));
        let gate = |id: &str, ip: Option<&str>, now: u64| {
            t.resolve(
                "free",
                id.as_bytes(),
                ip.map(|s| s.parse().unwrap()),
                Nanos(now),
            )
            .unwrap()
        };
        assert!(matches!(gate("svc", None, 0), Gate::Allow(_)));
        assert!(
            matches!(gate("x", Some("10.1.1.1"), 0), Gate::Deny(_)),
            "deny wins"
        );
        let Gate::Check(r) = gate("acme", None, 0) else {
            panic!()
        };
        assert_eq!(r.key_policy.name, "pro");
        assert_eq!(r.body.rules[0].limit.quota(), 5000);
        let Gate::Check(r) = gate("acme", None, 3_600 * Nanos::PER_SEC) else {
            panic!()
        };
        assert_eq!(r.key_policy.name, "free", "expired override");
        assert!(t.resolve("nope", b"a", None, Nanos(0)).is_err());
        assert_eq!(
            t.policies["free"]
                .counters
                .allowlisted
                .load(Ordering::Relaxed),
            1
        );
    }

    #[test]
    fn editing_a_policy_keeps_rule_counters() {
        let mut t = Tables::default();
        t.set_policy(Policy::parse(b"p", &words("RATE 1/1s QUOTA 5/day")).unwrap());
        t.policies["p"].body.rules[0]
            .counters
            .allowed
            .fetch_add(3, Ordering::Relaxed);
        t.set_policy(Policy::parse(b"p", &words("RATE 9/1s")).unwrap());
        assert_eq!(
            t.policies["p"].body.rules[0]
                .counters
                .allowed
                .load(Ordering::Relaxed),
            3
        );
    }

    #[test]
    fn sampling_is_exact_and_events_ring_is_bounded() {
        let r = Registry::default();
        let hits = (0..1000).filter(|_| r.sample_allowed(250_000)).count();
        assert_eq!(hits, 250);
        for i in 0..(EVENT_RING + 5) {
            r.record_event(b"c", Bytes::from(i.to_string()));
        }
        let last = r.recent_events(2);
        assert_eq!(last[1].1, Bytes::from((EVENT_RING + 4).to_string()));
        assert_eq!(r.recent_events(usize::MAX).len(), EVENT_RING);
        r.track_reservation(
            Nanos(5),
            1,
            PendingReservation {
                policy: "p".into(),
                identity: Bytes::new(),
                tokens: 1,
                cost: Amount(0),
            },
        );
        r.track_reservation(
            Nanos(9),
            2,
            PendingReservation {
                policy: "p".into(),
                identity: Bytes::new(),
                tokens: 1,
                cost: Amount(0),
            },
        );
        assert_eq!(r.expired_reservations(Nanos(5)).len(), 1);
        assert_eq!(r.pending_reservations(), 1);
    }
}
