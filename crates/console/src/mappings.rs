//! Mapping configurations: the list, and one form to create or edit a
//! mapping. The service validates (`create_mapping`, `update_mapping`); its
//! problems are shown beside the field, or on the line of the field mapping,
//! they concern, with everything typed kept.

use std::collections::BTreeMap;

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use minijinja::{context, Value};

use crate::connection_fields::{field_of, message_of, Problems};
use crate::failure;
use crate::forms;
use crate::mapping_lines::{self as lines, LineProblem};
use crate::render::page as render;
use crate::session::{see_other, Workspace};
use ferry_core::Error;
use ferry_service::mappings::{MappingPatch, NewMapping};
use ferry_service::repo::PageRequest;

pub const PAGE: u32 = 25;

type FormBody = Result<Form<BTreeMap<String, String>>, FormRejection>;

/// The field mappings read from the form, each with its line.
type Lines = Vec<(usize, String, ferry_core::manifest::FieldMapping)>;

fn base(ws: &Workspace) -> String {
    format!("/t/{}/mappings", ws.id())
}

pub async fn list(ws: Workspace, q: Result<Query<forms::Cursor>, QueryRejection>) -> Response {
    let cursor = forms::cursor(q);
    let layout = ws.layout("Mappings", "mappings");
    let page = match ws
        .hub()
        .integrations()
        .list_mappings(ws.id(), &PageRequest { limit: Some(PAGE), cursor: cursor.clone() })
        .await
    {
        Ok(p) => p,
        Err(e) => return failure::page(e, Some(&layout)),
    };
    let rows: Vec<Value> = page
        .items
        .iter()
        .map(|m| {
            context! {
                name => m.name,
                href => format!("{}/{}", base(&ws), m.id),
                entity => m.entity,
                source => m.source,
                target => m.target,
                fields => m.fields.len(),
                version => m.version,
                updated => crate::runs::when(m.updated_at),
            }
        })
        .collect();
    render(
        StatusCode::OK,
        "mappings.html",
        &layout,
        context! { mappings => rows, next => crate::jobs::next_href(page.next_cursor.as_deref()), paged => cursor.is_some() },
    )
}

/// The form, new (`id` none) or of a mapping, with what was typed and its problems.
fn form(
    ws: &Workspace,
    id: Option<&str>,
    version: Option<u32>,
    v: &BTreeMap<String, String>,
    problems: &Problems,
    line_problems: &[LineProblem],
) -> Response {
    let title = if id.is_some() { "Mapping" } else { "New mapping" };
    let heading = match id {
        Some(_) => v.get("name").cloned().unwrap_or_default(),
        None => "New mapping configuration".to_owned(),
    };
    let layout = ws.layout(if id.is_some() && !heading.is_empty() { &heading } else { title }, "mappings");
    let bad = !problems.is_empty() || !line_problems.is_empty();
    render(
        if bad { StatusCode::BAD_REQUEST } else { StatusCode::OK },
        "mapping.html",
        &layout,
        context! {
            list => base(ws),
            action => id.map_or_else(|| base(ws), |id| format!("{}/{id}", base(ws))),
            editing => id.is_some(),
            heading => heading,
            version => version,
            v => v,
            problems => problems,
            line_problems => line_problems,
            rows => v.get("fields").map_or(8, |t| (t.lines().count() + 2).clamp(6, 30)),
        },
    )
}

pub async fn new(ws: Workspace) -> Response {
    let mut v = BTreeMap::new();
    v.insert("fields".to_owned(), String::new());
    form(&ws, None, None, &v, &Problems::new(), &[])
}

pub async fn detail(ws: Workspace, Path((_, id)): Path<(String, String)>) -> Response {
    let m = match ws.hub().integrations().get_mapping(ws.id(), &id).await {
        Ok(m) => m,
        Err(e) => return failure::page(e, Some(&ws.layout("Mapping", "mappings"))),
    };
    let v = BTreeMap::from([
        ("name".to_owned(), m.name.clone()),
        ("entity".to_owned(), m.entity.clone()),
        ("source".to_owned(), m.source.clone().unwrap_or_default()),
        ("target".to_owned(), m.target.clone().unwrap_or_default()),
        ("fields".to_owned(), lines::to_text(&m.fields)),
        ("keep_unmapped".to_owned(), if m.keep_unmapped { "on" } else { "" }.to_owned()),
    ]);
    form(&ws, Some(&id), Some(m.version), &v, &Problems::new(), &[])
}

/// What the form sent, read; or the form again with the lines that cannot be read.
#[allow(clippy::result_large_err)]
fn read(ws: &Workspace, id: Option<&str>, body: FormBody) -> Result<(BTreeMap<String, String>, Lines), Response> {
    let mut f = forms::checked(&ws.signed, body)?;
    ferry_service::tenants::ensure_writable(&ws.tenant)
        .map_err(|e| failure::page(e, Some(&ws.layout("Mappings", "mappings"))))?;
    f.remove("csrf");
    match lines::parse(f.get("fields").map_or("", String::as_str)) {
        Ok(parsed) => Ok((f, parsed)),
        Err(problems) => Err(form(
            ws,
            id,
            None,
            &f,
            &Problems::from([("fields", "Some lines cannot be read; see below.".to_owned())]),
            &problems,
        )),
    }
}

fn opt(f: &BTreeMap<String, String>, k: &str) -> Option<String> {
    f.get(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// The refusal beside its field, or on its lines.
fn refused(
    ws: &Workspace,
    id: Option<&str>,
    e: Error,
    f: &BTreeMap<String, String>,
    parsed: &[(usize, String, ferry_core::manifest::FieldMapping)],
) -> Response {
    let line_problems = match &e {
        Error::InvalidDetails { details, .. } => lines::place(details, parsed),
        _ => Vec::new(),
    };
    match (field_of(&e), message_of(&e)) {
        (Some(field), Some(message)) => {
            // Which of source and target a connector problem concerns, as the message says.
            let field = match field {
                "connector" if message.starts_with("target") => "target",
                "connector" => "source",
                "form" => "fields",
                other => other,
            };
            let message = if line_problems.is_empty() {
                message
            } else {
                "The field mappings have problems; each is shown on its line below.".into()
            };
            form(ws, id, None, f, &Problems::from([(field, message)]), &line_problems)
        }
        _ => failure::page(e, Some(&ws.layout("Mappings", "mappings"))),
    }
}

pub async fn create(ws: Workspace, body: FormBody) -> Response {
    let (f, parsed) = match read(&ws, None, body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let input = NewMapping {
        name: f.get("name").map_or("", |s| s.trim()).to_owned(),
        entity: f.get("entity").map_or("", |s| s.trim()).to_owned(),
        source: opt(&f, "source"),
        target: opt(&f, "target"),
        fields: parsed.iter().map(|(_, n, m)| (n.clone(), m.clone())).collect(),
        keep_unmapped: f.get("keep_unmapped").is_some_and(|v| v == "on"),
    };
    match ws.hub().integrations().create_mapping(ws.id(), input).await {
        Ok(m) => see_other(&format!("{}/{}", base(&ws), m.id)),
        Err(e) => refused(&ws, None, e, &f, &parsed),
    }
}

pub async fn update(ws: Workspace, Path((_, id)): Path<(String, String)>, body: FormBody) -> Response {
    let (f, parsed) = match read(&ws, Some(&id), body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let patch = MappingPatch {
        name: Some(f.get("name").map_or("", |s| s.trim()).to_owned()),
        entity: Some(f.get("entity").map_or("", |s| s.trim()).to_owned()),
        source: Some(opt(&f, "source")),
        target: Some(opt(&f, "target")),
        fields: Some(parsed.iter().map(|(_, n, m)| (n.clone(), m.clone())).collect()),
        keep_unmapped: Some(f.get("keep_unmapped").is_some_and(|v| v == "on")),
    };
    match ws.hub().integrations().update_mapping(ws.id(), &id, patch).await {
        Ok(m) => see_other(&format!("{}/{}", base(&ws), m.id)),
        Err(e) => refused(&ws, Some(&id), e, &f, &parsed),
    }
}
