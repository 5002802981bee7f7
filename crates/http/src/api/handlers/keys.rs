use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};

use super::List;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{ApiJson, ApiQuery, ListParams};
use crate::api::guard::Caller;
use ferry_core::model::ids::PLATFORM;
use ferry_core::model::ApiKeyView;
use ferry_service::auth::Principal;
use ferry_service::keys::{CreatedApiKey, NewApiKeyRequest};
use ferry_service::Hub;

/// The user behind a key's creation; keys created by keys have none.
fn creator(caller: &Principal) -> Option<&str> {
    match caller {
        Principal::User { user_id, .. } => Some(user_id),
        Principal::ApiKey { .. } => None,
    }
}

/// Create an admin API key (platform admins). The key is in the response once.
#[utoipa::path(post, path = "/v1/api-keys", tag = "api-keys", request_body = NewApiKeyRequest,
    responses((status = 201, body = CreatedApiKey), (status = 400, body = ErrorBody)))]
pub async fn create_admin(
    State(hub): State<Hub>,
    Extension(Caller(caller)): Extension<Caller>,
    ApiJson(body): ApiJson<NewApiKeyRequest>,
) -> Result<(StatusCode, Json<CreatedApiKey>), ApiError> {
    Ok((StatusCode::CREATED, Json(hub.users().create_api_key(PLATFORM, body, creator(&caller)).await?)))
}

#[utoipa::path(get, path = "/v1/api-keys", tag = "api-keys", params(ListParams), responses((status = 200, body = List<ApiKeyView>)))]
pub async fn list_admin(
    State(hub): State<Hub>,
    ApiQuery(q): ApiQuery<ListParams>,
) -> Result<Json<List<ApiKeyView>>, ApiError> {
    Ok(Json(List::from_page(hub.users().list_api_keys(PLATFORM, &q.into()).await?, |k| ApiKeyView::from(k))))
}

#[utoipa::path(delete, path = "/v1/api-keys/{key}", tag = "api-keys", params(("key" = String, Path)),
    responses((status = 200, body = ApiKeyView), (status = 404, body = ErrorBody)))]
pub async fn revoke_admin(State(hub): State<Hub>, Path(key): Path<String>) -> Result<Json<ApiKeyView>, ApiError> {
    Ok(Json(ApiKeyView::from(&hub.users().revoke_api_key(PLATFORM, &key).await?)))
}

/// Create an `api_user` key for a tenant. The key is in the response once.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/api-keys", tag = "api-keys", params(("tenant" = String, Path)), request_body = NewApiKeyRequest,
    responses((status = 201, body = CreatedApiKey), (status = 400, body = ErrorBody)))]
pub async fn create(
    State(hub): State<Hub>,
    Extension(Caller(caller)): Extension<Caller>,
    Path(tenant): Path<String>,
    ApiJson(body): ApiJson<NewApiKeyRequest>,
) -> Result<(StatusCode, Json<CreatedApiKey>), ApiError> {
    Ok((StatusCode::CREATED, Json(hub.users().create_api_key(&tenant, body, creator(&caller)).await?)))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/api-keys", tag = "api-keys", params(("tenant" = String, Path), ListParams),
    responses((status = 200, body = List<ApiKeyView>)))]
pub async fn list(
    State(hub): State<Hub>,
    Path(tenant): Path<String>,
    ApiQuery(q): ApiQuery<ListParams>,
) -> Result<Json<List<ApiKeyView>>, ApiError> {
    Ok(Json(List::from_page(hub.users().list_api_keys(&tenant, &q.into()).await?, |k| ApiKeyView::from(k))))
}

/// Revoke a tenant key; it stops working at once.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/api-keys/{key}", tag = "api-keys", params(("tenant" = String, Path), ("key" = String, Path)),
    responses((status = 200, body = ApiKeyView), (status = 404, body = ErrorBody)))]
pub async fn revoke(
    State(hub): State<Hub>,
    Path((tenant, key)): Path<(String, String)>,
) -> Result<Json<ApiKeyView>, ApiError> {
    Ok(Json(ApiKeyView::from(&hub.users().revoke_api_key(&tenant, &key).await?)))
}
