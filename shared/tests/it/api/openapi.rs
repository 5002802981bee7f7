//! The served OpenAPI document describes exactly the routes the router serves.

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use ferry_shared::api::routes::specs;

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
    let doc = ferry_shared::api::openapi::document();
    let json = serde_json::to_value(&doc).expect("serialises");
    assert_eq!(json["paths"]["/healthz"]["get"]["security"], serde_json::json!([{}]));
    assert_eq!(json["paths"]["/v1/sessions"]["post"]["security"], serde_json::json!([{}]));
    assert!(json["components"]["securitySchemes"]["bearer"].is_object());
}
