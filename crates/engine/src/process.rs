//! Pandium's process contract: an integration written as a program is started
//! with its inputs in `PAN_*` environment variables; what it writes to stderr
//! is the run's log, the last JSON it writes to stdout is its new state, and
//! its exit status decides success. A time limit ends it.
//!
//! The child gets a clean environment (no host credentials such as AWS keys
//! leak into it), runs in the sandbox of [`super::sandbox`] unless the host
//! turned it off, and gets its own process group, so a timeout kills
//! whatever it started too. A sandboxed program without the host network
//! gets the egress proxy of [`super::sandbox_net`] for the time it runs; the
//! proxy's refusals are lines of its log.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

use super::redact::Redactor;
use super::sandbox::{self, SandboxError, SandboxSpec, SyncFds};
use super::sandbox_net::{self, Pipes, Waiting};
use ferry_net::egress::{EgressProxy, Notes};

/// Most stdout bytes kept; the state is the last JSON in them.
pub const MAX_STDOUT: usize = 8 * 1024 * 1024;
/// Most stderr lines kept as the run's log (the middle is dropped).
pub const MAX_LOG_LINES: usize = 2000;
/// Longest log line kept.
pub const MAX_LINE: usize = 4000;

/// Host variables a program may need to find its runtime; nothing else of the
/// host's environment is passed on.
const PASSED_THROUGH: &[&str] = &["PATH", "HOME", "LANG", "LC_ALL", "TZ", "SYSTEMROOT"];
/// The same inside the sandbox, where `HOME` and `TMPDIR` are the sandbox's own.
const PASSED_INTO_SANDBOX: &[&str] = &["PATH", "LANG", "LC_ALL", "TZ"];

pub struct ProcessSpec {
    /// The shell command (`run:` or `build:`), run by `sh -c`.
    pub command: String,
    pub workdir: PathBuf,
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
    /// Secrets that must never reach the log, in every form they may take.
    pub redact: Redactor,
    /// The sandbox to run in; `None` only when the host turned sandboxing off.
    pub sandbox: Option<SandboxSpec>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Exit {
    Success,
    /// Non-zero exit code, or killed by a signal (`None`).
    Failure(Option<i32>),
    TimedOut,
}

#[derive(Debug)]
pub struct ProcessOutcome {
    pub exit: Exit,
    /// The last JSON value written to stdout, if any.
    pub stdout_json: Option<Value>,
    /// stdout was larger than [`MAX_STDOUT`]; only its tail was kept.
    pub stdout_truncated: bool,
    /// stderr lines, redacted and bounded.
    pub log: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("could not start `{command}` in {workdir}: {source}")]
    Spawn { command: String, workdir: String, source: std::io::Error },
    #[error("lost contact with the process: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Sandbox(#[from] SandboxError),
}

/// Runs the command to completion or until its time limit.
#[tracing::instrument(name = "process", skip_all, fields(workdir = %spec.workdir.display()))]
pub async fn execute(spec: &ProcessSpec) -> Result<ProcessOutcome, ProcessError> {
    // The egress proxy's pipes with bwrap, when the program gets one.
    let pipes = match spec.sandbox.as_ref().and_then(|s| s.egress) {
        Some(_) => Some(Pipes::new()?),
        None => None,
    };
    let sync = pipes.as_ref().map(Pipes::child_fds);
    let mut cmd = command(spec, sync)?;
    if let Some(fds) = sync {
        // SAFETY: the closure only calls fcntl (async-signal-safe).
        unsafe {
            cmd.pre_exec(move || Pipes::inherit(fds));
        }
    }
    cmd.envs(spec.env.iter().map(|(k, v)| (k, v)));
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    #[cfg(unix)]
    cmd.process_group(0);
    let mut child = cmd.spawn().map_err(|source| ProcessError::Spawn {
        command: first_word(&spec.command),
        workdir: spec.workdir.display().to_string(),
        source,
    })?;
    let waiting = pipes.map(Pipes::spawned);
    let pid = child.id();
    let mut group = KillGroupOnDrop(pid);
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let redact = spec.redact.clone();

    let out_task = tokio::spawn(async move {
        let mut kept = Vec::new();
        let mut truncated = false;
        if let Some(mut s) = stdout {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = s.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > MAX_STDOUT {
                    let cut = kept.len() - MAX_STDOUT;
                    kept.drain(..cut);
                    truncated = true;
                }
            }
        }
        Ok::<_, std::io::Error>((kept, truncated))
    });
    let log = Arc::new(Mutex::new(LogLines::new(redact)));
    let lines = log.clone();
    let err_task = tokio::spawn(async move {
        if let Some(s) = stderr {
            let mut stream = BufReader::new(s).split(b'\n');
            while let Some(line) = stream.next_segment().await? {
                lines.lock().unwrap_or_else(|e| e.into_inner()).push(&line);
            }
        }
        Ok::<_, std::io::Error>(())
    });
    let proxy = match waiting {
        Some(waiting) => open_egress(spec, waiting, &log).await,
        None => None,
    };

    let exit = match tokio::time::timeout(spec.timeout, child.wait()).await {
        Ok(status) => {
            let status = status?;
            if status.success() {
                Exit::Success
            } else {
                Exit::Failure(status.code())
            }
        }
        Err(_) => {
            kill_group(pid);
            let _ = child.kill().await;
            Exit::TimedOut
        }
    };
    // The program is done: so are its tunnels.
    drop(proxy);
    // Grandchildren may hold the pipes open; the group was killed on timeout,
    // and on a normal exit they get a moment before the pipes are abandoned.
    let grace = Duration::from_secs(2);
    let (stdout, truncated) = match tokio::time::timeout(grace, out_task).await {
        Ok(Ok(Ok(v))) => v,
        _ => (Vec::new(), false),
    };
    let _ = tokio::time::timeout(grace, err_task).await;
    let log = log.lock().unwrap_or_else(|e| e.into_inner()).take();
    if exit != Exit::TimedOut {
        kill_group(pid);
    }
    group.0 = None;
    Ok(ProcessOutcome { exit, stdout_json: last_json(&stdout), stdout_truncated: truncated, log })
}

/// `sh -c <command>`, in the sandbox when there is one, with a clean
/// environment. bwrap's own environment is cleared too: inside the sandbox
/// it is PID 1, and its `/proc/1/environ` is readable there.
fn command(spec: &ProcessSpec, sync: Option<SyncFds>) -> Result<Command, ProcessError> {
    let (mut cmd, passed) = match &spec.sandbox {
        Some(s) => {
            let (program, args) = sandbox::command_line(s, &spec.command, sync)?;
            let mut cmd = Command::new(program);
            cmd.args(args);
            (cmd, PASSED_INTO_SANDBOX)
        }
        None => {
            let mut cmd = Command::new("sh");
            cmd.arg("-c").arg(&spec.command);
            (cmd, PASSED_THROUGH)
        }
    };
    cmd.current_dir(&spec.workdir).env_clear();
    for name in passed {
        if let Ok(v) = std::env::var(name) {
            cmd.env(name, v);
        }
    }
    if let Some(s) = &spec.sandbox {
        cmd.env("HOME", sandbox::HOME_DIR).env("TMPDIR", "/tmp");
        if s.egress.is_some() {
            cmd.envs(sandbox_net::proxy_env());
        }
    }
    Ok(cmd)
}

/// Opens the program's egress proxy and lets the program start; the proxy's
/// refusals join the log as they happen. Without it the program has no
/// network, which the log says once.
async fn open_egress(spec: &ProcessSpec, waiting: Waiting, log: &Arc<Mutex<LogLines>>) -> Option<EgressProxy> {
    let policy = spec.sandbox.as_ref().and_then(|s| s.egress)?;
    let lines = log.clone();
    let notes: Notes = Arc::new(move |note: String| {
        lines.lock().unwrap_or_else(|e| e.into_inner()).push(note.as_bytes());
    });
    match waiting.open_and_release(policy, notes).await {
        Ok(proxy) => Some(proxy),
        Err(why) => {
            tracing::warn!(%why, "sandboxed program runs without network");
            let note = format!("egress: this program has no network: {why}");
            log.lock().unwrap_or_else(|e| e.into_inner()).push(note.as_bytes());
            None
        }
    }
}

/// stderr lines, redacted and bounded: the first half of [`MAX_LOG_LINES`]
/// and a rolling tail.
struct LogLines {
    lines: Vec<String>,
    dropped: usize,
    redact: Redactor,
}

impl LogLines {
    fn new(redact: Redactor) -> Self {
        Self { lines: Vec::new(), dropped: 0, redact }
    }

    fn push(&mut self, line: &[u8]) {
        let mut text = String::from_utf8_lossy(line).trim_end_matches('\r').to_owned();
        self.redact.redact_in_place(&mut text);
        if text.len() > MAX_LINE {
            let mut cut = MAX_LINE;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push('…');
        }
        if self.lines.len() < MAX_LOG_LINES {
            self.lines.push(text);
        } else {
            self.lines.remove(MAX_LOG_LINES / 2);
            self.lines.push(text);
            self.dropped += 1;
        }
    }

    fn take(&mut self) -> Vec<String> {
        let mut log = std::mem::take(&mut self.lines);
        if self.dropped > 0 {
            log.insert(MAX_LOG_LINES / 2, format!("… {} lines omitted …", self.dropped));
        }
        log
    }
}

/// Kills the process group when [`execute`] is dropped before it ended (a
/// cancelled run): `kill_on_drop` reaches only the shell, not what it started.
struct KillGroupOnDrop(Option<u32>);

impl Drop for KillGroupOnDrop {
    fn drop(&mut self) {
        kill_group(self.0.take());
    }
}

#[cfg(unix)]
fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        // SAFETY: killpg only sends a signal; the group is the child's own
        // (process_group(0)), so nothing of the host is touched.
        unsafe {
            libc::killpg(pid, libc::SIGKILL);
        }
    }
}

#[cfg(not(unix))]
fn kill_group(_pid: Option<u32>) {}

fn first_word(command: &str) -> String {
    command.split_whitespace().next().unwrap_or("").to_owned()
}

/// The last JSON value on stdout: the whole output when it is one JSON
/// document, else the last line that is.
pub fn last_json(stdout: &[u8]) -> Option<Value> {
    let text = String::from_utf8_lossy(stdout);
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return None;
    }
    if let Ok(v) = serde_json::from_str::<Value>(trimmed) {
        return Some(v);
    }
    trimmed.lines().rev().map(str::trim).filter(|l| !l.is_empty()).find_map(|l| serde_json::from_str(l).ok())
}

/// `PAN_CFG_<NAME>`: strings as they are, booleans as `true`/`false`, other
/// values as JSON.
pub fn config_env(configs: &serde_json::Map<String, Value>) -> Vec<(String, String)> {
    configs
        .iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                other => other.to_string(),
            };
            (format!("PAN_CFG_{}", env_name(k)), text)
        })
        .collect()
}

/// Upper case, with anything but ASCII letters and digits as `_`.
pub fn env_name(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_is_the_last_json_line_or_the_whole_document() {
        assert_eq!(last_json(b"starting\n{\"a\":1}\n{\"a\":2}\n"), Some(serde_json::json!({"a": 2})));
        assert_eq!(last_json(b"{\n  \"a\": [1,\n 2]\n}\n"), Some(serde_json::json!({"a": [1, 2]})));
        assert_eq!(last_json(b"no json here\n"), None);
        assert_eq!(last_json(b""), None);
    }

    #[test]
    fn config_names_and_values_follow_pandium() {
        let configs = serde_json::json!({"poke-type": "fire", "dry_run": true, "limit": 5, "tags": ["a"]});
        let mut env = config_env(configs.as_object().expect("object"));
        env.sort();
        assert_eq!(
            env,
            vec![
                ("PAN_CFG_DRY_RUN".into(), "true".into()),
                ("PAN_CFG_LIMIT".into(), "5".into()),
                ("PAN_CFG_POKE_TYPE".into(), "fire".into()),
                ("PAN_CFG_TAGS".into(), "[\"a\"]".into()),
            ]
        );
    }
}
