//! Webhook runs: flows whose source is `webhook` read the payloads of the
//! deliveries the run took (the intake stored them, `hooks::service` keeps
//! them); after the run those deliveries are consumed, and a run is triggered
//! for any delivery still waiting.

use std::sync::LazyLock;

use super::context::FlowRun;
use super::declarative::{Engine, FlowEnd};
use super::lease::RunRequest;
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
        budget: None,
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
        let payloads = self.hub.take_deliveries(&self.job.tenant, &self.job.id, &self.run.id).await?;
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
        Ok(FlowEnd { status: out.status, counters: out.counters, error: out.error })
    }
}

impl Hub {
    /// Consumes the deliveries a webhook run took, unless Ferry itself failed
    /// (then the next run reads them again); triggers another run when more wait.
    pub(super) async fn after_webhook_run(&self, run: &Run) {
        if matches!(run.status, RunStatus::FailedPlatform) {
            return;
        }
        match self.consume_deliveries(&run.tenant, &run.job, &run.id).await {
            Ok(true) => {
                let req = RunRequest { mode: RunMode::Webhook, options: RunOptions::default() };
                if let Err(e) = self.trigger_now(&run.tenant, &run.job, req, "webhook").await {
                    tracing::warn!(error = %e, "could not trigger a run for the remaining deliveries");
                }
            }
            Ok(false) => {}
            Err(e) => tracing::error!(error = %e, run = %run.id, "could not consume the run's deliveries"),
        }
    }
}
