//! The hub's configuration, read and checked once when a process starts:
//! `ferry up` builds it from its flags (each falling back to its `FERRY_...`
//! variable, functions/ferry/src/cli.rs), a Lambda function from its
//! environment ([`Config::from_env`]). A value that cannot be used stops the
//! start with an error naming the variable and what it expects: a hub running
//! on something other than what its operator wrote fails later, and quietly.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use super::Settings;
use ferry_engine::sandbox::SandboxMode;

/// Base URL end customers and providers reach the hub at.
pub const PUBLIC_URL: &str = "FERRY_PUBLIC_URL";
pub const INTEGRATIONS_DIR: &str = "FERRY_INTEGRATIONS_DIR";
pub const RUN_TIMEOUT_SECS: &str = "FERRY_RUN_TIMEOUT_SECS";
/// `PAN_CTX_ENV` of process integrations.
pub const ENVIRONMENT: &str = "FERRY_ENV";
pub const RUN_SLICE_SECS: &str = "FERRY_RUN_SLICE_SECS";
pub const RUN_BUDGET_SECS: &str = "FERRY_RUN_BUDGET_SECS";
pub const ALLOW_PRIVATE_NETWORK: &str = "FERRY_ALLOW_PRIVATE_NETWORK";
pub const PROCESS_SANDBOX: &str = "FERRY_PROCESS_SANDBOX";

const SECONDS: &str = "a whole number of seconds above 0, e.g. 900";
const BOOLEAN: &str = "true or false (or 1/0, yes/no)";
const SANDBOX: &str = "bubblewrap or off";
const URL: &str = "an absolute http:// or https:// URL without user, query or fragment, e.g. https://ferry.example.com";
const NEEDED_URL: &str = "this process makes magic links, OAuth redirect URIs and webhook URLs, and checks signatures \
     over them: set it to the absolute https:// URL end customers and providers reach the hub at \
     (infra/template.yaml passes the PublicUrl parameter, or https://<DomainName>)";

/// Everything a hub is configured with, checked.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub settings: Settings,
    /// `None` in a process that makes no links; the ones that do refuse to
    /// start without it ([`Config::require_public_url`]).
    pub public_url: Option<PublicUrl>,
}

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{variable} is not set: {expected}")]
    Missing { variable: &'static str, expected: &'static str },
    #[error("{variable} is `{value}`: expected {expected}")]
    Invalid { variable: &'static str, value: String, expected: &'static str },
}

impl ConfigError {
    /// The variable at fault.
    pub fn variable(&self) -> &'static str {
        match self {
            ConfigError::Missing { variable, .. } | ConfigError::Invalid { variable, .. } => variable,
        }
    }
}

impl Config {
    /// The process environment's configuration (a Lambda function's).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var_os(name))
    }

    /// The configuration `lookup` gives, by variable name: what is unset
    /// (or blank, so a template can pass `""`) keeps its default.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<OsString>) -> Result<Self, ConfigError> {
        let vars = Vars(lookup);
        let d = Settings::default();
        let settings = Settings {
            integrations_dir: vars.get(INTEGRATIONS_DIR)?.map(PathBuf::from),
            process_timeout: vars.parse(RUN_TIMEOUT_SECS, parse_secs)?.unwrap_or(d.process_timeout),
            environment: vars.get(ENVIRONMENT)?.unwrap_or(d.environment),
            run_slice: vars.parse(RUN_SLICE_SECS, parse_secs)?,
            run_budget: vars.parse(RUN_BUDGET_SECS, parse_secs)?.unwrap_or(d.run_budget),
            allow_private_network: vars.parse(ALLOW_PRIVATE_NETWORK, parse_bool)?.unwrap_or(d.allow_private_network),
            process_sandbox: vars.parse(PROCESS_SANDBOX, parse_sandbox)?.unwrap_or(d.process_sandbox),
            ..d
        };
        Ok(Self { settings, public_url: vars.parse(PUBLIC_URL, PublicUrl::parse)? })
    }

    /// The public URL, for a process whose every request may need it: asked
    /// for at start, so that a deployment without it fails there rather
    /// than hand out links nobody can open.
    pub fn require_public_url(&self) -> Result<&PublicUrl, ConfigError> {
        self.public_url.as_ref().ok_or_else(ConfigError::missing_public_url)
    }
}

impl ConfigError {
    /// `FERRY_PUBLIC_URL` is required by this process and not set.
    pub fn missing_public_url() -> Self {
        ConfigError::Missing { variable: PUBLIC_URL, expected: NEEDED_URL }
    }
}

/// Reads variables through a lookup, trimmed; blank counts as unset.
struct Vars<F>(F);

impl<F: Fn(&str) -> Option<OsString>> Vars<F> {
    fn get(&self, variable: &'static str) -> Result<Option<String>, ConfigError> {
        let Some(raw) = (self.0)(variable) else { return Ok(None) };
        let text = raw.into_string().map_err(|raw| ConfigError::Invalid {
            variable,
            value: raw.to_string_lossy().into_owned(),
            expected: "valid UTF-8",
        })?;
        Ok(Some(text.trim().to_owned()).filter(|t| !t.is_empty()))
    }

    fn parse<T>(
        &self,
        variable: &'static str,
        parse: fn(&str) -> Result<T, &'static str>,
    ) -> Result<Option<T>, ConfigError> {
        let Some(text) = self.get(variable)? else { return Ok(None) };
        parse(&text).map(Some).map_err(|expected| ConfigError::Invalid { variable, value: text, expected })
    }
}

/// A duration in whole seconds; 0 is refused, as no limit of 0 s can be meant.
pub fn parse_secs(text: &str) -> Result<Duration, &'static str> {
    match text.trim().parse::<u64>() {
        Ok(secs) if secs > 0 => Ok(Duration::from_secs(secs)),
        _ => Err(SECONDS),
    }
}

pub fn parse_bool(text: &str) -> Result<bool, &'static str> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" => Ok(false),
        _ => Err(BOOLEAN),
    }
}

pub fn parse_sandbox(text: &str) -> Result<SandboxMode, &'static str> {
    match text.trim().to_ascii_lowercase().as_str() {
        "bubblewrap" | "bwrap" | "on" | "1" | "true" => Ok(SandboxMode::Bubblewrap),
        "off" | "none" | "0" | "false" => Ok(SandboxMode::Off),
        _ => Err(SANDBOX),
    }
}

/// The base URL end customers and providers reach the hub at: an absolute
/// http(s) URL, kept without a trailing slash so paths append to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl(String);

impl PublicUrl {
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let url = reqwest::Url::parse(text.trim()).map_err(|_| URL)?;
        let plain = url.username().is_empty() && url.password().is_none() && url.query().is_none();
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() || !plain || url.fragment().is_some() {
            return Err(URL);
        }
        Ok(Self(url.as_str().trim_end_matches('/').to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_https(&self) -> bool {
        self.0.starts_with("https://")
    }

    /// The URL of `path` (from its leading `/`) on this hub.
    pub fn join(&self, path: &str) -> String {
        format!("{}{path}", self.0)
    }
}

impl std::fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The public URL, for a link or a redirect URI. Without one this is an
/// error rather than a guess: a link to an address nobody can reach fails in
/// the customer's browser, far from its cause. Hosts that make links are
/// configured with one ([`Config::require_public_url`]).
pub fn public_base(url: Option<&PublicUrl>) -> ferry_core::error::Result<&PublicUrl> {
    url.ok_or_else(|| {
        ferry_core::error::Error::Internal(format!(
            "this hub has no public URL ({PUBLIC_URL}, `ferry up --public-url`), so it cannot make links"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(|name| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| OsString::from(v)))
    }

    fn refused(vars: &[(&str, &str)]) -> ConfigError {
        parse(vars).expect_err("refused")
    }

    #[test]
    fn a_complete_configuration_parses() {
        let config = parse(&[
            (PUBLIC_URL, "https://ferry.example.com/"),
            (INTEGRATIONS_DIR, "/srv/integrations"),
            (RUN_TIMEOUT_SECS, "60"),
            (ENVIRONMENT, "prod"),
            (RUN_SLICE_SECS, " 30 "),
            (RUN_BUDGET_SECS, "3600"),
            (ALLOW_PRIVATE_NETWORK, "YES"),
            (PROCESS_SANDBOX, "off"),
        ])
        .expect("a valid configuration");
        assert_eq!(config.require_public_url().map(PublicUrl::as_str), Ok("https://ferry.example.com"));
        let s = &config.settings;
        assert_eq!(s.integrations_dir.as_deref(), Some(std::path::Path::new("/srv/integrations")));
        assert_eq!(s.process_timeout, Duration::from_secs(60));
        assert_eq!(s.environment, "prod");
        assert_eq!(s.run_slice, Some(Duration::from_secs(30)));
        assert_eq!(s.run_budget, Duration::from_secs(3600));
        assert!(s.allow_private_network);
        assert_eq!(s.process_sandbox, SandboxMode::Off);
    }

    #[test]
    fn unset_and_blank_variables_keep_the_defaults() {
        let config = parse(&[(RUN_TIMEOUT_SECS, ""), (ALLOW_PRIVATE_NETWORK, "  ")]).expect("the defaults");
        let (s, d) = (&config.settings, Settings::default());
        assert_eq!((s.process_timeout, s.run_budget, s.run_slice), (d.process_timeout, d.run_budget, None));
        assert_eq!((s.allow_private_network, s.process_sandbox), (false, SandboxMode::Bubblewrap));
        assert_eq!((s.environment.as_str(), s.integrations_dir.as_deref()), ("local", None));
        assert_eq!(config.public_url, None);
    }

    #[test]
    fn a_process_that_makes_links_refuses_to_start_without_a_public_url() {
        let config = parse(&[(RUN_TIMEOUT_SECS, "60")]).expect("valid, as far as it goes");
        let e = config.require_public_url().expect_err("the public URL is required");
        assert_eq!(e.variable(), PUBLIC_URL);
        let message = e.to_string();
        assert!(message.starts_with("FERRY_PUBLIC_URL is not set: "), "{message}");
        assert!(message.contains("https://") && message.contains("PublicUrl"), "says what to set: {message}");
    }

    #[test]
    fn bad_numbers_are_refused_naming_the_variable() {
        for (variable, value) in [
            (RUN_TIMEOUT_SECS, "abc"),
            (RUN_TIMEOUT_SECS, "0"),
            (RUN_SLICE_SECS, "-5"),
            (RUN_BUDGET_SECS, "1.5"),
            (RUN_BUDGET_SECS, "2h"),
        ] {
            let e = refused(&[(PUBLIC_URL, "https://ferry.example.com"), (variable, value)]);
            assert_eq!(e.variable(), variable, "{e}");
            assert_eq!(e.to_string(), format!("{variable} is `{value}`: expected {SECONDS}"));
        }
    }

    #[test]
    fn words_that_are_neither_true_nor_false_are_refused() {
        let e = refused(&[(ALLOW_PRIVATE_NETWORK, "maybe")]);
        assert_eq!(e.to_string(), "FERRY_ALLOW_PRIVATE_NETWORK is `maybe`: expected true or false (or 1/0, yes/no)");
        let e = refused(&[(PROCESS_SANDBOX, "sometimes")]);
        assert_eq!(e.to_string(), "FERRY_PROCESS_SANDBOX is `sometimes`: expected bubblewrap or off");
        for (text, on) in [("1", true), ("True", true), ("no", false), ("0", false)] {
            assert_eq!(parse(&[(ALLOW_PRIVATE_NETWORK, text)]).expect(text).settings.allow_private_network, on);
        }
    }

    #[test]
    fn a_public_url_must_be_an_absolute_http_url_without_query_or_credentials() {
        for bad in [
            "ferry.example.com",
            "/connect",
            "ftp://ferry.example.com",
            "https://",
            "https://ferry.example.com/?a=1",
            "https://ferry.example.com/#top",
            "https://user:pass@ferry.example.com",
            "mailto:ops@ferry.example.com",
        ] {
            let e = refused(&[(PUBLIC_URL, bad)]);
            assert_eq!(e.variable(), PUBLIC_URL, "{bad}: {e}");
            assert!(e.to_string().contains("expected an absolute http:// or https:// URL"), "{e}");
        }
        let url = |text: &str| PublicUrl::parse(text).map(|u| u.as_str().to_owned());
        assert_eq!(url("http://127.0.0.1:8080"), Ok("http://127.0.0.1:8080".to_owned()));
        assert_eq!(url(" https://x.example/ferry/ "), Ok("https://x.example/ferry".to_owned()));
        assert_eq!(
            PublicUrl::parse("https://x.example/").map(|u| u.join("/hooks/h1")),
            Ok("https://x.example/hooks/h1".into())
        );
    }

    #[test]
    fn a_value_that_is_not_utf8_is_refused() {
        use std::os::unix::ffi::OsStringExt;
        let e = Config::from_lookup(|name| (name == ENVIRONMENT).then(|| OsString::from_vec(vec![0x66, 0xff])))
            .expect_err("refused");
        assert_eq!((e.variable(), e.to_string().ends_with("expected valid UTF-8")), (ENVIRONMENT, true), "{e}");
    }
}
