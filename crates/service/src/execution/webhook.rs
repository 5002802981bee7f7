//! Webhook runs: serving a job's stored deliveries with a run (after the
//! intake stored one, after a webhook run, when a paused job resumes), and
//! flows whose source is `webhook` reading the payloads of the deliveries
//! the run took. The deliveries themselves are `hooks::service`'s; runs are
//! started here rather than there, so hooks know nothing of execution.

use std::sync::LazyLock;

use super::context::FlowRun;
use super::declarative::{Engine, FlowEnd};
use super::lease::{RunRequest, Triggered};
use crate::repo::lookups;
use crate::Hub;
use ferry_core::error::{Error, Result};
use ferry_core::manifest::{Flow, Method, Request, Source};
use ferry_core::model::{AuthKind, Run, RunMode, RunOptions, RunStatus};
use ferry_core::ports::SecretFields;
use ferry_engine::flow::{self, FlowStatus, Limits};
use ferry_engine::source::{Endpoint, Reader, SourceSpec};
use ferry_engine::substream::Pages;

static NO_REQUEST: LazyLock<Request> = LazyLock::new(|| Request {
    method: Method::Get,
    path: String::new(),
    query: Default::default(),
    headers: Default::default(),
    body: None,
});
static NO_SECRETS: LazyLock<SecretFields> = LazyLock::new(SecretFields::new);

/// Deliveries carry their records: the reader requests nothing.
fn no_endpoint() -> Endpoint<'static> {
    Endpoint {
        base_url: "",
        auth: AuthKind::None,
        api_key: None,
        default_headers: Vec::new(),
        secrets: &NO_SECRETS,
        throttle: Default::default(),
        max_response_bytes: None,
    }
}

impl FlowRun<'_> {
    /// Executes a flow with a `webhook` source over the run's deliveries.
    pub(super) async fn execute_webhook_flow(&self, flow: &Flow, engine: &Engine, limits: &Limits) -> Result<FlowEnd> {
        let Source::Webhook { records, filter } = &flow.source else {
            return Err(Error::Internal("not a webhook flow".into()));
        };
        if self.run.mode != RunMode::Webhook {
            self.log.push(format!("[{}] webhook sources read deliveries only in webhook runs; skipped", flow.name));
            return Ok(FlowEnd { status: FlowStatus::Succeeded, counters: Default::default(), error: None });
        }
        let payloads = self.hub.hooks().take_deliveries(&self.job.tenant, &self.job.id, &self.run.id).await?;
        self.log.push(format!("[{}] {} webhook deliveries", flow.name, payloads.len()));
        let empty = serde_json::json!({});
        let ctx = self.template_context(&empty, &empty);
        let mapping = self.flow_mapping(flow).await?;
        let bound = self.bind_flow(flow).await?;
        let mut sink = self.open_sink(flow, &ctx, engine, &bound).await?;
        let spec = SourceSpec {
            request: &NO_REQUEST,
            records: records.as_deref(),
            filter: filter.as_deref(),
            pagination: None,
            incremental: None,
            take: None,
        };
        let reader = Reader::new(spec, no_endpoint(), &engine.http, &engine.templates, None).preloaded(payloads);
        // Webhook flows keep no cursor: each run reads exactly its deliveries.
        let mut checkpoint = self.checkpoint(flow, true);
        // Deliveries are few and a file target commits whole: no slice deadline,
        // but a cancel or the run's budget still stops it.
        let limits = Limits {
            max_records: limits.max_records,
            stop_at: None,
            stop: limits.stop.clone(),
            pulse: limits.pulse.clone(),
            run: limits.run.clone(),
            on_record_error: limits.on_record_error,
            dead_letters: limits.dead_letters.clone(),
        };
        let (http, templates) = (&engine.http, &engine.templates);
        let out = flow::run(
            &mut Pages::Single(reader),
            mapping.as_ref(),
            &mut sink,
            &ctx,
            http,
            templates,
            Default::default(),
            &limits,
            &mut checkpoint,
        )
        .await?;
        self.log.flow(&flow.name, &out.log);
        self.mark_answering_connections(flow, &bound, out.status, &out.counters).await?;
        Ok(FlowEnd { status: out.status, counters: out.counters, error: out.error })
    }
}

impl Hub {
    /// Starts (or bundles) a webhook run for a job's stored deliveries, unless
    /// the job holds them ([`crate::jobs::held_because`]): then `None`, and
    /// they wait until it resumes. What the intake calls after storing one.
    pub async fn serve_deliveries(&self, tenant: &str, job: &str) -> Result<Option<Triggered>> {
        if let Some(reason) = self.jobs().job_held_because(tenant, job).await? {
            tracing::info!(tenant, job, reason, "webhook deliveries held");
            return Ok(None);
        }
        let req = RunRequest { mode: RunMode::Webhook, options: RunOptions::default() };
        self.trigger_now(tenant, job, req, "webhook").await.map(Some)
    }

    /// After a job (or its tenant) resumed: starts the run serving the
    /// deliveries it held, if any wait. Failures are logged: the job is
    /// saved, and the next delivery's trigger serves them too.
    pub(crate) async fn serve_held_deliveries(&self, tenant: &str, job: &str) {
        let waiting = match self.hooks().pending_deliveries(tenant, job, 1).await {
            Ok(d) => !d.is_empty(),
            Err(e) => {
                tracing::error!(error = %e, tenant, job, "could not read the deliveries held while paused");
                return;
            }
        };
        if waiting {
            if let Err(e) = self.serve_deliveries(tenant, job).await {
                tracing::error!(error = %e, tenant, job, "could not start a run for the deliveries held while paused");
            }
        }
    }

    /// [`Hub::serve_held_deliveries`] for every job of a tenant that resumed.
    pub(crate) async fn serve_held_deliveries_of_tenant(&self, tenant: &str) {
        match lookups::all_jobs(self.store(), tenant).await {
            Ok(jobs) => {
                for job in jobs.iter().filter(|j| !j.paused) {
                    self.serve_held_deliveries(tenant, &job.id).await;
                }
            }
            Err(e) => tracing::error!(error = %e, tenant, "could not list the jobs to serve their held deliveries"),
        }
    }

    /// Consumes the deliveries a webhook run took, unless Ferry itself failed
    /// (then the next run reads them again); serves the deliveries still waiting.
    pub(super) async fn after_webhook_run(&self, run: &Run) {
        if matches!(run.status, RunStatus::FailedPlatform) {
            return;
        }
        match self.hooks().consume_deliveries(&run.tenant, &run.job, &run.id).await {
            Ok(true) => {
                if let Err(e) = self.serve_deliveries(&run.tenant, &run.job).await {
                    tracing::warn!(error = %e, "could not trigger a run for the remaining deliveries");
                }
            }
            Ok(false) => {}
            Err(e) => tracing::error!(error = %e, run = %run.id, "could not consume the run's deliveries"),
        }
    }
}
