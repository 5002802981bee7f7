//! Jobs: validated against the release their pin resolves to, on create, on
//! update, and (as `problems`) on every read.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::app::{Response, TestApp};
use crate::support::manifests::{crm_sync_with_tier, CRM_SYNC};

struct Fixture {
    app: TestApp,
    /// A `hubspot` connection of tenant a.
    crm: String,
}

async fn fixture() -> Fixture {
    let app = TestApp::embedded().await;
    app.tenant("a").await;
    app.tenant("b").await;
    assert_eq!(app.publish("crm-sync", CRM_SYNC).await, 1);
    let crm = app.connection("a", "crm", "s3cret").await;
    Fixture { app, crm }
}

impl Fixture {
    fn body(&self, name: &str) -> Value {
        json!({"name": name, "integration": "crm-sync", "connections": {"crm": self.crm}, "configs": {"region": "eu"}})
    }
    fn with(&self, name: &str, field: &str, value: Value) -> Value {
        let mut b = self.body(name);
        b[field] = value;
        b
    }
    async fn create(&self, body: Value) -> Response {
        self.app.admin(Method::POST, "/v1/tenants/a/jobs", Some(body)).await
    }
    async fn get(&self, id: &str) -> Value {
        let r = self.app.admin(Method::GET, &format!("/v1/tenants/a/jobs/{id}"), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        r.json()
    }
    async fn patch(&self, id: &str, body: Value) -> Response {
        self.app.admin(Method::PATCH, &format!("/v1/tenants/a/jobs/{id}"), Some(body)).await
    }
}

fn refused(r: &Response, code: &str) {
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, code.to_owned()), "{}", r.text());
}

fn problem_codes(job: &Value) -> Vec<String> {
    job["problems"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["code"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_valid_job_is_created_with_defaults() {
    let f = fixture().await;
    let r = f.create(f.body("nightly")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let j = r.json();
    assert_eq!(j["release"], json!({"kind": "channel", "channel": "default"}));
    assert_eq!(j["resolved_release"], 1);
    assert_eq!(j["problems"], json!([]));
    assert_eq!(j["paused"], false);
    assert_eq!(j["schedule"], json!({"preset": "hourly"}), "the manifest's default schedule");
    assert_eq!(j["dynamic_options"], json!({}));
    assert_eq!(j["state"], json!({}));
    assert_eq!(j["tenant"], "a");

    let id = j["id"].as_str().expect("id").to_owned();
    assert_eq!(f.get(&id).await, j);
    let r = f.app.admin(Method::GET, "/v1/tenants/a/jobs", None).await;
    assert_eq!(r.json()["items"], json!([j]));

    // Chosen at creation: paused, a pin, a schedule.
    let r = f
        .create(json!({"name": "paused one", "integration": "crm-sync", "release": {"kind": "specific", "number": 1},
            "connections": {"crm": f.crm}, "configs": {"region": "us", "batch": 10},
            "schedule": {"cron": "*/5 * * * *", "timezone": "Europe/Berlin"}, "paused": true}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["paused"], true);
    assert_eq!(r.json()["schedule"]["cron"], "*/5 * * * *");

    // Names are unique per tenant, case-insensitively; other tenants may reuse them.
    let r = f.create(f.body("NIGHTLY")).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "job_exists".to_owned()), "{}", r.text());
    let crm_b = f.app.connection("b", "crm", "other").await;
    let r = f
        .app
        .admin(
            Method::POST,
            "/v1/tenants/b/jobs",
            Some(json!({"name": "nightly", "integration": "crm-sync", "connections": {"crm": crm_b}, "configs": {"region": "eu"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());

    // Renaming frees the old name.
    let r = f.patch(&id, json!({"name": "hourly"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(f.create(f.body("nightly")).await.status, StatusCode::CREATED);

    // Deleting removes the job and its name.
    let r = f.app.admin(Method::DELETE, &format!("/v1/tenants/a/jobs/{id}"), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = f.app.admin(Method::GET, &format!("/v1/tenants/a/jobs/{id}"), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(f.create(f.body("hourly")).await.status, StatusCode::CREATED);
}

#[tokio::test]
async fn configs_failing_the_schema_are_refused_with_every_violation() {
    let f = fixture().await;
    let r = f.create(f.with("j", "configs", json!({"region": "mars-secret-value", "batch": 1000}))).await;
    refused(&r, "invalid_configs");
    let err = r.json()["error"].clone();
    assert!(err["message"].as_str().is_some_and(|m| m.contains("crm-sync release 1")), "{err}");
    let paths: Vec<&str> =
        err["details"].as_array().map(|a| a.iter().filter_map(|d| d["path"].as_str()).collect()).unwrap_or_default();
    assert!(paths.contains(&"/region") && paths.contains(&"/batch"), "{err}");
    assert!(!r.text().contains("mars-secret-value"), "config values are not echoed: {}", r.text());
    assert!(!r.text().contains("1000"), "config values are not echoed: {}", r.text());

    // Pandium's `max` is JSON Schema's `maximum`; `required` holds.
    let r = f.create(f.with("j", "configs", json!({"batch": 100}))).await;
    refused(&r, "invalid_configs");
    assert!(r.text().contains("region"), "{}", r.text());
    let r = f.create(f.with("j", "configs", json!({"region": "eu", "batch": "ten"}))).await;
    refused(&r, "invalid_configs");
    assert_eq!(
        f.create(f.with("j", "configs", json!({"region": "eu", "batch": 100}))).await.status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn connection_bindings_are_checked_against_the_manifest_and_the_tenant() {
    let f = fixture().await;
    // A connection of another tenant is simply not there.
    let crm_b = f.app.connection("b", "crm", "other").await;
    let r = f.create(f.with("j", "connections", json!({"crm": crm_b}))).await;
    refused(&r, "unknown_connection");
    let r = f.create(f.with("j", "connections", json!({"crm": "Not An Id"}))).await;
    refused(&r, "unknown_connection");
    // A required connector left unbound.
    let r = f.create(f.with("j", "connections", json!({}))).await;
    refused(&r, "missing_connection");
    assert!(r.text().contains("`crm`") && r.text().contains("hubspot"), "{}", r.text());
    // A connection of the wrong provider.
    let r = f
        .app
        .admin(
            Method::POST,
            "/v1/tenants/a/connections",
            Some(json!({"name": "sf", "connector": "salesforce", "auth_kind": "none"})),
        )
        .await;
    let sf = r.json()["id"].as_str().expect("id").to_owned();
    let r = f.create(f.with("j", "connections", json!({"crm": sf}))).await;
    refused(&r, "connector_mismatch");
    assert!(r.text().contains("salesforce") && r.text().contains("hubspot"), "{}", r.text());
    // A binding for a connector the manifest does not declare.
    let r = f.create(f.with("j", "connections", json!({"crm": f.crm, "erp": f.crm}))).await;
    refused(&r, "unknown_connector");
    // The optional connector may be bound, with the right provider.
    let r = f
        .app
        .admin(
            Method::POST,
            "/v1/tenants/a/connections",
            Some(json!({"name": "wh", "connector": "warehouse", "auth_kind": "none"})),
        )
        .await;
    let wh = r.json()["id"].as_str().expect("id").to_owned();
    let r = f.create(f.with("j", "connections", json!({"crm": f.crm, "warehouse": wh}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());

    // Nothing was created by the refused attempts.
    let r = f.app.admin(Method::GET, "/v1/tenants/a/jobs", None).await;
    assert_eq!(r.json()["items"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn unknown_integrations_and_releases_are_refused() {
    let f = fixture().await;
    refused(&f.create(f.with("j", "integration", json!("nope"))).await, "unknown_integration");
    refused(&f.create(f.with("j", "integration", json!("Bad#Name"))).await, "unknown_integration");
    refused(&f.create(f.with("j", "release", json!({"kind": "specific", "number": 2}))).await, "unknown_release");
    refused(&f.create(f.with("j", "release", json!({"kind": "specific", "number": 0}))).await, "unknown_release");
    let r = f.create(f.with("j", "release", json!({"kind": "channel", "channel": "beta"}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let r = f.create(f.with("j", "release", json!({"kind": "specific"}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
}

#[tokio::test]
async fn channel_latest_follows_new_releases_and_specific_does_not() {
    let f = fixture().await;
    let latest = f.app.job("a", f.with("on latest", "release", json!({"kind": "channel", "channel": "latest"}))).await;
    let pinned = f.app.job("a", f.with("pinned", "release", json!({"kind": "specific", "number": 1}))).await;
    let default = f.app.job("a", f.body("on default")).await;

    // Release 2 adds a required config the jobs do not have.
    assert_eq!(f.app.publish("crm-sync", &crm_sync_with_tier()).await, 2);

    let j = f.get(&latest).await;
    assert_eq!(j["resolved_release"], 2, "latest moved without editing the job");
    assert_eq!(problem_codes(&j), vec!["invalid_configs"]);
    assert!(j["problems"][0]["message"].as_str().is_some_and(|m| m.contains("release 2")), "{j}");
    assert!(j["problems"][0]["details"].to_string().contains("tier"), "{j}");
    let j = f.get(&pinned).await;
    assert_eq!((j["resolved_release"].clone(), j["problems"].clone()), (json!(1), json!([])));
    let j = f.get(&default).await;
    assert_eq!((j["resolved_release"].clone(), j["problems"].clone()), (json!(1), json!([])));
    // The list reports the same.
    let r = f.app.admin(Method::GET, "/v1/tenants/a/jobs", None).await;
    let items = r.json()["items"].clone();
    let broken: Vec<&str> = items
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|j| !j["problems"].as_array().is_some_and(Vec::is_empty))
                .filter_map(|j| j["name"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(broken, vec!["on latest"]);

    // Promoting release 2 to default breaks the default job the same way.
    let r = f.app.admin(Method::PATCH, "/v1/integrations/crm-sync", Some(json!({"default_release": 2}))).await;
    assert_eq!(r.status, StatusCode::OK);
    let j = f.get(&default).await;
    assert_eq!((j["resolved_release"].clone(), problem_codes(&j)), (json!(2), vec!["invalid_configs".to_owned()]));

    // A broken job can still be paused and renamed; fixing its configs clears the problems.
    let r = f.patch(&latest, json!({"paused": true, "name": "on latest (paused)"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(problem_codes(&r.json()), vec!["invalid_configs"]);
    let r = f.patch(&latest, json!({"configs": {"region": "eu", "tier": "gold"}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["problems"], json!([]));
}

#[tokio::test]
async fn moving_the_pin_to_a_release_the_configs_fail_is_refused() {
    let f = fixture().await;
    let id = f.app.job("a", f.with("pinned", "release", json!({"kind": "specific", "number": 1}))).await;
    f.app.publish("crm-sync", &crm_sync_with_tier()).await;

    let r = f.patch(&id, json!({"release": {"kind": "specific", "number": 2}})).await;
    refused(&r, "invalid_configs");
    assert!(r.json()["error"]["message"].as_str().is_some_and(|m| m.contains("release 2")), "{}", r.text());
    let r = f.patch(&id, json!({"release": {"kind": "channel", "channel": "latest"}})).await;
    refused(&r, "invalid_configs");
    let r = f.patch(&id, json!({"release": {"kind": "specific", "number": 7}})).await;
    refused(&r, "unknown_release");
    // Unchanged by the refusals.
    let j = f.get(&id).await;
    assert_eq!(j["release"], json!({"kind": "specific", "number": 1}));

    // Configs changed to fail the current release are refused too.
    refused(&f.patch(&id, json!({"configs": {"region": "mars"}})).await, "invalid_configs");
    // Moving the pin and the configs together works.
    let r = f
        .patch(
            &id,
            json!({"release": {"kind": "specific", "number": 2}, "configs": {"region": "us", "tier": "silver"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["resolved_release"], 2);
    // And back to 1: the extra config is allowed there (no additionalProperties: false).
    let r = f.patch(&id, json!({"release": {"kind": "specific", "number": 1}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

#[tokio::test]
async fn dynamic_configs_are_free_until_options_exist_then_restricted_to_them() {
    let f = fixture().await;
    // No options yet: `owner` is optional and only type-checked.
    let id = f.app.job("a", f.with("dyn", "configs", json!({"region": "eu", "owner": "u-1"}))).await;
    refused(&f.patch(&id, json!({"configs": {"region": "eu", "owner": 42}})).await, "invalid_configs");
    let without = f.app.job("a", f.with("dyn2", "configs", json!({"region": "eu"}))).await;

    // An init run stores options (titled ones become `oneOf`).
    f.app
        .hub
        .jobs()
        .set_dynamic_options(
            "a",
            &id,
            "owners",
            vec![json!({"const": "u-1", "title": "Ann"}), json!({"const": "u-2", "title": "Bob"})],
        )
        .await
        .expect("store options");
    let j = f.get(&id).await;
    assert_eq!(j["dynamic_options"]["owners"][1]["title"], "Bob");
    assert_eq!(j["problems"], json!([]), "u-1 is among the options");

    refused(&f.patch(&id, json!({"configs": {"region": "eu", "owner": "u-9"}})).await, "invalid_configs");
    // Now that options exist, the config is required again.
    refused(&f.patch(&id, json!({"configs": {"region": "eu"}})).await, "invalid_configs");
    let r = f.patch(&id, json!({"configs": {"region": "eu", "owner": "u-2"}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    // Plain string options become an `enum`; options are per job.
    f.app.hub.jobs().set_dynamic_options("a", &without, "owners", vec![json!("x"), json!("y")]).await.expect("options");
    let j = f.get(&without).await;
    assert_eq!(problem_codes(&j), vec!["invalid_configs"], "owner is now required: {j}");
    refused(&f.patch(&without, json!({"configs": {"region": "eu", "owner": "u-2"}})).await, "invalid_configs");
    assert_eq!(f.patch(&without, json!({"configs": {"region": "eu", "owner": "y"}})).await.status, StatusCode::OK);

    // Options and state are maintained by runs, not the API.
    let r = f.patch(&id, json!({"dynamic_options": {"owners": ["z"]}})).await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "unknown_field".to_owned()));
    let r = f.patch(&id, json!({"state": {"cursor": 1}})).await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "unknown_field".to_owned()));
}

#[tokio::test]
async fn mappings_must_exist_in_the_tenant_and_name_flows() {
    let f = fixture().await;
    let m = f.app.mapping("a", "contacts").await;
    let r = f.create(f.with("j1", "mappings", json!({"contacts": {"mapping": m}}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let job = r.json()["id"].as_str().expect("id").to_owned();

    refused(&f.create(f.with("j2", "mappings", json!({"nope": {"mapping": m}}))).await, "unknown_flow");
    refused(&f.create(f.with("j2", "mappings", json!({"contacts": {"mapping": "missing"}}))).await, "unknown_mapping");
    let m_b = f.app.mapping("b", "contacts").await;
    refused(&f.create(f.with("j2", "mappings", json!({"contacts": {"mapping": m_b}}))).await, "unknown_mapping");
    // Inline mappings in the manifest's shape, checked like the manifest's.
    let r = f
        .create(f.with(
            "j2",
            "mappings",
            json!({"contacts": {"fields": {"email": "{{ secret.email }}", "id": {"from": "id", "value": 1}}}}),
        ))
        .await;
    refused(&r, "invalid_mapping");
    let details = r.json()["error"]["details"].clone();
    assert!(details.to_string().contains("/mappings/contacts/fields/email"), "{details}");
    assert!(details.to_string().contains("/mappings/contacts/fields/id"), "{details}");
    let r = f
        .create(f.with("j2", "mappings", json!({"contacts": {"entity": "contact", "fields": {"email": {"from": "properties.email"}}, "keep_unmapped": true}})))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["mappings"]["contacts"]["fields"]["email"]["from"], "properties.email");

    // A mapping or connection a job uses cannot be deleted.
    let r = f.app.admin(Method::DELETE, &format!("/v1/tenants/a/mappings/{m}"), None).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "mapping_in_use".to_owned()), "{}", r.text());
    let r = f.app.admin(Method::DELETE, &format!("/v1/tenants/a/connections/{}", f.crm), None).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "connection_in_use".to_owned()), "{}", r.text());
    assert!(r.text().contains("j1"), "names the jobs: {}", r.text());
    // Both still work, credentials included.
    let r = f.app.admin(Method::GET, &format!("/v1/tenants/a/connections/{}", f.crm), None).await;
    assert_eq!(r.json()["status"], "connected");
    assert_eq!(r.json()["credentials"]["api_key"], "********");

    // Once no job uses them, they can go.
    let r = f.patch(&job, json!({"mappings": {}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = f.app.admin(Method::DELETE, &format!("/v1/tenants/a/mappings/{m}"), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    let r = f.app.admin(Method::GET, "/v1/tenants/a/jobs", None).await;
    for j in r.json()["items"].as_array().cloned().unwrap_or_default() {
        let id = j["id"].as_str().expect("id");
        assert_eq!(
            f.app.admin(Method::DELETE, &format!("/v1/tenants/a/jobs/{id}"), None).await.status,
            StatusCode::NO_CONTENT
        );
    }
    let r = f.app.admin(Method::DELETE, &format!("/v1/tenants/a/connections/{}", f.crm), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
}

#[tokio::test]
async fn schedules_are_checked_for_shape_and_against_the_manifest() {
    let f = fixture().await;
    let r = f.create(f.with("j", "schedule", json!({"preset": "daily", "bogus": 1}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let r = f.create(f.with("j", "schedule", json!({"preset": "every_minute"}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    refused(&f.create(f.with("j", "schedule", json!({"preset": "weekly", "day": "monday"}))).await, "invalid_schedule");
    let r =
        f.create(f.with("j", "schedule", json!({"preset": "daily", "at": "06:30", "timezone": "Europe/Vienna"}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let id = r.json()["id"].as_str().expect("id").to_owned();
    // `null` removes the schedule; omitting it keeps it.
    let r = f.patch(&id, json!({"paused": true})).await;
    assert_eq!(r.json()["schedule"]["preset"], "daily");
    let r = f.patch(&id, json!({"schedule": null})).await;
    assert_eq!((r.status, r.json()["schedule"].clone()), (StatusCode::OK, Value::Null), "{}", r.text());
}

#[tokio::test]
async fn jobs_of_another_tenant_are_not_found_through_ones_own() {
    let f = fixture().await;
    let id = f.app.job("a", f.body("j")).await;
    let (key_b, _) = f.app.tenant_key("b").await;
    for (method, body) in [(Method::GET, None), (Method::PATCH, Some(json!({"paused": true}))), (Method::DELETE, None)]
    {
        let r = f.app.call(method.clone(), &format!("/v1/tenants/b/jobs/{id}"), Some(&key_b), body).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{method}: {}", r.text());
    }
    assert_eq!(f.get(&id).await["paused"], false);
}
