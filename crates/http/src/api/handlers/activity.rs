//! Activity: runs across jobs, a tenant's or the platform's.

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use super::List;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::ApiQuery;
use ferry_service::activity::{ActivityQuery, ActivityRun};
use ferry_service::repo::PageRequest;
use ferry_service::Hub;

/// The filters of an activity list, and its page.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ActivityParams {
    /// Statuses, comma-separated (`queued`, `running`, `interrupted`, `succeeded`, `partial`,
    /// `failed_integration`, `failed_platform`, `failed_timeout`, `failed_refresh`, `cancelled`);
    /// `failed` stands for every `failed_*` status.
    pub status: Option<String>,
    /// Runs of this job only.
    pub job: Option<String>,
    /// Runs of jobs of this integration only.
    pub integration: Option<String>,
    /// Runs with a trigger from this source: `manual`, `api`, `schedule`, `webhook`, `rerun` or `replay`.
    pub trigger: Option<String>,
    /// `init`, `normal` or `webhook`.
    pub mode: Option<String>,
    /// RFC 3339: runs created at or after this time.
    pub since: Option<String>,
    /// RFC 3339: runs created before this time.
    pub until: Option<String>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl ActivityParams {
    fn split(self) -> (ActivityQuery, PageRequest) {
        let ActivityParams { status, job, integration, trigger, mode, since, until, limit, cursor } = self;
        (ActivityQuery { status, job, integration, trigger, mode, since, until }, PageRequest { limit, cursor })
    }
}

/// A tenant's runs across all its jobs, newest first. Filters other than the
/// time window may leave a page short, even empty, with a `next_cursor`: a
/// page reads a bounded number of runs; follow `next_cursor` until it is absent.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/runs", tag = "runs",
    params(("tenant" = String, Path), ActivityParams),
    responses((status = 200, body = List<ActivityRun>),
        (status = 400, description = "A filter value is not valid (`invalid_filter`, naming the parameter), or the cursor is not this list's (`invalid_cursor`).", body = ErrorBody)))]
pub async fn tenant(
    State(hub): State<Hub>,
    Path(tenant): Path<String>,
    ApiQuery(params): ApiQuery<ActivityParams>,
) -> Result<Json<List<ActivityRun>>, ApiError> {
    let (query, page) = params.split();
    Ok(Json(List::from_page(hub.runs().tenant_activity(&tenant, &query, &page).await?, ActivityRun::clone)))
}

/// Every run of the platform, newest first (platform admins). Paged like a tenant's activity.
#[utoipa::path(get, path = "/v1/runs", tag = "runs", params(ActivityParams),
    responses((status = 200, body = List<ActivityRun>),
        (status = 400, description = "A filter value is not valid (`invalid_filter`, naming the parameter), or the cursor is not this list's (`invalid_cursor`).", body = ErrorBody)))]
pub async fn platform(
    State(hub): State<Hub>,
    ApiQuery(params): ApiQuery<ActivityParams>,
) -> Result<Json<List<ActivityRun>>, ApiError> {
    let (query, page) = params.split();
    Ok(Json(List::from_page(hub.runs().platform_activity(&query, &page).await?, ActivityRun::clone)))
}
