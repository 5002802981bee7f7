//! Integrations and their immutable releases. Filled in by the manifest issue;
//! modelled now so the storage design covers them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A platform-wide integration, identified by its folder name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Integration {
    pub name: String,
    pub description: Option<String>,
    /// The release tenants on channel `default` get.
    pub default_release: Option<u32>,
    /// Highest release number published.
    pub latest_release: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An immutable, numbered snapshot of a manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Release {
    pub integration: String,
    pub number: u32,
    /// SHA-256 of the manifest source; publishing identical bytes twice creates no release.
    pub digest: String,
    pub manifest: serde_json::Value,
    pub created_at: DateTime<Utc>,
}
