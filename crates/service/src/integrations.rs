//! Integrations and their releases: publishing a manifest as an immutable,
//! numbered release, and choosing the default release.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::repo::{keys, lookups, records, Page, PageRequest, Versioned};
use crate::Jobs;
use ferry_core::crypto::sha256_hex;
use ferry_core::error::{Error, Result};
use ferry_core::manifest::{self, Manifest};
use ferry_core::model::ids::{is_valid_id, is_valid_name};
use ferry_core::model::{Integration, Release, ReleaseSource, ReleaseSummary, ReleaseView};
use ferry_core::ports::{Clock, Condition, IdGen, Index, Query, Store, StoreError};

/// Integrations: publishing manifests as numbered releases and choosing the
/// default one (here), a tenant's field mappings (`mappings.rs`) and the
/// config forms end customers fill in on the connect page
/// (`customer_configs.rs`). Calls Jobs (`update_job`: a submitted form
/// configures its job; `delete_unreferenced`: a mapping in use is not
/// deleted).
#[derive(Clone, Copy)]
pub struct Integrations<'h> {
    pub(crate) store: &'h dyn Store,
    pub(crate) clock: &'h dyn Clock,
    pub(crate) ids: &'h dyn IdGen,
    pub(crate) jobs: Jobs<'h>,
}

/// Largest serialised release record (and, separately, manifest text). DynamoDB
/// refuses items over 400 KB; the rest is headroom for keys and attributes.
pub const MAX_RELEASE_RECORD_BYTES: usize = 350 * 1024;

/// How often a write that lost an optimistic-concurrency race is retried.
const ATTEMPTS: usize = 5;

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    /// The manifest (`PANDIUM.yaml`) text.
    pub manifest: String,
    /// Name shown in diagnostics (default `PANDIUM.yaml`).
    pub file: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Published {
    /// False when the manifest equals the latest release's: nothing was published.
    pub created: bool,
    pub release: ReleaseSummary,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntegrationPatch {
    /// The release jobs on channel `default` get; must exist.
    pub default_release: Option<u32>,
}

/// SHA-256 of the manifest as JSON with object keys sorted at every level, so
/// neither YAML layout, comments nor key order change it.
pub fn manifest_digest(manifest: &Manifest) -> Result<String> {
    let value = records::to_body(manifest)?;
    let canonical = serde_json::to_string(&canonical(value))
        .map_err(|e| Error::Internal(format!("manifest failed to serialise: {e}")))?;
    Ok(sha256_hex(&canonical))
}

/// Rebuilds every object with sorted keys: serde_json keeps insertion order when
/// any crate in the build enables its `preserve_order` feature.
fn canonical(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, canonical(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(canonical).collect()),
        other => other,
    }
}

fn check_name(name: &str) -> Result<()> {
    if is_valid_id(name) {
        Ok(())
    } else {
        Err(Error::invalid(
            "invalid_id",
            "an integration name is 1 to 64 lowercase letters, digits or '-' (its folder name)",
        ))
    }
}

fn summarise(file: &str, diagnostics: &[manifest::Diagnostic]) -> String {
    match diagnostics.first() {
        Some(first) => format!(
            "{file} has {} problem(s); the first: line {} column {}: {} (all are in `details`)",
            diagnostics.len(),
            first.line,
            first.column,
            first.message
        ),
        None => format!("{file} is not a valid manifest"),
    }
}

impl Integrations<'_> {
    /// Publishes a manifest as the integration's next release. Publishing the
    /// same manifest as the latest release again creates nothing and returns
    /// that release (`false`), so re-running a deploy is harmless; publishing an
    /// older manifest again creates a new release, so `latest` can roll back.
    #[tracing::instrument(skip_all, fields(integration = name, release))]
    pub async fn publish_release(
        &self,
        name: &str,
        req: PublishRequest,
        by: Option<&Principal>,
    ) -> Result<(ReleaseSummary, bool)> {
        check_name(name)?;
        let file = req.file.unwrap_or_else(|| "PANDIUM.yaml".to_owned());
        if !is_valid_name(&file) {
            return Err(Error::invalid("invalid_file", "file must be 1 to 200 characters without control characters"));
        }
        let manifest = match manifest::parse(&file, &req.manifest) {
            Ok(m) => m,
            Err(diagnostics) => {
                let details = records::to_body(&diagnostics)?;
                return Err(Error::invalid_with("invalid_manifest", summarise(&file, &diagnostics), details));
            }
        };
        if let Some(declared) = manifest.name.as_deref().filter(|n| *n != name) {
            return Err(Error::invalid(
                "name_mismatch",
                format!("the manifest says `name: {declared}` but is being published as '{name}'; make them equal"),
            ));
        }
        let digest = manifest_digest(&manifest)?;
        let manifest_bytes = records::to_body(&manifest)?.to_string().len();
        if req.manifest.len() > MAX_RELEASE_RECORD_BYTES || manifest_bytes > MAX_RELEASE_RECORD_BYTES {
            return Err(Error::invalid(
                "manifest_too_large",
                format!(
                    "a release's manifest is limited to {} KiB, as text and as parsed JSON",
                    MAX_RELEASE_RECORD_BYTES / 1024
                ),
            ));
        }
        for _ in 0..ATTEMPTS {
            let current = records::get::<Integration>(self.store, &keys::integration(name)).await?;
            if let Some(Versioned { value: integration, .. }) = &current {
                if integration.latest_digest.as_deref() == Some(digest.as_str()) {
                    let release = lookups::release(self.store, name, integration.latest_release).await?;
                    return Ok((ReleaseSummary::from(&release), false));
                }
            }
            let now = self.clock.now();
            let number = match &current {
                Some(c) => c.value.latest_release.checked_add(1).ok_or_else(|| {
                    Error::conflict("too_many_releases", format!("integration '{name}' has run out of release numbers"))
                })?,
                None => 1,
            };
            let (integration, condition) = match current {
                Some(Versioned { value: mut i, version }) => {
                    i.description = manifest.description.clone();
                    i.latest_release = number;
                    i.latest_digest = Some(digest.clone());
                    // The first release becomes the default; later ones wait to be promoted.
                    i.default_release.get_or_insert(number);
                    i.updated_at = now;
                    (i, Condition::VersionIs(version))
                }
                None => (
                    Integration {
                        name: name.to_owned(),
                        description: manifest.description.clone(),
                        default_release: Some(number),
                        latest_release: number,
                        latest_digest: Some(digest.clone()),
                        created_at: now,
                        updated_at: now,
                    },
                    Condition::NotExists,
                ),
            };
            let release = Release {
                integration: name.to_owned(),
                number,
                digest: digest.clone(),
                file: file.clone(),
                manifest: manifest.clone(),
                published_by: by.map(Principal::log_id),
                created_at: now,
            };
            // One atomic batch: the number is taken (integration version) exactly
            // when the release appears, and a release is never overwritten.
            let ops = vec![
                records::put(keys::integration(name), &integration, condition)?,
                records::put(keys::release(name, number), &release, Condition::NotExists)?,
                records::put(
                    keys::release_source(name, number),
                    &ReleaseSource { source: req.manifest.clone() },
                    Condition::NotExists,
                )?,
            ];
            match self.store.write(ops).await {
                Ok(()) => {
                    tracing::Span::current().record("release", number);
                    tracing::info!(digest = %digest, "release published");
                    return Ok((ReleaseSummary::from(&release), true));
                }
                Err(StoreError::ConditionFailed) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::conflict(
            "concurrent_publish",
            format!("releases of '{name}' kept being published meanwhile; retry"),
        ))
    }

    pub async fn get_integration(&self, name: &str) -> Result<Integration> {
        lookups::integration(self.store, name).await
    }

    pub async fn list_integrations(&self, page: &PageRequest) -> Result<Page<Integration>> {
        records::list(self.store, Query::partition(Index::Primary, keys::INTEGRATIONS), page).await
    }

    /// A release with its manifest text.
    pub async fn get_release_view(&self, integration: &str, number: u32) -> Result<ReleaseView> {
        let release = lookups::release(self.store, integration, number).await?;
        let source = records::get::<ReleaseSource>(self.store, &keys::release_source(integration, number))
            .await?
            .ok_or_else(|| Error::Internal(format!("release {integration}/{number} has no source item")))?;
        Ok(ReleaseView {
            summary: ReleaseSummary::from(&release),
            manifest: records::to_body(&release.manifest)?,
            source: source.value.source,
        })
    }

    /// Releases, newest first.
    pub async fn list_releases(&self, integration: &str, page: &PageRequest) -> Result<Page<ReleaseSummary>> {
        lookups::integration(self.store, integration).await?;
        let query =
            Query::partition(Index::Primary, keys::integration_partition(integration)).prefix("REL#").descending();
        let page: Page<Release> = records::list(self.store, query, page).await?;
        Ok(Page { items: page.items.iter().map(ReleaseSummary::from).collect(), next_cursor: page.next_cursor })
    }

    #[tracing::instrument(skip_all, fields(integration = name))]
    pub async fn update_integration(&self, name: &str, patch: IntegrationPatch) -> Result<Integration> {
        for _ in 0..ATTEMPTS {
            let current = records::get::<Integration>(self.store, &keys::integration(name))
                .await?
                .ok_or_else(|| Error::not_found("integration", name))?;
            let mut integration = current.value;
            if let Some(n) = patch.default_release {
                // Releases are numbered 1..=latest without gaps and never deleted.
                if n == 0 || n > integration.latest_release {
                    return Err(Error::invalid(
                        "unknown_release",
                        format!("integration '{name}' has releases 1 to {}, not {n}", integration.latest_release),
                    ));
                }
                integration.default_release = Some(n);
            }
            integration.updated_at = self.clock.now();
            let op = records::put(keys::integration(name), &integration, Condition::VersionIs(current.version))?;
            match self.store.write(vec![op]).await {
                Ok(()) => return Ok(integration),
                Err(StoreError::ConditionFailed) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::conflict("concurrent_update", "the integration kept changing while updating it; retry"))
    }
}
