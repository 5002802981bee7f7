//! `ferry-bench console`: how fast the console renders its list pages for a
//! large tenant (issue 20: 10,000 jobs and 100,000 runs in one tenant, every
//! list page in <= 50 ms at p99).
//!
//! Seeds the embedded store straight through the services (the jobs through
//! `create_job`, as the API makes them; the runs as run records in batched
//! writes through `repo::run_index::put`, which keeps the activity index,
//! each with its end folded into the run metrics as a run's end is),
//! then starts `ferry up` on it as a process of its own, signs in through the
//! sign-in form like a browser, and times every page: the pages the
//! workspace's navigation links to (found in the dashboard's `<nav>`, so
//! screens added later are measured too), each at its first page and at a
//! deep page (reached by following `rel="next"` links), a job's page, a run's
//! page, a filtered activity page and the tenant switcher. Each request is
//! timed at the client over a kept-alive loopback connection: the whole
//! server-side render (session, store reads, template) plus loopback HTTP.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use chrono::Utc;
use ferry::host::{self, Backend};
use ferry_core::model::metrics::RunEnd;
use ferry_core::model::Run;
use ferry_core::ports::Condition;
use ferry_service::config::Config;
use ferry_service::metrics;
use ferry_service::repo::run_index;
use serde_json::json;

use crate::engine::Host;

#[derive(Debug, clap::Args)]
pub struct ConsoleArgs {
    /// Jobs in the tenant.
    #[arg(long, default_value_t = 10_000)]
    jobs: usize,
    /// Runs in the tenant, spread over its jobs and the last 30 days.
    #[arg(long, default_value_t = 100_000)]
    runs: usize,
    /// Timed requests per page (after a few untimed ones).
    #[arg(long, short = 'n', default_value_t = 200)]
    requests: usize,
    /// `rel="next"` links followed to reach a list's deep page.
    #[arg(long, default_value_t = 100)]
    deep: usize,
    /// Cargo profile directory `ferry` comes from (`host` is its profile).
    #[arg(long, default_value = "host")]
    profile: String,
}

const TENANT: &str = "bench";
const EMAIL: &str = "ops@bench.example";
const PASSWORD: &str = "a long bench passphrase";
const MANIFEST: &str = "version: 1.0\nname: bench\nconnectors:\n  dst: {auth: none, base_url: 'https://dst.example', required: false}\n\
                        flows:\n  - name: orders\n    source: {type: http, connector: dst, request: {path: /orders}, records: items}\n    target: {type: http, connector: dst, path: /orders}\n";
/// Runs' history spans this many days, newest first.
const HISTORY_DAYS: i64 = 30;

struct Timed {
    page: String,
    path: String,
    samples: Vec<Duration>,
    bytes: usize,
}

pub async fn run(args: ConsoleArgs) -> anyhow::Result<String> {
    let binary = ferry_e2e::function_binary(&args.profile, "ferry")
        .with_context(|| format!("build it first: cargo build --profile {} -p ferry", args.profile))?;
    let data = tempfile::tempdir()?;
    let started = Instant::now();
    seed(data.path(), &args).await?;
    eprintln!(
        "ferry-bench: seeded {} jobs and {} runs in {:.1} s",
        args.jobs,
        args.runs,
        started.elapsed().as_secs_f64()
    );
    let host = Host::start(&binary, data.path()).await?;
    let c = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let cookie = sign_in(&c, &host.base).await?;

    let mut pages: Vec<(String, String)> = Vec::new();
    let dashboard = format!("/t/{TENANT}/");
    pages.push(("dashboard".into(), dashboard.clone()));
    let body = get(&c, &host.base, &dashboard, &cookie).await?;
    for (label, href) in nav_links(&body) {
        if href == dashboard {
            continue;
        }
        pages.push((format!("{label}, first page"), href.clone()));
        if let Some((depth, deep)) = follow_next(&c, &host.base, &href, &cookie, args.deep).await? {
            pages.push((format!("{label}, page {}", depth + 1), deep));
        }
    }
    let jobs = get(&c, &host.base, &format!("/t/{TENANT}/jobs"), &cookie).await?;
    let job_page =
        |h: &String| h.starts_with(&format!("/t/{TENANT}/jobs/")) && !h.contains('?') && !h.ends_with("/new");
    let job = links(&jobs).into_iter().find(job_page);
    let job = job.context("the jobs page links no job")?;
    pages.push(("job detail (its runs)".into(), job.clone()));
    let job_page = get(&c, &host.base, &job, &cookie).await?;
    if let Some(run) = links(&job_page).into_iter().find(|h| h.contains("/runs/")) {
        pages.push(("run detail".into(), run));
    }
    pages.push(("activity, failed runs".into(), format!("/t/{TENANT}/activity?status=failed")));
    pages.push(("tenant switcher".into(), "/tenants".into()));

    let mut results = Vec::new();
    for (page, path) in pages {
        eprintln!("ferry-bench: {page}: {path}");
        results.push(time_page(&c, &host.base, &cookie, page, path, args.requests).await?);
    }
    Ok(markdown(&results, &args))
}

/// The tenant, its user, a release, the jobs (through the service, as the API
/// makes them) and the runs (run records, 100 to a write).
async fn seed(dir: &Path, args: &ConsoleArgs) -> anyhow::Result<()> {
    let hub = host::build_hub(&Backend::Embedded { data_dir: dir.to_path_buf() }, Config::default()).await?;
    hub.tenants().create_tenant(serde_json::from_value(json!({"id": TENANT, "name": "Bench Corp"}))?).await?;
    let user = json!({"email": EMAIL, "full_name": "Bench Ops", "password": PASSWORD, "role": "user", "memberships": [TENANT]});
    hub.users().create_user(serde_json::from_value(user)?).await?;
    let publish = json!({"manifest": MANIFEST});
    hub.integrations().publish_release("bench", serde_json::from_value(publish)?, None).await?;
    let mut jobs = Vec::with_capacity(args.jobs);
    for i in 0..args.jobs {
        let job = json!({"name": format!("Orders sync {i:05}"), "integration": "bench", "configs": {}});
        jobs.push(hub.jobs().create_job(TENANT, serde_json::from_value(job)?).await?.id);
        if (i + 1) % 2000 == 0 {
            eprintln!("ferry-bench: {} jobs", i + 1);
        }
    }
    if jobs.is_empty() {
        bail!("--jobs must be at least 1");
    }
    let now = Utc::now();
    let step = chrono::Duration::days(HISTORY_DAYS) / i32::try_from(args.runs.max(1)).unwrap_or(i32::MAX);
    let mut ops = Vec::with_capacity(ferry_core::ports::MAX_WRITE_OPS);
    let mut ended = Vec::with_capacity(args.runs);
    for i in 0..args.runs {
        let created = now - step * i32::try_from(i).unwrap_or(i32::MAX) - chrono::Duration::minutes(1);
        let (status, error) = match i % 20 {
            3 | 13 => ("failed_integration", Some("dst answered 502 Bad Gateway on POST /orders")),
            7 => ("partial", None),
            _ => ("succeeded", None),
        };
        let run: Run = serde_json::from_value(json!({
            "id": hub.ids.next_id(),
            "tenant": TENANT,
            "job": jobs[i % jobs.len()],
            "mode": "normal",
            "triggers": [{"source": if i % 25 == 0 { "manual" } else { "webhook" }, "at": created}],
            "release": 1,
            "status": status,
            "started_at": created,
            "ended_at": created + chrono::Duration::seconds(3),
            "counters": {"orders": {"read": 120, "written": if error.is_some() { 0 } else { 120 }, "skipped": 0, "failed": 0}},
            "error": error,
            "created_at": created,
        }))?;
        // With the run its end, as a run's final write records it, folded
        // below into the metrics (the dashboard's cards read those).
        let end = RunEnd::of(&run, Some("bench".into())).context("a seeded run has a final status")?;
        ended.push(run.id.clone());
        ops.push(run_index::put(&run, Condition::None)?);
        ops.push(metrics::pending_op(&end)?);
        if ops.len() + 2 > ferry_core::ports::MAX_WRITE_OPS {
            hub.store.write(std::mem::take(&mut ops)).await?;
        }
        if (i + 1) % 20_000 == 0 {
            eprintln!("ferry-bench: {} runs", i + 1);
        }
    }
    if !ops.is_empty() {
        hub.store.write(ops).await?;
    }
    for (i, run) in ended.iter().enumerate() {
        metrics::fold(&*hub.store, TENANT, run).await?;
        if (i + 1) % 20_000 == 0 {
            eprintln!("ferry-bench: {} run ends folded into the metrics", i + 1);
        }
    }
    Ok(())
}

/// Signs in through the form, as a browser does; returns the session cookie.
async fn sign_in(c: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    let form = c.get(format!("{base}/login")).send().await?;
    let nonce = set_cookie(&form, "ferry_console_login").context("no sign-in nonce cookie")?;
    let body = form.text().await?;
    let csrf = field(&body, "csrf").context("no CSRF field on the sign-in form")?;
    let r = c
        .post(format!("{base}/login"))
        .header("cookie", nonce)
        .form(&[("csrf", csrf.as_str()), ("email", EMAIL), ("password", PASSWORD)])
        .send()
        .await?;
    if r.status() != reqwest::StatusCode::SEE_OTHER {
        bail!("sign-in answered {}: {}", r.status(), r.text().await.unwrap_or_default());
    }
    set_cookie(&r, "ferry_console").context("no session cookie after signing in")
}

fn set_cookie(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
}

fn field(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let rest = &html[html.find(&marker)? + marker.len()..];
    Some(rest[..rest.find('"')?].to_owned())
}

async fn get(c: &reqwest::Client, base: &str, path: &str, cookie: &str) -> anyhow::Result<String> {
    let r = c.get(format!("{base}{path}")).header("cookie", cookie).send().await?;
    let status = r.status();
    let body = r.text().await?;
    if status != reqwest::StatusCode::OK {
        bail!("GET {path} answered {status}: {}", body.chars().take(500).collect::<String>());
    }
    Ok(body)
}

fn unescape(href: &str) -> String {
    href.replace("&amp;", "&").replace("&#x3d;", "=").replace("&#x2f;", "/").replace("&#61;", "=")
}

/// Every `href` of a page, in order.
fn links(html: &str) -> Vec<String> {
    html.split("href=\"").skip(1).filter_map(|rest| rest.split('"').next()).map(unescape).collect()
}

/// The workspace navigation's links: (label, path).
fn nav_links(html: &str) -> Vec<(String, String)> {
    let Some(start) = html.find("<nav aria-label=\"Workspace\">") else { return Vec::new() };
    let nav = &html[start..html[start..].find("</nav>").map_or(html.len(), |e| start + e)];
    nav.split("<a href=\"")
        .skip(1)
        .filter_map(|rest| {
            let href = unescape(rest.split('"').next()?);
            let label = rest.split('>').nth(1)?.split('<').next()?.trim().to_lowercase();
            Some((label, href))
        })
        .collect()
}

/// Follows `rel="next"` from `path` up to `depth` times; the deepest page reached and how many links led there.
async fn follow_next(
    c: &reqwest::Client,
    base: &str,
    path: &str,
    cookie: &str,
    depth: usize,
) -> anyhow::Result<Option<(usize, String)>> {
    let mut at = path.to_owned();
    let mut followed = 0;
    while followed < depth {
        let body = get(c, base, &at, cookie).await?;
        let Some(next) = body.split("<a href=\"").skip(1).find(|a| a.contains("rel=\"next\"")) else { break };
        let href = unescape(next.split('"').next().unwrap_or_default());
        let (page, _) = at.split_once('?').unwrap_or((&at, ""));
        at = if href.starts_with('?') { format!("{page}{href}") } else { href };
        followed += 1;
    }
    Ok((followed > 0).then_some((followed, at)))
}

async fn time_page(
    c: &reqwest::Client,
    base: &str,
    cookie: &str,
    page: String,
    path: String,
    n: usize,
) -> anyhow::Result<Timed> {
    let mut bytes = 0;
    for _ in 0..3 {
        bytes = get(c, base, &path, cookie).await?.len();
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        get(c, base, &path, cookie).await?;
        samples.push(t.elapsed());
    }
    Ok(Timed { page, path, samples, bytes })
}

fn markdown(results: &[Timed], args: &ConsoleArgs) -> String {
    let mut out = format!(
        "Console pages: one tenant with {} jobs and {} runs (over {HISTORY_DAYS} days), `ferry up` (`target/{}`, embedded store), {} requests per page after 3 untimed, one at a time over loopback, {}.\n\n",
        args.jobs,
        args.runs,
        args.profile,
        args.requests,
        crate::machine()
    );
    out.push_str("| page | p50 | p99 | max | HTML |\n|---|---|---|---|---|\n");
    for r in results {
        let p = |q: f64| crate::ms(crate::percentile(&r.samples, q));
        out.push_str(&format!(
            "| {} (`{}`) | {} | {} | {} | {:.0} KB |\n",
            r.page,
            short(&r.path),
            p(50.0),
            p(99.0),
            crate::ms(r.samples.iter().max().copied()),
            r.bytes as f64 / 1000.0
        ));
    }
    out
}

/// A path with its cursor cut short, for the table.
fn short(path: &str) -> String {
    match path.split_once("cursor=") {
        Some((head, _)) => format!("{head}cursor=…"),
        None => path.to_owned(),
    }
}
