//! The Lambda functions' composition root: a [`ferry_service::Hub`] over the
//! AWS adapters with only the adapters a function uses ([`hub`]), the sync
//! function's event handler ([`sync`]) and the functions' log subscriber
//! ([`log`]). `functions/<name>/src/main.rs` stay a few lines over this.

pub mod hub;
pub mod log;
pub mod no_secrets;
pub mod sync;

pub use no_secrets::NoSecrets;
