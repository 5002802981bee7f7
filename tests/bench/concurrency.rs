//! `ferry-bench concurrency`: a latency-bound run, where sending batches one
//! at a time is what makes a sync slow.
//!
//! A fake API in a process of its own (`ferry-bench api`) serves `pages`
//! offset pages of `page-size` records, each after `source-ms`, and accepts
//! batches, each after `target-ms`, counting the records and the most
//! batches it held at once. `ferry up` (another child) runs a job reading
//! every page into that API: both connectors share one provider, so one
//! request budget of `rate` per second; both connections allow
//! `max-concurrent` requests in flight. The same run with `max_concurrent` 1
//! is timed beside it.
//!
//! The floor is the least wall time those limits allow: the first page must
//! arrive before anything is written (one source latency), then the longest
//! of: every batch at `max_concurrent` at once (batches × target latency ÷
//! `max_concurrent`), every page the same way, and every request (pages,
//! the empty page that ends offset pagination, batches) at the budget's rate.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::engine::{Host, KEY};

#[derive(clap::Args, Clone)]
pub struct ConcurrencyArgs {
    /// Source pages (offset pagination).
    #[arg(long, default_value_t = 500)]
    pages: usize,
    /// Records per page, and per target batch.
    #[arg(long, default_value_t = 100)]
    page_size: usize,
    /// Latency of each source page.
    #[arg(long, default_value_t = 50)]
    source_ms: u64,
    /// Latency of each target batch.
    #[arg(long, default_value_t = 200)]
    target_ms: u64,
    /// The request budget (requests per second, per tenant × provider).
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Both connections' `max_concurrent`.
    #[arg(long, default_value_t = 8)]
    max_concurrent: u32,
    /// Cargo profile directory `ferry` comes from (`host`, or `debug`).
    #[arg(long, default_value = "host")]
    profile: String,
    /// Leave out the sequential run (`max_concurrent` 1), which takes batches × target latency.
    #[arg(long)]
    no_sequential: bool,
}

#[derive(clap::Args)]
pub struct ApiArgs {
    #[arg(long)]
    pages: usize,
    #[arg(long)]
    page_size: usize,
    #[arg(long)]
    source_ms: u64,
    #[arg(long)]
    target_ms: u64,
}

const MANIFEST: &str = r#"
version: 1.0
name: bench-concurrency
connectors:
  source: {provider: bench-api, auth: none, rate_limit: {per_second: RATE, burst: 1}}
  target: {provider: bench-api, auth: none, rate_limit: {per_second: RATE, burst: 1}}
flows:
  - name: items
    source:
      type: http
      connector: source
      request: {path: /items}
      records: items
      pagination: {type: offset, limit: PAGE_SIZE}
    target:
      type: http
      connector: target
      method: POST
      path: /batches
      batch_size: PAGE_SIZE
      idempotency_key: 'item-{{ record.id }}'
"#;

#[derive(Default)]
struct Api {
    pages: usize,
    page_size: usize,
    source: Duration,
    target: Duration,
    records: AtomicUsize,
    now: AtomicUsize,
    most: AtomicUsize,
}

#[derive(serde::Deserialize)]
struct Window {
    offset: Option<usize>,
}

async fn items(State(api): State<Arc<Api>>, Query(q): Query<Window>) -> Json<Value> {
    tokio::time::sleep(api.source).await;
    let start = q.offset.unwrap_or(0);
    let end = (start + api.page_size).min(api.pages * api.page_size);
    let items: Vec<Value> = (start..end).map(|id| json!({"id": id, "name": format!("item {id}")})).collect();
    Json(json!({ "items": items }))
}

async fn batches(State(api): State<Arc<Api>>, Json(body): Json<Value>) -> Json<Value> {
    let now = api.now.fetch_add(1, Ordering::SeqCst) + 1;
    api.most.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(api.target).await;
    api.now.fetch_sub(1, Ordering::SeqCst);
    api.records.fetch_add(body.as_array().map_or(1, Vec::len), Ordering::SeqCst);
    Json(json!({"ok": true}))
}

/// What the API saw since its last reset: records accepted, most batches held at once.
async fn stats(State(api): State<Arc<Api>>) -> Json<Value> {
    let out = json!({"records": api.records.swap(0, Ordering::SeqCst), "most": api.most.swap(0, Ordering::SeqCst)});
    Json(out)
}

/// Serves the fake API until killed; the first line on stdout says where.
pub async fn serve_api(args: ApiArgs) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening http://{}", listener.local_addr()?);
    let api = Arc::new(Api {
        pages: args.pages,
        page_size: args.page_size,
        source: Duration::from_millis(args.source_ms),
        target: Duration::from_millis(args.target_ms),
        ..Api::default()
    });
    let app = Router::new()
        .route("/items", get(items))
        .route("/batches", post(batches))
        .route("/stats", get(stats))
        .with_state(api);
    axum::serve(listener, app).await?;
    Ok(())
}

/// `ferry-bench api`, started from this binary.
struct ApiProcess {
    child: std::process::Child,
    base: String,
}

impl ApiProcess {
    async fn start(args: &ConcurrencyArgs) -> anyhow::Result<Self> {
        use std::io::BufRead as _;
        let mut child = std::process::Command::new(std::env::current_exe()?)
            .args(["api", "--pages", &args.pages.to_string(), "--page-size", &args.page_size.to_string()])
            .args(["--source-ms", &args.source_ms.to_string(), "--target-ms", &args.target_ms.to_string()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .context("cannot start the API process")?;
        let stdout = child.stdout.take().context("the API's stdout")?;
        let line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            std::io::BufReader::new(stdout).read_line(&mut line).map(|_| line)
        })
        .await??;
        let Some(base) = line.split_whitespace().nth(1) else {
            let _ = child.kill();
            bail!("the API process did not say where it listens: {line:?}");
        };
        Ok(Self { base: base.to_owned(), child })
    }
}

impl Drop for ApiProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One timed run: its wall time and the most batches the API held at once.
struct Timed {
    wall: Duration,
    most: u64,
}

pub async fn run(args: ConcurrencyArgs) -> anyhow::Result<String> {
    if args.pages == 0 || args.page_size == 0 || args.max_concurrent == 0 || args.rate <= 0.0 {
        bail!("--pages, --page-size, --max-concurrent and --rate must be positive");
    }
    let binary = ferry_e2e::function_binary(&args.profile, "ferry")
        .with_context(|| format!("build it first: cargo build --profile {} -p ferry", args.profile))?;
    let api = ApiProcess::start(&args).await?;
    let dir = tempfile::tempdir()?;
    let host = Host::start(&binary, dir.path()).await?;
    let c = reqwest::Client::new();
    let manifest = MANIFEST.replace("RATE", &args.rate.to_string()).replace("PAGE_SIZE", &args.page_size.to_string());
    host.call(&c, "POST", "/v1/integrations/bench-concurrency/releases", json!({ "manifest": manifest })).await?;
    host.call(&c, "POST", "/v1/tenants", json!({"id": "bench", "name": "Bench"})).await?;
    let mut connections = Vec::new();
    for name in ["source", "target"] {
        let body =
            json!({"name": name, "connector": "bench-api", "auth_kind": "none", "settings": {"base_url": api.base}});
        let conn = host.call(&c, "POST", "/v1/tenants/bench/connections", body).await?;
        connections.push(conn["id"].as_str().context("connection id")?.to_owned());
    }
    let job = host
        .call(
            &c,
            "POST",
            "/v1/tenants/bench/jobs",
            json!({"name": "bench", "integration": "bench-concurrency",
                   "connections": {"source": connections[0], "target": connections[1]}}),
        )
        .await?;
    let job = job["id"].as_str().context("job id")?.to_owned();
    let concurrent = timed(&host, &c, &api, &job, &connections, args.max_concurrent, &args).await?;
    let sequential =
        if args.no_sequential { None } else { Some(timed(&host, &c, &api, &job, &connections, 1, &args).await?) };
    drop(host);

    let batches = args.pages as f64;
    let requests = batches + args.pages as f64 + 1.0;
    let lanes = f64::from(args.max_concurrent);
    let (source, target) = (args.source_ms as f64 / 1000.0, args.target_ms as f64 / 1000.0);
    let by_budget = requests / args.rate;
    let by_target = batches * target / lanes;
    let by_source = (args.pages as f64 + 1.0) * source / lanes;
    let floor = source + by_budget.max(by_target).max(by_source);
    let wall = concurrent.wall.as_secs_f64();
    let mut out = format!(
        "Concurrency: {} offset pages of {} records at {} ms each into batches of {} at {} ms each; one budget of {}/s for both (one provider); \
         max_concurrent {}; `ferry up` from `target/{}`, {}.\n\n",
        args.pages,
        args.page_size,
        args.source_ms,
        args.page_size,
        args.target_ms,
        args.rate,
        args.max_concurrent,
        args.profile,
        crate::machine(),
    );
    out.push_str("| metric | value |\n|---|---|\n");
    out.push_str(&format!("| wall time, max_concurrent {} | {wall:.2} s |\n", args.max_concurrent));
    out.push_str(&format!(
        "| floor: first page {source:.2} s + max(budget {by_budget:.2} s, target {by_target:.2} s, source {by_source:.2} s) | {floor:.2} s |\n"
    ));
    out.push_str(&format!("| wall time ÷ floor | {:.3} ({:+.1} %) |\n", wall / floor, (wall / floor - 1.0) * 100.0));
    out.push_str(&format!("| most batches in flight at the target | {} |\n", concurrent.most));
    if let Some(s) = sequential {
        out.push_str(&format!("| wall time, max_concurrent 1 (sequential) | {:.2} s |\n", s.wall.as_secs_f64()));
        out.push_str(&format!("| speed-up | {:.1}× |\n", s.wall.as_secs_f64() / wall));
    }
    Ok(out)
}

async fn timed(
    host: &Host,
    c: &reqwest::Client,
    api: &ApiProcess,
    job: &str,
    connections: &[String],
    max_concurrent: u32,
    args: &ConcurrencyArgs,
) -> anyhow::Result<Timed> {
    for id in connections {
        let path = format!("/v1/tenants/bench/connections/{id}");
        host.call(c, "PATCH", &path, json!({ "max_concurrent": max_concurrent })).await?;
    }
    c.get(format!("{}/stats", api.base)).send().await?;
    let v = host.call(c, "POST", &format!("/v1/tenants/bench/jobs/{job}/runs"), json!({"full": true})).await?;
    let run = v["run"]["id"].as_str().context("run id")?.to_owned();
    let done = loop {
        let r = c
            .get(format!("{}/v1/tenants/bench/jobs/{job}/runs/{run}", host.base))
            .bearer_auth(KEY)
            .send()
            .await?
            .json::<Value>()
            .await?;
        if !matches!(r["status"].as_str(), Some("queued" | "running" | "interrupted")) {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    if done["status"] != "succeeded" {
        bail!("run {run} ended {}: {}", done["status"], done["error"]);
    }
    let expected = (args.pages * args.page_size) as u64;
    let written = done["counters"]["items"]["written"].as_u64().unwrap_or(0);
    let stats: Value = c.get(format!("{}/stats", api.base)).send().await?.json().await?;
    if written != expected || stats["records"].as_u64() != Some(expected) {
        bail!("run {run} wrote {written} records, the API accepted {}; expected {expected}", stats["records"]);
    }
    let started = chrono::DateTime::parse_from_rfc3339(done["started_at"].as_str().unwrap_or_default())?;
    let ended = chrono::DateTime::parse_from_rfc3339(done["ended_at"].as_str().unwrap_or_default())?;
    let wall = (ended - started).to_std()?;
    eprintln!("ferry-bench: max_concurrent {max_concurrent}: {written} records in {:.2} s", wall.as_secs_f64());
    Ok(Timed { wall, most: stats["most"].as_u64().unwrap_or(0) })
}
