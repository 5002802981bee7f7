//! The tenant's API keys: the list (prefix, role, scopes, expiry; never a
//! secret, which Ferry does not keep), creating one (the key is shown once,
//! on the page answering the form, as the API answers it once), and
//! revoking one after a confirmation.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use minijinja::{context, Value};

use crate::failure;
use crate::forms::{self, checked, field, ticked, FormBody, Problem};
use crate::render::page as render;
use crate::session::{see_other, Workspace};
use ferry_core::model::{ApiKey, KeyScope};
use ferry_service::auth::Principal;
use ferry_service::keys::NewApiKeyRequest;
use ferry_service::repo::PageRequest;

pub const PAGE: u32 = 25;

fn scope_name(s: KeyScope) -> &'static str {
    match s {
        KeyScope::Api => "api",
        KeyScope::Push => "push",
    }
}

fn row(ws: &Workspace, k: &ApiKey, now: DateTime<Utc>) -> Value {
    let (state, tone) = if k.revoked_at.is_some() {
        ("Revoked", "idle")
    } else if k.expires_at.is_some_and(|e| e <= now) {
        ("Expired", "warn")
    } else {
        ("Active", "ok")
    };
    context! {
        id => k.id,
        name => k.name,
        prefix => k.prefix,
        role => if k.role == ferry_core::model::KeyRole::Admin { "admin" } else { "api_user" },
        scopes => k.scopes.iter().map(|s| scope_name(*s)).collect::<Vec<_>>(),
        created => crate::runs::when(k.created_at),
        expires => k.expires_at.map(crate::runs::when),
        revoked => k.revoked_at.map(crate::runs::when),
        state => state,
        tone => tone,
        usable => k.revoked_at.is_none(),
        revoke_href => format!("/t/{}/api-keys/{}/revoke", ws.id(), k.id),
    }
}

async fn list_page(
    ws: &Workspace,
    cursor: Option<String>,
    status: StatusCode,
    v: Value,
    problem: Option<Problem>,
) -> Response {
    let layout = ws.layout("API keys", "api-keys");
    let hub = ws.hub();
    let page =
        match hub.users().list_api_keys(ws.id(), &PageRequest { limit: Some(PAGE), cursor: cursor.clone() }).await {
            Ok(p) => p,
            Err(e) => return failure::page(e, Some(&layout)),
        };
    let now = hub.clock.now();
    let keys: Vec<Value> = page.items.iter().map(|k| row(ws, k, now)).collect();
    render(
        status,
        "api_keys.html",
        &layout,
        context! {
            keys => keys,
            v => v,
            error => problem.as_ref().map(|p| context! { field => p.field, message => p.message }),
            next => crate::jobs::next_href(page.next_cursor.as_deref()),
            paged => cursor.is_some(),
        },
    )
}

pub async fn list(ws: Workspace, q: Result<Query<forms::Cursor>, QueryRejection>) -> Response {
    let cursor = forms::cursor(q);
    list_page(&ws, cursor, StatusCode::OK, context! { api => true }, None).await
}

/// A date field is the start of that day, UTC; an RFC 3339 time is taken as it is.
fn expiry(s: &str) -> Result<Option<DateTime<Utc>>, String> {
    if s.is_empty() {
        return Ok(None);
    }
    let full = if s.len() == 10 { format!("{s}T00:00:00Z") } else { s.to_owned() };
    DateTime::parse_from_rfc3339(&full)
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(|_| "Give the expiry as a date, such as 2030-01-31.".to_owned())
}

fn field_of(code: &str) -> &'static str {
    match code {
        "invalid_name" => "name",
        "invalid_expiry" => "expires_at",
        "invalid_scopes" | "invalid_scope" => "scopes",
        _ => "name",
    }
}

pub async fn create(ws: Workspace, body: FormBody) -> Response {
    let f = match checked(&ws.signed, body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let v = context! {
        name => field(&f, "name"),
        expires_at => field(&f, "expires_at"),
        api => ticked(&f, "scope_api"),
        push => ticked(&f, "scope_push"),
    };
    let bad = |field: &'static str, message: String| Some(Problem { field, message });
    let expires_at = match expiry(field(&f, "expires_at")) {
        Ok(e) => e,
        Err(m) => return list_page(&ws, None, StatusCode::BAD_REQUEST, v, bad("expires_at", m)).await,
    };
    let mut scopes = Vec::new();
    if ticked(&f, "scope_api") {
        scopes.push(KeyScope::Api);
    }
    if ticked(&f, "scope_push") {
        scopes.push(KeyScope::Push);
    }
    if scopes.is_empty() {
        let m = "Choose what the key may do: the API, pushing webhook deliveries, or both.".to_owned();
        return list_page(&ws, None, StatusCode::BAD_REQUEST, v, bad("scopes", m)).await;
    }
    let creator = match &ws.signed.session.principal {
        Principal::User { user_id, .. } => Some(user_id.as_str()),
        Principal::ApiKey { .. } => None,
    };
    let req = NewApiKeyRequest { name: field(&f, "name").to_owned(), expires_at, scopes: Some(scopes) };
    match ws.hub().users().create_api_key(ws.id(), req, creator).await {
        Ok(created) => {
            let now = ws.hub().clock.now();
            let key_row = match ws.hub().users().get_api_key(ws.id(), &created.api_key.id).await {
                Ok(k) => row(&ws, &k, now),
                Err(e) => return failure::page(e, Some(&ws.layout("API keys", "api-keys"))),
            };
            render(
                StatusCode::CREATED,
                "api_key_created.html",
                &ws.layout("New API key", "api-keys"),
                context! { key => created.key, k => key_row },
            )
        }
        Err(e) => match forms::problem(&e, field_of) {
            Some(p) => list_page(&ws, None, StatusCode::BAD_REQUEST, v, Some(p)).await,
            None => failure::page(e, Some(&ws.layout("API keys", "api-keys"))),
        },
    }
}

async fn confirm_page(ws: &Workspace, key: &str, status: StatusCode, problem: Option<Problem>) -> Response {
    let layout = ws.layout("Revoke API key", "api-keys");
    let k = match ws.hub().users().get_api_key(ws.id(), key).await {
        Ok(k) => k,
        Err(e) => return failure::page(e, Some(&layout)),
    };
    let now = ws.hub().clock.now();
    render(
        status,
        "api_key_revoke.html",
        &layout,
        context! {
            k => row(ws, &k, now),
            action => format!("/t/{}/api-keys/{}/revoke", ws.id(), k.id),
            error => problem.as_ref().map(|p| context! { field => p.field, message => p.message }),
        },
    )
}

pub async fn confirm_revoke(ws: Workspace, Path((_, key)): Path<(String, String)>) -> Response {
    confirm_page(&ws, &key, StatusCode::OK, None).await
}

pub async fn revoke(ws: Workspace, Path((_, key)): Path<(String, String)>, body: FormBody) -> Response {
    let f = match checked(&ws.signed, body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    if !ticked(&f, "confirm") {
        let p = Problem {
            field: "confirm",
            message: "Tick the box to confirm: whatever uses this key stops working at once.".into(),
        };
        return confirm_page(&ws, &key, StatusCode::BAD_REQUEST, Some(p)).await;
    }
    match ws.hub().users().revoke_api_key(ws.id(), &key).await {
        Ok(_) => see_other(&format!("/t/{}/api-keys", ws.id())),
        Err(e) => failure::page(e, Some(&ws.layout("API keys", "api-keys"))),
    }
}
