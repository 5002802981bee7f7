//! The secret port: credentials live here, never in the main store.

use std::collections::BTreeMap;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use super::unavailable::{BoxError, Port, Unavailable};

/// Address of one secret: the tenant it belongs to and a name unique within it
/// (for example `connections/con_01h...`). Adapters derive their physical name
/// from both, so two tenants can never address each other's secrets.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretRef {
    pub tenant: String,
    pub name: String,
}

impl SecretRef {
    pub fn new(tenant: impl Into<String>, name: impl Into<String>) -> Self {
        Self { tenant: tenant.into(), name: name.into() }
    }
}

/// A set of secret fields (e.g. `api_key`, `password`, `access_token`).
/// Debug output never shows the values.
#[derive(Clone, Default)]
pub struct SecretFields(pub BTreeMap<String, SecretString>);

impl SecretFields {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.insert(name.into(), SecretString::from(value.into()));
    }
    pub fn get(&self, name: &str) -> Option<&SecretString> {
        self.0.get(name)
    }
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Serialises the plaintext for an adapter to encrypt or hand to its backend.
    pub fn to_plaintext_json(&self) -> String {
        let map: BTreeMap<&str, &str> = self.0.iter().map(|(k, v)| (k.as_str(), v.expose_secret())).collect();
        serde_json::to_string(&map).unwrap_or_else(|_| "{}".to_owned())
    }
    pub fn from_plaintext_json(s: &str) -> Result<Self, SecretError> {
        let map: BTreeMap<String, String> = serde_json::from_str(s).map_err(|e| {
            SecretError::Corrupt(format!("secret payload is not a JSON object of strings: {}", e.classify_name()))
        })?;
        Ok(Self(map.into_iter().map(|(k, v)| (k, SecretString::from(v))).collect()))
    }
}

impl std::fmt::Debug for SecretFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.0.keys().map(|k| (k, "********"))).finish()
    }
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}
impl ClassifyName for serde_json::Error {
    // Only the class of the error: serde_json messages may quote the input.
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "io",
            serde_json::error::Category::Syntax => "syntax",
            serde_json::error::Category::Data => "data",
            serde_json::error::Category::Eof => "eof",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The backend could not serve the call right now (unreachable, timing
    /// out, throttling, busy); the same call may succeed later.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    /// The backend failed in a way retrying will not fix (it refused the
    /// request, or is misconfigured).
    #[error("secret backend error: {0}")]
    Backend(#[source] BoxError),
    #[error("secret could not be decrypted or decoded: {0}")]
    Corrupt(String),
}

impl SecretError {
    pub fn backend(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        SecretError::Backend(Box::new(e))
    }
    pub fn unavailable(e: impl Into<BoxError>) -> Self {
        SecretError::Unavailable(Unavailable::new(Port::Secrets, e))
    }
}

#[async_trait]
pub trait SecretStore: Send + Sync + 'static {
    /// Creates or replaces the secret.
    async fn put(&self, secret: &SecretRef, fields: &SecretFields) -> Result<(), SecretError>;
    async fn get(&self, secret: &SecretRef) -> Result<Option<SecretFields>, SecretError>;
    /// Deletes the secret; deleting a missing secret is not an error.
    async fn delete(&self, secret: &SecretRef) -> Result<(), SecretError>;
    fn backend_name(&self) -> &'static str;
}
