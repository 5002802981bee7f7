//! Run dispatch on AWS: queued runs become SQS messages that the sync function
//! consumes. The message body is the [`RunRef`] as JSON; the sync function's
//! event handler ([`super::lambda_sync`]) reads it back.

use async_trait::async_trait;

use ferry_core::ports::{DispatchError, RunDispatcher, RunRef};

use crate::unavailable::service_error;

/// Puts runs on the run queue (`FERRY_RUN_QUEUE_URL`).
pub struct SqsDispatcher {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsDispatcher {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self { client, queue_url: queue_url.into() }
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }
}

/// The message body of a dispatched run.
pub fn message_body(run: &RunRef) -> Result<String, serde_json::Error> {
    serde_json::to_string(run)
}

/// Reads a run queue message body back.
pub fn parse_message_body(body: &str) -> Result<RunRef, serde_json::Error> {
    serde_json::from_str(body)
}

#[async_trait]
impl RunDispatcher for SqsDispatcher {
    #[tracing::instrument(name = "sqs.dispatch", skip_all, fields(tenant = %run.tenant, job = %run.job, run = %run.run))]
    async fn dispatch(&self, run: &RunRef) -> Result<(), DispatchError> {
        let body = message_body(run).map_err(DispatchError::backend)?;
        // SendMessage returns once SQS has stored the message redundantly:
        // from here the run is delivered at least once.
        self.client.send_message().queue_url(&self.queue_url).message_body(body).send().await.map_err(|e| {
            match service_error(e) {
                Ok(refused) => DispatchError::backend(refused),
                Err(unavailable) => DispatchError::unavailable(unavailable),
            }
        })?;
        tracing::debug!("run queued");
        Ok(())
    }
}

/// Where a deployment without a run queue sends runs: nowhere. A Lambda
/// function must not execute a run itself (the sandbox freezes once the
/// response is sent and the run would hang half-done), so triggering a run
/// fails with a message naming the missing setting instead.
pub struct NoRunQueue;

/// The variable naming the run queue of the functions that trigger runs.
pub const ENV_RUN_QUEUE_URL: &str = "FERRY_RUN_QUEUE_URL";

#[derive(Debug, thiserror::Error)]
#[error(
    "runs cannot be queued: {} is not set (the SAM template sets it on the functions that trigger runs)",
    ENV_RUN_QUEUE_URL
)]
pub struct NoRunQueueError;

#[async_trait]
impl RunDispatcher for NoRunQueue {
    async fn dispatch(&self, _run: &RunRef) -> Result<(), DispatchError> {
        Err(DispatchError::backend(NoRunQueueError))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_bodies_roundtrip() {
        let run = RunRef { tenant: "acme".into(), job: "j1".into(), run: "01J".into() };
        let body = message_body(&run).expect("serialise");
        assert_eq!(parse_message_body(&body).expect("parse"), run);
        assert!(parse_message_body("{\"tenant\": \"acme\"}").is_err());
        assert!(parse_message_body("not json").is_err());
    }
}
