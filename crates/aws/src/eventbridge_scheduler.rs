//! The [`Scheduler`] port on EventBridge Scheduler.
//!
//! One schedule per job, named by the job id, in one schedule group per tenant
//! (`<prefix>-<tenant>`), so a tenant's schedules can be listed or dropped
//! together. Each schedule invokes the sync function (the target ARN, with the
//! role EventBridge Scheduler assumes) with a [`ScheduledTick`] whose `tick` is
//! `<aws.scheduler.scheduled-time>`, the anchored fire time, so a retried or
//! duplicated delivery carries the same tick. The flexible time window is off:
//! ticks fire on the minute. Paused jobs keep their schedule in state DISABLED.

use async_trait::async_trait;
use aws_sdk_scheduler::error::SdkError;
use aws_sdk_scheduler::operation::create_schedule::CreateScheduleError;
use aws_sdk_scheduler::operation::create_schedule_group::CreateScheduleGroupError;
use aws_sdk_scheduler::operation::delete_schedule::DeleteScheduleError;
use aws_sdk_scheduler::operation::get_schedule::GetScheduleError;
use aws_sdk_scheduler::operation::get_schedule_group::GetScheduleGroupError;
use aws_sdk_scheduler::operation::update_schedule::UpdateScheduleError;
use aws_sdk_scheduler::types::{
    ActionAfterCompletion, FlexibleTimeWindow, FlexibleTimeWindowMode, ScheduleState, Tag, Target,
};
use aws_sdk_scheduler::Client;

use ferry_core::ports::scheduler::{Installed, JobSchedule, Scheduler, SchedulerError};

use crate::unavailable::{service_error, OperationError};

/// EventBridge Scheduler's limit on group and schedule names.
const MAX_NAME: usize = 64;
const TENANT_TAG: &str = "ferry:tenant";
/// The placeholder EventBridge Scheduler replaces by the schedule's fire time.
const SCHEDULED_TIME: &str = "<aws.scheduler.scheduled-time>";

/// Where schedules deliver their ticks.
#[derive(Debug, Clone)]
pub struct SchedulerTarget {
    /// ARN of the sync function.
    pub function_arn: String,
    /// ARN of the role EventBridge Scheduler assumes to invoke it.
    pub role_arn: String,
}

pub struct EventBridgeScheduler {
    client: Client,
    target: SchedulerTarget,
    group_prefix: String,
}

fn backend(e: impl std::error::Error + Send + Sync + 'static) -> SchedulerError {
    SchedulerError::backend(e)
}

/// The service's error to match on, or the scheduler's unavailable error
/// (see [`crate::unavailable`]).
fn answer<E: OperationError>(e: SdkError<E>) -> Result<E, SchedulerError> {
    service_error(e).map_err(SchedulerError::unavailable)
}

/// A failed call as the scheduler's error: unavailable, or the service's refusal.
fn failed<E: OperationError>(e: SdkError<E>) -> SchedulerError {
    match answer(e) {
        Ok(refused) => backend(refused),
        Err(unavailable) => unavailable,
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_NAME && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl EventBridgeScheduler {
    /// `group_prefix` starts every group name (e.g. `ferry-prod`), so one
    /// account can hold several deployments.
    pub fn new(
        client: Client,
        target: SchedulerTarget,
        group_prefix: impl Into<String>,
    ) -> Result<Self, SchedulerError> {
        let group_prefix = group_prefix.into();
        if !is_name(&group_prefix) || group_prefix.len() > 24 {
            return Err(SchedulerError::InvalidName(format!(
                "schedule group prefix {group_prefix:?} must be 1 to 24 letters, digits, '-', '_' or '.'"
            )));
        }
        Ok(Self { client, target, group_prefix })
    }

    /// The tenant's group: `<prefix>-<tenant>`, or, when that is too long, the
    /// tenant id shortened and suffixed with a hash of it so names stay unique.
    pub fn group_name(&self, tenant: &str) -> Result<String, SchedulerError> {
        if !is_name(tenant) {
            return Err(SchedulerError::InvalidName(format!("tenant id {tenant:?}")));
        }
        let full = format!("{}-{tenant}", self.group_prefix);
        if full.len() <= MAX_NAME {
            return Ok(full);
        }
        let hash = hex::encode(&ferry_core::crypto::sha256(tenant)[..4]);
        let keep = MAX_NAME - self.group_prefix.len() - 2 - hash.len();
        Ok(format!("{}-{}-{hash}", self.group_prefix, &tenant[..keep]))
    }

    fn schedule_name(job: &str) -> Result<&str, SchedulerError> {
        if is_name(job) {
            Ok(job)
        } else {
            Err(SchedulerError::InvalidName(format!("job id {job:?}")))
        }
    }

    fn target_for(&self, s: &JobSchedule) -> Result<Target, SchedulerError> {
        let input = serde_json::json!({"tenant": s.tenant, "job": s.job, "tick": SCHEDULED_TIME}).to_string();
        Target::builder()
            .arn(&self.target.function_arn)
            .role_arn(&self.target.role_arn)
            .input(input)
            .build()
            .map_err(backend)
    }

    async fn ensure_group(&self, group: &str, tenant: &str) -> Result<(), SchedulerError> {
        match self.client.get_schedule_group().name(group).send().await {
            Ok(_) => return Ok(()),
            Err(e) => match answer(e)? {
                GetScheduleGroupError::ResourceNotFoundException(_) => {}
                e => return Err(backend(e)),
            },
        }
        let tag = Tag::builder().key(TENANT_TAG).value(tenant).build().map_err(backend)?;
        match self.client.create_schedule_group().name(group).tags(tag).send().await {
            Ok(_) => Ok(()),
            Err(e) => match answer(e)? {
                // Created meanwhile by a concurrent put.
                CreateScheduleGroupError::ConflictException(_) => Ok(()),
                e => Err(backend(e)),
            },
        }
    }

    async fn update(&self, group: &str, s: &JobSchedule) -> Result<bool, SchedulerError> {
        let e = s.installed();
        let request = self
            .client
            .update_schedule()
            .group_name(group)
            .name(Self::schedule_name(&s.job)?)
            .schedule_expression(e.expression)
            .schedule_expression_timezone(e.timezone)
            .flexible_time_window(off()?)
            .target(self.target_for(s)?)
            .action_after_completion(ActionAfterCompletion::None)
            .state(state(s.enabled));
        match request.send().await {
            Ok(_) => Ok(true),
            Err(err) => match answer(err)? {
                UpdateScheduleError::ResourceNotFoundException(_) => Ok(false),
                err => Err(backend(err)),
            },
        }
    }

    async fn create(&self, group: &str, s: &JobSchedule) -> Result<bool, SchedulerError> {
        let e = s.installed();
        let request = self
            .client
            .create_schedule()
            .group_name(group)
            .name(Self::schedule_name(&s.job)?)
            .schedule_expression(e.expression)
            .schedule_expression_timezone(e.timezone)
            .flexible_time_window(off()?)
            .target(self.target_for(s)?)
            .action_after_completion(ActionAfterCompletion::None)
            .state(state(s.enabled));
        match request.send().await {
            Ok(_) => Ok(true),
            Err(err) => match answer(err)? {
                CreateScheduleError::ConflictException(_) => Ok(false),
                err => Err(backend(err)),
            },
        }
    }

    async fn describe(&self, group: &str, name: &str) -> Result<Option<Described>, SchedulerError> {
        let out = match self.client.get_schedule().group_name(group).name(name).send().await {
            Ok(o) => o,
            Err(e) => {
                return match answer(e)? {
                    GetScheduleError::ResourceNotFoundException(_) => Ok(None),
                    e => Err(backend(e)),
                }
            }
        };
        let payload = out.target().and_then(|t| t.input()).and_then(|i| serde_json::from_str::<Payload>(i).ok());
        Ok(Some(Described {
            payload,
            expression: out.schedule_expression().unwrap_or_default().to_owned(),
            timezone: out.schedule_expression_timezone().unwrap_or("UTC").to_owned(),
            enabled: out.state() != Some(&ScheduleState::Disabled),
        }))
    }

    async fn group_names(&self) -> Result<Vec<String>, SchedulerError> {
        let mut names = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .client
                .list_schedule_groups()
                .name_prefix(format!("{}-", self.group_prefix))
                .set_next_token(token)
                .send()
                .await
                .map_err(failed)?;
            names.extend(out.schedule_groups().iter().filter_map(|g| g.name().map(str::to_owned)));
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                _ => return Ok(names),
            }
        }
    }

    async fn schedule_names(&self, group: &str) -> Result<Vec<String>, SchedulerError> {
        let mut names = Vec::new();
        let mut token = None;
        loop {
            let out =
                self.client.list_schedules().group_name(group).set_next_token(token).send().await.map_err(failed)?;
            names.extend(out.schedules().iter().filter_map(|s| s.name().map(str::to_owned)));
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                _ => return Ok(names),
            }
        }
    }
}

#[derive(serde::Deserialize)]
struct Payload {
    tenant: String,
    job: String,
}

struct Described {
    payload: Option<Payload>,
    expression: String,
    timezone: String,
    enabled: bool,
}

fn off() -> Result<FlexibleTimeWindow, SchedulerError> {
    FlexibleTimeWindow::builder().mode(FlexibleTimeWindowMode::Off).build().map_err(backend)
}

fn state(enabled: bool) -> ScheduleState {
    if enabled {
        ScheduleState::Enabled
    } else {
        ScheduleState::Disabled
    }
}

#[async_trait]
impl Scheduler for EventBridgeScheduler {
    #[tracing::instrument(skip_all, fields(tenant = %schedule.tenant, job = %schedule.job))]
    async fn put(&self, schedule: &JobSchedule) -> Result<(), SchedulerError> {
        let group = self.group_name(&schedule.tenant)?;
        // Updating first: after the first put, schedules exist.
        for _ in 0..3 {
            if self.update(&group, schedule).await? {
                return Ok(());
            }
            self.ensure_group(&group, &schedule.tenant).await?;
            if self.create(&group, schedule).await? {
                return Ok(());
            }
            // Created by a concurrent put meanwhile: update it to ours.
        }
        Err(backend(std::io::Error::other("the schedule kept appearing and disappearing while being written")))
    }

    #[tracing::instrument(skip_all, fields(tenant = tenant, job = job))]
    async fn remove(&self, tenant: &str, job: &str) -> Result<(), SchedulerError> {
        let group = self.group_name(tenant)?;
        match self.client.delete_schedule().group_name(group).name(Self::schedule_name(job)?).send().await {
            Ok(_) => Ok(()),
            Err(e) => match answer(e)? {
                DeleteScheduleError::ResourceNotFoundException(_) => Ok(()),
                e => Err(backend(e)),
            },
        }
    }

    async fn get(&self, tenant: &str, job: &str) -> Result<Option<Installed>, SchedulerError> {
        let group = self.group_name(tenant)?;
        Ok(self.describe(&group, Self::schedule_name(job)?).await?.map(|d| Installed {
            tenant: tenant.to_owned(),
            job: job.to_owned(),
            expression: d.expression,
            timezone: d.timezone,
            enabled: d.enabled,
        }))
    }

    /// Lists every group of the prefix, then reads each schedule (ListSchedules
    /// omits expressions and payloads): one call per schedule, for reconciling.
    async fn list(&self) -> Result<Vec<Installed>, SchedulerError> {
        let mut all = Vec::new();
        for group in self.group_names().await? {
            for name in self.schedule_names(&group).await? {
                let Some(d) = self.describe(&group, &name).await? else { continue };
                match d.payload {
                    // A group of a longer prefix (`ferry-prod-…` under `ferry`) is another deployment's.
                    Some(p) if self.group_name(&p.tenant).ok().as_deref() != Some(group.as_str()) => {}
                    Some(p) => all.push(Installed {
                        tenant: p.tenant,
                        job: p.job,
                        expression: d.expression,
                        timezone: d.timezone,
                        enabled: d.enabled,
                    }),
                    None => tracing::warn!(group, name, "schedule without a Ferry payload; left alone"),
                }
            }
        }
        all.sort();
        Ok(all)
    }

    fn backend_name(&self) -> &'static str {
        "eventbridge-scheduler"
    }
}
