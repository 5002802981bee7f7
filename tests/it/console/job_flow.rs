//! Creating a job through the console's forms (Pandium's creation flow) and
//! the rest of a job's page: settings and version, sync schedule, connector
//! info, the webhook secret. Every outcome is checked through the API.

use axum::http::{Method, StatusCode};
use serde_json::json;

use super::{csrf_of, hub_with_admin, location, member, Browser, ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD};
use crate::support::app::{Response, TestApp};

const SHOP_SYNC: &str = r#"
version: 1.0
name: shop-sync
description: Orders from the shop to files.
connectors:
  shop:
    provider: itemsource
    auth: none
    description: The customer's shop.
    setup: Create an API user under Settings, then paste its key.
  crm: {provider: hubspot, auth: oauth2, required: false}
configs:
  schema:
    type: object
    required: [region, batch]
    definitions:
      owners: {type: string}
    properties:
      region: {type: string, enum: [eu, us], description: Where the shop keeps its data.}
      batch: {type: integer, min: 1, max: 100}
      ratio: {type: number}
      dry_run: {type: boolean}
      channels: {type: array, items: {type: string, enum: [web, pos, app]}}
      note: {type: string}
      owner: {type: string, $ref: '#/definitions/owners'}
      internal_limit: {type: integer}
  uischema:
    type: VerticalLayout
    elements:
      - {type: Control, scope: '#/properties/region', label: Region}
      - {type: Control, scope: '#/properties/batch', label: Batch size}
      - {type: Control, scope: '#/properties/ratio', label: Sample ratio}
      - {type: Control, scope: '#/properties/dry_run', label: Dry run}
      - {type: MultiSelectControl, scope: '#/properties/channels', label: Sales channels}
      - {type: Control, scope: '#/properties/note', label: Note}
      - {type: Control, scope: '#/properties/owner', label: Owner}
      - {type: Control, scope: '#/properties/internal_limit', label: Internal limit, admin: true}
schedule:
  default: {preset: daily, at: '06:00'}
  presets: [hourly, daily, weekly]
flows:
  - name: owners
    triggers: [init]
    source: {type: http, connector: shop, request: {path: /owners}, records: owners}
    target: {type: options, definition: owners, value: '{{ record.id }}'}
  - name: orders
    source: {type: http, connector: shop, request: {path: /orders}, records: orders}
    target: {type: file, format: jsonl, path: 'orders/{{ run.id }}.jsonl'}
  - name: pushed
    triggers: [webhook]
    source: {type: webhook, records: orders}
    target: {type: file, format: jsonl, path: 'pushed/{{ run.id }}.jsonl'}
webhooks:
  verify: {type: standard_webhooks}
  flow: pushed
"#;

/// Tenant acme, shop-sync published twice, a shop connection profile, and
/// a browser signed in to acme as `who` (a user of acme, or the admin).
async fn world(admin: bool) -> (TestApp, Browser, String) {
    let app = hub_with_admin().await;
    app.tenant("acme").await;
    app.publish("shop-sync", SHOP_SYNC).await;
    app.publish("shop-sync", &SHOP_SYNC.replace("Orders from the shop to files.", "Orders, second release.")).await;
    let body = json!({"name": "Main shop", "connector": "itemsource", "auth_kind": "none", "settings": {"base_url": "https://shop.example"}});
    let r = app.admin(Method::POST, "/v1/tenants/acme/connections", Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let conn = r.json()["id"].as_str().expect("id").to_owned();
    let mut b = Browser::new(&app.hub);
    if admin {
        b.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
        let csrf = b.csrf().await;
        b.post("/tenants/switch", &[("csrf", &csrf), ("tenant", "acme")]).await;
    } else {
        member(&app, "olga@acme.example", &["acme"]).await;
        b.sign_in("olga@acme.example", PASSWORD).await;
    }
    (app, b, conn)
}

/// The creation form of shop-sync, and its CSRF token.
async fn open_form(b: &mut Browser) -> (String, String) {
    let r = b.get("/t/acme/jobs/new?integration=shop-sync").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let html = r.text();
    let csrf = csrf_of(&html);
    (html, csrf)
}

/// A complete, valid creation form; tests change what they need.
fn filled<'a>(csrf: &'a str, conn: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("csrf", csrf),
        ("integration", "shop-sync"),
        ("form_release", "1"),
        ("release", "default"),
        ("name", "Orders"),
        ("conn.shop", conn),
        ("conn.crm", ""),
        ("cfg.region", "eu"),
        ("cfg.batch", "10"),
        ("cfg.ratio", ""),
        ("cfg.channels", "web"),
        ("cfg.channels", "pos"),
        ("cfg.dry_run", "true"),
        ("cfg.note", ""),
        ("schedule_mode", "simple"),
        ("preset", "weekly"),
        ("at", "07:30"),
        ("day", "friday"),
        ("timezone", "Europe/Vienna"),
        ("cron", ""),
        ("cron_timezone", ""),
        ("start", "paused"),
        ("action", "save"),
    ]
}

fn with<'a>(mut form: Vec<(&'a str, &'a str)>, key: &'a str, value: &'a str) -> Vec<(&'a str, &'a str)> {
    form.retain(|(k, _)| *k != key);
    form.push((key, value));
    form
}

async fn job_json(app: &TestApp, id: &str) -> serde_json::Value {
    let r = app.admin(Method::GET, &format!("/v1/tenants/acme/jobs/{id}"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()
}

fn created(r: &Response) -> String {
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let to = location(r);
    to.strip_prefix("/t/acme/jobs/").expect("the new job's page").to_owned()
}

#[tokio::test]
async fn a_user_creates_a_paused_job_with_a_simple_schedule_through_the_forms() {
    let (app, mut b, conn) = world(false).await;
    // From the jobs list to the integration step, then the form of the chosen integration.
    assert!(b.get("/t/acme/jobs").await.text().contains("href=\"/t/acme/jobs/new\""));
    let step1 = b.get("/t/acme/jobs/new").await.text();
    assert!(step1.contains("value=\"shop-sync\""), "{step1}");
    let (html, csrf) = open_form(&mut b).await;
    // The manifest's default schedule is filled in and described with its next runs.
    assert!(html.contains("Runs daily at 06:00"), "{html}");
    assert_eq!(html.matches("UTC</li>").count(), 5, "five next fire times");
    // Only the presets the manifest offers.
    assert!(html.contains("value=\"weekly\"") && !html.contains("value=\"every_5_minutes\""));

    let r = b.post("/t/acme/jobs/new", &filled(&csrf, &conn)).await;
    let id = created(&r);
    let job = job_json(&app, &id).await;
    assert_eq!(job["name"], "Orders");
    assert_eq!(job["paused"], true);
    assert_eq!(job["release"], json!({"kind": "channel", "channel": "default"}));
    assert_eq!(job["connections"], json!({"shop": conn}));
    assert_eq!(job["configs"], json!({"region": "eu", "batch": 10, "channels": ["web", "pos"], "dry_run": true}));
    assert_eq!(
        job["schedule"],
        json!({"preset": "weekly", "at": "07:30", "day": "friday", "timezone": "Europe/Vienna"})
    );
    // The job's page shows it paused with its schedule in words.
    let page = b.get(&location(&r)).await.text();
    assert!(page.contains("Paused") && page.contains("weekly on Friday at 07:30"), "{page}");
}

#[tokio::test]
async fn an_advanced_schedule_is_previewed_in_words_with_five_runs_and_saved() {
    let (app, mut b, conn) = world(false).await;
    let (_, csrf) = open_form(&mut b).await;
    let form = filled(&csrf, &conn);
    let form = with(form, "schedule_mode", "advanced");
    let form = with(form, "cron", "15 6 * * 1-5");
    let form = with(form, "cron_timezone", "Europe/Vienna");
    let form = with(form, "release", "latest");
    let form = with(form, "start", "running");
    let r = b.post("/t/acme/jobs/new", &with(form.clone(), "action", "preview")).await;
    assert_eq!(r.status, StatusCode::OK);
    let html = r.text();
    assert!(html.contains("Europe/Vienna") && html.contains("Next five runs"), "{html}");
    assert_eq!(html.matches("UTC</li>").count(), 5);
    // The preview kept every value typed.
    assert!(html.contains("value=\"15 6 * * 1-5\"") && html.contains("value=\"Orders\""));
    assert!(html.contains("id=\"sched-advanced\" name=\"schedule_mode\" value=\"advanced\" checked"));
    let id = created(&b.post("/t/acme/jobs/new", &form).await);
    let job = job_json(&app, &id).await;
    assert_eq!(job["schedule"], json!({"cron": "15 6 * * 1-5", "timezone": "Europe/Vienna"}));
    assert_eq!(job["paused"], false);
    assert_eq!(job["release"], json!({"kind": "channel", "channel": "latest"}));
    assert_eq!(job["next_runs"].as_array().map(Vec::len), Some(5));
}

#[tokio::test]
async fn refusals_appear_beside_their_fields_and_keep_what_was_typed() {
    let (app, mut b, conn) = world(false).await;
    let (_, csrf) = open_form(&mut b).await;
    // Not a number, and a cron that is not one: both beside their fields.
    let form = with(filled(&csrf, &conn), "cfg.batch", "ten");
    let form = with(form, "cfg.note", "keep this note");
    let form = with(form, "schedule_mode", "advanced");
    let form = with(form, "cron", "61 * * * *");
    let r = b.post("/t/acme/jobs/new", &form).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let html = r.text();
    assert!(html.contains("id=\"cfg-batch-error\">“Batch size” must be a whole number"), "{html}");
    assert!(html.contains("id=\"schedule-error\" role=\"alert\">invalid cron"), "{html}");
    assert!(html.contains("value=\"ten\"") && html.contains("value=\"keep this note\""), "input kept");
    assert!(html.contains("value=\"61 * * * *\"") && html.contains("value=\"Orders\""));
    assert!(html.contains("value=\"web\" checked") && html.contains("value=\"pos\" checked"));

    // The service's refusals: a value past the schema's maximum, a missing required config.
    let form = with(filled(&csrf, &conn), "cfg.batch", "500");
    let r = b.post("/t/acme/jobs/new", &form).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let html = r.text();
    assert!(html.contains("id=\"cfg-batch-error\""), "{html}");
    assert!(html.contains("value=\"500\""));
    let form = with(filled(&csrf, &conn), "cfg.region", "");
    let html = b.post("/t/acme/jobs/new", &form).await.text();
    assert!(html.contains("id=\"cfg-region-error\">This setting is required."), "{html}");
    // A required connector left unbound, and a name already taken.
    let html = b.post("/t/acme/jobs/new", &with(filled(&csrf, &conn), "conn.shop", "")).await.text();
    assert!(html.contains("id=\"conn-shop-error\""), "{html}");
    created(&b.post("/t/acme/jobs/new", &filled(&csrf, &conn)).await);
    let r = b.post("/t/acme/jobs/new", &with(filled(&csrf, &conn), "name", "orders")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.text().contains("id=\"name-error\">tenant &#x27;acme&#x27; already has a job named &#x27;orders&#x27;"),
        "{}",
        r.text()
    );
    // Nothing but the one job was created.
    let jobs = app.admin(Method::GET, "/v1/tenants/acme/jobs", None).await.json();
    assert_eq!(jobs["items"].as_array().map(Vec::len), Some(1), "{jobs}");
}

#[tokio::test]
async fn config_fields_are_rendered_by_their_schema_types() {
    let (_app, mut b, _) = world(false).await;
    let (html, _) = open_form(&mut b).await;
    // Labels from the uischema, descriptions from the schema, bound to their inputs.
    assert!(html.contains("<label for=\"cfg-region\">Region"), "{html}");
    assert!(html.contains("Where the shop keeps its data."));
    // enum → select; integer with bounds → number; number; boolean → checkbox; array of enum → checkboxes.
    assert!(html.contains("<select id=\"cfg-region\" name=\"cfg.region\""));
    assert!(html.contains("<option value=\"eu\"") && html.contains("<option value=\"us\""));
    assert!(
        html.contains(
            "name=\"cfg.batch\" value=\"\" type=\"number\" step=\"1\" inputmode=\"numeric\" min=\"1\" max=\"100\""
        ),
        "{html}"
    );
    assert!(html.contains("name=\"cfg.ratio\" value=\"\" type=\"number\" step=\"any\""));
    assert!(html.contains("type=\"checkbox\" id=\"cfg-dry_run\" name=\"cfg.dry_run\" value=\"true\""));
    for c in ["web", "pos", "app"] {
        assert!(html.contains(&format!("name=\"cfg.channels\" value=\"{c}\"")), "{c}");
    }
    assert!(html.contains("<legend>Sales channels"));
    assert!(html.contains("name=\"cfg.note\" value=\"\" type=\"text\""));
    // A dynamic config has no options before the init run: shown, disabled, saying so.
    assert!(html.contains("name=\"cfg.owner\" value=\"\" type=\"text\" disabled"), "{html}");
    assert!(html.contains("Available after the init run"));
    // The connectors: the shop's profile to choose, OAuth's magic link explained, a link to create one.
    assert!(html.contains("Main shop (connected)"), "{html}");
    assert!(html.contains("signs in with OAuth") && html.contains("magic link"));
    assert!(html.contains("connections&#x2f;new?provider=hubspot\""), "{html}");
    // Release: both channels and each release.
    assert!(html.contains("Default channel (release 1 now)") && html.contains("Latest channel (release 2 now)"));
    assert!(html.contains("<option value=\"2\"") && html.contains("<option value=\"1\""));
}

#[tokio::test]
async fn admin_only_controls_are_shown_to_platform_admins_and_kept_when_users_save() {
    let (app, mut user, conn) = world(false).await;
    let (html, _) = open_form(&mut user).await;
    assert!(!html.contains("cfg.internal_limit") && !html.contains("Internal limit"), "hidden from a user");
    let mut admin = Browser::new(&app.hub);
    admin.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let csrf = admin.csrf().await;
    admin.post("/tenants/switch", &[("csrf", &csrf), ("tenant", "acme")]).await;
    let (html, _) = open_form(&mut admin).await;
    assert!(html.contains("name=\"cfg.internal_limit\""), "shown to a platform admin");
    assert!(html.contains("Admins only"));

    // The admin sets it; a user changing the settings leaves it as it is.
    let id = app
        .job("acme", json!({"name": "Orders", "integration": "shop-sync", "connections": {"shop": conn}, "configs": {"region": "eu", "batch": 5, "internal_limit": 7}}))
        .await;
    let page = user.get(&format!("/t/acme/jobs/{id}/settings")).await;
    assert_eq!(page.status, StatusCode::OK);
    let csrf = csrf_of(&page.text());
    let r = user
        .post(
            &format!("/t/acme/jobs/{id}/settings"),
            &[("csrf", &csrf), ("form_release", "1"), ("release", "2"), ("cfg.region", "us"), ("cfg.batch", "6")],
        )
        .await;
    assert_eq!((r.status, location(&r)), (StatusCode::SEE_OTHER, format!("/t/acme/jobs/{id}")), "{}", r.text());
    let job = job_json(&app, &id).await;
    assert_eq!(job["configs"]["internal_limit"], 7, "{job}");
    assert_eq!(job["configs"]["region"], "us");
    assert_eq!(job["release"], json!({"kind": "specific", "number": 2}));
    let page = user.get(&format!("/t/acme/jobs/{id}")).await.text();
    assert!(page.contains("release 2"), "the Version heading shows the specific release");
}

#[tokio::test]
async fn settings_refusals_are_shown_beside_the_config_and_change_nothing() {
    let (app, mut b, conn) = world(false).await;
    let id = app
        .job("acme", json!({"name": "Orders", "integration": "shop-sync", "connections": {"shop": conn}, "configs": {"region": "eu", "batch": 5}}))
        .await;
    let page = b.get(&format!("/t/acme/jobs/{id}/settings")).await.text();
    assert!(page.contains("<option value=\"default\" selected>"), "{page}");
    assert!(page.contains("value=\"5\""), "current values filled in");
    assert!(page.contains("Run the init run now"), "a way to get the dynamic options");
    let csrf = csrf_of(&page);
    let r = b
        .post(
            &format!("/t/acme/jobs/{id}/settings"),
            &[("csrf", &csrf), ("form_release", "1"), ("release", "default"), ("cfg.region", "eu"), ("cfg.batch", "0")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("id=\"cfg-batch-error\""), "{}", r.text());
    assert!(r.text().contains("value=\"0\""));
    assert_eq!(job_json(&app, &id).await["configs"]["batch"], 5);
}

#[tokio::test]
async fn the_schedule_page_previews_saves_and_removes_the_schedule() {
    let (app, mut b, conn) = world(false).await;
    let id = app
        .job("acme", json!({"name": "Orders", "integration": "shop-sync", "connections": {"shop": conn}, "configs": {"region": "eu", "batch": 5}}))
        .await;
    let path = format!("/t/acme/jobs/{id}/schedule");
    let page = b.get(&path).await.text();
    assert!(page.contains("Runs daily at 06:00"), "{page}");
    let csrf = csrf_of(&page);
    // A preset the manifest does not offer is the service's refusal, beside the schedule.
    let r = b.post(&path, &[("csrf", &csrf), ("schedule_mode", "simple"), ("preset", "every_5_minutes")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.text().contains("id=\"schedule-error\" role=\"alert\">preset `every_5_minutes` is not offered"),
        "{}",
        r.text()
    );
    let r = b
        .post(&path, &[("csrf", &csrf), ("schedule_mode", "simple"), ("preset", "hourly"), ("action", "preview")])
        .await;
    assert!(r.text().contains("Runs every hour"), "{}", r.text());
    let r = b.post(&path, &[("csrf", &csrf), ("schedule_mode", "simple"), ("preset", "hourly")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(job_json(&app, &id).await["schedule"], json!({"preset": "hourly"}));
    let r = b.post(&path, &[("csrf", &csrf), ("schedule_mode", "none")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(job_json(&app, &id).await["schedule"], serde_json::Value::Null);
}

#[tokio::test]
async fn connector_info_and_the_webhook_secret_masked_rotated_with_confirmation_and_shown_once() {
    let (app, mut b, conn) = world(false).await;
    let id = app
        .job("acme", json!({"name": "Orders", "integration": "shop-sync", "connections": {"shop": conn}, "configs": {"region": "eu", "batch": 5}}))
        .await;
    let job_path = format!("/t/acme/jobs/{id}");
    let page = b.get(&job_path).await.text();
    // Info for the connector that has some; a disabled button for the one without.
    assert!(page.contains("/connectors#connector-shop\">Info"), "{page}");
    assert!(page.contains(
        "<button type=\"button\" class=\"info-button\" disabled>Info<span class=\"sr-only\"> (none for crm)"
    ));
    let info = b.get(&format!("{job_path}/connectors")).await.text();
    assert!(info.contains("Create an API user under Settings"), "{info}");
    // The webhook: enabled here, the secret shown once.
    assert!(page.contains("Enable the webhook"));
    let csrf = csrf_of(&page);
    let r = b.post(&format!("{job_path}/webhook"), &[("csrf", &csrf)]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let first = secret_on(&r.text());
    assert!(first.starts_with("whsec_"), "{first}");
    let page = b.get(&job_path).await.text();
    assert!(!page.contains(&first) && !page.contains(&first.replace('/', "&#x2f;")), "the job page masks the secret");
    assert!(page.contains("••••••••") && page.contains("hooks&#x2f;"), "{page}");
    // Rotating needs the confirmation; without it nothing changes.
    let r = b.post(&format!("{job_path}/webhook"), &[("csrf", &csrf)]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("id=\"wh-confirm-error\""), "{}", r.text());
    assert!(!r.text().contains(&first));
    let api = app.admin(Method::GET, &format!("/v1/tenants/acme/jobs/{id}/connector-info"), None).await.json();
    assert_eq!(api["webhook"]["secret"], first.as_str());
    let r = b.post(&format!("{job_path}/webhook"), &[("csrf", &csrf), ("confirm", "yes")]).await;
    assert_eq!(r.status, StatusCode::OK);
    let second = secret_on(&r.text());
    assert_ne!(first, second);
    let api = app.admin(Method::GET, &format!("/v1/tenants/acme/jobs/{id}/connector-info"), None).await.json();
    assert_eq!(api["webhook"]["secret"], second.as_str());
    assert!(!b.get(&job_path).await.text().contains(&second));
}

fn secret_on(html: &str) -> String {
    let marker = "data-testid=\"webhook-secret\">";
    let start = html.find(marker).map(|i| i + marker.len()).expect("the secret, shown once");
    let shown = html[start..].split('<').next().unwrap_or_default();
    shown
        .replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}
