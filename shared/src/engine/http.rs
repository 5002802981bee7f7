//! Outbound HTTP for flows: timeouts, retries with exponential backoff and full
//! jitter for 5xx and network errors, `Retry-After` and rate-limit reset headers
//! honoured on 429, a proactive request budget per (tenant, connector), and a
//! classification of failures the run status can be derived from.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::Mutex;
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct HttpPolicy {
    pub timeout: Duration,
    /// Retries after the first attempt.
    pub max_retries: u32,
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// A 429 asking to wait longer than this fails the request instead.
    pub max_retry_after: Duration,
}

impl Default for HttpPolicy {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            max_retries: 5,
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
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
}

#[derive(Debug, Clone)]
pub struct Inbound {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

/// Why a request finally failed. `Integration` means the remote system refused
/// what the integration sent (a 4xx other than 401/429): retrying won't help.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("HTTP {status} from {url}: {snippet}")]
    Integration { status: u16, url: String, snippet: String },
    // The wording is matched by `credentials_refused`; change both together.
    #[error("HTTP 401 from {url}: credentials were refused")]
    Unauthorized { url: String },
    #[error("rate limited by {url} after {attempts} attempts")]
    RateLimited { url: String, attempts: u32 },
    #[error("HTTP {status} from {url} after {attempts} attempts")]
    Server { status: u16, url: String, attempts: u32 },
    #[error("request to {url} failed after {attempts} attempts: {reason}")]
    Network { url: String, attempts: u32, reason: String },
    #[error("invalid request: {0}")]
    Invalid(String),
}

/// A token bucket per budget key (tenant + connector): requests wait for a
/// token instead of bursting into the provider's rate limit.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

#[derive(Default)]
pub struct Budgets {
    buckets: Mutex<HashMap<String, (Rate, f64, Instant)>>,
}

impl Budgets {
    /// Waits until a request under `key` may go out.
    pub async fn acquire(&self, key: &str, rate: Rate) {
        loop {
            let wait = {
                let mut buckets = self.buckets.lock().await;
                let now = Instant::now();
                let entry = buckets.entry(key.to_owned()).or_insert((rate, rate.burst, now));
                let (r, tokens, last) = entry;
                *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * r.per_second).min(r.burst);
                *last = now;
                if *tokens >= 1.0 {
                    *tokens -= 1.0;
                    return;
                }
                Duration::from_secs_f64((1.0 - *tokens) / r.per_second.max(1e-6))
            };
            tokio::time::sleep(wait).await;
        }
    }
}

#[derive(Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    policy: HttpPolicy,
    budgets: Arc<Budgets>,
}

impl HttpClient {
    pub fn new(policy: HttpPolicy) -> Result<Self, HttpError> {
        let client = reqwest::Client::builder()
            .timeout(policy.timeout)
            .connect_timeout(policy.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| HttpError::Invalid(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { client, policy, budgets: Arc::new(Budgets::default()) })
    }

    pub fn with_budgets(mut self, budgets: Arc<Budgets>) -> Self {
        self.budgets = budgets;
        self
    }

    /// Sends with retries. `budget` throttles proactively when given.
    pub async fn send(&self, req: &Outbound, budget: Option<(&str, Rate)>) -> Result<Inbound, HttpError> {
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            if let Some((key, rate)) = budget {
                self.budgets.acquire(key, rate).await;
            }
            let mut builder = self.client.request(req.method.clone(), &req.url);
            for (k, v) in &req.headers {
                builder = builder.header(k, v);
            }
            if let Some(b) = &req.body {
                builder = builder.body(b.clone());
            }
            let retry_in = match builder.send().await {
                Ok(res) => {
                    let status = res.status().as_u16();
                    let headers = res.headers().clone();
                    let body = match res.bytes().await {
                        Ok(b) => b.to_vec(),
                        Err(e) if attempt > self.policy.max_retries => {
                            return Err(HttpError::Network {
                                url: redact(&req.url),
                                attempts: attempt,
                                reason: describe(&e),
                            })
                        }
                        Err(_) => {
                            tokio::time::sleep(self.backoff(attempt)).await;
                            continue;
                        }
                    };
                    match status {
                        200..=399 => return Ok(Inbound { status, headers, body }),
                        401 => return Err(HttpError::Unauthorized { url: redact(&req.url) }),
                        429 => {
                            let wait = retry_after(&headers).unwrap_or_else(|| self.backoff(attempt));
                            if attempt > self.policy.max_retries || wait > self.policy.max_retry_after {
                                return Err(HttpError::RateLimited { url: redact(&req.url), attempts: attempt });
                            }
                            wait
                        }
                        500..=599 => {
                            if attempt > self.policy.max_retries {
                                return Err(HttpError::Server { status, url: redact(&req.url), attempts: attempt });
                            }
                            retry_after(&headers)
                                .filter(|w| *w <= self.policy.max_retry_after)
                                .unwrap_or_else(|| self.backoff(attempt))
                        }
                        _ => {
                            return Err(HttpError::Integration {
                                status,
                                url: redact(&req.url),
                                snippet: snippet(&body),
                            })
                        }
                    }
                }
                Err(e) => {
                    if attempt > self.policy.max_retries {
                        return Err(HttpError::Network {
                            url: redact(&req.url),
                            attempts: attempt,
                            reason: describe(&e),
                        });
                    }
                    self.backoff(attempt)
                }
            };
            tracing::debug!(attempt, wait_ms = retry_in.as_millis() as u64, "retrying request");
            tokio::time::sleep(retry_in).await;
        }
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
