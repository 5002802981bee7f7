//! The domain layer's error. The API maps it to HTTP in one place (`api::error`).

use crate::ports::{DispatchError, FileError, SchedulerError, SecretError, StoreError, Unavailable};

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
    /// A backend (the store, the secret store, the file store, the run queue,
    /// the scheduler) could not serve the request right now: unreachable,
    /// timing out, throttling, busy. Nothing is wrong with the request; it may
    /// succeed later. The port error converts into this (`?`), keeping the
    /// backend's error as the source.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    /// The store failed otherwise: a condition that did not hold, a corrupt
    /// item, a refused request.
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Secret(SecretError),
    #[error(transparent)]
    Files(FileError),
    #[error(transparent)]
    Dispatch(DispatchError),
    #[error(transparent)]
    Scheduler(SchedulerError),
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

    /// The unavailable backend behind this error, also when a port error
    /// was wrapped as it is rather than converted.
    pub fn unavailable(&self) -> Option<&Unavailable> {
        match self {
            Error::Unavailable(u)
            | Error::Store(StoreError::Unavailable(u))
            | Error::Secret(SecretError::Unavailable(u))
            | Error::Files(FileError::Unavailable(u))
            | Error::Dispatch(DispatchError::Unavailable(u))
            | Error::Scheduler(SchedulerError::Unavailable(u)) => Some(u),
            _ => None,
        }
    }

    /// Whether Ferry itself failed (a backend, a bug), rather than the
    /// request or an integration.
    pub fn is_platform_failure(&self) -> bool {
        matches!(
            self,
            Error::Unavailable(_)
                | Error::Store(_)
                | Error::Secret(_)
                | Error::Files(_)
                | Error::Dispatch(_)
                | Error::Scheduler(_)
                | Error::Internal(_)
        )
    }
}

/// Port errors convert with `?`: an unavailable backend becomes
/// [`Error::Unavailable`], anything else the port's own variant.
macro_rules! from_port_error {
    ($port:ident => $variant:ident) => {
        impl From<$port> for Error {
            fn from(e: $port) -> Self {
                match e {
                    $port::Unavailable(u) => Error::Unavailable(u),
                    e => Error::$variant(e),
                }
            }
        }
    };
}

from_port_error!(StoreError => Store);
from_port_error!(SecretError => Secret);
from_port_error!(FileError => Files);
from_port_error!(DispatchError => Dispatch);
from_port_error!(SchedulerError => Scheduler);

/// An error and its sources on one line, for logs: `a: b: c`. A level whose
/// text the line already ends with is skipped (port errors print their
/// source). Only `Display` is used: adapters keep secret values out of it,
/// while `Debug` of an SDK error may show a whole HTTP response.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !part.is_empty() && !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;
    use crate::ports::Port;

    #[derive(Debug, thiserror::Error)]
    #[error("connection refused")]
    struct Refused;

    #[test]
    fn an_unavailable_backend_converts_to_its_own_variant_keeping_the_source() {
        let e: Error = StoreError::unavailable(Refused).into();
        assert!(matches!(e, Error::Unavailable(ref u) if u.port() == Port::Store), "{e:?}");
        assert!(e.source().and_then(|s| s.downcast_ref::<Refused>()).is_some(), "the backend's error is the source");
        assert_eq!(chain(&e), "the store is unavailable: connection refused");

        for (e, port) in [
            (Error::from(SecretError::unavailable(Refused)), Port::Secrets),
            (Error::from(FileError::unavailable(Refused)), Port::Files),
            (Error::from(DispatchError::unavailable(Refused)), Port::RunQueue),
            (Error::from(SchedulerError::unavailable(Refused)), Port::Scheduler),
            (Error::Store(StoreError::unavailable(Refused)), Port::Store),
        ] {
            assert_eq!(e.unavailable().map(Unavailable::port), Some(port), "{e:?}");
            assert!(e.is_platform_failure());
        }
    }

    #[test]
    fn other_port_errors_keep_their_port_and_source() {
        let e: Error = StoreError::backend(Refused).into();
        assert!(matches!(e, Error::Store(StoreError::Backend(_))), "{e:?}");
        assert!(e.unavailable().is_none());
        assert_eq!(chain(&e), "store backend error: connection refused");
        assert!(matches!(Error::from(StoreError::ConditionFailed), Error::Store(StoreError::ConditionFailed)));
        assert!(matches!(Error::from(FileError::InvalidPath("..".into())), Error::Files(FileError::InvalidPath(_))));
        assert!(matches!(Error::from(DispatchError::backend(Refused)), Error::Dispatch(DispatchError::Backend(_))));
        let e = Error::from(SchedulerError::InvalidName("a#b".into()));
        assert!(matches!(e, Error::Scheduler(SchedulerError::InvalidName(_))));
        assert!(e.unavailable().is_none());
        assert!(!Error::not_found("job", "j1").is_platform_failure());
    }
}
