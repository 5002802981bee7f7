//! AWS SDK configuration shared by the AWS adapters.
//!
//! Endpoints and credentials come from the SDK's standard sources
//! (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE>`, env credentials, profiles,
//! container/instance roles), so pointing Ferry at an emulator such as moto or
//! LocalStack needs no Ferry-specific setting.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};

/// Region used when neither the caller nor the environment names one. Lambda
/// always sets `AWS_REGION`, so this only matters for local runs and tests.
const FALLBACK_REGION: &str = "us-east-1";

/// Loads the SDK configuration; `region` overrides whatever the environment says.
pub async fn load_sdk_config(region: Option<String>) -> SdkConfig {
    // HTTPS for every client and the credential and region providers: hyper
    // with rustls on `ring` and the system's trust store (see the root
    // Cargo.toml for why not the SDK's default, aws-lc-rs). The providers must
    // be built by the loader, which hands them this client: a provider chain
    // built outside it (e.g. `RegionProviderChain::default_provider()`) has no
    // HTTP client and panics when it reaches IMDS.
    let https = aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(https);
    if let Some(r) = region.filter(|r| !r.trim().is_empty()) {
        loader = loader.region(Region::new(r));
    }
    let config = loader.load().await;
    if config.region().is_some() {
        return config;
    }
    config.to_builder().region(Region::from_static(FALLBACK_REGION)).build()
}

pub fn dynamodb_client(config: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(config)
}

pub fn scheduler_client(config: &SdkConfig) -> aws_sdk_scheduler::Client {
    aws_sdk_scheduler::Client::new(config)
}

pub fn eventbridge_client(config: &SdkConfig) -> aws_sdk_eventbridge::Client {
    aws_sdk_eventbridge::Client::new(config)
}

pub fn secretsmanager_client(config: &SdkConfig) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(config)
}

pub fn sqs_client(config: &SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(config)
}

/// With an endpoint override (an emulator such as moto, LocalStack or MinIO)
/// buckets are addressed by path, since `<bucket>.127.0.0.1` does not resolve;
/// against AWS itself the default virtual-hosted style stays.
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let s3 = aws_sdk_s3::config::Builder::from(config).force_path_style(config.endpoint_url().is_some()).build();
    aws_sdk_s3::Client::from_conf(s3)
}

/// Names the DynamoDB table; required, as a function has no sensible default table.
pub const ENV_TABLE: &str = "FERRY_TABLE";
/// Prefix of every Secrets Manager secret name, e.g. `ferry/prod`.
pub const ENV_SECRETS_PREFIX: &str = "FERRY_SECRETS_PREFIX";
/// The deployment's EventBridge bus; without it events are not published.
pub const ENV_EVENT_BUS: &str = "FERRY_EVENT_BUS";
/// Optional KMS key for the secrets this deployment creates.
pub const ENV_SECRETS_KMS_KEY_ID: &str = "FERRY_SECRETS_KMS_KEY_ID";
/// The run queue (SQS URL) the sync function consumes. Functions without it
/// refuse to trigger runs rather than execute them in their own sandbox.
pub const ENV_RUN_QUEUE_URL: &str = "FERRY_RUN_QUEUE_URL";
/// The S3 bucket file targets write to; without it, flows with file targets fail.
pub const ENV_FILES_BUCKET: &str = "FERRY_FILES_BUCKET";
const DEFAULT_SECRETS_PREFIX: &str = "ferry";
/// ARN of the function scheduled ticks invoke (the sync function); schedules
/// are kept in step with jobs only when it is set.
pub const ENV_SCHEDULER_TARGET_ARN: &str = "FERRY_SCHEDULER_TARGET_ARN";
/// ARN of the role EventBridge Scheduler assumes to invoke the target.
pub const ENV_SCHEDULER_ROLE_ARN: &str = "FERRY_SCHEDULER_ROLE_ARN";
/// Prefix of the per-tenant schedule groups (default `ferry`).
pub const ENV_SCHEDULER_GROUP_PREFIX: &str = "FERRY_SCHEDULER_GROUP_PREFIX";
pub const DEFAULT_SCHEDULER_GROUP_PREFIX: &str = "ferry";

/// Why a function could not wire its hub from the environment.
#[derive(Debug, thiserror::Error)]
pub enum AwsSetupError {
    #[error("{0} is not set: it must name the DynamoDB table (the SAM template sets it)")]
    MissingVariable(&'static str),
    #[error("{0} is not valid UTF-8")]
    NotUnicode(&'static str),
    #[error("{ENV_SECRETS_PREFIX} is invalid: {0}")]
    InvalidSecretsPrefix(crate::ports::secrets::SecretError),
    #[error("scheduler configuration: {0}")]
    Scheduler(String),
}

/// The EventBridge Scheduler adapter from `FERRY_SCHEDULER_TARGET_ARN`,
/// `FERRY_SCHEDULER_ROLE_ARN` and `FERRY_SCHEDULER_GROUP_PREFIX`; `None` when
/// no target is set (a deployment without scheduled runs).
pub fn scheduler_from_env(config: &SdkConfig) -> Result<Option<super::EventBridgeScheduler>, AwsSetupError> {
    let Some(function_arn) = env_var(ENV_SCHEDULER_TARGET_ARN)? else { return Ok(None) };
    let role_arn = env_var(ENV_SCHEDULER_ROLE_ARN)?.ok_or_else(|| {
        AwsSetupError::Scheduler(format!("{ENV_SCHEDULER_TARGET_ARN} is set but {ENV_SCHEDULER_ROLE_ARN} is not"))
    })?;
    let prefix = env_var(ENV_SCHEDULER_GROUP_PREFIX)?.unwrap_or_else(|| DEFAULT_SCHEDULER_GROUP_PREFIX.to_owned());
    let target = super::SchedulerTarget { function_arn, role_arn };
    super::EventBridgeScheduler::new(scheduler_client(config), target, prefix)
        .map(Some)
        .map_err(|e| AwsSetupError::Scheduler(e.to_string()))
}

/// Builds a hub over DynamoDB and Secrets Manager from the environment, as a
/// Lambda function sees it: `FERRY_TABLE` (required), `FERRY_SECRETS_PREFIX`
/// (default `ferry`), `FERRY_SECRETS_KMS_KEY_ID` (optional),
/// `FERRY_RUN_QUEUE_URL` (optional: runs go to SQS; without it triggering a
/// run fails, because a Lambda function must never execute one in its own
/// sandbox) and `FERRY_FILES_BUCKET` (optional: file targets write to S3).
///
/// Makes no network call: this runs in every cold start, and the first request
/// finds out soon enough whether the table is reachable.
#[tracing::instrument(name = "hub_from_env", skip_all)]
pub async fn hub_from_env() -> Result<crate::Hub, AwsSetupError> {
    let table = env_var(ENV_TABLE)?.ok_or(AwsSetupError::MissingVariable(ENV_TABLE))?;
    let prefix = env_var(ENV_SECRETS_PREFIX)?.unwrap_or_else(|| DEFAULT_SECRETS_PREFIX.to_owned());
    let kms_key = env_var(ENV_SECRETS_KMS_KEY_ID)?;
    let queue_url = env_var(ENV_RUN_QUEUE_URL)?;
    let bucket = env_var(ENV_FILES_BUCKET)?;

    let config = load_sdk_config(None).await;
    let store = super::DynamoStore::new(dynamodb_client(&config), table);
    let mut secrets = super::SecretsManagerStore::new(secretsmanager_client(&config), prefix);
    if let Some(key) = kms_key {
        secrets = secrets.with_kms_key(key);
    }
    // A bad prefix would otherwise only surface as a failed credential write
    // long after deployment; naming a probe secret checks it without a call.
    secrets
        .secret_name(&crate::ports::secrets::SecretRef::new("probe", "probe"))
        .map_err(AwsSetupError::InvalidSecretsPrefix)?;
    tracing::debug!(
        table = store.table(),
        queue = queue_url.is_some(),
        files = bucket.is_some(),
        "hub wired from the environment"
    );
    let dispatcher: std::sync::Arc<dyn crate::ports::RunDispatcher> = match queue_url {
        Some(url) => std::sync::Arc::new(super::SqsDispatcher::new(sqs_client(&config), url)),
        None => std::sync::Arc::new(super::sqs::NoRunQueue),
    };
    let mut hub = crate::Hub::new(std::sync::Arc::new(store), std::sync::Arc::new(secrets))
        .with_dispatcher(dispatcher)
        .with_settings(crate::service::Settings::from_env());
    // Where end customers reach the connect pages (magic links, OAuth redirect URI).
    if let Some(url) = env_var("FERRY_PUBLIC_URL")? {
        hub = hub.with_public_url(url);
    }
    if let Some(scheduler) = scheduler_from_env(&config)? {
        hub = hub.with_scheduler(std::sync::Arc::new(scheduler));
    }
    if let Some(bucket) = bucket {
        hub = hub.with_files(std::sync::Arc::new(super::S3FileStore::new(s3_client(&config), bucket)));
    }
    if let Some(bus) = env_var(ENV_EVENT_BUS)? {
        hub = hub.with_events(std::sync::Arc::new(super::EventBridgeBus::new(eventbridge_client(&config), bus)));
    }
    Ok(hub)
}

/// An unset or blank variable counts as absent, so a template can pass `""`.
fn env_var(name: &'static str) -> Result<Option<String>, AwsSetupError> {
    match std::env::var(name) {
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => Ok(Some(v.trim().to_owned())),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(AwsSetupError::NotUnicode(name)),
    }
}
