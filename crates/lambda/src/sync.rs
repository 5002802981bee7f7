//! The sync function's event handler: turns the Lambda events the sync
//! function receives into calls of the domain's entry points. The function's
//! `main.rs` only wires the hub and hands [`handle`] to the runtime.
//!
//! Event shapes, told apart by [`SyncEvent::parse`]:
//! - a batch from the run queue (SQS; the body of each message is a
//!   [`ferry_core::ports::RunRef`], see [`super::sqs`]) → [`ferry_service::Hub::execute_dispatched`],
//!   answered with the messages that failed (`ReportBatchItemFailures`), so
//!   only those are delivered again (and end in the dead-letter queue after
//!   the queue's `maxReceiveCount`);
//! - EventBridge Scheduler ticks (the schedule's `Input`, no envelope:
//!   `{"tenant": "acme", "job": "...", "tick": "<aws.scheduler.scheduled-time>"}`)
//!   → [`ferry_service::Jobs::fire_scheduled`], answered with what the tick did. A tick
//!   the domain refuses (a fire time in the future) is answered, not failed, so
//!   Scheduler does not retry it; anything else fails the invocation and
//!   Scheduler retries (duplicate ticks start nothing).
//!
//! A backend that is unavailable (the store, the secrets, the queue: see
//! [`ferry_core::ports::Unavailable`]) is always a retryable failure: the
//! message is reported failed and delivered again, the tick's invocation
//! fails with the error type `BackendUnavailable` and Scheduler retries it.
//!
//! Runs stop at a checkpoint before the invocation's deadline and continue in
//! a new invocation through the run queue; a run bundled behind the one an
//! invocation executes goes through the run queue too, so nothing executes
//! past the deadline and no run is left `running` by a frozen sandbox.

use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use serde_json::{json, Value};

use ferry_aws::sqs::parse_message_body;
use ferry_core::error::chain;
use ferry_service::Hub;

/// An event the sync function understands.
#[derive(Debug)]
pub enum SyncEvent {
    /// Run queue messages: `{"Records": [{"eventSource": "aws:sqs", ...}]}`.
    RunQueue(SqsEvent),
    /// An EventBridge Scheduler invocation: the schedule's `Input` as the whole event.
    ScheduledTick(ferry_core::ports::ScheduledTick),
}

#[derive(Debug, thiserror::Error)]
pub enum SyncEventError {
    #[error("unrecognised event (top-level fields: {0}): the sync function takes SQS batches from the run queue and EventBridge Scheduler ticks")]
    Unrecognised(String),
    #[error("malformed scheduled tick: {0}")]
    MalformedTick(#[source] serde_json::Error),
    #[error("the scheduled tick could not be fired: {0}")]
    Tick(#[source] ferry_core::Error),
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
            SyncEventError::MalformedTick(_) => "MalformedScheduledTick",
            SyncEventError::Tick(e) if e.unavailable().is_some() => "BackendUnavailable",
            SyncEventError::Tick(_) => "ScheduledTickFailed",
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
        if is_scheduled_tick(&event) {
            return serde_json::from_value(event).map(SyncEvent::ScheduledTick).map_err(SyncEventError::MalformedTick);
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
    handle_until(hub, event, None).await
}

/// [`handle`] for an invocation that ends at `deadline` (the Lambda context's):
/// runs stop at a checkpoint with time to spare and continue in a new invocation.
pub async fn handle_until(hub: &Hub, event: Value, deadline: Option<Instant>) -> Result<Value, SyncEventError> {
    match SyncEvent::parse(event)? {
        SyncEvent::RunQueue(batch) => {
            let response = run_batch_until(hub, batch, deadline.map(stop_before)).await;
            serde_json::to_value(response).map_err(SyncEventError::Response)
        }
        SyncEvent::ScheduledTick(tick) => match hub.jobs().fire_scheduled(&tick).await {
            Ok(fired) => serde_json::to_value(fired).map_err(SyncEventError::Response),
            // Retrying cannot fix what the domain refused: answer, so Scheduler stops.
            Err(ferry_core::Error::Invalid { code, message }) => {
                tracing::error!(code, %message, tenant = %tick.tenant, job = %tick.job, "scheduled tick refused");
                Ok(json!({"outcome": "refused", "code": code, "message": message}))
            }
            Err(e) => Err(SyncEventError::Tick(e)),
        },
    }
}

/// When to stop starting pages: a quarter of the time left, at most a minute,
/// is kept for the last page, the checkpoint and handing the run on.
fn stop_before(deadline: Instant) -> Instant {
    let left = deadline.saturating_duration_since(Instant::now());
    deadline - (left / 4).min(Duration::from_secs(60))
}

/// The Lambda context's deadline (milliseconds since the epoch) as an [`Instant`].
pub fn deadline_from_epoch_ms(deadline_ms: u64) -> Option<Instant> {
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as u64;
    Some(Instant::now() + Duration::from_millis(deadline_ms.checked_sub(now_ms)?))
}

/// Executes each dispatched run of the batch in turn and reports the messages
/// that failed. Duplicate deliveries are no-ops in the domain, so a message
/// delivered again after a partial failure does no harm.
#[tracing::instrument(name = "run_queue.batch", skip_all, fields(messages = batch.records.len()))]
pub async fn run_batch(hub: &Hub, batch: SqsEvent) -> SqsBatchResponse {
    run_batch_until(hub, batch, None).await
}

async fn run_batch_until(hub: &Hub, batch: SqsEvent, stop_at: Option<Instant>) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for message in &batch.records {
        // Without an id the failure cannot be named; Lambda then retries the
        // whole batch, which is still correct (duplicates are no-ops).
        let id = message.message_id.clone().unwrap_or_default();
        if let Err(e) = run_message(hub, message, stop_at).await {
            let unavailable = matches!(&e, MessageError::Domain(d) if d.unavailable().is_some());
            tracing::error!(message_id = %id, error = %chain(&e), unavailable, "run queue message failed; it will be delivered again");
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
    Domain(#[from] ferry_core::Error),
}

async fn run_message(hub: &Hub, message: &SqsMessage, stop_at: Option<Instant>) -> Result<(), MessageError> {
    let body = message.body.as_deref().ok_or(MessageError::NoBody)?;
    let run = parse_message_body(body).map_err(MessageError::NotARun)?;
    let span = tracing::info_span!("run_queue.message", tenant = %run.tenant, job = %run.job, run = %run.run);
    tracing::Instrument::instrument(hub.execute_dispatched_until(&run, stop_at), span).await?;
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

    #[test]
    fn scheduler_ticks_are_recognised_and_malformed_ones_named() {
        let tick = json!({"tenant": "acme", "job": "01J0000000000000000000000", "tick": "2026-01-01T00:00:00Z"});
        assert!(matches!(SyncEvent::parse(tick), Ok(SyncEvent::ScheduledTick(t)) if t.tenant == "acme"));
        let bad_time = json!({"tenant": "acme", "job": "j", "tick": "yesterday"});
        assert!(matches!(SyncEvent::parse(bad_time), Err(SyncEventError::MalformedTick(_))));
        let extra = json!({"tenant": "acme", "job": "j", "tick": "t", "more": 1});
        assert!(matches!(SyncEvent::parse(extra), Err(SyncEventError::Unrecognised(_))));
    }

    #[test]
    fn a_tick_failed_by_an_unavailable_backend_is_named_so() {
        let down = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let unavailable = SyncEventError::Tick(ferry_core::ports::StoreError::unavailable(down).into());
        assert_eq!(unavailable.kind(), "BackendUnavailable");
        assert_eq!(SyncEventError::Tick(ferry_core::Error::Internal("bug".into())).kind(), "ScheduledTickFailed");
    }

    #[test]
    fn runs_stop_with_time_to_spare_before_the_deadline() {
        let deadline = Instant::now() + Duration::from_secs(300);
        let stop = stop_before(deadline);
        let spare = deadline - stop;
        assert!(spare >= Duration::from_secs(59) && spare <= Duration::from_secs(60), "{spare:?}");
        let soon = Instant::now() + Duration::from_secs(8);
        assert!(soon - stop_before(soon) <= Duration::from_secs(2));
        assert!(deadline_from_epoch_ms(0).is_none(), "a deadline in the past gives no time");
    }
}
