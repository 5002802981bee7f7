//! Hostile and malformed input: every rejection is a 4xx with a JSON error body
//! `{"error": {"code", "message"}}` carrying a stable code, nothing is stored by
//! a rejected write, and no input makes the API answer 5xx or panic.
//!
//! Most tests collect every mismatch before failing, so one run lists all of them.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, Request, StatusCode};
use chrono::{Duration, Utc};
use ferry_core::ports::ManualClock;
use ferry_embedded::{FileSecretStore, SqliteStore};
use ferry_http::api::extract::BODY_LIMIT;
use ferry_service::bootstrap::Bootstrap;
use ferry_service::Hub;
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
        // The shape only matters for errors; a wrong 2xx is reported by its status.
        let problems =
            if r.status.is_client_error() || r.status.is_server_error() { error_shape(r) } else { Vec::new() };
        if r.status != status || r.code() != code || !problems.is_empty() {
            self.fail(format!(
                "{ctx}: expected {} `{code}`, got {} {}{}",
                status.as_u16(),
                r.status.as_u16(),
                truncate(&r.text()),
                if problems.is_empty() { String::new() } else { format!(" [{}]", problems.join("; ")) }
            ));
        }
        r.json()["error"]["message"].as_str().unwrap_or("").to_owned()
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
        assert!(self.failures.is_empty(), "{} problem(s):\n- {}", self.failures.len(), self.failures.join("\n- "));
    }
}

/// What is wrong with the shape of an error response (empty when it is a proper JSON error).
fn error_shape(r: &Response) -> Vec<String> {
    let mut problems = Vec::new();
    let ct = r.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !ct.starts_with("application/json") {
        problems.push(format!("content-type is {ct:?}"));
    }
    match serde_json::from_slice::<Value>(&r.bytes) {
        Ok(v) => {
            let code = v["error"]["code"].as_str().unwrap_or("");
            let msg = v["error"]["message"].as_str().unwrap_or("");
            if code.is_empty() || !code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
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
        for path in [format!("/v1/tenants/{id}/connections?limit=200"), format!("/v1/tenants/{id}/api-keys?limit=200")]
        {
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
    let r = app.admin(Method::POST, &format!("/v1/tenants/{tenant}/connections"), Some(body)).await;
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
    let admin_key = match hub.users().bootstrap(None).await.expect("bootstrap") {
        Bootstrap::Generated(k) => k,
        other => panic!("fresh store should generate a key, got {other:?}"),
    };
    let router = ferry_http::api::router(hub.clone());
    (TestApp { hub, router, admin_key, dir }, clock)
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
        (tenants, br#"{"name":"Dup","name":"Dup2"}"#.to_vec(), "invalid_field", ""),
        (conns, br#"{"name":"N","connector":"hubspot"}"#.to_vec(), "missing_field", "auth_kind"),
        (
            conns,
            br#"["Positional","hubspot","none"]"#.to_vec(),
            "invalid_field",
            "body",
        ),
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
    c.unchanged(&before, &snapshot(&app).await, "tenant creation with a wrong content type");
    // Also on PUT credentials and login.
    app.tenant("acme").await;
    let conn = app.connection("acme", "crm", "v1").await;
    let before = snapshot(&app).await;
    let r = raw(
        &app,
        Method::PUT,
        &format!("/v1/tenants/acme/connections/{conn}/credentials"),
        Some(&auth),
        Some("text/plain"),
        r#"{"api_key":"v2"}"#,
    )
    .await;
    c.error(&r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "text/plain credentials");
    let r = raw(&app, Method::POST, "/v1/sessions", None, None, r#"{"email":"a@example.com","password":"x"}"#).await;
    c.error(&r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "login without a content type");
    c.unchanged(&before, &snapshot(&app).await, "wrong content types");
    let stored = app.hub.connections().get_connection("acme", &conn).await.expect("conn");
    let secret = app.hub.connections().connection_credentials(&stored).await.expect("secrets").expect("some");
    c.check(secrecy::ExposeSecret::expose_secret(secret.get("api_key").expect("api_key")) == "v1", || {
        "a text/plain PUT changed the credentials".into()
    });

    // Positive controls: JSON with parameters, any case, and +json types are accepted.
    for (i, ct) in
        ["application/json; charset=utf-8", "Application/JSON", "application/merge-patch+json"].iter().enumerate()
    {
        let r =
            raw(&app, Method::POST, "/v1/tenants", Some(&auth), Some(ct), format!(r#"{{"id":"ok-{i}","name":"Ok"}}"#))
                .await;
        c.check(r.status == StatusCode::CREATED, || format!("Content-Type {ct}: {} {}", r.status, r.text()));
    }
    c.finish();
}

#[tokio::test]
async fn bodies_over_64_kib_are_413() {
    let app = TestApp::embedded().await;
    let mut c = Checks::default();

    // Exactly at the limit: accepted (padding is whitespace inside the object).
    let head = r#"{"id":"edge","name":"Edge""#;
    let at_limit = format!("{head}{}}}", " ".repeat(BODY_LIMIT - head.len() - 1));
    assert_eq!(at_limit.len(), BODY_LIMIT);
    let r = admin_raw(&app, Method::POST, "/v1/tenants", at_limit).await;
    c.check(r.status == StatusCode::CREATED, || {
        format!("a body of exactly {BODY_LIMIT} bytes: {} {}", r.status, r.text())
    });
    let before_over = snapshot(&app).await;

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

// ---------------------------------------------------------------------------
// Paths, routes, methods, queries.
// ---------------------------------------------------------------------------

#[tokio::test]
async fn bad_ids_in_paths_are_400_invalid_id() {
    let app = TestApp::embedded().await;
    let mut c = Checks::default();
    app.tenant("acme").await;
    let conn = app.connection("acme", "crm", "v1").await;
    let before = snapshot(&app).await;
    let long = "a".repeat(65);
    let bad_ids = [
        "ACME",
        "Acme",
        "a%2Fb",
        "a%2fb",
        "..",
        "%2E%2E",
        ".",
        long.as_str(),
        "%C3%A9t%C3%A9",
        "%E2%9C%93",
        "a_b",
        "-acme",
        "a%20b",
        "a%00b",
        "a%23b",
        "%FF",
        "%",
    ];
    for bad in bad_ids {
        let cases: Vec<(Method, String, Option<Value>)> = vec![
            (Method::GET, format!("/v1/tenants/{bad}"), None),
            (Method::PATCH, format!("/v1/tenants/{bad}"), Some(json!({"name": "X"}))),
            (Method::POST, format!("/v1/tenants/{bad}/archive"), None),
            (Method::GET, format!("/v1/tenants/{bad}/connections"), None),
            (
                Method::POST,
                format!("/v1/tenants/{bad}/connections"),
                Some(json!({"name": "N", "connector": "hubspot", "auth_kind": "none"})),
            ),
            (Method::GET, format!("/v1/tenants/acme/connections/{bad}"), None),
            (Method::DELETE, format!("/v1/tenants/acme/connections/{bad}"), None),
            (Method::PUT, format!("/v1/tenants/acme/connections/{bad}/credentials"), Some(json!({"api_key": "x"}))),
            (Method::GET, format!("/v1/users/{bad}"), None),
            (Method::PUT, format!("/v1/users/{bad}/memberships/acme"), None),
            (Method::DELETE, format!("/v1/api-keys/{bad}"), None),
            (Method::DELETE, format!("/v1/tenants/acme/api-keys/{bad}"), None),
        ];
        for (method, path, body) in cases {
            let ctx = format!("{method} {path}");
            let r = app.admin(method, &path, body).await;
            c.error(&r, StatusCode::BAD_REQUEST, "invalid_id", &ctx);
        }
    }
    // Boundaries: 64 characters is a valid (absent) id; a valid id that exists works.
    let max = "a".repeat(64);
    let r = app.admin(Method::GET, &format!("/v1/tenants/{max}"), None).await;
    c.error(&r, StatusCode::NOT_FOUND, "not_found", "64-character tenant id");
    let r = app.admin(Method::GET, &format!("/v1/tenants/acme/connections/{conn}"), None).await;
    c.check(r.status == StatusCode::OK, || format!("existing connection: {}", r.text()));
    // Ids are checked before authentication, and the answer is the same.
    let r = app.call(Method::GET, "/v1/tenants/ACME", None, None).await;
    c.error(&r, StatusCode::BAD_REQUEST, "invalid_id", "bad id without credentials");
    c.unchanged(&before, &snapshot(&app).await, "bad path ids");
    c.finish();
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405() {
    let app = TestApp::embedded().await;
    let mut c = Checks::default();
    app.tenant("acme").await;
    let conn = app.connection("acme", "crm", "v1").await;
    let before = snapshot(&app).await;
    for path in [
        "/".to_owned(),
        "/v1".to_owned(),
        "/v1/".to_owned(),
        "/v1/nope".to_owned(),
        "/v2/tenants".to_owned(),
        "/v1/tenants/".to_owned(),
        "/v1/tenants/acme/nope".to_owned(),
        "/v1/tenants/acme/connections/".to_owned(),
        format!("/v1/tenants/acme/connections/{conn}/nope"),
        format!("/v1/tenants/acme/connections/{conn}/credentials/api_key"),
        "/V1/TENANTS".to_owned(),
        "/healthz/".to_owned(),
        "/openapi.yaml".to_owned(),
    ] {
        for token in [None, Some(app.admin_key.as_str())] {
            let r = app.call(Method::GET, &path, token, None).await;
            c.error(&r, StatusCode::NOT_FOUND, "not_found", &format!("GET {path} (token: {})", token.is_some()));
            let r = app.call(Method::POST, &path, token, Some(json!({"name": "x"}))).await;
            c.error(&r, StatusCode::NOT_FOUND, "not_found", &format!("POST {path} (token: {})", token.is_some()));
        }
    }
    for (method, path) in [
        (Method::PUT, "/v1/tenants".to_owned()),
        (Method::DELETE, "/v1/tenants".to_owned()),
        (Method::DELETE, "/healthz".to_owned()),
        (Method::POST, "/healthz".to_owned()),
        (Method::POST, "/openapi.json".to_owned()),
        (Method::POST, "/v1/me".to_owned()),
        (Method::GET, "/v1/sessions".to_owned()),
        (Method::GET, "/v1/sessions/current".to_owned()),
        (Method::PUT, "/v1/tenants/acme".to_owned()),
        (Method::DELETE, "/v1/tenants/acme".to_owned()),
        (Method::GET, "/v1/tenants/acme/archive".to_owned()),
        (Method::PATCH, "/v1/tenants/acme/connections".to_owned()),
        (Method::PUT, format!("/v1/tenants/acme/connections/{conn}")),
        (Method::GET, format!("/v1/tenants/acme/connections/{conn}/credentials")),
        (Method::POST, format!("/v1/tenants/acme/connections/{conn}/credentials")),
        (Method::GET, format!("/v1/tenants/acme/connections/{conn}/disconnect")),
        (Method::PATCH, "/v1/api-keys".to_owned()),
        (Method::GET, "/v1/users/x/memberships/acme".to_owned()),
        (Method::from_bytes(b"FROB").expect("method"), "/v1/tenants".to_owned()),
    ] {
        for token in [None, Some(app.admin_key.as_str())] {
            let r = app.call(method.clone(), &path, token, Some(json!({"name": "x"}))).await;
            c.error(
                &r,
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                &format!("{method} {path} (token: {})", token.is_some()),
            );
        }
    }
    c.unchanged(&before, &snapshot(&app).await, "unknown routes and methods");
    c.finish();
}

#[tokio::test]
async fn bad_query_parameters_are_400() {
    let app = TestApp::embedded().await;
    let mut c = Checks::default();
    app.tenant("acme").await;
    app.connection("acme", "crm", "v1").await;
    app.tenant_key("acme").await;
    let lists =
        ["/v1/tenants", "/v1/users", "/v1/api-keys", "/v1/tenants/acme/connections", "/v1/tenants/acme/api-keys"];
    let cases = [
        ("limit=abc", "invalid_query"),
        ("limit=-1", "invalid_query"),
        ("limit=1.5", "invalid_query"),
        ("limit=", "invalid_query"),
        ("limit=99999999999", "invalid_query"),
        ("limit=0", "invalid_limit"),
        ("limit=201", "invalid_limit"),
        ("limit=100000", "invalid_limit"),
        ("bogus=1", "invalid_query"),
        ("limit=1&bogus=", "invalid_query"),
        ("LIMIT=1", "invalid_query"),
        ("limit=1&limit=2", "invalid_query"),
        ("cursor=zzz", "invalid_cursor"),
        ("cursor=!!!", "invalid_cursor"),
        ("cursor=", "invalid_cursor"),
        ("cursor=e30", "invalid_cursor"),    // base64 of "{}"
        ("cursor=bnVsbA", "invalid_cursor"), // base64 of "null"
    ];
    for list in lists {
        for (q, code) in cases {
            let path = format!("{list}?{q}");
            let r = app.admin(Method::GET, &path, None).await;
            c.error(&r, StatusCode::BAD_REQUEST, code, &format!("GET {path}"));
        }
        // Positive controls.
        for q in ["limit=1", "limit=200", ""] {
            let path = format!("{list}?{q}");
            let r = app.admin(Method::GET, &path, None).await;
            c.check(r.status == StatusCode::OK, || format!("GET {path}: {} {}", r.status, r.text()));
        }
    }
    // The same parameters are validated for every caller, not only platform admins.
    let (token, _) = app.member("member@example.com", &["acme"]).await;
    for (q, code) in [
        ("limit=0", "invalid_limit"),
        ("limit=abc", "invalid_query"),
        ("cursor=zzz", "invalid_cursor"),
        ("bogus=1", "invalid_query"),
    ] {
        let path = format!("/v1/tenants?{q}");
        let r = app.call(Method::GET, &path, Some(&token), None).await;
        c.error(&r, StatusCode::BAD_REQUEST, code, &format!("GET {path} as a member"));
    }
    c.finish();
}

#[tokio::test]
async fn a_cursor_of_one_tenant_is_refused_on_another() {
    let app = TestApp::embedded().await;
    let mut c = Checks::default();
    app.tenant("alpha").await;
    app.tenant("beta").await;
    let mut alpha_ids = Vec::new();
    for i in 0..3 {
        alpha_ids.push(app.connection("alpha", &format!("a{i}"), "sa").await);
    }
    for i in 0..2 {
        app.connection("beta", &format!("b{i}"), "sb").await;
    }
    let r = app.admin(Method::GET, "/v1/tenants/alpha/connections?limit=1", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let cursor = r.json()["next_cursor"].as_str().expect("alpha has a second page").to_owned();
    let tenants_cursor = {
        let r = app.admin(Method::GET, "/v1/tenants?limit=1", None).await;
        r.json()["next_cursor"].as_str().expect("two tenants").to_owned()
    };
    let (beta_key, _) = app.tenant_key("beta").await;
    let (beta_member, _) = app.member("beta@example.com", &["beta"]).await;
    let admin = app.admin_key.clone();
    for (who, token) in
        [("admin", admin.as_str()), ("beta key", beta_key.as_str()), ("beta member", beta_member.as_str())]
    {
        for limit in ["", "&limit=1", "&limit=200"] {
            let path = format!("/v1/tenants/beta/connections?cursor={cursor}{limit}");
            let r = app.call(Method::GET, &path, Some(token), None).await;
            c.error(&r, StatusCode::BAD_REQUEST, "invalid_cursor", &format!("alpha's cursor on beta as {who}"));
            for id in &alpha_ids {
                c.check(!r.text().contains(id.as_str()), || format!("alpha's connection {id} shown to {who}"));
            }
        }
    }
    // A cursor of another list is not a connection cursor either.
    let r = app.admin(Method::GET, &format!("/v1/tenants/alpha/connections?cursor={tenants_cursor}"), None).await;
    c.error(&r, StatusCode::BAD_REQUEST, "invalid_cursor", "the tenant list's cursor on a connection list");
    let r = app.admin(Method::GET, &format!("/v1/tenants?cursor={cursor}"), None).await;
    c.error(&r, StatusCode::BAD_REQUEST, "invalid_cursor", "a connection cursor on the tenant list");
    let r = app.admin(Method::GET, &format!("/v1/users?cursor={cursor}"), None).await;
    c.error(&r, StatusCode::BAD_REQUEST, "invalid_cursor", "a connection cursor on the user list");
    // On its own list the cursor works.
    let r = app.admin(Method::GET, &format!("/v1/tenants/alpha/connections?cursor={cursor}"), None).await;
    c.check(r.status == StatusCode::OK, || format!("alpha's cursor on alpha: {}", r.text()));
    c.finish();
}

// ---------------------------------------------------------------------------
// Domain rules.
// ---------------------------------------------------------------------------

#[tokio::test]
async fn tenant_rules() {
    let app = TestApp::embedded().await;
    let mut c = Checks::default();
    app.tenant("acme").await;
    let before = snapshot(&app).await;
    let long_id = "a".repeat(65);
    let long_name = "n".repeat(201);
    let cases: Vec<(Value, StatusCode, &str)> = vec![
        (json!({"id": "Bad Id", "name": "X"}), StatusCode::BAD_REQUEST, "invalid_id"),
        (json!({"id": "UPPER", "name": "X"}), StatusCode::BAD_REQUEST, "invalid_id"),
        (json!({"id": "-dash", "name": "X"}), StatusCode::BAD_REQUEST, "invalid_id"),
        (json!({"id": "a_b", "name": "X"}), StatusCode::BAD_REQUEST, "invalid_id"),
        (json!({"id": "a/b", "name": "X"}), StatusCode::BAD_REQUEST, "invalid_id"),
        (json!({"id": "", "name": "X"}), StatusCode::BAD_REQUEST, "invalid_id"),
        (json!({"id": long_id, "name": "X"}), StatusCode::BAD_REQUEST, "invalid_id"),
        (json!({"id": "été", "name": "X"}), StatusCode::BAD_REQUEST, "invalid_id"),
        (json!({"id": "platform", "name": "X"}), StatusCode::BAD_REQUEST, "invalid_id"),
        (json!({"id": "PLATFORM", "name": "X"}), StatusCode::BAD_REQUEST, "invalid_id"),
        (json!({"id": "acme", "name": "Again"}), StatusCode::CONFLICT, "tenant_exists"),
        (json!({"id": "fresh", "name": ""}), StatusCode::BAD_REQUEST, "invalid_name"),
        (json!({"id": "fresh", "name": "   "}), StatusCode::BAD_REQUEST, "invalid_name"),
        (json!({"id": "fresh", "name": "bell\u{7}"}), StatusCode::BAD_REQUEST, "invalid_name"),
        (json!({"id": "fresh", "name": "new\nline"}), StatusCode::BAD_REQUEST, "invalid_name"),
        (json!({"id": "fresh", "name": long_name}), StatusCode::BAD_REQUEST, "invalid_name"),
    ];
    for (body, status, code) in cases {
        let ctx = format!("POST /v1/tenants {body}");
        let r = app.admin(Method::POST, "/v1/tenants", Some(body)).await;
        c.error(&r, status, code, &ctx);
        c.unchanged(&before, &snapshot(&app).await, &ctx);
    }
    for body in [json!({"name": ""}), json!({"name": "x\u{0}y"}), json!({"paused": "no"})] {
        let ctx = format!("PATCH /v1/tenants/acme {body}");
        let r = app.admin(Method::PATCH, "/v1/tenants/acme", Some(body)).await;
        c.check(r.status.is_client_error(), || format!("{ctx}: {} {}", r.status, r.text()));
        c.check(error_shape(&r).is_empty(), || format!("{ctx}: {:?}", error_shape(&r)));
        c.unchanged(&before, &snapshot(&app).await, &ctx);
    }
    c.finish();
}

#[tokio::test]
async fn user_rules() {
    let app = TestApp::embedded().await;
    let mut c = Checks::default();
    app.tenant("acme").await;
    user(&app, "alice@example.com", &["acme"]).await;
    let before = snapshot(&app).await;
    let new_user = |email: &str, password: &str| json!({"email": email, "full_name": "Someone", "password": password, "role": "user"});
    let cases: Vec<(Value, StatusCode, &str)> = vec![
        (new_user("alice@example.com", "correct horse battery"), StatusCode::CONFLICT, "email_taken"),
        (new_user("Alice@Example.COM", "correct horse battery"), StatusCode::CONFLICT, "email_taken"),
        (new_user("  ALICE@example.com ", "correct horse battery"), StatusCode::CONFLICT, "email_taken"),
        (new_user("bob@example.com", "short"), StatusCode::BAD_REQUEST, "weak_password"),
        (new_user("bob@example.com", "1234567"), StatusCode::BAD_REQUEST, "weak_password"),
        (new_user("bob@example.com", ""), StatusCode::BAD_REQUEST, "weak_password"),
        (new_user("bob@example.com", &"p".repeat(257)), StatusCode::BAD_REQUEST, "weak_password"),
        (new_user("nope", "correct horse battery"), StatusCode::BAD_REQUEST, "invalid_email"),
        (new_user("", "correct horse battery"), StatusCode::BAD_REQUEST, "invalid_email"),
        (new_user("a@b", "correct horse battery"), StatusCode::BAD_REQUEST, "invalid_email"),
        (new_user("@example.com", "correct horse battery"), StatusCode::BAD_REQUEST, "invalid_email"),
        (new_user("bob@", "correct horse battery"), StatusCode::BAD_REQUEST, "invalid_email"),
        (new_user("bob smith@example.com", "correct horse battery"), StatusCode::BAD_REQUEST, "invalid_email"),
        (new_user("bob@example.com.", "correct horse battery"), StatusCode::BAD_REQUEST, "invalid_email"),
        (new_user("bob@@example.com", "correct horse battery"), StatusCode::BAD_REQUEST, "invalid_email"),
        (
            new_user(&format!("{}@example.com", "b".repeat(250)), "correct horse battery"),
            StatusCode::BAD_REQUEST,
            "invalid_email",
        ),
        (
            json!({"email": "carol@example.com", "full_name": "", "password": "correct horse battery", "role": "user"}),
            StatusCode::BAD_REQUEST,
            "invalid_name",
        ),
        (
            json!({"email": "carol@example.com", "full_name": "C", "password": "correct horse battery", "role": "user", "memberships": ["ghost"]}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            json!({"email": "carol@example.com", "full_name": "C", "password": "correct horse battery", "role": "user", "memberships": ["Bad Id"]}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (body, status, code) in cases {
        let ctx = format!("POST /v1/users {}", truncate(&body.to_string()));
        let r = app.admin(Method::POST, "/v1/users", Some(body)).await;
        c.error(&r, status, code, &ctx);
        c.unchanged(&before, &snapshot(&app).await, &ctx);
    }
    // A rejected email was not claimed: the address can still be registered.
    user(&app, "bob@example.com", &[]).await;
    c.finish();
}

#[tokio::test]
async fn credentials_must_fit_the_auth_kind() {
    let app = TestApp::embedded().await;
    let mut c = Checks::default();
    app.tenant("acme").await;
    let keyed = app.connection("acme", "crm", "original").await;
    let open = connection(&app, "acme", json!({"name": "feed", "connector": "rss", "auth_kind": "none"})).await;
    let basic = connection(&app, "acme", json!({"name": "billing", "connector": "stripe", "auth_kind": "basic"})).await;
    let before = snapshot(&app).await;

    let create = |kind: &str, creds: Value| json!({"name": "new", "connector": "hubspot", "auth_kind": kind, "credentials": creds});
    let cases: Vec<(Value, &str, &str)> = vec![
        (create("api_key", json!({})), "missing_credentials", "api_key"),
        (create("api_key", json!({"api_key": ""})), "missing_credentials", "api_key"),
        (create("api_key", json!({"token": "t"})), "missing_credentials", "api_key"),
        (create("basic", json!({"username": "u"})), "missing_credentials", "password"),
        (create("basic", json!({"password": "p"})), "missing_credentials", "username"),
        (create("bearer", json!({})), "missing_credentials", "token"),
        (create("oauth2", json!({"refresh_token": "r"})), "missing_credentials", "access_token"),
        (create("none", json!({"api_key": "k"})), "credentials_not_allowed", "none"),
        (create("api_key", json!({"api_key": "k", "Bad Field": "x"})), "invalid_credential_field", "Bad Field"),
        (create("api_key", json!({"api_key": "k", "": "x"})), "invalid_credential_field", "credential field"),
        (create("api_key", json!({"api_key": "k".repeat(16 * 1024 + 1)})), "invalid_credential_field", "16 KiB"),
        (json!({"name": "", "connector": "hubspot", "auth_kind": "none"}), "invalid_name", "name"),
        (json!({"name": "n", "connector": "Hub Spot", "auth_kind": "none"}), "invalid_connector", "connector"),
    ];
    for (body, code, needle) in cases {
        let ctx = format!("POST connections {}", truncate(&body.to_string()));
        let r = app.admin(Method::POST, "/v1/tenants/acme/connections", Some(body)).await;
        c.error_naming(&r, StatusCode::BAD_REQUEST, code, needle, &ctx);
        c.unchanged(&before, &snapshot(&app).await, &ctx);
    }
    let r = app
        .admin(
            Method::POST,
            "/v1/tenants/acme/connections",
            Some(json!({"name": "CRM", "connector": "x", "auth_kind": "api_key", "credentials": {"api_key": "k"}})),
        )
        .await;
    c.error(&r, StatusCode::CONFLICT, "connection_exists", "duplicate name, other case");
    c.unchanged(&before, &snapshot(&app).await, "duplicate connection name");

    let put = |id: &str| format!("/v1/tenants/acme/connections/{id}/credentials");
    let puts: Vec<(String, Value, StatusCode, &str)> = vec![
        (put(&keyed), json!({}), StatusCode::BAD_REQUEST, "missing_credentials"),
        (put(&keyed), json!({"api_key": ""}), StatusCode::BAD_REQUEST, "missing_credentials"),
        (put(&keyed), json!({"token": "t"}), StatusCode::BAD_REQUEST, "missing_credentials"),
        (put(&keyed), json!({"api_key": "k", "API_KEY": "x"}), StatusCode::BAD_REQUEST, "invalid_credential_field"),
        (put(&basic), json!({"username": "u"}), StatusCode::BAD_REQUEST, "missing_credentials"),
        (put(&basic), json!({"api_key": "k"}), StatusCode::BAD_REQUEST, "missing_credentials"),
        (put(&open), json!({"api_key": "k"}), StatusCode::BAD_REQUEST, "credentials_not_allowed"),
        (put(&open), json!({}), StatusCode::BAD_REQUEST, "credentials_not_allowed"),
        (put("01missing"), json!({"api_key": "k"}), StatusCode::NOT_FOUND, "not_found"),
    ];
    for (path, body, status, code) in puts {
        let ctx = format!("PUT {path} {body}");
        let r = app.admin(Method::PUT, &path, Some(body)).await;
        c.error(&r, status, code, &ctx);
        c.unchanged(&before, &snapshot(&app).await, &ctx);
    }
    // The secret port still holds exactly what it held.
    for (id, want) in
        [(&keyed, Some(vec![("api_key".to_owned(), "original".to_owned())])), (&open, None), (&basic, None)]
    {
        let conn = app.hub.connections().get_connection("acme", id).await.expect("conn");
        let got = app.hub.connections().connection_credentials(&conn).await.expect("secrets").map(|f| {
            f.0.iter().map(|(k, v)| (k.clone(), secrecy::ExposeSecret::expose_secret(v).to_owned())).collect::<Vec<_>>()
        });
        c.check(got == want, || format!("credentials of {id} changed: {got:?}"));
    }
    c.finish();
}

// ---------------------------------------------------------------------------
// Authentication.
// ---------------------------------------------------------------------------

fn assert_401(c: &mut Checks, r: &Response, ctx: &str) {
    c.error(r, StatusCode::UNAUTHORIZED, "unauthorized", ctx);
    let challenge = r.headers.get(header::WWW_AUTHENTICATE);
    c.check(challenge == Some(&HeaderValue::from_static("Bearer")), || {
        format!("{ctx}: WWW-Authenticate is {challenge:?}, expected `Bearer`")
    });
}

#[tokio::test]
async fn malformed_or_unknown_credentials_are_401() {
    let app = TestApp::embedded().await;
    let mut c = Checks::default();
    app.tenant("acme").await;
    let before = snapshot(&app).await;
    let admin = app.admin_key.clone();
    let hex64 = "0123456789abcdef".repeat(4);
    let mut flipped = admin.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).expect("ascii");
    let headers: Vec<Vec<u8>> = vec![
        b"Basic x".to_vec(),
        b"Basic YWRtaW46YWRtaW4=".to_vec(),
        b"Bearer".to_vec(),
        b"Bearer ".to_vec(),
        b"Bearer     ".to_vec(),
        b"bearer".to_vec(),
        b"Token abc".to_vec(),
        b"Bearer garbage".to_vec(),
        b"Bearer a b c".to_vec(),
        admin.clone().into_bytes(), // the key without a scheme
        format!("Basic {admin}").into_bytes(),
        format!("Bearer {flipped}").into_bytes(),
        format!("Bearer {admin}x").into_bytes(),
        format!("Bearer {}", admin.to_uppercase()).into_bytes(),
        format!("Bearer ferry_acme_{hex64}").into_bytes(),
        format!("Bearer ferry_platform_{hex64}").into_bytes(),
        format!("Bearer ferry_ghost_{hex64}").into_bytes(),
        format!("Bearer ferry__{hex64}").into_bytes(),
        format!("Bearer fsess_{hex64}").into_bytes(),
        b"Bearer fsess_".to_vec(),
        b"Bearer \xff\xfe".to_vec(),
        format!("Bearer {}", "x".repeat(8 * 1024)).into_bytes(),
    ];
    for h in headers {
        let shown = String::from_utf8_lossy(&h);
        let shown = truncate(&shown);
        let value = HeaderValue::from_bytes(&h).expect("header value");
        for (method, path, body) in [
            (Method::GET, "/v1/me", None),
            (Method::GET, "/v1/tenants/acme/connections", None),
            (Method::POST, "/v1/tenants", Some(json!({"id": "sneaky", "name": "S"}))),
            (
                Method::POST,
                "/v1/tenants/acme/connections",
                Some(json!({"name": "n", "connector": "c", "auth_kind": "none"})),
            ),
        ] {
            let mut b =
                Request::builder().method(method.clone()).uri(path).header(header::AUTHORIZATION, value.clone());
            let req = match body {
                Some(v) => b.header(header::CONTENT_TYPE, "application/json").body(Body::from(v.to_string())),
                None => {
                    b = b.header(header::ACCEPT, "application/json");
                    b.body(Body::empty())
                }
            }
            .expect("request");
            let r = app.send(req).await;
            assert_401(&mut c, &r, &format!("{method} {path} with Authorization {shown:?}"));
        }
    }
    for path in ["/v1/me", "/v1/tenants", "/v1/tenants/acme", "/v1/users", "/v1/api-keys"] {
        let r = app.call(Method::GET, path, None, None).await;
        assert_401(&mut c, &r, &format!("GET {path} without credentials"));
    }
    c.unchanged(&before, &snapshot(&app).await, "requests with bad credentials");
    // Positive control: the scheme is case-insensitive.
    let r = raw(&app, Method::GET, "/v1/me", Some(&format!("bearer {admin}")), None, Body::empty()).await;
    c.check(r.status == StatusCode::OK, || format!("lowercase scheme: {} {}", r.status, r.text()));
    c.finish();
}

#[tokio::test]
async fn expired_and_revoked_credentials_are_401() {
    let (app, clock) = app_with_clock().await;
    let mut c = Checks::default();
    app.tenant("acme").await;
    let now = Utc::now();
    clock.set(now);

    // Expiry in the past or now is refused at creation, and stores nothing.
    let before = snapshot(&app).await;
    for at in [now - Duration::seconds(1), now] {
        let r = app
            .admin(Method::POST, "/v1/tenants/acme/api-keys", Some(json!({"name": "k", "expires_at": at.to_rfc3339()})))
            .await;
        c.error(&r, StatusCode::BAD_REQUEST, "invalid_expiry", &format!("expires_at {at}"));
    }
    c.unchanged(&before, &snapshot(&app).await, "keys with a past expiry");

    // A key that expires.
    let r = app
        .admin(
            Method::POST,
            "/v1/tenants/acme/api-keys",
            Some(json!({"name": "short-lived", "expires_at": (now + Duration::minutes(5)).to_rfc3339()})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let expiring = r.json()["key"].as_str().expect("key").to_owned();
    let r = app.call(Method::GET, "/v1/tenants/acme/connections", Some(&expiring), None).await;
    c.check(r.status == StatusCode::OK, || format!("a live key: {}", r.text()));

    // A revoked tenant key and a revoked admin key.
    let (revoked, revoked_id) = app.tenant_key("acme").await;
    let r = app.admin(Method::DELETE, &format!("/v1/tenants/acme/api-keys/{revoked_id}"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = app.admin(Method::POST, "/v1/api-keys", Some(json!({"name": "second admin"}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let admin2 = r.json()["key"].as_str().expect("key").to_owned();
    let admin2_id = r.json()["api_key"]["id"].as_str().expect("id").to_owned();
    let r = app.call(Method::DELETE, &format!("/v1/api-keys/{admin2_id}"), Some(&admin2), None).await;
    assert_eq!(r.status, StatusCode::OK, "an admin key may revoke itself: {}", r.text());

    // A session that expires, one that was ended, and one of a deactivated user.
    let (session, _) = app.member("m1@example.com", &["acme"]).await;
    let (ended, _) = app.member("m2@example.com", &["acme"]).await;
    let r = app.call(Method::DELETE, "/v1/sessions/current", Some(&ended), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    let (inactive, inactive_id) = app.member("m3@example.com", &["acme"]).await;
    let r = app.admin(Method::PATCH, &format!("/v1/users/{inactive_id}"), Some(json!({"active": false}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    let r = app.call(Method::GET, "/v1/me", Some(&session), None).await;
    c.check(r.status == StatusCode::OK, || format!("a live session: {}", r.text()));
    for (what, token) in [
        ("revoked tenant key", &revoked),
        ("revoked admin key", &admin2),
        ("ended session", &ended),
        ("inactive user's session", &inactive),
    ] {
        for path in ["/v1/me", "/v1/tenants/acme/connections"] {
            let r = app.call(Method::GET, path, Some(token), None).await;
            assert_401(&mut c, &r, &format!("{what} on {path}"));
        }
    }

    // Time passes: the key and the session expire (sessions last an hour by default).
    clock.advance(Duration::hours(2));
    for (what, token) in [("expired key", &expiring), ("expired session", &session)] {
        for path in ["/v1/me", "/v1/tenants/acme/connections"] {
            let r = app.call(Method::GET, path, Some(token), None).await;
            assert_401(&mut c, &r, &format!("{what} on {path}"));
        }
    }
    // And an expired key cannot write either.
    let before = snapshot(&app).await;
    let r = app
        .call(
            Method::POST,
            "/v1/tenants/acme/connections",
            Some(&expiring),
            Some(json!({"name": "late", "connector": "c", "auth_kind": "none"})),
        )
        .await;
    assert_401(&mut c, &r, "write with an expired key");
    c.unchanged(&before, &snapshot(&app).await, "write with an expired key");
    c.finish();
}

// ---------------------------------------------------------------------------
// Nothing panics: hostile bodies on every route.
// ---------------------------------------------------------------------------

fn hostile_bodies() -> Vec<(&'static str, Vec<u8>)> {
    let depth = 10_000;
    let nested_arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let nested_objects = format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
    let nested_settings = format!(
        r#"{{"name":"n","connector":"c","auth_kind":"none","settings":{}1{}}}"#,
        r#"{"a":"#.repeat(depth),
        "}".repeat(depth)
    );
    let deep_but_legal = format!(
        r#"{{"name":"deep","connector":"c","auth_kind":"none","settings":{}1{}}}"#,
        r#"{"a":"#.repeat(100),
        "}".repeat(100)
    );
    vec![
        ("empty", Vec::new()),
        ("null", b"null".to_vec()),
        ("[]", b"[]".to_vec()),
        ("{}", b"{}".to_vec()),
        ("\"str\"", b"\"str\"".to_vec()),
        ("1e999999", b"1e999999".to_vec()),
        ("-0", b"-0".to_vec()),
        ("1 MB of {", vec![b'{'; 1024 * 1024]),
        ("10k nested arrays", nested_arrays.into_bytes()),
        ("10k nested objects", nested_objects.into_bytes()),
        ("10k nested settings", nested_settings.into_bytes()),
        ("100 nested settings", deep_but_legal.into_bytes()),
        ("invalid UTF-8", b"\xff\xfe\xfd".to_vec()),
        ("invalid UTF-8 in a string", b"{\"name\":\"\xff\"}".to_vec()),
        ("lone surrogate", br#"{"name":"\ud800","email":"\udfff"}"#.to_vec()),
        ("NUL bytes", vec![0u8; 1000]),
        ("NUL in strings", br#"{"name":"a\u0000b","email":"x\u0000@example.com","password":"\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000"}"#.to_vec()),
        ("60 KB string", format!("\"{}\"", "s".repeat(60 * 1024)).into_bytes()),
        ("huge integers", br#"{"limit":18446744073709551616,"paused":1,"name":1e400}"#.to_vec()),
    ]
}

/// Sends one request on its own task so a panic in the router is caught and reported.
async fn send_catching(app: &TestApp, req: Request<Body>) -> Result<Response, String> {
    let router = app.router.clone();
    let task = tokio::spawn(async move {
        let res = router.oneshot(req).await.expect("router is infallible");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes =
            res.into_body().collect().await.map(|b| b.to_bytes()).map_err(|e| format!("response body failed: {e}"))?;
        Ok::<_, String>(Response { status, headers, bytes })
    });
    match task.await {
        Ok(r) => r,
        Err(e) if e.is_panic() => Err("the request panicked".into()),
        Err(e) => Err(format!("the request task failed: {e}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_bodies_on_every_route_never_cause_a_server_error() {
    let app = TestApp::embedded().await;
    let mut c = Checks::default();
    app.tenant("acme").await;
    let conn = app.connection("acme", "crm", "s3cret").await;
    let user_id = user(&app, "sweep@example.com", &["acme"]).await;
    let (_, tenant_key_id) = app.tenant_key("acme").await;
    // An admin key the sweep may revoke (never the one it is using).
    let r = app.admin(Method::POST, "/v1/api-keys", Some(json!({"name": "spare"}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let spare_admin_key_id = r.json()["api_key"]["id"].as_str().expect("id").to_owned();
    app.publish("crm-sync", crate::support::manifests::CRM_SYNC).await;
    let job = app
        .job("acme", json!({"name": "sweep", "integration": "crm-sync", "connections": {"crm": conn}, "configs": {"region": "eu"}}))
        .await;
    let mapping = app.mapping("acme", "sweep").await;
    let run = {
        let r = app.admin(Method::POST, &format!("/v1/tenants/acme/jobs/{job}/runs"), Some(json!({}))).await;
        r.json()["run"]["id"].as_str().unwrap_or_default().to_owned()
    };
    let endpoint = |owner: &'static str| {
        let app = &app;
        async move {
            let r = app.admin(Method::POST, owner, Some(json!({"url": "http://127.0.0.1:9/events"}))).await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
            r.json()["endpoint"]["id"].as_str().expect("endpoint id").to_owned()
        }
    };
    let dead_letter = {
        let now = chrono::Utc::now();
        let dl = ferry_core::model::DeadLetter {
            id: "01sweepdeadletter".into(),
            tenant: "acme".into(),
            job: job.clone(),
            run: run.clone(),
            flow: "contacts".into(),
            category: ferry_core::model::DeadLetterCategory::Mapping,
            error: "field `n`: `x` is not an integer".into(),
            attempts: 1,
            first_seen: now,
            last_seen: now,
            status: ferry_core::model::DeadLetterStatus::Pending,
            source: Some(json!({"n": "x"})),
            mapped: None,
            mapped_with: ferry_core::model::MappedWith::None,
            stored_at: None,
            last_run: run.clone(),
        };
        ferry_service::dead_letters::store::insert(app.hub.store.as_ref(), std::slice::from_ref(&dl))
            .await
            .expect("dead letter");
        dl.id
    };
    let tenant_endpoint = endpoint("/v1/tenants/acme/notification-endpoints").await;
    let platform_endpoint = endpoint("/v1/notification-endpoints").await;

    // Destructive routes last, archiving the tenant very last.
    let mut specs = ferry_http::api::routes::specs();
    assert!(specs.len() >= 20, "the route table looks empty");
    let rank = |s: &ferry_http::api::routes::RouteSpec| {
        if s.path.ends_with("/archive") {
            2
        } else if s.method == Method::DELETE || s.path.ends_with("/disconnect") {
            1
        } else {
            0
        }
    };
    specs.sort_by_key(|s| rank(s));

    let bodies = hostile_bodies();
    let auth = format!("Bearer {}", app.admin_key);
    let mut sent = 0usize;
    for spec in &specs {
        let existing = |param: &str| -> String {
            match param {
                "tenant" => "acme".into(),
                "connection" => conn.clone(),
                "user" => user_id.clone(),
                "key" if spec.path.starts_with("/v1/api-keys") => spare_admin_key_id.clone(),
                "key" => tenant_key_id.clone(),
                "integration" => "crm-sync".into(),
                "release" => "1".into(),
                "job" => job.clone(),
                "mapping" => mapping.clone(),
                "run" => run.clone(),
                "dead_letter" => dead_letter.clone(),
                "provider" => "hubspot".into(),
                "endpoint" if spec.path.starts_with("/v1/notification-endpoints") => platform_endpoint.clone(),
                "endpoint" => tenant_endpoint.clone(),
                other => {
                    panic!("route {} has an unknown path parameter {{{other}}}; teach this sweep about it", spec.path)
                }
            }
        };
        let fill = |value: &dyn Fn(&str) -> String| -> String {
            let mut path = String::new();
            let mut rest = spec.path;
            while let Some(open) = rest.find('{') {
                let close = rest[open..].find('}').expect("closing brace") + open;
                path.push_str(&rest[..open]);
                path.push_str(&value(&rest[open + 1..close]));
                rest = &rest[close + 1..];
            }
            path.push_str(rest);
            path
        };
        let paths = [
            ("existing ids", fill(&existing)),
            ("absent ids", fill(&|_| "zz-absent-0".to_owned())),
            ("invalid ids", fill(&|_| "BAD%2F..%FF".to_owned())),
        ];
        for (ids, path) in &paths {
            // (name, authorization, content type, body)
            type Variant<'a> = (String, Option<&'a str>, Option<&'a str>, Vec<u8>);
            let mut variants: Vec<Variant> = bodies
                .iter()
                .map(|(name, body)| (name.to_string(), Some(auth.as_str()), Some("application/json"), body.clone()))
                .collect();
            variants.push(("{} without a content type".into(), Some(auth.as_str()), None, b"{}".to_vec()));
            variants.push(("{} as text/plain".into(), Some(auth.as_str()), Some("text/plain"), b"{}".to_vec()));
            variants.push(("no credentials".into(), None, Some("application/json"), b"{}".to_vec()));
            variants.push(("malformed credentials".into(), Some("Basic x"), Some("application/json"), b"{}".to_vec()));
            for (body_name, authorization, ct, body) in variants {
                let ctx = format!("{} {path} ({ids}) with {body_name}", spec.method);
                let mut b = Request::builder().method(spec.method.clone()).uri(path.as_str());
                if let Some(a) = authorization {
                    b = b.header(header::AUTHORIZATION, a);
                }
                if let Some(ct) = ct {
                    b = b.header(header::CONTENT_TYPE, ct);
                }
                let req = b.body(Body::from(body)).expect("request");
                sent += 1;
                match send_catching(&app, req).await {
                    Err(e) => c.fail(format!("{ctx}: {e}")),
                    Ok(r) => {
                        if r.status.is_server_error() {
                            c.fail(format!("{ctx}: {} {}", r.status, truncate(&r.text())));
                        } else if r.status.is_client_error() {
                            let problems = error_shape(&r);
                            c.check(problems.is_empty(), || {
                                format!(
                                    "{ctx}: {} without a proper JSON error: {} {}",
                                    r.status,
                                    problems.join("; "),
                                    truncate(&r.text())
                                )
                            });
                        }
                    }
                }
            }
        }
    }
    assert!(sent > 1000, "the sweep sent only {sent} requests");
    // The API is still up and the admin key still works.
    let r = app.admin(Method::GET, "/healthz", None).await;
    c.check(r.status == StatusCode::OK, || format!("healthz after the sweep: {}", r.text()));
    let r = app.admin(Method::GET, "/v1/me", None).await;
    c.check(r.status == StatusCode::OK, || format!("admin key after the sweep: {}", r.text()));
    c.finish();
}
