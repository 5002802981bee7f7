//! The login throttle's counters, as records in the store: every process (and
//! every Lambda sandbox of the platform function) sees the same counts, so a
//! client cannot multiply its budget by spreading attempts over sandboxes.
//! One read per subject per login; a write per subject per failure, made
//! conditional on the version read so concurrent failures are all counted.

use std::net::IpAddr;

use crate::auth::throttle::{subjects, Counter, Subject, Throttled};
use crate::repo::{keys, records};
use crate::users::Users;
use ferry_core::error::{Error, Result};
use ferry_core::ports::{Condition, Item, StoreError, WriteOp};

/// Attempts at counting one failure under contention before giving up on it.
const WRITE_ATTEMPTS: usize = 5;

impl Users<'_> {
    /// Refuses while the account's or the address's wait is running.
    pub(crate) async fn throttle_check(&self, email: &str, source: Option<IpAddr>) -> Result<()> {
        let now = self.clock.now();
        let mut longest: Option<Throttled> = None;
        for s in subjects(&self.settings.login_throttle, email, source) {
            let counter = records::get::<Counter>(self.store, &keys::login_throttle(&s.id)).await?;
            let Some(secs) = counter.and_then(|c| c.value.wait_secs(now)) else { continue };
            if longest.is_none_or(|l| l.retry_after_secs < secs) {
                longest = Some(Throttled { retry_after_secs: secs, rule: s.kind });
            }
        }
        match longest {
            None => Ok(()),
            Some(t) => {
                tracing::warn!(rule = t.rule, source = ?source, retry_after_secs = t.retry_after_secs, "sign-in throttled");
                Err(Error::TooManyAttempts { retry_after_secs: t.retry_after_secs })
            }
        }
    }

    /// Counts a wrong password against the account and the address; returns the account's failures.
    pub(crate) async fn throttle_fail(&self, email: &str, source: Option<IpAddr>) -> Result<u32> {
        let mut account_failures = 0;
        for s in subjects(&self.settings.login_throttle, email, source) {
            let failures = self.count_failure(&s).await?;
            if s.kind == "account" {
                account_failures = failures;
            }
        }
        Ok(account_failures)
    }

    async fn count_failure(&self, s: &Subject) -> Result<u32> {
        let key = keys::login_throttle(&s.id);
        for _ in 0..WRITE_ATTEMPTS {
            let now = self.clock.now();
            let current = records::get::<Counter>(self.store, &key).await?;
            let condition = current.as_ref().map_or(Condition::NotExists, |c| Condition::VersionIs(c.version));
            let counter = Counter::fail(current.map(|c| c.value), &s.rule, now);
            let item = Item::new(key.clone(), records::to_body(&counter)?)
                .with_expiry(counter.forgotten_at(&s.rule).timestamp());
            match self.store.write(vec![WriteOp::Put { item, condition }]).await {
                Ok(()) => return Ok(counter.failures),
                Err(StoreError::ConditionFailed) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        // Others are counting failures of this subject at this very moment: it is throttled anyway.
        Ok(0)
    }

    /// A right password clears the account's failures (written with the
    /// session), not the address's: a client must not reset its address
    /// budget by signing in to its own account.
    pub(crate) fn throttle_clear(&self, email: &str) -> WriteOp {
        let account = subjects(&self.settings.login_throttle, email, None).remove(0);
        WriteOp::Delete { key: keys::login_throttle(&account.id), condition: Condition::None }
    }
}
