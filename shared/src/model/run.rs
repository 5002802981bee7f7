//! One execution of a job. Filled in by the sync engine issue.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunMode {
    Init,
    Normal,
    Webhook,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Queued,
    Running,
    Succeeded,
    Partial,
    FailedIntegration,
    FailedPlatform,
    FailedTimeout,
    FailedRefresh,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub read: u64,
    pub written: u64,
    pub skipped: u64,
    pub failed: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    /// `manual`, `api`, `schedule`, `webhook`.
    pub source: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub id: String,
    pub tenant: String,
    pub job: String,
    pub mode: RunMode,
    pub triggers: Vec<Trigger>,
    /// Release number actually executed.
    pub release: Option<u32>,
    pub status: RunStatus,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Per flow.
    pub counters: BTreeMap<String, Counters>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
}
