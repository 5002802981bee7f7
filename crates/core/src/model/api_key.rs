use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyRole {
    /// Acts within one tenant.
    ApiUser,
    /// Acts as a platform admin.
    Admin,
}

/// What a key may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyScope {
    /// The admin API (what every key could do before scopes existed).
    Api,
    /// Pushing webhook deliveries to the tenant's hooks (`webhooks.verify: {type: api_key}`).
    Push,
}

/// Keys created before scopes existed, and keys created without naming any, use the API.
pub fn default_scopes() -> Vec<KeyScope> {
    vec![KeyScope::Api]
}

/// A stored API key. Only the SHA-256 of the full key is kept; the key itself is
/// shown once, at creation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: String,
    /// The owning tenant, or `platform` for admin keys.
    pub tenant: String,
    pub name: String,
    pub role: KeyRole,
    /// The first characters of the key (`ferry_acme_1a2b3c4d`), enough to recognise it.
    pub prefix: String,
    pub hash: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    #[serde(default = "default_scopes")]
    pub scopes: Vec<KeyScope>,
    /// The user who created the key; deleting that user revokes it. `None` for
    /// keys made by keys, by the bootstrap, or before this was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

impl ApiKey {
    pub fn is_usable_at(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }
}

/// The API's view of a key: everything but the hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyView {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub role: KeyRole,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// `api` (the admin API) and/or `push` (webhook deliveries).
    pub scopes: Vec<KeyScope>,
    /// The user who created the key (deleting the user revokes it); absent for keys made by keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

impl From<&ApiKey> for ApiKeyView {
    fn from(k: &ApiKey) -> Self {
        Self {
            id: k.id.clone(),
            tenant: k.tenant.clone(),
            name: k.name.clone(),
            role: k.role,
            prefix: k.prefix.clone(),
            created_at: k.created_at,
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
            scopes: k.scopes.clone(),
            created_by: k.created_by.clone(),
        }
    }
}
