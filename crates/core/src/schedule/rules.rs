//! The one rule for schedules: whether a schedule (a preset or a cron, with its
//! timezone) is valid, and the plan it compiles to.
//!
//! Manifest validation (the default schedule and the offered presets), job
//! writes and the scheduler all go through [`Plan::compile`]. Before, the
//! manifest had a copy of some of these rules, so a default schedule the
//! scheduler refuses (an unknown timezone, both day fields restricted) was
//! published, and every job created without a schedule was then refused.
//! [`offered`] is the other half: what a manifest's `schedule` section lets a
//! schedule be, checked for the default and for jobs alike.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds, Year};
use jiff::tz::TimeZone;

use super::{preset_name, Plan, ScheduleError};
use crate::manifest::{CronSchedule, Preset, Schedule, ScheduleSpec, SimpleSchedule, Weekday};

impl ScheduleError {
    fn at(field: &'static str, message: String) -> Self {
        ScheduleError { field: Some(field), message }
    }

    fn whole(message: String) -> Self {
        ScheduleError { field: None, message }
    }
}

impl Plan {
    /// The plan of a schedule, or why the schedule cannot be used.
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
            .map_err(|e| ScheduleError::at("cron", format!("invalid cron `{expression}`: {e}")))?;
        let key: Arc<str> = format!("{expression}|{tz_name}").into();
        let plan = Plan { cron, expression, tz, tz_name, source: schedule.clone(), key };
        // Checked once against a fixed instant, so "never" does not depend on today.
        let probe = DateTime::<Utc>::from_timestamp(1_704_067_200, 0).unwrap_or_default();
        if plan.next_after(probe).is_none() {
            let message = format!("cron `{}` never fires (no such date)", plan.expression);
            return Err(ScheduleError::at("cron", message));
        }
        Ok(plan)
    }
}

/// Whether a manifest's `schedule` section lets a schedule be used: a preset it
/// offers (every preset when `presets` is omitted), a cron only with
/// `allow_cron`. `by` names the offer in messages, e.g. `integration 'crm-sync'`.
pub fn offered(spec: &ScheduleSpec, schedule: &Schedule, by: &str) -> Result<(), ScheduleError> {
    match schedule {
        Schedule::Simple(s) => match &spec.presets {
            Some(presets) if !presets.contains(&s.preset) => {
                let names: Vec<String> = presets.iter().map(|p| format!("`{}`", preset_name(*p))).collect();
                let preset = preset_name(s.preset);
                let message = format!("preset `{preset}` is not offered by {by}; it offers {}", names.join(", "));
                Err(ScheduleError::at("preset", message))
            }
            _ => Ok(()),
        },
        Schedule::Cron(_) if !spec.allow_cron => Err(ScheduleError::whole(format!(
            "{by} does not allow cron schedules (`allow_cron: false`); choose a preset"
        ))),
        Schedule::Cron(_) => Ok(()),
    }
}

/// A preset with nothing else set: what choosing it from a manifest's offer
/// starts from.
pub fn bare(preset: Preset) -> Schedule {
    Schedule::Simple(SimpleSchedule { preset, at: None, day: None, timezone: None })
}

/// The timezone of an IANA name (from the tz database bundled into the binary by
/// jiff), and the name. Names are matched exactly, capitalisation included
/// (jiff alone ignores case), so the name EventBridge Scheduler is given is the
/// one the database spells.
fn timezone_of(name: Option<&str>) -> Result<(TimeZone, String), ScheduleError> {
    let name = name.unwrap_or("UTC");
    match TimeZone::get(name) {
        Ok(tz) if tz.iana_name() == Some(name) => Ok((tz, name.to_owned())),
        _ => Err(ScheduleError::at(
            "timezone",
            format!(
                "unknown timezone `{name}`: use an IANA timezone name such as `UTC`, `Europe/Paris` or \
                 `America/New_York`"
            ),
        )),
    }
}

fn preset_expression(s: &SimpleSchedule) -> Result<String, ScheduleError> {
    let anchored = matches!(s.preset, Preset::Daily | Preset::Weekly);
    if s.at.is_some() && !anchored {
        let message = format!("`at` only applies to the `daily` and `weekly` presets, not `{}`", preset_name(s.preset));
        return Err(ScheduleError::at("at", message));
    }
    if s.day.is_some() && s.preset != Preset::Weekly {
        let message = format!("`day` only applies to the `weekly` preset, not `{}`", preset_name(s.preset));
        return Err(ScheduleError::at("day", message));
    }
    let (hour, minute) = match &s.at {
        Some(at) => parse_hh_mm(at).ok_or_else(|| {
            let message = format!("`at` must be a time of day as HH:MM on a 24-hour clock, e.g. `06:30`; got `{at}`");
            ScheduleError::at("at", message)
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
        let message = format!(
            "invalid cron `{}`: {problem} (five fields: minute hour day-of-month month day-of-week, e.g. `0 6 * * 1-5`)",
            c.cron
        );
        return Err(ScheduleError::at("cron", message));
    }
    let fields: Vec<&str> = expr.split(' ').collect();
    let restricted = |f: &str| f != "*";
    if restricted(fields[2]) && restricted(fields[4]) {
        // Cron's "either day matches" rule cannot be expressed in EventBridge
        // Scheduler, which runs every schedule on AWS.
        let message = format!(
            "invalid cron `{}`: restrict the day of month or the day of week, not both (set one of them to `*`)",
            c.cron
        );
        return Err(ScheduleError::at("cron", message));
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

/// `HH:MM` on a 24-hour clock, as (hour, minute).
fn parse_hh_mm(s: &str) -> Option<(u32, u32)> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 || !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some((h, m))
}

/// What is wrong with a 5-field cron expression, if anything. Each field is a
/// comma-separated list of `*`, `n`, `a-b`, each optionally `/step`; months and
/// weekdays may also be names (`JAN`, `MON`). Checked before croner parses it,
/// for messages that name the field and the range.
fn cron_problem(expr: &str) -> Option<String> {
    let parts: Vec<&str> = expr.split_whitespace().collect();
    if parts.len() != 5 {
        return Some(format!("cron `{expr}` has {} field(s); it needs 5", parts.len()));
    }
    parts.iter().zip(CRON_FIELDS).find_map(|(part, field)| field_problem(part, field))
}

/// A cron field: its name, its range, and the names its values may have.
type CronField = (&'static str, u32, u32, &'static [&'static str]);

const CRON_FIELDS: [CronField; 5] = [
    ("minute", 0, 59, &[]),
    ("hour", 0, 23, &[]),
    ("day of month", 1, 31, &[]),
    ("month", 1, 12, &["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]),
    ("day of week", 0, 7, &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]),
];

fn field_problem(part: &str, (name, lo, hi, names): CronField) -> Option<String> {
    let value = |v: &str| -> Option<u32> {
        let offset = if name == "month" { 1 } else { 0 };
        v.parse().ok().or_else(|| names.iter().position(|n| n.eq_ignore_ascii_case(v)).map(|i| i as u32 + offset))
    };
    for item in part.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (item, None),
        };
        if step.is_some_and(|s| !s.parse::<u32>().is_ok_and(|n| n > 0)) {
            return Some(format!("cron {name} `{item}` has an invalid step"));
        }
        if range == "*" {
            continue;
        }
        let bounds: Option<Vec<u32>> = range.splitn(2, '-').map(value).collect();
        match bounds.as_deref() {
            Some([a]) | Some([a, _]) if *a < lo || *a > hi => {
                return Some(format!("cron {name} `{a}` is out of range {lo}-{hi}"))
            }
            Some([_, b]) if *b < lo || *b > hi => return Some(format!("cron {name} `{b}` is out of range {lo}-{hi}")),
            Some([a, b]) if a > b => return Some(format!("cron {name} range `{range}` runs backwards")),
            Some(_) => {}
            None => return Some(format!("cron {name} `{item}` is not a number, range or `*`")),
        }
    }
    None
}
