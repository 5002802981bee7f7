//! `ferry publish PATH`: validates a manifest locally, then publishes it as the
//! integration's next release through the admin API.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use ferry_core::manifest;
use ferry_core::model::ids::is_valid_id;
use serde_json::{json, Value};

#[derive(Debug, clap::Args)]
pub struct PublishArgs {
    /// A PANDIUM.yaml, or an integration folder holding one.
    pub path: PathBuf,
    #[command(flatten)]
    pub hub: crate::client::HubArgs,
    /// Integration name (default: the manifest's `name`, else its folder's name).
    #[arg(long)]
    pub name: Option<String>,
}

/// What the hub answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub integration: String,
    pub number: u64,
    pub created: bool,
}

/// The manifest file under `path` and the folder name that names its integration.
fn locate(path: &Path) -> anyhow::Result<(PathBuf, Option<String>)> {
    let file = if path.is_dir() { path.join("PANDIUM.yaml") } else { path.to_path_buf() };
    if !file.is_file() {
        anyhow::bail!("no manifest at {} (give a PANDIUM.yaml or an integration folder holding one)", file.display());
    }
    // Canonical, so `ferry publish .` still knows the folder's name.
    let folder = std::fs::canonicalize(&file)
        .ok()
        .and_then(|f| f.parent().and_then(Path::file_name).map(|n| n.to_string_lossy().into_owned()));
    Ok((file, folder))
}

/// Validates, publishes, prints the result; `Err(Invalid)` after printing diagnostics.
pub async fn run(args: PublishArgs) -> anyhow::Result<Outcome> {
    let (file, folder) = locate(&args.path)?;
    let display = file.display().to_string();
    let source = std::fs::read_to_string(&file).with_context(|| format!("cannot read {display}"))?;
    // Locally first: the same diagnostics as `ferry validate`, without a round trip.
    let parsed = match manifest::parse(&display, &source) {
        Ok(m) => m,
        Err(diagnostics) => {
            for d in &diagnostics {
                eprintln!("{:?}", crate::validate::render(&source, d));
            }
            eprintln!("{display}: {} problem(s); nothing was published", diagnostics.len());
            return Err(crate::cli::Invalid.into());
        }
    };
    let name = args.name.or(parsed.name).or(folder).context("cannot tell the integration's name; pass --name")?;
    if !is_valid_id(&name) {
        anyhow::bail!("integration name '{name}' must be 1 to 64 lowercase letters, digits or '-'; pass --name");
    }
    let hub = crate::client::Hub::new(args.hub, "publishing")?;
    let sent = hub
        .send(
            reqwest::Method::POST,
            &format!("/v1/integrations/{name}/releases"),
            Some(&json!({ "manifest": source, "file": display })),
        )
        .await;
    let (status, body) = match sent {
        Ok(answer) => answer,
        Err(e) => {
            // The hub may run a newer validator than this CLI: show its diagnostics too.
            if let Some(refused) = e.downcast_ref::<crate::client::Refused>() {
                for d in refused.details.as_ref().and_then(Value::as_array).into_iter().flatten() {
                    eprintln!(
                        "{}:{}:{}: {} [{}]",
                        d["file"].as_str().unwrap_or(&display),
                        d["line"],
                        d["column"],
                        d["message"].as_str().unwrap_or(""),
                        d["code"].as_str().unwrap_or("")
                    );
                }
            }
            return Err(e.context("the hub refused the release"));
        }
    };
    let outcome = Outcome {
        integration: name,
        number: body["release"]["number"].as_u64().context("the hub's answer has no release number")?,
        created: body["created"].as_bool().unwrap_or(status == 201),
    };
    if outcome.created {
        println!("published {} release {}", outcome.integration, outcome.number);
    } else {
        println!(
            "{} release {} already has this manifest; nothing new was published",
            outcome.integration, outcome.number
        );
    }
    Ok(outcome)
}
