//! The dashboard: the tenant's numbers at a glance, its recent runs, and
//! the onboarding checklist in EZY's order.

use axum::http::StatusCode;
use axum::response::Response;
use minijinja::{context, Value};

use crate::failure;
use crate::render::page as render;
use crate::session::Workspace;
use ferry_core::model::{ConnectionStatus, UserRole};
use ferry_core::Error;
use ferry_service::activity::ActivityQuery;
use ferry_service::metrics::MetricsQuery;
use ferry_service::repo::PageRequest;
use ferry_service::Hub;

/// Counting connections stops here; the card then says "1000+".
const COUNT_CAP: usize = 1000;
/// Store pages a yes/no question of the checklist reads at most.
const PROBE_PAGES: usize = 5;
/// Jobs a yes/no question of the checklist reads at most: one store page (a
/// tenant may have tens of thousands; reading them all made the dashboard of
/// a tenant with 10,000 jobs take most of a second, and reading 1,000 was
/// still two thirds of what was left once the failed-runs card read tallies:
/// ferry-bench console).
const PROBE_JOBS: usize = 200;

fn first(limit: u32) -> PageRequest {
    PageRequest { limit: Some(limit), cursor: None }
}

/// `n`, or `n+` when counting stopped at the cap.
fn counted(n: usize, complete: bool) -> String {
    if complete {
        n.to_string()
    } else {
        format!("{n}+")
    }
}

pub async fn page(ws: Workspace) -> Response {
    let layout = ws.layout("Dashboard", "dashboard");
    match values(&ws).await {
        Ok(v) => render(StatusCode::OK, "dashboard.html", &layout, v),
        Err(e) => failure::page(e, Some(&layout)),
    }
}

async fn values(ws: &Workspace) -> Result<Value, Error> {
    let hub = ws.hub();
    let t = ws.id();
    let week = hub.metrics().tenant(t, &MetricsQuery { days: Some("7".into()), integration: None }).await?;
    let today = week.per_day.last().map_or(0, |d| d.summary.runs);
    let pending = week.dead_letters_pending.unwrap_or(0);
    let success = week.totals.success_rate.map(|r| format!("{:.0}%", r * 100.0));
    // From the hourly tallies run ends keep: reading the runs themselves made
    // this card most of the dashboard's time (ferry-bench console).
    let failed = hub.metrics().failed_in_last_24_hours(t).await?;
    let (attention, attention_complete) = connections_needing_attention(hub, t).await?;
    let recent = hub.runs().tenant_activity(t, &ActivityQuery::default(), &first(8)).await?;
    let rows: Vec<Value> = recent
        .items
        .iter()
        .map(|a| crate::runs::row(t, &a.run, a.job_name.as_deref(), a.integration.as_deref()))
        .collect();
    let checklist = checklist(hub, t, ws.signed.session.principal.is_platform_admin()).await?;
    let next_step = checklist.iter().position(|s| !s.done);
    let steps: Vec<Value> = checklist
        .iter()
        .enumerate()
        .map(|(i, s)| context! { title => s.title, hint => s.hint, done => s.done, next => Some(i) == next_step, href => s.href })
        .collect();
    Ok(context! {
        cards => vec![
            context! { label => "Runs ended today", value => today.to_string(), href => format!("/t/{t}/activity?since={}", hub.clock.now().format("%Y-%m-%d")) },
            context! { label => "Success rate, last 7 days", value => success.unwrap_or_else(|| "No runs".into()), href => format!("/t/{t}/activity") },
            context! { label => "Failed runs, last 24 hours", value => failed.to_string(), tone => if failed > 0 { "bad" } else { "" }, href => format!("/t/{t}/activity?status=failed") },
            context! { label => "Connections needing attention", value => counted(attention, attention_complete), tone => if attention > 0 { "bad" } else { "" }, href => format!("/t/{t}/connections") },
            context! { label => "Dead letters pending", value => pending.to_string(), tone => if pending > 0 { "bad" } else { "" }, href => format!("/t/{t}/dead-letters?status=pending") },
        ],
        chart => crate::chart::runs_per_day("Runs per day, last 7 days", &week.per_day),
        recent => rows,
        steps => steps,
        done => checklist.iter().all(|s| s.done),
    })
}

async fn connections_needing_attention(hub: &Hub, tenant: &str) -> Result<(usize, bool), Error> {
    let mut page = first(200);
    let (mut seen, mut n) = (0, 0);
    loop {
        let p = hub.connections().list_connections(tenant, &page).await?;
        seen += p.items.len();
        n += p.items.iter().filter(|c| c.status == ConnectionStatus::Error).count();
        match p.next_cursor {
            Some(c) if seen < COUNT_CAP => page.cursor = Some(c),
            Some(_) => return Ok((n, false)),
            None => return Ok((n, true)),
        }
    }
}

struct Step {
    title: &'static str,
    hint: String,
    done: bool,
    href: Option<String>,
}

/// EZY's onboarding order: users → connection profiles → mapping
/// configurations → jobs → manual run → schedule → API key. Each step links
/// the console screen that does it (users only for a platform admin, the
/// one who may create them).
async fn checklist(hub: &Hub, t: &str, admin: bool) -> Result<Vec<Step>, Error> {
    let any_job = hub.jobs().any_job(t, 1, |_| true).await? == Some(true);
    // A tenant with more jobs than the probe reads, none of them scheduled and
    // running, is long past onboarding: the step counts as done.
    let scheduled = hub.jobs().any_job(t, PROBE_JOBS, |j| j.schedule.is_some() && !j.paused).await?.unwrap_or(true);
    let manual = ActivityQuery { trigger: Some("manual".into()), ..ActivityQuery::default() };
    let keys = hub.users().list_api_keys(t, &first(50)).await?;
    Ok(vec![
        Step {
            title: "Add users",
            hint: if admin {
                "Give the people who run this tenant's integrations an account, with this tenant among their tenants."
                    .into()
            } else {
                "A platform admin gives the people who run this tenant's integrations an account.".into()
            },
            done: has_member(hub, t).await?,
            href: admin.then(|| "/admin/users/new".to_owned()),
        },
        Step {
            title: "Create connection profiles",
            hint:
                "Connect the systems the integrations read and write (or send the customer the profile's magic link)."
                    .into(),
            done: !hub.connections().list_connections(t, &first(1)).await?.items.is_empty(),
            href: Some(format!("/t/{t}/connections/new")),
        },
        Step {
            title: "Create mapping configurations",
            hint: "Say how fields map between the systems.".into(),
            done: !hub.integrations().list_mappings(t, &first(1)).await?.items.is_empty(),
            href: Some(format!("/t/{t}/mappings/new")),
        },
        Step {
            title: "Create a job",
            hint: "Choose an integration and bind its connectors to the profiles.".into(),
            done: any_job,
            href: Some(format!("/t/{t}/jobs/new")),
        },
        Step {
            title: "Run a job manually",
            hint: "Open a job and press Run now; check the run's counters and logs.".into(),
            done: any_run(hub, t, &manual).await?,
            href: Some(format!("/t/{t}/jobs")),
        },
        Step {
            title: "Schedule a job",
            hint: "Give a job a schedule and resume it, so it runs on its own.".into(),
            done: scheduled,
            href: Some(format!("/t/{t}/jobs")),
        },
        Step {
            title: "Create an API key",
            hint: "For the systems that trigger runs or read results.".into(),
            done: keys.items.iter().any(|k| k.revoked_at.is_none()),
            href: Some(format!("/t/{t}/api-keys")),
        },
    ])
}

async fn any_run(hub: &Hub, t: &str, q: &ActivityQuery) -> Result<bool, Error> {
    let mut page = first(1);
    for _ in 0..PROBE_PAGES {
        let p = hub.runs().tenant_activity(t, q, &page).await?;
        if !p.items.is_empty() {
            return Ok(true);
        }
        match p.next_cursor {
            Some(c) => page.cursor = Some(c),
            None => return Ok(false),
        }
    }
    Ok(false)
}

/// Whether a user (not a platform admin, who sees every tenant) belongs to
/// the tenant. Users are one platform-wide list; the scan is bounded.
async fn has_member(hub: &Hub, t: &str) -> Result<bool, Error> {
    let mut page = first(200);
    for _ in 0..PROBE_PAGES {
        let p = hub.users().list_users(&page).await?;
        if p.items.iter().any(|u| u.role == UserRole::User && u.memberships.iter().any(|m| m == t)) {
            return Ok(true);
        }
        match p.next_cursor {
            Some(c) => page.cursor = Some(c),
            None => return Ok(false),
        }
    }
    Ok(false)
}
