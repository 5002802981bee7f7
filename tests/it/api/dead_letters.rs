//! Dead letters: records a flow could not deliver (a mapping error, a refusal
//! of the target, a record a partial-failure answer names) are kept per job
//! under `on_record_error: dead_letter` (the default) while the cursor moves
//! on; `fail` stops the flow at its checkpoint, `skip` counts and goes on.
//! Operators list them with filters and counts, replay them through the
//! flow's target (a run with trigger `replay`) and discard them.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::extract::Query;
use axum::http::{Method, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use ferry_core::ports::{SecretStore, Store};
use ferry_embedded::{FileSecretStore, SqliteStore};
use ferry_service::Hub;
use serde_json::{json, Value};

use crate::support::app::TestApp;
use crate::support::aws;
use crate::support::jobs::serve;

const CANARY: &str = "canary-5f1e-dead-letter-secret";

/// How the fake target answers a request.
#[derive(Clone, Copy, PartialEq)]
enum Answer {
    /// 422 (echoing the request and the connection's key) when any record of
    /// the request has a refused id, else 201.
    Refuse,
    /// 207 listing the refused records of the batch by index (`errors[].index`).
    ByIndex,
    /// 207 listing them by id (`failed[].ids`).
    ById,
}

#[derive(Clone)]
struct Target {
    refused: Arc<Mutex<HashSet<i64>>>,
    answer: Arc<Mutex<Answer>>,
    /// Ids the target accepted, in order.
    accepted: Arc<Mutex<Vec<i64>>>,
}

impl Target {
    fn refuse(&self, ids: &[i64]) {
        *self.refused.lock().unwrap_or_else(|p| p.into_inner()) = ids.iter().copied().collect();
    }
    fn accepted(&self) -> Vec<i64> {
        self.accepted.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn records_of(body: &Value) -> Vec<Value> {
    match body {
        Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    }
}

async fn target() -> (String, Target) {
    let t = Target { refused: Arc::default(), answer: Arc::new(Mutex::new(Answer::Refuse)), accepted: Arc::default() };
    let state = t.clone();
    let router = Router::new().route(
        "/items",
        post(move |Json(body): Json<Value>| {
            let t = state.clone();
            async move {
                let records = records_of(&body);
                let refused = t.refused.lock().unwrap_or_else(|p| p.into_inner()).clone();
                let answer = *t.answer.lock().unwrap_or_else(|p| p.into_inner());
                let id = |r: &Value| r["id"].as_i64().unwrap_or(-1);
                let mut accepted = t.accepted.lock().unwrap_or_else(|p| p.into_inner());
                match answer {
                    Answer::Refuse if records.iter().any(|r| refused.contains(&id(r))) => {
                        // APIs echo what they were sent: the key must not survive into a dead letter.
                        let echo = json!({"error": "invalid record", "you_sent": body, "key": CANARY});
                        (StatusCode::UNPROCESSABLE_ENTITY, Json(echo))
                    }
                    Answer::Refuse => {
                        accepted.extend(records.iter().map(id));
                        (StatusCode::CREATED, Json(json!({})))
                    }
                    Answer::ByIndex | Answer::ById => {
                        let mut errors = Vec::new();
                        for (i, r) in records.iter().enumerate() {
                            if refused.contains(&id(r)) {
                                errors.push(json!({"index": i, "ids": [id(r).to_string()], "message": format!("record {} is a duplicate", id(r))}));
                            } else {
                                accepted.push(id(r));
                            }
                        }
                        let body = match answer {
                            Answer::ByIndex => json!({"errors": errors}),
                            _ => json!({"failed": errors}),
                        };
                        (StatusCode::MULTI_STATUS, Json(body))
                    }
                }
            }
        }),
    );
    (serve(router).await, t)
}

/// A source of four contacts, those updated after `since` when it is given;
/// `n` of id 2 is not an integer.
async fn source(big: bool) -> String {
    let mut contacts = json!({"contacts": [
        {"id": 1, "n": "1", "updated": "2024-01-01T00:00:00Z", "note": CANARY},
        {"id": 2, "n": "two", "updated": "2024-01-02T00:00:00Z"},
        {"id": 3, "n": "3", "updated": "2024-01-03T00:00:00Z"},
        {"id": 4, "n": "4", "updated": "2024-01-04T00:00:00Z"},
    ]});
    if big {
        // Past what a dead letter keeps inline: its records go to the file store.
        contacts["contacts"][1]["note"] = json!("x".repeat(40 * 1024));
    }
    let route = get(move |Query(q): Query<std::collections::HashMap<String, String>>| async move {
        let since = q.get("since").cloned().unwrap_or_default();
        let list = contacts["contacts"].as_array().cloned().unwrap_or_default();
        let newer: Vec<Value> =
            list.into_iter().filter(|c| c["updated"].as_str().unwrap_or("") > since.as_str()).collect();
        Json(json!({"contacts": newer}))
    });
    serve(Router::new().route("/contacts", route)).await
}

/// The manifest: `target_extra` goes into the HTTP target, `flow_extra` into the flow.
fn manifest(batch_size: u32, target_extra: &str, flow_extra: &str) -> String {
    manifest_typed(batch_size, target_extra, flow_extra, "integer")
}

/// [`manifest`] with `n` mapped to `n_type` (`string` maps every record).
fn manifest_typed(batch_size: u32, target_extra: &str, flow_extra: &str, n_type: &str) -> String {
    format!(
        r#"
version: 1.0
name: contacts-sync
connectors:
  src: {{provider: itemsource, auth: api_key, api_key: {{header: X-API-Key}}}}
  dst: {{provider: warehouse, auth: api_key, api_key: {{header: X-API-Key}}}}
flows:
  - name: contacts
    source:
      type: http
      connector: src
      request: {{path: /contacts}}
      records: contacts
      incremental: {{cursor_field: updated, param: since}}
    mapping: {{fields: {{id: {{from: id}}, n: {{from: n, type: {n_type}}}}}}}
    target: {{type: http, connector: dst, path: /items, batch_size: {batch_size}{target_extra}}}
{flow_extra}
"#
    )
}

struct World {
    app: TestApp,
    job: String,
    target: Target,
}

async fn world_on(
    store: Arc<dyn Store>,
    secrets: Arc<dyn SecretStore>,
    dir: tempfile::TempDir,
    manifest: &str,
    big: bool,
) -> World {
    let files = ferry_embedded::LocalFileStore::new(dir.path().join("files"));
    let app = TestApp::with_hub(Hub::new(store, secrets).with_files(Arc::new(files)), dir).await;
    app.tenant("acme").await;
    app.publish("contacts-sync", manifest).await;
    let src = source(big).await;
    let (dst, target) = target().await;
    let mut conns = serde_json::Map::new();
    for (name, provider, base) in [("src", "itemsource", src), ("dst", "warehouse", dst)] {
        let body = json!({"name": name, "connector": provider, "auth_kind": "api_key",
                          "settings": {"base_url": base}, "credentials": {"api_key": CANARY}});
        let r = app.admin(Method::POST, "/v1/tenants/acme/connections", Some(body)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        conns.insert(name.into(), r.json()["id"].clone());
    }
    let job = app.job("acme", json!({"name": "contacts", "integration": "contacts-sync", "connections": conns})).await;
    World { app, job, target }
}

async fn world(manifest: &str) -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("ferry.db")).expect("sqlite");
    let secrets = FileSecretStore::open(dir.path()).expect("secrets");
    world_on(Arc::new(store), Arc::new(secrets), dir, manifest, false).await
}

async fn dynamo_world(manifest: &str) -> Option<World> {
    let (Some(store), Some(secrets)) = (aws::dynamo_store().await, aws::secrets_manager_store().await) else {
        return None;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    Some(world_on(Arc::new(store), Arc::new(secrets), dir, manifest, false).await)
}

impl World {
    fn runs(&self) -> String {
        format!("/v1/tenants/acme/jobs/{}/runs", self.job)
    }

    async fn wait(&self, run: &str) -> Value {
        for _ in 0..1200 {
            let v = self.app.admin(Method::GET, &format!("{}/{run}", self.runs()), None).await.json();
            if !matches!(v["status"].as_str(), Some("queued" | "running" | "interrupted")) {
                return v;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("run {run} did not finish");
    }

    async fn run(&self) -> Value {
        let r = self.app.admin(Method::POST, &self.runs(), Some(json!({}))).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
        self.wait(r.json()["run"]["id"].as_str().expect("run id")).await
    }

    async fn list(&self, query: &str) -> Value {
        let r = self.app.admin(Method::GET, &format!("/v1/tenants/acme/dead-letters{query}"), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        r.json()
    }

    async fn get(&self, id: &str) -> Value {
        let r = self.app.admin(Method::GET, &format!("/v1/tenants/acme/dead-letters/{id}"), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        r.json()
    }

    /// Replays and waits for every replay run; the runs as they ended.
    async fn replay(&self, body: Value) -> Vec<Value> {
        let r = self.app.admin(Method::POST, "/v1/tenants/acme/dead-letters/replay", Some(body)).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
        let mut ended = Vec::new();
        for t in r.json()["runs"].as_array().cloned().unwrap_or_default() {
            ended.push(self.wait(t["run"]["id"].as_str().expect("run id")).await);
        }
        ended
    }

    async fn cursor(&self) -> Value {
        let job = self.app.admin(Method::GET, &format!("/v1/tenants/acme/jobs/{}", self.job), None).await.json();
        job["state"]["contacts"]["cursor"].clone()
    }

    async fn logs(&self, run: &Value) -> String {
        let id = run["id"].as_str().unwrap_or_default();
        self.app.admin(Method::GET, &format!("{}/{id}/logs", self.runs()), None).await.text()
    }

    /// Points the job at a mapping configuration (version 1: `n` an integer).
    async fn configured_mapping(&self, fields: Value) -> String {
        let r = self
            .app
            .admin(
                Method::POST,
                "/v1/tenants/acme/mappings",
                Some(json!({"name": "contacts", "entity": "contact", "fields": fields})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        let id = r.json()["id"].as_str().expect("mapping id").to_owned();
        let body = json!({"mappings": {"contacts": {"mapping": id}}});
        let r = self.app.admin(Method::PATCH, &format!("/v1/tenants/acme/jobs/{}", self.job), Some(body)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        id
    }
}

fn ids_of(list: &Value) -> Vec<Value> {
    list["items"].as_array().cloned().unwrap_or_default()
}

async fn mapping_error_is_dead_lettered_and_the_cursor_moves_on(w: World) {
    let run = w.run().await;
    assert_eq!(run["status"], "partial", "{run}");
    let c = &run["counters"]["contacts"];
    assert_eq!((c["read"].as_u64(), c["written"].as_u64(), c["dead_lettered"].as_u64()), (Some(4), Some(3), Some(1)));
    assert_eq!(w.target.accepted(), vec![1, 3, 4]);
    assert_eq!(w.cursor().await, json!("2024-01-04T00:00:00Z"), "the dead letter is safe: the cursor moved past it");

    let list = w.list("").await;
    let items = ids_of(&list);
    assert_eq!(items.len(), 1, "{list}");
    let dl = &items[0];
    assert_eq!((dl["category"].as_str(), dl["status"].as_str()), (Some("mapping"), Some("pending")), "{dl}");
    assert_eq!((dl["flow"].as_str(), dl["job"].as_str()), (Some("contacts"), Some(w.job.as_str())));
    assert_eq!((dl["attempts"].as_u64(), dl["run"].as_str()), (Some(1), run["id"].as_str()));
    assert!(dl["error"].as_str().unwrap_or("").contains("field `n`"), "{dl}");
    assert!(dl.get("source").is_none(), "lists carry no records: {dl}");
    assert_eq!(dl["mapped_with"], json!({"kind": "release", "release": 1}));
    assert_eq!(list["counts"]["by_status"]["pending"], 1, "{list}");
    assert_eq!(list["counts"]["by_category"]["mapping"], 1, "{list}");

    let one = w.get(dl["id"].as_str().expect("id")).await;
    assert_eq!(one["source"]["id"], 2, "{one}");
    assert_eq!(one["source"]["n"], "two", "{one}");
    assert!(one.get("mapped").is_none(), "mapping failed: nothing mapped: {one}");

    // The next run reads from the cursor on: nothing is dead-lettered twice.
    let again = w.run().await;
    assert_eq!(w.list("").await["counts"]["by_status"]["pending"], 1, "{again}");
}

#[tokio::test]
async fn a_record_that_fails_mapping_is_dead_lettered_and_the_cursor_moves_on() {
    mapping_error_is_dead_lettered_and_the_cursor_moves_on(world(&manifest(1, "", "")).await).await;
}

#[tokio::test]
async fn a_record_that_fails_mapping_is_dead_lettered_and_the_cursor_moves_on_on_dynamodb() {
    let Some(w) = dynamo_world(&manifest(1, "", "")).await else { return };
    mapping_error_is_dead_lettered_and_the_cursor_moves_on(w).await;
}

#[tokio::test]
async fn a_record_the_target_refuses_is_dead_lettered_with_the_refusal_and_no_secret() {
    let w = world(&manifest(1, "", "")).await;
    w.target.refuse(&[1]);
    let run = w.run().await;
    assert_eq!(run["status"], "partial", "{run}");
    assert_eq!(w.target.accepted(), vec![3, 4]);
    let list = w.list("?category=target_rejected").await;
    let items = ids_of(&list);
    assert_eq!(items.len(), 1, "{list}");
    let dl = w.get(items[0]["id"].as_str().expect("id")).await;
    let error = dl["error"].as_str().unwrap_or("");
    assert!(error.starts_with("HTTP 422 from ") && error.contains("/items"), "{error}");
    assert!(error.contains("invalid record"), "an excerpt of the answer: {error}");
    assert_eq!(dl["mapped"], json!({"id": 1, "n": 1}), "{dl}");
    assert_eq!(dl["source"]["id"], 1);
    let text = dl.to_string();
    assert!(!text.contains(CANARY), "the connection's key never reaches a dead letter: {text}");
    assert!(text.contains("[redacted]"), "{text}");
    assert_eq!(list["counts"]["by_status"], json!({"pending": 1}), "counts of the category asked for: {list}");
    assert_eq!(w.list("").await["counts"]["by_category"], json!({"mapping": 1, "target_rejected": 1}));
}

#[tokio::test]
async fn a_batch_the_target_refuses_dead_letters_each_of_its_records() {
    let w = world(&manifest(2, "", "")).await;
    w.target.refuse(&[3]);
    let run = w.run().await;
    // Records 1, 3, 4 are mapped; batches [1, 3] and [4]: the first is refused whole.
    assert_eq!(w.target.accepted(), vec![4], "{run}");
    let refused = w.list("?category=target_rejected").await;
    let mut ids: Vec<i64> = Vec::new();
    for dl in ids_of(&refused) {
        ids.push(w.get(dl["id"].as_str().unwrap_or_default()).await["source"]["id"].as_i64().unwrap_or(0));
    }
    ids.sort();
    assert_eq!(ids, vec![1, 3], "{refused}");
    assert_eq!(run["counters"]["contacts"]["dead_lettered"], 3, "two refused, one not mapped: {run}");
    assert_eq!(w.cursor().await, json!("2024-01-04T00:00:00Z"));
}

async fn partial_failure_names_only_its_records(answer: Answer, rejections: &str) {
    let w = world(&manifest(3, &format!(", rejections: {rejections}"), "")).await;
    *w.target.answer.lock().unwrap_or_else(|p| p.into_inner()) = answer;
    w.target.refuse(&[3]);
    let run = w.run().await;
    assert_eq!(run["status"], "partial", "{run}");
    assert_eq!(w.target.accepted(), vec![1, 4], "one batch of three: [1, 3, 4]");
    assert_eq!(run["counters"]["contacts"]["written"], 2, "{run}");
    let list = w.list("?category=target_rejected").await;
    let items = ids_of(&list);
    assert_eq!(items.len(), 1, "only the record the answer names: {list}");
    let dl = w.get(items[0]["id"].as_str().expect("id")).await;
    assert_eq!(dl["source"]["id"], 3, "{dl}");
    let error = dl["error"].as_str().unwrap_or("");
    assert!(error.contains("HTTP 207") && error.contains("record 3 is a duplicate"), "{error}");
}

#[tokio::test]
async fn a_partially_failed_batch_dead_letters_only_the_records_it_names_by_index() {
    partial_failure_names_only_its_records(Answer::ByIndex, "{path: errors, index: index, message: message}").await;
}

#[tokio::test]
async fn a_partially_failed_batch_dead_letters_only_the_records_it_names_by_a_field() {
    partial_failure_names_only_its_records(
        Answer::ById,
        "{path: failed, key: {entry: ids, record: id}, message: message}",
    )
    .await;
}

#[tokio::test]
async fn on_record_error_fail_stops_the_flow_at_its_last_checkpoint() {
    let w = world(&manifest(1, "", "    on_record_error: fail")).await;
    let run = w.run().await;
    assert_eq!(run["status"], "failed_integration", "{run}");
    assert!(run["error"].as_str().unwrap_or("").contains("record not mapped"), "{run}");
    assert_eq!(w.target.accepted(), Vec::<i64>::new(), "the page is not written past the failed record");
    assert_eq!(w.cursor().await, Value::Null, "state stays at the last checkpoint");
    assert_eq!(ids_of(&w.list("").await).len(), 0);

    // A refusal fails it too, after the batches before it.
    let w = world(&manifest_typed(1, "", "    on_record_error: fail", "string")).await;
    w.target.refuse(&[2]);
    let run = w.run().await;
    assert_eq!(run["status"], "failed_integration", "{run}");
    assert_eq!(w.target.accepted(), vec![1], "nothing after the refused record is sent");
    assert_eq!(w.cursor().await, Value::Null);
}

#[tokio::test]
async fn on_record_error_skip_counts_and_logs_and_moves_on() {
    let w = world(&manifest(1, "", "    on_record_error: skip")).await;
    w.target.refuse(&[4]);
    let run = w.run().await;
    assert_eq!(run["status"], "partial", "{run}");
    let c = &run["counters"]["contacts"];
    assert_eq!(
        (c["written"].as_u64(), c["skipped"].as_u64(), c["dead_lettered"].as_u64()),
        (Some(2), Some(2), Some(0))
    );
    assert_eq!(w.cursor().await, json!("2024-01-04T00:00:00Z"));
    assert_eq!(ids_of(&w.list("").await).len(), 0, "nothing kept");
    let logs = w.logs(&run).await;
    assert!(logs.contains("record skipped: not mapped") && logs.contains("target refused a record"), "{logs}");
}

async fn replay_with_a_fixed_mapping_marks_replayed(w: World) {
    w.configured_mapping(json!({"id": {"from": "id"}, "n": {"from": "n", "type": "integer"}})).await;
    let run = w.run().await;
    assert_eq!(run["counters"]["contacts"]["dead_lettered"], 1, "{run}");
    let id = ids_of(&w.list("").await)[0]["id"].as_str().expect("id").to_owned();
    assert_eq!(w.get(&id).await["mapped_with"]["kind"], "configured");

    // Fix the mapping: `n` as text now.
    let mapping = w.list("").await; // counts before
    assert_eq!(mapping["counts"]["by_status"]["pending"], 1);
    let maps = w.app.admin(Method::GET, "/v1/tenants/acme/mappings", None).await.json();
    let mid = maps["items"][0]["id"].as_str().expect("mapping id").to_owned();
    let fixed = json!({"fields": {"id": {"from": "id"}, "n": {"from": "n", "type": "string"}}});
    let r = w.app.admin(Method::PATCH, &format!("/v1/tenants/acme/mappings/{mid}"), Some(fixed)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    let runs = w.replay(json!({"filter": {"job": w.job}, "mapping": "current"})).await;
    assert_eq!(runs.len(), 1);
    let replay = &runs[0];
    assert_eq!(replay["status"], "succeeded", "{replay}");
    assert_eq!(replay["triggers"][0]["source"], "replay", "{replay}");
    assert_eq!(replay["counters"]["contacts"]["written"], 1, "{replay}");
    assert!(w.logs(replay).await.contains("replay of every pending dead letter"), "a run with logs");
    assert_eq!(w.target.accepted(), vec![1, 3, 4, 2], "the fixed record reached the target");
    let dl = w.get(&id).await;
    assert_eq!((dl["status"].as_str(), dl["attempts"].as_u64()), (Some("replayed"), Some(2)), "{dl}");
    let list = w.list("").await;
    assert_eq!(list["counts"]["by_status"], json!({"replayed": 1}), "{list}");
    assert_eq!(ids_of(&w.list("?status=pending").await).len(), 0);
    assert_eq!(ids_of(&w.list("?status=replayed").await).len(), 1);
}

#[tokio::test]
async fn a_replay_with_the_current_mapping_after_fixing_it_delivers_and_marks_replayed() {
    replay_with_a_fixed_mapping_marks_replayed(world(&manifest(1, "", "")).await).await;
}

#[tokio::test]
async fn a_replay_with_the_current_mapping_after_fixing_it_delivers_and_marks_replayed_on_dynamodb() {
    let Some(w) = dynamo_world(&manifest(1, "", "")).await else { return };
    replay_with_a_fixed_mapping_marks_replayed(w).await;
}

#[tokio::test]
async fn a_replayed_record_that_fails_again_stays_pending_with_its_attempts_counted() {
    let w = world(&manifest(1, "", "")).await;
    w.target.refuse(&[3]);
    w.run().await;
    let list = w.list("?category=target_rejected").await;
    let id = ids_of(&list)[0]["id"].as_str().expect("id").to_owned();

    // Original mapping: the record is sent as it was mapped, and refused again.
    let r = w
        .app
        .admin(
            Method::POST,
            &format!("/v1/tenants/acme/dead-letters/{id}/replay"),
            Some(json!({"mapping": "original"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let run = w.wait(r.json()["runs"][0]["run"]["id"].as_str().expect("run")).await;
    assert_eq!(run["status"], "partial", "{run}");
    let dl = w.get(&id).await;
    assert_eq!((dl["status"].as_str(), dl["attempts"].as_u64()), (Some("pending"), Some(2)), "{dl}");
    assert_eq!(dl["last_run"], run["id"], "{dl}");
    assert!(dl["error"].as_str().unwrap_or("").starts_with("HTTP 422"), "{dl}");

    // The target takes it now.
    w.target.refuse(&[]);
    let runs = w.replay(json!({"ids": [id]})).await;
    assert_eq!(runs[0]["status"], "succeeded", "{}", runs[0]);
    let dl = w.get(&id).await;
    assert_eq!((dl["status"].as_str(), dl["attempts"].as_u64()), (Some("replayed"), Some(3)), "{dl}");
    let r = w.app.admin(Method::POST, &format!("/v1/tenants/acme/dead-letters/{id}/replay"), Some(json!({}))).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "dead_letter_not_pending".to_owned()), "{}", r.text());
}

async fn discard_filters_and_counts(w: World) {
    w.target.refuse(&[1, 4]);
    w.run().await;
    let all = w.list("").await;
    assert_eq!(all["counts"]["by_status"], json!({"pending": 3}), "{all}");
    assert_eq!(all["counts"]["by_category"], json!({"mapping": 1, "target_rejected": 2}), "{all}");
    let job = &w.job;
    for (query, n) in [
        (format!("?job={job}"), 3),
        (format!("?job={job}&status=pending"), 3),
        (format!("?job={job}&status=pending&flow=contacts&category=target_rejected"), 2),
        (format!("?job={job}&category=mapping"), 1),
        ("?status=pending&category=mapping".to_owned(), 1),
        ("?flow=contacts".to_owned(), 3),
        ("?flow=other".to_owned(), 0),
        ("?status=discarded".to_owned(), 0),
    ] {
        assert_eq!(ids_of(&w.list(&query).await).len(), n, "{query}");
    }
    // Pages follow the cursor.
    let first = w.list("?limit=2").await;
    assert_eq!(ids_of(&first).len(), 2);
    let next = first["next_cursor"].as_str().expect("a next page");
    let second = w.list(&format!("?limit=2&cursor={next}")).await;
    assert_eq!(ids_of(&second).len(), 1, "{second}");

    let mapping_one = ids_of(&w.list("?category=mapping").await)[0]["id"].as_str().expect("id").to_owned();
    let r = w.app.admin(Method::POST, &format!("/v1/tenants/acme/dead-letters/{mapping_one}/discard"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["status"], "discarded");
    let r = w
        .app
        .admin(
            Method::POST,
            "/v1/tenants/acme/dead-letters/discard",
            Some(json!({"filter": {"category": "target_rejected"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!((r.json()["discarded"].as_u64(), r.json()["more"].as_bool()), (Some(2), Some(false)));
    let all = w.list("").await;
    assert_eq!(all["counts"]["by_status"], json!({"discarded": 3}), "{all}");
    assert_eq!(ids_of(&w.list("?status=discarded").await).len(), 3);
    // Nothing pending: a replay of everything starts no run.
    let r = w.app.admin(Method::POST, "/v1/tenants/acme/dead-letters/replay", Some(json!({"filter": {}}))).await;
    assert_eq!((r.status, r.json()["runs"].as_array().map(Vec::len)), (StatusCode::ACCEPTED, Some(0)), "{}", r.text());
}

#[tokio::test]
async fn discard_filters_and_counts_on_sqlite() {
    discard_filters_and_counts(world(&manifest(1, "", "")).await).await;
}

#[tokio::test]
async fn discard_filters_and_counts_on_dynamodb() {
    let Some(w) = dynamo_world(&manifest(1, "", "")).await else { return };
    discard_filters_and_counts(w).await;
}

#[tokio::test]
async fn bad_filters_and_selections_are_refused_naming_what_to_fix() {
    let w = world(&manifest(1, "", "")).await;
    let r = w.app.admin(Method::GET, "/v1/tenants/acme/dead-letters?status=lost", None).await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "invalid_filter".to_owned()));
    assert!(r.json()["error"]["message"].as_str().unwrap_or("").starts_with("status: 'lost'"), "{}", r.text());
    let r = w.app.admin(Method::GET, "/v1/tenants/acme/dead-letters?category=weird", None).await;
    assert_eq!(r.code(), "invalid_filter");
    for body in [json!({}), json!({"ids": [], "filter": {}}), json!({"ids": []})] {
        let r = w.app.admin(Method::POST, "/v1/tenants/acme/dead-letters/discard", Some(body.clone())).await;
        assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "invalid_selection".to_owned()), "{body}");
    }
    let r = w.app.admin(Method::GET, "/v1/tenants/acme/dead-letters/01nothinghere", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_archived_tenants_dead_letters_are_read_only() {
    let w = world(&manifest(1, "", "")).await;
    w.run().await;
    let id = ids_of(&w.list("").await)[0]["id"].as_str().expect("id").to_owned();
    let r = w.app.admin(Method::POST, "/v1/tenants/acme/archive", None).await;
    assert!(r.status.is_success(), "{}", r.text());
    for (path, body) in [
        (format!("/v1/tenants/acme/dead-letters/{id}/replay"), Some(json!({}))),
        (format!("/v1/tenants/acme/dead-letters/{id}/discard"), None),
        ("/v1/tenants/acme/dead-letters/replay".to_owned(), Some(json!({"filter": {}}))),
        ("/v1/tenants/acme/dead-letters/discard".to_owned(), Some(json!({"filter": {}}))),
    ] {
        let r = w.app.admin(Method::POST, &path, body).await;
        assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "tenant_archived".to_owned()), "{path}");
    }
    assert_eq!(w.get(&id).await["status"], "pending", "reads still work, nothing changed");
}

async fn metrics_count_dead_letters(w: World) {
    w.target.refuse(&[4]);
    w.run().await;
    let m = w.app.admin(Method::GET, "/v1/tenants/acme/metrics", None).await;
    assert_eq!(m.status, StatusCode::OK, "{}", m.text());
    let m = m.json();
    assert_eq!(m["totals"]["records_dead_lettered"], 2, "{m}");
    assert_eq!(m["by_integration"][0]["records_dead_lettered"], 2, "{m}");
    assert_eq!(m["dead_letters_pending"], 2, "{m}");
    let r = w
        .app
        .admin(Method::POST, "/v1/tenants/acme/dead-letters/discard", Some(json!({"filter": {"category": "mapping"}})))
        .await;
    assert_eq!(r.json()["discarded"], 1, "{}", r.text());
    let m = w.app.admin(Method::GET, "/v1/tenants/acme/metrics", None).await.json();
    assert_eq!((m["dead_letters_pending"].as_u64(), m["totals"]["records_dead_lettered"].as_u64()), (Some(1), Some(2)));
    let platform = w.app.admin(Method::GET, "/v1/metrics", None).await.json();
    assert_eq!(platform["totals"]["records_dead_lettered"], 2, "{platform}");
    assert_eq!(platform["dead_letters_pending"], 1, "{platform}");
    let r = w.app.admin(Method::POST, "/v1/tenants/acme/dead-letters/discard", Some(json!({"filter": {}}))).await;
    assert_eq!(r.json()["discarded"], 1, "{}", r.text());
    let platform = w.app.admin(Method::GET, "/v1/metrics", None).await.json();
    assert_eq!(platform["dead_letters_pending"], 0, "a flow with none pending leaves the index: {platform}");
}

#[tokio::test]
async fn run_metrics_count_records_dead_lettered_and_the_pending_ones() {
    metrics_count_dead_letters(world(&manifest(1, "", "")).await).await;
}

#[tokio::test]
async fn run_metrics_count_records_dead_lettered_and_the_pending_ones_on_dynamodb() {
    let Some(w) = dynamo_world(&manifest(1, "", "")).await else { return };
    metrics_count_dead_letters(w).await;
}

#[tokio::test]
async fn a_large_record_is_kept_in_the_file_store_and_replayed_from_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("ferry.db")).expect("sqlite");
    let secrets = FileSecretStore::open(dir.path()).expect("secrets");
    let w = world_on(Arc::new(store), Arc::new(secrets), dir, &manifest(1, "", ""), true).await;
    w.run().await;
    let id = ids_of(&w.list("").await)[0]["id"].as_str().expect("id").to_owned();
    let item = w
        .app
        .hub
        .store
        .get(&ferry_core::ports::Key::new("T#acme#DL", format!("DL#{id}")))
        .await
        .expect("read")
        .expect("the dead letter's key as docs/storage.md says");
    assert!(item.body.get("source").is_none(), "the record is not in the item");
    assert_eq!(item.body["stored_at"], format!("dead-letters/{}/{id}.json", w.job));
    let dl = w.get(&id).await;
    assert_eq!(dl["source"]["note"].as_str().map(str::len), Some(40 * 1024), "read back from the file store");

    w.configured_mapping(json!({"id": {"from": "id"}, "n": {"from": "n", "type": "string"}})).await;
    let runs = w.replay(json!({"ids": [id.clone()]})).await;
    assert_eq!(runs[0]["status"], "succeeded", "{}", runs[0]);
    assert_eq!(w.get(&id).await["status"], "replayed");
    assert!(w.target.accepted().contains(&2));
}

/// A full run reads every record again (the cursor stays where it is).
async fn full_run(w: &World) -> Value {
    let r = w.app.admin(Method::POST, &w.runs(), Some(json!({"full": true}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    w.wait(r.json()["run"]["id"].as_str().expect("run id")).await
}

async fn a_record_failing_again_counts_on_its_letter(w: World) {
    w.target.refuse(&[1, 4]);
    let first = w.run().await;
    let second = full_run(&w).await;
    assert_eq!(second["counters"]["contacts"]["dead_lettered"], 3, "each run counts what it dead-lettered: {second}");
    let list = w.list("").await;
    let items = ids_of(&list);
    assert_eq!(items.len(), 3, "one letter per record, not per run: {list}");
    assert_eq!(list["counts"]["by_status"], json!({"pending": 3}), "{list}");
    for dl in &items {
        assert_eq!(dl["attempts"], 2, "{dl}");
        assert_eq!((&dl["run"], &dl["last_run"]), (&first["id"], &second["id"]), "{dl}");
    }
    // A discarded record stays discarded when it fails again; its attempts still count.
    let mapping_one = ids_of(&w.list("?category=mapping").await)[0]["id"].as_str().expect("id").to_owned();
    let r = w.app.admin(Method::POST, &format!("/v1/tenants/acme/dead-letters/{mapping_one}/discard"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    full_run(&w).await;
    let list = w.list("").await;
    assert_eq!(ids_of(&list).len(), 3, "{list}");
    assert_eq!(list["counts"]["by_status"], json!({"pending": 2, "discarded": 1}), "{list}");
    let discarded = w.get(&mapping_one).await;
    assert_eq!(
        (discarded["status"].as_str(), discarded["attempts"].as_u64()),
        (Some("discarded"), Some(3)),
        "{discarded}"
    );
    // A record the target now takes is delivered; its letter is left as it was.
    w.target.refuse(&[]);
    full_run(&w).await;
    let list = w.list("").await;
    assert_eq!(list["counts"]["by_status"], json!({"pending": 2, "discarded": 1}), "{list}");
}

#[tokio::test]
async fn a_record_that_fails_again_in_a_later_run_counts_an_attempt_on_its_letter() {
    a_record_failing_again_counts_on_its_letter(world(&manifest(1, "", "")).await).await;
}

#[tokio::test]
async fn a_record_that_fails_again_in_a_later_run_counts_an_attempt_on_its_letter_on_dynamodb() {
    let Some(w) = dynamo_world(&manifest(1, "", "")).await else { return };
    a_record_failing_again_counts_on_its_letter(w).await;
}
