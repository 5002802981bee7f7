//! The operator console in a real browser: headless Chromium driven by
//! playwright-core from the scripts in tests/browser/ (console-*.mjs) against
//! `ferry`'s host serving a hub on embedded storage. Each script walks its
//! screens and prints what it saw as one JSON line; screenshots of every screen
//! at 1280 and 390 px go to tests/artifacts/.

use std::time::Duration;

use axum::routing::get;
use axum::{Json, Router};
use ferry::host::{self, Backend};
use ferry_e2e::workspace_root;
use ferry_service::bootstrap::{AdminUserBootstrap, Bootstrap};
use ferry_service::config::{Config, PublicUrl};
use reqwest::Method as M;
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

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

/// A hub on embedded storage served on loopback, with the platform key and
/// the first admin user, for one browser script.
struct Console {
    base: String,
    admin: String,
    http: reqwest::Client,
    stop: oneshot::Sender<()>,
    server: JoinHandle<anyhow::Result<()>>,
    _data: TempDir,
}

impl Console {
    /// `private_network` lets the hub call sources on loopback, as the tests' fake APIs are.
    async fn start(private_network: bool) -> Self {
        let data = tempfile::tempdir().expect("tempdir");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let public_url = Some(PublicUrl::parse(&base).expect("a public URL"));
        let backend = Backend::Embedded { data_dir: data.path().to_path_buf() };
        let mut hub = host::build_hub(&backend, Config { public_url, ..Config::default() }).await.expect("hub");
        hub.settings.allow_private_network = private_network;
        let Bootstrap::Generated(admin) = hub.users().bootstrap(None).await.expect("bootstrap") else {
            panic!("fresh store")
        };
        let made = hub.users().bootstrap_admin_user(Some(ADMIN_EMAIL), Some(ADMIN_PASSWORD)).await.expect("admin user");
        assert!(matches!(made, AdminUserBootstrap::Created { .. }), "{made:?}");
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(host::serve(listener, hub, async move {
            let _ = stopped.await;
        }));
        Console { base, admin, http: reqwest::Client::new(), stop, server, _data: data }
    }

    /// POSTs `body` to the admin API and returns what was created.
    async fn create(&self, path: &str, body: Value) -> Value {
        let (s, v) = call(&self.http, M::POST, format!("{}{path}", self.base), &self.admin, Some(body)).await;
        assert_eq!(s, 201, "POST {path}: {v}");
        v
    }

    async fn get(&self, path: &str) -> Value {
        let (s, v) = call(&self.http, M::GET, format!("{}{path}", self.base), &self.admin, None).await;
        assert_eq!(s, 200, "GET {path}: {v}");
        v
    }

    async fn tenant(&self, id: &str, name: &str) {
        self.create("/v1/tenants", json!({"id": id, "name": name})).await;
    }

    /// The regular user of `acme` the scripts sign in as.
    async fn acme_user(&self) {
        let user = json!({"email": USER_EMAIL, "full_name": "Olga Ops", "password": USER_PASSWORD, "role": "user", "memberships": ["acme"]});
        self.create("/v1/users", user).await;
    }

    async fn publish(&self, integration: &str, manifest: &str) {
        self.create(&format!("/v1/integrations/{integration}/releases"), json!({"manifest": manifest})).await;
    }

    /// Runs tests/browser/`script` against this hub, with both people's
    /// credentials in its environment, and returns the JSON line it printed
    /// (asserting it reported no error).
    async fn browse(&self, script: &str) -> Value {
        self.browse_with(script, &[]).await
    }

    /// As [`Console::browse`], with more variables in the script's environment.
    async fn browse_with(&self, script: &str, vars: &[(&str, &str)]) -> Value {
        std::fs::create_dir_all(artifacts()).expect("artifact dir");
        let profile = tempfile::tempdir().expect("browser profile");
        let browser_dir = workspace_root().join("tests/browser");
        let out = tokio::time::timeout(
            Duration::from_secs(180),
            tokio::process::Command::new("node")
                .arg(browser_dir.join(script))
                .arg(&self.base)
                .arg(artifacts())
                .arg(profile.path())
                .env("FERRY_ADMIN_EMAIL", ADMIN_EMAIL)
                .env("FERRY_ADMIN_PASSWORD", ADMIN_PASSWORD)
                .env("FERRY_USER_EMAIL", USER_EMAIL)
                .env("FERRY_USER_PASSWORD", USER_PASSWORD)
                .envs(vars.iter().copied())
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
        seen
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), self.server).await;
    }
}

fn artifacts() -> std::path::PathBuf {
    workspace_root().join("tests/artifacts")
}

/// The script saw `count` screens, shot each at both widths, none scrolling
/// sideways on a phone, and the pages needed nothing the CSP refuses.
fn assert_screens(seen: &Value, count: usize) {
    assert_eq!(seen["csp_violations"], json!([]), "the pages need nothing the policy refuses: {seen}");
    let screens = seen["screens"].as_array().cloned().unwrap_or_default();
    assert_eq!(screens.len(), count, "{seen}");
    for s in &screens {
        let name = s["name"].as_str().unwrap_or_default();
        for width in ["desktop", "phone"] {
            let shot = artifacts().join(format!("console-{name}-{width}.png"));
            assert!(shot.metadata().map(|m| m.len() > 1000).unwrap_or(false), "{} written", shot.display());
        }
        assert!(s["phone_overflow_px"].as_i64().unwrap_or(1) <= 0, "{name} scrolls sideways at 390 px: {s}");
    }
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
    let hub = Console::start(true).await;
    hub.tenant("acme", "Acme Corp").await;
    hub.tenant("globex", "Globex").await;
    hub.acme_user().await;
    hub.publish("contacts-export", MANIFEST).await;
    let conn = hub
        .create(
            "/v1/tenants/acme/connections",
            json!({"name": "CRM", "connector": "crm", "auth_kind": "none", "settings": {"base_url": crm}}),
        )
        .await;
    let job = json!({"name": "Contacts export", "integration": "contacts-export", "connections": {"crm": conn["id"]}});
    hub.create("/v1/tenants/acme/jobs", job).await;

    let seen = hub.browse("console-flow.mjs").await;

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
    assert_eq!(seen["first_focus"], "Skip to content", "{seen}");
    assert_screens(&seen, 8);

    hub.stop().await;
}

/// The operations screens in a real browser as the platform admin: users
/// (a refused form, then the user), integrations, API keys (a key shown
/// once) and dead letters, at 1280 and 390 px without sideways scroll or CSP
/// violations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_walks_the_operations_screens_in_a_real_browser() {
    if !browser_available() {
        return;
    }
    let hub = Console::start(false).await;
    hub.tenant("acme", "Acme Corp").await;
    hub.tenant("globex", "Globex").await;
    hub.publish("contacts-export", MANIFEST).await;

    let seen = hub.browse("console-ops.mjs").await;
    hub.stop().await;
    assert!(seen["user_page"].as_str().is_some_and(|p| p.starts_with("/admin/users/")), "{seen}");
    assert_eq!(seen["new_key"], "ferry_acme_", "{seen}");
    assert!(seen["dead_letters_text"].as_str().is_some_and(|t| t.contains("No dead letters")), "{seen}");
    assert!(seen["dashboard_text"].as_str().is_some_and(|t| t.contains("Dead letters pending")), "{seen}");
    assert_screens(&seen, 10);
}

/// The connection-profile and mapping screens in a real browser
/// (tests/browser/console-connections.mjs): a profile created from the
/// catalogue with Max Concurrent refused beside its field, its magic link,
/// the disconnect confirmation, and a mapping with a problem on its line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_profiles_and_mappings_are_made_in_a_real_browser() {
    if !browser_available() {
        return;
    }
    let hub = Console::start(false).await;
    hub.tenant("acme", "Acme Corp").await;
    hub.acme_user().await;

    let seen = hub.browse("console-connections.mjs").await;
    assert!(seen["max_error"].as_str().is_some_and(|m| m.contains("1 to 64")), "{seen}");
    assert_eq!(seen["kept_name"], "Stripe live", "{seen}");
    assert!(seen["connection_path"].as_str().is_some_and(|p| p.starts_with("/t/acme/connections/")), "{seen}");
    assert!(seen["link"].as_str().is_some_and(|l| l.starts_with(&format!("{}/connect/ml_", hub.base))), "{seen}");
    let text = seen["connection_text"].as_str().unwrap_or_default();
    assert!(text.contains("Connected") && text.contains("********"), "{seen}");
    assert!(!seen.to_string().contains("sk_test_console_browser_secret"), "the secret is never on a page");
    assert!(seen["line_problems"].as_str().is_some_and(|p| p.contains("Line 2")), "{seen}");
    assert!(seen["mapping_path"].as_str().is_some_and(|p| p.starts_with("/t/acme/mappings/")), "{seen}");
    assert_screens(&seen, 10);
    hub.stop().await;
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
    let hub = Console::start(false).await;
    hub.tenant("acme", "Acme Corp").await;
    hub.acme_user().await;
    hub.publish("shop-sync", SHOP_MANIFEST).await;
    let conn = hub
        .create(
            "/v1/tenants/acme/connections",
            json!({"name": "Main shop", "connector": "shop", "auth_kind": "none", "settings": {"base_url": "https://shop.example"}}),
        )
        .await;

    let seen = hub.browse("console-jobflow.mjs").await;

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
    let job = hub.get(&format!("/v1/tenants/acme/jobs/{job_id}")).await;
    assert_eq!(job["paused"], true, "{job}");
    assert_eq!(job["schedule"], json!({"preset": "daily", "at": "07:30", "timezone": "Europe/Vienna"}), "{job}");
    assert_eq!(job["configs"], json!({"region": "eu", "batch": 25, "dry_run": true, "channels": ["web"]}), "{job}");
    assert_eq!(job["connections"]["shop"], conn["id"], "{job}");
    assert_screens(&seen, 9);
    hub.stop().await;
}

/// The onboarding walk's integration: contacts from a CRM that signs
/// requests with an API key (its base URL, the test's fake CRM, filled in).
const ONBOARDING_MANIFEST: &str = r#"
version: 1.0
name: contacts-export
description: Contacts from the CRM to files.
connectors:
  crm:
    provider: crm
    auth: api_key
    base_url: '{CRM}'
    api_key: {header: X-Api-Key}
    verify: {path: /contacts}
schedule:
  default: {preset: daily, at: '06:00'}
  presets: [hourly, daily]
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

const CRM_KEY: &str = "crm-key-first";
const CRM_NEW_KEY: &str = "crm-key-rotated";

/// A CRM on loopback answering `/contacts` to the key it currently accepts
/// (401 to any other); `POST /_rotate` makes it accept only the new key,
/// as a provider does when a customer rotates their key.
async fn fake_crm() -> String {
    use std::sync::{Arc, Mutex};
    let accepted = Arc::new(Mutex::new(CRM_KEY.to_owned()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let contacts = {
        let accepted = accepted.clone();
        move |headers: axum::http::HeaderMap| {
            let accepted = accepted.lock().map(|k| k.clone()).unwrap_or_default();
            async move {
                let sent = headers.get("x-api-key").and_then(|v| v.to_str().ok()).unwrap_or_default();
                if sent != accepted {
                    return (axum::http::StatusCode::UNAUTHORIZED, Json(json!({"error": "invalid API key"})));
                }
                let items = json!({"items": [{"email": "A@Example.com"}, {"email": "B@Example.com"}, {"email": "C@Example.com"}]});
                (axum::http::StatusCode::OK, Json(items))
            }
        }
    };
    let rotate = move || {
        if let Ok(mut k) = accepted.lock() {
            *k = CRM_NEW_KEY.to_owned();
        }
        async { axum::http::StatusCode::NO_CONTENT }
    };
    let app = Router::new().route("/contacts", get(contacts)).route("/_rotate", axum::routing::post(rotate));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    base
}

/// Issue 20's walk from an empty hub, in a real browser
/// (tests/browser/console-onboarding.mjs): the admin creates a tenant and a
/// user; the user follows the dashboard's checklist to the end (connection
/// profile, mapping, a job created paused with a simple schedule, a manual
/// run that succeeds, resuming it, an API key); then the CRM rotates its
/// key, a run fails, the failure is on the dashboard and in Activity, its
/// error logs say why, and the user fixes the connection and reruns it.
/// Every outcome is checked through the admin API as well. With
/// FERRY_UPDATE_SCREENSHOTS=1 the walk rewrites docs/screenshots/.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_is_onboarded_and_a_failed_run_recovered_in_a_real_browser() {
    if !browser_available() {
        return;
    }
    let crm = fake_crm().await;
    let hub = Console::start(true).await;
    hub.publish("contacts-export", &ONBOARDING_MANIFEST.replace("{CRM}", &crm)).await;
    if std::env::var("FERRY_UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
        std::fs::create_dir_all(workspace_root().join("docs/screenshots")).expect("docs/screenshots");
    }
    let vars = [
        ("FERRY_WALK_TENANT", "acme"),
        ("FERRY_WALK_USER_EMAIL", "olga@acme.example"),
        ("FERRY_WALK_USER_PASSWORD", USER_PASSWORD),
        ("FERRY_WALK_CRM_URL", crm.as_str()),
        ("FERRY_WALK_CRM_KEY", CRM_KEY),
        ("FERRY_WALK_CRM_NEW_KEY", CRM_NEW_KEY),
    ];

    let seen = hub.browse_with("console-onboarding.mjs", &vars).await;

    // The admin: a tenant made on the switcher (a bad id explained, the name kept), then its user.
    assert_eq!(seen["admin_empty"], true, "{seen}");
    assert!(seen["tenant_id_error"].as_str().is_some_and(|e| e.contains("lowercase letters")), "{seen}");
    assert_eq!(seen["tenant_name_kept"], "Acme Corp", "{seen}");
    assert_eq!(seen["tenant_landed"], "/t/acme/", "{seen}");
    assert_eq!(seen["tenant_header"], "Acme Corp", "{seen}");
    assert!(seen["user_page"].as_str().is_some_and(|p| p.starts_with("/admin/users/")), "{seen}");
    let tenant = hub.get("/v1/tenants/acme").await;
    assert_eq!(tenant["name"], "Acme Corp", "{tenant}");
    let users = hub.get("/v1/users").await;
    let olga = users["items"].as_array().into_iter().flatten().find(|u| u["email"] == "olga@acme.example");
    assert_eq!(olga.map(|u| (u["role"].clone(), u["memberships"].clone())), Some((json!("user"), json!(["acme"]))));

    // The user: straight into the tenant, then every step of the checklist.
    assert_eq!((seen["user_landed"].as_str(), seen["user_tenant"].as_str()), (Some("/t/acme/"), Some("Acme Corp")));
    assert!(seen["connection_path"].as_str().is_some_and(|p| p.starts_with("/t/acme/connections/")), "{seen}");
    assert!(seen["mapping_path"].as_str().is_some_and(|p| p.starts_with("/t/acme/mappings/")), "{seen}");
    assert!(seen["preview_text"].as_str().is_some_and(|t| t.contains("daily at")), "{seen}");
    let job_path = seen["job_path"].as_str().unwrap_or_default().to_owned();
    let job_id = job_path.strip_prefix("/t/acme/jobs/").unwrap_or_default().to_owned();
    assert!(!job_id.is_empty() && !job_id.contains('/'), "Enter in the name created the job: {seen}");
    assert!(seen["job_text"].as_str().is_some_and(|t| t.contains("Paused")), "created paused: {seen}");
    assert_eq!(seen["first_run_status"], "succeeded", "{seen}");
    let first_run = seen["first_run_text"].as_str().unwrap_or_default();
    assert!(first_run.contains("contacts") && first_run.contains('3'), "the flow's counters: {first_run}");
    assert!(seen["resumed_text"].as_str().is_some_and(|t| t.contains("Next runs")), "{seen}");
    assert_eq!(seen["new_key_prefix"], "ferry_acme_", "{seen}");
    assert_eq!((seen["checklist_done"].as_u64(), seen["checklist_steps"].as_u64()), (Some(7), Some(7)), "{seen}");
    assert!(seen["onboarded_text"].as_str().is_some_and(|t| t.contains("Every step is done")), "{seen}");

    // The failure: on the dashboard, in Activity filtered to failed runs, in the run's error logs.
    assert_eq!(seen["rotated"], 204, "{seen}");
    assert!(seen["failed_run_status"].as_str().is_some_and(|s| s.starts_with("failed")), "{seen}");
    assert_eq!(seen["failed_card"], "1", "{seen}");
    assert!(seen["activity_url"].as_str().is_some_and(|u| u.contains("status=failed")), "{seen}");
    assert_eq!(seen["activity_status_filter"], "failed", "{seen}");
    let rows = seen["activity_rows"].as_str().unwrap_or_default();
    assert!(rows.contains("Contacts export") && rows.contains("Failed"), "{rows}");
    assert_eq!(rows.lines().filter(|l| l.contains("Contacts export")).count(), 1, "only the failed run: {rows}");
    assert_eq!(seen["opened_failed_run"], seen["failed_run_path"], "{seen}");
    let errors = seen["error_logs"].as_str().unwrap_or_default();
    assert!(errors.contains("HTTP 401") && errors.contains("credentials were refused"), "{errors}");
    assert!(errors.lines().all(|l| l.to_lowercase().contains(" error ")), "only error lines: {errors}");
    // The fix and the rerun.
    let fixed = seen["fixed_connection_text"].as_str().unwrap_or_default();
    assert!(fixed.contains("Connected") && !fixed.contains(CRM_NEW_KEY), "{fixed}");
    assert_eq!(seen["rerun_status"], "succeeded", "{seen}");
    assert!(seen["rerun_text"].as_str().is_some_and(|t| t.contains("Rerun of")), "{seen}");
    assert!(!seen.to_string().contains(CRM_KEY) && !seen.to_string().contains(CRM_NEW_KEY), "keys are write-only");

    // The same through the API: the job is running on its schedule, its three runs.
    let job = hub.get(&format!("/v1/tenants/acme/jobs/{job_id}")).await;
    assert_eq!(job["paused"], false, "{job}");
    assert_eq!(job["schedule"]["preset"], "daily", "{job}");
    let runs = hub.get(&format!("/v1/tenants/acme/jobs/{job_id}/runs")).await;
    let runs = runs["items"].as_array().cloned().unwrap_or_default();
    let statuses: Vec<&str> = runs.iter().filter_map(|r| r["status"].as_str()).collect();
    assert_eq!(statuses.len(), 3, "{runs:?}");
    assert_eq!(statuses[0], "succeeded", "the rerun, newest first: {runs:?}");
    assert!(statuses[1].starts_with("failed"), "{runs:?}");
    assert_eq!(statuses[2], "succeeded", "{runs:?}");
    assert_eq!(runs[0]["rerun_of"], runs[1]["id"], "{runs:?}");
    assert_eq!(runs[0]["counters"]["contacts"]["written"], 3, "{runs:?}");
    let keys = hub.get("/v1/tenants/acme/api-keys").await;
    assert_eq!(keys["items"][0]["name"], "billing system", "{keys}");
    let conns = hub.get("/v1/tenants/acme/connections").await;
    assert_eq!(
        (conns["items"][0]["name"].as_str(), conns["items"][0]["status"].as_str()),
        (Some("Acme CRM"), Some("connected"))
    );
    let maps = hub.get("/v1/tenants/acme/mappings").await;
    assert_eq!(maps["items"][0]["name"], "Contacts", "{maps}");
    assert_screens(&seen, 15);
    hub.stop().await;
}
