//! A run from trigger to file, across function binaries as Lambda runs them:
//! api-integrations queues it on SQS (moto), the test takes the message off
//! the queue and hands it to the sync function in the event Lambda's SQS
//! event source mapping sends, and the sync function reads the source with
//! the connection's credentials (Secrets Manager) and writes the file to S3.

use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use ferry_aws::S3FileStore;
use ferry_core::ports::FileStore;
use ferry_e2e::sqs::{batch_item_failures, sqs_event, QueuedMessage};
use ferry_e2e::{Deployment, Outcome};
use ferry_lambda::hub as aws;
use serde_json::{json, Value};

use super::runtime::{aws_configured, expect, expect_error, Function, INVOKE_TIMEOUT};
use super::template::Template;

const MANIFEST: &str = r#"
version: 1.0
name: items-export
connectors:
  src: {provider: itemsource, auth: api_key, api_key: {header: X-API-Key}}
flows:
  - name: export
    source: {type: http, connector: src, request: {path: /items}, records: items}
    mapping: {fields: {id: {from: id}, name: {from: name}}}
    target: {type: file, format: jsonl, path: 'exports/items-{{ run.id }}.jsonl'}
"#;

/// A process integration: the sync function is built without the process
/// runner (SAM builds it on its own, without `ferry`'s features).
const PROCESS_MANIFEST: &str = "version: 0.5\nname: counter-e2e\nbase: node:20.9.0\nrun: sh main.sh\n";

const SOURCE_KEY: &str = "src-key-lambda-e2e";

/// The connected system: answers only with the connection's API key.
async fn source() -> String {
    let items = get(|headers: HeaderMap| async move {
        if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(SOURCE_KEY) {
            return Err(StatusCode::UNAUTHORIZED);
        }
        Ok(Json(json!({"items": [{"id": 1, "name": "anchor"}, {"id": 2, "name": "buoy"}]})))
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the source");
    let addr = listener.local_addr().expect("source address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, Router::new().route("/items", items)).await;
    });
    format!("http://{addr}")
}

fn with(env: &[(String, String)], name: &str, value: &str) -> Vec<(String, String)> {
    let mut env = env.to_vec();
    env.push((name.to_owned(), value.to_owned()));
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_runs_reach_the_sync_function_as_sqs_batches_and_write_their_files_to_s3() {
    if !aws_configured() {
        return;
    }
    let template = Template::load();
    let deployment = Deployment::create("sync-e2e").await.expect("table and admin key");
    let admin = deployment.admin_key.as_str();
    let config = aws::load_sdk_config(None).await;

    // The template's queue and bucket.
    let sqs = aws::sqs_client(&config);
    let queue = sqs.create_queue().queue_name(format!("{}-runs", deployment.table)).send().await.expect("queue");
    let queue_url = queue.queue_url().expect("queue url").to_owned();
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes");
    let queue_arn = attrs
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .expect("queue arn")
        .clone();
    let s3 = aws::s3_client(&config);
    let bucket = deployment.table.clone();
    s3.create_bucket().bucket(&bucket).send().await.expect("bucket");

    // Each function with the environment the template gives it.
    let env = deployment.function_env();
    let mut platform = Function::start("api-platform", &env).await;
    let mut connections = Function::start("api-connections", &env).await;
    let mut integrations = Function::start("api-integrations", &with(&env, "FERRY_RUN_QUEUE_URL", &queue_url)).await;
    let mut sync = Function::start("sync", &with(&env, "FERRY_FILES_BUCKET", &bucket)).await;

    let created = platform.post(&template, "/v1/tenants", admin, &json!({"id": "acme", "name": "Acme"})).await;
    expect(&created, 201, "POST /v1/tenants");
    let release = integrations
        .post(&template, "/v1/integrations/items-export/releases", admin, &json!({"manifest": MANIFEST}))
        .await;
    expect(&release, 201, "POST a release on api-integrations");
    let conn = json!({"name": "src", "connector": "itemsource", "auth_kind": "api_key",
                      "settings": {"base_url": source().await}, "credentials": {"api_key": SOURCE_KEY}});
    let conn = connections.post(&template, "/v1/tenants/acme/connections", admin, &conn).await;
    let conn_id = expect(&conn, 201, "POST a connection")["id"].as_str().expect("connection id").to_owned();
    let job = json!({"name": "items", "integration": "items-export", "connections": {"src": conn_id}, "configs": {}});
    let job = integrations.post(&template, "/v1/tenants/acme/jobs", admin, &job).await;
    let job_id = expect(&job, 201, "POST a job")["id"].as_str().expect("job id").to_owned();

    let elsewhere = integrations.get(&template, "/v1/tenants", admin).await;
    expect_error(&elsewhere, 404, "not_found", "api-integrations on a platform route");

    // Triggering only queues: api-integrations never executes a run itself.
    let runs = format!("/v1/tenants/acme/jobs/{job_id}/runs");
    let triggered = integrations.post(&template, &runs, admin, &json!({})).await;
    let run = expect(&triggered, 202, "POST a run")["run"].clone();
    assert_eq!(run["status"], "queued", "{run}");
    let run_id = run["id"].as_str().expect("run id").to_owned();

    let received =
        sqs.receive_message().queue_url(&queue_url).max_number_of_messages(10).send().await.expect("receive");
    let messages: Vec<QueuedMessage> = received
        .messages()
        .iter()
        .map(|m| QueuedMessage {
            id: m.message_id().expect("message id").to_owned(),
            receipt_handle: m.receipt_handle().expect("receipt handle").to_owned(),
            body: m.body().expect("body").to_owned(),
            md5_of_body: m.md5_of_body().unwrap_or_default().to_owned(),
        })
        .collect();
    assert_eq!(messages.len(), 1, "one message per triggered run: {messages:?}");
    assert!(messages[0].body.contains(&run_id), "the message names the run: {}", messages[0].body);
    assert!(!messages[0].body.contains(SOURCE_KEY), "no credentials on the queue");

    // The run, a message that is no run, and the same run delivered again.
    let mut batch = messages.clone();
    batch.push(QueuedMessage::new("not-a-run", "{\"tenant\": "));
    batch.push(QueuedMessage { id: "redelivered".to_owned(), ..messages[0].clone() });
    let outcome = sync.sandbox.invoke(&sync.api, &sqs_event(&queue_arn, &batch), INVOKE_TIMEOUT).await;
    let outcome = outcome.unwrap_or_else(|e| panic!("sync: {e}\n{}", sync.sandbox.output()));
    let failed = batch_item_failures(&outcome).unwrap_or_else(|e| panic!("sync: {e}\n{}", sync.sandbox.output()));
    assert_eq!(failed, vec!["not-a-run".to_owned()], "only the bad message comes back\n{}", sync.sandbox.output());

    let got = integrations.get(&template, &format!("{runs}/{run_id}"), admin).await;
    let got = expect(&got, 200, "GET the run");
    assert_eq!(got["status"], "succeeded", "{got}");
    assert_eq!(got["counters"]["export"]["written"], 2, "written once despite the redelivery: {got}");

    let files = S3FileStore::new(s3, bucket);
    let file = files.read("acme", &format!("exports/items-{run_id}.jsonl")).await.expect("read from S3");
    let file = String::from_utf8(file.expect("the run's file is in the bucket")).expect("UTF-8");
    let lines: Vec<Value> = file.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert_eq!(lines, vec![json!({"id": 1, "name": "anchor"}), json!({"id": 2, "name": "buoy"})]);

    // A process integration's run fails as the integration's, saying where
    // such runs run, rather than hanging or crashing the function.
    let release = integrations
        .post(&template, "/v1/integrations/counter-e2e/releases", admin, &json!({"manifest": PROCESS_MANIFEST}))
        .await;
    expect(&release, 201, "POST a process release");
    let job = json!({"name": "counter", "integration": "counter-e2e", "connections": {}, "configs": {}});
    let job = integrations.post(&template, "/v1/tenants/acme/jobs", admin, &job).await;
    let process_job = expect(&job, 201, "POST a process job")["id"].as_str().expect("job id").to_owned();
    let process_runs = format!("/v1/tenants/acme/jobs/{process_job}/runs");
    let triggered = integrations.post(&template, &process_runs, admin, &json!({})).await;
    let process_run = expect(&triggered, 202, "POST a process run")["run"]["id"].as_str().expect("run id").to_owned();
    let received =
        sqs.receive_message().queue_url(&queue_url).max_number_of_messages(10).send().await.expect("receive");
    let batch: Vec<QueuedMessage> = received
        .messages()
        .iter()
        .map(|m| QueuedMessage::new(m.message_id().expect("message id"), m.body().expect("body")))
        .collect();
    assert_eq!(batch.len(), 1, "the process run's message: {batch:?}");
    let outcome = sync.sandbox.invoke(&sync.api, &sqs_event(&queue_arn, &batch), INVOKE_TIMEOUT).await;
    let outcome = outcome.unwrap_or_else(|e| panic!("sync: {e}\n{}", sync.sandbox.output()));
    let failed = batch_item_failures(&outcome).unwrap_or_else(|e| panic!("sync: {e}\n{}", sync.sandbox.output()));
    assert!(failed.is_empty(), "a run that failed is not a message to retry: {failed:?}");
    let got = integrations.get(&template, &format!("{process_runs}/{process_run}"), admin).await;
    let got = expect(&got, 200, "GET the process run");
    assert_eq!(got["status"], "failed_integration", "{got}");
    let error = got["error"].as_str().unwrap_or_default();
    assert!(error.contains("process integrations") && error.contains("ferry up"), "{got}");

    // An event the sync function does not know fails the invocation with a
    // stable error type, naming the fields it saw, not their values.
    let unknown = json!({"detail-type": "Something Else", "token": "do-not-log-me"});
    let outcome = sync.sandbox.invoke(&sync.api, &unknown, INVOKE_TIMEOUT).await.expect("an answer");
    match outcome {
        Outcome::Error { body, .. } => {
            let error: Value = serde_json::from_slice(&body).expect("Lambda's error document");
            assert_eq!(error["errorType"], "UnrecognisedEvent", "{error}");
            let message = error["errorMessage"].as_str().unwrap_or_default();
            assert!(message.contains("detail-type") && !message.contains("do-not-log-me"), "{error}");
        }
        other => panic!("expected an invocation error, got {other:?}"),
    }

    let output = sync.sandbox.output();
    assert!(!output.contains(SOURCE_KEY) && !output.contains("do-not-log-me"), "secrets in the logs:\n{output}");
    sync.assert_json_logs();
    integrations.assert_json_logs();
    for f in [platform, connections, integrations, sync] {
        f.sandbox.kill().await;
    }
}
