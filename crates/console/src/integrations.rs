//! Integrations (platform-wide, read from inside a tenant): the list, an
//! integration's releases with the default marked, choosing the default
//! release (platform admins, as `PATCH /v1/integrations/{name}`), and the
//! way into creating a job of it.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::{context, Value};

use crate::failure;
use crate::forms::{self, checked, field, FormBody};
use crate::render::page as render;
use crate::session::{see_other, Workspace};
use ferry_service::integrations::IntegrationPatch;
use ferry_service::repo::PageRequest;

pub const PAGE: u32 = 25;

pub async fn list(ws: Workspace, q: Result<Query<forms::Cursor>, QueryRejection>) -> Response {
    let cursor = forms::cursor(q);
    let layout = ws.layout("Integrations", "integrations");
    let page = match ws
        .hub()
        .integrations()
        .list_integrations(&PageRequest { limit: Some(PAGE), cursor: cursor.clone() })
        .await
    {
        Ok(p) => p,
        Err(e) => return failure::page(e, Some(&layout)),
    };
    let items: Vec<Value> = page
        .items
        .iter()
        .map(|i| {
            context! {
                name => i.name,
                href => format!("/t/{}/integrations/{}", ws.id(), i.name),
                description => i.description,
                default_release => i.default_release,
                latest_release => i.latest_release,
            }
        })
        .collect();
    render(
        StatusCode::OK,
        "integrations.html",
        &layout,
        context! { integrations => items, next => crate::jobs::next_href(page.next_cursor.as_deref()), paged => cursor.is_some() },
    )
}

pub async fn detail(
    ws: Workspace,
    Path((_, name)): Path<(String, String)>,
    q: Result<Query<forms::Cursor>, QueryRejection>,
) -> Response {
    let cursor = forms::cursor(q);
    let hub = ws.hub();
    let layout = ws.layout("Integration", "integrations");
    let integration = match hub.integrations().get_integration(&name).await {
        Ok(i) => i,
        Err(e) => return failure::page(e, Some(&layout)),
    };
    let releases =
        match hub.integrations().list_releases(&name, &PageRequest { limit: Some(PAGE), cursor: cursor.clone() }).await
        {
            Ok(p) => p,
            Err(e) => return failure::page(e, Some(&layout)),
        };
    let rows: Vec<Value> = releases
        .items
        .iter()
        .map(|r| {
            context! {
                number => r.number,
                created => crate::runs::when(r.created_at),
                digest => r.digest,
                short => r.digest.chars().take(12).collect::<String>(),
                published_by => r.published_by,
                default => integration.default_release == Some(r.number),
                latest => integration.latest_release == r.number,
            }
        })
        .collect();
    let layout = ws.layout(&integration.name, "integrations");
    render(
        StatusCode::OK,
        "integration.html",
        &layout,
        context! {
            i => context! {
                name => integration.name,
                description => integration.description,
                default_release => integration.default_release,
                latest_release => integration.latest_release,
            },
            admin => ws.signed.session.principal.is_platform_admin(),
            action => format!("/t/{}/integrations/{}/default", ws.id(), name),
            create_job => format!("/t/{}/jobs/new?integration={}", ws.id(), crate::activity::encode(&name)),
            releases => rows,
            next => crate::jobs::next_href(releases.next_cursor.as_deref()),
            paged => cursor.is_some(),
            first => format!("/t/{}/integrations/{}", ws.id(), name),
        },
    )
}

pub async fn set_default(ws: Workspace, Path((_, name)): Path<(String, String)>, body: FormBody) -> Response {
    let f = match checked(&ws.signed, body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let layout = ws.layout("Integration", "integrations");
    if let Err(r) = crate::admin::require(&ws.signed, &layout) {
        return r;
    }
    let Ok(number) = field(&f, "release").parse::<u32>() else {
        return failure::page(
            ferry_core::Error::invalid("invalid_release", "choose a release of this integration"),
            Some(&layout),
        );
    };
    let patch = IntegrationPatch { default_release: Some(number) };
    match ws.hub().integrations().update_integration(&name, patch).await {
        Ok(_) => see_other(&format!("/t/{}/integrations/{}", ws.id(), name)),
        Err(e) => failure::page(e, Some(&layout)),
    }
}
