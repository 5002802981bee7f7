//! The embedded world's adapters, for `ferry up` and the tests: the SQLite
//! store, encrypted file secrets, local files, in-process events and the
//! in-process scheduler. Every adapter passes the conformance suite
//! (`tests/it/conformance`) that the AWS adapters pass.

pub mod embedded_scheduler;
pub mod file_secrets;
pub mod local_events;
pub mod local_files;
pub mod sqlite;
pub mod unavailable;

pub use embedded_scheduler::EmbeddedScheduler;
pub use file_secrets::FileSecretStore;
pub use local_events::InProcessBus;
pub use local_files::LocalFileStore;
pub use sqlite::SqliteStore;
