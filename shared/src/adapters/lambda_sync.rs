//! The sync function's event handler: turns the Lambda events the sync
//! function receives into calls of the domain's entry points. The function's
//! `main.rs` only wires the hub and hands [`handle`] to the runtime.
//!
//! Event shapes, told apart by [`SyncEvent::parse`]:
//! - a batch from the run queue (SQS; the body of each message is a
//!   [`crate::ports::RunRef`], see [`super::sqs`]) → [`crate::Hub::execute_dispatched`],
//!   answered with the messages that failed (`ReportBatchItemFailures`), so
//!   only those are delivered again (and end in the dead-letter queue after
//!   the queue's `maxReceiveCount`);
//! - EventBridge Scheduler ticks (the schedule's `Input`, e.g.
//!   `{"tenant": "acme", "job": "...", "tick": "<aws.scheduler.scheduled-time>"}`):
//!   recognised, but not routed yet; see `SCHEDULED TICKS` below.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use serde_json::Value;

use super::sqs::parse_message_body;
use crate::Hub;

/// An event the sync function understands.
#[derive(Debug)]
pub enum SyncEvent {
    /// Run queue messages: `{"Records": [{"eventSource": "aws:sqs", ...}]}`.
    RunQueue(SqsEvent),
    // SCHEDULED TICKS GO HERE. EventBridge Scheduler invokes the function with
    // the schedule's `Input` JSON as the whole event (no envelope). Once the
    // scheduler port lands: add `ScheduledTick(crate::ports::ScheduledTick)`,
    // deserialise it in `SyncEvent::parse` where `is_scheduled_tick` matches,
    // and call `hub.fire_scheduled(&tick)` from `handle`; then drop
    // `SyncEventError::TickNotRouted`.
}

#[derive(Debug, thiserror::Error)]
pub enum SyncEventError {
    #[error("unrecognised event (top-level fields: {0}): the sync function takes SQS batches from the run queue")]
    Unrecognised(String),
    /// A Scheduler tick reached a build without the scheduler (see `SCHEDULED TICKS`).
    #[error("EventBridge Scheduler ticks are not routed by this build of the sync function")]
    TickNotRouted,
    #[error("malformed SQS event: {0}")]
    MalformedSqs(#[source] serde_json::Error),
    #[error("the response does not serialise: {0}")]
    Response(#[source] serde_json::Error),
}

impl SyncEventError {
    /// A stable name for the error, reported to Lambda as the error type.
    pub fn kind(&self) -> &'static str {
        match self {
            SyncEventError::Unrecognised(_) => "UnrecognisedEvent",
            SyncEventError::TickNotRouted => "ScheduledTickNotRouted",
            SyncEventError::MalformedSqs(_) => "MalformedSqsEvent",
            SyncEventError::Response(_) => "ResponseNotSerialisable",
        }
    }
}

impl SyncEvent {
    pub fn parse(event: Value) -> Result<Self, SyncEventError> {
        if is_sqs_batch(&event) {
            return serde_json::from_value(event).map(SyncEvent::RunQueue).map_err(SyncEventError::MalformedSqs);
        }
        // SCHEDULED TICKS: the dispatch point for the Scheduler payload.
        if is_scheduled_tick(&event) {
            return Err(SyncEventError::TickNotRouted);
        }
        Err(SyncEventError::Unrecognised(top_level_fields(&event)))
    }
}

fn is_sqs_batch(event: &Value) -> bool {
    event
        .get("Records")
        .and_then(Value::as_array)
        .is_some_and(|records| records.iter().all(|r| r.get("eventSource").and_then(Value::as_str) == Some("aws:sqs")))
}

/// The shape of a Scheduler tick: an object with exactly `tenant`, `job` and
/// `tick` (the schedule's `Input`; no envelope).
fn is_scheduled_tick(event: &Value) -> bool {
    event.as_object().is_some_and(|m| m.len() == 3 && ["tenant", "job", "tick"].iter().all(|k| m.contains_key(*k)))
}

/// Names the event's fields without echoing their values into the logs.
fn top_level_fields(event: &Value) -> String {
    match event {
        Value::Object(map) if map.is_empty() => "none".to_owned(),
        Value::Object(map) => map.keys().take(10).cloned().collect::<Vec<_>>().join(", "),
        other => format!("not an object but {}", json_kind(other)),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Handles one invocation of the sync function; the `Value` is its response.
/// An error fails the whole invocation (Lambda retries or drops the event by
/// the source's rules); per-message failures are part of the response instead.
pub async fn handle(hub: &Hub, event: Value) -> Result<Value, SyncEventError> {
    match SyncEvent::parse(event)? {
        SyncEvent::RunQueue(batch) => {
            let response = run_batch(hub, batch).await;
            serde_json::to_value(response).map_err(SyncEventError::Response)
        } // SCHEDULED TICKS: `SyncEvent::ScheduledTick(tick) => hub.fire_scheduled(&tick)`, answered with its outcome.
    }
}

/// Executes each dispatched run of the batch in turn and reports the messages
/// that failed. Duplicate deliveries are no-ops in the domain, so a message
/// delivered again after a partial failure does no harm.
#[tracing::instrument(name = "run_queue.batch", skip_all, fields(messages = batch.records.len()))]
pub async fn run_batch(hub: &Hub, batch: SqsEvent) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for message in &batch.records {
        // Without an id the failure cannot be named; Lambda then retries the
        // whole batch, which is still correct (duplicates are no-ops).
        let id = message.message_id.clone().unwrap_or_default();
        if let Err(e) = run_message(hub, message).await {
            tracing::error!(message_id = %id, error = %e, "run queue message failed; it will be delivered again");
            response.add_failure(id);
        }
    }
    response
}

#[derive(Debug, thiserror::Error)]
enum MessageError {
    #[error("the message has no body")]
    NoBody,
    #[error("the message body is not a run reference ({0}); it will end in the dead-letter queue")]
    NotARun(#[source] serde_json::Error),
    #[error(transparent)]
    Domain(#[from] crate::Error),
}

async fn run_message(hub: &Hub, message: &SqsMessage) -> Result<(), MessageError> {
    let body = message.body.as_deref().ok_or(MessageError::NoBody)?;
    let run = parse_message_body(body).map_err(MessageError::NotARun)?;
    let span = tracing::info_span!("run_queue.message", tenant = %run.tenant, job = %run.job, run = %run.run);
    tracing::Instrument::instrument(hub.execute_dispatched(&run), span).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn sqs_batches_are_recognised_and_other_shapes_named() {
        let sqs = json!({"Records": [{"messageId": "m1", "body": "{}", "eventSource": "aws:sqs"}]});
        assert!(matches!(SyncEvent::parse(sqs), Ok(SyncEvent::RunQueue(b)) if b.records.len() == 1));
        let err = SyncEvent::parse(json!({"tick": true, "secret": "s3cr3t"})).expect_err("not SQS");
        let text = err.to_string();
        assert!(text.contains("tick") && !text.contains("s3cr3t"), "{text}");
        let sns = json!({"Records": [{"EventSource": "aws:sns"}]});
        assert!(matches!(SyncEvent::parse(sns), Err(SyncEventError::Unrecognised(_))));
        assert!(matches!(SyncEvent::parse(json!([1])), Err(SyncEventError::Unrecognised(t)) if t.contains("array")));
    }

    // Replace with a test that the tick fires its job once the scheduler port is merged.
    #[test]
    fn scheduler_ticks_reach_their_own_dispatch_point() {
        let tick = json!({"tenant": "acme", "job": "01J0000000000000000000000", "tick": "2026-01-01T00:00:00Z"});
        assert!(matches!(SyncEvent::parse(tick), Err(SyncEventError::TickNotRouted)));
        let extra = json!({"tenant": "acme", "job": "j", "tick": "t", "more": 1});
        assert!(matches!(SyncEvent::parse(extra), Err(SyncEventError::Unrecognised(_))));
    }
}
