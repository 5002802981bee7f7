//! OAuth client registrations: the platform's per provider, a tenant's own
//! overriding it; the client secret is write-only.

use axum::http::{Method, StatusCode};
use serde_json::json;

use super::attacks::{oauth_connection, Browser};
use super::idp::Idp;
use super::links::link_path;
use crate::support::app::TestApp;

#[tokio::test]
async fn a_tenants_own_oauth_client_overrides_the_platforms_and_its_secret_is_never_returned() {
    let app = TestApp::embedded().await;
    app.tenant("acme").await;
    app.tenant("globex").await;
    let idp = Idp::start("unused").await;
    // The platform's registration (the right one for the test server).
    let id = oauth_connection(&app, &idp, "CRM").await;
    // acme's own registration: a client the token server does not know.
    let r = app
        .admin(
            Method::PUT,
            "/v1/tenants/acme/oauth-clients/mock-idp",
            Some(json!({"client_id": "acme-own", "client_secret": "acme-s3cret-0123456789",
                        "authorize_url": "http://127.0.0.1:9/authorize", "token_url": idp.token_url})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["owner"], "acme");
    assert_eq!(r.json()["has_client_secret"], true);
    assert!(!r.text().contains("acme-s3cret-0123456789"), "write-only secret: {}", r.text());

    let conn = app.hub.connections().get_connection("acme", &id).await.expect("connection");
    assert_eq!(
        app.hub.connections().oauth_client(&conn).await.expect("client").client_id,
        "acme-own",
        "the tenant's wins"
    );
    let view = app.admin(Method::GET, &format!("/v1/tenants/acme/connections/{id}"), None).await.json();
    let mut browser = Browser::new(&app);
    let state = browser.start_oauth(&link_path(&view)).await;
    let r = browser.callback(&state, "code-1").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "the token server refuses acme's client: {}", r.text());
    assert!(r.text().contains("rejected Ferry") && r.text().contains("OAuth client registration"), "{}", r.text());
    assert!(!r.text().contains("acme-s3cret-0123456789"));

    // Another tenant still uses the platform's client.
    let r = app
        .admin(
            Method::POST,
            "/v1/tenants/globex/connections",
            Some(json!({"name": "CRM", "connector": "mock-idp", "auth_kind": "oauth2"})),
        )
        .await;
    let other =
        app.hub.connections().get_connection("globex", r.json()["id"].as_str().expect("id")).await.expect("connection");
    assert_eq!(app.hub.connections().oauth_client(&other).await.expect("client").client_id, "ferry-test");

    // Bad registrations are refused clearly.
    for (body, code) in [
        (json!({"client_id": "x"}), "missing_token_url"),
        (json!({"client_id": "x", "token_url": "ftp://idp.example/token"}), "invalid_oauth_url"),
        (json!({"client_id": ""}), "invalid_client_id"),
    ] {
        let r = app.admin(Method::PUT, "/v1/tenants/acme/oauth-clients/unknown-provider", Some(body)).await;
        assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, code.to_owned()), "{}", r.text());
    }
}
