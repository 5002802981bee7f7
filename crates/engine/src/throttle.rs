//! What a request to a remote system waits for before it goes out: a token of
//! its request budget (a rate per tenant × provider) and a slot of its
//! connection's in-flight limit (`max_concurrent`). Both are kept behind the
//! [`Gate`] port, so the hub can share them between every run, continuation
//! and process through its store while the engine stays storage-free; every
//! request of [`crate::http::HttpClient`] passes the gate, source page fetches
//! and target writes alike, so sending more at once inside a run needs no
//! limiter of its own.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// A token bucket's rate: requests per second, and how many may go at once
/// after a quiet spell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

impl Rate {
    /// The rate with its numbers made usable: a positive rate, a burst of at least one.
    pub fn sane(self) -> Rate {
        let per_second = if self.per_second.is_finite() && self.per_second > 0.0 { self.per_second } else { 1e-3 };
        let burst = if self.burst.is_finite() && self.burst >= 1.0 { self.burst } else { 1.0 };
        Rate { per_second, burst }
    }
}

/// The limits requests through one connector are held to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Throttle {
    /// The request budget: its key (`<tenant>/<provider>`) and rate.
    pub budget: Option<(String, Rate)>,
    /// The connection's in-flight limit: its key (`<tenant>/<connection>`)
    /// and the most requests in flight at once.
    pub in_flight: Option<(String, u32)>,
}

impl Throttle {
    /// Only a request budget.
    pub fn budget(key: impl Into<String>, rate: Rate) -> Self {
        Self { budget: Some((key.into(), rate)), in_flight: None }
    }
}

/// The gate could not admit a request (its shared state is unreachable).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct GateError(pub String);

/// A slot of an in-flight limit, held while a request is in flight; dropping
/// it frees the slot.
pub struct Slot(#[allow(dead_code)] Box<dyn Send + Sync>);

impl Slot {
    pub fn new(holder: impl Send + Sync + 'static) -> Self {
        Self(Box::new(holder))
    }
}

/// The port requests are admitted through.
#[async_trait::async_trait]
pub trait Gate: Send + Sync {
    /// Waits until a token of `key`'s budget is taken.
    async fn token(&self, key: &str, rate: Rate) -> Result<(), GateError>;
    /// Waits until one of `key`'s `max` slots is free and holds it.
    async fn slot(&self, key: &str, max: u32) -> Result<Slot, GateError>;
}

/// Admits one request: a slot first, then a token, so a token is not taken
/// long before the request it pays for goes out (which would let requests
/// bunch up past the rate).
pub async fn admit(gate: &dyn Gate, throttle: &Throttle) -> Result<Option<Slot>, GateError> {
    let slot = match &throttle.in_flight {
        Some((key, max)) => Some(gate.slot(key, (*max).max(1)).await?),
        None => None,
    };
    if let Some((key, rate)) = &throttle.budget {
        gate.token(key, rate.sane()).await?;
    }
    Ok(slot)
}

/// A gate of this process alone: token buckets and semaphores in memory.
/// For tests and tools that run flows without a hub; a hub's runs share its
/// store-backed gate instead.
#[derive(Default)]
pub struct LocalGate {
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
    slots: std::sync::Mutex<HashMap<String, Arc<Semaphore>>>,
}

#[async_trait::async_trait]
impl Gate for LocalGate {
    async fn token(&self, key: &str, rate: Rate) -> Result<(), GateError> {
        loop {
            let wait = {
                let mut buckets = self.buckets.lock().await;
                let now = Instant::now();
                let (tokens, last) = buckets.entry(key.to_owned()).or_insert((rate.burst, now));
                *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate.per_second).min(rate.burst);
                *last = now;
                if *tokens >= 1.0 {
                    *tokens -= 1.0;
                    return Ok(());
                }
                Duration::from_secs_f64((1.0 - *tokens) / rate.per_second)
            };
            tokio::time::sleep(wait).await;
        }
    }

    async fn slot(&self, key: &str, max: u32) -> Result<Slot, GateError> {
        let semaphore = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.entry(key.to_owned()).or_insert_with(|| Arc::new(Semaphore::new(max as usize))).clone()
        };
        let permit: OwnedSemaphorePermit =
            semaphore.acquire_owned().await.map_err(|_| GateError("the in-flight limit was closed".into()))?;
        Ok(Slot::new(permit))
    }
}
