//! What a run ran with, recorded when it starts executing, and what a rerun
//! asks for. Never secrets: connections are recorded by id, and a rerun uses
//! their credentials as they are when it runs.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::run::{RunMode, RunOptions};
use crate::manifest::Mapping;

/// The configuration a run executed with: the release it resolved, the job's
/// connections (ids), configs and mapping overrides (a mapping configuration
/// by id and version), and the run's mode and options. Recorded once, before
/// its first flow; its continuations execute with it too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunConfig {
    pub integration: String,
    /// The release number executed.
    pub release: u32,
    /// Manifest connector name → connection id (credentials are not recorded).
    pub connections: BTreeMap<String, String>,
    #[schema(value_type = Object)]
    pub configs: serde_json::Map<String, serde_json::Value>,
    /// Flow name → the job's mapping override the run applied; flows not
    /// named here used their release's mapping.
    pub mappings: BTreeMap<String, RecordedMapping>,
    pub mode: RunMode,
    pub options: RunOptions,
    pub recorded_at: DateTime<Utc>,
}

/// A flow's mapping override as a run applied it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RecordedMapping {
    /// A mapping configuration of the tenant, at the version the run read.
    Configured { mapping: String, version: u32 },
    /// The job's inline mapping, as it was.
    Inline {
        #[schema(value_type = Object)]
        mapping: Mapping,
    },
}

/// Which configuration a rerun executes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RerunConfig {
    /// The run's recorded configuration: its release, connections, configs
    /// and mapping versions, even if the job changed since.
    Original,
    /// The job as it is now.
    Current,
}
