//! Jobs: a tenant's instance of an integration. A job pins a release (or a
//! channel resolved at use), binds the manifest's connectors to the tenant's
//! connections, and carries configs and per-flow mappings. Every create and
//! update is validated against the release the job resolves to; reads report
//! what no longer holds (a channel moved to a release the job does not fit).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Deserializer};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use crate::execution::RunControl;
use crate::repo::{keys, lookups, records, Page, PageRequest};
use crate::Notifications;
use ferry_core::error::{Error, Result};
use ferry_core::manifest::checks::{self, escape};
use ferry_core::manifest::{Manifest, Schedule};
use ferry_core::model::ids::{is_valid_id, is_valid_name};
use ferry_core::model::{
    Channel, Connection, DynamicOptions, Integration, Job, JobMapping, JobProblem, JobView, Release, ReleasePin, Tenant,
};
use ferry_core::ports::{Clock, Condition, IdGen, Key, Scheduler, Store, StoreError, WriteOp, MAX_WRITE_OPS};
use ferry_core::schedule::Plan;

/// Jobs: a tenant's instances of integrations, validated against the release
/// they resolve to (here), and their schedules (`schedules.rs`: keeping the
/// scheduler port in step, firing a tick, reconciling). A fired tick and a
/// resumed job's held deliveries become runs through run execution (`runs`:
/// `start_or_bundle`, `serve_held_deliveries`); a created job emits an event
/// (`notifications`).
#[derive(Clone, Copy)]
pub struct Jobs<'h> {
    pub(crate) store: &'h dyn Store,
    pub(crate) clock: &'h dyn Clock,
    pub(crate) ids: &'h dyn IdGen,
    pub(crate) scheduler: Option<&'h dyn Scheduler>,
    pub(crate) notifications: Notifications<'h>,
    pub(crate) runs: &'h dyn RunControl,
}

const ATTEMPTS: usize = 5;

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewJob {
    /// Unique (case-insensitively) within the tenant.
    pub name: String,
    /// The integration's name.
    pub integration: String,
    /// `{"kind": "specific", "number": 3}` or `{"kind": "channel", "channel": "default" | "latest"}`
    /// (default: channel `default`).
    #[serde(default)]
    pub release: ReleasePin,
    /// Manifest connector name → connection id of this tenant.
    #[serde(default)]
    pub connections: BTreeMap<String, String>,
    /// Config values; must satisfy the release's config schema.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub configs: Map<String, Value>,
    /// Flow name → `{"mapping": "<mapping id>"}` or an inline mapping (`{"fields": {...}}`).
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, Object>)]
    pub mappings: BTreeMap<String, JobMapping>,
    /// `{"preset": "daily", "at": "09:00", "timezone": "UTC"}` or `{"cron": "0 * * * *"}`;
    /// default: the manifest's `schedule.default`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub schedule: Option<Schedule>,
    /// Create the job paused (no scheduled runs).
    #[serde(default)]
    pub paused: bool,
}

/// Fields to change; omitted fields stay. `dynamic_options` and `state` are
/// maintained by runs and cannot be set here.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobPatch {
    pub name: Option<String>,
    pub release: Option<ReleasePin>,
    /// Replaces all bindings.
    pub connections: Option<BTreeMap<String, String>>,
    /// Replaces all config values.
    #[schema(value_type = Option<Object>)]
    pub configs: Option<Map<String, Value>>,
    /// Replaces all mappings.
    #[schema(value_type = Option<BTreeMap<String, Object>>)]
    pub mappings: Option<BTreeMap<String, JobMapping>>,
    /// A schedule, or `null` to remove it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub schedule: Option<Option<Schedule>>,
    pub paused: Option<bool>,
}

/// Tells `"schedule": null` (remove) apart from an absent field (keep).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> std::result::Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(serde::Serialize, serde::Deserialize)]
struct NameClaim {
    id: String,
}

/// A problem found while validating a job; the first one is the error of a
/// refused create or update, all of them are the `problems` of a read.
#[derive(Debug, Clone)]
pub(crate) struct Problem {
    code: &'static str,
    pub(crate) message: String,
    details: Option<Value>,
}

impl Problem {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), details: None }
    }
    fn into_error(self) -> Error {
        match self.details {
            Some(details) => Error::invalid_with(self.code, self.message, details),
            None => Error::Invalid { code: self.code, message: self.message },
        }
    }
    fn view(&self) -> JobProblem {
        JobProblem { code: self.code.to_owned(), message: self.message.clone(), details: self.details.clone() }
    }
}

/// What a job's pin resolves to now.
struct Resolution {
    number: u32,
    release: Arc<Release>,
}

/// Reads integrations and releases once per request, however many jobs use them.
#[derive(Default)]
struct Cache {
    integrations: HashMap<String, Option<Arc<Integration>>>,
    releases: HashMap<(String, u32), Option<Arc<Release>>>,
    tenant_paused: HashMap<String, bool>,
}

fn pin_text(pin: &ReleasePin) -> String {
    match pin {
        ReleasePin::Specific { number } => format!("release {number}"),
        ReleasePin::Channel { channel: Channel::Default } => "channel `default`".to_owned(),
        ReleasePin::Channel { channel: Channel::Latest } => "channel `latest`".to_owned(),
    }
}

/// The dynamic `$ref` of a schema: `Some(Some(definition))` for
/// `#/definitions/<name>`, `Some(None)` for Pandium's `#/metadata/...` options
/// (which Ferry has no values for), `None` when the schema has no such `$ref`.
fn dynamic_ref(schema: &Map<String, Value>) -> Option<Option<String>> {
    let r = schema.get("$ref")?.as_str()?;
    if let Some(name) = r.strip_prefix("#/definitions/") {
        Some(Some(name.to_owned()))
    } else if r.starts_with("#/metadata/") {
        Some(None)
    } else {
        None
    }
}

/// Replaces a dynamic `$ref` in `target` by the job's options for it. Returns
/// false when there are none yet: the value is then only type-checked, and the
/// caller makes the property optional, because Pandium's dynamic options exist
/// only after an init run.
fn substitute(
    target: &mut Map<String, Value>,
    definition: Option<&str>,
    defs: &Map<String, Value>,
    options: &DynamicOptions,
) -> bool {
    target.remove("$ref");
    if !target.contains_key("type") {
        // Keep the property's own type; the placeholder's when the property has none.
        if let Some(t) = definition.and_then(|d| defs.get(d)).and_then(|d| d.get("type")) {
            target.insert("type".into(), t.clone());
        }
    }
    let Some(opts) = definition.and_then(|d| options.get(d)) else {
        return false;
    };
    let titled = !opts.is_empty() && opts.iter().all(|o| o.get("const").is_some());
    if titled {
        target.insert("oneOf".into(), Value::Array(opts.clone()));
    } else {
        target.insert("enum".into(), Value::Array(opts.clone()));
    }
    true
}

/// The JSON Schema a job's configs must satisfy on a manifest: Pandium's dialect
/// made standard, with each property's dynamic `$ref` replaced by the job's own
/// options (the manifest's definitions are only placeholders shared by every job).
pub fn effective_config_schema(manifest: &Manifest, options: &DynamicOptions) -> Option<Value> {
    effective_config_schema_with_pending(manifest, options).map(|(schema, _)| schema)
}

/// [`effective_config_schema`], and the dynamic configs that have no options
/// yet (optional until an init run provides them).
pub fn effective_config_schema_with_pending(
    manifest: &Manifest,
    options: &DynamicOptions,
) -> Option<(Value, Vec<String>)> {
    let configs = manifest.configs.as_ref()?;
    let mut schema = checks::pandium_to_json_schema(&configs.schema);
    let defs = schema.get("definitions").and_then(Value::as_object).cloned().unwrap_or_default();
    let mut optional = Vec::new();
    if let Some(Value::Object(props)) = schema.get_mut("properties") {
        for (name, prop) in props.iter_mut() {
            let Value::Object(p) = prop else { continue };
            let has_options = if let Some(def) = dynamic_ref(p) {
                substitute(p, def.as_deref(), &defs, options)
            } else if let Some(Value::Object(items)) = p.get_mut("items") {
                // A multi-select: an array whose items are the dynamic options.
                match dynamic_ref(items) {
                    Some(def) => substitute(items, def.as_deref(), &defs, options),
                    None => true,
                }
            } else {
                true
            };
            if !has_options {
                optional.push(name.clone());
            }
        }
    }
    if let Some(Value::Array(required)) = schema.get_mut("required") {
        required.retain(|r| r.as_str().is_none_or(|r| !optional.iter().any(|o| o == r)));
    }
    Some((schema, optional))
}

/// Validates configs against a release's config schema; the problems name paths, never values.
pub fn config_problems(
    integration: &str,
    number: u32,
    manifest: &Manifest,
    configs: &Map<String, Value>,
    options: &DynamicOptions,
) -> Vec<Value> {
    let Some(schema) = effective_config_schema(manifest, options) else {
        return configs
            .keys()
            .map(|k| json!({"path": format!("/{}", escape(k)), "message": "the release declares no configs"}))
            .collect();
    };
    let validator = match jsonschema::validator_for(&schema) {
        Ok(v) => v,
        Err(e) => {
            return vec![
                json!({"path": "", "message": format!("the config schema of {integration} release {number} does not compile: {}", e.masked())}),
            ]
        }
    };
    let instance = Value::Object(configs.clone());
    validator
        .iter_errors(&instance)
        .map(|e| {
            let mut problem = json!({"path": e.instance_path().to_string(), "message": e.masked().to_string()});
            // A missing property is reported at its parent: name it, so a form can show it beside its field.
            if let jsonschema::error::ValidationErrorKind::Required { property: Value::String(p) } = e.kind() {
                problem["property"] = Value::String(p.clone());
            }
            problem
        })
        .collect()
}

/// The schedule must compile, and be one the release's manifest offers; the
/// rules are those of manifest validation and the scheduler (`schedule::rules`).
pub(crate) fn check_schedule(integration: &str, manifest: &Manifest, schedule: &Schedule, out: &mut Vec<Problem>) {
    let offered = |_| match &manifest.schedule {
        Some(spec) => ferry_core::schedule::offered(spec, schedule, &format!("integration '{integration}'")),
        None => Ok(()),
    };
    if let Err(e) = Plan::compile(schedule).and_then(offered) {
        out.push(Problem::new("invalid_schedule", e.message));
    }
}

fn check_name(name: &str) -> Result<()> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(Error::invalid("invalid_name", "name must be 1 to 200 characters without control characters"))
    }
}

fn flow_names(manifest: &Manifest) -> Vec<&str> {
    manifest.flows.iter().map(|f| f.name.as_str()).collect()
}

/// A job whose pin names no release cannot run, take deliveries or show its hook.
pub(crate) fn no_release() -> Error {
    Error::invalid("unknown_release", "the job's release pin resolves to no release")
}

impl Jobs<'_> {
    async fn cached_integration(&self, cache: &mut Cache, name: &str) -> Result<Option<Arc<Integration>>> {
        if let Some(i) = cache.integrations.get(name) {
            return Ok(i.clone());
        }
        let found =
            if is_valid_id(name) { lookups::find_integration(self.store, name).await?.map(Arc::new) } else { None };
        cache.integrations.insert(name.to_owned(), found.clone());
        Ok(found)
    }

    async fn cached_release(&self, cache: &mut Cache, integration: &str, number: u32) -> Result<Option<Arc<Release>>> {
        let key = (integration.to_owned(), number);
        if let Some(r) = cache.releases.get(&key) {
            return Ok(r.clone());
        }
        let found = lookups::find_release(self.store, integration, number).await?.map(Arc::new);
        cache.releases.insert(key, found.clone());
        Ok(found)
    }

    /// Resolves the job's pin, or says why it cannot be.
    async fn resolve(&self, cache: &mut Cache, job: &Job) -> Result<std::result::Result<Resolution, Problem>> {
        let Some(integration) = self.cached_integration(cache, &job.integration).await? else {
            return Ok(Err(Problem::new(
                "unknown_integration",
                format!("there is no integration '{}'; see GET /v1/integrations", job.integration),
            )));
        };
        let Some(number) = lookups::resolve_pin(&integration, &job.release) else {
            return Ok(Err(Problem::new(
                "unknown_release",
                format!("{} of integration '{}' names no release", pin_text(&job.release), job.integration),
            )));
        };
        match self.cached_release(cache, &job.integration, number).await? {
            Some(release) => Ok(Ok(Resolution { number, release })),
            None => Ok(Err(Problem::new(
                "unknown_release",
                format!(
                    "integration '{}' has no release {number} (releases 1 to {})",
                    job.integration, integration.latest_release
                ),
            ))),
        }
    }

    async fn connection_problems(&self, job: &Job, r: &Resolution, out: &mut Vec<Problem>) -> Result<()> {
        let connectors = &r.release.manifest.connectors;
        let declared = connectors.names();
        for name in &declared {
            if connectors.is_required(name) && !job.connections.contains_key(*name) {
                out.push(Problem::new(
                    "missing_connection",
                    format!(
                        "release {} needs a connection for connector `{name}`: bind one of provider `{}` in `connections`",
                        r.number,
                        connectors.provider(name)
                    ),
                ));
            }
        }
        for (name, id) in &job.connections {
            if !connectors.contains(name) {
                out.push(Problem::new(
                    "unknown_connector",
                    format!(
                        "release {} declares no connector `{name}` (it declares: {})",
                        r.number,
                        if declared.is_empty() { "none".to_owned() } else { declared.join(", ") }
                    ),
                ));
                continue;
            }
            let conn = if is_valid_id(id) {
                records::get::<Connection>(self.store, &keys::connection(&job.tenant, id)).await?.map(|v| v.value)
            } else {
                None
            };
            let Some(conn) = conn else {
                out.push(Problem::new(
                    "unknown_connection",
                    format!(
                        "connector `{name}` is bound to '{id}', which is not a connection of tenant '{}'",
                        job.tenant
                    ),
                ));
                continue;
            };
            let provider = connectors.provider(name);
            if conn.connector != provider {
                out.push(Problem::new(
                    "connector_mismatch",
                    format!(
                        "connector `{name}` needs a `{provider}` connection, but '{id}' is a `{}` connection",
                        conn.connector
                    ),
                ));
            }
        }
        Ok(())
    }

    async fn mapping_problems(&self, job: &Job, r: &Resolution, out: &mut Vec<Problem>) -> Result<()> {
        let flows = flow_names(&r.release.manifest);
        for (flow, mapping) in &job.mappings {
            if !flows.contains(&flow.as_str()) {
                out.push(Problem::new(
                    "unknown_flow",
                    format!(
                        "release {} has no flow `{flow}` to map (its flows: {})",
                        r.number,
                        if flows.is_empty() { "none".to_owned() } else { flows.join(", ") }
                    ),
                ));
                continue;
            }
            match mapping {
                JobMapping::Configured(m) => {
                    let exists = is_valid_id(&m.mapping)
                        && self.store.get(&keys::mapping(&job.tenant, &m.mapping)).await?.is_some();
                    if !exists {
                        out.push(Problem::new(
                            "unknown_mapping",
                            format!(
                                "flow `{flow}` uses mapping '{}', which is not a mapping of tenant '{}'",
                                m.mapping, job.tenant
                            ),
                        ));
                    }
                }
                JobMapping::Inline(m) => {
                    let mut findings = Vec::new();
                    checks::check_mapping(m, &format!("/mappings/{}", escape(flow)), &mut findings);
                    if let Some(first) = findings.first() {
                        let message = format!("the mapping of flow `{flow}` is not valid: {}", first.message);
                        let details = findings
                            .iter()
                            .map(|f| json!({"path": f.pointer, "code": f.code, "message": f.message, "help": f.help}))
                            .collect();
                        let code = checks::mapping_error_code(&findings);
                        out.push(Problem { code, message, details: Some(Value::Array(details)) });
                    }
                }
            }
        }
        Ok(())
    }

    /// Every problem of `job` against what its pin resolves to now.
    async fn job_problems(&self, cache: &mut Cache, job: &Job) -> Result<(Option<u32>, Vec<Problem>)> {
        let r = match self.resolve(cache, job).await? {
            Ok(r) => r,
            Err(p) => return Ok((None, vec![p])),
        };
        let mut out = Vec::new();
        self.connection_problems(job, &r, &mut out).await?;
        let errors =
            config_problems(&job.integration, r.number, &r.release.manifest, &job.configs, &job.dynamic_options);
        if !errors.is_empty() {
            let first = errors.first().and_then(|e| e["message"].as_str()).unwrap_or("");
            let at = errors.first().and_then(|e| e["path"].as_str()).filter(|p| !p.is_empty());
            out.push(Problem {
                code: "invalid_configs",
                message: format!(
                    "the configs do not satisfy the config schema of {} release {}: {}{first} (all problems are in `details`)",
                    job.integration,
                    r.number,
                    at.map(|p| format!("at {p}: ")).unwrap_or_default(),
                ),
                details: Some(Value::Array(errors)),
            });
        }
        self.mapping_problems(job, &r, &mut out).await?;
        if let Some(s) = &job.schedule {
            check_schedule(&job.integration, &r.release.manifest, s, &mut out);
        }
        Ok((Some(r.number), out))
    }

    async fn view(&self, cache: &mut Cache, job: &Job) -> Result<JobView> {
        let (resolved, problems) = self.job_problems(cache, job).await?;
        let view = JobView::new(job, resolved, problems.iter().map(Problem::view).collect());
        self.preview(cache, job, view).await
    }

    /// Adds the schedule in words and its next fire times to a job's view.
    async fn preview(&self, cache: &mut Cache, job: &Job, mut view: JobView) -> Result<JobView> {
        let Some(plan) = job.schedule.as_ref().and_then(|s| Plan::compile(s).ok()) else { return Ok(view) };
        view.schedule_text = Some(plan.describe());
        let tenant_paused = match cache.tenant_paused.get(&job.tenant) {
            Some(p) => *p,
            None => {
                let p = lookups::find_tenant(self.store, &job.tenant).await?.is_some_and(|t| t.paused);
                cache.tenant_paused.insert(job.tenant.clone(), p);
                p
            }
        };
        if !job.paused && !tenant_paused {
            view.next_runs = plan.upcoming(self.clock.now(), 5);
        }
        Ok(view)
    }

    /// Conditions that keep the job's references alive until it is written, and
    /// the marker write that makes deletes of referenced records re-check.
    fn reference_ops(&self, job: &Job) -> Result<Vec<WriteOp>> {
        let mut keys: BTreeSet<Key> = BTreeSet::new();
        for id in job.connections.values() {
            keys.insert(keys::connection(&job.tenant, id));
        }
        for m in job.mappings.values() {
            if let JobMapping::Configured(r) = m {
                keys.insert(keys::mapping(&job.tenant, &r.mapping));
            }
        }
        // Room for the job, two name-claim ops and the marker.
        if keys.len() + 4 > MAX_WRITE_OPS {
            return Err(Error::invalid(
                "too_many_references",
                "a job may use at most 96 distinct connections and mappings",
            ));
        }
        let mut ops: Vec<WriteOp> =
            keys.into_iter().map(|key| WriteOp::Check { key, condition: Condition::Exists }).collect();
        ops.push(records::put(keys::job_refs_marker(&job.tenant), &json!({}), Condition::None)?);
        Ok(ops)
    }

    #[tracing::instrument(skip_all, fields(tenant, job))]
    pub async fn create_job(&self, tenant: &str, input: NewJob) -> Result<JobView> {
        check_name(&input.name)?;
        let id = self.ids.next_id();
        tracing::Span::current().record("tenant", tenant).record("job", id.as_str());
        let now = self.clock.now();
        let mut job = Job {
            id: id.clone(),
            tenant: tenant.to_owned(),
            name: input.name.clone(),
            integration: input.integration,
            release: input.release,
            connections: input.connections,
            configs: input.configs,
            mappings: input.mappings,
            schedule: input.schedule,
            paused: input.paused,
            dynamic_options: DynamicOptions::new(),
            state: json!({}),
            metadata: Value::Null,
            created_at: now,
            updated_at: now,
        };
        let mut cache = Cache::default();
        if job.schedule.is_none() {
            if let Ok(r) = self.resolve(&mut cache, &job).await? {
                job.schedule = r.release.manifest.schedule.as_ref().and_then(|s| s.default.clone());
            }
        }
        let (resolved, problems) = self.job_problems(&mut cache, &job).await?;
        if let Some(first) = problems.into_iter().next() {
            return Err(first.into_error());
        }
        let name_key = keys::job_name_claim(tenant, &job.name.to_lowercase());
        if self.store.get(&name_key).await?.is_some() {
            return Err(job_exists(tenant, &job.name));
        }
        let mut ops = vec![
            records::put(name_key, &NameClaim { id: id.clone() }, Condition::NotExists)?,
            records::put(keys::job(tenant, &id), &job, Condition::NotExists)?,
        ];
        ops.extend(self.reference_ops(&job)?);
        records::write_or_conflict(self.store, ops, || {
            Error::conflict(
                "conflict",
                "the job name was taken, or a connection or mapping it uses was deleted, meanwhile; retry",
            )
        })
        .await?;
        self.sync_job_schedule(&job).await;
        self.notifications
            .emit(
                ferry_core::ports::EventKind::JobCreated,
                Some(tenant),
                json!({"job": id, "name": job.name, "integration": job.integration}),
            )
            .await;
        self.preview(&mut cache, &job, JobView::new(&job, resolved, Vec::new())).await
    }

    /// [`held_because`] for a stored job.
    pub async fn job_held_because(&self, tenant: &str, job: &str) -> Result<Option<&'static str>> {
        let t = lookups::tenant(self.store, tenant).await?;
        let j = lookups::job(self.store, tenant, job).await?.value;
        Ok(held_because(&t, &j))
    }

    pub async fn get_job(&self, tenant: &str, id: &str) -> Result<JobView> {
        let job = lookups::job(self.store, tenant, id).await?.value;
        self.view(&mut Cache::default(), &job).await
    }

    pub async fn list_jobs(&self, tenant: &str, page: &PageRequest) -> Result<Page<JobView>> {
        let jobs = lookups::job_page(self.store, tenant, page).await?;
        let mut cache = Cache::default();
        let mut items = Vec::with_capacity(jobs.items.len());
        for job in &jobs.items {
            items.push(self.view(&mut cache, job).await?);
        }
        Ok(Page { items, next_cursor: jobs.next_cursor })
    }

    /// Every job of a tenant (tenants have few jobs; used by reference checks).
    pub async fn all_jobs(&self, tenant: &str) -> Result<Vec<Job>> {
        lookups::all_jobs(self.store, tenant).await
    }

    /// Whether one of the tenant's jobs satisfies `test`, reading at most
    /// `max_jobs` of them (store pages of 200): `None` when it stopped at that
    /// bound without finding one. For yes/no questions a page asks on every
    /// view (the console's onboarding checklist), which must not read every
    /// job of a tenant with thousands.
    pub async fn any_job(&self, tenant: &str, max_jobs: usize, test: impl Fn(&Job) -> bool) -> Result<Option<bool>> {
        let limit = u32::try_from(max_jobs).unwrap_or(records::MAX_PAGE).clamp(1, records::MAX_PAGE);
        let mut page = PageRequest { limit: Some(limit), cursor: None };
        let mut read = 0;
        loop {
            let p = lookups::job_page(self.store, tenant, &page).await?;
            if p.items.iter().any(&test) {
                return Ok(Some(true));
            }
            read += p.items.len();
            match p.next_cursor {
                Some(_) if read >= max_jobs => return Ok(None),
                Some(c) => page.cursor = Some(c),
                None => return Ok(Some(false)),
            }
        }
    }

    #[tracing::instrument(skip_all, fields(tenant = tenant, job = id))]
    pub async fn update_job(&self, tenant: &str, id: &str, patch: JobPatch) -> Result<JobView> {
        if let Some(name) = &patch.name {
            check_name(name)?;
        }
        let current = lookups::job(self.store, tenant, id).await?;
        let before = current.value.clone();
        let mut job = current.value;
        // Changes to what runs must leave a valid job. Pausing, renaming or
        // rescheduling a job a new release broke must stay possible, so those
        // are checked only for themselves.
        let substantive = patch.release.is_some()
            || patch.connections.is_some()
            || patch.configs.is_some()
            || patch.mappings.is_some();
        if let Some(v) = patch.release {
            job.release = v;
        }
        if let Some(v) = patch.connections {
            job.connections = v;
        }
        if let Some(v) = patch.configs {
            job.configs = v;
        }
        if let Some(v) = patch.mappings {
            job.mappings = v;
        }
        if let Some(v) = patch.schedule.clone() {
            job.schedule = v;
        }
        if let Some(v) = patch.paused {
            job.paused = v;
        }
        if let Some(v) = &patch.name {
            job.name = v.clone();
        }
        let mut cache = Cache::default();
        let (resolved, problems) = self.job_problems(&mut cache, &job).await?;
        let refusing = problems
            .iter()
            .find(|p| substantive || (patch.schedule.is_some() && p.code == "invalid_schedule"))
            .cloned();
        if let Some(p) = refusing {
            return Err(p.into_error());
        }
        job.updated_at = self.clock.now();
        let mut ops = Vec::new();
        if job.name.to_lowercase() != before.name.to_lowercase() {
            ops.push(records::put(
                keys::job_name_claim(tenant, &job.name.to_lowercase()),
                &NameClaim { id: id.to_owned() },
                Condition::NotExists,
            )?);
            ops.push(WriteOp::Delete {
                key: keys::job_name_claim(tenant, &before.name.to_lowercase()),
                condition: Condition::None,
            });
        }
        ops.push(records::put(keys::job(tenant, id), &job, Condition::VersionIs(current.version))?);
        if job.connections != before.connections || job.mappings != before.mappings {
            ops.extend(self.reference_ops(&job)?);
        }
        records::write_or_conflict(self.store, ops, || {
            Error::conflict(
                "conflict",
                "another job has that name, the job changed, or a connection or mapping it uses was deleted, meanwhile; retry",
            )
        })
        .await?;
        self.sync_job_schedule(&job).await;
        if before.paused && !job.paused {
            self.runs.serve_held_deliveries(tenant, id).await;
        }
        self.preview(&mut cache, &job, JobView::new(&job, resolved, problems.iter().map(Problem::view).collect())).await
    }

    #[tracing::instrument(skip_all, fields(tenant = tenant, job = id))]
    pub async fn delete_job(&self, tenant: &str, id: &str) -> Result<()> {
        let job = lookups::job(self.store, tenant, id).await?.value;
        self.store
            .write(vec![
                WriteOp::Delete { key: keys::job(tenant, id), condition: Condition::None },
                WriteOp::Delete {
                    key: keys::job_name_claim(tenant, &job.name.to_lowercase()),
                    condition: Condition::None,
                },
            ])
            .await?;
        self.unschedule_job(tenant, id).await;
        Ok(())
    }

    /// Stores the options of one dynamic config (what an init run found).
    /// Configs outside the new options show up in the job's `problems`.
    #[tracing::instrument(skip_all, fields(tenant = tenant, job = id, definition))]
    pub async fn set_dynamic_options(
        &self,
        tenant: &str,
        id: &str,
        definition: &str,
        options: Vec<Value>,
    ) -> Result<Job> {
        for _ in 0..ATTEMPTS {
            let current = lookups::job(self.store, tenant, id).await?;
            let mut job = current.value;
            job.dynamic_options.insert(definition.to_owned(), options.clone());
            job.updated_at = self.clock.now();
            let op = records::put(keys::job(tenant, id), &job, Condition::VersionIs(current.version))?;
            match self.store.write(vec![op]).await {
                Ok(()) => return Ok(job),
                Err(StoreError::ConditionFailed) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::conflict("concurrent_update", "the job kept changing while updating it; retry"))
    }

    /// Runs `delete` unless a job of the tenant references the record. The
    /// scan and the delete are tied by the job-references marker: a job write
    /// adding references in between bumps it, the delete's check fails, and
    /// the scan runs again and sees the new job.
    pub(crate) async fn delete_unreferenced(
        &self,
        tenant: &str,
        uses: impl Fn(&Job) -> bool,
        in_use: impl Fn(&[&Job]) -> Error,
        delete: Vec<WriteOp>,
    ) -> Result<()> {
        let marker = keys::job_refs_marker(tenant);
        for _ in 0..ATTEMPTS {
            let condition = match self.store.get(&marker).await? {
                Some(item) => Condition::VersionIs(item.version),
                None => Condition::NotExists,
            };
            let jobs = lookups::all_jobs(self.store, tenant).await?;
            let users: Vec<&Job> = jobs.iter().filter(|j| uses(j)).collect();
            if !users.is_empty() {
                return Err(in_use(&users));
            }
            let mut ops = vec![WriteOp::Check { key: marker.clone(), condition }];
            ops.extend(delete.iter().cloned());
            match self.store.write(ops).await {
                Ok(()) => return Ok(()),
                Err(StoreError::ConditionFailed) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::conflict("concurrent_update", "jobs of the tenant kept changing meanwhile; retry"))
    }
}

/// Why a job's automatic runs wait, if they do: scheduled ticks are skipped
/// and webhook deliveries held (stored, acknowledged, served on resume) while
/// the job or its tenant is paused, or its tenant archived (for good: an
/// archived tenant's hooks refuse deliveries, see [`Hooks::store_delivery`]).
/// "Run now" is not held: an operator may still run a paused job.
pub fn held_because(tenant: &Tenant, job: &Job) -> Option<&'static str> {
    if crate::tenants::ensure_writable(tenant).is_err() {
        Some("the tenant is archived")
    } else if tenant.paused {
        Some("the tenant is paused")
    } else if job.paused {
        Some("the job is paused")
    } else {
        None
    }
}

fn job_exists(tenant: &str, name: &str) -> Error {
    Error::conflict("job_exists", format!("tenant '{tenant}' already has a job named '{name}'"))
}

/// Names of jobs for an "in use" message (a few, then a count).
pub(crate) fn job_list(jobs: &[&Job]) -> String {
    let mut names: Vec<String> = jobs.iter().take(5).map(|j| format!("'{}' ({})", j.name, j.id)).collect();
    if jobs.len() > 5 {
        names.push(format!("and {} more", jobs.len() - 5));
    }
    names.join(", ")
}
