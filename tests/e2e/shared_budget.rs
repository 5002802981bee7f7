//! One request budget across processes: two `ferry up` hosts on one data
//! directory (one SQLite file) each run a job of the same tenant against one
//! provider at the same time; the provider sees the two together keep to
//! the budget. Counted in windows of the provider's arrival times, not timed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use reqwest::Method as M;
use serde_json::{json, Value};

use super::call;
use super::host_process::HostProcess;

const PAGES: u32 = 8;
/// `ferry_service::request_gate::LEASE_WINDOW`: tokens leased just before a
/// window may be spent in it.
const LEASE_WINDOW: Duration = ferry_service::request_gate::LEASE_WINDOW;

type Arrivals = Arc<Mutex<Vec<(Instant, String)>>>;

async fn page(
    State(seen): State<Arrivals>,
    Path(job): Path<String>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Json<Value> {
    seen.lock().expect("lock").push((Instant::now(), job));
    let n: u32 = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    Json(json!({ "items": if n <= PAGES { vec![json!({"id": n})] } else { vec![] } }))
}

async fn sink(State(seen): State<Arrivals>, Path(job): Path<String>) -> StatusCode {
    seen.lock().expect("lock").push((Instant::now(), job));
    StatusCode::OK
}

fn manifest(name: &str, connector: &str, job: &str) -> String {
    format!(
        r#"version: 1.0
name: {name}
connectors:
  {connector}: {{provider: feed, auth: none, rate_limit: {{per_second: 10, burst: 1}}}}
flows:
  - name: items
    source:
      type: http
      connector: {connector}
      request: {{path: /{job}/items}}
      records: items
      pagination: {{type: page_number, size: 1, size_param: per_page}}
    target: {{type: http, connector: {connector}, path: /{job}/sink, batch_size: 1}}
"#
    )
}

fn busiest(arrivals: &[Instant], span: Duration) -> usize {
    let mut sorted = arrivals.to_vec();
    sorted.sort();
    (0..sorted.len()).map(|i| sorted[i..].iter().take_while(|t| **t < sorted[i] + span).count()).max().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_on_one_store_keep_to_one_request_budget() {
    let seen: Arrivals = Arc::default();
    let router =
        Router::new().route("/{job}/items", get(page)).route("/{job}/sink", post(sink)).with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let provider = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let key = format!("ferry_platform_{}", "ab".repeat(32));
    // One after the other: the first creates the database and the keys the second opens.
    let one = HostProcess::start(dir.path(), &key).await;
    let two = HostProcess::start(dir.path(), &key).await;
    let c = reqwest::Client::new();
    let b = one.base.clone();
    call(&c, M::POST, format!("{b}/v1/tenants"), &key, Some(json!({"id": "acme", "name": "Acme"}))).await;
    let (s, v) = call(
        &c,
        M::POST,
        format!("{b}/v1/tenants/acme/connections"),
        &key,
        Some(json!({"name": "feed", "connector": "feed", "auth_kind": "none", "settings": {"base_url": provider}})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let conn = v["id"].clone();
    let mut jobs = Vec::new();
    for (name, connector, path) in [("pull-a", "alpha", "a"), ("pull-b", "beta", "b")] {
        let body = json!({"manifest": manifest(name, connector, path)});
        let (s, v) = call(&c, M::POST, format!("{b}/v1/integrations/{name}/releases"), &key, Some(body)).await;
        assert_eq!(s, 201, "{v}");
        let body = json!({"name": name, "integration": name, "connections": {connector: conn}});
        let (s, v) = call(&c, M::POST, format!("{b}/v1/tenants/acme/jobs"), &key, Some(body)).await;
        assert_eq!(s, 201, "{v}");
        jobs.push(v["id"].as_str().expect("job").to_owned());
    }
    // Each host runs the job it was asked to run.
    let mut runs = Vec::new();
    for (host, job) in [(&one, &jobs[0]), (&two, &jobs[1])] {
        let url = format!("{}/v1/tenants/acme/jobs/{job}/runs", host.base);
        let (s, v) = call(&c, M::POST, url, &key, Some(json!({}))).await;
        assert_eq!(s, 202, "{v}");
        runs.push(format!("{}/v1/tenants/acme/jobs/{job}/runs/{}", host.base, v["run"]["id"].as_str().expect("run")));
    }
    for run in &runs {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (_, v) = call(&c, M::GET, run.clone(), &key, None).await;
            if !matches!(v["status"].as_str(), Some("queued" | "running" | "interrupted")) {
                assert_eq!(v["status"], "succeeded", "{v}");
                break;
            }
            assert!(Instant::now() < deadline, "{run} did not finish: {v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    one.kill();
    two.kill();

    let seen = seen.lock().expect("lock");
    assert_eq!(seen.len(), 2 * (2 * PAGES as usize + 1), "every page and write of both jobs");
    let of = |job: &str| seen.iter().filter(|(_, j)| j == job).map(|(t, _)| *t).collect::<Vec<_>>();
    let (a, b) = (of("a"), of("b"));
    assert!(a.iter().min() < b.iter().max() && b.iter().min() < a.iter().max(), "the two hosts ran at the same time");
    let all: Vec<Instant> = seen.iter().map(|(t, _)| *t).collect();
    // 10 per second, bursts of 1: what the budget allows in a span.
    let allowed = |span: Duration| (1.0 + 10.0 * (span + LEASE_WINDOW).as_secs_f64()).floor() as usize;
    for span in [Duration::from_secs(1), Duration::from_secs(2)] {
        let most = busiest(&all, span);
        assert!(most <= allowed(span), "{most} requests in {span:?}; the budget allows {}", allowed(span));
    }
}
