//! The `ferry` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use ferry_engine::sandbox::SandboxMode;
use ferry_service::config::{self, Config, PublicUrl};
use ferry_service::Settings;
use tokio::net::TcpListener;

use crate::host::{self, Backend};

#[derive(Debug, Parser)]
#[command(name = "ferry", version, about = "Ferry: a multi-tenant integration hub")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the hub: every function in one process.
    Up(UpArgs),
    /// Check integration manifests: a PANDIUM.yaml, an integration folder, or a folder of them.
    Validate {
        path: PathBuf,
        /// Print the diagnostics as a JSON list instead.
        #[arg(long)]
        json: bool,
    },
    /// Validate a manifest, then publish it as the integration's next release.
    Publish(crate::publish::PublishArgs),
    /// Trigger a run of a job and follow it to the end.
    Run(crate::run::RunArgs),
    /// Jobs' schedules on EventBridge Scheduler (AWS deployments).
    #[command(subcommand)]
    Schedules(crate::schedules::SchedulesCommand),
    /// Platform administration against the store (AWS deployments: the first admin user).
    #[command(subcommand)]
    Admin(crate::admin::AdminCommand),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// SQLite + encrypted files under --data-dir.
    Embedded,
    /// DynamoDB + Secrets Manager (honours AWS_ENDPOINT_URL for emulators).
    Aws,
}

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Address to listen on.
    #[arg(long, env = "FERRY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Directory of the embedded store and secrets.
    #[arg(long, env = "FERRY_DATA_DIR", default_value = ".ferry")]
    pub data_dir: PathBuf,
    #[arg(long, env = "FERRY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[arg(long, env = "FERRY_BACKEND", value_enum, default_value_t = BackendKind::Embedded)]
    pub backend: BackendKind,
    /// DynamoDB table (aws backend).
    #[arg(long, env = "FERRY_TABLE", default_value = "ferry")]
    pub table: String,
    /// Prefix of Secrets Manager secret names (aws backend).
    #[arg(long, env = "FERRY_SECRETS_PREFIX", default_value = "ferry")]
    pub secrets_prefix: String,
    /// AWS region (aws backend); defaults to the SDK's resolution, then us-east-1.
    #[arg(long, env = "AWS_REGION")]
    pub region: Option<String>,
    /// Create the DynamoDB table first (for emulators and first-time local use).
    #[arg(long)]
    pub create_table: bool,
    /// Base URL end customers and providers reach this hub at (magic links,
    /// OAuth redirect URI, webhook URLs); defaults to http://<listen>.
    #[arg(long, env = "FERRY_PUBLIC_URL", value_parser = flag(config::PUBLIC_URL, PublicUrl::parse))]
    pub public_url: Option<PublicUrl>,
    /// Let flows, credential checks, notifications, OAuth and process
    /// integrations reach loopback and private addresses (tests, benchmarks,
    /// APIs on your own network). Off by default.
    #[arg(
        long,
        env = "FERRY_ALLOW_PRIVATE_NETWORK",
        value_parser = flag(config::ALLOW_PRIVATE_NETWORK, config::parse_bool)
    )]
    pub allow_private_network: bool,
    /// Code of process integrations (`<dir>/<integration>/`); defaults to
    /// ./integrations when there is one.
    #[arg(long, env = "FERRY_INTEGRATIONS_DIR")]
    pub integrations_dir: Option<PathBuf>,
    /// Time limit of a process integration's run, in seconds [default: 900].
    #[arg(long, env = "FERRY_RUN_TIMEOUT_SECS", value_parser = flag(config::RUN_TIMEOUT_SECS, config::parse_secs))]
    pub run_timeout_secs: Option<Duration>,
    /// Stop declarative runs at a checkpoint after this many seconds and
    /// continue them (as on Lambda); by default they run in one go.
    #[arg(long, env = "FERRY_RUN_SLICE_SECS", value_parser = flag(config::RUN_SLICE_SECS, config::parse_secs))]
    pub run_slice_secs: Option<Duration>,
    /// Wall-clock budget of a run in seconds, across continuations and
    /// restarts [default: 7200].
    #[arg(long, env = "FERRY_RUN_BUDGET_SECS", value_parser = flag(config::RUN_BUDGET_SECS, config::parse_secs))]
    pub run_budget_secs: Option<Duration>,
    /// `PAN_CTX_ENV` of process integrations [default: local].
    #[arg(long = "env", env = "FERRY_ENV")]
    pub environment: Option<String>,
    /// `bubblewrap`, or `off` to run process integrations unsandboxed as
    /// this hub's user [default: bubblewrap].
    #[arg(long, env = "FERRY_PROCESS_SANDBOX", value_parser = flag(config::PROCESS_SANDBOX, config::parse_sandbox))]
    pub process_sandbox: Option<SandboxMode>,
}

impl UpArgs {
    /// The hub's configuration: what the flags (or their variables) set,
    /// and the defaults for the rest.
    pub fn config(&self) -> anyhow::Result<Config> {
        let d = Settings::default();
        let settings = Settings {
            integrations_dir: self.integrations_dir.clone(),
            process_timeout: self.run_timeout_secs.unwrap_or(d.process_timeout),
            environment: self.environment.clone().unwrap_or(d.environment),
            run_slice: self.run_slice_secs,
            run_budget: self.run_budget_secs.unwrap_or(d.run_budget),
            allow_private_network: self.allow_private_network,
            process_sandbox: self.process_sandbox.unwrap_or(d.process_sandbox),
            ..d
        };
        // This process serves the connect pages and hooks itself, so its own
        // address is a working default (unlike a Lambda function's).
        let public_url = match &self.public_url {
            Some(url) => url.clone(),
            None => PublicUrl::parse(&format!("http://{}", self.listen))
                .map_err(|e| anyhow::anyhow!("--listen {} makes no public URL: {e}", self.listen))?,
        };
        Ok(Config { settings, public_url: Some(public_url) })
    }
}

/// A value parser of `ferry_service::config` for a flag: clap's
/// error names the flag, this names the variable too, as either may have set it.
fn flag<T: 'static>(
    variable: &'static str,
    parse: fn(&str) -> Result<T, &'static str>,
) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static {
    move |text| parse(text).map_err(|expected| format!("expected {expected} (from the flag or {variable})"))
}

pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Secrets handed to the process in its environment, taken out of it at
/// start (before any thread exists) so programs it starts and readers of
/// its `/proc/<pid>/environ` never see them.
#[derive(Default)]
pub struct Startup {
    /// `FERRY_BOOTSTRAP_API_KEY`: the platform admin key to install on first start.
    pub bootstrap_key: Option<String>,
    /// `FERRY_ADMIN_EMAIL`: the email of the first platform admin user.
    pub admin_email: Option<String>,
    /// `FERRY_ADMIN_PASSWORD`: that user's password (else one is generated and printed once).
    pub admin_password: Option<String>,
}

impl Startup {
    pub fn take_from_env() -> Self {
        use ferry_core::hardening::take_env;
        Self {
            bootstrap_key: take_env("FERRY_BOOTSTRAP_API_KEY"),
            admin_email: take_env("FERRY_ADMIN_EMAIL"),
            admin_password: take_env("FERRY_ADMIN_PASSWORD"),
        }
    }
}

pub async fn run(cli: Cli, startup: Startup) -> anyhow::Result<()> {
    match cli.command {
        Command::Up(args) => up(args, startup).await,
        Command::Validate { path, json } => {
            if crate::validate::run(&path, json)? {
                Ok(())
            } else {
                Err(Invalid.into())
            }
        }
        Command::Publish(args) => crate::publish::run(args).await.map(|_| ()),
        Command::Schedules(cmd) => crate::schedules::run(cmd).await,
        Command::Admin(cmd) => crate::admin::run(cmd, startup).await,
        Command::Run(args) => {
            if crate::run::run(args).await? {
                Ok(())
            } else {
                Err(RunFailed.into())
            }
        }
    }
}

async fn up(args: UpArgs, startup: Startup) -> anyhow::Result<()> {
    init_tracing(args.log_format);
    let config = args.config()?;
    let backend = match args.backend {
        BackendKind::Embedded => Backend::Embedded { data_dir: args.data_dir },
        BackendKind::Aws => Backend::Aws {
            table: args.table,
            secrets_prefix: args.secrets_prefix,
            region: args.region,
            create_table: args.create_table,
        },
    };
    let hub = host::build_hub(&backend, config).await?;
    if hub.settings.allow_private_network {
        tracing::warn!(
            "--allow-private-network: outbound requests and process integrations may reach loopback and private addresses"
        );
    }
    announce_sandbox(&hub.settings);
    host::bootstrap(&hub, startup.bootstrap_key.as_deref()).await?;
    host::bootstrap_admin_user(&hub, startup.admin_email.as_deref(), startup.admin_password.as_deref()).await?;
    if matches!(backend, Backend::Embedded { .. }) {
        // This process is the only one running jobs on the embedded store, so
        // any run still holding a lease died with the previous process.
        let n = hub.recover_interrupted_runs().await.context("could not recover interrupted runs")?;
        if n > 0 {
            tracing::warn!(
                runs = n,
                "recorded runs interrupted by the last stop as failed; their checkpoints are kept"
            );
        }
    }
    let hub = host::start_scheduler(hub).await?;
    let listener = TcpListener::bind(args.listen).await.with_context(|| format!("cannot listen on {}", args.listen))?;
    host::serve(listener, hub, host::shutdown_signal()).await
}

/// Says once, at start, how process integrations will be isolated; loudly
/// when they will not be.
fn announce_sandbox(settings: &ferry_service::Settings) {
    use ferry_engine::sandbox::{self, SandboxMode};
    match settings.process_sandbox {
        SandboxMode::Off => tracing::warn!(
            "FERRY_PROCESS_SANDBOX=off: process integrations run UNSANDBOXED as this hub's user, with its files and network"
        ),
        SandboxMode::Bubblewrap if sandbox::available() => {
            tracing::info!("process integrations run in a bubblewrap sandbox")
        }
        SandboxMode::Bubblewrap => tracing::warn!(
            "bubblewrap (bwrap) is not installed: process integration runs will fail until it is (or FERRY_PROCESS_SANDBOX=off)"
        ),
    }
}

/// Validation found problems (already printed).
#[derive(Debug)]
pub struct Invalid;

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the manifest has problems")
    }
}

impl std::error::Error for Invalid {}

/// The run did not succeed (already printed).
#[derive(Debug)]
pub struct RunFailed;

impl std::fmt::Display for RunFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the run did not succeed")
    }
}

impl std::error::Error for RunFailed {}
