//! The function binaries (`target/debug/<name>`) run as Lambda runs them: a
//! clean environment with the `AWS_LAMBDA_*` variables, the Runtime API
//! (emulated here) handing out API Gateway HTTP API (payload 2.0) events, and
//! DynamoDB and Secrets Manager behind `AWS_ENDPOINT_URL` (moto, from
//! ./tests/run).

use std::time::Duration;

use ferry_e2e::{function_binary, Deployment, HttpApiRequest, HttpApiResponse, RuntimeApi, Sandbox, PUBLIC_URL};
use serde_json::{json, Value};

use super::template::Template;

pub(super) const INVOKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether moto is there; fails under `FERRY_REQUIRE_AWS=1` when it is not.
pub(super) fn aws_configured() -> bool {
    if std::env::var("AWS_ENDPOINT_URL").is_ok() {
        return true;
    }
    assert!(
        std::env::var("FERRY_REQUIRE_AWS").as_deref() != Ok("1"),
        "FERRY_REQUIRE_AWS=1 but AWS_ENDPOINT_URL is not set: run ./tests/run"
    );
    eprintln!("skipping: AWS emulator not configured (run ./tests/run)");
    false
}

pub(super) struct Function {
    pub(super) name: &'static str,
    pub(super) api: RuntimeApi,
    pub(super) sandbox: Sandbox,
}

impl Function {
    pub(super) async fn start(name: &'static str, env: &[(String, String)]) -> Self {
        let binary = function_binary("debug", name).unwrap_or_else(|e| panic!("{e}"));
        let api = RuntimeApi::start(name).await.expect("runtime API emulator");
        let sandbox = Sandbox::spawn(&binary, name, &api, env).expect("spawn the function");
        Self { name, api, sandbox }
    }

    /// Sends `req` with the route key API Gateway would match for it (as the
    /// template routes it), or `$default` for a request the template sends
    /// elsewhere, to see what the function itself does with it.
    pub(super) async fn call(&mut self, template: &Template, req: HttpApiRequest) -> HttpApiResponse {
        let (method, path) = (req.method().to_owned(), req.path().to_owned());
        let req = match template.resolve(&method, &path) {
            Some((f, route)) if f.crate_name.as_deref() == Some(self.name) => req.route(&route.key()),
            _ => req,
        };
        let outcome = self.sandbox.invoke(&self.api, &req.to_event(), INVOKE_TIMEOUT).await;
        let outcome =
            outcome.unwrap_or_else(|e| panic!("{}: {method} {path}: {e}\n{}", self.name, self.sandbox.output()));
        HttpApiResponse::from_outcome(&outcome)
            .unwrap_or_else(|e| panic!("{}: {method} {path}: {e}\n{}", self.name, self.sandbox.output()))
    }

    pub(super) async fn get(&mut self, t: &Template, path: &str, token: &str) -> HttpApiResponse {
        let mut req = HttpApiRequest::new("GET", path);
        if !token.is_empty() {
            req = req.bearer(token);
        }
        self.call(t, req).await
    }

    pub(super) async fn post(&mut self, t: &Template, path: &str, token: &str, body: &Value) -> HttpApiResponse {
        self.call(t, HttpApiRequest::new("POST", path).bearer(token).json(body)).await
    }

    /// Every line the function logged is a JSON object (AWS_LAMBDA_LOG_FORMAT=JSON).
    pub(super) fn assert_json_logs(&self) {
        let output = self.sandbox.output();
        let bad: Vec<&str> =
            output.lines().filter(|l| !l.trim().is_empty() && serde_json::from_str::<Value>(l).is_err()).collect();
        assert!(bad.is_empty(), "{}: non-JSON log lines:\n{}", self.name, bad.join("\n"));
        assert!(output.contains("\"level\""), "{}: expected JSON log lines with a level, got:\n{output}", self.name);
    }
}

pub(super) fn expect(r: &HttpApiResponse, status: u16, what: &str) -> Value {
    assert_eq!(r.status, status, "{what}: {} {}", r.status, r.body);
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("application/json")), "{what}: {:?}", r.headers);
    r.json()
}

pub(super) fn expect_error(r: &HttpApiResponse, status: u16, code: &str, what: &str) {
    let body = expect(r, status, what);
    assert_eq!(body["error"]["code"], code, "{what}: {body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_binaries_serve_http_api_events_through_the_runtime_api() {
    if !aws_configured() {
        return;
    }
    let template = Template::load();
    let deployment = Deployment::create("lambda-e2e").await.expect("table and admin key");
    let env = deployment.function_env();
    let admin = deployment.admin_key.as_str();

    // As the template does: only api-connections gets the secrets key.
    let kms_key = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555";
    let mut connections_env = env.clone();
    connections_env.push(("FERRY_SECRETS_KMS_KEY_ID".to_owned(), kms_key.to_owned()));
    let mut platform = Function::start("api-platform", &env).await;
    let mut connections = Function::start("api-connections", &connections_env).await;
    let mut connect = Function::start("connect", &connections_env).await;

    // Platform: health (a GetItem on the table), a tenant, auth failures.
    let health = platform.get(&template, "/healthz", "").await;
    let body = expect(&health, 200, "GET /healthz");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["store"], "dynamodb");
    assert!(health.header("x-request-id").is_some(), "request ids reach the client: {:?}", health.headers);

    let created = platform.post(&template, "/v1/tenants", admin, &json!({"id": "acme", "name": "Acme Corp"})).await;
    let tenant = expect(&created, 201, "POST /v1/tenants");
    assert_eq!(tenant["id"], "acme");

    let got = platform.get(&template, "/v1/tenants/acme", admin).await;
    assert_eq!(expect(&got, 200, "GET /v1/tenants/acme")["name"], "Acme Corp");

    let bad_token = format!("ferry_platform_{}", "0".repeat(64));
    let denied = platform.get(&template, "/v1/tenants/acme", &bad_token).await;
    expect_error(&denied, 401, "unauthorized", "GET /v1/tenants/acme with an unknown key");

    let malformed = HttpApiRequest::new("POST", "/v1/tenants").bearer(admin).raw_body("application/json", "{\"id\": ");
    let malformed = platform.call(&template, malformed).await;
    expect_error(&malformed, 400, "invalid_json", "POST /v1/tenants with malformed JSON");

    let elsewhere = platform.get(&template, "/v1/tenants/acme/connections", admin).await;
    expect_error(&elsewhere, 404, "not_found", "api-platform on a connections route");

    // Connections: credentials go to Secrets Manager and come back masked.
    let secret = "pat-na1-lambda-secret";
    let conn =
        json!({"name": "HubSpot", "connector": "hubspot", "auth_kind": "api_key", "credentials": {"api_key": secret}});
    let created = connections.post(&template, "/v1/tenants/acme/connections", admin, &conn).await;
    let conn = expect(&created, 201, "POST /v1/tenants/acme/connections");
    assert_eq!(conn["credentials"]["api_key"], "********", "{conn}");
    assert!(!created.body.contains(secret), "the secret leaked: {}", created.body);
    let id = conn["id"].as_str().expect("connection id");

    let config = ferry_lambda::hub::load_sdk_config(None).await;
    let sm = ferry_lambda::hub::secretsmanager_client(&config);
    let name = format!("{}/acme/connections/{id}", deployment.secrets_prefix);
    let described = sm.describe_secret().secret_id(&name).send().await.expect("the connection's secret exists");
    assert_eq!(described.kms_key_id(), Some(kms_key), "the secret is encrypted with the deployment's key");
    let tags: Vec<(&str, &str)> = described.tags().iter().filter_map(|t| Some((t.key()?, t.value()?))).collect();
    assert_eq!(tags, vec![("ferry:tenant", "acme")], "the tag the IAM policy requires on create");

    let path = format!("/v1/tenants/acme/connections/{id}");
    let got = connections.get(&template, &path, admin).await;
    let got_body = expect(&got, 200, "GET a connection");
    assert_eq!(got_body["credentials"]["api_key"], "********", "{got_body}");
    assert_eq!(got_body["status"], "connected");
    assert!(!got.body.contains(secret), "the secret leaked: {}", got.body);

    // The connect function serves the connection's magic link as an HTML page.
    let link = got_body["link"].as_str().expect("the API returns the magic link").to_owned();
    let link_path = link.strip_prefix(PUBLIC_URL).expect("the link uses FERRY_PUBLIC_URL").to_owned();
    let page = connect.call(&template, HttpApiRequest::new("GET", &link_path)).await;
    assert_eq!(page.status, 200, "GET the connect page: {}", page.body);
    assert!(page.header("content-type").is_some_and(|c| c.starts_with("text/html")), "{:?}", page.headers);
    assert!(page.body.contains("Connect HubSpot") && page.body.contains("Acme Corp"), "{}", page.body);
    assert!(!page.body.contains(secret), "the page never shows a stored secret");
    let unknown = connect.call(&template, HttpApiRequest::new("GET", "/connect/ml_not-a-real-token")).await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    assert!(unknown.body.contains("This link is not valid"), "{}", unknown.body);

    let path = "/v1/tenants/acme/connections";
    let malformed = HttpApiRequest::new("POST", path).bearer(admin).raw_body("application/json", "{\"name\": \"x\", }");
    let malformed = connections.call(&template, malformed).await;
    expect_error(&malformed, 400, "invalid_json", "POST a connection with malformed JSON");

    let elsewhere = connections.get(&template, "/v1/tenants", admin).await;
    expect_error(&elsewhere, 404, "not_found", "api-connections on a platform route");

    // The common routes are served by every function.
    let health = connections.get(&template, "/healthz", "").await;
    assert_eq!(expect(&health, 200, "GET /healthz on api-connections")["status"], "ok");

    platform.assert_json_logs();
    connections.assert_json_logs();
    platform.sandbox.kill().await;
    connections.sandbox.kill().await;
    connect.assert_json_logs();
    let token = link_path.trim_start_matches("/connect/");
    assert!(!connect.sandbox.output().contains(token), "the magic-link token never reaches the logs");
    connect.sandbox.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_makes_no_aws_call_and_fails_clearly_without_a_table() {
    for name in [
        "api-platform",
        "api-connections",
        "api-integrations",
        "sync",
        "connect",
        "webhooks",
        "notifications",
        "console",
    ] {
        // Nothing listens on the endpoint: init must still reach the Runtime
        // API, because it only wires clients (cold starts stay short).
        let mut unreachable = unreachable_aws();
        unreachable.push(("FERRY_PUBLIC_URL".to_owned(), PUBLIC_URL.to_owned()));
        let f = Function::start(name, &unreachable).await;
        let polled = f.api.first_poll(Duration::from_secs(20)).await;
        assert!(polled.is_ok(), "{name} never asked for an event: {polled:?}\n{}", f.sandbox.output());
        f.sandbox.kill().await;

        let mut f = Function::start(name, &[]).await;
        let status = f.sandbox.wait_exit(Duration::from_secs(20)).await.expect("exits without FERRY_TABLE");
        assert!(!status.success(), "{name} must fail without FERRY_TABLE");
        let output = f.sandbox.output();
        assert!(output.contains("FERRY_TABLE is not set"), "{name}: unclear init failure:\n{output}");
        assert!(f.api.first_poll(Duration::from_millis(10)).await.is_err(), "{name} polled without a hub");
    }
}

/// A table and AWS endpoint nothing answers for: init must not call them.
fn unreachable_aws() -> Vec<(String, String)> {
    vec![
        ("FERRY_TABLE".to_owned(), "ferry-nowhere".to_owned()),
        ("AWS_ENDPOINT_URL".to_owned(), "http://127.0.0.1:9".to_owned()),
        ("AWS_ACCESS_KEY_ID".to_owned(), "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY".to_owned(), "test".to_owned()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_making_links_or_checking_signed_urls_refuse_to_start_without_a_public_url() {
    // The functions that ask for it (FunctionHub::with_public_url); the template test checks which do.
    for name in ["api-connections", "connect", "webhooks", "console"] {
        let mut f = Function::start(name, &unreachable_aws()).await;
        let status = f.sandbox.wait_exit(Duration::from_secs(20)).await.expect("exits without FERRY_PUBLIC_URL");
        assert!(!status.success(), "{name} must fail without FERRY_PUBLIC_URL");
        let output = f.sandbox.output();
        assert!(output.contains("FERRY_PUBLIC_URL is not set"), "{name}: unclear init failure:\n{output}");
        assert!(f.api.first_poll(Duration::from_millis(10)).await.is_err(), "{name} polled without a public URL");
    }
    // A value that is not a URL stops every function, whether it needs one or not.
    for name in ["api-platform", "sync"] {
        let mut env = unreachable_aws();
        env.push(("FERRY_PUBLIC_URL".to_owned(), "connect.example".to_owned()));
        let mut f = Function::start(name, &env).await;
        let status = f.sandbox.wait_exit(Duration::from_secs(20)).await.expect("exits on a bad FERRY_PUBLIC_URL");
        assert!(!status.success(), "{name} must fail on a bad FERRY_PUBLIC_URL");
        let output = f.sandbox.output();
        assert!(output.contains("FERRY_PUBLIC_URL is `connect.example`: expected"), "{name}:\n{output}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_intake_and_the_notifier_answer_their_events_through_the_runtime_api() {
    if !aws_configured() {
        return;
    }
    let template = Template::load();
    let deployment = Deployment::create("lambda-hooks").await.expect("table and admin key");
    let env = deployment.function_env();

    // The intake answers an unknown hook as the provider should see it: 404, nothing stored.
    let mut webhooks = Function::start("webhooks", &env).await;
    let req = HttpApiRequest::new("POST", "/hooks/hk_unknown").raw_body("application/json", "{\"id\": 1}");
    let unknown = webhooks.call(&template, req).await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    webhooks.assert_json_logs();
    webhooks.sandbox.kill().await;

    // The notifier, invoked by its schedule, claims due messages: none yet.
    let mut notifications = Function::start("notifications", &env).await;
    let tick = json!({"version": "0", "id": "e1", "detail-type": "Scheduled Event", "source": "aws.scheduler",
                      "account": "123456789012", "time": "2026-11-23T12:00:00Z", "region": "us-east-1",
                      "resources": [], "detail": {}});
    let outcome = notifications.sandbox.invoke(&notifications.api, &tick, Duration::from_secs(30)).await;
    match outcome.expect("an answer") {
        ferry_e2e::Outcome::Response(body) => {
            let v: Value = serde_json::from_slice(&body).expect("JSON");
            assert_eq!(v["attempted"], 0, "{v}");
        }
        other => panic!("the notifier failed: {other:?}\n{}", notifications.sandbox.output()),
    }
    notifications.sandbox.kill().await;
}
