//! The local host: wires adapters into a hub and serves every function's router
//! in one process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use ferry_aws::{dynamodb, DynamoStore, SecretsManagerStore};
use ferry_embedded::{EmbeddedScheduler, FileSecretStore, LocalFileStore, SqliteStore};
use ferry_lambda::hub as aws;
use ferry_service::bootstrap::{AdminUserBootstrap, Bootstrap};
use ferry_service::config::Config;
use ferry_service::Hub;
use tokio::net::TcpListener;

/// Where the hub keeps its data.
#[derive(Debug, Clone)]
pub enum Backend {
    /// SQLite and encrypted file secrets under `data_dir`.
    Embedded { data_dir: PathBuf },
    /// DynamoDB and Secrets Manager (real AWS, or an emulator via `AWS_ENDPOINT_URL`).
    Aws { table: String, secrets_prefix: String, region: Option<String>, create_table: bool },
}

/// The hub on `backend`, configured with `config` (`ferry up`: [`crate::cli::UpArgs::config`]).
pub async fn build_hub(backend: &Backend, mut config: Config) -> anyhow::Result<Hub> {
    if config.settings.integrations_dir.is_none() {
        // `ferry up` from a checkout finds the sample integrations.
        let local = PathBuf::from("integrations");
        if local.is_dir() {
            config.settings.integrations_dir = std::fs::canonicalize(&local).ok();
        }
    }
    Ok(build_store_hub(backend).await?.with_config(config))
}

async fn build_store_hub(backend: &Backend) -> anyhow::Result<Hub> {
    match backend {
        Backend::Embedded { data_dir } => {
            std::fs::create_dir_all(data_dir)
                .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
            let store = SqliteStore::open(&data_dir.join("ferry.db")).context("cannot open the embedded store")?;
            let secrets = FileSecretStore::open(data_dir).context("cannot open the embedded secret store")?;
            let files = LocalFileStore::new(data_dir.join("files"));
            Ok(Hub::new(Arc::new(store), Arc::new(secrets))
                .with_files(Arc::new(files))
                .with_events(Arc::new(ferry_embedded::InProcessBus::default())))
        }
        Backend::Aws { table, secrets_prefix, region, create_table } => {
            let config = aws::load_sdk_config(region.clone()).await;
            let ddb = aws::dynamodb_client(&config);
            if *create_table {
                dynamodb::create_table(&ddb, table)
                    .await
                    .with_context(|| format!("cannot create DynamoDB table {table}"))?;
            }
            let store = DynamoStore::new(ddb, table.clone());
            let secrets = SecretsManagerStore::new(aws::secretsmanager_client(&config), secrets_prefix.clone());
            Ok(Hub::new(Arc::new(store), Arc::new(secrets)))
        }
    }
}

/// Gives the hub the embedded scheduler, fills its queue from the store (next
/// fire times from now: ticks missed while the host was down are skipped) and
/// starts firing ticks in the background.
pub async fn start_scheduler(hub: Hub) -> anyhow::Result<Hub> {
    let scheduler = Arc::new(EmbeddedScheduler::new(hub.clock.clone()));
    let hub = hub.with_scheduler(scheduler.clone());
    let rebuilt = hub.jobs().reconcile_schedules(false).await.context("cannot load the jobs' schedules")?;
    for problem in &rebuilt.invalid {
        tracing::warn!(problem, "a job's schedule does not compile; it is not scheduled");
    }
    tracing::info!(jobs = scheduler.len(), "embedded scheduler started");
    tokio::spawn(crate::ticks::run_embedded(hub.clone(), scheduler, std::future::pending()));
    Ok(hub)
}

/// Creates the first platform admin key when the store is empty and says so once.
pub async fn bootstrap(hub: &Hub, supplied: Option<&str>) -> anyhow::Result<()> {
    match hub.users().bootstrap(supplied).await.context("bootstrap failed")? {
        Bootstrap::AlreadyDone => {}
        Bootstrap::Installed => {
            tracing::info!("installed the platform admin key from FERRY_BOOTSTRAP_API_KEY")
        }
        Bootstrap::Generated(key) => {
            // Printed to stdout, not logged: logs are shipped and kept; this key must not be.
            println!("\nFirst start: created a platform admin API key. It is shown only this once:\n\n    {key}\n\nUse it as `Authorization: Bearer <key>`.\n");
        }
    }
    Ok(())
}

/// Creates the first platform admin user (who signs in to the console) when
/// the hub has none yet, and prints a generated password once.
pub async fn bootstrap_admin_user(hub: &Hub, email: Option<&str>, password: Option<&str>) -> anyhow::Result<()> {
    match hub.users().bootstrap_admin_user(email, password).await.context("creating the admin user failed")? {
        AdminUserBootstrap::AlreadyDone => {}
        AdminUserBootstrap::Created { email, generated_password: None } => {
            tracing::info!(%email, "created the platform admin user from FERRY_ADMIN_EMAIL / FERRY_ADMIN_PASSWORD")
        }
        AdminUserBootstrap::Created { email, generated_password: Some(password) } => {
            // Printed to stdout, not logged, as the admin key is.
            println!("\nFirst start: created the platform admin user. Sign in to the console at / with\n\n    email:    {email}\n    password: {password}\n\nThe password is shown only this once.\n");
        }
    }
    Ok(())
}

/// Every function's router, mounted in one app: the admin API, the webhook
/// intake, the connect pages and the operator console (at `/`).
pub fn app(hub: Hub) -> axum::Router {
    ferry_http::intake::router(hub.clone(), ferry_http::intake::TriggerMode::Background)
        .merge(ferry_http::connect::router(hub.clone()))
        .merge(ferry_console::router(hub.clone()))
        .merge(ferry_http::api::router(hub))
}

/// Delivers due notifications every second (the schedule itself is in the
/// store, so a restart loses nothing); what the notifications function does on AWS.
pub fn spawn_notifier(hub: Hub) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let notifier = match ferry_service::notifications::Notifier::new(std::time::Duration::from_secs(10)) {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "notifications are off");
                return;
            }
        };
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            if let Err(e) = hub.notifications().deliver_due_notifications(&notifier, 100).await {
                tracing::warn!(error = %e, "delivering notifications failed; retrying next tick");
            }
        }
    })
}

/// Serves until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    listener: TcpListener,
    hub: Hub,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr: SocketAddr = listener.local_addr()?;
    tracing::info!(%addr, store = hub.store.backend_name(), secrets = hub.secrets.backend_name(), "ferry hub listening");
    let notifier = spawn_notifier(hub.clone());
    // The peer address is what sign-in throttling counts per source (api/source_addr.rs).
    let app = app(hub).into_make_service_with_connect_info::<SocketAddr>();
    let served = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
    notifier.abort();
    served.context("server error")?;
    tracing::info!("ferry hub stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}
