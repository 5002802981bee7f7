//! What a connection form asks for: the providers of the catalogue, the
//! credential fields each auth kind needs (the names the service requires,
//! `AuthKind::required_fields`), and which form field a refusal of the
//! service concerns, so its message stands beside that field.

use std::collections::BTreeMap;

use minijinja::{context, Value};

use ferry_core::model::AuthKind;
use ferry_core::Error;

/// The provider choice for a connector the catalogue does not know.
pub const OTHER: &str = "other";

pub const KINDS: &[AuthKind] = &[AuthKind::ApiKey, AuthKind::Basic, AuthKind::Bearer, AuthKind::Oauth2, AuthKind::None];

pub fn kind_name(kind: AuthKind) -> &'static str {
    match kind {
        AuthKind::None => "none",
        AuthKind::ApiKey => "api_key",
        AuthKind::Basic => "basic",
        AuthKind::Bearer => "bearer",
        AuthKind::Oauth2 => "oauth2",
    }
}

pub fn kind_label(kind: AuthKind) -> &'static str {
    match kind {
        AuthKind::None => "No sign-in",
        AuthKind::ApiKey => "API key",
        AuthKind::Basic => "Username and password",
        AuthKind::Bearer => "Bearer token",
        AuthKind::Oauth2 => "OAuth 2.0",
    }
}

pub fn parse_kind(s: &str) -> Option<AuthKind> {
    KINDS.iter().copied().find(|k| kind_name(*k) == s)
}

/// The label people read for a secret field.
fn field_label(name: &str) -> String {
    match name {
        "api_key" => "API key".into(),
        "username" => "Username".into(),
        "password" => "Password".into(),
        "token" => "Token".into(),
        "access_token" => "Access token".into(),
        "refresh_token" => "Refresh token".into(),
        other => other.replace('_', " "),
    }
}

/// The credential fields an operator types for `kind`. OAuth 2.0 has none:
/// its tokens come from the provider (the customer's sign-in through the
/// magic link, or the client-credentials grant).
pub fn credential_fields(kind: AuthKind) -> Vec<Value> {
    if kind == AuthKind::Oauth2 {
        return Vec::new();
    }
    kind.required_fields()
        .iter()
        .map(|name| {
            // A username is not a secret to the person typing it, but it is stored as one.
            let input = if *name == "username" { "text" } else { "password" };
            context! { name => name, label => field_label(name), input => input }
        })
        .collect()
}

/// The catalogue as a choice: `(name, display name, auth kind label)`.
pub fn providers() -> Vec<Value> {
    ferry_core::providers::catalogue()
        .values()
        .map(|p| context! { name => p.name, display => p.display_name, kind => kind_label(p.auth) })
        .collect()
}

/// The provider's display name, or the connector's own name.
pub fn provider_name(connector: &str) -> String {
    ferry_core::providers::get(connector).map_or_else(|| connector.to_owned(), |p| p.display_name.clone())
}

/// The settings the catalogue says a provider's URLs need (e.g. Shopify's `shop`).
pub fn provider_settings(connector: &str) -> Vec<String> {
    ferry_core::providers::get(connector).map(|p| p.settings.clone()).unwrap_or_default()
}

/// Problems of one form, by field: `name`, `max_concurrent`, `credentials`, …;
/// `form` for what concerns no one field.
pub type Problems = BTreeMap<&'static str, String>;

/// Which field a refusal of the service concerns.
pub fn field_of(e: &Error) -> Option<&'static str> {
    let code = match e {
        Error::Invalid { code, .. } | Error::InvalidDetails { code, .. } | Error::Conflict { code, .. } => *code,
        Error::Forbidden(m) if m.contains("base_url") => return Some("settings"),
        _ => return None,
    };
    Some(match code {
        "invalid_name" | "connection_exists" | "mapping_exists" => "name",
        "invalid_connector" | "invalid_provider" => "connector",
        "invalid_max_concurrent" => "max_concurrent",
        "missing_credentials" | "invalid_credential_field" | "credentials_not_allowed" => "credentials",
        "invalid_base_url" | "missing_setting" => "settings",
        "invalid_ttl" => "ttl",
        "invalid_entity" => "entity",
        "invalid_mapping" | "template_too_complex" => "fields",
        c if c.starts_with("invalid_client") || c.contains("oauth") || c.contains("token_url") => "oauth",
        c if c.starts_with("invalid_secret") || c.contains("secret") => "oauth",
        _ => "form",
    })
}

/// The sentence of a refusal, for the page.
pub fn message_of(e: &Error) -> Option<String> {
    match e {
        Error::Invalid { message, .. }
        | Error::InvalidDetails { message, .. }
        | Error::Conflict { message, .. }
        | Error::Forbidden(message) => Some(message.clone()),
        _ => None,
    }
}

/// `Max Concurrent` as typed: empty is no limit. The range is the service's
/// rule; this only reads the number.
pub fn parse_max(raw: &str) -> Result<Option<u32>, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    raw.parse::<u32>().map(Some).map_err(|_| {
        format!(
            "Max Concurrent must be a whole number from {} to {}, or empty for no limit; “{raw}” is not.",
            ferry_core::model::MAX_CONCURRENT.start(),
            ferry_core::model::MAX_CONCURRENT.end()
        )
    })
}
