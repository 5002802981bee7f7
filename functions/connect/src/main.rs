//! Lambda function: the end-customer connect pages (`/connect/{token}`) and the
//! OAuth2 callback (`/oauth/callback`) behind the API's HTTP API (payload 2.0).
//! `FERRY_PUBLIC_URL` (required: `FunctionHub::with_public_url`) is the base URL customers reach.

use ferry_lambda::hub::{AwsSetupError, FunctionHub};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    // The role's AWS credentials are in this process's environment: keep it unreadable.
    ferry_core::hardening::make_non_dumpable();
    ferry_lambda::log::init();
    let hub = hub().inspect_err(|e| tracing::error!(error = %e, "cannot start"))?;
    lambda_http::run(ferry_http::connect::router(hub)).await
}

/// Only the adapters this function uses: the others stay out of its binary.
fn hub() -> Result<ferry_service::Hub, AwsSetupError> {
    // The table and connection secrets (its role in infra/template.yaml), the event bus
    // every function is given (FERRY_EVENT_BUS), and the public URL of the OAuth redirect URI.
    Ok(FunctionHub::from_env()?.with_public_url()?.with_secrets()?.with_events()?.build())
}
