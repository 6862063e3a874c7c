//! The policy catalog as the append-only file sees it: replay applies policy, override and
//! access-list records to the [`Registry`], and a rewrite snapshots it as records. Here rather
//! than in `policy/` so that `policy` (pure) never imports `persist`.

use std::sync::Arc;

use bytes::Bytes;

use crate::clock::Nanos;
use crate::persist::{Catalog, PersistError, Record};
use crate::policy::access::Entry;
use crate::policy::model::{Override, Policy, PolicyError};
use crate::policy::suspend::Suspension;
use crate::policy::Registry;

/// Policy records as replay applies them and a rewrite writes them.
impl Catalog for Registry {
    fn apply(&self, record: Record, now: Nanos) -> Result<(), PersistError> {
        let bad = |what: &str, e: PolicyError| {
            PersistError::Config(format!("the AOF holds an invalid {what}: {e}"))
        };
        let mut t = self.write();
        match record {
            Record::PolicySet { name, words } => {
                t.set_policy(Policy::parse(&name, &words).map_err(|e| bad("policy", e))?);
            }
            Record::PolicyDel { name } => {
                t.policies.remove(String::from_utf8_lossy(&name).as_ref());
            }
            Record::OverrideSet { identity, words } => {
                let o = Override::parse(&words, now).map_err(|e| bad("override", e))?;
                // An override that lapsed while the server was down is gone.
                if o.is_live(now) {
                    t.overrides.insert(identity, Arc::new(o));
                } else {
                    t.overrides.remove(&identity);
                }
            }
            Record::OverrideDel { identity } => {
                t.overrides.remove(&identity);
            }
            Record::Access { deny, add, entry } => {
                let e = Entry::parse(&entry);
                let list = t.list_mut(deny);
                if add {
                    list.add(e);
                } else {
                    list.remove(&e);
                }
            }
            Record::Suspend { identity, words } => {
                let s = Suspension::parse(&words, now).map_err(|e| bad("suspension", e))?;
                // A suspension that lapsed while the server was down is gone.
                if s.is_live(now) {
                    t.set_suspension(identity, Arc::new(s));
                } else {
                    t.remove_suspension(&identity, &s.policy);
                }
            }
            Record::Unsuspend { identity, policy } => {
                t.remove_suspension(&identity, &String::from_utf8_lossy(&policy));
            }
            other => {
                return Err(PersistError::Config(format!(
                    "not a policy record: {other:?}"
                )))
            }
        }
        Ok(())
    }

    fn snapshot(&self, now: Nanos) -> Vec<Record> {
        let t = self.read();
        let words = |w: Vec<String>| w.into_iter().map(Bytes::from).collect::<Vec<_>>();
        let mut out: Vec<Record> = t
            .policies
            .values()
            .map(|p| Record::PolicySet {
                name: Bytes::from(p.name.clone()),
                words: words(p.body.words()),
            })
            .collect();
        out.extend(
            t.overrides
                .iter()
                .filter(|(_, o)| o.is_live(now))
                .map(|(id, o)| Record::OverrideSet {
                    identity: id.clone(),
                    words: words(o.words()),
                }),
        );
        for (identity, list) in &t.suspensions {
            out.extend(
                list.iter()
                    .filter(|s| s.is_live(now))
                    .map(|s| Record::Suspend {
                        identity: identity.clone(),
                        words: s.words(),
                    }),
            );
        }
        for (deny, list) in [(false, &t.allow), (true, &t.deny)] {
            out.extend(list.entries().map(|e| Record::Access {
                deny,
                add: true,
                entry: e.to_bytes(),
            }));
        }
        out
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
    fn snapshot_records_recreate_the_catalog() {
        let a = Registry::default();
        let recs = [
            Record::PolicySet {
                name: Bytes::from_static(b"free"),
                words: words("RATE 100/1m SCOPE \"POST /x\" QUOTA 5/day"),
            },
            Record::PolicySet {
                name: Bytes::from_static(b"gone"),
                words: words("RATE 1/1s"),
            },
            Record::PolicyDel {
                name: Bytes::from_static(b"gone"),
            },
            Record::OverrideSet {
                identity: Bytes::from_static(b"acme"),
                words: words("REASON vip EXPIRE 1h RATE 900/1m"),
            },
            Record::OverrideSet {
                identity: Bytes::from_static(b"old"),
                words: words("POLICY free EXPIREAT 1"),
            },
            Record::Access {
                deny: true,
                add: true,
                entry: Bytes::from_static(b"10.0.0.0/8"),
            },
            Record::Access {
                deny: false,
                add: true,
                entry: Bytes::from_static(b"svc"),
            },
            Record::Access {
                deny: false,
                add: true,
                entry: Bytes::from_static(b"tmp"),
            },
            Record::Access {
                deny: false,
                add: false,
                entry: Bytes::from_static(b"tmp"),
            },
        ];
        let now = Nanos(5 * Nanos::PER_SEC);
        for r in recs {
            a.apply(r, now).unwrap();
        }
        let snap = a.snapshot(now);
        assert_eq!(snap.len(), 4, "{snap:?}");
        let b = Registry::default();
        for r in snap.clone() {
            b.apply(r, now).unwrap();
        }
        assert_eq!(b.snapshot(now), snap);
        assert!(a
            .apply(
                Record::PolicySet {
                    name: Bytes::from_static(b"x"),
                    words: words("RATE 1/1q")
                },
                now
            )
            .is_err());
    }
}
