//! Dead letters: records of a job's flow that failed mapping or that the
//! target refused, kept (under the flow's `on_record_error: dead_letter`) so
//! an operator can fix the cause and replay them, or discard them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Why a record became a dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterCategory {
    /// The mapping failed on the record (a template error, a value that does not coerce to its type).
    Mapping,
    /// The target refused the record: a 4xx for its request or batch, or a
    /// partial-failure answer naming it.
    TargetRejected,
    /// A replay of the record met an unavailable target (5xx, timeouts, rate
    /// limits after retries). A sync run whose target is down stops at its
    /// checkpoint instead, and dead-letters nothing.
    TargetUnavailable,
}

impl DeadLetterCategory {
    pub const ALL: [DeadLetterCategory; 3] =
        [DeadLetterCategory::Mapping, DeadLetterCategory::TargetRejected, DeadLetterCategory::TargetUnavailable];

    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterCategory::Mapping => "mapping",
            DeadLetterCategory::TargetRejected => "target_rejected",
            DeadLetterCategory::TargetUnavailable => "target_unavailable",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterStatus {
    /// Waiting for a replay or a discard.
    Pending,
    /// A replay delivered it to the target.
    Replayed,
    /// An operator gave it up.
    Discarded,
}

impl DeadLetterStatus {
    pub const ALL: [DeadLetterStatus; 3] =
        [DeadLetterStatus::Pending, DeadLetterStatus::Replayed, DeadLetterStatus::Discarded];

    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterStatus::Pending => "pending",
            DeadLetterStatus::Replayed => "replayed",
            DeadLetterStatus::Discarded => "discarded",
        }
    }
}

/// The mapping a record was mapped with, so a replay can map it the same way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MappedWith {
    /// The flow's mapping in the manifest of this release.
    Release { release: u32 },
    /// A mapping configuration of the tenant, at this version.
    Configured { mapping: String, version: u32 },
    /// The job's inline mapping as this run recorded it (its run configuration).
    Inline { run: String },
    /// The flow has no mapping: records go to the target as read.
    None,
}

/// One dead letter of a job's flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeadLetter {
    /// Time-ordered: listing by id is listing by age.
    pub id: String,
    pub tenant: String,
    pub job: String,
    /// The run that dead-lettered it.
    pub run: String,
    pub flow: String,
    pub category: DeadLetterCategory,
    /// Why, as of the last attempt: built from the request's path template and
    /// status (plus a short excerpt of the target's answer, secrets masked).
    pub error: String,
    /// Deliveries tried: 1 for the run that dead-lettered it, +1 per replay
    /// and per later run that failed the same record (same content) again.
    pub attempts: u32,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub status: DeadLetterStatus,
    /// The record as the source returned it (absent from lists, and while it
    /// is kept in the file store: see `stored_at`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub source: Option<serde_json::Value>,
    /// The record as mapped, when mapping succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub mapped: Option<serde_json::Value>,
    /// The mapping it was mapped with.
    pub mapped_with: MappedWith,
    /// Records larger than the store's threshold are kept in the tenant's
    /// file store at this path (`{"source", "mapped"}` as JSON) and read back
    /// for `GET` and replays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_at: Option<String>,
    /// The run that tried it last (the dead-lettering run, then replay runs).
    pub last_run: String,
}

/// Dead letters of a scope by status and category, kept with the writes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeadLetterCounts {
    /// Status → category → dead letters.
    #[serde(default)]
    pub by_status_category: BTreeMap<DeadLetterStatus, BTreeMap<DeadLetterCategory, u64>>,
}

impl DeadLetterCounts {
    pub fn add(&mut self, status: DeadLetterStatus, category: DeadLetterCategory, n: i64) {
        let slot = self.by_status_category.entry(status).or_default().entry(category).or_default();
        *slot = slot.saturating_add_signed(n);
    }

    pub fn merge(&mut self, other: &DeadLetterCounts) {
        for (status, cats) in &other.by_status_category {
            for (cat, n) in cats {
                self.add(*status, *cat, *n as i64);
            }
        }
    }

    pub fn of_status(&self, status: DeadLetterStatus) -> u64 {
        self.by_status_category.get(&status).map(|c| c.values().sum()).unwrap_or(0)
    }

    pub fn of_category(&self, category: DeadLetterCategory) -> u64 {
        self.by_status_category.values().filter_map(|c| c.get(&category)).sum()
    }
}

/// Which mapping a replay maps the records with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReplayMapping {
    /// The flow's mapping as the job has it now (a fixed mapping applies).
    #[default]
    Current,
    /// The mapping each record was mapped with; a record that has its mapped
    /// form is sent as it was.
    Original,
}

/// What a replay run sends: dead letters of its job, by id or by filter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Replay {
    pub mapping: ReplayMapping,
    /// These dead letters (the pending ones among them); else every pending
    /// one of the job matching `flow` and `category`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<DeadLetterCategory>,
}
