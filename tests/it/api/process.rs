//! Pandium's process contract: `PAN_*` inputs, stderr as logs, the last JSON
//! on stdout as state (and metadata, and init options), exit status, time limit.

use std::path::Path;
use std::time::Duration;

use ferry_service::Settings;
use serde_json::{json, Value};

use crate::support::app::TestApp;
use crate::support::jobs::{Conn, JobUnderTest};

const MANIFEST: &str = r#"
version: 0.5
name: counter
base: node:20.9.0
build: echo built >> builds.log
run: sh main.sh
connectors:
  - src
configs:
  schema:
    type: object
    properties:
      greeting: {type: string}
      loud: {type: boolean}
      color: {type: string, $ref: '#/definitions/colors'}
    definitions:
      colors: {enum: [placeholder]}
metadata_schema:
  schema:
    type: object
    properties:
      count: {type: integer}
"#;

/// The program: reports its inputs on stderr, then prints its new state.
const SCRIPT: &str = r#"
set -e
echo "mode=$PAN_CTX_RUN_MODE tenant=$PAN_CTX_TENANT_ID/$PAN_CTX_TENANT_NAME integration=$PAN_CTX_INTEGRATION_ID env=$PAN_CTX_ENV" >&2
echo "greeting=$PAN_CFG_GREETING loud=$PAN_CFG_LOUD" >&2
echo "token=$PAN_SEC_SRC_API_KEY" >&2
echo "aws=${AWS_SECRET_ACCESS_KEY:-unset} outside=${FERRY_OUTSIDE:-unset}" >&2
echo "last_phase=${PAN_CTX_LAST_RUN_PHASE:-none} last_ok=${PAN_CTX_LAST_SUCCESSFUL_RUN_PHASE:-none}" >&2
echo "last_out=${PAN_CTX_LAST_RUN_STD_OUT:-none}" >&2
echo "triggers=$PAN_CTX_RUN_TRIGGERS" >&2
echo "metadata=$(cat "$PAN_CTX_TENANT_METADATA_FILE")" >&2
case "$PAN_CTX_RUN_MODE" in
  init) echo '{"colors": ["red", "green"], "count": 0}'; exit 0 ;;
esac
if [ -f fail ]; then echo 'partial output'; echo '{"count": 999}'; exit "$(cat fail)"; fi
if [ -f hang ]; then sleep 30 & sleep 30; fi
if [ -f badmeta ]; then echo '{"count": "many"}'; exit 0; fi
count=$(printf '%s' "${PAN_CTX_LAST_SUCCESSFUL_RUN_STD_OUT:-{\"count\": 0\}}" | sed 's/[^0-9]//g')
echo "progress: counting" 
echo "{\"count\": $((count + 1)), \"seen\": \"$PAN_CFG_GREETING\"}"
"#;

struct Fixture {
    job: JobUnderTest,
    dir: tempfile::TempDir,
}

impl Fixture {
    fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("counter")
    }
    fn flag(&self, name: &str, content: &str) {
        std::fs::write(self.path().join(name), content).expect("flag");
    }
    fn unflag(&self, name: &str) {
        let _ = std::fs::remove_file(self.path().join(name));
    }
}

async fn fixture(timeout: Duration) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let code = dir.path().join("counter");
    std::fs::create_dir_all(&code).expect("mkdir");
    std::fs::write(code.join("main.sh"), SCRIPT).expect("script");
    let settings = Settings {
        integrations_dir: Some(dir.path().to_owned()),
        process_timeout: timeout,
        environment: "test".into(),
        process_sandbox: crate::support::sandbox::mode_for_contract_tests(),
        ..Default::default()
    };
    let app = TestApp::embedded_with_settings(settings).await;
    let job = JobUnderTest::new(
        app,
        "counter",
        MANIFEST,
        &[Conn {
            name: "src",
            provider: "src",
            auth: "api_key",
            base_url: crate::support::app::CLOSED_LOOPBACK,
            credentials: Some(json!({"api_key": "sk-canary-51d2e"})),
        }],
        json!({"greeting": "hi there", "loud": true}),
    )
    .await;
    Fixture { job, dir }
}

/// The job's page in the console, as the platform admin sees it.
async fn console_job_page(f: &Fixture) -> String {
    use crate::console::{Browser, ADMIN_EMAIL, ADMIN_PASSWORD};
    let hub = &f.job.app.hub;
    hub.users().bootstrap_admin_user(Some(ADMIN_EMAIL), Some(ADMIN_PASSWORD)).await.expect("admin user");
    let mut b = Browser::new(hub);
    b.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let csrf = b.csrf().await;
    b.post("/tenants/switch", &[("csrf", &csrf), ("tenant", &f.job.tenant)]).await;
    b.get(&format!("/t/{}/jobs/{}", f.job.tenant, f.job.job)).await.text()
}

fn has(lines: &[String], needle: &str) -> bool {
    lines.iter().any(|l| l.contains(needle))
}

async fn logs_of(f: &Fixture, run: &Value) -> Vec<String> {
    f.job.logs(run["id"].as_str().expect("id")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_gets_pandium_inputs_and_its_stdout_becomes_the_next_runs_state() {
    let f = fixture(Duration::from_secs(30)).await;
    let first = f.job.run(json!({})).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    let logs = logs_of(&f, &first).await;
    assert!(has(&logs, "mode=normal tenant=acme/"), "{logs:?}");
    assert!(has(&logs, "integration=counter env=test"), "{logs:?}");
    assert!(has(&logs, "greeting=hi there loud=true"), "{logs:?}");
    assert!(has(&logs, "token=[redacted]"), "secrets are redacted from stderr: {logs:?}");
    assert!(!logs.join("\n").contains("sk-canary-51d2e"));
    assert!(has(&logs, "aws=unset outside=unset"), "the host's environment is not passed on: {logs:?}");
    assert!(has(&logs, "last_phase=none last_ok=none"), "{logs:?}");
    assert!(has(&logs, r#""source":"api""#) || has(&logs, r#""source":"manual""#), "{logs:?}");
    assert!(has(&logs, "[build] ") || std::fs::read_to_string(f.path().join("builds.log")).is_ok());
    let job = f.job.job().await;
    assert_eq!(job["state"], json!({"count": 1, "seen": "hi there"}), "{job}");
    assert_eq!(job["metadata"], json!({"count": 1, "seen": "hi there"}), "{job}");
    // The console's job page shows the metadata, key by key.
    let page = console_job_page(&f).await;
    assert!(page.contains("Tenant metadata"), "{page}");
    assert!(page.contains("<dt>count</dt><dd><code class=\"wrap\">1</code></dd>"), "{page}");
    assert!(page.contains("<dt>seen</dt><dd><code class=\"wrap\">hi there</code></dd>"), "{page}");

    let second = f.job.run(json!({})).await;
    assert_eq!(second["status"], "succeeded", "{second}");
    let logs = logs_of(&f, &second).await;
    assert!(has(&logs, "last_phase=Succeeded last_ok=Succeeded"), "{logs:?}");
    assert!(has(&logs, r#"last_out={"count":1,"seen":"hi there"}"#), "{logs:?}");
    assert!(has(&logs, r#"metadata={"count":1,"seen":"hi there"}"#), "{logs:?}");
    assert_eq!(f.job.job().await["state"]["count"], 2);
    let builds = std::fs::read_to_string(f.path().join("builds.log")).expect("built");
    assert_eq!(builds.lines().count(), 1, "the build runs once per release");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_exit_fails_the_run_and_keeps_the_state() {
    let f = fixture(Duration::from_secs(30)).await;
    assert_eq!(f.job.run(json!({})).await["status"], "succeeded");
    f.flag("fail", "3");
    let failed = f.job.run(json!({})).await;
    assert_eq!(failed["status"], "failed_integration", "{failed}");
    assert!(failed["error"].as_str().unwrap_or("").contains("status 3"), "{failed}");
    assert_eq!(f.job.job().await["state"]["count"], 1, "a failed run leaves the state alone");
    f.unflag("fail");
    let next = f.job.run(json!({})).await;
    let logs = logs_of(&f, &next).await;
    assert!(has(&logs, "last_phase=Failed (Integration Issue) last_ok=Succeeded"), "{logs:?}");
    assert!(has(&logs, r#"last_out={"count":999}"#), "the failed run's stdout is the last run's: {logs:?}");
    assert_eq!(f.job.job().await["state"]["count"], 2, "counting resumes from the last success");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_over_its_time_limit_is_stopped_as_failed_timeout() {
    let f = fixture(Duration::from_secs(1)).await;
    f.flag("hang", "");
    let started = std::time::Instant::now();
    let run = f.job.run(json!({})).await;
    assert_eq!(run["status"], "failed_timeout", "{run}");
    assert!(started.elapsed() < Duration::from_secs(20), "the process group was killed, not waited for");
    assert_eq!(f.job.job().await["state"], json!({}), "no state from a stopped run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_process_run_kills_the_process_and_keeps_no_state() {
    let f = fixture(Duration::from_secs(60)).await;
    f.flag("hang", "");
    let id = f.job.trigger(json!({})).await;
    let path = format!("/v1/tenants/acme/jobs/{}/runs/{id}", f.job.job);
    for _ in 0..200 {
        if f.job.app.admin(axum::http::Method::GET, &path, None).await.json()["status"] == "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let started = std::time::Instant::now();
    let r = f.job.app.admin(axum::http::Method::POST, &format!("{path}/cancel"), None).await;
    assert_eq!(r.status, axum::http::StatusCode::OK, "{}", r.text());
    let run = f.job.wait_for(&id, Duration::from_secs(20)).await;
    assert_eq!(run["status"], "cancelled", "{run}");
    // The status is final at once; the driver notices within a few seconds and kills the process.
    for _ in 0..400 {
        if logs_of(&f, &run).await.last().is_some_and(|l| l.starts_with("run finished")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(started.elapsed() < Duration::from_secs(15), "the process was killed, not waited for");
    let logs = logs_of(&f, &run).await;
    assert!(has(&logs, "the integration was stopped: the run was cancelled"), "{logs:?}");
    assert_eq!(f.job.job().await["state"], json!({}), "no state from a cancelled run");
    f.unflag("hang");
    let next = f.job.trigger(json!({})).await;
    assert_ne!(next, id, "the job is free again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdout_that_breaks_the_metadata_schema_fails_and_changes_nothing() {
    let f = fixture(Duration::from_secs(30)).await;
    assert_eq!(f.job.run(json!({})).await["status"], "succeeded");
    f.flag("badmeta", "");
    let run = f.job.run(json!({})).await;
    assert_eq!(run["status"], "failed_integration", "{run}");
    assert!(run["error"].as_str().unwrap_or("").contains("metadata schema"), "{run}");
    let job = f.job.job().await;
    assert_eq!(job["metadata"]["count"], 1, "{job}");
    assert_eq!(job["state"]["count"], 1, "{job}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_init_run_fills_dynamic_options_from_stdout() {
    let f = fixture(Duration::from_secs(30)).await;
    let run = f.job.run(json!({"mode": "init"})).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert!(has(&logs_of(&f, &run).await, "mode=init"));
    assert_eq!(f.job.job().await["dynamic_options"]["colors"], json!(["red", "green"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_program_folder_fails_as_a_platform_problem() {
    let f = fixture(Duration::from_secs(30)).await;
    std::fs::remove_dir_all(f.path()).expect("rm");
    assert!(!Path::new(&f.path()).exists());
    let run = f.job.run(json!({})).await;
    assert_eq!(run["status"], "failed_platform", "{run}");
    assert!(run["error"].as_str().unwrap_or("").contains("not installed"), "{run}");
}
