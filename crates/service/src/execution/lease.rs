//! One run per job at a time: the job's lease, taken with a conditional
//! write, names the run holding the job and keeps the triggers bundled behind
//! it. A trigger finding the job held joins the lease; the holder hands the
//! lease to the run made of those triggers when it ends ([`super::bundle`]
//! decides which), or frees it. A lease whose holder stopped renewing it is
//! taken over by the next trigger.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::bundle::{self, NextRun, Pending};
use super::halt::halt_error;
use crate::repo::{keys, lookups, records, run_index, Page, PageRequest};
use crate::Hub;
use ferry_core::error::{Error, Result};
use ferry_core::model::{Run, RunMode, RunOptions, RunStatus, Trigger};
use ferry_core::ports::{Condition, Index, Query, StoreError, WriteOp};
use ferry_engine::flow::Halt;

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

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Lease {
    pub(super) run_id: String,
    /// The job (also in the key; here so a scan of leases knows it).
    #[serde(default)]
    pub(super) job: String,
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
pub(super) const RENEW_AFTER: i64 = LEASE / 3;
/// Read-modify-writes of a job's lease race every concurrent trigger of the
/// job; each round has a winner, so this bounds the wait without answering a
/// trigger `concurrent_update` under any realistic burst.
const LEASE_ATTEMPTS: usize = 64;

/// The tick half of a trigger's write.
enum Tick {
    /// The tick was taken before: the delivery is a duplicate or a straggler.
    Taken,
    /// Records the tick in the lease's write (nothing for a trigger without one).
    Record(Option<Box<WriteOp>>),
}

impl Hub {
    /// Starts a run for a trigger arriving now, or bundles it into the next
    /// run when one is going.
    #[tracing::instrument(name = "trigger_run", skip_all, fields(tenant = tenant, job = job))]
    pub(crate) async fn trigger_now(
        &self,
        tenant: &str,
        job: &str,
        req: RunRequest,
        source: &str,
    ) -> Result<Triggered> {
        lookups::job(self.store(), tenant, job).await?;
        let trigger = Trigger { source: source.to_owned(), at: self.clock.now(), tick: None, by: None };
        self.start_or_bundle(tenant, job, req, trigger)
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
        job: &str,
        req: RunRequest,
        trigger: Trigger,
    ) -> Result<Option<Triggered>> {
        let pending = Pending { mode: req.mode, trigger, options: req.options, rerun: None, replay: None };
        self.start_or_bundle_pending(tenant, job, pending).await
    }

    /// [`Hub::start_or_bundle`] of a trigger as it waits in the lease.
    pub(super) async fn start_or_bundle_pending(
        &self,
        tenant: &str,
        job: &str,
        pending: Pending,
    ) -> Result<Option<Triggered>> {
        for attempt in 0..LEASE_ATTEMPTS {
            if attempt > 0 {
                lost_race(attempt).await;
            }
            let tick = match self.tick_op(tenant, job, &pending.trigger).await? {
                Tick::Taken => return Ok(None),
                Tick::Record(op) => op.map(|op| *op),
            };
            if let Some(triggered) = self.try_start_or_bundle(tenant, job, &pending, tick).await? {
                return Ok(Some(triggered));
            }
        }
        Err(Error::conflict("concurrent_update", "the job's run lease kept changing; retry"))
    }

    async fn tick_op(&self, tenant: &str, job: &str, trigger: &Trigger) -> Result<Tick> {
        let Some(tick) = trigger.tick else { return Ok(Tick::Record(None)) };
        let key = keys::job_last_tick(tenant, job);
        let (last, condition) = match self.store().get(&key).await? {
            Some(item) => {
                let v = item.version;
                (Some(records::from_item::<LastTick>(item)?.value.tick), Condition::VersionIs(v))
            }
            None => (None, Condition::NotExists),
        };
        if last.is_some_and(|last| last >= tick) {
            tracing::info!(%tick, "tick already taken; duplicate delivery ignored");
            return Ok(Tick::Taken);
        }
        Ok(Tick::Record(Some(Box::new(records::put(key, &LastTick { tick }, condition)?))))
    }

    /// One round of [`Hub::start_or_bundle`]; `None` when it lost a race.
    async fn try_start_or_bundle(
        &self,
        tenant: &str,
        job: &str,
        pending: &Pending,
        tick: Option<WriteOp>,
    ) -> Result<Option<Triggered>> {
        let mut ops: Vec<WriteOp> = tick.into_iter().collect();
        let Some((lease, version)) = self.lease(tenant, job).await? else {
            return self.start_with(tenant, job, vec![pending.clone()], None, ops).await;
        };
        let holder = self.unfinished_holder(tenant, job, &lease.run_id).await?;
        // The holder's record turns final a moment before its driver frees the lease: a
        // trigger in that window starts the next run rather than joining a finished one.
        if lease.expires_at > pending.trigger.at && holder.is_some() {
            return self.bundle(tenant, job, (lease, version), pending, ops).await;
        }
        // A holder that never ended stopped renewing (its driver died or hangs): its
        // record says so, rather than `running` for ever. A driver that wakes up finds
        // the job taken and stops at its next page.
        let mut abandoned = None;
        if let Some(h) = holder {
            let before = h.value.status;
            let (run, op) = self.abandon(h, pending.trigger.at)?;
            // Recorded for the metrics with the write that ends the run.
            abandoned = crate::metrics::ending(self.store(), Some(before), &run).await?;
            ops.push(op);
            ops.extend(abandoned.as_ref().map(crate::metrics::Ending::op));
        }
        // Triggers bundled into a lease that is taken over come first.
        let mut carried = lease.pending;
        carried.push(pending.clone());
        let started = self.start_with(tenant, job, carried, Some(version), ops).await?;
        if started.is_some() {
            crate::metrics::fold_ended(self.store(), abandoned).await;
        }
        Ok(started)
    }

    /// Adds the trigger to those waiting behind the lease's holder; answers
    /// with the holder.
    async fn bundle(
        &self,
        tenant: &str,
        job: &str,
        (mut lease, version): (Lease, u64),
        pending: &Pending,
        mut ops: Vec<WriteOp>,
    ) -> Result<Option<Triggered>> {
        lease.pending.push(pending.clone());
        ops.push(records::put(keys::job_lease(tenant, job), &lease, Condition::VersionIs(version))?);
        if !self.written(ops).await? {
            return Ok(None);
        }
        let run = lookups::run(self.store(), tenant, job, &lease.run_id).await?.value;
        Ok(Some(Triggered { run, bundled: true }))
    }

    /// Takes the job's lease (`version`: the lease found, if any) for a new
    /// run made of `pending` and starts that run; `None` when it lost a race.
    /// Triggers of another mode than the run's keep waiting in the new lease.
    async fn start_with(
        &self,
        tenant: &str,
        job: &str,
        pending: Vec<Pending>,
        version: Option<u64>,
        mut ops: Vec<WriteOp>,
    ) -> Result<Option<Triggered>> {
        let this = pending.last().map(|p| (p.mode, p.rerun.as_ref().map(|r| r.of.clone()), p.replay.is_some()));
        let Some((run, lease)) = self.next_holder(tenant, job, pending) else {
            return Err(Error::Internal("a run was to start without a trigger".into()));
        };
        let condition = version.map_or(Condition::NotExists, Condition::VersionIs);
        ops.push(records::put(keys::job_lease(tenant, job), &lease, condition)?);
        ops.push(run_index::put(&run, Condition::NotExists)?);
        if !self.written(ops).await? {
            return Ok(None);
        }
        self.start(&run).await?;
        // A trigger of another mode than the started run's (older triggers of the
        // lease taken over came first), or a rerun it does not serve, waits
        // behind it, as if bundled.
        let bundled = this != Some((run.mode, run.rerun_of.clone(), run.replay.is_some()));
        Ok(Some(Triggered { run, bundled }))
    }

    /// The run made of bundled triggers, and the lease it holds the job by
    /// (with the triggers still waiting behind it).
    fn next_holder(&self, tenant: &str, job: &str, pending: Vec<Pending>) -> Option<(Run, Lease)> {
        let NextRun { mode, triggers, options, rerun, replay, waiting } = bundle::next_run(pending)?;
        let mut run = self.new_run(tenant, job, mode, triggers, options);
        run.replay = replay;
        if let Some(rerun) = rerun {
            run.rerun_of = Some(rerun.of);
            run.rerun_config = Some(rerun.config);
        }
        let lease = Lease {
            run_id: run.id.clone(),
            job: job.to_owned(),
            expires_at: self.clock.now() + Duration::seconds(LEASE),
            pending: waiting,
        };
        Some((run, lease))
    }

    /// The write marking a holder that stopped renewing its lease as failed, and the run it writes.
    fn abandon(&self, holder: records::Versioned<Run>, now: DateTime<Utc>) -> Result<(Run, WriteOp)> {
        let mut run = holder.value;
        run.status = RunStatus::FailedPlatform;
        run.error = Some(halt_error(Halt::LeaseLost, &self.settings));
        run.ended_at = Some(now);
        run.progress = None;
        let op = run_index::put(&run, Condition::VersionIs(holder.version))?;
        Ok((run, op))
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
            rerun_of: None,
            rerun_config: None,
            replay: None,
        }
    }

    /// The job's lease and its version, if the job is held.
    async fn lease(&self, tenant: &str, job: &str) -> Result<Option<(Lease, u64)>> {
        match self.store().get(&keys::job_lease(tenant, job)).await? {
            Some(item) => {
                let version = item.version;
                Ok(Some((records::from_item::<Lease>(item)?.value, version)))
            }
            None => Ok(None),
        }
    }

    /// Writes `ops` at once; false when a condition failed (a lost race).
    async fn written(&self, ops: Vec<WriteOp>) -> Result<bool> {
        match self.store().write(ops).await {
            Ok(()) => Ok(true),
            Err(StoreError::ConditionFailed) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Extends the job's lease held by `run`; false when the run no longer
    /// holds it (taken over after it expired, or freed by a cancel).
    pub(super) async fn renew_lease(&self, tenant: &str, job: &str, run: &str) -> Result<bool> {
        for attempt in 0..LEASE_ATTEMPTS {
            if attempt > 0 {
                lost_race(attempt).await;
            }
            let Some((mut lease, version)) = self.lease(tenant, job).await? else { return Ok(false) };
            if lease.run_id != run {
                return Ok(false);
            }
            lease.expires_at = self.clock.now() + Duration::seconds(LEASE);
            let op = records::put(keys::job_lease(tenant, job), &lease, Condition::VersionIs(version))?;
            if self.written(vec![op]).await? {
                return Ok(true);
            }
        }
        Err(lease_kept_changing())
    }

    /// Frees the job's lease if `run` holds it, dropping the triggers bundled
    /// behind it (an operator cancels a run because it misbehaves; the next
    /// trigger starts a fresh run); returns them.
    pub(crate) async fn release_job_lease(&self, run: &Run) -> Result<Vec<Trigger>> {
        for attempt in 0..LEASE_ATTEMPTS {
            if attempt > 0 {
                lost_race(attempt).await;
            }
            let Some((lease, version)) = self.lease(&run.tenant, &run.job).await? else { return Ok(Vec::new()) };
            if lease.run_id != run.id {
                return Ok(Vec::new());
            }
            if self.written(vec![free(&run.tenant, &run.job, version)]).await? {
                return Ok(lease.pending.into_iter().map(|p| p.trigger).collect());
            }
        }
        Err(lease_kept_changing())
    }

    /// Frees the job's lease held by the ended `run`, or hands it to the next
    /// run made of the triggers bundled behind it (queued, returned to be
    /// started). Nothing when the lease was taken over: the new holder owns it.
    pub(super) async fn finish_lease(&self, run: &Run) -> Result<Option<Run>> {
        for attempt in 0..LEASE_ATTEMPTS {
            if attempt > 0 {
                lost_race(attempt).await;
            }
            let Some((lease, version)) = self.lease(&run.tenant, &run.job).await? else { return Ok(None) };
            if lease.run_id != run.id {
                return Ok(None);
            }
            let Some((next, renewed)) = self.next_holder(&run.tenant, &run.job, lease.pending) else {
                if self.written(vec![free(&run.tenant, &run.job, version)]).await? {
                    return Ok(None);
                }
                continue;
            };
            let ops = vec![
                records::put(keys::job_lease(&run.tenant, &run.job), &renewed, Condition::VersionIs(version))?,
                run_index::put(&next, Condition::NotExists)?,
            ];
            if self.written(ops).await? {
                return Ok(Some(next));
            }
        }
        Err(lease_kept_changing())
    }

    /// The leases of a tenant's jobs (a restarted host's runs in flight).
    pub(super) async fn tenant_leases(&self, tenant: &str) -> Result<Vec<Lease>> {
        let mut leases = Vec::new();
        let mut cursor = None;
        loop {
            let q = Query::partition(Index::Primary, keys::tenant_partition(tenant)).prefix("LEASE#JOB#");
            let page: Page<Lease> = records::list(self.store(), q, &PageRequest { limit: Some(200), cursor }).await?;
            leases.extend(page.items);
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => return Ok(leases),
            }
        }
    }
}

/// The write freeing a job's lease found at `version`.
fn free(tenant: &str, job: &str, version: u64) -> WriteOp {
    WriteOp::Delete { key: keys::job_lease(tenant, job), condition: Condition::VersionIs(version) }
}

fn lease_kept_changing() -> Error {
    Error::conflict("concurrent_update", "the job's run lease kept changing")
}

/// Waits a little after losing a conditional-write race, longer the more
/// often it was lost, with jitter so the losers do not collide again.
async fn lost_race(attempt: usize) {
    use rand::Rng;
    let most = 2 * attempt.min(25) as u64;
    let ms = rand::thread_rng().gen_range(1..=most.max(1));
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
}
