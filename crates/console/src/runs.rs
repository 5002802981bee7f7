//! Runs: how a run reads in a list (shared by the dashboard, activity and
//! a job's page), and the run detail page with its logs and rerun forms.

use std::collections::BTreeMap;

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use chrono::{DateTime, Utc};
use minijinja::{context, Value};
use serde::Deserialize;

use crate::failure;
use crate::forms;
use crate::render::page as render;
use crate::session::{see_other, Workspace};
use ferry_core::model::{RerunConfig, Run, RunMode, RunStatus};
use ferry_core::Error;
use ferry_service::reruns::RerunRequest;
use ferry_service::runs::LogFilter;

/// A status as people read it, and its tone (the badge's colour class).
pub fn status(s: RunStatus) -> (&'static str, &'static str) {
    match s {
        RunStatus::Queued => ("Queued", "busy"),
        RunStatus::Running => ("Running", "busy"),
        RunStatus::Interrupted => ("Interrupted (continuing)", "busy"),
        RunStatus::Succeeded => ("Succeeded", "ok"),
        RunStatus::Partial => ("Partial", "warn"),
        RunStatus::FailedIntegration => ("Failed: integration", "bad"),
        RunStatus::FailedPlatform => ("Failed: platform", "bad"),
        RunStatus::FailedTimeout => ("Failed: timed out", "bad"),
        RunStatus::FailedRefresh => ("Failed: token refresh", "bad"),
        RunStatus::Cancelled => ("Cancelled", "warn"),
    }
}

pub fn mode(m: RunMode) -> &'static str {
    match m {
        RunMode::Init => "init",
        RunMode::Normal => "normal",
        RunMode::Webhook => "webhook",
    }
}

pub fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// `1 h 02 min`, `3 min 05 s`, `4.2 s`.
pub fn duration(run: &Run) -> Option<String> {
    let start = run.started_at?;
    let end = run.ended_at?;
    let ms = (end - start).num_milliseconds().max(0);
    let secs = ms / 1000;
    Some(if secs >= 3600 {
        format!("{} h {:02} min", secs / 3600, (secs % 3600) / 60)
    } else if secs >= 60 {
        format!("{} min {:02} s", secs / 60, secs % 60)
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    })
}

/// A run as a row of a list.
pub fn row(tenant: &str, run: &Run, job_name: Option<&str>, integration: Option<&str>) -> Value {
    let (label, tone) = status(run.status);
    let read: u64 = run.counters.values().map(|c| c.read).sum();
    let written: u64 = run.counters.values().map(|c| c.written).sum();
    let triggers: Vec<&str> = run.triggers.iter().map(|t| t.source.as_str()).collect();
    context! {
        id => run.id,
        href => format!("/t/{tenant}/jobs/{}/runs/{}", run.job, run.id),
        job => run.job,
        job_href => format!("/t/{tenant}/jobs/{}", run.job),
        job_name => job_name,
        integration => integration,
        status => label,
        tone => tone,
        mode => mode(run.mode),
        trigger => triggers.join(", "),
        created => when(run.created_at),
        read => read,
        written => written,
        duration => duration(run),
    }
}

#[derive(Deserialize, Default)]
pub struct LogQuery {
    level: Option<String>,
    q: Option<String>,
}

pub async fn detail(
    ws: Workspace,
    Path((_, job, run)): Path<(String, String, String)>,
    query: Result<Query<LogQuery>, QueryRejection>,
) -> Response {
    let lq = query.map(|Query(q)| q).unwrap_or_default();
    let filter = LogFilter {
        level: lq.level.clone().filter(|l| !l.is_empty()),
        flow: None,
        q: lq.q.clone().filter(|q| !q.trim().is_empty()),
    };
    let hub = ws.hub();
    let layout = ws.layout("Run", "activity");
    let detail = match hub.runs().run_detail(ws.id(), &job, &run).await {
        Ok(d) => d,
        Err(e) => return failure::page(e, Some(&layout)),
    };
    let (logs, log_error) = match hub.runs().run_logs(ws.id(), &job, &run, &filter).await {
        Ok(l) => (Some(l), None),
        Err(Error::Invalid { message, .. }) => (None, Some(message)),
        Err(e) => return failure::page(e, Some(&layout)),
    };
    let job_view = hub.jobs().get_job(ws.id(), &job).await.ok();
    let r = &detail.run;
    let (label, tone) = status(r.status);
    let counters: Vec<Value> = r
        .counters
        .iter()
        .map(|(flow, c)| context! { flow, read => c.read, written => c.written, skipped => c.skipped, failed => c.failed, dead_lettered => c.dead_lettered })
        .collect();
    let triggers: Vec<Value> = r
        .triggers
        .iter()
        .map(|t| context! { source => t.source, at => when(t.at), by => t.by, tick => t.tick.map(when) })
        .collect();
    let lines: Vec<Value> = logs
        .as_ref()
        .map(|l| {
            l.lines
                .iter()
                .map(|line| {
                    let level = serde_json::to_value(line.level).ok().and_then(|v| v.as_str().map(str::to_owned));
                    context! { time => line.time.map(when), level, flow => line.flow, message => line.message, record => line.record }
                })
                .collect()
        })
        .unwrap_or_default();
    let dead_letters = match crate::dead_letters::of_run(&ws, &job, &r.id).await {
        Ok(v) => v,
        Err(e) => return failure::page(e, Some(&layout)),
    };
    let going = !r.status.is_finished();
    let rerunnable = r.status.is_finished() && r.mode != RunMode::Webhook;
    let layout = if going { layout.refreshing(3) } else { layout };
    render(
        if log_error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK },
        "run.html",
        &layout,
        context! {
            run => context! {
                id => r.id,
                status => label,
                tone => tone,
                mode => mode(r.mode),
                release => r.release,
                created => when(r.created_at),
                started => r.started_at.map(when),
                ended => r.ended_at.map(when),
                duration => duration(r),
                error => r.error,
                rerun_of => r.rerun_of.as_ref().map(|o| context! { id => o, href => format!("/t/{}/jobs/{}/runs/{o}", ws.id(), r.job) }),
                continuations => r.continuations,
            },
            job => context! {
                id => job,
                name => job_view.as_ref().map(|j| j.name.clone()),
                href => format!("/t/{}/jobs/{job}", ws.id()),
            },
            action => format!("/t/{}/jobs/{job}/runs/{}", ws.id(), r.id),
            going => going,
            rerunnable => rerunnable,
            recorded => detail.config.is_some(),
            counters => counters,
            triggers => triggers,
            lines => lines,
            truncated => logs.as_ref().map(|l| l.truncated),
            dropped => logs.as_ref().map(|l| l.dropped),
            level => lq.level,
            q => lq.q,
            log_error => log_error,
            dead_letters => dead_letters,
        },
    )
}

pub async fn rerun(
    ws: Workspace,
    Path((_, job, run)): Path<(String, String, String)>,
    body: Result<Form<BTreeMap<String, String>>, FormRejection>,
) -> Response {
    let f = match forms::checked(&ws.signed, body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let layout = ws.layout("Rerun", "activity");
    let config = match f.get("config").map(String::as_str) {
        Some("original") => RerunConfig::Original,
        Some("current") => RerunConfig::Current,
        _ => {
            return failure::page(
                Error::invalid("invalid_config", "choose the original or the current configuration"),
                Some(&layout),
            )
        }
    };
    let by = ws.signed.email().to_owned();
    match ws.hub().runs().rerun(ws.id(), &job, &run, RerunRequest { config }, &by).await {
        Ok(t) => see_other(&crate::jobs::after_trigger(ws.id(), &job, &t)),
        Err(e) => failure::page(e, Some(&layout)),
    }
}
