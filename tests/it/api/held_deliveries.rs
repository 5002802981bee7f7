//! Paused and archived jobs and their webhook deliveries: a paused job (or a
//! job of a paused tenant) acknowledges and keeps deliveries but runs nothing
//! until it resumes, then serves each delivery once; an archived tenant's
//! hooks refuse deliveries and start no run.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::http::{Method, StatusCode};
use ferry_core::model::{RunMode, RunOptions};
use ferry_core::ports::{DispatchError, RunDispatcher, RunRef};
use ferry_http::intake::TriggerMode;
use ferry_service::runs::RunRequest;
use serde_json::{json, Value};

use super::hooks::World;

const STANDARD: &str = "{type: standard_webhooks}";
const ECHO: &str = "{type: echo_query, param: challenge}";

impl World {
    async fn runs(&self) -> Vec<Value> {
        let r = self.app.admin(Method::GET, &format!("/v1/tenants/a/jobs/{}/runs", self.job), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        r.json()["items"].as_array().cloned().unwrap_or_default()
    }

    async fn deliver(&self, id: &str, body: &str) -> crate::support::app::Response {
        self.send(self.signed(id, self.now(), body)).await
    }

    async fn patch_job(&self, body: Value) {
        let r = self.app.admin(Method::PATCH, &format!("/v1/tenants/a/jobs/{}", self.job), Some(body)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }

    async fn patch_tenant(&self, body: Value) {
        let r = self.app.admin(Method::PATCH, "/v1/tenants/a", Some(body)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }

    /// Waits until no delivery is pending and every run has finished; the runs.
    async fn settled(&self) -> Vec<Value> {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let runs = self.runs().await;
            let finished = runs.iter().all(|r| !matches!(r["status"].as_str(), Some("queued" | "running")));
            if self.pending().await == 0 && finished && !runs.is_empty() {
                return runs;
            }
            assert!(std::time::Instant::now() < deadline, "deliveries not served: {runs:?}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until `n` runs exist and all have finished.
    async fn settled_runs_or_wait(&self, n: usize) -> Vec<Value> {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let runs = self.runs().await;
            let finished = runs.iter().all(|r| !matches!(r["status"].as_str(), Some("queued" | "running")));
            if runs.len() >= n && finished {
                return runs;
            }
            assert!(std::time::Instant::now() < deadline, "runs did not finish: {runs:?}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The order ids the runs wrote, sorted.
    async fn written(&self, runs: &[Value]) -> Vec<i64> {
        let mut ids = Vec::new();
        for run in runs {
            let path = format!("orders/{}.jsonl", run["id"].as_str().expect("id"));
            if let Some(bytes) = self.app.hub.files.as_ref().expect("files").read("a", &path).await.expect("read") {
                for line in String::from_utf8(bytes).expect("utf8").lines() {
                    ids.push(serde_json::from_str::<Value>(line).expect("jsonl")["id"].as_i64().expect("id"));
                }
            }
        }
        ids.sort();
        ids
    }
}

/// Lets background triggers (the intake's, a resume's) run, or show they did not.
async fn a_moment() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn deliveries_to_a_paused_job_are_acknowledged_and_held_and_resuming_runs_them_once() {
    let w = World::new(STANDARD, ECHO, TriggerMode::Background).await;
    w.patch_job(json!({"paused": true})).await;
    for (id, body) in
        [("msg_1", r#"{"orders": [{"id": 1, "total": 10}]}"#), ("msg_2", r#"{"orders": [{"id": 2, "total": 5}]}"#)]
    {
        let r = w.deliver(id, body).await;
        assert_eq!((r.status, r.json()["status"].clone()), (StatusCode::ACCEPTED, json!("accepted")), "{}", r.text());
    }
    a_moment().await;
    assert_eq!(w.pending().await, 2, "acknowledged and kept");
    assert!(w.runs().await.is_empty(), "no run while paused: {:?}", w.runs().await);

    // "Run now" still works on a paused job (README), and a normal run leaves the deliveries alone.
    let r = w.app.admin(Method::POST, &format!("/v1/tenants/a/jobs/{}/runs", w.job), Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let manual = w.settled_runs_or_wait(1).await;
    assert_eq!(manual[0]["mode"], "normal", "{manual:?}");
    assert_eq!(w.pending().await, 2, "a normal run does not serve deliveries");

    w.patch_job(json!({"paused": false})).await;
    let runs = w.settled().await;
    let webhook: Vec<Value> = runs.iter().filter(|r| r["mode"] == "webhook").cloned().collect();
    assert_eq!(webhook.len(), 1, "one run serves what was held: {runs:?}");
    assert_eq!(webhook[0]["status"], "succeeded", "{runs:?}");
    assert_eq!(w.written(&runs).await, vec![1, 2], "each delivery once");

    // Resuming again (the job is already running) starts nothing more.
    w.patch_job(json!({"paused": false})).await;
    a_moment().await;
    assert_eq!(w.runs().await.len(), runs.len(), "{:?}", w.runs().await);
}

#[tokio::test]
async fn an_operator_may_serve_a_paused_jobs_deliveries_with_a_webhook_run_now() {
    let w = World::new(STANDARD, ECHO, TriggerMode::Background).await;
    w.patch_job(json!({"paused": true})).await;
    assert_eq!(w.deliver("msg_1", r#"{"orders": [{"id": 5, "total": 1}]}"#).await.status, StatusCode::ACCEPTED);
    a_moment().await;
    assert!(w.runs().await.is_empty());
    let r = w
        .app
        .admin(Method::POST, &format!("/v1/tenants/a/jobs/{}/runs", w.job), Some(json!({"mode": "webhook"})))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let runs = w.settled().await;
    assert_eq!(w.written(&runs).await, vec![5], "served by the operator's run");
    // Still paused: the next delivery waits again.
    assert_eq!(w.deliver("msg_2", r#"{"orders": [{"id": 6, "total": 1}]}"#).await.status, StatusCode::ACCEPTED);
    a_moment().await;
    assert_eq!((w.pending().await, w.runs().await.len()), (1, runs.len()));
}

#[tokio::test]
async fn deliveries_to_a_paused_tenants_job_are_held_until_the_tenant_resumes() {
    let w = World::new(STANDARD, ECHO, TriggerMode::Background).await;
    w.patch_tenant(json!({"paused": true})).await;
    let r = w.deliver("msg_1", r#"{"orders": [{"id": 7, "total": 1}]}"#).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    // A redelivery while held is still a duplicate, not a second delivery.
    let r = w.deliver("msg_1", r#"{"orders": [{"id": 7, "total": 1}]}"#).await;
    assert_eq!(r.json()["status"], "duplicate", "{}", r.text());
    a_moment().await;
    assert_eq!(w.pending().await, 1);
    assert!(w.runs().await.is_empty(), "no run while the tenant is paused");

    w.patch_tenant(json!({"paused": false})).await;
    let runs = w.settled().await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(w.written(&runs).await, vec![7]);
}

/// Holds dispatched runs until the test executes them (the AWS queue's way).
#[derive(Default)]
struct Held(Mutex<Vec<RunRef>>);

#[async_trait]
impl RunDispatcher for Held {
    async fn dispatch(&self, run: &RunRef) -> Result<(), DispatchError> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(run.clone());
        Ok(())
    }
}

#[tokio::test]
async fn webhook_runs_queued_or_bundled_before_a_pause_serve_no_delivery_while_paused() {
    let w = World::new(STANDARD, ECHO, TriggerMode::Off).await;
    let held = Arc::new(Held::default());
    let queued = w.app.hub.clone().with_dispatcher(held.clone());
    let webhook = || RunRequest { mode: RunMode::Webhook, options: RunOptions::default() };
    assert_eq!(w.deliver("msg_1", r#"{"orders": [{"id": 1, "total": 1}]}"#).await.status, StatusCode::ACCEPTED);
    let first = queued.runs().trigger_run("a", &w.job, webhook(), "webhook").await.expect("triggered");
    assert!(!first.bundled);
    assert_eq!(w.deliver("msg_2", r#"{"orders": [{"id": 2, "total": 1}]}"#).await.status, StatusCode::ACCEPTED);
    let second = queued.runs().trigger_run("a", &w.job, webhook(), "webhook").await.expect("triggered");
    assert!(second.bundled, "the first run still holds the job");

    // Paused before the queue delivers the run: it and the run bundled behind it leave the deliveries alone.
    w.patch_job(json!({"paused": true})).await;
    let dispatched = std::mem::take(&mut *held.0.lock().unwrap_or_else(|p| p.into_inner()));
    assert_eq!(dispatched.len(), 1);
    queued.execute_dispatched(&dispatched[0]).await.expect("execute");
    assert_eq!(w.pending().await, 2, "nothing served while paused");
    assert!(w.written(&w.runs().await).await.is_empty());

    w.patch_job(json!({"paused": false})).await;
    let runs = w.settled().await;
    assert_eq!(w.written(&runs).await, vec![1, 2], "each delivery once, after resuming");
}

#[tokio::test]
async fn a_webhook_to_an_archived_tenants_job_is_refused_and_starts_no_run() {
    let w = World::new(STANDARD, ECHO, TriggerMode::Background).await;
    // A first delivery: served, and the intake now holds the hook in its cache.
    assert_eq!(w.deliver("msg_1", r#"{"orders": [{"id": 1, "total": 1}]}"#).await.status, StatusCode::ACCEPTED);
    let before = w.settled().await.len();

    let r = w.app.admin(Method::POST, "/v1/tenants/a/archive", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = w.deliver("msg_2", r#"{"orders": [{"id": 2, "total": 1}]}"#).await;
    assert_eq!((r.status, r.code()), (StatusCode::GONE, "hook_disabled".to_owned()), "{}", r.text());
    a_moment().await;
    assert_eq!(w.pending().await, 0, "nothing stored for an archived tenant");
    assert_eq!(w.runs().await.len(), before, "no run for an archived tenant: {:?}", w.runs().await);

    // Nor through the API, nor by un-pausing the archived tenant.
    let r = w.app.admin(Method::POST, &format!("/v1/tenants/a/jobs/{}/runs", w.job), Some(json!({}))).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "tenant_archived".to_owned()), "{}", r.text());
    let r = w.app.admin(Method::PATCH, "/v1/tenants/a", Some(json!({"paused": false}))).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "tenant_archived".to_owned()), "{}", r.text());
    let tenant = w.app.hub.tenants().get_tenant("a").await.expect("tenant");
    assert!(tenant.archived && tenant.paused, "{tenant:?}");
}
