//! Domain events and outbound notifications. [`Notifications::emit`] publishes an event
//! to the event port and queues one message per matching notification
//! endpoint in the outbox, a store partition ordered by due time. Delivery
//! ([`Notifications::deliver_due_notifications`]) claims due messages with conditional
//! writes, POSTs them signed per Standard Webhooks, records every attempt,
//! and reschedules failures (5xx, 429, network) with backoff for about a day.
//! Nothing waits in memory: the schedule is in the store, so any process
//! (the embedded host's ticker, the notifications function) can deliver.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::hooks::verify;
use crate::repo::{keys, records, Page, PageRequest};
use ferry_core::error::{Error, Result};
use ferry_core::model::ids::PLATFORM;
use ferry_core::ports::{
    Clock, Condition, Event, EventBus, EventKind, IdGen, Index, Item, Query, SecretFields, SecretRef, SecretStore,
    Store, StoreError, WriteOp,
};
use ferry_net::NetPolicy;

/// Notifications: domain events (`emit`, `emit_run_events`) published to the
/// event port and queued for the notification endpoints they match, the
/// endpoints themselves (signing secrets in the secret store), and delivering
/// what is due under the net policy. Calls no other service.
#[derive(Clone, Copy)]
pub struct Notifications<'h> {
    pub(crate) store: &'h dyn Store,
    pub(crate) secrets: &'h dyn SecretStore,
    pub(crate) clock: &'h dyn Clock,
    pub(crate) ids: &'h dyn IdGen,
    pub(crate) events: Option<&'h dyn EventBus>,
    pub(crate) net: ferry_net::NetPolicy,
}

/// Delay before attempt n+1 after attempt n failed (about 28 hours in all).
pub const BACKOFF: [i64; 7] = [5, 300, 1800, 7200, 18000, 36000, 36000];
/// Messages that exhausted their attempts in a row before the endpoint is disabled.
pub const DISABLE_AFTER: u32 = 3;
/// How long a claimed message is hidden from other deliverers.
const CLAIM_SECONDS: i64 = 120;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NotificationEndpoint {
    pub id: String,
    /// The tenant, or `platform` for platform-wide endpoints (which get every tenant's events).
    pub owner: String,
    pub url: String,
    /// Event types sent; empty means all.
    pub events: Vec<EventKind>,
    pub description: Option<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    /// Messages in a row that could not be delivered.
    pub consecutive_failures: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEndpoint {
    /// `https://` (or `http://` for local receivers) URL that receives POSTs.
    pub url: String,
    /// Event types to send (default: all).
    #[serde(default)]
    pub events: Vec<EventKind>,
    #[serde(default)]
    pub description: Option<String>,
}

/// Returned once, at creation: the signing secret is never shown again.
#[derive(Clone, Serialize, ToSchema)]
pub struct CreatedEndpoint {
    pub endpoint: NotificationEndpoint,
    /// Standard Webhooks secret (`whsec_...`) to verify `webhook-signature` with.
    pub secret: String,
}

impl std::fmt::Debug for CreatedEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedEndpoint").field("endpoint", &self.endpoint).field("secret", &"********").finish()
    }
}

/// One delivery attempt, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Attempt {
    pub message: String,
    pub event: String,
    pub number: u32,
    pub at: DateTime<Utc>,
    /// HTTP status, when the receiver answered.
    pub status: Option<u16>,
    /// Why it failed without a status (timeout, connection refused).
    pub error: Option<String>,
    /// `delivered`, `retrying`, `failed`.
    pub outcome: String,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// A queued message: the event for one endpoint and how many attempts it had.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Message {
    id: String,
    owner: String,
    endpoint: String,
    event: Event,
    attempts: u32,
}

fn secret_ref(owner: &str, id: &str) -> SecretRef {
    SecretRef::new(owner, format!("notifications/{id}"))
}

/// Endpoints are checked against the outbound policy when created (and
/// again at each delivery: DNS can change).
async fn check_url(policy: NetPolicy, url: &str) -> Result<()> {
    if url.len() > 2048 {
        return Err(Error::invalid("invalid_url", "url must be an absolute https URL of at most 2048 characters"));
    }
    match policy.check_resolved(url).await {
        Ok(_) => Ok(()),
        Err(r) if r.code == "invalid_url" => {
            Err(Error::invalid("invalid_url", format!("url must be an absolute https URL without credentials: {r}")))
        }
        Err(r) => Err(Error::invalid(r.code, format!("url is refused: {r}"))),
    }
}

/// What delivering needs besides the hub: an HTTP client per outbound policy
/// (the hub's settings decide which one a delivery uses).
#[derive(Clone)]
pub struct Notifier {
    strict: reqwest::Client,
    private: reqwest::Client,
}

impl Notifier {
    pub fn new(timeout: StdDuration) -> Result<Self> {
        let client = |allow| NetPolicy::new(allow).client(timeout, "ferry-notifications").map_err(Error::Internal);
        Ok(Self { strict: client(false)?, private: client(true)? })
    }

    fn client(&self, policy: NetPolicy) -> &reqwest::Client {
        if policy.allow_private_network {
            &self.private
        } else {
            &self.strict
        }
    }
}

impl Notifications<'_> {
    /// Publishes a domain event and queues its notifications. Never fails the caller.
    pub async fn emit(&self, kind: EventKind, tenant: Option<&str>, data: Value) {
        let event =
            Event { id: self.ids.next_id(), kind, tenant: tenant.map(str::to_owned), at: self.clock.now(), data };
        if let Some(bus) = &self.events {
            if let Err(e) = bus.publish(std::slice::from_ref(&event)).await {
                tracing::error!(error = %e, event = kind.as_str(), "could not publish an event");
            }
        }
        if let Err(e) = self.enqueue_notifications(&event).await {
            tracing::error!(error = %e, event = kind.as_str(), "could not queue notifications");
        }
    }

    async fn enqueue_notifications(&self, event: &Event) -> Result<()> {
        let mut owners = vec![PLATFORM.to_owned()];
        if let Some(t) = &event.tenant {
            owners.push(t.clone());
        }
        let now = self.clock.now();
        for owner in owners {
            for ep in self.all_endpoints(&owner).await? {
                if !ep.enabled || !(ep.events.is_empty() || ep.events.contains(&event.kind)) {
                    continue;
                }
                let msg = Message {
                    id: self.ids.next_id(),
                    owner: owner.clone(),
                    endpoint: ep.id.clone(),
                    event: event.clone(),
                    attempts: 0,
                };
                let op = records::put(keys::outbox(now.timestamp(), &msg.id), &msg, Condition::NotExists)?;
                self.store.write(vec![op]).await?;
            }
        }
        Ok(())
    }

    async fn all_endpoints(&self, owner: &str) -> Result<Vec<NotificationEndpoint>> {
        let mut out = Vec::new();
        let mut page = PageRequest { limit: Some(records::MAX_PAGE), cursor: None };
        loop {
            let p = self.list_endpoints(owner, &page).await?;
            out.extend(p.items);
            match p.next_cursor {
                Some(c) => page.cursor = Some(c),
                None => return Ok(out),
            }
        }
    }

    #[tracing::instrument(skip_all, fields(owner = owner))]
    pub async fn create_endpoint(&self, owner: &str, input: NewEndpoint) -> Result<CreatedEndpoint> {
        check_url(self.net, &input.url).await?;
        if input.description.as_ref().is_some_and(|d| d.chars().count() > 500) {
            return Err(Error::invalid("invalid_description", "description must be at most 500 characters"));
        }
        let now = self.clock.now();
        let ep = NotificationEndpoint {
            id: self.ids.next_id(),
            owner: owner.to_owned(),
            url: input.url,
            events: input.events,
            description: input.description,
            enabled: true,
            disabled_reason: None,
            consecutive_failures: 0,
            created_at: now,
            updated_at: now,
        };
        let secret = verify::generate_secret();
        let mut fields = SecretFields::new();
        fields.insert("secret", secret.clone());
        self.secrets.put(&secret_ref(owner, &ep.id), &fields).await?;
        let op = records::put(keys::notification_endpoint(owner, &ep.id), &ep, Condition::NotExists)?;
        self.store.write(vec![op]).await?;
        Ok(CreatedEndpoint { endpoint: ep, secret })
    }

    pub async fn list_endpoints(&self, owner: &str, page: &PageRequest) -> Result<Page<NotificationEndpoint>> {
        let q = Query::partition(Index::Primary, keys::key_owner_partition(owner)).prefix("NEP#");
        records::list(self.store, q, page).await
    }

    pub async fn get_endpoint(&self, owner: &str, id: &str) -> Result<records::Versioned<NotificationEndpoint>> {
        records::get(self.store, &keys::notification_endpoint(owner, id))
            .await?
            .ok_or_else(|| Error::not_found("notification endpoint", id))
    }

    pub async fn delete_endpoint(&self, owner: &str, id: &str) -> Result<()> {
        self.get_endpoint(owner, id).await?;
        self.store
            .write(vec![WriteOp::Delete { key: keys::notification_endpoint(owner, id), condition: Condition::None }])
            .await?;
        self.secrets.delete(&secret_ref(owner, id)).await?;
        Ok(())
    }

    /// Re-enables a disabled endpoint and clears its failure count.
    pub async fn enable_endpoint(&self, owner: &str, id: &str) -> Result<NotificationEndpoint> {
        self.update_endpoint(owner, id, |ep| {
            ep.enabled = true;
            ep.disabled_reason = None;
            ep.consecutive_failures = 0;
        })
        .await
    }

    async fn update_endpoint(
        &self,
        owner: &str,
        id: &str,
        change: impl Fn(&mut NotificationEndpoint),
    ) -> Result<NotificationEndpoint> {
        for _ in 0..5 {
            let current = self.get_endpoint(owner, id).await?;
            let mut ep = current.value;
            change(&mut ep);
            ep.updated_at = self.clock.now();
            let op = records::put(keys::notification_endpoint(owner, id), &ep, Condition::VersionIs(current.version))?;
            match self.store.write(vec![op]).await {
                Ok(()) => return Ok(ep),
                Err(StoreError::ConditionFailed) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::conflict("concurrent_update", "the endpoint kept changing; retry"))
    }

    /// An endpoint's recorded attempts, newest first.
    pub async fn endpoint_attempts(&self, owner: &str, id: &str, page: &PageRequest) -> Result<Page<Attempt>> {
        self.get_endpoint(owner, id).await?;
        let q =
            Query::partition(Index::Primary, keys::notification_log_partition(owner, id)).prefix("ATT#").descending();
        records::list(self.store, q, page).await
    }

    /// Delivers every message due now (at most `max`); returns how many attempts were made.
    #[tracing::instrument(name = "deliver_notifications", skip_all)]
    pub async fn deliver_due_notifications(&self, notifier: &Notifier, max: usize) -> Result<usize> {
        let now = self.clock.now();
        let q = Query::partition(Index::Primary, keys::OUTBOX).prefix("DUE#").limit(100);
        let page = self.store.query(&q).await?;
        let mut attempted = 0;
        for item in page.items {
            if attempted >= max {
                break;
            }
            let due: i64 = item.key.sk.get(4..16).and_then(|s| s.parse().ok()).unwrap_or(i64::MAX);
            if due > now.timestamp() {
                break; // Sorted by due time: nothing later is due either.
            }
            let Some((msg, claim)) = self.claim(item, now).await? else { continue };
            attempted += 1;
            self.attempt(notifier, msg, claim, now).await?;
        }
        Ok(attempted)
    }

    /// Moves a due message out of sight for a while; only one deliverer wins.
    async fn claim(&self, item: Item, now: DateTime<Utc>) -> Result<Option<(Message, ferry_core::ports::Key)>> {
        let msg: Message = records::from_item(item.clone())?.value;
        let claim = keys::outbox((now + Duration::seconds(CLAIM_SECONDS)).timestamp(), &msg.id);
        let ops = vec![
            WriteOp::Delete { key: item.key.clone(), condition: Condition::VersionIs(item.version) },
            records::put(claim.clone(), &msg, Condition::NotExists)?,
        ];
        match self.store.write(ops).await {
            Ok(()) => Ok(Some((msg, claim))),
            Err(StoreError::ConditionFailed) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn attempt(
        &self,
        notifier: &Notifier,
        mut msg: Message,
        claim: ferry_core::ports::Key,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let endpoint =
            records::get::<NotificationEndpoint>(self.store, &keys::notification_endpoint(&msg.owner, &msg.endpoint))
                .await?;
        let secret =
            self.secrets.get(&secret_ref(&msg.owner, &msg.endpoint)).await?.and_then(|f| f.get("secret").cloned());
        let (Some(endpoint), Some(secret)) = (endpoint.map(|e| e.value).filter(|e| e.enabled), secret) else {
            // Deleted or disabled meanwhile: drop the message.
            self.store.write(vec![WriteOp::Delete { key: claim, condition: Condition::None }]).await?;
            return Ok(());
        };
        msg.attempts += 1;
        let body = serde_json::to_vec(&msg.event).map_err(|e| Error::Internal(e.to_string()))?;
        let key = verify::standard_key(secret.expose_secret());
        let ts = now.timestamp();
        let signature = verify::standard_signature(&key, &msg.id, ts, &body);
        let (status, error, retry_after, retryable) =
            match self.post(notifier, &endpoint.url, &msg.id, ts, signature, body).await {
                Posted::Answered { status, retry_after } => {
                    (Some(status), None, retry_after, status == 429 || status >= 500)
                }
                Posted::Failed(why) => (None, Some(why), None, true),
                // Where the endpoint leads now is off limits: retrying will not change that soon.
                Posted::Refused(r) => (None, Some(format!("not sent: {r}")), None, false),
            };
        let delivered = status.is_some_and(|s| (200..300).contains(&s));
        let next = if !delivered && retryable {
            BACKOFF
                .get(msg.attempts as usize - 1)
                .map(|d| now + Duration::seconds((*d).max(retry_after.unwrap_or(0).min(86_400))))
        } else {
            None
        };
        let outcome = if delivered {
            "delivered"
        } else if next.is_some() {
            "retrying"
        } else {
            "failed"
        };
        tracing::info!(endpoint = %endpoint.id, message = %msg.id, attempt = msg.attempts, ?status, outcome, "notification attempt");
        let attempt = Attempt {
            message: msg.id.clone(),
            event: msg.event.kind.as_str().to_owned(),
            number: msg.attempts,
            at: now,
            status,
            error,
            outcome: outcome.to_owned(),
            next_attempt_at: next,
        };
        let log_pk = keys::notification_log_partition(&msg.owner, &msg.endpoint);
        let mut ops = vec![
            records::put(
                ferry_core::ports::Key::new(log_pk, format!("ATT#{}#{:03}", msg.id, msg.attempts)),
                &attempt,
                Condition::None,
            )?,
            WriteOp::Delete { key: claim, condition: Condition::None },
        ];
        if let Some(at) = next {
            ops.push(records::put(keys::outbox(at.timestamp(), &msg.id), &msg, Condition::None)?);
        }
        self.store.write(ops).await?;
        if delivered && endpoint.consecutive_failures > 0 {
            self.update_endpoint(&msg.owner, &msg.endpoint, |ep| ep.consecutive_failures = 0).await?;
        } else if outcome == "failed" {
            let ep = self
                .update_endpoint(&msg.owner, &msg.endpoint, |ep| {
                    ep.consecutive_failures += 1;
                    if ep.consecutive_failures >= DISABLE_AFTER && ep.enabled {
                        ep.enabled = false;
                        ep.disabled_reason =
                            Some(format!("{} notifications in a row could not be delivered", ep.consecutive_failures));
                    }
                })
                .await?;
            if !ep.enabled && endpoint.enabled {
                let tenant = (ep.owner != PLATFORM).then_some(ep.owner.as_str());
                self.emit(EventKind::EndpointDisabled, tenant, json!({"endpoint": ep.id})).await;
            }
        }
        Ok(())
    }
}

/// How one POST to an endpoint went.
enum Posted {
    Answered { status: u16, retry_after: Option<i64> },
    Failed(String),
    Refused(ferry_net::Refusal),
}

impl Notifications<'_> {
    /// POSTs a signed message under the outbound policy, checked again now:
    /// the endpoint's name may resolve elsewhere than when it was created.
    async fn post(
        &self,
        notifier: &Notifier,
        url: &str,
        id: &str,
        ts: i64,
        signature: String,
        body: Vec<u8>,
    ) -> Posted {
        let policy = self.net;
        if let Err(r) = policy.check(url) {
            return Posted::Refused(r);
        }
        let sent = notifier
            .client(policy)
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        match sent {
            Ok(res) => {
                let retry_after = res
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<i64>().ok());
                Posted::Answered { status: res.status().as_u16(), retry_after }
            }
            Err(e) => match ferry_net::refusal_in(&e) {
                Some(r) => Posted::Refused(r),
                None if e.is_timeout() => Posted::Failed("timed out".into()),
                None if e.is_connect() => Posted::Failed("could not connect".into()),
                None => Posted::Failed("request failed".into()),
            },
        }
    }
}

impl Notifications<'_> {
    /// `run_succeeded` / `run_failed`, and `connection_error` when a connector refused the credentials.
    pub(crate) async fn emit_run_events(&self, run: &ferry_core::model::Run) {
        use ferry_core::model::RunStatus;
        let data = json!({"job": run.job, "run": run.id, "mode": run.mode, "status": run.status, "error": run.error});
        let kind = match run.status {
            RunStatus::Succeeded | RunStatus::Partial => EventKind::RunSucceeded,
            // A cancel is an operator's own act, not a failure to tell anyone about.
            RunStatus::Queued | RunStatus::Running | RunStatus::Interrupted | RunStatus::Cancelled => return,
            _ => EventKind::RunFailed,
        };
        self.emit(kind, Some(&run.tenant), data).await;
        if run.error.as_deref().is_some_and(|e| e.contains("HTTP 401")) {
            self.emit(EventKind::ConnectionError, Some(&run.tenant), json!({"job": run.job, "run": run.id})).await;
        }
    }
}
