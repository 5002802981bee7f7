//! Publishing manifests as numbered, immutable releases; the default release.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::app::TestApp;
use crate::support::manifests::{crm_sync_described, crm_sync_with_tier, publish_body, CRM_SYNC};

async fn publish(app: &TestApp, name: &str, manifest: &str) -> crate::support::app::Response {
    app.admin(Method::POST, &format!("/v1/integrations/{name}/releases"), Some(publish_body(manifest))).await
}

fn numbers(v: &Value) -> Vec<u64> {
    v["items"].as_array().map(|a| a.iter().filter_map(|r| r["number"].as_u64()).collect()).unwrap_or_default()
}

#[tokio::test]
async fn publishing_numbers_releases_and_the_first_becomes_the_default() {
    let app = TestApp::embedded().await;
    let r = publish(&app, "crm-sync", CRM_SYNC).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let j = r.json();
    assert_eq!(j["created"], true);
    assert_eq!(j["release"]["number"], 1);
    assert_eq!(j["release"]["integration"], "crm-sync");
    assert_eq!(j["release"]["file"], "crm-sync/PANDIUM.yaml");
    assert_eq!(j["release"]["digest"].as_str().map(str::len), Some(64));
    assert!(j["release"]["published_by"].as_str().is_some_and(|p| p.starts_with("key:")), "{j}");

    let r = publish(&app, "crm-sync", &crm_sync_with_tier()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["release"]["number"], 2);

    let r = app.admin(Method::GET, "/v1/integrations/crm-sync", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let i = r.json();
    assert_eq!(i["name"], "crm-sync");
    assert_eq!(i["default_release"], 1, "the first release stays the default");
    assert_eq!(i["latest_release"], 2);
    assert_eq!(i["description"], "Copies contacts from the CRM to the warehouse.");
    assert!(i.get("latest_digest").is_none(), "internal fields stay internal: {i}");

    let r = app.admin(Method::GET, "/v1/integrations", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["items"].as_array().map(Vec::len), Some(1));

    // Newest first, paginated, summaries only.
    let r = app.admin(Method::GET, "/v1/integrations/crm-sync/releases", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(numbers(&r.json()), vec![2, 1]);
    assert!(r.json()["items"][0].get("source").is_none());
    let r = app.admin(Method::GET, "/v1/integrations/crm-sync/releases?limit=1", None).await;
    assert_eq!(numbers(&r.json()), vec![2]);
    let cursor = r.json()["next_cursor"].as_str().expect("a second page").to_owned();
    let r = app.admin(Method::GET, &format!("/v1/integrations/crm-sync/releases?limit=1&cursor={cursor}"), None).await;
    assert_eq!(numbers(&r.json()), vec![1]);

    // One release: the manifest parsed and exactly as published.
    let r = app.admin(Method::GET, "/v1/integrations/crm-sync/releases/1", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let rel = r.json();
    assert_eq!(rel["number"], 1);
    assert_eq!(rel["source"], CRM_SYNC);
    assert_eq!(rel["manifest"]["name"], "crm-sync");
    assert_eq!(rel["manifest"]["connectors"]["crm"]["provider"], "hubspot");
    // Pandium's `min` survives as written; the conversion happens when validating configs.
    assert_eq!(rel["manifest"]["configs"]["schema"]["properties"]["batch"]["min"], 1);
}

#[tokio::test]
async fn the_same_manifest_twice_creates_no_release() {
    let app = TestApp::embedded().await;
    let first = publish(&app, "crm-sync", CRM_SYNC).await;
    assert_eq!(first.status, StatusCode::CREATED);

    let again = publish(&app, "crm-sync", CRM_SYNC).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text());
    assert_eq!(again.json()["created"], false);
    assert_eq!(again.json()["release"], first.json()["release"]);

    // Other comments, blank lines and indentation, same manifest: still no release.
    let reformatted = format!(
        "# reformatted\n\n{}",
        CRM_SYNC
            .replace("# CRM sync: the integration most API tests use.", "# another comment")
            .replace("enum: [eu, us]", "enum:\n          - eu\n          - us")
    );
    assert_ne!(reformatted, CRM_SYNC);
    let r = publish(&app, "crm-sync", &reformatted).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["created"], false);
    assert_eq!(r.json()["release"]["number"], 1);
    assert_eq!(r.json()["release"]["digest"], first.json()["release"]["digest"]);

    let r = app.admin(Method::GET, "/v1/integrations/crm-sync/releases", None).await;
    assert_eq!(numbers(&r.json()), vec![1]);

    // A changed manifest is a new release; going back to the first one is a new
    // release too, so jobs on channel `latest` roll back with it.
    let r = publish(&app, "crm-sync", &crm_sync_described("Changed.")).await;
    assert_eq!((r.status, r.json()["release"]["number"].clone()), (StatusCode::CREATED, json!(2)));
    let r = publish(&app, "crm-sync", CRM_SYNC).await;
    assert_eq!((r.status, r.json()["release"]["number"].clone()), (StatusCode::CREATED, json!(3)));
    assert_eq!(r.json()["release"]["digest"], first.json()["release"]["digest"]);
}

#[tokio::test]
async fn invalid_manifests_are_400_with_positioned_diagnostics_and_store_nothing() {
    let app = TestApp::embedded().await;
    let broken = CRM_SYNC.replace("connector: warehouse, path", "connector: warehous, path").replace("flows:", "flow:");
    let r = publish(&app, "crm-sync", &broken).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert_eq!(r.code(), "invalid_manifest");
    let err = r.json()["error"].clone();
    assert!(
        err["message"].as_str().is_some_and(|m| m.contains("crm-sync/PANDIUM.yaml") && m.contains("line")),
        "{err}"
    );
    let details = err["details"].as_array().cloned().unwrap_or_default();
    assert!(!details.is_empty(), "{err}");
    let unknown = details.iter().find(|d| d["code"] == "unknown_key").unwrap_or_else(|| panic!("{err}"));
    let line = CRM_SYNC.lines().position(|l| l.starts_with("flows:")).map(|i| i + 1);
    assert_eq!(unknown["line"].as_u64().map(|l| l as usize), line, "{unknown}");
    assert_eq!(unknown["column"], 1);
    assert_eq!(unknown["file"], "crm-sync/PANDIUM.yaml");
    assert!(unknown["help"].as_str().is_some_and(|h| h.contains("flows")), "{unknown}");

    // Semantic problems too (after the shape is right).
    let r =
        publish(&app, "crm-sync", &CRM_SYNC.replace("connector: warehouse, path", "connector: warehous, path")).await;
    assert_eq!(r.code(), "invalid_manifest");
    let d = &r.json()["error"]["details"][0];
    assert_eq!(d["code"], "unknown_connector", "{d}");
    assert_eq!(d["path"], "/flows/1/target/connector");
    assert!(d["line"].as_u64().is_some_and(|l| l > 1) && d["column"].as_u64().is_some_and(|c| c > 1), "{d}");

    // YAML syntax errors have a position as well.
    let r = publish(&app, "crm-sync", "name: [unclosed\n").await;
    assert_eq!(r.code(), "invalid_manifest");
    assert!(r.json()["error"]["details"][0]["line"].as_u64().is_some(), "{}", r.text());

    // `name:` must be the integration's name.
    let r = publish(&app, "other", CRM_SYNC).await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "name_mismatch".to_owned()), "{}", r.text());

    // The integration name is an id (the guard checks path ids).
    let r = publish(&app, "CRM_Sync", CRM_SYNC).await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "invalid_id".to_owned()));

    // Unknown fields in the request body are refused.
    let r = app
        .admin(Method::POST, "/v1/integrations/crm-sync/releases", Some(json!({"manifest": CRM_SYNC, "nmae": "x"})))
        .await;
    assert_eq!(r.code(), "unknown_field");

    let r = app.admin(Method::GET, "/v1/integrations/crm-sync", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "nothing was stored: {}", r.text());
    let r = app.admin(Method::GET, "/v1/integrations", None).await;
    assert_eq!(r.json()["items"], json!([]));
}

#[tokio::test]
async fn the_default_release_can_be_changed_to_an_existing_one() {
    let app = TestApp::embedded().await;
    app.publish("crm-sync", CRM_SYNC).await;
    app.publish("crm-sync", &crm_sync_with_tier()).await;
    let r = app.admin(Method::PATCH, "/v1/integrations/crm-sync", Some(json!({"default_release": 2}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["default_release"], 2);
    for bad in [0, 3, 99] {
        let r = app.admin(Method::PATCH, "/v1/integrations/crm-sync", Some(json!({"default_release": bad}))).await;
        assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "unknown_release".to_owned()), "{bad}");
    }
    let r = app.admin(Method::PATCH, "/v1/integrations/nope", Some(json!({"default_release": 1}))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // A later release does not move the default.
    app.publish("crm-sync", &crm_sync_described("Third.")).await;
    let r = app.admin(Method::GET, "/v1/integrations/crm-sync", None).await;
    assert_eq!((r.json()["default_release"].clone(), r.json()["latest_release"].clone()), (json!(2), json!(3)));
}

#[tokio::test]
async fn release_paths_take_release_numbers() {
    let app = TestApp::embedded().await;
    app.publish("crm-sync", CRM_SYNC).await;
    for (path, status, code) in [
        ("/v1/integrations/crm-sync/releases/2", StatusCode::NOT_FOUND, "not_found"),
        ("/v1/integrations/crm-sync/releases/abc", StatusCode::BAD_REQUEST, "invalid_id"),
        ("/v1/integrations/crm-sync/releases/01", StatusCode::BAD_REQUEST, "invalid_id"),
        ("/v1/integrations/crm-sync/releases/0", StatusCode::BAD_REQUEST, "invalid_id"),
        ("/v1/integrations/crm-sync/releases/99999999999", StatusCode::BAD_REQUEST, "invalid_id"),
        ("/v1/integrations/nope/releases/1", StatusCode::NOT_FOUND, "not_found"),
        ("/v1/integrations/nope/releases", StatusCode::NOT_FOUND, "not_found"),
        ("/v1/integrations/nope", StatusCode::NOT_FOUND, "not_found"),
    ] {
        let r = app.admin(Method::GET, path, None).await;
        assert_eq!((r.status, r.code()), (status, code.to_owned()), "{path}: {}", r.text());
    }
}

#[tokio::test]
async fn publishing_accepts_manifests_up_to_one_mib_of_request() {
    let app = TestApp::embedded().await;
    // ~200 KB: over the 64 KiB limit of other routes, within a release's limit.
    let long = "x".repeat(200 * 1024);
    let big = crm_sync_described(&long);
    let r = publish(&app, "crm-sync", &big).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text().chars().take(300).collect::<String>());

    // Over what a release may hold: refused with a clear code, not a store error.
    let huge = crm_sync_described(&"y".repeat(600 * 1024));
    let r = publish(&app, "crm-sync", &huge).await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "manifest_too_large".to_owned()));

    // Over the route's body limit: 413 naming that limit.
    let over = crm_sync_described(&"z".repeat(1024 * 1024));
    let r = publish(&app, "crm-sync", &over).await;
    assert_eq!((r.status, r.code()), (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large".to_owned()));
    assert!(r.json()["error"]["message"].as_str().is_some_and(|m| m.contains("1024 KiB")), "{}", r.text());

    // Other routes keep their 64 KiB limit.
    let r = app
        .admin(
            Method::PATCH,
            "/v1/integrations/crm-sync",
            Some(json!({"default_release": 1, "pad": "p".repeat(70 * 1024)})),
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(r.json()["error"]["message"].as_str().is_some_and(|m| m.contains("64 KiB")), "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_publishes_get_distinct_consecutive_numbers() {
    let app = std::sync::Arc::new(TestApp::embedded().await);
    let mut tasks = Vec::new();
    for i in 0..6 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            publish(&app, "crm-sync", &crm_sync_described(&format!("Variant {i}."))).await
        }));
    }
    let mut got = Vec::new();
    for t in tasks {
        let r = t.await.expect("task");
        if r.status == StatusCode::CREATED {
            got.push(r.json()["release"]["number"].as_u64().expect("number"));
        } else {
            // Only when every retry lost the race.
            assert_eq!(r.code(), "concurrent_publish", "{}", r.text());
        }
    }
    got.sort();
    let r = app.admin(Method::GET, "/v1/integrations/crm-sync/releases", None).await;
    let mut stored = numbers(&r.json());
    stored.sort();
    assert_eq!(got, stored);
    assert_eq!(stored, (1..=stored.len() as u64).collect::<Vec<_>>(), "numbers are consecutive from 1");
    assert!(stored.len() >= 2, "{stored:?}");
}
