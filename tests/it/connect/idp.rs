//! A token endpoint on loopback: hands out authorization codes' tokens once per
//! code, rotates refresh tokens on every refresh, counts refresh requests, and
//! can be told to refuse refreshes (`invalid_grant`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Form, Json, Router};
use serde_json::{json, Value};

#[derive(Default)]
pub struct Counters {
    pub code_requests: AtomicUsize,
    pub refresh_requests: AtomicUsize,
    pub refuse_refresh: AtomicBool,
    used_codes: Mutex<BTreeSet<String>>,
    /// The refresh token the server currently accepts (rotation).
    current_refresh: Mutex<String>,
}

pub struct Idp {
    pub token_url: String,
    pub counters: Arc<Counters>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn refuse(code: &str, description: &str) -> (StatusCode, Json<Value>) {
    (StatusCode::BAD_REQUEST, Json(json!({"error": code, "error_description": description})))
}

async fn token(
    State(c): State<Arc<Counters>>,
    Form(form): Form<BTreeMap<String, String>>,
) -> (StatusCode, Json<Value>) {
    if form.get("client_id").map(String::as_str) != Some("ferry-test")
        || form.get("client_secret").map(String::as_str) != Some("client-s3cret-0123456789")
    {
        return refuse("invalid_client", "unknown client");
    }
    match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            c.code_requests.fetch_add(1, Ordering::SeqCst);
            let code = form.get("code").cloned().unwrap_or_default();
            let verifier = form.get("code_verifier").map(String::len).unwrap_or(0);
            if !(43..=128).contains(&verifier) {
                return refuse("invalid_request", "PKCE code_verifier missing");
            }
            if !code.starts_with("code-") || !c.used_codes.lock().expect("lock").insert(code.clone()) {
                return refuse("invalid_grant", "code already used");
            }
            *c.current_refresh.lock().expect("lock") = format!("rt-{code}");
            (
                StatusCode::OK,
                Json(json!({"access_token": format!("at-{code}"), "refresh_token": format!("rt-{code}"),
                            "expires_in": 3600, "token_type": "Bearer"})),
            )
        }
        Some("refresh_token") => {
            let n = c.refresh_requests.fetch_add(1, Ordering::SeqCst) + 1;
            // A slow provider widens the window racing refreshes would slip through.
            tokio::time::sleep(std::time::Duration::from_millis(150)).await;
            if c.refuse_refresh.load(Ordering::SeqCst) {
                return refuse("invalid_grant", "refresh token revoked");
            }
            let mut current = c.current_refresh.lock().expect("lock");
            if form.get("refresh_token") != Some(&*current) {
                return refuse("invalid_grant", "refresh token already rotated");
            }
            *current = format!("rt-rotated-{n}");
            (
                StatusCode::OK,
                Json(json!({"access_token": format!("at-refreshed-{n}"), "refresh_token": format!("rt-rotated-{n}"),
                            "expires_in": 3600, "token_type": "Bearer"})),
            )
        }
        _ => refuse("unsupported_grant_type", "unsupported"),
    }
}

impl Idp {
    pub async fn start(initial_refresh: &str) -> Self {
        let counters = Arc::new(Counters::default());
        *counters.current_refresh.lock().expect("lock") = initial_refresh.to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = Router::new().route("/token", post(token)).with_state(counters.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Idp { token_url: format!("http://{addr}/token"), counters, task }
    }

    pub fn refreshes(&self) -> usize {
        self.counters.refresh_requests.load(Ordering::SeqCst)
    }

    pub fn code_exchanges(&self) -> usize {
        self.counters.code_requests.load(Ordering::SeqCst)
    }
}
