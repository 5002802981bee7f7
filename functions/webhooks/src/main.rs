//! Lambda function: the webhook intake (`POST /hooks/{hook}` and the
//! subscription handshakes) behind the HTTP API. A delivery is acknowledged
//! only once it is stored; the run is triggered before answering, because
//! Lambda freezes the sandbox once the response is sent.

use ferry_shared::adapters::aws::hub_from_env;
use ferry_shared::hooks::{router, TriggerMode};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let hub = hub_from_env().await.inspect_err(|e| lambda_http::tracing::error!(error = %e, "cannot start"))?;
    lambda_http::run(router(hub, TriggerMode::Inline)).await
}
