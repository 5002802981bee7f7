//! A run from queued to ended: started (handed to the dispatcher or executed
//! here), claimed once however often it is delivered, executed slice by
//! slice, continued when a slice ends at a checkpoint, followed by the run
//! bundled behind it, and recovered after a restart of a single-process host.
//!
//! An invocation with a deadline (a Lambda's) executes only the run it was
//! handed: the run's continuation and the run bundled behind it go to the
//! dispatcher, so nothing outlives the deadline with a run left `running`.

use std::sync::Arc;
use std::time::Instant;

use super::context::FlowRun;
use super::halt::halt_error;
use super::log::RunLog;
use super::watch::{Registered, Watch, ATTEMPTS};
use crate::repo::{keys, lookups, records, run_index, Page, PageRequest};
use crate::Hub;
use ferry_core::error::{Error, Result};
use ferry_core::model::{Run, RunMode, RunStatus};
use ferry_core::ports::{Condition, Index, Query, RunRef, StoreError};
use ferry_engine::flow::Halt;
use ferry_engine::redact::Redactor;

impl Hub {
    /// Hands a queued run to the dispatcher, or executes it in this process.
    pub(super) async fn start(&self, run: &Run) -> Result<()> {
        match &self.dispatcher {
            // On failure the lease expires by itself and the next trigger takes over.
            // On failure the lease expires by itself and the next trigger takes over.
            Some(d) => d.dispatch(&run_ref(run)).await.map_err(Error::from),
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
    /// continuation is dispatched to resume it; a run bundled behind it is
    /// dispatched too, not executed in this invocation.
    pub async fn execute_dispatched_until(&self, r: &RunRef, deadline: Option<Instant>) -> Result<()> {
        if let Some(run) = self.claim_run(r).await? {
            self.drive_until(run, deadline).await;
        }
        Ok(())
    }

    /// Marks a dispatched run running; `None` when it is not this delivery's
    /// to execute. Queues deliver at least once, and two deliveries can be
    /// handled at the same moment: the claim is a conditional write, so one wins.
    async fn claim_run(&self, r: &RunRef) -> Result<Option<Run>> {
        let found = lookups::run(self.store(), &r.tenant, &r.job, &r.run).await?;
        let mut run = found.value;
        if !matches!(run.status, RunStatus::Queued | RunStatus::Interrupted) {
            tracing::info!(run = %run.id, status = ?run.status, "duplicate delivery of a run; ignored");
            return Ok(None);
        }
        run.status = RunStatus::Running;
        run.started_at.get_or_insert(self.clock.now());
        let op = run_index::put(&run, Condition::VersionIs(found.version))?;
        match self.store().write(vec![op]).await {
            Ok(()) => Ok(Some(run)),
            Err(StoreError::ConditionFailed) => {
                tracing::info!(run = %run.id, "run claimed by a concurrent delivery; ignored");
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Drives a run in a task of its own: how [`Hub::new`]'s hubs start runs.
    pub(crate) fn spawn_run(self, run: Run) {
        tokio::spawn(async move { self.drive_until(run, None).await });
    }

    /// Executes a run slice by slice, then whatever follows it in this
    /// process, until nothing does. The first slice stops by `deadline`; the
    /// others (only on hubs without a dispatcher) by the host's slice.
    async fn drive_until(&self, first: Run, deadline: Option<Instant>) {
        let bounded = deadline.is_some();
        let mut next = Some(first);
        let mut deadline = deadline;
        while let Some(run) = next.take() {
            let stop_at = deadline.take().or_else(|| self.settings.run_slice.map(|d| Instant::now() + d));
            let ended = self.execute(run, stop_at).await;
            let id = ended.id.clone();
            next = match self.after_slice(ended, bounded).await {
                Ok(next) => next,
                Err(e) => {
                    tracing::error!(error = %e, run = %id, "could not hand the job on; its lease expires by itself");
                    None
                }
            };
        }
    }

    /// What follows a slice, returned when it executes in this process. A
    /// continuation goes to the dispatcher when the hub has one, and so does
    /// the run bundled behind an ended run when the invocation has a deadline
    /// (`bounded`): nothing executes past the deadline, and a sandbox frozen
    /// after it leaves no run `running`.
    async fn after_slice(&self, run: Run, bounded: bool) -> Result<Option<Run>> {
        let (next, dispatch) = match run.status {
            RunStatus::Interrupted => (self.continue_later(run).await?, true),
            RunStatus::Cancelled => {
                self.release_job_lease(&run).await?;
                (None, false)
            }
            _ => (self.finish_lease(&run).await?, bounded),
        };
        match next {
            Some(run) if dispatch => self.here_or_dispatched(run).await,
            next => Ok(next),
        }
    }

    /// A run to execute next: handed to the dispatcher when the hub has one,
    /// else returned to execute here.
    async fn here_or_dispatched(&self, run: Run) -> Result<Option<Run>> {
        let Some(d) = &self.dispatcher else { return Ok(Some(run)) };
        d.dispatch(&run_ref(&run)).await.map_err(Error::from)?;
        Ok(None)
    }

    /// Keeps the job's lease for an interrupted run; returns it to be resumed,
    /// or `None` when it ended meanwhile (cancelled, or its lease lost).
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
        Ok(Some(run))
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
                for lease in self.tenant_leases(&tenant.id).await? {
                    let job = match lease.job.is_empty() {
                        false => lease.job.clone(),
                        true => match self.job_of_lease(&tenant.id, &lease.run_id).await? {
                            Some(j) => j,
                            None => continue,
                        },
                    };
                    let run = lookups::run(self.store(), &tenant.id, &job, &lease.run_id).await?.value;
                    self.recover(run).await?;
                    recovered += 1;
                }
            }
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => return Ok(recovered),
            }
        }
    }

    /// Recovers one run holding its job's lease at a restart.
    async fn recover(&self, mut run: Run) -> Result<()> {
        let (tenant, job) = (run.tenant.clone(), run.job.clone());
        match run.status {
            // Cancelled while its driver was gone: nothing of it restarts.
            RunStatus::Cancelled => return self.release_job_lease(&run).await.map(drop),
            // Stopped cleanly at a checkpoint: resume it rather than fail it
            // (`execute` fails it at once if its budget is spent).
            RunStatus::Interrupted => {
                tracing::info!(%tenant, %job, run = %run.id, "resuming an interrupted run");
                return self.start(&run).await;
            }
            status if !status.is_finished() => {
                // Its counters are those its last page boundary persisted.
                run.status = RunStatus::FailedPlatform;
                run.error = Some("the host stopped during the run; the next run resumes from its checkpoints".into());
                run.ended_at = Some(self.clock.now());
                self.save_run(&mut run).await?;
            }
            _ => {}
        }
        tracing::warn!(%tenant, %job, run = %run.id, "recovered a run interrupted by a restart");
        match self.finish_lease(&run).await? {
            Some(next) => self.start(&next).await,
            None => Ok(()),
        }
    }

    /// Leases name the run, and runs live under their job: find the job by the run.
    async fn job_of_lease(&self, tenant: &str, run: &str) -> Result<Option<String>> {
        for job in lookups::all_jobs(self.store(), tenant).await? {
            if self.store().get(&keys::run(tenant, &job.id, run)).await?.is_some() {
                return Ok(Some(job.id));
            }
        }
        Ok(None)
    }

    /// Executes one slice of a run: its release's flows or program, until
    /// they end or the slice stops at a checkpoint. Records status, counters
    /// and logs whatever happens.
    #[tracing::instrument(name = "run", skip_all, fields(tenant = %run.tenant, job = %run.job, run = %run.id, mode = ?run.mode))]
    async fn execute(&self, mut run: Run, stop_at: Option<Instant>) -> Run {
        run.status = RunStatus::Running;
        run.started_at.get_or_insert(self.clock.now());
        let _ = self.save_run(&mut run).await;
        if run.status == RunStatus::Cancelled {
            tracing::info!("run cancelled before it started; not executed");
            return run;
        }
        let watch = Arc::new(Watch::new(self, &run));
        let _registered = Registered::new(self, &run.id, &watch.stop);
        let log = self.opening_log(&run).await;
        // Read before the flows: a token refreshed during the run must stay masked too.
        let mut known_secrets = self.connections().run_redactor(&run).await;
        let outcome = if watch.out_of_time() {
            // A continuation or a resumed run whose budget ran out meanwhile.
            log.push(halt_error(Halt::OutOfTime, &self.settings));
            run.error = Some(halt_error(Halt::OutOfTime, &self.settings));
            Ok(RunStatus::FailedTimeout)
        } else {
            self.execute_release(&mut run, &log, stop_at, &watch, &mut known_secrets).await
        };
        run.status = status_of(outcome, &mut run, &log);
        self.conclude(run, log, &known_secrets).await
    }

    /// The log a slice starts with: a new one, or the earlier slices' log.
    async fn opening_log(&self, run: &Run) -> RunLog {
        if run.continuations == 0 {
            let first = format!("run started ({:?}, triggered by {})", run.mode, trigger_sources(run));
            return RunLog::starting(first, self.clock.clone());
        }
        let earlier = super::log::stored_log(self.store(), &run.tenant, &run.job, &run.id).await.unwrap_or_default();
        let log = RunLog::new(earlier, self.clock.clone());
        log.push(format!("continuation {} resumed the run", run.continuations));
        log
    }

    /// Executes the release the run recorded (`snapshot`: the job's release
    /// and configuration, recorded by the first slice): its program (`run:`)
    /// or its flows.
    async fn execute_release(
        &self,
        run: &mut Run,
        log: &RunLog,
        stop_at: Option<Instant>,
        watch: &Arc<Watch>,
        redactor: &mut Redactor,
    ) -> Result<RunStatus> {
        let current = lookups::job(self.store(), &run.tenant, &run.job).await?.value;
        let connections_now = current.connections.clone();
        let (job, release, recorded) = self.recorded_job(run, current).await?;
        if job.connections != connections_now {
            // A rerun with an earlier configuration: its connections' secrets are masked too.
            redactor.extend(&self.connections().job_redactor(&job).await);
        }
        run.release = Some(release.number);
        if let (Some(of), Some(config), 0) = (&run.rerun_of, run.rerun_config, run.continuations) {
            log.push(format!("rerun of run {of} with the {} configuration", rerun_config_name(config)));
        }
        log.push(format!("release {} of {}", release.number, job.integration));
        let process = release.manifest.run.is_some();
        let redactor = &*redactor;
        let mut flow_run = FlowRun {
            hub: self,
            run,
            job: &job,
            release: &release,
            recorded: &recorded,
            watch,
            stop_at,
            log,
            redactor,
        };
        // Boxed: the executors' futures are deep, and a caller's (the sync
        // function's handler) would otherwise exceed the compiler's layout depth.
        match process {
            true => Box::pin(flow_run.execute_process()).await,
            false => Box::pin(flow_run.execute_flows()).await,
        }
    }

    /// Records the end of a slice: redacted error and log, the final record
    /// (after the webhook deliveries it consumed), the run's events.
    async fn conclude(&self, mut run: Run, log: RunLog, known_secrets: &Redactor) -> Run {
        if run.status == RunStatus::Interrupted {
            log.push("run interrupted at a checkpoint; a continuation resumes it");
        } else {
            run.ended_at = Some(self.clock.now());
            run.progress = None;
            log.push(format!("run finished: {:?}", run.status));
        }
        let mut lines = log.into_lines();
        // The one place a run's error (and the events carrying it) and logs are redacted.
        self.connections().redact_run(&mut run, lines.messages_mut(), known_secrets).await;
        tracing::info!(status = ?run.status, "run finished");
        // Before the final record: a trigger that sees the record final takes the job's lease
        // over (`unfinished_holder`), and its run must not find this run's deliveries still pending.
        if run.mode == RunMode::Webhook {
            self.after_webhook_run(&run).await;
        }
        self.store_log(&run, lines).await;
        if let Err(e) = self.save_run(&mut run).await {
            tracing::error!(error = %e, "could not store the finished run");
        }
        self.notifications().emit_run_events(&run).await;
        run
    }

    /// Stores the run. A cancel stored meanwhile wins: `run` takes the
    /// cancel's status, error and end (and keeps its own counters), so a driver
    /// cannot undo or reword it.
    pub(super) async fn save_run(&self, run: &mut Run) -> Result<()> {
        let key = keys::run(&run.tenant, &run.job, &run.id);
        for _ in 0..ATTEMPTS {
            let mut before = None;
            let condition = match records::get::<Run>(self.store(), &key).await? {
                Some(stored) => {
                    before = Some(stored.value.status);
                    if stored.value.status == RunStatus::Cancelled {
                        run.status = RunStatus::Cancelled;
                        run.error = stored.value.error;
                        run.ended_at = stored.value.ended_at;
                        run.progress = None;
                    }
                    Condition::VersionIs(stored.version)
                }
                None => Condition::NotExists,
            };
            // The write that turns the run final also records its end for the metrics, once.
            let ending = crate::metrics::ending(self.store(), before, run).await?;
            let mut ops = vec![run_index::put(run, condition)?];
            ops.extend(ending.as_ref().map(crate::metrics::Ending::op));
            match self.store().write(ops).await {
                Ok(()) => {
                    crate::metrics::fold_ended(self.store(), ending).await;
                    return Ok(());
                }
                Err(StoreError::ConditionFailed) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::conflict("concurrent_update", "the run kept changing while it was being saved"))
    }
}

/// The status a slice ends with; an error is logged and recorded as the run's.
fn status_of(outcome: Result<RunStatus>, run: &mut Run, log: &RunLog) -> RunStatus {
    let e = match outcome {
        Ok(status) => return status,
        Err(e) => e,
    };
    let status = match &e {
        Error::Invalid { code: "refresh_failed", .. } => RunStatus::FailedRefresh,
        e if e.is_platform_failure() => RunStatus::FailedPlatform,
        _ => RunStatus::FailedIntegration,
    };
    log.push(format!("run failed: {e}"));
    run.error = Some(e.to_string());
    status
}

fn run_ref(run: &Run) -> RunRef {
    RunRef { tenant: run.tenant.clone(), job: run.job.clone(), run: run.id.clone() }
}

fn trigger_sources(run: &Run) -> String {
    let mut s: Vec<&str> = run.triggers.iter().map(|t| t.source.as_str()).collect();
    s.dedup();
    s.join(", ")
}

fn rerun_config_name(config: ferry_core::model::RerunConfig) -> &'static str {
    match config {
        ferry_core::model::RerunConfig::Original => "original",
        ferry_core::model::RerunConfig::Current => "current",
    }
}
