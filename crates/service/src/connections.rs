//! Connection profiles. Secret fields go to the secret port; the record keeps
//! only their names, and the API shows them masked.

use std::collections::BTreeMap;

use serde::Deserialize;
use utoipa::ToSchema;

use crate::repo::{keys, lookups, records, Page, PageRequest};
use crate::{Hooks, Jobs, Notifications};
use ferry_core::error::{Error, Result};
use ferry_core::model::ids::{is_valid_id, is_valid_name};
use ferry_core::model::{AuthKind, Connection, ConnectionStatus};
use ferry_core::ports::{Clock, Condition, IdGen, Index, Query, SecretFields, SecretRef, SecretStore, Store, WriteOp};

/// Connections: a tenant's credentials for a connector, and everything that
/// gets them or uses them — profiles and their secrets (here), magic links
/// (`links.rs`), OAuth clients and authorization (`oauth.rs`), token refresh
/// (`refresh.rs`), credential checks (`verify.rs`, with the HTTP and net
/// policy) and the redactor built from the secrets (`redaction.rs`). Links
/// and OAuth state are signed with the platform key (`keyring`) and point at
/// the public URL. Calls Jobs (`delete_unreferenced`: a connection bound to
/// a job is not deleted), Hooks (`job_webhook`: a job's signing secret is
/// redacted too) and Notifications (`emit`: a refresh that keeps failing).
#[derive(Clone, Copy)]
pub struct Connections<'h> {
    pub(crate) store: &'h dyn Store,
    pub(crate) secrets: &'h dyn SecretStore,
    pub(crate) clock: &'h dyn Clock,
    pub(crate) ids: &'h dyn IdGen,
    pub(crate) http: &'h ferry_engine::http::HttpPolicy,
    pub(crate) net: ferry_net::NetPolicy,
    pub(crate) keyring: crate::keyring::Keyring<'h>,
    pub(crate) public_url: Option<&'h crate::config::PublicUrl>,
    pub(crate) jobs: Jobs<'h>,
    pub(crate) hooks: Hooks<'h>,
    pub(crate) notifications: Notifications<'h>,
}

#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewConnection {
    pub name: String,
    /// Connector (provider) name, e.g. `hubspot`.
    pub connector: String,
    pub auth_kind: AuthKind,
    /// Non-secret settings.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub settings: serde_json::Map<String, serde_json::Value>,
    /// Secret fields; stored in the secret store, never returned.
    #[serde(default)]
    pub credentials: Option<BTreeMap<String, String>>,
    /// The most requests in flight to this system at once, across every run
    /// and process (1 to 64); unlimited when absent.
    #[serde(default)]
    pub max_concurrent: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionPatch {
    pub name: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub settings: Option<serde_json::Map<String, serde_json::Value>>,
    /// The most requests in flight at once (1 to 64), or `null` for no limit.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>)]
    pub max_concurrent: Option<Option<u32>>,
}

/// Tells `"max_concurrent": null` (remove) apart from an absent field (keep).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> std::result::Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

fn check_max_concurrent(max: Option<u32>) -> Result<()> {
    match max {
        Some(n) if !ferry_core::model::MAX_CONCURRENT.contains(&n) => Err(Error::invalid(
            "invalid_max_concurrent",
            format!(
                "max_concurrent must be {} to {} requests in flight at once (omit it for no limit), not {n}",
                ferry_core::model::MAX_CONCURRENT.start(),
                ferry_core::model::MAX_CONCURRENT.end()
            ),
        )),
        _ => Ok(()),
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct NameClaim {
    id: String,
}

/// Credential field names must be simple identifiers: they become env vars later
/// (`PAN_SEC_<CONNECTOR>_<FIELD>`).
fn valid_field_name(f: &str) -> bool {
    !f.is_empty() && f.len() <= 64 && f.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn check_credentials(kind: AuthKind, fields: &BTreeMap<String, String>) -> Result<SecretFields> {
    if kind == AuthKind::None && !fields.is_empty() {
        return Err(Error::invalid("credentials_not_allowed", "connections with auth_kind 'none' take no credentials"));
    }
    let missing: Vec<&str> =
        kind.required_fields().iter().copied().filter(|f| fields.get(*f).is_none_or(|v| v.is_empty())).collect();
    if !missing.is_empty() {
        return Err(Error::invalid(
            "missing_credentials",
            format!("auth_kind '{}' needs the credential fields: {}", auth_kind_name(kind), missing.join(", ")),
        ));
    }
    let mut secret = SecretFields::new();
    for (name, value) in fields {
        if !valid_field_name(name) {
            return Err(Error::invalid(
                "invalid_credential_field",
                format!("credential field '{name}' must be 1 to 64 lowercase letters, digits or '_'"),
            ));
        }
        if value.len() > 16 * 1024 {
            return Err(Error::invalid(
                "invalid_credential_field",
                format!("credential field '{name}' is longer than 16 KiB"),
            ));
        }
        secret.insert(name.clone(), value.clone());
    }
    Ok(secret)
}

fn auth_kind_name(kind: AuthKind) -> &'static str {
    match kind {
        AuthKind::None => "none",
        AuthKind::ApiKey => "api_key",
        AuthKind::Basic => "basic",
        AuthKind::Bearer => "bearer",
        AuthKind::Oauth2 => "oauth2",
    }
}

fn check_fields(name: &str, connector: &str) -> Result<()> {
    if !is_valid_name(name) {
        return Err(Error::invalid("invalid_name", "name must be 1 to 200 characters without control characters"));
    }
    if !is_valid_id(connector) {
        return Err(Error::invalid(
            "invalid_connector",
            "connector must be a provider name such as 'hubspot' (lowercase letters, digits, '-')",
        ));
    }
    Ok(())
}

/// Who is changing a connection's settings: only platform admins may point
/// a connection at another base URL (`settings.base_url`), since the
/// connection's credentials go wherever it points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingsEditor {
    PlatformAdmin,
    TenantMember,
}

fn check_settings(
    editor: SettingsEditor,
    settings: &serde_json::Map<String, serde_json::Value>,
    policy: ferry_net::NetPolicy,
) -> Result<()> {
    let Some(base) = settings.get(super::origins::BASE_URL_SETTING) else { return Ok(()) };
    if editor != SettingsEditor::PlatformAdmin {
        return Err(Error::Forbidden(
            "only platform admins may set settings.base_url; a connection fills the settings its manifest or provider names in its base URL (e.g. a subdomain)".into(),
        ));
    }
    let base = base.as_str().ok_or_else(|| Error::invalid("invalid_base_url", "settings.base_url must be a string"))?;
    super::origins::check_base(base)?;
    // Names are resolved when requests go out; what the URL says is checked now.
    policy.check(base).map(drop).map_err(|r| Error::invalid(r.code, format!("settings.base_url is refused: {r}")))
}

/// What [`check_settings`] let an admin set: the base URL requests may follow.
fn approved_base_url(settings: &serde_json::Map<String, serde_json::Value>) -> Option<String> {
    settings.get(super::origins::BASE_URL_SETTING).and_then(|v| v.as_str()).map(str::to_owned)
}

pub fn secret_ref(c: &Connection) -> SecretRef {
    SecretRef::new(&c.tenant, format!("connections/{}", c.id))
}

impl Connections<'_> {
    #[tracing::instrument(skip_all, fields(tenant, connection))]
    pub async fn create_connection(
        &self,
        tenant: &str,
        input: NewConnection,
        editor: SettingsEditor,
    ) -> Result<Connection> {
        check_fields(&input.name, &input.connector)?;
        check_settings(editor, &input.settings, self.net)?;
        check_max_concurrent(input.max_concurrent)?;
        let secret = match &input.credentials {
            Some(fields) => Some(check_credentials(input.auth_kind, fields)?),
            None => None,
        };
        let id = self.ids.next_id();
        tracing::Span::current().record("tenant", tenant).record("connection", id.as_str());
        let now = self.clock.now();
        let status = if input.auth_kind == AuthKind::None || secret.is_some() {
            ConnectionStatus::Connected
        } else {
            ConnectionStatus::Disconnected
        };
        let base_url_approved = approved_base_url(&input.settings);
        let conn = Connection {
            id: id.clone(),
            tenant: tenant.to_owned(),
            name: input.name.clone(),
            connector: input.connector,
            auth_kind: input.auth_kind,
            settings: input.settings,
            status,
            secret_fields: secret.as_ref().map(|s| s.names().map(str::to_owned).collect()).unwrap_or_default(),
            status_message: None,
            created_at: now,
            updated_at: now,
            link: None,
            refresh_failures: 0,
            base_url_approved,
            max_concurrent: input.max_concurrent,
        };
        // Secret first: a connection record never points at credentials that were not stored.
        if let Some(secret) = &secret {
            self.secrets.put(&secret_ref(&conn), secret).await?;
        }
        let ops = vec![
            records::put(
                keys::connection_name_claim(tenant, &input.name.to_lowercase()),
                &NameClaim { id: id.clone() },
                Condition::NotExists,
            )?,
            records::put(keys::connection(tenant, &id), &conn, Condition::NotExists)?,
        ];
        let written = records::write_or_conflict(self.store, ops, || {
            Error::conflict(
                "connection_exists",
                format!("tenant '{tenant}' already has a connection named '{}'", input.name),
            )
        })
        .await;
        if let Err(e) = written {
            if secret.is_some() {
                let _ = self.secrets.delete(&secret_ref(&conn)).await;
            }
            return Err(e);
        }
        // Every connection gets its magic link; an operator can re-issue or revoke it.
        self.issue_link(tenant, &id, Default::default()).await
    }

    pub async fn get_connection(&self, tenant: &str, id: &str) -> Result<Connection> {
        Ok(records::get::<Connection>(self.store, &keys::connection(tenant, id))
            .await?
            .ok_or_else(|| Error::not_found("connection", id))?
            .value)
    }

    pub async fn list_connections(&self, tenant: &str, page: &PageRequest) -> Result<Page<Connection>> {
        records::list(
            self.store,
            Query::partition(Index::Primary, keys::tenant_partition(tenant)).prefix("CONN#"),
            page,
        )
        .await
    }

    #[tracing::instrument(skip_all, fields(tenant = tenant, connection = id))]
    pub async fn update_connection(
        &self,
        tenant: &str,
        id: &str,
        patch: ConnectionPatch,
        editor: SettingsEditor,
    ) -> Result<Connection> {
        let key = keys::connection(tenant, id);
        let current =
            records::get::<Connection>(self.store, &key).await?.ok_or_else(|| Error::not_found("connection", id))?;
        let mut conn = current.value;
        let mut ops = Vec::new();
        if let Some(name) = &patch.name {
            check_fields(name, &conn.connector)?;
            if name.to_lowercase() != conn.name.to_lowercase() {
                ops.push(records::put(
                    keys::connection_name_claim(tenant, &name.to_lowercase()),
                    &NameClaim { id: id.to_owned() },
                    Condition::NotExists,
                )?);
                ops.push(WriteOp::Delete {
                    key: keys::connection_name_claim(tenant, &conn.name.to_lowercase()),
                    condition: Condition::None,
                });
            }
            conn.name = name.clone();
        }
        if let Some(max) = patch.max_concurrent {
            check_max_concurrent(max)?;
            conn.max_concurrent = max;
        }
        let mut moved = false;
        if let Some(settings) = patch.settings {
            let base_changed =
                settings.get(super::origins::BASE_URL_SETTING) != conn.settings.get(super::origins::BASE_URL_SETTING);
            // An admin setting a base URL again approves one saved before approvals existed.
            if base_changed || approved_base_url(&settings) != conn.base_url_approved {
                check_settings(editor, &settings, self.net)?;
                conn.base_url_approved = approved_base_url(&settings);
            }
            moved = super::origins::moves_origin(&conn, &settings, &self.bound_placeholders(&conn).await?);
            conn.settings = settings;
        }
        conn.updated_at = self.clock.now();
        ops.push(records::put(key, &conn, Condition::VersionIs(current.version))?);
        records::write_or_conflict(self.store, ops, || {
            Error::conflict("conflict", "another connection has that name, or the connection changed meanwhile; retry")
        })
        .await?;
        if moved && !conn.secret_fields.is_empty() {
            // The credentials were given for the old origin; the new one must earn its own.
            tracing::info!("connection moved to another origin; its credentials were cleared");
            return self.disconnect(tenant, id).await;
        }
        Ok(conn)
    }

    /// The `{setting}` names in the base URLs of the manifests that bind a connection.
    async fn bound_placeholders(&self, conn: &Connection) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for job in lookups::all_jobs(self.store, &conn.tenant).await? {
            let Some((connector, _)) = job.connections.iter().find(|(_, id)| *id == &conn.id) else { continue };
            let Some(release) = lookups::release_for(self.store, &job).await? else { continue };
            names.extend(super::origins::def_placeholders(release.manifest.connectors.definition(connector)));
        }
        Ok(names)
    }

    /// Replaces the credentials and marks the connection connected.
    #[tracing::instrument(skip_all, fields(tenant = tenant, connection = id))]
    pub async fn set_credentials(
        &self,
        tenant: &str,
        id: &str,
        fields: BTreeMap<String, String>,
    ) -> Result<Connection> {
        let conn = self.get_connection(tenant, id).await?;
        let secret = check_credentials(conn.auth_kind, &fields)?;
        if conn.auth_kind == AuthKind::None {
            return Err(Error::invalid(
                "credentials_not_allowed",
                "connections with auth_kind 'none' take no credentials",
            ));
        }
        self.secrets.put(&secret_ref(&conn), &secret).await?;
        let names: Vec<String> = secret.names().map(str::to_owned).collect();
        self.modify_connection(tenant, id, move |c| {
            c.secret_fields = names.clone();
            c.status = ConnectionStatus::Connected;
            c.status_message = None;
            c.refresh_failures = 0;
        })
        .await
    }

    /// Forgets the credentials; the connection stays, `disconnected`.
    #[tracing::instrument(skip_all, fields(tenant = tenant, connection = id))]
    pub async fn disconnect(&self, tenant: &str, id: &str) -> Result<Connection> {
        let conn = self.get_connection(tenant, id).await?;
        self.secrets.delete(&secret_ref(&conn)).await?;
        self.modify_connection(tenant, id, |c| {
            c.secret_fields.clear();
            c.status = if c.auth_kind == AuthKind::None {
                ConnectionStatus::Connected
            } else {
                ConnectionStatus::Disconnected
            };
            c.status_message = None;
            c.refresh_failures = 0;
        })
        .await
    }

    /// Deletes a connection no job binds (409 `connection_in_use` otherwise).
    #[tracing::instrument(skip_all, fields(tenant = tenant, connection = id))]
    pub async fn delete_connection(&self, tenant: &str, id: &str) -> Result<()> {
        let conn = self.get_connection(tenant, id).await?;
        let binds = |job: &ferry_core::model::Job| job.connections.values().any(|c| c == id);
        let in_use = |jobs: &[&ferry_core::model::Job]| {
            Error::conflict(
                "connection_in_use",
                format!(
                    "connection '{id}' is bound by job(s) {}; rebind or delete them first",
                    super::jobs::job_list(jobs)
                ),
            )
        };
        // Refuse before touching the secret, so a refused delete changes nothing.
        let jobs = lookups::all_jobs(self.store, tenant).await?;
        let users: Vec<&ferry_core::model::Job> = jobs.iter().filter(|j| binds(j)).collect();
        if !users.is_empty() {
            return Err(in_use(&users));
        }
        self.secrets.delete(&secret_ref(&conn)).await?;
        let deleted = self
            .jobs
            .delete_unreferenced(
                tenant,
                binds,
                in_use,
                vec![
                    WriteOp::Delete { key: keys::connection(tenant, id), condition: Condition::None },
                    WriteOp::Delete {
                        key: keys::connection_name_claim(tenant, &conn.name.to_lowercase()),
                        condition: Condition::None,
                    },
                ]
                .into_iter()
                .chain(
                    conn.link
                        .as_ref()
                        .map(|l| WriteOp::Delete { key: keys::magic_link(&l.sha256), condition: Condition::None }),
                )
                .collect(),
            )
            .await;
        if deleted.is_err() {
            // A job bound it while its credentials were being deleted: the
            // connection stays, and must say it has no credentials any more.
            let _ = self
                .modify_connection(tenant, id, |c| {
                    c.secret_fields.clear();
                    if c.auth_kind != AuthKind::None {
                        c.status = ConnectionStatus::Disconnected;
                    }
                })
                .await;
        }
        deleted
    }

    /// The stored credentials, for the engine. Never for API responses.
    pub async fn connection_credentials(&self, conn: &Connection) -> Result<Option<SecretFields>> {
        Ok(self.secrets.get(&secret_ref(conn)).await?)
    }

    pub(crate) async fn modify_connection(
        &self,
        tenant: &str,
        id: &str,
        change: impl Fn(&mut Connection),
    ) -> Result<Connection> {
        for _ in 0..5 {
            let key = keys::connection(tenant, id);
            let current = records::get::<Connection>(self.store, &key)
                .await?
                .ok_or_else(|| Error::not_found("connection", id))?;
            let mut conn = current.value;
            change(&mut conn);
            // Status messages quote providers, who may echo what they were sent.
            if let Some(message) = conn.status_message.take() {
                conn.status_message = Some(self.connection_redactor(&conn).await.redact(&message));
            }
            conn.updated_at = self.clock.now();
            match self.store.write(vec![records::put(key, &conn, Condition::VersionIs(current.version))?]).await {
                Ok(()) => return Ok(conn),
                Err(ferry_core::ports::StoreError::ConditionFailed) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::conflict("concurrent_update", "the connection kept changing while updating it; retry"))
    }
}

// Credentials never reach a log line, even through `{:?}`.
impl std::fmt::Debug for NewConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewConnection")
            .field("name", &self.name)
            .field("connector", &self.connector)
            .field("auth_kind", &self.auth_kind)
            .field("settings", &self.settings)
            .field("credentials", &self.credentials.as_ref().map(|c| c.keys().collect::<Vec<_>>()))
            .finish()
    }
}
