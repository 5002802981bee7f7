//! Ferry's domain crate: the model, the ports (traits) the domain depends on,
//! their adapters (embedded and AWS), the application services and the admin API.
//! No AWS type appears outside `adapters`.

pub mod adapters;
pub mod allocator;
pub mod api;
pub mod auth;
pub mod connect;
pub mod engine;
pub mod error;
pub mod hardening;
pub mod hooks;
pub mod manifest;
pub mod model;
pub mod net;
pub mod ports;
pub mod providers;
pub mod repo;
pub mod schedule;
pub mod service;

pub use error::{Error, Result};
pub use service::Hub;
