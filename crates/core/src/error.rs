//! The domain layer's error. The API maps it to HTTP in one place (`api::error`).

use crate::ports::{SecretError, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The addressed thing does not exist (or is not visible to the caller).
    #[error("{what} '{id}' was not found")]
    NotFound { what: &'static str, id: String },
    /// The request clashes with current state (duplicate, concurrent update, archived).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// The request is malformed or violates a rule; `code` is stable, `message` says how to fix it.
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// Like `Invalid`, with a machine-readable list of the individual problems
    /// (manifest diagnostics, schema violations) so clients can show them all at once.
    #[error("{message}")]
    InvalidDetails { code: &'static str, message: String, details: serde_json::Value },
    /// No valid credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Valid credentials, insufficient rights.
    #[error("{0}")]
    Forbidden(String),
    /// Too many failed attempts lately: not even checked until the wait is over.
    #[error("too many failed sign-in attempts; retry in {retry_after_secs} seconds")]
    TooManyAttempts { retry_after_secs: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// A bug or an impossible state; details are logged, not returned.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Error::Invalid { code, message: message.into() }
    }
    pub fn invalid_with(code: &'static str, message: impl Into<String>, details: serde_json::Value) -> Self {
        Error::InvalidDetails { code, message: message.into(), details }
    }
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Error::Conflict { code, message: message.into() }
    }
    pub fn not_found(what: &'static str, id: impl Into<String>) -> Self {
        Error::NotFound { what, id: id.into() }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
