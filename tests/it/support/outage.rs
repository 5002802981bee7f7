//! Backends that fail on demand: the embedded store and secret store behind a
//! switch that makes every call fail as an unreachable DynamoDB or Secrets
//! Manager would (the port's unavailable error), or with a failure retrying
//! will not fix (the port's backend error).

#![allow(dead_code)]

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use ferry_core::ports::{
    Item, Key, Query, QueryPage, SecretError, SecretFields, SecretRef, SecretStore, Store, StoreError, WriteOp,
};
use ferry_embedded::{FileSecretStore, SqliteStore};
use ferry_service::Hub;

/// The text of every unavailable error the switch makes, to look for in logs.
pub const OUTAGE: &str = "connection refused (test outage)";
/// The text of every other backend error the switch makes.
pub const BROKEN: &str = "the table does not exist (test fault)";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Calls go through.
    None = 0,
    /// Calls fail as if the backend were unreachable.
    Unavailable = 1,
    /// Calls fail as if the backend refused them for good.
    Broken = 2,
}

/// Shared by the test and the backend it controls.
#[derive(Debug, Clone, Default)]
pub struct Switch(Arc<AtomicU8>);

impl Switch {
    pub fn set(&self, fault: Fault) {
        self.0.store(fault as u8, Ordering::SeqCst);
    }

    fn check<E>(&self, unavailable: fn(std::io::Error) -> E, broken: fn(std::io::Error) -> E) -> Result<(), E> {
        match self.0.load(Ordering::SeqCst) {
            1 => Err(unavailable(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, OUTAGE))),
            2 => Err(broken(std::io::Error::other(BROKEN))),
            _ => Ok(()),
        }
    }
}

pub struct SwitchableStore {
    inner: SqliteStore,
    switch: Switch,
}

impl SwitchableStore {
    fn check(&self) -> Result<(), StoreError> {
        self.switch.check(StoreError::unavailable, StoreError::backend)
    }
}

#[async_trait]
impl Store for SwitchableStore {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        self.check()?;
        self.inner.get(key).await
    }
    async fn query(&self, query: &Query) -> Result<QueryPage, StoreError> {
        self.check()?;
        self.inner.query(query).await
    }
    async fn write(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        self.check()?;
        self.inner.write(ops).await
    }
    fn backend_name(&self) -> &'static str {
        "switchable"
    }
}

pub struct SwitchableSecrets {
    inner: FileSecretStore,
    switch: Switch,
}

impl SwitchableSecrets {
    fn check(&self) -> Result<(), SecretError> {
        self.switch.check(SecretError::unavailable, SecretError::backend)
    }
}

#[async_trait]
impl SecretStore for SwitchableSecrets {
    async fn put(&self, secret: &SecretRef, fields: &SecretFields) -> Result<(), SecretError> {
        self.check()?;
        self.inner.put(secret, fields).await
    }
    async fn get(&self, secret: &SecretRef) -> Result<Option<SecretFields>, SecretError> {
        self.check()?;
        self.inner.get(secret).await
    }
    async fn delete(&self, secret: &SecretRef) -> Result<(), SecretError> {
        self.check()?;
        self.inner.delete(secret).await
    }
    fn backend_name(&self) -> &'static str {
        "switchable"
    }
}

/// A hub on the embedded store and secrets, each behind its own switch.
pub struct Switchable {
    pub hub: Hub,
    pub dir: tempfile::TempDir,
    pub store: Switch,
    pub secrets: Switch,
}

pub fn switchable_hub() -> Switchable {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, secrets) = (Switch::default(), Switch::default());
    let sqlite = SqliteStore::open(&dir.path().join("ferry.db")).expect("sqlite");
    let files = FileSecretStore::open(dir.path()).expect("secrets");
    let hub = Hub::new(
        Arc::new(SwitchableStore { inner: sqlite, switch: store.clone() }),
        Arc::new(SwitchableSecrets { inner: files, switch: secrets.clone() }),
    );
    Switchable { hub, dir, store, secrets }
}
