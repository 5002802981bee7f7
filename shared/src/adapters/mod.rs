//! Adapters for the ports: embedded (SQLite, encrypted file secrets) and AWS
//! (DynamoDB, Secrets Manager). Every adapter passes the same conformance suite
//! (`shared/tests/it/conformance`).

pub mod aws;
pub mod dynamodb;
pub mod eventbridge;
pub mod file_secrets;
pub mod local_events;
pub mod local_files;
pub mod secrets_manager;
pub mod sqlite;

pub use dynamodb::DynamoStore;
pub use eventbridge::EventBridgeBus;
pub use file_secrets::FileSecretStore;
pub use local_events::InProcessBus;
pub use local_files::LocalFileStore;
pub use secrets_manager::SecretsManagerStore;
pub use sqlite::SqliteStore;
