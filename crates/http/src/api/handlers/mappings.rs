use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

use super::List;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{ApiJson, ApiQuery, ListParams};
use ferry_core::model::MappingConfig;
use ferry_service::mappings::{MappingPatch, NewMapping};
use ferry_service::Hub;

/// Create a mapping configuration. Invalid field mappings are 400
/// `invalid_mapping` with every problem in `error.details`; templates past the
/// template limits (size, nesting) are 400 `template_too_complex`.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/mappings", tag = "mappings", params(("tenant" = String, Path)), request_body = NewMapping,
    responses((status = 201, body = MappingConfig), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(
    State(hub): State<Hub>,
    Path(tenant): Path<String>,
    ApiJson(body): ApiJson<NewMapping>,
) -> Result<(StatusCode, Json<MappingConfig>), ApiError> {
    Ok((StatusCode::CREATED, Json(hub.integrations().create_mapping(&tenant, body).await?)))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/mappings", tag = "mappings", params(("tenant" = String, Path), ListParams),
    responses((status = 200, body = List<MappingConfig>)))]
pub async fn list(
    State(hub): State<Hub>,
    Path(tenant): Path<String>,
    ApiQuery(q): ApiQuery<ListParams>,
) -> Result<Json<List<MappingConfig>>, ApiError> {
    let page = hub.integrations().list_mappings(&tenant, &q.into()).await?;
    Ok(Json(List { items: page.items, next_cursor: page.next_cursor }))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/mappings/{mapping}", tag = "mappings", params(("tenant" = String, Path), ("mapping" = String, Path)),
    responses((status = 200, body = MappingConfig), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(hub): State<Hub>,
    Path((tenant, id)): Path<(String, String)>,
) -> Result<Json<MappingConfig>, ApiError> {
    Ok(Json(hub.integrations().get_mapping(&tenant, &id).await?))
}

#[utoipa::path(patch, path = "/v1/tenants/{tenant}/mappings/{mapping}", tag = "mappings", params(("tenant" = String, Path), ("mapping" = String, Path)),
    request_body = MappingPatch,
    responses((status = 200, body = MappingConfig), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update(
    State(hub): State<Hub>,
    Path((tenant, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<MappingPatch>,
) -> Result<Json<MappingConfig>, ApiError> {
    Ok(Json(hub.integrations().update_mapping(&tenant, &id, body).await?))
}

/// Delete a mapping configuration; 409 `mapping_in_use` while a job uses it.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/mappings/{mapping}", tag = "mappings", params(("tenant" = String, Path), ("mapping" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete(
    State(hub): State<Hub>,
    Path((tenant, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    hub.integrations().delete_mapping(&tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
