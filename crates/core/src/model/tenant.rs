use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An isolated workspace. Everything else (connections, jobs, runs, keys) belongs to exactly one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    /// Paused tenants run no scheduled jobs; manual runs still work.
    pub paused: bool,
    /// Archived tenants are read-only.
    pub archived: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
