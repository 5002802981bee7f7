//! Lambda function: the admin API's `Connections` routes (plus `/healthz`, `/openapi.json`)
//! behind an API Gateway HTTP API (payload format 2.0, `$default` stage).

use ferry_http::api::{router_for, Family};
use ferry_lambda::hub::{AwsSetupError, FunctionHub};

// One request at a time per sandbox: a single-threaded runtime starts faster
// and spawns no idle worker threads.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    // The role's AWS credentials are in this process's environment: keep it unreadable.
    ferry_core::hardening::make_non_dumpable();
    ferry_lambda::log::init();
    // Logged as well as returned: Lambda shows the log line, not main's Debug output.
    let hub = hub().inspect_err(|e| tracing::error!(error = %e, "cannot start"))?;
    lambda_http::run(router_for(hub, &[Family::Connections])).await
}

/// Only the adapters this function uses: the others stay out of its binary.
fn hub() -> Result<ferry_service::Hub, AwsSetupError> {
    // Its role (infra/template.yaml): the table, connection secrets, the event bus. The public
    // URL for the magic links and webhook URLs its answers hold.
    Ok(FunctionHub::from_env()?.with_public_url()?.with_secrets()?.with_events()?.build())
}
