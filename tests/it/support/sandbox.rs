//! Whether this machine can sandbox process integrations (bubblewrap is
//! installed). tests/run installs it and sets `FERRY_REQUIRE_SANDBOX=1`, so
//! there a missing `bwrap` fails the sandbox tests instead of skipping them.

use ferry_engine::sandbox::{self, SandboxMode};

fn required() -> bool {
    std::env::var("FERRY_REQUIRE_SANDBOX").is_ok_and(|v| v == "1")
}

/// True when the sandbox tests can run; false (with a note) when they skip.
pub fn available_or_skip(test: &str) -> bool {
    if sandbox::available() {
        return true;
    }
    assert!(!required(), "FERRY_REQUIRE_SANDBOX=1 but bubblewrap (bwrap) is not installed: {test} cannot run");
    eprintln!("skipping {test}: bubblewrap (bwrap) is not installed (apt-get install bubblewrap)");
    false
}

/// For tests of the process contract itself: in the sandbox when this
/// machine has one, else unsandboxed (unless the sandbox is required).
pub fn mode_for_contract_tests() -> SandboxMode {
    if sandbox::available() {
        return SandboxMode::Bubblewrap;
    }
    assert!(!required(), "FERRY_REQUIRE_SANDBOX=1 but bubblewrap (bwrap) is not installed");
    SandboxMode::Off
}
