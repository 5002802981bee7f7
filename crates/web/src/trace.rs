//! The span every request runs in and the line logged for its response.

use std::time::Duration;

use axum::extract::MatchedPath;
use axum::http::Request;
use axum::response::Response;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::request_id::RequestId;
use tower_http::trace::{DefaultOnRequest, MakeSpan, OnResponse, TraceLayer};
use tracing::Span;

/// A router's trace layer; `family` names the router in every span
/// (`api`, `intake`, `connect`, `console`).
pub fn layer(
    family: &'static str,
) -> TraceLayer<SharedClassifier<ServerErrorsAsFailures>, RequestSpan, DefaultOnRequest, LogResponse> {
    TraceLayer::new_for_http().make_span_with(RequestSpan { family }).on_response(LogResponse)
}

/// The `request` span: the router's family, the method, the matched route
/// template (never the raw path: paths carry magic-link tokens and hook ids),
/// the request id when the router sets one, and `principal`, which the API's
/// guard records once it knows who is calling.
#[derive(Clone, Copy, Debug)]
pub struct RequestSpan {
    family: &'static str,
}

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, req: &Request<B>) -> Span {
        let route = req.extensions().get::<MatchedPath>().map(MatchedPath::as_str).unwrap_or("unmatched");
        let request_id = req.extensions().get::<RequestId>().and_then(|id| id.header_value().to_str().ok());
        tracing::info_span!(
            "request",
            family = self.family,
            method = %req.method(),
            route,
            request_id = request_id.unwrap_or(""),
            principal = tracing::field::Empty
        )
    }
}

/// Logs each response's status and latency inside the request's span.
#[derive(Clone, Copy, Debug)]
pub struct LogResponse;

impl<B> OnResponse<B> for LogResponse {
    fn on_response(self, res: &Response<B>, latency: Duration, _span: &Span) {
        tracing::info!(status = res.status().as_u16(), latency_ms = latency.as_secs_f64() * 1000.0, "response");
    }
}
