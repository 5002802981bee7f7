//! Lambda function: the admin API's `Platform` routes (sessions, users,
//! tenants, API keys; plus `/healthz`, `/openapi.json`) behind an API Gateway
//! HTTP API (payload format 2.0, `$default` stage).

use ferry_shared::adapters::aws::hub_from_env;
use ferry_shared::api::{router_for, Family};

// One request at a time per sandbox: a single-threaded runtime starts faster
// and spawns no idle worker threads.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    // Logged as well as returned: Lambda shows the log line, not main's Debug output.
    let hub = hub_from_env().await.inspect_err(|e| lambda_http::tracing::error!(error = %e, "cannot start"))?;
    lambda_http::run(router_for(hub, &[Family::Platform])).await
}
