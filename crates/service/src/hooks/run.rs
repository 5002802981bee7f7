//! Webhook runs: flows whose source is `webhook` read the payloads of the
//! deliveries the run took; after the run those deliveries are consumed.

use std::sync::LazyLock;

use serde_json::Value;

use ferry_engine::flow::{self, FlowStatus, Limits};
use ferry_engine::http::HttpClient;
use ferry_engine::source::{Endpoint, Reader, SourceSpec};
use ferry_engine::template::Templates;
use ferry_core::error::{Error, Result};
use ferry_core::manifest::{Flow, Manifest, Request, Source};
use ferry_core::model::{AuthKind, Counters, Job, Run, RunMode, RunOptions, RunStatus};
use ferry_core::ports::SecretFields;
use crate::runs::{JobState, RunRequest};
use crate::Hub;

static NO_REQUEST: LazyLock<Request> = LazyLock::new(|| Request {
    method: ferry_core::manifest::Method::Get,
    path: String::new(),
    query: Default::default(),
    headers: Default::default(),
    body: None,
});
static NO_SECRETS: LazyLock<SecretFields> = LazyLock::new(SecretFields::new);

impl Hub {
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn execute_webhook_flow(
        &self,
        run: &Run,
        job: &Job,
        manifest: &Manifest,
        flow: &Flow,
        http: &HttpClient,
        templates: &Templates,
        limits: &Limits,
        log: &mut Vec<String>,
    ) -> Result<(FlowStatus, Counters, Option<String>)> {
        let Source::Webhook { records, filter } = &flow.source else {
            return Err(Error::Internal("not a webhook flow".into()));
        };
        if run.mode != RunMode::Webhook {
            log.push(format!("[{}] webhook sources read deliveries only in webhook runs; skipped", flow.name));
            return Ok((FlowStatus::Succeeded, Counters::default(), None));
        }
        let payloads = self.take_deliveries(&job.tenant, &job.id, &run.id).await?;
        log.push(format!("[{}] {} webhook deliveries", flow.name, payloads.len()));
        let ctx = minijinja::context! {
            config => minijinja::Value::from_serialize(&job.configs),
            state => minijinja::Value::from_serialize(serde_json::json!({})),
            connection => minijinja::Value::from_serialize(serde_json::json!({})),
            now => self.clock.now().to_rfc3339(),
            run => minijinja::Value::from_serialize(serde_json::json!({"id": run.id, "mode": run.mode})),
        };
        let mapping = self.flow_mapping(job, flow).await?;
        let mut target_conn = None;
        let mut sink = self.open_sink(run, job, manifest, flow, &ctx, templates, &mut target_conn, log).await?;
        let endpoint = Endpoint {
            base_url: "",
            auth: AuthKind::None,
            api_key: None,
            default_headers: Vec::new(),
            secrets: &NO_SECRETS,
            budget: None,
            max_response_bytes: None,
        };
        let spec = SourceSpec {
            request: &NO_REQUEST,
            records: records.as_deref(),
            filter: filter.as_deref(),
            pagination: None,
            incremental: None,
            take: None,
        };
        let mut reader = ferry_engine::substream::Pages::Single(
            Reader::new(spec, endpoint, http, templates, None).preloaded(payloads),
        );
        // Webhook flows keep no cursor: each run reads exactly its deliveries.
        let mut checkpoint = JobState { hub: self, tenant: &job.tenant, job: &job.id, flow: &flow.name, skip: true };
        let out = flow::run(
            &mut reader,
            mapping.as_ref(),
            &mut sink,
            &ctx,
            http,
            templates,
            Default::default(),
            // Deliveries are few and a file target commits whole: no slice deadline,
            // but a cancel or the run's budget still stops it.
            &Limits {
                max_records: run.options.max_records,
                stop_at: None,
                stop: limits.stop.clone(),
                pulse: limits.pulse.clone(),
            },
            &mut checkpoint,
        )
        .await?;
        log.extend(out.log.iter().map(|l| format!("[{}] {l}", flow.name)));
        Ok((out.status, out.counters, out.error))
    }

    /// Consumes the deliveries a webhook run took, unless Ferry itself failed
    /// (then the next run reads them again); triggers another run when more wait.
    ///
    /// Boxed: runs trigger runs here, and the compiler cannot see through that cycle.
    pub(crate) fn after_webhook_run<'a>(
        &'a self,
        run: &'a Run,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(self.after_webhook_run_inner(run))
    }

    async fn after_webhook_run_inner(&self, run: &Run) {
        if matches!(run.status, RunStatus::FailedPlatform) {
            return;
        }
        match self.consume_deliveries(&run.tenant, &run.job, &run.id).await {
            Ok(true) => {
                let req = RunRequest { mode: RunMode::Webhook, options: RunOptions::default() };
                if let Err(e) = self.trigger_run(&run.tenant, &run.job, req, "webhook").await {
                    tracing::warn!(error = %e, "could not trigger a run for the remaining deliveries");
                }
            }
            Ok(false) => {}
            Err(e) => tracing::error!(error = %e, run = %run.id, "could not consume the run's deliveries"),
        }
    }
}

/// The payloads of a JSON array, for tests and tools.
pub fn payload_count(v: &Value) -> usize {
    v.as_array().map_or(1, Vec::len)
}
