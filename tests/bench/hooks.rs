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
//! it takes its share of the cores too.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use ferry::host::{build_hub, Backend};
use ferry_shared::hooks::verify::{standard_key, standard_signature};
use ferry_shared::hooks::TriggerMode;
use ferry_shared::ports::{Index, Query};
use ferry_shared::repo::{keys, records};
use ferry_shared::service::bootstrap::Bootstrap;
use ferry_shared::Hub;
use serde_json::{json, Value};

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
    let hub = build_hub(&Backend::Embedded { data_dir: dir.path().to_owned() }).await?;
    let Bootstrap::Generated(admin) = hub.bootstrap(None).await? else { bail!("a fresh store has no admin key yet") };

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let app = ferry_shared::hooks::router(hub.clone(), TriggerMode::Off).merge(ferry_shared::api::router(hub.clone()));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let client =
        reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).timeout(Duration::from_secs(60)).build()?;
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
    let url = Arc::new(format!("{base}/hooks/{hook}"));
    let next = Arc::new(AtomicUsize::new(0));
    let answers = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let (client, key, url, next, answers, order) =
            (client.clone(), key.clone(), url.clone(), next.clone(), answers.clone(), order.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let slot = next.fetch_add(1, Ordering::Relaxed);
                let Some(&i) = order.get(slot) else { return anyhow::Ok(()) };
                let index = target(i);
                let id = format!("msg_{index}");
                let body = json!({"orders": [{"id": index, "total": 5}]}).to_string();
                let ts = chrono::Utc::now().timestamp();
                let sig = standard_signature(&key, &id, ts, body.as_bytes());
                let sent = Instant::now();
                let r = client
                    .post(url.as_str())
                    .header("content-type", "application/json")
                    .header("webhook-id", &id)
                    .header("webhook-timestamp", ts.to_string())
                    .header("webhook-signature", sig)
                    .body(body)
                    .send()
                    .await
                    .with_context(|| format!("delivery {id} failed to send"))?;
                let status = r.status().as_u16();
                r.bytes().await?;
                let latency = sent.elapsed();
                answers.lock().unwrap_or_else(|p| p.into_inner()).push(Answer { index, status, latency });
            }
        }));
    }
    for w in workers {
        w.await??;
    }
    let wall = started.elapsed();
    server.abort();

    let answers = std::mem::take(&mut *answers.lock().unwrap_or_else(|p| p.into_inner()));
    check(&hub, &job, &answers, args.deliveries).await?;

    let mut latencies: Vec<Duration> = answers.iter().map(|a| a.latency).collect();
    latencies.sort_unstable();
    let pct =
        |p: f64| latencies[(((p / 100.0) * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len()) - 1];
    let rate = total as f64 / wall.as_secs_f64();
    Ok(format!(
        "Webhook intake: {} signed deliveries + {} redeliveries, {} connections, `{profile}` build, {} ({} CPUs), \
         embedded store (SQLite), client in the same process.\n\n\
         | requests | wall time | requests/s | new deliveries/s | p50 | p90 | p99 | max | stored exactly once |\n\
         |---|---|---|---|---|---|---|---|---|\n\
         | {total} | {:.2} s | {rate:.0} | {:.0} | {} | {} | {} | {} | yes ({} of {}) |\n",
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
        args.deliveries,
        args.deliveries,
    ))
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
            let d = records::from_item::<ferry_shared::hooks::service::Delivery>(item)?.value;
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
