//! Jobs: the list, a job's page (its connectors' status, schedule, runs)
//! and what an operator does to it here (run now, pause, resume).

use std::collections::BTreeMap;

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use minijinja::{context, Value};
use serde::Deserialize;

use crate::failure;
use crate::forms;
use crate::render::page as render;
use crate::session::{see_other, Workspace};
use ferry_core::model::{ConnectionStatus, ReleasePin, RunMode, RunOptions};
use ferry_core::Error;
use ferry_service::jobs::JobPatch;
use ferry_service::repo::PageRequest;
use ferry_service::runs::{RunRequest, Triggered};

pub const PAGE: u32 = 25;

#[derive(Deserialize, Default)]
pub struct Cursor {
    cursor: Option<String>,
}

fn cursor(q: Result<Query<Cursor>, QueryRejection>) -> Option<String> {
    q.ok().and_then(|Query(c)| c.cursor).filter(|c| !c.is_empty())
}

/// The link to the page after this one.
pub fn next_href(cursor: Option<&str>) -> Option<String> {
    cursor.map(|c| format!("?cursor={}", crate::activity::encode(c)))
}

fn release_text(pin: &ReleasePin, resolved: Option<u32>) -> String {
    let pinned = match pin {
        ReleasePin::Specific { number } => format!("release {number}"),
        ReleasePin::Channel { channel } => {
            format!(
                "{} channel",
                serde_json::to_value(channel).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
            )
        }
    };
    match resolved {
        Some(n) if !matches!(pin, ReleasePin::Specific { .. }) => format!("{pinned} (release {n} now)"),
        Some(_) => pinned,
        None => format!("{pinned} (no release yet)"),
    }
}

pub async fn list(ws: Workspace, q: Result<Query<Cursor>, QueryRejection>) -> Response {
    let cursor = cursor(q);
    let layout = ws.layout("Jobs", "jobs");
    let page =
        match ws.hub().jobs().list_jobs(ws.id(), &PageRequest { limit: Some(PAGE), cursor: cursor.clone() }).await {
            Ok(p) => p,
            Err(e) => return failure::page(e, Some(&layout)),
        };
    let jobs: Vec<Value> = page
        .items
        .iter()
        .map(|j| {
            context! {
                name => j.name,
                href => format!("/t/{}/jobs/{}", ws.id(), j.id),
                integration => j.integration,
                schedule => j.schedule_text,
                paused => j.paused,
                problems => j.problems.len(),
            }
        })
        .collect();
    render(
        StatusCode::OK,
        "jobs.html",
        &layout,
        context! { jobs => jobs, next => next_href(page.next_cursor.as_deref()), paged => cursor.is_some() },
    )
}

pub async fn detail(
    ws: Workspace,
    Path((_, job)): Path<(String, String)>,
    q: Result<Query<Cursor>, QueryRejection>,
) -> Response {
    let cursor = cursor(q);
    let hub = ws.hub();
    let layout = ws.layout("Job", "jobs");
    let view = match hub.jobs().get_job(ws.id(), &job).await {
        Ok(v) => v,
        Err(e) => return failure::page(e, Some(&layout)),
    };
    let mut connectors = Vec::new();
    for (connector, id) in &view.connections {
        let c = match hub.connections().get_connection(ws.id(), id).await {
            Ok(c) => Some(c),
            Err(Error::NotFound { .. }) => None,
            Err(e) => return failure::page(e, Some(&layout)),
        };
        let (state, label) = match c.as_ref().map(|c| c.status) {
            Some(ConnectionStatus::Connected) => ("ok", "Connected"),
            Some(ConnectionStatus::Error) => ("bad", "Needs attention"),
            Some(ConnectionStatus::Disconnected) => ("idle", "Not connected"),
            None => ("bad", "Connection deleted"),
        };
        connectors.push(context! {
            connector,
            connection => c.as_ref().map(|c| c.name.clone()),
            state,
            label,
            message => c.as_ref().and_then(|c| c.status_message.clone()),
        });
    }
    let runs =
        match hub.runs().list_runs(ws.id(), &job, &PageRequest { limit: Some(PAGE), cursor: cursor.clone() }).await {
            Ok(p) => p,
            Err(e) => return failure::page(e, Some(&layout)),
        };
    let rows: Vec<Value> = runs.items.iter().map(|r| crate::runs::row(ws.id(), r, None, None)).collect();
    let problems: Vec<Value> =
        view.problems.iter().map(|p| context! { code => p.code, message => p.message }).collect();
    let next_runs: Vec<String> = view.next_runs.iter().map(|t| crate::runs::when(*t)).collect();
    let extras = match crate::job_settings::detail_extras(&ws, &job).await {
        Ok(x) => x,
        Err(e) => return failure::page(e, Some(&layout)),
    };
    let layout = ws.layout(&view.name, "jobs");
    render(
        StatusCode::OK,
        "job.html",
        &layout,
        context! {
            job => context! {
                id => view.id,
                name => view.name,
                integration => view.integration,
                release => release_text(&view.release, view.resolved_release),
                schedule => view.schedule_text,
                next_runs => next_runs,
                paused => view.paused,
                tenant_paused => ws.tenant.paused,
                metadata => metadata_rows(&view.metadata),
            },
            action => format!("/t/{}/jobs/{}", ws.id(), job),
            connectors => connectors,
            extras => extras,
            problems => problems,
            runs => rows,
            next => next_href(runs.next_cursor.as_deref()),
            paged => cursor.is_some(),
        },
    )
}

type FormBody = Result<Form<BTreeMap<String, String>>, FormRejection>;

/// A process integration's tenant metadata, key by key: strings as they
/// are, anything else as compact JSON.
fn metadata_rows(metadata: &serde_json::Value) -> Vec<Value> {
    let Some(fields) = metadata.as_object() else { return Vec::new() };
    fields
        .iter()
        .map(|(key, v)| {
            let value = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            context! { key, value }
        })
        .collect()
}

/// Where the browser goes after asking for a run: the new run, or the job
/// when the request waits behind the run holding it.
pub fn after_trigger(tenant: &str, job: &str, t: &Triggered) -> String {
    if t.bundled {
        format!("/t/{tenant}/jobs/{job}")
    } else {
        format!("/t/{tenant}/jobs/{job}/runs/{}", t.run.id)
    }
}

pub async fn run_now(ws: Workspace, Path((_, job)): Path<(String, String)>, body: FormBody) -> Response {
    let f = match forms::checked(&ws.signed, body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let layout = ws.layout("Run now", "jobs");
    let mode = match f.get("mode").map_or("normal", String::as_str) {
        "normal" => RunMode::Normal,
        "init" => RunMode::Init,
        _ => return failure::page(Error::invalid("invalid_mode", "choose the normal or the init mode"), Some(&layout)),
    };
    let on = |name: &str| f.get(name).is_some_and(|v| v == "on" || v == "true");
    let options = RunOptions { reset_cursor: on("reset_cursor"), full: on("full"), ..RunOptions::default() };
    match ws.hub().runs().trigger_run(ws.id(), &job, RunRequest { mode, options }, "manual").await {
        Ok(t) => see_other(&after_trigger(ws.id(), &job, &t)),
        Err(e) => failure::page(e, Some(&layout)),
    }
}

async fn set_paused(ws: Workspace, job: String, body: FormBody, paused: bool) -> Response {
    if let Err(r) = forms::checked(&ws.signed, body) {
        return r;
    }
    let patch = JobPatch { paused: Some(paused), ..JobPatch::default() };
    match ws.hub().jobs().update_job(ws.id(), &job, patch).await {
        Ok(_) => see_other(&format!("/t/{}/jobs/{job}", ws.id())),
        Err(e) => failure::page(e, Some(&ws.layout("Job", "jobs"))),
    }
}

pub async fn pause(ws: Workspace, Path((_, job)): Path<(String, String)>, body: FormBody) -> Response {
    set_paused(ws, job, body, true).await
}

pub async fn resume(ws: Workspace, Path((_, job)): Path<(String, String)>, body: FormBody) -> Response {
    set_paused(ws, job, body, false).await
}
