//! What a run's flows came to so far: the run's status, its first error and
//! the flows finished, carried from slice to slice in the run's progress. Sync
//! and replay runs add each flow's end here, so a flow's outcome means the
//! same to the run whichever kind of run it was.

use super::declarative::FlowEnd;
use ferry_core::model::{Run, RunProgress, RunStatus};
use ferry_engine::flow::{FlowStatus, Halt};

pub(super) struct Tally {
    pub(super) progress: RunProgress,
    pub(super) status: RunStatus,
    pub(super) first_error: Option<String>,
}

/// What the run does after a flow ended.
pub(super) enum Next {
    /// The flow is done (well or not): go on with the next one.
    Continue,
    /// The slice ran out of time at a checkpoint: a continuation goes on.
    Interrupted,
    /// The run stops for good.
    Halted(Halt),
}

impl Tally {
    /// Takes up the earlier slices' outcome from the run.
    pub(super) fn resume(run: &mut Run) -> Self {
        let progress = run.progress.take().unwrap_or_default();
        let status = if progress.failed {
            RunStatus::FailedIntegration
        } else if progress.partial {
            RunStatus::Partial
        } else {
            RunStatus::Succeeded
        };
        Self { progress, status, first_error: run.error.take() }
    }

    pub(super) fn finished(&self, flow: &str) -> bool {
        self.progress.completed_flows.iter().any(|f| f == flow)
    }

    /// Counts one flow's end; a failure outranks a partial outcome, and the
    /// run keeps the first failure's error.
    pub(super) fn add(&mut self, flow: &str, end: FlowEnd) -> Next {
        match end.status {
            FlowStatus::Succeeded => {}
            FlowStatus::Partial => {
                self.progress.partial = true;
                if self.status == RunStatus::Succeeded {
                    self.status = RunStatus::Partial;
                }
            }
            FlowStatus::Failed => {
                self.progress.failed = true;
                self.status = RunStatus::FailedIntegration;
                self.first_error = self.first_error.take().or(end.error);
            }
            FlowStatus::Interrupted => return Next::Interrupted,
            FlowStatus::Halted(why) => return Next::Halted(why),
        }
        self.progress.completed_flows.push(flow.to_owned());
        Next::Continue
    }
}
