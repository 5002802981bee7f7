//! The sandbox's only way out: the hub's egress proxy ([`ferry_net::egress`])
//! listening on `127.0.0.1:`[`PROXY_PORT`] *inside* the program's network
//! namespace, which has nothing else but its own loopback.
//!
//! bwrap is started with `--info-fd` and `--block-fd`: it writes the
//! sandbox's PID, then waits. A short-lived thread of the hub enters the
//! sandbox's network namespace (`setns`), binds the listener there (a socket
//! stays in the namespace it was created in) and ends; the proxy serves that
//! listener from the hub's own namespace, where its connections to the
//! outside are made under the policy. Then the program is let go.
//!
//! Entering the namespace needs `CAP_SYS_ADMIN` over it (a hub running as
//! root); where the kernel refuses, the program runs as before, with no
//! network at all, and the run log says why. Never the host's network.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::sandbox::SyncFds;
use ferry_net::egress::{EgressLimits, EgressProxy, Notes};
use ferry_net::NetPolicy;

/// The proxy's port inside the sandbox (its namespace is empty, so always free).
pub const PROXY_PORT: u16 = 3128;
/// What the program's `HTTPS_PROXY` and friends say.
pub const PROXY_URL: &str = "http://127.0.0.1:3128";

/// The environment that points clients at the proxy: curl, Python
/// (requests, urllib), Go's net/http and Node 24+ (with `NODE_USE_ENV_PROXY`).
pub fn proxy_env() -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"]
        .iter()
        .map(|k| (k.to_string(), PROXY_URL.to_owned()))
        .collect();
    env.extend([("NO_PROXY", ""), ("no_proxy", ""), ("NODE_USE_ENV_PROXY", "1")].map(|(k, v)| (k.into(), v.into())));
    env
}

/// The two pipes shared with bwrap, before it is spawned.
pub struct Pipes {
    info_read: OwnedFd,
    info_write: OwnedFd,
    block_read: OwnedFd,
    block_write: OwnedFd,
}

/// The hub's ends, once bwrap runs.
pub struct Waiting {
    info_read: OwnedFd,
    block_write: OwnedFd,
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two descriptors into the array, which we own from here.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are not owned elsewhere.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((above_stdio(r)?, above_stdio(w)?))
}

/// A hub started with a closed stdin/stdout/stderr may get 0..=2 from pipe2,
/// which the child's standard streams would then replace: moved above them.
fn above_stdio(fd: OwnedFd) -> std::io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: F_DUPFD_CLOEXEC makes a new descriptor, owned from here; the old one closes on drop.
    let moved = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if moved < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: just created.
    Ok(unsafe { OwnedFd::from_raw_fd(moved) })
}

impl Pipes {
    /// Both pipes, close-on-exec: only bwrap gets its ends ([`Pipes::inherit`]).
    pub fn new() -> std::io::Result<Self> {
        let (info_read, info_write) = pipe()?;
        let (block_read, block_write) = pipe()?;
        Ok(Self { info_read, info_write, block_read, block_write })
    }

    /// The descriptors bwrap is told about.
    pub fn child_fds(&self) -> SyncFds {
        SyncFds { info: self.info_write.as_raw_fd(), block: self.block_read.as_raw_fd() }
    }

    /// Run in the child between fork and exec: bwrap's ends survive exec.
    /// Only async-signal-safe calls (fcntl).
    pub fn inherit(fds: SyncFds) -> std::io::Result<()> {
        for fd in [fds.info, fds.block] {
            // SAFETY: fcntl on a descriptor this child holds; no allocation.
            if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }

    /// After the spawn: the hub closes bwrap's ends (so a bwrap that dies
    /// early reads as end of file) and keeps its own.
    pub fn spawned(self) -> Waiting {
        Waiting { info_read: self.info_read, block_write: self.block_write }
    }
}

impl Waiting {
    /// Opens the proxy inside the sandbox, then lets the program start
    /// whatever happened. `Err` says why the program has no network.
    pub async fn open_and_release(self, policy: NetPolicy, notes: Notes) -> Result<EgressProxy, String> {
        let Waiting { info_read, block_write } = self;
        let opened = tokio::time::timeout(Duration::from_secs(10), listen_inside(info_read)).await;
        let opened = match opened {
            Ok(Ok(listener)) => tokio::net::TcpListener::from_std(listener)
                .map(|l| EgressProxy::start(l, policy, limits(policy), notes))
                .map_err(|e| format!("the proxy's listener could not be served: {e}")),
            Ok(Err(why)) => Err(why),
            Err(_) => Err("the sandbox did not report its process in time".to_owned()),
        };
        // The program starts now, with or without the proxy (a closed pipe
        // after a failed bwrap is no matter).
        let _ = std::fs::File::from(block_write).write_all(b"1");
        opened
    }
}

/// TLS only where only port 443 is open (a strict hub); where private
/// networks are allowed the proxy tunnels any protocol, as that hub's own
/// network would carry it.
fn limits(policy: NetPolicy) -> EgressLimits {
    EgressLimits { tls_only: !policy.allow_private_network, ..EgressLimits::default() }
}

/// Reads the sandbox's PID, then binds the listener in its network
/// namespace on a thread of its own that ends right after.
async fn listen_inside(info: OwnedFd) -> Result<std::net::TcpListener, String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("ferry-sandbox-net".into())
        .spawn(move || {
            let _ = tx.send(child_pid(info).and_then(bind_in_namespace_of));
        })
        .map_err(|e| format!("could not start a thread: {e}"))?;
    rx.await.map_err(|_| "the namespace thread ended without an answer".to_owned())?
}

/// `child-pid` of bwrap's JSON on the info pipe (read up to its first `}`:
/// the sandbox may hold the pipe open).
fn child_pid(info: OwnedFd) -> Result<i32, String> {
    let mut file = std::fs::File::from(info);
    let mut text = Vec::new();
    let mut byte = [0u8; 256];
    while !text.contains(&b'}') && text.len() < 4096 {
        match file.read(&mut byte) {
            Ok(0) => break,
            Ok(n) => text.extend_from_slice(&byte[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("could not read bwrap's report: {e}")),
        }
    }
    let end = text.iter().position(|b| *b == b'}').map_or(text.len(), |i| i + 1);
    serde_json::from_slice::<serde_json::Value>(&text[..end])
        .ok()
        .and_then(|v| v.get("child-pid").and_then(serde_json::Value::as_i64))
        .and_then(|p| i32::try_from(p).ok())
        .filter(|p| *p > 0)
        .ok_or_else(|| "bwrap did not report the sandbox's process (did it start?)".to_owned())
}

/// On the calling thread, which never returns to any pool: enters the
/// namespace and binds there. bwrap brings the sandbox's `lo` up itself,
/// possibly just after it reported the PID, so the bind is retried briefly.
fn bind_in_namespace_of(pid: i32) -> Result<std::net::TcpListener, String> {
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))
        .map_err(|e| format!("could not open the sandbox's network namespace: {e}"))?;
    // SAFETY: setns on a namespace descriptor we hold; it changes only this
    // thread, which ends when this function returns.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(format!(
            "the hub may not enter the sandbox's network namespace ({e}; it needs CAP_SYS_ADMIN, i.e. a hub running as root)"
        ));
    }
    let mut tries = 0;
    loop {
        match std::net::TcpListener::bind(("127.0.0.1", PROXY_PORT)) {
            Ok(l) => {
                l.set_nonblocking(true).map_err(|e| format!("could not configure the proxy's listener: {e}"))?;
                return Ok(l);
            }
            Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) && tries < 100 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(format!("could not listen inside the sandbox: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proxy_environment_names_the_proxy_and_no_exception() {
        let env = proxy_env();
        for k in ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"] {
            assert!(env.contains(&(k.to_owned(), PROXY_URL.to_owned())), "{k}: {env:?}");
        }
        assert!(env.contains(&("NO_PROXY".to_owned(), String::new())));
        assert!(env.contains(&("NODE_USE_ENV_PROXY".to_owned(), "1".to_owned())));
        assert_eq!(PROXY_URL, format!("http://127.0.0.1:{PROXY_PORT}"));
    }

    #[tokio::test]
    async fn without_a_namespace_to_enter_the_program_is_let_go_with_a_reason() {
        let pipes = Pipes::new().expect("pipes");
        let fds = pipes.child_fds();
        // Stand in for bwrap: report a process that does not exist.
        // SAFETY: dup makes new descriptors, owned from here.
        let (info, block) =
            unsafe { (OwnedFd::from_raw_fd(libc::dup(fds.info)), OwnedFd::from_raw_fd(libc::dup(fds.block))) };
        std::fs::File::from(info).write_all(b"{\"child-pid\": 999999999}").expect("report");
        let notes: Notes = std::sync::Arc::new(|_| {});
        let why = match pipes.spawned().open_and_release(NetPolicy::new(false), notes).await {
            Ok(_) => panic!("a proxy without a sandbox"),
            Err(why) => why,
        };
        assert!(why.contains("network namespace"), "{why}");
        let mut released = [0u8; 1];
        assert_eq!(std::fs::File::from(block).read(&mut released).expect("read"), 1, "the program was not let go");
    }

    #[test]
    fn bwraps_report_gives_the_pid_or_a_reason() {
        let (r, w) = pipe().expect("pipe");
        std::fs::File::from(w).write_all(b"{\n    \"child-pid\": 4242,\n    \"cgroup-namespace\": 1\n}\n").expect("w");
        assert_eq!(child_pid(r), Ok(4242));
        let (r, w) = pipe().expect("pipe");
        drop(w);
        assert!(child_pid(r).is_err());
    }
}
