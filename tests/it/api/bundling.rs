//! Bundling triggers of different kinds: while a run holds its job, a
//! scheduled tick, webhook deliveries and an init request wait behind it, and
//! what comes after serves every one of them (no tick dropped, no delivery
//! left pending); options of bundled triggers combine rather than the last
//! one winning.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::Query;
use axum::http::{Method, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use ferry_core::crypto::sha256_hex;
use ferry_core::model::{Run, RunMode, RunStatus};
use ferry_core::ports::{RunDispatcher, RunRef, ScheduledTick};
use ferry_service::hooks::service::{HookRecord, Incoming};
use ferry_service::runs::RunRequest;
use ferry_service::Hub;
use serde_json::{json, Value};

use crate::support::app::TestApp;
use crate::support::jobs::serve;

const MANIFEST: &str = r#"
version: 1.0
name: mixed-sync
connectors:
  src: {provider: itemsource, auth: none}
configs:
  schema:
    type: object
    properties:
      owner: {type: string, $ref: '#/definitions/owners'}
    definitions:
      owners: {enum: [placeholder]}
flows:
  - name: owners
    triggers: [init]
    source: {type: http, connector: src, request: {path: /owners}, records: owners}
    target: {type: options, definition: owners, value: '{{ record.id }}'}
  - name: items
    source:
      type: http
      connector: src
      request: {path: /items}
      records: items
      incremental: {cursor_field: seq, param: after}
    target: {type: file, format: jsonl, path: 'items/{{ run.id }}.jsonl'}
  - name: orders
    triggers: [webhook]
    source: {type: webhook, records: orders}
    target: {type: file, format: jsonl, path: 'orders/{{ run.id }}.jsonl'}
webhooks:
  verify: {type: standard_webhooks}
  flow: orders
"#;

const ITEMS: i64 = 5;

async fn items(Query(q): Query<HashMap<String, String>>) -> Json<Value> {
    let after: i64 = q.get("after").and_then(|s| s.parse().ok()).unwrap_or(0);
    Json(json!({"items": (after + 1..=ITEMS).map(|i| json!({"seq": i})).collect::<Vec<_>>()}))
}

/// Holds dispatched runs until the test executes them, as the run queue does.
#[derive(Default)]
struct Queue(Mutex<Vec<RunRef>>);

#[async_trait::async_trait]
impl RunDispatcher for Queue {
    async fn dispatch(&self, run: &RunRef) -> Result<(), ferry_core::ports::DispatchError> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(run.clone());
        Ok(())
    }
}

struct World {
    _app: TestApp,
    hub: Hub,
    queue: Arc<Queue>,
    job: String,
    hook: HookRecord,
}

async fn world() -> World {
    let app = TestApp::embedded().await;
    app.tenant("acme").await;
    app.publish("mixed-sync", MANIFEST).await;
    let src = serve(
        Router::new()
            .route("/items", get(items))
            .route("/owners", get(|| async { Json(json!({"owners": [{"id": "ann"}, {"id": "bob"}]})) })),
    )
    .await;
    let body = json!({"name": "src", "connector": "itemsource", "auth_kind": "none", "settings": {"base_url": src}});
    let r = app.admin(Method::POST, "/v1/tenants/acme/connections", Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let conn = r.json()["id"].as_str().expect("id").to_owned();
    let job = app
        .job(
            "acme",
            json!({"name": "mixed", "integration": "mixed-sync", "connections": {"src": conn},
                   "schedule": {"preset": "hourly"}}),
        )
        .await;
    let queue = Arc::new(Queue::default());
    let hub = app.hub.clone().with_dispatcher(queue.clone());
    let (hook, _) = hub.hooks().enable_webhook("acme", &job, None).await.expect("webhook");
    World { _app: app, hub, queue, job, hook }
}

impl World {
    async fn trigger(&self, mode: RunMode, options: Value, source: &str) -> (String, bool) {
        let mut req: RunRequest = serde_json::from_value(options).expect("request");
        req.mode = mode;
        let t = self.hub.runs().trigger_run("acme", &self.job, req, source).await.expect("trigger");
        (t.run.id, t.bundled)
    }

    /// A scheduled tick of the job, as the scheduler delivers it.
    async fn tick(&self) -> ferry_service::schedules::Fired {
        let tick = ScheduledTick { tenant: "acme".into(), job: self.job.clone(), tick: self.hub.clock.now() };
        self.hub.jobs().fire_scheduled(&tick).await.expect("tick")
    }

    /// A delivery stored by the intake, and the webhook trigger it sends.
    async fn deliver(&self, id: &str, orders: Value) -> bool {
        let payload = json!({ "orders": orders });
        let bytes = payload.to_string();
        let incoming = Incoming {
            delivery_id: id.into(),
            replay_key: id.into(),
            body_sha256: sha256_hex(bytes.as_bytes()),
            body_len: bytes.len(),
            payload,
        };
        self.hub.hooks().store_delivery(&self.hook, incoming).await.expect("stored");
        self.trigger(RunMode::Webhook, json!({}), "webhook").await.1
    }

    /// Executes what the queue holds, as the sync function would, until it is empty.
    async fn drain(&self) {
        for _ in 0..50 {
            let next = self.queue.0.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let Some(r) = next else { return };
            self.hub.execute_dispatched(&r).await.expect("executed");
        }
        panic!("the queue never emptied");
    }

    /// The job's runs, oldest first.
    async fn runs(&self) -> Vec<Run> {
        let page = ferry_service::repo::PageRequest { limit: Some(100), cursor: None };
        let mut runs = self.hub.runs().list_runs("acme", &self.job, &page).await.expect("runs").items;
        runs.reverse();
        runs
    }

    async fn pending(&self) -> usize {
        self.hub.hooks().pending_deliveries("acme", &self.job, 100).await.expect("pending").len()
    }
}

fn read(run: &Run, flow: &str) -> u64 {
    run.counters.get(flow).map_or(0, |c| c.read)
}

fn served_tick(run: &Run) -> bool {
    run.triggers.iter().any(|t| t.source == "schedule")
}

/// Every run after the first has ended, and none is left queued or running.
fn all_finished(runs: &[Run]) {
    for r in runs {
        assert!(r.status.is_finished(), "a run was left {:?}: {runs:#?}", r.status);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_bundled_after_webhook_deliveries_still_runs_the_scheduled_sync() {
    let w = world().await;
    let (first, bundled) = w.trigger(RunMode::Normal, json!({}), "api").await;
    assert!(!bundled);
    assert!(w.deliver("d1", json!([{"id": 1}, {"id": 2}])).await, "the delivery waits behind the run");
    assert!(matches!(w.tick().await, ferry_service::schedules::Fired::Bundled { .. }));
    w.drain().await;

    let runs = w.runs().await;
    all_finished(&runs);
    assert_eq!(runs[0].id, first);
    let later = &runs[1..];
    assert_eq!(w.pending().await, 0, "the deliveries were consumed: {later:#?}");
    assert_eq!(later.iter().map(|r| read(r, "orders")).sum::<u64>(), 2, "each order read once: {later:#?}");
    let sync = later.iter().find(|r| served_tick(r)).expect("a run serves the tick");
    assert_eq!(sync.mode, RunMode::Normal, "the tick's run syncs: {later:#?}");
    assert!(sync.counters.contains_key("items"), "the scheduled sync ran its flow: {later:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_deliveries_bundled_after_a_tick_are_not_left_pending() {
    let w = world().await;
    let (_, bundled) = w.trigger(RunMode::Normal, json!({}), "api").await;
    assert!(!bundled);
    assert!(matches!(w.tick().await, ferry_service::schedules::Fired::Bundled { .. }));
    assert!(w.deliver("d1", json!([{"id": 1}])).await);
    assert!(w.deliver("d2", json!([{"id": 2}, {"id": 3}])).await);
    w.drain().await;

    let runs = w.runs().await;
    all_finished(&runs);
    let later = &runs[1..];
    assert_eq!(w.pending().await, 0, "no delivery waits for another one to arrive: {later:#?}");
    assert_eq!(later.iter().map(|r| read(r, "orders")).sum::<u64>(), 3, "{later:#?}");
    let webhook = later.iter().find(|r| r.mode == RunMode::Webhook).expect("a webhook run");
    assert_eq!(webhook.triggers.iter().filter(|t| t.source == "webhook").count(), 2, "{later:#?}");
    assert!(later.iter().any(|r| served_tick(r) && r.mode == RunMode::Normal), "{later:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_init_request_bundled_with_a_sync_runs_both() {
    let w = world().await;
    w.trigger(RunMode::Normal, json!({}), "api").await;
    let (_, bundled) = w.trigger(RunMode::Normal, json!({}), "manual").await;
    assert!(bundled);
    assert!(w.trigger(RunMode::Init, json!({}), "api").await.1);
    w.drain().await;

    let runs = w.runs().await;
    all_finished(&runs);
    let later = &runs[1..];
    let init = later.iter().find(|r| r.mode == RunMode::Init).expect("an init run");
    assert_eq!(init.triggers.len(), 1, "{later:#?}");
    let sync = later.iter().find(|r| r.triggers.iter().any(|t| t.source == "manual")).expect("the manual trigger");
    assert_eq!(sync.mode, RunMode::Normal, "the manual sync is not swallowed by the init run: {later:#?}");
    assert_eq!(sync.status, RunStatus::Succeeded, "{later:#?}");
    // Init first: it refreshes the options the sync's configs may depend on.
    assert_eq!(later[0].mode, RunMode::Init, "{later:#?}");
    let job = w.hub.jobs().get_job("acme", &w.job).await.expect("job");
    assert_eq!(job.dynamic_options["owners"], vec![json!("ann"), json!("bob")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_of_bundled_triggers_combine_instead_of_the_last_one_winning() {
    let w = world().await;
    // The first run reads every item and moves the cursor to the end.
    w.trigger(RunMode::Normal, json!({}), "api").await;
    w.drain().await;
    assert_eq!(read(&w.runs().await[0], "items"), ITEMS as u64);

    w.trigger(RunMode::Normal, json!({}), "api").await;
    assert!(w.trigger(RunMode::Normal, json!({"reset_cursor": true, "max_records": 2}), "api").await.1);
    assert!(w.trigger(RunMode::Normal, json!({"max_records": 4, "batch_size": 50}), "api").await.1);
    assert!(w.trigger(RunMode::Normal, json!({"batch_size": 10, "max_records": 3}), "api").await.1);
    w.drain().await;

    let runs = w.runs().await;
    all_finished(&runs);
    let next = runs.last().expect("the bundled run");
    assert_eq!(next.triggers.len(), 3, "{runs:#?}");
    let o = &next.options;
    assert!(o.reset_cursor && !o.full, "reset_cursor because one trigger asked for it: {o:?}");
    assert_eq!(o.max_records, Some(4), "the largest limit asked for: {o:?}");
    assert_eq!(o.batch_size, Some(10), "the smallest batch asked for: {o:?}");
    let items = next.counters.get("items").expect("the sync ran");
    assert_eq!((items.read, items.written), (ITEMS as u64, 4), "from the start again, up to the limit: {next:#?}");
}
