//! The OAuth2 callback and the connect page under attack: every forged,
//! replayed, misdirected or stale request is refused with a page in words, and
//! nothing is stored.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use chrono::{Duration, Utc};
use ferry_core::model::ids::PLATFORM;
use ferry_core::ports::ManualClock;
use ferry_service::oauth::OAuthClientConfig;
use ferry_service::Settings;
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;

use super::idp::Idp;
use super::links::link_path;
use crate::support::app::{Response, TestApp};

/// A browser on the connect pages: keeps cookies, reads the form's CSRF token.
pub struct Browser {
    router: Router,
    cookies: BTreeMap<String, String>,
    csrf: Option<String>,
}

impl Browser {
    pub fn new(app: &TestApp) -> Self {
        Self { router: ferry_http::connect::router(app.hub.clone()), cookies: BTreeMap::new(), csrf: None }
    }

    async fn send(&mut self, req: axum::http::request::Builder, body: Body) -> Response {
        let cookie = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
        let req = if cookie.is_empty() { req } else { req.header(header::COOKIE, cookie) };
        let res = self.router.clone().oneshot(req.body(body).expect("request")).await.expect("infallible");
        let status = res.status();
        let headers = res.headers().clone();
        for set in headers.get_all(header::SET_COOKIE) {
            let pair = set.to_str().expect("ascii cookie").split(';').next().unwrap_or_default();
            if let Some((k, v)) = pair.split_once('=') {
                if v.is_empty() {
                    self.cookies.remove(k);
                } else {
                    self.cookies.insert(k.to_owned(), v.to_owned());
                }
            }
        }
        let bytes = res.into_body().collect().await.expect("body").to_bytes();
        let r = Response { status, headers, bytes };
        let text = r.text();
        if let Some(at) = text.find("name=\"csrf\" value=\"") {
            let rest = &text[at + 19..];
            self.csrf = rest.split('"').next().map(str::to_owned);
        }
        r
    }

    pub async fn get(&mut self, path: &str) -> Response {
        self.send(Request::builder().method(Method::GET).uri(path), Body::empty()).await
    }

    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)], with_csrf: bool) -> Response {
        let csrf = if with_csrf { self.csrf.clone() } else { None };
        self.post_form(path, fields, csrf).await
    }

    /// Posts with another browser's CSRF token (a cross-site forgery).
    pub async fn post_with_csrf_of(&mut self, other: &Browser, path: &str, fields: &[(&str, &str)]) -> Response {
        let csrf = other.csrf.clone();
        self.post_form(path, fields, csrf).await
    }

    async fn post_form(&mut self, path: &str, fields: &[(&str, &str)], csrf: Option<String>) -> Response {
        let mut pairs: Vec<(&str, &str)> = fields.to_vec();
        if let Some(c) = &csrf {
            pairs.push(("csrf", c));
        }
        let req = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        self.send(req, Body::from(encode(&pairs))).await
    }

    /// Opens the link and clicks "Connect with ...": the `state` sent to the provider.
    pub async fn start_oauth(&mut self, link: &str) -> String {
        let page = self.get(link).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        let r = self.post(&format!("{link}/oauth"), &[], true).await;
        assert!(r.status.is_redirection(), "{} {}", r.status, r.text());
        let location = r.headers.get(header::LOCATION).and_then(|l| l.to_str().ok()).expect("location");
        let url = reqwest::Url::parse(location).expect("provider URL");
        let q: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(q.get("code_challenge_method").map(String::as_str), Some("S256"), "PKCE: {location}");
        assert!(q.get("code_challenge").is_some_and(|c| c.len() == 43), "{location}");
        q.get("state").cloned().expect("state")
    }

    pub async fn callback(&mut self, state: &str, code: &str) -> Response {
        self.get(&format!("/oauth/callback?{}", encode(&[("state", state), ("code", code)]))).await
    }
}

/// `application/x-www-form-urlencoded` pairs.
pub fn encode(pairs: &[(&str, &str)]) -> String {
    reqwest::Url::parse_with_params("http://form.invalid/", pairs)
        .map(|u| u.query().unwrap_or_default().to_owned())
        .expect("encodable")
}

/// Registers the platform's client for `mock-idp` and creates an OAuth2
/// connection of tenant `acme` (which must exist) with no credentials.
pub async fn oauth_connection(app: &TestApp, idp: &Idp, name: &str) -> String {
    let cfg: OAuthClientConfig = serde_json::from_value(json!({
        "client_id": "ferry-test", "client_secret": "client-s3cret-0123456789",
        "authorize_url": "http://127.0.0.1:9/authorize", "token_url": idp.token_url,
    }))
    .expect("client config");
    app.hub.connections().set_oauth_client(PLATFORM, "mock-idp", cfg).await.expect("register the OAuth client");
    let r = app
        .admin(
            Method::POST,
            "/v1/tenants/acme/connections",
            Some(json!({"name": name, "connector": "mock-idp", "auth_kind": "oauth2"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    r.json()["id"].as_str().expect("id").to_owned()
}

struct Scene {
    app: TestApp,
    idp: Idp,
    clock: Arc<ManualClock>,
}

impl Scene {
    async fn new() -> Self {
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let app = TestApp::embedded_with_clock(clock.clone(), Settings::default()).await;
        app.tenant("acme").await;
        let idp = Idp::start("unused").await;
        Self { app, idp, clock }
    }

    /// A fresh OAuth2 connection: its id and link path.
    async fn connection(&self, name: &str) -> (String, String) {
        let id = oauth_connection(&self.app, &self.idp, name).await;
        let view = self.app.admin(Method::GET, &format!("/v1/tenants/acme/connections/{id}"), None).await.json();
        (id, link_path(&view))
    }

    /// Asserts the connection holds no credentials and is not connected.
    async fn assert_nothing_stored(&self, id: &str) {
        let conn = self.app.hub.connections().get_connection("acme", id).await.expect("connection");
        assert!(
            self.app.hub.connections().connection_credentials(&conn).await.expect("read").is_none(),
            "no credentials stored"
        );
        assert_eq!(conn.status, ferry_core::model::ConnectionStatus::Disconnected);
    }
}

fn refused(r: &Response, status: StatusCode, words: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    assert!(r.headers.get(header::CONTENT_TYPE).is_some_and(|c| c.to_str().unwrap_or("").starts_with("text/html")));
    assert!(r.text().contains(words), "expected {words:?} in {}", r.text());
    assert!(!r.text().contains("client-s3cret-0123456789"));
}

#[tokio::test]
async fn a_customer_connects_with_oauth_pkce_and_a_replayed_callback_is_refused() {
    let s = Scene::new().await;
    let (id, link) = s.connection("CRM").await;
    let mut browser = Browser::new(&s.app);
    let state = browser.start_oauth(&link).await;
    let ok = browser.callback(&state, "code-1").await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    assert!(ok.text().contains("is connected to CRM"), "{}", ok.text());
    assert!(!ok.text().contains("at-code-1"), "no token on the page");
    let view = s.app.admin(Method::GET, &format!("/v1/tenants/acme/connections/{id}"), None).await.json();
    assert_eq!(view["status"], "connected");
    assert_eq!(view["credentials"]["refresh_token"], "********");
    assert_eq!(s.idp.code_exchanges(), 1);

    // The same callback again (an attacker replaying it, or a reload): refused
    // before the provider is asked, nothing changes.
    let before = s.app.hub.connections().get_connection("acme", &id).await.expect("connection");
    let mut attacker = Browser::new(&s.app);
    attacker.cookies = browser.cookies.clone();
    attacker.cookies.insert("ferry_oauth".into(), nonce_of(&state));
    let replay = attacker.callback(&state, "code-2").await;
    refused(&replay, StatusCode::GONE, "already used");
    assert_eq!(s.idp.code_exchanges(), 1, "a replayed state never reaches the provider");
    let after = s.app.hub.connections().get_connection("acme", &id).await.expect("connection");
    assert_eq!(before.updated_at, after.updated_at, "nothing stored");
}

/// The nonce inside a state's payload (what the flow's cookie holds).
fn nonce_of(state: &str) -> String {
    use base64::Engine as _;
    let payload = state.split('.').next().expect("payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("base64");
    let v: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
    v["n"].as_str().expect("nonce").to_owned()
}

#[tokio::test]
async fn a_tampered_state_is_refused_and_nothing_is_stored() {
    use base64::Engine as _;
    let s = Scene::new().await;
    let (id, link) = s.connection("CRM").await;
    let (other, _) = s.connection("Other").await;
    let mut browser = Browser::new(&s.app);
    let state = browser.start_oauth(&link).await;
    // Point the signed state at another connection, keeping the signature.
    let (payload, signature) = state.split_once('.').expect("signed state");
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims: serde_json::Value = serde_json::from_slice(&b64.decode(payload).expect("b64")).expect("json");
    claims["c"] = json!(other);
    let forged = format!("{}.{signature}", b64.encode(claims.to_string()));
    for bad in [forged, format!("{state}x"), "garbage".to_owned(), String::new()] {
        let r = browser.callback(&bad, "code-1").await;
        refused(&r, StatusCode::BAD_REQUEST, "could not be verified");
        // The flow's cookie is spent by any callback: start again for the next try.
        browser.start_oauth(&link).await;
    }
    assert_eq!(s.idp.code_exchanges(), 0);
    s.assert_nothing_stored(&id).await;
    s.assert_nothing_stored(&other).await;
}

#[tokio::test]
async fn a_state_from_another_connection_or_browser_is_refused_and_nothing_is_stored() {
    let s = Scene::new().await;
    let (a, link_a) = s.connection("A").await;
    let (b, link_b) = s.connection("B").await;
    let mut customer = Browser::new(&s.app);
    let state_a = customer.start_oauth(&link_a).await;
    // An attacker starts a flow for B and lures the customer to finish it with A's cookie.
    let mut attacker = Browser::new(&s.app);
    let state_b = attacker.start_oauth(&link_b).await;
    let r = customer.callback(&state_b, "code-1").await;
    refused(&r, StatusCode::FORBIDDEN, "different connection or in a different browser");
    // No cookie at all (the callback opened elsewhere).
    let mut stranger = Browser::new(&s.app);
    let r = stranger.callback(&state_a, "code-2").await;
    refused(&r, StatusCode::FORBIDDEN, "different connection or in a different browser");
    assert_eq!(s.idp.code_exchanges(), 0);
    s.assert_nothing_stored(&a).await;
    s.assert_nothing_stored(&b).await;
}

#[tokio::test]
async fn a_reused_code_is_refused_by_the_provider_shown_in_words_and_recorded() {
    let s = Scene::new().await;
    let (first, link_first) = s.connection("First").await;
    let (id, link) = s.connection("Second").await;
    let mut browser = Browser::new(&s.app);
    let state = browser.start_oauth(&link_first).await;
    assert_eq!(browser.callback(&state, "code-7").await.status, StatusCode::OK);
    let state = browser.start_oauth(&link).await;
    let r = browser.callback(&state, "code-7").await;
    refused(&r, StatusCode::BAD_REQUEST, "did not accept the sign-in");
    assert_eq!(s.idp.code_exchanges(), 2);
    s.assert_nothing_stored(&id).await;
    let conn = s.app.hub.connections().get_connection("acme", &id).await.expect("connection");
    assert!(conn.status_message.as_deref().is_some_and(|m| m.contains("did not accept")), "{conn:?}");
    let view = s.app.admin(Method::GET, &format!("/v1/tenants/acme/connections/{first}"), None).await.json();
    assert_eq!(view["status"], "connected", "the first connection is untouched");

    // The provider's own refusal (the customer declined) in words, recorded too.
    let state = browser.start_oauth(&link).await;
    let r = browser.get(&format!("/oauth/callback?{}", encode(&[("state", &state), ("error", "access_denied")]))).await;
    refused(&r, StatusCode::BAD_REQUEST, "Access was declined");
    s.assert_nothing_stored(&id).await;
}

#[tokio::test]
async fn expired_states_and_expired_or_revoked_links_are_refused_and_nothing_is_stored() {
    let s = Scene::new().await;
    let (id, link) = s.connection("CRM").await;
    let mut browser = Browser::new(&s.app);
    let state = browser.start_oauth(&link).await;
    s.clock.advance(Duration::minutes(11));
    refused(&browser.callback(&state, "code-1").await, StatusCode::GONE, "has expired");

    // An expired magic link opens nothing, not even the provider redirect.
    let r = s
        .app
        .admin(Method::POST, &format!("/v1/tenants/acme/connections/{id}/link"), Some(json!({"ttl_seconds": 60})))
        .await;
    let short = link_path(&r.json());
    browser.get(&short).await;
    s.clock.advance(Duration::minutes(2));
    refused(&browser.get(&short).await, StatusCode::GONE, "This link has expired");
    let r = browser.post(&format!("{short}/oauth"), &[], true).await;
    refused(&r, StatusCode::GONE, "This link has expired");

    // A revoked one neither.
    let r = s.app.admin(Method::POST, &format!("/v1/tenants/acme/connections/{id}/link"), Some(json!({}))).await;
    let current = link_path(&r.json());
    browser.get(&current).await;
    s.app.admin(Method::DELETE, &format!("/v1/tenants/acme/connections/{id}/link"), None).await;
    refused(&browser.get(&current).await, StatusCode::GONE, "replaced or revoked");
    let r = browser.post(&format!("{current}/oauth"), &[], true).await;
    refused(&r, StatusCode::GONE, "replaced or revoked");
    let r = browser.post(&format!("{current}/credentials"), &[("access_token", "x")], true).await;
    refused(&r, StatusCode::GONE, "replaced or revoked");

    assert_eq!(s.idp.code_exchanges(), 0);
    s.assert_nothing_stored(&id).await;
}
