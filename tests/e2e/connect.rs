//! The connect page end to end in a real browser: headless Chromium (driven by
//! playwright-core from tests/browser) opens a connection's magic link, clicks
//! "Connect with ...", is authorised by a real OAuth2 server on loopback
//! (oauth2-mock-server, started by tests/run, which exports its URL as
//! FERRY_OAUTH_SERVER_URL), lands on the confirmation page, and the API then
//! shows the connection `connected`. A screenshot is kept under
//! target/browser-artifacts/ (outside git).

use std::time::Duration;

use ferry::host::{self, Backend};
use ferry_e2e::{target_dir, workspace_root};
use ferry_service::bootstrap::Bootstrap;
use ferry_service::config::{Config, PublicUrl};
use serde_json::{json, Value};

/// The OAuth2 server's URL, or None (skipping) outside tests/run; tests/run
/// sets FERRY_REQUIRE_BROWSER=1 so a missing server fails there.
pub(crate) fn oauth_server() -> Option<String> {
    match std::env::var("FERRY_OAUTH_SERVER_URL") {
        Ok(url) if !url.is_empty() => Some(url.trim_end_matches('/').to_owned()),
        _ => {
            assert!(
                std::env::var("FERRY_REQUIRE_BROWSER").as_deref() != Ok("1"),
                "FERRY_REQUIRE_BROWSER=1 but FERRY_OAUTH_SERVER_URL is not set: run ./tests/run"
            );
            eprintln!("skipping: no OAuth2 server (run ./tests/run)");
            None
        }
    }
}

async fn api(
    c: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    key: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = c.request(method, url).bearer_auth(key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_connects_through_the_magic_link_in_a_real_browser_against_a_real_oauth_server() {
    let Some(idp) = oauth_server() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let public_url = Some(PublicUrl::parse(&base).expect("a public URL"));
    let backend = Backend::Embedded { data_dir: dir.path().to_path_buf() };
    let mut hub = host::build_hub(&backend, Config { public_url, ..Config::default() }).await.expect("hub");
    // The OAuth2 server listens on loopback over plain http.
    hub.settings.allow_private_network = true;
    let Bootstrap::Generated(admin) = hub.users().bootstrap(None).await.expect("bootstrap") else {
        panic!("fresh store")
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(host::serve(listener, hub, async move {
        let _ = stopped.await;
    }));

    let c = reqwest::Client::new();
    use reqwest::Method as M;
    let (s, t) =
        api(&c, M::POST, format!("{base}/v1/tenants"), &admin, Some(json!({"id": "acme", "name": "Acme Corp"}))).await;
    assert_eq!(s, 201, "{t}");
    let (s, client) = api(
        &c,
        M::PUT,
        format!("{base}/v1/oauth-clients/mock-idp"),
        &admin,
        Some(json!({"client_id": "ferry-test", "client_secret": "client-s3cret-0123456789",
                    "authorize_url": format!("{idp}/authorize"), "token_url": format!("{idp}/token"),
                    "scopes": ["read", "write"]})),
    )
    .await;
    assert_eq!(s, 200, "{client}");
    assert!(!client.to_string().contains("client-s3cret-0123456789"), "the client secret is write-only: {client}");
    let (s, conn) = api(
        &c,
        M::POST,
        format!("{base}/v1/tenants/acme/connections"),
        &admin,
        Some(json!({"name": "Mock CRM", "connector": "mock-idp", "auth_kind": "oauth2"})),
    )
    .await;
    assert_eq!(s, 201, "{conn}");
    assert_eq!(conn["status"], "disconnected");
    let id = conn["id"].as_str().expect("id").to_owned();
    let link = conn["link"].as_str().expect("the API returns the magic link").to_owned();
    assert!(link.starts_with(&format!("{base}/connect/ml_")), "{link}");

    let artifacts = target_dir().join("browser-artifacts");
    std::fs::create_dir_all(&artifacts).expect("artifact dir");
    let screenshot = artifacts.join("connect-confirmation.png");
    let _ = std::fs::remove_file(&screenshot);
    let profile = tempfile::tempdir().expect("browser profile");
    let browser_dir = workspace_root().join("tests/browser");
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new("node")
            .arg(browser_dir.join("connect-flow.mjs"))
            .arg(&link)
            .arg(&screenshot)
            .arg(profile.path())
            .current_dir(&browser_dir)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser finished within two minutes")
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let seen: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no result from the browser script\nstdout: {stdout}\nstderr: {stderr}"));
    assert!(seen["error"].is_null(), "browser: {seen}\nstderr: {stderr}");
    assert_eq!(seen["steps"][0]["status"], 200, "{seen}");
    assert_eq!(seen["status_before"], "Not connected", "{seen}");
    assert_eq!(seen["button"], "Connect with mock-idp", "{seen}");
    assert_eq!(seen["steps"][1]["url_path"], "/oauth/callback", "{seen}");
    assert_eq!(seen["heading"], "Connected", "{seen}");
    assert!(screenshot.metadata().map(|m| m.len() > 1000).unwrap_or(false), "screenshot written");

    let (s, after) = api(&c, M::GET, format!("{base}/v1/tenants/acme/connections/{id}"), &admin, None).await;
    assert_eq!(s, 200);
    assert_eq!(after["status"], "connected", "{after}");
    assert_eq!(after["credentials"]["access_token"], "********");
    assert_eq!(after["credentials"]["refresh_token"], "********");
    assert_eq!(after["link"].as_str(), Some(link.as_str()), "the link stays the same after connecting");

    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
}
