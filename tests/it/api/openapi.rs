//! The served OpenAPI document describes exactly the routes the router serves,
//! and is the one generated from the handlers' annotations.

use std::collections::BTreeSet;
use std::path::PathBuf;

use axum::http::{Method, StatusCode};
use ferry_http::api::routes::specs;

use crate::support::app::TestApp;

#[tokio::test]
async fn openapi_document_lists_every_route_and_nothing_else() {
    let app = TestApp::embedded().await;
    let r = app.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.1.0");

    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let served: BTreeSet<(String, String)> = specs()
        .into_iter()
        .filter(|s| s.path != "/openapi.json")
        .map(|s| (s.method.to_string(), s.path.to_owned()))
        .collect();
    assert_eq!(documented, served);
}

#[tokio::test]
async fn openapi_marks_public_routes_as_needing_no_credentials() {
    let doc = ferry_http::api::openapi::document();
    let json = serde_json::to_value(&doc).expect("serialises");
    assert_eq!(json["paths"]["/healthz"]["get"]["security"], serde_json::json!([{}]));
    assert_eq!(json["paths"]["/v1/sessions"]["post"]["security"], serde_json::json!([{}]));
    assert!(json["components"]["securitySchemes"]["bearer"].is_object());
}

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../crates/http/src/api/openapi.json")
}

#[test]
fn the_served_document_is_the_generated_one() {
    let path = committed_path();
    let generated = ferry_http::api::openapi::document_json();
    if std::env::var("FERRY_UPDATE_OPENAPI").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &generated).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated && ferry_http::api::openapi::DOCUMENT_JSON == generated,
        "{} is out of date with the handlers' annotations; regenerate it with\n\n    \
         FERRY_UPDATE_OPENAPI=1 cargo test -p ferry-e2e --test it api::openapi\n\nand commit the result",
        path.display()
    );
}

#[tokio::test]
async fn the_served_document_is_json() {
    let app = TestApp::embedded().await;
    let r = app.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers.get("content-type").and_then(|v| v.to_str().ok()), Some("application/json"));
    let served: serde_json::Value = r.json();
    assert_eq!(served, serde_json::to_value(ferry_http::api::openapi::document()).expect("serialises"));
}
