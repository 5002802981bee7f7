//! The API's error body, `{"error": {"code": "...", "message": "...", "details": [...]}}`
//! (`details` only when there is a list of individual problems), and the one
//! mapping from domain errors to HTTP statuses.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use ferry_core::error::{chain, Error};
use ferry_core::ports::{Port, StoreError};

/// Seconds a client is asked to wait (`Retry-After`) before retrying a
/// request a backend could not serve: the adapters' SDKs already retried
/// within the request, so the backend needs a moment rather than at once.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 5;

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
    /// Seconds for `Retry-After` (429 and 503 answers).
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
        if let Some(unavailable) = e.unavailable() {
            // The one place it is logged, with every source: the answer only names the backend.
            tracing::error!(error = %chain(&e), backend = %unavailable.port(), "backend unavailable");
            return backend_unavailable(unavailable.port());
        }
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
            other => {
                tracing::error!(error = %chain(&other), "internal error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "something went wrong on our side; it has been logged",
                )
            }
        }
    }
}

/// 503 `backend_unavailable` with `Retry-After`: the request was fine, one of
/// Ferry's backends could not serve it right now.
pub fn backend_unavailable(port: Port) -> ApiError {
    let mut name = port.name().to_owned();
    name[..1].make_ascii_uppercase();
    let secs = UNAVAILABLE_RETRY_AFTER_SECS;
    let message = format!(
        "{name} of this Ferry hub is unavailable right now (unreachable, too slow or throttling); nothing is wrong \
         with the request: retry it in {secs} seconds. If this persists, the hub's logs name the cause."
    );
    let mut e = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "backend_unavailable", message);
    e.retry_after = Some(secs);
    e
}

#[cfg(test)]
mod tests {
    use ferry_core::ports::{DispatchError, FileError, SchedulerError, SecretError};

    use super::*;

    #[derive(Debug)]
    struct Refused;

    impl std::fmt::Display for Refused {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("connection refused")
        }
    }

    impl std::error::Error for Refused {}

    #[test]
    fn every_unavailable_backend_answers_503_with_retry_after_and_other_failures_500() {
        let cases = [
            (Error::from(StoreError::unavailable(Refused)), "The store"),
            (Error::Store(StoreError::unavailable(Refused)), "The store"),
            (Error::from(SecretError::unavailable(Refused)), "The secret store"),
            (Error::from(FileError::unavailable(Refused)), "The file store"),
            (Error::from(DispatchError::unavailable(Refused)), "The run queue"),
            (Error::from(SchedulerError::unavailable(Refused)), "The scheduler"),
        ];
        for (e, name) in cases {
            let answer = ApiError::from(e);
            assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(answer.code, "backend_unavailable");
            assert_eq!(answer.retry_after, Some(UNAVAILABLE_RETRY_AFTER_SECS));
            assert!(answer.message.starts_with(name) && !answer.message.contains("refused"), "{}", answer.message);
        }
        for e in [
            Error::from(StoreError::backend(Refused)),
            Error::from(SecretError::backend(Refused)),
            Error::from(FileError::backend(Refused)),
            Error::from(DispatchError::backend(Refused)),
            Error::from(SchedulerError::backend(Refused)),
            Error::Internal("a bug".into()),
        ] {
            let answer = ApiError::from(e);
            assert_eq!((answer.status, answer.code.as_str()), (StatusCode::INTERNAL_SERVER_ERROR, "internal"));
            assert_eq!(answer.retry_after, None);
        }
        let answer = ApiError::from(Error::from(StoreError::ConditionFailed));
        assert_eq!(answer.status, StatusCode::CONFLICT, "a condition that did not hold stays a conflict");
    }

    #[test]
    fn the_503_answer_carries_retry_after() {
        let res = backend_unavailable(Port::Store).into_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()), Some("5"));
    }
}
