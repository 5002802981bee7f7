//! Runs through the API: a declarative flow from a fake source to a fake target
//! on loopback, init runs filling dynamic config options, and bundling.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::support::app::TestApp;

const MANIFEST: &str = r#"
version: 1.0
name: items-sync
connectors:
  src: {provider: itemsource, auth: api_key, api_key: {header: X-API-Key}}
  dst: {provider: warehouse, auth: none}
configs:
  schema:
    type: object
    properties:
      owner: {type: string, $ref: '#/definitions/owners'}
    definitions:
      owners: {enum: [placeholder]}
flows:
  - name: owners
    triggers: [init]
    source: {type: http, connector: src, request: {path: /owners}, records: owners}
    target: {type: options, definition: owners, value: '{{ record.id }}'}
  - name: items
    source:
      type: http
      connector: src
      request: {path: /items}
      records: data.items
      pagination: {type: offset, limit: 5}
      incremental: {cursor_field: updated_at, param: since}
    mapping:
      fields:
        id: {from: id, type: integer}
        label: 'item-{{ record.id }}'
    target: {type: http, connector: dst, path: /items, idempotency_key: 'item-{{ record.id }}'}
  - name: export_jsonl
    triggers: [manual]
    source: {type: http, connector: src, request: {path: /items}, records: data.items, pagination: {type: offset, limit: 5},
             incremental: {cursor_field: updated_at}}
    mapping: {fields: {id: {from: id}, when: {from: updated_at}}}
    target: {type: file, format: jsonl, path: 'exports/items-{{ run.id }}.jsonl'}
  - name: export_csv
    triggers: [manual]
    source: {type: http, connector: src, request: {path: /items}, records: data.items, pagination: {type: offset, limit: 5}}
    mapping: {fields: {id: {from: id}, active: {from: active}}}
    target: {type: file, format: csv, path: 'exports/items.csv', columns: [id, active]}
"#;

/// A target that takes `delay` per request and counts what it received.
async fn target(delay: Duration) -> (String, Arc<AtomicU32>) {
    let received = Arc::new(AtomicU32::new(0));
    let r = received.clone();
    let router = Router::new().route(
        "/items",
        post(move |Json(_): Json<Value>| {
            let r = r.clone();
            async move {
                tokio::time::sleep(delay).await;
                r.fetch_add(1, Ordering::SeqCst);
                StatusCode::CREATED
            }
        }),
    );
    (serve(router).await, received)
}

async fn source() -> String {
    let (base, _) = crate::engine::fake_serve_with_owners().await;
    base
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}")
}

struct Setup {
    app: TestApp,
    job: String,
    received: Arc<AtomicU32>,
}

async fn setup(delay: Duration) -> Setup {
    let app = TestApp::embedded().await;
    app.tenant("acme").await;
    let r = app.admin(Method::POST, "/v1/integrations/items-sync/releases", Some(json!({"manifest": MANIFEST}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let src = source().await;
    let (dst, received) = target(delay).await;
    let mut ids = Vec::new();
    for (name, connector, auth, base, creds) in
        [("src", "itemsource", "api_key", src, Some(json!({"api_key": "k"}))), ("dst", "warehouse", "none", dst, None)]
    {
        let mut body = json!({"name": name, "connector": connector, "auth_kind": auth, "settings": {"base_url": base}});
        if let Some(c) = creds {
            body["credentials"] = c;
        }
        let r = app.admin(Method::POST, "/v1/tenants/acme/connections", Some(body)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        ids.push(r.json()["id"].as_str().expect("id").to_owned());
    }
    let r = app
        .admin(
            Method::POST,
            "/v1/tenants/acme/jobs",
            Some(json!({"name": "items", "integration": "items-sync", "connections": {"src": ids[0], "dst": ids[1]}, "configs": {}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let job = r.json()["id"].as_str().expect("job id").to_owned();
    Setup { app, job, received }
}

impl Setup {
    async fn trigger(&self, body: Value) -> Value {
        let r = self.app.admin(Method::POST, &format!("/v1/tenants/acme/jobs/{}/runs", self.job), Some(body)).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
        r.json()
    }

    async fn wait(&self, run: &str) -> Value {
        for _ in 0..300 {
            let r = self.app.admin(Method::GET, &format!("/v1/tenants/acme/jobs/{}/runs/{run}", self.job), None).await;
            let v = r.json();
            if !matches!(v["status"].as_str(), Some("queued") | Some("running")) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("run {run} did not finish");
    }

    async fn job(&self) -> Value {
        self.app.admin(Method::GET, &format!("/v1/tenants/acme/jobs/{}", self.job), None).await.json()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_normal_run_syncs_every_record_and_saves_the_cursor() {
    let s = setup(Duration::ZERO).await;
    let t = s.trigger(json!({})).await;
    assert_eq!(t["bundled"], false);
    let run = s.wait(t["run"]["id"].as_str().expect("id")).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["release"], 1);
    assert_eq!(
        run["counters"]["items"],
        json!({"read": 23, "written": 23, "skipped": 0, "failed": 0, "dead_lettered": 0})
    );
    assert_eq!(s.received.load(Ordering::SeqCst), 23);
    let job = s.job().await;
    assert_eq!(job["state"]["items"]["cursor"], "2024-01-23T00:00:00Z", "{job}");
    let logs = s
        .app
        .admin(
            Method::GET,
            &format!("/v1/tenants/acme/jobs/{}/runs/{}/logs", s.job, run["id"].as_str().unwrap_or("")),
            None,
        )
        .await;
    let lines = logs.json()["lines"].as_array().cloned().unwrap_or_default();
    assert!(lines.iter().any(|l| l["message"].as_str().is_some_and(|m| m.contains("page 5"))), "{lines:?}");
    assert!(lines.iter().all(|l| l["time"].is_string() && l["level"].is_string()), "structured lines: {lines:?}");
    assert!(!logs.text().contains("\"k\""), "no credentials in logs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_init_run_fills_the_dynamic_config_options() {
    let s = setup(Duration::ZERO).await;
    let t = s.trigger(json!({"mode": "init"})).await;
    let run = s.wait(t["run"]["id"].as_str().expect("id")).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(s.received.load(Ordering::SeqCst), 0, "init runs only the init flows");
    assert_eq!(s.job().await["dynamic_options"]["owners"], json!(["ann", "bob"]));
    let r = s
        .app
        .admin(Method::PATCH, &format!("/v1/tenants/acme/jobs/{}", s.job), Some(json!({"configs": {"owner": "zed"}})))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "a value outside the options is refused: {}", r.text());
    let r = s
        .app
        .admin(Method::PATCH, &format!("/v1/tenants/acme/jobs/{}", s.job), Some(json!({"configs": {"owner": "bob"}})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_during_a_run_are_bundled_into_one_next_run() {
    let s = setup(Duration::from_millis(40)).await;
    let first = s.trigger(json!({})).await;
    let first_id = first["run"]["id"].as_str().expect("id").to_owned();
    let second = s.trigger(json!({})).await;
    let third = s.trigger(json!({})).await;
    assert_eq!(second["bundled"], true);
    assert_eq!(third["bundled"], true);
    assert_eq!(second["run"]["id"], first_id.as_str(), "a bundled trigger answers with the running run");
    s.wait(&first_id).await;
    let mut runs = Vec::new();
    for _ in 0..300 {
        let r = s.app.admin(Method::GET, &format!("/v1/tenants/acme/jobs/{}/runs", s.job), None).await;
        runs = r.json()["items"].as_array().cloned().unwrap_or_default();
        if runs.len() == 2 && runs.iter().all(|r| !matches!(r["status"].as_str(), Some("queued") | Some("running"))) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(runs.len(), 2, "two triggers during the first run make one more run: {runs:?}");
    assert_eq!(runs[0]["triggers"].as_array().map(Vec::len), Some(2), "newest first, carrying both triggers");
    assert_eq!(runs[1]["id"], first_id.as_str());
}

/// Records what it is handed instead of executing it.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<ferry_core::ports::RunRef>>);

#[async_trait::async_trait]
impl ferry_core::ports::RunDispatcher for Recorder {
    async fn dispatch(&self, run: &ferry_core::ports::RunRef) -> Result<(), ferry_core::ports::DispatchError> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(run.clone());
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_dispatcher_runs_are_handed_over_and_executed_once() {
    let s = setup(Duration::ZERO).await;
    let recorder = Arc::new(Recorder::default());
    let hub = s.app.hub.clone().with_dispatcher(recorder.clone());
    let req: ferry_service::runs::RunRequest = serde_json::from_value(json!({})).expect("request");
    let t = hub.runs().trigger_run("acme", &s.job, req, "api").await.expect("triggered");
    let handed = recorder.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(handed.len(), 1);
    assert_eq!(handed[0].run, t.run.id);
    assert_eq!(
        hub.runs().get_run("acme", &s.job, &t.run.id).await.expect("run").status,
        ferry_core::model::RunStatus::Queued,
        "not executed by the API"
    );

    hub.execute_dispatched(&handed[0]).await.expect("executes");
    let run = hub.runs().get_run("acme", &s.job, &t.run.id).await.expect("run");
    assert_eq!(run.status, ferry_core::model::RunStatus::Succeeded);
    // At-least-once delivery: a second delivery changes nothing.
    hub.execute_dispatched(&handed[0]).await.expect("no-op");
    assert_eq!(s.received.load(Ordering::SeqCst), 23, "records were written once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_after_the_run_ended_but_before_its_lease_was_freed_starts_the_next_run() {
    use ferry_core::ports::Condition;
    use ferry_service::repo::{keys, records};
    let s = setup(Duration::ZERO).await;
    let recorder = Arc::new(Recorder::default());
    let hub = s.app.hub.clone().with_dispatcher(recorder.clone());
    let request = || serde_json::from_value::<ferry_service::runs::RunRequest>(json!({})).expect("request");
    let first = hub.runs().trigger_run("acme", &s.job, request(), "api").await.expect("triggered");
    let second = hub.runs().trigger_run("acme", &s.job, request(), "api").await.expect("bundled");
    assert!(second.bundled && second.run.id == first.run.id);

    // The run's final record is written; its driver has not freed the lease yet.
    let mut ended = hub.runs().get_run("acme", &s.job, &first.run.id).await.expect("run");
    ended.status = ferry_core::model::RunStatus::Succeeded;
    let op = records::put(keys::run("acme", &s.job, &ended.id), &ended, Condition::None).expect("op");
    hub.store.write(vec![op]).await.expect("write");

    let third = hub.runs().trigger_run("acme", &s.job, request(), "api").await.expect("triggered");
    assert!(!third.bundled, "not bundled into a run that has ended");
    assert_ne!(third.run.id, first.run.id);
    assert_eq!(third.run.triggers.len(), 2, "the trigger bundled earlier comes along: {:?}", third.run.triggers);
    let handed: Vec<String> =
        recorder.0.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|r| r.run.clone()).collect();
    assert_eq!(handed, [first.run.id.clone(), third.run.id.clone()]);
    // The first run's driver, finishing now, finds the lease taken over and starts nothing.
    assert_eq!(
        hub.runs().get_run("acme", &s.job, &third.run.id).await.expect("run").status,
        ferry_core::model::RunStatus::Queued
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_targets_write_whole_files_and_save_the_cursor_after_commit() {
    let s = setup(Duration::ZERO).await;
    let t = s.trigger(json!({})).await;
    let run = s.wait(t["run"]["id"].as_str().expect("id")).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let files = s.app.hub.files.clone().expect("the test hub has a file store");
    let jsonl = files
        .read("acme", &format!("exports/items-{}.jsonl", run["id"].as_str().unwrap_or("")))
        .await
        .expect("read")
        .expect("committed");
    let lines: Vec<Value> =
        String::from_utf8_lossy(&jsonl).lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert_eq!(lines.len(), 23);
    assert_eq!(lines[22], json!({"id": 22, "when": "2024-01-23T00:00:00Z"}));
    let csv = files.read("acme", "exports/items.csv").await.expect("read").expect("committed");
    let csv = String::from_utf8_lossy(&csv);
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 24, "header + 23 rows");
    assert_eq!(rows[0], "id,active");
    assert_eq!(rows[1], "0,true");
    assert_eq!(s.job().await["state"]["export_jsonl"]["cursor"], "2024-01-23T00:00:00Z");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deliveries_of_one_run_execute_it_once() {
    let s = setup(Duration::from_millis(20)).await;
    let recorder = Arc::new(Recorder::default());
    let hub = s.app.hub.clone().with_dispatcher(recorder.clone());
    let req: ferry_service::runs::RunRequest = serde_json::from_value(json!({})).expect("request");
    let t = hub.runs().trigger_run("acme", &s.job, req, "api").await.expect("triggered");
    let handed = recorder.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let (a, b, c) = tokio::join!(
        hub.execute_dispatched(&handed[0]),
        hub.execute_dispatched(&handed[0]),
        hub.execute_dispatched(&handed[0])
    );
    for r in [a, b, c] {
        r.expect("every delivery is handled");
    }
    let run = hub.runs().get_run("acme", &s.job, &t.run.id).await.expect("run");
    assert_eq!(run.status, ferry_core::model::RunStatus::Succeeded);
    assert_eq!(s.received.load(Ordering::SeqCst), 23, "records were written once");
}

/// An SQS event as Lambda delivers it from the run queue.
fn sqs_event(messages: &[(&str, &str)]) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|(id, body)| {
            json!({
                "messageId": id,
                "receiptHandle": format!("handle-{id}"),
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1700000000000",
                               "SenderId": "AROAEXAMPLE", "ApproximateFirstReceiveTimestamp": "1700000000001"},
                "messageAttributes": {},
                "md5OfBody": "00000000000000000000000000000000",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:ferry-prod-runs",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    json!({ "Records": records })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sync_handler_executes_queued_runs_and_reports_only_failed_messages() {
    let s = setup(Duration::ZERO).await;
    let recorder = Arc::new(Recorder::default());
    let hub = s.app.hub.clone().with_dispatcher(recorder.clone());
    let req: ferry_service::runs::RunRequest = serde_json::from_value(json!({})).expect("request");
    let t = hub.runs().trigger_run("acme", &s.job, req, "api").await.expect("triggered");
    let handed = recorder.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let body = ferry_aws::sqs::message_body(&handed[0]).expect("body");
    let unknown = json!({"tenant": "acme", "job": s.job, "run": "01HZZZZZZZZZZZZZZZZZZZZZZZ"}).to_string();
    let event = sqs_event(&[("m-run", &body), ("m-garbage", "{not json"), ("m-unknown", &unknown), ("m-dup", &body)]);

    let response = ferry_lambda::sync::handle(&hub, event).await.expect("an SQS batch");
    let failed: Vec<&str> = response["batchItemFailures"]
        .as_array()
        .expect("a partial batch response")
        .iter()
        .filter_map(|f| f["itemIdentifier"].as_str())
        .collect();
    assert_eq!(failed, vec!["m-garbage", "m-unknown"], "{response}");
    let run = hub.runs().get_run("acme", &s.job, &t.run.id).await.expect("run");
    assert_eq!(run.status, ferry_core::model::RunStatus::Succeeded);
    assert_eq!(s.received.load(Ordering::SeqCst), 23, "the duplicate message was a no-op");

    let all_done = ferry_lambda::sync::handle(&hub, sqs_event(&[("m-again", &body)])).await;
    assert_eq!(all_done.expect("handled")["batchItemFailures"], json!([]));
    let other = ferry_lambda::sync::handle(&hub, json!({"detail-type": "Scheduled Event"})).await;
    let err = other.expect_err("not an SQS batch");
    assert_eq!(err.kind(), "UnrecognisedEvent");
    assert!(err.to_string().contains("detail-type"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sync_handler_fires_scheduler_ticks_once_and_answers_refused_ticks_without_failing() {
    let s = setup(Duration::ZERO).await;
    let r = s
        .app
        .admin(
            Method::PATCH,
            &format!("/v1/tenants/acme/jobs/{}", s.job),
            Some(json!({"schedule": {"preset": "hourly"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let recorder = Arc::new(Recorder::default());
    let hub = s.app.hub.clone().with_dispatcher(recorder.clone());
    let hour = chrono::Utc::now().format("%Y-%m-%dT%H:00:00Z").to_string();
    let tick = json!({"tenant": "acme", "job": s.job, "tick": hour});

    let first = ferry_lambda::sync::handle(&hub, tick.clone()).await.expect("a tick");
    assert_eq!(first["outcome"], "started", "{first}");
    let again = ferry_lambda::sync::handle(&hub, tick).await.expect("a tick");
    assert_eq!(again["outcome"], "duplicate", "a redelivered tick starts nothing: {again}");
    assert_eq!(recorder.0.lock().unwrap_or_else(|p| p.into_inner()).len(), 1, "one run handed to the queue");

    let future = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    let refused = ferry_lambda::sync::handle(&hub, json!({"tenant": "acme", "job": s.job, "tick": future}))
        .await
        .expect("answered, so Scheduler does not retry");
    assert_eq!(refused["outcome"], "refused");
    assert_eq!(refused["code"], "invalid_tick");
    let gone = json!({"tenant": "acme", "job": "01HZZZZZZZZZZZZZZZZZZZZZZZ", "tick": hour});
    let skipped = ferry_lambda::sync::handle(&hub, gone).await.expect("a tick");
    assert_eq!(skipped["outcome"], "skipped", "{skipped}");
}
