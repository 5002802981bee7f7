//! The one integration-test target of the library crates (`crates/`):
//! black-box tests through their public APIs; modules inside.

#[macro_use]
mod support;
mod api;
mod architecture;
mod conformance;
mod connect;
mod console;
mod engine;
mod manifest;
mod outbound;
mod schedule;
