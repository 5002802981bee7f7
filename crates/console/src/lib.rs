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
mod admin;
mod api_keys;
mod assets;
mod chart;
mod connection_fields;
mod connections;
mod dashboard;
mod dead_letters;
mod failure;
mod forms;
mod integrations;
mod job_form;
mod job_new;
mod job_settings;
mod jobs;
mod mapping_lines;
mod mappings;
mod render;
mod runs;
mod session;
mod sign_in;
mod tenant_new;
mod tenants;
mod users;

use axum::extract::DefaultBodyLimit;
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
    ("GET", "/admin/users"),
    ("GET", "/admin/users/new"),
    ("POST", "/admin/users"),
    ("GET", "/admin/users/{user}"),
    ("POST", "/admin/users/{user}/role"),
    ("POST", "/admin/users/{user}/memberships"),
    ("POST", "/admin/users/{user}/memberships/remove"),
    ("POST", "/admin/users/{user}/deactivate"),
    ("POST", "/admin/users/{user}/activate"),
    ("GET", "/t/{tenant}/api-keys"),
    ("POST", "/t/{tenant}/api-keys"),
    ("GET", "/t/{tenant}/api-keys/{key}/revoke"),
    ("POST", "/t/{tenant}/api-keys/{key}/revoke"),
    ("GET", "/t/{tenant}/integrations"),
    ("GET", "/t/{tenant}/integrations/{integration}"),
    ("POST", "/t/{tenant}/integrations/{integration}/default"),
    ("GET", "/t/{tenant}/dead-letters"),
    ("POST", "/t/{tenant}/dead-letters/replay"),
    ("POST", "/t/{tenant}/dead-letters/discard"),
    ("POST", "/t/{tenant}/dead-letters/{letter}/replay"),
    ("GET", "/t/{tenant}/dead-letters/{letter}/discard"),
    ("POST", "/t/{tenant}/dead-letters/{letter}/discard"),
    ("GET", "/t/{tenant}/connections"),
    ("POST", "/t/{tenant}/connections"),
    ("GET", "/t/{tenant}/connections/new"),
    ("GET", "/t/{tenant}/connections/{connection}"),
    ("POST", "/t/{tenant}/connections/{connection}"),
    ("POST", "/t/{tenant}/connections/{connection}/credentials"),
    ("POST", "/t/{tenant}/connections/{connection}/test"),
    ("POST", "/t/{tenant}/connections/{connection}/link"),
    ("POST", "/t/{tenant}/connections/{connection}/link/revoke"),
    ("GET", "/t/{tenant}/connections/{connection}/disconnect"),
    ("POST", "/t/{tenant}/connections/{connection}/disconnect"),
    ("GET", "/t/{tenant}/mappings"),
    ("POST", "/t/{tenant}/mappings"),
    ("GET", "/t/{tenant}/mappings/new"),
    ("GET", "/t/{tenant}/mappings/{mapping}"),
    ("POST", "/t/{tenant}/mappings/{mapping}"),
    ("GET", "/t/{tenant}/jobs/new"),
    ("POST", "/t/{tenant}/jobs/new"),
    ("GET", "/t/{tenant}/jobs/{job}/settings"),
    ("POST", "/t/{tenant}/jobs/{job}/settings"),
    ("GET", "/t/{tenant}/jobs/{job}/schedule"),
    ("POST", "/t/{tenant}/jobs/{job}/schedule"),
    ("GET", "/t/{tenant}/jobs/{job}/connectors"),
    ("GET", "/t/{tenant}/jobs/{job}/webhook"),
    ("POST", "/t/{tenant}/jobs/{job}/webhook"),
    ("POST", "/tenants"),
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
        .route("/admin/users", get(users::list).post(users::create))
        .route("/admin/users/new", get(users::new))
        .route("/admin/users/{user}", get(users::detail))
        .route("/admin/users/{user}/role", post(users::set_role))
        .route("/admin/users/{user}/memberships", post(users::add_membership))
        .route("/admin/users/{user}/memberships/remove", post(users::remove_membership))
        .route("/admin/users/{user}/deactivate", post(users::deactivate))
        .route("/admin/users/{user}/activate", post(users::activate))
        .route("/t/{tenant}/api-keys", get(api_keys::list).post(api_keys::create))
        .route("/t/{tenant}/api-keys/{key}/revoke", get(api_keys::confirm_revoke).post(api_keys::revoke))
        .route("/t/{tenant}/integrations", get(integrations::list))
        .route("/t/{tenant}/integrations/{integration}", get(integrations::detail))
        .route("/t/{tenant}/integrations/{integration}/default", post(integrations::set_default))
        .route("/t/{tenant}/dead-letters", get(dead_letters::list))
        .route("/t/{tenant}/dead-letters/replay", post(dead_letters::replay))
        .route("/t/{tenant}/dead-letters/discard", post(dead_letters::discard))
        .route("/t/{tenant}/dead-letters/{letter}/replay", post(dead_letters::replay_one))
        .route(
            "/t/{tenant}/dead-letters/{letter}/discard",
            get(dead_letters::confirm_discard).post(dead_letters::discard_one),
        )
        .route("/t/{tenant}/connections", get(connections::list).post(connections::create))
        .route("/t/{tenant}/connections/new", get(connections::new))
        .route("/t/{tenant}/connections/{connection}", get(connections::detail).post(connections::update))
        .route("/t/{tenant}/connections/{connection}/credentials", post(connections::credentials))
        .route("/t/{tenant}/connections/{connection}/test", post(connections::test))
        .route("/t/{tenant}/connections/{connection}/link", post(connections::issue_link))
        .route("/t/{tenant}/connections/{connection}/link/revoke", post(connections::revoke_link))
        .route(
            "/t/{tenant}/connections/{connection}/disconnect",
            get(connections::confirm_disconnect).post(connections::disconnect),
        )
        .route("/t/{tenant}/mappings", get(mappings::list).post(mappings::create))
        .route("/t/{tenant}/mappings/new", get(mappings::new))
        .route("/t/{tenant}/mappings/{mapping}", get(mappings::detail).post(mappings::update))
        .route("/t/{tenant}/jobs/new", get(job_new::page).post(job_new::submit))
        .route("/t/{tenant}/jobs/{job}/settings", get(job_settings::settings).post(job_settings::save_settings))
        .route("/t/{tenant}/jobs/{job}/schedule", get(job_settings::schedule).post(job_settings::save_schedule))
        .route("/t/{tenant}/jobs/{job}/connectors", get(job_settings::connectors))
        .route("/t/{tenant}/jobs/{job}/webhook", get(job_settings::webhook_page).post(job_settings::webhook))
        .route("/tenants", post(tenant_new::create))
        .route_layer(ferry_web::trace::layer("console"))
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
