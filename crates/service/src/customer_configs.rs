//! The config form end customers fill in on the connect page: built from a
//! job's `configs.schema` + `uischema` by the one form builder
//! (`config_form`, controls marked `admin: true` left out), and the typed
//! values read back from the submitted form, merged into the job's configs
//! and validated on the server like any job update.

use serde::Serialize;

use super::jobs::JobPatch;
use crate::config_form::{Audience, ConfigForm};
pub use crate::config_form::{Choice, Field, FormItem};
use crate::integrations::Integrations;
use crate::repo::lookups;
use ferry_core::error::{Error, Result};
use ferry_core::model::{Connection, Job};

/// The customer-editable config form of one job.
#[derive(Debug, Clone, Serialize)]
pub struct CustomerForm {
    pub job: String,
    pub title: String,
    pub items: Vec<FormItem>,
}

impl Integrations<'_> {
    /// The customer's form of a job's configs, on the release it resolves to.
    async fn customer_form(&self, job: &Job) -> Result<Option<ConfigForm>> {
        let Some(release) = lookups::release_for(self.store, job).await? else { return Ok(None) };
        Ok(ConfigForm::build(&release.manifest, &job.configs, &job.dynamic_options, Audience::Customer))
    }

    /// The config forms of the jobs that bind this connection and let end customers set something.
    pub async fn customer_forms(&self, conn: &Connection) -> Result<Vec<CustomerForm>> {
        let mut forms = Vec::new();
        for job in lookups::all_jobs(self.store, &conn.tenant).await? {
            if !job.connections.values().any(|c| c == &conn.id) {
                continue;
            }
            let Some(form) = self.customer_form(&job).await? else { continue };
            if form.has_fields() {
                forms.push(CustomerForm { job: job.id.clone(), title: job.name.clone(), items: form.items });
            }
        }
        Ok(forms)
    }

    /// Saves the customer's submitted config values of one job bound to this
    /// connection. Only customer-visible fields change; the job update
    /// validates the result against the schema.
    pub async fn save_customer_configs(
        &self,
        conn: &Connection,
        job_id: &str,
        form: &[(String, String)],
    ) -> Result<()> {
        let job = lookups::job(self.store, &conn.tenant, job_id).await?.value;
        if !job.connections.values().any(|c| c == &conn.id) {
            return Err(Error::not_found("job", job_id));
        }
        let Some(built) = self.customer_form(&job).await? else {
            return Err(Error::invalid("no_configs", "this integration has no settings to fill in"));
        };
        let (configs, errors) = built.read(&job.configs, form);
        if let Some(e) = errors.into_iter().next() {
            return Err(Error::invalid("invalid_configs", e.message));
        }
        self.jobs.update_job(&conn.tenant, job_id, JobPatch { configs: Some(configs), ..Default::default() }).await?;
        Ok(())
    }
}
