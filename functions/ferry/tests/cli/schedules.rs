//! `ferry schedules reconcile` against EventBridge Scheduler (moto's server,
//! started by `tests/run`): a job created through `ferry up --backend aws`
//! gets its schedule from the reconcile, and a second reconcile changes nothing.

use std::process::{Command, Output};

use serde_json::Value;

use super::{http, Hub};

fn emulator() -> bool {
    let configured = std::env::var("AWS_ENDPOINT_URL").is_ok_and(|v| !v.trim().is_empty());
    if !configured && std::env::var("FERRY_REQUIRE_AWS").is_ok_and(|v| v.trim() == "1") {
        panic!("FERRY_REQUIRE_AWS=1 but AWS_ENDPOINT_URL is not set: start moto's server (tests/run does)");
    }
    configured
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{prefix}{nanos:x}{:x}", std::process::id())
}

fn reconcile(table: &str, group_prefix: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["schedules", "reconcile", "--table", table, "--group-prefix", group_prefix])
        .args(["--target-arn", "arn:aws:lambda:us-east-1:123456789012:function:ferry-sync"])
        .args(["--role-arn", "arn:aws:iam::123456789012:role/ferry-scheduler"])
        .args(extra)
        .output()
        .expect("run ferry schedules reconcile")
}

fn report(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("--json prints the report ({e}): {stdout}"))
}

#[test]
fn reconcile_installs_the_schedules_the_store_holds_and_then_changes_nothing() {
    if !emulator() {
        eprintln!("skipping: AWS emulator not configured");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let table = unique("ferry-cli");
    // Group prefixes are at most 24 characters.
    let groups: String = unique("c").chars().take(24).collect();
    let key = format!("ferry_platform_{}", "5c".repeat(32));
    let hub = Hub::start(
        dir.path(),
        &[("FERRY_BOOTSTRAP_API_KEY", &key)],
        &["--backend", "aws", "--create-table", "--table", &table],
    );
    let port = hub.base.rsplit(':').next().unwrap_or_default().to_owned();
    let manifest = "version: 1.0\nname: hooks\nconnectors:\n  dst: {auth: none, base_url: 'http://127.0.0.1:9', required: false}\n\
                    webhooks: {verify: {type: standard_webhooks}, flow: orders}\n\
                    schedule: {default: {preset: daily, at: '06:30', timezone: Europe/Paris}}\n\
                    flows:\n  - name: orders\n    triggers: [webhook]\n    source: {type: webhook}\n    target: {type: http, connector: dst, path: /orders}\n";
    let body = serde_json::json!({"manifest": manifest}).to_string();
    let published = http(&port, "POST", "/v1/integrations/hooks/releases", Some(&key), Some(&body));
    assert!(published.starts_with("HTTP/1.1 201"), "{published}");
    assert!(http(&port, "POST", "/v1/tenants", Some(&key), Some(r#"{"id":"acme","name":"Acme"}"#))
        .starts_with("HTTP/1.1 201"));
    let created = http(
        &port,
        "POST",
        "/v1/tenants/acme/jobs",
        Some(&key),
        Some(r#"{"name":"orders","integration":"hooks","configs":{}}"#),
    );
    assert!(created.starts_with("HTTP/1.1 201"), "{created}");
    assert!(created.contains("daily at 06:30, Europe/Paris time"), "{created}");
    let job = created.split("\"id\":\"").nth(1).and_then(|s| s.split('"').next()).expect("job id").to_owned();
    let (status, _, _) = hub.stop();
    assert!(status.success());

    let dry = report(&reconcile(&table, &groups, &["--dry-run", "--json"]));
    assert_eq!(dry["created"], serde_json::json!([format!("acme/{job}")]), "{dry}");
    let applied = report(&reconcile(&table, &groups, &["--json"]));
    assert_eq!(applied["created"], serde_json::json!([format!("acme/{job}")]), "a dry run changes nothing: {applied}");
    let again = report(&reconcile(&table, &groups, &["--json"]));
    assert_eq!(again["created"], serde_json::json!([]), "{again}");
    assert_eq!(again["updated"], serde_json::json!([]), "{again}");
    assert_eq!(again["removed"], serde_json::json!([]), "{again}");
    assert_eq!(again["unchanged"], 1, "{again}");

    let text = reconcile(&table, &groups, &[]);
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(stdout.contains("0 created, 0 updated, 0 removed, 1 unchanged"), "{stdout}");
}
