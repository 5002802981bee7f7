//! Integrations and releases (platform-wide): everyone signed in may read them
//! (operators pick them for jobs); platform admins publish and promote.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};

use super::List;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{ApiJson, ApiQuery, ListParams};
use crate::api::guard::Caller;
use ferry_core::model::{IntegrationView, ReleaseSummary, ReleaseView};
use ferry_service::integrations::{IntegrationPatch, PublishRequest, Published};
use ferry_service::Hub;

/// Largest publish request: manifests can be much larger than other bodies.
pub const PUBLISH_BODY_LIMIT: usize = 1024 * 1024;

/// Release numbers in paths: 1 to 4294967295, no leading zeros or signs.
fn release_number(s: &str) -> Result<u32, ApiError> {
    match s.parse::<u32>() {
        Ok(n) if n > 0 && !s.starts_with('0') => Ok(n),
        _ => Err(ApiError::bad_request("invalid_id", "`release` must be a release number such as 1")),
    }
}

#[utoipa::path(get, path = "/v1/integrations", tag = "integrations", params(ListParams),
    responses((status = 200, body = List<IntegrationView>)))]
pub async fn list(
    State(hub): State<Hub>,
    ApiQuery(q): ApiQuery<ListParams>,
) -> Result<Json<List<IntegrationView>>, ApiError> {
    Ok(Json(List::from_page(hub.integrations().list_integrations(&q.into()).await?, |i| IntegrationView::from(i))))
}

#[utoipa::path(get, path = "/v1/integrations/{integration}", tag = "integrations", params(("integration" = String, Path)),
    responses((status = 200, body = IntegrationView), (status = 404, body = ErrorBody)))]
pub async fn get(State(hub): State<Hub>, Path(name): Path<String>) -> Result<Json<IntegrationView>, ApiError> {
    Ok(Json(IntegrationView::from(&hub.integrations().get_integration(&name).await?)))
}

/// Choose the default release (platform admins).
#[utoipa::path(patch, path = "/v1/integrations/{integration}", tag = "integrations", params(("integration" = String, Path)),
    request_body = IntegrationPatch,
    responses((status = 200, body = IntegrationView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update(
    State(hub): State<Hub>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<IntegrationPatch>,
) -> Result<Json<IntegrationView>, ApiError> {
    Ok(Json(IntegrationView::from(&hub.integrations().update_integration(&name, body).await?)))
}

/// Publish a manifest as the next release (platform admins). Creates the
/// integration on its first release, which becomes the default. Publishing the
/// same manifest as the latest release again returns that release with 200 and
/// `created: false`. Invalid manifests are 400 `invalid_manifest`, with every
/// diagnostic (line, column, code, message, help) in `error.details`.
#[utoipa::path(post, path = "/v1/integrations/{integration}/releases", tag = "integrations", params(("integration" = String, Path)),
    request_body = PublishRequest,
    responses((status = 201, body = Published), (status = 200, body = Published, description = "The manifest equals the latest release; nothing was published"),
        (status = 400, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn publish(
    State(hub): State<Hub>,
    Path(name): Path<String>,
    Extension(Caller(p)): Extension<Caller>,
    ApiJson(body): ApiJson<PublishRequest>,
) -> Result<(StatusCode, Json<Published>), ApiError> {
    let (release, created) = hub.integrations().publish_release(&name, body, Some(&p)).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(Published { created, release })))
}

/// Releases, newest first.
#[utoipa::path(get, path = "/v1/integrations/{integration}/releases", tag = "integrations", params(("integration" = String, Path), ListParams),
    responses((status = 200, body = List<ReleaseSummary>), (status = 404, body = ErrorBody)))]
pub async fn list_releases(
    State(hub): State<Hub>,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<ListParams>,
) -> Result<Json<List<ReleaseSummary>>, ApiError> {
    let page = hub.integrations().list_releases(&name, &q.into()).await?;
    Ok(Json(List { items: page.items, next_cursor: page.next_cursor }))
}

/// A release with its manifest, parsed and as published.
#[utoipa::path(get, path = "/v1/integrations/{integration}/releases/{release}", tag = "integrations",
    params(("integration" = String, Path), ("release" = u32, Path, description = "Release number")),
    responses((status = 200, body = ReleaseView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_release(
    State(hub): State<Hub>,
    Path((name, release)): Path<(String, String)>,
) -> Result<Json<ReleaseView>, ApiError> {
    let number = release_number(&release)?;
    Ok(Json(hub.integrations().get_release_view(&name, number).await?))
}
