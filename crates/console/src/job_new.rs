//! Creating a job (Pandium's tenant creation flow): first the integration,
//! then one form in the flow's order — release, name, connections,
//! configuration (from the release's config schema and uischema), sync
//! schedule, paused or running. Changing the release or previewing the
//! schedule re-renders the form with everything typed kept; saving creates
//! the job through the jobs service (the API's own validation), and what it
//! refuses is shown beside the field it concerns.

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::{context, Value};
use serde::Deserialize;
use serde_json::Map;

use crate::failure;
use crate::forms;
use crate::job_form::{self as jf, PairsBody, Placed, ScheduleInput};
use crate::render::page as render;
use crate::session::{see_other, Workspace};
use ferry_core::model::{DynamicOptions, Integration, Release};
use ferry_core::Error;
use ferry_service::config_form::ConfigForm;
use ferry_service::jobs::NewJob;
use ferry_service::repo::PageRequest;

#[derive(Deserialize, Default)]
pub struct NewQuery {
    integration: Option<String>,
    cursor: Option<String>,
}

/// What has been typed so far.
struct Draft {
    integration: Integration,
    release: String,
    name: String,
    connections: BTreeMap<String, String>,
    configs: Map<String, serde_json::Value>,
    schedule: ScheduleInput,
    paused: bool,
}

pub async fn page(ws: Workspace, q: Result<Query<NewQuery>, QueryRejection>) -> Response {
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let Some(name) = q.integration.filter(|n| !n.is_empty()) else {
        return choose_integration(&ws, q.cursor.filter(|c| !c.is_empty()), None).await;
    };
    let integration = match ws.hub().integrations().get_integration(&name).await {
        Ok(i) => i,
        Err(Error::NotFound { .. }) => {
            let error = format!("There is no integration named “{name}”. Choose one from the list.");
            return choose_integration(&ws, None, Some(error)).await;
        }
        Err(e) => return failure::page(e, Some(&ws.layout("New job", "jobs"))),
    };
    let release = match release_of(&ws, &integration, "default").await {
        Ok(r) => r,
        Err(e) => return failure::page(e, Some(&ws.layout("New job", "jobs"))),
    };
    let schedule = ScheduleInput::from_schedule(
        release.as_ref().and_then(|r| r.manifest.schedule.as_ref()).and_then(|s| s.default.as_ref()),
    );
    let draft = Draft {
        integration,
        release: "default".into(),
        name: String::new(),
        connections: BTreeMap::new(),
        configs: Map::new(),
        schedule,
        paused: true,
    };
    form(&ws, draft, Placed::default(), StatusCode::OK).await
}

async fn choose_integration(ws: &Workspace, cursor: Option<String>, error: Option<String>) -> Response {
    let layout = ws.layout("New job", "jobs");
    let page = match ws
        .hub()
        .integrations()
        .list_integrations(&PageRequest { limit: Some(crate::jobs::PAGE), cursor: cursor.clone() })
        .await
    {
        Ok(p) => p,
        Err(e) => return failure::page(e, Some(&layout)),
    };
    let integrations: Vec<Value> = page
        .items
        .iter()
        .map(|i| context! { name => i.name, description => i.description, releases => i.latest_release })
        .collect();
    let status = if error.is_some() { StatusCode::NOT_FOUND } else { StatusCode::OK };
    render(
        status,
        "job_new_integration.html",
        &layout,
        context! {
            integrations,
            error,
            next => page.next_cursor.as_deref().map(|c| format!("?cursor={}", crate::activity::encode(c))),
            paged => cursor.is_some(),
        },
    )
}

/// The release a form value names now, if it names one.
async fn release_of(ws: &Workspace, integration: &Integration, value: &str) -> Result<Option<Release>, Error> {
    let Some(pin) = jf::parse_pin(value) else { return Ok(None) };
    match ws.hub().integrations().release_for_pin(&integration.name, &pin).await {
        Err(Error::NotFound { .. }) => Ok(None),
        other => other,
    }
}

fn config_form(
    ws: &Workspace,
    release: Option<&Release>,
    configs: &Map<String, serde_json::Value>,
) -> Option<ConfigForm> {
    ConfigForm::build(&release?.manifest, configs, &DynamicOptions::new(), jf::audience(ws))
}

async fn form(ws: &Workspace, draft: Draft, mut placed: Placed, status: StatusCode) -> Response {
    let layout = ws.layout("New job", "jobs");
    let release = match release_of(ws, &draft.integration, &draft.release).await {
        Ok(r) => r,
        Err(e) => return failure::page(e, Some(&layout)),
    };
    if release.is_none() && !placed.fields.contains_key("release") {
        placed.field("release", "This names no release yet: choose a specific release or the Latest channel.");
    }
    let manifest = release.as_ref().map(|r| &r.manifest);
    let releases = match jf::release_options(ws, &draft.integration, &draft.release).await {
        Ok(r) => r,
        Err(e) => return failure::page(e, Some(&layout)),
    };
    let connectors = match manifest {
        Some(m) => match jf::connector_slots(ws, m, &draft.connections, &placed.fields).await {
            Ok(c) => c,
            Err(e) => return failure::page(e, Some(&layout)),
        },
        None => Vec::new(),
    };
    let cfg = config_form(ws, release.as_ref(), &draft.configs);
    let schedule = jf::schedule_view(
        ws,
        &draft.integration.name,
        manifest,
        &draft.schedule,
        placed.fields.get("schedule").cloned(),
        false,
    );
    render(
        status,
        "job_new.html",
        &layout,
        context! {
            action => format!("/t/{}/jobs/new", ws.id()),
            integration => context! { name => draft.integration.name, description => draft.integration.description },
            release_number => release.as_ref().map(|r| r.number),
            releases,
            name => draft.name,
            connectors,
            configs => jf::config_items(cfg.as_ref(), &placed.fields),
            has_configs => cfg.as_ref().is_some_and(ConfigForm::has_fields),
            schedule,
            paused => draft.paused,
            errors => placed.fields,
            general => placed.general,
        },
    )
}

pub async fn submit(ws: Workspace, body: PairsBody) -> Response {
    let pairs = match forms::checked_pairs(&ws.signed, body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let layout = ws.layout("New job", "jobs");
    let integration = match ws.hub().integrations().get_integration(jf::first(&pairs, "integration")).await {
        Ok(i) => i,
        Err(e) => return failure::page(e, Some(&layout)),
    };
    // Config fields are read with the form they were shown in (the release
    // the page was rendered for), so a release changed meanwhile loses nothing.
    let shown = match jf::first(&pairs, "form_release").parse::<u32>() {
        Ok(n) => match release_of(&ws, &integration, &n.to_string()).await {
            Ok(r) => r,
            Err(e) => return failure::page(e, Some(&layout)),
        },
        Err(_) => None,
    };
    let mut placed = Placed::default();
    let (configs, config_errors) =
        jf::read_configs(config_form(&ws, shown.as_ref(), &Map::new()).as_ref(), &Map::new(), &pairs);
    placed.fields.extend(config_errors);
    let schedule = ScheduleInput::from_pairs(&pairs);
    let draft = Draft {
        integration,
        release: jf::first(&pairs, "release").to_owned(),
        name: jf::first(&pairs, "name").trim().to_owned(),
        connections: jf::read_connections(&pairs),
        configs,
        schedule,
        paused: jf::first(&pairs, "start") != "running",
    };
    match jf::first(&pairs, "action") {
        "refresh" | "preview" => return form(&ws, draft, placed, StatusCode::OK).await,
        _ => {}
    }
    let schedule = match draft.schedule.to_schedule() {
        Ok(s) => s,
        Err(e) => {
            placed.field("schedule", e);
            None
        }
    };
    let Some(pin) = jf::parse_pin(&draft.release) else {
        placed.field("release", "Choose a channel or a release.");
        return form(&ws, draft, placed, StatusCode::BAD_REQUEST).await;
    };
    if draft.name.is_empty() {
        placed.field("name", "Give the job a name, e.g. the customer's and the integration's.");
    }
    if !placed.is_empty() {
        return form(&ws, draft, placed, StatusCode::BAD_REQUEST).await;
    }
    let new = NewJob {
        name: draft.name.clone(),
        integration: draft.integration.name.clone(),
        release: pin,
        connections: draft.connections.clone(),
        configs: draft.configs.clone(),
        mappings: BTreeMap::new(),
        schedule,
        paused: draft.paused,
    };
    match ws.hub().jobs().create_job(ws.id(), new).await {
        Ok(job) => see_other(&format!("/t/{}/jobs/{}", ws.id(), job.id)),
        Err(e) => {
            let release = match release_of(&ws, &draft.integration, &draft.release).await {
                Ok(r) => r,
                Err(e) => return failure::page(e, Some(&layout)),
            };
            let cfg = config_form(&ws, release.as_ref(), &Map::new());
            let connectors: Vec<&str> = release.as_ref().map(|r| r.manifest.connectors.names()).unwrap_or_default();
            let shown = |n: &str| cfg.as_ref().is_some_and(|f| f.fields().any(|f| f.name == n && !f.disabled));
            match jf::place(&e, &connectors, &shown) {
                Some(p) => form(&ws, draft, p, StatusCode::BAD_REQUEST).await,
                None => failure::page(e, Some(&layout)),
            }
        }
    }
}
