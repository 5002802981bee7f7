//! Helpers shared by the end-to-end tests and the cold-start benchmark
//! (`bench/main.rs`): a Lambda Runtime API emulator, API Gateway HTTP API
//! (payload format 2.0) events and responses, and starting a function binary
//! the way Lambda does.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine as _;
use ferry_aws::{dynamodb, DynamoStore, SecretsManagerStore};
use ferry_lambda::hub as aws;
use serde_json::{json, Map, Value};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::{mpsc, oneshot, watch};

pub mod sqs;

/// The Runtime API version prefix every runtime client uses.
const API: &str = "/2018-06-01/runtime";
/// Lambda's function timeout in the SAM template; the deadline each event carries.
const FUNCTION_TIMEOUT: Duration = Duration::from_secs(10);
const ACCOUNT: &str = "123456789012";
const API_ID: &str = "ferryapi01";

#[derive(Debug, thiserror::Error)]
pub enum LambdaError {
    #[error("the function reported an init error: {0}")]
    Init(String),
    #[error("the function exited ({0}) before answering; its output:\n{1}")]
    Exited(ExitStatus, String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the emulator stopped before the function answered")]
    EmulatorGone,
    #[error("the response payload is not an HTTP API response: {0}")]
    BadPayload(String),
    #[error("the sync function's answer is not a partial batch response: {0}")]
    BadBatchResponse(String),
    #[error(
        "{0} does not exist: build the function binaries first (`cargo build --workspace --bins`, which ./tests/run does{1})"
    )]
    MissingBinary(PathBuf, &'static str),
    #[error("{0}")]
    Setup(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// What a function posted back for one invocation.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// `POST /invocation/{id}/response`.
    Response(Bytes),
    /// `POST /invocation/{id}/error`.
    Error { error_type: Option<String>, body: Bytes },
    /// `POST /init/error`, while the invocation waited.
    InitError(Bytes),
}

struct Queued {
    request_id: String,
    event: Bytes,
    deadline_ms: u128,
}

struct Shared {
    function_arn: String,
    /// One runtime client polls at a time (as in Lambda), so one receiver suffices.
    queue: tokio::sync::Mutex<mpsc::UnboundedReceiver<Queued>>,
    waiting: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    first_poll: watch::Sender<Option<Instant>>,
    init_error: Mutex<Option<Bytes>>,
}

/// A Lambda Runtime API for one function, on `127.0.0.1:<random port>`.
pub struct RuntimeApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    queue: mpsc::UnboundedSender<Queued>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl RuntimeApi {
    #[tracing::instrument(name = "runtime_api.start")]
    pub async fn start(function_name: &str) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            function_arn: format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:{function_name}"),
            queue: tokio::sync::Mutex::new(rx),
            waiting: Mutex::new(HashMap::new()),
            first_poll: watch::Sender::new(None),
            init_error: Mutex::new(None),
        });
        let app = Router::new()
            .route(&format!("{API}/invocation/next"), get(next))
            .route(&format!("{API}/invocation/{{id}}/response"), post(response))
            .route(&format!("{API}/invocation/{{id}}/error"), post(invocation_error))
            .route(&format!("{API}/init/error"), post(init_error))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "runtime API emulator stopped");
            }
        });
        Ok(Self { addr, shared, queue: tx, server })
    }

    /// The value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// When the runtime first asked for an event: the end of its init phase.
    pub async fn first_poll(&self, timeout: Duration) -> Result<Instant, LambdaError> {
        let mut rx = self.shared.first_poll.subscribe();
        let waited = tokio::time::timeout(timeout, rx.wait_for(Option::is_some)).await;
        match waited {
            Ok(Ok(at)) => at.ok_or(LambdaError::EmulatorGone),
            Ok(Err(_)) => Err(LambdaError::EmulatorGone),
            Err(_) => Err(LambdaError::Timeout(timeout)),
        }
    }

    /// The body of `POST /init/error`, if the runtime sent one.
    pub fn init_error(&self) -> Option<Bytes> {
        lock(&self.shared.init_error).clone()
    }

    /// Queues `event` for the next `GET /invocation/next` and waits for what
    /// the function posts back.
    #[tracing::instrument(name = "runtime_api.invoke", skip_all)]
    pub async fn invoke(&self, event: &Value, timeout: Duration) -> Result<Outcome, LambdaError> {
        if let Some(body) = self.init_error() {
            return Ok(Outcome::InitError(body));
        }
        let request_id = new_request_id();
        let (tx, rx) = oneshot::channel();
        lock(&self.shared.waiting).insert(request_id.clone(), tx);
        let deadline_ms = epoch_millis() + FUNCTION_TIMEOUT.as_millis();
        let queued = Queued { request_id: request_id.clone(), event: Bytes::from(event.to_string()), deadline_ms };
        if self.queue.send(queued).is_err() {
            return Err(LambdaError::EmulatorGone);
        }
        let outcome = tokio::time::timeout(timeout, rx).await;
        lock(&self.shared.waiting).remove(&request_id);
        match outcome {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(_)) => Err(LambdaError::EmulatorGone),
            Err(_) => Err(LambdaError::Timeout(timeout)),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The maps stay consistent even if a holder panicked mid-test.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn epoch_millis() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0)
}

fn new_request_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let t = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    // UUID-shaped, like Lambda's request ids.
    let hex = format!("{:016x}{:016x}", t as u64, n);
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    shared.first_poll.send_if_modified(|at| {
        let first = at.is_none();
        if first {
            *at = Some(Instant::now());
        }
        first
    });
    // Long poll: the runtime waits here between invocations, as in Lambda.
    let queued = shared.queue.lock().await.recv().await;
    let Some(q) = queued else {
        return (StatusCode::GONE, "emulator stopping").into_response();
    };
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    };
    set("content-type", "application/json".into());
    set("lambda-runtime-aws-request-id", q.request_id.clone());
    set("lambda-runtime-deadline-ms", q.deadline_ms.to_string());
    set("lambda-runtime-invoked-function-arn", shared.function_arn.clone());
    let trace: String = q.request_id.chars().filter(|c| *c != '-').take(24).collect();
    set(
        "lambda-runtime-trace-id",
        format!("Root=1-{:08x}-{trace};Parent=0000000000000001;Sampled=0", epoch_millis() / 1000),
    );
    (StatusCode::OK, headers, q.event).into_response()
}

fn deliver(shared: &Shared, id: &str, outcome: Outcome) -> Response {
    match lock(&shared.waiting).remove(id) {
        Some(tx) => {
            let _ = tx.send(outcome);
            (StatusCode::ACCEPTED, axum::Json(json!({"status": "OK"}))).into_response()
        }
        None => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"errorMessage": format!("unknown request id {id}"), "errorType": "InvalidRequestID"})),
        )
            .into_response(),
    }
}

async fn response(State(shared): State<Arc<Shared>>, UrlPath(id): UrlPath<String>, body: Bytes) -> Response {
    deliver(&shared, &id, Outcome::Response(body))
}

async fn invocation_error(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let error_type = headers.get("lambda-runtime-function-error-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
    deliver(&shared, &id, Outcome::Error { error_type, body })
}

async fn init_error(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    *lock(&shared.init_error) = Some(body.clone());
    // Lambda fails whatever was waiting for this sandbox.
    for (_, tx) in lock(&shared.waiting).drain() {
        let _ = tx.send(Outcome::InitError(body.clone()));
    }
    (StatusCode::ACCEPTED, axum::Json(json!({"status": "OK"}))).into_response()
}

// ------------------------------------------------------------------ binaries

/// The workspace root (this crate lives in `tests/`).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(Path::to_path_buf).unwrap_or_else(|| manifest.to_path_buf())
}

/// Cargo's target directory: `CARGO_TARGET_DIR` (relative to the workspace
/// root when relative), else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if Path::new(&dir).is_absolute() => PathBuf::from(dir),
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    }
}

/// `target/<profile>/<name>`, or an error saying how to build it.
pub fn function_binary(profile: &str, name: &str) -> Result<PathBuf, LambdaError> {
    let path = target_dir().join(profile).join(name);
    if path.is_file() {
        return Ok(path);
    }
    let hint = if profile == "release" {
        "; for release binaries: `cargo build --release -p api-platform -p api-connections`"
    } else {
        ""
    };
    Err(LambdaError::MissingBinary(path, hint))
}

/// The Lambda function crates: every directory under `functions/` with a
/// `Cargo.toml`, except `functions/ferry` (the local host and CLI).
pub fn function_crates() -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(workspace_root().join("functions"))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name != "ferry" && entry.path().join("Cargo.toml").is_file() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// The AWS settings a test forwards to a function: the emulator endpoint and
/// credentials, as Lambda would pass the execution role's credentials.
pub fn aws_environment() -> Vec<(String, String)> {
    ["AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"]
        .into_iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_owned(), v)))
        .collect()
}

/// A function binary running as in a Lambda sandbox, against a [`RuntimeApi`].
pub struct Sandbox {
    child: tokio::process::Child,
    spawned_at: Instant,
    output: Arc<Mutex<Vec<String>>>,
}

impl Sandbox {
    /// Starts `binary` with Lambda's environment (and nothing else from ours):
    /// the `AWS_LAMBDA_*` variables the runtime reads, the region, and `env`.
    pub fn spawn(
        binary: &Path,
        function_name: &str,
        api: &RuntimeApi,
        env: &[(String, String)],
    ) -> std::io::Result<Self> {
        let mut cmd = tokio::process::Command::new(binary);
        cmd.env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("LANG", "en_US.UTF-8")
            .env("TZ", ":UTC")
            .env("_HANDLER", "bootstrap")
            .env("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023")
            .env("AWS_LAMBDA_RUNTIME_API", api.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", function_name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
            .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
            .env("AWS_LAMBDA_LOG_LEVEL", "INFO")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{function_name}"))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "2025/01/01/[$LATEST]0000")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let spawned_at = Instant::now();
        let mut child = cmd.spawn()?;
        let output = Arc::new(Mutex::new(Vec::new()));
        if let Some(out) = child.stdout.take() {
            collect_lines(out, output.clone());
        }
        if let Some(err) = child.stderr.take() {
            collect_lines(err, output.clone());
        }
        Ok(Self { child, spawned_at, output })
    }

    pub fn spawned_at(&self) -> Instant {
        self.spawned_at
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Everything the function wrote to stdout and stderr so far.
    pub fn output(&self) -> String {
        lock(&self.output).join("\n")
    }

    /// `VmHWM` (peak resident set size) in KiB, from `/proc` (Linux only).
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// Invokes through `api`, failing early if the function exits meanwhile.
    pub async fn invoke(&mut self, api: &RuntimeApi, event: &Value, timeout: Duration) -> Result<Outcome, LambdaError> {
        tokio::select! {
            outcome = api.invoke(event, timeout) => outcome,
            status = self.child.wait() => {
                let status = status?;
                // Let the readers drain what the process wrote before it died.
                tokio::time::sleep(Duration::from_millis(50)).await;
                Err(LambdaError::Exited(status, self.output()))
            }
        }
    }

    /// Waits for the process to exit on its own (e.g. after an init failure).
    pub async fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, LambdaError> {
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(status) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok(status?)
            }
            Err(_) => Err(LambdaError::Timeout(timeout)),
        }
    }

    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }
}

fn collect_lines(stream: impl AsyncRead + Unpin + Send + 'static, into: Arc<Mutex<Vec<String>>>) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            lock(&into).push(line);
        }
    });
}

// -------------------------------------------------------- HTTP API events

/// One API Gateway HTTP API request, as the payload format 2.0 event Lambda receives.
#[derive(Debug, Clone)]
pub struct HttpApiRequest {
    method: String,
    path: String,
    route_key: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
}

impl HttpApiRequest {
    /// A request on the `$default` route; [`Self::route`] names the matched route.
    pub fn new(method: &str, path: &str) -> Self {
        Self {
            method: method.to_ascii_uppercase(),
            path: path.to_owned(),
            route_key: "$default".to_owned(),
            query: String::new(),
            headers: vec![("accept".into(), "application/json".into()), ("user-agent".into(), "ferry-e2e".into())],
            body: None,
        }
    }

    pub fn method(&self) -> &str {
        &self.method
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// The route key API Gateway matched, e.g. `ANY /v1/{proxy+}`.
    pub fn route(mut self, route_key: &str) -> Self {
        self.route_key = route_key.to_owned();
        self
    }

    pub fn query(mut self, raw: &str) -> Self {
        self.query = raw.to_owned();
        self
    }

    /// API Gateway lower-cases header names.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    pub fn json(self, body: &Value) -> Self {
        self.raw_body("application/json", &body.to_string())
    }

    pub fn raw_body(mut self, content_type: &str, body: &str) -> Self {
        self.headers.push(("content-type".into(), content_type.to_owned()));
        self.body = Some(body.to_owned());
        self
    }

    pub fn to_event(&self) -> Value {
        let host = format!("{API_ID}.execute-api.us-east-1.amazonaws.com");
        let mut headers = Map::new();
        for (k, v) in [
            ("host", host.clone()),
            ("x-amzn-trace-id", "Root=1-00000000-000000000000000000000000".to_owned()),
            ("x-forwarded-for", "192.0.2.10".to_owned()),
            ("x-forwarded-port", "443".to_owned()),
            ("x-forwarded-proto", "https".to_owned()),
        ] {
            headers.insert(k.to_owned(), Value::String(v));
        }
        if let Some(body) = &self.body {
            headers.insert("content-length".into(), Value::String(body.len().to_string()));
        }
        for (k, v) in &self.headers {
            // Repeated headers arrive comma-joined in format 2.0.
            let joined = match headers.get(k).and_then(Value::as_str) {
                Some(prev) => format!("{prev},{v}"),
                None => v.clone(),
            };
            headers.insert(k.clone(), Value::String(joined));
        }
        let now = chrono::Utc::now();
        let mut event = json!({
            "version": "2.0",
            "routeKey": self.route_key,
            "rawPath": self.path,
            "rawQueryString": self.query,
            "headers": headers,
            "requestContext": {
                "accountId": ACCOUNT,
                "apiId": API_ID,
                "domainName": host,
                "domainPrefix": API_ID,
                "http": {
                    "method": self.method,
                    "path": self.path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": "192.0.2.10",
                    "userAgent": "ferry-e2e",
                },
                "requestId": new_request_id(),
                "routeKey": self.route_key,
                "stage": "$default",
                "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
                "timeEpoch": now.timestamp_millis(),
            },
            "isBase64Encoded": false,
        });
        if let Some(params) = self.path_parameters() {
            event["pathParameters"] = Value::Object(params);
        }
        if let Some(body) = &self.body {
            event["body"] = Value::String(body.clone());
        }
        event
    }

    fn path_parameters(&self) -> Option<Map<String, Value>> {
        let (_, template) = self.route_key.split_once(' ')?;
        let params = match_route(template, &self.path)?;
        (!params.is_empty()).then(|| params.into_iter().map(|(k, v)| (k, Value::String(v))).collect())
    }
}

/// Matches a concrete path against an API Gateway route path (`{name}` is one
/// segment, a final `{name+}` the rest); returns the path parameters.
pub fn match_route(template: &str, path: &str) -> Option<Vec<(String, String)>> {
    // The root route (`GET /`) matches the root path only.
    if template.trim_matches('/').is_empty() || path.trim_matches('/').is_empty() {
        return (template.trim_matches('/').is_empty() && path.trim_matches('/').is_empty()).then(Vec::new);
    }
    let pattern: Vec<&str> = template.trim_matches('/').split('/').collect();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let mut params = Vec::new();
    for (i, part) in pattern.iter().enumerate() {
        if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix("+}")) {
            let rest = segments.get(i..).filter(|r| !r.is_empty() && r.iter().all(|s| !s.is_empty()))?;
            params.push((name.to_owned(), rest.join("/")));
            return Some(params);
        }
        let segment = segments.get(i).filter(|s| !s.is_empty())?;
        match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some(name) => params.push((name.to_owned(), (*segment).to_owned())),
            None if part == segment => {}
            None => return None,
        }
    }
    (pattern.len() == segments.len()).then_some(params)
}

/// What the function answered, decoded from its HTTP API response payload.
#[derive(Debug, Clone)]
pub struct HttpApiResponse {
    pub status: u16,
    pub headers: Map<String, Value>,
    /// `Set-Cookie` values: payload 2.0 answers them in `cookies`, not among the headers.
    pub cookies: Vec<String>,
    pub body: String,
}

impl HttpApiResponse {
    pub fn from_outcome(outcome: &Outcome) -> Result<Self, LambdaError> {
        match outcome {
            Outcome::Response(payload) => Self::from_payload(payload),
            Outcome::Error { error_type, body } => Err(LambdaError::BadPayload(format!(
                "the function reported an error ({}): {}",
                error_type.as_deref().unwrap_or("no type"),
                String::from_utf8_lossy(body)
            ))),
            Outcome::InitError(body) => Err(LambdaError::Init(String::from_utf8_lossy(body).into_owned())),
        }
    }

    pub fn from_payload(payload: &[u8]) -> Result<Self, LambdaError> {
        let v: Value = serde_json::from_slice(payload).map_err(|e| LambdaError::BadPayload(e.to_string()))?;
        let status = v["statusCode"]
            .as_u64()
            .and_then(|s| u16::try_from(s).ok())
            .ok_or_else(|| LambdaError::BadPayload(format!("no statusCode in {v}")))?;
        let headers = v["headers"].as_object().cloned().unwrap_or_default();
        let cookies = v["cookies"]
            .as_array()
            .map(|c| c.iter().filter_map(|c| c.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        let raw = v["body"].as_str().unwrap_or_default();
        let body = if v["isBase64Encoded"].as_bool().unwrap_or(false) {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(raw)
                .map_err(|e| LambdaError::BadPayload(format!("body is not base64: {e}")))?;
            String::from_utf8_lossy(&bytes).into_owned()
        } else {
            raw.to_owned()
        };
        Ok(Self { status, headers, cookies, body })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).and_then(Value::as_str)
    }

    /// The value the answer sets for cookie `name` (`Set-Cookie`), with its attributes.
    pub fn set_cookie(&self, name: &str) -> Option<&str> {
        let header = self.header("set-cookie").into_iter();
        header.chain(self.cookies.iter().map(String::as_str)).find(|c| c.starts_with(&format!("{name}=")))
    }

    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

// -------------------------------------------------------------- deployment

/// A fresh table and secrets prefix with a known platform admin key, as a
/// deployment looks after `sam deploy` and the first `ferry up`.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub table: String,
    pub secrets_prefix: String,
    pub admin_key: String,
}

/// The public URL [`Deployment::function_env`] gives the functions.
pub const PUBLIC_URL: &str = "https://connect.example";

impl Deployment {
    /// Creates the table (against `AWS_ENDPOINT_URL`, i.e. moto in tests) and
    /// installs the admin key through the same bootstrap `ferry up` runs.
    #[tracing::instrument(name = "deployment.create")]
    pub async fn create(label: &str) -> Result<Self, LambdaError> {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let table = format!("ferry-{label}-{nanos:x}");
        let secrets_prefix = format!("ferry-{label}-{nanos:x}");
        let admin_key = format!("ferry_platform_{:064x}", nanos ^ (u128::from(std::process::id()) << 64));
        let config = aws::load_sdk_config(None).await;
        let ddb = aws::dynamodb_client(&config);
        dynamodb::create_table(&ddb, &table).await.map_err(|e| LambdaError::Setup(format!("create table: {e}")))?;
        let hub = ferry_service::Hub::new(
            Arc::new(DynamoStore::new(ddb, table.clone())),
            Arc::new(SecretsManagerStore::new(aws::secretsmanager_client(&config), secrets_prefix.clone())),
        );
        hub.users().bootstrap(Some(&admin_key)).await.map_err(|e| LambdaError::Setup(format!("bootstrap: {e}")))?;
        Ok(Self { table, secrets_prefix, admin_key })
    }

    /// The function environment of the SAM template, plus the AWS endpoint
    /// and credentials of this process.
    pub fn function_env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("FERRY_TABLE".to_owned(), self.table.clone()),
            ("FERRY_SECRETS_PREFIX".to_owned(), self.secrets_prefix.clone()),
            // The tests' fake services listen on loopback over http.
            ("FERRY_ALLOW_PRIVATE_NETWORK".to_owned(), "true".to_owned()),
            // Required by the functions making links and webhook URLs (FunctionHub::with_public_url).
            ("FERRY_PUBLIC_URL".to_owned(), PUBLIC_URL.to_owned()),
        ];
        env.extend(aws_environment());
        env
    }
}
