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

pub fn secretsmanager_client(config: &SdkConfig) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(config)
}
