//! The sample integrations in `integrations/`, each published from its folder
//! to a running host and run end to end against local stand-ins of the APIs
//! it talks to (`fakes`).

mod fakes;

use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry::host::Backend;
use reqwest::Method as M;
use serde_json::{json, Value};

use super::host_process::HostProcess;
use super::{call, start, Running};

fn manifest(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../integrations").join(name).join("PANDIUM.yaml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

struct Sample {
    hub: Running,
    c: reqwest::Client,
    job: String,
    _dir: tempfile::TempDir,
    files: PathBuf,
}

impl Sample {
    /// Publishes the sample, creates tenant `acme`, its connections (name →
    /// body) and a job with `configs`.
    async fn new(name: &str, connections: Vec<(&str, Value)>, configs: Value) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = dir.path().join("files");
        let hub = start(Backend::Embedded { data_dir: dir.path().to_path_buf() }).await;
        let c = reqwest::Client::new();
        let (b, k) = (&hub.base, &hub.key);
        let (s, v) = call(
            &c,
            M::POST,
            format!("{b}/v1/integrations/{name}/releases"),
            k,
            Some(json!({"manifest": manifest(name)})),
        )
        .await;
        assert_eq!(s, 201, "{v}");
        let (s, v) = call(&c, M::POST, format!("{b}/v1/tenants"), k, Some(json!({"id": "acme", "name": "Acme"}))).await;
        assert_eq!(s, 201, "{v}");
        let mut bound = serde_json::Map::new();
        for (connector, body) in connections {
            let (s, v) = call(&c, M::POST, format!("{b}/v1/tenants/acme/connections"), k, Some(body)).await;
            assert_eq!(s, 201, "{v}");
            bound.insert(connector.to_owned(), v["id"].clone());
        }
        let (s, v) = call(
            &c,
            M::POST,
            format!("{b}/v1/tenants/acme/jobs"),
            k,
            Some(json!({"name": name, "integration": name, "connections": bound, "configs": configs})),
        )
        .await;
        assert_eq!(s, 201, "{v}");
        let job = v["id"].as_str().expect("job id").to_owned();
        Self { hub, c, job, _dir: dir, files }
    }

    fn job_url(&self) -> String {
        format!("{}/v1/tenants/acme/jobs/{}", self.hub.base, self.job)
    }

    async fn run(&self, body: Value) -> Value {
        let (s, v) = call(&self.c, M::POST, format!("{}/runs", self.job_url()), &self.hub.key, Some(body)).await;
        assert_eq!(s, 202, "{v}");
        let id = v["run"]["id"].as_str().expect("run id").to_owned();
        for _ in 0..600 {
            let (_, run) = call(&self.c, M::GET, format!("{}/runs/{id}", self.job_url()), &self.hub.key, None).await;
            if !matches!(run["status"].as_str(), Some("queued" | "running")) {
                return run;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("run {id} did not finish");
    }

    async fn job(&self) -> Value {
        call(&self.c, M::GET, self.job_url(), &self.hub.key, None).await.1
    }

    async fn patch(&self, body: Value) -> (u16, Value) {
        call(&self.c, M::PATCH, self.job_url(), &self.hub.key, Some(body)).await
    }

    async fn logs(&self, run: &Value) -> String {
        let url = format!("{}/runs/{}/logs", self.job_url(), run["id"].as_str().unwrap_or(""));
        call(&self.c, M::GET, url, &self.hub.key, None).await.1.to_string()
    }
}

fn conn(name: &str, provider: &str, auth: &str, base_url: &str, credentials: Option<Value>) -> Value {
    let mut v = json!({"name": name, "connector": provider, "auth_kind": auth, "settings": {"base_url": base_url}});
    if let Some(c) = credentials {
        v["credentials"] = c;
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pokemon_of_the_day_fills_its_options_then_messages_the_chosen_slack_user() {
    let poke = fakes::pokeapi().await;
    let (slack, sent) = fakes::slack().await;
    let s = Sample::new(
        "pokemon-of-the-day",
        vec![
            ("pokeapi", conn("PokéAPI", "pokeapi", "none", &poke, None)),
            ("slack", conn("Slack", "slack", "oauth2", &slack, Some(json!({"access_token": fakes::SLACK_TOKEN})))),
        ],
        json!({}),
    )
    .await;

    // Pandium's flow: an init run fills the dynamic options first.
    let init = s.run(json!({"mode": "init"})).await;
    assert_eq!(init["status"], "succeeded", "{init} {}", s.logs(&init).await);
    let job = s.job().await;
    assert_eq!(job["dynamic_options"]["pokemon_types"], json!(["electric", "fire", "water"]), "{job}");
    assert_eq!(
        job["dynamic_options"]["slack_users"],
        json!([{"const": "U01", "title": "Ash Ketchum"}, {"const": "U02", "title": "Misty"}]),
        "bots and deleted users are filtered out, across both pages: {job}"
    );

    let (st, v) = s.patch(json!({"configs": {"pokemon_type": "dragon", "slack_user": "U01"}})).await;
    assert_eq!(st, 400, "a type outside the options is refused: {v}");
    let (st, v) = s.patch(json!({"configs": {"pokemon_type": "electric", "slack_user": "U02"}})).await;
    assert_eq!(st, 200, "{v}");

    let run = s.run(json!({})).await;
    assert_eq!(run["status"], "succeeded", "{run} {}", s.logs(&run).await);
    assert_eq!(run["counters"]["pokemon_of_the_day"]["written"], 1, "{run}");
    {
        let sent = sent.lock().expect("lock");
        assert_eq!(sent.bad_auth, 0);
        assert_eq!(sent.posted, vec![json!({"channel": "U02", "text": "Your Pokémon of the day: Pikachu!"})]);
    }
    assert!(!s.logs(&run).await.contains(fakes::SLACK_TOKEN), "no token in the logs");
    s.hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_contacts_land_in_one_complete_csv_file() {
    let hubspot = fakes::hubspot(250).await;
    let s = Sample::new(
        "hubspot-contacts-to-csv",
        vec![("hubspot", conn("HubSpot", "hubspot", "bearer", &hubspot, Some(json!({"token": fakes::HUBSPOT_TOKEN}))))],
        json!({"folder": "exports"}),
    )
    .await;
    let run = s.run(json!({})).await;
    assert_eq!(run["status"], "succeeded", "{run} {}", s.logs(&run).await);
    assert_eq!(
        run["counters"]["contacts"],
        json!({"read": 250, "written": 250, "skipped": 0, "failed": 0, "dead_lettered": 0})
    );

    let folder = s.files.join("acme/exports");
    let written: Vec<PathBuf> = std::fs::read_dir(&folder)
        .unwrap_or_else(|e| panic!("{}: {e}", folder.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    assert_eq!(written.len(), 1, "one file, no leftovers: {written:?}");
    let name = written[0].file_name().and_then(|n| n.to_str()).unwrap_or("").to_owned();
    assert!(name.starts_with("contacts-") && name.ends_with(&format!("{}.csv", run["id"].as_str().unwrap_or(""))));
    let mut reader = csv::Reader::from_path(&written[0]).expect("csv");
    assert_eq!(
        reader.headers().expect("headers").iter().collect::<Vec<_>>(),
        ["id", "email", "first_name", "last_name", "phone", "stage", "updated_at"]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    assert_eq!(rows.len(), 250);
    assert_eq!(&rows[0][0], "1000");
    assert_eq!(&rows[0][2], "", "a missing first name gets the default");
    assert_eq!(&rows[3][3], "Last, \"3\"", "commas and quotes survive CSV quoting");
    assert_eq!(&rows[249][1], "contact249@example.com");
    let ids: std::collections::HashSet<&str> = rows.iter().map(|r| r.get(0).unwrap_or("")).collect();
    assert_eq!(ids.len(), 250, "every contact exactly once");

    // A wrong token: the run fails as an integration problem and writes no file.
    let conn = s.job().await["connections"]["hubspot"].as_str().unwrap_or("").to_owned();
    let (st, v) = call(
        &s.c,
        M::PUT,
        format!("{}/v1/tenants/acme/connections/{conn}/credentials", s.hub.base),
        &s.hub.key,
        Some(json!({"token": "wrong"})),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let failed = s.run(json!({})).await;
    assert_eq!(failed["status"], "failed_integration", "{failed}");
    assert_eq!(std::fs::read_dir(&folder).expect("dir").count(), 1, "no partial file from the failed run");
    s.hub.shutdown().await;
}

async fn orders_sample(
    orders: usize,
) -> (Sample, std::sync::Arc<std::sync::Mutex<fakes::Shop>>, std::sync::Arc<std::sync::Mutex<fakes::Warehouse>>) {
    let (shop, shop_state) = fakes::shop().await;
    let (wh, wh_state) = fakes::warehouse().await;
    {
        let mut shop = shop_state.lock().expect("lock");
        for i in 0..orders as u64 {
            shop.put_order(i + 1, 100.0 + (i as f64) * 7.5, &minute(i));
        }
    }
    let s = Sample::new(
        "orders-to-warehouse",
        vec![
            ("shop", conn("Shop", "shop", "api_key", &shop, Some(json!({"api_key": fakes::SHOP_KEY})))),
            (
                "warehouse",
                conn(
                    "Warehouse",
                    "warehouse",
                    "basic",
                    &wh,
                    Some(json!({"username": fakes::WAREHOUSE_USER, "password": fakes::WAREHOUSE_PASSWORD})),
                ),
            ),
        ],
        json!({"warehouse_code": "BER-1", "priority_over": 500}),
    )
    .await;
    (s, shop_state, wh_state)
}

/// Order update times, an hour apart from 2024-05-01 (beyond the 10-minute lookback).
fn minute(i: u64) -> String {
    (chrono::DateTime::parse_from_rfc3339("2024-05-01T00:00:00Z").expect("time") + chrono::Duration::hours(i as i64))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_sync_incrementally_to_the_warehouse_mapped_and_without_duplicates() {
    let (s, shop, wh) = orders_sample(120).await;
    let run = s.run(json!({})).await;
    assert_eq!(run["status"], "succeeded", "{run} {}", s.logs(&run).await);
    assert_eq!(run["counters"]["orders"]["written"], 120, "{run}");
    {
        let w = wh.lock().expect("lock");
        assert_eq!(w.shipments.len(), 120);
        assert_eq!(w.requests, 5, "batches of 25");
        let first = &w.shipments["1"];
        assert_eq!(first["reference"], "ORD-5001");
        assert_eq!(first["order_id"], "1", "coerced to a string");
        assert_eq!(first["warehouse"], "BER-1");
        assert_eq!(first["recipient"], "Cus Tomer1");
        assert_eq!(first["country"], "DE");
        assert_eq!(first["total"], 100.0, "coerced to a number");
        assert_eq!(first["priority"], "standard");
        assert_eq!(first["gift"], false);
        assert!(first.get("gift_note").is_none(), "conditional fields only when the condition holds");
        let third = &w.shipments["3"];
        assert_eq!(third["country"], "US", "the default for a missing country");
        let fifth = &w.shipments["5"];
        assert_eq!(fifth["gift_note"], "Happy birthday!");
        let big = &w.shipments["100"];
        assert_eq!(big["priority"], "express", "total {} is over 500", big["total"]);
    }
    let cursor = s.job().await["state"]["orders"]["cursor"].clone();
    assert_eq!(cursor, json!(minute(119)), "the cursor is the newest order written");

    // Two orders change and one is new: the next run asks only for what changed
    // since the cursor (minus the lookback) and sends just those.
    {
        let mut shop = shop.lock().expect("lock");
        shop.put_order(7, 999.0, &minute(200));
        shop.put_order(50, 12.5, &minute(201));
        shop.put_order(121, 42.0, &minute(202));
        shop.since_seen.clear();
    }
    let run = s.run(json!({})).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(shop.lock().expect("lock").since_seen, vec![Some("2024-05-05T22:50:00Z".to_owned())]);
    {
        let w = wh.lock().expect("lock");
        assert_eq!(w.shipments.len(), 121);
        assert_eq!(w.shipments["7"]["total"], 999.0);
        assert_eq!(w.shipments["7"]["priority"], "express");
        assert_eq!(w.shipments["50"]["total"], 12.5);
        assert_eq!(w.shipments["121"]["reference"], "ORD-5121");
        // Unchanged orders were not sent again; the one at the cursor is re-read
        // through the lookback window and absorbed by the upsert.
        assert_eq!(w.applied.get("2@107.5"), Some(&1));
        assert_eq!(w.requests, 6, "one more batch");
    }
    assert_eq!(s.job().await["state"]["orders"]["cursor"], json!(minute(202)));
    s.hub.shutdown().await;
}

/// Kills the host at random moments of a run, many times, restarting it each
/// time; orders keep changing in between. In the end every order's latest
/// version is in the warehouse, and no version was applied twice: the cursor
/// never passed an unwritten record, and re-sent records repeat their
/// idempotency keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_host_at_random_points_loses_nothing_and_duplicates_nothing() {
    const TRIALS: u64 = 12;
    let (shop, shop_state) = fakes::shop().await;
    let (wh, wh_state) = fakes::warehouse().await;
    wh_state.lock().expect("lock").delay_ms = 3;
    {
        let mut s = shop_state.lock().expect("lock");
        for i in 0..400u64 {
            s.put_order(i + 1, 10.0 + i as f64, &minute(i));
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let key = format!("ferry_platform_{}", "cd".repeat(32));
    let c = reqwest::Client::new();
    let mut host = HostProcess::start(dir.path(), &key).await;
    let b = host.base.clone();
    let name = "orders-to-warehouse";
    let (s, v) = call(
        &c,
        M::POST,
        format!("{b}/v1/integrations/{name}/releases"),
        &key,
        Some(json!({"manifest": manifest(name)})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    call(&c, M::POST, format!("{b}/v1/tenants"), &key, Some(json!({"id": "acme", "name": "Acme"}))).await;
    let mut bound = serde_json::Map::new();
    for (connector, body) in [
        ("shop", conn("Shop", "shop", "api_key", &shop, Some(json!({"api_key": fakes::SHOP_KEY})))),
        (
            "warehouse",
            conn(
                "Warehouse",
                "warehouse",
                "basic",
                &wh,
                Some(json!({"username": fakes::WAREHOUSE_USER, "password": fakes::WAREHOUSE_PASSWORD})),
            ),
        ),
    ] {
        let (s, v) = call(&c, M::POST, format!("{b}/v1/tenants/acme/connections"), &key, Some(body)).await;
        assert_eq!(s, 201, "{v}");
        bound.insert(connector.to_owned(), v["id"].clone());
    }
    let (s, v) = call(
        &c,
        M::POST,
        format!("{b}/v1/tenants/acme/jobs"),
        &key,
        Some(json!({"name": name, "integration": name, "connections": bound, "configs": {"warehouse_code": "BER-1"}})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let job = v["id"].as_str().expect("job").to_owned();

    // A cheap deterministic generator: the kill points differ per trial but every CI run sees the same ones.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut killed_mid_run = 0;
    for trial in 0..TRIALS {
        let b = host.base.clone();
        // Batches of one: each record's idempotency key is its batch's key.
        let (s, v) =
            call(&c, M::POST, format!("{b}/v1/tenants/acme/jobs/{job}/runs"), &key, Some(json!({"batch_size": 1})))
                .await;
        assert_eq!(s, 202, "trial {trial}: {v}");
        let run = v["run"]["id"].as_str().unwrap_or("").to_owned();
        tokio::time::sleep(Duration::from_millis(50 + next() % 700)).await;
        let (_, r) = call(&c, M::GET, format!("{b}/v1/tenants/acme/jobs/{job}/runs/{run}"), &key, None).await;
        if r["status"] == "running" {
            killed_mid_run += 1;
        }
        host.kill();
        // Orders change while the host is down.
        {
            let mut s = shop_state.lock().expect("lock");
            for _ in 0..5 {
                let id = 1 + next() % 400;
                let t = 1000 + trial * 10 + next() % 10;
                s.put_order(id, 2000.0 + (next() % 10_000) as f64 / 100.0, &minute(t));
            }
        }
        host = HostProcess::start(dir.path(), &key).await;
        let (_, r) = call(&c, M::GET, format!("{}/v1/tenants/acme/jobs/{job}/runs/{run}", host.base), &key, None).await;
        assert!(
            matches!(r["status"].as_str(), Some("succeeded" | "failed_platform")),
            "after a restart the killed run is finished or recorded as interrupted: {r}"
        );
    }
    assert!(killed_mid_run >= TRIALS / 2, "most kills should strike mid-run ({killed_mid_run} of {TRIALS})");

    // A last run, left to finish.
    let b = host.base.clone();
    let (_, v) =
        call(&c, M::POST, format!("{b}/v1/tenants/acme/jobs/{job}/runs"), &key, Some(json!({"batch_size": 1}))).await;
    let run = v["run"]["id"].as_str().unwrap_or("").to_owned();
    let mut last = Value::Null;
    for _ in 0..1200 {
        let (_, r) = call(&c, M::GET, format!("{b}/v1/tenants/acme/jobs/{job}/runs/{run}"), &key, None).await;
        if !matches!(r["status"].as_str(), Some("queued" | "running")) {
            last = r;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(last["status"], "succeeded", "{last}");
    host.kill();

    let shop = shop_state.lock().expect("lock");
    let wh = wh_state.lock().expect("lock");
    for (id, order) in &shop.orders {
        let shipped = wh.shipments.get(&id.to_string()).unwrap_or_else(|| panic!("order {id} was lost"));
        let total: f64 = order["total"].as_str().and_then(|t| t.parse().ok()).unwrap_or(f64::NAN);
        assert_eq!(shipped["total"].as_f64(), Some(total), "order {id} has its latest version");
    }
    let twice: Vec<(&String, &u32)> = wh.applied.iter().filter(|(_, &n)| n > 1).collect();
    assert!(twice.is_empty(), "versions applied more than once: {twice:?}");
}
