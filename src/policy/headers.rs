//! Ready-made values for the HTTP response fields a checking API server sends: `RateLimit` and
//! `RateLimit-Policy` as defined by draft-ietf-httpapi-ratelimit-headers-10 (the Structured
//! Field syntax the draft uses since -08), and `Retry-After` (RFC 9110, delay-seconds).
//!
//! ```text
//! RateLimit-Policy: "rate-1m";q=100;w=60, "quota-day";q=1000;w=86400
//! RateLimit: "rate-1m";r=42;t=18, "quota-day";r=917;t=40000
//! Retry-After: 18
//! ```
//! Each rule is one list item named by the rule (`scope/rule` for a scope's rule): `q` is the
//! quota per window (a RATE rule's count, not its burst), `w` the window in seconds (a month
//! counts 30 days), `qu` the quota unit when it is not requests (`"concurrent-requests"` for a
//! LEASE rule, `"tokens"` for a TOKENS rule, which the draft's registry does not list and
//! clients ignore); `r` is what remains and `t` the seconds until the rule is fresh again,
//! rounded up. COST rules are left out: their decimal budgets are not integer quotas; so are BREAKER rules,
//! which are no quota. Pure.

use crate::clock::Nanos;
use crate::policy::decide::Verdict;
use crate::policy::model::{Applied, Limit, Measure};

/// The three field values; `None` when there is nothing to send.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Headers {
    /// `RateLimit`.
    pub ratelimit: Option<String>,
    /// `RateLimit-Policy`.
    pub policy: Option<String>,
    /// `Retry-After`, in seconds: set for a refusal that a wait can cure.
    pub retry_after: Option<u64>,
    /// `X-RateLimit-Limit`, `-Remaining`, `-Reset` of the tightest rule in `RateLimit` (the
    /// blocking rule if it is there, else the smallest fraction left): the rule's limit, what
    /// it has left, and the seconds until it is fresh again (delta seconds, as `t`).
    pub legacy: Option<Legacy>,
}

/// The `X-RateLimit-*` values many gateways and SDKs read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Legacy {
    /// `X-RateLimit-Limit`.
    pub limit: u64,
    /// `X-RateLimit-Remaining`.
    pub remaining: u64,
    /// `X-RateLimit-Reset`, seconds from now (rounded up).
    pub reset: u64,
}

/// Appends an sf-string.
fn sf_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            // sf-string is printable ASCII only.
            c if (' '..='~').contains(&c) => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
}

/// The header values for `verdict` over `rules`.
pub fn headers(rules: &[Applied<'_>], verdict: &Verdict) -> Headers {
    let mut rl = String::new();
    let mut pol = String::new();
    let mut tightest: Option<usize> = None;
    for (i, (a, r)) in rules.iter().zip(&verdict.rules).enumerate() {
        if matches!(a.rule.limit, Limit::Cost { .. } | Limit::Breaker(_)) {
            continue;
        }
        let better = match tightest {
            None => true,
            Some(_) if verdict.denied_by == Some(i) => true,
            Some(t) if verdict.denied_by == Some(t) => false,
            Some(t) => {
                let (d, e) = (&r.decision, &verdict.rules[t].decision);
                u128::from(d.remaining) * u128::from(e.limit.max(1))
                    < u128::from(e.remaining) * u128::from(d.limit.max(1))
            }
        };
        if better {
            tightest = Some(i);
        }
        if !rl.is_empty() {
            rl.push_str(", ");
            pol.push_str(", ");
        }
        let name = match a.scope {
            Some(s) => format!("{s}/{}", a.rule.name),
            None => a.rule.name.clone(),
        };
        sf_string(&mut pol, &name);
        pol.push_str(&format!(
            ";q={};w={}",
            a.rule.limit.quota(),
            a.rule.limit.window_secs()
        ));
        match (a.rule.measure, &a.rule.limit) {
            (_, Limit::Lease { .. }) => pol.push_str(";qu=\"concurrent-requests\""),
            (Measure::Tokens, _) => pol.push_str(";qu=\"tokens\""),
            _ => {}
        }
        sf_string(&mut rl, &name);
        rl.push_str(&format!(
            ";r={};t={}",
            r.decision.remaining,
            ceil_secs(r.decision.reset_after)
        ));
    }
    Headers {
        ratelimit: (!rl.is_empty()).then_some(rl),
        policy: (!pol.is_empty()).then_some(pol),
        retry_after: if verdict.allowed {
            None
        } else {
            verdict.retry_after.map(ceil_secs)
        },
        legacy: tightest.map(|i| {
            let d = &verdict.rules[i].decision;
            Legacy {
                limit: d.limit,
                remaining: d.remaining,
                reset: ceil_secs(d.reset_after),
            }
        }),
    }
}

fn ceil_secs(n: Nanos) -> u64 {
    n.0.div_ceil(Nanos::PER_SEC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limiter::lease::LeaseId;
    use crate::policy::decide::{decide, Demand, Mode};
    use crate::policy::model::{split_words, Policy};
    use bytes::Bytes;

    #[test]
    fn fields_follow_the_draft_syntax() {
        let w: Vec<Bytes> = split_words(
            "RATE 100/1m QUOTA 1000/day TOKENS 500/1h COST 1/day LEASE 2 SCOPE \"a\\\"b\" RATE 5/1s",
        )
        .unwrap()
        .into_iter()
        .map(Bytes::from)
        .collect();
        let p = Policy::parse(b"p", &w).unwrap();
        let rules = p.body.applicable(Some("a\"b"));
        let now = Nanos(1_767_225_600 * Nanos::PER_SEC);
        let mode = Mode::Charge {
            lease_id: LeaseId(1),
            lease_ttl: None,
        };
        let states = vec![None; rules.len()];
        let d = Demand {
            tokens: 10,
            cost: crate::limiter::cost::Amount(1),
            priority: Default::default(),
        };
        let v = decide(&rules, &states, &d, now, mode, None);
        let h = headers(&rules, &v);
        assert_eq!(
            h.policy.as_deref(),
            Some(
                "\"rate-1m\";q=100;w=60, \"quota-day\";q=1000;w=86400, \
                 \"tokens-1h\";q=500;w=3600;qu=\"tokens\", \
                 \"lease\";q=2;w=60;qu=\"concurrent-requests\", \"a\\\"b/rate-1s\";q=5;w=1"
            )
        );
        assert_eq!(
            h.ratelimit.as_deref(),
            Some(
                "\"rate-1m\";r=99;t=1, \"quota-day\";r=999;t=86400, \"tokens-1h\";r=490;t=72, \
                 \"lease\";r=1;t=60, \"a\\\"b/rate-1s\";r=4;t=1"
            )
        );
        assert_eq!(h.retry_after, None);
        // The smallest fraction left: the lease rule, 1 of 2.
        assert_eq!(
            h.legacy,
            Some(Legacy {
                limit: 2,
                remaining: 1,
                reset: 60
            })
        );
    }
}
