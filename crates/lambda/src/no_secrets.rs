//! The secret store of a function whose role may not touch secrets (the
//! platform and integrations API functions, infra/template.yaml): every call
//! fails with an error naming why, where Secrets Manager would answer
//! AccessDenied. Wiring this instead of Secrets Manager also keeps the Secrets
//! Manager client out of those binaries.

use async_trait::async_trait;

use ferry_core::ports::secrets::{SecretError, SecretFields, SecretRef, SecretStore};

pub struct NoSecrets;

#[derive(Debug, thiserror::Error)]
#[error("this function has no secret store: its role may not read or write secrets")]
pub struct NoSecretsError;

#[async_trait]
impl SecretStore for NoSecrets {
    async fn put(&self, _secret: &SecretRef, _fields: &SecretFields) -> Result<(), SecretError> {
        Err(SecretError::backend(NoSecretsError))
    }

    async fn get(&self, _secret: &SecretRef) -> Result<Option<SecretFields>, SecretError> {
        Err(SecretError::backend(NoSecretsError))
    }

    async fn delete(&self, _secret: &SecretRef) -> Result<(), SecretError> {
        Err(SecretError::backend(NoSecretsError))
    }

    fn backend_name(&self) -> &'static str {
        "none"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_call_fails_and_says_the_function_has_no_secret_store() {
        let r = SecretRef::new("acme", "connections/c1");
        let errors = [
            NoSecrets.put(&r, &SecretFields::new()).await.err(),
            NoSecrets.get(&r).await.err(),
            NoSecrets.delete(&r).await.err(),
        ];
        for e in errors {
            let e = e.expect("an error");
            assert!(e.to_string().contains("no secret store"), "{e}");
        }
    }
}
