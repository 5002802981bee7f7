//! What a running run checks as it makes progress: a cancel, its budget and
//! its hold on the job's lease ([`Watch`]); the stop signals of the runs this
//! process executes, where a cancel through this process's API finds them
//! ([`Registered`]). What a run that halts is recorded as is `halt`.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use super::lease::RENEW_AFTER;
use crate::repo::{lookups, run_index};
use crate::Hub;
use ferry_core::error::{Error, Result};
use ferry_core::model::{Counters, Run, RunStatus};
use ferry_core::ports::{Condition, StoreError};
use ferry_engine::flow::{Halt, Pulse, Stop};

/// How often a process integration's run checks for a cancel, its budget and its lease.
#[cfg_attr(not(feature = "process-integrations"), allow(dead_code))]
const PROCESS_BEAT: std::time::Duration = std::time::Duration::from_secs(2);
/// Read-modify-writes of a run record race only its own cancel.
pub(super) const ATTEMPTS: usize = 8;

/// What a run checks as it makes progress: a cancel, its budget, and its
/// hold on the job's lease (renewed every [`RENEW_AFTER`]).
pub(crate) struct Watch {
    hub: Hub,
    tenant: String,
    job: String,
    run: String,
    /// When the run's budget ends, on the hub's clock.
    budget_ends: DateTime<Utc>,
    /// When this driver last renewed the lease; `None` until its first page.
    renewed_at: std::sync::Mutex<Option<DateTime<Utc>>>,
    pub(crate) stop: Stop,
}

impl Watch {
    pub(super) fn new(hub: &Hub, run: &Run) -> Self {
        let started = run.started_at.unwrap_or_else(|| hub.clock.now());
        let budget = Duration::from_std(hub.settings.run_budget).unwrap_or(Duration::MAX);
        let budget_ends = started.checked_add_signed(budget).unwrap_or(DateTime::<Utc>::MAX_UTC);
        // The same end on the monotonic clock, for checks that cannot await (the mapping's).
        let left = (budget_ends - hub.clock.now()).to_std().unwrap_or_default();
        let deadline = std::time::Instant::now().checked_add(left);
        Self {
            hub: hub.clone(),
            tenant: run.tenant.clone(),
            job: run.job.clone(),
            run: run.id.clone(),
            budget_ends,
            renewed_at: std::sync::Mutex::new(None),
            stop: Stop::new(deadline),
        }
    }

    pub(super) fn out_of_time(&self) -> bool {
        self.hub.clock.now() >= self.budget_ends
    }

    /// Why the run must stop, if it must; with `counters`, stores them in the
    /// run's record first, so a crash keeps what was written.
    async fn check(&self, counters: Option<BTreeMap<String, Counters>>) -> Result<Option<Halt>> {
        let why = match self.stop.halted() {
            Some(why) => Some(why),
            None if self.out_of_time() => Some(Halt::OutOfTime),
            None if self.record(counters).await? == RunStatus::Cancelled => Some(Halt::Cancelled),
            None if !self.renew_if_due().await? => Some(Halt::LeaseLost),
            None => None,
        };
        if let Some(why) = why {
            self.stop.halt(why);
        }
        Ok(why)
    }

    /// Reads the run's stored status, storing `counters` into it on the way.
    async fn record(&self, counters: Option<BTreeMap<String, Counters>>) -> Result<RunStatus> {
        for _ in 0..ATTEMPTS {
            let found = lookups::run(self.hub.store(), &self.tenant, &self.job, &self.run).await?;
            let mut run = found.value;
            let Some(counters) = counters.clone().filter(|_| run.status == RunStatus::Running) else {
                return Ok(run.status);
            };
            run.counters = counters;
            let op = run_index::put(&run, Condition::VersionIs(found.version))?;
            match self.hub.store().write(vec![op]).await {
                Ok(()) => return Ok(run.status),
                Err(StoreError::ConditionFailed) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::conflict("concurrent_update", "the run kept changing while its progress was saved"))
    }

    /// Renews the lease when a third of it has passed; false when it was lost.
    async fn renew_if_due(&self) -> Result<bool> {
        let now = self.hub.clock.now();
        let last = *self.renewed_at.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| now - t < Duration::seconds(RENEW_AFTER)) {
            return Ok(true);
        }
        let held = self.hub.renew_lease(&self.tenant, &self.job, &self.run).await?;
        if held {
            *self.renewed_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(now);
        }
        Ok(held)
    }

    /// Checks every [`PROCESS_BEAT`] until the run must stop (process
    /// integrations, which have no pages); a failed check is retried.
    #[cfg_attr(not(feature = "process-integrations"), allow(dead_code))]
    pub(super) async fn until_halted(&self) -> Halt {
        loop {
            tokio::time::sleep(PROCESS_BEAT).await;
            match self.check(None).await {
                Ok(Some(why)) => return why,
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "could not check the run's cancel, budget and lease"),
            }
        }
    }
}

/// One flow's [`Pulse`]: the run's counters are those of earlier flows and
/// slices plus this flow's so far.
pub(super) struct FlowPulse {
    pub(super) watch: Arc<Watch>,
    pub(super) flow: String,
    pub(super) before: BTreeMap<String, Counters>,
}

#[async_trait::async_trait]
impl Pulse for FlowPulse {
    async fn beat(&self, so_far: &Counters) -> Result<Option<Halt>> {
        let mut counters = self.before.clone();
        add(counters.entry(self.flow.clone()).or_default(), so_far);
        self.watch.check(Some(counters)).await
    }
}

/// Adds a flow's counters to a total.
pub(super) fn add(total: &mut Counters, more: &Counters) {
    total.read += more.read;
    total.written += more.written;
    total.skipped += more.skipped;
    total.failed += more.failed;
    total.dead_lettered += more.dead_lettered;
}

/// Keeps a run's stop signal where this process's API finds it, for as long
/// as the run executes here (dropped with the driver, even an aborted one).
pub(super) struct Registered {
    stops: Arc<std::sync::Mutex<std::collections::HashMap<String, Stop>>>,
    run: String,
}

impl Registered {
    pub(super) fn new(hub: &Hub, run: &str, stop: &Stop) -> Self {
        hub.stops.lock().unwrap_or_else(|p| p.into_inner()).insert(run.to_owned(), stop.clone());
        Self { stops: hub.stops.clone(), run: run.to_owned() }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.stops.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.run);
    }
}

impl Hub {
    /// Stops the run at once if this process executes it (a cancel); a run
    /// executing elsewhere stops at its next page, when its watch reads the
    /// cancel.
    pub(crate) fn halt_here(&self, run: &str, why: Halt) {
        if let Some(stop) = self.stops.lock().unwrap_or_else(|p| p.into_inner()).get(run) {
            stop.halt(why);
        }
    }
}
