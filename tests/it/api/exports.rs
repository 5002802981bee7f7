//! Exports larger than one invocation: a file target checkpoints where its
//! file is durable (the local store: its temporary file's length; S3: the
//! parts of a multipart upload) with the source's page position, and the
//! run's continuation, another invocation of the sync handler, goes on with
//! the same file from there. The file appears once, complete, at the end.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::Query;
use axum::http::{header, Method, StatusCode};
use axum::routing::get;
use axum::Router;
use ferry_core::model::{Run, RunStatus};
use ferry_core::ports::{RunDispatcher, RunRef};
use ferry_service::Hub;
use serde_json::{json, Value};

use crate::support::app::TestApp;
use crate::support::aws;
use crate::support::jobs::{serve, Conn, JobUnderTest};

const RECORDS: u64 = 200_000;
const PAGE: u64 = 4_000;
/// Makes a record ~400 bytes: S3's 5 MiB part is then a few pages, little
/// CPU, so every invocation completes one even on a busy machine.
const NOTE: &str = "a note, with a comma, to quote; and then some text that only makes the record larger, \
    as real exports carry descriptions and addresses: lorem ipsum dolor sit amet, consectetur adipiscing elit, \
    sed do eiusmod tempor incididunt ut labore et dolore magna aliqua, ut enim ad minim veniam";

fn manifest(format: &str) -> String {
    format!(
        r#"
version: 1.0
name: big-export
connectors:
  feed: {{provider: feed, auth: none, rate_limit: {{per_second: 100000}}}}
flows:
  - name: export
    source:
      type: http
      connector: feed
      request: {{path: /records}}
      records: records
      pagination: {{type: offset, limit: {PAGE}}}
    target: {{type: file, format: {format}, path: 'exports/{{{{ run.id }}}}.{format}'}}
"#
    )
}

#[derive(serde::Deserialize)]
struct Window {
    offset: u64,
    limit: u64,
}

/// `RECORDS` records of ~400 bytes in large pages, each page slow to come
/// (`delay`), so an export spans several invocations however fast the machine.
fn feed(delay: Duration) -> Router {
    Router::new().route(
        "/records",
        get(move |Query(w): Query<Window>| async move {
            tokio::time::sleep(delay).await;
            let mut body = String::with_capacity((w.limit as usize) * 140);
            body.push_str(r#"{"records":["#);
            for id in w.offset..(w.offset + w.limit).min(RECORDS) {
                if id > w.offset {
                    body.push(',');
                }
                body.push_str(&format!(
                    r#"{{"id":{id},"name":"record {id}","email":"user{id}@example.com","note":"{NOTE}"}}"#
                ));
            }
            body.push_str("]}");
            ([(header::CONTENT_TYPE, "application/json")], body)
        }),
    )
}

/// Holds dispatched runs until the test hands them to the sync handler, as the run queue does.
#[derive(Default)]
struct Queue(Mutex<Vec<RunRef>>);

#[async_trait::async_trait]
impl RunDispatcher for Queue {
    async fn dispatch(&self, run: &RunRef) -> Result<(), ferry_core::ports::DispatchError> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(run.clone());
        Ok(())
    }
}

fn sqs_event(body: &str) -> Value {
    json!({"Records": [{
        "messageId": "m-1", "receiptHandle": "h-1", "body": body,
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1700000000000",
                       "SenderId": "AROAEXAMPLE", "ApproximateFirstReceiveTimestamp": "1700000000001"},
        "messageAttributes": {}, "md5OfBody": "00000000000000000000000000000000",
        "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:ferry-runs",
        "awsRegion": "us-east-1"
    }]})
}

struct Export {
    job: JobUnderTest,
    hub: Hub,
    queue: Arc<Queue>,
}

async fn export(app: TestApp, format: &str, delay: Duration) -> Export {
    let src = serve(feed(delay)).await;
    let conns = [Conn { name: "feed", provider: "feed", auth: "none", base_url: &src, credentials: None }];
    let job = JobUnderTest::new(app, "big-export", &manifest(format), &conns, json!({})).await;
    let queue = Arc::new(Queue::default());
    let hub = job.app.hub.clone().with_dispatcher(queue.clone());
    Export { job, hub, queue }
}

impl Export {
    async fn trigger(&self) -> Run {
        let req = serde_json::from_value(json!({})).expect("request");
        self.hub.runs().trigger_run("acme", &self.job.job, req, "api").await.expect("triggered").run
    }

    /// One invocation of the sync handler with the next queued message and
    /// `deadline` to live; false when the queue is empty.
    async fn invoke(&self, deadline: Duration) -> bool {
        let Some(r) = self.queue.0.lock().unwrap_or_else(|p| p.into_inner()).pop() else { return false };
        let body = ferry_aws::sqs::message_body(&r).expect("body");
        let response = ferry_lambda::sync::handle_until(&self.hub, sqs_event(&body), Some(Instant::now() + deadline))
            .await
            .expect("an SQS batch");
        assert_eq!(response["batchItemFailures"], json!([]), "{response}");
        true
    }

    /// Invokes the sync handler until the run queue is empty; how many times.
    async fn invoke_until_done(&self, deadline: Duration) -> usize {
        let mut invocations = 0;
        while self.invoke(deadline).await {
            invocations += 1;
            assert!(invocations < 50, "the run never finished");
        }
        invocations
    }

    async fn run(&self, id: &str) -> Run {
        self.hub.runs().get_run("acme", &self.job.job, id).await.expect("run")
    }

    async fn file(&self, path: &str) -> Option<Vec<u8>> {
        self.hub.files.as_ref().expect("a file store").read("acme", path).await.expect("read")
    }
}

/// Each record once, in order: JSON Lines by `id`, CSV rows after one header.
fn assert_every_record_once(format: &str, bytes: &[u8]) {
    let text = std::str::from_utf8(bytes).expect("UTF-8");
    let mut lines = text.lines();
    if format == "csv" {
        assert_eq!(lines.next(), Some("email,id,name,note"), "the header comes first");
        assert_eq!(text.matches("email,id,name,note").count(), 1, "the header is written once");
    }
    let mut expected = 0u64;
    for line in lines {
        let id = match format {
            "csv" => line.split(',').nth(1).and_then(|id| id.parse::<u64>().ok()),
            _ => serde_json::from_str::<Value>(line).ok().and_then(|r| r["id"].as_u64()),
        };
        assert_eq!(id, Some(expected), "line {expected} of the file is {line:?}");
        expected += 1;
    }
    assert_eq!(expected, RECORDS, "every record is in the file");
}

/// Local store: 50 pages of 80 ms, at least four seconds of source, in
/// invocations that stop starting pages after 1.5 s (the handler keeps a
/// quarter back). S3 needs 5 MiB (four pages) in an invocation to move its
/// checkpoint: invocations of 10 s (7.5 s of pages), so even a machine busy
/// with other tests completes parts in each, and pages of 350 ms, so the
/// 17.5 s of source still needs at least three.
const LOCAL: (Duration, Duration) = (Duration::from_millis(80), Duration::from_secs(2));
const S3: (Duration, Duration) = (Duration::from_millis(350), Duration::from_secs(10));

async fn exports_across_invocations(app: TestApp, format: &str, (delay, deadline): (Duration, Duration)) {
    let e = export(app, format, delay).await;
    let run = e.trigger().await;
    let path = format!("exports/{}.{format}", run.id);
    assert!(e.invoke(deadline).await);
    assert_eq!(e.run(&run.id).await.status, RunStatus::Interrupted);
    assert_eq!(e.file(&path).await, None, "the file appears only when it is complete");
    let state = e.job.job().await["state"]["export"].clone();
    assert_eq!(state["resume"]["run"], run.id.as_str(), "the checkpoint names the run: {state}");
    assert!(state["resume"]["file"]["upload"]["bytes"].as_u64().unwrap_or(0) > 0, "{state}");

    let invocations = 1 + e.invoke_until_done(deadline).await;
    let done = e.run(&run.id).await;
    assert_eq!(done.status, RunStatus::Succeeded, "{done:?}");
    assert!(invocations >= 3, "{invocations} invocations");
    assert_eq!(done.continuations as usize, invocations - 1, "{done:?}");
    let counters = &done.counters["export"];
    assert_eq!((counters.read, counters.written), (RECORDS, RECORDS), "each record counted once: {done:?}");
    assert_every_record_once(format, &e.file(&path).await.expect("the committed file"));
    let state = e.job.job().await["state"]["export"].clone();
    assert!(state.get("resume").is_none(), "the resume point is cleared when the flow ends: {state}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200k_record_jsonl_export_completes_across_invocations_on_the_local_store() {
    exports_across_invocations(TestApp::embedded().await, "jsonl", LOCAL).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200k_record_csv_export_completes_across_invocations_on_the_local_store() {
    exports_across_invocations(TestApp::embedded().await, "csv", LOCAL).await;
}

/// The Lambda world: DynamoDB for the checkpoints, S3 for the file.
async fn on_aws() -> Option<TestApp> {
    let (Some(store), Some(secrets), Some(files)) =
        (aws::dynamo_store().await, aws::secrets_manager_store().await, aws::s3_file_store().await)
    else {
        return None;
    };
    let files = files.with_part_size(ferry_aws::s3_files::MIN_PART_SIZE);
    let hub = Hub::new(Arc::new(store), Arc::new(secrets)).with_files(Arc::new(files));
    Some(TestApp::with_hub(hub, tempfile::tempdir().expect("tempdir")).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200k_record_jsonl_export_completes_across_invocations_on_s3() {
    let Some(app) = on_aws().await else { return };
    exports_across_invocations(app, "jsonl", S3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200k_record_csv_export_completes_across_invocations_on_s3() {
    let Some(app) = on_aws().await else { return };
    exports_across_invocations(app, "csv", S3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_export_whose_invocations_upload_no_part_fails_as_stalled() {
    let Some(app) = on_aws().await else { return };
    // Pages of ~1.6 MiB at 200 ms each, invocations that stop after 300 ms:
    // never the 5 MiB of a part, so no continuation moves the checkpoint.
    let e = export(app, "jsonl", Duration::from_millis(200)).await;
    let run = e.trigger().await;
    e.invoke_until_done(Duration::from_millis(400)).await;
    let done = e.run(&run.id).await;
    assert_eq!(done.status, RunStatus::FailedTimeout, "{done:?}");
    let error = done.error.unwrap_or_default();
    assert!(error.contains("stalled") && error.contains("`export`"), "{error}");
    assert_eq!(e.file(&format!("exports/{}.jsonl", run.id)).await, None);
}

/// The files under the tenant's exports, temporary ones included.
fn files_left(app: &TestApp) -> Vec<String> {
    let dir = app.dir.path().join("files/acme/exports");
    std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_export_leaves_no_file() {
    // Cancelled between invocations: no continuation comes for its temporary file.
    let e = export(TestApp::embedded().await, "csv", Duration::from_millis(80)).await;
    let run = e.trigger().await;
    assert!(e.invoke(Duration::from_secs(1)).await);
    assert_eq!(e.run(&run.id).await.status, RunStatus::Interrupted);
    assert_eq!(files_left(&e.job.app).len(), 1, "the unfinished file waits for the continuation");
    let cancel = format!("/v1/tenants/acme/jobs/{}/runs/{}/cancel", e.job.job, run.id);
    let r = e.job.app.admin(Method::POST, &cancel, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(files_left(&e.job.app), Vec::<String>::new(), "the cancel discards the unfinished file");
    e.invoke_until_done(Duration::from_secs(1)).await;
    assert_eq!(e.run(&run.id).await.status, RunStatus::Cancelled);
    assert!(e.job.job().await["state"]["export"].get("resume").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_cancelled_while_it_writes_removes_its_file() {
    // The embedded host executes the run itself (no run queue).
    let e = export(TestApp::embedded().await, "jsonl", Duration::from_millis(80)).await;
    let id = e.job.trigger(json!({})).await;
    let mut read = 0;
    for _ in 0..400 {
        read = e.run(&id).await.counters.get("export").map_or(0, |c| c.read);
        if read > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(read > 0, "the export never started writing");
    let cancel = format!("/v1/tenants/acme/jobs/{}/runs/{id}/cancel", e.job.job);
    let r = e.job.app.admin(Method::POST, &cancel, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // The driver notices the cancel before its next page and discards the file.
    for _ in 0..400 {
        if files_left(&e.job.app).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(files_left(&e.job.app), Vec::<String>::new(), "a cancelled export leaves no file");
    assert_eq!(e.run(&id).await.status, RunStatus::Cancelled);
}
