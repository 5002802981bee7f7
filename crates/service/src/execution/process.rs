//! Runs of process integrations (manifests with `run:`): builds the program
//! once per release, hands it Pandium's `PAN_*` environment, and turns its
//! exit, stderr and stdout into the run's status, logs, state, metadata and
//! dynamic config options.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::context::FlowRun;
use super::halt::{halt_error, halt_status};
use super::log::RunLog;
use super::watch::ATTEMPTS;
use crate::repo::{keys, lookups, records, PageRequest};
use crate::Hub;
use ferry_core::error::{Error, Result};
use ferry_core::manifest::Manifest;
use ferry_core::model::{Job, Release, Run, RunMode, RunStatus};
use ferry_core::ports::{Condition, Index, Query, StoreError};
use ferry_engine::process::{self, env_name, Exit, ProcessOutcome, ProcessSpec};
use ferry_engine::redact::Redactor;
use ferry_engine::sandbox::{self, SandboxMode, SandboxSpec};

/// Largest stdout state kept (it is stored with the run and in the job).
const MAX_STATE_BYTES: usize = 256 * 1024;
/// How many earlier runs are searched for the last (successful) one.
const HISTORY: u32 = 100;

impl FlowRun<'_> {
    /// Executes the release's program for the run; returns the run's status.
    pub(super) async fn execute_process(&mut self) -> Result<RunStatus> {
        let command = self.manifest().run.clone().ok_or_else(|| Error::Internal("not a process integration".into()))?;
        let workdir = self.hub.process_workdir(&self.job.integration)?;
        let (env, redact) = self.secrets_env().await?;
        if let Some(build) = &self.manifest().build {
            if !self.hub.build_once(build, &workdir, self.release, &redact, self.log).await? {
                self.run.error = Some("the integration's build command failed".into());
                return Ok(RunStatus::FailedIntegration);
            }
        }
        let tenant = lookups::tenant(self.hub.store(), &self.job.tenant).await?;
        let scratch = tempfile_dir(&self.run.id)?;
        let program = Program { command, workdir, env, redact, tenant_name: tenant.name };
        let status = self.run_program(program, &scratch).await;
        let _ = std::fs::remove_dir_all(&scratch);
        status
    }

    /// The configs and the credentials of every bound connector as
    /// `PAN_CFG_*` and `PAN_SEC_*`, and the redactor masking those credentials.
    async fn secrets_env(&self) -> Result<(Vec<(String, String)>, Redactor)> {
        let mut env = process::config_env(&self.job.configs);
        let mut redact = self.redactor.clone();
        for name in self.manifest().connectors.names() {
            let Some(id) = self.job.connections.get(name) else { continue };
            let conn = self.hub.connections().get_connection(&self.job.tenant, id).await?;
            let secrets = self.hub.connections().connection_credentials(&conn).await?.unwrap_or_default();
            crate::redaction::add_fields(&secrets, &mut redact);
            for (field, value) in secrets.0.iter() {
                let value = secrecy::ExposeSecret::expose_secret(value).to_owned();
                env.push((format!("PAN_SEC_{}_{}", env_name(name), env_name(field)), value));
            }
        }
        Ok((env, redact))
    }

    /// Runs the program with its whole environment in `scratch`, watched for
    /// a cancel, the run's budget and its lease.
    async fn run_program(&mut self, mut program: Program, scratch: &Path) -> Result<RunStatus> {
        let metadata_file = scratch.join("tenant-metadata.json");
        std::fs::write(&metadata_file, serde_json::to_vec(&metadata_or_empty(self.job)).unwrap_or_default())
            .map_err(|e| Error::Internal(format!("could not write the metadata file: {e}")))?;
        program.env.extend(self.context_env(&program.tenant_name));
        let sandbox = self.hub.sandbox_spec(&program.workdir, false, vec![metadata_file.clone()]);
        program.env.extend(match sandbox {
            Some(_) => vec![("PAN_CTX_TENANT_METADATA_FILE".to_owned(), sandbox::input_path(&metadata_file))],
            None => vec![
                ("PAN_CTX_TENANT_METADATA_FILE".to_owned(), metadata_file.display().to_string()),
                ("TMPDIR".to_owned(), scratch.display().to_string()),
            ],
        });
        program.env.extend(self.hub.last_runs_env(self.run, self.job).await?);
        self.log.push(format!("starting `{}`", program.command.split_whitespace().next().unwrap_or("")));
        let Program { command, workdir, env, redact, .. } = program;
        let timeout = self.hub.settings.process_timeout;
        let spec = ProcessSpec { command, workdir, env, timeout, redact, sandbox };
        // A process has no pages: the run's cancel, budget and lease are
        // checked beside it, and dropping `execute` kills the process.
        let outcome = tokio::select! {
            outcome = process::execute(&spec) => outcome,
            why = self.watch.until_halted() => {
                let error = halt_error(why, &self.hub.settings);
                self.log.push(format!("the integration was stopped: {error}"));
                self.run.error = Some(error);
                return Ok(halt_status(why));
            }
        };
        let outcome = outcome.map_err(|e| Error::Internal(e.to_string()))?;
        self.take_outcome(outcome, &spec.redact).await
    }

    /// `PAN_CTX_*`: who and what the program runs for.
    fn context_env(&self, tenant_name: &str) -> Vec<(String, String)> {
        let (run, job) = (&*self.run, self.job);
        let triggers: Vec<Value> = run
            .triggers
            .iter()
            .map(|t| json!({"source": t.source, "mode": run.mode, "at": t.at.to_rfc3339()}))
            .collect();
        let name = self.manifest().name.clone().unwrap_or_else(|| job.integration.clone());
        vec![
            ("PAN_CTX_INTEGRATION_ID".to_owned(), job.integration.clone()),
            ("PAN_CTX_INTEGRATION_NAME".to_owned(), name),
            ("PAN_CTX_TENANT_ID".to_owned(), job.tenant.clone()),
            ("PAN_CTX_TENANT_NAME".to_owned(), tenant_name.to_owned()),
            ("PAN_CTX_JOB_ID".to_owned(), job.id.clone()),
            ("PAN_CTX_RUN_ID".to_owned(), run.id.clone()),
            ("PAN_CTX_RUN_MODE".to_owned(), mode_name(run.mode).to_owned()),
            ("PAN_CTX_RUN_TRIGGERS".to_owned(), Value::Array(triggers).to_string()),
            ("PAN_CTX_ENV".to_owned(), self.hub.settings.environment.clone()),
        ]
    }

    /// Turns the program's exit, stderr and stdout into the run's status,
    /// log, output, the job's state and metadata, and dynamic options.
    async fn take_outcome(&mut self, outcome: ProcessOutcome, redact: &Redactor) -> Result<RunStatus> {
        self.log.extend(outcome.log.iter().cloned());
        if outcome.stdout_truncated {
            self.log.push(format!("stdout was larger than {} bytes; only its end was read", process::MAX_STDOUT));
        }
        // The state is shown by the job API and handed to later runs: no secret in it either.
        let mut state = outcome.stdout_json;
        if let Some(s) = state.as_mut() {
            redact.redact_json(s);
        }
        let size = state.as_ref().map(|s| s.to_string().len()).unwrap_or(0);
        if size > MAX_STATE_BYTES {
            self.run.error = Some(format!(
                "the JSON written to stdout is {size} bytes; at most {MAX_STATE_BYTES} are kept as state, so none was saved"
            ));
            return Ok(match outcome.exit {
                Exit::TimedOut => RunStatus::FailedTimeout,
                _ => RunStatus::FailedIntegration,
            });
        }
        if let Some(s) = &state {
            let op = records::put(keys::run_output(&self.run.tenant, &self.run.job, &self.run.id), s, Condition::None)?;
            self.hub.store().write(vec![op]).await?;
        }
        if let Some(failed) = self.failed_exit(outcome.exit) {
            return Ok(failed);
        }
        let Some(state) = state else {
            self.log.push("no JSON on stdout; the state is unchanged");
            return Ok(RunStatus::Succeeded);
        };
        self.keep_state(&state).await
    }

    /// The status of a program that did not exit successfully, its error recorded.
    fn failed_exit(&mut self, exit: Exit) -> Option<RunStatus> {
        let (status, error) = match exit {
            Exit::Success => return None,
            Exit::Failure(Some(c)) => (RunStatus::FailedIntegration, format!("the integration exited with status {c}")),
            Exit::Failure(None) => (RunStatus::FailedIntegration, "the integration was killed by a signal".to_owned()),
            Exit::TimedOut => (
                RunStatus::FailedTimeout,
                format!(
                    "the integration ran longer than {}s and was stopped",
                    self.hub.settings.process_timeout.as_secs()
                ),
            ),
        };
        self.run.error = Some(error);
        Some(status)
    }

    /// Keeps a successful program's stdout as the job's state (and metadata,
    /// once it matches the schema); an init run's options as dynamic options.
    async fn keep_state(&mut self, state: &Value) -> Result<RunStatus> {
        let manifest = self.manifest();
        if let Some(schema) = &manifest.metadata_schema {
            let problems = metadata_problems(&schema.schema, state);
            if !problems.is_empty() {
                for p in &problems {
                    self.log.push(format!("metadata: {p}"));
                }
                self.run.error = Some(format!(
                    "stdout does not match the metadata schema ({}); state and metadata are unchanged",
                    problems.join("; ")
                ));
                return Ok(RunStatus::FailedIntegration);
            }
        }
        self.hub.save_process_state(self.job, manifest, state).await?;
        if self.run.mode == RunMode::Init {
            for (definition, options) in dynamic_options(manifest, state) {
                let n = options.len();
                self.hub.jobs().set_dynamic_options(&self.job.tenant, &self.job.id, &definition, options).await?;
                self.log.push(format!("{n} options stored for `{definition}`"));
            }
        }
        Ok(RunStatus::Succeeded)
    }
}

/// A program about to run: its command, folder, environment so far and the
/// secrets its output is masked with.
struct Program {
    command: String,
    workdir: PathBuf,
    env: Vec<(String, String)>,
    redact: Redactor,
    tenant_name: String,
}

impl Hub {
    /// The folder a process integration is installed in on this host.
    fn process_workdir(&self, integration: &str) -> Result<PathBuf> {
        let root = self.settings.integrations_dir.as_ref().ok_or_else(|| {
            Error::Internal(
                "this host has no integrations directory for process integrations (set FERRY_INTEGRATIONS_DIR)".into(),
            )
        })?;
        let workdir = root.join(integration);
        if !workdir.is_dir() {
            return Err(Error::Internal(format!(
                "process integration `{integration}` is not installed on this host (no folder {})",
                workdir.display()
            )));
        }
        Ok(workdir)
    }

    /// Runs `build` when this release was not built in `workdir` yet. The
    /// marker names the release digest, so a new release builds again.
    async fn build_once(
        &self,
        build: &str,
        workdir: &Path,
        release: &Release,
        redact: &Redactor,
        log: &RunLog,
    ) -> Result<bool> {
        let marker = workdir.join(".ferry-build");
        if std::fs::read_to_string(&marker).is_ok_and(|d| d.trim() == release.digest) {
            return Ok(true);
        }
        log.push(format!("building release {}", release.number));
        let spec = ProcessSpec {
            // The build's stdout is not state; fold it into the log.
            command: format!("exec 1>&2; {build}"),
            workdir: workdir.to_owned(),
            env: vec![],
            timeout: self.settings.process_timeout,
            redact: redact.clone(),
            sandbox: self.sandbox_spec(workdir, true, Vec::new()),
        };
        let out = process::execute(&spec).await.map_err(|e| Error::Internal(e.to_string()))?;
        log.extend(out.log.iter().map(|l| format!("[build] {l}")));
        if out.exit != Exit::Success {
            return Ok(false);
        }
        std::fs::write(&marker, &release.digest)
            .map_err(|e| Error::Internal(format!("could not record the build: {e}")))?;
        Ok(true)
    }

    /// The sandbox a program of this host runs in, or `None` when the host
    /// turned sandboxing off. A build may write into its folder; a run may not.
    fn sandbox_spec(&self, workdir: &Path, build: bool, inputs: Vec<PathBuf>) -> Option<SandboxSpec> {
        match self.settings.process_sandbox {
            SandboxMode::Off => None,
            SandboxMode::Bubblewrap => Some(SandboxSpec {
                code: workdir.to_owned(),
                code_writable: build,
                host_network: self.settings.allow_private_network,
                inputs,
                // Its own network namespace: public https through the proxy.
                egress: (!self.settings.allow_private_network).then(|| self.net_policy()),
            }),
        }
    }

    /// `PAN_CTX_LAST_RUN_*` and `PAN_CTX_LAST_SUCCESSFUL_RUN_*` from the job's history.
    async fn last_runs_env(&self, run: &Run, job: &Job) -> Result<Vec<(String, String)>> {
        let q =
            Query::partition(Index::Primary, keys::runs_partition(&run.tenant, &run.job)).prefix("RUN#").descending();
        let page = records::list::<Run>(self.store(), q, &PageRequest { limit: Some(HISTORY), cursor: None }).await?;
        let finished = page.items.iter().filter(|r| r.id != run.id && r.status.is_finished());
        let mut env = Vec::new();
        let mut last = None;
        let mut last_ok = None;
        for r in finished {
            last = last.or(Some(r));
            if r.status == RunStatus::Succeeded {
                last_ok = Some(r);
                break;
            }
        }
        let fresh = run.options.reset_cursor;
        if let Some(r) = last {
            env.extend(times("PAN_CTX_LAST_RUN", r));
            if !fresh {
                if let Some(out) =
                    records::get::<Value>(self.store(), &keys::run_output(&r.tenant, &r.job, &r.id)).await?
                {
                    env.push(("PAN_CTX_LAST_RUN_STD_OUT".into(), out.value.to_string()));
                }
            }
        }
        if let Some(r) = last_ok {
            env.extend(times("PAN_CTX_LAST_SUCCESSFUL_RUN", r));
        }
        if !fresh && !job.state.is_null() && job.state != json!({}) {
            env.push(("PAN_CTX_LAST_SUCCESSFUL_RUN_STD_OUT".into(), job.state.to_string()));
        }
        Ok(env)
    }

    /// The job's state becomes the stdout JSON; metadata is shallow-merged.
    async fn save_process_state(&self, job: &Job, manifest: &Manifest, state: &Value) -> Result<()> {
        for _ in 0..ATTEMPTS {
            let current = lookups::job(self.store(), &job.tenant, &job.id).await?;
            let mut j = current.value;
            j.state = state.clone();
            if manifest.metadata_schema.is_some() {
                let mut merged = match std::mem::take(&mut j.metadata) {
                    Value::Object(m) => m,
                    _ => Map::new(),
                };
                if let Value::Object(m) = state {
                    merged.extend(m.clone());
                }
                j.metadata = Value::Object(merged);
            }
            let op = records::put(keys::job(&job.tenant, &job.id), &j, Condition::VersionIs(current.version))?;
            match self.store().write(vec![op]).await {
                Ok(()) => return Ok(()),
                Err(StoreError::ConditionFailed) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::conflict("concurrent_update", "the job kept changing while saving its state"))
    }
}

/// The job's metadata as the program reads it: always an object.
fn metadata_or_empty(job: &Job) -> Value {
    if job.metadata.is_object() {
        job.metadata.clone()
    } else {
        json!({})
    }
}

fn mode_name(mode: RunMode) -> &'static str {
    match mode {
        RunMode::Init => "init",
        RunMode::Normal => "normal",
        RunMode::Webhook => "webhook",
    }
}

/// Pandium's phase names.
fn phase(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Succeeded => "Succeeded",
        RunStatus::Partial => "Partial",
        RunStatus::FailedIntegration => "Failed (Integration Issue)",
        RunStatus::FailedPlatform => "Failed (Platform Issue)",
        RunStatus::FailedTimeout => "Failed (Timeout)",
        RunStatus::FailedRefresh => "Failed (Refresh)",
        RunStatus::Cancelled => "Cancelled",
        RunStatus::Queued | RunStatus::Running | RunStatus::Interrupted => "Running",
    }
}

/// Pandium's time format, e.g. `2021-07-24 20:04:21 +0000 UTC`.
fn pandium_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S +0000 UTC").to_string()
}

fn times(prefix: &str, r: &Run) -> Vec<(String, String)> {
    let mut v = vec![(format!("{prefix}_PHASE"), phase(r.status).to_owned())];
    if let Some(t) = r.started_at {
        v.push((format!("{prefix}_START_TIME"), pandium_time(t)));
    }
    if let Some(t) = r.ended_at {
        v.push((format!("{prefix}_COMPLETION_TIME"), pandium_time(t)));
    }
    v
}

fn metadata_problems(schema: &Value, instance: &Value) -> Vec<String> {
    let schema = ferry_core::manifest::checks::pandium_to_json_schema(schema);
    match jsonschema::validator_for(&schema) {
        Ok(v) => v.iter_errors(instance).map(|e| format!("{}: {}", e.instance_path(), e.masked())).collect(),
        Err(e) => vec![format!("the metadata schema does not compile: {}", e.masked())],
    }
}

/// Init-run stdout keys that name a config definition are its options.
fn dynamic_options(manifest: &Manifest, state: &Value) -> Vec<(String, Vec<Value>)> {
    let Some(defs) = manifest.configs.as_ref().and_then(|c| c.schema.get("definitions")).and_then(Value::as_object)
    else {
        return vec![];
    };
    let Value::Object(out) = state else { return vec![] };
    out.iter()
        .filter(|(k, _)| defs.contains_key(k.as_str()))
        .filter_map(|(k, v)| v.as_array().map(|a| (k.clone(), a.clone())))
        .collect()
}

/// A private scratch folder for one run (payload and metadata files, TMPDIR).
fn tempfile_dir(run: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("ferry-run-{run}"));
    std::fs::create_dir_all(&dir).map_err(|e| Error::Internal(format!("could not create {}: {e}", dir.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
    }
    Ok(dir)
}
