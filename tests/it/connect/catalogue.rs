//! Manifests name a catalogue provider instead of repeating its OAuth URLs.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::support::app::TestApp;

fn manifest(provider: &str) -> String {
    format!(
        r#"
version: 1.0
name: cat-sync
connectors:
  crm: {{provider: {provider}, auth: oauth2}}
flows:
  - name: items
    source: {{type: http, connector: crm, request: {{path: /items}}, records: items}}
    target: {{type: file, format: jsonl, path: 'items.jsonl'}}
"#
    )
}

#[tokio::test]
async fn an_oauth2_connector_naming_a_catalogue_provider_needs_no_oauth_section() {
    let app = TestApp::embedded().await;
    for provider in ["hubspot", "salesforce", "github", "google", "xero", "quickbooks", "slack", "zendesk", "shopify"] {
        let r = app
            .admin(Method::POST, "/v1/integrations/cat-sync/releases", Some(json!({"manifest": manifest(provider)})))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{provider}: {}", r.text());
    }
    let r = app
        .admin(Method::POST, "/v1/integrations/cat-sync/releases", Some(json!({"manifest": manifest("unheard-of")})))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(r.text().contains("has no `oauth` section"), "{}", r.text());
}
