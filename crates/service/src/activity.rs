//! Activity: runs across jobs, a tenant's or every tenant's (platform
//! admins), newest first, filtered, each with its job's and integration's names.
//!
//! **Where a page comes from.** Always a store query on a key, never a scan:
//!
//! - a tenant's runs: the `gsi1` partition `T#<tenant>#RUNS`;
//! - every run: the `gsi2` partition `RUNS`;
//! - one job's runs (`job=`, or an `integration=` only one of the tenant's
//!   jobs runs): the job's own partition, `T#<tenant>#JOB#<job>`.
//!
//! Both indexes sort by `<created_at>#<run id>` (see `repo::run_index`), so
//! `since`/`until` are a key range there. In a job's partition runs sort by
//! id, which is creation order: runs newer than `until` are skipped and the
//! scan ends at the first run older than `since`.
//!
//! **Filters and the paging rule.** `status`, `integration`, `trigger`,
//! `mode` (and `job` on the platform list) are applied to what the query
//! returns. So that a selective filter cannot make one page read a whole
//! history, a page reads at most [`SCAN_READS`] store pages of up to
//! [`SCAN_PAGE`] runs; when it reaches that bound before `limit` matches, it
//! ends short (possibly empty) and `next_cursor` continues the scan where it
//! stopped. A list is complete only when `next_cursor` is absent.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::repo::filtered::FilteredRead;
use crate::repo::{keys, lookups, records, run_index, Page, PageRequest};
use crate::runs::Runs;
use ferry_core::error::{Error, Result};
use ferry_core::model::{Run, RunMode, RunStatus};
use ferry_core::ports::{Index, Query};

pub use crate::repo::filtered::{SCAN_PAGE, SCAN_READS};

/// The trigger sources a run can have.
const TRIGGER_SOURCES: [&str; 6] = ["manual", "api", "schedule", "webhook", "rerun", "replay"];

/// An activity filter as the API takes it: every value a string, checked by
/// [`ActivityFilter::parse`].
#[derive(Debug, Clone, Default)]
pub struct ActivityQuery {
    /// Comma-separated statuses; `failed` stands for every `failed_*` status.
    pub status: Option<String>,
    pub job: Option<String>,
    pub integration: Option<String>,
    pub trigger: Option<String>,
    pub mode: Option<String>,
    /// RFC 3339; runs created at or after it.
    pub since: Option<String>,
    /// RFC 3339; runs created before it.
    pub until: Option<String>,
}

/// A run as activity lists it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ActivityRun {
    #[serde(flatten)]
    pub run: Run,
    /// The job's name (absent when the job was deleted since).
    pub job_name: Option<String>,
    /// The job's integration (absent when the job was deleted since).
    pub integration: Option<String>,
}

/// A checked activity filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActivityFilter {
    statuses: Vec<StatusFilter>,
    job: Option<String>,
    integration: Option<String>,
    trigger: Option<String>,
    mode: Option<RunMode>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum StatusFilter {
    Is(RunStatus),
    /// Every `failed_*` status.
    Failed,
}

impl StatusFilter {
    fn matches(self, status: RunStatus) -> bool {
        match self {
            StatusFilter::Is(s) => s == status,
            StatusFilter::Failed => is_failure(status),
        }
    }
}

/// Whether a status is one of the `failed_*` ones.
pub fn is_failure(status: RunStatus) -> bool {
    matches!(
        status,
        RunStatus::FailedIntegration | RunStatus::FailedPlatform | RunStatus::FailedTimeout | RunStatus::FailedRefresh
    )
}

fn bad(parameter: &str, message: impl std::fmt::Display) -> Error {
    Error::invalid("invalid_filter", format!("{parameter}: {message}"))
}

/// A value of a snake_case enum by its name.
fn variant<T: serde::de::DeserializeOwned>(s: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
}

fn time(parameter: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>> {
    value
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| bad(parameter, format!("'{v}' is not an RFC 3339 time (e.g. 2024-05-01T00:00:00Z)")))
        })
        .transpose()
}

/// Ids are lowercase `[a-z0-9-]`; anything else names no job.
fn id(parameter: &str, value: Option<&str>) -> Result<Option<String>> {
    match value {
        Some(v)
            if v.is_empty() || v.len() > 64 || !v.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-')) =>
        {
            Err(bad(parameter, format!("'{v}' is not an id (lowercase letters, digits and '-')")))
        }
        v => Ok(v.map(str::to_owned)),
    }
}

impl ActivityFilter {
    /// Checks every value; a bad one is `400 invalid_filter` naming its parameter.
    pub fn parse(q: &ActivityQuery) -> Result<Self> {
        let mut statuses = Vec::new();
        if let Some(list) = &q.status {
            for s in list.split(',').map(str::trim) {
                statuses.push(match s {
                    "failed" => StatusFilter::Failed,
                    s => StatusFilter::Is(variant(s).ok_or_else(|| {
                        bad(
                            "status",
                            format!(
                                "'{s}' is not a run status; use queued, running, interrupted, succeeded, partial, \
                                 failed_integration, failed_platform, failed_timeout, failed_refresh, cancelled, \
                                 or failed (every failed_* status), several separated by commas"
                            ),
                        )
                    })?),
                });
            }
        }
        let mode = match q.mode.as_deref() {
            None => None,
            Some(m) => Some(
                variant(m)
                    .ok_or_else(|| bad("mode", format!("'{m}' is not a run mode; use init, normal or webhook")))?,
            ),
        };
        let trigger = match q.trigger.as_deref() {
            Some(t) if !TRIGGER_SOURCES.contains(&t) => {
                return Err(bad(
                    "trigger",
                    format!("'{t}' is not a trigger source; use {}", TRIGGER_SOURCES.join(", ")),
                ))
            }
            t => t.map(str::to_owned),
        };
        let integration = match q.integration.as_deref() {
            Some("") => return Err(bad("integration", "is empty")),
            i => i.map(str::to_owned),
        };
        let since = time("since", q.since.as_deref())?;
        let until = time("until", q.until.as_deref())?;
        if let (Some(s), Some(u)) = (since, until) {
            if s >= u {
                return Err(bad("since", "must be before until"));
            }
        }
        Ok(Self { statuses, job: id("job", q.job.as_deref())?, integration, trigger, mode, since, until })
    }

    /// Whether a filter other than the time window may drop runs a query returns.
    fn narrows(&self) -> bool {
        !self.statuses.is_empty()
            || self.job.is_some()
            || self.integration.is_some()
            || self.trigger.is_some()
            || self.mode.is_some()
    }

    fn window(&self, run: &Run) -> Window {
        if self.until.is_some_and(|u| run.created_at >= u) {
            Window::Newer
        } else if self.since.is_some_and(|s| run.created_at < s) {
            Window::Older
        } else {
            Window::Inside
        }
    }

    /// The filters a run's own record answers.
    fn matches_run(&self, run: &Run) -> bool {
        (self.statuses.is_empty() || self.statuses.iter().any(|s| s.matches(run.status)))
            && self.job.as_ref().is_none_or(|j| *j == run.job)
            && self.mode.is_none_or(|m| m == run.mode)
            && self.trigger.as_ref().is_none_or(|t| run.triggers.iter().any(|tr| tr.source == *t))
    }
}

enum Window {
    Newer,
    Inside,
    Older,
}

/// What activity reads: an index partition, or one job's partition.
enum Source {
    Index(Index, String),
    Job { tenant: String, job: String },
}

impl Source {
    fn query(&self, filter: &ActivityFilter) -> Query {
        match self {
            Source::Index(index, pk) => Query::partition(*index, pk.clone())
                .between(filter.since.map(run_index::time_key), filter.until.map(run_index::time_key))
                .descending(),
            Source::Job { tenant, job } => {
                Query::partition(Index::Primary, keys::runs_partition(tenant, job)).prefix("RUN#").descending()
            }
        }
    }
}

/// A job's name and integration, by tenant and job; `None` once the job is gone.
type Names = HashMap<(String, String), Option<(String, String)>>;

impl Runs<'_> {
    /// A tenant's runs across its jobs, newest first.
    pub async fn tenant_activity(
        &self,
        tenant: &str,
        q: &ActivityQuery,
        page: &PageRequest,
    ) -> Result<Page<ActivityRun>> {
        let filter = ActivityFilter::parse(q)?;
        let mut names = Names::new();
        let mut source = match &filter.job {
            Some(job) => Source::Job { tenant: tenant.to_owned(), job: job.clone() },
            None => Source::Index(run_index::TENANT_INDEX, run_index::tenant_runs(tenant)),
        };
        if let Some(integration) = &filter.integration {
            // The tenant's jobs say which run that integration: when one does, its partition is the key.
            let mut of_integration = Vec::new();
            for job in lookups::all_jobs(self.store, tenant).await? {
                if job.integration == *integration {
                    of_integration.push(job.id.clone());
                }
                names.insert((tenant.to_owned(), job.id), Some((job.name, job.integration)));
            }
            match (of_integration.as_slice(), &filter.job) {
                ([], _) => return Ok(Page { items: Vec::new(), next_cursor: None }),
                ([only], None) => source = Source::Job { tenant: tenant.to_owned(), job: only.clone() },
                _ => {}
            }
        }
        self.activity(source, &filter, page, names).await
    }

    /// Every run of the platform, newest first (platform admins).
    pub async fn platform_activity(&self, q: &ActivityQuery, page: &PageRequest) -> Result<Page<ActivityRun>> {
        let filter = ActivityFilter::parse(q)?;
        let source = Source::Index(run_index::PLATFORM_INDEX, run_index::PLATFORM_RUNS.to_owned());
        self.activity(source, &filter, page, Names::new()).await
    }

    /// One page: the source's runs in the window that pass the filters, at
    /// most [`SCAN_READS`] store pages read (see the module's paging rule).
    async fn activity(
        &self,
        source: Source,
        filter: &ActivityFilter,
        page: &PageRequest,
        mut names: Names,
    ) -> Result<Page<ActivityRun>> {
        let query = source.query(filter);
        let mut read = FilteredRead::new(self.store, query, page, filter.narrows())?;
        let mut runs = Vec::new();
        while let Some(item) = read.next().await? {
            let run: Run = records::from_item(item)?.value;
            match filter.window(&run) {
                Window::Newer => continue,
                Window::Older => return Ok(read.page(runs, true)),
                Window::Inside => {}
            }
            if !filter.matches_run(&run) {
                continue;
            }
            let job = self.names_of(&mut names, &run).await?;
            if filter.integration.as_ref().is_some_and(|i| job.as_ref().is_none_or(|(_, ji)| ji != i)) {
                continue;
            }
            let (job_name, integration) = job.unzip();
            runs.push(ActivityRun { run, job_name, integration });
            if runs.len() == read.limit() {
                break;
            }
        }
        Ok(read.page(runs, false))
    }

    /// The run's job's name and integration, read once per job.
    async fn names_of(&self, names: &mut Names, run: &Run) -> Result<Option<(String, String)>> {
        let key = (run.tenant.clone(), run.job.clone());
        if let Some(found) = names.get(&key) {
            return Ok(found.clone());
        }
        let found = match lookups::job(self.store, &run.tenant, &run.job).await {
            Ok(job) => Some((job.value.name, job.value.integration)),
            Err(Error::NotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        names.insert(key, found.clone());
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(f: impl FnOnce(&mut ActivityQuery)) -> ActivityQuery {
        let mut q = ActivityQuery::default();
        f(&mut q);
        q
    }

    fn message(q: &ActivityQuery) -> String {
        match ActivityFilter::parse(q) {
            Err(Error::Invalid { code: "invalid_filter", message }) => message,
            other => panic!("expected invalid_filter, got {other:?}"),
        }
    }

    #[test]
    fn the_failed_class_matches_every_failure_status_and_nothing_else() {
        let filter = ActivityFilter::parse(&query(|q| q.status = Some("failed".into()))).expect("filter");
        for status in [
            RunStatus::FailedIntegration,
            RunStatus::FailedPlatform,
            RunStatus::FailedTimeout,
            RunStatus::FailedRefresh,
        ] {
            assert!(filter.statuses.iter().any(|s| s.matches(status)), "{status:?}");
        }
        for status in [
            RunStatus::Queued,
            RunStatus::Running,
            RunStatus::Interrupted,
            RunStatus::Succeeded,
            RunStatus::Partial,
            RunStatus::Cancelled,
        ] {
            assert!(!filter.statuses.iter().any(|s| s.matches(status)), "{status:?}");
        }
    }

    #[test]
    fn bad_filter_values_name_their_parameter() {
        assert!(message(&query(|q| q.status = Some("succeeded,bogus".into()))).starts_with("status: 'bogus'"));
        assert!(message(&query(|q| q.mode = Some("fast".into()))).starts_with("mode: 'fast'"));
        assert!(message(&query(|q| q.trigger = Some("cron".into()))).starts_with("trigger: 'cron'"));
        assert!(message(&query(|q| q.since = Some("yesterday".into()))).starts_with("since: 'yesterday'"));
        assert!(message(&query(|q| q.until = Some("2024-13-01".into()))).starts_with("until: '2024-13-01'"));
        assert!(message(&query(|q| q.job = Some("JOB#x".into()))).starts_with("job: 'JOB#x'"));
        let crossed = query(|q| {
            q.since = Some("2024-05-02T00:00:00Z".into());
            q.until = Some("2024-05-01T00:00:00+02:00".into());
        });
        assert_eq!(message(&crossed), "since: must be before until");
    }

    #[test]
    fn times_in_any_offset_are_read_as_utc() {
        let q = query(|q| q.since = Some("2024-05-01T02:00:00+02:00".into()));
        let filter = ActivityFilter::parse(&q).expect("filter");
        assert_eq!(filter.since.map(run_index::time_key).as_deref(), Some("2024-05-01T00:00:00.000000Z"));
    }
}
