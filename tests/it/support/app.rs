//! An in-process hub and its router, driven with real HTTP requests (no socket).

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use ferry_core::ports::ManualClock;
use ferry_embedded::{FileSecretStore, SqliteStore};
use ferry_service::bootstrap::Bootstrap;
use ferry_service::config::PublicUrl;
use ferry_service::Hub;
use ferry_service::Settings;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// Nothing listens here (port 9, discard, is not served on these machines).
pub const CLOSED_LOOPBACK: &str = "http://127.0.0.1:9";

pub struct TestApp {
    pub hub: Hub,
    pub router: Router,
    /// A platform admin API key.
    pub admin_key: String,
    pub dir: tempfile::TempDir,
}

pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub bytes: Bytes,
}

impl Response {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or(Value::Null)
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
    /// The `error.code` of a JSON error body.
    pub fn code(&self) -> String {
        self.json()["error"]["code"].as_str().unwrap_or("").to_owned()
    }
}

impl TestApp {
    /// A hub on the embedded adapters in a fresh temp dir.
    pub async fn embedded() -> Self {
        Self::embedded_with_settings(Settings::default()).await
    }

    /// Embedded adapters (files included) with the given settings.
    pub async fn embedded_with_settings(settings: Settings) -> Self {
        let (hub, dir) = embedded_hub(settings);
        Self::with_hub(hub, dir).await
    }

    /// Embedded adapters (files included) with exactly the given settings: the
    /// outbound policy and the sandbox's network as in production unless
    /// `settings` allows private networks.
    pub async fn embedded_with_exact_settings(settings: Settings) -> Self {
        let (hub, dir) = embedded_hub(settings);
        Self::exactly(hub, dir).await
    }

    /// Embedded adapters serving at `public_url` (the base of its links and webhook URLs).
    pub async fn embedded_at(public_url: &str) -> Self {
        let (hub, dir) = embedded_hub(Settings::default());
        Self::with_hub(hub.with_public_url(PublicUrl::parse(public_url).expect("a public URL")), dir).await
    }

    /// Embedded adapters with a caller-controlled clock.
    pub async fn embedded_with_clock(clock: Arc<ManualClock>, settings: Settings) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("ferry.db")).expect("sqlite");
        let secrets = FileSecretStore::open(dir.path()).expect("secrets");
        let hub = Hub::new(Arc::new(store), Arc::new(secrets)).with_clock(clock).with_settings(settings);
        Self::with_hub(hub, dir).await
    }

    /// The hub as given, except that it may reach private networks: every
    /// fake server of the tests listens on loopback over plain http; and
    /// that it has a public URL, as every host making links does.
    pub async fn with_hub(mut hub: Hub, dir: tempfile::TempDir) -> Self {
        hub.settings.allow_private_network = true;
        hub.public_url.get_or_insert_with(test_public_url);
        Self::exactly(hub, dir).await
    }

    /// A hub on the embedded adapters under the production outbound policy
    /// (no loopback, no private networks, https only).
    pub async fn strict() -> Self {
        let (hub, dir) = embedded_hub(Settings::default());
        assert!(!hub.settings.allow_private_network, "the production default refuses private networks");
        Self::exactly(hub, dir).await
    }

    /// The hub exactly as given.
    pub async fn exactly(hub: Hub, dir: tempfile::TempDir) -> Self {
        let admin_key = match hub.users().bootstrap(None).await.expect("bootstrap") {
            Bootstrap::Generated(k) => k,
            other => panic!("fresh store should generate a key, got {other:?}"),
        };
        let router = ferry_http::api::router(hub.clone());
        Self { hub, router, admin_key, dir }
    }

    pub async fn send(&self, req: Request<Body>) -> Response {
        let res = self.router.clone().oneshot(req).await.expect("router is infallible");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.expect("body").to_bytes();
        Response { status, headers, bytes }
    }

    /// A JSON request; `token` goes in `Authorization: Bearer`.
    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Response {
        let mut b = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some(v) => b.header(header::CONTENT_TYPE, "application/json").body(Body::from(v.to_string())),
            None => b.body(Body::empty()),
        }
        .expect("request");
        self.send(req).await
    }

    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Response {
        self.call(method, path, Some(&self.admin_key.clone()), body).await
    }

    /// Creates a tenant as admin and returns its id.
    pub async fn tenant(&self, id: &str) -> String {
        let r = self
            .admin(Method::POST, "/v1/tenants", Some(serde_json::json!({"id": id, "name": format!("Tenant {id}")})))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        id.to_owned()
    }

    /// Creates a tenant API key and returns (key, key id).
    pub async fn tenant_key(&self, tenant: &str) -> (String, String) {
        let r = self
            .admin(Method::POST, &format!("/v1/tenants/{tenant}/api-keys"), Some(serde_json::json!({"name": "k"})))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        let j = r.json();
        (j["key"].as_str().expect("key").to_owned(), j["api_key"]["id"].as_str().expect("id").to_owned())
    }

    /// Creates a user with role `user` in `tenants`, signs in, returns (session token, user id).
    pub async fn member(&self, email: &str, tenants: &[&str]) -> (String, String) {
        let r = self
            .admin(
                Method::POST,
                "/v1/users",
                Some(serde_json::json!({"email": email, "full_name": "Member", "password": "correct horse battery", "role": "user", "memberships": tenants})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        let id = r.json()["id"].as_str().expect("id").to_owned();
        (self.login(email, "correct horse battery").await, id)
    }

    pub async fn login(&self, email: &str, password: &str) -> String {
        let r = self
            .call(Method::POST, "/v1/sessions", None, Some(serde_json::json!({"email": email, "password": password})))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        r.json()["token"].as_str().expect("token").to_owned()
    }

    /// Creates a connection with an api_key credential and returns its id. Its
    /// `base_url` is a closed loopback port, so a run that reaches it fails at
    /// once and tests never send traffic off this machine.
    pub async fn connection(&self, tenant: &str, name: &str, secret: &str) -> String {
        let r = self
            .admin(
                Method::POST,
                &format!("/v1/tenants/{tenant}/connections"),
                Some(serde_json::json!({
                    "name": name, "connector": "hubspot", "auth_kind": "api_key",
                    "settings": {"base_url": CLOSED_LOOPBACK},
                    "credentials": {"api_key": secret},
                })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        r.json()["id"].as_str().expect("id").to_owned()
    }

    /// Publishes a manifest as a release of `integration` (as admin) and returns the release number.
    pub async fn publish(&self, integration: &str, manifest: &str) -> u32 {
        let r = self
            .admin(
                Method::POST,
                &format!("/v1/integrations/{integration}/releases"),
                Some(super::manifests::publish_body(manifest)),
            )
            .await;
        assert!(r.status.is_success(), "publish {integration}: {}", r.text());
        r.json()["release"]["number"].as_u64().and_then(|n| u32::try_from(n).ok()).expect("release number")
    }

    /// Creates a job as admin and returns its id.
    pub async fn job(&self, tenant: &str, body: Value) -> String {
        let r = self.admin(Method::POST, &format!("/v1/tenants/{tenant}/jobs"), Some(body)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        r.json()["id"].as_str().expect("id").to_owned()
    }

    /// Creates a mapping configuration as admin and returns its id.
    pub async fn mapping(&self, tenant: &str, name: &str) -> String {
        let r = self
            .admin(
                Method::POST,
                &format!("/v1/tenants/{tenant}/mappings"),
                Some(serde_json::json!({"name": name, "entity": "contact", "source": "hubspot", "target": "warehouse",
                    "fields": {"email": "{{ record.properties.email | lower }}", "source": {"value": "hubspot"}}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        r.json()["id"].as_str().expect("id").to_owned()
    }
}

/// A hub on the embedded adapters (files included) in a fresh temp dir.
fn embedded_hub(settings: Settings) -> (Hub, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("ferry.db")).expect("sqlite");
    let secrets = FileSecretStore::open(dir.path()).expect("secrets");
    let files = ferry_embedded::LocalFileStore::new(dir.path().join("files"));
    let hub = Hub::new(Arc::new(store), Arc::new(secrets))
        .with_files(Arc::new(files))
        .with_settings(settings)
        .with_public_url(test_public_url());
    (hub, dir)
}

/// The public URL of the tests' hubs: their links are only ever followed by path.
fn test_public_url() -> PublicUrl {
    PublicUrl::parse("http://127.0.0.1:8080").expect("a public URL")
}
