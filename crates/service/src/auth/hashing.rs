//! Password hashing off the async workers. Argon2 is deliberately slow and
//! memory-hard (~19 MiB, tens of milliseconds per hash): run on a runtime
//! worker it stalls every other request queued there, and run unbounded on
//! tokio's blocking pool (up to 512 threads) a burst of logins takes every
//! core and hundreds of MiB. So hashes run on the blocking pool, at most
//! [`permits`] at once; further logins wait, without holding a worker.

use std::future::Future;
use std::sync::OnceLock;

use tokio::sync::Semaphore;

use super::credentials;
use ferry_core::error::{Error, Result};

/// How many hashes may run at once: one core fewer than the machine has (at
/// least one), so the async workers keep a core during a burst of logins.
pub fn permits() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    cpus.saturating_sub(1).max(1)
}

fn pool() -> &'static Semaphore {
    static POOL: OnceLock<Semaphore> = OnceLock::new();
    POOL.get_or_init(|| Semaphore::new(permits()))
}

/// Runs `work` on the blocking pool once a hashing permit is free and `gate`,
/// asked then, still allows it: a burst of concurrent logins all pass a check
/// made on arrival, so the throttle is asked again at the head of the queue.
async fn bounded<T: Send + 'static>(
    gate: impl Future<Output = Result<()>>,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    let permit = pool().acquire().await.map_err(|_| Error::Internal("the hashing pool is closed".into()))?;
    gate.await?;
    let joined = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        work()
    })
    .await;
    joined.map_err(|e| Error::Internal(format!("password hashing did not finish: {e}")))
}

/// [`credentials::verify_password`] on the bounded pool, if `gate` allows it
/// once a permit is free. `phc` `None` verifies against the timing equaliser,
/// so unknown emails take as long to refuse as known ones.
pub async fn verify_password(
    password: String,
    phc: Option<String>,
    gate: impl Future<Output = Result<()>>,
) -> Result<bool> {
    bounded(gate, move || {
        credentials::verify_password(&password, phc.as_deref().unwrap_or_else(|| credentials::dummy_password_hash()))
    })
    .await
}

/// [`credentials::hash_password`] on the bounded pool.
pub async fn hash_password(password: String) -> Result<String> {
    bounded(async { Ok(()) }, move || credentials::hash_password(&password)).await?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_least_one_hash_may_run() {
        assert!(permits() >= 1);
    }

    #[tokio::test]
    async fn hashes_made_on_the_pool_verify_on_it() {
        let h = hash_password("correct horse".into()).await.expect("hash");
        assert!(verify_password("correct horse".into(), Some(h.clone()), async { Ok(()) }).await.expect("verify"));
        assert!(!verify_password("wrong horse".into(), Some(h), async { Ok(()) }).await.expect("verify"));
        assert!(!verify_password("correct horse".into(), None, async { Ok(()) }).await.expect("verify"));
    }

    #[tokio::test]
    async fn a_closed_gate_refuses_before_hashing() {
        let refused = verify_password("x".into(), None, async { Err(Error::Unauthorized("no".into())) }).await;
        assert!(matches!(refused, Err(Error::Unauthorized(_))));
    }
}
