//! Records a flow could not deliver, and the port they leave the engine
//! through. The engine never sees the store: the service implements
//! [`DeadLetters`] over it, and is handed each page's failures in one call.

use serde_json::Value;

use ferry_core::error::Result;
use ferry_core::model::DeadLetterCategory;

/// A record that failed mapping or that the target refused.
#[derive(Debug, Clone, PartialEq)]
pub struct Failed {
    pub category: DeadLetterCategory,
    /// Built from the request's path template and status, then (after a
    /// colon) an excerpt of the target's answer when there is one: the
    /// receiving port masks secrets in it before it is kept.
    pub error: String,
    /// The record as the source returned it.
    pub source: Value,
    /// The record as mapped, when the flow has a mapping and it succeeded.
    pub mapped: Option<Value>,
}

/// Where a flow's failed records go (`on_record_error: dead_letter`).
#[async_trait::async_trait]
pub trait DeadLetters: Send + Sync {
    /// Stores one page's failed records durably; the flow moves its cursor
    /// past them only after this returned `Ok`.
    async fn store(&self, records: Vec<Failed>) -> Result<()>;
}
