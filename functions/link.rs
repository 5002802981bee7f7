//! Build script of every binary crate under functions/ (`build = "../link.rs"`):
//! how the binaries are linked on Linux (glibc).
//!
//! Position-dependent: a PIE carries ~1.8 MB of relocations that the loader
//! applies at every start, copying ~1.7 MB of read-only data into private
//! memory; without them a function binary is that much smaller and `ferry up`
//! resident memory ~3.5 MB lower (README, Benchmarks). The cost is a fixed load
//! address for the executable itself (libraries, heap and stacks stay
//! randomised), as in Go's default Linux builds. Only binaries: proc-macro
//! libraries must stay PIC.
//!
//! The Lambda functions' `release` builds without unwind tables: their panics
//! abort (root `Cargo.toml`), nothing unwinds, and the tables only served backtraces,
//! which in a stripped binary name no function anyway. They were 1.2-1.3 MB of
//! each larger function (`.eh_frame` and its index). A panic still logs its
//! message and location, then aborts. Builds that unwind (tests, `ferry` in
//! the `host` profile) keep them. Checked with GNU ld (x86_64) and with zig cc
//! for aarch64 (`cargo lambda build --arm64`'s cross linker) on a small crate.
fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    if !target.ends_with("-linux-gnu") {
        return;
    }
    println!("cargo:rustc-link-arg-bins=-no-pie");
    // Build scripts are not told the profile's panic strategy, only its root profile (`release` for `host`
    // too, which inherits it): the Lambda functions' release builds abort; `ferry`, whose `host` build
    // unwinds, keeps its tables in every profile.
    let lambda_release = std::env::var("PROFILE").as_deref() == Ok("release")
        && std::env::var("CARGO_PKG_NAME").as_deref() != Ok("ferry");
    if lambda_release {
        let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
        let script = std::path::Path::new(&dir).join("../no_unwind_tables.ld");
        println!("cargo:rerun-if-changed={}", script.display());
        println!("cargo:rustc-link-arg-bins=-Wl,--no-eh-frame-hdr");
        // Its INSERT makes the script add to the linker's default layout rather than replace it (GNU ld and
        // lld alike; `-T` rather than the script as an input file, which zig cc, cargo lambda's cross
        // linker, refuses).
        println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", script.display());
    }
}
