//! Token refresh, single-flight across processes.
//!
//! Whoever wants a fresh token and finds the stored one stale takes a lease in
//! the store with a conditional write; only the holder calls the token
//! endpoint, and only after re-reading the credentials (another holder may
//! have refreshed meanwhile). The new tokens, with a rotated refresh token,
//! are stored before anyone uses them. Everyone else waits for the lease to go
//! and reads what the holder stored. A failed refresh marks the connection
//! `error`; after [`MAX_REFRESH_FAILURES`] in a row no more are tried until the
//! customer reconnects.

use chrono::{DateTime, Duration, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use crate::connections::Connections;
use crate::repo::{keys, records};
use ferry_core::error::{Error, Result};
use ferry_core::manifest::OAuthGrant;
use ferry_core::model::{AuthKind, Connection, ConnectionStatus};
use ferry_core::ports::{Condition, SecretFields, StoreError, WriteOp};

/// Tokens expiring within this margin are refreshed first.
pub const REFRESH_MARGIN_SECS: i64 = 300;
/// Failed refreshes in a row after which Ferry stops trying until reconnect.
pub const MAX_REFRESH_FAILURES: u32 = 3;
/// A lease outlives the token request's timeout, so it is never taken over mid-request.
const LEASE_SECS: i64 = 45;
const POLL: std::time::Duration = std::time::Duration::from_millis(50);
/// How long a waiter waits for another holder before giving up.
const WAIT_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RefreshLease {
    holder: String,
    expires_at: DateTime<Utc>,
}

/// The error runs fail with when a refresh failed (`failed_refresh`).
pub fn refresh_failed(message: impl Into<String>) -> Error {
    Error::invalid("refresh_failed", message)
}

fn text(f: &SecretFields, name: &str) -> Option<String> {
    f.get(name).map(|s| s.expose_secret().to_owned())
}

impl Connections<'_> {
    fn is_stale(&self, f: &SecretFields, rejected: Option<&str>) -> bool {
        if rejected.is_some() && text(f, "access_token").as_deref() == rejected {
            return true;
        }
        match text(f, "expires_at").and_then(|t| DateTime::parse_from_rfc3339(&t).ok()) {
            Some(t) => t.with_timezone(&Utc) <= self.clock.now() + Duration::seconds(REFRESH_MARGIN_SECS),
            None => false,
        }
    }

    /// The connection's credentials, refreshed first when its OAuth2 token
    /// expires within the margin, or when `rejected` (an access token the
    /// provider just answered 401 to) is still the stored one.
    #[tracing::instrument(skip_all, fields(tenant = %conn.tenant, connection = %conn.id))]
    pub async fn fresh_credentials(&self, conn: &Connection, rejected: Option<&str>) -> Result<SecretFields> {
        let current = self.connection_credentials(conn).await?.unwrap_or_default();
        if conn.auth_kind != AuthKind::Oauth2 || !self.is_stale(&current, rejected) {
            return Ok(current);
        }
        let failures_before = conn.refresh_failures;
        if failures_before >= MAX_REFRESH_FAILURES {
            return Err(refresh_failed(format!(
                "token refresh failed {failures_before} times in a row; Ferry stopped trying until the connection is reconnected"
            )));
        }
        let lease_key = keys::refresh_lease(&conn.tenant, &conn.id);
        let holder = super::keyring::random_token(12);
        let started = std::time::Instant::now();
        loop {
            let now = self.clock.now();
            let existing = self.store.get(&lease_key).await?;
            let condition = match &existing {
                None => Some(Condition::NotExists),
                Some(item) => {
                    let lease = records::from_item::<RefreshLease>(item.clone())?.value;
                    (lease.expires_at <= now).then_some(Condition::VersionIs(item.version))
                }
            };
            if let Some(condition) = condition {
                let lease = RefreshLease { holder: holder.clone(), expires_at: now + Duration::seconds(LEASE_SECS) };
                match self.store.write(vec![records::put(lease_key.clone(), &lease, condition)?]).await {
                    Ok(()) => {
                        let outcome = self.refresh_holding_lease(conn, rejected).await;
                        self.release_lease(&lease_key, &holder).await;
                        return outcome;
                    }
                    Err(StoreError::ConditionFailed) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            // Someone else is refreshing: wait, then use what they stored.
            tokio::time::sleep(POLL).await;
            let latest = self.connection_credentials(conn).await?.unwrap_or_default();
            if !self.is_stale(&latest, rejected) {
                return Ok(latest);
            }
            let now_conn = self.get_connection(&conn.tenant, &conn.id).await?;
            if now_conn.refresh_failures > failures_before {
                return Err(refresh_failed(
                    now_conn.status_message.unwrap_or_else(|| "the token refresh failed".to_owned()),
                ));
            }
            if started.elapsed() > WAIT_LIMIT {
                return Err(refresh_failed("timed out waiting for another token refresh of this connection"));
            }
        }
    }

    async fn refresh_holding_lease(&self, conn: &Connection, rejected: Option<&str>) -> Result<SecretFields> {
        // Re-read: the previous holder may have refreshed between our read and our lease.
        let current = self.connection_credentials(conn).await?.unwrap_or_default();
        if !self.is_stale(&current, rejected) {
            return Ok(current);
        }
        let latest = self.get_connection(&conn.tenant, &conn.id).await?;
        if latest.refresh_failures >= MAX_REFRESH_FAILURES {
            return Err(refresh_failed("token refresh keeps failing; reconnect the connection"));
        }
        let client = self.oauth_client(&latest).await.map_err(|e| refresh_failed(e.to_string()))?;
        let previous_refresh = text(&current, "refresh_token");
        let outcome = match (client.grant, &previous_refresh) {
            (OAuthGrant::ClientCredentials, _) => self.client_credentials(&client).await,
            (OAuthGrant::AuthorizationCode, Some(refresh)) => {
                let form = vec![("grant_type", "refresh_token".to_owned()), ("refresh_token", refresh.clone())];
                self.token_request(&client, form).await
            }
            (OAuthGrant::AuthorizationCode, None) => Err(super::oauth::TokenError {
                code: "invalid_grant".into(),
                description: Some("no refresh token is stored".into()),
            }),
        };
        match outcome {
            Ok(tokens) => {
                let fields = tokens.into_fields(previous_refresh.as_deref());
                // Persisted before anyone uses it: a rotated refresh token is
                // the only one the provider still accepts.
                self.secrets.put(&super::connections::secret_ref(conn), &fields).await?;
                if latest.refresh_failures > 0 || latest.status == ConnectionStatus::Error {
                    self.modify_connection(&conn.tenant, &conn.id, |c| {
                        c.refresh_failures = 0;
                        c.status = ConnectionStatus::Connected;
                        c.status_message = None;
                    })
                    .await?;
                }
                tracing::info!("access token refreshed");
                Ok(fields)
            }
            Err(e) => {
                let message = e.message(&client.provider_name);
                tracing::warn!(
                    event = "connection.refresh_failed",
                    error = %e.code,
                    failures = latest.refresh_failures + 1,
                    "token refresh failed; connection marked error"
                );
                let m = message.clone();
                self.modify_connection(&conn.tenant, &conn.id, |c| {
                    c.refresh_failures = latest.refresh_failures + 1;
                    c.status = ConnectionStatus::Error;
                    c.status_message = Some(m.clone());
                })
                .await?;
                self.notifications
                    .emit(
                        ferry_core::ports::EventKind::ConnectionError,
                        Some(&conn.tenant),
                        serde_json::json!({"connection": conn.id, "reason": "refresh_failed", "error": e.code}),
                    )
                    .await;
                Err(refresh_failed(message))
            }
        }
    }

    async fn release_lease(&self, key: &ferry_core::ports::Key, holder: &str) {
        // Only our own lease: after a takeover the new holder's must stay.
        let Ok(Some(item)) = self.store.get(key).await else { return };
        let version = item.version;
        let ours = records::from_item::<RefreshLease>(item).map(|l| l.value.holder == holder).unwrap_or(false);
        if ours {
            let op = WriteOp::Delete { key: key.clone(), condition: Condition::VersionIs(version) };
            if let Err(e) = self.store.write(vec![op]).await {
                tracing::warn!(error = %e, "could not release the refresh lease; it expires by itself");
            }
        }
    }
}
