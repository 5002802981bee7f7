//! Reads of one record (or one tenant's few) by key, shared by the services
//! and run execution: a tenant, a job, an integration and its releases, a
//! run, and the one resolution of a job's release pin. Read-only and free of
//! rules beyond "missing is `not_found`", so no service has to call another
//! to read what the store holds.

use ferry_core::error::{Error, Result};
use ferry_core::model::{Channel, Integration, Job, MappingConfig, Release, ReleasePin, Run, Tenant};
use ferry_core::ports::{Index, Query, Store};

use super::keys;
use super::records::{self, Page, PageRequest, Versioned};

pub async fn find_tenant(store: &dyn Store, id: &str) -> Result<Option<Tenant>> {
    Ok(records::get::<Tenant>(store, &keys::tenant(id)).await?.map(|v| v.value))
}

pub async fn tenant(store: &dyn Store, id: &str) -> Result<Tenant> {
    find_tenant(store, id).await?.ok_or_else(|| Error::not_found("tenant", id))
}

pub async fn job(store: &dyn Store, tenant: &str, id: &str) -> Result<Versioned<Job>> {
    records::get::<Job>(store, &keys::job(tenant, id)).await?.ok_or_else(|| Error::not_found("job", id))
}

pub async fn job_page(store: &dyn Store, tenant: &str, page: &PageRequest) -> Result<Page<Job>> {
    records::list(store, Query::partition(Index::Primary, keys::tenant_partition(tenant)).prefix("JOB#"), page).await
}

/// Every job of a tenant (tenants have few jobs; used by reference checks).
pub async fn all_jobs(store: &dyn Store, tenant: &str) -> Result<Vec<Job>> {
    let mut all = Vec::new();
    let mut page = PageRequest { limit: Some(records::MAX_PAGE), cursor: None };
    loop {
        let p = job_page(store, tenant, &page).await?;
        all.extend(p.items);
        match p.next_cursor {
            Some(c) => page.cursor = Some(c),
            None => return Ok(all),
        }
    }
}

pub async fn find_integration(store: &dyn Store, name: &str) -> Result<Option<Integration>> {
    Ok(records::get::<Integration>(store, &keys::integration(name)).await?.map(|v| v.value))
}

pub async fn integration(store: &dyn Store, name: &str) -> Result<Integration> {
    find_integration(store, name).await?.ok_or_else(|| Error::not_found("integration", name))
}

pub async fn find_release(store: &dyn Store, integration: &str, number: u32) -> Result<Option<Release>> {
    Ok(records::get::<Release>(store, &keys::release(integration, number)).await?.map(|v| v.value))
}

pub async fn release(store: &dyn Store, integration: &str, number: u32) -> Result<Release> {
    find_release(store, integration, number).await?.ok_or_else(|| Error::not_found("release", number.to_string()))
}

/// The release a job's pin resolves to now: the one resolution every run,
/// webhook, config form and credential check of the job goes through. `None`
/// when the pin names no release (a channel nothing was released on); an
/// unknown integration or release number is an error.
pub async fn release_for(store: &dyn Store, job: &Job) -> Result<Option<Release>> {
    let integration = integration(store, &job.integration).await?;
    let Some(number) = resolve_pin(&integration, &job.release) else { return Ok(None) };
    Ok(Some(release(store, &job.integration, number).await?))
}

/// The release number a pin names in an integration, if any.
pub(crate) fn resolve_pin(integration: &Integration, pin: &ReleasePin) -> Option<u32> {
    match pin {
        ReleasePin::Specific { number } => Some(*number),
        ReleasePin::Channel { channel: Channel::Default } => integration.default_release,
        ReleasePin::Channel { channel: Channel::Latest } => Some(integration.latest_release).filter(|n| *n > 0),
    }
}

pub async fn run(store: &dyn Store, tenant: &str, job: &str, id: &str) -> Result<Versioned<Run>> {
    records::get::<Run>(store, &keys::run(tenant, job, id)).await?.ok_or_else(|| Error::not_found("run", id))
}

/// A mapping configuration as it was at `version`: the current record when
/// that is its version, else the version an update kept. `None` when the
/// mapping was deleted (its versions go with it) or never had that version.
pub async fn mapping_version(store: &dyn Store, tenant: &str, id: &str, version: u32) -> Result<Option<MappingConfig>> {
    if let Some(current) = records::get::<MappingConfig>(store, &keys::mapping(tenant, id)).await? {
        if current.value.version == version {
            return Ok(Some(current.value));
        }
    }
    Ok(records::get::<MappingConfig>(store, &keys::mapping_version(tenant, id, version)).await?.map(|v| v.value))
}
