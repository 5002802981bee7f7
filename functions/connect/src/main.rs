//! Lambda function: the end-customer connect pages (`/connect/{token}`) and the
//! OAuth2 callback (`/oauth/callback`) behind the API's HTTP API (payload 2.0).
//! `FERRY_PUBLIC_URL` (required: `FunctionHub::with_public_url`) is the base URL customers reach.

use ferry_shared::adapters::aws::{AwsSetupError, FunctionHub};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    // The role's AWS credentials are in this process's environment: keep it unreadable.
    ferry_shared::hardening::make_non_dumpable();
    ferry_shared::adapters::lambda_log::init();
    let hub = hub().inspect_err(|e| tracing::error!(error = %e, "cannot start"))?;
    lambda_http::run(ferry_shared::connect::router(hub)).await
}

/// Only the adapters this function uses: the others stay out of its binary.
fn hub() -> Result<ferry_shared::Hub, AwsSetupError> {
    // The table and connection secrets (its role in infra/template.yaml), the event bus
    // every function is given (FERRY_EVENT_BUS), and the public URL of the OAuth redirect URI.
    Ok(FunctionHub::from_env()?.with_public_url()?.with_secrets()?.with_events()?.build())
}
