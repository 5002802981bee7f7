//! Magic links of connections: re-issue (new token) and revoke.

use axum::extract::{Path, State};
use axum::Json;

use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::ApiJson;
use ferry_core::model::ConnectionView;
use ferry_service::links::IssueLink;
use ferry_service::Hub;

/// Issue a new magic link; the previous one stops working. The connection's `link` is the new URL.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/connections/{connection}/link", tag = "connections", params(("tenant" = String, Path), ("connection" = String, Path)), request_body = IssueLink,
    responses((status = 200, body = ConnectionView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn issue(
    State(hub): State<Hub>,
    Path((tenant, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<IssueLink>,
) -> Result<Json<ConnectionView>, ApiError> {
    Ok(Json(hub.connections().connection_view(&hub.connections().issue_link(&tenant, &id, body).await?).await?))
}

/// Revoke the magic link; the connection has none until one is issued again.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/connections/{connection}/link", tag = "connections", params(("tenant" = String, Path), ("connection" = String, Path)),
    responses((status = 200, body = ConnectionView), (status = 404, body = ErrorBody)))]
pub async fn revoke(
    State(hub): State<Hub>,
    Path((tenant, id)): Path<(String, String)>,
) -> Result<Json<ConnectionView>, ApiError> {
    Ok(Json(hub.connections().connection_view(&hub.connections().revoke_link(&tenant, &id).await?).await?))
}
