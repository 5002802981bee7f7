//! Inbound webhooks end to end on the embedded hub: verification per
//! manifest, durable exactly-once intake, rejections that store nothing,
//! handshakes, webhook runs reading the payloads, connector info, and API
//! keys (push scope for hooks; `api_user` keys triggering and polling runs).

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use base64::Engine as _;
use ferry_core::crypto::hmac_sha256;
use ferry_http::intake::{router, TriggerMode};
use ferry_service::hooks::verify::{standard_key, standard_signature};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::support::app::{Response, TestApp};

pub const SHOP_ORDERS: &str = r#"
version: 1.0
name: shop-orders
connectors:
  shop:
    provider: shopify
    auth: none
    base_url: https://shop.example
    required: false
    description: The merchant's shop.
    setup: Create a custom app in the Shopify admin and copy its API secret.
flows:
  - name: orders
    triggers: [webhook]
    source: {type: webhook, records: orders, filter: "record.total > 0"}
    mapping: {fields: {id: {from: id}, total: {from: total}}}
    target: {type: file, format: jsonl, path: 'orders/{{ run.id }}.jsonl'}
webhooks:
  VERIFY
  flow: orders
  connector: shop
  max_body_bytes: 4096
  setup: In the shop's notification settings, add a webhook for order creation with this URL.
  handshake: HANDSHAKE
"#;

pub fn manifest(verify: &str, handshake: &str) -> String {
    SHOP_ORDERS.replace("VERIFY", &format!("verify: {verify}")).replace("HANDSHAKE", handshake)
}

pub struct World {
    pub app: TestApp,
    pub hooks: Router,
    pub job: String,
    pub hook: String,
    pub secret: String,
}

impl World {
    pub async fn new(verify: &str, handshake: &str, trigger: TriggerMode) -> Self {
        Self::on(TestApp::embedded().await, verify, handshake, trigger).await
    }

    /// The hook of tenant `a`'s job on `app`.
    pub async fn on(app: TestApp, verify: &str, handshake: &str, trigger: TriggerMode) -> Self {
        app.tenant("a").await;
        app.tenant("b").await;
        app.publish("shop-orders", &manifest(verify, handshake)).await;
        let job = app.job("a", json!({"name": "orders", "integration": "shop-orders"})).await;
        let r = app.admin(Method::PUT, &format!("/v1/tenants/a/jobs/{job}/webhook"), Some(json!({}))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let body = r.json();
        let hook = body["path"].as_str().expect("path").trim_start_matches("/hooks/").to_owned();
        let secret = body["secret"].as_str().unwrap_or_default().to_owned();
        let hooks = router(app.hub.clone(), trigger);
        Self { app, hooks, job, hook, secret }
    }

    pub async fn standard() -> Self {
        Self::new("{type: standard_webhooks}", "{type: echo_query, param: challenge}", TriggerMode::Off).await
    }

    pub async fn send(&self, req: Request<Body>) -> Response {
        let res = self.hooks.clone().oneshot(req).await.expect("infallible");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.expect("body").to_bytes();
        Response { status, headers, bytes }
    }

    /// A Standard Webhooks delivery signed with the hook's secret at `ts`.
    pub fn signed(&self, id: &str, ts: i64, body: &str) -> Request<Body> {
        let sig = standard_signature(&standard_key(&self.secret), id, ts, body.as_bytes());
        Request::post(format!("/hooks/{}", self.hook))
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sig)
            .body(Body::from(body.to_owned()))
            .expect("request")
    }

    pub fn now(&self) -> i64 {
        self.app.hub.clock.now().timestamp()
    }

    pub async fn pending(&self) -> usize {
        self.app.hub.hooks().pending_deliveries("a", &self.job, 1000).await.expect("pending").len()
    }
}

#[tokio::test]
async fn signed_deliveries_are_acknowledged_once_stored_and_redeliveries_are_not_stored_twice() {
    let w = World::standard().await;
    let body = r#"{"orders": [{"id": 1, "total": 5}]}"#;
    let r = w.send(w.signed("msg_1", w.now(), body)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    assert_eq!(r.json()["status"], "accepted");
    let seq = r.json()["delivery"].as_str().expect("delivery").to_owned();
    assert_eq!(w.pending().await, 1, "acknowledged means stored");

    // The provider retries (say, it missed our answer): acknowledged, not stored again.
    let r = w.send(w.signed("msg_1", w.now(), body)).await;
    assert_eq!((r.status, r.json()["status"].clone()), (StatusCode::OK, json!("duplicate")), "{}", r.text());
    assert_eq!(r.json()["delivery"], seq.as_str());
    assert_eq!(w.pending().await, 1);

    let stored = w.app.hub.hooks().pending_deliveries("a", &w.job, 10).await.expect("pending");
    assert_eq!(stored[0].payload, Some(serde_json::from_str::<Value>(body).expect("json")));
    assert_eq!(stored[0].delivery_id, "msg_1");
}

#[tokio::test]
async fn rejected_deliveries_get_the_right_status_and_store_nothing() {
    let w = World::standard().await;
    let ok = r#"{"orders": []}"#;
    let r = w.send(w.signed("msg_kept", w.now(), ok)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());

    let mut bad_sig = w.signed("msg_a", w.now(), ok);
    bad_sig
        .headers_mut()
        .insert("webhook-signature", "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".parse().expect("hv"));
    let mut tampered = w.signed("msg_b", w.now(), ok);
    *tampered.body_mut() = Body::from(r#"{"orders": [{"id": 666, "total": 1}]}"#);
    let mut unsigned = w.signed("msg_c", w.now(), ok);
    unsigned.headers_mut().remove("webhook-signature");
    let mut unknown = w.signed("msg_d", w.now(), ok);
    *unknown.uri_mut() = "/hooks/h00000000000000000000000000000000".parse().expect("uri");
    let mut bad_path = w.signed("msg_e", w.now(), ok);
    *bad_path.uri_mut() = "/hooks/NOT_AN_ID".parse().expect("uri");
    let mut text = w.signed("msg_f", w.now(), "hello");
    text.headers_mut().insert("content-type", "text/plain".parse().expect("hv"));
    let big = format!(r#"{{"orders": [], "pad": "{}"}}"#, "x".repeat(5000));

    let cases: Vec<(&str, Request<Body>, StatusCode, &str)> = vec![
        ("bad signature", bad_sig, StatusCode::UNAUTHORIZED, "invalid_signature"),
        ("body changed after signing", tampered, StatusCode::UNAUTHORIZED, "invalid_signature"),
        ("no signature", unsigned, StatusCode::UNAUTHORIZED, "missing_signature"),
        ("stale timestamp", w.signed("msg_g", w.now() - 301, ok), StatusCode::UNAUTHORIZED, "stale_timestamp"),
        (
            "timestamp from the future",
            w.signed("msg_h", w.now() + 301, ok),
            StatusCode::UNAUTHORIZED,
            "stale_timestamp",
        ),
        (
            "replayed id, other body",
            w.signed("msg_kept", w.now(), r#"{"orders": [1]}"#),
            StatusCode::CONFLICT,
            "replayed_id",
        ),
        ("oversize", w.signed("msg_i", w.now(), &big), StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        ("malformed JSON", w.signed("msg_j", w.now(), r#"{"orders": ["#), StatusCode::BAD_REQUEST, "malformed_body"),
        ("unsupported media type", text, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        ("unknown hook", unknown, StatusCode::NOT_FOUND, "unknown_hook"),
        ("not an id", bad_path, StatusCode::NOT_FOUND, "unknown_hook"),
    ];
    for (what, req, status, code) in cases {
        let r = w.send(req).await;
        assert_eq!((r.status, r.code()), (status, code.to_owned()), "{what}: {}", r.text());
        assert!(!r.text().contains(&w.secret), "{what}: the answer leaked the secret");
        assert_eq!(w.pending().await, 1, "{what}: a refused delivery was stored");
    }
}

#[tokio::test]
async fn api_key_hooks_need_a_live_push_key_of_the_hooks_tenant() {
    let w = World::new("{type: api_key}", "{type: head_ok}", TriggerMode::Off).await;
    assert!(w.secret.is_empty(), "api_key hooks have no signing secret");
    let key = |tenant: &'static str, scopes: Value| {
        let app = &w.app;
        async move {
            let r = app
                .admin(
                    Method::POST,
                    &format!("/v1/tenants/{tenant}/api-keys"),
                    Some(json!({"name": "pusher", "scopes": scopes})),
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
            (
                r.json()["key"].as_str().expect("key").to_owned(),
                r.json()["api_key"]["id"].as_str().expect("id").to_owned(),
            )
        }
    };
    let (push, _) = key("a", json!(["push"])).await;
    let (api_only, _) = key("a", json!(["api"])).await;
    let (other_tenant, _) = key("b", json!(["push"])).await;
    let (revoked, revoked_id) = key("a", json!(["push", "api"])).await;
    let r = w.app.admin(Method::DELETE, &format!("/v1/tenants/a/api-keys/{revoked_id}"), None).await;
    assert_eq!(r.status, StatusCode::OK);

    let post = |token: Option<&str>, body: &str| {
        let mut b = Request::post(format!("/hooks/{}", w.hook)).header("content-type", "application/json");
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        b.body(Body::from(body.to_owned())).expect("request")
    };
    for (what, token, status, code) in [
        ("no key", None, StatusCode::UNAUTHORIZED, "unauthorized"),
        ("revoked key", Some(revoked.as_str()), StatusCode::UNAUTHORIZED, "unauthorized"),
        ("key without push", Some(api_only.as_str()), StatusCode::FORBIDDEN, "forbidden"),
        ("another tenant's key", Some(other_tenant.as_str()), StatusCode::FORBIDDEN, "forbidden"),
        ("not a key", Some("ferry_a_nope"), StatusCode::UNAUTHORIZED, "unauthorized"),
    ] {
        let r = w.send(post(token, r#"{"orders": []}"#)).await;
        assert_eq!((r.status, r.code()), (status, code.to_owned()), "{what}: {}", r.text());
        assert_eq!(w.pending().await, 0, "{what}: stored");
    }
    let r = w.send(post(Some(&push), r#"{"orders": []}"#)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    assert_eq!(w.pending().await, 1);
    // Without a delivery id, an identical body is the same delivery.
    let r = w.send(post(Some(&push), r#"{"orders": []}"#)).await;
    assert_eq!(r.json()["status"], "duplicate", "{}", r.text());
    assert_eq!(w.pending().await, 1);

    // A push-only key cannot use the admin API.
    let r = w.app.call(Method::GET, "/v1/tenants/a/jobs", Some(&push), None).await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "forbidden".to_owned()), "{}", r.text());
    let head = w.send(Request::head(format!("/hooks/{}", w.hook)).body(Body::empty()).expect("req")).await;
    assert_eq!(head.status, StatusCode::OK, "HEAD probes are answered per the manifest");
}

#[tokio::test]
async fn provider_hmac_headers_and_form_bodies_are_verified_over_the_raw_bytes() {
    let verify = "{type: hmac, header: X-Shopify-Hmac-Sha256, encoding: base64}\n  id_header: X-Shopify-Webhook-Id";
    let w = World::new(verify, "{type: head_ok}", TriggerMode::Off).await;
    // Shopify hands out its own secret: the operator pastes it into Ferry.
    let r = w
        .app
        .admin(
            Method::PUT,
            &format!("/v1/tenants/a/jobs/{}/webhook", w.job),
            Some(json!({"secret": "shpss_0123456789abcdef"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["path"], format!("/hooks/{}", w.hook), "rotating keeps the URL");
    let sign = |body: &str| {
        base64::engine::general_purpose::STANDARD.encode(hmac_sha256(b"shpss_0123456789abcdef", &[body.as_bytes()]))
    };
    let req = |id: &str, ct: &str, body: &str, sig: String| {
        Request::post(format!("/hooks/{}", w.hook))
            .header("content-type", ct)
            .header("x-shopify-webhook-id", id)
            .header("x-shopify-hmac-sha256", sig)
            .body(Body::from(body.to_owned()))
            .expect("request")
    };
    let json_body = r#"{"orders":[{"id":7,"total":3}]}"#;
    let r = w.send(req("d1", "application/json", json_body, sign(json_body))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let form = "order=7&tag=a&tag=b";
    let r = w.send(req("d2", "application/x-www-form-urlencoded", form, sign(form))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let r = w.send(req("d3", "application/json", json_body, sign("{}"))).await;
    assert_eq!((r.status, r.code()), (StatusCode::UNAUTHORIZED, "invalid_signature".to_owned()));
    let r = w.send(req("d1", "application/json", json_body, sign(json_body))).await;
    assert_eq!(r.json()["status"], "duplicate");
    let stored = w.app.hub.hooks().pending_deliveries("a", &w.job, 10).await.expect("pending");
    assert_eq!(stored.len(), 2);
    // Deliveries within one millisecond have no order (ULID seqs): look the form one up by id.
    let form = stored.iter().find(|d| d.delivery_id == "d2").expect("the form delivery is stored");
    assert_eq!(form.payload, Some(json!({"order": "7", "tag": ["a", "b"]})));
}

#[tokio::test]
async fn a_hub_with_a_public_url_shows_webhook_urls_under_it_and_checks_hubspot_signatures_over_it() {
    // The URL comes from the hub alone (as `ferry up --public-url` gives it), not from the environment.
    assert!(std::env::var_os("FERRY_PUBLIC_URL").is_none(), "this test needs FERRY_PUBLIC_URL unset");
    let app = TestApp::embedded_at("https://x.example").await;
    let w = World::on(app, "{type: hubspot_v3}", "{type: head_ok}", TriggerMode::Off).await;
    let secret = "hubspot-app-client-secret";
    let webhook = format!("/v1/tenants/a/jobs/{}/webhook", w.job);
    let r = w.app.admin(Method::PUT, &webhook, Some(json!({"secret": secret}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let url = format!("https://x.example/hooks/{}", w.hook);
    assert_eq!(r.json()["url"], url.as_str(), "{}", r.text());
    let info = w.app.admin(Method::GET, &format!("/v1/tenants/a/jobs/{}/connector-info", w.job), None).await;
    assert_eq!(info.json()["webhook"]["url"], url.as_str(), "{}", info.text());

    // HubSpot signs the URL it calls, whatever Host the request arrives with behind a proxy.
    let body = r#"{"orders":[{"id":1,"total":2}]}"#;
    let ts = (w.now() * 1000).to_string();
    let signed_over = |uri: &str| {
        let mac = hmac_sha256(secret.as_bytes(), &[b"POST", uri.as_bytes(), body.as_bytes(), ts.as_bytes()]);
        base64::engine::general_purpose::STANDARD.encode(mac)
    };
    let req = |id: &str, signature: String| {
        Request::post(format!("/hooks/{}", w.hook))
            .header("host", "ferry-internal:8080")
            .header("content-type", "application/json")
            .header("idempotency-key", id)
            .header("x-hubspot-request-timestamp", ts.as_str())
            .header("x-hubspot-signature-v3", signature)
            .body(Body::from(body.to_owned()))
            .expect("request")
    };
    let r = w.send(req("d1", signed_over(&url))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let internal = format!("https://ferry-internal:8080/hooks/{}", w.hook);
    let r = w.send(req("d2", signed_over(&internal))).await;
    assert_eq!((r.status, r.code()), (StatusCode::UNAUTHORIZED, "invalid_signature".to_owned()), "{}", r.text());
    assert_eq!(w.pending().await, 1);
}

#[tokio::test]
async fn handshakes_echo_the_challenge_parameter() {
    let w = World::standard().await;
    let get = |q: &str| Request::get(format!("/hooks/{}{q}", w.hook)).body(Body::empty()).expect("req");
    let r = w.send(get("?challenge=abc123")).await;
    assert_eq!((r.status, r.text()), (StatusCode::OK, "abc123".to_owned()));
    let r = w.send(get("")).await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "missing_challenge".to_owned()));
    let r = w.send(Request::head(format!("/hooks/{}", w.hook)).body(Body::empty()).expect("req")).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "no HEAD handshake in this manifest");
    assert_eq!(w.pending().await, 0, "handshakes store nothing");
}

#[tokio::test]
async fn deliveries_run_the_webhook_flow_and_are_consumed_by_it() {
    let w =
        World::new("{type: standard_webhooks}", "{type: echo_query, param: challenge}", TriggerMode::Background).await;
    let bodies = [
        r#"{"orders": [{"id": 1, "total": 10}, {"id": 2, "total": 0}]}"#,
        r#"{"orders": [{"id": 3, "total": 7}]}"#,
        r#"{"orders": [{"id": 4, "total": 1}]}"#,
    ];
    for (i, body) in bodies.iter().enumerate() {
        let r = w.send(w.signed(&format!("msg_{i}"), w.now(), body)).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    }
    // Every delivery is consumed by some webhook run, whether it started one or was bundled.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let runs = loop {
        let r = w.app.admin(Method::GET, &format!("/v1/tenants/a/jobs/{}/runs", w.job), None).await;
        let runs = r.json()["items"].as_array().cloned().unwrap_or_default();
        let finished = runs.iter().all(|r| !matches!(r["status"].as_str(), Some("queued" | "running")));
        if w.pending().await == 0 && finished && !runs.is_empty() {
            break runs;
        }
        assert!(std::time::Instant::now() < deadline, "deliveries not consumed: {runs:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut ids = Vec::new();
    for run in &runs {
        assert_eq!(run["mode"], "webhook", "{run}");
        assert_eq!(run["status"], "succeeded", "{run}");
        let path = format!("orders/{}.jsonl", run["id"].as_str().expect("id"));
        if let Some(bytes) = w.app.hub.files.as_ref().expect("files").read("a", &path).await.expect("read") {
            for line in String::from_utf8(bytes).expect("utf8").lines() {
                ids.push(serde_json::from_str::<Value>(line).expect("jsonl")["id"].as_i64().expect("id"));
            }
        }
    }
    ids.sort();
    assert_eq!(ids, vec![1, 3, 4], "each record once, the filtered one dropped");
    let read: u64 = runs.iter().map(|r| r["counters"]["orders"]["read"].as_u64().unwrap_or(0)).sum();
    assert_eq!(read, 3);
}

#[tokio::test]
async fn connector_info_shows_url_and_setup_to_all_and_the_secret_to_operators_only() {
    let w = World::standard().await;
    let path = format!("/v1/tenants/a/jobs/{}/connector-info", w.job);
    let r = w.app.admin(Method::GET, &path, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let info = r.json();
    assert_eq!(info["webhook"]["path"], format!("/hooks/{}", w.hook));
    assert_eq!(info["webhook"]["secret"], w.secret.as_str());
    assert_eq!(info["webhook"]["verification"], "standard_webhooks");
    assert!(info["webhook"]["setup"].as_str().is_some_and(|s| s.contains("order creation")));
    assert_eq!(info["connectors"][0]["name"], "shop");
    assert!(info["connectors"][0]["setup"].as_str().is_some_and(|s| s.contains("custom app")));

    let (member, _) = w.app.member("ann@a.example", &["a"]).await;
    let r = w.app.call(Method::GET, &path, Some(&member), None).await;
    assert_eq!(r.json()["webhook"]["secret"], w.secret.as_str(), "tenant members operate the tenant");

    let (key, _) = w.app.tenant_key("a").await;
    let r = w.app.call(Method::GET, &path, Some(&key), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["webhook"]["secret"], Value::Null, "API keys never see the secret");
    assert!(!r.text().contains(&w.secret));
    assert_eq!(r.json()["webhook"]["path"], format!("/hooks/{}", w.hook));
    let r =
        w.app.call(Method::PUT, &format!("/v1/tenants/a/jobs/{}/webhook", w.job), Some(&key), Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "API keys cannot rotate the secret");
}

#[tokio::test]
async fn api_user_keys_trigger_runs_and_poll_their_status() {
    let w = World::standard().await;
    let (key, _) = w.app.tenant_key("a").await;
    let r = w.app.call(Method::POST, &format!("/v1/tenants/a/jobs/{}/runs", w.job), Some(&key), Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let run = r.json()["run"]["id"].as_str().expect("run").to_owned();
    assert_eq!(r.json()["run"]["triggers"][0]["source"], "api");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = w.app.call(Method::GET, &format!("/v1/tenants/a/jobs/{}/runs/{run}", w.job), Some(&key), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        if r.json()["status"] == "succeeded" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "run did not finish: {}", r.text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (other, _) = w.app.tenant_key("b").await;
    let r = w.app.call(Method::GET, &format!("/v1/tenants/a/jobs/{}/runs/{run}", w.job), Some(&other), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}
