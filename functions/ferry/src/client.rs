//! A small client of the hub's admin API for the operator commands.

use anyhow::Context as _;
use serde_json::Value;

#[derive(Debug, Clone, clap::Args)]
pub struct HubArgs {
    /// The hub's base URL.
    #[arg(long, env = "FERRY_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// An API key (or session token).
    #[arg(long, env = "FERRY_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
}

/// A refusal from the hub, with its stable code, message and details.
#[derive(Debug)]
pub struct Refused {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub details: Option<Value>,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the hub refused ({} {}): {}", self.status, self.code, self.message)
    }
}

impl std::error::Error for Refused {}

pub struct Hub {
    url: String,
    key: String,
    http: reqwest::Client,
}

impl Hub {
    pub fn new(args: HubArgs, what: &str) -> anyhow::Result<Self> {
        let key = args
            .api_key
            .filter(|k| !k.trim().is_empty())
            .with_context(|| format!("{what} needs an API key: set FERRY_API_KEY or pass --api-key"))?;
        Ok(Self {
            url: args.url.trim_end_matches('/').to_owned(),
            key: key.trim().to_owned(),
            http: reqwest::Client::new(),
        })
    }

    /// Sends a request; a non-2xx answer becomes a [`Refused`] error.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut req = self.http.request(method, format!("{}{path}", self.url)).bearer_auth(&self.key);
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = req.send().await.with_context(|| format!("cannot reach the hub at {}", self.url))?;
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        if !(200..300).contains(&status) {
            return Err(Refused {
                status,
                code: body["error"]["code"].as_str().unwrap_or("unknown").to_owned(),
                message: body["error"]["message"].as_str().unwrap_or("no error message").to_owned(),
                details: body["error"].get("details").cloned(),
            }
            .into());
        }
        Ok((status, body))
    }
}
