//! The client-credentials grant end to end against the real OAuth2 server
//! the browser test uses (oauth2-mock-server, started by tests/run): the
//! customer presses "Connect" on the magic link, Ferry gets a token for the
//! tenant's registered client, and a run then calls the provider's API with
//! that token.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use ferry::host::Backend;
use reqwest::Method as M;
use serde_json::{json, Value};

use super::connect::oauth_server;
use super::{call, start};

const CLIENT_SECRET: &str = "cc-s3cret-never-shown-0123";

/// A provider API on loopback that answers one page of contacts and keeps the
/// `Authorization` header of every request.
async fn provider_api() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let app = Router::new()
        .route(
            "/contacts",
            get(|State(seen): State<Arc<Mutex<Vec<String>>>>, headers: HeaderMap| async move {
                let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
                seen.lock().unwrap_or_else(|p| p.into_inner()).push(auth.to_owned());
                Json(json!({"items": [{"id": 1, "email": "a@example.com"}, {"id": 2, "email": "b@example.com"}]}))
            }),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (base, seen)
}

fn manifest(idp: &str) -> String {
    format!(
        r#"
version: 1.0
name: crm-export
connectors:
  crm:
    provider: mock-idp
    auth: oauth2
    oauth: {{grant: client_credentials, token_url: '{idp}/token', scopes: [contacts.read]}}
flows:
  - name: contacts
    source:
      type: http
      connector: crm
      request: {{path: /contacts}}
      records: items
    target: {{type: file, format: jsonl, path: 'exports/contacts.jsonl'}}
"#
    )
}

/// The claims of a JWT (its middle part), without checking the signature:
/// the test asks who issued the token Ferry sent, not whether it is valid.
fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap_or_default();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap_or_default();
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

/// The CSRF cookie (`name=value`) a page set, and the form's token.
fn csrf_of(headers: &reqwest::header::HeaderMap, page: &str) -> (String, String) {
    let cookie = headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("ferry_csrf="))
        .and_then(|c| c.split(';').next())
        .expect("the page sets its CSRF cookie")
        .to_owned();
    let token = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the form carries a CSRF token")
        .to_owned();
    (cookie, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_credentials_connection_gets_its_token_from_the_real_oauth_server_and_runs_use_it() {
    let Some(idp) = oauth_server() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = start(Backend::Embedded { data_dir: dir.path().to_path_buf() }).await;
    let (b, admin) = (hub.base.clone(), hub.key.clone());
    let c = reqwest::Client::new();
    let (api, seen) = provider_api().await;

    let (s, v) =
        call(&c, M::POST, format!("{b}/v1/tenants"), &admin, Some(json!({"id": "acme", "name": "Acme"}))).await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = call(
        &c,
        M::PUT,
        format!("{b}/v1/tenants/acme/oauth-clients/mock-idp"),
        &admin,
        Some(json!({"client_id": "acme-machine", "client_secret": CLIENT_SECRET,
                    "token_url": format!("{idp}/token"), "grant": "client_credentials", "scopes": ["contacts.read"]})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, conn) = call(
        &c,
        M::POST,
        format!("{b}/v1/tenants/acme/connections"),
        &admin,
        Some(json!({"name": "CRM", "connector": "mock-idp", "auth_kind": "oauth2", "settings": {"base_url": api}})),
    )
    .await;
    assert_eq!(s, 201, "{conn}");
    assert_eq!(conn["status"], "disconnected");
    let id = conn["id"].as_str().expect("id").to_owned();
    let link = conn["link"].as_str().expect("magic link").to_owned();

    // The customer's side: the page offers one button; pressing it connects.
    let page = c.get(&link).send().await.expect("page");
    assert_eq!(page.status().as_u16(), 200);
    let headers = page.headers().clone();
    let html = page.text().await.expect("html");
    assert!(html.contains("/client-credentials\""), "the page offers the client-credentials form: {html}");
    let (cookie, token) = csrf_of(&headers, &html);
    let done = c
        .post(format!("{link}/client-credentials"))
        .header("cookie", cookie)
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .expect("connect");
    let status = done.status().as_u16();
    let html = done.text().await.expect("html");
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Connected"), "{html}");
    assert!(!html.contains(CLIENT_SECRET));

    let (s, after) = call(&c, M::GET, format!("{b}/v1/tenants/acme/connections/{id}"), &admin, None).await;
    assert_eq!(s, 200);
    assert_eq!(after["status"], "connected", "{after}");
    assert_eq!(after["credentials"]["access_token"], "********", "{after}");
    assert!(!after.to_string().contains(CLIENT_SECRET));

    // A run calls the provider with the token the OAuth server issued.
    let (s, v) = call(
        &c,
        M::POST,
        format!("{b}/v1/integrations/crm-export/releases"),
        &admin,
        Some(json!({"manifest": manifest(&idp)})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (s, job) = call(
        &c,
        M::POST,
        format!("{b}/v1/tenants/acme/jobs"),
        &admin,
        Some(json!({"name": "export", "integration": "crm-export", "connections": {"crm": id}})),
    )
    .await;
    assert_eq!(s, 201, "{job}");
    let runs = format!("{b}/v1/tenants/acme/jobs/{}/runs", job["id"].as_str().expect("job id"));
    let (s, started) = call(&c, M::POST, runs.clone(), &admin, Some(json!({}))).await;
    assert_eq!(s, 202, "{started}");
    let run = format!("{runs}/{}", started["run"]["id"].as_str().expect("run id"));
    let mut finished = Value::Null;
    for _ in 0..200 {
        let (_, v) = call(&c, M::GET, run.clone(), &admin, None).await;
        if !matches!(v["status"].as_str(), Some("queued" | "running")) {
            finished = v;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(finished["status"], "succeeded", "{finished}");
    assert_eq!(finished["counters"]["contacts"]["read"], 2, "{finished}");

    let sent = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let bearer = sent.first().and_then(|a| a.strip_prefix("Bearer ")).expect("the API got a bearer token");
    let claims = claims(bearer);
    let discovery: Value = c
        .get(format!("{idp}/.well-known/openid-configuration"))
        .send()
        .await
        .expect("discovery")
        .json()
        .await
        .expect("discovery JSON");
    assert_eq!(claims["iss"], discovery["issuer"], "a token the OAuth server issued: {claims}");
    assert_eq!(claims["scope"], "contacts.read", "the registered scopes were asked for: {claims}");

    hub.shutdown().await;
}
