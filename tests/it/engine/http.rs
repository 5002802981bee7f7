//! The engine's HTTP client against a local server that misbehaves on purpose.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;
use ferry_engine::http::{HttpClient, HttpError, HttpPolicy, Outbound, Rate};
use ferry_engine::throttle::Throttle;
use ferry_net::NetPolicy;

/// The fakes listen on loopback over http.
const LOOPBACK: NetPolicy = NetPolicy { allow_private_network: true };

fn fast_policy() -> HttpPolicy {
    HttpPolicy {
        timeout: Duration::from_millis(500),
        max_retries: 3,
        base_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        max_retry_after: Duration::from_secs(5),
        ..HttpPolicy::default()
    }
}

/// Serves `router` on a free loopback port.
async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}")
}

fn get_req(url: String) -> Outbound {
    Outbound::new(reqwest::Method::GET, url)
}

/// Fails `failures` times with `status` (and headers), then answers 200.
async fn flaky(
    status: StatusCode,
    failures: u32,
    headers: Vec<(&'static str, &'static str)>,
) -> (String, Arc<AtomicU32>) {
    let hits = Arc::new(AtomicU32::new(0));
    let h = hits.clone();
    let router = Router::new().route(
        "/x",
        get(move || {
            let h = h.clone();
            let headers = headers.clone();
            async move {
                let n = h.fetch_add(1, Ordering::SeqCst);
                let mut map = HeaderMap::new();
                if n < failures {
                    for (k, v) in headers {
                        if let Ok(v) = v.parse() {
                            map.insert(k, v);
                        }
                    }
                    (status, map, "nope".to_owned())
                } else {
                    (StatusCode::OK, map, "{\"ok\":true}".to_owned())
                }
            }
        }),
    );
    (serve(router).await, hits)
}

#[tokio::test]
async fn server_errors_are_retried_until_success() {
    let (base, hits) = flaky(StatusCode::SERVICE_UNAVAILABLE, 2, vec![]).await;
    let client = HttpClient::new(fast_policy(), LOOPBACK).expect("client");
    let res = client.send(&get_req(format!("{base}/x")), None).await.expect("succeeds on the third try");
    assert_eq!(res.status, 200);
    assert_eq!(hits.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn server_errors_give_up_after_the_retry_budget() {
    let (base, hits) = flaky(StatusCode::BAD_GATEWAY, 100, vec![]).await;
    let client = HttpClient::new(fast_policy(), LOOPBACK).expect("client");
    let err = client.send(&get_req(format!("{base}/x")), None).await.expect_err("gives up");
    assert!(matches!(err, HttpError::Server { status: 502, attempts: 4, .. }), "{err:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn too_many_requests_waits_for_retry_after() {
    let (base, hits) = flaky(StatusCode::TOO_MANY_REQUESTS, 1, vec![("retry-after", "1")]).await;
    let client = HttpClient::new(fast_policy(), LOOPBACK).expect("client");
    let started = Instant::now();
    client.send(&get_req(format!("{base}/x")), None).await.expect("succeeds after waiting");
    assert!(started.elapsed() >= Duration::from_millis(950), "Retry-After: 1 must be honoured");
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn retry_after_beyond_the_limit_fails_as_rate_limited() {
    let (base, hits) = flaky(StatusCode::TOO_MANY_REQUESTS, 1, vec![("retry-after", "3600")]).await;
    let client = HttpClient::new(fast_policy(), LOOPBACK).expect("client");
    let err = client.send(&get_req(format!("{base}/x")), None).await.expect_err("too long to wait");
    assert!(matches!(err, HttpError::RateLimited { .. }), "{err:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn client_errors_are_integration_errors_and_not_retried() {
    let (base, hits) = flaky(StatusCode::BAD_REQUEST, 100, vec![]).await;
    let client = HttpClient::new(fast_policy(), LOOPBACK).expect("client");
    let err = client.send(&get_req(format!("{base}/x?api_key=s3cret")), None).await.expect_err("400");
    match &err {
        HttpError::Integration { status: 400, url, snippet } => {
            assert!(!url.contains("s3cret"), "query strings are redacted: {url}");
            assert_eq!(snippet, "nope");
        }
        other => panic!("expected an integration error, got {other:?}"),
    }
    assert!(!err.to_string().contains("s3cret"));
    assert!(!err.to_string().contains("nope"), "the answer's body is not in the message: {err}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn unauthorized_is_reported_as_such() {
    let (base, _) = flaky(StatusCode::UNAUTHORIZED, 100, vec![]).await;
    let client = HttpClient::new(fast_policy(), LOOPBACK).expect("client");
    let err = client.send(&get_req(format!("{base}/x")), None).await.expect_err("401");
    assert!(matches!(err, HttpError::Unauthorized { .. }), "{err:?}");
}

#[tokio::test]
async fn slow_responses_time_out_and_are_retried() {
    let hits = Arc::new(AtomicU32::new(0));
    let h = hits.clone();
    let router = Router::new().route(
        "/x",
        get(move || {
            let h = h.clone();
            async move {
                if h.fetch_add(1, Ordering::SeqCst) == 0 {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                }
                "ok"
            }
        }),
    );
    let base = serve(router).await;
    let client = HttpClient::new(fast_policy(), LOOPBACK).expect("client");
    let res = client.send(&get_req(format!("{base}/x")), None).await.expect("second attempt is fast");
    assert_eq!(res.body, b"ok");
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn unreachable_hosts_fail_as_network_errors() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("port");
    let client = HttpClient::new(fast_policy(), LOOPBACK).expect("client");
    let err = client.send(&get_req(format!("http://127.0.0.1:{port}/x")), None).await.expect_err("nothing listens");
    assert!(matches!(err, HttpError::Network { attempts: 4, .. }), "{err:?}");
}

#[tokio::test]
async fn the_request_budget_spaces_requests_out() {
    let (base, hits) = flaky(StatusCode::OK, 0, vec![]).await;
    let client = HttpClient::new(fast_policy(), LOOPBACK).expect("client");
    let started = Instant::now();
    for _ in 0..5 {
        client
            .send(
                &get_req(format!("{base}/x")),
                Some(&Throttle::budget("tenant-a/crm", Rate { per_second: 10.0, burst: 1.0 })),
            )
            .await
            .expect("ok");
    }
    // One token up front, then one per 100 ms: four waits.
    assert!(started.elapsed() >= Duration::from_millis(380), "budget not applied: {:?}", started.elapsed());
    assert_eq!(hits.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn without_the_private_network_flag_loopback_is_refused_at_once_and_never_contacted() {
    let (base, hits) = flaky(StatusCode::OK, 0, vec![]).await;
    let client = HttpClient::new(fast_policy(), NetPolicy::default()).expect("client");
    let err = client.send(&get_req(format!("{base}/x")), None).await.expect_err("plain http to loopback");
    assert!(matches!(err, HttpError::Refused { code: "insecure_url", .. }), "{err:?}");
    let https = base.replace("http://127.0.0.1", "https://localhost");
    let err = client.send(&get_req(format!("{https}/x")), None).await.expect_err("loopback");
    assert!(matches!(err, HttpError::Refused { code: "blocked_address", .. }), "{err:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "not retried, never sent");
}

#[tokio::test]
async fn a_request_with_credentials_follows_no_redirect_even_on_its_origin() {
    let hits = Arc::new(AtomicU32::new(0));
    let h = hits.clone();
    let router = Router::new().route("/x", get(|| async { (StatusCode::FOUND, [("location", "/y")]) })).route(
        "/y",
        get(move || {
            h.fetch_add(1, Ordering::SeqCst);
            async { "ok" }
        }),
    );
    let base = serve(router).await;
    let client = HttpClient::new(fast_policy(), LOOPBACK).expect("client");
    let mut req = get_req(format!("{base}/x"));
    req.credentialed = true;
    let err = client.send(&req, None).await.expect_err("not followed");
    assert!(matches!(err, HttpError::Redirect { status: 302, .. }), "{err:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 0);

    req.credentialed = false;
    let res = client.send(&req, None).await.expect("followed without credentials");
    assert_eq!((res.status, res.body.as_slice()), (200, b"ok".as_slice()));
}

#[tokio::test]
async fn a_body_over_the_cap_fails_without_retrying() {
    let hits = Arc::new(AtomicU32::new(0));
    let h = hits.clone();
    let router = Router::new().route(
        "/x",
        get(move || {
            h.fetch_add(1, Ordering::SeqCst);
            async { "x".repeat(2 * 1024 * 1024) }
        }),
    );
    let base = serve(router).await;
    let client = HttpClient::new(fast_policy(), LOOPBACK).expect("client");
    let mut req = get_req(format!("{base}/x"));
    req.max_response_bytes = Some(1024);
    req.label = Some(format!("{base}/{{{{ record.id }}}}"));
    let err = client.send(&req, None).await.expect_err("too large");
    assert!(matches!(err, HttpError::TooLarge { limit: 1024, .. }), "{err:?}");
    assert!(err.to_string().contains("{{ record.id }}"), "messages name the template: {err}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}
