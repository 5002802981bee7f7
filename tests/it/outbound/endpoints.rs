//! Notification endpoints and OAuth token endpoints are tenant-chosen URLs
//! the hub sends secrets and signed data to: the outbound policy applies to
//! them when they are saved and again when they are used.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use ferry_core::ports::EventKind;
use ferry_service::notifications::Notifier;
use ferry_service::Hub;
use ferry_service::Settings;
use serde_json::json;

use super::{fake, json};
use crate::support::app::TestApp;

/// URLs no hub without `--allow-private-network` sends to, and the codes refusing them.
const PRIVATE: &[(&str, &str)] = &[
    ("http://receiver.example/hook", "insecure_url"),
    ("https://127.0.0.1/hook", "blocked_address"),
    ("https://localhost:8443/hook", "blocked_address"),
    ("https://[::1]/hook", "blocked_address"),
    ("https://10.0.0.1/hook", "blocked_address"),
    ("https://192.168.1.10/hook", "blocked_address"),
    ("https://[fd00::1]/hook", "blocked_address"),
    ("https://[::ffff:127.0.0.1]/hook", "blocked_address"),
    ("https://169.254.169.254/latest/meta-data/", "blocked_address"),
];

/// Refused even by a hub that may reach private networks.
const NEVER: &[&str] = &["http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/", "http://0.0.0.0:8080/"];

fn strict(hub: &Hub) -> Hub {
    hub.clone().with_settings(Settings { allow_private_network: false, ..hub.settings.clone() })
}

#[tokio::test]
async fn notification_endpoints_on_private_or_metadata_addresses_are_refused_with_a_code() {
    let app = TestApp::strict().await;
    app.tenant("acme").await;
    for (url, code) in PRIVATE {
        let r = app.admin(Method::POST, "/v1/tenants/acme/notification-endpoints", Some(json!({"url": url}))).await;
        assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, code.to_string()), "{url}: {}", r.text());
    }
    let open = TestApp::embedded().await;
    open.tenant("acme").await;
    for url in NEVER {
        let r = open.admin(Method::POST, "/v1/tenants/acme/notification-endpoints", Some(json!({"url": url}))).await;
        assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "blocked_address".into()), "{url}: {}", r.text());
    }
}

#[tokio::test]
async fn a_notification_is_not_sent_once_its_endpoint_is_off_limits_and_the_log_says_why() {
    let app = TestApp::embedded().await;
    app.tenant("acme").await;
    let (receiver, seen) = fake(|_| json(200, json!({}))).await;
    let r = app
        .admin(
            Method::POST,
            "/v1/tenants/acme/notification-endpoints",
            Some(json!({"url": format!("{receiver}/hook")})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let endpoint = r.json()["endpoint"]["id"].as_str().expect("id").to_owned();
    app.hub.notifications().emit(EventKind::JobCreated, Some("acme"), json!({"job": "j1"})).await;

    // The same store, delivered by a hub under the production policy.
    let notifier = Notifier::new(Duration::from_secs(2)).expect("notifier");
    assert_eq!(strict(&app.hub).notifications().deliver_due_notifications(&notifier, 10).await.expect("deliver"), 1);

    assert!(seen.hits().is_empty(), "{:?}", seen.hits());
    let log =
        app.admin(Method::GET, &format!("/v1/tenants/acme/notification-endpoints/{endpoint}/attempts"), None).await;
    let attempt = &log.json()["items"][0];
    assert_eq!(attempt["outcome"], "failed", "{}", log.text());
    assert!(attempt["status"].is_null(), "{}", log.text());
    assert!(attempt["error"].as_str().is_some_and(|e| e.starts_with("not sent: ")), "{}", log.text());
}

#[tokio::test]
async fn oauth_token_urls_on_private_or_metadata_addresses_are_refused_with_a_code() {
    let app = TestApp::strict().await;
    app.tenant("acme").await;
    for (url, code) in PRIVATE {
        let body = json!({"client_id": "c", "client_secret": "s", "token_url": url});
        let r = app.admin(Method::PUT, "/v1/tenants/acme/oauth-clients/mock-idp", Some(body)).await;
        assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, code.to_string()), "{url}: {}", r.text());
    }
    let open = TestApp::embedded().await;
    open.tenant("acme").await;
    for url in NEVER {
        let body = json!({"client_id": "c", "client_secret": "s", "token_url": url});
        let r = open.admin(Method::PUT, "/v1/tenants/acme/oauth-clients/mock-idp", Some(body)).await;
        assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "blocked_address".into()), "{url}: {}", r.text());
    }
}

/// A client-credentials connection of tenant `acme` whose tenant-registered
/// token endpoint is `token_url` (client secret `CLIENT_SECRET`).
async fn client_credentials_connection(app: &TestApp, token_url: &str) -> String {
    app.tenant("acme").await;
    let body = json!({"client_id": "c", "client_secret": CLIENT_SECRET, "token_url": token_url, "grant": "client_credentials"});
    let r = app.admin(Method::PUT, "/v1/tenants/acme/oauth-clients/mock-idp", Some(body)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let body = json!({"name": "crm", "connector": "mock-idp", "auth_kind": "oauth2"});
    let r = app.admin(Method::POST, "/v1/tenants/acme/connections", Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    r.json()["id"].as_str().expect("id").to_owned()
}

const CLIENT_SECRET: &str = "cs-9d8e7f-never-echo";

#[tokio::test]
async fn a_token_request_to_an_endpoint_now_off_limits_sends_no_client_secret() {
    let app = TestApp::embedded().await;
    let (idp, seen) = fake(|_| json(200, json!({"access_token": "at", "token_type": "Bearer"}))).await;
    let id = client_credentials_connection(&app, &format!("{idp}/token")).await;
    let conn = app.hub.connections().get_connection("acme", &id).await.expect("connection");

    let outcome = strict(&app.hub).connections().connect_client_credentials(&conn).await.expect("connect");
    let message = outcome.expect_err("refused");
    assert!(message.contains("not allowed"), "{message}");
    assert!(seen.hits().is_empty(), "{:?}", seen.hits());
}

#[tokio::test]
async fn a_token_answer_over_the_cap_is_refused() {
    let app = TestApp::embedded().await;
    let padding = "x".repeat(1024 * 1024);
    let (idp, _) =
        fake(move |_| json(200, json!({"access_token": "at", "token_type": "Bearer", "pad": padding}))).await;
    let id = client_credentials_connection(&app, &format!("{idp}/token")).await;
    let conn = app.hub.connections().get_connection("acme", &id).await.expect("connection");

    let message = app.hub.connections().connect_client_credentials(&conn).await.expect("connect").expect_err("refused");
    assert!(message.contains("larger than"), "{message}");
    let conn = app.hub.connections().get_connection("acme", &id).await.expect("connection");
    assert_ne!(conn.status, ferry_core::model::ConnectionStatus::Connected);
}

#[tokio::test]
async fn an_oauth_error_shows_its_code_never_the_providers_echo_of_the_request() {
    let app = TestApp::embedded().await;
    let echo = format!("client_id=c&client_secret={CLIENT_SECRET}&grant_type=client_credentials");
    let (idp, _) = fake(move |path| {
        if path.starts_with("/weird") {
            json(400, json!({"error": format!("bad request: {echo}")}))
        } else {
            json(401, json!({"error": "invalid_client", "error_description": format!("unknown client in {echo}")}))
        }
    })
    .await;
    let id = client_credentials_connection(&app, &format!("{idp}/token")).await;
    let conn = app.hub.connections().get_connection("acme", &id).await.expect("connection");

    let message = app.hub.connections().connect_client_credentials(&conn).await.expect("connect").expect_err("refused");
    assert!(
        message.contains("rejected Ferry's OAuth client registration") && !message.contains(CLIENT_SECRET),
        "{message}"
    );
    let view = app.admin(Method::GET, &format!("/v1/tenants/acme/connections/{id}"), None).await;
    assert!(!view.text().contains(CLIENT_SECRET), "{}", view.text());

    let body = json!({"client_id": "c", "client_secret": CLIENT_SECRET, "token_url": format!("{idp}/weird"), "grant": "client_credentials"});
    app.admin(Method::PUT, "/v1/tenants/acme/oauth-clients/mock-idp", Some(body)).await;
    let message = app.hub.connections().connect_client_credentials(&conn).await.expect("connect").expect_err("refused");
    assert!(message.contains("unrecognised_error") && !message.contains(CLIENT_SECRET), "{message}");
}
