//! Runs of jobs: triggering (with one run per job at a time, enforced by a
//! lease taken with a conditional write), bundling of triggers that arrive
//! during a run, and executing a release's declarative flows.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::Hub;
use ferry_engine::flow::{self, Checkpoint, FlowState, FlowStatus, Halt, Limits, Pulse, Stop};
use ferry_engine::http::HttpClient;
use ferry_engine::source::{cursor_text, Endpoint, Reader, SourceSpec};
use ferry_engine::substream::{Pages, Partitioned};
use ferry_engine::target::{FileSink, HttpTarget, Sink};
use ferry_engine::template::Templates;
use ferry_core::error::{Error, Result};
use ferry_core::manifest::{FlowTrigger, Manifest, Mapping, Source, Target};
use ferry_core::model::job::JobMapping;
use ferry_core::model::{Counters, Job, Run, RunMode, RunOptions, RunStatus, Trigger};
use ferry_core::ports::{Condition, Index, Query, RunRef, SecretFields, StoreError, WriteOp};
use crate::repo::{keys, records, Page, PageRequest};

/// A run request through the API.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// `init` fills dynamic config options; `normal` syncs (default).
    #[serde(default = "normal")]
    pub mode: RunMode,
    #[serde(default, flatten)]
    pub options: RunOptions,
}

fn normal() -> RunMode {
    RunMode::Normal
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Triggered {
    pub run: Run,
    /// True when a run was already going: this trigger will be served by the next run.
    pub bundled: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct RunLogs {
    pub lines: Vec<String>,
}

/// A cancelled run, and the triggers that were waiting behind it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CancelledRun {
    pub run: Run,
    /// Triggers bundled behind the run. They are dropped with it rather than
    /// started: an operator cancels a run because it misbehaves, and the next
    /// scheduled or explicit trigger starts a fresh run.
    pub dropped_triggers: Vec<Trigger>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    mode: RunMode,
    trigger: Trigger,
    options: RunOptions,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Lease {
    run_id: String,
    /// The job (also in the key; here so a scan of leases knows it).
    #[serde(default)]
    job: String,
    expires_at: DateTime<Utc>,
    #[serde(default)]
    pending: Vec<Pending>,
}

/// The latest tick a scheduled trigger was taken for, per job.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LastTick {
    tick: DateTime<Utc>,
}

/// How long a run may hold its job without renewing it before another
/// trigger may take over.
const LEASE: i64 = 15 * 60;
/// A running run renews its lease at the first page boundary after a third
/// of the lease has passed: a run that makes progress never loses its job,
/// one that stopped (a dead or stuck driver) loses it within [`LEASE`].
const RENEW_AFTER: i64 = LEASE / 3;
const ATTEMPTS: usize = 8;
/// Read-modify-writes of a job's lease race every concurrent trigger of the
/// job; each round has a winner, so this bounds the wait without answering a
/// trigger `concurrent_update` under any realistic burst.
const LEASE_ATTEMPTS: usize = 64;
/// How often a process integration's run checks for a cancel, its budget and its lease.
const PROCESS_BEAT: std::time::Duration = std::time::Duration::from_secs(2);
const MAX_LOG_LINES: usize = 2000;
/// Continuations in a row that moved no checkpoint before a run fails as stalled.
const MAX_STALLED_SLICES: u32 = 3;

impl Hub {
    /// Starts a run, or bundles the trigger into the next run when one is going.
    #[tracing::instrument(skip_all, fields(tenant = tenant, job = job_id))]
    pub async fn trigger_run(&self, tenant: &str, job_id: &str, req: RunRequest, source: &str) -> Result<Triggered> {
        self.get_job_record(tenant, job_id).await?;
        let trigger = Trigger { source: source.to_owned(), at: self.clock.now(), tick: None };
        self.start_or_bundle(tenant, job_id, req, trigger)
            .await?
            .ok_or_else(|| Error::Internal("a trigger without a tick was taken for a duplicate".into()))
    }

    /// Starts a run, or bundles the trigger into the next run when one is going.
    /// A trigger with a tick is recorded in the same write as the lease, so a
    /// delivery of a tick at or before the job's last recorded tick (a
    /// duplicate, or a late straggler) starts nothing and returns `None`.
    pub(crate) async fn start_or_bundle(
        &self,
        tenant: &str,
        job_id: &str,
        req: RunRequest,
        trigger: Trigger,
    ) -> Result<Option<Triggered>> {
        let now = trigger.at;
        let lease_key = keys::job_lease(tenant, job_id);
        let tick_key = keys::job_last_tick(tenant, job_id);
        for attempt in 0..LEASE_ATTEMPTS {
            if attempt > 0 {
                lost_race(attempt).await;
            }
            let mut tick_op = None;
            if let Some(tick) = trigger.tick {
                let (last, condition) = match self.store().get(&tick_key).await? {
                    Some(item) => {
                        let v = item.version;
                        (Some(records::from_item::<LastTick>(item)?.value.tick), Condition::VersionIs(v))
                    }
                    None => (None, Condition::NotExists),
                };
                if last.is_some_and(|last| last >= tick) {
                    tracing::info!(%tick, "tick already taken; duplicate delivery ignored");
                    return Ok(None);
                }
                tick_op = Some(records::put(tick_key.clone(), &LastTick { tick }, condition)?);
            }
            let current = self.store().get(&lease_key).await?;
            let (lease, version) = match current {
                Some(item) => {
                    let v = item.version;
                    (Some(records::from_item::<Lease>(item)?.value), Some(v))
                }
                None => (None, None),
            };
            // Triggers bundled into a lease that is taken over below start with this one.
            let mut carried: Vec<Pending> = Vec::new();
            let mut abandoned = None;
            if let (Some(mut lease), Some(version)) = (lease.clone(), version) {
                let holder = self.unfinished_holder(tenant, job_id, &lease.run_id).await?;
                // The holder's record turns final a moment before its driver frees the lease: a
                // trigger in that window starts the next run rather than joining a finished one.
                if lease.expires_at > now && holder.is_some() {
                    lease.pending.push(Pending {
                        mode: req.mode,
                        trigger: trigger.clone(),
                        options: req.options.clone(),
                    });
                    let op = records::put(lease_key.clone(), &lease, Condition::VersionIs(version))?;
                    match self.store().write(std::iter::once(op).chain(tick_op.clone()).collect()).await {
                        Ok(()) => {
                            let run = self.get_run(tenant, job_id, &lease.run_id).await?;
                            return Ok(Some(Triggered { run, bundled: true }));
                        }
                        Err(StoreError::ConditionFailed) => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
                carried = lease.pending;
                // A holder that never ended stopped renewing (its driver died or hangs): its
                // record says so, rather than `running` for ever. A driver that wakes up finds
                // the job taken and stops at its next page.
                if let Some(h) = holder {
                    let mut run = h.value;
                    run.status = RunStatus::FailedPlatform;
                    run.error = Some(halt_error(Halt::LeaseLost, &self.settings));
                    run.ended_at = Some(now);
                    run.progress = None;
                    let key = keys::run(tenant, job_id, &run.id);
                    abandoned = Some(records::put(key, &run, Condition::VersionIs(h.version))?);
                }
            }
            let mode = bundled_mode(&carried, req.mode);
            let triggers = carried.iter().map(|p| p.trigger.clone()).chain([trigger.clone()]).collect();
            let run = self.new_run(tenant, job_id, mode, triggers, req.options.clone());
            let condition = match version {
                Some(v) => Condition::VersionIs(v),
                None => Condition::NotExists,
            };
            let lease = Lease {
                run_id: run.id.clone(),
                job: job_id.to_owned(),
                expires_at: now + Duration::seconds(LEASE),
                pending: Vec::new(),
            };
            let mut ops = vec![
                records::put(lease_key.clone(), &lease, condition)?,
                records::put(keys::run(tenant, job_id, &run.id), &run, Condition::NotExists)?,
            ];
            ops.extend(tick_op);
            ops.extend(abandoned);
            match self.store().write(ops).await {
                Ok(()) => {
                    self.start(&run).await?;
                    return Ok(Some(Triggered { run, bundled: false }));
                }
                Err(StoreError::ConditionFailed) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::conflict("concurrent_update", "the job's run lease kept changing; retry"))
    }

    /// The run holding a job's lease, unless it has ended (or is gone), so its
    /// driver is only about to free the lease. A driver that finds its lease
    /// taken over leaves it to the new holder ([`Hub::finish_lease`]).
    async fn unfinished_holder(&self, tenant: &str, job: &str, run: &str) -> Result<Option<records::Versioned<Run>>> {
        Ok(records::get::<Run>(self.store(), &keys::run(tenant, job, run))
            .await?
            .filter(|r| !r.value.status.is_finished()))
    }

    fn new_run(&self, tenant: &str, job: &str, mode: RunMode, triggers: Vec<Trigger>, options: RunOptions) -> Run {
        Run {
            id: self.ids.next_id(),
            tenant: tenant.to_owned(),
            job: job.to_owned(),
            mode,
            triggers,
            options,
            release: None,
            status: RunStatus::Queued,
            started_at: None,
            ended_at: None,
            counters: BTreeMap::new(),
            error: None,
            created_at: self.clock.now(),
            continuations: 0,
            progress: None,
        }
    }

    pub async fn get_run(&self, tenant: &str, job: &str, id: &str) -> Result<Run> {
        Ok(records::get::<Run>(self.store(), &keys::run(tenant, job, id))
            .await?
            .ok_or_else(|| Error::not_found("run", id))?
            .value)
    }

    /// A job's runs, newest first.
    pub async fn list_runs(&self, tenant: &str, job: &str, page: &PageRequest) -> Result<Page<Run>> {
        self.get_job_record(tenant, job).await?;
        let q = Query::partition(Index::Primary, keys::runs_partition(tenant, job)).prefix("RUN#").descending();
        records::list(self.store(), q, page).await
    }

    pub async fn run_logs(&self, tenant: &str, job: &str, id: &str) -> Result<RunLogs> {
        self.get_run(tenant, job, id).await?;
        Ok(records::get::<RunLogs>(self.store(), &keys::run_logs(tenant, job, id))
            .await?
            .map(|v| v.value)
            .unwrap_or_default())
    }

    /// Hands a queued run to the dispatcher, or executes it in this process.
    async fn start(&self, run: &Run) -> Result<()> {
        match &self.dispatcher {
            Some(d) => {
                let r = RunRef { tenant: run.tenant.clone(), job: run.job.clone(), run: run.id.clone() };
                // On failure the lease expires by itself and the next trigger takes over.
                d.dispatch(&r).await.map_err(Error::from)
            }
            None => match self.run_here {
                Some(spawn) => {
                    spawn(self.clone(), run.clone());
                    Ok(())
                }
                None => Err(Error::Internal("this hub has no dispatcher and does not execute runs itself".into())),
            },
        }
    }

    /// Executes a dispatched run (the sync function's entry point). A run that
    /// is no longer queued was delivered twice and is left alone.
    pub async fn execute_dispatched(&self, r: &RunRef) -> Result<()> {
        self.execute_dispatched_until(r, None).await
    }

    /// Like [`Hub::execute_dispatched`], for an invocation that must return by
    /// `deadline` (a Lambda's): the run stops at a checkpoint in time and a
    /// continuation is dispatched to resume it.
    pub async fn execute_dispatched_until(&self, r: &RunRef, deadline: Option<std::time::Instant>) -> Result<()> {
        let key = keys::run(&r.tenant, &r.job, &r.run);
        let found = records::get::<Run>(self.store(), &key).await?.ok_or_else(|| Error::not_found("run", &r.run))?;
        let mut run = found.value;
        if !matches!(run.status, RunStatus::Queued | RunStatus::Interrupted) {
            tracing::info!(run = %run.id, status = ?run.status, "duplicate delivery of a run; ignored");
            return Ok(());
        }
        // Queues deliver at least once, and two deliveries can be handled at
        // the same moment: the claim is a conditional write, so one wins.
        run.status = RunStatus::Running;
        run.started_at.get_or_insert(self.clock.now());
        match self.store().write(vec![records::put(key, &run, Condition::VersionIs(found.version))?]).await {
            Ok(()) => {}
            Err(StoreError::ConditionFailed) => {
                tracing::info!(run = %run.id, "run claimed by a concurrent delivery; ignored");
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
        self.drive_until(run, deadline).await;
        Ok(())
    }

    /// [`Hub::drive`] in a task of its own: how [`Hub::new`]'s hubs start runs.
    pub(crate) fn spawn_run(self, run: Run) {
        tokio::spawn(async move { self.drive(run).await });
    }

    /// Executes a run, then any run bundled behind it, until the lease is free.
    async fn drive(&self, first: Run) {
        self.drive_until(first, None).await
    }

    async fn drive_until(&self, first: Run, deadline: Option<std::time::Instant>) {
        let mut run = first;
        let mut deadline = deadline;
        loop {
            let stop_at = deadline.take().or_else(|| self.settings.run_slice.map(|d| std::time::Instant::now() + d));
            let finished = self.execute(run, stop_at).await;
            if finished.status == RunStatus::Interrupted {
                match self.continue_later(finished).await {
                    Ok(Some(resumed)) => {
                        run = resumed;
                        continue;
                    }
                    Ok(None) => return,
                    Err(e) => {
                        tracing::error!(error = %e, "could not continue an interrupted run; its lease expires by itself");
                        return;
                    }
                }
            }
            if finished.status == RunStatus::Cancelled {
                if let Err(e) = self.release_job_lease(&finished).await {
                    tracing::error!(error = %e, run = %finished.id, "could not release the run lease; it expires by itself");
                }
                return;
            }
            match self.finish_lease(&finished).await {
                Ok(Some(next)) => run = next,
                Ok(None) => return,
                Err(e) => {
                    tracing::error!(error = %e, run = %finished.id, "could not release the run lease; it expires by itself");
                    return;
                }
            }
        }
    }

    /// Keeps the job's lease for an interrupted run and hands the run to the
    /// dispatcher, or returns it to be resumed in this process.
    async fn continue_later(&self, mut run: Run) -> Result<Option<Run>> {
        if !self.renew_lease(&run.tenant, &run.job, &run.id).await? {
            // Another run took the job over after our lease expired (or an
            // operator cancelled this one): this one ends here.
            run.status = RunStatus::FailedPlatform;
            run.error = Some("the run lost its job's lease while interrupted; a later run took over".into());
            run.ended_at = Some(self.clock.now());
            self.save_run(&mut run).await?;
            return Ok(None);
        }
        run.continuations += 1;
        self.save_run(&mut run).await?;
        if run.status == RunStatus::Cancelled {
            self.release_job_lease(&run).await?;
            return Ok(None);
        }
        tracing::info!(run = %run.id, continuation = run.continuations, "run interrupted; continuing");
        match &self.dispatcher {
            Some(d) => {
                let r = RunRef { tenant: run.tenant.clone(), job: run.job.clone(), run: run.id.clone() };
                d.dispatch(&r).await?;
                Ok(None)
            }
            None => Ok(Some(run)),
        }
    }

    /// Extends the job's lease held by `run`; false when the run no longer
    /// holds it (taken over after it expired, or freed by a cancel).
    async fn renew_lease(&self, tenant: &str, job: &str, run: &str) -> Result<bool> {
        let key = keys::job_lease(tenant, job);
        for attempt in 0..LEASE_ATTEMPTS {
            if attempt > 0 {
                lost_race(attempt).await;
            }
            let Some(item) = self.store().get(&key).await? else { return Ok(false) };
            let version = item.version;
            let mut lease = records::from_item::<Lease>(item)?.value;
            if lease.run_id != run {
                return Ok(false);
            }
            lease.expires_at = self.clock.now() + Duration::seconds(LEASE);
            match self.store().write(vec![records::put(key.clone(), &lease, Condition::VersionIs(version))?]).await {
                Ok(()) => return Ok(true),
                Err(StoreError::ConditionFailed) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::conflict("concurrent_update", "the job's run lease kept changing"))
    }

    /// Frees the job's lease if `run` holds it, dropping the triggers bundled
    /// behind it (see [`CancelledRun::dropped_triggers`]); returns them.
    async fn release_job_lease(&self, run: &Run) -> Result<Vec<Trigger>> {
        let key = keys::job_lease(&run.tenant, &run.job);
        for attempt in 0..LEASE_ATTEMPTS {
            if attempt > 0 {
                lost_race(attempt).await;
            }
            let Some(item) = self.store().get(&key).await? else { return Ok(Vec::new()) };
            let version = item.version;
            let lease = records::from_item::<Lease>(item)?.value;
            if lease.run_id != run.id {
                return Ok(Vec::new());
            }
            let op = WriteOp::Delete { key: key.clone(), condition: Condition::VersionIs(version) };
            match self.store().write(vec![op]).await {
                Ok(()) => return Ok(lease.pending.into_iter().map(|p| p.trigger).collect()),
                Err(StoreError::ConditionFailed) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::conflict("concurrent_update", "the job's run lease kept changing"))
    }

    /// Frees the job's lease, or hands it to a run made of the bundled triggers.
    async fn finish_lease(&self, run: &Run) -> Result<Option<Run>> {
        let key = keys::job_lease(&run.tenant, &run.job);
        for attempt in 0..LEASE_ATTEMPTS {
            if attempt > 0 {
                lost_race(attempt).await;
            }
            let Some(item) = self.store().get(&key).await? else { return Ok(None) };
            let version = item.version;
            let lease = records::from_item::<Lease>(item)?.value;
            if lease.run_id != run.id {
                return Ok(None); // Taken over after expiry; the new holder owns it.
            }
            if lease.pending.is_empty() {
                match self
                    .store()
                    .write(vec![WriteOp::Delete { key: key.clone(), condition: Condition::VersionIs(version) }])
                    .await
                {
                    Ok(()) => return Ok(None),
                    Err(StoreError::ConditionFailed) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            let mode = bundled_mode(&lease.pending, lease.pending[0].mode);
            let options = lease.pending.last().map(|p| p.options.clone()).unwrap_or_default();
            let triggers = lease.pending.iter().map(|p| p.trigger.clone()).collect();
            let next = self.new_run(&run.tenant, &run.job, mode, triggers, options);
            let renewed = Lease {
                run_id: next.id.clone(),
                job: run.job.clone(),
                expires_at: self.clock.now() + Duration::seconds(LEASE),
                pending: Vec::new(),
            };
            let ops = vec![
                records::put(key.clone(), &renewed, Condition::VersionIs(version))?,
                records::put(keys::run(&run.tenant, &run.job, &next.id), &next, Condition::NotExists)?,
            ];
            match self.store().write(ops).await {
                Ok(()) => return Ok(Some(next)),
                Err(StoreError::ConditionFailed) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::conflict("concurrent_update", "the job's run lease kept changing"))
    }

    /// After a restart of a single-process host, the runs it was executing are
    /// gone: each is recorded as failed (its checkpoints stay, so the next run
    /// resumes from them) and its lease is released or handed to the triggers
    /// bundled behind it. Only for hosts where no other process runs jobs.
    #[tracing::instrument(skip_all)]
    pub async fn recover_interrupted_runs(&self) -> Result<usize> {
        let mut recovered = 0;
        let mut cursor = None;
        loop {
            let q = Query::partition(Index::Primary, keys::TENANTS);
            let page: Page<ferry_core::model::Tenant> =
                records::list(self.store(), q, &PageRequest { limit: Some(100), cursor }).await?;
            for tenant in &page.items {
                let mut leases = Vec::new();
                let mut lease_cursor = None;
                loop {
                    let q = Query::partition(Index::Primary, keys::tenant_partition(&tenant.id)).prefix("LEASE#JOB#");
                    let page: Page<Lease> =
                        records::list(self.store(), q, &PageRequest { limit: Some(200), cursor: lease_cursor }).await?;
                    leases.extend(page.items);
                    match page.next_cursor {
                        Some(c) => lease_cursor = Some(c),
                        None => break,
                    }
                }
                for lease in leases {
                    let job = if lease.job.is_empty() {
                        match self.job_of_lease(&tenant.id, &lease.run_id).await? {
                            Some(j) => j,
                            None => continue,
                        }
                    } else {
                        lease.job.clone()
                    };
                    let mut run = self.get_run(&tenant.id, &job, &lease.run_id).await?;
                    if run.status == RunStatus::Cancelled {
                        // Cancelled while its driver was gone: nothing of it restarts.
                        recovered += 1;
                        self.release_job_lease(&run).await?;
                        continue;
                    }
                    if run.status == RunStatus::Interrupted {
                        // Stopped cleanly at a checkpoint: resume it rather than fail it
                        // (`execute` fails it at once if its budget is spent).
                        recovered += 1;
                        tracing::info!(tenant = %tenant.id, job = %job, run = %run.id, "resuming an interrupted run");
                        self.clone().spawn_run(run);
                        continue;
                    }
                    if !run.status.is_finished() {
                        // Its counters are those its last page boundary persisted.
                        run.status = RunStatus::FailedPlatform;
                        run.error =
                            Some("the host stopped during the run; the next run resumes from its checkpoints".into());
                        run.ended_at = Some(self.clock.now());
                        self.save_run(&mut run).await?;
                    }
                    recovered += 1;
                    tracing::warn!(tenant = %tenant.id, job = %job, run = %run.id, "recovered a run interrupted by a restart");
                    if let Some(next) = self.finish_lease(&run).await? {
                        self.clone().spawn_run(next);
                    }
                }
            }
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => return Ok(recovered),
            }
        }
    }

    /// Leases name the run, and runs live under their job: find the job by the run.
    async fn job_of_lease(&self, tenant: &str, run: &str) -> Result<Option<String>> {
        let jobs = self.all_jobs(tenant).await?;
        for job in jobs {
            if self.store().get(&keys::run(tenant, &job.id, run)).await?.is_some() {
                return Ok(Some(job.id));
            }
        }
        Ok(None)
    }

    /// Runs the flows; records status, counters and logs whatever happens.
    #[tracing::instrument(name = "run", skip_all, fields(tenant = %run.tenant, job = %run.job, run = %run.id, mode = ?run.mode))]
    async fn execute(&self, mut run: Run, stop_at: Option<std::time::Instant>) -> Run {
        run.status = RunStatus::Running;
        let now = self.clock.now();
        run.started_at.get_or_insert(now);
        let _ = self.save_run(&mut run).await;
        if run.status == RunStatus::Cancelled {
            tracing::info!("run cancelled before it started; not executed");
            return run;
        }
        let watch = Arc::new(Watch::new(self, &run));
        let _registered = Registered::new(self, &run.id, &watch.stop);
        let mut log = if run.continuations == 0 {
            vec![format!("run started ({:?}, triggered by {})", run.mode, trigger_sources(&run))]
        } else {
            let mut earlier = self.run_logs(&run.tenant, &run.job, &run.id).await.map(|l| l.lines).unwrap_or_default();
            earlier.push(format!("continuation {} resumed the run", run.continuations));
            earlier
        };
        // Read before the flows: a token refreshed during the run must stay masked too.
        let known_secrets = self.run_redactor(&run).await;
        let outcome = if watch.out_of_time() {
            // A continuation or a resumed run whose budget ran out meanwhile.
            log.push(halt_error(Halt::OutOfTime, &self.settings));
            run.error = Some(halt_error(Halt::OutOfTime, &self.settings));
            Ok(RunStatus::FailedTimeout)
        } else {
            self.execute_flows(&mut run, &mut log, stop_at, &watch).await
        };
        run.status = match outcome {
            Ok(status) => status,
            Err(e) => {
                let status = match &e {
                    Error::Invalid { code: "refresh_failed", .. } => RunStatus::FailedRefresh,
                    e if e.is_platform_failure() => RunStatus::FailedPlatform,
                    _ => RunStatus::FailedIntegration,
                };
                log.push(format!("run failed: {e}"));
                run.error = Some(e.to_string());
                status
            }
        };
        if run.status == RunStatus::Interrupted {
            log.push("run interrupted at a checkpoint; a continuation resumes it".into());
        } else {
            run.ended_at = Some(self.clock.now());
            run.progress = None;
            log.push(format!("run finished: {:?}", run.status));
        }
        // The one place a run's error (and the events carrying it) and logs are redacted.
        self.redact_run(&mut run, &mut log, &known_secrets).await;
        tracing::info!(status = ?run.status, "run finished");
        // Before the final record: a trigger that sees the record final takes the job's lease
        // over (`unfinished_holder`), and its run must not find this run's deliveries still pending.
        if run.mode == RunMode::Webhook {
            self.after_webhook_run(&run).await;
        }
        if log.len() > MAX_LOG_LINES {
            let dropped = log.len() - MAX_LOG_LINES;
            log.drain(MAX_LOG_LINES / 2..MAX_LOG_LINES / 2 + dropped);
            log.insert(MAX_LOG_LINES / 2, format!("… {dropped} lines omitted …"));
        }
        let logs = RunLogs { lines: log };
        if let Ok(op) = records::put(keys::run_logs(&run.tenant, &run.job, &run.id), &logs, Condition::None) {
            if let Err(e) = self.store().write(vec![op]).await {
                tracing::error!(error = %e, "could not store run logs");
            }
        }
        if let Err(e) = self.save_run(&mut run).await {
            tracing::error!(error = %e, "could not store the finished run");
        }
        self.emit_run_events(&run).await;
        run
    }

    /// Stores the run. A cancel stored meanwhile wins: `run` takes the
    /// cancel's status, error and end (and keeps its own counters), so a driver
    /// cannot undo or reword it.
    async fn save_run(&self, run: &mut Run) -> Result<()> {
        let key = keys::run(&run.tenant, &run.job, &run.id);
        for _ in 0..ATTEMPTS {
            let condition = match self.store().get(&key).await? {
                Some(item) => {
                    let version = item.version;
                    let stored = records::from_item::<Run>(item)?.value;
                    if stored.status == RunStatus::Cancelled {
                        run.status = RunStatus::Cancelled;
                        run.error = stored.error;
                        run.ended_at = stored.ended_at;
                        run.progress = None;
                    }
                    Condition::VersionIs(version)
                }
                None => Condition::NotExists,
            };
            match self.store().write(vec![records::put(key.clone(), &*run, condition)?]).await {
                Ok(()) => return Ok(()),
                Err(StoreError::ConditionFailed) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::conflict("concurrent_update", "the run kept changing while it was being saved"))
    }

    /// Cancels a run that has not ended. A queued or interrupted run ends at
    /// once; a running one stops at its next page boundary, or before its next
    /// write when this process executes it, and a process integration is
    /// killed. The job's lease is freed and the triggers bundled behind the
    /// run are dropped. The cancel is stored first, so a driver that has not
    /// noticed it yet cannot overwrite it ([`Hub::save_run`]).
    #[tracing::instrument(skip_all, fields(tenant = tenant, job = job, run = id))]
    pub async fn cancel_run(&self, tenant: &str, job: &str, id: &str, by: &str) -> Result<CancelledRun> {
        let key = keys::run(tenant, job, id);
        for _ in 0..ATTEMPTS {
            let found = records::get::<Run>(self.store(), &key).await?.ok_or_else(|| Error::not_found("run", id))?;
            let mut run = found.value;
            if run.status.is_finished() {
                return Err(Error::conflict(
                    "run_finished",
                    format!(
                        "run '{id}' already ended ({}); only queued, running or interrupted runs can be cancelled",
                        serde_json::to_value(run.status)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_default()
                    ),
                ));
            }
            run.status = RunStatus::Cancelled;
            run.ended_at = Some(self.clock.now());
            run.error = Some(format!("cancelled by {by}"));
            run.progress = None;
            match self.store().write(vec![records::put(key.clone(), &run, Condition::VersionIs(found.version))?]).await
            {
                Ok(()) => {}
                Err(StoreError::ConditionFailed) => continue,
                Err(e) => return Err(e.into()),
            }
            if let Some(stop) = self.stops.lock().unwrap_or_else(|p| p.into_inner()).get(id) {
                stop.halt(Halt::Cancelled);
            }
            let dropped_triggers = self.release_job_lease(&run).await?;
            tracing::info!(dropped = dropped_triggers.len(), "run cancelled");
            return Ok(CancelledRun { run, dropped_triggers });
        }
        Err(Error::conflict("concurrent_update", "the run kept changing; retry"))
    }

    async fn execute_flows(
        &self,
        run: &mut Run,
        log: &mut Vec<String>,
        stop_at: Option<std::time::Instant>,
        watch: &Arc<Watch>,
    ) -> Result<RunStatus> {
        let job = self.get_job_record(&run.tenant, &run.job).await?.value;
        let integration = self.get_integration(&job.integration).await?;
        let number = super::jobs::resolve_pin(&integration, &job.release)
            .ok_or_else(|| Error::invalid("unknown_release", "the job's release pin resolves to no release"))?;
        run.release = Some(number);
        let release = self.get_release(&job.integration, number).await?;
        log.push(format!("release {number} of {}", job.integration));
        if release.manifest.run.is_some() {
            return self.execute_process(run, &job, &release, log, watch).await;
        }
        let manifest = release.manifest;
        let wanted = |t: &[FlowTrigger]| match run.mode {
            RunMode::Init => t.contains(&FlowTrigger::Init),
            RunMode::Webhook => t.contains(&FlowTrigger::Webhook),
            RunMode::Normal => {
                t.is_empty()
                    || t.iter().any(|x| matches!(x, FlowTrigger::Schedule | FlowTrigger::Manual | FlowTrigger::Api))
            }
        };
        let hook_flow = manifest.webhooks.as_ref().and_then(|w| w.flow.as_deref());
        let flows: Vec<_> = manifest
            .flows
            .iter()
            .filter(|f| wanted(&f.triggers) || (run.mode == RunMode::Webhook && hook_flow == Some(f.name.as_str())))
            .collect();
        if flows.is_empty() {
            log.push(format!("no flow runs in {:?} mode", run.mode));
            return Ok(RunStatus::Succeeded);
        }
        let http = HttpClient::new(self.settings.http.clone(), self.net_policy())
            .map_err(|e| Error::Internal(e.to_string()))?;
        let templates = Templates::new();
        // A continuation carries the earlier slices' outcome and skips finished flows.
        let mut progress = run.progress.take().unwrap_or_default();
        let mut overall = if progress.failed {
            RunStatus::FailedIntegration
        } else if progress.partial {
            RunStatus::Partial
        } else {
            RunStatus::Succeeded
        };
        let mut first_error = run.error.take();
        let finished_before = progress.completed_flows.len();
        for flow in flows {
            if progress.completed_flows.contains(&flow.name) {
                continue;
            }
            let mut refreshed = false;
            let (status, error) = loop {
                let pulse = FlowPulse { watch: watch.clone(), flow: flow.name.clone(), before: run.counters.clone() };
                let limits = Limits {
                    max_records: run.options.max_records,
                    stop_at,
                    stop: watch.stop.clone(),
                    pulse: Some(Arc::new(pulse)),
                };
                let (status, counters, error) =
                    self.execute_flow(run, &job, &manifest, flow, &http, &templates, &limits, log).await?;
                let total = run.counters.entry(flow.name.clone()).or_default();
                total.read += counters.read;
                total.written += counters.written;
                total.skipped += counters.skipped;
                total.failed += counters.failed;
                // A provider may revoke a token before it expires: refresh once
                // and go again from the checkpoint the flow reached.
                let refused = error.as_deref().is_some_and(ferry_engine::http::credentials_refused);
                if status == FlowStatus::Failed && refused && !refreshed && self.refresh_refused(&job, flow).await? {
                    refreshed = true;
                    log.push(format!(
                        "[{}] credentials refused (401): OAuth2 token refreshed, flow retried",
                        flow.name
                    ));
                    continue;
                }
                break (status, error);
            };
            match status {
                FlowStatus::Succeeded => {}
                FlowStatus::Partial => {
                    progress.partial = true;
                    if overall == RunStatus::Succeeded {
                        overall = RunStatus::Partial;
                    }
                }
                FlowStatus::Failed => {
                    progress.failed = true;
                    overall = RunStatus::FailedIntegration;
                    first_error = first_error.or(error);
                }
                FlowStatus::Interrupted => {
                    run.error = first_error;
                    // Progress is a moved checkpoint or a finished flow; a
                    // slice that managed neither would loop forever.
                    let now = self.get_job_record(&run.tenant, &run.job).await?.value.state;
                    let moved = now != job.state || progress.completed_flows.len() > finished_before;
                    progress.stalled_slices = if moved { 0 } else { progress.stalled_slices + 1 };
                    if progress.stalled_slices >= MAX_STALLED_SLICES {
                        log.push(format!(
                            "[{}] stalled: {} continuations in a row moved no checkpoint",
                            flow.name, progress.stalled_slices
                        ));
                        run.error.get_or_insert_with(|| {
                            format!(
                                "stalled: flow `{}` made no progress across {} continuations (a page or a non-incremental flow does not fit in one invocation)",
                                flow.name, progress.stalled_slices
                            )
                        });
                        return Ok(RunStatus::FailedTimeout);
                    }
                    run.progress = Some(progress);
                    return Ok(RunStatus::Interrupted);
                }
                FlowStatus::Halted(why) => {
                    run.error = Some(halt_error(why, &self.settings));
                    return Ok(halt_status(why));
                }
            }
            progress.completed_flows.push(flow.name.clone());
        }
        run.error = first_error;
        Ok(overall)
    }

    #[allow(clippy::too_many_arguments)]
    async fn execute_flow(
        &self,
        run: &Run,
        job: &Job,
        manifest: &Manifest,
        flow: &ferry_core::manifest::Flow,
        http: &HttpClient,
        templates: &Templates,
        limits: &Limits,
        log: &mut Vec<String>,
    ) -> Result<(FlowStatus, Counters, Option<String>)> {
        let Source::Http { connector, request, records, filter, pagination, incremental, partition, take } =
            &flow.source
        else {
            return self.execute_webhook_flow(run, job, manifest, flow, http, templates, limits, log).await;
        };
        // A substream reads its parent flow's source for the partitions.
        let parent = match partition {
            Some(p) => match manifest.flows.iter().find(|f| f.name == p.flow).map(|f| &f.source) {
                // Parents are read in full: a partition must not vanish because
                // its parent record did not change since the last run.
                Some(Source::Http { connector, request, records, filter, pagination, take, .. }) => {
                    let spec = SourceSpec {
                        request,
                        records: records.as_deref(),
                        filter: filter.as_deref(),
                        pagination: pagination.as_ref(),
                        incremental: None,
                        take: *take,
                    };
                    Some((p, spec, connector, self.bind(job, manifest, connector).await?))
                }
                _ => {
                    return Err(Error::invalid(
                        "bad_partition",
                        format!("flow `{}` partitions by `{}`, which has no HTTP source", flow.name, p.flow),
                    ))
                }
            },
            None => None,
        };
        let source_conn = self.bind(job, manifest, connector).await?;
        let mut state: FlowState = match job.state.get(&flow.name) {
            Some(v) if !run.options.reset_cursor => serde_json::from_value(v.clone()).unwrap_or_default(),
            _ => FlowState::default(),
        };
        let since = if run.options.full {
            None
        } else {
            state
                .cursor
                .as_ref()
                .map(|c| back_off(&cursor_text(c), incremental.as_ref().and_then(|i| i.lookback.as_deref())))
        }
        .or_else(|| incremental.as_ref().and_then(|i| i.start.clone()));
        let ctx = minijinja::context! {
            config => minijinja::Value::from_serialize(&job.configs),
            state => minijinja::Value::from_serialize(&state),
            connection => minijinja::Value::from_serialize(&source_conn.settings),
            now => self.clock.now().to_rfc3339(),
            run => minijinja::Value::from_serialize(serde_json::json!({"id": run.id, "mode": run.mode})),
        };
        let mapping = self.flow_mapping(job, flow).await?;
        let mut target_conn = None;
        let mut sink = self.open_sink(run, job, manifest, flow, &ctx, templates, &mut target_conn, log).await?;
        let spec = SourceSpec {
            request,
            records: records.as_deref(),
            filter: filter.as_deref(),
            pagination: pagination.as_ref(),
            incremental: incremental.as_ref(),
            take: *take,
        };
        let mut reader = match &parent {
            None => Pages::Single(Reader::new(spec, source_conn.endpoint(job, connector), http, templates, since)),
            Some((p, parent_spec, pc, bound)) => {
                let full = run.options.full;
                let lookback = incremental.as_ref().and_then(|i| i.lookback.as_deref());
                let first = incremental.as_ref().and_then(|i| i.start.clone());
                let since_of = move |saved: Option<&Value>| {
                    if full { None } else { saved.map(|c| back_off(&cursor_text(c), lookback)) }
                        .or_else(|| first.clone())
                };
                Pages::Partitioned(Box::new(Partitioned::new(
                    Reader::new(*parent_spec, bound.endpoint(job, pc), http, templates, None),
                    &p.field,
                    spec,
                    source_conn.endpoint(job, connector),
                    http,
                    templates,
                    state.partitions.clone(),
                    Box::new(since_of),
                )))
            }
        };
        let start = std::mem::take(&mut state);
        let mut checkpoint = JobState {
            hub: self,
            tenant: &job.tenant,
            job: &job.id,
            flow: &flow.name,
            skip: run.options.full && incremental.is_none(),
        };
        let out =
            flow::run(&mut reader, mapping.as_ref(), &mut sink, &ctx, http, templates, start, limits, &mut checkpoint)
                .await?;
        log.extend(out.log.iter().map(|l| format!("[{}] {l}", flow.name)));
        if let (Sink::Options { collected, .. }, Target::Options { definition, .. }, FlowStatus::Succeeded) =
            (&sink, &flow.target, out.status)
        {
            self.set_dynamic_options(&job.tenant, &job.id, definition, collected.clone()).await?;
            log.push(format!("[{}] {} options stored for `{definition}`", flow.name, collected.len()));
        }
        Ok((out.status, out.counters, out.error))
    }

    /// The flow's mapping: the job's override (a mapping configuration or
    /// inline), else the manifest's.
    pub(crate) async fn flow_mapping(&self, job: &Job, flow: &ferry_core::manifest::Flow) -> Result<Option<Mapping>> {
        Ok(match job.mappings.get(&flow.name) {
            Some(JobMapping::Configured(r)) => Some(self.get_mapping(&job.tenant, &r.mapping).await?.to_mapping()),
            Some(JobMapping::Inline(m)) => Some(m.clone()),
            None => flow.mapping.clone(),
        })
    }

    /// Opens the flow's target. An HTTP sink borrows its connection, so the
    /// caller provides `slot` to keep it for as long as the sink.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn open_sink<'a>(
        &self,
        run: &Run,
        job: &Job,
        manifest: &Manifest,
        flow: &'a ferry_core::manifest::Flow,
        ctx: &minijinja::Value,
        templates: &Templates,
        slot: &'a mut Option<Bound>,
        log: &mut Vec<String>,
    ) -> Result<Sink<'a>> {
        Ok(match &flow.target {
            Target::Http { connector, method, path, headers, batch_size, body, idempotency_key } => {
                let bound: &'a Bound = slot.insert(self.bind(job, manifest, connector).await?);
                Sink::Http(HttpTarget {
                    endpoint: bound.endpoint(job, connector),
                    method: *method,
                    path,
                    headers,
                    batch_size: run.options.batch_size.unwrap_or(*batch_size),
                    body: body.as_ref(),
                    idempotency_key: idempotency_key.as_deref(),
                })
            }
            Target::Options { value, title, .. } => {
                Sink::Options { value, title: title.as_deref(), collected: Vec::new() }
            }
            Target::File { format, path, columns } => {
                let files = self
                    .files
                    .as_ref()
                    .ok_or_else(|| Error::Internal("this host has no file store for file targets".into()))?;
                let rendered = templates.render(path, ctx)?;
                let writer = files
                    .create(&job.tenant, &rendered)
                    .await
                    .map_err(|e| Error::invalid("invalid_file_path", e.to_string()))?;
                log.push(format!("[{}] writing {rendered}", flow.name));
                Sink::File(FileSink::new(*format, columns.clone(), writer, rendered))
            }
        })
    }

    /// Refreshes the OAuth2 tokens of the connections a flow uses, treating
    /// their current access tokens as rejected; false when none is OAuth2.
    async fn refresh_refused(&self, job: &Job, flow: &ferry_core::manifest::Flow) -> Result<bool> {
        let mut connectors = Vec::new();
        if let Source::Http { connector, .. } = &flow.source {
            connectors.push(connector.as_str());
        }
        if let Target::Http { connector, .. } = &flow.target {
            connectors.push(connector.as_str());
        }
        let mut refreshed = false;
        for connector in connectors {
            let Some(id) = job.connections.get(connector) else { continue };
            let conn = self.get_connection(&job.tenant, id).await?;
            if conn.auth_kind != ferry_core::model::AuthKind::Oauth2 {
                continue;
            }
            let current = self.connection_credentials(&conn).await?.unwrap_or_default();
            let rejected = current.0.get("access_token").map(|t| secrecy::ExposeSecret::expose_secret(t).to_owned());
            self.fresh_credentials(&conn, rejected.as_deref()).await?;
            refreshed = true;
        }
        Ok(refreshed)
    }

    /// The connection bound to a manifest connector, with its credentials.
    pub(crate) async fn bind(&self, job: &Job, manifest: &Manifest, connector: &str) -> Result<Bound> {
        let def = manifest.connectors.definition(connector).cloned();
        let (settings, approved, auth, secrets) = match job.connections.get(connector) {
            Some(id) => {
                let conn = self.get_connection(&job.tenant, id).await?;
                // OAuth2 tokens expiring soon are refreshed first (single-flight across processes).
                let secrets = self.fresh_credentials(&conn, None).await?;
                let auth = def.as_ref().and_then(|d| d.auth).unwrap_or(conn.auth_kind);
                (conn.settings, conn.base_url_approved, auth, secrets)
            }
            None => (
                Default::default(),
                None,
                def.as_ref().and_then(|d| d.auth).unwrap_or(ferry_core::model::AuthKind::None),
                SecretFields::new(),
            ),
        };
        let base_url = super::origins::base_url(manifest, connector, &settings, approved.as_deref())?;
        Ok(Bound { base_url, auth, def, settings, secrets })
    }
}

pub(crate) struct Bound {
    base_url: String,
    auth: ferry_core::model::AuthKind,
    def: Option<ferry_core::manifest::ConnectorDef>,
    pub(crate) settings: serde_json::Map<String, Value>,
    secrets: SecretFields,
}

impl Bound {
    pub(crate) fn endpoint<'a>(&'a self, job: &Job, connector: &str) -> Endpoint<'a> {
        Endpoint {
            base_url: &self.base_url,
            auth: self.auth,
            api_key: self.def.as_ref().and_then(|d| d.api_key.as_ref()),
            default_headers: self
                .def
                .as_ref()
                .map(|d| d.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
            secrets: &self.secrets,
            budget: Some((format!("{}/{connector}", job.tenant), budget(self.def.as_ref(), connector))),
            max_response_bytes: self.def.as_ref().and_then(|d| d.max_response_bytes).map(|n| n as usize),
        }
    }
}

/// The connector's request budget: the manifest's `rate_limit`, else the
/// provider catalogue's hint, else 20 requests per second.
fn budget(def: Option<&ferry_core::manifest::ConnectorDef>, connector: &str) -> ferry_engine::http::Rate {
    use ferry_engine::http::Rate;
    if let Some(r) = def.and_then(|d| d.rate_limit) {
        return Rate { per_second: r.per_second, burst: r.burst.unwrap_or(r.per_second.max(1.0)) };
    }
    let provider = def.and_then(|d| d.provider.as_deref()).unwrap_or(connector);
    let hint = ferry_core::providers::get(provider).and_then(|p| p.rate_limit.clone());
    let per_second = hint.as_ref().and_then(|h| {
        h.get("per_second")
            .and_then(Value::as_f64)
            .or_else(|| h.get("per_minute").and_then(Value::as_f64).map(|m| m / 60.0))
    });
    match per_second {
        Some(p) if p.is_finite() && p > 0.0 => Rate { per_second: p, burst: p.max(1.0) },
        _ => Rate { per_second: 20.0, burst: 20.0 },
    }
}

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
    fn new(hub: &Hub, run: &Run) -> Self {
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

    fn out_of_time(&self) -> bool {
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
        let key = keys::run(&self.tenant, &self.job, &self.run);
        for _ in 0..ATTEMPTS {
            let found =
                records::get::<Run>(self.hub.store(), &key).await?.ok_or_else(|| Error::not_found("run", &self.run))?;
            let mut run = found.value;
            let Some(counters) = counters.clone().filter(|_| run.status == RunStatus::Running) else {
                return Ok(run.status);
            };
            run.counters = counters;
            match self
                .hub
                .store()
                .write(vec![records::put(key.clone(), &run, Condition::VersionIs(found.version))?])
                .await
            {
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
    pub(crate) async fn until_halted(&self) -> Halt {
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
struct FlowPulse {
    watch: Arc<Watch>,
    flow: String,
    before: BTreeMap<String, Counters>,
}

#[async_trait::async_trait]
impl Pulse for FlowPulse {
    async fn beat(&self, so_far: &Counters) -> Result<Option<Halt>> {
        let mut counters = self.before.clone();
        let total = counters.entry(self.flow.clone()).or_default();
        total.read += so_far.read;
        total.written += so_far.written;
        total.skipped += so_far.skipped;
        total.failed += so_far.failed;
        self.watch.check(Some(counters)).await
    }
}

/// Keeps a run's stop signal where this process's API finds it, for as long
/// as the run executes here (dropped with the driver, even an aborted one).
struct Registered {
    stops: Arc<std::sync::Mutex<std::collections::HashMap<String, Stop>>>,
    run: String,
}

impl Registered {
    fn new(hub: &Hub, run: &str, stop: &Stop) -> Self {
        hub.stops.lock().unwrap_or_else(|p| p.into_inner()).insert(run.to_owned(), stop.clone());
        Self { stops: hub.stops.clone(), run: run.to_owned() }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.stops.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.run);
    }
}

/// The status a run ends with when it halts.
pub(crate) fn halt_status(why: Halt) -> RunStatus {
    match why {
        Halt::Cancelled => RunStatus::Cancelled,
        Halt::OutOfTime => RunStatus::FailedTimeout,
        Halt::LeaseLost => RunStatus::FailedPlatform,
    }
}

/// The error recorded for a run that halted.
pub(crate) fn halt_error(why: Halt, settings: &super::Settings) -> String {
    match why {
        Halt::Cancelled => "the run was cancelled".into(),
        Halt::OutOfTime => format!(
            "the run took longer than its budget of {}s (FERRY_RUN_BUDGET_SECS) and was stopped",
            settings.run_budget.as_secs()
        ),
        Halt::LeaseLost => {
            "the run stopped renewing its hold on the job in time and another run took the job over".into()
        }
    }
}

/// Waits a little after losing a conditional-write race, longer the more
/// often it was lost, with jitter so the losers do not collide again.
async fn lost_race(attempt: usize) {
    use rand::Rng;
    let most = 2 * attempt.min(25) as u64;
    let ms = rand::thread_rng().gen_range(1..=most.max(1));
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
}

/// Saves a flow's state into the job after each page.
pub(crate) struct JobState<'a> {
    pub(crate) hub: &'a Hub,
    pub(crate) tenant: &'a str,
    pub(crate) job: &'a str,
    pub(crate) flow: &'a str,
    pub(crate) skip: bool,
}

#[async_trait::async_trait]
impl Checkpoint for JobState<'_> {
    async fn save(&mut self, state: &FlowState) -> Result<()> {
        if self.skip {
            return Ok(());
        }
        let value = serde_json::to_value(state).map_err(|e| Error::Internal(e.to_string()))?;
        for _ in 0..ATTEMPTS {
            let current = self.hub.get_job_record(self.tenant, self.job).await?;
            let mut job = current.value;
            if !job.state.is_object() {
                job.state = Value::Object(Default::default());
            }
            if let Value::Object(m) = &mut job.state {
                m.insert(self.flow.to_owned(), value.clone());
            }
            let op = records::put(keys::job(self.tenant, self.job), &job, Condition::VersionIs(current.version))?;
            match self.hub.store().write(vec![op]).await {
                Ok(()) => return Ok(()),
                Err(StoreError::ConditionFailed) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::conflict("concurrent_update", "the job kept changing while saving its state"))
    }
}

/// Moves an RFC 3339 cursor back by the lookback window (other cursors as they are).
fn back_off(cursor: &str, lookback: Option<&str>) -> String {
    let Some(secs) = lookback.and_then(ferry_core::manifest::checks::parse_duration) else { return cursor.to_owned() };
    match DateTime::parse_from_rfc3339(cursor) {
        Ok(t) => {
            (t.with_timezone(&Utc) - Duration::seconds(secs as i64)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        }
        Err(_) => cursor.to_owned(),
    }
}

/// The mode of a run made of bundled triggers: an init run if any asked for
/// one (it refreshes what the others depend on), else `otherwise`.
fn bundled_mode(pending: &[Pending], otherwise: RunMode) -> RunMode {
    if pending.iter().any(|p| p.mode == RunMode::Init) {
        RunMode::Init
    } else {
        otherwise
    }
}

fn trigger_sources(run: &Run) -> String {
    let mut s: Vec<&str> = run.triggers.iter().map(|t| t.source.as_str()).collect();
    s.dedup();
    s.join(", ")
}
