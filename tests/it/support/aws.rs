//! AWS test environment: the AWS adapters run against an emulator (moto's
//! server, started by `tests/run`) found through the SDK's standard
//! `AWS_ENDPOINT_URL`. Without one the AWS tests skip, unless
//! `FERRY_REQUIRE_AWS=1` says a skip would hide a broken setup.

#![allow(dead_code)]

use aws_config::SdkConfig;
use ferry_aws::dynamodb::create_table;
use ferry_aws::{DynamoStore, SecretsManagerStore};
use ferry_lambda::hub::{load_sdk_config, secretsmanager_client};

pub fn emulator_configured() -> bool {
    std::env::var("AWS_ENDPOINT_URL").is_ok_and(|v| !v.trim().is_empty())
}

fn aws_required() -> bool {
    std::env::var("FERRY_REQUIRE_AWS").is_ok_and(|v| v.trim() == "1")
}

/// The SDK config for the emulator, or `None` (after saying so) to skip the test.
pub async fn sdk_config() -> Option<SdkConfig> {
    if !emulator_configured() {
        if aws_required() {
            panic!("FERRY_REQUIRE_AWS=1 but AWS_ENDPOINT_URL is not set: start moto's server (tests/run does)");
        }
        eprintln!(
            "skipping: no AWS emulator. ./tests/run starts moto's server and runs these tests; by hand: \
             python tests/moto_server.py <port> and AWS_ENDPOINT_URL=http://127.0.0.1:<port> cargo test"
        );
        return None;
    }
    // `None` lets AWS_REGION win and falls back to us-east-1 when it is unset.
    Some(load_sdk_config(None).await)
}

pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand::random::<u64>())
}

pub async fn dynamo_client() -> Option<aws_sdk_dynamodb::Client> {
    sdk_config().await.map(|c| ferry_lambda::hub::dynamodb_client(&c))
}

pub async fn secrets_manager_client() -> Option<aws_sdk_secretsmanager::Client> {
    sdk_config().await.map(|c| secretsmanager_client(&c))
}

/// A store on a fresh table, so tests never see each other's items.
pub async fn dynamo_store() -> Option<DynamoStore> {
    let client = dynamo_client().await?;
    let table = unique_name("ferry-test");
    if let Err(e) = create_table(&client, &table).await {
        panic!("creating DynamoDB test table {table} failed: {}", error_chain(&e));
    }
    Some(DynamoStore::new(client, table))
}

/// A store under a fresh prefix, so tests never see each other's secrets.
pub async fn secrets_manager_store() -> Option<SecretsManagerStore> {
    let client = secrets_manager_client().await?;
    Some(SecretsManagerStore::new(client, unique_name("ferry-test")))
}

/// The whole `source()` chain: SDK errors keep the useful part (service code,
/// connection refused) several levels down. Levels whose text the previous
/// level already printed (the port errors embed their source) are skipped.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

pub async fn scheduler_client() -> Option<aws_sdk_scheduler::Client> {
    sdk_config().await.map(|c| ferry_lambda::hub::scheduler_client(&c))
}

/// An EventBridge Scheduler adapter under a fresh group prefix, so tests never see each other's schedules.
pub async fn eventbridge_scheduler() -> Option<ferry_aws::EventBridgeScheduler> {
    let client = scheduler_client().await?;
    let target = ferry_aws::SchedulerTarget {
        function_arn: "arn:aws:lambda:us-east-1:123456789012:function:ferry-sync".into(),
        role_arn: "arn:aws:iam::123456789012:role/ferry-scheduler".into(),
    };
    let prefix = format!("t{:012x}", rand::random::<u64>() >> 16);
    Some(ferry_aws::EventBridgeScheduler::new(client, target, prefix).expect("valid prefix"))
}

/// A file store on a fresh bucket, so tests never see each other's files.
pub async fn s3_file_store() -> Option<ferry_aws::S3FileStore> {
    let config = sdk_config().await?;
    let client = ferry_lambda::hub::s3_client(&config);
    let bucket = unique_name("ferry-test");
    if let Err(e) = client.create_bucket().bucket(&bucket).send().await {
        panic!("creating S3 test bucket {bucket} failed: {}", error_chain(&e));
    }
    Some(ferry_aws::S3FileStore::new(client, bucket))
}

/// A fresh SQS queue and its URL.
pub async fn sqs_queue() -> Option<(aws_sdk_sqs::Client, String)> {
    let config = sdk_config().await?;
    let client = ferry_lambda::hub::sqs_client(&config);
    let name = unique_name("ferry-test-runs");
    let created = match client.create_queue().queue_name(&name).send().await {
        Ok(out) => out,
        Err(e) => panic!("creating SQS test queue {name} failed: {}", error_chain(&e)),
    };
    let url = created.queue_url().unwrap_or_else(|| panic!("no URL for queue {name}")).to_owned();
    Some((client, url))
}
