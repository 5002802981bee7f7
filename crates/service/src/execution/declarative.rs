//! Declarative runs: the release's flows for the run's mode, one after the
//! other, each from its saved checkpoint. A slice that runs out of time stops
//! at a checkpoint (`interrupted`) and its continuation skips the flows that
//! finished; a flow refused by an expired OAuth token is retried once after
//! a refresh.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use super::context::{Bindings, FlowRun};
use super::halt::{halt_error, halt_status};
use super::tally::{Next, Tally};
use super::watch::{add, FlowPulse};
use crate::repo::lookups;
use crate::Hub;
use ferry_core::error::{Error, Result};
use ferry_core::manifest::{Flow, FlowTrigger, Incremental, Partition, Source, Target};
use ferry_core::model::{AuthKind, ConnectionStatus, Counters, Job, RunMode, RunProgress, RunStatus};
use ferry_core::ports::FileError;
use ferry_engine::flow::{self, FlowState, FlowStatus, Limits};
use ferry_engine::http::HttpClient;
use ferry_engine::source::{cursor_text, Reader, SourceSpec};
use ferry_engine::substream::{Pages, Partitioned};
use ferry_engine::target::{FileSink, HttpTarget, Sink};
use ferry_engine::template::Templates;

/// Continuations in a row that moved no checkpoint before a run fails as stalled.
const MAX_STALLED_SLICES: u32 = 3;

/// The HTTP client and templates a run's flows share.
pub(super) struct Engine {
    pub(super) http: HttpClient,
    pub(super) templates: Templates,
}

impl Engine {
    /// The client every request of a run goes out through: the hub's
    /// outbound policy, and the tenant's request budgets and in-flight limits.
    pub(super) fn for_run(hub: &Hub) -> Result<Self> {
        let http = HttpClient::new(hub.settings.http.clone(), hub.net_policy())
            .map_err(|e| Error::Internal(e.to_string()))?
            .with_gate(hub.gate.clone());
        Ok(Engine { http, templates: Templates::new() })
    }
}

/// How one attempt of a flow ended.
pub(super) struct FlowEnd {
    pub(super) status: FlowStatus,
    pub(super) counters: Counters,
    pub(super) error: Option<String>,
}

impl<'a> FlowRun<'a> {
    /// Executes the flows of the run's mode; returns the run's status.
    pub(super) async fn execute_flows(&mut self) -> Result<RunStatus> {
        if let Some(replay) = self.run.replay.clone() {
            return self.execute_replay(&replay).await;
        }
        let flows = self.flows_of_mode();
        if flows.is_empty() {
            self.log.push(format!("no flow runs in {:?} mode", self.run.mode));
            return Ok(RunStatus::Succeeded);
        }
        let engine = Engine::for_run(self.hub)?;
        // A continuation carries the earlier slices' outcome and skips finished flows.
        let mut tally = Tally::resume(self.run);
        let finished_before = tally.progress.completed_flows.len();
        for flow in flows {
            if tally.finished(&flow.name) {
                continue;
            }
            let end = self.execute_with_refresh(flow, &engine).await?;
            match tally.add(&flow.name, end) {
                Next::Continue => {}
                Next::Interrupted => {
                    self.run.error = tally.first_error;
                    return self.interrupted(flow, tally.progress, finished_before).await;
                }
                Next::Halted(why) => {
                    self.run.error = Some(halt_error(why, &self.hub.settings));
                    return Ok(halt_status(why));
                }
            }
        }
        self.run.error = tally.first_error;
        Ok(tally.status)
    }

    /// The release's flows the run's mode executes, in manifest order.
    fn flows_of_mode(&self) -> Vec<&'a Flow> {
        let manifest = &self.release.manifest;
        let mode = self.run.mode;
        let hook_flow = manifest.webhooks.as_ref().and_then(|w| w.flow.as_deref());
        let wanted = |f: &Flow| match mode {
            RunMode::Init => f.triggers.contains(&FlowTrigger::Init),
            RunMode::Webhook => f.triggers.contains(&FlowTrigger::Webhook) || hook_flow == Some(f.name.as_str()),
            RunMode::Normal => {
                f.triggers.is_empty()
                    || f.triggers
                        .iter()
                        .any(|x| matches!(x, FlowTrigger::Schedule | FlowTrigger::Manual | FlowTrigger::Api))
            }
        };
        manifest.flows.iter().filter(|f| wanted(f)).collect()
    }

    /// Executes a flow, adding its counters to the run's; a flow whose
    /// credentials were refused goes again once after an OAuth refresh.
    async fn execute_with_refresh(&mut self, flow: &Flow, engine: &Engine) -> Result<FlowEnd> {
        let mut refreshed = false;
        loop {
            let limits = self.limits(flow);
            let end = self.execute_flow(flow, engine, &limits).await?;
            add(self.run.counters.entry(flow.name.clone()).or_default(), &end.counters);
            // A provider may revoke a token before it expires: refresh once
            // and go again from the checkpoint the flow reached.
            let refused = end.error.as_deref().is_some_and(ferry_engine::http::credentials_refused);
            if end.status == FlowStatus::Failed
                && refused
                && !refreshed
                && self.hub.refresh_refused(self.job, flow).await?
            {
                refreshed = true;
                self.log
                    .push(format!("[{}] credentials refused (401): OAuth2 token refreshed, flow retried", flow.name));
                continue;
            }
            if end.status == FlowStatus::Failed && refused {
                self.mark_refusing_connection(flow, end.error.as_deref().unwrap_or_default()).await?;
            }
            return Ok(end);
        }
    }

    /// The connection whose service refused its credentials (the one the
    /// 401's URL is under) needs attention: its status says so, where the
    /// dashboard and the connections list show it, until its credentials
    /// are replaced or it is reconnected.
    async fn mark_refusing_connection(&self, flow: &Flow, error: &str) -> Result<()> {
        const CUE: &str = "HTTP 401 from ";
        let Some(at) = error.find(CUE) else { return Ok(()) };
        let url = error[at + CUE.len()..].split(": ").next().unwrap_or_default();
        let manifest = self.manifest();
        for connector in http_connectors(flow) {
            let Some(id) = self.job.connections.get(connector) else { continue };
            let conn = self.hub.connections().get_connection(&self.job.tenant, id).await?;
            let Ok(base) =
                crate::origins::base_url(manifest, connector, &conn.settings, conn.base_url_approved.as_deref())
            else {
                continue;
            };
            if !url.starts_with(base.trim_end_matches('/')) {
                continue;
            }
            let message = format!(
                "The service refused this connection's credentials (HTTP 401) in run {}: replace them, or reconnect.",
                self.run.id
            );
            self.hub
                .connections()
                .modify_connection(&self.job.tenant, id, |c| {
                    c.status = ConnectionStatus::Error;
                    c.status_message = Some(message.clone());
                })
                .await?;
            self.log.push(format!("[{}] connection `{connector}` marked as needing attention", flow.name));
        }
        Ok(())
    }

    /// A service that answered the flow shows its connection works: one the
    /// run found marked as needing attention (a key an earlier run had
    /// refused, a failed test request) is connected again. The source
    /// answered if the flow read to its end, the target if it took a record.
    pub(super) async fn mark_answering_connections(
        &self,
        flow: &Flow,
        bound: &Bindings,
        status: FlowStatus,
        counters: &Counters,
    ) -> Result<()> {
        if !matches!(status, FlowStatus::Succeeded | FlowStatus::Partial) {
            return Ok(());
        }
        let mut answered = super::context::source_connectors(self.manifest(), flow);
        if let (Target::Http { connector, .. }, true) = (&flow.target, counters.written > 0) {
            answered.push(connector);
        }
        for connector in answered {
            let Some(id) = bound.needing_attention(connector) else { continue };
            self.hub
                .connections()
                .modify_connection(&self.job.tenant, id, |c| {
                    // Unless an OAuth refresh failed since the flow bound it.
                    if super::context::disprovable_error(c) {
                        c.status = ConnectionStatus::Connected;
                        c.status_message = None;
                    }
                })
                .await?;
            self.log.push(format!("[{}] connection `{connector}` answered: no longer needs attention", flow.name));
        }
        Ok(())
    }

    /// The flow's limits: the run's record limit, this slice's end, the run's
    /// stop signal, a pulse storing the run's counters at each page, and
    /// where the records it cannot deliver go.
    pub(super) fn limits(&self, flow: &Flow) -> Limits {
        let pulse = FlowPulse { watch: self.watch.clone(), flow: flow.name.clone(), before: self.run.counters.clone() };
        Limits {
            max_records: self.run.options.max_records,
            stop_at: self.stop_at,
            stop: self.watch.stop.clone(),
            pulse: Some(Arc::new(pulse)),
            run: self.run.id.clone(),
            on_record_error: flow.on_record_error,
            dead_letters: Some(Arc::new(self.dead_letters(flow))),
        }
    }

    /// The slice stopped at `flow`'s checkpoint: the run continues from its
    /// progress, unless slices in a row moved nothing (a page or a
    /// non-incremental flow that does not fit in one), which would loop forever.
    async fn interrupted(
        &mut self,
        flow: &Flow,
        mut progress: RunProgress,
        finished_before: usize,
    ) -> Result<RunStatus> {
        let now = lookups::job(self.hub.store(), &self.run.tenant, &self.run.job).await?.value.state;
        let moved = now != self.job.state || progress.completed_flows.len() > finished_before;
        progress.stalled_slices = if moved { 0 } else { progress.stalled_slices + 1 };
        if progress.stalled_slices < MAX_STALLED_SLICES {
            self.run.progress = Some(progress);
            return Ok(RunStatus::Interrupted);
        }
        let n = progress.stalled_slices;
        self.log.push(format!("[{}] stalled: {n} continuations in a row moved no checkpoint", flow.name));
        self.run.error.get_or_insert_with(|| {
            format!(
                "stalled: flow `{}` made no progress across {n} continuations (a page or a non-incremental flow does not fit in one invocation)",
                flow.name
            )
        });
        Ok(RunStatus::FailedTimeout)
    }

    /// One attempt of a flow, from its checkpoint.
    async fn execute_flow(&self, flow: &Flow, engine: &Engine, limits: &Limits) -> Result<FlowEnd> {
        let Some(source) = HttpSource::of(&flow.source) else {
            return self.execute_webhook_flow(flow, engine, limits).await;
        };
        let bound = self.bind_flow(flow).await?;
        let mut state: FlowState = match self.job.state.get(&flow.name) {
            Some(v) if !self.run.options.reset_cursor => serde_json::from_value(v.clone()).unwrap_or_default(),
            _ => FlowState::default(),
        };
        let mut resume = self.own_resume(flow, state.resume.take()).await;
        let ctx = self.template_context(&state, &bound.get(source.connector)?.settings);
        let mapping = self.flow_mapping(flow).await?;
        let resumed = match resume.as_ref().and_then(|r| r.file.as_ref()) {
            Some(file) => self.resumed_file(flow, file).await?,
            None => None,
        };
        // A file flow resumes only with its file.
        if resumed.is_none() && matches!(flow.target, Target::File { .. }) {
            resume = None;
        }
        let mut sink = match resumed {
            Some(sink) => sink,
            None => self.open_sink(flow, &ctx, engine, &bound).await?,
        };
        state.resume = resume;
        let mut reader = match source.partition {
            None => {
                let since = since(self.run.options.full, source.spec.incremental, state.cursor.as_ref());
                let endpoint = bound.endpoint(source.connector)?;
                Pages::Single(Reader::new(source.spec, endpoint, &engine.http, &engine.templates, since))
            }
            Some(p) => self.partitioned(flow, &source, p, &bound, engine, state.partitions.clone())?,
        };
        let mut checkpoint = self.checkpoint(flow, false);
        let start = std::mem::take(&mut state);
        let (http, templates) = (&engine.http, &engine.templates);
        let out =
            flow::run(&mut reader, mapping.as_ref(), &mut sink, &ctx, http, templates, start, limits, &mut checkpoint)
                .await?;
        self.log.flow(&flow.name, &out.log);
        self.mark_answering_connections(flow, &bound, out.status, &out.counters).await?;
        if let (Sink::Options { collected, .. }, Target::Options { definition, .. }, FlowStatus::Succeeded) =
            (&sink, &flow.target, out.status)
        {
            self.hub.jobs().set_dynamic_options(&self.job.tenant, &self.job.id, definition, collected.clone()).await?;
            self.log.push(format!("[{}] {} options stored for `{definition}`", flow.name, collected.len()));
        }
        Ok(FlowEnd { status: out.status, counters: out.counters, error: out.error })
    }

    /// A substream's pages: its parent flow's source, read in full, gives the
    /// partitions; each partition's child source resumes from its own cursor.
    fn partitioned<'r>(
        &self,
        flow: &Flow,
        child: &HttpSource<'r>,
        p: &'r Partition,
        bound: &'r Bindings,
        engine: &'r Engine,
        cursors: BTreeMap<String, Value>,
    ) -> Result<Pages<'r>>
    where
        'a: 'r,
    {
        let manifest: &'a ferry_core::manifest::Manifest = &self.release.manifest;
        let parent = manifest.flows.iter().find(|f| f.name == p.flow).and_then(|f| HttpSource::of(&f.source));
        let Some(parent) = parent else {
            return Err(Error::invalid(
                "bad_partition",
                format!("flow `{}` partitions by `{}`, which has no HTTP source", flow.name, p.flow),
            ));
        };
        // Parents are read in full: a partition must not vanish because
        // its parent record did not change since the last run.
        let spec = SourceSpec { incremental: None, ..parent.spec };
        let parent = Reader::new(spec, bound.endpoint(parent.connector)?, &engine.http, &engine.templates, None);
        let (full, incremental) = (self.run.options.full, child.spec.incremental);
        let since_of = move |saved: Option<&Value>| since(full, incremental, saved);
        Ok(Pages::Partitioned(Box::new(Partitioned::new(
            parent,
            &p.field,
            child.spec,
            bound.endpoint(child.connector)?,
            &engine.http,
            &engine.templates,
            cursors,
            Box::new(since_of),
        ))))
    }

    /// What a flow's templates see.
    pub(super) fn template_context(
        &self,
        state: &impl serde::Serialize,
        connection: &impl serde::Serialize,
    ) -> minijinja::Value {
        minijinja::context! {
            config => minijinja::Value::from_serialize(&self.job.configs),
            state => minijinja::Value::from_serialize(state),
            connection => minijinja::Value::from_serialize(connection),
            now => self.hub.clock.now().to_rfc3339(),
            run => minijinja::Value::from_serialize(serde_json::json!({"id": self.run.id, "mode": self.run.mode})),
        }
    }

    /// Opens the flow's target (an HTTP target writes through its bound connector).
    pub(super) async fn open_sink<'s>(
        &self,
        flow: &'s Flow,
        ctx: &minijinja::Value,
        engine: &Engine,
        bound: &'s Bindings,
    ) -> Result<Sink<'s>> {
        Ok(match &flow.target {
            Target::Http { connector, method, path, headers, batch_size, body, idempotency_key, rejections } => {
                Sink::Http(HttpTarget {
                    endpoint: bound.endpoint(connector)?,
                    method: *method,
                    path,
                    headers,
                    batch_size: self.run.options.batch_size.unwrap_or(*batch_size),
                    body: body.as_ref(),
                    idempotency_key: idempotency_key.as_deref(),
                    rejections: rejections.as_ref(),
                    ordered: flow.ordered,
                })
            }
            Target::Options { value, title, .. } => {
                Sink::Options { value, title: title.as_deref(), collected: Vec::new() }
            }
            Target::File { format, path, columns } => {
                let files = self
                    .hub
                    .files
                    .as_ref()
                    .ok_or_else(|| Error::Internal("this host has no file store for file targets".into()))?;
                let rendered = engine.templates.render(path, ctx)?;
                let writer = files.create(&self.job.tenant, &rendered).await.map_err(|e| match e {
                    FileError::InvalidPath(_) => Error::invalid("invalid_file_path", e.to_string()),
                    other => Error::from(other),
                })?;
                self.log.push(format!("[{}] writing {rendered}", flow.name));
                Sink::File(FileSink::new(*format, columns.clone(), writer, rendered))
            }
        })
    }
}

impl Hub {
    /// Refreshes the OAuth2 tokens of the connections a flow uses, treating
    /// their current access tokens as rejected; false when none is OAuth2.
    async fn refresh_refused(&self, job: &Job, flow: &Flow) -> Result<bool> {
        let mut refreshed = false;
        for connector in http_connectors(flow) {
            let Some(id) = job.connections.get(connector) else { continue };
            let conn = self.connections().get_connection(&job.tenant, id).await?;
            if conn.auth_kind != AuthKind::Oauth2 {
                continue;
            }
            let current = self.connections().connection_credentials(&conn).await?.unwrap_or_default();
            let rejected = current.0.get("access_token").map(|t| secrecy::ExposeSecret::expose_secret(t).to_owned());
            self.connections().fresh_credentials(&conn, rejected.as_deref()).await?;
            refreshed = true;
        }
        Ok(refreshed)
    }
}

/// The connectors a flow sends requests through (its HTTP source and target).
fn http_connectors(flow: &Flow) -> Vec<&str> {
    let mut connectors = Vec::new();
    if let Source::Http { connector, .. } = &flow.source {
        connectors.push(connector.as_str());
    }
    if let Target::Http { connector, .. } = &flow.target {
        connectors.push(connector.as_str());
    }
    connectors
}

/// An HTTP source: the connector it reads through, what it reads, and the
/// flow whose records partition it (a substream).
struct HttpSource<'f> {
    connector: &'f str,
    spec: SourceSpec<'f>,
    partition: Option<&'f Partition>,
}

impl<'f> HttpSource<'f> {
    /// `None` for a source that is not read by request (a webhook's).
    fn of(source: &'f Source) -> Option<Self> {
        let Source::Http { connector, request, records, filter, pagination, incremental, partition, take } = source
        else {
            return None;
        };
        let spec = SourceSpec {
            request,
            records: records.as_deref(),
            filter: filter.as_deref(),
            pagination: pagination.as_ref(),
            incremental: incremental.as_ref(),
            take: *take,
        };
        Some(Self { connector, spec, partition: partition.as_ref() })
    }
}

/// The cursor a source sends with its first request: the saved one moved
/// back by the lookback (none for a full read), else the manifest's start.
fn since(full: bool, incremental: Option<&Incremental>, saved: Option<&Value>) -> Option<String> {
    let lookback = incremental.and_then(|i| i.lookback.as_deref());
    let first = || incremental.and_then(|i| i.start.clone());
    if full { None } else { saved.map(|c| back_off(&cursor_text(c), lookback)) }.or_else(first)
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
