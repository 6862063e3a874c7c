//! The policy catalog as engine calls: policies (`POLICY.SET` / `DEL`), overrides
//! (`OVERRIDE.SET` / `DEL`) and the access lists (`ALLOWLIST.*` / `DENYLIST.*`), and reads of
//! them.
//!
//! A change takes the registry's write lock and journals its own record
//! ([`Call::journal`]) while still holding it, so the log's order is the order of the
//! changes; events are emitted after the lock drops. Rule states in the keyspace are not
//! touched: a rule's state key depends only on the policy, the rule's name, the scope and the
//! identity, so editing a policy keeps its counted usage.

use std::sync::Arc;

use bytes::Bytes;

use crate::clock::Nanos;
use crate::persist::Record;
use crate::policy::access::Entry as AccessEntry;
use crate::policy::events::Event;
use crate::policy::model::{Override, Policy};
use crate::policy::suspend::{Suspension, EVERY_POLICY};

use super::{Call, Engine, Error};

fn words_of(v: Vec<String>) -> Vec<Bytes> {
    v.into_iter().map(Bytes::from).collect()
}

impl Call<'_, '_> {
    /// Sets (creates or replaces) policy `p`, keeping the counters of the rules the new
    /// version shares with the old one.
    pub fn policy_set(&mut self, p: Policy) {
        let record = Record::PolicySet {
            name: Bytes::from(p.name.clone()),
            words: words_of(p.body.words()),
        };
        let engine = self.engine;
        let mut t = engine.policies.write();
        t.set_policy(p);
        self.journal(&record);
    }

    /// Deletes the policies named; returns how many existed.
    pub fn policy_del(&mut self, names: &[Bytes]) -> u64 {
        let engine = self.engine;
        let mut t = engine.policies.write();
        let mut n = 0;
        for name in names {
            if t.policies
                .remove(String::from_utf8_lossy(name).as_ref())
                .is_some()
            {
                n += 1;
                self.journal(&Record::PolicyDel { name: name.clone() });
            }
        }
        n
    }

    /// Gives `identity` the override `o` (replacing any), and emits its `set` event.
    /// Errors: `o` redirects to an unknown policy.
    pub fn override_set(&mut self, identity: Bytes, o: Override) -> Result<(), Error> {
        let engine = self.engine;
        let mut t = engine.policies.write();
        if let Some(p) = &o.policy {
            if !t.policies.contains_key(p) {
                return Err(Error::Policy(format!("unknown policy '{p}'")));
            }
        }
        self.journal(&Record::OverrideSet {
            identity: identity.clone(),
            words: words_of(o.words()),
        });
        let o = Arc::new(o);
        t.overrides.insert(identity.clone(), o.clone());
        drop(t);
        engine.emit(&Event::Override {
            at: self.now,
            identity: &identity,
            change: "set",
            policy: o.policy.as_deref(),
            reason: o.reason.as_deref(),
        });
        Ok(())
    }

    /// Deletes the overrides of `identities`; returns how many were in force (each emits a
    /// `del` event). An expired one is deleted too, silently.
    pub fn override_del(&mut self, identities: &[Bytes]) -> u64 {
        let now = self.now;
        let engine = self.engine;
        let mut gone = Vec::new();
        {
            let mut t = engine.policies.write();
            for id in identities {
                if let Some(o) = t.overrides.remove(id) {
                    self.journal(&Record::OverrideDel {
                        identity: id.clone(),
                    });
                    if o.is_live(now) {
                        gone.push((id.clone(), o));
                    }
                }
            }
        }
        for (identity, o) in &gone {
            engine.emit(&Event::Override {
                at: now,
                identity,
                change: "del",
                policy: o.policy.as_deref(),
                reason: o.reason.as_deref(),
            });
        }
        gone.len() as u64
    }

    /// Adds (`add`) or removes entries of the deny list (`deny`) or the allow list; each is
    /// an identity or an IP address / CIDR range. Returns how many changed the list. An empty
    /// entry is an error; the entries before it stay applied.
    pub fn access_change(
        &mut self,
        deny: bool,
        add: bool,
        entries: &[Bytes],
    ) -> Result<u64, Error> {
        let engine = self.engine;
        let mut t = engine.policies.write();
        let mut n = 0;
        for raw in entries {
            if raw.is_empty() {
                return Err(Error::Policy("an entry must not be empty".into()));
            }
            let e = AccessEntry::parse(raw);
            let list = t.list_mut(deny);
            let changed = if add {
                list.add(e.clone())
            } else {
                list.remove(&e)
            };
            if changed {
                n += 1;
                self.journal(&Record::Access {
                    deny,
                    add,
                    entry: e.to_bytes(),
                });
            }
        }
        Ok(n)
    }
}

impl Call<'_, '_> {
    /// Suspends `identity` (replacing its suspension of the same policy) and emits a `set`
    /// `suspension` event. Errors: an unknown policy (other than `*`).
    pub fn suspend(&mut self, identity: Bytes, s: Suspension) -> Result<(), Error> {
        let engine = self.engine;
        let mut t = engine.policies.write();
        if s.policy != EVERY_POLICY && !t.policies.contains_key(&s.policy) {
            return Err(Error::Policy(format!("unknown policy '{}'", s.policy)));
        }
        self.journal(&Record::Suspend {
            identity: identity.clone(),
            words: s.words(),
        });
        let s = Arc::new(s);
        t.set_suspension(identity.clone(), s.clone());
        drop(t);
        engine.emit(&Event::Suspension {
            at: self.now,
            identity: &identity,
            policy: Some(s.policy.as_str()),
            change: "set",
            reason: s.reason.as_deref(),
        });
        Ok(())
    }

    /// Lifts `identity`'s suspension of `policy` (or `*`); true if one was in force (it
    /// emits a `del` event). An expired one is removed too, silently.
    pub fn unsuspend(&mut self, identity: &[u8], policy: &str) -> bool {
        let engine = self.engine;
        let mut t = engine.policies.write();
        let Some(s) = t.remove_suspension(identity, policy) else {
            return false;
        };
        self.journal(&Record::Unsuspend {
            identity: Bytes::copy_from_slice(identity),
            policy: Bytes::copy_from_slice(policy.as_bytes()),
        });
        drop(t);
        let live = s.is_live(self.now);
        if live {
            engine.emit(&Event::Suspension {
                at: self.now,
                identity,
                policy: Some(s.policy.as_str()),
                change: "del",
                reason: s.reason.as_deref(),
            });
        }
        live
    }
}

impl Engine {
    /// The suspensions in force at `now`, of `identity` or of everyone, sorted by identity.
    pub fn suspensions(
        &self,
        identity: Option<&[u8]>,
        now: Nanos,
    ) -> Vec<(Bytes, Arc<Suspension>)> {
        let t = self.policies.read();
        let live = |(id, list): (&Bytes, &Vec<Arc<Suspension>>)| {
            list.iter()
                .filter(|s| s.is_live(now))
                .map(|s| (id.clone(), s.clone()))
                .collect::<Vec<_>>()
        };
        match identity {
            Some(id) => t
                .suspensions
                .get_key_value(id)
                .map(live)
                .unwrap_or_default(),
            None => t.suspensions.iter().flat_map(live).collect(),
        }
    }

    /// The policy names, sorted.
    pub fn policy_names(&self) -> Vec<String> {
        self.policies.read().policies.keys().cloned().collect()
    }

    /// The override of `identity` in force at `now`, if any.
    pub fn override_at(&self, identity: &[u8], now: Nanos) -> Option<Arc<Override>> {
        self.policies
            .read()
            .overrides
            .get(identity)
            .filter(|o| o.is_live(now))
            .cloned()
    }

    /// The identities with an override in force at `now`, sorted.
    pub fn override_identities(&self, now: Nanos) -> Vec<Bytes> {
        self.policies
            .read()
            .overrides
            .iter()
            .filter(|(_, o)| o.is_live(now))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The entries of the deny list (`deny`) or the allow list, as written.
    pub fn access_entries(&self, deny: bool) -> Vec<Bytes> {
        let t = self.policies.read();
        let list = if deny { &t.deny } else { &t.allow };
        list.entries().map(AccessEntry::to_bytes).collect()
    }
}
