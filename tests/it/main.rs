//! The one integration-test target of the domain crate; modules inside.

mod api;
mod conformance;
mod connect;
mod engine;
mod manifest;
mod outbound;
mod schedule;
mod support;
