//! Mapping configurations (EZY): a tenant's field mapping for one entity type
//! between a source and a target connector, which jobs reference per flow.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::manifest::{FieldMapping, Mapping};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MappingConfig {
    pub id: String,
    pub tenant: String,
    /// Unique (case-insensitively) within the tenant.
    pub name: String,
    /// Entity type, e.g. `contact`.
    pub entity: String,
    /// Connector the records come from, e.g. `hubspot`.
    pub source: Option<String>,
    /// Connector the records go to, e.g. `salesforce`.
    pub target: Option<String>,
    /// Target field → template (`{{ record.email | lower }}`) or rule (`{"from": "properties.email"}`).
    #[schema(value_type = BTreeMap<String, Object>)]
    pub fields: BTreeMap<String, FieldMapping>,
    /// Copy source fields no mapping names.
    pub keep_unmapped: bool,
    /// 1 when created, +1 on every update. Earlier versions stay readable by
    /// the hub (a rerun replays a mapping as a run applied it) until the
    /// mapping is deleted.
    #[serde(default = "first_version")]
    pub version: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn first_version() -> u32 {
    1
}

impl MappingConfig {
    /// The mapping the engine applies, in the manifest's shape.
    pub fn to_mapping(&self) -> Mapping {
        Mapping { entity: Some(self.entity.clone()), fields: self.fields.clone(), keep_unmapped: self.keep_unmapped }
    }
}
