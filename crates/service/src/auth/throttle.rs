//! Login throttling rules: wrong passwords are counted per account (the email
//! as typed, normalised, so unknown emails are throttled alike and their
//! answers stay indistinguishable) and per source address. Past a rule's free
//! failures every further failure doubles the wait before the next attempt is
//! even checked, up to a cap; a quiet period without failures forgets them.
//! The counters are records in the store (`service::login_throttle`), so every
//! process and Lambda sandbox applies the same limits.

use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use ferry_core::crypto::sha256_hex;
use serde::{Deserialize, Serialize};

/// One throttling rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleRule {
    /// Failures answered without delay.
    pub free_failures: u32,
    /// Wait after the first failure past the free ones; doubles with each further failure.
    pub first_delay: Duration,
    /// The longest wait.
    pub max_delay: Duration,
    /// Failures are forgotten after this long without one.
    pub quiet_period: Duration,
}

/// The two rules every login passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginThrottleSettings {
    pub per_account: ThrottleRule,
    /// Looser than per account: people behind one NAT share an address.
    pub per_address: ThrottleRule,
}

impl Default for LoginThrottleSettings {
    fn default() -> Self {
        let rule = |free_failures| ThrottleRule {
            free_failures,
            first_delay: Duration::seconds(1),
            max_delay: Duration::minutes(15),
            quiet_period: Duration::minutes(15),
        };
        Self { per_account: rule(5), per_address: rule(20) }
    }
}

/// Why an attempt is not checked now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    /// Whole seconds until the next attempt is checked (at least 1).
    pub retry_after_secs: u64,
    /// `account` or `address`: which rule refused, for the log.
    pub rule: &'static str,
}

/// What is counted: an account or an address, with its rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// `acct#<sha256 of the normalised email>` (fixed size whatever a client
    /// sends) or `addr#<address>` (IPv6 by its /64, which one client usually holds whole).
    pub id: String,
    pub rule: ThrottleRule,
    pub kind: &'static str,
}

/// The subjects an attempt is counted against; the account first.
pub fn subjects(settings: &LoginThrottleSettings, email: &str, ip: Option<IpAddr>) -> Vec<Subject> {
    let digest = sha256_hex(email.trim().to_lowercase());
    let mut out = vec![Subject { id: format!("acct#{digest}"), rule: settings.per_account, kind: "account" }];
    if let Some(ip) = ip {
        out.push(Subject { id: format!("addr#{}", address(ip)), rule: settings.per_address, kind: "address" });
    }
    out
}

fn address(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                IpAddr::V6(octets.into())
            }
        },
        v4 => v4,
    }
}

/// The failures of one subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    pub failures: u32,
    pub last_failure: DateTime<Utc>,
    pub blocked_until: DateTime<Utc>,
}

impl Counter {
    /// Whole seconds of wait left, if any.
    pub fn wait_secs(&self, now: DateTime<Utc>) -> Option<u64> {
        let ms = (self.blocked_until - now).num_milliseconds();
        (ms > 0).then(|| (ms as u64).div_ceil(1000).max(1))
    }

    /// Counts one more failure at `now`.
    pub fn fail(current: Option<Counter>, rule: &ThrottleRule, now: DateTime<Utc>) -> Counter {
        let failures = match current {
            Some(c) if now - c.last_failure < rule.quiet_period => c.failures.saturating_add(1),
            _ => 1,
        };
        Counter { failures, last_failure: now, blocked_until: now + delay(rule, failures) }
    }

    /// When the record may be dropped: its wait is over and its failures forgotten.
    pub fn forgotten_at(&self, rule: &ThrottleRule) -> DateTime<Utc> {
        self.blocked_until.max(self.last_failure + rule.quiet_period)
    }
}

/// The wait after the `failures`-th failure: none while free, then doubling.
fn delay(rule: &ThrottleRule, failures: u32) -> Duration {
    let Some(past) = failures.checked_sub(rule.free_failures).filter(|n| *n > 0) else {
        return Duration::zero();
    };
    let factor = 1i32.checked_shl(past - 1).unwrap_or(i32::MAX);
    rule.first_delay.checked_mul(factor).map_or(rule.max_delay, |d| d.min(rule.max_delay))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap_or_default()
    }

    #[test]
    fn waits_double_past_the_free_failures_up_to_the_cap() {
        let rule = LoginThrottleSettings::default().per_account;
        let waits: Vec<i64> = (1..=16).map(|n| delay(&rule, n).num_seconds()).collect();
        assert_eq!(&waits[..9], &[0, 0, 0, 0, 0, 1, 2, 4, 8]);
        assert_eq!(waits[15], 900, "capped at 15 minutes");
        assert_eq!(delay(&rule, u32::MAX).num_seconds(), 900);
    }

    #[test]
    fn a_quiet_period_forgets_failures() {
        let rule = LoginThrottleSettings::default().per_account;
        let mut c = None;
        for _ in 0..6 {
            c = Some(Counter::fail(c, &rule, at(0)));
        }
        let c = c.unwrap_or_else(|| Counter::fail(None, &rule, at(0)));
        assert_eq!(c.wait_secs(at(0)), Some(1));
        assert_eq!(c.wait_secs(at(1)), None);
        assert_eq!(Counter::fail(Some(c), &rule, at(16 * 60)).failures, 1);
    }

    #[test]
    fn emails_count_case_insensitively_and_ipv6_clients_by_their_64_prefix() {
        let s = LoginThrottleSettings::default();
        assert_eq!(subjects(&s, "Ann@X.io ", None), subjects(&s, "ann@x.io", None));
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap_or(IpAddr::from([0; 16]));
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap_or(IpAddr::from([0; 16]));
        assert_eq!(subjects(&s, "x", Some(a)), subjects(&s, "x", Some(b)));
        assert_eq!(subjects(&s, "x", Some(a)).len(), 2);
    }
}
