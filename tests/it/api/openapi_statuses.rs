//! The OpenAPI document lists the statuses each route really returns: every
//! route is sent the requests that provoke the shared errors (no credentials,
//! a push-only key, malformed ids, missing things, bad bodies, an archived
//! tenant, a failing store, too many wrong passwords), and every status
//! answered must be documented for that route.

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use ferry_http::api::extract::BODY_LIMIT;
use ferry_http::api::routes::{specs, RouteSpec};
use ferry_service::auth::Access;
use serde_json::{json, Value};

use crate::support::app::TestApp;
use crate::support::outage::{switchable_hub, Fault};

struct Probe<'a> {
    app: &'a TestApp,
    /// Documented statuses by (method, path).
    documented: BTreeMap<(String, String), BTreeSet<u16>>,
    problems: Vec<String>,
}

impl Probe<'_> {
    /// Sends `method path` and records a problem if the answer's status is not documented.
    async fn send(&mut self, spec: &RouteSpec, why: &str, path: &str, token: Option<&str>, body: Option<(&str, Body)>) {
        let mut req = Request::builder().method(spec.method.clone()).uri(path);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some((content_type, body)) => req.header(header::CONTENT_TYPE, content_type).body(body),
            None => req.body(Body::empty()),
        }
        .expect("request");
        let r = self.app.send(req).await;
        let route = (spec.method.to_string(), spec.path.to_owned());
        let documented = self.documented.get(&route).cloned().unwrap_or_default();
        if !documented.contains(&r.status.as_u16()) {
            self.problems.push(format!(
                "{} {} ({why}) answered {} {}, documented: {documented:?}",
                spec.method,
                spec.path,
                r.status.as_u16(),
                r.code()
            ));
        }
    }
}

fn takes_body(spec: &RouteSpec) -> bool {
    [Method::POST, Method::PUT, Method::PATCH].contains(&spec.method)
}

fn documented_statuses() -> BTreeMap<(String, String), BTreeSet<u16>> {
    let doc: Value = serde_json::from_str(ferry_http::api::openapi::DOCUMENT_JSON).expect("document");
    let mut out = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let statuses = op["responses"].as_object().map(|r| r.keys().filter_map(|k| k.parse().ok()).collect());
            out.insert((method.to_uppercase(), path.clone()), statuses.unwrap_or_default());
        }
    }
    out
}

/// `path` with `{tenant}` as `tenant` and every other id as `other`.
fn fill(path: &str, tenant: &str, other: &str) -> String {
    path.split('/')
        .map(|seg| match seg {
            "{tenant}" => tenant,
            s if s.starts_with('{') => other,
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn json_body(v: Value) -> Option<(&'static str, Body)> {
    Some(("application/json", Body::from(v.to_string())))
}

#[tokio::test]
async fn every_route_documents_the_statuses_it_really_returns() {
    let backends = switchable_hub();
    let store = backends.store.clone();
    let app = TestApp::with_hub(backends.hub, backends.dir).await;
    for t in ["acme", "spare", "old"] {
        app.tenant(t).await;
    }
    assert_eq!(app.admin(Method::POST, "/v1/tenants/old/archive", None).await.status, StatusCode::OK);
    let r = app.admin(Method::POST, "/v1/tenants/acme/api-keys", Some(json!({"name": "p", "scopes": ["push"]}))).await;
    let push_key = r.json()["key"].as_str().expect("push key").to_owned();
    let admin = app.admin_key.clone();
    let mut p = Probe { app: &app, documented: documented_statuses(), problems: Vec::new() };

    let routes: Vec<RouteSpec> = specs().into_iter().filter(|s| s.path != "/openapi.json").collect();
    for spec in &routes {
        // Archiving is probed on a tenant of its own, so the others stay writable.
        let tenant = if spec.path.ends_with("/archive") { "spare" } else { "acme" };
        let path = fill(spec.path, tenant, "nope-1");
        let body = || if takes_body(spec) { json_body(json!({})) } else { None };
        if spec.access != Access::Public {
            p.send(spec, "no credentials", &path, None, body()).await;
            p.send(spec, "a push-only key", &path, Some(&push_key), body()).await;
        }
        if spec.path.contains('{') {
            p.send(spec, "malformed ids", &fill(spec.path, "Not_An_Id", "Not_An_Id"), Some(&admin), body()).await;
            p.send(spec, "missing things", &path, Some(&admin), body()).await;
        }
        if spec.path.contains("{tenant}") {
            p.send(spec, "a missing tenant", &fill(spec.path, "ghost", "nope-1"), Some(&admin), body()).await;
            p.send(spec, "an archived tenant", &fill(spec.path, "old", "nope-1"), Some(&admin), body()).await;
        }
        if takes_body(spec) {
            p.send(spec, "not JSON", &path, Some(&admin), Some(("text/plain", Body::from("{}")))).await;
            p.send(spec, "malformed JSON", &path, Some(&admin), Some(("application/json", Body::from("{")))).await;
            let huge = format!("{{\"name\": \"{}\"}}", "x".repeat(BODY_LIMIT * 40));
            p.send(spec, "a huge body", &path, Some(&admin), Some(("application/json", Body::from(huge)))).await;
        }
    }

    let login = routes.iter().find(|s| s.path == "/v1/sessions" && s.method == Method::POST).expect("login route");
    for _ in 0..7 {
        let wrong = json_body(json!({"email": "ann@example.com", "password": "wrong password"}));
        p.send(login, "wrong passwords, then throttled", "/v1/sessions", None, wrong).await;
    }

    // As an unreachable DynamoDB would.
    store.set(Fault::Unavailable);
    for spec in &routes {
        let path = fill(spec.path, "acme", "nope-1");
        let body =
            if takes_body(spec) { json_body(json!({"email": "bob@example.com", "password": "x"})) } else { None };
        p.send(spec, "the store is down", &path, Some(&admin), body).await;
    }

    assert!(p.problems.is_empty(), "undocumented statuses:\n{}", p.problems.join("\n"));
}
