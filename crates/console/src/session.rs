//! Who is signed in, and in which tenant: the session cookie, the
//! extractors every page starts from ([`Signed`], [`Workspace`]) and the
//! CSRF token bound to the session that every POST carries.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use crate::failure;
use crate::render::Layout;
use ferry_core::crypto::{ct_eq, sha256_hex};
use ferry_core::model::Tenant;
use ferry_core::Error;
use ferry_service::session_scope::ScopedSession;
use ferry_service::Hub;
use ferry_web::cookies::{cookie, secure_attr};

/// The session cookie: the session token itself, which only the server reads.
pub const SESSION_COOKIE: &str = "ferry_console";

/// `Set-Cookie` for a cookie the browser keeps `max_age` seconds (0 clears it).
pub fn set_cookie(res: &mut Response, hub: &Hub, name: &str, value: &str, path: &str, max_age: i64) {
    let v = format!("{name}={value}; Path={path}; HttpOnly; SameSite=Strict; Max-Age={max_age}{}", secure_attr(hub));
    if let Ok(v) = HeaderValue::from_str(&v) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// The caller's address as the socket saw it (never a header a client
/// writes): what sign-in throttling counts per source, as the API does.
/// `None` without `ConnectInfo`; then only the per-account limit applies.
pub struct Source(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Source {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Source(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(a)| a.ip())))
    }
}

/// The CSRF token of a session: a signature over the session's hash, so it
/// is valid for this session only and needs no storage.
pub async fn csrf_for(hub: &Hub, token: &str) -> Result<String, Error> {
    Ok(hub.platform_key().await?.sign_b64("console-csrf", &[&sha256_hex(token)]))
}

/// A signed-in person (any console page outside a tenant).
pub struct Signed {
    pub hub: Hub,
    pub token: String,
    pub session: ScopedSession,
    pub csrf: String,
}

impl Signed {
    pub fn email(&self) -> &str {
        match &self.session.principal {
            ferry_service::auth::Principal::User { email, .. } => email,
            ferry_service::auth::Principal::ApiKey { .. } => "",
        }
    }

    /// Checks the form's CSRF token; refuses the request otherwise.
    // The error is the page answered to this request; boxing it would only move it.
    #[allow(clippy::result_large_err)]
    pub fn check_csrf(&self, sent: &str) -> Result<(), Response> {
        if !sent.is_empty() && ct_eq(sent, &self.csrf) {
            Ok(())
        } else {
            Err(failure::csrf_refused())
        }
    }
}

impl FromRequestParts<Hub> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, hub: &Hub) -> Result<Self, Self::Rejection> {
        let to_sign_in = || Redirect::to("/login").into_response();
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE).map(str::to_owned) else {
            return Err(to_sign_in());
        };
        let session = match hub.users().scoped_session(&token).await {
            Ok(s) => s,
            Err(Error::Unauthorized(_)) => {
                let mut res = to_sign_in();
                set_cookie(&mut res, hub, SESSION_COOKIE, "", "/", 0);
                return Err(res);
            }
            Err(e) => return Err(failure::page(e, None)),
        };
        let csrf = csrf_for(hub, &token).await.map_err(|e| failure::page(e, None))?;
        Ok(Signed { hub: hub.clone(), token, session, csrf })
    }
}

/// A signed-in person inside the tenant their session is scoped to: the
/// extractor of every `/t/{tenant}/…` page. A path naming any other tenant
/// is answered 404, whether that tenant exists or not.
pub struct Workspace {
    pub signed: Signed,
    pub tenant: Tenant,
}

impl Workspace {
    pub fn hub(&self) -> &Hub {
        &self.signed.hub
    }
    pub fn id(&self) -> &str {
        &self.tenant.id
    }
    pub fn layout(&self, title: &str, nav: &'static str) -> Layout {
        Layout::new(title, &self.signed).in_tenant(&self.tenant, nav)
    }
}

impl FromRequestParts<Hub> for Workspace {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, hub: &Hub) -> Result<Self, Self::Rejection> {
        let signed = Signed::from_request_parts(parts, hub).await?;
        let named = match RawPathParams::from_request_parts(parts, hub).await {
            Ok(params) => params.iter().find(|(k, _)| *k == "tenant").map(|(_, v)| v.to_owned()),
            Err(_) => None,
        };
        let Some(scope) = signed.session.tenant.clone() else {
            // Signed in, but no tenant chosen yet: choose one first.
            return Err(Redirect::to("/tenants").into_response());
        };
        if named.as_deref() != Some(scope.as_str()) {
            tracing::warn!(principal = %signed.session.principal.log_id(), "console path names a tenant outside the session");
            return Err(failure::not_found(Some(&Layout::new("Not found", &signed))));
        }
        let tenant = match hub.tenants().get_tenant(&scope).await {
            Ok(t) => t,
            Err(e) => return Err(failure::page(e, Some(&Layout::new("Not found", &signed)))),
        };
        Ok(Workspace { signed, tenant })
    }
}

/// A 303 to `to` (after a POST: the browser GETs the result).
pub fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_owned())]).into_response()
}
