//! Secrets a run knows are masked in what it records, however they were
//! written: a program printing its credentials, or an upstream echoing them
//! into an error, leaves no plain, base64 or percent-encoded form in the
//! run's logs, its error, the `run_failed` event or (for a program's stdout)
//! the job's state.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ferry_core::ports::events::Event;
use ferry_embedded::{FileSecretStore, InProcessBus, SqliteStore};
use ferry_service::Hub;
use ferry_service::Settings;
use serde_json::{json, Value};

use crate::support::app::TestApp;
use crate::support::jobs::{serve, Conn, JobUnderTest};

/// A password with characters every encoding changes.
pub fn secret(purpose: &str) -> String {
    format!("pw/{purpose}{}+a b&c=d", ulid::Ulid::new()).to_ascii_lowercase()
}

/// RFC 3986 percent-encoding (what Python's `quote(s, safe="")` gives).
fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Every form of the password (and of `user:password`) that must not be recorded.
pub fn forms(user: &str, password: &str) -> Vec<(&'static str, String)> {
    vec![
        ("plain", password.to_owned()),
        ("base64", STANDARD.encode(password)),
        ("url-safe base64", URL_SAFE_NO_PAD.encode(password)),
        ("basic auth", STANDARD.encode(format!("{user}:{password}"))),
        ("percent-encoded", percent(password)),
        ("form-encoded", form_urlencoded::byte_serialize(password.as_bytes()).collect()),
    ]
}

/// A hub whose events a test can read.
pub async fn app_with_events(settings: Settings) -> (TestApp, InProcessBus) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("ferry.db")).expect("sqlite");
    let secrets = FileSecretStore::open(dir.path()).expect("secrets");
    let bus = InProcessBus::default();
    let hub = Hub::new(Arc::new(store), Arc::new(secrets)).with_settings(settings).with_events(Arc::new(bus.clone()));
    (TestApp::with_hub(hub, dir).await, bus)
}

/// Everything a run recorded: its record (error included), its logs and the events so far.
pub async fn recorded(job: &JobUnderTest, run: &Value, events: &mut tokio::sync::broadcast::Receiver<Event>) -> String {
    let logs = job.logs(run["id"].as_str().expect("id")).await;
    let mut text = format!("{run}\n{}\n", logs.join("\n"));
    while let Ok(e) = events.try_recv() {
        text.push_str(&serde_json::to_string(&e.data).unwrap_or_default());
        text.push('\n');
    }
    text
}

pub fn assert_no_form(what: &str, text: &str, forms: &[(&str, String)]) {
    for (form, value) in forms {
        assert!(!text.contains(value.as_str()), "{what}: the {form} secret was recorded:\n{text}");
    }
}

pub const PROCESS_MANIFEST: &str = r#"
version: 0.5
name: leaky
base: debian:12
run: sh leak.sh
connectors:
  - src
metadata_schema:
  schema:
    type: object
    properties:
      count: {type: integer}
"#;

/// Prints its password every way it can, then a state the schema refuses.
pub const LEAKY_PROGRAM: &str = r#"
S="$PAN_SEC_SRC_PASSWORD"; U="$PAN_SEC_SRC_USERNAME"
echo "plain=$S" >&2
echo "base64=$(printf %s "$S" | base64 -w0)" >&2
echo "base64url=$(printf %s "$S" | base64 -w0 | tr '+/' '-_' | tr -d '=')" >&2
echo "basic=$(printf %s "$U:$S" | base64 -w0)" >&2
echo "percent=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$S")" >&2
echo "{\"count\": \"$S\"}"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_printing_its_secret_in_any_encoding_leaves_none_in_logs_errors_or_events() {
    let code = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(code.path().join("leaky")).expect("mkdir");
    std::fs::write(code.path().join("leaky/leak.sh"), LEAKY_PROGRAM).expect("script");
    let settings = Settings {
        integrations_dir: Some(code.path().to_owned()),
        process_timeout: Duration::from_secs(30),
        process_sandbox: crate::support::sandbox::mode_for_contract_tests(),
        ..Default::default()
    };
    let (app, bus) = app_with_events(settings).await;
    let mut events = bus.subscribe();
    let (user, password) = ("leaky-user", secret("process"));
    let job = JobUnderTest::new(
        app,
        "leaky",
        PROCESS_MANIFEST,
        &[Conn {
            name: "src",
            provider: "src",
            auth: "basic",
            base_url: crate::support::app::CLOSED_LOOPBACK,
            credentials: Some(json!({"username": user, "password": password})),
        }],
        json!({}),
    )
    .await;
    let run = job.run(json!({})).await;
    assert_eq!(run["status"], "failed_integration", "the state breaks the metadata schema: {run}");
    let logs = job.logs(run["id"].as_str().expect("id")).await;
    for line in ["plain=", "base64=", "base64url=", "basic=", "percent="] {
        let found = logs.iter().find(|l| l.starts_with(line)).unwrap_or_else(|| panic!("no {line} line: {logs:#?}"));
        assert!(found.contains("[redacted]"), "{found}");
    }
    let mut text = recorded(&job, &run, &mut events).await;
    text.push_str(&job.job().await.to_string());
    assert!(text.contains("failed_integration"), "{text}");
    assert_no_form("a process run", &text, &forms(user, &password));
}

pub const DECLARATIVE_MANIFEST: &str = r#"
version: 1.0
name: echoing
connectors:
  src: {provider: echoer, auth: basic}
configs:
  schema:
    type: object
    properties:
      owner: {type: string, $ref: '#/definitions/owners'}
    definitions:
      owners: {enum: [placeholder]}
flows:
  - name: owners
    source: {type: http, connector: src, request: {path: /owners}, records: owners}
    target: {type: options, definition: owners, value: '{{ record.id }}'}
"#;

/// An upstream that refuses the request and quotes the credentials it got.
pub async fn echoing_upstream() -> String {
    let router = axum::Router::new().route(
        "/owners",
        get(|headers: HeaderMap| async move {
            let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            let basic = auth.strip_prefix("Basic ").unwrap_or("");
            let decoded = String::from_utf8(STANDARD.decode(basic).unwrap_or_default()).unwrap_or_default();
            let password = decoded.split_once(':').map(|(_, p)| p).unwrap_or("");
            let body = format!(
                "bad credentials {auth} password {password} b64 {} pct {}",
                STANDARD.encode(password),
                percent(password)
            );
            (StatusCode::BAD_REQUEST, body)
        }),
    );
    serve(router).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_echoing_the_secret_into_an_error_leaves_none_in_logs_errors_or_events() {
    let settings = Settings { allow_private_network: true, ..Default::default() };
    let (app, bus) = app_with_events(settings).await;
    let mut events = bus.subscribe();
    let upstream = echoing_upstream().await;
    let (user, password) = ("echo-user", secret("declarative"));
    let job = JobUnderTest::new(
        app,
        "echoing",
        DECLARATIVE_MANIFEST,
        &[Conn {
            name: "src",
            provider: "echoer",
            auth: "basic",
            base_url: &upstream,
            credentials: Some(json!({"username": user, "password": password})),
        }],
        json!({}),
    )
    .await;
    let run = job.run(json!({})).await;
    assert_eq!(run["status"], "failed_integration", "{run}");
    assert!(run["error"].as_str().unwrap_or("").contains("HTTP 400"), "the error still says what failed: {run}");
    let text = recorded(&job, &run, &mut events).await;
    assert_no_form("a declarative run", &text, &forms(user, &password));
}
