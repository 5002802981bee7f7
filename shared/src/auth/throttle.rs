//! Login throttling: wrong passwords are counted per account (the email as
//! typed, normalised, so unknown emails are throttled alike and their answers
//! stay indistinguishable) and per source address. Past a rule's free
//! failures every further failure doubles the wait before the next attempt is
//! even checked, up to a cap; a quiet period without failures forgets them.
//!
//! The counters live in this process. `ferry up` is one process, so its limits
//! are exact. On Lambda every warm sandbox of the platform function keeps its
//! own counters, so a client spreading attempts over N concurrent sandboxes
//! gets up to N times the budget, and a recycled sandbox forgets; the per-
//! sandbox backoff still turns a 38/s guessing rate into a handful per quarter
//! hour per sandbox.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};

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

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Subject {
    /// SHA-256 of the normalised email: fixed size whatever a client sends.
    Account([u8; 32]),
    /// IPv4 addresses as they are; IPv6 by their /64, which one client usually holds whole.
    Address(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last_failure: DateTime<Utc>,
    blocked_until: DateTime<Utc>,
}

/// Most subjects tracked at once; past it, forgotten and then the stalest ones
/// go first, so a spray of made-up emails cannot grow memory without bound.
const MAX_SUBJECTS: usize = 100_000;

#[derive(Debug, Default)]
pub struct LoginThrottle {
    entries: Mutex<HashMap<Subject, Entry>>,
}

fn account(email: &str) -> Subject {
    Subject::Account(Sha256::digest(email.trim().to_lowercase().as_bytes()).into())
}

fn address(ip: IpAddr) -> Subject {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => Subject::Address(IpAddr::V4(v4)),
            None => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                Subject::Address(IpAddr::V6(octets.into()))
            }
        },
        v4 => Subject::Address(v4),
    }
}

/// The subjects an attempt is counted against, with their rules; the account first.
fn subjects(
    settings: &LoginThrottleSettings,
    email: &str,
    ip: Option<IpAddr>,
) -> [(Option<Subject>, ThrottleRule, &'static str); 2] {
    [(Some(account(email)), settings.per_account, "account"), (ip.map(address), settings.per_address, "address")]
}

impl LoginThrottle {
    /// Refuses while either rule's wait is running.
    pub fn check(
        &self,
        settings: &LoginThrottleSettings,
        email: &str,
        ip: Option<IpAddr>,
        now: DateTime<Utc>,
    ) -> Result<(), Throttled> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let mut longest: Option<Throttled> = None;
        for (subject, _, rule) in subjects(settings, email, ip) {
            let Some(entry) = subject.and_then(|s| entries.get(&s)) else { continue };
            if entry.blocked_until > now {
                let wait = (entry.blocked_until - now).num_milliseconds().max(0) as u64;
                let secs = wait.div_ceil(1000).max(1);
                if longest.is_none_or(|l| l.retry_after_secs < secs) {
                    longest = Some(Throttled { retry_after_secs: secs, rule });
                }
            }
        }
        longest.map_or(Ok(()), Err)
    }

    /// Counts a wrong password against both subjects; returns the account's failures.
    pub fn record_failure(
        &self,
        settings: &LoginThrottleSettings,
        email: &str,
        ip: Option<IpAddr>,
        now: DateTime<Utc>,
    ) -> u32 {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        make_room(&mut entries, settings, now);
        let counts = subjects(settings, email, ip).map(|(subject, rule, _)| {
            let entry = entries.entry(subject?).or_insert(Entry { failures: 0, last_failure: now, blocked_until: now });
            if now - entry.last_failure >= rule.quiet_period {
                entry.failures = 0;
            }
            entry.failures = entry.failures.saturating_add(1);
            entry.last_failure = now;
            entry.blocked_until = now + delay(&rule, entry.failures);
            Some(entry.failures)
        });
        counts[0].unwrap_or(0)
    }

    /// A right password clears the account's failures, not the address's: a
    /// client must not reset its address budget by signing in to its own account.
    pub fn record_success(&self, email: &str) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).remove(&account(email));
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

fn make_room(entries: &mut HashMap<Subject, Entry>, settings: &LoginThrottleSettings, now: DateTime<Utc>) {
    if entries.len() < MAX_SUBJECTS {
        return;
    }
    let quiet = settings.per_account.quiet_period.max(settings.per_address.quiet_period);
    entries.retain(|_, e| e.blocked_until > now || now - e.last_failure < quiet);
    while entries.len() >= MAX_SUBJECTS {
        let Some(stalest) = entries.iter().min_by_key(|(_, e)| e.last_failure).map(|(s, _)| s.clone()) else { break };
        entries.remove(&stalest);
    }
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
        let settings = LoginThrottleSettings::default();
        let t = LoginThrottle::default();
        for _ in 0..6 {
            t.record_failure(&settings, "a@x.io", None, at(0));
        }
        assert!(t.check(&settings, "A@x.io ", None, at(0)).is_err(), "emails are throttled case-insensitively");
        assert_eq!(t.record_failure(&settings, "a@x.io", None, at(16 * 60)), 1);
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64_prefix() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap_or(IpAddr::from([0; 16]));
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap_or(IpAddr::from([0; 16]));
        assert_eq!(address(a), address(b));
    }
}
