use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::credentials::{generate_api_key, parse_api_key};
use crate::auth::Principal;
use crate::repo::{keys, records, Page, PageRequest};
use crate::users::Users;
use ferry_core::crypto::{ct_eq, sha256_hex};
use ferry_core::error::{Error, Result};
use ferry_core::model::ids::{is_valid_name, PLATFORM};
use ferry_core::model::{ApiKey, ApiKeyView, KeyRole, KeyScope};
use ferry_core::ports::{Condition, Index, Query, WriteOp};

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKeyRequest {
    pub name: String,
    /// Optional expiry (RFC 3339); the key stops working at that instant.
    pub expires_at: Option<DateTime<Utc>>,
    /// `["api"]` (default), `["push"]` for a key that may only push webhook deliveries, or both.
    #[serde(default)]
    pub scopes: Option<Vec<KeyScope>>,
}

/// Returned once, at creation: the only time the full key is visible.
#[derive(Clone, Serialize, ToSchema)]
pub struct CreatedApiKey {
    /// The full key. Store it now; Ferry keeps only its hash.
    pub key: String,
    pub api_key: ApiKeyView,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct KeyHashClaim {
    tenant: String,
    key_id: String,
}

impl Users<'_> {
    /// Creates an `api_user` key for a tenant, or an `admin` key when `owner`
    /// is `platform`. `creator` is the user creating it (not a key): deleting
    /// that user revokes the key.
    #[tracing::instrument(skip_all, fields(owner = owner))]
    pub async fn create_api_key(
        &self,
        owner: &str,
        req: NewApiKeyRequest,
        creator: Option<&str>,
    ) -> Result<CreatedApiKey> {
        if !is_valid_name(&req.name) {
            return Err(Error::invalid("invalid_name", "name must be 1 to 200 characters"));
        }
        let now = self.clock.now();
        if req.expires_at.is_some_and(|e| e <= now) {
            return Err(Error::invalid("invalid_expiry", "expires_at must be in the future"));
        }
        let role = if owner == PLATFORM { KeyRole::Admin } else { KeyRole::ApiUser };
        let scopes = match req.scopes {
            None => ferry_core::model::api_key::default_scopes(),
            Some(s) if s.is_empty() => {
                return Err(Error::invalid("invalid_scopes", "scopes must name `api`, `push` or both"))
            }
            Some(s) if role == KeyRole::Admin && s != [KeyScope::Api] => {
                return Err(Error::invalid("invalid_scopes", "platform admin keys have the `api` scope only"))
            }
            Some(mut s) => {
                s.sort_by_key(|x| *x as u8);
                s.dedup();
                s
            }
        };
        let material = generate_api_key(owner);
        let created = self.insert_api_key(owner, role, req.name, req.expires_at, material, creator).await?;
        if scopes == ferry_core::model::api_key::default_scopes() {
            return Ok(created);
        }
        self.set_key_scopes(owner, &created.api_key.id, scopes)
            .await
            .map(|view| CreatedApiKey { key: created.key, api_key: view })
    }

    pub(crate) async fn insert_api_key(
        &self,
        owner: &str,
        role: KeyRole,
        name: String,
        expires_at: Option<DateTime<Utc>>,
        material: crate::auth::credentials::NewApiKey,
        creator: Option<&str>,
    ) -> Result<CreatedApiKey> {
        let key = ApiKey {
            id: self.ids.next_id(),
            tenant: owner.to_owned(),
            name,
            role,
            prefix: material.prefix,
            hash: material.hash.clone(),
            created_at: self.clock.now(),
            expires_at,
            revoked_at: None,
            scopes: ferry_core::model::api_key::default_scopes(),
            created_by: creator.map(str::to_owned),
        };
        let mut ops = vec![
            records::put(
                keys::key_hash(&material.hash),
                &KeyHashClaim { tenant: owner.to_owned(), key_id: key.id.clone() },
                Condition::NotExists,
            )?,
            records::put(keys::api_key(owner, &key.id), &key, Condition::NotExists)?,
        ];
        if let Some(user_id) = creator {
            ops.extend(self.creator_ops(user_id, &key).await?);
        }
        records::write_or_conflict(self.store, ops, || {
            Error::conflict("key_exists", "this API key already exists, or its creator changed meanwhile; retry")
        })
        .await?;
        Ok(CreatedApiKey { key: material.key, api_key: ApiKeyView::from(&key) })
    }

    /// Records the key under its creator, on condition that the creator is
    /// unchanged: a user being deleted is deactivated first, so a key created
    /// meanwhile either fails here or is listed for revocation.
    async fn creator_ops(&self, user_id: &str, key: &ApiKey) -> Result<Vec<WriteOp>> {
        let user = records::get::<ferry_core::model::User>(self.store, &keys::user(user_id))
            .await?
            .filter(|u| u.value.active)
            .ok_or_else(|| Error::Unauthorized("the signed-in user no longer exists or is inactive".into()))?;
        let claim = KeyHashClaim { tenant: key.tenant.clone(), key_id: key.id.clone() };
        Ok(vec![
            WriteOp::Check { key: keys::user(user_id), condition: Condition::VersionIs(user.version) },
            records::put(keys::user_key(user_id, &key.tenant, &key.id), &claim, Condition::NotExists)?,
        ])
    }

    /// Revokes every key `user_id` created (deleting a user), dropping the
    /// index entries as it goes; returns how many it revoked.
    pub(crate) async fn revoke_keys_created_by(&self, user_id: &str) -> Result<usize> {
        let page = PageRequest { limit: Some(ferry_core::ports::MAX_WRITE_OPS as u32), cursor: None };
        let mut revoked = 0;
        loop {
            let q = Query::partition(Index::Primary, keys::user_keys_partition(user_id));
            let listed: Page<KeyHashClaim> = records::list(self.store, q, &page).await?;
            if listed.items.is_empty() {
                return Ok(revoked);
            }
            let mut done = Vec::with_capacity(listed.items.len());
            for claim in &listed.items {
                match self.revoke_api_key(&claim.tenant, &claim.key_id).await {
                    Ok(_) | Err(Error::NotFound { .. }) => revoked += 1,
                    Err(e) => return Err(e),
                }
                let key = keys::user_key(user_id, &claim.tenant, &claim.key_id);
                done.push(WriteOp::Delete { key, condition: Condition::None });
            }
            // Deleted, so the next listing starts with the keys not yet revoked.
            self.store.write(done).await?;
        }
    }

    async fn set_key_scopes(&self, owner: &str, id: &str, scopes: Vec<KeyScope>) -> Result<ApiKeyView> {
        let k = keys::api_key(owner, id);
        let current = records::get::<ApiKey>(self.store, &k).await?.ok_or_else(|| Error::not_found("API key", id))?;
        let mut key = current.value;
        key.scopes = scopes;
        let op = records::put(k, &key, Condition::VersionIs(current.version))?;
        records::write_or_conflict(self.store, vec![op], || Error::conflict("concurrent_update", "retry")).await?;
        Ok(ApiKeyView::from(&key))
    }

    /// The stored key behind a presented key, if it is usable now and has `scope`.
    pub async fn usable_key_with_scope(&self, presented: &str, scope: KeyScope) -> Result<ApiKey> {
        let refused = || Error::Unauthorized("the API key is not valid".into());
        let owner = parse_api_key(presented).ok_or_else(refused)?;
        let hash = sha256_hex(presented);
        let claim = records::get::<KeyHashClaim>(self.store, &keys::key_hash(&hash)).await?.ok_or_else(refused)?.value;
        if claim.tenant != owner {
            return Err(refused());
        }
        let key = records::get::<ApiKey>(self.store, &keys::api_key(&claim.tenant, &claim.key_id))
            .await?
            .ok_or_else(refused)?
            .value;
        if !ct_eq(&key.hash, &hash) {
            return Err(refused());
        }
        if key.revoked_at.is_some() {
            return Err(Error::Unauthorized("the API key has been revoked".into()));
        }
        if !key.is_usable_at(self.clock.now()) {
            return Err(Error::Unauthorized("the API key has expired".into()));
        }
        if !key.scopes.contains(&scope) {
            return Err(Error::Forbidden(missing_scope(scope)));
        }
        Ok(key)
    }

    pub async fn list_api_keys(&self, owner: &str, page: &PageRequest) -> Result<Page<ApiKey>> {
        let q = Query::partition(Index::Primary, keys::key_owner_partition(owner)).prefix("KEY#");
        records::list(self.store, q, page).await
    }

    /// One key of `owner` (without its secret, which is never kept).
    pub async fn get_api_key(&self, owner: &str, id: &str) -> Result<ApiKey> {
        Ok(records::get::<ApiKey>(self.store, &keys::api_key(owner, id))
            .await?
            .ok_or_else(|| Error::not_found("API key", id))?
            .value)
    }

    #[tracing::instrument(skip_all, fields(owner = owner, key = id))]
    pub async fn revoke_api_key(&self, owner: &str, id: &str) -> Result<ApiKey> {
        let k = keys::api_key(owner, id);
        let current = records::get::<ApiKey>(self.store, &k).await?.ok_or_else(|| Error::not_found("API key", id))?;
        let mut key = current.value;
        if key.revoked_at.is_none() {
            key.revoked_at = Some(self.clock.now());
            let op = records::put(k, &key, Condition::VersionIs(current.version))?;
            records::write_or_conflict(self.store, vec![op], || {
                Error::conflict("concurrent_update", "the key changed while revoking it; retry")
            })
            .await?;
        }
        Ok(key)
    }

    /// Resolves a presented API key to its principal, or says why it is refused.
    pub async fn authenticate_api_key(&self, presented: &str) -> Result<Principal> {
        let key = self.usable_key_with_scope(presented, KeyScope::Api).await?;
        Ok(Principal::ApiKey { key_id: key.id, tenant: key.tenant, role: key.role })
    }
}

fn missing_scope(s: KeyScope) -> String {
    match s {
        KeyScope::Api => "this API key may only push webhook deliveries (scope `push`)".into(),
        KeyScope::Push => "the API key lacks the `push` scope".into(),
    }
}

// The key is shown once, in the response; never in a log line.
impl std::fmt::Debug for CreatedApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedApiKey").field("key", &"********").field("api_key", &self.api_key).finish()
    }
}
