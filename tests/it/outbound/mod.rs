//! The outbound-URL policy seen from outside: where a connection's requests
//! (and credentials) may go, what flows follow, what is capped, and what
//! messages may say. Fakes listen on loopback; cross-origin means another
//! port or `localhost` instead of `127.0.0.1`.

mod connections;
mod egress;
mod endpoints;
mod flows;

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use axum::Router;
use ferry_core::ports::Event;
use ferry_embedded::InProcessBus;
use serde_json::Value;

use crate::support::app::TestApp;
use crate::support::jobs::{Conn, JobUnderTest};

/// One request a fake received.
#[derive(Debug, Clone)]
pub struct Hit {
    pub method: Method,
    pub uri: String,
    pub headers: HeaderMap,
}

impl Hit {
    /// Every header value, to search for leaked credentials.
    pub fn header_text(&self) -> String {
        self.headers.iter().map(|(k, v)| format!("{k}: {}\n", v.to_str().unwrap_or(""))).collect()
    }
}

#[derive(Clone, Default)]
pub struct Seen(Arc<Mutex<Vec<Hit>>>);

impl Seen {
    pub fn hits(&self) -> Vec<Hit> {
        self.0.lock().expect("lock").clone()
    }
}

/// A server on loopback that records every request and answers with `answer(path and query)`.
pub async fn fake<F>(answer: F) -> (String, Seen)
where
    F: Fn(&str) -> Response + Clone + Send + Sync + 'static,
{
    let seen = Seen::default();
    let s = seen.clone();
    let router = Router::new().fallback(move |req: Request| {
        let (s, answer) = (s.clone(), answer.clone());
        async move {
            let uri = req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
            s.0.lock().expect("lock").push(Hit {
                method: req.method().clone(),
                uri: uri.clone(),
                headers: req.headers().clone(),
            });
            answer(&uri)
        }
    });
    (crate::support::jobs::serve(router).await, seen)
}

pub fn json(status: u16, body: Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("response")
}

pub fn redirect(status: u16, location: &str) -> Response {
    Response::builder().status(status).header("location", location).body(Body::empty()).expect("response")
}

/// An app on the harness's (private-network) policy whose events can be watched.
pub async fn app_with_events() -> (TestApp, InProcessBus) {
    let mut app = TestApp::embedded().await;
    let bus = InProcessBus::default();
    app.hub = app.hub.clone().with_events(Arc::new(bus.clone()));
    app.router = ferry_http::api::router(app.hub.clone());
    (app, bus)
}

/// A job of tenant `acme` on `manifest` whose `src` (api_key `KEY`) and
/// `dst` connectors point at the given base URLs.
pub async fn job(app: TestApp, manifest: &str, src: &str, dst: &str) -> JobUnderTest {
    let conns = [
        Conn {
            name: "src",
            provider: "itemsource",
            auth: "api_key",
            base_url: src,
            credentials: Some(serde_json::json!({"api_key": KEY})),
        },
        Conn { name: "dst", provider: "sink", auth: "none", base_url: dst, credentials: None },
    ];
    JobUnderTest::new(app, "outbound", manifest, &conns, serde_json::json!({})).await
}

/// The source connection's key: no message, log line or event may contain it.
pub const KEY: &str = "sk-live-7f3a9c-do-not-leak";

/// Everything published so far.
pub fn drain(rx: &mut tokio::sync::broadcast::Receiver<Event>) -> Vec<Event> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        out.push(e);
    }
    out
}
