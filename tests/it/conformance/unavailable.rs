//! The AWS adapters tell an unavailable service from a refusal: pointed at an
//! endpoint nothing listens on (a closed loopback port: no emulator needed),
//! or at one that accepts connections and never answers, every adapter
//! reports its port's `Unavailable` error with the connection's failure as
//! its source; over the wire to moto, a refusal (a table or bucket that does
//! not exist) stays a `Backend` error.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::{Credentials, SharedCredentialsProvider};
use ferry_aws::{DynamoStore, EventBridgeScheduler, S3FileStore, SchedulerTarget, SecretsManagerStore, SqsDispatcher};
use ferry_core::error::chain;
use ferry_core::ports::{
    Condition, DispatchError, FileError, FileStore, Item, Key, Port, RunDispatcher, RunRef, Scheduler, SchedulerError,
    SecretError, SecretFields, SecretRef, SecretStore, Store, StoreError, Unavailable, WriteOp,
};
use ferry_lambda::hub::{dynamodb_client, s3_client, scheduler_client, secretsmanager_client, sqs_client};

use crate::support::app::CLOSED_LOOPBACK;
use crate::support::aws::{dynamo_client, sdk_config, unique_name};

/// The SDK as the functions configure it (standard retries, the Ferry HTTPS
/// client), with test credentials, at `endpoint`; one retry, so the tests see
/// the adapters' answer after the SDK's retries without waiting long.
fn config_at(endpoint: &str, attempt_timeout: Option<Duration>) -> SdkConfig {
    let credentials = Credentials::new("AKIDFERRYTEST", "not-a-secret", None, None, "test");
    let mut timeouts = TimeoutConfig::builder().connect_timeout(Duration::from_secs(2));
    if let Some(t) = attempt_timeout {
        timeouts = timeouts.operation_attempt_timeout(t);
    }
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::from_static("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .http_client(ferry_aws::aws_http::http_client())
        .endpoint_url(endpoint)
        .retry_config(RetryConfig::standard().with_max_attempts(2))
        .timeout_config(timeouts.build())
        .build()
}

fn put(pk: &str) -> WriteOp {
    WriteOp::Put { item: Item::new(Key::new(pk, "s"), serde_json::json!({})), condition: Condition::NotExists }
}

fn run_ref() -> RunRef {
    RunRef { tenant: "acme".into(), job: "job-1".into(), run: "run-1".into() }
}

fn target() -> SchedulerTarget {
    SchedulerTarget {
        function_arn: "arn:aws:lambda:us-east-1:123456789012:function:ferry-sync".into(),
        role_arn: "arn:aws:iam::123456789012:role/ferry-scheduler".into(),
    }
}

/// `u` is the port's unavailable error, and its source chain says why: `cause`.
fn check(what: &str, u: &Unavailable, port: Port, cause: &str) {
    assert_eq!(u.port(), port, "{what}");
    let text = chain(u).to_ascii_lowercase();
    assert!(text.contains(cause), "{what}: the source chain names the cause ({cause}): {text}");
}

/// Every adapter, one call each (the store's two write paths), against the SDK config.
async fn assert_every_adapter_unavailable(config: &SdkConfig, cause: &str) {
    let store = DynamoStore::new(dynamodb_client(config), "ferry-unreachable");
    match store.get(&Key::new("p", "s")).await {
        Err(StoreError::Unavailable(u)) => check("DynamoDB get", &u, Port::Store, cause),
        other => panic!("DynamoDB get: {other:?}"),
    }
    match store.write(vec![put("a")]).await {
        Err(StoreError::Unavailable(u)) => check("DynamoDB update", &u, Port::Store, cause),
        other => panic!("DynamoDB update: {other:?}"),
    }
    match store.write(vec![put("a"), put("b")]).await {
        Err(StoreError::Unavailable(u)) => check("DynamoDB transaction", &u, Port::Store, cause),
        other => panic!("DynamoDB transaction: {other:?}"),
    }

    let secrets = SecretsManagerStore::new(secretsmanager_client(config), "ferry/unreachable");
    let secret = SecretRef::new("acme", "connections/c1");
    match secrets.get(&secret).await {
        Err(SecretError::Unavailable(u)) => check("Secrets Manager get", &u, Port::Secrets, cause),
        other => panic!("Secrets Manager get: {other:?}"),
    }
    let mut fields = SecretFields::new();
    fields.insert("api_key", "canary-unreachable-secret");
    match secrets.put(&secret, &fields).await {
        Err(SecretError::Unavailable(u)) => {
            check("Secrets Manager put", &u, Port::Secrets, cause);
            assert!(!format!("{u} {u:?}").contains("canary-unreachable-secret"), "no secret value in the error");
        }
        other => panic!("Secrets Manager put: {other:?}"),
    }

    let files = S3FileStore::new(s3_client(config), "ferry-unreachable");
    match files.read("acme", "exports/a.jsonl").await {
        Err(FileError::Unavailable(u)) => check("S3 read", &u, Port::Files, cause),
        other => panic!("S3 read: {:?}", other.map(|b| b.map(|b| b.len()))),
    }
    let mut writer = files.create("acme", "exports/a.jsonl").await.expect("a writer (nothing sent yet)");
    writer.write(b"{}\n").await.expect("buffered");
    match writer.commit().await {
        Err(FileError::Unavailable(u)) => check("S3 commit", &u, Port::Files, cause),
        other => panic!("S3 commit: {other:?}"),
    }

    let queue = SqsDispatcher::new(sqs_client(config), format!("{}/123456789012/ferry-runs", config_endpoint(config)));
    match queue.dispatch(&run_ref()).await {
        Err(DispatchError::Unavailable(u)) => check("SQS dispatch", &u, Port::RunQueue, cause),
        other => panic!("SQS dispatch: {other:?}"),
    }

    let scheduler = EventBridgeScheduler::new(scheduler_client(config), target(), "ferry").expect("prefix");
    match scheduler.get("acme", "job-1").await {
        Err(SchedulerError::Unavailable(u)) => check("Scheduler get", &u, Port::Scheduler, cause),
        other => panic!("Scheduler get: {other:?}"),
    }
}

fn config_endpoint(config: &SdkConfig) -> String {
    config.endpoint_url().unwrap_or(CLOSED_LOOPBACK).to_owned()
}

#[tokio::test]
async fn aws_endpoints_nothing_listens_on_are_unavailable_backends() {
    assert_every_adapter_unavailable(&config_at(CLOSED_LOOPBACK, None), "refused").await;
}

#[tokio::test]
async fn aws_endpoints_that_never_answer_are_unavailable_backends() {
    // Accepts connections and keeps them open without a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let config = config_at(&endpoint, Some(Duration::from_millis(300)));
    assert_every_adapter_unavailable(&config, "time").await;
    silent.abort();
}

#[tokio::test]
async fn refusals_over_the_wire_are_backend_errors_not_unavailable() {
    let Some(config) = sdk_config().await else { return };
    let Some(client) = dynamo_client().await else { return };
    let missing_table = DynamoStore::new(client, unique_name("ferry-missing"));
    match missing_table.get(&Key::new("p", "s")).await {
        Err(StoreError::Backend(e)) => assert!(chain(&*e).contains("ResourceNotFound"), "{}", chain(&*e)),
        other => panic!("a missing table is a refusal: {other:?}"),
    }
    let missing_bucket = S3FileStore::new(s3_client(&config), unique_name("ferry-missing"));
    match missing_bucket.read("acme", "a.json").await {
        Err(FileError::Backend(_)) => {}
        other => panic!("a missing bucket is a refusal: {:?}", other.map(|b| b.map(|b| b.len()))),
    }
}
