//! The route table: every route, its method and the [`Access`] it requires.
//! The router, the OpenAPI check and the tenant-isolation matrix test all read
//! this one table, so a route cannot exist without a declared access rule.

use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::routing::{delete, get, patch, post, put, MethodRouter};
use axum::Extension;

use super::extract::BodyLimit;
use super::handlers::{
    activity, connections, dead_letters, health, integrations, jobs, keys, links, mappings, metrics, notifications,
    oauth_clients, reruns, runs, sessions, tenants, users, webhooks,
};
use ferry_service::auth::Access;
use ferry_service::Hub;

#[derive(Debug, Clone)]
pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    pub family: Family,
}

/// Endpoint families. Each AWS function serves some families, so its IAM policy
/// only needs what those routes touch; the local host serves them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// `/healthz`, `/openapi.json`: served by every function.
    Common,
    /// Sessions, users, tenants, API keys, run metrics.
    Platform,
    /// Connection profiles and their credentials, webhook secrets and notification
    /// endpoints: the only family touching secrets.
    Connections,
    /// Integrations and releases, jobs, mapping configurations, runs (and activity, across jobs).
    Integrations,
}

const ADMIN: Access = Access::PlatformAdmin;
const READ: Access = Access::Tenant { write: false };
const WRITE: Access = Access::Tenant { write: true };
const OPS_READ: Access = Access::TenantOperator { write: false };
const OPS_WRITE: Access = Access::TenantOperator { write: true };

/// Every route of every family.
pub fn table() -> Vec<(RouteSpec, MethodRouter<Hub>)> {
    [Family::Common, Family::Platform, Family::Connections, Family::Integrations]
        .into_iter()
        .flat_map(Family::routes)
        .collect()
}

impl Family {
    /// This family's routes. Always inlined, so a function that names its
    /// families as constants (`router_for(hub, &[Family::Platform])`) calls
    /// only their tables, and the other families' handlers, with all the code
    /// only they reach, are left out of its binary.
    #[inline(always)]
    pub fn routes(self) -> Vec<(RouteSpec, MethodRouter<Hub>)> {
        match self {
            Family::Common => common(),
            Family::Platform => platform(),
            Family::Connections => connections(),
            Family::Integrations => integrations(),
        }
    }
}

/// The family a route belongs to, by its path.
fn family_of(path: &str) -> Family {
    if path == "/healthz" || path == "/openapi.json" {
        Family::Common
    } else if path.starts_with("/v1/tenants/{tenant}/connections")
        || path.starts_with("/v1/oauth-clients")
        || path.starts_with("/v1/tenants/{tenant}/oauth-clients")
        || path.ends_with("/webhook")
        || path.ends_with("/connector-info")
        || path.contains("/notification-endpoints")
    {
        Family::Connections
    } else if path.starts_with("/v1/integrations")
        || path.starts_with("/v1/tenants/{tenant}/jobs")
        || path.starts_with("/v1/tenants/{tenant}/mappings")
        || path == "/v1/tenants/{tenant}/runs"
        || path.starts_with("/v1/tenants/{tenant}/dead-letters")
        || path == "/v1/runs"
    {
        Family::Integrations
    } else {
        Family::Platform
    }
}

/// One route; its family comes from its path ([`family_of`]), and each
/// family's table holds only its own (checked by a test).
fn r(method: Method, path: &'static str, access: Access, handler: MethodRouter<Hub>) -> (RouteSpec, MethodRouter<Hub>) {
    (RouteSpec { method, path, access, family: family_of(path) }, handler)
}

/// The routes every function serves.
fn common() -> Vec<(RouteSpec, MethodRouter<Hub>)> {
    use Method as M;
    vec![
        r(M::GET, "/healthz", Access::Public, get(health::healthz)),
        r(M::GET, "/openapi.json", Access::Public, get(super::openapi::serve)),
    ]
}

/// Sessions, users, tenants, API keys, run metrics.
fn platform() -> Vec<(RouteSpec, MethodRouter<Hub>)> {
    use Method as M;
    vec![
        r(M::POST, "/v1/sessions", Access::Public, post(sessions::login)),
        r(M::DELETE, "/v1/sessions/current", Access::Authenticated, delete(sessions::logout)),
        r(M::GET, "/v1/me", Access::Authenticated, get(users::me)),
        r(M::POST, "/v1/tenants", ADMIN, post(tenants::create)),
        r(M::GET, "/v1/tenants", Access::Authenticated, get(tenants::list)),
        r(M::GET, "/v1/tenants/{tenant}", READ, get(tenants::get)),
        r(M::PATCH, "/v1/tenants/{tenant}", ADMIN, patch(tenants::update)),
        r(M::POST, "/v1/tenants/{tenant}/archive", ADMIN, post(tenants::archive)),
        r(M::POST, "/v1/users", ADMIN, post(users::create)),
        r(M::GET, "/v1/users", ADMIN, get(users::list)),
        r(M::GET, "/v1/users/{user}", ADMIN, get(users::get)),
        r(M::PATCH, "/v1/users/{user}", ADMIN, patch(users::update)),
        r(M::DELETE, "/v1/users/{user}", ADMIN, delete(users::delete)),
        r(M::PUT, "/v1/users/{user}/memberships/{tenant}", ADMIN, put(users::add_membership)),
        r(M::DELETE, "/v1/users/{user}/memberships/{tenant}", ADMIN, delete(users::remove_membership)),
        r(M::POST, "/v1/api-keys", ADMIN, post(keys::create_admin)),
        r(M::GET, "/v1/api-keys", ADMIN, get(keys::list_admin)),
        r(M::DELETE, "/v1/api-keys/{key}", ADMIN, delete(keys::revoke_admin)),
        r(M::POST, "/v1/tenants/{tenant}/api-keys", OPS_WRITE, post(keys::create)),
        r(M::GET, "/v1/tenants/{tenant}/api-keys", OPS_READ, get(keys::list)),
        r(M::DELETE, "/v1/tenants/{tenant}/api-keys/{key}", OPS_WRITE, delete(keys::revoke)),
        // Run metrics read table items only (their aggregates), as the rest of this family.
        r(M::GET, "/v1/metrics", ADMIN, get(metrics::platform)),
        r(M::GET, "/v1/tenants/{tenant}/metrics", READ, get(metrics::tenant)),
    ]
}

/// Connection profiles and their credentials, OAuth clients, webhook secrets, notification endpoints.
fn connections() -> Vec<(RouteSpec, MethodRouter<Hub>)> {
    use Method as M;
    vec![
        r(M::POST, "/v1/tenants/{tenant}/connections", WRITE, post(connections::create)),
        r(M::GET, "/v1/tenants/{tenant}/connections", READ, get(connections::list)),
        r(M::GET, "/v1/tenants/{tenant}/connections/{connection}", READ, get(connections::get)),
        r(M::PATCH, "/v1/tenants/{tenant}/connections/{connection}", WRITE, patch(connections::update)),
        r(M::DELETE, "/v1/tenants/{tenant}/connections/{connection}", WRITE, delete(connections::delete)),
        r(
            M::PUT,
            "/v1/tenants/{tenant}/connections/{connection}/credentials",
            WRITE,
            put(connections::set_credentials),
        ),
        r(M::POST, "/v1/tenants/{tenant}/connections/{connection}/disconnect", WRITE, post(connections::disconnect)),
        r(M::POST, "/v1/tenants/{tenant}/connections/{connection}/link", WRITE, post(links::issue)),
        r(M::DELETE, "/v1/tenants/{tenant}/connections/{connection}/link", WRITE, delete(links::revoke)),
        r(M::PUT, "/v1/oauth-clients/{provider}", ADMIN, put(oauth_clients::set_platform)),
        r(M::PUT, "/v1/tenants/{tenant}/oauth-clients/{provider}", OPS_WRITE, put(oauth_clients::set_tenant)),
        r(M::PUT, "/v1/tenants/{tenant}/jobs/{job}/webhook", OPS_WRITE, put(webhooks::enable)),
        r(M::GET, "/v1/tenants/{tenant}/jobs/{job}/connector-info", READ, get(webhooks::connector_info)),
        r(M::POST, "/v1/notification-endpoints", ADMIN, post(notifications::create_platform)),
        r(M::GET, "/v1/notification-endpoints", ADMIN, get(notifications::list_platform)),
        r(M::DELETE, "/v1/notification-endpoints/{endpoint}", ADMIN, delete(notifications::delete_platform)),
        r(M::POST, "/v1/tenants/{tenant}/notification-endpoints", OPS_WRITE, post(notifications::create)),
        r(M::GET, "/v1/tenants/{tenant}/notification-endpoints", OPS_READ, get(notifications::list)),
        r(
            M::DELETE,
            "/v1/tenants/{tenant}/notification-endpoints/{endpoint}",
            OPS_WRITE,
            delete(notifications::delete),
        ),
        r(
            M::POST,
            "/v1/tenants/{tenant}/notification-endpoints/{endpoint}/enable",
            OPS_WRITE,
            post(notifications::enable),
        ),
        r(
            M::GET,
            "/v1/tenants/{tenant}/notification-endpoints/{endpoint}/attempts",
            OPS_READ,
            get(notifications::attempts),
        ),
    ]
}

/// Integrations and releases, jobs, mapping configurations, runs.
fn integrations() -> Vec<(RouteSpec, MethodRouter<Hub>)> {
    use Method as M;
    vec![
        r(M::GET, "/v1/integrations", Access::Authenticated, get(integrations::list)),
        r(M::GET, "/v1/integrations/{integration}", Access::Authenticated, get(integrations::get)),
        r(M::PATCH, "/v1/integrations/{integration}", ADMIN, patch(integrations::update)),
        r(
            M::POST,
            "/v1/integrations/{integration}/releases",
            ADMIN,
            // Manifests can be far larger than other bodies.
            post(integrations::publish)
                .layer::<_, std::convert::Infallible>(DefaultBodyLimit::max(integrations::PUBLISH_BODY_LIMIT))
                .layer::<_, std::convert::Infallible>(Extension(BodyLimit(integrations::PUBLISH_BODY_LIMIT))),
        ),
        r(M::GET, "/v1/integrations/{integration}/releases", Access::Authenticated, get(integrations::list_releases)),
        r(
            M::GET,
            "/v1/integrations/{integration}/releases/{release}",
            Access::Authenticated,
            get(integrations::get_release),
        ),
        r(M::POST, "/v1/tenants/{tenant}/jobs", WRITE, post(jobs::create)),
        r(M::GET, "/v1/tenants/{tenant}/jobs", READ, get(jobs::list)),
        r(M::GET, "/v1/tenants/{tenant}/jobs/{job}", READ, get(jobs::get)),
        r(M::PATCH, "/v1/tenants/{tenant}/jobs/{job}", WRITE, patch(jobs::update)),
        r(M::DELETE, "/v1/tenants/{tenant}/jobs/{job}", WRITE, delete(jobs::delete)),
        r(M::POST, "/v1/tenants/{tenant}/jobs/{job}/runs", WRITE, post(runs::trigger)),
        r(M::GET, "/v1/tenants/{tenant}/jobs/{job}/runs", READ, get(runs::list)),
        r(M::GET, "/v1/tenants/{tenant}/jobs/{job}/runs/{run}", READ, get(runs::get)),
        r(M::GET, "/v1/tenants/{tenant}/jobs/{job}/runs/{run}/logs", READ, get(runs::logs)),
        // Operators (admins, the tenant's users) only: an integration's API key may
        // trigger runs, but stopping one is a person's decision.
        r(M::POST, "/v1/tenants/{tenant}/jobs/{job}/runs/{run}/cancel", OPS_WRITE, post(runs::cancel)),
        r(M::GET, "/v1/tenants/{tenant}/runs", READ, get(activity::tenant)),
        r(M::GET, "/v1/runs", ADMIN, get(activity::platform)),
        // Like triggering a run: API keys may rerun one.
        r(M::POST, "/v1/tenants/{tenant}/jobs/{job}/runs/{run}/rerun", WRITE, post(reruns::rerun)),
        r(M::GET, "/v1/tenants/{tenant}/dead-letters", READ, get(dead_letters::list)),
        r(M::GET, "/v1/tenants/{tenant}/dead-letters/{dead_letter}", READ, get(dead_letters::get)),
        // Like a rerun: API keys may replay. Giving records up is a person's decision.
        r(M::POST, "/v1/tenants/{tenant}/dead-letters/replay", WRITE, post(dead_letters::replay)),
        r(M::POST, "/v1/tenants/{tenant}/dead-letters/{dead_letter}/replay", WRITE, post(dead_letters::replay_one)),
        r(M::POST, "/v1/tenants/{tenant}/dead-letters/discard", OPS_WRITE, post(dead_letters::discard)),
        r(
            M::POST,
            "/v1/tenants/{tenant}/dead-letters/{dead_letter}/discard",
            OPS_WRITE,
            post(dead_letters::discard_one),
        ),
        r(M::POST, "/v1/tenants/{tenant}/mappings", WRITE, post(mappings::create)),
        r(M::GET, "/v1/tenants/{tenant}/mappings", READ, get(mappings::list)),
        r(M::GET, "/v1/tenants/{tenant}/mappings/{mapping}", READ, get(mappings::get)),
        r(M::PATCH, "/v1/tenants/{tenant}/mappings/{mapping}", WRITE, patch(mappings::update)),
        r(M::DELETE, "/v1/tenants/{tenant}/mappings/{mapping}", WRITE, delete(mappings::delete)),
    ]
}

/// The table without handlers, for tests and docs.
pub fn specs() -> Vec<RouteSpec> {
    table().into_iter().map(|(s, _)| s).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_family_table_holds_only_routes_of_that_family() {
        for family in [Family::Common, Family::Platform, Family::Connections, Family::Integrations] {
            for (spec, _) in family.routes() {
                assert_eq!(spec.family, family, "{} {} is in the table of {family:?}", spec.method, spec.path);
            }
        }
        assert_eq!(table().len(), specs().len());
    }
}
