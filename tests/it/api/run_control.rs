//! Keeping runs in check: a running run renews its job's lease while it makes
//! progress (and loses it when it stops), concurrent triggers always bundle,
//! a crash keeps the counters of what was written, operators cancel runs, and
//! a run over its wall-clock budget fails and is not restarted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, Method, Request, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use ferry_core::model::RunStatus;
use ferry_core::ports::{Clock, ManualClock, RunRef};
use ferry_service::Settings;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::support::app::TestApp;
use crate::support::jobs::{serve, Conn, JobUnderTest};

const MANIFEST: &str = r#"
version: 1.0
name: feed-sync
connectors:
  feed: {provider: feed, auth: none}
  sink: {provider: sink, auth: none}
flows:
  - name: items
    source:
      type: http
      connector: feed
      request: {path: /items}
      records: items
      pagination: {type: page_number, size: 5, size_param: per_page}
      incremental: {cursor_field: seq, param: after}
    target: {type: http, connector: sink, path: /items, batch_size: 5, idempotency_key: '{{ record.seq }}'}
"#;

/// 60 items, five per page: twelve pages.
const ITEMS: i64 = 60;

/// A source whose pages move a manual clock forward and which can hold one
/// request of one page until the test lets it go.
#[derive(Default)]
struct Feed {
    clock: Option<Arc<ManualClock>>,
    /// How far the clock moves per page served.
    per_page: Option<chrono::Duration>,
    /// The page whose first request waits for `open` (0: none).
    hold: AtomicU32,
    held: AtomicBool,
    open: tokio::sync::Notify,
    /// Page requests received.
    requests: AtomicU32,
}

async fn feed(State(f): State<Arc<Feed>>, Query(q): Query<HashMap<String, String>>) -> Json<Value> {
    f.requests.fetch_add(1, Ordering::SeqCst);
    let page: i64 = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    let after: i64 = q.get("after").and_then(|s| s.parse().ok()).unwrap_or(0);
    let first_hold = page == i64::from(f.hold.load(Ordering::SeqCst)) && !f.held.swap(true, Ordering::SeqCst);
    if first_hold {
        f.open.notified().await;
    }
    if let (Some(clock), Some(step)) = (&f.clock, f.per_page) {
        clock.advance(step);
    }
    let items: Vec<Value> =
        (after + 1..=ITEMS).skip(((page - 1) * 5) as usize).take(5).map(|i| json!({"seq": i})).collect();
    Json(json!({ "items": items }))
}

/// A target that counts the batches it accepted and can hang from one on.
#[derive(Default)]
struct Sink {
    accepted: AtomicU32,
    /// Requests from this one on (1-based) never answer (0: none).
    hang_from: AtomicU32,
    seen: AtomicU32,
}

async fn sink(State(s): State<Arc<Sink>>) -> StatusCode {
    let n = s.seen.fetch_add(1, Ordering::SeqCst) + 1;
    let hang_from = s.hang_from.load(Ordering::SeqCst);
    if hang_from > 0 && n >= hang_from {
        std::future::pending::<()>().await;
    }
    s.accepted.fetch_add(1, Ordering::SeqCst);
    StatusCode::CREATED
}

struct World {
    job: JobUnderTest,
    clock: Arc<ManualClock>,
    feed: Arc<Feed>,
    sink: Arc<Sink>,
}

async fn world(per_page: Option<chrono::Duration>, settings: Settings) -> World {
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let feed = Arc::new(Feed { clock: Some(clock.clone()), per_page, ..Default::default() });
    let sink_state = Arc::new(Sink::default());
    let src = serve(Router::new().route("/items", get(self::feed)).with_state(feed.clone())).await;
    let dst = serve(Router::new().route("/items", post(self::sink)).with_state(sink_state.clone())).await;
    let settings = Settings { allow_private_network: true, ..settings };
    let app = TestApp::embedded_with_clock(clock.clone(), settings).await;
    let conns = [
        Conn { name: "feed", provider: "feed", auth: "none", base_url: &src, credentials: None },
        Conn { name: "sink", provider: "sink", auth: "none", base_url: &dst, credentials: None },
    ];
    let job = JobUnderTest::new(app, "feed-sync", MANIFEST, &conns, json!({})).await;
    World { job, clock, feed, sink: sink_state }
}

impl World {
    fn runs_path(&self) -> String {
        format!("/v1/tenants/acme/jobs/{}/runs", self.job.job)
    }

    /// Triggers a run through the API; returns (run id, bundled).
    async fn trigger(&self) -> (String, bool) {
        let r = self.job.app.admin(Method::POST, &self.runs_path(), Some(json!({}))).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
        let v = r.json();
        (v["run"]["id"].as_str().expect("run id").to_owned(), v["bundled"].as_bool().expect("bundled"))
    }

    async fn run(&self, id: &str) -> Value {
        self.job.app.admin(Method::GET, &format!("{}/{id}", self.runs_path()), None).await.json()
    }

    async fn runs(&self) -> Vec<Value> {
        let r = self.job.app.admin(Method::GET, &self.runs_path(), None).await;
        r.json()["items"].as_array().cloned().unwrap_or_default()
    }

    async fn cancel(&self, id: &str, token: &str) -> crate::support::app::Response {
        self.job.app.call(Method::POST, &format!("{}/{id}/cancel", self.runs_path()), Some(token), None).await
    }

    /// Waits until the source has received `n` page requests.
    async fn until_requests(&self, n: u32) {
        until(|| async { self.feed.requests.load(Ordering::SeqCst) >= n }, "the source to be asked for more pages")
            .await;
    }

    /// Waits until the run checkpointed the page ending at `seq`: it is past
    /// that page's boundary (the reader may already be fetching the next).
    async fn until_checkpoint(&self, seq: i64) {
        until(|| async { self.job.job().await["state"]["items"]["cursor"] == seq }, "the run's checkpoint").await;
    }

    /// Waits until the driver of `run` is done with it (its last log line is written).
    async fn until_driver_done(&self, id: &str) {
        until(
            || async { self.job.logs(id).await.last().is_some_and(|l| l.starts_with("run finished")) },
            "the run's driver to finish",
        )
        .await;
    }

    fn hub_with_queue(&self) -> (ferry_service::Hub, Arc<Queue>) {
        let queue = Arc::new(Queue::default());
        (self.job.app.hub.clone().with_dispatcher(queue.clone()), queue)
    }
}

/// Polls `cond` for up to ten seconds.
async fn until<F, Fut>(mut cond: F, what: &str)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..400 {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Records the runs handed to the queue instead of executing them.
#[derive(Default)]
struct Queue(Mutex<Vec<RunRef>>);

#[async_trait::async_trait]
impl ferry_core::ports::RunDispatcher for Queue {
    async fn dispatch(&self, run: &RunRef) -> Result<(), ferry_core::ports::DispatchError> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(run.clone());
        Ok(())
    }
}

impl Queue {
    fn taken(&self) -> Vec<RunRef> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn request() -> ferry_service::runs::RunRequest {
    serde_json::from_value(json!({})).expect("run request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_making_progress_past_the_lease_keeps_its_job_and_new_triggers_bundle() {
    // Each page takes six minutes of the hub's clock; the lease lasts fifteen.
    let w = world(Some(chrono::Duration::minutes(6)), Settings::default()).await;
    w.feed.hold.store(8, Ordering::SeqCst);
    let (first, bundled) = w.trigger().await;
    assert!(!bundled);
    w.until_requests(8).await;
    // Seven pages, 42 minutes: long past the lease the run took at its start.
    let (second, bundled) = w.trigger().await;
    assert!(bundled, "the run still holds its job: the trigger must wait for it");
    assert_eq!(second, first, "a bundled trigger answers with the running run");
    w.feed.open.notify_one();
    let done = w.job.wait_for(&first, Duration::from_secs(20)).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["counters"]["items"]["written"], ITEMS, "{done}");
    until(|| async { w.runs().await.len() == 2 }, "the bundled run").await;
    let runs = w.runs().await;
    let next = runs[0]["id"].as_str().expect("id").to_owned();
    assert_ne!(next, first);
    let next = w.job.wait_for(&next, Duration::from_secs(20)).await;
    assert_eq!(next["status"], "succeeded", "the bundled trigger ran after the first run: {next}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_stopped_renewing_is_taken_over_and_stops_at_its_next_page() {
    let w = world(None, Settings::default()).await;
    w.feed.hold.store(3, Ordering::SeqCst);
    let (stuck, _) = w.trigger().await;
    // Two pages written; the driver now waits on the third and renews nothing.
    w.until_requests(3).await;
    w.until_checkpoint(10).await;
    w.clock.advance(chrono::Duration::minutes(16));
    let (taker, bundled) = w.trigger().await;
    assert!(!bundled, "a lease not renewed for longer than its life is taken over");
    assert_ne!(taker, stuck);
    let abandoned = w.run(&stuck).await;
    assert_eq!(abandoned["status"], "failed_platform", "the record does not stay `running` for ever: {abandoned}");
    let taker = w.job.wait_for(&taker, Duration::from_secs(20)).await;
    assert_eq!(taker["status"], "succeeded", "{taker}");

    // The stuck driver wakes up: it writes the page it had, then finds its job taken and stops.
    w.feed.open.notify_one();
    w.until_driver_done(&stuck).await;
    let stuck = w.run(&stuck).await;
    assert_eq!(stuck["status"], "failed_platform", "{stuck}");
    assert!(stuck["error"].as_str().is_some_and(|e| e.contains("took the job over")), "{stuck}");
    assert_eq!(stuck["counters"]["items"]["written"], 15, "it went no further than its page in flight: {stuck}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_simultaneous_triggers_of_one_job_are_all_accepted_and_bundled() {
    let w = world(None, Settings::default()).await;
    // The first run waits on its first page until every trigger is answered.
    w.feed.hold.store(1, Ordering::SeqCst);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..30 {
        let router = w.job.app.router.clone();
        let key = w.job.app.admin_key.clone();
        let path = w.runs_path();
        tasks.spawn(async move {
            let req = Request::builder()
                .method(Method::POST)
                .uri(path)
                .header(header::AUTHORIZATION, format!("Bearer {key}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{}"))
                .expect("request");
            let res = router.oneshot(req).await.expect("infallible");
            let status = res.status();
            let bytes = res.into_body().collect().await.expect("body").to_bytes();
            (status, serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null))
        });
    }
    let mut answers = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        answers.push(joined.expect("task"));
    }
    let refused: Vec<&(StatusCode, Value)> = answers.iter().filter(|(s, _)| *s != StatusCode::ACCEPTED).collect();
    assert!(refused.is_empty(), "every trigger is accepted: {refused:?}");
    let started: Vec<&Value> = answers.iter().map(|(_, v)| v).filter(|v| v["bundled"] == false).collect();
    assert_eq!(started.len(), 1, "one trigger starts the run, the others bundle: {answers:?}");
    let first = started[0]["run"]["id"].as_str().expect("id").to_owned();
    assert!(answers.iter().all(|(_, v)| v["run"]["id"] == first.as_str()), "all answered with the running run");

    w.feed.open.notify_one();
    w.job.wait_for(&first, Duration::from_secs(20)).await;
    until(|| async { w.runs().await.len() == 2 }, "the bundled run").await;
    let runs = w.runs().await;
    assert_eq!(runs[0]["triggers"].as_array().map(Vec::len), Some(29), "one next run serves the 29 others");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_by_a_crash_keeps_the_counters_of_what_it_wrote() {
    let w = world(None, Settings::default()).await;
    // The third batch never gets an answer: the driver is stuck in it when the host dies.
    w.sink.hang_from.store(3, Ordering::SeqCst);
    let (hub, queue) = w.hub_with_queue();
    let run = hub.runs().trigger_run("acme", &w.job.job, request(), "api").await.expect("triggered").run;
    let delivery = queue.taken()[0].clone();
    let driver = tokio::spawn({
        let hub = hub.clone();
        async move { hub.execute_dispatched(&delivery).await }
    });
    until(|| async { w.sink.seen.load(Ordering::SeqCst) >= 3 }, "the third batch").await;
    driver.abort();
    let _ = driver.await;

    let recovered = w.job.app.hub.recover_interrupted_runs().await.expect("recovery");
    assert_eq!(recovered, 1);
    let run = w.run(&run.id).await;
    assert_eq!(run["status"], "failed_platform", "{run}");
    assert_eq!(w.sink.accepted.load(Ordering::SeqCst), 2, "two batches of five were written");
    assert_eq!(run["counters"]["items"]["written"], 10, "the counters say what was written: {run}");
    assert_eq!(run["counters"]["items"]["read"], 10, "{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_running_run_stops_it_frees_the_job_and_writes_nothing_more() {
    let w = world(None, Settings::default()).await;
    w.feed.hold.store(3, Ordering::SeqCst);
    let (run, _) = w.trigger().await;
    w.until_requests(3).await;
    w.until_checkpoint(10).await;
    let (_, bundled) = w.trigger().await;
    assert!(bundled);

    let key = w.job.app.admin_key.clone();
    let r = w.cancel(&run, &key).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let body = r.json();
    assert_eq!(body["run"]["status"], "cancelled", "{body}");
    assert_eq!(body["dropped_triggers"].as_array().map(Vec::len), Some(1), "the bundled trigger is dropped: {body}");

    // The driver gets its page 3 now, and must not write it.
    w.feed.open.notify_one();
    w.until_driver_done(&run).await;
    assert_eq!(w.sink.accepted.load(Ordering::SeqCst), 2, "no batch was written after the cancel");
    let stopped = w.run(&run).await;
    assert_eq!(stopped["status"], "cancelled", "{stopped}");
    assert!(stopped["error"].as_str().is_some_and(|e| e.starts_with("cancelled by")), "{stopped}");
    assert_eq!(stopped["counters"]["items"]["written"], 10, "{stopped}");
    assert_eq!(w.runs().await.len(), 1, "the dropped trigger started no run");

    let (next, bundled) = w.trigger().await;
    assert!(!bundled, "the job is free again");
    assert_ne!(next, run);
    assert_eq!(w.job.wait_for(&next, Duration::from_secs(20)).await["status"], "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_queued_run_ends_it_and_a_late_delivery_does_not_execute_it() {
    let w = world(None, Settings::default()).await;
    let (hub, queue) = w.hub_with_queue();
    let run = hub.runs().trigger_run("acme", &w.job.job, request(), "api").await.expect("triggered").run;
    let (user, _) = w.job.app.member("ops@acme.example", &["acme"]).await;
    let r = w.cancel(&run.id, &user).await;
    assert_eq!(r.status, StatusCode::OK, "a tenant's user is an operator: {}", r.text());
    assert_eq!(r.json()["run"]["error"], "cancelled by ops@acme.example");

    hub.execute_dispatched(&queue.taken()[0]).await.expect("a late delivery is a no-op");
    assert_eq!(w.feed.requests.load(Ordering::SeqCst), 0, "the cancelled run never read");
    let run = hub.runs().get_run("acme", &w.job.job, &run.id).await.expect("run");
    assert_eq!(run.status, RunStatus::Cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_refuses_finished_runs_with_run_finished_and_api_keys_with_403() {
    let w = world(None, Settings::default()).await;
    let (run, _) = w.trigger().await;
    assert_eq!(w.job.wait_for(&run, Duration::from_secs(20)).await["status"], "succeeded");
    let key = w.job.app.admin_key.clone();
    let r = w.cancel(&run, &key).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "run_finished".to_owned()), "{}", r.text());
    assert!(r.json()["error"]["message"].as_str().is_some_and(|m| m.contains("succeeded")), "{}", r.text());
    assert_eq!(w.run(&run).await["status"], "succeeded", "a refused cancel changes nothing");

    let r = w.cancel("01hzzzzzzzzzzzzzzzzzzzzzzz", &key).await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "not_found".to_owned()), "{}", r.text());

    // The tenant's API keys trigger runs but do not stop them.
    let (api_key, _) = w.job.app.tenant_key("acme").await;
    let (hub, _) = w.hub_with_queue();
    let queued = hub.runs().trigger_run("acme", &w.job.job, request(), "api").await.expect("triggered").run;
    let r = w.cancel(&queued.id, &api_key).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert_eq!(w.run(&queued.id).await["status"], "queued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_over_its_budget_fails_as_timed_out_at_its_next_page() {
    // An hour's budget; each page takes 25 minutes of the hub's clock.
    let settings = Settings { run_budget: Duration::from_secs(3600), ..Default::default() };
    let w = world(Some(chrono::Duration::minutes(25)), settings).await;
    let (run, _) = w.trigger().await;
    let run = w.job.wait_for(&run, Duration::from_secs(20)).await;
    assert_eq!(run["status"], "failed_timeout", "{run}");
    assert!(run["error"].as_str().is_some_and(|e| e.contains("budget of 3600s")), "{run}");
    // Pages come at 25, 50 and 75 minutes (the reader may fetch one ahead):
    // the run stops at the first page boundary past the hour.
    let written = run["counters"]["items"]["written"].as_i64().unwrap_or(-1);
    assert!(written == 10 || written == 15, "{run}");
    assert_eq!(i64::from(w.sink.accepted.load(Ordering::SeqCst)) * 5, written, "the counters say what was written");
    let (next, bundled) = w.trigger().await;
    assert!(!bundled, "the job is free again");
    assert_ne!(next, run["id"].as_str().unwrap_or_default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_does_not_resume_an_interrupted_run_whose_budget_is_spent() {
    use ferry_core::ports::Condition;
    use ferry_service::repo::{keys, records};
    let settings = Settings { run_budget: Duration::from_secs(3600), ..Default::default() };
    let w = world(None, settings).await;
    let (hub, _) = w.hub_with_queue();
    let mut run = hub.runs().trigger_run("acme", &w.job.job, request(), "api").await.expect("triggered").run;
    // It ran a slice and stopped at a checkpoint; then the host went down for two hours.
    run.status = RunStatus::Interrupted;
    run.started_at = Some(w.clock.now());
    let op = records::put(keys::run("acme", &w.job.job, &run.id), &run, Condition::None).expect("op");
    hub.store.write(vec![op]).await.expect("write");
    w.clock.advance(chrono::Duration::hours(2));

    assert_eq!(w.job.app.hub.recover_interrupted_runs().await.expect("recovery"), 1);
    let done = w.job.wait_for(&run.id, Duration::from_secs(20)).await;
    assert_eq!(done["status"], "failed_timeout", "{done}");
    assert_eq!(w.feed.requests.load(Ordering::SeqCst), 0, "nothing of it ran again");
    let (_, bundled) = w.trigger().await;
    assert!(!bundled, "the job is free again");
}
