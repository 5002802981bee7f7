//! Magic links: one stable URL per connection (`/connect/<token>`) that lets an
//! end customer connect without a Ferry account. The token is an HMAC of the
//! connection and a generation under the platform key, so the API can show it
//! again without storing it; only its SHA-256 is stored, as the lookup key.
//! Re-issuing bumps the generation (the old token stops working); disconnect
//! and reconnect leave it alone.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::keyring::PlatformKey;
use crate::connections::Connections;
use crate::repo::{keys, lookups, records};
use ferry_core::crypto::sha256_hex;
use ferry_core::error::{Error, Result};
use ferry_core::model::connection::LinkState;
use ferry_core::model::{Connection, ConnectionView};
use ferry_core::ports::{Condition, Item, StoreError, WriteOp};

/// Superseded and revoked links are remembered this long, to explain themselves.
const TOMBSTONE_DAYS: i64 = 90;
/// Longest lifetime an operator may give a link.
const MAX_TTL_DAYS: i64 = 366;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LinkRecord {
    tenant: String,
    connection: String,
    generation: u32,
    #[serde(default)]
    revoked_at: Option<DateTime<Utc>>,
}

/// Options of a (re-)issued link.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueLink {
    /// Lifetime in seconds; absent: the link does not expire.
    #[serde(default)]
    pub ttl_seconds: Option<i64>,
}

/// Why a magic link does not open its page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkProblem {
    Unknown,
    Revoked,
    Expired,
    /// The connection's tenant is archived: read-only, so nothing on the
    /// customer's side may change it ([`crate::tenants::ensure_writable`]).
    Archived,
}

impl LinkProblem {
    pub fn message(self) -> &'static str {
        match self {
            LinkProblem::Unknown => "This link is not valid. Check that you copied all of it, or ask for a new one.",
            LinkProblem::Revoked => "This link has been replaced or revoked. Ask the sender for the current link.",
            LinkProblem::Expired => "This link has expired. Ask the sender for a new one.",
            LinkProblem::Archived => {
                "The account this connection belongs to has been archived: its connections can no longer be changed, and nothing is saved here. Ask the sender if you think this is a mistake."
            }
        }
    }
}

fn token_for(key: &PlatformKey, tenant: &str, connection: &str, generation: u32) -> String {
    format!("ml_{}", key.sign_b64("magic-link", &[tenant, connection, &generation.to_string()]))
}

impl Connections<'_> {
    /// The magic-link token of a connection's current link.
    pub async fn link_token(&self, conn: &Connection) -> Result<Option<String>> {
        let Some(link) = conn.link.as_ref().filter(|l| !l.revoked) else { return Ok(None) };
        let key = self.keyring.platform_key().await?;
        Ok(Some(token_for(&key, &conn.tenant, &conn.id, link.generation)))
    }

    /// The API's view of a connection, with its magic link.
    pub async fn connection_view(&self, conn: &Connection) -> Result<ConnectionView> {
        let mut view = ConnectionView::from(conn);
        view.link = match self.link_token(conn).await? {
            Some(token) => Some(crate::config::public_base(self.public_url)?.join(&format!("/connect/{token}"))),
            None => None,
        };
        Ok(view)
    }

    /// Issues a new link (a new token), superseding the current one.
    #[tracing::instrument(skip_all, fields(tenant = tenant, connection = id))]
    pub async fn issue_link(&self, tenant: &str, id: &str, options: IssueLink) -> Result<Connection> {
        let ttl = match options.ttl_seconds {
            None => None,
            Some(s) if (60..=MAX_TTL_DAYS * 86_400).contains(&s) => Some(Duration::seconds(s)),
            Some(_) => {
                return Err(Error::invalid(
                    "invalid_ttl",
                    format!("ttl_seconds must be between 60 and {} (one year), or absent", MAX_TTL_DAYS * 86_400),
                ))
            }
        };
        let key = self.keyring.platform_key().await?;
        for _ in 0..5 {
            let current = records::get::<Connection>(self.store, &keys::connection(tenant, id))
                .await?
                .ok_or_else(|| Error::not_found("connection", id))?;
            let mut conn = current.value;
            let now = self.clock.now();
            let generation = conn.link.as_ref().map_or(0, |l| l.generation) + 1;
            let token = token_for(&key, tenant, id, generation);
            let hash = sha256_hex(&token);
            let mut ops = Vec::new();
            if let Some(old) = conn.link.as_ref().filter(|l| !l.revoked) {
                ops.push(self.tombstone(tenant, id, old.generation, &old.sha256, now)?);
            }
            let record =
                LinkRecord { tenant: tenant.to_owned(), connection: id.to_owned(), generation, revoked_at: None };
            ops.push(records::put(keys::magic_link(&hash), &record, Condition::None)?);
            conn.link = Some(LinkState { generation, sha256: hash, expires_at: ttl.map(|t| now + t), revoked: false });
            conn.updated_at = now;
            ops.push(records::put(keys::connection(tenant, id), &conn, Condition::VersionIs(current.version))?);
            match self.store.write(ops).await {
                Ok(()) => return Ok(conn),
                Err(StoreError::ConditionFailed) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::conflict("concurrent_update", "the connection kept changing while issuing its link; retry"))
    }

    /// Revokes the current link; the connection has none until one is issued.
    #[tracing::instrument(skip_all, fields(tenant = tenant, connection = id))]
    pub async fn revoke_link(&self, tenant: &str, id: &str) -> Result<Connection> {
        for _ in 0..5 {
            let current = records::get::<Connection>(self.store, &keys::connection(tenant, id))
                .await?
                .ok_or_else(|| Error::not_found("connection", id))?;
            let mut conn = current.value;
            let Some(link) = conn.link.as_mut().filter(|l| !l.revoked) else { return Ok(conn) };
            // The link state stays (revoked), so the next issue counts on from
            // its generation and never recreates this token.
            link.revoked = true;
            let (generation, hash) = (link.generation, link.sha256.clone());
            let now = self.clock.now();
            conn.updated_at = now;
            let ops = vec![
                self.tombstone(tenant, id, generation, &hash, now)?,
                records::put(keys::connection(tenant, id), &conn, Condition::VersionIs(current.version))?,
            ];
            match self.store.write(ops).await {
                Ok(()) => return Ok(conn),
                Err(StoreError::ConditionFailed) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::conflict("concurrent_update", "the connection kept changing while revoking its link; retry"))
    }

    fn tombstone(&self, tenant: &str, id: &str, generation: u32, hash: &str, now: DateTime<Utc>) -> Result<WriteOp> {
        let record =
            LinkRecord { tenant: tenant.to_owned(), connection: id.to_owned(), generation, revoked_at: Some(now) };
        let expires = (now + Duration::days(TOMBSTONE_DAYS)).timestamp();
        Ok(WriteOp::Put {
            item: Item::new(keys::magic_link(hash), records::to_body(&record)?).with_expiry(expires),
            condition: Condition::None,
        })
    }

    /// The connection a magic-link token opens, or why it opens none. Unknown
    /// tokens are not looked up further than their hash.
    pub async fn resolve_link(&self, token: &str) -> Result<std::result::Result<Connection, LinkProblem>> {
        if !token.starts_with("ml_") || token.len() > 100 {
            return Ok(Err(LinkProblem::Unknown));
        }
        let hash = sha256_hex(token);
        let Some(record) = records::get::<LinkRecord>(self.store, &keys::magic_link(&hash)).await? else {
            return Ok(Err(LinkProblem::Unknown));
        };
        let record = record.value;
        if record.revoked_at.is_some() {
            return Ok(Err(LinkProblem::Revoked));
        }
        let conn = match self.get_connection(&record.tenant, &record.connection).await {
            Ok(c) => c,
            Err(Error::NotFound { .. }) => return Ok(Err(LinkProblem::Unknown)),
            Err(e) => return Err(e),
        };
        let Some(link) = &conn.link else { return Ok(Err(LinkProblem::Revoked)) };
        if link.revoked || link.generation != record.generation || link.sha256 != hash {
            return Ok(Err(LinkProblem::Revoked));
        }
        if link.expires_at.is_some_and(|t| t <= self.clock.now()) {
            return Ok(Err(LinkProblem::Expired));
        }
        Ok(self.customer_side(&conn).await?.map(|()| conn))
    }

    /// The one check of the end customer's side, the connect pages (through
    /// [`Connections::resolve_link`]) and the OAuth callback alike: a connection of an
    /// archived tenant is read-only, by the same rule as the API's
    /// ([`crate::tenants::ensure_writable`]). Checked before anything is
    /// stored; the page shows [`LinkProblem::Archived`]'s sentence.
    pub(crate) async fn customer_side(&self, conn: &Connection) -> Result<std::result::Result<(), LinkProblem>> {
        match lookups::find_tenant(self.store, &conn.tenant).await? {
            None => Ok(Err(LinkProblem::Unknown)),
            Some(t) if crate::tenants::ensure_writable(&t).is_err() => Ok(Err(LinkProblem::Archived)),
            Some(_) => Ok(Ok(())),
        }
    }
}
