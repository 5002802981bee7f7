//! Process integrations run sandboxed: a program that goes looking for the
//! hub's secrets (its data directory, its `/proc/<pid>/environ`, services on
//! its loopback) finds none of them, and it does not run as the hub's user.

use std::time::Duration;

use axum::routing::get;
use ferry_engine::sandbox::{SandboxMode, SANDBOX_UID};
use ferry_service::Settings;
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
    if ferry_engine::sandbox::available() {
        eprintln!("skipping without_bubblewrap_a_process_run_fails_naming_the_missing_tool: bwrap is installed");
        return;
    }
    let p = probe(false).await;
    assert_eq!(p.status, "failed_platform", "{:#?}", p.logs);
    assert!(has(&p.logs, "bubblewrap"), "{:#?}", p.logs);
    assert!(!has(&p.logs, "uid="), "the program must not have run unsandboxed: {:#?}", p.logs);
}

/// Tries the host's loopback service through the proxy (curl, then Python's
/// urllib, both of which follow `HTTPS_PROXY`) and directly.
const EGRESS_PROBE: &str = r#"
echo "proxy=$HTTPS_PROXY node=$NODE_USE_ENV_PROXY" >&2
curl -sS --max-time 10 "https://127.0.0.1:$PAN_CFG_LOOPBACK_PORT/" >&2
echo "curl_exit=$?" >&2
python3 - "$PAN_CFG_LOOPBACK_PORT" >&2 <<'PY'
import sys, urllib.request
try:
    urllib.request.urlopen("https://localhost:%s/" % sys.argv[1], timeout=10)
    print("python=reached")
except Exception as e:
    print("python=refused: %s" % e)
PY
curl -sS --noproxy '*' --max-time 5 "http://127.0.0.1:$PAN_CFG_LOOPBACK_PORT/" >&2
echo "direct_exit=$?" >&2
"#;

const EGRESS_MANIFEST: &str = r#"
version: 0.5
name: egress
base: debian:12
run: sh probe.sh
connectors:
  - src
configs:
  schema:
    type: object
    properties:
      loopback_port: {type: string}
"#;

/// Counts what reaches the host's loopback service.
async fn counted_internal_service() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = hits.clone();
    let router = axum::Router::new().route(
        "/",
        get(move || {
            h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async { INTERNAL }
        }),
    );
    let url = serve(router).await;
    (url.rsplit(':').next().expect("port").to_owned(), hits)
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_strict_hub_the_proxy_refuses_the_hosts_loopback_and_the_run_log_says_why() {
    if !available_or_skip("on_a_strict_hub_the_proxy_refuses_the_hosts_loopback_and_the_run_log_says_why") {
        return;
    }
    let code = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(code.path().join("egress")).expect("mkdir");
    std::fs::write(code.path().join("egress/probe.sh"), EGRESS_PROBE).expect("script");
    let settings = Settings {
        integrations_dir: Some(code.path().to_owned()),
        process_timeout: Duration::from_secs(60),
        allow_private_network: false,
        process_sandbox: SandboxMode::Bubblewrap,
        ..Default::default()
    };
    let app = TestApp::embedded_with_exact_settings(settings).await;
    let (port, hits) = counted_internal_service().await;
    let job = JobUnderTest::new(
        app,
        "egress",
        EGRESS_MANIFEST,
        &[Conn {
            name: "src",
            provider: "src",
            auth: "api_key",
            base_url: "https://api.example.com",
            credentials: Some(json!({"api_key": "sk-egress-51d2"})),
        }],
        json!({"loopback_port": port}),
    )
    .await;
    let run = job.run(json!({})).await;
    let logs = job.logs(run["id"].as_str().expect("id")).await;
    assert_eq!(run["status"], "succeeded", "{logs:#?}");
    assert!(has(&logs, "proxy=http://127.0.0.1:3128 node=1"), "{logs:#?}");
    if is_root() {
        // curl's CONNECT is answered 403 and the log names the target and why.
        assert!(
            has(&logs, &format!("egress: refused CONNECT 127.0.0.1:{port}: 127.0.0.1 is a loopback address")),
            "{logs:#?}"
        );
        assert!(has(&logs, "curl_exit=56"), "curl's tunnel was refused: {logs:#?}");
        assert!(
            has(&logs, &format!("egress: refused CONNECT localhost:{port}: localhost is a loopback name")),
            "{logs:#?}"
        );
        assert!(has(&logs, "python=refused") && has(&logs, "403"), "{logs:#?}");
    } else {
        // A hub that may not enter the namespace: no proxy, no network, said once.
        assert!(has(&logs, "egress: this program has no network"), "{logs:#?}");
    }
    assert!(!has(&logs, "python=reached"), "{logs:#?}");
    assert!(has(&logs, "direct_exit=7"), "the host's loopback answered a direct connection: {logs:#?}");
    assert!(!logs.join("\n").contains(INTERNAL), "{logs:#?}");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0, "the host's loopback service was reached");
}

/// The whole path with a policy that allows loopback (as no hub would run it:
/// a hub allowing private networks shares its network instead): a program in
/// its own network namespace reaches the host's service only by tunnelling
/// through the proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_inside_the_sandbox_tunnels_what_its_policy_allows() {
    use ferry_engine::process::{self, Exit, ProcessSpec};
    use ferry_engine::redact::Redactor;
    use ferry_engine::sandbox::SandboxSpec;

    if !available_or_skip("the_proxy_inside_the_sandbox_tunnels_what_its_policy_allows") {
        return;
    }
    if !is_root() {
        eprintln!("skipping the_proxy_inside_the_sandbox_tunnels_what_its_policy_allows: entering the sandbox's network needs root");
        return;
    }
    let code = tempfile::tempdir().expect("tempdir");
    let (port, hits) = counted_internal_service().await;
    // A run (dropped to the sandbox user by setpriv) and a build (in a user
    // namespace of its own) both get the proxy.
    for (n, build) in [(1, false), (2, true)] {
        let spec = ProcessSpec {
            command: format!(
            "curl -sS -p --max-time 10 http://127.0.0.1:{port}/ >&2; rc=$?; echo >&2; echo \"tunnel_exit=$rc\" >&2; \
             curl -sS --noproxy '*' --max-time 5 http://127.0.0.1:{port}/ >&2; echo \"direct_exit=$?\" >&2"
        ),
            workdir: code.path().to_owned(),
            env: vec![],
            timeout: Duration::from_secs(60),
            redact: Redactor::new(),
            sandbox: Some(SandboxSpec {
                code: code.path().to_owned(),
                code_writable: build,
                host_network: false,
                inputs: vec![],
                egress: Some(ferry_net::NetPolicy::new(true)),
            }),
        };
        let out = process::execute(&spec).await.expect("ran");
        assert_eq!(out.exit, Exit::Success, "{:#?}", out.log);
        assert!(has(&out.log, INTERNAL), "the tunnel did not reach the service: {:#?}", out.log);
        assert!(has(&out.log, "tunnel_exit=0"), "{:#?}", out.log);
        assert!(has(&out.log, "direct_exit=7"), "a direct connection left the sandbox: {:#?}", out.log);
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), n, "build: {build}: {:#?}", out.log);
    }
}
