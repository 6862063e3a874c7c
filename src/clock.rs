//! Time source for the whole server.
//!
//! Owns the [`Clock`] trait, the wall clock used in production ([`SystemClock`]) and the
//! hand-driven clock used in tests ([`ManualClock`]). Time is [`Nanos`]: nanoseconds since the
//! UNIX epoch, with saturating arithmetic so that a clock stepping backwards can never underflow.
//! Depends on nothing else in the crate.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Nanoseconds since the UNIX epoch (or a span of nanoseconds). All arithmetic saturates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Nanos(pub u64);

impl Nanos {
    /// The zero instant (the epoch) or an empty span.
    pub const ZERO: Nanos = Nanos(0);
    /// The largest representable instant; used as "never".
    pub const MAX: Nanos = Nanos(u64::MAX);
    /// Nanoseconds in one millisecond.
    pub const PER_MS: u64 = 1_000_000;
    /// Nanoseconds in one second.
    pub const PER_SEC: u64 = 1_000_000_000;

    /// A span of `ms` milliseconds (saturating).
    pub const fn from_millis(ms: u64) -> Nanos {
        Nanos(ms.saturating_mul(Self::PER_MS))
    }

    /// A key's expiry time given in Unix milliseconds, as the keyspace stores it. Redis accepts
    /// expiries up to `i64::MAX` ms, far beyond what u64 nanoseconds hold (year 2554), so times
    /// from 2^63 ns (year 2262) on are kept as `2^63 + ms`: still ordered, still in the future
    /// for every comparison with the clock, and read back exactly by [`Nanos::expiry_millis`].
    pub const fn expiry_from_millis(ms: u64) -> Nanos {
        const FAR: u64 = 1 << 63;
        match ms.checked_mul(Self::PER_MS) {
            Some(ns) if ns < FAR => Nanos(ns),
            _ => Nanos(FAR + if ms < FAR { ms } else { FAR - 1 }),
        }
    }

    /// The Unix milliseconds of a key expiry stored by [`Nanos::expiry_from_millis`].
    pub const fn expiry_millis(self) -> u64 {
        const FAR: u64 = 1 << 63;
        if self.0 >= FAR {
            self.0 - FAR
        } else {
            self.as_millis()
        }
    }

    /// A span of `s` seconds (saturating).
    pub const fn from_secs(s: u64) -> Nanos {
        Nanos(s.saturating_mul(Self::PER_SEC))
    }

    /// Raw nanoseconds.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Whole milliseconds, rounded down.
    pub const fn as_millis(self) -> u64 {
        self.0 / Self::PER_MS
    }

    /// Whole milliseconds, rounded up.
    pub const fn as_millis_ceil(self) -> u64 {
        self.0.div_ceil(Self::PER_MS)
    }

    /// Whole seconds, rounded down.
    pub const fn as_secs(self) -> u64 {
        self.0 / Self::PER_SEC
    }

    /// `self + rhs`, saturating at [`Nanos::MAX`].
    pub const fn saturating_add(self, rhs: Nanos) -> Nanos {
        Nanos(self.0.saturating_add(rhs.0))
    }

    /// `self - rhs`, saturating at zero.
    pub const fn saturating_sub(self, rhs: Nanos) -> Nanos {
        Nanos(self.0.saturating_sub(rhs.0))
    }
}

impl From<Duration> for Nanos {
    fn from(d: Duration) -> Nanos {
        Nanos(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }
}

impl From<Nanos> for Duration {
    fn from(n: Nanos) -> Duration {
        Duration::from_nanos(n.0)
    }
}

/// A source of the current time. The server holds one `Arc<dyn Clock>`; handlers read it once
/// per command and pass `now` down.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> Nanos;
}

/// The operating system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Nanos {
        // A wall clock set before 1970 reads as the epoch rather than panicking.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(Nanos::from)
            .unwrap_or(Nanos::ZERO)
    }
}

/// A clock that only moves when told to. Shared between a test and the server it drives.
#[derive(Debug, Default)]
pub struct ManualClock {
    now: AtomicU64,
}

impl ManualClock {
    /// A clock that reads `start`.
    pub fn new(start: Nanos) -> ManualClock {
        ManualClock {
            now: AtomicU64::new(start.0),
        }
    }

    /// Moves the clock forward by `by` (saturating).
    pub fn advance(&self, by: Duration) {
        let by = Nanos::from(by).0;
        // fetch_update never fails with a closure that always returns Some.
        let _ = self
            .now
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                Some(t.saturating_add(by))
            });
    }

    /// Sets the clock to `to`; may move it backwards, which the engine must tolerate.
    pub fn set(&self, to: Nanos) {
        self.now.store(to.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Nanos {
        Nanos(self.now.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn far_future_expiries_round_trip_and_stay_ordered() {
        for ms in [
            0u64,
            1_767_225_600_000,
            9_223_372_036_853,
            9_223_372_036_855,
            99_999_999_999_000,
        ] {
            assert_eq!(Nanos::expiry_from_millis(ms).expiry_millis(), ms);
        }
        let max = i64::MAX as u64;
        assert_eq!(Nanos::expiry_from_millis(max).expiry_millis(), max);
        assert!(
            Nanos::expiry_from_millis(9_223_372_036_854)
                < Nanos::expiry_from_millis(9_223_372_036_855)
        );
        assert!(Nanos::expiry_from_millis(99_999_999_999_000) > Nanos::from_secs(1_767_225_600));
    }

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(Nanos(5).saturating_sub(Nanos(9)), Nanos::ZERO);
        assert_eq!(Nanos::MAX.saturating_add(Nanos(1)), Nanos::MAX);
        assert_eq!(Nanos::from_secs(u64::MAX), Nanos::MAX);
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(Nanos::from_secs(10));
        assert_eq!(c.now(), Nanos::from_secs(10));
        c.advance(Duration::from_millis(1500));
        assert_eq!(c.now(), Nanos(11_500_000_000));
        c.set(Nanos::from_secs(1));
        assert_eq!(c.now(), Nanos::from_secs(1));
    }

    #[test]
    fn millisecond_rounding() {
        assert_eq!(Nanos(1_000_001).as_millis(), 1);
        assert_eq!(Nanos(1_000_001).as_millis_ceil(), 2);
        assert_eq!(Nanos(2_000_000).as_millis_ceil(), 2);
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now() > Nanos::from_secs(1_577_836_800));
    }
}
