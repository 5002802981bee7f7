//! One execution of a job.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunMode {
    /// Fills dynamic config options (flows triggered by `init`).
    Init,
    Normal,
    Webhook,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Queued,
    Running,
    /// Stopped cleanly at a checkpoint before its invocation's time ran out; a
    /// continuation resumes it.
    Interrupted,
    Succeeded,
    /// Finished, but some records were refused or failed mapping.
    Partial,
    /// A remote system or the integration's definition failed.
    FailedIntegration,
    /// Ferry itself failed (store, secrets, an unsupported feature).
    FailedPlatform,
    /// Ran longer than its wall-clock budget (`FERRY_RUN_BUDGET_SECS`), or
    /// its continuations stalled; not resumed.
    FailedTimeout,
    FailedRefresh,
    /// Stopped by an operator (`POST …/runs/{run}/cancel`); not resumed.
    Cancelled,
}

impl RunStatus {
    pub fn is_finished(self) -> bool {
        !matches!(self, RunStatus::Queued | RunStatus::Running | RunStatus::Interrupted)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Counters {
    pub read: u64,
    pub written: u64,
    pub skipped: u64,
    pub failed: u64,
    /// Records stored as dead letters (`on_record_error: dead_letter`).
    #[serde(default)]
    pub dead_lettered: u64,
}

/// What asked for a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Trigger {
    /// `manual`, `api`, `schedule`, `webhook`, `rerun`.
    pub source: String,
    pub at: DateTime<Utc>,
    /// The anchored fire time a scheduled trigger was for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tick: Option<DateTime<Utc>>,
    /// Who asked, when the trigger records it (a rerun: a user's email or `API key <id>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// Options of one run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunOptions {
    /// Forget the incremental cursors before reading.
    #[serde(default)]
    pub reset_cursor: bool,
    /// Read everything, ignoring cursors, without moving them back.
    #[serde(default)]
    pub full: bool,
    /// Stop after writing this many records per flow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_records: Option<u64>,
    /// Override the targets' batch size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Run {
    pub id: String,
    pub tenant: String,
    pub job: String,
    pub mode: RunMode,
    /// Every trigger this run serves (triggers arriving during a run are bundled into the next).
    pub triggers: Vec<Trigger>,
    #[serde(default)]
    pub options: RunOptions,
    /// Release number actually executed.
    pub release: Option<u32>,
    pub status: RunStatus,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Per flow.
    pub counters: BTreeMap<String, Counters>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    /// How many continuations resumed this run after it was interrupted.
    #[serde(default)]
    pub continuations: u32,
    /// Where an interrupted run resumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<RunProgress>,
    /// The run this one reruns (`POST …/runs/{run}/rerun`); a rerun is a run of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun_of: Option<String>,
    /// The configuration the rerun executes with: the original run's or the job's current one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun_config: Option<super::run_config::RerunConfig>,
    /// A replay run (trigger `replay`) sends these dead letters through their
    /// flows' targets instead of reading the sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<super::dead_letter::Replay>,
}

/// What an interrupted run has done so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunProgress {
    /// Flows that finished in earlier slices; a continuation skips them.
    pub completed_flows: Vec<String>,
    /// Consecutive slices that ended without moving a checkpoint or finishing a flow.
    pub stalled_slices: u32,
    /// A finished flow was partial or failed; the run's status says so at the end.
    #[serde(default)]
    pub partial: bool,
    #[serde(default)]
    pub failed: bool,
}
