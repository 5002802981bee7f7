//! The egress proxy of sandboxed programs: an HTTP proxy that only tunnels
//! (`CONNECT host:port`), under the same [`NetPolicy`] as every other client
//! of the hub.
//!
//! - Only `CONNECT` is served; anything else (plain-http proxying included)
//!   is answered `405`.
//! - The target is judged before any lookup: an address literal by its kind,
//!   a name by the `localhost` rule, and the port: without
//!   `--allow-private-network` only 443. The proxy cannot see inside the
//!   tunnel, so port 443 is how it keeps the hub's "https only" rule; on a
//!   hub that allows private networks any port is tunnelled.
//! - A name is resolved and every address checked (one refused address
//!   refuses the name); the connection goes to a checked address, so a name
//!   cannot be re-pointed between check and use.
//! - A refusal is answered `403` with the reason, and reported to `notes`
//!   (target and reason only, never a path or header), so the run log says why.
//! - With [`EgressLimits::tls_only`] (the sandbox's proxy on a strict hub)
//!   the program's first bytes in a tunnel must open a TLS handshake; a
//!   tunnel that starts otherwise is closed before they are passed on.
//! - At most [`EgressLimits::max_tunnels`] tunnels at once (`503` past that);
//!   a tunnel with no byte either way for [`EgressLimits::idle`] is closed.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{resolve, NetPolicy, Refusal};

/// Longest request head read (request line and headers).
const MAX_HEAD: usize = 8 * 1024;
/// Time a client has to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a connection to the target may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Most notes one proxy reports; further refusals are counted, not logged.
const MAX_NOTES: usize = 100;

#[derive(Debug, Clone, Copy)]
pub struct EgressLimits {
    /// Tunnels open at once.
    pub max_tunnels: usize,
    /// A tunnel idle this long (no byte either way) is closed.
    pub idle: Duration,
    /// The client must start TLS in the tunnel (its first byte opens a TLS
    /// handshake record), so port 443 carries no other protocol.
    pub tls_only: bool,
}

impl Default for EgressLimits {
    fn default() -> Self {
        Self { max_tunnels: 32, idle: Duration::from_secs(300), tls_only: true }
    }
}

/// Where the proxy's refusals go (the run log).
pub type Notes = Arc<dyn Fn(String) + Send + Sync>;

/// A running proxy; dropping it stops it and closes every tunnel.
pub struct EgressProxy {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for EgressProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EgressProxy {
    /// Serves `listener` until dropped.
    pub fn start(listener: TcpListener, policy: NetPolicy, limits: EgressLimits, notes: Notes) -> Self {
        let task = tokio::spawn(serve(listener, policy, limits, notes));
        Self { task }
    }
}

async fn serve(listener: TcpListener, policy: NetPolicy, limits: EgressLimits, notes: Notes) {
    let slots = Arc::new(Semaphore::new(limits.max_tunnels));
    let notes = Reporter::new(notes);
    // Dropped with this task: every tunnel ends with the proxy.
    let mut tunnels = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            Some(_) = tunnels.join_next(), if !tunnels.is_empty() => continue,
        };
        let Ok((mut client, _)) = accepted else {
            // Out of descriptors and the like: wait rather than spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            notes.note(format!("egress: refused a connection: more than {} tunnels at once", limits.max_tunnels));
            tunnels.spawn(async move {
                let _ = respond(&mut client, 503, "Service Unavailable", "too many tunnels at once\n").await;
            });
            continue;
        };
        let notes = notes.clone();
        tunnels.spawn(async move {
            handle(client, policy, limits, &notes).await;
            drop(slot);
        });
    }
}

/// Notes up to [`MAX_NOTES`], then one line saying more were dropped.
#[derive(Clone)]
struct Reporter {
    sink: Notes,
    sent: Arc<AtomicUsize>,
}

impl Reporter {
    fn new(sink: Notes) -> Self {
        Self { sink, sent: Arc::new(AtomicUsize::new(0)) }
    }

    fn note(&self, line: String) {
        match self.sent.fetch_add(1, Ordering::Relaxed) {
            n if n < MAX_NOTES => (self.sink)(line),
            n if n == MAX_NOTES => (self.sink)("egress: further refusals are not logged".to_owned()),
            _ => {}
        }
    }
}

async fn handle(mut client: TcpStream, policy: NetPolicy, limits: EgressLimits, notes: &Reporter) {
    let Ok(Ok(Some((head, surplus)))) = tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut client)).await else {
        let _ = respond(&mut client, 400, "Bad Request", "no complete request head\n").await;
        return;
    };
    let Some((method, target)) = request_line(&head) else {
        notes.note("egress: refused a request that is not HTTP".to_owned());
        let _ = respond(&mut client, 400, "Bad Request", "not an HTTP request\n").await;
        return;
    };
    if method != "CONNECT" {
        notes.note(format!(
            "egress: refused {method} {}: only https (CONNECT) goes through the proxy",
            origin_only(&target)
        ));
        let body = "this proxy only tunnels https (CONNECT host:443)\n";
        let _ = respond(&mut client, 405, "Method Not Allowed", body).await;
        return;
    }
    let mut upstream = match open(&policy, &target).await {
        Ok(up) => up,
        Err(Failure::Refused(r)) => {
            notes.note(format!("egress: refused CONNECT {target}: {}", r.message));
            let _ = respond(&mut client, 403, "Forbidden", &format!("{}\n", r.message)).await;
            return;
        }
        Err(Failure::Unreachable(why)) => {
            notes.note(format!("egress: could not connect to {target}: {why}"));
            let _ = respond(&mut client, 502, "Bad Gateway", &format!("{why}\n")).await;
            return;
        }
    };
    if client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await.is_err() {
        return;
    }
    let mut first = surplus;
    if limits.tls_only {
        if first.is_empty() {
            let mut chunk = vec![0u8; 4096];
            match tokio::time::timeout(limits.idle, client.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => first.extend_from_slice(&chunk[..n]),
                _ => return,
            }
        }
        if first[0] != TLS_HANDSHAKE {
            notes.note(format!("egress: closed the tunnel to {target}: the program did not start TLS (https only)"));
            return;
        }
    }
    if !first.is_empty() && upstream.write_all(&first).await.is_err() {
        return;
    }
    tunnel(client, upstream, limits.idle).await;
}

/// The first byte of every TLS connection a client opens (a handshake record).
const TLS_HANDSHAKE: u8 = 0x16;

/// The request head, and whatever the client sent after it.
async fn read_head(client: &mut TcpStream) -> std::io::Result<Option<(String, Vec<u8>)>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let surplus = buf.split_off(end + 4);
            return Ok(Some((String::from_utf8_lossy(&buf).into_owned(), surplus)));
        }
        if buf.len() > MAX_HEAD {
            return Ok(None);
        }
    }
}

/// Method and target of `METHOD target HTTP/1.x`.
fn request_line(head: &str) -> Option<(String, String)> {
    let line = head.lines().next()?;
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !version.starts_with("HTTP/1.") || method.is_empty() || target.is_empty() {
        return None;
    }
    Some((method.to_owned(), target.to_owned()))
}

/// `scheme://host[:port]` of an absolute URL (no path, no query: they may
/// carry secrets), or a placeholder.
fn origin_only(target: &str) -> String {
    match reqwest::Url::parse(target) {
        Ok(u) if u.host_str().is_some() => u.origin().ascii_serialization(),
        _ => "a request".to_owned(),
    }
}

enum Failure {
    Refused(Refusal),
    Unreachable(String),
}

/// A target the policy accepts, before any lookup.
#[derive(Debug, PartialEq, Eq)]
pub enum Target {
    Address(SocketAddr),
    Name(String, u16),
}

/// Judges `host:port` without DNS: its form, the address or `localhost`
/// rule, then the port (443 only unless private networks are allowed).
pub fn judge(policy: &NetPolicy, target: &str) -> Result<Target, Refusal> {
    let bad = || Refusal::new("invalid_target", "the CONNECT target is not host:port");
    let (host, port) = target.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().ok().filter(|p| *p != 0).ok_or_else(bad)?;
    let literal = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let judged = match literal.parse::<IpAddr>() {
        Ok(ip) => {
            policy.check_ip(ip)?;
            Target::Address(SocketAddr::new(ip, port))
        }
        Err(_) => {
            let valid = !host.is_empty()
                && host.len() <= 253
                && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
            if !valid {
                return Err(bad());
            }
            policy.check_name(host)?;
            Target::Name(host.to_owned(), port)
        }
    };
    if port != 443 && !policy.allow_private_network {
        return Err(Refusal::new(
            "blocked_port",
            format!("port {port} is closed to programs: only https on port 443 is reachable through the proxy"),
        ));
    }
    Ok(judged)
}

/// A connection to a checked address of `target`.
async fn open(policy: &NetPolicy, target: &str) -> Result<TcpStream, Failure> {
    let addrs = match judge(policy, target).map_err(Failure::Refused)? {
        Target::Address(a) => vec![a],
        Target::Name(name, port) => resolve::lookup(policy, &name, port).await.map_err(Failure::Refused)?,
    };
    let mut last = String::from("no address");
    for addr in addrs {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()),
        }
    }
    Err(Failure::Unreachable(last))
}

async fn respond(client: &mut TcpStream, code: u16, reason: &str, body: &str) -> std::io::Result<()> {
    let answer = format!(
        "HTTP/1.1 {code} {reason}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    client.write_all(answer.as_bytes()).await?;
    client.shutdown().await
}

/// Copies both ways until both sides close or nothing moves for `idle`.
async fn tunnel(client: TcpStream, upstream: TcpStream, idle: Duration) {
    let last = Arc::new(Mutex::new(Instant::now()));
    let mut client = Touching { inner: client, last: last.clone() };
    let mut upstream = Touching { inner: upstream, last: last.clone() };
    let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
    tokio::pin!(copy);
    loop {
        let deadline = *last.lock().unwrap_or_else(|e| e.into_inner()) + idle;
        tokio::select! {
            _ = &mut copy => return,
            _ = tokio::time::sleep_until(deadline) => {
                if *last.lock().unwrap_or_else(|e| e.into_inner()) + idle <= Instant::now() {
                    return;
                }
            }
        }
    }
}

/// A stream that records when it last read anything.
struct Touching {
    inner: TcpStream,
    last: Arc<Mutex<Instant>>,
}

impl AsyncRead for Touching {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        }
        polled
    }
}

impl AsyncWrite for Touching {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: NetPolicy = NetPolicy { allow_private_network: false };
    const OPEN: NetPolicy = NetPolicy { allow_private_network: true };

    fn code(p: NetPolicy, target: &str) -> Option<&'static str> {
        judge(&p, target).err().map(|r| r.code)
    }

    #[test]
    fn targets_are_judged_before_any_lookup() {
        assert_eq!(judge(&STRICT, "api.example.com:443"), Ok(Target::Name("api.example.com".into(), 443)));
        assert_eq!(code(STRICT, "api.example.com:22"), Some("blocked_port"));
        assert_eq!(code(STRICT, "api.example.com:80"), Some("blocked_port"));
        assert_eq!(code(OPEN, "api.example.com:8443"), None);
        for t in ["127.0.0.1:443", "[::1]:443", "localhost:443", "10.0.0.1:443", "[::ffff:127.0.0.1]:443"] {
            assert_eq!(code(STRICT, t), Some("blocked_address"), "{t}");
        }
        assert_eq!(code(OPEN, "127.0.0.1:9000"), None);
        assert_eq!(code(OPEN, "169.254.169.254:80"), Some("blocked_address"));
        for t in ["api.example.com", "api.example.com:0", "api.example.com:x", ":443", "a b:443", "[::1]"] {
            assert_eq!(code(OPEN, t), Some("invalid_target"), "{t}");
        }
    }

    #[test]
    fn request_lines_and_logged_origins() {
        assert_eq!(
            request_line("CONNECT a.example:443 HTTP/1.1\r\nHost: a\r\n\r\n"),
            Some(("CONNECT".into(), "a.example:443".into()))
        );
        assert_eq!(request_line("\u{16}\u{3}\u{1}garbage"), None);
        assert_eq!(origin_only("http://api.example.com/x?key=secret"), "http://api.example.com");
        assert_eq!(origin_only("/relative?key=secret"), "a request");
    }
}
