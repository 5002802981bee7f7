//! Puts a connection's credentials on a request, as its connector says.

use base64::Engine as _;
use secrecy::ExposeSecret;

use super::http::Outbound;
use ferry_core::error::{Error, Result};
use ferry_core::manifest::{ApiKeyPlacement, AuthKind};
use ferry_core::ports::SecretFields;

fn field<'a>(secrets: &'a SecretFields, name: &str, kind: &str) -> Result<&'a str> {
    secrets.get(name).map(|s| s.expose_secret()).ok_or_else(|| {
        Error::invalid(
            "missing_credentials",
            format!("the connection has no `{name}` credential, needed for {kind} auth"),
        )
    })
}

pub fn apply(
    req: &mut Outbound,
    kind: AuthKind,
    placement: Option<&ApiKeyPlacement>,
    secrets: &SecretFields,
) -> Result<()> {
    match kind {
        AuthKind::None => {}
        AuthKind::ApiKey => {
            let key = field(secrets, "api_key", "api_key")?;
            let prefix = placement.and_then(|p| p.prefix.as_deref()).unwrap_or("");
            match placement.and_then(|p| p.query.as_deref()) {
                Some(param) => {
                    let sep = if req.url.contains('?') { '&' } else { '?' };
                    req.url = format!("{}{sep}{}={}", req.url, urlencode(param), urlencode(&format!("{prefix}{key}")));
                }
                None => {
                    let header = placement.and_then(|p| p.header.as_deref()).unwrap_or("Authorization");
                    req.headers.push((header.to_owned(), format!("{prefix}{key}")));
                }
            }
        }
        AuthKind::Basic => {
            let user = field(secrets, "username", "basic")?;
            let pass = field(secrets, "password", "basic")?;
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
            req.headers.push(("Authorization".into(), format!("Basic {token}")));
        }
        AuthKind::Bearer => {
            let token = field(secrets, "token", "bearer")?;
            req.headers.push(("Authorization".into(), format!("Bearer {token}")));
        }
        AuthKind::Oauth2 => {
            let token = field(secrets, "access_token", "oauth2")?;
            req.headers.push(("Authorization".into(), format!("Bearer {token}")));
        }
    }
    Ok(())
}

/// Percent-encodes a query component.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
