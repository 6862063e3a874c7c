//! The policy model: rules, scopes, policies and overrides, their word grammar (the arguments
//! of `POLICY.SET` / `OVERRIDE.SET` and the `policy` config lines) and their canonical
//! rendering (what `POLICY.GET` shows and what the AOF records).
//!
//! Pure: parsing builds the limiter families' own checked parameters ([`RateParams`],
//! [`WindowParams`], [`QuotaParams`], [`CostParams`], [`LeaseParams`]) with their own parsers,
//! so a rule accepts exactly what the family command accepts. No store, no clock, no I/O.
//!
//! # Grammar
//! ```text
//! body    := [WARN fraction] [MESSAGE text] [LINK url] [GRACE fraction] [DRYRUN]
//!            rule* (SCOPE name [REPLACE] rule*)*
//! rule    := family [option ...]
//! family  := RATE n/duration [BURST n]                       requests, GCRA
//!          | WINDOW n/duration                               requests, sliding window
//!          | QUOTA n/period [TZ zone] [ANCHOR a] [CARRY n]   requests, calendar quota
//!          | TOKENS [RATE|WINDOW|QUOTA] n/(duration|period) ... the same over the TOKENS count
//!          | COST amount/period [TZ zone] [ANCHOR a]         decimal budget per calendar period
//!          | COST amount/duration                            decimal budget per rolling window
//!          | LEASE n [TTL duration] [RESERVE n [FOR high|normal]]
//!                                                            concurrency (default TTL 1m); the
//!                                                            reserve is for that priority and up
//!          | BREAKER key [THRESHOLD n|RATIO p [MINCALLS n]] [WINDOW d] [COOLDOWN d] [PROBES n]
//!                                                            refused while the breaker is open
//! option  := NAME name | ACTION block|slowdown|log | MAXDELAY duration | WARN fraction
//!          | MESSAGE text | LINK url | GRACE fraction         (GRACE: QUOTA, COST, TOKENS)
//! fraction:= 0.8 | 80%                                       in (0, 1]
//! ```
//! `TOKENS n/1m` (a duration) is `TOKENS RATE`, `TOKENS n/day` (a calendar period) is
//! `TOKENS QUOTA`. Keywords are case-insensitive. A rule ends where the next family keyword,
//! `SCOPE`, or (for overrides) an override option begins.
//!
//! # Rule identity
//! A rule's **name** is its identity: the part of its state key that survives edits. It is
//! `NAME` when given, else derived from the family and window (`rate-1m`, `window-10s`,
//! `quota-day`, `tokens-1m`, `tokens-window-1m`, `tokens-day`, `cost-day`, `cost-1h`,
//! `lease`), so `RATE 100/1m` edited to `RATE 200/1m BURST 20` keeps its usage. Names are
//! unique within a section (the defaults, or one scope).

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use bytes::Bytes;

use crate::clock::Nanos;
use crate::limiter::cost::{Amount, CostParams, CostPeriod};
use crate::limiter::lease::{LeaseParams, Priority};
use crate::limiter::quota::{
    parse_anchor, parse_quota, parse_zone, Anchor, Calendar, PeriodUnit, QuotaParams,
};
use crate::limiter::rate::RateParams;
use crate::limiter::units::{self, Rate};
use crate::limiter::window::WindowParams;
use crate::policy::notice;
use crate::policy::upstream::{self, BreakerOptions, BreakerRule};
use crate::policy::webhook::Webhook;

/// Longest policy or rule name.
pub const MAX_NAME_LEN: usize = 64;
/// Longest scope name.
pub const MAX_SCOPE_LEN: usize = 256;
/// Most rules in one policy or override, over all its sections.
pub const MAX_RULES: usize = 64;
/// Most scope sections in one policy or override.
pub const MAX_SCOPES: usize = 256;
/// The TTL of a LEASE rule's leases when `TTL` is not given.
pub const DEFAULT_LEASE_TTL: Nanos = Nanos(60 * Nanos::PER_SEC);
/// One, as a [`Fraction`]'s parts per million.
const PPM: u32 = 1_000_000;

/// Why a definition was refused. `Display` is the reply text after `ERR `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

impl PolicyError {
    /// An error with this text.
    pub fn new(s: impl Into<String>) -> PolicyError {
        PolicyError(s.into())
    }
}

/// What a rule counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// One per request.
    Requests,
    /// The request's `TOKENS n`.
    Tokens,
    /// The request's `COST x` (micro-units).
    Cost,
    /// One concurrent request (a lease).
    Concurrency,
}

impl Measure {
    /// The lowercase name shown in replies and events.
    pub fn name(self) -> &'static str {
        match self {
            Measure::Requests => "requests",
            Measure::Tokens => "tokens",
            Measure::Cost => "cost",
            Measure::Concurrency => "concurrency",
        }
    }
}

/// What happens when a rule would deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The request is refused (the default).
    Block,
    /// The request is admitted after a delay: the reply carries `delay_ms`, and the rule is
    /// charged as of the end of the delay. Blocks when the wait is longer than `MAXDELAY` or
    /// could never end.
    Slowdown,
    /// The request is admitted; the rule is reported and not charged.
    Log,
}

impl Action {
    /// The lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Action::Block => "block",
            Action::Slowdown => "slowdown",
            Action::Log => "log",
        }
    }

    fn parse(w: &[u8]) -> Option<Action> {
        [Action::Block, Action::Slowdown, Action::Log]
            .into_iter()
            .find(|a| w.eq_ignore_ascii_case(a.name().as_bytes()))
    }
}

/// A fraction in `(0, 1]`, in parts per million (warning thresholds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fraction(pub u32);

impl Fraction {
    /// Parses `0.8`, `1`, or `80%` (at most 6 decimal places of the fraction).
    pub fn parse(s: &str) -> Result<Fraction, PolicyError> {
        let bad = || {
            PolicyError::new(format!(
                "invalid fraction '{s}': use a number in (0, 1] such as 0.8, or a percentage such as 80%"
            ))
        };
        let ppm = match s.strip_suffix('%') {
            Some(pct) => {
                let a = Amount::parse(pct).map_err(|_| bad())?;
                // percent micro-units / 100 = fraction micro-units; must be whole.
                if a.0 % 100 != 0 {
                    return Err(bad());
                }
                a.0 / 100
            }
            None => Amount::parse(s).map_err(|_| bad())?.0,
        };
        if ppm <= 0 || ppm > i64::from(PPM) {
            return Err(bad());
        }
        // 0 < ppm <= 10^6.
        Ok(Fraction(ppm as u32))
    }

    /// Whether `used` of `limit` reaches the fraction.
    pub fn reached(self, used: u64, limit: u64) -> bool {
        limit > 0 && u128::from(used) * u128::from(PPM) >= u128::from(self.0) * u128::from(limit)
    }
}

impl std::fmt::Display for Fraction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        Amount(i64::from(self.0)).fmt(f)
    }
}

/// A COST rule's period as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CostSpec {
    /// Per calendar period, with optional zone and anchor text.
    Calendar {
        /// The period.
        unit: PeriodUnit,
        /// `TZ`, as written.
        tz: Option<String>,
        /// `ANCHOR`, as written.
        anchor: Option<String>,
    },
    /// Per rolling window.
    Rolling(Nanos),
}

/// A rule's limiter, with the family's checked parameters and the text it was built from.
#[derive(Debug, Clone)]
pub enum Limit {
    /// GCRA (`RATE`, `TOKENS RATE`).
    Rate {
        /// `n/duration`.
        rate: Rate,
        /// `BURST`, if given.
        burst: Option<u64>,
        /// The checked parameters.
        params: RateParams,
    },
    /// Sliding window (`WINDOW`, `TOKENS WINDOW`).
    Window {
        /// `n/duration`.
        rate: Rate,
        /// The checked parameters.
        params: WindowParams,
    },
    /// Calendar quota (`QUOTA`, `TOKENS QUOTA`).
    Quota {
        /// `n`.
        count: u64,
        /// The period.
        unit: PeriodUnit,
        /// `TZ`, as written.
        tz: Option<String>,
        /// `ANCHOR`, as written.
        anchor: Option<String>,
        /// `CARRY`.
        carry: u64,
        /// The checked parameters.
        params: QuotaParams,
    },
    /// Decimal budget (`COST`).
    Cost {
        /// The cap.
        cap: Amount,
        /// Its period.
        per: CostSpec,
        /// The checked parameters.
        params: CostParams,
    },
    /// Concurrency (`LEASE`).
    Lease {
        /// Most live leases.
        limit: u64,
        /// Lease lifetime.
        ttl: Nanos,
        /// The checked parameters (with the reserve).
        params: LeaseParams,
    },
    /// A circuit breaker (`BREAKER`): refuses while the breaker at its key is open.
    Breaker(BreakerRule),
}

impl Limit {
    /// The family name shown in replies (`rate`, `window`, `quota`, `cost`, `lease`).
    pub fn family(&self) -> &'static str {
        match self {
            Limit::Rate { .. } => "rate",
            Limit::Window { .. } => "window",
            Limit::Quota { .. } => "quota",
            Limit::Cost { .. } => "cost",
            Limit::Lease { .. } => "lease",
            Limit::Breaker(_) => "breaker",
        }
    }

    /// The window in whole seconds, as the `w` of a RateLimit-Policy item: the rate's period,
    /// the quota's nominal period (a month counts 30 days), the lease TTL.
    pub fn window_secs(&self) -> u64 {
        match self {
            Limit::Rate { rate, .. } | Limit::Window { rate, .. } => {
                rate.period().0.div_ceil(Nanos::PER_SEC)
            }
            Limit::Quota { unit, .. } => nominal_secs(*unit),
            Limit::Cost { per, .. } => match per {
                CostSpec::Calendar { unit, .. } => nominal_secs(*unit),
                CostSpec::Rolling(w) => w.0.div_ceil(Nanos::PER_SEC),
            },
            Limit::Lease { ttl, .. } => ttl.0.div_ceil(Nanos::PER_SEC),
            Limit::Breaker(b) => b.cooldown.0.div_ceil(Nanos::PER_SEC),
        }
    }

    /// The quota as a RateLimit-Policy `q`: units per window (the rate's count, not its burst).
    pub fn quota(&self) -> u64 {
        match self {
            Limit::Rate { rate, .. } | Limit::Window { rate, .. } => rate.count(),
            Limit::Quota { count, .. } => *count,
            Limit::Cost { cap, .. } => cap.0.unsigned_abs(),
            Limit::Lease { limit, .. } => *limit,
            Limit::Breaker(b) => b.probes,
        }
    }
}

fn nominal_secs(unit: PeriodUnit) -> u64 {
    match unit {
        PeriodUnit::Minute => 60,
        PeriodUnit::Hour => 3_600,
        PeriodUnit::Day => 86_400,
        PeriodUnit::Week => 7 * 86_400,
        PeriodUnit::Month => 30 * 86_400,
    }
}

/// Outcome counters of one rule (INFO `# Policies`). Shared between a policy's versions when
/// the rule keeps its name, so editing a policy does not reset them.
#[derive(Debug, Default)]
pub struct RuleCounters {
    /// Requests this rule admitted and charged (a pass on a request another rule denied, or
    /// on a dry run, charged nothing and is not counted).
    pub allowed: AtomicU64,
    /// Checks this rule blocked.
    pub denied: AtomicU64,
    /// Charged requests this rule slowed down.
    pub slowed: AtomicU64,
    /// Checks this rule would have denied but did not: a log-only rule, or a dry run.
    pub logged: AtomicU64,
    /// Charged requests that passed this rule's warning threshold.
    pub warned: AtomicU64,
}

/// One rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Identity of the rule within its section (see the module docs).
    pub name: String,
    /// Whether `name` was given with `NAME` (else derived).
    pub named: bool,
    /// What it counts.
    pub measure: Measure,
    /// The limiter.
    pub limit: Limit,
    /// What a denial does.
    pub action: Action,
    /// Longest slowdown before it blocks (`None`: no bound).
    pub max_delay: Option<Nanos>,
    /// Warning threshold (else the policy's).
    pub warn: Option<Fraction>,
    /// `MESSAGE` shown with a warning or refusal by this rule (else the policy's).
    pub message: Option<String>,
    /// `LINK` shown with a warning or refusal by this rule (else the policy's).
    pub link: Option<String>,
    /// `GRACE` of this rule (else the policy's, for a rule it applies to).
    pub grace: Option<Fraction>,
    /// The limiter raised by the grace in force (the rule's or the policy's), set by
    /// [`Body::resolve_grace`]; `None` without a grace.
    pub graced: Option<Arc<Limit>>,
    /// Outcome counters.
    pub counters: Arc<RuleCounters>,
}

/// The rules of one scope (endpoint, route).
#[derive(Debug, Clone)]
pub struct Scope {
    /// The scope's name, as `LIMIT.CHECK ... SCOPE name` gives it.
    pub name: String,
    /// Whether these rules replace the defaults for this scope (else they add to them).
    pub replace: bool,
    /// The rules.
    pub rules: Vec<Rule>,
}

/// A policy's or override's rules and options.
#[derive(Debug, Clone, Default)]
pub struct Body {
    /// Default warning threshold for every rule.
    pub warn: Option<Fraction>,
    /// Default `MESSAGE` of warnings and refusals.
    pub message: Option<String>,
    /// Default `LINK` of warnings and refusals.
    pub link: Option<String>,
    /// Default `GRACE` of every QUOTA, COST and TOKENS rule.
    pub grace: Option<Fraction>,
    /// Decide and report, never charge.
    pub dryrun: bool,
    /// Where the policy's events are POSTed (policies only; see [`crate::policy::webhook`]).
    pub webhook: Option<Arc<Webhook>>,
    /// Rules for every check.
    pub rules: Vec<Rule>,
    /// Per-scope rules.
    pub scopes: Vec<Scope>,
}

/// A rule that applies to one check, with the scope its state belongs to.
#[derive(Debug, Clone, Copy)]
pub struct Applied<'a> {
    /// The rule.
    pub rule: &'a Rule,
    /// `Some` for a scope's rule: its state is per scope.
    pub scope: Option<&'a str>,
}

impl Body {
    /// The rules a check with `scope` runs, defaults first: the defaults (unless the scope
    /// replaces them) and the scope's own rules. An unknown scope runs the defaults.
    pub fn applicable<'a>(&'a self, scope: Option<&str>) -> Vec<Applied<'a>> {
        self.applicable_iter(scope).collect()
    }

    /// [`Body::applicable`] without collecting: for deriving the rule keys without a vector
    /// of rules (its size hint is exact, so collecting it allocates once).
    pub fn applicable_iter<'a>(
        &'a self,
        scope: Option<&str>,
    ) -> impl Iterator<Item = Applied<'a>> + 'a {
        let section = scope.and_then(|s| self.scopes.iter().find(|x| x.name == s));
        let defaults: &[Rule] = if section.is_some_and(|s| s.replace) {
            &[]
        } else {
            &self.rules
        };
        let (own, name): (&[Rule], Option<&str>) =
            section.map_or((&[], None), |s| (&s.rules, Some(s.name.as_str())));
        defaults
            .iter()
            .map(|rule| Applied { rule, scope: None })
            .chain(own.iter().map(move |rule| Applied { rule, scope: name }))
    }

    /// Every rule of every section, each with its scope.
    pub fn all(&self) -> Vec<Applied<'_>> {
        let mut out: Vec<Applied<'_>> = self
            .rules
            .iter()
            .map(|rule| Applied { rule, scope: None })
            .collect();
        for s in &self.scopes {
            out.extend(s.rules.iter().map(|rule| Applied {
                rule,
                scope: Some(s.name.as_str()),
            }));
        }
        out
    }

    /// `self` with `over` applied on top: options set in `over` win; in each section a rule of
    /// `over` replaces the rule of the same name and other rules are added; a scope of `over`
    /// that `self` lacks is added, and `REPLACE` on either side replaces.
    pub fn merged(&self, over: &Body) -> Body {
        fn merge_rules(base: &[Rule], over: &[Rule]) -> Vec<Rule> {
            let mut out: Vec<Rule> = base
                .iter()
                .map(|r| over.iter().find(|o| o.name == r.name).unwrap_or(r).clone())
                .collect();
            out.extend(
                over.iter()
                    .filter(|o| !base.iter().any(|r| r.name == o.name))
                    .cloned(),
            );
            out
        }
        let mut scopes: Vec<Scope> = self
            .scopes
            .iter()
            .map(|s| match over.scopes.iter().find(|o| o.name == s.name) {
                Some(o) => Scope {
                    name: s.name.clone(),
                    replace: s.replace || o.replace,
                    rules: merge_rules(&s.rules, &o.rules),
                },
                None => s.clone(),
            })
            .collect();
        scopes.extend(
            over.scopes
                .iter()
                .filter(|o| !self.scopes.iter().any(|s| s.name == o.name))
                .cloned(),
        );
        let mut body = Body {
            warn: over.warn.or(self.warn),
            message: over.message.clone().or_else(|| self.message.clone()),
            link: over.link.clone().or_else(|| self.link.clone()),
            grace: over.grace.or(self.grace),
            dryrun: self.dryrun || over.dryrun,
            // Events are routed by the policy asked for, whose webhook an override cannot set.
            webhook: self.webhook.clone(),
            rules: merge_rules(&self.rules, &over.rules),
            scopes,
        };
        if over.grace.is_some() {
            // Validated when `over` was parsed against its own rules; a plan's rule it
            // cannot raise keeps no grace rather than failing the check.
            let _ = body.resolve_grace();
        }
        body
    }

    /// Computes every rule's graced limiter from its own `GRACE` or the body's (for the rules
    /// a grace applies to). Errors: a grace that cannot raise a rule's limit.
    pub fn resolve_grace(&mut self) -> Result<(), PolicyError> {
        let default = self.grace;
        let sections =
            std::iter::once(&mut self.rules).chain(self.scopes.iter_mut().map(|s| &mut s.rules));
        for rules in sections {
            for r in rules.iter_mut() {
                let g = r
                    .grace
                    .or(default.filter(|_| notice::grace_applies(r.measure, &r.limit)));
                r.graced = match g {
                    Some(g) => Some(Arc::new(
                        notice::graced_limit(&r.limit, g)
                            .map_err(|e| PolicyError(format!("rule '{}': {e}", r.name)))?,
                    )),
                    None => None,
                };
            }
        }
        Ok(())
    }

    /// Number of rules over all sections.
    pub fn rule_count(&self) -> usize {
        self.rules.len() + self.scopes.iter().map(|s| s.rules.len()).sum::<usize>()
    }

    /// The canonical words that parse back to this body.
    pub fn words(&self) -> Vec<String> {
        let mut w = Vec::new();
        if let Some(f) = self.warn {
            w.extend(["WARN".to_owned(), f.to_string()]);
        }
        push_opt(&mut w, "MESSAGE", &self.message);
        push_opt(&mut w, "LINK", &self.link);
        if let Some(g) = self.grace {
            w.extend(["GRACE".to_owned(), g.to_string()]);
        }
        if self.dryrun {
            w.push("DRYRUN".to_owned());
        }
        if let Some(h) = &self.webhook {
            h.write_words(&mut w);
        }
        for r in &self.rules {
            r.write_words(&mut w);
        }
        for s in &self.scopes {
            w.extend(["SCOPE".to_owned(), s.name.clone()]);
            if s.replace {
                w.push("REPLACE".to_owned());
            }
            for r in &s.rules {
                r.write_words(&mut w);
            }
        }
        w
    }

    /// Shares the counters of same-named rules of `old` (a previous version), so that
    /// editing a policy keeps its statistics.
    pub fn inherit_counters(&mut self, old: &Body) {
        fn inherit(new: &mut [Rule], old: &[Rule]) {
            for r in new {
                if let Some(o) = old.iter().find(|o| o.name == r.name) {
                    r.counters = o.counters.clone();
                }
            }
        }
        inherit(&mut self.rules, &old.rules);
        for s in &mut self.scopes {
            if let Some(o) = old.scopes.iter().find(|o| o.name == s.name) {
                inherit(&mut s.rules, &o.rules);
            }
        }
    }
}

impl Rule {
    /// Appends the canonical words of this rule.
    pub fn write_words(&self, w: &mut Vec<String>) {
        let tokens = self.measure == Measure::Tokens;
        match &self.limit {
            Limit::Rate { rate, burst, .. } => {
                w.push(if tokens { "TOKENS" } else { "RATE" }.to_owned());
                w.push(fmt_rate(rate));
                if let Some(b) = burst {
                    w.extend(["BURST".to_owned(), b.to_string()]);
                }
            }
            Limit::Window { rate, .. } => {
                if tokens {
                    w.push("TOKENS".to_owned());
                }
                w.extend(["WINDOW".to_owned(), fmt_rate(rate)]);
            }
            Limit::Quota {
                count,
                unit,
                tz,
                anchor,
                carry,
                ..
            } => {
                w.push(if tokens { "TOKENS" } else { "QUOTA" }.to_owned());
                w.push(format!("{count}/{}", unit.name()));
                push_opt(w, "TZ", tz);
                push_opt(w, "ANCHOR", anchor);
                if *carry > 0 {
                    w.extend(["CARRY".to_owned(), carry.to_string()]);
                }
            }
            Limit::Cost { cap, per, .. } => {
                w.push("COST".to_owned());
                match per {
                    CostSpec::Calendar { unit, tz, anchor } => {
                        w.push(format!("{cap}/{}", unit.name()));
                        push_opt(w, "TZ", tz);
                        push_opt(w, "ANCHOR", anchor);
                    }
                    CostSpec::Rolling(d) => w.push(format!("{cap}/{}", fmt_duration(*d))),
                }
            }
            Limit::Lease {
                limit, ttl, params, ..
            } => {
                w.extend(["LEASE".to_owned(), limit.to_string()]);
                if *ttl != DEFAULT_LEASE_TTL {
                    w.extend(["TTL".to_owned(), fmt_duration(*ttl)]);
                }
                let (n, for_) = params.reserve();
                if n > 0 {
                    w.extend(["RESERVE".to_owned(), n.to_string()]);
                    if for_ != Priority::High {
                        w.extend(["FOR".to_owned(), for_.name().to_owned()]);
                    }
                }
            }
            Limit::Breaker(b) => b.write_words(w, fmt_duration),
        }
        if self.named {
            w.extend(["NAME".to_owned(), self.name.clone()]);
        }
        if self.action != Action::Block {
            w.extend(["ACTION".to_owned(), self.action.name().to_owned()]);
        }
        if let Some(d) = self.max_delay {
            w.extend(["MAXDELAY".to_owned(), fmt_duration(d)]);
        }
        if let Some(f) = self.warn {
            w.extend(["WARN".to_owned(), f.to_string()]);
        }
        push_opt(w, "MESSAGE", &self.message);
        push_opt(w, "LINK", &self.link);
        if let Some(g) = self.grace {
            w.extend(["GRACE".to_owned(), g.to_string()]);
        }
    }
}

fn push_opt(w: &mut Vec<String>, key: &str, v: &Option<String>) {
    if let Some(v) = v {
        w.extend([key.to_owned(), v.clone()]);
    }
}

/// A duration in its largest exact unit: `1d`, `90m`, `1500ms`.
pub fn fmt_duration(d: Nanos) -> String {
    const UNITS: [(&str, u64); 5] = [
        ("d", 86_400 * Nanos::PER_SEC),
        ("h", 3_600 * Nanos::PER_SEC),
        ("m", 60 * Nanos::PER_SEC),
        ("s", Nanos::PER_SEC),
        ("ms", Nanos::PER_MS),
    ];
    for (unit, ns) in UNITS {
        if d.0 % ns == 0 {
            return format!("{}{unit}", d.0 / ns);
        }
    }
    // Durations parse in whole milliseconds at least; keep whatever is left readable.
    format!("{}ms", d.0.div_ceil(Nanos::PER_MS))
}

fn fmt_rate(r: &Rate) -> String {
    format!("{}/{}", r.count(), fmt_duration(r.period()))
}

/// A valid policy or rule name: 1..=64 of `A-Z a-z 0-9 _ . -`.
pub fn check_name(what: &str, name: &[u8]) -> Result<String, PolicyError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if !ok {
        return Err(PolicyError::new(format!(
            "invalid {what} '{}': use 1 to {MAX_NAME_LEN} letters, digits, '_', '.' or '-'",
            String::from_utf8_lossy(name)
        )));
    }
    // All ASCII.
    Ok(String::from_utf8_lossy(name).into_owned())
}

/// A valid scope name: 1..=256 bytes of UTF-8 without control characters.
pub fn check_scope(name: &[u8]) -> Result<String, PolicyError> {
    match std::str::from_utf8(name) {
        Ok(s) if !s.is_empty() && s.len() <= MAX_SCOPE_LEN && !s.chars().any(char::is_control) => {
            Ok(s.to_owned())
        }
        _ => Err(PolicyError::new(format!(
            "invalid scope '{}': use 1 to {MAX_SCOPE_LEN} bytes of text without control characters",
            String::from_utf8_lossy(name)
        ))),
    }
}

/// Words with a cursor.
pub struct Words<'a> {
    words: &'a [Bytes],
    pos: usize,
}

impl<'a> Words<'a> {
    /// A cursor at the first word.
    pub fn new(words: &'a [Bytes]) -> Words<'a> {
        Words { words, pos: 0 }
    }

    /// The next word without consuming it.
    pub fn peek(&self) -> Option<&'a Bytes> {
        self.words.get(self.pos)
    }

    /// Consumes and returns the next word.
    pub fn next_word(&mut self) -> Option<&'a Bytes> {
        let w = self.words.get(self.pos)?;
        self.pos += 1;
        Some(w)
    }

    /// The value after option `key`, or an error naming it.
    pub fn value(&mut self, key: &str) -> Result<&'a Bytes, PolicyError> {
        self.next_word()
            .ok_or_else(|| PolicyError::new(format!("{key} needs a value")))
    }

    /// Whether every word was consumed.
    pub fn is_done(&self) -> bool {
        self.pos >= self.words.len()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn is(w: &[u8], kw: &str) -> bool {
    w.eq_ignore_ascii_case(kw.as_bytes())
}

/// Whether `w` starts a rule.
fn is_family(w: &[u8]) -> bool {
    [
        "RATE", "WINDOW", "QUOTA", "TOKENS", "COST", "LEASE", "BREAKER",
    ]
    .iter()
    .any(|k| is(w, k))
}

fn unit_err(what: &str, arg: &[u8], e: impl std::fmt::Display) -> PolicyError {
    PolicyError::new(format!("invalid {what} '{}': {e}", text(arg)))
}

fn duration(what: &str, arg: &[u8]) -> Result<Nanos, PolicyError> {
    units::parse_duration(&text(arg)).map_err(|e| unit_err(what, arg, e))
}

fn count(what: &str, arg: &[u8]) -> Result<u64, PolicyError> {
    units::parse_count(&text(arg)).map_err(|e| unit_err(what, arg, e))
}

/// Options a rule's family accepts besides the common ones.
#[derive(Default)]
struct RuleOptions<'a> {
    burst: Option<&'a Bytes>,
    tz: Option<&'a Bytes>,
    anchor: Option<&'a Bytes>,
    carry: Option<&'a Bytes>,
    ttl: Option<&'a Bytes>,
    name: Option<&'a Bytes>,
    action: Option<&'a Bytes>,
    max_delay: Option<&'a Bytes>,
    warn: Option<&'a Bytes>,
    message: Option<&'a Bytes>,
    link: Option<&'a Bytes>,
    grace: Option<&'a Bytes>,
    breaker: BreakerOptions<'a>,
    reserve: Option<&'a Bytes>,
    reserve_for: Option<&'a Bytes>,
}

/// The kind of limiter a family keyword (plus `TOKENS` sub-keyword) names.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Rate,
    Window,
    Quota,
    Cost,
    Lease,
    Breaker,
}

impl Kind {
    /// Family-specific options this kind accepts.
    fn accepts(self, opt: &[u8]) -> bool {
        let allowed: &[&str] = match self {
            Kind::Rate => &["BURST"],
            Kind::Window => &[],
            Kind::Quota => &["TZ", "ANCHOR", "CARRY"],
            Kind::Cost => &["TZ", "ANCHOR"],
            Kind::Lease => &["TTL", "RESERVE"],
            Kind::Breaker => &upstream::OPTIONS,
        };
        allowed.iter().any(|k| is(opt, k))
    }
}

/// Parses one rule at the cursor (which is on a family keyword).
fn parse_rule(w: &mut Words<'_>) -> Result<Rule, PolicyError> {
    let family = w
        .next_word()
        .expect("invariant: called on a family keyword");
    let (kind, measure, spec) = if is(family, "TOKENS") {
        let sub = w.peek();
        let explicit = [
            ("RATE", Kind::Rate),
            ("WINDOW", Kind::Window),
            ("QUOTA", Kind::Quota),
        ]
        .into_iter()
        .find(|(k, _)| sub.is_some_and(|s| is(s, k)));
        if explicit.is_some() {
            w.next_word();
        }
        let spec = w.value("TOKENS")?;
        let kind = match explicit {
            Some((_, k)) => k,
            // n/day is a calendar quota, n/1m a rate.
            None => {
                let per = spec.splitn(2, |&b| b == b'/').nth(1).unwrap_or_default();
                if PeriodUnit::parse(&text(per)).is_ok() {
                    Kind::Quota
                } else {
                    Kind::Rate
                }
            }
        };
        (kind, Measure::Tokens, spec)
    } else {
        let (kind, measure, key) = if is(family, "RATE") {
            (Kind::Rate, Measure::Requests, "RATE")
        } else if is(family, "WINDOW") {
            (Kind::Window, Measure::Requests, "WINDOW")
        } else if is(family, "QUOTA") {
            (Kind::Quota, Measure::Requests, "QUOTA")
        } else if is(family, "COST") {
            (Kind::Cost, Measure::Cost, "COST")
        } else if is(family, "BREAKER") {
            (Kind::Breaker, Measure::Requests, "BREAKER")
        } else {
            (Kind::Lease, Measure::Concurrency, "LEASE")
        };
        (kind, measure, w.value(key)?)
    };
    let mut o = RuleOptions::default();
    while let Some(opt) = w.peek() {
        let upper = opt.to_ascii_uppercase();
        let slot = if kind == Kind::Breaker && kind.accepts(opt) {
            o.breaker
                .slot(&upper)
                .expect("invariant: accepts() lists exactly the breaker slots")
        } else if kind.accepts(opt) {
            match upper.as_slice() {
                b"BURST" => &mut o.burst,
                b"TZ" => &mut o.tz,
                b"ANCHOR" => &mut o.anchor,
                b"CARRY" => &mut o.carry,
                b"RESERVE" => &mut o.reserve,
                _ => &mut o.ttl,
            }
        } else if is(opt, "NAME") {
            &mut o.name
        } else if is(opt, "ACTION") {
            &mut o.action
        } else if is(opt, "MAXDELAY") {
            &mut o.max_delay
        } else if is(opt, "WARN") {
            &mut o.warn
        } else if is(opt, "MESSAGE") {
            &mut o.message
        } else if is(opt, "LINK") {
            &mut o.link
        } else if is(opt, "GRACE") {
            &mut o.grace
        } else {
            break;
        };
        let key = text(opt).to_ascii_uppercase();
        w.next_word();
        let v = w.value(&key)?;
        if slot.replace(v).is_some() {
            return Err(PolicyError::new(format!("{key} given twice")));
        }
        // `RESERVE n FOR high|normal`: FOR belongs to the reserve only when a priority
        // follows (an override's `FOR policy` comes before its rules in canonical words).
        if key == "RESERVE" {
            let for_prio = w.peek().is_some_and(|x| is(x, "FOR"))
                && w.words
                    .get(w.pos + 1)
                    .is_some_and(|p| Priority::parse(p).is_some());
            if for_prio {
                w.next_word();
                o.reserve_for = w.next_word();
            }
        }
    }
    build_rule(kind, measure, spec, &o)
}

fn zone_anchor(
    unit: PeriodUnit,
    o: &RuleOptions<'_>,
) -> Result<(Calendar, Option<String>, Option<String>), PolicyError> {
    let tz_text = o.tz.map(|z| text(z));
    let anchor_text = o.anchor.map(|a| text(a));
    let tz = match &tz_text {
        Some(z) => parse_zone(z).map_err(|e| PolicyError::new(e.to_string()))?,
        None => jiff::tz::TimeZone::UTC,
    };
    let anchor = match &anchor_text {
        Some(a) => parse_anchor(unit, a).map_err(|e| PolicyError::new(e.to_string()))?,
        None => Anchor::default(),
    };
    Ok((Calendar::new(unit, tz, anchor), tz_text, anchor_text))
}

fn build_rule(
    kind: Kind,
    measure: Measure,
    spec: &Bytes,
    o: &RuleOptions<'_>,
) -> Result<Rule, PolicyError> {
    let tokens = if measure == Measure::Tokens {
        "tokens-"
    } else {
        ""
    };
    let (limit, derived) = match kind {
        Kind::Rate => {
            let rate = units::parse_rate(&text(spec)).map_err(|e| unit_err("rate", spec, e))?;
            let burst = o.burst.map(|b| count("BURST", b)).transpose()?;
            let params = RateParams::new(rate, burst).map_err(|e| unit_err("rate", spec, e))?;
            let name = if tokens.is_empty() {
                format!("rate-{}", fmt_duration(rate.period()))
            } else {
                format!("tokens-{}", fmt_duration(rate.period()))
            };
            (
                Limit::Rate {
                    rate,
                    burst,
                    params,
                },
                name,
            )
        }
        Kind::Window => {
            let rate = units::parse_rate(&text(spec)).map_err(|e| unit_err("rate", spec, e))?;
            let name = format!("{tokens}window-{}", fmt_duration(rate.period()));
            (
                Limit::Window {
                    rate,
                    params: WindowParams::from_rate(rate),
                },
                name,
            )
        }
        Kind::Quota => {
            let (count_n, unit) =
                parse_quota(&text(spec)).map_err(|e| unit_err("quota", spec, e))?;
            let (calendar, tz, anchor) = zone_anchor(unit, o)?;
            let carry = match o.carry {
                Some(c) if c.as_ref() == b"0" => 0,
                Some(c) => count("CARRY", c)?,
                None => 0,
            };
            let params = QuotaParams::new(count_n, calendar, carry)
                .map_err(|e| unit_err("quota", spec, e))?;
            let name = if tokens.is_empty() {
                format!("quota-{}", unit.name())
            } else {
                format!("tokens-{}", unit.name())
            };
            (
                Limit::Quota {
                    count: count_n,
                    unit,
                    tz,
                    anchor,
                    carry,
                    params,
                },
                name,
            )
        }
        Kind::Cost => {
            let s = text(spec);
            let (cap_s, per_s) = s.split_once('/').ok_or_else(|| {
                PolicyError::new(format!(
                    "invalid cost '{s}': use amount/period (1.00/day) or amount/duration (5/1h)"
                ))
            })?;
            let cap = Amount::parse(cap_s).map_err(|e| unit_err("cost", spec, e))?;
            let (per, period, name) = match PeriodUnit::parse(per_s) {
                Ok(unit) => {
                    let (calendar, tz, anchor) = zone_anchor(unit, o)?;
                    (
                        CostSpec::Calendar { unit, tz, anchor },
                        CostPeriod::Calendar(calendar),
                        format!("cost-{}", unit.name()),
                    )
                }
                Err(_) => {
                    if o.tz.is_some() || o.anchor.is_some() {
                        return Err(PolicyError::new(
                            "TZ and ANCHOR need a calendar period (minute, hour, day, week, month)",
                        ));
                    }
                    let d = units::parse_duration(per_s).map_err(|e| unit_err("cost", spec, e))?;
                    (
                        CostSpec::Rolling(d),
                        CostPeriod::Rolling(d),
                        format!("cost-{}", fmt_duration(d)),
                    )
                }
            };
            let params = CostParams::new(cap, period).map_err(|e| unit_err("cost", spec, e))?;
            (Limit::Cost { cap, per, params }, name)
        }
        Kind::Lease => {
            let limit = count("LEASE", spec)?;
            let ttl = o
                .ttl
                .map(|t| duration("TTL", t))
                .transpose()?
                .unwrap_or(DEFAULT_LEASE_TTL);
            let mut params =
                LeaseParams::new(limit, ttl).map_err(|e| unit_err("LEASE", spec, e))?;
            if let Some(r) = o.reserve {
                let n = count("RESERVE", r)?;
                let for_ = o
                    .reserve_for
                    .and_then(|p| Priority::parse(p))
                    .unwrap_or(Priority::High);
                if for_ == Priority::Low {
                    return Err(PolicyError::new("a reserve is FOR high or normal priority"));
                }
                params = params
                    .with_reserve(n, for_)
                    .map_err(|e| unit_err("RESERVE", r, e))?;
            }
            (Limit::Lease { limit, ttl, params }, "lease".to_owned())
        }
        Kind::Breaker => {
            let b = BreakerRule::new(spec, &o.breaker)?;
            let name = b.derived_name().unwrap_or_default();
            (Limit::Breaker(b), name)
        }
    };
    if derived.is_empty() && o.name.is_none() {
        return Err(PolicyError::new(
            "give this BREAKER rule a NAME (its key does not make a rule name)",
        ));
    }
    let (name, named) = match o.name {
        Some(n) => (check_name("rule name", n)?, true),
        None => (derived, false),
    };
    let action = match o.action {
        Some(a) => Action::parse(a).ok_or_else(|| {
            PolicyError::new(format!(
                "invalid ACTION '{}': use block, slowdown or log",
                text(a)
            ))
        })?,
        None => Action::Block,
    };
    let max_delay = o.max_delay.map(|d| duration("MAXDELAY", d)).transpose()?;
    if max_delay.is_some() && action != Action::Slowdown {
        return Err(PolicyError::new("MAXDELAY needs ACTION slowdown"));
    }
    if action == Action::Slowdown && kind == Kind::Lease {
        return Err(PolicyError::new(
            "a LEASE rule cannot slow down: a concurrency slot frees at an unknown time",
        ));
    }
    let warn = o.warn.map(|f| Fraction::parse(&text(f))).transpose()?;
    let grace = o.grace.map(|f| Fraction::parse(&text(f))).transpose()?;
    if grace.is_some() && !notice::grace_applies(measure, &limit) {
        return Err(PolicyError::new(
            "GRACE applies to QUOTA, COST and TOKENS rules only",
        ));
    }
    Ok(Rule {
        name,
        named,
        measure,
        limit,
        action,
        max_delay,
        warn,
        message: o.message.map(|m| notice::check_message(m)).transpose()?,
        link: o.link.map(|l| notice::check_link(l)).transpose()?,
        grace,
        graced: None,
        counters: Arc::default(),
    })
}

/// Parses a body. `stop` names words that end the body (an override's own options); the
/// cursor is left on such a word.
pub fn parse_body(w: &mut Words<'_>, stop: &dyn Fn(&[u8]) -> bool) -> Result<Body, PolicyError> {
    let mut body = Body::default();
    // Policy options come before the first rule.
    while let Some(word) = w.peek() {
        if is(word, "WARN") && body.warn.is_none() {
            w.next_word();
            body.warn = Some(Fraction::parse(&text(w.value("WARN")?))?);
        } else if is(word, "DRYRUN") && !body.dryrun {
            w.next_word();
            body.dryrun = true;
        } else if is(word, "MESSAGE") && body.message.is_none() {
            w.next_word();
            body.message = Some(notice::check_message(w.value("MESSAGE")?)?);
        } else if is(word, "LINK") && body.link.is_none() {
            w.next_word();
            body.link = Some(notice::check_link(w.value("LINK")?)?);
        } else if is(word, "GRACE") && body.grace.is_none() {
            w.next_word();
            body.grace = Some(Fraction::parse(&text(w.value("GRACE")?))?);
        } else if is(word, "WEBHOOK") && body.webhook.is_none() {
            w.next_word();
            body.webhook = Some(Arc::new(Webhook::parse(w)?));
        } else {
            break;
        }
    }
    let mut index = 0;
    while let Some(word) = w.peek() {
        if stop(word) {
            break;
        }
        if is(word, "SCOPE") {
            w.next_word();
            let name = check_scope(w.value("SCOPE")?)?;
            if body.scopes.iter().any(|s| s.name == name) {
                return Err(PolicyError::new(format!("scope '{name}' is given twice")));
            }
            if body.scopes.len() >= MAX_SCOPES {
                return Err(PolicyError::new(format!(
                    "too many scopes (at most {MAX_SCOPES})"
                )));
            }
            let replace = w.peek().is_some_and(|x| is(x, "REPLACE"));
            if replace {
                w.next_word();
            }
            body.scopes.push(Scope {
                name,
                replace,
                rules: Vec::new(),
            });
            continue;
        }
        if !is_family(word) {
            return Err(PolicyError::new(format!(
                "unexpected '{}' (a rule starts with RATE, WINDOW, QUOTA, TOKENS, COST, LEASE or BREAKER)",
                text(word)
            )));
        }
        index += 1;
        let start = text(word).to_ascii_uppercase();
        let rule =
            parse_rule(w).map_err(|e| PolicyError(format!("rule {index} ({start}): {e}")))?;
        let section = match body.scopes.last_mut() {
            Some(s) => &mut s.rules,
            None => &mut body.rules,
        };
        if section.iter().any(|r| r.name == rule.name) {
            return Err(PolicyError::new(format!(
                "rule {index} ({start}): a rule named '{}' already exists in this section (give one a NAME)",
                rule.name
            )));
        }
        section.push(rule);
        if index > MAX_RULES {
            return Err(PolicyError::new(format!(
                "too many rules (at most {MAX_RULES})"
            )));
        }
    }
    body.resolve_grace()?;
    Ok(body)
}

/// A named policy (a plan).
#[derive(Debug, Clone)]
pub struct Policy {
    /// Its name.
    pub name: String,
    /// Its rules.
    pub body: Arc<Body>,
    /// Outcome counters of the policy as a whole.
    pub counters: Arc<PolicyCounters>,
}

/// Counters of one policy.
#[derive(Debug, Default)]
pub struct PolicyCounters {
    /// Checks run (LIMIT.CHECK and LIMIT.RESERVE, dry runs included).
    pub checks: AtomicU64,
    /// Checks admitted.
    pub allowed: AtomicU64,
    /// Checks refused.
    pub denied: AtomicU64,
    /// Checks admitted by the allow list.
    pub allowlisted: AtomicU64,
    /// Checks refused by the deny list.
    pub denylisted: AtomicU64,
    /// Checks that used an override.
    pub overridden: AtomicU64,
}

impl Policy {
    /// Parses `POLICY.SET name words...` (name and words separately). The whole definition is
    /// validated: any error refuses it all.
    pub fn parse(name: &[u8], words: &[Bytes]) -> Result<Policy, PolicyError> {
        let name = check_name("policy name", name)?;
        let mut w = Words::new(words);
        let body = parse_body(&mut w, &|_| false)?;
        if body.rule_count() == 0 {
            return Err(PolicyError::new("a policy needs at least one rule"));
        }
        Ok(Policy {
            name,
            body: Arc::new(body),
            counters: Arc::default(),
        })
    }
}

/// A per-identity override.
#[derive(Debug, Clone)]
pub struct Override {
    /// Only checks of this policy use the override (`FOR`); `None`: every policy.
    pub only_for: Option<String>,
    /// Checks use this policy instead of the one asked for (`POLICY`).
    pub policy: Option<String>,
    /// Rules merged over the policy's (see [`Body::merged`]).
    pub body: Body,
    /// Why (`REASON`).
    pub reason: Option<String>,
    /// When it lapses (absolute; `None`: never).
    pub expires_at: Option<Nanos>,
}

impl Override {
    /// Parses `OVERRIDE.SET identity` options and rules: `[FOR policy] [POLICY p]
    /// [REASON text] [EXPIRE duration] [body]`, options anywhere between sections. `EXPIRE` is
    /// relative to `now`; `EXPIREAT unix-ms` (what the AOF records) is absolute.
    pub fn parse(words: &[Bytes], now: Nanos) -> Result<Override, PolicyError> {
        let mut o = Override {
            only_for: None,
            policy: None,
            body: Body::default(),
            reason: None,
            expires_at: None,
        };
        let is_opt = |x: &[u8]| {
            ["FOR", "POLICY", "REASON", "EXPIRE", "EXPIREAT"]
                .iter()
                .any(|k| is(x, k))
        };
        let mut w = Words::new(words);
        let mut seen_body = false;
        loop {
            while let Some(word) = w.peek().filter(|x| is_opt(x)) {
                let key = text(word).to_ascii_uppercase();
                w.next_word();
                let v = w.value(&key)?;
                let dup = match key.as_str() {
                    "FOR" => o.only_for.replace(check_name("policy name", v)?).is_some(),
                    "POLICY" => o.policy.replace(check_name("policy name", v)?).is_some(),
                    "REASON" => o.reason.replace(text(v)).is_some(),
                    "EXPIRE" => o
                        .expires_at
                        .replace(now.saturating_add(duration("EXPIRE", v)?))
                        .is_some(),
                    _ => {
                        let ms =
                            units::parse_count(&text(v)).map_err(|e| unit_err("EXPIREAT", v, e))?;
                        o.expires_at.replace(Nanos::from_millis(ms)).is_some()
                    }
                };
                if dup {
                    return Err(PolicyError::new(format!("{key} given twice")));
                }
            }
            if w.is_done() {
                break;
            }
            if seen_body {
                return Err(PolicyError::new(format!(
                    "unexpected '{}'",
                    text(w.peek().expect("not done"))
                )));
            }
            seen_body = true;
            o.body = parse_body(&mut w, &is_opt)?;
            if o.body.webhook.is_some() {
                return Err(PolicyError::new(
                    "WEBHOOK is a policy option: an override cannot set one",
                ));
            }
        }
        let options = o.body.warn.is_some()
            || o.body.dryrun
            || o.body.message.is_some()
            || o.body.link.is_some()
            || o.body.grace.is_some();
        if o.policy.is_none() && o.body.rule_count() == 0 && !options {
            return Err(PolicyError::new(
                "an override needs POLICY name or at least one rule",
            ));
        }
        Ok(o)
    }

    /// Whether the override is in force at `now`.
    pub fn is_live(&self, now: Nanos) -> bool {
        self.expires_at.is_none_or(|at| now < at)
    }

    /// Whether it applies to checks of `policy`.
    pub fn applies_to(&self, policy: &str) -> bool {
        self.only_for.as_deref().is_none_or(|p| p == policy)
    }

    /// The canonical words (with an absolute `EXPIREAT`), as the AOF records them.
    pub fn words(&self) -> Vec<String> {
        let mut w = Vec::new();
        push_opt(&mut w, "FOR", &self.only_for);
        push_opt(&mut w, "POLICY", &self.policy);
        push_opt(&mut w, "REASON", &self.reason);
        if let Some(at) = self.expires_at {
            w.extend(["EXPIREAT".to_owned(), at.as_millis().to_string()]);
        }
        w.extend(self.body.words());
        w
    }
}

/// Splits a config line into words: blanks separate, `"..."` (with `\"`, `\\`, `\n`, `\t`,
/// `\xHH` escapes) and `'...'` quote, as Redis's `sdssplitargs`.
pub fn split_words(line: &str) -> Result<Vec<String>, PolicyError> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else {
            return Ok(out);
        };
        let mut word = String::new();
        if first == '"' || first == '\'' {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                if c == first {
                    closed = true;
                    break;
                }
                if c == '\\' && first == '"' {
                    match chars.next() {
                        Some('n') => word.push('\n'),
                        Some('t') => word.push('\t'),
                        Some('r') => word.push('\r'),
                        Some('x') => {
                            let h: String = chars.by_ref().take(2).collect();
                            let b = u8::from_str_radix(&h, 16)
                                .map_err(|_| PolicyError::new("bad \\x escape"))?;
                            word.push(char::from(b));
                        }
                        Some(other) => word.push(other),
                        None => break,
                    }
                } else if c == '\\' && chars.peek() == Some(&'\'') {
                    word.push('\'');
                    chars.next();
                } else {
                    word.push(c);
                }
            }
            if !closed || chars.peek().is_some_and(|c| !c.is_whitespace()) {
                return Err(PolicyError::new("unbalanced quotes"));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                word.push(c);
                chars.next();
            }
        }
        out.push(word);
    }
}

/// Joins words into one line that [`split_words`] splits back, quoting where needed.
pub fn join_words(words: &[String]) -> String {
    let mut out = String::new();
    for w in words {
        if !out.is_empty() {
            out.push(' ');
        }
        let plain = !w.is_empty()
            && !w
                .chars()
                .any(|c| c.is_whitespace() || c == '"' || c == '\'' || c == '\\' || c.is_control());
        if plain {
            out.push_str(w);
            continue;
        }
        out.push('"');
        for c in w.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out
}

/// The key marking that one rule's warning event fired for one identity in the current
/// period (see [`crate::policy::notice`]): the rule's [`state_key`] with the rule name
/// `rule#warned` (`#` never occurs in a rule name, so it collides with no rule's state).
/// `tagged` (cluster mode) gives it the identity's hash tag, as [`tagged_state_key`] does the
/// rule keys, so it lives in the identity's slot beside them.
pub fn warn_key(
    tagged: bool,
    policy: &str,
    scope: Option<&str>,
    rule: &str,
    identity: &[u8],
) -> Bytes {
    rule_key(tagged, policy, scope, &format!("{rule}#warned"), identity)
}

/// One rule's state key in this mode's format: [`tagged_state_key`] when `tagged` (cluster
/// mode) and the identity has a tag, else [`state_key`].
pub fn rule_key(
    tagged: bool,
    policy: &str,
    scope: Option<&str>,
    rule: &str,
    identity: &[u8],
) -> Bytes {
    tagged
        .then(|| tagged_state_key(policy, scope, rule, identity))
        .flatten()
        .unwrap_or_else(|| state_key(policy, scope, rule, identity))
}

/// The keyspace key holding one rule's state for one identity:
/// `limitkv:{policy}:{scope}:{rule}:{identity}`, with `%` and `:` percent-escaped in the
/// scope (empty for the defaults). Policy and rule names never contain `:`, so the key is
/// unambiguous whatever the identity holds.
pub fn state_key(policy: &str, scope: Option<&str>, rule: &str, identity: &[u8]) -> Bytes {
    let scope = scope.unwrap_or("");
    let mut k =
        Vec::with_capacity(9 + policy.len() + scope.len() + rule.len() + identity.len() + 3);
    k.extend_from_slice(b"limitkv:");
    k.extend_from_slice(policy.as_bytes());
    k.push(b':');
    for &b in scope.as_bytes() {
        match b {
            b'%' => k.extend_from_slice(b"%25"),
            b':' => k.extend_from_slice(b"%3A"),
            b => k.push(b),
        }
    }
    k.push(b':');
    k.extend_from_slice(rule.as_bytes());
    k.push(b':');
    k.extend_from_slice(identity);
    Bytes::from(k)
}

/// In cluster mode, [`state_key`] with the identity's hash tag after the prefix:
/// `limitkv:{tag}:{policy}:{scope}:{rule}:{identity}`, so every rule key of one identity lies
/// in the identity's own slot (the one a cluster client routes `LIMIT.CHECK policy identity`
/// to). `None` when no tag can express the identity's slot ([`crate::cluster::identity_tag`]).
pub fn tagged_state_key(
    policy: &str,
    scope: Option<&str>,
    rule: &str,
    identity: &[u8],
) -> Option<Bytes> {
    let tag = crate::cluster::identity_tag(identity)?;
    let plain = state_key(policy, scope, rule, identity);
    let mut k = Vec::with_capacity(plain.len() + tag.len() + 3);
    k.extend_from_slice(b"limitkv:{");
    k.extend_from_slice(tag);
    k.extend_from_slice(b"}:");
    k.extend_from_slice(&plain[b"limitkv:".len()..]);
    Some(Bytes::from(k))
}

/// The identity at the end of a rule key in [`state_key`]'s format (after `limitkv:`, three
/// `:`-terminated fields, the first a policy name), or `None` if `rest` is not one.
fn plain_identity(rest: &[u8]) -> Option<&[u8]> {
    let mut fields = rest.splitn(4, |&b| b == b':');
    let policy = fields.next()?;
    check_name("policy name", policy).ok()?;
    let _scope = fields.next()?;
    let rule = fields.next()?;
    check_name("rule name", rule).ok()?;
    fields.next()
}

/// A rule key in the other format: `tagged` = true turns a [`state_key`] into its
/// [`tagged_state_key`], false the reverse. `None` for keys that are not rule keys of the
/// other format (or whose identity no tag can express). Used at start to carry existing
/// limits over when `cluster-enabled` changes, so no limit is ever reset.
pub fn retag_state_key(key: &[u8], tagged: bool) -> Option<Bytes> {
    let rest = key.strip_prefix(b"limitkv:")?;
    if tagged {
        if rest.first() == Some(&b'{') {
            return None;
        }
        let identity = plain_identity(rest)?;
        let tag = crate::cluster::identity_tag(identity)?;
        let mut k = b"limitkv:{".to_vec();
        k.extend_from_slice(tag);
        k.extend_from_slice(b"}:");
        k.extend_from_slice(rest);
        Some(Bytes::from(k))
    } else {
        let inner = rest.strip_prefix(b"{")?;
        let close = memchr::memchr(b'}', inner)?;
        let (tag, after) = (&inner[..close], &inner[close + 1..]);
        let plain = after.strip_prefix(b":")?;
        let identity = plain_identity(plain)?;
        if crate::cluster::identity_tag(identity) != Some(tag) {
            return None;
        }
        let mut k = b"limitkv:".to_vec();
        k.extend_from_slice(plain);
        Some(Bytes::from(k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagged_keys_share_the_identity_slot_and_convert_both_ways() {
        use crate::cluster::key_slot;
        for id in [&b"customer-42"[..], b"{acct-7}:user-1", b"a{b", b"x:y:z"] {
            let plain = state_key("free", Some("GET /a:b"), "rate-1m", id);
            let tagged = tagged_state_key("free", Some("GET /a:b"), "rate-1m", id).expect("tag");
            assert_eq!(key_slot(&tagged), key_slot(id), "{tagged:?}");
            assert_eq!(
                retag_state_key(&plain, true).as_ref(),
                Some(&tagged),
                "{plain:?}"
            );
            assert_eq!(
                retag_state_key(&tagged, false).as_ref(),
                Some(&plain),
                "{tagged:?}"
            );
            assert_eq!(retag_state_key(&tagged, true), None, "already tagged");
            assert_eq!(retag_state_key(&plain, false), None, "already plain");
        }
        assert_eq!(
            &tagged_state_key("free", None, "quota-day", b"customer-42").expect("tag")[..],
            b"limitkv:{customer-42}:free::quota-day:customer-42"
        );
        assert_eq!(tagged_state_key("free", None, "r", b"a}b"), None);
        assert_eq!(retag_state_key(b"limitkv:events:denied", true), None);
        assert_eq!(retag_state_key(b"user:1", true), None);
    }

    fn words(s: &str) -> Vec<Bytes> {
        split_words(s)
            .unwrap()
            .into_iter()
            .map(Bytes::from)
            .collect()
    }

    fn policy(s: &str) -> Result<Policy, PolicyError> {
        Policy::parse(b"p", &words(s))
    }

    fn names(b: &Body, scope: Option<&str>) -> Vec<String> {
        b.applicable(scope)
            .iter()
            .map(|a| match a.scope {
                Some(s) => format!("{s}/{}", a.rule.name),
                None => a.rule.name.clone(),
            })
            .collect()
    }

    #[test]
    fn rules_parse_with_derived_names_and_canonical_words() {
        // (label, definition, rule names, canonical words)
        let cases = [
            (
                "every family",
                "RATE 100/60s BURST 10 WINDOW 5/s QUOTA 1000/DAY TOKENS 50000/1m \
                 TOKENS 1000000/month COST 1.00/day LEASE 2",
                "rate-1m window-1s quota-day tokens-1m tokens-month cost-day lease",
                "RATE 100/1m BURST 10 WINDOW 5/1s QUOTA 1000/day TOKENS 50000/1m \
                 TOKENS 1000000/month COST 1/day LEASE 2",
            ),
            (
                "explicit token families",
                "tokens window 10/1h tokens quota 5/hour TZ Europe/Berlin tokens rate 7/1d",
                "tokens-window-1h tokens-hour tokens-1d",
                "TOKENS WINDOW 10/1h TOKENS 5/hour TZ Europe/Berlin TOKENS 7/1d",
            ),
            (
                "options",
                "WARN 80% RATE 10/1s NAME fast ACTION slowdown MAXDELAY 2s WARN 0.5 \
                 COST 2.5/90m ACTION log LEASE 3 TTL 30s",
                "fast cost-90m lease",
                "WARN 0.8 RATE 10/1s NAME fast ACTION slowdown MAXDELAY 2s WARN 0.5 \
                 COST 2.5/90m ACTION log LEASE 3 TTL 30s",
            ),
        ];
        for (label, def, want_names, want_words) in cases {
            let p = policy(def).unwrap_or_else(|e| panic!("{label}: {e}"));
            assert_eq!(names(&p.body, None).join(" "), want_names, "{label}");
            assert_eq!(p.body.words().join(" "), want_words, "{label}");
            // Canonical words parse back to the same words.
            let again = Policy::parse(b"p", &words(&join_words(&p.body.words()))).unwrap();
            assert_eq!(again.body.words(), p.body.words(), "{label} round trip");
        }
    }

    #[test]
    fn scopes_add_to_or_replace_the_defaults() {
        let p = policy(
            "RATE 100/1m QUOTA 1000/day SCOPE \"POST /chat\" RATE 10/1m \
             SCOPE /admin REPLACE RATE 1/1s",
        )
        .unwrap();
        assert_eq!(names(&p.body, None), ["rate-1m", "quota-day"]);
        assert_eq!(names(&p.body, Some("GET /x")), ["rate-1m", "quota-day"]);
        assert_eq!(
            names(&p.body, Some("POST /chat")),
            ["rate-1m", "quota-day", "POST /chat/rate-1m"]
        );
        assert_eq!(names(&p.body, Some("/admin")), ["/admin/rate-1s"]);
        assert_eq!(
            join_words(&p.body.words()),
            "RATE 100/1m QUOTA 1000/day SCOPE \"POST /chat\" RATE 10/1m SCOPE /admin REPLACE RATE 1/1s"
        );
    }

    #[test]
    fn bad_definitions_are_refused_whole_with_a_reason() {
        // (label, definition, error)
        let cases = [
            ("empty", "", "a policy needs at least one rule"),
            ("unknown word", "RATE 1/1s FOO", "unexpected 'FOO' (a rule starts with RATE, WINDOW, QUOTA, TOKENS, COST, LEASE or BREAKER)"),
            ("bad rate", "RATE 10/1x", "rule 1 (RATE): invalid rate '10/1x': unknown duration unit 'x' (use ms, s, m, h or d)"),
            ("missing value", "QUOTA", "rule 1 (QUOTA): QUOTA needs a value"),
            ("bad period", "QUOTA 5/fortnight", "rule 1 (QUOTA): invalid quota '5/fortnight': unknown period 'fortnight' (use minute, hour, day, week or month)"),
            ("duplicate", "RATE 1/1m RATE 2/1m", "rule 2 (RATE): a rule named 'rate-1m' already exists in this section (give one a NAME)"),
            ("option of another family", "WINDOW 5/1s BURST 3", "unexpected 'BURST' (a rule starts with RATE, WINDOW, QUOTA, TOKENS, COST, LEASE or BREAKER)"),
            ("repeated option", "RATE 5/1s BURST 1 BURST 2", "rule 1 (RATE): BURST given twice"),
            ("bad action", "RATE 5/1s ACTION maybe", "rule 1 (RATE): invalid ACTION 'maybe': use block, slowdown or log"),
            ("maxdelay without slowdown", "RATE 5/1s MAXDELAY 1s", "rule 1 (RATE): MAXDELAY needs ACTION slowdown"),
            ("lease slowdown", "LEASE 2 ACTION slowdown", "rule 1 (LEASE): a LEASE rule cannot slow down: a concurrency slot frees at an unknown time"),
            ("bad warn", "RATE 5/1s WARN 1.5", "rule 1 (RATE): invalid fraction '1.5': use a number in (0, 1] such as 0.8, or a percentage such as 80%"),
            ("zero warn", "WARN 0 RATE 5/1s", "invalid fraction '0': use a number in (0, 1] such as 0.8, or a percentage such as 80%"),
            ("bad name", "RATE 5/1s NAME a:b", "rule 1 (RATE): invalid rule name 'a:b': use 1 to 64 letters, digits, '_', '.' or '-'"),
            ("bad cost", "COST 1.0000001/day", "rule 1 (COST): invalid cost '1.0000001/day': amount has more than 6 decimal places"),
            ("cost zone on window", "COST 1/1h TZ UTC", "rule 1 (COST): TZ and ANCHOR need a calendar period (minute, hour, day, week, month)"),
            ("bad lease", "LEASE 0", "rule 1 (LEASE): invalid LEASE '0': value must be greater than zero"),
            ("duplicate scope", "RATE 1/1s SCOPE a SCOPE a", "scope 'a' is given twice"),
            ("bad zone", "QUOTA 5/day TZ Mars/Olympus", "rule 1 (QUOTA): unknown time zone 'Mars/Olympus'"),
        ];
        for (label, def, want) in cases {
            match policy(def) {
                Err(e) => assert_eq!(e.0, want, "{label}"),
                Ok(_) => panic!("{label}: accepted"),
            }
        }
        assert!(Policy::parse(b"bad name", &words("RATE 1/1s")).is_err());
    }

    #[test]
    fn overrides_merge_rules_by_name() {
        let base = policy("RATE 100/1m QUOTA 1000/day SCOPE chat RATE 10/1m").unwrap();
        let o = Override::parse(
            &words("REASON \"contract 42\" RATE 5000/1m SCOPE chat RATE 50/1m LEASE 9 EXPIRE 1h"),
            Nanos(1_000),
        )
        .unwrap();
        assert_eq!(o.reason.as_deref(), Some("contract 42"));
        assert_eq!(o.expires_at, Some(Nanos(1_000 + 3_600 * Nanos::PER_SEC)));
        let m = base.body.merged(&o.body);
        let limits: Vec<(String, u64)> = m
            .applicable(Some("chat"))
            .iter()
            .map(|a| (a.rule.name.clone(), a.rule.limit.quota()))
            .collect();
        assert_eq!(
            limits,
            [
                ("rate-1m".to_owned(), 5000),
                ("quota-day".to_owned(), 1000),
                ("rate-1m".to_owned(), 50),
                ("lease".to_owned(), 9),
            ]
        );
        assert!(Override::parse(&words("REASON x"), Nanos(0)).is_err());
        assert!(Override::parse(&words("POLICY pro"), Nanos(0)).is_ok());
        let back =
            Override::parse(&words(&join_words(&o.words())), Nanos(999_999_999_999)).unwrap();
        assert_eq!(back.words(), o.words(), "EXPIREAT is absolute");
    }

    #[test]
    fn state_keys_are_unambiguous() {
        assert_eq!(
            &state_key("free", None, "rate-1m", b"alice")[..],
            b"limitkv:free::rate-1m:alice"
        );
        assert_eq!(
            &state_key("free", Some("GET /u/:id 100%"), "r", b"a:b")[..],
            b"limitkv:free:GET /u/%3Aid 100%25:r:a:b"
        );
        assert_ne!(
            state_key("p", Some("a:b"), "c", b"d"),
            state_key("p", Some("a"), "b", b"c:d")
        );
    }

    #[test]
    fn words_split_and_join_with_quotes() {
        let w = split_words(r#"a "b c" 'd e' "q\"x\\" """#).unwrap();
        assert_eq!(w, ["a", "b c", "d e", "q\"x\\", ""]);
        assert_eq!(split_words(&join_words(&w)).unwrap(), w);
        assert!(split_words("\"open").is_err());
    }

    #[test]
    fn fractions_parse_and_compare_exactly() {
        assert_eq!(Fraction::parse("0.8").unwrap(), Fraction(800_000));
        assert_eq!(Fraction::parse("80%").unwrap(), Fraction(800_000));
        assert_eq!(Fraction::parse("1").unwrap(), Fraction(1_000_000));
        assert!(Fraction::parse("0.0000005").is_err());
        let f = Fraction(800_000);
        assert!(f.reached(80, 100) && !f.reached(79, 100) && !f.reached(0, 0));
    }
}
