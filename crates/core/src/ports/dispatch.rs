//! Handing queued runs to an executor.
//!
//! `ferry up` executes runs in its own process (no dispatcher: the hub spawns
//! them). On AWS an API function must not run them itself, because Lambda
//! freezes the sandbox once the response is sent: the AWS adapter puts the
//! run on a queue that the sync function consumes, and the sync function calls
//! [`ferry_service::Hub::execute_dispatched`].

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Which run to execute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRef {
    pub tenant: String,
    pub job: String,
    pub run: String,
}

#[derive(Debug, thiserror::Error)]
#[error("could not dispatch the run: {0}")]
pub struct DispatchError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

#[async_trait]
pub trait RunDispatcher: Send + Sync + 'static {
    /// Returns once the run is durably handed over (it will be executed at least once).
    async fn dispatch(&self, run: &RunRef) -> Result<(), DispatchError>;
}
