//! Schedules compiled into fire times.
//!
//! Every schedule, preset or cron, becomes one 5-field cron expression
//! evaluated on the wall clock of an IANA timezone. Fire times are anchored:
//! they follow from the schedule alone, never from when the last run happened,
//! so nothing drifts, and the embedded scheduler and EventBridge Scheduler
//! agree on every tick. Daylight saving time follows EventBridge Scheduler's
//! rules: a wall time skipped by the spring-forward gap does not fire, and a
//! wall time repeated by the fall-back overlap fires once (the first time).

pub mod eventbridge;
mod words;

use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Timelike, Utc};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use jiff::tz::{AmbiguousOffset, TimeZone};

use crate::manifest::checks::{cron_problem, parse_hh_mm};
use crate::manifest::{CronSchedule, Preset, Schedule, SimpleSchedule, Weekday};

/// Why a schedule cannot be used; the message names the problem and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScheduleError(pub String);

/// A checked schedule, ready to compute fire times.
#[derive(Debug, Clone)]
pub struct Plan {
    cron: Cron,
    /// The 5-field expression the schedule amounts to (presets translated).
    expression: String,
    tz: TimeZone,
    /// The timezone's IANA name, e.g. `Europe/Vienna`.
    tz_name: String,
    source: Schedule,
    /// `expression` and timezone: equal keys fire at equal times.
    key: Arc<str>,
}

/// Candidates skipped in a row before giving up (gaps and overlaps skip a few).
const MAX_SKIPS: usize = 1000;

impl Plan {
    pub fn compile(schedule: &Schedule) -> Result<Plan, ScheduleError> {
        let (expression, timezone) = match schedule {
            Schedule::Simple(s) => (preset_expression(s)?, s.timezone.as_deref()),
            Schedule::Cron(c) => (cron_expression(c)?, c.timezone.as_deref()),
        };
        let (tz, tz_name) = timezone_of(timezone)?;
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(&expression)
            .map_err(|e| ScheduleError(format!("invalid cron `{expression}`: {e}")))?;
        let key: Arc<str> = format!("{expression}|{tz_name}").into();
        let plan = Plan { cron, expression, tz, tz_name, source: schedule.clone(), key };
        // Checked once against a fixed instant, so "never" does not depend on today.
        let probe = DateTime::<Utc>::from_timestamp(1_704_067_200, 0).unwrap_or_default();
        if plan.next_after(probe).is_none() {
            return Err(ScheduleError(format!("cron `{}` never fires (no such date)", plan.expression)));
        }
        Ok(plan)
    }

    /// The first fire time strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Cron matches wall-clock times. Starting at the wall time of `after`
        // is enough: an earlier wall time never maps to a later instant.
        let mut cursor = naive(self.tz.to_datetime(timestamp(after)?))?;
        for _ in 0..MAX_SKIPS {
            let candidate = self.cron.find_next_occurrence(&cursor, false).ok()?;
            let wall = civil(candidate)?;
            match self.tz.to_ambiguous_timestamp(wall).offset() {
                // In a fall-back overlap, the offset before the transition gives the first
                // (earlier) of the two instants.
                AmbiguousOffset::Unambiguous { offset } | AmbiguousOffset::Fold { before: offset, .. } => {
                    let t = utc(offset.to_timestamp(wall).ok()?)?;
                    if t > after {
                        return Some(t);
                    }
                    // The second pass through a fall-back overlap: already fired.
                }
                // A wall time that does not exist this day (spring forward): skipped.
                AmbiguousOffset::Gap { .. } => {}
            }
            cursor = candidate;
        }
        None
    }

    /// The next `n` fire times after `after`.
    pub fn upcoming(&self, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(n);
        let mut t = after;
        while out.len() < n {
            match self.next_after(t) {
                Some(next) => {
                    out.push(next);
                    t = next;
                }
                None => break,
            }
        }
        out
    }

    /// The schedule in words, e.g. "every 15 minutes" or "daily at 06:30 (Europe/Vienna)".
    pub fn describe(&self) -> String {
        words::describe(self)
    }

    /// The 5-field cron expression the schedule amounts to.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The IANA name of the timezone the schedule's wall-clock times are in.
    pub fn timezone(&self) -> &str {
        &self.tz_name
    }

    pub fn schedule(&self) -> &Schedule {
        &self.source
    }

    /// Plans with equal keys fire at exactly the same times.
    pub fn key(&self) -> &Arc<str> {
        &self.key
    }

    pub(crate) fn cron(&self) -> &Cron {
        &self.cron
    }
}

/// The timezone of an IANA name (from the tz database bundled into the binary by
/// jiff), and the name. Names are matched exactly, capitalisation included
/// (jiff alone ignores case), so the name EventBridge Scheduler is given is the
/// one the database spells.
fn timezone_of(name: Option<&str>) -> Result<(TimeZone, String), ScheduleError> {
    let name = name.unwrap_or("UTC");
    match TimeZone::get(name) {
        Ok(tz) if tz.iana_name() == Some(name) => Ok((tz, name.to_owned())),
        _ => Err(ScheduleError(format!(
            "unknown timezone `{name}`: use an IANA timezone name such as `UTC`, `Europe/Paris` or `America/New_York`"
        ))),
    }
}

// Cron matching (croner) works on chrono's wall times, timezones (jiff) on
// jiff's civil times and timestamps; these convert between the two.

fn timestamp(t: DateTime<Utc>) -> Option<jiff::Timestamp> {
    jiff::Timestamp::new(t.timestamp(), i32::try_from(t.timestamp_subsec_nanos()).ok()?).ok()
}

fn utc(t: jiff::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.as_second(), u32::try_from(t.subsec_nanosecond()).ok()?)
}

fn naive(t: jiff::civil::DateTime) -> Option<NaiveDateTime> {
    let date = NaiveDate::from_ymd_opt(t.year().into(), t.month().try_into().ok()?, t.day().try_into().ok()?)?;
    let nanos = u32::try_from(t.subsec_nanosecond()).ok()?;
    date.and_hms_nano_opt(t.hour().try_into().ok()?, t.minute().try_into().ok()?, t.second().try_into().ok()?, nanos)
}

fn civil(t: NaiveDateTime) -> Option<jiff::civil::DateTime> {
    jiff::civil::DateTime::new(
        t.year().try_into().ok()?,
        t.month().try_into().ok()?,
        t.day().try_into().ok()?,
        t.hour().try_into().ok()?,
        t.minute().try_into().ok()?,
        t.second().try_into().ok()?,
        t.nanosecond().try_into().ok()?,
    )
    .ok()
}

fn preset_expression(s: &SimpleSchedule) -> Result<String, ScheduleError> {
    let anchored = matches!(s.preset, Preset::Daily | Preset::Weekly);
    if s.at.is_some() && !anchored {
        return Err(ScheduleError(format!(
            "`at` only applies to the `daily` and `weekly` presets, not `{}`",
            preset_name(s.preset)
        )));
    }
    if s.day.is_some() && s.preset != Preset::Weekly {
        return Err(ScheduleError(format!(
            "`day` only applies to the `weekly` preset, not `{}`",
            preset_name(s.preset)
        )));
    }
    let (hour, minute) = match &s.at {
        Some(at) => parse_hh_mm(at).ok_or_else(|| {
            ScheduleError(format!("`at` must be a time of day as HH:MM on a 24-hour clock, e.g. `06:30`; got `{at}`"))
        })?,
        None => (0, 0),
    };
    Ok(match s.preset {
        Preset::Every5Minutes => "*/5 * * * *".into(),
        Preset::Every10Minutes => "*/10 * * * *".into(),
        Preset::Every15Minutes => "*/15 * * * *".into(),
        Preset::Every30Minutes => "*/30 * * * *".into(),
        Preset::Hourly => "0 * * * *".into(),
        Preset::Every2Hours => "0 */2 * * *".into(),
        Preset::Every4Hours => "0 */4 * * *".into(),
        Preset::Every6Hours => "0 */6 * * *".into(),
        Preset::Every12Hours => "0 */12 * * *".into(),
        Preset::Daily => format!("{minute} {hour} * * *"),
        Preset::Weekly => format!("{minute} {hour} * * {}", weekday_number(s.day.unwrap_or(Weekday::Monday))),
    })
}

fn cron_expression(c: &CronSchedule) -> Result<String, ScheduleError> {
    let expr = c.cron.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some(problem) = cron_problem(&expr) {
        return Err(ScheduleError(format!(
            "invalid cron `{}`: {problem} (five fields: minute hour day-of-month month day-of-week, e.g. `0 6 * * 1-5`)",
            c.cron
        )));
    }
    let fields: Vec<&str> = expr.split(' ').collect();
    let restricted = |f: &str| f != "*";
    if restricted(fields[2]) && restricted(fields[4]) {
        // Cron's "either day matches" rule cannot be expressed in EventBridge
        // Scheduler, which runs every schedule on AWS.
        return Err(ScheduleError(format!(
            "invalid cron `{}`: restrict the day of month or the day of week, not both (set one of them to `*`)",
            c.cron
        )));
    }
    Ok(expr)
}

/// Cron's day-of-week number (Sunday = 0).
fn weekday_number(d: Weekday) -> u8 {
    match d {
        Weekday::Sunday => 0,
        Weekday::Monday => 1,
        Weekday::Tuesday => 2,
        Weekday::Wednesday => 3,
        Weekday::Thursday => 4,
        Weekday::Friday => 5,
        Weekday::Saturday => 6,
    }
}

pub fn preset_name(p: Preset) -> String {
    serde_json::to_value(p).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}
