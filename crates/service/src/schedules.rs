//! Scheduled runs: firing ticks, keeping the scheduler in step with jobs, and
//! reconciling the two.
//!
//! The store is the source of truth. Job and tenant writes update the
//! scheduler after the store write; if that fails the job is still saved, the
//! failure is logged, and `ferry schedules reconcile` (or the next start of
//! `ferry up`, which rebuilds its queue by reconciling) repairs the drift.
//! Whatever the scheduler holds, a tick only starts a run when the job still
//! has a schedule and is not held (`jobs::held_because`: neither it nor its
//! tenant is paused, and its tenant is not archived).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Duration;
use serde::Serialize;

use super::runs::{RunRequest, Triggered};
use super::Hub;
use crate::jobs::Jobs;
use crate::repo::{keys, lookups, records, PageRequest};
use ferry_core::error::{Error, Result};
use ferry_core::model::Tenant;
use ferry_core::model::{Job, RunMode, RunOptions, Trigger};
use ferry_core::ports::{Index, Installed, JobSchedule, Query, ScheduledTick};
use ferry_core::schedule::Plan;

/// How far ahead of the clock a tick may be (clock skew between hosts).
const MAX_EARLY_SECONDS: i64 = 300;

/// What a delivered tick did.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Fired {
    /// A run started for the tick.
    Started { run: String },
    /// The job's run was still going: the tick is bundled into the next run.
    Bundled { run: String },
    /// This tick (or a later one) was already taken: a duplicate delivery.
    Duplicate,
    /// Nothing to run: the job is gone, paused, unscheduled, or its tenant is paused or archived.
    Skipped { reason: String },
}

/// The sync function's entry point for scheduled invocations (and the
/// embedded scheduler's): starts the job's run for the tick through the same
/// lease as every other trigger. Safe to call again with the same tick.
pub async fn fire(hub: &Hub, tick: &ScheduledTick) -> Result<Fired> {
    hub.jobs().fire_scheduled(tick).await
}

/// What `reconcile` found and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Reconciled {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub removed: Vec<String>,
    pub unchanged: usize,
    /// Jobs whose stored schedule no longer compiles: `tenant/job: problem`.
    pub invalid: Vec<String>,
}

fn address(tenant: &str, job: &str) -> String {
    format!("{tenant}/{job}")
}

impl Jobs<'_> {
    #[tracing::instrument(skip_all, fields(tenant = %tick.tenant, job = %tick.job, tick = %tick.tick))]
    pub async fn fire_scheduled(&self, tick: &ScheduledTick) -> Result<Fired> {
        let now = self.clock.now();
        if tick.tick > now + Duration::seconds(MAX_EARLY_SECONDS) {
            return Err(Error::invalid(
                "invalid_tick",
                format!("tick {} is in the future (now {now}); ticks are fire times that have come", tick.tick),
            ));
        }
        let skipped = |reason: &str| {
            tracing::info!(reason, "scheduled tick skipped");
            Ok(Fired::Skipped { reason: reason.to_owned() })
        };
        let Some(tenant) = lookups::find_tenant(self.store, &tick.tenant).await? else {
            return skipped("the tenant does not exist");
        };
        let job = match lookups::job(self.store, &tick.tenant, &tick.job).await {
            Ok(j) => j.value,
            Err(Error::NotFound { .. }) => return skipped("the job does not exist"),
            Err(e) => return Err(e),
        };
        if let Some(reason) = super::jobs::held_because(&tenant, &job) {
            return skipped(reason);
        }
        if job.schedule.is_none() {
            return skipped("the job has no schedule");
        }
        let req = RunRequest { mode: RunMode::Normal, options: RunOptions::default() };
        let trigger = Trigger { source: "schedule".into(), at: now, tick: Some(tick.tick), by: None };
        Ok(match self.runs.start_or_bundle(&tick.tenant, &tick.job, req, trigger).await? {
            None => Fired::Duplicate,
            Some(Triggered { run, bundled: true }) => Fired::Bundled { run: run.id },
            Some(Triggered { run, bundled: false }) => Fired::Started { run: run.id },
        })
    }

    /// What the scheduler should hold for a job: `Ok(None)` for no schedule.
    pub fn job_schedule(job: &Job, tenant_paused: bool) -> std::result::Result<Option<JobSchedule>, String> {
        let Some(schedule) = &job.schedule else { return Ok(None) };
        let plan = Plan::compile(schedule).map_err(|e| e.to_string())?;
        Ok(Some(JobSchedule {
            tenant: job.tenant.clone(),
            job: job.id.clone(),
            plan: Arc::new(plan),
            enabled: !job.paused && !tenant_paused,
        }))
    }

    /// Brings the scheduler in step with a job just written. Failures are
    /// logged, not returned: the job is saved, and reconciling repairs it.
    pub(crate) async fn sync_job_schedule(&self, job: &Job) {
        let Some(scheduler) = &self.scheduler else { return };
        let tenant_paused = match lookups::find_tenant(self.store, &job.tenant).await {
            Ok(t) => t.is_some_and(|t| t.paused),
            Err(e) => {
                tracing::error!(error = %e, job = %job.id, "could not read the tenant to schedule the job; reconcile to repair");
                return;
            }
        };
        let result = match Self::job_schedule(job, tenant_paused) {
            Ok(Some(s)) => scheduler.put(&s).await,
            Ok(None) => scheduler.remove(&job.tenant, &job.id).await,
            Err(problem) => {
                tracing::warn!(job = %job.id, problem, "the job's schedule does not compile; unscheduled");
                scheduler.remove(&job.tenant, &job.id).await
            }
        };
        if let Err(e) = result {
            tracing::error!(error = %e, tenant = %job.tenant, job = %job.id, "could not update the job's schedule; reconcile to repair");
        }
    }

    pub(crate) async fn unschedule_job(&self, tenant: &str, job: &str) {
        let Some(scheduler) = &self.scheduler else { return };
        if let Err(e) = scheduler.remove(tenant, job).await {
            tracing::error!(error = %e, tenant, job, "could not remove the job's schedule; reconcile to repair");
        }
    }

    /// Enables or disables every schedule of a tenant after its pause changed.
    pub(crate) async fn sync_tenant_schedules(&self, tenant: &str) {
        if self.scheduler.is_none() {
            return;
        }
        match lookups::all_jobs(self.store, tenant).await {
            Ok(jobs) => {
                for job in jobs.iter().filter(|j| j.schedule.is_some()) {
                    self.sync_job_schedule(job).await;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, tenant, "could not list the tenant's jobs to reschedule; reconcile to repair")
            }
        }
    }

    async fn all_tenants(&self) -> Result<Vec<Tenant>> {
        let mut all = Vec::new();
        let mut page = PageRequest { limit: Some(records::MAX_PAGE), cursor: None };
        loop {
            let p = records::list::<Tenant>(self.store, Query::partition(Index::Primary, keys::TENANTS), &page).await?;
            all.extend(p.items);
            match p.next_cursor {
                Some(c) => page.cursor = Some(c),
                None => return Ok(all),
            }
        }
    }

    /// Every schedule the store says should exist, and the jobs whose stored
    /// schedule does not compile.
    pub async fn expected_schedules(&self) -> Result<(Vec<JobSchedule>, Vec<String>)> {
        let mut expected = Vec::new();
        let mut invalid = Vec::new();
        for tenant in self.all_tenants().await? {
            for job in lookups::all_jobs(self.store, &tenant.id).await? {
                match Self::job_schedule(&job, tenant.paused) {
                    Ok(Some(s)) => expected.push(s),
                    Ok(None) => {}
                    Err(problem) => invalid.push(format!("{}: {problem}", address(&job.tenant, &job.id))),
                }
            }
        }
        Ok((expected, invalid))
    }

    /// Repairs drift between the store and the scheduler: creates missing
    /// schedules, updates differing ones, removes those of deleted or
    /// unscheduled jobs. With `dry_run`, only reports.
    #[tracing::instrument(skip_all, fields(dry_run))]
    pub async fn reconcile_schedules(&self, dry_run: bool) -> Result<Reconciled> {
        let scheduler =
            self.scheduler.ok_or_else(|| Error::Internal("this hub has no scheduler to reconcile".into()))?;
        let (expected, invalid) = self.expected_schedules().await?;
        let mut installed: BTreeMap<(String, String), Installed> =
            scheduler.list().await?.into_iter().map(|i| ((i.tenant.clone(), i.job.clone()), i)).collect();
        let mut out = Reconciled { invalid, ..Default::default() };
        for s in &expected {
            let want = s.installed();
            let at = address(&s.tenant, &s.job);
            match installed.remove(&(s.tenant.clone(), s.job.clone())) {
                Some(have) if have == want => out.unchanged += 1,
                Some(_) => {
                    if !dry_run {
                        scheduler.put(s).await?;
                    }
                    out.updated.push(at);
                }
                None => {
                    if !dry_run {
                        scheduler.put(s).await?;
                    }
                    out.created.push(at);
                }
            }
        }
        for ((tenant, job), _) in installed {
            if !dry_run {
                scheduler.remove(&tenant, &job).await?;
            }
            out.removed.push(address(&tenant, &job));
        }
        tracing::info!(
            created = out.created.len(),
            updated = out.updated.len(),
            removed = out.removed.len(),
            unchanged = out.unchanged,
            invalid = out.invalid.len(),
            "schedules reconciled"
        );
        Ok(out)
    }
}
