//! Integrations and their immutable, numbered releases.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::manifest::Manifest;

/// A platform-wide integration, identified by its folder name. Created by its
/// first release; its version number is what release numbering is allocated
/// against (optimistic concurrency).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Integration {
    pub name: String,
    /// The latest release's `description`.
    pub description: Option<String>,
    /// The release jobs on channel `default` get.
    pub default_release: Option<u32>,
    /// Highest release number published.
    pub latest_release: u32,
    /// Digest of the latest release, so republishing it is recognised without
    /// reading the (large) release record.
    #[serde(default)]
    pub latest_digest: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The API's view of an integration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IntegrationView {
    pub name: String,
    pub description: Option<String>,
    /// The release jobs on channel `default` get.
    pub default_release: Option<u32>,
    /// Highest release number published (jobs on channel `latest` get it).
    pub latest_release: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&Integration> for IntegrationView {
    fn from(i: &Integration) -> Self {
        Self {
            name: i.name.clone(),
            description: i.description.clone(),
            default_release: i.default_release,
            latest_release: i.latest_release,
            created_at: i.created_at,
            updated_at: i.updated_at,
        }
    }
}

/// An immutable, numbered snapshot of a manifest. The source text lives in its
/// own item ([`ReleaseSource`]) so that each stays well under the store's item
/// size limit and validating jobs reads only the parsed manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Release {
    pub integration: String,
    pub number: u32,
    /// SHA-256 (hex) of the canonical JSON of the parsed manifest: republishing
    /// the same manifest, whatever its comments or layout, creates no release.
    pub digest: String,
    /// The manifest's display name given at publish time (diagnostics name it).
    pub file: String,
    pub manifest: Manifest,
    /// Who published it (`user:<id>` or `key:<id>`).
    pub published_by: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// The manifest text of a release, exactly as published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseSource {
    pub source: String,
}

/// A release without its manifest, for lists and publish results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReleaseSummary {
    pub integration: String,
    pub number: u32,
    /// SHA-256 (hex) of the canonical JSON of the parsed manifest.
    pub digest: String,
    pub file: String,
    pub published_by: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<&Release> for ReleaseSummary {
    fn from(r: &Release) -> Self {
        Self {
            integration: r.integration.clone(),
            number: r.number,
            digest: r.digest.clone(),
            file: r.file.clone(),
            published_by: r.published_by.clone(),
            created_at: r.created_at,
        }
    }
}

/// A release with its manifest: parsed (as JSON) and as published (text).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReleaseView {
    #[serde(flatten)]
    pub summary: ReleaseSummary,
    /// The parsed manifest, in the shape of `integrations/manifest.schema.json`.
    #[schema(value_type = Object)]
    pub manifest: serde_json::Value,
    /// The manifest text exactly as published.
    pub source: String,
}
