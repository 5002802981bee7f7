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
}

const CANARY: &str = "canary-secret-7f3a9c";

async fn world() -> World {
    let app = hub_with_admin().await;
    app.publish("crm-sync", CRM_SYNC).await;
    let mut made = Vec::new();
    for t in ["acme", "globex"] {
        app.tenant(t).await;
        let conn = app.connection(t, &format!("{t} crm"), CANARY).await;
        let job = app
            .job(t, json!({"name": format!("{t} sync"), "integration": "crm-sync", "connections": {"crm": conn}, "configs": {"region": "eu"}}))
            .await;
        let r = app.admin(Method::POST, &format!("/v1/tenants/{t}/jobs/{job}/runs"), Some(json!({}))).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
        made.push((job, r.json()["run"]["id"].as_str().expect("run").to_owned()));
    }
    let globex = made.pop().expect("globex");
    let acme = made.pop().expect("acme");
    World { app, acme, globex }
}

/// Every console route with its parameters filled for `tenant`.
fn routes_of(tenant: &str, (job, run): &(String, String)) -> Vec<(&'static str, String)> {
    ferry_console::ROUTES
        .iter()
        .map(|(m, p)| (*m, p.replace("{tenant}", tenant).replace("{job}", job).replace("{run}", run)))
        .collect()
}

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
    for (method, path) in routes_of("acme", &w.acme) {
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
        for (method, path) in routes_of("globex", &w.globex) {
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
}

#[tokio::test]
async fn the_secret_canary_never_appears_in_a_page() {
    let w = world().await;
    member(&w.app, "olga@acme.example", &["acme"]).await;
    let mut b = Browser::new(&w.app.hub);
    let r = b.sign_in("olga@acme.example", PASSWORD).await;
    assert!(!r.text().contains(CANARY));
    let extra = ["/t/acme/jobs/new?integration=crm-sync".to_owned()];
    for (method, path) in routes_of("acme", &w.acme).into_iter().chain(extra.map(|p| ("GET", p))) {
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
    for (method, path) in routes_of("acme", &w.acme) {
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
