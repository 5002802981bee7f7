//! Identifier rules shared by the API, the store keys and API key parsing.

/// Reserved tenant id that owns platform-wide (admin) API keys.
pub const PLATFORM: &str = "platform";

/// Ids appear in store keys (`T#<id>`), URLs and API keys, so they are restricted
/// to lowercase letters, digits and `-`, 1 to 64 characters, starting alphanumeric.
pub fn is_valid_id(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && bytes[0].is_ascii_alphanumeric()
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

/// Human names (tenants, connections, keys): 1 to 200 characters, no control characters.
pub fn is_valid_name(s: &str) -> bool {
    let trimmed = s.trim();
    !trimmed.is_empty() && s.chars().count() <= 200 && !s.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_slugs_and_ulids() {
        assert!(is_valid_id("acme"));
        assert!(is_valid_id("acme-eu-1"));
        assert!(is_valid_id("01hzy3k6x9w4r2m5n7p8q0s1t2"));
    }

    #[test]
    fn ids_reject_separators_and_uppercase() {
        for bad in ["", "-acme", "Acme", "a_b", "a#b", "a/b", "a b", &"a".repeat(65)] {
            assert!(!is_valid_id(bad), "{bad:?} should be rejected");
        }
    }
}
