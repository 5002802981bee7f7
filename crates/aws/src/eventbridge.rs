//! [`EventBus`] on Amazon EventBridge: each event is a `PutEvents` entry on
//! the deployment's bus, `source` `ferry`, `detail-type` the event type, and
//! the event itself as the detail, so rules can match on `detail.tenant`.

use async_trait::async_trait;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;

use ferry_core::ports::events::{Event, EventBus, EventError};

use crate::unavailable::service_error;

pub const SOURCE: &str = "ferry";
/// PutEvents takes at most 10 entries per call.
const BATCH: usize = 10;

#[derive(Clone)]
pub struct EventBridgeBus {
    client: Client,
    bus: String,
}

impl EventBridgeBus {
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        Self { client, bus: bus.into() }
    }

    pub fn bus_name(&self) -> &str {
        &self.bus
    }
}

#[async_trait]
impl EventBus for EventBridgeBus {
    async fn publish(&self, events: &[Event]) -> Result<(), EventError> {
        for chunk in events.chunks(BATCH) {
            let mut req = self.client.put_events();
            for e in chunk {
                let detail = serde_json::to_string(e).map_err(EventError::backend)?;
                req = req.entries(
                    PutEventsRequestEntry::builder()
                        .event_bus_name(&self.bus)
                        .source(SOURCE)
                        .detail_type(e.kind.as_str())
                        .detail(detail)
                        .time(aws_sdk_eventbridge::primitives::DateTime::from_secs(e.at.timestamp()))
                        .build(),
                );
            }
            let out = req.send().await.map_err(|e| match service_error(e) {
                Ok(refused) => EventError::backend(refused),
                Err(unavailable) => EventError::unavailable(unavailable),
            })?;
            let failed = out.failed_entry_count() as usize;
            if failed > 0 {
                return Err(EventError::Refused(failed));
            }
        }
        Ok(())
    }

    fn backend_name(&self) -> &'static str {
        "eventbridge"
    }
}
