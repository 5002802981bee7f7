//! The intake: `POST /hooks/{hook}` verifies a delivery per the job's manifest,
//! stores it, and only then acknowledges it; `GET` and `HEAD` answer the
//! subscription handshakes some providers send. Served by `ferry up` and by
//! the `webhooks` Lambda function.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use crate::api::error::ApiError;
use ferry_core::crypto::sha256_hex;
use ferry_core::manifest::{Handshake, SignatureEncoding, WebhookVerification};
use ferry_core::model::ids::is_valid_id;
use ferry_core::model::KeyScope;
use ferry_core::Error;
use ferry_service::hooks::service::{secret_bytes, Incoming, ResolvedHook, Stored};
use ferry_service::hooks::verify::{self, Encoding, VerifyError};
use ferry_service::Hub;

/// The routes of the intake, for the SAM template check.
pub const ROUTES: &[(&str, &str)] = &[("POST", "/hooks/{hook}"), ("GET", "/hooks/{hook}"), ("HEAD", "/hooks/{hook}")];

/// The largest body any manifest may allow (API Gateway's own limit is 10 MB).
pub const HARD_BODY_LIMIT: usize = 8 * 1024 * 1024;
/// Default when the manifest sets no `max_body_bytes`.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;
const DEFAULT_TOLERANCE: u32 = 300;
/// How long a resolved hook (manifest section and secret) is reused.
const CACHE_TTL: Duration = Duration::from_secs(30);

/// How deliveries lead to runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerMode {
    /// Trigger in the background after acknowledging; concurrent deliveries to
    /// one job share one trigger (the embedded host).
    Background,
    /// Trigger before acknowledging (Lambda freezes once it has answered).
    Inline,
    /// Store only (benchmarks of the intake alone).
    Off,
}

/// The router's state. axum clones it for every request, so it is one `Arc`
/// (cloning a [`Hub`] copies its settings and a dozen handles).
#[derive(Clone)]
struct Intake(Arc<IntakeState>);

struct IntakeState {
    hub: Hub,
    cache: Mutex<HashMap<String, (Instant, Arc<ResolvedHook>)>>,
    scheduled: Mutex<HashSet<(String, String)>>,
    trigger: TriggerMode,
}

impl std::ops::Deref for Intake {
    type Target = IntakeState;
    fn deref(&self) -> &IntakeState {
        &self.0
    }
}

impl Intake {
    pub fn new(hub: Hub, trigger: TriggerMode) -> Self {
        Self(Arc::new(IntakeState { hub, cache: Default::default(), scheduled: Default::default(), trigger }))
    }

    /// The hook, from the cache while its record's store version is unchanged
    /// and the entry is younger than [`CACHE_TTL`]. The version is read per
    /// delivery (one item read; the delivery is written anyway) because the
    /// API that rotates a secret may run in another process or Lambda sandbox,
    /// whose cache this one cannot clear: a rotation rewrites the record, so
    /// the old secret stops working at once. The TTL only bounds how long a
    /// changed manifest (a job pinned to a new release) takes to apply.
    async fn resolve(&self, hook_id: &str) -> Result<Arc<ResolvedHook>, ApiError> {
        let cached = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(hook_id).cloned();
        if let Some((at, hook)) = cached {
            if at.elapsed() < CACHE_TTL && self.hub.hooks().hook_version(hook_id).await? == Some(hook.version) {
                return Ok(hook);
            }
        }
        let resolved = self.hub.hooks().resolve_hook(hook_id).await?.ok_or_else(unknown_hook)?;
        let resolved = Arc::new(resolved);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(hook_id.to_owned(), (Instant::now(), resolved.clone()));
        Ok(resolved)
    }

    /// Starts (or bundles) a webhook run for the job; concurrent deliveries share one trigger.
    async fn trigger(&self, tenant: &str, job: &str) {
        match self.trigger {
            TriggerMode::Off => {}
            TriggerMode::Inline => run_trigger(&self.hub, tenant, job).await,
            TriggerMode::Background => {
                let key = (tenant.to_owned(), job.to_owned());
                if !self.scheduled.lock().unwrap_or_else(|p| p.into_inner()).insert(key.clone()) {
                    return; // A trigger is on its way; it has not read the queue yet, so it serves this delivery too.
                }
                let this = self.clone();
                tokio::spawn(async move {
                    tokio::task::yield_now().await;
                    // Cleared before triggering: a delivery stored after this line schedules another trigger.
                    this.scheduled.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
                    run_trigger(&this.hub, &key.0, &key.1).await;
                });
            }
        }
    }
}

/// Serves the job's deliveries, unless it holds them (paused): they wait, stored, for it to resume.
async fn run_trigger(hub: &Hub, tenant: &str, job: &str) {
    if let Err(e) = hub.serve_deliveries(tenant, job).await {
        // The delivery is stored: the next delivery's trigger picks it up.
        tracing::warn!(error = %e, tenant, job, "could not trigger a webhook run");
    }
}

/// The intake router (no fallback, so it merges with the API router).
pub fn router(hub: Hub, trigger: TriggerMode) -> Router {
    Router::new()
        .route("/hooks/{hook}", post(receive).get(handshake).head(handshake))
        .route_layer(ferry_web::trace::layer("intake"))
        .with_state(Intake::new(hub, trigger))
}

fn unknown_hook() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_hook",
        "no webhook endpoint has this id; copy the URL from the job's connector info",
    )
}

fn refused(e: VerifyError) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, e.code(), format!("delivery refused: {e}"))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The URL a provider signed: the hub's public URL and the path it called;
/// not the request's Host, which a proxy or API Gateway may have rewritten.
fn signed_url(hub: &Hub, uri: &axum::http::Uri) -> Result<String, ApiError> {
    let base = hub.public_url.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "hook_not_configured",
            "this hub has no public URL (FERRY_PUBLIC_URL), and the provider signs the URL it calls",
        )
    })?;
    Ok(base.join(uri.path_and_query().map_or("", |p| p.as_str())))
}

#[tracing::instrument(name = "hook", skip_all, fields(hook = %hook_id))]
async fn receive(State(intake): State<Intake>, Path(hook_id): Path<String>, req: Request) -> Response {
    match accept(&intake, &hook_id, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn accept(intake: &Intake, hook_id: &str, req: Request) -> Result<Response, ApiError> {
    if !is_valid_id(hook_id) {
        return Err(unknown_hook());
    }
    let hook = intake.resolve(hook_id).await?;
    let limit = hook.webhooks.max_body_bytes.map_or(DEFAULT_BODY_LIMIT, |n| n as usize).min(HARD_BODY_LIMIT);
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("deliveries are limited to {limit} bytes"),
        )
    };
    let (parts, body) = req.into_parts();
    if header(&parts.headers, "content-length").and_then(|l| l.parse::<usize>().ok()).is_some_and(|l| l > limit) {
        return Err(too_large());
    }
    let body: Bytes = axum::body::to_bytes(body, limit).await.map_err(|_| too_large())?;
    let now = intake.hub.clock.now().timestamp();
    let tolerance = hook.webhooks.tolerance_seconds.unwrap_or(DEFAULT_TOLERANCE);
    let secret = || {
        hook.secret.as_ref().map(secret_bytes).ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "hook_not_configured",
                "the webhook endpoint has no secret yet",
            )
        })
    };
    let h = &parts.headers;
    match &hook.webhooks.verify {
        WebhookVerification::StandardWebhooks {} => {
            let key = verify::standard_key(std::str::from_utf8(secret()?).unwrap_or_default());
            verify::standard_webhooks(
                &key,
                header(h, "webhook-id"),
                header(h, "webhook-timestamp"),
                header(h, "webhook-signature"),
                &body,
                now,
                tolerance,
            )
            .map_err(refused)?;
        }
        WebhookVerification::Hmac { header: name, encoding, prefix } => {
            let encoding = match encoding {
                SignatureEncoding::Hex => Encoding::Hex,
                SignatureEncoding::Base64 => Encoding::Base64,
            };
            verify::body_hmac(secret()?, "signature", header(h, name), prefix.as_deref(), encoding, &body).map_err(
                |e| match e {
                    VerifyError::MissingHeader(_) | VerifyError::MalformedHeader(_) => ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "missing_signature",
                        format!("delivery refused: header `{name}` is missing or malformed"),
                    ),
                    other => refused(other),
                },
            )?;
        }
        WebhookVerification::HubspotV3 {} => {
            let uri = signed_url(&intake.hub, &parts.uri)?;
            verify::hubspot_v3(
                secret()?,
                header(h, "x-hubspot-signature-v3"),
                header(h, "x-hubspot-request-timestamp"),
                verify::SignedRequest { method: parts.method.as_str(), uri: &uri, body: &body },
                now,
                tolerance,
            )
            .map_err(refused)?;
        }
        WebhookVerification::ApiKey {} => {
            let token = header(h, "authorization")
                .and_then(|v| v.split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, t)| t.trim())
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "unauthorized",
                        "send `Authorization: Bearer <API key with the push scope>`",
                    )
                })?;
            let key = intake.hub.users().usable_key_with_scope(token, KeyScope::Push).await?;
            if key.tenant != hook.hook.tenant {
                return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "the API key belongs to another tenant"));
            }
        }
    }
    let payload = parse_body(h, &body)?;
    let body_sha256 = sha256_hex(&body);
    let delivery_id = match (&hook.webhooks.verify, &hook.webhooks.id_header) {
        (WebhookVerification::StandardWebhooks {}, _) => header(h, "webhook-id").map(str::to_owned),
        (_, Some(name)) => header(h, name).map(str::to_owned),
        _ => header(h, "webhook-id").or_else(|| header(h, "idempotency-key")).map(str::to_owned),
    }
    .filter(|id| !id.trim().is_empty())
    .unwrap_or_else(|| format!("sha256:{body_sha256}"));
    let replay_key = replay_key(&hook.webhooks.verify, &delivery_id, &body_sha256);
    let incoming = Incoming { delivery_id, replay_key, body_sha256, body_len: body.len(), payload };
    let stored = intake.hub.hooks().store_delivery(&hook.hook, incoming).await.map_err(|e| match e {
        // Gone rather than 409: senders that know 410 stop delivering to an offboarded tenant.
        Error::Conflict { code: "tenant_archived", .. } => ApiError::new(
            StatusCode::GONE,
            "hook_disabled",
            "the tenant of this webhook endpoint is archived; nothing was stored",
        ),
        other => other.into(),
    })?;
    let (status, word, seq) = match stored {
        Stored::New(seq) => {
            intake.trigger(&hook.hook.tenant, &hook.hook.job).await;
            (StatusCode::ACCEPTED, "accepted", seq)
        }
        Stored::Duplicate(seq) => (StatusCode::OK, "duplicate", seq),
    };
    Ok((status, Json(json!({"status": word, "delivery": seq}))).into_response())
}

/// What replay protection remembers a delivery by. Standard Webhooks signs
/// its id, and an `api_key` pusher is authenticated, so their ids can be
/// trusted. Body-HMAC schemes (Shopify, GitHub, HubSpot v3) sign the body but
/// not the id header: keyed on that header, a captured delivery could be
/// replayed under a fresh id, so they are keyed on the body digest (a provider's
/// redelivery repeats the body, a distinct event differs in it).
fn replay_key(verify: &WebhookVerification, delivery_id: &str, body_sha256: &str) -> String {
    match verify {
        WebhookVerification::StandardWebhooks {} | WebhookVerification::ApiKey {} => delivery_id.to_owned(),
        WebhookVerification::Hmac { .. } | WebhookVerification::HubspotV3 {} => format!("sha256:{body_sha256}"),
    }
}

/// JSON bodies as they are; form bodies as an object of their fields (a
/// repeated field becomes an array).
fn parse_body(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let media = header(headers, "content-type")
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let malformed = |what: &str| ApiError::bad_request("malformed_body", format!("the body is not valid {what}"));
    if media == "application/json" || (media.starts_with("application/") && media.ends_with("+json")) {
        serde_json::from_slice(body).map_err(|_| malformed("JSON"))
    } else if media == "application/x-www-form-urlencoded" {
        if std::str::from_utf8(body).is_err() {
            return Err(malformed("form data (it is not UTF-8)"));
        }
        let mut fields = Map::new();
        for (k, v) in form_urlencoded::parse(body) {
            let v = Value::String(v.into_owned());
            match fields.get_mut(k.as_ref()) {
                Some(Value::Array(a)) => a.push(v),
                Some(existing) => *existing = Value::Array(vec![existing.take(), v]),
                None => {
                    fields.insert(k.into_owned(), v);
                }
            }
        }
        Ok(Value::Object(fields))
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "deliveries must be `application/json` or `application/x-www-form-urlencoded`",
        ))
    }
}

/// Subscription handshakes: echo a challenge parameter, or answer `HEAD` probes.
async fn handshake(
    State(intake): State<Intake>,
    method: Method,
    Path(hook_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let answer = async {
        if !is_valid_id(&hook_id) {
            return Err(unknown_hook());
        }
        let hook = intake.resolve(&hook_id).await?;
        let not_here =
            || ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "deliveries are POSTed to this URL");
        match (&hook.webhooks.handshake, method) {
            (Some(Handshake::HeadOk {}), Method::HEAD) => Ok(StatusCode::OK.into_response()),
            (Some(Handshake::EchoQuery { param }), Method::GET) => match query.get(param) {
                Some(challenge) if challenge.len() <= 1024 => Ok((
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                    Body::from(challenge.clone()),
                )
                    .into_response()),
                _ => Err(ApiError::bad_request("missing_challenge", format!("query parameter `{param}` is missing"))),
            },
            _ => Err(not_here()),
        }
    };
    answer.await.unwrap_or_else(IntoResponse::into_response)
}
