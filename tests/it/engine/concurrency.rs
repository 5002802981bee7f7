//! Concurrency inside a run: target batches in flight up to the target
//! connection's `max_concurrent`, across pages, committed in page order;
//! `ordered` flows one batch at a time; offset pages fetched ahead. Every
//! assertion counts at the fake servers, never the clock.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use ferry_core::manifest::{AuthKind, Incremental, Method, Pagination, Request};
use ferry_core::ports::SecretFields;
use ferry_engine::flow::{self, FlowOutcome, FlowState, FlowStatus, Limits};
use ferry_engine::http::{HttpClient, HttpPolicy};
use ferry_engine::source::{Endpoint, Reader, SourceSpec};
use ferry_engine::substream::Pages;
use ferry_engine::target::{HttpTarget, Sink};
use ferry_engine::template::Templates;
use ferry_engine::throttle::Throttle;
use ferry_net::NetPolicy;
use serde_json::{json, Value};

use super::fake::{self, TOTAL};

/// The page size of the fake source, and the target's batch size: one batch per page.
const PAGE: usize = 5;

/// A target that counts the batches in flight at once, optionally holding
/// each until `gather` are in flight together (so a run that sends that many
/// at once is seen doing so), and failing the batch that starts with one id
/// only after a later batch was accepted.
#[derive(Clone, Default)]
struct Counting {
    gather: usize,
    fail: Option<(u64, StatusCode)>,
    now: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
    /// The first id of each batch accepted, in the order they arrived.
    accepted: Arc<Mutex<Vec<u64>>>,
}

impl Counting {
    fn accepted(&self) -> Vec<u64> {
        self.accepted.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Waits (a bounded while) until `ready` holds; fakes only, never an assertion.
async fn until(ready: impl Fn() -> bool) {
    let give_up = Instant::now() + Duration::from_secs(3);
    while !ready() && Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn accept(State(t): State<Counting>, Json(body): Json<Value>) -> StatusCode {
    let first = body[0]["id"].as_u64().or(body["id"].as_u64()).unwrap_or(u64::MAX);
    let now = t.now.fetch_add(1, Ordering::SeqCst) + 1;
    t.most.fetch_max(now, Ordering::SeqCst);
    until(|| t.now.load(Ordering::SeqCst) >= t.gather).await;
    // Time for a batch sent meanwhile to be counted as overlapping this one.
    tokio::time::sleep(Duration::from_millis(10)).await;
    let status = match t.fail {
        Some((id, status)) if id == first => {
            until(|| !t.accepted.lock().unwrap_or_else(|p| p.into_inner()).is_empty()).await;
            status
        }
        _ => {
            t.accepted.lock().unwrap_or_else(|p| p.into_inner()).push(first);
            StatusCode::CREATED
        }
    };
    t.now.fetch_sub(1, Ordering::SeqCst);
    status
}

async fn serve_target(t: Counting) -> String {
    let router = Router::new().route("/contacts", post(accept)).with_state(t);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}")
}

fn client() -> HttpClient {
    HttpClient::new(
        HttpPolicy {
            timeout: Duration::from_secs(10),
            max_retries: 1,
            base_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(20),
            ..HttpPolicy::default()
        },
        NetPolicy::new(true),
    )
    .expect("client")
}

fn in_flight(key: &str, max: u32) -> Throttle {
    Throttle { budget: None, in_flight: Some((key.into(), max)) }
}

/// The fake source (23 records, offset pages of 5) into `t`, whose
/// connection allows `max_concurrent` requests in flight (unset: `None`).
async fn run(t: &Counting, max_concurrent: Option<u32>, ordered: bool) -> (FlowOutcome, Vec<FlowState>) {
    run_sharing(t, max_concurrent, ordered, false).await
}

/// `run`, the source under the target's in-flight limit too when `shared`
/// (one connection for both, as one API read and written).
async fn run_sharing(
    t: &Counting,
    max_concurrent: Option<u32>,
    ordered: bool,
    shared: bool,
) -> (FlowOutcome, Vec<FlowState>) {
    let (src, _) = fake::serve().await;
    let dst = serve_target(t.clone()).await;
    let req: Request = serde_json::from_value(json!({"path": "/items"})).expect("request");
    let pagination: Pagination = serde_json::from_value(json!({"type": "offset", "limit": PAGE})).expect("pagination");
    let inc = Incremental { cursor_field: "updated_at".into(), param: None, start: None, lookback: None };
    let secrets = SecretFields::new();
    let http = client();
    let templates = Templates::new();
    let endpoint = |base| Endpoint {
        base_url: base,
        auth: AuthKind::None,
        api_key: None,
        default_headers: vec![],
        secrets: &secrets,
        throttle: Default::default(),
        max_response_bytes: None,
    };
    let spec = SourceSpec {
        request: &req,
        records: Some("data.items"),
        filter: None,
        pagination: Some(&pagination),
        incremental: Some(&inc),
        take: None,
    };
    let limit = Throttle { budget: None, in_flight: max_concurrent.map(|max| ("acme/target".into(), max)) };
    let source = Endpoint { throttle: if shared { limit.clone() } else { Throttle::default() }, ..endpoint(&src) };
    let mut reader = Pages::Single(Reader::new(spec, source, &http, &templates, None));
    let headers = BTreeMap::new();
    let mut target = Sink::Http(HttpTarget {
        endpoint: Endpoint { throttle: limit, ..endpoint(&dst) },
        method: Method::Post,
        path: "/contacts",
        headers: &headers,
        batch_size: PAGE as u32,
        body: None,
        idempotency_key: Some("contact-{{ record.id }}"),
        rejections: None,
        ordered,
    });
    let ctx = minijinja::context! { config => minijinja::Value::from_serialize(json!({})) };
    let mut checkpoints: Vec<FlowState> = Vec::new();
    let limits = Limits::default();
    let out = flow::run(
        &mut reader,
        None,
        &mut target,
        &ctx,
        &http,
        &templates,
        FlowState::default(),
        &limits,
        &mut checkpoints,
    )
    .await
    .expect("flow runs");
    (out, checkpoints)
}

fn day(i: usize) -> Value {
    json!(format!("2024-01-{:02}T00:00:00Z", i + 1))
}

fn pages() -> Vec<u64> {
    (0..TOTAL).step_by(PAGE).map(|i| i as u64).collect()
}

#[tokio::test]
async fn a_target_allowing_four_in_flight_gets_four_batches_of_different_pages_at_once() {
    let t = Counting { gather: 4, ..Counting::default() };
    let (out, checkpoints) = run(&t, Some(4), false).await;
    assert_eq!(out.status, FlowStatus::Succeeded, "{:?}", out.log);
    assert_eq!(t.most.load(Ordering::SeqCst), 4, "one batch per page: four pages' batches were in flight at once");
    assert_eq!(out.counters.written, TOTAL as u64);
    let mut accepted = t.accepted();
    accepted.sort_unstable();
    assert_eq!(accepted, pages(), "every batch once");
    // Committed in page order: each checkpoint's cursor is the last record of the next page.
    let cursors: Vec<Value> = checkpoints.iter().filter_map(|c| c.cursor.clone()).collect();
    let expected: Vec<Value> =
        (0..TOTAL).step_by(PAGE).map(|i| day((i + PAGE).min(TOTAL) - 1)).chain([day(TOTAL - 1)]).collect();
    assert_eq!(cursors, expected);
    assert_eq!(out.state.cursor, Some(day(TOTAL - 1)));
}

#[tokio::test]
async fn the_cursor_stays_before_a_batch_the_target_was_unavailable_for_while_later_batches_succeeded() {
    let t = Counting { gather: 1, fail: Some((0, StatusCode::SERVICE_UNAVAILABLE)), ..Counting::default() };
    let (out, checkpoints) = run(&t, Some(4), false).await;
    assert_eq!(out.status, FlowStatus::Failed, "{:?}", out.log);
    assert!(!t.accepted().is_empty(), "a later page's batch was accepted before the first failed");
    assert_eq!(out.state.cursor, None, "nothing before the first page's records was committed");
    assert!(checkpoints.iter().all(|c| c.cursor.is_none()), "no checkpoint passed the unwritten records");
}

#[tokio::test]
async fn the_cursor_stays_before_a_refused_batch_while_later_batches_succeeded() {
    let t = Counting { gather: 1, fail: Some((0, StatusCode::BAD_REQUEST)), ..Counting::default() };
    let (out, checkpoints) = run(&t, Some(4), false).await;
    // Without a dead-letter store the refused records are not safe: the cursor holds.
    assert_eq!(out.status, FlowStatus::Partial, "{:?}", out.log);
    assert_eq!((out.counters.written, out.counters.failed), ((TOTAL - PAGE) as u64, PAGE as u64));
    assert!(checkpoints.iter().all(|c| c.cursor.is_none()), "no checkpoint passed the refused records");
    assert_eq!(out.state.cursor, None);
}

/// Batches waiting for their answer hold slots of the limit the source's
/// pages fetched ahead need too: the flow reads them meanwhile, so neither
/// waits for the other for good.
#[tokio::test]
async fn a_source_and_target_under_one_in_flight_limit_both_go_on() {
    let t = Counting { gather: 1, ..Counting::default() };
    let (out, _) = run_sharing(&t, Some(2), false, true).await;
    assert_eq!(out.status, FlowStatus::Succeeded, "{:?}", out.log);
    assert_eq!(out.counters.written, TOTAL as u64);
    assert!(t.most.load(Ordering::SeqCst) <= 2);
}

#[tokio::test]
async fn an_ordered_flow_sends_its_batches_one_at_a_time_in_order() {
    let t = Counting { gather: 1, ..Counting::default() };
    let (out, _) = run(&t, Some(4), true).await;
    assert_eq!(out.status, FlowStatus::Succeeded, "{:?}", out.log);
    assert_eq!(t.most.load(Ordering::SeqCst), 1, "never two batches at once");
    assert_eq!(t.accepted(), pages(), "in the order the records were read");
}

#[tokio::test]
async fn without_max_concurrent_batches_go_one_at_a_time() {
    let t = Counting { gather: 1, ..Counting::default() };
    let (out, _) = run(&t, None, false).await;
    assert_eq!(out.status, FlowStatus::Succeeded, "{:?}", out.log);
    assert_eq!(t.most.load(Ordering::SeqCst), 1);
    assert_eq!(t.accepted(), pages());
}

/// An offset source of 23 records, 5 a page, that counts its requests in
/// flight and holds each until `gather` are (or a while passed).
#[derive(Clone, Default)]
struct SlowSource {
    gather: usize,
    now: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
}

async fn items(State(s): State<SlowSource>, Query(q): Query<BTreeMap<String, String>>) -> Json<Value> {
    let now = s.now.fetch_add(1, Ordering::SeqCst) + 1;
    s.most.fetch_max(now, Ordering::SeqCst);
    until(|| s.now.load(Ordering::SeqCst) >= s.gather).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    let start: usize = q.get("offset").and_then(|o| o.parse().ok()).unwrap_or(0);
    let records: Vec<Value> = (start..(start + PAGE).min(TOTAL)).map(fake::item).collect();
    s.now.fetch_sub(1, Ordering::SeqCst);
    Json(json!({"data": {"items": records}}))
}

#[tokio::test]
async fn offset_pages_fetched_ahead_concurrently_yield_their_records_in_order() {
    let s = SlowSource { gather: 4, ..SlowSource::default() };
    let router = Router::new().route("/items", get(items)).with_state(s.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let req: Request = serde_json::from_value(json!({"path": "/items"})).expect("request");
    let pagination: Pagination = serde_json::from_value(json!({"type": "offset", "limit": PAGE})).expect("pagination");
    let secrets = SecretFields::new();
    let http = client();
    let templates = Templates::new();
    let endpoint = Endpoint {
        base_url: &base,
        auth: AuthKind::None,
        api_key: None,
        default_headers: vec![],
        secrets: &secrets,
        throttle: in_flight("acme/source", 4),
        max_response_bytes: None,
    };
    let spec = SourceSpec {
        request: &req,
        records: Some("data.items"),
        filter: None,
        pagination: Some(&pagination),
        incremental: None,
        take: None,
    };
    let mut reader = Reader::new(spec, endpoint, &http, &templates, None);
    let ctx = minijinja::context! {};
    let mut ids = Vec::new();
    while let Some(page) = reader.next_page(&ctx).await.expect("page") {
        ids.extend(page.records.iter().filter_map(|r| r["id"].as_u64()));
    }
    assert_eq!(ids, (0..TOTAL as u64).collect::<Vec<_>>(), "every record once, in order");
    assert_eq!(s.most.load(Ordering::SeqCst), 4, "the pages after the first were fetched four at a time");
}
