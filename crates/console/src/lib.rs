//! The operator console: the screens people run the hub from, served at `/`
//! beside the API (`/v1`). Server-rendered HTML (minijinja, auto-escaped),
//! every form a plain POST carrying a CSRF token bound to the session; the
//! stylesheet is embedded in the binary and no page has inline script or
//! style, so the Content-Security-Policy needs no `unsafe-inline`.
//!
//! Sign-in reuses the API's sessions and login throttle (`ferry_service::sessions`);
//! a console session is scoped to one tenant (`ferry_service::session_scope`),
//! and every page under `/t/{tenant}` is refused unless it names that tenant.

mod activity;
mod assets;
mod dashboard;
mod failure;
mod job_form;
mod job_new;
mod job_settings;
mod jobs;
mod render;
mod runs;
mod session;
mod sign_in;
mod tenants;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

use ferry_service::Hub;

/// Every console route (method, axum path): the isolation matrix walks them all.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("POST", "/logout"),
    ("GET", "/tenants"),
    ("POST", "/tenants/switch"),
    ("GET", "/static/console.css"),
    ("GET", "/t/{tenant}/"),
    ("GET", "/t/{tenant}/activity"),
    ("GET", "/t/{tenant}/jobs"),
    ("GET", "/t/{tenant}/jobs/{job}"),
    ("POST", "/t/{tenant}/jobs/{job}/run"),
    ("POST", "/t/{tenant}/jobs/{job}/pause"),
    ("POST", "/t/{tenant}/jobs/{job}/resume"),
    ("GET", "/t/{tenant}/jobs/{job}/runs/{run}"),
    ("POST", "/t/{tenant}/jobs/{job}/runs/{run}/rerun"),
    ("GET", "/t/{tenant}/jobs/new"),
    ("POST", "/t/{tenant}/jobs/new"),
    ("GET", "/t/{tenant}/jobs/{job}/settings"),
    ("POST", "/t/{tenant}/jobs/{job}/settings"),
    ("GET", "/t/{tenant}/jobs/{job}/schedule"),
    ("POST", "/t/{tenant}/jobs/{job}/schedule"),
    ("GET", "/t/{tenant}/jobs/{job}/connectors"),
    ("GET", "/t/{tenant}/jobs/{job}/webhook"),
    ("POST", "/t/{tenant}/jobs/{job}/webhook"),
];

/// Forms are small: a few fields and a token.
const FORM_LIMIT: usize = 16 * 1024;

/// The console's router. It has no fallback, so it merges with the API's.
pub fn router(hub: Hub) -> Router {
    Router::new()
        .route("/", get(sign_in::home))
        .route("/login", get(sign_in::page).post(sign_in::submit))
        .route("/logout", post(sign_in::sign_out))
        .route("/tenants", get(tenants::switcher))
        .route("/tenants/switch", post(tenants::switch))
        .route("/static/console.css", get(assets::stylesheet))
        .route("/t/{tenant}/", get(dashboard::page))
        .route("/t/{tenant}/activity", get(activity::page))
        .route("/t/{tenant}/jobs", get(jobs::list))
        .route("/t/{tenant}/jobs/{job}", get(jobs::detail))
        .route("/t/{tenant}/jobs/{job}/run", post(jobs::run_now))
        .route("/t/{tenant}/jobs/{job}/pause", post(jobs::pause))
        .route("/t/{tenant}/jobs/{job}/resume", post(jobs::resume))
        .route("/t/{tenant}/jobs/{job}/runs/{run}", get(runs::detail))
        .route("/t/{tenant}/jobs/{job}/runs/{run}/rerun", post(runs::rerun))
        .route("/t/{tenant}/jobs/new", get(job_new::page).post(job_new::submit))
        .route("/t/{tenant}/jobs/{job}/settings", get(job_settings::settings).post(job_settings::save_settings))
        .route("/t/{tenant}/jobs/{job}/schedule", get(job_settings::schedule).post(job_settings::save_schedule))
        .route("/t/{tenant}/jobs/{job}/connectors", get(job_settings::connectors))
        .route("/t/{tenant}/jobs/{job}/webhook", get(job_settings::webhook_page).post(job_settings::webhook))
        .route_layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    let route = req.extensions().get::<MatchedPath>().map(MatchedPath::as_str).unwrap_or("unmatched");
                    tracing::info_span!("console", method = %req.method(), route)
                })
                .on_response(|res: &Response, latency: std::time::Duration, _span: &tracing::Span| {
                    tracing::info!(
                        status = res.status().as_u16(),
                        latency_ms = latency.as_secs_f64() * 1000.0,
                        "response"
                    );
                }),
        )
        .layer(DefaultBodyLimit::max(FORM_LIMIT))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(hub)
}

/// The policy every console response carries: only the console's own
/// stylesheet and images, no script at all, no framing, no form posts
/// elsewhere.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; script-src 'none'; style-src 'self'; img-src 'self' data:; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    let set = |h: &mut HeaderMap, k: header::HeaderName, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(h, header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY);
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::REFERRER_POLICY, "same-origin");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    if !h.contains_key(header::CACHE_CONTROL) {
        // Pages show a tenant's data: no shared or back-button caches.
        set(h, header::CACHE_CONTROL, "no-store");
    }
    res
}
