//! Request extractors whose rejections are JSON errors a person can act on.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use utoipa::IntoParams;

use super::error::ApiError;
use ferry_service::repo::PageRequest;

/// Largest request body the admin API accepts.
pub const BODY_LIMIT: usize = 64 * 1024;

/// A route's own body limit, when it differs from [`BODY_LIMIT`]. Routes that
/// raise the limit (with `DefaultBodyLimit`) also insert this extension so the
/// 413 message states the limit that actually applies.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// A JSON body. Unknown fields, wrong types and syntax errors are reported with
/// the path of the offending field, but never with the offending value: bodies
/// carry credentials, and error messages end up in logs.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| {
                let m = m.trim().to_ascii_lowercase();
                m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
            });
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with `Content-Type: application/json`",
            ));
        }
        let limit = req.extensions().get::<BodyLimit>().map_or(BODY_LIMIT, |l| l.0);
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    format!("request bodies are limited to {} KiB", limit / 1024),
                )
            } else {
                ApiError::bad_request("unreadable_body", "the request body could not be read")
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Every body is a JSON object; serde would otherwise also fill structs from
    // arrays, by position, which no client means.
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        None => return Err(ApiError::bad_request("invalid_json", "the body is empty; send a JSON object")),
        Some(b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n') => {
            return Err(ApiError::bad_request("invalid_field", "the body must be a JSON object (`{...}`)"))
        }
        // Anything else is not JSON at all; let the parser say where.
        Some(_) => {}
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(describe)?;
    de.end().map_err(|e| {
        ApiError::bad_request(
            "invalid_json",
            format!("unexpected data after the JSON value at line {} column {}", e.line(), e.column()),
        )
    })?;
    Ok(value)
}

fn describe(err: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = err.path().to_string();
    let inner = err.inner();
    let at = format!("line {} column {}", inner.line(), inner.column());
    match inner.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof | serde_json::error::Category::Io => {
            ApiError::bad_request("invalid_json", format!("the body is not valid JSON ({at})"))
        }
        serde_json::error::Category::Data => {
            let msg = inner.to_string();
            let field = if path == "." { "the body".to_owned() } else { format!("field `{path}`") };
            if let Some(rest) = msg.strip_prefix("unknown field ") {
                // "`name`, expected one of `a`, `b` at line.." — names only, no values.
                let rest = rest.split(" at line").next().unwrap_or(rest);
                ApiError::bad_request("unknown_field", format!("unknown field {rest}"))
            } else if let Some(rest) = msg.strip_prefix("duplicate field ") {
                let rest = rest.split(" at line").next().unwrap_or(rest);
                ApiError::bad_request("invalid_field", format!("field {rest} appears twice; send it once"))
            } else if let Some(rest) = msg.strip_prefix("missing field ") {
                let rest = rest.split(" at line").next().unwrap_or(rest);
                ApiError::bad_request(
                    "missing_field",
                    format!(
                        "{} is missing the required field {rest}",
                        if path == "." { "the body".to_owned() } else { format!("`{path}`") }
                    ),
                )
            } else if let Some(expected) = msg.split(", expected ").nth(1) {
                // serde's "invalid type: string \"...\", expected X" quotes the value; keep only X.
                let expected = expected.split(" at line").next().unwrap_or(expected);
                ApiError::bad_request(
                    "invalid_field",
                    format!("{field} has the wrong type or value: expected {expected}"),
                )
            } else {
                ApiError::bad_request("invalid_field", format!("{field} is not valid ({at})"))
            }
        }
    }
}

/// Query-string parameters, with JSON errors.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri).map(|q| ApiQuery(q.0)).map_err(|e| {
            let detail = e.body_text();
            let detail = detail.trim_start_matches("Failed to deserialize query string: ");
            ApiError::bad_request("invalid_query", format!("invalid query string: {detail}"))
        })
    }
}

/// `?limit=&cursor=` on every list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl From<ListParams> for PageRequest {
    fn from(p: ListParams) -> Self {
        PageRequest { limit: p.limit, cursor: p.cursor }
    }
}
