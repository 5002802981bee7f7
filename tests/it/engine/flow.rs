//! Whole flows: fake source → mapping → fake target, including target faults.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use ferry_core::manifest::{AuthKind, Incremental, Mapping, Method, Pagination, Request};
use ferry_core::ports::SecretFields;
use ferry_engine::flow::{self, FlowState, FlowStatus, Halt, Limits, Pulse, Stop};
use ferry_engine::http::{HttpClient, HttpPolicy};
use ferry_engine::source::{Endpoint, Reader, SourceSpec};
use ferry_engine::substream::Pages;
use ferry_engine::target::{HttpTarget, Sink};
use ferry_engine::template::Templates;
use ferry_net::NetPolicy;
use serde_json::{json, Value};

use super::fake::{self, TOTAL};

/// How the fake target misbehaves.
#[derive(Clone, Copy)]
enum Fault {
    None,
    /// 400 for the record with this id.
    Refuse(u64),
    /// 503 on every request.
    Down,
    /// 429 with Retry-After: 1 on the first request.
    RateLimitOnce,
}

/// A batch the fake target received: its body and idempotency key.
type Received = (Value, Option<String>);

#[derive(Clone)]
struct Target {
    fault: Fault,
    hits: Arc<AtomicU32>,
    received: Arc<Mutex<Vec<Received>>>,
}

async fn accept(State(t): State<Target>, headers: HeaderMap, Json(body): Json<Value>) -> StatusCode {
    let n = t.hits.fetch_add(1, Ordering::SeqCst);
    match t.fault {
        Fault::Down => return StatusCode::SERVICE_UNAVAILABLE,
        Fault::RateLimitOnce if n == 0 => return StatusCode::TOO_MANY_REQUESTS,
        Fault::Refuse(id) if body["id"].as_u64() == Some(id) => return StatusCode::BAD_REQUEST,
        _ => {}
    }
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
    t.received.lock().unwrap_or_else(|p| p.into_inner()).push((body, key));
    StatusCode::CREATED
}

async fn target(fault: Fault) -> (String, Target) {
    let t = Target { fault, hits: Arc::default(), received: Arc::default() };
    let router = Router::new().route("/contacts", post(accept)).with_state(t.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (format!("http://{addr}"), t)
}

struct Outcome {
    status: FlowStatus,
    read: u64,
    written: u64,
    failed: u64,
    state: FlowState,
    checkpoints: Vec<FlowState>,
    log: Vec<String>,
}

fn contact_mapping() -> Mapping {
    serde_json::from_value(json!({"fields": {
        "id": {"from": "id", "type": "integer"},
        "updated": {"from": "updated_at", "type": "datetime"},
        "label": "contact-{{ record.id }}",
        "source": {"value": "fake"},
    }}))
    .expect("mapping")
}

async fn run_flow(fault: Fault, start: FlowState) -> (Outcome, Target) {
    run_flow_with(fault, start, Limits::default()).await
}

async fn run_mapped(fault: Fault, start: FlowState, mapping: &Mapping) -> (Outcome, Target) {
    run_flow_full(fault, start, Limits::default(), mapping).await
}

async fn run_flow_with(fault: Fault, start: FlowState, limits: Limits) -> (Outcome, Target) {
    run_flow_full(fault, start, limits, &contact_mapping()).await
}

async fn run_flow_full(fault: Fault, start: FlowState, limits: Limits, mapping: &Mapping) -> (Outcome, Target) {
    let (src, _) = fake::serve().await;
    let (dst, t) = target(fault).await;
    let req: Request = serde_json::from_value(json!({"path": "/items"})).expect("request");
    let pagination: Pagination = serde_json::from_value(json!({"type": "offset", "limit": 5})).expect("pagination");
    let inc =
        Incremental { cursor_field: "updated_at".into(), param: Some("since".into()), start: None, lookback: None };
    let secrets = SecretFields::new();
    let http = HttpClient::new(
        HttpPolicy {
            timeout: Duration::from_secs(5),
            max_retries: 2,
            base_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(20),
            ..HttpPolicy::default()
        },
        NetPolicy::new(true),
    )
    .expect("client");
    let templates = Templates::new();
    let since = start.cursor.as_ref().map(|c| c.as_str().unwrap_or_default().to_owned());
    let mut reader = Pages::Single(Reader::new(
        SourceSpec {
            request: &req,
            records: Some("data.items"),
            filter: None,
            pagination: Some(&pagination),
            incremental: Some(&inc),
            take: None,
        },
        Endpoint {
            base_url: &src,
            auth: AuthKind::None,
            api_key: None,
            default_headers: vec![],
            secrets: &secrets,
            throttle: Default::default(),
            max_response_bytes: None,
        },
        &http,
        &templates,
        since,
    ));
    let headers = BTreeMap::new();
    let mut tgt = Sink::Http(HttpTarget {
        endpoint: Endpoint {
            base_url: &dst,
            auth: AuthKind::None,
            api_key: None,
            default_headers: vec![],
            secrets: &secrets,
            throttle: Default::default(),
            max_response_bytes: None,
        },
        method: Method::Post,
        path: "/contacts",
        headers: &headers,
        batch_size: 1,
        body: None,
        idempotency_key: Some("contact-{{ record.id }}-{{ record.updated }}"),
        rejections: None,
        ordered: false,
    });
    let ctx = minijinja::context! { config => minijinja::Value::from_serialize(json!({})) };
    let mut checkpoints: Vec<FlowState> = Vec::new();
    let out =
        flow::run(&mut reader, Some(mapping), &mut tgt, &ctx, &http, &templates, start, &limits, &mut checkpoints)
            .await
            .expect("flow runs");
    (
        Outcome {
            status: out.status,
            read: out.counters.read,
            written: out.counters.written,
            failed: out.counters.failed,
            state: out.state,
            checkpoints,
            log: out.log,
        },
        t,
    )
}

fn day(i: usize) -> Value {
    json!(format!("2024-01-{:02}T00:00:00Z", i + 1))
}

#[tokio::test]
async fn records_flow_mapped_with_idempotency_keys_and_the_cursor_advances() {
    let (out, t) = run_flow(Fault::None, FlowState::default()).await;
    assert_eq!(out.status, FlowStatus::Succeeded);
    assert_eq!((out.read, out.written, out.failed), (TOTAL as u64, TOTAL as u64, 0));
    assert_eq!(out.state.cursor, Some(day(TOTAL - 1)));
    assert_eq!(out.checkpoints.len(), 6, "one checkpoint per page, then the resume point cleared");
    assert!(out.checkpoints.last().is_some_and(|c| c.resume.is_none()), "the flow ended: no resume point");
    let received = t.received.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(received.len(), TOTAL);
    assert_eq!(
        received[3].0,
        json!({"id": 3, "updated": "2024-01-04T00:00:00Z", "label": "contact-3", "source": "fake"})
    );
    assert_eq!(received[3].1.as_deref(), Some("contact-3-2024-01-04T00:00:00Z"));
}

#[tokio::test]
async fn a_permanently_refused_record_is_counted_and_the_cursor_stays_before_it() {
    let (out, _) = run_flow(Fault::Refuse(7), FlowState::default()).await;
    assert_eq!(out.status, FlowStatus::Partial);
    assert_eq!((out.read, out.written, out.failed), (TOTAL as u64, TOTAL as u64 - 1, 1));
    // Record 7 is on the second page (5..10): the cursor ends at the first page's last record.
    assert_eq!(out.state.cursor, Some(day(4)));
    assert!(out.log.iter().any(|l| l.contains("HTTP 400")), "{:?}", out.log);
}

#[tokio::test]
async fn an_unavailable_target_fails_the_flow_without_advancing_state() {
    let start = FlowState { cursor: Some(day(0)), ..Default::default() };
    let (out, t) = run_flow(Fault::Down, start.clone()).await;
    assert_eq!(out.status, FlowStatus::Failed);
    assert_eq!(out.written, 0);
    assert_eq!(out.state, start);
    assert!(out.checkpoints.is_empty(), "nothing was written, so nothing was checkpointed");
    assert_eq!(
        t.hits.load(Ordering::SeqCst),
        3,
        "the first record was tried 1 + 2 retries times, then the flow stopped"
    );
    assert!(out.log.iter().any(|l| l.contains("unavailable")), "{:?}", out.log);
}

#[tokio::test]
async fn rate_limiting_with_retry_after_delays_but_loses_nothing() {
    let (out, t) = run_flow(Fault::RateLimitOnce, FlowState::default()).await;
    assert_eq!(out.status, FlowStatus::Succeeded);
    assert_eq!(out.written, TOTAL as u64);
    assert_eq!(t.received.lock().unwrap_or_else(|p| p.into_inner()).len(), TOTAL);
}

/// Says "stop" at its `at`-th beat, and counts beats.
struct HaltAt {
    at: u32,
    why: Halt,
    beats: AtomicU32,
}

#[async_trait::async_trait]
impl Pulse for HaltAt {
    async fn beat(&self, _: &ferry_core::model::Counters) -> ferry_core::error::Result<Option<Halt>> {
        let n = self.beats.fetch_add(1, Ordering::SeqCst) + 1;
        Ok((n >= self.at).then_some(self.why))
    }
}

#[tokio::test]
async fn a_halt_at_a_page_boundary_stops_the_flow_before_its_checkpoint() {
    let pulse = Arc::new(HaltAt { at: 2, why: Halt::LeaseLost, beats: AtomicU32::new(0) });
    let limits = Limits { pulse: Some(pulse.clone()), ..Default::default() };
    let (out, t) = run_flow_with(Fault::None, FlowState::default(), limits).await;
    assert_eq!(out.status, FlowStatus::Halted(Halt::LeaseLost));
    assert_eq!(pulse.beats.load(Ordering::SeqCst), 2, "one beat per page, none after the halt");
    assert_eq!(out.written, 10, "the page in flight was written");
    assert_eq!(t.received.lock().unwrap_or_else(|p| p.into_inner()).len(), 10);
    // The run that holds the job now owns the cursor: only the first page's checkpoint was saved.
    assert_eq!(out.checkpoints.len(), 1);
    assert_eq!(out.checkpoints[0].cursor, Some(day(4)));
}

#[tokio::test]
async fn a_stop_signal_halts_the_flow_before_it_writes_anything_more() {
    let stop = Stop::default();
    stop.halt(Halt::Cancelled);
    stop.halt(Halt::OutOfTime);
    assert_eq!(stop.halted(), Some(Halt::Cancelled), "the first reason wins");
    let (out, t) = run_flow_with(Fault::None, FlowState::default(), Limits { stop, ..Default::default() }).await;
    assert_eq!(out.status, FlowStatus::Halted(Halt::Cancelled));
    assert_eq!((out.read, out.written), (0, 0));
    assert_eq!(t.hits.load(Ordering::SeqCst), 0);
    assert!(out.checkpoints.is_empty());

    let past = Stop::new(Some(std::time::Instant::now()));
    assert_eq!(past.halted(), Some(Halt::OutOfTime), "a deadline fires by itself, for checks that cannot await");
}

/// Templates that would hold a CPU or grow the process for as long as they
/// run: each fails every record with a clear error, and the flow ends.
#[tokio::test]
async fn renders_past_their_fuel_or_output_budget_fail_their_records_and_the_flow_ends() {
    let cases = [
        (
            "nested loops over a repeated string",
            "{% for a in record.updated_at * 5000 %}{% for b in record.updated_at * 5000 %}{% endfor %}{% endfor %}",
            "ran more than 100000 steps",
        ),
        ("a string repeated past the output cap", "{{ record.updated_at * 4000000 }}", "larger than 4194304 bytes"),
        ("a string repeated into 100 MB while compiling", "{{ 'x' * 100000000 }}", "multiplies strings by constants"),
    ];
    for (what, template, why) in cases {
        let mapping: Mapping =
            serde_json::from_value(json!({"fields": {"id": {"from": "id"}, "label": template}})).expect("mapping");
        let (out, t) = run_mapped(Fault::None, FlowState::default(), &mapping).await;
        assert!(
            matches!(out.status, FlowStatus::Succeeded | FlowStatus::Partial),
            "{what}: records fail, the flow does not: {:?}",
            out.log
        );
        assert_eq!((out.read, out.written, out.failed), (TOTAL as u64, 0, TOTAL as u64), "{what}");
        assert_eq!(t.hits.load(Ordering::SeqCst), 0, "{what}: nothing reached the target");
        let failures: Vec<&String> = out.log.iter().filter(|l| l.starts_with("record not mapped")).collect();
        assert_eq!(failures.len(), TOTAL, "{what}: {:?}", out.log);
        assert!(failures.iter().all(|l| l.contains(why)), "{what}: every failure says `{why}`: {}", failures[0]);
    }
}

/// Keeps the dead letters a flow hands it, one call per page; refuses to
/// store when `broken`.
#[derive(Default)]
struct Kept {
    calls: Mutex<Vec<Vec<ferry_engine::dead_letter::Failed>>>,
    broken: bool,
}

#[async_trait::async_trait]
impl ferry_engine::dead_letter::DeadLetters for Kept {
    async fn store(&self, records: Vec<ferry_engine::dead_letter::Failed>) -> ferry_core::error::Result<()> {
        if self.broken {
            return Err(ferry_core::error::Error::Internal("the store is down".into()));
        }
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).push(records);
        Ok(())
    }
}

fn keeping(kept: &Arc<Kept>) -> Limits {
    Limits { dead_letters: Some(kept.clone()), ..Default::default() }
}

#[tokio::test]
async fn a_refused_record_goes_to_the_dead_letter_port_and_the_cursor_moves_past_it() {
    let kept = Arc::new(Kept::default());
    let (out, _) = run_flow_with(Fault::Refuse(7), FlowState::default(), keeping(&kept)).await;
    assert_eq!(out.status, FlowStatus::Partial);
    assert_eq!((out.written, out.failed), (TOTAL as u64 - 1, 0));
    assert_eq!(out.state.cursor, Some(day(TOTAL - 1)), "the dead letter is safe: the cursor moves on");
    let calls = kept.calls.lock().unwrap_or_else(|p| p.into_inner());
    assert_eq!(calls.len(), 1, "one call for the page with the refusal, none for the others");
    let dl = &calls[0][0];
    assert_eq!(dl.category, ferry_core::model::DeadLetterCategory::TargetRejected);
    assert!(dl.error.starts_with("HTTP 400 from ") && dl.error.contains("/contacts"), "{}", dl.error);
    assert_eq!(dl.source["id"], 7, "the record as read");
    assert_eq!(dl.mapped.as_ref().map(|m| m["label"].clone()), Some(json!("contact-7")), "and as mapped");
}

#[tokio::test]
async fn a_mapping_error_goes_to_the_dead_letter_port_with_its_source_record() {
    let kept = Arc::new(Kept::default());
    // `updated_at` of every record is a date-time; as an integer none maps.
    let mapping: Mapping = serde_json::from_value(
        json!({"fields": {"id": {"from": "id"}, "n": {"from": "updated_at", "type": "integer"}}}),
    )
    .expect("mapping");
    let (out, t) = run_flow_full(Fault::None, FlowState::default(), keeping(&kept), &mapping).await;
    assert_eq!(out.status, FlowStatus::Partial);
    assert_eq!(out.written, 0);
    assert!(t.received.lock().unwrap_or_else(|p| p.into_inner()).is_empty());
    let calls = kept.calls.lock().unwrap_or_else(|p| p.into_inner());
    assert_eq!(calls.len(), 5, "one call per page");
    assert_eq!(calls.iter().map(Vec::len).sum::<usize>(), TOTAL, "each with its page's failures");
    let dl = &calls[0][0];
    assert_eq!(dl.category, ferry_core::model::DeadLetterCategory::Mapping);
    assert_eq!((dl.source["id"].clone(), dl.mapped.clone()), (json!(0), None));
    assert_eq!(out.state.cursor, Some(day(TOTAL - 1)));
}

#[tokio::test]
async fn dead_letters_that_cannot_be_stored_stop_the_flow_before_its_checkpoint() {
    let kept = Arc::new(Kept { broken: true, ..Default::default() });
    let (out, _) = run_flow_with(Fault::Refuse(7), FlowState::default(), keeping(&kept)).await;
    assert_eq!(out.status, FlowStatus::Failed);
    assert_eq!(out.state.cursor, Some(day(4)), "the cursor stays before the record that is not safe");
    // The first page's, and the one clearing the resume point as the flow ends: both before record 7.
    let cursors: Vec<_> = out.checkpoints.iter().map(|c| c.cursor.clone()).collect();
    assert_eq!(cursors, [Some(day(4)), Some(day(4))], "{:?}", out.checkpoints);
    assert!(out.checkpoints.last().is_some_and(|c| c.resume.is_none()), "{:?}", out.checkpoints);
    assert!(out.log.iter().any(|l| l.contains("could not store 1 dead letters")), "{:?}", out.log);
}
