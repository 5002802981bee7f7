//! What a page answers when something is refused or fails: the status an
//! API client would get, a sentence a person can act on, and never the
//! internal detail (that goes to the log).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use crate::render::{message, Layout};
use ferry_core::Error;

pub fn not_found(layout: Option<&Layout>) -> Response {
    let fallback = Layout::public("Not found");
    message(
        StatusCode::NOT_FOUND,
        layout.unwrap_or(&fallback),
        "Not found",
        "There is nothing here in this workspace. It may have been deleted, or it belongs to another tenant: switch tenant to see it.",
        Some(("/", "Back to the dashboard")),
    )
}

pub fn csrf_refused() -> Response {
    message(
        StatusCode::FORBIDDEN,
        &Layout::public("Please try again"),
        "Please try again",
        "This form expired or was not sent from the console, so nothing was changed. Go back, reload the page and try again.",
        Some(("/", "Back to the console")),
    )
}

/// The answer to a failed service call.
pub fn page(e: Error, layout: Option<&Layout>) -> Response {
    let fallback = Layout::public("Something went wrong");
    let layout = layout.unwrap_or(&fallback);
    match e {
        Error::NotFound { .. } => not_found(Some(layout)),
        Error::Unauthorized(_) => Redirect::to("/login").into_response(),
        Error::Forbidden(message) => message_page(StatusCode::FORBIDDEN, layout, "Not allowed", &message),
        Error::Invalid { message, .. } | Error::InvalidDetails { message, .. } => {
            message_page(StatusCode::BAD_REQUEST, layout, "Something needs attention", &message)
        }
        Error::Conflict { message, .. } => {
            message_page(StatusCode::CONFLICT, layout, "That cannot be done now", &message)
        }
        other => {
            tracing::error!(error = %ferry_core::error::chain(&other), "console page failed");
            let status = match other.unavailable() {
                Some(_) => StatusCode::SERVICE_UNAVAILABLE,
                None => StatusCode::INTERNAL_SERVER_ERROR,
            };
            message_page(
                status,
                layout,
                "Something went wrong",
                "Ferry could not complete this. Nothing was changed; please try again in a moment.",
            )
        }
    }
}

fn message_page(status: StatusCode, layout: &Layout, heading: &str, text: &str) -> Response {
    message(status, layout, heading, text, Some(("/", "Back to the dashboard")))
}
