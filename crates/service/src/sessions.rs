//! Login sessions: email + password in, a short-lived bearer token out.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::credentials::{generate_session_token, SESSION_PREFIX};
use crate::auth::{hashing, Principal};
use crate::repo::{keys, records, Versioned};
use crate::users::Users;
use ferry_core::crypto::{ct_eq, sha256_hex};
use ferry_core::error::{Error, Result};
use ferry_core::model::{User, UserView};
use ferry_core::ports::{Condition, Item, WriteOp};

#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Clone, Serialize, ToSchema)]
pub struct SessionView {
    /// Bearer token; send it as `Authorization: Bearer <token>`.
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub user: UserView,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct StoredSession {
    pub(crate) user_id: String,
    pub(crate) token_hash: String,
    pub(crate) expires_at: DateTime<Utc>,
    /// The user's `credential_version` at sign-in; a password change ends the session.
    #[serde(default)]
    pub(crate) credential_version: u64,
    /// The one tenant a console session works in (`session_scope.rs`); API sessions have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tenant: Option<String>,
}

/// A checked session: who it is, and its record as stored (with its version).
pub(crate) struct LoadedSession {
    pub(crate) principal: Principal,
    pub(crate) stored: Versioned<StoredSession>,
}

impl Users<'_> {
    /// Signs in. `source` is the caller's address (throttled alongside the
    /// account); wrong passwords make further attempts wait (`auth::throttle`),
    /// and the hash is checked on the bounded hashing pool (`auth::hashing`).
    #[tracing::instrument(skip_all)]
    pub async fn login(&self, req: LoginRequest, source: Option<IpAddr>) -> Result<SessionView> {
        self.throttle_check(&req.email, source).await?;
        let user = self.find_user_by_email(&req.email).await?;
        let phc = user.as_ref().map(|u| u.password_hash.clone());
        let gate = self.throttle_check(&req.email, source);
        let password_ok = hashing::verify_password(req.password.clone(), phc, gate).await?;
        let user = match user {
            Some(u) if password_ok && u.active => u,
            user => return Err(self.login_failed(&req.email, user.as_ref(), source).await),
        };
        let token = generate_session_token();
        let token_hash = sha256_hex(&token);
        let expires_at = self.clock.now() + self.settings.session_ttl;
        let session = StoredSession {
            user_id: user.id.clone(),
            token_hash: token_hash.clone(),
            expires_at,
            credential_version: user.credential_version,
            tenant: None,
        };
        let item =
            Item::new(keys::session(&token_hash), records::to_body(&session)?).with_expiry(expires_at.timestamp());
        let ops = vec![WriteOp::Put { item, condition: Condition::NotExists }, self.throttle_clear(&req.email)];
        self.store.write(ops).await?;
        tracing::info!(user = %user.id, "session started");
        Ok(SessionView { token, expires_at, user: UserView::from(&user) })
    }

    /// Counts the failure and logs it (the account by id when it exists, never the
    /// password, nor an unknown email: people type passwords into that field).
    async fn login_failed(&self, email: &str, user: Option<&User>, source: Option<IpAddr>) -> Error {
        let failures = match self.throttle_fail(email, source).await {
            Ok(n) => n,
            Err(e) => return e,
        };
        let account = user.map_or("unknown", |u| u.id.as_str());
        tracing::warn!(account, source = ?source, failures, "sign-in refused");
        Error::Unauthorized("email or password is wrong, or the user is inactive".into())
    }

    pub async fn logout(&self, token: &str) -> Result<()> {
        let key = keys::session(&sha256_hex(token));
        self.store.write(vec![WriteOp::Delete { key, condition: Condition::None }]).await?;
        Ok(())
    }

    /// Resolves a session token to the user behind it.
    pub async fn authenticate_session(&self, token: &str) -> Result<Principal> {
        Ok(self.load_session(token).await?.principal)
    }

    /// The stored session behind a token, checked: known, unexpired, its user
    /// active and its password unchanged since sign-in.
    pub(crate) async fn load_session(&self, token: &str) -> Result<LoadedSession> {
        let refused = |why: &str| {
            Error::Unauthorized(format!("the session token is {why}; sign in again with POST /v1/sessions"))
        };
        if !token.starts_with(SESSION_PREFIX) || token.len() != SESSION_PREFIX.len() + 64 {
            return Err(refused("not valid"));
        }
        let hash = sha256_hex(token);
        let Some(stored) = records::get::<StoredSession>(self.store, &keys::session(&hash)).await? else {
            return Err(refused("not valid"));
        };
        let session = &stored.value;
        if !ct_eq(&session.token_hash, &hash) {
            return Err(refused("not valid"));
        }
        if self.clock.now() >= session.expires_at {
            return Err(refused("expired"));
        }
        let user = match self.get_user(&session.user_id).await {
            Ok(u) if u.active => u,
            Ok(_) | Err(Error::NotFound { .. }) => return Err(refused("for an inactive user")),
            Err(e) => return Err(e),
        };
        if user.credential_version != session.credential_version {
            return Err(refused("from before a password change"));
        }
        let principal =
            Principal::User { user_id: user.id, email: user.email, role: user.role, memberships: user.memberships };
        Ok(LoadedSession { principal, stored })
    }

    /// Resolves any bearer credential: API keys start with `ferry_`, sessions with `fsess_`.
    pub async fn authenticate(&self, bearer: &str) -> Result<Principal> {
        if bearer.starts_with(SESSION_PREFIX) {
            self.authenticate_session(bearer).await
        } else {
            self.authenticate_api_key(bearer).await
        }
    }
}

// Passwords and tokens never reach a log line, even through `{:?}`.
impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest").field("email", &self.email).field("password", &"********").finish()
    }
}

impl std::fmt::Debug for SessionView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionView")
            .field("token", &"********")
            .field("expires_at", &self.expires_at)
            .field("user", &self.user)
            .finish()
    }
}
