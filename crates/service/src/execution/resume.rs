//! Resume points: where a run stopped inside a flow (the source's position,
//! the unfinished file), saved in the flow's state by the engine
//! (`ferry_engine::resume`). Only the continuations of the run that saved one
//! use it; a later run finding another run's (that run crashed, or was
//! cancelled between slices) discards it with its file, and cancelling an
//! interrupted run discards its own at once.

use super::context::{FlowRun, JobState};
use crate::repo::lookups;
use crate::Hub;
use ferry_core::error::Result;
use ferry_core::manifest::{Flow, Target};
use ferry_core::model::Run;
use ferry_core::ports::FileError;
use ferry_engine::flow::{Checkpoint, FlowState};
use ferry_engine::resume::{FileResume, Resume};
use ferry_engine::target::{FileSink, Sink};

impl FlowRun<'_> {
    /// The flow's resume point when it is this run's; another run's is
    /// discarded, with the file it names.
    pub(super) async fn own_resume(&self, flow: &Flow, saved: Option<Resume>) -> Option<Resume> {
        let saved = saved?;
        if saved.run == self.run.id {
            return Some(saved);
        }
        self.hub.discard_file(&self.job.tenant, &saved).await;
        self.log
            .push(format!("[{}] discarded where run {} stopped (it did not finish the flow)", flow.name, saved.run));
        None
    }

    /// A file target going on with the file its resume point names; `None`
    /// when the file is gone (the flow then starts over).
    pub(super) async fn resumed_file<'s>(&self, flow: &'s Flow, at: &FileResume) -> Result<Option<Sink<'s>>> {
        let Target::File { format, .. } = &flow.target else { return Ok(None) };
        let Some(files) = self.hub.files.as_ref() else { return Ok(None) };
        match files.resume(&self.job.tenant, &at.upload).await {
            Ok(writer) => {
                self.log
                    .push(format!("[{}] going on with {} from byte {}", flow.name, at.upload.path, at.upload.bytes));
                Ok(Some(Sink::File(FileSink::resumed(*format, at, writer))))
            }
            Err(e @ (FileError::Gone(_) | FileError::InvalidPath(_))) => {
                self.log.push(format!("[{}] {e}: the flow starts over", flow.name));
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }
}

impl Hub {
    /// Discards the resume points `run` left in its job's flows (a cancel
    /// between slices), and the unfinished files they name.
    pub(crate) async fn discard_resume_points(&self, run: &Run) {
        let job = match lookups::job(self.store(), &run.tenant, &run.job).await {
            Ok(job) => job.value,
            Err(e) => return tracing::warn!(error = %e, "could not read the job to discard its resume points"),
        };
        let Some(flows) = job.state.as_object() else { return };
        for (flow, value) in flows {
            let Ok(mut state) = serde_json::from_value::<FlowState>(value.clone()) else { continue };
            let Some(resume) = state.resume.take().filter(|r| r.run == run.id) else { continue };
            self.discard_file(&run.tenant, &resume).await;
            if let Err(e) = JobState::new(self, &run.tenant, &run.job, flow).save(&state).await {
                tracing::warn!(error = %e, flow, "could not clear a cancelled run's resume point");
            }
        }
    }

    /// Aborts the unfinished file a resume point names, if any; a file that
    /// cannot be aborted now is left to the store (S3's lifecycle rule).
    async fn discard_file(&self, tenant: &str, resume: &Resume) {
        let (Some(file), Some(files)) = (&resume.file, &self.files) else { return };
        let aborted = match files.resume(tenant, &file.upload).await {
            Ok(writer) => writer.abort().await,
            Err(FileError::Gone(_)) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = aborted {
            tracing::warn!(error = %e, path = %file.upload.path, "could not discard an unfinished file");
        }
    }
}
