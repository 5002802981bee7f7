//! `ferry-bench scheduler`: see bench/scheduler.rs.
//! `ferry-bench cold-start`: cold starts of the Lambda function binaries
//! against the Runtime API emulator of `ferry-e2e`, as a Markdown table.
//! `ferry-bench engine`: records/s and peak RSS of one declarative run (engine.rs).
//!
//! Not a test: timings depend on the machine. Build the release binaries first
//! (`cargo build --release -p api-platform -p api-connections -p api-integrations -p sync`: `release` is the
//! Lambda functions' profile; `engine`, `hooks` and `scheduler` measure `ferry`'s, `--profile host`); the bench
//! needs DynamoDB behind `AWS_ENDPOINT_URL` (moto) and starts moto itself from
//! the tests' venv (`.venv`, made by ./tests/run) when that is unset.
//! The tables and the commands are in README.md (Benchmarks).
//! `ferry-bench hooks`: the webhook intake under load (see [`hooks`]).
//! `ferry-bench concurrency`: a latency-bound run against the floor its
//! budget, latencies and `max_concurrent` allow (see [`concurrency`]).
//! `ferry-bench console`: the console's pages for a tenant with 10,000 jobs
//! and 100,000 runs, p50/p99 per page (see [`console`]).

mod callgrind;
mod concurrency;
mod console;
mod engine;
mod hooks;
mod scheduler;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use ferry_e2e::sqs::{batch_item_failures, sqs_event, QueuedMessage};
use ferry_e2e::{
    function_binary, function_crates, workspace_root, Deployment, HttpApiRequest, HttpApiResponse, RuntimeApi, Sandbox,
};

#[derive(Parser)]
#[command(name = "ferry-bench", about = "Benchmarks of Ferry's Lambda functions and its embedded scheduler")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Spawns each function's binary N times as a fresh sandbox and measures
    /// init time, first-invocation latency, peak RSS and binary size.
    ColdStart {
        /// Cold starts per function.
        #[arg(long, short = 'n', default_value_t = 20)]
        runs: usize,
        /// Untimed starts first, so every timed start finds the binary in the page cache.
        #[arg(long, default_value_t = 1)]
        warmup: usize,
        /// Cargo profile directory the binaries come from.
        #[arg(long, default_value = "release")]
        profile: String,
        /// Functions to measure (default: every crate under functions/ except ferry).
        #[arg(long, value_delimiter = ',')]
        functions: Vec<String>,
    },
    /// Sends signed webhook deliveries concurrently to the embedded hub over
    /// TCP, checks each was stored exactly once, reports throughput and latency.
    Hooks {
        /// Distinct deliveries (each must be stored once).
        #[arg(long, short = 'n', default_value_t = 10_000)]
        deliveries: usize,
        /// Redeliveries of already-sent ids mixed in (must be acknowledged, not stored).
        #[arg(long, default_value_t = 0)]
        redeliveries: usize,
        /// Concurrent connections.
        #[arg(long, short = 'c', default_value_t = 64)]
        concurrency: usize,
        /// Runtime worker threads (server and client share them).
        #[arg(long, default_value_t = 2)]
        threads: usize,
    },
    /// Reads a paginated feed over loopback, maps two fields, writes JSON
    /// Lines: records/s and peak RSS of `ferry up`.
    Engine(engine::EngineArgs),
    /// The engine benchmark's feed, as a process of its own (started by
    /// `engine`): prints `listening <url>`, then serves until killed.
    #[command(hide = true)]
    Feed(engine::FeedArgs),
    /// A latency-bound run (slow source pages, slow target batches) with
    /// `max_concurrent` and sequentially, against the floor its limits allow.
    Concurrency(concurrency::ConcurrencyArgs),
    /// The concurrency benchmark's API, as a process of its own (started by
    /// `concurrency`): prints `listening <url>`, then serves until killed.
    #[command(hide = true)]
    Api(concurrency::ApiArgs),
    /// Seeds a tenant with 10,000 jobs and 100,000 runs, then times every
    /// console list page of `ferry up` (p50/p99 per page).
    Console(console::ConsoleArgs),
    /// Times the embedded scheduler finding due jobs among many, minute by minute.
    Scheduler {
        /// Scheduled jobs.
        #[arg(long, default_value_t = 100_000)]
        jobs: usize,
        /// Minutes to simulate (each one a search for due jobs).
        #[arg(long, default_value_t = 180)]
        minutes: usize,
    },
}

struct Sample {
    init: Duration,
    first_invoke: Duration,
    peak_rss_kib: u64,
}

struct Report {
    name: String,
    binary_bytes: u64,
    samples: Vec<Sample>,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::ColdStart { runs, warmup, profile, functions } => cold_starts(runs, warmup, profile, functions),
        Cmd::Engine(args) => {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
            print!("{}", rt.block_on(engine::run(args))?);
            Ok(())
        }
        Cmd::Feed(args) => {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
            rt.block_on(engine::serve_feed(args))
        }
        Cmd::Concurrency(args) => {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
            print!("{}", rt.block_on(concurrency::run(args))?);
            Ok(())
        }
        Cmd::Console(args) => {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
            print!("{}", rt.block_on(console::run(args))?);
            Ok(())
        }
        Cmd::Api(args) => {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
            rt.block_on(concurrency::serve_api(args))
        }
        Cmd::Scheduler { jobs, minutes } => {
            if minutes == 0 {
                bail!("--minutes must be at least 1");
            }
            scheduler::run(jobs, minutes)
        }
        Cmd::Hooks { deliveries, redeliveries, concurrency, threads } => {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(threads.max(1)).enable_all().build()?;
            // The profiles of the root Cargo.toml: only `release` (the Lambda functions') aborts on panic.
            let profile = if cfg!(debug_assertions) {
                "debug"
            } else if cfg!(panic = "abort") {
                "release"
            } else {
                "host"
            };
            let args = hooks::Args { deliveries, redeliveries, concurrency };
            print!("{}", rt.block_on(hooks::run(args, profile))?);
            Ok(())
        }
    }
}

/// The CPU and how many of them, for the tables' captions.
fn machine() -> String {
    format!("{} ({} CPUs)", cpu_model(), std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
}

fn cold_starts(runs: usize, warmup: usize, profile: String, functions: Vec<String>) -> anyhow::Result<()> {
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    let functions = if functions.is_empty() { function_crates()? } else { functions };
    let binaries = functions
        .iter()
        .map(|name| Ok((name.clone(), function_binary(&profile, name)?)))
        .collect::<anyhow::Result<Vec<(String, PathBuf)>>>()?;

    // Set before the runtime starts: the environment is process-global, and
    // the SDK (here and in the children) reads it.
    let _moto = Moto::ensure()?;

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let reports = rt.block_on(async {
        let deployment = Deployment::create("bench").await.context("cannot prepare the table (is moto running?)")?;
        let mut reports = Vec::new();
        for (name, binary) in &binaries {
            eprintln!("ferry-bench: {name}: {warmup} warm-up + {runs} cold starts of {}", binary.display());
            for _ in 0..warmup {
                cold_start(name, binary, &deployment).await?;
            }
            let mut samples = Vec::with_capacity(runs);
            for _ in 0..runs {
                samples.push(cold_start(name, binary, &deployment).await?);
            }
            let binary_bytes = std::fs::metadata(binary)?.len();
            reports.push(Report { name: name.clone(), binary_bytes, samples });
        }
        anyhow::Ok(reports)
    })?;
    print!("{}", markdown(&reports, runs, &profile));
    println!(
        "\nFirst invocation, each one DynamoDB read: `GET /healthz` (API functions), an SQS batch of one unknown run (sync), an unknown magic link (connect), an unknown hook (webhooks), a Scheduler invocation with nothing due (notifications); the console's sign-in page (console: a Secrets Manager read, the signing key)."
    );
    Ok(())
}

/// One sandbox: spawn, wait for the first `GET /next`, invoke `GET /healthz`
/// (a DynamoDB GetItem), read the peak RSS, kill.
async fn cold_start(name: &str, binary: &std::path::Path, deployment: &Deployment) -> anyhow::Result<Sample> {
    let api = RuntimeApi::start(name).await?;
    let mut sandbox = Sandbox::spawn(binary, name, &api, &deployment.function_env())?;
    let polled = api.first_poll(Duration::from_secs(30)).await;
    let polled = polled.with_context(|| format!("{name} never polled for an event:\n{}", sandbox.output()))?;
    let init = polled.duration_since(sandbox.spawned_at());

    let started = Instant::now();
    let outcome = sandbox.invoke(&api, &first_event(name), Duration::from_secs(30)).await?;
    let first_invoke = started.elapsed();
    check_first_answer(name, &outcome)?;
    let peak_rss_kib = sandbox.peak_rss_kib().context("cannot read VmHWM from /proc (Linux only)")?;
    sandbox.kill().await;
    Ok(Sample { init, first_invoke, peak_rss_kib })
}

/// Run executors (`sync`) take no HTTP events: their first event is an SQS
/// batch of one run reference that does not exist, which costs a DynamoDB
/// GetItem like `GET /healthz` does for the API functions.
fn executes_runs(name: &str) -> bool {
    name == "sync"
}

/// Each function's cheapest real first event, each one DynamoDB read: an
/// unknown magic link (connect), an unknown hook (webhooks), a Scheduler
/// invocation finding no due notification (notifications); for the console,
/// its sign-in page (one Secrets Manager read: the key its CSRF token is signed with).
fn first_event(name: &str) -> serde_json::Value {
    match name {
        _ if executes_runs(name) => {
            let body = serde_json::json!({"tenant": "bench", "job": "bench", "run": "01HZZZZZZZZZZZZZZZZZZZZZZZ"});
            let message = QueuedMessage::new("bench-1", &body.to_string());
            sqs_event("arn:aws:sqs:us-east-1:123456789012:ferry-bench-runs", &[message])
        }
        "connect" => {
            HttpApiRequest::new("GET", "/connect/bench-unknown-token").route("GET /connect/{token}").to_event()
        }
        "webhooks" => HttpApiRequest::new("POST", "/hooks/bench-unknown-hook").route("POST /hooks/{hook}").to_event(),
        // The sign-in page: the platform signing key (a Secrets Manager read) signs its form's CSRF token.
        "console" => HttpApiRequest::new("GET", "/login").route("ANY /login").to_event(),
        "notifications" => {
            serde_json::json!({"source": "aws.scheduler", "detail-type": "Scheduled Event", "detail": {}})
        }
        _ => HttpApiRequest::new("GET", "/healthz").route("GET /healthz").to_event(),
    }
}

fn check_first_answer(name: &str, outcome: &ferry_e2e::Outcome) -> anyhow::Result<()> {
    if executes_runs(name) {
        let failed = batch_item_failures(outcome)?;
        if failed != ["bench-1"] {
            bail!("{name}: expected the unknown run to be reported as failed, got {failed:?}");
        }
        return Ok(());
    }
    if name == "notifications" {
        return match outcome {
            ferry_e2e::Outcome::Response(body) if String::from_utf8_lossy(body).contains("attempted") => Ok(()),
            other => bail!("{name}: expected a delivery count, got {other:?}"),
        };
    }
    let response = HttpApiResponse::from_outcome(outcome)?;
    let expected = if matches!(name, "connect" | "webhooks") { 404 } else { 200 };
    if response.status != expected {
        bail!("{name}: first request answered {} (expected {expected}): {}", response.status, response.body);
    }
    Ok(())
}

/// Nearest-rank percentile.
fn percentile<T: Copy + Ord>(values: &[T], p: f64) -> Option<T> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len().max(1)) - 1).copied()
}

fn ms(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.1} ms", d.as_secs_f64() * 1000.0)).unwrap_or_else(|| "–".into())
}

fn mib(kib: Option<u64>) -> String {
    kib.map(|k| format!("{:.1} MiB", k as f64 / 1024.0)).unwrap_or_else(|| "–".into())
}

fn markdown(reports: &[Report], runs: usize, profile: &str) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "Cold starts: {runs} per function, `target/{profile}` binaries, {} ({} CPUs), moto for DynamoDB.\n\n",
        cpu_model(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    ));
    out.push_str("| function | binary (stripped) | init median | init p90 | first invocation median | first invocation p90 | peak RSS median | peak RSS max |\n");
    out.push_str("|---|---|---|---|---|---|---|---|\n");
    for r in reports {
        let init: Vec<Duration> = r.samples.iter().map(|s| s.init).collect();
        let invoke: Vec<Duration> = r.samples.iter().map(|s| s.first_invoke).collect();
        let rss: Vec<u64> = r.samples.iter().map(|s| s.peak_rss_kib).collect();
        out.push_str(&format!(
            "| {} | {:.2} MB | {} | {} | {} | {} | {} | {} |\n",
            r.name,
            // MB, not MiB: the target is 10 MB = 10,000,000 bytes.
            r.binary_bytes as f64 / 1e6,
            ms(percentile(&init, 50.0)),
            ms(percentile(&init, 90.0)),
            ms(percentile(&invoke, 50.0)),
            ms(percentile(&invoke, 90.0)),
            mib(percentile(&rss, 50.0)),
            mib(rss.iter().max().copied()),
        ));
    }
    out
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name") || l.starts_with("CPU part"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_owned())
}

/// moto's server from the tests' venv, started only when `AWS_ENDPOINT_URL`
/// is unset, and stopped on drop.
struct Moto {
    child: Option<Child>,
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Moto {
    fn ensure() -> anyhow::Result<Self> {
        if std::env::var_os("AWS_ENDPOINT_URL").is_some() {
            return Ok(Self { child: None });
        }
        let root = workspace_root();
        let venv = std::env::var_os("FERRY_VENV").map(PathBuf::from).unwrap_or_else(|| root.join(".venv"));
        let python = venv.join("bin/python");
        if !venv.join("bin/moto_server").is_file() {
            bail!(
                "AWS_ENDPOINT_URL is not set and {} has no moto: run ./tests/run once to create it, or point AWS_ENDPOINT_URL at a running moto server",
                venv.display()
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new(&python)
            .arg(root.join("tests/moto_server.py"))
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", python.display()))?;
        let moto = Self { child: Some(child) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("moto did not start listening on 127.0.0.1:{port}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("ferry-bench: started moto on 127.0.0.1:{port}");
        std::env::set_var("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"));
        for (k, v) in [("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"), ("AWS_REGION", "us-east-1")] {
            if std::env::var_os(k).is_none() {
                std::env::set_var(k, v);
            }
        }
        Ok(moto)
    }
}
