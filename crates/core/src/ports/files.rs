//! The file-store port: where flat-file targets write (a directory in the
//! embedded host, S3 on AWS). A file becomes visible only when committed, so a
//! crashed run never leaves a partial file behind.
//!
//! A file may be written by several invocations (an export larger than one
//! Lambda's time): a writer says how far its file is durable
//! ([`FileWriter::durable`]), as an [`Upload`] the caller keeps in its
//! checkpoint, and [`FileStore::resume`] goes on with the file from there in
//! another process. What was written after that point is not part of the
//! file: the continuation writes it again.

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
    /// An unfinished file to resume is no longer there (or shorter than its
    /// durable point): its writer must start it over.
    #[error("the unfinished file `{0}` can no longer be resumed")]
    Gone(String),
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

/// How far an unfinished file is durable: enough for another process to go
/// on with it ([`FileStore::resume`]). Serialisable into a checkpoint; holds
/// no secret, only the backend's handle of the upload.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Upload {
    /// The file's path within the tenant's space.
    pub path: String,
    /// The backend's handle: the temporary file's name (local), the multipart
    /// upload's id (S3).
    pub id: String,
    /// Bytes of the file that are durable.
    pub bytes: u64,
    /// Parts uploaded so far, in order (multipart backends).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<UploadedPart>,
}

/// A part of a multipart upload: its number and the entity tag the backend gave it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UploadedPart {
    pub number: u32,
    pub etag: String,
    pub bytes: u64,
}

#[async_trait]
pub trait FileWriter: Send {
    /// Appends `bytes`. A backend that stores a file in parts (S3) ends a
    /// part only at the end of a call, so a caller writing whole pages of
    /// records finds every durable point on a page boundary.
    async fn write(&mut self, bytes: &[u8]) -> Result<(), FileError>;
    /// How far the file is durable now, `None` while nothing is. Moves as the
    /// backend makes parts durable by itself (S3: each uploaded part); cheap.
    fn durable(&self) -> Option<Upload>;
    /// Makes as much as the backend can of what was written durable and says
    /// how far the file now is (the local store: everything; S3: up to its
    /// last part, since a part smaller than 5 MiB can only be the last).
    async fn sync(&mut self) -> Result<Option<Upload>, FileError>;
    /// Bytes written so far (durable or not).
    fn written(&self) -> u64;
    /// Makes the file visible under its path, replacing any previous one.
    async fn commit(self: Box<Self>) -> Result<(), FileError>;
    /// Discards what was written.
    async fn abort(self: Box<Self>) -> Result<(), FileError>;
}

#[async_trait]
pub trait FileStore: Send + Sync + 'static {
    /// Starts a file at `path` within the tenant's space.
    async fn create(&self, tenant: &str, path: &str) -> Result<Box<dyn FileWriter>, FileError>;
    /// Goes on with an unfinished file of the tenant from its durable point
    /// (what was written after it is dropped). [`FileError::Gone`] when the
    /// backend no longer has it.
    async fn resume(&self, tenant: &str, upload: &Upload) -> Result<Box<dyn FileWriter>, FileError>;
    /// A committed file's bytes.
    async fn read(&self, tenant: &str, path: &str) -> Result<Option<Vec<u8>>, FileError>;
    fn backend_name(&self) -> &'static str;
}
