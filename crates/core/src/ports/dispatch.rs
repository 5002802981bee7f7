//! Handing queued runs to an executor.
//!
//! `ferry up` executes runs in its own process (no dispatcher: the hub spawns
//! them). On AWS an API function must not run them itself, because Lambda
//! freezes the sandbox once the response is sent: the AWS adapter puts the
//! run on a queue that the sync function consumes, and the sync function calls
//! [`ferry_service::Hub::execute_dispatched`].

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::unavailable::{BoxError, Port, Unavailable};

/// Which run to execute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRef {
    pub tenant: String,
    pub job: String,
    pub run: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// The queue could not take the run right now (unreachable, timing out,
    /// throttling); dispatching again later may succeed.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    /// The run could not be handed over, and retrying will not fix it (no
    /// queue configured, access refused).
    #[error("could not dispatch the run: {0}")]
    Backend(#[source] BoxError),
}

impl DispatchError {
    pub fn backend(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        DispatchError::Backend(Box::new(e))
    }
    pub fn unavailable(e: impl Into<BoxError>) -> Self {
        DispatchError::Unavailable(Unavailable::new(Port::RunQueue, e))
    }
}

#[async_trait]
pub trait RunDispatcher: Send + Sync + 'static {
    /// Returns once the run is durably handed over (it will be executed at least once).
    async fn dispatch(&self, run: &RunRef) -> Result<(), DispatchError>;
}
