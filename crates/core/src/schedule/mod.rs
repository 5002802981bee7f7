//! Schedules compiled into fire times.
//!
//! Every schedule, preset or cron, becomes one 5-field cron expression
//! evaluated on the wall clock of an IANA timezone. Fire times are anchored:
//! they follow from the schedule alone, never from when the last run happened,
//! so nothing drifts, and the embedded scheduler and EventBridge Scheduler
//! agree on every tick. Daylight saving time follows EventBridge Scheduler's
//! rules: a wall time skipped by the spring-forward gap does not fire, and a
//! wall time repeated by the fall-back overlap fires once (the first time).
//!
//! Whether a schedule is valid at all is decided in one place, `rules.rs`
//! ([`Plan::compile`]), for manifests, jobs and the scheduler alike.

pub mod eventbridge;
mod rules;
mod words;

use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Timelike, Utc};
use croner::Cron;
use jiff::tz::{AmbiguousOffset, TimeZone};

pub use rules::{bare, offered};

use crate::manifest::{Preset, Schedule};

/// Why a schedule cannot be used; the message names the problem and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ScheduleError {
    /// The schedule's key at fault (`cron`, `at`, `day`, `timezone`, `preset`),
    /// so a manifest diagnostic can point at its line; `None` for the whole schedule.
    pub field: Option<&'static str>,
    pub message: String,
}

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

pub fn preset_name(p: Preset) -> String {
    serde_json::to_value(p).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}
