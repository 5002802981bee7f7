//! What a run that halts (cancelled, out of time, its lease lost) is
//! recorded as: its status and its error.

use crate::Settings;
use ferry_core::model::RunStatus;
use ferry_engine::flow::Halt;

/// The status a run ends with when it halts.
pub(super) fn halt_status(why: Halt) -> RunStatus {
    match why {
        Halt::Cancelled => RunStatus::Cancelled,
        Halt::OutOfTime => RunStatus::FailedTimeout,
        Halt::LeaseLost => RunStatus::FailedPlatform,
    }
}

/// The error recorded for a run that halted.
pub(super) fn halt_error(why: Halt, settings: &Settings) -> String {
    match why {
        Halt::Cancelled => "the run was cancelled".into(),
        Halt::OutOfTime => format!(
            "the run took longer than its budget of {}s (FERRY_RUN_BUDGET_SECS) and was stopped",
            settings.run_budget.as_secs()
        ),
        Halt::LeaseLost => {
            "the run stopped renewing its hold on the job in time and another run took the job over".into()
        }
    }
}
