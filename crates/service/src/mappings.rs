//! Mapping configurations (EZY): named, per-tenant field mappings for one
//! entity type between a source and a target connector. Jobs reference them
//! per flow (`{"mapping": "<id>"}`), so one referenced by a job cannot be deleted.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::jobs::job_list;
use crate::integrations::Integrations;
use crate::repo::{keys, records, Page, PageRequest};
use ferry_core::error::{Error, Result};
use ferry_core::manifest::checks;
use ferry_core::manifest::{FieldMapping, Mapping};
use ferry_core::model::ids::is_valid_name;
use ferry_core::model::{JobMapping, MappingConfig};
use ferry_core::ports::{Condition, Index, Query, WriteOp};

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMapping {
    /// Unique (case-insensitively) within the tenant.
    pub name: String,
    /// Entity type, e.g. `contact`.
    pub entity: String,
    /// Connector the records come from, e.g. `hubspot`.
    pub source: Option<String>,
    /// Connector the records go to, e.g. `salesforce`.
    pub target: Option<String>,
    /// Target field → template (`"{{ record.email | lower }}"`) or rule (`{"from": "properties.email"}`).
    #[schema(value_type = BTreeMap<String, Object>)]
    pub fields: BTreeMap<String, FieldMapping>,
    /// Copy source fields no mapping names (default false).
    #[serde(default)]
    pub keep_unmapped: bool,
}

/// Fields to change; omitted fields stay, `null` clears `source` or `target`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MappingPatch {
    pub name: Option<String>,
    pub entity: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub source: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub target: Option<Option<String>>,
    /// Replaces all field mappings.
    #[schema(value_type = Option<BTreeMap<String, Object>>)]
    pub fields: Option<BTreeMap<String, FieldMapping>>,
    pub keep_unmapped: Option<bool>,
}

fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> std::result::Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(serde::Serialize, serde::Deserialize)]
struct NameClaim {
    id: String,
}

/// Entity types and connector names: what manifests use for connector names.
fn is_word(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn check(m: &MappingConfig) -> Result<()> {
    if !is_valid_name(&m.name) {
        return Err(Error::invalid("invalid_name", "name must be 1 to 200 characters without control characters"));
    }
    if !is_word(&m.entity) {
        return Err(Error::invalid(
            "invalid_entity",
            "entity must be an entity type such as 'contact' (1 to 64 letters, digits, '-' or '_')",
        ));
    }
    for (what, v) in [("source", &m.source), ("target", &m.target)] {
        if v.as_deref().is_some_and(|c| !is_word(c)) {
            return Err(Error::invalid(
                "invalid_connector",
                format!("{what} must be a connector name such as 'hubspot' (letters, digits, '-' or '_')"),
            ));
        }
    }
    let mut findings = Vec::new();
    let mapping: Mapping = m.to_mapping();
    checks::check_mapping(&mapping, "", &mut findings);
    if let Some(first) = findings.first() {
        let details = findings
            .iter()
            .map(|f| json!({"path": f.pointer, "code": f.code, "message": f.message, "help": f.help}))
            .collect();
        return Err(Error::invalid_with(
            checks::mapping_error_code(&findings),
            format!("the mapping is not valid: {} (all problems are in `details`)", first.message),
            Value::Array(details),
        ));
    }
    Ok(())
}

impl Integrations<'_> {
    #[tracing::instrument(skip_all, fields(tenant, mapping))]
    pub async fn create_mapping(&self, tenant: &str, input: NewMapping) -> Result<MappingConfig> {
        let id = self.ids.next_id();
        tracing::Span::current().record("tenant", tenant).record("mapping", id.as_str());
        let now = self.clock.now();
        let mapping = MappingConfig {
            id: id.clone(),
            tenant: tenant.to_owned(),
            name: input.name,
            entity: input.entity,
            source: input.source,
            target: input.target,
            fields: input.fields,
            keep_unmapped: input.keep_unmapped,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        check(&mapping)?;
        let ops = vec![
            records::put(
                keys::mapping_name_claim(tenant, &mapping.name.to_lowercase()),
                &NameClaim { id: id.clone() },
                Condition::NotExists,
            )?,
            records::put(keys::mapping(tenant, &id), &mapping, Condition::NotExists)?,
        ];
        records::write_or_conflict(self.store, ops, || {
            Error::conflict(
                "mapping_exists",
                format!("tenant '{tenant}' already has a mapping named '{}'", mapping.name),
            )
        })
        .await?;
        Ok(mapping)
    }

    pub async fn get_mapping(&self, tenant: &str, id: &str) -> Result<MappingConfig> {
        Ok(records::get::<MappingConfig>(self.store, &keys::mapping(tenant, id))
            .await?
            .ok_or_else(|| Error::not_found("mapping", id))?
            .value)
    }

    pub async fn list_mappings(&self, tenant: &str, page: &PageRequest) -> Result<Page<MappingConfig>> {
        records::list(self.store, Query::partition(Index::Primary, keys::tenant_partition(tenant)).prefix("MAP#"), page)
            .await
    }

    #[tracing::instrument(skip_all, fields(tenant = tenant, mapping = id))]
    pub async fn update_mapping(&self, tenant: &str, id: &str, patch: MappingPatch) -> Result<MappingConfig> {
        let key = keys::mapping(tenant, id);
        let current =
            records::get::<MappingConfig>(self.store, &key).await?.ok_or_else(|| Error::not_found("mapping", id))?;
        let before = current.value.clone();
        let mut m = current.value;
        if let Some(v) = patch.name {
            m.name = v;
        }
        if let Some(v) = patch.entity {
            m.entity = v;
        }
        if let Some(v) = patch.source {
            m.source = v;
        }
        if let Some(v) = patch.target {
            m.target = v;
        }
        if let Some(v) = patch.fields {
            m.fields = v;
        }
        if let Some(v) = patch.keep_unmapped {
            m.keep_unmapped = v;
        }
        check(&m)?;
        m.updated_at = self.clock.now();
        m.version = before.version + 1;
        // The version replaced stays readable: a rerun replays a mapping as a run applied it.
        let mut ops = vec![records::put(keys::mapping_version(tenant, id, before.version), &before, Condition::None)?];
        if m.name.to_lowercase() != before.name.to_lowercase() {
            ops.push(records::put(
                keys::mapping_name_claim(tenant, &m.name.to_lowercase()),
                &NameClaim { id: id.to_owned() },
                Condition::NotExists,
            )?);
            ops.push(WriteOp::Delete {
                key: keys::mapping_name_claim(tenant, &before.name.to_lowercase()),
                condition: Condition::None,
            });
        }
        ops.push(records::put(key, &m, Condition::VersionIs(current.version))?);
        records::write_or_conflict(self.store, ops, || {
            Error::conflict("conflict", "another mapping has that name, or the mapping changed meanwhile; retry")
        })
        .await?;
        Ok(m)
    }

    /// Deletes a mapping no job references (409 `mapping_in_use` otherwise),
    /// and then its earlier versions: a rerun of a run that applied one is
    /// refused from then on (`mapping_version_gone`).
    #[tracing::instrument(skip_all, fields(tenant = tenant, mapping = id))]
    pub async fn delete_mapping(&self, tenant: &str, id: &str) -> Result<()> {
        self.delete_current_mapping(tenant, id).await?;
        self.delete_mapping_versions(tenant, id).await
    }

    /// The earlier versions of a deleted mapping, a page at a time.
    async fn delete_mapping_versions(&self, tenant: &str, id: &str) -> Result<()> {
        loop {
            let q = Query::partition(Index::Primary, keys::mapping_versions_partition(tenant, id)).prefix("V#");
            let page: Page<MappingConfig> =
                records::list(self.store, q, &PageRequest { limit: Some(25), cursor: None }).await?;
            if page.items.is_empty() {
                return Ok(());
            }
            let ops = page
                .items
                .iter()
                .map(|m| WriteOp::Delete {
                    key: keys::mapping_version(tenant, id, m.version),
                    condition: Condition::None,
                })
                .collect();
            self.store.write(ops).await?;
            if page.next_cursor.is_none() {
                return Ok(());
            }
        }
    }

    async fn delete_current_mapping(&self, tenant: &str, id: &str) -> Result<()> {
        let m = self.get_mapping(tenant, id).await?;
        let delete = vec![
            WriteOp::Delete { key: keys::mapping(tenant, id), condition: Condition::None },
            WriteOp::Delete {
                key: keys::mapping_name_claim(tenant, &m.name.to_lowercase()),
                condition: Condition::None,
            },
        ];
        self.jobs
            .delete_unreferenced(
                tenant,
                |job| job.mappings.values().any(|jm| matches!(jm, JobMapping::Configured(r) if r.mapping == id)),
                |jobs| {
                    Error::conflict(
                        "mapping_in_use",
                        format!("mapping '{id}' is used by job(s) {}; change their mappings first", job_list(jobs)),
                    )
                },
                delete,
            )
            .await
    }
}
