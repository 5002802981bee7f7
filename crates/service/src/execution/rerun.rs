//! A rerun (and a replay of dead letters) enters like any trigger: it starts a run when the job is free,
//! else waits in the job's lease. Unlike other triggers it is served by a run
//! of its own ([`super::bundle`]), which points back at the run it reruns.

use super::bundle::{Pending, Rerun};
use super::Triggered;
use crate::Hub;
use ferry_core::error::{Error, Result};
use ferry_core::model::{Replay, RerunConfig, Run, RunMode, RunOptions, Trigger};

impl Hub {
    /// Starts a rerun of `of` (with its mode and options), or queues it
    /// behind the run holding the job.
    pub(crate) async fn trigger_rerun(&self, of: &Run, config: RerunConfig, by: &str) -> Result<Triggered> {
        let trigger = Trigger { source: "rerun".into(), at: self.clock.now(), tick: None, by: Some(by.to_owned()) };
        let pending = Pending {
            mode: of.mode,
            trigger,
            options: of.options.clone(),
            rerun: Some(Rerun { of: of.id.clone(), config }),
            replay: None,
        };
        self.start_or_bundle_pending(&of.tenant, &of.job, pending)
            .await?
            .ok_or_else(|| Error::Internal("a trigger without a tick was taken for a duplicate".into()))
    }

    /// Starts a replay of dead letters of a job (trigger `replay`), or queues
    /// it behind the run holding the job; like a rerun, served by a run of its own.
    pub(crate) async fn trigger_replay(&self, tenant: &str, job: &str, replay: Replay, by: &str) -> Result<Triggered> {
        let trigger = Trigger { source: "replay".into(), at: self.clock.now(), tick: None, by: Some(by.to_owned()) };
        let pending = Pending {
            mode: RunMode::Normal,
            trigger,
            options: RunOptions::default(),
            rerun: None,
            replay: Some(replay),
        };
        self.start_or_bundle_pending(tenant, job, pending)
            .await?
            .ok_or_else(|| Error::Internal("a trigger without a tick was taken for a duplicate".into()))
    }
}
