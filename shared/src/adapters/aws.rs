//! AWS SDK configuration shared by the AWS adapters.
//!
//! Endpoints and credentials come from the SDK's standard sources
//! (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE>`, env credentials, profiles,
//! container/instance roles), so pointing Ferry at an emulator such as moto or
//! LocalStack needs no Ferry-specific setting.

use aws_config::meta::region::RegionProviderChain;
use aws_config::{BehaviorVersion, Region, SdkConfig};

/// Region used when neither the caller nor the environment names one. Lambda
/// always sets `AWS_REGION`, so this only matters for local runs and tests.
const FALLBACK_REGION: &str = "us-east-1";

/// Loads the SDK configuration; `region` overrides whatever the environment says.
pub async fn load_sdk_config(region: Option<String>) -> SdkConfig {
    let region = match region.filter(|r| !r.trim().is_empty()) {
        Some(r) => RegionProviderChain::first_try(Region::new(r)),
        None => RegionProviderChain::default_provider(),
    }
    .or_else(Region::from_static(FALLBACK_REGION));
    aws_config::defaults(BehaviorVersion::latest()).region(region).load().await
}

pub fn dynamodb_client(config: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(config)
}

pub fn eventbridge_client(config: &SdkConfig) -> aws_sdk_eventbridge::Client {
    aws_sdk_eventbridge::Client::new(config)
}

pub fn secretsmanager_client(config: &SdkConfig) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(config)
}

/// Names the DynamoDB table; required, as a function has no sensible default table.
pub const ENV_TABLE: &str = "FERRY_TABLE";
/// Prefix of every Secrets Manager secret name, e.g. `ferry/prod`.
pub const ENV_SECRETS_PREFIX: &str = "FERRY_SECRETS_PREFIX";
/// The deployment's EventBridge bus; without it events are not published.
pub const ENV_EVENT_BUS: &str = "FERRY_EVENT_BUS";
/// Optional KMS key for the secrets this deployment creates.
pub const ENV_SECRETS_KMS_KEY_ID: &str = "FERRY_SECRETS_KMS_KEY_ID";
const DEFAULT_SECRETS_PREFIX: &str = "ferry";

/// Why a function could not wire its hub from the environment.
#[derive(Debug, thiserror::Error)]
pub enum AwsSetupError {
    #[error("{0} is not set: it must name the DynamoDB table (the SAM template sets it)")]
    MissingVariable(&'static str),
    #[error("{0} is not valid UTF-8")]
    NotUnicode(&'static str),
    #[error("{ENV_SECRETS_PREFIX} is invalid: {0}")]
    InvalidSecretsPrefix(crate::ports::secrets::SecretError),
}

/// Builds a hub over DynamoDB and Secrets Manager from the environment, as a
/// Lambda function sees it: `FERRY_TABLE` (required), `FERRY_SECRETS_PREFIX`
/// (default `ferry`) and `FERRY_SECRETS_KMS_KEY_ID` (optional).
///
/// Makes no network call: this runs in every cold start, and the first request
/// finds out soon enough whether the table is reachable.
#[tracing::instrument(name = "hub_from_env", skip_all)]
pub async fn hub_from_env() -> Result<crate::Hub, AwsSetupError> {
    let table = env_var(ENV_TABLE)?.ok_or(AwsSetupError::MissingVariable(ENV_TABLE))?;
    let prefix = env_var(ENV_SECRETS_PREFIX)?.unwrap_or_else(|| DEFAULT_SECRETS_PREFIX.to_owned());
    let kms_key = env_var(ENV_SECRETS_KMS_KEY_ID)?;

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
    tracing::debug!(table = store.table(), "hub wired from the environment");
    let mut hub = crate::Hub::new(std::sync::Arc::new(store), std::sync::Arc::new(secrets))
        .with_settings(crate::service::Settings::from_env());
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
