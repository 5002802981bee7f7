//! The event port over the wire: the EventBridge adapter against moto, and the
//! in-process bus. Events must arrive on the deployment's bus in a shape rules
//! can match on (`source` `ferry`, `detail-type` the event type, the event as
//! the detail), in batches of any size.

use chrono::Utc;
use ferry_aws::EventBridgeBus;
use ferry_core::ports::events::{Event, EventBus, EventKind};
use ferry_embedded::InProcessBus;
use ferry_lambda::hub::eventbridge_client;
use serde_json::json;

use crate::support::aws::{error_chain, sdk_config, unique_name};

fn event(n: usize, kind: EventKind, tenant: &str) -> Event {
    Event {
        id: format!("ev{n:04}"),
        kind,
        tenant: Some(tenant.to_owned()),
        at: Utc::now(),
        data: json!({"job": "j1", "run": format!("r{n}")}),
    }
}

#[tokio::test]
async fn eventbridge_delivers_every_event_to_rules_matching_type_and_tenant() {
    let Some(config) = sdk_config().await else { return };
    let client = eventbridge_client(&config);
    let bus_name = unique_name("ferry-test");
    let bus_arn = client.create_event_bus().name(&bus_name).send().await.expect("create bus").event_bus_arn;
    let bus_arn = bus_arn.expect("bus arn");
    // An archive is a rule with a pattern on the bus: it counts what the pattern matches.
    let archive = |name: &str, pattern: serde_json::Value| {
        let client = client.clone();
        let (name, bus_arn) = (unique_name(name), bus_arn.clone());
        async move {
            client
                .create_archive()
                .archive_name(&name)
                .event_source_arn(bus_arn)
                .event_pattern(pattern.to_string())
                .send()
                .await
                .expect("create archive");
            name
        }
    };
    let all = archive("all", json!({"source": ["ferry"]})).await;
    let failed_a = archive("failed-a", json!({"detail-type": ["run_failed"], "detail": {"tenant": ["a"]}})).await;

    let bus = EventBridgeBus::new(client.clone(), &bus_name);
    // 23 events: three PutEvents calls (at most 10 entries each).
    let events: Vec<Event> = (0..23)
        .map(|n| match n % 3 {
            0 => event(n, EventKind::RunFailed, "a"),
            1 => event(n, EventKind::RunFailed, "b"),
            _ => event(n, EventKind::RunSucceeded, "a"),
        })
        .collect();
    if let Err(e) = bus.publish(&events).await {
        panic!("publish failed: {}", error_chain(&e));
    }
    let count = |name: String| {
        let client = client.clone();
        async move { client.describe_archive().archive_name(name).send().await.expect("describe archive").event_count }
    };
    assert_eq!(count(all).await, 23, "every event reaches the bus");
    assert_eq!(count(failed_a).await, 8, "rules match on detail-type and detail.tenant");
}

#[tokio::test]
async fn eventbridge_publishing_to_a_missing_bus_is_an_error() {
    let Some(config) = sdk_config().await else { return };
    let bus = EventBridgeBus::new(eventbridge_client(&config), unique_name("no-such-bus"));
    let r = bus.publish(&[event(1, EventKind::TenantCreated, "a")]).await;
    assert!(r.is_err(), "a missing bus must not look like a delivered event");
}

#[tokio::test]
async fn the_in_process_bus_hands_subscribers_every_event_in_order() {
    let bus = InProcessBus::default();
    let mut rx = bus.subscribe();
    let events: Vec<Event> = (0..3).map(|n| event(n, EventKind::JobCreated, "a")).collect();
    bus.publish(&events).await.expect("publish");
    bus.publish(&[event(3, EventKind::TenantArchived, "a")]).await.expect("publish");
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(rx.recv().await.expect("event").id);
    }
    assert_eq!(ids, ["ev0000", "ev0001", "ev0002", "ev0003"]);
}
