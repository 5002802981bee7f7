//! The first platform admin key of an empty hub.

use serde::{Deserialize, Serialize};

use crate::auth::credentials::{parse_api_key, NewApiKey};
use crate::repo::{keys, records};
use crate::users::Users;
use ferry_core::crypto::sha256_hex;
use ferry_core::error::{Error, Result};
use ferry_core::model::ids::PLATFORM;
use ferry_core::model::KeyRole;
use ferry_core::ports::{Condition, StoreError};

#[derive(Serialize, Deserialize)]
struct BootstrapMarker {
    at: chrono::DateTime<chrono::Utc>,
}

/// What bootstrapping did.
#[derive(Debug)]
pub enum Bootstrap {
    /// The hub already had its first admin key.
    AlreadyDone,
    /// A key was generated; show it once.
    Generated(String),
    /// The key supplied by `FERRY_BOOTSTRAP_API_KEY` was installed.
    Installed,
}

impl Users<'_> {
    /// Creates the first platform admin key unless the hub already has one. The
    /// marker is claimed with a conditional write, so two hosts starting at once
    /// cannot both create a key.
    pub async fn bootstrap(&self, supplied: Option<&str>) -> Result<Bootstrap> {
        if self.store.get(&keys::bootstrap()).await?.is_some() {
            return Ok(Bootstrap::AlreadyDone);
        }
        let material = match supplied {
            Some(key) => {
                if parse_api_key(key) != Some(PLATFORM) {
                    return Err(Error::invalid(
                        "invalid_bootstrap_key",
                        "FERRY_BOOTSTRAP_API_KEY must look like ferry_platform_<64 lowercase hex characters>",
                    ));
                }
                NewApiKey {
                    key: key.to_owned(),
                    prefix: key[..("ferry_platform_".len() + 8)].to_owned(),
                    hash: sha256_hex(key),
                }
            }
            None => crate::auth::credentials::generate_api_key(PLATFORM),
        };
        let marker = records::put(keys::bootstrap(), &BootstrapMarker { at: self.clock.now() }, Condition::NotExists)?;
        match self.store.write(vec![marker]).await {
            Ok(()) => {}
            Err(StoreError::ConditionFailed) => return Ok(Bootstrap::AlreadyDone),
            Err(e) => return Err(e.into()),
        }
        let created = self.insert_api_key(PLATFORM, KeyRole::Admin, "bootstrap".into(), None, material, None).await?;
        Ok(if supplied.is_some() { Bootstrap::Installed } else { Bootstrap::Generated(created.key) })
    }
}

/// The email of the first admin user when `FERRY_ADMIN_EMAIL` is not set.
pub const DEFAULT_ADMIN_EMAIL: &str = "admin@ferry.local";

/// What making the first platform admin user did.
pub enum AdminUserBootstrap {
    /// The hub already had its first admin user (or a user with that email).
    AlreadyDone,
    /// The user was created; `generated_password` is set when none was
    /// supplied (show it once: only its hash is stored).
    Created { email: String, generated_password: Option<String> },
}

// A generated password never reaches a log line, even through `{:?}`.
impl std::fmt::Debug for AdminUserBootstrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdminUserBootstrap::AlreadyDone => f.write_str("AlreadyDone"),
            AdminUserBootstrap::Created { email, generated_password } => f
                .debug_struct("Created")
                .field("email", email)
                .field("generated_password", &generated_password.as_ref().map(|_| "********"))
                .finish(),
        }
    }
}

impl Users<'_> {
    /// Creates the first platform admin *user* (the person who signs in to the
    /// console; the admin API key is for automation) unless it was made before.
    /// The user is created first, its email claimed conditionally, then the
    /// marker: two hosts starting at once make one user, and a crash between
    /// the two leaves a user that the next start recognises by its email.
    pub async fn bootstrap_admin_user(
        &self,
        email: Option<&str>,
        password: Option<&str>,
    ) -> Result<AdminUserBootstrap> {
        if self.store.get(&keys::admin_user_bootstrap()).await?.is_some() {
            return Ok(AdminUserBootstrap::AlreadyDone);
        }
        let email = email.map_or(DEFAULT_ADMIN_EMAIL, str::trim).to_owned();
        let generated = password.is_none().then(|| crate::keyring::random_token(18));
        let password = password.map(str::to_owned).or_else(|| generated.clone()).unwrap_or_default();
        let input = crate::users::NewUser {
            email: email.clone(),
            full_name: "Platform Admin".into(),
            password,
            role: ferry_core::model::UserRole::PlatformAdmin,
            active: true,
            memberships: Vec::new(),
        };
        let outcome = match self.create_user(input).await {
            Ok(user) => AdminUserBootstrap::Created { email: user.email, generated_password: generated },
            Err(Error::Conflict { code: "email_taken", .. }) => AdminUserBootstrap::AlreadyDone,
            Err(e) => return Err(e),
        };
        let marker =
            records::put(keys::admin_user_bootstrap(), &BootstrapMarker { at: self.clock.now() }, Condition::None)?;
        self.store.write(vec![marker]).await?;
        Ok(outcome)
    }
}
