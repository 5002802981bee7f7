//! Lambda function: delivers due notifications. EventBridge Scheduler invokes
//! it every minute; each invocation claims due messages from the outbox,
//! POSTs them, records the attempts and reschedules failures, so retries span
//! hours without anything sleeping in memory.

use std::time::Duration;

use ferry_lambda::hub::{AwsSetupError, FunctionHub};
use ferry_service::notifications::Notifier;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::{json, Value};

/// Per receiver request; the function's timeout leaves room for a batch.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts per invocation, so one invocation ends well within its timeout.
const BATCH: usize = 50;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    // The role's AWS credentials are in this process's environment: keep it unreadable.
    ferry_core::hardening::make_non_dumpable();
    ferry_lambda::log::init();
    let hub = hub().inspect_err(|e| tracing::error!(error = %e, "cannot start"))?;
    let notifier = Notifier::new(REQUEST_TIMEOUT)?;
    lambda_runtime::run(service_fn(|_event: LambdaEvent<Value>| {
        let (hub, notifier) = (hub.clone(), notifier.clone());
        async move {
            let attempted = hub.notifications().deliver_due_notifications(&notifier, BATCH).await?;
            Ok::<Value, lambda_runtime::Error>(json!({"attempted": attempted}))
        }
    }))
    .await
}

/// Only the adapters this function uses: the others stay out of its binary.
fn hub() -> Result<ferry_service::Hub, AwsSetupError> {
    // Its role (infra/template.yaml): the table, endpoint secrets, the event bus.
    Ok(FunctionHub::from_env()?.with_secrets()?.with_events()?.build())
}
