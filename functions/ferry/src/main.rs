use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    ferry_shared::allocator::return_large_buffers_to_the_system();
    let cli = ferry::cli::Cli::parse();
    match ferry::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferry: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
