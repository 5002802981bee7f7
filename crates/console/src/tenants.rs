//! The tenant switcher: the tenants a person may enter (a user's
//! memberships, every tenant for a platform admin), and choosing one scopes
//! the session to it. Platform admins create tenants there too
//! (`tenant_new`).

use std::collections::BTreeMap;

use axum::extract::rejection::FormRejection;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use minijinja::context;
use serde::Deserialize;

use crate::failure;
use crate::forms;
use crate::render::{page as render, Layout};
use crate::session::{see_other, Signed};
use ferry_core::Error;
use ferry_service::repo::PageRequest;
use ferry_service::Hub;

pub const PAGE: u32 = 25;

/// Where a fresh session goes: straight into the workspace when the person
/// has exactly one tenant, else to the switcher.
pub async fn landing(hub: &Hub, token: &str) -> Result<String, Error> {
    let session = hub.users().scoped_session(token).await?;
    let page = hub.tenants().list_tenants(&session.principal, &PageRequest { limit: Some(2), cursor: None }).await?;
    match page.items.as_slice() {
        [only] if page.next_cursor.is_none() => {
            hub.users().scope_session(token, &only.id).await?;
            Ok(format!("/t/{}/", only.id))
        }
        _ => Ok("/tenants".to_owned()),
    }
}

#[derive(Deserialize)]
pub struct Cursor {
    cursor: Option<String>,
}

pub async fn switcher(
    signed: Signed,
    query: Result<Query<Cursor>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let cursor = query.ok().and_then(|Query(c)| c.cursor).filter(|c| !c.is_empty());
    switcher_page(&signed, cursor, StatusCode::OK, context! {}).await
}

/// The switcher, with the new-tenant form's values and problem (`form`)
/// when that form was refused.
pub async fn switcher_page(
    signed: &Signed,
    cursor: Option<String>,
    status: StatusCode,
    form: minijinja::Value,
) -> Response {
    let layout = Layout::new("Choose a tenant", signed).at("tenants");
    let page = match signed
        .hub
        .tenants()
        .list_tenants(&signed.session.principal, &PageRequest { limit: Some(PAGE), cursor: cursor.clone() })
        .await
    {
        Ok(p) => p,
        Err(e) => return failure::page(e, Some(&layout)),
    };
    let tenants: Vec<_> = page
        .items
        .iter()
        .map(|t| context! { id => t.id, name => t.name, archived => t.archived, paused => t.paused })
        .collect();
    render(
        status,
        "tenants.html",
        &layout,
        context! {
            tenants => tenants,
            current => signed.session.tenant,
            admin => signed.session.principal.is_platform_admin(),
            next => crate::jobs::next_href(page.next_cursor.as_deref()),
            paged => cursor.is_some(),
            form => form,
        },
    )
}

pub async fn switch(signed: Signed, body: Result<Form<BTreeMap<String, String>>, FormRejection>) -> Response {
    let f = match forms::checked(&signed, body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let tenant = f.get("tenant").map_or("", String::as_str);
    match signed.hub.users().scope_session(&signed.token, tenant).await {
        Ok(_) => see_other(&format!("/t/{tenant}/")),
        Err(e) => failure::page(e, Some(&Layout::new("Choose a tenant", &signed).at("tenants"))),
    }
}
