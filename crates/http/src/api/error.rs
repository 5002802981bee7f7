//! The API's error body, `{"error": {"code": "...", "message": "...", "details": [...]}}`
//! (`details` only when there is a list of individual problems), and the one
//! mapping from domain errors to HTTP statuses.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use ferry_core::error::Error;
use ferry_core::ports::{SecretError, StoreError};

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable code (e.g. `not_found`, `invalid_json`).
    pub code: String,
    /// What went wrong and how to fix it.
    pub message: String,
    /// The individual problems, when there are several to fix (manifest
    /// diagnostics with line and column, config schema violations with their path).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub details: Option<serde_json::Value>,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub details: Option<serde_json::Value>,
    /// Seconds for `Retry-After` (429 answers).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { status, code: code.into(), message: message.into(), details: None, retry_after: None }
    }
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }
    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: ErrorDetail { code: self.code, message: self.message, details: self.details } };
        let mut res = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound { .. } => ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string()),
            Error::Conflict { code, message } => ApiError::new(StatusCode::CONFLICT, code, message),
            Error::Invalid { code, message } => ApiError::new(StatusCode::BAD_REQUEST, code, message),
            Error::InvalidDetails { code, message, details } => {
                ApiError::new(StatusCode::BAD_REQUEST, code, message).with_details(details)
            }
            Error::Unauthorized(m) => ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m),
            Error::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", m),
            Error::TooManyAttempts { retry_after_secs } => {
                let mut e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts", e.to_string());
                e.retry_after = Some(retry_after_secs);
                e
            }
            Error::Store(StoreError::ConditionFailed) => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "the resource changed while handling the request; retry",
            ),
            Error::Store(StoreError::Backend(source)) => {
                tracing::error!(error = %source, "store unavailable");
                unavailable()
            }
            Error::Secret(SecretError::Backend(source)) => {
                tracing::error!(error = %source, "secret store unavailable");
                unavailable()
            }
            other => {
                tracing::error!(error = %other, "internal error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "something went wrong on our side; it has been logged",
                )
            }
        }
    }
}

fn unavailable() -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "a backing service is unavailable; retry shortly")
}
