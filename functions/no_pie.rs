//! Build script of every binary crate under functions/ (`build = "../no_pie.rs"`):
//! links the binaries as position-dependent executables on Linux (glibc). A PIE
//! carries ~1.8 MB of relocations that the loader applies at every start,
//! copying ~1.7 MB of read-only data into private memory; without them a
//! function binary is that much smaller and `ferry up` resident memory ~3.5 MB
//! lower (README, Benchmarks). The cost is a fixed load address for the
//! executable itself (libraries, heap and stacks stay randomised), as in Go's
//! default Linux builds. Only binaries: proc-macro libraries must stay PIC.
fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.ends_with("-linux-gnu") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
