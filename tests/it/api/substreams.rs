//! Substreams: a child flow read once per parent record, with a cursor per
//! partition, `partition` in request and mapping templates, and credentials
//! (`secrets`) in request templates only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::support::app::TestApp;
use crate::support::jobs::{serve, Conn, JobUnderTest};

const MANIFEST: &str = r#"
version: 1.0
name: chat-export
connectors:
  chat: {provider: chat, auth: api_key, api_key: {header: X-API-Key}}
  sink: {provider: sink, auth: none}
configs:
  schema:
    type: object
    properties:
      channel: {type: string, $ref: '#/definitions/channels'}
    definitions:
      channels: {enum: [placeholder]}
flows:
  - name: channels
    triggers: [init]
    source: {type: http, connector: chat, request: {path: /channels}, records: channels}
    target: {type: options, definition: channels, value: '{{ record.id }}'}
  - name: messages
    source:
      type: http
      connector: chat
      request:
        path: '/channels/{{ partition.value }}/messages'
        headers: {X-Workspace: '{{ secrets.workspace }}'}
      records: messages
      pagination: {type: page_number, size: 2, size_param: per_page}
      incremental: {cursor_field: ts, param: since}
      partition: {flow: channels, field: id}
    mapping:
      fields:
        id: {from: id}
        channel: '{{ partition.value }}'
        ts: {from: ts, type: integer}
    target: {type: http, connector: sink, path: /messages}
"#;

#[derive(Default)]
struct Chat {
    /// Messages per channel as (id, ts).
    messages: HashMap<String, Vec<(String, i64)>>,
    /// `since` values the child requests carried, per channel.
    since_seen: Vec<(String, Option<String>)>,
    workspaces: Vec<String>,
}

type Shared = Arc<Mutex<Chat>>;

async fn channels() -> Json<Value> {
    Json(json!({"channels": [{"id": "c1"}, {"id": "c2"}, {"id": "c3"}]}))
}

async fn messages(
    State(chat): State<Shared>,
    Path(channel): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Json<Value> {
    let mut chat = chat.lock().expect("lock");
    let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    let size: usize = q.get("per_page").and_then(|p| p.parse().ok()).unwrap_or(100);
    let since: i64 = q.get("since").and_then(|s| s.parse().ok()).unwrap_or(i64::MIN);
    if page == 1 {
        chat.since_seen.push((channel.clone(), q.get("since").cloned()));
        chat.workspaces.push(headers.get("x-workspace").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned());
    }
    let all: Vec<Value> = chat
        .messages
        .get(&channel)
        .into_iter()
        .flatten()
        .filter(|(_, ts)| *ts > since)
        .map(|(id, ts)| json!({"id": id, "ts": ts}))
        .collect();
    let page: Vec<Value> = all.into_iter().skip((page - 1) * size).take(size).collect();
    Json(json!({ "messages": page }))
}

async fn setup() -> (JobUnderTest, Shared, Arc<Mutex<Vec<Value>>>) {
    let chat: Shared = Default::default();
    {
        let mut c = chat.lock().expect("lock");
        c.messages.insert("c1".into(), (1..=5).map(|i| (format!("c1-{i}"), i * 10)).collect());
        c.messages.insert("c3".into(), (1..=4).map(|i| (format!("c3-{i}"), i * 100)).collect());
    }
    let src = serve(
        Router::new()
            .route("/channels", get(channels))
            .route("/channels/{channel}/messages", get(messages))
            .with_state(chat.clone()),
    )
    .await;
    let received: Arc<Mutex<Vec<Value>>> = Default::default();
    let r = received.clone();
    let dst = serve(Router::new().route(
        "/messages",
        post(move |Json(v): Json<Value>| {
            let r = r.clone();
            async move {
                match v {
                    Value::Array(a) => r.lock().expect("lock").extend(a),
                    other => r.lock().expect("lock").push(other),
                }
                StatusCode::CREATED
            }
        }),
    ))
    .await;
    let job = JobUnderTest::new(
        TestApp::embedded().await,
        "chat-export",
        MANIFEST,
        &[
            Conn {
                name: "chat",
                provider: "chat",
                auth: "api_key",
                base_url: &src,
                credentials: Some(json!({"api_key": "k-123", "workspace": "ws-canary-7f3a"})),
            },
            Conn { name: "sink", provider: "sink", auth: "none", base_url: &dst, credentials: None },
        ],
        json!({}),
    )
    .await;
    (job, chat, received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_substream_reads_every_partition_and_keeps_a_cursor_per_partition() {
    let (job, chat, received) = setup().await;
    let run = job.run(json!({})).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["counters"]["messages"]["written"], 9, "{run}");
    let got = received.lock().expect("lock").clone();
    let mut pairs: Vec<(String, String)> = got
        .iter()
        .map(|m| (m["channel"].as_str().unwrap_or("").to_owned(), m["id"].as_str().unwrap_or("").to_owned()))
        .collect();
    pairs.sort();
    assert_eq!(pairs.len(), 9);
    assert!(pairs.iter().all(|(c, id)| id.starts_with(c.as_str())), "records carry their partition: {pairs:?}");
    let state = &job.job().await["state"]["messages"];
    assert_eq!(state["partitions"], json!({"c1": 50, "c3": 400}), "{state}");

    // New messages in one channel: the next run asks each partition for what
    // is after its own cursor, and writes only the new message.
    chat.lock().expect("lock").messages.get_mut("c1").expect("c1").push(("c1-6".into(), 60));
    chat.lock().expect("lock").since_seen.clear();
    let run = job.run(json!({})).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["counters"]["messages"]["written"], 1, "{run}");
    let mut since = chat.lock().expect("lock").since_seen.clone();
    since.sort();
    assert_eq!(
        since,
        vec![("c1".into(), Some("50".into())), ("c2".into(), None), ("c3".into(), Some("400".into()))],
        "each partition resumes from its own cursor"
    );
    {
        let c = chat.lock().expect("lock");
        assert!(c.workspaces.iter().all(|w| w == "ws-canary-7f3a"), "secrets render in requests: {:?}", c.workspaces);
    }
    let logs = job.logs(run["id"].as_str().unwrap_or("")).await.join("\n");
    assert!(logs.contains("partition c1"), "{logs}");
    assert!(!logs.contains("ws-canary-7f3a") && !logs.contains("k-123"), "no credentials in logs: {logs}");
}
