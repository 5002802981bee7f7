//! The tenant a console session works in. A person may belong to several
//! tenants; the console shows one at a time, and the scope is kept in the
//! session's record (not in a cookie) so that every host, and every Lambda
//! sandbox, enforces the same one, and signing out ends it with the session.

use chrono::{DateTime, Utc};

use crate::auth::Principal;
use crate::repo::{keys, lookups, records};
use crate::users::Users;
use ferry_core::crypto::sha256_hex;
use ferry_core::error::{Error, Result};
use ferry_core::ports::{Condition, Item, WriteOp};

/// A signed-in session as the console sees it.
#[derive(Debug, Clone)]
pub struct ScopedSession {
    pub principal: Principal,
    /// The tenant chosen for this session, if one was; only ever one the user may enter.
    pub tenant: Option<String>,
    pub expires_at: DateTime<Utc>,
}

impl Users<'_> {
    /// The session behind `token` and its tenant scope. A scope the user may no
    /// longer enter (a membership removed since) reads as none.
    pub async fn scoped_session(&self, token: &str) -> Result<ScopedSession> {
        let loaded = self.load_session(token).await?;
        let tenant = loaded.stored.value.tenant.filter(|t| loaded.principal.can_enter(t));
        Ok(ScopedSession { principal: loaded.principal, tenant, expires_at: loaded.stored.value.expires_at })
    }

    /// Scopes the session to `tenant`. Refused (as not found, so that nobody
    /// learns which tenants exist) unless the user may enter it.
    pub async fn scope_session(&self, token: &str, tenant: &str) -> Result<ScopedSession> {
        let loaded = self.load_session(token).await?;
        if !loaded.principal.can_enter(tenant) {
            return Err(Error::not_found("tenant", tenant));
        }
        lookups::tenant(self.store, tenant).await?;
        let mut session = loaded.stored.value;
        session.tenant = Some(tenant.to_owned());
        let expires_at = session.expires_at;
        let item = Item::new(keys::session(&sha256_hex(token)), records::to_body(&session)?)
            .with_expiry(expires_at.timestamp());
        // Conditional on the version read: a sign-out meanwhile is not undone.
        let op = WriteOp::Put { item, condition: Condition::VersionIs(loaded.stored.version) };
        records::write_or_conflict(self.store, vec![op], || {
            Error::conflict("session_changed", "the session changed while switching tenant; try again")
        })
        .await?;
        tracing::info!(tenant, "session scoped to tenant");
        Ok(ScopedSession { principal: loaded.principal, tenant: Some(tenant.to_owned()), expires_at })
    }
}
