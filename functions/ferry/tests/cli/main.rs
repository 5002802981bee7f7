//! Tests of the `ferry` binary as an operator runs it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod schedules;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

struct Hub {
    child: Child,
    base: String,
    stdout: Vec<String>,
}

impl Hub {
    /// Starts `ferry up` and waits until it serves /healthz.
    fn start(data_dir: &std::path::Path, extra_env: &[(&str, &str)], extra_args: &[&str]) -> Hub {
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
        cmd.args(["up", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(data_dir)
            .args(extra_args)
            .env_remove("FERRY_BOOTSTRAP_API_KEY")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn ferry");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("ferry up exited early: {status}");
            }
            if probe::blocking_get(&format!("{base}/healthz")) {
                break;
            }
            assert!(Instant::now() < deadline, "ferry up did not serve /healthz in time");
            std::thread::sleep(Duration::from_millis(50));
        }
        Hub { child, base, stdout: Vec::new() }
    }

    /// Stops with SIGTERM and collects what it printed.
    fn stop(mut self) -> (std::process::ExitStatus, Vec<String>, String) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let status = self.child.wait().expect("wait");
        let mut out = std::mem::take(&mut self.stdout);
        if let Some(s) = self.child.stdout.take() {
            out.extend(BufReader::new(s).lines().map_while(Result::ok));
        }
        let mut err = String::new();
        if let Some(mut s) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut s, &mut err);
        }
        (status, out, err)
    }
}

mod probe {
    /// Blocking probe without pulling in reqwest's blocking client.
    pub fn blocking_get(url: &str) -> bool {
        let Some(rest) = url.strip_prefix("http://") else {
            return false;
        };
        let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(host) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(2)));
        if s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes()).is_err()
        {
            return false;
        }
        let mut buf = String::new();
        let _ = s.read_to_string(&mut buf);
        buf.starts_with("HTTP/1.1 200")
    }
}

fn printed_key(lines: &[String]) -> Option<String> {
    lines.iter().map(|l| l.trim()).find(|l| l.starts_with("ferry_platform_")).map(str::to_owned)
}

#[test]
fn first_start_prints_an_admin_key_once_and_restarts_keep_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = Hub::start(dir.path(), &[], &[]);
    let base = hub.base.clone();
    let (status, out, err) = hub.stop();
    assert!(status.success(), "graceful stop should exit 0: {err}");
    let key = printed_key(&out).expect("first start prints the key");
    assert!(!err.contains(&key), "the key must not reach the logs");
    assert!(err.contains("ferry hub stopped"), "graceful shutdown is logged: {err}");
    assert!(!base.is_empty());

    let hub = Hub::start(dir.path(), &[], &[]);
    let (_, out, _) = hub.stop();
    assert_eq!(printed_key(&out), None, "a second start must not create another key");

    let mode = std::fs::metadata(dir.path().join("master.key")).expect("master key").permissions();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600);
}

/// The generated password of the admin user, as the first start prints it.
fn printed_admin_password(lines: &[String]) -> Option<String> {
    lines.iter().map(|l| l.trim()).find_map(|l| l.strip_prefix("password:")).map(|p| p.trim().to_owned())
}

#[test]
fn first_start_makes_the_admin_user_and_serves_the_console_at_the_root() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = Hub::start(dir.path(), &[], &[]);
    let port = hub.base.rsplit(':').next().unwrap_or_default().to_owned();
    let sign_in = http(&port, "GET", "/login", None, None);
    let root = http(&port, "GET", "/", None, None);
    let api = http(&port, "GET", "/v1/me", None, None);
    let (_, out, err) = hub.stop();
    let password = printed_admin_password(&out).expect("the first start prints the admin user's password");
    assert!(out.iter().any(|l| l.contains("admin@ferry.local")), "{out:?}");
    assert!(!err.contains(&password), "the password must not reach the logs");
    assert!(sign_in.starts_with("HTTP/1.1 200") && sign_in.contains("Sign in to Ferry"), "{sign_in}");
    assert!(root.starts_with("HTTP/1.1 303") && root.contains("location: /login"), "{root}");
    assert!(api.starts_with("HTTP/1.1 401"), "the API stays under /v1: {api}");

    let hub = Hub::start(dir.path(), &[("FERRY_ADMIN_PASSWORD", "another passphrase")], &[]);
    let (_, out, _) = hub.stop();
    assert_eq!(printed_admin_password(&out), None, "a second start makes no other admin user");
}

#[test]
fn the_admin_user_takes_its_credentials_from_the_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = [("FERRY_ADMIN_EMAIL", "root@ops.example"), ("FERRY_ADMIN_PASSWORD", "a supplied passphrase")];
    let hub = Hub::start(dir.path(), &env, &[]);
    let port = hub.base.rsplit(':').next().unwrap_or_default().to_owned();
    let body = r#"{"email": "root@ops.example", "password": "a supplied passphrase"}"#;
    let session = http(&port, "POST", "/v1/sessions", None, Some(body));
    let (_, out, err) = hub.stop();
    assert!(session.starts_with("HTTP/1.1 201") && session.contains("\"platform_admin\""), "{session}");
    assert_eq!(printed_admin_password(&out), None, "a supplied password is not printed");
    assert!(!err.contains("a supplied passphrase"));
}

#[test]
fn bootstrap_key_from_the_environment_is_installed_and_works() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = format!("ferry_platform_{}", "ab".repeat(32));
    let hub = Hub::start(dir.path(), &[("FERRY_BOOTSTRAP_API_KEY", &key)], &["--log-format", "json"]);
    let port = hub.base.rsplit(':').next().unwrap_or_default().to_owned();
    let body = http(&port, "GET", "/v1/me", Some(&key), None);
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("\"role\":\"admin\""), "{body}");
    let (status, out, err) = hub.stop();
    assert!(status.success());
    assert_eq!(printed_key(&out), None, "a supplied key is not printed");
    assert!(!err.contains(&key), "the key must not reach the logs");
    for line in err.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "--log-format json emits JSON lines, got {line}"
        );
    }
}

#[test]
fn the_bootstrap_key_leaves_the_hubs_environment_once_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = format!("ferry_platform_{}", "cd".repeat(32));
    let hub = Hub::start(dir.path(), &[("FERRY_BOOTSTRAP_API_KEY", &key)], &[]);
    // Root (these tests' usual user) may read a non-dumpable process's environ too.
    let environ = std::fs::read(format!("/proc/{}/environ", hub.child.id())).unwrap_or_default();
    let port = hub.base.rsplit(':').next().unwrap_or_default().to_owned();
    let body = http(&port, "GET", "/v1/me", Some(&key), None);
    let _ = hub.stop();
    assert!(body.starts_with("HTTP/1.1 200"), "the key was installed: {body}");
    let environ = String::from_utf8_lossy(&environ);
    assert!(environ.contains("FERRY_BOOTSTRAP_API_KEY="), "the probe reads the hub's environ: {environ:?}");
    assert!(!environ.contains(&key), "the key is still in /proc/<pid>/environ");
}

#[test]
fn malformed_bootstrap_key_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("FERRY_BOOTSTRAP_API_KEY", "not-a-key")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("FERRY_BOOTSTRAP_API_KEY must look like ferry_platform_"), "{err}");
    assert!(!err.contains("not-a-key"));
}

#[test]
fn up_refuses_to_start_on_a_setting_it_cannot_use_and_names_the_variable() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (variable, value) in [
        ("FERRY_RUN_TIMEOUT_SECS", "abc"),
        ("FERRY_RUN_BUDGET_SECS", "0"),
        ("FERRY_ALLOW_PRIVATE_NETWORK", "maybe"),
        ("FERRY_PROCESS_SANDBOX", "sometimes"),
        ("FERRY_PUBLIC_URL", "ferry.example.com"),
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .env(variable, value)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ferry");
        // A hub that starts anyway serves until stopped.
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            match child.try_wait().expect("wait") {
                Some(status) => break Some(status),
                None if Instant::now() > deadline => break None,
                None => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        let Some(status) = status else {
            let _ = child.kill();
            panic!("ferry up started with {variable}={value}");
        };
        assert!(!status.success());
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err).expect("stderr");
        assert!(err.contains(variable) && err.contains(value) && err.contains("expected"), "{err}");
    }
}

fn http(port: &str, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).expect("connect");
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn publish(base: &str, key: Option<&str>, args: &[&std::ffi::OsStr]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
    cmd.arg("publish").args(args).args(["--url", base]).env_remove("FERRY_API_KEY").env_remove("FERRY_URL");
    if let Some(k) = key {
        cmd.env("FERRY_API_KEY", k);
    }
    cmd.output().expect("run ferry publish")
}

#[test]
fn publish_validates_locally_then_publishes_once_per_manifest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = format!("ferry_platform_{}", "cd".repeat(32));
    let hub = Hub::start(&dir.path().join("data"), &[("FERRY_BOOTSTRAP_API_KEY", &key)], &[]);
    let port = hub.base.rsplit(':').next().unwrap_or_default().to_owned();
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../integrations/pokemon-of-the-day");

    let out = publish(&hub.base, Some(&key), &[sample.as_os_str()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("published pokemon-of-the-day release 1"), "{stdout}");

    // The same manifest again (as a file path this time): no new release.
    let out = publish(&hub.base, Some(&key), &[sample.join("PANDIUM.yaml").as_os_str()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(stdout.contains("pokemon-of-the-day release 1 already has this manifest"), "{stdout}");

    // A broken manifest: local diagnostics, non-zero exit, nothing published.
    let broken = dir.path().join("broken-one");
    std::fs::create_dir(&broken).expect("mkdir");
    std::fs::write(
        broken.join("PANDIUM.yaml"),
        "version: 0.4\nrun: node index.js\nbase: node:20\nconectors: [slack]\n",
    )
    .expect("write");
    let out = publish(&hub.base, Some(&key), &[broken.as_os_str()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("conectors") && stderr.contains("connectors"), "{stderr}");
    let r = http(&port, "GET", "/v1/integrations/broken-one", Some(&key), None);
    assert!(r.starts_with("HTTP/1.1 404"), "{r}");

    // Fixed, it is published under its folder's name (the manifest has no `name`).
    std::fs::write(
        broken.join("PANDIUM.yaml"),
        "version: 0.4\nrun: node index.js\nbase: node:20\nconnectors: [slack]\n",
    )
    .expect("write");
    let out = publish(&hub.base, Some(&key), &[broken.as_os_str()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("published broken-one release 1"));

    // No key, or a key the hub refuses: a clear error.
    let out = publish(&hub.base, None, &[sample.as_os_str()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("FERRY_API_KEY"));
    let out = publish(&hub.base, Some("ferry_platform_wrong"), &[sample.as_os_str()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401 unauthorized"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, _, _) = hub.stop();
    assert!(status.success());
}

#[test]
fn run_triggers_a_job_follows_it_and_reports_the_outcome() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = format!("ferry_platform_{}", "ef".repeat(32));
    let hub = Hub::start(&dir.path().join("data"), &[("FERRY_BOOTSTRAP_API_KEY", &key)], &[]);
    let port = hub.base.rsplit(':').next().unwrap_or_default().to_owned();
    // Its only flow runs on webhooks, so a normal run has nothing to call: the
    // test exercises the CLI and the run lifecycle without any outside traffic.
    let manifest = "version: 1.0\nname: hooks\nconnectors:\n  dst: {auth: none, base_url: 'http://127.0.0.1:9', required: false}\n\
                    webhooks: {verify: {type: standard_webhooks}, flow: orders}\n\
                    flows:\n  - name: orders\n    triggers: [webhook]\n    source: {type: webhook}\n    target: {type: http, connector: dst, path: /orders}\n";
    let body = serde_json::json!({"manifest": manifest}).to_string();
    assert!(http(&port, "POST", "/v1/integrations/hooks/releases", Some(&key), Some(&body)).starts_with("HTTP/1.1 201"));
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
    let job = created.split("\"id\":\"").nth(1).and_then(|s| s.split('"').next()).expect("job id").to_owned();

    let run = |job: &str| {
        Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["run", "acme", job, "--url", &hub.base])
            .env("FERRY_API_KEY", &key)
            .output()
            .expect("run ferry run")
    };
    let out = run(&job);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("started") && stdout.contains(": succeeded"), "{stdout}");

    let out = run("nope");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not_found"), "{}", String::from_utf8_lossy(&out.stderr));
    hub.stop();
}
