//! Hostile and malformed input: every rejection is a 4xx with a JSON error body
//! `{"error": {"code", "message"}}` carrying a stable code, nothing is stored by
//! a rejected write, and no input makes the API answer 5xx or panic.
//!
//! Most tests collect every mismatch before failing, so one run lists all of them.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, Request, StatusCode};
use chrono::{Duration, Utc};
use ferry_shared::adapters::{FileSecretStore, SqliteStore};
use ferry_shared::api::extract::BODY_LIMIT;
use ferry_shared::ports::ManualClock;
use ferry_shared::service::bootstrap::Bootstrap;
use ferry_shared::Hub;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::support::app::{Response, TestApp};

// ---------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------

/// Soft assertions: every mismatch is kept, the test fails once at the end with all of them.
#[derive(Default)]
struct Checks {
    failures: Vec<String>,
}

impl Checks {
    fn fail(&mut self, msg: String) {
        self.failures.push(msg);
    }

    fn check(&mut self, ok: bool, msg: impl FnOnce() -> String) {
        if !ok {
            self.failures.push(msg());
        }
    }

    /// A JSON error with this status and code, and a non-empty message. Returns the message.
    fn error(&mut self, r: &Response, status: StatusCode, code: &str, ctx: &str) -> String {
        let problems = error_shape(r);
        if r.status != status || r.code() != code || !problems.is_empty() {
            self.fail(format!(
                "{ctx}: expected {} `{code}`, got {} {}{}",
                status.as_u16(),
                r.status.as_u16(),
                truncate(&r.text()),
                if problems.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", problems.join("; "))
                }
            ));
        }
        r.json()["error"]["message"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// Like [`Checks::error`], and the message must mention `needle`.
    fn error_naming(&mut self, r: &Response, status: StatusCode, code: &str, needle: &str, ctx: &str) {
        let msg = self.error(r, status, code, ctx);
        if r.status == status && !msg.contains(needle) {
            self.fail(format!("{ctx}: the message should name `{needle}`: {msg}"));
        }
    }

    fn unchanged(&mut self, before: &str, after: &str, ctx: &str) {
        if before != after {
            self.fail(format!("{ctx}: a rejected request changed stored state"));
        }
    }

    fn finish(self) {
        assert!(
            self.failures.is_empty(),
            "{} problem(s):\n- {}",
            self.failures.len(),
            self.failures.join("\n- ")
        );
    }
}

/// What is wrong with the shape of an error response (empty when it is a proper JSON error).
fn error_shape(r: &Response) -> Vec<String> {
    let mut problems = Vec::new();
    let ct = r
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/json") {
        problems.push(format!("content-type is {ct:?}"));
    }
    match serde_json::from_slice::<Value>(&r.bytes) {
        Ok(v) => {
            let code = v["error"]["code"].as_str().unwrap_or("");
            let msg = v["error"]["message"].as_str().unwrap_or("");
            if code.is_empty()
                || !code
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_')
            {
                problems.push(format!("error.code {code:?} is not a stable snake_case code"));
            }
            if msg.trim().is_empty() {
                problems.push("error.message is empty".into());
            }
        }
        Err(_) => problems.push("the body is not JSON".into()),
    }
    problems
}

fn truncate(s: &str) -> String {
    if s.len() > 300 {
        let mut end = 300;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    } else {
        s.to_owned()
    }
}

async fn raw(
    app: &TestApp,
    method: Method,
    path: &str,
    authorization: Option<&str>,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> Response {
    let mut b = Request::builder().method(method).uri(path);
    if let Some(a) = authorization {
        b = b.header(header::AUTHORIZATION, a);
    }
    if let Some(ct) = content_type {
        b = b.header(header::CONTENT_TYPE, ct);
    }
    app.send(b.body(body.into()).expect("request")).await
}

/// A JSON request with the admin key and a raw body.
async fn admin_raw(app: &TestApp, method: Method, path: &str, body: impl Into<Body>) -> Response {
    let auth = format!("Bearer {}", app.admin_key);
    raw(app, method, path, Some(&auth), Some("application/json"), body).await
}

/// Everything the API can list, as one string: equal before and after means nothing was stored.
async fn snapshot(app: &TestApp) -> String {
    let mut out = String::new();
    let mut add = |path: &str, r: &Response| {
        assert_eq!(r.status, StatusCode::OK, "snapshot GET {path}: {}", r.text());
        out.push_str(path);
        out.push('\n');
        out.push_str(&r.text());
        out.push('\n');
    };
    let tenants = app.admin(Method::GET, "/v1/tenants?limit=200", None).await;
    add("/v1/tenants", &tenants);
    for path in ["/v1/users?limit=200", "/v1/api-keys?limit=200"] {
        let r = app.admin(Method::GET, path, None).await;
        add(path, &r);
    }
    for t in tenants.json()["items"].as_array().cloned().unwrap_or_default() {
        let id = t["id"].as_str().unwrap_or("").to_owned();
        for path in [
            format!("/v1/tenants/{id}/connections?limit=200"),
            format!("/v1/tenants/{id}/api-keys?limit=200"),
        ] {
            let r = app.admin(Method::GET, &path, None).await;
            add(&path, &r);
        }
    }
    out
}

fn id_of(r: &Response) -> String {
    assert!(r.status.is_success(), "{}", r.text());
    r.json()["id"].as_str().expect("id").to_owned()
}

async fn connection(app: &TestApp, tenant: &str, body: Value) -> String {
    let r = app
        .admin(Method::POST, &format!("/v1/tenants/{tenant}/connections"), Some(body))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    id_of(&r)
}

async fn user(app: &TestApp, email: &str, tenants: &[&str]) -> String {
    let r = app
        .admin(
            Method::POST,
            "/v1/users",
            Some(json!({"email": email, "full_name": "U", "password": "correct horse battery", "role": "user", "memberships": tenants})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    id_of(&r)
}

/// A test app whose hub runs on a clock the test moves.
async fn app_with_clock() -> (TestApp, Arc<ManualClock>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("ferry.db")).expect("sqlite");
    let secrets = FileSecretStore::open(dir.path()).expect("secrets");
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let hub = Hub::new(Arc::new(store), Arc::new(secrets)).with_clock(clock.clone());
    let admin_key = match hub.bootstrap(None).await.expect("bootstrap") {
        Bootstrap::Generated(k) => k,
        other => panic!("fresh store should generate a key, got {other:?}"),
    };
    let router = ferry_shared::api::router(hub.clone());
    (
        TestApp {
            hub,
            router,
            admin_key,
            dir,
        },
        clock,
    )
}

// ---------------------------------------------------------------------------
// Bodies.
// ---------------------------------------------------------------------------

#[tokio::test]
async fn malformed_and_mistyped_bodies_are_rejected_and_store_nothing() {
    let app = TestApp::embedded().await;
    let mut c = Checks::default();
    app.tenant("acme").await;
    let conn = app.connection("acme", "crm", "s3cret-value").await;
    let before = snapshot(&app).await;

    let bad = StatusCode::BAD_REQUEST;
    // (route, body, code, a word the message must contain)
    let tenants = "/v1/tenants";
    let conns = "/v1/tenants/acme/connections";
    let creds = format!("/v1/tenants/acme/connections/{conn}/credentials");
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        (tenants, br#"{"name":"#.to_vec(), "invalid_json", "JSON"),
        (tenants, br#"{"name":"x", }"#.to_vec(), "invalid_json", "JSON"),
        (tenants, br#"{'name':'x'}"#.to_vec(), "invalid_json", "JSON"),
        (tenants, br#"{"name":"Trailing"} garbage"#.to_vec(), "invalid_json", "after"),
        (tenants, br#"{"name":"Two"}{"name":"Values"}"#.to_vec(), "invalid_json", "after"),
        (tenants, b"".to_vec(), "invalid_json", "JSON"),
        (tenants, b"   ".to_vec(), "invalid_json", "JSON"),
        (tenants, b"{\"name\":\"\xff\xfe\"}".to_vec(), "invalid_json", "JSON"),
        (tenants, b"\xef\xbb\xbf{\"name\":\"Bom\"}".to_vec(), "invalid_json", "JSON"),
        (tenants, br#"[]"#.to_vec(), "invalid_field", "body"),
        (tenants, br#"[{"name":"In An Array"}]"#.to_vec(), "invalid_field", "body"),
        // A positional array must not stand in for an object.
        (tenants, br#"["array-tenant","Array Tenant"]"#.to_vec(), "invalid_field", "body"),
        (tenants, br#"[null,"Array Tenant 2",false]"#.to_vec(), "invalid_field", "body"),
        (tenants, br#"null"#.to_vec(), "invalid_field", "body"),
        (tenants, br#""a string""#.to_vec(), "invalid_field", "body"),
        (tenants, br#"42"#.to_vec(), "invalid_field", "body"),
        (tenants, br#"{"name":5}"#.to_vec(), "invalid_field", "name"),
        (tenants, br#"{"name":null}"#.to_vec(), "invalid_field", "name"),
        (tenants, br#"{"name":["x"]}"#.to_vec(), "invalid_field", "name"),
        (tenants, br#"{"name":"X","paused":"yes"}"#.to_vec(), "invalid_field", "paused"),
        (tenants, br#"{"name":"X","id":7}"#.to_vec(), "invalid_field", "id"),
        (tenants, br#"{"name":"X","bogus":1}"#.to_vec(), "unknown_field", "bogus"),
        (tenants, br#"{"name":"X","Name":"Y"}"#.to_vec(), "unknown_field", "Name"),
        (tenants, br#"{}"#.to_vec(), "missing_field", "name"),
        (tenants, br#"{"id":"only-id"}"#.to_vec(), "missing_field", "name"),
        (tenants, br#"{"name":"Dup","name":"Dup2"}"#.to_vec(), "invalid_field", "name"),
        (conns, br#"{"name":"N","connector":"hubspot"}"#.to_vec(), "missing_field", "auth_kind"),
        (conns, br#"{"name":"N","connector":"hubspot","auth_kind":"magic"}"#.to_vec(), "invalid_field", "auth_kind"),
        (conns, br#"{"name":"N","connector":"hubspot","auth_kind":"none","settings":[]}"#.to_vec(), "invalid_field", "settings"),
        (conns, br#"{"name":"N","connector":"hubspot","auth_kind":"api_key","credentials":{"api_key":1}}"#.to_vec(), "invalid_field", "credentials"),
        (conns, br#"{"name":"N","connector":"hubspot","auth_kind":"none","color":"red"}"#.to_vec(), "unknown_field", "color"),
        (creds.as_str(), br#"{"api_key":5}"#.to_vec(), "invalid_field", "api_key"),
        (creds.as_str(), br#"{"api_key":null}"#.to_vec(), "invalid_field", "api_key"),
        (creds.as_str(), br#"["api_key","x"]"#.to_vec(), "invalid_field", "body"),
        (creds.as_str(), br#"{"api_key":"x"} trailing"#.to_vec(), "invalid_json", "after"),
        ("/v1/users", br#"{"email":"a@example.com","full_name":"A","password":"correct horse battery","role":"user","memberships":"acme"}"#.to_vec(), "invalid_field", "memberships"),
        ("/v1/users", br#"{"email":"a@example.com","full_name":"A","password":"correct horse battery","role":"root"}"#.to_vec(), "invalid_field", "role"),
        ("/v1/users", br#"{"email":"a@example.com","full_name":"A","password":"correct horse battery"}"#.to_vec(), "missing_field", "role"),
        ("/v1/tenants/acme/api-keys", br#"{"name":"k","expires_at":"tomorrow"}"#.to_vec(), "invalid_field", "expires_at"),
        ("/v1/tenants/acme/api-keys", br#"{"name":"k","expires_at":12}"#.to_vec(), "invalid_field", "expires_at"),
    ];
    for (path, body, code, needle) in cases {
        let ctx = format!("POST/PUT {path} {}", String::from_utf8_lossy(&body));
        let method = if path.ends_with("/credentials") { Method::PUT } else { Method::POST };
        let r = admin_raw(&app, method, path, body).await;
        c.error_naming(&r, bad, code, needle, &ctx);
    }
    // Whitespace around the value is fine (positive control for the trailing-data check).
    let r = admin_raw(&app, Method::PATCH, "/v1/tenants/acme", " \n{\"name\":\"Acme\"}\n\t ").await;
    c.check(r.status == StatusCode::OK, || format!("whitespace around JSON: {} {}", r.status, r.text()));
    let before = before.replace("Tenant acme", "Acme");
    let after = snapshot(&app).await;
    // updated_at of acme changed with the rename; compare everything else.
    let strip = |s: &str| {
        s.split("\"updated_at\":\"")
            .map(|p| p.split_once('"').map(|(_, rest)| rest).unwrap_or(p))
            .collect::<Vec<_>>()
            .join("")
    };
    c.unchanged(&strip(&before), &strip(&after), "malformed bodies");
    c.finish();
}

#[tokio::test]
async fn only_json_content_types_are_accepted() {
    let app = TestApp::embedded().await;
    let mut c = Checks::default();
    let before = snapshot(&app).await;
    let auth = format!("Bearer {}", app.admin_key);
    let body = r#"{"id":"typed","name":"Typed"}"#;
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/jsonx"),
        Some("application/xml"),
        Some("json"),
        Some(""),
    ] {
        let r = raw(&app, Method::POST, "/v1/tenants", Some(&auth), ct, body).await;
        c.error(&r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", &format!("Content-Type {ct:?}"));
    }
    // Also on PUT credentials and login.
    app.tenant("acme").await;
    let conn = app.connection("acme", "crm", "v1").await;
    let before = {
        let _ = before;
        snapshot(&app).await
    };
    let r = raw(&app, Method::PUT, &format!("/v1/tenants/acme/connections/{conn}/credentials"), Some(&auth), Some("text/plain"), r#"{"api_key":"v2"}"#).await;
    c.error(&r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "text/plain credentials");
    let r = raw(&app, Method::POST, "/v1/sessions", None, None, r#"{"email":"a@example.com","password":"x"}"#).await;
    c.error(&r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "login without a content type");
    c.unchanged(&before, &snapshot(&app).await, "wrong content types");
    let stored = app.hub.get_connection("acme", &conn).await.expect("conn");
    let secret = app.hub.connection_credentials(&stored).await.expect("secrets").expect("some");
    c.check(
        secrecy::ExposeSecret::expose_secret(secret.get("api_key").expect("api_key")) == "v1",
        || "a text/plain PUT changed the credentials".into(),
    );

    // Positive controls: JSON with parameters, any case, and +json types are accepted.
    for (i, ct) in ["application/json; charset=utf-8", "Application/JSON", "application/merge-patch+json"].iter().enumerate() {
        let r = raw(&app, Method::POST, "/v1/tenants", Some(&auth), Some(ct), format!(r#"{{"id":"ok-{i}","name":"Ok"}}"#)).await;
        c.check(r.status == StatusCode::CREATED, || format!("Content-Type {ct}: {} {}", r.status, r.text()));
    }
    c.finish();
}

#[tokio::test]
async fn bodies_over_64_kib_are_413() {
    let app = TestApp::embedded().await;
    let mut c = Checks::default();
    let before = snapshot(&app).await;

    // Exactly at the limit: accepted (padding is whitespace inside the object).
    let head = r#"{"id":"edge","name":"Edge""#;
    let at_limit = format!("{head}{}}}", " ".repeat(BODY_LIMIT - head.len() - 1));
    assert_eq!(at_limit.len(), BODY_LIMIT);
    let r = admin_raw(&app, Method::POST, "/v1/tenants", at_limit).await;
    c.check(r.status == StatusCode::CREATED, || format!("a body of exactly {BODY_LIMIT} bytes: {} {}", r.status, r.text()));
    let before_over = snapshot(&app).await;
    let _ = before;

    // One byte over, well over, and streamed without a length.
    let over = format!(r#"{{"id":"over","name":"Over"{}}}"#, " ".repeat(BODY_LIMIT));
    let r = admin_raw(&app, Method::POST, "/v1/tenants", over.clone()).await;
    c.error(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "body over the limit");
    let just_over = format!("{head}{}}}", " ".repeat(BODY_LIMIT - head.len()));
    assert_eq!(just_over.len(), BODY_LIMIT + 1);
    let r = admin_raw(&app, Method::POST, "/v1/tenants", just_over).await;
    c.error(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "body one byte over the limit");
    let r = admin_raw(&app, Method::POST, "/v1/tenants", vec![b'{'; 1024 * 1024]).await;
    c.error(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "1 MiB body");
    // No size hint: the limit must hold while streaming, not only from Content-Length.
    let streamed = Body::new(http_body_util::Full::new(axum::body::Bytes::from(over)).map_frame(|f| f));
    let r = admin_raw(&app, Method::POST, "/v1/tenants", streamed).await;
    c.error(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "streamed body over the limit");
    c.unchanged(&before_over, &snapshot(&app).await, "oversize bodies");
    c.finish();
}

