//! Webhook secrets: replays of body-HMAC deliveries under a new id, secret
//! rotation taking effect at once, and the minimum length of provider secrets.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use base64::Engine as _;
use ferry_core::crypto::hmac_sha256;
use ferry_http::intake::TriggerMode;
use serde_json::json;

use super::hooks::World;

const SHOPIFY: &str =
    "{type: hmac, header: X-Shopify-Hmac-Sha256, encoding: base64}\n  id_header: X-Shopify-Webhook-Id";
const SHOPIFY_SECRET: &str = "shpss_0123456789abcdef";

fn shopify_delivery(hook: &str, id: &str, body: &str) -> Request<Body> {
    hmac_delivery(hook, SHOPIFY_SECRET, id, body)
}

fn hmac_delivery(hook: &str, secret: &str, id: &str, body: &str) -> Request<Body> {
    let sig = base64::engine::general_purpose::STANDARD.encode(hmac_sha256(secret.as_bytes(), &[body.as_bytes()]));
    Request::post(format!("/hooks/{hook}"))
        .header("content-type", "application/json")
        .header("x-shopify-webhook-id", id)
        .header("x-shopify-hmac-sha256", sig)
        .body(Body::from(body.to_owned()))
        .expect("request")
}

#[tokio::test]
async fn a_captured_hmac_delivery_replayed_under_a_new_delivery_id_is_not_stored_again() {
    let w = World::new(SHOPIFY, "{type: head_ok}", TriggerMode::Off).await;
    let path = format!("/v1/tenants/a/jobs/{}/webhook", w.job);
    let r = w.app.admin(Method::PUT, &path, Some(json!({"secret": SHOPIFY_SECRET}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let body = r#"{"orders":[{"id":7,"total":3}]}"#;
    let r = w.send(shopify_delivery(&w.hook, "d1", body)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());

    // The id header is not signed: an attacker replays the captured body and signature under a new id.
    let r = w.send(shopify_delivery(&w.hook, "d1-replayed", body)).await;
    assert_eq!((r.status, r.json()["status"].clone()), (StatusCode::OK, json!("duplicate")), "{}", r.text());
    assert_eq!(w.pending().await, 1, "the replay is not stored, so no run processes it twice");

    // A new event (another body) is a new delivery.
    let other = r#"{"orders":[{"id":8,"total":4}]}"#;
    assert_eq!(w.send(shopify_delivery(&w.hook, "d2", other)).await.status, StatusCode::ACCEPTED);
    assert_eq!(w.pending().await, 2);
}

#[tokio::test]
async fn the_old_webhook_secret_is_refused_right_after_rotation() {
    let w = World::standard().await;
    let body = r#"{"orders": [{"id": 1, "total": 5}]}"#;
    // The intake has resolved (and cached) the hook with the first secret.
    assert_eq!(w.send(w.signed("msg_1", w.now(), body)).await.status, StatusCode::ACCEPTED);

    let r = w.app.admin(Method::PUT, &format!("/v1/tenants/a/jobs/{}/webhook", w.job), Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let rotated = r.json()["secret"].as_str().expect("secret").to_owned();
    assert_ne!(rotated, w.secret);

    let r = w.send(w.signed("msg_2", w.now(), body)).await;
    assert_eq!((r.status, r.code()), (StatusCode::UNAUTHORIZED, "invalid_signature".to_owned()), "{}", r.text());
    let with_new = World { secret: rotated, ..w };
    let r = with_new.send(with_new.signed("msg_3", with_new.now(), body)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "the new secret works at once: {}", r.text());
}

#[tokio::test]
async fn a_one_character_provider_secret_is_refused() {
    let w = World::new(SHOPIFY, "{type: head_ok}", TriggerMode::Off).await;
    let r =
        w.app.admin(Method::PUT, &format!("/v1/tenants/a/jobs/{}/webhook", w.job), Some(json!({"secret": "x"}))).await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "weak_secret".to_owned()), "{}", r.text());
    assert!(r.json()["error"]["message"].as_str().unwrap_or("").contains("16"), "{}", r.text());
    // The secret in force is unchanged: deliveries signed with it still pass.
    let body = r#"{"orders": []}"#;
    let r = w.send(hmac_delivery(&w.hook, &w.secret, "d1", body)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());

    let r = w
        .app
        .admin(Method::PUT, "/v1/oauth-clients/hubspot", Some(json!({"client_id": "ferry", "client_secret": "x"})))
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "weak_secret".to_owned()), "{}", r.text());
}
