//! `ferry schedules reconcile`: repairs drift between the jobs in the store
//! (DynamoDB) and their EventBridge Scheduler schedules: creates missing ones,
//! updates differing ones (expression, timezone, paused state), removes those
//! of deleted or unscheduled jobs. `ferry up` needs none of this: it rebuilds
//! its embedded scheduler from the store at every start.

use std::sync::Arc;

use anyhow::Context as _;
use ferry_aws::{DynamoStore, EventBridgeScheduler, SchedulerTarget, SecretsManagerStore};
use ferry_lambda::hub as aws;
use ferry_service::Hub;

#[derive(Debug, clap::Subcommand)]
pub enum SchedulesCommand {
    /// Make EventBridge Scheduler hold exactly the schedules the store says.
    Reconcile(ReconcileArgs),
}

#[derive(Debug, clap::Args)]
pub struct ReconcileArgs {
    /// DynamoDB table of the deployment.
    #[arg(long, env = aws::ENV_TABLE)]
    pub table: String,
    /// ARN of the sync function the schedules invoke.
    #[arg(long, env = aws::ENV_SCHEDULER_TARGET_ARN)]
    pub target_arn: String,
    /// ARN of the role EventBridge Scheduler assumes to invoke it.
    #[arg(long, env = aws::ENV_SCHEDULER_ROLE_ARN)]
    pub role_arn: String,
    /// Prefix of the per-tenant schedule groups.
    #[arg(long, env = aws::ENV_SCHEDULER_GROUP_PREFIX, default_value = aws::DEFAULT_SCHEDULER_GROUP_PREFIX)]
    pub group_prefix: String,
    /// AWS region; defaults to the SDK's resolution, then us-east-1.
    #[arg(long, env = "AWS_REGION")]
    pub region: Option<String>,
    /// Report what would change without changing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(cmd: SchedulesCommand) -> anyhow::Result<()> {
    let SchedulesCommand::Reconcile(args) = cmd;
    crate::cli::init_tracing(crate::cli::LogFormat::Text);
    let config = aws::load_sdk_config(args.region.clone()).await;
    let store = DynamoStore::new(aws::dynamodb_client(&config), args.table.clone());
    // Reconciling reads jobs and tenants only; no secret is touched.
    let secrets = SecretsManagerStore::new(aws::secretsmanager_client(&config), "ferry");
    let target = SchedulerTarget { function_arn: args.target_arn.clone(), role_arn: args.role_arn.clone() };
    let scheduler = EventBridgeScheduler::new(aws::scheduler_client(&config), target, args.group_prefix.clone())
        .context("invalid --group-prefix")?;
    let hub = Hub::new(Arc::new(store), Arc::new(secrets)).with_scheduler(Arc::new(scheduler));
    let report = hub.jobs().reconcile_schedules(args.dry_run).await.context("reconciling schedules failed")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let verb = if args.dry_run { "would be " } else { "" };
    for (what, list) in [("created", &report.created), ("updated", &report.updated), ("removed", &report.removed)] {
        for job in list {
            println!("{verb}{what}: {job}");
        }
    }
    for problem in &report.invalid {
        println!("not scheduled (invalid schedule): {problem}");
    }
    println!(
        "{} created, {} updated, {} removed, {} unchanged{}",
        report.created.len(),
        report.updated.len(),
        report.removed.len(),
        report.unchanged,
        if args.dry_run { " (dry run: nothing changed)" } else { "" }
    );
    Ok(())
}
