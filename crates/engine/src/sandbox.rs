//! The sandbox process integrations run in: bubblewrap (`bwrap`, Debian's
//! `bubblewrap` package) gives the program its own PID, mount, IPC, UTS and
//! (unless private networks are allowed) network namespaces. Its filesystem
//! is read-only system folders, its own code, a fresh `/proc`, a minimal
//! `/dev` and empty tmpfs `/tmp` and `HOME`: never the hub's data directory,
//! never the hub's `/proc`.
//!
//! The program never runs as the hub's user. A hub running as root starts
//! bwrap privileged and `setpriv` drops the program to [`SANDBOX_UID`] with
//! no capabilities and no way to regain any; any other hub, and any build
//! (which writes into the integration's folder), starts bwrap in a user
//! namespace where the program is [`SANDBOX_UID`], mapped to the hub's uid
//! outside, which it can use only on what is mounted in.
//!
//! Without the host network the program may still reach public https
//! services through the hub's egress proxy ([`ferry_net::egress`]): bwrap
//! reports the sandbox's PID (`--info-fd`) and waits (`--block-fd`) while the
//! hub opens the proxy's listener inside the sandbox's network namespace
//! ([`super::sandbox_net`]).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The user and group programs run as (`nobody` on Debian).
pub const SANDBOX_UID: u32 = 65534;
/// The program's code folder inside the sandbox (and its working directory).
pub const CODE_DIR: &str = "/integration";
/// The program's `HOME`: an empty tmpfs per run.
pub const HOME_DIR: &str = "/home/sandbox";
/// Where files the hub hands the program (its tenant's metadata) appear.
pub const INPUT_DIR: &str = "/run/ferry";

/// Whether process integrations run sandboxed (`FERRY_PROCESS_SANDBOX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SandboxMode {
    /// In bubblewrap; a host without it fails the run rather than run it bare.
    #[default]
    Bubblewrap,
    /// As the hub's own user with its filesystem (`FERRY_PROCESS_SANDBOX=off`):
    /// only for hosts that run their own integrations and no one else's.
    Off,
}

/// What one program may see besides the system folders.
#[derive(Debug, Clone)]
pub struct SandboxSpec {
    /// The integration's folder, mounted at [`CODE_DIR`].
    pub code: PathBuf,
    /// A build writes into its folder; a run only reads it.
    pub code_writable: bool,
    /// Share the host's network (private addresses allowed); otherwise the
    /// program gets a network namespace of its own with only loopback.
    pub host_network: bool,
    /// Host files mounted read-only under [`INPUT_DIR`] by their file name.
    pub inputs: Vec<PathBuf>,
    /// Without the host network: the policy of the egress proxy the program
    /// reaches at [`super::sandbox_net::PROXY_URL`]; `None`, no network at all.
    pub egress: Option<ferry_net::NetPolicy>,
}

/// Descriptors bwrap inherits: it writes the sandbox's PID as JSON to `info`
/// and waits for a byte on `block` before it runs the program.
#[derive(Debug, Clone, Copy)]
pub struct SyncFds {
    pub info: std::os::fd::RawFd,
    pub block: std::os::fd::RawFd,
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "process integrations run in a bubblewrap sandbox and `bwrap` was not found on this host; \
         install it (Debian: apt-get install bubblewrap) or set FERRY_PROCESS_SANDBOX=off to run \
         programs as the hub's own user (unsafe on a multi-tenant host)"
    )]
    MissingBwrap,
    #[error(
        "the hub runs as root, so the sandbox drops the program to uid {SANDBOX_UID} with `setpriv`, \
         which was not found (Debian: util-linux)"
    )]
    MissingSetpriv,
}

/// The path inside the sandbox of an input file given in [`SandboxSpec::inputs`].
pub fn input_path(host: &Path) -> String {
    let name = host.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    format!("{INPUT_DIR}/{name}")
}

/// The program and arguments that run `sh -c <command>` inside the sandbox.
pub fn command_line(
    spec: &SandboxSpec,
    command: &str,
    sync: Option<SyncFds>,
) -> Result<(PathBuf, Vec<OsString>), SandboxError> {
    command_line_using(spec, command, sync, find_program)
}

fn command_line_using(
    spec: &SandboxSpec,
    command: &str,
    sync: Option<SyncFds>,
    find_program: impl Fn(&str) -> Option<PathBuf>,
) -> Result<(PathBuf, Vec<OsString>), SandboxError> {
    let bwrap = find_program("bwrap").ok_or(SandboxError::MissingBwrap)?;
    // A build writes into its folder, which the hub's user owns: it runs in a
    // user namespace, as SANDBOX_UID mapped to the hub's user (root's without
    // any capability) and able to write only where it is mounted writable.
    let drop_root = is_root() && !spec.code_writable;
    let mut args = Vec::new();
    namespaces(&mut args, spec.host_network, drop_root);
    if let Some(fds) = sync {
        push(&mut args, &["--info-fd", &fds.info.to_string(), "--block-fd", &fds.block.to_string()]);
    }
    system_mounts(&mut args);
    private_mounts(&mut args, spec);
    if drop_root {
        let setpriv = find_program("setpriv").ok_or(SandboxError::MissingSetpriv)?;
        let id = SANDBOX_UID.to_string();
        args.push(setpriv.into_os_string());
        // No capabilities, no groups, and no setuid binary can give any back.
        push(&mut args, &["--reuid", &id, "--regid", &id, "--clear-groups", "--inh-caps=-all"]);
        push(&mut args, &["--bounding-set=-all", "--no-new-privs", "--"]);
    }
    push(&mut args, &["sh", "-c", command]);
    Ok((bwrap, args))
}

fn push(args: &mut Vec<OsString>, items: &[&str]) {
    args.extend(items.iter().map(OsString::from));
}

/// Everything but the mounts. `--die-with-parent` ends the whole PID
/// namespace when the hub kills bwrap (a timeout); `--new-session` keeps the
/// program off the hub's terminal.
fn namespaces(args: &mut Vec<OsString>, host_network: bool, drop_root: bool) {
    push(args, &["--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]);
    push(args, &["--unshare-cgroup-try"]);
    if !host_network {
        push(args, &["--unshare-net"]);
    }
    if !drop_root {
        let id = SANDBOX_UID.to_string();
        push(args, &["--unshare-user", "--uid", &id, "--gid", &id]);
    }
}

/// The program's own `/proc`, `/dev`, scratch space, code and inputs.
fn private_mounts(args: &mut Vec<OsString>, spec: &SandboxSpec) {
    push(args, &["--proc", "/proc", "--dev", "/dev"]);
    push(args, &["--perms", "1777", "--tmpfs", "/tmp", "--perms", "0755", "--dir", "/home"]);
    push(args, &["--perms", "0777", "--tmpfs", HOME_DIR]);
    let bind = if spec.code_writable { "--bind" } else { "--ro-bind" };
    args.extend([bind.into(), spec.code.clone().into_os_string(), CODE_DIR.into()]);
    // Made explicitly: bwrap would create them private to root, which a
    // program dropped to SANDBOX_UID could not enter.
    push(args, &["--perms", "0755", "--dir", "/run", "--perms", "0755", "--dir", INPUT_DIR]);
    for input in &spec.inputs {
        args.extend(["--ro-bind".into(), input.clone().into_os_string(), input_path(input).into()]);
    }
    push(args, &["--chdir", CODE_DIR]);
}

/// Read-only system folders interpreters need. On merged-/usr systems
/// `/bin` and `/lib*` are links into `/usr` and stay links.
fn system_mounts(args: &mut Vec<OsString>) {
    args.extend(["--ro-bind".into(), "/usr".into(), "/usr".into()]);
    for top in ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
        match std::fs::read_link(top) {
            Ok(target) => args.extend(["--symlink".into(), target.into_os_string(), top.into()]),
            Err(_) => args.extend(["--ro-bind-try".into(), top.into(), top.into()]),
        }
    }
    // Name resolution, TLS roots, time zones and the user database; nothing
    // else of /etc (no shadow, no host configuration).
    for etc in [
        "/etc/resolv.conf",
        "/etc/hosts",
        "/etc/nsswitch.conf",
        "/etc/passwd",
        "/etc/group",
        "/etc/localtime",
        "/etc/ssl",
        "/etc/ca-certificates",
        "/etc/alternatives",
        "/etc/ld.so.cache",
    ] {
        args.extend(["--ro-bind-try".into(), etc.into(), etc.into()]);
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `name` in the hub's `PATH`, else in the standard system folders.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/bin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Whether this host can sandbox programs at all (`bwrap` is installed).
pub fn available() -> bool {
    find_program("bwrap").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(host_network: bool) -> SandboxSpec {
        SandboxSpec {
            code: PathBuf::from("/srv/code"),
            code_writable: false,
            host_network,
            inputs: vec![PathBuf::from("/tmp/x/tenant-metadata.json")],
            egress: None,
        }
    }

    /// Arguments as on a host where every tool is installed in /usr/bin.
    fn args_of(spec: &SandboxSpec) -> Option<Vec<String>> {
        let find = |name: &str| Some(PathBuf::from(format!("/usr/bin/{name}")));
        let (_, args) = command_line_using(spec, "true", None, find).ok()?;
        Some(args.iter().map(|a| a.to_string_lossy().into_owned()).collect())
    }

    #[test]
    fn the_program_gets_its_own_namespaces_and_no_host_network_by_default() {
        let Some(args) = args_of(&spec(false)) else { return };
        for flag in ["--unshare-pid", "--unshare-net", "--die-with-parent", "--new-session"] {
            assert!(args.iter().any(|a| a == flag), "{flag} missing: {args:?}");
        }
        let Some(shared) = args_of(&spec(true)) else { return };
        assert!(!shared.iter().any(|a| a == "--unshare-net"), "{shared:?}");
    }

    #[test]
    fn the_sync_descriptors_are_handed_to_bwrap_when_given() {
        let find = |name: &str| Some(PathBuf::from(format!("/usr/bin/{name}")));
        let (_, args) =
            command_line_using(&spec(false), "true", Some(SyncFds { info: 7, block: 9 }), find).expect("args");
        let args: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        assert!(args.windows(4).any(|w| w == ["--info-fd", "7", "--block-fd", "9"]), "{args:?}");
        assert!(args.iter().any(|a| a == "--unshare-net"), "{args:?}");
    }

    #[test]
    fn without_bwrap_there_is_no_command_but_an_error_naming_the_tool_and_the_opt_out() {
        let err = command_line_using(&spec(false), "true", None, |_| None).expect_err("no bwrap, no command");
        let message = err.to_string();
        assert!(message.contains("bubblewrap") && message.contains("FERRY_PROCESS_SANDBOX=off"), "{message}");
    }

    #[test]
    fn a_build_may_write_its_folder_and_a_run_may_not() {
        let mut build = spec(false);
        build.code_writable = true;
        let find = |name: &str| Some(PathBuf::from(format!("/usr/bin/{name}")));
        let (_, run_args) = command_line_using(&spec(false), "true", None, find).expect("run");
        let (_, build_args) = command_line_using(&build, "true", None, find).expect("build");
        let bound = |args: &[OsString], flag: &str| {
            args.windows(3).any(|w| w[0] == flag && w[1] == "/srv/code" && w[2] == CODE_DIR)
        };
        assert!(bound(&run_args, "--ro-bind"), "{run_args:?}");
        assert!(bound(&build_args, "--bind"), "{build_args:?}");
    }

    #[test]
    fn inputs_appear_read_only_under_the_input_dir_by_name() {
        assert_eq!(input_path(Path::new("/tmp/x/tenant-metadata.json")), "/run/ferry/tenant-metadata.json");
        let Some(args) = args_of(&spec(false)) else { return };
        let at = args.iter().position(|a| a == "/tmp/x/tenant-metadata.json").expect("input mounted");
        assert_eq!(args[at - 1], "--ro-bind");
        assert_eq!(args[at + 1], "/run/ferry/tenant-metadata.json");
    }
}
