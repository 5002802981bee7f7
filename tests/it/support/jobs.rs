//! A job wired for runs: a published manifest, connections on loopback fakes,
//! and helpers to trigger a run and wait for it to finish.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use axum::Router;
use serde_json::{json, Value};

use super::app::TestApp;

/// Serves a router on a loopback port for the life of the test process.
pub async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}")
}

/// A connection to create: manifest connector name, provider, auth kind, base URL and credentials.
pub struct Conn<'a> {
    pub name: &'a str,
    pub provider: &'a str,
    pub auth: &'a str,
    pub base_url: &'a str,
    pub credentials: Option<Value>,
}

pub struct JobUnderTest {
    pub app: TestApp,
    pub tenant: String,
    pub job: String,
}

impl JobUnderTest {
    /// Publishes `manifest` as `integration`, creates the connections and a job of tenant `acme`.
    pub async fn new(app: TestApp, integration: &str, manifest: &str, conns: &[Conn<'_>], configs: Value) -> Self {
        app.tenant("acme").await;
        let r = app
            .admin(
                Method::POST,
                &format!("/v1/integrations/{integration}/releases"),
                Some(json!({"manifest": manifest})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        let mut bound = serde_json::Map::new();
        for c in conns {
            let mut body = json!({"name": c.name, "connector": c.provider, "auth_kind": c.auth,
                                  "settings": {"base_url": c.base_url}});
            if let Some(cr) = &c.credentials {
                body["credentials"] = cr.clone();
            }
            let r = app.admin(Method::POST, "/v1/tenants/acme/connections", Some(body)).await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
            bound.insert(c.name.to_owned(), r.json()["id"].clone());
        }
        let r = app
            .admin(
                Method::POST,
                "/v1/tenants/acme/jobs",
                Some(
                    json!({"name": integration, "integration": integration, "connections": bound, "configs": configs}),
                ),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        let job = r.json()["id"].as_str().expect("job id").to_owned();
        Self { app, tenant: "acme".into(), job }
    }

    fn runs_path(&self) -> String {
        format!("/v1/tenants/{}/jobs/{}/runs", self.tenant, self.job)
    }

    /// Triggers a run and returns its id.
    pub async fn trigger(&self, body: Value) -> String {
        let r = self.app.admin(Method::POST, &self.runs_path(), Some(body)).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
        r.json()["run"]["id"].as_str().expect("run id").to_owned()
    }

    /// Polls until the run is finished (at most `limit`).
    pub async fn wait_for(&self, run: &str, limit: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let v = self.app.admin(Method::GET, &format!("{}/{run}", self.runs_path()), None).await.json();
            if !matches!(v["status"].as_str(), Some("queued" | "running" | "interrupted")) {
                return v;
            }
            assert!(tokio::time::Instant::now() < deadline, "run {run} did not finish: {v}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Triggers a run and waits for it.
    pub async fn run(&self, body: Value) -> Value {
        let id = self.trigger(body).await;
        self.wait_for(&id, Duration::from_secs(30)).await
    }

    pub async fn logs(&self, run: &str) -> Vec<String> {
        let v = self.app.admin(Method::GET, &format!("{}/{run}/logs", self.runs_path()), None).await.json();
        // Lines as text, `[flow] message` for a flow's, as they were logged.
        let text = |l: &Value| match (l["flow"].as_str(), l["message"].as_str()) {
            (Some(flow), Some(message)) => Some(format!("[{flow}] {message}")),
            (_, message) => message.map(str::to_owned),
        };
        v["lines"].as_array().into_iter().flatten().filter_map(text).collect()
    }

    pub async fn job(&self) -> Value {
        self.app.admin(Method::GET, &format!("/v1/tenants/{}/jobs/{}", self.tenant, self.job), None).await.json()
    }
}
