use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};

use super::List;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{ApiJson, ApiQuery, ListParams};
use crate::api::guard::Caller;
use ferry_core::model::Run;
use ferry_service::auth::Principal;
use ferry_service::reruns::RunDetail;
use ferry_service::runs::{CancelledRun, LogFilter, RunLogs, RunRequest, Triggered};
use ferry_service::Hub;

/// Trigger a run. While a run of the job is going, the trigger is bundled into the next run.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/jobs/{job}/runs", tag = "runs",
    params(("tenant" = String, Path), ("job" = String, Path)), request_body = RunRequest,
    responses((status = 202, body = Triggered), (status = 404, body = ErrorBody)))]
pub async fn trigger(
    State(hub): State<Hub>,
    Extension(Caller(p)): Extension<Caller>,
    Path((tenant, job)): Path<(String, String)>,
    ApiJson(body): ApiJson<RunRequest>,
) -> Result<(StatusCode, Json<Triggered>), ApiError> {
    let source = match p {
        Principal::ApiKey { .. } => "api",
        Principal::User { .. } => "manual",
    };
    Ok((StatusCode::ACCEPTED, Json(hub.runs().trigger_run(&tenant, &job, body, source).await?)))
}

/// A job's runs, newest first.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/jobs/{job}/runs", tag = "runs",
    params(("tenant" = String, Path), ("job" = String, Path), ListParams), responses((status = 200, body = List<Run>)))]
pub async fn list(
    State(hub): State<Hub>,
    Path((tenant, job)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<ListParams>,
) -> Result<Json<List<Run>>, ApiError> {
    Ok(Json(List::from_page(hub.runs().list_runs(&tenant, &job, &q.into()).await?, Run::clone)))
}

/// A run, with the configuration it executed with (`config`, once it started; no secrets).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/jobs/{job}/runs/{run}", tag = "runs",
    params(("tenant" = String, Path), ("job" = String, Path), ("run" = String, Path)),
    responses((status = 200, body = RunDetail), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(hub): State<Hub>,
    Path((tenant, job, run)): Path<(String, String, String)>,
) -> Result<Json<RunDetail>, ApiError> {
    Ok(Json(hub.runs().run_detail(&tenant, &job, &run).await?))
}

/// The run's log lines (no secrets, no record contents), filtered. A run keeps
/// at most `cap` lines, the first and the last half of its log; `truncated`
/// and `dropped` say whether and how many lines were dropped between them.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/jobs/{job}/runs/{run}/logs", tag = "runs",
    params(("tenant" = String, Path), ("job" = String, Path), ("run" = String, Path), LogFilter),
    responses((status = 200, body = RunLogs), (status = 404, body = ErrorBody),
        (status = 400, description = "A filter value is not valid (`invalid_filter`, naming the parameter).", body = ErrorBody)))]
pub async fn logs(
    State(hub): State<Hub>,
    Path((tenant, job, run)): Path<(String, String, String)>,
    ApiQuery(filter): ApiQuery<LogFilter>,
) -> Result<Json<RunLogs>, ApiError> {
    Ok(Json(hub.runs().run_logs(&tenant, &job, &run, &filter).await?))
}

/// Cancel a run that has not ended: a queued or interrupted run ends at once, a
/// running one at its next record or page (a process integration is killed).
/// The job is freed and the triggers bundled behind the run are dropped. For
/// platform admins and the tenant's users; API keys are refused.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/jobs/{job}/runs/{run}/cancel", tag = "runs",
    params(("tenant" = String, Path), ("job" = String, Path), ("run" = String, Path)),
    responses((status = 200, body = CancelledRun), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "The run already ended (`run_finished`).", body = ErrorBody)))]
pub async fn cancel(
    State(hub): State<Hub>,
    Extension(Caller(p)): Extension<Caller>,
    Path((tenant, job, run)): Path<(String, String, String)>,
) -> Result<Json<CancelledRun>, ApiError> {
    let by = match &p {
        Principal::User { email, .. } => email.clone(),
        Principal::ApiKey { key_id, .. } => format!("API key {key_id}"),
    };
    Ok(Json(hub.runs().cancel_run(&tenant, &job, &run, &by).await?))
}
