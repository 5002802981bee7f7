//! Long runs: when an invocation's time runs out, a run stops at its last
//! checkpoint as `interrupted` and a continuation resumes it, from its cursor
//! and its page. A run whose continuations move no checkpoint fails as
//! stalled instead of looping (`exports.rs`: an S3 export that never
//! completes a part).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use ferry_service::Settings;
use serde_json::{json, Value};

use crate::support::app::TestApp;
use crate::support::jobs::{serve, Conn, JobUnderTest};

fn manifest(incremental: bool) -> String {
    let incremental = if incremental { "      incremental: {cursor_field: seq, param: after}\n" } else { "" };
    format!(
        r#"
version: 1.0
name: long-feed
connectors:
  feed: {{provider: feed, auth: none}}
  sink: {{provider: sink, auth: none}}
flows:
  - name: items
    source:
      type: http
      connector: feed
      request: {{path: /items}}
      records: items
      pagination: {{type: page_number, size: 5, size_param: per_page}}
{incremental}    target: {{type: http, connector: sink, path: /items, batch_size: 5, idempotency_key: '{{{{ record.seq }}}}'}}
"#
    )
}

const ITEMS: i64 = 60;
const PAGE_DELAY: Duration = Duration::from_millis(40);

/// 60 items with `seq` 1..=60, five per page, each page slow to come.
async fn feed(Query(q): Query<HashMap<String, String>>) -> Json<Value> {
    tokio::time::sleep(PAGE_DELAY).await;
    let page: i64 = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    let size: i64 = q.get("per_page").and_then(|p| p.parse().ok()).unwrap_or(5);
    let after: i64 = q.get("after").and_then(|s| s.parse().ok()).unwrap_or(0);
    let items: Vec<Value> =
        (after + 1..=ITEMS).skip(((page - 1) * size) as usize).take(size as usize).map(|i| json!({"seq": i})).collect();
    Json(json!({ "items": items }))
}

/// Counts each idempotency key the sink was asked to apply.
type Applied = Arc<Mutex<HashMap<String, u32>>>;

async fn setup(incremental: bool, slice: Duration) -> (JobUnderTest, Applied) {
    let src = serve(Router::new().route("/items", get(feed))).await;
    let applied: Applied = Default::default();
    let dst = serve(
        Router::new()
            .route(
                "/items",
                post(|State(applied): State<Applied>, headers: axum::http::HeaderMap| async move {
                    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                    *applied.lock().expect("lock").entry(key).or_default() += 1;
                    StatusCode::CREATED
                }),
            )
            .with_state(applied.clone()),
    )
    .await;
    let settings = Settings { run_slice: Some(slice), ..Default::default() };
    let app = TestApp::embedded_with_settings(settings).await;
    let conns = [
        Conn { name: "feed", provider: "feed", auth: "none", base_url: &src, credentials: None },
        Conn { name: "sink", provider: "sink", auth: "none", base_url: &dst, credentials: None },
    ];
    (JobUnderTest::new(app, "long-feed", &manifest(incremental), &conns, json!({})).await, applied)
}

#[tokio::test]
async fn a_run_out_of_time_continues_from_its_checkpoint_and_writes_every_record_once() {
    // Twelve pages of 40 ms in slices of 100 ms: several continuations.
    let (job, applied) = setup(true, Duration::from_millis(100)).await;
    let run = job.run(json!({})).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let continuations = run["continuations"].as_u64().unwrap_or(0);
    assert!(continuations >= 2, "the run should have been continued several times: {run}");
    assert_eq!(run["counters"]["items"]["read"], ITEMS, "each record read once across slices: {run}");
    assert_eq!(run["counters"]["items"]["written"], ITEMS, "{run}");
    assert!(run.get("progress").is_none(), "a finished run keeps no resume point: {run}");
    assert!(run["ended_at"].is_string());

    let applied = applied.lock().expect("lock").clone();
    // Batches of five carry one idempotency key each.
    assert_eq!(applied.len(), (ITEMS / 5) as usize, "every batch reached the target");
    assert!(applied.values().all(|&n| n == 1), "no batch was sent twice across continuations: {applied:?}");
    assert_eq!(job.job().await["state"]["items"]["cursor"], ITEMS, "the cursor ends at the last record");

    let logs = job.logs(run["id"].as_str().unwrap_or_default()).await;
    let id = run["id"].as_str().unwrap_or_default();
    assert!(logs.iter().any(|l| l.contains("stopped at the last checkpoint")), "{logs:?}");
    assert!(logs.iter().any(|l| l == "continuation 1 resumed the run"), "{id}: {logs:?}");
    assert_eq!(logs.iter().filter(|l| l.starts_with("run started")).count(), 1, "one log across slices");
    assert!(logs.last().is_some_and(|l| l.contains("Succeeded")), "{logs:?}");
}

#[tokio::test]
async fn a_non_incremental_run_out_of_time_continues_from_its_page_and_writes_every_record_once() {
    // Without a cursor, the page position in the flow's checkpoint is what
    // keeps each slice from starting the flow again from page one.
    let (job, applied) = setup(false, Duration::from_millis(100)).await;
    let run = job.run(json!({})).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert!(run["continuations"].as_u64().unwrap_or(0) >= 2, "{run}");
    assert_eq!(run["counters"]["items"]["read"], ITEMS, "each page read once across slices: {run}");
    let applied = applied.lock().expect("lock").clone();
    assert_eq!(applied.len(), (ITEMS / 5) as usize, "every batch reached the target");
    assert!(applied.values().all(|&n| n == 1), "no batch was sent twice across continuations: {applied:?}");
    let state = job.job().await["state"]["items"].clone();
    assert!(state.get("resume").is_none(), "the page checkpoint is cleared when the flow ends: {state}");
}

/// Records what the hub hands to the run queue (the SQS dispatcher's place).
#[derive(Default)]
struct Queue(Mutex<Vec<ferry_core::ports::RunRef>>);

#[async_trait::async_trait]
impl ferry_core::ports::RunDispatcher for Queue {
    async fn dispatch(&self, run: &ferry_core::ports::RunRef) -> Result<(), ferry_core::ports::DispatchError> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(run.clone());
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_lambda_an_interrupted_run_is_queued_again_and_the_next_invocation_resumes_it() {
    let (job, applied) = setup(true, Duration::from_secs(3600)).await;
    let queue = Arc::new(Queue::default());
    let hub = job.app.hub.clone().with_dispatcher(queue.clone());
    let req: ferry_service::runs::RunRequest = serde_json::from_value(json!({})).expect("request");
    let run = hub.runs().trigger_run("acme", &job.job, req, "api").await.expect("triggered").run;
    let mut invocations = 0;
    loop {
        let next = queue.0.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let Some(r) = next else { break };
        invocations += 1;
        assert!(invocations < 100, "the run never finished");
        // Each invocation has 100 ms left: a page or two, then a continuation.
        let deadline = std::time::Instant::now() + Duration::from_millis(100);
        hub.execute_dispatched_until(&r, Some(deadline)).await.expect("invocation");
        // Queues deliver at least once: a redelivered message finds the run
        // finished (a no-op) or interrupted (it takes the next slice); either
        // way the target sees no batch twice.
        hub.execute_dispatched_until(&r, Some(deadline)).await.expect("redelivery");
    }
    let done = hub.runs().get_run("acme", &job.job, &run.id).await.expect("run");
    assert_eq!(done.status, ferry_core::model::RunStatus::Succeeded, "{done:?}");
    assert!(done.continuations >= 2, "{invocations} invocations: {done:?}");
    assert_eq!(done.counters["items"].written, ITEMS as u64);
    let applied = applied.lock().expect("lock").clone();
    assert_eq!(applied.len(), (ITEMS / 5) as usize);
    assert!(applied.values().all(|&n| n == 1), "no batch sent twice: {applied:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_lambda_a_run_bundled_behind_a_finished_run_does_not_outlive_the_invocation() {
    let (job, applied) = setup(true, Duration::from_secs(3600)).await;
    let queue = Arc::new(Queue::default());
    let hub = job.app.hub.clone().with_dispatcher(queue.clone());
    let req = |body: Value| serde_json::from_value::<ferry_service::runs::RunRequest>(body).expect("request");
    // A short first run (one page), and a long one bundled behind it (eleven more pages of 40 ms).
    let first =
        hub.runs().trigger_run("acme", &job.job, req(json!({"max_records": 5})), "api").await.expect("first").run;
    let bundled = hub.runs().trigger_run("acme", &job.job, req(json!({})), "api").await.expect("bundled");
    assert!(bundled.bundled);
    let delivery = queue.0.lock().unwrap_or_else(|p| p.into_inner()).pop().expect("the first run was queued");

    // The invocation has 300 ms: the first run fits, the bundled one does not.
    let deadline = std::time::Instant::now() + Duration::from_millis(300);
    hub.execute_dispatched_until(&delivery, Some(deadline)).await.expect("invocation");
    let done = hub.runs().get_run("acme", &job.job, &first.id).await.expect("run");
    assert_eq!(done.status, ferry_core::model::RunStatus::Succeeded, "{done:?}");

    // The sandbox may be frozen or killed once the invocation returns: whatever
    // runs next is in the run queue, never left `running` in this invocation.
    let runs = hub.runs().list_runs("acme", &job.job, &Default::default()).await.expect("runs").items;
    let next = runs.iter().find(|r| r.id != first.id).expect("the bundled trigger's run");
    let waiting =
        matches!(next.status, ferry_core::model::RunStatus::Queued | ferry_core::model::RunStatus::Interrupted);
    assert!(waiting, "the next run was executed past the invocation's deadline: {next:?}");
    let queued: Vec<String> = queue.0.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|r| r.run.clone()).collect();
    assert_eq!(queued, std::slice::from_ref(&next.id), "the next run is handed to the run queue");

    // Later invocations take it from there, each within its own deadline.
    for _ in 0..100 {
        let Some(r) = queue.0.lock().unwrap_or_else(|p| p.into_inner()).pop() else { break };
        let deadline = std::time::Instant::now() + Duration::from_millis(300);
        hub.execute_dispatched_until(&r, Some(deadline)).await.expect("invocation");
    }
    let next = hub.runs().get_run("acme", &job.job, &next.id).await.expect("run");
    assert_eq!(next.status, ferry_core::model::RunStatus::Succeeded, "{next:?}");
    assert_eq!(next.counters["items"].written, (ITEMS - 5) as u64, "{next:?}");
    let applied = applied.lock().expect("lock").clone();
    assert_eq!(applied.len(), (ITEMS / 5) as usize);
    assert!(applied.values().all(|&n| n == 1), "no batch sent twice: {applied:?}");
}
