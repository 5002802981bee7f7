//! Dead letters: records of a tenant's jobs that failed mapping or that a
//! target refused; list, read, replay through the flow's target, discard.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{ApiJson, ApiQuery};
use crate::api::guard::Caller;
use ferry_core::model::{DeadLetter, ReplayMapping};
use ferry_service::auth::Principal;
use ferry_service::dead_letters::{DeadLetterFilter, DeadLetterList, Discarded, ReplayRequest, Replayed, Selection};
use ferry_service::repo::PageRequest;
use ferry_service::Hub;

/// The filters of a dead-letter list, and its page.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeadLetterParams {
    /// Dead letters of this job only.
    pub job: Option<String>,
    /// Of this flow only.
    pub flow: Option<String>,
    /// `mapping`, `target_rejected` or `target_unavailable`.
    pub category: Option<String>,
    /// `pending`, `replayed` or `discarded`.
    pub status: Option<String>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Which mapping a replay of one dead letter uses.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayOne {
    /// `current` (default) or `original`.
    #[serde(default)]
    pub mapping: ReplayMapping,
}

fn by(p: &Principal) -> String {
    match p {
        Principal::User { email, .. } => email.clone(),
        Principal::ApiKey { key_id, .. } => format!("API key {key_id}"),
    }
}

/// A tenant's dead letters (without their records), with counts by status
/// and category. With `job`, pending first, then by flow, category and age;
/// without, newest first. Filters the store's key does not cover may leave a
/// page short, even empty, with a `next_cursor`: follow it until it is absent.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/dead-letters", tag = "dead letters",
    params(("tenant" = String, Path), DeadLetterParams),
    responses((status = 200, body = DeadLetterList),
        (status = 400, description = "A filter value is not valid (`invalid_filter`, naming the parameter), or the cursor is not this list's (`invalid_cursor`).", body = ErrorBody)))]
pub async fn list(
    State(hub): State<Hub>,
    Path(tenant): Path<String>,
    ApiQuery(q): ApiQuery<DeadLetterParams>,
) -> Result<Json<DeadLetterList>, ApiError> {
    let filter = DeadLetterFilter::parse(q.job, q.flow, q.category.as_deref(), q.status.as_deref())?;
    let page = PageRequest { limit: q.limit, cursor: q.cursor };
    Ok(Json(hub.dead_letters().list(&tenant, &filter, &page).await?))
}

/// One dead letter, with its source record and mapped record.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/dead-letters/{dead_letter}", tag = "dead letters",
    params(("tenant" = String, Path), ("dead_letter" = String, Path)),
    responses((status = 200, body = DeadLetter), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(hub): State<Hub>,
    Path((tenant, id)): Path<(String, String)>,
) -> Result<Json<DeadLetter>, ApiError> {
    Ok(Json(hub.dead_letters().get(&tenant, &id).await?))
}

/// Replay dead letters (`ids`, or all pending ones matching `filter`)
/// through their flows' targets: one run per job (trigger `replay`), waiting
/// behind the job's running run if there is one.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/dead-letters/replay", tag = "dead letters",
    params(("tenant" = String, Path)), request_body = ReplayRequest,
    responses((status = 202, body = Replayed), (status = 404, body = ErrorBody),
        (status = 400, description = "Neither or both of `ids` and `filter`, too many ids (`invalid_selection`), or a bad filter value (`invalid_filter`).", body = ErrorBody)))]
pub async fn replay(
    State(hub): State<Hub>,
    Extension(Caller(p)): Extension<Caller>,
    Path(tenant): Path<String>,
    ApiJson(body): ApiJson<ReplayRequest>,
) -> Result<(StatusCode, Json<Replayed>), ApiError> {
    Ok((StatusCode::ACCEPTED, Json(hub.dead_letters().replay(&tenant, &body, &by(&p)).await?)))
}

/// Replay one dead letter through its flow's target, with the `current` or
/// `original` mapping.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/dead-letters/{dead_letter}/replay", tag = "dead letters",
    params(("tenant" = String, Path), ("dead_letter" = String, Path)), request_body = ReplayOne,
    responses((status = 202, body = Replayed), (status = 404, body = ErrorBody),
        (status = 409, description = "The dead letter was replayed or discarded already (`dead_letter_not_pending`).", body = ErrorBody)))]
pub async fn replay_one(
    State(hub): State<Hub>,
    Extension(Caller(p)): Extension<Caller>,
    Path((tenant, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<ReplayOne>,
) -> Result<(StatusCode, Json<Replayed>), ApiError> {
    Ok((StatusCode::ACCEPTED, Json(hub.dead_letters().replay_one(&tenant, &id, body.mapping, &by(&p)).await?)))
}

/// Discard dead letters (`ids`, or pending ones matching `filter`, at most
/// 1000 per request: `more: true` asks for the same request again).
#[utoipa::path(post, path = "/v1/tenants/{tenant}/dead-letters/discard", tag = "dead letters",
    params(("tenant" = String, Path)), request_body = Selection,
    responses((status = 200, body = Discarded), (status = 404, body = ErrorBody),
        (status = 400, description = "Neither or both of `ids` and `filter`, too many ids (`invalid_selection`), or a bad filter value (`invalid_filter`).", body = ErrorBody)))]
pub async fn discard(
    State(hub): State<Hub>,
    Path(tenant): Path<String>,
    ApiJson(body): ApiJson<Selection>,
) -> Result<Json<Discarded>, ApiError> {
    Ok(Json(hub.dead_letters().discard(&tenant, &body).await?))
}

/// Discard one dead letter.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/dead-letters/{dead_letter}/discard", tag = "dead letters",
    params(("tenant" = String, Path), ("dead_letter" = String, Path)),
    responses((status = 200, body = DeadLetter), (status = 404, body = ErrorBody),
        (status = 409, description = "The dead letter was replayed or discarded already (`dead_letter_not_pending`).", body = ErrorBody)))]
pub async fn discard_one(
    State(hub): State<Hub>,
    Path((tenant, id)): Path<(String, String)>,
) -> Result<Json<DeadLetter>, ApiError> {
    Ok(Json(hub.dead_letters().discard_one(&tenant, &id).await?))
}
