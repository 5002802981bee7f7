//! AWS SDK configuration shared by the AWS adapters, and the wiring of a
//! Lambda function's hub ([`FunctionHub`]).
//!
//! Endpoints and credentials come from the SDK's standard sources, so pointing
//! Ferry at an emulator such as moto or LocalStack needs no Ferry-specific
//! setting: on Lambda, the sandbox's environment ([`lambda_sdk_config`]:
//! `AWS_ENDPOINT_URL`, env credentials); elsewhere, `aws_config`'s chains
//! ([`load_sdk_config`]: also `AWS_ENDPOINT_URL_<SERVICE>`, profiles, SSO,
//! container/instance roles).

use std::sync::Arc;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_types::sdk_config::{SharedCredentialsProvider, SharedHttpClient};

/// Region used when neither the caller nor the environment names one. Lambda
/// always sets `AWS_REGION`, so this only matters for local runs and tests.
const FALLBACK_REGION: &str = "us-east-1";

/// HTTPS for every client and the credential and region providers: reqwest
/// ([`ferry_aws::aws_http`]).
fn https_client() -> SharedHttpClient {
    ferry_aws::aws_http::http_client()
}

/// Loads the SDK configuration through `aws_config`'s provider chains (for
/// hosts off Lambda); `region` overrides whatever the environment says.
pub async fn load_sdk_config(region: Option<String>) -> SdkConfig {
    // The credential and region providers must be built by the loader, which
    // hands them this client: a provider chain built outside it (e.g. `RegionProviderChain::default_provider()`) has no
    // HTTP client and panics when it reaches IMDS.
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(https_client());
    if let Some(r) = region.filter(|r| !r.trim().is_empty()) {
        loader = loader.region(Region::new(r));
    }
    let config = loader.load().await;
    if config.region().is_some() {
        return config;
    }
    config.to_builder().region(Region::from_static(FALLBACK_REGION)).build()
}

/// Connect timeout of every AWS call, as `aws_config` sets it.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(3100);

/// The SDK configuration of a Lambda sandbox, read from its environment alone
/// and without a network call:
///
/// - credentials from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
///   `AWS_SESSION_TOKEN`, which Lambda sets from the function's role;
/// - the region from `AWS_REGION` (or `AWS_DEFAULT_REGION`, else us-east-1);
/// - the endpoint from `AWS_ENDPOINT_URL` (an emulator such as moto), unless
///   `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` is `true`;
/// - otherwise what [`load_sdk_config`] would give a function: standard
///   retries (3 attempts), a 3.1 s connect timeout, cached credentials, and the
///   same HTTPS client.
///
/// Not [`load_sdk_config`], because its provider chains (profiles, SSO, web
/// identity, container and instance credentials, each with its own AWS
/// clients) are code every function binary would carry and never run on
/// Lambda. Hosts off Lambda (`ferry up --backend aws`, the operator CLI) keep
/// [`load_sdk_config`] and its chains.
pub fn lambda_sdk_config() -> SdkConfig {
    use aws_config::environment::EnvironmentVariableCredentialsProvider;
    use aws_config::identity::IdentityCache;
    use aws_config::retry::RetryConfig;
    use aws_config::timeout::TimeoutConfig;

    let var = |name: &str| std::env::var(name).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let region = var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION"));
    let region = region.map(Region::new).unwrap_or_else(|| Region::from_static(FALLBACK_REGION));
    let ignore_endpoints = var("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let endpoint = var("AWS_ENDPOINT_URL").filter(|_| !ignore_endpoints);
    let mut config = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(region)
        .credentials_provider(SharedCredentialsProvider::new(EnvironmentVariableCredentialsProvider::new()))
        .identity_cache(IdentityCache::lazy().build())
        .http_client(https_client())
        .retry_config(RetryConfig::standard())
        .timeout_config(TimeoutConfig::builder().connect_timeout(CONNECT_TIMEOUT).build());
    config.set_endpoint_url(endpoint);
    config.build()
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
pub use ferry_aws::sqs::ENV_RUN_QUEUE_URL;
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
    InvalidSecretsPrefix(ferry_core::ports::secrets::SecretError),
    #[error("scheduler configuration: {0}")]
    Scheduler(String),
    #[error(transparent)]
    Config(#[from] ferry_service::config::ConfigError),
}

/// The EventBridge Scheduler adapter from `FERRY_SCHEDULER_TARGET_ARN`,
/// `FERRY_SCHEDULER_ROLE_ARN` and `FERRY_SCHEDULER_GROUP_PREFIX`; `None` when
/// no target is set (a deployment without scheduled runs).
pub fn scheduler_from_env(config: &SdkConfig) -> Result<Option<ferry_aws::EventBridgeScheduler>, AwsSetupError> {
    let Some(function_arn) = env_var(ENV_SCHEDULER_TARGET_ARN)? else { return Ok(None) };
    let role_arn = env_var(ENV_SCHEDULER_ROLE_ARN)?.ok_or_else(|| {
        AwsSetupError::Scheduler(format!("{ENV_SCHEDULER_TARGET_ARN} is set but {ENV_SCHEDULER_ROLE_ARN} is not"))
    })?;
    let prefix = env_var(ENV_SCHEDULER_GROUP_PREFIX)?.unwrap_or_else(|| DEFAULT_SCHEDULER_GROUP_PREFIX.to_owned());
    let target = ferry_aws::SchedulerTarget { function_arn, role_arn };
    ferry_aws::EventBridgeScheduler::new(scheduler_client(config), target, prefix)
        .map(Some)
        .map_err(|e| AwsSetupError::Scheduler(e.to_string()))
}

/// Wires a Lambda function's hub from its environment, one adapter at a time.
///
/// Each function's `main.rs` asks for the adapters its IAM role lets it use
/// (infra/template.yaml) and nothing else: an adapter a function never asks
/// for is code its binary does not contain (fat LTO drops it), which is what
/// keeps every function binary small. Within what a function asks for, an
/// adapter is wired when its variable is set, as documented on each method.
///
/// Makes no network call: this runs in every cold start, and the first request
/// finds out soon enough whether the table is reachable.
///
/// ```ignore
/// let hub = FunctionHub::from_env()?.with_public_url()?.with_secrets()?.with_events()?.build();
/// ```
pub struct FunctionHub {
    config: SdkConfig,
    hub: ferry_service::Hub,
}

impl FunctionHub {
    /// The hub every function starts from: the DynamoDB store of `FERRY_TABLE`
    /// (required), the configuration of the environment, checked
    /// ([`ferry_service::config::Config::from_env`]), runs refused (no run
    /// queue, see [`Self::with_run_queue`]) and no secret store (see
    /// [`Self::with_secrets`]). AWS clients use [`lambda_sdk_config`].
    pub fn from_env() -> Result<Self, AwsSetupError> {
        let table = env_var(ENV_TABLE)?.ok_or(AwsSetupError::MissingVariable(ENV_TABLE))?;
        let hub_config = ferry_service::config::Config::from_env()?;
        let config = lambda_sdk_config();
        let store = ferry_aws::DynamoStore::new(dynamodb_client(&config), table);
        tracing::debug!(table = store.table(), "hub wired from the environment");
        // A dispatching hub: a function never starts a run in its own sandbox
        // (and the run engine is only in the binaries that execute dispatched runs).
        let no_queue = Arc::new(ferry_aws::sqs::NoRunQueue);
        let hub = ferry_service::Hub::dispatching(Arc::new(store), Arc::new(crate::NoSecrets), no_queue)
            .with_config(hub_config);
        Ok(Self { config, hub })
    }

    /// Requires `FERRY_PUBLIC_URL`, for a function that makes magic links,
    /// OAuth redirect URIs or webhook URLs, or checks signatures over them: it
    /// refuses to start without it rather than serve links to nowhere.
    pub fn with_public_url(self) -> Result<Self, AwsSetupError> {
        match self.hub.public_url {
            Some(_) => Ok(self),
            None => Err(ferry_service::config::ConfigError::missing_public_url().into()),
        }
    }

    /// Secrets Manager as the secret store: `FERRY_SECRETS_PREFIX` (default
    /// `ferry`) names every secret, `FERRY_SECRETS_KMS_KEY_ID` (optional)
    /// encrypts those this function creates. A bad prefix is refused here: it
    /// would otherwise only surface as a failed credential write long after
    /// deployment.
    pub fn with_secrets(mut self) -> Result<Self, AwsSetupError> {
        let prefix = env_var(ENV_SECRETS_PREFIX)?.unwrap_or_else(|| DEFAULT_SECRETS_PREFIX.to_owned());
        let mut secrets = ferry_aws::SecretsManagerStore::new(secretsmanager_client(&self.config), prefix);
        if let Some(key) = env_var(ENV_SECRETS_KMS_KEY_ID)? {
            secrets = secrets.with_kms_key(key);
        }
        // Naming a probe secret checks the prefix without a call.
        secrets
            .secret_name(&ferry_core::ports::secrets::SecretRef::new("probe", "probe"))
            .map_err(AwsSetupError::InvalidSecretsPrefix)?;
        self.hub.secrets = Arc::new(secrets);
        Ok(self)
    }

    /// Runs go to the SQS queue of `FERRY_RUN_QUEUE_URL`; without it triggering
    /// a run fails, because a Lambda function must never execute one in its own
    /// sandbox.
    pub fn with_run_queue(mut self) -> Result<Self, AwsSetupError> {
        if let Some(url) = env_var(ENV_RUN_QUEUE_URL)? {
            tracing::debug!("runs go to the run queue");
            self.hub = self.hub.with_dispatcher(Arc::new(ferry_aws::SqsDispatcher::new(sqs_client(&self.config), url)));
        }
        Ok(self)
    }

    /// File targets (and large webhook bodies) use the S3 bucket of
    /// `FERRY_FILES_BUCKET`; without it, flows with file targets fail.
    pub fn with_files(mut self) -> Result<Self, AwsSetupError> {
        if let Some(bucket) = env_var(ENV_FILES_BUCKET)? {
            tracing::debug!("files go to S3");
            self.hub = self.hub.with_files(Arc::new(ferry_aws::S3FileStore::new(s3_client(&self.config), bucket)));
        }
        Ok(self)
    }

    /// Domain events go to the EventBridge bus of `FERRY_EVENT_BUS`; without it
    /// they are not published (notifications still queue).
    pub fn with_events(mut self) -> Result<Self, AwsSetupError> {
        if let Some(bus) = env_var(ENV_EVENT_BUS)? {
            self.hub =
                self.hub.with_events(Arc::new(ferry_aws::EventBridgeBus::new(eventbridge_client(&self.config), bus)));
        }
        Ok(self)
    }

    /// Jobs' schedules are kept in EventBridge Scheduler when
    /// `FERRY_SCHEDULER_TARGET_ARN` is set ([`scheduler_from_env`]).
    pub fn with_scheduler(mut self) -> Result<Self, AwsSetupError> {
        if let Some(scheduler) = scheduler_from_env(&self.config)? {
            self.hub = self.hub.with_scheduler(Arc::new(scheduler));
        }
        Ok(self)
    }

    pub fn build(self) -> ferry_service::Hub {
        self.hub
    }
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
