//! Dead letters: the tenant's list with the API's filters (status, job,
//! flow, category; and a run, from a run's page) and counts; replaying and
//! discarding the checked rows or everything pending that matches; one dead
//! letter's replay and its discard (after a confirmation page); and the
//! rows of one run's dead letters on the run's page. Every action is the
//! API's service call (`hub.dead_letters()`).

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::{context, Value};
use serde::{Deserialize, Serialize};

use crate::activity::encode;
use crate::failure;
use crate::forms::{self, checked, ticked, FormBody, PairsBody, Problem};
use crate::render::{message, page as render};
use crate::session::Workspace;
use ferry_core::model::{DeadLetter, DeadLetterCategory, DeadLetterStatus, ReplayMapping};
use ferry_core::Error;
use ferry_service::auth::Principal;
use ferry_service::dead_letters::{DeadLetterFilter, ReplayRequest, Replayed, Selection, SelectionFilter};
use ferry_service::repo::PageRequest;

pub const PAGE: u32 = 25;
/// A run's dead letters shown on its page; the rest are a link away.
const RUN_PAGE: u32 = 10;

/// The filter form's fields as the browser sends them (empty = any).
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct Filters {
    #[serde(default)]
    status: String,
    #[serde(default)]
    job: String,
    #[serde(default)]
    flow: String,
    #[serde(default)]
    category: String,
    /// Only what this run dead-lettered or failed again (with `job`; set by a run's page).
    #[serde(default)]
    run: String,
    #[serde(default, skip_serializing)]
    cursor: String,
}

impl Filters {
    fn filter(&self) -> Result<DeadLetterFilter, Error> {
        let mut f = DeadLetterFilter::parse(
            forms::filled(&self.job),
            forms::filled(&self.flow),
            forms::filled(&self.category).as_deref(),
            forms::filled(&self.status).as_deref(),
        )?;
        f.run = forms::filled(&self.run);
        Ok(f)
    }

    /// The filters as a query string (for links and the next page).
    fn encoded(&self) -> String {
        [
            ("status", &self.status),
            ("job", &self.job),
            ("flow", &self.flow),
            ("category", &self.category),
            ("run", &self.run),
        ]
        .iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| format!("{k}={}", encode(v.trim())))
        .collect::<Vec<_>>()
        .join("&")
    }

    fn any(&self) -> bool {
        [&self.status, &self.job, &self.flow, &self.category, &self.run].iter().any(|v| !v.trim().is_empty())
    }

    fn from_form(form: &BTreeMap<String, String>) -> Self {
        let get = |k: &str| form.get(&format!("f_{k}")).cloned().unwrap_or_default();
        Self {
            status: get("status"),
            job: get("job"),
            flow: get("flow"),
            category: get("category"),
            run: get("run"),
            cursor: String::new(),
        }
    }
}

pub fn category_label(c: DeadLetterCategory) -> &'static str {
    match c {
        DeadLetterCategory::Mapping => "Mapping failed",
        DeadLetterCategory::TargetRejected => "Target refused",
        DeadLetterCategory::TargetUnavailable => "Target unavailable",
    }
}

fn status_tone(s: DeadLetterStatus) -> &'static str {
    match s {
        DeadLetterStatus::Pending => "warn",
        DeadLetterStatus::Replayed => "ok",
        DeadLetterStatus::Discarded => "idle",
    }
}

/// A dead letter as a row of a list.
pub fn row(tenant: &str, dl: &DeadLetter) -> Value {
    context! {
        id => dl.id,
        job => dl.job,
        job_href => format!("/t/{tenant}/jobs/{}", dl.job),
        run_href => format!("/t/{tenant}/jobs/{}/runs/{}", dl.job, dl.run),
        flow => dl.flow,
        category => category_label(dl.category),
        error => dl.error,
        attempts => dl.attempts,
        first_seen => crate::runs::when(dl.first_seen),
        last_seen => crate::runs::when(dl.last_seen),
        status => dl.status.as_str(),
        tone => status_tone(dl.status),
        pending => dl.status == DeadLetterStatus::Pending,
        replay_action => format!("/t/{tenant}/dead-letters/{}/replay", dl.id),
        discard_href => format!("/t/{tenant}/dead-letters/{}/discard", dl.id),
    }
}

/// Where a page of this tenant sends the browser back to after an action;
/// only a path inside the workspace, so the field cannot point elsewhere.
fn back_to(ws: &Workspace, form: &BTreeMap<String, String>) -> String {
    let prefix = format!("/t/{}/", ws.id());
    form.get("return_to")
        .filter(|r| r.starts_with(&prefix) && !r.contains("//") && !r.contains('\\') && !r.contains(".."))
        .cloned()
        .unwrap_or_else(|| format!("/t/{}/dead-letters", ws.id()))
}

struct Shown {
    checked: Vec<String>,
    problem: Option<Problem>,
}

async fn list_page(ws: &Workspace, filters: Filters, status: StatusCode, shown: Shown) -> Response {
    let layout = ws.layout("Dead letters", "dead-letters");
    let cursor = forms::filled(&filters.cursor);
    let (items, next_cursor, counts, error) = match filters.filter() {
        Ok(filter) => {
            let page = PageRequest { limit: Some(PAGE), cursor: cursor.clone() };
            match ws.hub().dead_letters().list(ws.id(), &filter, &page).await {
                Ok(l) => (l.items, l.next_cursor, Some(l.counts), None),
                Err(Error::Invalid { message, .. }) => (Vec::new(), None, None, Some(message)),
                Err(e) => return failure::page(e, Some(&layout)),
            }
        }
        Err(Error::Invalid { message, .. }) => (Vec::new(), None, None, Some(message)),
        Err(e) => return failure::page(e, Some(&layout)),
    };
    let rows: Vec<Value> = items
        .iter()
        .map(|dl| {
            let mut r = row(ws.id(), dl);
            if shown.checked.contains(&dl.id) {
                r = context! { checked => true, ..r };
            }
            r
        })
        .collect();
    let by_status: Vec<Value> = counts
        .as_ref()
        .map(|c| c.by_status.iter().map(|(s, n)| context! { label => s.as_str(), n => n }).collect())
        .unwrap_or_default();
    let by_category: Vec<Value> = counts
        .as_ref()
        .map(|c| c.by_category.iter().map(|(k, n)| context! { label => category_label(*k), n => n }).collect())
        .unwrap_or_default();
    let pending = counts.as_ref().and_then(|c| c.by_status.get(&DeadLetterStatus::Pending).copied()).unwrap_or(0);
    let encoded = filters.encoded();
    let here = format!(
        "/t/{}/dead-letters{}",
        ws.id(),
        if encoded.is_empty() { String::new() } else { format!("?{encoded}") }
    );
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { status };
    render(
        status,
        "dead_letters.html",
        &layout,
        context! {
            f => filters,
            rows => rows,
            by_status => by_status,
            by_category => by_category,
            pending => pending,
            error => error,
            problem => shown.problem.as_ref().map(|p| context! { field => p.field, message => p.message }),
            filtered => filters.any(),
            here_q => encode(&here),
            here => here,
            paged => cursor.is_some(),
            next => next_cursor.map(|c| format!("?{}{}cursor={}", encoded, if encoded.is_empty() { "" } else { "&" }, encode(&c))),
        },
    )
}

pub async fn list(ws: Workspace, q: Result<Query<Filters>, QueryRejection>) -> Response {
    let filters = q.map(|Query(f)| f).unwrap_or_default();
    list_page(&ws, filters, StatusCode::OK, Shown { checked: Vec::new(), problem: None }).await
}

/// Who acted, as replay runs record it (the API's rule for `by`).
fn by(ws: &Workspace) -> String {
    match &ws.signed.session.principal {
        Principal::User { email, .. } => email.clone(),
        Principal::ApiKey { key_id, .. } => format!("API key {key_id}"),
    }
}

/// The bulk form: its fields (the last value of each) and the checked ids.
// The error is the page answered to this request; boxing it would only move it.
#[allow(clippy::result_large_err)]
fn bulk_form(ws: &Workspace, body: PairsBody) -> Result<(BTreeMap<String, String>, Vec<String>), Response> {
    let pairs = forms::checked_pairs(&ws.signed, body)?;
    let ids: Vec<String> = pairs.iter().filter(|(k, _)| k == "id").map(|(_, v)| v.clone()).collect();
    let form: BTreeMap<String, String> = pairs.into_iter().filter(|(k, _)| k != "id").collect();
    Ok((form, ids))
}

/// What the bulk form selects: the checked rows, or every pending dead
/// letter the list's filters match.
// The error is the page answered to this request; boxing it would only move it.
#[allow(clippy::result_large_err)]
fn selection(form: &BTreeMap<String, String>, ids: &[String]) -> Result<Selection, Problem> {
    match form.get("scope").map(String::as_str) {
        Some("matching") => {
            let f = Filters::from_form(form);
            let category = f.filter().map_err(|e| Problem { field: "scope", message: e.to_string() })?.category;
            Ok(Selection {
                ids: None,
                filter: Some(SelectionFilter { job: forms::filled(&f.job), flow: forms::filled(&f.flow), category }),
            })
        }
        _ if ids.is_empty() => Err(Problem { field: "ids", message: "Check the dead letters to act on first.".into() }),
        _ => Ok(Selection { ids: Some(ids.to_vec()), filter: None }),
    }
}

fn mapping(form: &BTreeMap<String, String>) -> ReplayMapping {
    match form.get("mapping").map(String::as_str) {
        Some("original") => ReplayMapping::Original,
        _ => ReplayMapping::Current,
    }
}

fn replayed_page(ws: &Workspace, r: &Replayed, back: &str) -> Response {
    let layout = ws.layout("Replay started", "dead-letters");
    let runs = r.runs.len();
    let text = if runs == 0 {
        "Nothing was replayed: none of the selected dead letters is pending (or their jobs are gone).".to_owned()
    } else {
        format!(
            "{} dead letter{} will be sent again by {} replay run{}. They show as replayed once delivered; the runs are in Activity.",
            r.selected,
            if r.selected == 1 { "" } else { "s" },
            runs,
            if runs == 1 { "" } else { "s" },
        )
    };
    let first = r.runs.first().map(|t| crate::jobs::after_trigger(ws.id(), &t.run.job, t));
    match (runs, first) {
        (1, Some(run)) => {
            message(StatusCode::ACCEPTED, &layout, "Replay started", &text, Some((&run, "Open the replay run")))
        }
        _ => message(StatusCode::ACCEPTED, &layout, "Replay started", &text, Some((back, "Back"))),
    }
}

pub async fn replay(ws: Workspace, body: PairsBody) -> Response {
    let (form, ids) = match bulk_form(&ws, body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let back = back_to(&ws, &form);
    let selection = match selection(&form, &ids) {
        Ok(s) => s,
        Err(p) => {
            return list_page(
                &ws,
                Filters::from_form(&form),
                StatusCode::BAD_REQUEST,
                Shown { checked: ids, problem: Some(p) },
            )
            .await
        }
    };
    let req = ReplayRequest { mapping: mapping(&form), selection };
    match ws.hub().dead_letters().replay(ws.id(), &req, &by(&ws)).await {
        Ok(r) => replayed_page(&ws, &r, &back),
        Err(e) => failure::page(e, Some(&ws.layout("Dead letters", "dead-letters"))),
    }
}

pub async fn discard(ws: Workspace, body: PairsBody) -> Response {
    let (form, ids) = match bulk_form(&ws, body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let back = back_to(&ws, &form);
    let again = |p: Problem, ids: Vec<String>| {
        let filters = Filters::from_form(&form);
        let ws = &ws;
        async move { list_page(ws, filters, StatusCode::BAD_REQUEST, Shown { checked: ids, problem: Some(p) }).await }
    };
    let selection = match selection(&form, &ids) {
        Ok(s) => s,
        Err(p) => return again(p, ids).await,
    };
    if !ticked(&form, "confirm") {
        let p = Problem {
            field: "confirm",
            message: "Tick the box to confirm the discard: discarded records are not sent again.".into(),
        };
        return again(p, ids).await;
    }
    let layout = ws.layout("Discarded", "dead-letters");
    match ws.hub().dead_letters().discard(ws.id(), &selection).await {
        Ok(d) => {
            let mut text =
                format!("{} dead letter{} discarded.", d.discarded, if d.discarded == 1 { " was" } else { "s were" });
            if d.more {
                text.push_str(" More match: discard the matching ones again to go on.");
            }
            message(StatusCode::OK, &layout, "Discarded", &text, Some((&back, "Back")))
        }
        Err(e) => failure::page(e, Some(&layout)),
    }
}

pub async fn replay_one(ws: Workspace, Path((_, letter)): Path<(String, String)>, body: PairsBody) -> Response {
    let (form, _) = match bulk_form(&ws, body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let back = back_to(&ws, &form);
    match ws.hub().dead_letters().replay_one(ws.id(), &letter, mapping(&form), &by(&ws)).await {
        Ok(r) => replayed_page(&ws, &r, &back),
        Err(e) => failure::page(e, Some(&ws.layout("Dead letters", "dead-letters"))),
    }
}

async fn discard_page(
    ws: &Workspace,
    letter: &str,
    back: &str,
    status: StatusCode,
    problem: Option<Problem>,
) -> Response {
    let layout = ws.layout("Discard dead letter", "dead-letters");
    let dl = match ws.hub().dead_letters().get(ws.id(), letter).await {
        Ok(dl) => dl,
        Err(e) => return failure::page(e, Some(&layout)),
    };
    render(
        status,
        "dead_letter_discard.html",
        &layout,
        context! {
            d => row(ws.id(), &dl),
            action => format!("/t/{}/dead-letters/{}/discard", ws.id(), dl.id),
            back => back,
            error => problem.as_ref().map(|p| context! { field => p.field, message => p.message }),
        },
    )
}

#[derive(Deserialize, Default)]
pub struct Back {
    return_to: Option<String>,
}

pub async fn confirm_discard(
    ws: Workspace,
    Path((_, letter)): Path<(String, String)>,
    q: Result<Query<Back>, QueryRejection>,
) -> Response {
    let mut form = BTreeMap::new();
    if let Some(r) = q.ok().and_then(|Query(b)| b.return_to) {
        form.insert("return_to".to_owned(), r);
    }
    let back = back_to(&ws, &form);
    discard_page(&ws, &letter, &back, StatusCode::OK, None).await
}

pub async fn discard_one(ws: Workspace, Path((_, letter)): Path<(String, String)>, body: FormBody) -> Response {
    let form = match checked(&ws.signed, body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let back = back_to(&ws, &form);
    if !ticked(&form, "confirm") {
        let p = Problem {
            field: "confirm",
            message: "Tick the box to confirm the discard: a discarded record is not sent again.".into(),
        };
        return discard_page(&ws, &letter, &back, StatusCode::BAD_REQUEST, Some(p)).await;
    }
    let layout = ws.layout("Discarded", "dead-letters");
    match ws.hub().dead_letters().discard_one(ws.id(), &letter).await {
        Ok(_) => message(
            StatusCode::OK,
            &layout,
            "Discarded",
            "The dead letter was discarded; it will not be sent again.",
            Some((&back, "Back")),
        ),
        Err(e) => failure::page(e, Some(&layout)),
    }
}

/// The run page's section: the first dead letters the run left, with the
/// run's pending count by the list's counts, and a link to all of them.
pub async fn of_run(ws: &Workspace, job: &str, run: &str) -> Result<Value, Error> {
    let filter =
        DeadLetterFilter { job: Some(job.to_owned()), run: Some(run.to_owned()), ..DeadLetterFilter::default() };
    let list =
        ws.hub().dead_letters().list(ws.id(), &filter, &PageRequest { limit: Some(RUN_PAGE), cursor: None }).await?;
    let rows: Vec<Value> = list.items.iter().map(|dl| row(ws.id(), dl)).collect();
    let here = format!("/t/{}/jobs/{job}/runs/{run}", ws.id());
    Ok(context! {
        here_q => encode(&here),
        rows => rows,
        more => list.next_cursor.is_some(),
        all_href => format!("/t/{}/dead-letters?job={}&run={}", ws.id(), encode(job), encode(run)),
        here => here,
    })
}
