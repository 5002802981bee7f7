//! A run of a process integration on a host built without the process
//! runner (the Lambda `sync` function: code integrations on AWS are not
//! built yet). It fails as the integration's, with what to do instead.

use super::context::FlowRun;
use ferry_core::error::{Error, Result};
use ferry_core::model::RunStatus;

impl FlowRun<'_> {
    pub(super) async fn execute_process(&mut self) -> Result<RunStatus> {
        Err(Error::invalid(
            "process_integrations_unsupported",
            "this host runs declarative integrations only: process integrations (`run:` manifests) run under \
             `ferry up`, where bubblewrap sandboxes them",
        ))
    }
}
