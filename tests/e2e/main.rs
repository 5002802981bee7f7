//! End-to-end: the README walkthrough over real HTTP against the local host,
//! on the embedded backend and on the AWS backend (moto's server).

mod client_credentials;
mod connect;
mod console;
mod host_process;
mod lambda;
mod samples;
mod shared_budget;

use std::time::Duration;

use ferry::host::{self, Backend};
use ferry_service::bootstrap::Bootstrap;
use ferry_service::config::{Config, PublicUrl};
use serde_json::{json, Value};

struct Running {
    base: String,
    key: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), String>>,
}

async fn start(backend: Backend) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let public_url = Some(PublicUrl::parse(&base).expect("a public URL"));
    let mut hub = host::build_hub(&backend, Config { public_url, ..Config::default() }).await.expect("hub");
    // As `ferry up --allow-private-network`: the fake services listen on loopback over http.
    hub.settings.allow_private_network = true;
    let key = match hub.users().bootstrap(None).await.expect("bootstrap") {
        Bootstrap::Generated(k) => k,
        other => panic!("expected a generated key, got {other:?}"),
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        host::serve(listener, hub, async move {
            let _ = rx.await;
        })
        .await
        .map_err(|e| e.to_string())
    });
    Running { base, key, stop: Some(tx), task }
}

impl Running {
    async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let joined = tokio::time::timeout(Duration::from_secs(10), &mut self.task).await;
        assert!(matches!(joined, Ok(Ok(Ok(())))), "host did not stop cleanly: {joined:?}");
    }
}

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = client.request(method, url);
    if !token.is_empty() {
        req = req.bearer_auth(token);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let body = res.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

async fn walkthrough(backend: Backend) {
    use reqwest::Method as M;
    let hub = start(backend).await;
    let c = reqwest::Client::new();
    let b = &hub.base;
    let admin = hub.key.clone();

    let (s, health) = call(&c, M::GET, format!("{b}/healthz"), "", None).await;
    assert_eq!(s, 200, "{health}");

    let (s, t) =
        call(&c, M::POST, format!("{b}/v1/tenants"), &admin, Some(json!({"id": "acme", "name": "Acme Corp"}))).await;
    assert_eq!(s, 201, "{t}");

    let (s, u) = call(
        &c,
        M::POST,
        format!("{b}/v1/users"),
        &admin,
        Some(json!({"email": "ops@acme.example", "full_name": "Olga Ops", "password": "a long passphrase", "role": "user", "memberships": ["acme"]})),
    )
    .await;
    assert_eq!(s, 201, "{u}");

    let (s, session) = call(
        &c,
        M::POST,
        format!("{b}/v1/sessions"),
        "",
        Some(json!({"email": "ops@acme.example", "password": "a long passphrase"})),
    )
    .await;
    assert_eq!(s, 201, "{session}");
    let user_token = session["token"].as_str().expect("token").to_owned();

    let (s, created) =
        call(&c, M::POST, format!("{b}/v1/tenants/acme/api-keys"), &user_token, Some(json!({"name": "crm sync"})))
            .await;
    assert_eq!(s, 201, "{created}");
    let tenant_key = created["key"].as_str().expect("key").to_owned();
    assert!(tenant_key.starts_with("ferry_acme_"));

    let (s, conn) = call(
        &c,
        M::POST,
        format!("{b}/v1/tenants/acme/connections"),
        &tenant_key,
        Some(json!({"name": "HubSpot", "connector": "hubspot", "auth_kind": "api_key", "credentials": {"api_key": "pat-na1-secret"}})),
    )
    .await;
    assert_eq!(s, 201, "{conn}");
    assert_eq!(conn["credentials"]["api_key"], "********");
    assert_eq!(conn["status"], "connected");
    let conn_id = conn["id"].as_str().expect("id").to_owned();

    let (s, listed) = call(&c, M::GET, format!("{b}/v1/tenants/acme/connections"), &tenant_key, None).await;
    assert_eq!(s, 200);
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));
    assert!(!listed.to_string().contains("pat-na1-secret"));

    let (s, disc) =
        call(&c, M::POST, format!("{b}/v1/tenants/acme/connections/{conn_id}/disconnect"), &user_token, None).await;
    assert_eq!(s, 200);
    assert_eq!(disc["status"], "disconnected");
    assert_eq!(disc["credentials"], json!({}));

    let key_id = created["api_key"]["id"].as_str().expect("key id");
    let (s, _) = call(&c, M::DELETE, format!("{b}/v1/tenants/acme/api-keys/{key_id}"), &user_token, None).await;
    assert_eq!(s, 200);
    let (s, err) = call(&c, M::GET, format!("{b}/v1/tenants/acme/connections"), &tenant_key, None).await;
    assert_eq!(s, 401, "a revoked key stops working at once");
    assert_eq!(err["error"]["code"], "unauthorized");

    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_walkthrough_on_the_embedded_backend() {
    let dir = tempfile::tempdir().expect("tempdir");
    walkthrough(Backend::Embedded { data_dir: dir.path().to_path_buf() }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_walkthrough_on_the_aws_backend() {
    if std::env::var("AWS_ENDPOINT_URL").is_err() {
        assert!(
            std::env::var("FERRY_REQUIRE_AWS").as_deref() != Ok("1"),
            "FERRY_REQUIRE_AWS=1 but AWS_ENDPOINT_URL is not set: run ./tests/run"
        );
        eprintln!("skipping: AWS emulator not configured (run ./tests/run)");
        return;
    }
    let suffix = format!(
        "{:x}",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
    );
    walkthrough(Backend::Aws {
        table: format!("ferry-e2e-{suffix}"),
        secrets_prefix: format!("ferry-e2e-{suffix}"),
        region: None,
        create_table: true,
    })
    .await;
}
