//! What a plan tells the customer and how far it bends (issue 17): the `MESSAGE` and `LINK`
//! a warning or a refusal carries, the once-per-period warning events, and `GRACE` (a soft
//! overage past a rule's limit). Pure: no store, no clock, no I/O.
//!
//! # Terms
//! - **Message / link**: text the application shows ("You have used 80% of your daily
//!   quota") and where to send the customer (an upgrade page). A rule's own `MESSAGE`/`LINK`
//!   win over the policy's.
//! - **Warning period**: a warning event fires once per rule, per identity, per period of the
//!   rule: until a calendar rule (`QUOTA`, calendar `COST`) resets, or for one window of a
//!   rolling rule (`RATE`, `WINDOW`, rolling `COST`; a `LEASE` rule's TTL). The reply lists the
//!   rule in `warnings` on every request past the threshold.
//! - **Grace** `g` (a fraction in (0, 1]): a `QUOTA`, `COST` or `TOKENS` rule admits up to
//!   `limit + floor(limit · g)` units; what is admitted past `limit` is the **overage**.

use crate::clock::Nanos;
use crate::limiter::cost::{Amount, CostParams};
use crate::limiter::decision::Decision;
use crate::limiter::quota::QuotaParams;
use crate::limiter::rate::RateParams;
use crate::limiter::units::Rate;
use crate::limiter::window::WindowParams;
use crate::policy::model::{CostSpec, Fraction, Limit, Measure, PolicyError};

/// Longest `MESSAGE`, in bytes.
pub const MAX_MESSAGE_LEN: usize = 1024;
/// Longest `LINK`, in bytes.
pub const MAX_LINK_LEN: usize = 2048;

/// A valid `MESSAGE`: 1 to 1024 bytes of UTF-8 without control characters.
pub fn check_message(b: &[u8]) -> Result<String, PolicyError> {
    match std::str::from_utf8(b) {
        Ok(s)
            if !s.is_empty() && s.len() <= MAX_MESSAGE_LEN && !s.chars().any(char::is_control) =>
        {
            Ok(s.to_owned())
        }
        _ => Err(PolicyError(format!(
            "invalid MESSAGE: use 1 to {MAX_MESSAGE_LEN} bytes of text without control characters"
        ))),
    }
}

/// A valid `LINK`: an `http://` or `https://` URL of at most 2048 bytes of printable ASCII
/// without blanks or quotes.
pub fn check_link(b: &[u8]) -> Result<String, PolicyError> {
    let lower = b.to_ascii_lowercase();
    let scheme = lower.starts_with(b"https://") || lower.starts_with(b"http://");
    let host = b.iter().skip_while(|&&c| c != b'/').nth(2).is_some();
    let printable = b
        .iter()
        .all(|&c| c.is_ascii_graphic() && c != b'"' && c != b'\'' && c != b'\\');
    if scheme && host && printable && b.len() <= MAX_LINK_LEN {
        // Printable ASCII.
        Ok(String::from_utf8_lossy(b).into_owned())
    } else {
        Err(PolicyError(format!(
            "invalid LINK '{}': use an http:// or https:// URL of at most {MAX_LINK_LEN} characters without blanks or quotes",
            String::from_utf8_lossy(b)
        )))
    }
}

/// Whether a rule may have a grace: `QUOTA`, `COST` and `TOKENS` rules (budgets), not request
/// rates or concurrency.
pub fn grace_applies(measure: Measure, limit: &Limit) -> bool {
    match limit {
        Limit::Quota { .. } | Limit::Cost { .. } => true,
        Limit::Rate { .. } | Limit::Window { .. } => measure == Measure::Tokens,
        Limit::Lease { .. } | Limit::Breaker(_) => false,
    }
}

/// `limit + floor(limit · g)`, saturating.
pub fn graced(limit: u64, g: Fraction) -> u64 {
    let extra = u128::from(limit) * u128::from(g.0) / 1_000_000;
    limit.saturating_add(u64::try_from(extra).unwrap_or(u64::MAX))
}

/// The rule's limiter with its limit raised by the grace `g` (same window, calendar, emission
/// interval and state layout, so the graced transition reads and writes the rule's own
/// state). A TOKENS RATE rule's burst is raised; its rate is not.
pub fn graced_limit(limit: &Limit, g: Fraction) -> Result<Limit, PolicyError> {
    let bad = |e: &dyn std::fmt::Display| PolicyError(format!("GRACE {g}: {e}"));
    Ok(match limit {
        Limit::Rate { rate, params, .. } => {
            let burst = graced(params.burst(), g);
            Limit::Rate {
                rate: *rate,
                burst: Some(burst),
                params: RateParams::new(*rate, Some(burst)).map_err(|e| bad(&e))?,
            }
        }
        Limit::Window { rate, .. } => {
            let r = Rate::new(graced(rate.count(), g), rate.period()).map_err(|e| bad(&e))?;
            Limit::Window {
                rate: r,
                params: WindowParams::from_rate(r),
            }
        }
        Limit::Quota {
            count,
            unit,
            tz,
            anchor,
            carry,
            params,
        } => Limit::Quota {
            count: graced(*count, g),
            unit: *unit,
            tz: tz.clone(),
            anchor: anchor.clone(),
            carry: *carry,
            params: QuotaParams::new(graced(*count, g), params.calendar().clone(), *carry)
                .map_err(|e| bad(&e))?,
        },
        Limit::Cost { cap, per, params } => {
            let micros = i64::try_from(graced(cap.0.unsigned_abs(), g)).unwrap_or(i64::MAX);
            Limit::Cost {
                cap: Amount(micros),
                per: per.clone(),
                params: CostParams::new(Amount(micros), params.per().clone())
                    .map_err(|e| bad(&e))?,
            }
        }
        Limit::Lease { .. } | Limit::Breaker(_) => {
            return Err(PolicyError(
                "GRACE applies to QUOTA, COST and TOKENS rules only".into(),
            ))
        }
    })
}

/// How long a rule's warning marker lives after it fires at `now`: until the calendar period
/// resets (the decision's `reset_after`), else one window of the rule. At least 1 ms.
pub fn warn_period(limit: &Limit, decision: &Decision) -> Nanos {
    let d = match limit {
        Limit::Quota { .. }
        | Limit::Cost {
            per: CostSpec::Calendar { .. },
            ..
        } => decision.reset_after,
        Limit::Rate { rate, .. } | Limit::Window { rate, .. } => rate.period(),
        Limit::Cost {
            per: CostSpec::Rolling(w),
            ..
        } => *w,
        Limit::Lease { ttl, .. } => *ttl,
        Limit::Breaker(b) => b.cooldown,
    };
    d.max(Nanos::from_millis(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limiter::lease::LeaseId;
    use crate::policy::decide::{decide, Demand, Mode, RuleState, StateWrite};
    use crate::policy::model::{split_words, Policy};
    use bytes::Bytes;
    use proptest::prelude::*;

    const T0: Nanos = Nanos(1_767_225_600 * Nanos::PER_SEC);

    fn policy(s: &str) -> Policy {
        let w: Vec<Bytes> = split_words(s)
            .unwrap()
            .into_iter()
            .map(Bytes::from)
            .collect();
        Policy::parse(b"p", &w).unwrap()
    }

    /// What each rule of `p` has left at `now` over `states`.
    fn remaining(p: &Policy, states: &[Option<RuleState>], now: Nanos) -> Vec<u64> {
        let rules = p.body.applicable(None);
        let v = decide(&rules, states, &Demand::default(), now, Mode::Status, None);
        v.rules.iter().map(|r| r.decision.remaining).collect()
    }

    proptest! {
        /// A plan change that raises a rule's limit (same rule name) never leaves an identity
        /// less than the old plan did: the used count carries over, for every family.
        #[test]
        fn raising_a_limit_never_lowers_what_remains(
            family in 0usize..6,
            old in 1u64..60,
            extra in 0u64..5_000,
            steps in proptest::collection::vec((0u64..3_000, 1u64..30), 1..40),
            later in 0u64..90_000,
        ) {
            let new = old + extra;
            let (a, b) = match family {
                0 => (format!("RATE {old}/1m"), format!("RATE {new}/1m")),
                1 => (format!("RATE {old}/1m BURST {old}"), format!("RATE {new}/1m BURST {}", old + extra / 2)),
                2 => (format!("WINDOW {old}/1m"), format!("WINDOW {new}/1m")),
                3 => (format!("QUOTA {old}/day"), format!("QUOTA {new}/day")),
                4 => (format!("TOKENS {}/1m", old * 30), format!("TOKENS {}/1m", new * 30)),
                _ => (format!("COST {old}/day"), format!("COST {new}/day")),
            };
            let (pa, pb) = (policy(&a), policy(&b));
            let rules = pa.body.applicable(None);
            let mut states: Vec<Option<RuleState>> = vec![None];
            let mut now = T0;
            for (i, (dt, units)) in steps.into_iter().enumerate() {
                now = now.saturating_add(Nanos::from_millis(dt));
                let demand = Demand { tokens: units, cost: crate::limiter::cost::Amount(i64::try_from(units).unwrap() * 10_000), priority: Default::default() };
                let mode = Mode::Charge { lease_id: LeaseId(i as u64), lease_ttl: None };
                let v = decide(&rules, &states, &demand, now, mode, None);
                if v.allowed {
                    match &v.rules[0].write {
                        Some(StateWrite::Put(s, _)) => states[0] = Some(s.clone()),
                        Some(StateWrite::Delete) => states[0] = None,
                        None => {}
                    }
                }
            }
            let at = now.saturating_add(Nanos::from_millis(later));
            let before = remaining(&pa, &states, at);
            let after = remaining(&pb, &states, at);
            prop_assert!(after[0] >= before[0], "{a} -> {b}: {before:?} -> {after:?}");
        }
    }

    #[test]
    fn links_and_messages_are_checked() {
        assert!(check_link(b"https://example.com/upgrade?plan=pro").is_ok());
        assert!(check_link(b"HTTP://x.y").is_ok());
        for bad in [
            &b"ftp://x"[..],
            b"https://",
            b"https://a b",
            b"example.com",
            b"https://x\"y",
        ] {
            assert!(check_link(bad).is_err(), "{bad:?}");
        }
        assert!(check_message("You used 80% — upgrade".as_bytes()).is_ok());
        assert!(check_message(b"").is_err());
        assert!(check_message(b"a\nb").is_err());
        assert!(check_message(&[b'x'; MAX_MESSAGE_LEN + 1]).is_err());
    }

    #[test]
    fn grace_rounds_down_and_saturates() {
        let ten = Fraction(100_000);
        assert_eq!(graced(1000, ten), 1100);
        assert_eq!(graced(9, ten), 9, "10% of 9 is 0.9: no whole unit");
        assert_eq!(graced(u64::MAX, ten), u64::MAX);
        assert_eq!(graced(5, Fraction(1_000_000)), 10);
    }
}
