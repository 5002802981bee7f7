//! The error statuses every route shares, added to the OpenAPI document from
//! the route table: what the guard, the extractors and the error mapping
//! answer for any route of a kind. Handlers' annotations list only what is
//! their own (success statuses, and errors of their domain, with their
//! description kept when both name a status).

use axum::http::Method;
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{ContentBuilder, HttpMethod, OpenApi, Ref, ResponseBuilder};
use utoipa::Modify;

use super::routes::{specs, RouteSpec};
use ferry_service::auth::Access;

pub struct RouteStatuses;

impl Modify for RouteStatuses {
    fn modify(&self, openapi: &mut OpenApi) {
        for spec in specs() {
            let Some(method) = http_method(&spec.method) else { continue };
            let Some(op) = operation(openapi, spec.path, method) else { continue };
            for (status, why) in shared_statuses(&spec, op) {
                op.responses.responses.entry(status.to_string()).or_insert_with(|| {
                    let body = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
                    let mut response = ResponseBuilder::new().description(why).content("application/json", body);
                    if status == 503 {
                        response = response.header("Retry-After", retry_after());
                    }
                    response.build().into()
                });
            }
        }
    }
}

/// Routes whose writes are unconditional (no version or uniqueness check): no 409.
const NEVER_CONFLICT: &[(&str, &str)] =
    &[("POST", "/v1/sessions"), ("DELETE", "/v1/sessions/current"), ("PUT", "/v1/oauth-clients/{provider}")];

/// The error statuses a route answers whatever its handler does.
pub fn shared_statuses(spec: &RouteSpec, op: &Operation) -> Vec<(u16, &'static str)> {
    let mut out = Vec::new();
    if spec.path.contains('{') {
        out.push((400, "A path id is not a valid id (`invalid_id`)."));
        out.push((404, "Something the path names does not exist, or is not visible to the caller (`not_found`)."));
    }
    if op.request_body.is_some() {
        out.push((400, "The body is not the expected JSON (`invalid_json`, `unknown_field`, `missing_field`, ...)."));
        out.push((413, "The body is larger than the route accepts (`payload_too_large`)."));
        out.push((415, "The body is not sent as `application/json` (`unsupported_media_type`)."));
    }
    let has_query = op.parameters.iter().flatten().any(|p| matches!(p.parameter_in, ParameterIn::Query));
    if has_query {
        out.push((400, "A query parameter is not valid (`invalid_query`)."));
    }
    if spec.access != Access::Public {
        out.push((401, "No valid credentials: missing, malformed, expired or revoked (`unauthorized`)."));
        out.push((403, "The credentials may not use this route, or not in this tenant (`forbidden`)."));
    }
    if can_conflict(spec) {
        out.push((409, "The request clashes with the current state, or it changed meanwhile; retry (`conflict`)."));
    }
    out.push((
        503,
        "One of the hub's backends (store, secret store, file store, run queue, scheduler) is unreachable, too \
         slow or throttling; the request itself is fine: retry it after `Retry-After` seconds (`backend_unavailable`).",
    ));
    out
}

/// The `Retry-After` header of a 503 answer.
fn retry_after() -> Header {
    let seconds = ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(0));
    HeaderBuilder::new().schema(seconds).description(Some("Seconds to wait before retrying")).build()
}

/// Writes are conditional (versions, uniqueness claims), and writes into an
/// archived tenant are refused with 409.
fn can_conflict(spec: &RouteSpec) -> bool {
    let tenant_write = matches!(spec.access, Access::Tenant { write: true } | Access::TenantOperator { write: true });
    let write = spec.method != Method::GET;
    tenant_write || (write && !NEVER_CONFLICT.contains(&(spec.method.as_str(), spec.path)))
}

fn http_method(m: &Method) -> Option<HttpMethod> {
    Some(match *m {
        Method::GET => HttpMethod::Get,
        Method::POST => HttpMethod::Post,
        Method::PUT => HttpMethod::Put,
        Method::PATCH => HttpMethod::Patch,
        Method::DELETE => HttpMethod::Delete,
        _ => return None,
    })
}

fn operation<'a>(openapi: &'a mut OpenApi, path: &str, method: HttpMethod) -> Option<&'a mut Operation> {
    let item = openapi.paths.paths.get_mut(path)?;
    match method {
        HttpMethod::Get => item.get.as_mut(),
        HttpMethod::Post => item.post.as_mut(),
        HttpMethod::Put => item.put.as_mut(),
        HttpMethod::Patch => item.patch.as_mut(),
        HttpMethod::Delete => item.delete.as_mut(),
        _ => None,
    }
}
