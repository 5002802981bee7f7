use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};

use super::List;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{ApiJson, ApiQuery, ListParams};
use crate::api::guard::Caller;
use ferry_core::model::Tenant;
use ferry_service::tenants::{NewTenant, TenantPatch};
use ferry_service::Hub;

/// Create a tenant (platform admins).
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", request_body = NewTenant,
    responses((status = 201, body = Tenant), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(
    State(hub): State<Hub>,
    ApiJson(body): ApiJson<NewTenant>,
) -> Result<(StatusCode, Json<Tenant>), ApiError> {
    Ok((StatusCode::CREATED, Json(hub.tenants().create_tenant(body).await?)))
}

/// List the tenants the caller may enter.
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants", params(ListParams),
    responses((status = 200, body = List<Tenant>)))]
pub async fn list(
    State(hub): State<Hub>,
    Extension(Caller(p)): Extension<Caller>,
    ApiQuery(q): ApiQuery<ListParams>,
) -> Result<Json<List<Tenant>>, ApiError> {
    Ok(Json(List::from_page(hub.tenants().list_tenants(&p, &q.into()).await?, Tenant::clone)))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}", tag = "tenants", params(("tenant" = String, Path)),
    responses((status = 200, body = Tenant), (status = 404, body = ErrorBody)))]
pub async fn get(State(hub): State<Hub>, Path(tenant): Path<String>) -> Result<Json<Tenant>, ApiError> {
    Ok(Json(hub.tenants().get_tenant(&tenant).await?))
}

/// Rename or pause a tenant (platform admins).
#[utoipa::path(patch, path = "/v1/tenants/{tenant}", tag = "tenants", params(("tenant" = String, Path)), request_body = TenantPatch,
    responses((status = 200, body = Tenant), (status = 404, body = ErrorBody)))]
pub async fn update(
    State(hub): State<Hub>,
    Path(tenant): Path<String>,
    ApiJson(body): ApiJson<TenantPatch>,
) -> Result<Json<Tenant>, ApiError> {
    Ok(Json(hub.tenants().update_tenant(&tenant, body).await?))
}

/// Archive a tenant: it becomes read-only and paused (platform admins).
#[utoipa::path(post, path = "/v1/tenants/{tenant}/archive", tag = "tenants", params(("tenant" = String, Path)),
    responses((status = 200, body = Tenant), (status = 404, body = ErrorBody)))]
pub async fn archive(State(hub): State<Hub>, Path(tenant): Path<String>) -> Result<Json<Tenant>, ApiError> {
    Ok(Json(hub.tenants().archive_tenant(&tenant).await?))
}
