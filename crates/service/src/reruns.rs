//! Reruns: run an ended run again, with the configuration it recorded
//! (`original`: its release, connections, configs and mapping versions) or
//! with the job as it is now (`current`), and its mode and options either
//! way. The new run points back at it (`rerun_of`) and obeys the one run per
//! job rule: while a run holds the job it waits, and it is served by a run of
//! its own (`crate::execution`'s bundling rule). Also a run as `GET` shows it,
//! with its recorded configuration.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::execution::{check_replayable, config_unknown, recorded};
use crate::repo::lookups;
use crate::runs::Runs;
use ferry_core::error::{Error, Result};
use ferry_core::model::{RerunConfig, Run, RunConfig, RunMode};

pub use crate::execution::Triggered;

/// A rerun request.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RerunRequest {
    /// `original`: the release, connections, configs and mapping versions the
    /// run recorded; `current`: the job as it is now. Mode and options are
    /// the run's either way.
    pub config: RerunConfig,
}

/// A run and the configuration it executed with.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RunDetail {
    #[serde(flatten)]
    pub run: Run,
    /// What the run executed with (no secrets); absent until it starts executing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<RunConfig>,
}

impl Runs<'_> {
    /// A run with its recorded configuration.
    pub async fn run_detail(&self, tenant: &str, job: &str, id: &str) -> Result<RunDetail> {
        let run = self.get_run(tenant, job, id).await?;
        let config = recorded(self.store, tenant, job, id).await?;
        Ok(RunDetail { run, config })
    }

    /// Reruns an ended run: starts the rerun, or queues it behind the run
    /// holding the job (`bundled`, answered with that run, as a trigger is).
    /// Refused with 409: `run_not_finished`, `not_rerunnable` (a webhook
    /// run: the deliveries it served are consumed), and for `original`
    /// `run_config_unknown` (the run never started executing),
    /// `release_gone`, `mapping_version_gone`, `connection_gone`.
    #[tracing::instrument(skip_all, fields(tenant = tenant, job = job, run = id))]
    pub async fn rerun(&self, tenant: &str, job: &str, id: &str, req: RerunRequest, by: &str) -> Result<Triggered> {
        lookups::job(self.store, tenant, job).await?;
        let run = self.get_run(tenant, job, id).await?;
        if !run.status.is_finished() {
            return Err(Error::conflict(
                "run_not_finished",
                format!("run '{id}' has not ended; cancel it or wait for it before rerunning it"),
            ));
        }
        if run.mode == RunMode::Webhook {
            return Err(Error::conflict(
                "not_rerunnable",
                format!("run '{id}' served webhook deliveries, which it consumed; webhook runs are not rerun"),
            ));
        }
        if req.config == RerunConfig::Original {
            let config = recorded(self.store, tenant, job, id).await?.ok_or_else(|| config_unknown(id))?;
            check_replayable(self.store, tenant, &config).await?;
        }
        let triggered = self.runs.trigger_rerun(&run, req.config, by).await?;
        tracing::info!(bundled = triggered.bundled, config = ?req.config, "rerun requested");
        Ok(triggered)
    }
}
