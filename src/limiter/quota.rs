//! QUOTA: a fixed allowance per calendar period (minute, hour, day, week, month) in a time zone.
//!
//! Owns [`Calendar`] (period boundaries in UTC, a fixed offset or an IANA zone, with an
//! optional billing anchor), which COST's calendar caps reuse, and the pure transition behind
//! `QUOTA.TAKE`/`QUOTA.PEEK`. Depends on `clock`, `decision`, `units` and `jiff` (with its
//! bundled tz database, so no system tzdata is read): no I/O, no clock reads.
//!
//! # Terms
//! - **Period**: the half-open span `[start, end)` of calendar time containing `now`.
//! - **Anchor**: where periods begin. A month starts on day `D` (1..=31, clamped to the
//!   month's last day, so day 31 means Feb 28/29, Apr 30) at `HH:MM`; a week on a weekday at
//!   `HH:MM`; a day at `HH:MM`; an hour at minute `MM`. Defaults: the 1st, Monday, 00:00, :00.
//! - **Used**: units charged in the stored period. The state keeps `used`, never `remaining`,
//!   so changing the limit mid-period keeps what was used.
//! - **Carry**: units added to this period's allowance: the previous period's unused base
//!   limit, `min(cap, limit - used_prev)`. Carried units never carry twice. A period with no
//!   record was unused, so a fresh key and a key idle for a period both carry `min(cap, limit)`:
//!   this keeps an expired state and a fresh key indistinguishable.
//! - **Allowance**: `limit + carry`, the reported `limit`.
//! - **Reset after**: the wait until the period ends and `used` starts over, reported even for
//!   an unused period (the value a `RateLimit-Reset` header wants), unlike the other families'
//!   "until fresh".
//!
//! # Boundaries
//! Day, week and month periods are computed on the zone's civil calendar, so a day containing a
//! DST change lasts 23 or 25 hours. An anchor time that falls in a DST gap resolves to the
//! instant just after the gap (jiff's "compatible" rule); one in a fold, to its first
//! occurrence. Minute and hour periods last exactly 60 s / 3600 s of real time and start where
//! the local clock (at `now`'s offset) reads :00 (or `:MM`); across a whole-hour DST change
//! this keeps every hour 3600 s long. (A zone shifting by 30 minutes, like Lord Howe, gets one
//! shortened hour at its change.)
//!
//! # Guarantees
//! - Each period admits at most its allowance.
//! - A denied take's `retry_after` is exact: the next period start if the cost fits there,
//!   else the one after (when the carry is full), else never.
//! - A clock stepping back keeps the stored period (whose `used` only grew), so it never
//!   grants capacity.

use crate::clock::Nanos;
use crate::limiter::decision::{nanos_from_i128, Decision};
use crate::limiter::units::{parse_count, UnitError};
use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::{Offset, TimeZone};
use jiff::{Span, Timestamp};

const NS_PER_SEC: i128 = Nanos::PER_SEC as i128;

/// The kind of calendar period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PeriodUnit {
    /// 60 seconds.
    Minute,
    /// 3600 seconds.
    Hour,
    /// A civil day (23, 24 or 25 hours).
    Day,
    /// Seven civil days.
    Week,
    /// A civil month (28 to 31 days).
    Month,
}

/// Why QUOTA or calendar arguments were refused. `Display` is the reply text after `ERR `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotaParamError {
    /// The count before `/` was refused.
    #[error("quota count: {0}")]
    Count(UnitError),
    /// No `/` in a quota.
    #[error("quota must look like N/period, e.g. 1000/day")]
    NotAQuota,
    /// The period name is not one of minute, hour, day, week, month.
    #[error("unknown period '{0}' (use minute, hour, day, week or month)")]
    UnknownPeriod(String),
    /// Neither `UTC`, a `+HH:MM` offset nor a known IANA zone.
    #[error("unknown time zone '{0}'")]
    UnknownTimeZone(String),
    /// An anchor not of the form the period takes.
    #[error("invalid anchor '{anchor}' for a {unit} period (expected {expected})")]
    BadAnchor {
        /// The argument as given.
        anchor: String,
        /// The period name.
        unit: &'static str,
        /// The accepted form.
        expected: &'static str,
    },
}

/// Where periods begin; which fields matter depends on the [`PeriodUnit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    /// Day of the month, 1..=31 (months only; clamped to the month's length).
    pub day: i8,
    /// First day of the week (weeks only).
    pub weekday: Weekday,
    /// Hour of the day, 0..=23 (days, weeks, months).
    pub hour: i8,
    /// Minute of the hour, 0..=59.
    pub minute: i8,
}

impl Default for Anchor {
    fn default() -> Anchor {
        Anchor {
            day: 1,
            weekday: Weekday::Monday,
            hour: 0,
            minute: 0,
        }
    }
}

impl PeriodUnit {
    /// Parses `minute`, `hour`, `day`, `week` or `month` (case-insensitive).
    pub fn parse(s: &str) -> Result<PeriodUnit, QuotaParamError> {
        PeriodUnit::from_name(s.as_bytes())
            .ok_or_else(|| QuotaParamError::UnknownPeriod(s.to_owned()))
    }

    /// The unit named `name` (case-insensitive), compared in place: QUOTA and COST parse a
    /// unit on every request.
    pub fn from_name(name: &[u8]) -> Option<PeriodUnit> {
        const UNITS: [PeriodUnit; 5] = [
            PeriodUnit::Minute,
            PeriodUnit::Hour,
            PeriodUnit::Day,
            PeriodUnit::Week,
            PeriodUnit::Month,
        ];
        UNITS
            .into_iter()
            .find(|u| name.eq_ignore_ascii_case(u.name().as_bytes()))
    }

    /// The lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            PeriodUnit::Minute => "minute",
            PeriodUnit::Hour => "hour",
            PeriodUnit::Day => "day",
            PeriodUnit::Week => "week",
            PeriodUnit::Month => "month",
        }
    }

    /// The anchor grammar for this unit, as shown in errors.
    fn anchor_form(self) -> &'static str {
        match self {
            PeriodUnit::Minute => "no anchor",
            PeriodUnit::Hour => ":MM",
            PeriodUnit::Day => "HH:MM",
            PeriodUnit::Week => "a weekday such as mon, optionally @HH:MM",
            PeriodUnit::Month => "a day 1-31, optionally @HH:MM",
        }
    }
}

/// Parses a quota such as `1000/day` into its count and period unit.
pub fn parse_quota(s: &str) -> Result<(u64, PeriodUnit), QuotaParamError> {
    let (count, unit) = s.split_once('/').ok_or(QuotaParamError::NotAQuota)?;
    let count = parse_count(count).map_err(QuotaParamError::Count)?;
    Ok((count, PeriodUnit::parse(unit)?))
}

/// Parses a zone: `UTC`/`Z`, a fixed offset `+05:30`/`-08:00`/`+05`, or an IANA name such as
/// `Europe/Berlin` from the bundled tz database.
pub fn parse_zone(s: &str) -> Result<TimeZone, QuotaParamError> {
    let unknown = || QuotaParamError::UnknownTimeZone(s.to_owned());
    if s.eq_ignore_ascii_case("utc") || s.eq_ignore_ascii_case("z") {
        return Ok(TimeZone::UTC);
    }
    if let Some(rest) = s.strip_prefix(['+', '-']) {
        let (h, m) = rest.split_once(':').unwrap_or((rest, "00"));
        let two_digits = |x: &str| -> Option<i32> {
            (x.len() == 2 && x.bytes().all(|b| b.is_ascii_digit()))
                .then(|| x.parse().ok())
                .flatten()
        };
        let (h, m) = two_digits(h).zip(two_digits(m)).ok_or_else(unknown)?;
        if h > 18 || m > 59 || (h == 18 && m > 0) {
            return Err(unknown());
        }
        let secs = (h * 3600 + m * 60) * if s.starts_with('-') { -1 } else { 1 };
        let offset = Offset::from_seconds(secs).map_err(|_| unknown())?;
        return Ok(TimeZone::fixed(offset));
    }
    TimeZone::get(s).map_err(|_| unknown())
}

/// Parses an anchor for `unit` (see [`PeriodUnit`] and the module's terms): `:MM` for hours,
/// `HH:MM` for days, `mon[@HH:MM]` for weeks, `17[@HH:MM]` for months. Minutes take none.
pub fn parse_anchor(unit: PeriodUnit, s: &str) -> Result<Anchor, QuotaParamError> {
    let bad = || QuotaParamError::BadAnchor {
        anchor: s.to_owned(),
        unit: unit.name(),
        expected: unit.anchor_form(),
    };
    let number = |x: &str, max: i8| -> Option<i8> {
        let ok = (1..=2).contains(&x.len()) && x.bytes().all(|b| b.is_ascii_digit());
        ok.then(|| x.parse::<i8>().ok())
            .flatten()
            .filter(|&n| n <= max)
    };
    let hh_mm = |x: &str| -> Option<(i8, i8)> {
        let (h, m) = x.split_once(':')?;
        Some((number(h, 23)?, number(m, 59)?))
    };
    let mut a = Anchor::default();
    match unit {
        PeriodUnit::Minute => return Err(bad()),
        PeriodUnit::Hour => {
            a.minute = s
                .strip_prefix(':')
                .and_then(|m| number(m, 59))
                .ok_or_else(bad)?;
        }
        PeriodUnit::Day => (a.hour, a.minute) = hh_mm(s).ok_or_else(bad)?,
        PeriodUnit::Week | PeriodUnit::Month => {
            let (head, time) = match s.split_once('@') {
                Some((head, t)) => (head, hh_mm(t).ok_or_else(bad)?),
                None => (s, (0, 0)),
            };
            (a.hour, a.minute) = time;
            if unit == PeriodUnit::Week {
                a.weekday = parse_weekday(head).ok_or_else(bad)?;
            } else {
                a.day = number(head, 31).filter(|&d| d >= 1).ok_or_else(bad)?;
            }
        }
    }
    Ok(a)
}

fn parse_weekday(s: &str) -> Option<Weekday> {
    const NAMES: [(&str, &str, Weekday); 7] = [
        ("mon", "monday", Weekday::Monday),
        ("tue", "tuesday", Weekday::Tuesday),
        ("wed", "wednesday", Weekday::Wednesday),
        ("thu", "thursday", Weekday::Thursday),
        ("fri", "friday", Weekday::Friday),
        ("sat", "saturday", Weekday::Saturday),
        ("sun", "sunday", Weekday::Sunday),
    ];
    let s = s.to_ascii_lowercase();
    NAMES
        .iter()
        .find(|(short, long, _)| s == *short || s == *long)
        .map(|&(_, _, w)| w)
}

/// A half-open span of time `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    /// First instant of the period.
    pub start: Nanos,
    /// First instant after the period (the next period's start).
    pub end: Nanos,
}

/// Calendar periods of one unit in one zone, with an anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    unit: PeriodUnit,
    tz: TimeZone,
    anchor: Anchor,
    /// `tz`'s offset in seconds when it never changes (UTC, `+05:30`): its days and weeks are
    /// then fixed-length periods, computed without calendar arithmetic.
    fixed_offset_s: Option<i32>,
}

impl Calendar {
    /// Periods of `unit` in `tz`, starting at `anchor` (see [`parse_anchor`]).
    pub fn new(unit: PeriodUnit, tz: TimeZone, anchor: Anchor) -> Calendar {
        // Only days and weeks use it; other zones would build an error value here.
        let fixed_offset_s = match unit {
            PeriodUnit::Day | PeriodUnit::Week => tz.to_fixed_offset().ok().map(|o| o.seconds()),
            _ => None,
        };
        Calendar {
            unit,
            tz,
            anchor,
            fixed_offset_s,
        }
    }

    /// UTC periods with the default anchor.
    pub fn utc(unit: PeriodUnit) -> Calendar {
        Calendar::new(unit, TimeZone::UTC, Anchor::default())
    }

    /// The period unit.
    pub fn unit(&self) -> PeriodUnit {
        self.unit
    }

    /// The period containing `now`: `start <= now < end`.
    pub fn period_at(&self, now: Nanos) -> Period {
        let minute = i128::from(self.anchor.minute) * 60;
        let time_s = i128::from(self.anchor.hour) * 3600 + minute;
        let (start, end) = match (self.unit, self.fixed_offset_s) {
            (PeriodUnit::Minute, _) => self.fixed_period(now, 60, 0),
            (PeriodUnit::Hour, _) => self.fixed_period(now, 3600, minute),
            // Without DST a civil day is 86400 s and a week 7 of them: the same boundaries as
            // `civil_period`, without converting to and from civil time.
            (PeriodUnit::Day, Some(offset)) => offset_period(now, offset, DAY_S, time_s),
            (PeriodUnit::Week, Some(offset)) => {
                // 1970-01-01, day 0 of the Unix epoch, was a Thursday.
                let thursday = Weekday::Thursday.to_monday_zero_offset();
                let days = (self.anchor.weekday.to_monday_zero_offset() - thursday).rem_euclid(7);
                offset_period(now, offset, 7 * DAY_S, i128::from(days) * DAY_S + time_s)
            }
            (PeriodUnit::Day | PeriodUnit::Week | PeriodUnit::Month, _) => self.civil_period(now),
        };
        Period {
            start: nanos_from_i128(start),
            end: nanos_from_i128(end),
        }
    }

    /// A real-time period of `len_s` seconds starting where the local clock at `now`'s offset
    /// reads `anchor_s` past a multiple of `len_s`.
    fn fixed_period(&self, now: Nanos, len_s: i128, anchor_s: i128) -> (i128, i128) {
        let offset = self.tz.to_offset(timestamp(i128::from(now.0))).seconds();
        offset_period(now, offset, len_s, anchor_s)
    }

    /// A civil period: the anchored start on or before `now`'s local date, stepped back once if
    /// that instant is still ahead of `now`, and the next anchored start.
    fn civil_period(&self, now: Nanos) -> (i128, i128) {
        let now = i128::from(now.0);
        let date = self.tz.to_datetime(timestamp(now)).date();
        let mut first = match self.unit {
            PeriodUnit::Week => {
                let back = (date.weekday().to_monday_zero_offset()
                    - self.anchor.weekday.to_monday_zero_offset())
                .rem_euclid(7);
                add_days(date, -i64::from(back))
            }
            PeriodUnit::Month => self.anchored_month(date.year(), date.month()),
            _ => date,
        };
        let mut start = self.instant(first);
        if start > now {
            first = self.step(first, -1);
            start = self.instant(first);
        }
        (start, self.instant(self.step(first, 1)))
    }

    /// The first civil date of the period `by` periods after the one starting on `first`.
    fn step(&self, first: Date, by: i8) -> Date {
        match self.unit {
            PeriodUnit::Week => add_days(first, 7 * i64::from(by)),
            PeriodUnit::Month => {
                let months = i32::from(first.year()) * 12 + i32::from(first.month()) - 1;
                let m = months + i32::from(by);
                // The year stays within jiff's range: `first` comes from a u64 instant (year
                // <= 2554), one month away.
                let year = i16::try_from(m.div_euclid(12)).expect("year within jiff's range");
                self.anchored_month(year, (m.rem_euclid(12) + 1) as i8)
            }
            _ => add_days(first, i64::from(by)),
        }
    }

    /// The anchor day of `year`-`month`, clamped to the month's last day.
    fn anchored_month(&self, year: i16, month: i8) -> Date {
        let last = Date::new(year, month, 1)
            .expect("month is 1..=12 and year within jiff's range")
            .days_in_month();
        Date::new(year, month, self.anchor.day.min(last)).expect("day clamped to the month")
    }

    /// The instant the local clock reads the anchor time on `date` (gap: just after; fold:
    /// first occurrence), in ns since the epoch.
    fn instant(&self, date: Date) -> i128 {
        let time = Time::new(self.anchor.hour, self.anchor.minute, 0, 0)
            .expect("anchor hour and minute were range-checked");
        self.tz
            .to_ambiguous_timestamp(DateTime::from_parts(date, time))
            .compatible()
            .expect("dates derived from a u64 instant are within jiff's range")
            .as_nanosecond()
    }
}

/// Seconds in a day without a DST change.
const DAY_S: i128 = 86_400;

/// The period of `len_s` seconds containing `now`, starting where a clock at UTC offset
/// `offset_s` reads `anchor_s` past a multiple of `len_s` (counted from the Unix epoch).
fn offset_period(now: Nanos, offset_s: i32, len_s: i128, anchor_s: i128) -> (i128, i128) {
    let now = i128::from(now.0);
    let len = len_s * NS_PER_SEC;
    let into = (now + (i128::from(offset_s) - anchor_s) * NS_PER_SEC).rem_euclid(len);
    (now - into, now - into + len)
}

/// A jiff timestamp for `ns` since the epoch; `ns` comes from a `u64`, which jiff's range
/// (years -9999..=9999) always holds.
fn timestamp(ns: i128) -> Timestamp {
    Timestamp::from_nanosecond(ns).expect("u64 nanoseconds are within jiff's range")
}

fn add_days(date: Date, days: i64) -> Date {
    date.checked_add(Span::new().days(days))
        .expect("dates derived from a u64 instant are within jiff's range")
}

/// Checked QUOTA parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaParams {
    limit: u64,
    calendar: Calendar,
    carry_cap: u64,
}

impl QuotaParams {
    /// `limit` units per period of `calendar`, carrying at most `carry_cap` unused units from
    /// the previous period (0: no carry-over).
    pub fn new(limit: u64, calendar: Calendar, carry_cap: u64) -> Result<QuotaParams, UnitError> {
        if limit == 0 {
            return Err(UnitError::Zero);
        }
        Ok(QuotaParams {
            limit,
            calendar,
            carry_cap,
        })
    }

    /// The base limit per period.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The calendar.
    pub fn calendar(&self) -> &Calendar {
        &self.calendar
    }

    /// The carry-over cap.
    pub fn carry_cap(&self) -> u64 {
        self.carry_cap
    }

    /// Units carried into a period whose predecessor used `prev_used`.
    fn carry_after(&self, prev_used: u64) -> u64 {
        self.carry_cap.min(self.limit.saturating_sub(prev_used))
    }
}

/// What the store keeps for a QUOTA key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaState {
    /// The period `used` belongs to.
    pub period: Period,
    /// Units charged in the period.
    pub used: u64,
    /// Units carried into the period.
    pub carry: u64,
}

/// A QUOTA decision plus the family extras.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaOutcome {
    /// The shared fields; `limit` is the allowance (base limit + carry).
    pub decision: Decision,
    /// The period the decision was made in.
    pub period: Period,
    /// Units used in the period after this decision.
    pub used: u64,
    /// Units carried into the period.
    pub carry: u64,
}

/// The instant at which `state` no longer matters: its period's end, or the next period's end
/// while its unused units would still raise the next period's carry above that of a fresh key.
pub fn expires_at(params: &QuotaParams, state: &QuotaState) -> Nanos {
    if params.carry_after(state.used) == params.carry_after(0) {
        state.period.end
    } else {
        params.calendar.period_at(state.period.end).end
    }
}

/// Runs one QUOTA transition for `cost` units at `now`.
///
/// Returns the outcome and the state to write: `Some` only when a take with `cost > 0` is
/// admitted; it expires at [`expires_at`]. Peek is the same call with the state discarded.
pub fn take(
    params: &QuotaParams,
    state: Option<QuotaState>,
    now: Nanos,
    cost: u64,
) -> (QuotaOutcome, Option<QuotaState>) {
    let view = view(params, state, now);
    let allowance = params.limit.saturating_add(view.carry);
    let reset_after = view.period.end.saturating_sub(now);
    let used = view.used.checked_add(cost).filter(|&u| u <= allowance);
    let (decision, new) = match used {
        Some(used) => {
            let d = Decision::allow(allowance, allowance - used, reset_after);
            let new = (cost > 0).then_some(QuotaState { used, ..view });
            (d, new)
        }
        None => {
            let remaining = allowance.saturating_sub(view.used);
            let retry = retry_at(params, &view, cost).map(|t| t.saturating_sub(now));
            (
                Decision::deny(allowance, remaining, retry, reset_after),
                None,
            )
        }
    };
    let used = new.map_or(view.used, |s| s.used);
    let outcome = QuotaOutcome {
        decision,
        period: view.period,
        used,
        carry: view.carry,
    };
    (outcome, new)
}

/// The state as seen at `now`: the stored period while it lasts, else the current period
/// with nothing used and the carry its predecessor earned.
fn view(params: &QuotaParams, state: Option<QuotaState>, now: Nanos) -> QuotaState {
    match state {
        // The stored period stands until its end, also when the clock stepped back into or
        // before it. This is the hot path: no time zone arithmetic.
        Some(s) if now < s.period.end => s,
        Some(s) => {
            let current = params.calendar.period_at(now);
            let prev_used = if s.period.end == current.start {
                s.used
            } else {
                0
            };
            QuotaState {
                period: current,
                used: 0,
                carry: params.carry_after(prev_used),
            }
        }
        None => QuotaState {
            period: params.calendar.period_at(now),
            used: 0,
            carry: params.carry_after(0),
        },
    }
}

/// Charges (`delta > 0`, even past the allowance) or refunds (`delta < 0`, never below zero)
/// `|delta|` units in the period containing `now`, without deciding anything: the settle of a
/// reservation. A refund after the charged period ended finds nothing to refund. Returns the
/// state to write, or `None` when the result reads exactly as a fresh key.
pub fn adjust(
    params: &QuotaParams,
    state: Option<QuotaState>,
    now: Nanos,
    delta: i64,
) -> Option<QuotaState> {
    let v = view(params, state, now);
    let used = if delta >= 0 {
        v.used.saturating_add(delta.unsigned_abs())
    } else {
        v.used.saturating_sub(delta.unsigned_abs())
    };
    let fresh = used == 0 && v.carry == params.carry_after(0);
    (!fresh).then_some(QuotaState { used, ..v })
}

/// When `cost` first fits after `view`'s period with no other traffic, or `None` if never.
fn retry_at(params: &QuotaParams, view: &QuotaState, cost: u64) -> Option<Nanos> {
    let fits = |carry: u64| cost <= params.limit.saturating_add(carry);
    if fits(params.carry_after(view.used)) {
        Some(view.period.end)
    } else if fits(params.carry_after(0)) {
        // The next period goes unused, so the one after it carries the full cap.
        Some(params.calendar.period_at(view.period.end).end)
    } else {
        None
    }
}

#[cfg(test)]
#[path = "quota_tests.rs"]
mod tests;
