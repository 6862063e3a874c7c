//! Breaker rules (issue 17): a policy rule that refuses a check while a circuit breaker
//! (`BREAKER.*`) is open, decided in the same atomic check as the plan's other rules.
//!
//! ```text
//! BREAKER key [THRESHOLD n | RATIO percent [MINCALLS n]] [WINDOW d] [COOLDOWN d] [PROBES n]
//! ```
//! The options and defaults are `BREAKER.ALLOW`'s (`THRESHOLD 5`, `WINDOW 1m`, `COOLDOWN 30s`,
//! `PROBES 1`, `MINCALLS 10`), and the rule reads and writes the breaker at `key` itself (not a
//! per-identity key): the application reports outcomes with `BREAKER.REPORT key` and the same
//! parameters, and every check of the plan asks the breaker as `BREAKER.ALLOW` would: closed
//! admits, open refuses until the cooldown ends, half-open admits the round's probes (a probe
//! is taken only when the whole check is admitted and charged). Pure.

use bytes::Bytes;

use crate::clock::Nanos;
use crate::limiter::breaker::{self, BreakerParams, Phase, TripRule};
use crate::limiter::units;
use crate::policy::decide::{RuleState, StateWrite};
use crate::policy::model::{Limit, PolicyError, Rule};

/// `THRESHOLD` when neither `THRESHOLD` nor `RATIO` is given (as `BREAKER.*`).
pub const DEFAULT_THRESHOLD: u64 = 5;
/// `MINCALLS` with `RATIO` (as `BREAKER.*`).
pub const DEFAULT_MIN_CALLS: u64 = 10;
/// `WINDOW` (as `BREAKER.*`).
pub const DEFAULT_WINDOW: Nanos = Nanos(60 * Nanos::PER_SEC);
/// `COOLDOWN` (as `BREAKER.*`).
pub const DEFAULT_COOLDOWN: Nanos = Nanos(30 * Nanos::PER_SEC);
/// `PROBES` (as `BREAKER.*`).
pub const DEFAULT_PROBES: u64 = 1;
/// Longest breaker key.
pub const MAX_KEY_LEN: usize = 512;

/// A BREAKER rule's breaker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerRule {
    /// The breaker's key, as `BREAKER.*` commands name it.
    pub key: Bytes,
    /// The trip rule.
    pub trip: TripRule,
    /// The counting window.
    pub window: Nanos,
    /// How long it stays open.
    pub cooldown: Nanos,
    /// Probes of a half-open round.
    pub probes: u64,
    /// The checked parameters.
    pub params: BreakerParams,
}

/// The option values a BREAKER rule was written with (each at most once).
#[derive(Debug, Default)]
pub struct BreakerOptions<'a> {
    /// `THRESHOLD`.
    pub threshold: Option<&'a Bytes>,
    /// `RATIO`.
    pub ratio: Option<&'a Bytes>,
    /// `MINCALLS`.
    pub min_calls: Option<&'a Bytes>,
    /// `WINDOW`.
    pub window: Option<&'a Bytes>,
    /// `COOLDOWN`.
    pub cooldown: Option<&'a Bytes>,
    /// `PROBES`.
    pub probes: Option<&'a Bytes>,
}

/// The options a BREAKER rule accepts besides the common ones.
pub const OPTIONS: [&str; 6] = [
    "THRESHOLD",
    "RATIO",
    "MINCALLS",
    "WINDOW",
    "COOLDOWN",
    "PROBES",
];

impl<'a> BreakerOptions<'a> {
    /// The slot of option `key` (one of [`OPTIONS`], uppercase).
    pub fn slot(&mut self, key: &[u8]) -> Option<&mut Option<&'a Bytes>> {
        Some(match key {
            b"THRESHOLD" => &mut self.threshold,
            b"RATIO" => &mut self.ratio,
            b"MINCALLS" => &mut self.min_calls,
            b"WINDOW" => &mut self.window,
            b"COOLDOWN" => &mut self.cooldown,
            b"PROBES" => &mut self.probes,
            _ => return None,
        })
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn count(what: &str, b: &[u8]) -> Result<u64, PolicyError> {
    units::parse_count(&text(b))
        .map_err(|e| PolicyError(format!("invalid {what} '{}': {e}", text(b))))
}

fn duration(what: &str, b: &[u8]) -> Result<Nanos, PolicyError> {
    units::parse_duration(&text(b))
        .map_err(|e| PolicyError(format!("invalid {what} '{}': {e}", text(b))))
}

impl BreakerRule {
    /// Builds the rule for breaker `key` from its options.
    pub fn new(key: &Bytes, o: &BreakerOptions<'_>) -> Result<BreakerRule, PolicyError> {
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            return Err(PolicyError(format!(
                "a breaker key is 1 to {MAX_KEY_LEN} bytes"
            )));
        }
        let threshold = o.threshold.map(|b| count("THRESHOLD", b)).transpose()?;
        let ratio = o.ratio.map(|b| count("RATIO", b)).transpose()?;
        let min_calls = o.min_calls.map(|b| count("MINCALLS", b)).transpose()?;
        let trip = match (threshold, ratio, min_calls) {
            (Some(_), Some(_), _) => {
                return Err(PolicyError("THRESHOLD and RATIO exclude each other".into()))
            }
            (_, None, Some(_)) => return Err(PolicyError("MINCALLS needs RATIO".into())),
            (n, None, None) => TripRule::Failures(n.unwrap_or(DEFAULT_THRESHOLD)),
            (None, Some(percent), m) => TripRule::Ratio {
                percent,
                min_calls: m.unwrap_or(DEFAULT_MIN_CALLS),
            },
        };
        let window = o
            .window
            .map(|b| duration("WINDOW", b))
            .transpose()?
            .unwrap_or(DEFAULT_WINDOW);
        let cooldown = o
            .cooldown
            .map(|b| duration("COOLDOWN", b))
            .transpose()?
            .unwrap_or(DEFAULT_COOLDOWN);
        let probes = o
            .probes
            .map(|b| count("PROBES", b))
            .transpose()?
            .unwrap_or(DEFAULT_PROBES);
        let params = BreakerParams::new(trip, window, cooldown, probes)
            .map_err(|e| PolicyError(e.to_string()))?;
        Ok(BreakerRule {
            key: key.clone(),
            trip,
            window,
            cooldown,
            probes,
            params,
        })
    }

    /// The rule name derived from the key: `breaker-<key>` when that is a valid rule name.
    pub fn derived_name(&self) -> Option<String> {
        let name = format!("breaker-{}", text(&self.key));
        let ok = name.len() <= crate::policy::model::MAX_NAME_LEN
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        ok.then_some(name)
    }

    /// Appends the canonical words (every parameter explicit).
    pub fn write_words(&self, w: &mut Vec<String>, fmt_duration: fn(Nanos) -> String) {
        w.extend(["BREAKER".to_owned(), text(&self.key)]);
        match self.trip {
            TripRule::Failures(n) => w.extend(["THRESHOLD".to_owned(), n.to_string()]),
            TripRule::Ratio { percent, min_calls } => w.extend([
                "RATIO".to_owned(),
                percent.to_string(),
                "MINCALLS".to_owned(),
                min_calls.to_string(),
            ]),
        }
        w.extend([
            "WINDOW".to_owned(),
            fmt_duration(self.window),
            "COOLDOWN".to_owned(),
            fmt_duration(self.cooldown),
            "PROBES".to_owned(),
            self.probes.to_string(),
        ]);
    }
}

/// The phase change a check's charged `write` makes to a BREAKER rule's breaker, as
/// (key, from, to): the check publishes it as `BREAKER.ALLOW` does (a probe taken after the
/// cooldown moves an open breaker to half-open). `None` for other rules and no change.
pub fn phase_change(
    rule: &Rule,
    before: Option<&RuleState>,
    write: &StateWrite,
) -> Option<(Bytes, Phase, Phase)> {
    let Limit::Breaker(b) = &rule.limit else {
        return None;
    };
    let StateWrite::Put(RuleState::Breaker(after), _) = write else {
        return None;
    };
    let from = match before {
        Some(RuleState::Breaker(s)) => breaker::phase_of(s),
        _ => Phase::Closed,
    };
    let to = breaker::phase_of(after);
    (from != to).then(|| (b.key.clone(), from, to))
}
