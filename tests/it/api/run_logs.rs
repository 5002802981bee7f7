//! A run's log through the API: structured lines, filtered by level, flow
//! and text; the cap visible in the answer; logs stored as plain lines by
//! earlier builds still served.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use ferry_core::model::Run;
use ferry_core::ports::{Condition, Item, WriteOp};
use ferry_service::repo::{keys, run_index};
use serde_json::{json, Value};

use crate::support::app::TestApp;
use crate::support::manifests::CRM_SYNC;

/// An app with tenant `acme`, a crm-sync job, and a finished run of it; returns the logs URL.
async fn with_run() -> (TestApp, String, Run) {
    let http = ferry_engine::http::HttpPolicy { max_retries: 0, timeout: Duration::from_secs(1), ..Default::default() };
    let app = TestApp::embedded_with_settings(ferry_service::Settings { http, ..Default::default() }).await;
    app.tenant("acme").await;
    app.publish("crm-sync", CRM_SYNC).await;
    let conn = app.connection("acme", "crm", "s3cret").await;
    let job = app
        .job("acme", json!({"name": "contacts", "integration": "crm-sync", "connections": {"crm": conn}, "configs": {"region": "eu"}}))
        .await;
    let run: Run = serde_json::from_value(json!({
        "id": "run-1", "tenant": "acme", "job": job, "mode": "normal",
        "triggers": [{"source": "api", "at": "2024-05-01T09:00:00Z"}], "release": 1, "status": "partial",
        "started_at": "2024-05-01T09:00:00Z", "ended_at": "2024-05-01T09:01:00Z", "counters": {}, "error": null,
        "created_at": "2024-05-01T09:00:00Z",
    }))
    .expect("a run");
    app.hub.store.write(vec![run_index::put(&run, Condition::NotExists).expect("op")]).await.expect("seed the run");
    let url = format!("/v1/tenants/acme/jobs/{job}/runs/run-1/logs");
    (app, url, run)
}

async fn store_log(app: &TestApp, run: &Run, body: Value) {
    let item = Item::new(keys::run_logs(&run.tenant, &run.job, &run.id), body);
    app.hub.store.write(vec![WriteOp::Put { item, condition: Condition::None }]).await.expect("seed the log");
}

fn line(time: &str, level: &str, flow: Option<&str>, message: &str) -> Value {
    let mut l = json!({"time": time, "level": level, "message": message});
    if let Some(f) = flow {
        l["flow"] = json!(f);
    }
    l
}

fn messages(v: &Value) -> Vec<String> {
    v["lines"].as_array().into_iter().flatten().filter_map(|l| l["message"].as_str().map(str::to_owned)).collect()
}

#[tokio::test]
async fn run_logs_filter_by_level_flow_and_text() {
    let (app, url, run) = with_run().await;
    store_log(
        &app,
        &run,
        json!({"lines": [
            line("2024-05-01T09:00:00Z", "info", None, "run started (Normal, triggered by api)"),
            line("2024-05-01T09:00:01Z", "info", Some("contacts"), "page 1: 5 read, 5 written so far"),
            line("2024-05-01T09:00:02Z", "warn", Some("contacts"), "stopped before the next page: cancelled"),
            line("2024-05-01T09:00:03Z", "error", Some("companies"), "target refused a batch: 422 Unprocessable"),
            line("2024-05-01T09:00:04Z", "error", Some("contacts"), "record not mapped: missing email"),
        ]}),
    )
    .await;
    for (query, want) in [
        ("", vec!["run started", "page 1", "stopped", "target refused", "record not mapped"]),
        ("?level=warn", vec!["stopped", "target refused", "record not mapped"]),
        ("?level=error", vec!["target refused", "record not mapped"]),
        ("?flow=contacts", vec!["page 1", "stopped", "record not mapped"]),
        ("?flow=contacts&level=error", vec!["record not mapped"]),
        ("?q=UNPROCESSABLE", vec!["target refused"]),
        ("?q=page&flow=companies", vec![]),
    ] {
        let r = app.admin(Method::GET, &format!("{url}{query}"), None).await;
        assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.text());
        let got = messages(&r.json());
        assert_eq!(got.len(), want.len(), "{query}: {got:?}");
        for (m, w) in got.iter().zip(&want) {
            assert!(m.starts_with(w), "{query}: {got:?}");
        }
    }
    let r = app.admin(Method::GET, &format!("{url}?level=error"), None).await.json();
    assert_eq!(
        r["lines"][0],
        line("2024-05-01T09:00:03Z", "error", Some("companies"), "target refused a batch: 422 Unprocessable")
    );
    assert_eq!((r["truncated"].clone(), r["dropped"].clone(), r["cap"].clone()), (json!(false), json!(0), json!(2000)));
}

#[tokio::test]
async fn a_log_past_its_cap_says_how_many_lines_were_dropped() {
    let (app, url, run) = with_run().await;
    store_log(&app, &run, json!({"lines": [line("2024-05-01T09:00:00Z", "info", None, "first")], "dropped": 1234}))
        .await;
    let r = app.admin(Method::GET, &url, None).await.json();
    assert_eq!((r["truncated"].clone(), r["dropped"].clone()), (json!(true), json!(1234)), "{r}");
    // Filtering does not hide that lines are missing.
    let r = app.admin(Method::GET, &format!("{url}?level=error"), None).await.json();
    assert_eq!((r["lines"].clone(), r["truncated"].clone()), (json!([]), json!(true)), "{r}");
}

#[tokio::test]
async fn logs_stored_as_plain_lines_are_still_served() {
    let (app, url, run) = with_run().await;
    store_log(
        &app,
        &run,
        json!({"lines": ["run started (Normal, triggered by api)", "[contacts] source failed: 500", "… 3 lines omitted …"]}),
    )
    .await;
    let r = app.admin(Method::GET, &url, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let lines = r.json()["lines"].clone();
    assert_eq!(lines[0], json!({"time": null, "level": "info", "message": "run started (Normal, triggered by api)"}));
    assert_eq!(lines[1], json!({"time": null, "level": "error", "flow": "contacts", "message": "source failed: 500"}));
    let r = app.admin(Method::GET, &format!("{url}?flow=contacts&level=error"), None).await;
    assert_eq!(messages(&r.json()), ["source failed: 500"]);
}

#[tokio::test]
async fn a_real_runs_log_lines_carry_time_level_and_flow() {
    let (app, _, _) = with_run().await;
    let job = app.admin(Method::GET, "/v1/tenants/acme/jobs", None).await.json()["items"][0]["id"]
        .as_str()
        .expect("job")
        .to_owned();
    let runs = format!("/v1/tenants/acme/jobs/{job}/runs");
    let r = app.admin(Method::POST, &runs, Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let id = r.json()["run"]["id"].as_str().expect("run id").to_owned();
    for _ in 0..400 {
        let run = app.admin(Method::GET, &format!("{runs}/{id}"), None).await.json();
        if !matches!(run["status"].as_str(), Some("queued" | "running")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all = app.admin(Method::GET, &format!("{runs}/{id}/logs"), None).await.json();
    let lines = all["lines"].as_array().cloned().unwrap_or_default();
    assert!(lines.len() >= 3, "{all}");
    assert!(lines.iter().all(|l| l["time"].is_string() && l["level"].is_string()), "{all}");
    assert!(lines.iter().any(|l| l["flow"].is_string()), "a flow's lines name it: {all}");
    // The run against a closed port failed; its errors are what `level=error` shows.
    let errors = app.admin(Method::GET, &format!("{runs}/{id}/logs?level=error"), None).await.json();
    let errors = errors["lines"].as_array().cloned().unwrap_or_default();
    assert!(!errors.is_empty() && errors.len() < lines.len(), "{all}");
    assert!(errors.iter().all(|l| l["level"] == "error"));
}

#[tokio::test]
async fn bad_log_filters_are_refused_naming_the_parameter() {
    let (app, url, _) = with_run().await;
    let r = app.admin(Method::GET, &format!("{url}?level=loud"), None).await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "invalid_filter".to_owned()), "{}", r.text());
    assert!(r.json()["error"]["message"].as_str().is_some_and(|m| m.starts_with("level:")), "{}", r.text());
    let r = app.admin(Method::GET, &format!("{url}?grep=x"), None).await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "invalid_query".to_owned()), "{}", r.text());
}
