//! The event port: domain events (`tenant_created`, `run_failed`, ...) go to a
//! bus: an in-process broadcast channel in the embedded host, EventBridge on
//! AWS. Publishing never fails the operation that emitted the event.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::unavailable::{BoxError, Port, Unavailable};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    TenantCreated,
    TenantArchived,
    JobCreated,
    RunSucceeded,
    RunFailed,
    ConnectionError,
    /// A notification endpoint was disabled after repeated delivery failures.
    EndpointDisabled,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::TenantCreated => "tenant_created",
            EventKind::TenantArchived => "tenant_archived",
            EventKind::JobCreated => "job_created",
            EventKind::RunSucceeded => "run_succeeded",
            EventKind::RunFailed => "run_failed",
            EventKind::ConnectionError => "connection_error",
            EventKind::EndpointDisabled => "endpoint_disabled",
        }
    }
}

/// One domain event. `data` holds ids and statuses, never secrets or records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// The tenant it concerns; `None` for platform events.
    pub tenant: Option<String>,
    pub at: DateTime<Utc>,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The bus could not take the events right now (unreachable, timing out,
    /// throttling).
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    #[error("event bus error: {0}")]
    Backend(#[source] BoxError),
    #[error("the event bus refused {0} event(s)")]
    Refused(usize),
}

impl EventError {
    pub fn backend(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        EventError::Backend(Box::new(e))
    }
    pub fn unavailable(e: impl Into<BoxError>) -> Self {
        EventError::Unavailable(Unavailable::new(Port::Events, e))
    }
}

#[async_trait]
pub trait EventBus: Send + Sync + 'static {
    async fn publish(&self, events: &[Event]) -> Result<(), EventError>;
    fn backend_name(&self) -> &'static str;
}
