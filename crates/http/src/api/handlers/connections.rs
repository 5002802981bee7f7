use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};

use super::List;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{ApiJson, ApiQuery, ListParams};
use crate::api::guard::Caller;
use ferry_core::model::ConnectionView;
use ferry_service::connections::{ConnectionPatch, NewConnection, SettingsEditor};
use ferry_service::Hub;

#[utoipa::path(post, path = "/v1/tenants/{tenant}/connections", tag = "connections", params(("tenant" = String, Path)), request_body = NewConnection,
    responses((status = 201, body = ConnectionView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(
    State(hub): State<Hub>,
    Extension(Caller(p)): Extension<Caller>,
    Path(tenant): Path<String>,
    ApiJson(body): ApiJson<NewConnection>,
) -> Result<(StatusCode, Json<ConnectionView>), ApiError> {
    let conn = hub.connections().create_connection(&tenant, body, editor(&p)).await?;
    Ok((StatusCode::CREATED, Json(hub.connections().connection_view(&conn).await?)))
}

fn editor(p: &ferry_service::auth::Principal) -> SettingsEditor {
    if p.is_platform_admin() {
        SettingsEditor::PlatformAdmin
    } else {
        SettingsEditor::TenantMember
    }
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/connections", tag = "connections", params(("tenant" = String, Path), ListParams),
    responses((status = 200, body = List<ConnectionView>)))]
pub async fn list(
    State(hub): State<Hub>,
    Path(tenant): Path<String>,
    ApiQuery(q): ApiQuery<ListParams>,
) -> Result<Json<List<ConnectionView>>, ApiError> {
    let page = hub.connections().list_connections(&tenant, &q.into()).await?;
    let mut items = Vec::with_capacity(page.items.len());
    for c in &page.items {
        items.push(hub.connections().connection_view(c).await?);
    }
    Ok(Json(List { items, next_cursor: page.next_cursor }))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/connections/{connection}", tag = "connections", params(("tenant" = String, Path), ("connection" = String, Path)),
    responses((status = 200, body = ConnectionView), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(hub): State<Hub>,
    Path((tenant, id)): Path<(String, String)>,
) -> Result<Json<ConnectionView>, ApiError> {
    Ok(Json(hub.connections().connection_view(&hub.connections().get_connection(&tenant, &id).await?).await?))
}

#[utoipa::path(patch, path = "/v1/tenants/{tenant}/connections/{connection}", tag = "connections", params(("tenant" = String, Path), ("connection" = String, Path)), request_body = ConnectionPatch,
    responses((status = 200, body = ConnectionView), (status = 404, body = ErrorBody)))]
pub async fn update(
    State(hub): State<Hub>,
    Extension(Caller(p)): Extension<Caller>,
    Path((tenant, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<ConnectionPatch>,
) -> Result<Json<ConnectionView>, ApiError> {
    Ok(Json(
        hub.connections()
            .connection_view(&hub.connections().update_connection(&tenant, &id, body, editor(&p)).await?)
            .await?,
    ))
}

/// Replace the credentials (write-only: they are never returned).
#[utoipa::path(put, path = "/v1/tenants/{tenant}/connections/{connection}/credentials", tag = "connections", params(("tenant" = String, Path), ("connection" = String, Path)),
    request_body(content = BTreeMap<String, String>, description = "Secret fields, e.g. {\"api_key\": \"...\"}"),
    responses((status = 200, body = ConnectionView), (status = 400, body = ErrorBody)))]
pub async fn set_credentials(
    State(hub): State<Hub>,
    Path((tenant, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<BTreeMap<String, String>>,
) -> Result<Json<ConnectionView>, ApiError> {
    Ok(Json(hub.connections().connection_view(&hub.connections().set_credentials(&tenant, &id, body).await?).await?))
}

/// Forget the credentials; the connection becomes `disconnected`.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/connections/{connection}/disconnect", tag = "connections", params(("tenant" = String, Path), ("connection" = String, Path)),
    responses((status = 200, body = ConnectionView), (status = 404, body = ErrorBody)))]
pub async fn disconnect(
    State(hub): State<Hub>,
    Path((tenant, id)): Path<(String, String)>,
) -> Result<Json<ConnectionView>, ApiError> {
    Ok(Json(hub.connections().connection_view(&hub.connections().disconnect(&tenant, &id).await?).await?))
}

/// Delete a connection and its credentials; 409 `connection_in_use` while a job binds it.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/connections/{connection}", tag = "connections", params(("tenant" = String, Path), ("connection" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete(
    State(hub): State<Hub>,
    Path((tenant, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    hub.connections().delete_connection(&tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
