//! The embedding API for policies: set a plan of rules, decide requests against it, reserve
//! and settle. Each method is one call into the engine on database 0 at the engine clock's
//! `now`, running the same [`Call`](super::Call) steps the `POLICY.*` / `LIMIT.*` commands run
//! (without the ACL check a server session adds between planning and executing).
//!
//! ```
//! use limitkv::engine::{CheckRequest, Engine};
//!
//! let engine = Engine::in_memory();
//! // A plan of two rules: 3 requests a minute and 1000 a day.
//! engine.policy_set("free", "RATE 3/1m QUOTA 1000/day").unwrap();
//! for _ in 0..3 {
//!     let ok = engine.check(&CheckRequest::new("free", "user:1")).unwrap();
//!     assert!(ok.allowed);
//! }
//! let denied = engine.check(&CheckRequest::new("free", "user:1")).unwrap();
//! assert!(!denied.allowed);
//! assert_eq!(denied.denied_by.as_deref(), Some("rate-1m"));
//! assert_eq!(denied.rules.len(), 2);
//! // The daily quota was charged by the three admitted requests only.
//! assert_eq!(denied.rules[1].decision.remaining, 997);
//! ```

use std::sync::Arc;

use bytes::Bytes;

use crate::policy::model::{split_words, Policy};

use super::check::{CheckKind, CheckOutcome, CheckRequest};
use super::settle::{Actual, Settled};
use super::{Engine, Error};
use crate::policy::reserve::ReservationId;

impl Engine {
    /// `LIMIT.CHECK`: decides `request` against every applicable rule of its policy at once;
    /// admitted, every rule is charged (unless a dry run), else nothing is. Errors: an unknown
    /// policy.
    pub fn check(&self, request: &CheckRequest) -> Result<CheckOutcome, Error> {
        self.run_check(CheckKind::Check, request)
    }

    /// `LIMIT.STATUS`: what every rule has left now, and whether the same check would pass.
    /// Changes nothing.
    pub fn status(&self, request: &CheckRequest) -> Result<CheckOutcome, Error> {
        self.run_check(CheckKind::Status, request)
    }

    /// `LIMIT.RESERVE`: a check of an estimate that also stores a reservation of what it
    /// charged ([`CheckOutcome::reservation`]), to [`Engine::settle`] or [`Engine::cancel`]
    /// later. An unsettled reservation lapses after `request.ttl` and keeps its estimate.
    pub fn reserve(&self, request: &CheckRequest) -> Result<CheckOutcome, Error> {
        self.run_check(CheckKind::Reserve, request)
    }

    fn run_check(&self, kind: CheckKind, request: &CheckRequest) -> Result<CheckOutcome, Error> {
        self.call(0, |c| {
            let plan = c.plan_check(kind, request.clone())?;
            Ok(c.execute_check(plan))
        })
    }

    /// `LIMIT.SETTLE`: records reservation `id`'s actual amounts (an omitted one is taken as
    /// estimated), refunding or charging each rule the difference, even past a cap; releases
    /// its lease and deletes it. Errors: an unknown (settled, cancelled or expired)
    /// reservation.
    pub fn settle(&self, id: &ReservationId, actual: Actual) -> Result<Settled, Error> {
        self.call(0, |c| {
            let plan = c.plan_settle(id, Some(actual))?;
            c.execute_settle(plan)
        })
    }

    /// `LIMIT.CANCEL`: refunds everything reservation `id` charged and releases its lease.
    /// Errors: an unknown reservation.
    pub fn cancel(&self, id: &ReservationId) -> Result<Settled, Error> {
        self.call(0, |c| {
            let plan = c.plan_settle(id, None)?;
            c.execute_settle(plan)
        })
    }

    /// `POLICY.SET name definition...`: parses `definition` (the rule words, quoted as in a
    /// configuration `policy` line) and sets the policy. A bad rule refuses the whole
    /// definition and keeps the old policy.
    pub fn policy_set(&self, name: &str, definition: &str) -> Result<(), Error> {
        let words: Vec<Bytes> = split_words(definition)?
            .into_iter()
            .map(Bytes::from)
            .collect();
        let p = Policy::parse(name.as_bytes(), &words)?;
        self.policy_put(p)
    }

    /// Sets an already parsed policy (see [`Policy::parse`]).
    pub fn policy_put(&self, policy: Policy) -> Result<(), Error> {
        self.call(0, |c| {
            c.policy_set(policy);
            Ok(())
        })
    }

    /// `POLICY.DEL name`: true if the policy existed. Its counted usage stays in the keyspace
    /// until it expires.
    pub fn policy_del(&self, name: &str) -> Result<bool, Error> {
        self.call(0, |c| {
            Ok(c.policy_del(&[Bytes::copy_from_slice(name.as_bytes())]) == 1)
        })
    }

    /// `POLICY.GET name`: the policy, if set (its canonical definition is
    /// `policy.body.words()`).
    pub fn policy_get(&self, name: &str) -> Option<Arc<Policy>> {
        self.policies.read().policies.get(name).cloned()
    }
}
