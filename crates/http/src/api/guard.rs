//! The guard every `/v1` route passes through: validates path ids, resolves the
//! caller, applies the authorization policy, and checks the tenant exists and
//! accepts writes. Handlers only run when it lets the request through.

use std::collections::HashMap;

use axum::extract::{RawPathParams, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use ferry_core::error::Error;
use ferry_core::model::ids::is_valid_id;
use ferry_service::auth::policy::{authorize, check_tenant_state};
use ferry_service::auth::{Access, Principal};
use ferry_service::Hub;

#[derive(Clone)]
pub struct Guard {
    pub hub: Hub,
    pub access: Access,
}

/// The authenticated caller, present on every guarded request that is not public.
#[derive(Clone, Debug)]
pub struct Caller(pub Principal);

/// The path's ids, validated.
#[derive(Clone, Debug, Default)]
pub struct PathIds(pub HashMap<String, String>);

pub async fn guard(
    State(g): State<Guard>,
    params: Result<RawPathParams, axum::extract::rejection::RawPathParamsRejection>,
    mut req: Request,
    next: Next,
) -> Response {
    match check(&g, params, &mut req).await {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

async fn check(
    g: &Guard,
    params: Result<RawPathParams, axum::extract::rejection::RawPathParamsRejection>,
    req: &mut Request,
) -> Result<(), ApiError> {
    let params = params.map_err(|_| ApiError::bad_request("invalid_id", "the URL path is not valid UTF-8"))?;
    let mut ids = HashMap::new();
    for (name, value) in params.iter() {
        if !is_valid_id(value) {
            return Err(ApiError::bad_request(
                "invalid_id",
                format!("`{name}` must be an id of 1 to 64 lowercase letters, digits or '-'"),
            ));
        }
        ids.insert(name.to_owned(), value.to_owned());
    }

    // Public routes ignore credentials, so a stale token cannot block signing in.
    let principal = match g.access {
        Access::Public => None,
        _ => match bearer(req)? {
            Some(token) => Some(g.hub.users().authenticate(&token).await?),
            None => None,
        },
    };
    if let Some(p) = &principal {
        tracing::Span::current().record("principal", p.log_id());
    }
    let tenant_id = ids.get("tenant").map(String::as_str);
    authorize(principal.as_ref(), g.access, tenant_id)?;
    if g.access.needs_tenant() {
        let id = tenant_id.ok_or_else(|| Error::Internal("tenant route without {tenant}".into()))?;
        let tenant = g.hub.tenants().get_tenant(id).await?;
        check_tenant_state(g.access, &tenant)?;
    }
    if let Some(p) = principal {
        req.extensions_mut().insert(Caller(p));
    }
    req.extensions_mut().insert(PathIds(ids));
    Ok(())
}

fn bearer(req: &Request) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let malformed =
        || Error::Unauthorized("the Authorization header must be `Bearer <API key or session token>`".into());
    let value = value.to_str().map_err(|_| malformed())?;
    let (scheme, token) = value.split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(malformed().into());
    }
    Ok(Some(token.trim().to_owned()))
}
