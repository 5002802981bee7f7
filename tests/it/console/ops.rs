//! The operations screens: users (platform admins), the tenant's API keys,
//! integrations and their releases, and dead letters (the list, bulk replay
//! and discard, a run's dead letters, the dashboard's count), on SQLite and,
//! for what reads dead letters by run, on DynamoDB too.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use ferry_core::ports::Store;
use ferry_service::Hub;
use serde_json::{json, Value};

use super::{csrf_of, hub_with_admin, location, member, Browser, ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD};
use crate::support::app::TestApp;
use crate::support::jobs::serve;
use crate::support::manifests::CRM_SYNC;

/// An admin browser scoped to `tenant`.
async fn admin_in(app: &TestApp, tenant: &str) -> (Browser, String) {
    let mut b = Browser::new(&app.hub);
    b.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let csrf = b.csrf().await;
    let r = b.post("/tenants/switch", &[("csrf", &csrf), ("tenant", tenant)]).await;
    assert_eq!(location(&r), format!("/t/{tenant}/"));
    (b, csrf)
}

/// A path as the templates write it into an attribute (minijinja escapes `/`).
fn esc(path: &str) -> String {
    path.replace('/', "&#x2f;")
}

async fn user_json(app: &TestApp, id: &str) -> Value {
    app.admin(Method::GET, &format!("/v1/users/{id}"), None).await.json()
}

#[tokio::test]
async fn a_platform_admin_creates_a_user_assigns_tenants_changes_the_role_and_deactivates_it() {
    let app = hub_with_admin().await;
    app.tenant("acme").await;
    app.tenant("globex").await;
    let (mut b, csrf) = admin_in(&app, "acme").await;
    let html = b.get("/admin/users").await.text();
    assert!(html.contains(ADMIN_EMAIL) && html.contains("New user"), "{html}");
    assert!(b.get("/t/acme/").await.text().contains("href=\"/admin/users\""), "the header links the users");
    let nav = html.split("<nav aria-label=\"Platform\">").nth(1).and_then(|n| n.split("</nav>").next());
    let nav = nav.unwrap_or_default();
    assert!(nav.contains("<a href=\"/t/acme/\">Back to workspace</a>"), "the way back to the session's tenant: {nav}");
    assert!(nav.contains("aria-current=\"page\">Users</a>") && nav.contains(">Tenants</a>"), "{nav}");

    // A refused form comes back with the problem beside its field and the input kept (not the password).
    let form = |email: &'static str, password: &'static str, tenants: &'static str| {
        vec![
            ("email", email),
            ("full_name", "Olga Ops"),
            ("role", "user"),
            ("memberships", tenants),
            ("password", password),
        ]
    };
    let mut f = form("olga@acme.example", "short", "acme");
    f.push(("csrf", &csrf));
    let r = b.post("/admin/users", &f).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let html = r.text();
    assert!(html.contains("id=\"password-error\"") && html.contains("8 to"), "{html}");
    assert!(html.contains("value=\"olga@acme.example\"") && html.contains("value=\"Olga Ops\""), "input kept");
    assert!(!html.contains("value=\"short\""), "a password is never sent back");
    let mut f = form("olga@acme.example", PASSWORD, "acme, initech");
    f.push(("csrf", &csrf));
    let r = b.post("/admin/users", &f).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("id=\"memberships-error\"") && r.text().contains("initech"), "{}", r.text());

    let mut f = form("olga@acme.example", PASSWORD, "acme");
    f.push(("csrf", &csrf));
    let r = b.post("/admin/users", &f).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let page = location(&r);
    let id = page.rsplit('/').next().expect("id").to_owned();
    assert_eq!(user_json(&app, &id).await["memberships"], json!(["acme"]));
    // The same email again is refused beside the email field.
    let mut f = form("Olga@Acme.example", PASSWORD, "");
    f.push(("csrf", &csrf));
    let r = b.post("/admin/users", &f).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.text().contains("id=\"email-error\""), "{}", r.text());

    // She signs in to her tenant.
    let mut olga = Browser::new(&app.hub);
    let r = olga.sign_in("olga@acme.example", PASSWORD).await;
    assert_eq!(location(&r), "/t/acme/");

    // Tenant assignments: add globex, remove acme.
    let r = b.post(&format!("{page}/memberships"), &[("csrf", &csrf), ("tenant", "globex")]).await;
    assert_eq!((r.status, location(&r)), (StatusCode::SEE_OTHER, page.clone()));
    let r = b.post(&format!("{page}/memberships"), &[("csrf", &csrf), ("tenant", "initech")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("id=\"tenant-error\""));
    let r = b.post(&format!("{page}/memberships/remove"), &[("csrf", &csrf), ("tenant", "acme")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(user_json(&app, &id).await["memberships"], json!(["globex"]));
    assert_eq!(olga.get("/t/acme/").await.status, StatusCode::SEE_OTHER, "out of acme at once");

    // The role.
    let r = b.post(&format!("{page}/role"), &[("csrf", &csrf), ("role", "platform_admin")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(user_json(&app, &id).await["role"], "platform_admin");
    let r = b.post(&format!("{page}/role"), &[("csrf", &csrf), ("role", "root")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(user_json(&app, &id).await["role"], "platform_admin");

    // Deactivating needs the confirmation; then her session ends.
    let r = b.post(&format!("{page}/deactivate"), &[("csrf", &csrf)]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("id=\"confirm-error\""), "{}", r.text());
    assert_eq!(user_json(&app, &id).await["active"], true);
    let r = b.post(&format!("{page}/deactivate"), &[("csrf", &csrf), ("confirm", "yes")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(user_json(&app, &id).await["active"], false);
    assert_eq!(location(&olga.get("/tenants").await), "/login", "signed out everywhere");
    assert!(b.get(&page).await.text().contains("Deactivated"));
    let r = b.post(&format!("{page}/activate"), &[("csrf", &csrf)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(user_json(&app, &id).await["active"], true);
}

#[tokio::test]
async fn the_users_list_pages_through_every_user() {
    let app = hub_with_admin().await;
    app.tenant("acme").await;
    for i in 0..30 {
        member(&app, &format!("u{i:02}@acme.example"), &["acme"]).await;
    }
    let (mut b, _) = admin_in(&app, "acme").await;
    let first = b.get("/admin/users").await.text();
    let next =
        first.split("href=\"").filter_map(|s| s.split('"').next()).find(|h| h.contains("cursor=")).map(str::to_owned);
    let next = next.expect("a next page link");
    let second = b.get(&format!("/admin/users{}", next.replace("&amp;", "&"))).await.text();
    for i in 0..30 {
        let email = format!("u{i:02}@acme.example");
        assert!(first.contains(&email) ^ second.contains(&email), "{email} on exactly one page");
    }
}

#[tokio::test]
async fn an_api_key_is_shown_once_listed_by_prefix_and_revoked_after_a_confirmation() {
    let app = hub_with_admin().await;
    app.tenant("acme").await;
    member(&app, "olga@acme.example", &["acme"]).await;
    let mut b = Browser::new(&app.hub);
    b.sign_in("olga@acme.example", PASSWORD).await;
    let csrf = csrf_of(&b.get("/t/acme/api-keys").await.text());
    assert!(b.get("/t/acme/api-keys").await.text().contains("No API keys yet"));
    // Problems beside their fields, input kept.
    let r = b
        .post(
            "/t/acme/api-keys",
            &[("csrf", &csrf), ("name", "billing"), ("expires_at", "2001-01-01"), ("scope_api", "on")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("id=\"expires_at-error\"") && r.text().contains("value=\"billing\""), "{}", r.text());
    let r = b.post("/t/acme/api-keys", &[("csrf", &csrf), ("name", "billing")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("id=\"scopes-error\""));

    let r = b.post("/t/acme/api-keys", &[("csrf", &csrf), ("name", "billing"), ("scope_api", "on")]).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let html = r.text();
    let key = html
        .split("data-testid=\"new-key\"")
        .next()
        .and_then(|s| s.rsplit("value=\"").next())
        .and_then(|s| s.split('"').next())
        .expect("the key")
        .to_owned();
    assert!(key.starts_with("ferry_acme_"), "{key}");
    assert!(html.contains("only time it is shown"));
    // The key works, and no page shows it again.
    let r = app.call(Method::GET, "/v1/tenants/acme/jobs", Some(&key), None).await;
    assert_eq!(r.status, StatusCode::OK);
    let list = b.get("/t/acme/api-keys").await.text();
    assert!(list.contains("billing") && list.contains("Active") && list.contains("api_user"), "{list}");
    assert!(!list.contains(&key), "the list never shows a key");
    let keys = app.admin(Method::GET, "/v1/tenants/acme/api-keys", None).await.json();
    let id = keys["items"][0]["id"].as_str().expect("id").to_owned();
    assert!(list.contains(keys["items"][0]["prefix"].as_str().expect("prefix")));

    let confirm = format!("/t/acme/api-keys/{id}/revoke");
    let page = b.get(&confirm).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.text().contains(&key));
    let r = b.post(&confirm, &[("csrf", &csrf)]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("id=\"confirm-error\""));
    assert_eq!(app.call(Method::GET, "/v1/tenants/acme/jobs", Some(&key), None).await.status, StatusCode::OK);
    let r = b.post(&confirm, &[("csrf", &csrf), ("confirm", "yes")]).await;
    assert_eq!((r.status, location(&r)), (StatusCode::SEE_OTHER, "/t/acme/api-keys".to_owned()));
    assert_eq!(app.call(Method::GET, "/v1/tenants/acme/jobs", Some(&key), None).await.status, StatusCode::UNAUTHORIZED);
    assert!(b.get("/t/acme/api-keys").await.text().contains("Revoked"));
    // Another tenant's key is not found from this one.
    app.tenant("globex").await;
    let (_, other) = app.tenant_key("globex").await;
    assert_eq!(b.get(&format!("/t/acme/api-keys/{other}/revoke")).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_integration_lists_its_releases_with_the_default_that_only_admins_change() {
    let app = hub_with_admin().await;
    app.tenant("acme").await;
    app.publish("crm-sync", CRM_SYNC).await;
    app.publish("crm-sync", &CRM_SYNC.replacen("description: ", "description: Second release. ", 1)).await;
    member(&app, "olga@acme.example", &["acme"]).await;
    let mut olga = Browser::new(&app.hub);
    olga.sign_in("olga@acme.example", PASSWORD).await;
    let list = olga.get("/t/acme/integrations").await.text();
    assert!(list.contains(&format!("href=\"{}\"", esc("/t/acme/integrations/crm-sync"))), "{list}");
    let detail = olga.get("/t/acme/integrations/crm-sync").await.text();
    let releases = app.admin(Method::GET, "/v1/integrations/crm-sync/releases", None).await.json();
    for r in releases["items"].as_array().expect("releases") {
        assert!(detail.contains(r["digest"].as_str().expect("digest")), "every release's digest");
    }
    assert!(detail.contains(&esc("/t/acme/jobs/new?integration=crm-sync")), "Create job");
    assert!(detail.contains(">Default</span>") && !detail.contains("Make default"), "{detail}");
    let csrf = csrf_of(&detail);
    let r = olga.post("/t/acme/integrations/crm-sync/default", &[("csrf", &csrf), ("release", "2")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert_eq!(app.admin(Method::GET, "/v1/integrations/crm-sync", None).await.json()["default_release"], 1);

    let (mut b, csrf) = admin_in(&app, "acme").await;
    let detail = b.get("/t/acme/integrations/crm-sync").await.text();
    assert!(detail.contains("Make release 2 the default"), "{detail}");
    let r = b.post("/t/acme/integrations/crm-sync/default", &[("csrf", &csrf), ("release", "2")]).await;
    assert_eq!((r.status, location(&r)), (StatusCode::SEE_OTHER, "/t/acme/integrations/crm-sync".to_owned()));
    assert_eq!(app.admin(Method::GET, "/v1/integrations/crm-sync", None).await.json()["default_release"], 2);
    let r = b.post("/t/acme/integrations/crm-sync/default", &[("csrf", &csrf), ("release", "9")]).await;
    assert!(r.status.is_client_error(), "{}", r.status);
    assert_eq!(b.get("/t/acme/integrations/nothing-here").await.status, StatusCode::NOT_FOUND);
}

const SYNC: &str = r#"
version: 1.0
name: contacts-sync
connectors:
  src: {provider: itemsource, auth: none}
  dst: {provider: warehouse, auth: none}
flows:
  - name: contacts
    source: {type: http, connector: src, request: {path: /contacts}, records: contacts}
    mapping: {fields: {id: {from: id}, n: {from: n, type: integer}}}
    target: {type: http, connector: dst, path: /items}
"#;

/// Tenant acme with a job whose run reads four contacts; two have an `n`
/// that is not a number, so the mapping dead-letters them.
struct Letters {
    app: TestApp,
    job: String,
    run: String,
}

async fn letters_on(store: Arc<dyn Store>) -> Letters {
    let dir = tempfile::tempdir().expect("tempdir");
    let secrets = ferry_embedded::FileSecretStore::open(dir.path()).expect("secrets");
    let app = TestApp::with_hub(Hub::new(store, Arc::new(secrets)), dir).await;
    app.hub.users().bootstrap_admin_user(Some(ADMIN_EMAIL), Some(ADMIN_PASSWORD)).await.expect("admin user");
    app.tenant("acme").await;
    app.publish("contacts-sync", SYNC).await;
    let contacts =
        json!({"contacts": [{"id": 1, "n": "1"}, {"id": 2, "n": "two"}, {"id": 3, "n": "three"}, {"id": 4, "n": "4"}]});
    let src = serve(Router::new().route("/contacts", get(move || async move { Json(contacts) }))).await;
    let dst = serve(Router::new().route("/items", post(|| async { StatusCode::CREATED }))).await;
    let mut conns = serde_json::Map::new();
    for (name, provider, base) in [("src", "itemsource", src), ("dst", "warehouse", dst)] {
        let body = json!({"name": name, "connector": provider, "auth_kind": "none", "settings": {"base_url": base}});
        let r = app.admin(Method::POST, "/v1/tenants/acme/connections", Some(body)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        conns.insert(name.into(), r.json()["id"].clone());
    }
    let job = app.job("acme", json!({"name": "Contacts", "integration": "contacts-sync", "connections": conns})).await;
    let r = app.admin(Method::POST, &format!("/v1/tenants/acme/jobs/{job}/runs"), Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let run = r.json()["run"]["id"].as_str().expect("run").to_owned();
    let l = Letters { app, job, run };
    l.wait(&l.run.clone()).await;
    l
}

impl Letters {
    async fn wait(&self, run: &str) -> Value {
        for _ in 0..1200 {
            let v = self
                .app
                .admin(Method::GET, &format!("/v1/tenants/acme/jobs/{}/runs/{run}", self.job), None)
                .await
                .json();
            if !matches!(v["status"].as_str(), Some("queued" | "running" | "interrupted")) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("run {run} did not end");
    }

    async fn letters(&self, query: &str) -> Vec<Value> {
        let r = self.app.admin(Method::GET, &format!("/v1/tenants/acme/dead-letters{query}"), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        r.json()["items"].as_array().cloned().unwrap_or_default()
    }
}

async fn a_runs_page_lists_the_dead_letters_it_left_with_its_counter(store: Arc<dyn Store>) {
    let l = letters_on(store).await;
    let (mut b, csrf) = admin_in(&l.app, "acme").await;
    let page = format!("/t/acme/jobs/{}/runs/{}", l.job, l.run);
    let html = b.get(&page).await.text();
    assert!(html.contains("Dead letters of this run"), "{html}");
    assert_eq!(html.matches("Mapping failed").count(), 2, "both dead letters: {html}");
    assert!(html.contains("<td data-label=\"Dead-lettered\" class=\"num\">2</td>"), "the counter per flow: {html}");
    // A later run fails the same records again: they keep their letters, and
    // its page shows the letters it failed again.
    let r = l.app.admin(Method::POST, &format!("/v1/tenants/acme/jobs/{}/runs", l.job), Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let second = r.json()["run"]["id"].as_str().expect("run").to_owned();
    l.wait(&second).await;
    let letters = l.letters("").await;
    let again = letters.iter().filter(|d| d["last_run"] == second.as_str()).count();
    assert_eq!(again, 2, "the flow reads every record each run: {letters:?}");
    assert!(letters.iter().all(|d| d["run"] == l.run.as_str()), "no letter of its own: {letters:?}");
    let html = b.get(&format!("/t/acme/jobs/{}/runs/{second}", l.job)).await.text();
    assert_eq!(html.matches("Mapping failed").count(), again, "the letters it failed again");
    // Replay one from the run's page; the replay is a run with trigger `replay`.
    let id = letters
        .iter()
        .find(|d| d["run"] == l.run.as_str())
        .and_then(|d| d["id"].as_str())
        .expect("a letter")
        .to_owned();
    let r = b.post(&format!("/t/acme/dead-letters/{id}/replay"), &[("csrf", &csrf), ("return_to", &page)]).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    assert!(r.text().contains("Replay started") && r.text().contains("Open the replay run"), "{}", r.text());
    let runs = l.app.admin(Method::GET, "/v1/tenants/acme/runs?trigger=replay", None).await.json();
    let replay = runs["items"][0]["id"].as_str().expect("a replay run").to_owned();
    l.wait(&replay).await;
    let after = l.app.admin(Method::GET, &format!("/v1/tenants/acme/dead-letters/{id}"), None).await.json();
    assert_eq!(after["attempts"], 3, "two runs and the replay tried it: {after}");
}

both_stores! {
    a_runs_page_lists_the_dead_letters_it_left_with_its_counter
        => a_runs_page_lists_its_dead_letters_on_sqlite, a_runs_page_lists_its_dead_letters_on_dynamodb;
}

#[tokio::test]
async fn dead_letters_are_filtered_counted_and_discarded_after_a_confirmation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ferry_embedded::SqliteStore::open(&dir.path().join("ferry.db")).expect("sqlite");
    let l = letters_on(Arc::new(store)).await;
    member(&l.app, "olga@acme.example", &["acme"]).await;
    let mut b = Browser::new(&l.app.hub);
    b.sign_in("olga@acme.example", PASSWORD).await;
    let dash = b.get("/t/acme/").await.text();
    assert!(dash.contains("Dead letters pending") && dash.contains("<span class=\"stat-value\">2</span>"), "{dash}");
    let html = b.get("/t/acme/dead-letters").await.text();
    assert!(html.contains("<span class=\"count-n\">2</span> pending"), "{html}");
    let csrf = csrf_of(&html);
    let r = b.get("/t/acme/dead-letters?category=target_rejected").await;
    assert!(r.text().contains("No dead letters match"), "{}", r.text());
    let r = b.get("/t/acme/dead-letters?category=lost").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("not a category"));

    let letters = l.letters("").await;
    let (a, c) = (letters[0]["id"].as_str().expect("id").to_owned(), letters[1]["id"].as_str().expect("id").to_owned());
    // Nothing checked; then checked but not confirmed: the form comes back with the rows still checked.
    let r = b.post("/t/acme/dead-letters/discard", &[("csrf", &csrf), ("scope", "checked"), ("confirm", "yes")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("id=\"ids-error\""));
    let r = b.post("/t/acme/dead-letters/discard", &[("csrf", &csrf), ("scope", "checked"), ("id", &a)]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.text().contains("id=\"confirm-error\"") && r.text().contains(&format!("value=\"{a}\" id=\"dl-{a}\" checked")),
        "{}",
        r.text()
    );
    assert_eq!(l.letters("?status=pending").await.len(), 2, "nothing discarded");
    let r = b
        .post("/t/acme/dead-letters/discard", &[("csrf", &csrf), ("scope", "checked"), ("id", &a), ("confirm", "yes")])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.text().contains("1 dead letter was discarded"));
    let left: Vec<String> =
        l.letters("?status=pending").await.iter().filter_map(|d| d["id"].as_str().map(str::to_owned)).collect();
    assert_eq!(left, vec![c.clone()]);
    // The single discard has its confirmation page.
    let confirm = format!("/t/acme/dead-letters/{c}/discard");
    let page = b.get(&format!("{confirm}?return_to=%2Ft%2Facme%2Fdead-letters")).await.text();
    assert!(page.contains("Discard this dead letter?") && page.contains("Mapping failed"), "{page}");
    let r = b.post(&confirm, &[("csrf", &csrf)]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("id=\"confirm-error\""));
    // A return path outside the workspace is not followed.
    let r = b.post(&confirm, &[("csrf", &csrf), ("confirm", "yes"), ("return_to", "https://evil.example/")]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        !r.text().contains("evil.example") && r.text().contains(&format!("href=\"{}\"", esc("/t/acme/dead-letters"))),
        "{}",
        r.text()
    );
    assert!(l.letters("?status=pending").await.is_empty());
    let dash = b.get("/t/acme/").await.text();
    assert!(
        dash.contains("<span class=\"stat-value\">0</span>\n      <span class=\"stat-label\">Dead letters pending"),
        "{dash}"
    );
    let html = b.get("/t/acme/dead-letters?status=discarded").await.text();
    assert!(html.contains("<span class=\"count-n\">2</span> discarded"), "{html}");
}

#[tokio::test]
async fn replaying_and_discarding_what_matches_the_filters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ferry_embedded::SqliteStore::open(&dir.path().join("ferry.db")).expect("sqlite");
    let l = letters_on(Arc::new(store)).await;
    let (mut b, csrf) = admin_in(&l.app, "acme").await;
    let filters =
        [("f_job", l.job.as_str()), ("f_category", "mapping"), ("f_flow", ""), ("f_status", ""), ("f_run", "")];
    let mut form = vec![("csrf", csrf.as_str()), ("scope", "matching"), ("mapping", "current")];
    form.extend(filters);
    let r = b.post("/t/acme/dead-letters/replay", &form).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    assert!(r.text().contains("2 dead letters will be sent again by 1 replay run"), "{}", r.text());
    let runs = l.app.admin(Method::GET, "/v1/tenants/acme/runs?trigger=replay", None).await.json();
    l.wait(runs["items"][0]["id"].as_str().expect("replay run")).await;
    // Discarding what matches needs the confirmation too.
    let mut form = vec![("csrf", csrf.as_str()), ("scope", "matching")];
    form.extend(filters);
    let r = b.post("/t/acme/dead-letters/discard", &form).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    form.push(("confirm", "yes"));
    let r = b.post("/t/acme/dead-letters/discard", &form).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.text().contains("2 dead letters were discarded"), "{}", r.text());
    assert!(l.letters("?status=pending").await.is_empty());
}
