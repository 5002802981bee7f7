//! Where a connection's requests go. A connection's origin is part of its
//! credentials: the base URL comes from the manifest or the provider
//! catalogue, a connection fills only the settings those name in braces
//! (one host label each), and only a platform admin may replace it whole
//! (`settings.base_url`). Changing any of these clears the stored credentials.

use serde_json::{Map, Value};

use ferry_core::error::{Error, Result};
use ferry_core::manifest::{ConnectorDef, Manifest};
use ferry_core::model::Connection;

/// The setting that replaces a connector's base URL (platform admins only).
pub const BASE_URL_SETTING: &str = "base_url";

/// The base URL of `connector` for a connection with `settings`, whose
/// `settings.base_url` a platform admin set to `approved` (if any).
pub fn base_url(
    manifest: &Manifest,
    connector: &str,
    settings: &Map<String, Value>,
    approved: Option<&str>,
) -> Result<String> {
    let def = manifest.connectors.definition(connector);
    let provider = ferry_core::providers::get(manifest.connectors.provider(connector));
    let base = match settings.get(BASE_URL_SETTING).and_then(Value::as_str) {
        Some(url) if approved == Some(url) => url.to_owned(),
        Some(_) => {
            return Err(Error::invalid(
                "unapproved_base_url",
                format!(
                    "connector `{connector}`'s connection has a settings.base_url no platform admin set (it predates                      the rule that only they may); a platform admin must set it again, or remove it"
                ),
            ))
        }
        None => match def.and_then(|d| d.base_url.as_deref()).or(provider.map(|p| p.base_url.as_str())) {
            Some(template) => fill(template, settings)?,
            None => {
                return Err(Error::invalid(
                    "missing_base_url",
                    format!("connector `{connector}` has no base_url (in the manifest or the provider catalogue)"),
                ))
            }
        },
    };
    check_base(&base)?;
    Ok(base)
}

/// `{setting}` placeholders; `{{ ... }}` is a template, not a placeholder.
fn fill(template: &str, settings: &Map<String, Value>) -> Result<String> {
    if template.contains("{{") {
        return Ok(template.to_owned());
    }
    ferry_core::providers::fill(template, settings).map_err(|m| Error::invalid("invalid_base_url", m))
}

/// A base URL is an origin and a path: a query or fragment would turn the
/// paths joined to it into parameters, and so fetch whatever they name.
pub(crate) fn check_base(base: &str) -> Result<()> {
    let invalid = |why: &str| Error::invalid("invalid_base_url", format!("the connector's base_url {why}"));
    let url = reqwest::Url::parse(base).map_err(|_| invalid("is not an absolute URL"))?;
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
        return Err(invalid("must be an http(s) URL with a host"));
    }
    if url.query().is_some() || url.fragment().is_some() || base.contains('?') || base.contains('#') {
        return Err(invalid("must not have a query string or a fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("must not carry a user name or password"));
    }
    Ok(())
}

/// The settings that decide where a connection's requests go: `base_url`
/// and the catalogue's URL settings of its connector.
fn origin_settings(conn: &Connection) -> Vec<String> {
    let mut names = vec![BASE_URL_SETTING.to_owned()];
    if let Some(p) = ferry_core::providers::get(&conn.connector) {
        names.extend(p.settings.iter().cloned());
        names.extend(placeholders(&p.base_url));
    }
    names
}

/// The `{name}`s of a URL template.
pub fn placeholders(template: &str) -> Vec<String> {
    if template.contains("{{") {
        return Vec::new();
    }
    template.split('{').skip(1).filter_map(|part| part.split_once('}').map(|(name, _)| name.to_owned())).collect()
}

/// Whether new settings move a connection elsewhere: its stored credentials
/// then must not follow. `extra` are the placeholders of the manifests that
/// bind the connection.
pub fn moves_origin(conn: &Connection, new: &Map<String, Value>, extra: &[String]) -> bool {
    origin_settings(conn).iter().chain(extra).any(|name| conn.settings.get(name) != new.get(name))
}

/// The placeholders of a manifest connector's base URL.
pub fn def_placeholders(def: Option<&ConnectorDef>) -> Vec<String> {
    def.and_then(|d| d.base_url.as_deref()).map(placeholders).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_url_with_a_query_or_credentials_is_refused() {
        assert!(check_base("https://api.example.com/v1").is_ok());
        for bad in ["https://api.example.com/?x=", "https://api.example.com#", "https://u:p@api.example.com", "ftp://x"]
        {
            assert!(check_base(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn placeholders_are_the_single_brace_names() {
        assert_eq!(placeholders("https://{shop}.example.com/{region}"), vec!["shop", "region"]);
        assert!(placeholders("https://{{ config.host }}").is_empty());
    }
}
