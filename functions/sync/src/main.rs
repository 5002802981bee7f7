//! Lambda function: executes runs. Consumes the run queue (SQS, with partial
//! batch responses) through the domain's event handler
//! (`ferry_lambda::sync`), and EventBridge Scheduler ticks
//! through the same handler.

use ferry_lambda::hub::{AwsSetupError, FunctionHub};
use ferry_lambda::sync as lambda_sync;
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde_json::Value;

// One event at a time per sandbox: a single-threaded runtime starts faster
// and spawns no idle worker threads.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    // The role's AWS credentials are in this process's environment: keep it unreadable.
    ferry_core::hardening::make_non_dumpable();
    ferry_lambda::log::init();
    ferry_core::allocator::return_large_buffers_to_the_system();
    // Logged as well as returned: Lambda shows the log line, not main's Debug output.
    let hub = hub().inspect_err(|e| tracing::error!(error = %e, "cannot start"))?;
    let hub = &hub;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = lambda_sync::deadline_from_epoch_ms(event.context.deadline);
        lambda_sync::handle_until(hub, event.payload, deadline)
            .await
            .map_err(|e| Diagnostic { error_type: e.kind().to_owned(), error_message: e.to_string() })
    }))
    .await
}

/// Only the adapters this function uses: the others stay out of its binary.
fn hub() -> Result<ferry_service::Hub, AwsSetupError> {
    // The table, connection secrets, the files bucket (its role in infra/template.yaml), the event
    // bus every function is given (FERRY_EVENT_BUS), and the run queue when FERRY_RUN_QUEUE_URL
    // is set (continuations and scheduled ticks queue runs).
    Ok(FunctionHub::from_env()?.with_secrets()?.with_run_queue()?.with_files()?.with_events()?.build())
}
