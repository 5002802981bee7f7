//! The operator console in a real browser (headless Chromium driven by
//! playwright-core from tests/browser/console-flow.mjs): the admin signs in and
//! sees every tenant; a user of one tenant signs in, lands on its dashboard,
//! runs a job from its page and sees the run succeed with its counters.
//! Screenshots of every screen at 1280 and 390 px go to tests/artifacts/.

use std::time::Duration;

use axum::routing::get;
use axum::{Json, Router};
use ferry::host::{self, Backend};
use ferry_e2e::workspace_root;
use ferry_service::bootstrap::{AdminUserBootstrap, Bootstrap};
use ferry_service::config::{Config, PublicUrl};
use reqwest::Method as M;
use serde_json::{json, Value};

use super::call;

const ADMIN_EMAIL: &str = "admin@ferry.example";
const ADMIN_PASSWORD: &str = "a long admin passphrase";
const USER_EMAIL: &str = "ops@acme.example";
const USER_PASSWORD: &str = "a long user passphrase";

const MANIFEST: &str = r#"
version: 1.0
name: contacts-export
connectors:
  crm: {provider: crm, auth: none}
flows:
  - name: contacts
    source:
      type: http
      connector: crm
      request: {path: /contacts}
      records: items
    mapping:
      fields:
        email: '{{ record.email | lower }}'
    target: {type: file, format: jsonl, path: 'exports/{{ run.id }}.jsonl'}
"#;

/// Whether the browser can run here; tests/run installs it and sets FERRY_REQUIRE_BROWSER=1.
fn browser_available() -> bool {
    let ready = std::path::Path::new("/usr/bin/chromium").exists()
        && workspace_root().join("tests/browser/node_modules/playwright-core").exists();
    if !ready {
        assert!(
            std::env::var("FERRY_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "FERRY_REQUIRE_BROWSER=1 but Chromium or tests/browser/node_modules is missing: run ./tests/run"
        );
        eprintln!("skipping: no Chromium or playwright-core (run ./tests/run)");
    }
    ready
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_signs_in_runs_a_job_and_sees_it_succeed_in_a_real_browser() {
    if !browser_available() {
        return;
    }
    let crm = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let app = Router::new().route(
            "/contacts",
            get(|| async {
                Json(json!({"items": [{"email": "A@Example.com"}, {"email": "B@Example.com"}, {"email": "C@Example.com"}]}))
            }),
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        base
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let public_url = Some(PublicUrl::parse(&base).expect("a public URL"));
    let backend = Backend::Embedded { data_dir: dir.path().to_path_buf() };
    let mut hub = host::build_hub(&backend, Config { public_url, ..Config::default() }).await.expect("hub");
    hub.settings.allow_private_network = true;
    let Bootstrap::Generated(admin) = hub.users().bootstrap(None).await.expect("bootstrap") else {
        panic!("fresh store")
    };
    let made = hub.users().bootstrap_admin_user(Some(ADMIN_EMAIL), Some(ADMIN_PASSWORD)).await.expect("admin user");
    assert!(matches!(made, AdminUserBootstrap::Created { .. }), "{made:?}");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(host::serve(listener, hub, async move {
        let _ = stopped.await;
    }));

    let c = reqwest::Client::new();
    for (id, name) in [("acme", "Acme Corp"), ("globex", "Globex")] {
        let (s, v) =
            call(&c, M::POST, format!("{base}/v1/tenants"), &admin, Some(json!({"id": id, "name": name}))).await;
        assert_eq!(s, 201, "{v}");
    }
    let (s, v) = call(
        &c,
        M::POST,
        format!("{base}/v1/users"),
        &admin,
        Some(json!({"email": USER_EMAIL, "full_name": "Olga Ops", "password": USER_PASSWORD, "role": "user", "memberships": ["acme"]})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = call(
        &c,
        M::POST,
        format!("{base}/v1/integrations/contacts-export/releases"),
        &admin,
        Some(json!({"manifest": MANIFEST})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (s, conn) = call(
        &c,
        M::POST,
        format!("{base}/v1/tenants/acme/connections"),
        &admin,
        Some(json!({"name": "CRM", "connector": "crm", "auth_kind": "none", "settings": {"base_url": crm}})),
    )
    .await;
    assert_eq!(s, 201, "{conn}");
    let (s, job) = call(
        &c,
        M::POST,
        format!("{base}/v1/tenants/acme/jobs"),
        &admin,
        Some(json!({"name": "Contacts export", "integration": "contacts-export", "connections": {"crm": conn["id"]}})),
    )
    .await;
    assert_eq!(s, 201, "{job}");

    let artifacts = workspace_root().join("tests/artifacts");
    std::fs::create_dir_all(&artifacts).expect("artifact dir");
    let profile = tempfile::tempdir().expect("browser profile");
    let browser_dir = workspace_root().join("tests/browser");
    let out = tokio::time::timeout(
        Duration::from_secs(180),
        tokio::process::Command::new("node")
            .arg(browser_dir.join("console-flow.mjs"))
            .arg(&base)
            .arg(&artifacts)
            .arg(profile.path())
            .env("FERRY_ADMIN_EMAIL", ADMIN_EMAIL)
            .env("FERRY_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("FERRY_USER_EMAIL", USER_EMAIL)
            .env("FERRY_USER_PASSWORD", USER_PASSWORD)
            .current_dir(&browser_dir)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser finished within three minutes")
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let seen: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no result from the browser script\nstdout: {stdout}\nstderr: {stderr}"));
    assert!(seen["error"].is_null(), "browser: {seen}\nstderr: {stderr}");

    assert_eq!(seen["admin_landed"], "/tenants", "an admin picks a tenant: {seen}");
    let admin_tenants = seen["admin_tenants"].to_string();
    assert!(admin_tenants.contains("Acme Corp") && admin_tenants.contains("Globex"), "{seen}");
    assert!(seen["user_landed"].as_str().is_some_and(|p| p.starts_with("/t/acme/")), "{seen}");
    assert_eq!(seen["user_tenant"], "Acme Corp", "{seen}");
    assert_eq!(seen["run_status"], "succeeded", "{seen}");
    assert!(seen["run_path"].as_str().is_some_and(|p| p.contains("/runs/")), "{seen}");
    let run_text = seen["run_text"].as_str().unwrap_or_default();
    assert!(run_text.contains("contacts") && run_text.contains('3'), "counters of the flow: {run_text}");
    assert!(!seen["dashboard_text"].as_str().unwrap_or_default().contains("No runs yet"), "{seen}");
    assert_eq!(seen["csp_violations"], json!([]), "the pages need nothing the policy refuses: {seen}");
    assert_eq!(seen["first_focus"], "Skip to content", "{seen}");
    let screens = seen["screens"].as_array().cloned().unwrap_or_default();
    assert_eq!(screens.len(), 8, "{seen}");
    for s in &screens {
        let name = s["name"].as_str().unwrap_or_default();
        for width in ["desktop", "phone"] {
            let shot = artifacts.join(format!("console-{name}-{width}.png"));
            assert!(shot.metadata().map(|m| m.len() > 1000).unwrap_or(false), "{} written", shot.display());
        }
        assert!(s["phone_overflow_px"].as_i64().unwrap_or(1) <= 0, "{name} scrolls sideways at 390 px: {s}");
    }

    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
}

const SHOP_MANIFEST: &str = r#"
version: 1.0
name: shop-sync
description: Orders from the shop to files.
connectors:
  shop:
    provider: shop
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
      dry_run: {type: boolean}
      channels: {type: array, items: {type: string, enum: [web, pos, app]}}
      owner: {type: string, $ref: '#/definitions/owners'}
  uischema:
    type: VerticalLayout
    elements:
      - {type: Control, scope: '#/properties/region', label: Region}
      - {type: Control, scope: '#/properties/batch', label: Batch size}
      - {type: Control, scope: '#/properties/dry_run', label: Dry run}
      - {type: MultiSelectControl, scope: '#/properties/channels', label: Sales channels}
      - {type: Control, scope: '#/properties/owner', label: Owner}
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_creates_a_job_through_the_creation_flow_in_a_real_browser() {
    if !browser_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let public_url = Some(PublicUrl::parse(&base).expect("a public URL"));
    let backend = Backend::Embedded { data_dir: dir.path().to_path_buf() };
    let hub = host::build_hub(&backend, Config { public_url, ..Config::default() }).await.expect("hub");
    let Bootstrap::Generated(admin) = hub.users().bootstrap(None).await.expect("bootstrap") else {
        panic!("fresh store")
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(host::serve(listener, hub, async move {
        let _ = stopped.await;
    }));
    let c = reqwest::Client::new();
    let (s, v) =
        call(&c, M::POST, format!("{base}/v1/tenants"), &admin, Some(json!({"id": "acme", "name": "Acme Corp"}))).await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = call(
        &c,
        M::POST,
        format!("{base}/v1/users"),
        &admin,
        Some(json!({"email": USER_EMAIL, "full_name": "Olga Ops", "password": USER_PASSWORD, "role": "user", "memberships": ["acme"]})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = call(
        &c,
        M::POST,
        format!("{base}/v1/integrations/shop-sync/releases"),
        &admin,
        Some(json!({"manifest": SHOP_MANIFEST})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (s, conn) = call(
        &c,
        M::POST,
        format!("{base}/v1/tenants/acme/connections"),
        &admin,
        Some(json!({"name": "Main shop", "connector": "shop", "auth_kind": "none", "settings": {"base_url": "https://shop.example"}})),
    )
    .await;
    assert_eq!(s, 201, "{conn}");

    let artifacts = workspace_root().join("tests/artifacts");
    std::fs::create_dir_all(&artifacts).expect("artifact dir");
    let profile = tempfile::tempdir().expect("browser profile");
    let browser_dir = workspace_root().join("tests/browser");
    let out = tokio::time::timeout(
        Duration::from_secs(180),
        tokio::process::Command::new("node")
            .arg(browser_dir.join("console-jobflow.mjs"))
            .arg(&base)
            .arg(&artifacts)
            .arg(profile.path())
            .env("FERRY_USER_EMAIL", USER_EMAIL)
            .env("FERRY_USER_PASSWORD", USER_PASSWORD)
            .current_dir(&browser_dir)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser finished within three minutes")
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let seen: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no result from the browser script\nstdout: {stdout}\nstderr: {stderr}"));
    assert!(seen["error"].is_null(), "browser: {seen}\nstderr: {stderr}");

    let preview = seen["preview_text"].as_str().unwrap_or_default();
    assert!(
        preview.contains("daily at 07:30") && preview.contains("Europe/Vienna") && preview.matches("UTC").count() == 5,
        "{seen}"
    );
    assert!(seen["name_error"].as_str().is_some_and(|e| e.contains("name")), "{seen}");
    assert_eq!(seen["batch_kept"], "25", "what was typed survives the refusal: {seen}");
    let job_path = seen["job_path"].as_str().unwrap_or_default().to_owned();
    let job_id = job_path.rsplit('/').next().unwrap_or_default();
    assert!(job_path.starts_with("/t/acme/jobs/") && !job_id.is_empty(), "{seen}");
    assert!(seen["job_text"].as_str().is_some_and(|t| t.contains("Shop orders") && t.contains("Paused")), "{seen}");
    assert!(seen["webhook_text"].as_str().is_some_and(|t| t.contains("not shown again")), "{seen}");
    let (s, job) = call(&c, M::GET, format!("{base}/v1/tenants/acme/jobs/{job_id}"), &admin, None).await;
    assert_eq!(s, 200, "{job}");
    assert_eq!(job["paused"], true, "{job}");
    assert_eq!(job["schedule"], json!({"preset": "daily", "at": "07:30", "timezone": "Europe/Vienna"}), "{job}");
    assert_eq!(job["configs"], json!({"region": "eu", "batch": 25, "dry_run": true, "channels": ["web"]}), "{job}");
    assert_eq!(job["connections"]["shop"], conn["id"], "{job}");
    assert_eq!(seen["csp_violations"], json!([]), "{seen}");
    let screens = seen["screens"].as_array().cloned().unwrap_or_default();
    assert_eq!(screens.len(), 9, "{seen}");
    for s in &screens {
        let name = s["name"].as_str().unwrap_or_default();
        for width in ["desktop", "phone"] {
            let shot = artifacts.join(format!("console-{name}-{width}.png"));
            assert!(shot.metadata().map(|m| m.len() > 1000).unwrap_or(false), "{} written", shot.display());
        }
        assert!(s["phone_overflow_px"].as_i64().unwrap_or(1) <= 0, "{name} scrolls sideways at 390 px: {s}");
    }
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
}
