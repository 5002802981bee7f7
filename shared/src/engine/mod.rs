//! The sync engine: executes a manifest's declarative flows for one job.
//! Built up piece by piece; today: templates and field mapping.

pub mod mapping;
pub mod template;
pub mod http;
