//! The provider catalogue (`integrations/providers/*.yaml`): how to reach and
//! authorise well-known systems, so manifests and connections can name a
//! provider (`hubspot`) instead of repeating its URLs. Compiled into the binary.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::manifest::{AuthKind, OAuthGrant};

/// The catalogue's files, by name.
const SOURCES: &[(&str, &str)] = &[
    ("github", include_str!("../../../integrations/providers/github.yaml")),
    ("google", include_str!("../../../integrations/providers/google.yaml")),
    ("hubspot", include_str!("../../../integrations/providers/hubspot.yaml")),
    ("quickbooks", include_str!("../../../integrations/providers/quickbooks.yaml")),
    ("salesforce", include_str!("../../../integrations/providers/salesforce.yaml")),
    ("shopify", include_str!("../../../integrations/providers/shopify.yaml")),
    ("slack", include_str!("../../../integrations/providers/slack.yaml")),
    ("stripe", include_str!("../../../integrations/providers/stripe.yaml")),
    ("xero", include_str!("../../../integrations/providers/xero.yaml")),
    ("zendesk", include_str!("../../../integrations/providers/zendesk.yaml")),
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    pub name: String,
    pub display_name: String,
    pub auth: AuthKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<ProviderOAuth>,
    /// May contain `{setting}` placeholders filled from the connection's settings.
    pub base_url: String,
    /// Connection settings the URLs need.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub settings: Vec<String>,
    /// How lists page (a hint for manifest authors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagination: Option<serde_json::Value>,
    /// Published rate limits (a hint for request budgets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docs: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderOAuth {
    #[serde(default = "authorization_code")]
    pub grant: OAuthGrant,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorize_url: Option<String>,
    pub token_url: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// How scopes are joined in the authorize request (RFC 6749 says a space).
    #[serde(default = "space")]
    pub scope_separator: String,
    /// Extra query parameters of the authorize request.
    #[serde(default)]
    pub authorize_params: BTreeMap<String, String>,
}

fn authorization_code() -> OAuthGrant {
    OAuthGrant::AuthorizationCode
}

fn space() -> String {
    " ".to_owned()
}

#[derive(Debug, thiserror::Error)]
#[error("provider catalogue entry `{name}`: {message}")]
pub struct CatalogueError {
    pub name: String,
    pub message: String,
}

/// Parses one catalogue file.
pub fn parse(name: &str, source: &str) -> Result<Provider, CatalogueError> {
    let err = |message: String| CatalogueError { name: name.to_owned(), message };
    let (node, problems) = crate::manifest::yaml::parse(source).map_err(|p| err(p.message))?;
    if let Some(p) = problems.first() {
        return Err(err(p.message.clone()));
    }
    let provider: Provider = serde_json::from_value(crate::manifest::yaml::to_json(&node))
        .map_err(|e| err(format!("does not match the provider format: {e}")))?;
    if provider.name != name {
        return Err(err(format!("declares name `{}`, but the file is named `{name}`", provider.name)));
    }
    if provider.auth == AuthKind::Oauth2 && provider.oauth.is_none() {
        return Err(err("auth is oauth2 but there is no `oauth` section".into()));
    }
    Ok(provider)
}

/// Every provider of the catalogue. The files are checked by a test, so a
/// broken file never ships; should one slip through, it is left out and logged.
pub fn catalogue() -> &'static BTreeMap<String, Provider> {
    static CATALOGUE: OnceLock<BTreeMap<String, Provider>> = OnceLock::new();
    CATALOGUE.get_or_init(|| {
        SOURCES
            .iter()
            .filter_map(|(name, source)| match parse(name, source) {
                Ok(p) => Some((p.name.clone(), p)),
                Err(e) => {
                    tracing::error!(error = %e, "provider left out of the catalogue");
                    None
                }
            })
            .collect()
    })
}

pub fn get(name: &str) -> Option<&'static Provider> {
    catalogue().get(name)
}

/// The raw catalogue files, for the test that checks each of them.
pub fn sources() -> &'static [(&'static str, &'static str)] {
    SOURCES
}

/// Fills `{setting}` placeholders from connection settings. A setting must be
/// a plain host label, so a customer-set value can never change the host or
/// path a URL points at.
pub fn fill(template: &str, settings: &serde_json::Map<String, serde_json::Value>) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            return Err(format!("unclosed placeholder in {template}"));
        };
        let name = &rest[open + 1..open + close];
        let value = settings
            .get(name)
            .and_then(|v| v.as_str())
            .ok_or_else(|| format!("the connection needs the setting `{name}`"))?;
        let label_ok = !value.is_empty()
            && value.len() <= 63
            && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !label_ok {
            return Err(format!("the setting `{name}` must be letters, digits, '-' or '_' (at most 63)"));
        }
        out.push_str(value);
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}
