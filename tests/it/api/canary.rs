//! Canary test: secrets sent to or minted by the admin API never come back out.
//!
//! Unique random values are planted as connection credentials, passwords and in
//! rejected requests; the API also mints secrets of its own (API keys, session
//! tokens). Afterwards every API response, every log line and span field of the
//! whole test binary (captured at TRACE level), and the raw bytes of every file
//! in the data directory (`ferry.db` and its WAL included) are searched for them.
//! The only places a secret may appear are the one response that hands it out
//! and, for credentials, the secret port (which must return them intact).
//!
//! Runs are part of it: a process integration prints its credentials, an
//! upstream echoes them into an error, and a token endpoint quotes the refresh
//! token and client secret into a refused refresh. Their run records, run
//! logs, `run_failed` events and the connection's status message are searched
//! for each secret plain, base64 and percent-encoded. (There are no dead
//! letters yet to search.)

use std::io;
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, Request, StatusCode};
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::fmt::MakeWriter;

use crate::support::app::{Response, TestApp};

// ---------------------------------------------------------------------------
// Log capture: one global TRACE subscriber for the whole test binary.
// ---------------------------------------------------------------------------

type Buffer = Arc<Mutex<Vec<u8>>>;

#[derive(Clone)]
struct CaptureWriter(Buffer);

impl io::Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[derive(Clone)]
struct Capture(Buffer);

impl<'a> MakeWriter<'a> for Capture {
    type Writer = CaptureWriter;
    fn make_writer(&'a self) -> Self::Writer {
        CaptureWriter(self.0.clone())
    }
}

/// The buffer every log line of the binary goes to; installs the subscriber on first use.
fn captured_logs() -> &'static Buffer {
    static LOGS: OnceLock<Buffer> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer: Buffer = Arc::new(Mutex::new(Vec::new()));
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            // Span open/close events carry every recorded span field.
            .with_span_events(FmtSpan::FULL)
            .with_ansi(false)
            .with_writer(Capture(buffer.clone()))
            .try_init()
            .expect("the canary test must own the global tracing subscriber of the test binary");
        buffer
    })
}

fn log_text() -> String {
    let bytes = captured_logs().lock().unwrap_or_else(|e| e.into_inner()).clone();
    String::from_utf8_lossy(&bytes).into_owned()
}

// ---------------------------------------------------------------------------
// Canaries and a recording client.
// ---------------------------------------------------------------------------

/// A unique, random, greppable value.
fn canary(purpose: &str) -> String {
    format!("canary{purpose}{}", ulid::Ulid::new()).to_ascii_lowercase()
}

/// 64 random lowercase hex characters (shaped like the secret half of a key or token).
fn canary_hex() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// Case-insensitive search of `needle` in (lossily decoded) bytes.
fn leaks(haystack_lower: &str, needle: &str) -> bool {
    haystack_lower.contains(&needle.to_ascii_lowercase())
}

fn lower(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_ascii_lowercase()
}

struct Seen {
    label: String,
    res: Response,
    /// Secrets this one response is allowed to carry (the key it creates, the token it issues).
    allowed: Vec<String>,
}

struct Client<'a> {
    app: &'a TestApp,
    seen: Vec<Seen>,
}

fn copy(r: &Response) -> Response {
    Response { status: r.status, headers: r.headers.clone(), bytes: r.bytes.clone() }
}

impl<'a> Client<'a> {
    fn new(app: &'a TestApp) -> Self {
        Self { app, seen: Vec::new() }
    }

    fn keep(&mut self, label: String, res: Response, allowed: Vec<String>) -> Response {
        let out = copy(&res);
        self.seen.push(Seen { label, res, allowed });
        out
    }

    async fn call(&mut self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Response {
        let label = format!("{method} {path}");
        let res = self.app.call(method, path, token, body).await;
        self.keep(label, res, Vec::new())
    }

    async fn admin(&mut self, method: Method, path: &str, body: Option<Value>) -> Response {
        let key = self.app.admin_key.clone();
        self.call(method, path, Some(&key), body).await
    }

    /// A request with a raw body, content type and Authorization header value.
    async fn raw(
        &mut self,
        method: Method,
        path: &str,
        authorization: Option<&str>,
        content_type: Option<&str>,
        body: impl Into<Body>,
    ) -> Response {
        let mut b = Request::builder().method(method.clone()).uri(path);
        if let Some(a) = authorization {
            b = b.header(header::AUTHORIZATION, a);
        }
        if let Some(ct) = content_type {
            b = b.header(header::CONTENT_TYPE, ct);
        }
        let res = self.app.send(b.body(body.into()).expect("request")).await;
        self.keep(format!("{method} {path} (raw)"), res, Vec::new())
    }

    /// Records a response that legitimately hands out `secret` once.
    fn allow_last(&mut self, secret: &str) {
        self.seen.last_mut().expect("a response").allowed.push(secret.to_owned());
    }
}

/// Asserts a rejected request: 4xx, JSON error body with the expected code.
fn rejected(r: &Response, status: StatusCode, code: &str, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.text());
    assert_eq!(r.code(), code, "{what}: {}", r.text());
    let msg = r.json()["error"]["message"].as_str().unwrap_or("").to_owned();
    assert!(!msg.is_empty(), "{what}: error without a message");
}

fn masked(view: &Value, fields: &[&str]) {
    let creds = view["credentials"].as_object().unwrap_or_else(|| panic!("no credentials object in {view}"));
    let mut names: Vec<&str> = creds.keys().map(String::as_str).collect();
    names.sort_unstable();
    let mut want = fields.to_vec();
    want.sort_unstable();
    assert_eq!(names, want, "credential names shown: {view}");
    for (k, v) in creds {
        assert_eq!(v, "********", "credential {k} not masked: {view}");
    }
}

async fn stored(app: &TestApp, tenant: &str, conn: &str) -> Option<Vec<(String, String)>> {
    let c = app.hub.connections().get_connection(tenant, conn).await.expect("connection");
    app.hub
        .connections()
        .connection_credentials(&c)
        .await
        .expect("secret port")
        .map(|fields| fields.0.iter().map(|(k, v)| (k.clone(), v.expose_secret().to_owned())).collect())
}

fn pairs(p: &[(&str, &str)]) -> Option<Vec<(String, String)>> {
    let mut v: Vec<(String, String)> = p.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect();
    v.sort();
    Some(v)
}

// ---------------------------------------------------------------------------
// The test.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_leak_into_responses_logs_or_the_store() {
    let logs = captured_logs();
    let integrations = tempfile::tempdir().expect("integrations dir");
    let (app, bus) = runs_app(integrations.path()).await;
    let mut events = bus.subscribe();
    let mut c = Client::new(&app);
    let t = app.tenant("canary-co").await;
    let conns = format!("/v1/tenants/{t}/connections");

    // Every secret the test knows of, planted or minted.
    let mut secrets: Vec<(&'static str, String)> = Vec::new();
    let admin_key = app.admin_key.clone();
    secrets.push(("bootstrap admin key", admin_key.clone()));
    secrets.push(("bootstrap admin key secret half", admin_key.rsplit('_').next().expect("key").to_owned()));

    // -- Connection credentials ------------------------------------------------
    let c_create = canary("createapikey");
    let c_put = canary("putapikey");
    let c_user = canary("basicuser");
    let c_pass = canary("basicpass");
    let c_bearer = canary("bearertoken");
    for (what, v) in [
        ("api_key at creation", &c_create),
        ("api_key via PUT", &c_put),
        ("basic username", &c_user),
        ("basic password", &c_pass),
        ("bearer token of a disconnected connection", &c_bearer),
    ] {
        secrets.push((what, v.clone()));
    }

    let r = c
        .admin(
            Method::POST,
            &conns,
            Some(json!({"name": "CRM", "connector": "hubspot", "auth_kind": "api_key",
                "settings": {"portal": 42}, "credentials": {"api_key": c_create}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    masked(&r.json(), &["api_key"]);
    let a = r.json()["id"].as_str().expect("id").to_owned();
    assert_eq!(stored(&app, &t, &a).await, pairs(&[("api_key", &c_create)]), "creation credentials were not stored");

    let r = c.admin(Method::PUT, &format!("{conns}/{a}/credentials"), Some(json!({"api_key": c_put}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    masked(&r.json(), &["api_key"]);
    assert_eq!(stored(&app, &t, &a).await, pairs(&[("api_key", &c_put)]), "PUT credentials were not stored");

    let r = c
        .admin(Method::POST, &conns, Some(json!({"name": "Billing", "connector": "stripe", "auth_kind": "basic"})))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["status"], "disconnected");
    masked(&r.json(), &[]);
    let b = r.json()["id"].as_str().expect("id").to_owned();
    let r = c
        .admin(Method::PUT, &format!("{conns}/{b}/credentials"), Some(json!({"username": c_user, "password": c_pass})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["status"], "connected");
    masked(&r.json(), &["password", "username"]);
    assert_eq!(
        stored(&app, &t, &b).await,
        pairs(&[("password", &c_pass), ("username", &c_user)]),
        "basic credentials were not stored"
    );

    let r = c
        .admin(
            Method::POST,
            &conns,
            Some(json!({"name": "Chat", "connector": "slack", "auth_kind": "bearer", "credentials": {"token": c_bearer}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let d = r.json()["id"].as_str().expect("id").to_owned();
    assert_eq!(stored(&app, &t, &d).await, pairs(&[("token", &c_bearer)]));

    let r = c
        .admin(Method::POST, &conns, Some(json!({"name": "Public feed", "connector": "rss", "auth_kind": "none"})))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let n = r.json()["id"].as_str().expect("id").to_owned();

    // -- A tenant API key, shown once ----------------------------------------------
    let r = c.admin(Method::POST, &format!("/v1/tenants/{t}/api-keys"), Some(json!({"name": "ci"}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let tenant_key = r.json()["key"].as_str().expect("key").to_owned();
    let tenant_key_id = r.json()["api_key"]["id"].as_str().expect("id").to_owned();
    c.allow_last(&tenant_key);
    c.allow_last(tenant_key.rsplit('_').next().expect("key"));
    secrets.push(("tenant API key", tenant_key.clone()));
    secrets.push(("tenant API key secret half", tenant_key.rsplit('_').next().expect("key").to_owned()));

    // -- A user, its passwords and session tokens --------------------------------------
    let pw1 = canary("password");
    let pw2 = canary("newpassword");
    secrets.push(("user password", pw1.clone()));
    secrets.push(("changed user password", pw2.clone()));
    let r = c
        .admin(
            Method::POST,
            "/v1/users",
            Some(json!({"email": "canary.user@example.com", "full_name": "Canary User",
                "password": pw1, "role": "user", "memberships": [t]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let user = r.json()["id"].as_str().expect("id").to_owned();

    let r = c
        .call(Method::POST, "/v1/sessions", None, Some(json!({"email": "canary.user@example.com", "password": pw1})))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let token1 = r.json()["token"].as_str().expect("token").to_owned();
    c.allow_last(&token1);
    c.allow_last(token1.rsplit('_').next().expect("token"));
    secrets.push(("session token", token1.clone()));
    secrets.push(("session token secret half", token1.rsplit('_').next().expect("token").to_owned()));

    let r = c.admin(Method::PATCH, &format!("/v1/users/{user}"), Some(json!({"password": pw2}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = c
        .call(Method::POST, "/v1/sessions", None, Some(json!({"email": "canary.user@example.com", "password": pw1})))
        .await;
    rejected(&r, StatusCode::UNAUTHORIZED, "unauthorized", "login with the old password");
    let r = c
        .call(Method::POST, "/v1/sessions", None, Some(json!({"email": "Canary.User@example.com", "password": pw2})))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let token2 = r.json()["token"].as_str().expect("token").to_owned();
    c.allow_last(&token2);
    c.allow_last(token2.rsplit('_').next().expect("token"));
    secrets.push(("second session token", token2.clone()));
    secrets.push(("second session token secret half", token2.rsplit('_').next().expect("token").to_owned()));

    // -- Ordinary traffic with every kind of credential ------------------------------------
    for tok in [admin_key.as_str(), tenant_key.as_str(), token2.as_str()] {
        for path in [
            "/v1/me".to_owned(),
            format!("/v1/tenants/{t}"),
            "/v1/tenants".to_owned(),
            conns.clone(),
            format!("{conns}?limit=1"),
            format!("{conns}/{a}"),
            format!("{conns}/{b}"),
            format!("{conns}/{d}"),
            format!("{conns}/{n}"),
        ] {
            let r = c.call(Method::GET, &path, Some(tok), None).await;
            assert_eq!(r.status, StatusCode::OK, "GET {path}: {}", r.text());
        }
    }
    // Pages of the connection list, following cursors.
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(cur) => format!("{conns}?limit=1&cursor={cur}"),
            None => format!("{conns}?limit=1"),
        };
        let r = c.admin(Method::GET, &path, None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        for item in r.json()["items"].as_array().expect("items") {
            let fields: Vec<&str> =
                item["credentials"].as_object().expect("credentials").keys().map(String::as_str).collect();
            masked(item, &fields);
        }
        pages += 1;
        cursor = r.json()["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() || pages > 10 {
            break;
        }
    }
    assert!(pages >= 4, "expected one page per connection, got {pages}");

    for (path, want) in [
        (format!("{conns}/{a}"), vec!["api_key"]),
        (format!("{conns}/{b}"), vec!["password", "username"]),
        (format!("{conns}/{d}"), vec!["token"]),
    ] {
        let r = c.admin(Method::GET, &path, None).await;
        masked(&r.json(), &want);
    }

    let r = c
        .admin(Method::PATCH, &format!("{conns}/{a}"), Some(json!({"name": "CRM (prod)", "settings": {"portal": 43}})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    masked(&r.json(), &["api_key"]);
    assert_eq!(stored(&app, &t, &a).await, pairs(&[("api_key", &c_put)]), "a patch must keep the credentials");

    let r = c.admin(Method::POST, &format!("{conns}/{d}/disconnect"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["status"], "disconnected");
    masked(&r.json(), &[]);
    assert_eq!(stored(&app, &t, &d).await, None, "disconnect must forget the credentials");

    for path in [
        format!("/v1/tenants/{t}/api-keys"),
        "/v1/api-keys".to_owned(),
        "/v1/users".to_owned(),
        format!("/v1/users/{user}"),
        "/openapi.json".to_owned(),
        "/healthz".to_owned(),
    ] {
        let r = c.admin(Method::GET, &path, None).await;
        assert_eq!(r.status, StatusCode::OK, "GET {path}: {}", r.text());
    }
    let r = c.call(Method::GET, &format!("/v1/tenants/{t}/api-keys"), Some(&token2), None).await;
    // A plain member may or may not list keys; either way nothing secret comes back.
    assert!(r.status.is_success() || r.status == StatusCode::FORBIDDEN, "{}", r.text());

    // -- Rejected requests that carry secrets -----------------------------------------------
    let mut planted_in_rejections: Vec<String> = Vec::new();
    let mut plant = |purpose: &str| {
        let v = canary(purpose);
        planted_in_rejections.push(v.clone());
        v
    };
    let put_a = format!("{conns}/{a}/credentials");
    let put_b = format!("{conns}/{b}/credentials");
    let put_n = format!("{conns}/{n}/credentials");
    let admin_auth = format!("Bearer {admin_key}");
    let json_ct = Some("application/json");

    let r = c.admin(Method::PUT, &put_a, Some(json!({"api_key": 5}))).await;
    rejected(&r, StatusCode::BAD_REQUEST, "invalid_field", "number as credential");

    let cases: Vec<(&str, String, &str, StatusCode, &str)> = vec![
        ("string where a map is expected", put_a.clone(), "str", StatusCode::BAD_REQUEST, "invalid_field"),
        ("array where a map is expected", put_a.clone(), "arr", StatusCode::BAD_REQUEST, "invalid_field"),
        ("array as a credential", put_a.clone(), "arrval", StatusCode::BAD_REQUEST, "invalid_field"),
        ("object as a credential", put_a.clone(), "objval", StatusCode::BAD_REQUEST, "invalid_field"),
        ("number next to a canary", put_a.clone(), "mixed", StatusCode::BAD_REQUEST, "invalid_field"),
        ("truncated JSON", put_a.clone(), "trunc", StatusCode::BAD_REQUEST, "invalid_json"),
        ("bare word after the value", put_a.clone(), "bare", StatusCode::BAD_REQUEST, "invalid_json"),
        ("trailing data", put_a.clone(), "trail", StatusCode::BAD_REQUEST, "invalid_json"),
        ("invalid field name", put_a.clone(), "badname", StatusCode::BAD_REQUEST, "invalid_credential_field"),
        ("credential over 16 KiB", put_a.clone(), "long", StatusCode::BAD_REQUEST, "invalid_credential_field"),
        ("api_key on a basic connection", put_b.clone(), "wrongkind", StatusCode::BAD_REQUEST, "missing_credentials"),
        ("username without password", put_b.clone(), "halfbasic", StatusCode::BAD_REQUEST, "missing_credentials"),
        ("credentials on auth_kind none", put_n.clone(), "none", StatusCode::BAD_REQUEST, "credentials_not_allowed"),
    ];
    for (what, path, shape, status, code) in cases {
        let v = plant(shape);
        let body = match shape {
            "str" => json!(v).to_string(),
            "arr" => json!([v]).to_string(),
            "arrval" => json!({"api_key": [v]}).to_string(),
            "objval" => json!({"api_key": {"value": v}}).to_string(),
            "mixed" => format!(r#"{{"api_key": "{v}", "other": 5}}"#),
            "trunc" => format!(r#"{{"api_key": "{v}""#),
            "bare" => format!(r#"{{"api_key": "{v}" {v}}}"#),
            "trail" => format!(r#"{{"api_key": "ok-value"}} "{v}""#),
            "badname" => json!({"api_key": v, "Bad-Field": "x"}).to_string(),
            "long" => json!({"api_key": format!("{v}{}", "x".repeat(17 * 1024))}).to_string(),
            "wrongkind" => json!({"api_key": v}).to_string(),
            "halfbasic" => json!({"username": v}).to_string(),
            "none" => json!({"token": v}).to_string(),
            other => unreachable!("{other}"),
        };
        let r = c.raw(Method::PUT, &path, Some(&admin_auth), json_ct, body).await;
        rejected(&r, status, code, what);
    }
    // A wrong content type and an oversize body, both carrying a secret.
    let v = plant("ctype");
    let r = c.raw(Method::PUT, &put_a, Some(&admin_auth), Some("text/plain"), json!({"api_key": v}).to_string()).await;
    rejected(&r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "text/plain credentials");
    let v = plant("huge");
    let r = c
        .raw(
            Method::PUT,
            &put_a,
            Some(&admin_auth),
            json_ct,
            json!({"api_key": v, "pad": "x".repeat(70 * 1024)}).to_string(),
        )
        .await;
    rejected(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "oversize credentials");

    // Connection creation with secrets in rejected bodies.
    let creations: Vec<(&str, Value, StatusCode, &str)> = {
        let mut v = Vec::new();
        let s = plant("unknownfield");
        let s2 = plant("unknownfieldval");
        v.push(("unknown field carrying a secret", json!({"name": "X1", "connector": "hubspot", "auth_kind": "api_key", "credentials": {"api_key": s}, "secret": s2}), StatusCode::BAD_REQUEST, "unknown_field"));
        let s = plant("extra");
        v.push(("unknown field next to credentials", json!({"name": "X2", "connector": "hubspot", "auth_kind": "api_key", "credentials": {"api_key": s}, "extra": 1}), StatusCode::BAD_REQUEST, "unknown_field"));
        let s = plant("variant");
        let s2 = plant("variantcred");
        v.push((
            "secret as the auth kind",
            json!({"name": "X3", "connector": "hubspot", "auth_kind": s, "credentials": {"api_key": s2}}),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ));
        let s = plant("nonekind");
        v.push((
            "credentials on auth_kind none",
            json!({"name": "X4", "connector": "hubspot", "auth_kind": "none", "credentials": {"api_key": s}}),
            StatusCode::BAD_REQUEST,
            "credentials_not_allowed",
        ));
        let s = plant("halfbasiccreate");
        v.push((
            "basic without password",
            json!({"name": "X5", "connector": "hubspot", "auth_kind": "basic", "credentials": {"username": s}}),
            StatusCode::BAD_REQUEST,
            "missing_credentials",
        ));
        let s = plant("badtype");
        v.push((
            "wrongly typed name",
            json!({"name": 5, "connector": "hubspot", "auth_kind": "api_key", "credentials": {"api_key": s}}),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ));
        let s = plant("credsstring");
        v.push((
            "string where the credentials map is expected",
            json!({"name": "X6", "connector": "hubspot", "auth_kind": "api_key", "credentials": s}),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ));
        let s = plant("credsnested");
        v.push((
            "nested credential value",
            json!({"name": "X7", "connector": "hubspot", "auth_kind": "api_key", "credentials": {"api_key": {"v": s}}}),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ));
        let s = plant("dupname");
        v.push(("duplicate connection name", json!({"name": "crm (PROD)", "connector": "hubspot", "auth_kind": "api_key", "credentials": {"api_key": s}}), StatusCode::CONFLICT, "connection_exists"));
        let s = plant("badconnector");
        v.push((
            "invalid connector",
            json!({"name": "X8", "connector": "Hub Spot", "auth_kind": "api_key", "credentials": {"api_key": s}}),
            StatusCode::BAD_REQUEST,
            "invalid_connector",
        ));
        v
    };
    for (what, body, status, code) in creations {
        let r = c.admin(Method::POST, &conns, Some(body)).await;
        rejected(&r, status, code, what);
        if code == "unknown_field" {
            let msg = r.json()["error"]["message"].as_str().unwrap_or("").to_owned();
            assert!(msg.contains("secret") || msg.contains("extra"), "{what}: message should name the field: {msg}");
        }
    }
    let v = plant("noctype");
    let r = c
        .raw(
            Method::POST,
            &conns,
            Some(&admin_auth),
            None,
            json!({"name": "X9", "connector": "hubspot", "auth_kind": "api_key", "credentials": {"api_key": v}})
                .to_string(),
        )
        .await;
    rejected(&r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "credentials without a content type");

    // Users and sessions with secrets in rejected bodies.
    let users: Vec<(&str, Value, StatusCode, &str)> = {
        let mut v = Vec::new();
        let s = plant("pwbademail");
        v.push((
            "invalid email",
            json!({"email": "nope", "full_name": "N", "password": s, "role": "user"}),
            StatusCode::BAD_REQUEST,
            "invalid_email",
        ));
        let s = plant("pwdup");
        v.push((
            "duplicate email",
            json!({"email": "CANARY.USER@example.com", "full_name": "N", "password": s, "role": "user"}),
            StatusCode::CONFLICT,
            "email_taken",
        ));
        let s = plant("pwlong");
        v.push(("overlong password", json!({"email": "long@example.com", "full_name": "N", "password": format!("{s}{}", "y".repeat(300)), "role": "user"}), StatusCode::BAD_REQUEST, "weak_password"));
        let s = plant("pwextra");
        v.push((
            "unknown field",
            json!({"email": "extra@example.com", "full_name": "N", "password": s, "role": "user", "pin": 1234}),
            StatusCode::BAD_REQUEST,
            "unknown_field",
        ));
        let s = plant("pwarray");
        v.push((
            "password as an array",
            json!({"email": "arr@example.com", "full_name": "N", "password": [s], "role": "user"}),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ));
        let s = plant("pwrole");
        v.push((
            "unknown role",
            json!({"email": "role@example.com", "full_name": "N", "password": s, "role": "god"}),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ));
        v
    };
    for (what, body, status, code) in users {
        let r = c.admin(Method::POST, "/v1/users", Some(body)).await;
        rejected(&r, status, code, what);
    }
    let s = plant("patchlong");
    let r = c
        .admin(
            Method::PATCH,
            &format!("/v1/users/{user}"),
            Some(json!({"password": format!("{s}{}", "y".repeat(300))})),
        )
        .await;
    rejected(&r, StatusCode::BAD_REQUEST, "weak_password", "overlong password in a patch");
    let s = plant("patchtype");
    let r = c.admin(Method::PATCH, &format!("/v1/users/{user}"), Some(json!({"password": {"new": s}}))).await;
    rejected(&r, StatusCode::BAD_REQUEST, "invalid_field", "password as an object in a patch");
    for (what, body, status, code) in [
        (
            "wrong password",
            json!({"email": "canary.user@example.com", "password": plant("wrongpw")}),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            "unknown user",
            json!({"email": "nobody@example.com", "password": plant("nobodypw")}),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            "unknown field",
            json!({"email": "canary.user@example.com", "password": plant("otppw"), "otp": 1}),
            StatusCode::BAD_REQUEST,
            "unknown_field",
        ),
        (
            "password as a number next to a secret",
            json!({"email": plant("emailpw"), "password": 5}),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
    ] {
        let r = c.call(Method::POST, "/v1/sessions", None, Some(body)).await;
        rejected(&r, status, code, what);
    }
    let s = plant("expiry");
    let r =
        c.admin(Method::POST, &format!("/v1/tenants/{t}/api-keys"), Some(json!({"name": "k2", "expires_at": s}))).await;
    rejected(&r, StatusCode::BAD_REQUEST, "invalid_field", "secret as an expiry");

    // Bad credentials in the Authorization header.
    let bad_auth = vec![
        format!("Basic {}", plant("basicauth")),
        format!("Bearer {}", plant("garbagebearer")),
        format!("Bearer fsess_{}", plant("fakesession")),
        format!("{} {}", plant("scheme"), plant("schemetoken")),
    ];
    let fake_key = format!("ferry_{t}_{}", canary_hex());
    let fake_session = format!("fsess_{}", canary_hex());
    planted_in_rejections.push(fake_key.clone());
    planted_in_rejections.push(fake_key.rsplit('_').next().expect("key").to_owned());
    planted_in_rejections.push(fake_session.clone());
    for auth in bad_auth.into_iter().chain([format!("Bearer {fake_key}"), format!("Bearer {fake_session}")]) {
        for path in ["/v1/me".to_owned(), conns.clone(), format!("{conns}/{a}")] {
            let r = c.raw(Method::GET, &path, Some(&auth), None, Body::empty()).await;
            rejected(&r, StatusCode::UNAUTHORIZED, "unauthorized", "bad Authorization header");
            assert_eq!(
                r.headers.get(header::WWW_AUTHENTICATE),
                Some(&HeaderValue::from_static("Bearer")),
                "401 without WWW-Authenticate: Bearer"
            );
        }
    }

    // -- Revocation and logout: the secrets stop working, and still never show -------------------
    let r = c.admin(Method::DELETE, &format!("/v1/tenants/{t}/api-keys/{tenant_key_id}"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = c.call(Method::GET, &conns, Some(&tenant_key), None).await;
    rejected(&r, StatusCode::UNAUTHORIZED, "unauthorized", "revoked key");
    let r = c.call(Method::DELETE, "/v1/sessions/current", Some(&token2), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    let r = c.call(Method::GET, "/v1/me", Some(&token2), None).await;
    rejected(&r, StatusCode::UNAUTHORIZED, "unauthorized", "session after logout");
    let r = c.call(Method::GET, "/v1/me", Some(&token1), None).await;
    rejected(&r, StatusCode::UNAUTHORIZED, "unauthorized", "session from before the password change");

    // The stored credentials are exactly the accepted ones: no rejected request changed them.
    assert_eq!(stored(&app, &t, &a).await, pairs(&[("api_key", &c_put)]));
    assert_eq!(stored(&app, &t, &b).await, pairs(&[("password", &c_pass), ("username", &c_user)]));
    assert_eq!(stored(&app, &t, &d).await, None);
    assert_eq!(stored(&app, &t, &n).await, None);
    let r = c.admin(Method::GET, &format!("{conns}?limit=200"), None).await;
    assert_eq!(
        r.json()["items"].as_array().map(Vec::len),
        Some(4),
        "rejected creations stored something: {}",
        r.text()
    );

    // -- Runs: a program and two upstreams that echo the secrets they were given ----------------
    secrets.extend(runs_that_echo_secrets(&mut c, &t).await);

    for v in planted_in_rejections {
        secrets.push(("secret in a rejected request", v));
    }

    // -- The search ------------------------------------------------------------------------------
    let mut leaks_found: Vec<String> = Vec::new();

    // 1. API responses (bodies and headers).
    for seen in &c.seen {
        let body = lower(&seen.res.bytes);
        let mut head = String::new();
        for (name, value) in &seen.res.headers {
            head.push_str(name.as_str());
            head.push_str(": ");
            head.push_str(&lower(value.as_bytes()));
            head.push('\n');
        }
        for (what, secret) in &secrets {
            if seen.allowed.iter().any(|a| a == secret) {
                continue;
            }
            if leaks(&body, secret) {
                leaks_found.push(format!(
                    "{what} in the body of {} ({}): {}",
                    seen.label,
                    seen.res.status,
                    seen.res.text()
                ));
            }
            if leaks(&head, secret) {
                leaks_found.push(format!("{what} in the headers of {}: {head}", seen.label));
            }
        }
    }
    // Each minted secret is handed out exactly once.
    for secret in [&tenant_key, &token1, &token2] {
        let shown = c.seen.iter().filter(|s| leaks(&lower(&s.res.bytes), secret)).count();
        assert_eq!(shown, 1, "a minted secret must be in exactly one response");
    }

    // 2. Events (run_failed carries the run's error). Dead letters do not exist yet.
    let mut event_text = String::new();
    while let Ok(e) = events.try_recv() {
        event_text.push_str(&e.data.to_string().to_ascii_lowercase());
        event_text.push('\n');
    }
    assert!(event_text.contains("refresh_failed"), "the runs' events were not captured: {event_text}");
    for (what, secret) in &secrets {
        for event in event_text.lines().filter(|e| leaks(e, secret)) {
            leaks_found.push(format!("{what} in an event: {event}"));
        }
    }

    // 3. Logs of the whole binary.
    let logs_lower = log_text().to_ascii_lowercase();
    let request_id = c.seen[0]
        .res
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("x-request-id")
        .to_ascii_lowercase();
    assert!(
        logs_lower.contains(&request_id),
        "log capture is not working: request {request_id} is not in the {} captured bytes",
        logs.lock().map(|l| l.len()).unwrap_or(0)
    );
    for (what, secret) in &secrets {
        if leaks(&logs_lower, secret) {
            let at = logs_lower.find(&secret.to_ascii_lowercase()).unwrap_or(0);
            let start = logs_lower[..at].rfind('\n').map(|i| i + 1).unwrap_or(0);
            let end = logs_lower[at..].find('\n').map(|i| at + i).unwrap_or(logs_lower.len());
            leaks_found.push(format!("{what} in the logs: {}", &logs_lower[start..end]));
        }
    }

    // 4. Every file of the data directory: ferry.db, its WAL, secrets.db (encrypted), master.key.
    let mut store_bytes = 0usize;
    let mut secret_bytes = 0usize;
    let mut store_text = String::new();
    for entry in std::fs::read_dir(app.dir.path()).expect("data dir") {
        let path = entry.expect("entry").path();
        if !path.is_file() {
            continue;
        }
        let bytes = std::fs::read(&path).expect("read data file");
        let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let text = lower(&bytes);
        if name.starts_with("secrets.db") {
            secret_bytes += bytes.len();
        }
        if name.starts_with("ferry.db") {
            store_bytes += bytes.len();
            store_text.push_str(&text);
        }
        for (what, secret) in &secrets {
            if leaks(&text, secret) {
                leaks_found.push(format!("{what} in the raw bytes of {name}"));
            }
        }
    }
    assert!(store_bytes > 0, "ferry.db was not found in the data dir");
    assert!(secret_bytes > 0, "secrets.db was not found in the data dir");
    // The search looked at the live data: the records written above are in those bytes.
    for marker in [a.as_str(), b.as_str(), user.as_str(), tenant_key_id.as_str(), "canary.user@example.com"] {
        assert!(store_text.contains(marker), "{marker} not found in ferry.db/WAL bytes: the file search is blind");
    }

    assert!(leaks_found.is_empty(), "secrets leaked:\n{}", leaks_found.join("\n"));
}

// ---------------------------------------------------------------------------
// Runs that echo secrets.
// ---------------------------------------------------------------------------

/// An embedded hub that runs process integrations from `integrations`, may
/// reach the loopback fakes, and publishes its events where the test reads them.
async fn runs_app(integrations: &std::path::Path) -> (TestApp, ferry_embedded::InProcessBus) {
    std::fs::create_dir_all(integrations.join("leaky")).expect("mkdir");
    std::fs::write(integrations.join("leaky/leak.sh"), super::redaction::LEAKY_PROGRAM).expect("program");
    let settings = ferry_service::Settings {
        integrations_dir: Some(integrations.to_owned()),
        allow_private_network: true,
        process_timeout: std::time::Duration::from_secs(30),
        process_sandbox: crate::support::sandbox::mode_for_contract_tests(),
        ..Default::default()
    };
    super::redaction::app_with_events(settings).await
}

/// A secret and its encoded forms, labelled, for the search.
fn with_forms(what: &'static str, user: &str, secret: &str) -> Vec<(&'static str, String)> {
    super::redaction::forms(user, secret).into_iter().map(|(_, v)| (what, v)).collect()
}

/// Runs a job of `integration` bound to connection `conn` as `src`; returns the finished run.
async fn run_job(c: &mut Client<'_>, t: &str, integration: &str, manifest: &str, conn: &str) -> Value {
    let r = c
        .admin(Method::POST, &format!("/v1/integrations/{integration}/releases"), Some(json!({"manifest": manifest})))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let body = json!({"name": integration, "integration": integration, "connections": {"src": conn}, "configs": {}});
    let r = c.admin(Method::POST, &format!("/v1/tenants/{t}/jobs"), Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let runs = format!("/v1/tenants/{t}/jobs/{}/runs", r.json()["id"].as_str().expect("job id"));
    let r = c.admin(Method::POST, &runs, Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let run = format!("{runs}/{}", r.json()["run"]["id"].as_str().expect("run id"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let v = c.app.admin(Method::GET, &run, None).await.json();
        if !matches!(v["status"].as_str(), Some("queued" | "running" | "interrupted")) {
            // Recorded for the search: the run, its logs.
            c.admin(Method::GET, &run, None).await;
            let logs = c.admin(Method::GET, &format!("{run}/logs"), None).await;
            assert!(logs.json()["lines"].as_array().is_some_and(|l| !l.is_empty()), "{}", logs.text());
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "run did not finish: {v}");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

async fn basic_connection(
    c: &mut Client<'_>,
    t: &str,
    name: &str,
    provider: &str,
    base: &str,
    user: &str,
    pass: &str,
) -> String {
    let body = json!({"name": name, "connector": provider, "auth_kind": "basic", "settings": {"base_url": base},
                      "credentials": {"username": user, "password": pass}});
    let r = c.admin(Method::POST, &format!("/v1/tenants/{t}/connections"), Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    r.json()["id"].as_str().expect("id").to_owned()
}

/// A token endpoint that refuses every refresh, quoting the refresh token and
/// client secret it was sent in its `error_description`.
async fn quoting_token_endpoint() -> String {
    let router = axum::Router::new().route(
        "/token",
        axum::routing::post(|body: String| async move {
            let form: std::collections::HashMap<String, String> =
                form_urlencoded::parse(body.as_bytes()).into_owned().collect();
            let quoted = format!(
                "refresh token {} and client secret {} are not valid",
                form.get("refresh_token").map(String::as_str).unwrap_or(""),
                form.get("client_secret").map(String::as_str).unwrap_or("")
            );
            (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "invalid_grant", "error_description": quoted})))
        }),
    );
    crate::support::jobs::serve(router).await
}

/// Three runs that try to leak: a process run (its program prints its
/// credentials), a declarative run (the upstream echoes them into its error)
/// and a declarative run whose OAuth refresh is refused with the refresh token
/// and client secret quoted (into the run's error and the connection's status
/// message). Returns the secrets planted, with their encoded forms.
async fn runs_that_echo_secrets(c: &mut Client<'_>, t: &str) -> Vec<(&'static str, String)> {
    let mut planted = Vec::new();
    let upstream = super::redaction::echoing_upstream().await;

    let (user, pass) = (canary("runuser"), super::redaction::secret("canaryrunpass"));
    let conn = basic_connection(c, t, "Echo", "echoer", &upstream, &user, &pass).await;
    let run = run_job(c, t, "echoing", super::redaction::DECLARATIVE_MANIFEST, &conn).await;
    assert_eq!(run["status"], "failed_integration", "{run}");
    planted.push(("declarative run username", user.clone()));
    planted.extend(with_forms("declarative run password", &user, &pass));

    let (user, pass) = (canary("procuser"), super::redaction::secret("canaryprocpass"));
    let conn = basic_connection(c, t, "Leaky", "src", crate::support::app::CLOSED_LOOPBACK, &user, &pass).await;
    let run = run_job(c, t, "leaky", super::redaction::PROCESS_MANIFEST, &conn).await;
    assert_eq!(run["status"], "failed_integration", "{run}");
    planted.push(("process run username", user.clone()));
    planted.extend(with_forms("process run password", &user, &pass));

    let token_url = format!("{}/token", quoting_token_endpoint().await);
    let client_secret = super::redaction::secret("canaryclientsecret");
    let cfg = serde_json::from_value(json!({"client_id": "canary-client", "client_secret": client_secret,
        "authorize_url": "http://127.0.0.1:9/authorize", "token_url": token_url}))
    .expect("client config");
    c.app
        .hub
        .connections()
        .set_oauth_client(ferry_core::model::ids::PLATFORM, "canaryidp", cfg)
        .await
        .expect("OAuth client");
    let body =
        json!({"name": "Refused", "connector": "canaryidp", "auth_kind": "oauth2", "settings": {"base_url": upstream}});
    let r = c.admin(Method::POST, &format!("/v1/tenants/{t}/connections"), Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let conn = r.json()["id"].as_str().expect("id").to_owned();
    let (access, refresh) = (super::redaction::secret("canaryaccess"), super::redaction::secret("canaryrefresh"));
    let expired = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let tokens = std::collections::BTreeMap::from([
        ("access_token".to_owned(), access.clone()),
        ("refresh_token".to_owned(), refresh.clone()),
        ("expires_at".to_owned(), expired),
    ]);
    c.app.hub.connections().set_credentials(t, &conn, tokens).await.expect("expired tokens");
    let manifest = super::redaction::DECLARATIVE_MANIFEST.replace("name: echoing", "name: refused").replace(
        "{provider: echoer, auth: basic}",
        &format!("{{provider: canaryidp, auth: oauth2, oauth: {{token_url: \"{token_url}\"}}}}"),
    );
    let run = run_job(c, t, "refused", &manifest, &conn).await;
    assert_eq!(run["status"], "failed_refresh", "{run}");
    let r = c.admin(Method::GET, &format!("/v1/tenants/{t}/connections/{conn}"), None).await;
    let message = r.json()["status_message"].as_str().unwrap_or("").to_owned();
    // The provider's answer is reduced to its error code (it may echo the request), and what
    // is left goes through the redactor too: the planted forms below are searched everywhere.
    assert!(message.contains("connect again"), "the refused refresh is explained: {}", r.text());
    planted.extend(with_forms("OAuth client secret", "canary-client", &client_secret));
    planted.extend(with_forms("OAuth refresh token", "", &refresh));
    planted.extend(with_forms("OAuth access token", "", &access));
    planted
}
