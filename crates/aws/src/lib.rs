//! The AWS world's adapters, over the official SDK: DynamoDB (store),
//! Secrets Manager (secrets), S3 (files), SQS (run queue), EventBridge
//! (events) and EventBridge Scheduler (schedules). Only this crate and
//! `ferry-lambda` name AWS types. Every adapter passes the conformance suite
//! (`tests/it/conformance`) against moto's server.

pub mod aws_http;
pub mod dynamodb;
pub mod eventbridge;
pub mod eventbridge_scheduler;
pub mod s3_files;
pub mod secrets_manager;
pub mod sqs;
pub mod unavailable;

pub use dynamodb::DynamoStore;
pub use eventbridge::EventBridgeBus;
pub use eventbridge_scheduler::{EventBridgeScheduler, SchedulerTarget};
pub use s3_files::S3FileStore;
pub use secrets_manager::SecretsManagerStore;
pub use sqs::SqsDispatcher;
