//! `ferry-bench engine`: throughput and peak memory of one declarative run.
//!
//! A feed on loopback (`ferry-bench feed`, a child process of its own, as a
//! user's API would be) serves `pages` pages of `page-size` records linked by
//! a `next` URL in the body; `ferry up` (another child process, so its memory
//! and CPU are measured alone) runs a job that reads them all, adds two mapped
//! fields to each record and writes JSON Lines to its file store.
//! Records/s come from the run's own start and end times; peak RSS is the
//! host's `VmHWM` after the run, next to its idle figure before it.
//! With `--instructions`, `ferry up` runs under callgrind and the bench counts
//! instructions per record instead (see [`instructions`]).

mod instructions;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

#[derive(clap::Args)]
pub struct EngineArgs {
    /// Pages in the feed.
    #[arg(long, default_value_t = 100)]
    pages: usize,
    /// Records per page.
    #[arg(long, default_value_t = 1000)]
    page_size: usize,
    /// Timed runs (each reads the whole feed: `full` ignores cursors).
    #[arg(long, short = 'n', default_value_t = 5)]
    runs: usize,
    /// Cargo profile directory `ferry` comes from: `host`, the profile of `ferry` (the root
    /// Cargo.toml; `release` is the Lambda functions' size-optimised profile).
    #[arg(long, default_value = "host")]
    profile: String,
    /// How the two added fields are mapped: `template` (minijinja templates
    /// over the record) or `path` (a source path and a static value).
    #[arg(long, value_enum, default_value_t = MappingKind::Template)]
    mapping: MappingKind,
    /// Counts instructions instead of timing: runs `ferry up` under Valgrind's
    /// callgrind and reports instructions per record, the slope between runs of
    /// half the feed and of all of it, so start-up and per-run costs cancel.
    /// Each of the `--runs` is such a pair. Needs valgrind; runs ~50× slower.
    #[arg(long)]
    instructions: bool,
    /// With `--instructions`: keep callgrind's dumps (one per counted run) in
    /// this directory, for `callgrind_annotate`.
    #[arg(long, requires = "instructions")]
    callgrind_dir: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum MappingKind {
    Template,
    Path,
}

#[derive(clap::Args)]
pub struct FeedArgs {
    #[arg(long)]
    pages: usize,
    #[arg(long)]
    page_size: usize,
}

pub(crate) const KEY: &str = "ferry_platform_abababababababababababababababababababababababababababababababab";

const MANIFEST: &str = r#"
version: 1.0
name: bench-feed
connectors:
  # Loopback: no provider limit to respect.
  feed: {provider: feed, auth: none, rate_limit: {per_second: 100000}}
flows:
  - name: items
    source:
      type: http
      connector: feed
      request: {path: /items}
      records: items
      pagination: {type: next_url, path: next}
    mapping:
      keep_unmapped: true
      fields:
MAPPING
    target: {type: file, format: jsonl, path: 'bench/{{ run.id }}.jsonl'}
"#;

/// Every page's records rendered once, so the feed costs the host as little
/// CPU as possible; only the `next` link is written per request. The feed is
/// served whole at `/items` and cut to its first `n` pages at `/first/{n}/items`.
struct Feed {
    base: String,
    /// `{"items":[…]` of each page.
    items: Vec<Bytes>,
}

#[derive(serde::Deserialize)]
struct PageQuery {
    page: Option<usize>,
}

impl Feed {
    /// Page `page` of the feed's first `pages` pages, linked to the next under `prefix`.
    fn page(&self, prefix: &str, pages: usize, page: usize) -> Bytes {
        let Some(items) = self.items.get(page).filter(|_| page < pages) else {
            return Bytes::from_static(b"{\"items\":[]}");
        };
        let next = if page + 1 < pages {
            json!(format!("{}{prefix}/items?page={}", self.base, page + 1))
        } else {
            Value::Null
        };
        let next = next.to_string();
        let mut body = Vec::with_capacity(items.len() + next.len() + 9);
        body.extend_from_slice(items);
        body.extend_from_slice(b",\"next\":");
        body.extend_from_slice(next.as_bytes());
        body.push(b'}');
        body.into()
    }
}

async fn page(State(feed): State<Arc<Feed>>, Query(q): Query<PageQuery>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], feed.page("", feed.items.len(), q.page.unwrap_or(0)))
}

async fn first_pages(
    State(feed): State<Arc<Feed>>,
    UrlPath(pages): UrlPath<usize>,
    Query(q): Query<PageQuery>,
) -> impl IntoResponse {
    let body = feed.page(&format!("/first/{pages}"), pages, q.page.unwrap_or(0));
    ([(header::CONTENT_TYPE, "application/json")], body)
}

fn render_feed(base: &str, pages: usize, size: usize) -> Feed {
    let items = (0..pages)
        .map(|p| {
            let items: Vec<Value> = (0..size)
                .map(|i| {
                    let id = p * size + i + 1;
                    json!({
                        "id": id,
                        "first_name": format!("Ada{id}"),
                        "last_name": "Lovelace",
                        "email": format!("user{id}@example.com"),
                        "amount": (id % 10_000) as f64 / 100.0,
                        "updated_at": "2026-11-23T12:00:00Z",
                    })
                })
                .collect();
            Bytes::from(format!("{{\"items\":{}", Value::Array(items)))
        })
        .collect();
    Feed { base: base.to_owned(), items }
}

fn manifest(kind: MappingKind) -> String {
    let fields = match kind {
        MappingKind::Template => {
            "        full_name: '{{ record.first_name }} {{ record.last_name }}'\n        amount_cents: {template: '{{ (record.amount * 100) | round | int }}', type: integer}"
        }
        MappingKind::Path => "        contact: {from: email}\n        source: {value: bench}",
    };
    MANIFEST.replace("MAPPING", fields)
}

pub async fn run(args: EngineArgs) -> anyhow::Result<String> {
    if args.runs == 0 || args.pages == 0 || args.page_size == 0 {
        bail!("--runs, --pages and --page-size must be at least 1");
    }
    let binary = ferry_e2e::function_binary(&args.profile, "ferry")
        .with_context(|| format!("build it first: cargo build --profile {} -p ferry", args.profile))?;
    let feed = FeedProcess::start(&args).await?;
    if args.instructions {
        return instructions::run(&args, &binary, &feed).await;
    }
    let dir = tempfile::tempdir()?;
    let host = Host::start(&binary, dir.path()).await?;
    let result = measure(&host, &feed.base, &args).await;
    let idle_kib = host.idle_kib;
    drop(host);
    let samples = result?;

    let records = (args.pages * args.page_size) as f64;
    let mut rates: Vec<f64> = samples.iter().map(|s| records / s.elapsed.as_secs_f64()).collect();
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    let best = rates[rates.len() - 1];
    let peak = samples.iter().map(|s| s.peak_kib).max().unwrap_or(0);
    let mut out = format!(
        "Engine: {} records ({} pages × {}, {:.1} MiB of JSON) read over loopback from another process, 2 fields mapped ({:?}), written as JSON Lines; \
         `ferry up` from `target/{}`, {} runs, {}.\n\n",
        args.pages * args.page_size,
        args.pages,
        args.page_size,
        feed.bytes as f64 / (1024.0 * 1024.0),
        args.mapping,
        args.profile,
        args.runs,
        crate::machine(),
    );
    out.push_str("| metric | value |\n|---|---|\n");
    out.push_str(&format!("| records/s (median) | {median:.0} |\n"));
    out.push_str(&format!("| records/s (best) | {best:.0} |\n"));
    out.push_str(&format!("| run time (median) | {:.0} ms |\n", records / median * 1000.0));
    let mut cpu: Vec<f64> = samples.iter().map(|s| s.cpu.as_secs_f64() * 1e6 / records).collect();
    cpu.sort_by(f64::total_cmp);
    out.push_str(&format!("| CPU time per record (median, all threads) | {:.2} µs |\n", cpu[cpu.len() / 2]));
    out.push_str(&format!("| peak RSS of `ferry up` (idle before runs) | {:.1} MiB |\n", idle_kib as f64 / 1024.0));
    out.push_str(&format!("| peak RSS of `ferry up` (after the runs) | {:.1} MiB |\n", peak as f64 / 1024.0));
    Ok(out)
}

/// Serves the feed until killed; the first line on stdout says where.
pub async fn serve_feed(args: FeedArgs) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let feed = Arc::new(render_feed(&base, args.pages, args.page_size));
    let bytes: usize = (0..args.pages).map(|p| feed.page("", args.pages, p).len()).sum();
    println!("listening {base} {bytes}");
    let app = Router::new().route("/items", get(page)).route("/first/{pages}/items", get(first_pages)).with_state(feed);
    axum::serve(listener, app).await?;
    Ok(())
}

/// `ferry-bench feed`, started from this binary.
struct FeedProcess {
    child: Child,
    base: String,
    /// Bytes of JSON in all its pages.
    bytes: usize,
}

impl FeedProcess {
    async fn start(args: &EngineArgs) -> anyhow::Result<Self> {
        use std::io::BufRead as _;
        let mut child = Command::new(std::env::current_exe()?)
            .args(["feed", "--pages", &args.pages.to_string(), "--page-size", &args.page_size.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start the feed process")?;
        let stdout = child.stdout.take().context("the feed's stdout")?;
        let line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            std::io::BufReader::new(stdout).read_line(&mut line).map(|_| line)
        })
        .await??;
        let mut words = line.split_whitespace().skip(1);
        let (Some(base), Some(bytes)) = (words.next(), words.next().and_then(|b| b.parse().ok())) else {
            let _ = child.kill();
            bail!("the feed process did not say where it listens: {line:?}");
        };
        Ok(Self { base: base.to_owned(), bytes, child })
    }
}

impl Drop for FeedProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Sample {
    elapsed: Duration,
    peak_kib: u64,
    /// CPU time `ferry up` spent during the run (user + system, all threads).
    cpu: Duration,
}

async fn measure(host: &Host, feed: &str, args: &EngineArgs) -> anyhow::Result<Vec<Sample>> {
    let c = reqwest::Client::new();
    publish(host, &c, args.mapping).await?;
    let job = create_job(host, &c, "bench", feed).await?;
    let records = args.pages * args.page_size;
    let mut samples = Vec::new();
    // One untimed run first: page cache, connection pool, SQLite warm.
    for i in 0..=args.runs {
        let cpu_before = host.cpu_time()?;
        let done = run_job(host, &c, &job, records, Duration::from_millis(5)).await?;
        if i > 0 {
            let cpu = host.cpu_time()?.saturating_sub(cpu_before);
            samples.push(Sample { elapsed: done.elapsed, peak_kib: host.peak_kib()?, cpu });
        }
        eprintln!("ferry-bench: run {i}: {records} records in {:.0} ms", done.elapsed.as_secs_f64() * 1000.0);
    }
    Ok(samples)
}

/// The bench's integration (`mapping` decides its two mapped fields) and its tenant.
async fn publish(host: &Host, c: &reqwest::Client, mapping: MappingKind) -> anyhow::Result<()> {
    host.call(c, "POST", "/v1/integrations/bench-feed/releases", json!({"manifest": manifest(mapping)})).await?;
    host.call(c, "POST", "/v1/tenants", json!({"id": "bench", "name": "Bench"})).await?;
    Ok(())
}

/// A job named `name` reading the feed at `base_url`; returns its id.
async fn create_job(host: &Host, c: &reqwest::Client, name: &str, base_url: &str) -> anyhow::Result<String> {
    let conn = host
        .call(
            c,
            "POST",
            "/v1/tenants/bench/connections",
            json!({"name": name, "connector": "feed", "auth_kind": "none", "settings": {"base_url": base_url}}),
        )
        .await?;
    let job = host
        .call(
            c,
            "POST",
            "/v1/tenants/bench/jobs",
            json!({"name": name, "integration": "bench-feed", "connections": {"feed": conn["id"]}}),
        )
        .await?;
    Ok(job["id"].as_str().context("job id")?.to_owned())
}

struct Finished {
    run: String,
    /// From the run's own `started_at` to its `ended_at`.
    elapsed: Duration,
    /// Status requests it took to see the run end.
    polls: u64,
}

/// Runs `job` once over the whole feed (`full` ignores cursors) and waits
/// for it, asking for its status every `poll`; it must succeed and write
/// `records` records.
async fn run_job(
    host: &Host,
    c: &reqwest::Client,
    job: &str,
    records: usize,
    poll: Duration,
) -> anyhow::Result<Finished> {
    let b = &host.base;
    let v = host.call(c, "POST", &format!("/v1/tenants/bench/jobs/{job}/runs"), json!({"full": true})).await?;
    let run = v["run"]["id"].as_str().context("run id")?.to_owned();
    let mut polls = 0;
    let done = loop {
        let r = c
            .get(format!("{b}/v1/tenants/bench/jobs/{job}/runs/{run}"))
            .bearer_auth(KEY)
            .send()
            .await?
            .json::<Value>()
            .await?;
        polls += 1;
        if !matches!(r["status"].as_str(), Some("queued" | "running" | "interrupted")) {
            break r;
        }
        tokio::time::sleep(poll).await;
    };
    if done["status"] != "succeeded" {
        bail!("run {run} ended {}: {}", done["status"], done["error"]);
    }
    let written = done["counters"]["items"]["written"].as_u64().unwrap_or(0);
    if written != records as u64 {
        bail!("run {run} wrote {written} records, not {records}");
    }
    let started = chrono::DateTime::parse_from_rfc3339(done["started_at"].as_str().unwrap_or_default())?;
    let ended = chrono::DateTime::parse_from_rfc3339(done["ended_at"].as_str().unwrap_or_default())?;
    Ok(Finished { run, elapsed: (ended - started).to_std()?, polls })
}

/// `ferry up` on a loopback port with its own data directory.
pub(crate) struct Host {
    child: Child,
    pub(crate) base: String,
    idle_kib: u64,
}

impl Host {
    pub(crate) async fn start(binary: &Path, data: &Path) -> anyhow::Result<Self> {
        Self::spawn(Command::new(binary), data, Duration::from_secs(30)).await
    }

    /// `ferry up` started by `command` (the binary, or a tool that runs it),
    /// given `ready_within` to answer `/healthz`.
    async fn spawn(mut command: Command, data: &Path, ready_within: Duration) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let program = command.get_program().to_owned();
        let child = command
            .args(["up", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(data)
            // The benchmark's feed and sink listen on loopback over http.
            .arg("--allow-private-network")
            .env("FERRY_BOOTSTRAP_API_KEY", KEY)
            .env("FERRY_LOG", "warn")
            .env_remove("FERRY_RUN_SLICE_SECS")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {}", program.to_string_lossy()))?;
        let mut host = Self { child, base: format!("http://127.0.0.1:{port}"), idle_kib: 0 };
        let c = reqwest::Client::new();
        let started = Instant::now();
        while !c.get(format!("{}/healthz", host.base)).send().await.is_ok_and(|r| r.status().is_success()) {
            if let Some(status) = host.child.try_wait()? {
                bail!("ferry up exited before answering /healthz: {status}");
            }
            if started.elapsed() > ready_within {
                bail!("ferry up did not answer /healthz within {} s", ready_within.as_secs());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The first start on a fresh data directory hashes the console admin's
        // password (~16 MiB more peak than any later start): counted from here,
        // the peak is the hub's and its runs', as on every start but the first.
        // "5" resets VmHWM to the current RSS (Linux ≥ 4.0).
        std::fs::write(format!("/proc/{}/clear_refs", host.child.id()), "5")
            .context("cannot reset the peak RSS (/proc/<pid>/clear_refs)")?;
        host.idle_kib = host.peak_kib()?;
        Ok(host)
    }

    /// User + system CPU time of the host so far (`/proc/<pid>/stat`, in clock ticks of 10 ms).
    fn cpu_time(&self) -> anyhow::Result<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).context("cannot read /proc")?;
        // Fields after the parenthesised command name; utime and stime are the 12th and 13th of those.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).context("malformed /proc/<pid>/stat")?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).context("malformed /proc/<pid>/stat");
        Ok(Duration::from_millis((ticks(11)? + ticks(12)?) * 10))
    }

    fn peak_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(PathBuf::from(format!("/proc/{}/status", self.child.id())))
            .context("cannot read /proc (Linux only)")?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmHWM in /proc/<pid>/status")
    }

    pub(crate) async fn call(
        &self,
        c: &reqwest::Client,
        method: &str,
        path: &str,
        body: Value,
    ) -> anyhow::Result<Value> {
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        let r = c.request(method, format!("{}{path}", self.base)).bearer_auth(KEY).json(&body).send().await?;
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("{path} answered {status}: {v}");
        }
        Ok(v)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
