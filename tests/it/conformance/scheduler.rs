//! The [`Scheduler`] contract, written once and run against both adapters:
//! the embedded priority queue and EventBridge Scheduler (over moto).

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use ferry_core::manifest::Schedule;
use ferry_core::ports::{Installed, JobSchedule, ManualClock, Scheduler};
use ferry_core::schedule::Plan;
use ferry_embedded::EmbeddedScheduler;
use serde_json::{json, Value};

use crate::support::aws;

fn schedule(tenant: &str, job: &str, s: Value, enabled: bool) -> JobSchedule {
    let s: Schedule = serde_json::from_value(s).expect("schedule");
    JobSchedule { tenant: tenant.into(), job: job.into(), plan: Arc::new(Plan::compile(&s).expect("plan")), enabled }
}

async fn put(s: &dyn Scheduler, js: &JobSchedule) {
    if let Err(e) = s.put(js).await {
        panic!("put {}/{} on {}: {}", js.tenant, js.job, s.backend_name(), aws::error_chain(&e));
    }
}

async fn get(s: &dyn Scheduler, tenant: &str, job: &str) -> Option<Installed> {
    match s.get(tenant, job).await {
        Ok(i) => i,
        Err(e) => panic!("get {tenant}/{job} on {}: {}", s.backend_name(), aws::error_chain(&e)),
    }
}

async fn remove(s: &dyn Scheduler, tenant: &str, job: &str) {
    if let Err(e) = s.remove(tenant, job).await {
        panic!("remove {tenant}/{job} on {}: {}", s.backend_name(), aws::error_chain(&e));
    }
}

async fn list(s: &dyn Scheduler) -> Vec<Installed> {
    match s.list().await {
        Ok(l) => l,
        Err(e) => panic!("list on {}: {}", s.backend_name(), aws::error_chain(&e)),
    }
}

pub async fn put_then_get_reports_the_expression(s: &dyn Scheduler) {
    assert!(!s.backend_name().is_empty());
    let js = schedule("acme", "job-1", json!({"preset": "hourly"}), true);
    put(s, &js).await;
    let got = get(s, "acme", "job-1").await;
    assert_eq!(
        got,
        Some(Installed {
            tenant: "acme".into(),
            job: "job-1".into(),
            expression: "cron(0 * * * ? *)".into(),
            timezone: "UTC".into(),
            enabled: true
        })
    );
}

pub async fn put_replaces_schedule_timezone_and_state(s: &dyn Scheduler) {
    put(s, &schedule("acme", "job-1", json!({"preset": "hourly"}), true)).await;
    let paused =
        schedule("acme", "job-1", json!({"preset": "daily", "at": "06:30", "timezone": "Europe/Paris"}), false);
    put(s, &paused).await;
    assert_eq!(get(s, "acme", "job-1").await, Some(paused.installed()));
    let resumed = schedule("acme", "job-1", json!({"cron": "0 9 * * 1-5", "timezone": "America/New_York"}), true);
    put(s, &resumed).await;
    let got = get(s, "acme", "job-1").await.expect("installed");
    assert_eq!(
        (got.expression.as_str(), got.timezone.as_str(), got.enabled),
        ("cron(0 9 ? * MON-FRI *)", "America/New_York", true)
    );
}

pub async fn get_missing_is_none(s: &dyn Scheduler) {
    assert_eq!(get(s, "acme", "never").await, None);
    put(s, &schedule("acme", "job-1", json!({"preset": "hourly"}), true)).await;
    assert_eq!(get(s, "acme", "never").await, None);
    assert_eq!(get(s, "other", "job-1").await, None);
}

pub async fn remove_is_idempotent(s: &dyn Scheduler) {
    put(s, &schedule("acme", "job-1", json!({"preset": "hourly"}), true)).await;
    remove(s, "acme", "job-1").await;
    assert_eq!(get(s, "acme", "job-1").await, None);
    remove(s, "acme", "job-1").await;
    remove(s, "nobody", "nothing").await;
    // Put again after removal re-creates it.
    put(s, &schedule("acme", "job-1", json!({"preset": "every_5_minutes"}), true)).await;
    assert_eq!(get(s, "acme", "job-1").await.map(|i| i.expression), Some("cron(0/5 * * * ? *)".to_owned()));
}

pub async fn list_spans_tenants_and_tenants_are_isolated(s: &dyn Scheduler) {
    let a = schedule("acme", "same-id", json!({"preset": "hourly"}), true);
    let b = schedule("globex", "same-id", json!({"preset": "daily", "at": "01:00"}), false);
    let c = schedule("globex", "other", json!({"preset": "every_4_hours", "timezone": "Asia/Kolkata"}), true);
    for js in [&a, &b, &c] {
        put(s, js).await;
    }
    let mut want = vec![a.installed(), b.installed(), c.installed()];
    want.sort();
    assert_eq!(list(s).await, want);
    remove(s, "globex", "same-id").await;
    assert_eq!(get(s, "acme", "same-id").await, Some(a.installed()), "removing one tenant's job leaves the other's");
    assert_eq!(list(s).await.len(), 2);
}

pub async fn long_tenant_ids_get_distinct_addresses(s: &dyn Scheduler) {
    let long_a = format!("{}a", "t".repeat(63));
    let long_b = format!("{}b", "t".repeat(63));
    let a = schedule(&long_a, "job", json!({"preset": "hourly"}), true);
    let b = schedule(&long_b, "job", json!({"preset": "every_2_hours"}), true);
    put(s, &a).await;
    put(s, &b).await;
    assert_eq!(get(s, &long_a, "job").await, Some(a.installed()));
    assert_eq!(get(s, &long_b, "job").await, Some(b.installed()));
    let tenants: Vec<String> = list(s).await.into_iter().map(|i| i.tenant).collect();
    assert_eq!(tenants, [long_a, long_b]);
}

fn embedded() -> EmbeddedScheduler {
    EmbeddedScheduler::new(Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap())))
}

macro_rules! scheduler_suite {
    ($($suite:ident => $embedded:ident, $eventbridge:ident;)*) => {
        $(
            #[tokio::test]
            async fn $embedded() {
                $suite(&embedded()).await;
            }

            #[tokio::test]
            async fn $eventbridge() {
                let Some(s) = aws::eventbridge_scheduler().await else { return };
                $suite(&s).await;
            }
        )*
    };
}

scheduler_suite! {
    put_then_get_reports_the_expression =>
        embedded_put_then_get_reports_the_expression, eventbridge_put_then_get_reports_the_expression;
    put_replaces_schedule_timezone_and_state =>
        embedded_put_replaces_schedule_timezone_and_state, eventbridge_put_replaces_schedule_timezone_and_state;
    get_missing_is_none => embedded_get_missing_is_none, eventbridge_get_missing_is_none;
    remove_is_idempotent => embedded_remove_is_idempotent, eventbridge_remove_is_idempotent;
    list_spans_tenants_and_tenants_are_isolated =>
        embedded_list_spans_tenants_and_tenants_are_isolated, eventbridge_list_spans_tenants_and_tenants_are_isolated;
    long_tenant_ids_get_distinct_addresses =>
        embedded_long_tenant_ids_get_distinct_addresses, eventbridge_long_tenant_ids_get_distinct_addresses;
}

/// What EventBridge Scheduler actually holds: one group per tenant, the flexible
/// window off, the sync function as target with the tick placeholder, DISABLED when paused.
#[tokio::test]
async fn eventbridge_schedules_target_the_sync_function_with_the_tick() {
    let Some(s) = aws::eventbridge_scheduler().await else { return };
    let Some(client) = aws::scheduler_client().await else { return };
    put(&s, &schedule("acme", "job-1", json!({"preset": "daily", "at": "06:30", "timezone": "Europe/Paris"}), false))
        .await;
    let group = s.group_name("acme").expect("group");
    let out = client.get_schedule().group_name(&group).name("job-1").send().await.expect("get_schedule");
    assert_eq!(out.group_name(), Some(group.as_str()));
    assert_eq!(out.schedule_expression(), Some("cron(30 6 * * ? *)"));
    assert_eq!(out.schedule_expression_timezone(), Some("Europe/Paris"));
    assert_eq!(out.state(), Some(&aws_sdk_scheduler::types::ScheduleState::Disabled));
    assert_eq!(
        out.flexible_time_window().map(|w| w.mode()),
        Some(&aws_sdk_scheduler::types::FlexibleTimeWindowMode::Off)
    );
    let target = out.target().expect("target");
    assert_eq!(target.arn(), "arn:aws:lambda:us-east-1:123456789012:function:ferry-sync");
    assert_eq!(target.role_arn(), "arn:aws:iam::123456789012:role/ferry-scheduler");
    let payload: Value = serde_json::from_str(target.input().expect("input")).expect("json payload");
    assert_eq!(payload, json!({"tenant": "acme", "job": "job-1", "tick": "<aws.scheduler.scheduled-time>"}));
    // The payload with the time EventBridge fills in is a tick the hub accepts.
    let delivered = target.input().expect("input").replace("<aws.scheduler.scheduled-time>", "2024-05-01T04:30:00Z");
    let tick: ferry_core::ports::ScheduledTick = serde_json::from_str(&delivered).expect("tick");
    assert_eq!(tick.tick, Utc.with_ymd_and_hms(2024, 5, 1, 4, 30, 0).unwrap());
}

#[tokio::test]
async fn eventbridge_refuses_ids_it_cannot_name() {
    let Some(s) = aws::eventbridge_scheduler().await else { return };
    let bad = schedule("acme", "job/../x", json!({"preset": "hourly"}), true);
    assert!(matches!(s.put(&bad).await, Err(ferry_core::ports::SchedulerError::InvalidName(_))));
    assert!(matches!(s.get("acme#1", "job").await, Err(ferry_core::ports::SchedulerError::InvalidName(_))));
}
