//! The sync engine: executes a manifest's declarative flows for one job.
//! Built up piece by piece; so far: templates, field mapping, the HTTP client,
//! credential injection and paginated sources.

pub mod auth;
pub mod dead_letter;
pub mod flow;
pub mod http;
pub mod json_view;
pub mod mapping;
pub mod page;
pub mod parallel;
pub mod process;
pub mod redact;
pub mod resume;
pub mod sandbox;
pub mod sandbox_net;
pub mod source;
pub mod substream;
pub mod target;
pub mod template;
pub mod throttle;
pub mod window;
