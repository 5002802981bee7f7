//! Small stand-ins for the sample integrations' SaaS APIs, served on loopback.
//! They check credentials and speak each API's pagination, and record what
//! they were sent so the tests can check every effect.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{json, Value};

pub async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}")
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get("authorization")?.to_str().ok()?.strip_prefix("Bearer ")
}

// --- PokéAPI --------------------------------------------------------------

pub async fn pokeapi() -> String {
    async fn types() -> Json<Value> {
        Json(json!({"count": 3, "results": [
            {"name": "electric", "url": "https://pokeapi.co/api/v2/type/13/"},
            {"name": "fire", "url": "https://pokeapi.co/api/v2/type/10/"},
            {"name": "water", "url": "https://pokeapi.co/api/v2/type/11/"}
        ]}))
    }
    async fn of_type(Path(t): Path<String>) -> impl IntoResponse {
        let names: &[&str] = match t.as_str() {
            "electric" => &["pikachu", "raichu"],
            "fire" => &["charmander"],
            "water" => &["squirtle"],
            _ => return (StatusCode::NOT_FOUND, Json(json!({"detail": "Not found."}))),
        };
        let pokemon: Vec<Value> =
            names.iter().enumerate().map(|(i, n)| json!({"slot": i + 1, "pokemon": {"name": n}})).collect();
        (StatusCode::OK, Json(json!({"name": t, "pokemon": pokemon})))
    }
    serve(Router::new().route("/type", get(types)).route("/type/{t}", get(of_type))).await
}

// --- Slack ----------------------------------------------------------------

#[derive(Default)]
pub struct Slack {
    pub posted: Vec<Value>,
    pub bad_auth: u32,
}

pub const SLACK_TOKEN: &str = "xoxb-sample-7c1e";

pub async fn slack() -> (String, Arc<Mutex<Slack>>) {
    let state: Arc<Mutex<Slack>> = Default::default();
    async fn users(
        State(s): State<Arc<Mutex<Slack>>>,
        headers: HeaderMap,
        Query(q): Query<HashMap<String, String>>,
    ) -> Json<Value> {
        if bearer(&headers) != Some(SLACK_TOKEN) {
            s.lock().expect("lock").bad_auth += 1;
            return Json(json!({"ok": false, "error": "invalid_auth"}));
        }
        // Two pages, linked by Slack's response_metadata.next_cursor.
        match q.get("cursor").map(String::as_str) {
            None | Some("") => Json(json!({"ok": true, "members": [
                {"id": "U01", "name": "ash", "real_name": "Ash Ketchum", "deleted": false, "is_bot": false},
                {"id": "B01", "name": "pokebot", "deleted": false, "is_bot": true}
            ], "response_metadata": {"next_cursor": "dXNlcjpVMDI="}})),
            Some("dXNlcjpVMDI=") => Json(json!({"ok": true, "members": [
                {"id": "U02", "name": "misty", "real_name": "Misty", "deleted": false, "is_bot": false},
                {"id": "U03", "name": "gone", "deleted": true, "is_bot": false}
            ], "response_metadata": {"next_cursor": ""}})),
            Some(_) => Json(json!({"ok": false, "error": "invalid_cursor"})),
        }
    }
    async fn post_message(
        State(s): State<Arc<Mutex<Slack>>>,
        headers: HeaderMap,
        Json(body): Json<Value>,
    ) -> impl IntoResponse {
        if bearer(&headers) != Some(SLACK_TOKEN) {
            s.lock().expect("lock").bad_auth += 1;
            return (StatusCode::UNAUTHORIZED, Json(json!({"ok": false, "error": "invalid_auth"})));
        }
        s.lock().expect("lock").posted.push(body);
        (StatusCode::OK, Json(json!({"ok": true, "ts": "1700000000.000100"})))
    }
    let base = serve(
        Router::new()
            .route("/users.list", get(users))
            .route("/chat.postMessage", post(post_message))
            .with_state(state.clone()),
    )
    .await;
    (base, state)
}

// --- HubSpot --------------------------------------------------------------

pub const HUBSPOT_TOKEN: &str = "pat-na1-sample-93bd";

/// `n` contacts, served 100 per page behind HubSpot's `paging.next.after`.
pub async fn hubspot(n: usize) -> String {
    #[derive(Clone)]
    struct Hs {
        n: usize,
    }
    async fn contacts(
        State(hs): State<Hs>,
        headers: HeaderMap,
        Query(q): Query<HashMap<String, String>>,
    ) -> impl IntoResponse {
        if bearer(&headers) != Some(HUBSPOT_TOKEN) {
            return (StatusCode::UNAUTHORIZED, Json(json!({"status": "error", "category": "INVALID_AUTHENTICATION"})));
        }
        let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(10).min(100);
        let after: usize = q.get("after").and_then(|a| a.parse().ok()).unwrap_or(0);
        let end = (after + limit).min(hs.n);
        let results: Vec<Value> = (after..end)
            .map(|i| {
                let id = 1000 + i;
                json!({
                    "id": id.to_string(),
                    "properties": {
                        "email": format!("contact{i}@example.com"),
                        "firstname": if i % 7 == 0 { Value::Null } else { json!(format!("First{i}")) },
                        "lastname": format!("Last, \"{i}\""),
                        "lifecyclestage": if i % 2 == 0 { "lead" } else { "customer" },
                        "lastmodifieddate": format!("2024-03-{:02}T10:00:00.000Z", 1 + i % 28)
                    },
                    "createdAt": "2024-01-01T00:00:00.000Z",
                    "updatedAt": format!("2024-03-{:02}T10:00:00.000Z", 1 + i % 28),
                    "archived": false
                })
            })
            .collect();
        let mut body = json!({ "results": results });
        if end < hs.n {
            body["paging"] = json!({"next": {"after": end.to_string(), "link": "?after=..."}});
        }
        (StatusCode::OK, Json(body))
    }
    serve(Router::new().route("/crm/v3/objects/contacts", get(contacts)).with_state(Hs { n })).await
}

// --- Shop and warehouse -----------------------------------------------------

pub const SHOP_KEY: &str = "shop-key-4411";
pub const WAREHOUSE_USER: &str = "ferry";
pub const WAREHOUSE_PASSWORD: &str = "wh-pass-0b7f";

#[derive(Default)]
pub struct Shop {
    /// Orders by id.
    pub orders: BTreeMap<u64, Value>,
    /// The `updated_since` of every first-page request.
    pub since_seen: Vec<Option<String>>,
}

impl Shop {
    pub fn put_order(&mut self, id: u64, total: f64, updated_at: &str) {
        self.orders.insert(
            id,
            json!({
                "id": id, "number": 5000 + id, "status": "paid", "total": format!("{total:.2}"),
                "updated_at": updated_at, "gift": id % 5 == 0, "gift_message": "Happy birthday!",
                "customer": {"first_name": "Cus", "last_name": format!("Tomer{id}")},
                "shipping": if id % 3 == 0 { json!({}) } else { json!({"country": "DE"}) },
                "line_items": [{"sku": format!("SKU-{}", id % 4), "qty": 1 + id % 3}]
            }),
        );
    }
}

pub async fn shop() -> (String, Arc<Mutex<Shop>>) {
    let state: Arc<Mutex<Shop>> = Default::default();
    async fn orders(
        State(s): State<Arc<Mutex<Shop>>>,
        headers: HeaderMap,
        Query(q): Query<HashMap<String, String>>,
    ) -> impl IntoResponse {
        if headers.get("x-shop-key").and_then(|v| v.to_str().ok()) != Some(SHOP_KEY) {
            return (StatusCode::UNAUTHORIZED, Json(json!({"error": "bad key"})));
        }
        let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1).max(1);
        let per: usize = q.get("per_page").and_then(|p| p.parse().ok()).unwrap_or(20).clamp(1, 100);
        let since = q.get("updated_since").cloned();
        let mut s = s.lock().expect("lock");
        if page == 1 {
            s.since_seen.push(since.clone());
        }
        // Ordered by update time, then id, as real APIs do for incremental reads.
        let mut matching: Vec<&Value> = s
            .orders
            .values()
            .filter(|o| since.as_deref().is_none_or(|since| o["updated_at"].as_str().unwrap_or("") >= since))
            .collect();
        matching.sort_by_key(|o| (o["updated_at"].as_str().unwrap_or("").to_owned(), o["id"].as_u64()));
        let data: Vec<Value> = matching.into_iter().skip((page - 1) * per).take(per).cloned().collect();
        (StatusCode::OK, Json(json!({ "data": data, "page": page })))
    }
    let base = serve(Router::new().route("/v1/orders", get(orders)).with_state(state.clone())).await;
    (base, state)
}

#[derive(Default)]
pub struct Warehouse {
    /// Shipments by order id: the batch endpoint upserts.
    pub shipments: BTreeMap<String, Value>,
    /// Requests whose idempotency key was new, in order; a repeated key is
    /// acknowledged and not applied again.
    pub applied_keys: std::collections::HashSet<String>,
    /// How many applied requests carried each `order_id@total` version.
    pub applied: BTreeMap<String, u32>,
    pub requests: u32,
    /// Milliseconds each request takes (to give crash tests time to strike).
    pub delay_ms: u64,
}

pub async fn warehouse() -> (String, Arc<Mutex<Warehouse>>) {
    let state: Arc<Mutex<Warehouse>> = Default::default();
    async fn batch(
        State(s): State<Arc<Mutex<Warehouse>>>,
        headers: HeaderMap,
        Json(body): Json<Value>,
    ) -> impl IntoResponse {
        use base64::Engine as _;
        let delay = s.lock().expect("lock").delay_ms;
        if delay > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
        }
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{WAREHOUSE_USER}:{WAREHOUSE_PASSWORD}"))
        );
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
            return (StatusCode::UNAUTHORIZED, Json(json!({"error": "bad credentials"})));
        }
        let Some(key) = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned) else {
            return (StatusCode::BAD_REQUEST, Json(json!({"error": "Idempotency-Key required"})));
        };
        let items = match body {
            Value::Array(items) => items,
            one @ Value::Object(_) => vec![one],
            _ => return (StatusCode::BAD_REQUEST, Json(json!({"error": "expected shipments"}))),
        };
        let mut s = s.lock().expect("lock");
        s.requests += 1;
        if !s.applied_keys.insert(key) {
            return (StatusCode::OK, Json(json!({"replayed": true})));
        }
        for item in items {
            let id = item["order_id"].as_str().unwrap_or("").to_owned();
            *s.applied.entry(format!("{id}@{}", item["total"])).or_default() += 1;
            s.shipments.insert(id, item);
        }
        (StatusCode::OK, Json(json!({"accepted": true})))
    }
    let base = serve(Router::new().route("/shipments/batch", put(batch)).with_state(state.clone())).await;
    (base, state)
}
