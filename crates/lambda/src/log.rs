//! The log subscriber of a Lambda function.
//!
//! What `lambda_runtime::tracing::init_default_subscriber` sets up, with the
//! same environment: the level from `AWS_LAMBDA_LOG_LEVEL` (Lambda's logging
//! controls, infra/template.yaml), else the directives of `RUST_LOG`
//! (`debug`, `ferry_service=debug,warn`), else INFO; JSON lines when
//! `AWS_LAMBDA_LOG_FORMAT` is `JSON`; no timestamps (Lambda adds them) and no
//! targets. It filters with tracing-subscriber's `Targets` rather than the
//! runtime's `EnvFilter`, whose span and field filters (unused here) need
//! regex-automata's dense DFAs, which then also serve every other regex of
//! the binary (jsonschema's): without it, and without the runtime's
//! `tracing` feature that enables it, a function binary is ~0.1 MB smaller
//! (README.md, "Cold starts"). `RUST_LOG` span and field directives are not
//! supported; Lambda's logging controls set a level only.

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

/// Installs the subscriber; call once, first thing in `main`.
pub fn init() {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let filter = match var("AWS_LAMBDA_LOG_LEVEL") {
        // Lambda's levels include FATAL, which tracing does not have: INFO then, as the runtime does.
        Some(level) => Targets::new().with_default(level.trim().parse().unwrap_or(LevelFilter::INFO)),
        None => var("RUST_LOG")
            .and_then(|directives| directives.parse::<Targets>().ok())
            .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO)),
    };
    let json = var("AWS_LAMBDA_LOG_FORMAT").is_some_and(|f| f.trim().eq_ignore_ascii_case("json"));
    let layer = tracing_subscriber::fmt::layer().with_target(false).without_time();
    if json {
        tracing_subscriber::registry().with(layer.json().with_filter(filter)).init();
    } else {
        tracing_subscriber::registry().with(layer.with_filter(filter)).init();
    }
}
