//! Connection profiles: the list with each one's status, creating one for a
//! provider of the catalogue, and a profile's page (edit, credentials, test,
//! magic link, disconnect). Every change goes through the same service calls
//! the API's handlers make; secrets are write-only and only their names (with
//! a mask) are ever shown.

use std::collections::BTreeMap;

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use minijinja::{context, Value};
use secrecy::ExposeSecret;
use serde::Deserialize;

use crate::connection_fields::{self as fields, Problems, OTHER};
use crate::failure;
use crate::forms;
use crate::render::page as render;
use crate::session::{see_other, Workspace};
use ferry_core::manifest::OAuthGrant;
use ferry_core::model::{AuthKind, Connection, ConnectionStatus, MASK};
use ferry_core::Error;
use ferry_service::connections::{ConnectionPatch, NewConnection, SettingsEditor};
use ferry_service::links::IssueLink;
use ferry_service::oauth::OAuthClientConfig;
use ferry_service::repo::PageRequest;
use ferry_service::verify::Verification;

pub const PAGE: u32 = 25;

type FormBody = Result<Form<BTreeMap<String, String>>, FormRejection>;

/// A status as the connection record says it: label and tone.
pub fn status(s: ConnectionStatus) -> (&'static str, &'static str) {
    match s {
        ConnectionStatus::Connected => ("Connected", "ok"),
        ConnectionStatus::Error => ("Needs attention", "bad"),
        ConnectionStatus::Disconnected => ("Not connected", "idle"),
    }
}

fn editor(ws: &Workspace) -> SettingsEditor {
    if ws.signed.session.principal.is_platform_admin() {
        SettingsEditor::PlatformAdmin
    } else {
        SettingsEditor::TenantMember
    }
}

fn base(ws: &Workspace) -> String {
    format!("/t/{}/connections", ws.id())
}

/// Reads the form and checks its CSRF token and that the tenant takes changes.
#[allow(clippy::result_large_err)]
fn writable(ws: &Workspace, body: FormBody) -> Result<BTreeMap<String, String>, Response> {
    let f = forms::checked(&ws.signed, body)?;
    ferry_service::tenants::ensure_writable(&ws.tenant)
        .map_err(|e| failure::page(e, Some(&ws.layout("Connections", "connections"))))?;
    Ok(f)
}

fn text<'a>(f: &'a BTreeMap<String, String>, k: &str) -> &'a str {
    f.get(k).map_or("", |v| v.as_str())
}

pub async fn list(ws: Workspace, q: Result<Query<forms::Cursor>, QueryRejection>) -> Response {
    let cursor = forms::cursor(q);
    let layout = ws.layout("Connections", "connections");
    let page = match ws
        .hub()
        .connections()
        .list_connections(ws.id(), &PageRequest { limit: Some(PAGE), cursor: cursor.clone() })
        .await
    {
        Ok(p) => p,
        Err(e) => return failure::page(e, Some(&layout)),
    };
    let rows: Vec<Value> = page
        .items
        .iter()
        .map(|c| {
            let (label, tone) = status(c.status);
            context! {
                name => c.name,
                href => format!("{}/{}", base(&ws), c.id),
                provider => fields::provider_name(&c.connector),
                kind => fields::kind_label(c.auth_kind),
                label, tone,
                message => c.status_message,
                max_concurrent => c.max_concurrent,
            }
        })
        .collect();
    render(
        StatusCode::OK,
        "connections.html",
        &layout,
        context! { connections => rows, next => crate::jobs::next_href(page.next_cursor.as_deref()), paged => cursor.is_some() },
    )
}

/// The new-connection page: first the provider (and, for one outside the
/// catalogue, how it signs in), then the fields that choice needs.
#[derive(Deserialize, Default)]
pub struct Choice {
    #[serde(default)]
    provider: String,
    #[serde(default)]
    auth_kind: String,
    /// Set once the choice was submitted, so an incomplete one is said.
    #[serde(default)]
    step: String,
    /// Another system's provider name, filled in advance (the job flow's
    /// "Create one" link for a connector the manifest defines).
    #[serde(default)]
    connector: String,
}

pub async fn new(ws: Workspace, q: Result<Query<Choice>, QueryRejection>) -> Response {
    let Query(choice) = q.unwrap_or_default();
    let mut values = BTreeMap::new();
    values.insert("provider".to_owned(), choice.provider.clone());
    values.insert("auth_kind".to_owned(), choice.auth_kind.clone());
    if !choice.step.is_empty() {
        values.insert("step".to_owned(), choice.step.clone());
    }
    if !choice.connector.is_empty() {
        values.insert("connector".to_owned(), choice.connector.clone());
    }
    new_form(&ws, &values, &Problems::new(), StatusCode::OK)
}

/// The form for a choice of provider and kind, or the choice itself while
/// it is incomplete.
fn new_form(ws: &Workspace, values: &BTreeMap<String, String>, problems: &Problems, status: StatusCode) -> Response {
    let layout = ws.layout("New connection", "connections");
    let provider = text(values, "provider");
    let mut problems = problems.clone();
    let catalogued = ferry_core::providers::get(provider);
    let kind = match (catalogued, fields::parse_kind(text(values, "auth_kind"))) {
        (_, Some(k)) => Some(k),
        (Some(p), None) => Some(p.auth),
        (None, None) => {
            if provider == OTHER && values.contains_key("step") {
                problems.insert("auth_kind", "Choose how this system signs requests in.".into());
            }
            None
        }
    };
    if !provider.is_empty() && provider != OTHER && catalogued.is_none() {
        problems.insert("provider", "Choose a provider from the list.".into());
    }
    let chosen = (catalogued.is_some() || provider == OTHER) && kind.is_some();
    let kinds: Vec<Value> = fields::KINDS
        .iter()
        .map(|k| context! { name => fields::kind_name(*k), label => fields::kind_label(*k) })
        .collect();
    let settings: Vec<Value> = fields::provider_settings(provider)
        .into_iter()
        .map(|s| context! { name => s, value => text(values, &format!("setting_{s}")) })
        .collect();
    render(
        if problems.is_empty() { status } else { StatusCode::BAD_REQUEST },
        "connection_new.html",
        &layout,
        context! {
            action => base(ws),
            providers => fields::providers(),
            kinds => kinds,
            chosen => chosen,
            provider => provider,
            provider_name => catalogued.map(|p| p.display_name.clone()),
            kind => kind.map(fields::kind_name),
            kind_label => kind.map(fields::kind_label),
            credentials => kind.map(fields::credential_fields).unwrap_or_default(),
            settings => settings,
            v => values,
            problems => problems,
        },
    )
}

fn credentials_from(kind: AuthKind, f: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    kind.required_fields()
        .iter()
        .filter(|_| kind != AuthKind::Oauth2)
        .filter_map(|n| f.get(*n).filter(|v| !v.is_empty()).map(|v| ((*n).to_owned(), v.clone())))
        .collect()
}

/// The tenant's OAuth client for the client-credentials grant, as the form gave it.
fn oauth_client_of(f: &BTreeMap<String, String>) -> OAuthClientConfig {
    let opt = |k: &str| f.get(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    OAuthClientConfig {
        client_id: text(f, "client_id").trim().to_owned(),
        client_secret: f.get("client_secret").filter(|v| !v.is_empty()).cloned(),
        authorize_url: None,
        token_url: opt("token_url"),
        scopes: opt("scopes").map(|s| s.split_whitespace().map(str::to_owned).collect()),
        grant: Some(OAuthGrant::ClientCredentials),
    }
}

pub async fn create(ws: Workspace, body: FormBody) -> Response {
    let mut f = match writable(&ws, body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    f.insert("step".into(), "fields".into());
    let keep = |f: &BTreeMap<String, String>| {
        // Secrets are never sent back to the browser, not even into their own field.
        let mut kept = f.clone();
        for secret in ["api_key", "password", "token", "client_secret", "csrf"] {
            kept.remove(secret);
        }
        kept
    };
    let provider = text(&f, "provider").to_owned();
    let connector = if provider == OTHER { text(&f, "connector").trim().to_owned() } else { provider.clone() };
    let kind =
        fields::parse_kind(text(&f, "auth_kind")).or_else(|| ferry_core::providers::get(&provider).map(|p| p.auth));
    let Some(kind) = kind else {
        return new_form(&ws, &keep(&f), &Problems::new(), StatusCode::BAD_REQUEST);
    };
    let mut problems = Problems::new();
    let max_concurrent = match fields::parse_max(text(&f, "max_concurrent")) {
        Ok(m) => m,
        Err(m) => {
            problems.insert("max_concurrent", m);
            None
        }
    };
    let client_credentials = kind == AuthKind::Oauth2 && text(&f, "grant") == "client_credentials";
    if client_credentials && text(&f, "client_id").trim().is_empty() {
        problems.insert("oauth", "Give the client ID and secret of the OAuth client.".into());
    }
    if !problems.is_empty() {
        return new_form(&ws, &keep(&f), &problems, StatusCode::BAD_REQUEST);
    }
    let mut settings = serde_json::Map::new();
    for s in fields::provider_settings(&connector) {
        let v = text(&f, &format!("setting_{s}")).trim();
        if !v.is_empty() {
            settings.insert(s, serde_json::Value::String(v.to_owned()));
        }
    }
    let credentials = credentials_from(kind, &f);
    let input = NewConnection {
        name: text(&f, "name").trim().to_owned(),
        connector: connector.clone(),
        auth_kind: kind,
        settings,
        credentials: (!credentials.is_empty()).then_some(credentials),
        max_concurrent,
    };
    let hub = ws.hub();
    if client_credentials {
        // The client first: when it is refused, nothing was created.
        if let Err(e) = hub.connections().set_oauth_client(ws.id(), &connector, oauth_client_of(&f)).await {
            return refused(&ws, e, "oauth", |p| new_form(&ws, &keep(&f), p, StatusCode::BAD_REQUEST));
        }
    }
    let conn = match hub.connections().create_connection(ws.id(), input, editor(&ws)).await {
        Ok(c) => c,
        Err(e) => return refused(&ws, e, "form", |p| new_form(&ws, &keep(&f), p, StatusCode::BAD_REQUEST)),
    };
    if client_credentials {
        // A refusal is recorded on the connection; its page shows it.
        if let Err(e) = hub.connections().connect_client_credentials(&conn).await {
            return failure::page(e, Some(&ws.layout("Connection", "connections")));
        }
    }
    see_other(&format!("{}/{}", base(&ws), conn.id))
}

/// Shows a refusal of the service beside its field (or `fallback`), or the
/// failure page for anything that is not about the input.
fn refused(ws: &Workspace, e: Error, fallback: &'static str, form: impl Fn(&Problems) -> Response) -> Response {
    match (fields::field_of(&e), fields::message_of(&e)) {
        (Some(field), Some(message)) => {
            let field = if field == "form" { fallback } else { field };
            form(&Problems::from([(field, message)]))
        }
        _ => failure::page(e, Some(&ws.layout("Connections", "connections"))),
    }
}

/// What the profile page shows besides the connection: the outcome of a
/// test, and the problems and kept values of a refused form.
#[derive(Default)]
struct Shown {
    test: Option<&'static str>,
    problems: Problems,
    values: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
pub struct DetailQuery {
    #[serde(default)]
    test: String,
}

pub async fn detail(
    ws: Workspace,
    Path((_, id)): Path<(String, String)>,
    q: Result<Query<DetailQuery>, QueryRejection>,
) -> Response {
    let Query(q) = q.unwrap_or_default();
    let test = match q.test.as_str() {
        "passed" => Some("passed"),
        "failed" => Some("failed"),
        "not_declared" => Some("not_declared"),
        _ => None,
    };
    profile(&ws, &id, Shown { test, ..Shown::default() }).await
}

async fn profile(ws: &Workspace, id: &str, shown: Shown) -> Response {
    let layout = ws.layout("Connection", "connections");
    let hub = ws.hub();
    let conn = match hub.connections().get_connection(ws.id(), id).await {
        Ok(c) => c,
        Err(e) => return failure::page(e, Some(&layout)),
    };
    let view = match hub.connections().connection_view(&conn).await {
        Ok(v) => v,
        Err(e) => return failure::page(e, Some(&layout)),
    };
    // Which OAuth client this connection would use, so a missing one is said
    // here rather than when the customer presses "Connect".
    let oauth = match conn.auth_kind {
        AuthKind::Oauth2 => Some(match hub.connections().oauth_client(&conn).await {
            Ok(c) => context! {
                grant => if c.grant == OAuthGrant::ClientCredentials { "client_credentials" } else { "authorization_code" },
                client_id => c.client_id,
            },
            Err(e) => {
                context! { problem => fields::message_of(&e).unwrap_or_else(|| "The OAuth client could not be read.".into()) }
            }
        }),
        _ => None,
    };
    let (label, tone) = status(conn.status);
    let stored: Vec<Value> = conn.secret_fields.iter().map(|n| context! { name => n, mask => MASK }).collect();
    let credentials: Vec<Value> = fields::credential_fields(conn.auth_kind)
        .into_iter()
        .map(|c| {
            let name = c.get_attr("name").ok().map(|n| n.to_string()).unwrap_or_default();
            context! { stored => conn.secret_fields.contains(&name), mask => MASK, ..c }
        })
        .collect();
    let setting_names = fields::provider_settings(&conn.connector);
    let values = shown.values.clone().unwrap_or_else(|| {
        let mut v = BTreeMap::new();
        v.insert("name".to_owned(), conn.name.clone());
        v.insert("max_concurrent".to_owned(), conn.max_concurrent.map(|m| m.to_string()).unwrap_or_default());
        for s in &setting_names {
            let value = conn.settings.get(s).and_then(|v| v.as_str()).unwrap_or_default();
            v.insert(format!("setting_{s}"), value.to_owned());
        }
        v
    });
    let settings: Vec<Value> = setting_names
        .iter()
        .map(|s| context! { name => s, value => values.get(&format!("setting_{s}")).cloned().unwrap_or_default() })
        .collect();
    let other_settings: Vec<Value> = conn
        .settings
        .iter()
        .filter(|(k, _)| !setting_names.contains(k))
        .map(|(k, v)| context! { name => k, value => v.as_str().map_or_else(|| v.to_string(), str::to_owned) })
        .collect();
    let layout = ws.layout(&conn.name, "connections");
    render(
        if shown.problems.is_empty() { StatusCode::OK } else { StatusCode::BAD_REQUEST },
        "connection.html",
        &layout,
        context! {
            action => format!("{}/{}", base(ws), conn.id),
            list => base(ws),
            conn => context! {
                name => conn.name,
                connector => conn.connector,
                provider => fields::provider_name(&conn.connector),
                kind => fields::kind_name(conn.auth_kind),
                kind_label => fields::kind_label(conn.auth_kind),
                label, tone,
                message => conn.status_message,
                max_concurrent => conn.max_concurrent,
                created => crate::runs::when(conn.created_at),
                updated => crate::runs::when(conn.updated_at),
                link => view.link.map(|u| u.to_string()),
                link_expires => view.link_expires_at.map(crate::runs::when),
                link_revoked => conn.link.as_ref().is_some_and(|l| l.revoked),
            },
            stored => stored,
            credentials => credentials,
            oauth => oauth,
            settings => settings,
            other_settings => other_settings,
            test => shown.test,
            problems => shown.problems,
            v => values,
        },
    )
}

/// Name, settings the provider's URLs need, and Max Concurrent.
pub async fn update(ws: Workspace, Path((_, id)): Path<(String, String)>, body: FormBody) -> Response {
    let f = match writable(&ws, body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let mut kept = f.clone();
    kept.remove("csrf");
    let again = |problems: Problems| Shown { problems, values: Some(kept.clone()), ..Shown::default() };
    let max = match fields::parse_max(text(&f, "max_concurrent")) {
        Ok(m) => m,
        Err(m) => return profile(&ws, &id, again(Problems::from([("max_concurrent", m)]))).await,
    };
    let hub = ws.hub();
    let conn = match hub.connections().get_connection(ws.id(), &id).await {
        Ok(c) => c,
        Err(e) => return failure::page(e, Some(&ws.layout("Connection", "connections"))),
    };
    // Settings are sent only when one the form shows changed: sending them
    // unchanged would re-check a base URL only an admin may approve.
    let mut settings = conn.settings.clone();
    let mut changed = false;
    for s in fields::provider_settings(&conn.connector) {
        let typed = text(&f, &format!("setting_{s}")).trim().to_owned();
        let now = settings.get(&s).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
        if typed != now {
            changed = true;
            if typed.is_empty() {
                settings.remove(&s);
            } else {
                settings.insert(s, serde_json::Value::String(typed));
            }
        }
    }
    let patch = ConnectionPatch {
        name: Some(text(&f, "name").trim().to_owned()),
        settings: changed.then_some(settings),
        max_concurrent: Some(max),
    };
    match hub.connections().update_connection(ws.id(), &id, patch, editor(&ws)).await {
        Ok(c) => see_other(&format!("{}/{}", base(&ws), c.id)),
        Err(e) => match (fields::field_of(&e), fields::message_of(&e)) {
            (Some(field), Some(message)) => {
                let field = if field == "form" { "edit" } else { field };
                profile(&ws, &id, again(Problems::from([(field, message)]))).await
            }
            _ => failure::page(e, Some(&ws.layout("Connection", "connections"))),
        },
    }
}

/// Replaces the credentials; a field left blank keeps its stored value.
pub async fn credentials(ws: Workspace, Path((_, id)): Path<(String, String)>, body: FormBody) -> Response {
    let f = match writable(&ws, body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let hub = ws.hub();
    let layout = ws.layout("Connection", "connections");
    let conn = match hub.connections().get_connection(ws.id(), &id).await {
        Ok(c) => c,
        Err(e) => return failure::page(e, Some(&layout)),
    };
    let stored = match hub.connections().connection_credentials(&conn).await {
        Ok(s) => s.unwrap_or_default(),
        Err(e) => return failure::page(e, Some(&layout)),
    };
    let mut merged: BTreeMap<String, String> =
        stored.0.iter().map(|(k, v)| (k.clone(), v.expose_secret().to_owned())).collect();
    merged.extend(credentials_from(conn.auth_kind, &f));
    match hub.connections().set_credentials(ws.id(), &id, merged).await {
        Ok(_) => see_other(&format!("{}/{}", base(&ws), id)),
        Err(e) => match fields::message_of(&e) {
            Some(message) => {
                profile(&ws, &id, Shown { problems: Problems::from([("credentials", message)]), ..Shown::default() })
                    .await
            }
            None => failure::page(e, Some(&layout)),
        },
    }
}

/// Sends the test request the connector declares, as the connect page does.
pub async fn test(ws: Workspace, Path((_, id)): Path<(String, String)>, body: FormBody) -> Response {
    if let Err(r) = writable(&ws, body) {
        return r;
    }
    let layout = ws.layout("Connection", "connections");
    let conn = match ws.hub().connections().get_connection(ws.id(), &id).await {
        Ok(c) => c,
        Err(e) => return failure::page(e, Some(&layout)),
    };
    let outcome = match ws.hub().connections().verify_connection(&conn).await {
        Ok(Verification::Passed) => "passed",
        // The message is recorded on the connection; the page shows it.
        Ok(Verification::Failed(_)) => "failed",
        Ok(Verification::NotDeclared) => "not_declared",
        Err(e) => return failure::page(e, Some(&layout)),
    };
    see_other(&format!("{}/{}?test={outcome}#test", base(&ws), id))
}

/// Issues a new magic link (the old one stops working), with an expiry.
pub async fn issue_link(ws: Workspace, Path((_, id)): Path<(String, String)>, body: FormBody) -> Response {
    let f = match writable(&ws, body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let ttl_seconds = match text(&f, "expires") {
        "" | "never" => None,
        days => match days.parse::<i64>() {
            Ok(d) => Some(d.saturating_mul(86_400)),
            Err(_) => {
                let problems = Problems::from([("ttl", "Choose how long the link works.".to_owned())]);
                return profile(&ws, &id, Shown { problems, ..Shown::default() }).await;
            }
        },
    };
    match ws.hub().connections().issue_link(ws.id(), &id, IssueLink { ttl_seconds }).await {
        Ok(_) => see_other(&format!("{}/{}#link", base(&ws), id)),
        Err(e) => match fields::message_of(&e) {
            Some(m) => profile(&ws, &id, Shown { problems: Problems::from([("ttl", m)]), ..Shown::default() }).await,
            None => failure::page(e, Some(&ws.layout("Connection", "connections"))),
        },
    }
}

/// Revokes the magic link, once the operator ticked that the customer's link stops working.
pub async fn revoke_link(ws: Workspace, Path((_, id)): Path<(String, String)>, body: FormBody) -> Response {
    let f = match writable(&ws, body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    if text(&f, "confirm") != "on" {
        let problems = Problems::from([(
            "revoke",
            "Tick the box to confirm: the link the customer has stops working.".to_owned(),
        )]);
        return profile(&ws, &id, Shown { problems, ..Shown::default() }).await;
    }
    match ws.hub().connections().revoke_link(ws.id(), &id).await {
        Ok(_) => see_other(&format!("{}/{}#link", base(&ws), id)),
        Err(e) => failure::page(e, Some(&ws.layout("Connection", "connections"))),
    }
}

/// The confirmation page of a disconnect.
pub async fn confirm_disconnect(ws: Workspace, Path((_, id)): Path<(String, String)>) -> Response {
    let layout = ws.layout("Disconnect", "connections");
    let conn: Connection = match ws.hub().connections().get_connection(ws.id(), &id).await {
        Ok(c) => c,
        Err(e) => return failure::page(e, Some(&layout)),
    };
    render(
        StatusCode::OK,
        "connection_disconnect.html",
        &layout,
        context! {
            action => format!("{}/{}", base(&ws), conn.id),
            name => conn.name,
            provider => fields::provider_name(&conn.connector),
        },
    )
}

/// Forgets the credentials; the profile stays, not connected.
pub async fn disconnect(ws: Workspace, Path((_, id)): Path<(String, String)>, body: FormBody) -> Response {
    if let Err(r) = writable(&ws, body) {
        return r;
    }
    match ws.hub().connections().disconnect(ws.id(), &id).await {
        Ok(_) => see_other(&format!("{}/{}", base(&ws), id)),
        Err(e) => failure::page(e, Some(&ws.layout("Connection", "connections"))),
    }
}
