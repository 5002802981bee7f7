//! Signing in: throttling per account and per source address, password hashing
//! off the async workers, and sessions ending when the password changes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Method, Request, StatusCode};
use chrono::{Duration, Utc};
use ferry_core::ports::{Item, Key, ManualClock, Query, QueryPage, Store, StoreError, WriteOp};
use ferry_embedded::{FileSecretStore, SqliteStore};
use ferry_service::Hub;
use ferry_service::Settings;
use serde_json::json;
use tower::ServiceExt;

use crate::support::app::{Response, TestApp};

const PASSWORD: &str = "correct horse battery";

fn login_request(email: &str, password: &str, from: [u8; 4]) -> Request<Body> {
    let mut req = Request::post("/v1/sessions")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json!({"email": email, "password": password}).to_string()))
        .expect("request");
    // What `ferry up` serves with: the socket's peer address.
    req.extensions_mut().insert(ConnectInfo(SocketAddr::from((from, 40_000))));
    req
}

async fn login_from(app: &TestApp, email: &str, password: &str, from: [u8; 4]) -> Response {
    app.send(login_request(email, password, from)).await
}

async fn user(app: &TestApp, email: &str) -> String {
    let body = json!({"email": email, "full_name": "U", "password": PASSWORD, "role": "user"});
    let r = app.admin(Method::POST, "/v1/users", Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    r.json()["id"].as_str().expect("id").to_owned()
}

fn retry_after(r: &Response) -> u64 {
    r.headers.get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(0)
}

#[tokio::test]
async fn after_five_wrong_passwords_the_account_waits_from_every_address_even_with_the_right_one() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app = TestApp::embedded_with_clock(clock.clone(), Settings::default()).await;
    user(&app, "ann@example.com").await;
    user(&app, "bob@example.com").await;
    let (a, b) = ([192, 0, 2, 1], [198, 51, 100, 2]);

    for _ in 0..5 {
        let r = login_from(&app, "ann@example.com", "wrong password", a).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text());
    }
    // The sixth failure starts the first wait.
    let r = login_from(&app, "ann@example.com", "wrong password", a).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text());

    let r = login_from(&app, "ann@example.com", PASSWORD, a).await;
    assert_eq!((r.status, r.code()), (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts".to_owned()), "{}", r.text());
    let wait = retry_after(&r);
    assert!(wait >= 1, "429 says when to retry: {:?}", r.headers);
    let r = login_from(&app, "ANN@example.com", PASSWORD, b).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "the account is throttled from another address too");

    // Another account from the first address: the address has failures, but below its own limit.
    let r = login_from(&app, "bob@example.com", PASSWORD, a).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());

    // Once the wait is over, the right password works again and clears the account's failures.
    clock.advance(Duration::seconds(wait as i64));
    let r = login_from(&app, "ann@example.com", PASSWORD, b).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
}

#[tokio::test]
async fn after_twenty_failures_from_one_address_every_account_waits_there_but_not_elsewhere() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app = TestApp::embedded_with_clock(clock, Settings::default()).await;
    user(&app, "bob@example.com").await;
    let (a, b) = ([192, 0, 2, 1], [198, 51, 100, 2]);
    // Four made-up accounts, five failures each: no account passes its own limit.
    for n in 0..21 {
        let r = login_from(&app, &format!("guess{}@example.com", n % 4), "wrong password", a).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "attempt {n}: {}", r.text());
    }
    let r = login_from(&app, "bob@example.com", PASSWORD, a).await;
    assert_eq!((r.status, r.code()), (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts".to_owned()), "{}", r.text());
    assert!(retry_after(&r) >= 1);
    let r = login_from(&app, "bob@example.com", PASSWORD, b).await;
    assert_eq!(r.status, StatusCode::CREATED, "the account itself is not throttled: {}", r.text());
}

#[tokio::test]
async fn failures_counted_by_one_process_throttle_another_sharing_the_store() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app = TestApp::embedded_with_clock(clock.clone(), Settings::default()).await;
    user(&app, "ann@example.com").await;
    // A second process (another Lambda sandbox) over the same table.
    let other = Hub::new(app.hub.store.clone(), app.hub.secrets.clone()).with_clock(clock);
    let other = ferry_http::api::router(other);
    for _ in 0..6 {
        let r = login_from(&app, "ann@example.com", "wrong password", [192, 0, 2, 1]).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text());
    }
    let r = other.oneshot(login_request("ann@example.com", PASSWORD, [192, 0, 2, 9])).await.expect("infallible");
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
}

/// A store whose reads of already-read keys are answered without yielding, and
/// which forgets sign-in failures (this test is about where hashes run, not
/// about throttling), so a wrong login that hashed on the async worker would
/// run start to end in one poll.
struct ReadyStore {
    inner: SqliteStore,
    seen: Mutex<HashMap<Key, Option<Item>>>,
}

#[async_trait]
impl Store for ReadyStore {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        if is_throttle(key) {
            return Ok(None);
        }
        if let Some(item) = self.seen.lock().unwrap_or_else(|p| p.into_inner()).get(key) {
            return Ok(item.clone());
        }
        let item = self.inner.get(key).await?;
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).insert(key.clone(), item.clone());
        Ok(item)
    }
    async fn query(&self, query: &Query) -> Result<QueryPage, StoreError> {
        self.inner.query(query).await
    }
    async fn write(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        let ops: Vec<WriteOp> = ops.into_iter().filter(|op| !is_throttle(written(op))).collect();
        if ops.is_empty() {
            return Ok(());
        }
        {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            for op in &ops {
                seen.remove(written(op));
            }
        }
        self.inner.write(ops).await
    }
    fn backend_name(&self) -> &'static str {
        "ready"
    }
}

fn is_throttle(key: &Key) -> bool {
    key.pk.starts_with("THROTTLE#")
}

fn written(op: &WriteOp) -> &Key {
    match op {
        WriteOp::Put { item, .. } => &item.key,
        WriteOp::Delete { key, .. } | WriteOp::Check { key, .. } => key,
    }
}

// One runtime thread (the default of `tokio::test`): a hash computed on it
// would keep every other request waiting until it is done.
#[tokio::test]
async fn healthz_is_answered_while_sixteen_wrong_logins_are_being_hashed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inner = SqliteStore::open(&dir.path().join("ferry.db")).expect("sqlite");
    let store = Arc::new(ReadyStore { inner, seen: Mutex::default() });
    let secrets = FileSecretStore::open(dir.path()).expect("secrets");
    let hub = Hub::new(store, Arc::new(secrets));
    let app = TestApp::with_hub(hub, dir).await;
    user(&app, "ann@example.com").await;
    // Warm the store's memory: the logins and the health check read only these keys.
    app.hub.users().find_user_by_email("ann@example.com").await.expect("user");
    assert_eq!(app.call(Method::GET, "/healthz", None, None).await.status, StatusCode::OK);

    let logins: Vec<_> = (0..16)
        .map(|_| tokio::spawn(app.router.clone().oneshot(login_request("ann@example.com", "wrong", [192, 0, 2, 1]))))
        .collect();
    let health = app.router.clone().oneshot(Request::get("/healthz").body(Body::empty()).expect("request"));
    let health = tokio::spawn(health).await.expect("healthz task").expect("infallible");
    assert_eq!(health.status(), StatusCode::OK);
    let unfinished = logins.iter().filter(|l| !l.is_finished()).count();
    assert!(unfinished > 0, "healthz was only answered after all 16 logins had been hashed");
    for l in logins {
        assert_eq!(l.await.expect("login task").expect("infallible").status(), StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn a_session_stops_working_when_its_users_password_changes() {
    let app = TestApp::embedded().await;
    let (token, id) = app.member("ann@example.com", &[]).await;
    assert_eq!(app.call(Method::GET, "/v1/me", Some(&token), None).await.status, StatusCode::OK);

    let r = app.admin(Method::PATCH, &format!("/v1/users/{id}"), Some(json!({"password": "a new passphrase"}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    let r = app.call(Method::GET, "/v1/me", Some(&token), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text());
    assert!(r.json()["error"]["message"].as_str().unwrap_or("").contains("password change"), "{}", r.text());
    let fresh = app.login("ann@example.com", "a new passphrase").await;
    assert_eq!(app.call(Method::GET, "/v1/me", Some(&fresh), None).await.status, StatusCode::OK);

    // Other changes (the name) keep sessions.
    let r = app.admin(Method::PATCH, &format!("/v1/users/{id}"), Some(json!({"full_name": "Ann B"}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(app.call(Method::GET, "/v1/me", Some(&fresh), None).await.status, StatusCode::OK);
}
