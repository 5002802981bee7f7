//! `ferry run <tenant> <job>`: triggers a run through the API and follows it
//! until it finishes, then prints its counters and logs.

use std::time::Duration;

use anyhow::Context as _;
use clap::ValueEnum;
use serde_json::json;

use crate::client::{Hub, HubArgs};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Mode {
    Init,
    Normal,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    pub tenant: String,
    pub job: String,
    #[arg(long, value_enum, default_value_t = Mode::Normal)]
    pub mode: Mode,
    /// Forget the incremental cursors first.
    #[arg(long)]
    pub reset_cursor: bool,
    /// Read everything, ignoring cursors.
    #[arg(long)]
    pub full: bool,
    #[arg(long)]
    pub max_records: Option<u64>,
    #[arg(long)]
    pub batch_size: Option<u32>,
    /// Return once the run is accepted instead of following it.
    #[arg(long)]
    pub no_wait: bool,
    #[command(flatten)]
    pub hub: HubArgs,
}

/// Returns whether the run succeeded (or was accepted, with `--no-wait`).
pub async fn run(args: RunArgs) -> anyhow::Result<bool> {
    let hub = Hub::new(args.hub, "running a job")?;
    let mut body = json!({"mode": match args.mode { Mode::Init => "init", Mode::Normal => "normal" }});
    if args.reset_cursor {
        body["reset_cursor"] = json!(true);
    }
    if args.full {
        body["full"] = json!(true);
    }
    if let Some(n) = args.max_records {
        body["max_records"] = json!(n);
    }
    if let Some(n) = args.batch_size {
        body["batch_size"] = json!(n);
    }
    let runs = format!("/v1/tenants/{}/jobs/{}/runs", args.tenant, args.job);
    let (_, triggered) = hub.send(reqwest::Method::POST, &runs, Some(&body)).await?;
    let id = triggered["run"]["id"].as_str().context("the hub's answer has no run id")?.to_owned();
    if triggered["bundled"].as_bool() == Some(true) {
        println!("run {id} is in progress; this trigger is bundled into the next run");
        return Ok(true);
    }
    println!("run {id} started");
    if args.no_wait {
        return Ok(true);
    }
    let run = loop {
        let (_, run) = hub.send(reqwest::Method::GET, &format!("{runs}/{id}"), None).await?;
        if !matches!(run["status"].as_str(), Some("queued") | Some("running")) {
            break run;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let (_, logs) = hub.send(reqwest::Method::GET, &format!("{runs}/{id}/logs"), None).await?;
    for line in logs["lines"].as_array().into_iter().flatten() {
        let flow = line["flow"].as_str().map(|f| format!("[{f}] ")).unwrap_or_default();
        let level = match line["level"].as_str() {
            Some(l @ ("warn" | "error")) => format!("{l}: "),
            _ => String::new(),
        };
        eprintln!("  {level}{flow}{}", line["message"].as_str().unwrap_or_default());
    }
    if let Some(dropped) = logs["dropped"].as_u64().filter(|d| *d > 0) {
        eprintln!("  ({dropped} lines were dropped from the middle of this run's log)");
    }
    if let Some(counters) = run["counters"].as_object() {
        for (flow, c) in counters {
            println!(
                "{flow}: read {} written {} skipped {} failed {}",
                c["read"], c["written"], c["skipped"], c["failed"]
            );
        }
    }
    let status = run["status"].as_str().unwrap_or("unknown");
    println!("run {id}: {status}{}", run["error"].as_str().map(|e| format!(" ({e})")).unwrap_or_default());
    Ok(matches!(run["status"].as_str(), Some("succeeded")))
}
