//! Magic links through the operator API and the connect page they open.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use chrono::{Duration, Utc};
use ferry_core::ports::ManualClock;
use ferry_service::Settings;
use serde_json::json;

use super::attacks::Browser;
use crate::support::app::TestApp;

/// The `/connect/<token>` path of a connection view's link.
pub fn link_path(view: &serde_json::Value) -> String {
    let link = view["link"].as_str().unwrap_or_else(|| panic!("the connection has a link: {view}"));
    let at = link.find("/connect/").expect("a /connect/ URL");
    link[at..].to_owned()
}

#[tokio::test]
async fn a_hub_without_a_public_url_refuses_to_make_a_link_rather_than_point_it_at_loopback() {
    let app = TestApp::embedded().await;
    app.tenant("acme").await;
    let id = app.connection("acme", "crm", "s3cret").await;
    // A host never told where customers reach it (a function deployed without FERRY_PUBLIC_URL).
    let unconfigured = ferry_service::Hub::new(app.hub.store.clone(), app.hub.secrets.clone());
    let conn = unconfigured.connections().get_connection("acme", &id).await.expect("the connection");
    match unconfigured.connections().connection_view(&conn).await {
        Ok(view) => panic!("made a link without a public URL: {:?}", view.link),
        Err(e) => assert!(e.to_string().contains("FERRY_PUBLIC_URL"), "{e}"),
    }
}

#[tokio::test]
async fn the_api_returns_a_stable_link_that_survives_disconnect_and_reconnect_and_can_be_reissued_and_revoked() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app = TestApp::embedded_with_clock(clock.clone(), Settings::default()).await;
    app.tenant("acme").await;
    let id = app.connection("acme", "crm", "s3cret").await;
    let first = app.admin(Method::GET, &format!("/v1/tenants/acme/connections/{id}"), None).await.json();
    let link = link_path(&first);
    assert!(link.starts_with("/connect/ml_") && link.len() > 40, "unguessable: {link}");
    let listed = app.admin(Method::GET, "/v1/tenants/acme/connections", None).await.json();
    assert_eq!(listed["items"][0]["link"], first["link"], "lists show the link too");

    let mut browser = Browser::new(&app);
    let page = browser.get(&link).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert!(page.text().contains("Connect HubSpot") && page.text().contains("Connected"), "{}", page.text());
    assert!(!page.text().contains("s3cret"), "no secret on the page");

    // Disconnect and reconnect through the API: same link.
    let r = app.admin(Method::POST, &format!("/v1/tenants/acme/connections/{id}/disconnect"), None).await;
    assert_eq!(r.json()["status"], "disconnected");
    assert_eq!(link_path(&r.json()), link);
    let r = app
        .admin(Method::PUT, &format!("/v1/tenants/acme/connections/{id}/credentials"), Some(json!({"api_key": "new"})))
        .await;
    assert_eq!(r.json()["status"], "connected");
    assert_eq!(link_path(&r.json()), link, "reconnect keeps the link");

    // Re-issue: a new token; the old one explains that it was replaced.
    let r = app.admin(Method::POST, &format!("/v1/tenants/acme/connections/{id}/link"), Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let second = link_path(&r.json());
    assert_ne!(second, link);
    let old = browser.get(&link).await;
    assert_eq!(old.status, StatusCode::GONE);
    assert!(old.text().contains("replaced or revoked"), "{}", old.text());
    assert_eq!(browser.get(&second).await.status, StatusCode::OK);

    // Revoke: no link in the API, the page says so.
    let r = app.admin(Method::DELETE, &format!("/v1/tenants/acme/connections/{id}/link"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.json()["link"].is_null(), "{}", r.text());
    let revoked = browser.get(&second).await;
    assert_eq!(revoked.status, StatusCode::GONE);
    assert!(revoked.text().contains("replaced or revoked"), "{}", revoked.text());

    // A link with a lifetime expires.
    let r = app
        .admin(Method::POST, &format!("/v1/tenants/acme/connections/{id}/link"), Some(json!({"ttl_seconds": 600})))
        .await;
    let third = link_path(&r.json());
    assert_ne!(third, second, "a revoked token is never issued again");
    assert_eq!(browser.get(&third).await.status, StatusCode::OK);
    clock.advance(Duration::minutes(11));
    let expired = browser.get(&third).await;
    assert_eq!(expired.status, StatusCode::GONE);
    assert!(expired.text().contains("expired"), "{}", expired.text());

    // Bad lifetimes are refused clearly.
    let r = app
        .admin(Method::POST, &format!("/v1/tenants/acme/connections/{id}/link"), Some(json!({"ttl_seconds": 5})))
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "invalid_ttl".to_owned()), "{}", r.text());
    let unknown = browser.get("/connect/ml_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(unknown.text().contains("This link is not valid"));
}

#[tokio::test]
async fn the_customer_saves_credentials_and_disconnects_on_the_page_with_csrf_checked() {
    let app = TestApp::embedded().await;
    app.tenant("acme").await;
    let r = app
        .admin(
            Method::POST,
            "/v1/tenants/acme/connections",
            Some(json!({"name": "crm", "connector": "hubspot", "auth_kind": "api_key"})),
        )
        .await;
    assert_eq!(r.json()["status"], "disconnected", "{}", r.text());
    let id = r.json()["id"].as_str().expect("id").to_owned();
    let link = link_path(&r.json());
    let mut browser = Browser::new(&app);
    let page = browser.get(&link).await;
    assert!(page.text().contains("<label for=\"f-api_key\">"), "labelled fields: {}", page.text());

    // Without the CSRF token (or with another browser's cookie): refused, nothing saved.
    let r = browser.post(&format!("{link}/credentials"), &[("api_key", "pat-1")], false).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    let mut other = Browser::new(&app);
    other.get(&link).await;
    let r = other.post_with_csrf_of(&browser, &format!("{link}/credentials"), &[("api_key", "pat-1")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    let view = app.admin(Method::GET, &format!("/v1/tenants/acme/connections/{id}"), None).await.json();
    assert_eq!(view["status"], "disconnected");

    let r = browser.post(&format!("{link}/credentials"), &[("api_key", "pat-1")], true).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.text().contains("Connected") && !r.text().contains("pat-1"), "{}", r.text());
    let view = app.admin(Method::GET, &format!("/v1/tenants/acme/connections/{id}"), None).await.json();
    assert_eq!(view["status"], "connected");
    assert_eq!(view["credentials"]["api_key"], "********");

    let r = browser.post(&format!("{link}/disconnect"), &[], true).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let view = app.admin(Method::GET, &format!("/v1/tenants/acme/connections/{id}"), None).await.json();
    assert_eq!(view["status"], "disconnected");
    assert_eq!(link_path(&view), link, "the page's link still works after disconnecting");
    assert_eq!(browser.get(&link).await.status, StatusCode::OK);
}
