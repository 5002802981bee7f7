//! Request budgets: one token bucket per key in the store (`BUDGET#…`), its
//! tokens and when they were counted. A process takes a lease of a few
//! tokens per conditional write (about what the rate grants in
//! [`LEASE_WINDOW`]) and spends them locally; what it has not spent when the
//! window ends is dropped, never carried over. So in any span of T seconds
//! at most `burst + rate × (T + LEASE_WINDOW)` requests go out under one key,
//! however many processes share it, and the store sees about one write per
//! busy process per window rather than one per request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{record_key, unavailable};
use ferry_core::ports::{Clock, Condition, Item, Store, StoreError, WriteOp};
use ferry_engine::throttle::{GateError, Rate};

/// How long leased tokens stay good: the most a request lags behind the
/// token it spends, and what sizes a lease.
pub const LEASE_WINDOW: Duration = Duration::from_millis(200);

/// Lost races for a bucket before the lease waits a moment and tries again.
const WRITE_ATTEMPTS: usize = 8;

/// A bucket as stored. A missing one is full.
#[derive(Debug, Serialize, Deserialize)]
struct Bucket {
    tokens: f64,
    /// When `tokens` were counted, unix microseconds of the writer's clock.
    at_us: i64,
}

/// Tokens this process leased and has not spent yet.
#[derive(Default)]
struct Lease {
    left: u32,
    until: Option<Instant>,
}

enum Leased {
    Tokens(u32, Instant),
    Wait(Duration),
}

pub(super) struct Budgets {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// Per key: a request takes its token under this lock, so one store trip
    /// per key is under way at a time in this process and waiters queue in order.
    leases: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<Lease>>>>,
}

impl Budgets {
    pub(super) fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock, leases: Default::default() }
    }

    /// Waits until a token of `key` is taken.
    pub(super) async fn take(&self, key: &str, rate: Rate) -> Result<(), GateError> {
        let cell = {
            let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
            leases.entry(key.to_owned()).or_default().clone()
        };
        let mut lease = cell.lock().await;
        loop {
            if lease.left > 0 && lease.until.is_some_and(|u| Instant::now() < u) {
                lease.left -= 1;
                return Ok(());
            }
            lease.left = 0;
            match self.lease(key, rate).await? {
                Leased::Tokens(n, until) => {
                    lease.left = n;
                    lease.until = Some(until);
                }
                Leased::Wait(wait) => tokio::time::sleep(wait).await,
            }
        }
    }

    /// Takes up to a lease's worth of tokens from the stored bucket, or says
    /// how long until one is there.
    async fn lease(&self, key: &str, rate: Rate) -> Result<Leased, GateError> {
        let record = record_key("BUDGET", key);
        let want = lease_size(rate);
        for _ in 0..WRITE_ATTEMPTS {
            // Counted from before the read: the lease never outlives its window.
            let started = Instant::now();
            let now_us = self.clock.now().timestamp_micros();
            let current = self.store.get(&record).await.map_err(unavailable)?;
            let (bucket, condition) = match current {
                Some(item) => (serde_json::from_value::<Bucket>(item.body).ok(), Condition::VersionIs(item.version)),
                None => (None, Condition::NotExists),
            };
            let tokens = match bucket {
                // A clock behind the last writer's refills nothing rather than going back.
                Some(b) => {
                    let elapsed = (now_us - b.at_us).max(0) as f64 / 1e6;
                    (b.tokens + elapsed * rate.per_second).min(rate.burst)
                }
                None => rate.burst,
            };
            if tokens < 1.0 {
                return Ok(Leased::Wait(Duration::from_secs_f64((1.0 - tokens) / rate.per_second)));
            }
            let n = want.min(tokens.floor() as u32);
            let left = tokens - f64::from(n);
            // Once full again the bucket is as good as absent: let it expire.
            let full_in = ((rate.burst - left) / rate.per_second).ceil().min(86_400.0) as i64;
            let body =
                serde_json::to_value(Bucket { tokens: left, at_us: now_us }).map_err(|e| GateError(e.to_string()))?;
            let item = Item::new(record.clone(), body).with_expiry(now_us / 1_000_000 + full_in + 60);
            match self.store.write(vec![WriteOp::Put { item, condition }]).await {
                Ok(()) => return Ok(Leased::Tokens(n, started + LEASE_WINDOW)),
                Err(StoreError::ConditionFailed) => {
                    let jitter = Duration::from_millis(rand::thread_rng().gen_range(1..=5));
                    tokio::time::sleep(jitter).await;
                }
                Err(e) => return Err(unavailable(e)),
            }
        }
        Ok(Leased::Wait(Duration::from_millis(rand::thread_rng().gen_range(10..=30))))
    }
}

/// What a lease takes: the rate's worth of one window, at least one token,
/// at most the burst.
fn lease_size(rate: Rate) -> u32 {
    let cap = rate.burst.floor().max(1.0);
    (rate.per_second * LEASE_WINDOW.as_secs_f64()).floor().clamp(1.0, cap) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_hold_a_windows_worth_of_tokens_within_the_burst() {
        let size = |per_second, burst| lease_size(Rate { per_second, burst });
        assert_eq!(size(10.0, 10.0), 2);
        assert_eq!(size(100.0, 100.0), 20);
        assert_eq!(size(100.0, 5.0), 5, "never more than the burst");
        assert_eq!(size(0.5, 1.0), 1, "at least one token");
    }
}
