use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::credentials::validate_password;
use crate::auth::hashing::hash_password;
use crate::repo::{keys, lookups, records, Page, PageRequest};
use ferry_core::error::{Error, Result};
use ferry_core::model::ids::is_valid_name;
use ferry_core::model::{User, UserRole};
use ferry_core::ports::{Clock, Condition, IdGen, Index, Query, Store, WriteOp};

/// Users and how they get in: users and their tenant memberships (here), API
/// keys (`keys.rs`), login sessions and bearer authentication (`sessions.rs`),
/// the wait after wrong passwords (`login_throttle.rs`) and the first admin key
/// (`bootstrap.rs`). Settings give the session TTL and the login throttle.
/// Calls no other service.
#[derive(Clone, Copy)]
pub struct Users<'h> {
    pub(crate) store: &'h dyn Store,
    pub(crate) clock: &'h dyn Clock,
    pub(crate) ids: &'h dyn IdGen,
    pub(crate) settings: &'h crate::Settings,
}

#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub email: String,
    pub full_name: String,
    /// At least 8 characters. Stored as an argon2id hash.
    pub password: String,
    pub role: UserRole,
    #[serde(default = "yes")]
    pub active: bool,
    /// Tenants a `user` may enter.
    #[serde(default)]
    pub memberships: Vec<String>,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    pub full_name: Option<String>,
    pub role: Option<UserRole>,
    pub active: Option<bool>,
    pub password: Option<String>,
}

fn normalise_email(email: &str) -> Result<String> {
    let e = email.trim().to_lowercase();
    let valid = e.len() <= 254
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(e.split_once('@'), Some((local, domain)) if !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.') && !domain.contains('@'));
    if valid {
        Ok(e)
    } else {
        Err(Error::invalid("invalid_email", "email must look like name@example.com"))
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct EmailClaim {
    user_id: String,
}

impl Users<'_> {
    #[tracing::instrument(skip_all, fields(user))]
    pub async fn create_user(&self, input: NewUser) -> Result<User> {
        let email = normalise_email(&input.email)?;
        if !is_valid_name(&input.full_name) {
            return Err(Error::invalid("invalid_name", "full_name must be 1 to 200 characters"));
        }
        validate_password(&input.password)?;
        for t in &input.memberships {
            lookups::tenant(self.store, t).await?;
        }
        let id = self.ids.next_id();
        tracing::Span::current().record("user", id.as_str());
        let now = self.clock.now();
        let mut memberships = input.memberships;
        memberships.sort();
        memberships.dedup();
        let user = User {
            id: id.clone(),
            email: email.clone(),
            full_name: input.full_name,
            role: input.role,
            active: input.active,
            memberships,
            password_hash: hash_password(input.password.clone()).await?,
            credential_version: 0,
            created_at: now,
            updated_at: now,
        };
        let ops = vec![
            records::put(keys::email_claim(&email), &EmailClaim { user_id: id.clone() }, Condition::NotExists)?,
            records::put(keys::user(&id), &user, Condition::NotExists)?,
        ];
        records::write_or_conflict(self.store, ops, || {
            Error::conflict("email_taken", format!("a user with email '{email}' already exists"))
        })
        .await?;
        Ok(user)
    }

    pub async fn get_user(&self, id: &str) -> Result<User> {
        Ok(records::get::<User>(self.store, &keys::user(id)).await?.ok_or_else(|| Error::not_found("user", id))?.value)
    }

    pub async fn find_user_by_email(&self, email: &str) -> Result<Option<User>> {
        let Ok(email) = normalise_email(email) else {
            return Ok(None);
        };
        let Some(claim) = records::get::<EmailClaim>(self.store, &keys::email_claim(&email)).await? else {
            return Ok(None);
        };
        Ok(records::get::<User>(self.store, &keys::user(&claim.value.user_id)).await?.map(|v| v.value))
    }

    pub async fn list_users(&self, page: &PageRequest) -> Result<Page<User>> {
        records::list(self.store, Query::partition(Index::Primary, keys::USERS), page).await
    }

    #[tracing::instrument(skip_all, fields(user = id))]
    pub async fn update_user(&self, id: &str, patch: UserPatch) -> Result<User> {
        if let Some(name) = &patch.full_name {
            if !is_valid_name(name) {
                return Err(Error::invalid("invalid_name", "full_name must be 1 to 200 characters"));
            }
        }
        let password_hash = match &patch.password {
            Some(p) => {
                validate_password(p)?;
                Some(hash_password(p.clone()).await?)
            }
            None => None,
        };
        self.modify_user(id, |u| {
            if let Some(n) = &patch.full_name {
                u.full_name = n.clone();
            }
            if let Some(r) = patch.role {
                u.role = r;
            }
            if let Some(a) = patch.active {
                u.active = a;
            }
            if let Some(h) = &password_hash {
                u.password_hash = h.clone();
                u.credential_version += 1;
            }
        })
        .await
    }

    /// Deletes a user: deactivated first (its sessions end, and keys it creates
    /// from then on are refused), then every API key it created is revoked,
    /// then the user and its email go. A failure midway leaves an inactive
    /// user; deleting again finishes the job.
    #[tracing::instrument(skip_all, fields(user = id))]
    pub async fn delete_user(&self, id: &str) -> Result<()> {
        self.modify_user(id, |u| u.active = false).await?;
        let revoked = self.revoke_keys_created_by(id).await?;
        let current =
            records::get::<User>(self.store, &keys::user(id)).await?.ok_or_else(|| Error::not_found("user", id))?;
        let ops = vec![
            WriteOp::Delete { key: keys::user(id), condition: Condition::VersionIs(current.version) },
            WriteOp::Delete { key: keys::email_claim(&current.value.email), condition: Condition::None },
        ];
        records::write_or_conflict(self.store, ops, || {
            Error::conflict("concurrent_update", "the user changed while deleting it; retry")
        })
        .await?;
        tracing::info!(revoked_keys = revoked, "user deleted");
        Ok(())
    }

    pub async fn add_membership(&self, id: &str, tenant: &str) -> Result<User> {
        lookups::tenant(self.store, tenant).await?;
        self.modify_user(id, |u| {
            if !u.memberships.iter().any(|m| m == tenant) {
                u.memberships.push(tenant.to_owned());
                u.memberships.sort();
            }
        })
        .await
    }

    pub async fn remove_membership(&self, id: &str, tenant: &str) -> Result<User> {
        self.modify_user(id, |u| u.memberships.retain(|m| m != tenant)).await
    }

    async fn modify_user(&self, id: &str, change: impl Fn(&mut User)) -> Result<User> {
        let current =
            records::get::<User>(self.store, &keys::user(id)).await?.ok_or_else(|| Error::not_found("user", id))?;
        let mut user = current.value;
        change(&mut user);
        user.updated_at = self.clock.now();
        let op = records::put(keys::user(id), &user, Condition::VersionIs(current.version))?;
        records::write_or_conflict(self.store, vec![op], || {
            Error::conflict("concurrent_update", "the user changed while updating it; retry")
        })
        .await?;
        Ok(user)
    }
}

// Passwords never reach a log line, even through `{:?}`.
impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("email", &self.email)
            .field("full_name", &self.full_name)
            .field("password", &"********")
            .field("role", &self.role)
            .field("active", &self.active)
            .field("memberships", &self.memberships)
            .finish()
    }
}

impl std::fmt::Debug for UserPatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserPatch")
            .field("full_name", &self.full_name)
            .field("role", &self.role)
            .field("active", &self.active)
            .field("password", &self.password.as_ref().map(|_| "********"))
            .finish()
    }
}
