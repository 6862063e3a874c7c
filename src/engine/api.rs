//! The embedding API: one typed method per limiter operation, each a single call into the
//! engine on database 0 at the engine clock's `now`. Every method runs the same
//! [`Call`] method the RESP command runs, so both surfaces give the same answers.
//!
//! With `appendonly yes` and `appendfsync always`, a method that changed anything returns
//! only once its record is on disk (as the server's reply would be sent).

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Nanos;
use crate::limiter::breaker::{AllowOutcome, BreakerParams, BreakerStatus};
use crate::limiter::cost::{Amount, CostOutcome, CostParams};
use crate::limiter::decision::Decision;
use crate::limiter::gcra::{GcraDecision, GcraParams};
use crate::limiter::lease::{LeaseId, LeaseParams};
use crate::limiter::quota::{QuotaOutcome, QuotaParams};
use crate::limiter::rate::RateParams;
use crate::limiter::window::WindowParams;
use crate::metrics::LocalStats;
use crate::persist::{FsyncPolicy, PersistError, Writer};

use super::families::{Acquired, WindowOutcome};
use super::{Call, Engine, Error, Take};

/// How long a typed call waits for its record to be durable under `appendfsync always`.
const DURABLE_WAIT: Duration = Duration::from_secs(30);

impl Engine {
    /// Runs `f` as one call on database `db` at the clock's `now`; under `appendfsync always`,
    /// waits until what it journaled is on disk. The building block of the typed methods, for
    /// an embedder that needs several operations at one instant.
    ///
    /// A failed fsync is reported as an error only where `f` itself succeeded: the change is
    /// made and stays in memory, as in the server, which refuses further writes until the
    /// disk recovers.
    pub fn call<R>(
        &self,
        db: usize,
        f: impl FnOnce(&mut Call<'_, '_>) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let mut stats = LocalStats::default();
        let mut seq = None;
        let mut call = Call::new(self, db, self.clock.now(), &mut stats, &mut seq);
        let out = f(&mut call)?;
        if let (Some(seq), Some(w)) = (seq, self.durable_writer()) {
            w.wait_blocking(seq, DURABLE_WAIT)
                .map_err(|e: PersistError| Error::Persist(e.to_string()))?;
        }
        Ok(out)
    }

    /// The AOF writer whose records a reply must wait for: `Some` only with `appendonly yes`
    /// and `appendfsync always` (with `everysec`/`no` nothing waits).
    pub fn durable_writer(&self) -> Option<Arc<Writer>> {
        let always = self.config.read().appendfsync == FsyncPolicy::Always;
        self.aof.get().filter(|_| always).cloned()
    }

    /// The engine clock's time.
    pub fn now(&self) -> Nanos {
        self.clock.now()
    }

    /// GCRA, redis-cell's `CL.THROTTLE` / `GCRA`: takes `quantity` (0 peeks).
    pub fn throttle(
        &self,
        key: &[u8],
        params: &GcraParams,
        quantity: u64,
    ) -> Result<GcraDecision, Error> {
        self.call(0, |c| c.throttle(key, params, quantity))
    }

    /// `RATE.TAKE` (`Take::Charge`) / `RATE.PEEK` (`Take::Peek`).
    pub fn rate(
        &self,
        key: &[u8],
        params: &RateParams,
        cost: u64,
        take: Take,
    ) -> Result<Decision, Error> {
        self.call(0, |c| c.rate(key, params, cost, take))
    }

    /// `WINDOW.TAKE` / `WINDOW.PEEK`.
    pub fn window(
        &self,
        key: &[u8],
        params: &WindowParams,
        cost: u64,
        take: Take,
    ) -> Result<WindowOutcome, Error> {
        self.call(0, |c| c.window(key, params, cost, take))
    }

    /// `QUOTA.TAKE` / `QUOTA.PEEK`.
    pub fn quota(
        &self,
        key: &[u8],
        params: &QuotaParams,
        cost: u64,
        take: Take,
    ) -> Result<QuotaOutcome, Error> {
        self.call(0, |c| c.quota(key, params, cost, take))
    }

    /// `COST.INCRBY` / `COST.PEEK`; `force` records a charge past the cap.
    pub fn cost(
        &self,
        key: &[u8],
        params: &CostParams,
        amount: Amount,
        force: bool,
        take: Take,
    ) -> Result<CostOutcome, Error> {
        self.call(0, |c| c.cost(key, params, amount, force, take))
    }

    /// `LEASE.ACQUIRE`.
    pub fn lease_acquire(&self, key: &[u8], params: &LeaseParams) -> Result<Acquired, Error> {
        self.call(0, |c| c.lease_acquire(key, params))
    }

    /// `LEASE.PEEK` with a TTL: the decision an acquire would get, and the live leases.
    pub fn lease_peek(&self, key: &[u8], params: &LeaseParams) -> Result<(Decision, u64), Error> {
        self.call(0, |c| c.lease_peek(key, params, true))
    }

    /// `LEASE.RELEASE`: true if the lease was live.
    pub fn lease_release(&self, key: &[u8], id: LeaseId) -> Result<bool, Error> {
        self.call(0, |c| c.lease_release(key, id))
    }

    /// `LEASE.RENEW`: true if the lease was live and now ends `ttl` from now (or later).
    pub fn lease_renew(&self, key: &[u8], id: LeaseId, ttl: Nanos) -> Result<bool, Error> {
        self.call(0, |c| c.lease_renew(key, id, ttl))
    }

    /// `LEASE.COUNT`.
    pub fn lease_count(&self, key: &[u8]) -> Result<u64, Error> {
        self.call(0, |c| c.lease_count(key))
    }

    /// `BREAKER.ALLOW` / `BREAKER.PEEK`.
    pub fn breaker_allow(
        &self,
        key: &[u8],
        params: &BreakerParams,
        take: Take,
    ) -> Result<AllowOutcome, Error> {
        self.call(0, |c| c.breaker_allow(key, params, take))
    }

    /// `BREAKER.REPORT`.
    pub fn breaker_report(
        &self,
        key: &[u8],
        params: &BreakerParams,
        success: bool,
    ) -> Result<BreakerStatus, Error> {
        self.call(0, |c| c.breaker_report(key, params, success))
    }

    /// `BREAKER.STATE`.
    pub fn breaker_state(
        &self,
        key: &[u8],
        params: &BreakerParams,
    ) -> Result<BreakerStatus, Error> {
        self.call(0, |c| c.breaker_state(key, params))
    }

    /// `BREAKER.TRIP`.
    pub fn breaker_trip(&self, key: &[u8], params: &BreakerParams) -> Result<BreakerStatus, Error> {
        self.call(0, |c| c.breaker_trip(key, params))
    }

    /// `BREAKER.RESET`: true if the key held a breaker.
    pub fn breaker_reset(&self, key: &[u8]) -> Result<bool, Error> {
        self.call(0, |c| c.breaker_reset(key))
    }
}
