//! The sandbox's egress proxy on its own, served on a loopback listener of
//! the test: it tunnels only CONNECT, only to what the policy allows, and
//! connects nowhere when it refuses. Every server here is on loopback; the
//! refused targets fail before any connection.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_net::egress::{EgressLimits, EgressProxy, Notes};
use ferry_net::NetPolicy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The echo server speaks no TLS.
const ANY_PROTOCOL: EgressLimits = EgressLimits { max_tunnels: 32, idle: Duration::from_secs(300), tls_only: false };

/// A TCP echo server on loopback that counts the connections it accepted.
async fn echo() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    (port, accepted)
}

struct Proxy {
    port: u16,
    notes: Arc<Mutex<Vec<String>>>,
    _proxy: EgressProxy,
}

impl Proxy {
    fn notes(&self) -> Vec<String> {
        self.notes.lock().expect("lock").clone()
    }
}

async fn proxy(allow_private_network: bool, limits: EgressLimits) -> Proxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let notes = Arc::new(Mutex::new(Vec::new()));
    let sink = notes.clone();
    let sink: Notes = Arc::new(move |n: String| sink.lock().expect("lock").push(n));
    let proxy = EgressProxy::start(listener, NetPolicy::new(allow_private_network), limits, sink);
    Proxy { port, notes, _proxy: proxy }
}

/// Sends `request` and reads the proxy's answer head (up to its blank line).
async fn ask(port: u16, request: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.expect("connect to the proxy");
    s.write_all(request.as_bytes()).await.expect("send");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n =
            tokio::time::timeout(Duration::from_secs(10), s.read(&mut byte)).await.expect("an answer").expect("read");
        if n == 0 {
            break;
        }
        head.push(byte[0]);
    }
    (s, String::from_utf8_lossy(&head).into_owned())
}

async fn rest(s: &mut TcpStream) -> String {
    let mut body = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut body)).await;
    body
}

#[tokio::test]
async fn a_connect_to_an_allowed_address_tunnels_bytes_both_ways() {
    let (echo_port, accepted) = echo().await;
    let p = proxy(true, ANY_PROTOCOL).await;
    let target = format!("127.0.0.1:{echo_port}");
    // Bytes sent right behind the request head are tunnelled too.
    let (mut s, head) = ask(p.port, &format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n")).await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    s.write_all(b"hello through the tunnel").await.expect("send");
    let mut back = [0u8; 24];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut back)).await.expect("echo").expect("read");
    assert_eq!(&back, b"hello through the tunnel");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    assert!(p.notes().is_empty(), "{:?}", p.notes());
}

#[tokio::test]
async fn anything_but_connect_is_refused_without_its_path() {
    let (echo_port, accepted) = echo().await;
    let p = proxy(true, ANY_PROTOCOL).await;
    let (mut s, head) = ask(
        p.port,
        &format!("GET http://127.0.0.1:{echo_port}/items?api_key=sk-secret HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 405 "), "{head}");
    assert!(rest(&mut s).await.contains("CONNECT"));
    assert_eq!(accepted.load(Ordering::SeqCst), 0, "a refused request reached the server");
    let notes = p.notes().join("\n");
    assert!(notes.contains(&format!("refused GET http://127.0.0.1:{echo_port}")), "{notes}");
    assert!(!notes.contains("sk-secret") && !notes.contains("/items"), "the path reached the log: {notes}");
}

#[tokio::test]
async fn a_connect_to_a_refused_address_is_answered_403_and_connects_nowhere() {
    let (echo_port, accepted) = echo().await;
    // The production policy: loopback is refused.
    let strict = proxy(false, ANY_PROTOCOL).await;
    for target in [format!("127.0.0.1:{echo_port}"), format!("localhost:{echo_port}"), "[::1]:443".to_owned()] {
        let (mut s, head) = ask(strict.port, &format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n")).await;
        assert!(head.starts_with("HTTP/1.1 403 "), "{target}: {head}");
        assert!(rest(&mut s).await.contains("loopback"), "{target}");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 0, "a refused tunnel reached the server");
    let notes = strict.notes().join("\n");
    assert!(
        notes.contains(&format!("refused CONNECT 127.0.0.1:{echo_port}: 127.0.0.1 is a loopback address")),
        "{notes}"
    );
    assert!(notes.contains(&format!("refused CONNECT localhost:{echo_port}")), "{notes}");
    // Even where private networks are allowed, metadata addresses are not
    // (refused before any connection is tried).
    let open = proxy(true, ANY_PROTOCOL).await;
    let (_, head) = ask(open.port, "CONNECT 169.254.169.254:80 HTTP/1.1\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 403 "), "{head}");
    assert!(open.notes().join("\n").contains("cloud metadata"), "{:?}", open.notes());
}

#[tokio::test]
async fn tunnels_past_the_limit_are_refused_and_idle_ones_closed() {
    let (echo_port, _) = echo().await;
    let p = proxy(true, EgressLimits { max_tunnels: 1, idle: Duration::from_millis(500), tls_only: false }).await;
    let connect = format!("CONNECT 127.0.0.1:{echo_port} HTTP/1.1\r\n\r\n");
    let (mut first, head) = ask(p.port, &connect).await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    let (_, head) = ask(p.port, &connect).await;
    assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
    assert!(p.notes().join("\n").contains("more than 1 tunnels at once"), "{:?}", p.notes());
    // Idle past its limit, the first tunnel is closed, which frees its place.
    let mut buf = [0u8; 1];
    let closed = tokio::time::timeout(Duration::from_secs(10), first.read(&mut buf)).await.expect("closed in time");
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (_, head) = ask(p.port, &connect).await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
}

#[tokio::test]
async fn with_tls_only_a_tunnel_that_does_not_start_tls_passes_nothing_on() {
    let (echo_port, _) = echo().await;
    let p = proxy(true, EgressLimits { tls_only: true, ..EgressLimits::default() }).await;
    let connect = format!("CONNECT 127.0.0.1:{echo_port} HTTP/1.1\r\n\r\n");
    // Plain text in the tunnel: closed, nothing echoed.
    let (mut plain, head) = ask(p.port, &connect).await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    plain.write_all(b"GET / HTTP/1.1\r\n\r\n").await.expect("send");
    let mut back = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), plain.read_to_end(&mut back)).await.expect("closed in time");
    assert!(back.is_empty(), "plain text went through: {:?}", String::from_utf8_lossy(&back));
    let notes = p.notes().join("\n");
    assert!(
        notes.contains(&format!("closed the tunnel to 127.0.0.1:{echo_port}: the program did not start TLS")),
        "{notes}"
    );
    // What starts like a TLS handshake goes through.
    let (mut tls, head) = ask(p.port, &connect).await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    tls.write_all(&[0x16, 0x03, 0x01, 0x00]).await.expect("send");
    let mut echoed = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(10), tls.read_exact(&mut echoed)).await.expect("echo").expect("read");
    assert_eq!(echoed, [0x16, 0x03, 0x01, 0x00]);
}
