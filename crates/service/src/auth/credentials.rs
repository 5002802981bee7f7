//! Secret material: passwords (argon2), API keys and session tokens (random,
//! stored as SHA-256), and constant-time comparison.

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngCore;

use ferry_core::crypto::sha256_hex;
use ferry_core::error::{Error, Result};
use ferry_core::model::ids::is_valid_id;

pub const API_KEY_PREFIX: &str = "ferry_";
pub const SESSION_PREFIX: &str = "fsess_";
pub const MIN_PASSWORD_LEN: usize = 8;
pub const MAX_PASSWORD_LEN: usize = 256;
/// Shortest signing or client secret an operator may paste in. Every provider
/// in the catalogue issues longer ones (Shopify 32+ hex, HubSpot a 36-character
/// UUID, Stripe `whsec_` + 32, GitHub OAuth 40 hex, Google 35), so anything
/// shorter is a placeholder or a typo, and as an HMAC key a guessable one
/// (16 random hex characters are 64 bits).
pub const MIN_PROVIDER_SECRET_LEN: usize = 16;
pub const MAX_PROVIDER_SECRET_LEN: usize = 1024;

pub fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(format!("password hashing failed: {e}")))
}

/// Verifies in constant time (argon2's own comparison).
pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// A hash to verify against when the email is unknown, so that unknown and
/// known emails take the same time to reject.
pub fn dummy_password_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("ferry-timing-equaliser").unwrap_or_default())
}

pub fn validate_password(password: &str) -> Result<()> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_LEN || password.len() > MAX_PASSWORD_LEN {
        return Err(Error::invalid(
            "weak_password",
            format!("password must be {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} characters long"),
        ));
    }
    Ok(())
}

/// A provider-issued secret (webhook signing secret, OAuth client secret) as an operator pastes it.
pub fn validate_provider_secret(field: &str, secret: &str) -> Result<()> {
    let n = secret.chars().count();
    if secret.trim() != secret || n < MIN_PROVIDER_SECRET_LEN || secret.len() > MAX_PROVIDER_SECRET_LEN {
        return Err(Error::invalid(
            "weak_secret",
            format!(
                "{field} must be {MIN_PROVIDER_SECRET_LEN} to {MAX_PROVIDER_SECRET_LEN} characters without surrounding \
                 spaces: paste the secret exactly as the provider issued it"
            ),
        ));
    }
    Ok(())
}

fn random_hex_32() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// A freshly generated API key: the full key (shown once) and what is stored.
pub struct NewApiKey {
    pub key: String,
    pub prefix: String,
    pub hash: String,
}

/// `ferry_<tenant>_<64 hex>`.
pub fn generate_api_key(owner_tenant: &str) -> NewApiKey {
    let secret = random_hex_32();
    let key = format!("{API_KEY_PREFIX}{owner_tenant}_{secret}");
    let prefix = format!("{API_KEY_PREFIX}{owner_tenant}_{}", &secret[..8]);
    let hash = sha256_hex(&key);
    NewApiKey { key, prefix, hash }
}

/// Splits a presented key into its tenant, rejecting anything not shaped like one.
pub fn parse_api_key(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(API_KEY_PREFIX)?;
    let (tenant, secret) = rest.rsplit_once('_')?;
    let well_formed = secret.len() == 64 && secret.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
    (well_formed && is_valid_id(tenant)).then_some(tenant)
}

pub fn generate_session_token() -> String {
    format!("{SESSION_PREFIX}{}", random_hex_32())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_back_to_their_tenant() {
        let k = generate_api_key("acme-eu");
        assert_eq!(parse_api_key(&k.key), Some("acme-eu"));
        assert!(k.key.starts_with(&k.prefix));
        assert_eq!(k.key.len(), "ferry_acme-eu_".len() + 64);
        assert_eq!(k.hash, sha256_hex(&k.key));
    }

    #[test]
    fn malformed_keys_do_not_parse() {
        let bad = [
            String::new(),
            "ferry_".into(),
            "ferry_acme_abc".into(),
            format!("nope_acme_{}", "a".repeat(64)),
            format!("ferry_ACME_{}", "a".repeat(64)),
            format!("ferry_acme_{}", "A".repeat(64)),
            format!("ferry__{}", "a".repeat(64)),
        ];
        for key in bad {
            assert_eq!(parse_api_key(&key), None, "{key:?}");
        }
    }

    #[test]
    fn provider_secrets_shorter_than_sixteen_characters_are_refused() {
        for bad in ["x", "s3cret", "fifteen-chars-x", " sixteen-chars-xx", &"a".repeat(1025)] {
            assert!(validate_provider_secret("secret", bad).is_err(), "{bad:?}");
        }
        assert!(validate_provider_secret("secret", "sixteen-chars-xx").is_ok());
    }

    #[test]
    fn passwords_verify_only_with_the_right_password() {
        let h = hash_password("correct horse").expect("hash");
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse", &h));
        assert!(!verify_password("x", "not a phc string"));
    }
}
