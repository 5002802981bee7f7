//! Deleting a user ends what it could do: its sessions and the API keys it created.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::support::app::TestApp;

#[tokio::test]
async fn api_keys_created_by_a_user_stop_working_when_the_user_is_deleted() {
    let app = TestApp::embedded().await;
    app.tenant("acme").await;
    let (session, user) = app.member("ann@example.com", &["acme"]).await;
    let r = app.call(Method::POST, "/v1/tenants/acme/api-keys", Some(&session), Some(json!({"name": "ann's"}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let anns_key = r.json()["key"].as_str().expect("key").to_owned();
    assert_eq!(r.json()["api_key"]["created_by"], user.as_str(), "the key names its creator");
    let (admins_key, _) = app.tenant_key("acme").await;
    assert_eq!(app.call(Method::GET, "/v1/tenants/acme/jobs", Some(&anns_key), None).await.status, StatusCode::OK);

    let r = app.admin(Method::DELETE, &format!("/v1/users/{user}"), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());

    let r = app.call(Method::GET, "/v1/tenants/acme/jobs", Some(&anns_key), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "the deleted user's key still works: {}", r.text());
    let r = app.call(Method::GET, "/v1/me", Some(&session), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "the deleted user's session still works: {}", r.text());
    let listed = app.admin(Method::GET, "/v1/tenants/acme/api-keys", None).await.json();
    let revoked: Vec<_> = listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|k| !k["revoked_at"].is_null())
        .map(|k| k["name"].clone())
        .collect();
    assert_eq!(revoked, vec![json!("ann's")], "the listing shows the key revoked");
    let r = app.call(Method::GET, "/v1/tenants/acme/jobs", Some(&admins_key), None).await;
    assert_eq!(r.status, StatusCode::OK, "keys others created keep working: {}", r.text());

    assert_eq!(app.admin(Method::GET, &format!("/v1/users/{user}"), None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.admin(Method::DELETE, &format!("/v1/users/{user}"), None).await.status, StatusCode::NOT_FOUND);
    // The email is free again.
    app.member("ann@example.com", &["acme"]).await;
}
