//! The one integration-test target of the domain crate; modules inside.

mod api;
mod conformance;
mod connect;
mod engine;
mod manifest;
mod schedule;
mod support;
