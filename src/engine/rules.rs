//! Rule states in the keyspace: the keys a policy's rules derive from an identity, and
//! reading and writing their states under a shard lock. Shared by the check and settle flows.

use bytes::Bytes;

use crate::clock::Nanos;
use crate::policy::decide::{RuleState, StateWrite};
use crate::policy::model::{rule_key, Applied, Limit};
use crate::store::{Entry, Shard, Value};

/// The state a rule key holds, if it is a limiter state; anything else reads as fresh (the
/// keys are the policy layer's own).
pub(super) fn read_state(shard: &mut Shard, key: &[u8], now: Nanos) -> Option<RuleState> {
    match &shard.get_live(key, now)?.value {
        v @ (Value::Gcra(_) | Value::GcraRule(_)) => v.as_gcra().map(RuleState::Gcra),
        Value::Window(s) => Some(RuleState::Window(**s)),
        Value::Quota(s) => Some(RuleState::Quota(**s)),
        Value::Cost(s) => Some(RuleState::Cost(**s)),
        Value::Lease(s) => Some(RuleState::Lease(crate::limiter::lease::LeaseState::clone(
            s,
        ))),
        Value::Breaker(s) => Some(RuleState::Breaker(**s)),
        _ => None,
    }
}

pub(super) fn write_state(shard: &mut Shard, key: &[u8], w: StateWrite, now: Nanos) {
    match w {
        StateWrite::Delete => {
            shard.remove(key, now);
        }
        // An expiry already reached means the state is fresh: nothing to keep.
        StateWrite::Put(_, Some(at)) if at <= now => {
            shard.remove(key, now);
        }
        StateWrite::Put(s, at) => {
            let value = match s {
                RuleState::Gcra(s) => Value::gcra(s),
                RuleState::Window(s) => Value::Window(Box::new(s)),
                RuleState::Quota(s) => Value::Quota(Box::new(s)),
                RuleState::Cost(s) => Value::Cost(Box::new(s)),
                RuleState::Lease(s) => Value::Lease(Box::new(s)),
                RuleState::Breaker(s) => Value::Breaker(Box::new(s)),
            };
            shard.insert(key, Entry::with_expiry(value, at));
        }
    }
}

/// The keys of `rules` for `identity`, under policy `policy`: each rule's per-identity
/// [`rule_key`], except a BREAKER rule's, which is the breaker's own key (shared by every
/// identity and by the `BREAKER.*` commands). In cluster mode (`tagged`) a rule key carries the
/// identity's hash tag, so they share its slot; an identity no tag can express keeps the plain
/// keys (`cmd::cluster` refuses such identities before they get here).
pub(super) fn keys_of<'a>(
    tagged: bool,
    policy: &str,
    rules: impl IntoIterator<Item = Applied<'a>>,
    identity: &[u8],
) -> Vec<Bytes> {
    rules
        .into_iter()
        .map(|a| match &a.rule.limit {
            Limit::Breaker(b) => b.key.clone(),
            _ => rule_key(tagged, policy, a.scope, &a.rule.name, identity),
        })
        .collect()
}
