//! Carrying limits over when `cluster-enabled` changes. Rule keys carry the identity's hash
//! tag in cluster mode only ([`crate::policy::model::tagged_state_key`]), so that a node
//! without cluster mode keeps the key format its append-only files already hold. At start,
//! after the file is replayed, every rule state stored under the other mode's format is moved
//! to this mode's key (a `Del` and a `Put` in the file, like a `RENAME`), so turning cluster
//! mode on or off never resets a limit.

use bytes::Bytes;

use super::call::Call;
use super::Engine;
use crate::metrics::LocalStats;
use crate::policy::model::retag_state_key;
use crate::store::Value;

impl Engine {
    /// Moves rule states of the other key format to this mode's; returns how many moved.
    pub(super) fn retag_rule_keys(&self) -> usize {
        let now = self.clock.now();
        let mut moved = 0;
        for (db, store) in self.dbs.iter().enumerate() {
            let mut pairs: Vec<(Bytes, Bytes)> = Vec::new();
            for i in 0..store.shard_count() {
                let shard = store.lock_shard(i);
                for (k, e) in shard.iter_live(now) {
                    let rule_state = matches!(
                        e.value,
                        Value::Gcra(_)
                            | Value::GcraRule(_)
                            | Value::Window(_)
                            | Value::Quota(_)
                            | Value::Cost(_)
                            | Value::Lease(_)
                    );
                    if let Some(new) = rule_state
                        .then(|| retag_state_key(k, self.cluster_keys))
                        .flatten()
                    {
                        pairs.push((Bytes::copy_from_slice(k), new));
                    }
                }
            }
            let mut stats = LocalStats::default();
            let mut seq = None;
            let mut call = Call::new(self, db, now, &mut stats, &mut seq);
            for (old, new) in pairs {
                // Before the server serves anyone: the two steps need not be one atomic move.
                let Some(entry) = call.with_shard(&old, |s| s.remove(&old, now)) else {
                    continue;
                };
                call.with_shard(&new, |s| s.insert(&new, entry));
                moved += 1;
            }
        }
        moved
    }
}
