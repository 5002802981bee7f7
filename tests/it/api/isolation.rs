//! The tenant-isolation matrix: every route of the API × every kind of caller,
//! with the expected allow/deny written out here independently of the policy
//! code, and a check that denied calls neither read nor change tenant A's data.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use chrono::{Duration, Utc};
use ferry_core::ports::ManualClock;
use ferry_http::api::routes::specs;
use ferry_service::Settings;
use serde_json::{json, Value};

use crate::support::app::TestApp;
use crate::support::manifests::{crm_sync_described, publish_body, CRM_SYNC};

/// How a route is meant to be guarded, as the product defines it (EZY roles).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Class {
    Public,
    AnyCaller,
    AdminOnly,
    /// Admins, members of the tenant and the tenant's own API keys.
    TenantData,
    /// Admins and members of the tenant, but no API keys.
    TenantPeople,
}

fn classify(method: &Method, path: &str) -> Class {
    use Class::*;
    match (method.as_str(), path) {
        ("GET", "/healthz") | ("GET", "/openapi.json") | ("POST", "/v1/sessions") => Public,
        ("DELETE", "/v1/sessions/current") | ("GET", "/v1/me") | ("GET", "/v1/tenants") => AnyCaller,
        ("POST", "/v1/tenants") | ("PATCH", "/v1/tenants/{tenant}") | ("POST", "/v1/tenants/{tenant}/archive") => {
            AdminOnly
        }
        (_, p) if p.starts_with("/v1/users") || p.starts_with("/v1/api-keys") => AdminOnly,
        // Every tenant's runs: the platform's activity is for its admins only.
        ("GET", "/v1/runs") => AdminOnly,
        // A tenant's runs across its jobs: as its jobs' runs are.
        ("GET", "/v1/tenants/{tenant}/runs") => TenantData,
        // Platform-wide run metrics cover every tenant: admins only.
        ("GET", "/v1/metrics") => AdminOnly,
        ("GET", "/v1/tenants/{tenant}/metrics") => TenantData,
        // Dead letters are a tenant's data, replayed like a rerun; giving them up is a person's decision.
        ("POST", p) if p.starts_with("/v1/tenants/{tenant}/dead-letters") && p.ends_with("/discard") => TenantPeople,
        (_, p) if p.starts_with("/v1/tenants/{tenant}/dead-letters") => TenantData,
        // Integrations are platform-wide: operators read them to create jobs; admins publish.
        ("GET", p) if p.starts_with("/v1/integrations") => AnyCaller,
        (_, p) if p.starts_with("/v1/integrations") => AdminOnly,
        (_, p) if p.starts_with("/v1/tenants/{tenant}/api-keys") => TenantPeople,
        // OAuth client registrations: the platform's by admins; a tenant's own by its people, never by API keys.
        (_, p) if p.starts_with("/v1/oauth-clients") => AdminOnly,
        (_, p) if p.starts_with("/v1/tenants/{tenant}/oauth-clients") => TenantPeople,
        (_, p) if p.starts_with("/v1/notification-endpoints") => AdminOnly,
        // Notification endpoints and webhook secrets are operated by people; API keys only read connector info.
        (_, p) if p.starts_with("/v1/tenants/{tenant}/notification-endpoints") => TenantPeople,
        ("PUT", "/v1/tenants/{tenant}/jobs/{job}/webhook") => TenantPeople,
        // Stopping a run is an operator's decision; the tenant's API keys may only trigger runs.
        ("POST", "/v1/tenants/{tenant}/jobs/{job}/runs/{run}/cancel") => TenantPeople,
        ("GET", "/v1/tenants/{tenant}/jobs/{job}/connector-info") => TenantData,
        ("GET", "/v1/tenants/{tenant}") => TenantData,
        (_, p) if p.starts_with("/v1/tenants/{tenant}/connections") => TenantData,
        (_, p) if p.starts_with("/v1/tenants/{tenant}/jobs") || p.starts_with("/v1/tenants/{tenant}/mappings") => {
            TenantData
        }
        other => panic!("route {other:?} is not classified in the isolation matrix; add it"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Who {
    PlatformAdmin,
    UserA,
    UserB,
    KeyA,
    KeyB,
    Anonymous,
    RevokedKey,
    ExpiredKey,
}

const EVERYONE: [Who; 8] = [
    Who::PlatformAdmin,
    Who::UserA,
    Who::UserB,
    Who::KeyA,
    Who::KeyB,
    Who::Anonymous,
    Who::RevokedKey,
    Who::ExpiredKey,
];

/// The expected status class when `who` calls a route of `class` aimed at tenant A.
fn expected(class: Class, who: Who) -> Result<(), StatusCode> {
    use Who::*;
    let unauthenticated = matches!(who, Anonymous | RevokedKey | ExpiredKey);
    match class {
        Class::Public => Ok(()),
        _ if unauthenticated => Err(StatusCode::UNAUTHORIZED),
        Class::AnyCaller => Ok(()),
        Class::AdminOnly => {
            if who == PlatformAdmin {
                Ok(())
            } else {
                Err(StatusCode::FORBIDDEN)
            }
        }
        Class::TenantData => {
            if matches!(who, PlatformAdmin | UserA | KeyA) {
                Ok(())
            } else {
                Err(StatusCode::FORBIDDEN)
            }
        }
        Class::TenantPeople => {
            if matches!(who, PlatformAdmin | UserA) {
                Ok(())
            } else {
                Err(StatusCode::FORBIDDEN)
            }
        }
    }
}

struct World {
    app: TestApp,
    tokens: Vec<(Who, Option<String>)>,
    admin_email: String,
    counter: std::sync::atomic::AtomicU32,
}

impl World {
    async fn new() -> Self {
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let app = TestApp::embedded_with_clock(
            clock.clone(),
            Settings {
                session_ttl: Duration::days(2),
                http: ferry_engine::http::HttpPolicy {
                    max_retries: 0,
                    timeout: std::time::Duration::from_secs(1),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await;
        app.tenant("a").await;
        app.tenant("b").await;
        app.publish("crm-sync", CRM_SYNC).await;
        app.publish("shop-orders", &super::hooks::manifest("{type: standard_webhooks}", "{type: head_ok}")).await;
        let admin_email = "root@example.com".to_owned();
        let r = app
            .admin(Method::POST, "/v1/users", Some(json!({"email": admin_email, "full_name": "Root", "password": "correct horse battery", "role": "platform_admin"})))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        let admin = app.login(&admin_email, "correct horse battery").await;
        let (user_a, _) = app.member("ann@a.example", &["a"]).await;
        let (user_b, _) = app.member("bob@b.example", &["b"]).await;
        let (key_a, _) = app.tenant_key("a").await;
        let (key_b, _) = app.tenant_key("b").await;
        let (revoked, revoked_id) = app.tenant_key("a").await;
        let r = app.admin(Method::DELETE, &format!("/v1/tenants/a/api-keys/{revoked_id}"), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let r = app
            .admin(
                Method::POST,
                "/v1/tenants/a/api-keys",
                Some(json!({"name": "short", "expires_at": clock.now_plus(Duration::hours(1))})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        let expired = r.json()["key"].as_str().expect("key").to_owned();
        clock.advance(Duration::hours(2));
        let tokens = vec![
            (Who::PlatformAdmin, Some(admin)),
            (Who::UserA, Some(user_a)),
            (Who::UserB, Some(user_b)),
            (Who::KeyA, Some(key_a)),
            (Who::KeyB, Some(key_b)),
            (Who::Anonymous, None),
            (Who::RevokedKey, Some(revoked)),
            (Who::ExpiredKey, Some(expired)),
        ];
        Self { app, tokens, admin_email, counter: Default::default() }
    }

    fn token(&self, who: Who) -> Option<String> {
        self.tokens.iter().find(|(w, _)| *w == who).and_then(|(_, t)| t.clone())
    }

    fn fresh(&self, what: &str) -> String {
        let n = self.counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        format!("{what}-{n}")
    }

    /// Fills the path's ids with fresh resources of tenant A, and builds a valid body.
    async fn prepare(&self, method: &Method, template: &str) -> (String, Option<Value>) {
        let app = &self.app;
        let mut path = template.replace("{tenant}", "a");
        if path.contains("{connection}") {
            let id = app.connection("a", &self.fresh("conn"), "s3cret").await;
            path = path.replace("{connection}", &id);
        }
        path = path.replace("{integration}", "crm-sync").replace("{release}", "1").replace("{provider}", "hubspot");
        if path.contains("{job}") && (path.ends_with("/webhook") || path.ends_with("/connector-info")) {
            let job = app.job("a", json!({"name": self.fresh("shop"), "integration": "shop-orders"})).await;
            path = path.replace("{job}", &job);
        }
        if path.contains("{job}") {
            let id = self.job_body().await;
            path = path.replace("{job}", &app.job("a", id).await);
        }
        if path.contains("{run}") && path.ends_with("/cancel") {
            // A run that stays queued (handed to a queue nobody reads), so it is still cancellable.
            let job =
                path.split("/jobs/").nth(1).and_then(|rest| rest.split('/').next()).unwrap_or_default().to_owned();
            let hub = app.hub.clone().with_dispatcher(Arc::new(Nowhere));
            let req = serde_json::from_value(json!({})).expect("run request");
            let run = hub.runs().trigger_run("a", &job, req, "api").await.expect("triggered").run;
            path = path.replace("{run}", &run.id);
        }
        if path.contains("{run}") {
            let job =
                path.split("/jobs/").nth(1).and_then(|rest| rest.split('/').next()).unwrap_or_default().to_owned();
            let r = app.admin(Method::POST, &format!("/v1/tenants/a/jobs/{job}/runs"), Some(json!({}))).await;
            let run = r.json()["run"]["id"].as_str().expect("run id").to_owned();
            if path.ends_with("/rerun") {
                // Only an ended run is rerun: this one fails at once (its connection is a closed port).
                wait_until_ended(app, &format!("/v1/tenants/a/jobs/{job}/runs/{run}")).await;
            }
            path = path.replace("{run}", &run);
        }
        if path.contains("{dead_letter}") {
            path = path.replace("{dead_letter}", &self.dead_letter().await);
        }
        if path.contains("{endpoint}") {
            let owner = if template.starts_with("/v1/notification-endpoints") {
                "/v1/notification-endpoints".to_owned()
            } else {
                "/v1/tenants/a/notification-endpoints".to_owned()
            };
            let r = app.admin(Method::POST, &owner, Some(json!({"url": "http://127.0.0.1:9/events"}))).await;
            path = path.replace("{endpoint}", r.json()["endpoint"]["id"].as_str().expect("endpoint id"));
        }
        if path.contains("{mapping}") {
            path = path.replace("{mapping}", &app.mapping("a", &self.fresh("map")).await);
        }
        if path.contains("{user}") {
            let email = format!("{}@example.com", self.fresh("user"));
            let r = app
                .admin(
                    Method::POST,
                    "/v1/users",
                    Some(
                        json!({"email": email, "full_name": "U", "password": "correct horse battery", "role": "user"}),
                    ),
                )
                .await;
            path = path.replace("{user}", r.json()["id"].as_str().expect("user id"));
        }
        if path.contains("{key}") {
            let owner = if template.starts_with("/v1/api-keys") {
                "/v1/api-keys".to_owned()
            } else {
                "/v1/tenants/a/api-keys".to_owned()
            };
            let r = app.admin(Method::POST, &owner, Some(json!({"name": "target"}))).await;
            path = path.replace("{key}", r.json()["api_key"]["id"].as_str().expect("key id"));
        }
        let body = match (method.as_str(), template) {
            ("POST", "/v1/sessions") => Some(json!({"email": self.admin_email, "password": "correct horse battery"})),
            ("POST", "/v1/tenants") => Some(json!({"id": self.fresh("t"), "name": "New"})),
            ("PATCH", "/v1/tenants/{tenant}") => Some(json!({"name": "Renamed"})),
            ("POST", "/v1/users") => Some(
                json!({"email": format!("{}@example.com", self.fresh("new")), "full_name": "N", "password": "correct horse battery", "role": "user"}),
            ),
            ("PATCH", "/v1/users/{user}") => Some(json!({"full_name": "Changed"})),
            ("POST", "/v1/api-keys") | ("POST", "/v1/tenants/{tenant}/api-keys") => Some(json!({"name": "k"})),
            ("POST", "/v1/tenants/{tenant}/connections") => Some(
                json!({"name": self.fresh("c"), "connector": "hubspot", "auth_kind": "api_key", "credentials": {"api_key": "x"}}),
            ),
            ("PATCH", "/v1/tenants/{tenant}/connections/{connection}") => Some(json!({"settings": {"region": "eu"}})),
            ("PUT", "/v1/tenants/{tenant}/connections/{connection}/credentials") => Some(json!({"api_key": "rotated"})),
            ("POST", "/v1/integrations/{integration}/releases") => {
                Some(publish_body(&crm_sync_described(&format!("Release {}.", self.fresh("rel")))))
            }
            ("PATCH", "/v1/integrations/{integration}") => Some(json!({"default_release": 1})),
            ("POST", "/v1/tenants/{tenant}/jobs") => Some(self.job_body().await),
            ("PATCH", "/v1/tenants/{tenant}/jobs/{job}") => Some(json!({"paused": true})),
            ("POST", "/v1/tenants/{tenant}/jobs/{job}/runs") => Some(json!({"mode": "normal"})),
            ("POST", "/v1/tenants/{tenant}/mappings") => Some(
                json!({"name": self.fresh("m"), "entity": "contact", "fields": {"email": {"from": "properties.email"}}}),
            ),
            ("PATCH", "/v1/tenants/{tenant}/mappings/{mapping}") => Some(json!({"keep_unmapped": true})),
            ("POST", "/v1/tenants/{tenant}/connections/{connection}/link") => Some(json!({"ttl_seconds": 3600})),
            ("PUT", "/v1/oauth-clients/{provider}") | ("PUT", "/v1/tenants/{tenant}/oauth-clients/{provider}") => {
                Some(json!({"client_id": self.fresh("client"), "client_secret": "s3cret-0123456789"}))
            }
            ("POST", "/v1/notification-endpoints") | ("POST", "/v1/tenants/{tenant}/notification-endpoints") => {
                Some(json!({"url": "http://127.0.0.1:9/events"}))
            }
            ("PUT", "/v1/tenants/{tenant}/jobs/{job}/webhook") => Some(json!({})),
            ("POST", "/v1/tenants/{tenant}/jobs/{job}/runs/{run}/rerun") => Some(json!({"config": "original"})),
            ("POST", "/v1/tenants/{tenant}/dead-letters/replay")
            | ("POST", "/v1/tenants/{tenant}/dead-letters/discard") => Some(json!({"filter": {}})),
            ("POST", "/v1/tenants/{tenant}/dead-letters/{dead_letter}/replay") => Some(json!({"mapping": "current"})),
            _ => None,
        };
        (path, body)
    }

    /// A pending dead letter of a fresh job of tenant A, stored as a run would store it.
    async fn dead_letter(&self) -> String {
        let job = self.app.job("a", self.job_body().await).await;
        let now = Utc::now();
        let id = self.fresh("dl");
        let dl = ferry_core::model::DeadLetter {
            id: id.clone(),
            tenant: "a".into(),
            job,
            run: "r1".into(),
            flow: "contacts".into(),
            category: ferry_core::model::DeadLetterCategory::TargetRejected,
            error: "HTTP 422 from https://crm.example/contacts".into(),
            attempts: 1,
            first_seen: now,
            last_seen: now,
            status: ferry_core::model::DeadLetterStatus::Pending,
            source: Some(json!({"id": 1})),
            mapped: None,
            mapped_with: ferry_core::model::MappedWith::None,
            stored_at: None,
            last_run: "r1".into(),
        };
        ferry_service::dead_letters::store::insert(self.app.hub.store.as_ref(), &[dl]).await.expect("dead letter");
        id
    }

    /// A valid job of tenant A on the world's integration, with a fresh name and connection.
    async fn job_body(&self) -> Value {
        let conn = self.app.connection("a", &self.fresh("job-conn"), "s3cret").await;
        json!({"name": self.fresh("job"), "integration": "crm-sync", "connections": {"crm": conn}, "configs": {"region": "eu"}})
    }

    /// Everything of tenant A (and the platform) an attacker could read or change.
    async fn snapshot(&self) -> Value {
        let app = &self.app;
        let mut snap = serde_json::Map::new();
        for path in [
            "/v1/tenants/a",
            "/v1/tenants/a/connections?limit=200",
            "/v1/tenants/a/api-keys?limit=200",
            "/v1/users?limit=200",
            "/v1/api-keys?limit=200",
            "/v1/tenants?limit=200",
            "/v1/tenants/a/jobs?limit=200",
            "/v1/tenants/a/mappings?limit=200",
            "/v1/tenants/a/dead-letters?limit=200",
            "/v1/integrations?limit=200",
            "/v1/integrations/crm-sync/releases?limit=200",
            "/v1/tenants/a/notification-endpoints?limit=200",
            "/v1/notification-endpoints?limit=200",
        ] {
            let r = app.admin(Method::GET, path, None).await;
            snap.insert(path.to_owned(), r.json());
        }
        // OAuth client registrations live in the secret store (no read route): compare their client ids.
        for owner in ["platform", "a"] {
            let client = app
                .hub
                .secrets
                .get(&ferry_service::oauth::client_ref(owner, "hubspot"))
                .await
                .expect("read the OAuth client registration")
                .and_then(|f| f.get("client_id").map(|s| secrecy::ExposeSecret::expose_secret(s).to_owned()));
            snap.insert(format!("oauth-client/{owner}"), json!(client));
        }
        Value::Object(snap)
    }
}

/// Waits for the run at `path` to end.
async fn wait_until_ended(app: &TestApp, path: &str) {
    for _ in 0..400 {
        let v = app.admin(Method::GET, path, None).await.json();
        if !matches!(v["status"].as_str(), Some("queued" | "running" | "interrupted")) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("run {path} did not end");
}

/// A run queue nobody reads.
struct Nowhere;

#[async_trait::async_trait]
impl ferry_core::ports::RunDispatcher for Nowhere {
    async fn dispatch(&self, _: &ferry_core::ports::RunRef) -> Result<(), ferry_core::ports::DispatchError> {
        Ok(())
    }
}

trait NowPlus {
    fn now_plus(&self, d: Duration) -> String;
}
impl NowPlus for ManualClock {
    fn now_plus(&self, d: Duration) -> String {
        use ferry_core::ports::Clock;
        (self.now() + d).to_rfc3339()
    }
}

#[tokio::test]
async fn every_route_allows_and_denies_exactly_per_role_and_tenant() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for spec in specs() {
        let class = classify(&spec.method, spec.path);
        // A fresh world per route: some routes end sessions or archive tenants.
        let world = World::new().await;
        // Denied callers go first, so allowed calls cannot have changed what they would see.
        let mut order: Vec<Who> = EVERYONE.iter().copied().filter(|w| expected(class, *w).is_err()).collect();
        order.extend(EVERYONE.iter().copied().filter(|w| expected(class, *w).is_ok()));
        for who in order {
            let (path, body) = world.prepare(&spec.method, spec.path).await;
            let before = world.snapshot().await;
            let r = world.app.call(spec.method.clone(), &path, world.token(who).as_deref(), body).await;
            checked += 1;
            let outcome = match expected(class, who) {
                Ok(()) if r.status.is_success() => Ok(()),
                Ok(()) => Err(format!("expected success, got {} {}", r.status, r.text())),
                Err(status) if r.status != status => Err(format!("expected {status}, got {} {}", r.status, r.text())),
                Err(_) => {
                    let after = world.snapshot().await;
                    if before != after {
                        Err("a denied call changed stored data".to_owned())
                    } else if r.json()["error"]["code"].as_str().is_none() {
                        Err(format!("denial without a JSON error body: {}", r.text()))
                    } else if r.text().contains("s3cret") || r.text().contains("\"items\"") {
                        Err(format!("denial leaked data: {}", r.text()))
                    } else {
                        Ok(())
                    }
                }
            };
            if let Err(why) = outcome {
                failures.push(format!("{} {} as {who:?}: {why}", spec.method, spec.path));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {checked} matrix cells failed:\n{}", failures.len(), failures.join("\n"));
    assert_eq!(checked, specs().len() * EVERYONE.len());
}

#[tokio::test]
async fn tenant_lists_show_only_the_callers_tenants() {
    let world = World::new().await;
    let ids = |v: Value| -> Vec<String> {
        v["items"]
            .as_array()
            .map(|a| a.iter().filter_map(|t| t["id"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    for (who, want) in [
        (Who::PlatformAdmin, vec!["a", "b"]),
        (Who::UserA, vec!["a"]),
        (Who::UserB, vec!["b"]),
        (Who::KeyA, vec!["a"]),
        (Who::KeyB, vec!["b"]),
    ] {
        let r = world.app.call(Method::GET, "/v1/tenants", world.token(who).as_deref(), None).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(ids(r.json()), want, "{who:?}");
    }
}

#[tokio::test]
async fn ids_of_another_tenant_are_not_found_through_ones_own_tenant() {
    let world = World::new().await;
    let conn_a = world.app.connection("a", "crm", "s3cret").await;
    let (_, key_a_id) = world.app.tenant_key("a").await;
    let job_a = world.app.job("a", world.job_body().await).await;
    let mapping_a = world.app.mapping("a", "contacts").await;
    let queued = world.app.hub.clone().with_dispatcher(Arc::new(Nowhere));
    let req = serde_json::from_value(json!({})).expect("run request");
    let run_a = queued.runs().trigger_run("a", &job_a, req, "api").await.expect("triggered").run.id;
    let dead_letter_a = world.dead_letter().await;
    let key_b = world.token(Who::KeyB);
    let user_b = world.token(Who::UserB);
    for (token, method, path, body) in [
        (&key_b, Method::GET, format!("/v1/tenants/b/connections/{conn_a}"), None),
        (&key_b, Method::PATCH, format!("/v1/tenants/b/connections/{conn_a}"), Some(json!({"name": "stolen"}))),
        (
            &key_b,
            Method::PUT,
            format!("/v1/tenants/b/connections/{conn_a}/credentials"),
            Some(json!({"api_key": "mine"})),
        ),
        (&key_b, Method::POST, format!("/v1/tenants/b/connections/{conn_a}/disconnect"), None),
        (&key_b, Method::POST, format!("/v1/tenants/b/connections/{conn_a}/link"), Some(json!({}))),
        (&key_b, Method::DELETE, format!("/v1/tenants/b/connections/{conn_a}/link"), None),
        (&key_b, Method::DELETE, format!("/v1/tenants/b/connections/{conn_a}"), None),
        (&user_b, Method::DELETE, format!("/v1/tenants/b/api-keys/{key_a_id}"), None),
        (&key_b, Method::GET, format!("/v1/tenants/b/jobs/{job_a}"), None),
        (&key_b, Method::PATCH, format!("/v1/tenants/b/jobs/{job_a}"), Some(json!({"paused": true}))),
        (&user_b, Method::DELETE, format!("/v1/tenants/b/jobs/{job_a}"), None),
        (&user_b, Method::POST, format!("/v1/tenants/b/jobs/{job_a}/runs/{run_a}/cancel"), None),
        (
            &key_b,
            Method::POST,
            format!("/v1/tenants/b/jobs/{job_a}/runs/{run_a}/rerun"),
            Some(json!({"config": "original"})),
        ),
        (
            &user_b,
            Method::POST,
            format!("/v1/tenants/b/jobs/{job_a}/runs/{run_a}/rerun"),
            Some(json!({"config": "current"})),
        ),
        (&key_b, Method::GET, format!("/v1/tenants/b/mappings/{mapping_a}"), None),
        (&key_b, Method::PATCH, format!("/v1/tenants/b/mappings/{mapping_a}"), Some(json!({"name": "stolen"}))),
        (&user_b, Method::DELETE, format!("/v1/tenants/b/mappings/{mapping_a}"), None),
        (&key_b, Method::GET, format!("/v1/tenants/b/dead-letters/{dead_letter_a}"), None),
        (&key_b, Method::POST, format!("/v1/tenants/b/dead-letters/{dead_letter_a}/replay"), Some(json!({}))),
        (&user_b, Method::POST, format!("/v1/tenants/b/dead-letters/{dead_letter_a}/discard"), None),
        (
            &user_b,
            Method::POST,
            "/v1/tenants/b/dead-letters/replay".to_owned(),
            Some(json!({"ids": [dead_letter_a.clone()]})),
        ),
        (
            &user_b,
            Method::POST,
            "/v1/tenants/b/dead-letters/discard".to_owned(),
            Some(json!({"ids": [dead_letter_a.clone()]})),
        ),
    ] {
        let before = world.snapshot().await;
        let r = world.app.call(method.clone(), &path, token.as_deref(), body).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{method} {path}: {}", r.text());
        assert_eq!(before, world.snapshot().await, "{method} {path} changed tenant A");
    }
    // Tenant A's ids in tenant B's jobs are not found there either.
    for (field, value, code) in [
        ("connections", json!({"crm": conn_a}), "unknown_connection"),
        ("mappings", json!({"contacts": {"mapping": mapping_a}}), "unknown_mapping"),
    ] {
        let conn_b = world.app.connection("b", &world.fresh("conn-b"), "other").await;
        let mut body = json!({"name": world.fresh("j"), "integration": "crm-sync", "connections": {"crm": conn_b}, "configs": {"region": "eu"}});
        body[field] = value;
        let before = world.snapshot().await;
        let r = world.app.call(Method::POST, "/v1/tenants/b/jobs", key_b.as_deref(), Some(body)).await;
        assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, code.to_owned()), "{}", r.text());
        assert_eq!(before, world.snapshot().await);
    }
    let r = world.app.admin(Method::GET, &format!("/v1/tenants/a/jobs/{job_a}/runs/{run_a}"), None).await;
    assert_eq!(r.json()["status"], "queued", "tenant B's cancel did not reach tenant A's run");
    let r = world.app.admin(Method::GET, &format!("/v1/tenants/a/connections/{conn_a}"), None).await;
    assert_eq!(r.json()["name"], "crm");
    assert_eq!(r.json()["status"], "connected");
}
