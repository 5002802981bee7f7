//! Lambda function: the operator console (`/`, `/login`, `/logout`,
//! `/tenants…`, `/static/…`, `/t/{tenant}/…`, `/admin/…`) behind the API's
//! HTTP API (payload format 2.0, `$default` stage). The API stays with the
//! `api-*` functions; this one serves pages only.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request};
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
    let app = ferry_console::router(hub).layer(axum::middleware::map_request(source_from_api_gateway));
    lambda_http::run(app).await
}

/// The console throttles sign-ins per source address as well as per account,
/// reading the address from `ConnectInfo` (the socket's peer under `ferry up`).
/// Here the peer is API Gateway's `sourceIp`, which the gateway vouches for,
/// never a header the client writes.
async fn source_from_api_gateway(mut req: Request) -> Request {
    if let Some(ip) = ferry_http::api::source_addr::source_ip(req.extensions()) {
        req.extensions_mut().insert(ConnectInfo(SocketAddr::new(ip, 0)));
    }
    req
}

/// Only the adapters this function uses: the others stay out of its binary.
fn hub() -> Result<ferry_service::Hub, AwsSetupError> {
    // Its role (infra/template.yaml): the table; the platform signing key (CSRF tokens) read from
    // Secrets Manager, never written (`ferry admin create-user` makes it); the run queue (Run now,
    // rerun); jobs' schedules (pause, resume); the event bus. The public URL: session cookies are
    // `Secure` when it is https, and the function refuses to start without it rather than set
    // cookies a browser would send over plain http.
    Ok(FunctionHub::from_env()?
        .with_public_url()?
        .with_secrets()?
        .with_run_queue()?
        .with_scheduler()?
        .with_events()?
        .build())
}
