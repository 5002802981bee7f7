//! The outbound-URL policy every client of the hub follows: flows, credential
//! checks, notifications and OAuth token endpoints. Tenants choose where these
//! requests go, so without it they could reach the hub's own network (cloud
//! metadata, the Lambda Runtime API, internal services) with the hub's
//! credentials attached.
//!
//! - https only; plain http, loopback and private addresses only on a hub
//!   started with `--allow-private-network` (`FERRY_ALLOW_PRIVATE_NETWORK`).
//! - Host names are resolved and every address checked ([`address`]); the
//!   connection goes to the checked address (the resolver hands reqwest only
//!   those), so a name cannot be re-pointed between check and use.
//! - No client follows redirects on its own ([`client`]); the engine follows
//!   same-origin ones for requests without credentials.
//! - Bodies are read chunk by chunk up to a cap ([`read_capped`]).

pub mod address;
mod body;
pub mod egress;
mod resolve;

use std::time::Duration;

pub use body::{read_capped, BodyError};
pub use resolve::{refusal_in, GuardedResolver};

use address::classify;

/// Whether outbound requests may reach loopback and private networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetPolicy {
    pub allow_private_network: bool,
}

/// Why the policy refused a URL or an address. `code` is stable (API errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

const PRIVATE_HINT: &str = "only a hub started with --allow-private-network reaches those";

impl NetPolicy {
    pub fn new(allow_private_network: bool) -> Self {
        Self { allow_private_network }
    }

    /// Parses `url` and checks what can be checked without DNS: scheme, no
    /// embedded credentials, and the host when it is an address or `localhost`.
    pub fn check(&self, url: &str) -> Result<reqwest::Url, Refusal> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|_| Refusal::new("invalid_url", "the URL is not an absolute http(s) URL"))?;
        self.check_parsed(&parsed)?;
        Ok(parsed)
    }

    pub fn check_parsed(&self, url: &reqwest::Url) -> Result<(), Refusal> {
        match url.scheme() {
            "https" => {}
            "http" if self.allow_private_network => {}
            "http" => {
                return Err(Refusal::new(
                    "insecure_url",
                    format!("the URL must use https; {PRIVATE_HINT} over plain http"),
                ))
            }
            _ => return Err(Refusal::new("invalid_url", "the URL must use https")),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refusal::new("invalid_url", "the URL must not carry a user name or password"));
        }
        match url.host_str() {
            None | Some("") => Err(Refusal::new("invalid_url", "the URL has no host")),
            Some(host) => match host_ip(host) {
                Some(ip) => self.check_ip(ip),
                None => self.check_name(host),
            },
        }
    }

    pub fn check_ip(&self, ip: std::net::IpAddr) -> Result<(), Refusal> {
        let kind = classify(ip);
        if kind.allowed(self.allow_private_network) {
            return Ok(());
        }
        let hint = match kind {
            address::AddressKind::Loopback | address::AddressKind::Private => format!("; {PRIVATE_HINT}"),
            _ => String::new(),
        };
        Err(Refusal::new(
            "blocked_address",
            format!("{ip} is {}, which outbound requests may not reach{hint}", kind.describe()),
        ))
    }

    /// `localhost` names resolve to loopback on every system; refused
    /// without asking DNS.
    fn check_name(&self, name: &str) -> Result<(), Refusal> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if (name == "localhost" || name.ends_with(".localhost")) && !self.allow_private_network {
            return Err(Refusal::new("blocked_address", format!("{name} is a loopback name; {PRIVATE_HINT}")));
        }
        Ok(())
    }

    /// [`NetPolicy::check`], then the host's addresses as DNS has them now:
    /// for checks at write time (sending checks again, on every connection).
    /// A hub that may reach private networks skips the lookup (only
    /// link-local and metadata addresses remain refused, at sending).
    pub async fn check_resolved(&self, url: &str) -> Result<reqwest::Url, Refusal> {
        let parsed = self.check(url)?;
        if self.allow_private_network {
            return Ok(parsed);
        }
        if let Some(name) = parsed.host_str().filter(|h| host_ip(h).is_none()) {
            let port = parsed.port_or_known_default().unwrap_or(443);
            resolve::lookup(self, name, port).await?;
        }
        Ok(parsed)
    }

    /// A reqwest client under this policy: checked resolution and no
    /// redirects (callers decide which redirects they follow, if any).
    pub fn client(&self, timeout: Duration, user_agent: &str) -> Result<reqwest::Client, String> {
        reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .https_only(!self.allow_private_network)
            .dns_resolver(std::sync::Arc::new(GuardedResolver::new(*self)))
            .user_agent(user_agent)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))
    }
}

/// The address a URL host names literally (`[::1]` included).
fn host_ip(host: &str) -> Option<std::net::IpAddr> {
    host.trim_start_matches('[').trim_end_matches(']').parse().ok()
}

/// Same scheme, host and port.
pub fn same_origin(a: &reqwest::Url, b: &reqwest::Url) -> bool {
    a.scheme() == b.scheme() && a.host() == b.host() && a.port_or_known_default() == b.port_or_known_default()
}

/// `scheme://host[:port]` of a URL, for messages.
pub fn origin_of(url: &reqwest::Url) -> String {
    url.origin().ascii_serialization()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: NetPolicy = NetPolicy { allow_private_network: false };
    const OPEN: NetPolicy = NetPolicy { allow_private_network: true };

    fn code(p: NetPolicy, url: &str) -> Option<&'static str> {
        p.check(url).err().map(|r| r.code)
    }

    #[test]
    fn without_the_flag_only_https_to_public_hosts_passes() {
        assert_eq!(code(STRICT, "https://api.example.com/x"), None);
        assert_eq!(code(STRICT, "http://api.example.com/x"), Some("insecure_url"));
        for u in [
            "https://127.0.0.1/",
            "https://localhost:8080/",
            "https://[::1]/",
            "https://10.0.0.1/",
            "https://[fd00::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://169.254.169.254/latest",
        ] {
            assert_eq!(code(STRICT, u), Some("blocked_address"), "{u}");
        }
    }

    #[test]
    fn the_flag_opens_loopback_private_and_http_but_never_metadata() {
        assert_eq!(code(OPEN, "http://127.0.0.1:9/"), None);
        assert_eq!(code(OPEN, "http://localhost/"), None);
        assert_eq!(code(OPEN, "https://10.1.2.3/"), None);
        assert_eq!(code(OPEN, "http://169.254.169.254/latest/meta-data"), Some("blocked_address"));
        assert_eq!(code(OPEN, "http://[fd00:ec2::254]/"), Some("blocked_address"));
        assert_eq!(code(OPEN, "http://0.0.0.0:8080/"), Some("blocked_address"));
    }

    #[test]
    fn other_schemes_and_embedded_credentials_are_refused() {
        assert_eq!(code(OPEN, "ftp://x.example/"), Some("invalid_url"));
        assert_eq!(code(OPEN, "file:///etc/passwd"), Some("invalid_url"));
        assert_eq!(code(OPEN, "https://u:p@x.example/"), Some("invalid_url"));
        assert_eq!(code(OPEN, "not a url"), Some("invalid_url"));
    }

    #[test]
    fn origins_differ_by_scheme_host_or_port() {
        let u = |s: &str| reqwest::Url::parse(s).expect("url");
        assert!(same_origin(&u("https://a.example/x"), &u("https://a.example:443/y?z")));
        assert!(!same_origin(&u("https://a.example/"), &u("https://b.example/")));
        assert!(!same_origin(&u("http://127.0.0.1:1/"), &u("http://127.0.0.1:2/")));
        assert!(!same_origin(&u("http://a.example/"), &u("https://a.example/")));
    }
}
