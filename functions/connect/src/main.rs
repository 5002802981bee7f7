//! Lambda function: the end-customer connect pages (`/connect/{token}`) and the
//! OAuth2 callback (`/oauth/callback`) behind the API's HTTP API (payload 2.0).
//! `FERRY_PUBLIC_URL` (read by `hub_from_env`) is the base URL customers reach.

use ferry_shared::adapters::aws::hub_from_env;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let hub = hub_from_env().await.inspect_err(|e| lambda_http::tracing::error!(error = %e, "cannot start"))?;
    lambda_http::run(ferry_shared::connect::router(hub)).await
}
