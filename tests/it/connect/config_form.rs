//! The connect page's config form: built from `configs.schema` + `uischema`
//! (admin-only controls left out), validated on the server, CSRF-protected.

use axum::http::{Method, StatusCode};
use serde_json::json;

use super::attacks::Browser;
use super::links::link_path;
use crate::support::app::TestApp;

const MANIFEST: &str = r#"
version: 1.0
name: settings-sync
connectors:
  crm: {provider: hubspot, auth: api_key, base_url: https://api.hubapi.com}
configs:
  schema:
    type: object
    required: [region]
    properties:
      region: {type: string, enum: [eu, us]}
      batch: {type: integer, minimum: 1, maximum: 100}
      active: {type: boolean}
      since: {type: string, format: date}
      objects: {type: array, items: {type: string, enum: [contacts, deals, tickets]}}
      operator_mode: {type: string}
  uischema:
    type: VerticalLayout
    elements:
      - type: Section
        label: Sync
        elements:
          - {type: Control, scope: '#/properties/region', label: Region}
          - {type: Control, scope: '#/properties/batch', label: Batch size}
          - {type: Divider}
          - {type: Label, text: Choose what to copy}
          - {type: MultiSelectControl, scope: '#/properties/objects', label: Objects}
          - {type: Control, scope: '#/properties/active', label: Active}
          - {type: Control, scope: '#/properties/since', label: Since}
      - {type: Control, scope: '#/properties/operator_mode', label: Operator mode, admin: true}
flows:
  - name: contacts
    source: {type: http, connector: crm, request: {path: /contacts}, records: results}
    target: {type: file, format: jsonl, path: 'c.jsonl'}
"#;

#[tokio::test]
async fn the_page_renders_the_customer_config_form_and_the_server_validates_what_it_saves() {
    let app = TestApp::embedded().await;
    app.tenant("acme").await;
    let r =
        app.admin(Method::POST, "/v1/integrations/settings-sync/releases", Some(json!({"manifest": MANIFEST}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let conn = app.connection("acme", "crm", "s3cret").await;
    let job = app
        .job(
            "acme",
            json!({"name": "sync", "integration": "settings-sync", "connections": {"crm": conn},
                   "configs": {"region": "eu", "operator_mode": "fast"}}),
        )
        .await;
    let view = app.admin(Method::GET, &format!("/v1/tenants/acme/connections/{conn}"), None).await.json();
    let link = link_path(&view);
    let mut browser = Browser::new(&app);
    let page = browser.get(&link).await.text();
    for expected in [
        "<legend>Sync</legend>",
        "<label for=\"c-region\">Region",
        "<option value=\"eu\" selected>eu</option>",
        "name=\"objects\" multiple",
        "type=\"checkbox\" id=\"c-active\"",
        "name=\"since\" type=\"date\"",
        "name=\"batch\" type=\"number\"",
        "<hr>",
        "Choose what to copy",
    ] {
        assert!(page.contains(expected), "expected {expected:?} in\n{page}");
    }
    assert!(!page.contains("Operator mode") && !page.contains("fast"), "admin-only controls stay hidden");

    let path = format!("{link}/config");
    let good = [
        ("job", job.as_str()),
        ("region", "us"),
        ("batch", "50"),
        ("objects", "contacts"),
        ("objects", "deals"),
        ("active", "true"),
        ("since", "2024-01-31"),
    ];
    // Forged (no CSRF token): refused, nothing saved.
    let r = browser.post(&path, &good, false).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert_eq!(configs(&app, &job).await, json!({"region": "eu", "operator_mode": "fast"}));

    // Values the schema refuses: the page says which field, nothing saved.
    let mut bad = good.to_vec();
    bad[2] = ("batch", "500");
    let r = browser.post(&path, &bad, true).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(r.text().contains("Some settings need fixing. batch: value is greater than the maximum"), "{}", r.text());
    bad[2] = ("batch", "many");
    let r = browser.post(&path, &bad, true).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(r.text().contains("must be a whole number"), "{}", r.text());
    assert_eq!(configs(&app, &job).await, json!({"region": "eu", "operator_mode": "fast"}));

    let r = browser.post(&path, &good, true).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.text().contains("Settings saved"), "{}", r.text());
    assert_eq!(
        configs(&app, &job).await,
        json!({"region": "us", "batch": 50, "objects": ["contacts", "deals"], "active": true,
               "since": "2024-01-31", "operator_mode": "fast"}),
        "customer fields typed per the schema; the admin-only value kept"
    );

    // Another job's id (not bound to this connection) is refused.
    let other_conn = app.connection("acme", "other", "s3cret").await;
    let other = app
        .job(
            "acme",
            json!({"name": "other", "integration": "settings-sync", "connections": {"crm": other_conn},
                   "configs": {"region": "eu"}}),
        )
        .await;
    browser.get(&link).await;
    let r = browser.post(&path, &[("job", other.as_str()), ("region", "us")], true).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(r.text().contains("do not belong to this connection"), "{}", r.text());
}

async fn configs(app: &TestApp, job: &str) -> serde_json::Value {
    app.admin(Method::GET, &format!("/v1/tenants/acme/jobs/{job}"), None).await.json()["configs"].clone()
}
