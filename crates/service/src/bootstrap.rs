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
