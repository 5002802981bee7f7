//! A run's log: lines appended as it executes (by the lifecycle and every
//! executor), stored once per slice, at most [`MAX_LOG_LINES`] of them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::repo::{keys, records};
use crate::Hub;
use ferry_core::model::Run;
use ferry_core::ports::{Condition, Store};

const MAX_LOG_LINES: usize = 2000;

// A run's stored log, as the API serves it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct RunLogs {
    pub lines: Vec<String>,
}

/// The log of a run executing here. Appending takes `&self`: every part of
/// the execution writes to it while reading the rest of the run's context.
#[derive(Default)]
pub(crate) struct RunLog(std::sync::Mutex<Vec<String>>);

impl RunLog {
    pub(super) fn new(lines: Vec<String>) -> Self {
        Self(std::sync::Mutex::new(lines))
    }

    pub(crate) fn push(&self, line: impl Into<String>) {
        self.lines().push(line.into());
    }

    /// Appends a flow's lines, each prefixed with the flow's name.
    pub(crate) fn flow(&self, flow: &str, lines: &[String]) {
        self.lines().extend(lines.iter().map(|l| format!("[{flow}] {l}")));
    }

    #[cfg_attr(not(feature = "process-integrations"), allow(dead_code))]
    pub(crate) fn extend(&self, lines: impl IntoIterator<Item = String>) {
        self.lines().extend(lines);
    }

    pub(super) fn into_lines(self) -> Vec<String> {
        self.0.into_inner().unwrap_or_else(|p| p.into_inner())
    }

    fn lines(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The run's stored log (empty before its first slice ended).
pub(crate) async fn stored_log(store: &dyn Store, tenant: &str, job: &str, run: &str) -> ferry_core::Result<RunLogs> {
    Ok(records::get::<RunLogs>(store, &keys::run_logs(tenant, job, run)).await?.map(|v| v.value).unwrap_or_default())
}

impl Hub {
    /// Stores the run's log, its middle cut when it is too long.
    pub(super) async fn store_log(&self, run: &Run, mut lines: Vec<String>) {
        if lines.len() > MAX_LOG_LINES {
            let dropped = lines.len() - MAX_LOG_LINES;
            lines.drain(MAX_LOG_LINES / 2..MAX_LOG_LINES / 2 + dropped);
            lines.insert(MAX_LOG_LINES / 2, format!("… {dropped} lines omitted …"));
        }
        let logs = RunLogs { lines };
        if let Ok(op) = records::put(keys::run_logs(&run.tenant, &run.job, &run.id), &logs, Condition::None) {
            if let Err(e) = self.store().write(vec![op]).await {
                tracing::error!(error = %e, "could not store run logs");
            }
        }
    }
}
