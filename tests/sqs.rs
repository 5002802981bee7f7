//! SQS events as Lambda's event source mapping delivers them to the sync
//! function, and the partial batch responses it answers with.

use serde_json::{json, Value};

use crate::{LambdaError, Outcome};

/// One message of a batch, as ReceiveMessage returned it (or made up).
#[derive(Debug, Clone)]
pub struct QueuedMessage {
    pub id: String,
    pub receipt_handle: String,
    pub body: String,
    pub md5_of_body: String,
}

impl QueuedMessage {
    /// A message that never went through a queue (`md5OfBody` is then a placeholder).
    pub fn new(id: &str, body: &str) -> Self {
        Self {
            id: id.to_owned(),
            receipt_handle: format!("receipt-{id}"),
            body: body.to_owned(),
            md5_of_body: "0".repeat(32),
        }
    }
}

/// The event the event source mapping sends: `{"Records": [...]}` with every
/// field Lambda sets for a standard queue.
pub fn sqs_event(queue_arn: &str, messages: &[QueuedMessage]) -> Value {
    let region = queue_arn.split(':').nth(3).unwrap_or("us-east-1");
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            json!({
                "messageId": m.id,
                "receiptHandle": m.receipt_handle,
                "body": m.body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1700000000000",
                    "SenderId": "AROAEXAMPLE:ferry-api-integrations",
                    "ApproximateFirstReceiveTimestamp": "1700000000001"
                },
                "messageAttributes": {},
                "md5OfBody": m.md5_of_body,
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region
            })
        })
        .collect();
    json!({ "Records": records })
}

/// The message ids a `ReportBatchItemFailures` response names.
pub fn batch_item_failures(outcome: &Outcome) -> Result<Vec<String>, LambdaError> {
    let payload = match outcome {
        Outcome::Response(payload) => payload,
        Outcome::Error { error_type, body } => {
            return Err(LambdaError::BadBatchResponse(format!(
                "the function reported an error ({}): {}",
                error_type.as_deref().unwrap_or("no type"),
                String::from_utf8_lossy(body)
            )))
        }
        Outcome::InitError(body) => return Err(LambdaError::Init(String::from_utf8_lossy(body).into_owned())),
    };
    let v: Value = serde_json::from_slice(payload).map_err(|e| LambdaError::BadBatchResponse(e.to_string()))?;
    let failures = v["batchItemFailures"]
        .as_array()
        .ok_or_else(|| LambdaError::BadBatchResponse(format!("no batchItemFailures in {v}")))?;
    Ok(failures.iter().filter_map(|f| f["itemIdentifier"].as_str().map(str::to_owned)).collect())
}
