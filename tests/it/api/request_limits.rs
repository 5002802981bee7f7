//! Request budgets (per tenant × provider) and in-flight limits (a
//! connection's `max_concurrent`) hold across every run of a hub and every
//! hub on one store, on SQLite and on DynamoDB. What is asserted is what a
//! fake provider saw: how many requests arrived in a window, how many were
//! in flight at once; never how long anything took.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use ferry_core::ports::Store;
use ferry_embedded::FileSecretStore;
use ferry_engine::throttle::{Gate, Rate};
use ferry_service::request_gate::{StoreGate, LEASE_WINDOW};
use ferry_service::Hub;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::support::app::TestApp;
use crate::support::jobs::serve;

/// Pages of one record each a job reads (plus the empty page that ends it);
/// each record is written in a batch of its own.
const PAGES: u32 = 8;

/// What the fake provider saw.
#[derive(Default)]
pub struct Seen {
    /// When each request arrived, and which job sent it.
    pub arrivals: Vec<(Instant, String)>,
    pub in_flight: u32,
    pub most_in_flight: u32,
    /// Writes (to `/<job>/sink`) in flight now and at most, and the record of each, in arrival order.
    pub writing: u32,
    pub most_writing: u32,
    pub written: Vec<u64>,
}

#[derive(Clone)]
struct Fake {
    seen: Arc<Mutex<Seen>>,
    /// How long each answer takes.
    delay: Duration,
}

impl Fake {
    async fn enter(&self, job: &str) {
        {
            let mut s = self.seen.lock().expect("lock");
            s.arrivals.push((Instant::now(), job.to_owned()));
            s.in_flight += 1;
            s.most_in_flight = s.most_in_flight.max(s.in_flight);
        }
        tokio::time::sleep(self.delay).await;
        self.seen.lock().expect("lock").in_flight -= 1;
    }
}

async fn page(
    State(f): State<Fake>,
    Path(job): Path<String>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Json<Value> {
    f.enter(&job).await;
    let n: u32 = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    let items = if n <= PAGES { vec![json!({"id": n})] } else { vec![] };
    Json(json!({ "items": items }))
}

async fn sink(State(f): State<Fake>, Path(job): Path<String>, Json(record): Json<Value>) -> StatusCode {
    {
        let mut s = f.seen.lock().expect("lock");
        s.writing += 1;
        s.most_writing = s.most_writing.max(s.writing);
        s.written.push(record["id"].as_u64().unwrap_or_default());
    }
    f.enter(&job).await;
    f.seen.lock().expect("lock").writing -= 1;
    StatusCode::OK
}

/// A provider API: `/<job>/items` pages, `/<job>/sink` takes writes.
async fn fake_provider(delay: Duration) -> (String, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let router = Router::new()
        .route("/{job}/items", get(page))
        .route("/{job}/sink", post(sink))
        .with_state(Fake { seen: seen.clone(), delay });
    (serve(router).await, seen)
}

/// An integration reading `/<job>/items` through connector `<connector>` and
/// writing each record to `/<job>/sink` through `<connector>_out`, both of
/// provider `feed`, under `rate_limit`.
fn manifest(name: &str, connector: &str, job: &str, rate_limit: &str) -> String {
    format!(
        r#"version: 1.0
name: {name}
connectors:
  {connector}: {{provider: feed, auth: none, rate_limit: {rate_limit}}}
  {connector}_out: {{provider: feed, auth: none, rate_limit: {rate_limit}}}
flows:
  - name: items
    source:
      type: http
      connector: {connector}
      request: {{path: /{job}/items}}
      records: items
      pagination: {{type: page_number, size: 1, size_param: per_page}}
    target: {{type: http, connector: {connector}_out, path: /{job}/sink, batch_size: 1}}
"#
    )
}

/// A hub over `store` with embedded secrets and files, as an app.
async fn app_over(store: Arc<dyn Store>) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let secrets = FileSecretStore::open(dir.path()).expect("secrets");
    let hub = Hub::new(store, Arc::new(secrets));
    TestApp::with_hub(hub, dir).await
}

/// Creates a connection of provider `feed` at `base` and returns its id.
async fn feed_connection(app: &TestApp, tenant: &str, name: &str, base: &str, max_concurrent: Option<u32>) -> String {
    let mut body = json!({"name": name, "connector": "feed", "auth_kind": "none", "settings": {"base_url": base}});
    if let Some(m) = max_concurrent {
        body["max_concurrent"] = json!(m);
    }
    let r = app.admin(Method::POST, &format!("/v1/tenants/{tenant}/connections"), Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    r.json()["id"].as_str().expect("id").to_owned()
}

/// Publishes `manifest` as `integration` and creates a job of it binding
/// both its connectors to `connection`; returns the job's id.
async fn job(
    app: &TestApp,
    tenant: &str,
    integration: &str,
    manifest: &str,
    connector: &str,
    connection: &str,
) -> String {
    app.publish(integration, manifest).await;
    let connections = json!({ connector: connection, format!("{connector}_out"): connection });
    let r = app
        .admin(
            Method::POST,
            &format!("/v1/tenants/{tenant}/jobs"),
            Some(json!({"name": integration, "integration": integration, "connections": connections})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    r.json()["id"].as_str().expect("job id").to_owned()
}

pub async fn trigger(app: &TestApp, tenant: &str, job: &str) -> String {
    let r = app.admin(Method::POST, &format!("/v1/tenants/{tenant}/jobs/{job}/runs"), Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    r.json()["run"]["id"].as_str().expect("run id").to_owned()
}

pub async fn finished(app: &TestApp, tenant: &str, job: &str, run: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let v = app.admin(Method::GET, &format!("/v1/tenants/{tenant}/jobs/{job}/runs/{run}"), None).await.json();
        if !matches!(v["status"].as_str(), Some("queued" | "running" | "interrupted")) {
            return v;
        }
        assert!(Instant::now() < deadline, "run {run} did not finish: {v}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The most requests a budget of `rate` lets out in any `span`: its burst,
/// plus what the rate grants over the span and one lease window (tokens
/// leased just before the span may be spent in it).
pub fn most_allowed(rate: Rate, span: Duration) -> usize {
    (rate.burst + rate.per_second * (span + LEASE_WINDOW).as_secs_f64()).floor() as usize
}

/// The most arrivals in any window of `span` starting at an arrival.
pub fn busiest(arrivals: &[Instant], span: Duration) -> usize {
    let mut sorted = arrivals.to_vec();
    sorted.sort();
    (0..sorted.len()).map(|i| sorted[i..].iter().take_while(|t| **t < sorted[i] + span).count()).max().unwrap_or(0)
}

/// Asserts the arrivals keep to `rate` over windows of one and two seconds.
pub fn assert_within_budget(arrivals: &[Instant], rate: Rate) {
    for span in [Duration::from_secs(1), Duration::from_secs(2)] {
        let (seen, allowed) = (busiest(arrivals, span), most_allowed(rate, span));
        assert!(seen <= allowed, "{seen} requests in {span:?}, more than the {allowed} the budget allows");
    }
}

/// Two jobs of one tenant, of two integrations whose connectors have other
/// names but one provider, run at once against one fake provider: together
/// they keep to one budget of 10 requests per second.
async fn concurrent_jobs_of_a_tenant_share_the_providers_budget(store: Arc<dyn Store>) {
    let rate = Rate { per_second: 10.0, burst: 1.0 };
    let (base, seen) = fake_provider(Duration::ZERO).await;
    let app = app_over(store).await;
    app.tenant("acme").await;
    let conn = feed_connection(&app, "acme", "feed", &base, None).await;
    let limit = "{per_second: 10, burst: 1}";
    let a = job(&app, "acme", "pull-a", &manifest("pull-a", "alpha", "a", limit), "alpha", &conn).await;
    let b = job(&app, "acme", "pull-b", &manifest("pull-b", "beta", "b", limit), "beta", &conn).await;
    let (run_a, run_b) = (trigger(&app, "acme", &a).await, trigger(&app, "acme", &b).await);
    for (job, run) in [(&a, &run_a), (&b, &run_b)] {
        let run = finished(&app, "acme", job, run).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(run["counters"]["items"]["written"], PAGES, "{run}");
    }
    let seen = seen.lock().expect("lock");
    // Each job: its pages, the empty page that ends them, a write per record.
    assert_eq!(seen.arrivals.len(), 2 * (2 * PAGES as usize + 1));
    let of = |job: &str| seen.arrivals.iter().filter(|(_, j)| j == job).map(|(t, _)| *t).collect::<Vec<_>>();
    let (at_a, at_b) = (of("a"), of("b"));
    let overlapped = at_a.iter().min() < at_b.iter().max() && at_b.iter().min() < at_a.iter().max();
    assert!(overlapped, "the two runs ran at the same time");
    let all: Vec<Instant> = seen.arrivals.iter().map(|(t, _)| *t).collect();
    assert_within_budget(&all, rate);
}

/// With `max_concurrent: 2` on the connection two runs share, the provider
/// never has more than two of their requests in flight at once (each run
/// alone reads ahead while it writes, so two runs would have four).
async fn max_concurrent_bounds_requests_in_flight_across_runs(store: Arc<dyn Store>) {
    let (base, seen) = fake_provider(Duration::from_millis(40)).await;
    let app = app_over(store).await;
    app.tenant("acme").await;
    let conn = feed_connection(&app, "acme", "feed", &base, Some(2)).await;
    let got = app.admin(Method::GET, &format!("/v1/tenants/acme/connections/{conn}"), None).await.json();
    assert_eq!(got["max_concurrent"], 2, "{got}");
    let limit = "{per_second: 1000}";
    let a = job(&app, "acme", "pull-a", &manifest("pull-a", "alpha", "a", limit), "alpha", &conn).await;
    let b = job(&app, "acme", "pull-b", &manifest("pull-b", "beta", "b", limit), "beta", &conn).await;
    let (run_a, run_b) = (trigger(&app, "acme", &a).await, trigger(&app, "acme", &b).await);
    for (job, run) in [(&a, &run_a), (&b, &run_b)] {
        let run = finished(&app, "acme", job, run).await;
        assert_eq!(run["status"], "succeeded", "{run}");
    }
    let seen = seen.lock().expect("lock");
    // Pages fetched ahead two at a time: each run may ask for one page past the empty one.
    let least = 2 * (2 * PAGES as usize + 1);
    assert!((least..=least + 2).contains(&seen.arrivals.len()), "{} requests", seen.arrivals.len());
    assert!(seen.most_in_flight <= 2, "{} requests were in flight at once", seen.most_in_flight);
}

/// A run's target batches go up to the connection's `max_concurrent` at
/// once (one page each here, so only across pages), and one at a time, in
/// order, for a flow with `ordered: true`; every record once either way.
async fn a_run_writes_batches_of_several_pages_at_once_unless_the_flow_is_ordered(store: Arc<dyn Store>) {
    let (base, seen) = fake_provider(Duration::from_millis(100)).await;
    let app = app_over(store).await;
    app.tenant("acme").await;
    let conn = feed_connection(&app, "acme", "feed", &base, Some(4)).await;
    let limit = "{per_second: 1000}";
    let free = job(&app, "acme", "pull-a", &manifest("pull-a", "alpha", "a", limit), "alpha", &conn).await;
    let ordered = manifest("pull-b", "beta", "b", limit).replace("    target:", "    ordered: true\n    target:");
    let ordered = job(&app, "acme", "pull-b", &ordered, "beta", &conn).await;
    let all: Vec<u64> = (1..=u64::from(PAGES)).collect();
    for (job, in_order) in [(&free, false), (&ordered, true)] {
        let run = trigger(&app, "acme", job).await;
        let run = finished(&app, "acme", job, &run).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        let mut s = seen.lock().expect("lock");
        let mut written = std::mem::take(&mut s.written);
        let most = std::mem::take(&mut s.most_writing);
        assert!(s.most_in_flight <= 4, "{} requests in flight at once", s.most_in_flight);
        if in_order {
            assert_eq!(most, 1, "an ordered flow had {most} batches in flight");
            assert_eq!(written, all, "in the order they were read");
        } else {
            assert!(most > 1, "batches of several pages were in flight at once");
            written.sort_unstable();
            assert_eq!(written, all, "every record once");
        }
    }
}

/// Budgets are per tenant: a tenant that spent its burst leaves another's
/// untouched (with a rate this slow, a shared bucket would not refill
/// within the test).
async fn tenants_do_not_share_a_budget(store: Arc<dyn Store>) {
    let gate = StoreGate::new(store.clone(), Arc::new(ferry_core::ports::SystemClock), "one".into());
    let other = StoreGate::new(store, Arc::new(ferry_core::ports::SystemClock), "two".into());
    let rate = Rate { per_second: 0.001, burst: 3.0 };
    let spend = async {
        for _ in 0..3 {
            gate.token("acme/feed", rate).await.expect("token");
            other.token("globex/feed", rate).await.expect("token");
        }
    };
    tokio::time::timeout(Duration::from_secs(60), spend).await.expect("each tenant has its own burst");
    // The same tenant and provider through another process's gate: one bucket, now empty.
    let fourth = tokio::time::timeout(Duration::from_millis(300), other.token("acme/feed", rate)).await;
    assert!(fourth.is_err(), "a fourth token of acme's burst of three was granted");
}

/// Two processes' gates on one store keep one in-flight limit between them;
/// a slot freed in one is taken up in the other.
async fn in_flight_slots_are_shared_between_gates_on_one_store(store: Arc<dyn Store>) {
    let one = StoreGate::new(store.clone(), Arc::new(ferry_core::ports::SystemClock), "one".into());
    let two = StoreGate::new(store, Arc::new(ferry_core::ports::SystemClock), "two".into());
    let first = one.slot("acme/conn", 2).await.expect("slot");
    let second = two.slot("acme/conn", 2).await.expect("slot");
    let third = tokio::time::timeout(Duration::from_millis(300), one.slot("acme/conn", 2)).await;
    assert!(third.is_err(), "a third slot of two was granted");
    drop(second);
    // `two` gives its unused slot back at its next renewal; `one` then takes it.
    let third = tokio::time::timeout(Duration::from_secs(30), one.slot("acme/conn", 2)).await;
    assert!(third.is_ok(), "the freed slot was not taken up");
    drop(first);
}

/// A claim its process stopped renewing (it crashed, its Lambda sandbox
/// froze) counts for nothing once it lapses; a live one still does.
async fn a_lapsed_claim_frees_its_slots(store: Arc<dyn Store>) {
    use ferry_core::ports::{Condition, Item, Key, WriteOp};
    let now_us = chrono::Utc::now().timestamp_micros();
    let claims = |until_us: i64| json!({"holders": {"gone": {"slots": 2, "until_us": until_us}}});
    let key = |connection: &str| Key::new("T#acme#LIMITS", format!("INFLIGHT#{connection}"));
    let ops = vec![
        WriteOp::Put { item: Item::new(key("lapsed"), claims(now_us - 1)), condition: Condition::NotExists },
        WriteOp::Put { item: Item::new(key("live"), claims(now_us + 60_000_000)), condition: Condition::NotExists },
    ];
    store.write(ops).await.expect("claims of another process");
    let gate = StoreGate::new(store, Arc::new(ferry_core::ports::SystemClock), "here".into());
    let lapsed = tokio::time::timeout(Duration::from_secs(30), gate.slot("acme/lapsed", 2)).await;
    assert!(lapsed.is_ok(), "the lapsed claim still held its slots");
    let live = tokio::time::timeout(Duration::from_millis(300), gate.slot("acme/live", 2)).await;
    assert!(live.is_err(), "a slot held by a live claim was granted");
}

both_stores! {
    concurrent_jobs_of_a_tenant_share_the_providers_budget =>
        concurrent_jobs_of_a_tenant_share_the_providers_budget_on_sqlite,
        concurrent_jobs_of_a_tenant_share_the_providers_budget_on_dynamodb;
    max_concurrent_bounds_requests_in_flight_across_runs =>
        max_concurrent_bounds_requests_in_flight_across_runs_on_sqlite,
        max_concurrent_bounds_requests_in_flight_across_runs_on_dynamodb;
    a_run_writes_batches_of_several_pages_at_once_unless_the_flow_is_ordered =>
        a_run_writes_batches_of_several_pages_at_once_unless_the_flow_is_ordered_on_sqlite,
        a_run_writes_batches_of_several_pages_at_once_unless_the_flow_is_ordered_on_dynamodb;
    tenants_do_not_share_a_budget => tenants_do_not_share_a_budget_on_sqlite, tenants_do_not_share_a_budget_on_dynamodb;
    a_lapsed_claim_frees_its_slots => a_lapsed_claim_frees_its_slots_on_sqlite, a_lapsed_claim_frees_its_slots_on_dynamodb;
    in_flight_slots_are_shared_between_gates_on_one_store =>
        in_flight_slots_are_shared_between_gates_on_one_store_on_sqlite,
        in_flight_slots_are_shared_between_gates_on_one_store_on_dynamodb;
}

#[tokio::test]
async fn max_concurrent_outside_one_to_sixty_four_is_refused() {
    let app = TestApp::embedded().await;
    app.tenant("acme").await;
    for bad in [json!(0), json!(65), json!(-1), json!("two")] {
        let body = json!({"name": "f", "connector": "feed", "auth_kind": "none", "max_concurrent": bad});
        let r = app.admin(Method::POST, "/v1/tenants/acme/connections", Some(body)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text());
    }
    let conn = feed_connection(&app, "acme", "feed", "http://127.0.0.1:9", Some(4)).await;
    let path = format!("/v1/tenants/acme/connections/{conn}");
    let r = app.admin(Method::PATCH, &path, Some(json!({"max_concurrent": 65}))).await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "invalid_max_concurrent".to_owned()), "{}", r.text());
    let r = app.admin(Method::PATCH, &path, Some(json!({"max_concurrent": 8}))).await;
    assert_eq!(r.json()["max_concurrent"], 8, "{}", r.text());
    let r = app.admin(Method::PATCH, &path, Some(json!({"name": "renamed"}))).await;
    assert_eq!(r.json()["max_concurrent"], 8, "kept when not named: {}", r.text());
    let r = app.admin(Method::PATCH, &path, Some(json!({"max_concurrent": null}))).await;
    assert!(r.json().get("max_concurrent").is_none(), "null removes the limit: {}", r.text());
}
