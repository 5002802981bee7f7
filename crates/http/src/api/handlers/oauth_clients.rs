//! OAuth client registrations per provider: the platform's, and a tenant's override.

use axum::extract::{Path, State};
use axum::Json;

use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::ApiJson;
use ferry_core::model::ids::PLATFORM;
use ferry_service::oauth::{OAuthClientConfig, OAuthClientView};
use ferry_service::Hub;

/// Register the platform's OAuth client for a provider (write-only secret).
#[utoipa::path(put, path = "/v1/oauth-clients/{provider}", tag = "connections", params(("provider" = String, Path)), request_body = OAuthClientConfig,
    responses((status = 200, body = OAuthClientView), (status = 400, body = ErrorBody)))]
pub async fn set_platform(
    State(hub): State<Hub>,
    Path(provider): Path<String>,
    ApiJson(body): ApiJson<OAuthClientConfig>,
) -> Result<Json<OAuthClientView>, ApiError> {
    Ok(Json(hub.connections().set_oauth_client(PLATFORM, &provider, body).await?))
}

/// Register a tenant's own OAuth client for a provider, overriding the platform's.
#[utoipa::path(put, path = "/v1/tenants/{tenant}/oauth-clients/{provider}", tag = "connections", params(("tenant" = String, Path), ("provider" = String, Path)), request_body = OAuthClientConfig,
    responses((status = 200, body = OAuthClientView), (status = 400, body = ErrorBody)))]
pub async fn set_tenant(
    State(hub): State<Hub>,
    Path((tenant, provider)): Path<(String, String)>,
    ApiJson(body): ApiJson<OAuthClientConfig>,
) -> Result<Json<OAuthClientView>, ApiError> {
    Ok(Json(hub.connections().set_oauth_client(&tenant, &provider, body).await?))
}
