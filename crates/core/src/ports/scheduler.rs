//! Schedules of jobs, kept by a scheduler that delivers a [`ScheduledTick`]
//! at each fire time.
//!
//! `ferry up` keeps them in memory (the embedded adapter, rebuilt from the
//! store at start) and fires ticks itself; on AWS each job has an EventBridge
//! Scheduler schedule that invokes the sync function with the tick as its
//! payload, and the sync function calls [`ferry_service::schedules::fire`].
//! The store is the source of truth: job writes keep the scheduler in step,
//! and `ferry schedules reconcile` repairs any drift.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::unavailable::{BoxError, Port, Unavailable};
use crate::schedule::{eventbridge, Plan};

/// One scheduled invocation of a job: the payload a scheduler delivers. The
/// tick is the anchored fire time (not the delivery time), so a duplicate
/// delivery carries the same tick and starts no second run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduledTick {
    pub tenant: String,
    pub job: String,
    /// RFC 3339; on AWS EventBridge Scheduler fills in `<aws.scheduler.scheduled-time>`.
    pub tick: DateTime<Utc>,
}

/// A job's schedule as the scheduler should hold it.
#[derive(Debug, Clone)]
pub struct JobSchedule {
    pub tenant: String,
    pub job: String,
    pub plan: Arc<Plan>,
    /// False while the job or its tenant is paused: no ticks are delivered,
    /// and none are replayed on resume.
    pub enabled: bool,
}

impl JobSchedule {
    /// What a scheduler holding this schedule reports.
    pub fn installed(&self) -> Installed {
        let e = eventbridge::expression(&self.plan);
        Installed {
            tenant: self.tenant.clone(),
            job: self.job.clone(),
            expression: e.expression,
            timezone: e.timezone,
            enabled: self.enabled,
        }
    }
}

/// What a scheduler holds for a job, in a form both adapters report alike
/// (EventBridge's expression and timezone), so drift can be found by comparing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Installed {
    pub tenant: String,
    pub job: String,
    pub expression: String,
    pub timezone: String,
    pub enabled: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// The tenant or job id cannot be represented by the backend.
    #[error("invalid schedule address: {0}")]
    InvalidName(String),
    /// The scheduler could not serve the call right now (unreachable, timing
    /// out, throttling); the same call may succeed later.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    /// The scheduler failed in a way retrying will not fix (it refused the
    /// request, or is misconfigured).
    #[error("scheduler backend error: {0}")]
    Backend(#[source] BoxError),
}

impl SchedulerError {
    pub fn backend(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        SchedulerError::Backend(Box::new(e))
    }
    pub fn unavailable(e: impl Into<BoxError>) -> Self {
        SchedulerError::Unavailable(Unavailable::new(Port::Scheduler, e))
    }
}

#[async_trait]
pub trait Scheduler: Send + Sync + 'static {
    /// Creates or replaces the job's schedule.
    async fn put(&self, schedule: &JobSchedule) -> Result<(), SchedulerError>;
    /// Removes the job's schedule; removing a missing one is not an error.
    async fn remove(&self, tenant: &str, job: &str) -> Result<(), SchedulerError>;
    async fn get(&self, tenant: &str, job: &str) -> Result<Option<Installed>, SchedulerError>;
    /// Every schedule this scheduler holds, across tenants.
    async fn list(&self) -> Result<Vec<Installed>, SchedulerError>;
    fn backend_name(&self) -> &'static str;
}
