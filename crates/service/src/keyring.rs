//! The platform key: a random 256-bit secret in the secret store that signs
//! OAuth `state`, CSRF tokens and derives magic-link tokens and PKCE verifiers.
//! Created on first use and cached for the life of the process.

use std::sync::Arc;

use base64::Engine as _;
use rand::RngCore;
use secrecy::ExposeSecret;

use super::Hub;
use ferry_core::crypto;
use ferry_core::error::{Error, Result};
use ferry_core::model::ids::PLATFORM;
use ferry_core::ports::{SecretFields, SecretRef, SecretStore};

/// Where the platform key lives (platform namespace of the secret store).
pub fn key_ref() -> SecretRef {
    SecretRef::new(PLATFORM, "connect/signing-key")
}

pub struct PlatformKey {
    key: [u8; 32],
}

impl PlatformKey {
    /// HMAC-SHA256 of `parts`, each length-prefixed so no two part lists collide.
    pub fn sign(&self, purpose: &str, parts: &[&str]) -> [u8; 32] {
        let mut framed = Vec::new();
        for p in std::iter::once(purpose).chain(parts.iter().copied()) {
            framed.extend_from_slice(&(p.len() as u64).to_be_bytes());
            framed.extend_from_slice(p.as_bytes());
        }
        crypto::hmac_sha256(&self.key, &[&framed])
    }

    /// `sign` as unpadded base64url.
    pub fn sign_b64(&self, purpose: &str, parts: &[&str]) -> String {
        b64(&self.sign(purpose, parts))
    }

    /// Constant-time check of a base64url signature.
    pub fn verify_b64(&self, purpose: &str, parts: &[&str], signature: &str) -> bool {
        crypto::ct_eq(self.sign_b64(purpose, parts), signature)
    }
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A random token of `bytes` bytes, base64url.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    b64(&buf)
}

/// Keeps the platform signing key: read from the secret store (or created
/// there) once per process, then shared.
#[derive(Clone, Copy)]
pub struct Keyring<'h> {
    pub(crate) key: &'h tokio::sync::OnceCell<Arc<PlatformKey>>,
    pub(crate) secrets: &'h dyn SecretStore,
}

impl Hub {
    /// The platform key, creating it when the store has none.
    pub async fn platform_key(&self) -> Result<Arc<PlatformKey>> {
        self.keyring().platform_key().await
    }
}

impl Keyring<'_> {
    /// The platform key, creating it when the store has none.
    pub async fn platform_key(&self) -> Result<Arc<PlatformKey>> {
        self.key
            .get_or_try_init(|| async {
                if let Some(key) = self.read_platform_key().await? {
                    return Ok(Arc::new(key));
                }
                let mut fields = SecretFields::new();
                fields.insert("key", random_token(32));
                self.secrets.put(&key_ref(), &fields).await?;
                // Two processes may create it at once; the last write wins, and
                // both use what was stored, not what they generated.
                let key = self
                    .read_platform_key()
                    .await?
                    .ok_or_else(|| Error::Internal("the platform key vanished after being stored".into()))?;
                tracing::info!("created the platform signing key");
                Ok(Arc::new(key))
            })
            .await
            .cloned()
    }

    async fn read_platform_key(&self) -> Result<Option<PlatformKey>> {
        let Some(fields) = self.secrets.get(&key_ref()).await? else { return Ok(None) };
        let text = fields
            .get("key")
            .map(|s| s.expose_secret().to_owned())
            .ok_or_else(|| Error::Internal("the platform key secret has no `key` field".into()))?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text.as_bytes())
            .ok()
            .filter(|b| b.len() == 32)
            .ok_or_else(|| Error::Internal("the platform key is not 32 base64url bytes".into()))?;
        let mut key = [0u8; 32];
        key.copy_from_slice(&bytes);
        Ok(Some(PlatformKey { key }))
    }
}
