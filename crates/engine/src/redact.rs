//! Redaction of secret values from what a run records (its log lines, its
//! error, the events that carry the error). A secret shows up not only as
//! itself: an upstream may echo an `Authorization: Basic` header, a query
//! string or a JSON body, and a program may print it in any of those forms.
//!
//! The rule: every secret of at least [`MIN_SECRET_LEN`] characters is
//! replaced, as itself, JSON-escaped and percent-encoded (strict, RFC 3986,
//! form encoding; upper and lower case hex). Its standard and URL-safe base64
//! encodings are replaced whole (padded or not), and wherever they sit in a
//! longer base64 text (as the password sits in `base64(user:pass)`): for each
//! of the three byte alignments, the characters that encode only the
//! secret's bytes, when they are at least [`MIN_BASE64_LEN`] long (the one
//! or two characters shared with the neighbours stay). Shorter values would
//! shred logs by matching ordinary words, so they are left alone.

use base64::alphabet::{STANDARD, URL_SAFE};
use base64::engine::general_purpose::{GeneralPurpose, NO_PAD};
use base64::Engine;

/// Shortest secret that is redacted.
pub const MIN_SECRET_LEN: usize = 4;
/// Shortest base64 run of a secret that is redacted.
pub const MIN_BASE64_LEN: usize = 6;
/// What a secret is replaced with.
pub const MASK: &str = "[redacted]";

/// The secrets of one run, in every form they are searched for.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Longest first, so a form containing another is replaced whole.
    patterns: Vec<String>,
}

impl Redactor {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a secret in all its forms (nothing when it is too short).
    pub fn add(&mut self, secret: &str) {
        if secret.chars().count() < MIN_SECRET_LEN {
            return;
        }
        self.patterns.push(secret.to_owned());
        if let Ok(json) = serde_json::to_string(secret) {
            self.patterns.push(json[1..json.len() - 1].to_owned());
        }
        self.patterns.extend(percent_forms(secret));
        self.patterns.extend(base64_cores(secret.as_bytes()));
        self.patterns.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        self.patterns.dedup();
    }

    /// Adds HTTP basic credentials: each half, and `user:pass` as sent.
    pub fn add_basic(&mut self, user: &str, password: &str) {
        self.add(user);
        self.add(password);
        self.add(&format!("{user}:{password}"));
    }

    /// Everything `other` redacts, this redacts too.
    pub fn extend(&mut self, other: &Redactor) {
        self.patterns.extend(other.patterns.iter().cloned());
        self.patterns.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        self.patterns.dedup();
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// `text` with every known form of every secret masked.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for p in &self.patterns {
            if out.contains(p.as_str()) {
                out = out.replace(p.as_str(), MASK);
            }
        }
        out
    }

    /// Masks every string in a JSON value (not object keys).
    pub fn redact_json(&self, value: &mut serde_json::Value) {
        use serde_json::Value;
        match value {
            Value::String(s) => self.redact_in_place(s),
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact_json(v)),
            Value::Object(map) => map.values_mut().for_each(|v| self.redact_json(v)),
            _ => {}
        }
    }

    /// Masks in place, copying only when something matched.
    pub fn redact_in_place(&self, text: &mut String) {
        if self.patterns.iter().any(|p| text.contains(p.as_str())) {
            *text = self.redact(text);
        }
    }
}

/// The percent-encodings a client or a program may produce.
fn percent_forms(secret: &str) -> Vec<String> {
    let strict = encode(secret, |b| b.is_ascii_alphanumeric());
    let rfc3986 = encode(secret, |b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    let form: String = form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let mut forms =
        vec![strict.clone(), strict.replace("%20", "+"), rfc3986.clone(), rfc3986.replace("%20", "+"), form];
    forms.extend([lower_hex(&strict), lower_hex(&rfc3986)]);
    forms.retain(|f| f != secret);
    forms
}

fn encode(secret: &str, keep: impl Fn(u8) -> bool) -> String {
    secret.bytes().map(|b| if keep(b) { char::from(b).to_string() } else { format!("%{b:02X}") }).collect()
}

/// `%2F` as `%2f`: hex digits after each `%` in lower case.
fn lower_hex(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut hex_left = 0;
    for c in encoded.chars() {
        if c == '%' {
            hex_left = 2;
            out.push(c);
        } else if hex_left > 0 {
            hex_left -= 1;
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The base64 characters that encode only `secret`'s bytes, at each of the
/// three alignments it can have inside a longer encoded text (where the one
/// or two characters it shares with its neighbours stay), and its whole
/// encoding as it stands alone.
fn base64_cores(secret: &[u8]) -> Vec<String> {
    let engines = [GeneralPurpose::new(&STANDARD, NO_PAD), GeneralPurpose::new(&URL_SAFE, NO_PAD)];
    let padded_engines = [base64::engine::general_purpose::STANDARD, base64::engine::general_purpose::URL_SAFE];
    // The whole encoding, with or without padding, when it stands alone (a header).
    let mut cores: Vec<String> = padded_engines.iter().map(|e| e.encode(secret)).collect();
    cores.extend(engines.iter().map(|e| e.encode(secret)));
    for offset in 0..3usize {
        let mut padded = vec![0u8; offset];
        padded.extend_from_slice(secret);
        // Character i covers bits [6i, 6i + 6): keep those inside the secret's bits.
        let first = (offset * 8).div_ceil(6);
        let end = (padded.len() * 8) / 6;
        if end < first + MIN_BASE64_LEN {
            continue;
        }
        for engine in &engines {
            let encoded = engine.encode(&padded);
            if let Some(core) = encoded.get(first..end) {
                cores.push(core.to_owned());
            }
        }
    }
    cores
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE as B64URL};

    use super::*;

    const SECRET: &str = "s3cr3t/va+lue?&=~ x";

    fn redactor() -> Redactor {
        let mut r = Redactor::new();
        r.add(SECRET);
        r
    }

    fn assert_masked(text: &str) {
        let out = redactor().redact(text);
        assert!(out.contains(MASK), "nothing masked in {text:?}: {out:?}");
        for needle in ["s3cr3t", "czNjcjN0L3Zh", "va+lue", "va%2Blue", "va%2blue"] {
            assert!(!out.contains(needle), "{needle} left in {out:?}");
        }
    }

    #[test]
    fn a_secret_is_masked_plain_json_escaped_and_percent_encoded() {
        assert_masked(&format!("token={SECRET};"));
        assert_masked(&serde_json::json!({ "t": SECRET }).to_string());
        let form: String = form_urlencoded::byte_serialize(SECRET.as_bytes()).collect();
        assert_masked(&format!("GET /x?token={form}"));
        assert_masked(&format!("GET /x?token={}", encode(SECRET, |b| b.is_ascii_alphanumeric())));
        assert_masked(&format!("GET /x?token={}", lower_hex(&encode(SECRET, |b| b.is_ascii_alphanumeric()))));
    }

    #[test]
    fn a_secret_is_masked_in_base64_at_any_alignment() {
        for prefix in ["", "a", "ab", "user:"] {
            let plain = format!("{prefix}{SECRET}");
            for encoded in [B64.encode(&plain), B64URL.encode(&plain)] {
                let out = redactor().redact(&format!("Authorization: Basic {encoded}"));
                assert!(out.contains(MASK), "{prefix:?}: {out}");
                assert!(!out.contains(&encoded), "{prefix:?}: {out}");
            }
        }
    }

    #[test]
    fn basic_credentials_are_masked_as_sent() {
        let mut r = Redactor::new();
        r.add_basic("someuser", "somepass");
        let header = B64.encode("someuser:somepass");
        let out = r.redact(&format!("Basic {header}"));
        assert!(!out.contains(&header[..8]), "{out}");
    }

    #[test]
    fn strings_inside_json_are_masked_and_the_json_stays_valid() {
        let mut v = serde_json::json!({"a": [SECRET, 1], "b": {"c": format!("x{SECRET}y")}});
        redactor().redact_json(&mut v);
        assert_eq!(v, serde_json::json!({"a": [MASK, 1], "b": {"c": format!("x{MASK}y")}}));
    }

    #[test]
    fn values_too_short_to_be_secrets_are_left_alone() {
        let mut r = Redactor::new();
        r.add("abc");
        assert!(r.is_empty());
        assert_eq!(r.redact("abc abc"), "abc abc");
    }

    #[test]
    fn text_without_secrets_is_unchanged() {
        let text = "run finished: Succeeded (12 records)";
        assert_eq!(redactor().redact(text), text);
    }
}
