//! In-flight limits (a connection's `max_concurrent`): one record per key in
//! the store (`INFLIGHT#…`) listing how many slots each process claims and
//! until when. A process claims slots as its requests need them (one
//! conditional write per slot it adds), hands them to its requests through
//! a local count (no store trip per request), and renews its claim every
//! [`RENEW_EVERY`] while it holds any, giving back what went unused since
//! the last renewal. A claim not renewed for [`CLAIM_TTL`] (its process
//! crashed, its Lambda sandbox froze) counts for nothing: others may take
//! its slots. A request waiting for a slot another process holds looks at
//! the record again every [`POLL`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{record_key, unavailable};
use ferry_core::ports::{Clock, Condition, Item, Store, StoreError, WriteOp};
use ferry_engine::throttle::{GateError, Slot};

/// How long a claim lasts unless renewed: what a crashed holder's slots are lost for.
pub const CLAIM_TTL: Duration = Duration::from_secs(10);
/// A claim is used locally only until this long before it lapses, for
/// clocks that differ between hosts.
const CLAIM_MARGIN: Duration = Duration::from_secs(2);
/// How often a holder renews its claim and gives back slots it stopped using.
const RENEW_EVERY: Duration = Duration::from_secs(1);
/// How often a request waiting for a slot held elsewhere reads the claims again.
const POLL: Duration = Duration::from_millis(50);
/// Lost races for the record before a claim counts as refused this time.
const WRITE_ATTEMPTS: usize = 8;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Claims {
    holders: BTreeMap<String, Claim>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claim {
    slots: u32,
    /// Unix microseconds of the claimer's clock.
    until_us: i64,
}

/// This process's share of one key.
#[derive(Default)]
struct Pool {
    state: Mutex<PoolState>,
    /// A local request finished: its slot is free for the next.
    freed: Notify,
    /// One claim or renewal at a time per key in this process.
    claiming: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct PoolState {
    /// Slots the stored claim grants this process.
    held: u32,
    in_use: u32,
    /// The most in use at once since the last renewal.
    peak: u32,
    /// When the claim stops being good here.
    until: Option<Instant>,
    /// Another process holds the rest: do not ask the store again before this.
    busy_until: Option<Instant>,
    renewing: bool,
}

impl PoolState {
    fn valid(&self, now: Instant) -> bool {
        self.until.is_some_and(|u| now < u)
    }
}

fn lock(pool: &Pool) -> std::sync::MutexGuard<'_, PoolState> {
    pool.state.lock().unwrap_or_else(|p| p.into_inner())
}

/// A slot in use; dropping it frees it for this process's next request.
struct InUse(Arc<Pool>);

impl Drop for InUse {
    fn drop(&mut self) {
        lock(&self.0).in_use -= 1;
        self.0.freed.notify_one();
    }
}

/// What writes this process's claims.
#[derive(Clone)]
struct Claimer {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    holder: String,
}

pub(super) struct InFlight {
    claimer: Claimer,
    pools: Mutex<HashMap<String, Arc<Pool>>>,
}

impl InFlight {
    pub(super) fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, holder: String) -> Self {
        Self { claimer: Claimer { store, clock, holder }, pools: Default::default() }
    }

    /// Waits until one of `key`'s `max` slots is this request's.
    pub(super) async fn hold(&self, key: &str, max: u32) -> Result<Slot, GateError> {
        let pool = {
            let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
            pools.entry(key.to_owned()).or_default().clone()
        };
        loop {
            let freed = pool.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if let Some(slot) = take_local(&pool) {
                return Ok(slot);
            }
            let busy = lock(&pool).busy_until.filter(|b| Instant::now() < *b);
            if busy.is_none() {
                let guard = pool.claiming.lock().await;
                if let Some(slot) = take_local(&pool) {
                    return Ok(slot);
                }
                let desired = lock(&pool).in_use + 1;
                match self.claimer.claim(key, max, desired).await? {
                    Some(until) => {
                        let start_renewing = {
                            let mut s = lock(&pool);
                            s.held = desired;
                            s.until = Some(until);
                            !std::mem::replace(&mut s.renewing, true)
                        };
                        if start_renewing {
                            tokio::spawn(renew(self.claimer.clone(), key.to_owned(), pool.clone()));
                        }
                        drop(guard);
                        continue;
                    }
                    None => lock(&pool).busy_until = Some(Instant::now() + POLL),
                }
            }
            let wake = lock(&pool).busy_until.unwrap_or_else(|| Instant::now() + POLL);
            tokio::select! {
                _ = freed => {}
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }
}

/// A slot of the claim this process holds, if one is free and the claim good.
fn take_local(pool: &Arc<Pool>) -> Option<Slot> {
    let mut s = lock(pool);
    if !s.valid(Instant::now()) || s.in_use >= s.held {
        return None;
    }
    s.in_use += 1;
    s.peak = s.peak.max(s.in_use);
    Some(Slot::new(InUse(pool.clone())))
}

/// Keeps a process's claim on a key alive while it uses it, shrinking it to
/// what was used since the last round; gives it all back once unused.
async fn renew(claimer: Claimer, key: String, pool: Arc<Pool>) {
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        let guard = pool.claiming.lock().await;
        let desired = {
            let mut s = lock(&pool);
            let desired = s.peak.max(s.in_use);
            s.peak = s.in_use;
            desired
        };
        match claimer.set(&key, desired).await {
            Ok(until) => {
                let mut s = lock(&pool);
                s.held = desired;
                s.until = until;
                if desired == 0 {
                    s.renewing = false;
                    drop(s);
                    drop(guard);
                    return;
                }
            }
            // The claim lapses by itself; requests here wait for a new one once it has.
            Err(e) => tracing::warn!(error = %e, "could not renew the claim on an in-flight limit"),
        }
        drop(guard);
    }
}

impl Claimer {
    /// Claims `desired` slots of `key` for this process if the others leave
    /// that many of `max`; `None` when they do not.
    async fn claim(&self, key: &str, max: u32, desired: u32) -> Result<Option<Instant>, GateError> {
        self.write(key, |others| (others + desired <= max).then_some(desired)).await
    }

    /// Sets this process's claim to `slots` (0 gives it up); when the claim is good until.
    async fn set(&self, key: &str, slots: u32) -> Result<Option<Instant>, GateError> {
        self.write(key, |_| Some(slots)).await
    }

    /// Rewrites the claims of `key` with this process's from `decide` (given
    /// the slots the others' live claims hold), dropping lapsed claims.
    async fn write(&self, key: &str, decide: impl Fn(u32) -> Option<u32>) -> Result<Option<Instant>, GateError> {
        let record = record_key("INFLIGHT", key);
        for _ in 0..WRITE_ATTEMPTS {
            let started = Instant::now();
            let now_us = self.clock.now().timestamp_micros();
            let current = self.store.get(&record).await.map_err(unavailable)?;
            let (mut claims, condition) = match current {
                Some(item) => (
                    serde_json::from_value::<Claims>(item.body).unwrap_or_default(),
                    Condition::VersionIs(item.version),
                ),
                None => (Claims::default(), Condition::NotExists),
            };
            claims.holders.retain(|holder, c| c.until_us > now_us && *holder != self.holder);
            let others: u32 = claims.holders.values().map(|c| c.slots).sum();
            let Some(slots) = decide(others) else { return Ok(None) };
            let until_us = now_us + CLAIM_TTL.as_micros() as i64;
            if slots > 0 {
                claims.holders.insert(self.holder.clone(), Claim { slots, until_us });
            }
            let body = serde_json::to_value(&claims).map_err(|e| GateError(e.to_string()))?;
            let item = Item::new(record.clone(), body).with_expiry(until_us / 1_000_000 + 60);
            match self.store.write(vec![WriteOp::Put { item, condition }]).await {
                Ok(()) => return Ok((slots > 0).then(|| started + CLAIM_TTL - CLAIM_MARGIN)),
                Err(StoreError::ConditionFailed) => continue,
                Err(e) => return Err(unavailable(e)),
            }
        }
        Ok(None)
    }
}
