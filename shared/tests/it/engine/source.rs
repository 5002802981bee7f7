//! Paginated sources against a local fake API: every pagination style, record
//! selection, filters, `take`, incremental parameters and credentials.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use ferry_shared::engine::http::{HttpClient, HttpPolicy};
use ferry_shared::engine::source::{Endpoint, Reader, SourceSpec};
use ferry_shared::engine::template::Templates;
use ferry_shared::manifest::{ApiKeyPlacement, AuthKind, Incremental, Pagination, Request};
use ferry_shared::ports::SecretFields;
use serde_json::{json, Value};

const TOTAL: usize = 23;

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<(HashMap<String, String>, Option<String>)>>>);

fn item(i: usize) -> Value {
    json!({"id": i, "updated_at": format!("2024-01-{:02}T00:00:00Z", i + 1), "active": i % 2 == 0})
}

async fn api(State(seen): State<Seen>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> impl IntoResponse {
    seen.0.lock().unwrap_or_else(|p| p.into_inner()).push((q.clone(), headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::to_owned)));
    let page_size = 5;
    let start: usize = match (q.get("offset"), q.get("page"), q.get("cursor")) {
        (Some(o), _, _) => o.parse().unwrap_or(0),
        (_, Some(p), _) => (p.parse::<usize>().unwrap_or(1).saturating_sub(1)) * page_size,
        (_, _, Some(c)) => c.parse().unwrap_or(0),
        _ => 0,
    };
    let end = (start + page_size).min(TOTAL);
    let items: Vec<Value> = (start..end).map(item).collect();
    let more = end < TOTAL;
    let mut h = HeaderMap::new();
    if more {
        if let Ok(v) = HeaderValue::from_str(&format!("</items?offset={end}&style=link>; rel=\"next\"")) {
            h.insert("link", v);
        }
    }
    let body = json!({
        "data": {"items": items},
        "next": if more { Value::String(format!("/items?offset={end}")) } else { Value::Null },
        "cursor": if more { Value::String(end.to_string()) } else { Value::String(String::new()) },
    });
    (h, Json(body))
}

async fn serve() -> (String, Seen) {
    let seen = Seen::default();
    let router = Router::new().route("/items", get(api)).with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (format!("http://{addr}"), seen)
}

fn http() -> HttpClient {
    HttpClient::new(HttpPolicy { timeout: Duration::from_secs(5), ..HttpPolicy::default() }).expect("client")
}

fn request() -> Request {
    serde_json::from_value(json!({"path": "/items"})).expect("request")
}

async fn read_all(base: &str, pagination: Option<Pagination>, filter: Option<&str>, take: Option<u32>, incremental: Option<Incremental>, since: Option<String>) -> Vec<Value> {
    let req = request();
    let secrets = {
        let mut s = SecretFields::new();
        s.insert("api_key", "k-123");
        s
    };
    let placement = ApiKeyPlacement { header: Some("X-API-Key".into()), query: None, prefix: None };
    let endpoint = Endpoint { base_url: base, auth: AuthKind::ApiKey, api_key: Some(&placement), default_headers: vec![], secrets: &secrets, budget: None };
    let spec = SourceSpec { request: &req, records: Some("data.items"), filter, pagination: pagination.as_ref(), incremental: incremental.as_ref(), take };
    let client = http();
    let templates = Templates::new();
    let mut reader = Reader::new(spec, endpoint, &client, &templates, since);
    let ctx = minijinja::context! { config => minijinja::Value::from_serialize(json!({})) };
    let mut all = Vec::new();
    while let Some(page) = reader.next_page(&ctx).await.expect("page") {
        all.extend(page.records);
    }
    all
}

fn ids(records: &[Value]) -> Vec<u64> {
    records.iter().filter_map(|r| r["id"].as_u64()).collect()
}

#[tokio::test]
async fn every_pagination_style_reads_every_record_once() {
    let (base, _) = serve().await;
    let all: Vec<u64> = (0..TOTAL as u64).collect();
    let styles: Vec<Value> = vec![
        json!({"type": "next_url", "path": "next"}),
        json!({"type": "link_header"}),
        json!({"type": "cursor", "path": "cursor", "param": "cursor"}),
        json!({"type": "offset", "limit": 5}),
        json!({"type": "page_number", "param": "page", "size_param": "per_page", "size": 5}),
    ];
    for style in styles {
        let p: Pagination = serde_json::from_value(style.clone()).expect("pagination");
        assert_eq!(ids(&read_all(&base, Some(p), None, None, None, None).await), all, "{style}");
    }
}

#[tokio::test]
async fn filters_and_take_select_records() {
    let (base, _) = serve().await;
    let p: Pagination = serde_json::from_value(json!({"type": "offset", "limit": 5})).expect("p");
    let even = read_all(&base, Some(p.clone()), Some("record.active"), None, None, None).await;
    assert_eq!(ids(&even), (0..TOTAL as u64).filter(|i| i % 2 == 0).collect::<Vec<_>>());
    let first7 = read_all(&base, Some(p), None, Some(7), None, None).await;
    assert_eq!(ids(&first7), (0..7).collect::<Vec<_>>());
}

#[tokio::test]
async fn credentials_and_incremental_cursor_go_on_the_request() {
    let (base, seen) = serve().await;
    let inc = Incremental { cursor_field: "updated_at".into(), param: Some("since".into()), start: None, lookback: None };
    let p: Pagination = serde_json::from_value(json!({"type": "offset", "limit": 5})).expect("p");
    read_all(&base, Some(p), None, None, Some(inc), Some("2024-01-10T00:00:00Z".into())).await;
    let seen = seen.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert!(!seen.is_empty());
    for (query, key) in &seen {
        assert_eq!(key.as_deref(), Some("k-123"), "api key header on every page");
        assert_eq!(query.get("since").map(String::as_str), Some("2024-01-10T00:00:00Z"));
    }
}
