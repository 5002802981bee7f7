//! Adapters for the ports: embedded (SQLite, encrypted file secrets) and AWS
//! (DynamoDB, Secrets Manager, SQS, S3). Every adapter passes the same conformance suite
//! (`shared/tests/it/conformance`).

pub mod aws;
pub mod aws_http;
pub mod dynamodb;
pub mod embedded_scheduler;
pub mod eventbridge;
pub mod eventbridge_scheduler;
pub mod file_secrets;
pub mod lambda_log;
pub mod lambda_sync;
pub mod local_events;
pub mod local_files;
pub mod no_secrets;
pub mod s3_files;
pub mod secrets_manager;
pub mod sqlite;
pub mod sqs;

pub use dynamodb::DynamoStore;
pub use embedded_scheduler::EmbeddedScheduler;
pub use eventbridge::EventBridgeBus;
pub use eventbridge_scheduler::{EventBridgeScheduler, SchedulerTarget};
pub use file_secrets::FileSecretStore;
pub use local_events::InProcessBus;
pub use local_files::LocalFileStore;
pub use no_secrets::NoSecrets;
pub use s3_files::S3FileStore;
pub use secrets_manager::SecretsManagerStore;
pub use sqlite::SqliteStore;
pub use sqs::SqsDispatcher;
