//! Mapping configurations (EZY): per tenant, per entity type, validated like
//! the manifest's mappings.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::support::app::TestApp;

#[tokio::test]
async fn mapping_configurations_are_created_validated_changed_and_deleted() {
    let app = TestApp::embedded().await;
    app.tenant("a").await;
    let body = json!({
        "name": "HubSpot contacts to warehouse",
        "entity": "contact",
        "source": "hubspot",
        "target": "warehouse",
        "fields": {
            "email": "{{ record.properties.email | lower }}",
            "name": {"template": "{{ record.first }} {{ record.last }}"},
            "created": {"from": "createdAt", "type": "datetime"},
            "origin": {"value": "hubspot"},
            "vip": {"from": "properties.vip", "type": "boolean", "default": false, "when": "record.properties.vip != none"}
        }
    });
    let r = app.admin(Method::POST, "/v1/tenants/a/mappings", Some(body.clone())).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let m = r.json();
    let id = m["id"].as_str().expect("id").to_owned();
    assert_eq!(m["tenant"], "a");
    assert_eq!(m["entity"], "contact");
    assert_eq!(m["keep_unmapped"], false);
    assert_eq!(m["fields"]["created"], json!({"from": "createdAt", "type": "datetime"}));

    let r = app.admin(Method::GET, &format!("/v1/tenants/a/mappings/{id}"), None).await;
    assert_eq!(r.json(), m);
    let r = app.admin(Method::GET, "/v1/tenants/a/mappings", None).await;
    assert_eq!(r.json()["items"], json!([m]));

    // Unique names per tenant, case-insensitively.
    let mut dup = body.clone();
    dup["name"] = json!("hubspot CONTACTS to warehouse");
    let r = app.admin(Method::POST, "/v1/tenants/a/mappings", Some(dup)).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "mapping_exists".to_owned()));

    // Field mappings are checked like a manifest's, every problem listed.
    let mut bad = body.clone();
    bad["name"] = json!("bad");
    bad["fields"] = json!({"email": {"from": "email", "value": "x"}, "name": "{{ unknown.var }}", "n": "{{ record.x "});
    let r = app.admin(Method::POST, "/v1/tenants/a/mappings", Some(bad)).await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "invalid_mapping".to_owned()), "{}", r.text());
    let paths: Vec<String> = r.json()["error"]["details"]
        .as_array()
        .map(|a| a.iter().filter_map(|d| d["path"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    for p in ["/fields/email", "/fields/name", "/fields/n"] {
        assert!(paths.iter().any(|x| x == p), "{p} in {paths:?}");
    }
    for (field, value, code) in [
        ("entity", json!("Contact Person"), "invalid_entity"),
        ("source", json!("hub spot"), "invalid_connector"),
        ("name", json!(""), "invalid_name"),
    ] {
        let mut b = body.clone();
        b[field] = value;
        b["name"] = if field == "name" { b["name"].clone() } else { json!("other") };
        let r = app.admin(Method::POST, "/v1/tenants/a/mappings", Some(b)).await;
        assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, code.to_owned()), "{field}: {}", r.text());
    }
    let mut unknown = body.clone();
    unknown["fields"]["email"] = json!({"form": "email"});
    unknown["name"] = json!("typo");
    let r = app.admin(Method::POST, "/v1/tenants/a/mappings", Some(unknown)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());

    // Changes: rename, clear the target, replace the fields; invalid ones are refused.
    let r = app
        .admin(
            Method::PATCH,
            &format!("/v1/tenants/a/mappings/{id}"),
            Some(json!({"name": "Contacts", "target": null, "fields": {"email": {"from": "email"}}, "keep_unmapped": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let changed = r.json();
    assert_eq!(changed["name"], "Contacts");
    assert_eq!(changed["target"], serde_json::Value::Null);
    assert_eq!(changed["source"], "hubspot");
    assert_eq!(changed["fields"], json!({"email": {"from": "email"}}));
    let r = app
        .admin(Method::PATCH, &format!("/v1/tenants/a/mappings/{id}"), Some(json!({"fields": {"x": "{{ nope }}"}})))
        .await;
    assert_eq!(r.code(), "invalid_mapping");
    let r = app.admin(Method::GET, &format!("/v1/tenants/a/mappings/{id}"), None).await;
    assert_eq!(r.json(), changed, "a refused change changes nothing");
    // The old name is free again.
    let r = app.admin(Method::POST, "/v1/tenants/a/mappings", Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());

    let r = app.admin(Method::DELETE, &format!("/v1/tenants/a/mappings/{id}"), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app.admin(Method::GET, &format!("/v1/tenants/a/mappings/{id}"), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app.admin(Method::DELETE, &format!("/v1/tenants/a/mappings/{id}"), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}
