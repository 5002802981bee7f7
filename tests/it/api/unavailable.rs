//! A backend that is down (the store, the secret store) answers 503
//! `backend_unavailable` with `Retry-After`, says what a person can do, and is
//! logged once with its whole source chain (never a secret of the request);
//! a backend failure retrying will not fix stays a 500; both recover once the
//! backend is back.

use std::io;
use std::sync::{Arc, Mutex};

use axum::http::{header, Method, StatusCode};
use serde_json::json;
use tracing_subscriber::fmt::MakeWriter;

use crate::support::app::{Response, TestApp};
use crate::support::outage::{switchable_hub, Fault, Switch, BROKEN, OUTAGE};

/// Log lines of this thread only (the test runs on a current-thread runtime),
/// so other tests of the binary neither add to them nor see them.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Logs {
    fn capture(&self) -> tracing::subscriber::DefaultGuard {
        let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(self.clone()).finish();
        tracing::subscriber::set_default(subscriber)
    }
    fn take(&self) -> String {
        let mut bytes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&std::mem::take(&mut *bytes)).into_owned()
    }
}

async fn app() -> (TestApp, Switch, Switch) {
    let s = switchable_hub();
    let app = TestApp::with_hub(s.hub, s.dir).await;
    app.tenant("acme").await;
    (app, s.store, s.secrets)
}

/// The answer is the documented 503 and says which backend, and what to do.
fn assert_unavailable(r: &Response, backend: &str) {
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    assert_eq!(r.code(), "backend_unavailable", "{}", r.text());
    let message = r.json()["error"]["message"].as_str().unwrap_or_default().to_owned();
    assert!(message.contains(backend) && message.contains("retry"), "{message}");
    assert!(!message.contains(OUTAGE), "the cause is logged, not returned: {message}");
    let retry_after = r.headers.get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    assert!(matches!(retry_after, Some(1..=30)), "Retry-After of a few seconds: {:?}", r.headers);
}

#[tokio::test]
async fn an_unavailable_store_answers_503_backend_unavailable_with_retry_after_until_it_is_back() {
    let (app, store, _) = app().await;
    let logs = Logs::default();
    let _capture = logs.capture();

    store.set(Fault::Unavailable);
    let read = app.admin(Method::GET, "/v1/tenants/acme", None).await;
    assert_unavailable(&read, "store");
    let logged = logs.take();
    assert_eq!(logged.matches(OUTAGE).count(), 1, "the cause is logged once:\n{logged}");
    assert!(logged.contains(&format!("the store is unavailable: {OUTAGE}")), "{logged}");

    let write = app.admin(Method::POST, "/v1/tenants", Some(json!({"id": "beta", "name": "Beta"}))).await;
    assert_unavailable(&write, "store");

    store.set(Fault::None);
    assert_eq!(app.admin(Method::GET, "/v1/tenants/acme", None).await.status, StatusCode::OK);
    let retried = app.admin(Method::POST, "/v1/tenants", Some(json!({"id": "beta", "name": "Beta"}))).await;
    assert_eq!(retried.status, StatusCode::CREATED, "{}", retried.text());
}

#[tokio::test]
async fn an_unavailable_secret_store_answers_503_and_its_log_holds_no_secret() {
    let (app, _, secrets) = app().await;
    let logs = Logs::default();
    let _capture = logs.capture();
    let secret = format!("canary-api-key-{}", ulid::Ulid::new());
    let body = json!({"name": "crm", "connector": "hubspot", "auth_kind": "api_key",
                      "settings": {"base_url": crate::support::app::CLOSED_LOOPBACK},
                      "credentials": {"api_key": secret}});

    secrets.set(Fault::Unavailable);
    let r = app.admin(Method::POST, "/v1/tenants/acme/connections", Some(body.clone())).await;
    assert_unavailable(&r, "secret store");
    let logged = logs.take();
    assert!(logged.contains(&format!("the secret store is unavailable: {OUTAGE}")), "{logged}");
    assert!(!logged.contains(&secret) && !r.text().contains(&secret), "{logged}");

    secrets.set(Fault::None);
    let r = app.admin(Method::POST, "/v1/tenants/acme/connections", Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
}

#[tokio::test]
async fn a_backend_failure_that_retrying_will_not_fix_stays_a_500_without_retry_after() {
    let (app, store, _) = app().await;
    let logs = Logs::default();
    let _capture = logs.capture();

    store.set(Fault::Broken);
    let r = app.admin(Method::GET, "/v1/tenants/acme", None).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", r.text());
    assert_eq!(r.code(), "internal");
    assert!(r.headers.get(header::RETRY_AFTER).is_none(), "{:?}", r.headers);
    assert!(!r.text().contains(BROKEN), "the cause is logged, not returned: {}", r.text());
    let logged = logs.take();
    assert_eq!(logged.matches(BROKEN).count(), 1, "the cause is logged once:\n{logged}");
}

/// Keeps the runs handed over, for the test to deliver as the run queue would.
#[derive(Default)]
struct Recorder(Mutex<Vec<ferry_core::ports::RunRef>>);

#[async_trait::async_trait]
impl ferry_core::ports::RunDispatcher for Recorder {
    async fn dispatch(&self, run: &ferry_core::ports::RunRef) -> Result<(), ferry_core::ports::DispatchError> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(run.clone());
        Ok(())
    }
}

fn sqs_event(id: &str, body: &str) -> serde_json::Value {
    json!({"Records": [{"messageId": id, "receiptHandle": format!("handle-{id}"), "body": body,
                        "eventSource": "aws:sqs", "awsRegion": "us-east-1",
                        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:ferry-runs"}]})
}

fn failed_messages(response: &serde_json::Value) -> Vec<String> {
    response["batchItemFailures"]
        .as_array()
        .expect("a partial batch response")
        .iter()
        .filter_map(|f| f["itemIdentifier"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sync_handler_fails_what_an_unavailable_store_stopped_so_it_is_retried() {
    let (app, store, _) = app().await;
    assert_eq!(app.publish("crm-sync", crate::support::manifests::CRM_SYNC).await, 1);
    let crm = app.connection("acme", "crm", "s3cret").await;
    let job = app
        .job(
            "acme",
            json!({"name": "j", "integration": "crm-sync", "connections": {"crm": crm}, "configs": {"region": "eu"}}),
        )
        .await;
    let recorder = Arc::new(Recorder::default());
    let hub = app.hub.clone().with_dispatcher(recorder.clone());
    let req: ferry_service::runs::RunRequest = serde_json::from_value(json!({})).expect("request");
    let run = hub.runs().trigger_run("acme", &job, req, "api").await.expect("triggered").run.id;
    let handed = recorder.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let body = ferry_aws::sqs::message_body(&handed[0]).expect("body");

    store.set(Fault::Unavailable);
    let response = ferry_lambda::sync::handle(&hub, sqs_event("m-1", &body)).await.expect("an SQS batch");
    assert_eq!(failed_messages(&response), ["m-1"], "delivered again later: {response}");
    let hour = chrono::Utc::now().format("%Y-%m-%dT%H:00:00Z").to_string();
    let tick = ferry_lambda::sync::handle(&hub, json!({"tenant": "acme", "job": job, "tick": hour})).await;
    let err = tick.expect_err("the invocation fails, so Scheduler retries the tick");
    assert_eq!(err.kind(), "BackendUnavailable", "{err}");

    store.set(Fault::None);
    let response = ferry_lambda::sync::handle(&hub, sqs_event("m-1", &body)).await.expect("an SQS batch");
    assert!(failed_messages(&response).is_empty(), "{response}");
    let done = hub.runs().get_run("acme", &job, &run).await.expect("run");
    assert!(done.ended_at.is_some(), "the redelivered message executed the run: {:?}", done.status);
}
