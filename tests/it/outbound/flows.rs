//! Flows keep their requests, and so the connection's credentials, on the
//! base URL's origin; they cap what they read and say nothing secret.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::response::Response;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{app_with_events, drain, fake, job, json, redirect, KEY};
use crate::support::app::TestApp;
use crate::support::jobs::{Conn, JobUnderTest};

fn manifest(src: &str, request: &str, pagination: &str) -> String {
    format!(
        r#"
version: 1.0
name: outbound
connectors:
  src: {{provider: itemsource, {src}}}
  dst: {{provider: sink, auth: none}}
flows:
  - name: items
    source: {{type: http, connector: src, request: {request}, records: items{pagination}}}
    target: {{type: http, connector: dst, path: /in}}
"#
    )
}

fn api_key_manifest(pagination: &str) -> String {
    manifest("auth: api_key, api_key: {header: X-API-Key}", "{path: /items}", pagination)
}

fn page(next: Option<&str>) -> Response {
    json(200, json!({"items": [{"id": 1}], "next": next}))
}

/// A sink that accepts everything.
async fn sink() -> (String, super::Seen) {
    fake(|_| json(201, json!({}))).await
}

async fn failed_run(job: &JobUnderTest) -> Value {
    let run = job.run(json!({})).await;
    assert!(run["status"].as_str().is_some_and(|s| s.starts_with("failed")), "{run}");
    run
}

#[tokio::test]
async fn a_next_url_on_another_origin_fails_the_flow_and_that_host_gets_no_request() {
    let (other, other_seen) = fake(|_| page(None)).await;
    let next = format!("{other}/items?page=2");
    let (src, _) = fake(move |_| page(Some(&next))).await;
    let (dst, _) = sink().await;
    let job =
        job(TestApp::embedded().await, &api_key_manifest(", pagination: {type: next_url, path: next}"), &src, &dst)
            .await;

    let run = failed_run(&job).await;
    let error = run["error"].as_str().unwrap_or_default();
    assert!(error.contains("leave the connector's origin") && error.contains(&other), "{run}");
    assert!(other_seen.hits().is_empty(), "the other origin got {:?}", other_seen.hits());
}

#[tokio::test]
async fn a_link_header_to_another_host_name_fails_the_flow_and_that_host_gets_no_request() {
    let (other, other_seen) = fake(|_| page(None)).await;
    // Same address, another host name: another origin all the same.
    let link = format!("<{}/items?page=2>; rel=\"next\"", other.replace("127.0.0.1", "localhost"));
    let (src, _) = fake(move |_| {
        let mut r = page(None);
        r.headers_mut().insert("link", link.parse().expect("header"));
        r
    })
    .await;
    let (dst, _) = sink().await;
    let job = job(TestApp::embedded().await, &api_key_manifest(", pagination: {type: link_header}"), &src, &dst).await;

    let run = failed_run(&job).await;
    assert!(run["error"].as_str().unwrap_or_default().contains("leave the connector's origin"), "{run}");
    assert!(other_seen.hits().is_empty(), "the other origin got {:?}", other_seen.hits());
}

#[tokio::test]
async fn a_redirect_is_not_followed_with_a_custom_credential_header() {
    let (other, other_seen) = fake(|_| page(None)).await;
    let to = format!("{other}/items");
    let (src, src_seen) = fake(move |_| redirect(302, &to)).await;
    let (dst, _) = sink().await;
    let job = job(TestApp::embedded().await, &api_key_manifest(""), &src, &dst).await;

    let run = failed_run(&job).await;
    assert!(run["error"].as_str().unwrap_or_default().contains("redirects are not followed"), "{run}");
    assert_eq!(src_seen.hits().len(), 1, "not retried: {:?}", src_seen.hits());
    assert!(other_seen.hits().is_empty(), "X-API-Key followed the redirect: {:?}", other_seen.hits());
}

#[tokio::test]
async fn over_two_redirects_a_to_b_to_b_basic_auth_never_reaches_b() {
    let b_final = std::sync::Arc::new(std::sync::OnceLock::<String>::new());
    let f = b_final.clone();
    let (b, b_seen) = fake(move |path| match path {
        "/hop" => redirect(307, f.get().map(String::as_str).unwrap_or("/")),
        _ => page(None),
    })
    .await;
    b_final.set(format!("{b}/final")).expect("once");
    let to = format!("{b}/hop");
    let (a, _) = fake(move |_| redirect(302, &to)).await;
    let (dst, _) = sink().await;
    let app = TestApp::embedded().await;
    let conns = [
        Conn {
            name: "src",
            provider: "itemsource",
            auth: "basic",
            base_url: &a,
            credentials: Some(json!({"username": "ops", "password": KEY})),
        },
        Conn { name: "dst", provider: "sink", auth: "none", base_url: &dst, credentials: None },
    ];
    let job =
        JobUnderTest::new(app, "outbound", &manifest("auth: basic", "{path: /items}", ""), &conns, json!({})).await;

    failed_run(&job).await;
    for hit in b_seen.hits() {
        assert!(hit.headers.get("authorization").is_none(), "B got Authorization at {}", hit.uri);
    }
    assert!(b_seen.hits().is_empty(), "B was reached: {:?}", b_seen.hits());
}

#[tokio::test]
async fn a_same_origin_redirect_without_credentials_is_followed() {
    let (src, src_seen) = fake(|path| match path {
        "/items" => redirect(301, "/v2/items"),
        _ => page(None),
    })
    .await;
    let (dst, dst_seen) = sink().await;
    let conns = [
        Conn { name: "src", provider: "itemsource", auth: "none", base_url: &src, credentials: None },
        Conn { name: "dst", provider: "sink", auth: "none", base_url: &dst, credentials: None },
    ];
    let job = JobUnderTest::new(
        TestApp::embedded().await,
        "outbound",
        &manifest("auth: none", "{path: /items}", ""),
        &conns,
        json!({}),
    )
    .await;

    let run = job.run(json!({})).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(src_seen.hits().iter().map(|h| h.uri.as_str()).collect::<Vec<_>>(), ["/items", "/v2/items"]);
    assert_eq!(dst_seen.hits().len(), 1);
}

#[tokio::test]
async fn a_page_over_the_connectors_cap_fails_the_flow_without_being_read_whole() {
    let (src, produced) = endless_chunks().await;
    let (dst, dst_seen) = sink().await;
    let m = manifest("auth: api_key, api_key: {header: X-API-Key}, max_response_bytes: 100000", "{path: /items}", "");
    let job = job(TestApp::embedded().await, &m, &src, &dst).await;

    let run = failed_run(&job).await;
    assert!(run["error"].as_str().unwrap_or_default().contains("larger than 100000 bytes"), "{run}");
    assert!(dst_seen.hits().is_empty());
    let produced = produced.load(Ordering::SeqCst);
    assert!(produced < LIMITLESS, "the whole body was pulled: {produced} bytes");
}

const LIMITLESS: usize = 256 * 1024 * 1024;

/// A server whose every answer is a chunked body of up to 256 MiB, with no
/// Content-Length (only reading tells the size); counts the bytes it got out.
async fn endless_chunks() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let produced = Arc::new(AtomicUsize::new(0));
    let p = produced.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let p = p.clone();
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b' '; 64 * 1024];
                let frame = [format!("{:x}\r\n", chunk.len()).into_bytes(), chunk, b"\r\n".to_vec()].concat();
                while p.load(Ordering::SeqCst) < LIMITLESS {
                    if socket.write_all(&frame).await.is_err() {
                        return;
                    }
                    p.fetch_add(64 * 1024, Ordering::SeqCst);
                }
            });
        }
    });
    (format!("http://{addr}"), produced)
}

#[tokio::test]
async fn a_redirected_write_fails_its_batch_and_is_not_counted_written() {
    let (src, _) = fake(|_| page(None)).await;
    let (dst, dst_seen) = fake(|path| match path {
        "/in" => redirect(302, "/elsewhere"),
        _ => json(200, json!({})),
    })
    .await;
    let job = job(TestApp::embedded().await, &api_key_manifest(""), &src, &dst).await;

    let run = job.run(json!({})).await;
    assert_eq!(run["counters"]["items"]["written"], 0, "{run}");
    assert_eq!(
        run["counters"]["items"]["dead_lettered"], 1,
        "the refused record is kept (on_record_error's default): {run}"
    );
    assert_ne!(run["status"], "succeeded", "{run}");
    let hits: Vec<(String, String)> = dst_seen.hits().into_iter().map(|h| (h.method.to_string(), h.uri)).collect();
    assert_eq!(hits, [("POST".to_owned(), "/in".to_owned())], "the redirect was followed");
}

#[tokio::test]
async fn a_secret_rendered_into_the_path_and_echoed_by_a_4xx_never_reaches_the_run_its_logs_or_events() {
    let (src, _) = fake(|path| json(404, json!({"error": format!("no such item: {path}")}))).await;
    let (dst, _) = sink().await;
    let (app, bus) = app_with_events().await;
    let mut events = bus.subscribe();
    let m = manifest("auth: api_key, api_key: {header: X-API-Key}", "{path: '/items/{{ secrets.api_key }}'}", "");
    let job = job(app, &m, &src, &dst).await;

    let run = failed_run(&job).await;
    let error = run["error"].as_str().unwrap_or_default();
    assert!(error.contains("/items/{{ secrets.api_key }}"), "the message names the path template: {run}");
    assert!(!run.to_string().contains(KEY), "{run}");
    let logs = job.logs(run["id"].as_str().expect("id")).await;
    assert!(!logs.is_empty() && !logs.concat().contains(KEY), "{logs:?}");
    let events = drain(&mut events);
    let failed: Vec<_> = events.iter().filter(|e| e.kind.as_str() == "run_failed").collect();
    assert_eq!(failed.len(), 1, "{events:?}");
    assert!(!serde_json::to_string(&failed[0]).expect("json").contains(KEY), "{:?}", failed[0]);
}

#[tokio::test]
async fn an_upstream_400_echoing_the_key_stays_out_of_the_run_failed_event() {
    let (src, _) = fake(|_| json(400, json!({"error": format!("bad request; you sent X-API-Key: {KEY}")}))).await;
    let (dst, _) = sink().await;
    let (app, bus) = app_with_events().await;
    let mut events = bus.subscribe();
    let job = job(app, &api_key_manifest(""), &src, &dst).await;

    let run = failed_run(&job).await;
    assert!(run["error"].as_str().unwrap_or_default().contains("HTTP 400"), "{run}");
    let events = drain(&mut events);
    let failed = events.iter().find(|e| e.kind.as_str() == "run_failed").expect("run_failed");
    let text = serde_json::to_string(failed).expect("json");
    assert!(text.contains("HTTP 400") && !text.contains(KEY), "{text}");
}

#[tokio::test]
async fn without_the_private_network_flag_a_flow_to_loopback_sends_nothing() {
    let (src, src_seen) = fake(|_| page(None)).await;
    let m = format!(
        "version: 1.0\nname: outbound\nconnectors:\n  src: {{provider: itemsource, auth: none, base_url: '{src}', required: false}}\n\
         flows:\n  - name: items\n    source: {{type: http, connector: src, request: {{path: /items}}, records: items}}\n\
         \x20   target: {{type: http, connector: src, path: /in}}\n"
    );
    let job = JobUnderTest::new(TestApp::strict().await, "outbound", &m, &[], json!({})).await;

    let run = failed_run(&job).await;
    assert!(run["error"].as_str().unwrap_or_default().contains("refused"), "{run}");
    assert!(src_seen.hits().is_empty(), "{:?}", src_seen.hits());
}
