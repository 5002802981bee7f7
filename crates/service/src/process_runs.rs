//! Runs of process integrations (manifests with `run:`): builds the program
//! once per release, hands it Pandium's `PAN_*` environment, and turns its
//! exit, stderr and stdout into the run's status, logs, state, metadata and
//! dynamic config options.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::Hub;
use ferry_engine::process::{self, env_name, Exit, ProcessSpec};
use ferry_engine::redact::Redactor;
use ferry_engine::sandbox::{self, SandboxMode, SandboxSpec};
use ferry_core::error::{Error, Result};
use ferry_core::manifest::Manifest;
use ferry_core::model::{Job, Release, Run, RunMode, RunStatus};
use ferry_core::ports::{Condition, Index, Query, StoreError};
use crate::repo::{keys, records, PageRequest};

/// Largest stdout state kept (it is stored with the run and in the job).
pub const MAX_STATE_BYTES: usize = 256 * 1024;
const ATTEMPTS: usize = 8;
/// How many earlier runs are searched for the last (successful) one.
const HISTORY: u32 = 100;

impl Hub {
    /// Executes a process integration for `run`; returns the run's status.
    pub(super) async fn execute_process(
        &self,
        run: &mut Run,
        job: &Job,
        release: &Release,
        log: &mut Vec<String>,
        watch: &super::runs::Watch,
    ) -> Result<RunStatus> {
        let manifest = &release.manifest;
        let Some(command) = manifest.run.clone() else {
            return Err(Error::Internal("not a process integration".into()));
        };
        let root = self.settings.integrations_dir.as_ref().ok_or_else(|| {
            Error::Internal(
                "this host has no integrations directory for process integrations (set FERRY_INTEGRATIONS_DIR)".into(),
            )
        })?;
        let workdir = root.join(&job.integration);
        if !workdir.is_dir() {
            return Err(Error::Internal(format!(
                "process integration `{}` is not installed on this host (no folder {})",
                job.integration,
                workdir.display()
            )));
        }

        // Credentials of every bound connector, for the environment and for redaction.
        let mut env = process::config_env(&job.configs);
        let mut redact = self.job_redactor(job).await;
        for name in manifest.connectors.names() {
            let Some(id) = job.connections.get(name) else { continue };
            let conn = self.get_connection(&job.tenant, id).await?;
            let secrets = self.connection_credentials(&conn).await?.unwrap_or_default();
            super::redaction::add_fields(&secrets, &mut redact);
            for (field, value) in secrets.0.iter() {
                let value = secrecy::ExposeSecret::expose_secret(value).to_owned();
                env.push((format!("PAN_SEC_{}_{}", env_name(name), env_name(field)), value));
            }
        }

        if let Some(build) = &manifest.build {
            if !self.build_once(build, &workdir, release, &redact, log).await? {
                run.error = Some("the integration's build command failed".into());
                return Ok(RunStatus::FailedIntegration);
            }
        }

        let tenant = self.get_tenant(&job.tenant).await?;
        let scratch = tempfile_dir(&run.id)?;
        let metadata_file = scratch.join("tenant-metadata.json");
        std::fs::write(&metadata_file, serde_json::to_vec(&metadata_or_empty(job)).unwrap_or_default())
            .map_err(|e| Error::Internal(format!("could not write the metadata file: {e}")))?;
        let triggers: Vec<Value> = run
            .triggers
            .iter()
            .map(|t| json!({"source": t.source, "mode": run.mode, "at": t.at.to_rfc3339()}))
            .collect();
        env.extend([
            ("PAN_CTX_INTEGRATION_ID".to_owned(), job.integration.clone()),
            ("PAN_CTX_INTEGRATION_NAME".to_owned(), manifest.name.clone().unwrap_or_else(|| job.integration.clone())),
            ("PAN_CTX_TENANT_ID".to_owned(), tenant.id.clone()),
            ("PAN_CTX_TENANT_NAME".to_owned(), tenant.name.clone()),
            ("PAN_CTX_JOB_ID".to_owned(), job.id.clone()),
            ("PAN_CTX_RUN_ID".to_owned(), run.id.clone()),
            ("PAN_CTX_RUN_MODE".to_owned(), mode_name(run.mode).to_owned()),
            ("PAN_CTX_RUN_TRIGGERS".to_owned(), Value::Array(triggers).to_string()),
            ("PAN_CTX_ENV".to_owned(), self.settings.environment.clone()),
        ]);
        let sandbox = self.sandbox_spec(&workdir, false, vec![metadata_file.clone()]);
        env.extend(match sandbox {
            Some(_) => vec![("PAN_CTX_TENANT_METADATA_FILE".to_owned(), sandbox::input_path(&metadata_file))],
            None => vec![
                ("PAN_CTX_TENANT_METADATA_FILE".to_owned(), metadata_file.display().to_string()),
                ("TMPDIR".to_owned(), scratch.display().to_string()),
            ],
        });
        env.extend(self.last_runs_env(run, job).await?);

        log.push(format!("starting `{}`", command.split_whitespace().next().unwrap_or("")));
        let spec = ProcessSpec { command, workdir, env, timeout: self.settings.process_timeout, redact, sandbox };
        // A process has no pages: the run's cancel, budget and lease are
        // checked beside it, and dropping `execute` kills the process.
        let outcome = tokio::select! {
            outcome = process::execute(&spec) => outcome,
            why = watch.until_halted() => {
                let _ = std::fs::remove_dir_all(&scratch);
                log.push(format!("the integration was stopped: {}", super::runs::halt_error(why, &self.settings)));
                run.error = Some(super::runs::halt_error(why, &self.settings));
                return Ok(super::runs::halt_status(why));
            }
        };
        let redact = spec.redact;
        let _ = std::fs::remove_dir_all(&scratch);
        let outcome = outcome.map_err(|e| Error::Internal(e.to_string()))?;
        log.extend(outcome.log.iter().cloned());
        if outcome.stdout_truncated {
            log.push(format!("stdout was larger than {} bytes; only its end was read", process::MAX_STDOUT));
        }

        // The state is shown by the job API and handed to later runs: no secret in it either.
        let mut state = outcome.stdout_json;
        if let Some(s) = state.as_mut() {
            redact.redact_json(s);
        }
        let size = state.as_ref().map(|s| s.to_string().len()).unwrap_or(0);
        if size > MAX_STATE_BYTES {
            run.error = Some(format!(
                "the JSON written to stdout is {size} bytes; at most {MAX_STATE_BYTES} are kept as state, so none was saved"
            ));
            return Ok(match outcome.exit {
                Exit::TimedOut => RunStatus::FailedTimeout,
                _ => RunStatus::FailedIntegration,
            });
        }
        if let Some(s) = &state {
            let op = records::put(keys::run_output(&run.tenant, &run.job, &run.id), s, Condition::None)?;
            self.store().write(vec![op]).await?;
        }
        match outcome.exit {
            Exit::Success => {}
            Exit::Failure(code) => {
                run.error = Some(match code {
                    Some(c) => format!("the integration exited with status {c}"),
                    None => "the integration was killed by a signal".to_owned(),
                });
                return Ok(RunStatus::FailedIntegration);
            }
            Exit::TimedOut => {
                run.error = Some(format!(
                    "the integration ran longer than {}s and was stopped",
                    self.settings.process_timeout.as_secs()
                ));
                return Ok(RunStatus::FailedTimeout);
            }
        }
        let Some(state) = state else {
            log.push("no JSON on stdout; the state is unchanged".into());
            return Ok(RunStatus::Succeeded);
        };
        if let Some(schema) = &manifest.metadata_schema {
            let problems = metadata_problems(&schema.schema, &state);
            if !problems.is_empty() {
                for p in &problems {
                    log.push(format!("metadata: {p}"));
                }
                run.error = Some(format!(
                    "stdout does not match the metadata schema ({}); state and metadata are unchanged",
                    problems.join("; ")
                ));
                return Ok(RunStatus::FailedIntegration);
            }
        }
        self.save_process_state(job, manifest, &state).await?;
        if run.mode == RunMode::Init {
            for (definition, options) in dynamic_options(manifest, &state) {
                let n = options.len();
                self.set_dynamic_options(&job.tenant, &job.id, &definition, options).await?;
                log.push(format!("{n} options stored for `{definition}`"));
            }
        }
        Ok(RunStatus::Succeeded)
    }

    /// Runs `build` when this release was not built in `workdir` yet. The
    /// marker names the release digest, so a new release builds again.
    async fn build_once(
        &self,
        build: &str,
        workdir: &Path,
        release: &Release,
        redact: &Redactor,
        log: &mut Vec<String>,
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
            let current = self.get_job_record(&job.tenant, &job.id).await?;
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
