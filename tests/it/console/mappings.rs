//! Mapping configurations in the console: created and edited through one
//! form, the field mappings one per line; the service's problems shown
//! beside the field, or on the line of the field mapping, they concern,
//! with everything typed kept.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use super::{csrf_of, hub_with_admin, location, member, Browser, PASSWORD};
use crate::support::app::TestApp;

async fn signed_in() -> (TestApp, Browser) {
    let app = hub_with_admin().await;
    app.tenant("acme").await;
    member(&app, "olga@acme.example", &["acme"]).await;
    let mut b = Browser::new(&app.hub);
    b.sign_in("olga@acme.example", PASSWORD).await;
    (app, b)
}

async fn submit(b: &mut Browser, page: &str, path: &str, form: &[(&str, &str)]) -> crate::support::app::Response {
    let csrf = csrf_of(&b.get(page).await.text());
    let mut all = vec![("csrf", csrf.as_str())];
    all.extend_from_slice(form);
    b.post(path, &all).await
}

async fn mapping(app: &TestApp, id: &str) -> Value {
    app.admin(Method::GET, &format!("/v1/tenants/acme/mappings/{id}"), None).await.json()
}

const FIELDS: &str =
    "email = {{ record.properties.email | lower }}\nfirst_name = {\"from\": \"properties.firstname\"}\n";

#[tokio::test]
async fn a_mapping_is_created_and_edited_through_its_form() {
    let (app, mut b) = signed_in().await;
    let empty = b.get("/t/acme/mappings").await;
    assert!(empty.text().contains("No mapping configurations yet") && empty.text().contains("/t/acme/mappings/new"));
    let r = submit(
        &mut b,
        "/t/acme/mappings/new",
        "/t/acme/mappings",
        &[
            ("name", "Contacts"),
            ("entity", "contact"),
            ("source", "hubspot"),
            ("target", "salesforce"),
            ("fields", FIELDS),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let page = location(&r);
    let id = page.rsplit('/').next().expect("id").to_owned();
    let m = mapping(&app, &id).await;
    assert_eq!(
        m["fields"],
        json!({"email": "{{ record.properties.email | lower }}", "first_name": {"from": "properties.firstname"}})
    );
    assert_eq!(
        (m["source"].as_str(), m["target"].as_str(), m["version"].as_u64()),
        (Some("hubspot"), Some("salesforce"), Some(1))
    );

    // The edit form shows the mapping as it is, one line per field.
    let html = b.get(&page).await.text();
    assert!(html.contains("email = {{ record.properties.email | lower }}"), "{html}");
    assert!(html.contains("first_name = {&quot;from&quot;:&quot;properties.firstname&quot;}"), "{html}");
    assert!(html.contains("Version 1"));
    let list = b.get("/t/acme/mappings").await.text();
    assert!(list.contains("Contacts") && list.contains("hubspot → salesforce"));

    let r = submit(
        &mut b,
        &page,
        &page,
        &[
            ("name", "Contacts v2"),
            ("entity", "contact"),
            ("source", ""),
            ("target", "salesforce"),
            ("fields", "email = {{ record.email }}"),
            ("keep_unmapped", "on"),
        ],
    )
    .await;
    assert_eq!((r.status, location(&r)), (StatusCode::SEE_OTHER, page.clone()));
    let m = mapping(&app, &id).await;
    assert_eq!(
        (m["name"].as_str(), m["version"].as_u64(), m["keep_unmapped"].as_bool()),
        (Some("Contacts v2"), Some(2), Some(true))
    );
    assert!(m["source"].is_null(), "an emptied source is cleared: {m}");
    assert_eq!(m["fields"], json!({"email": "{{ record.email }}"}));
}

#[tokio::test]
async fn problems_are_shown_on_the_line_or_beside_the_field_they_concern_with_the_input_kept() {
    let (app, mut b) = signed_in().await;
    // A template the service refuses, on line 3.
    let typed = "email = {{ record.email }}\n\nphone = {{ record.phone }";
    let r = submit(
        &mut b,
        "/t/acme/mappings/new",
        "/t/acme/mappings",
        &[("name", "Contacts"), ("entity", "contact"), ("fields", typed)],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let html = r.text();
    assert!(html.contains("<strong>Line 3</strong> (<code>phone</code>)"), "{html}");
    assert!(html.contains(r#"id="fields-error""#));
    assert!(html.contains("phone = {{ record.phone }"), "the typed lines are kept");
    assert!(html.contains(r#"value="Contacts""#));

    // Lines that cannot be read say so, by line, before anything is sent.
    let r = submit(
        &mut b,
        "/t/acme/mappings/new",
        "/t/acme/mappings",
        &[
            ("name", "Contacts"),
            ("entity", "contact"),
            ("fields", "email\nx = {\"from\": 1, \"nope\": 2}\nx = {{ a }}"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let html = r.text();
    for line in ["Line 1", "Line 2", "Line 3"] {
        assert!(html.contains(&format!("<strong>{line}</strong>")), "{line}: {html}");
    }

    // A problem of one field stands beside it.
    let r = submit(
        &mut b,
        "/t/acme/mappings/new",
        "/t/acme/mappings",
        &[("name", "Contacts"), ("entity", "not an entity!"), ("fields", "email = {{ record.email }}")],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains(r#"id="entity-error""#) && r.text().contains(r#"value="not an entity!""#));
    let r = submit(
        &mut b,
        "/t/acme/mappings/new",
        "/t/acme/mappings",
        &[("name", "Contacts"), ("entity", "contact"), ("target", "no spaces allowed"), ("fields", "")],
    )
    .await;
    assert!(r.text().contains(r#"id="target-error""#), "{}", r.text());

    let list = app.admin(Method::GET, "/v1/tenants/acme/mappings", None).await.json();
    assert_eq!(list["items"], json!([]), "nothing refused was saved");
}
