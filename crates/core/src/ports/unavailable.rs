//! What every port reports when its backend cannot serve a call right now.
//!
//! Each port's error has an `Unavailable` variant holding an [`Unavailable`],
//! and a `Backend` variant for failures that retrying will not fix (the
//! backend refused the request, or is misconfigured). Adapters decide which
//! is which from their SDK's or library's error, and keep that error as the
//! source: a network error or timeout, throttling, a 5xx from AWS, SQLite
//! busy, locked or failing I/O are unavailable; anything else is not. The
//! domain keeps an unavailable backend apart from its other errors
//! ([`crate::Error::Unavailable`]), and the API answers it with 503 and
//! `Retry-After`.

/// The error of a backend, as adapters hand it over.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The port whose backend was unavailable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Port {
    Store,
    Secrets,
    Files,
    RunQueue,
    Scheduler,
    Events,
}

impl Port {
    /// How messages name it: "the store", "the secret store", ...
    pub fn name(self) -> &'static str {
        match self {
            Port::Store => "the store",
            Port::Secrets => "the secret store",
            Port::Files => "the file store",
            Port::RunQueue => "the run queue",
            Port::Scheduler => "the scheduler",
            Port::Events => "the event bus",
        }
    }
}

impl std::fmt::Display for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A backend that could not serve a call right now: unreachable, too slow,
/// throttling, failing on its side, busy or locked. Nothing is wrong with the
/// call itself, and the same call may succeed later. The backend's own error
/// is the source (its text must not carry secret values: adapters keep
/// request and response bodies out of it).
#[derive(Debug, thiserror::Error)]
#[error("{port} is unavailable: {source}")]
pub struct Unavailable {
    port: Port,
    #[source]
    source: BoxError,
}

impl Unavailable {
    pub fn new(port: Port, source: impl Into<BoxError>) -> Self {
        Self { port, source: source.into() }
    }

    pub fn port(&self) -> Port {
        self.port
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn names_the_port_and_keeps_the_source() {
        let cause = std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in 3 s");
        let e = Unavailable::new(Port::Secrets, cause);
        assert_eq!(e.port(), Port::Secrets);
        assert_eq!(e.to_string(), "the secret store is unavailable: no answer in 3 s");
        let source = e.source().expect("a source");
        assert_eq!(source.downcast_ref::<std::io::Error>().map(|e| e.kind()), Some(std::io::ErrorKind::TimedOut));
    }
}
