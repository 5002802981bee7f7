//! Process-wide protections every Ferry binary applies at start: the process
//! is not dumpable (its `/proc/<pid>/environ`, `mem` and `maps` are closed to
//! other processes of the same user, and it cannot be ptraced by them), and
//! secrets handed over in the environment are taken out of it once read.

/// Marks this process non-dumpable. A failure is reported, not fatal: the
/// binary still runs on kernels that refuse it.
pub fn make_non_dumpable() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_DUMPABLE takes a plain integer and touches only this process's flags.
        let rc = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
        if rc != 0 {
            eprintln!("ferry: could not mark the process non-dumpable: {}", std::io::Error::last_os_error());
        }
    }
}

/// Whether this process is dumpable (for tests and health checks).
pub fn is_dumpable() -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_GET_DUMPABLE only reads this process's flag.
        unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) != 0 }
    }
    #[cfg(not(target_os = "linux"))]
    {
        true
    }
}

/// Reads a variable and removes it from the environment, so neither child
/// processes nor `/proc/<pid>/environ` readers see it afterwards. Call it
/// before any other thread starts: changing the environment races with
/// threads that read it.
pub fn take_env(name: &str) -> Option<String> {
    let value = std::env::var(name).ok();
    if std::env::var_os(name).is_some() {
        scrub_initial_environment(name);
        std::env::remove_var(name);
    }
    value.filter(|v| !v.is_empty())
}

/// `/proc/<pid>/environ` shows the environment block the process started
/// with, which removing a variable does not change: its value is zeroed
/// where it lies.
#[cfg(target_os = "linux")]
fn scrub_initial_environment(name: &str) {
    extern "C" {
        static mut environ: *mut *mut libc::c_char;
    }
    let prefix = format!("{name}=");
    // SAFETY: called before other threads exist (see `take_env`), so nothing
    // reads or changes `environ` meanwhile; each entry is a NUL-terminated
    // string owned by the process (its initial stack or libc's heap), and
    // only bytes before its terminator are overwritten.
    unsafe {
        let mut entry = environ;
        while !entry.is_null() && !(*entry).is_null() {
            let text = std::ffi::CStr::from_ptr(*entry).to_bytes();
            if text.starts_with(prefix.as_bytes()) {
                let value_len = text.len() - prefix.len();
                std::ptr::write_bytes((*entry).add(prefix.len()), 0, value_len);
            }
            entry = entry.add(1);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn scrub_initial_environment(_name: &str) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn a_non_dumpable_process_says_so() {
        make_non_dumpable();
        assert!(!is_dumpable());
    }

    #[test]
    fn a_taken_variable_is_gone_from_the_environment() {
        std::env::set_var("FERRY_HARDENING_TEST_VAR", "value");
        assert_eq!(take_env("FERRY_HARDENING_TEST_VAR").as_deref(), Some("value"));
        assert!(std::env::var_os("FERRY_HARDENING_TEST_VAR").is_none());
        assert_eq!(take_env("FERRY_HARDENING_TEST_VAR"), None);
    }
}
