//! Notification endpoints: where Ferry POSTs signed domain events.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

use super::List;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{ApiJson, ApiQuery, ListParams};
use ferry_core::model::ids::PLATFORM;
use ferry_service::notifications::{Attempt, CreatedEndpoint, NewEndpoint, NotificationEndpoint};
use ferry_service::Hub;

/// Register a platform-wide endpoint: it receives every tenant's events. The secret is in the response once.
#[utoipa::path(post, path = "/v1/notification-endpoints", tag = "notifications", request_body = NewEndpoint,
    responses((status = 201, body = CreatedEndpoint), (status = 400, body = ErrorBody)))]
pub async fn create_platform(
    State(hub): State<Hub>,
    ApiJson(body): ApiJson<NewEndpoint>,
) -> Result<(StatusCode, Json<CreatedEndpoint>), ApiError> {
    Ok((StatusCode::CREATED, Json(hub.notifications().create_endpoint(PLATFORM, body).await?)))
}

#[utoipa::path(get, path = "/v1/notification-endpoints", tag = "notifications", params(ListParams),
    responses((status = 200, body = List<NotificationEndpoint>)))]
pub async fn list_platform(
    State(hub): State<Hub>,
    ApiQuery(q): ApiQuery<ListParams>,
) -> Result<Json<List<NotificationEndpoint>>, ApiError> {
    Ok(Json(List::from_page(hub.notifications().list_endpoints(PLATFORM, &q.into()).await?, Clone::clone)))
}

#[utoipa::path(delete, path = "/v1/notification-endpoints/{endpoint}", tag = "notifications",
    params(("endpoint" = String, Path)), responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_platform(State(hub): State<Hub>, Path(endpoint): Path<String>) -> Result<StatusCode, ApiError> {
    hub.notifications().delete_endpoint(PLATFORM, &endpoint).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Register an endpoint for one tenant's events. The secret is in the response once.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/notification-endpoints", tag = "notifications",
    params(("tenant" = String, Path)), request_body = NewEndpoint,
    responses((status = 201, body = CreatedEndpoint), (status = 400, body = ErrorBody)))]
pub async fn create(
    State(hub): State<Hub>,
    Path(tenant): Path<String>,
    ApiJson(body): ApiJson<NewEndpoint>,
) -> Result<(StatusCode, Json<CreatedEndpoint>), ApiError> {
    Ok((StatusCode::CREATED, Json(hub.notifications().create_endpoint(&tenant, body).await?)))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/notification-endpoints", tag = "notifications",
    params(("tenant" = String, Path), ListParams), responses((status = 200, body = List<NotificationEndpoint>)))]
pub async fn list(
    State(hub): State<Hub>,
    Path(tenant): Path<String>,
    ApiQuery(q): ApiQuery<ListParams>,
) -> Result<Json<List<NotificationEndpoint>>, ApiError> {
    Ok(Json(List::from_page(hub.notifications().list_endpoints(&tenant, &q.into()).await?, Clone::clone)))
}

#[utoipa::path(delete, path = "/v1/tenants/{tenant}/notification-endpoints/{endpoint}", tag = "notifications",
    params(("tenant" = String, Path), ("endpoint" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(hub): State<Hub>,
    Path((tenant, endpoint)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    hub.notifications().delete_endpoint(&tenant, &endpoint).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Re-enable an endpoint Ferry disabled after repeated failures.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/notification-endpoints/{endpoint}/enable", tag = "notifications",
    params(("tenant" = String, Path), ("endpoint" = String, Path)),
    responses((status = 200, body = NotificationEndpoint), (status = 404, body = ErrorBody)))]
pub async fn enable(
    State(hub): State<Hub>,
    Path((tenant, endpoint)): Path<(String, String)>,
) -> Result<Json<NotificationEndpoint>, ApiError> {
    Ok(Json(hub.notifications().enable_endpoint(&tenant, &endpoint).await?))
}

/// Every delivery attempt to the endpoint, newest first.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/notification-endpoints/{endpoint}/attempts", tag = "notifications",
    params(("tenant" = String, Path), ("endpoint" = String, Path), ListParams),
    responses((status = 200, body = List<Attempt>), (status = 404, body = ErrorBody)))]
pub async fn attempts(
    State(hub): State<Hub>,
    Path((tenant, endpoint)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<ListParams>,
) -> Result<Json<List<Attempt>>, ApiError> {
    Ok(Json(List::from_page(hub.notifications().endpoint_attempts(&tenant, &endpoint, &q.into()).await?, Clone::clone)))
}
