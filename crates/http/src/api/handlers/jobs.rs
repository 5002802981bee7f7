use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

use super::List;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{ApiJson, ApiQuery, ListParams};
use ferry_core::model::JobView;
use ferry_service::jobs::{JobPatch, NewJob};
use ferry_service::Hub;

/// Create a job. It is validated against the release its pin resolves to:
/// `unknown_integration`, `unknown_release`, `missing_connection`,
/// `unknown_connector`, `unknown_connection`, `connector_mismatch`,
/// `invalid_configs` (every violation in `error.details`), `unknown_flow`,
/// `unknown_mapping`, `invalid_mapping`, `template_too_complex` (an inline
/// mapping's template past the template limits), `invalid_schedule`.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/jobs", tag = "jobs", params(("tenant" = String, Path)), request_body = NewJob,
    responses((status = 201, body = JobView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(
    State(hub): State<Hub>,
    Path(tenant): Path<String>,
    ApiJson(body): ApiJson<NewJob>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    Ok((StatusCode::CREATED, Json(hub.jobs().create_job(&tenant, body).await?)))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/jobs", tag = "jobs", params(("tenant" = String, Path), ListParams),
    responses((status = 200, body = List<JobView>)))]
pub async fn list(
    State(hub): State<Hub>,
    Path(tenant): Path<String>,
    ApiQuery(q): ApiQuery<ListParams>,
) -> Result<Json<List<JobView>>, ApiError> {
    let page = hub.jobs().list_jobs(&tenant, &q.into()).await?;
    Ok(Json(List { items: page.items, next_cursor: page.next_cursor }))
}

/// A job, with the release its pin resolves to now and what is wrong with it there.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/jobs/{job}", tag = "jobs", params(("tenant" = String, Path), ("job" = String, Path)),
    responses((status = 200, body = JobView), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(hub): State<Hub>,
    Path((tenant, id)): Path<(String, String)>,
) -> Result<Json<JobView>, ApiError> {
    Ok(Json(hub.jobs().get_job(&tenant, &id).await?))
}

/// Change a job. Changing its release, connections, configs or mappings must
/// leave a valid job (same errors as create); pausing, renaming and
/// rescheduling a job that a new release broke stay possible.
#[utoipa::path(patch, path = "/v1/tenants/{tenant}/jobs/{job}", tag = "jobs", params(("tenant" = String, Path), ("job" = String, Path)),
    request_body = JobPatch,
    responses((status = 200, body = JobView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update(
    State(hub): State<Hub>,
    Path((tenant, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<JobPatch>,
) -> Result<Json<JobView>, ApiError> {
    Ok(Json(hub.jobs().update_job(&tenant, &id, body).await?))
}

#[utoipa::path(delete, path = "/v1/tenants/{tenant}/jobs/{job}", tag = "jobs", params(("tenant" = String, Path), ("job" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(hub): State<Hub>,
    Path((tenant, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    hub.jobs().delete_job(&tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
