//! What a run records is redacted here, for declarative, webhook and process
//! runs alike: the run's error (which the `run_failed` event carries) and its
//! log lines pass through [`Connections::redact_run`] before they are stored. The
//! redactor holds every secret the run's job can reach: its connections'
//! credentials (OAuth tokens included), their OAuth clients' secrets and the
//! job's webhook secret. The forms searched for are [`Redactor`]'s.

use secrecy::ExposeSecret;

use crate::connections::Connections;
use crate::repo::lookups;
use ferry_core::model::ids::PLATFORM;
use ferry_core::model::{Connection, Job, Run};
use ferry_core::ports::SecretFields;
use ferry_engine::redact::Redactor;

impl Connections<'_> {
    /// Masks every secret of the run's job in the run's error and log lines.
    /// `known` adds secrets read earlier (tokens a refresh has since replaced).
    pub(crate) async fn redact_run<'a>(
        &self,
        run: &mut Run,
        log: impl IntoIterator<Item = &'a mut String>,
        known: &Redactor,
    ) {
        let mut redactor = self.run_redactor(run).await;
        redactor.extend(known);
        if let Some(e) = run.error.as_mut() {
            redactor.redact_in_place(e);
        }
        for line in log {
            redactor.redact_in_place(line);
        }
    }

    /// Every secret the run's job can reach. Secrets that cannot be read are
    /// skipped: a run that could not read them could not leak them either.
    pub(crate) async fn run_redactor(&self, run: &Run) -> Redactor {
        match lookups::job(self.store, &run.tenant, &run.job).await {
            Ok(job) => self.job_redactor(&job.value).await,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the run's job to redact its secrets");
                Redactor::new()
            }
        }
    }

    pub(crate) async fn job_redactor(&self, job: &Job) -> Redactor {
        let mut r = Redactor::new();
        for id in job.connections.values() {
            if let Ok(conn) = self.get_connection(&job.tenant, id).await {
                self.add_connection_secrets(&conn, &mut r).await;
            }
        }
        if let Ok(Some((_, Some(secret)))) = self.hooks.job_webhook(&job.tenant, &job.id).await {
            r.add(secret.expose_secret());
        }
        r
    }

    /// A connection's credentials and its OAuth client's secret.
    pub(crate) async fn connection_redactor(&self, conn: &Connection) -> Redactor {
        let mut r = Redactor::new();
        self.add_connection_secrets(conn, &mut r).await;
        r
    }

    async fn add_connection_secrets(&self, conn: &Connection, r: &mut Redactor) {
        if let Ok(Some(fields)) = self.connection_credentials(conn).await {
            add_fields(&fields, r);
        }
        for owner in [conn.tenant.as_str(), PLATFORM] {
            let client = super::oauth::client_ref(owner, &conn.connector);
            if let Ok(Some(cfg)) = self.secrets.get(&client).await {
                if let Some(s) = cfg.get("client_secret") {
                    r.add(s.expose_secret());
                }
            }
        }
    }
}

/// Fields stored beside OAuth tokens that are not secret: masking them
/// (`Bearer`, a timestamp, scopes) would only shred logs.
const NOT_SECRET: &[&str] = &["expires_at", "expires_in", "token_type", "scope"];

/// Every secret field, and `username:password` as basic auth sends it.
pub(crate) fn add_fields(fields: &SecretFields, r: &mut Redactor) {
    for (name, value) in &fields.0 {
        if !NOT_SECRET.contains(&name.as_str()) {
            r.add(value.expose_secret());
        }
    }
    if let (Some(user), Some(pass)) = (fields.get("username"), fields.get("password")) {
        r.add_basic(user.expose_secret(), pass.expose_secret());
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use super::*;

    #[test]
    fn oauth_bookkeeping_fields_stay_readable_and_tokens_are_masked() {
        let mut fields = SecretFields::new();
        fields.insert("access_token", "tok-abcdef");
        fields.insert("token_type", "Bearer");
        fields.insert("expires_at", "2026-01-01T00:00:00+00:00");
        let mut r = Redactor::new();
        add_fields(&fields, &mut r);
        assert_eq!(
            r.redact("Bearer tok-abcdef until 2026-01-01T00:00:00+00:00"),
            "Bearer [redacted] until 2026-01-01T00:00:00+00:00"
        );
    }

    #[test]
    fn basic_credentials_are_masked_as_the_authorization_header_carries_them() {
        let mut fields = SecretFields::new();
        fields.insert("username", "someone");
        fields.insert("password", "hunter22");
        let mut r = Redactor::new();
        add_fields(&fields, &mut r);
        let header = base64::engine::general_purpose::STANDARD.encode("someone:hunter22");
        assert_eq!(r.redact(&format!("Authorization: Basic {header}")), "Authorization: Basic [redacted]");
    }
}
