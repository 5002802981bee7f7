//! The OpenAPI 3.1 document, generated from the handlers' annotations
//! ([`document`]) and served as committed in `openapi.json` ([`DOCUMENT_JSON`]).

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::handlers::{
    activity, connections, dead_letters, health, integrations, jobs, keys, links, mappings, metrics, notifications,
    oauth_clients, reruns, runs, sessions, tenants, users, webhooks,
};
use super::openapi_statuses::RouteStatuses;

#[derive(OpenApi)]
#[openapi(
    info(title = "Ferry admin API", description = "Tenants, users, API keys, connections, integrations, jobs and mapping configurations of a Ferry hub."),
    paths(
        health::healthz,
        sessions::login, sessions::logout,
        users::me, users::create, users::list, users::get, users::update, users::delete, users::add_membership, users::remove_membership,
        tenants::create, tenants::list, tenants::get, tenants::update, tenants::archive,
        keys::create_admin, keys::list_admin, keys::revoke_admin, keys::create, keys::list, keys::revoke,
        connections::create, connections::list, connections::get, connections::update, connections::delete,
        connections::set_credentials, connections::disconnect,
        links::issue, links::revoke, oauth_clients::set_platform, oauth_clients::set_tenant,
        integrations::list, integrations::get, integrations::update, integrations::publish,
        integrations::list_releases, integrations::get_release,
        jobs::create, jobs::list, jobs::get, jobs::update, jobs::delete,
        runs::trigger, runs::list, runs::get, runs::logs, runs::cancel, reruns::rerun,
        activity::tenant, activity::platform,
        dead_letters::list, dead_letters::get, dead_letters::replay, dead_letters::replay_one,
        dead_letters::discard, dead_letters::discard_one,
        metrics::platform, metrics::tenant,
        mappings::create, mappings::list, mappings::get, mappings::update, mappings::delete,
        webhooks::enable, webhooks::connector_info,
        notifications::create_platform, notifications::list_platform, notifications::delete_platform,
        notifications::create, notifications::list, notifications::delete, notifications::enable, notifications::attempts,
    ),
    modifiers(&Bearer, &RouteStatuses),
    security(("bearer" = []))
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// Generates the document from the handlers' annotations.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// [`document`] as committed in `openapi.json`: pretty-printed, with a final newline.
pub fn document_json() -> String {
    let mut s = serde_json::to_string_pretty(&document()).unwrap_or_default();
    s.push('\n');
    s
}

/// The document as served: `crates/http/src/api/openapi.json`, which a test keeps
/// equal to [`document_json`] (`FERRY_UPDATE_OPENAPI=1 cargo test -p
/// ferry-e2e --test it api::openapi` rewrites it). Serving the committed
/// text, not generating it per request, keeps the generator (the largest
/// function of an API binary, ~0.7 MB) out of the Lambda function binaries.
pub const DOCUMENT_JSON: &str = include_str!("openapi.json");

pub async fn serve() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT_JSON)
}
