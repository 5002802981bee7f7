use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;

use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::ApiJson;
use crate::api::source_addr::SourceAddr;
use ferry_service::sessions::{LoginRequest, SessionView};
use ferry_service::Hub;

/// Sign in with email and password; returns a short-lived bearer token.
#[utoipa::path(post, path = "/v1/sessions", tag = "sessions", request_body = LoginRequest, security(()),
    responses((status = 201, body = SessionView), (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "Too many wrong passwords lately for this account or from this \
            address (`too_many_attempts`); not even checked until `Retry-After` seconds have passed.",
            headers(("Retry-After" = u64, description = "Seconds until the next attempt is checked")))))]
pub async fn login(
    State(hub): State<Hub>,
    SourceAddr(source): SourceAddr,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<(StatusCode, Json<SessionView>), ApiError> {
    Ok((StatusCode::CREATED, Json(hub.users().login(body, source).await?)))
}

/// End the session whose token authenticates this request.
#[utoipa::path(delete, path = "/v1/sessions/current", tag = "sessions", responses((status = 204)))]
pub async fn logout(State(hub): State<Hub>, headers: HeaderMap) -> Result<StatusCode, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' ').map(|(_, t)| t.trim().to_owned()))
        .unwrap_or_default();
    hub.users().logout(&token).await?;
    Ok(StatusCode::NO_CONTENT)
}
