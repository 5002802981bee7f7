//! What a run's options do to what is read, written and remembered:
//! `reset_cursor`, `full`, `max_records`, and a stored mapping configuration
//! bound to the job.

use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{Method, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::support::app::TestApp;
use crate::support::jobs::{serve, Conn, JobUnderTest};

const MANIFEST: &str = r#"
version: 1.0
name: contacts-feed
connectors:
  feed: {provider: feed, auth: none}
  sink: {provider: sink, auth: none}
flows:
  - name: contacts
    source:
      type: http
      connector: feed
      request: {path: /contacts}
      records: items
      pagination: {type: page_number, size: 4, size_param: per_page}
      incremental: {cursor_field: seq, param: after}
    mapping:
      fields:
        id: '{{ record.seq }}'
        label: 'manifest-{{ record.first }}'
    target: {type: http, connector: sink, path: /contacts, batch_size: 1, idempotency_key: '{{ record.id }}'}
"#;

/// The feed: contacts with `seq` 1..=`len`, what each request asked for.
#[derive(Clone, Default)]
struct Feed {
    len: Arc<Mutex<i64>>,
    asked_after: Arc<Mutex<Vec<Option<String>>>>,
}

/// What the sink received, in order.
type Received = Arc<Mutex<Vec<Value>>>;

async fn contacts(State(feed): State<Feed>, Query(q): Query<Vec<(String, String)>>) -> Json<Value> {
    let param = |name: &str| q.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let page: i64 = param("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    let size: i64 = param("per_page").and_then(|p| p.parse().ok()).unwrap_or(4);
    let after = param("after");
    if page == 1 {
        feed.asked_after.lock().expect("lock").push(after.clone());
    }
    let after: i64 = after.and_then(|a| a.parse().ok()).unwrap_or(0);
    let len = *feed.len.lock().expect("lock");
    let items: Vec<Value> = (after + 1..=len)
        .skip(((page - 1) * size) as usize)
        .take(size as usize)
        .map(|i| json!({"seq": i, "first": format!("c{i}")}))
        .collect();
    Json(json!({ "items": items }))
}

struct World {
    job: JobUnderTest,
    feed: Feed,
    received: Received,
}

impl World {
    async fn new(len: i64) -> Self {
        let feed = Feed::default();
        *feed.len.lock().expect("lock") = len;
        let src = serve(Router::new().route("/contacts", get(contacts)).with_state(feed.clone())).await;
        let received: Received = Default::default();
        let dst = serve(
            Router::new()
                .route(
                    "/contacts",
                    post(|State(r): State<Received>, Json(body): Json<Value>| async move {
                        r.lock().expect("lock").push(body);
                        StatusCode::CREATED
                    }),
                )
                .with_state(received.clone()),
        )
        .await;
        let conns = [
            Conn { name: "feed", provider: "feed", auth: "none", base_url: &src, credentials: None },
            Conn { name: "sink", provider: "sink", auth: "none", base_url: &dst, credentials: None },
        ];
        let job = JobUnderTest::new(TestApp::embedded().await, "contacts-feed", MANIFEST, &conns, json!({})).await;
        Self { job, feed, received }
    }

    async fn run(&self, options: Value) -> Value {
        let run = self.job.run(options).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        run
    }

    /// The ids the sink received since the last call.
    fn take_received(&self) -> Vec<i64> {
        let taken = std::mem::take(&mut *self.received.lock().expect("lock"));
        taken.iter().map(|b| b["id"].as_str().and_then(|s| s.parse().ok()).unwrap_or(-1)).collect()
    }

    fn last_asked_after(&self) -> Option<String> {
        self.feed.asked_after.lock().expect("lock").last().cloned().flatten()
    }

    fn set_len(&self, len: i64) {
        *self.feed.len.lock().expect("lock") = len;
    }

    async fn cursor(&self) -> Value {
        self.job.job().await["state"]["contacts"]["cursor"].clone()
    }
}

#[tokio::test]
async fn a_normal_run_reads_only_what_came_after_the_saved_cursor() {
    let w = World::new(10).await;
    w.run(json!({})).await;
    assert_eq!(w.take_received(), (1..=10).collect::<Vec<_>>());
    assert_eq!(w.cursor().await, 10);

    w.set_len(13);
    let run = w.run(json!({})).await;
    assert_eq!(w.last_asked_after().as_deref(), Some("10"), "the source is asked from the cursor");
    assert_eq!(w.take_received(), vec![11, 12, 13]);
    assert_eq!(run["counters"]["contacts"]["written"], 3, "{run}");
    assert_eq!(w.cursor().await, 13);
}

#[tokio::test]
async fn reset_cursor_reads_from_the_start_and_replaces_the_saved_cursor() {
    let w = World::new(10).await;
    w.run(json!({})).await;
    w.take_received();
    assert_eq!(w.cursor().await, 10);

    // The source lost its newest records: a reset reads what there is and the
    // cursor becomes what was read, even if that is lower than before.
    w.set_len(6);
    let run = w.run(json!({"reset_cursor": true})).await;
    assert_eq!(w.last_asked_after(), None, "a reset sends no cursor to the source");
    assert_eq!(w.take_received(), (1..=6).collect::<Vec<_>>());
    assert_eq!(run["counters"]["contacts"]["read"], 6, "{run}");
    assert_eq!(w.cursor().await, 6, "the saved cursor was forgotten, not merged");
}

#[tokio::test]
async fn a_full_run_reads_everything_without_moving_the_cursor_back() {
    let w = World::new(10).await;
    w.run(json!({})).await;
    w.take_received();

    w.set_len(6);
    let run = w.run(json!({"full": true})).await;
    assert_eq!(w.last_asked_after(), None, "a full read sends no cursor to the source");
    assert_eq!(w.take_received(), (1..=6).collect::<Vec<_>>());
    assert_eq!(run["counters"]["contacts"]["written"], 6, "{run}");
    assert_eq!(w.cursor().await, 10, "a full read never moves the cursor back");

    // And it moves it forward when it reads past it.
    w.set_len(12);
    w.run(json!({"full": true})).await;
    assert_eq!(w.take_received(), (1..=12).collect::<Vec<_>>());
    assert_eq!(w.cursor().await, 12);
}

#[tokio::test]
async fn max_records_stops_the_flow_and_the_next_run_continues_after_the_last_written_record() {
    let w = World::new(10).await;
    // Pages hold four contacts: the limit falls inside the second page.
    let run = w.run(json!({"max_records": 6})).await;
    assert_eq!(w.take_received(), (1..=6).collect::<Vec<_>>());
    assert_eq!(run["counters"]["contacts"]["written"], 6, "{run}");

    // Nothing read but not written may be skipped by the next run.
    let run = w.run(json!({})).await;
    let next = w.take_received();
    assert!(next.ends_with(&[7, 8, 9, 10]), "the next run writes 7..=10: {next:?}");
    assert!(next.iter().all(|i| (5..=10).contains(i)), "only the unfinished page is read again: {next:?}");
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(w.cursor().await, 10);
}

#[tokio::test]
async fn a_stored_mapping_bound_to_the_job_replaces_the_manifests_and_its_changes_apply_to_the_next_run() {
    let w = World::new(2).await;
    let app = &w.job.app;
    let fields =
        |prefix: &str| json!({"id": "{{ record.seq }}", "label": format!("{prefix}-{{{{ record.first | upper }}}}")});
    let r = app
        .admin(
            Method::POST,
            "/v1/tenants/acme/mappings",
            Some(json!({"name": "contacts", "entity": "contact", "fields": fields("stored")})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let mapping = r.json()["id"].as_str().expect("mapping id").to_owned();
    let r = app
        .admin(
            Method::PATCH,
            &format!("/v1/tenants/acme/jobs/{}", w.job.job),
            Some(json!({"mappings": {"contacts": {"mapping": mapping}}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    w.run(json!({})).await;
    let labels = |w: &World| -> Vec<String> {
        std::mem::take(&mut *w.received.lock().expect("lock"))
            .iter()
            .map(|b| b["label"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(labels(&w), ["stored-C1", "stored-C2"], "the stored mapping, not the manifest's");

    let r = app
        .admin(
            Method::PATCH,
            &format!("/v1/tenants/acme/mappings/{mapping}"),
            Some(json!({"fields": fields("edited")})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    w.run(json!({"reset_cursor": true})).await;
    assert_eq!(labels(&w), ["edited-C1", "edited-C2"], "the next run uses the mapping as it is now");
}
