//! Outbound HTTP for flows: timeouts, retries with exponential backoff and full
//! jitter for 5xx and network errors, `Retry-After` and rate-limit reset headers
//! honoured on 429, every attempt admitted through the [`Gate`] (request
//! budget, in-flight limit), and a classification of failures the run status
//! can be derived from. Requests go out under the outbound policy ([`ferry_net`]): checked addresses, capped
//! bodies, redirects only to the same origin and never with credentials.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;

use crate::throttle::{Gate, LocalGate, Throttle};

use ferry_net::NetPolicy;

#[derive(Debug, Clone)]
pub struct HttpPolicy {
    pub timeout: Duration,
    /// Retries after the first attempt.
    pub max_retries: u32,
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// A 429 asking to wait longer than this fails the request instead.
    pub max_retry_after: Duration,
    /// The largest response body read (a connector's `max_response_bytes`
    /// overrides it per request); a larger one fails the request.
    pub max_response_bytes: usize,
}

/// The default cap of a response body: far above any API page, far below
/// what would exhaust a 512 MiB function (two pages are in memory at once).
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

/// Same-origin redirects followed for a request without credentials.
const MAX_REDIRECTS: u32 = 5;

impl Default for HttpPolicy {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            max_retries: 5,
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

/// A request, fully rendered.
#[derive(Debug, Clone)]
pub struct Outbound {
    pub method: reqwest::Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    /// How errors name the request: base URL and path *template*, so values
    /// rendered into the path (secrets, record fields) never reach a message.
    /// Without it, the URL with its query string cut off.
    pub label: Option<String>,
    /// Whether the request carries credentials: such a request follows no
    /// redirect at all (a 3xx answer fails it).
    pub credentialed: bool,
    /// Overrides [`HttpPolicy::max_response_bytes`].
    pub max_response_bytes: Option<usize>,
}

impl Outbound {
    pub fn new(method: reqwest::Method, url: impl Into<String>) -> Self {
        Self {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: None,
            label: None,
            credentialed: false,
            max_response_bytes: None,
        }
    }

    /// What messages show of this request.
    pub fn shown(&self) -> String {
        self.label.clone().unwrap_or_else(|| redact(&self.url))
    }
}

#[derive(Debug, Clone)]
pub struct Inbound {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

/// Why a request finally failed. `Integration` means the remote system refused
/// what the integration sent (a 4xx other than 401/429): retrying won't help.
/// No message carries the answer's body: APIs echo what they were sent,
/// credentials included, and messages end up in runs and events.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("HTTP {status} from {url}")]
    Integration {
        status: u16,
        url: String,
        /// The start of the answer, for callers that can show it safely; never displayed.
        snippet: String,
    },
    // The wording is matched by `credentials_refused`; change both together.
    #[error("HTTP 401 from {url}: credentials were refused")]
    Unauthorized { url: String },
    #[error("rate limited by {url} after {attempts} attempts")]
    RateLimited { url: String, attempts: u32 },
    #[error("HTTP {status} from {url} after {attempts} attempts")]
    Server { status: u16, url: String, attempts: u32 },
    #[error("request to {url} failed after {attempts} attempts: {reason}")]
    Network { url: String, attempts: u32, reason: String },
    /// The outbound policy refused where the request (or a redirect) goes.
    #[error("request to {url} refused: {reason}")]
    Refused { url: String, code: &'static str, reason: String },
    /// A redirect that is not followed: the request carried credentials or
    /// wrote data, or the redirects went on too long.
    #[error("HTTP {status} from {url}: redirects are not followed for this request ({why})")]
    Redirect { status: u16, url: String, why: &'static str },
    #[error("the response of {url} is larger than {limit} bytes (raise the connector's max_response_bytes if it is expected)")]
    TooLarge { url: String, limit: usize },
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The request budget or in-flight limit could not be consulted.
    #[error("request to {url} not sent: its request budget is unavailable ({reason})")]
    NotAdmitted { url: String, reason: String },
}

pub use crate::throttle::Rate;

#[derive(Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    policy: HttpPolicy,
    net: NetPolicy,
    gate: Arc<dyn Gate>,
}

/// How one exchange ended, before retries are decided.
enum Exchange {
    Answered(Inbound),
    /// Worth retrying (connection or body read failed).
    Transient(String),
    Final(HttpError),
}

impl HttpClient {
    pub fn new(policy: HttpPolicy, net: NetPolicy) -> Result<Self, HttpError> {
        let client =
            net.client(policy.timeout, concat!("ferry/", env!("CARGO_PKG_VERSION"))).map_err(HttpError::Invalid)?;
        Ok(Self { client, policy, net, gate: Arc::new(LocalGate::default()) })
    }

    /// Admits requests through `gate` (a hub's is shared by all its runs)
    /// instead of this client's own in-memory one.
    pub fn with_gate(mut self, gate: Arc<dyn Gate>) -> Self {
        self.gate = gate;
        self
    }

    /// Sends with retries. Each attempt is admitted under `throttle` when
    /// given, and holds its in-flight slot only while it is in flight (not
    /// while it backs off).
    pub async fn send(&self, req: &Outbound, throttle: Option<&Throttle>) -> Result<Inbound, HttpError> {
        let url = req.shown();
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let slot = match throttle {
                Some(t) => crate::throttle::admit(self.gate.as_ref(), t)
                    .await
                    .map_err(|e| HttpError::NotAdmitted { url: url.clone(), reason: e.0 })?,
                None => None,
            };
            let last = attempt > self.policy.max_retries;
            let exchanged = self.exchange(req).await;
            drop(slot);
            let retry_in = match exchanged {
                Exchange::Final(e) => return Err(e),
                Exchange::Transient(reason) if last => {
                    return Err(HttpError::Network { url, attempts: attempt, reason })
                }
                Exchange::Transient(_) => self.backoff(attempt),
                Exchange::Answered(res) => match res.status {
                    200..=299 => return Ok(res),
                    401 => return Err(HttpError::Unauthorized { url }),
                    429 => {
                        let wait = retry_after(&res.headers).unwrap_or_else(|| self.backoff(attempt));
                        if last || wait > self.policy.max_retry_after {
                            return Err(HttpError::RateLimited { url, attempts: attempt });
                        }
                        wait
                    }
                    500..=599 if last => return Err(HttpError::Server { status: res.status, url, attempts: attempt }),
                    500..=599 => retry_after(&res.headers)
                        .filter(|w| *w <= self.policy.max_retry_after)
                        .unwrap_or_else(|| self.backoff(attempt)),
                    status => return Err(HttpError::Integration { status, url, snippet: snippet(&res.body) }),
                },
            };
            tracing::debug!(attempt, wait_ms = retry_in.as_millis() as u64, "retrying request");
            tokio::time::sleep(retry_in).await;
        }
    }

    /// One request, with the same-origin redirects it may follow, and its
    /// body read up to the cap.
    async fn exchange(&self, req: &Outbound) -> Exchange {
        let refused = |r: ferry_net::Refusal| {
            Exchange::Final(HttpError::Refused { url: req.shown(), code: r.code, reason: r.message })
        };
        let mut url = match self.net.check(&req.url) {
            Ok(u) => u,
            Err(r) => return refused(r),
        };
        let mut hops = 0;
        loop {
            let mut builder = self.client.request(req.method.clone(), url.clone());
            for (k, v) in &req.headers {
                builder = builder.header(k, v);
            }
            if let Some(b) = &req.body {
                builder = builder.body(b.clone());
            }
            let res = match builder.send().await {
                Ok(res) => res,
                Err(e) => match ferry_net::refusal_in(&e) {
                    Some(r) => return refused(r),
                    None => return Exchange::Transient(describe(&e)),
                },
            };
            let status = res.status().as_u16();
            if (300..400).contains(&status) {
                match self.redirect_target(req, &url, &res, hops) {
                    Ok(next) => {
                        url = next;
                        hops += 1;
                        continue;
                    }
                    Err(e) => return Exchange::Final(e),
                }
            }
            let headers = res.headers().clone();
            let limit = req.max_response_bytes.unwrap_or(self.policy.max_response_bytes);
            return match ferry_net::read_capped(res, limit).await {
                Ok(body) => Exchange::Answered(Inbound { status, headers, body }),
                Err(ferry_net::BodyError::TooLarge { limit }) => {
                    Exchange::Final(HttpError::TooLarge { url: req.shown(), limit })
                }
                Err(ferry_net::BodyError::Read(e)) => Exchange::Transient(describe(&e)),
            };
        }
    }

    /// Where a 3xx answer may lead: only a GET without credentials follows,
    /// and only to its own origin, a few times.
    fn redirect_target(
        &self,
        req: &Outbound,
        from: &reqwest::Url,
        res: &reqwest::Response,
        hops: u32,
    ) -> Result<reqwest::Url, HttpError> {
        let status = res.status().as_u16();
        let refuse = |why| HttpError::Redirect { status, url: req.shown(), why };
        if req.credentialed {
            return Err(refuse("it carries credentials"));
        }
        if req.method != reqwest::Method::GET {
            return Err(refuse("it is not a GET"));
        }
        if hops >= MAX_REDIRECTS {
            return Err(refuse("too many redirects"));
        }
        let location = res.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok());
        let next = location.and_then(|l| from.join(l).ok()).ok_or_else(|| refuse("no usable Location"))?;
        if !ferry_net::same_origin(from, &next) {
            return Err(refuse("it leads to another origin"));
        }
        Ok(next)
    }

    /// Exponential backoff with full jitter.
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.policy.base_backoff.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
        let cap = exp.min(self.policy.max_backoff);
        let millis = cap.as_millis() as u64;
        Duration::from_millis(rand::thread_rng().gen_range(millis / 2..=millis.max(1)))
    }
}

/// `Retry-After` (seconds or HTTP date), else common rate-limit reset headers.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(v) = get("retry-after") {
        if let Ok(secs) = v.parse::<f64>() {
            return Some(Duration::from_secs_f64(secs.max(0.0)));
        }
        if let Ok(at) = chrono::DateTime::parse_from_rfc2822(v) {
            let delta = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
            return Some(delta.to_std().unwrap_or(Duration::ZERO));
        }
    }
    for name in ["ratelimit-reset", "x-ratelimit-reset", "x-rate-limit-reset"] {
        if let Some(secs) = get(name).and_then(|v| v.parse::<u64>().ok()) {
            // Some APIs send an epoch timestamp here, others seconds to wait.
            let now = chrono::Utc::now().timestamp() as u64;
            let wait = if secs > 1_000_000_000 { secs.saturating_sub(now) } else { secs };
            return Some(Duration::from_secs(wait));
        }
    }
    None
}

/// URLs may carry api keys in the query string; logs and errors get none of it.
pub fn redact(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?…"),
        None => url.to_owned(),
    }
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut s: String = text.chars().take(300).collect();
    if text.chars().count() > 300 {
        s.push('…');
    }
    s
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "could not connect".into()
    } else {
        "network error".into()
    }
}

/// Whether a flow's error (a message, as run records keep them) came from a
/// 401: the cue to refresh an OAuth2 token and try the flow again.
pub fn credentials_refused(error: &str) -> bool {
    error.contains("HTTP 401 from ") && error.contains("credentials were refused")
}
