//! Paginated sources against a local fake API: every pagination style, record
//! selection, filters, `take`, incremental parameters and credentials.

use std::time::Duration;

use ferry_core::manifest::{ApiKeyPlacement, AuthKind, Incremental, Pagination, Request};
use ferry_core::ports::SecretFields;
use ferry_engine::http::{HttpClient, HttpPolicy};
use ferry_engine::source::{Endpoint, Reader, SourceSpec};
use ferry_engine::template::Templates;
use ferry_net::NetPolicy;
use serde_json::{json, Value};

use super::fake::{serve, TOTAL};

fn http() -> HttpClient {
    HttpClient::new(HttpPolicy { timeout: Duration::from_secs(5), ..HttpPolicy::default() }, NetPolicy::new(true))
        .expect("client")
}

fn request() -> Request {
    serde_json::from_value(json!({"path": "/items"})).expect("request")
}

async fn read_all(
    base: &str,
    pagination: Option<Pagination>,
    filter: Option<&str>,
    take: Option<u32>,
    incremental: Option<Incremental>,
    since: Option<String>,
) -> Vec<Value> {
    let req = request();
    let secrets = {
        let mut s = SecretFields::new();
        s.insert("api_key", "k-123");
        s
    };
    let placement = ApiKeyPlacement { header: Some("X-API-Key".into()), query: None, prefix: None };
    let endpoint = Endpoint {
        base_url: base,
        auth: AuthKind::ApiKey,
        api_key: Some(&placement),
        default_headers: vec![],
        secrets: &secrets,
        throttle: Default::default(),
        max_response_bytes: None,
    };
    let spec = SourceSpec {
        request: &req,
        records: Some("data.items"),
        filter,
        pagination: pagination.as_ref(),
        incremental: incremental.as_ref(),
        take,
    };
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
    let inc =
        Incremental { cursor_field: "updated_at".into(), param: Some("since".into()), start: None, lookback: None };
    let p: Pagination = serde_json::from_value(json!({"type": "offset", "limit": 5})).expect("p");
    read_all(&base, Some(p), None, None, Some(inc), Some("2024-01-10T00:00:00Z".into())).await;
    let seen = seen.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert!(!seen.is_empty());
    for (query, key) in &seen {
        assert_eq!(key.as_deref(), Some("k-123"), "api key header on every page");
        assert_eq!(query.get("since").map(String::as_str), Some("2024-01-10T00:00:00Z"));
    }
}
