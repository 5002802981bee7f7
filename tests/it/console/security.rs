//! The console's security: every route refuses a signed-out browser and a
//! session scoped to another tenant, every POST needs the session's CSRF
//! token, names render inert, secrets never reach a page, and every
//! response carries a strict Content-Security-Policy.

use axum::http::{header, Method, StatusCode};
use serde_json::json;

use super::{csrf_of, hub_with_admin, location, member, Browser, ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD};
use crate::support::app::TestApp;
use crate::support::manifests::CRM_SYNC;

/// Two tenants, each with a connection, a job and a run of that job.
struct World {
    app: TestApp,
    /// (job, run) of each tenant.
    acme: (String, String),
    globex: (String, String),
    /// (connection, mapping) of each tenant, for the routes naming them.
    profiles: Vec<(String, String, String)>,
}

const CANARY: &str = "canary-secret-7f3a9c";

async fn world() -> World {
    let app = hub_with_admin().await;
    app.publish("crm-sync", CRM_SYNC).await;
    let mut made = Vec::new();
    let mut profiles = Vec::new();
    for t in ["acme", "globex"] {
        app.tenant(t).await;
        let conn = app.connection(t, &format!("{t} crm"), CANARY).await;
        profiles.push((t.to_owned(), conn.clone(), mapping(&app, t).await));
        let job = app
            .job(t, json!({"name": format!("{t} sync"), "integration": "crm-sync", "connections": {"crm": conn}, "configs": {"region": "eu"}}))
            .await;
        let r = app.admin(Method::POST, &format!("/v1/tenants/{t}/jobs/{job}/runs"), Some(json!({}))).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
        made.push((job, r.json()["run"]["id"].as_str().expect("run").to_owned()));
    }
    let globex = made.pop().expect("globex");
    let acme = made.pop().expect("acme");
    World { app, acme, globex, profiles }
}

async fn mapping(app: &TestApp, tenant: &str) -> String {
    let body =
        json!({"name": format!("{tenant} contacts"), "entity": "contact", "fields": {"email": "{{ record.email }}"}});
    let r = app.admin(Method::POST, &format!("/v1/tenants/{tenant}/mappings"), Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    r.json()["id"].as_str().expect("id").to_owned()
}

impl World {
    /// Every console route with its parameters filled for `tenant`, profiles included.
    fn routes(&self, tenant: &str) -> Vec<(&'static str, String)> {
        let ids = if tenant == "acme" { &self.acme } else { &self.globex };
        let (_, conn, mapping) = self.profiles.iter().find(|(t, _, _)| t == tenant).expect("a tenant of the world");
        routes_of(tenant, ids)
            .into_iter()
            .map(|(m, p)| (m, p.replace("{connection}", conn).replace("{mapping}", mapping)))
            .collect()
    }
}

/// Every console route with its parameters filled for `tenant`.
fn routes_of(tenant: &str, (job, run): &(String, String)) -> Vec<(&'static str, String)> {
    ferry_console::ROUTES
        .iter()
        .map(|(m, p)| (*m, p.replace("{tenant}", tenant).replace("{job}", job).replace("{run}", run)))
        .map(|(m, p)| (m, ops_params(&p)))
        .collect()
}

/// The operations pages' parameters: an integration the world has, and ids
/// that name nothing (every refusal comes before the lookup).
fn ops_params(path: &str) -> String {
    path.replace("{user}", NO_ID)
        .replace("{key}", NO_ID)
        .replace("{integration}", "crm-sync")
        .replace("{letter}", NO_ID)
}

const NO_ID: &str = "00000000000000000000000000";

async fn call(b: &mut Browser, method: &str, path: &str, csrf: &str) -> crate::support::app::Response {
    match method {
        "GET" => b.get(path).await,
        _ => b.post(path, &[("csrf", csrf), ("tenant", "globex"), ("config", "current"), ("mode", "normal")]).await,
    }
}

#[tokio::test]
async fn every_console_route_sends_a_signed_out_browser_to_sign_in() {
    let w = world().await;
    let mut b = Browser::new(&w.app.hub);
    let public = ["/login", "/static/console.css"];
    for (method, path) in w.routes("acme") {
        if public.contains(&path.as_str()) {
            continue;
        }
        let r = call(&mut b, method, &path, "").await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{method} {path}: {}", r.text());
        assert_eq!(location(&r), "/login", "{method} {path}");
    }
    // A forged or stale session cookie is no better than none, and is cleared.
    b.cookies.insert("ferry_console".into(), format!("fsess_{}", "0".repeat(64)));
    let r = b.get("/t/acme/").await;
    assert_eq!((r.status, location(&r)), (StatusCode::SEE_OTHER, "/login".to_owned()));
    assert!(!b.cookies.contains_key("ferry_console"), "the bad cookie is cleared");
}

#[tokio::test]
async fn a_session_scoped_to_one_tenant_is_refused_every_route_of_another() {
    let w = world().await;
    member(&w.app, "olga@acme.example", &["acme"]).await;
    // A platform admin scoped to acme, and a user who belongs to acme only.
    for (email, password) in [(ADMIN_EMAIL, ADMIN_PASSWORD), ("olga@acme.example", PASSWORD)] {
        let mut b = Browser::new(&w.app.hub);
        b.sign_in(email, password).await;
        let csrf = b.csrf().await;
        if email == ADMIN_EMAIL {
            let r = b.post("/tenants/switch", &[("csrf", &csrf), ("tenant", "acme")]).await;
            assert_eq!(location(&r), "/t/acme/");
        }
        for (method, path) in w.routes("globex") {
            if !path.starts_with("/t/") {
                continue;
            }
            let r = call(&mut b, method, &path, &csrf).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{email}: {method} {path}: {}", r.text());
            assert!(!r.text().contains("globex sync"), "{email}: {path} shows nothing of the other tenant");
        }
        // A tenant that does not exist answers the same: nobody learns which tenants exist.
        let r = b.get("/t/initech/").await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{email}");
        // The session still works in its own tenant.
        let r = b.get("/t/acme/").await;
        assert_eq!(r.status, StatusCode::OK, "{email}");
    }
    // Nothing happened in globex: its job is not paused and has its one run.
    let job = w.app.admin(Method::GET, &format!("/v1/tenants/globex/jobs/{}", w.globex.0), None).await.json();
    assert_eq!(job["paused"], false);
    let runs = w.app.admin(Method::GET, &format!("/v1/tenants/globex/jobs/{}/runs", w.globex.0), None).await.json();
    assert_eq!(runs["items"].as_array().map(Vec::len), Some(1), "{runs}");
}

#[tokio::test]
async fn a_user_cannot_switch_into_a_tenant_they_are_not_assigned_to() {
    let w = world().await;
    member(&w.app, "olga@acme.example", &["acme"]).await;
    let mut b = Browser::new(&w.app.hub);
    b.sign_in("olga@acme.example", PASSWORD).await;
    let csrf = b.csrf().await;
    let r = b.post("/tenants/switch", &[("csrf", &csrf), ("tenant", "globex")]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    let r = b.get("/t/globex/").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Removing the membership ends the scope at once.
    let users = w.app.admin(Method::GET, "/v1/users", None).await.json();
    let olga =
        users["items"].as_array().into_iter().flatten().find(|u| u["email"] == "olga@acme.example").expect("olga");
    let r = w
        .app
        .admin(Method::DELETE, &format!("/v1/users/{}/memberships/acme", olga["id"].as_str().unwrap_or("")), None)
        .await;
    assert!(r.status.is_success(), "{}", r.text());
    let r = b.get("/t/acme/").await;
    assert_eq!((r.status, location(&r)), (StatusCode::SEE_OTHER, "/tenants".to_owned()));
}

#[tokio::test]
async fn posts_without_the_sessions_csrf_token_change_nothing() {
    let w = world().await;
    member(&w.app, "olga@acme.example", &["acme"]).await;
    let mut b = Browser::new(&w.app.hub);
    b.sign_in("olga@acme.example", PASSWORD).await;
    let mut other = Browser::new(&w.app.hub);
    other.sign_in("olga@acme.example", PASSWORD).await;
    let others_token = other.csrf().await;
    let pause = format!("/t/acme/jobs/{}/pause", w.acme.0);
    for form in [vec![], vec![("csrf", "")], vec![("csrf", "forged")], vec![("csrf", others_token.as_str())]] {
        let r = b.post(&pause, &form).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{form:?}: {}", r.text());
    }
    for path in [
        "/logout".to_owned(),
        "/tenants/switch".to_owned(),
        format!("/t/acme/jobs/{}/run", w.acme.0),
        "/t/acme/jobs/new".to_owned(),
        format!("/t/acme/jobs/{}/settings", w.acme.0),
        format!("/t/acme/jobs/{}/schedule", w.acme.0),
        format!("/t/acme/jobs/{}/webhook", w.acme.0),
    ] {
        let r = b.post(&path, &[("tenant", "acme")]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}");
    }
    let job = w.app.admin(Method::GET, &format!("/v1/tenants/acme/jobs/{}", w.acme.0), None).await.json();
    assert_eq!(job["paused"], false, "refused posts changed nothing");
    let runs = w.app.admin(Method::GET, &format!("/v1/tenants/acme/jobs/{}/runs", w.acme.0), None).await.json();
    assert_eq!(runs["items"].as_array().map(Vec::len), Some(1));
    // The sign-in form needs its own token too.
    let mut fresh = Browser::new(&w.app.hub);
    let r = fresh.post("/login", &[("email", "olga@acme.example"), ("password", PASSWORD)]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // With the token the same POST works.
    let csrf = b.csrf().await;
    let r = b.post(&pause, &[("csrf", &csrf)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let job = w.app.admin(Method::GET, &format!("/v1/tenants/acme/jobs/{}", w.acme.0), None).await.json();
    assert_eq!(job["paused"], true);
}

#[tokio::test]
async fn names_with_markup_and_script_urls_render_inert() {
    let app = hub_with_admin().await;
    app.publish("crm-sync", CRM_SYNC).await;
    let evil = r#"<script>alert("t")</script>'"><img src=x onerror=alert(1)>"#;
    let r = app.admin(Method::POST, "/v1/tenants", Some(json!({"id": "acme", "name": evil}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let conn = app.connection("acme", "javascript:alert(1)", CANARY).await;
    let job = app
        .job("acme", json!({"name": format!("job {evil}"), "integration": "crm-sync", "connections": {"crm": conn}, "configs": {"region": "eu"}}))
        .await;
    let r = app.admin(Method::POST, &format!("/v1/tenants/acme/jobs/{job}/runs"), Some(json!({}))).await;
    let run = r.json()["run"]["id"].as_str().expect("run").to_owned();
    let r = app.admin(Method::POST, "/v1/tenants/acme/api-keys", Some(json!({"name": evil}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let r = app
        .admin(Method::POST, "/v1/users", Some(json!({"email": "evil@acme.example", "full_name": evil, "password": PASSWORD, "role": "user", "memberships": ["acme"]})))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let mut b = Browser::new(&app.hub);
    b.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let csrf = b.csrf().await;
    b.post("/tenants/switch", &[("csrf", &csrf), ("tenant", "acme")]).await;
    for path in [
        "/tenants".to_owned(),
        "/t/acme/".to_owned(),
        "/t/acme/activity".to_owned(),
        "/t/acme/activity?integration=%3Cscript%3Ex%3C%2Fscript%3E".to_owned(),
        "/t/acme/jobs".to_owned(),
        format!("/t/acme/jobs/{job}"),
        format!("/t/acme/jobs/{job}/runs/{run}?q=%22%3E%3Cscript%3Ey%3C%2Fscript%3E"),
        "/admin/users".to_owned(),
        "/t/acme/api-keys".to_owned(),
        "/t/acme/integrations".to_owned(),
        "/t/acme/integrations/crm-sync".to_owned(),
        "/t/acme/dead-letters?flow=%3Cscript%3Ex%3C%2Fscript%3E".to_owned(),
        "/t/acme/connections".to_owned(),
        format!("/t/acme/connections/{conn}"),
        format!("/t/acme/connections/{conn}/disconnect"),
        "/t/acme/connections/new?provider=%3Cscript%3E&auth_kind=%22%3E%3Cimg".to_owned(),
        "/t/acme/mappings".to_owned(),
        format!("/t/acme/mappings/{}", mapping_named(&app, "acme", evil).await),
        "/t/acme/jobs/new".to_owned(),
        "/t/acme/jobs/new?integration=crm-sync".to_owned(),
        "/t/acme/jobs/new?integration=%3Cscript%3Ex%3C%2Fscript%3E".to_owned(),
        format!("/t/acme/jobs/{job}/settings"),
        format!("/t/acme/jobs/{job}/schedule"),
        format!("/t/acme/jobs/{job}/connectors"),
    ] {
        let r = b.get(&path).await;
        let html = r.text();
        assert!(
            r.status.is_success() || r.status == StatusCode::BAD_REQUEST || r.status == StatusCode::NOT_FOUND,
            "{path}: {}",
            r.status
        );
        assert!(!html.contains("<script"), "{path}: a script element got through:\n{html}");
        assert!(!html.contains("<img"), "{path}: markup got through");
        assert!(!html.contains("href=\"javascript:"), "{path}: a javascript: URL became a link");
        assert!(!html.contains("onerror=alert(1)>"), "{path}: an attribute got through");
    }
    let r = b.get("/t/acme/").await;
    assert!(r.text().contains("&lt;script&gt;"), "the name is shown, escaped");
    // A refused new-tenant form shows what was typed, inert.
    let r = b.post("/tenants", &[("csrf", &csrf), ("id", evil), ("name", evil)]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let html = r.text();
    assert!(!html.contains("<script") && !html.contains("<img") && !html.contains("onerror=alert(1)>"), "{html}");
}

#[tokio::test]
async fn the_secret_canary_never_appears_in_a_page() {
    let w = world().await;
    member(&w.app, "olga@acme.example", &["acme"]).await;
    let mut b = Browser::new(&w.app.hub);
    let r = b.sign_in("olga@acme.example", PASSWORD).await;
    assert!(!r.text().contains(CANARY));
    let extra = ["/t/acme/jobs/new?integration=crm-sync".to_owned()];
    for (method, path) in w.routes("acme").into_iter().chain(extra.map(|p| ("GET", p))) {
        if method != "GET" {
            continue;
        }
        let r = b.get(&path).await;
        assert!(!r.text().contains(CANARY), "{path} shows the secret");
        assert!(!r.text().contains("fsess_"), "{path} shows a session token");
    }
}

#[tokio::test]
async fn every_console_response_carries_a_strict_content_security_policy() {
    let w = world().await;
    member(&w.app, "olga@acme.example", &["acme"]).await;
    let mut b = Browser::new(&w.app.hub);
    let mut seen = vec![b.get("/login").await, b.get("/t/acme/").await];
    seen.push(b.sign_in("olga@acme.example", PASSWORD).await);
    for (method, path) in w.routes("acme") {
        if method == "GET" {
            seen.push(b.get(&path).await);
        }
    }
    seen.push(b.get("/t/globex/").await);
    for r in &seen {
        let csp = r.headers.get(header::CONTENT_SECURITY_POLICY).and_then(|v| v.to_str().ok()).unwrap_or("");
        assert!(csp.contains("default-src 'self'"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
        assert_eq!(r.headers.get(header::X_CONTENT_TYPE_OPTIONS).and_then(|v| v.to_str().ok()), Some("nosniff"));
        assert!(r.headers.contains_key(header::REFERRER_POLICY));
        let html = r.text();
        assert!(
            !html.contains("<script") && !html.contains(" style=") && !html.contains("<style"),
            "inline code or style"
        );
    }
}

#[tokio::test]
async fn the_session_cookie_is_http_only_strict_and_secure_over_https() {
    for (url, secure) in [("http://127.0.0.1:8080", false), ("https://hub.example", true)] {
        let app = TestApp::embedded_at(url).await;
        app.hub.users().bootstrap_admin_user(Some(ADMIN_EMAIL), Some(ADMIN_PASSWORD)).await.expect("admin");
        let mut b = Browser::new(&app.hub);
        let r = b.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
        let cookie = r
            .headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("ferry_console="))
            .expect("a session cookie")
            .to_owned();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
        assert!(
            cookie.contains("Max-Age=") && !cookie.contains("Max-Age=0"),
            "the cookie expires with the session: {cookie}"
        );
        assert_eq!(cookie.contains("; Secure"), secure, "{url}: {cookie}");
    }
}

#[tokio::test]
async fn wrong_passwords_slow_console_sign_in_down() {
    let app = hub_with_admin().await;
    let mut b = Browser::new(&app.hub);
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let r = b.sign_in(ADMIN_EMAIL, "not the password").await;
        statuses.push(r.status);
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            assert!(r.headers.contains_key(header::RETRY_AFTER));
            assert!(r.text().contains("Wait"), "{}", r.text());
            break;
        }
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(r.text().contains("email or password is wrong"));
    }
    assert_eq!(statuses.last(), Some(&StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
    // Throttled, even the right password waits.
    let r = b.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn signing_out_ends_the_session_for_every_copy_of_its_cookie() {
    let app = hub_with_admin().await;
    app.tenant("acme").await;
    let mut b = Browser::new(&app.hub);
    b.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let stolen = b.cookies.clone();
    let csrf = csrf_of(&b.get("/tenants").await.text());
    let r = b.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!((r.status, location(&r)), (StatusCode::SEE_OTHER, "/login".to_owned()));
    assert!(!b.cookies.contains_key("ferry_console"));
    let mut replay = Browser::new(&app.hub);
    replay.cookies = stolen;
    let r = replay.get("/tenants").await;
    assert_eq!((r.status, location(&r)), (StatusCode::SEE_OTHER, "/login".to_owned()));
}

#[tokio::test]
async fn the_users_pages_are_refused_to_a_regular_user_and_change_nothing() {
    let w = world().await;
    let olga = member(&w.app, "olga@acme.example", &["acme"]).await;
    let mut b = Browser::new(&w.app.hub);
    b.sign_in("olga@acme.example", PASSWORD).await;
    let csrf = b.csrf().await;
    assert!(!b.get("/t/acme/").await.text().contains("/admin/users"), "no Users link for a regular user");
    for (method, path) in ferry_console::ROUTES.iter().filter(|(_, p)| p.starts_with("/admin/")) {
        let path = path.replace("{user}", &olga);
        let r = match *method {
            "GET" => b.get(&path).await,
            _ => {
                b.post(
                    &path,
                    &[
                        ("csrf", &csrf),
                        ("role", "platform_admin"),
                        ("tenant", "globex"),
                        ("confirm", "yes"),
                        ("email", "new@acme.example"),
                        ("full_name", "New"),
                        ("password", PASSWORD),
                    ],
                )
                .await
            }
        };
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{method} {path}: {}", r.text());
        assert!(!r.text().contains(ADMIN_EMAIL), "{path} shows no user");
    }
    let me = w.app.admin(Method::GET, &format!("/v1/users/{olga}"), None).await.json();
    assert_eq!((me["role"].as_str(), me["active"].as_bool()), (Some("user"), Some(true)), "{me}");
    assert_eq!(me["memberships"], json!(["acme"]));
    let users = w.app.admin(Method::GET, "/v1/users", None).await.json();
    assert!(!users.to_string().contains("new@acme.example"), "no user was created");
    // Setting an integration's default release is a platform admin's too.
    let r = b.post("/t/acme/integrations/crm-sync/default", &[("csrf", &csrf), ("release", "1")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_operations_posts_without_the_sessions_csrf_token_change_nothing() {
    let w = world().await;
    let mut b = Browser::new(&w.app.hub);
    b.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let csrf = b.csrf().await;
    b.post("/tenants/switch", &[("csrf", &csrf), ("tenant", "acme")]).await;
    let ops = ["/admin/", "/api-keys", "/integrations", "/dead-letters", "/tenants"];
    for (method, path) in w.routes("acme") {
        if method != "POST" || !ops.iter().any(|o| path.contains(o)) {
            continue;
        }
        for token in ["", "forged"] {
            let r = b
                .post(
                    &path,
                    &[
                        ("csrf", token),
                        ("name", "k"),
                        ("scope_api", "on"),
                        ("release", "1"),
                        ("scope", "matching"),
                        ("confirm", "yes"),
                        ("email", "x@acme.example"),
                        ("full_name", "X"),
                        ("password", PASSWORD),
                        ("role", "user"),
                    ],
                )
                .await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{path} with token {token:?}: {}", r.text());
        }
    }
    let keys = w.app.admin(Method::GET, "/v1/tenants/acme/api-keys", None).await.json();
    assert_eq!(keys["items"].as_array().map(Vec::len), Some(0), "no key was made");
    let users = w.app.admin(Method::GET, "/v1/users", None).await.json();
    assert!(!users.to_string().contains("x@acme.example"), "no user was made");
    let tenants = w.app.admin(Method::GET, "/v1/tenants", None).await.json();
    assert_eq!(tenants["items"].as_array().map(Vec::len), Some(2), "no tenant was made: {tenants}");
}

/// A mapping whose name and field carry markup.
async fn mapping_named(app: &TestApp, tenant: &str, name: &str) -> String {
    let body = json!({"name": name, "entity": "contact", "fields": {"x\"><script>": "{{ record.email }}"}});
    let r = app.admin(Method::POST, &format!("/v1/tenants/{tenant}/mappings"), Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    r.json()["id"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn every_console_post_without_the_csrf_token_is_refused() {
    let w = world().await;
    member(&w.app, "olga@acme.example", &["acme"]).await;
    let mut b = Browser::new(&w.app.hub);
    b.sign_in("olga@acme.example", PASSWORD).await;
    for (method, path) in w.routes("acme") {
        if method != "POST" || path == "/login" {
            continue;
        }
        let r = b.post(&path, &[("tenant", "acme"), ("name", "renamed"), ("confirm", "on")]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: {}", r.text());
    }
    let conns = w.app.admin(Method::GET, "/v1/tenants/acme/connections", None).await.json();
    let conn = &conns["items"][0];
    assert_eq!((conn["name"].as_str(), conn["status"].as_str()), (Some("acme crm"), Some("connected")), "{conn}");
    assert!(conn["link"].is_string(), "the link was not revoked: {conn}");
    let maps = w.app.admin(Method::GET, "/v1/tenants/acme/mappings", None).await.json();
    assert_eq!(maps["items"][0]["name"], "acme contacts", "{maps}");
    assert_eq!(maps["items"].as_array().map(Vec::len), Some(1));
}
