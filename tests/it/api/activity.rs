//! Activity: a tenant's runs across its jobs (`GET /v1/tenants/{tenant}/runs`)
//! and every run of the platform (`GET /v1/runs`), newest first, filtered,
//! paged with a cursor, read from the store's indexes on SQLite and DynamoDB.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use chrono::{DateTime, Utc};
use ferry_core::model::Run;
use ferry_core::ports::{Condition, WriteOp};
use ferry_embedded::FileSecretStore;
use ferry_service::repo::run_index;
use ferry_service::Hub;
use serde_json::{json, Value};

use crate::support::app::TestApp;
use crate::support::aws;
use crate::support::manifests::CRM_SYNC;

/// Two tenants; `a` has two crm-sync jobs and a shop-orders job, `b` one crm-sync job.
struct World {
    app: TestApp,
    /// crm-sync jobs of tenant a.
    crm1: String,
    crm2: String,
    /// The shop-orders job of tenant a.
    shop: String,
    /// The crm-sync job of tenant b.
    other: String,
}

impl World {
    async fn new() -> Self {
        // Runs that reach the closed port fail at once rather than retrying.
        let http =
            ferry_engine::http::HttpPolicy { max_retries: 0, timeout: Duration::from_secs(1), ..Default::default() };
        Self::on(TestApp::embedded_with_settings(ferry_service::Settings { http, ..Default::default() }).await).await
    }

    async fn on(app: TestApp) -> Self {
        app.tenant("a").await;
        app.tenant("b").await;
        app.publish("crm-sync", CRM_SYNC).await;
        app.publish("shop-orders", &super::hooks::manifest("{type: standard_webhooks}", "{type: head_ok}")).await;
        let crm_job = |tenant: &'static str, name: &'static str| {
            let app = &app;
            async move {
                let conn = app.connection(tenant, &format!("{name}-conn"), "s3cret").await;
                app.job(
                    tenant,
                    json!({"name": name, "integration": "crm-sync", "connections": {"crm": conn}, "configs": {"region": "eu"}}),
                )
                .await
            }
        };
        let crm1 = crm_job("a", "contacts").await;
        let crm2 = crm_job("a", "companies").await;
        let other = crm_job("b", "b-contacts").await;
        let shop = app.job("a", json!({"name": "orders", "integration": "shop-orders"})).await;
        Self { app, crm1, crm2, shop, other }
    }

    /// Stores a run's write (see [`seeded`]).
    async fn seed(&self, op: WriteOp) {
        self.app.hub.store.write(vec![op]).await.expect("seed a run");
    }

    async fn list(&self, path: &str) -> Value {
        let r = self.app.admin(Method::GET, path, None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text());
        r.json()
    }

    /// The ids of every page of a list, following `next_cursor`.
    async fn ids(&self, path: &str) -> Vec<String> {
        let mut ids = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..100 {
            let sep = if path.contains('?') { '&' } else { '?' };
            let url = match &cursor {
                Some(c) => format!("{path}{sep}cursor={c}"),
                None => path.to_owned(),
            };
            let page = self.list(&url).await;
            ids.extend(
                page["items"].as_array().into_iter().flatten().filter_map(|r| r["id"].as_str().map(str::to_owned)),
            );
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return ids,
            }
        }
        panic!("{path}: the cursor never ended");
    }
}

fn at(minutes: i64) -> DateTime<Utc> {
    "2024-05-01T09:00:00Z".parse::<DateTime<Utc>>().expect("time") + chrono::Duration::minutes(minutes)
}

/// A run's write as the hub makes it (with its index keys), created `minutes` after 09:00.
fn seeded(tenant: &str, job: &str, id: &str, minutes: i64, status: &str, mode: &str, source: &str) -> WriteOp {
    let run: Run = serde_json::from_value(json!({
        "id": id, "tenant": tenant, "job": job, "mode": mode,
        "triggers": [{"source": source, "at": at(minutes)}],
        "release": 1, "status": status, "started_at": at(minutes), "ended_at": null,
        "counters": {}, "error": null, "created_at": at(minutes),
    }))
    .expect("a run");
    run_index::put(&run, Condition::NotExists).expect("a run's write")
}

const ALL_STATUSES: [&str; 10] = [
    "queued",
    "running",
    "interrupted",
    "succeeded",
    "partial",
    "failed_integration",
    "failed_platform",
    "failed_timeout",
    "failed_refresh",
    "cancelled",
];

#[tokio::test]
async fn a_tenants_activity_lists_runs_of_every_job_newest_first() {
    let w = World::new().await;
    w.seed(seeded("a", &w.crm1, "r1", 1, "succeeded", "normal", "schedule")).await;
    w.seed(seeded("a", &w.shop, "r2", 2, "succeeded", "webhook", "webhook")).await;
    w.seed(seeded("a", &w.crm2, "r3", 3, "failed_integration", "normal", "manual")).await;
    w.seed(seeded("b", &w.other, "rb", 4, "succeeded", "normal", "api")).await;
    w.seed(seeded("a", &w.crm1, "r0", 0, "succeeded", "init", "api")).await;

    let page = w.list("/v1/tenants/a/runs").await;
    let items = page["items"].as_array().expect("items");
    let ids: Vec<&str> = items.iter().filter_map(|r| r["id"].as_str()).collect();
    assert_eq!(ids, ["r3", "r2", "r1", "r0"], "tenant b's run is not tenant a's activity");
    assert_eq!(page["next_cursor"], Value::Null);
    // Each run carries its job's and integration's names beside the run itself.
    assert_eq!(
        (items[0]["job_name"].as_str(), items[0]["integration"].as_str()),
        (Some("companies"), Some("crm-sync"))
    );
    assert_eq!(
        (items[1]["job_name"].as_str(), items[1]["integration"].as_str()),
        (Some("orders"), Some("shop-orders"))
    );
    assert_eq!(items[0]["status"], "failed_integration");
    assert_eq!(items[0]["job"], w.crm2.as_str());
}

#[tokio::test]
async fn the_platform_activity_lists_runs_of_every_tenant_newest_first() {
    let w = World::new().await;
    w.seed(seeded("a", &w.crm1, "r1", 1, "succeeded", "normal", "schedule")).await;
    w.seed(seeded("b", &w.other, "rb", 2, "succeeded", "normal", "api")).await;
    w.seed(seeded("a", &w.shop, "r3", 3, "partial", "webhook", "webhook")).await;
    let page = w.list("/v1/runs").await;
    let runs: Vec<(&str, &str, &str)> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|r| Some((r["id"].as_str()?, r["tenant"].as_str()?, r["job_name"].as_str()?)))
        .collect();
    assert_eq!(runs, [("r3", "a", "orders"), ("rb", "b", "b-contacts"), ("r1", "a", "contacts")]);
}

#[tokio::test]
async fn a_triggered_run_appears_in_its_tenants_and_the_platforms_activity() {
    let w = World::new().await;
    let r = w.app.admin(Method::POST, &format!("/v1/tenants/a/jobs/{}/runs", w.crm1), Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let run = r.json()["run"]["id"].as_str().expect("run id").to_owned();
    // Every write of the run, from queued to its end, keeps it in both indexes.
    let mut status = Value::Null;
    for _ in 0..400 {
        let page = w.list("/v1/tenants/a/runs").await;
        status = page["items"][0]["status"].clone();
        assert_eq!(page["items"][0]["id"], run.as_str(), "{page}");
        if status.as_str().is_some_and(|s| !matches!(s, "queued" | "running")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        status.as_str().is_some_and(|s| s.starts_with("failed_")),
        "the run against a closed port failed: {status}"
    );
    assert_eq!(w.ids("/v1/runs").await, std::slice::from_ref(&run));
    assert_eq!(w.ids("/v1/tenants/a/runs?status=failed").await, [run]);
    assert!(w.ids("/v1/tenants/b/runs").await.is_empty());
}

#[tokio::test]
async fn failed_filter_matches_every_failure_status() {
    let w = World::new().await;
    for (i, status) in ALL_STATUSES.iter().enumerate() {
        w.seed(seeded("a", &w.crm1, &format!("r-{status}").replace('_', "-"), i as i64, status, "normal", "schedule"))
            .await;
    }
    for path in ["/v1/tenants/a/runs?status=failed", "/v1/runs?status=failed"] {
        assert_eq!(
            w.ids(path).await,
            ["r-failed-refresh", "r-failed-timeout", "r-failed-platform", "r-failed-integration"],
            "{path}"
        );
    }
    assert_eq!(w.ids("/v1/tenants/a/runs?status=cancelled,succeeded").await, ["r-cancelled", "r-succeeded"]);
    assert_eq!(w.ids("/v1/tenants/a/runs?status=failed_timeout,failed").await.len(), 4);
    assert_eq!(w.ids("/v1/tenants/a/runs?status=interrupted").await, ["r-interrupted"]);
}

#[tokio::test]
async fn activity_filters_by_job_integration_trigger_and_mode() {
    let w = World::new().await;
    w.seed(seeded("a", &w.crm1, "c1", 1, "succeeded", "normal", "schedule")).await;
    w.seed(seeded("a", &w.crm2, "c2", 2, "succeeded", "init", "manual")).await;
    w.seed(seeded("a", &w.shop, "s1", 3, "succeeded", "webhook", "webhook")).await;
    w.seed(seeded("a", &w.crm1, "c3", 4, "failed_platform", "normal", "api")).await;
    w.seed(seeded("b", &w.other, "b1", 5, "succeeded", "normal", "schedule")).await;

    let crm1 = &w.crm1;
    for (path, want) in [
        (format!("/v1/tenants/a/runs?job={crm1}"), vec!["c3", "c1"]),
        (format!("/v1/tenants/a/runs?job={crm1}&status=failed"), vec!["c3"]),
        // Two of tenant a's jobs run crm-sync: the tenant index, filtered.
        ("/v1/tenants/a/runs?integration=crm-sync".to_owned(), vec!["c3", "c2", "c1"]),
        // One runs shop-orders: that job's partition.
        ("/v1/tenants/a/runs?integration=shop-orders".to_owned(), vec!["s1"]),
        ("/v1/tenants/a/runs?integration=nothing-runs-this".to_owned(), vec![]),
        ("/v1/tenants/a/runs?trigger=schedule".to_owned(), vec!["c1"]),
        ("/v1/tenants/a/runs?trigger=webhook&mode=webhook".to_owned(), vec!["s1"]),
        ("/v1/tenants/a/runs?mode=init".to_owned(), vec!["c2"]),
        ("/v1/tenants/a/runs?mode=normal&trigger=api".to_owned(), vec!["c3"]),
        ("/v1/runs?integration=crm-sync".to_owned(), vec!["b1", "c3", "c2", "c1"]),
        ("/v1/runs?trigger=schedule".to_owned(), vec!["b1", "c1"]),
        (format!("/v1/runs?job={}", w.other), vec!["b1"]),
    ] {
        assert_eq!(w.ids(&path).await, want, "{path}");
    }
}

#[tokio::test]
async fn a_time_window_keeps_runs_created_since_and_before_until() {
    let w = World::new().await;
    for m in 0..6 {
        w.seed(seeded("a", &w.crm1, &format!("r{m}"), m, "succeeded", "normal", "schedule")).await;
    }
    let (since, until) = (at(2).to_rfc3339(), at(4).to_rfc3339());
    let window = format!("since={since}&until={until}").replace('+', "%2B");
    for base in ["/v1/tenants/a/runs", "/v1/runs", &format!("/v1/tenants/a/runs?job={}", w.crm1)] {
        let sep = if base.contains('?') { '&' } else { '?' };
        assert_eq!(w.ids(&format!("{base}{sep}{window}")).await, ["r3", "r2"], "{base}: since is inclusive, until not");
        let since_only = format!("{base}{sep}since={}", at(4).to_rfc3339()).replace('+', "%2B");
        assert_eq!(w.ids(&since_only).await, ["r5", "r4"], "{base}");
        // Another offset names the same instant.
        let until_only = format!("{base}{sep}until=2024-05-01T11:02:00%2B02:00");
        assert_eq!(w.ids(&until_only).await, ["r1", "r0"], "{base}");
    }
}

#[tokio::test]
async fn pages_follow_the_cursor_to_every_run_once() {
    let w = World::new().await;
    let mut ops = Vec::new();
    for m in 0..7 {
        ops.push(seeded(
            "a",
            if m % 2 == 0 { &w.crm1 } else { &w.crm2 },
            &format!("r{m}"),
            m,
            "succeeded",
            "normal",
            "api",
        ));
    }
    w.app.hub.store.write(ops).await.expect("seed");
    let first = w.list("/v1/tenants/a/runs?limit=3").await;
    assert_eq!(first["items"].as_array().map(Vec::len), Some(3));
    assert!(first["next_cursor"].is_string());
    assert_eq!(w.ids("/v1/tenants/a/runs?limit=3").await, ["r6", "r5", "r4", "r3", "r2", "r1", "r0"]);
    assert_eq!(w.ids("/v1/runs?limit=2").await, ["r6", "r5", "r4", "r3", "r2", "r1", "r0"]);
    assert_eq!(w.ids(&format!("/v1/tenants/a/runs?limit=1&job={}", w.crm2)).await, ["r5", "r3", "r1"]);
}

#[tokio::test]
async fn a_selective_filter_ends_a_page_at_its_read_bound_and_the_cursor_continues_the_scan() {
    use ferry_service::activity::{SCAN_PAGE, SCAN_READS};
    let w = World::new().await;
    // One failed run under more successful ones than one page may read.
    let successes = SCAN_READS * SCAN_PAGE as usize + 50;
    w.seed(seeded("a", &w.crm1, "failed-one", 0, "failed_timeout", "normal", "schedule")).await;
    let ops: Vec<WriteOp> = (1..=successes)
        .map(|i| seeded("a", &w.crm1, &format!("ok-{i}"), i as i64, "succeeded", "normal", "schedule"))
        .collect();
    for chunk in ops.chunks(100) {
        w.app.hub.store.write(chunk.to_vec()).await.expect("seed");
    }
    for path in ["/v1/tenants/a/runs?status=failed", "/v1/runs?status=failed"] {
        let first = w.list(path).await;
        assert_eq!(first["items"], json!([]), "{path}: the first page stops at its read bound, short of the failure");
        assert!(first["next_cursor"].is_string(), "{path}: and says where to continue");
        assert_eq!(w.ids(path).await, ["failed-one"], "{path}");
    }
}

#[tokio::test]
async fn bad_filter_values_are_refused_naming_the_parameter() {
    let w = World::new().await;
    for (query, parameter) in [
        ("status=done", "status"),
        ("status=failed,nope", "status"),
        ("mode=fast", "mode"),
        ("trigger=cron", "trigger"),
        ("since=yesterday", "since"),
        ("until=2024-05-01", "until"),
        ("since=2024-05-02T00:00:00Z&until=2024-05-01T00:00:00Z", "since"),
        ("job=JOB%23x", "job"),
    ] {
        for base in ["/v1/tenants/a/runs", "/v1/runs"] {
            let r = w.app.admin(Method::GET, &format!("{base}?{query}"), None).await;
            assert_eq!(
                (r.status, r.code()),
                (StatusCode::BAD_REQUEST, "invalid_filter".to_owned()),
                "{query}: {}",
                r.text()
            );
            let message = r.json()["error"]["message"].as_str().unwrap_or_default().to_owned();
            assert!(message.starts_with(&format!("{parameter}:")), "{query}: {message}");
        }
    }
    let r = w.app.admin(Method::GET, "/v1/tenants/a/runs?state=failed", None).await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "invalid_query".to_owned()), "{}", r.text());
    let r = w.app.admin(Method::GET, "/v1/tenants/a/runs?limit=0", None).await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "invalid_limit".to_owned()), "{}", r.text());
}

#[tokio::test]
async fn a_tenant_key_cannot_read_the_platform_activity() {
    let w = World::new().await;
    w.seed(seeded("a", &w.crm1, "r1", 1, "succeeded", "normal", "schedule")).await;
    let (key, _) = w.app.tenant_key("a").await;
    let (user, _) = w.app.member("ann@a.example", &["a"]).await;
    for token in [&key, &user] {
        let r = w.app.call(Method::GET, "/v1/runs", Some(token), None).await;
        assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "forbidden".to_owned()), "{}", r.text());
        assert!(!r.text().contains("r1"));
        // Their own tenant's activity is theirs to read.
        let r = w.app.call(Method::GET, "/v1/tenants/a/runs", Some(token), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(r.json()["items"][0]["id"], "r1");
    }
}

#[tokio::test]
async fn a_tenants_activity_shows_nothing_of_another_tenant() {
    let w = World::new().await;
    w.seed(seeded("a", &w.crm1, "ra1", 1, "succeeded", "normal", "schedule")).await;
    w.seed(seeded("a", &w.crm1, "ra2", 2, "succeeded", "normal", "schedule")).await;
    w.seed(seeded("b", &w.other, "rb1", 3, "succeeded", "normal", "schedule")).await;
    let (key_b, _) = w.app.tenant_key("b").await;
    let r = w.app.call(Method::GET, "/v1/tenants/a/runs", Some(&key_b), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    // Naming tenant a's job in tenant b's activity finds none of its runs.
    let r = w.app.call(Method::GET, &format!("/v1/tenants/b/runs?job={}", w.crm1), Some(&key_b), None).await;
    assert_eq!((r.status, r.json()["items"].clone()), (StatusCode::OK, json!([])), "{}", r.text());
    // A cursor of tenant a's activity does not page tenant b's, nor the reverse.
    let a_page = w.list("/v1/tenants/a/runs?limit=1").await;
    let cursor = a_page["next_cursor"].as_str().expect("a cursor");
    let r = w.app.call(Method::GET, &format!("/v1/tenants/b/runs?cursor={cursor}"), Some(&key_b), None).await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "invalid_cursor".to_owned()), "{}", r.text());
    assert_eq!(w.ids("/v1/tenants/b/runs").await, ["rb1"]);
}

#[tokio::test]
async fn activity_reads_dynamodbs_indexes_as_it_reads_sqlites() {
    let Some(store) = aws::dynamo_store().await else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let secrets = FileSecretStore::open(dir.path()).expect("secrets");
    let w = World::on(TestApp::with_hub(Hub::new(Arc::new(store), Arc::new(secrets)), dir).await).await;
    for (i, status) in ALL_STATUSES.iter().enumerate() {
        let job = if i % 2 == 0 { &w.crm1 } else { &w.shop };
        w.seed(seeded("a", job, &format!("r{i}"), i as i64, status, "normal", "schedule")).await;
    }
    w.seed(seeded("b", &w.other, "rb", 20, "failed_platform", "normal", "api")).await;
    // DynamoDB's indexes may lag a write; moto's do not, but wait as for the real one.
    for _ in 0..50 {
        if w.ids("/v1/runs").await.len() == ALL_STATUSES.len() + 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(w.ids("/v1/tenants/a/runs?limit=3").await, ["r9", "r8", "r7", "r6", "r5", "r4", "r3", "r2", "r1", "r0"]);
    assert_eq!(w.ids("/v1/tenants/a/runs?status=failed").await, ["r8", "r7", "r6", "r5"]);
    assert_eq!(w.ids("/v1/runs?status=failed&limit=2").await, ["rb", "r8", "r7", "r6", "r5"]);
    let window = format!("since={}&until={}", at(2).to_rfc3339(), at(5).to_rfc3339()).replace('+', "%2B");
    assert_eq!(w.ids(&format!("/v1/runs?{window}")).await, ["r4", "r3", "r2"]);
    assert_eq!(w.ids(&format!("/v1/tenants/a/runs?job={}&{window}", w.shop)).await, ["r3"]);
    assert_eq!(w.ids("/v1/tenants/a/runs?integration=shop-orders").await, ["r9", "r7", "r5", "r3", "r1"]);
}
