//! Signature checks of inbound deliveries. Pure functions over the raw bytes:
//! the caller supplies the headers, the secret and the current time. Every
//! comparison of secret-derived bytes is constant-time (`subtle`).

use base64::Engine as _;
use ferry_core::crypto::{ct_eq, hmac_sha256};

/// Why a delivery was refused. Messages never quote a signature or a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing header `{0}`")]
    MissingHeader(&'static str),
    #[error("header `{0}` is malformed")]
    MalformedHeader(&'static str),
    #[error("the signature does not match the body")]
    BadSignature,
    #[error("the signed timestamp is outside the allowed window of {0} seconds")]
    StaleTimestamp(u32),
}

impl VerifyError {
    /// The stable error code of the API answer.
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::MissingHeader(_) | VerifyError::MalformedHeader(_) => "missing_signature",
            VerifyError::BadSignature => "invalid_signature",
            VerifyError::StaleTimestamp(_) => "stale_timestamp",
        }
    }
}

fn within(ts: i64, now: i64, tolerance: u32) -> bool {
    (now - ts).unsigned_abs() <= u64::from(tolerance)
}

/// The key bytes of a Standard Webhooks secret: base64 after `whsec_`; a
/// secret without the prefix is used as raw bytes (some providers hand those out).
pub fn standard_key(secret: &str) -> Vec<u8> {
    match secret.strip_prefix("whsec_") {
        Some(b64) => {
            base64::engine::general_purpose::STANDARD.decode(b64).unwrap_or_else(|_| secret.as_bytes().to_vec())
        }
        None => secret.as_bytes().to_vec(),
    }
}

/// A fresh Standard Webhooks secret (`whsec_` + 32 random bytes, base64).
pub fn generate_secret() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// `v1,<base64>` for `id.timestamp.body`, as Standard Webhooks signs.
pub fn standard_signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    let mac = hmac_sha256(key, &[id.as_bytes(), b".", ts.as_bytes(), b".", body]);
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac))
}

/// Standard Webhooks: `webhook-id`, `webhook-timestamp` (Unix seconds) and
/// `webhook-signature` (space-separated `v1,<base64>` entries, any may match).
pub fn standard_webhooks(
    key: &[u8],
    id: Option<&str>,
    timestamp: Option<&str>,
    signatures: Option<&str>,
    body: &[u8],
    now: i64,
    tolerance: u32,
) -> Result<(), VerifyError> {
    let id = id.ok_or(VerifyError::MissingHeader("webhook-id"))?;
    let ts = timestamp.ok_or(VerifyError::MissingHeader("webhook-timestamp"))?;
    let signatures = signatures.ok_or(VerifyError::MissingHeader("webhook-signature"))?;
    let ts: i64 = ts.trim().parse().map_err(|_| VerifyError::MalformedHeader("webhook-timestamp"))?;
    if !within(ts, now, tolerance) {
        return Err(VerifyError::StaleTimestamp(tolerance));
    }
    let expected = hmac_sha256(key, &[id.as_bytes(), b".", ts.to_string().as_bytes(), b".", body]);
    let mut matched = false;
    for entry in signatures.split_ascii_whitespace() {
        let Some(b64) = entry.strip_prefix("v1,") else { continue };
        if let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(b64) {
            // Not short-circuited, so the position of a match is not timed either.
            matched |= ct_eq(sig, expected);
        }
    }
    if matched {
        Ok(())
    } else {
        Err(VerifyError::BadSignature)
    }
}

/// How a provider encodes its HMAC in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Hex,
    Base64,
}

/// HMAC-SHA256 of the raw body with the secret's bytes, in `header` (e.g.
/// Shopify's `X-Shopify-Hmac-Sha256` in base64, GitHub's `X-Hub-Signature-256`
/// as `sha256=<hex>`).
pub fn body_hmac(
    secret: &[u8],
    header: &'static str,
    value: Option<&str>,
    prefix: Option<&str>,
    encoding: Encoding,
    body: &[u8],
) -> Result<(), VerifyError> {
    let value = value.ok_or(VerifyError::MissingHeader(header))?.trim();
    let value = match prefix {
        Some(p) => value.strip_prefix(p).ok_or(VerifyError::MalformedHeader(header))?,
        None => value,
    };
    let presented = match encoding {
        Encoding::Hex => hex::decode(value.to_ascii_lowercase()),
        Encoding::Base64 => {
            base64::engine::general_purpose::STANDARD.decode(value).map_err(|_| hex::FromHexError::OddLength)
        }
    }
    .map_err(|_| VerifyError::MalformedHeader(header))?;
    let expected = hmac_sha256(secret, &[body]);
    if ct_eq(presented, expected) {
        Ok(())
    } else {
        Err(VerifyError::BadSignature)
    }
}

/// What HubSpot signs of a request: its method, full URL and body.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    pub method: &'a str,
    pub uri: &'a str,
    pub body: &'a [u8],
}

/// HubSpot's v3 signature: base64 HMAC-SHA256 of `method + uri + body +
/// timestamp` with the app's client secret; the timestamp (milliseconds) may
/// be at most `tolerance` seconds old.
pub fn hubspot_v3(
    secret: &[u8],
    signature: Option<&str>,
    timestamp_ms: Option<&str>,
    request: SignedRequest<'_>,
    now: i64,
    tolerance: u32,
) -> Result<(), VerifyError> {
    let SignedRequest { method, uri, body } = request;
    let signature = signature.ok_or(VerifyError::MissingHeader("x-hubspot-signature-v3"))?;
    let ts_text = timestamp_ms.ok_or(VerifyError::MissingHeader("x-hubspot-request-timestamp"))?.trim();
    let ts_ms: i64 = ts_text.parse().map_err(|_| VerifyError::MalformedHeader("x-hubspot-request-timestamp"))?;
    if !within(ts_ms.div_euclid(1000), now, tolerance) {
        return Err(VerifyError::StaleTimestamp(tolerance));
    }
    let presented = base64::engine::general_purpose::STANDARD
        .decode(signature.trim())
        .map_err(|_| VerifyError::MalformedHeader("x-hubspot-signature-v3"))?;
    let expected = hmac_sha256(secret, &[method.as_bytes(), uri.as_bytes(), body, ts_text.as_bytes()]);
    if ct_eq(presented, expected) {
        Ok(())
    } else {
        Err(VerifyError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    #[test]
    fn standard_webhooks_accepts_its_own_signature_and_any_listed_match() {
        let key = standard_key(&generate_secret());
        let sig = standard_signature(&key, "msg_1", NOW, b"{}");
        let both = format!("v1,AAAA {sig}");
        assert_eq!(standard_webhooks(&key, Some("msg_1"), Some("1700000000"), Some(&both), b"{}", NOW, 300), Ok(()));
    }

    #[test]
    fn standard_webhooks_matches_the_specification_example() {
        // The example of the Standard Webhooks specification.
        let key = standard_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let body = br#"{"test": 2432232314}"#;
        let sig = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        assert_eq!(
            standard_webhooks(
                &key,
                Some("msg_p5jXN8AQM9LWM0D4loKWxJek"),
                Some("1614265330"),
                Some(sig),
                body,
                1614265330,
                300
            ),
            Ok(())
        );
    }

    #[test]
    fn standard_webhooks_refuses_tampering_and_old_timestamps() {
        let key = standard_key(&generate_secret());
        let sig = standard_signature(&key, "msg_1", NOW, b"{}");
        let check = |id, ts: i64, body: &[u8], now| {
            standard_webhooks(&key, Some(id), Some(&ts.to_string()), Some(&sig), body, now, 300)
        };
        assert_eq!(check("msg_1", NOW, b"{\"x\":1}", NOW), Err(VerifyError::BadSignature));
        assert_eq!(check("msg_2", NOW, b"{}", NOW), Err(VerifyError::BadSignature));
        assert_eq!(check("msg_1", NOW, b"{}", NOW + 301), Err(VerifyError::StaleTimestamp(300)));
        assert_eq!(
            standard_webhooks(&key, None, Some("1"), Some(&sig), b"{}", NOW, 300),
            Err(VerifyError::MissingHeader("webhook-id"))
        );
    }

    #[test]
    fn body_hmac_checks_shopify_and_github_styles() {
        let mac = hmac_sha256(b"shpss", &[b"{}"]);
        let b64 = base64::engine::general_purpose::STANDARD.encode(mac);
        assert_eq!(body_hmac(b"shpss", "x", Some(&b64), None, Encoding::Base64, b"{}"), Ok(()));
        assert_eq!(body_hmac(b"other", "x", Some(&b64), None, Encoding::Base64, b"{}"), Err(VerifyError::BadSignature));
        let gh = format!("sha256={}", hex::encode(mac));
        assert_eq!(body_hmac(b"shpss", "x", Some(&gh), Some("sha256="), Encoding::Hex, b"{}"), Ok(()));
        assert_eq!(
            body_hmac(b"shpss", "x", Some("zz"), None, Encoding::Hex, b"{}"),
            Err(VerifyError::MalformedHeader("x"))
        );
    }

    fn post(uri: &str) -> SignedRequest<'_> {
        SignedRequest { method: "POST", uri, body: b"[]" }
    }

    #[test]
    fn hubspot_v3_signs_method_uri_body_and_timestamp() {
        let ts = (NOW * 1000).to_string();
        let uri = "https://hub.example/hooks/h1";
        let mac = hmac_sha256(b"secret", &[b"POST", uri.as_bytes(), b"[]", ts.as_bytes()]);
        let sig = base64::engine::general_purpose::STANDARD.encode(mac);
        assert_eq!(hubspot_v3(b"secret", Some(&sig), Some(&ts), post(uri), NOW, 300), Ok(()));
        assert_eq!(
            hubspot_v3(b"secret", Some(&sig), Some(&ts), post("https://evil/hooks/h1"), NOW, 300),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            hubspot_v3(b"secret", Some(&sig), Some(&ts), post(uri), NOW + 600, 300),
            Err(VerifyError::StaleTimestamp(300))
        );
    }
}
