use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthKind {
    None,
    ApiKey,
    Basic,
    Bearer,
    Oauth2,
}

impl AuthKind {
    /// Credential fields that must be present when credentials are set.
    pub fn required_fields(self) -> &'static [&'static str] {
        match self {
            AuthKind::None => &[],
            AuthKind::ApiKey => &["api_key"],
            AuthKind::Basic => &["username", "password"],
            AuthKind::Bearer => &["token"],
            AuthKind::Oauth2 => &["access_token"],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    Connected,
    Disconnected,
    Error,
}

/// A connection profile: how one tenant reaches one system. Secret fields live
/// in the secret port; this record only knows their names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    pub id: String,
    pub tenant: String,
    pub name: String,
    /// Connector (provider) name, e.g. `hubspot`.
    pub connector: String,
    pub auth_kind: AuthKind,
    /// Non-secret settings (base URL overrides, account ids, ...).
    pub settings: serde_json::Map<String, serde_json::Value>,
    pub status: ConnectionStatus,
    /// Names of the secret fields currently stored.
    pub secret_fields: Vec<String>,
    pub status_message: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The current magic link, if one is issued (see `service::links`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<LinkState>,
    /// Token refreshes that failed in a row; past a limit no more are tried
    /// until the customer reconnects.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub refresh_failures: u32,
    /// The `settings.base_url` a platform admin set, exactly: requests follow
    /// `settings.base_url` only while it equals this. Connections saved before
    /// only admins could set it have none, so a base URL a tenant put there
    /// is not followed until an admin sets it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url_approved: Option<String>,
    /// The most requests in flight to this system at once, across every run
    /// and process (EZY's "Max Concurrent"); none when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u32>,
}

/// The range of a connection's `max_concurrent`.
pub const MAX_CONCURRENT: std::ops::RangeInclusive<u32> = 1..=64;

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A connection's magic link. The token itself is derived from the platform
/// key and the generation, never stored; only its SHA-256 is (the lookup key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkState {
    /// Bumped by every re-issue, which invalidates the previous token.
    pub generation: u32,
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Revoked by an operator: no token opens the page until one is issued.
    #[serde(default)]
    pub revoked: bool,
}

/// Shown in place of every secret value.
pub const MASK: &str = "********";

/// The API's view of a connection: secrets masked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ConnectionView {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub connector: String,
    pub auth_kind: AuthKind,
    #[schema(value_type = Object)]
    pub settings: serde_json::Map<String, serde_json::Value>,
    pub status: ConnectionStatus,
    pub status_message: Option<String>,
    /// Every stored secret field, its value masked.
    pub credentials: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The connect page's magic link for the end customer (absent when revoked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_expires_at: Option<DateTime<Utc>>,
    /// The most requests in flight to this system at once, across every run
    /// and process; absent when unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u32>,
}

impl From<&Connection> for ConnectionView {
    fn from(c: &Connection) -> Self {
        Self {
            id: c.id.clone(),
            tenant: c.tenant.clone(),
            name: c.name.clone(),
            connector: c.connector.clone(),
            auth_kind: c.auth_kind,
            settings: c.settings.clone(),
            status: c.status,
            status_message: c.status_message.clone(),
            credentials: c.secret_fields.iter().map(|f| (f.clone(), MASK.to_owned())).collect(),
            created_at: c.created_at,
            updated_at: c.updated_at,
            link: None,
            link_expires_at: c.link.as_ref().filter(|l| !l.revoked).and_then(|l| l.expires_at),
            max_concurrent: c.max_concurrent,
        }
    }
}
