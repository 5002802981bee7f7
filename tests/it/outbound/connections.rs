//! A connection's origin is part of its credentials: who may move it, what
//! moving it does, and what a base URL may look like.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use super::{fake, json, KEY};
use crate::support::app::TestApp;

const MANIFEST: &str = r#"
version: 1.0
name: outbound
connectors:
  src: {provider: itemsource, auth: api_key, api_key: {header: X-API-Key}, verify: {path: /me}}
flows:
  - name: items
    source: {type: http, connector: src, request: {path: /items}, records: items}
    target: {type: file, format: jsonl, path: items.jsonl}
"#;

async fn create(app: &TestApp, token: &str, settings: Value) -> crate::support::app::Response {
    let body = json!({"name": "src", "connector": "itemsource", "auth_kind": "api_key",
                      "settings": settings, "credentials": {"api_key": KEY}});
    app.call(Method::POST, "/v1/tenants/acme/connections", Some(token), Some(body)).await
}

#[tokio::test]
async fn tenant_keys_cannot_point_a_connection_at_another_base_url() {
    let app = TestApp::embedded().await;
    app.tenant("acme").await;
    let (key, _) = app.tenant_key("acme").await;

    let r = create(&app, &key, json!({"base_url": "https://attacker.example"})).await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "forbidden".to_owned()), "{}", r.text());

    let r = create(&app, &key, json!({"region": "eu"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "other settings stay the tenant's: {}", r.text());
    let id = r.json()["id"].as_str().expect("id").to_owned();
    let path = format!("/v1/tenants/acme/connections/{id}");
    let patch = json!({"settings": {"region": "eu", "base_url": "https://attacker.example"}});
    let r = app.call(Method::PATCH, &path, Some(&key), Some(patch)).await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "forbidden".to_owned()), "{}", r.text());
    let view = app.admin(Method::GET, &path, None).await.json();
    assert_eq!(view["settings"], json!({"region": "eu"}), "{view}");
    assert_eq!(view["status"], "connected", "{view}");
}

#[tokio::test]
async fn moving_a_connection_to_another_origin_clears_its_credentials_before_any_request() {
    let app = TestApp::embedded().await;
    app.tenant("acme").await;
    app.publish("outbound", MANIFEST).await;
    let (old, _) = fake(|_| json(200, json!({"items": []}))).await;
    let (new, new_seen) = fake(|_| json(200, json!({"items": []}))).await;
    let r = create(&app, &app.admin_key.clone(), json!({"base_url": old})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let id = r.json()["id"].as_str().expect("id").to_owned();

    let r = app
        .admin(
            Method::PATCH,
            &format!("/v1/tenants/acme/connections/{id}"),
            Some(json!({"settings": {"base_url": new}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["status"], "disconnected", "{}", r.text());
    assert_eq!(r.json()["credentials"], json!({}), "{}", r.text());
    let conn = app.hub.connections().get_connection("acme", &id).await.expect("connection");
    assert!(app.hub.connections().connection_credentials(&conn).await.expect("secrets").is_none());

    let job = app
        .job("acme", json!({"name": "items", "integration": "outbound", "connections": {"src": id}, "configs": {}}))
        .await;
    let r = app.admin(Method::POST, &format!("/v1/tenants/acme/jobs/{job}/runs"), Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let run = wait(&app, &job, r.json()["run"]["id"].as_str().expect("run")).await;
    assert!(run["status"].as_str().is_some_and(|s| s.starts_with("failed")), "no credentials, no run: {run}");
    assert!(new_seen.hits().iter().all(|h| !h.header_text().contains(KEY)), "{:?}", new_seen.hits());
}

#[tokio::test]
async fn changing_a_catalogue_url_setting_clears_the_credentials() {
    let app = TestApp::embedded().await;
    app.tenant("acme").await;
    let (key, _) = app.tenant_key("acme").await;
    let body = json!({"name": "shop", "connector": "shopify", "auth_kind": "bearer",
                      "settings": {"shop": "acme"}, "credentials": {"token": KEY}});
    let r = app.call(Method::POST, "/v1/tenants/acme/connections", Some(&key), Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let path = format!("/v1/tenants/acme/connections/{}", r.json()["id"].as_str().expect("id"));

    let r = app.call(Method::PATCH, &path, Some(&key), Some(json!({"name": "Shop"}))).await;
    assert_eq!(r.json()["status"], "connected", "renaming keeps the credentials: {}", r.text());
    let r = app.call(Method::PATCH, &path, Some(&key), Some(json!({"settings": {"shop": "attacker"}}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["status"], "disconnected", "{}", r.text());
}

#[tokio::test]
async fn changing_a_setting_the_manifests_base_url_names_clears_the_credentials() {
    let app = TestApp::embedded().await;
    app.tenant("acme").await;
    let (key, _) = app.tenant_key("acme").await;
    let manifest = MANIFEST.replace("verify: {path: /me}}", "base_url: 'https://{account}.api.example'}");
    app.publish("outbound", &manifest).await;
    let r = create(&app, &key, json!({"account": "acme", "color": "blue"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let id = r.json()["id"].as_str().expect("id").to_owned();
    app.job("acme", json!({"name": "items", "integration": "outbound", "connections": {"src": id}, "configs": {}}))
        .await;
    let path = format!("/v1/tenants/acme/connections/{id}");

    let r = app
        .call(Method::PATCH, &path, Some(&key), Some(json!({"settings": {"account": "acme", "color": "red"}})))
        .await;
    assert_eq!(r.json()["status"], "connected", "a setting outside the URL keeps them: {}", r.text());
    let r = app
        .call(Method::PATCH, &path, Some(&key), Some(json!({"settings": {"account": "other", "color": "red"}})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["status"], "disconnected", "{}", r.text());
}

#[tokio::test]
async fn a_base_url_with_a_query_string_is_refused_at_write_and_at_run_time() {
    let app = TestApp::embedded().await;
    app.tenant("acme").await;
    let (victim, victim_seen) = fake(|_| json(200, json!({"items": []}))).await;

    let r = create(&app, &app.admin_key.clone(), json!({"base_url": format!("{victim}/internal?x=")})).await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "invalid_base_url".to_owned()), "{}", r.text());

    let manifest = MANIFEST.replace("verify: {path: /me}}", &format!("base_url: '{victim}/?x=', required: false}}"));
    app.publish("outbound", &manifest).await;
    let job =
        app.job("acme", json!({"name": "items", "integration": "outbound", "connections": {}, "configs": {}})).await;
    let r = app.admin(Method::POST, &format!("/v1/tenants/acme/jobs/{job}/runs"), Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let run = r.json()["run"]["id"].as_str().expect("run").to_owned();
    let run = wait(&app, &job, &run).await;
    assert!(run["status"].as_str().is_some_and(|s| s.starts_with("failed")), "{run}");
    assert!(run["error"].as_str().unwrap_or_default().contains("query string"), "{run}");
    assert!(victim_seen.hits().is_empty(), "{:?}", victim_seen.hits());
}

/// Publishes the manifest with `base` as its connector's base URL, binds a
/// new connection in a job, and checks the connection's credentials.
async fn verify_with_base_url(app: &TestApp, base: &str) -> ferry_service::verify::Verification {
    let manifest = MANIFEST.replace("verify: {path: /me}}", &format!("verify: {{path: /me}}, base_url: '{base}'}}"));
    app.publish("outbound", &manifest).await;
    let r = create(app, &app.admin_key.clone(), json!({})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let id = r.json()["id"].as_str().expect("id").to_owned();
    app.job("acme", json!({"name": "items", "integration": "outbound", "connections": {"src": id}, "configs": {}}))
        .await;
    let conn = app.hub.connections().get_connection("acme", &id).await.expect("connection");
    app.hub.connections().verify_connection(&conn).await.expect("verify")
}

#[tokio::test]
async fn the_credential_check_goes_where_runs_go_and_refuses_a_base_url_with_a_query_string() {
    let app = TestApp::embedded().await;
    app.tenant("acme").await;
    let (victim, victim_seen) = fake(|_| json(200, json!({}))).await;
    let outcome = verify_with_base_url(&app, &format!("{victim}/?x=")).await;
    assert!(
        matches!(&outcome, ferry_service::verify::Verification::Failed(m) if m.contains("query string")),
        "{outcome:?}"
    );
    assert!(victim_seen.hits().is_empty(), "{:?}", victim_seen.hits());
}

#[tokio::test]
async fn without_the_private_network_flag_the_credential_check_sends_nothing_to_loopback() {
    let app = TestApp::strict().await;
    app.tenant("acme").await;
    let (server, seen) = fake(|_| json(200, json!({}))).await;
    let outcome = verify_with_base_url(&app, &server).await;
    assert!(
        matches!(&outcome, ferry_service::verify::Verification::Failed(m) if m.contains("not sent")),
        "{outcome:?}"
    );
    assert!(seen.hits().is_empty(), "{:?}", seen.hits());
}

#[tokio::test]
async fn without_the_private_network_flag_an_admin_cannot_point_a_connection_at_loopback() {
    let app = TestApp::strict().await;
    app.tenant("acme").await;
    for (base, code) in [
        ("http://127.0.0.1:9", "insecure_url"),
        ("https://127.0.0.1:9", "blocked_address"),
        ("https://localhost", "blocked_address"),
        ("https://169.254.169.254", "blocked_address"),
    ] {
        let r = create(&app, &app.admin_key.clone(), json!({"base_url": base})).await;
        assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, code.to_owned()), "{base}: {}", r.text());
    }
}

async fn wait(app: &TestApp, job: &str, run: &str) -> Value {
    for _ in 0..400 {
        let v = app.admin(Method::GET, &format!("/v1/tenants/acme/jobs/{job}/runs/{run}"), None).await.json();
        if !matches!(v["status"].as_str(), Some("queued" | "running")) {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("run {run} did not finish")
}

#[tokio::test]
async fn a_base_url_saved_before_only_admins_could_set_it_is_not_followed_until_an_admin_sets_it_again() {
    use ferry_core::ports::Condition;
    use ferry_service::repo::{keys, records};
    let app = TestApp::embedded().await;
    app.tenant("acme").await;
    app.publish("outbound", MANIFEST).await;
    let (elsewhere, seen) = fake(|_| json(200, json!({"items": [{"id": 1}]}))).await;
    let r = create(&app, &app.admin_key.clone(), json!({"base_url": elsewhere})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let id = r.json()["id"].as_str().expect("id").to_owned();
    // The record as an older Ferry saved it, when any tenant principal could set the base URL.
    let key = keys::connection("acme", &id);
    let mut legacy = app.hub.connections().get_connection("acme", &id).await.expect("connection");
    legacy.base_url_approved = None;
    let op = records::put(key, &legacy, Condition::None).expect("record");
    app.hub.store.write(vec![op]).await.expect("write");

    let job = app
        .job("acme", json!({"name": "items", "integration": "outbound", "connections": {"src": id}, "configs": {}}))
        .await;
    let run_once = || async {
        let r = app.admin(Method::POST, &format!("/v1/tenants/acme/jobs/{job}/runs"), Some(json!({}))).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
        wait(&app, &job, r.json()["run"]["id"].as_str().expect("run")).await
    };
    let run = run_once().await;
    assert_eq!(run["status"], "failed_integration", "{run}");
    assert!(
        run["error"].as_str().is_some_and(|e| e.contains("unapproved_base_url") || e.contains("platform admin")),
        "{run}"
    );
    assert!(seen.hits().is_empty(), "the unapproved base URL received {:?}", seen.hits());

    let r = app
        .admin(
            Method::PATCH,
            &format!("/v1/tenants/acme/connections/{id}"),
            Some(json!({"settings": {"base_url": elsewhere}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["status"], "connected", "the same base URL again keeps the credentials: {}", r.text());
    let run = run_once().await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert!(seen.hits().iter().any(|h| h.header_text().contains(KEY)), "{:?}", seen.hits());
}
