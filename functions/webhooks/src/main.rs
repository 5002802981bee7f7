//! Lambda function: the webhook intake (`POST /hooks/{hook}` and the
//! subscription handshakes) behind the HTTP API. A delivery is acknowledged
//! only once it is stored; the run is triggered before answering, because
//! Lambda freezes the sandbox once the response is sent.

use ferry_http::intake::{router, TriggerMode};
use ferry_lambda::hub::{AwsSetupError, FunctionHub};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    // The role's AWS credentials are in this process's environment: keep it unreadable.
    ferry_core::hardening::make_non_dumpable();
    ferry_lambda::log::init();
    let hub = hub().inspect_err(|e| tracing::error!(error = %e, "cannot start"))?;
    lambda_http::run(router(hub, TriggerMode::Inline)).await
}

/// Only the adapters this function uses: the others stay out of its binary.
fn hub() -> Result<ferry_service::Hub, AwsSetupError> {
    // Its role (infra/template.yaml): the table, hook secrets, the run queue, large bodies in the
    // files bucket, the event bus. The public URL, as HubSpot signs the URL it calls.
    Ok(FunctionHub::from_env()?
        .with_public_url()?
        .with_secrets()?
        .with_run_queue()?
        .with_files()?
        .with_events()?
        .build())
}
