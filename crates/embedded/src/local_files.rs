//! Embedded file store: `<root>/<tenant>/<path>`, written to a hidden temporary
//! file in the same directory and renamed into place on commit (atomic on POSIX).

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;

use ferry_core::model::ids::is_valid_id;
use ferry_core::ports::files::{check_path, FileError, FileStore, FileWriter};

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
}

#[async_trait]
impl FileWriter for LocalWriter {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), FileError> {
        self.file.write_all(bytes).await.map_err(io_err)
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
        let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = dir.join(format!(".{name}.{}.tmp", ulid::Ulid::new()));
        let file = tokio::fs::File::create(&tmp).await.map_err(io_err)?;
        Ok(Box::new(LocalWriter { tmp, dest, file }))
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
