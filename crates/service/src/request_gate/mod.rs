//! The hub's [`Gate`]: request budgets and in-flight limits kept in the
//! store, so every run, continuation, process and Lambda invocation sharing a
//! store shares them. Neither costs a store write per request: a budget is a
//! token bucket a process takes a few tokens from at a time ([`budget`]), an
//! in-flight limit a set of slots a process claims for a short time and
//! renews while it uses them ([`in_flight`]).
//!
//! Keys are `<tenant>/<name>`: a budget's name is the provider (the
//! catalogue's id when the connector names one, else the connector's own
//! name), an in-flight limit's the connection's id.

mod budget;
mod in_flight;

use std::sync::Arc;

use ferry_core::ports::{Clock, Key, Store, StoreError};
use ferry_engine::throttle::{Gate, GateError, Rate, Slot};

pub use budget::LEASE_WINDOW;
pub use in_flight::CLAIM_TTL;

/// The request budget's key of a tenant's requests to a provider.
pub(crate) fn budget_key(tenant: &str, provider: &str) -> String {
    format!("{tenant}/{provider}")
}

/// The in-flight limit's key of a tenant's connection.
pub(crate) fn in_flight_key(tenant: &str, connection: &str) -> String {
    format!("{tenant}/{connection}")
}

/// Where a key's record lives: under its tenant (`<tenant>/…` keys, the
/// only ones the hub makes), else in a partition of its own.
fn record_key(kind: &str, key: &str) -> Key {
    match key.split_once('/') {
        Some((tenant, name)) => crate::repo::keys::request_limit(tenant, kind, name),
        None => Key::new("LIMITS", format!("{kind}#{key}")),
    }
}

fn unavailable(e: StoreError) -> GateError {
    GateError(e.to_string())
}

/// Request budgets and in-flight limits over the store; one per hub, so
/// this process's runs share its leased tokens and claimed slots.
pub struct StoreGate {
    budgets: budget::Budgets,
    in_flight: in_flight::InFlight,
}

impl StoreGate {
    /// `holder` names this process in the in-flight claims; `clock` must be
    /// real time (rates are per real second, whatever the hub's clock says).
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, holder: String) -> Self {
        Self {
            budgets: budget::Budgets::new(store.clone(), clock.clone()),
            in_flight: in_flight::InFlight::new(store, clock, holder),
        }
    }
}

#[async_trait::async_trait]
impl Gate for StoreGate {
    async fn token(&self, key: &str, rate: Rate) -> Result<(), GateError> {
        self.budgets.take(key, rate).await
    }

    async fn slot(&self, key: &str, max: u32) -> Result<Slot, GateError> {
        self.in_flight.hold(key, max).await
    }
}
