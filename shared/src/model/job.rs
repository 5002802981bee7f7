//! A tenant's instance of an integration. Filled in by the manifest issue.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReleasePin {
    Specific { number: u32 },
    Channel { channel: Channel },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Default,
    Latest,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub integration: String,
    pub release: ReleasePin,
    /// Manifest connector name → connection id (same tenant).
    pub connections: BTreeMap<String, String>,
    pub configs: serde_json::Value,
    /// Mapping configuration ids or inline overrides, per flow.
    pub mappings: BTreeMap<String, serde_json::Value>,
    /// Stored now, executed by the scheduler issue.
    pub schedule: Option<serde_json::Value>,
    pub paused: bool,
    /// The engine's state carried between runs (cursors).
    pub state: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
