//! The one integration-test target of the domain crate; modules inside.

mod conformance;
mod support;
