//! Embedded file store: `<root>/<tenant>/<path>`, written to a hidden temporary
//! file in the same directory and renamed into place on commit (atomic on POSIX).
//!
//! A writer's durable point is the temporary file's length at its last
//! [`FileWriter::sync`] (flushed to disk then); resuming opens that file again
//! and cuts it back to that length, so bytes written after the point are gone.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use ferry_core::model::ids::is_valid_id;
use ferry_core::ports::files::{check_path, FileError, FileStore, FileWriter, Upload};

use crate::unavailable::io_unavailable;

fn io_err(e: std::io::Error) -> FileError {
    if io_unavailable(&e) {
        FileError::unavailable(e)
    } else {
        FileError::backend(e)
    }
}

pub struct LocalFileStore {
    root: PathBuf,
}

impl LocalFileStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn resolve(&self, tenant: &str, path: &str) -> Result<PathBuf, FileError> {
        if !is_valid_id(tenant) {
            return Err(FileError::InvalidPath(format!("{tenant}/{path}")));
        }
        check_path(path)?;
        Ok(self.root.join(tenant).join(path))
    }
}

struct LocalWriter {
    tmp: PathBuf,
    dest: PathBuf,
    /// Unbuffered here: callers write whole pages, and the file already stages
    /// each write for its blocking thread (a second buffer only held memory).
    file: tokio::fs::File,
    /// The file's tenant-relative path, as resumable uploads name it.
    path: String,
    written: u64,
    /// Bytes flushed to disk by the last sync.
    synced: Option<u64>,
}

impl LocalWriter {
    fn upload(&self, bytes: u64) -> Upload {
        let id = self.tmp.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        Upload { path: self.path.clone(), id, bytes, parts: Vec::new() }
    }
}

/// The temporary file of `dest`: hidden, next to it, unique.
fn temporary_name(dest: &Path) -> String {
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    format!(".{name}.{}.tmp", ulid::Ulid::new())
}

/// Whether `id` is a temporary name [`temporary_name`] could have made for
/// `dest`: a checkpoint names the file to resume, and must not reach another.
fn is_temporary_of(id: &str, dest: &Path) -> bool {
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    id.strip_prefix(&format!(".{name}."))
        .and_then(|rest| rest.strip_suffix(".tmp"))
        .is_some_and(|u| ulid::Ulid::from_string(u).is_ok())
}

#[async_trait]
impl FileWriter for LocalWriter {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), FileError> {
        self.file.write_all(bytes).await.map_err(io_err)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn durable(&self) -> Option<Upload> {
        self.synced.map(|n| self.upload(n))
    }

    async fn sync(&mut self) -> Result<Option<Upload>, FileError> {
        self.file.flush().await.map_err(io_err)?;
        self.file.sync_data().await.map_err(io_err)?;
        self.synced = Some(self.written);
        Ok(self.durable())
    }

    fn written(&self) -> u64 {
        self.written
    }

    async fn commit(mut self: Box<Self>) -> Result<(), FileError> {
        self.file.flush().await.map_err(io_err)?;
        self.file.sync_all().await.map_err(io_err)?;
        tokio::fs::rename(&self.tmp, &self.dest).await.map_err(io_err)
    }

    async fn abort(self: Box<Self>) -> Result<(), FileError> {
        let _ = tokio::fs::remove_file(&self.tmp).await;
        Ok(())
    }
}

#[async_trait]
impl FileStore for LocalFileStore {
    async fn create(&self, tenant: &str, path: &str) -> Result<Box<dyn FileWriter>, FileError> {
        let dest = self.resolve(tenant, path)?;
        let dir = dest.parent().map(Path::to_path_buf).unwrap_or_else(|| self.root.clone());
        tokio::fs::create_dir_all(&dir).await.map_err(io_err)?;
        let tmp = dir.join(temporary_name(&dest));
        let file = tokio::fs::File::create(&tmp).await.map_err(io_err)?;
        Ok(Box::new(LocalWriter { tmp, dest, file, path: path.to_owned(), written: 0, synced: None }))
    }

    async fn resume(&self, tenant: &str, upload: &Upload) -> Result<Box<dyn FileWriter>, FileError> {
        let dest = self.resolve(tenant, &upload.path)?;
        if !is_temporary_of(&upload.id, &dest) {
            return Err(FileError::InvalidPath(format!("{}/{}", upload.path, upload.id)));
        }
        let tmp = dest.parent().map(Path::to_path_buf).unwrap_or_else(|| self.root.clone()).join(&upload.id);
        let file = match tokio::fs::OpenOptions::new().write(true).open(&tmp).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(FileError::Gone(upload.path.clone())),
            Err(e) => return Err(io_err(e)),
        };
        // Shorter than its durable point: what the checkpoint counts on is lost.
        if file.metadata().await.map_err(io_err)?.len() < upload.bytes {
            return Err(FileError::Gone(upload.path.clone()));
        }
        file.set_len(upload.bytes).await.map_err(io_err)?;
        let mut file = file;
        file.seek(std::io::SeekFrom::End(0)).await.map_err(io_err)?;
        Ok(Box::new(LocalWriter {
            tmp,
            dest,
            file,
            path: upload.path.clone(),
            written: upload.bytes,
            synced: Some(upload.bytes),
        }))
    }

    async fn read(&self, tenant: &str, path: &str) -> Result<Option<Vec<u8>>, FileError> {
        match tokio::fs::read(self.resolve(tenant, path)?).await {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(e)),
        }
    }

    fn backend_name(&self) -> &'static str {
        "local"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn files_appear_only_when_committed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalFileStore::new(dir.path());
        let mut w = store.create("acme", "exports/a.jsonl").await.expect("create");
        w.write(b"{}\n").await.expect("write");
        assert_eq!(store.read("acme", "exports/a.jsonl").await.expect("read"), None);
        w.commit().await.expect("commit");
        assert_eq!(store.read("acme", "exports/a.jsonl").await.expect("read"), Some(b"{}\n".to_vec()));
        let mut w = store.create("acme", "exports/b.jsonl").await.expect("create");
        w.write(b"x").await.expect("write");
        w.abort().await.expect("abort");
        assert_eq!(store.read("acme", "exports/b.jsonl").await.expect("read"), None);
    }

    #[tokio::test]
    async fn paths_cannot_leave_the_tenant() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalFileStore::new(dir.path());
        for bad in ["../b/x", "/etc/passwd", "a/../../x", "", "a//b", "a b"] {
            assert!(matches!(store.create("acme", bad).await, Err(FileError::InvalidPath(_))), "{bad:?}");
        }
        assert!(store.create("../acme", "x").await.is_err());
    }
}
