//! A tenant's instance of an integration: which release, which connections,
//! which configs and mappings.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::manifest::{Mapping, Schedule};

/// Which release a job runs. Channels are resolved at use, so a job on
/// `latest` follows new releases without being edited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ReleasePin {
    /// Exactly this release number.
    Specific { number: u32 },
    /// Whatever release the channel names when the job is used.
    Channel { channel: Channel },
}

impl Default for ReleasePin {
    fn default() -> Self {
        ReleasePin::Channel { channel: Channel::Default }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// The integration's `default_release`.
    Default,
    /// The integration's newest release.
    Latest,
}

/// A flow's mapping in a job: a tenant's mapping configuration by id, or an
/// inline mapping in the manifest's `Mapping` shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum JobMapping {
    Configured(MappingRef),
    Inline(Mapping),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingRef {
    /// Id of a mapping configuration of the job's tenant.
    pub mapping: String,
}

/// Options of dynamic configs, per `configs.schema.definitions` name: strings,
/// or `{"const": ..., "title": ...}` objects when options have labels.
pub type DynamicOptions = BTreeMap<String, Vec<serde_json::Value>>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub integration: String,
    pub release: ReleasePin,
    /// Manifest connector name → connection id (same tenant).
    pub connections: BTreeMap<String, String>,
    /// Config values, validated against the resolved release's config schema.
    pub configs: serde_json::Map<String, serde_json::Value>,
    /// Flow name → mapping.
    pub mappings: BTreeMap<String, JobMapping>,
    /// Stored now, executed by the scheduler issue.
    pub schedule: Option<Schedule>,
    pub paused: bool,
    /// Filled by init runs; kept apart from the manifest's placeholder
    /// definitions, which are shared by every job of a release.
    #[serde(default)]
    pub dynamic_options: DynamicOptions,
    /// The engine's state carried between runs (cursors).
    pub state: serde_json::Value,
    /// Process integrations with a `metadata_schema`: their validated stdout,
    /// shallow-merged run after run (Pandium's tenant metadata).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub metadata: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A reason a job cannot run as configured, against the release it resolves to now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobProblem {
    /// The error code creating or updating the job this way would get, e.g. `invalid_configs`.
    pub code: String,
    pub message: String,
    /// Individual findings, e.g. `[{"path": "/limit", "message": "..."}]` for configs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub details: Option<serde_json::Value>,
}

/// The API's view of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobView {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub integration: String,
    pub release: ReleasePin,
    /// The release number the pin resolves to now (absent when it resolves to none).
    pub resolved_release: Option<u32>,
    /// What is wrong with the job against `resolved_release`; empty when it can run.
    pub problems: Vec<JobProblem>,
    /// Manifest connector name → connection id.
    pub connections: BTreeMap<String, String>,
    #[schema(value_type = Object)]
    pub configs: serde_json::Map<String, serde_json::Value>,
    /// Flow name → `{"mapping": "<mapping id>"}` or an inline mapping.
    #[schema(value_type = BTreeMap<String, Object>)]
    pub mappings: BTreeMap<String, JobMapping>,
    /// A preset (`{"preset": "daily", "at": "09:00"}`) or cron (`{"cron": "0 * * * *"}`) schedule.
    #[schema(value_type = Option<Object>)]
    pub schedule: Option<Schedule>,
    /// The schedule in words, with its timezone (absent without a valid schedule).
    pub schedule_text: Option<String>,
    /// The next 5 fire times, computed from the schedule (never from the last
    /// run); empty while the job or its tenant is paused.
    pub next_runs: Vec<DateTime<Utc>>,
    pub paused: bool,
    /// Options of dynamic configs, filled by init runs (read-only).
    #[schema(value_type = BTreeMap<String, Vec<Object>>)]
    pub dynamic_options: DynamicOptions,
    /// The engine's state between runs (read-only).
    #[schema(value_type = Object)]
    pub state: serde_json::Value,
    /// Tenant metadata written by a process integration's runs (read-only).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    #[schema(value_type = Option<Object>)]
    pub metadata: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl JobView {
    pub fn new(job: &Job, resolved_release: Option<u32>, problems: Vec<JobProblem>) -> Self {
        Self {
            id: job.id.clone(),
            tenant: job.tenant.clone(),
            name: job.name.clone(),
            integration: job.integration.clone(),
            release: job.release.clone(),
            resolved_release,
            problems,
            connections: job.connections.clone(),
            configs: job.configs.clone(),
            mappings: job.mappings.clone(),
            schedule: job.schedule.clone(),
            schedule_text: None,
            next_runs: Vec::new(),
            paused: job.paused,
            dynamic_options: job.dynamic_options.clone(),
            state: job.state.clone(),
            metadata: job.metadata.clone(),
            created_at: job.created_at,
            updated_at: job.updated_at,
        }
    }
}
