use clap::Parser;

// No #[tokio::main]: the environment is changed below, which is only sound
// before the runtime's worker threads exist.
fn main() -> std::process::ExitCode {
    ferry_core::hardening::make_non_dumpable();
    let startup = ferry::cli::Startup::take_from_env();
    ferry_core::allocator::return_large_buffers_to_the_system();
    let cli = ferry::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ferry: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(ferry::cli::run(cli, startup)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferry: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
