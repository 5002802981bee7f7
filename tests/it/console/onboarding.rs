//! What the onboarding walk needs beyond the screens it passes through:
//! a platform admin creates a tenant on the switcher (refused to users, as
//! `POST /v1/tenants` is), the dashboard's checklist links each step to the
//! screen that does it, the job forms' Enter key saves, and the job flow's
//! "Create one" link opens a ready form for a connector the manifest defines.

use axum::http::{Method, StatusCode};
use serde_json::json;

use super::{csrf_of, hub_with_admin, location, member, Browser, ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD};

#[tokio::test]
async fn a_platform_admin_creates_a_tenant_on_the_switcher_and_lands_in_its_workspace() {
    let app = hub_with_admin().await;
    let mut b = Browser::new(&app.hub);
    b.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let html = b.get("/tenants").await.text();
    assert!(html.contains("No tenants yet") && html.contains("New tenant"), "{html}");
    assert!(!html.contains("curl"), "the empty state points at the form, not the API: {html}");
    let r = b.post("/tenants", &[("csrf", &csrf_of(&html)), ("id", "acme"), ("name", "Acme Corp")]).await;
    assert_eq!((r.status, location(&r)), (StatusCode::SEE_OTHER, "/t/acme/".to_owned()), "{}", r.text());
    let dashboard = b.get("/t/acme/").await;
    assert_eq!(dashboard.status, StatusCode::OK);
    assert!(dashboard.text().contains("Acme Corp") && dashboard.text().contains("Getting started"));
    let t = app.admin(Method::GET, "/v1/tenants/acme", None).await;
    assert_eq!(t.status, StatusCode::OK);
    assert_eq!((t.json()["name"].as_str(), t.json()["paused"].as_bool()), (Some("Acme Corp"), Some(false)));
    // Without an id the service makes one, as the API does; the admin lands in it.
    let html = b.get("/tenants").await.text();
    let r = b.post("/tenants", &[("csrf", &csrf_of(&html)), ("id", ""), ("name", "Globex")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let landed = location(&r);
    let id = landed.trim_start_matches("/t/").trim_end_matches('/');
    assert!(!id.is_empty() && landed.starts_with("/t/"), "{landed}");
    assert_eq!(app.admin(Method::GET, &format!("/v1/tenants/{id}"), None).await.json()["name"], "Globex");
}

#[tokio::test]
async fn a_refused_tenant_is_explained_beside_its_field_with_what_was_typed_kept() {
    let app = hub_with_admin().await;
    app.tenant("acme").await;
    let mut b = Browser::new(&app.hub);
    b.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let csrf = b.csrf().await;
    let cases = [
        ("Not An Id", "Initech", StatusCode::BAD_REQUEST, "id-error", "lowercase letters"),
        ("platform", "Initech", StatusCode::BAD_REQUEST, "id-error", "reserved"),
        ("acme", "Acme again", StatusCode::CONFLICT, "id-error", "already exists"),
        ("initech", "", StatusCode::BAD_REQUEST, "name-error", "name must be 1 to 200 characters"),
    ];
    for (id, name, status, error_id, says) in cases {
        let r = b.post("/tenants", &[("csrf", &csrf), ("id", id), ("name", name)]).await;
        let html = r.text();
        assert_eq!(r.status, status, "{id}/{name}: {html}");
        let at = html.find(&format!("id=\"{error_id}\"")).unwrap_or_else(|| panic!("{id}: no {error_id}: {html}"));
        assert!(html[at..].split("</p>").next().unwrap_or_default().contains(says), "{id}: {html}");
        assert!(html.contains(&format!("value=\"{id}\"")), "the id is kept: {html}");
        assert!(html.contains(&format!("value=\"{name}\"")), "the name is kept: {html}");
        assert!(html.contains("aria-invalid=\"true\""), "the field is marked: {html}");
    }
    let tenants = app.admin(Method::GET, "/v1/tenants", None).await.json();
    assert_eq!(tenants["items"].as_array().map(Vec::len), Some(1), "nothing was created: {tenants}");
    assert_eq!(tenants["items"][0]["name"], "Tenant acme", "acme is unchanged: {tenants}");
}

#[tokio::test]
async fn a_regular_user_is_refused_creating_a_tenant_and_sees_no_form() {
    let app = hub_with_admin().await;
    app.tenant("acme").await;
    app.tenant("globex").await;
    member(&app, "olga@acme.example", &["acme", "globex"]).await;
    let mut b = Browser::new(&app.hub);
    b.sign_in("olga@acme.example", PASSWORD).await;
    let html = b.get("/tenants").await.text();
    assert!(!html.contains("New tenant") && !html.contains("action=\"/tenants\""), "{html}");
    let r = b.post("/tenants", &[("csrf", &csrf_of(&html)), ("id", "initech"), ("name", "Initech")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    let r = app.admin(Method::GET, "/v1/tenants/initech", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "no tenant was created");
}

#[tokio::test]
async fn creating_a_tenant_needs_the_sessions_csrf_token() {
    let app = hub_with_admin().await;
    let mut b = Browser::new(&app.hub);
    b.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    for token in ["", "forged"] {
        let r = b.post("/tenants", &[("csrf", token), ("id", "acme"), ("name", "Acme")]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{token:?}");
    }
    assert_eq!(app.admin(Method::GET, "/v1/tenants/acme", None).await.status, StatusCode::NOT_FOUND);
}

/// A page's HTML with the escapes attribute values get undone.
fn unescaped(html: &str) -> String {
    html.replace("&#x2f;", "/").replace("&amp;", "&")
}

/// The `href` of the checklist step titled `title`, if it is a link.
fn step_href(html: &str, title: &str) -> Option<String> {
    let html = unescaped(html);
    let at = html.find(&format!(">{title}</a>"))?;
    let start = html[..at].rfind("href=\"")? + 6;
    Some(html[start..].split('"').next()?.to_owned())
}

#[tokio::test]
async fn the_onboarding_checklist_links_every_step_to_the_screen_that_does_it() {
    let app = hub_with_admin().await;
    app.tenant("acme").await;
    // A tenant without members: a user cannot add one, an admin can.
    let mut admin = Browser::new(&app.hub);
    admin.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let csrf = admin.csrf().await;
    admin.post("/tenants/switch", &[("csrf", &csrf), ("tenant", "acme")]).await;
    let html = admin.get("/t/acme/").await.text();
    assert_eq!(step_href(&html, "Add users").as_deref(), Some("/admin/users/new"), "{html}");
    member(&app, "olga@acme.example", &["acme"]).await;
    let mut b = Browser::new(&app.hub);
    b.sign_in("olga@acme.example", PASSWORD).await;
    let html = b.get("/t/acme/").await.text();
    for (title, href) in [
        ("Create connection profiles", "/t/acme/connections/new"),
        ("Create mapping configurations", "/t/acme/mappings/new"),
        ("Create a job", "/t/acme/jobs/new"),
        ("Run a job manually", "/t/acme/jobs"),
        ("Schedule a job", "/t/acme/jobs"),
        ("Create an API key", "/t/acme/api-keys"),
    ] {
        assert_eq!(step_href(&html, title).as_deref(), Some(href), "{title}: {html}");
        assert_eq!(b.get(href).await.status, StatusCode::OK, "{href} opens for a user");
    }
    assert!(!html.contains("/admin/users/new") && !html.contains("POST /v1/"), "{html}");
    assert!(html.contains("Add users</strong>\n        <span class=\"sr-only\">(done)"), "olga is a member: {html}");
}

const WAREHOUSE_SYNC: &str = r#"
version: 1.0
name: warehouse-sync
connectors:
  stock:
    provider: warehouse
    auth: api_key
    base_url: https://warehouse.example
flows:
  - name: items
    source: {type: http, connector: stock, request: {path: /items}, records: items}
    target: {type: file, format: jsonl, path: 'items/{{ run.id }}.jsonl'}
"#;

#[tokio::test]
async fn the_job_flows_create_one_link_opens_a_filled_form_for_a_connector_the_manifest_defines() {
    let app = hub_with_admin().await;
    app.tenant("acme").await;
    app.publish("warehouse-sync", WAREHOUSE_SYNC).await;
    member(&app, "olga@acme.example", &["acme"]).await;
    let mut b = Browser::new(&app.hub);
    b.sign_in("olga@acme.example", PASSWORD).await;
    let html = unescaped(&b.get("/t/acme/jobs/new?integration=warehouse-sync").await.text());
    let job_csrf = csrf_of(&html);
    let at = html.find(" target=\"_blank\" rel=\"noopener\">Create one in a new tab</a>").expect("a Create one link");
    let start = html[..at].rfind("href=\"").expect("href") + 6;
    let href = html[start..].split('"').next().unwrap_or_default().to_owned();
    assert_eq!(href, "/t/acme/connections/new?provider=other&connector=warehouse&auth_kind=api_key");
    let form = b.get(&href).await;
    let html = form.text();
    assert_eq!(form.status, StatusCode::OK, "{html}");
    assert!(!html.contains("Choose a provider from the list"), "{html}");
    assert!(html.contains("name=\"connector\" type=\"text\" value=\"warehouse\""), "the connector is filled: {html}");
    assert!(html.contains("Create connection") && html.contains("API key"), "{html}");
    // Submitted as it came, the profile is one the job flow offers for the connector.
    let r = b
        .post(
            "/t/acme/connections",
            &[
                ("csrf", &csrf_of(&html)),
                ("provider", "other"),
                ("auth_kind", "api_key"),
                ("connector", "warehouse"),
                ("name", "Main warehouse"),
                ("api_key", "wh-key-1"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    // Back on the first tab, "look again" redraws the half-filled form: what was typed stays.
    let form = [
        ("csrf", job_csrf.as_str()),
        ("integration", "warehouse-sync"),
        ("name", "Nightly to the warehouse"),
        ("action", "refresh"),
    ];
    let r = b.post("/t/acme/jobs/new", &form).await;
    let html = r.text();
    assert_eq!(r.status, StatusCode::OK, "{html}");
    assert!(html.contains("Main warehouse (connected)"), "{html}");
    assert!(html.contains("value=\"Nightly to the warehouse\""), "the typed name is kept: {html}");
}

/// The first submit button of the form posting to `action` on a page.
fn first_button(html: &str, action: &str) -> String {
    let html = unescaped(html);
    let form = html.find(&format!("action=\"{action}\"")).expect("the form");
    let at = form + html[form..].find("<button").expect("a button");
    html[at..].split('>').next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn enter_in_a_job_form_saves_rather_than_refreshing_the_release() {
    let app = hub_with_admin().await;
    app.tenant("acme").await;
    app.publish("warehouse-sync", WAREHOUSE_SYNC).await;
    let conn = app
        .admin(
            Method::POST,
            "/v1/tenants/acme/connections",
            Some(
                json!({"name": "W", "connector": "warehouse", "auth_kind": "api_key", "credentials": {"api_key": "k"}}),
            ),
        )
        .await
        .json()["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let job = app
        .job("acme", json!({"name": "Stock", "integration": "warehouse-sync", "connections": {"stock": conn}}))
        .await;
    member(&app, "olga@acme.example", &["acme"]).await;
    let mut b = Browser::new(&app.hub);
    b.sign_in("olga@acme.example", PASSWORD).await;
    // A browser's Enter in a text field presses the form's first submit button.
    let html = b.get("/t/acme/jobs/new?integration=warehouse-sync").await.text();
    let first = first_button(&html, "/t/acme/jobs/new");
    assert!(first.contains("value=\"save\""), "{first}");
    let html = b.get(&format!("/t/acme/jobs/{job}/settings")).await.text();
    let first = first_button(&html, &format!("/t/acme/jobs/{job}/settings"));
    assert!(first.contains("value=\"save\""), "{first}");
    // What that button posts creates the job.
    let r = b
        .post(
            "/t/acme/jobs/new",
            &[
                ("csrf", &csrf_of(&html)),
                ("integration", "warehouse-sync"),
                ("form_release", "1"),
                ("release", "default"),
                ("name", "Stock by Enter"),
                ("conn.stock", &conn),
                ("schedule_mode", "none"),
                ("start", "paused"),
                ("action", "save"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let jobs = app.admin(Method::GET, "/v1/tenants/acme/jobs", None).await.json();
    assert!(jobs.to_string().contains("Stock by Enter"), "{jobs}");
}
