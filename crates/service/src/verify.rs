//! Test connection: after credentials are saved, Ferry sends the request a
//! manifest declares for the connector (`verify: {path: ...}`) with the new
//! credentials. A refusal is shown to the customer and recorded on the
//! connection (status `error`), so a typo surfaces now rather than at the first run.

use crate::connections::Connections;
use crate::repo::lookups;
use ferry_core::error::{Error, Result};
use ferry_core::model::{Connection, ConnectionStatus};
use ferry_engine::http::{HttpClient, HttpError, Outbound};

/// What a test request found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// No job's manifest declares a test request for this connection.
    NotDeclared,
    Passed,
    /// The sentence shown to the customer; also the connection's status message.
    Failed(String),
}

fn join(base: &str, path: &str) -> String {
    format!("{}/{}", base.trim_end_matches('/'), path.trim_start_matches('/'))
}

impl Connections<'_> {
    /// Sends the connector's declared test request with the stored credentials.
    #[tracing::instrument(skip_all, fields(tenant = %conn.tenant, connection = %conn.id))]
    pub async fn verify_connection(&self, conn: &Connection) -> Result<Verification> {
        let mut declared = None;
        for job in lookups::all_jobs(self.store, &conn.tenant).await? {
            let Some((connector, _)) = job.connections.iter().find(|(_, id)| *id == &conn.id) else { continue };
            let Some(release) = lookups::release_for(self.store, &job).await? else { continue };
            let manifest = &release.manifest;
            let Some(def) = manifest.connectors.definition(connector).cloned() else { continue };
            let Some(verify) = def.verify.clone() else { continue };
            // The same base URL a run would use, so the check goes where runs go.
            declared = Some((
                def,
                super::origins::base_url(manifest, connector, &conn.settings, conn.base_url_approved.as_deref()),
                verify.path,
            ));
            break;
        }
        let Some((def, base, path)) = declared else { return Ok(Verification::NotDeclared) };
        let base = match base {
            Ok(base) => base,
            Err(e) => {
                let outcome = Verification::Failed(format!("The test request was not sent: {e}."));
                return self.record_verification(conn, outcome).await;
            }
        };
        let secrets = self.fresh_credentials(conn, None).await?;
        let mut req = Outbound::new(reqwest::Method::GET, join(&base, &path));
        req.credentialed = true;
        for (k, v) in &def.headers {
            // Header templates need a run context; only literal headers apply here.
            if !v.contains("{{") {
                req.headers.push((k.clone(), v.clone()));
            }
        }
        let auth = def.auth.unwrap_or(conn.auth_kind);
        if let Err(e) = ferry_engine::auth::apply(&mut req, auth, def.api_key.as_ref(), &secrets) {
            return self.record_verification(conn, Verification::Failed(e.to_string())).await;
        }
        let mut policy = self.http.clone();
        policy.max_retries = 0;
        let client = HttpClient::new(policy, self.net).map_err(|e| Error::Internal(e.to_string()))?;
        let outcome = match client.send(&req, None).await {
            Ok(res) if (200..300).contains(&res.status) => Verification::Passed,
            Ok(res) => Verification::Failed(format!("The test request was answered with HTTP {}.", res.status)),
            Err(HttpError::Unauthorized { .. }) => Verification::Failed(
                "The service refused these credentials (HTTP 401). Check them and try again.".into(),
            ),
            Err(HttpError::Integration { status, .. }) => {
                Verification::Failed(format!("The service refused the test request (HTTP {status})."))
            }
            Err(HttpError::Refused { reason, .. }) => {
                Verification::Failed(format!("The test request was not sent: {reason}."))
            }
            Err(HttpError::Redirect { status, .. }) => Verification::Failed(format!(
                "The service answered the test request with a redirect (HTTP {status}); credentials are not sent on."
            )),
            Err(_) => Verification::Failed("The service could not be reached to test the connection.".into()),
        };
        self.record_verification(conn, outcome).await
    }

    async fn record_verification(&self, conn: &Connection, outcome: Verification) -> Result<Verification> {
        if let Verification::Failed(message) = &outcome {
            tracing::warn!("test request failed");
            let m = message.clone();
            self.modify_connection(&conn.tenant, &conn.id, |c| {
                c.status = ConnectionStatus::Error;
                c.status_message = Some(m.clone());
            })
            .await?;
        }
        Ok(outcome)
    }
}
