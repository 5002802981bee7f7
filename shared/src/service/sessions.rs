//! Login sessions: email + password in, a short-lived bearer token out.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Hub;
use crate::auth::credentials::{
    ct_eq, dummy_password_hash, generate_session_token, sha256_hex, verify_password, SESSION_PREFIX,
};
use crate::auth::Principal;
use crate::error::{Error, Result};
use crate::model::UserView;
use crate::ports::{Condition, Item, WriteOp};
use crate::repo::{keys, records};

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
struct StoredSession {
    user_id: String,
    token_hash: String,
    expires_at: DateTime<Utc>,
}

impl Hub {
    #[tracing::instrument(skip_all)]
    pub async fn login(&self, req: LoginRequest) -> Result<SessionView> {
        let refused = || Error::Unauthorized("email or password is wrong, or the user is inactive".into());
        let user = self.find_user_by_email(&req.email).await?;
        let hash = user.as_ref().map(|u| u.password_hash.as_str()).unwrap_or_else(|| dummy_password_hash());
        let password_ok = verify_password(&req.password, hash);
        let user = match user {
            Some(u) if password_ok && u.active => u,
            _ => return Err(refused()),
        };
        let token = generate_session_token();
        let token_hash = sha256_hex(&token);
        let expires_at = self.clock.now() + self.settings.session_ttl;
        let session = StoredSession { user_id: user.id.clone(), token_hash: token_hash.clone(), expires_at };
        let item =
            Item::new(keys::session(&token_hash), records::to_body(&session)?).with_expiry(expires_at.timestamp());
        self.store().write(vec![WriteOp::Put { item, condition: Condition::NotExists }]).await?;
        tracing::info!(user = %user.id, "session started");
        Ok(SessionView { token, expires_at, user: UserView::from(&user) })
    }

    pub async fn logout(&self, token: &str) -> Result<()> {
        let key = keys::session(&sha256_hex(token));
        self.store().write(vec![WriteOp::Delete { key, condition: Condition::None }]).await?;
        Ok(())
    }

    /// Resolves a session token to the user behind it.
    pub async fn authenticate_session(&self, token: &str) -> Result<Principal> {
        let refused = |why: &str| {
            Error::Unauthorized(format!("the session token is {why}; sign in again with POST /v1/sessions"))
        };
        if !token.starts_with(SESSION_PREFIX) || token.len() != SESSION_PREFIX.len() + 64 {
            return Err(refused("not valid"));
        }
        let hash = sha256_hex(token);
        let Some(session) = records::get::<StoredSession>(self.store(), &keys::session(&hash)).await? else {
            return Err(refused("not valid"));
        };
        let session = session.value;
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
        Ok(Principal::User { user_id: user.id, email: user.email, role: user.role, memberships: user.memberships })
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
