//! The service methods run execution (`execution`, `runs`) reaches through
//! [`Hub`]: each forwards to its service. Deprecated so that nothing else
//! calls them (the run modules allow it where they are declared); delete this
//! module when run execution becomes the Runs service and calls
//! `self.jobs().get_job_record(…)`.

use ferry_core::error::Result;
use ferry_core::model::{Connection, Job, MappingConfig, Release, Run, Tenant};
use ferry_core::ports::SecretFields;
use ferry_engine::redact::Redactor;
use serde_json::Value;

use crate::hooks::service::Delivery;
use crate::repo::records;
use crate::Hub;

impl Hub {
    #[deprecated(note = "run execution only: call `hub.tenants().get_tenant(…)`")]
    pub(crate) async fn get_tenant(&self, id: &str) -> Result<Tenant> {
        self.tenants().get_tenant(id).await
    }

    #[deprecated(note = "run execution only: call `hub.connections().get_connection(…)`")]
    pub(crate) async fn get_connection(&self, tenant: &str, id: &str) -> Result<Connection> {
        self.connections().get_connection(tenant, id).await
    }

    #[deprecated(note = "run execution only: call `hub.connections().connection_credentials(…)`")]
    pub(crate) async fn connection_credentials(&self, conn: &Connection) -> Result<Option<SecretFields>> {
        self.connections().connection_credentials(conn).await
    }

    #[deprecated(note = "run execution only: call `hub.connections().fresh_credentials(…)`")]
    pub(crate) async fn fresh_credentials(&self, conn: &Connection, rejected: Option<&str>) -> Result<SecretFields> {
        self.connections().fresh_credentials(conn, rejected).await
    }

    #[deprecated(note = "run execution only: call `hub.connections().run_redactor(…)`")]
    pub(crate) async fn run_redactor(&self, run: &Run) -> Redactor {
        self.connections().run_redactor(run).await
    }

    #[deprecated(note = "run execution only: call `hub.connections().redact_run(…)`")]
    pub(crate) async fn redact_run(&self, run: &mut Run, log: &mut [String], known: &Redactor) {
        self.connections().redact_run(run, log, known).await
    }

    #[deprecated(note = "run execution only: call `hub.integrations().get_mapping(…)`")]
    pub(crate) async fn get_mapping(&self, tenant: &str, id: &str) -> Result<MappingConfig> {
        self.integrations().get_mapping(tenant, id).await
    }

    #[deprecated(note = "run execution only: call `hub.jobs().get_job_record(…)`")]
    pub(crate) async fn get_job_record(&self, tenant: &str, id: &str) -> Result<records::Versioned<Job>> {
        self.jobs().get_job_record(tenant, id).await
    }

    #[deprecated(note = "run execution only: call `hub.jobs().all_jobs(…)`")]
    pub(crate) async fn all_jobs(&self, tenant: &str) -> Result<Vec<Job>> {
        self.jobs().all_jobs(tenant).await
    }

    #[deprecated(note = "run execution only: call `hub.jobs().set_dynamic_options(…)`")]
    pub(crate) async fn set_dynamic_options(
        &self,
        tenant: &str,
        id: &str,
        definition: &str,
        options: Vec<Value>,
    ) -> Result<Job> {
        self.jobs().set_dynamic_options(tenant, id, definition, options).await
    }

    #[deprecated(note = "run execution only: call `hub.hooks().take_deliveries(…)`")]
    pub(crate) async fn take_deliveries(&self, tenant: &str, job: &str, run_id: &str) -> Result<Vec<Value>> {
        self.hooks().take_deliveries(tenant, job, run_id).await
    }

    #[deprecated(note = "run execution only: call `hub.hooks().consume_deliveries(…)`")]
    pub(crate) async fn consume_deliveries(&self, tenant: &str, job: &str, run_id: &str) -> Result<bool> {
        self.hooks().consume_deliveries(tenant, job, run_id).await
    }

    #[deprecated(note = "run execution only: call `hub.notifications().emit_run_events(…)`")]
    pub(crate) async fn emit_run_events(&self, run: &Run) {
        self.notifications().emit_run_events(run).await
    }

    #[deprecated(note = "run execution only: call `hub.jobs().release_for(…)`")]
    pub(crate) async fn release_for(&self, job: &Job) -> Result<Option<Release>> {
        self.jobs().release_for(job).await
    }

    #[deprecated(note = "run execution only: call `hub.jobs().job_held_because(…)`")]
    pub(crate) async fn job_held_because(&self, tenant: &str, job: &str) -> Result<Option<&'static str>> {
        self.jobs().job_held_because(tenant, job).await
    }

    #[deprecated(note = "run execution only: call `hub.hooks().pending_deliveries(…)`")]
    pub(crate) async fn pending_deliveries(&self, tenant: &str, job: &str, limit: u32) -> Result<Vec<Delivery>> {
        self.hooks().pending_deliveries(tenant, job, limit).await
    }
}
