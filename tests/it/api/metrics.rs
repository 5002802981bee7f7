//! Run metrics: counted once per ended run by UTC day, status and
//! integration, from aggregates updated as runs end; per tenant and
//! platform-wide; concurrent run ends on both stores.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use ferry_core::model::metrics::{DurationHistogram, RunEnd, PERCENTILE_RELATIVE_ERROR};
use ferry_core::model::RunStatus;
use ferry_core::ports::{ManualClock, RunRef, Store};
use ferry_service::metrics::{fold, pending_key, pending_op, MetricsQuery};
use ferry_service::{Hub, Settings};
use serde_json::{json, Value};

use crate::support::app::TestApp;
use crate::support::jobs::serve;

fn manifest(name: &str) -> String {
    format!(
        r#"
version: 1.0
name: {name}
connectors:
  src: {{provider: itemsource, auth: none}}
  dst: {{provider: warehouse, auth: none}}
flows:
  - name: items
    source: {{type: http, connector: src, request: {{path: /items}}, records: items}}
    mapping: {{fields: {{id: {{from: id}}}}}}
    target: {{type: http, connector: dst, path: /items}}
"#
    )
}

fn day(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 10, 0, 0).single().expect("a date")
}

/// A hub on a manual clock with two integrations, a source of three records,
/// a target that takes them and one that refuses them.
struct World {
    app: TestApp,
    clock: Arc<ManualClock>,
    src: String,
    accepting: String,
    refusing: String,
}

impl World {
    async fn new(start: DateTime<Utc>) -> Self {
        let clock = Arc::new(ManualClock::new(start));
        let settings = Settings {
            http: ferry_engine::http::HttpPolicy {
                max_retries: 0,
                timeout: std::time::Duration::from_secs(5),
                ..Default::default()
            },
            ..Default::default()
        };
        let app = TestApp::embedded_with_clock(clock.clone(), settings).await;
        for name in ["metered", "other"] {
            let r = app
                .admin(
                    Method::POST,
                    &format!("/v1/integrations/{name}/releases"),
                    Some(json!({"manifest": manifest(name)})),
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        }
        let src = serve(
            Router::new().route("/items", get(|| async { Json(json!({"items": [{"id": 1}, {"id": 2}, {"id": 3}]})) })),
        )
        .await;
        let accepting = serve(Router::new().route("/items", post(|| async { StatusCode::CREATED }))).await;
        let refusing = serve(Router::new().route("/items", post(|| async { StatusCode::BAD_REQUEST }))).await;
        Self { app, clock, src, accepting, refusing }
    }

    /// A job of `tenant` on `integration`, writing to `target`.
    async fn job(&self, tenant: &str, integration: &str, target: &str) -> String {
        self.job_from(tenant, integration, &self.src, target).await
    }

    /// A job of `tenant` on `integration`, reading from `source`, writing to `target`.
    async fn job_from(&self, tenant: &str, integration: &str, source: &str, target: &str) -> String {
        let mut ids = Vec::new();
        for (name, provider, base) in
            [("src", "itemsource", &source.to_owned()), ("dst", "warehouse", &target.to_owned())]
        {
            let body = json!({"name": format!("{name}-{integration}-{}", rand_suffix()), "connector": provider,
                              "auth_kind": "none", "settings": {"base_url": base}});
            let r = self.app.admin(Method::POST, &format!("/v1/tenants/{tenant}/connections"), Some(body)).await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
            ids.push(r.json()["id"].as_str().expect("id").to_owned());
        }
        let body = json!({"name": format!("{integration}-{}", rand_suffix()), "integration": integration,
                          "connections": {"src": ids[0], "dst": ids[1]}, "configs": {}});
        let r = self.app.admin(Method::POST, &format!("/v1/tenants/{tenant}/jobs"), Some(body)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        r.json()["id"].as_str().expect("job id").to_owned()
    }

    /// Triggers a run of the job and waits until it has ended.
    async fn run(&self, tenant: &str, job: &str) -> Value {
        let r = self.app.admin(Method::POST, &format!("/v1/tenants/{tenant}/jobs/{job}/runs"), Some(json!({}))).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
        let id = r.json()["run"]["id"].as_str().expect("run id").to_owned();
        self.ended(tenant, job, &id).await
    }

    /// Waits until a run has ended.
    async fn ended(&self, tenant: &str, job: &str, id: &str) -> Value {
        for _ in 0..600 {
            let v =
                self.app.admin(Method::GET, &format!("/v1/tenants/{tenant}/jobs/{job}/runs/{id}"), None).await.json();
            if !matches!(v["status"].as_str(), Some("queued" | "running" | "interrupted")) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("run {id} did not end");
    }

    /// Reruns a run with its original configuration and waits until the rerun has ended.
    async fn rerun(&self, tenant: &str, job: &str, run: &str) -> Value {
        let path = format!("/v1/tenants/{tenant}/jobs/{job}/runs/{run}/rerun");
        let r = self.app.admin(Method::POST, &path, Some(json!({"config": "original"}))).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
        let id = r.json()["run"]["id"].as_str().expect("run id").to_owned();
        self.ended(tenant, job, &id).await
    }

    async fn metrics(&self, path: &str) -> Value {
        let r = self.app.admin(Method::GET, path, None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text());
        r.json()
    }
}

fn rand_suffix() -> u64 {
    rand::random::<u32>().into()
}

/// A run queue nobody reads: runs triggered through it stay queued.
struct Nowhere;

#[async_trait::async_trait]
impl ferry_core::ports::RunDispatcher for Nowhere {
    async fn dispatch(&self, _: &RunRef) -> Result<(), ferry_core::ports::DispatchError> {
        Ok(())
    }
}

fn status_of(run: &Value) -> String {
    run["status"].as_str().expect("status").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_each_finished_run_once_by_day_and_status() {
    let w = World::new(day(2024, 5, 9)).await;
    w.app.tenant("acme").await;
    let good = w.job("acme", "metered", &w.accepting).await;
    let bad = w.job("acme", "other", &w.refusing).await;

    // Day 1: one run that succeeds, then delivered again and cancelled after its end: still one run.
    let first = w.run("acme", &good).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    let first_id = first["id"].as_str().expect("id").to_owned();
    let again = RunRef { tenant: "acme".into(), job: good.clone(), run: first_id.clone() };
    w.app.hub.execute_dispatched(&again).await.expect("a duplicate delivery is ignored");
    let r = w.app.admin(Method::POST, &format!("/v1/tenants/acme/jobs/{good}/runs/{first_id}/cancel"), None).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "run_finished".to_owned()), "{}", r.text());

    // Day 2: a run whose target refuses the records, and a queued run cancelled (twice).
    w.clock.advance(chrono::Duration::days(1));
    let refused = w.run("acme", &bad).await;
    let refused_status = status_of(&refused);
    assert!(!["succeeded", "cancelled"].contains(&refused_status.as_str()), "{refused}");
    let queued_hub = w.app.hub.clone().with_dispatcher(Arc::new(Nowhere));
    let req = serde_json::from_value(json!({})).expect("run request");
    let queued = queued_hub.runs().trigger_run("acme", &good, req, "api").await.expect("triggered").run;
    for expect in [StatusCode::OK, StatusCode::CONFLICT] {
        let r =
            w.app.admin(Method::POST, &format!("/v1/tenants/acme/jobs/{good}/runs/{}/cancel", queued.id), None).await;
        assert_eq!(r.status, expect, "{}", r.text());
    }

    let m = w.metrics("/v1/tenants/acme/metrics?days=2").await;
    assert_eq!(m["tenant"], "acme");
    assert_eq!((m["from"].as_str(), m["to"].as_str()), (Some("2024-05-09"), Some("2024-05-10")), "{m}");
    let days = m["per_day"].as_array().expect("per_day");
    assert_eq!(days.len(), 2, "{m}");
    assert_eq!(days[0]["date"], "2024-05-09");
    assert_eq!(days[0]["runs"], 1);
    assert_eq!(days[0]["by_status"]["succeeded"], 1);
    assert_eq!((days[0]["records_read"].as_u64(), days[0]["records_written"].as_u64()), (Some(3), Some(3)));
    assert_eq!(days[0]["success_rate"], 1.0);
    assert_eq!(days[1]["date"], "2024-05-10");
    assert_eq!(days[1]["runs"], 2, "{m}");
    assert_eq!(days[1]["by_status"][&refused_status], 1, "{m}");
    assert_eq!(days[1]["by_status"]["cancelled"], 1, "{m}");
    assert_eq!(days[1]["by_status"]["succeeded"], 0);
    assert_eq!(days[1]["success_rate"], 0.0, "a cancel is not judged; the refused run is not a success");
    let totals = &m["totals"];
    assert_eq!(totals["runs"], 3, "{m}");
    assert_eq!(totals["success_rate"], 0.5, "1 succeeded of 2 judged (the cancelled run is not)");
    assert_eq!(totals["records_read"].as_u64(), Some(3 + refused["counters"]["items"]["read"].as_u64().unwrap_or(0)));
    let by: Vec<(String, u64)> = m["by_integration"]
        .as_array()
        .expect("by_integration")
        .iter()
        .map(|i| (i["integration"].as_str().unwrap_or("").to_owned(), i["runs"].as_u64().unwrap_or(0)))
        .collect();
    assert_eq!(by, [("metered".to_owned(), 2), ("other".to_owned(), 1)]);
    // Nothing is left pending: every end was folded into the aggregates.
    for id in [&first_id, refused["id"].as_str().expect("id"), &queued.id] {
        assert!(w.app.hub.store.get(&pending_key("acme", id)).await.expect("get").is_none(), "{id} still pending");
    }

    // The same runs platform-wide (one tenant), a one-day window, one integration.
    let p = w.metrics("/v1/metrics?days=2").await;
    assert_eq!(p["tenant"], Value::Null);
    assert_eq!(p["totals"], m["totals"]);
    assert_eq!(p["per_day"], m["per_day"]);
    let today = w.metrics("/v1/tenants/acme/metrics?days=1").await;
    assert_eq!(today["totals"]["runs"], 2, "{today}");
    let metered = w.metrics("/v1/tenants/acme/metrics?days=2&integration=metered").await;
    assert_eq!(metered["integration"], "metered");
    assert_eq!(metered["totals"]["runs"], 2);
    assert_eq!(metered["totals"]["by_status"]["cancelled"], 1);
    assert_eq!(metered["by_integration"].as_array().map(Vec::len), Some(1));
}

/// Failed runs and their reruns each count as they end, on the hub's clock;
/// a rerun that succeeds takes nothing back, and a day later none is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_and_its_failed_rerun_count_as_two_failures_until_a_day_has_passed() {
    let w = World::new(day(2024, 5, 9)).await;
    w.app.tenant("acme").await;
    // A source that fails until it is fixed.
    let broken = Arc::new(AtomicBool::new(true));
    let flag = broken.clone();
    let source = serve(Router::new().route(
        "/items",
        get(move || {
            let broken = flag.load(Ordering::SeqCst);
            async move {
                if broken {
                    Err(StatusCode::INTERNAL_SERVER_ERROR)
                } else {
                    Ok(Json(json!({"items": [{"id": 1}]})))
                }
            }
        }),
    ))
    .await;
    let good = w.job("acme", "metered", &w.accepting).await;
    let bad = w.job_from("acme", "other", &source, &w.accepting).await;
    let failed = || async { w.app.hub.metrics().failed_in_last_24_hours("acme").await.expect("count") };

    assert_eq!(status_of(&w.run("acme", &good).await), "succeeded");
    let first = w.run("acme", &bad).await;
    assert!(status_of(&first).starts_with("failed_"), "{first}");
    assert_eq!(failed().await, 1);
    w.clock.advance(chrono::Duration::hours(2));
    let rerun = w.rerun("acme", &bad, first["id"].as_str().expect("id")).await;
    assert_eq!(rerun["rerun_of"], first["id"], "{rerun}");
    assert!(status_of(&rerun).starts_with("failed_"), "{rerun}");
    assert_eq!(failed().await, 2, "the rerun's failure counts beside its original's");
    broken.store(false, Ordering::SeqCst);
    let fixed = w.rerun("acme", &bad, rerun["id"].as_str().expect("id")).await;
    assert_eq!(status_of(&fixed), "succeeded", "{fixed}");
    assert_eq!(failed().await, 2, "a rerun that succeeds takes no earlier failure back");
    w.clock.advance(chrono::Duration::hours(22));
    assert_eq!(failed().await, 1, "the first failure ended 24 hours ago");
    w.clock.advance(chrono::Duration::hours(2));
    assert_eq!(failed().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_metrics_exclude_other_tenants() {
    let w = World::new(day(2024, 6, 1)).await;
    w.app.tenant("acme").await;
    w.app.tenant("umbrella").await;
    let a = w.job("acme", "metered", &w.accepting).await;
    let u = w.job("umbrella", "metered", &w.accepting).await;
    w.run("acme", &a).await;
    w.run("umbrella", &u).await;
    w.run("umbrella", &u).await;

    assert_eq!(w.metrics("/v1/tenants/acme/metrics").await["totals"]["runs"], 1);
    assert_eq!(w.metrics("/v1/tenants/umbrella/metrics").await["totals"]["runs"], 2);
    let all = w.metrics("/v1/metrics").await;
    assert_eq!(all["totals"]["runs"], 3);
    assert_eq!(all["totals"]["records_written"], 9);
    assert_eq!(all["per_day"].as_array().map(Vec::len), Some(7), "the default window is 7 days");

    // Umbrella's own key reads umbrella's metrics, and is refused acme's.
    let (key, _) = w.app.tenant_key("umbrella").await;
    let r = w.app.call(Method::GET, "/v1/tenants/umbrella/metrics", Some(&key), None).await;
    assert_eq!((r.status, r.json()["totals"]["runs"].as_u64()), (StatusCode::OK, Some(2)), "{}", r.text());
    let r = w.app.call(Method::GET, "/v1/tenants/acme/metrics", Some(&key), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
}

#[tokio::test]
async fn platform_metrics_refuse_tenant_keys() {
    let app = TestApp::embedded().await;
    app.tenant("acme").await;
    let (key, _) = app.tenant_key("acme").await;
    let (member, _) = app.member("ops@acme.example", &["acme"]).await;
    for token in [&key, &member] {
        let r = app.call(Method::GET, "/v1/metrics", Some(token), None).await;
        assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "forbidden".to_owned()), "{}", r.text());
    }
    let r = app.admin(Method::GET, "/v1/metrics", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

#[tokio::test]
async fn bad_metrics_parameters_are_refused_naming_the_parameter() {
    let app = TestApp::embedded().await;
    app.tenant("acme").await;
    for (query, code) in [
        ("days=0", "invalid_days"),
        ("days=91", "invalid_days"),
        ("days=week", "invalid_days"),
        ("days=-1", "invalid_days"),
        ("integration=Not%20A%20Name", "invalid_integration"),
        ("tenant=acme", "invalid_query"),
    ] {
        for base in ["/v1/metrics", "/v1/tenants/acme/metrics"] {
            let r = app.admin(Method::GET, &format!("{base}?{query}"), None).await;
            assert_eq!(
                (r.status, r.code()),
                (StatusCode::BAD_REQUEST, code.to_owned()),
                "{base}?{query}: {}",
                r.text()
            );
        }
    }
    let r = app.admin(Method::GET, "/v1/tenants/nobody/metrics", None).await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "not_found".to_owned()), "{}", r.text());
}

// ---------------------------------------------------------------------------
// against the store port, on SQLite and on DynamoDB (moto)

const TODAY: (i32, u32, u32) = (2024, 7, 1);

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(TODAY.0, TODAY.1, TODAY.2).expect("a date")
}

fn end(tenant: &str, run: usize, integration: &str, status: RunStatus, duration_ms: u64) -> RunEnd {
    RunEnd {
        tenant: tenant.to_owned(),
        job: "job".to_owned(),
        run: format!("run-{run:04}"),
        integration: Some(integration.to_owned()),
        day: today(),
        ended_at: Some(day(TODAY.0, TODAY.1, TODAY.2)),
        status,
        duration_ms: Some(duration_ms),
        records_read: 10,
        records_written: 7,
        records_dead_lettered: 0,
    }
}

/// A hub over `store` whose clock says [`TODAY`]; its secrets are never used.
fn hub_over(store: Arc<dyn Store>) -> (tempfile::TempDir, Hub) {
    let dir = tempfile::tempdir().expect("tempdir");
    let secrets = ferry_embedded::FileSecretStore::open(dir.path()).expect("secrets");
    let clock = Arc::new(ManualClock::new(day(TODAY.0, TODAY.1, TODAY.2)));
    (dir, Hub::new(store, Arc::new(secrets)).with_clock(clock))
}

fn window(days: u32) -> MetricsQuery {
    MetricsQuery { days: Some(days.to_string()), integration: None }
}

/// Run ends recorded and folded at once from many tasks, each folded twice
/// concurrently (as the run's driver and a report would): every end counts,
/// once, in its tenant and in the platform.
async fn concurrent_run_ends_do_not_lose_counts(store: Arc<dyn Store>) {
    const RUNS: usize = 24;
    let (_dir, hub) = hub_over(store.clone());
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..RUNS {
        let store = store.clone();
        tasks.spawn(async move {
            let tenant = if i % 3 == 0 { "beta" } else { "alpha" };
            let status = if i % 4 == 0 { RunStatus::FailedIntegration } else { RunStatus::Succeeded };
            let e = end(tenant, i, if i % 2 == 0 { "even" } else { "odd" }, status, 1000);
            store.write(vec![pending_op(&e).expect("op")]).await.expect("pending run end written");
            let (a, b) = tokio::join!(fold(&*store, tenant, &e.run), fold(&*store, tenant, &e.run));
            let (a, b) = (a.expect("fold"), b.expect("fold"));
            assert!(a ^ b, "exactly one of two folds of one run end adds it ({a}, {b})");
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.expect("task");
    }
    let all = hub.metrics().platform(&window(1)).await.expect("platform report");
    assert_eq!(all.totals.runs, RUNS as u64, "{all:?}");
    assert_eq!(all.totals.by_status.failed_integration, (0..RUNS).filter(|i| i % 4 == 0).count() as u64);
    assert_eq!(all.totals.records_read, 10 * RUNS as u64);
    assert_eq!(all.totals.records_written, 7 * RUNS as u64);
    let by: Vec<(String, u64)> = all.by_integration.iter().map(|i| (i.integration.clone(), i.summary.runs)).collect();
    assert_eq!(by, [("even".to_owned(), (RUNS / 2) as u64), ("odd".to_owned(), (RUNS / 2) as u64)]);
    for (tenant, want) in [("alpha", (0..RUNS).filter(|i| i % 3 != 0).count()), ("beta", RUNS.div_ceil(3))] {
        hub.tenants()
            .create_tenant(serde_json::from_value(json!({"id": tenant, "name": tenant})).expect("tenant"))
            .await
            .expect("tenant created");
        let report = hub.metrics().tenant(tenant, &window(1)).await.expect("tenant report");
        assert_eq!(report.totals.runs, want as u64, "{tenant}: {report:?}");
    }
}

/// A run end whose fold never happened (its host stopped) is folded by the
/// next report of its scope, and counted once.
async fn a_run_end_left_pending_is_counted_by_the_next_report(store: Arc<dyn Store>) {
    let (_dir, hub) = hub_over(store.clone());
    let e = end("gamma", 1, "solo", RunStatus::Partial, 5000);
    store.write(vec![pending_op(&e).expect("op")]).await.expect("pending run end written");
    let report = hub.metrics().platform(&window(3)).await.expect("report");
    assert_eq!((report.totals.runs, report.totals.by_status.partial), (1, 1), "{report:?}");
    assert!(store.get(&pending_key("gamma", &e.run)).await.expect("get").is_none(), "folded by the report");
    let again = hub.metrics().platform(&window(3)).await.expect("report");
    assert_eq!(again.totals, report.totals, "counted once");
}

/// The reported p50/p95 are the midpoints of the histogram buckets holding
/// the runs at those ranks: within the stated precision, not exact values.
async fn duration_percentiles_come_from_the_histogram(store: Arc<dyn Store>) {
    let (_dir, hub) = hub_over(store.clone());
    // 90 runs of 1 s and 10 of 1 min: the median run takes 1 s, the 95th 1 min.
    for i in 0..100 {
        let ms = if i < 90 { 1_000 } else { 60_000 };
        let e = end("delta", i, "timed", RunStatus::Succeeded, ms);
        store.write(vec![pending_op(&e).expect("op")]).await.expect("written");
        assert!(fold(&*store, "delta", &e.run).await.expect("fold"));
    }
    let t = hub.metrics().platform(&window(1)).await.expect("report").totals;
    let bucket = |ms| DurationHistogram::representative(DurationHistogram::bucket_of(ms));
    assert_eq!(t.duration_p50_ms, Some(bucket(1_000)));
    assert_eq!(t.duration_p95_ms, Some(bucket(60_000)));
    for (got, exact) in [(t.duration_p50_ms, 1_000.0), (t.duration_p95_ms, 60_000.0)] {
        let got = got.expect("a percentile") as f64;
        assert!((got - exact).abs() / exact <= PERCENTILE_RELATIVE_ERROR, "{got} vs {exact}");
    }
    assert_ne!(t.duration_p50_ms, Some(1_000), "a bucket's midpoint, not the run's exact duration");
}

fn at(d: u32, h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 7, d, h, m, s).single().expect("a time")
}

/// Records a run end of `tenant` at `ended` and folds it, as a run's end does.
async fn ended(store: &dyn Store, tenant: &str, run: usize, status: RunStatus, ended: DateTime<Utc>) {
    let e = RunEnd { day: ended.date_naive(), ended_at: Some(ended), ..end(tenant, run, "hourly", status, 1000) };
    store.write(vec![pending_op(&e).expect("op")]).await.expect("pending run end written");
    assert!(fold(store, tenant, &e.run).await.expect("fold"), "{} folded once", e.run);
    assert!(!fold(store, tenant, &e.run).await.expect("fold"), "{} not folded twice", e.run);
}

/// "Failed runs, last 24 hours" counts every `failed_*` run that ended in the
/// 24 hours up to the clock's now, to the second: across hour and day
/// boundaries, not "today", other statuses and tenants left out; a run drops
/// out once 24 hours have passed since it ended.
async fn failed_runs_of_the_last_24_hours_are_counted_to_the_second(store: Arc<dyn Store>) {
    let clock = Arc::new(ManualClock::new(at(2, 10, 0, 0)));
    let dir = tempfile::tempdir().expect("tempdir");
    let secrets = ferry_embedded::FileSecretStore::open(dir.path()).expect("secrets");
    let hub = Hub::new(store.clone(), Arc::new(secrets)).with_clock(clock.clone());
    let failures = [
        (at(1, 10, 0, 0), RunStatus::FailedIntegration), // exactly 24 h before now: out
        (at(1, 10, 0, 1), RunStatus::FailedPlatform),
        (at(1, 23, 59, 59), RunStatus::FailedTimeout), // yesterday, before midnight
        (at(2, 0, 0, 0), RunStatus::FailedRefresh),
        (at(2, 9, 59, 59), RunStatus::FailedIntegration), // the hour before now's
        (at(2, 10, 0, 0), RunStatus::FailedIntegration),  // now
    ];
    for (i, (t, status)) in failures.iter().enumerate() {
        ended(&*store, "alpha", i, *status, *t).await;
    }
    for (i, status) in [RunStatus::Succeeded, RunStatus::Partial, RunStatus::Cancelled].into_iter().enumerate() {
        ended(&*store, "alpha", 100 + i, status, at(2, 9, 30, 0)).await;
    }
    ended(&*store, "beta", 200, RunStatus::FailedIntegration, at(2, 9, 30, 0)).await;
    // A run that ended before ends carried their time is left out (day aggregates only).
    let old = RunEnd {
        ended_at: None,
        day: at(2, 0, 0, 0).date_naive(),
        ..end("alpha", 300, "hourly", RunStatus::FailedIntegration, 1)
    };
    store.write(vec![pending_op(&old).expect("op")]).await.expect("written");

    let count = || async { hub.metrics().failed_in_last_24_hours("alpha").await.expect("count") };
    assert_eq!(count().await, 5, "all but the one that ended exactly 24 hours ago");
    assert!(store.get(&pending_key("alpha", &old.run)).await.expect("get").is_none(), "leftover folded by the count");
    assert_eq!(hub.metrics().failed_in_last_24_hours("beta").await.expect("count"), 1, "each tenant its own");
    clock.advance(chrono::Duration::seconds(1));
    assert_eq!(count().await, 4, "24 hours after 10:00:01 it drops out");
    clock.set(at(2, 23, 59, 58));
    assert_eq!(count().await, 4, "a day later, yesterday's last second is still inside");
    clock.set(at(2, 23, 59, 59));
    assert_eq!(count().await, 3, "and then out");
    clock.set(at(3, 0, 0, 1));
    assert_eq!(count().await, 2, "today's first second, 24 hours on");
    clock.set(at(3, 9, 59, 59));
    assert_eq!(count().await, 1, "only the run that ended at 10:00:00");
    clock.set(at(3, 10, 0, 0));
    assert_eq!(count().await, 0);
}

#[test]
fn histogram_percentiles_stay_within_the_stated_precision() {
    let mut h = DurationHistogram::default();
    for s in 1..=100u64 {
        h.record(s * 1_000);
    }
    assert_eq!(h.count(), 100);
    for (p, exact) in [(0.50, 50_000.0), (0.95, 95_000.0), (1.0, 100_000.0), (0.01, 1_000.0)] {
        let got = h.percentile(p).expect("a percentile") as f64;
        assert!((got - exact).abs() / exact <= PERCENTILE_RELATIVE_ERROR, "p{p}: {got} vs {exact}");
    }
    assert_eq!(DurationHistogram::default().percentile(0.5), None, "no durations, no percentile");
    let mut zero = DurationHistogram::default();
    zero.record(0);
    assert_eq!(zero.percentile(0.95), Some(0));
}

both_stores! {
    concurrent_run_ends_do_not_lose_counts =>
        concurrent_run_ends_do_not_lose_counts_on_sqlite, concurrent_run_ends_do_not_lose_counts_on_dynamodb;
    a_run_end_left_pending_is_counted_by_the_next_report =>
        a_run_end_left_pending_is_counted_by_the_next_report_on_sqlite,
        a_run_end_left_pending_is_counted_by_the_next_report_on_dynamodb;
    failed_runs_of_the_last_24_hours_are_counted_to_the_second =>
        failed_runs_of_the_last_24_hours_are_counted_to_the_second_on_sqlite,
        failed_runs_of_the_last_24_hours_are_counted_to_the_second_on_dynamodb;
    duration_percentiles_come_from_the_histogram =>
        duration_percentiles_come_from_the_histogram_on_sqlite, duration_percentiles_come_from_the_histogram_on_dynamodb;
}
