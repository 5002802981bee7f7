//! Templates past the limits (engine/template_limits.rs) are refused when they
//! are submitted, with the stable code `template_too_complex` and where in the
//! template the limit was passed, before minijinja compiles them: compiling a
//! chain of thousands of operators, filters or lookups overflowed the stack of
//! the worker answering the request and took the whole hub down.

use axum::http::{Method, StatusCode};
use ferry_core::template_limits::MAX_EXPRESSION_DEPTH;
use serde_json::{json, Value};

use crate::support::app::{Response, TestApp};
use crate::support::manifests::CRM_SYNC;

/// Chains minijinja builds into trees as deep as they are long, each far past
/// the depth limit and well inside the 64 KiB body limit.
fn long_chains() -> Vec<(&'static str, String)> {
    vec![
        ("10,000-term `+` chain", format!("{{{{ 1{} }}}}", "+1".repeat(9_999))),
        ("filter chain", format!("{{{{ record.name{} }}}}", "|e".repeat(10_000))),
        ("attribute chain", format!("{{{{ record{} }}}}", ".a".repeat(10_000))),
        ("`and` chain", format!("{{{{ record.x{} }}}}", " and record.x".repeat(4_000))),
        ("`or` chain", format!("{{% if record.x{} %}}1{{% endif %}}", " or record.x".repeat(4_000))),
    ]
}

/// 400 `template_too_complex`, naming the field and the position in the template.
fn assert_too_complex(r: &Response, path: &str, what: &str) {
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "template_too_complex".to_owned()),
        "{what}: {}",
        r.text()
    );
    let details = r.json()["error"]["details"].clone();
    let detail = details
        .as_array()
        .and_then(|d| d.iter().find(|d| d["code"] == "template_too_complex"))
        .unwrap_or_else(|| panic!("{what}: no template_too_complex detail in {details}"));
    assert_eq!(detail["path"], path, "{what}");
    let message = detail["message"].as_str().unwrap_or_default();
    assert!(message.contains("line 1, column "), "{what}: the message gives the position: {message}");
    let limit = MAX_EXPRESSION_DEPTH.to_string();
    assert!(detail["help"].as_str().is_some_and(|h| h.contains(&limit)), "{what}: the help gives the limit: {detail}");
}

#[tokio::test]
async fn long_chains_in_a_mapping_configuration_are_refused_and_the_hub_keeps_serving() {
    let app = TestApp::embedded().await;
    app.tenant("a").await;
    let mapping = |name: &str, fields: Value| json!({"name": name, "entity": "contact", "fields": fields});
    for (what, template) in long_chains() {
        let r = app.admin(Method::POST, "/v1/tenants/a/mappings", Some(mapping(what, json!({"x": template})))).await;
        assert_too_complex(&r, "/fields/x", what);
        let rule = json!({"x": {"template": template}});
        let r = app.admin(Method::POST, "/v1/tenants/a/mappings", Some(mapping(what, rule))).await;
        assert_too_complex(&r, "/fields/x/template", what);
    }
    let condition = format!("record.x{}", " and record.x".repeat(4_000));
    let r = app
        .admin(
            Method::POST,
            "/v1/tenants/a/mappings",
            Some(mapping("when", json!({"x": {"value": 1, "when": condition}}))),
        )
        .await;
    assert_too_complex(&r, "/fields/x/when", "`and` chain in a condition");
    // Nothing was stored, and the hub still answers.
    let r = app.admin(Method::GET, "/v1/tenants/a/mappings", None).await;
    assert_eq!(r.json()["items"], json!([]), "{}", r.text());
    app.mapping("a", "still serving").await;
}

#[tokio::test]
async fn long_chains_in_an_inline_job_mapping_are_refused_and_the_hub_keeps_serving() {
    let app = TestApp::embedded().await;
    app.tenant("a").await;
    app.publish("crm-sync", CRM_SYNC).await;
    let crm = app.connection("a", "crm", "s3cret").await;
    let job = |name: &str, fields: Value| {
        json!({"name": name, "integration": "crm-sync", "connections": {"crm": crm}, "configs": {"region": "eu"},
               "mappings": {"contacts": {"fields": fields}}})
    };
    for (what, template) in long_chains() {
        let r = app.admin(Method::POST, "/v1/tenants/a/jobs", Some(job(what, json!({"email": template})))).await;
        assert_too_complex(&r, "/mappings/contacts/fields/email", what);
    }
    // A job that is fine is still created, on the same hub.
    let ok = job("fine", json!({"email": "{{ record.properties.email | lower }}"}));
    let r = app.admin(Method::POST, "/v1/tenants/a/jobs", Some(ok)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
}

#[tokio::test]
async fn a_string_repeated_into_megabytes_while_compiling_is_refused() {
    let app = TestApp::embedded().await;
    app.tenant("a").await;
    let body = json!({"name": "big", "entity": "contact", "fields": {"x": "{{ 'x' * 100000000 }}"}});
    let r = app.admin(Method::POST, "/v1/tenants/a/mappings", Some(body)).await;
    assert_too_complex(&r, "/fields/x", "'x' * 100000000");
    let body = json!({"name": "fine", "entity": "contact", "fields": {"rule": "{{ '-' * 40 }}"}});
    let r = app.admin(Method::POST, "/v1/tenants/a/mappings", Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
}

/// Found by the template_compile fuzz target: minijinja's expression parser
/// panicked on a condition with `}}` in it, inside the request's handler.
#[tokio::test]
async fn a_condition_that_closes_its_block_is_refused_instead_of_panicking() {
    let app = TestApp::embedded().await;
    app.tenant("a").await;
    let body = json!({"name": "when", "entity": "contact", "fields": {"x": {"value": 1, "when": "1 }} x"}}});
    let r = app.admin(Method::POST, "/v1/tenants/a/mappings", Some(body)).await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "invalid_mapping".to_owned()), "{}", r.text());
    let details = r.json()["error"]["details"].clone();
    assert_eq!(details[0]["path"], "/fields/x/when", "{details}");
    assert_eq!(details[0]["code"], "invalid_template", "{details}");
    app.mapping("a", "still serving").await;
}
