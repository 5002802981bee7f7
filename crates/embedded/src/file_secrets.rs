//! Embedded [`SecretStore`]: AES-256-GCM encrypted rows in their own SQLite file.
//!
//! Layout inside the data directory:
//! - `master.key`: 32 random bytes, mode 0600. Losing it loses every secret;
//!   copying it with the database is what a backup must do.
//! - `secrets.db`: `secrets(tenant, name, nonce, ciphertext)`. Kept apart from
//!   the main store so a dump or copy of the store never carries credentials,
//!   even encrypted.
//!
//! The associated data of every ciphertext is `tenant NUL name`, so a row copied
//! under another address fails authentication instead of leaking one tenant's
//! credential to another.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use async_trait::async_trait;
use rand::rngs::OsRng;
use rand::RngCore;
use rusqlite::{params, Connection, OptionalExtension};

use ferry_core::ports::secrets::{SecretError, SecretFields, SecretRef, SecretStore};

use crate::unavailable::{io_unavailable, sqlite_unavailable};

const KEY_FILE: &str = "master.key";
const DB_FILE: &str = "secrets.db";
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const SCHEMA_VERSION: i64 = 1;

#[derive(Debug, thiserror::Error)]
enum FileSecretError {
    #[error("master key file {path} is accessible by group or others (mode {mode:03o}); run `chmod 600 {path}`")]
    InsecureKeyFile { path: String, mode: u32 },
    #[error("master key file {path} is not a regular file")]
    KeyNotAFile { path: String },
    #[error(
        "master key file {path} is missing but {db} holds {count} secret(s) encrypted with it; \
         restore the key file instead of generating a new one"
    )]
    KeyMissing { path: String, db: String, count: i64 },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the operating system random number generator failed: {0}")]
    Random(#[source] rand::Error),
    #[error("encryption failed")]
    Encrypt,
    #[error("secret tenant must not contain NUL characters")]
    NulInTenant,
    #[error("secrets database schema version {found} is newer than this build supports ({supported})")]
    SchemaTooNew { found: i64, supported: i64 },
}

fn backend(e: FileSecretError) -> SecretError {
    SecretError::backend(e)
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> SecretError + 'a {
    move |source| {
        let unavailable = io_unavailable(&source);
        let e = FileSecretError::Io { what, path: path.display().to_string(), source };
        if unavailable {
            SecretError::unavailable(e)
        } else {
            backend(e)
        }
    }
}

fn db_err(e: rusqlite::Error) -> SecretError {
    if sqlite_unavailable(&e) {
        SecretError::unavailable(e)
    } else {
        SecretError::backend(e)
    }
}

/// [`SecretStore`] adapter for single-host deployments. Cheap to clone.
#[derive(Clone)]
pub struct FileSecretStore {
    conn: Arc<Mutex<Connection>>,
    cipher: Arc<Aes256Gcm>,
}

impl std::fmt::Debug for FileSecretStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSecretStore").finish_non_exhaustive()
    }
}

impl FileSecretStore {
    /// Opens the secrets of `data_dir` (which must exist), creating the master
    /// key and the database on first use.
    pub fn open(data_dir: &Path) -> Result<Self, SecretError> {
        let db_path = data_dir.join(DB_FILE);
        let conn = open_db(&db_path)?;
        let key_path = data_dir.join(KEY_FILE);
        let key = match read_key(&key_path)? {
            Some(key) => key,
            None => {
                let count: i64 =
                    conn.query_row("SELECT COUNT(*) FROM secrets", [], |row| row.get(0)).map_err(db_err)?;
                if count > 0 {
                    return Err(backend(FileSecretError::KeyMissing {
                        path: key_path.display().to_string(),
                        db: db_path.display().to_string(),
                        count,
                    }));
                }
                create_key(&key_path)?
            }
        };
        let cipher = Aes256Gcm::new(&key.into());
        Ok(Self { conn: Arc::new(Mutex::new(conn)), cipher: Arc::new(cipher) })
    }

    async fn run<T, F>(&self, f: F) -> Result<T, SecretError>
    where
        F: FnOnce(&Connection) -> Result<T, SecretError> + Send + 'static,
        T: Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            // A panic mid-call rolled its transaction back on unwind, so the connection is sound.
            let guard = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&guard)
        })
        .await
        .map_err(SecretError::backend)?
    }
}

fn open_db(path: &Path) -> Result<Connection, SecretError> {
    // Create the file ourselves so it starts out 0600; SQLite gives its -wal and
    // -shm files the permissions of the database file.
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(io_err("cannot create secrets database", path))?;
    let mut conn = Connection::open(path).map_err(db_err)?;
    let _mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0)).map_err(db_err)?;
    conn.pragma_update(None, "synchronous", "NORMAL").map_err(db_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(db_err)?;

    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(db_err)?;
    let found: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0)).map_err(db_err)?;
    if found > SCHEMA_VERSION {
        return Err(backend(FileSecretError::SchemaTooNew { found, supported: SCHEMA_VERSION }));
    }
    if found < 1 {
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS secrets (
                tenant TEXT NOT NULL,
                name TEXT NOT NULL,
                nonce BLOB NOT NULL,
                ciphertext BLOB NOT NULL,
                PRIMARY KEY (tenant, name)
            ) WITHOUT ROWID;",
        )
        .map_err(db_err)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(db_err)?;
    }
    tx.commit().map_err(db_err)?;
    Ok(conn)
}

/// Reads the master key, or None when the file does not exist.
fn read_key(path: &Path) -> Result<Option<[u8; KEY_LEN]>, SecretError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("cannot open master key file", path)(e)),
    };
    // Metadata of the opened handle, so the checked file is the one we read.
    let meta = file.metadata().map_err(io_err("cannot stat master key file", path))?;
    if !meta.is_file() {
        return Err(backend(FileSecretError::KeyNotAFile { path: path.display().to_string() }));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(backend(FileSecretError::InsecureKeyFile { path: path.display().to_string(), mode }));
    }
    let mut buf = Vec::with_capacity(KEY_LEN + 1);
    // One byte more than needed is enough to tell "too long" without reading a
    // file of arbitrary size.
    file.take(KEY_LEN as u64 + 1).read_to_end(&mut buf).map_err(io_err("cannot read master key file", path))?;
    let key: [u8; KEY_LEN] = buf.as_slice().try_into().map_err(|_| {
        SecretError::Corrupt(format!(
            "master key file {} must hold exactly {KEY_LEN} bytes, it holds {}",
            path.display(),
            meta.len()
        ))
    })?;
    Ok(Some(key))
}

/// Creates the master key file without ever exposing a partial one: the key is
/// written and synced under a temporary name, then hard-linked into place,
/// which fails if the file appeared meanwhile (another process won the race,
/// and its key is the one to use).
fn create_key(path: &Path) -> Result<[u8; KEY_LEN], SecretError> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let mut key = [0u8; KEY_LEN];
    OsRng.try_fill_bytes(&mut key).map_err(|e| backend(FileSecretError::Random(e)))?;
    let mut tag = [0u8; 8];
    OsRng.try_fill_bytes(&mut tag).map_err(|e| backend(FileSecretError::Random(e)))?;
    let tmp: PathBuf = dir.join(format!(".{KEY_FILE}.{}.tmp", hex::encode(tag)));

    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err("cannot create master key file", &tmp))?;
        file.write_all(&key).map_err(io_err("cannot write master key file", &tmp))?;
        file.sync_all().map_err(io_err("cannot sync master key file", &tmp))?;
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(io_err("cannot install master key file", path)(e)),
        }
    })();
    // Best effort: a leftover temporary file holds a key that was never used.
    let _ = std::fs::remove_file(&tmp);
    written?;

    if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
        tracing::warn!(dir = %dir.display(), error = %e, "could not sync the data directory after creating the master key");
    }
    // Read back rather than trust `key`: if another process linked its key
    // first, that one is authoritative.
    read_key(path)?.ok_or_else(|| {
        backend(FileSecretError::Io {
            what: "master key file vanished after creation",
            path: path.display().to_string(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        })
    })
}

fn associated_data(secret: &SecretRef) -> Result<Vec<u8>, SecretError> {
    // A NUL in the tenant would make `tenant NUL name` ambiguous between two
    // different addresses; names may contain anything.
    if secret.tenant.contains('\0') {
        return Err(backend(FileSecretError::NulInTenant));
    }
    let mut aad = Vec::with_capacity(secret.tenant.len() + 1 + secret.name.len());
    aad.extend_from_slice(secret.tenant.as_bytes());
    aad.push(0);
    aad.extend_from_slice(secret.name.as_bytes());
    Ok(aad)
}

fn decrypt(
    cipher: &Aes256Gcm,
    secret: &SecretRef,
    nonce: &[u8],
    ciphertext: &[u8],
) -> Result<SecretFields, SecretError> {
    if nonce.len() != NONCE_LEN {
        return Err(SecretError::Corrupt(format!(
            "secret {}/{} has a nonce of {} bytes instead of {NONCE_LEN}",
            secret.tenant,
            secret.name,
            nonce.len()
        )));
    }
    let aad = associated_data(secret)?;
    let plaintext = cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad: &aad }).map_err(|_| {
        SecretError::Corrupt(format!(
            "secret {}/{} failed authentication (wrong master key, tampered or moved row)",
            secret.tenant, secret.name
        ))
    })?;
    let plaintext = String::from_utf8(plaintext)
        .map_err(|_| SecretError::Corrupt(format!("secret {}/{} is not UTF-8", secret.tenant, secret.name)))?;
    SecretFields::from_plaintext_json(&plaintext)
}

#[async_trait]
impl SecretStore for FileSecretStore {
    async fn put(&self, secret: &SecretRef, fields: &SecretFields) -> Result<(), SecretError> {
        let aad = associated_data(secret)?;
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.try_fill_bytes(&mut nonce).map_err(|e| backend(FileSecretError::Random(e)))?;
        let plaintext = fields.to_plaintext_json();
        let ciphertext = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext.as_bytes(), aad: &aad })
            .map_err(|_| backend(FileSecretError::Encrypt))?;
        drop(plaintext);
        let secret = secret.clone();
        self.run(move |conn| {
            conn.prepare_cached(
                "INSERT INTO secrets (tenant, name, nonce, ciphertext) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (tenant, name) DO UPDATE SET nonce = excluded.nonce, ciphertext = excluded.ciphertext",
            )
            .map_err(db_err)?
            .execute(params![secret.tenant, secret.name, &nonce[..], ciphertext])
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn get(&self, secret: &SecretRef) -> Result<Option<SecretFields>, SecretError> {
        let lookup = secret.clone();
        let row: Option<(Vec<u8>, Vec<u8>)> = self
            .run(move |conn| {
                conn.prepare_cached("SELECT nonce, ciphertext FROM secrets WHERE tenant = ?1 AND name = ?2")
                    .map_err(db_err)?
                    .query_row(params![lookup.tenant, lookup.name], |row| Ok((row.get(0)?, row.get(1)?)))
                    .optional()
                    .map_err(|e| match e {
                        rusqlite::Error::InvalidColumnType(..) | rusqlite::Error::FromSqlConversionFailure(..) => {
                            SecretError::Corrupt(format!(
                                "secret {}/{} has a malformed row",
                                lookup.tenant, lookup.name
                            ))
                        }
                        e => db_err(e),
                    })
            })
            .await?;
        match row {
            Some((nonce, ciphertext)) => decrypt(&self.cipher, secret, &nonce, &ciphertext).map(Some),
            None => Ok(None),
        }
    }

    async fn delete(&self, secret: &SecretRef) -> Result<(), SecretError> {
        let secret = secret.clone();
        self.run(move |conn| {
            conn.prepare_cached("DELETE FROM secrets WHERE tenant = ?1 AND name = ?2")
                .map_err(db_err)?
                .execute(params![secret.tenant, secret.name])
                .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    fn backend_name(&self) -> &'static str {
        "file"
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> SecretFields {
        let mut f = SecretFields::new();
        for (k, v) in pairs {
            f.insert(*k, *v);
        }
        f
    }

    fn value(f: &SecretFields, name: &str) -> String {
        f.get(name).expect("field present").expose_secret().to_owned()
    }

    #[tokio::test]
    async fn master_key_file_is_created_with_mode_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let _store = FileSecretStore::open(dir.path()).expect("open");
        let meta = std::fs::metadata(dir.path().join(KEY_FILE)).expect("key file");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len(), KEY_LEN as u64);
        let db_meta = std::fs::metadata(dir.path().join(DB_FILE)).expect("db file");
        assert_eq!(db_meta.permissions().mode() & 0o077, 0, "secrets.db must not be group/world accessible");
        // No temporary key files are left behind.
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("read_dir")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[tokio::test]
    async fn reopen_uses_the_same_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = SecretRef::new("ten_1", "connections/con_1");
        {
            let store = FileSecretStore::open(dir.path()).expect("open");
            store.put(&r, &fields(&[("api_key", "k-123")])).await.expect("put");
        }
        let store = FileSecretStore::open(dir.path()).expect("reopen");
        let got = store.get(&r).await.expect("get").expect("present");
        assert_eq!(value(&got, "api_key"), "k-123");
    }

    #[tokio::test]
    async fn ciphertext_moved_to_another_row_fails_to_decrypt() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileSecretStore::open(dir.path()).expect("open");
        let victim = SecretRef::new("ten_victim", "connections/con_1");
        store.put(&victim, &fields(&[("password", "hunter2")])).await.expect("put");

        let raw = Connection::open(dir.path().join(DB_FILE)).expect("raw open");
        for (tenant, name) in [("ten_attacker", "connections/con_1"), ("ten_victim", "connections/con_2")] {
            raw.execute(
                "INSERT INTO secrets (tenant, name, nonce, ciphertext)
                 SELECT ?1, ?2, nonce, ciphertext FROM secrets WHERE tenant = 'ten_victim' AND name = 'connections/con_1'",
                params![tenant, name],
            )
            .expect("copy row");
            let err = store.get(&SecretRef::new(tenant, name)).await.expect_err("moved ciphertext must not decrypt");
            assert!(matches!(err, SecretError::Corrupt(_)), "{err:?}");
            assert!(!err.to_string().contains("hunter2"));
        }
        // The original still decrypts.
        let got = store.get(&victim).await.expect("get").expect("present");
        assert_eq!(value(&got, "password"), "hunter2");
    }

    #[tokio::test]
    async fn tampered_ciphertext_is_corrupt() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileSecretStore::open(dir.path()).expect("open");
        let r = SecretRef::new("t", "n");
        store.put(&r, &fields(&[("a", "b")])).await.expect("put");
        let raw = Connection::open(dir.path().join(DB_FILE)).expect("raw open");
        let mut ct: Vec<u8> = raw.query_row("SELECT ciphertext FROM secrets", [], |row| row.get(0)).expect("read");
        ct[0] ^= 1;
        raw.execute("UPDATE secrets SET ciphertext = ?1", params![ct]).expect("tamper");
        assert!(matches!(store.get(&r).await, Err(SecretError::Corrupt(_))));
    }

    #[tokio::test]
    async fn secrets_db_files_do_not_contain_the_plaintext() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileSecretStore::open(dir.path()).expect("open");
        let marker = "PLAINTEXT-MARKER-7f3a9c";
        store
            .put(
                &SecretRef::new("ten_1", "connections/con_1"),
                &fields(&[("api_key", marker), ("marker_field_name", "x")]),
            )
            .await
            .expect("put");
        let mut checked = 0;
        for entry in std::fs::read_dir(dir.path()).expect("read_dir") {
            let path = entry.expect("entry").path();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if !name.starts_with(DB_FILE) {
                continue;
            }
            let bytes = std::fs::read(&path).expect("read db file");
            for needle in [marker, "marker_field_name"] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                    "{name} contains {needle} in clear"
                );
            }
            checked += 1;
        }
        assert!(checked >= 1, "no database file was checked");
    }

    #[tokio::test]
    async fn nonce_is_fresh_for_every_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileSecretStore::open(dir.path()).expect("open");
        let raw = Connection::open(dir.path().join(DB_FILE)).expect("raw open");
        let read = || -> (Vec<u8>, Vec<u8>) {
            raw.query_row("SELECT nonce, ciphertext FROM secrets", [], |row| Ok((row.get(0)?, row.get(1)?)))
                .expect("read")
        };
        let r = SecretRef::new("t", "n");
        let f = fields(&[("a", "same")]);
        store.put(&r, &f).await.expect("put");
        let first = read();
        store.put(&r, &f).await.expect("put again");
        let second = read();
        assert_ne!(first.0, second.0);
        assert_ne!(first.1, second.1);
    }

    #[test]
    fn refuses_group_readable_master_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(KEY_FILE);
        std::fs::write(&path, [7u8; KEY_LEN]).expect("write key");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let err = FileSecretStore::open(dir.path()).expect_err("must refuse");
        let msg = err.to_string();
        assert!(msg.contains("master.key") && msg.contains("640"), "{msg}");
    }

    #[test]
    fn rejects_master_key_of_wrong_length() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(KEY_FILE);
        for len in [0usize, 31, 33, 64] {
            std::fs::write(&path, vec![7u8; len]).expect("write key");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
            let err = FileSecretStore::open(dir.path()).expect_err("must refuse");
            assert!(matches!(err, SecretError::Corrupt(ref m) if m.contains("master.key")), "{err:?}");
        }
    }

    #[tokio::test]
    async fn refuses_to_replace_a_lost_key_when_secrets_exist() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = FileSecretStore::open(dir.path()).expect("open");
            store.put(&SecretRef::new("t", "n"), &fields(&[("a", "b")])).await.expect("put");
        }
        std::fs::remove_file(dir.path().join(KEY_FILE)).expect("remove key");
        let err = FileSecretStore::open(dir.path()).expect_err("must refuse");
        assert!(err.to_string().contains("restore the key"), "{err}");
        assert!(!dir.path().join(KEY_FILE).exists(), "no new key may be generated");
    }

    #[tokio::test]
    async fn tenant_with_nul_is_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileSecretStore::open(dir.path()).expect("open");
        let r = SecretRef::new("a\0b", "c");
        assert!(store.put(&r, &fields(&[("a", "b")])).await.is_err());
    }
}
