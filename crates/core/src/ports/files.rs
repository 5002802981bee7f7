//! The file-store port: where flat-file targets write (a directory in the
//! embedded host, S3 on AWS). A file becomes visible only when committed, so a
//! crashed run never leaves a partial file behind.

use async_trait::async_trait;

use super::unavailable::{BoxError, Port, Unavailable};

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("invalid file path `{0}`: use relative paths of letters, digits, `-`, `_`, `.` and `/`, without `..`")]
    InvalidPath(String),
    /// The backend could not serve the call right now (unreachable, timing
    /// out, throttling, failing I/O); the same call may succeed later.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    /// The backend failed in a way retrying will not fix (it refused the
    /// request, or is misconfigured).
    #[error("file store error: {0}")]
    Backend(#[source] BoxError),
}

impl FileError {
    pub fn backend(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        FileError::Backend(Box::new(e))
    }
    pub fn unavailable(e: impl Into<BoxError>) -> Self {
        FileError::Unavailable(Unavailable::new(Port::Files, e))
    }
}

/// Checks a tenant-relative path: no traversal, no absolute paths, no oddities.
pub fn check_path(path: &str) -> Result<(), FileError> {
    let ok = !path.is_empty()
        && path.len() <= 512
        && !path.starts_with('/')
        && path.split('/').all(|seg| !seg.is_empty() && seg != "." && seg != "..")
        && path.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'));
    if ok {
        Ok(())
    } else {
        Err(FileError::InvalidPath(path.to_owned()))
    }
}

#[async_trait]
pub trait FileWriter: Send {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), FileError>;
    /// Makes the file visible under its path, replacing any previous one.
    async fn commit(self: Box<Self>) -> Result<(), FileError>;
    /// Discards what was written.
    async fn abort(self: Box<Self>) -> Result<(), FileError>;
}

#[async_trait]
pub trait FileStore: Send + Sync + 'static {
    /// Starts a file at `path` within the tenant's space.
    async fn create(&self, tenant: &str, path: &str) -> Result<Box<dyn FileWriter>, FileError>;
    /// A committed file's bytes.
    async fn read(&self, tenant: &str, path: &str) -> Result<Option<Vec<u8>>, FileError>;
    fn backend_name(&self) -> &'static str;
}
