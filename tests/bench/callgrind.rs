//! A child process under Valgrind's callgrind, whose instruction counts the
//! bench reads between two points of its own choosing.
//!
//! Instructions executed do not depend on what else the machine is doing, so
//! two builds can be compared on a busy, shared VM where CPU time cannot. The
//! process starts with its counters running; `zero` resets them and `dump`
//! writes what was counted since into a file of its own (`callgrind_control`,
//! which reaches the process through Valgrind's gdbserver) and returns the
//! total `Ir`. The dumps stay readable by `callgrind_annotate`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context as _};

pub(crate) struct Callgrind {
    /// `--callgrind-out-file`: dump n is written to `<out>.<n>`.
    out: PathBuf,
    dumps: usize,
}

impl Callgrind {
    /// Dumps go to `dir`; fails early, with what to install, when Valgrind is missing.
    pub(crate) fn new(dir: &Path) -> anyhow::Result<Self> {
        for tool in ["valgrind", "callgrind_control"] {
            let found = Command::new(tool).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
            if found.is_err() {
                bail!("{tool} not found: install Valgrind (e.g. `apt-get install valgrind`)");
            }
        }
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Self { out: dir.join("callgrind.out"), dumps: 0 })
    }

    /// `binary` under callgrind; the child's pid is the one `zero` and `dump` take.
    pub(crate) fn command(&self, binary: &Path) -> Command {
        let mut cmd = Command::new("valgrind");
        // -q: only Valgrind's errors on stderr, not its banner.
        cmd.arg("-q").arg("--tool=callgrind").arg(format!("--callgrind-out-file={}", self.out.display())).arg(binary);
        cmd
    }

    /// Resets every thread's counters.
    pub(crate) fn zero(&self, pid: u32) -> anyhow::Result<()> {
        control(pid, &["-z"])
    }

    /// Writes the counts since the last `zero` (or dump) to a file named by
    /// `label`'s dump number and returns their total instructions (`Ir`).
    pub(crate) fn dump(&mut self, pid: u32, label: &str) -> anyhow::Result<Dump> {
        control(pid, &["-d", label])?;
        self.dumps += 1;
        let path = PathBuf::from(format!("{}.{}", self.out.display(), self.dumps));
        let text = std::fs::read_to_string(&path).with_context(|| format!("callgrind wrote no {}", path.display()))?;
        let instructions = total_ir(&text).with_context(|| format!("no instruction total in {}", path.display()))?;
        Ok(Dump { instructions, path })
    }
}

pub(crate) struct Dump {
    pub(crate) instructions: u64,
    pub(crate) path: PathBuf,
}

fn control(pid: u32, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("callgrind_control")
        .args(args)
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .output()
        .context("cannot run callgrind_control")?;
    let said = String::from_utf8_lossy(&out.stdout);
    // It exits 0 even when it found no such process; "OK." is its success.
    if !out.status.success() || !said.contains("OK.") {
        bail!(
            "callgrind_control {} {pid}: {}{}",
            args.join(" "),
            said.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The dump's `summary:` line (the tool's own total of the part), else its `totals:`.
fn total_ir(text: &str) -> Option<u64> {
    let line = |prefix: &str| text.lines().find_map(|l| l.strip_prefix(prefix));
    let first = |v: &str| v.split_whitespace().next().and_then(|n| n.parse().ok());
    line("summary:").and_then(first).or_else(|| line("totals:").and_then(first))
}
