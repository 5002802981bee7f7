//! Inbound webhooks as domain operations: enabling a job's hook, resolving a
//! hook for the intake, storing deliveries exactly once, and handing them to
//! webhook runs.
//!
//! A job that is paused, or whose tenant is paused, holds its deliveries
//! ([`crate::jobs::held_because`]): they are stored and acknowledged as
//! always, no run serves them, and resuming starts the run that does
//! ([`Hub::serve_held_deliveries`]). An archived tenant's hooks store nothing.

use chrono::{DateTime, Duration, Utc};
use ferry_core::crypto::sha256_hex;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::PublicUrl;
use crate::repo::{keys, lookups, records};
use crate::Jobs;
use ferry_core::error::{Error, Result};
use ferry_core::manifest::{Manifest, Webhooks};
use ferry_core::model::{Run, Trigger};
use ferry_core::ports::{
    Clock, Condition, FileStore, IdGen, Index, Query, SecretFields, SecretRef, SecretStore, Store, StoreError, WriteOp,
};

/// Hooks: a job's inbound webhook (enabling it, rotating its secret, what the
/// intake resolves a hook to, its URL under the public URL) and its
/// deliveries (stored exactly once, large bodies in the file store; taken and
/// consumed by webhook runs, held while the job is paused). Calls Jobs
/// (`job_held_because`). Runs that serve deliveries are started by
/// execution, not here.
#[derive(Clone, Copy)]
pub struct Hooks<'h> {
    pub(crate) store: &'h dyn Store,
    pub(crate) secrets: &'h dyn SecretStore,
    pub(crate) clock: &'h dyn Clock,
    pub(crate) ids: &'h dyn IdGen,
    pub(crate) files: Option<&'h dyn FileStore>,
    pub(crate) public_url: Option<&'h crate::config::PublicUrl>,
    pub(crate) jobs: Jobs<'h>,
}

/// How long a delivery id is remembered: redeliveries within it are recognised.
pub const REPLAY_WINDOW_DAYS: i64 = 3;
/// Bodies above this go to the file store; the item keeps only the path.
pub const INLINE_BODY_LIMIT: usize = 64 * 1024;
/// Deliveries one webhook run takes; the rest go to the next run.
pub const MAX_PER_RUN: usize = 1000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HookRecord {
    pub id: String,
    pub tenant: String,
    pub job: String,
    pub created_at: DateTime<Utc>,
    /// When the secret was last rotated. Rewriting the record on rotation
    /// raises its store version, which every intake compares per delivery
    /// (`hooks::intake`), so a rotated secret stops working at once everywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, Deserialize)]
struct JobHook {
    hook_id: String,
}

/// A hook as the intake needs it: where deliveries go and how to verify them.
#[derive(Clone)]
pub struct ResolvedHook {
    pub hook: HookRecord,
    pub webhooks: Webhooks,
    /// The signing secret (absent for `api_key` verification).
    pub secret: Option<SecretString>,
    /// The hook record's store version when it was resolved, read before the secret.
    pub version: u64,
}

impl std::fmt::Debug for ResolvedHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolvedHook").field("hook", &self.hook).field("secret", &"********").finish()
    }
}

/// A verified delivery about to be stored.
pub struct Incoming {
    /// The provider's delivery id (or the body hash when it sends none), as recorded.
    pub delivery_id: String,
    /// What replay protection remembers: the delivery id when the signature
    /// covers it, else `sha256:<body digest>` (see `hooks::intake::replay_key`).
    pub replay_key: String,
    pub body_sha256: String,
    /// Length of the raw body.
    pub body_len: usize,
    pub payload: Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    New(String),
    Duplicate(String),
}

#[derive(Serialize, Deserialize)]
struct Claim {
    seq: String,
    body_sha256: String,
}

/// A stored delivery: its payload inline, or the path of a file holding it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delivery {
    pub seq: String,
    pub delivery_id: String,
    pub received_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Taken {
    seqs: Vec<String>,
}

fn secret_ref(tenant: &str, job: &str) -> SecretRef {
    SecretRef::new(tenant, format!("hooks/{job}"))
}

fn new_hook_id() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("h{}", hex::encode(bytes))
}

/// The public path of a hook.
pub fn hook_path(hook_id: &str) -> String {
    format!("/hooks/{hook_id}")
}

impl Hooks<'_> {
    /// The webhooks section of the release a job resolves to now.
    pub async fn job_manifest(&self, tenant: &str, job: &str) -> Result<Manifest> {
        let job = lookups::job(self.store, tenant, job).await?.value;
        Ok(lookups::release_for(self.store, &job).await?.ok_or_else(crate::jobs::no_release)?.manifest)
    }

    /// Creates the job's inbound hook, or rotates its secret. `secret` is the
    /// provider's signing secret when the provider issues it (Shopify, HubSpot);
    /// otherwise Ferry generates a Standard Webhooks secret. Returns the hook
    /// and the secret now in force.
    #[tracing::instrument(skip_all, fields(tenant = tenant, job = job))]
    pub async fn enable_webhook(
        &self,
        tenant: &str,
        job: &str,
        secret: Option<String>,
    ) -> Result<(HookRecord, String)> {
        let manifest = self.job_manifest(tenant, job).await?;
        if manifest.webhooks.is_none() {
            return Err(Error::invalid(
                "no_webhooks",
                "the job's release declares no `webhooks` section, so it cannot receive deliveries",
            ));
        }
        if let Some(s) = &secret {
            crate::auth::credentials::validate_provider_secret("secret", s)?;
        }
        let secret = secret.unwrap_or_else(super::verify::generate_secret);
        let mut fields = SecretFields::new();
        fields.insert("secret", secret.clone());
        self.secrets.put(&secret_ref(tenant, job), &fields).await?;
        if let Some(existing) = records::get::<JobHook>(self.store, &keys::job_hook(tenant, job)).await? {
            if let Some(hook) = records::get::<HookRecord>(self.store, &keys::hook(&existing.value.hook_id)).await? {
                return Ok((self.mark_rotated(hook).await?, secret));
            }
        }
        let hook = HookRecord {
            id: new_hook_id(),
            tenant: tenant.to_owned(),
            job: job.to_owned(),
            created_at: self.clock.now(),
            rotated_at: None,
        };
        let ops = vec![
            records::put(keys::job_hook(tenant, job), &JobHook { hook_id: hook.id.clone() }, Condition::NotExists)?,
            records::put(keys::hook(&hook.id), &hook, Condition::NotExists)?,
        ];
        records::write_or_conflict(self.store, ops, || {
            Error::conflict("concurrent_update", "the job's webhook was enabled meanwhile; retry")
        })
        .await?;
        Ok((hook, secret))
    }

    /// Rewrites the hook record after its secret changed (see [`HookRecord::rotated_at`]).
    async fn mark_rotated(&self, current: records::Versioned<HookRecord>) -> Result<HookRecord> {
        let mut hook = current.value;
        hook.rotated_at = Some(self.clock.now());
        let op = records::put(keys::hook(&hook.id), &hook, Condition::VersionIs(current.version))?;
        records::write_or_conflict(self.store, vec![op], || {
            Error::conflict("concurrent_update", "the webhook's secret was rotated meanwhile; retry")
        })
        .await?;
        Ok(hook)
    }

    /// The store version of a hook record, `None` for an unknown hook: what an
    /// intake compares with the version its cached [`ResolvedHook`] was read at.
    pub async fn hook_version(&self, hook_id: &str) -> Result<Option<u64>> {
        Ok(records::get::<HookRecord>(self.store, &keys::hook(hook_id)).await?.map(|h| h.version))
    }

    /// The job's hook and its secret, if the hook is enabled.
    pub async fn job_webhook(&self, tenant: &str, job: &str) -> Result<Option<(HookRecord, Option<SecretString>)>> {
        let Some(link) = records::get::<JobHook>(self.store, &keys::job_hook(tenant, job)).await? else {
            return Ok(None);
        };
        let Some(hook) = records::get::<HookRecord>(self.store, &keys::hook(&link.value.hook_id)).await? else {
            return Ok(None);
        };
        let secret = self.secrets.get(&secret_ref(tenant, job)).await?.and_then(|f| f.get("secret").cloned());
        Ok(Some((hook.value, secret)))
    }

    /// Everything the intake needs about a hook, or `None` for an unknown one.
    pub async fn resolve_hook(&self, hook_id: &str) -> Result<Option<ResolvedHook>> {
        let Some(hook) = records::get::<HookRecord>(self.store, &keys::hook(hook_id)).await? else {
            return Ok(None);
        };
        let (hook, version) = (hook.value, hook.version);
        let manifest = match self.job_manifest(&hook.tenant, &hook.job).await {
            Ok(m) => m,
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(webhooks) = manifest.webhooks else { return Ok(None) };
        let secret =
            self.secrets.get(&secret_ref(&hook.tenant, &hook.job)).await?.and_then(|f| f.get("secret").cloned());
        Ok(Some(ResolvedHook { hook, webhooks, secret, version }))
    }

    /// Stores a verified delivery once. A second delivery with the same id and
    /// body is a redelivery (`Duplicate`); the same id with another body is a
    /// replay and refused. An archived tenant's hooks store nothing (409
    /// `tenant_archived`, [`crate::tenants::ensure_writable`]): the tenant is
    /// read per delivery, as a resolved hook is cached and archiving does not
    /// change the hook's record.
    pub async fn store_delivery(&self, hook: &HookRecord, incoming: Incoming) -> Result<Stored> {
        let (tenant, job) = (&hook.tenant, &hook.job);
        crate::tenants::ensure_writable(&lookups::tenant(self.store, tenant).await?)?;
        let now = self.clock.now();
        let id_hash = sha256_hex(incoming.replay_key.as_bytes());
        let claim_key = keys::delivery_claim(tenant, job, &id_hash);
        let large = incoming.body_len > INLINE_BODY_LIMIT;
        // A redelivered large body must not be written to the file store again.
        if large {
            if let Some(existing) = records::get::<Claim>(self.store, &claim_key).await? {
                return duplicate_or_replay(existing.value, &incoming.body_sha256);
            }
        }
        let seq = self.ids.next_id();
        let mut delivery = Delivery {
            seq: seq.clone(),
            delivery_id: incoming.delivery_id.chars().take(200).collect(),
            received_at: now,
            payload: None,
            file: None,
        };
        if large {
            let files = self.files.as_ref().ok_or_else(|| {
                Error::invalid("payload_too_large", "this host stores no bodies above 64 KiB (it has no file store)")
            })?;
            let path = format!("webhooks/{job}/{seq}.json");
            let mut w = files.create(tenant, &path).await?;
            let bytes = serde_json::to_vec(&incoming.payload).map_err(|e| Error::Internal(e.to_string()))?;
            w.write(&bytes).await?;
            w.commit().await?;
            delivery.file = Some(path);
        } else {
            delivery.payload = Some(incoming.payload);
        }
        let claim = Claim { seq: seq.clone(), body_sha256: incoming.body_sha256.clone() };
        let expires = (now + Duration::days(REPLAY_WINDOW_DAYS)).timestamp();
        let ops = vec![
            WriteOp::Put {
                item: ferry_core::ports::Item::new(claim_key.clone(), records::to_body(&claim)?).with_expiry(expires),
                condition: Condition::NotExists,
            },
            records::put(keys::delivery(tenant, job, &seq), &delivery, Condition::NotExists)?,
        ];
        match self.store.write(ops).await {
            Ok(()) => Ok(Stored::New(seq)),
            Err(StoreError::ConditionFailed) => {
                // Lost a race with the same delivery arriving twice at once.
                let existing = records::get::<Claim>(self.store, &claim_key)
                    .await?
                    .ok_or_else(|| Error::conflict("concurrent_update", "the delivery changed meanwhile; retry"))?;
                duplicate_or_replay(existing.value, &incoming.body_sha256)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The payloads a webhook run serves: the pending deliveries at its start
    /// (at most [`MAX_PER_RUN`]), remembered so that only those are consumed.
    /// A run that only deliveries or ticks asked for takes none while the job
    /// holds them (a run queued, or bundled behind another, before a pause);
    /// one an operator asked for ("run now" in `webhook` mode) takes them.
    pub(crate) async fn take_deliveries(&self, tenant: &str, job: &str, run_id: &str) -> Result<Vec<Value>> {
        let taken_key = keys::run_deliveries(tenant, job, run_id);
        let deliveries = match records::get::<Taken>(self.store, &taken_key).await? {
            Some(t) => {
                let mut out = Vec::new();
                for seq in &t.value.seqs {
                    if let Some(d) = records::get::<Delivery>(self.store, &keys::delivery(tenant, job, seq)).await? {
                        out.push(d.value);
                    }
                }
                out
            }
            None => {
                let out: Vec<Delivery> = if self.run_waits_for_resume(tenant, job, run_id).await? {
                    Vec::new()
                } else {
                    let q = Query::partition(Index::Primary, keys::deliveries_partition(tenant, job))
                        .prefix("Q#")
                        .limit(MAX_PER_RUN as u32);
                    let page = self.store.query(&q).await?;
                    page.items.into_iter().map(|i| records::from_item(i).map(|v| v.value)).collect::<Result<_>>()?
                };
                let taken = Taken { seqs: out.iter().map(|d| d.seq.clone()).collect() };
                self.store.write(vec![records::put(taken_key, &taken, Condition::None)?]).await?;
                out
            }
        };
        let mut payloads = Vec::with_capacity(deliveries.len());
        for d in deliveries {
            match (d.payload, d.file) {
                (Some(p), _) => payloads.push(p),
                (None, Some(path)) => {
                    let files = self
                        .files
                        .as_ref()
                        .ok_or_else(|| Error::Internal("delivery body in a file, no file store".into()))?;
                    let bytes = files
                        .read(tenant, &path)
                        .await?
                        .ok_or_else(|| Error::Internal(format!("delivery file {path} is missing")))?;
                    payloads.push(serde_json::from_slice(&bytes).map_err(|e| Error::Internal(e.to_string()))?);
                }
                (None, None) => {}
            }
        }
        Ok(payloads)
    }

    /// Whether a webhook run must leave the deliveries alone: the job holds
    /// them, and no trigger of the run is an operator's.
    async fn run_waits_for_resume(&self, tenant: &str, job: &str, run_id: &str) -> Result<bool> {
        if self.jobs.job_held_because(tenant, job).await?.is_none() {
            return Ok(false);
        }
        let run = records::get::<Run>(self.store, &keys::run(tenant, job, run_id)).await?;
        let automatic = |t: &Trigger| matches!(t.source.as_str(), "webhook" | "schedule");
        Ok(run.is_none_or(|r| r.value.triggers.iter().all(automatic)))
    }

    /// Deletes the deliveries a finished webhook run took; says whether more
    /// wait for a run now (not while the job holds them: resuming serves them).
    pub(crate) async fn consume_deliveries(&self, tenant: &str, job: &str, run_id: &str) -> Result<bool> {
        let taken_key = keys::run_deliveries(tenant, job, run_id);
        if let Some(t) = records::get::<Taken>(self.store, &taken_key).await? {
            for chunk in t.value.seqs.chunks(ferry_core::ports::MAX_WRITE_OPS) {
                let ops = chunk
                    .iter()
                    .map(|seq| WriteOp::Delete { key: keys::delivery(tenant, job, seq), condition: Condition::None })
                    .collect();
                self.store.write(ops).await?;
            }
        }
        let q = Query::partition(Index::Primary, keys::deliveries_partition(tenant, job)).prefix("Q#").limit(1);
        let waiting = !self.store.query(&q).await?.items.is_empty();
        // Unknown (a job deleted meanwhile): the trigger finds out and says so.
        let held = self.jobs.job_held_because(tenant, job).await.ok().flatten().is_some();
        Ok(waiting && !held)
    }

    /// Pending (not yet consumed) deliveries of a job, oldest first.
    pub async fn pending_deliveries(&self, tenant: &str, job: &str, limit: u32) -> Result<Vec<Delivery>> {
        let q = Query::partition(Index::Primary, keys::deliveries_partition(tenant, job)).prefix("Q#").limit(limit);
        self.store.query(&q).await?.items.into_iter().map(|i| records::from_item(i).map(|v| v.value)).collect()
    }
}

fn duplicate_or_replay(claim: Claim, body_sha256: &str) -> Result<Stored> {
    if ferry_core::crypto::ct_eq(&claim.body_sha256, body_sha256) {
        Ok(Stored::Duplicate(claim.seq))
    } else {
        Err(Error::conflict(
            "replayed_id",
            "a different delivery with this id was already received; delivery ids must be unique",
        ))
    }
}

/// The secret's bytes, for the verifiers.
pub fn secret_bytes(secret: &SecretString) -> &[u8] {
    secret.expose_secret().as_bytes()
}

/// What operators and end customers need to connect a job's providers.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConnectorInfo {
    pub connectors: Vec<ConnectorEntry>,
    /// The inbound webhook, when the job's release declares `webhooks`.
    pub webhook: Option<WebhookInfo>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConnectorEntry {
    pub name: String,
    pub provider: String,
    pub description: Option<String>,
    pub setup: Option<String>,
    /// The tenant's connection bound to it, if any.
    pub connection: Option<String>,
}

#[derive(Clone, Serialize, utoipa::ToSchema)]
pub struct WebhookInfo {
    /// False until an operator enables the hook (`PUT .../webhook`).
    pub enabled: bool,
    /// `/hooks/<id>`: append to the hub's public URL.
    pub path: Option<String>,
    /// The full URL to paste into the provider (when the hub has a public URL).
    pub url: Option<String>,
    /// `standard_webhooks`, `hmac`, `hubspot_v3` or `api_key`.
    pub verification: String,
    /// The signing secret: shown to operators only (never to API keys).
    pub secret: Option<String>,
    pub connector: Option<String>,
    pub setup: Option<String>,
}

impl std::fmt::Debug for WebhookInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookInfo")
            .field("path", &self.path)
            .field("secret", &self.secret.as_ref().map(|_| "********"))
            .finish()
    }
}

pub fn webhook_info(
    webhooks: &Webhooks,
    hook: Option<&HookRecord>,
    secret: Option<String>,
    public_url: Option<&PublicUrl>,
) -> WebhookInfo {
    let verification = match webhooks.verify {
        ferry_core::manifest::WebhookVerification::StandardWebhooks {} => "standard_webhooks",
        ferry_core::manifest::WebhookVerification::Hmac { .. } => "hmac",
        ferry_core::manifest::WebhookVerification::HubspotV3 {} => "hubspot_v3",
        ferry_core::manifest::WebhookVerification::ApiKey {} => "api_key",
    };
    let path = hook.map(|h| hook_path(&h.id));
    WebhookInfo {
        enabled: hook.is_some(),
        url: path.as_ref().and_then(|p| public_url.map(|base| base.join(p))),
        path,
        verification: verification.to_owned(),
        secret,
        connector: webhooks.connector.clone(),
        setup: webhooks.setup.clone(),
    }
}

impl Hooks<'_> {
    /// [`Hooks::enable_webhook`], answered as what to paste into the
    /// provider: the URL, and the secret now in force (the only time it is
    /// shown after a rotation), except for `api_key` verification, whose
    /// secret is the caller's own key.
    pub async fn enable_webhook_info(&self, tenant: &str, job: &str, secret: Option<String>) -> Result<WebhookInfo> {
        let (hook, secret) = self.enable_webhook(tenant, job, secret).await?;
        let manifest = self.job_manifest(tenant, job).await?;
        let webhooks = manifest
            .webhooks
            .ok_or_else(|| Error::invalid("no_webhooks", "the job's release declares no `webhooks` section"))?;
        let secret =
            (!matches!(webhooks.verify, ferry_core::manifest::WebhookVerification::ApiKey {})).then_some(secret);
        Ok(webhook_info(&webhooks, Some(&hook), secret, self.public_url))
    }

    /// The manifest's connector information for a job; the webhook secret only when `operator`.
    pub async fn connector_info(&self, tenant: &str, job_id: &str, operator: bool) -> Result<ConnectorInfo> {
        let job = lookups::job(self.store, tenant, job_id).await?.value;
        let manifest = self.job_manifest(tenant, job_id).await?;
        let connectors = manifest
            .connectors
            .names()
            .into_iter()
            .map(|name| {
                let def = manifest.connectors.definition(name);
                ConnectorEntry {
                    name: name.to_owned(),
                    provider: manifest.connectors.provider(name).to_owned(),
                    description: def.and_then(|d| d.description.clone()),
                    setup: def.and_then(|d| d.setup.clone()),
                    connection: job.connections.get(name).cloned(),
                }
            })
            .collect();
        let webhook = match &manifest.webhooks {
            None => None,
            Some(w) => {
                let hook = self.job_webhook(tenant, job_id).await?;
                let secret = match (&hook, operator, &w.verify) {
                    (_, _, ferry_core::manifest::WebhookVerification::ApiKey {}) => None,
                    (Some((_, Some(s))), true, _) => Some(s.expose_secret().to_owned()),
                    _ => None,
                };
                Some(webhook_info(w, hook.as_ref().map(|(h, _)| h), secret, self.public_url))
            }
        };
        Ok(ConnectorInfo { connectors, webhook })
    }
}
