//! Token refresh: single-flight across processes through a lease in the store,
//! rotated refresh tokens persisted, failures recorded and bounded.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::Method;
use ferry_core::ports::{SecretStore, Store};
use ferry_embedded::{FileSecretStore, SqliteStore};
use ferry_service::refresh::MAX_REFRESH_FAILURES;
use ferry_service::Hub;
use secrecy::ExposeSecret;
use serde_json::json;

use super::idp::Idp;
use crate::support::app::TestApp;
use crate::support::aws;

/// An OAuth2 connection of tenant `acme` whose access token expired an hour ago.
pub async fn expired_oauth_connection(app: &TestApp, idp: &Idp) -> String {
    app.tenant("acme").await;
    let id = super::attacks::oauth_connection(app, idp, "Mock CRM").await;
    let expired = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let creds = BTreeMap::from([
        ("access_token".to_owned(), "at-old".to_owned()),
        ("refresh_token".to_owned(), "rt-0".to_owned()),
        ("expires_at".to_owned(), expired),
    ]);
    app.hub.connections().set_credentials("acme", &id, creds).await.expect("store the expired tokens");
    id
}

fn field(f: &ferry_core::ports::SecretFields, name: &str) -> Option<String> {
    f.get(name).map(|s| s.expose_secret().to_owned())
}

/// 50 runs in 5 "processes" (hubs sharing only the store and the secret store)
/// ask for the expired connection's credentials at once.
async fn fifty_racing_runs(store: Arc<dyn Store>, secrets: Arc<dyn SecretStore>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = TestApp::with_hub(Hub::new(store.clone(), secrets.clone()), dir).await;
    let idp = Idp::start("rt-0").await;
    let id = expired_oauth_connection(&app, &idp).await;
    let conn = app.hub.connections().get_connection("acme", &id).await.expect("connection");
    // Each process may reach the loopback IdP, as the harness's hub may.
    let processes: Vec<Hub> =
        (0..5).map(|_| Hub::new(store.clone(), secrets.clone()).with_settings(app.hub.settings.clone())).collect();
    let barrier = Arc::new(tokio::sync::Barrier::new(50));
    let mut runs = Vec::new();
    for n in 0..50 {
        let hub = processes[n % processes.len()].clone();
        let (conn, barrier) = (conn.clone(), barrier.clone());
        runs.push(tokio::spawn(async move {
            barrier.wait().await;
            hub.connections().fresh_credentials(&conn, None).await
        }));
    }
    for run in runs {
        let creds = run.await.expect("task").expect("fresh credentials");
        assert_eq!(
            field(&creds, "access_token").as_deref(),
            Some("at-refreshed-1"),
            "every run uses the one new token"
        );
    }
    assert_eq!(idp.refreshes(), 1, "exactly one token request for 50 racing runs");
    let stored = app.hub.connections().connection_credentials(&conn).await.expect("read").expect("credentials");
    assert_eq!(field(&stored, "refresh_token").as_deref(), Some("rt-rotated-1"), "the rotated refresh token is stored");
    assert_eq!(field(&stored, "access_token").as_deref(), Some("at-refreshed-1"));
    // The next stale moment refreshes with the rotated token, which the provider accepts.
    let mut stale = stored.clone();
    stale.insert("expires_at", (chrono::Utc::now() - chrono::Duration::minutes(1)).to_rfc3339());
    app.hub.secrets.put(&ferry_service::connections::secret_ref(&conn), &stale).await.expect("age the token");
    let again = app.hub.connections().fresh_credentials(&conn, None).await.expect("second refresh");
    assert_eq!(field(&again, "access_token").as_deref(), Some("at-refreshed-2"));
    assert_eq!(idp.refreshes(), 2);
    let after = app.hub.connections().get_connection("acme", &id).await.expect("connection");
    assert_eq!(after.status, ferry_core::model::ConnectionStatus::Connected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_runs_racing_on_an_expired_token_make_one_token_request_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("ferry.db")).expect("sqlite");
    let secrets = FileSecretStore::open(dir.path()).expect("secrets");
    fifty_racing_runs(Arc::new(store), Arc::new(secrets)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_runs_racing_on_an_expired_token_make_one_token_request_on_dynamodb() {
    let (Some(store), Some(secrets)) = (aws::dynamo_store().await, aws::secrets_manager_store().await) else {
        return;
    };
    fifty_racing_runs(Arc::new(store), Arc::new(secrets)).await;
}

#[tokio::test]
async fn a_failed_refresh_marks_the_connection_error_and_repeated_failures_stop_until_reconnect() {
    let mut app = TestApp::embedded().await;
    let bus = ferry_embedded::local_events::InProcessBus::default();
    let mut events = bus.subscribe();
    app.hub = app.hub.clone().with_events(Arc::new(bus));
    let idp = Idp::start("rt-0").await;
    let id = expired_oauth_connection(&app, &idp).await;
    idp.counters.refuse_refresh.store(true, std::sync::atomic::Ordering::SeqCst);
    for attempt in 1..=MAX_REFRESH_FAILURES + 2 {
        let conn = app.hub.connections().get_connection("acme", &id).await.expect("connection");
        let err = app.hub.connections().fresh_credentials(&conn, None).await.expect_err("the refresh fails");
        assert!(
            matches!(&err, ferry_core::Error::Invalid { code: "refresh_failed", .. }),
            "attempt {attempt}: {err:?}"
        );
        let after = app.hub.connections().get_connection("acme", &id).await.expect("connection");
        assert_eq!(after.status, ferry_core::model::ConnectionStatus::Error, "attempt {attempt}");
        assert!(after.status_message.as_deref().is_some_and(|m| m.contains("did not accept")), "{after:?}");
    }
    let event = events.try_recv().expect("a connection_error event for the failed refresh");
    assert_eq!(event.kind, ferry_core::ports::EventKind::ConnectionError);
    assert_eq!(event.tenant.as_deref(), Some("acme"));
    assert_eq!(event.data["connection"], id.as_str());
    assert!(!event.data.to_string().contains("rt-0"), "no token in the event: {}", event.data);
    assert_eq!(
        idp.refreshes(),
        MAX_REFRESH_FAILURES as usize,
        "after {MAX_REFRESH_FAILURES} failures in a row Ferry stops calling the provider"
    );
    let r = app.admin(Method::GET, &format!("/v1/tenants/acme/connections/{id}"), None).await;
    assert_eq!(r.json()["status"], "error", "{}", r.text());
    assert!(!r.text().contains("rt-0") && !r.text().contains("at-old"), "no token in the API: {}", r.text());

    // Reconnecting (new credentials) lets refresh try again.
    idp.counters.refuse_refresh.store(false, std::sync::atomic::Ordering::SeqCst);
    let expired = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let creds = BTreeMap::from([
        ("access_token".to_owned(), "at-old".to_owned()),
        ("refresh_token".to_owned(), "rt-0".to_owned()),
        ("expires_at".to_owned(), expired),
    ]);
    let conn = app.hub.connections().set_credentials("acme", &id, creds).await.expect("reconnect");
    let fresh = app.hub.connections().fresh_credentials(&conn, None).await.expect("refresh works again");
    assert!(field(&fresh, "access_token").is_some_and(|t| t.starts_with("at-refreshed-")));
    assert_eq!(idp.refreshes(), MAX_REFRESH_FAILURES as usize + 1);
}

#[tokio::test]
async fn a_token_the_provider_rejected_is_refreshed_even_before_it_expires() {
    let app = TestApp::embedded().await;
    let idp = Idp::start("rt-0").await;
    let id = expired_oauth_connection(&app, &idp).await;
    let conn = app.hub.connections().get_connection("acme", &id).await.expect("connection");
    let first = app.hub.connections().fresh_credentials(&conn, None).await.expect("refresh");
    let token = field(&first, "access_token").expect("token");
    // Not stale by time, but the provider answered 401 to it.
    let same = app.hub.connections().fresh_credentials(&conn, None).await.expect("no refresh");
    assert_eq!(field(&same, "access_token"), Some(token.clone()));
    assert_eq!(idp.refreshes(), 1);
    let after_401 = app.hub.connections().fresh_credentials(&conn, Some(&token)).await.expect("refresh on 401");
    assert_ne!(field(&after_401, "access_token"), Some(token));
    assert_eq!(idp.refreshes(), 2);
}

/// A job on an OAuth2 connector; its source is a closed loopback port.
async fn oauth_job(app: &TestApp, idp: &Idp, connection: &str) -> String {
    let manifest = format!(
        r#"
version: 1.0
name: oauth-sync
connectors:
  crm: {{provider: mock-idp, auth: oauth2, oauth: {{token_url: "{}"}}}}
flows:
  - name: items
    source: {{type: http, connector: crm, request: {{path: /items}}, records: items}}
    target: {{type: file, format: jsonl, path: 'items.jsonl'}}
"#,
        idp.token_url
    );
    let r = app.admin(Method::POST, "/v1/integrations/oauth-sync/releases", Some(json!({"manifest": manifest}))).await;
    assert_eq!(r.status, axum::http::StatusCode::CREATED, "{}", r.text());
    let r = app
        .admin(
            Method::POST,
            "/v1/tenants/acme/jobs",
            Some(json!({"name": "items", "integration": "oauth-sync", "connections": {"crm": connection}, "configs": {}})),
        )
        .await;
    assert_eq!(r.status, axum::http::StatusCode::CREATED, "{}", r.text());
    r.json()["id"].as_str().expect("job id").to_owned()
}

async fn run_to_end(app: &TestApp, job: &str) -> serde_json::Value {
    let r = app.admin(Method::POST, &format!("/v1/tenants/acme/jobs/{job}/runs"), Some(json!({}))).await;
    assert_eq!(r.status, axum::http::StatusCode::ACCEPTED, "{}", r.text());
    let run = r.json()["run"]["id"].as_str().expect("run id").to_owned();
    for _ in 0..300 {
        let v = app.admin(Method::GET, &format!("/v1/tenants/acme/jobs/{job}/runs/{run}"), None).await.json();
        if !matches!(v["status"].as_str(), Some("queued") | Some("running")) {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("run {run} did not finish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_refreshes_first_and_fails_as_failed_refresh_when_the_provider_refuses() {
    let app = TestApp::embedded().await;
    let idp = Idp::start("rt-0").await;
    let id = expired_oauth_connection(&app, &idp).await;
    let job = oauth_job(&app, &idp, &id).await;
    idp.counters.refuse_refresh.store(true, std::sync::atomic::Ordering::SeqCst);
    let run = run_to_end(&app, &job).await;
    assert_eq!(run["status"], "failed_refresh", "{run}");
    assert!(!run.to_string().contains("rt-0"), "no token in the run record: {run}");
    let conn = app.admin(Method::GET, &format!("/v1/tenants/acme/connections/{id}"), None).await.json();
    assert_eq!(conn["status"], "error", "{conn}");
    assert_eq!(idp.refreshes(), 1);

    // Once the provider accepts again, the next run refreshes before it starts.
    idp.counters.refuse_refresh.store(false, std::sync::atomic::Ordering::SeqCst);
    let run = run_to_end(&app, &job).await;
    assert_ne!(run["status"], "failed_refresh", "{run}");
    assert_eq!(idp.refreshes(), 2);
    let conn = app.admin(Method::GET, &format!("/v1/tenants/acme/connections/{id}"), None).await.json();
    assert_eq!(conn["status"], "connected", "a successful refresh clears the error: {conn}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_refused_mid_run_is_refreshed_once_and_the_flow_goes_on() {
    let app = TestApp::embedded().await;
    let idp = Idp::start("rt-0").await;
    let id = expired_oauth_connection(&app, &idp).await;
    // The provider revoked the first refreshed token: only the second one works.
    let seen: Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let s = seen.clone();
    let source = crate::support::jobs::serve(axum::Router::new().route(
        "/items",
        axum::routing::get(move |headers: axum::http::HeaderMap| {
            let s = s.clone();
            async move {
                let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                s.lock().unwrap_or_else(|p| p.into_inner()).push(auth.clone());
                if auth == "Bearer at-refreshed-2" {
                    (axum::http::StatusCode::OK, axum::Json(json!({"items": [{"id": 1}, {"id": 2}]})))
                } else {
                    (axum::http::StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "invalid_token"})))
                }
            }
        }),
    ))
    .await;
    let manifest = format!(
        r#"
version: 1.0
name: oauth-revoked
connectors:
  crm: {{provider: mock-idp, auth: oauth2, base_url: "{source}", oauth: {{token_url: "{}"}}}}
flows:
  - name: items
    source: {{type: http, connector: crm, request: {{path: /items}}, records: items}}
    target: {{type: file, format: jsonl, path: 'items.jsonl'}}
"#,
        idp.token_url
    );
    let r =
        app.admin(Method::POST, "/v1/integrations/oauth-revoked/releases", Some(json!({"manifest": manifest}))).await;
    assert_eq!(r.status, axum::http::StatusCode::CREATED, "{}", r.text());
    let r = app
        .admin(
            Method::POST,
            "/v1/tenants/acme/jobs",
            Some(json!({"name": "items", "integration": "oauth-revoked", "connections": {"crm": id}})),
        )
        .await;
    assert_eq!(r.status, axum::http::StatusCode::CREATED, "{}", r.text());
    let job = r.json()["id"].as_str().expect("job id").to_owned();

    let run = run_to_end(&app, &job).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["counters"]["items"]["written"], 2, "{run}");
    assert_eq!(idp.refreshes(), 2, "one refresh before the run (expired), one after the 401");
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(seen, vec!["Bearer at-refreshed-1", "Bearer at-refreshed-2"]);
    let logs = app
        .admin(
            Method::GET,
            &format!("/v1/tenants/acme/jobs/{job}/runs/{}/logs", run["id"].as_str().unwrap_or("")),
            None,
        )
        .await;
    let logs = logs.text();
    assert!(logs.contains("credentials refused (401)"), "{logs}");
    assert!(!logs.contains("at-refreshed"), "no token in the logs");
}
