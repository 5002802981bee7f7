//! The admin REST API (axum). Handlers are thin; every route passes the guard.

pub mod error;
pub mod extract;
pub mod guard;
pub mod handlers;
pub mod openapi;
pub mod openapi_statuses;
pub mod routes;
pub mod source_addr;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, StatusCode};
use axum::middleware;
use axum::Router;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};

use self::error::ApiError;
use self::guard::Guard;
pub use self::routes::Family;
use ferry_service::Hub;

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Builds the whole admin API router over a hub.
pub fn router(hub: Hub) -> Router {
    router_for(hub, &[Family::Platform, Family::Connections, Family::Integrations])
}

/// Builds a router serving only the given families (plus the common routes).
///
/// Always inlined, with [`Family::routes`]: a function passing its families as
/// a constant (`router_for(hub, &[Family::Platform])`) then links only those
/// families' handlers (see the root Cargo.toml on binary sizes).
#[inline(always)]
pub fn router_for(hub: Hub, families: &[Family]) -> Router {
    let mut routes = Family::Common.routes();
    for (i, family) in families.iter().enumerate() {
        if *family != Family::Common && !families[..i].contains(family) {
            routes.extend(family.routes());
        }
    }
    router_over(hub, routes)
}

fn router_over(hub: Hub, routes: Vec<(routes::RouteSpec, axum::routing::MethodRouter<Hub>)>) -> Router {
    let mut router = Router::new();
    for (spec, handler) in routes {
        let guard = Guard { hub: hub.clone(), access: spec.access };
        router = router.route(spec.path, handler.route_layer(middleware::from_fn_with_state(guard, guard::guard)));
    }
    router
        .route_layer(ferry_web::trace::layer("api"))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route; see /openapi.json") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not accept that method; see /openapi.json",
            )
        })
        .layer(DefaultBodyLimit::max(extract::BODY_LIMIT))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), UlidRequestId))
        .with_state(hub)
}

#[derive(Clone, Copy)]
struct UlidRequestId;

impl MakeRequestId for UlidRequestId {
    fn make_request_id<B>(&mut self, _request: &axum::http::Request<B>) -> Option<RequestId> {
        ulid::Ulid::new().to_string().parse().ok().map(RequestId::new)
    }
}
