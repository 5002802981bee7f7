//! Reruns: `POST …/runs/{run}/rerun` runs an ended run again, with the
//! configuration it recorded (`original`: its release, configs and mapping
//! versions, even after the job changed) or with the job as it is now
//! (`current`); the new run points back at it and waits its turn like any
//! trigger, in a run of its own.

use std::sync::{Arc, Mutex};

use axum::extract::Path;
use axum::http::{Method, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use ferry_core::model::{RerunConfig, RunMode};
use ferry_core::ports::{Condition, Key, RunDispatcher, RunRef, SecretStore, Store, WriteOp};
use ferry_embedded::{FileSecretStore, SqliteStore};
use ferry_service::reruns::RerunRequest;
use ferry_service::runs::RunRequest;
use ferry_service::Hub;
use serde_json::{json, Value};

use crate::support::app::TestApp;
use crate::support::aws;
use crate::support::jobs::serve;

/// Release `n` writes to `/r<n>/items`, so the target sees which release ran.
fn manifest(n: u32) -> String {
    format!(
        r#"
version: 1.0
name: contacts-sync
connectors:
  src: {{provider: itemsource, auth: none}}
  dst: {{provider: warehouse, auth: none}}
configs:
  schema:
    type: object
    properties:
      tag: {{type: string}}
flows:
  - name: contacts
    source: {{type: http, connector: src, request: {{path: /contacts}}, records: contacts}}
    mapping: {{fields: {{label: 'manifest-{{{{ record.id }}}}'}}}}
    target: {{type: http, connector: dst, path: /r{n}/items}}
"#
    )
}

/// What the target received: (release path segment, label) per record.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

struct World {
    app: TestApp,
    job: String,
    mapping: String,
    seen: Seen,
}

/// The labels the target received through `/r<release>/items`, in order, since `from`.
fn labels(seen: &Seen, from: usize) -> Vec<(String, String)> {
    seen.lock().unwrap_or_else(|p| p.into_inner())[from..].to_vec()
}

fn received(seen: &Seen) -> usize {
    seen.lock().unwrap_or_else(|p| p.into_inner()).len()
}

fn mapping_fields(version: &str) -> Value {
    json!({"label": format!("{{{{ config.tag }}}}-{version}-{{{{ record.id }}}}")})
}

async fn world_on(store: Arc<dyn Store>, secrets: Arc<dyn SecretStore>, dir: tempfile::TempDir) -> World {
    let app = TestApp::with_hub(Hub::new(store, secrets), dir).await;
    app.tenant("acme").await;
    app.publish("contacts-sync", &manifest(1)).await;
    let src =
        serve(Router::new().route("/contacts", get(|| async { Json(json!({"contacts": [{"id": 1}, {"id": 2}]})) })))
            .await;
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let dst = serve(Router::new().route(
        "/{release}/items",
        post(move |Path(release): Path<String>, Json(body): Json<Value>| {
            let s = s.clone();
            async move {
                let mut labels = Vec::new();
                collect_labels(&body, &mut labels);
                s.lock().unwrap_or_else(|p| p.into_inner()).extend(labels.into_iter().map(|l| (release.clone(), l)));
                StatusCode::CREATED
            }
        }),
    ))
    .await;
    let mut conns = serde_json::Map::new();
    for (name, provider, base) in [("src", "itemsource", src), ("dst", "warehouse", dst)] {
        let body = json!({"name": name, "connector": provider, "auth_kind": "none", "settings": {"base_url": base}});
        let r = app.admin(Method::POST, "/v1/tenants/acme/connections", Some(body)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        conns.insert(name.into(), r.json()["id"].clone());
    }
    let r = app
        .admin(
            Method::POST,
            "/v1/tenants/acme/mappings",
            Some(json!({"name": "contacts", "entity": "contact", "fields": mapping_fields("m1")})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["version"], 1, "a new mapping is version 1");
    let mapping = r.json()["id"].as_str().expect("mapping id").to_owned();
    let job = app
        .job(
            "acme",
            json!({"name": "contacts", "integration": "contacts-sync", "connections": conns,
                   "release": {"kind": "channel", "channel": "latest"},
                   "configs": {"tag": "a"}, "mappings": {"contacts": {"mapping": mapping}}}),
        )
        .await;
    World { app, job, mapping, seen }
}

fn collect_labels(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => match m.get("label").and_then(Value::as_str) {
            Some(l) => out.push(l.to_owned()),
            None => m.values().for_each(|v| collect_labels(v, out)),
        },
        Value::Array(a) => a.iter().for_each(|v| collect_labels(v, out)),
        _ => {}
    }
}

async fn world() -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("ferry.db")).expect("sqlite");
    let secrets = FileSecretStore::open(dir.path()).expect("secrets");
    world_on(Arc::new(store), Arc::new(secrets), dir).await
}

impl World {
    fn runs(&self) -> String {
        format!("/v1/tenants/acme/jobs/{}/runs", self.job)
    }

    async fn run_and_wait(&self) -> Value {
        let r = self.app.admin(Method::POST, &self.runs(), Some(json!({}))).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
        self.wait(r.json()["run"]["id"].as_str().expect("run id")).await
    }

    async fn wait(&self, run: &str) -> Value {
        for _ in 0..600 {
            let v = self.app.admin(Method::GET, &format!("{}/{run}", self.runs()), None).await.json();
            if !matches!(v["status"].as_str(), Some("queued" | "running" | "interrupted")) {
                return v;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("run {run} did not finish");
    }

    async fn rerun(&self, run: &str, config: &str) -> crate::support::app::Response {
        self.app.admin(Method::POST, &format!("{}/{run}/rerun", self.runs()), Some(json!({"config": config}))).await
    }

    /// Starts a rerun and waits for it; the rerun's record.
    async fn rerun_and_wait(&self, run: &str, config: &str) -> Value {
        let r = self.rerun(run, config).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
        assert_eq!(r.json()["bundled"], false, "the job was free: {}", r.text());
        self.wait(r.json()["run"]["id"].as_str().expect("run id")).await
    }

    /// After the first run: a new release, the mapping and the job's configs changed.
    async fn change_everything(&self) {
        assert_eq!(self.app.publish("contacts-sync", &manifest(2)).await, 2);
        let r = self
            .app
            .admin(
                Method::PATCH,
                &format!("/v1/tenants/acme/mappings/{}", self.mapping),
                Some(json!({"fields": mapping_fields("m2")})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(r.json()["version"], 2, "an update makes a new version");
        let r = self
            .app
            .admin(
                Method::PATCH,
                &format!("/v1/tenants/acme/jobs/{}", self.job),
                Some(json!({"configs": {"tag": "b"}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
}

async fn original_config_replays_what_the_run_had(w: World) {
    let first = w.run_and_wait().await;
    assert_eq!(first["status"], "succeeded", "{first}");
    assert_eq!(labels(&w.seen, 0), pairs(&[("r1", "a-m1-1"), ("r1", "a-m1-2")]));
    let id = first["id"].as_str().expect("id");
    w.change_everything().await;

    let before = received(&w.seen);
    let rerun = w.rerun_and_wait(id, "original").await;
    assert_eq!(rerun["status"], "succeeded", "{rerun}");
    assert_eq!(rerun["release"], 1, "{rerun}");
    assert_eq!(
        labels(&w.seen, before),
        pairs(&[("r1", "a-m1-1"), ("r1", "a-m1-2")]),
        "release 1, mapping version 1 and the configs the run had"
    );
    assert_eq!(rerun["config"]["release"], 1);
    assert_eq!(rerun["config"]["configs"], json!({"tag": "a"}));
    assert_eq!(
        rerun["config"]["mappings"]["contacts"],
        json!({"kind": "configured", "mapping": w.mapping, "version": 1})
    );
}

#[tokio::test]
async fn a_rerun_with_the_original_config_uses_the_release_and_mapping_version_the_run_had() {
    original_config_replays_what_the_run_had(world().await).await;
}

#[tokio::test]
async fn a_rerun_with_the_original_config_uses_the_release_and_mapping_version_the_run_had_on_dynamodb() {
    let (Some(store), Some(secrets)) = (aws::dynamo_store().await, aws::secrets_manager_store().await) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    original_config_replays_what_the_run_had(world_on(Arc::new(store), Arc::new(secrets), dir).await).await;
}

#[tokio::test]
async fn a_rerun_with_the_current_config_uses_the_job_as_it_is_now() {
    let w = world().await;
    let first = w.run_and_wait().await;
    let id = first["id"].as_str().expect("id");
    w.change_everything().await;

    let before = received(&w.seen);
    let rerun = w.rerun_and_wait(id, "current").await;
    assert_eq!(rerun["status"], "succeeded", "{rerun}");
    assert_eq!(rerun["release"], 2, "{rerun}");
    assert_eq!(labels(&w.seen, before), pairs(&[("r2", "b-m2-1"), ("r2", "b-m2-2")]));
    assert_eq!(rerun["config"]["configs"], json!({"tag": "b"}));
    assert_eq!(rerun["config"]["mappings"]["contacts"]["version"], 2);
    // The run it reruns still shows what it ran with.
    let first = w.app.admin(Method::GET, &format!("{}/{id}", w.runs()), None).await.json();
    assert_eq!(
        (first["config"]["release"].clone(), first["config"]["configs"].clone()),
        (json!(1), json!({"tag": "a"}))
    );
}

#[tokio::test]
async fn a_rerun_points_back_at_its_run() {
    let w = world().await;
    w.app.member("olga@acme.example", &["acme"]).await;
    let token = w.app.login("olga@acme.example", "correct horse battery").await;
    let first = w.run_and_wait().await;
    let id = first["id"].as_str().expect("id");
    assert!(first.get("rerun_of").is_none(), "{first}");
    assert_eq!(first["config"]["mode"], "normal", "{first}");

    let r = w
        .app
        .call(Method::POST, &format!("{}/{id}/rerun", w.runs()), Some(&token), Some(json!({"config": "original"})))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let rerun = w.wait(r.json()["run"]["id"].as_str().expect("run id")).await;
    assert_eq!(rerun["rerun_of"], id, "{rerun}");
    assert_eq!(rerun["rerun_config"], "original");
    assert_eq!(rerun["triggers"].as_array().map(Vec::len), Some(1), "{rerun}");
    assert_eq!(rerun["triggers"][0]["source"], "rerun");
    assert_eq!(rerun["triggers"][0]["by"], "olga@acme.example");
    assert_eq!(rerun["mode"], "normal");
    let listed = w.app.admin(Method::GET, &w.runs(), None).await.json();
    assert_eq!(listed["items"][0]["rerun_of"], id, "newest first: {listed}");
    let logs =
        w.app.admin(Method::GET, &format!("{}/{}/logs", w.runs(), rerun["id"].as_str().unwrap_or("")), None).await;
    assert!(logs.text().contains(&format!("rerun of run {id} with the original configuration")), "{}", logs.text());

    // A rerun of a rerun points at the rerun.
    let again = w.rerun_and_wait(rerun["id"].as_str().expect("id"), "current").await;
    assert_eq!(again["rerun_of"], rerun["id"]);
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

impl Queue {
    fn take(&self) -> Vec<RunRef> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

#[tokio::test]
async fn a_rerun_while_the_job_runs_waits_its_turn() {
    let w = world().await;
    let queue = Arc::new(Queue::default());
    let hub = w.app.hub.clone().with_dispatcher(queue.clone());
    let api = || -> RunRequest { serde_json::from_value(json!({})).expect("run request") };
    let first = hub.runs().trigger_run("acme", &w.job, api(), "api").await.expect("trigger").run;
    for r in queue.take() {
        hub.execute_dispatched(&r).await.expect("first run");
    }
    w.change_everything().await;

    // A run holds the job: the rerun waits behind it, and so does a later trigger.
    let holder = hub.runs().trigger_run("acme", &w.job, api(), "api").await.expect("trigger").run;
    let refused = w.rerun(&holder.id, "current").await;
    assert_eq!((refused.status, refused.code()), (StatusCode::CONFLICT, "run_not_finished".to_owned()));
    let req = RerunRequest { config: RerunConfig::Original };
    let rerun = hub.runs().rerun("acme", &w.job, &first.id, req, "ops@acme.example").await.expect("rerun");
    assert!(rerun.bundled, "the job is held");
    assert_eq!(rerun.run.id, holder.id, "the answer names the run holding the job");
    let later = hub.runs().trigger_run("acme", &w.job, api(), "api").await.expect("trigger");
    assert!(later.bundled);

    let before = received(&w.seen);
    for r in queue.take() {
        hub.execute_dispatched(&r).await.expect("the holder, then what waited behind it");
    }
    let runs = w.app.admin(Method::GET, &w.runs(), None).await.json();
    let runs: Vec<Value> = runs["items"].as_array().cloned().unwrap_or_default().into_iter().rev().collect();
    assert_eq!(runs.len(), 4, "first, holder, the rerun, the later trigger's run: {runs:?}");
    let (rerun, after) = (&runs[2], &runs[3]);
    assert_eq!(rerun["rerun_of"], first.id.as_str(), "{rerun}");
    assert_eq!(rerun["triggers"].as_array().map(Vec::len), Some(1), "nothing joined the rerun: {rerun}");
    assert_eq!((rerun["status"].as_str(), rerun["release"].as_u64()), (Some("succeeded"), Some(1)), "{rerun}");
    assert!(after.get("rerun_of").is_none(), "the later trigger ran as the job is: {after}");
    assert_eq!((after["status"].as_str(), after["release"].as_u64()), (Some("succeeded"), Some(2)), "{after}");
    assert_eq!(
        labels(&w.seen, before),
        pairs(&[
            ("r2", "b-m2-1"),
            ("r2", "b-m2-2"),
            ("r1", "a-m1-1"),
            ("r1", "a-m1-2"),
            ("r2", "b-m2-1"),
            ("r2", "b-m2-2")
        ]),
        "the holder, the original configuration's rerun, the later run, in turn"
    );
    assert_eq!(rerun["mode"], serde_json::to_value(RunMode::Normal).expect("mode"));
}

#[tokio::test]
async fn rerunning_a_run_whose_release_is_gone_is_refused_with_a_stable_code() {
    let w = world().await;
    let first = w.run_and_wait().await;
    let id = first["id"].as_str().expect("id");
    w.change_everything().await;
    // Releases have no delete route: remove release 1 as a retention cleanup would.
    let key = Key::new("INTEGRATION#contacts-sync", format!("REL#{:010}", 1));
    assert!(w.app.hub.store.get(&key).await.expect("read").is_some(), "the release's key as docs/storage.md says");
    w.app.hub.store.write(vec![WriteOp::Delete { key, condition: Condition::None }]).await.expect("delete");

    let r = w.rerun(id, "original").await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "release_gone".to_owned()), "{}", r.text());
    assert!(r.json()["error"]["message"].as_str().unwrap_or("").contains("release 1"), "{}", r.text());
    // The job as it is now still runs.
    let rerun = w.rerun_and_wait(id, "current").await;
    assert_eq!((rerun["status"].as_str(), rerun["release"].as_u64()), (Some("succeeded"), Some(2)), "{rerun}");
}

#[tokio::test]
async fn rerunning_a_run_whose_mapping_version_is_gone_is_refused_with_a_stable_code() {
    mapping_version_gone_is_refused(world().await).await;
}

#[tokio::test]
async fn rerunning_a_run_whose_mapping_version_is_gone_is_refused_with_a_stable_code_on_dynamodb() {
    let (Some(store), Some(secrets)) = (aws::dynamo_store().await, aws::secrets_manager_store().await) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    mapping_version_gone_is_refused(world_on(Arc::new(store), Arc::new(secrets), dir).await).await;
}

async fn mapping_version_gone_is_refused(w: World) {
    let first = w.run_and_wait().await;
    let id = first["id"].as_str().expect("id");
    // The run applied version 1: it is kept when the update makes version 2, and deleted with the mapping.
    let r = w
        .app
        .admin(
            Method::PATCH,
            &format!("/v1/tenants/acme/mappings/{}", w.mapping),
            Some(json!({"fields": mapping_fields("m2")})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r =
        w.app.admin(Method::PATCH, &format!("/v1/tenants/acme/jobs/{}", w.job), Some(json!({"mappings": {}}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = w.app.admin(Method::DELETE, &format!("/v1/tenants/acme/mappings/{}", w.mapping), None).await;
    assert!(r.status.is_success(), "{}", r.text());

    let r = w.rerun(id, "original").await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "mapping_version_gone".to_owned()), "{}", r.text());
    let before = received(&w.seen);
    let rerun = w.rerun_and_wait(id, "current").await;
    assert_eq!(rerun["status"], "succeeded", "{rerun}");
    assert_eq!(labels(&w.seen, before), pairs(&[("r1", "manifest-1"), ("r1", "manifest-2")]), "the release's mapping");
}

#[tokio::test]
async fn an_updated_mapping_keeps_its_earlier_versions_for_reruns() {
    let w = world().await;
    let first = w.run_and_wait().await;
    let id = first["id"].as_str().expect("id");
    for n in 2..=3 {
        let r = w
            .app
            .admin(
                Method::PATCH,
                &format!("/v1/tenants/acme/mappings/{}", w.mapping),
                Some(json!({"fields": mapping_fields(&format!("m{n}"))})),
            )
            .await;
        assert_eq!(r.json()["version"], n, "{}", r.text());
    }
    let before = received(&w.seen);
    let rerun = w.rerun_and_wait(id, "original").await;
    assert_eq!(labels(&w.seen, before), pairs(&[("r1", "a-m1-1"), ("r1", "a-m1-2")]), "{rerun}");
    // With the current configuration, the rerun applies the mapping's latest version.
    let current = w.rerun_and_wait(id, "current").await;
    assert_eq!(current["config"]["mappings"]["contacts"]["version"], 3);
}

#[tokio::test]
async fn a_rerun_request_says_which_configuration() {
    let w = world().await;
    let first = w.run_and_wait().await;
    let id = first["id"].as_str().expect("id");
    for body in [json!({}), json!({"config": "latest"}), json!({"config": "original", "mode": "init"})] {
        let r = w.app.admin(Method::POST, &format!("{}/{id}/rerun", w.runs()), Some(body.clone())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text());
    }
    let r = w.rerun("nosuchrun", "original").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
}
