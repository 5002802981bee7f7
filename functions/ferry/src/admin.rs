//! `ferry admin create-user`: the first platform admin user of a hub whose
//! functions cannot make one themselves (AWS: no function starts with the
//! store to itself as `ferry up` does). Runs against the deployment's store
//! with the operator's credentials, and also makes the platform signing key,
//! which the console function may read but not create (infra/template.yaml).

use std::io::BufRead as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use ferry_aws::SecretsManagerStore;
use ferry_lambda::hub as aws;
use ferry_service::bootstrap::AdminUserBootstrap;
use ferry_service::config::Config;

use crate::cli::{BackendKind, Startup};
use crate::host::{self, Backend};

#[derive(Debug, clap::Subcommand)]
pub enum AdminCommand {
    /// Create the hub's first platform admin user (who signs in to the console).
    ///
    /// The password comes from stdin with --password-stdin, else from
    /// FERRY_ADMIN_PASSWORD; with neither, one is generated and printed once.
    /// Does nothing when the hub already has its first admin user.
    CreateUser(CreateUserArgs),
}

#[derive(Debug, clap::Args)]
pub struct CreateUserArgs {
    /// The user's email [default: FERRY_ADMIN_EMAIL, else admin@ferry.local].
    #[arg(long)]
    pub email: Option<String>,
    /// Read the password from the first line of stdin.
    #[arg(long)]
    pub password_stdin: bool,
    #[arg(long, env = "FERRY_BACKEND", value_enum, default_value_t = BackendKind::Aws)]
    pub backend: BackendKind,
    /// DynamoDB table of the deployment (aws backend; the stack's TableName output).
    #[arg(long, env = aws::ENV_TABLE, default_value = "ferry")]
    pub table: String,
    /// Prefix of the deployment's secrets (aws backend; the stack's SecretsPrefix output).
    #[arg(long, env = aws::ENV_SECRETS_PREFIX, default_value = "ferry")]
    pub secrets_prefix: String,
    /// KMS key for the platform signing key if this command creates it (the stack's SecretsKeyArn output);
    /// without it Secrets Manager's default key encrypts it.
    #[arg(long, env = aws::ENV_SECRETS_KMS_KEY_ID)]
    pub kms_key_id: Option<String>,
    /// AWS region; defaults to the SDK's resolution, then us-east-1.
    #[arg(long, env = "AWS_REGION")]
    pub region: Option<String>,
    /// Directory of the embedded store (embedded backend).
    #[arg(long, env = "FERRY_DATA_DIR", default_value = ".ferry")]
    pub data_dir: PathBuf,
}

pub async fn run(cmd: AdminCommand, startup: Startup) -> anyhow::Result<()> {
    let AdminCommand::CreateUser(args) = cmd;
    crate::cli::init_tracing(crate::cli::LogFormat::Text);
    let password = if args.password_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("cannot read the password from stdin")?;
        let line = line.trim_end_matches(['\r', '\n']).to_owned();
        anyhow::ensure!(!line.is_empty(), "--password-stdin: stdin held no password");
        Some(line)
    } else {
        startup.admin_password
    };
    let email = args.email.or(startup.admin_email);
    let backend = match args.backend {
        BackendKind::Embedded => Backend::Embedded { data_dir: args.data_dir },
        BackendKind::Aws => Backend::Aws {
            table: args.table,
            secrets_prefix: args.secrets_prefix.clone(),
            region: args.region.clone(),
            create_table: false,
        },
    };
    let mut hub = host::build_hub(&backend, Config::default()).await?;
    if let (Backend::Aws { .. }, Some(key)) = (&backend, args.kms_key_id) {
        let config = aws::load_sdk_config(args.region).await;
        hub.secrets = Arc::new(
            SecretsManagerStore::new(aws::secretsmanager_client(&config), args.secrets_prefix).with_kms_key(key),
        );
    }
    // The console signs its CSRF tokens with it; its function only reads it.
    hub.platform_key().await.context("cannot read or create the platform signing key")?;
    match hub.users().bootstrap_admin_user(email.as_deref(), password.as_deref()).await? {
        AdminUserBootstrap::AlreadyDone => println!(
            "The hub already has its first platform admin user; nothing changed. \
             Create more users in the console or with POST /v1/users."
        ),
        AdminUserBootstrap::Created { email, generated_password: None } => {
            println!("Created the platform admin user {email}. Sign in to the console at /login.")
        }
        AdminUserBootstrap::Created { email, generated_password: Some(password) } => {
            // Printed to stdout, never logged.
            println!(
                "Created the platform admin user. Sign in to the console at /login with\n\n    email:    {email}\n    password: {password}\n\nThe password is shown only this once."
            )
        }
    }
    Ok(())
}
