//! Outbound notifications against a local receiver that fails before it
//! succeeds: retried on the persisted schedule (a manual clock stands in for
//! hours), every attempt recorded, delivered once, signed per Standard
//! Webhooks; and endpoints disabled after repeated failure, with an event.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::routing::post;
use axum::Router;
use chrono::Utc;
use ferry_core::ports::{EventKind, ManualClock};
use ferry_embedded::InProcessBus;
use ferry_service::hooks::verify::{standard_key, standard_webhooks};
use ferry_service::notifications::{Notifier, BACKOFF, DISABLE_AFTER};
use ferry_service::Settings;
use serde_json::{json, Value};

use crate::support::app::TestApp;

/// What the receiver does with each request, in order; then it answers 200.
#[derive(Clone, Copy, Debug)]
enum Act {
    Status(u16),
    Hang,
}

/// (webhook-id, webhook-timestamp, webhook-signature, body, answered status)
type Delivery = (String, String, String, String, u16);

#[derive(Clone, Default)]
struct Receiver {
    script: Arc<Mutex<VecDeque<Act>>>,
    seen: Arc<Mutex<Vec<Delivery>>>,
    always: Option<u16>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: String) -> StatusCode {
    let act = r.script.lock().unwrap().pop_front();
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let status = match (act, r.always) {
        (Some(Act::Hang), _) => {
            r.seen.lock().unwrap().push((h("webhook-id"), h("webhook-timestamp"), h("webhook-signature"), body, 0));
            tokio::time::sleep(Duration::from_secs(5)).await;
            return StatusCode::OK;
        }
        (Some(Act::Status(s)), _) => s,
        (None, Some(s)) => s,
        (None, None) => 200,
    };
    r.seen.lock().unwrap().push((h("webhook-id"), h("webhook-timestamp"), h("webhook-signature"), body, status));
    StatusCode::from_u16(status).unwrap()
}

async fn start(receiver: Receiver) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = Router::new().route("/events", post(receive)).with_state(receiver);
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/events")
}

async fn world() -> (TestApp, Arc<ManualClock>, InProcessBus) {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let mut app = TestApp::embedded_with_clock(clock.clone(), Settings::default()).await;
    let bus = InProcessBus::default();
    app.hub = app.hub.clone().with_events(Arc::new(bus.clone()));
    app.router = ferry_http::api::router(app.hub.clone());
    app.tenant("a").await;
    (app, clock, bus)
}

#[tokio::test]
async fn failing_receivers_get_retried_on_schedule_until_delivered_once() {
    let (app, clock, _bus) = world().await;
    let receiver = Receiver::default();
    receiver.script.lock().unwrap().extend([Act::Status(500), Act::Status(429), Act::Hang]);
    let url = start(receiver.clone()).await;
    let r = app
        .admin(
            Method::POST,
            "/v1/tenants/a/notification-endpoints",
            Some(json!({"url": url, "events": ["run_failed"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let endpoint = r.json()["endpoint"]["id"].as_str().expect("id").to_owned();
    let secret = r.json()["secret"].as_str().expect("secret").to_owned();
    let listed = app.admin(Method::GET, "/v1/tenants/a/notification-endpoints", None).await;
    assert!(!listed.text().contains(&secret), "the secret is shown once");

    app.hub.notifications().emit(EventKind::JobCreated, Some("a"), json!({"job": "j1"})).await; // not subscribed
    app.hub.notifications().emit(EventKind::RunFailed, Some("a"), json!({"job": "j1", "run": "r1"})).await;
    let notifier = Notifier::new(Duration::from_millis(300)).expect("notifier");
    let notifications = app.hub.notifications();
    let deliver = || notifications.deliver_due_notifications(&notifier, 100);

    // 500, then 429, then a timeout: each retried after its backoff, not before.
    for (i, wait) in BACKOFF.iter().take(3).enumerate() {
        assert_eq!(deliver().await.expect("deliver"), 1, "attempt {}", i + 1);
        assert_eq!(deliver().await.expect("deliver"), 0, "nothing is due before the backoff");
        clock.advance(chrono::Duration::seconds(wait - 1));
        assert_eq!(deliver().await.expect("deliver"), 0, "still not due");
        clock.advance(chrono::Duration::seconds(1));
    }
    assert_eq!(deliver().await.expect("deliver"), 1, "fourth attempt");
    clock.advance(chrono::Duration::days(2));
    assert_eq!(deliver().await.expect("deliver"), 0, "delivered messages are not sent again");

    let seen = receiver.seen.lock().unwrap().clone();
    let statuses: Vec<u16> = seen.iter().map(|s| s.4).collect();
    assert_eq!(statuses, vec![500, 429, 0, 200]);
    let ids: Vec<&str> = seen.iter().map(|s| s.0.as_str()).collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "one message id across attempts: {ids:?}");
    let (id, ts, sig, body, _) = seen.last().expect("delivered");
    let key = standard_key(&secret);
    let now = ts.parse::<i64>().expect("ts");
    assert_eq!(standard_webhooks(&key, Some(id), Some(ts), Some(sig), body.as_bytes(), now, 300), Ok(()));
    let event: Value = serde_json::from_str(body).expect("json");
    assert_eq!((event["type"].clone(), event["tenant"].clone()), (json!("run_failed"), json!("a")));
    assert_eq!(event["data"]["run"], "r1");

    let r = app.admin(Method::GET, &format!("/v1/tenants/a/notification-endpoints/{endpoint}/attempts"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let attempts = r.json()["items"].as_array().cloned().expect("items");
    let mut summary: Vec<(u64, Value, Value, Value)> = attempts
        .iter()
        .map(|a| (a["number"].as_u64().unwrap(), a["status"].clone(), a["error"].clone(), a["outcome"].clone()))
        .collect();
    summary.sort_by_key(|s| s.0);
    assert_eq!(
        summary,
        vec![
            (1, json!(500), Value::Null, json!("retrying")),
            (2, json!(429), Value::Null, json!("retrying")),
            (3, Value::Null, json!("timed out"), json!("retrying")),
            (4, json!(200), Value::Null, json!("delivered")),
        ]
    );
}

#[tokio::test]
async fn client_errors_are_not_retried_and_repeated_failure_disables_the_endpoint_with_an_event() {
    let (app, clock, bus) = world().await;
    let mut events = bus.subscribe();
    let failing = Receiver { always: Some(503), ..Default::default() };
    let url = start(failing.clone()).await;
    let r = app.admin(Method::POST, "/v1/tenants/a/notification-endpoints", Some(json!({"url": url}))).await;
    let endpoint = r.json()["endpoint"]["id"].as_str().expect("id").to_owned();
    let platform_receiver = Receiver::default();
    let platform_url = start(platform_receiver.clone()).await;
    let r = app
        .admin(
            Method::POST,
            "/v1/notification-endpoints",
            Some(json!({"url": platform_url, "events": ["endpoint_disabled"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let notifier = Notifier::new(Duration::from_millis(300)).expect("notifier");

    for n in 0..DISABLE_AFTER {
        app.hub.notifications().emit(EventKind::RunFailed, Some("a"), json!({"run": format!("r{n}")})).await;
        for wait in BACKOFF {
            assert_eq!(app.hub.notifications().deliver_due_notifications(&notifier, 100).await.expect("deliver"), 1);
            clock.advance(chrono::Duration::seconds(wait));
        }
        assert_eq!(
            app.hub.notifications().deliver_due_notifications(&notifier, 100).await.expect("deliver"),
            1,
            "the last attempt"
        );
    }
    assert_eq!(failing.seen.lock().unwrap().len(), (BACKOFF.len() + 1) * DISABLE_AFTER as usize);
    let r = app.admin(Method::GET, "/v1/tenants/a/notification-endpoints", None).await;
    let ep = &r.json()["items"][0];
    assert_eq!(ep["enabled"], false, "{ep}");
    assert!(ep["disabled_reason"].as_str().is_some_and(|s| s.contains("in a row")));
    let mut kinds = Vec::new();
    while let Ok(e) = events.try_recv() {
        kinds.push(e.kind);
    }
    assert!(kinds.contains(&EventKind::EndpointDisabled), "{kinds:?}");
    // The platform endpoint hears about it.
    assert_eq!(app.hub.notifications().deliver_due_notifications(&notifier, 100).await.expect("deliver"), 1);
    assert!(platform_receiver.seen.lock().unwrap()[0].3.contains("endpoint_disabled"));

    // Disabled: new events are not queued for it. Re-enabled: they are.
    app.hub.notifications().emit(EventKind::RunFailed, Some("a"), json!({})).await;
    assert_eq!(app.hub.notifications().deliver_due_notifications(&notifier, 100).await.expect("deliver"), 0);
    let r = app.admin(Method::POST, &format!("/v1/tenants/a/notification-endpoints/{endpoint}/enable"), None).await;
    assert_eq!(r.json()["enabled"], true, "{}", r.text());

    // A 4xx other than 429 is the receiver refusing: recorded, not retried.
    let refusing = Receiver { always: Some(410), ..Default::default() };
    let url = start(refusing.clone()).await;
    let r = app
        .admin(
            Method::POST,
            "/v1/tenants/a/notification-endpoints",
            Some(json!({"url": url, "events": ["job_created"]})),
        )
        .await;
    let gone = r.json()["endpoint"]["id"].as_str().expect("id").to_owned();
    app.hub.notifications().emit(EventKind::JobCreated, Some("a"), json!({})).await;
    assert_eq!(
        app.hub.notifications().deliver_due_notifications(&notifier, 100).await.expect("deliver"),
        2,
        "the re-enabled one too"
    );
    clock.advance(chrono::Duration::days(2));
    app.hub.notifications().deliver_due_notifications(&notifier, 100).await.expect("deliver");
    assert_eq!(refusing.seen.lock().unwrap().len(), 1);
    let r = app.admin(Method::GET, &format!("/v1/tenants/a/notification-endpoints/{gone}/attempts"), None).await;
    assert_eq!(r.json()["items"][0]["outcome"], "failed", "{}", r.text());
}

#[tokio::test]
async fn domain_operations_publish_their_events_on_the_bus() {
    let (app, _clock, bus) = world().await;
    let mut events = bus.subscribe();
    app.tenant("b").await;
    let r = app.admin(Method::POST, "/v1/tenants/b/archive", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let mut seen = Vec::new();
    while let Ok(e) = events.try_recv() {
        seen.push((e.kind, e.tenant.clone()));
    }
    assert_eq!(
        seen,
        vec![(EventKind::TenantCreated, Some("b".to_owned())), (EventKind::TenantArchived, Some("b".to_owned()))]
    );
}

#[tokio::test]
async fn endpoint_urls_must_be_plain_http_urls() {
    let (app, _clock, _bus) = world().await;
    for bad in ["ftp://x.example/", "not a url", "https://user:pw@x.example/"] {
        let r = app.admin(Method::POST, "/v1/tenants/a/notification-endpoints", Some(json!({"url": bad}))).await;
        assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "invalid_url".to_owned()), "{bad}: {}", r.text());
    }
}
