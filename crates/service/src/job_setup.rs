//! What forms that set a job up need before the job is saved: the release a
//! pin resolves to now (its manifest decides the form), and a schedule in
//! words with its next fire times, checked by the same rules a job write
//! applies (`jobs::check_schedule`: `Plan::compile` and the manifest's offer).

use chrono::{DateTime, Utc};

use crate::integrations::Integrations;
use crate::jobs::{check_schedule, Jobs};
use crate::repo::lookups;
use ferry_core::error::{Error, Result};
use ferry_core::manifest::{Manifest, Schedule};
use ferry_core::model::{Release, ReleasePin};
use ferry_core::schedule::Plan;

/// A schedule as it will fire.
#[derive(Debug, Clone)]
pub struct SchedulePreview {
    /// E.g. "daily at 06:30 (Europe/Vienna)".
    pub text: String,
    /// The next fire times from now.
    pub next: Vec<DateTime<Utc>>,
}

impl Integrations<'_> {
    /// The release `pin` names in `integration` now; `None` when it names
    /// none (a `default` channel before any default is set).
    pub async fn release_for_pin(&self, integration: &str, pin: &ReleasePin) -> Result<Option<Release>> {
        let found = lookups::integration(self.store, integration).await?;
        match lookups::resolve_pin(&found, pin) {
            Some(number) => Ok(Some(lookups::release(self.store, integration, number).await?)),
            None => Ok(None),
        }
    }
}

impl Jobs<'_> {
    /// `schedule` in words and its next `n` fire times, or why a job on
    /// `manifest` cannot have it (the message a job write would refuse it with).
    pub fn preview_schedule(
        &self,
        integration: &str,
        manifest: &Manifest,
        schedule: &Schedule,
        n: usize,
    ) -> Result<SchedulePreview> {
        let mut problems = Vec::new();
        check_schedule(integration, manifest, schedule, &mut problems);
        if let Some(p) = problems.into_iter().next() {
            return Err(Error::invalid("invalid_schedule", p.message));
        }
        let plan = Plan::compile(schedule).map_err(|e| Error::invalid("invalid_schedule", e.message))?;
        Ok(SchedulePreview { text: plan.describe(), next: plan.upcoming(self.clock.now(), n) })
    }
}
