//! Activity: every run of the tenant, newest first, with the filters the
//! API's `GET /v1/tenants/{tenant}/runs` takes.

use axum::extract::rejection::QueryRejection;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::{context, Value};
use serde::{Deserialize, Serialize};

use crate::failure;
use crate::forms;
use crate::render::page as render;
use crate::session::Workspace;
use ferry_core::Error;
use ferry_service::activity::ActivityQuery;
use ferry_service::repo::PageRequest;

pub const PAGE: u32 = 25;

/// The filter form's fields, as the browser sends them (empty = any).
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct Filters {
    #[serde(default)]
    status: String,
    #[serde(default)]
    job: String,
    #[serde(default)]
    integration: String,
    #[serde(default)]
    trigger: String,
    #[serde(default)]
    mode: String,
    /// A date (`2024-05-01`, from midnight UTC) or an RFC 3339 time.
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default, skip_serializing)]
    cursor: String,
}

/// A date input's value is a day; the API's window takes times.
fn time(s: &str) -> Option<String> {
    forms::filled(s).map(|v| if v.len() == 10 && !v.contains('T') { format!("{v}T00:00:00Z") } else { v })
}

impl Filters {
    fn query(&self) -> ActivityQuery {
        ActivityQuery {
            status: forms::filled(&self.status),
            job: forms::filled(&self.job),
            integration: forms::filled(&self.integration),
            trigger: forms::filled(&self.trigger),
            mode: forms::filled(&self.mode),
            since: time(&self.since),
            until: time(&self.until),
        }
    }

    /// The filters as a query string, for the next page's link.
    fn encoded(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_object().cloned())
            .map(|o| {
                o.iter()
                    .filter_map(|(k, v)| v.as_str().filter(|s| !s.is_empty()).map(|s| (k.clone(), s.to_owned())))
                    .map(|(k, v)| format!("{k}={}", encode(&v)))
                    .collect::<Vec<_>>()
                    .join("&")
            })
            .unwrap_or_default()
    }
}

/// Percent-encodes a query value.
pub fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub async fn page(ws: Workspace, q: Result<Query<Filters>, QueryRejection>) -> Response {
    let layout = ws.layout("Activity", "activity");
    let (filters, unreadable) = match q {
        Ok(Query(f)) => (f, false),
        Err(_) => (Filters::default(), true),
    };
    let cursor = forms::filled(&filters.cursor);
    let hub = ws.hub();
    let result = hub
        .runs()
        .tenant_activity(ws.id(), &filters.query(), &PageRequest { limit: Some(PAGE), cursor: cursor.clone() })
        .await;
    let (runs, next_cursor, error) = match result {
        Ok(p) => (p.items, p.next_cursor, None),
        Err(Error::Invalid { message, .. }) => (Vec::new(), None, Some(message)),
        Err(e) => return failure::page(e, Some(&layout)),
    };
    let error = error.or_else(|| unreadable.then(|| "The filters could not be read; they were reset.".to_owned()));
    let rows: Vec<Value> = runs
        .iter()
        .map(|a| crate::runs::row(ws.id(), &a.run, a.job_name.as_deref(), a.integration.as_deref()))
        .collect();
    let filtered = [
        &filters.status,
        &filters.job,
        &filters.integration,
        &filters.trigger,
        &filters.mode,
        &filters.since,
        &filters.until,
    ]
    .iter()
    .any(|v| !v.trim().is_empty());
    render(
        if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK },
        "activity.html",
        &layout,
        context! {
            f => filters,
            runs => rows,
            error => error,
            filtered => filtered,
            paged => cursor.is_some(),
            next => next_cursor.map(|c| format!("?{}{}cursor={}", filters.encoded(), if filters.encoded().is_empty() { "" } else { "&" }, encode(&c))),
        },
    )
}
