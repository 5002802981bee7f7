//! Name resolution under the policy: every address a name resolves to is
//! checked, and reqwest connects only to what was checked.

use std::net::SocketAddr;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::{NetPolicy, Refusal};

/// Resolves a host, refusing it when any of its addresses is off limits (a
/// name with one private address among public ones is not to be trusted).
pub(super) async fn lookup(policy: &NetPolicy, name: &str, port: u16) -> Result<Vec<SocketAddr>, Refusal> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name, port))
        .await
        .map_err(|_| Refusal::new("unresolvable_host", format!("the host {name} could not be resolved")))?
        .collect();
    if addrs.is_empty() {
        return Err(Refusal::new("unresolvable_host", format!("the host {name} has no address")));
    }
    for a in &addrs {
        policy.check_ip(a.ip()).map_err(|r| Refusal::new(r.code, format!("{name} resolves to {}", r.message)))?;
    }
    Ok(addrs)
}

/// reqwest's resolver for clients under the policy. It runs for every new
/// connection (redirects and retries included), so DNS rebinding meets the
/// same check; address literals never reach it and are checked on the URL.
pub struct GuardedResolver {
    policy: NetPolicy,
}

impl GuardedResolver {
    pub fn new(policy: NetPolicy) -> Self {
        Self { policy }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        Box::pin(async move {
            policy.check_name(name.as_str())?;
            let addrs = lookup(&policy, name.as_str(), 0).await?;
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// The policy's refusal behind a reqwest error, if that is why it failed.
pub fn refusal_in(error: &(dyn std::error::Error + 'static)) -> Option<Refusal> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(r) = e.downcast_ref::<Refusal>() {
            return Some(r.clone());
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_unless_private_networks_are_allowed() {
        let strict = NetPolicy { allow_private_network: false };
        let refused = lookup(&strict, "localhost", 80).await.expect_err("loopback");
        assert_eq!(refused.code, "blocked_address");
        assert!(refused.message.starts_with("localhost resolves to "), "{}", refused.message);
        let open = NetPolicy { allow_private_network: true };
        assert!(lookup(&open, "localhost", 80).await.is_ok_and(|a| a.iter().all(|a| a.ip().is_loopback())));
    }

    #[tokio::test]
    async fn the_resolver_hands_reqwest_no_refused_address() {
        let resolver = GuardedResolver::new(NetPolicy { allow_private_network: false });
        let name: Name = "localhost".parse().expect("name");
        let err = match resolver.resolve(name).await {
            Ok(_) => panic!("localhost resolved"),
            Err(e) => e,
        };
        assert_eq!(refusal_in(err.as_ref()).map(|r| r.code), Some("blocked_address"));
    }
}
