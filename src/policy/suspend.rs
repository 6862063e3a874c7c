//! Suspensions (issue 17): an identity refused every request of one policy (or of every
//! policy, `*`) with a reason, until lifted (`LIMIT.UNSUSPEND`) or until it expires. Distinct
//! from the deny list: per identity and policy, with a reason and an expiry, and decided
//! before the allow list (a suspended customer stays suspended even from an allow-listed
//! address). Pure: the grammar and canonical words; the registry holds them.
//!
//! ```text
//! LIMIT.SUSPEND policy|* identity [REASON text] [EXPIRE duration | EXPIREAT unix-ms]
//! ```

use bytes::Bytes;

use crate::clock::Nanos;
use crate::limiter::units;
use crate::policy::model::{check_name, PolicyError};
use crate::policy::notice::check_message;

/// The policy word of a suspension from every policy.
pub const EVERY_POLICY: &str = "*";

/// One suspension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suspension {
    /// The policy (`*`: every policy).
    pub policy: String,
    /// Why (shown in the refusal's `reason`).
    pub reason: Option<String>,
    /// When it was set (absolute).
    pub since: Nanos,
    /// When it lapses (absolute; `None`: never).
    pub expires_at: Option<Nanos>,
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl Suspension {
    /// Parses `policy|* [REASON text] [EXPIRE duration] [EXPIREAT ms] [SINCE ms]` (the words
    /// after the identity; `SINCE` and `EXPIREAT` are what the AOF records). `EXPIRE` is
    /// relative to `now`; without `SINCE` the suspension starts at `now`.
    pub fn parse(words: &[Bytes], now: Nanos) -> Result<Suspension, PolicyError> {
        let (policy, rest) = words
            .split_first()
            .ok_or_else(|| PolicyError("a suspension needs a policy or *".into()))?;
        let policy = if policy.as_ref() == EVERY_POLICY.as_bytes() {
            EVERY_POLICY.to_owned()
        } else {
            check_name("policy name", policy)?
        };
        let mut s = Suspension {
            policy,
            reason: None,
            since: now,
            expires_at: None,
        };
        let mut seen = [false; 3];
        let mut it = rest.iter();
        while let Some(k) = it.next() {
            let key = text(k).to_ascii_uppercase();
            let v = it
                .next()
                .ok_or_else(|| PolicyError(format!("{key} needs a value")))?;
            let ms = |v: &[u8]| {
                units::parse_count(&text(v))
                    .map(Nanos::from_millis)
                    .map_err(|e| PolicyError(format!("invalid {key} '{}': {e}", text(v))))
            };
            let slot = match key.as_str() {
                "REASON" => {
                    s.reason = Some(check_message(v).map_err(|_| {
                        PolicyError(
                            "invalid REASON: use 1 to 1024 bytes of text without control characters"
                                .into(),
                        )
                    })?);
                    0
                }
                "EXPIRE" => {
                    let d = units::parse_duration(&text(v))
                        .map_err(|e| PolicyError(format!("invalid EXPIRE '{}': {e}", text(v))))?;
                    s.expires_at = Some(now.saturating_add(d));
                    1
                }
                "EXPIREAT" => {
                    s.expires_at = Some(ms(v)?);
                    1
                }
                "SINCE" => {
                    s.since = ms(v)?;
                    2
                }
                _ => return Err(PolicyError("syntax error".into())),
            };
            if std::mem::replace(&mut seen[slot], true) {
                return Err(PolicyError(format!("{key} given twice")));
            }
        }
        Ok(s)
    }

    /// Whether it is in force at `now`.
    pub fn is_live(&self, now: Nanos) -> bool {
        self.expires_at.is_none_or(|at| now < at)
    }

    /// Whether it applies to checks of `policy`.
    pub fn applies_to(&self, policy: &str) -> bool {
        self.policy == EVERY_POLICY || self.policy == policy
    }

    /// The canonical words (absolute times), as the AOF records them.
    pub fn words(&self) -> Vec<Bytes> {
        let mut w = vec![Bytes::from(self.policy.clone())];
        if let Some(r) = &self.reason {
            w.extend([Bytes::from_static(b"REASON"), Bytes::from(r.clone())]);
        }
        w.extend([
            Bytes::from_static(b"SINCE"),
            Bytes::from(self.since.as_millis().to_string()),
        ]);
        if let Some(at) = self.expires_at {
            w.extend([
                Bytes::from_static(b"EXPIREAT"),
                Bytes::from(at.as_millis().to_string()),
            ]);
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &[&str]) -> Vec<Bytes> {
        s.iter().map(|w| Bytes::from(w.to_string())).collect()
    }

    #[test]
    fn parses_and_round_trips_through_its_words() {
        let now = Nanos::from_millis(1_000_000);
        let s =
            Suspension::parse(&words(&["*", "reason", "chargeback", "EXPIRE", "7d"]), now).unwrap();
        assert_eq!(s.policy, "*");
        assert_eq!(s.reason.as_deref(), Some("chargeback"));
        assert_eq!(
            s.expires_at,
            Some(now.saturating_add(Nanos::from_secs(7 * 86_400)))
        );
        assert!(s.applies_to("free") && s.applies_to("pro"));
        let later = Nanos::from_millis(5_000_000);
        assert_eq!(Suspension::parse(&s.words(), later).unwrap(), s);
        assert!(s.is_live(now));
        assert!(!s.is_live(s.expires_at.unwrap()));
    }

    #[test]
    fn bad_words_are_named() {
        let now = Nanos::ZERO;
        let cases: &[(&[&str], &str)] = &[
            (&[], "a suspension needs a policy or *"),
            (&["free", "REASON"], "REASON needs a value"),
            (&["free", "EXPIRE", "soon"], "invalid EXPIRE 'soon'"),
            (
                &["free", "REASON", "a", "REASON", "b"],
                "REASON given twice",
            ),
            (&["free", "FOREVER", "1"], "syntax error"),
            (&["bad name", "REASON", "x"], "invalid policy name"),
        ];
        for (w, want) in cases {
            let e = Suspension::parse(&words(w), now).unwrap_err();
            assert!(e.0.starts_with(want), "{w:?}: {e}");
        }
    }
}
