//! What the services ask of run execution, as a trait the hub implements:
//! execution composes every service, so a service that starts or stops runs
//! (Jobs firing a tick, Tenants and Jobs serving deliveries held while
//! paused, Runs triggering and cancelling) holds this instead of the hub.

use async_trait::async_trait;

use super::{RunRequest, Triggered};
use crate::Hub;
use ferry_core::error::Result;
use ferry_core::model::{Replay, RerunConfig, Run, Trigger};
use ferry_engine::flow::Halt;

#[async_trait]
pub(crate) trait RunControl: Send + Sync {
    /// Starts a run for a trigger arriving now, or bundles it into the next run.
    async fn trigger_now(&self, tenant: &str, job: &str, req: RunRequest, source: &str) -> Result<Triggered>;
    /// Starts or bundles a trigger; `None` for a tick already taken.
    async fn start_or_bundle(
        &self,
        tenant: &str,
        job: &str,
        req: RunRequest,
        trigger: Trigger,
    ) -> Result<Option<Triggered>>;
    /// Starts a rerun of an ended run, or queues it behind the run holding
    /// the job, to be served by a run of its own.
    async fn trigger_rerun(&self, of: &Run, config: RerunConfig, by: &str) -> Result<Triggered>;
    /// Starts a replay of a job's dead letters, or queues it behind the run
    /// holding the job, to be served by a run of its own.
    async fn trigger_replay(&self, tenant: &str, job: &str, replay: Replay, by: &str) -> Result<Triggered>;
    /// Frees a finished or cancelled run's job lease; the triggers dropped with it.
    async fn release_job_lease(&self, run: &Run) -> Result<Vec<Trigger>>;
    /// Stops a run this process executes, at once.
    fn halt_here(&self, run: &str, why: Halt);
    /// Discards where a run cancelled between slices stopped in its flows, and its unfinished files.
    async fn discard_resume_points(&self, run: &Run);
    /// After a job resumed: starts the run serving the deliveries it held.
    async fn serve_held_deliveries(&self, tenant: &str, job: &str);
    /// After a tenant resumed: the same for each of its running jobs.
    async fn serve_held_deliveries_of_tenant(&self, tenant: &str);
}

#[async_trait]
impl RunControl for Hub {
    async fn trigger_now(&self, tenant: &str, job: &str, req: RunRequest, source: &str) -> Result<Triggered> {
        Hub::trigger_now(self, tenant, job, req, source).await
    }

    async fn start_or_bundle(
        &self,
        tenant: &str,
        job: &str,
        req: RunRequest,
        trigger: Trigger,
    ) -> Result<Option<Triggered>> {
        Hub::start_or_bundle(self, tenant, job, req, trigger).await
    }

    async fn trigger_rerun(&self, of: &Run, config: RerunConfig, by: &str) -> Result<Triggered> {
        Hub::trigger_rerun(self, of, config, by).await
    }

    async fn trigger_replay(&self, tenant: &str, job: &str, replay: Replay, by: &str) -> Result<Triggered> {
        Hub::trigger_replay(self, tenant, job, replay, by).await
    }

    async fn release_job_lease(&self, run: &Run) -> Result<Vec<Trigger>> {
        Hub::release_job_lease(self, run).await
    }

    fn halt_here(&self, run: &str, why: Halt) {
        Hub::halt_here(self, run, why)
    }

    async fn discard_resume_points(&self, run: &Run) {
        Hub::discard_resume_points(self, run).await
    }

    async fn serve_held_deliveries(&self, tenant: &str, job: &str) {
        Hub::serve_held_deliveries(self, tenant, job).await
    }

    async fn serve_held_deliveries_of_tenant(&self, tenant: &str) {
        Hub::serve_held_deliveries_of_tenant(self, tenant).await
    }
}
