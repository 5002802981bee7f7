//! Scheduled runs end to end on the embedded scheduler: jobs keep the
//! scheduler in step, ticks start runs through the run lease (once per tick,
//! bundled while a run is going), paused jobs and tenants fire nothing, and
//! resuming waits for the next anchored tick.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::http::{Method, StatusCode};
use chrono::{DateTime, Duration, TimeZone, Utc};
use ferry_core::model::RunStatus;
use ferry_core::ports::{DispatchError, ManualClock, RunDispatcher, RunRef, ScheduledTick, Scheduler};
use ferry_embedded::{EmbeddedScheduler, FileSecretStore, SqliteStore};
use ferry_engine::http::HttpPolicy;
use ferry_service::schedules::{self, Fired};
use ferry_service::Hub;
use ferry_service::Settings;
use serde_json::{json, Value};

use crate::support::app::{Response, TestApp};
use crate::support::manifests::CRM_SYNC;

/// Holds dispatched runs instead of executing them, as the AWS queue does, so
/// a run stays going until the test executes it.
#[derive(Default)]
struct Held(Mutex<Vec<RunRef>>);

#[async_trait]
impl RunDispatcher for Held {
    async fn dispatch(&self, run: &RunRef) -> Result<(), DispatchError> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(run.clone());
        Ok(())
    }
}

impl Held {
    fn take(&self) -> Vec<RunRef> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

struct Fixture {
    app: TestApp,
    clock: Arc<ManualClock>,
    scheduler: Arc<EmbeddedScheduler>,
    held: Arc<Held>,
    crm: String,
}

fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, h, m, 0).unwrap()
}

async fn fixture() -> Fixture {
    let clock = Arc::new(ManualClock::new(at(9, 58)));
    let scheduler = Arc::new(EmbeddedScheduler::new(clock.clone()));
    let held = Arc::new(Held::default());
    let (app, crm) = app_on(clock.clone(), scheduler.clone(), held.clone()).await;
    Fixture { app, clock, scheduler, held, crm }
}

/// A hub on SQLite whose jobs are scheduled by `scheduler`, with tenant `a`,
/// the `crm-sync` integration and a connection for it (returned).
async fn app_on(clock: Arc<ManualClock>, scheduler: Arc<dyn Scheduler>, held: Arc<Held>) -> (TestApp, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("ferry.db")).expect("sqlite");
    let secrets = FileSecretStore::open(dir.path()).expect("secrets");
    let hub = Hub::new(Arc::new(store), Arc::new(secrets))
        .with_clock(clock.clone())
        .with_dispatcher(held.clone())
        .with_scheduler(scheduler)
        // Runs reach a closed loopback port: fail at once instead of retrying.
        .with_settings(Settings {
            http: HttpPolicy { max_retries: 0, ..HttpPolicy::default() },
            ..Settings::default()
        });
    let app = TestApp::with_hub(hub, dir).await;
    app.tenant("a").await;
    app.publish(
        "crm-sync",
        &CRM_SYNC.replace("presets: [hourly, daily]", "presets: [every_15_minutes, hourly, daily]"),
    )
    .await;
    let crm = app.connection("a", "crm", "s3cret").await;
    (app, crm)
}

impl Fixture {
    async fn create(&self, tenant: &str, schedule: Value) -> Response {
        let body = json!({"name": format!("job-{}", rand::random::<u32>()), "integration": "crm-sync",
            "connections": {"crm": self.crm}, "configs": {"region": "eu"}, "schedule": schedule});
        self.app.admin(Method::POST, &format!("/v1/tenants/{tenant}/jobs"), Some(body)).await
    }
    async fn job(&self, schedule: Value) -> String {
        let r = self.create("a", schedule).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        r.json()["id"].as_str().expect("id").to_owned()
    }
    async fn patch_job(&self, id: &str, body: Value) -> Value {
        let r = self.app.admin(Method::PATCH, &format!("/v1/tenants/a/jobs/{id}"), Some(body)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        r.json()
    }
    async fn patch_tenant(&self, body: Value) {
        let r = self.app.admin(Method::PATCH, "/v1/tenants/a", Some(body)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    async fn runs(&self, job: &str) -> Vec<Value> {
        let r = self.app.admin(Method::GET, &format!("/v1/tenants/a/jobs/{job}/runs"), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        r.json()["items"].as_array().cloned().unwrap_or_default()
    }
    /// Moves the clock and fires whatever the embedded scheduler finds due.
    async fn advance_to(&self, t: DateTime<Utc>) -> Vec<(ScheduledTick, Fired)> {
        self.clock.set(t);
        ferry::ticks::fire_due(&self.app.hub, &self.scheduler)
            .await
            .into_iter()
            .map(|(tick, fired)| (tick, fired.expect("fired")))
            .collect()
    }
    fn tick(&self, job: &str, t: DateTime<Utc>) -> ScheduledTick {
        ScheduledTick { tenant: "a".into(), job: job.into(), tick: t }
    }
}

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[tokio::test]
async fn a_duplicate_delivery_of_a_tick_starts_one_run() {
    let f = fixture().await;
    let job = f.job(json!({"preset": "hourly"})).await;
    f.clock.set(at(10, 0) + Duration::seconds(3));
    let tick = f.tick(&job, at(10, 0));
    // Twice in a row and twice at once, as at-least-once delivery may do.
    let first = schedules::fire(&f.app.hub, &tick).await.expect("first");
    let second = schedules::fire(&f.app.hub, &tick).await.expect("second");
    let (third, fourth) = tokio::join!(schedules::fire(&f.app.hub, &tick), schedules::fire(&f.app.hub, &tick));
    assert!(matches!(first, Fired::Started { .. }), "{first:?}");
    for other in [second, third.expect("third"), fourth.expect("fourth")] {
        assert!(matches!(other, Fired::Duplicate), "{other:?}");
    }
    let runs = f.runs(&job).await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["triggers"][0]["source"], "schedule");
    assert_eq!(runs[0]["triggers"][0]["tick"], rfc(at(10, 0)));
    assert_eq!(f.held.take().len(), 1, "one run dispatched");
    // A straggler from before the last tick taken starts nothing either.
    let late = schedules::fire(&f.app.hub, &f.tick(&job, at(9, 0))).await.expect("late");
    assert!(matches!(late, Fired::Duplicate), "{late:?}");
}

#[tokio::test]
async fn a_tick_during_a_run_is_bundled_into_the_next_run() {
    let f = fixture().await;
    let job = f.job(json!({"preset": "every_15_minutes"})).await;
    // The 10:00 tick is delivered at 10:05; its run holds the job's lease until it ends.
    let fired = f.advance_to(at(10, 5)).await;
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].0.tick, at(10, 0));
    let Fired::Started { run: first } = &fired[0].1 else { panic!("{fired:?}") };
    // The run is still going (held) when the next tick comes: bundled, not queued twice.
    let fired = f.advance_to(at(10, 15)).await;
    assert!(matches!(&fired[0].1, Fired::Bundled { run } if run == first), "{fired:?}");
    let again = schedules::fire(&f.app.hub, &f.tick(&job, at(10, 15))).await.expect("duplicate");
    assert!(matches!(again, Fired::Duplicate), "a duplicate of a bundled tick is not bundled twice: {again:?}");
    assert_eq!(f.runs(&job).await.len(), 1);
    // When the run ends, the bundled tick becomes the next run.
    let dispatched = f.held.take();
    assert_eq!(dispatched.len(), 1);
    f.app.hub.execute_dispatched(&dispatched[0]).await.expect("execute");
    let runs = f.runs(&job).await;
    assert_eq!(runs.len(), 2, "{runs:?}");
    let next = &runs[0];
    assert_eq!(next["triggers"].as_array().map(Vec::len), Some(1));
    assert_eq!(next["triggers"][0]["tick"], rfc(at(10, 15)));
    let finished = f.app.hub.runs().get_run("a", &job, first).await.expect("run");
    assert!(finished.status.is_finished() && finished.status != RunStatus::Queued);
}

#[tokio::test]
async fn a_paused_tenant_fires_nothing_and_manual_runs_still_work() {
    let f = fixture().await;
    let job = f.job(json!({"preset": "hourly"})).await;
    f.patch_tenant(json!({"paused": true})).await;
    let installed = f.scheduler.get("a", &job).await.expect("get").expect("installed");
    assert!(!installed.enabled, "the tenant's schedules are disabled");
    assert!(f.advance_to(at(10, 0)).await.is_empty());
    assert!(f.advance_to(at(13, 0)).await.is_empty());
    // A tick already on its way when the tenant was paused starts nothing.
    let fired = schedules::fire(&f.app.hub, &f.tick(&job, at(13, 0))).await.expect("fire");
    assert!(matches!(&fired, Fired::Skipped { reason } if reason.contains("tenant")), "{fired:?}");
    assert!(f.runs(&job).await.is_empty());
    assert_eq!(
        f.app.admin(Method::GET, &format!("/v1/tenants/a/jobs/{job}"), None).await.json()["next_runs"],
        json!([])
    );
    let r = f.app.admin(Method::POST, &format!("/v1/tenants/a/jobs/{job}/runs"), Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
}

#[tokio::test]
async fn a_paused_job_fires_nothing() {
    let f = fixture().await;
    let job = f.job(json!({"preset": "hourly"})).await;
    let other = f.job(json!({"preset": "hourly"})).await;
    f.patch_job(&job, json!({"paused": true})).await;
    let fired = f.advance_to(at(10, 0)).await;
    let jobs: Vec<&str> = fired.iter().map(|(t, _)| t.job.as_str()).collect();
    assert_eq!(jobs, [other.as_str()], "only the running job fires");
    let late = schedules::fire(&f.app.hub, &f.tick(&job, at(10, 0))).await.expect("fire");
    assert!(matches!(&late, Fired::Skipped { reason } if reason.contains("job is paused")), "{late:?}");
    assert!(f.runs(&job).await.is_empty());
}

#[tokio::test]
async fn resuming_waits_for_the_next_anchored_tick_without_a_burst() {
    let f = fixture().await;
    let job = f.job(json!({"preset": "every_15_minutes"})).await;
    f.clock.set(at(10, 1));
    f.patch_job(&job, json!({"paused": true})).await;
    f.patch_tenant(json!({"paused": true})).await;
    // Eight ticks pass while paused.
    assert!(f.advance_to(at(12, 7)).await.is_empty());
    f.patch_tenant(json!({"paused": false})).await;
    assert!(f.advance_to(at(12, 8)).await.is_empty(), "the job itself is still paused");
    let view = f.patch_job(&job, json!({"paused": false})).await;
    assert_eq!(view["next_runs"][0], rfc(at(12, 15)), "{view}");
    assert!(f.advance_to(at(12, 9)).await.is_empty(), "no missed tick is replayed");
    assert_eq!(f.scheduler.next_of("a", &job), Some(at(12, 15)));
    let fired = f.advance_to(at(12, 15)).await;
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(fired[0].0.tick, at(12, 15));
    assert_eq!(f.runs(&job).await.len(), 1);
}

#[tokio::test]
async fn a_host_that_was_down_skips_missed_ticks_and_fires_one_late_tick_once() {
    let f = fixture().await;
    let job = f.job(json!({"preset": "every_15_minutes"})).await;
    // The host was asleep from 09:58 to 11:20: one tick (the earliest missed) fires, then 11:30.
    let fired = f.advance_to(at(11, 20)).await;
    assert_eq!(fired.iter().map(|(t, _)| t.tick).collect::<Vec<_>>(), [at(10, 0)]);
    assert_eq!(f.scheduler.next_of("a", &job), Some(at(11, 30)));
    // A restart rebuilds the queue from the store: next fire times from now on.
    let rebuilt = Arc::new(EmbeddedScheduler::new(f.clock.clone()));
    let hub = f.app.hub.clone().with_scheduler(rebuilt.clone());
    f.clock.set(at(12, 31));
    let report = hub.jobs().reconcile_schedules(false).await.expect("reconcile");
    assert_eq!(report.created, [format!("a/{job}")]);
    assert_eq!(rebuilt.next_of("a", &job), Some(at(12, 45)));
    assert!(rebuilt.due(at(12, 31)).is_empty());
}

#[tokio::test]
async fn job_writes_keep_the_scheduler_in_step() {
    let f = fixture().await;
    job_writes_keep(&f, f.scheduler.as_ref()).await;
}

/// The same on AWS: every job write reaches EventBridge Scheduler (moto).
#[tokio::test]
async fn job_and_tenant_writes_keep_eventbridge_scheduler_in_step() {
    let Some(eventbridge) = crate::support::aws::eventbridge_scheduler().await else { return };
    let eventbridge = Arc::new(eventbridge);
    let clock = Arc::new(ManualClock::new(at(9, 58)));
    let held = Arc::new(Held::default());
    let (app, crm) = app_on(clock.clone(), eventbridge.clone(), held.clone()).await;
    let scheduler = Arc::new(EmbeddedScheduler::new(clock.clone()));
    let f = Fixture { app, clock, scheduler, held, crm };
    job_writes_keep(&f, eventbridge.as_ref()).await;
    // Pausing the tenant disables its jobs' schedules; resuming enables them.
    let job = f.job(json!({"cron": "0 9 * * 1-5", "timezone": "America/New_York"})).await;
    let got = eventbridge.get("a", &job).await.expect("get").expect("installed");
    assert_eq!((got.expression.as_str(), got.timezone.as_str()), ("cron(0 9 ? * MON-FRI *)", "America/New_York"));
    f.patch_tenant(json!({"paused": true})).await;
    assert!(!eventbridge.get("a", &job).await.expect("get").expect("installed").enabled);
    f.patch_tenant(json!({"paused": false})).await;
    assert!(eventbridge.get("a", &job).await.expect("get").expect("installed").enabled);
}

async fn job_writes_keep(f: &Fixture, scheduler: &dyn Scheduler) {
    let job = f.job(json!({"preset": "hourly"})).await;
    let got = scheduler.get("a", &job).await.expect("get").expect("installed");
    assert_eq!((got.expression.as_str(), got.enabled), ("cron(0 * * * ? *)", true));
    f.patch_job(&job, json!({"schedule": {"preset": "daily", "at": "06:30", "timezone": "Europe/Paris"}})).await;
    let got = scheduler.get("a", &job).await.expect("get").expect("installed");
    assert_eq!((got.expression.as_str(), got.timezone.as_str()), ("cron(30 6 * * ? *)", "Europe/Paris"));
    f.patch_job(&job, json!({"paused": true})).await;
    assert!(!scheduler.get("a", &job).await.expect("get").expect("installed").enabled);
    f.patch_job(&job, json!({"paused": false})).await;
    assert!(scheduler.get("a", &job).await.expect("get").expect("installed").enabled);
    f.patch_job(&job, json!({"schedule": null})).await;
    assert_eq!(scheduler.get("a", &job).await.expect("get"), None, "no schedule, no scheduler entry");
    f.patch_job(&job, json!({"schedule": {"preset": "hourly"}})).await;
    let r = f.app.admin(Method::DELETE, &format!("/v1/tenants/a/jobs/{job}"), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(scheduler.get("a", &job).await.expect("get"), None);
}

#[tokio::test]
async fn reconcile_repairs_drift_between_store_and_scheduler() {
    let f = fixture().await;
    let kept = f.job(json!({"preset": "hourly"})).await;
    let lost = f.job(json!({"preset": "daily", "at": "05:00"})).await;
    let stale = f.job(json!({"preset": "hourly"})).await;
    f.scheduler.remove("a", &lost).await.expect("remove");
    let wrong = ferry_core::ports::JobSchedule {
        tenant: "a".into(),
        job: stale.clone(),
        plan: Arc::new(
            ferry_core::schedule::Plan::compile(
                &serde_json::from_value(json!({"preset": "every_15_minutes"})).unwrap(),
            )
            .unwrap(),
        ),
        enabled: false,
    };
    f.scheduler.put(&wrong).await.expect("put");
    let orphan = ferry_core::ports::JobSchedule { job: "deleted-job".into(), ..wrong.clone() };
    f.scheduler.put(&orphan).await.expect("put");
    let dry = f.app.hub.jobs().reconcile_schedules(true).await.expect("dry run");
    assert_eq!((dry.created.len(), dry.updated.len(), dry.removed.len()), (1, 1, 1));
    assert!(f.scheduler.get("a", &lost).await.expect("get").is_none(), "a dry run changes nothing");
    let report = f.app.hub.jobs().reconcile_schedules(false).await.expect("reconcile");
    assert_eq!(report.created, [format!("a/{lost}")]);
    assert_eq!(report.updated, [format!("a/{stale}")]);
    assert_eq!(report.removed, ["a/deleted-job".to_owned()]);
    assert_eq!(report.unchanged, 1);
    let again = f.app.hub.jobs().reconcile_schedules(false).await.expect("reconcile");
    assert_eq!((again.created.len(), again.updated.len(), again.removed.len(), again.unchanged), (0, 0, 0, 3));
    let _ = kept;
}

#[tokio::test]
async fn the_api_shows_the_schedule_in_words_and_the_next_five_fire_times() {
    let f = fixture().await;
    let r = f.create("a", json!({"preset": "daily", "at": "09:00", "timezone": "Europe/Paris"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let j = r.json();
    assert_eq!(j["schedule_text"], "daily at 09:00, Europe/Paris time");
    let want: Vec<String> = (2..=6).map(|d| rfc(Utc.with_ymd_and_hms(2024, 5, d, 7, 0, 0).unwrap())).collect();
    assert_eq!(j["next_runs"], json!(want), "09:00 CEST, from the schedule");
    let id = j["id"].as_str().expect("id");
    // Runs do not move fire times: they follow the schedule, not the last run.
    f.clock.set(at(7, 0) + Duration::minutes(37));
    let r = f.app.admin(Method::POST, &format!("/v1/tenants/a/jobs/{id}/runs"), Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let j = f.app.admin(Method::GET, &format!("/v1/tenants/a/jobs/{id}"), None).await.json();
    assert_eq!(j["next_runs"][0], rfc(Utc.with_ymd_and_hms(2024, 5, 2, 7, 0, 0).unwrap()));
    let list = f.app.admin(Method::GET, "/v1/tenants/a/jobs", None).await.json();
    assert_eq!(list["items"][0]["schedule_text"], "daily at 09:00, Europe/Paris time");
}

#[tokio::test]
async fn bad_schedules_are_refused_with_a_message_naming_the_problem() {
    let f = fixture().await;
    let cases = [
        (json!({"cron": "0 25 * * *"}), "25"),
        (json!({"cron": "*/5 * * *"}), "needs 5"),
        (json!({"cron": "0 9 * * *", "timezone": "Europe/Atlantis"}), "unknown timezone `Europe/Atlantis`"),
        (json!({"preset": "every_5_minutes"}), "preset `every_5_minutes` is not offered by integration 'crm-sync'"),
        (json!({"preset": "daily", "at": "9am"}), "HH:MM"),
    ];
    for (schedule, fragment) in cases {
        let r = f.create("a", schedule.clone()).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::BAD_REQUEST, "invalid_schedule".to_owned()),
            "{schedule}: {}",
            r.text()
        );
        let message = r.json()["error"]["message"].as_str().unwrap_or_default().to_owned();
        assert!(message.contains(fragment), "{schedule}: {message}");
    }
    // The same checks guard updates.
    let job = f.job(json!({"preset": "hourly"})).await;
    let r = f
        .app
        .admin(Method::PATCH, &format!("/v1/tenants/a/jobs/{job}"), Some(json!({"schedule": {"cron": "0 0 31 2 *"}})))
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "invalid_schedule".to_owned()), "{}", r.text());
    assert!(r.text().contains("never fires"), "{}", r.text());
    let r = f
        .app
        .admin(
            Method::PATCH,
            &format!("/v1/tenants/a/jobs/{job}"),
            Some(json!({"schedule": {"preset": "hourly", "timezone": "utc+2"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(r.text().contains("unknown timezone `utc+2`"), "{}", r.text());
}

/// The loop `ferry up` runs: it wakes on schedule changes and fires what is
/// due through the same path as the sync function, until shut down.
#[tokio::test]
async fn the_embedded_loop_fires_due_ticks_and_stops_on_shutdown() {
    let f = fixture().await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(ferry::ticks::run_embedded(f.app.hub.clone(), f.scheduler.clone(), async {
        let _ = stopped.await;
    }));
    let job = f.job(json!({"preset": "every_15_minutes"})).await;
    f.clock.set(at(10, 0) + Duration::seconds(1));
    // Any schedule change wakes the loop, which then finds the 10:00 tick due.
    let _other = f.job(json!({"preset": "daily", "at": "05:00"})).await;
    let mut runs = Vec::new();
    for _ in 0..250 {
        runs = f.runs(&job).await;
        if !runs.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["triggers"][0]["tick"], rfc(at(10, 0)));
    let _ = stop.send(());
    tokio::time::timeout(std::time::Duration::from_secs(5), running).await.expect("the loop stops").expect("join");
}
