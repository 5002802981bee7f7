//! Test connection: the manifest's `verify` request runs after the customer
//! saves credentials; a refusal is shown and recorded on the connection.

use axum::http::{HeaderMap, Method, StatusCode};
use axum::routing::get;
use axum::Router;
use serde_json::json;

use super::attacks::Browser;
use super::links::link_path;
use crate::support::app::TestApp;

const MANIFEST: &str = r#"
version: 1.0
name: verified-sync
connectors:
  crm:
    provider: itemsource
    auth: api_key
    api_key: {header: X-API-Key}
    verify: {path: /me}
flows:
  - name: items
    source: {type: http, connector: crm, request: {path: /items}, records: items}
    target: {type: file, format: jsonl, path: 'items.jsonl'}
"#;

#[tokio::test]
async fn saving_credentials_runs_the_manifests_test_request_and_a_refusal_is_shown_and_recorded() {
    let app = TestApp::embedded().await;
    app.tenant("acme").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let me = Router::new().route(
        "/me",
        get(|h: HeaderMap| async move {
            if h.get("x-api-key").is_some_and(|k| k == "good-key") {
                StatusCode::OK
            } else {
                StatusCode::UNAUTHORIZED
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, me).await;
    });
    let r =
        app.admin(Method::POST, "/v1/integrations/verified-sync/releases", Some(json!({"manifest": MANIFEST}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let r = app
        .admin(
            Method::POST,
            "/v1/tenants/acme/connections",
            Some(json!({"name": "crm", "connector": "itemsource", "auth_kind": "api_key", "settings": {"base_url": base}})),
        )
        .await;
    let conn = r.json()["id"].as_str().expect("id").to_owned();
    let link = link_path(&r.json());
    app.job(
        "acme",
        json!({"name": "items", "integration": "verified-sync", "connections": {"crm": conn}, "configs": {}}),
    )
    .await;

    let mut browser = Browser::new(&app);
    browser.get(&link).await;
    let r = browser.post(&format!("{link}/credentials"), &[("api_key", "typo-key")], true).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(r.text().contains("Saved, but the test failed") && r.text().contains("refused these credentials"));
    assert!(!r.text().contains("typo-key"), "the key is never echoed");
    let view = app.admin(Method::GET, &format!("/v1/tenants/acme/connections/{conn}"), None).await.json();
    assert_eq!(view["status"], "error", "{view}");
    assert!(view["status_message"].as_str().is_some_and(|m| m.contains("401")), "{view}");

    browser.get(&link).await;
    let r = browser.post(&format!("{link}/credentials"), &[("api_key", "good-key")], true).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let view = app.admin(Method::GET, &format!("/v1/tenants/acme/connections/{conn}"), None).await.json();
    assert_eq!(view["status"], "connected", "{view}");
}
