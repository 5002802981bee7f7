use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// EZY's roles: platform admins see and manage everything; users enter only the
/// tenants they are members of and cannot manage users or tenants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UserRole {
    PlatformAdmin,
    User,
}

/// A stored user. `password_hash` is an argon2 PHC string and never leaves the service layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    /// Unique (case-insensitively) and immutable.
    pub email: String,
    pub full_name: String,
    pub role: UserRole,
    pub active: bool,
    /// Tenants a `user` may enter. Ignored for platform admins, who enter all.
    pub memberships: Vec<String>,
    pub password_hash: String,
    /// Raised by every password change; sessions started under an older one end.
    #[serde(default)]
    pub credential_version: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The API's view of a user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub email: String,
    pub full_name: String,
    pub role: UserRole,
    pub active: bool,
    pub memberships: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.clone(),
            email: u.email.clone(),
            full_name: u.full_name.clone(),
            role: u.role,
            active: u.active,
            memberships: u.memberships.clone(),
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}
