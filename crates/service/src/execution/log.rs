//! A run's log: structured lines (time, level, flow, message, optional
//! record id) appended as it executes (by the lifecycle and every executor),
//! stored once per slice.
//!
//! **The cap.** A run keeps at most [`MAX_LOG_LINES`] lines: the first half
//! and the last half of everything it logged, across its continuations. The
//! lines in between are dropped and counted; the API says so (`truncated`,
//! `dropped`).
//!
//! **Levels.** Executors log text; a line's level is read from its words
//! ([`level_of`]): failures and refusals are `error`, stops and skips are
//! `warn`, the rest `info`. A line written as `[flow] message` is the flow's.
//!
//! **Older logs.** Logs stored before lines were structured are plain
//! strings; they are served as lines without a time, their flow and level
//! read from their text as above.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use std::sync::Arc;

use crate::repo::{keys, records};
use crate::Hub;
use ferry_core::error::{Error, Result};
use ferry_core::model::Run;
use ferry_core::ports::{Clock, Condition, Store};

/// Most lines a run's log keeps (the first and the last half).
pub const MAX_LOG_LINES: usize = 2000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    Info,
    Warn,
    Error,
}

/// One line of a run's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LogLine {
    /// When it was logged (absent on lines stored before lines had times).
    pub time: Option<DateTime<Utc>>,
    pub level: LogLevel,
    /// The flow it is about, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<String>,
    pub message: String,
    /// The source record it is about, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
}

impl LogLine {
    /// A line from text: `[flow] message` names its flow; the level comes from its words.
    pub fn from_text(time: Option<DateTime<Utc>>, text: String) -> Self {
        let (flow, message) = match text.strip_prefix('[').and_then(|rest| rest.split_once("] ")) {
            Some((flow, message)) if !flow.is_empty() && !flow.contains(char::is_whitespace) => {
                (Some(flow.to_owned()), message.to_owned())
            }
            _ => (None, text),
        };
        LogLine { time, level: level_of(&message), flow, message, record: None }
    }
}

/// The level a line's words say: failures and refusals are errors, stops
/// and skips warnings, anything else information.
pub fn level_of(message: &str) -> LogLevel {
    let m = message.to_ascii_lowercase();
    const ERRORS: [&str; 6] = ["failed", "refused", "could not", "unavailable", "stalled", "not mapped"];
    const WARNINGS: [&str; 6] = ["stopped", "skipped", "interrupted", "cancelled", "partial", "larger than"];
    if ERRORS.iter().any(|w| m.contains(w)) {
        LogLevel::Error
    } else if WARNINGS.iter().any(|w| m.contains(w)) || m.starts_with("no ") {
        LogLevel::Warn
    } else {
        LogLevel::Info
    }
}

/// A stored line: structured, or the plain text older builds stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum StoredLine {
    Line(LogLine),
    Text(String),
}

/// A run's log as stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct StoredLog {
    lines: Vec<StoredLine>,
    /// Lines dropped from the middle to keep the cap.
    #[serde(default)]
    dropped: u64,
}

impl StoredLog {
    fn into_lines(self) -> (Vec<LogLine>, u64) {
        let lines = self
            .lines
            .into_iter()
            .map(|l| match l {
                StoredLine::Line(line) => line,
                StoredLine::Text(text) => LogLine::from_text(None, text),
            })
            .collect();
        (lines, self.dropped)
    }
}

/// What to show of a run's log: every filter given must hold.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogFilter {
    /// Lines of this level or above: `info`, `warn`, `error`.
    pub level: Option<String>,
    /// Lines of this flow.
    pub flow: Option<String>,
    /// Lines whose message contains this text (case-insensitive).
    pub q: Option<String>,
}

/// A run's log, as the API serves it.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct RunLogs {
    /// The lines kept that match the filters, in order.
    pub lines: Vec<LogLine>,
    /// Whether lines were dropped to keep the cap (`dropped` of them, from the middle).
    pub truncated: bool,
    pub dropped: u64,
    /// The most lines a run keeps: the first and the last half of its log.
    pub cap: usize,
}

impl RunLogs {
    fn new(lines: Vec<LogLine>, dropped: u64, filter: &LogFilter) -> Result<Self> {
        let level = match filter.level.as_deref() {
            None => None,
            Some(l) => {
                Some(serde_json::from_value::<LogLevel>(serde_json::Value::String(l.to_owned())).map_err(|_| {
                    Error::invalid(
                        "invalid_filter",
                        format!("level: '{l}' is not a log level; use info, warn or error"),
                    )
                })?)
            }
        };
        let q = filter.q.as_deref().filter(|q| !q.is_empty()).map(str::to_lowercase);
        let lines = lines
            .into_iter()
            .filter(|l| level.is_none_or(|min| l.level >= min))
            .filter(|l| filter.flow.as_ref().is_none_or(|f| l.flow.as_ref() == Some(f)))
            .filter(|l| q.as_ref().is_none_or(|q| l.message.to_lowercase().contains(q)))
            .collect();
        Ok(RunLogs { lines, truncated: dropped > 0, dropped, cap: MAX_LOG_LINES })
    }
}

/// The log of a run executing here. Appending takes `&self`: every part of
/// the execution writes to it while reading the rest of the run's context.
/// Lines take their time from the hub's clock.
pub(crate) struct RunLog(std::sync::Mutex<Lines>, Arc<dyn Clock>);

#[derive(Default)]
pub(crate) struct Lines {
    pub(crate) lines: Vec<LogLine>,
    /// Dropped from the middle so far (by earlier slices too).
    pub(crate) dropped: u64,
}

impl RunLog {
    pub(super) fn new(lines: Lines, clock: Arc<dyn Clock>) -> Self {
        Self(std::sync::Mutex::new(lines), clock)
    }

    /// A log that starts with `first`.
    pub(super) fn starting(first: String, clock: Arc<dyn Clock>) -> Self {
        let line = LogLine::from_text(Some(clock.now()), first);
        Self::new(Lines { lines: vec![line], dropped: 0 }, clock)
    }

    pub(crate) fn push(&self, line: impl Into<String>) {
        let line = LogLine::from_text(Some(self.1.now()), line.into());
        self.lines().push(line);
    }

    /// Appends a flow's lines.
    pub(crate) fn flow(&self, flow: &str, lines: &[String]) {
        let now = self.1.now();
        let mut log = self.lines();
        for l in lines {
            log.push(LogLine {
                time: Some(now),
                level: level_of(l),
                flow: Some(flow.to_owned()),
                message: l.clone(),
                record: None,
            });
        }
    }

    #[cfg_attr(not(feature = "process-integrations"), allow(dead_code))]
    pub(crate) fn extend(&self, lines: impl IntoIterator<Item = String>) {
        let now = self.1.now();
        let mut log = self.lines();
        log.extend(lines.into_iter().map(|l| LogLine::from_text(Some(now), l)));
    }

    pub(super) fn into_lines(self) -> Lines {
        self.0.into_inner().unwrap_or_else(|p| p.into_inner())
    }

    fn lines(&self) -> impl std::ops::DerefMut<Target = Vec<LogLine>> + '_ {
        struct Guard<'a>(std::sync::MutexGuard<'a, Lines>);
        impl std::ops::Deref for Guard<'_> {
            type Target = Vec<LogLine>;
            fn deref(&self) -> &Vec<LogLine> {
                &self.0.lines
            }
        }
        impl std::ops::DerefMut for Guard<'_> {
            fn deref_mut(&mut self) -> &mut Vec<LogLine> {
                &mut self.0.lines
            }
        }
        Guard(self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Lines {
    /// The messages, for redaction in place.
    pub(crate) fn messages_mut(&mut self) -> impl Iterator<Item = &mut String> {
        self.lines.iter_mut().map(|l| &mut l.message)
    }

    /// Keeps the cap: the first and the last half, the middle counted as dropped.
    fn capped(mut self) -> Self {
        if self.lines.len() > MAX_LOG_LINES {
            let over = self.lines.len() - MAX_LOG_LINES;
            self.lines.drain(MAX_LOG_LINES / 2..MAX_LOG_LINES / 2 + over);
            self.dropped += over as u64;
        }
        self
    }
}

/// The run's stored log and how many lines were dropped from it (none before its first slice ended).
pub(crate) async fn stored_log(store: &dyn Store, tenant: &str, job: &str, run: &str) -> Result<Lines> {
    let stored = records::get::<StoredLog>(store, &keys::run_logs(tenant, job, run)).await?;
    let (lines, dropped) = stored.map(|v| v.value).unwrap_or_default().into_lines();
    Ok(Lines { lines, dropped })
}

/// The run's stored log as the API serves it, filtered.
pub(crate) async fn served_log(
    store: &dyn Store,
    tenant: &str,
    job: &str,
    run: &str,
    filter: &LogFilter,
) -> Result<RunLogs> {
    let Lines { lines, dropped } = stored_log(store, tenant, job, run).await?;
    RunLogs::new(lines, dropped, filter)
}

impl Hub {
    /// Stores the run's log, its middle dropped when it is too long.
    pub(super) async fn store_log(&self, run: &Run, lines: Lines) {
        let Lines { lines, dropped } = lines.capped();
        let log = StoredLog { lines: lines.into_iter().map(StoredLine::Line).collect(), dropped };
        if let Ok(op) = records::put(keys::run_logs(&run.tenant, &run.job, &run.id), &log, Condition::None) {
            if let Err(e) = self.store().write(vec![op]).await {
                tracing::error!(error = %e, "could not store run logs");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(t: &str) -> LogLine {
        LogLine::from_text(None, t.to_owned())
    }

    #[test]
    fn a_plain_line_names_its_flow_and_its_level_comes_from_its_words() {
        let line = text("[contacts] target refused a batch: 422");
        assert_eq!((line.flow.as_deref(), line.level), (Some("contacts"), LogLevel::Error));
        assert_eq!(line.message, "target refused a batch: 422");
        assert_eq!(text("run started (Normal, triggered by api)").level, LogLevel::Info);
        assert_eq!(text("[items] stopped before the next page: cancelled").level, LogLevel::Warn);
        assert_eq!(text("run finished: FailedIntegration").level, LogLevel::Error);
        assert_eq!(text("page 2: 5 read, 10 written so far").level, LogLevel::Info);
        assert_eq!(text("[not a flow] x").flow, None, "a bracket with spaces is text");
    }

    #[test]
    fn logs_stored_as_plain_lines_are_still_served() {
        let old: StoredLog = serde_json::from_value(
            serde_json::json!({"lines": ["run started (Normal, triggered by api)", "[items] source failed: 500"]}),
        )
        .expect("an old log decodes");
        let (lines, dropped) = old.into_lines();
        assert_eq!(dropped, 0);
        assert_eq!(lines[1].flow.as_deref(), Some("items"));
        assert_eq!((lines[1].time, lines[1].level), (None, LogLevel::Error));
    }

    #[test]
    fn the_cap_keeps_the_first_and_last_halves_and_counts_the_rest() {
        let lines = (0..MAX_LOG_LINES + 10).map(|i| text(&format!("line {i}"))).collect();
        let capped = Lines { lines, dropped: 5 }.capped();
        assert_eq!(capped.lines.len(), MAX_LOG_LINES);
        assert_eq!(capped.dropped, 15);
        assert_eq!(capped.lines[MAX_LOG_LINES / 2 - 1].message, format!("line {}", MAX_LOG_LINES / 2 - 1));
        assert_eq!(capped.lines[MAX_LOG_LINES / 2].message, format!("line {}", MAX_LOG_LINES / 2 + 10));
    }

    #[test]
    fn filters_combine_and_a_bad_level_names_its_parameter() {
        let lines =
            vec![text("[a] page 1: 5 read"), text("[a] target refused: 400 Bad"), text("[b] source failed: 500")];
        let f = LogFilter { level: Some("error".into()), flow: Some("a".into()), q: Some("BAD".into()) };
        let served = RunLogs::new(lines.clone(), 0, &f).expect("filtered");
        assert_eq!(served.lines, vec![lines[1].clone()]);
        let f = LogFilter { level: Some("loud".into()), ..Default::default() };
        match RunLogs::new(lines, 0, &f) {
            Err(Error::Invalid { code: "invalid_filter", message }) => {
                assert!(message.starts_with("level:"), "{message}")
            }
            other => panic!("{other:?}"),
        }
    }
}
