//! The embedded event bus: a broadcast channel other parts of the process
//! (and tests) subscribe to. Events nobody listens to are dropped.

use async_trait::async_trait;
use tokio::sync::broadcast;

use ferry_core::ports::events::{Event, EventBus, EventError};

#[derive(Clone)]
pub struct InProcessBus {
    tx: broadcast::Sender<Event>,
}

impl Default for InProcessBus {
    fn default() -> Self {
        Self::new(1024)
    }
}

impl InProcessBus {
    pub fn new(capacity: usize) -> Self {
        Self { tx: broadcast::channel(capacity.max(1)).0 }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}

#[async_trait]
impl EventBus for InProcessBus {
    async fn publish(&self, events: &[Event]) -> Result<(), EventError> {
        for e in events {
            // An error only means no subscriber right now.
            let _ = self.tx.send(e.clone());
        }
        Ok(())
    }

    fn backend_name(&self) -> &'static str {
        "in-process"
    }
}
