//! What executing a run reads, in one value ([`FlowRun`]), and what the
//! executors build from it: the connections a flow reads and writes through
//! ([`Bound`]), its mapping, and the checkpoint saving its state in the job.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use super::log::RunLog;
use super::watch::{Watch, ATTEMPTS};
use crate::dead_letters::sink::FlowDeadLetters;
use crate::repo::{keys, lookups, records};
use crate::request_gate;
use crate::Hub;
use ferry_core::error::{Error, Result};
use ferry_core::manifest::{ConnectorDef, Flow, Manifest, Mapping, Source, Target};
use ferry_core::model::{
    AuthKind, Connection, ConnectionStatus, Job, MappedWith, RecordedMapping, Release, Run, RunConfig,
};
use ferry_core::ports::{Condition, SecretFields, StoreError};
use ferry_engine::flow::{Checkpoint, FlowState};
use ferry_engine::redact::Redactor;
use ferry_engine::source::Endpoint;
use ferry_engine::throttle::{Rate, Throttle};

/// One slice of a run of a job's release, as the executors see it.
pub(crate) struct FlowRun<'a> {
    pub(super) hub: &'a Hub,
    /// The run's record: executors set its counters, error and resume point.
    pub(super) run: &'a mut Run,
    pub(super) job: &'a Job,
    /// The release the run recorded (the job's, when its first slice started).
    pub(super) release: &'a Release,
    /// What the run executes with (`super::snapshot`); `job` carries its
    /// connections, configs and mappings, this the mapping versions.
    pub(super) recorded: &'a RunConfig,
    pub(super) watch: &'a Arc<Watch>,
    /// When this slice stops starting pages (an invocation's deadline, the host's slice).
    pub(super) stop_at: Option<Instant>,
    pub(super) log: &'a RunLog,
    /// Every secret the job could reach when the run started (what process
    /// output and dead letters are masked with).
    pub(super) redactor: &'a Redactor,
}

impl FlowRun<'_> {
    pub(super) fn manifest(&self) -> &Manifest {
        &self.release.manifest
    }

    /// The connectors a flow reads and writes through, bound to the job's
    /// connections with fresh credentials. Bound once per attempt of the
    /// flow: a retry after an OAuth refresh binds again.
    pub(super) async fn bind_flow(&self, flow: &Flow) -> Result<Bindings> {
        let mut bound = BTreeMap::new();
        for connector in flow_connectors(self.manifest(), flow) {
            if !bound.contains_key(connector) {
                bound.insert(connector.to_owned(), self.hub.bind(self.job, self.manifest(), connector).await?);
            }
        }
        Ok(Bindings { tenant: self.job.tenant.clone(), bound })
    }

    /// The flow's mapping: the job's override as the run recorded it (a
    /// mapping configuration at its recorded version, or inline), else the
    /// manifest's.
    pub(super) async fn flow_mapping(&self, flow: &Flow) -> Result<Option<Mapping>> {
        Ok(match self.recorded.mappings.get(&flow.name) {
            Some(RecordedMapping::Configured { mapping, version }) => Some(
                super::snapshot::mapping_version(self.hub.store(), &self.job.tenant, mapping, *version)
                    .await?
                    .to_mapping(),
            ),
            Some(RecordedMapping::Inline { mapping }) => Some(mapping.clone()),
            None => flow.mapping.clone(),
        })
    }

    /// The mapping a flow's records are mapped with in this run, as its dead letters record it.
    pub(super) fn mapped_with(&self, flow: &Flow) -> MappedWith {
        match self.recorded.mappings.get(&flow.name) {
            Some(RecordedMapping::Configured { mapping, version }) => {
                MappedWith::Configured { mapping: mapping.clone(), version: *version }
            }
            Some(RecordedMapping::Inline { .. }) => MappedWith::Inline { run: self.run.id.clone() },
            None if flow.mapping.is_some() => MappedWith::Release { release: self.release.number },
            None => MappedWith::None,
        }
    }

    /// Where a flow of this run keeps the records it cannot deliver.
    pub(super) fn dead_letters(&self, flow: &Flow) -> FlowDeadLetters {
        FlowDeadLetters {
            store: self.hub.store.clone(),
            files: self.hub.files.clone(),
            ids: self.hub.ids.clone(),
            clock: self.hub.clock.clone(),
            redactor: self.redactor.clone(),
            tenant: self.job.tenant.clone(),
            job: self.job.id.clone(),
            run: self.run.id.clone(),
            flow: flow.name.clone(),
            mapped_with: self.mapped_with(flow),
        }
    }

    /// The checkpoint saving a flow's state into the job after each page.
    pub(super) fn checkpoint<'c>(&'c self, flow: &'c Flow, skip: bool) -> JobState<'c> {
        JobState { hub: self.hub, tenant: &self.job.tenant, job: &self.job.id, flow: &flow.name, skip }
    }
}

/// The connectors a flow uses: its parent's source (a substream's
/// partitions), its source and its target, in that order.
fn flow_connectors<'m>(manifest: &'m Manifest, flow: &'m Flow) -> Vec<&'m str> {
    let mut connectors = source_connectors(manifest, flow);
    if let Target::Http { connector, .. } = &flow.target {
        connectors.push(connector.as_str());
    }
    connectors
}

/// The connectors a flow reads through: its parent's source (a substream's
/// partitions) and its own.
pub(super) fn source_connectors<'m>(manifest: &'m Manifest, flow: &'m Flow) -> Vec<&'m str> {
    let mut connectors = Vec::new();
    if let Source::Http { connector, partition, .. } = &flow.source {
        let parent = partition.as_ref().and_then(|p| manifest.flows.iter().find(|f| f.name == p.flow));
        if let Some(Source::Http { connector, .. }) = parent.map(|f| &f.source) {
            connectors.push(connector.as_str());
        }
        connectors.push(connector.as_str());
    }
    connectors
}

/// A flow's connectors, bound.
pub(super) struct Bindings {
    /// The job's tenant, which names the connectors' request budgets.
    tenant: String,
    bound: BTreeMap<String, Bound>,
}

impl Bindings {
    pub(super) fn get(&self, connector: &str) -> Result<&Bound> {
        self.bound.get(connector).ok_or_else(|| Error::Internal(format!("connector `{connector}` was not bound")))
    }

    pub(super) fn endpoint(&self, connector: &str) -> Result<Endpoint<'_>> {
        Ok(self.get(connector)?.endpoint(&self.tenant, connector))
    }

    /// The connection bound to `connector`, if it was marked as needing attention.
    pub(super) fn needing_attention(&self, connector: &str) -> Option<&str> {
        self.bound.get(connector)?.needs_attention.as_deref()
    }
}

/// A manifest connector bound to a connection: where requests go, how they
/// authenticate, the connection's settings and credentials.
pub(crate) struct Bound {
    base_url: String,
    auth: AuthKind,
    def: Option<ConnectorDef>,
    pub(crate) settings: serde_json::Map<String, Value>,
    secrets: SecretFields,
    /// The bound connection's id and `max_concurrent`, if it sets one.
    in_flight: Option<(String, u32)>,
    /// The bound connection's id, if its status said it needs attention for
    /// a reason a run can disprove (a refused key, a failed test request):
    /// a flow its service answers marks it connected again.
    needs_attention: Option<String>,
}

impl Bound {
    fn endpoint<'a>(&'a self, tenant: &str, connector: &str) -> Endpoint<'a> {
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
            throttle: self.throttle(tenant, connector),
            max_response_bytes: self.def.as_ref().and_then(|d| d.max_response_bytes).map(|n| n as usize),
        }
    }
}

impl Bound {
    /// The request budget of the tenant's requests to the connector's
    /// provider, and the bound connection's in-flight limit.
    fn throttle(&self, tenant: &str, connector: &str) -> Throttle {
        let (provider, rate) = budget(self.def.as_ref(), connector);
        Throttle {
            budget: Some((request_gate::budget_key(tenant, provider), rate)),
            in_flight: self
                .in_flight
                .as_ref()
                .map(|(connection, max)| (request_gate::in_flight_key(tenant, connection), *max)),
        }
    }
}

impl Hub {
    /// The connection bound to a manifest connector, with its credentials.
    async fn bind(&self, job: &Job, manifest: &Manifest, connector: &str) -> Result<Bound> {
        let def = manifest.connectors.definition(connector).cloned();
        let (settings, approved, auth, secrets, in_flight, needs_attention) = match job.connections.get(connector) {
            Some(id) => {
                let conn = self.connections().get_connection(&job.tenant, id).await?;
                // OAuth2 tokens expiring soon are refreshed first (single-flight across processes).
                let secrets = self.connections().fresh_credentials(&conn, None).await?;
                let auth = def.as_ref().and_then(|d| d.auth).unwrap_or(conn.auth_kind);
                let in_flight = conn.max_concurrent.map(|max| (conn.id.clone(), max));
                let needs_attention = disprovable_error(&conn).then(|| conn.id.clone());
                (conn.settings, conn.base_url_approved, auth, secrets, in_flight, needs_attention)
            }
            None => (
                Default::default(),
                None,
                def.as_ref().and_then(|d| d.auth).unwrap_or(AuthKind::None),
                SecretFields::new(),
                None,
                None,
            ),
        };
        let base_url = crate::origins::base_url(manifest, connector, &settings, approved.as_deref())?;
        Ok(Bound { base_url, auth, def, settings, secrets, in_flight, needs_attention })
    }
}

/// An `error` status a working request disproves. A failed OAuth refresh is
/// not one: only the next refresh can clear it (`refresh`).
pub(super) fn disprovable_error(conn: &Connection) -> bool {
    conn.status == ConnectionStatus::Error && conn.refresh_failures == 0
}

/// The connector's request budget: whose it is (the catalogue provider the
/// connector names, else the connector's own name: two connectors of one
/// provider share one budget) and its rate (the manifest's `rate_limit`,
/// else the provider catalogue's hint, else 20 requests per second).
fn budget<'d>(def: Option<&'d ConnectorDef>, connector: &'d str) -> (&'d str, Rate) {
    let provider = def.and_then(|d| d.provider.as_deref()).unwrap_or(connector);
    (provider, rate(def, provider))
}

fn rate(def: Option<&ConnectorDef>, provider: &str) -> Rate {
    if let Some(r) = def.and_then(|d| d.rate_limit) {
        return Rate { per_second: r.per_second, burst: r.burst.unwrap_or(r.per_second.max(1.0)) };
    }
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

/// Saves a flow's state into the job after each page.
pub(super) struct JobState<'a> {
    hub: &'a Hub,
    tenant: &'a str,
    job: &'a str,
    flow: &'a str,
    /// Keeps no state (a full read of a flow without a cursor, webhook flows).
    skip: bool,
}

impl<'a> JobState<'a> {
    pub(super) fn new(hub: &'a Hub, tenant: &'a str, job: &'a str, flow: &'a str) -> Self {
        Self { hub, tenant, job, flow, skip: false }
    }
}

#[async_trait::async_trait]
impl Checkpoint for JobState<'_> {
    async fn save(&mut self, state: &FlowState) -> Result<()> {
        if self.skip {
            return Ok(());
        }
        let value = serde_json::to_value(state).map_err(|e| Error::Internal(e.to_string()))?;
        for _ in 0..ATTEMPTS {
            let current = lookups::job(self.hub.store(), self.tenant, self.job).await?;
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
