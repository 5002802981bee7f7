//! AWS Secrets Manager adapter for the secret port.
//!
//! One Secrets Manager secret per [`SecretRef`], named `{prefix}/{tenant}/{name}`
//! and tagged `ferry:tenant`, so IAM policies can scope access by name prefix
//! or by tag. Payloads are the port's plaintext JSON; Secrets Manager encrypts
//! them with KMS.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_secretsmanager::error::SdkError;
use aws_sdk_secretsmanager::operation::create_secret::CreateSecretError;
use aws_sdk_secretsmanager::operation::delete_secret::DeleteSecretError;
use aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretError;
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
use aws_sdk_secretsmanager::operation::put_secret_value::PutSecretValueError;
use aws_sdk_secretsmanager::operation::restore_secret::RestoreSecretError;
use aws_sdk_secretsmanager::types::Tag;
use aws_sdk_secretsmanager::Client;

use ferry_core::ports::secrets::{SecretError, SecretFields, SecretRef, SecretStore};

use crate::unavailable::{service_error, OperationError};

pub const TENANT_TAG: &str = "ferry:tenant";

/// Secrets Manager's limit on secret names.
const MAX_NAME_LEN: usize = 512;
/// Tag values are limited to 256 characters.
const MAX_TENANT_LEN: usize = 256;

/// A force-deleted secret lingers for a few seconds, during which its name can
/// be neither written nor re-created; `put` waits that out this many times.
const PUT_ATTEMPTS: u32 = 6;

#[derive(Debug, Clone)]
pub struct SecretsManagerStore {
    client: Client,
    prefix: String,
    kms_key_id: Option<String>,
}

impl SecretsManagerStore {
    /// `prefix` (for example `ferry/prod`) namespaces every secret of this
    /// deployment; surrounding slashes are ignored.
    pub fn new(client: Client, prefix: impl Into<String>) -> Self {
        let prefix = prefix.into().trim_matches('/').to_owned();
        Self { client, prefix, kms_key_id: None }
    }

    /// Encrypts secrets created from now on with this KMS key (id, ARN, alias
    /// name or alias ARN) instead of the account's `aws/secretsmanager` key.
    /// A deployment's own key lets its key policy, not only IAM, decide who may
    /// read credentials, and works across accounts. Existing secrets keep the
    /// key they were created with.
    pub fn with_kms_key(mut self, key_id: impl Into<String>) -> Self {
        let key_id = key_id.into();
        self.kms_key_id = (!key_id.trim().is_empty()).then(|| key_id.trim().to_owned());
        self
    }

    /// The Secrets Manager name of `secret`.
    ///
    /// The tenant may not contain `/` and the prefix is fixed, so
    /// `{prefix}/{tenant}/` is a namespace no other tenant's name can reach,
    /// whatever `name` contains; the character set is the one Secrets Manager
    /// allows in names.
    pub fn secret_name(&self, secret: &SecretRef) -> Result<String, SecretError> {
        if !self.prefix.split('/').all(is_segment) {
            return Err(invalid(format!("secret prefix {:?} is not a valid Secrets Manager path", self.prefix)));
        }
        if !is_segment(&secret.tenant) || secret.tenant.len() > MAX_TENANT_LEN {
            return Err(invalid(format!(
                "tenant {:?} must be 1..={MAX_TENANT_LEN} characters of [A-Za-z0-9_+=.@-]",
                secret.tenant
            )));
        }
        if secret.name.is_empty() || !secret.name.chars().all(|c| c == '/' || is_name_char(c)) {
            return Err(invalid(format!(
                "secret name {:?} must be non-empty and use only [A-Za-z0-9/_+=.@-]",
                secret.name
            )));
        }
        let full = if self.prefix.is_empty() {
            format!("{}/{}", secret.tenant, secret.name)
        } else {
            format!("{}/{}/{}", self.prefix, secret.tenant, secret.name)
        };
        if full.len() > MAX_NAME_LEN {
            return Err(invalid(format!("secret name {full:?} is longer than {MAX_NAME_LEN} characters")));
        }
        Ok(full)
    }

    /// Whether the secret is scheduled for deletion (or already gone). Secrets
    /// Manager reports operations on such secrets as a generic
    /// InvalidRequestException, so this is how they are told apart.
    async fn is_deleted(&self, name: &str) -> Result<bool, SecretError> {
        match self.client.describe_secret().secret_id(name).send().await {
            Ok(out) => Ok(out.deleted_date().is_some()),
            Err(e) => match answer(e)? {
                DescribeSecretError::ResourceNotFoundException(_) => Ok(true),
                e => Err(SecretError::backend(e)),
            },
        }
    }

    async fn create(&self, name: &str, tenant: &str, payload: &str) -> Result<CreateOutcome, SecretError> {
        let tag = Tag::builder().key(TENANT_TAG).value(tenant).build();
        let request = self.client.create_secret().name(name).secret_string(payload).tags(tag);
        match request.set_kms_key_id(self.kms_key_id.clone()).send().await {
            Ok(_) => Ok(CreateOutcome::Created),
            Err(e) => match answer(e)? {
                CreateSecretError::ResourceExistsException(_) => Ok(CreateOutcome::Exists),
                // The name still belongs to a secret being deleted.
                e @ CreateSecretError::InvalidRequestException(_) => {
                    Ok(CreateOutcome::Pending(SecretError::backend(e)))
                }
                e => Err(SecretError::backend(e)),
            },
        }
    }
}

enum CreateOutcome {
    Created,
    /// Someone else created it between our PutSecretValue and CreateSecret.
    Exists,
    Pending(SecretError),
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '=' | '.' | '@' | '-')
}

fn is_segment(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_name_char)
}

fn invalid(message: String) -> SecretError {
    SecretError::backend(std::io::Error::new(std::io::ErrorKind::InvalidInput, message))
}

/// The service's error to match on, or the secret store's unavailable error
/// (see [`crate::unavailable`]). Secrets Manager's errors name secrets, never
/// their values; the request and response bodies stay out of both.
fn answer<E: OperationError>(e: SdkError<E>) -> Result<E, SecretError> {
    service_error(e).map_err(SecretError::unavailable)
}

fn put_backoff(attempt: u32) -> Duration {
    Duration::from_millis(200u64 << attempt.min(4))
}

#[async_trait]
impl SecretStore for SecretsManagerStore {
    #[tracing::instrument(skip_all, fields(tenant = %secret.tenant, name = %secret.name))]
    async fn put(&self, secret: &SecretRef, fields: &SecretFields) -> Result<(), SecretError> {
        let name = self.secret_name(secret)?;
        let payload = fields.to_plaintext_json();
        let mut last_error = None;
        for attempt in 0..PUT_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(put_backoff(attempt)).await;
            }
            let put = self.client.put_secret_value().secret_id(&name).secret_string(&payload).send().await;
            let err = match put {
                Ok(_) => return Ok(()),
                Err(e) => answer(e)?,
            };
            match err {
                PutSecretValueError::ResourceNotFoundException(_) => {
                    match self.create(&name, &secret.tenant, &payload).await? {
                        CreateOutcome::Created => return Ok(()),
                        CreateOutcome::Exists => {}
                        CreateOutcome::Pending(e) => last_error = Some(e),
                    }
                }
                e @ PutSecretValueError::InvalidRequestException(_) => {
                    if !self.is_deleted(&name).await? {
                        return Err(SecretError::backend(e));
                    }
                    // Secrets deleted with a recovery window (by other tooling)
                    // can be restored, keeping their tags; force-deleted ones
                    // cannot, and the next attempt re-creates them once gone.
                    // (moto accepts PutSecretValue on a secret marked for
                    // deletion, so only AWS exercises this path.)
                    match self.client.restore_secret().secret_id(&name).send().await {
                        Ok(_) => {}
                        Err(re) => match answer(re)? {
                            RestoreSecretError::ResourceNotFoundException(_)
                            | RestoreSecretError::InvalidRequestException(_) => {}
                            re => return Err(SecretError::backend(re)),
                        },
                    }
                    last_error = Some(SecretError::backend(e));
                }
                e => return Err(SecretError::backend(e)),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            SecretError::backend(std::io::Error::other(format!(
                "secret {name:?} kept appearing and disappearing while being written; giving up"
            )))
        }))
    }

    #[tracing::instrument(skip_all, fields(tenant = %secret.tenant, name = %secret.name))]
    async fn get(&self, secret: &SecretRef) -> Result<Option<SecretFields>, SecretError> {
        let name = self.secret_name(secret)?;
        let out = match self.client.get_secret_value().secret_id(&name).send().await {
            Ok(out) => out,
            Err(e) => {
                return match answer(e)? {
                    GetSecretValueError::ResourceNotFoundException(_) => Ok(None),
                    e @ GetSecretValueError::InvalidRequestException(_) => {
                        if self.is_deleted(&name).await? {
                            Ok(None)
                        } else {
                            Err(SecretError::backend(e))
                        }
                    }
                    e => Err(SecretError::backend(e)),
                }
            }
        };
        match out.secret_string() {
            Some(text) => SecretFields::from_plaintext_json(text).map(Some),
            None => Err(SecretError::Corrupt(format!("secret {name:?} has no string value"))),
        }
    }

    #[tracing::instrument(skip_all, fields(tenant = %secret.tenant, name = %secret.name))]
    async fn delete(&self, secret: &SecretRef) -> Result<(), SecretError> {
        let name = self.secret_name(secret)?;
        let deleted = self.client.delete_secret().secret_id(&name).force_delete_without_recovery(true).send().await;
        match deleted {
            Ok(_) => Ok(()),
            Err(e) => match answer(e)? {
                DeleteSecretError::ResourceNotFoundException(_) => Ok(()),
                // Already scheduled for deletion: it is going away either way.
                e @ DeleteSecretError::InvalidRequestException(_) => {
                    if self.is_deleted(&name).await? {
                        Ok(())
                    } else {
                        Err(SecretError::backend(e))
                    }
                }
                e => Err(SecretError::backend(e)),
            },
        }
    }

    fn backend_name(&self) -> &'static str {
        "secretsmanager"
    }
}
