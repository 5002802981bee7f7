//! The screens: landing after sign-in, the tenant switcher, the dashboard,
//! activity, jobs, a job (run now, pause, resume) and a run (counters, logs,
//! rerun).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use super::{hub_with_admin, location, member, Browser, ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD};
use crate::support::app::{Response, TestApp};
use crate::support::jobs::{serve, Conn, JobUnderTest};
use crate::support::manifests::CRM_SYNC;

const SYNC: &str = r#"
version: 1.0
name: contacts-sync
connectors:
  src: {provider: itemsource, auth: none}
  dst: {provider: warehouse, auth: none}
flows:
  - name: contacts
    source: {type: http, connector: src, request: {path: /contacts}, records: contacts}
    mapping: {fields: {label: 'c-{{ record.id }}'}}
    target: {type: http, connector: dst, path: /items}
"#;

/// Tenant acme with a job whose runs read two contacts and write them.
async fn runnable() -> (TestApp, String) {
    let app = hub_with_admin().await;
    app.tenant("acme").await;
    app.publish("contacts-sync", SYNC).await;
    let src =
        serve(Router::new().route("/contacts", get(|| async { Json(json!({"contacts": [{"id": 1}, {"id": 2}]})) })))
            .await;
    let dst = serve(Router::new().route("/items", post(|| async { StatusCode::CREATED }))).await;
    let mut conns = serde_json::Map::new();
    for (name, provider, base) in [("src", "itemsource", src), ("dst", "warehouse", dst)] {
        let body = json!({"name": name, "connector": provider, "auth_kind": "none", "settings": {"base_url": base}});
        let r = app.admin(Method::POST, "/v1/tenants/acme/connections", Some(body)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        conns.insert(name.into(), r.json()["id"].clone());
    }
    let job = app
        .job("acme", json!({"name": "Contacts to warehouse", "integration": "contacts-sync", "connections": conns}))
        .await;
    (app, job)
}

/// Reloads a run's page until the run has ended.
async fn until_ended(b: &mut Browser, path: &str) -> Response {
    for _ in 0..400 {
        let r = b.get(path).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        if !r.text().contains("still going") {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the run at {path} did not end");
}

#[tokio::test]
async fn a_user_with_one_tenant_lands_in_its_workspace() {
    let app = hub_with_admin().await;
    app.tenant("acme").await;
    member(&app, "olga@acme.example", &["acme"]).await;
    let mut b = Browser::new(&app.hub);
    let r = b.sign_in("olga@acme.example", PASSWORD).await;
    assert_eq!((r.status, location(&r)), (StatusCode::SEE_OTHER, "/t/acme/".to_owned()));
    let r = b.get("/").await;
    assert_eq!(location(&r), "/t/acme/");
    let html = b.get("/t/acme/").await.text();
    assert!(html.contains("Tenant acme") && html.contains("Switch tenant"), "the header names the tenant");
    assert!(html.contains("olga@acme.example"));
    // An empty tenant: no runs yet, and the checklist's next step is the first one not done.
    assert!(html.contains("No runs yet"));
    assert!(html.contains("Getting started"));
    // A signed-in browser asking for the sign-in page goes to its workspace.
    let r = b.get("/login").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn the_switcher_lists_a_users_tenants_and_an_admin_every_tenant() {
    let app = hub_with_admin().await;
    for t in ["acme", "globex", "initech"] {
        app.tenant(t).await;
    }
    member(&app, "olga@acme.example", &["acme", "globex"]).await;
    let mut b = Browser::new(&app.hub);
    let r = b.sign_in("olga@acme.example", PASSWORD).await;
    assert_eq!(location(&r), "/tenants", "two tenants: choose one");
    let html = b.get("/tenants").await.text();
    assert!(html.contains("Tenant acme") && html.contains("Tenant globex"));
    assert!(!html.contains("initech"), "a user sees only their tenants");
    let csrf = super::csrf_of(&html);
    let r = b.post("/tenants/switch", &[("csrf", &csrf), ("tenant", "globex")]).await;
    assert_eq!(location(&r), "/t/globex/");
    assert!(b.get("/t/globex/").await.text().contains("Tenant globex"));
    assert_eq!(b.get("/t/acme/").await.status, StatusCode::NOT_FOUND, "one tenant at a time");

    let mut admin = Browser::new(&app.hub);
    let r = admin.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(location(&r), "/tenants");
    let html = admin.get("/tenants").await.text();
    for t in ["acme", "globex", "initech"] {
        assert!(html.contains(&format!("Tenant {t}")), "an admin sees {t}");
    }
}

#[tokio::test]
async fn a_run_started_from_the_job_page_shows_its_outcome_counters_and_logs() {
    let (app, job) = runnable().await;
    member(&app, "olga@acme.example", &["acme"]).await;
    let mut b = Browser::new(&app.hub);
    b.sign_in("olga@acme.example", PASSWORD).await;
    let page = b.get(&format!("/t/acme/jobs/{job}")).await;
    let html = page.text();
    assert!(html.contains("Contacts to warehouse") && html.contains("This job has not run yet"));
    assert!(html.contains("Connected") || html.contains("Not connected"), "connector status is shown");
    let csrf = super::csrf_of(&html);
    let r = b.post(&format!("/t/acme/jobs/{job}/run"), &[("csrf", &csrf), ("mode", "normal")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let run_page = location(&r);
    assert!(run_page.starts_with(&format!("/t/acme/jobs/{job}/runs/")), "{run_page}");
    let html = until_ended(&mut b, &run_page).await.text();
    assert!(html.contains("Succeeded"), "{html}");
    assert!(html.contains("<td data-label=\"Flow\">contacts</td><td data-label=\"Read\" class=\"num\">2</td><td data-label=\"Written\" class=\"num\">2</td>"), "{html}");
    assert!(html.contains("manual at"), "the trigger is shown");
    // Logs filter by level: nothing at error level in a clean run.
    let errors = b.get(&format!("{run_page}?level=error")).await.text();
    assert!(errors.contains("No log lines match"), "{errors}");
    let bad = b.get(&format!("{run_page}?level=loud")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "an unknown level is explained");
    // It shows in activity, on the job and on the dashboard, where the checklist ticks the manual run.
    let activity = b.get("/t/acme/activity").await.text();
    assert!(activity.contains("Contacts to warehouse") && activity.contains("Succeeded"));
    let failed = b.get("/t/acme/activity?status=failed").await.text();
    assert!(failed.contains("No runs match these filters"), "{failed}");
    let dashboard = b.get("/t/acme/").await.text();
    assert!(dashboard.contains("Succeeded"));
    assert!(dashboard.contains("Run a job manually</strong>\n        <span class=\"sr-only\">(done)"), "{dashboard}");
    // Rerun with the current configuration: a new run, pointing back at this one.
    let csrf = super::csrf_of(&html);
    let r = b.post(&format!("{run_page}/rerun"), &[("csrf", &csrf), ("config", "current")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let rerun_page = location(&r);
    assert_ne!(rerun_page, run_page);
    let html = until_ended(&mut b, &rerun_page).await.text();
    assert!(html.contains("Succeeded") && html.contains("Rerun of"), "{html}");
}

#[tokio::test]
async fn pause_and_resume_from_the_job_page() {
    let (app, job) = runnable().await;
    let r = app
        .admin(Method::PATCH, &format!("/v1/tenants/acme/jobs/{job}"), Some(json!({"schedule": {"preset": "hourly"}})))
        .await;
    assert!(r.status.is_success(), "{}", r.text());
    let mut b = Browser::new(&app.hub);
    b.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let html = b.get(&format!("/t/acme/jobs/{job}")).await.text();
    assert!(html.contains("Next runs:") && html.contains(">Pause</button>"));
    let csrf = super::csrf_of(&html);
    let r = b.post(&format!("/t/acme/jobs/{job}/pause"), &[("csrf", &csrf)]).await;
    assert_eq!(location(&r), format!("/t/acme/jobs/{job}"));
    let html = b.get(&format!("/t/acme/jobs/{job}")).await.text();
    assert!(html.contains("Paused") && html.contains(">Resume</button>") && !html.contains("Next runs:"));
    assert_eq!(app.admin(Method::GET, &format!("/v1/tenants/acme/jobs/{job}"), None).await.json()["paused"], true);
    let r = b.post(&format!("/t/acme/jobs/{job}/resume"), &[("csrf", &csrf)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(app.admin(Method::GET, &format!("/v1/tenants/acme/jobs/{job}"), None).await.json()["paused"], false);
    // The dashboard's checklist now counts a scheduled job.
    let dashboard = b.get("/t/acme/").await.text();
    assert!(dashboard.contains("Schedule a job</strong>\n        <span class=\"sr-only\">(done)"), "{dashboard}");
}

#[tokio::test]
async fn activity_explains_a_filter_it_cannot_use_beside_the_filters() {
    let app = hub_with_admin().await;
    app.tenant("acme").await;
    member(&app, "olga@acme.example", &["acme"]).await;
    let mut b = Browser::new(&app.hub);
    b.sign_in("olga@acme.example", PASSWORD).await;
    let r = b.get("/t/acme/activity?since=yesterday").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.text().contains("since: &#x27;yesterday&#x27; is not an RFC 3339 time") || r.text().contains("since:"),
        "{}",
        r.text()
    );
    let r = b.get("/t/acme/activity?status=failed&since=2024-05-01").await;
    assert_eq!(r.status, StatusCode::OK, "a date is a day from midnight UTC: {}", r.text());
    assert!(r.text().contains("value=\"2024-05-01\""), "the filter keeps its value");
}

#[tokio::test]
async fn the_jobs_list_pages_through_every_job() {
    let app = hub_with_admin().await;
    app.tenant("acme").await;
    app.publish("crm-sync", CRM_SYNC).await;
    let conn = app.connection("acme", "crm", "pat-secret").await;
    for i in 0..30 {
        app.job("acme", json!({"name": format!("job {i:02}"), "integration": "crm-sync", "connections": {"crm": conn}, "configs": {"region": "eu"}})).await;
    }
    let mut b = Browser::new(&app.hub);
    b.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let csrf = b.csrf().await;
    b.post("/tenants/switch", &[("csrf", &csrf), ("tenant", "acme")]).await;
    let mut seen = std::collections::BTreeSet::new();
    let mut path = "/t/acme/jobs".to_owned();
    for _ in 0..5 {
        let r = b.get(&path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text());
        let html = r.text();
        for i in 0..30 {
            if html.contains(&format!(">job {i:02}</a>")) {
                seen.insert(i);
            }
        }
        let Some(at) = html.find("rel=\"next\"") else { break };
        let href =
            html[..at].rsplit("href=\"").next().unwrap_or("").split('"').next().unwrap_or("").replace("&amp;", "&");
        path = format!("/t/acme/jobs{href}");
    }
    assert_eq!(seen.len(), 30, "every job on some page: {seen:?}");
}

#[tokio::test]
async fn the_dashboard_draws_runs_per_day_with_a_table_of_its_numbers() {
    let (app, job) = runnable().await;
    member(&app, "olga@acme.example", &["acme"]).await;
    let mut b = Browser::new(&app.hub);
    b.sign_in("olga@acme.example", PASSWORD).await;
    let before = b.get("/t/acme/").await.text();
    assert!(
        before.contains("Runs per day, last 7 days") && before.contains("No runs ended in these days."),
        "{before}"
    );
    assert!(!before.contains("<svg"), "no empty drawing");
    for _ in 0..2 {
        let csrf = super::csrf_of(&b.get(&format!("/t/acme/jobs/{job}")).await.text());
        let r = b.post(&format!("/t/acme/jobs/{job}/run"), &[("csrf", &csrf), ("mode", "normal")]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
        until_ended(&mut b, &location(&r)).await;
    }
    let html = b.get("/t/acme/").await.text();
    let today = app.hub.clock.now().date_naive();
    let (bar, row) = (today.format("%a %-d").to_string(), today.format("%a %-d %b").to_string());
    assert!(html.contains("<svg viewBox=\"0 0 420 200\" role=\"img\""), "{html}");
    assert!(html.contains(&format!("<title>{bar}: 2 succeeded</title>")), "today's bar: {html}");
    assert_eq!(html.matches("class=\"bar-").count(), 1, "one stack on one day: {html}");
    assert!(
        html.contains(&format!(
            "<tr><th scope=\"row\">{row}</th><td>2</td><td>0</td><td>0</td><td>0</td><td>2</td></tr>"
        )),
        "today's numbers in the table: {html}"
    );
    assert_eq!(html.matches("<th scope=\"row\">").count(), 7, "a row per day: {html}");
}

#[tokio::test]
async fn a_connection_whose_credentials_the_service_refuses_needs_attention_until_a_run_it_answers() {
    let refusing = Arc::new(AtomicBool::new(true));
    let flag = refusing.clone();
    let src = serve(Router::new().route(
        "/contacts",
        get(move || {
            let refusing = flag.load(Ordering::SeqCst);
            async move {
                match refusing {
                    true => StatusCode::UNAUTHORIZED.into_response(),
                    false => Json(json!({"contacts": [{"id": 1}]})).into_response(),
                }
            }
        }),
    ))
    .await;
    let dst = serve(Router::new().route("/items", post(|| async { StatusCode::CREATED }))).await;
    let key = || Some(json!({"api_key": "k-1"}));
    let conns = [
        Conn { name: "src", provider: "itemsource", auth: "api_key", base_url: &src, credentials: key() },
        Conn { name: "dst", provider: "warehouse", auth: "api_key", base_url: &dst, credentials: key() },
    ];
    let t = JobUnderTest::new(hub_with_admin().await, "contacts-sync", SYNC, &conns, json!({})).await;
    let (app, bound) = (&t.app, t.job().await["connections"].clone());
    let connection = |name: &str| {
        let path = format!("/v1/tenants/acme/connections/{}", bound[name].as_str().unwrap_or_default());
        async move { app.admin(Method::GET, &path, None).await.json() }
    };

    let run = t.trigger(json!({})).await;
    let ended = t.wait_for(&run, Duration::from_secs(30)).await;
    assert_eq!(ended["status"], "failed_integration", "{ended}");
    let src = connection("src").await;
    assert_eq!(src["status"], "error", "the refusing service's connection: {src}");
    assert!(src["status_message"].as_str().is_some_and(|m| m.contains("HTTP 401") && m.contains(&run)), "{src}");
    let dst = connection("dst").await;
    assert_eq!(dst["status"], "connected", "the other connection is left alone: {dst}");

    member(app, "olga@acme.example", &["acme"]).await;
    let mut b = Browser::new(&app.hub);
    b.sign_in("olga@acme.example", PASSWORD).await;
    let html = b.get("/t/acme/").await.text();
    let card = attention_card(&html);
    assert!(card.contains("stat-bad") && card.contains("<span class=\"stat-value\">1</span>"), "{card}");

    // The service takes the same key again (the provider's outage ended, say):
    // the run it answers shows the connection works.
    refusing.store(false, Ordering::SeqCst);
    let ended = t.run(json!({})).await;
    assert_eq!(ended["status"], "succeeded", "{ended}");
    let src = connection("src").await;
    assert_eq!((&src["status"], &src["status_message"]), (&json!("connected"), &json!(null)), "{src}");
    let html = b.get("/t/acme/").await.text();
    let card = attention_card(&html);
    assert!(card.contains("<span class=\"stat-value\">0</span>"), "{card}");
}

/// The dashboard's "Connections needing attention" card.
fn attention_card(html: &str) -> &str {
    html.split("<li class=\"stat").find(|c| c.contains("Connections needing attention")).unwrap_or_default()
}
