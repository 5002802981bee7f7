//! The embedded scheduler's loop inside `ferry up`: the in-process
//! counterpart of EventBridge Scheduler invoking the sync function.

use std::future::Future;
use std::sync::Arc;

use ferry_core::ports::ScheduledTick;
use ferry_core::Result;
use ferry_embedded::EmbeddedScheduler;
use ferry_service::schedules::{self, Fired};
use ferry_service::Hub;

/// Fires every tick due now on the embedded scheduler; returns what each did.
pub async fn fire_due(hub: &Hub, scheduler: &EmbeddedScheduler) -> Vec<(ScheduledTick, Result<Fired>)> {
    let mut out = Vec::new();
    for tick in scheduler.due(hub.clock.now()) {
        let fired = schedules::fire(hub, &tick).await;
        match &fired {
            Ok(f) => tracing::debug!(tenant = %tick.tenant, job = %tick.job, outcome = ?f, "tick fired"),
            Err(e) => tracing::error!(error = %e, tenant = %tick.tenant, job = %tick.job, "tick failed"),
        }
        out.push((tick, fired));
    }
    out
}

/// The embedded scheduler's loop inside `ferry up`: sleeps until the next
/// fire time (or a schedule change), fires what is due, until `shutdown`.
pub async fn run_embedded(hub: Hub, scheduler: Arc<EmbeddedScheduler>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        fire_due(&hub, &scheduler).await;
        let now = hub.clock.now();
        let wait = scheduler
            .next_due()
            .map(|t| (t - now).to_std().unwrap_or_default())
            .unwrap_or(std::time::Duration::from_secs(60))
            .clamp(std::time::Duration::from_millis(20), std::time::Duration::from_secs(60));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = scheduler.changed() => {}
            _ = &mut shutdown => return,
        }
    }
}
