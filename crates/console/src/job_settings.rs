//! The rest of a job's page: its Settings (the Version — a channel or a
//! specific release — and its configs, with the same form as creation),
//! its Sync Schedule, its connectors' Info, and its inbound webhook (URL and
//! secret, masked; rotating shows the new secret once, as the API does).
//! Changes go through the jobs and hooks services the API's handlers call.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::{context, Value};

use crate::failure;
use crate::forms;
use crate::job_form::{self as jf, PairsBody, Placed, ScheduleInput};
use crate::render::page as render;
use crate::session::{see_other, Workspace};
use ferry_core::model::{JobView, Release};
use ferry_core::Error;
use ferry_service::config_form::ConfigForm;
use ferry_service::hooks::service::ConnectorInfo;
use ferry_service::jobs::JobPatch;

type JobPath = Path<(String, String)>;

async fn load(ws: &Workspace, job: &str, title: &str) -> Result<JobView, Response> {
    ws.hub().jobs().get_job(ws.id(), job).await.map_err(|e| failure::page(e, Some(&ws.layout(title, "jobs"))))
}

/// A job form's post: its fields, once its CSRF token is the session's, and the job.
async fn posted(ws: &Workspace, job: &str, body: PairsBody, title: &str) -> Result<(forms::Pairs, JobView), Response> {
    let pairs = forms::checked_pairs(&ws.signed, body)?;
    Ok((pairs, load(ws, job, title).await?))
}

/// The release a pin's form value names now, if any.
async fn release_of(ws: &Workspace, integration: &str, value: &str) -> Result<Option<Release>, Error> {
    let Some(pin) = jf::parse_pin(value) else { return Ok(None) };
    match ws.hub().integrations().release_for_pin(integration, &pin).await {
        Err(Error::NotFound { .. }) => Ok(None),
        other => other,
    }
}

fn config_form(
    ws: &Workspace,
    job: &JobView,
    release: Option<&Release>,
    configs: &serde_json::Map<String, serde_json::Value>,
) -> Option<ConfigForm> {
    ConfigForm::build(&release?.manifest, configs, &job.dynamic_options, jf::audience(ws))
}

// ---- Settings: the version and the configs ----

pub async fn settings(ws: Workspace, Path((_, job)): JobPath) -> Response {
    let view = match load(&ws, &job, "Settings").await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let release = jf::pin_value(&view.release);
    let configs = view.configs.clone();
    settings_form(&ws, &view, &release, &configs, Placed::default(), StatusCode::OK).await
}

async fn settings_form(
    ws: &Workspace,
    view: &JobView,
    release_value: &str,
    configs: &serde_json::Map<String, serde_json::Value>,
    mut placed: Placed,
    status: StatusCode,
) -> Response {
    let layout = ws.layout(&format!("Settings · {}", view.name), "jobs");
    let integration = match ws.hub().integrations().get_integration(&view.integration).await {
        Ok(i) => i,
        Err(e) => return failure::page(e, Some(&layout)),
    };
    let release = match release_of(ws, &view.integration, release_value).await {
        Ok(r) => r,
        Err(e) => return failure::page(e, Some(&layout)),
    };
    if release.is_none() && !placed.fields.contains_key("release") {
        placed.field("release", "This names no release yet: choose a specific release or the Latest channel.");
    }
    let releases = match jf::release_options(ws, &integration, release_value).await {
        Ok(r) => r,
        Err(e) => return failure::page(e, Some(&layout)),
    };
    let cfg = config_form(ws, view, release.as_ref(), configs);
    let pending = cfg.as_ref().is_some_and(|f| f.fields().any(|f| f.pending));
    render(
        status,
        "job_settings.html",
        &layout,
        context! {
            job => context! { id => view.id, name => view.name, integration => view.integration },
            action => format!("/t/{}/jobs/{}", ws.id(), view.id),
            release_number => release.as_ref().map(|r| r.number),
            releases,
            configs => jf::config_items(cfg.as_ref(), &placed.fields),
            has_configs => cfg.as_ref().is_some_and(ConfigForm::has_fields),
            pending,
            errors => placed.fields,
            general => placed.general,
        },
    )
}

pub async fn save_settings(ws: Workspace, Path((_, job)): JobPath, body: PairsBody) -> Response {
    let (pairs, view) = match posted(&ws, &job, body, "Settings").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let layout = ws.layout("Settings", "jobs");
    let shown = match jf::first(&pairs, "form_release").parse::<u32>() {
        Ok(n) => match release_of(&ws, &view.integration, &n.to_string()).await {
            Ok(r) => r,
            Err(e) => return failure::page(e, Some(&layout)),
        },
        Err(_) => None,
    };
    // Configs the form does not show (admin-only ones, for a user) keep their values.
    let (configs, errors) =
        jf::read_configs(config_form(&ws, &view, shown.as_ref(), &view.configs).as_ref(), &view.configs, &pairs);
    let release_value = jf::first(&pairs, "release").to_owned();
    let mut placed = Placed { fields: errors, general: Vec::new() };
    if jf::first(&pairs, "action") == "refresh" {
        return settings_form(&ws, &view, &release_value, &configs, placed, StatusCode::OK).await;
    }
    let Some(pin) = jf::parse_pin(&release_value) else {
        placed.field("release", "Choose a channel or a release.");
        return settings_form(&ws, &view, &release_value, &configs, placed, StatusCode::BAD_REQUEST).await;
    };
    if !placed.is_empty() {
        return settings_form(&ws, &view, &release_value, &configs, placed, StatusCode::BAD_REQUEST).await;
    }
    let patch = JobPatch { release: Some(pin), configs: Some(configs.clone()), ..JobPatch::default() };
    match ws.hub().jobs().update_job(ws.id(), &job, patch).await {
        Ok(_) => see_other(&format!("/t/{}/jobs/{job}", ws.id())),
        Err(e) => {
            let release = match release_of(&ws, &view.integration, &release_value).await {
                Ok(r) => r,
                Err(e) => return failure::page(e, Some(&layout)),
            };
            let cfg = config_form(&ws, &view, release.as_ref(), &configs);
            let shown = |n: &str| cfg.as_ref().is_some_and(|f| f.fields().any(|f| f.name == n && !f.disabled));
            match jf::place(&e, &[], &shown) {
                Some(p) => settings_form(&ws, &view, &release_value, &configs, p, StatusCode::BAD_REQUEST).await,
                None => failure::page(e, Some(&layout)),
            }
        }
    }
}

// ---- The sync schedule ----

pub async fn schedule(ws: Workspace, Path((_, job)): JobPath) -> Response {
    let view = match load(&ws, &job, "Schedule").await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let input = ScheduleInput::from_schedule(view.schedule.as_ref());
    schedule_form(&ws, &view, &input, None, StatusCode::OK).await
}

async fn schedule_form(
    ws: &Workspace,
    view: &JobView,
    input: &ScheduleInput,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let layout = ws.layout(&format!("Schedule · {}", view.name), "jobs");
    let release = match ws.hub().integrations().release_for_pin(&view.integration, &view.release).await {
        Ok(r) => r,
        Err(Error::NotFound { .. }) => None,
        Err(e) => return failure::page(e, Some(&layout)),
    };
    let schedule = jf::schedule_view(ws, &view.integration, release.as_ref().map(|r| &r.manifest), input, error, true);
    render(
        status,
        "job_schedule.html",
        &layout,
        context! {
            job => context! { id => view.id, name => view.name, paused => view.paused, current => view.schedule_text },
            action => format!("/t/{}/jobs/{}", ws.id(), view.id),
            schedule,
        },
    )
}

pub async fn save_schedule(ws: Workspace, Path((_, job)): JobPath, body: PairsBody) -> Response {
    let (pairs, view) = match posted(&ws, &job, body, "Schedule").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let input = ScheduleInput::from_pairs(&pairs);
    let schedule = match input.to_schedule() {
        Ok(s) => s,
        Err(e) => return schedule_form(&ws, &view, &input, Some(e), StatusCode::BAD_REQUEST).await,
    };
    if jf::first(&pairs, "action") == "preview" {
        return schedule_form(&ws, &view, &input, None, StatusCode::OK).await;
    }
    let patch = JobPatch { schedule: Some(schedule), ..JobPatch::default() };
    match ws.hub().jobs().update_job(ws.id(), &job, patch).await {
        Ok(_) => see_other(&format!("/t/{}/jobs/{job}", ws.id())),
        Err(e @ (Error::Invalid { .. } | Error::InvalidDetails { .. })) => {
            schedule_form(&ws, &view, &input, Some(jf::message_of(&e)), StatusCode::BAD_REQUEST).await
        }
        Err(e) => failure::page(e, Some(&ws.layout("Schedule", "jobs"))),
    }
}

// ---- Connector info and the webhook ----

/// The manifest's connector information, as the API's `connector-info`
/// answers an operator; the webhook secret is dropped here, never shown.
async fn connector_info(ws: &Workspace, job: &str) -> Result<Option<ConnectorInfo>, Error> {
    match ws.hub().hooks().connector_info(ws.id(), job, true).await {
        Ok(mut info) => {
            let set = info.webhook.as_ref().is_some_and(|w| w.secret.is_some());
            if let Some(w) = info.webhook.as_mut() {
                // Only whether it is set leaves here.
                w.secret = set.then(String::new);
            }
            Ok(Some(info))
        }
        // A pin that names no release has no manifest to describe.
        Err(Error::Invalid { code: "unknown_release", .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

fn has_info(d: &Option<String>, s: &Option<String>) -> bool {
    d.as_deref().is_some_and(|t| !t.trim().is_empty()) || s.as_deref().is_some_and(|t| !t.trim().is_empty())
}

/// What the job page adds per connector (whether it has Info) and the webhook card.
pub async fn detail_extras(ws: &Workspace, job: &str) -> Result<Value, Error> {
    let Some(info) = connector_info(ws, job).await? else {
        return Ok(context! { info => BTreeMapEmpty::default(), webhook => Value::UNDEFINED });
    };
    let mut with_info = std::collections::BTreeMap::new();
    let mut unbound = Vec::new();
    for c in &info.connectors {
        with_info.insert(c.name.clone(), has_info(&c.description, &c.setup));
        if c.connection.is_none() {
            unbound.push(c.name.clone());
        }
    }
    let webhook = info.webhook.map(|w| {
        context! {
            enabled => w.enabled,
            url => w.url.or(w.path),
            verification => w.verification,
            secret_set => w.secret.is_some(),
            setup => w.setup,
        }
    });
    Ok(context! { info => with_info, unbound, webhook })
}

type BTreeMapEmpty = std::collections::BTreeMap<String, bool>;

pub async fn connectors(ws: Workspace, Path((_, job)): JobPath) -> Response {
    let view = match load(&ws, &job, "Connectors").await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let layout = ws.layout(&format!("Connectors · {}", view.name), "jobs");
    let info = match connector_info(&ws, &job).await {
        Ok(i) => i,
        Err(e) => return failure::page(e, Some(&layout)),
    };
    let connectors: Vec<Value> = info
        .iter()
        .flat_map(|i| &i.connectors)
        .map(|c| {
            context! {
                name => c.name,
                provider => c.provider,
                description => c.description,
                setup => c.setup,
                bound => c.connection.is_some(),
                has_info => has_info(&c.description, &c.setup),
            }
        })
        .collect();
    render(
        StatusCode::OK,
        "job_connectors.html",
        &layout,
        context! {
            job => context! { id => view.id, name => view.name },
            action => format!("/t/{}/jobs/{}", ws.id(), view.id),
            connectors,
            described => info.is_some(),
        },
    )
}

/// The form that enables the webhook, or rotates its secret with a confirmation.
pub async fn webhook_page(ws: Workspace, Path((_, job)): JobPath) -> Response {
    let view = match load(&ws, &job, "Webhook").await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let layout = ws.layout(&format!("Webhook · {}", view.name), "jobs");
    let info = match connector_info(&ws, &job).await {
        Ok(i) => i,
        Err(e) => return failure::page(e, Some(&layout)),
    };
    let Some(hook) = info.and_then(|i| i.webhook) else {
        return crate::render::message(
            StatusCode::NOT_FOUND,
            &layout,
            "No webhook",
            "This job's release declares no webhooks, so it receives no deliveries.",
            Some((&format!("/t/{}/jobs/{job}", ws.id()), "Back to the job")),
        );
    };
    render(
        StatusCode::OK,
        "job_webhook.html",
        &layout,
        context! {
            job => context! { id => view.id, name => view.name },
            action => format!("/t/{}/jobs/{}", ws.id(), view.id),
            enabled => hook.enabled,
        },
    )
}

/// Enables the job's webhook, or rotates its secret once confirmed; the
/// answer shows the secret now in force this once.
pub async fn webhook(ws: Workspace, Path((_, job)): JobPath, body: PairsBody) -> Response {
    let (pairs, view) = match posted(&ws, &job, body, "Webhook").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let layout = ws.layout(&format!("Webhook · {}", view.name), "jobs");
    let info = match connector_info(&ws, &job).await {
        Ok(i) => i,
        Err(e) => return failure::page(e, Some(&layout)),
    };
    let enabled = info.as_ref().and_then(|i| i.webhook.as_ref()).is_some_and(|w| w.enabled);
    let action = format!("/t/{}/jobs/{}", ws.id(), view.id);
    let job_ctx = context! { id => view.id, name => view.name };
    if enabled && jf::first(&pairs, "confirm") != "yes" {
        return render(
            StatusCode::BAD_REQUEST,
            "job_webhook.html",
            &layout,
            context! {
                job => job_ctx,
                action,
                enabled,
                confirm_error => "Tick the box to confirm: the current secret stops working as soon as the new one is made.",
            },
        );
    }
    let secret = Some(jf::first(&pairs, "secret").trim().to_owned()).filter(|s| !s.is_empty());
    match ws.hub().hooks().enable_webhook_info(ws.id(), &job, secret).await {
        Ok(w) => render(
            StatusCode::OK,
            "job_webhook.html",
            &layout,
            context! {
                job => job_ctx,
                action,
                done => context! { url => w.url.or(w.path), verification => w.verification, secret => w.secret, rotated => enabled },
            },
        ),
        Err(e @ (Error::Invalid { .. } | Error::InvalidDetails { .. })) => render(
            StatusCode::BAD_REQUEST,
            "job_webhook.html",
            &layout,
            context! { job => job_ctx, action, enabled, secret_error => jf::message_of(&e) },
        ),
        Err(e) => failure::page(e, Some(&layout)),
    }
}
