//! What a run executes with, recorded once ([`RunConfig`], beside the run):
//! the release the job resolved to, its connections (ids), configs and
//! mapping overrides (a mapping configuration by id and version), the run's
//! mode and options. The first slice records it; continuations execute with
//! it, so a run keeps its release and mappings across slices; a rerun with
//! the original configuration starts from its run's.

use ferry_core::error::{Error, Result};
use ferry_core::model::{Job, JobMapping, MappingRef, RecordedMapping, Release, RerunConfig, Run, RunConfig};
use ferry_core::ports::{Condition, Store, StoreError};

use crate::repo::{keys, lookups, records};
use crate::Hub;

impl Hub {
    /// The job as `run` executes it (connections, configs and mappings as
    /// recorded) and the release it executes, recording the configuration
    /// first when the run has none yet.
    pub(super) async fn recorded_job(&self, run: &Run, job: Job) -> Result<(Job, Release, RunConfig)> {
        let config = match recorded(self.store(), &run.tenant, &run.job, &run.id).await? {
            Some(config) => config,
            None => self.record(run, &job).await?,
        };
        let release = lookups::find_release(self.store(), &config.integration, config.release)
            .await?
            .ok_or_else(|| release_gone(&config))?;
        Ok((as_recorded(job, &config), release, config))
    }

    /// Records what `run` executes with: its original run's configuration
    /// for a rerun that asked for it, else the job's as it is now.
    async fn record(&self, run: &Run, job: &Job) -> Result<RunConfig> {
        let mut config = match (&run.rerun_of, run.rerun_config) {
            (Some(of), Some(RerunConfig::Original)) => {
                recorded(self.store(), &run.tenant, &run.job, of).await?.ok_or_else(|| config_unknown(of))?
            }
            _ => self.current_config(job).await?,
        };
        config.mode = run.mode;
        config.options = run.options.clone();
        config.recorded_at = self.clock.now();
        let key = keys::run_config(&run.tenant, &run.job, &run.id);
        match self.store().write(vec![records::put(key.clone(), &config, Condition::NotExists)?]).await {
            Ok(()) => Ok(config),
            // Recorded meanwhile by another delivery of the run: that one counts.
            Err(StoreError::ConditionFailed) => {
                Ok(records::get(self.store(), &key).await?.map(|v| v.value).unwrap_or(config))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The job's configuration now: the release its pin resolves to, and the
    /// version of each mapping configuration it names.
    async fn current_config(&self, job: &Job) -> Result<RunConfig> {
        let release = lookups::release_for(self.store(), job).await?.ok_or_else(crate::jobs::no_release)?;
        let mut mappings = std::collections::BTreeMap::new();
        for (flow, m) in &job.mappings {
            let recorded = match m {
                JobMapping::Configured(r) => {
                    let current = records::get::<ferry_core::model::MappingConfig>(
                        self.store(),
                        &keys::mapping(&job.tenant, &r.mapping),
                    )
                    .await?
                    .ok_or_else(|| Error::not_found("mapping", &r.mapping))?;
                    RecordedMapping::Configured { mapping: r.mapping.clone(), version: current.value.version }
                }
                JobMapping::Inline(m) => RecordedMapping::Inline { mapping: m.clone() },
            };
            mappings.insert(flow.clone(), recorded);
        }
        Ok(RunConfig {
            integration: job.integration.clone(),
            release: release.number,
            connections: job.connections.clone(),
            configs: job.configs.clone(),
            mappings,
            mode: ferry_core::model::RunMode::Normal,
            options: Default::default(),
            recorded_at: self.clock.now(),
        })
    }
}

/// The configuration a run recorded, if it got as far as recording one.
pub(crate) async fn recorded(store: &dyn Store, tenant: &str, job: &str, run: &str) -> Result<Option<RunConfig>> {
    Ok(records::get::<RunConfig>(store, &keys::run_config(tenant, job, run)).await?.map(|v| v.value))
}

/// Checks that what `config` names still exists, so a rerun with it can
/// execute: its release, each mapping version, each connection.
pub(crate) async fn check_replayable(store: &dyn Store, tenant: &str, config: &RunConfig) -> Result<()> {
    if lookups::find_release(store, &config.integration, config.release).await?.is_none() {
        return Err(release_gone(config));
    }
    for m in config.mappings.values() {
        if let RecordedMapping::Configured { mapping, version } = m {
            mapping_version(store, tenant, mapping, *version).await?;
        }
    }
    for (connector, id) in &config.connections {
        if records::get::<serde_json::Value>(store, &keys::connection(tenant, id)).await?.is_none() {
            return Err(Error::conflict(
                "connection_gone",
                format!("connection '{id}' the run used for `{connector}` was deleted; rerun with the current configuration"),
            ));
        }
    }
    Ok(())
}

/// A mapping configuration as a run applied it.
pub(super) async fn mapping_version(
    store: &dyn Store,
    tenant: &str,
    mapping: &str,
    version: u32,
) -> Result<ferry_core::model::MappingConfig> {
    lookups::mapping_version(store, tenant, mapping, version).await?.ok_or_else(|| {
        Error::conflict(
            "mapping_version_gone",
            format!(
                "version {version} of mapping '{mapping}' no longer exists (the mapping was deleted); rerun with the current configuration"
            ),
        )
    })
}

fn release_gone(config: &RunConfig) -> Error {
    Error::conflict(
        "release_gone",
        format!(
            "release {} of integration '{}' no longer exists; rerun with the current configuration",
            config.release, config.integration
        ),
    )
}

pub(crate) fn config_unknown(run: &str) -> Error {
    Error::conflict(
        "run_config_unknown",
        format!(
            "run '{run}' recorded no configuration (it never started executing); rerun with the current configuration"
        ),
    )
}

/// The job with the connections, configs and mappings `config` recorded.
fn as_recorded(mut job: Job, config: &RunConfig) -> Job {
    job.connections = config.connections.clone();
    job.configs = config.configs.clone();
    job.mappings = config
        .mappings
        .iter()
        .map(|(flow, m)| {
            let m = match m {
                RecordedMapping::Configured { mapping, .. } => {
                    JobMapping::Configured(MappingRef { mapping: mapping.clone() })
                }
                RecordedMapping::Inline { mapping } => JobMapping::Inline(mapping.clone()),
            };
            (flow.clone(), m)
        })
        .collect();
    job
}
