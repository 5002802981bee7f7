//! A paginated fake source API on loopback: 23 items, 5 per page, every
//! pagination style at once (next URL, Link header, cursor, offset, page).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

pub const TOTAL: usize = 23;

#[derive(Clone, Default)]
pub struct Seen(pub Arc<Mutex<Vec<SeenRequest>>>);

/// A request the fake saw: its query parameters and `x-api-key` header.
pub type SeenRequest = (HashMap<String, String>, Option<String>);

pub fn item(i: usize) -> Value {
    json!({"id": i, "updated_at": format!("2024-01-{:02}T00:00:00Z", i + 1), "active": i % 2 == 0})
}

async fn api(
    State(seen): State<Seen>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> impl IntoResponse {
    seen.0
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((q.clone(), headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::to_owned)));
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

pub async fn serve() -> (String, Seen) {
    let seen = Seen::default();
    let router = Router::new().route("/items", get(api)).with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (format!("http://{addr}"), seen)
}

/// The fake API plus `/owners`, for init runs.
pub async fn serve_with_owners() -> (String, Seen) {
    let seen = Seen::default();
    let router = Router::new()
        .route("/items", get(api))
        .route("/owners", get(|| async { Json(json!({"owners": [{"id": "ann"}, {"id": "bob"}]})) }))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (format!("http://{addr}"), seen)
}
