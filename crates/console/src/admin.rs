//! Platform-admin pages: the [`Admin`] extractor refuses everyone else with
//! the answer the API's policy gives (`ferry_service::auth::authorize`,
//! 403), so the console and the API draw the line in one place.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::Response;

use crate::failure;
use crate::render::Layout;
use crate::session::Signed;
use ferry_service::auth::{authorize, Access};
use ferry_service::Hub;

/// Whether the signed-in person may do what `/v1` reserves for platform admins.
// The error is the page answered to this request; boxing it would only move it.
#[allow(clippy::result_large_err)]
pub fn require(signed: &Signed, layout: &Layout) -> Result<(), Response> {
    authorize(Some(&signed.session.principal), Access::PlatformAdmin, None).map_err(|e| {
        tracing::warn!(principal = %signed.session.principal.log_id(), "console admin page refused");
        failure::page(e, Some(layout))
    })
}

/// A signed-in platform admin (the `/admin/…` pages).
pub struct Admin(pub Signed);

impl FromRequestParts<Hub> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, hub: &Hub) -> Result<Self, Self::Rejection> {
        let signed = Signed::from_request_parts(parts, hub).await?;
        require(&signed, &Layout::new("Not allowed", &signed))?;
        Ok(Admin(signed))
    }
}
