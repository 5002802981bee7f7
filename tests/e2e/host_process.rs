//! `ferry up` hosts as child processes of the tests.

use std::path::Path;
use std::time::Duration;

/// `ferry up` as a child process, so it can be killed without warning.
pub struct HostProcess {
    child: std::process::Child,
    pub base: String,
}

impl HostProcess {
    pub async fn start(data_dir: &Path, key: &str) -> Self {
        let bin = ferry_e2e::function_binary("debug", "ferry").expect("`cargo build --bins` first");
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
            l.local_addr().expect("addr").port()
        };
        let mut child = std::process::Command::new(bin)
            .args(["up", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(data_dir)
            // The samples' fake services listen on loopback over http.
            .arg("--allow-private-network")
            .env("FERRY_BOOTSTRAP_API_KEY", key)
            .env("FERRY_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn ferry up");
        let base = format!("http://127.0.0.1:{port}");
        let c = reqwest::Client::new();
        for _ in 0..200 {
            if c.get(format!("{base}/healthz")).send().await.is_ok_and(|r| r.status().is_success()) {
                return Self { child, base };
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("ferry up did not start");
    }

    pub fn kill(mut self) {
        let _ = self.child.kill(); // SIGKILL: no shutdown, no flush
        let _ = self.child.wait();
    }
}

/// A test that fails halfway leaves no host behind.
impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
