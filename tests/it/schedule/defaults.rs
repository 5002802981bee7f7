//! A release's default schedule through the API: one that cannot compile is
//! refused at publish (before any job depends on it), and one that can is
//! what a job created without a schedule runs on.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::app::TestApp;
use crate::support::manifests::{publish_body, CRM_SYNC};

const HOURLY: &str = "  default: {preset: hourly}\n  presets: [hourly, daily]\n";

/// `crm-sync` with `schedule` (indented lines under `schedule:`) as its schedule.
fn crm_sync_scheduled(schedule: &str) -> String {
    assert!(CRM_SYNC.ends_with(&format!("schedule:\n{HOURLY}")), "CRM_SYNC's schedule moved");
    CRM_SYNC.replace(HOURLY, schedule)
}

#[tokio::test]
async fn a_release_whose_default_schedule_cannot_compile_is_not_published() {
    let app = TestApp::embedded().await;
    let manifest = crm_sync_scheduled("  default: {cron: '0 6 1 * MON', timezone: Europe/Vienna}\n");
    let r = app.admin(Method::POST, "/v1/integrations/crm-sync/releases", Some(publish_body(&manifest))).await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "invalid_manifest".to_owned()), "{}", r.text());
    let details = r.json()["error"]["details"].clone();
    let line = manifest.lines().position(|l| l.contains("'0 6 1 * MON'")).map(|i| i as u64 + 1);
    let column =
        manifest.lines().find(|l| l.contains("'0 6 1 * MON'")).and_then(|l| l.find('\'')).map(|c| c as u64 + 1);
    let d = &details[0];
    assert_eq!((d["line"].as_u64(), d["column"].as_u64()), (line, column), "{details}");
    assert_eq!(
        (d["path"].as_str(), d["file"].as_str()),
        (Some("/schedule/default/cron"), Some("crm-sync/PANDIUM.yaml"))
    );
    assert!(d["message"].as_str().is_some_and(|m| m.contains("not both")), "{d}");
    let r = app.admin(Method::GET, "/v1/integrations/crm-sync", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "nothing was stored: {}", r.text());
}

#[tokio::test]
async fn a_job_created_without_a_schedule_runs_on_the_valid_default() {
    let app = TestApp::embedded().await;
    app.tenant("a").await;
    let default = json!({"cron": "30 6 * * 1-5", "timezone": "Europe/Vienna"});
    app.publish("crm-sync", &crm_sync_scheduled("  default: {cron: '30 6 * * 1-5', timezone: Europe/Vienna}\n")).await;
    let crm = app.connection("a", "crm", "s3cret").await;
    let body =
        json!({"name": "nightly", "integration": "crm-sync", "connections": {"crm": crm}, "configs": {"region": "eu"}});
    let r = app.admin(Method::POST, "/v1/tenants/a/jobs", Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let j = r.json();
    assert_eq!(j["schedule"], default, "{j}");
    assert_eq!(j["problems"], json!([]), "{j}");
    assert!(j["schedule_text"].as_str().is_some_and(|t| t.contains("Europe/Vienna")), "{j}");
    assert_eq!(j["next_runs"].as_array().map(Vec::len), Some(5), "{j}");
    assert!(j["next_runs"].as_array().into_iter().flatten().all(Value::is_string), "{j}");
}
