mod concurrency;
pub mod fake;
mod flow;
mod http;
mod source;

pub use fake::serve_with_owners as fake_serve_with_owners;
