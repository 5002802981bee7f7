//! Process integrations run sandboxed: a program that goes looking for the
//! hub's secrets (its data directory, its `/proc/<pid>/environ`, services on
//! its loopback) finds none of them, and it does not run as the hub's user.

use std::time::Duration;

use axum::routing::get;
use ferry_shared::engine::sandbox::{SandboxMode, SANDBOX_UID};
use ferry_shared::service::Settings;
use serde_json::json;

use crate::support::app::TestApp;
use crate::support::jobs::{serve, Conn, JobUnderTest};
use crate::support::sandbox::available_or_skip;

const MANIFEST: &str = r#"
version: 0.5
name: probe
base: debian:12
run: sh probe.sh
connectors:
  - src
configs:
  schema:
    type: object
    properties:
      data_dir: {type: string}
      hub_pid: {type: string}
      loopback_port: {type: string}
"#;

/// Reports on stderr what it could reach: `<what>=unreadable` or the content.
const PROBE: &str = r#"
echo "uid=$(id -u)" >&2
for f in master.key secrets.db ferry.db; do
  if content=$(base64 -w0 < "$PAN_CFG_DATA_DIR/$f" 2>/dev/null); then
    echo "data:$f=readable:$(printf %s "$content" | head -c 400)" >&2
  else
    echo "data:$f=unreadable" >&2
  fi
done
for pid in "$PAN_CFG_HUB_PID" 1; do
  if env=$(tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null); then
    echo "environ:$pid=readable" >&2
    printf '%s\n' "$env" | sed 's/^/  env: /' >&2
  else
    echo "environ:$pid=unreadable" >&2
  fi
done
python3 - "$PAN_CFG_LOOPBACK_PORT" >&2 <<'PY'
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3)
    s.sendall(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
    print("loopback=reachable:" + s.recv(4096).decode(errors="replace").replace("\r\n", " "))
except OSError as e:
    print("loopback=unreachable")
PY
"#;

/// What only the hub's loopback service answers.
const INTERNAL: &str = "hub-internal-only-page";

struct Probe {
    app_dir: std::path::PathBuf,
    logs: Vec<String>,
    status: String,
    _code: tempfile::TempDir,
    _job: JobUnderTest,
}

async fn probe(allow_private_network: bool) -> Probe {
    let code = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(code.path().join("probe")).expect("mkdir");
    std::fs::write(code.path().join("probe/probe.sh"), PROBE).expect("script");
    let settings = Settings {
        integrations_dir: Some(code.path().to_owned()),
        process_timeout: Duration::from_secs(30),
        allow_private_network,
        process_sandbox: SandboxMode::Bubblewrap,
        ..Default::default()
    };
    let app = TestApp::embedded_with_exact_settings(settings).await;
    let app_dir = app.dir.path().to_owned();
    for f in ["master.key", "secrets.db", "ferry.db"] {
        assert!(app_dir.join(f).is_file(), "the hub has no {f} to protect: the probe would prove nothing");
    }
    let internal = serve(axum::Router::new().route("/", get(|| async { INTERNAL }))).await;
    let port = internal.rsplit(':').next().expect("port").to_owned();
    let job = JobUnderTest::new(
        app,
        "probe",
        MANIFEST,
        &[Conn {
            name: "src",
            provider: "src",
            auth: "api_key",
            // Never contacted (the program is the integration); https, so the strict policy takes it.
            base_url: "https://api.example.com",
            credentials: Some(json!({"api_key": "sk-probe-7c1f0"})),
        }],
        json!({"data_dir": app_dir.display().to_string(), "hub_pid": std::process::id().to_string(),
               "loopback_port": port}),
    )
    .await;
    let run = job.run(json!({})).await;
    let logs = job.logs(run["id"].as_str().expect("id")).await;
    Probe { app_dir, logs, status: run["status"].as_str().unwrap_or("").to_owned(), _code: code, _job: job }
}

fn has(lines: &[String], needle: &str) -> bool {
    lines.iter().any(|l| l.contains(needle))
}

/// `NAME=value` of every variable of this (the hub's) process the program
/// must not learn: all but the few basics it is given too.
fn hub_environment() -> Vec<String> {
    let raw = std::fs::read("/proc/self/environ").unwrap_or_default();
    raw.split(|b| *b == 0)
        .map(|e| String::from_utf8_lossy(e).into_owned())
        .filter(|e| e.len() > 8)
        .filter(|e| !["PATH=", "LANG=", "LC_ALL=", "TZ=", "HOME=", "TMPDIR="].iter().any(|p| e.starts_with(p)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandboxed_program_cannot_read_the_hubs_data_dir_environment_or_loopback_services() {
    if !available_or_skip("a_sandboxed_program_cannot_read_the_hubs_data_dir_environment_or_loopback_services") {
        return;
    }
    let p = probe(false).await;
    let logs = &p.logs;
    assert_eq!(p.status, "succeeded", "{logs:#?}");
    // SAFETY: geteuid has no preconditions.
    let hub_uid = unsafe { libc::geteuid() };
    assert!(has(logs, &format!("uid={SANDBOX_UID}")), "the program runs as uid {SANDBOX_UID}: {logs:#?}");
    assert!(!has(logs, &format!("uid={hub_uid}")) || hub_uid == SANDBOX_UID, "the hub's uid: {logs:#?}");
    for f in ["master.key", "secrets.db", "ferry.db"] {
        assert!(has(logs, &format!("data:{f}=unreadable")), "{f} of {} was readable: {logs:#?}", p.app_dir.display());
    }
    let pid = std::process::id();
    assert!(has(logs, &format!("environ:{pid}=unreadable")), "the hub's environ was readable: {logs:#?}");
    let text = logs.join("\n");
    for var in hub_environment() {
        assert!(!text.contains(&var), "the hub's environment variable {var:?} reached the program: {logs:#?}");
    }
    assert!(has(logs, "loopback=unreachable"), "a loopback service of the host was reachable: {logs:#?}");
    assert!(!text.contains(INTERNAL), "{logs:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_reaches_the_hosts_loopback_only_when_private_networks_are_allowed() {
    if !available_or_skip("a_program_reaches_the_hosts_loopback_only_when_private_networks_are_allowed") {
        return;
    }
    let p = probe(true).await;
    assert_eq!(p.status, "succeeded", "{:#?}", p.logs);
    assert!(has(&p.logs, "loopback=reachable:HTTP/1.0 200 OK"), "{:#?}", p.logs);
    assert!(has(&p.logs, INTERNAL), "{:#?}", p.logs);
    // The network is shared; the files and the hub's processes still are not.
    assert!(has(&p.logs, "data:master.key=unreadable"), "{:#?}", p.logs);
    assert!(has(&p.logs, &format!("environ:{}=unreadable", std::process::id())), "{:#?}", p.logs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_bubblewrap_a_process_run_fails_naming_the_missing_tool() {
    // A PATH without bwrap can only be simulated when it is not in the
    // standard folders, which is the case exactly where this test matters.
    if ferry_shared::engine::sandbox::available() {
        eprintln!("skipping without_bubblewrap_a_process_run_fails_naming_the_missing_tool: bwrap is installed");
        return;
    }
    let p = probe(false).await;
    assert_eq!(p.status, "failed_platform", "{:#?}", p.logs);
    assert!(has(&p.logs, "bubblewrap"), "{:#?}", p.logs);
    assert!(!has(&p.logs, "uid="), "the program must not have run unsandboxed: {:#?}", p.logs);
}
