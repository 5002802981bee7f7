//! Runs as operators and API keys see them: triggering a run, reading runs
//! and their logs, cancelling one. How a run executes (the job's lease,
//! bundling, continuations, the executors) is `crate::execution`'s.

use serde::Serialize;
use utoipa::ToSchema;

use crate::execution::{served_log, RunControl};
use crate::repo::{keys, lookups, records, run_index, Page, PageRequest};
use ferry_core::error::{Error, Result};
use ferry_core::model::{Run, RunStatus, Trigger};
use ferry_core::ports::{Clock, Condition, Index, Query, Store, StoreError};
use ferry_engine::flow::Halt;

pub use crate::execution::{LogFilter, LogLevel, LogLine, RunLogs, RunRequest, Triggered};

/// A cancelled run, and the triggers that were waiting behind it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CancelledRun {
    pub run: Run,
    /// Triggers bundled behind the run. They are dropped with it rather than
    /// started: an operator cancels a run because it misbehaves, and the next
    /// scheduled or explicit trigger starts a fresh run.
    pub dropped_triggers: Vec<Trigger>,
}

/// Read-modify-writes of a run record race only its driver.
const ATTEMPTS: usize = 8;

/// Runs: trigger one (it starts, or bundles into the next run when one is
/// going), read runs and their logs, cancel one. Uses the store and clock;
/// asks run execution (`RunControl`: `trigger_now`, `halt_here`,
/// `release_job_lease`) to execute, stop and free what is triggered and
/// cancelled here.
#[derive(Clone, Copy)]
pub struct Runs<'h> {
    pub(crate) store: &'h dyn Store,
    pub(crate) clock: &'h dyn Clock,
    pub(crate) runs: &'h dyn RunControl,
}

impl Runs<'_> {
    /// Starts a run, or bundles the trigger into the next run when one is going.
    pub async fn trigger_run(&self, tenant: &str, job_id: &str, req: RunRequest, source: &str) -> Result<Triggered> {
        self.runs.trigger_now(tenant, job_id, req, source).await
    }

    pub async fn get_run(&self, tenant: &str, job: &str, id: &str) -> Result<Run> {
        Ok(lookups::run(self.store, tenant, job, id).await?.value)
    }

    /// A job's runs, newest first.
    pub async fn list_runs(&self, tenant: &str, job: &str, page: &PageRequest) -> Result<Page<Run>> {
        lookups::job(self.store, tenant, job).await?;
        let q = Query::partition(Index::Primary, keys::runs_partition(tenant, job)).prefix("RUN#").descending();
        records::list(self.store, q, page).await
    }

    /// A run's log lines that pass `filter` (see `execution::log` for the cap).
    pub async fn run_logs(&self, tenant: &str, job: &str, id: &str, filter: &LogFilter) -> Result<RunLogs> {
        self.get_run(tenant, job, id).await?;
        served_log(self.store, tenant, job, id, filter).await
    }

    /// Cancels a run that has not ended. A queued or interrupted run ends at
    /// once; a running one stops at its next page boundary, or before its next
    /// write when this process executes it, and a process integration is
    /// killed. The job's lease is freed and the triggers bundled behind the
    /// run are dropped. The cancel is stored first, so a driver that has not
    /// noticed it yet cannot overwrite it (its record saves keep a stored cancel).
    #[tracing::instrument(skip_all, fields(tenant = tenant, job = job, run = id))]
    pub async fn cancel_run(&self, tenant: &str, job: &str, id: &str, by: &str) -> Result<CancelledRun> {
        for _ in 0..ATTEMPTS {
            let found = lookups::run(self.store, tenant, job, id).await?;
            let mut run = found.value;
            if run.status.is_finished() {
                return Err(finished(id, run.status));
            }
            let before = run.status;
            run.status = RunStatus::Cancelled;
            run.ended_at = Some(self.clock.now());
            run.error = Some(format!("cancelled by {by}"));
            run.progress = None;
            let op = run_index::put(&run, Condition::VersionIs(found.version))?;
            let ending = crate::metrics::ending(self.store, Some(before), &run).await?;
            match self
                .store
                .write([op].into_iter().chain(ending.as_ref().map(crate::metrics::Ending::op)).collect())
                .await
            {
                Ok(()) => crate::metrics::fold_ended(self.store, ending).await,
                Err(StoreError::ConditionFailed) => continue,
                Err(e) => return Err(e.into()),
            }
            self.runs.halt_here(id, Halt::Cancelled);
            if before == RunStatus::Interrupted {
                // No continuation comes to go on with its files.
                self.runs.discard_resume_points(&run).await;
            }
            let dropped_triggers = self.runs.release_job_lease(&run).await?;
            tracing::info!(dropped = dropped_triggers.len(), "run cancelled");
            return Ok(CancelledRun { run, dropped_triggers });
        }
        Err(Error::conflict("concurrent_update", "the run kept changing; retry"))
    }
}

fn finished(id: &str, status: RunStatus) -> Error {
    let status = serde_json::to_value(status).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    Error::conflict(
        "run_finished",
        format!("run '{id}' already ended ({status}); only queued, running or interrupted runs can be cancelled"),
    )
}
