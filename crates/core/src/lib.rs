//! Ferry's core: what every other crate speaks. The model, manifests and
//! their checks, the provider catalogue, schedules, the ports (traits) the
//! domain depends on, and the domain error. It depends on no other Ferry
//! crate (docs/architecture.md; `tests/architecture.sh` checks it).

pub mod allocator;
pub mod crypto;
pub mod error;
pub mod hardening;
pub mod manifest;
pub mod model;
pub mod ports;
pub mod providers;
pub mod schedule;
pub mod template_limits;

pub use error::{Error, Result};
