//! An archived tenant is read-only on the customer's side too: its magic links
//! and OAuth callbacks refuse every change with a page in words, and nothing
//! about its connections changes.

use axum::http::{header, Method, StatusCode};
use serde_json::json;

use super::attacks::{oauth_connection, Browser};
use super::idp::Idp;
use super::links::link_path;
use crate::support::app::{Response, TestApp};

fn refused_as_archived(r: &Response) {
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text());
    assert!(r.headers.get(header::CONTENT_TYPE).is_some_and(|c| c.to_str().unwrap_or("").starts_with("text/html")));
    assert!(r.text().contains("archived"), "the page says why: {}", r.text());
}

async fn archive(app: &TestApp) {
    let r = app.admin(Method::POST, "/v1/tenants/acme/archive", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

#[tokio::test]
async fn magic_links_of_an_archived_tenant_refuse_credentials_and_disconnect_and_change_nothing() {
    let app = TestApp::embedded().await;
    app.tenant("acme").await;
    let connected = app.connection("acme", "crm", "s3cret").await;
    let r = app
        .admin(
            Method::POST,
            "/v1/tenants/acme/connections",
            Some(json!({"name": "erp", "connector": "hubspot", "auth_kind": "api_key"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let waiting = r.json()["id"].as_str().expect("id").to_owned();
    let link_of = |id: String| {
        let app = &app;
        async move { link_path(&app.admin(Method::GET, &format!("/v1/tenants/acme/connections/{id}"), None).await.json()) }
    };
    let (connected_link, waiting_link) = (link_of(connected.clone()).await, link_of(waiting.clone()).await);
    // The customer opened both pages before the tenant was archived: their forms carry valid CSRF tokens.
    let mut browser = Browser::new(&app);
    assert_eq!(browser.get(&waiting_link).await.status, StatusCode::OK);
    let mut other = Browser::new(&app);
    assert_eq!(other.get(&connected_link).await.status, StatusCode::OK);
    let before = (
        app.hub.connections().get_connection("acme", &connected).await.expect("connection"),
        app.hub.connections().get_connection("acme", &waiting).await.expect("connection"),
    );

    archive(&app).await;
    refused_as_archived(&browser.post(&format!("{waiting_link}/credentials"), &[("api_key", "pat-1")], true).await);
    refused_as_archived(&other.post(&format!("{connected_link}/disconnect"), &[], true).await);
    refused_as_archived(&other.post(&format!("{connected_link}/config"), &[("job", "j")], true).await);
    refused_as_archived(&browser.get(&waiting_link).await);

    let after = (
        app.hub.connections().get_connection("acme", &connected).await.expect("connection"),
        app.hub.connections().get_connection("acme", &waiting).await.expect("connection"),
    );
    assert_eq!((before.0.updated_at, before.1.updated_at), (after.0.updated_at, after.1.updated_at), "nothing changed");
    assert_eq!(after.1.status, ferry_core::model::ConnectionStatus::Disconnected);
    assert!(
        app.hub.connections().connection_credentials(&after.1).await.expect("read").is_none(),
        "no credentials stored"
    );
    assert_eq!(after.0.status, ferry_core::model::ConnectionStatus::Connected);
    let kept = app.hub.connections().connection_credentials(&after.0).await.expect("read").expect("credentials kept");
    assert_eq!(kept.get("api_key").map(|s| secrecy::ExposeSecret::expose_secret(s).to_owned()), Some("s3cret".into()));

    // The API says the same, in its words.
    let r = app
        .admin(
            Method::PUT,
            &format!("/v1/tenants/acme/connections/{waiting}/credentials"),
            Some(json!({"api_key": "x"})),
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "tenant_archived".to_owned()), "{}", r.text());
}

#[tokio::test]
async fn an_oauth_callback_for_an_archived_tenant_is_refused_before_the_provider_is_asked() {
    let app = TestApp::embedded().await;
    app.tenant("acme").await;
    let idp = Idp::start("unused").await;
    let id = oauth_connection(&app, &idp, "CRM").await;
    let link = link_path(&app.admin(Method::GET, &format!("/v1/tenants/acme/connections/{id}"), None).await.json());
    let mut browser = Browser::new(&app);
    // Signed in at the provider, then the tenant was archived before the provider sent the customer back.
    let state = browser.start_oauth(&link).await;
    let before = app.hub.connections().get_connection("acme", &id).await.expect("connection");

    archive(&app).await;
    refused_as_archived(&browser.callback(&state, "code-1").await);
    assert_eq!(idp.code_exchanges(), 0, "the code is never exchanged");
    // Nor can a new sign-in start.
    refused_as_archived(&browser.post(&format!("{link}/oauth"), &[], true).await);

    let after = app.hub.connections().get_connection("acme", &id).await.expect("connection");
    assert_eq!(before.updated_at, after.updated_at, "nothing changed");
    assert!(after.status_message.is_none(), "{after:?}");
    assert!(app.hub.connections().connection_credentials(&after).await.expect("read").is_none(), "no token stored");
}
