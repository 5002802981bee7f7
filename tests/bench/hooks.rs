//! `ferry-bench hooks`: the webhook intake under load. Serves the embedded
//! hub (SQLite, file secrets, file store in a temp dir; the same adapters as
//! `ferry up`) with the intake and admin API routers on a real TCP listener,
//! sends N Standard Webhooks deliveries signed with the hook's secret (plus R
//! redeliveries of some of them) from C concurrent connections, then reads
//! the store back and checks every delivery was stored exactly once.
//!
//! Webhook runs are off (`TriggerMode::Off`): a run would consume the
//! deliveries before they could be counted, and would compete with the intake
//! for the CPU. The client runs in the same process, so on a 2-core machine
//! it takes its share of the cores too. It is a minimal HTTP/1.1 client (one
//! keep-alive connection per worker, like `wrk`) rather than reqwest, whose
//! per-request machinery (URL parsing, pool, redirect and retry layers) cost
//! about as much CPU as the intake itself and so measured mostly the client.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use ferry::host::{build_hub, Backend};
use ferry_core::ports::{Index, Query};
use ferry_http::intake::TriggerMode;
use ferry_service::bootstrap::Bootstrap;
use ferry_service::config::Config;
use ferry_service::hooks::verify::{standard_key, standard_signature};
use ferry_service::repo::{keys, records};
use ferry_service::Hub;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const MANIFEST: &str = r#"
version: 1.0
name: bench-orders
connectors:
  shop:
    provider: shop
    auth: none
    base_url: https://shop.example
    required: false
flows:
  - name: orders
    triggers: [webhook]
    source: {type: webhook, records: orders}
    mapping: {fields: {id: {from: id}, total: {from: total}}}
    target: {type: file, format: jsonl, path: 'orders/{{ run.id }}.jsonl'}
webhooks:
  verify: {type: standard_webhooks}
  flow: orders
  connector: shop
"#;

pub struct Args {
    pub deliveries: usize,
    pub redeliveries: usize,
    pub concurrency: usize,
}

/// What one request got back.
struct Answer {
    index: usize,
    status: u16,
    latency: Duration,
}

pub async fn run(args: Args, profile: &str) -> anyhow::Result<String> {
    ensure!(args.deliveries > 0 && args.concurrency > 0, "--deliveries and --concurrency must be at least 1");
    let dir = tempfile::tempdir()?;
    let hub = build_hub(&Backend::Embedded { data_dir: dir.path().to_owned() }, Config::default()).await?;
    let Bootstrap::Generated(admin) = hub.users().bootstrap(None).await? else {
        bail!("a fresh store has no admin key yet")
    };

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let base = format!("http://{addr}");
    let app = ferry_http::intake::router(hub.clone(), TriggerMode::Off).merge(ferry_http::api::router(hub.clone()));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    // Setup only: the deliveries go through [`Connection`].
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
    let (job, hook, secret) = setup(&client, &base, &admin).await?;
    eprintln!(
        "ferry-bench: {} deliveries + {} redeliveries to {base}/hooks/{hook} from {} connections",
        args.deliveries, args.redeliveries, args.concurrency
    );

    // Request i < N is delivery i; the redeliveries repeat every k-th delivery,
    // interleaved so a redelivery may well arrive before (or with) its original.
    let total = args.deliveries + args.redeliveries;
    let step = (args.deliveries / args.redeliveries.max(1)).max(1);
    let n = args.deliveries;
    let target = move |i: usize| if i < n { i } else { ((i - n) * step) % n };
    let mut order: Vec<usize> = (0..total).collect();
    interleave(&mut order, args.deliveries);
    let order = Arc::new(order);

    let key = Arc::new(standard_key(&secret));
    let path = Arc::new(format!("/hooks/{hook}"));
    let next = Arc::new(AtomicUsize::new(0));
    // Connect first, so that the measurement starts with every connection open.
    let mut connections = Vec::with_capacity(args.concurrency);
    for _ in 0..args.concurrency {
        connections.push(Connection::open(addr).await?);
    }
    let load = load_average();
    let cpu_before = process_cpu();
    let written_before = bytes_written();
    let started = Instant::now();
    let mut workers = Vec::new();
    for mut conn in connections {
        let (key, path, next, order) = (key.clone(), path.clone(), next.clone(), order.clone());
        workers.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            loop {
                let slot = next.fetch_add(1, Ordering::Relaxed);
                let Some(&i) = order.get(slot) else { return anyhow::Ok(answers) };
                let index = target(i);
                let id = format!("msg_{index}");
                let body = json!({"orders": [{"id": index, "total": 5}]}).to_string();
                let ts = chrono::Utc::now().timestamp();
                let sig = standard_signature(&key, &id, ts, body.as_bytes());
                let sent = Instant::now();
                let status = conn
                    .post(
                        &path,
                        &[("webhook-id", &id), ("webhook-timestamp", &ts.to_string()), ("webhook-signature", &sig)],
                        body.as_bytes(),
                    )
                    .await
                    .with_context(|| format!("delivery {id}"))?;
                answers.push(Answer { index, status, latency: sent.elapsed() });
            }
        }));
    }
    let mut answers = Vec::with_capacity(total);
    for w in workers {
        answers.extend(w.await??);
    }
    let wall = started.elapsed();
    let cpu = process_cpu().zip(cpu_before).map(|(after, before)| after.saturating_sub(before));
    // Read before the check below, whose reads write nothing but whose end drops the store (a last checkpoint).
    let written = bytes_written().zip(written_before).map(|(after, before)| after.saturating_sub(before));
    server.abort();

    check(&hub, &job, &answers, args.deliveries).await?;

    let mut latencies: Vec<Duration> = answers.iter().map(|a| a.latency).collect();
    latencies.sort_unstable();
    let pct =
        |p: f64| latencies[(((p / 100.0) * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len()) - 1];
    let rate = total as f64 / wall.as_secs_f64();
    Ok(format!(
        "Webhook intake: {} signed deliveries + {} redeliveries, {} connections, `{profile}` build, {} ({} CPUs), \
         embedded store (SQLite), client in the same process.\n\n\
         | requests | wall time | requests/s | new deliveries/s | p50 | p90 | p99 | max | CPU per request | written per request | stored exactly once |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n\
         | {total} | {:.2} s | {rate:.0} | {:.0} | {} | {} | {} | {} | {} | {} | yes ({} of {}) |\n\n\
         Load average (1 min) when the run started: {load}. CPU per request: user + system time of the whole \
         process (server and client, every thread) during the run, divided by the requests. Written per request: \
         bytes the process caused to be written to storage (`write_bytes` of `/proc/self/io`: the SQLite WAL and \
         database file) during the run, divided by the requests.\n",
        args.deliveries,
        args.redeliveries,
        args.concurrency,
        crate::cpu_model(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        wall.as_secs_f64(),
        args.deliveries as f64 / wall.as_secs_f64(),
        crate::ms(Some(pct(50.0))),
        crate::ms(Some(pct(90.0))),
        crate::ms(Some(pct(99.0))),
        crate::ms(latencies.last().copied()),
        cpu.map(|c| format!("{:.0} µs", c.as_secs_f64() * 1e6 / total as f64)).unwrap_or_else(|| "–".into()),
        written.map(|w| format!("{:.1} KB", w as f64 / 1e3 / total as f64)).unwrap_or_else(|| "–".into()),
        args.deliveries,
        args.deliveries,
    ))
}

/// User + system CPU time of this process so far (every thread), from
/// `/proc/self/stat` (Linux only; `None` elsewhere).
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may contain spaces) in parentheses.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux architecture Ferry builds for.
    Some(Duration::from_millis(ticks * 10))
}

/// Bytes this process caused to be written to storage so far (`write_bytes`
/// of `/proc/self/io`; Linux only, `None` elsewhere). Unlike time, it does not
/// depend on what else the machine is doing.
fn bytes_written() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    io.lines().find_map(|l| l.strip_prefix("write_bytes:")).and_then(|v| v.trim().parse().ok())
}

/// The 1-minute load average, so a table shows whether the machine was busy.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

/// Spreads the redeliveries (at the end of `order`) evenly among the deliveries.
fn interleave(order: &mut Vec<usize>, deliveries: usize) {
    let redeliveries: Vec<usize> = order.split_off(deliveries);
    if redeliveries.is_empty() {
        return;
    }
    let every = (deliveries / redeliveries.len()).max(1);
    let mut out = Vec::with_capacity(order.len() + redeliveries.len());
    let mut rest = redeliveries.into_iter();
    for (n, i) in order.drain(..).enumerate() {
        out.push(i);
        if n % every == every - 1 {
            out.extend(rest.next());
        }
    }
    out.extend(rest);
    *order = out;
}

/// A tenant, the integration, a job and its hook, through the admin API.
async fn setup(client: &reqwest::Client, base: &str, admin: &str) -> anyhow::Result<(String, String, String)> {
    let call = |path: &str, method: reqwest::Method, body: Value| {
        let req = client.request(method, format!("{base}{path}")).bearer_auth(admin).json(&body);
        async move {
            let r = req.send().await?;
            let status = r.status();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            ensure!(status.is_success(), "{status}: {body}");
            anyhow::Ok(body)
        }
    };
    call("/v1/tenants", reqwest::Method::POST, json!({"id": "bench", "name": "Bench"})).await.context("tenant")?;
    call(
        "/v1/integrations/bench-orders/releases",
        reqwest::Method::POST,
        json!({"manifest": MANIFEST, "file": "bench-orders/PANDIUM.yaml"}),
    )
    .await
    .context("publish")?;
    let job =
        call("/v1/tenants/bench/jobs", reqwest::Method::POST, json!({"name": "orders", "integration": "bench-orders"}))
            .await
            .context("job")?;
    let job = job["id"].as_str().context("job id")?.to_owned();
    let hook = call(&format!("/v1/tenants/bench/jobs/{job}/webhook"), reqwest::Method::PUT, json!({}))
        .await
        .context("webhook")?;
    let path = hook["path"].as_str().context("hook path")?;
    let secret = hook["secret"].as_str().context("hook secret")?.to_owned();
    Ok((job, path.trim_start_matches("/hooks/").to_owned(), secret))
}

/// Every delivery acknowledged as new exactly once (202), every other answer
/// a duplicate (200), and the store holds exactly one delivery per id.
async fn check(hub: &Hub, job: &str, answers: &[Answer], deliveries: usize) -> anyhow::Result<()> {
    let mut accepted = vec![0usize; deliveries];
    for a in answers {
        match a.status {
            202 => accepted[a.index] += 1,
            200 => {}
            other => bail!("delivery msg_{} was answered {other}", a.index),
        }
    }
    if let Some((i, n)) = accepted.iter().enumerate().find(|(_, n)| **n != 1) {
        bail!("delivery msg_{i} was accepted as new {n} times");
    }

    let mut stored: HashMap<String, usize> = HashMap::new();
    let mut after = None;
    loop {
        let q = Query::partition(Index::Primary, keys::deliveries_partition("bench", job))
            .prefix("Q#")
            .limit(1000)
            .after(after);
        let page = hub.store.query(&q).await?;
        for item in page.items {
            let d = records::from_item::<ferry_service::hooks::service::Delivery>(item)?.value;
            *stored.entry(d.delivery_id).or_default() += 1;
        }
        after = page.next;
        if after.is_none() {
            break;
        }
    }
    let total: usize = stored.values().sum();
    ensure!(total == deliveries, "the store holds {total} deliveries, {deliveries} were sent");
    for i in 0..deliveries {
        let n = stored.get(&format!("msg_{i}")).copied().unwrap_or(0);
        ensure!(n == 1, "delivery msg_{i} is stored {n} times");
    }
    eprintln!("ferry-bench: all {deliveries} deliveries stored exactly once");
    Ok(())
}

/// One keep-alive HTTP/1.1 connection: writes a request, reads its response.
/// Just enough HTTP for the intake's answers (a status line, headers and a
/// `content-length` body); anything else is an error, never a guess.
struct Connection {
    stream: TcpStream,
    host: String,
    request: Vec<u8>,
    response: Vec<u8>,
}

impl Connection {
    async fn open(addr: std::net::SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr).await.with_context(|| format!("cannot connect to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            host: addr.to_string(),
            request: Vec::with_capacity(1024),
            response: Vec::with_capacity(1024),
        })
    }

    /// POSTs a JSON body; returns the status once the whole response is read.
    async fn post(&mut self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> anyhow::Result<u16> {
        use std::io::Write as _;
        self.request.clear();
        write!(
            self.request,
            "POST {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
            self.host,
            body.len()
        )?;
        for (name, value) in headers {
            write!(self.request, "{name}: {value}\r\n")?;
        }
        self.request.extend_from_slice(b"\r\n");
        self.request.extend_from_slice(body);
        self.stream.write_all(&self.request).await?;

        self.response.clear();
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut parsed = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(head) = parsed.parse(&self.response)? {
                let status = parsed.code.context("a response without a status")?;
                let mut length = None;
                for h in parsed.headers.iter() {
                    if h.name.eq_ignore_ascii_case("content-length") {
                        length = Some(std::str::from_utf8(h.value)?.trim().parse::<usize>()?);
                    } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                        bail!("the response is not delimited by content-length");
                    }
                }
                let length = length.context("a response without content-length")?;
                while self.response.len() < head + length {
                    self.read_more().await?;
                }
                ensure!(self.response.len() == head + length, "bytes after the response to a single request");
                return Ok(status);
            }
            self.read_more().await?;
        }
    }

    async fn read_more(&mut self) -> anyhow::Result<()> {
        let mut chunk = [0u8; 4096];
        let n = self.stream.read(&mut chunk).await?;
        ensure!(n > 0, "the server closed the connection");
        self.response.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}
